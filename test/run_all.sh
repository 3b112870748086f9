#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine or a developer's:
# installs missing packages, builds with -Werror, installs, starts a
# throwaway cluster with shared_preload_libraries = 'pg_cron,pipeline',
# runs pg_regress (sql/), the isolation specs (test/isolation/), pg_regress
# again with the server's clock just before midnight, and the TAP tests
# (test/t/), stops the cluster, runs the benchmarks at smoke size
# (test/bench/run.sh --smoke: every benchmark's code path, on its own
# cluster) and prints "N passed, N failed".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"

ensure_packages libfaketime
build_and_install "$top"
# Citus, for test/t/090_citus.pl: the vendored build when the shared tree
# is there (it does nothing once citus.so is installed); without it the
# test uses an installed Citus or skips
if [ -f "$top/../shared/vendor/citus/install.sh" ] && [ ! -f "$PGBIN/../lib/citus.so" ]; then
    echo "== installing Citus from ../shared/vendor/citus (once)"
    as_root env PG_CONFIG=$PGBIN/pg_config bash "$top/../shared/vendor/citus/install.sh"
fi

work=$(make_workdir test)
data=$work/data
port=${PIPELINE_TEST_PORT:-55432}
cp -r "$top/sql" "$top/expected" "$top/test" "$work/"
[ "$(id -u)" = 0 ] && chown -R "$(cluster_user)" "$work"

cleanup() { stop_cluster "$data"; }
trap cleanup EXIT

echo "== starting a throwaway cluster in $work"
# pg_regress checks folds step by step with run_hot(); the background
# worker would race it, so it stays idle here (the TAP tests run it)
start_cluster "$data" "$port" "pipeline.enabled = off"

passed=0
failed=0
failures=()

# --- pg_regress -------------------------------------------------------
tests=$(cd "$work/sql" && ls *.sql | sed 's/\.sql$//' | sort)

# run_regress LABEL OUT PROGRAM INPUTDIR DBNAME TESTS...: pg_regress or
# pg_isolation_regress against the running cluster, results in $work/OUT,
# counted into passed and failed
run_regress() {
    local label=$1 out=$2 program=$3 inputdir=$4 dbname=$5 rc p f
    shift 5
    set +e
    as_cluster_user "$program" \
        --bindir=$PGBIN --host="$work" --port="$port" \
        --inputdir="$inputdir" --outputdir="$work/$out" \
        --dbname="$dbname" "$@" > "$work/$out.out" 2>&1
    rc=$?
    set -e
    mkdir -p "$work/$out"
    cat "$work/$out.out"
    p=$(grep -cE '\.\.\. ok' "$work/$out.out" || true)
    f=$(grep -cE 'FAILED|failed \(ignored\)' "$work/$out.out" || true)
    # pg_regress can stop before running every test (a missing expected
    # file): its exit status counts even when no line says FAILED
    [ $rc != 0 ] && [ "$f" = 0 ] && f=1
    passed=$((passed + p)); failed=$((failed + f))
    if [ $rc != 0 ] || [ -s "$work/$out/regression.diffs" ]; then
        failures+=("$label")
        echo "== regression.diffs ($label)"; cat "$work/$out/regression.diffs"
    fi
}
# sql_tests LABEL OUT: every test of sql/
sql_tests() {
    run_regress "$1" "$2" $PGXS_DIR/src/test/regress/pg_regress "$work" pipeline_regress $tests
}

echo "== pg_regress"
sql_tests pg_regress regress

# --- isolation ---------------------------------------------------------
if [ -d "$work/test/isolation/specs" ]; then
    specs=$(cd "$work/test/isolation/specs" && ls *.spec | sed 's/\.spec$//' | sort)
    echo "== pg_isolation_regress"
    run_regress isolation isolation $PGXS_DIR/src/test/isolation/pg_isolation_regress \
        "$work/test/isolation" pipeline_isolation $specs
fi

stop_cluster "$data"

# --- pg_regress across midnight ------------------------------------------
# The tests put events at now() minus minutes or hours into day partitions.
# Run them again with the server's clock started 15 s before midnight UTC
# (libfaketime; the clock then runs on), so that a test whose output
# depends on the date, or on which day its events fall in, fails here on
# any day instead of in CI at some hour of the night.
faketime_lib=$(dpkg -L libfaketime | grep '/libfaketime\.so\.1$' | head -1)
midnight="$(date -u +%F) 23:59:45"
echo "== pg_regress, the server's clock started at $midnight UTC"
as_cluster_user env LD_PRELOAD="$faketime_lib" FAKETIME="@$midnight" \
    $PGBIN/pg_ctl -D "$data" -l "$data/server.log" -w start >/dev/null
# (a clock libfaketime did not move would make this step a second plain run)
moved=$(as_cluster_user $PGBIN/psql -X -h "$work" -p "$port" -d postgres -Atc \
    "SELECT now() BETWEEN '$midnight+00' AND '$midnight+00'::timestamptz + interval '5 minutes'")
if [ "$moved" = t ]; then
    sql_tests "pg_regress at midnight" regress_midnight
else
    failed=$((failed + 1)); failures+=("the server's clock at midnight")
    echo "FAILED  the server's clock did not start at $midnight UTC (libfaketime: $faketime_lib)"
fi
stop_cluster "$data"

# --- TAP -----------------------------------------------------------------
echo "== TAP (test/t)"
as_cluster_user mkdir -p "$work/tap"
for t in $(cd "$work/test/t" && ls *.pl | sort); do
    set +e
    ( cd "$work/test" && as_cluster_user env PATH="$PGBIN:$PATH" \
        PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress \
        TESTDIR="$work/tap" \
        PERL5LIB="$PGXS_DIR/src/test/perl:$work/test/perl" \
        prove "t/$t" ) > "$work/tap-$t.out" 2>&1
    rc=$?
    set -e
    if [ $rc = 0 ]; then
        passed=$((passed + 1)); echo "ok      $t"
    else
        failed=$((failed + 1)); failures+=("$t"); echo "FAILED  $t"
        cat "$work/tap-$t.out"
        for log in "$work"/tap/tmp_check/log/*; do
            [ -f "$log" ] || continue
            echo "---- $log (last 40 lines)"; tail -n 40 "$log"
        done
    fi
done

# --- benchmarks, smoke size ----------------------------------------------
# the figures mean nothing at this size; what counts is that every
# benchmark still runs and its own checks pass
echo "== benchmarks (test/bench/run.sh --smoke)"
set +e
PIPELINE_BENCH_SKIP_BUILD=1 bash "$top/test/bench/run.sh" --smoke > "$work/bench-smoke.out" 2>&1
rc=$?
set -e
if [ $rc = 0 ]; then
    passed=$((passed + 1)); echo "ok      bench --smoke"
else
    failed=$((failed + 1)); failures+=("bench --smoke"); echo "FAILED  bench --smoke"
    cat "$work/bench-smoke.out"
fi

echo
[ ${#failures[@]} -gt 0 ] && echo "failing: ${failures[*]}  (files kept in $work)"
[ $failed = 0 ] && [ ${#failures[@]} = 0 ] && rm -rf "$work"
echo "$passed passed, $failed failed"
[ $failed = 0 ] && [ ${#failures[@]} = 0 ]
