// The page for what does not exist: a run, a task, or a path; never a blank page.

import { h, replace } from './dom.js';

export function notFoundView(root, { title, message, back }) {
  replace(root, h('section', { class: 'not-found', 'data-view': 'not-found' },
    h('div', { class: 'not-found-mark', 'aria-hidden': 'true' }, '404'),
    h('h1', {}, title),
    h('p', {}, message),
    back ? h('p', {}, back) : null));
}
