// Trying a script on real data: a node's mapper, reducer, Branch or items function, run by
// POST /api/v1/scripts/try, and saved into its step.
import { get, post, put } from './api.mjs';
import { codeEditor } from './code-editor.mjs';
import { h, replace, toast } from './dom.mjs';
import { duration, textBlock } from './format.mjs';

/** Said of every kind: what Run and Save do. */
const ABOUT_BUTTONS = 'Run tries it here and changes nothing in the run (Ctrl+Enter runs it too). '
  + 'Save into the tree writes it into the step\'s definition, for the runs started, or retried on the latest definitions, after.';

/**
 * The kinds of script: what each is called, what it gets (`about`, `inputLabel`), its source
 * in a node's details (`script`), its data there (`data`; none for a reducer, whose children's
 * outputs the server reads), and how it is set on a slim step (`store`; not for a mapper, which
 * is on its parent's link).
 */
const KINDS = {
  mapper: {
    name: 'mapper',
    about: 'It gets this node\'s result, as its service returned it, and what it returns is passed on.',
    inputLabel: 'Input: the node\'s result (raw text)',
    script: (d) => d.mapper.js,
    data: (d) => d.result,
  },
  reducer: {
    name: 'reducer',
    about: 'It gets what this node\'s children passed on, in order (null: nothing), and what it returns is the node\'s result.',
    inputLabel: 'Input: the children\'s outputs (a JSON array of texts, null for none)',
    script: (d) => d.reducer.js,
    store: (slim, js) => { slim.reducer = { type: 'js', js }; },
  },
  branch: {
    name: 'Branch function',
    about: 'It gets this node\'s input and returns the name or 0-based index of the child to run (null: none).',
    inputLabel: 'Input: the node\'s input (raw text)',
    script: (d) => d.branch.js,
    data: (d) => d.input,
    store: (slim, js) => { slim.branch = { type: 'js', js }; },
  },
  items: {
    name: 'items function',
    about: 'It gets this node\'s input and returns the list of items: an array, or the JSON text of one.',
    inputLabel: 'Input: the node\'s input (raw text)',
    script: (d) => d.map.items,
    data: (d) => d.input,
    store: (slim, js) => { slim.map = { ...slim.map, items: js }; },
  },
};

/**
 * The "Try…" button of a node's script of `kind` (mapper, reducer, branch, items): it opens
 * the script on the node's data in a dialog. `onActed()` after the run was retried from there.
 */
export function tryButton(kind, runId, detail, { onActed }) {
  const button = h('button', {
    type: 'button', class: 'btn btn-small try-btn', 'aria-label': `Try the ${KINDS[kind].name}`, 'aria-haspopup': 'dialog',
    onclick: () => openTry(kind, runId, detail, onActed, button),
  }, 'Try…');
  return button;
}

/** The dialog: the script in an editor, its input, Run, Save into the tree, and what they gave. */
function openTry(kind, runId, detail, onActed, opener) {
  const what = KINDS[kind];
  let js = what.script(detail);
  const editor = codeEditor({ id: 'try-js', value: js, label: `The ${what.name}`, onChange: (v) => { js = v; } });
  const input = inputField(kind, detail);
  const outcome = h('div', { class: 'try-outcome', role: 'status', 'aria-live': 'polite', 'aria-label': 'What it gave' });
  const saveBox = h('div', { class: 'try-save', role: 'status', 'aria-live': 'polite', 'aria-label': 'Saving' });
  const runBtn = h('button', { type: 'button', class: 'btn btn-primary', onclick: run }, 'Run');
  const saveBtn = h('button', { type: 'button', class: 'btn', onclick: save }, 'Save into the tree');
  const closeBtn = h('button', { type: 'button', class: 'btn', onclick: close }, 'Close');
  const dialog = h('dialog', { class: 'dialog try-dialog', 'aria-labelledby': 'try-title', 'aria-describedby': 'try-about' },
    h('h2', { id: 'try-title' }, `Try the ${what.name} of “${detail.stepTree.name}”`),
    h('p', { id: 'try-about', class: 'muted small' }, what.about, ' ', ABOUT_BUTTONS),
    h('div', { class: 'try-grid' },
      h('div', { class: 'field' }, h('span', { class: 'try-label' }, 'Script'), editor.element),
      input.element),
    h('div', { class: 'button-row try-buttons' }, runBtn, saveBtn, h('span', { class: 'spacer' }), closeBtn),
    outcome, saveBox);
  dialog.addEventListener('cancel', (e) => { e.preventDefault(); close(); });
  dialog.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); run(); }
  });
  document.body.append(dialog);
  dialog.showModal();
  editor.focus();
  if (kind === 'reducer') readChildrenOutputs();

  /** A reducer's input is its children's outputs, which the server reads (and runs it on). */
  async function readChildrenOutputs() {
    busy(runBtn, outcome, 'Reading the children\'s outputs…');
    try {
      const answer = (await post('/scripts/try', { kind, js, node: detail.id })).body;
      input.fill(answer.input);
      showOutcome(outcome, answer, answer.error ? 'On its children\'s outputs, it failed' : 'On its children\'s outputs, it returned');
    } catch (e) {
      input.fill([]);
      showOutcome(outcome, { error: e.message }, 'Could not read its children\'s outputs');
    } finally {
      runBtn.disabled = false;
    }
  }

  async function run() {
    if (runBtn.disabled) return;
    let data;
    try {
      data = input.read();
    } catch (e) {
      showOutcome(outcome, { error: e.message }, 'Not run');
      return;
    }
    busy(runBtn, outcome, 'Running…');
    try {
      showOutcome(outcome, (await post('/scripts/try', { kind, js, input: data })).body);
    } catch (e) {
      showOutcome(outcome, { error: e.message }, 'Not run');
    } finally {
      runBtn.disabled = false;
    }
  }

  async function save() {
    busy(saveBtn, saveBox, 'Saving…');
    try {
      const stepName = await saveScript(kind, runId, detail, js);
      replace(saveBox, h('p', { class: 'try-saved' }, icon('✓'), `Saved into the step “${stepName}”. This run keeps the tree it started with.`),
        await retryOffer(runId, onActed, close));
    } catch (e) {
      replace(saveBox, h('p', { class: 'try-not-saved' }, icon('✕'), 'Not saved:'),
        h('ul', { class: 'errors' }, (e.errors || [e.message]).map((m) => h('li', {}, m))));
    } finally {
      saveBtn.disabled = false;
    }
  }

  function close() {
    dialog.close();
    dialog.remove();
    // Back to the button that opened it, or, when the details were drawn again since, to them.
    (opener.isConnected ? opener : document.getElementById('node-title'))?.focus();
  }
}

/** A sign before a verdict, which says it in words too. */
function icon(sign) {
  return h('span', { class: 'try-icon', 'aria-hidden': 'true' }, `${sign} `);
}

/** Disables `button` while `box` says what is under way. */
function busy(button, box, message) {
  button.disabled = true;
  box.classList.remove('try-ok', 'try-failed');
  delete box.dataset.outcome;
  replace(box, h('p', { class: 'muted' }, message));
}

/**
 * The input box: for a reducer, the JSON array of its children's outputs; else the raw text
 * that the script gets as its data, with a box to tick for no data (null). Returns
 * {element, read(), fill(value)}; `read()` throws when a reducer's input is not a JSON array.
 */
function inputField(kind, detail) {
  const what = KINDS[kind];
  const textarea = h('textarea', { id: 'try-input', class: 'mono', rows: 8, spellcheck: 'false' });
  const label = h('label', { for: 'try-input' }, what.inputLabel);
  if (kind === 'reducer') {
    textarea.value = 'reading…';
    textarea.addEventListener('input', () => textarea.removeAttribute('aria-invalid'));
    return {
      element: h('div', { class: 'field' }, label, textarea),
      read: () => {
        try {
          const value = JSON.parse(textarea.value);
          if (Array.isArray(value)) return value;
        } catch { /* said below */ }
        textarea.setAttribute('aria-invalid', 'true');
        textarea.focus();
        throw new Error('The input is not a JSON array, such as ["a", null, "{\\"n\\": 1}"].');
      },
      fill: (value) => { textarea.value = JSON.stringify(value, null, 2); },
    };
  }
  const none = h('input', { id: 'try-input-none', type: 'checkbox', onchange: () => { textarea.disabled = none.checked; } });
  const fill = (value) => {
    none.checked = value === null || value === undefined;
    textarea.disabled = none.checked;
    textarea.value = none.checked ? '' : value;
  };
  fill(what.data(detail));
  return {
    element: h('div', { class: 'field' }, label, textarea,
      h('div', { class: 'field inline' }, none, h('label', { for: 'try-input-none' }, 'No input (null)'))),
    read: () => (none.checked ? null : textarea.value),
    fill,
  };
}

/**
 * Shows in `box` what the script gave: `{result, tookMs}` or `{error, tookMs}` (from the
 * server, or the reason it could not run), under `verdict` (by default "Returned" or "Failed").
 */
function showOutcome(box, answer, verdict) {
  const failed = typeof answer.error === 'string';
  box.classList.remove('try-ok', 'try-failed');
  box.classList.add(failed ? 'try-failed' : 'try-ok');
  box.dataset.outcome = failed ? 'error' : 'result';
  const took = typeof answer.tookMs === 'number' ? ` in ${duration(answer.tookMs)}` : '';
  replace(box,
    h('p', { class: 'try-verdict' }, icon(failed ? '✕' : '✓'),
      `${verdict || (failed ? 'Failed' : 'Returned')}${took}:`),
    failed
    ? h('pre', { class: 'text-block try-error', 'aria-label': 'Its error' }, answer.error)
    : textBlock(answer.result, { label: 'What it returned', empty: 'no result' }));
}

/**
 * Saves `js` into the step tree: a mapper on its parent step's link to this node's step (a
 * Map's one link, or the link at the node's index), anything else on the node's own step.
 * Resolves to the name of the step changed; throws the API's error (its `errors`: the reasons).
 */
async function saveScript(kind, runId, detail, js) {
  if (kind !== 'mapper') {
    const slim = (await get(`/steps/${detail.stepTree.id}/slim`)).body;
    KINDS[kind].store(slim, js);
    await put('/steps/slim', slim);
    return slim.name;
  }
  const parent = (await get(`/runs/${runId}/nodes/${detail.parent}`)).body;
  const slim = (await get(`/steps/${parent.stepTree.id}/slim`)).body;
  const link = slim.children[parent.stepTree.stepType === 'Map' ? 0 : detail.index];
  if (!link || link.id !== detail.stepTree.id) {
    throw new Error(`the step “${slim.name}” has changed since this run: its child ${detail.index} is no longer “${detail.stepTree.name}”. Change its mapper in the tree editor.`);
  }
  link.mapper = { type: 'js', js };
  await put('/steps/slim', slim);
  return slim.name;
}

/**
 * After a save: a failed run can be retried on the latest definitions, which then have the
 * script; the button does it, closes the dialog and calls `onActed()`. Null otherwise.
 */
async function retryOffer(runId, onActed, close) {
  let state;
  try {
    state = (await get(`/runs/${runId}?depth=0`)).body.state;
  } catch {
    return null;
  }
  if (state !== 'Error') return null;
  const button = h('button', { type: 'button', class: 'btn btn-primary', onclick: async () => {
    button.disabled = true;
    try {
      await post(`/runs/${runId}/retry?definition=latest`);
      toast('Run retried on the latest definitions');
      close();
      onActed();
    } catch (e) {
      toast(`Not retried: ${e.message}`, 'error');
      button.disabled = false;
    }
  } }, 'Retry on the latest definitions');
  return h('div', { class: 'button-row' }, button);
}
