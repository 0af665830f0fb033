-- Jobs whose rows the retention setting pruned (CONVEYOR_RETENTION_TERMINAL_DAYS): the log keeps
-- their history; the read model keeps only this marker, so that GET /jobs/{id} can say where it
-- went, `conveyor verify` expects no row, and a later event (a restart, a delete) makes the
-- projector fold the job from the log again (issue 13).
CREATE TABLE pruned_jobs (
    id          text PRIMARY KEY,
    seq         bigint NOT NULL,
    finished_at timestamptz NOT NULL,
    pruned_at   timestamptz NOT NULL DEFAULT now()
);
