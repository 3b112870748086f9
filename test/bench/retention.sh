# test/bench/retention.sh: the retention soak, sourced by test/bench/run.sh
# (which provides bench_psql, bench_report, $work, $here, $SMOKE).  Its own
# database `retention` (TimeZone UTC); objects and the timed ingest:
# retention.sql.
#
# A source `events` (event_id bigint, event_time timestamptz, user_id
# bigint, kind text, amount numeric(12,2) CHECK (amount >= 0), country
# text; day_timezone UTC, allowed_lateness 2 hours, freeze_after 24 hours),
# a metric `soak` on it (dimensions '{kind}', measures 'count(*) AS events,
# sum(amount) AS revenue, count(DISTINCT user_id) AS users', bucket 5
# minutes) and set_retention('events', raw => '2 days', dead_letters =>
# '2 days', batches => '2 days').  pipeline.enabled = off for the whole
# benchmark (reset afterwards): only the explicit run_hot() calls fold.
#
# Ten simulated days, 2026-06-01 to 2026-06-10; for day d:
#   1. $n events of day d in $batch-line NDJSON batches, each its own
#      pipeline.ingest() with a batch_key and COMMIT; 1% of each batch
#      re-sends events of the batch before (duplicates), every 10th batch
#      has a bad row (dead letters).  Timed: the ingest calls and their
#      commits; every receipt is checked.
#   2. run_hot(), then close_days and maintain with as_of = the end of day
#      d + 5 minutes: day d - 1 freezes (its end + freeze_after), and every
#      frozen day that ended 2 days before as_of goes, with its ids (day
#      d - 2): 2 raw partitions are kept from day 2 on.
#   3. VACUUM of the ids table, the receipts and the dead letters, whose
#      deletions would otherwise leave space that only a later autovacuum
#      makes reusable: in production autovacuum has long done this between
#      two hourly maintain() runs, in the simulation days pass in seconds.
#      Then a CHECKPOINT, so that none falls into the next day's ingest.
#   4. When a day was dropped: 3 of its events re-sent and 2 new ones for
#      it, as one batch: all must be dead letters whose error names the raw
#      retention (the dedup horizon).
#   5. The daily rows newly frozen are recorded, and the sizes of what the
#      pipeline keeps for the source (retention.sizes: raw partitions, ids,
#      receipts, dead letters, the metric's hot, daily and corrections
#      tables, indexes and TOAST included).
# Then close_days at the end of day 10 + 1 day freezes day 10, and the
# checks (retention.check): frozen rows unchanged since they froze (dropped
# days included) and matching their digests, every day's frozen count
# equal to the events its ingest accepted, no corrections.
#
# Reported: ingest rate of days 8-10 against days 1-3 (target about 1.0),
# total size at day 10 against day 3 (target <= 1.1: flat once the
# retention window is full), raw partitions kept at the end.  Fails if a
# check fails or the size ratio is over 2.
#
# The hot table stays empty: hot retention (7 days by default) counts from
# the real clock, and the simulated days are months old.  Receipts and
# dead letters go by the real clock too (received_at): with the simulated
# as_of they are never old enough, so they accumulate over the run (a few
# hundred small rows).  After the checks, maintain() with the real clock
# 2 days ahead must delete every receipt and dead letter of the source.
#
# Full: 1,500,000 events a day in 10,000-line batches, about 3 minutes on
# 2 cores; PIPELINE_BENCH_RETENTION_EVENTS overrides the events per day.
# --smoke: 2,000 events a day in 500-line batches, seconds.

RETENTION_DAYS=10

ret_psql() { bench_psql -d retention "$@"; }

# ret_rate FIRST LAST: events/s over days FIRST..LAST (events / ingest seconds)
ret_rate() {
    ret_psql -At -c "SELECT sum(accepted) / sum(seconds) FROM retention.days WHERE d BETWEEN $1 AND $2"
}

bench_retention() {
    local n batch d as_of out secs accepted dropped probe parts try
    local raw ids logs metric total rate size3 size10 rate_early rate_late ratio
    if [ "$SMOKE" = 1 ]; then
        n=${PIPELINE_BENCH_RETENTION_EVENTS:-2000} batch=500
    else
        n=${PIPELINE_BENCH_RETENTION_EVENTS:-1500000} batch=10000
    fi

    bench_psql -d postgres -c "CREATE DATABASE retention" -c "ALTER DATABASE retention SET TimeZone = 'UTC'"
    ret_psql -c "CREATE EXTENSION pipeline CASCADE"
    ret_psql -c "ALTER SYSTEM SET pipeline.enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5      # the workers take it at their next latch wake-up
    ret_psql -c "SELECT pipeline.create_source('events',
        \$\$event_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id bigint NOT NULL,
          kind text NOT NULL, amount numeric(12,2) CHECK (amount >= 0), country text\$\$,
        event_id => 'event_id', allowed_lateness => '2 hours', freeze_after => '24 hours', day_timezone => 'UTC')" \
             -c "SELECT pipeline.create_metric('soak', 'events', dimensions => '{kind}',
        measures => 'count(*) AS events, sum(amount) AS revenue, count(DISTINCT user_id) AS users',
        bucket => '5 minutes')" \
             -c "SELECT pipeline.set_retention('events', raw => '2 days', dead_letters => '2 days', batches => '2 days')" >/dev/null
    ret_psql -f - < "$here/retention.sql"

    echo "   $RETENTION_DAYS simulated days from 2026-06-01, $n events a day in $batch-line NDJSON batches; retention 2 days"
    printf '   %4s %-10s %10s %9s %8s %8s %8s %6s  %s\n' day date "events/s" "total MB" "raw MB" "ids MB" "other MB" parts "dropped"
    for d in $(seq "$RETENTION_DAYS"); do
        out=$(ret_psql -At -F' ' -c "CALL retention.ingest_day($d, $n, $batch)")
        read -r accepted secs <<< "$out"
        as_of="retention.day_start($((d + 1))) + interval '5 minutes'"
        ret_psql -c "SELECT pipeline.run_hot()" -c "SELECT count(*) FROM pipeline.close_days($as_of)" >/dev/null
        # a day's drop waits at most 100 ms for its locks (an autovacuum of
        # the partition holds one): then maintain() skips the source, and
        # the next run drops it; here the next run comes a second later
        dropped=
        for try in 1 2 3 4 5 6; do
            out=$(ret_psql -At -F'|' -c "SELECT coalesce(string_agg(object, ' ' ORDER BY object) FILTER (WHERE action = 'dropped'), ''),
                                               count(*) FILTER (WHERE action = 'skipped')
                                          FROM pipeline.maintain($as_of)")
            dropped="$dropped ${out%|*}"
            [ "${out##*|}" = 0 ] && break
            if [ "$try" = 6 ]; then
                echo "retention benchmark: maintain() skipped the busy source 6 times on day $d" >&2
                return 1
            fi
            echo "   (day $d: maintain() skipped the busy source; again in 1 s)"
            sleep 1
        done
        dropped=$(echo $dropped)
        ret_psql -c "VACUUM pipeline.events_ids, pipeline.batch_log, pipeline.dead_letters" -c "CHECKPOINT"
        if [ -n "$dropped" ]; then
            probe=$(ret_psql -At -c "SELECT (raw_dropped_through - date '2026-06-01') + 1 FROM pipeline.retention WHERE source = 'events'")
            ret_psql -c "SELECT retention.probe_dropped_day($probe)" >/dev/null
        fi
        out=$(ret_psql -At -F' ' -c "SELECT retention.record_frozen()" \
                -c "SELECT raw_bytes, ids_bytes, log_bytes, metric_bytes, total_bytes, partitions FROM retention.sizes()" | tail -n 1)
        read -r raw ids logs metric total parts <<< "$out"
        ret_psql -c "INSERT INTO retention.sizes_by_day VALUES ($d, $raw, $ids, $logs, $metric, $total, $parts)"
        printf '   %4d %-10s %10.0f %9.1f %8.1f %8.1f %8.2f %6d  %s\n' "$d" "$(date -u -d "2026-06-01 + $((d - 1)) days" +%F)" \
            "$(awk "BEGIN{print $accepted / $secs}")" "$(awk "BEGIN{print $total / 1048576}")" \
            "$(awk "BEGIN{print $raw / 1048576}")" "$(awk "BEGIN{print $ids / 1048576}")" \
            "$(awk "BEGIN{print ($logs + $metric) / 1048576}")" "$parts" "${dropped//pipeline./}"
    done

    # day 10 freezes too; then every day is checked
    ret_psql -c "SELECT count(*) FROM pipeline.close_days(retention.day_start($((RETENTION_DAYS + 2))) + interval '5 minutes')" \
             -c "SELECT retention.record_frozen()" \
             -c "SELECT retention.check($RETENTION_DAYS)" >/dev/null

    rate_early=$(ret_rate 1 3)
    rate_late=$(ret_rate $((RETENTION_DAYS - 2)) "$RETENTION_DAYS")
    size3=$(ret_psql -At -c "SELECT total_bytes / 1048576.0 FROM retention.sizes_by_day WHERE d = 3")
    size10=$(ret_psql -At -c "SELECT total_bytes / 1048576.0 FROM retention.sizes_by_day WHERE d = $RETENTION_DAYS")
    ratio=$(awk "BEGIN{print $size10 / $size3}")
    printf '   ingest days %d-%d: %.0f ev/s, days 1-3: %.0f ev/s (ratio %.2f); total size day %d: %.1f MB, day 3: %.1f MB (ratio %.2f); %d raw partitions kept\n' \
        $((RETENTION_DAYS - 2)) "$RETENTION_DAYS" "$rate_late" "$rate_early" "$(awk "BEGIN{print $rate_late / $rate_early}")" \
        "$RETENTION_DAYS" "$size10" "$size3" "$ratio" "$parts"
    if awk "BEGIN{exit !($ratio > 2)}"; then
        echo "retention benchmark: total size at day $RETENTION_DAYS is $ratio x the size at day 3 (more than 2)" >&2
        return 1
    fi

    # receipts and dead letters go by the real clock: 2 days ahead of it,
    # none of the source's is left
    out=$(ret_psql -At -F' ' -c "SELECT pipeline.run_hot()" \
            -c "SELECT count(*) FROM pipeline.maintain(now() + interval '2 days 1 minute')" \
            -c "SELECT (SELECT count(*) FROM pipeline.batch_log WHERE source = 'events'),
                       (SELECT count(*) FROM pipeline.dead_letters WHERE source = 'events')" | tail -n 1)
    if [ "$out" != "0 0" ]; then
        echo "retention benchmark: receipts and dead letters left after maintain() 2 days ahead: $out" >&2
        return 1
    fi

    bench_report "retention: ingest rate, days 8-10 vs 1-3" "$rate_late" "ev/s" "$rate_early" "ev/s, days 1-3"
    bench_report "retention: total size, day 10 vs day 3" "$size10" "MB" "$size3" "MB, day 3 (target <=1.1)"
    bench_report "retention: raw partitions kept (raw 2 days)" "$parts" "partitions" 2 "expected (2-3)"
    ret_psql -c "ALTER SYSTEM RESET pipeline.enabled" -c "SELECT pg_reload_conf()" >/dev/null
}
