// The pure modules of the dashboard, run in the page by test_dashboard_ops.py
// (test_the_pages_pure_logic), which checks what this returns.
async () => {
  const r = await import("/dashboard/reducer.js");
  const s = await import("/dashboard/store.js");
  const sel = await import("/dashboard/selection.js");
  const t = await import("/dashboard/timeline.js");
  const at = (n) => `2026-12-07T10:00:0${n}Z`;
  const ev = (seq, type, data = {}) => ({seq, job_id: "J", type, at: at(seq), actor: "worker:w", data});
  const job = r.fold([
    ev(1, "job.submitted", {type: "sleep", priority: "high", payload: {a: 1}, max_attempts: 2}),
    ev(2, "job.started", {attempt: 1, worker_id: "w"}),
    ev(3, "job.progressed", {progress: 40, message: "m"}),
    ev(4, "job.failed", {attempt: 1, retry: true, error: {type: "E", message: "x"}}),
    ev(5, "job.started", {attempt: 2, worker_id: "v"}),
    ev(6, "job.completed", {attempt: 2, result: 7}),
  ]);
  const filter = s.filterFromSearch("?status=failed,bogus,pending&priority=low&type=x&q=%20ab%20");
  const learned = new Map([["failed|0", ["restart", "delete"]]]);
  let pick = sel.toggle(sel.emptySelection(), "A", true);
  pick = sel.toggle(pick, "B", true);
  pick = sel.toggle(pick, "A", false);
  const all = sel.allMatching({statuses: ["failed"], priority: "", type: "", q: "z"}, 7);
  const events = [ev(1, "job.submitted"), ...[2,3,4,5].map((n) => ev(n, "job.progressed", {progress: n * 10})),
                  ev(6, "job.progressed", {progress: 90}), ev(7, "job.completed"), ev(8, "job.progressed")];
  return {
    job: [job.status, job.attempt, job.worker_id, job.result, job.progress, job.version],
    retried: r.evolve({status: "running", version: 1}, ev(9, "job.failed", {retry: true})).status,
    filter, search: s.filterToSearch(filter, "?x=1"),
    allowed: [s.allowedFrom({status: "failed"}, learned), s.allowedFrom({status: "running"}, learned),
              s.allowedFrom({status: "running", actions: ["stop"], actionsKey: "running|0"}, learned),
              s.allowedFrom({status: "failed", actions: ["stop"], actionsKey: "running|0"}, learned)],
    ids: sel.bulkBody(pick, "stop", " why "),
    filtered: [sel.bulkBody(all, "restart"), sel.selectedCount(all), sel.isSelected(all, "Q")],
    confirm: sel.confirmText("delete", {matched: 3, acted: 2, refused: [{}]}),
    items: t.timelineItems(events).map((i) => i.kind === "run" ? `run:${i.events.length}` : i.event.seq),
    run: t.runSummary(events.slice(1, 6)),
    exec: [t.execInfo({type: "exec", status: "failed", payload: {argv: ["/bin/sh", "-c", "exit 3"]},
                       error: {message: "/bin/sh exited with code 3; the end of its stderr:"}}),
           t.execInfo({type: "sleep"})],
    why: t.whoAndWhy({actor: "user:alice", data: {reason: "oops", request_id: "r1"}}),
  };
}
