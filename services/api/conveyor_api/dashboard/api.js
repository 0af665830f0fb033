// The REST API (/api/v1) on the page's own origin. Errors become ApiError carrying the
// problem+json `detail`, which is what the views show to the user. With a token (token()
// returns it) every call sends `Authorization: Bearer <token>`; a 401 also calls
// onUnauthorized(error), unless the call asked not to (the login's own check).

export class ApiError extends Error {
  constructor(status, title, detail, errors = null) {
    super(detail || title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail || title || `HTTP ${status}`;
    this.errors = Array.isArray(errors) ? errors : null;
  }
}

function problemDetail(body, response) {
  if (body && typeof body === "object") {
    if (typeof body.detail === "string" && body.detail) return body.detail;
    if (Array.isArray(body.detail)) {
      // A plain FastAPI validation error, should one slip through.
      return body.detail.map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
    }
    if (body.title) return body.title;
  }
  return `${response.status} ${response.statusText || "error"}`.trim();
}

export function createApi(base = "/api/v1", { token = () => null, onUnauthorized = () => {} } = {}) {
  async function request(method, path, { body, query, signal, bearer, quiet = false } = {}) {
    let url = base + path;
    if (query) {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(query)) {
        if (value !== null && value !== undefined && value !== "") params.set(key, value);
      }
      const qs = params.toString();
      if (qs) url += `?${qs}`;
    }
    const init = { method, headers: { Accept: "application/json, application/problem+json" }, signal };
    const secret = bearer ?? token();
    if (secret) init.headers.Authorization = `Bearer ${secret}`;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "Network error", `Could not reach the API (${err.message}).`);
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) {
      const title = (data && data.title) || response.statusText;
      const error = new ApiError(response.status, title, problemDetail(data, response), data?.errors);
      if (response.status === 401 && !quiet) onUnauthorized(error);
      throw error;
    }
    return data;
  }

  const job = (id) => `/jobs/${encodeURIComponent(id)}`;
  const schedule = (name) => `/schedules/${encodeURIComponent(name)}`;

  return {
    /** filter: {statuses: [], priority, type, q} */
    listJobs(filter, { limit = 50, cursor = null, signal } = {}) {
      return request("GET", "/jobs", {
        signal,
        query: {
          status: (filter.statuses || []).join(","),
          priority: filter.priority,
          type: filter.type,
          q: filter.q,
          limit,
          cursor,
        },
      });
    },
    /** {name, role} of the session's token, or of `bearer`; a 401 is the caller's to show. */
    whoami: (bearer = undefined) => request("GET", "/whoami", { bearer, quiet: true }),
    getJob: (id, opts = {}) => request("GET", job(id), opts),
    // The whole history, a page at a time (the server pages it by sequence).
    jobEvents: async (id, opts = {}) => {
      const items = [];
      let after = 0;
      for (;;) {
        const page = await request("GET", `${job(id)}/events`, {
          ...opts,
          query: { after_seq: after, limit: 10000 },
        });
        items.push(...page.items);
        if (page.next == null) return { items };
        after = page.next;
      }
    },
    submitJob: (body) => request("POST", "/jobs", { body }),
    stopJob: (id) => request("POST", `${job(id)}/stop`),
    restartJob: (id) => request("POST", `${job(id)}/restart`),
    deleteJob: (id) => request("DELETE", job(id)),
    /**
     * Many jobs at once: {action, ids} or {action, filter: {status: [], priority, type, q}},
     * optional reason; dryRun counts and judges without writing. {matched, acted, refused}.
     */
    bulk: (body, { dryRun = false } = {}) => request("POST", "/jobs/bulk", {
      body: dryRun ? { ...body, dry_run: true } : body,
    }),
    /** What the projector parked: {items: [{seq, subject, job_id, kind, reason, raw, ...}], next}. */
    deadLetters: (query = {}) => request("GET", "/dead-letters", { query }),
    stats: () => request("GET", "/stats"),
    workers: () => request("GET", "/workers"),
    types: () => request("GET", "/types"),
    // Recurring schedules: {name, cron, timezone, job: {type, priority, payload, ...}, enabled}.
    schedules: (opts = {}) => request("GET", "/schedules", opts),
    createSchedule: (body) => request("POST", "/schedules", { body }),
    /** patch: any of {cron, timezone, job, enabled}; {enabled: false} pauses, true resumes. */
    updateSchedule: (name, patch) => request("PATCH", schedule(name), { body: patch }),
    deleteSchedule: (name) => request("DELETE", schedule(name)),
  };
}
