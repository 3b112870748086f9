# PipelineNode: a PostgreSQL::Test::Cluster set up the way pipeline runs in
# production (pg_cron and pipeline preloaded), and the steps and waits the
# TAP tests share: a database with the extension, a session and its
# backend, the worker of a database, a backend blocked on a lock, a kill -9
# and the restart after it, the server log since an offset, a fold.  Every
# wait polls an observable condition (no fixed sleeps); a wait returns
# whether the condition came true before the timeout, for ok() or "or die".
package PipelineNode;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# a node with pipeline and pg_cron preloaded (preload => '...' to change
# that), the launcher looking for databases every second, $opts{conf}
# appended to postgresql.conf; allows_streaming => 1 to make it a primary
sub new_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => $opts{allows_streaming} // 0);
	my $preload = exists $opts{preload} ? $opts{preload} : 'pg_cron,pipeline';
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = '$preload'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 32
pipeline.launcher_interval = '1s'
restart_after_crash = on
});
	$node->append_conf('postgresql.conf', $opts{conf}) if $opts{conf};
	return $node;
}

# creates database $db with the extension installed in it
sub create_database
{
	my ($node, $db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION pipeline CASCADE');
	return;
}

# a background psql session on $db (%opts as for background_psql) and the
# pid of its backend
sub session
{
	my ($node, $db, %opts) = @_;
	my $session = $node->background_psql($db, %opts);
	return ($session, $session->query_safe('SELECT pg_backend_pid()'));
}

# waits until one pipeline worker runs in database $db
sub wait_worker
{
	my ($node, $db) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'pipeline worker' AND datname = '$db'});
}

# pid of the pipeline worker of database $db, waiting until there is one
sub worker_pid
{
	my ($node, $db) = @_;
	wait_worker($node, $db) or die "no pipeline worker for $db";
	return $node->safe_psql('postgres', qq{
		SELECT pid FROM pg_stat_activity
		 WHERE backend_type = 'pipeline worker' AND datname = '$db'});
}

# waits until one pipeline worker runs in database $db and it is not
# process $old_pid: the launcher started a new one
sub wait_new_worker
{
	my ($node, $db, $old_pid) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'pipeline worker' AND datname = '$db' AND pid <> $old_pid});
}

# waits until backend $pid, connected to $db, waits for a heavyweight lock;
# with holder => PID, held by that backend alone; with wait_event => NAME,
# a lock of that kind (e.g. 'transactionid')
sub wait_blocked
{
	my ($node, $db, $pid, %opts) = @_;
	my $event = defined $opts{wait_event} ? "AND wait_event = '$opts{wait_event}'" : '';
	my $by = defined $opts{holder} ? "AND pg_blocking_pids($pid) = ARRAY[$opts{holder}]" : '';
	return $node->poll_query_until($db, qq{
		SELECT EXISTS (SELECT FROM pg_stat_activity
		                WHERE pid = $pid AND state = 'active' AND wait_event_type = 'Lock' $event)
		       $by});
}

# kill -9 of server process $pid (a backend, a worker, the launcher), then
# waits until the server log says that the postmaster saw it die of signal
# 9, reinitialised and accepts connections again.  No connection may be
# attempted before: IPC::Run dies of the broken pipe to a psql that exited
# before reading its query.
sub kill9_and_wait
{
	my ($node, $pid) = @_;
	my $offset = -s $node->logfile;
	kill 'KILL', $pid;
	return eval {
		$node->wait_for_log(
			qr/\(PID $pid\) was terminated by signal 9.*reinitializing.*database system is ready to accept connections/s,
			$offset);
		1;
	} // 0;
}

# the server log written since byte offset $from (an earlier -s $node->logfile)
sub log_since
{
	my ($node, $from) = @_;
	return substr(slurp_file($node->logfile), $from);
}

# waits until the worker has folded every event of metric $metric in $db,
# or failed a fold of it
sub wait_folded_or_failed
{
	my ($node, $db, $metric) = @_;
	return $node->poll_query_until($db, qq{
		SELECT backlog = 0 OR failures > 0 FROM pipeline.status WHERE metric = '$metric'});
}

1;
