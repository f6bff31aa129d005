// A run's tree as the run page holds it: the nodes it has fetched, which parents are open, and
// how to refresh what is in view. A small run is fetched whole; a large one a level and a page
// at a time (`?depth=0`, then each parent's children in pages), so that opening a 10,000-leaf
// run fetches a hundred nodes, not ten thousand.
import { get } from './api.mjs';

/** A run with at most this many nodes is fetched whole, on open and on every refresh. */
const WHOLE = 1500;
/** A parent with more children than this starts closed, showing their count by state. */
export const BIG = 50;
/** Children fetched per page of a large parent. */
export const PAGE = 100;

export class RunTree {
  constructor(runId) {
    this.runId = runId;
    /** id → {node, parentId, childIds, pages: [{after, size}], next, expanded, loading} */
    this.entries = new Map();
    this.rootId = null;
    this.whole = false;
    this.version = 0;
  }

  entry(id) {
    return this.entries.get(id);
  }

  get root() {
    return this.entries.get(this.rootId)?.node;
  }

  /** The first fetch. `nodeCount`: the run's nodes, from its progress. */
  async open(nodeCount) {
    this.whole = nodeCount <= WHOLE;
    if (this.whole) {
      const root = (await get(`/runs/${this.runId}`)).body;
      this.rootId = root.id;
      this.ingestWhole(root, null, true);
    } else {
      const root = (await get(`/runs/${this.runId}?depth=0`)).body;
      this.rootId = root.id;
      this.put(root, null);
      const entry = this.entry(root.id);
      entry.expanded = true;
      if (root.childCount > 0) await this.loadPage(root.id);
    }
    this.version++;
  }

  put(node, parentId) {
    let entry = this.entries.get(node.id);
    if (!entry) {
      entry = { node, parentId, index: 0, childIds: [], pages: [], next: undefined, expanded: false, loading: false, version: 0 };
      this.entries.set(node.id, entry);
    } else {
      entry.node = node;
    }
    entry.version++;
    return entry;
  }

  ingestWhole(node, parentId, first) {
    const entry = this.put(node, parentId);
    const children = node.children || [];
    entry.childIds = children.map((c) => c.id);
    entry.next = null;
    if (first) entry.expanded = parentId === null || node.childCount <= BIG;
    children.forEach((child, i) => { this.ingestWhole(child, node.id, first).index = i; });
    delete node.children;
    return entry;
  }

  /** Fetches the next page of a parent's children. */
  async loadPage(id) {
    const entry = this.entry(id);
    if (!entry || entry.loading || entry.next === null) return;
    entry.loading = true;
    try {
      const after = entry.next;
      const q = new URLSearchParams({ limit: PAGE });
      if (after) q.set('after', after);
      const page = await get(`/runs/${this.runId}/nodes/${id}/children?${q}`);
      entry.pages.push({ after, size: page.body.length });
      for (const child of page.body) {
        this.put(child, id).index = entry.childIds.length;
        entry.childIds.push(child.id);
      }
      entry.next = page.next;
    } finally {
      entry.loading = false;
      entry.version++;
      this.version++;
    }
  }

  /** Opens or closes a parent; opening a parent whose children were never fetched fetches them. */
  async toggle(id) {
    const entry = this.entry(id);
    entry.expanded = !entry.expanded;
    entry.version++;
    this.version++;
    if (entry.expanded && entry.next === undefined && entry.node.childCount > 0) await this.loadPage(id);
  }

  /** The rows to draw: open parents' children, and a "more" row where pages remain. */
  rows() {
    const rows = [];
    const visit = (id, depth) => {
      const entry = this.entries.get(id);
      rows.push({ key: id, id, depth, version: entry.version, entry });
      if (!entry.expanded) return;
      for (const childId of entry.childIds) visit(childId, depth + 1);
      if (entry.next !== null && entry.next !== undefined) {
        rows.push({ key: `more:${id}`, more: true, id, depth: depth + 1, version: entry.version, entry });
      } else if (entry.loading) {
        rows.push({ key: `loading:${id}`, loading: true, id, depth: depth + 1, version: entry.version, entry });
      }
    };
    if (this.rootId) visit(this.rootId, 0);
    return rows;
  }

  /**
   * Fetches again what is in view: the whole run when it is small; else the root and the pages
   * that hold the rows in view. `nodeCount`: the run's nodes, from its latest progress. A run
   * that grew past {@link WHOLE} (a Map made its instances) is fetched in pages from then on.
   */
  async refresh(visibleRows, nodeCount) {
    if (this.whole && nodeCount > WHOLE) {
      this.entries.clear();
      await this.open(nodeCount);
      return;
    }
    if (this.whole) {
      const root = (await get(`/runs/${this.runId}`)).body;
      this.ingestWhole(root, null, false);
      this.version++;
      return;
    }
    const root = (await get(`/runs/${this.runId}?depth=0`)).body;
    this.put(root, null);
    const pages = new Map();
    for (const row of visibleRows) {
      const entry = this.entry(row.id);
      if (!entry || row.more || row.loading || entry.parentId === null) continue;
      const parent = this.entry(entry.parentId);
      const at = entry.index;
      let start = 0;
      for (let p = 0; p < parent.pages.length; p++) {
        const size = parent.pages[p].size;
        if (at < start + size) { pages.set(`${entry.parentId}#${p}`, { parent, parentId: entry.parentId, p, start }); break; }
        start += size;
      }
    }
    await Promise.all([...pages.values()].map(async ({ parent, parentId, p, start }) => {
      const { after, size } = parent.pages[p];
      const q = new URLSearchParams({ limit: PAGE });
      if (after) q.set('after', after);
      const page = await get(`/runs/${this.runId}/nodes/${parentId}/children?${q}`);
      page.body.slice(0, size).forEach((child, i) => {
        if (parent.childIds[start + i] === child.id) this.put(child, parentId);
      });
    }));
    this.version++;
  }

  /**
   * When a node became ready to start: its parent's start, or, under a Sequential parent, its
   * previous sibling's end. Null when that is not known here.
   */
  readyAt(id) {
    const entry = this.entry(id);
    if (!entry) return null;
    if (entry.parentId === null) return entry.node.createdAt;
    const parent = this.entry(entry.parentId);
    const at = entry.index;
    if (parent.node.stepTree.stepType === 'Sequential' && at > 0) {
      return this.entry(parent.childIds[at - 1])?.node.completedAt ?? null;
    }
    return parent.node.executedAt ?? null;
  }

  /**
   * How long a node is expected to take: three times the median of its finished siblings'
   * times (at least three of them), and at least two seconds. Null when there is nothing to
   * go by.
   */
  expectedMs(id) {
    const entry = this.entry(id);
    if (!entry || entry.parentId === null) return null;
    if (this.expectedAt !== this.version) {
      this.expected = new Map();
      this.expectedAt = this.version;
    }
    if (!this.expected.has(entry.parentId)) this.expected.set(entry.parentId, this.siblingsExpectedMs(entry.parentId));
    return this.expected.get(entry.parentId);
  }

  siblingsExpectedMs(parentId) {
    const parent = this.entry(parentId);
    const times = [];
    for (const sibling of parent.childIds) {
      const n = this.entry(sibling)?.node;
      if (n && n.state === 'Complete' && n.executedAt && n.completedAt) times.push(n.completedAt - n.executedAt);
    }
    if (times.length < 3) return null;
    times.sort((a, b) => a - b);
    return Math.max(2000, 3 * times[Math.floor(times.length / 2)]);
  }

  /** An unfinished node that has been waiting or running longer than expected. */
  isSlow(id, now) {
    const node = this.entry(id)?.node;
    if (!node || node.childCount > 0 || (node.state !== 'Executing' && node.state !== 'Pending')) return false;
    const expected = this.expectedMs(id);
    const since = node.state === 'Executing' ? node.executedAt : this.readyAt(id);
    return expected !== null && since !== null && now - since > expected;
  }
}
