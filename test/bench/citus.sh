# test/bench/citus.sh: a distributed source against a single node, on the
# same machine; sourced by test/bench/run.sh (which provides bench_psql,
# bench_report, as_cluster_user, $PGBIN, $work, $port, $SMOKE).
#
# The single node is run.sh's cluster (database `citus_single`).  The
# Citus cluster is three more servers on this machine, with the benchmark
# cluster's settings and shared_preload_libraries = 'citus,pg_cron,pipeline':
# a coordinator and two workers on 127.0.0.1, ports
# $PIPELINE_BENCH_CITUS_PORT (default: run.sh's port + 10) and the next two.
# Both get the same source (the narrow event of the ingest benchmark: id,
# time, user, amount, platform), distributed on the cluster by
# pipeline.distribute_source (4 shards), and the same metric (by platform,
# 1-minute buckets: count, sum, avg, count(DISTINCT user_id)).  The
# cluster's servers run on huge pages when the benchmark cluster does, and
# the coordinator caches up to 4 connections per worker
# (citus.max_cached_conns_per_worker, README "Scaling out").
#
#   ingest   pgbench, 2 clients, N 10,000-event NDJSON batches of the
#            20 hours before today's midnight, made before the timing into
#            a table on each side (the same events), events per second
#   fold     one run_hot() of everything ingested, events per second
#   freeze   close_days() freezing the first full day, milliseconds
#   the EXPLAIN of the fold and of the freeze's statement on the cluster
#            (printed; the fold must show its aggregation on the workers)
# Each figure is reported as cluster / single node (the target for ingest
# and fold is >= 0.8), and both sides must end with the same numbers:
# receipts, hot rows and frozen rows are compared.
#
# It also prints the CPU time each server of the cluster spent per million
# events ingested and folded (from /proc: the postmaster, the backends it
# has reaped and its live processes).
#
# Full: 1M events (100 batches); --smoke: 40k (4 batches).  Skipped, with a
# line saying so, when citus.so is not installed.

# CPU seconds used so far by a server: its postmaster (with the children
# it has reaped) and its live processes; the background processes' share
# is in it too (autovacuum, the checkpointer), as it is in a machine's load
citus_node_cpu() {
    local pm
    # a backend's time reaches its postmaster's once it has been reaped
    sleep 1
    pm=$(head -n 1 "$1/postmaster.pid")
    { cat "/proc/$pm/stat"; for c in $(cat "/proc/$pm/task/$pm/children"); do cat "/proc/$c/stat" 2>/dev/null || true; done; } |
        awk -v hz="$(getconf CLK_TCK)" -v pm="$pm" '{ sub(/^.*\) /, ""); t += $12 + $13; if (NR == 1) t += $14 + $15 } END { printf "%.2f", t / hz }'
}

bench_citus() {
    if [ ! -f "$($PGBIN/pg_config --pkglibdir)/citus.so" ]; then
        echo "   skipped: Citus is not installed (../shared/vendor/citus/install.sh builds it)"
        return 0
    fi
    local batches=100 size=10000
    [ $SMOKE = 1 ] && batches=4
    local cport=${PIPELINE_BENCH_CITUS_PORT:-$((port + 10))}
    local cdir=$work/citus p
    # global: the cleanup at exit stops them
    CITUS_DIR=$cdir
    CITUS_NODES=("$cport" "$((cport + 1))" "$((cport + 2))")
    local -a nodes=("${CITUS_NODES[@]}")
    as_cluster_user mkdir -p "$cdir"
    # shared memory on huge pages, as the benchmark cluster's (run.sh)
    huge_pages_reserve $(( ${#nodes[@]} * 640 ))
    local huge_before
    huge_before=$(huge_pages_used)
    for p in "${nodes[@]}"; do
        as_cluster_user $PGBIN/initdb -D "$cdir/$p" -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
        { cluster_conf; cat <<CONF
shared_preload_libraries = 'citus,pg_cron,pipeline'
listen_addresses = '127.0.0.1'
unix_socket_directories = '$cdir'
port = $p
shared_buffers = 512MB
huge_pages = $( [ $use_huge_pages = 1 ] && echo try || echo off)
max_prepared_transactions = 100
citus.max_cached_conns_per_worker = 4
pipeline.enabled = off
CONF
        } | as_cluster_user tee -a "$cdir/$p/postgresql.conf" >/dev/null
        echo "host all all 127.0.0.1/32 trust" | as_cluster_user tee -a "$cdir/$p/pg_hba.conf" >/dev/null
        as_cluster_user $PGBIN/pg_ctl -D "$cdir/$p" -l "$cdir/$p.log" -w start >/dev/null
    done
    echo "   the cluster's shared memory on huge pages: $( [ "$(huge_pages_used)" -gt "$huge_before" ] && echo yes || echo no)"
    # stopped whatever happens next
    eval "citus_prev_$(declare -f cleanup)"
    cleanup() {
        local p
        for p in "${CITUS_NODES[@]}"; do
            [ -f "$CITUS_DIR/$p/postmaster.pid" ] && as_cluster_user $PGBIN/pg_ctl -D "$CITUS_DIR/$p" -m fast -w stop >/dev/null
        done
        citus_prev_cleanup
    }
    cpsql() { local p=$1; shift; as_cluster_user env PGOPTIONS="-c client_min_messages=error" \
                  $PGBIN/psql -X -q -At -v ON_ERROR_STOP=1 -h "$cdir" -p "$p" "$@"; }
    for p in "${nodes[@]}"; do
        cpsql "$p" -d postgres -c "CREATE DATABASE bench"
        cpsql "$p" -d bench -c "CREATE EXTENSION citus"
    done
    cpsql "$cport" -d bench -c "SELECT citus_set_coordinator_host('127.0.0.1', $cport)" \
        -c "SELECT citus_add_node('127.0.0.1', $((cport + 1)))" -c "SELECT citus_add_node('127.0.0.1', $((cport + 2)))" \
        -c "CREATE EXTENSION pipeline CASCADE" >/dev/null
    bench_psql -d postgres -c "CREATE DATABASE citus_single"
    bench_psql -d citus_single -c "CREATE EXTENSION pipeline CASCADE"

    local setup="SELECT pipeline.create_source('events', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL,
                     user_id text NOT NULL, amount numeric(12,2), platform text');"
    local metric="SELECT pipeline.create_metric('m', 'events', dimensions => '{platform}', bucket => '1 minute',
                     measures => 'count(*) AS events, sum(amount) AS revenue, avg(amount) AS avg_amount,
                                  count(DISTINCT user_id) AS users');"
    bench_psql -d citus_single -c "$setup" -c "$metric" >/dev/null
    cpsql "$cport" -d bench -c "$setup" -c "SELECT pipeline.distribute_source('events', 4)" -c "$metric" >/dev/null

    # the batches: 10,000-line NDJSON documents of new ids over the 20
    # hours before today's midnight, the same on both sides, made before
    # the timing (producers send documents; making them is not ingest)
    local midnight docs
    midnight=$(bench_psql -At -d citus_single -c "SELECT date_trunc('day', now())")
    docs="CREATE TABLE bench_docs AS SELECT k, (SELECT string_agg(json_build_object(
              'event_id', k::bigint * $size + i, 'event_time', '$midnight'::timestamptz - (1 + (k + i) % 72000) * interval '1 second',
              'user_id', 'u' || ((k + i) % 100000), 'amount', ((k + i) % 5000) / 100.0,
              'platform', (ARRAY['web', 'ios', 'android'])[1 + i % 3])::text, E'\n') FROM generate_series(1, $size) AS i) AS doc
            FROM generate_series(1, $batches) AS k;
          CREATE SEQUENCE bench_next;"
    bench_psql -d citus_single -c "$docs" >/dev/null
    cpsql "$cport" -d bench -c "$docs" >/dev/null
    cat > "$work/citus_ingest.pgbench" <<SQL
SELECT nextval('bench_next') AS k \\gset
SELECT accepted FROM pipeline.ingest('events', (SELECT d.doc FROM bench_docs AS d WHERE d.k = :k));
SQL
    chmod 644 "$work/citus_ingest.pgbench"
    local single_conn="-h $work -p $port" citus_conn="-h $cdir -p $cport"
    local side conn t0 t1 ingest_s fold_s
    declare -A rate fold freeze cpu0 cpu1 cpu2
    # the single node's own worker would fold as the batches arrive
    bench_psql -d postgres -c "ALTER SYSTEM SET pipeline.enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
    for side in single citus; do
        [ $side = single ] && conn=$single_conn || conn=$citus_conn
        local db=bench; [ $side = single ] && db=citus_single
        if [ $side = citus ]; then for p in "${nodes[@]}"; do cpu0[$p]=$(citus_node_cpu "$cdir/$p"); done
        else cpu0[single]=$(citus_node_cpu "$data"); fi
        t0=$(date +%s.%N)
        as_cluster_user $PGBIN/pgbench -n $conn -c 2 -j 2 -t $((batches / 2)) \
            -f "$work/citus_ingest.pgbench" $db > "$work/citus_pgbench_$side.out" 2>&1 \
            || { cat "$work/citus_pgbench_$side.out" >&2; return 1; }
        t1=$(date +%s.%N)
        if [ $side = citus ]; then for p in "${nodes[@]}"; do cpu1[$p]=$(citus_node_cpu "$cdir/$p"); done
        else cpu1[single]=$(citus_node_cpu "$data"); fi
        rate[$side]=$(awk -v n=$((batches * size)) -v a="$t0" -v b="$t1" 'BEGIN { print n / (b - a) }')
        fold_s=$(as_cluster_user $PGBIN/psql -X -At $conn -d $db -c '\timing on' -c 'SELECT pipeline.run_hot()' \
                 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
        if [ $side = citus ]; then for p in "${nodes[@]}"; do cpu2[$p]=$(citus_node_cpu "$cdir/$p"); done
        else cpu2[single]=$(citus_node_cpu "$data"); fi
        fold[$side]=$(awk -v n=$((batches * size)) -v ms="$fold_s" 'BEGIN { print n / (ms / 1000) }')
        # the events' day (yesterday) freezes
        freeze[$side]=$(as_cluster_user $PGBIN/psql -X -At $conn -d $db -c '\timing on' \
                 -c "SELECT count(*) FROM pipeline.close_days('$midnight'::timestamptz + interval '1 day 1 minute')" \
                 | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
    done

    bench_psql -d postgres -c "ALTER SYSTEM RESET pipeline.enabled" -c "SELECT pg_reload_conf()" >/dev/null
    # where the cluster's CPU went, per million events (the model in README "Scaling out")
    local role=single
    for p in single "${nodes[@]}"; do
        awk -v r=$role -v n=$((batches * size)) -v a="${cpu0[$p]}" -v b="${cpu1[$p]}" -v c="${cpu2[$p]}" \
            'BEGIN { printf "   %-11s CPU per million events: ingest %.2f s, fold %.2f s\n", r, (b - a) * 1e6 / n, (c - b) * 1e6 / n }'
        [ $role = single ] && role=coordinator || role=worker
    done

    # the same numbers on both sides
    local check="SELECT (SELECT sum(accepted) FROM pipeline.batches) || ' ' ||
                        (SELECT sum(events) || ' ' || sum(revenue) FROM pipeline.m_hot) || ' ' ||
                        (SELECT coalesce(sum(events), 0) || ' ' || coalesce(sum(users), 0) || ' ' || count(*)
                           FROM metrics.m_daily WHERE status = 'frozen')"
    local a b
    a=$(bench_psql -At -d citus_single -c "$check")
    b=$(cpsql "$cport" -d bench -c "$check")
    if [ "$a" != "$b" ]; then
        echo "citus: the cluster's numbers differ from the single node's: '$b' vs '$a'" >&2
        return 1
    fi
    echo "   same receipts, hot and frozen numbers on both sides: $a"

    echo "   EXPLAIN of the fold on the cluster:"
    local q
    q=$(cpsql "$cport" -d bench -c "SELECT pipeline._distributed_fold_sql(fold_sql, definition) FROM pipeline.metric_catalog")
    q=${q//\$1/\'\{1,2\}\'::bigint[]}
    q=$(echo "$q" | sed "s/\\\$[234]/(now() - interval '1 day')/g")
    q=$(echo "$q" | sed "s/\\\$5/1::bigint/g; s/\\\$6/2::bigint/g")   # the span of {1,2}
    cpsql "$cport" -d bench -c "EXPLAIN (COSTS OFF) $q" | sed 's/^/     /' | tee "$work/citus_fold_plan.txt"
    grep -q "Task" "$work/citus_fold_plan.txt" && grep -qE "(Group|Hash)Aggregate" "$work/citus_fold_plan.txt" \
        || { echo "citus: the fold's aggregation is not on the workers" >&2; return 1; }
    echo "   EXPLAIN of the freeze's aggregation on the cluster:"
    # the batches a snapshot taken now saw, as the freeze tells the workers
    local seen
    seen=$(cpsql "$cport" -d bench -At -c "SELECT pipeline._seen_on_workers('r', s.floor::text,
            pg_catalog.quote_literal(s.unseen) || '::bigint[]', pg_catalog.quote_literal(s.seen) || '::bigint[]')
          FROM pipeline._batches_seen('events', pg_catalog.pg_current_snapshot()) AS s")
    cpsql "$cport" -d bench -c "EXPLAIN (COSTS OFF) SELECT r.platform, count(*), sum(r.amount), avg(r.amount),
            count(DISTINCT r.user_id) FROM pipeline.events_raw AS r
            WHERE r.event_time >= '$midnight'::timestamptz - interval '1 day' AND r.event_time < '$midnight'
              AND $seen GROUP BY r.platform" | sed 's/^/     /'

    bench_report "citus: ingest, coordinator + 2 workers vs 1 node" "${rate[citus]}" "ev/s" "${rate[single]}" "ev/s"
    bench_report "citus: fold, coordinator + 2 workers vs 1 node" "${fold[citus]}" "ev/s" "${fold[single]}" "ev/s"
    bench_report "citus: freeze a day (ms), 1 node vs cluster" "${freeze[single]}" "ms" "${freeze[citus]}" "ms"
    for p in "${nodes[@]}"; do as_cluster_user $PGBIN/pg_ctl -D "$cdir/$p" -m fast -w stop >/dev/null; done
}
