-- The read model: one row per live (not deleted) job, every field of the job resource plus
-- the bookkeeping the fold needs, so that a row is exactly the job's state.
CREATE TABLE jobs (
    id             text PRIMARY KEY,
    type           text NOT NULL,
    priority       text NOT NULL,
    payload        jsonb NOT NULL,
    status         text NOT NULL,
    progress       double precision NOT NULL,
    message        text,
    attempt        integer NOT NULL,
    max_attempts   integer NOT NULL,
    timeout_s      double precision,
    run_at         timestamptz,
    result         jsonb,
    error          jsonb,
    worker_id      text,
    stop_requested boolean NOT NULL,
    created_at     timestamptz NOT NULL,
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL,
    version        integer NOT NULL,
    run            integer NOT NULL,
    attempts_base  integer NOT NULL
);

-- Job ids are time-sortable, so "newest first" is "id descending"; one index per list filter.
CREATE INDEX jobs_status_id   ON jobs (status, id DESC);
CREATE INDEX jobs_priority_id ON jobs (priority, id DESC);
CREATE INDEX jobs_type_id     ON jobs (type, id DESC);
CREATE INDEX jobs_finished    ON jobs (finished_at) WHERE status = 'completed';

-- The projector's position in the log, written in the same transaction as the rows.
CREATE TABLE projector_checkpoint (
    name     text PRIMARY KEY,
    last_seq bigint NOT NULL
);
