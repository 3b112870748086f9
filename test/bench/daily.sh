# test/bench/daily.sh: the daily-layer benchmark, sourced by test/bench/run.sh
# (which provides bench_psql, bench_report, $work, $SMOKE).  Its own
# database `daily`; objects and timed procedures: daily.sql.
#
# A source `orders` (order_id bigint, event_time timestamptz, user_id text
# skewed, platform text, type text, amount numeric(12,2); day_timezone UTC,
# freeze_after 24 hours) and one day of it, 2026-01-15, of $n events (10M;
# PIPELINE_BENCH_DAILY_EVENTS overrides), 16 dimension groups.
# pipeline.enabled = off for the whole benchmark (reset afterwards): the
# day is outside hot retention anyway, and no worker runs meanwhile.
#
# 0. Load: the day as CSV (server-side file), COPY into pipeline.orders_load
#    (the bulk path: checks, dedup, one receipt), against COPY of the same
#    file into a plain table with PRIMARY KEY (order_id).  VACUUM ANALYZE
#    afterwards (what autovacuum has done long before a day freezes).
# 1. Freeze: metric `sales`, dimensions '{platform, type}', measures
#    'count(*) AS orders, sum(amount) AS revenue, avg(amount) AS avg_amount,
#    count(DISTINCT user_id) AS buyers', created after the load.  Timed:
#    SELECT * FROM pipeline.close_days('2026-01-17 00:00+00'), which freezes
#    the day (the aggregate, the day_closures row, the digest), against the
#    hand-written INSERT INTO <plain table> SELECT day, platform, type,
#    count(*), sum(amount), avg(amount), sum(amount), count(amount),
#    count(DISTINCT user_id) FROM <the same raw day> GROUP BY platform, type
#    (the daily table's columns: avg is kept with its sum and count).  The
#    baseline runs once untimed to warm the cache, then baseline and freeze
#    alternate, each after a CHECKPOINT, $repeat times (PIPELINE_BENCH_REPEAT,
#    3; medians): a day freezes once per metric, so each repetition freezes
#    it for a new identical metric (sales_r2, sales_r3, dropped afterwards;
#    that close_days also finds nothing to correct for the earlier ones).
#    Target: ratio <= 1.2.  Checked: the frozen rows equal the baseline's.
# 2. Corrections: $late late events for the frozen day (new ids), one
#    pipeline.ingest() of an NDJSON document, then the close_days that
#    writes their corrections, timed after a CHECKPOINT.  Baseline, for
#    context: the same late rows in a plain table (daily.late_events),
#    INSERT ... SELECT ... GROUP BY of them into a plain table.  Target:
#    <= 50 ms.  For `sales`: once, the first correction of the day, which
#    scans the day for its distinct measure and queues the value index of
#    the day partition's user_id; a producer ingests one-event batches into
#    the day every 20 ms from before it until the index builder has built
#    that index (daily.probe_ingest: lock_timeout = 100ms on each, the
#    target; the slowest ingest against the median; how long the build
#    took).  Then $repeat times
#    (median) the later corrections, which look the new values up in that
#    index; and for `sales_nd` (the same without the distinct measure; see
#    4; $repeat times, median).
#    Checked: metrics.<metric>_restated equals the exact aggregates of raw.
# 3. restate_day of `sales` (recompute from raw, absorb the corrections,
#    keep the history) against the baseline of 1 over the same rows,
#    alternately, each after a CHECKPOINT, $repeat times (medians; the
#    later ones have no corrections left to absorb).  Checked as 2.
# 4. `sales` is dropped (so that close_days corrects only the next metric)
#    and `sales_nd` created: its freeze against the baseline without the
#    distinct measure (as 1), then its corrections (as 2).
# Full size: about 6 minutes on a quiet 2-core machine (CSV and the two
# loads about 2).  --smoke: 20,000 events, 2 repetitions, seconds.

daily_psql() { bench_psql -d daily "$@"; }

# the measures of both metrics; `sales` adds count(DISTINCT user_id) AS buyers
DAILY_MEASURES="count(*) AS orders, sum(amount) AS revenue, avg(amount) AS avg_amount"

# daily_settings SQL...: ALTER SYSTEM statements, then reload
daily_settings() {
    local s args=()
    for s in "$@"; do args+=(-c "$s"); done
    daily_psql "${args[@]}" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5      # the workers take it at their next latch wake-up
}

# median of the arguments
daily_median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# 10000000 -> 10M, 20000 -> 20k
daily_size() {
    if [ $(($1 % 1000000)) = 0 ]; then echo "$(($1 / 1000000))M"
    elif [ $(($1 % 1000)) = 0 ]; then echo "$(($1 / 1000))k"
    else echo "$1"; fi
}

# daily_timed_baseline SRC WITH_DISTINCT: one timed baseline after a
# CHECKPOINT; sets DAILY_MS.  Over the whole day it must find the 16
# groups (a 1,000-event late batch may miss a rare one: at least 1).
daily_timed_baseline() {
    local out groups want=16
    out=$(daily_psql -At -F' ' -c "CHECKPOINT" -c "CALL daily.timed_baseline('$1', $2)")
    read -r DAILY_MS groups <<< "$out"
    [ "$1" = pipeline.orders_raw ] || want=1
    if [ "$groups" -lt "$want" ] || [ "$groups" -gt 16 ]; then
        echo "daily benchmark: the baseline over $1 found $groups groups, expected $want to 16" >&2
        return 1
    fi
}

# daily_timed_close EXPECTED: one timed close_days after a CHECKPOINT; sets DAILY_MS
daily_timed_close() {
    DAILY_MS=$(daily_psql -At -c "CHECKPOINT" -c "CALL daily.timed_close('$1')")
}

# daily_freeze STEP METRIC WITH_DISTINCT MEASURES TIMES: one warm-up
# baseline, then TIMES times: a metric with these measures (METRIC the
# first time, METRIC_r2, METRIC_r3, ... then), a timed baseline, a timed
# close_days freezing the day for that metric (and finding nothing to
# correct for the ones before it), a check.  The METRIC_r<i> are dropped
# afterwards.  Sets DAILY_FREEZE_MS and DAILY_BASE_MS (medians).
daily_freeze() {
    local step=$1 metric=$2 with_distinct=$3 measures=$4 times=$5 rep name all_f=() all_b=()
    daily_psql -c "CALL daily.timed_baseline('pipeline.orders_raw', $with_distinct)" >/dev/null   # warm-up
    for rep in $(seq "$times"); do
        name=$metric
        [ "$rep" = 1 ] || name=${metric}_r$rep
        daily_psql -c "SELECT pipeline.create_metric('$name', 'orders', dimensions => '{platform, type}',
                       measures => '$measures')" >/dev/null
        daily_timed_baseline pipeline.orders_raw "$with_distinct"
        all_b+=("$DAILY_MS")
        daily_timed_close "$name:frozen"
        all_f+=("$DAILY_MS")
        daily_psql -c "SELECT daily.check('$name', 'daily', $with_distinct)" >/dev/null
        printf '   %s freeze %s: close_days %.0f ms, baseline INSERT ... GROUP BY %.0f ms (ratio %.2f)\n' \
            "$step" "$name" "$DAILY_MS" "${all_b[-1]}" "$(awk "BEGIN{print $DAILY_MS / ${all_b[-1]}}")"
    done
    for rep in $(seq 2 "$times"); do
        daily_psql -c "SELECT pipeline.drop_metric('${metric}_r$rep')" >/dev/null
    done
    DAILY_FREEZE_MS=$(daily_median "${all_f[@]}")
    DAILY_BASE_MS=$(daily_median "${all_b[@]}")
}

# daily_corrections STEP METRIC WITH_DISTINCT TIMES [nocheck]: TIMES times:
# a late batch, timed close_days, timed baseline; then the restated check
# (unless nocheck: events still arriving); sets DAILY_CORR_MS and
# DAILY_BASE_MS (medians)
daily_corrections() {
    local step=$1 metric=$2 with_distinct=$3 times=$4 check=${5:-check} rep batch c b all_c=() all_b=()
    for rep in $(seq "$times"); do
        DAILY_NEXT_ID=$((DAILY_NEXT_ID + late))
        batch=$(daily_psql -At -c "SELECT daily.ingest_late($DAILY_NEXT_ID, $late)")
        daily_timed_close "$metric:corrected"
        c=$DAILY_MS
        daily_timed_baseline daily.late_events "$with_distinct"
        b=$DAILY_MS
        all_c+=("$c") all_b+=("$b")
        printf '   %s %d late events (batch %s), %s: close_days %.1f ms, baseline INSERT ... GROUP BY %.1f ms\n' \
            "$step" "$late" "$batch" "$metric" "$c" "$b"
    done
    [ "$check" = nocheck ] || daily_psql -c "SELECT daily.check('$metric', 'restated', $with_distinct)" >/dev/null
    DAILY_CORR_MS=$(daily_median "${all_c[@]}")
    DAILY_BASE_MS=$(daily_median "${all_b[@]}")
}

bench_daily() {
    local n late repeat size csv out copy_s load_s rep all_r all_b probe worst p99 median worst_at probes ready_s
    if [ "$SMOKE" = 1 ]; then
        n=${PIPELINE_BENCH_DAILY_EVENTS:-20000} late=1000 repeat=2
    else
        n=${PIPELINE_BENCH_DAILY_EVENTS:-10000000} late=1000 repeat=${PIPELINE_BENCH_REPEAT:-3}
    fi
    size=$(daily_size "$n")
    csv=$work/daily_day.csv
    DAILY_NEXT_ID=$((n + 1000000000))     # late ids: past the day's

    bench_psql -d postgres -c "CREATE DATABASE daily"
    daily_psql -c "CREATE EXTENSION pipeline CASCADE"
    daily_psql -f - < "$here/daily.sql"
    daily_settings "ALTER SYSTEM SET pipeline.enabled = off"
    daily_psql -c "SELECT pipeline.create_source('orders',
        \$\$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
          platform text, type text, amount numeric(12,2) CHECK (amount >= 0)\$\$,
        event_id => 'order_id', allowed_lateness => '2 hours', freeze_after => '24 hours',
        day_timezone => 'UTC')" >/dev/null

    # --- 0. load ---
    daily_psql -c "SELECT daily.write_csv(1, $n, '$csv')" >/dev/null
    copy_s=$(daily_psql -At -c "CHECKPOINT" -c "CALL daily.timed_copy('$csv', $n)")
    daily_psql -c "DROP TABLE daily.orders_copy" >/dev/null
    load_s=$(daily_psql -At -c "CHECKPOINT" -c "CALL daily.timed_load('$csv', $n)")
    rm -f "$csv"
    daily_psql -c "VACUUM ANALYZE" >/dev/null
    printf '   0. load %d events of 2026-01-15: COPY into pipeline.orders_load %.1f s (%.0f ev/s), COPY into a plain table with PK %.1f s\n' \
        "$n" "$load_s" "$(awk "BEGIN{print $n / $load_s}")" "$copy_s"
    bench_report "daily: load a $size-event day, COPY orders_load" \
        "$(awk "BEGIN{print $n / $load_s}")" "ev/s" "$(awk "BEGIN{print $n / $copy_s}")" "rows/s, COPY+PK"

    # --- 1. freeze, with count(DISTINCT) ---
    daily_freeze 1. sales true "$DAILY_MEASURES, count(DISTINCT user_id) AS buyers" "$repeat"
    bench_report "daily: freeze a $size-event day (distinct)" "$DAILY_FREEZE_MS" "ms" "$DAILY_BASE_MS" "ms, INSERT..GROUP BY"

    # --- 2. corrections, with count(DISTINCT): the first queues the value
    # index, and a producer keeps ingesting into the day until it is built ---
    daily_psql -At -F' ' -c "CALL daily.probe_ingest($((DAILY_NEXT_ID + 500000000)), 900)" > "$work/daily_probe" &
    probe=$!
    sleep 1
    daily_corrections 2. sales true 1 nocheck     # (checked by the next ones)
    bench_report "daily: first correction (distinct), scans the day" "$DAILY_CORR_MS" "ms" "$DAILY_BASE_MS" "ms, INSERT..GROUP BY"
    wait "$probe"
    read -r worst p99 median worst_at probes ready_s < "$work/daily_probe"
    if [ -z "$ready_s" ]; then
        echo "daily benchmark: the value index was not built within 900 s (or an ingest waited 100 ms for a lock)" >&2
        return 1
    fi
    printf '   2. meanwhile %d one-event ingests into the day, none waiting 100 ms for a lock: slowest %.1f ms (%.1f s in), p99 %.1f ms, median %.1f ms; value index valid after %.1f s\n' \
        "$probes" "$worst" "$worst_at" "$p99" "$median" "$ready_s"
    bench_report "daily: slowest ingest into the day meanwhile" "$worst" "ms" "$median" "ms, median ingest"
    daily_corrections 2. sales true "$repeat"
    bench_report "daily: correct $late late events (distinct)" "$DAILY_CORR_MS" "ms" "$DAILY_BASE_MS" "ms, INSERT..GROUP BY"

    # --- 3. restate_day, baseline and restatement alternately ---
    all_r=() all_b=()
    for rep in $(seq "$repeat"); do
        daily_timed_baseline pipeline.orders_raw true
        all_b+=("$DAILY_MS")
        all_r+=("$(daily_psql -At -c "CHECKPOINT" -c "CALL daily.timed_restate('sales')")")
        daily_psql -c "SELECT daily.check('sales', 'daily', true)" -c "SELECT daily.check('sales', 'restated', true)" >/dev/null
        printf '   3. restate_day sales (version %d): %.0f ms, baseline INSERT ... GROUP BY %.0f ms\n' \
            "$((rep + 1))" "${all_r[-1]}" "${all_b[-1]}"
    done
    bench_report "daily: restate_day, $size-event day (distinct)" \
        "$(daily_median "${all_r[@]}")" "ms" "$(daily_median "${all_b[@]}")" "ms, INSERT..GROUP BY"

    # --- 4. without count(DISTINCT) ---
    daily_psql -c "SELECT pipeline.drop_metric('sales')" >/dev/null
    daily_freeze 4. sales_nd false "$DAILY_MEASURES" "$repeat"
    bench_report "daily: freeze a $size-event day (no distinct)" "$DAILY_FREEZE_MS" "ms" "$DAILY_BASE_MS" "ms, INSERT..GROUP BY"
    daily_corrections 4. sales_nd false "$repeat"
    bench_report "daily: correct $late late events (no distinct)" "$DAILY_CORR_MS" "ms" "$DAILY_BASE_MS" "ms, INSERT..GROUP BY"

    daily_settings "ALTER SYSTEM RESET pipeline.enabled"
}
