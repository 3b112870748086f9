-- pipeline install script.  Assembled from src/sql/*.sql in name order.
-- Rules: everything schema-qualified, functions pin search_path, no
-- CREATE OR REPLACE / IF NOT EXISTS, no extension placeholders in strings.

\echo Use "CREATE EXTENSION pipeline" to load this file. \quit

-- Refuse to install unless the library was preloaded: without it there are
-- no workers and the hot layer would silently never move.
CREATE FUNCTION pipeline._require_preload() RETURNS void
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'pipeline_require_preload';
SELECT pipeline._require_preload();

-- The schema must be the one CREATE EXTENSION made for us: in a schema that
-- another role created beforehand, that role could rename, replace or add
-- to our functions, and the pipeline's privileged code would run them.
DO $check$
BEGIN
    IF (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.nspname OPERATOR(pg_catalog.=) 'pipeline')
       OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname OPERATOR(pg_catalog.=) current_user) THEN
        RAISE EXCEPTION 'schema "pipeline" already exists and belongs to another role'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Drop or rename that schema, then run CREATE EXTENSION pipeline again: the extension creates its own.';
    END IF;
END
$check$;

-- Roles are cluster-wide: the first database to install the extension
-- creates them, the others reuse them.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pipeline_reader') THEN
        CREATE ROLE pipeline_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pipeline_writer') THEN
        CREATE ROLE pipeline_writer NOLOGIN;
    END IF;
END
$roles$;

CREATE SCHEMA metrics;
COMMENT ON SCHEMA metrics IS 'pipeline serving views: <metric>_live, _daily, _corrections, _restated, _reconcile';

GRANT USAGE ON SCHEMA pipeline TO pipeline_reader, pipeline_writer;
GRANT USAGE ON SCHEMA metrics TO pipeline_reader, pipeline_writer;
