// One job: every field, payload/result/error, and its event history as a timeline that grows
// live. The state shown is the fold of the job's own events (GET /jobs/{id}/events plus the
// feed), so it is exact even after a delete. Hooks: #job-detail, #timeline li[data-seq].

import { actionButtons, updateActionButtons } from "../actions.js";
import { allowedActions, fold } from "../reducer.js";
import {
  clampPercent, fmtPercent, fmtSeconds, frameScheduler, h, prettyJson, setText, shortId,
  timeEl, tsKey,
} from "../util.js";

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
    hasData ? h("details", {}, h("summary", { text: "data" }),
      h("pre", { class: "json", text: prettyJson(event.data) })) : null);
}

export function mountDetail(root, { api, store, actions }) {
  let state = null; // {id, events: Map seq -> event, items: Map seq -> li, rest, loaded, error}
  const schedule = frameScheduler(render);

  function currentJob() {
    const events = [...state.events.values()].sort((a, b) => a.seq - b.seq);
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
      h("h3", { class: "timeline-title", text: "Timeline" }),
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
        allowedActions(job), actions);
      root.querySelector(".fields").replaceChildren(...FIELDS.flatMap(([key, label]) => [
        h("dt", { text: label }),
        h("dd", { dataset: { field: key } }, fieldValue(job, key)),
      ]));
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
    // Timeline: one li per event, in seq order, added as events arrive.
    const list = root.querySelector("#timeline");
    const seqs = [...state.events.keys()].sort((a, b) => a - b);
    let next = list.firstElementChild;
    for (const seq of seqs) {
      let li = state.items.get(seq);
      if (!li) {
        li = timelineItem(state.events.get(seq));
        state.items.set(seq, li);
      }
      if (li === next) next = next.nextElementSibling;
      else list.insertBefore(li, next);
    }
  }

  async function load(current) {
    const [job, events] = await Promise.allSettled([
      api.getJob(current.id), api.jobEvents(current.id),
    ]);
    if (state !== current) return;
    if (job.status === "fulfilled") current.rest = job.value;
    if (events.status === "fulfilled") {
      for (const event of events.value?.items ?? []) current.events.set(event.seq, event);
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
      state.events.set(event.seq, event);
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
      state = { id, events: new Map(), items: new Map(), rest: null, loaded: false, error: null };
      store.pin(id);
      // Feed events for this job that arrived before the view opened.
      for (const event of store.recentByJob.get(id) ?? []) state.events.set(event.seq, event);
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
