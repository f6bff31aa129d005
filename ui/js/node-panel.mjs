// The details of one node of a run: its input, result, error, attempts, script, times, and the
// operators' actions on a stuck action.
import { post } from './api.mjs';
import { confirmDialog, h, replace, toast } from './dom.mjs';
import { duration, histogram, number, stateBadge, textBlock, time } from './format.mjs';
import { tryButton } from './script-try.mjs';

/**
 * Draws `detail` (GET /runs/{id}/nodes/{nodeId}) into `box`. `readyAt`: when it could start,
 * if known. `onActed()` after an operator's action.
 */
export function drawNode(box, runId, detail, { readyAt, runState, onActed, onClose }) {
  const now = Date.now();
  const started = detail.executedAt;
  const pending = started && readyAt ? started - readyAt : (readyAt && !started ? now - readyAt : null);
  const executing = started ? (detail.completedAt || now) - started : null;
  const isAction = detail.stepTree.stepType === 'Action';
  const kind = detail.action?.type;

  const section = (title, ...content) => h('section', { class: 'panel-section' }, h('h3', {}, title), content);
  const tryIt = (what) => tryButton(what, runId, detail, { onActed });
  const pair = (label, value) => [h('dt', {}, label), h('dd', {}, value)];

  replace(box,
    h('div', { class: 'panel-head' },
      h('h2', { id: 'node-title', tabindex: -1 }, detail.stepTree.name),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close the details', onclick: onClose }, '✕')),
    h('p', {}, stateBadge(detail.state), ' ', h('span', { class: `type type-${detail.stepTree.stepType}` }, detail.stepTree.stepType)),
    h('dl', { class: 'facts' },
      pair('Node', h('span', { class: 'mono small' }, detail.id)),
      detail.parent && typeof detail.index === 'number'
        ? pair('Index', h('span', { 'data-fact': 'index', title: 'Its place among its parent\'s children, from 0: under a Map, its item' }, number(detail.index))) : null,
      pair('Step', h('a', { href: `/steps/${detail.stepTree.id}` }, detail.stepTree.name)),
      pair('Started', time(detail.executedAt)),
      pair('Finished', time(detail.completedAt)),
      pair('Pending for', h('span', { 'data-fact': 'pending' }, pending === null ? '—' : duration(pending))),
      pair('Executing for', h('span', { 'data-fact': 'executing' }, executing === null ? '—' : duration(executing))),
      detail.dueAt ? pair(kind === 'wait' ? 'Ends' : 'Deadline', h('span', { 'data-fact': 'due' }, `${time(detail.dueAt)} (${untilText(detail.dueAt, now)})`)) : null,
      detail.childCount ? pair('Children', [number(detail.childCount), ' ', histogram(detail.counts, detail.childCount)]) : null),
    detail.error ? section('Error', textBlock(detail.error, { label: 'Error' })) : null,
    section('Input', textBlock(detail.input, { label: 'Input', empty: 'no input' })),
    section('Result', textBlock(detail.result, { label: 'Result', empty: 'no result' })),
    detail.mapper && detail.mapper.type === 'js'
      ? section('Passed on (after the mapper)', textBlock(detail.output, { label: 'Output', empty: 'nothing' }))
      : null,
    kind === 'api' ? section('Attempts', attemptsTable(detail.attempts)) : null,
    detail.action ? section('Action', actionFacts(detail.action)) : null,
    detail.mapper && detail.mapper.type === 'js' ? section('Mapper', h('pre', { class: 'code' }, detail.mapper.js), tryIt('mapper')) : null,
    detail.reducer ? section('Reducer', detail.reducer.type === 'js'
      ? [h('pre', { class: 'code' }, detail.reducer.js), tryIt('reducer')] : h('p', {}, detail.reducer.type)) : null,
    detail.branch ? section('Branch function', h('pre', { class: 'code' }, detail.branch.js), tryIt('branch')) : null,
    detail.map ? section('Map', mapFacts(detail.map), detail.map.items ? tryIt('items') : null) : null,
    kind === 'api' ? operatorButtons(runId, detail, runState, onActed) : null,
    kind === 'manual' ? approvalButtons(runId, detail, onActed) : null);
}

/** How long until `at`, or how long ago it was. */
function untilText(at, now) {
  return at >= now ? `in ${duration(at - now)}` : `${duration(now - at)} ago`;
}

/** Posts an operator's action on the node, and says how it went. */
async function actOn(runId, detail, what, body, done, onActed) {
  try {
    await post(`/runs/${runId}/nodes/${detail.id}/${what}`, body);
    toast(done);
    onActed();
  } catch (e) {
    toast(`Refused: ${e.message}`, 'error');
  }
}

/** A `manual` action that waits for a person: Approve completes it, Reject fails it. */
function approvalButtons(runId, detail, onActed) {
  if (detail.state !== 'Executing') return null;
  const name = detail.stepTree.name;
  const approve = h('button', { type: 'button', class: 'btn btn-primary', onclick: async () => {
    const v = await confirmDialog({ title: `Approve ${name}`, message: 'It completes with the result given here (at first, its input; empty: no result), and the run goes on.',
      confirm: 'Approve', fields: [{ name: 'result', label: 'Result (raw text)', type: 'textarea', value: detail.input ?? '' }] });
    if (v) actOn(runId, detail, 'complete', v.result, 'Approved', onActed);
  } }, 'Approve…');
  const reject = h('button', { type: 'button', class: 'btn btn-danger', onclick: async () => {
    const v = await confirmDialog({ title: `Reject ${name}`, message: 'It fails, and so does the run.', danger: true,
      confirm: 'Reject', fields: [{ name: 'error', label: 'Why', type: 'textarea', value: 'rejected' }] });
    if (v) actOn(runId, detail, 'fail', v.error, 'Rejected', onActed);
  } }, 'Reject…');
  return h('section', { class: 'panel-section' }, h('h3', {}, 'Waiting for a decision'),
    h('div', { class: 'button-row' }, approve, reject));
}

function attemptsTable(attempts) {
  if (!attempts.length) return h('p', { class: 'muted' }, 'Not sent yet.');
  return h('table', { class: 'table compact' },
    h('thead', {}, h('tr', {}, ['#', 'Status', 'Sent', 'Took', 'Error'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, attempts.map((a) => h('tr', {},
      h('td', {}, a.n),
      h('td', {}, a.status, a.httpStatus ? ` (HTTP ${a.httpStatus})` : ''),
      h('td', {}, time(a.dispatchedAt)),
      h('td', {}, a.finishedAt ? duration(a.finishedAt - a.dispatchedAt) : '…'),
      h('td', { class: 'wrap' }, a.error || '')))));
}

function actionFacts(action) {
  const facts = [['Type', action.type]];
  if (action.url) facts.push(['URL', h('span', { class: 'mono wrap' }, action.url)]);
  if (action.mode) facts.push(['Mode', action.mode]);
  if (action.retry) facts.push(['Retry', `${action.retry.maxAttempts ?? '?'} attempts, backoff ${action.retry.backoffMs ?? '?'} ms to ${action.retry.maxBackoffMs ?? '?'} ms`]);
  if (action.timeoutSeconds) facts.push(['POST timeout', `${action.timeoutSeconds} s`]);
  if (action.seconds !== undefined) facts.push(['Waits', `${action.seconds} s`]);
  const timeoutLabel = action.type === 'manual' ? 'Decide within' : 'Callback timeout';
  if (action.callbackTimeoutSeconds !== undefined) facts.push([timeoutLabel, action.callbackTimeoutSeconds === null ? 'no limit' : `${action.callbackTimeoutSeconds} s`]);
  if (action.onTimeout) facts.push(['On timeout', action.onTimeout]);
  return h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** A Map's options: how many instances run at once, and the function that makes its items. */
function mapFacts(map) {
  return [
    h('dl', { class: 'facts' }, h('dt', {}, 'Max concurrency'),
      h('dd', { 'data-fact': 'max-concurrency' }, map.maxConcurrency ? number(map.maxConcurrency) : 'no limit')),
    map.items
      ? h('pre', { class: 'code', 'aria-label': 'Items function' }, map.items)
      : h('p', { class: 'muted' }, 'No items function: the input is the JSON array of items.'),
  ];
}

function operatorButtons(runId, detail, runState, onActed) {
  const stuck = detail.state === 'Pending' || detail.state === 'Executing';
  const failedInFailedRun = detail.state === 'Error' && runState === 'Error';
  if (!stuck && !failedInFailedRun) return null;
  const act = (what, body, done) => actOn(runId, detail, what, body, done, onActed);
  const complete = h('button', { type: 'button', class: 'btn', onclick: async () => {
    const v = await confirmDialog({ title: `Complete ${detail.stepTree.name} by hand`, message: 'As if its service had called back with this result. Its earlier attempts are superseded.',
      confirm: 'Complete', fields: [{ name: 'result', label: 'Result (raw text; empty: no result)', type: 'textarea' }] });
    if (v) act('complete', v.result, 'Completed by hand');
  } }, 'Complete…');
  const fail = h('button', { type: 'button', class: 'btn btn-danger', onclick: async () => {
    const v = await confirmDialog({ title: `Fail ${detail.stepTree.name} by hand`, message: 'The node fails, and so does the run.', danger: true,
      confirm: 'Fail', fields: [{ name: 'error', label: 'Error message', type: 'textarea', value: 'failed by an operator' }] });
    if (v) act('fail', v.error, 'Failed by hand');
  } }, 'Fail…');
  const redispatch = h('button', { type: 'button', class: 'btn', onclick: async () => {
    const v = await confirmDialog({ title: `Send ${detail.stepTree.name} again`, message: 'It is sent now as a new attempt; callbacks of the earlier attempts get 409.', confirm: 'Send again' });
    if (v) act('redispatch', '', 'Sent again');
  } }, 'Re-dispatch…');
  return h('section', { class: 'panel-section' }, h('h3', {}, 'Operator'),
    h('div', { class: 'button-row' }, complete, stuck ? fail : null, stuck ? redispatch : null));
}
