// The runs of a project and domain, newest first: RunService/ListRuns, paged, filtered by phase,
// task and trigger (kept in the URL, so a filtered list can be shared), refreshed while shown.

import { call, RUNS } from './api.js';
import { errorBox, h, link, replace, spinner, whenVisible } from './dom.js';
import { ago, dateTime, duration, FILTER_PHASES, PHASES, phaseBadge, span } from './format.js';

const PAGE_SIZE = 25;
const REFRESH_MS = 5000; // the first page follows new runs and phase changes

export function runPath({ domain, project }, run, action) {
  const base = `/v2/domain/${encodeURIComponent(domain)}/project/${encodeURIComponent(project)}/runs/${encodeURIComponent(run)}`;
  return action ? `${base}?i=${encodeURIComponent(action)}` : base;
}

function sourceOf(action) {
  const metadata = action.metadata || {};
  if (metadata.triggerName) return h('span', { class: 'chip', title: 'started by a trigger' }, `⏱ ${metadata.triggerName}`);
  const source = (metadata.source || '').replace(/^RUN_SOURCE_/, '').toLowerCase().replace(/_/g, ' ');
  return source ? h('span', { class: 'chip muted' }, source) : h('span', { class: 'muted' }, '—');
}

export function runsView(root, scope) {
  const query = new URLSearchParams(location.search);
  const filters = { phase: query.get('phase') || '', task: query.get('task') || '', trigger: query.get('trigger') || '' };
  const tokens = ['']; // the token of each page seen so far: Newer goes back, Older forward
  let page = 0;
  let stopped = false;
  let timer = 0;
  let shown = '';

  const phase = h('select', { name: 'phase', 'aria-label': 'Phase' },
    h('option', { value: '' }, 'Any phase'),
    FILTER_PHASES.map((key) => h('option', { value: key, selected: key === filters.phase }, PHASES[key].label)));
  const task = h('input', { name: 'task', value: filters.task, placeholder: 'Task name contains…', 'aria-label': 'Task', type: 'search' });
  const trigger = h('input', { name: 'trigger', value: filters.trigger, placeholder: 'Trigger name', 'aria-label': 'Trigger', type: 'search' });
  const form = h('form', { class: 'filters', id: 'run-filters' }, phase, task, trigger,
    h('button', { class: 'button', type: 'submit' }, 'Filter'),
    (filters.phase || filters.task || filters.trigger) ? h('a', { href: location.pathname, 'data-link': true, class: 'clear' }, 'Clear') : null);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (phase.value) next.set('phase', phase.value);
    if (task.value.trim()) next.set('task', task.value.trim());
    if (trigger.value.trim()) next.set('trigger', trigger.value.trim());
    history.pushState(null, '', `${location.pathname}${next.toString() ? `?${next}` : ''}`);
    window.dispatchEvent(new PopStateEvent('popstate'));
  });
  phase.addEventListener('change', () => form.requestSubmit());

  const body = h('div', { class: 'runs-body' }, spinner('Loading runs…'));
  const pager = h('div', { class: 'pager' });
  replace(root,
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, 'Runs'), h('p', { class: 'subtitle' }, `${scope.project} · ${scope.domain}`)),
      form),
    body, pager);

  function request(token) {
    const list = [];
    if (filters.phase) list.push({ function: 'EQUAL', field: 'phase', values: [`ACTION_PHASE_${filters.phase}`] });
    if (filters.task) list.push({ function: 'CONTAINS', field: 'task_name', values: [filters.task] });
    if (filters.trigger) list.push({ function: 'EQUAL', field: 'trigger_name', values: [filters.trigger] });
    return { projectId: { name: scope.project, domain: scope.domain }, request: { limit: PAGE_SIZE, token, filters: list } };
  }

  async function load({ quiet = false } = {}) {
    clearTimeout(timer);
    if (!quiet) replace(body, spinner('Loading runs…'));
    try {
      const answer = await call(`${RUNS}/ListRuns`, request(tokens[page]));
      if (stopped) return;
      const runs = answer.runs || [];
      tokens[page + 1] = answer.token || '';
      const fingerprint = JSON.stringify(answer);
      if (fingerprint !== shown || !quiet) {
        shown = fingerprint;
        replace(body, runs.length ? table(runs) : empty());
      } else {
        refreshTimes();
      }
      renderPager();
    } catch (error) {
      if (stopped) return;
      replace(body, errorBox(error, 'Listing runs'));
    }
    if (!stopped && page === 0) timer = setTimeout(() => whenVisible().then(() => !stopped && load({ quiet: true })), REFRESH_MS);
  }

  function empty() {
    const filtered = filters.phase || filters.task || filters.trigger;
    return h('div', { class: 'empty' },
      h('h2', {}, filtered ? 'No runs match these filters' : 'No runs yet'),
      filtered ? null : h('p', {}, 'Start one with the flyte CLI or SDK, e.g. ', h('code', {}, `flyte run --project ${scope.project} --domain ${scope.domain} hello.py main`), ', and it shows up here.'));
  }

  function table(runs) {
    const now = Date.now();
    return h('table', { class: 'grid runs', id: 'runs-table' },
      h('thead', {}, h('tr', {}, ['Run', 'Phase', 'Task', 'Started by', 'Started', 'Duration'].map((name) => h('th', {}, name)))),
      h('tbody', {}, runs.map((run) => {
        const action = run.action || {};
        const name = action.id?.run?.name || '';
        const status = action.status || {};
        const { start, took } = span(status, now);
        const taskName = action.metadata?.task?.id?.name || action.metadata?.funtionName || '—';
        return h('tr', { 'data-run': name, class: 'clickable', onclick: (event) => {
          if (!event.target.closest('a')) document.getElementById(`run-link-${name}`)?.click();
        } },
        h('td', {}, link(runPath(scope, name), h('span', { class: 'run-name', id: `run-link-${name}` }, name))),
        h('td', {}, phaseBadge(status.phase)),
        h('td', { class: 'mono-ish' }, taskName),
        h('td', {}, sourceOf(action)),
        h('td', { title: dateTime(start), 'data-since': start ?? '' }, ago(start, now)),
        h('td', { class: 'num' }, duration(took)));
      })));
  }

  function refreshTimes() {
    const now = Date.now();
    for (const cell of body.querySelectorAll('[data-since]')) {
      const since = Number(cell.dataset.since);
      if (since) cell.textContent = ago(since, now);
    }
  }

  function renderPager() {
    const newer = h('button', { class: 'button', type: 'button', disabled: page === 0, id: 'newer-runs' }, '← Newer');
    const older = h('button', { class: 'button', type: 'button', disabled: !tokens[page + 1], id: 'older-runs' }, 'Older →');
    newer.addEventListener('click', () => { page -= 1; load(); });
    older.addEventListener('click', () => { page += 1; load(); });
    replace(pager, newer, h('span', { class: 'muted' }, `Page ${page + 1}`), older);
  }

  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
