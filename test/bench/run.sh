#!/usr/bin/env bash
# The benchmark command.
#
#   bash test/bench/run.sh           full sizes (about an hour on 2 cores)
#   bash test/bench/run.sh --smoke   same code paths, tiny sizes, a few seconds;
#                                    exits non-zero if anything fails (the test
#                                    suite calls it)
#
# Installs what is missing, builds and installs the extension, starts its own
# throwaway cluster (port $PIPELINE_BENCH_PORT, default 55433, so it never
# meets the test cluster on 55432), runs every benchmark, prints one table,
# stops the cluster and removes its directory (kept on failure, for the logs).
#
# A benchmark is test/bench/<name>.sh defining bench_<name>; it reports each
# figure with bench_report (below) and may use human and median.  Add new
# ones to BENCHMARKS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/test/lib.sh"

BENCHMARKS="${PIPELINE_BENCHMARKS:-ingest hot late daily e2e retention measures citus}"

SMOKE=0
case "${1:-}" in
    --smoke) SMOKE=1 ;;
    "") ;;
    *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
esac

# The benchmark cluster runs with production-like settings on top of the
# ones every pipeline cluster has (lib.sh's cluster_conf; the last setting
# in postgresql.conf wins, so these override it):
#   fsync = on                 lib.sh turns it off for tests; a benchmark
#                              without it measures nothing real
#   synchronous_commit = on    every commit waits for its WAL flush
#   wal_level = replica        what a server with a standby or backups runs
#   shared_buffers = 1GB       a small production server
#   max_wal_size = 4GB,        so that checkpoints come from the CHECKPOINT
#   checkpoint_timeout = 15min between measurements, not from WAL volume
#                              in the middle of one
# autovacuum stays on, as in production.
#
# Huge pages, as a production server with 1 GB of shared_buffers has them
# (full runs; PIPELINE_BENCH_HUGE_PAGES=0 to measure without): the run
# reserves enough (vm.nr_hugepages, as root, put back when it ends) and
# starts the cluster with huge_pages = try.  Without them every backend
# takes a page fault the first time it touches each 4 kB of shared memory,
# and every benchmark here measures fresh backends (one psql per timed
# step; pg_cron starts one per job): on this 2-vCPU virtual machine a
# correction of 1,000 late events spent half its time on those faults.
# The benchmark prints whether the cluster got them.
eval "lib_$(declare -f cluster_conf)"
cluster_conf() {
    lib_cluster_conf
    cat <<CONF
fsync = on
synchronous_commit = on
wal_level = replica
shared_buffers = 1GB
max_wal_size = 4GB
checkpoint_timeout = 15min
CONF
}

ensure_packages
# the test suite has just built and installed this tree
[ "${PIPELINE_BENCH_SKIP_BUILD:-0}" = 1 ] || build_and_install "$top"
# Citus for the citus benchmark, as test/run_all.sh: the vendored build when
# the shared tree is there (once); otherwise an installed Citus, or skipped
case " $BENCHMARKS " in
*" citus "*)
    if [ -f "$top/../shared/vendor/citus/install.sh" ] && [ ! -f "$PGBIN/../lib/citus.so" ]; then
        echo "== installing Citus from ../shared/vendor/citus (once)"
        as_root env PG_CONFIG=$PGBIN/pg_config bash "$top/../shared/vendor/citus/install.sh"
    fi ;;
esac

work=$(make_workdir bench)
data=$work/data
port=${PIPELINE_BENCH_PORT:-55433}
results=$work/results.tsv
ok=0
huge_pages_before=
use_huge_pages=0
if [ "$SMOKE" = 0 ] && [ "${PIPELINE_BENCH_HUGE_PAGES:-1}" = 1 ]; then use_huge_pages=1; fi

# huge_pages_reserve [MB]: enough huge pages for that much shared memory
# (default 1280: shared_buffers and the rest), unless the machine already
# has them free (free and not reserved by a running server)
huge_pages_reserve() {
    local mb=${1:-1280} size_kb have free want
    [ $use_huge_pages = 1 ] || return 0
    size_kb=$(awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo)
    [ -n "$size_kb" ] && [ -w /proc/sys/vm/nr_hugepages ] || return 0
    have=$(cat /proc/sys/vm/nr_hugepages)
    free=$(awk '/^HugePages_Free:/ { f = $2 } /^HugePages_Rsvd:/ { r = $2 } END { print f - r }' /proc/meminfo)
    want=$(( (mb * 1024 + size_kb - 1) / size_kb ))
    [ "$free" -ge "$want" ] && return 0
    [ -n "$huge_pages_before" ] || huge_pages_before=$have
    echo $((have + want - free)) > /proc/sys/vm/nr_hugepages
}

# huge pages the cluster holds (0: it runs on 4 kB pages)
huge_pages_used() {
    awk '/^HugePages_Total:/ { t = $2 } /^HugePages_Free:/ { f = $2 } /^HugePages_Rsvd:/ { r = $2 }
         END { print t - f + r }' /proc/meminfo
}

cleanup() {
    stop_cluster "$data"
    [ -n "$huge_pages_before" ] && echo "$huge_pages_before" > /proc/sys/vm/nr_hugepages
    if [ $ok = 1 ]; then
        rm -rf "$work"
    else
        echo "== benchmark FAILED; files kept in $work" >&2
        [ -f "$data/server.log" ] && { echo "---- server.log (last 40 lines)" >&2; tail -n 40 "$data/server.log" >&2; }
    fi
}
trap cleanup EXIT

# psql on the benchmark cluster, as the cluster user, stopping at the first error
bench_psql() {
    as_cluster_user env PGOPTIONS="-c client_min_messages=warning" \
        $PGBIN/psql -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" "$@"
}

# 20000000 -> 20M, 50000 -> 50k: sizes in labels
human() { awk -v n="$1" 'BEGIN { if (n >= 1e6 && n % 1e6 == 0) print n / 1e6 "M"; else if (n >= 1e3 && n % 1e3 == 0) print n / 1e3 "k"; else print n }'; }
# median of the arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# bench_report LABEL VALUE UNIT BASELINE BASELINE_UNIT
#   one line of the table; ratio = VALUE / BASELINE
bench_report() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$results"
}

print_table() {
    awk -F'\t' '
        function group(x,   s, r) {          # 1234567 -> 1,234,567
            s = sprintf("%.0f", x); r = ""
            while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
            return s r
        }
        BEGIN { printf "%-50s %-16s %-27s %s\n", "benchmark", "pipeline", "baseline (ingest: COPY+PK)", "ratio" }
        {
            ratio = ($4 > 0) ? sprintf("%.2f", $2 / $4) : "-"
            printf "%-50s %-16s %-27s %s\n", $1, group($2) " " $3, group($4) " " $5, ratio
        }' "$results"
}

echo "== starting the benchmark cluster in $work (port $port)"
huge_pages_reserve
huge_before=$(huge_pages_used)
start_cluster "$data" "$port" "huge_pages = $( [ $use_huge_pages = 1 ] && echo try || echo off)"
echo "== shared memory on huge pages: $( [ "$(huge_pages_used)" -gt "$huge_before" ] && echo yes || echo no)"
: > "$results"

for b in $BENCHMARKS; do
    . "$here/$b.sh"
    echo "== benchmark: $b"
    "bench_$b"
done

echo
[ $SMOKE = 1 ] && echo "(smoke run: tiny sizes, the figures mean nothing)"
print_table
ok=1
