// /runs: runs, newest first, filterable by state and tree, paginated, with a live count per
// state (of real runs). Dry runs are listed apart (?dryRun=true). The filters and the page are
// in the URL.
import { get } from '../api.mjs';
import { h, replace } from '../dom.mjs';
import { ago, duration, number, RUN_STATES, shortId, stateBadge } from '../format.mjs';
import { dryRunBadge } from '../run-header.mjs';

const PAGE = 50;

export function render(main, { params }) {
  document.title = 'Runs · aetr';
  const state = params.get('state') || '';
  const stepId = params.get('stepId') || '';
  const after = params.get('after') || '';
  const dryRun = params.get('dryRun') === 'true' ? 'true' : '';
  let stopped = false;
  let timer = null;

  const url = (changes) => {
    const q = new URLSearchParams({ state, stepId, after, dryRun, ...changes });
    for (const [k, v] of [...q]) if (!v) q.delete(k);
    const s = q.toString();
    return s ? `/runs?${s}` : '/runs';
  };

  const filters = h('div', { class: 'state-filters', role: 'group', 'aria-label': 'Filter by state' });
  const countLinks = {};
  for (const s of ['', ...RUN_STATES]) {
    const count = h('span', { class: 'count' }, '…');
    countLinks[s || 'all'] = count;
    filters.append(h('a', { href: url({ state: s, after: '' }), class: `filter${s === state ? ' active' : ''}`,
      'aria-current': s === state ? 'true' : null },
    s ? h('span', { class: `dot state-bg-${s}` }) : null, s || 'All', ' ', count));
  }

  const treeFilter = h('div', { class: 'tree-filter' });
  if (stepId) {
    treeFilter.append(h('span', {}, 'Tree: ', h('a', { href: `/steps/${stepId}`, class: 'tree-name' }, shortId(stepId))), ' ',
      h('a', { href: url({ stepId: '', after: '' }), class: 'btn btn-small' }, 'Show all trees'));
    get(`/steps/${stepId}/slim`).then((s) => { treeFilter.querySelector('.tree-name').textContent = s.body.name; }).catch(() => {});
  }

  const dryToggle = dryRun
    ? h('a', { href: url({ dryRun: '', after: '' }), class: 'btn btn-small' }, 'Show real runs')
    : h('a', { href: url({ dryRun: 'true', after: '' }), class: 'btn btn-small' }, 'Show dry runs');

  const rows = h('tbody');
  const pager = h('div', { class: 'pager' });
  const status = h('p', { class: 'muted', role: 'status' });
  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, dryRun ? 'Dry runs' : 'Runs')),
    h('section', { class: 'card', 'aria-label': dryRun ? 'Dry runs' : 'Runs' },
      h('div', { class: 'card-head' }, filters, treeFilter, h('span', { class: 'spacer' }), dryToggle),
      h('table', { class: 'table runs-table' },
        h('thead', {}, h('tr', {}, ['Run', 'Tree', 'State', 'Started', 'Took', 'Nodes'].map((c) => h('th', { scope: 'col' }, c)))),
        rows),
      status, pager));

  async function refresh() {
    const q = new URLSearchParams({ limit: PAGE });
    if (state) q.set('state', state);
    if (stepId) q.set('stepId', stepId);
    if (after) q.set('after', after);
    if (dryRun) q.set('dryRun', 'true');
    try {
      const [page, counts] = await Promise.all([
        get(`/runs?${q}`),
        get(`/runs/counts${stepId ? `?stepId=${stepId}` : ''}`),
      ]);
      if (stopped) return;
      // The counts are of real runs: a list of dry runs shows none.
      countLinks.all.textContent = dryRun ? '' : number(counts.body.total);
      for (const s of RUN_STATES) countLinks[s].textContent = dryRun ? '' : number(counts.body.counts[s]);
      replace(rows, page.body.map((r) => h('tr', {},
        h('td', {}, h('a', { href: `/runs/${r.id}`, 'aria-label': `Run ${r.id}` }, shortId(r.id))),
        h('td', {}, h('a', { href: `/steps/${r.stepTree.id}` }, r.stepTree.name)),
        h('td', {}, stateBadge(r.state), r.dryRun ? [' ', dryRunBadge()] : null),
        h('td', { title: new Date(r.createdAt).toLocaleString() }, ago(r.createdAt)),
        h('td', {}, r.completedAt ? duration(r.completedAt - r.createdAt) : duration(Date.now() - r.createdAt)),
        h('td', { class: 'num' }, number(r.nodeCount)))));
      status.textContent = page.body.length ? '' : dryRun
        ? 'No dry runs here. Start one with "Dry run…" on a tree\'s page.'
        : 'No runs here yet. Start one from a tree\'s page.';
      replace(pager,
        after ? h('a', { href: url({ after: '' }), class: 'btn' }, 'First page') : null,
        page.next ? h('a', { href: url({ after: page.next }), class: 'btn' }, 'Next page') : null);
    } catch (e) {
      status.textContent = `Could not load the runs: ${e.message}`;
    }
    if (!stopped) timer = setTimeout(refresh, 2000);
  }
  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
