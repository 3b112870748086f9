# test/bench/late.sh: the fold of late events as the raw table grows,
# sourced by test/bench/run.sh (which provides bench_psql, bench_report,
# $work, $SMOKE).  Its own database `late`, pipeline.enabled = off (only
# explicit run_hot() calls fold), a source `events` and one metric:
#     dimensions '{event_type, platform}', bucket 1 minute, hot_retention 7 days,
#     measures 'count(*), sum(amount), count(DISTINCT user_id)'
# and, as the baseline, a materialized view of the same aggregate.
#
# The raw table grows to 1M, 5M and 20M events (100k-event NDJSON batches
# spread over the last 3 days, a run_hot() every 10 batches).  At each size:
#   before vacuum   right after the growth, 50k late events spread over the
#                   3 days and every dimension group, one timed run_hot()
#                   (no VACUUM since the growth: no hint bits or visibility
#                   map on its pages; its BRIN ranges were summarized by the
#                   growth's own run_hot() calls, the late events' ranges
#                   are summarized by the timed one), 3 times in a row
#                   (PIPELINE_BENCH_REPEAT), the median;
#   after vacuum    VACUUM ANALYZE, then 3 times 50k more late events and
#                   one timed run_hot(), the median;
#   baseline        REFRESH MATERIALIZED VIEW of the same aggregate, timed;
# and the hot layer must equal the materialized view (counts, sums and
# distinct counts, which the sketch keeps exactly below 1024 per bucket).
# Reported: each fold against the REFRESH (target <= 0.25) and the folds at
# the largest size against the smallest (target <= 1.5); each size's line
# also gives every fold's time, and the WAL the median one wrote and how
# many full page images.  One fold alone moved by up to half between runs
# of the same code (a checkpoint, autovacuum on the grown partitions).
# --smoke: one fold each.
#
# Full: about 10 minutes on 2 cores (the 20M-event REFRESH alone takes
# about a minute).  PIPELINE_BENCH_LATE_SIZES overrides the sizes.
# --smoke: 20k, 40k and 80k events in 10k-event batches, 2k late events.

late_psql() { bench_psql -d late "$@"; }

# one timed fold: "ms WAL-MB full-page-images", the WAL written meanwhile
# (the whole server's: the benchmark's database is the only one at work).
# A fold right after a checkpoint writes the full image of every hot page
# it touches first, which is what moves the largest size's figure.
late_timed_fold() {
    late_psql -At <<'SQL'
SELECT pg_stat_force_next_flush() \gset
SELECT wal_fpi AS fpi0, pg_current_wal_insert_lsn() AS lsn0 FROM pg_stat_wal \gset
SELECT fold_ms() AS ms \gset
SELECT pg_stat_force_next_flush() \gset
SELECT :ms || ' ' || round(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :'lsn0') / 1048576, 1) || ' ' || (wal_fpi - :fpi0)
  FROM pg_stat_wal;
SQL
}

# late_folds N LATE: N times LATE late events and one timed fold; prints
# the median fold's "ms WAL-MB full-page-images", then every fold's ms
late_folds() {
    local i folds=
    for i in $(seq 1 "$1"); do
        late_psql -Atc "SELECT ingest_spread($2)" >/dev/null
        folds+="$(late_timed_fold)"$'\n'
    done
    printf '%s' "$folds" | sort -n | sed -n "$((($1 + 1) / 2))p" | tr '\n' ' '
    printf '%s' "$folds" | awk '{printf "%s%.0f", (NR > 1 ? "/" : ""), $1}'
}

bench_late() {
    local sizes batch late repeat have=0 size n b ms_before ms_after wal_before wal_after fpi_before fpi_after all_before all_after refresh first_after= first_before= last_after last_before diff
    if [ "$SMOKE" = 1 ]; then
        sizes="20000 40000 80000" batch=10000 late=2000 repeat=1
    else
        sizes=${PIPELINE_BENCH_LATE_SIZES:-"1000000 5000000 20000000"} batch=100000 late=50000
        repeat=${PIPELINE_BENCH_REPEAT:-3}
    fi
    bench_psql -d postgres -c "DROP DATABASE IF EXISTS late" -c "CREATE DATABASE late" >/dev/null
    bench_psql -d postgres -c "ALTER SYSTEM SET pipeline.enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
    late_psql >/dev/null <<'SQL'
CREATE EXTENSION pipeline;
SELECT pipeline.create_source('events', $$id bigint NOT NULL, event_time timestamptz NOT NULL,
    event_type text NOT NULL, platform text, user_id text NOT NULL, amount numeric(12,2)$$, event_id => 'id');
SELECT pipeline.create_metric('activity', 'events', '{event_type, platform}',
    'count(*) AS events, sum(amount) AS revenue, count(DISTINCT user_id) AS users',
    bucket => '1 minute', hot_retention => '7 days');
CREATE MATERIALIZED VIEW activity_mv AS
SELECT date_bin('1 minute', event_time, '2000-01-01 00:00:00+00') AS bucket, event_type, platform,
       count(*) AS events, sum(amount) AS revenue, count(DISTINCT user_id) AS users
  FROM pipeline.events_raw GROUP BY 1, 2, 3;
CREATE SEQUENCE next_batch;
-- n events with fresh ids, spread over the last 3 days, 5 event types x 3
-- platforms, 262,144 users
CREATE FUNCTION ingest_spread(n int) RETURNS bigint LANGUAGE sql AS $f$
    SELECT accepted FROM pipeline.ingest('events', (
        SELECT string_agg(json_build_object('id', k * 1000000 + i,
                 'event_time', now() - random() * interval '3 days',
                 'event_type', (ARRAY['view', 'click', 'cart', 'purchase', 'share'])[1 + (i * 7) % 5],
                 'platform', (ARRAY['web', 'ios', 'android'])[1 + i % 3],
                 'user_id', 'u' || (hashint8(k * 1000000 + i) & 262143),
                 'amount', round((random() * 100)::numeric, 2))::text, E'\n')
          FROM generate_series(1, n) AS i, (SELECT nextval('next_batch') AS k) AS b))
$f$;
CREATE FUNCTION fold_ms() RETURNS double precision LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    PERFORM pipeline.run_hot('activity');
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $f$;
CREATE FUNCTION refresh_ms() RETURNS double precision LANGUAGE plpgsql AS $f$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    REFRESH MATERIALIZED VIEW activity_mv;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $f$;
-- rows where the hot layer and the materialized view differ
CREATE FUNCTION differences() RETURNS bigint LANGUAGE sql AS $f$
    SELECT count(*) FROM (
        (SELECT bucket, event_type, platform, events, revenue, users FROM metrics.activity_live
         EXCEPT ALL SELECT * FROM activity_mv)
        UNION ALL
        (SELECT * FROM activity_mv
         EXCEPT ALL SELECT bucket, event_type, platform, events, revenue, users FROM metrics.activity_live)) AS d
$f$;
SQL
    for size in $sizes; do
        n=$(((size - have) / batch))
        for b in $(seq 1 "$n"); do
            late_psql -Atc "SELECT ingest_spread($batch)" >/dev/null
            if [ $((b % 10)) = 0 ]; then late_psql -Atc "SELECT pipeline.run_hot('activity')" >/dev/null; fi
        done
        late_psql -Atc "SELECT pipeline.run_hot('activity')" >/dev/null
        have=$size
        read -r ms_before wal_before fpi_before all_before <<<"$(late_folds "$repeat" "$late")"
        late_psql -c "VACUUM ANALYZE" >/dev/null
        read -r ms_after wal_after fpi_after all_after <<<"$(late_folds "$repeat" "$late")"
        refresh=$(late_psql -Atc "SELECT refresh_ms()")
        diff=$(late_psql -Atc "SELECT differences()")
        printf '      raw %s: late fold %.0f ms before vacuum (%s ms; median: WAL %s MB, %s full page images), %.0f ms after (%s ms; %s MB, %s); REFRESH %.0f ms; %s rows differ\n' \
            "$size" "$ms_before" "$all_before" "$wal_before" "$fpi_before" "$ms_after" "$all_after" "$wal_after" "$fpi_after" "$refresh" "$diff"
        if [ "$diff" != 0 ]; then
            echo "late: the hot layer and the materialized view differ in $diff rows at raw $size" >&2
            return 1
        fi
        bench_report "late: fold $(human $late) late, raw $(human $size), before vacuum" "$ms_before" "ms" "$refresh" "ms, REFRESH"
        bench_report "late: fold $(human $late) late, raw $(human $size), after vacuum" "$ms_after" "ms" "$refresh" "ms, REFRESH"
        first_before=${first_before:-$ms_before} first_after=${first_after:-$ms_after}
        last_before=$ms_before last_after=$ms_after
    done
    bench_report "late: fold, largest raw vs smallest, before vacuum" "$last_before" "ms" "$first_before" "ms, smallest raw"
    bench_report "late: fold, largest raw vs smallest, after vacuum" "$last_after" "ms" "$first_after" "ms, smallest raw"
    bench_psql -d postgres -c "ALTER SYSTEM RESET pipeline.enabled" -c "SELECT pg_reload_conf()" >/dev/null
    bench_psql -d postgres -c "DROP DATABASE late" >/dev/null
}
