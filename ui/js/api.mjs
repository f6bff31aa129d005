// The aetr API under /api/v1: JSON in and out, the token when one is set, and errors as
// {"errors": [...]}.
import { askForToken, forgetToken, token } from './token.mjs';

export class ApiError extends Error {
  constructor(status, errors) {
    super(errors.join('; '));
    this.status = status;
    this.errors = errors;
  }
}

/**
 * Calls the API. `body`: an object (sent as JSON) or a string (sent raw). Resolves to
 * {status, body, next} where `next` is the query of the next page from the Link header.
 */
export async function api(method, path, body) {
  for (let tries = 0; ; tries++) {
    const headers = {};
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    let payload;
    if (body !== undefined) {
      if (typeof body === 'string') {
        headers['Content-Type'] = 'text/plain; charset=utf-8';
        payload = body;
      } else {
        headers['Content-Type'] = 'application/json';
        payload = JSON.stringify(body);
      }
    }
    let response;
    try {
      response = await fetch(`/api/v1${path}`, { method, headers, body: payload });
    } catch (e) {
      throw new ApiError(0, [`the server cannot be reached (${e.message})`]);
    }
    if (response.status === 401 && tries < 5) {
      if (t) forgetToken();
      await askForToken(t ? 'That token was refused. Enter another API token.' : undefined);
      continue;
    }
    const text = await response.text();
    let parsed = null;
    if (text) {
      try { parsed = JSON.parse(text); } catch { parsed = text; }
    }
    if (!response.ok) {
      const errors = parsed && Array.isArray(parsed.errors)
        ? parsed.errors.map(String)
        : [`${response.status} ${response.statusText}`];
      throw new ApiError(response.status, errors);
    }
    return { status: response.status, body: parsed, next: nextPage(response.headers.get('Link')) };
  }
}

/** The `after` of the next page, from `Link: <url>; rel="next"`. */
function nextPage(link) {
  if (!link) return null;
  const match = /<([^>]+)>\s*;\s*rel="next"/.exec(link);
  if (!match) return null;
  return new URL(match[1], location.origin).searchParams.get('after');
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);
