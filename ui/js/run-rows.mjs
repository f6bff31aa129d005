// The rows of a run's tree and timeline: a node with its state, times and bar on the run's
// timeline, or a "more" row for a large parent's next page of children.
import { h } from './dom.mjs';
import { duration, histogram, number, TERMINAL, time } from './format.mjs';
import { BIG, PAGE } from './run-tree.mjs';

/**
 * The element of `row` (one of `tree.rows()`). `selected`: the id of the node whose details
 * are shown. `onToggle(nodeId)`, `onShow(nodeId)`, `onMore(parentId)`: the row's buttons.
 */
export function drawRow(row, tree, { selected, onToggle, onShow, onMore }) {
  const pad = { paddingLeft: `${8 + row.depth * 18}px` };
  if (row.more || row.loading) return moreRow(row, pad, onMore);
  const entry = row.entry;
  const node = entry.node;
  const parent = node.childCount > 0;
  const name = node.stepTree.name;
  const now = Date.now();
  const ready = tree.readyAt(node.id);
  const waited = node.executedAt && ready ? node.executedAt - ready : null;
  const ran = node.executedAt ? (node.completedAt || now) - node.executedAt : null;
  const slow = tree.isSlow(node.id, now);
  const parentNode = entry.parentId === null ? null : tree.entry(entry.parentId).node;
  // A Map's instances share their name: their item tells them apart.
  const item = parentNode?.stepTree.stepType === 'Map' ? (node.index ?? entry.index) : null;
  const label = item === null ? name : `${name} item ${item}`;
  const toggle = parent
    ? h('button', { type: 'button', class: 'toggle', 'aria-label': `${entry.expanded ? 'Collapse' : 'Expand'} ${label}`, 'aria-expanded': String(entry.expanded),
      onclick: () => onToggle(node.id) }, entry.expanded ? '▾' : '▸')
    : h('span', { class: 'toggle-space' });
  return h('div', {
    class: `vrow state-row-${node.state}${node.id === selected ? ' selected' : ''}${slow ? ' slow' : ''}`,
    role: 'treeitem', 'aria-level': row.depth + 1, 'aria-selected': String(node.id === selected),
    'aria-expanded': parent ? String(entry.expanded) : null, 'data-node': node.id, 'data-name': name, 'data-state': node.state, 'data-item': item,
  },
  h('span', { class: 'col-name', style: pad }, toggle,
    h('span', { class: `dot state-bg-${node.state}`, 'aria-hidden': 'true' }),
    h('button', { type: 'button', class: 'node-name', onclick: () => onShow(node.id), 'aria-label': `${label}, ${node.state}` }, name),
    h('span', { class: 'muted small type-label' }, node.stepTree.stepType),
    item !== null ? h('span', { class: 'muted small', title: `Item ${item} of the Map's list (counted from 0)` }, `item ${number(item)}`)
      : parentNode?.childCount > BIG ? h('span', { class: 'muted small' }, `#${number(entry.index + 1)}`) : null,
    node.attempts > 1 ? h('span', { class: 'chip', title: `${node.attempts} attempts` }, `×${node.attempts}`) : null,
    slow ? h('span', { class: 'chip chip-warn', title: 'Waiting longer than expected: three times the median of its siblings' }, '⚠ slow') : null,
    waitChip(node, now),
    parent && (!entry.expanded || node.childCount > BIG)
      ? h('span', { class: 'child-summary' }, histogram(node.counts, node.childCount), h('span', { class: 'small muted' }, `${number(node.childCount)} children`))
      : null),
  h('span', { class: 'col-times small muted' }, `${waited === null ? '—' : duration(waited)} · ${ran === null ? '—' : duration(ran)}`),
  h('span', { class: 'col-gantt' }, gantt(tree.root, ready, node, now)));
}

/** What a `wait` or `manual` action that is Executing waits for, and until when. */
function waitChip(node, now) {
  if (node.state !== 'Executing') return null;
  const kind = node.stepTree.actionType;
  if (kind === 'wait' && node.dueAt) {
    return h('span', { class: 'chip', 'data-chip': 'wait', title: `Ends at ${time(node.dueAt)}` }, `ends in ${duration(Math.max(0, node.dueAt - now))}`);
  }
  if (kind === 'manual') {
    return h('span', { class: 'chip chip-warn', 'data-chip': 'manual', title: node.dueAt ? `Fails at ${time(node.dueAt)} unless decided` : 'No deadline' }, 'awaits a decision');
  }
  return null;
}

/** A large parent's next page: loading, or a button to load it. */
function moreRow(row, pad, onMore) {
  const entry = row.entry;
  const shown = entry.childIds.length;
  return h('div', { class: 'vrow more-row', role: 'none', style: pad },
    row.loading ? h('span', { class: 'muted' }, 'Loading…')
      : h('button', { type: 'button', class: 'btn btn-small', onclick: () => onMore(row.id) },
        `Show ${number(Math.min(PAGE, entry.node.childCount - shown))} more (${number(shown)} of ${number(entry.node.childCount)} shown)`));
}

/** A node's bar on the run's timeline: waiting since `ready`, then executing. */
function gantt(root, ready, node, now) {
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
