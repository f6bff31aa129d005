// What the pages with a list and a form share: a table body whose rows are kept by key and
// updated in place, and a form whose fields show the API's errors next to them.
import { h, replace } from './dom.mjs';

/**
 * A table body's rows, kept by key: `draw(list)` adds the rows of new items (`make(item)`
 * returns `{tr, ...}`), updates every row with `update(row, item)`, puts them in the list's
 * order and drops the others. A focused button keeps its focus across redraws.
 */
export function keyedRows(body, keyOf, make, update) {
  const rows = new Map();
  function draw(list) {
    const seen = new Set();
    list.forEach((item, i) => {
      const key = keyOf(item);
      seen.add(key);
      let row = rows.get(key);
      if (!row) {
        row = make(item);
        rows.set(key, row);
      }
      update(row, item);
      if (body.children[i] !== row.tr) body.insertBefore(row.tr, body.children[i] || null);
    });
    for (const [key, row] of rows) {
      if (!seen.has(key)) remove(key, row);
    }
  }
  function remove(key, row = rows.get(key)) {
    row?.tr.remove();
    rows.delete(key);
  }
  return { rows, draw, remove };
}

/**
 * The error lists of a form's fields, named `fields` (as the API names them), with ids from
 * `prefix`. `field(name, label, control, hint)` lays a field out; `show(errors)` puts each
 * "name: ..." (or "name.x: ...") error under its field and the others on top, marks the
 * fields `aria-invalid` and focuses the first; `clear()` takes them away.
 */
export function fieldErrors(prefix, fields) {
  const ids = Object.fromEntries(fields.map((f) => [f, `${prefix}-${f}`]));
  const lists = Object.fromEntries(fields.map((f) =>
    [f, h('ul', { id: `${ids[f]}-errors`, class: 'errors field-errors', 'data-field': f, 'aria-live': 'polite' })]));
  const top = h('ul', { class: 'errors', id: `${prefix}-errors`, 'aria-live': 'polite' });
  const controls = {};

  /** A control's `aria-describedby`: its hint (if any) and its errors. */
  const described = (f, ...more) => [...more, `${ids[f]}-errors`].join(' ');

  function field(f, label, control, hint) {
    controls[f] = control;
    return h('div', { class: 'field' },
      h('label', { for: ids[f] }, label), control,
      hint ? h('span', { id: `${ids[f]}-hint`, class: 'muted small' }, hint) : null,
      lists[f]);
  }

  function clear() {
    replace(top);
    for (const f of fields) {
      replace(lists[f]);
      controls[f]?.removeAttribute('aria-invalid');
    }
  }

  function show(errors) {
    const unplaced = [];
    for (const message of errors) {
      const f = /^([A-Za-z]+)(?=[.:[])/.exec(message)?.[1];
      if (f && fields.includes(f)) {
        lists[f].append(h('li', {}, message));
        controls[f]?.setAttribute('aria-invalid', 'true');
      } else {
        unplaced.push(message);
      }
    }
    replace(top, unplaced.map((m) => h('li', {}, m)));
    const firstBad = fields.map((f) => controls[f]).find((c) => c?.getAttribute('aria-invalid') === 'true');
    if (firstBad) firstBad.focus();
  }

  return { ids, lists, top, described, field, clear, show };
}
