-- Every filter of GET /api/v1/jobs answered from an index at 1,000,000 jobs (issue 13,
-- ADR 0019, docs/performance.md has the plans).

-- q's text search needs trigram indexes (pg_trgm, PostgreSQL's contrib). Without it this
-- migration fails, saying so: a fallback would be a sequential scan on every rare search.
-- The extension goes into the last schema of the search_path (the live one, also when
-- `conveyor replay` migrates its rebuild schema first on the path), once per database.
DO $$
DECLARE
    schemas name[] := current_schemas(false);
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm') THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        RAISE EXCEPTION 'the read model needs the PostgreSQL extension pg_trgm, which this server does not have'
            USING HINT = 'install PostgreSQL''s contrib modules on the server (Debian and Ubuntu: postgresql-contrib; the official and CloudNativePG images have them), then run conveyor migrate again';
    END IF;
    EXECUTE format('CREATE EXTENSION pg_trgm SCHEMA %I', schemas[array_length(schemas, 1)]);
END
$$;

-- q: an id prefix (LIKE 'prefix%' on text_pattern_ops, whatever the database's collation)...
CREATE INDEX jobs_id_prefix ON jobs (id text_pattern_ops);
-- ...or text inside the payload or the error (ILIKE '%text%', three characters or more). The
-- expression is conveyor_db.readmodel.SEARCH_TEXT, character for character.
CREATE INDEX jobs_search_trgm ON jobs
    USING gin ((payload::text || ' ' || coalesce(error::text, '')) gin_trgm_ops);

-- worker=, and the time ranges. created_before and finished_before also bound the id (a job's
-- id carries the time it was submitted), so "newest first" starts at the right place.
CREATE INDEX jobs_worker_id  ON jobs (worker_id, id DESC);
CREATE INDEX jobs_created_at ON jobs (created_at);
CREATE INDEX jobs_finished_at ON jobs (finished_at);
