// The head of a run's page: its tree and state, the operators' buttons (cancel, retry,
// delete), its progress, times, input, result and error.
import { api, post } from './api.mjs';
import { confirmDialog, h, replace, toast } from './dom.mjs';
import { duration, number, stateBadge, STATES, TERMINAL, textBlock, time } from './format.mjs';
import { navigate } from './main.mjs';

/**
 * Draws the run `root` (its root node) and its `progress` (GET /runs/{id}/progress) into
 * `box`. `onActed()` after an operator's action; `onShowNode(nodeId)` shows a node's details.
 */
export function drawRunHeader(box, runId, root, progress, { onActed, onShowNode }) {
  document.title = `${root.stepTree.name} ${root.state}${root.dryRun ? ' (dry run)' : ''} · aetr`;
  replace(box,
    h('div', { class: 'run-title' },
      h('h1', {}, h('a', { href: `/steps/${root.stepTree.id}` }, root.stepTree.name)),
      h('span', { id: 'run-state' }, stateBadge(root.state)),
      root.dryRun ? dryRunBadge() : null,
      h('span', { class: 'spacer' }), runButtons(runId, root, onActed)),
    progressRow(progress),
    runFacts(root, progress),
    inputAndResult(root, onShowNode));
}

/** The mark of a dry run, in which no action called anything. */
export function dryRunBadge() {
  return h('span', { class: 'badge dry-run', title: 'A dry run: no action called anything' }, 'Dry run');
}

/** Cancel while the run is unfinished; retry once it failed; delete once it has finished. */
function runButtons(runId, root, onActed) {
  const buttons = [];
  if (!TERMINAL.has(root.state)) {
    buttons.push(h('button', { type: 'button', class: 'btn btn-danger', onclick: () => cancel(runId, onActed) }, 'Cancel run…'));
  }
  if (root.state === 'Error') {
    buttons.push(h('button', { type: 'button', class: 'btn btn-primary', onclick: () => retry(runId, onActed) }, 'Retry run…'));
  }
  if (TERMINAL.has(root.state)) {
    buttons.push(h('button', { type: 'button', class: 'btn btn-danger', onclick: () => remove(runId) }, 'Delete run…'));
  }
  return buttons;
}

async function remove(runId) {
  const ok = await confirmDialog({ title: 'Delete this run?', message: 'The run, its nodes, attempts and history are deleted. This cannot be undone.', confirm: 'Delete run', danger: true });
  if (!ok) return;
  try {
    await api('DELETE', `/runs/${runId}`);
    toast('Run deleted');
    navigate('/runs');
  } catch (e) {
    toast(`Not deleted: ${e.message}`, 'error');
  }
}

async function cancel(runId, onActed) {
  const ok = await confirmDialog({ title: 'Cancel this run?', message: 'Every unfinished node is cancelled, and callbacks after this get 409. This cannot be undone.', confirm: 'Cancel run', danger: true });
  if (!ok) return;
  try {
    await post(`/runs/${runId}/cancel`);
    toast('Run cancelled');
  } catch (e) {
    toast(`Not cancelled: ${e.message}`, 'error');
  }
  onActed();
}

async function retry(runId, onActed) {
  const v = await confirmDialog({ title: 'Retry this run?', message: 'Failed nodes run again; completed nodes keep their results.', confirm: 'Retry run',
    fields: [{ name: 'definition', label: 'Tree', type: 'select', options: [['snapshot', 'as the run started (its snapshot)'], ['latest', 'as it is defined now (latest)']] }] });
  if (!v) return;
  try {
    await post(`/runs/${runId}/retry${v.definition === 'latest' ? '?definition=latest' : ''}`);
    toast('Run retried');
  } catch (e) {
    toast(`Not retried: ${e.message}`, 'error');
  }
  onActed();
}

/** The bar, "n of m actions complete", and the counts of the other states. */
function progressRow(progress) {
  const done = progress.counts.Complete;
  const pct = progress.actions ? Math.round((100 * done) / progress.actions) : 100;
  const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': progress.actions, 'aria-valuenow': done,
    'aria-label': 'Actions complete' },
  // Finished actions, then those in flight; what has not started is the bar's empty rest.
  ['Complete', 'Error', 'Cancelled', 'Executing'].map((s) => progress.counts[s] ? h('span', { class: `progress-part state-bg-${s}`, style: { width: `${(100 * progress.counts[s]) / Math.max(1, progress.actions)}%` } }) : null));
  return h('div', { class: 'progress-row' }, bar,
    h('span', { class: 'progress-text', id: 'run-progress' }, `${number(done)} of ${number(progress.actions)} actions complete (${pct}%)`),
    h('span', { class: 'muted small' }, STATES.filter((s) => s !== 'Complete' && progress.counts[s]).map((s) => `${number(progress.counts[s])} ${s}`).join(' · ')));
}

function runFacts(root, progress) {
  const took = root.executedAt ? (root.completedAt || Date.now()) - root.createdAt : null;
  return h('dl', { class: 'facts inline-facts' },
    h('dt', {}, 'Started'), h('dd', {}, time(root.createdAt)),
    h('dt', {}, 'Finished'), h('dd', {}, time(root.completedAt)),
    h('dt', {}, 'Took'), h('dd', {}, took === null ? '—' : `${duration(took)}${root.completedAt ? '' : ' so far'}`),
    h('dt', {}, 'Nodes'), h('dd', {}, number(progress.nodes)),
    root.notify ? [h('dt', {}, 'Webhook'), h('dd', { 'data-fact': 'webhook', title: root.notify.url },
      `${root.notify.state}${root.notify.tries ? ` after ${number(root.notify.tries)} ${root.notify.tries === 1 ? 'try' : 'tries'}` : ''} · ${root.notify.url}`)] : null,
    root.traceId ? [h('dt', {}, 'Trace'), h('dd', { class: 'mono small', 'data-fact': 'trace' }, root.traceUrl
      ? h('a', { href: root.traceUrl, target: '_blank', rel: 'noopener noreferrer' }, root.traceId)
      : root.traceId)] : null);
}

/** The run's input, its result, and its error with a way to the node that failed. */
function inputAndResult(root, onShowNode) {
  const failed = root.failedNode;
  return h('div', { class: 'io' },
    h('div', {}, h('h2', {}, 'Input'), textBlock(root.input, { label: 'Run input', empty: 'no input' })),
    h('div', {}, h('h2', {}, 'Result'), textBlock(root.result, { label: 'Run result', empty: root.state === 'Complete' ? 'no result' : 'not yet' })),
    root.error ? h('div', { class: 'run-error' }, h('h2', {}, 'Error'), textBlock(root.error, { label: 'Run error' }),
      failed ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => onShowNode(failed) }, 'Show the node that failed') : null) : null);
}
