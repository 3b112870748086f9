-- The daily SLA (check kind sla): yesterday, in the source's day time
-- zone, must be provisional by a local time of day; an early warning
-- (status warn) fires warn_before it.  Pass when yesterday is provisional
-- in time, warn inside the window, fail after the deadline, pass again
-- once close_days has closed the day; a day without events counts once
-- close_days has passed it; a held day is on time; the deadline is local
-- time (Paris against UTC); alerts and their status; validation.
-- (NOTIFY of the warn and fail transitions is test/t/060_alerts.pl.)
-- (PL/pgSQL CONTEXT lines carry line numbers: not part of the contract)
\set SHOW_CONTEXT never
CREATE EXTENSION pipeline;
SET TimeZone = 'UTC';
SET DateStyle = ISO;
SET IntervalStyle = postgres;

-- two sources a time zone apart: Paris is UTC+1 in March 2026 (CET);
-- clicks freezes 3 hours after a day ends, so a day can be held the next morning
SELECT pipeline.create_source('orders', 'order_id bigint NOT NULL, event_time timestamptz NOT NULL, platform text',
    event_id => 'order_id', allowed_lateness => '2 hours', day_timezone => 'Europe/Paris');
SELECT pipeline.create_source('clicks', 'click_id bigint NOT NULL, event_time timestamptz NOT NULL, platform text',
    event_id => 'click_id', allowed_lateness => '2 hours', freeze_after => '3 hours');
SELECT pipeline.create_metric('sales', 'orders', measures => 'count(*) AS orders', hot_retention => '100 years');
SELECT pipeline.create_metric('taps', 'clicks', measures => 'count(*) AS clicks', hot_retention => '100 years');

-- n events of a day, one a minute from 08:00 UTC
CREATE FUNCTION pg_temp.events(id text, first bigint, day date, n int, platform text DEFAULT 'web') RETURNS jsonb
    LANGUAGE sql
    RETURN (SELECT jsonb_agg(jsonb_build_object(id, first + i,
                                                'event_time', (day + time '08:00') AT TIME ZONE 'UTC' + i * interval '1 minute',
                                                'platform', platform))
              FROM generate_series(1, n) AS i);
SELECT accepted FROM pipeline.ingest('orders', pg_temp.events('order_id', 0, '2026-03-10', 10));
SELECT accepted FROM pipeline.ingest('clicks', pg_temp.events('click_id', 0, '2026-03-10', 10));

SELECT pipeline.add_check('sales_sla', 'sla', 'sales', '{"ready_by": "07:00"}', 'fail');
SELECT pipeline.add_check('taps_sla', 'sla', 'taps', '{"ready_by": "07:00", "warn_before": "30 minutes"}');
-- stored with the default warn_before filled in
SELECT check_name, kind, target, target_type, params, severity FROM pipeline.checks ORDER BY 1;

-- ===================================================================
-- 2026-03-11: yesterday is 2026-03-10, due by 07:00 local: 06:00 UTC in
-- Paris, 07:00 UTC for clicks.  Nobody has run close_days yet.
-- ===================================================================

-- 05:00 in Paris: before the early warning (06:00 Paris): pass, says when
SELECT * FROM pipeline.run_checks('2026-03-11 04:00+00') ORDER BY 1;
SELECT count(*) AS alerts FROM pipeline.alerts;
-- 06:30 in Paris: inside the hour before 07:00: an early warning; 05:30 UTC
-- is still before the clicks window (06:30 UTC): local time decides
SELECT * FROM pipeline.run_checks('2026-03-11 05:30+00') ORDER BY 1;
SELECT check_name, kind, target, severity, status, since, last_ran_at, observed, threshold FROM pipeline.alerts ORDER BY 1;
-- still warning: since stays at the first warning
SELECT check_name, status FROM pipeline.run_checks('2026-03-11 05:45+00') ORDER BY 1;
SELECT check_name, status, since, last_ran_at FROM pipeline.alerts ORDER BY 1;
-- 07:00 in Paris exactly: missed.  06:00 UTC is before 06:30 UTC: clicks still passes
SELECT * FROM pipeline.run_checks('2026-03-11 06:00+00') ORDER BY 1;
-- the failure is failing since it failed, not since the warning
SELECT check_name, status, since, last_ran_at, observed FROM pipeline.alerts ORDER BY 1;
-- 06:45 UTC: clicks is in its window (warn_before 30 minutes), orders still missed
SELECT check_name, status, observed FROM pipeline.run_checks('2026-03-11 06:45+00') ORDER BY 1;
SELECT check_name, status, since FROM pipeline.alerts ORDER BY 1;
-- 07:00 UTC: clicks missed too (its deadline: 07:00 UTC)
SELECT check_name, status, observed FROM pipeline.run_checks('2026-03-11 07:00+00') ORDER BY 1;
-- a warning or a late SLA holds nothing from freezing: only block checks do
SELECT pipeline._blocking_checks('sales') AS blocking_sales, pipeline._blocking_checks('taps') AS blocking_taps;

-- close_days makes 2026-03-10 provisional: both pass again, the alerts are gone
SELECT metric, day, action FROM pipeline.close_days('2026-03-11 07:10+00') ORDER BY 1, 2;
SELECT * FROM pipeline.run_checks('2026-03-11 07:15+00') ORDER BY 1;
SELECT count(*) AS alerts FROM pipeline.alerts;
SELECT check_name, run_no, ran_at, status, observed FROM pipeline.check_results ORDER BY check_name, run_no;

-- ===================================================================
-- 2026-03-12: yesterday (2026-03-11) closed in time
-- ===================================================================

SELECT accepted FROM pipeline.ingest('orders', pg_temp.events('order_id', 100, '2026-03-11', 5));
SELECT accepted FROM pipeline.ingest('clicks', pg_temp.events('click_id', 100, '2026-03-11', 5));
-- 02:00 UTC: Paris's 2026-03-11 is provisional (ended 23:00 UTC + 2 hours);
-- clicks' ended at midnight UTC and is provisional too
SELECT metric, day, action FROM pipeline.close_days('2026-03-12 02:00+00') ORDER BY 1, 2;
-- inside the warning windows, and after a deadline: yesterday is provisional, so pass
SELECT * FROM pipeline.run_checks('2026-03-12 05:30+00') ORDER BY 1;
SELECT check_name, status FROM pipeline.run_checks('2026-03-12 09:00+00') ORDER BY 1;

-- ===================================================================
-- 2026-03-13: a day without events (2026-03-12)
-- ===================================================================

-- close_days last ran at 2026-03-12 02:00 UTC, before the quiet day ended:
-- nothing says it was closed, so the SLA is missed
SELECT pipeline._source_days('orders') AS order_days;
SELECT * FROM pipeline.run_checks('2026-03-13 06:30+00') ORDER BY 1;
-- once close_days has run past it (as_of >= its end + allowed_lateness),
-- the quiet day is done, without a day_closures row
SELECT metric, day, action FROM pipeline.close_days('2026-03-13 06:40+00') ORDER BY 1, 2;
SELECT metric, closed_as_of FROM pipeline.close_runs ORDER BY 1;
SELECT metric, day, status FROM pipeline.day_closures WHERE day = '2026-03-12' ORDER BY 1;
SELECT * FROM pipeline.run_checks('2026-03-13 06:45+00') ORDER BY 1;
-- but events for that day arriving after the close run reopen it until the next one
SELECT accepted FROM pipeline.ingest('orders', pg_temp.events('order_id', 200, '2026-03-12', 2));
SELECT check_name, status, detail FROM pipeline.run_checks('2026-03-13 06:50+00') WHERE check_name = 'sales_sla';
SELECT metric, day, action FROM pipeline.close_days('2026-03-13 06:55+00') WHERE day = '2026-03-12' ORDER BY 1, 2;
SELECT check_name, status, detail FROM pipeline.run_checks('2026-03-13 06:56+00') WHERE check_name = 'sales_sla';

-- ===================================================================
-- 2026-03-14: a held day is on time
-- ===================================================================

-- a block check on clicks fails (events without a platform) and holds
-- clicks' 2026-03-13, due to freeze at 03:00 UTC
SELECT accepted FROM pipeline.ingest('clicks', pg_temp.events('click_id', 300, '2026-03-13', 3, platform => NULL));
SELECT accepted FROM pipeline.ingest('orders', pg_temp.events('order_id', 300, '2026-03-13', 3));
SELECT pipeline.add_check('clicks_platform', 'not_null', 'clicks', '{"column": "platform", "window": "1 hour"}', 'block');
SELECT check_name, status FROM pipeline.run_checks('2026-03-13 08:30+00') WHERE check_name = 'clicks_platform';
SELECT metric, day, action FROM pipeline.close_days('2026-03-14 04:00+00') WHERE day = '2026-03-13' ORDER BY 1, 2;
SELECT pipeline._blocking_checks('taps') AS blocking_taps;
SELECT check_name, status, detail FROM pipeline.run_checks('2026-03-14 06:45+00') WHERE check_name LIKE '%sla' ORDER BY 1;
-- a block check whose latest run is warn holds nothing (written by hand:
-- only sla checks give warn, and they cannot block)
INSERT INTO pipeline.check_results (check_name, run_no, ran_at, status, detail)
    SELECT 'clicks_platform', max(run_no) + 1, '2026-03-14 06:50+00', 'warn', 'by hand'
      FROM pipeline.check_results WHERE check_name = 'clicks_platform';
SELECT check_name, status FROM pipeline.alerts WHERE check_name = 'clicks_platform';
SELECT pipeline._blocking_checks('taps') AS blocking_taps;
SELECT pipeline.drop_check('clicks_platform');

-- ===================================================================
-- Edges: a deadline with seconds, warn_before 0, a wide warning window
-- ===================================================================

-- warn_before 0: no early warning, straight from pass to fail
SELECT pipeline.add_check('sales_sla_sharp', 'sla', 'sales', '{"ready_by": "02:30:30", "warn_before": "0"}');
SELECT params FROM pipeline.checks WHERE check_name = 'sales_sla_sharp';
-- 2026-03-15 in Paris: 2026-03-14 has no events and close_days last ran on the 14th
SELECT check_name, status, observed, detail FROM pipeline.run_checks('2026-03-15 01:30:29+00') WHERE check_name = 'sales_sla_sharp';
SELECT check_name, status, observed, detail FROM pipeline.run_checks('2026-03-15 01:30:30+00') WHERE check_name = 'sales_sla_sharp';
-- 23:30 UTC on the 14th is already the 15th in Paris
SELECT check_name, status, observed FROM pipeline.run_checks('2026-03-14 23:30+00') WHERE check_name = 'sales_sla_sharp';
SELECT pipeline.drop_check('sales_sla_sharp');
-- a warning window reaching back before midnight starts at midnight: the
-- day before, yesterday was another day
SELECT pipeline.add_check('sales_sla_wide', 'sla', 'sales', '{"ready_by": "03:00", "warn_before": "4 hours"}');
SELECT check_name, status, observed, detail FROM pipeline.run_checks('2026-03-14 22:30+00') WHERE check_name = 'sales_sla_wide';
SELECT check_name, status, observed, detail FROM pipeline.run_checks('2026-03-14 23:00+00') WHERE check_name = 'sales_sla_wide';
SELECT pipeline.drop_check('sales_sla_wide');

-- ===================================================================
-- Validation: every refusal says what is wrong and how to write it
-- ===================================================================

\set VERBOSITY default
-- ready_by is required
SELECT pipeline.add_check('c', 'sla', 'sales');
SELECT pipeline.add_check('c', 'sla', 'sales', '{"warn_before": "1 hour"}');
-- a local time of day, nothing else
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": "seven"}');
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": 7}');
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": "24:00"}');
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": "07:00+02"}');
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": "07:61"}');
-- before the day can be provisional (the source allows 2 hours of lateness)
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": "01:59"}');
-- warn_before: an interval, not negative
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": "07:00", "warn_before": "-5 minutes"}');
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": "07:00", "warn_before": "soon"}');
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": "07:00", "warn_before": 3600}');
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": "07:00", "deadline": "08:00"}');
-- the target is a metric: not a source, not a name nobody knows
SELECT pipeline.add_check('c', 'sla', 'orders', '{"ready_by": "07:00"}');
SELECT pipeline.add_check('c', 'sla', 'nope', '{"ready_by": "07:00"}');
-- a late day is not a wrong one: no block
SELECT pipeline.add_check('c', 'sla', 'sales', '{"ready_by": "07:00"}', 'block');
\set VERBOSITY terse
SELECT count(*) AS refused_checks_stored FROM pipeline.checks WHERE check_name = 'c';

-- a dropped metric leaves no close record behind; its check cannot run
SELECT pipeline.drop_metric('taps');
SELECT metric FROM pipeline.close_runs ORDER BY 1;
SELECT check_name, status, detail FROM pipeline.run_checks('2026-03-14 07:00+00') ORDER BY 1;

-- leave the database as it was found
SET client_min_messages = warning;
DROP EXTENSION pipeline CASCADE;
SELECT count(*) AS leftovers FROM pg_class WHERE relnamespace = 'pipeline'::regnamespace;
