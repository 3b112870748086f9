-- Scheduled jobs (src/schedule.c): pipeline.schedule() creates or updates
-- this database's pg_cron jobs, pipeline.unschedule() removes them,
-- pipeline.cron_jobs() reads them with their last run; what the hourly
-- maintenance job runs, pipeline.maintain(), is in 65_retention.sql.
--
-- pg_cron lives in one database (cron.database_name), so the C functions
-- connect there over the server's Unix socket as the calling role, and the
-- jobs run as that role.  No pipeline.jobs view: cron.job is in the other
-- database; pipeline.status shows the jobs, and an error reading them as a
-- row (src/sql/90_status.sql).

CREATE FUNCTION pipeline.schedule(close_days_schedule text DEFAULT '*/5 * * * *') RETURNS void
    LANGUAGE c VOLATILE CALLED ON NULL INPUT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_schedule';
COMMENT ON FUNCTION pipeline.schedule(text) IS
    'creates or updates, idempotently, the pg_cron jobs of the current database, owned by and run as the caller: '
    '''pipeline:<db>:close_days'' (SELECT pipeline.close_days(), every 5 minutes unless close_days_schedule says '
    'otherwise) and ''pipeline:<db>:maintenance'' (SELECT pipeline.maintain(), hourly at minute 17).  Connects to '
    'cron.database_name over the local socket as the caller; commits there at once, whatever the calling '
    'transaction does next';

CREATE FUNCTION pipeline.unschedule() RETURNS void
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_unschedule';
COMMENT ON FUNCTION pipeline.unschedule() IS
    'removes the pg_cron jobs of the current database (the caller''s own; a superuser''s call removes every '
    'role''s); no jobs is not an error.  Commits in cron.database_name at once';

CREATE FUNCTION pipeline.cron_jobs(missing_ok boolean DEFAULT false)
    RETURNS TABLE (jobid bigint, jobname text, username text, schedule text, command text, active boolean,
                   last_run_start timestamptz, last_run_end timestamptz, last_run_status text,
                   last_run_message text)
    LANGUAGE c VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_cron_jobs';
COMMENT ON FUNCTION pipeline.cron_jobs(boolean) IS
    'the pg_cron jobs of the current database (named ''pipeline:<db>:...'') that the caller may see (pg_cron shows '
    'a role its own jobs, a superuser every role''s), each with its latest run from cron.job_run_details: start, '
    'end, status (starting, running, succeeded, failed) and message.  Connects to cron.database_name over the '
    'local socket as the caller and gives up after 5 seconds; with missing_ok, pg_cron not loaded or not installed '
    'is no rows instead of an error';
