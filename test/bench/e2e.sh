# test/bench/e2e.sh: the end-to-end benchmark, sourced by test/bench/run.sh
# (which provides bench_psql, bench_report, as_cluster_user, $PGBIN, $work,
# $port, $here, $data, $SMOKE).  Its own database `e2e`; objects, payload
# templates, the monitor and the result queries: e2e.sql; client scripts:
# test/bench/pgbench/e2e_*.pgbench.
#
# The scenario: two sources and three metrics, 1-minute buckets.
#   app_events (event_id uuid, event_time, user_id, platform, type)
#     app_activity  by {platform, type}: count(*), count(DISTINCT user_id)
#   orders (order_id bigint, event_time, user_id, platform, amount)
#     sales         by {platform}: count(*), sum(amount), avg(amount)
#     big_orders    by {platform}, amount >= 100: count(*), max(amount),
#                   count(DISTINCT user_id)
# Users log-uniform over 10^6 (zipf-like).  Every batch: 5% of the events
# 1 minute to 6 hours late, 1% duplicates (ids re-sent from an earlier
# batch), 0.5% malformed (a bad value, a required field missing).
# History: 31 days of events before the run (bulk path, COPY into
# <source>_load), then close_days(): 29-30 frozen days for the finance
# query, 7 days in the hot tables.  Baseline: COPY of the same history
# rows into plain tables with the same PRIMARY KEY (rows/s, the median
# of three COPYs; WAL/row).
#
# A run: pgbench clients, each transaction one app_events batch (400
# events) and one orders batch (100), each committed on its own, then
# its commit time recorded (as in hot.sh):
#   - base: 4 clients at 10,000 ev/s (-R) for the whole run, with spikes:
#     every 20 s another 4 clients add 40,000 ev/s for 5 s (50,000 in all);
#     -L 1000: a request more than 1 s behind schedule is skipped (counted)
#     rather than sent late;
#   - dashboards: 8 clients, $E2E_DASH_RATE queries/s in all, scripts
#     (a) sales_live last 24 h GROUP BY bucket, platform; (b) sales_daily
#     last 30 days; and both against plain tables holding the same rows
#     (the baseline), picked at random; pgbench --log, service time
#     (latency minus schedule lag), p50 and p95 per script;
#   - the worker folds every pipeline.hot_interval; e2e.close_loop calls
#     close_days() (as_of now()) every 30 s;
#   - e2e.monitor polls each metric's fold_snapshot every 10 ms (commit to
#     _live: when every metric of the batch's source covers it) and every
#     second samples pipeline.status (backlog, lag), /proc/<pid>/status of
#     the worker and the ingest backends, and n_dead_tup; after the
#     clients stop it waits for the backlog to drain (limit $E2E_DRAIN s).
# Runs (full / --smoke):
#   load   120 s / 4 s    hot_interval 1s: rates per phase, latency, backlog,
#                         lag, WAL per event, dashboards
#   fast    50 s / 3 s    the same with hot_interval 200ms
#   peak   20 s steps / 2 s: 20k to 160k ev/s by 20k, then 200k
#                         (PIPELINE_BENCH_E2E_STEPS; 8 clients, no
#                         spikes; dashboards and close_days go on) until a
#                         step misses 90% of its rate, the lag exceeds 5 s
#                         or the backlog does not drain, twice in a row (a
#                         missed step runs once more: a 20k ev/s step the
#                         machine does at 100k fell 0.1% short once, when
#                         pgbench's clients got a tenth fewer batches out)
#   soak   600 s / 10 s   (PIPELINE_BENCH_SOAK_SECONDS) as load: memory of
#                         the worker and the ingest backends at half-time
#                         vs at the end (and at 0/25/50/75/100% of the
#                         run, printed), dead tuples vs the autovacuum
#                         threshold, ERROR/FATAL/PANIC lines in the server
#                         log during the benchmark (--smoke: any fails it),
#                         autovacuum tasks cancelled (logged as ERROR, but
#                         counted apart, with their tables) or skipped
# Dashboard latencies are also printed split by whether the query started
# during a spike (or the second after it).
# Full: about 18 minutes on 2 cores.  Smoke: rates and batches / 10, about
# 30 s.

E2E_APP_COLUMNS="event_id uuid NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, platform text NOT NULL, type text NOT NULL"
E2E_ORDER_COLUMNS="order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, platform text NOT NULL, amount numeric(12,2) NOT NULL CHECK (amount >= 0)"

e2e_psql() { bench_psql -d e2e "$@"; }

# e2e_pgbench APPLICATION_NAME ARGS...: pgbench on the e2e database
e2e_pgbench() {
    local app=$1; shift
    as_cluster_user env PGAPPNAME="$app" $PGBIN/pgbench -n -h "$work" -p "$port" -M prepared "$@" e2e
}

e2e_settings() {   # e2e_settings SQL...: ALTER SYSTEM statements, then reload
    local s args=()
    for s in "$@"; do args+=(-c "$s"); done
    e2e_psql "${args[@]}" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.5      # the workers take it at their next latch wake-up
}

e2e_calc() { awk "BEGIN { print $* }"; }

# transactions/s for an event rate
e2e_tps() { e2e_calc "$1 / $E2E_TX_EVENTS"; }

# skipped transactions in pgbench outputs
e2e_skipped() { { cat "$@" 2>/dev/null || true; } | awk '/number of transactions skipped/ { s += $5 } END { print s + 0 }'; }

# e2e_run RUN SECONDS BASE_RATE SPIKE_RATE CLIENTS: one run (see above);
# SPIKE_RATE 0: no spikes.  Fails if a client, the monitor or the close
# loop fails.
e2e_run() {
    local run=$1 secs=$2 base=$3 spike=$4 clients=$5 mon close dash ingest start rc=0 f
    e2e_psql -c "SELECT e2e.start_run('$run')" >/dev/null
    e2e_psql -c "CALL e2e.monitor('$run', '10 ms', '1 s', '$E2E_DRAIN s')" > "$work/monitor_$run.out" 2>&1 &
    mon=$!
    e2e_psql -c "CALL e2e.close_loop('$run', '$E2E_CLOSE_EVERY s')" > "$work/close_$run.out" 2>&1 &
    close=$!
    e2e_pgbench e2e_dash -c 8 -j 2 -R "$E2E_DASH_RATE" -T "$secs" --log --log-prefix="$work/dashlog_$run" \
        -f "$work/e2e_dash_live.pgbench" -f "$work/e2e_dash_daily.pgbench" \
        -f "$work/e2e_dash_live_plain.pgbench" -f "$work/e2e_dash_daily_plain.pgbench" \
        > "$work/dash_$run.out" 2>&1 &
    dash=$!
    e2e_pgbench e2e_ingest -c "$clients" -j 2 -R "$(e2e_tps "$base")" -L 1000 -T "$secs" \
        -f "$work/e2e_ingest.pgbench" > "$work/ingest_$run.out" 2>&1 &
    ingest=$!
    if [ "$spike" -gt "$base" ]; then
        start=$SECONDS
        : > "$work/spike_$run.out"
        while [ $((SECONDS - start + E2E_STEADY + E2E_SPIKE)) -le "$secs" ]; do
            sleep "$E2E_STEADY"
            e2e_psql -c "INSERT INTO e2e.phases VALUES ('$run', clock_timestamp())"
            e2e_pgbench e2e_spike -c 4 -j 2 -R "$(e2e_tps $((spike - base)))" -L 1000 -T "$E2E_SPIKE" \
                -f "$work/e2e_ingest.pgbench" >> "$work/spike_$run.out" 2>&1 || rc=1
            e2e_psql -c "UPDATE e2e.phases SET ended_at = clock_timestamp() WHERE run = '$run' AND ended_at IS NULL"
        done
    fi
    wait "$ingest" || rc=1
    wait "$dash" || rc=1
    e2e_psql -c "UPDATE e2e.runs SET ingest_ended_at = clock_timestamp() WHERE run = '$run'"
    wait "$mon" || rc=1
    wait "$close" || rc=1
    e2e_psql -c "UPDATE e2e.runs SET lsn_end = pg_current_wal_lsn() WHERE run = '$run'"
    for f in "$work/dashlog_$run".*; do
        [ -f "$f" ] || continue
        e2e_psql -c "COPY e2e.dash_raw FROM '$f' (FORMAT text, DELIMITER ' ')" \
                 -c "INSERT INTO e2e.dash_log SELECT '$run', * FROM e2e.dash_raw" -c "TRUNCATE e2e.dash_raw"
        rm -f "$f"
    done
    if [ $rc != 0 ]; then
        for f in ingest spike dash monitor close; do
            [ -s "$work/${f}_$run.out" ] && { echo "---- $f ($run)" >&2; tail -n 20 "$work/${f}_$run.out" >&2; }
        done
        echo "e2e benchmark: run $run failed" >&2
        return 1
    fi
    E2E_SKIPPED=$(e2e_skipped "$work/ingest_$run.out" "$work/spike_$run.out")
}

# e2e_result RUN: reads e2e.run_result into R_* and prints it
e2e_result() {
    local run=$1 out
    out=$(e2e_psql -At -F'|' -c "SELECT * FROM e2e.run_result('$run')")
    IFS='|' read -r R_BATCHES R_RECEIVED R_ACCEPTED R_DUPS R_REJECTED R_BASE R_SPIKE R_TOTAL \
        R_P50 R_P99 R_MAX R_BL_MIN R_BL_MED R_BL_MAX R_LAG_MIN R_LAG_MED R_LAG_MAX R_FOLD_MED R_FOLD_MAX \
        R_DRAIN R_DRAINED R_WAL R_CLOSE_N R_CLOSE_MED R_CLOSE_MAX <<< "$out"
    R_SPIKE=${R_SPIKE:-0}
    printf '      %d batches, %d events received: %.2f%% duplicates, %.2f%% rejected; %d requests skipped (> 1 s behind)\n' \
        "$R_BATCHES" "$R_RECEIVED" "$(e2e_calc "100 * $R_DUPS / $R_RECEIVED")" \
        "$(e2e_calc "100 * $R_REJECTED / $R_RECEIVED")" "$E2E_SKIPPED"
    printf '      rate: %.0f ev/s overall, %.0f ev/s outside spikes, %.0f ev/s in spikes\n' "$R_TOTAL" "$R_BASE" "$R_SPIKE"
    printf '      commit to _live: p50 %.0f ms, p99 %.0f ms, max %.0f ms\n' "$R_P50" "$R_P99" "$R_MAX"
    printf '      backlog (events) min/median/max %d / %.0f / %d; lag (s) %.1f / %.1f / %.1f; fold ms (3 metrics) median %.0f, max %.0f\n' \
        "$R_BL_MIN" "$R_BL_MED" "$R_BL_MAX" "$R_LAG_MIN" "$R_LAG_MED" "$R_LAG_MAX" "$R_FOLD_MED" "$R_FOLD_MAX"
    printf '      after the clients stopped: %s in %.1f s; WAL %.0f bytes per accepted event; close_days %d calls, median %.0f ms, max %.0f ms\n' \
        "$([ "$R_DRAINED" = t ] && echo "drained" || echo "NOT drained")" "$R_DRAIN" "$R_WAL" \
        "$R_CLOSE_N" "$R_CLOSE_MED" "$R_CLOSE_MAX"
}

# e2e_mem RUN WARM_SECONDS: prints memory; sets M_<kind>_START/END/PEAK (MB)
e2e_mem() {
    local kind n s e p
    while IFS='|' read -r kind n s e p; do
        printf '      memory %-10s %d process(es): private RSS %.1f MB after %ss, %.1f MB at the end; private peak %.1f MB\n' \
            "$kind" "$n" "$s" "$2" "$e" "$p"
        kind=${kind#e2e_}
        printf -v "M_${kind}_START" '%s' "$s"
        printf -v "M_${kind}_END" '%s' "$e"
        printf -v "M_${kind}_PEAK" '%s' "$p"
    done < <(e2e_psql -At -F'|' -c "SELECT * FROM e2e.mem_result('$1', '$2 s')")
    e2e_psql -At -F'|' -c "SELECT kind, string_agg(coalesce(round(mb::numeric, 1)::text, '-'), ' / ' ORDER BY pct) FROM e2e.mem_curve('$1') GROUP BY 1" |
        while IFS='|' read -r kind curve; do
            printf '      memory %-10s private RSS at 0/25/50/75/100%% of the run: %s MB\n' "$kind" "$curve"
        done
}

# e2e_dash RUN: prints the dashboard latencies; sets D_<script>_P50/P95
e2e_dash() {
    local script n p50 p95 max names=(sales_live sales_daily live_plain daily_plain)
    while IFS='|' read -r script n p50 p95 max; do
        printf '      dashboard %-12s %5d queries: p50 %.2f ms, p95 %.2f ms, max %.1f ms\n' \
            "${names[$script]}" "$n" "$p50" "$p95" "$max"
        printf -v "D_${script}_P50" '%s' "$p50"
        printf -v "D_${script}_P95" '%s' "$p95"
    done < <(e2e_psql -At -F'|' -c "SELECT * FROM e2e.dash_result('$1')")
    while IFS='|' read -r script spike n p50 p95; do
        printf '        %-12s %s spikes: %5d queries, p50 %.2f ms, p95 %.2f ms\n' \
            "${names[$script]}" "$([ "$spike" = t ] && echo "during" || echo "outside")" "$n" "$p50" "$p95"
    done < <(e2e_psql -At -F'|' -c "SELECT * FROM e2e.dash_split('$1')")
}

bench_e2e() {
    local hist_days app_day order_day out rows secs wal copy_rate copy_wal load_s steps peak_s rate step_ok
    local peak=0 log_from errors soak_s warm target_avg f tbl csv src r s w t mx thr
    local L_BASE L_SPIKE L_P50 L_P99 L_LAG L_DRAIN L_WAL F_P50 F_P99 worst DL
    if [ "$SMOKE" = 1 ]; then
        E2E_APP_N=40 E2E_ORDER_N=10 E2E_SLOTS=8
        hist_days=3 app_day=500 order_day=200
        E2E_BASE=1000 E2E_PEAK=5000 E2E_STEADY=2 E2E_SPIKE=1 E2E_CLOSE_EVERY=2 E2E_DRAIN=30 E2E_DASH_RATE=20
        E2E_LOAD_S=4 E2E_FAST_S=3 steps="2000 4000" peak_s=2 soak_s=${PIPELINE_BENCH_SOAK_SECONDS:-10} warm=3
    else
        E2E_APP_N=400 E2E_ORDER_N=100 E2E_SLOTS=32
        hist_days=31 app_day=40000 order_day=10000
        E2E_BASE=10000 E2E_PEAK=50000 E2E_STEADY=20 E2E_SPIKE=5 E2E_CLOSE_EVERY=30 E2E_DRAIN=120
        E2E_DASH_RATE=${PIPELINE_BENCH_DASH_RATE:-16}
        E2E_LOAD_S=120 E2E_FAST_S=50 peak_s=20
        steps=${PIPELINE_BENCH_E2E_STEPS:-"20000 40000 60000 80000 100000 120000 140000 160000 200000"}
        soak_s=${PIPELINE_BENCH_SOAK_SECONDS:-600} warm=30
    fi
    E2E_TX_EVENTS=$((E2E_APP_N + E2E_ORDER_N))
    log_from=$(stat -c %s "$data/server.log")

    bench_psql -d postgres -c "CREATE DATABASE e2e"
    e2e_psql -c "CREATE EXTENSION pipeline CASCADE"
    e2e_psql -f - < "$here/e2e.sql"
    cp "$here"/pgbench/e2e_*.pgbench "$work/"
    e2e_psql -c "SELECT pipeline.create_source('app_events', \$\$$E2E_APP_COLUMNS\$\$)" \
             -c "SELECT pipeline.create_source('orders', \$\$$E2E_ORDER_COLUMNS\$\$, event_id => 'order_id')" \
             -c "SELECT pipeline.create_metric('app_activity', 'app_events', dimensions => '{platform, type}',
                     measures => 'count(*) AS actions, count(DISTINCT user_id) AS users')" \
             -c "SELECT pipeline.create_metric('sales', 'orders', dimensions => '{platform}',
                     measures => 'count(*) AS orders, sum(amount) AS revenue, avg(amount) AS avg_amount')" \
             -c "SELECT pipeline.create_metric('big_orders', 'orders', dimensions => '{platform}', filter => 'amount >= 100',
                     measures => 'count(*) AS orders, max(amount) AS max_amount, count(DISTINCT user_id) AS buyers')" \
             -c "SELECT e2e.make_templates($E2E_SLOTS, $E2E_APP_N, $E2E_ORDER_N)" >/dev/null

    # --- history and the COPY baseline ---
    echo "   history: $hist_days days, $app_day app events + $order_day orders a day"
    e2e_psql -c "SELECT e2e.write_history('app_events', $hist_days, $app_day, '$work/hist_app.csv')" \
             -c "SELECT e2e.write_history('orders', $hist_days, $order_day, '$work/hist_orders.csv')" >/dev/null
    # the baseline is the median of three COPYs: one varied by a fifth
    # between runs on this machine, and the peak's ratio with it
    local rep copy_secs=()
    for rep in 1 2 3; do
        rows=0 secs=0 wal=0
        for f in app:app_copy:hist_app orders:orders_copy:hist_orders; do
            IFS=: read -r _ tbl csv <<< "$f"
            out=$(e2e_psql -At -F' ' -c "CHECKPOINT" -c "CALL e2e.timed_copy('$tbl', '$work/$csv.csv')")
            read -r r s w <<< "$out"
            rows=$((rows + r)) secs=$(e2e_calc "$secs + $s") wal=$((wal + w))
        done
        copy_secs+=("$secs")
        e2e_psql -c "TRUNCATE e2e.app_copy, e2e.orders_copy" >/dev/null
    done
    secs=$(median "${copy_secs[@]}")
    copy_rate=$(e2e_calc "$rows / $secs") copy_wal=$(e2e_calc "$wal / $rows")
    load_s=0
    for f in app_events:hist_app orders:hist_orders; do
        IFS=: read -r src csv <<< "$f"
        s=$(e2e_psql -At -c "CHECKPOINT" -c "CALL e2e.timed_load('$src', '$work/$csv.csv')")
        load_s=$(e2e_calc "$load_s + $s")
        rm -f "$work/$csv.csv"
    done
    printf '      COPY into plain tables with PK: %d rows, %.0f rows/s (median of %s s), %.0f WAL bytes/row; bulk path (COPY <source>_load) %.0f ev/s\n' \
        "$rows" "$copy_rate" "${copy_secs[*]}" "$copy_wal" "$(e2e_calc "$rows / $load_s")"
    out=$(e2e_psql -At -c "SELECT string_agg(action || ' ' || n, ', ' ORDER BY action) FROM
                             (SELECT action, count(*) AS n FROM pipeline.close_days() GROUP BY 1) AS a")
    echo "      close_days(): $out"
    for s in $(seq 600); do      # the worker folds the last 7 days of history
        out=$(e2e_psql -At -c "SELECT coalesce(sum(backlog), 0) FROM pipeline.status WHERE metric IS NOT NULL")
        [ "$out" = 0 ] && break
        sleep 0.2
    done
    [ "$out" = 0 ] || { echo "e2e benchmark: the history was not folded in 2 minutes" >&2; return 1; }
    e2e_psql -c "SELECT e2e.check_mix()" -c "SELECT e2e.make_plain()" -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
    out=$(e2e_psql -At -c "SELECT (SELECT count(*) FROM e2e.sales_live_plain WHERE bucket > now() - interval '24 hours')
                               || ' rows in 24 h of sales_live, ' || (SELECT count(*) FROM e2e.sales_daily_plain WHERE day > current_date - 30)
                               || ' in 30 days of sales_daily'")
    echo "      dashboards read $out"

    # --- load, hot_interval 1s ---
    echo "   load: ${E2E_LOAD_S} s, $E2E_BASE ev/s with $E2E_SPIKE s spikes to $E2E_PEAK ev/s every $((E2E_STEADY + E2E_SPIKE)) s; hot_interval 1s; close_days every ${E2E_CLOSE_EVERY}s; dashboards $E2E_DASH_RATE q/s"
    e2e_settings "ALTER SYSTEM RESET pipeline.hot_interval" "ALTER SYSTEM SET pipeline.enabled = on"
    e2e_run load "$E2E_LOAD_S" "$E2E_BASE" "$E2E_PEAK" 4
    e2e_result load
    e2e_mem load "$warm"
    e2e_dash load
    DL=("$D_0_P50" "$D_0_P95" "$D_1_P50" "$D_1_P95" "$D_2_P50" "$D_2_P95" "$D_3_P50" "$D_3_P95")
    L_BASE=$R_BASE L_SPIKE=$R_SPIKE L_P50=$R_P50 L_P99=$R_P99 L_LAG=$R_LAG_MAX L_DRAIN=$R_DRAIN L_WAL=$R_WAL

    # --- the same, hot_interval 200ms ---
    echo "   fast: ${E2E_FAST_S} s, as load with hot_interval 200ms"
    e2e_settings "ALTER SYSTEM SET pipeline.hot_interval = '200ms'"
    e2e_run fast "$E2E_FAST_S" "$E2E_BASE" "$E2E_PEAK" 4
    e2e_result fast
    F_P50=$R_P50 F_P99=$R_P99
    e2e_settings "ALTER SYSTEM RESET pipeline.hot_interval"

    # --- peak: steps until the rate is missed or the lag exceeds 5 s ---
    echo "   peak: ${peak_s} s steps, 8 clients, no spikes; hot_interval 1s"
    for rate in $steps; do
        for try in 1 2; do
            echo "    step $rate ev/s$([ "$try" = 2 ] && echo ', once more')"
            e2e_run "peak_${rate}_$try" "$peak_s" "$rate" 0 8
            e2e_result "peak_${rate}_$try"
            step_ok=$(e2e_calc "(($R_TOTAL >= 0.9 * $rate && $R_LAG_MAX < 5) ? 1 : 0)")
            [ "$R_DRAINED" = t ] || step_ok=0
            [ "$step_ok" = 1 ] && break
            echo "      step $rate ev/s missed (rate or lag > 5 s or not drained)"
        done
        if [ "$step_ok" = 1 ]; then
            peak=$R_TOTAL
        else
            echo "      missed twice: peak is the previous step"
            break
        fi
    done

    # --- soak ---
    target_avg=$(e2e_calc "($E2E_STEADY * $E2E_BASE + $E2E_SPIKE * $E2E_PEAK) / ($E2E_STEADY + $E2E_SPIKE)")
    echo "   soak: ${soak_s} s, as load"
    e2e_run soak "$soak_s" "$E2E_BASE" "$E2E_PEAK" 4
    e2e_result soak
    # flat memory: the second half of the soak against the first
    e2e_mem soak "$((soak_s / 2))"
    e2e_dash soak
    echo "      dead tuples (table: max sampled, at the end, live, autovacuum threshold, autovacuums during the soak):"
    e2e_psql -At -F'|' -c "SELECT * FROM e2e.dead_result('soak')" |
        while IFS='|' read -r t mx last live thr av; do
            printf '        %-26s max %8d  end %8d  live %10d  threshold %10.0f  autovacuums %d\n' "$t" "$mx" "$last" "$live" "$thr" "$av"
        done
    worst=$(e2e_psql -At -F'|' -c "SELECT relname, max_dead, threshold FROM e2e.dead_result('soak')
                                    ORDER BY max_dead / threshold DESC LIMIT 1")
    # "canceling autovacuum task" is logged at ERROR level when autovacuum
    # gives way to a lock another session asked for (this benchmark's own
    # VACUUM between phases, a partition dropped): counted apart, with the
    # table it was vacuuming, not as an error of the pipeline
    errors=$(tail -c +"$((log_from + 1))" "$data/server.log" | grep -E '^[^ ]+ [^ ]+ [^ ]+ \[[0-9]+\] (ERROR|FATAL|PANIC):' |
             grep -cv 'ERROR:  canceling autovacuum task$' || true)
    echo "      server log during the benchmark: $errors ERROR/FATAL/PANIC lines;" \
         "autovacuum: $(tail -c +"$((log_from + 1))" "$data/server.log" | grep -c 'canceling autovacuum task' || true) task(s) cancelled," \
         "$(tail -c +"$((log_from + 1))" "$data/server.log" | grep -cE 'skipping (vacuum|analyze) of .* lock not available' || true) skipped (lock not available)"
    tail -c +"$((log_from + 1))" "$data/server.log" | grep -A3 'canceling autovacuum task' |
        grep -o 'automatic vacuum of table .*' | sort | uniq -c | sed 's/^/        cancelled: /' || true
    if [ "$errors" != 0 ]; then
        tail -c +"$((log_from + 1))" "$data/server.log" | grep -E '(ERROR|FATAL|PANIC):' | grep -v 'canceling autovacuum task$' |
            sort | uniq -c | sort -rn | head -n 20 >&2
        if [ "$SMOKE" = 1 ]; then
            echo "e2e benchmark: errors in the server log" >&2
            return 1
        fi
    fi

    bench_report "e2e: ingest, ${E2E_BASE} ev/s phases (reached)" "$L_BASE" "ev/s" "$E2E_BASE" "ev/s target"
    bench_report "e2e: ingest, ${E2E_PEAK} ev/s spikes (reached)" "$L_SPIKE" "ev/s" "$E2E_PEAK" "ev/s target"
    bench_report "e2e: commit to _live p50, hot_interval 1s" "$L_P50" "ms" 2000 "ms (target p99)"
    bench_report "e2e: commit to _live p99, hot_interval 1s" "$L_P99" "ms" 2000 "ms (target p99)"
    bench_report "e2e: commit to _live p50, hot_interval 200ms" "$F_P50" "ms" 2000 "ms (target p99)"
    bench_report "e2e: commit to _live p99, hot_interval 200ms" "$F_P99" "ms" 2000 "ms (target p99)"
    bench_report "e2e: hot lag, max sampled" "$(e2e_calc "$L_LAG * 1000")" "ms" 5000 "ms (target)"
    bench_report "e2e: backlog drained after the load in" "$(e2e_calc "$L_DRAIN * 1000")" "ms" 5000 "ms (target)"
    bench_report "e2e: WAL per accepted event" "$L_WAL" "bytes" "$copy_wal" "bytes/row, COPY+PK"
    # dashboards in microseconds: the table prints whole numbers
    for f in 0 1 2 3 4 5 6 7; do DL[$f]=$(e2e_calc "${DL[$f]} * 1000"); done
    bench_report "e2e: dashboard (a) sales_live 24h, p50" "${DL[0]}" "us" "${DL[4]}" "us, plain table"
    bench_report "e2e: dashboard (a) sales_live 24h, p95 (<=10ms)" "${DL[1]}" "us" "${DL[5]}" "us, plain table"
    bench_report "e2e: dashboard (b) sales_daily 30d, p50" "${DL[2]}" "us" "${DL[6]}" "us, plain table"
    bench_report "e2e: dashboard (b) sales_daily 30d, p95 (<=10ms)" "${DL[3]}" "us" "${DL[7]}" "us, plain table"
    bench_report "e2e: peak ingest rate with hot lag < 5 s" "$peak" "ev/s" "$copy_rate" "rows/s, COPY+PK"
    bench_report "soak ${soak_s}s: ingest rate (base + spikes)" "$R_TOTAL" "ev/s" "$target_avg" "ev/s target"
    bench_report "soak: commit to _live p99" "$R_P99" "ms" 2000 "ms (target p99)"
    bench_report "soak: hot lag, max sampled" "$(e2e_calc "$R_LAG_MAX * 1000")" "ms" 5000 "ms (target)"
    bench_report "soak: backlog drained after the soak in" "$(e2e_calc "$R_DRAIN * 1000")" "ms" 5000 "ms (target)"
    bench_report "soak: ingest backends private RSS, end" "${M_ingest_END:-0}" "MB" "${M_ingest_START:-0}" "MB at $((soak_s / 2))s"
    bench_report "soak: worker private RSS, end" "${M_worker_END:-0}" "MB" "${M_worker_START:-0}" "MB at $((soak_s / 2))s"
    IFS='|' read -r t mx thr <<< "$worst"
    bench_report "soak: dead tuples max ($t)" "$mx" "tuples" "$thr" "autovacuum threshold"
    bench_report "soak: server log ERROR/FATAL/PANIC lines" "$errors" "lines" 0 "lines"

    e2e_settings "ALTER SYSTEM RESET pipeline.hot_interval" "ALTER SYSTEM RESET pipeline.enabled"
}
