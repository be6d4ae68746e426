// A few DOM helpers: elements from tags, properties and children, without a framework.

import { canSignIn, signIn } from './login.js';

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'selected', 'open']);

/** h('a', {href: '/x', class: 'link', onclick: fn}, 'text', child, [more, children]) */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') element.className = value;
    else if (name === 'style') Object.assign(element.style, value);
    else if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (PROPERTIES.has(name)) element[name] = value;
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

/** An in-app link: navigates with the History API (app.js listens for these clicks). */
export function link(href, ...children) {
  return h('a', { href, 'data-link': true }, ...children);
}

/** A Connect error as people read it: what failed, the code, and the server's message. */
export function errorBox(error, what = '') {
  const code = error && error.code ? error.code : 'error';
  const message = error && error.message ? error.message : String(error);
  return h('div', { class: 'error-box', role: 'alert', 'data-code': code },
    h('strong', {}, what ? `${what} failed` : 'Request failed'),
    h('span', { class: 'code' }, code),
    h('div', { class: 'message' }, message),
    code === 'unauthenticated' ? unauthenticatedHint() : null);
}

/** What to do about `unauthenticated`: sign in, once the API is seen to name an identity provider;
 * else paste a token. */
function unauthenticatedHint() {
  const hint = h('div', { class: 'hint' }, 'The API wants a token: use “Token” at the top right to paste one.');
  canSignIn().then((available) => {
    if (!available) return;
    const button = h('button', { class: 'button small primary', type: 'button', 'data-sign-in': true }, 'Sign in');
    button.addEventListener('click', () => startSignIn(button));
    replace(hint, 'The API wants you signed in: ', button, ' (or paste a token with “Token” at the top right).');
  });
  return hint;
}

/** signIn() from a button: it leaves the page, or says why it cannot. */
export function startSignIn(button) {
  button.disabled = true;
  signIn().catch((error) => {
    button.disabled = false;
    toast(`Cannot sign in: ${error.message}`, 'bad');
  });
}

export function spinner(text = 'Loading…') {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spinner' }), text);
}

/** A modal dialog; resolves to the form's values when confirmed, null when cancelled. */
export function ask({ title, message, fields = [], confirm = 'OK', danger = false, id = 'dialog' }) {
  return new Promise((resolve) => {
    const inputs = fields.map((field) => h('input', {
      name: field.name, value: field.value || '', placeholder: field.placeholder || '', type: field.type || 'text',
      'aria-label': field.label, autocomplete: 'off',
    }));
    const dialog = h('dialog', { class: 'dialog', id },
      h('form', { method: 'dialog' },
        h('h2', {}, title),
        message ? h('p', {}, message) : null,
        fields.map((field, index) => h('label', {}, h('span', {}, field.label), inputs[index])),
        h('div', { class: 'dialog-buttons' },
          h('button', { value: 'cancel', class: 'button', type: 'submit', formnovalidate: true }, 'Cancel'),
          h('button', { value: 'confirm', class: danger ? 'button danger' : 'button primary', type: 'submit', id: `${id}-confirm` }, confirm))));
    dialog.addEventListener('close', () => {
      const values = Object.fromEntries(inputs.map((input) => [input.name, input.value]));
      dialog.remove();
      resolve(dialog.returnValue === 'confirm' ? values : null);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

let toastTimer = 0;
export function toast(text, tone = 'info') {
  let box = document.getElementById('toast');
  if (!box) {
    box = h('div', { id: 'toast', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  box.className = `toast ${tone} shown`;
  box.textContent = text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove('shown'), 4000);
}

/** Resolves at once while the tab is shown, else when it is shown again: a hidden tab watches nothing. */
export function whenVisible() {
  if (!document.hidden) return Promise.resolve();
  return new Promise((resolve) => {
    const shown = () => {
      if (document.hidden) return;
      document.removeEventListener('visibilitychange', shown);
      resolve();
    };
    document.addEventListener('visibilitychange', shown);
  });
}
