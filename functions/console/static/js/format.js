// How values read on the pages: phases (a colour and a word, never a colour alone), times,
// durations, and Flyte literals (inputs and outputs).

import { h } from './dom.js';

// flyteidl2.common.ActionPhase, by number and by name (JSON carries names; map keys carry numbers).
const PHASE_NAMES = [
  'UNSPECIFIED', 'QUEUED', 'WAITING_FOR_RESOURCES', 'INITIALIZING', 'RUNNING', 'SUCCEEDED', 'FAILED',
  'ABORTED', 'TIMED_OUT', 'PAUSED', 'RECOVERED',
];
export const PHASES = {
  UNSPECIFIED: { label: 'Unknown', icon: '○' },
  QUEUED: { label: 'Queued', icon: '◌' },
  WAITING_FOR_RESOURCES: { label: 'Waiting', icon: '◔' },
  INITIALIZING: { label: 'Initializing', icon: '◑' },
  RUNNING: { label: 'Running', icon: '●' },
  SUCCEEDED: { label: 'Succeeded', icon: '✓' },
  FAILED: { label: 'Failed', icon: '✕' },
  ABORTED: { label: 'Aborted', icon: '■' },
  TIMED_OUT: { label: 'Timed out', icon: '⧖' },
  PAUSED: { label: 'Paused', icon: '❚❚' },
  RECOVERED: { label: 'Recovered', icon: '↺' },
};
const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'ABORTED', 'TIMED_OUT', 'RECOVERED']);
// The phases people filter runs by, in the order a run moves through them.
export const FILTER_PHASES = ['QUEUED', 'WAITING_FOR_RESOURCES', 'INITIALIZING', 'RUNNING', 'PAUSED', 'SUCCEEDED',
  'FAILED', 'ABORTED', 'TIMED_OUT'];

/** 'ACTION_PHASE_RUNNING', 'RUNNING', 4 or '4' -> 'RUNNING' */
export function phaseKey(phase) {
  if (phase === undefined || phase === null || phase === '') return 'UNSPECIFIED';
  if (typeof phase === 'number' || /^\d+$/.test(String(phase))) return PHASE_NAMES[Number(phase)] || 'UNSPECIFIED';
  const key = String(phase).replace(/^ACTION_PHASE_/, '');
  return PHASES[key] ? key : 'UNSPECIFIED';
}

export function isTerminal(phase) {
  return TERMINAL.has(phaseKey(phase));
}

export function phaseBadge(phase, { id } = {}) {
  const key = phaseKey(phase);
  const { label, icon } = PHASES[key];
  return h('span', { class: `phase phase-${key.toLowerCase()}`, 'data-phase': key, id, title: label },
    h('span', { class: 'phase-icon', 'aria-hidden': 'true' }, icon), label);
}

export function millis(timestamp) {
  if (!timestamp) return null;
  const value = Date.parse(timestamp);
  return Number.isNaN(value) || value <= 0 ? null : value;
}

const pad = (n) => String(n).padStart(2, '0');

export function clock(ms) {
  if (ms === null) return '—';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function dateTime(ms) {
  if (ms === null) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(ms)}`;
}

export function ago(ms, now = Date.now()) {
  if (ms === null) return '—';
  const seconds = Math.round((now - ms) / 1000);
  if (seconds < 5) return 'just now';
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return dateTime(ms).slice(0, 10);
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${pad(Math.floor(seconds % 60))}s`;
  return `${Math.floor(minutes / 60)}h ${pad(minutes % 60)}m`;
}

/** An action's span: start, end (null while it runs) and how long it took or has taken so far. */
export function span(status = {}, now = Date.now()) {
  const start = millis(status.startTime);
  const end = isTerminal(status.phase) ? millis(status.endTime) : null;
  let took = null;
  if (status.durationMs !== undefined && isTerminal(status.phase)) took = Number(status.durationMs);
  else if (start !== null) took = (end ?? (isTerminal(status.phase) ? start : now)) - start;
  return { start, end, took };
}

// --- literals (flyteidl2.core.Literal in JSON) -----------------------------------------------

/** A literal as a node: primitives inline, collections and maps nested, blobs by their URI. */
export function literal(value) {
  if (!value || typeof value !== 'object') return h('span', { class: 'muted' }, 'none');
  if (value.scalar) return scalar(value.scalar);
  if (value.collection) {
    const items = value.collection.literals || [];
    return h('ol', { class: 'literal-list' }, items.map((item) => h('li', {}, literal(item))));
  }
  if (value.map) {
    const entries = Object.entries(value.map.literals || {});
    return h('dl', { class: 'literal-map' }, entries.map(([key, item]) => [h('dt', {}, key), h('dd', {}, literal(item))]));
  }
  if (value.offloadedMetadata) {
    return h('span', { class: 'mono' }, `offloaded: ${value.offloadedMetadata.uri}`);
  }
  return h('code', { class: 'mono' }, JSON.stringify(value));
}

function scalar(value) {
  if (value.primitive) {
    const [kind, raw] = Object.entries(value.primitive)[0] || ['', ''];
    const text = kind === 'stringValue' ? JSON.stringify(raw) : String(raw);
    return h('code', { class: `literal ${kind}` }, text);
  }
  if (value.none !== undefined) return h('span', { class: 'muted' }, 'None');
  if (value.blob) return h('span', { class: 'mono' }, `${value.blob.metadata?.type?.dimensionality === 'MULTIPART' ? 'directory' : 'file'} ${value.blob.uri}`);
  if (value.structuredDataset) return h('span', { class: 'mono' }, `dataframe ${value.structuredDataset.uri || ''}`);
  if (value.binary) {
    const bytes = Math.floor(((value.binary.value || '').length * 3) / 4);
    return h('span', { class: 'muted' }, `binary value (${value.binary.tag || 'bytes'}, ${bytes} bytes)`);
  }
  if (value.generic) return h('code', { class: 'mono' }, JSON.stringify(value.generic));
  if (value.error) return h('span', { class: 'error-text' }, value.error.message || 'error');
  if (value.union) return literal(value.union.value);
  return h('code', { class: 'mono' }, JSON.stringify(value));
}
