// The job state machine as seen by the browser: a mirror of conveyor_events.state.evolve.
// Pure functions; the store decides when to apply them.

/** The job a job.submitted event creates (its data carries every submitted field). */
export function fromSubmitted(event) {
  const d = event.data || {};
  return {
    id: event.job_id,
    type: d.type ?? "",
    priority: d.priority ?? "regular",
    payload: d.payload ?? {},
    status: "pending",
    progress: 0,
    message: null,
    attempt: 0,
    max_attempts: d.max_attempts ?? 1,
    timeout_s: d.timeout_s ?? null,
    run_at: d.run_at ?? null,
    result: null,
    error: null,
    worker_id: null,
    stop_requested: false,
    created_at: event.at,
    started_at: null,
    finished_at: null,
    updated_at: event.at,
    version: 1,
  };
}

/**
 * Apply one event to a job and return the new job (never mutates). `bump: false` keeps the
 * version, for an event the job already reflected (a state read from the API).
 */
export function evolve(job, event, { bump = true } = {}) {
  if (event.type === "job.submitted") return job ?? fromSubmitted(event);
  if (!job) return null;
  const d = event.data || {};
  const s = { ...job, updated_at: event.at, version: (job.version ?? 0) + (bump ? 1 : 0) };
  switch (event.type) {
    case "job.started":
      return {
        ...s, status: "running", attempt: d.attempt ?? s.attempt + 1,
        worker_id: d.worker_id ?? s.worker_id, started_at: event.at, finished_at: null,
        progress: 0, message: null, stop_requested: false,
      };
    case "job.progressed":
      return { ...s, progress: Number(d.progress) || 0, message: d.message ?? null };
    case "job.completed":
      return {
        ...s, status: "completed", result: d.result ?? null, progress: 100,
        finished_at: event.at, stop_requested: false,
      };
    case "job.failed":
      if (d.retry) return { ...s, status: "pending", error: d.error ?? null, run_at: d.retry_at ?? null };
      return {
        ...s, status: "failed", error: d.error ?? null, finished_at: event.at,
        stop_requested: false,
      };
    case "job.stop_requested":
      return { ...s, stop_requested: true };
    case "job.stopped":
      return { ...s, status: "stopped", finished_at: event.at, stop_requested: false };
    case "job.restarted":
      return {
        ...s, status: "pending", run_at: null, progress: 0, message: null, result: null,
        finished_at: null,
      };
    case "job.deleted":
      return { ...s, deleted: true };
    default:
      return job; // unknown event types are ignored (schemas only grow)
  }
}

/** The state after every event (sorted by seq), or null for a history without submit. */
export function fold(events) {
  let job = null;
  for (const event of events) job = evolve(job, event);
  return job;
}

/** Which operator actions the job's state allows (SPEC 2.1). */
export function allowedActions(job) {
  const status = job?.deleted ? "deleted" : job?.status;
  return {
    stop: status === "pending" || status === "running",
    restart: status === "failed" || status === "stopped",
    delete: status === "completed" || status === "failed" || status === "stopped",
  };
}

/** The status a job will have after this event, as far as the event alone tells. */
export function statusAfter(event) {
  switch (event.type) {
    case "job.submitted":
    case "job.restarted":
      return "pending";
    case "job.started":
    case "job.progressed":
    case "job.stop_requested":
      return "running";
    case "job.completed":
      return "completed";
    case "job.failed":
      return event.data?.retry ? "pending" : "failed";
    case "job.stopped":
      return "stopped";
    default:
      return null;
  }
}
