// Sign-in, as the flyte SDK does it: the authorization-code grant with PKCE (RFC 7636) against the
// identity provider the API names. AuthMetadataService/GetOAuth2Metadata gives its authorization
// and token endpoints, GetPublicClientConfig the public client, its scopes and audience. signIn()
// keeps a random verifier and state for this tab and sends the browser to the authorization
// endpoint with the verifier's SHA-256 (S256); the provider sends it back to CALLBACK_PATH with a
// code, which completeSignIn() exchanges at the token endpoint with the verifier (no secret: only
// this tab holds it) for an access token, kept as a pasted one is (auth.js).

import { AUTH, call } from './api.js';
import { setBearerToken } from './auth.js';

export const CALLBACK_PATH = '/v2/callback'; // functions/console/site.py serves it as any /v2 path
const PENDING_KEY = 'flyte-console.sign-in'; // the verifier, state and return path, until the callback
// 32 random bytes: a 43-character base64url verifier, RFC 7636's shortest, with 256 bits of entropy.
const VERIFIER_BYTES = 32;
const STATE_BYTES = 16;

export class SignInError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'SignInError';
    this.code = code;
  }
}

let provider = null; // the two answers, asked once per page load

/** The identity provider and the public client: {authorizationEndpoint, tokenEndpoint, clientId, scopes, audience}. */
export function identityProvider() {
  if (!provider) {
    provider = Promise.all([call(`${AUTH}/GetOAuth2Metadata`), call(`${AUTH}/GetPublicClientConfig`)])
      .then(([metadata, client]) => ({
        authorizationEndpoint: metadata.authorizationEndpoint || '',
        tokenEndpoint: metadata.tokenEndpoint || '',
        clientId: client.clientId || '',
        scopes: client.scopes || [],
        audience: client.audience || '',
      }))
      .catch((error) => {
        provider = null; // asked again next time
        throw error;
      });
  }
  return provider;
}

/** Whether this console can sign people in: the provider has an authorization endpoint and a public client. */
export async function canSignIn() {
  try {
    const found = await identityProvider();
    return Boolean(found.authorizationEndpoint && found.tokenEndpoint && found.clientId);
  } catch {
    return false;
  }
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(length) {
  return base64url(crypto.getRandomValues(new Uint8Array(length)));
}

function redirectUri() {
  return location.origin + CALLBACK_PATH;
}

/** Off to the identity provider; back at CALLBACK_PATH, then at `returnTo` (this page by default). */
export async function signIn(returnTo = location.pathname + location.search) {
  const back = returnTo.startsWith(CALLBACK_PATH) ? '/v2' : returnTo; // a failed sign-in's page: start over
  const found = await identityProvider();
  if (!found.authorizationEndpoint || !found.clientId) {
    throw new SignInError('unimplemented', 'the API names no identity provider to sign in at (no authorization endpoint or public client)');
  }
  const verifier = randomString(VERIFIER_BYTES);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const state = randomString(STATE_BYTES);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state, returnTo: back }));
  const url = new URL(found.authorizationEndpoint);
  const params = {
    response_type: 'code', client_id: found.clientId, redirect_uri: redirectUri(), scope: found.scopes.join(' '),
    state, code_challenge: challenge, code_challenge_method: 'S256',
    ...(found.audience ? { audience: found.audience } : {}),
  };
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  location.assign(url.href);
}

/** The callback: checks the state, exchanges the code; the path to go back to, or a SignInError. */
export async function completeSignIn(params) {
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || 'null');
  } catch {
    // not JSON: as if nothing were pending
  }
  sessionStorage.removeItem(PENDING_KEY); // one try per sign-in, whatever happens
  if (params.get('error')) {
    throw new SignInError(params.get('error'), params.get('error_description') || 'the identity provider refused the sign-in');
  }
  if (!pending || !params.get('state') || params.get('state') !== pending.state) {
    throw new SignInError('state_mismatch', 'this answer does not belong to a sign-in started in this tab (its state does not match): sign in again');
  }
  if (!params.get('code')) throw new SignInError('invalid_request', 'the identity provider sent no code');
  const found = await identityProvider();
  let response;
  try {
    response = await fetch(found.tokenEndpoint, {
      method: 'POST',
      credentials: 'omit',
      body: new URLSearchParams({
        grant_type: 'authorization_code', code: params.get('code'), redirect_uri: redirectUri(),
        client_id: found.clientId, code_verifier: pending.verifier,
      }),
    });
  } catch (error) {
    throw new SignInError('unavailable', `cannot reach the token endpoint ${found.tokenEndpoint}: ${error.message}`);
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok || !answer.access_token) {
    throw new SignInError(answer.error || `HTTP ${response.status}`, answer.error_description || 'the token endpoint gave no token');
  }
  setBearerToken(answer.access_token);
  const back = String(pending.returnTo || '');
  return back.startsWith('/') && !back.startsWith('//') ? back : '/v2'; // only a path of this console
}
