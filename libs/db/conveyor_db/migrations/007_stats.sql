-- Statistics kept by the projector in the projection's transaction (conveyor_db.stats), so
-- GET /api/v1/stats reads small tables, not the jobs (issue 13).

-- Jobs by status and priority, moved by every status change.
CREATE TABLE job_counts (
    status   text NOT NULL,
    priority text NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (status, priority)
);

-- Jobs that completed, or failed with no retry left, per minute of their finished_at.
CREATE TABLE job_outcomes (
    minute  timestamptz NOT NULL,
    outcome text NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (minute, outcome)
);

-- Completed jobs per type and minute, by run time in fixed buckets (four per doubling).
CREATE TABLE job_run_times (
    type   text NOT NULL,
    minute timestamptz NOT NULL,
    bucket integer NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (type, minute, bucket)
);
CREATE INDEX job_run_times_minute ON job_run_times (minute);

-- The oldest pending job per priority, waiting since it became pending (submitted, retried,
-- restarted: its last event) or since its run_at, whichever is later: one index probe.
CREATE INDEX jobs_pending_since ON jobs (priority, (GREATEST(updated_at, run_at)))
    WHERE status = 'pending';

-- A database projected before: its counts as they are (no projector writes meanwhile), and
-- the last day's outcomes and run times from the rows it still has (`conveyor replay` makes
-- them exact: retried failures and deleted jobs are not in the rows).
LOCK TABLE jobs IN SHARE MODE;
INSERT INTO job_counts (status, priority, n)
    SELECT status, priority, count(*) FROM jobs GROUP BY status, priority;
INSERT INTO job_outcomes (minute, outcome, n)
    SELECT date_trunc('minute', finished_at), status, count(*) FROM jobs
    WHERE status IN ('completed', 'failed') AND finished_at >= now() - interval '24 hours'
    GROUP BY 1, 2;
INSERT INTO job_run_times (type, minute, bucket, n)
    SELECT type, date_trunc('minute', finished_at),
           CASE WHEN ms <= 1 THEN 0 ELSE LEAST(160, ceil(4 * log(2.0, ms::numeric) - 1e-9)::int) END,
           count(*)
    FROM (SELECT type, finished_at,
                 extract(epoch FROM finished_at - started_at) * 1000 AS ms FROM jobs
          WHERE status = 'completed' AND started_at IS NOT NULL
            AND finished_at >= now() - interval '24 hours') AS done
    GROUP BY 1, 2, 3;
