// A code editor with JavaScript highlighting: CodeMirror 5 (vendored, see
// ui/vendor/codemirror-5.65.21/LICENSE), with a plain textarea if it failed to load.
import { h } from './dom.mjs';

/**
 * An editor for a mapper or a reducer. `onChange(text)` is called on every edit. Returns
 * {element, setValue, focus}.
 */
export function codeEditor({ id, value, label, onChange, readOnly = false }) {
  const textarea = h('textarea', { id, class: 'mono code-fallback', rows: 5, 'aria-label': label, spellcheck: 'false' });
  textarea.value = value;
  const element = h('div', { class: 'code-editor' }, textarea);
  const CodeMirror = window.CodeMirror;
  if (!CodeMirror) {
    textarea.readOnly = readOnly;
    textarea.addEventListener('input', () => onChange && onChange(textarea.value));
    return { element, setValue: (v) => { textarea.value = v; }, focus: () => textarea.focus() };
  }
  const cm = CodeMirror.fromTextArea(textarea, {
    mode: 'javascript',
    lineNumbers: true,
    indentUnit: 2,
    tabSize: 2,
    readOnly,
    viewportMargin: Infinity,
    screenReaderLabel: label,
    extraKeys: { Tab: false, 'Shift-Tab': false }, // Tab leaves the editor, for keyboard users
  });
  cm.on('change', () => onChange && onChange(cm.getValue()));
  // It measures itself once it is in the page.
  requestAnimationFrame(() => cm.refresh());
  return { element, setValue: (v) => cm.setValue(v), focus: () => cm.focus() };
}
