-- Tombstones of deleted jobs: the projector removes a deleted job's row from `jobs` and writes
-- its tombstone in the same transaction, so that in any later batch the job still folds to
-- "deleted" and every event after its job.deleted (a second job.submitted included) is parked
-- as an impossible transition, however the log is cut into batches.
-- Databases projected before this migration have no tombstones of jobs deleted earlier:
-- `conveyor replay` rebuilds them with the rest of the read model.
CREATE TABLE deleted_jobs (
    id         text PRIMARY KEY,
    seq        bigint NOT NULL,
    deleted_at timestamptz NOT NULL
);
