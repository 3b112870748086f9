-- The bulk path: COPY into pipeline.<source>_load, the same checks and
-- receipts as ingest(), nothing stored in the load table itself.
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      amount numeric(12,2) CHECK (amount >= 0), currency text NOT NULL DEFAULT 'EUR'$$,
    event_id => 'order_id');
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'pipeline.orders_load'::regclass AND attnum > 0 ORDER BY attnum;

-- CSV with a header: good rows, a CHECK violation, a bad time, a duplicate,
-- a missing required field; an empty field is missing, so DEFAULT applies
COPY pipeline.orders_load FROM STDIN (FORMAT csv, HEADER);
order_id,event_time,user_id,amount,currency
1,2026-03-01T10:00:00Z,u1,10.5,USD
2,2026-03-01T11:00:00Z,u2,-1,
3,not a time,u3,1,
1,2026-03-01T10:00:00Z,u1,10.5,USD
4,2026-03-02T10:00:00Z,,5,
5,2026-03-02T10:00:00Z,u5,5,
\.
SELECT order_id, event_time, user_id, amount, currency FROM pipeline.orders_raw ORDER BY 1;
SELECT count(*) AS stored_in_load_table FROM pipeline.orders_load;
SELECT payload, error, field FROM pipeline.dead_letters ORDER BY id;

-- batch_key: a retried load applies nothing and reports the original receipt
SET pipeline.batch_key = 'history-march';
COPY pipeline.orders_load (order_id, event_time, user_id) FROM STDIN (FORMAT csv);
10,2026-03-03T10:00:00Z,u10
\.
COPY pipeline.orders_load (order_id, event_time, user_id) FROM STDIN (FORMAT csv);
11,2026-03-03T10:00:00Z,u11
\.
RESET pipeline.batch_key;
SELECT count(*) AS order_11_applied FROM pipeline.orders_raw WHERE order_id = 11;

-- a load larger than a chunk is one batch with one receipt: by INSERT (its
-- rows reach the access method one at a time) and by COPY (a thousand at a
-- time; a file in the data directory), with a duplicate and a bad row in
-- the second chunk
INSERT INTO pipeline.orders_load (order_id, event_time, user_id, amount)
SELECT i, '2026-03-04T10:00:00Z', 'u' || i, i % 50 FROM generate_series(100, 25099) AS i;
DO $$
DECLARE
    file text := pg_catalog.current_setting('data_directory') || '/pipeline_25_bulk_load.csv';
BEGIN
    EXECUTE format($q$COPY (SELECT CASE WHEN i = 30000 THEN 150 ELSE i END, '2026-03-05T10:00:00Z', 'c' || i,
                                     CASE WHEN i = 30001 THEN '-5' ELSE (i %% 7)::text END
                                FROM generate_series(26000, 49999) AS i) TO %L (FORMAT csv)$q$, file);
    EXECUTE format('COPY pipeline.orders_load (order_id, event_time, user_id, amount) FROM %L (FORMAT csv)', file);
    EXECUTE format('COPY (SELECT WHERE false) TO %L', file);
END
$$;
SELECT count(*) AS copied,
       sum(amount) = (SELECT sum(i % 7) FROM generate_series(26000, 49999) AS i WHERE i NOT IN (30000, 30001))
           AS amounts_match
  FROM pipeline.orders_raw WHERE order_id BETWEEN 26000 AND 49999;

-- a load rolled back with its savepoint leaves nothing behind
BEGIN;
SAVEPOINT before_load;
COPY pipeline.orders_load (order_id, event_time, user_id) FROM STDIN (FORMAT csv);
50000,2026-03-03T10:00:00Z,gone
\.
ROLLBACK TO before_load;
INSERT INTO pipeline.orders_load (order_id, event_time, user_id) VALUES (50001, '2026-03-03T10:00:00Z', 'kept');
COMMIT;
SELECT order_id, user_id FROM pipeline.orders_raw WHERE order_id >= 50000 ORDER BY 1;

SELECT batch_key, received, accepted, duplicates, rejected FROM pipeline.batches ORDER BY batch_id;
SELECT bool_and(received = accepted + duplicates + rejected) AS every_receipt_balances,
       sum(accepted) = (SELECT count(*) FROM pipeline.orders_raw) AS accepted_equals_raw,
       sum(rejected) = (SELECT count(*) FROM pipeline.dead_letters) AS rejected_equals_dead_letters
  FROM pipeline.batches;

-- the load table takes its rows in its access method, which stores none:
-- no row trigger, no TOAST table
SELECT a.amname, c.reltoastrelid = 0 AS no_toast,
       (SELECT array_agg(t.tgname ORDER BY t.tgname) FROM pg_trigger AS t WHERE t.tgrelid = c.oid) AS triggers
  FROM pg_class AS c JOIN pg_am AS a ON a.oid = c.relam
 WHERE c.oid = 'pipeline.orders_load'::regclass;
SELECT pg_relation_size('pipeline.orders_load') AS load_table_bytes;
-- maintenance sees an empty table; an index has nothing to hold
VACUUM FULL pipeline.orders_load;
ANALYZE pipeline.orders_load;
CREATE INDEX ON pipeline.orders_load (order_id);

-- the access method takes rows only for the load tables create_source
-- makes: not for a table of its name elsewhere, nor one without its trigger
CREATE TABLE public.orders_load (order_id text, event_time text, user_id text) USING pipeline_load;
INSERT INTO public.orders_load VALUES ('70000', '2026-03-03T10:00:00Z', 'fake');
COPY public.orders_load FROM STDIN (FORMAT csv);
70001,2026-03-03T10:00:00Z,fake
\.
CREATE FUNCTION public.fake_finish() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
CREATE TRIGGER load_finish AFTER INSERT ON public.orders_load
    FOR EACH STATEMENT EXECUTE FUNCTION public.fake_finish('orders');
INSERT INTO public.orders_load VALUES ('70002', '2026-03-03T10:00:00Z', 'fake');
DROP TABLE public.orders_load;
DROP FUNCTION public.fake_finish();
-- nor while its trigger would not fire (the load would never finish)
SET session_replication_role = replica;
INSERT INTO pipeline.orders_load (order_id, event_time, user_id) VALUES (70003, '2026-03-03T10:00:00Z', 'r');
RESET session_replication_role;
-- ON CONFLICT has no index to use: the rows are loaded as any others
INSERT INTO pipeline.orders_load (order_id, event_time, user_id) VALUES (70004, '2026-03-03T10:00:00Z', 'oc')
    ON CONFLICT DO NOTHING;
SELECT order_id, user_id FROM pipeline.orders_raw WHERE order_id >= 70000 ORDER BY 1;

-- the load table is for writers; readers cannot load
CREATE ROLE regress_loader IN ROLE pipeline_writer;
CREATE ROLE regress_looker IN ROLE pipeline_reader;
SET ROLE regress_loader;
INSERT INTO pipeline.orders_load (order_id, event_time, user_id) VALUES (60000, '2026-03-03T10:00:00Z', 'w');
SET ROLE regress_looker;
INSERT INTO pipeline.orders_load (order_id, event_time, user_id) VALUES (60001, '2026-03-03T10:00:00Z', 'r');
RESET ROLE;
SELECT order_id FROM pipeline.orders_raw WHERE order_id BETWEEN 60000 AND 69999;
DROP ROLE regress_loader, regress_looker;

-- rows a load adds to a range of a raw partition's BRIN index that has a
-- summary are found through it: each heap page's first row of a chunk
-- enters the index for all of them, as they share the batch.  (A new
-- partition's first range has a summary from the start: nothing is left
-- to summarize after one row.)
INSERT INTO pipeline.orders_load (order_id, event_time, user_id) VALUES (-1, '2026-03-06T10:00:00Z', 'first');
SELECT brin_summarize_range(i.indexrelid, 0) AS ranges_summarized
  FROM pg_index AS i
 WHERE i.indrelid = (SELECT tableoid FROM pipeline.orders_raw WHERE order_id = -1);
DO $$
DECLARE
    file text := pg_catalog.current_setting('data_directory') || '/pipeline_25_bulk_load.csv';
BEGIN
    EXECUTE format($q$COPY (SELECT -i, '2026-03-06T11:00:00Z', 'b' || i FROM generate_series(2, 30001) AS i)
                        TO %L (FORMAT csv)$q$, file);
    EXECUTE format('COPY pipeline.orders_load (order_id, event_time, user_id) FROM %L (FORMAT csv)', file);
    EXECUTE format('COPY (SELECT WHERE false) TO %L', file);
END
$$;
SELECT pg_relation_size(tableoid) / current_setting('block_size')::int > 128 AS past_the_first_range
  FROM pipeline.orders_raw WHERE order_id = -1;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM pipeline.orders_raw_20260306 WHERE _pl_batch = 1;
SELECT count(*) AS found_through_brin FROM pipeline.orders_raw_20260306
 WHERE _pl_batch = (SELECT max(batch_id) FROM pipeline.batches);
RESET enable_seqscan;

-- dropping the source drops its load table
SELECT pipeline.drop_source('orders');
SELECT to_regclass('pipeline.orders_load') AS load_table;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
