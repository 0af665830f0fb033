// Pure logic of the detail view's story of a job: the timeline's items (runs of progress
// events collapsed, so thousands of them stay one line), who did what and why, and what an
// exec job's program and exit code were. No DOM here; views/detail.js draws it.

/** Consecutive job.progressed events longer than this become one collapsed item. */
export const RUN_MIN = 4;

/**
 * The timeline's items for events sorted by seq: {key, kind: "event", event} or
 * {key, kind: "run", events} for RUN_MIN or more job.progressed in a row. A run's key is its
 * first seq, so it keeps its key (and its element) while it grows.
 */
export function timelineItems(events, runMin = RUN_MIN) {
  const items = [];
  let i = 0;
  while (i < events.length) {
    if (events[i].type === "job.progressed") {
      let j = i;
      while (j < events.length && events[j].type === "job.progressed") j += 1;
      if (j - i >= runMin) {
        items.push({ key: `run-${events[i].seq}`, kind: "run", events: events.slice(i, j) });
      } else {
        for (let k = i; k < j; k += 1) {
          items.push({ key: String(events[k].seq), kind: "event", event: events[k] });
        }
      }
      i = j;
    } else {
      items.push({ key: String(events[i].seq), kind: "event", event: events[i] });
      i += 1;
    }
  }
  return items;
}

/** One line for a run of progress events: "120 progress events · 3% → 97% · last: msg". */
export function runSummary(events) {
  const first = events[0]?.data ?? {};
  const last = events[events.length - 1]?.data ?? {};
  const pct = (d) => `${Math.round(Number(d.progress) || 0)}%`;
  const msg = last.message ? ` · last: ${last.message}` : "";
  return `${events.length} progress events · ${pct(first)} → ${pct(last)}${msg}`;
}

/** Who did it and why: "user:alice — reason «…» · request 4bf9…". */
export function whoAndWhy(event) {
  const d = event.data || {};
  const parts = [event.actor || "?"];
  if (d.reason) parts.push(`reason: ${d.reason}`);
  if (d.request_id) parts.push(`request ${d.request_id}`);
  return parts.join(" · ");
}

/** An exec job's program line and exit code (null for other types). */
export function execInfo(job) {
  if (!job || job.type !== "exec") return null;
  const argv = Array.isArray(job.payload?.argv) ? job.payload.argv.map(String) : [];
  const program = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
  let exit = null;
  if (job.status === "completed") exit = "0";
  else if (job.error?.message) {
    const code = /exited with code (-?\d+)/.exec(job.error.message);
    const killed = /was killed by ([A-Z0-9]+(?: \(signal \d+\))?)/.exec(job.error.message);
    if (code) exit = code[1];
    else if (killed) exit = `killed by ${killed[1]}`;
  }
  if (job.status === "stopped" && exit === null) exit = "killed (stopped)";
  return { program, exit };
}
