# The value index a frozen day's distinct corrections look their values up
# in is built by the index builder, CONCURRENTLY, and nothing waits for it:
#
#  1. with an ingest into the frozen day still open, close_days writes the
#     day's first correction at once (a CREATE INDEX in it would wait for
#     that ingest, and every later ingest into the day would queue behind
#     it), and while the builder waits for that ingest, another ingest into
#     the day takes its locks within lock_timeout = 100ms;
#  2. the builder terminated in the middle of its build leaves an invalid
#     index and an entry retried later; corrections meanwhile scan the day
#     and stay exact;
#  3. once the entry is due again, the database worker's round starts a new
#     builder, which drops the invalid index and builds it again; the next
#     correction looks its values up in it, and restated equals an exact
#     recount of raw at every step;
#  4. a session that took its snapshot before the build and then locks the
#     partition (what DROP, ALTER and retention do) would deadlock with
#     CREATE INDEX CONCURRENTLY, which waits for that snapshot: the builder
#     yields instead, the session gets its lock, and the index is built
#     afterwards.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

# log_lock_waits: part 4 waits until the builder's own deadlock check has
# passed (it logs that it is still waiting), so that the cycle closes on
# the other session's side
my $node = PipelineNode::new_node('value_index',
	conf => "pipeline.hot_interval = '200ms'\nlog_lock_waits = on\ndeadlock_timeout = '200ms'\n");
$node->start;
my $db = 'vi';
PipelineNode::create_database($node, $db);

# a day ten days ago, frozen: 100,000 orders of 5,000 users on two platforms
my $day = $node->safe_psql($db, q{SELECT (now() AT TIME ZONE 'UTC')::date - 10});
$node->safe_psql($db, qq{
	SELECT pipeline.create_source('orders',
	  'order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, platform text NOT NULL',
	  event_id => 'order_id', allowed_lateness => '1 hour', freeze_after => '3 days', day_timezone => 'UTC');
	SELECT pipeline.create_metric('m', 'orders', dimensions => '{platform}',
	  measures => 'count(*) AS n, count(DISTINCT user_id) AS users');
	SELECT accepted FROM pipeline.ingest('orders', (SELECT jsonb_agg(jsonb_build_object(
	  'order_id', i, 'event_time', timestamptz '$day 00:00+00' + (i % 86400) * interval '1 second',
	  'user_id', 'u' || (i % 5000), 'platform', (ARRAY['web', 'ios'])[1 + i % 2]))
	  FROM generate_series(1, 100000) AS i));
	SELECT count(*) FROM pipeline.close_days(now());});
is($node->safe_psql($db, "SELECT status FROM pipeline.day_closures WHERE day = '$day'"), 'frozen',
	'the day is frozen');

my $part = $node->safe_psql($db, "SELECT pipeline._day_partition(s, '$day')::text FROM pipeline.source_catalog AS s");
my $ready = "SELECT pipeline._value_index_ready('$part', 'user_id')";
my $next_id = 1_000_000;

# a committed late batch of $n orders of new and old users for the day
sub late_batch
{
	my ($n) = @_;
	my $from = $next_id;
	$next_id += $n;
	return $node->safe_psql($db, qq{
		SELECT accepted FROM pipeline.ingest('orders', (SELECT jsonb_agg(jsonb_build_object(
		  'order_id', i, 'event_time', timestamptz '$day 12:00+00',
		  'user_id', CASE WHEN i % 2 = 0 THEN 'new' || i ELSE 'u' || (i % 5000) END,
		  'platform', (ARRAY['web', 'ios'])[1 + i % 2]))
		  FROM generate_series($from, $from + $n - 1) AS i))});
}

# restated equals an exact recount of the committed raw events of the day
sub restated_exact
{
	my ($what) = @_;
	is($node->safe_psql($db, qq{
		SELECT count(*) FROM metrics.m_restated AS x
		  FULL JOIN (SELECT platform, count(*) AS n, count(DISTINCT user_id) AS users FROM pipeline.orders_raw
		              WHERE event_time >= '$day' AND event_time < date '$day' + 1 GROUP BY platform) AS e
		    ON e.platform = x.platform AND x.day = '$day'
		 WHERE x.day = '$day' AND (x.n IS DISTINCT FROM e.n OR x.users IS DISTINCT FROM e.users)}),
		'0', "$what: restated equals an exact recount of raw");
	return;
}

my $builder = q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pipeline index builder'};

###########################################################################
# 1. nothing waits for the index
###########################################################################
my ($open, $open_pid) = PipelineNode::session($node, $db);
$open->query_safe(qq{BEGIN; SELECT accepted FROM pipeline.ingest('orders',
	'[{"order_id": 999999, "event_time": "${day}T13:00:00Z", "user_id": "open", "platform": "web"}]'::jsonb)});

is(late_batch(100), '100', '1: a late batch for the frozen day is accepted');
my $corrections = $node->psql($db, qq{SET statement_timeout = '20s';
	SELECT count(*) FROM pipeline.close_days(now()) WHERE day = '$day'}, stdout => \my $out, stderr => \my $err);
is($corrections, 0, "1: close_days writes the first correction while an ingest into the day is open ($err)");
restated_exact('1');
ok($node->poll_query_until($db, qq{SELECT EXISTS ($builder AND wait_event_type = 'Lock')}),
	'1: the index builder waits for the open ingest');
is($node->safe_psql($db, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
		. "('pipeline.' || pipeline._value_index_name('$part', 'user_id'))::regclass"), 'f',
	'1: the index is there, not valid yet');
my ($ok, $res);
$ok = $node->psql($db, qq{SET lock_timeout = '100ms'; SELECT accepted FROM pipeline.ingest('orders',
	'[{"order_id": 999998, "event_time": "${day}T14:00:00Z", "user_id": "other", "platform": "ios"}]'::jsonb)},
	stdout => \$res, stderr => \$err);
is("$ok $res", '0 1', "1: another ingest into the day meanwhile takes its locks within 100 ms ($err)");

###########################################################################
# 2. the builder terminated mid-build
###########################################################################
my $pid = $node->safe_psql($db, $builder);
$node->safe_psql($db, "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until($db, "SELECT NOT EXISTS ($builder)"), '2: the builder is gone');
is($node->safe_psql($db, qq{SELECT attempts = 1 AND retry_after > now() FROM pipeline.value_index_queue
	 WHERE part = '$part'::regclass AND col = 'user_id'}), 't',
	'2: its entry is still queued, for a later attempt');
is($node->safe_psql($db, $ready), 'f', '2: the index it left is not used');
is(late_batch(50), '50', '2: another late batch');
is($node->safe_psql($db, "SELECT count(*) > 0 FROM pipeline.close_days(now()) WHERE day = '$day'"), 't',
	'2: close_days corrects the day without the index');
restated_exact('2');

###########################################################################
# 3. the worker's round starts it again
###########################################################################
$open->query_safe('COMMIT');
$open->quit;
$node->safe_psql($db, q{UPDATE pipeline.value_index_queue SET retry_after = now()});
ok($node->poll_query_until($db, $ready), '3: the worker started a builder and the index is built');
# the entry leaves the queue on the builder's next turn, after the build commits
ok($node->poll_query_until($db, 'SELECT count(*) = 0 FROM pipeline.value_index_queue'), '3: the queue is empty');
is($node->safe_psql($db, qq{SELECT count(*) FROM pg_index WHERE indrelid = '$part'::regclass AND NOT indisvalid}),
	'0', '3: no invalid index is left on the day');
my $scans = "SELECT coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes "
	. "WHERE indexrelid = ('pipeline.' || pipeline._value_index_name('$part', 'user_id'))::regclass";
my $before = $node->safe_psql($db, $scans);
is(late_batch(40), '40', '3: a third late batch');
is($node->safe_psql($db, "SELECT count(*) > 0 FROM pipeline.close_days(now()) WHERE day = '$day'"), 't',
	'3: close_days corrects the day');
restated_exact('3');
ok($node->poll_query_until($db, "SELECT ($scans) > $before"), '3: the correction looked its values up in the index');

###########################################################################
# 4. the builder yields to a lock on the partition
###########################################################################
$node->safe_psql($db, "DROP INDEX pipeline." . $node->safe_psql($db, "SELECT pipeline._value_index_name('$part', 'user_id')"));
my ($old, $old_pid) = PipelineNode::session($node, $db);
my $log_offset = -s $node->logfile;
$old->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pipeline.batch_log');
is(late_batch(30), '30', '4: a fourth late batch');
is($node->safe_psql($db, "SELECT count(*) > 0 FROM pipeline.close_days(now()) WHERE day = '$day'"), 't',
	'4: close_days corrects the day and queues the index again');
ok($node->poll_query_until($db, qq{SELECT EXISTS ($builder AND wait_event = 'virtualxid'
	AND pg_blocking_pids(pid) = ARRAY[$old_pid])}),
	'4: the builder waits for the older snapshot');
my $bpid = $node->safe_psql($db, $builder);
$node->wait_for_log(qr/process $bpid still waiting for ShareLock on virtual transaction/, $log_offset);
$res = $old->query("SET lock_timeout = '30s'; LOCK TABLE $part IN ACCESS EXCLUSIVE MODE; SELECT 'locked'");
like($res, qr/locked/, '4: the old session gets its lock, no deadlock');
$old->query_safe('COMMIT');
$old->quit;
ok($node->poll_query_until($db, "SELECT NOT EXISTS ($builder)"), '4: the builder yielded');
$node->safe_psql($db, q{UPDATE pipeline.value_index_queue SET retry_after = now()});
ok($node->poll_query_until($db, $ready), '4: the index is built afterwards');
restated_exact('4');

$node->stop;
done_testing();
