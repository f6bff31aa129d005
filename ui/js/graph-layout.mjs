// The layout of the graph view: where each box of a tree goes (graph-view.mjs draws them).
// Pure functions, no DOM. A tree lays out as nested boxes: a leaf is a box; a parent is a frame,
// its name on top, around its children, which go side by side (Sequential, with an arrow from
// each to the next) or stacked (Parallel, Map and Branch, with fork and join lines).
//
// Why not dagre or elkjs: a workflow tree is already laid out by its shape; a general graph
// layout would need a build step or 100+ kB of vendored code to find what two recursive
// functions know.

/**
 * The model handed in, one object per box: {key, kind, children: [model], summary, skipped, …}.
 * `kind` is a step type; `children` are drawn inside its frame (none makes it a box); a
 * `summary` (a parent drawn collapsed) makes it taller; `skipped`: a Branch's choice not taken.
 */

/** Sizes, in pixels. */
export const SIZE = {
  leafW: 172, leafH: 46, summaryH: 62, // a leaf; a parent drawn collapsed, with its counts
  head: 24, pad: 10, // a frame's title row, and its padding around its children
  gapX: 34, gapY: 10, // between children side by side (an arrow's length), and stacked
  rail: 20, railChoice: 34, // the fork and join lines' room on each side of stacked children
  margin: 8, charW: 7.2, // around the graph; the width of a character, for cutting names
};

/**
 * Lays `model` out. Returns {width, height, boxes, edges, labels}, in absolute positions:
 * boxes [{model, x, y, w, h, frame}] with each parent before its children; edges
 * [{points: [[x, y], …], arrow, skipped}]; labels [{x, y, text, skipped}] (a Branch's choices).
 */
export function layout(model) {
  const laid = measure(model);
  const out = { boxes: [], edges: [], labels: [] };
  place(laid, SIZE.margin, SIZE.margin, out);
  return { width: laid.w + 2 * SIZE.margin, height: laid.h + 2 * SIZE.margin, ...out };
}

/** `text` cut with an ellipsis to fit `px` pixels. */
export function fit(text, px) {
  const room = Math.max(1, Math.floor(px / SIZE.charW));
  return text.length <= room ? text : `${text.slice(0, room - 1)}…`;
}

/**
 * A box's size, with its children's places and its lines relative to its top left corner:
 * {model, w, h, kids: [{x, y, laid}], edges, labels}.
 */
function measure(model) {
  const kids = model.children.map(measure);
  if (!kids.length) {
    const h = model.summary ? SIZE.summaryH : SIZE.leafH;
    return { model, w: SIZE.leafW, h, kids: [], edges: [], labels: [] };
  }
  return model.kind === 'Sequential' ? sideBySide(model, kids) : stacked(model, kids);
}

/** A frame around children in a row, centred on one line, with an arrow from each to the next. */
function sideBySide(model, kids) {
  const { head, pad, gapX, leafW } = SIZE;
  const innerW = kids.reduce((sum, k) => sum + k.w, 0) + gapX * (kids.length - 1);
  const innerH = Math.max(...kids.map((k) => k.h));
  const w = Math.max(leafW, innerW + 2 * pad);
  const mid = head + innerH / 2;
  const placed = [];
  const edges = [];
  let x = (w - innerW) / 2;
  for (const kid of kids) {
    if (placed.length) edges.push({ points: [[x - gapX, mid], [x, mid]], arrow: true, skipped: kid.model.skipped });
    placed.push({ x, y: head + (innerH - kid.h) / 2, laid: kid });
    x += kid.w + gapX;
  }
  return { model, w, h: head + innerH + pad, kids: placed, edges, labels: [] };
}

/**
 * A frame around children in a column, left-aligned: a fork line on their left with an arrow
 * into each, a join line on their right. A Branch's choices are numbered on their arrows.
 */
function stacked(model, kids) {
  const { head, pad, gapY, leafW } = SIZE;
  const choices = model.kind === 'Branch';
  const rail = choices ? SIZE.railChoice : SIZE.rail;
  const widest = Math.max(...kids.map((k) => k.w));
  const innerW = rail + widest + rail;
  const w = Math.max(leafW, innerW + 2 * pad);
  const left = (w - innerW) / 2;
  const forkX = left + 4;
  const joinX = left + innerW - 4;
  const placed = [];
  const edges = [];
  const labels = [];
  let y = head;
  kids.forEach((kid, i) => {
    const x = left + rail;
    const mid = y + kid.h / 2;
    const skipped = kid.model.skipped;
    placed.push({ x, y, laid: kid });
    edges.push({ points: [[forkX, mid], [x, mid]], arrow: true, skipped });
    edges.push({ points: [[x + kid.w, mid], [joinX, mid]], arrow: false, skipped });
    if (choices) labels.push({ x: forkX + 5, y: mid - 4, text: String(i), skipped });
    y += kid.h + gapY;
  });
  if (kids.length > 1) {
    const first = edges[0].points[0][1];
    const last = edges[edges.length - 1].points[0][1];
    edges.push({ points: [[forkX, first], [forkX, last]], arrow: false }, { points: [[joinX, first], [joinX, last]], arrow: false });
  }
  return { model, w, h: y - gapY + pad, kids: placed, edges, labels };
}

/** Puts a measured box at (x, y) in `out`, and its children, edges and labels after it. */
function place(laid, x, y, out) {
  out.boxes.push({ model: laid.model, x, y, w: laid.w, h: laid.h, frame: laid.kids.length > 0 });
  for (const e of laid.edges) out.edges.push({ ...e, points: e.points.map(([px, py]) => [x + px, y + py]) });
  for (const l of laid.labels) out.labels.push({ ...l, x: x + l.x, y: y + l.y });
  for (const kid of laid.kids) place(kid.laid, x + kid.x, y + kid.y, out);
}
