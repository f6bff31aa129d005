// How values are shown: times, durations, states, and texts that may be JSON.
import { h } from './dom.mjs';

/** The states of a run. */
export const RUN_STATES = ['Pending', 'Executing', 'Complete', 'Error', 'Cancelled'];
/** The states of a node: a run's, and `Skipped` (below a Branch, not chosen). */
export const STATES = [...RUN_STATES, 'Skipped'];
export const TERMINAL = new Set(['Complete', 'Error', 'Cancelled', 'Skipped']);

/** A text longer than this is cut, with a "Show all" button. */
const CUT = 2000;

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const whole = Math.round(s);
  const m = Math.floor(whole / 60);
  if (m < 60) return `${m} min ${whole % 60} s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours} h ${m % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function time(epochMs) {
  if (!epochMs) return '—';
  const d = new Date(epochMs);
  const today = new Date().toDateString() === d.toDateString();
  const t = d.toLocaleTimeString(undefined, { hour12: false });
  const ms = String(d.getMilliseconds()).padStart(3, '0');
  return today ? `${t}.${ms}` : `${d.toLocaleDateString()} ${t}`;
}

export function ago(epochMs) {
  if (!epochMs) return '—';
  return `${duration(Date.now() - epochMs)} ago`;
}

export function number(n) {
  return Number(n || 0).toLocaleString('en-US');
}

export function stateBadge(state) {
  return h('span', { class: `badge state-${state}` }, state);
}

/**
 * A short form of a UUID, for tables; the whole id is in its title. Its end: ids are UUIDv7,
 * whose start is the time, the same for runs started together.
 */
export function shortId(id) {
  return h('span', { class: 'mono', title: id }, `…${id.slice(-8)}`);
}

/**
 * A block showing a raw text from a service or a user: as text, pretty-printed when it is
 * JSON, cut when it is long.
 */
export function textBlock(text, { label, empty = 'none' } = {}) {
  if (text === null || text === undefined) {
    return h('p', { class: 'muted text-empty', 'data-label': label }, empty);
  }
  let shown = text;
  let json = false;
  try {
    const parsed = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object') {
      shown = JSON.stringify(parsed, null, 2);
      json = true;
    }
  } catch { /* not JSON: shown as it is */ }
  const pre = h('pre', { class: `text-block${json ? ' json' : ''}`, tabindex: 0, 'aria-label': label });
  if (shown.length <= CUT) {
    pre.textContent = shown;
    return pre;
  }
  pre.textContent = `${shown.slice(0, CUT)}…`;
  const more = h('button', {
    type: 'button',
    class: 'btn btn-small',
    onclick: () => { pre.textContent = shown; more.remove(); },
  }, `Show all (${number(shown.length)} characters)`);
  return h('div', {}, pre, more);
}

/** A stacked bar of counts per state, with a legend for screen readers. */
export function histogram(counts, total) {
  const sum = total || STATES.reduce((a, s) => a + (counts[s] || 0), 0);
  const parts = STATES.filter((s) => counts[s]).map((s) => `${number(counts[s])} ${s}`);
  const bar = h('span', { class: 'histogram', role: 'img', 'aria-label': parts.join(', ') || 'empty' });
  for (const s of STATES) {
    const n = counts[s] || 0;
    if (!n) continue;
    bar.append(h('span', { class: `hist-part state-bg-${s}`, style: { flexGrow: String(n) }, title: `${number(n)} ${s}` }));
  }
  if (!sum) bar.append(h('span', { class: 'hist-part hist-empty', style: { flexGrow: '1' } }));
  return bar;
}
