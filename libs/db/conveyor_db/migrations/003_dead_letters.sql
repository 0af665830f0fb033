-- Events of the log that the projector could not decode or apply, parked instead of applied:
-- one row per stream sequence, written in the same transaction as the rows and the checkpoint.
CREATE TABLE dead_letters (
    seq       bigint PRIMARY KEY,
    subject   text NOT NULL,
    job_id    text,
    kind      text NOT NULL,
    reason    text NOT NULL,
    raw       bytea NOT NULL,
    raw_size  integer NOT NULL,
    parked_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX dead_letters_job_id ON dead_letters (job_id);
CREATE INDEX dead_letters_kind   ON dead_letters (kind, seq);
