-- pipeline demo: run by test/demo.sh against a fresh database `demo`.
\pset footer off
CREATE EXTENSION pipeline CASCADE;

-- The extension installs in any database; pg_cron stays in cron.database_name.
SELECT current_database(), current_setting('cron.database_name') AS cron_database;

-- A launcher and one worker per database with the extension.
SELECT pg_sleep(1.5);
SELECT kind, database, state, pid IS NOT NULL AS alive FROM pipeline.workers ORDER BY kind, database;
