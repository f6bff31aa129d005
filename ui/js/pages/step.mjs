// /steps/{id}: a tree as a graph and as a diagram, with editing; start a run; the tree's runs.
import { ApiError, get, post, put } from '../api.mjs';
import { confirmDialog, h, replace, toast } from '../dom.mjs';
import { ago, duration, shortId, stateBadge } from '../format.mjs';
import { StepGraph } from '../graph-view.mjs';
import { navigate } from '../main.mjs';
import { payload, stepEditor } from '../step-editor.mjs';

export function render(main, { id }) {
  document.title = 'Step · aetr';
  let stopped = false;
  let timer = null;
  load();

  async function load() {
    let tree;
    try {
      tree = (await get(`/steps/${encodeURIComponent(id)}`)).body;
    } catch (e) {
      replace(main, h('h1', {}, 'Step not found'), h('p', {}, e.message, ' ', h('a', { href: '/steps' }, 'See all steps.')));
      return;
    }
    if (stopped) return;
    show(tree);
  }

  function show(tree) {
    document.title = `${tree.name} · aetr`;
    let dirty = false;
    const saveState = h('span', { class: 'save-state muted', role: 'status' }, 'Saved');
    const topErrors = h('ul', { class: 'errors', 'aria-live': 'polite' });
    const saveButton = h('button', { type: 'button', class: 'btn btn-primary', disabled: true }, 'Save');
    const editor = stepEditor(tree, {
      onChange: () => {
        dirty = true;
        saveButton.disabled = false;
        saveState.textContent = 'Unsaved changes';
        graph.schedule();
      },
      pickStep,
    });
    const graph = new StepGraph(tree, editor.element);

    async function save() {
      replace(topErrors);
      saveButton.disabled = true;
      saveState.textContent = 'Saving…';
      try {
        const saved = await put('/steps', payload(tree));
        dirty = false;
        saveState.textContent = 'Saved';
        toast('Saved');
        const fresh = (await get(`/steps/${saved.body.id}`)).body;
        if (saved.body.id !== id) navigate(`/steps/${saved.body.id}`, { replaceState: true });
        else show(fresh);
        return true;
      } catch (e) {
        saveButton.disabled = false;
        saveState.textContent = 'Not saved: see the errors';
        const unplaced = e instanceof ApiError ? editor.showErrors(e.errors) : [e.message];
        replace(topErrors, unplaced.map((m) => h('li', {}, m)));
        return false;
      }
    }
    saveButton.addEventListener('click', save);

    const inputId = 'run-input';
    const input = h('textarea', { id: inputId, class: 'mono', rows: 3 });
    input.value = '{}';
    const runErrors = h('ul', { id: 'run-input-errors', class: 'errors', 'aria-live': 'polite' });
    const hook = h('input', { id: 'run-notify', type: 'url', placeholder: 'https://client.example/hooks/aetr', 'aria-describedby': 'run-notify-errors' });
    const hookErrors = h('ul', { id: 'run-notify-errors', class: 'errors', 'aria-live': 'polite' });
    input.setAttribute('aria-describedby', 'run-input-errors');
    const startButton = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Start run');
    const dryButton = h('button', { type: 'button', class: 'btn', onclick: dryRun,
      title: 'A run in which no action calls anything: each api action completes at once, with a result you give or with its input' }, 'Dry run…');
    const schema = tree.inputSchema === undefined ? null
      : h('details', { class: 'input-schema' }, h('summary', { class: 'small' }, 'The input must match this schema'),
        h('pre', { class: 'mono small' }, JSON.stringify(tree.inputSchema, null, 2)));
    const runForm = h('form', { class: 'card', 'aria-labelledby': 'start-run' },
      h('h2', { id: 'start-run' }, 'Start a run'),
      h('div', { class: 'field' }, h('label', { for: inputId }, 'Input (JSON; anything else is sent as text)'), input, runErrors),
      schema,
      h('div', { class: 'field' }, h('label', { for: 'run-notify' }, 'Webhook URL, told when the run ends (optional)'), hook, hookErrors),
      h('div', { class: 'button-row' }, startButton, dryButton));
    runForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const body = {};
      if (hook.value.trim()) body.notify = { url: hook.value.trim() };
      startRun(body);
    });

    /** Asks for the results of the tree's api actions, and starts a dry run with them. */
    async function dryRun() {
      const names = apiActionNames(tree);
      const v = await confirmDialog({
        title: 'Dry run',
        message: 'No action calls anything, and no webhook is sent: each api action completes at once with the result given here (JSON, or text), or with its input when left empty; each wait ends at once; a manual action still waits for you. Mappers, reducers, Branches and Maps run for real.',
        confirm: 'Start dry run',
        fields: names.map((name, i) => ({ name: `result-${i}`, label: `${name}: result`, type: 'textarea' })),
      });
      if (!v) return;
      const results = {};
      names.forEach((name, i) => {
        const text = v[`result-${i}`];
        if (text.trim()) results[name] = text;
      });
      startRun({ dryRun: { results } });
    }

    /** Starts a run of the saved tree with the form's input and `extra` in the body. */
    async function startRun(extra) {
      replace(runErrors);
      replace(hookErrors);
      input.removeAttribute('aria-invalid');
      hook.removeAttribute('aria-invalid');
      if (dirty && !(await save())) {
        replace(runErrors, h('li', {}, 'Fix the tree\'s errors first: a run starts from the saved tree.'));
        return;
      }
      let value = input.value;
      try { value = JSON.parse(input.value); } catch { /* text */ }
      try {
        const started = await post(`/runs/step/${id}`, { input: value, ...extra });
        navigate(`/runs/${started.body.id}`);
      } catch (err) {
        const errors = err.errors || [err.message];
        // Errors that name places in the input (it does not match the schema) go under it, those
        // of the webhook under the webhook's URL.
        const aboutHook = errors.filter((m) => m.startsWith('notify'));
        if (errors.some((m) => /^input[.:[]/.test(m))) input.setAttribute('aria-invalid', 'true');
        if (aboutHook.length) hook.setAttribute('aria-invalid', 'true');
        replace(hookErrors, aboutHook.map((m) => h('li', {}, m)));
        replace(runErrors, errors.filter((m) => !m.startsWith('notify')).map((m) => h('li', {}, m)));
      }
    }

    const runsBox = h('tbody');
    const runsSection = h('section', { class: 'card', 'aria-labelledby': 'tree-runs' },
      h('div', { class: 'card-head' }, h('h2', { id: 'tree-runs' }, 'Runs of this tree'),
        h('a', { href: `/runs?stepId=${id}` }, 'All runs of this tree')),
      h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, ['Run', 'State', 'Started', 'Took'].map((c) => h('th', { scope: 'col' }, c)))),
        runsBox));

    replace(main,
      h('div', { class: 'page-head' },
        h('p', { class: 'crumbs' }, h('a', { href: '/steps' }, 'Steps'), ' / '),
        h('div', { class: 'title-row' }, h('h1', {}, tree.name), h('span', { class: 'spacer' }),
          h('button', { type: 'button', class: 'btn', onclick: () => cloneTree(tree) }, 'Clone as new…')),
        h('p', { class: 'muted mono small' }, tree.id)),
      graph.element,
      h('div', { class: 'step-layout' },
        h('section', { class: 'card editor-card', 'aria-labelledby': 'tree-title' },
          h('div', { class: 'card-head sticky' }, h('h2', { id: 'tree-title' }, 'Tree'), h('span', { class: 'spacer' }), saveState, saveButton),
          topErrors, editor.element),
        h('div', { class: 'side' }, runForm, runsSection)));
    loadRuns(runsBox);
  }

  async function loadRuns(box) {
    try {
      const runs = (await get(`/runs?stepId=${id}&limit=10`)).body;
      if (stopped) return;
      replace(box, runs.length ? runs.map((r) => h('tr', {},
        h('td', {}, h('a', { href: `/runs/${r.id}`, 'aria-label': `Run ${r.id}` }, shortId(r.id))),
        h('td', {}, stateBadge(r.state)),
        h('td', {}, ago(r.createdAt)),
        h('td', {}, r.completedAt ? duration(r.completedAt - r.createdAt) : '…'))) : h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No runs yet.')));
      const live = runs.some((r) => r.state === 'Pending' || r.state === 'Executing');
      timer = setTimeout(() => loadRuns(box), live ? 1000 : 5000);
    } catch { /* shown on the next try */ timer = setTimeout(() => loadRuns(box), 5000); }
  }

  return () => { stopped = true; clearTimeout(timer); };
}

/** The names of a tree's api actions, each once, in tree order: a dry run's results are by name. */
function apiActionNames(tree) {
  const names = new Set();
  const visit = (step) => {
    if (step.stepType === 'Action' && step.action?.type === 'api') names.add(step.name);
    for (const child of step.children || []) visit(child);
  };
  visit(tree);
  return [...names];
}

/** Asks for a name, copies the whole tree under it with new ids, and opens the copy. */
async function cloneTree(tree) {
  const v = await confirmDialog({
    title: `Clone ${tree.name}`,
    message: 'Every step of the tree is copied with a new id, so that the copy can be changed without changing this tree. Its runs stay with this tree.',
    confirm: 'Clone',
    fields: [{ name: 'name', label: 'Name of the copy', value: `${tree.name} (copy)` }],
  });
  if (!v) return;
  try {
    const copy = await post(`/steps/${tree.id}/clone`, { name: v.name });
    toast(`Cloned as ${v.name}`);
    navigate(`/steps/${copy.body.id}`);
  } catch (e) {
    toast(`Not cloned: ${e.message}`, 'error');
  }
}

/** Asks for a stored step to add as a child; resolves to its fat tree, or null. */
async function pickStep() {
  let steps;
  try {
    steps = (await get('/steps')).body;
  } catch (e) {
    toast(`Could not list the steps: ${e.message}`, 'error');
    return null;
  }
  if (!steps.length) { toast('There are no stored steps yet.'); return null; }
  const picked = await confirmDialog({
    title: 'Add a stored step',
    message: 'The step is added by reference: it is not changed, and edits to it elsewhere show here too.',
    confirm: 'Add',
    fields: [{ name: 'id', label: 'Step', type: 'select', options: steps.map((s) => [s.id, `${s.name} (${s.stepType})`]) }],
  });
  if (!picked) return null;
  try {
    return (await get(`/steps/${picked.id}`)).body;
  } catch (e) {
    toast(e.message, 'error');
    return null;
  }
}
