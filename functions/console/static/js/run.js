// One run: its action tree with each action's phase, attempts, start and duration beside a
// timeline of the same rows, and the selected action's details (error, attempts, inputs,
// outputs, log tail). While the run is not terminal the page follows it through
// RunService/WatchActions (a buffered server stream, subscribed again as each one ends); abort
// of the run or of one action is a button away.

import { allPages, call, DATA, RUNS, stream } from './api.js';
import { ask, errorBox, h, link, replace, spinner, toast, whenVisible } from './dom.js';
import { clock, dateTime, duration, isTerminal, literal, millis, phaseBadge, phaseKey, PHASES, span } from './format.js';
import { notFoundView } from './notfound.js';

const ROOT = 'a0'; // the root action of every run
const LIST_PAGE = 200; // ListActions' largest page
const TICK_MS = 1000; // running durations and timeline bars move every second
const RETRY_MAX_MS = 10000; // a failing watch is retried with backoff up to this
const SETTLE_POLL_MS = 2000; // after the run ends, descendants may still be settling (an abort's cascade)
const SETTLE_FOR_MS = 30000;
const INDENT_PX = 18;
// Steps of the time axis, the first that gives at most AXIS_TICKS ticks.
const AXIS_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400];
const AXIS_TICKS = 6;

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

export function runView(root, { domain, project, run }) {
  const scope = { domain, project };
  const runId = { project, domain, name: run };
  const controller = new AbortController();
  const state = {
    details: null, // RunDetails of the run
    actions: new Map(), // name -> Action
    counts: new Map(), // name -> children's phase counts (WatchActions)
    collapsed: new Set(),
    selected: new URLSearchParams(location.search).get('i') || ROOT,
    selectedStatus: '',
    stopped: false,
    detailGeneration: 0,
  };
  const rows = new Map(); // name -> {row, duration, bar}
  let ticker = 0;

  const runsPath = `/v2/domain/${encodeURIComponent(domain)}/project/${encodeURIComponent(project)}/runs`;
  const header = h('div', { class: 'run-head' });
  const liveLine = h('span', { class: 'live', id: 'live-status' });
  const axis = h('div', { class: 'axis' });
  const treeRows = h('div', { class: 'tree-rows', role: 'tree', 'aria-label': 'Actions' });
  const panel = h('aside', { class: 'detail-panel', id: 'action-details', 'aria-live': 'polite' });

  // --- loading ---------------------------------------------------------------------------

  async function listActions() {
    const actions = await allPages(async (token) => {
      const answer = await call(`${RUNS}/ListActions`, { runId, request: { limit: LIST_PAGE, token } }, { signal: controller.signal });
      return { items: answer.actions || [], token: answer.token };
    });
    return actions;
  }

  async function start() {
    replace(root, spinner(`Loading run ${run}…`));
    const missing = () => notFoundView(root, {
      title: 'Run not found',
      message: `There is no run “${run}” in project ${project}, domain ${domain}. It may have been started in another project or domain.`,
      back: link(runsPath, `← All runs of ${project} / ${domain}`),
    });
    try {
      // ListActions first: a run that does not exist has no actions (no failed request to show)
      const actions = await listActions();
      if (state.stopped) return;
      if (!actions.length) {
        missing();
        return;
      }
      for (const action of actions) state.actions.set(action.id.name, action);
      state.details = (await call(`${RUNS}/GetRunDetails`, { runId }, { signal: controller.signal })).details || {};
    } catch (error) {
      if (state.stopped) return;
      if (error.code === 'not_found') {
        missing();
      } else {
        replace(root, h('div', { class: 'crumbs' }, link(runsPath, 'Runs'), ' / ', run), errorBox(error, `Loading run ${run}`));
      }
      return;
    }
    if (state.stopped) return;
    if (!state.actions.has(ROOT) && state.details.action) state.actions.set(ROOT, state.details.action);
    if (!state.actions.has(state.selected)) state.selected = ROOT;
    replace(root, header,
      h('div', { class: 'run-body' },
        h('section', { class: 'tree-panel', 'aria-label': 'Action tree and timeline' },
          h('div', { class: 'tree-head' },
            h('div', { class: 'cell name' }, 'Action'), h('div', { class: 'cell phase-cell' }, 'Phase'),
            h('div', { class: 'cell num' }, 'Attempts'), h('div', { class: 'cell start' }, 'Start'),
            h('div', { class: 'cell num' }, 'Duration'), h('div', { class: 'cell timeline' }, axis)),
          treeRows),
        panel));
    renderHeader();
    renderTree();
    select(state.selected, { push: false });
    ticker = setInterval(tick, TICK_MS);
    if (!isTerminal(rootPhase())) follow();
    else setLive('ended');
  }

  function rootAction() {
    return state.actions.get(ROOT) || state.details?.action || {};
  }

  function rootPhase() {
    return rootAction().status?.phase;
  }

  // --- live updates ----------------------------------------------------------------------

  function setLive(mode, error) {
    liveLine.className = `live ${mode}`;
    if (mode === 'live') replace(liveLine, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Live');
    else if (mode === 'paused') replace(liveLine, `Live updates paused (${error.code}: ${error.message}); retrying…`);
    else if (mode === 'polling') replace(liveLine, h('span', { class: 'dot', 'aria-hidden': 'true' }), 'Live (polling)');
    else replace(liveLine, '');
  }

  async function follow() {
    let failures = 0;
    setLive('live');
    while (!state.stopped && !isTerminal(rootPhase())) {
      await whenVisible();
      if (state.stopped) return;
      try {
        const frames = await stream(`${RUNS}/WatchActions`, { runId }, { signal: controller.signal });
        apply(frames.flatMap((frame) => frame.enrichedActions || []));
        failures = 0;
        setLive('live');
      } catch (error) {
        if (state.stopped || error.name === 'AbortError') return;
        if (error.code === 'unimplemented') {
          await poll();
          return;
        }
        failures += 1;
        setLive('paused', error);
        await sleep(Math.min(RETRY_MAX_MS, 500 * 2 ** failures));
      }
    }
    await settle();
  }

  async function poll() {
    setLive('polling');
    while (!state.stopped && !isTerminal(rootPhase())) {
      await sleep(SETTLE_POLL_MS);
      await whenVisible();
      await refresh({ quiet: true });
    }
    await settle();
  }

  /** After the run ends: a few more reads until every action has ended too. */
  async function settle() {
    if (state.stopped) return;
    setLive('ended');
    await refresh({ quiet: true });
    const until = Date.now() + SETTLE_FOR_MS;
    while (!state.stopped && Date.now() < until && [...state.actions.values()].some((a) => !isTerminal(a.status?.phase))) {
      await sleep(SETTLE_POLL_MS);
      await refresh({ quiet: true });
    }
  }

  async function refresh({ quiet = false } = {}) {
    try {
      const [details, actions] = await Promise.all([
        call(`${RUNS}/GetRunDetails`, { runId }, { signal: controller.signal }),
        listActions(),
      ]);
      if (state.stopped) return;
      state.details = details.details || state.details;
      apply(actions.map((action) => ({ action })));
      renderHeader();
    } catch (error) {
      if (state.stopped || error.name === 'AbortError') return;
      if (!quiet) toast(`Refreshing failed: ${error.message}`, 'bad');
    }
  }

  function apply(enriched) {
    let changed = false;
    for (const item of enriched) {
      const action = item.action;
      if (!action?.id?.name) continue;
      const name = action.id.name;
      if (JSON.stringify(state.actions.get(name)) !== JSON.stringify(action)) {
        state.actions.set(name, action);
        changed = true;
      }
      if (item.childrenPhaseCounts) state.counts.set(name, item.childrenPhaseCounts);
    }
    if (!changed) return;
    renderHeader();
    renderTree();
    const selected = state.actions.get(state.selected);
    if (selected && JSON.stringify(selected.status) !== state.selectedStatus) loadDetails(state.selected, { quiet: true });
  }

  // --- the header ------------------------------------------------------------------------

  function renderHeader() {
    const action = rootAction();
    const status = action.status || {};
    const metadata = action.metadata || {};
    const { start, took } = span(status);
    const taskName = metadata.task?.id?.name || state.details?.action?.task?.taskTemplate?.id?.name || metadata.funtionName || '';
    const taskVersion = metadata.task?.id?.version;
    const tally = new Map();
    for (const each of state.actions.values()) {
      const key = phaseKey(each.status?.phase);
      tally.set(key, (tally.get(key) || 0) + 1);
    }
    const terminal = isTerminal(status.phase);
    const abort = terminal ? null : h('button', { class: 'button danger', id: 'abort-run', type: 'button', onclick: abortRun }, 'Abort run');
    const taskPath = taskName ? `/v2/domain/${encodeURIComponent(domain)}/project/${encodeURIComponent(project)}/tasks/${encodeURIComponent(taskName)}` : null;
    replace(header,
      h('div', { class: 'crumbs' }, link(runsPath, 'Runs'), ' / ', h('span', {}, run)),
      h('div', { class: 'title-row' },
        h('h1', { id: 'run-name' }, run),
        phaseBadge(status.phase, { id: 'run-phase' }),
        liveLine,
        h('div', { class: 'spacer' }),
        abort),
      h('dl', { class: 'facts' },
        fact('Task', taskName ? [taskPath ? link(taskPath, taskName) : taskName, taskVersion ? h('span', { class: 'muted' }, ` @ ${taskVersion}`) : null] : '—'),
        fact('Started by', metadata.triggerName ? `trigger ${metadata.triggerName}` : (metadata.source || '').replace(/^RUN_SOURCE_/, '').toLowerCase().replace(/_/g, ' ') || '—'),
        fact('Started', h('span', { title: dateTime(start) }, dateTime(start))),
        fact('Duration', h('span', { id: 'run-duration', class: 'num' }, duration(took))),
        fact('Actions', h('span', { class: 'tally' }, `${state.actions.size}`,
          [...tally.entries()].map(([key, count]) => h('span', { class: `tally-item phase-text-${key.toLowerCase()}` }, ` · ${count} ${PHASES[key].label.toLowerCase()}`))))));
  }

  function fact(name, value) {
    return h('div', { class: 'fact' }, h('dt', {}, name), h('dd', {}, value));
  }

  // --- the tree and its timeline ---------------------------------------------------------

  function children() {
    const byParent = new Map();
    for (const action of state.actions.values()) {
      const name = action.id.name;
      if (name === ROOT) continue;
      let parent = action.metadata?.parent || ROOT;
      if (!state.actions.has(parent)) parent = ROOT; // an orphan still shows, under the root
      if (!byParent.has(parent)) byParent.set(parent, []);
      byParent.get(parent).push(action);
    }
    const order = (a, b) => (millis(a.status?.startTime) ?? Infinity) - (millis(b.status?.startTime) ?? Infinity)
      || a.id.name.localeCompare(b.id.name, undefined, { numeric: true });
    for (const list of byParent.values()) list.sort(order);
    return byParent;
  }

  function scale(now = Date.now()) {
    let first = Infinity;
    let last = -Infinity;
    for (const action of state.actions.values()) {
      const { start, end } = span(action.status, now);
      if (start === null) continue;
      first = Math.min(first, start);
      last = Math.max(last, end ?? (isTerminal(action.status?.phase) ? start : now));
    }
    if (first === Infinity) return { first: now, total: 1000 };
    return { first, total: Math.max(1000, last - first) };
  }

  function label(action) {
    const metadata = action.metadata || {};
    return metadata.task?.shortName || metadata.funtionName || metadata.task?.id?.name || action.id.name;
  }

  function renderTree() {
    rows.clear();
    const byParent = children();
    const items = [];
    const walk = (action, depth) => {
      const kids = byParent.get(action.id.name) || [];
      items.push(treeRow(action, depth, kids.length));
      if (!state.collapsed.has(action.id.name)) kids.forEach((kid) => walk(kid, depth + 1));
    };
    const top = state.actions.get(ROOT);
    if (top) walk(top, 0);
    replace(treeRows, items);
    tick();
  }

  function treeRow(action, depth, childCount) {
    const name = action.id.name;
    const status = action.status || {};
    const key = phaseKey(status.phase);
    const caret = childCount
      ? h('button', {
        class: 'caret', type: 'button', 'aria-label': state.collapsed.has(name) ? 'Expand' : 'Collapse',
        'aria-expanded': String(!state.collapsed.has(name)),
        onclick: (event) => {
          event.stopPropagation();
          if (state.collapsed.has(name)) state.collapsed.delete(name);
          else state.collapsed.add(name);
          renderTree();
        },
      }, state.collapsed.has(name) ? '▸' : '▾')
      : h('span', { class: 'caret-space' });
    const durationCell = h('div', { class: 'cell num duration' });
    const bar = h('div', { class: `bar phase-bar-${key.toLowerCase()}${isTerminal(status.phase) ? '' : ' active'}`, title: `${label(action)}: ${PHASES[key].label}` });
    const kids = state.counts.get(name);
    const row = h('div', {
      class: `row${name === state.selected ? ' selected' : ''}`, role: 'treeitem', tabindex: 0,
      'aria-level': depth + 1, 'aria-selected': String(name === state.selected), 'data-action': name,
      onclick: () => select(name), onkeydown: (event) => { if (event.key === 'Enter') select(name); },
    },
    h('div', { class: 'cell name', style: { paddingLeft: `${8 + depth * INDENT_PX}px` } },
      caret,
      h('span', { class: 'action-label', title: label(action) }, label(action)),
      h('span', { class: 'action-id', title: name }, name),
      childCount ? h('span', { class: 'kids', title: kids ? 'children by phase' : 'children' }, `${childCount}`) : null),
    h('div', { class: 'cell phase-cell' }, phaseBadge(status.phase)),
    h('div', { class: 'cell num' }, String(status.attempts || 0)),
    h('div', { class: 'cell start', title: dateTime(millis(status.startTime)) }, clock(millis(status.startTime))),
    durationCell,
    h('div', { class: 'cell timeline' }, h('div', { class: 'track' }, bar)));
    rows.set(name, { action, row, duration: durationCell, bar });
    return row;
  }

  /** Durations and bars, recomputed against the clock while something runs. */
  function tick() {
    const now = Date.now();
    const { first, total } = scale(now);
    for (const { action, duration: cell, bar } of rows.values()) {
      const { start, end, took } = span(action.status, now);
      cell.textContent = duration(took);
      if (start === null) {
        bar.style.display = 'none';
        continue;
      }
      const stop = end ?? (isTerminal(action.status?.phase) ? start : now);
      bar.style.display = '';
      bar.style.left = `${((start - first) / total) * 100}%`;
      bar.style.width = `max(3px, ${((stop - start) / total) * 100}%)`;
    }
    renderAxis(total);
    const runDuration = document.getElementById('run-duration');
    if (runDuration) runDuration.textContent = duration(span(rootAction().status, now).took);
    const selected = state.actions.get(state.selected);
    const selectedDuration = document.getElementById('selected-duration');
    if (selectedDuration && selected && !isTerminal(selected.status?.phase)) {
      selectedDuration.textContent = duration(span(selected.status, now).took);
    }
    if (isTerminal(rootPhase()) && [...state.actions.values()].every((a) => isTerminal(a.status?.phase))) {
      clearInterval(ticker);
      ticker = 0;
    }
  }

  function renderAxis(total) {
    const step = (AXIS_STEPS_S.find((s) => total / 1000 / s <= AXIS_TICKS) || AXIS_STEPS_S.at(-1)) * 1000;
    const ticks = [];
    for (let at = 0; at <= total; at += step) {
      ticks.push(h('span', { class: 'tick', style: { left: `${(at / total) * 100}%` } }, at === 0 ? '0' : `+${offset(at)}`));
    }
    replace(axis, ticks);
  }

  /** An axis offset, as short as its step allows: 30s, 2m, 1m30s, 2h. */
  function offset(ms) {
    const seconds = Math.round(ms / 1000);
    if (seconds < 60) return `${seconds}s`;
    if (seconds < 3600) return seconds % 60 ? `${Math.floor(seconds / 60)}m${seconds % 60}s` : `${seconds / 60}m`;
    const minutes = Math.round(seconds / 60);
    return minutes % 60 ? `${Math.floor(minutes / 60)}h${minutes % 60}m` : `${minutes / 60}h`;
  }

  // --- the selected action ---------------------------------------------------------------

  function select(name, { push = true } = {}) {
    state.selected = name;
    for (const [each, { row }] of rows) {
      row.classList.toggle('selected', each === name);
      row.setAttribute('aria-selected', String(each === name));
    }
    if (push) {
      const url = new URL(location.href);
      url.searchParams.set('i', name);
      history.replaceState(null, '', url);
    }
    loadDetails(name);
  }

  async function loadDetails(name, { quiet = false } = {}) {
    const generation = ++state.detailGeneration;
    state.selectedStatus = JSON.stringify(state.actions.get(name)?.status);
    if (!quiet) replace(panel, spinner('Loading action…'));
    const actionId = { run: runId, name };
    const [details, data] = await Promise.allSettled([
      call(`${RUNS}/GetActionDetails`, { actionId }, { signal: controller.signal }),
      call(`${DATA}/GetActionData`, { actionId }, { signal: controller.signal }),
    ]);
    if (state.stopped || generation !== state.detailGeneration) return;
    if (details.status === 'rejected') {
      replace(panel, errorBox(details.reason, `Loading action ${name}`));
      return;
    }
    renderDetails(details.value.details || {}, data, generation);
  }

  function renderDetails(details, data, generation) {
    const name = details.id?.name || state.selected;
    const status = details.status || {};
    const metadata = details.metadata || {};
    const { start, end, took } = span(status);
    const attempts = details.attempts || [];
    const taskId = metadata.task?.id;
    const canAbort = !isTerminal(status.phase) && name !== ROOT;
    const logs = h('div', { class: 'logs-box' });
    const attemptNumbers = attempts.map((a) => a.attempt || 1);
    const latest = attemptNumbers.length ? Math.max(...attemptNumbers) : (status.attempts || 1);
    const attemptPicker = attempts.length > 1
      ? h('select', { 'aria-label': 'Attempt', class: 'small', onchange: (event) => showLogs(details, Number(event.target.value), logs, generation) },
        attemptNumbers.map((n) => h('option', { value: n, selected: n === latest }, `attempt ${n}`)))
      : null;
    replace(panel,
      h('div', { class: 'detail-head' },
        h('div', {},
          h('h2', {}, label({ id: details.id || { name }, metadata })),
          h('div', { class: 'muted mono' }, name === ROOT ? `${name} · the run's root action` : `${name} · child of ${metadata.parent || ROOT}`)),
        h('div', { class: 'spacer' }),
        phaseBadge(status.phase, { id: 'selected-phase' })),
      canAbort ? h('div', { class: 'detail-actions' }, h('button', { class: 'button danger small', id: 'abort-action', type: 'button', onclick: () => abortAction(name) }, 'Abort action')) : null,
      h('dl', { class: 'facts grid2' },
        fact('Task', taskId ? `${taskId.name}${taskId.version ? ` @ ${taskId.version}` : ''}` : (metadata.funtionName || '—')),
        fact('Type', (metadata.actionType || '').replace(/^ACTION_TYPE_/, '').toLowerCase() || '—'),
        fact('Started', dateTime(start)),
        fact('Ended', end ? dateTime(end) : (isTerminal(status.phase) ? '—' : 'still running')),
        fact('Duration', h('span', { id: 'selected-duration' }, duration(took))),
        fact('Attempts', String(status.attempts || attempts.length || 0)),
        status.cacheStatus ? fact('Cache', status.cacheStatus.replace(/^CACHE_/, '').toLowerCase()) : null),
      details.errorInfo ? h('div', { class: 'error-box action-error', role: 'note' },
        h('strong', {}, 'Error'),
        h('span', { class: 'code' }, [details.errorInfo.kind?.replace(/^KIND_/, '').toLowerCase(), details.errorInfo.code].filter(Boolean).join(' · ') || 'error'),
        h('pre', { class: 'message' }, details.errorInfo.message || '(no message)')) : null,
      details.abortInfo ? h('div', { class: 'note' }, h('strong', {}, 'Aborted'), ` — ${details.abortInfo.reason || 'no reason given'}`) : null,
      attempts.length ? section('Attempts', attemptTable(attempts)) : null,
      section(['Logs', attemptPicker], logs),
      section('Inputs', dataBlock(data, 'inputs')),
      section('Outputs', dataBlock(data, 'outputs', status)));
    showLogs(details, latest, logs, generation);
  }

  function section(title, ...content) {
    return h('section', { class: 'detail-section' }, h('h3', {}, title), content);
  }

  function attemptTable(attempts) {
    return h('table', { class: 'grid compact' },
      h('thead', {}, h('tr', {}, ['#', 'Phase', 'Start', 'Duration', 'Logs'].map((c) => h('th', {}, c)))),
      h('tbody', {}, attempts.map((attempt) => {
        const start = millis(attempt.startTime);
        const end = millis(attempt.endTime);
        const links = (attempt.logInfo || []).filter((log) => log.uri);
        return h('tr', {},
          h('td', { class: 'num' }, String(attempt.attempt || 1)),
          h('td', {}, phaseBadge(attempt.phase)),
          h('td', { title: dateTime(start) }, clock(start)),
          h('td', { class: 'num' }, start && end ? duration(end - start) : '—'),
          h('td', {}, links.length ? links.map((log) => h('a', { href: log.uri, target: '_blank', rel: 'noopener noreferrer', class: 'log-link' }, log.name || 'logs')) : h('span', { class: 'muted' }, attempt.logsAvailable ? 'tail below' : '—')));
      })));
  }

  function dataBlock(result, which, status) {
    if (result.status === 'rejected') {
      return result.reason.code === 'unimplemented'
        ? h('p', { class: 'muted' }, 'Inputs and outputs are not available from this control plane.')
        : errorBox(result.reason, `Reading ${which}`);
    }
    const literals = result.value?.[which]?.literals || [];
    const uri = result.value?.[`${which}Uri`];
    if (!literals.length) {
      let why = which === 'inputs' ? 'No inputs.' : 'No outputs.';
      if (which === 'outputs' && status && !isTerminal(status.phase)) why = 'No outputs yet: the action has not finished.';
      return h('div', {}, h('p', { class: 'muted' }, why), uri ? h('div', { class: 'uri mono', title: uri }, uri) : null);
    }
    return h('div', {},
      h('table', { class: 'grid compact literals' }, h('tbody', {}, literals.map((named) => h('tr', {}, h('th', { class: 'mono' }, named.name), h('td', {}, literal(named.value)))))),
      uri ? h('div', { class: 'uri mono', title: uri }, uri) : null);
  }

  async function showLogs(details, attemptNumber, box, generation) {
    const attempt = (details.attempts || []).find((a) => (a.attempt || 1) === attemptNumber);
    if (!attempt || !attempt.logsAvailable) {
      let why = 'No attempt has started yet.';
      if (attempt && isTerminal(attempt.phase)) why = `No logs were recorded for attempt ${attemptNumber}: its container never ran.`;
      else if (attempt) why = `No logs for attempt ${attemptNumber} yet: its container has not started.`;
      replace(box, h('p', { class: 'muted' }, why));
      return;
    }
    const actionId = { run: runId, name: details.id?.name || state.selected };
    const pre = h('pre', { class: 'logs', id: 'log-lines' });
    replace(box, spinner('Reading logs…'));
    for (;;) {
      try {
        const frames = await stream(`${DATA}/TailLogs`, { actionId, attempt: attemptNumber }, { signal: controller.signal });
        if (state.stopped || generation !== state.detailGeneration) return;
        const lines = frames.flatMap((frame) => (frame.logs || []).flatMap((group) => group.lines || []));
        pre.textContent = lines.map((line) => line.message || '').join('') || '(no output yet)';
        if (!box.contains(pre)) replace(box, pre);
        pre.scrollTop = pre.scrollHeight;
      } catch (error) {
        if (state.stopped || error.name === 'AbortError' || generation !== state.detailGeneration) return;
        if (error.code === 'unimplemented') {
          await logContextInstead(actionId, attemptNumber, box);
        } else if (error.code === 'not_found') {
          replace(box, h('p', { class: 'muted' }, `No logs for attempt ${attemptNumber}: ${error.message}`));
        } else {
          replace(box, errorBox(error, 'Reading logs'));
        }
        return;
      }
      const current = state.actions.get(actionId.name);
      if (isTerminal(current?.status?.phase) || attemptNumber < (current?.status?.attempts || 1)) return;
      // the attempt still runs: its tail follows until the stream's window ends, then again
    }
  }

  async function logContextInstead(actionId, attempt, box) {
    try {
      const answer = await call(`${RUNS}/GetActionLogContext`, { actionId, attempt }, { signal: controller.signal });
      const pod = answer.logContext?.primaryPodName || answer.logContext?.pods?.[0]?.podName || 'unknown pod';
      replace(box, h('p', { class: 'muted' }, `Log tail is not available here; the output is in pod ${pod}${answer.cluster ? ` on cluster ${answer.cluster}` : ''}.`));
    } catch {
      replace(box, h('p', { class: 'muted' }, 'Logs are not available from this control plane.'));
    }
  }

  // --- aborts ----------------------------------------------------------------------------

  async function abortRun() {
    const values = await ask({
      title: `Abort run ${run}?`,
      message: 'Every action of the run that has not ended is stopped.',
      fields: [{ name: 'reason', label: 'Reason', value: 'Aborted from the console' }],
      confirm: 'Abort run', danger: true, id: 'abort-dialog',
    });
    if (!values) return;
    try {
      await call(`${RUNS}/AbortRun`, { runId, reason: values.reason });
      toast(`Abort of ${run} requested`);
    } catch (error) {
      toast(`Abort failed — ${error.code}: ${error.message}`, 'bad');
      return;
    }
    await refresh();
    if (state.selected) loadDetails(state.selected, { quiet: true });
  }

  async function abortAction(name) {
    const values = await ask({
      title: `Abort action ${name}?`,
      message: 'The action and everything it started are stopped; the rest of the run goes on.',
      fields: [{ name: 'reason', label: 'Reason', value: 'Aborted from the console' }],
      confirm: 'Abort action', danger: true, id: 'abort-dialog',
    });
    if (!values) return;
    try {
      await call(`${RUNS}/AbortAction`, { actionId: { run: runId, name }, reason: values.reason });
      toast(`Abort of ${name} requested`);
    } catch (error) {
      toast(`Abort failed — ${error.code}: ${error.message}`, 'bad');
      return;
    }
    await refresh();
  }

  start();
  return () => {
    state.stopped = true;
    clearInterval(ticker);
    controller.abort();
  };
}
