# test/bench/hot.sh: the hot-path benchmark, sourced by test/bench/run.sh
# (which provides bench_psql, bench_report, as_cluster_user, $PGBIN, $work,
# $port, $here, $SMOKE).  Its own database `hot`, a source `orders` (the
# ingest benchmark's contract) and a metric `sales` on it:
#     dimensions '{platform}', bucket 1 minute,
#     measures 'count(*) AS orders, sum(amount) AS revenue, avg(amount) AS avg_amount'
# Payload templates and the server-side loops: hot.sql.
#
# 1. Visibility latency under sustained ingest.  pipeline.hot_interval =
#    100ms for this part (ALTER SYSTEM + reload, reset afterwards).  pgbench,
#    4 clients, 60 s per run: each transaction ingests one 500-event NDJSON
#    batch timed "now", commits, then records clock_timestamp() as the
#    batch's commit time (hot.commits, unlogged: that costs no WAL flush).
#    hot.monitor polls the metric's checkpoint (fold_snapshot) every 10 ms
#    and records when each batch first becomes visible in it; the fold's
#    hot rows commit with the checkpoint, so that is when the batch is in
#    metrics.sales_live.  Three runs, each on a fresh source:
#      no metric, unthrottled       the baseline ingest rate
#      metric, unthrottled          ingest rate with the metric kept (target
#                                   >= 0.9 of the baseline) and latency at
#                                   saturation
#      metric, 50,000 ev/s          (pgbench -R) latency at the target rate:
#                                   p50 and p99, target p99 <= 2 s (the
#                                   baseline column shows that target)
# 2. Fold cost at two raw sizes, pipeline.enabled = off (only explicit
#    run_hot() calls fold).  The metric on a fresh source, raw loaded with
#    100k-event NDJSON batches spread over the last 3 days.
#      raw 0 -> 1M, a run_hot() after each batch (as the worker would:
#        autovacuum alone keeps the raw tables), mean ms per fold;
#      then 3 times: VACUUM, a batch of 50k events timed "now", one timed
#        run_hot(); median;
#      raw grows to 19M (a run_hot() every 10 batches), then 19M -> 20M with
#        a run_hot() after each batch, and the same two figures again.
#    Reported: both at 20M against 1M (target ratio <= 1.1).  The fold finds
#    a batch's rows through the BRIN index on _pl_batch; an unsummarized
#    page range is read whole.  run_hot() summarizes the ranges written
#    since it last ran (as the worker's round does), so the per-batch
#    figure should not grow with the raw table; autovacuum's own
#    summarizing lags far behind on a large partition.
# 3. Late events, on the 20M-row raw: VACUUM, 50k events spread over the
#    last 3 days ingested, one run_hot() timed (until they are in
#    metrics.sales_live; target <= 0.25 s) against the hand-written way: the
#    same rows in a plain table upserted into a plain aggregate table with
#    the metric's key (INSERT ... SELECT date_bin() ... GROUP BY ... ON
#    CONFLICT DO UPDATE), seeded with the hot table's rows.  3 times,
#    median; afterwards the live view and the plain table must agree.
#
# Full: about 6 minutes on 2 cores (the 20M-row load about 1.5 of them).
# PIPELINE_BENCH_HOT_SECONDS, PIPELINE_BENCH_HOT_LARGE, PIPELINE_BENCH_REPEAT
# override the run length, the large raw size and the repeat count.
# --smoke: 1 s runs of 100-event batches (2 clients, 10,000 ev/s for the
# throttled one), raw 20k vs 200k in 5k-event batches, 2k-event folds and
# late batches, each timed once.

HOT_SOURCE_COLUMNS="order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, amount numeric(12,2) CHECK (amount >= 0), currency text NOT NULL DEFAULT 'EUR', platform text"
HOT_METRIC_SQL="SELECT pipeline.create_metric('sales', 'orders', dimensions => '{platform}', measures => 'count(*) AS orders, sum(amount) AS revenue, avg(amount) AS avg_amount', bucket => '1 minute')"

HOT_RUN=0
hot_psql() { bench_psql -d hot "$@"; }

# a fresh `orders` (dropping its metric), VACUUM ANALYZE, CHECKPOINT
hot_fresh_source() {
    hot_psql -c "SELECT pipeline.drop_source('orders', cascade => true) FROM pipeline.sources WHERE source = 'orders'" \
             -c "SELECT pipeline.create_source('orders', \$\$$HOT_SOURCE_COLUMNS\$\$, event_id => 'order_id')" \
             -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
}

hot_settings() {   # hot_settings SQL...: ALTER SYSTEM statements, then reload
    local s args=()
    for s in "$@"; do args+=(-c "$s"); done
    hot_psql "${args[@]}" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5      # the workers take it at their next latch wake-up
}


# hot_sustained LABEL WITH_METRIC [TPS]: one pgbench run on a fresh source,
# unthrottled or at TPS batches/s; sets HOT_RATE (events/s) and, with the
# metric, HOT_P50 and HOT_P99 (ms)
hot_sustained() {
    local label=$1 with_metric=$2 tps=${3:-} first_id mon= out batches events max throttle=()
    HOT_RUN=$((HOT_RUN + 1))
    hot_fresh_source
    if [ "$with_metric" = 1 ]; then hot_psql -c "$HOT_METRIC_SQL" >/dev/null; fi
    first_id=$(hot_psql -At -c "TRUNCATE hot.run_state, hot.commits, hot.seen" -c "SELECT coalesce(max(batch_id), 0) FROM pipeline.batch_log")
    if [ "$with_metric" = 1 ]; then
        hot_psql -c "CALL hot.monitor('sales', $first_id, '10 ms', '60 s')" &
        mon=$!
    fi
    if [ -n "$tps" ]; then throttle=(-R "$tps"); fi
    if ! as_cluster_user $PGBIN/pgbench -n -h "$work" -p "$port" -M prepared "${throttle[@]}" \
            -c "$HOT_CLIENTS" -j "$HOT_CLIENTS" -T "$HOT_SECONDS" \
            -f "$work/hot_ingest.pgbench" hot > "$work/pgbench_$HOT_RUN.out" 2>&1; then
        cat "$work/pgbench_$HOT_RUN.out" >&2
        return 1
    fi
    hot_psql -c "INSERT INTO hot.run_state VALUES (true)"
    if [ -n "$mon" ]; then wait "$mon"; fi
    out=$(hot_psql -At -F' ' -c "SELECT * FROM hot.sustained_result($first_id)")
    read -r batches events HOT_RATE HOT_P50 HOT_P99 max <<< "$out"
    printf '      %-22s %6d batches, %9d events, %7.0f ev/s' "$label" "$batches" "$events" "$HOT_RATE"
    if [ "$with_metric" = 1 ]; then
        printf ', visible after p50 %.0f ms, p99 %.0f ms, max %.0f ms' "$HOT_P50" "$HOT_P99" "$max"
    fi
    echo
}

# hot_timed_folds TEMPLATE EVENTS LABEL: $repeat times VACUUM, one batch of
# TEMPLATE, one timed run_hot(); sets HOT_MS to the median
hot_timed_folds() {
    local template=$1 n=$2 label=$3 rep ms all=()
    for rep in $(seq "$repeat"); do
        hot_psql -c "VACUUM" -c "SELECT hot.ingest_checked('$template')" >/dev/null
        ms=$(hot_psql -At -c "CALL hot.timed_fold($n)")
        all+=("$ms")
    done
    HOT_MS=$(median "${all[@]}")
    printf '      %s: %s ms (median %.1f)\n' "$label" "$(printf '%.1f ' "${all[@]}" | sed 's/ $//')" "$HOT_MS"
}

# mean ms per run_hot() of hot.fold_log, then empties it
hot_fold_log_mean() {
    hot_psql -At -c "SELECT avg(ms) FROM hot.fold_log" -c "TRUNCATE hot.fold_log"
}

bench_hot() {
    local bulk_batch small large fold_n late_n repeat rep target
    local out events ingest_s fold_s base_rate max_rate max_p99 small_ms large_ms small_run large_run
    local late_ms=() up_ms=() ms up
    if [ "$SMOKE" = 1 ]; then
        HOT_SECONDS=1 HOT_CLIENTS=2 HOT_LIVE_BATCH=100 target=10000
        bulk_batch=5000 small=20000 large=200000 fold_n=2000 late_n=2000 repeat=1
    else
        HOT_SECONDS=${PIPELINE_BENCH_HOT_SECONDS:-60} HOT_CLIENTS=4 HOT_LIVE_BATCH=500 target=50000
        bulk_batch=100000 small=1000000 large=${PIPELINE_BENCH_HOT_LARGE:-20000000}
        fold_n=50000 late_n=50000 repeat=${PIPELINE_BENCH_REPEAT:-3}
    fi

    bench_psql -d postgres -c "CREATE DATABASE hot"
    hot_psql -c "CREATE EXTENSION pipeline CASCADE"
    hot_psql -f - < "$here/hot.sql"
    hot_psql -c "SELECT hot.make_template('live', $HOT_LIVE_BATCH, 'now')" \
             -c "SELECT hot.make_template('bulk', $bulk_batch, 'spread')" \
             -c "SELECT hot.make_template('fresh', $fold_n, 'now')" \
             -c "SELECT hot.make_template('late', $late_n, 'spread')" >/dev/null
    cat > "$work/hot_ingest.pgbench" <<'PGB'
BEGIN;
SELECT hot.ingest_checked('live') AS batch_id \gset
COMMIT;
INSERT INTO hot.commits VALUES (:batch_id, clock_timestamp());
PGB

    # --- 1. visibility latency, sustained ingest ---
    echo "   1. sustained ingest, pgbench: $HOT_CLIENTS clients x ${HOT_SECONDS}s, $HOT_LIVE_BATCH-event NDJSON batches; pipeline.hot_interval = 100ms"
    hot_settings "ALTER SYSTEM SET pipeline.hot_interval = '100ms'" "ALTER SYSTEM SET pipeline.enabled = on"
    hot_sustained "no metric, max rate" 0
    base_rate=$HOT_RATE
    hot_sustained "metric, max rate" 1
    max_rate=$HOT_RATE max_p99=$HOT_P99
    hot_sustained "metric, $target ev/s" 1 $((target / HOT_LIVE_BATCH))
    bench_report "hot: ingest rate, metric kept, max rate" "$max_rate" "ev/s" "$base_rate" "ev/s, no metric"
    bench_report "hot: commit to _live p50, $(human $target) ev/s" "$HOT_P50" "ms" 2000 "ms (target p99)"
    bench_report "hot: commit to _live p99, $(human $target) ev/s" "$HOT_P99" "ms" 2000 "ms (target p99)"
    bench_report "hot: commit to _live p99, max rate" "$max_p99" "ms" 2000 "ms (target p99)"

    # --- 2. fold cost at two raw sizes ---
    echo "   2. fold cost, pipeline.enabled = off (explicit run_hot() only)"
    hot_settings "ALTER SYSTEM RESET pipeline.hot_interval" "ALTER SYSTEM SET pipeline.enabled = off"
    hot_fresh_source
    hot_psql -c "$HOT_METRIC_SQL" -c "TRUNCATE hot.fold_log" >/dev/null
    out=$(hot_psql -At -F' ' -c "CALL hot.load('bulk', $((small / bulk_batch)), 1)")
    read -r events ingest_s fold_s <<< "$out"
    small_run=$(hot_fold_log_mean)
    printf '      raw 0 -> %d: ingest %.1f s (%.0f ev/s); run_hot() after each %d-event batch: %.0f ms on average\n' \
        "$small" "$ingest_s" "$(awk "BEGIN{print $events / $ingest_s}")" "$bulk_batch" "$small_run"
    hot_timed_folds fresh "$fold_n" "raw $small, VACUUM, fold of $fold_n new events"
    small_ms=$HOT_MS
    # grow, folding every 10 batches, then the last 10 batches one fold each
    out=$(hot_psql -At -F' ' -c "CALL hot.load('bulk', $(((large - 2 * small) / bulk_batch)), 10)")
    read -r events ingest_s fold_s <<< "$out"
    printf '      raw -> %d: ingest %.1f s (%.0f ev/s), run_hot() every 10 batches %.1f s in all\n' \
        "$((large - small))" "$ingest_s" "$(awk "BEGIN{print $events / $ingest_s}")" "$fold_s"
    hot_psql -c "TRUNCATE hot.fold_log"
    out=$(hot_psql -At -F' ' -c "CALL hot.load('bulk', $((small / bulk_batch)), 1)")
    read -r events ingest_s fold_s <<< "$out"
    large_run=$(hot_fold_log_mean)
    printf '      raw -> %d: run_hot() after each %d-event batch: %.0f ms on average\n' "$large" "$bulk_batch" "$large_run"
    hot_timed_folds fresh "$fold_n" "raw $large, VACUUM, fold of $fold_n new events"
    large_ms=$HOT_MS
    bench_report "hot: fold $(human $fold_n) new events, raw $(human $large), vacuumed" "$large_ms" "ms" "$small_ms" "ms, raw $(human $small)"
    bench_report "hot: fold per $(human $bulk_batch) batch, raw ->$(human $large), autovacuum" "$large_run" "ms" "$small_run" "ms, raw ->$(human $small)"

    # --- 3. late events ---
    hot_psql -c "INSERT INTO hot.agg SELECT * FROM pipeline.sales_hot" >/dev/null
    for rep in $(seq "$repeat"); do
        hot_psql -c "VACUUM" -c "SELECT hot.ingest_checked('late')" >/dev/null
        if [ "$rep" = 1 ]; then
            hot_psql -c "INSERT INTO hot.late_events SELECT event_time, platform, amount FROM pipeline.orders_raw WHERE _pl_batch = (SELECT max(batch_id) FROM pipeline.batch_log)" \
                     -c "VACUUM ANALYZE hot.late_events, hot.agg" >/dev/null
        fi
        ms=$(hot_psql -At -c "CALL hot.timed_fold($late_n)")
        up=$(hot_psql -At -c "CALL hot.timed_upsert()")
        late_ms+=("$ms") up_ms+=("$up")
        printf '   3. %d late events over 3 days: run_hot() %.1f ms, plain upsert %.1f ms\n' "$late_n" "$ms" "$up"
    done
    out=$(hot_psql -At -c "SELECT count(*) FROM (
            (SELECT bucket, platform, orders, revenue, avg_amount FROM metrics.sales_live
             EXCEPT ALL
             SELECT bucket, platform, orders, revenue, (avg_amount_sum / avg_amount_count)::numeric FROM hot.agg)
            UNION ALL
            (SELECT bucket, platform, orders, revenue, (avg_amount_sum / avg_amount_count)::numeric FROM hot.agg
             EXCEPT ALL
             SELECT bucket, platform, orders, revenue, avg_amount FROM metrics.sales_live)) AS d")
    if [ "$out" != 0 ]; then
        echo "hot benchmark: metrics.sales_live and the upserted table differ in $out rows" >&2
        return 1
    fi
    bench_report "hot: $(human $late_n) late events (3 days) to _live" "$(median "${late_ms[@]}")" "ms" \
        "$(median "${up_ms[@]}")" "ms, plain upsert"
    hot_settings "ALTER SYSTEM RESET pipeline.enabled"
}
