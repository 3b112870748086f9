-- Retention: set_retention() and maintain(as_of).  Days are local days
-- (a 23-hour and a 25-hour DST day below), dropped only once frozen and
-- older than the raw retention, oldest first; a held day keeps itself and
-- every later day; daily rows, corrections and digests stay; an event for a
-- dropped day is a dead letter that says why.
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SET DateStyle = ISO;
SET IntervalStyle = postgres;
\set VERBOSITY terse

SELECT pipeline.create_source('visits', 'visit_id bigint NOT NULL, event_time timestamptz NOT NULL, page text',
    event_id => 'visit_id', allowed_lateness => '1 hour', freeze_after => '1 day',
    day_timezone => 'America/New_York');
SELECT pipeline.create_metric('visits_n', 'visits', '{page}', 'count(*) AS n', hot_retention => '100 years');

-- bad calls
SELECT pipeline.set_retention('nope', '3 days');
SELECT pipeline.set_retention('visits', '-3 days');
SELECT pipeline.set_retention('visits', '3 days', dead_letters => '0 days');
SELECT * FROM pipeline.maintain(NULL);
CREATE ROLE regress_retention_other;
GRANT USAGE ON SCHEMA pipeline TO regress_retention_other;
SET ROLE regress_retention_other;
SELECT pipeline.set_retention('visits', '3 days');
SELECT pipeline._retire_day('visits', '2026-03-06');
SELECT pipeline._retire_day_as_source_owner('visits', '2026-03-06');
SELECT pipeline._maintain_as_owner('regress_retention_other', now());
SELECT * FROM pipeline.maintain('2100-01-01');
RESET ROLE;
DROP OWNED BY regress_retention_other;
DROP ROLE regress_retention_other;

-- two events per local day, at 00:30 and 23:30 New York time, 2026-03-06
-- to 2026-03-11 (2026-03-08 has 23 hours: clocks go forward at 02:00)
SELECT accepted, rejected FROM pipeline.ingest('visits', (
    SELECT jsonb_agg(jsonb_build_object('visit_id', 100 * i + k, 'page', 'home',
             'event_time', ((date '2026-03-05' + i)::timestamp + CASE k WHEN 1 THEN time '00:30' ELSE time '23:30' END)
                           AT TIME ZONE 'America/New_York'))
      FROM generate_series(1, 6) AS i, generate_series(1, 2) AS k));
SELECT count(*) FROM pipeline.run_hot('visits_n');
SELECT metric, day, action FROM pipeline.close_days('2026-03-11 12:00+00') ORDER BY day;
-- a late event for a frozen day: a correction
SELECT accepted FROM pipeline.ingest('visits',
    '[{"visit_id": 199, "page": "home", "event_time": "2026-03-07T12:00:00-05:00"}]');
SELECT metric, day, action FROM pipeline.close_days('2026-03-11 13:00+00') ORDER BY day;

CREATE TABLE retention_before AS
    SELECT day, page, n, status, frozen_at FROM metrics.visits_n_daily;

-- nothing goes before set_retention
SELECT * FROM pipeline.maintain('2026-03-12 14:00+00') WHERE action <> 'analyzed';
SELECT pipeline.set_retention('visits', '3 days', dead_letters => '10 days');
SELECT source, raw, dead_letters, batches, raw_dropped_through FROM pipeline.retention;

-- 3 days before 2026-03-12 14:00 UTC: the days that ended by 2026-03-09
-- 14:00 UTC go (03-06, 03-07 with its correction, and the 23-hour 03-08,
-- which ended at 04:00 UTC); 03-09 ended later and stays
SELECT * FROM pipeline.maintain('2026-03-12 14:00+00') WHERE action <> 'analyzed';
SELECT pipeline._source_days('visits');
SELECT raw_dropped_through FROM pipeline.retention WHERE source = 'visits';
-- the ids went with their days: one per raw event left
SELECT (SELECT count(*) FROM pipeline.visits_raw) AS raw, (SELECT count(*) FROM pipeline.visits_ids) AS ids;
-- the daily layer is untouched, corrections and digests too
SELECT count(*) AS changed_daily_rows
  FROM (SELECT * FROM retention_before EXCEPT SELECT day, page, n, status, frozen_at FROM metrics.visits_n_daily) AS x;
SELECT day, page, n, corrected FROM metrics.visits_n_restated ORDER BY day;
SELECT day, pipeline.verify_day('visits_n', day) FROM metrics.visits_n_daily WHERE status = 'frozen' ORDER BY day;

-- the completeness check compares the days kept, though the first batch
-- also carried events of the days dropped
SELECT pipeline.add_check('visits_complete', 'completeness', 'visits_n');
SELECT check_name, status, detail FROM pipeline.run_checks('2026-03-12 14:00+00') WHERE check_name = 'visits_complete';
SELECT pipeline.drop_check('visits_complete');

-- the dedup horizon: a re-sent event and a new one for dropped days are
-- dead letters that say why; the first minutes of 03-09 are accepted
SELECT accepted, duplicates, rejected FROM pipeline.ingest('visits', '[
    {"visit_id": 201, "page": "home", "event_time": "2026-03-06T00:30:00-05:00"},
    {"visit_id": 900, "page": "home", "event_time": "2026-03-08T23:30:00-04:00"},
    {"visit_id": 901, "page": "home", "event_time": "2026-03-09T00:05:00-04:00"}]');
SELECT payload::jsonb ->> 'visit_id' AS visit_id, error_code, field, error
  FROM pipeline.dead_letters WHERE source = 'visits' ORDER BY id;

-- a held day keeps itself and every later day: a blocking check fails
-- (an event without a page) while 03-10 is due to freeze
SELECT pipeline.add_check('pages', 'not_null', 'visits', '{"column": "page", "window": "30 days"}', 'block');
SELECT accepted FROM pipeline.ingest('visits',
    '[{"visit_id": 1100, "event_time": "2026-03-11T10:00:00-04:00"}]');
SELECT check_name, status FROM pipeline.run_checks('2026-03-13 00:00+00');
SELECT metric, day, action FROM pipeline.close_days('2026-03-13 00:00+00') ORDER BY day;
SELECT * FROM pipeline.maintain('2026-03-16 00:00+00') WHERE action <> 'analyzed';
SELECT pipeline._source_days('visits');
-- released, 03-10 freezes and goes; 03-11, held now, stays
SELECT pipeline.release_day('visits_n', '2026-03-10', 'the event without a page is a known test visit');
SELECT metric, day, action FROM pipeline.close_days('2026-03-16 00:00+00') ORDER BY day;
SELECT * FROM pipeline.maintain('2026-03-16 00:00+00') WHERE action <> 'analyzed';
SELECT pipeline._source_days('visits');
SELECT pipeline.release_day('visits_n', '2026-03-11', 'the event without a page is a known test visit');
SELECT metric, day, action FROM pipeline.close_days('2026-03-16 00:00+00') ORDER BY day;
SELECT * FROM pipeline.maintain('2026-03-16 00:00+00') WHERE action <> 'analyzed';
SELECT pipeline._source_days('visits');
SELECT raw_dropped_through FROM pipeline.retention WHERE source = 'visits';

-- dead letters past their retention go too
SELECT object, action, detail ~ '^2 dead letters of source visits received before .* \(retention 10 days\)$' AS detail_ok
  FROM pipeline.maintain(now() + interval '10 days') WHERE object = 'pipeline.dead_letters';
SELECT count(*) FROM pipeline.dead_letters WHERE source = 'visits';
SELECT pipeline.drop_check('pages');

-- a source without metrics: a day goes once past freeze_after and the raw
-- retention; a 25-hour day (Paris, 2026-10-25) goes whole, and the first
-- minutes of the next day stay
SELECT pipeline.create_source('taps', 'tap_id bigint NOT NULL, event_time timestamptz NOT NULL',
    event_id => 'tap_id', day_timezone => 'Europe/Paris', freeze_after => '1 day', allowed_lateness => '0');
SELECT accepted FROM pipeline.ingest('taps', '[
    {"tap_id": 1, "event_time": "2026-10-25T00:10:00+02:00"},
    {"tap_id": 2, "event_time": "2026-10-25T02:30:00+02:00"},
    {"tap_id": 3, "event_time": "2026-10-25T02:30:00+01:00"},
    {"tap_id": 4, "event_time": "2026-10-25T23:50:00+01:00"},
    {"tap_id": 5, "event_time": "2026-10-26T00:10:00+01:00"}]');
SELECT pipeline.set_retention('taps', '1 day', batches => '1 day');
SELECT * FROM pipeline.maintain('2026-10-27 12:00+00') WHERE action <> 'analyzed';
SELECT tap_id FROM pipeline.taps_raw ORDER BY 1;
SELECT * FROM pipeline.maintain('2026-10-28 00:30+00') WHERE action <> 'analyzed';
SELECT tap_id FROM pipeline.taps_raw ORDER BY 1;
-- receipts past their retention go once no metric still needs them
SELECT object, action, detail ~ '^1 receipts of source taps received before .* \(retention 1 day\)$' AS detail_ok
  FROM pipeline.maintain(now() + interval '2 days') WHERE object = 'pipeline.batch_log' ORDER BY action;
SELECT count(*) FROM pipeline.batches WHERE source = 'taps';

SELECT pipeline.drop_source('taps');
SELECT pipeline.drop_source('visits', cascade => true);
SELECT count(*) FROM pipeline.retention;
DROP TABLE retention_before;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
