-- q's text search: the planner's estimate of how many rows `ILIKE '%text%'` matches comes from
-- a sample of the indexed text (the statistics of jobs_search_trgm's expression). With the
-- default target (100) its histogram holds about 100 of the sampled texts, so a rare value
-- that one of them happens to contain is estimated at 1 % of the table, and the planner reads
-- the table newest first through jobs_pkey to find 51 rows that are not there (1.2-2.8 s at
-- 1,000,000 jobs instead of 1-2 ms; one bench value in 200, a different one after each
-- ANALYZE). With 1,000 of them, one such chance match is 0.1 % and the trigram index still
-- wins; a common text is still estimated as common (docs/performance.md, issue 13).
ALTER INDEX jobs_search_trgm ALTER COLUMN 1 SET STATISTICS 1000;
ANALYZE jobs;
