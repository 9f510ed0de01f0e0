// Calls to the node's API from the page: same origin, JSON, the bearer token
// of the tab (asked for once when the API answers 401, kept in
// sessionStorage, so it lasts as long as the tab and no longer).

const tokenKey = 'ordersystem.apiToken';

/** ApiError is an answer other than 2xx, with the API's own message. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.field = body && body.field;
  }
}

export function token() { return sessionStorage.getItem(tokenKey) || ''; }

export function forgetToken() { sessionStorage.removeItem(tokenKey); }

let asking = null; // the one token prompt open now, shared by every call that got a 401
let declined = false; // the user cancelled the prompt: answer 401s as they are until askAgain()

/** askAgain lets the next 401 open the token prompt again (after a cancel). */
export function askAgain() { declined = false; }

/** declinedToken reports whether the user cancelled the token prompt. */
export function declinedToken() { return declined; }

/**
 * askToken shows the token dialog (once, however many calls wait on it) and
 * resolves when a token is entered; it rejects when the user cancels.
 */
function askToken(wrong) {
  if (asking) return asking;
  const dialog = document.getElementById('token-dialog');
  const form = dialog.querySelector('form');
  const input = dialog.querySelector('input');
  dialog.querySelector('.token-wrong').hidden = !wrong;
  input.value = '';
  asking = new Promise((resolve, reject) => {
    const done = (ok) => {
      form.removeEventListener('submit', onSubmit);
      dialog.querySelector('.token-cancel').removeEventListener('click', onCancel);
      dialog.close();
      asking = null;
      declined = !ok;
      document.dispatchEvent(new CustomEvent('token-prompt', { detail: { ok } }));
      if (ok) resolve(); else reject(new ApiError(401, { error: 'this node requires its API token (--api-token)', code: 'unauthorized' }));
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      if (!input.value) return;
      sessionStorage.setItem(tokenKey, input.value);
      done(true);
    };
    const onCancel = () => done(false);
    form.addEventListener('submit', onSubmit);
    dialog.querySelector('.token-cancel').addEventListener('click', onCancel);
    dialog.showModal();
    input.focus();
  });
  return asking;
}

/**
 * authFetch is fetch() with the tab's token; on 401 it asks for the token
 * and tries again with it.
 */
export async function authFetch(path, init = {}) {
  for (;;) {
    const sent = token();
    const headers = new Headers(init.headers || {});
    if (sent) headers.set('Authorization', `Bearer ${sent}`);
    const res = await fetch(path, { ...init, headers });
    if (res.status !== 401 || declined) return res;
    if (token() !== sent) continue; // another call got a new token meanwhile
    await askToken(sent !== '');
  }
}

/**
 * api calls the API and answers {body, headers, status}; a non-2xx answer
 * throws ApiError with the API's message. A body given as an object is sent
 * as JSON.
 */
export async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const res = await authFetch(path, init);
  const text = await res.text();
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = { error: text }; }
  if (!res.ok) throw new ApiError(res.status, parsed);
  return { body: parsed, headers: res.headers, status: res.status };
}
