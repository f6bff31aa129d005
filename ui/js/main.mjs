// The single-page app: each page has its own URL; links within the app change the page
// without a reload.
import { h, replace } from './dom.mjs';
import * as steps from './pages/steps.mjs';
import * as step from './pages/step.mjs';
import * as runs from './pages/runs.mjs';
import * as run from './pages/run.mjs';
import * as schedules from './pages/schedules.mjs';
import * as pools from './pages/pools.mjs';

const ROUTES = [
  [/^\/$/, steps, 'steps'],
  [/^\/steps\/?$/, steps, 'steps'],
  [/^\/steps\/([^/]+)$/, step, 'steps'],
  [/^\/runs\/?$/, runs, 'runs'],
  [/^\/runs\/([^/]+)$/, run, 'runs'],
  [/^\/schedules\/?$/, schedules, 'schedules'],
  [/^\/pools\/?$/, pools, 'pools'],
];

const main = document.getElementById('main');
let leave = null;
let shownPath = null;

function render() {
  if (leave) { leave(); leave = null; }
  const path = location.pathname;
  const samePage = path === shownPath;
  shownPath = path;
  for (const [pattern, page, section] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    for (const a of document.querySelectorAll('nav a[data-section]')) {
      if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    replace(main);
    const params = new URLSearchParams(location.search);
    leave = page.render(main, { id: match[1] && decodeURIComponent(match[1]), params }) || null;
    if (!samePage) main.focus({ preventScroll: true });
    return;
  }
  replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No page here. ', h('a', { href: '/steps' }, 'See the steps.')));
}

/** Goes to a page of the app. `replaceState`: change the URL without a history entry. */
export function navigate(url, { replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/ui/')) return;
  e.preventDefault();
  if (url.pathname + url.search === location.pathname + location.search) return;
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', render);
render();
