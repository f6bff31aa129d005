// /schedules: every schedule (its step, cron expression and zone, whether it is paused, when
// it fires next, the run it started last), refreshed while shown; pause, resume and delete
// one; and a form to create one, with the server's errors next to their fields.
import { api, ApiError, get, post, put } from '../api.mjs';
import { confirmDialog, h, replace, toast } from '../dom.mjs';
import { ago, duration, shortId, time } from '../format.mjs';
import { fieldErrors, keyedRows } from '../forms.mjs';

/** Schedules and steps fetched per call: the API's largest page. */
const PAGE = 1000;
const REFRESH_MS = 2000;
/** The form's fields, named as the API names them (and its errors start with). */
const FIELDS = ['stepId', 'cron', 'timezone', 'input', 'overlap'];

export function render(main) {
  document.title = 'Schedules · aetr';
  let stopped = false;
  let timer = null;
  let generation = 0;
  /** Step id → name, for the table; filled from GET /steps, then one step at a time. */
  const names = new Map();
  const asked = new Set();
  const body = h('tbody');
  const rows = keyedRows(body, (s) => s.id,
    (s) => scheduleRow(s, { onPause: toggle, onDelete: remove }),
    (row, s) => row.update(s, names.get(s.stepId)));
  const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
  const form = createForm({ names, onCreated: () => refresh() });

  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Schedules'),
      h('p', { class: 'muted' }, 'A schedule starts a run of a step on each tick of a cron expression, in a time zone.')),
    form.element,
    h('section', { class: 'card', 'aria-labelledby': 'all-schedules' },
      h('div', { class: 'card-head' }, h('h2', { id: 'all-schedules' }, 'All schedules')),
      h('table', { class: 'table schedules-table' },
        h('thead', {}, h('tr', {}, ['Step', 'When', 'State', 'Next run', 'Last run', 'Actions']
          .map((c) => h('th', { scope: 'col' }, c)))),
        body),
      status));

  /** Every schedule, page after page. */
  async function all() {
    const list = [];
    let after = null;
    do {
      const q = new URLSearchParams({ limit: PAGE });
      if (after) q.set('after', after);
      const page = await get(`/schedules?${q}`);
      list.push(...page.body);
      after = page.next;
    } while (after);
    return list;
  }

  /** Loads the schedules and draws them; again every few seconds while the page is shown. */
  async function refresh() {
    clearTimeout(timer);
    const mine = ++generation;
    try {
      const list = await all();
      if (stopped || mine !== generation) return;
      draw(list);
      status.textContent = list.length ? '' : 'No schedules yet: create one above.';
    } catch (e) {
      if (stopped || mine !== generation) return;
      status.textContent = `Could not load the schedules: ${e.message}`;
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  /** Draws the schedules, and asks for the names of steps that the step list lacked. */
  function draw(list) {
    rows.draw(list);
    for (const s of list) if (!names.has(s.stepId)) askName(s.stepId);
  }

  /** The name of a step that the step picker's list did not have. */
  async function askName(stepId) {
    if (asked.has(stepId)) return;
    asked.add(stepId);
    try {
      const step = (await get(`/steps/${stepId}/slim`)).body;
      names.set(stepId, step.name);
      if (stopped) return;
      for (const row of rows.rows.values()) row.update(row.schedule, names.get(row.schedule.stepId));
    } catch { /* its short id stays */ }
  }

  /** Pause or resume: the whole definition again, with `enabled` flipped. */
  async function toggle(s) {
    const enabled = !s.enabled;
    try {
      const saved = (await put(`/schedules/${s.id}`, definition(s, { enabled }))).body;
      rows.rows.get(s.id)?.update(saved, names.get(saved.stepId));
      toast(enabled ? 'Schedule resumed' : 'Schedule paused');
    } catch (e) {
      toast(`Not ${enabled ? 'resumed' : 'paused'}: ${e.message}`, 'error');
    }
    refresh();
  }

  async function remove(s) {
    const ok = await confirmDialog({
      title: 'Delete this schedule?',
      message: `“${s.cron}” (${s.timezone}) starts no more runs of ${names.get(s.stepId) || 'its step'}. The runs it started stay. This cannot be undone.`,
      confirm: 'Delete schedule',
      danger: true,
    });
    if (!ok) return;
    try {
      await api('DELETE', `/schedules/${s.id}`);
      rows.remove(s.id);
      toast('Schedule deleted');
    } catch (e) {
      toast(`Not deleted: ${e.message}`, 'error');
    }
    refresh();
  }

  form.loadSteps().then(() => { if (!stopped) refresh(); });
  return () => { stopped = true; clearTimeout(timer); };
}

/** A schedule's definition, as PUT wants it, with `changes`. */
function definition(s, changes) {
  const { stepId, cron, timezone, input, overlap, enabled } = s;
  return { stepId, cron, timezone, input, overlap, enabled, ...changes };
}

/** "in 3.2 s", or "due" once the time has come. */
function fromNow(epochMs) {
  const ms = epochMs - Date.now();
  return ms > 0 ? `in ${duration(ms)}` : 'due';
}

/** A schedule's row; `update(s, stepName)` redraws its cells and keeps its buttons. */
function scheduleRow(first, { onPause, onDelete }) {
  const row = { schedule: first };
  const stepCell = h('td');
  const whenCell = h('td');
  const stateCell = h('td');
  const nextCell = h('td', { class: 'next-fire' });
  const lastCell = h('td', { class: 'last-run' });
  const pause = h('button', { type: 'button', class: 'btn btn-small', onclick: () => onPause(row.schedule) });
  const del = h('button', { type: 'button', class: 'btn btn-small btn-danger', onclick: () => onDelete(row.schedule) }, 'Delete…');
  row.tr = h('tr', { 'data-schedule-id': first.id },
    stepCell, whenCell, stateCell, nextCell, lastCell,
    h('td', {}, h('div', { class: 'button-row' }, pause, del)));

  row.update = (s, stepName) => {
    row.schedule = s;
    const what = `${s.cron} (${s.timezone}) of ${stepName || s.stepId}`;
    replace(stepCell, h('a', { href: `/steps/${s.stepId}` }, stepName || shortId(s.stepId)));
    replace(whenCell,
      h('code', { class: 'cron' }, s.cron), ' ', h('span', { class: 'muted' }, s.timezone),
      s.overlap === 'skip' ? [' ', h('span', { class: 'chip', title: 'A tick is skipped while the previous run is still going' }, 'overlap: skip')] : null);
    replace(stateCell, s.enabled
      ? h('span', { class: 'badge schedule-active' }, 'Active')
      : h('span', { class: 'badge schedule-paused' }, 'Paused'));
    replace(nextCell, s.nextFireAt
      ? [h('span', { title: new Date(s.nextFireAt).toLocaleString() }, time(s.nextFireAt)), ' ',
        h('span', { class: 'muted small' }, fromNow(s.nextFireAt))]
      : h('span', { class: 'muted', title: s.enabled ? 'No tick is left' : 'Paused' }, '—'));
    replace(lastCell,
      s.lastRunId
        ? [h('a', { href: `/runs/${s.lastRunId}`, 'aria-label': `Run ${s.lastRunId}` }, shortId(s.lastRunId)),
          s.lastFireAt ? [' ', h('span', { class: 'muted small', title: new Date(s.lastFireAt).toLocaleString() }, ago(s.lastFireAt))] : null]
        : h('span', { class: 'muted' }, 'none yet'),
      s.lastError ? h('p', { class: 'schedule-error small' }, s.lastError) : null);
    pause.textContent = s.enabled ? 'Pause' : 'Resume';
    pause.setAttribute('aria-label', `${s.enabled ? 'Pause' : 'Resume'} ${what}`);
    del.setAttribute('aria-label', `Delete ${what}…`);
  };
  return row;
}

/**
 * The form that creates a schedule. `loadSteps()` fills its step picker (and `names`);
 * `onCreated(id)` once the server created one.
 */
function createForm({ names, onCreated }) {
  const errors = fieldErrors('schedule', FIELDS);
  const { ids, described, field } = errors;

  const step = h('select', { id: ids.stepId, required: true, 'aria-describedby': described('stepId') },
    h('option', { value: '' }, 'Loading the steps…'));
  const cron = h('input', { id: ids.cron, type: 'text', required: true, class: 'mono', placeholder: '0 9 * * MON-FRI',
    autocomplete: 'off', spellcheck: 'false', 'aria-describedby': described('cron', 'schedule-cron-hint') });
  const timezone = h('input', { id: ids.timezone, type: 'text', placeholder: 'UTC', autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': described('timezone', 'schedule-timezone-hint') });
  const input = h('textarea', { id: ids.input, class: 'mono', rows: 3, placeholder: '{}', 'aria-describedby': described('input') });
  const overlap = h('select', { id: ids.overlap, 'aria-describedby': described('overlap') },
    h('option', { value: 'allow' }, 'allow: a run on every tick'),
    h('option', { value: 'skip' }, 'skip: not while the last run is going'));
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create schedule');

  const element = h('form', { class: 'card schedule-form', 'aria-labelledby': 'create-schedule', novalidate: true },
    h('h2', { id: 'create-schedule' }, 'Create a schedule'),
    errors.top,
    h('div', { class: 'schedule-fields' },
      field('stepId', 'Step', step),
      field('cron', 'Cron expression', cron,
        'minute hour day-of-month month day-of-week, or 6 fields with seconds first'),
      field('timezone', 'Time zone', timezone, 'An IANA name, e.g. Europe/Berlin; UTC when empty'),
      field('overlap', 'Overlap', overlap)),
    field('input', 'Input of each run (JSON; anything else is sent as text; optional)', input),
    h('div', { class: 'button-row' }, submit));

  element.addEventListener('submit', async (e) => {
    e.preventDefault();
    errors.clear();
    // An empty step or cron is left out: the server says it is required.
    const body = { overlap: overlap.value };
    if (step.value) body.stepId = step.value;
    if (cron.value.trim()) body.cron = cron.value.trim();
    if (timezone.value.trim()) body.timezone = timezone.value.trim();
    if (input.value.trim()) {
      let value = input.value;
      try { value = JSON.parse(input.value); } catch { /* sent as text */ }
      body.input = value;
    }
    submit.disabled = true;
    try {
      const made = await post('/schedules', body);
      toast('Schedule created');
      cron.value = '';
      onCreated(made.body.id);
    } catch (err) {
      errors.show(err instanceof ApiError ? err.errors : [err.message]);
    } finally {
      submit.disabled = false;
    }
  });

  async function loadSteps() {
    const steps = [];
    try {
      let after = null;
      do {
        const q = new URLSearchParams({ limit: PAGE });
        if (after) q.set('after', after);
        const page = await get(`/steps?${q}`);
        steps.push(...page.body);
        after = page.next;
      } while (after);
    } catch (e) {
      replace(step, h('option', { value: '' }, 'The steps could not be loaded'));
      replace(errors.top, h('li', {}, `Could not load the steps: ${e.message}`));
      return;
    }
    for (const s of steps) names.set(s.id, s.name);
    steps.sort((a, b) => a.name.localeCompare(b.name));
    replace(step, steps.length
      ? [h('option', { value: '' }, 'Choose a step…'), steps.map((s) => h('option', { value: s.id }, `${s.name} (${s.stepType})`))]
      : h('option', { value: '' }, 'No steps yet: create a tree first'));
  }

  return { element, loadSteps };
}
