// Deployed tasks and their versions (TaskService/ListTasks), and triggers with activate and
// deactivate (TriggerService/ListTriggers, UpdateTriggers).

import { call, TASKS, TRIGGERS } from './api.js';
import { errorBox, h, link, replace, spinner, toast } from './dom.js';
import { ago, dateTime, millis } from './format.js';

const PAGE_SIZE = 100;
// A task's versions, read newest first one ListTasks call each (ListTasks answers the latest
// version of each name among those passing the filters); at most this many.
const MAX_VERSIONS = 25;

function scopePath({ domain, project }, section) {
  return `/v2/domain/${encodeURIComponent(domain)}/project/${encodeURIComponent(project)}/${section}`;
}

function projectId(scope) {
  return { name: scope.project, domain: scope.domain };
}

function head(title, scope, ...extra) {
  return h('div', { class: 'page-head' },
    h('div', {}, h('h1', {}, title), h('p', { class: 'subtitle' }, `${scope.project} · ${scope.domain}`)), ...extra);
}

function schedule(spec = {}) {
  const cron = spec.schedule?.cron?.expression || spec.schedule?.cronExpression;
  if (cron) return `cron ${cron}${spec.schedule?.cron?.timezone ? ` (${spec.schedule.cron.timezone})` : ''}`;
  const rate = spec.schedule?.rate;
  if (rate) return `every ${rate.value} ${(rate.unit || 'MINUTE').toLowerCase()}${Number(rate.value) === 1 ? '' : 's'}`;
  return (spec.type || '').replace(/^TYPE_/, '').toLowerCase() || '—';
}

export function tasksView(root, scope) {
  let stopped = false;
  const body = h('div', {}, spinner('Loading tasks…'));
  replace(root, head('Tasks', scope), body);
  (async () => {
    try {
      const answer = await call(`${TASKS}/ListTasks`, { projectId: projectId(scope), request: { limit: PAGE_SIZE } });
      if (stopped) return;
      const tasks = answer.tasks || [];
      if (!tasks.length) {
        replace(body, h('div', { class: 'empty' }, h('h2', {}, 'No deployed tasks'), h('p', {}, 'Deploy some with ', h('code', {}, 'flyte deploy'), '.')));
        return;
      }
      replace(body, h('table', { class: 'grid', id: 'tasks-table' },
        h('thead', {}, h('tr', {}, ['Task', 'Latest version', 'Environment', 'Triggers', 'Deployed'].map((c) => h('th', {}, c)))),
        h('tbody', {}, tasks.map((task) => {
          const id = task.taskId || {};
          const deployed = millis(task.metadata?.deployedAt);
          const trigger = task.metadata?.triggersSummary;
          return h('tr', { 'data-task': id.name },
            h('td', {}, link(`${scopePath(scope, 'tasks')}/${encodeURIComponent(id.name)}`, id.name)),
            h('td', { class: 'mono' }, id.version),
            h('td', {}, task.metadata?.environmentName || h('span', { class: 'muted' }, '—')),
            h('td', {}, trigger?.details ? `${trigger.details.name} (${trigger.details.active ? 'active' : 'inactive'})`
              : trigger?.stats ? `${trigger.stats.active || 0} of ${trigger.stats.total || 0} active` : h('span', { class: 'muted' }, '—')),
            h('td', { title: dateTime(deployed) }, ago(deployed)));
        }))));
    } catch (error) {
      if (!stopped) replace(body, errorBox(error, 'Listing tasks'));
    }
  })();
  return () => { stopped = true; };
}

/** Every version of one task, newest first. */
async function taskVersions(scope, name) {
  const versions = [];
  let before = null;
  while (versions.length < MAX_VERSIONS) {
    const filters = [{ function: 'EQUAL', field: 'name', values: [name] }];
    if (before) filters.push({ function: 'LESS_THAN', field: 'created_at', values: [before] });
    const answer = await call(`${TASKS}/ListTasks`, { projectId: projectId(scope), request: { limit: 1, filters } });
    const task = (answer.tasks || [])[0];
    if (!task) break;
    versions.push(task);
    before = task.metadata?.deployedAt;
    if (!before) break;
  }
  return { versions, more: versions.length === MAX_VERSIONS };
}

export function taskView(root, { domain, project, task }) {
  const scope = { domain, project };
  let stopped = false;
  const body = h('div', {}, spinner('Loading versions…'));
  const runsLink = link(`${scopePath(scope, 'runs')}?task=${encodeURIComponent(task)}`, 'Runs of this task →');
  replace(root, h('div', { class: 'crumbs' }, link(scopePath(scope, 'tasks'), 'Tasks'), ' / ', task), head(task, scope, runsLink), body);
  (async () => {
    try {
      const { versions, more } = await taskVersions(scope, task);
      if (stopped) return;
      if (!versions.length) {
        replace(body, h('section', { class: 'not-found', 'data-view': 'not-found' }, h('h1', {}, 'Task not found'),
          h('p', {}, `No task “${task}” is deployed in ${project} / ${domain}.`)));
        return;
      }
      replace(body, h('table', { class: 'grid', id: 'versions-table' },
        h('thead', {}, h('tr', {}, ['Version', 'Deployed', 'Environment', 'Description'].map((c) => h('th', {}, c)))),
        h('tbody', {}, versions.map((version) => {
          const deployed = millis(version.metadata?.deployedAt);
          return h('tr', { 'data-version': version.taskId?.version },
            h('td', { class: 'mono' }, version.taskId?.version),
            h('td', { title: dateTime(deployed) }, `${dateTime(deployed)} (${ago(deployed)})`),
            h('td', {}, version.metadata?.environmentName || '—'),
            h('td', {}, version.metadata?.shortDescription || h('span', { class: 'muted' }, '—')));
        }))),
      more ? h('p', { class: 'muted' }, `The ${MAX_VERSIONS} newest versions.`) : null);
    } catch (error) {
      if (!stopped) replace(body, errorBox(error, 'Listing versions'));
    }
  })();
  return () => { stopped = true; };
}

export function triggersView(root, scope) {
  let stopped = false;
  const body = h('div', {}, spinner('Loading triggers…'));
  replace(root, head('Triggers', scope), body);

  async function load() {
    try {
      const answer = await call(`${TRIGGERS}/ListTriggers`, { projectId: projectId(scope), request: { limit: PAGE_SIZE } });
      if (stopped) return;
      const triggers = answer.triggers || [];
      if (!triggers.length) {
        replace(body, h('div', { class: 'empty' }, h('h2', {}, 'No triggers'), h('p', {}, 'Triggers deployed with a task (or through TriggerService) show up here.')));
        return;
      }
      replace(body, h('table', { class: 'grid', id: 'triggers-table' },
        h('thead', {}, h('tr', {}, ['Trigger', 'Task', 'Schedule', 'State', 'Last fired', 'Updated', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, triggers.map(row))));
    } catch (error) {
      if (!stopped) replace(body, errorBox(error, 'Listing triggers'));
    }
  }

  function row(trigger) {
    const name = trigger.id?.name || {};
    const fired = millis(trigger.status?.triggeredAt);
    const updated = millis(trigger.status?.updatedAt);
    const toggle = h('button', { class: trigger.active ? 'button small' : 'button small primary', type: 'button', 'data-toggle': name.name },
      trigger.active ? 'Deactivate' : 'Activate');
    toggle.addEventListener('click', async () => {
      toggle.disabled = true;
      try {
        await call(`${TRIGGERS}/UpdateTriggers`, { names: [name], active: !trigger.active });
        toast(`${name.name} ${trigger.active ? 'deactivated' : 'activated'}`);
      } catch (error) {
        toast(`Updating ${name.name} failed — ${error.code}: ${error.message}`, 'bad');
      }
      load();
    });
    return h('tr', { 'data-trigger': name.name },
      h('td', {}, h('strong', {}, name.name), h('span', { class: 'muted' }, ` rev ${trigger.id?.revision || 1}`)),
      h('td', {}, link(`${scopePath(scope, 'tasks')}/${encodeURIComponent(name.taskName || '')}`, name.taskName || '—')),
      h('td', { class: 'mono' }, schedule(trigger.automationSpec)),
      h('td', {}, h('span', { class: trigger.active ? 'state on' : 'state off' }, trigger.active ? 'Active' : 'Inactive')),
      h('td', { title: dateTime(fired) }, fired ? ago(fired) : h('span', { class: 'muted' }, 'never')),
      h('td', { title: dateTime(updated) }, ago(updated)),
      h('td', { class: 'right' }, toggle));
  }

  load();
  return () => { stopped = true; };
}
