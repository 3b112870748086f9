# The launcher and the per-database workers: start, find the databases
# with the extension, survive kill -9, SIGHUP and SIGTERM, get out of the
# way of DROP DATABASE, and never run twice for one database.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $node = PipelineNode::new_node('worker');
$node->start;

# the launcher runs; no worker stays in a database without the extension
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pipeline launcher'")
  or die 'no launcher';

$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('app', 'CREATE EXTENSION pipeline CASCADE');

ok(PipelineNode::wait_worker($node, 'app'), 'a worker runs in the database with the extension');
my $pid = PipelineNode::worker_pid($node, 'app');

$node->poll_query_until('app',
	"SELECT state = 'absent' FROM pipeline.workers WHERE database = 'other'")
  or die 'database without the extension never probed';
# (the slot reads absent just before the probing worker exits)
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pipeline worker' AND datname = 'other'"),
	'no worker stays where the extension is not installed');

# a second database installing the extension gets its own worker
$node->safe_psql('other', 'CREATE EXTENSION pipeline');
ok(PipelineNode::wait_worker($node, 'other'), 'CREATE EXTENSION starts a worker at commit');

# SIGHUP: reloads settings and keeps running
$node->append_conf('postgresql.conf', "pipeline.hot_interval = '200ms'");
$node->reload;
$node->poll_query_until('app', "SELECT current_setting('pipeline.hot_interval') = '200ms'")
  or die 'reload not seen';
is(PipelineNode::worker_pid($node, 'app'), $pid, 'worker survives SIGHUP');

# kill -9: the postmaster restarts everything and the launcher brings the
# workers back, one per database
PipelineNode::kill9_and_wait($node, $pid) or die 'no restart after kill -9 of the worker';
ok(PipelineNode::wait_new_worker($node, 'app', $pid), 'worker restarted after kill -9')
  or die 'worker did not come back after kill -9';
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pipeline launcher'")
  or die 'launcher did not come back';
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pipeline worker'
	 GROUP BY datname ORDER BY 1 DESC LIMIT 1}), '1', 'never two workers for one database');

# kill -9 of the launcher: it comes back, with no duplicate workers
my $lpid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'pipeline launcher'");
PipelineNode::kill9_and_wait($node, $lpid) or die 'no restart after kill -9 of the launcher';
$node->poll_query_until('postgres', qq{
	SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pipeline launcher' AND pid <> $lpid})
  or die 'launcher did not come back after kill -9';
PipelineNode::worker_pid($node, 'app');
PipelineNode::worker_pid($node, 'other');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pipeline%'"),
	'3', 'one launcher and one worker per database after the launcher crashed');

# SIGTERM: the worker exits cleanly and is restarted after a pause
$pid = PipelineNode::worker_pid($node, 'app');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(PipelineNode::wait_new_worker($node, 'app', $pid), 'worker restarted after SIGTERM')
  or die 'worker not restarted after SIGTERM';

# DROP EXTENSION: the worker leaves
$node->safe_psql('other', 'DROP EXTENSION pipeline');
ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity
		 WHERE backend_type = 'pipeline worker' AND datname = 'other'}),
	'worker leaves after DROP EXTENSION');

# DROP DATABASE is not blocked by the connected worker
PipelineNode::worker_pid($node, 'app');
my ($ret, $out, $err) = $node->psql('postgres', 'DROP DATABASE app');
is($ret, 0, 'DROP DATABASE succeeds while a worker was connected') or diag $err;

$node->stop;

# Without the preload line, CREATE EXTENSION explains what to add.
my $bare = PipelineNode::new_node('bare', preload => 'pg_cron');
$bare->start;
($ret, $out, $err) = $bare->psql('postgres', 'CREATE EXTENSION pipeline');
isnt($ret, 0, 'CREATE EXTENSION fails without the preload');
like($err, qr/shared_preload_libraries = 'pg_cron,pipeline'/, 'the error names the line to add');
$bare->stop;

done_testing();
