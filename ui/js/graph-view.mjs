// The graph view of a step tree (on the step page) and of a run (the run page's Graph tab): the
// boxes of graph-layout.mjs drawn in SVG. In a run, each box takes its node's state's colour
// and is drawn again as the page polls; a click on a box, or Enter or Space on it, opens the
// node's details, or the step's card in the editor.
import { h } from './dom.mjs';
import { number, STATES, stateBadge } from './format.mjs';
import { fit, layout, SIZE } from './graph-layout.mjs';
import { BIG } from './run-tree.mjs';

const NS = 'http://www.w3.org/2000/svg';
/** Text starts this far from a box's left edge. */
const INSET = 12;
/** Each graph's arrowhead has an id of its own. */
let graphs = 0;

/** The run page's Graph tab: the run as a graph, drawn while the tab is shown. */
export class RunGraph {
  /** `tree`: the page's RunTree. `onShow(nodeId)` opens a node's details. */
  constructor(tree, { onShow, shown = false }) {
    this.tree = tree;
    this.shown = shown;
    this.graph = new Graph({ label: 'The run as a graph', onPick: onShow });
    this.element = h('div', { id: 'tab-graph', class: 'graph-tab', role: 'tabpanel', 'aria-labelledby': 'tab-graph-btn', hidden: !shown },
      h('div', { class: 'graph-legend', 'aria-hidden': 'true' }, STATES.map(stateBadge)),
      this.graph.element);
  }

  /** Shows or hides it (the tabs show and hide its element); shown, it is drawn at once. */
  show(shown) {
    this.shown = shown;
    this.draw();
  }

  /**
   * Draws the nodes the RunTree holds, if shown. The time it took goes in the tab's
   * `data-draw-ms`, the boxes drawn in `data-boxes`, and the moment in the body's
   * `data-graph-drawn-at`.
   */
  draw() {
    if (!this.shown || !this.tree.rootId) return;
    const start = performance.now();
    const boxes = this.graph.draw(runModel(this.tree));
    const end = performance.now();
    this.element.dataset.drawMs = (end - start).toFixed(1);
    this.element.dataset.boxes = String(boxes);
    document.body.dataset.graphDrawnAt = String(end);
  }

  /** The nodes drawn, as the rows that RunTree.refresh fetches again. */
  rows() {
    return this.shown ? [...this.graph.drawn.keys()].map((id) => ({ id })) : [];
  }

  /** Marks the node whose details are shown (null: none). */
  select(nodeId) {
    this.graph.select(nodeId);
  }

  destroy() {
    delete document.body.dataset.graphDrawnAt;
  }
}

/** The step page's graph of the tree being edited: a click on a step shows its editor card. */
export class StepGraph {
  /** `tree`: the fat tree the editor edits in place; `editor`: the editor's element. */
  constructor(tree, editor) {
    this.tree = tree;
    this.editor = editor;
    this.pending = false;
    this.graph = new Graph({ label: `${tree.name} as a graph`, onPick: (path) => this.reveal(path) });
    this.element = h('section', { class: 'card graph-card', 'aria-labelledby': 'graph-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'graph-title' }, 'Graph'),
        h('span', { class: 'muted small' }, 'Click a step to edit it below.')),
      this.graph.element);
    this.draw();
  }

  draw() {
    this.graph.draw(stepModel(this.tree));
  }

  /** Draws it again at the next frame, once for all the edits made before it. */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  /** Scrolls to the editor's card of the step at `path` (or of the stored step it is part of). */
  reveal(path) {
    let at = path;
    let card = this.editor.querySelector(`.step-card[data-path="${at}"]`);
    while (!card && at) {
      at = at.replace(/\.?children\[\d+\]$/, '');
      card = this.editor.querySelector(`.step-card[data-path="${at}"]`);
    }
    if (!card) return;
    this.graph.select(path);
    for (const old of this.editor.querySelectorAll('.graph-picked')) old.classList.remove('graph-picked');
    card.classList.add('graph-picked');
    card.scrollIntoView({ block: 'center' });
    card.querySelector('.step-name')?.focus({ preventScroll: true });
  }
}

// The models: what each box says, for graph-layout.mjs and the drawing below.

/** A step tree's model, its boxes keyed by their path in the editor ("", "children[0]", …). */
export function stepModel(step, path = '', parentKind = null) {
  const children = step.children || [];
  const big = children.length > BIG;
  const prefix = path ? `${path}.` : '';
  return box({
    key: path, name: step.name || '(no name)', kind: step.stepType, action: step.action?.type, stack: parentKind === 'Map',
    summary: step.stepType !== 'Action' && (big || !children.length) ? { total: children.length, counts: {} } : null,
    children: big ? [] : children.map((child, i) => stepModel(child, `${prefix}children[${i}]`, step.stepType)),
  });
}

/**
 * A run's model, from the nodes its RunTree holds. A parent with more than BIG children, or
 * whose children have not all been fetched, is one box with their counts by state.
 */
export function runModel(tree, id = tree.rootId, parentKind = null) {
  const { node, childIds } = tree.entry(id);
  const kind = node.stepTree.stepType;
  const all = node.childCount > 0 && node.childCount <= BIG && childIds.length === node.childCount
    && childIds.every((c) => tree.entry(c));
  return box({
    key: node.id, name: node.stepTree.name, kind, action: node.stepTree.actionType, state: node.state,
    item: parentKind === 'Map' ? node.index : null, skipped: node.state === 'Skipped',
    summary: kind !== 'Action' && !all ? { total: node.childCount, counts: node.counts || {} } : null,
    children: all ? childIds.map((c) => runModel(tree, c, kind)) : [],
  });
}

/**
 * A box's model with its texts: `sub`, the line under its name (its action or kind, its item,
 * its children's count); `label`, what screen readers say ("fetch, Complete", as the table
 * does); `title`, its tooltip, in full.
 */
function box(m) {
  const what = m.kind === 'Action' ? m.action || 'action' : m.kind;
  const item = m.item === null || m.item === undefined ? null : `item ${number(m.item)}`;
  const total = m.summary ? childCount(m.kind, m.summary.total, Boolean(m.state)) : null;
  const counts = m.summary ? STATES.filter((s) => m.summary.counts[s]).map((s) => `${number(m.summary.counts[s])} ${s}`).join(', ') : '';
  const sub = [what, item, total].filter(Boolean).join(' · ');
  const named = item ? `${m.name} ${item}` : m.name;
  const label = [named, m.state || what, total, counts].filter(Boolean).join(', ');
  return { ...m, sub, label, title: [`${m.name} (${sub})`, m.state, counts].filter(Boolean).join('\n') };
}

/** "10,000 children"; a Map's, in a run, are its instances, made as it starts. */
function childCount(kind, n, inRun) {
  const instances = inRun && kind === 'Map';
  if (n === 0) return instances ? 'no instances yet' : 'no children';
  if (n === 1) return instances ? '1 instance' : '1 child';
  return `${number(n)} ${instances ? 'instances' : 'children'}`;
}

// The drawing.

/**
 * A graph in a box that scrolls, and pans when dragged, when it is larger than the view.
 * `draw(model)` draws a model; drawn again with the same shape, only the boxes whose texts or
 * state changed are made again, and the scroll position, focus and selection stay.
 * `onPick(key)` when a box is clicked, or Enter or Space is pressed on it.
 */
class Graph {
  constructor({ label, onPick }) {
    this.arrowId = `graph-arrow-${++graphs}`;
    this.onPick = onPick;
    this.selected = null;
    this.shape = null;
    /** key → {element, stamp}: what was drawn, and the texts it was drawn with. */
    this.drawn = new Map();
    this.svg = svg('svg', { class: 'graph', role: 'group', 'aria-label': label });
    this.element = h('div', { class: 'graph-scroll' }, this.svg);
    const dragged = pannable(this.element);
    this.svg.addEventListener('click', (e) => { if (!dragged()) this.pick(e); });
    this.svg.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter' && e.key !== ' ') return;
      e.preventDefault();
      this.pick(e);
    });
  }

  pick(e) {
    const node = e.target.closest('[data-key]');
    if (node) this.onPick(node.dataset.key);
  }

  /** Draws `model`; returns how many boxes it has. */
  draw(model) {
    const laid = layout(model);
    const shape = shapeOf(laid);
    if (shape === this.shape) this.patch(laid.boxes);
    else this.redraw(laid, shape);
    return laid.boxes.length;
  }

  /** Draws everything anew: frames, then the lines over them, then the boxes. */
  redraw(laid, shape) {
    const focused = this.focusedKey();
    this.shape = shape;
    this.drawn.clear();
    const frames = svg('g', { class: 'gframes' });
    const leaves = svg('g', { class: 'gleaves' });
    for (const b of laid.boxes) {
      const element = drawBox(b, this.selected);
      this.drawn.set(b.model.key, { element, stamp: b.model.label + b.model.title });
      (b.frame ? frames : leaves).append(element);
    }
    const size = { width: Math.ceil(laid.width), height: Math.ceil(laid.height) };
    for (const [k, v] of Object.entries(size)) this.svg.setAttribute(k, v);
    this.svg.setAttribute('viewBox', `0 0 ${size.width} ${size.height}`);
    this.svg.replaceChildren(arrowhead(this.arrowId), frames, drawLines(laid, this.arrowId), leaves);
    if (focused) this.drawn.get(focused)?.element.focus({ preventScroll: true });
  }

  /** Makes again only the boxes whose texts changed. */
  patch(boxes) {
    const focused = this.focusedKey();
    for (const b of boxes) {
      const was = this.drawn.get(b.model.key);
      const stamp = b.model.label + b.model.title;
      if (was.stamp === stamp) continue;
      const element = drawBox(b, this.selected);
      was.element.replaceWith(element);
      this.drawn.set(b.model.key, { element, stamp });
      if (focused === b.model.key) element.focus({ preventScroll: true });
    }
  }

  /** Marks the box of `key` as the one whose details are shown. */
  select(key) {
    this.drawn.get(this.selected)?.element.classList.remove('selected');
    this.selected = key;
    this.drawn.get(key)?.element.classList.add('selected');
  }

  focusedKey() {
    const active = document.activeElement;
    return active && this.svg.contains(active) ? active.dataset.key : null;
  }
}

/** What a redraw depends on: each box's place and size, and which lines are dashed. */
function shapeOf(laid) {
  return laid.boxes.map((b) => `${b.model.key}:${b.x},${b.y},${b.w},${b.h}`).join(';')
    + laid.edges.map((e) => (e.skipped ? 's' : '-')).join('');
}

/** A leaf, a collapsed parent or a parent's frame: a focusable group, named for screen readers. */
function drawBox({ model: m, x, y, w, h: height, frame }, selected) {
  const colour = m.state ? `state-${m.state}` : `type-${m.kind}`;
  const classes = ['gnode', frame ? 'gframe' : 'gleaf', colour, m.key === selected && 'selected'];
  const room = w - INSET - 8;
  return svg('g', {
    class: classes.filter(Boolean).join(' '), transform: `translate(${x} ${y})`, tabindex: 0, role: 'button', 'aria-label': m.label,
    'data-key': m.key, 'data-name': m.name, 'data-kind': m.kind, 'data-state': m.state, 'data-item': m.item,
  },
  svg('title', {}, m.title),
  m.stack ? [8, 4].map((d) => svg('rect', { class: 'gstack', x: d, y: d, width: w, height, rx: 6 })) : null,
  svg('rect', { class: 'gbox', width: w, height, rx: 6 }),
  frame ? svg('text', { class: 'gtitle', x: INSET, y: 16 }, nameAndSub(m, room))
    : [svg('rect', { class: 'gstrip', x: 3, y: 5, width: 3, height: height - 10, rx: 1.5 }),
      svg('text', { class: 'gname', x: INSET, y: 19 }, fit(m.name, room)),
      svg('text', { class: 'gsub', x: INSET, y: 36 }, fit(m.sub, room)),
      m.summary ? countsBar(m.summary, w) : null]);
}

/** A frame's title: its name, then its kind (and item) in a lighter face, cut to fit `px`. */
function nameAndSub(m, px) {
  const name = fit(m.name, px);
  const left = px - name.length * SIZE.charW;
  return [svg('tspan', { class: 'gname' }, name),
    left > 4 * SIZE.charW ? svg('tspan', { class: 'gsub' }, fit(` · ${m.sub}`, left)) : null];
}

/** A collapsed parent's children by state, as a stacked bar. */
function countsBar({ total, counts }, w) {
  const width = w - INSET - 10;
  const parts = [];
  let x = INSET;
  for (const s of STATES) {
    if (!counts[s]) continue;
    const part = (width * counts[s]) / Math.max(1, total);
    parts.push(svg('rect', { class: `state-${s}`, x, width: part, height: 6 }));
    x += part;
  }
  return svg('g', { class: 'gbar', transform: 'translate(0 45)' }, svg('rect', { class: 'gbar-track', x: INSET, width, height: 6, rx: 3 }), parts);
}

/** The arrows and lines between boxes, and a Branch's choices' numbers. */
function drawLines(laid, arrowId) {
  return svg('g', { class: 'glines', 'aria-hidden': 'true' },
    laid.edges.map((e) => svg('polyline', {
      class: e.skipped ? 'gedge skipped' : 'gedge', points: e.points.map((p) => p.join(',')).join(' '),
      'marker-end': e.arrow ? `url(#${arrowId})` : null,
    })),
    laid.labels.map((l) => svg('text', { class: l.skipped ? 'gchoice skipped' : 'gchoice', x: l.x, y: l.y }, l.text)));
}

function arrowhead(id) {
  return svg('defs', {}, svg('marker', { id, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, markerUnits: 'userSpaceOnUse', orient: 'auto' },
    svg('path', { class: 'garrow', d: 'M0,0 L10,5 L0,10 z' })));
}

/** An SVG element, as dom.mjs's h() makes HTML ones: svg('rect', {width: 4}, …children). */
function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined && value !== false) el.setAttribute(key, String(value));
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return el;
}

/**
 * Dragging `box` with the mouse scrolls it. Returns a function that tells whether the last
 * press was a drag, which is then not a click.
 */
function pannable(box) {
  let from = null;
  let moved = false;
  box.addEventListener('pointerdown', (e) => {
    if (e.pointerType !== 'mouse' || e.button !== 0) return;
    from = { x: e.clientX, y: e.clientY, left: box.scrollLeft, top: box.scrollTop };
    moved = false;
  });
  box.addEventListener('pointermove', (e) => {
    if (!from) return;
    const dx = e.clientX - from.x;
    const dy = e.clientY - from.y;
    if (!moved && Math.abs(dx) + Math.abs(dy) < 6) return;
    moved = true;
    box.classList.add('panning');
    box.scrollLeft = from.left - dx;
    box.scrollTop = from.top - dy;
  });
  const end = () => { from = null; box.classList.remove('panning'); };
  box.addEventListener('pointerup', end);
  box.addEventListener('pointerleave', end);
  return () => moved;
}
