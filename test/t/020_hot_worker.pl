# The database worker folds the hot layer by itself: events reach
# metrics.<m>_live without anyone calling run_hot(); a worker killed with
# kill -9 in the middle of a fold loses and doubles nothing; a metric whose
# fold fails neither stops the others nor is retried every round, and
# recovers once fixed; and the fold runs as the metric's owner, not as the
# worker's superuser.  Every wait is a poll on an observable condition.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $node = PipelineNode::new_node('hot_worker', conf => "pipeline.hot_interval = '100ms'");
$node->start;

my $contract = q{order_id bigint NOT NULL, event_time timestamptz NOT NULL, amount numeric};
my $measures = q{count(*) AS n, sum(amount) AS total};

# one database per case, so that every whole-table check below is exact
sub setup_db
{
	my ($db) = @_;
	PipelineNode::create_database($node, $db);
	$node->safe_psql($db, qq{SELECT pipeline.create_source('orders', '$contract', event_id => 'order_id')});
	return PipelineNode::worker_pid($node, $db);
}

# ingests order ids $from..$to, amount (id % 100) / 4, event times in the
# 50 whole minutes before the current one (one-minute buckets: id % 50
# picks the bucket); returns the receipt's accepted count
sub ingest
{
	my ($db, $from, $to) = @_;
	return $node->safe_psql($db, qq{
		SELECT accepted FROM pipeline.ingest('orders', (
		  SELECT jsonb_agg(jsonb_build_object(
		           'order_id', i,
		           'event_time', date_trunc('minute', now()) - interval '50 minutes'
		                         + (i % 50) * interval '1 minute' + (i % 60) * interval '1 second',
		           'amount', (i % 100) * 0.25))
		    FROM generate_series($from, $to) AS i))});
}

# events_folded|backlog|failures|last_error of a metric
sub status
{
	my ($db, $metric) = @_;
	return $node->safe_psql($db, qq{
		SELECT events_folded || '|' || backlog || '|' || failures || '|' || coalesce(last_error, '')
		  FROM pipeline.status WHERE metric = '$metric'});
}

# buckets where metrics.<metric>_live differs from a hand-written GROUP BY
# over raw (restricted by $where), and the event count and total of that
# GROUP BY, as 'mismatches|events|total'
sub versus_raw
{
	my ($db, $metric, $where) = @_;
	$where = 'true' unless defined $where;
	return $node->safe_psql($db, qq{
		WITH h AS (
		  SELECT date_bin('1 minute', event_time, timestamptz '2000-01-01 00:00:00+00') AS bucket,
		         count(*) AS n, sum(amount) AS total
		    FROM pipeline.orders_raw WHERE $where GROUP BY 1)
		SELECT (SELECT count(*) FROM h FULL JOIN metrics.${metric}_live AS l USING (bucket)
		         WHERE (h.n, h.total) IS DISTINCT FROM (l.n, l.total))
		       || '|' || (SELECT sum(n) FROM h) || '|' || (SELECT sum(total) FROM h)});
}

###########################################################################
# a. the worker folds on its own
###########################################################################
setup_db('live');
$node->safe_psql('live', qq{SELECT pipeline.create_metric('sales', 'orders', measures => '$measures')});
my $t0 = $node->safe_psql('live', 'SELECT clock_timestamp()');
is(ingest('live', 1, 1000), '1000', 'a: 1000 events accepted');

ok($node->poll_query_until('live', 'SELECT sum(n) = 1000 FROM metrics.sales_live'),
	'a: the 1000 events reach metrics.sales_live without any run_hot() call');
is(status('live', 'sales'), '1000|0|0|',
	'a: status: events_folded 1000, backlog 0, no failure, last_error NULL');
is(versus_raw('live', 'sales'), '0|1000|12375.00',
	'a: every bucket equals a hand-written GROUP BY over raw');
is($node->safe_psql('live', 'SELECT count(*) FROM metrics.sales_live'), '50',
	'a: 50 one-minute buckets');
is($node->safe_psql('live', qq{
		SELECT last_fold_at BETWEEN '$t0' AND clock_timestamp() FROM pipeline.status WHERE metric = 'sales'}),
	't', 'a: last_fold_at is the time of the fold that took the events (the worker\'s clock moves)');

###########################################################################
# b. kill -9 of the worker in the middle of a fold
###########################################################################
setup_db('crash');
$node->safe_psql('crash', qq{SELECT pipeline.create_metric('m', 'orders', measures => '$measures')});
is(ingest('crash', 1, 600), '600', 'b: first batch accepted');
ok(PipelineNode::wait_folded_or_failed($node, 'crash', 'm'), 'b: first batch folded or failed');
is(status('crash', 'm'), '600|0|0|', 'b: first batch folded by the worker');

# a session holding SHARE on the hot table blocks the fold's INSERT: the
# worker is then inside its fold transaction (metric row locked, batches
# read), holding nothing committed yet
my ($holder, $holder_pid) = PipelineNode::session($node, 'crash', on_error_stop => 0);
$holder->query_safe('BEGIN; LOCK TABLE pipeline.m_hot IN SHARE MODE;');
is(ingest('crash', 601, 1000), '400', 'b: second batch accepted while the hot table is locked');

ok($node->poll_query_until('crash', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'pipeline worker' AND datname = 'crash'
		   AND wait_event_type = 'Lock' AND query = 'pipeline: fold m'
		   AND pg_blocking_pids(pid) = ARRAY[$holder_pid]}),
	'b: the worker is blocked in the fold of m, behind the lock holder');
my $victim = $node->safe_psql('crash', q{
	SELECT pid FROM pg_stat_activity WHERE backend_type = 'pipeline worker' AND datname = 'crash'});
is(status('crash', 'm'), '600|400|0|', 'b: mid-fold: the second batch is still backlog');

# the postmaster restarts everything (the lock holder's session dies too)
ok(PipelineNode::kill9_and_wait($node, $victim), 'b: the worker was killed by signal 9 and the server reinitialised')
  or die 'b: no restart after kill -9';
PipelineNode::wait_new_worker($node, 'crash', $victim)
  or die 'b: worker did not come back after kill -9';
eval { $holder->quit };

ok(PipelineNode::wait_folded_or_failed($node, 'crash', 'm'), 'b: after the restart, the new worker folds again');
is(status('crash', 'm'), '1000|0|0|', 'b: events_folded 1000 after the crash, backlog 0, no failure');
is($node->safe_psql('crash', 'SELECT sum(accepted) FROM pipeline.batches'), '1000',
	'b: sum(accepted) of the receipts is 1000');
is(versus_raw('crash', 'm'), '0|1000|12375.00',
	'b: hot equals a hand-written GROUP BY over raw: nothing lost, nothing doubled');

###########################################################################
# c. a failing metric: the others go on, it backs off, it recovers
###########################################################################
setup_db('iso');
$node->safe_psql('iso', qq{
	SELECT pipeline.create_metric('broken', 'orders', measures => '$measures');
	SELECT pipeline.create_metric('good', 'orders', measures => '$measures');});
is(ingest('iso', 1, 500), '500', 'c: first batch accepted');
ok($node->poll_query_until('iso', 'SELECT bool_and(backlog = 0 OR failures > 0) FROM pipeline.status'),
	'c: first batch folded or failed');
is(status('iso', 'broken') . ' ' . status('iso', 'good'), '500|0|0| 500|0|0|',
	'c: both metrics folded the first batch');

# every insert into broken's hot table now fails
$node->safe_psql('iso', 'ALTER TABLE pipeline.broken_hot ADD CONSTRAINT c CHECK (false) NOT VALID');
my $log_offset = -s $node->logfile;
$t0 = $node->safe_psql('iso', 'SELECT clock_timestamp()');
is(ingest('iso', 501, 800), '300', 'c: second batch accepted');
ok($node->poll_query_until('iso', q{
		SELECT bool_and(CASE metric WHEN 'broken' THEN failures > 0 ELSE backlog = 0 END)
		  FROM pipeline.status}),
	'c: broken failed its fold, good folded the second batch');
is(status('iso', 'good'), '800|0|0|', 'c: good folded all 800 events, no failure');
is(versus_raw('iso', 'good'), '0|800|9900.00', 'c: good equals the hand-written GROUP BY');
my ($b_folded, $b_backlog, $b_failures, $b_error) = split /\|/, status('iso', 'broken'), 4;
is("$b_folded|$b_backlog", '500|300', 'c: broken: 500 folded, 300 in backlog');
is($b_failures, '1', 'c: broken: one failure counted');
like($b_error, qr/violates check constraint "c"/, 'c: broken: last_error names the failure');
is($node->safe_psql('iso', qq{
		SELECT last_error_at BETWEEN '$t0' AND clock_timestamp() FROM pipeline.status WHERE metric = 'broken'}),
	't', 'c: broken: last_error_at is the time of the failure');
is(versus_raw('iso', 'broken', 'order_id <= 500'), '0|500|6187.50',
	'c: broken kept exactly the first batch: its failed fold left no partial output');
like(PipelineNode::log_since($node, $log_offset), qr/pipeline: fold of metric "broken" failed: .*violates check constraint "c"/,
	'c: the failure is in the server log');

# backoff: 2^failures seconds (2 s after one failure) before the next
# try.  Once a worker round has ended more than 0.5 s after the failure
# (about five 100ms rounds, each of which would have retried without
# backoff), there was still one failure only, or, on a machine slow
# enough for the retry to have come meanwhile, the latest failure came
# 2 s or more after the first.
my $first_failure = $node->safe_psql('iso', q{SELECT last_error_at FROM pipeline.status WHERE metric = 'broken'});
ok($node->poll_query_until('iso', q{
		SELECT worker_last_tick > last_error_at + interval '0.5 seconds'
		  FROM pipeline.status WHERE metric = 'broken'}),
	'c: the worker kept running rounds after the failure');
is($node->safe_psql('iso', qq{
		SELECT failures = 1 OR last_error_at >= '$first_failure'::timestamptz + interval '2 seconds'
		  FROM pipeline.status WHERE metric = 'broken'}),
	't', 'c: broken was not retried in the rounds that followed (backoff)');

# fixed: the next try, due 2 s after the failure, folds the backlog, once
# (the wait gives up 20 s after the failure; the checks below then fail)
$node->safe_psql('iso', 'ALTER TABLE pipeline.broken_hot DROP CONSTRAINT c');
$node->poll_query_until('iso', q{
	SELECT (failures = 0 AND backlog = 0) OR clock_timestamp() > last_error_at + interval '20 seconds'
	  FROM pipeline.status WHERE metric = 'broken'})
  or die 'c: waiting for the retry of broken timed out';
is(status('iso', 'broken'), '800|0|0|', 'c: broken: events_folded 800, backlog 0, last_error cleared');
is(versus_raw('iso', 'broken'), '0|800|9900.00', 'c: broken equals the hand-written GROUP BY');
is($node->safe_psql('iso', q{SELECT last_error_at IS NULL FROM pipeline.status WHERE metric = 'broken'}),
	't', 'c: broken: last_error_at cleared');

###########################################################################
# d. a metric owned by a non-superuser is folded as that role
###########################################################################
setup_db('owned');
$node->safe_psql('owned', q{
	CREATE ROLE hot_owner;
	GRANT USAGE, CREATE ON SCHEMA pipeline, metrics TO hot_owner;
	GRANT SELECT ON pipeline.orders_raw TO hot_owner;});
is(ingest('owned', 1, 400), '400', 'd: events accepted (source owned by the superuser)');
$node->safe_psql('owned', qq{
	SET ROLE hot_owner;
	SELECT pipeline.create_metric('mine', 'orders', measures => '$measures');
	RESET ROLE;});
is($node->safe_psql('owned', q{
		SELECT (SELECT relowner::regrole::text FROM pg_class WHERE oid = 'pipeline.mine_hot'::regclass)
		       || '|' || (SELECT owner::text FROM pipeline.metrics WHERE metric = 'mine')}),
	'hot_owner|hot_owner', 'd: the hot table and the metric belong to hot_owner');

ok(PipelineNode::wait_folded_or_failed($node, 'owned', 'mine'), 'd: the worker tried the fold of mine');
is(status('owned', 'mine'), '400|0|0|', 'd: the worker folded the metric of hot_owner');
is(versus_raw('owned', 'mine'), '0|400|4950.00', 'd: mine equals the hand-written GROUP BY');

# without SELECT on raw, the fold fails: it does not run as superuser
$node->safe_psql('owned', 'REVOKE SELECT ON pipeline.orders_raw FROM hot_owner');
is(ingest('owned', 401, 500), '100', 'd: more events accepted');
ok($node->poll_query_until('owned', q{SELECT failures > 0 FROM pipeline.status WHERE metric = 'mine'}),
	'd: the fold of mine fails once hot_owner cannot read raw');
my ($o_folded, $o_backlog, $o_failures, $o_error) = split /\|/, status('owned', 'mine'), 4;
is("$o_folded|$o_backlog", '400|100', 'd: nothing of the new batch folded');
like($o_error, qr/permission denied for table orders_raw/,
	'd: last_error: permission denied for the raw table (the fold runs as hot_owner)');

$node->stop;
done_testing();
