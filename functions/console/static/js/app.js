// The console's shell: the top bar (project, domain, sections, sign-in, token) and the router, which
// maps the URLs the flyte CLI prints (/v2/domain/<domain>/project/<project>/runs/<run>) to views,
// and the identity provider's return to CALLBACK_PATH to the end of a sign-in (login.js).
// Each view mounts into the page and returns a function that stops its timers and requests.

import { call, PROJECTS } from './api.js';
import { bearerToken, setBearerToken } from './auth.js';
import { ask, errorBox, h, link, replace, spinner, startSignIn, toast } from './dom.js';
import { CALLBACK_PATH, canSignIn, completeSignIn } from './login.js';
import { notFoundView } from './notfound.js';
import { taskView, tasksView, triggersView } from './registry.js';
import { runView } from './run.js';
import { runsView } from './runs.js';

const DEFAULT_PROJECT = 'flytesnacks'; // Flyte's seed project
const DEFAULT_DOMAIN = 'development';
const LAST_SCOPE_KEY = 'flyte-console.scope';
const SECTION = '^/v2/domain/([^/]+)/project/([^/]+)';

const ROUTES = [
  [new RegExp(`${SECTION}/runs/([^/]+)/?$`), 'runs', ([domain, project, run]) => (root) => runView(root, { domain, project, run })],
  [new RegExp(`${SECTION}/runs/?$`), 'runs', ([domain, project]) => (root) => runsView(root, { domain, project })],
  [new RegExp(`${SECTION}/tasks/([^/]+)/?$`), 'tasks', ([domain, project, task]) => (root) => taskView(root, { domain, project, task })],
  [new RegExp(`${SECTION}/tasks/?$`), 'tasks', ([domain, project]) => (root) => tasksView(root, { domain, project })],
  [new RegExp(`${SECTION}/triggers/?$`), 'triggers', ([domain, project]) => (root) => triggersView(root, { domain, project })],
];

let unmount = () => {};
let projects = null; // ListProjects' answer, once; [] when the control plane has none to list

export function scopePath({ domain, project }, section = 'runs') {
  return `/v2/domain/${encodeURIComponent(domain)}/project/${encodeURIComponent(project)}/${section}`;
}

function lastScope() {
  try {
    const saved = JSON.parse(localStorage.getItem(LAST_SCOPE_KEY) || 'null');
    if (saved && saved.project && saved.domain) return saved;
  } catch {
    // nothing saved, or not JSON
  }
  return null;
}

async function defaultScope() {
  const saved = lastScope();
  if (saved) return saved;
  const listed = await loadProjects();
  const first = listed[0];
  if (first) return { project: first.id || first.name, domain: first.domains?.[0]?.id || DEFAULT_DOMAIN };
  return { project: DEFAULT_PROJECT, domain: DEFAULT_DOMAIN };
}

async function loadProjects() {
  if (projects === null) {
    try {
      const answer = await call(`${PROJECTS}/ListProjects`, { limit: 100 });
      projects = answer.projects?.projects || [];
    } catch {
      projects = []; // no ProjectService here (or no token yet): the scope is typed instead
    }
  }
  return projects;
}

function topBar(scope, section) {
  const projectPicker = h('select', { 'aria-label': 'Project', id: 'project-picker' });
  const domainPicker = h('select', { 'aria-label': 'Domain', id: 'domain-picker' });
  const fill = (listed) => {
    const names = new Set(listed.map((p) => p.id || p.name));
    names.add(scope.project);
    replace(projectPicker, [...names].sort().map((name) => h('option', { value: name, selected: name === scope.project }, name)));
    const project = listed.find((p) => (p.id || p.name) === scope.project);
    const domains = new Set((project?.domains || []).map((d) => d.id || d.name));
    if (domains.size === 0) ['development', 'staging', 'production'].forEach((d) => domains.add(d));
    domains.add(scope.domain);
    replace(domainPicker, [...domains].map((name) => h('option', { value: name, selected: name === scope.domain }, name)));
  };
  fill([]);
  loadProjects().then(fill);
  const go = () => navigate(scopePath({ project: projectPicker.value, domain: domainPicker.value }, section || 'runs'));
  projectPicker.addEventListener('change', go);
  domainPicker.addEventListener('change', go);
  const tab = (name, label) => h('a', {
    href: scopePath(scope, name), 'data-link': true, class: section === name ? 'tab current' : 'tab',
    'aria-current': section === name ? 'page' : null,
  }, label);
  const tokenButton = h('button', { class: bearerToken() ? 'button small token set' : 'button small token', id: 'token-button', type: 'button', title: 'The bearer token API calls carry' },
    bearerToken() ? 'Token ✓' : 'Token');
  tokenButton.addEventListener('click', async () => {
    const values = await ask({
      title: 'API token',
      message: 'Calls from this tab carry this bearer token (kept for this tab only). Empty: no token.',
      fields: [{ name: 'token', label: 'Bearer token', value: bearerToken(), placeholder: 'eyJ…' }],
      confirm: 'Use token',
      id: 'token-dialog',
    });
    if (values) {
      setBearerToken(values.token);
      toast(values.token ? 'Token set' : 'Token cleared');
      render();
    }
  });
  const signInButton = h('button', { class: 'button small primary', id: 'sign-in', type: 'button', hidden: true }, 'Sign in');
  signInButton.addEventListener('click', () => startSignIn(signInButton));
  if (!bearerToken()) canSignIn().then((available) => { signInButton.hidden = !available; });
  return h('header', { class: 'topbar' },
    h('a', { href: scopePath(scope), 'data-link': true, class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, 'F'), 'Flyte', h('span', { class: 'brand-sub' }, 'console')),
    h('nav', { class: 'tabs', 'aria-label': 'Sections' }, tab('runs', 'Runs'), tab('tasks', 'Tasks'), tab('triggers', 'Triggers')),
    h('div', { class: 'scope' }, h('label', {}, 'Project', projectPicker), h('label', {}, 'Domain', domainPicker)),
    h('div', { class: 'spacer' }),
    signInButton,
    tokenButton);
}

/** Back from the identity provider: the code exchanged, then the page the sign-in started on. */
function callbackView(app) {
  const scope = lastScope() || { project: DEFAULT_PROJECT, domain: DEFAULT_DOMAIN };
  const main = h('main', { class: 'view' }, spinner('Signing in…'));
  replace(app, main);
  let stopped = false;
  completeSignIn(new URLSearchParams(location.search)).then((back) => {
    projects = null; // asked again, with the token
    if (!stopped) navigate(back, { replace: true });
  }, (error) => {
    if (stopped) return;
    history.replaceState(null, '', CALLBACK_PATH); // the answer's parameters are spent
    replace(app, topBar(scope, ''), main);
    replace(main, h('section', { 'data-view': 'sign-in' }, errorBox(error, 'Sign-in'), h('p', {}, link(scopePath(scope), 'Back to the runs'))));
  });
  return () => { stopped = true; };
}

export function navigate(path, { replace: replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

async function render() {
  unmount();
  unmount = () => {};
  const app = document.getElementById('app');
  const path = location.pathname;
  if (path === CALLBACK_PATH) {
    unmount = callbackView(app);
    return;
  }
  if (/^\/(v2\/?)?$/.test(path) || new RegExp(`${SECTION}/?$`).test(path)) {
    const found = path.match(new RegExp(`${SECTION}/?$`));
    const scope = found ? { domain: decodeURIComponent(found[1]), project: decodeURIComponent(found[2]) } : await defaultScope();
    navigate(scopePath(scope), { replace: true });
    return;
  }
  for (const [pattern, section, view] of ROUTES) {
    const found = path.match(pattern);
    if (!found) continue;
    const params = found.slice(1).map(decodeURIComponent);
    const scope = { domain: params[0], project: params[1] };
    localStorage.setItem(LAST_SCOPE_KEY, JSON.stringify(scope));
    const main = h('main', { class: 'view' });
    replace(app, topBar(scope, section), main);
    unmount = view(params)(main) || (() => {});
    return;
  }
  const scope = lastScope() || { project: DEFAULT_PROJECT, domain: DEFAULT_DOMAIN };
  const main = h('main', { class: 'view' });
  replace(app, topBar(scope, ''), main);
  notFoundView(main, { title: 'Page not found', message: `Nothing lives at ${path}.`, back: link(scopePath(scope), 'Back to the runs') });
}

document.addEventListener('click', (event) => {
  const anchor = event.target.closest('a[data-link]');
  if (!anchor || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  if (anchor.getAttribute('href') !== location.pathname + location.search) navigate(anchor.getAttribute('href'));
});
window.addEventListener('popstate', render);
render();
