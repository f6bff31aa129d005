// Building the page: every string becomes a text node, never HTML.

/**
 * h('div', {class: 'x', onclick: f, 'aria-label': 'y'}, 'text', child, [more])
 * Attributes whose value is false, null or undefined are left out; `on*` are listeners.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') {
      el[key] = value;
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(el.style, value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A short message at the bottom of the screen, read out by screen readers. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const item = h('div', { class: `toast toast-${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * Asks to confirm an action in a modal dialog. Resolves to the form's values (an object) when
 * confirmed, or null. `fields`: [{name, label, type: 'textarea'|'select'|'text', options}].
 */
export function confirmDialog({ title, message, confirm, danger = false, fields = [] }) {
  return new Promise((resolve) => {
    const inputs = {};
    const body = fields.map((f) => {
      const id = `dlg-${f.name}`;
      let input;
      if (f.type === 'select') {
        input = h('select', { id, name: f.name },
          f.options.map(([value, label]) => h('option', { value }, label)));
      } else if (f.type === 'textarea') {
        input = h('textarea', { id, name: f.name, rows: 4, class: 'mono' });
      } else {
        input = h('input', { id, name: f.name, type: 'text' });
      }
      if (f.value !== undefined) input.value = f.value;
      inputs[f.name] = input;
      return h('div', { class: 'field' }, h('label', { for: id }, f.label), input);
    });
    const cancel = h('button', { type: 'button', class: 'btn', onclick: () => close(null) }, 'Cancel');
    const ok = h('button', { type: 'submit', class: danger ? 'btn btn-danger' : 'btn btn-primary' }, confirm);
    const form = h('form', { method: 'dialog' },
      h('h2', { id: 'dlg-title' }, title),
      message ? h('p', {}, message) : null,
      body,
      h('div', { class: 'dialog-buttons' }, cancel, ok));
    const dialog = h('dialog', { 'aria-labelledby': 'dlg-title', class: 'dialog' }, form);
    let done = false;
    function close(value) {
      if (done) return;
      done = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    }
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const values = {};
      for (const [name, input] of Object.entries(inputs)) values[name] = input.value;
      close(values);
    });
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); close(null); });
    document.body.append(dialog);
    dialog.showModal();
    (fields.length ? Object.values(inputs)[0] : ok).focus();
  });
}
