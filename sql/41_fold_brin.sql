-- run_hot() summarizes the BRIN ranges of recent raw partitions before it
-- folds, as the worker's round does: a fold called by hand or by a job
-- finds a batch's rows through the index instead of reading every page
-- autovacuum has not summarized yet.  As the source's owner (the caller
-- owns nothing of the raw table), only the pipeline's own index on
-- _pl_batch, and only for the sources of the metrics folded.
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
CREATE ROLE regress_brin_owner IN ROLE pipeline_writer;
CREATE ROLE regress_brin_folder IN ROLE pipeline_reader;
GRANT USAGE, CREATE ON SCHEMA pipeline, metrics TO regress_brin_owner;
SET ROLE regress_brin_owner;
SELECT pipeline.create_source(s, 'id bigint NOT NULL, event_time timestamptz NOT NULL, v integer', event_id => 'id')
  FROM unnest(ARRAY['brin_a', 'brin_b']) AS s;
SELECT pipeline.create_metric('brin_m', 'brin_a', measures => 'count(*) AS events, sum(v) AS total',
                              bucket => '1 hour', hot_retention => '7 days');
-- 20,000 events an hour ago, in each source: more than one BRIN range.
-- Autovacuum is off on the partitions they go to, from the same
-- transaction, so that no autoanalyze gives them statistics before the
-- test below looks (its threshold is 50 rows on a new table).
BEGIN;
SELECT s, r.received, r.accepted
  FROM unnest(ARRAY['brin_a', 'brin_b']) AS s,
       pipeline.ingest(s, (SELECT string_agg(json_build_object('id', i, 'event_time', now() - interval '1 hour',
                                                               'v', i % 10)::text, E'\n')
                             FROM generate_series(1, 20000) AS i)) AS r;
DO $$
DECLARE part regclass;
BEGIN
    FOR part IN SELECT i.inhrelid FROM pg_inherits AS i
                 WHERE i.inhparent IN ('pipeline.brin_a_raw'::regclass, 'pipeline.brin_b_raw'::regclass) LOOP
        EXECUTE format('ALTER TABLE %s SET (autovacuum_enabled = off)', part);
    END LOOP;
END
$$;
COMMIT;
RESET ROLE;

-- the BRIN index of each source's partition of today
CREATE TEMP VIEW brin_of AS
SELECT s.source, x.indexrelid::regclass AS index
  FROM pipeline.source_catalog AS s
  JOIN pg_inherits AS i ON i.inhparent = s.raw_table
  JOIN pg_index AS x ON x.indrelid = i.inhrelid
  JOIN pg_class AS ic ON ic.oid = x.indexrelid
  JOIN pg_am AS am ON am.oid = ic.relam AND am.amname = 'brin'
 WHERE s.source IN ('brin_a', 'brin_b');
-- a role that may fold but owns nothing of the source
SET ROLE regress_brin_folder;
SELECT pipeline.run_hot('brin_m');
RESET ROLE;
SELECT events, total FROM (SELECT sum(events) AS events, sum(total) AS total FROM metrics.brin_m_live) AS x;
-- brin_a's ranges were summarized by the fold, brin_b's (no metric) were not
SELECT source, pg_catalog.brin_summarize_new_values(index) > 0 AS had_ranges_left
  FROM brin_of ORDER BY source;

-- A later batch is read through the index even though the partition has
-- no statistics (autovacuum has not analyzed it; the planner would take a
-- batch for a large share of it and scan it whole), and run_hot() holds no
-- lock of its summarizing once it is done (autovacuum skips a table it
-- cannot lock at once, so held through the folds it kept the partition
-- from being analyzed).
CREATE TEMP VIEW brin_a_part AS
SELECT t.* FROM pg_stat_user_tables AS t
 WHERE t.relid = (SELECT i.inhrelid FROM pg_inherits AS i WHERE i.inhparent = 'pipeline.brin_a_raw'::regclass);
SELECT pg_stat_force_next_flush();
SELECT idx_scan AS idx_before, last_analyze IS NULL AND last_autoanalyze IS NULL AS never_analyzed
  FROM brin_a_part \gset
\echo never analyzed: :never_analyzed
SET ROLE regress_brin_owner;
SELECT accepted FROM pipeline.ingest('brin_a', (SELECT string_agg(json_build_object('id', 100000 + i, 'event_time', now() - interval '1 hour',
                                                                                  'v', 1)::text, E'\n')
                                                  FROM generate_series(1, 100) AS i));
RESET ROLE;
BEGIN;
SET LOCAL ROLE regress_brin_folder;
SELECT pipeline.run_hot('brin_m');
RESET ROLE;
SELECT count(*) AS summarizing_locks_held FROM pg_locks
 WHERE pid = pg_backend_pid() AND mode = 'ShareUpdateExclusiveLock';
COMMIT;
SELECT pg_stat_force_next_flush();
SELECT idx_scan > :idx_before AS read_through_index FROM brin_a_part;
SELECT events, total FROM (SELECT sum(events) AS events, sum(total) AS total FROM metrics.brin_m_live) AS x;

-- A fold of many batches searches the BRIN index once, for the span of
-- their ids (PostgreSQL would search it once per batch of a list it is
-- given: 735 batches took 52-58 ms on a 10M-event day), and takes the
-- rows of those batches only.
SET ROLE regress_brin_owner;
SELECT count(*) AS batches, sum(r.accepted) AS accepted
  FROM generate_series(1, 20) AS b,
       pipeline.ingest('brin_a', json_build_object('id', 200000 + b, 'event_time', now() - interval '1 hour',
                                                  'v', 2)::text) AS r;
RESET ROLE;
SELECT pg_stat_force_next_flush();
SELECT idx_scan AS idx_before FROM brin_a_part \gset
SET ROLE regress_brin_folder;
SELECT pipeline.run_hot('brin_m');
RESET ROLE;
SELECT pg_stat_force_next_flush();
SELECT idx_scan - :idx_before AS index_searches FROM brin_a_part;
SELECT events, total FROM (SELECT sum(events) AS events, sum(total) AS total FROM metrics.brin_m_live) AS x;

-- leave the database as it was found (the view first: it names a raw
-- partition, whose name has the day in it)
DROP VIEW brin_a_part;
SET ROLE regress_brin_owner;
SELECT pipeline.drop_metric('brin_m');
SELECT pipeline.drop_source(s) FROM unnest(ARRAY['brin_a', 'brin_b']) AS s;
RESET ROLE;
REVOKE USAGE, CREATE ON SCHEMA pipeline, metrics FROM regress_brin_owner;
DROP ROLE regress_brin_owner, regress_brin_folder;
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
