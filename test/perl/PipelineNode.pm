# PipelineNode: a PostgreSQL::Test::Cluster set up the way pipeline runs in
# production (pg_cron and pipeline preloaded), plus small waiting helpers.
package PipelineNode;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

sub new_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
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

# pid of the pipeline worker of database $db, waiting until there is one
sub worker_pid
{
	my ($node, $db) = @_;
	$node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'pipeline worker' AND datname = '$db'})
	  or die "no pipeline worker for $db";
	return $node->safe_psql('postgres', qq{
		SELECT pid FROM pg_stat_activity
		 WHERE backend_type = 'pipeline worker' AND datname = '$db'});
}

1;
