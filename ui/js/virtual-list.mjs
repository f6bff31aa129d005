// A list that draws only the rows in view (and a few around them), so that 10,000 rows cost
// what 50 do. Rows have a fixed height.
import { h } from './dom.mjs';

const OVERSCAN = 8;

export class VirtualList {
  /**
   * `renderRow(row)` makes a row's element; rows are objects with a `key` and a `version`: an
   * element is made again only when its row's version changes. `onDrawn(rows)` gets the rows in
   * view after each draw.
   */
  constructor({ rowHeight, renderRow, onDrawn, label }) {
    this.rowHeight = rowHeight;
    this.renderRow = renderRow;
    this.onDrawn = onDrawn;
    this.rows = [];
    this.cache = new Map();
    this.spacer = h('div', { class: 'vlist-spacer' });
    this.element = h('div', { class: 'vlist', role: 'tree', 'aria-label': label }, this.spacer);
    this.element.addEventListener('scroll', () => this.schedule(), { passive: true });
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(this.element);
    this.pending = false;
  }

  /** New rows are drawn at once, so that they never lag behind what the page shows beside them;
   * scrolling and resizing draw at the next frame. */
  setRows(rows) {
    this.rows = rows;
    this.spacer.style.height = `${rows.length * this.rowHeight}px`;
    this.draw();
  }

  /** The rows in view, first to last. */
  visible() {
    const { first, last } = this.range(0);
    return this.rows.slice(first, last);
  }

  range(overscan) {
    const top = this.element.scrollTop;
    const height = this.element.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - overscan);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / this.rowHeight) + overscan);
    return { first, last };
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  /** Draws now. */
  draw() {
    const { first, last } = this.range(OVERSCAN);
    const keep = new Map();
    const wanted = [];
    for (let i = first; i < last; i++) {
      const row = this.rows[i];
      let cached = this.cache.get(row.key);
      if (!cached || cached.version !== row.version) {
        if (cached) cached.element.remove();
        cached = { version: row.version, element: this.renderRow(row) };
      }
      cached.element.style.transform = `translateY(${i * this.rowHeight}px)`;
      keep.set(row.key, cached);
      wanted.push(cached.element);
    }
    for (const [key, cached] of this.cache) {
      if (!keep.has(key)) cached.element.remove();
    }
    for (const element of wanted) {
      if (element.parentNode !== this.spacer) this.spacer.append(element);
    }
    this.cache = keep;
    if (this.onDrawn) this.onDrawn(this.rows.slice(first, last));
  }

  /** Scrolls a row into view. */
  reveal(index) {
    const top = index * this.rowHeight;
    const el = this.element;
    if (top < el.scrollTop || top + this.rowHeight > el.scrollTop + el.clientHeight) {
      el.scrollTop = top - el.clientHeight / 2;
    }
  }

  destroy() {
    this.resize.disconnect();
  }
}
