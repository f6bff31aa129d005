// /runs/{id}: a run as a live tree with a timeline, its header (progress, input, result,
// error, times), the details of a node, the operators' buttons, and the run's history.
import { get, post } from '../api.mjs';
import { confirmDialog, h, replace, toast } from '../dom.mjs';
import { duration, histogram, number, stateBadge, STATES, TERMINAL, textBlock, time } from '../format.mjs';
import { drawNode } from '../node-panel.mjs';
import { BIG, PAGE, RunTree } from '../run-tree.mjs';
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
  const list = new VirtualList({ rowHeight: ROW, renderRow, label: 'Nodes of the run', onDrawn: loadMoreInView });
  const timelineHead = h('div', { class: 'tree-columns', 'aria-hidden': 'true' },
    h('span', { class: 'col-name' }, 'Node'), h('span', { class: 'col-times' }, 'Waited · Ran'),
    h('span', { class: 'col-gantt' }, h('span', { class: 'legend-wait' }), 'waiting ', h('span', { class: 'legend-run' }), 'executing'));
  const treeTab = h('div', { class: 'tree-box', id: 'tab-tree', role: 'tabpanel', 'aria-labelledby': 'tab-tree-btn' }, timelineHead, list.element);
  const events = h('tbody');
  const eventsMore = h('button', { type: 'button', class: 'btn', hidden: true }, 'Load more');
  const historyTab = h('div', { id: 'tab-history', role: 'tabpanel', 'aria-labelledby': 'tab-history-btn', hidden: true },
    h('table', { class: 'table compact events' },
      h('thead', {}, h('tr', {}, ['#', 'When', 'What', 'Node', 'Attempt', 'Details', 'Changes'].map((c) => h('th', { scope: 'col' }, c)))),
      events), eventsMore);
  const tabButton = (name, label, panelEl, other) => {
    const b = h('button', { type: 'button', role: 'tab', id: `tab-${name}-btn`, 'aria-controls': `tab-${name}`, 'aria-selected': String(name === 'tree'),
      onclick: () => {
        for (const t of b.parentNode.children) t.setAttribute('aria-selected', String(t === b));
        panelEl.hidden = false;
        other().hidden = true;
        if (name === 'history') loadEvents();
        else list.schedule();
      } }, label);
    return b;
  };
  const tabs = h('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Views of the run' },
    tabButton('tree', 'Tree and timeline', treeTab, () => historyTab),
    tabButton('history', 'History', historyTab, () => treeTab));

  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '/runs' }, 'Runs'), ' / ', h('span', { class: 'mono' }, id)),
    header, tabs,
    h('div', { class: 'run-body' }, h('div', { class: 'run-main card' }, treeTab, historyTab), panel));

  start();

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
    list.draw();
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
        tree.refresh(list.visible()),
        selected ? showNode(selected, true) : null,
        historyTab.hidden ? null : pollEvents(),
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
    drawHeader();
    list.setRows(tree.rows());
  }

  function drawHeader() {
    const root = tree.root;
    document.title = `${root.stepTree.name} ${root.state} · aetr`;
    const done = progress.counts.Complete;
    const pct = progress.actions ? Math.round((100 * done) / progress.actions) : 100;
    const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': progress.actions, 'aria-valuenow': done,
      'aria-label': 'Actions complete' },
    // Finished actions, then those in flight; what has not started is the bar's empty rest.
    ['Complete', 'Error', 'Cancelled', 'Executing'].map((s) => progress.counts[s] ? h('span', { class: `progress-part state-bg-${s}`, style: { width: `${(100 * progress.counts[s]) / Math.max(1, progress.actions)}%` } }) : null));
    const took = root.executedAt ? (root.completedAt || Date.now()) - root.createdAt : null;
    const buttons = [];
    if (!TERMINAL.has(root.state)) {
      buttons.push(h('button', { type: 'button', class: 'btn btn-danger', onclick: cancel }, 'Cancel run…'));
    }
    if (root.state === 'Error') {
      buttons.push(h('button', { type: 'button', class: 'btn btn-primary', onclick: retry }, 'Retry run…'));
    }
    const failed = root.failedNode;
    replace(header,
      h('div', { class: 'run-title' },
        h('h1', {}, h('a', { href: `/steps/${root.stepTree.id}` }, root.stepTree.name)),
        h('span', { id: 'run-state' }, stateBadge(root.state)),
        h('span', { class: 'spacer' }), buttons),
      h('div', { class: 'progress-row' }, bar,
        h('span', { class: 'progress-text', id: 'run-progress' }, `${number(done)} of ${number(progress.actions)} actions complete (${pct}%)`),
        h('span', { class: 'muted small' }, STATES.filter((s) => s !== 'Complete' && progress.counts[s]).map((s) => `${number(progress.counts[s])} ${s}`).join(' · '))),
      h('dl', { class: 'facts inline-facts' },
        h('dt', {}, 'Started'), h('dd', {}, time(root.createdAt)),
        h('dt', {}, 'Finished'), h('dd', {}, time(root.completedAt)),
        h('dt', {}, 'Took'), h('dd', {}, took === null ? '—' : `${duration(took)}${root.completedAt ? '' : ' so far'}`),
        h('dt', {}, 'Nodes'), h('dd', {}, number(progress.nodes))),
      h('div', { class: 'io' },
        h('div', {}, h('h2', {}, 'Input'), textBlock(root.input, { label: 'Run input', empty: 'no input' })),
        h('div', {}, h('h2', {}, 'Result'), textBlock(root.result, { label: 'Run result', empty: root.state === 'Complete' ? 'no result' : 'not yet' })),
        root.error ? h('div', { class: 'run-error' }, h('h2', {}, 'Error'), textBlock(root.error, { label: 'Run error' }),
          failed ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => showNode(failed) }, 'Show the node that failed') : null) : null));
  }

  async function cancel() {
    const ok = await confirmDialog({ title: 'Cancel this run?', message: 'Every unfinished node is cancelled, and callbacks after this get 409. This cannot be undone.', confirm: 'Cancel run', danger: true });
    if (!ok) return;
    try {
      await post(`/runs/${id}/cancel`);
      toast('Run cancelled');
    } catch (e) {
      toast(`Not cancelled: ${e.message}`, 'error');
    }
    poll();
  }

  async function retry() {
    const v = await confirmDialog({ title: 'Retry this run?', message: 'Failed nodes run again; completed nodes keep their results.', confirm: 'Retry run',
      fields: [{ name: 'definition', label: 'Tree', type: 'select', options: [['snapshot', 'as the run started (its snapshot)'], ['latest', 'as it is defined now (latest)']] }] });
    if (!v) return;
    try {
      await post(`/runs/${id}/retry${v.definition === 'latest' ? '?definition=latest' : ''}`);
      toast('Run retried');
    } catch (e) {
      toast(`Not retried: ${e.message}`, 'error');
    }
    poll();
  }

  function renderRow(row) {
    const pad = { paddingLeft: `${8 + row.depth * 18}px` };
    if (row.more || row.loading) {
      const entry = row.entry;
      const shown = entry.childIds.length;
      return h('div', { class: 'vrow more-row', role: 'none', style: pad },
        row.loading ? h('span', { class: 'muted' }, 'Loading…')
          : h('button', { type: 'button', class: 'btn btn-small', onclick: () => more(row.id) },
            `Show ${number(Math.min(PAGE, entry.node.childCount - shown))} more (${number(shown)} of ${number(entry.node.childCount)} shown)`));
    }
    const entry = row.entry;
    const node = entry.node;
    const parent = node.childCount > 0;
    const name = node.stepTree.name;
    const now = Date.now();
    const ready = tree.readyAt(node.id);
    const waited = node.executedAt && ready ? node.executedAt - ready : null;
    const ran = node.executedAt ? (node.completedAt || now) - node.executedAt : null;
    const slow = tree.isSlow(node.id, now);
    const toggle = parent
      ? h('button', { type: 'button', class: 'toggle', 'aria-label': `${entry.expanded ? 'Collapse' : 'Expand'} ${name}`, 'aria-expanded': String(entry.expanded),
        onclick: async () => { await tree.toggle(node.id); drawAll(); } }, entry.expanded ? '▾' : '▸')
      : h('span', { class: 'toggle-space' });
    const el = h('div', {
      class: `vrow state-row-${node.state}${node.id === selected ? ' selected' : ''}${slow ? ' slow' : ''}`,
      role: 'treeitem', 'aria-level': row.depth + 1, 'aria-selected': String(node.id === selected),
      'aria-expanded': parent ? String(entry.expanded) : null, 'data-node': node.id, 'data-name': name, 'data-state': node.state,
    },
    h('span', { class: 'col-name', style: pad }, toggle,
      h('span', { class: `dot state-bg-${node.state}`, 'aria-hidden': 'true' }),
      h('button', { type: 'button', class: 'node-name', onclick: () => showNode(node.id), 'aria-label': `${name}, ${node.state}` }, name),
      h('span', { class: 'muted small type-label' }, node.stepTree.stepType),
      entry.parentId !== null && tree.entry(entry.parentId).node.childCount > BIG ? h('span', { class: 'muted small' }, `#${number(entry.index + 1)}`) : null,
      node.attempts > 1 ? h('span', { class: 'chip', title: `${node.attempts} attempts` }, `×${node.attempts}`) : null,
      slow ? h('span', { class: 'chip chip-warn', title: 'Waiting longer than expected: three times the median of its siblings' }, '⚠ slow') : null,
      parent && (!entry.expanded || node.childCount > BIG)
        ? h('span', { class: 'child-summary' }, histogram(node.counts, node.childCount), h('span', { class: 'small muted' }, `${number(node.childCount)} children`))
        : null),
    h('span', { class: 'col-times small muted' }, `${waited === null ? '—' : duration(waited)} · ${ran === null ? '—' : duration(ran)}`),
    h('span', { class: 'col-gantt' }, gantt(ready, node, now)));
    return el;
  }

  function gantt(ready, node, now) {
    const root = tree.root;
    const t0 = root.createdAt;
    const t1 = Math.max(t0 + 1, root.completedAt || now);
    const pct = (t) => `${Math.min(100, Math.max(0, (100 * (t - t0)) / (t1 - t0)))}%`;
    const track = h('span', { class: 'gantt-track' });
    if (ready && (node.executedAt || !TERMINAL.has(node.state))) {
      const end = node.executedAt || now;
      track.append(h('span', { class: 'gantt-wait', style: { left: pct(ready), width: `calc(${pct(end)} - ${pct(ready)})` } }));
    }
    if (node.executedAt) {
      const end = node.completedAt || now;
      track.append(h('span', { class: `gantt-run state-bg-${node.state}`, style: { left: pct(node.executedAt), width: `max(2px, calc(${pct(end)} - ${pct(node.executedAt)}))` } }));
    }
    return track;
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

  async function showNode(nodeId, quiet = false) {
    if (!quiet) {
      selected = nodeId;
      const url = new URL(location.href);
      url.searchParams.set('node', nodeId);
      history.replaceState(null, '', url);
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
        onClose: () => {
          selected = null;
          panel.hidden = true;
          const url = new URL(location.href);
          url.searchParams.delete('node');
          history.replaceState(null, '', url);
          list.setRows(tree.rows().map((r) => ({ ...r, version: `${r.version}:c` })));
        },
      });
      // Keyboard and screen-reader users land on the details they asked for.
      if (!quiet) panel.querySelector('#node-title').focus({ preventScroll: true });
    } catch (e) {
      if (!quiet) toast(`Could not load the node: ${e.message}`, 'error');
    }
  }

  // The history: pages of 200, oldest first; new events are appended while the run is live.
  let lastSeq = null;
  let eventsNext = undefined;
  async function loadEvents() {
    if (eventsNext !== undefined) return;
    eventsNext = null;
    await pageEvents(null);
  }
  async function pageEvents(after) {
    const q = new URLSearchParams({ limit: 200 });
    if (after !== null) q.set('after', after);
    const page = await get(`/runs/${id}/events?${q}`);
    const t0 = tree.root.createdAt;
    for (const e of page.body) {
      lastSeq = e.seq;
      events.append(h('tr', { class: `event event-${e.kind}` },
        h('td', {}, e.seq),
        h('td', { title: time(e.at) }, `+${duration(e.at - t0)}`),
        h('td', {}, e.kind),
        h('td', {}, e.nodeId ? h('button', { type: 'button', class: 'link-btn', onclick: () => showNode(e.nodeId) }, e.name || e.nodeId.slice(0, 8)) : '—'),
        h('td', {}, e.attempt ?? ''),
        h('td', { class: 'wrap' }, e.detail ? detailText(e.detail) : ''),
        h('td', { class: 'small' }, e.changes.map((c) => h('div', {}, `${c.name}: ${c.from} → ${c.to}`)))));
    }
    eventsNext = page.next;
    eventsMore.hidden = !page.next;
  }
  eventsMore.addEventListener('click', () => pageEvents(eventsNext));
  async function pollEvents() {
    if (eventsNext === undefined || eventsNext) return; // not opened, or pages remain to load by hand
    await pageEvents(lastSeq);
  }

  return () => { stopped = true; clearTimeout(timer); list.destroy(); delete document.body.dataset.treeDrawnAt; };
}

function detailText(detail) {
  const parts = [];
  for (const [k, v] of Object.entries(detail)) {
    parts.push(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  return parts.join('; ');
}
