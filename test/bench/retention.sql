-- test/bench/retention.sql: the objects of the retention soak (schema
-- retention), loaded by test/bench/retention.sh into its own database,
-- whose TimeZone is UTC (the source's day_timezone too).
--
-- Simulated day d (1, 2, ...) is 2026-06-01 + d - 1: fixed and in the
-- past, so no event is ever refused as too far in the future, and the
-- simulated clock (close_days and maintain as_of) runs ahead of nothing.
-- Event ids of day d are d * 10^9 + i: i = 1 .. n for the day's events,
-- 900,000,000 + batch for its bad rows, 999,000,000 + k for new events sent
-- after the day was dropped.

CREATE SCHEMA retention;

CREATE FUNCTION retention.day_start(d integer) RETURNS timestamptz LANGUAGE sql IMMUTABLE
    RETURN timestamptz '2026-06-01 00:00:00+00' + (d - 1) * interval '1 day';
CREATE FUNCTION retention.day_date(d integer) RETURNS date LANGUAGE sql IMMUTABLE
    RETURN date '2026-06-01' + (d - 1);

-- One event of day d as an NDJSON line: time uniform over the day, users
-- log-uniform over 200,000 (a few users send most events), kind
-- view/click/cart/buy, amount log-distributed, country absent from 10%.
CREATE FUNCTION retention.line(d integer, id bigint) RETURNS text LANGUAGE sql VOLATILE
    RETURN '{"event_id":' || id
        || ',"event_time":"' || (retention.day_start(d) + random() * interval '1 day')::text
        || '","user_id":' || floor(exp(random() * ln(200000)))::bigint
        || ',"kind":"' || (ARRAY['view', 'view', 'view', 'click', 'click', 'cart', 'buy'])[1 + floor(random() * 7)::int]
        || '","amount":' || round(exp(random() * 6)::numeric, 2)
        || CASE WHEN random() < 0.9
                THEN ',"country":"' || (ARRAY['FR', 'DE', 'ES', 'IT', 'NL', 'PL'])[1 + floor(random() * 6)::int] || '"'
                ELSE '' END
        || '}';

-- One batch of day d: events first .. first + n - 1, then `resend` events
-- re-sent from the batch before (duplicates), then `bad` rows, each kind in
-- turn: a negative amount (the CHECK), an event time that is no time, a
-- line that is not JSON (dead letters).
CREATE FUNCTION retention.payload(d integer, batch integer, first bigint, n integer, resend integer, bad integer)
    RETURNS text LANGUAGE sql VOLATILE AS $fn$
    SELECT string_agg(l, E'\n') || E'\n'
      FROM (SELECT retention.line(d, d * 1000000000::bigint + i) AS l
              FROM generate_series(first, first + n - 1) AS i
            UNION ALL
            SELECT retention.line(d, d * 1000000000::bigint + i)
              FROM generate_series(first - resend, first - 1) AS i
            UNION ALL
            SELECT CASE (batch + k) % 3
                       WHEN 0 THEN '{"event_id":' || (d * 1000000000::bigint + 900000000 + batch * 10 + k)
                                   || ',"event_time":"' || retention.day_start(d)::text
                                   || '","user_id":1,"kind":"buy","amount":-1}'
                       WHEN 1 THEN '{"event_id":' || (d * 1000000000::bigint + 900000000 + batch * 10 + k)
                                   || ',"event_time":"not a time","user_id":1,"kind":"buy","amount":1}'
                       ELSE '{"event_id":' || (d * 1000000000::bigint + 900000000 + batch * 10 + k) || ',"event_'
                   END
              FROM generate_series(1, bad) AS k) AS x
$fn$;

-- What each day's ingest accepted (from its receipts) and how fast.
CREATE TABLE retention.days (
    d        integer PRIMARY KEY,
    accepted bigint NOT NULL,
    rejected bigint NOT NULL,
    seconds  float8 NOT NULL
);

-- The n events of day d in batches of `batch` NDJSON lines, one
-- pipeline.ingest() with its batch_key per batch and a COMMIT after each.
-- Every batch after the day's first re-sends 1% of the batch before; every
-- 10th batch (the first included) carries one bad row.  Only the ingest
-- and its COMMIT are timed (the payload is built beforehand).  Each
-- receipt must say exactly that: n accepted, the re-sent ones duplicates,
-- the bad ones rejected.  Returns the events accepted and the seconds.
CREATE PROCEDURE retention.ingest_day(d integer, n integer, batch integer,
                                      INOUT accepted bigint DEFAULT NULL, INOUT seconds float8 DEFAULT NULL)
    LANGUAGE plpgsql AS $fn$
DECLARE
    b integer := 0;
    first bigint := 1;
    m integer;
    resend integer;
    bad integer;
    rejected bigint := 0;
    payload text;
    t0 timestamptz;
    r record;
BEGIN
    accepted := 0; seconds := 0;
    WHILE first <= n LOOP
        m := least(batch, n - first + 1);
        resend := CASE WHEN first > 1 THEN least(greatest(batch / 100, 1), first - 1) ELSE 0 END;
        bad := CASE WHEN b % 10 = 0 THEN 1 ELSE 0 END;
        payload := retention.payload(d, b, first, m, resend, bad);
        t0 := clock_timestamp();
        SELECT * INTO STRICT r FROM pipeline.ingest('events', payload, batch_key => format('day-%s-batch-%s', d, b));
        COMMIT;
        seconds := seconds + extract(epoch FROM clock_timestamp() - t0);
        IF r.received <> m + resend + bad OR r.accepted <> m OR r.duplicates <> resend OR r.rejected <> bad THEN
            RAISE EXCEPTION 'day % batch %: received %, accepted %, duplicates %, rejected %; expected %, %, %, %',
                d, b, r.received, r.accepted, r.duplicates, r.rejected, m + resend + bad, m, resend, bad;
        END IF;
        accepted := accepted + r.accepted;
        rejected := rejected + r.rejected;
        first := first + m;
        b := b + 1;
    END LOOP;
    INSERT INTO retention.days VALUES (d, accepted, rejected, seconds);
    COMMIT;
END
$fn$;

-- What the pipeline keeps for the source, in bytes (indexes and TOAST
-- included): the raw table (every partition), the ids table, the receipts
-- and dead letters (this database has no other source), the metric's hot,
-- daily and corrections tables; and the raw partitions there are.
CREATE FUNCTION retention.sizes(OUT raw_bytes bigint, OUT ids_bytes bigint, OUT log_bytes bigint,
                                OUT metric_bytes bigint, OUT total_bytes bigint, OUT partitions integer)
    LANGUAGE plpgsql AS $fn$
BEGIN
    SELECT sum(pg_total_relation_size(t.relid)), count(*) FILTER (WHERE t.isleaf)
      INTO raw_bytes, partitions
      FROM pg_partition_tree('pipeline.events_raw') AS t;
    ids_bytes := pg_total_relation_size('pipeline.events_ids');
    log_bytes := pg_total_relation_size('pipeline.batch_log') + pg_total_relation_size('pipeline.dead_letters');
    metric_bytes := pg_total_relation_size('pipeline.soak_hot') + pg_total_relation_size('pipeline.soak_daily')
                    + pg_total_relation_size('pipeline.soak_corrections');
    total_bytes := raw_bytes + ids_bytes + log_bytes + metric_bytes;
END
$fn$;

-- Every frozen daily row as it was first seen frozen.
CREATE TABLE retention.frozen_seen AS SELECT * FROM metrics.soak_daily WITH NO DATA;

CREATE FUNCTION retention.record_frozen() RETURNS bigint LANGUAGE sql AS $fn$
    WITH ins AS (
        INSERT INTO retention.frozen_seen
        SELECT * FROM metrics.soak_daily AS x
         WHERE x.status = 'frozen' AND x.day NOT IN (SELECT f.day FROM retention.frozen_seen AS f)
        RETURNING 1)
    SELECT count(*) FROM ins
$fn$;

-- Events re-sent for day d after maintain() dropped it: 3 of its events
-- again and 2 new ones.  None may be accepted; each must be a dead letter
-- whose error names the raw retention.
CREATE TABLE retention.probes (d integer PRIMARY KEY, batch_id bigint NOT NULL, rejected bigint NOT NULL);

CREATE FUNCTION retention.probe_dropped_day(d integer) RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
    n bigint;
BEGIN
    SELECT * INTO STRICT r FROM pipeline.ingest('events',
        (SELECT string_agg(retention.line(d, d * 1000000000::bigint + i), E'\n')
           FROM unnest(ARRAY[1, 2, 3, 999000001, 999000002]) AS i),
        batch_key => format('dropped-day-%s', d));
    IF r.received <> 5 OR r.accepted <> 0 OR r.duplicates <> 0 OR r.rejected <> 5 THEN
        RAISE EXCEPTION 'events for dropped day %: received %, accepted %, duplicates %, rejected %; expected all 5 rejected',
            d, r.received, r.accepted, r.duplicates, r.rejected;
    END IF;
    SELECT count(*) INTO n FROM pipeline.dead_letters AS l
     WHERE l.batch_id = r.batch_id AND l.error LIKE '%past the source''s raw retention%';
    IF n <> 5 THEN
        RAISE EXCEPTION 'events for dropped day %: % of 5 dead letters say the day is past the raw retention', d, n;
    END IF;
    INSERT INTO retention.probes VALUES (d, r.batch_id, r.rejected);
    RETURN r.batch_id;
END
$fn$;

-- The checks at the end of the run; raises on the first failure.
--  - every day's frozen rows are as first seen frozen, for dropped days too,
--    and still match their digest (verify_day);
--  - every day is frozen, and its frozen count equals the events its
--    ingest accepted;
--  - nothing was corrected (no event reached a frozen day).
CREATE FUNCTION retention.check(days integer) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
    n bigint;
    r record;
BEGIN
    SELECT count(*) INTO n FROM (
        (SELECT * FROM retention.frozen_seen EXCEPT ALL SELECT * FROM metrics.soak_daily)
        UNION ALL
        (SELECT * FROM metrics.soak_daily WHERE day IN (SELECT day FROM retention.frozen_seen)
         EXCEPT ALL SELECT * FROM retention.frozen_seen)) AS x;
    IF n <> 0 THEN
        RAISE EXCEPTION 'frozen daily rows changed after they froze: % rows differ', n;
    END IF;
    FOR r IN SELECT g.d, retention.day_date(g.d) AS day, x.accepted,
                    (SELECT sum(s.events) FROM metrics.soak_daily AS s WHERE s.day = retention.day_date(g.d)) AS frozen,
                    (SELECT bool_and(s.status = 'frozen') FROM metrics.soak_daily AS s WHERE s.day = retention.day_date(g.d)) AS all_frozen,
                    pipeline.verify_day('soak', retention.day_date(g.d)) AS verified
               FROM generate_series(1, days) AS g(d) LEFT JOIN retention.days AS x ON x.d = g.d ORDER BY g.d
    LOOP
        IF r.accepted IS NULL OR r.frozen IS DISTINCT FROM r.accepted OR NOT r.all_frozen OR NOT r.verified THEN
            RAISE EXCEPTION 'day % (%): accepted %, frozen count %, all rows frozen %, verify_day %',
                r.d, r.day, r.accepted, r.frozen, r.all_frozen, r.verified;
        END IF;
    END LOOP;
    SELECT count(*) INTO n FROM metrics.soak_corrections;
    IF n <> 0 THEN
        RAISE EXCEPTION '% correction rows: an event reached a frozen day', n;
    END IF;
END
$fn$;

-- The sizes after each day, in bytes.
CREATE TABLE retention.sizes_by_day (
    d            integer PRIMARY KEY,
    raw_bytes    bigint NOT NULL,
    ids_bytes    bigint NOT NULL,
    log_bytes    bigint NOT NULL,
    metric_bytes bigint NOT NULL,
    total_bytes  bigint NOT NULL,
    partitions   integer NOT NULL
);
