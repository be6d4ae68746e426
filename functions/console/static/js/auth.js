// Who the console's API calls are made as. The API front may require a bearer token (API
// Gateway's JWT authorizer): the one signing in gave (login.js), or one pasted (scripts/stack
// prints one), kept for this browser tab only (sessionStorage).

const TOKEN_KEY = 'flyte-console.token';

export function bearerToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setBearerToken(token) {
  const value = (token || '').trim().replace(/^Bearer\s+/i, '');
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}
