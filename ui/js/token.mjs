// The API token, when the server asks for one: asked once, kept in sessionStorage.
import { h } from './dom.mjs';

const KEY = 'aetr.apiToken';
let asking = null;

export function token() {
  return sessionStorage.getItem(KEY);
}

/** Shows the token prompt (once, however many requests got a 401) and resolves when it is set. */
export function askForToken(message) {
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const input = h('input', { id: 'api-token', type: 'password', autocomplete: 'off', required: true });
    const form = h('form', { method: 'dialog' },
      h('h2', { id: 'token-title' }, 'API token'),
      h('p', {}, message || 'This server needs an API token. It is kept in this browser tab only.'),
      h('div', { class: 'field' }, h('label', { for: 'api-token' }, 'Token'), input),
      h('div', { class: 'dialog-buttons' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in')));
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'token-title' }, form);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY, value);
      dialog.close();
      dialog.remove();
      asking = null;
      resolve(value);
    });
    dialog.addEventListener('cancel', (e) => e.preventDefault());
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
  return asking;
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}
