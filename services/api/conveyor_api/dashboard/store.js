// The dashboard's state: every job it knows, the list the filter selects, and the recent
// feed events. Jobs change only through events (applyEvent) or through a state read from
// the API (ingest); views subscribe with store.on("job" | "list" | "event", fn).

import { evolve, fromSubmitted, statusAfter } from "./reducer.js";
import { PRIORITIES, STATUSES, jsonbText, tsKey } from "./util.js";

export const PAGE_SIZE = 50;
const MAX_ROWS = 1000; // rows kept in the list; the oldest fall off and "load more" refetches them
const MAX_KNOWN = 5000; // jobs kept in memory beyond the list (to place them when they match)
const RECENT_EVENTS = 5000; // events kept to bring a state read from the API up to date
const MAX_FETCHES = 4;

// ---------------------------------------------------------------------------- filter

export const emptyFilter = () => ({ statuses: [], priority: "", type: "", q: "" });

/** The filter kept in the page's query string: ?status=a,b&priority=&type=&q= */
export function filterFromSearch(search) {
  const params = new URLSearchParams(search);
  const statuses = (params.get("status") || "")
    .split(",").map((s) => s.trim()).filter((s) => STATUSES.includes(s));
  const priority = params.get("priority") || "";
  return {
    statuses: STATUSES.filter((s) => statuses.includes(s)),
    priority: PRIORITIES.includes(priority) ? priority : "",
    type: (params.get("type") || "").trim(),
    q: (params.get("q") || "").trim(),
  };
}

/** The query string for a filter, keeping any other parameters of `search`. */
export function filterToSearch(filter, search = "") {
  const params = new URLSearchParams(search);
  const set = (key, value) => (value ? params.set(key, value) : params.delete(key));
  set("status", filter.statuses.join(","));
  set("priority", filter.priority);
  set("type", filter.type);
  set("q", filter.q);
  const qs = params.toString().replace(/%2C/gi, ",");
  return qs ? `?${qs}` : "";
}

export const sameFilter = (a, b) => filterToSearch(a) === filterToSearch(b);

/** The server's filter, applied to one job (q: id prefix or payload text, as GET /jobs). */
export function matchesFilter(job, filter) {
  if (filter.statuses.length && !filter.statuses.includes(job.status)) return false;
  if (filter.priority && job.priority !== filter.priority) return false;
  if (filter.type && job.type !== filter.type) return false;
  if (filter.q) {
    const q = filter.q;
    if (!String(job.id).startsWith(q)
        && !jsonbText(job.payload ?? {}).toLowerCase().includes(q.toLowerCase())) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------- actions

/** What the allowed operator actions depend on: the status, and whether a stop is pending. */
export const actionKey = (job) => `${job.status}|${job.stop_requested ? 1 : 0}`;

/**
 * The operator actions the API allows a job: its own `actions` while the state they came with
 * is still the job's, else those the API gave another job in the same state (`learned`, a
 * map actionKey -> actions). Null when neither is known (the caller asks the API). The page
 * keeps no copy of the transitions table.
 */
export function allowedFrom(job, learned) {
  if (!job || job.deleted) return {};
  const key = actionKey(job);
  const list = Array.isArray(job.actions) && job.actionsKey === key ? job.actions : learned.get(key);
  if (!list) return null;
  return Object.fromEntries(list.map((a) => [a, true]));
}

// ---------------------------------------------------------------------------- store

export class Store {
  constructor(api, filter = emptyFilter()) {
    this.api = api;
    this.jobs = new Map(); // id -> job resource (plus `deleted` once deleted)
    this.meta = new Map(); // id -> {seq: last event applied, fromApi: tsKey of the API state}
    this.recent = []; // the last events, in seq order
    this.recentByJob = new Map(); // id -> its events among `recent`
    this.lastSeq = null;
    this.pinned = new Set(); // ids never evicted (the job shown in detail)
    this.list = {
      filter,
      ids: [], // newest first (ids are time-sortable)
      set: new Set(),
      nextCursor: null,
      loaded: false,
      loading: false,
      error: null,
      trimmed: false,
    };
    this.listeners = new Map();
    this.fetchQueue = [];
    this.fetching = new Set();
    this.activeFetches = 0;
    this.listAbort = null;
    this.learned = new Map(); // actionKey -> the actions the API allows a job in that state
    this.asking = new Map(); // actionKey being learned -> the id asked about
  }

  /** The actions the API allows `job` (see allowedFrom); asks the API when unknown. */
  allowed(job) {
    const found = allowedFrom(job, this.learned);
    if (found === null && job && !this.asking.has(actionKey(job))) {
      this.asking.set(actionKey(job), job.id);
      this._enqueue(job.id);
    }
    return found ?? {};
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(type, payload) {
    for (const fn of this.listeners.get(type) ?? []) {
      try {
        fn(payload);
      } catch (err) {
        console.error(`conveyor store: ${type} listener failed`, err);
      }
    }
  }

  get(id) {
    return this.jobs.get(id) ?? null;
  }

  pin(id) {
    this.pinned.add(id);
  }

  unpin(id) {
    this.pinned.delete(id);
  }

  // -------------------------------------------------------------------------- list

  setFilter(filter) {
    if (sameFilter(filter, this.list.filter)) return false;
    this.list.filter = filter;
    this.emit("filter");
    this.reload();
    return true;
  }

  /** Drop the list and read its first page again (the feed keeps running meanwhile). */
  reload() {
    const L = this.list;
    L.ids = [];
    L.set = new Set();
    L.nextCursor = null;
    L.loaded = false;
    L.trimmed = false;
    return this._loadPage(null);
  }

  loadMore() {
    const L = this.list;
    if (!L.loaded || L.loading || !L.nextCursor) return Promise.resolve();
    return this._loadPage(L.nextCursor);
  }

  async _loadPage(cursor) {
    const L = this.list;
    this.listAbort?.abort();
    const abort = new AbortController();
    this.listAbort = abort;
    L.loading = true;
    L.error = null;
    this.emit("list");
    try {
      const page = await this.api.listJobs(L.filter, {
        limit: PAGE_SIZE, cursor, signal: abort.signal,
      });
      if (abort.signal.aborted) return;
      L.nextCursor = page?.next_cursor ?? null;
      L.loaded = true;
      for (const item of page?.items ?? []) this.ingest(item);
      // Jobs the feed brought that the page does not show (yet): the read model lags a little.
      for (const job of this.jobs.values()) this._place(job);
    } catch (err) {
      if (err.name === "AbortError") return;
      L.error = err.detail || err.message;
    } finally {
      if (this.listAbort === abort) {
        this.listAbort = null;
        L.loading = false;
        this.emit("list");
      }
    }
  }

  _inRange(id) {
    const cursor = this.list.nextCursor;
    return cursor === null || id >= cursor;
  }

  /** Put the job in the list, or take it out, as the filter says. */
  _place(job) {
    const L = this.list;
    if (!L.loaded) return;
    const id = job.id;
    const inList = L.set.has(id);
    const wanted = !job.deleted && matchesFilter(job, L.filter);
    if (inList && !wanted) {
      L.ids.splice(L.ids.indexOf(id), 1);
      L.set.delete(id);
      this.emit("list");
    } else if (!inList && wanted && this._inRange(id)) {
      let lo = 0;
      let hi = L.ids.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (L.ids[mid] > id) lo = mid + 1;
        else hi = mid;
      }
      L.ids.splice(lo, 0, id);
      L.set.add(id);
      while (L.ids.length > MAX_ROWS) {
        L.set.delete(L.ids.pop());
        L.trimmed = true;
        // GET /jobs pages by id (next_cursor is the last id of a page), so "load more"
        // continues right after the last row still shown.
        L.nextCursor = L.ids[L.ids.length - 1];
      }
      this.emit("list");
    }
  }

  // -------------------------------------------------------------------------- jobs

  _store(job) {
    const id = job.id;
    this.jobs.delete(id); // re-insert: Map order doubles as least-recently-changed order
    this.jobs.set(id, job);
    this._place(job);
    this.emit("job", id);
    if (this.jobs.size > MAX_KNOWN) this._evict();
  }

  _evict() {
    const target = Math.floor(MAX_KNOWN * 0.9);
    for (const id of this.jobs.keys()) {
      if (this.jobs.size <= target) break;
      if (this.list.set.has(id) || this.pinned.has(id)) continue;
      this.jobs.delete(id);
      this.meta.delete(id);
    }
  }

  /**
   * Take a job as read from the API (a list page, GET /jobs/{id}, a write's response).
   * The newer state wins; the feed events newer than the API's state are applied on top.
   */
  ingest(rest) {
    if (!rest || !rest.id) return null;
    const id = rest.id;
    if (Array.isArray(rest.actions)) {
      const key = actionKey(rest);
      const known = this.learned.get(key);
      this.asking.delete(key);
      if (!known || known.join() !== rest.actions.join()) {
        this.learned.set(key, rest.actions);
        this.emit("actions");
      }
      rest = { ...rest, actionsKey: key };
    }
    const current = this.jobs.get(id);
    const restKey = tsKey(rest.updated_at);
    if (current && (tsKey(current.updated_at) ?? 0) >= (restKey ?? 0)) {
      this._place(current);
      return current;
    }
    let job = { ...rest };
    const meta = { seq: null, fromApi: restKey };
    for (const event of this.recentByJob.get(id) ?? []) {
      meta.seq = event.seq;
      if (event.type === "job.submitted") continue;
      if (typeof rest.seq === "number" && event.seq <= rest.seq) continue; // already in `rest`
      const key = tsKey(event.at);
      if (restKey !== null && key !== null && key < restKey) continue; // already in `rest`
      job = evolve(job, event, { bump: !(key !== null && restKey !== null && key <= restKey) });
    }
    this.meta.set(id, meta);
    this._store(job);
    return job;
  }

  /** The job was deleted (DELETE answered 204): out of the list at once. */
  markDeleted(id) {
    const job = this.jobs.get(id);
    if (job && !job.deleted) this._store({ ...job, deleted: true });
    else if (!job) this.emit("job", id);
  }

  /** Views re-read the job (e.g. an action on it finished). */
  touch(id) {
    this.emit("job", id);
  }

  // -------------------------------------------------------------------------- feed

  /** Apply one feed event. Idempotent: an event at or before the last seq is ignored. */
  applyEvent(event) {
    if (!event || typeof event.seq !== "number" || !event.job_id || !event.type) return;
    if (this.lastSeq !== null && event.seq <= this.lastSeq) return;
    this.lastSeq = event.seq;
    this._remember(event);
    const id = event.job_id;
    const current = this.jobs.get(id);
    const meta = this.meta.get(id);
    if (!current) {
      if (event.type === "job.submitted") {
        this.meta.set(id, { seq: event.seq, fromApi: null });
        this._store(fromSubmitted(event));
      } else {
        this._maybeFetch(id, event);
      }
    } else if (event.type !== "job.submitted" && !(meta?.seq != null && event.seq <= meta.seq)) {
      const key = tsKey(event.at);
      const reflected = meta?.fromApi != null && key !== null && key <= meta.fromApi;
      this.meta.set(id, { seq: event.seq, fromApi: meta?.fromApi ?? null });
      this._store(evolve(current, event, { bump: !reflected }));
    }
    this.emit("event", event);
  }

  _remember(event) {
    this.recent.push(event);
    const own = this.recentByJob.get(event.job_id);
    if (own) own.push(event);
    else this.recentByJob.set(event.job_id, [event]);
    // Trimmed a tenth at a time: one splice per 500 events, not a shift per event.
    if (this.recent.length > RECENT_EVENTS * 1.1) {
      const old = this.recent.splice(0, this.recent.length - RECENT_EVENTS);
      const dropped = new Map();
      for (const e of old) dropped.set(e.job_id, (dropped.get(e.job_id) ?? 0) + 1);
      for (const [jobId, n] of dropped) {
        const list = this.recentByJob.get(jobId);
        list.splice(0, n);
        if (!list.length) this.recentByJob.delete(jobId);
      }
    }
  }

  /**
   * An event for a job we do not hold: with a status filter, it may now belong in the list
   * (e.g. a job just failed while the list shows failed jobs), so read it once.
   */
  _maybeFetch(id, event) {
    const L = this.list;
    if (!L.loaded || !L.filter.statuses.length || !this._inRange(id)) return;
    const status = statusAfter(event);
    if (!status || !L.filter.statuses.includes(status)) return;
    this._enqueue(id);
  }

  _enqueue(id) {
    if (this.fetching.has(id) || this.fetchQueue.length >= 200) return;
    this.fetching.add(id);
    this.fetchQueue.push(id);
    this._pump();
  }

  _pump() {
    while (this.activeFetches < MAX_FETCHES && this.fetchQueue.length) {
      const id = this.fetchQueue.shift();
      this.activeFetches += 1;
      this.api.getJob(id)
        .then((job) => this.ingest(job))
        .catch(() => { // deleted meanwhile, or not yet in the read model: nothing to show
          for (const [key, asked] of this.asking) if (asked === id) this.asking.delete(key);
        })
        .finally(() => {
          this.activeFetches -= 1;
          this.fetching.delete(id);
          this._pump();
        });
    }
  }
}
