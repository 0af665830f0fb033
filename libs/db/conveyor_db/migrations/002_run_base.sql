-- The attempt at which the job's current run was queued: the worker's max-deliveries rule
-- counts the attempts started within one run (SPEC §2.3, "max deliveries").
ALTER TABLE jobs ADD COLUMN run_base integer NOT NULL DEFAULT 0;
