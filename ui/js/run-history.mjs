// A run's history, the run page's second tab: its events in pages of 200, oldest first; new
// events are appended while the run is live.
import { get } from './api.mjs';
import { h } from './dom.mjs';
import { duration, time } from './format.mjs';

export class RunHistory {
  /** `tree`: the page's RunTree (for the run's start); `onShowNode(nodeId)` shows a node's details. */
  constructor(runId, tree, onShowNode) {
    this.runId = runId;
    this.tree = tree;
    this.onShowNode = onShowNode;
    this.lastSeq = null;
    /** The next page's cursor: undefined until opened, null when none is left. */
    this.next = undefined;
    this.rows = h('tbody');
    this.more = h('button', { type: 'button', class: 'btn', hidden: true, onclick: () => this.page(this.next) }, 'Load more');
    this.element = h('div', { id: 'tab-history', role: 'tabpanel', 'aria-labelledby': 'tab-history-btn', hidden: true },
      h('table', { class: 'table compact events' },
        h('thead', {}, h('tr', {}, ['#', 'When', 'What', 'Node', 'Attempt', 'Details', 'Changes'].map((c) => h('th', { scope: 'col' }, c)))),
        this.rows), this.more);
  }

  /** The first page, when the tab is first shown. */
  async open() {
    if (this.next !== undefined) return;
    this.next = null;
    await this.page(null);
  }

  /** The events after the last one shown, once every page has been loaded. */
  async poll() {
    if (this.next === undefined || this.next) return; // not opened, or pages remain to load by hand
    await this.page(this.lastSeq);
  }

  async page(after) {
    const q = new URLSearchParams({ limit: 200 });
    if (after !== null) q.set('after', after);
    const page = await get(`/runs/${this.runId}/events?${q}`);
    const t0 = this.tree.root.createdAt;
    for (const e of page.body) {
      this.lastSeq = e.seq;
      this.rows.append(this.row(e, t0));
    }
    this.next = page.next;
    this.more.hidden = !page.next;
  }

  row(e, t0) {
    return h('tr', { class: `event event-${e.kind}` },
      h('td', {}, e.seq),
      h('td', { title: time(e.at) }, `+${duration(e.at - t0)}`),
      h('td', {}, e.kind),
      h('td', {}, e.nodeId ? h('button', { type: 'button', class: 'link-btn', onclick: () => this.onShowNode(e.nodeId) }, e.name || e.nodeId.slice(0, 8)) : '—'),
      h('td', {}, e.attempt ?? ''),
      h('td', { class: 'wrap' }, e.detail ? detailText(e.detail) : ''),
      h('td', { class: 'small' }, e.changes.map((c) => h('div', {}, `${c.name}: ${c.from} → ${c.to}`))));
  }
}

function detailText(detail) {
  const parts = [];
  for (const [k, v] of Object.entries(detail)) {
    parts.push(`${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  return parts.join('; ');
}
