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
-- 20,000 events an hour ago, in each source: more than one BRIN range
SELECT s, r.received, r.accepted
  FROM unnest(ARRAY['brin_a', 'brin_b']) AS s,
       pipeline.ingest(s, (SELECT string_agg(json_build_object('id', i, 'event_time', now() - interval '1 hour',
                                                               'v', i % 10)::text, E'\n')
                             FROM generate_series(1, 20000) AS i)) AS r;
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

-- leave the database as it was found
SET ROLE regress_brin_owner;
SELECT pipeline.drop_metric('brin_m');
SELECT pipeline.drop_source(s) FROM unnest(ARRAY['brin_a', 'brin_b']) AS s;
RESET ROLE;
REVOKE USAGE, CREATE ON SCHEMA pipeline, metrics FROM regress_brin_owner;
DROP ROLE regress_brin_owner, regress_brin_folder;
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
