-- The attempt at which the job's current run was queued: the worker's max-deliveries rule
-- counts the attempts started within one run (SPEC §2.3, "max deliveries").
ALTER TABLE jobs ADD COLUMN run_base integer NOT NULL DEFAULT 0;

-- Rows projected before this column existed get the usual value (a pending job has started
-- nothing in its current run, any other one attempt). Only the read model is approximate
-- for a run that was redelivered: workers decide on the log, and `conveyor replay` makes
-- every row exact (`conveyor verify` lists what differs).
UPDATE jobs SET run_base = CASE WHEN status = 'pending' THEN attempt ELSE GREATEST(attempt - 1, 0) END;
