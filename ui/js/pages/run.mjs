// /runs/{id}: a run as a live tree with a timeline, or as a graph; its header (progress, input,
// result, error, times), the details of a node, the operators' buttons, and the run's history.
import { get } from '../api.mjs';
import { h, replace, toast } from '../dom.mjs';
import { TERMINAL } from '../format.mjs';
import { RunGraph } from '../graph-view.mjs';
import { drawNode } from '../node-panel.mjs';
import { drawRunHeader } from '../run-header.mjs';
import { RunHistory } from '../run-history.mjs';
import { drawRow } from '../run-rows.mjs';
import { RunTree } from '../run-tree.mjs';
import { VirtualList } from '../virtual-list.mjs';

const ROW = 30;
const POLL_MS = 1000;

export function render(main, { id, params }) {
  document.title = 'Run · aetr';
  const tree = new RunTree(id);
  let stopped = false;
  let timer = null;
  let selected = params.get('node');
  let progress = null;
  let drawnOnce = false;

  const header = h('section', { class: 'card run-header', 'aria-label': 'The run' });
  const panel = h('aside', { class: 'card node-panel', 'aria-labelledby': 'node-title', hidden: true });
  const list = new VirtualList({
    rowHeight: ROW, label: 'Nodes of the run', onDrawn: loadMoreInView,
    renderRow: (row) => drawRow(row, tree, { selected, onToggle: toggle, onShow: showNode, onMore: more }),
  });
  const events = new RunHistory(id, tree, showNode);
  const treeTab = treePanel(list);
  const graph = new RunGraph(tree, { onShow: showNode, shown: params.get('view') === 'graph' });
  const tabs = tabList({ tree: treeTab, graph: graph.element, history: events.element }, graph.shown ? 'graph' : 'tree', (name) => {
    setParam('view', name === 'graph' ? name : null);
    graph.show(name === 'graph');
    if (name === 'history') events.open();
    else if (name === 'tree') list.schedule();
  });
  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '/runs' }, 'Runs'), ' / ', h('span', { class: 'mono' }, id)),
    header, tabs,
    h('div', { class: 'run-body' }, h('div', { class: 'run-main card' }, treeTab, graph.element, events.element), panel));

  start();

  // The live updates: the first draw, then a refresh every second while the run is live.

  async function start() {
    try {
      progress = (await get(`/runs/${id}/progress`)).body;
      await tree.open(progress.nodes);
    } catch (e) {
      replace(main, h('h1', {}, 'Run not found'), h('p', {}, e.message, ' ', h('a', { href: '/runs' }, 'See all runs.')));
      return;
    }
    if (stopped) return;
    drawAll();
    document.body.dataset.treeDrawnAt = String(performance.now());
    drawnOnce = true;
    if (selected) showNode(selected);
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (stopped) return;
    timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    const wasLive = isLive();
    try {
      [progress] = await Promise.all([
        get(`/runs/${id}/progress`).then((r) => r.body),
        tree.refresh(graph.shown ? graph.rows() : list.visible(), progress.nodes),
        selected ? showNode(selected, true) : null,
        events.element.hidden ? null : events.poll(),
      ]);
    } catch (e) {
      if (!stopped) toast(`Could not refresh: ${e.message}`, 'error');
    }
    if (stopped) return;
    drawAll();
    // Once more after it finishes, then stop until an operator acts.
    if (isLive() || wasLive) schedule();
  }

  function isLive() {
    return !TERMINAL.has(tree.root?.state);
  }

  function drawAll() {
    drawRunHeader(header, id, tree.root, progress, { onActed: poll, onShowNode: showNode });
    list.setRows(tree.rows());
    graph.draw();
  }

  // The tree: parents open and close; a large parent's children load a page at a time.

  async function toggle(nodeId) {
    await tree.toggle(nodeId);
    drawAll();
  }

  async function more(parentId) {
    const load = tree.loadPage(parentId);
    list.setRows(tree.rows());
    await load;
    list.setRows(tree.rows());
  }

  /** Pages load as their "more" row scrolls into view. */
  function loadMoreInView(rows) {
    for (const row of rows) {
      if (row.more && !row.entry.loading && drawnOnce) more(row.id);
    }
  }

  // The details of the selected node, which the URL keeps (?node=).

  async function showNode(nodeId, quiet = false) {
    if (!quiet) {
      selected = nodeId;
      setParam('node', nodeId);
      graph.select(nodeId);
      list.setRows(tree.rows().map((r) => ({ ...r, version: `${r.version}:${r.id === selected}` })));
    }
    try {
      const detail = (await get(`/runs/${id}/nodes/${nodeId}`)).body;
      if (stopped || selected !== nodeId) return;
      panel.hidden = false;
      drawNode(panel, id, detail, {
        readyAt: tree.readyAt(nodeId) ?? detail.createdAt,
        runState: tree.root.state,
        onActed: () => poll(),
        onClose: closeNode,
      });
      // Keyboard and screen-reader users land on the details they asked for.
      if (!quiet) panel.querySelector('#node-title').focus({ preventScroll: true });
    } catch (e) {
      if (!quiet) toast(`Could not load the node: ${e.message}`, 'error');
    }
  }

  function closeNode() {
    selected = null;
    panel.hidden = true;
    setParam('node', null);
    graph.select(null);
    list.setRows(tree.rows().map((r) => ({ ...r, version: `${r.version}:c` })));
  }

  return () => { stopped = true; clearTimeout(timer); list.destroy(); graph.destroy(); delete document.body.dataset.treeDrawnAt; };
}

/** The tree and timeline tab: the columns' heads over the list of nodes. */
function treePanel(list) {
  const columns = h('div', { class: 'tree-columns', 'aria-hidden': 'true' },
    h('span', { class: 'col-name' }, 'Node'), h('span', { class: 'col-times' }, 'Waited · Ran'),
    h('span', { class: 'col-gantt' }, h('span', { class: 'legend-wait' }), 'waiting ', h('span', { class: 'legend-run' }), 'executing'));
  return h('div', { class: 'tree-box', id: 'tab-tree', role: 'tabpanel', 'aria-labelledby': 'tab-tree-btn' }, columns, list.element);
}

const TABS = { tree: 'Tree and timeline', graph: 'Graph', history: 'History' };

/**
 * The tabs over the panels (name → element; see TABS); `shown`: the one shown at first.
 * `onShow(name)` after one is shown.
 */
function tabList(panels, shown, onShow) {
  const buttons = Object.keys(panels).map((name) => h('button', {
    type: 'button', role: 'tab', id: `tab-${name}-btn`, 'aria-controls': `tab-${name}`, 'aria-selected': String(name === shown),
    onclick: () => {
      for (const b of buttons) b.setAttribute('aria-selected', String(b.id === `tab-${name}-btn`));
      for (const [other, panelEl] of Object.entries(panels)) panelEl.hidden = other !== name;
      onShow(name);
    } }, TABS[name]));
  for (const [name, panelEl] of Object.entries(panels)) panelEl.hidden = name !== shown;
  return h('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Views of the run' }, buttons);
}

/** Puts `value` in the page's URL as `?key=`, or takes it out (null), without a history entry. */
function setParam(key, value) {
  const url = new URL(location.href);
  if (value === null) url.searchParams.delete(key);
  else url.searchParams.set(key, value);
  history.replaceState(null, '', url);
}
