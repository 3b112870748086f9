-- Installing: any database (this one is not cron.database_name), CASCADE,
-- schemas, roles, and the database worker it starts.
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline CASCADE;

SELECT current_database() <> current_setting('cron.database_name') AS not_the_cron_database;

SELECT nspname FROM pg_namespace WHERE nspname IN ('pipeline', 'metrics') ORDER BY 1;
SELECT rolname, rolcanlogin FROM pg_roles
 WHERE rolname IN ('pipeline_reader', 'pipeline_writer') ORDER BY 1;

-- the extension is not relocatable and lives in schema pipeline
SELECT extname, extrelocatable, extnamespace::regnamespace FROM pg_extension WHERE extname = 'pipeline';

-- settings exist with their defaults and contexts, and the prefix is reserved
SELECT name, boot_val, unit, context FROM pg_settings WHERE name LIKE 'pipeline.%' ORDER BY name;
SET pipeline.no_such_setting = 1;

-- the launcher started a worker for this database once CREATE EXTENSION
-- committed; wait for it (a condition with a deadline, not a fixed sleep).
-- The later tests of this database that need it running call this too.
CREATE PROCEDURE public.wait_for_worker() LANGUAGE plpgsql AS $$
DECLARE deadline timestamptz := clock_timestamp() + interval '60 seconds';
BEGIN
    LOOP
        EXIT WHEN EXISTS (SELECT FROM pipeline.workers
                           WHERE kind = 'worker' AND database = current_database()
                             AND state = 'running' AND last_tick IS NOT NULL);
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'no running pipeline worker for %', current_database();
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
CALL public.wait_for_worker();

SELECT kind, state, pid IS NOT NULL AS has_pid FROM pipeline.workers
 WHERE kind = 'launcher' OR database = current_database() ORDER BY kind;
SELECT backend_type, datname = current_database() AS here FROM pg_stat_activity
 WHERE backend_type LIKE 'pipeline%' AND (datname IS NULL OR datname = current_database())
 ORDER BY 1;

-- a second install in the same database is refused, not silently merged
CREATE EXTENSION pipeline;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
