-- Each job's attempts (who ran each one, when, how it ended, why the next one happened) and
-- the log sequence of its last event, maintained by the projector like every other column
-- (the fold computes both: conveyor_events.attempts, JobState.seq).
-- Rows projected before this migration get an empty list and sequence 0 until `conveyor
-- replay` rebuilds them from the log (`conveyor verify` lists the rows that differ); the
-- attempts of a job that is still running then begin with the next event's attempt.
ALTER TABLE jobs ADD COLUMN attempts jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE jobs ADD COLUMN seq bigint NOT NULL DEFAULT 0;
