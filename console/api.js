// The console's calls to zhidad's API. The API key is sent once, to POST /v1/sessions, and
// forgotten: afterwards the browser sends the HttpOnly session cookie, and writes carry the
// session's CSRF token, which lives only in this module's memory (asked again after a reload).
let csrf = null;

export class ApiError extends Error {
  constructor(status, error) {
    super((error && error.message) || 'HTTP ' + status);
    this.status = status;
    this.error = error || {};
  }
}

async function call(method, path, body, extra) {
  const headers = Object.assign({}, extra || {});
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const res = await fetch(path, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) throw new ApiError(res.status, data && data.error);
  return data;
}

export async function signIn(key) {
  // The key goes in the Authorization header only, never in a body or a URL.
  const s = await call('POST', '/v1/sessions', undefined, { Authorization: 'Bearer ' + key });
  csrf = s.csrf_token;
  return s;
}

export async function current() {
  try {
    const s = await call('GET', '/v1/sessions/current');
    csrf = s.csrf_token;
    return s;
  } catch (e) {
    if (e.status === 401 || e.status === 404) return null;
    throw e;
  }
}

export async function signOut() {
  try { await call('DELETE', '/v1/sessions/current'); } finally { csrf = null; }
}

export const preview = (body) => call('POST', '/v1/rules:preview', body);
export const explain = (rule, profile) => call('POST', '/v1/rules:explain', { rule, profile });
export const profile = (id) => call('GET', '/v1/profiles/' + encodeURIComponent(id));
export const segments = (cursor) =>
  call('GET', '/v1/segments?limit=50' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
export const segment = (name) => call('GET', '/v1/segments/' + encodeURIComponent(name));
export const putSegment = (name, rule) =>
  call('PUT', '/v1/segments/' + encodeURIComponent(name), { rule });
export const policies = (query) => call('GET', '/v1/policies?' + query);
export const policy = (id) => call('GET', '/v1/policies/' + encodeURIComponent(id));
// Whether this zhidad serves policies at all (delivery may not have landed yet).
export async function hasPolicies() {
  try {
    await call('GET', '/v1/policies?limit=1');
    return true;
  } catch (e) {
    return e.status !== 404;
  }
}
export const gateways = () => call('GET', '/v1/gateways');
export const publish = (body) => call('POST', '/v1/policies', body);
export const withdraw = (id) => call('POST', '/v1/policies/' + encodeURIComponent(id) + ':withdraw');
export const deadletters = (query) => call('GET', '/v1/deadletters?' + query);
export const replay = (body) => call('POST', '/v1/deadletters:replay', body);
export const deleteSegment = (name) => call('DELETE', '/v1/segments/' + encodeURIComponent(name));

// What a role may do (docs/API.md, Roles): the pages offer nothing else.
export function can(role) {
  return {
    preview: ['admin', 'publisher', 'viewer'].includes(role),
    explain: ['admin', 'publisher'].includes(role),
    writeSegments: ['admin', 'publisher'].includes(role),
    readProfiles: ['admin', 'app'].includes(role),
    readSegments: true,
    readPolicies: ['admin', 'publisher', 'viewer'].includes(role),
    // POST /v1/policies, :withdraw and /v1/deadletters:replay (a publisher: its own scope).
    publish: ['admin', 'publisher'].includes(role),
  };
}
export const render = (body) => call('POST', '/v1/policies:render', body);
