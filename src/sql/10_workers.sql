-- Background workers: the launcher learns about this database at commit.

CREATE FUNCTION pipeline._wake_launcher() RETURNS void
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_wake_launcher';
COMMENT ON FUNCTION pipeline._wake_launcher() IS
    'internal: asks the launcher to start this database''s worker once the transaction commits';
SELECT pipeline._wake_launcher();

CREATE FUNCTION pipeline._workers(
        OUT kind text, OUT datid oid, OUT pid integer, OUT state text,
        OUT since timestamptz, OUT last_tick timestamptz)
    RETURNS SETOF record
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_workers';
COMMENT ON FUNCTION pipeline._workers() IS
    'internal: the launcher and the per-database worker slots, from shared memory';

CREATE VIEW pipeline.workers AS
    SELECT w.kind, d.datname AS database, w.pid, w.state, w.since, w.last_tick
      FROM pipeline._workers() AS w
      LEFT JOIN pg_catalog.pg_database AS d ON d.oid OPERATOR(pg_catalog.=) w.datid;
COMMENT ON VIEW pipeline.workers IS
    'the pipeline launcher and one row per database worker: state (running, absent, ...) and last tick';
GRANT SELECT ON pipeline.workers TO pipeline_reader, pipeline_writer;
