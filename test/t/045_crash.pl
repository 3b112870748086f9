# Crashes in the middle of the work: nothing a crash interrupts is half
# applied, and retrying afterwards is exact.
#
#  1. immediate shutdown while four producers ingest keyed batches and the
#     worker folds: after the restart every producer resends every batch
#     (same keys, same payloads); raw holds the union of the batches once,
#     one balanced receipt per key, and the hot layer equals a hand-written
#     GROUP BY over raw once the worker has caught up;
#  2. kill -9 of a backend in close_days, after it has done a first day and
#     while it waits for the second (once while freezing, once while writing
#     corrections): the whole run is gone, and the next run is exact and
#     writes each correction once;
#  3. kill -9 of a backend in restate_day just before its audit row: the day
#     is unchanged, no restatement is recorded, and the next restate_day is
#     exact and audited once;
#  4. the same close_days crash in a run started by pg_cron: the run is
#     recorded as failed and its partial work is gone.
# (kill -9 of the worker mid-fold is test/t/020_hot_worker.pl, the launcher
# coming back without duplicate workers is test/t/001_worker.pl.)
#
# A run is stopped mid-way by a lock another session holds on what it needs
# late in its run; the kill happens once pg_stat_activity shows it waiting
# there.  Every wait is a poll on an observable condition.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use PipelineNode;

# max_prepared_transactions: part 4 holds its lock in a prepared
# transaction, which survives the crashes of parts 1 to 3
my $node = PipelineNode::new_node('crash',
	conf => "pipeline.hot_interval = '100ms'\nmax_prepared_transactions = 2\n");
$node->start;

###########################################################################
# The daily layer: a source and a metric whose days are D1 and D2, ten and
# nine days ago (UTC).  allowed_lateness 1 hour, freeze_after 3 days: as of
# the end of D2 + 2 hours both days are provisional, as of now both freeze.
###########################################################################
my $d1 = $node->safe_psql('postgres', q{SELECT (now() AT TIME ZONE 'UTC')::date - 10});
my $d2 = $node->safe_psql('postgres', q{SELECT (now() AT TIME ZONE 'UTC')::date - 9});
my $provisional_as_of = "timestamptz '$d2 00:00:00+00' + interval '1 day 2 hours'";

sub setup_daily
{
	my ($db) = @_;
	PipelineNode::create_database($node, $db);
	$node->safe_psql($db, q{
		SELECT pipeline.create_source('orders',
		  'order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
		   platform text NOT NULL, amount numeric',
		  event_id => 'order_id', allowed_lateness => '1 hour', freeze_after => '3 days',
		  day_timezone => 'UTC');
		SELECT pipeline.create_metric('m', 'orders', dimensions => '{platform}',
		  measures => 'count(*) AS n, sum(amount) AS total, count(DISTINCT user_id) AS users,
		               min(amount) AS lo, max(amount) AS hi');});
	return;
}

# ingests ids $from..$to under batch key $key: even ids on D1, odd ids on
# D2, three platforms; late events bring new users and new extremes.
# Returns the receipt's accepted count.
sub daily_batch
{
	my ($db, $key, $from, $to, $late) = @_;
	my $l = $late ? 'true' : 'false';
	return $node->safe_psql($db, qq{
		SELECT accepted FROM pipeline.ingest('orders', (
		  SELECT jsonb_agg(jsonb_build_object(
		           'order_id', i,
		           'event_time', (CASE WHEN i % 2 = 0 THEN date '$d1' ELSE date '$d2' END)::timestamp AT TIME ZONE 'UTC'
		                         + ((i * 7) % 24) * interval '1 hour' + (i % 60) * interval '1 minute',
		           'user_id', CASE WHEN $l THEN 'late' || i ELSE 'u' || (i % 13) END,
		           'platform', (ARRAY['web', 'ios', 'android'])[i % 3 + 1],
		           'amount', CASE WHEN NOT $l THEN (i % 40) * 0.5
		                          WHEN i % 4 < 2 THEN 1000 + i ELSE -i END))
		    FROM generate_series($from, $to) AS i), '$key')});
}

# rows of metrics.<$view> that differ from a hand-written GROUP BY over the
# raw rows matching $where, the number of groups and the events behind them
sub daily_vs_raw
{
	my ($db, $view, $where) = @_;
	return $node->safe_psql($db, qq{
		WITH h AS (
		  SELECT (event_time AT TIME ZONE 'UTC')::date AS day, platform,
		         count(*) AS n, sum(amount) AS total, count(DISTINCT user_id) AS users,
		         min(amount) AS lo, max(amount) AS hi
		    FROM pipeline.orders_raw WHERE $where GROUP BY 1, 2)
		SELECT (SELECT count(*) FROM h FULL JOIN metrics.$view AS d USING (day, platform)
		         WHERE (h.n, h.total, h.users, h.lo, h.hi) IS DISTINCT FROM (d.n, d.total, d.users, d.lo, d.hi))
		       || '|' || (SELECT count(*) FROM h) || '|' || (SELECT sum(n) FROM h)});
}

# everything the daily layer has written, row by row (closures with their
# snapshots and digests, daily rows, corrections, restatements)
sub daily_state
{
	my ($db) = @_;
	return $node->safe_psql($db, q{
		SELECT concat_ws(E'\n--\n',
		  (SELECT string_agg(x::text, E'\n' ORDER BY x::text) FROM pipeline.day_closures AS x),
		  (SELECT string_agg(x::text, E'\n' ORDER BY x::text) FROM pipeline.m_daily AS x),
		  (SELECT string_agg(x::text, E'\n' ORDER BY x::text) FROM pipeline.m_corrections AS x),
		  (SELECT string_agg(x::text, E'\n' ORDER BY x::text) FROM pipeline.restatements AS x))});
}

sub close_days
{
	my ($db) = @_;
	return $node->safe_psql($db,
		q{SELECT string_agg(day || '|' || action, ',' ORDER BY day) FROM pipeline.close_days()});
}

sub verify_days
{
	my ($db) = @_;
	return $node->safe_psql($db, qq{
		SELECT pipeline.verify_day('m', '$d1') || '|' || pipeline.verify_day('m', '$d2')});
}

###########################################################################
# 4 (set up first, checked last). A close_days run started by pg_cron: in
# database crondb, a prepared transaction locks D2's closure row, so every
# run pg_cron starts freezes D1 and then waits.  pg_cron has minute
# granularity: the job is scheduled now and its run is killed at the end.
###########################################################################
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
setup_daily('crondb');
is(daily_batch('crondb', 'c1', 1, 300), '300', 'cron: first batch accepted');
is($node->safe_psql('crondb',
		"SELECT string_agg(day || '|' || action, ',' ORDER BY day) FROM pipeline.close_days($provisional_as_of)"),
	"$d1|provisional,$d2|provisional", 'cron: both days provisional');
$node->safe_psql('crondb', qq{
	BEGIN;
	SELECT FROM pipeline.day_closures WHERE metric = 'm' AND day = '$d2' FOR UPDATE;
	PREPARE TRANSACTION 'hold_d2';});
is(daily_batch('crondb', 'c2', 301, 400), '100', 'cron: second batch accepted (the run would change D1)');
my $cron_before = daily_state('crondb');
$node->safe_psql('crondb', q{SELECT pipeline.schedule('* * * * *')});
my $cron_t0 = $node->safe_psql('postgres', 'SELECT clock_timestamp()');

###########################################################################
# 1. immediate shutdown while 4 producers ingest and the worker folds
###########################################################################
PipelineNode::create_database($node, 'ingest');
$node->safe_psql('ingest', q{
	SELECT pipeline.create_source('orders',
	  'order_id bigint NOT NULL, event_time timestamptz NOT NULL, amount numeric CHECK (amount >= 0)',
	  event_id => 'order_id');
	SELECT pipeline.create_metric('m', 'orders', measures => 'count(*) AS n, sum(amount) AS total, max(amount) AS hi',
	  bucket => '1 minute');});

my $clients = 4;
my $per_client = 60;
my $per_batch = 50;
my $total_batches = $clients * $per_client;
# event times: a fixed base, so that a retried batch is the same payload
my $t0 = $node->safe_psql('ingest', q{SELECT extract(epoch FROM date_trunc('minute', now()) - interval '1 hour')::bigint});

# batch n of client c (n = 1..60): ids 50n + 25c .. 50n + 25c + 49, so each
# id is sent by two clients; ids divisible by 97 have a negative amount
# (rejected).  The key is p<c>-<n>; n is the client's own counter.
my $script = q{
\set n :n + 1
SELECT batch_id, received, accepted, duplicates, rejected FROM pipeline.ingest('orders',
  (SELECT jsonb_agg(jsonb_build_object(
            'order_id', i,
            'event_time', to_timestamp(:t0) + (i % 50) * interval '1 minute' + (i % 60) * interval '1 second',
            'amount', CASE WHEN i % 97 = 0 THEN -1 ELSE (i % 100) * 0.25 END) ORDER BY i)
     FROM generate_series(:n * 50 + :client_id * 25, :n * 50 + :client_id * 25 + 49) AS i),
  'p' || :client_id || '-' || :n);
};
my %sent;
my $expected_rejected = 0;
for my $c (0 .. $clients - 1)
{
	for my $n (1 .. $per_client)
	{
		for my $i ($n * 50 + $c * 25 .. $n * 50 + $c * 25 + 49)
		{
			$sent{$i} = 1;
			$expected_rejected++ if $i % 97 == 0;
		}
	}
}
my $expected_ids = grep { $_ % 97 != 0 } keys %sent;
my $script_file = $node->basedir . '/045_ingest.sql';
append_to_file($script_file, $script);
my @pgbench = ('pgbench', '-n', '-c', $clients, '-j', $clients, '-t', $per_client,
	'-D', 'n=0', '-D', "t0=$t0", '-f', $script_file,
	'-h', $node->host, '-p', $node->port);

# the producers, at 40 batches per second in all (6 s for the 240 batches:
# the shutdown below must come before the last, after the worker's first
# fold, which a loaded machine may take a few seconds to reach)
my ($pgb_out, $pgb_err) = ('', '');
my $producers = IPC::Run::start([ @pgbench, '-R', '40', 'ingest' ],
	'>', \$pgb_out, '2>', \$pgb_err);
ok($node->poll_query_until('ingest', qq{
		SELECT (SELECT count(*) FROM pipeline.batch_log) >= 40
		   AND (SELECT events_folded > 0 FROM pipeline.status WHERE metric = 'm')}),
	'1: producers are ingesting and the worker is folding');
$node->stop('immediate');
$producers->finish;
note("producers at the shutdown: $pgb_err");
$node->start;

my $before_retry = $node->safe_psql('ingest', 'SELECT count(*) FROM pipeline.batch_log');
ok($before_retry > 0 && $before_retry < $total_batches,
	"1: the shutdown came in the middle of the run ($before_retry of $total_batches batches committed)");
is($node->safe_psql('ingest', q{
		SELECT count(*) FROM pipeline.batch_log AS b
		 WHERE accepted <> (SELECT count(*) FROM pipeline.orders_raw AS r WHERE r._pl_batch = b.batch_id)}),
	'0', '1: after the crash, every committed receipt has exactly its accepted events in raw');
is($node->safe_psql('ingest', q{
		SELECT count(*) FROM pipeline.orders_raw AS r
		 WHERE NOT EXISTS (SELECT FROM pipeline.batch_log AS b WHERE b.batch_id = r._pl_batch)}),
	'0', '1: after the crash, no raw event without its receipt');

# every producer resends every batch, same keys, same payloads
$node->command_ok([ @pgbench, 'ingest' ], '1: every producer resent all its batches');

is($node->safe_psql('ingest', q{SELECT count(*) || '|' || count(DISTINCT batch_key) FROM pipeline.batches}),
	"$total_batches|$total_batches", "1: $total_batches receipts, one per key");
is($node->safe_psql('ingest', qq{
		SELECT count(*) FROM (SELECT 'p' || c || '-' || n FROM generate_series(0, $clients - 1) AS c,
		                             generate_series(1, $per_client) AS n) AS e(k)
		  FULL JOIN pipeline.batches AS b ON b.batch_key = e.k
		 WHERE e.k IS NULL OR b.batch_key IS NULL}),
	'0', '1: the keys are exactly p<client>-<n>');
is($node->safe_psql('ingest', qq{
		SELECT count(*) FROM pipeline.batches
		 WHERE received <> $per_batch OR received <> accepted + duplicates + rejected}),
	'0', "1: every receipt has $per_batch events and balances");
is($node->safe_psql('ingest', q{SELECT sum(rejected) || '|' || (SELECT count(*) FROM pipeline.dead_letters)
		  FROM pipeline.batches}),
	"$expected_rejected|$expected_rejected", "1: $expected_rejected rejected events, one dead letter each");
is($node->safe_psql('ingest', q{
		SELECT count(*) || '|' || count(DISTINCT order_id) || '|' || (SELECT sum(accepted) FROM pipeline.batches)
		       || '|' || (SELECT count(*) FROM pipeline.orders_ids)
		  FROM pipeline.orders_raw}),
	"$expected_ids|$expected_ids|$expected_ids|$expected_ids",
	"1: raw holds $expected_ids events, each id once, as many as accepted and as the id index");
is($node->safe_psql('ingest', qq{
		WITH sent AS (SELECT DISTINCT n * 50 + c * 25 + k AS id
		                FROM generate_series(0, $clients - 1) AS c, generate_series(1, $per_client) AS n,
		                     generate_series(0, 49) AS k)
		SELECT count(*) FROM (SELECT id FROM sent WHERE id % 97 <> 0) AS w
		  FULL JOIN pipeline.orders_raw AS r ON r.order_id = w.id
		 WHERE w.id IS NULL OR r.order_id IS NULL
		    OR r.amount <> (r.order_id % 100) * 0.25
		    OR r.event_time <> to_timestamp($t0) + (r.order_id % 50) * interval '1 minute'
		                       + (r.order_id % 60) * interval '1 second'}),
	'0', '1: raw is exactly the union of the batches sent, with their payloads');
is($node->safe_psql('ingest', q{
		SELECT count(*) FROM pipeline.batch_log AS b
		 WHERE accepted <> (SELECT count(*) FROM pipeline.orders_raw AS r WHERE r._pl_batch = b.batch_id)}),
	'0', '1: every receipt has exactly its accepted events in raw');

ok(PipelineNode::wait_folded_or_failed($node, 'ingest', 'm'), '1: the worker caught up');
is($node->safe_psql('ingest', q{
		SELECT backlog || '|' || failures || '|' || (events_folded = (SELECT count(*) FROM pipeline.orders_raw))
		  FROM pipeline.status WHERE metric = 'm'}),
	'0|0|true', '1: backlog 0, no failure, events_folded = events in raw');
is($node->safe_psql('ingest', q{
		WITH h AS (
		  SELECT date_bin('1 minute', event_time, timestamptz '2000-01-01 00:00:00+00') AS bucket,
		         count(*) AS n, sum(amount) AS total, max(amount) AS hi
		    FROM pipeline.orders_raw GROUP BY 1)
		SELECT (SELECT count(*) FROM h FULL JOIN metrics.m_live AS l USING (bucket)
		         WHERE (h.n, h.total, h.hi) IS DISTINCT FROM (l.n, l.total, l.hi))
		       || '|' || (SELECT count(*) FROM h) || '|' || (SELECT sum(n) FROM h)}),
	"0|50|$expected_ids", '1: the hot layer equals a hand-written GROUP BY over raw: nothing lost, nothing doubled');

###########################################################################
# 2. kill -9 in the middle of close_days
###########################################################################
setup_daily('daily');
is(daily_batch('daily', 'b1', 1, 300), '300', '2: first batch accepted');
is($node->safe_psql('daily',
		"SELECT string_agg(day || '|' || action, ',' ORDER BY day) FROM pipeline.close_days($provisional_as_of)"),
	"$d1|provisional,$d2|provisional", '2: a first run makes both days provisional');
is(daily_batch('daily', 'b2', 301, 400), '100', '2: second batch accepted');
is(daily_vs_raw('daily', 'm_daily', 'order_id <= 300'), '0|6|300',
	'2: the provisional days hold the first batch only (the next run changes both)');

# --- 2a. a run freezing D1, then waiting for D2's closure row
my $before = daily_state('daily');
my ($holder, $holder_pid) = PipelineNode::session($node, 'daily', on_error_stop => 0);
$holder->query_safe("BEGIN; SELECT FROM pipeline.day_closures WHERE metric = 'm' AND day = '$d2' FOR UPDATE;");
my ($closer, $closer_pid) = PipelineNode::session($node, 'daily', on_error_stop => 0);
$closer->query_until(qr/started/, "\\echo started\nSELECT * FROM pipeline.close_days();\n");
ok(PipelineNode::wait_blocked($node, 'daily', $closer_pid, holder => $holder_pid),
	'2a: close_days froze D1 and waits for the closure row of D2')
  or die "2a: backend $closer_pid never blocked";
PipelineNode::kill9_and_wait($node, $closer_pid) or die '2a: no restart after kill -9';
eval { $closer->quit };
eval { $holder->quit };

is(daily_state('daily'), $before,
	'2a: after the crash, closures, daily rows and corrections are as before the run (D1 not frozen either)');
is(daily_vs_raw('daily', 'm_daily', 'order_id <= 300'), '0|6|300', '2a: the daily rows still hold the first batch only');
is(close_days('daily'), "$d1|frozen,$d2|frozen", '2a: the next run freezes both days');
is(daily_vs_raw('daily', 'm_daily', 'true'), '0|6|400', '2a: the frozen days equal a hand-written GROUP BY over raw');
is($node->safe_psql('daily', q{
		SELECT string_agg(status || '|' || version || '|' || events_frozen || '|' || (digest IS NOT NULL), ',' ORDER BY day)
		  FROM pipeline.day_closures}),
	'frozen|1|200|true,frozen|1|200|true', '2a: both frozen, version 1, 200 events each, with a digest');
is(verify_days('daily'), 'true|true', '2a: both frozen days verify against their digest');

# --- 2b. late events, then a run writing D1's corrections and waiting for D2
is(daily_batch('daily', 'b3', 401, 460, 1), '60', '2b: 60 late events accepted after the freeze');
my $frozen = daily_state('daily');
($holder, $holder_pid) = PipelineNode::session($node, 'daily', on_error_stop => 0);
$holder->query_safe("BEGIN; SELECT FROM pipeline.day_closures WHERE metric = 'm' AND day = '$d2' FOR UPDATE;");
($closer, $closer_pid) = PipelineNode::session($node, 'daily', on_error_stop => 0);
$closer->query_until(qr/started/, "\\echo started\nSELECT * FROM pipeline.close_days();\n");
ok(PipelineNode::wait_blocked($node, 'daily', $closer_pid, holder => $holder_pid),
	'2b: close_days corrected D1 and waits for the closure row of D2')
  or die "2b: backend $closer_pid never blocked";
PipelineNode::kill9_and_wait($node, $closer_pid) or die '2b: no restart after kill -9';
eval { $closer->quit };
eval { $holder->quit };

is(daily_state('daily'), $frozen,
	'2b: after the crash, no correction and no moved cursor: everything as before the run');
is(verify_days('daily'), 'true|true', '2b: both frozen days still verify');
is(close_days('daily'), "$d1|corrected,$d2|corrected", '2b: the next run corrects both days');
is($node->safe_psql('daily', q{
		SELECT string_agg(day || ':' || groups || ':' || events, ',' ORDER BY day)
		  FROM (SELECT day, count(*) AS groups, sum(late_events) AS events FROM metrics.m_corrections GROUP BY day) AS c}),
	"$d1:3:30,$d2:3:30", '2b: one correction per day and platform, covering the 30 late events of each day');
is(daily_vs_raw('daily', 'm_daily', 'order_id <= 400'), '0|6|400', '2b: the frozen rows did not move');
is(daily_vs_raw('daily', 'm_restated', 'true'), '0|6|460',
	'2b: restated (frozen + corrections) equals a hand-written GROUP BY over all of raw');
is(close_days('daily'), '', '2b: a further run finds nothing to do');
is($node->safe_psql('daily', 'SELECT count(*) || \'|\' || sum(late_events) FROM pipeline.m_corrections'),
	'6|60', '2b: the corrections were written once');
is(verify_days('daily'), 'true|true', '2b: both frozen days verify');

###########################################################################
# 3. kill -9 in the middle of restate_day
###########################################################################
$before = daily_state('daily');
my $old_digest = $node->safe_psql('daily', "SELECT digest FROM pipeline.day_closures WHERE day = '$d1'");
($holder, $holder_pid) = PipelineNode::session($node, 'daily', on_error_stop => 0);
$holder->query_safe('BEGIN; LOCK TABLE pipeline.restatements IN SHARE MODE;');
my ($restater, $restater_pid) = PipelineNode::session($node, 'daily', on_error_stop => 0);
$restater->query_until(qr/started/,
	"\\echo started\nSELECT pipeline.restate_day('m', '$d1', 'late refunds');\n");
ok(PipelineNode::wait_blocked($node, 'daily', $restater_pid, holder => $holder_pid),
	'3: restate_day recomputed D1 and waits to write its audit row')
  or die "3: backend $restater_pid never blocked";
PipelineNode::kill9_and_wait($node, $restater_pid) or die '3: no restart after kill -9';
eval { $restater->quit };
eval { $holder->quit };

is(daily_state('daily'), $before,
	'3: after the crash, the day is unchanged (version, digest, rows, corrections) and no restatement is recorded');
is(verify_days('daily'), 'true|true', '3: both frozen days still verify');
is($node->safe_psql('daily', "SELECT pipeline.restate_day('m', '$d1', 'late refunds')"), '2',
	'3: the next restate_day makes version 2');
is($node->safe_psql('daily', q{
		SELECT string_agg(concat_ws('|', day, version, reason, old_digest, (new_digest = (SELECT digest FROM pipeline.day_closures AS c WHERE c.day = r.day))::text,
		                            jsonb_array_length(old_rows), jsonb_array_length(absorbed_corrections)), ',')
		  FROM pipeline.restatements AS r}),
	"$d1|2|late refunds|$old_digest|true|3|3",
	'3: one audit row: version 2, the reason, the old digest, the old rows and the absorbed corrections');
is($node->safe_psql('daily', q{SELECT string_agg(day || ':' || n, ',' ORDER BY day)
		  FROM (SELECT day, count(*) AS n FROM pipeline.m_corrections GROUP BY day) AS c}),
	"$d2:3", "3: D1's corrections were absorbed, D2's are untouched");
is(daily_vs_raw('daily', 'm_daily', "order_id <= 400 OR (event_time AT TIME ZONE 'UTC')::date = '$d1'"),
	'0|6|430', '3: D1 is recomputed from all of raw, D2 is as frozen');
is(daily_vs_raw('daily', 'm_restated', 'true'), '0|6|460', '3: restated still equals all of raw');
is(verify_days('daily'), 'true|true', '3: both days verify');
is(close_days('daily'), '', '3: close_days finds nothing to correct after the restatement');

###########################################################################
# 4. the pg_cron run (scheduled at the start) killed while it waits on D2
###########################################################################
my $cron_pid;
{
	local $PostgreSQL::Test::Utils::timeout_default = 120;
	ok($node->poll_query_until('postgres', q{
			SELECT EXISTS (
			  SELECT FROM cron.job_run_details AS d JOIN pg_stat_activity AS a ON a.pid = d.job_pid
			   WHERE d.status = 'running' AND d.command = 'SELECT pipeline.close_days()'
			     AND a.datname = 'crondb' AND a.wait_event_type = 'Lock')}),
		'4: a close_days run started by pg_cron waits on the locked closure row');
}
$cron_pid = $node->safe_psql('postgres', q{
	SELECT job_pid FROM cron.job_run_details WHERE status = 'running' AND command = 'SELECT pipeline.close_days()'});
my $cron_run = $node->safe_psql('postgres', "SELECT runid FROM cron.job_run_details WHERE job_pid = $cron_pid");
# no more runs after this one
$node->safe_psql('crondb', 'SELECT pipeline.unschedule()');
PipelineNode::kill9_and_wait($node, $cron_pid) or die '4: no restart after kill -9';
ok($node->poll_query_until('postgres', "SELECT status = 'failed' FROM cron.job_run_details WHERE runid = $cron_run"),
	'4: pg_cron records the killed run as failed');
is($node->safe_psql('postgres', "SELECT return_message FROM cron.job_run_details WHERE runid = $cron_run"),
	'server restarted', '4: ... because the server restarted');
is(daily_state('crondb'), $cron_before, '4: the killed run left nothing behind (D1 not frozen)');
$node->safe_psql('crondb', q{ROLLBACK PREPARED 'hold_d2'});
is(close_days('crondb'), "$d1|frozen,$d2|frozen", '4: the next run freezes both days');
is(daily_vs_raw('crondb', 'm_daily', 'true'), '0|6|400', '4: exactly');
note('pg_cron scheduled at ' . $cron_t0);

$node->stop;
done_testing();
