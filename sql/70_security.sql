-- Security: what callers control (names, contracts, dimensions, measures,
-- filters, event fields, batch keys) never becomes SQL that runs, and each
-- role is kept to what README's role table gives it.  Every refusal is
-- followed by a look at a canary table, a trap log, a sequence, large
-- objects and a setting that the payloads would have touched.
-- (The hostile search_path and the install script are test/t/050_hostile.pl.)
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SET DateStyle = ISO;
\set VERBOSITY terse

CREATE ROLE regress_sec_owner;
CREATE ROLE regress_sec_other;
CREATE ROLE regress_sec_writer IN ROLE pipeline_writer;
CREATE ROLE regress_sec_reader IN ROLE pipeline_reader;
GRANT USAGE, CREATE ON SCHEMA pipeline, metrics TO regress_sec_owner, regress_sec_other;

-- what the payloads aim at
CREATE SCHEMA regress_sec;
CREATE TABLE regress_sec.canary (x int);
INSERT INTO regress_sec.canary VALUES (42);
CREATE TABLE regress_sec.log (who text, what text);
CREATE SEQUENCE regress_sec.seq;
CREATE FUNCTION regress_sec.trap(what text, result boolean DEFAULT true) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO regress_sec.log VALUES (current_user, what);
    RETURN result;
END $$;
CREATE DOMAIN regress_sec.mytext AS text CHECK (regress_sec.trap('domain check', VALUE IS NULL) OR true);
GRANT USAGE ON SCHEMA regress_sec TO PUBLIC;
GRANT SELECT, INSERT ON regress_sec.log TO PUBLIC;
GRANT SELECT ON regress_sec.canary TO PUBLIC;
GRANT USAGE ON SEQUENCE regress_sec.seq TO PUBLIC;
-- one row: all true when nothing a payload aims at has happened
CREATE FUNCTION regress_sec.untouched(OUT canary boolean, OUT no_trap boolean, OUT seq_unused boolean,
                                      OUT no_large_object boolean, OUT no_setting boolean)
    LANGUAGE plpgsql AS $$
BEGIN
    canary := pg_catalog.to_regclass('regress_sec.canary') IS NOT NULL;
    IF canary THEN
        EXECUTE 'SELECT pg_catalog.count(*) = 1 FROM regress_sec.canary WHERE x = 42' INTO canary;
    END IF;
    no_trap := NOT EXISTS (SELECT FROM regress_sec.log);
    seq_unused := NOT (SELECT is_called FROM regress_sec.seq);
    no_large_object := NOT EXISTS (SELECT FROM pg_catalog.pg_largeobject_metadata);
    no_setting := pg_catalog.current_setting('regress_sec.pwned', true) IS NULL
                  OR pg_catalog.current_setting('regress_sec.pwned', true) = '';
END $$;
-- runs one statement, returns its SQLSTATE and message (ok when it worked);
-- non-ASCII characters are shown as <U+XXXX>
CREATE FUNCTION regress_sec.attempt(sql text) RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    msg text;
    out text := '';
    c text;
BEGIN
    BEGIN
        EXECUTE sql;
        msg := 'ok';
    EXCEPTION WHEN OTHERS THEN
        msg := SQLSTATE || ': ' || SQLERRM;
    END;
    FOREACH c IN ARRAY regexp_split_to_array(msg, '') LOOP
        out := out || CASE WHEN ascii(c) BETWEEN 32 AND 126 THEN c
                           ELSE '<U+' || upper(to_hex(ascii(c))) || '>' END;
    END LOOP;
    RETURN out;
END $$;
SELECT * FROM regress_sec.untouched();

-- a source owned by regress_sec_owner, with a column whose name is itself a payload
SET SESSION AUTHORIZATION regress_sec_owner;
SELECT pipeline.create_source('orders',
    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
      platform text, amount numeric(12,2),
      "w""); DROP TABLE regress_sec.canary; --" integer$$,
    event_id => 'order_id', allowed_lateness => '1 hour', freeze_after => '2 hours');
RESET SESSION AUTHORIZATION;
SELECT attname FROM pg_attribute WHERE attrelid = 'pipeline.orders_load'::regclass AND attnum > 0 ORDER BY attnum;

-- ============================================================
-- 1. names, contracts and key columns: refused, nothing runs
-- ============================================================
SET SESSION AUTHORIZATION regress_sec_owner;
SELECT s.ascii_name, regress_sec.attempt(pg_catalog.format(
         'SELECT pipeline.create_source(%L, %L)', n, 'event_id int NOT NULL, event_time timestamptz NOT NULL')) AS create_source
  FROM (VALUES
    ('x"; DROP TABLE regress_sec.canary; --'),
    ('x''; DROP TABLE regress_sec.canary; --'),
    ('x; SELECT regress_sec.trap(''name'')'),
    ('x/*'),
    ('x--'),
    ('Orders'),
    (E'\u043Erders'),               -- Cyrillic o
    (E'orders\u200B'),              -- zero-width space
    (E'\uFF4Frders'),               -- fullwidth o
    (E'orders\n'),
    ('orders '),
    ('1orders'),
    ('pipeline.orders'),
    (repeat('a', 41)),
    (''),
    (NULL)) AS p(n),
  LATERAL (SELECT regexp_replace(coalesce(n, 'NULL'), '[^ -~]', '?', 'g') AS ascii_name) AS s;
SELECT regress_sec.attempt(pg_catalog.format('SELECT pipeline.create_source(%L, %L)', 'src2', c)) AS contract
  FROM (VALUES
    ('event_id int, event_time timestamptz); DROP TABLE regress_sec.canary; --'),
    ('event_id int, event_time timestamptz; DROP TABLE regress_sec.canary'),
    ('event_id int, event_time timestamptz, x int DEFAULT (SELECT count(*) FROM pg_authid)'),
    ('event_id int, event_time timestamptz, x int REFERENCES regress_sec.canary (x)'),
    ('event_id int, event_time timestamptz, LIKE regress_sec.canary'),
    ('event_id int, event_time timestamptz) INHERITS (regress_sec.canary'),
    ('event_id int, event_time timestamptz, _pl_batch bigint'),
    ('event_id int, event_time timestamptz, x int GENERATED ALWAYS AS (regress_sec.trap(''g'')::int) STORED')) AS p(c);
SELECT regress_sec.attempt(pg_catalog.format(
         'SELECT pipeline.create_source(%L, %L, event_id => %L, event_time => %L, day_timezone => %L)',
         'src3', 'event_id int NOT NULL, event_time timestamptz NOT NULL', i, t, z)) AS key_columns
  FROM (VALUES
    ('event_id"; DROP TABLE regress_sec.canary; --', 'event_time', 'UTC'),
    ('event_id', 'event_time) ; DROP TABLE regress_sec.canary; --', 'UTC'),
    ('event_id', 'event_time', 'UTC''; DROP TABLE regress_sec.canary; --'),
    ('event_id', 'event_time', 'UTC$$; DROP TABLE regress_sec.canary; $$')) AS p(i, t, z);
RESET SESSION AUTHORIZATION;
SELECT count(*) AS sources FROM pipeline.sources;
SELECT count(*) AS stray_tables FROM pg_class
 WHERE relnamespace = 'pipeline'::regnamespace AND relname ~ '^(x|src2|src3)';
SELECT * FROM regress_sec.untouched();

-- ============================================================
-- 2. event fields, batch keys and loaded values are data, never SQL
-- ============================================================
SET SESSION AUTHORIZATION regress_sec_writer;
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders', (
  SELECT jsonb_agg(jsonb_build_object(
           'order_id', i,
           'event_time', timestamptz '2026-03-01 10:00:00+00' + (i % 10) * interval '1 minute',
           'user_id', 'u' || (i % 7),
           'platform', (ARRAY['web', 'ios', 'x''); DROP TABLE regress_sec.canary; --'])[1 + i % 3],
           'amount', i,
           'w"); DROP TABLE regress_sec.canary; --', i % 2,
           'extra''); SELECT regress_sec.trap(''field''); --', 1))
    FROM generate_series(1, 30) AS i),
  batch_key => $k$'); SELECT regress_sec.trap('batch key'); --$k$);
SELECT received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  E'{"order_id": 31, "event_time": "2026-03-01T11:00:00Z", "user_id": "$$; SELECT regress_sec.trap(''ndjson''); $$", "platform": "web", "amount": 1}\n'
  '{"order_id": "32); SELECT regress_sec.trap(''id''); --", "event_time": "2026-03-01T11:00:00Z", "user_id": "x"}\n'
  '{"order_id": 33, "event_time": "now(); SELECT regress_sec.trap(''time'')", "user_id": "x"}');
SET pipeline.batch_key = $k$'); DROP TABLE regress_sec.canary; --$k$;
COPY pipeline.orders_load (order_id, event_time, user_id, platform, amount) FROM STDIN (FORMAT csv);
40,2026-03-01T12:00:00Z,"'); DROP TABLE regress_sec.canary; --",web,2
41,2026-03-01T12:00:00Z,u1,"web'; SELECT regress_sec.trap('copy'); --",3
42,2026-03-01T12:00:00Z,u1,web,"1); SELECT regress_sec.trap('copy amount'); --"
\.
RESET pipeline.batch_key;
RESET SESSION AUTHORIZATION;
SELECT batch_key, received, accepted, rejected FROM pipeline.batches ORDER BY batch_id;
SELECT field, events FROM pipeline.contract_drift ORDER BY field;
SELECT payload, error, field FROM pipeline.dead_letters ORDER BY id;
SELECT order_id, user_id, platform FROM pipeline.orders_raw WHERE order_id IN (31, 40, 41) ORDER BY 1;
SELECT * FROM regress_sec.untouched();

-- ============================================================
-- 3. dimensions, measures and filters: refused, nothing runs
-- ============================================================
SET SESSION AUTHORIZATION regress_sec_owner;
SET statement_timeout = '5s';   -- a pg_sleep that ran would show up as a timeout, not a refusal
SELECT regress_sec.attempt(pg_catalog.format(
         'SELECT pipeline.create_metric(%L, %L, dimensions => %L)', 'm', 'orders', d)) AS dimensions
  FROM (VALUES
    ('{"platform\") ; DROP TABLE regress_sec.canary; --"}'),
    ('{"platform, (SELECT regress_sec.trap(''dim''))"}'),
    ('{"w\"); DROP TABLE regress_sec.canary; --"}'),
    ('{platform,platform}'),
    ('{PLATFORM}'),
    ('{_pl_batch}'),
    ('{tableoid}'),
    ('{ctid}'),
    ('{NULL}')) AS p(d);
SELECT regress_sec.attempt(pg_catalog.format(
         'SELECT pipeline.create_metric(%L, %L, measures => %L)', 'm', 'orders', m)) AS measures
  FROM (VALUES
    ('count(*) AS n FROM pg_authid --'),
    ('count(*) AS n; DROP TABLE regress_sec.canary'),
    ('count(*) AS n /*'),
    ('count(*) AS "n""; DROP TABLE regress_sec.canary; --"'),
    ('count(*) AS "N"'),
    ('count(*) AS n, count(*) AS n'),
    ('count(*)'),
    ('count((SELECT rolpassword FROM pg_authid LIMIT 1)) AS n'),
    ('count(*) AS n, (SELECT regress_sec.trap(''target'')) AS t'),
    ('sum(amount) FILTER (WHERE regress_sec.trap(''filter'')) AS n'),
    ('count(*) OVER () AS n'),
    ('string_agg(platform, '','') AS n'),
    ('pg_catalog.sum(amount) AS n'),
    ('regress_sec.trap(''agg'') AS n'),
    ('sum(regress_sec.trap(''arg'')::int) AS n'),
    ('sum(pg_read_file(''/etc/passwd'')::numeric) AS n'),
    ('max(nextval(''regress_sec.seq'')) AS n'),
    ('sum(txid_current()) AS n'),
    ('max(lo_import(''/etc/passwd'')) AS n'),
    ('max(set_config(''regress_sec.pwned'', ''yes'', false)) AS n'),
    ('max(pg_sleep(10)::text) AS n'),
    ('count(dblink(''dbname=postgres'', ''SELECT 1'')) AS n'),
    ('count(DISTINCT tableoid) AS n'),
    ('sum(_pl_batch) AS n'),
    ('count(r.amount) AS n'),
    ('count(orders_raw.amount) AS n'),
    ('min(platform COLLATE "C") AS n'),
    ('count(ARRAY[amount]) AS n'),
    ('count(ROW(amount)) AS n'),
    ('sum(amount ORDER BY amount) AS n'),
    ('sum(DISTINCT amount) AS n'),
    ('count(platform::regclass) AS n'),
    ('count(platform::regress_sec.mytext) AS n'),
    ('count(lower(platform) OPERATOR(pg_catalog.=) ''web'') AS n'),
    ('count(date_part(''dow'', event_time)) AS n'),
    ('count(concat(platform, amount)) AS n'),
    ('count($1) AS n'),
    ('count(current_user) AS n')) AS p(m);
SELECT regress_sec.attempt(pg_catalog.format(
         'SELECT pipeline.create_metric(%L, %L, filter => %L)', 'm', 'orders', f)) AS filters
  FROM (VALUES
    ('true; DROP TABLE regress_sec.canary'),
    ('true) OR (regress_sec.trap(''paren'')'),
    ('platform = ''web'' OR EXISTS (SELECT FROM regress_sec.canary)'),
    ('platform = ''web'' /* */ OR regress_sec.trap(''comment'')'),
    ($f$$$web$$ = platform OR pg_catalog.pg_sleep(10) IS NULL$f$),
    ($f$E'\'' = platform OR pg_sleep(10) IS NULL$f$),
    ('set_config(''regress_sec.pwned'', ''yes'', false) = ''yes'''),
    ('txid_current() > 0'),
    ('nextval(''regress_sec.seq'') > 0'),
    ('lo_import(''/etc/passwd'') > 0'),
    ('pg_read_file(''/etc/passwd'') <> '''''),
    ('dblink_exec(''dbname=postgres'', ''DROP TABLE regress_sec.canary'') <> '''''),
    ('platform::regclass IS NOT NULL'),
    ('length(platform::pg_catalog.regproc::text) > 0'),
    ('platform::regress_sec.mytext IS NOT NULL'),
    ('lower(platform) OPERATOR(pg_catalog.=) ''web'''),
    ('lower(platform) = ANY (ARRAY[''web''])'),
    ('platform = current_user'),
    ('platform = $1'),
    ('date_part(''dow'', event_time) = 1'),
    ('regress_sec.trap(''qualified'')'),
    ('amount'),
    ('true, false'),
    ('true AS t')) AS p(f);
RESET statement_timeout;
RESET SESSION AUTHORIZATION;
SELECT count(*) AS metrics FROM pipeline.metrics;
SELECT * FROM regress_sec.untouched();

-- payload-shaped constants and column names are data: accepted, deparsed,
-- folded and closed without running anything
SET SESSION AUTHORIZATION regress_sec_owner;
SELECT pipeline.create_metric('sales', 'orders', '{platform}',
    $$count(*) AS n, sum(amount) AS revenue, count(DISTINCT user_id) AS buyers,
      sum("w""); DROP TABLE regress_sec.canary; --") AS w,
      count(CASE WHEN platform = 'x''); DROP TABLE regress_sec.canary; --' THEN 1 END) AS odd$$,
    filter => $f$platform <> $q$'); SELECT regress_sec.trap('dollar'); --$q$
                 AND user_id <> E'\'; SELECT regress_sec.trap(\'escape\'); --' -- ' OR regress_sec.trap('comment')
              $f$,
    hot_retention => '100 years');
RESET SESSION AUTHORIZATION;
SELECT filter IS NOT NULL AS has_filter FROM pipeline.metrics WHERE metric = 'sales';
SELECT definition->>'filter' AS stored_filter FROM pipeline.metric_catalog WHERE metric = 'sales';
SELECT pipeline.run_hot('sales') AS folded;
SELECT * FROM pipeline.close_days('2026-03-02 03:00:00+00');
-- the same numbers as a hand-written GROUP BY
SELECT platform, sum(n) AS n, sum(revenue) AS revenue, sum(w) AS w, sum(odd) AS odd
  FROM metrics.sales_live GROUP BY platform ORDER BY platform;
SELECT platform, n, revenue, buyers, w, odd, status FROM metrics.sales_daily ORDER BY platform;
SELECT platform, count(*) AS n, sum(amount) AS revenue, count(DISTINCT user_id) AS buyers,
       sum("w""); DROP TABLE regress_sec.canary; --") AS w
  FROM pipeline.orders_raw
 WHERE platform <> $q$'); SELECT regress_sec.trap('dollar'); --$q$
   AND user_id <> E'\'; SELECT regress_sec.trap(\'escape\'); --'
 GROUP BY platform ORDER BY platform;
SELECT * FROM regress_sec.untouched();

-- ============================================================
-- 4. roles
-- ============================================================
-- another owner's source and metric, to aim at
SET SESSION AUTHORIZATION regress_sec_other;
SELECT pipeline.create_source('theirs', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL, v int',
    allowed_lateness => '1 hour', freeze_after => '2 hours');
SELECT pipeline.create_metric('their_m', 'theirs', measures => 'count(*) AS n, sum(v) AS total',
    hot_retention => '100 years');
-- tables it made by hand, never registered as a source
CREATE TABLE pipeline.orphan_raw (event_id bigint, event_time timestamptz);
CREATE TABLE pipeline.orphan_ids (event_id bigint PRIMARY KEY);
RESET SESSION AUTHORIZATION;
SELECT accepted FROM pipeline.ingest('theirs',
  '[{"event_id": 1, "event_time": "2026-03-01T10:00:00Z", "v": 5}]'::jsonb);
SELECT pipeline.run_hot() AS folded;
SELECT * FROM pipeline.close_days('2026-03-02 03:00:00+00') WHERE metric = 'their_m';

-- the reader: serving views yes; raw, ids, load, hot, daily, corrections,
-- dead letters, ingest, COPY, a future clock, restatements no
SET SESSION AUTHORIZATION regress_sec_reader;
SELECT count(*) > 0 AS reads_live FROM metrics.sales_live;
SELECT count(*) > 0 AS reads_daily FROM metrics.sales_daily;
SELECT count(*) FROM pipeline.orders_raw;
SELECT count(*) FROM pipeline.orders_raw_20260301;
SELECT count(*) FROM pipeline.orders_ids;
SELECT count(*) FROM pipeline.orders_load;
SELECT count(*) FROM pipeline.sales_hot;
SELECT count(*) FROM pipeline.sales_daily;
SELECT count(*) FROM pipeline.sales_corrections;
SELECT count(*) FROM pipeline.dead_letters;
SELECT * FROM pipeline.ingest('orders', '[{"order_id": 100, "event_time": "2026-03-01T10:00:00Z", "user_id": "r"}]'::jsonb);
SELECT * FROM pipeline.ingest('orders', '{"order_id": 100, "event_time": "2026-03-01T10:00:00Z", "user_id": "r"}'::text);
COPY pipeline.orders_load (order_id, event_time, user_id) FROM STDIN (FORMAT csv);
101,2026-03-01T10:00:00Z,r
\.
INSERT INTO pipeline.orders_load (order_id, event_time, user_id) VALUES ('102', '2026-03-01T10:00:00Z', 'r');
SELECT * FROM pipeline.close_days(now() + interval '1 day');
SELECT * FROM pipeline.close_days('infinity');
SELECT pipeline.restate_day('sales', '2026-03-01', 'reader');
SELECT pipeline.restate_day('their_m', '2026-03-01', 'reader');
SELECT pipeline._restate_day('sales', '2026-03-01', 'reader', 'someone else');
SELECT * FROM pipeline._close_days('infinity');
RESET SESSION AUTHORIZATION;

-- the writer: ingests, but cannot change frozen days or what others own,
-- nor reach the extension owner's internals (each role here is the session
-- user, as after logging in: _register_source checks session_user)
SET SESSION AUTHORIZATION regress_sec_writer;
UPDATE pipeline.sales_daily SET n = 0;
DELETE FROM pipeline.sales_daily;
TRUNCATE pipeline.sales_daily;
INSERT INTO pipeline.sales_corrections (day, platform, late_events, batch_ids) VALUES ('2026-03-01', 'web', 1, '{}');
UPDATE pipeline.sales_corrections SET n = 0;
DELETE FROM pipeline.sales_corrections;
DELETE FROM pipeline.day_closures;
UPDATE pipeline.day_closures SET status = 'provisional';
INSERT INTO pipeline.restatements (metric, day, version, restated_by, reason, old_rows, absorbed_corrections)
  VALUES ('sales', '2026-03-01', 9, 'x', 'x', '[]', '[]');
SET pipeline.restating = on;
UPDATE pipeline.sales_daily SET n = 0;
DELETE FROM pipeline.sales_corrections;
SELECT pg_catalog.set_config('pipeline.restating', 'on', false);
DELETE FROM pipeline.sales_daily;
RESET pipeline.restating;
SELECT pipeline.drop_source('theirs');
SELECT pipeline.drop_source('theirs', cascade => true);
SELECT pipeline.drop_metric('their_m');
SELECT pipeline.restate_day('their_m', '2026-03-01', 'writer');
SELECT pipeline._register_source('orphan', 'event_id bigint, event_time timestamptz', 'event_id', 'event_time',
                                 '1 hour', '2 hours', 'UTC');
SELECT pipeline._register_source('theirs', 'event_id bigint, event_time timestamptz', 'event_id', 'event_time',
                                 '1 hour', '2 hours', 'UTC');
SELECT pipeline._unregister_source('theirs');
SELECT pipeline._unregister_source('orders');
SELECT pipeline._drop_daily('their_m');
SELECT pipeline._drop_daily('sales');
SELECT pipeline._create_daily('their_m');
SELECT pipeline._create_daily('sales');
SELECT pipeline._create_reconcile_view('their_m');
SELECT * FROM pipeline._close_days('infinity');
SELECT pipeline._restate_day('their_m', '2026-03-01', 'writer', 'someone else');
SELECT pipeline._fold('their_m') AS folded_for_someone_else;
SELECT pipeline._compute_day(m, '2026-03-01', 'frozen', now()) FROM pipeline.metric_catalog AS m WHERE metric = 'their_m';
SELECT pipeline._correct_day(m, c) FROM pipeline.metric_catalog AS m
  JOIN pipeline.day_closures AS c USING (metric) WHERE metric = 'their_m';
SELECT pipeline._ensure_partitions('theirs', ARRAY[timestamptz '2026-05-01 00:00+00']);
SELECT pipeline._depend_on_extension('pipeline.theirs_raw');
SELECT pipeline._create_load_table('theirs');
DELETE FROM pipeline.metric_catalog WHERE metric = 'their_m';
UPDATE pipeline.metric_catalog SET fold_snapshot = '1:1:', events_folded = 0 WHERE metric = 'their_m';
SELECT * FROM pipeline.close_days(now() + interval '1 day');
RESET SESSION AUTHORIZATION;
-- the owner of a metric reads its daily table, but cannot write it either
SET SESSION AUTHORIZATION regress_sec_owner;
SELECT count(*) > 0 AS owner_reads_daily FROM pipeline.sales_daily;
UPDATE pipeline.sales_daily SET n = 0;
SET pipeline.restating = on;
DELETE FROM pipeline.sales_daily;
RESET pipeline.restating;
RESET SESSION AUTHORIZATION;
-- nothing moved
SELECT source, owner FROM pipeline.sources ORDER BY 1;
SELECT metric, owner FROM pipeline.metrics ORDER BY 1;
SELECT metric, day, status, version FROM pipeline.day_closures ORDER BY 1, 2;
SELECT pipeline.verify_day('sales', '2026-03-01') AS sales_digest, pipeline.verify_day('their_m', '2026-03-01') AS their_digest;
SELECT count(*) AS restatements FROM pipeline.restatements;
SELECT n, total, status FROM metrics.their_m_daily;
-- a source creator cannot register another role's tables either
SET SESSION AUTHORIZATION regress_sec_owner;
SELECT pipeline._register_source('orphan', 'event_id bigint, event_time timestamptz', 'event_id', 'event_time',
                                 '1 hour', '2 hours', 'UTC');
RESET SESSION AUTHORIZATION;
SELECT to_regclass('pipeline.theirs_raw_20260501') AS no_partition_made;
SELECT * FROM regress_sec.untouched();

-- the owner may restate its own metric, and it is recorded under its name
SET SESSION AUTHORIZATION regress_sec_owner;
SELECT pipeline.restate_day('sales', '2026-03-01', 'owner restates') AS version;
RESET SESSION AUTHORIZATION;
SELECT metric, version, restated_by, reason FROM pipeline.restatements;

-- a function or operator that reached schema pipeline past the event
-- trigger (a superuser disabled it) stops every layer that runs generated
-- SQL, naming it, until it is gone: a fold, a close
ALTER EVENT TRIGGER pipeline_refuse_strangers DISABLE;
CREATE FUNCTION pipeline.distinct_sketch(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1';
ALTER FUNCTION pipeline.distinct_sketch(integer) OWNER TO regress_sec_other;
SELECT accepted FROM pipeline.ingest('orders',
    '[{"order_id": 9001, "event_time": "2026-03-01T11:00:00Z", "user_id": "late", "platform": "web", "amount": 1}]'::jsonb);
SELECT pipeline.run_hot('sales');
SELECT * FROM pipeline.close_days('2026-03-02 03:00:00+00') WHERE metric = 'sales';
DROP FUNCTION pipeline.distinct_sketch(integer);
CREATE OPERATOR pipeline.=== (FUNCTION = pg_catalog.int4eq, LEFTARG = integer, RIGHTARG = integer);
ALTER OPERATOR pipeline.=== (integer, integer) OWNER TO regress_sec_other;
SELECT pipeline.run_hot('sales');
DROP OPERATOR pipeline.=== (integer, integer);
ALTER EVENT TRIGGER pipeline_refuse_strangers ENABLE;
SELECT pipeline.run_hot('sales') AS folded;
SELECT * FROM pipeline.close_days('2026-03-02 03:00:00+00') WHERE metric = 'sales';

-- leave the database as it was found.  The correction above queued a
-- value index and started the index builder at its commit; dropping the
-- extension holds the builder's lock (advisory, field 4 0x5049) to its end
-- even when no builder holds it yet, so that a builder still starting exits
-- instead of indexing a partition the drop is about to lock.
SET client_min_messages = warning;
BEGIN;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS builder_lock_held FROM pg_locks
 WHERE locktype = 'advisory' AND objsubid = 20553 AND pid = pg_backend_pid() AND granted;
COMMIT;
DROP SCHEMA regress_sec CASCADE;
DROP OWNED BY regress_sec_owner, regress_sec_other, regress_sec_writer, regress_sec_reader;
DROP ROLE regress_sec_owner, regress_sec_other, regress_sec_writer, regress_sec_reader;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
