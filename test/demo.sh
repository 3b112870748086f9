#!/usr/bin/env bash
# The demo: a local cluster in .demo/ (ignored by git), the extension in a
# database `demo`, and a walk through what pipeline does, in test/demo.sql.
# Safe to re-run: the cluster is reused and the demo database recreated.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/test/lib.sh"

ensure_packages
build_and_install "$top"

demo=$top/.demo
mkdir -p "$demo"
if [ "$(id -u)" = 0 ]; then
    chown "$(cluster_user)" "$demo"
    # the cluster user must be able to reach the project folder
    if ! runuser -u postgres -- test -w "$demo"; then
        demo=/tmp/pipeline-demo
        mkdir -p "$demo" && chown postgres "$demo"
        echo "== $top is not reachable by the postgres user; the demo cluster lives in $demo"
    fi
fi
port=${PIPELINE_DEMO_PORT:-55499}
data=$demo/data

echo "== demo cluster in $data (port $port)"
stop_cluster "$data"
start_cluster "$data" "$port"

psql_demo() { as_cluster_user $PGBIN/psql -X -h "$demo" -p "$port" "$@"; }
psql_demo -q -d postgres -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_cron" \
    -c "DROP DATABASE IF EXISTS demo" -c "CREATE DATABASE demo"
cp "$top/test/demo.sql" "$demo/demo.sql"
psql_demo -d demo -v ON_ERROR_STOP=1 --echo-queries -f "$demo/demo.sql"

echo
echo "== the pg_cron jobs pipeline.schedule() created (pg_cron lives in database postgres)"
psql_demo -d postgres -c "SELECT jobid, jobname, schedule, command, database, username FROM cron.job ORDER BY jobid"

cat <<MSG

== the demo cluster is still running; connect with:
   $( [ "$(id -u)" = 0 ] && echo "runuser -u postgres -- " )$PGBIN/psql -h $demo -p $port demo
   stop it with:
   $( [ "$(id -u)" = 0 ] && echo "runuser -u postgres -- " )$PGBIN/pg_ctl -D $data stop
MSG
