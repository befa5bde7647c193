// The page's only way out: the /v1 API of this origin with the user's bearer token, which
// lives in this module's memory only (never in storage, cookies or the address bar).

let token = null;
let onExpired = () => {};

/** Keep `t` as the bearer token. */
export function setToken(t) {
  token = t;
}

/** True when a token is held. */
export function hasToken() {
  return token !== null;
}

/** Call `f` when the API refuses the token (401). */
export function whenExpired(f) {
  onExpired = f;
}

/**
 * An API error: `status`, the RFC 9457 problem (`title`, `detail`, `errors[]` with JSON
 * `pointer`s into the body) and the body member each input error names.
 */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  /** `{member: detail}` for the errors that point into the request body (`#/password`). */
  fieldErrors() {
    const out = {};
    for (const e of this.problem.errors || []) {
      // The field is the pointer's last member (`#/transforms/window` → `window`).
      const m = /^#\/(?:[A-Za-z_]+\/)*([A-Za-z_]+)$/.exec(e.pointer || "");
      if (m) out[m[1]] = e.detail;
    }
    return out;
  }
}

/** `method path` (from `/v1`) with an optional JSON body; the parsed answer or ApiError. */
export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (method === "POST") headers["Idempotency-Key"] = crypto.randomUUID();
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new ApiError(0, {
      title: "Offline",
      detail: "The calendar service could not be reached. Check your connection and try again.",
    });
  }
  const text = await resp.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = null;
  }
  if (resp.status === 401) {
    token = null;
    onExpired();
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, doc && typeof doc === "object" ? doc : { title: `HTTP ${resp.status}` });
  }
  return doc;
}

/** Path segment `s`, escaped. */
export const seg = encodeURIComponent;
