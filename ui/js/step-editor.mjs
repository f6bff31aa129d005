// The editor of a step tree: a diagram of nested steps whose every part can be edited. It edits
// the fat tree of `GET /steps/{id}` in place; `payload(tree)` is what `PUT /steps` takes.
import { api } from './api.mjs';
import { codeEditor } from './code-editor.mjs';
import { h, replace } from './dom.mjs';

const NEW_MAPPER = 'function apply(data) {\n  return data;\n}';
const NEW_REDUCER = 'function apply(results) {\n  return JSON.stringify(results);\n}';
const NEW_BRANCH = 'function apply(data) {\n  // the name (or 0-based index) of the child to run; null for none\n  return null;\n}';
const NEW_ITEMS = 'function apply(data) {\n  // the list of items: an array, or the JSON text of one\n  return JSON.parse(data);\n}';
const NEW_SCHEMA = '{\n  "type": "object",\n  "required": [],\n  "properties": {}\n}';
const STEP_TYPES = ['Sequential', 'Parallel', 'Branch', 'Map', 'Action'];
const ABOUT_CHILDREN = {
  Sequential: 'Runs its children in order.',
  Parallel: 'Runs its children at once.',
  Branch: 'Runs the one child its function names; the others are skipped.',
  Map: 'Runs its one child once per item of its input list, in parallel (at most maxConcurrency at once).',
};
/** The parents that reduce their children's results, and their reducer when none is chosen. */
const DEFAULT_REDUCER = { Parallel: 'last', Map: 'collect' };
const NEW_ACTION = () => ({ type: 'api', url: 'http://127.0.0.1:8000/' });

let uid = 0;
const nextId = (what) => `f${++uid}-${what}`;

/**
 * Makes the editor. `onChange()` is called after every edit. Returns {element, showErrors}:
 * showErrors(["children[0].mapper.js: ...", ...]) puts each error next to its field and
 * returns those that fit no field.
 */
export function stepEditor(tree, { onChange, pickStep }) {
  const element = h('div', { class: 'tree-editor' });
  /** Error boxes by field path ("" is the root step, "children[1].action.url", ...). */
  let fields = new Map();
  /** The pools' names, suggested in an api action's Pool field; none if they cannot be fetched. */
  const poolsId = nextId('pools');
  const poolNames = h('datalist', { id: poolsId });
  api('GET', '/pools')
    .then(({ body }) => replace(poolNames, (Array.isArray(body) ? body : []).map((p) => h('option', { value: p.name }))))
    .catch(() => { /* no suggestions */ });

  function changed(rerender = false) {
    if (rerender) draw();
    onChange();
  }

  function draw() {
    fields = new Map();
    replace(element, poolNames, stepCard(tree, '', null, null));
  }

  function field(path, box) {
    fields.set(path, box);
    return box;
  }

  function errorBox(path) {
    return field(path, h('ul', { class: 'errors field-errors', 'data-path': path }));
  }

  function stepCard(step, path, parent, index) {
    const prefix = path ? `${path}.` : '';
    const nameId = nextId('name');
    const typeId = nextId('type');
    const name = h('input', { id: nameId, type: 'text', value: step.name || '', class: 'step-name', 'aria-label': 'Step name', disabled: step._ref });
    name.addEventListener('input', () => { step.name = name.value; changed(); });
    const type = h('select', { id: typeId, 'aria-label': `Kind of ${step.name || 'step'}`, disabled: step._ref },
      STEP_TYPES.map((t) => h('option', { value: t, selected: step.stepType === t }, t)));
    type.addEventListener('change', () => { setType(step, type.value); changed(true); });

    const tools = [];
    if (parent) {
      const siblings = parent.children;
      tools.push(
        h('button', { type: 'button', class: 'icon-btn', 'aria-label': `Move ${step.name} up`, title: 'Move up', disabled: index === 0,
          onclick: () => { move(siblings, index, index - 1); changed(true); } }, '↑'),
        h('button', { type: 'button', class: 'icon-btn', 'aria-label': `Move ${step.name} down`, title: 'Move down', disabled: index === siblings.length - 1,
          onclick: () => { move(siblings, index, index + 1); changed(true); } }, '↓'),
        h('button', { type: 'button', class: 'icon-btn danger', 'aria-label': `Remove ${step.name}`, title: 'Remove from this parent',
          onclick: () => { siblings.splice(index, 1); changed(true); } }, '✕'));
    }
    const head = h('div', { class: 'step-head' },
      parent ? h('span', { class: 'drag-handle', title: 'Drag to reorder', 'aria-hidden': 'true' }, '⠿') : null,
      h('span', { class: `type type-${step.stepType}` }, step.stepType),
      name, type,
      step._ref ? h('span', { class: 'muted small' }, 'stored step, kept as it is') : null,
      h('span', { class: 'spacer' }), tools);

    const card = h('div', { class: `step-card step-${step.stepType}`, 'data-path': path, 'data-name': step.name || '' },
      head, errorBox(path));
    if (parent) makeDraggable(card, head, parent.children, index);
    if (parent) card.append(linkMapper(step, `${prefix}mapper`));
    if (step._ref) return card;
    card.append(schemaField(step, `${prefix}inputSchema`));
    if (step.stepType === 'Action') {
      card.append(actionFields(step, `${prefix}action`));
    } else {
      if (step.stepType === 'Map') card.append(mapFields(step, `${prefix}map`));
      if (step.stepType in DEFAULT_REDUCER) card.append(reducerField(step, `${prefix}reducer`));
      if (step.stepType === 'Branch') card.append(branchField(step, `${prefix}branch`));
      card.append(childrenList(step, prefix));
    }
    return card;
  }

  /** Makes `step` a `type`: it keeps what that type has, and gets the defaults of the rest. */
  function setType(step, type) {
    step.stepType = type;
    if (type === 'Action') {
      delete step.children;
      step.action = step.action || NEW_ACTION();
    } else {
      delete step.action;
      step.children = step.children || [];
    }
    if (type in DEFAULT_REDUCER) step.reducer = step.reducer || { type: DEFAULT_REDUCER[type] };
    else delete step.reducer;
    if (type === 'Branch') step.branch = step.branch || { type: 'js', js: NEW_BRANCH };
    else delete step.branch;
    if (type === 'Map') {
      step.map = step.map || {};
      if (!step.children.length) step.children.push(newStep('Action', 1));
    } else {
      delete step.map;
    }
    return step;
  }

  function childrenList(step, prefix) {
    const list = h('ol', { class: `children children-${step.stepType}`, 'aria-label': `Children of ${step.name}` });
    step.children.forEach((child, i) => {
      list.append(h('li', { class: 'child' }, stepCard(child, `${prefix}children[${i}]`, step, i)));
    });
    const add = (what) => () => {
      step.children.push(newStep(what, step.children.length + 1));
      changed(true);
    };
    // A Map has exactly one child: with it, there is nothing to add.
    const full = step.stepType === 'Map' && step.children.length > 0;
    const adder = (label, onclick) => h('button', { type: 'button', class: 'btn btn-small', disabled: full, onclick }, label);
    const adders = h('div', { class: 'adders' },
      h('span', { class: 'muted small' }, ABOUT_CHILDREN[step.stepType]),
      full ? oneChildNote(step.children.length) : null,
      adder(`Add action to ${step.name}`, add('Action')),
      STEP_TYPES.filter((kind) => kind !== 'Action').map((kind) => adder(`+ ${kind}`, add(kind))),
      adder('+ Stored step…', async () => {
        const picked = await pickStep();
        if (picked) { step.children.push({ ...picked, _ref: true }); changed(true); }
      }));
    return h('div', { class: 'children-box' }, errorBox(`${prefix}children`), list, adders);
  }

  function newStep(kind, n) {
    return setType({ name: `${kind.toLowerCase()}-${n}` }, kind);
  }

  /** A script that a step may have or not: a button adds or removes it, an editor edits it. */
  function optionalScript(path, { name, about, none, label, fresh, get, set }) {
    const has = get() !== undefined;
    const toggle = h('button', { type: 'button', class: 'btn btn-small', 'aria-expanded': String(has),
      onclick: () => { set(has ? undefined : fresh); changed(true); } }, has ? `Remove ${name}` : `Add ${name}`);
    const box = h('div', { class: 'script-box' },
      h('div', { class: 'script-head' }, h('span', { class: 'small muted' }, has ? about : none), toggle));
    if (has) {
      box.append(codeEditor({ id: nextId(name.replace(/ /g, '-')), value: get(), label,
        onChange: (js) => { set(js); changed(); } }).element);
    }
    box.append(errorBox(path));
    return box;
  }

  function linkMapper(step, path) {
    return optionalScript(path, {
      name: 'mapper', label: `Mapper of ${step.name}`, fresh: NEW_MAPPER,
      about: 'Mapper: transforms this step\'s result before it moves on', none: 'No mapper',
      get: () => (step.mapper && step.mapper.type === 'js' ? step.mapper.js : undefined),
      set: (js) => { if (js === undefined) delete step.mapper; else step.mapper = { type: 'js', js }; },
    });
  }

  /** A step's input schema: JSON that the editor parses as it is typed, and says so if it is not. */
  function schemaField(step, path) {
    const local = h('ul', { class: 'errors field-errors' });
    const box = optionalScript(path, {
      name: 'input schema', label: `Input schema of ${step.name}`, fresh: NEW_SCHEMA,
      about: 'Input schema: a JSON Schema (draft 2020-12) that the input must match, or the step fails before it does anything',
      none: 'No input schema',
      get: () => (step.inputSchema === undefined ? undefined : schemaText(step.inputSchema)),
      set: (text) => {
        replace(local);
        if (text === undefined) { delete step.inputSchema; return; }
        try {
          step.inputSchema = JSON.parse(text);
        } catch (e) {
          // Kept as text: the server refuses it at this field if it is saved as it is.
          step.inputSchema = text;
          local.append(h('li', {}, `not JSON yet: ${e.message}`));
        }
      },
    });
    box.classList.add('schema-box');
    box.append(local);
    return box;
  }

  /** A Map's options: the function that makes its list of items, and how many run at once. */
  function mapFields(step, path) {
    const map = step.map || (step.map = {});
    const items = optionalScript(`${path}.items`, {
      name: 'items function', label: `Items function of ${step.name}`, fresh: NEW_ITEMS,
      about: 'Items function: gets the input, returns the list of items (an array or its JSON text)',
      none: 'No items function: the input is the JSON array of items',
      get: () => map.items,
      set: (js) => { if (js === undefined) delete map.items; else map.items = js; },
    });
    const limit = numberField(map, 'maxConcurrency', `Max concurrency of ${step.name}`, path, { min: 1, placeholder: 'no limit' });
    return h('div', { class: 'map-fields' }, items, h('div', { class: 'action-fields' }, limit), errorBox(path));
  }

  function reducerField(step, path) {
    const reducer = step.reducer || { type: DEFAULT_REDUCER[step.stepType] };
    const selectId = nextId('reducer');
    const select = h('select', { id: selectId },
      [['last', 'last: the last child\'s result'], ['collect', 'collect: a JSON array of all results'],
        ['no-op', 'no-op: no result'], ['js', 'js: a function of all results']]
        .map(([v, l]) => h('option', { value: v, selected: reducer.type === v }, l)));
    select.addEventListener('change', () => {
      step.reducer = select.value === 'js' ? { type: 'js', js: NEW_REDUCER } : { type: select.value };
      changed(true);
    });
    const box = h('div', { class: 'script-box' },
      h('div', { class: 'field inline' }, h('label', { for: selectId }, `Reducer of ${step.name}`), select));
    if (reducer.type === 'js') {
      box.append(codeEditor({ id: nextId('reducer-js'), value: reducer.js, label: `Reducer of ${step.name}`,
        onChange: (js) => { step.reducer.js = js; changed(); } }).element);
    }
    box.append(errorBox(path));
    return box;
  }

  function branchField(step, path) {
    const branch = step.branch || (step.branch = { type: 'js', js: NEW_BRANCH });
    const box = h('div', { class: 'script-box' },
      h('div', { class: 'script-head' }, h('span', { class: 'small muted' }, 'Branch function: gets the input, returns the name or index of the child to run')),
      codeEditor({ id: nextId('branch-js'), value: branch.js, label: `Branch function of ${step.name}`,
        onChange: (js) => { step.branch.js = js; changed(); } }).element);
    box.append(errorBox(path), errorBox(`${path}.js`));
    return box;
  }

  function actionFields(step, path) {
    const action = step.action || (step.action = { type: 'no-op' });
    const box = h('div', { class: 'action-fields' });
    const kindId = nextId('action-type');
    const kind = h('select', { id: kindId },
      [['api', 'api (calls a service)'], ['no-op', 'no-op (passes its input on)'],
        ['wait', 'wait (a durable delay)'], ['manual', 'manual (an approval by hand)']]
        .map(([v, l]) => h('option', { value: v, selected: action.type === v }, l)));
    kind.addEventListener('change', () => {
      const fresh = { api: { type: 'api', url: 'http://127.0.0.1:8000/' }, wait: { type: 'wait', seconds: 60 } };
      step.action = fresh[kind.value] || { type: kind.value };
      changed(true);
    });
    box.append(h('div', { class: 'field' }, h('label', { for: kindId }, 'Action'), kind));
    if (action.type === 'wait') box.append(numberField(action, 'seconds', 'Seconds', path));
    if (action.type === 'manual') box.append(numberField(action, 'callbackTimeoutSeconds', 'Decide within (s)', path));
    if (action.type === 'api') {
      box.append(
        textField(action, 'url', 'URL', path, { wide: true, placeholder: 'http://service.internal/path' }),
        selectField(action, 'mode', 'Mode', path, [['callback', 'callback'], ['sync', 'sync']]),
        poolField(action, path));
      const retry = () => (action.retry = action.retry || {});
      const set = [action.retry, action.timeoutSeconds, action.callbackTimeoutSeconds, action.onTimeout].filter((v) => v !== undefined).length;
      box.append(h('details', { class: 'options wide', open: set > 0 },
        h('summary', {}, 'Retries and timeouts', set ? ` (${set} set)` : ''),
        h('div', { class: 'action-fields' },
          numberField(action.retry || {}, 'maxAttempts', 'Attempts', `${path}.retry`, { ensure: retry }),
          numberField(action.retry || {}, 'backoffMs', 'Backoff (ms)', `${path}.retry`, { ensure: retry }),
          numberField(action.retry || {}, 'maxBackoffMs', 'Max backoff (ms)', `${path}.retry`, { ensure: retry }),
          numberField(action, 'timeoutSeconds', 'POST timeout (s)', path),
          numberField(action, 'callbackTimeoutSeconds', 'Callback timeout (s)', path),
          selectField(action, 'onTimeout', 'On callback timeout', path, [['fail', 'fail'], ['retry', 'retry']]))));
    }
    return h('div', {}, box, errorBox(path), errorBox(`${path}.retry`));
  }

  function textField(obj, key, label, path, { wide = false, placeholder } = {}) {
    const id = nextId(key);
    const input = h('input', { id, type: 'text', value: obj[key] || '', placeholder });
    input.addEventListener('input', () => { obj[key] = input.value; changed(); });
    return h('div', { class: `field${wide ? ' wide' : ''}` }, h('label', { for: id }, label), input, errorBox(`${path}.${key}`));
  }

  /** An api action's pool: a name the pools suggest; empty for none (no `pool` key). */
  function poolField(action, path) {
    const id = nextId('pool');
    const input = h('input', { id, type: 'text', value: action.pool || '', placeholder: 'none', list: poolsId,
      autocomplete: 'off', spellcheck: 'false', title: 'At most the pool\'s slots of its actions execute at once' });
    input.addEventListener('input', () => {
      const name = input.value.trim();
      if (name) action.pool = name;
      else delete action.pool;
      changed();
    });
    return h('div', { class: 'field' }, h('label', { for: id }, 'Pool'), input, errorBox(`${path}.pool`));
  }

  function selectField(obj, key, label, path, options) {
    const id = nextId(key);
    const select = h('select', { id }, options.map(([v, l]) => h('option', { value: v, selected: (obj[key] || options[0][0]) === v }, l)));
    select.addEventListener('change', () => {
      if (select.value === options[0][0]) delete obj[key];
      else obj[key] = select.value;
      changed();
    });
    return h('div', { class: 'field' }, h('label', { for: id }, label), select, errorBox(`${path}.${key}`));
  }

  function numberField(obj, key, label, path, { ensure, min = 0, placeholder = 'default' } = {}) {
    const id = nextId(key);
    const input = h('input', { id, type: 'number', min, value: obj[key] ?? '', placeholder, class: 'num' });
    input.addEventListener('input', () => {
      const target = ensure ? ensure() : obj;
      if (input.value === '') delete target[key];
      else target[key] = Number(input.value);
      changed();
    });
    return h('div', { class: 'field' }, h('label', { for: id }, label), input, errorBox(`${path}.${key}`));
  }

  function showErrors(errors) {
    for (const box of fields.values()) replace(box);
    const unplaced = [];
    let first = null;
    for (const message of errors) {
      const colon = message.indexOf(': ');
      const path = colon >= 0 ? message.slice(0, colon) : '';
      const text = colon >= 0 ? message.slice(colon + 2) : message;
      // The deepest field that the error's path falls under.
      let at = path;
      while (at && !fields.has(at)) at = at.replace(/(\.[^.[]+|\[\d+\])$/, '');
      const box = fields.get(at);
      if (box && (at || path === '')) {
        box.append(h('li', {}, at === path ? text : `${path.slice(at.length).replace(/^\./, '')}: ${text}`));
        first = first || box;
      } else {
        unplaced.push(message);
      }
    }
    if (first) first.scrollIntoView({ block: 'center' });
    return unplaced;
  }

  element.addEventListener('aetr-reordered', () => changed(true));
  draw();
  return { element, showErrors, redraw: draw };
}

function move(list, from, to) {
  if (to < 0 || to >= list.length) return;
  const [item] = list.splice(from, 1);
  list.splice(to, 0, item);
}

/** Drag a child by its head onto a sibling to move it there. */
function makeDraggable(card, handle, siblings, index) {
  handle.draggable = true;
  handle.addEventListener('dragstart', (e) => {
    e.stopPropagation();
    e.dataTransfer.effectAllowed = 'move';
    e.dataTransfer.setData('text/x-aetr-child', String(index));
    card.classList.add('dragging');
    dragged = { siblings, index };
  });
  handle.addEventListener('dragend', () => { card.classList.remove('dragging'); dragged = null; });
  card.addEventListener('dragover', (e) => {
    if (!dragged || dragged.siblings !== siblings) return;
    e.preventDefault();
    e.stopPropagation();
    card.classList.add('drop-target');
  });
  card.addEventListener('dragleave', () => card.classList.remove('drop-target'));
  card.addEventListener('drop', (e) => {
    if (!dragged || dragged.siblings !== siblings) return;
    e.preventDefault();
    e.stopPropagation();
    card.classList.remove('drop-target');
    move(siblings, dragged.index, index);
    dragged = null;
    card.dispatchEvent(new CustomEvent('aetr-reordered', { bubbles: true }));
  });
}
let dragged = null;

/** A schema as the editor shows it: text that did not parse stays as it was typed. */
function schemaText(schema) {
  return typeof schema === 'string' ? schema : JSON.stringify(schema, null, 2);
}

/** What `PUT /steps` takes: stored steps that were added by id stay references. */
export function payload(step) {
  if (step._ref) {
    const ref = { id: step.id };
    if (step.mapper) ref.mapper = step.mapper;
    return ref;
  }
  const out = { ...step };
  delete out._ref;
  if (out.children) out.children = out.children.map(payload);
  return out;
}

/** What the adders of a Map that has its child say: it has one, or too many. */
function oneChildNote(n) {
  return n === 1
    ? h('span', { class: 'small muted', 'data-note': 'one-child' }, 'It has its one child: remove it to add another.')
    : h('span', { class: 'chip chip-warn', 'data-note': 'one-child' }, `A Map has exactly one child: remove ${n - 1} of these ${n}.`);
}
