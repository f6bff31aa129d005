// /steps: every step, searchable, and a form to create a tree.
import { get, put } from '../api.mjs';
import { h, replace, toast } from '../dom.mjs';
import { navigate } from '../main.mjs';

const PAGE = 50;

export function render(main, { params }) {
  document.title = 'Steps · aetr';
  const query = params.get('q') || '';
  const search = h('input', { id: 'step-search', type: 'search', value: query, placeholder: 'Name contains…', autocomplete: 'off' });
  const list = h('tbody');
  const more = h('button', { type: 'button', class: 'btn', hidden: true }, 'Load more');
  const status = h('p', { class: 'muted', role: 'status' });
  let after = null;
  let generation = 0;

  async function load(reset) {
    const mine = ++generation;
    if (reset) { after = null; replace(list); }
    const q = search.value.trim();
    const qs = new URLSearchParams({ limit: PAGE });
    if (q) qs.set('q', q);
    if (after) qs.set('after', after);
    try {
      const page = await get(`/steps?${qs}`);
      if (mine !== generation) return;
      for (const s of page.body) {
        list.append(h('tr', {},
          h('td', {}, h('a', { href: `/steps/${s.id}` }, s.name)),
          h('td', {}, h('span', { class: `type type-${s.stepType}` }, s.stepType)),
          h('td', { class: 'mono muted' }, s.id)));
      }
      after = page.next;
      more.hidden = !after;
      status.textContent = list.children.length ? '' : (q ? `No step's name contains “${q}”.` : 'No steps yet: create a tree above.');
    } catch (e) {
      status.textContent = `Could not load the steps: ${e.message}`;
    }
  }

  let timer = null;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const q = search.value.trim();
      history.replaceState(null, '', q ? `/steps?q=${encodeURIComponent(q)}` : '/steps');
      load(true);
    }, 200);
  });
  more.addEventListener('click', () => load(false));

  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Steps'),
      h('p', { class: 'muted' }, 'A step tree is Sequential and Parallel steps whose leaves are actions that call your services. Any step can be the root of a run.')),
    createForm(),
    h('section', { class: 'card', 'aria-labelledby': 'all-steps' },
      h('div', { class: 'card-head' }, h('h2', { id: 'all-steps' }, 'All steps'),
        h('div', { class: 'field inline' }, h('label', { for: 'step-search' }, 'Search'), search)),
      h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col' }, 'Id'))),
        list),
      status, more));
  load(true);
  return () => clearTimeout(timer);
}

/** A new tree: a parent with one action, to be edited on its page. */
function createForm() {
  const name = h('input', { id: 'new-tree-name', type: 'text', required: true, placeholder: 'e.g. enrich-orders' });
  const type = h('select', { id: 'new-tree-type' },
    h('option', { value: 'Sequential' }, 'Sequential: children one after another'),
    h('option', { value: 'Parallel' }, 'Parallel: children all at once'));
  const errors = h('ul', { class: 'errors', 'aria-live': 'polite' });
  const form = h('form', { class: 'card create-form', 'aria-labelledby': 'create-tree' },
    h('h2', { id: 'create-tree' }, 'Create a tree'),
    h('div', { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'new-tree-name' }, 'Name'), name),
      h('div', { class: 'field' }, h('label', { for: 'new-tree-type' }, 'Root step'), type),
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create tree')),
    errors);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(errors);
    const tree = {
      name: name.value.trim(),
      stepType: type.value,
      children: [{ name: 'first-action', stepType: 'Action', action: { type: 'no-op' } }],
    };
    try {
      const made = await put('/steps', tree);
      toast(`Created ${tree.name}`);
      navigate(`/steps/${made.body.id}`);
    } catch (err) {
      replace(errors, (err.errors || [err.message]).map((m) => h('li', {}, m)));
    }
  });
  return form;
}
