// The console's only way to the control plane: the Connect procedures the flyte SDK calls,
// as JSON over fetch (unary), and buffered server streams (Connect's enveloped JSON frames).
// No second API: every page is built on these calls.

import { bearerToken } from './auth.js';

export const RUNS = 'flyteidl2.workflow.RunService';
export const TASKS = 'flyteidl2.task.TaskService';
export const TRIGGERS = 'flyteidl2.trigger.TriggerService';
export const DATA = 'flyteidl2.dataproxy.DataProxyService';
export const PROJECTS = 'flyteidl2.project.ProjectService';
export const AUTH = 'flyteidl2.auth.AuthMetadataService';

const CONNECT_HEADERS = { 'Connect-Protocol-Version': '1' };
// Connect's HTTP status -> code mapping, for answers without a Connect body (API Gateway's own).
const STATUS_CODES = {
  400: 'invalid_argument', 401: 'unauthenticated', 403: 'permission_denied', 404: 'not_found',
  409: 'aborted', 413: 'resource_exhausted', 429: 'resource_exhausted', 500: 'internal',
  501: 'unimplemented', 502: 'unavailable', 503: 'unavailable', 504: 'deadline_exceeded',
};
const END_STREAM = 0x02;
const COMPRESSED = 0x01;
const ENVELOPE_HEADER_BYTES = 5; // one flag byte, a 4-byte big-endian length

export class ConnectError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = 'ConnectError';
    this.code = code;
    this.status = status;
  }
}

function headers(contentType) {
  const token = bearerToken();
  return {
    'Content-Type': contentType,
    ...CONNECT_HEADERS,
    ...(token ? { Authorization: `Bearer ${token}` } : {}),
  };
}

async function post(procedure, body, contentType, signal) {
  try {
    return await fetch(`/${procedure}`, {
      method: 'POST', headers: headers(contentType), body, signal, credentials: 'same-origin',
    });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ConnectError('unavailable', `cannot reach the API: ${error.message}`);
  }
}

function errorOf(status, text) {
  let body = {};
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: a proxy's page; its text is the message
  }
  const code = body.code || STATUS_CODES[status] || 'unknown';
  const message = body.message || text || `HTTP ${status}`;
  return new ConnectError(code, message, status);
}

/** A unary call: the request as JSON, the response message (an object), or a ConnectError. */
export async function call(procedure, request = {}, { signal } = {}) {
  const response = await post(procedure, JSON.stringify(request), 'application/json', signal);
  const text = await response.text();
  if (!response.ok) throw errorOf(response.status, text);
  return text ? JSON.parse(text) : {};
}

/** A server stream, read whole (the control plane buffers streams): its messages, in order. An
 * error in the end-of-stream frame is thrown as a ConnectError carrying the messages before it. */
export async function stream(procedure, request = {}, { signal } = {}) {
  const payload = new TextEncoder().encode(JSON.stringify(request));
  const body = new Uint8Array(ENVELOPE_HEADER_BYTES + payload.length);
  new DataView(body.buffer).setUint32(1, payload.length);
  body.set(payload, ENVELOPE_HEADER_BYTES);
  const response = await post(procedure, body, 'application/connect+json', signal);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const decoder = new TextDecoder();
  if (!response.ok) throw errorOf(response.status, decoder.decode(bytes));
  const messages = [];
  let offset = 0;
  while (offset + ENVELOPE_HEADER_BYTES <= bytes.length) {
    const flags = bytes[offset];
    const length = new DataView(bytes.buffer, bytes.byteOffset + offset + 1, 4).getUint32(0);
    const frame = bytes.subarray(offset + ENVELOPE_HEADER_BYTES, offset + ENVELOPE_HEADER_BYTES + length);
    offset += ENVELOPE_HEADER_BYTES + length;
    if (flags & COMPRESSED) throw new ConnectError('internal', 'a compressed stream frame, which was not asked for');
    const value = frame.length ? JSON.parse(decoder.decode(frame)) : {};
    if (flags & END_STREAM) {
      if (value.error) {
        const error = new ConnectError(value.error.code || 'unknown', value.error.message || 'stream failed');
        error.messages = messages;
        throw error;
      }
      return messages;
    }
    messages.push(value);
  }
  throw new ConnectError('internal', 'the stream ended without its end-of-stream frame');
}

/** Every page of a paged list: `fetchPage(token)` answers {items, token}; at most `maxPages`. */
export async function allPages(fetchPage, { maxPages = 50 } = {}) {
  const items = [];
  let token = '';
  for (let page = 0; page < maxPages; page += 1) {
    const result = await fetchPage(token);
    items.push(...result.items);
    token = result.token || '';
    if (!token) break;
  }
  return items;
}
