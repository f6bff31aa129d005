// /pools: every pool (its slots, its rate limit, how many of its slots are used and how many
// attempts wait for one), refreshed while shown; edit and delete one; and a form to create or
// change one, with the server's errors next to their fields.
import { api, ApiError, get, put } from '../api.mjs';
import { confirmDialog, h, replace, toast } from '../dom.mjs';
import { number } from '../format.mjs';
import { fieldErrors, keyedRows } from '../forms.mjs';

const REFRESH_MS = 2000;
/** The form's fields, named as the API names them (and its errors start with). */
const FIELDS = ['name', 'slots', 'perSecond'];

export function render(main) {
  document.title = 'Pools · aetr';
  let stopped = false;
  let timer = null;
  let generation = 0;
  const body = h('tbody');
  const rows = keyedRows(body, (pool) => pool.name,
    (pool) => poolRow(pool, { onEdit: (p) => form.edit(p), onDelete: remove }),
    (row, pool) => row.update(pool));
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
  const form = poolForm({ onSaved: () => refresh() });

  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Pools'),
      h('p', { class: 'muted' },
        'A pool protects a service: at most its slots of the actions that name it are executing at once, across all runs; ',
        'the others wait, first come first served. An api action names its pool in the step editor.')),
    form.element,
    h('section', { class: 'card', 'aria-labelledby': 'all-pools' },
      h('div', { class: 'card-head' }, h('h2', { id: 'all-pools' }, 'All pools')),
      h('table', { class: 'table pools-table' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Pool'),
          h('th', { scope: 'col', class: 'num' }, 'Slots'),
          h('th', { scope: 'col', class: 'num' }, 'Per second'),
          h('th', { scope: 'col' }, 'Used'),
          h('th', { scope: 'col', class: 'num' }, 'Waiting'),
          h('th', { scope: 'col' }, 'Actions'))),
        body),
      status));

  /** Loads the pools and draws them; again every few seconds while the page is shown. */
  async function refresh() {
    clearTimeout(timer);
    const mine = ++generation;
    try {
      const list = (await get('/pools')).body;
      if (stopped || mine !== generation) return;
      rows.draw(list);
      status.textContent = list.length ? '' : 'No pools yet: create one above.';
    } catch (e) {
      if (stopped || mine !== generation) return;
      status.textContent = `Could not load the pools: ${e.message}`;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  async function remove(pool) {
    const ok = await confirmDialog({
      title: `Delete the pool ${pool.name}?`,
      message: 'It can be deleted only once no step names it and no unfinished run uses it. This cannot be undone.',
      confirm: 'Delete pool',
      danger: true,
    });
    if (!ok) return;
    try {
      await api('DELETE', `/pools/${encodeURIComponent(pool.name)}`);
      rows.remove(pool.name);
      toast('Pool deleted');
    } catch (e) {
      toast(`Not deleted: ${e.message}`, 'error');
    }
    refresh();
  }

  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}

/** A pool's row; `update(pool)` redraws its cells and keeps its buttons. */
function poolRow(first, { onEdit, onDelete }) {
  const row = { pool: first };
  const slotsCell = h('td', { class: 'num pool-slots' });
  const rateCell = h('td', { class: 'num pool-rate' });
  const meter = h('meter', { min: 0 });
  const usedText = h('span', { class: 'pool-used-text' });
  const usedCell = h('td', { class: 'pool-used' }, h('div', { class: 'pool-meter' }, meter, usedText));
  const waitingCell = h('td', { class: 'num pool-waiting' });
  const edit = h('button', { type: 'button', class: 'btn btn-small', 'aria-label': `Edit ${first.name}`, onclick: () => onEdit(row.pool) }, 'Edit');
  const del = h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Delete ${first.name}…`, onclick: () => onDelete(row.pool) }, 'Delete…');
  row.tr = h('tr', { 'data-pool': first.name },
    h('td', { class: 'mono pool-name' }, first.name),
    slotsCell, rateCell, usedCell, waitingCell,
    h('td', {}, h('div', { class: 'button-row' }, edit, del)));

  row.update = (pool) => {
    row.pool = pool;
    slotsCell.textContent = number(pool.slots);
    replace(rateCell, pool.perSecond === null || pool.perSecond === undefined
      ? h('span', { class: 'muted' }, 'no limit')
      : String(pool.perSecond));
    meter.max = Math.max(1, pool.slots);
    meter.value = Math.min(pool.used, meter.max);
    meter.setAttribute('aria-label', `${pool.name}: ${pool.used} of ${pool.slots} slots used`);
    usedText.textContent = `${number(pool.used)} of ${number(pool.slots)}`;
    usedCell.classList.toggle('pool-full', pool.used >= pool.slots);
    waitingCell.textContent = number(pool.waiting);
    waitingCell.classList.toggle('pool-queued', pool.waiting > 0);
  };
  return row;
}

/**
 * The form that creates or changes a pool (PUT replaces it): `edit(pool)` fills it with a
 * pool's values; `onSaved(pool)` once the server saved it.
 */
function poolForm({ onSaved }) {
  const errors = fieldErrors('pool', FIELDS);
  const { ids, described, field } = errors;

  const name = h('input', { id: ids.name, type: 'text', required: true, class: 'mono', placeholder: 'billing-api',
    autocomplete: 'off', spellcheck: 'false', maxlength: 100, 'aria-describedby': described('name', 'pool-name-hint') });
  const slots = h('input', { id: ids.slots, type: 'number', required: true, min: 1, step: 1, placeholder: '4',
    'aria-describedby': described('slots', 'pool-slots-hint') });
  const perSecond = h('input', { id: ids.perSecond, type: 'number', min: 0, step: 'any', placeholder: 'no limit',
    'aria-describedby': described('perSecond', 'pool-perSecond-hint') });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save pool');
  const clear = h('button', { type: 'button', class: 'btn', onclick: () => reset() }, 'Clear');

  const element = h('form', { class: 'card pool-form', 'aria-labelledby': 'save-pool', novalidate: true },
    h('h2', { id: 'save-pool' }, 'Create or change a pool'),
    errors.top,
    h('div', { class: 'pool-fields' },
      field('name', 'Name', name, 'Letters, digits, ., _ or -; an existing name changes that pool'),
      field('slots', 'Slots', slots, 'At most this many of its actions executing at once'),
      field('perSecond', 'Per second (optional)', perSecond, 'At most this many POSTs started a second; empty for no limit')),
    h('div', { class: 'button-row' }, submit, clear));

  function reset() {
    errors.clear();
    name.value = '';
    slots.value = '';
    perSecond.value = '';
  }

  /** A number field's value for the API: undefined when empty, the text when it is not a number. */
  function numberOf(input) {
    if (input.validity.badInput) return null;
    if (input.value.trim() === '') return undefined;
    return Number(input.value);
  }

  element.addEventListener('submit', async (e) => {
    e.preventDefault();
    errors.clear();
    const local = [];
    const poolName = name.value.trim();
    if (!poolName) local.push('name: required');
    const body = {};
    const s = numberOf(slots);
    if (s === null) local.push('slots: not a number');
    else if (s !== undefined) body.slots = s;
    const r = numberOf(perSecond);
    if (r === null) local.push('perSecond: not a number');
    else if (r !== undefined) body.perSecond = r;
    if (local.length) {
      errors.show(local);
      return;
    }
    submit.disabled = true;
    try {
      const saved = await put(`/pools/${encodeURIComponent(poolName)}`, body);
      toast(saved.status === 201 ? `Pool ${poolName} created` : `Pool ${poolName} changed`);
      reset();
      onSaved(saved.body);
    } catch (err) {
      errors.show(err instanceof ApiError ? err.errors : [err.message]);
    } finally {
      submit.disabled = false;
    }
  });

  /** Fills the form with a pool's values, to change them. */
  function edit(pool) {
    errors.clear();
    name.value = pool.name;
    slots.value = String(pool.slots);
    perSecond.value = pool.perSecond === null || pool.perSecond === undefined ? '' : String(pool.perSecond);
    element.scrollIntoView({ block: 'nearest' });
    slots.focus();
    slots.select();
  }

  return { element, edit };
}
