# test/bench/measures.sh: what a measure kind costs in the fold, sourced by
# test/bench/run.sh (which provides bench_psql, bench_report, $work,
# $SMOKE).  Its own database `measures`, a source `orders` with a latency
# column, pipeline.enabled = off (only explicit run_hot() calls fold), and
# three metrics on it with dimensions '{platform}', bucket 1 minute:
#     plain        count(*), sum(amount)
#     filtered     the same, each with FILTER (WHERE currency = 'EUR')
#     percentile   the same as plain, plus percentile_cont(0.5) and
#                  percentile_cont(0.99) of latency_ms
# Every batch (100k events spread over the last 3 days, 1M in all) is
# folded by each metric in turn, the order rotating from batch to batch,
# each fold timed by run_hot(metric).  Reported: fold cost per event of
# filtered and percentile against plain (the baseline, measured in the same
# run over the same batches).  Afterwards the percentiles of the live view,
# merged per platform, must be within 1% of percentile_cont over raw, and
# the filtered counts equal the hand-written ones.
#
# Full: about a minute on 2 cores.  --smoke: 5 batches of 4k events.

MEASURES_COLUMNS="order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, amount numeric(12,2), currency text NOT NULL, platform text, latency_ms double precision"
MEASURES_METRICS="plain filtered percentile"

measures_psql() { bench_psql -d measures "$@"; }

bench_measures() {
    local batches size b m t total_plain=0 total_filtered=0 total_percentile=0 order ok
    if [ "$SMOKE" = 1 ]; then batches=5; size=4000; else batches=10; size=100000; fi
    bench_psql -d postgres -c "DROP DATABASE IF EXISTS measures" -c "CREATE DATABASE measures" >/dev/null
    bench_psql -d postgres -c "ALTER SYSTEM SET pipeline.enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
    measures_psql >/dev/null <<SQL
CREATE EXTENSION pipeline;
SELECT pipeline.create_source('orders', \$\$$MEASURES_COLUMNS\$\$, event_id => 'order_id');
SELECT pipeline.create_metric('plain', 'orders', '{platform}',
    'count(*) AS orders, sum(amount) AS revenue', bucket => '1 minute');
SELECT pipeline.create_metric('filtered', 'orders', '{platform}',
    \$\$count(*) FILTER (WHERE currency = 'EUR') AS orders, sum(amount) FILTER (WHERE currency = 'EUR') AS revenue\$\$,
    bucket => '1 minute');
SELECT pipeline.create_metric('percentile', 'orders', '{platform}',
    'count(*) AS orders, sum(amount) AS revenue,
     percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
     percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99', bucket => '1 minute');
-- one batch of events spread over the last 3 days: latencies log-normal
CREATE FUNCTION bench_batch(k int, n int) RETURNS bigint LANGUAGE sql AS \$f\$
    SELECT accepted FROM pipeline.ingest('orders', (
        SELECT string_agg(json_build_object(
                   'order_id', k::bigint * n + i,
                   'event_time', now() - random() * interval '3 days',
                   'user_id', 'u' || (i % 5000),
                   'amount', round((random() * 100)::numeric, 2),
                   'currency', (ARRAY['EUR', 'USD', 'GBP'])[1 + i % 3],
                   'platform', (ARRAY['web', 'ios', 'android'])[1 + i / 3 % 3],
                   'latency_ms', exp(3 + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())))::text, E'\n')
          FROM generate_series(1, n) AS i))
\$f\$;
CREATE FUNCTION bench_fold_ms(metric text) RETURNS double precision LANGUAGE plpgsql AS \$f\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    PERFORM pipeline.run_hot(metric);
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END \$f\$;
SQL
    for b in $(seq 1 $batches); do
        measures_psql -Atc "SELECT bench_batch($b, $size)" >/dev/null
        measures_psql -c "VACUUM ANALYZE" >/dev/null
        # rotate which metric folds first
        case $((b % 3)) in
            0) order="plain filtered percentile" ;;
            1) order="filtered percentile plain" ;;
            2) order="percentile plain filtered" ;;
        esac
        for m in $order; do
            t=$(measures_psql -Atc "SELECT bench_fold_ms('$m')")
            eval "total_$m=\$(awk -v a=\$total_$m -v b=$t 'BEGIN { print a + b }')"
        done
    done
    ok=$(measures_psql -Atc "
        WITH live AS (
            SELECT platform, pipeline.quantile_value(pipeline.quantile_merge(p50_sketch), 0.5) AS p50,
                   pipeline.quantile_value(pipeline.quantile_merge(p99_sketch), 0.99) AS p99
              FROM metrics.percentile_live GROUP BY platform),
        exact AS (
            SELECT platform, percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99,
                   count(*) FILTER (WHERE currency = 'EUR') AS eur
              FROM pipeline.orders_raw GROUP BY platform)
        SELECT bool_and(abs(l.p50 - e.p50) <= 0.01 * e.p50 AND abs(l.p99 - e.p99) <= 0.01 * e.p99
                        AND f.orders = e.eur)
          FROM exact AS e JOIN live AS l USING (platform)
          JOIN (SELECT platform, sum(orders) AS orders FROM metrics.filtered_live GROUP BY platform) AS f USING (platform)")
    bench_psql -d postgres -c "ALTER SYSTEM RESET pipeline.enabled" -c "SELECT pg_reload_conf()" >/dev/null
    if [ "$ok" != t ]; then
        echo "measures: the live percentiles or filtered counts disagree with raw" >&2
        return 1
    fi
    local events=$((batches * size))
    bench_report "measures: fold, FILTER on each measure, per event" \
        "$(awk -v t=$total_filtered -v n=$events 'BEGIN { printf "%.0f", t * 1e6 / n }')" "ns" \
        "$(awk -v t=$total_plain -v n=$events 'BEGIN { printf "%.0f", t * 1e6 / n }')" "ns, unfiltered"
    bench_report "measures: fold, + 2 percentiles, per event" \
        "$(awk -v t=$total_percentile -v n=$events 'BEGIN { printf "%.0f", t * 1e6 / n }')" "ns" \
        "$(awk -v t=$total_plain -v n=$events 'BEGIN { printf "%.0f", t * 1e6 / n }')" "ns, without them"
    bench_psql -d postgres -c "DROP DATABASE measures" >/dev/null
}
