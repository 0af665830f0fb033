// One job: every field, payload/result/error, and its event history as a timeline that grows
// live. The state shown is the fold of the job's own events (GET /jobs/{id}/events plus the
// feed), so it is exact even after a delete. Hooks: #job-detail, #timeline li[data-seq].

import { actionButtons, updateActionButtons } from "../actions.js";
import { fold } from "../reducer.js";
import { execInfo, runSummary, timelineItems, whoAndWhy } from "../timeline.js";
import {
  clampPercent, debounce, fmtPercent, fmtSeconds, frameScheduler, h, prettyJson, setText,
  shortId, timeEl, tsKey,
} from "../util.js";

// Events after which the API's resource (attempts, actions) has news worth reading again.
const REREAD = new Set([
  "job.started", "job.completed", "job.failed", "job.stopped", "job.restarted",
  "job.stop_requested", "job.deleted",
]);
const RUN_SHOWN = 200; // progress events listed when a collapsed run is opened

const FIELDS = [
  ["id", "Id"], ["type", "Type"], ["priority", "Priority"], ["status", "Status"],
  ["progress", "Progress"], ["message", "Message"], ["attempt", "Attempt"],
  ["timeout_s", "Timeout"], ["run_at", "Run at"], ["worker_id", "Worker"],
  ["stop_requested", "Stop requested"], ["created_at", "Created"], ["started_at", "Started"],
  ["finished_at", "Finished"], ["updated_at", "Updated"], ["version", "Version"],
];

const TIMES = new Set(["run_at", "created_at", "started_at", "finished_at", "updated_at"]);

function fieldValue(job, key) {
  const value = job[key];
  if (TIMES.has(key)) return timeEl(value);
  switch (key) {
    case "id":
      return h("code", { class: "mono" }, value);
    case "priority":
      return h("span", { class: `badge priority-${value}`, text: value });
    case "status":
      return h("span", { class: `badge status-${value}`, text: job.deleted ? `${value} (deleted)` : value });
    case "progress": {
      const pct = clampPercent(value);
      return h("span", { class: "bar-line" },
        h("progress", { max: 100, value: pct, "data-value": pct, "aria-valuenow": pct,
          "aria-label": "Progress" }),
        h("span", { class: "pct", text: fmtPercent(pct) }));
    }
    case "attempt":
      return `${value} (max ${job.max_attempts} per run)`;
    case "timeout_s":
      return value == null ? h("span", { class: "muted", text: "none" }) : fmtSeconds(value);
    case "stop_requested":
      return value ? "yes" : "no";
    default:
      return value == null || value === "" ? h("span", { class: "muted", text: "—" }) : String(value);
  }
}

function shortJson(value) {
  const text = JSON.stringify(value);
  return text && text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

/** One line saying what the event did. */
export function summarize(event) {
  const d = event.data || {};
  switch (event.type) {
    case "job.submitted":
      return `${d.type} · ${d.priority ?? "regular"} · up to ${d.max_attempts ?? 1} attempt(s)`;
    case "job.started":
      return `attempt ${d.attempt} on ${d.worker_id ?? "?"}`;
    case "job.progressed":
      return `${fmtPercent(d.progress)}${d.message ? ` — ${d.message}` : ""}`;
    case "job.completed":
      return `attempt ${d.attempt} · result ${shortJson(d.result ?? null)}`;
    case "job.failed": {
      const error = d.error ? `${d.error.type}: ${d.error.message}` : "failed";
      const next = d.retry
        ? `retry${d.retry_at ? ` at ${new Date(d.retry_at).toLocaleTimeString()}` : ""}`
        : "no attempts left";
      return `attempt ${d.attempt} · ${error} · ${next}`;
    }
    case "job.stop_requested":
      return "stop requested; the worker cancels the handler";
    case "job.stopped":
      return d.attempt != null ? `attempt ${d.attempt} cancelled` : "stopped before it ran";
    case "job.restarted":
      return "back to pending with a fresh attempt budget";
    case "job.deleted":
      return "removed from the read model; the history stays in the log";
    default:
      return "";
  }
}

function timelineItem(event) {
  const hasData = event.data && Object.keys(event.data).length > 0;
  const kind = event.type.replace(/^job\./, "");
  return h("li", { dataset: { seq: event.seq, type: event.type }, class: `ev ev-${kind}` },
    h("div", { class: "ev-head" },
      h("span", { class: "ev-type", text: event.type }),
      timeEl(event.at),
      h("span", { class: "ev-actor muted", text: event.actor }),
      h("span", { class: "ev-seq muted", text: `#${event.seq}` })),
    h("div", { class: "ev-summary", text: summarize(event) }),
    event.data?.reason || event.data?.request_id
      ? h("div", { class: "ev-why", text: whoAndWhy(event) }) : null,
    hasData ? h("details", {}, h("summary", { text: "data" }),
      h("pre", { class: "json", text: prettyJson(event.data) })) : null);
}

/** A collapsed run of progress events: one line; opened, its last RUN_SHOWN events. */
function runItem(events) {
  const li = h("li", {
    class: "ev ev-progressed ev-run",
    dataset: { type: "job.progressed", run: events.length, firstSeq: events[0].seq },
  });
  const summary = h("summary", {});
  const details = h("details", {}, summary);
  li.append(details);
  li.update = (evs) => {
    li.dataset.run = evs.length;
    li.dataset.lastSeq = evs[evs.length - 1].seq;
    setText(summary, runSummary(evs));
    li.events = evs;
    if (details.open) fillRun(details, evs);
  };
  details.addEventListener("toggle", () => {
    if (details.open) fillRun(details, li.events);
    else details.querySelector("ol")?.remove();
  });
  li.update(events);
  return li;
}

function fillRun(details, events) {
  const shown = events.slice(-RUN_SHOWN);
  const list = h("ol", { "aria-label": "Progress events" }, shown.map((e) => h("li", {
    dataset: { seq: e.seq },
  }, timeEl(e.at), ` #${e.seq} `, summarize(e))));
  if (events.length > shown.length) {
    list.prepend(h("li", { text: `… ${events.length - shown.length} earlier ones not listed` }));
  }
  details.querySelector("ol")?.remove();
  details.append(list);
}

const OUTCOMES = {
  completed: "completed", failed: "failed", stopped: "stopped", lost: "worker lost",
  running: "running",
};
const CAUSES = {
  handler_error: "retry after an error", timeout: "retry after a timeout",
  worker_lost: "redelivered: worker lost", operator_restart: "restarted by an operator",
};

function attemptsTable(attempts) {
  return h("table", { class: "attempts-table", id: "attempts" },
    h("caption", { class: "sr-only", text: "Attempts of this job" }),
    h("thead", {}, h("tr", {}, ["#", "Worker", "Started", "Finished", "Outcome", "Next"].map(
      (label) => h("th", { scope: "col", text: label })))),
    h("tbody", {}, attempts.map((a) => h("tr", {
      dataset: { attempt: a.attempt, outcome: a.outcome ?? "running" },
    },
    h("td", { class: "n", text: a.attempt }),
    h("td", { class: "worker mono", text: a.worker_id ?? "—" }),
    h("td", { class: "started" }, timeEl(a.started_at)),
    h("td", { class: "finished" }, timeEl(a.finished_at)),
    h("td", { class: `outcome outcome-${a.outcome ?? "running"}` },
      OUTCOMES[a.outcome ?? "running"] ?? String(a.outcome),
      a.error ? h("div", { class: "attempt-error", text: `${a.error.type}: ${a.error.message}` }) : null),
    h("td", { class: "next", dataset: { cause: a.next_cause ?? "" } },
      a.next_cause ? CAUSES[a.next_cause] ?? a.next_cause : "—")))));
}

export function mountDetail(root, { api, store, actions }) {
  let state = null; // {id, events: Map seq -> event, items: Map seq -> li, rest, loaded, error}
  const schedule = frameScheduler(render);
  const reread = debounce(() => {
    const current = state;
    if (!current) return;
    api.getJob(current.id).then((job) => {
      if (state !== current) return;
      current.rest = job;
      store.ingest(job);
      schedule();
    }).catch(() => {}); // deleted: the fold of the history still shows it
  }, 250);

  function currentJob() {
    if (state.sortedDirty) {
      state.sorted = [...state.events.values()].sort((a, b) => a.seq - b.seq);
      state.sortedDirty = false;
    }
    const events = state.sorted;
    const folded = events.length && events[0].type === "job.submitted" ? fold(events) : null;
    const candidates = [folded, store.get(state.id), state.rest].filter(Boolean);
    if (!candidates.length) return null;
    let best = candidates[0];
    for (const job of candidates.slice(1)) {
      if ((tsKey(job.updated_at) ?? 0) > (tsKey(best.updated_at) ?? 0)) best = job;
    }
    const deleted = candidates.some((job) => job.deleted);
    return deleted && !best.deleted ? { ...best, deleted } : best;
  }

  function skeleton(id) {
    const buttons = actionButtons(id);
    const close = h("a", { href: "#/", class: "close", "aria-label": "Close job detail", text: "×" });
    root.replaceChildren(
      h("header", { class: "card-head detail-head" },
        h("h2", { id: "job-detail-title" }, "Job ", h("code", { class: "mono", title: id, text: shortId(id) })),
        h("span", { class: "detail-status" }),
        h("div", { class: "btn-group detail-actions" }, buttons),
        close),
      h("p", { class: "detail-note", role: "status" }),
      h("div", { class: "detail-body" },
        h("dl", { class: "fields" }),
        h("div", { class: "blocks" })),
      h("h3", { class: "attempts-title", text: "Attempts" }),
      h("div", { class: "attempts" }),
      h("h3", { class: "timeline-title", text: "Timeline" }),
      h("p", { class: "detail-links" },
        h("a", {
          href: `/api/v1/jobs/${encodeURIComponent(id)}/events`, class: "raw-events",
          target: "_blank", rel: "noopener", text: "Raw events (JSON)",
        })),
      h("ol", { id: "timeline", class: "timeline", "aria-label": "Event history" }),
    );
    root.querySelector(".detail-actions").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-action]");
      if (!button || !state) return;
      button.disabled = true;
      actions.run(state.id, button.dataset.action);
    });
  }

  function render() {
    if (!state) return;
    const job = currentJob();
    const note = root.querySelector(".detail-note");
    const status = root.querySelector(".detail-status");
    root.dataset.jobId = state.id;
    if (!job) {
      status.replaceChildren();
      setText(note, state.error ? state.error : "Loading…");
      note.className = `detail-note${state.error ? " error" : ""}`;
      updateActionButtons(root.querySelectorAll(".detail-actions button"), state.id, {}, actions);
    } else {
      root.dataset.status = job.status;
      status.replaceChildren(h("span", { class: `badge status-${job.status}`, text: job.status }));
      setText(note, job.deleted ? "This job was deleted; its history remains in the log." : "");
      note.className = `detail-note${job.deleted ? " warn" : ""}`;
      updateActionButtons(root.querySelectorAll(".detail-actions button"), state.id,
        allowedNow(job), actions);
      const exec = execInfo(job);
      root.querySelector(".fields").replaceChildren(...FIELDS.flatMap(([key, label]) => [
        h("dt", { text: label }),
        h("dd", { dataset: { field: key } }, fieldValue(job, key)),
      ]), ...(exec ? [
        h("dt", { text: "Program" }),
        h("dd", { dataset: { field: "program" } }, h("code", { class: "mono", text: exec.program || "—" })),
        h("dt", { text: "Exit code" }),
        h("dd", { dataset: { field: "exit_code" }, text: exec.exit ?? "—" }),
      ] : []));
      const attempts = state.rest?.attempts;
      root.querySelector(".attempts").replaceChildren(Array.isArray(attempts)
        ? (attempts.length ? attemptsTable(attempts) : h("p", { class: "muted", text: "Not started yet." }))
        : h("p", { class: "muted", text: "Loading attempts…" }));
      const blocks = [
        h("section", { class: "block" }, h("h3", { text: "Payload" }),
          h("pre", { class: "json", dataset: { field: "payload" }, text: prettyJson(job.payload ?? {}) })),
      ];
      if (job.status === "completed" || job.result != null) {
        blocks.push(h("section", { class: "block" }, h("h3", { text: "Result" }),
          h("pre", { class: "json", dataset: { field: "result" }, text: prettyJson(job.result ?? null) })));
      }
      if (job.error) {
        blocks.push(h("section", { class: "block block-error" }, h("h3", { text: "Error" }),
          h("p", { dataset: { field: "error" } },
            h("strong", { text: job.error.type }), `: ${job.error.message}`),
          job.error.traceback ? h("pre", { class: "traceback", text: job.error.traceback }) : null));
      }
      root.querySelector(".blocks").replaceChildren(...blocks);
    }
    // Timeline: one li per event in seq order, a run of progress events collapsed into one;
    // elements kept by key, so a long history is drawn once and then only grows.
    const list = root.querySelector("#timeline");
    if (state.sortedDirty) {
      state.sorted = [...state.events.values()].sort((a, b) => a.seq - b.seq);
      state.sortedDirty = false;
    }
    const items = timelineItems(state.sorted);
    const keep = new Set(items.map((item) => item.key));
    for (const [key, li] of state.items) {
      if (!keep.has(key)) {
        li.remove();
        state.items.delete(key);
      }
    }
    let next = list.firstElementChild;
    for (const item of items) {
      let li = state.items.get(item.key);
      if (!li) {
        li = item.kind === "run" ? runItem(item.events) : timelineItem(item.event);
        state.items.set(item.key, li);
      } else if (item.kind === "run" && Number(li.dataset.lastSeq) !== item.events[item.events.length - 1].seq) {
        li.update(item.events);
      }
      if (li === next) next = next.nextElementSibling;
      else list.insertBefore(li, next);
    }
  }

  // The actions the API allows: the detail's own read of the job while it is current,
  // else what the store learned from the API for this state.
  function allowedNow(job) {
    const rest = state.rest;
    if (rest && Array.isArray(rest.actions) && !job.deleted && rest.status === job.status
        && Boolean(rest.stop_requested) === Boolean(job.stop_requested)) {
      return Object.fromEntries(rest.actions.map((a) => [a, true]));
    }
    return store.allowed(job);
  }

  async function load(current) {
    const [job, events] = await Promise.allSettled([
      api.getJob(current.id), api.jobEvents(current.id),
    ]);
    if (state !== current) return;
    if (job.status === "fulfilled") current.rest = job.value;
    if (events.status === "fulfilled") {
      for (const event of events.value?.items ?? []) current.events.set(event.seq, event);
      current.sortedDirty = true;
    }
    if (job.status === "rejected" && !current.events.size) {
      const err = job.reason;
      current.error = err.status === 404
        ? `No job ${current.id}: ${err.detail}`
        : `Could not load job ${current.id}: ${err.detail || err.message}`;
    } else if (events.status === "rejected") {
      current.error = `Could not load the history: ${events.reason.detail || events.reason.message}`;
    }
    current.loaded = true;
    render();
  }

  store.on("event", (event) => {
    if (state && event.job_id === state.id) {
      const last = state.sorted[state.sorted.length - 1];
      if (!state.events.has(event.seq)) {
        state.events.set(event.seq, event);
        if (!state.sortedDirty && (!last || event.seq > last.seq)) state.sorted.push(event);
        else state.sortedDirty = true;
      }
      if (REREAD.has(event.type)) reread();
      schedule();
    }
  });
  store.on("job", (id) => {
    if (state && id === state.id) schedule();
  });

  return {
    get currentId() {
      return state?.id ?? null;
    },
    open(id) {
      if (state?.id === id) return;
      if (state) store.unpin(state.id);
      state = {
        id, events: new Map(), items: new Map(), rest: null, loaded: false, error: null,
        sorted: [], sortedDirty: true,
      };
      store.pin(id);
      // Feed events for this job that arrived before the view opened.
      for (const event of store.recentByJob.get(id) ?? []) state.events.set(event.seq, event);
      state.sortedDirty = true;
      skeleton(id);
      root.hidden = false;
      render();
      root.scrollIntoView({ block: "start", behavior: "smooth" });
      load(state);
    },
    close() {
      if (state) store.unpin(state.id);
      state = null;
      root.hidden = true;
      root.replaceChildren();
      delete root.dataset.jobId;
      delete root.dataset.status;
    },
  };
}
