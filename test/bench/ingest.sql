-- test/bench/ingest.sql: the objects of the ingest benchmark (schema bench),
-- loaded by test/bench/ingest.sh with psql -v n=<events per measurement>.
--
-- Everything a measurement needs is built server-side beforehand, so that
-- the timed part is the server doing the load and nothing else: the client
-- sends one CALL per measurement.

CREATE SCHEMA bench;

-- The events, generated once: `orders`-like, spread over the 3 days before
-- now, users skewed (log-uniform ids: a few users place most orders),
-- amounts log-distributed, currency absent from 10% of the events (the
-- contract's DEFAULT 'EUR' applies), platform absent from 5%.  Each
-- measurement adds its own offset to order_id, so ids never repeat.
CREATE TABLE bench.orders_gen (
    i          integer PRIMARY KEY,
    order_id   bigint NOT NULL,
    event_time timestamptz NOT NULL,
    user_id    text NOT NULL,
    amount     numeric(12,2) NOT NULL,
    currency   text,                 -- NULL: absent from the event
    platform   text                  -- NULL: absent from the event
);
INSERT INTO bench.orders_gen
SELECT g, g,
       now() - random() * interval '3 days',
       'user_' || floor(exp(random() * ln(200000)))::int,
       round((exp(random() * 6) + random())::numeric, 2),
       CASE WHEN c < 0.10 THEN NULL WHEN c < 0.70 THEN 'EUR' WHEN c < 0.90 THEN 'USD' ELSE 'GBP' END,
       CASE WHEN p < 0.45 THEN 'ios' WHEN p < 0.80 THEN 'android' WHEN p < 0.95 THEN 'web' END
  FROM generate_series(1, :n) AS g, LATERAL (SELECT random() + 0 * g AS c, random() + 0 * g AS p) AS r;

-- One measurement's payloads, one row per ingest call.  EXTERNAL: stored
-- uncompressed, so reading a payload back costs what receiving it would.
CREATE TABLE bench.batches (batch_no integer PRIMARY KEY, payload text NOT NULL);
ALTER TABLE bench.batches ALTER payload SET STORAGE EXTERNAL;

-- bench.prepare: payloads for the next measurement (a JSON array or an
-- NDJSON document of batch_size events per row) and the same rows as CSV
-- for COPY, in copy_file.  As a producer would send them: JSON text with
-- keys in contract order, times in ISO 8601.
CREATE FUNCTION bench.prepare(form text, batch_size integer, id_offset bigint, copy_file text)
    RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    nbatches bigint;
BEGIN
    TRUNCATE bench.batches;
    INSERT INTO bench.batches
    SELECT (e.i - 1) / batch_size,
           CASE form
               WHEN 'jsonb' THEN '[' || string_agg(e.j, ',' ORDER BY e.i) || ']'
               WHEN 'ndjson' THEN string_agg(e.j, E'\n' ORDER BY e.i) || E'\n'
           END
      FROM (SELECT o.i,
                   json_strip_nulls(json_build_object(
                       'order_id', o.order_id + id_offset, 'event_time', o.event_time,
                       'user_id', o.user_id, 'amount', o.amount,
                       'currency', o.currency, 'platform', o.platform))::text AS j
              FROM bench.orders_gen AS o) AS e
     GROUP BY (e.i - 1) / batch_size;
    GET DIAGNOSTICS nbatches = ROW_COUNT;
    EXECUTE format($$COPY (SELECT o.order_id + %s, o.event_time, o.user_id, o.amount,
                                  coalesce(o.currency, 'EUR'), o.platform
                             FROM bench.orders_gen AS o ORDER BY o.i)
                     TO %L (FORMAT csv)$$, id_offset, copy_file);
    RETURN nbatches;
END
$fn$;

-- The baseline's table: the same columns as the contract, PRIMARY KEY on
-- the event id (the uniqueness the pipeline guarantees).
CREATE FUNCTION bench.create_copy_table(name text) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format($$CREATE TABLE bench.%I (
        order_id   bigint NOT NULL,
        event_time timestamptz NOT NULL,
        user_id    text NOT NULL,
        amount     numeric(12,2) CHECK (amount >= 0),
        currency   text NOT NULL DEFAULT 'EUR',
        platform   text,
        PRIMARY KEY (order_id))$$, name);
END
$fn$;

-- Private memory high-water mark of this backend, in kB: VmHWM (peak
-- resident size) minus the shared memory (shared buffers it touched) and
-- file pages resident now.  Touched shared pages stay resident, so this is
-- a slight underestimate when the peak came before the last shared pages
-- were touched; good to a few MB here, where every batch peaks alike.
CREATE FUNCTION bench.private_peak_kb() RETURNS bigint LANGUAGE sql AS $fn$
    SELECT max(v) FILTER (WHERE k = 'VmHWM')
         - coalesce(max(v) FILTER (WHERE k = 'RssShmem'), 0)
         - coalesce(max(v) FILTER (WHERE k = 'RssFile'), 0)
      FROM (SELECT m[1] AS k, m[2]::bigint AS v
              FROM regexp_matches(pg_read_file('/proc/self/status'), '(\w+):\s+(\d+) kB', 'g') AS m) AS s
$fn$;

-- One measurement of the pipeline: every row of bench.batches, one
-- pipeline.ingest() call per batch, a COMMIT after each.
--
-- Why a procedure with COMMIT per batch (and not one DO block, nor psql
-- with one statement per batch via \gexec): each producer request is its
-- own transaction in production, so a commit (and its WAL flush, fsync on)
-- per batch is part of the real cost; one big transaction would hide it.
-- \gexec would add psql round trips and the client's handling of megabytes
-- of payload to the figure, and on 2 cores psql competes with the backend.
-- The payload is read from bench.batches and passed as text (cast to jsonb
-- for the jsonb form), so parsing the JSON, which a real request pays, is
-- measured too.
CREATE PROCEDURE bench.run_ingest(src text, form text, copy_file text DEFAULT NULL,
                                  INOUT events bigint DEFAULT NULL,
                                  INOUT seconds float8 DEFAULT NULL,
                                  INOUT peak_kb bigint DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    nbatches integer;
    payload text;
    r record;
    t0 timestamptz;
BEGIN
    SELECT count(*) INTO nbatches FROM bench.batches;
    events := 0;
    t0 := clock_timestamp();
    IF form = 'load' THEN
        -- the bulk path: the same CSV file as the baseline, COPY into the
        -- source's load table (one receipt for the whole load)
        EXECUTE format('COPY pipeline.%I FROM %L (FORMAT csv)', src || '_load', copy_file);
        COMMIT;
        SELECT b.accepted INTO STRICT events FROM pipeline.batches AS b
         WHERE b.source = src ORDER BY b.batch_id DESC LIMIT 1;
        nbatches := 0;
    END IF;
    FOR b IN 0 .. nbatches - 1 LOOP
        SELECT x.payload INTO STRICT payload FROM bench.batches AS x WHERE x.batch_no = b;
        IF form = 'jsonb' THEN
            SELECT * INTO STRICT r FROM pipeline.ingest(src, payload::jsonb);
        ELSE
            SELECT * INTO STRICT r FROM pipeline.ingest(src, payload);
        END IF;
        IF r.accepted <> r.received OR r.received = 0 THEN
            RAISE EXCEPTION 'batch % of %: received %, accepted %, duplicates %, rejected %',
                b, src, r.received, r.accepted, r.duplicates, r.rejected;
        END IF;
        events := events + r.accepted;
        COMMIT;
    END LOOP;
    seconds := extract(epoch FROM clock_timestamp() - t0);
    peak_kb := bench.private_peak_kb();
END
$fn$;

-- The baseline, measured the same way: wall time of the load, commit
-- included, into a fresh table.
CREATE PROCEDURE bench.run_copy(tbl text, copy_file text,
                                INOUT rows bigint DEFAULT NULL,
                                INOUT seconds float8 DEFAULT NULL,
                                INOUT peak_kb bigint DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    EXECUTE format('COPY bench.%I FROM %L (FORMAT csv)', tbl, copy_file);
    GET DIAGNOSTICS rows = ROW_COUNT;
    COMMIT;
    seconds := extract(epoch FROM clock_timestamp() - t0);
    peak_kb := bench.private_peak_kb();
END
$fn$;

-- The wide event: what an app sends for an interaction, ten typed fields
-- and a jsonb object of free properties (about 400 bytes of JSON).  The
-- same n events, generated when a measurement is prepared.
CREATE FUNCTION bench.create_wide_copy_table(name text) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format($$CREATE TABLE bench.%I (
        event_id    bigint NOT NULL,
        event_time  timestamptz NOT NULL,
        event_type  text NOT NULL,
        user_id     text NOT NULL,
        session_id  uuid,
        platform    text,
        app_version text,
        country     text,
        screen      text,
        duration_ms integer,
        properties  jsonb,
        PRIMARY KEY (event_id))$$, name);
END
$fn$;

CREATE FUNCTION bench.prepare_wide(batch_size integer, id_offset bigint, copy_file text, form text DEFAULT 'jsonb')
    RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    nbatches bigint;
BEGIN
    DROP TABLE IF EXISTS bench.wide_gen;
    CREATE TABLE bench.wide_gen AS
    SELECT o.i, o.order_id + id_offset AS event_id, o.event_time,
           (ARRAY['view', 'tap', 'scroll', 'add_to_cart', 'purchase'])[1 + o.i % 5] AS event_type,
           o.user_id, md5(o.user_id || (o.i / 20)::text)::uuid AS session_id, o.platform,
           '4.' || (o.i % 7) || '.' || (o.i % 3) AS app_version,
           (ARRAY['DE', 'FR', 'US', 'GB', 'ES', 'IT', 'NL'])[1 + o.i % 7] AS country,
           'screen_' || (o.i % 40) AS screen, (o.i * 37) % 5000 AS duration_ms,
           jsonb_build_object('referrer', 'https://example.com/r/' || (o.i % 500),
                              'ab_test', (ARRAY['A', 'B'])[1 + o.i % 2],
                              'campaign', 'spring_' || (o.i % 12),
                              'items', o.i % 9, 'price', o.amount,
                              'tags', jsonb_build_array('t' || (o.i % 5), 't' || (o.i % 11))) AS properties
      FROM bench.orders_gen AS o;
    TRUNCATE bench.batches;
    INSERT INTO bench.batches
    SELECT (w.i - 1) / batch_size,
           CASE form WHEN 'jsonb' THEN '[' ELSE '' END
           || string_agg(json_strip_nulls(json_build_object(
                   'event_id', w.event_id, 'event_time', w.event_time, 'event_type', w.event_type,
                   'user_id', w.user_id, 'session_id', w.session_id, 'platform', w.platform,
                   'app_version', w.app_version, 'country', w.country, 'screen', w.screen,
                   'duration_ms', w.duration_ms, 'properties', w.properties))::text,
                         CASE form WHEN 'jsonb' THEN ',' ELSE E'\n' END ORDER BY w.i)
           || CASE form WHEN 'jsonb' THEN ']' ELSE '' END
      FROM bench.wide_gen AS w
     GROUP BY (w.i - 1) / batch_size;
    GET DIAGNOSTICS nbatches = ROW_COUNT;
    EXECUTE format($$COPY (SELECT w.event_id, w.event_time, w.event_type, w.user_id, w.session_id, w.platform,
                                  w.app_version, w.country, w.screen, w.duration_ms, w.properties
                             FROM bench.wide_gen AS w ORDER BY w.i)
                     TO %L (FORMAT csv)$$, copy_file);
    RETURN nbatches;
END
$fn$;
