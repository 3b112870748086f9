# A source distributed on a Citus cluster (a coordinator and two workers on
# 127.0.0.1) gives the same numbers as on a single node: the same scenario
# of every layer (ingest with duplicates, bad rows and a retried batch key,
# the fold, late data, the freeze, corrections, restated, reconcile) runs
# on both, and every receipt, dead letter, hot bucket, daily row,
# correction, restated and reconcile row is compared.
#
# Needs Citus: an installed citus.so is used; without one, the vendored
# build (../shared/vendor/citus/install.sh, run by test/run_all.sh) is what
# installs it; otherwise the test is skipped with a message.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
if (!-f "$pkglibdir/citus.so")
{
	plan skip_all => "Citus is not installed in $pkglibdir (install postgresql-15-citus-13.2, "
	  . "or run ../shared/vendor/citus/install.sh when it exists)";
}

my $tmp = PostgreSQL::Test::Utils::tempdir;

# is() for two texts, with a unified diff when they differ
sub same_text
{
	my ($name, $a, $b) = @_;
	my $same = $a eq $b;
	ok($same, $name);
	return if $same;
	(my $f = $name) =~ s/\W+/_/g;
	append_to_file("$tmp/$f.single", "$a\n");
	append_to_file("$tmp/$f.citus", "$b\n");
	my ($diff, $err) = ('', '');
	IPC::Run::run([ 'diff', '-u', "$tmp/$f.single", "$tmp/$f.citus" ], '>', \$diff, '2>', \$err);
	diag("diff -u single citus:\n$diff$err");
}

sub citus_node
{
	my ($name) = @_;
	my $node = PipelineNode::new_node($name,
		preload => 'citus,pg_cron,pipeline',
		conf => qq{
listen_addresses = '127.0.0.1'
pipeline.enabled = off
citus.log_remote_commands = off
max_connections = 100
max_prepared_transactions = 100
});
	$node->append_conf('pg_hba.conf', "host all all 127.0.0.1/32 trust\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE DATABASE pipeline');
	$node->safe_psql('pipeline', 'CREATE EXTENSION citus');
	return $node;
}

my $single = PipelineNode::new_node('single', conf => "pipeline.enabled = off");
$single->start;
$single->safe_psql('postgres', 'CREATE DATABASE pipeline');
$single->safe_psql('pipeline', 'CREATE EXTENSION pipeline CASCADE');

my $coord = citus_node('coordinator');
my @workers = map { citus_node("worker$_") } (1, 2);
$coord->safe_psql('pipeline', qq{SELECT citus_set_coordinator_host('127.0.0.1', ${\ $coord->port})});
$coord->safe_psql('pipeline', qq{SELECT citus_add_node('127.0.0.1', ${\ $_->port})}) for @workers;
$coord->safe_psql('pipeline', 'CREATE EXTENSION pipeline CASCADE');

# the days of the scenario: three whole days before yesterday (UTC)
my $d0 = $single->safe_psql('pipeline', q{SELECT current_date - 4});

# a batch as a jsonb array: ids $from..$to, event times spread over the
# three days, amounts, users, kinds and platforms from the id; every
# $bad-th event breaks the contract (a negative amount, a missing kind)
sub batch_sql
{
	my ($from, $to, %o) = @_;
	my $days = $o{days} // 3;
	my $bad = $o{bad} // 0;
	my $time = qq{('$d0'::date + (i % $days))::timestamptz + (i % 1440) * interval '1 minute'};
	return qq{(SELECT jsonb_agg(CASE
	        WHEN $bad > 0 AND i % $bad = 0 THEN jsonb_build_object('event_id', i, 'event_time', $time, 'amount', -1, 'kind', 'k')
	        WHEN $bad > 0 AND i % $bad = 1 THEN jsonb_build_object('event_id', i, 'event_time', $time)
	        ELSE jsonb_build_object('event_id', i, 'event_time', $time, 'kind', 'k' || (i % 3),
	               'platform', CASE WHEN i % 4 = 0 THEN NULL ELSE 'p' || (i % 2) END,
	               'user_id', 'u' || (i % 97), 'amount', (i % 50) * 0.5) END ORDER BY i)
	   FROM generate_series($from, $to) AS i)};
}

my %scenario;

# runs the scenario on $node, distributing the source first if $citus;
# returns every number of every layer, as text
sub scenario
{
	my ($node, $citus) = @_;
	my $q = sub { $node->safe_psql('pipeline', $_[0]) };
	my @out;
	$q->(q{SELECT pipeline.create_source('ev',
	        'event_id bigint NOT NULL, event_time timestamptz NOT NULL, kind text NOT NULL,
	         platform text, user_id text, amount numeric(10,2) CHECK (amount >= 0)')});
	$q->(q{SELECT pipeline.distribute_source('ev')}) if $citus;
	$q->(q{SELECT pipeline.create_metric('m', 'ev', dimensions => '{kind,platform}',
	        measures => 'count(*) AS events, sum(amount) AS revenue, min(amount) AS lo, max(amount) AS hi,
	                     avg(amount) AS avg_amount, count(DISTINCT user_id) AS users',
	        bucket => '1 hour', hot_retention => '30 days')});
	# batches: fresh, overlapping (duplicates), with bad rows, a retried key
	push @out, $q->(q{SELECT * FROM pipeline.ingest('ev', } . batch_sql(1, 3000, bad => 101) . q{)});
	push @out, $q->(q{SELECT * FROM pipeline.ingest('ev', } . batch_sql(2500, 4000) . q{, batch_key => 'b2')});
	push @out, $q->(q{SELECT * FROM pipeline.ingest('ev', } . batch_sql(2500, 4000) . q{, batch_key => 'b2')});
	push @out, $q->(q{SELECT * FROM pipeline.ingest('ev', } . batch_sql(3900, 4100) . q{::text)});
	push @out, 'folded ' . $q->(q{SELECT pipeline.run_hot()});
	# the first day freezes, the second is provisional
	my $as_of = qq{('$d0'::date + 2)::timestamptz + interval '1 hour'};
	push @out, $q->(qq{SELECT * FROM pipeline.close_days($as_of) ORDER BY 1, 2, 3});
	# late events for every day (the first is frozen): new, and re-sent
	push @out, $q->(q{SELECT * FROM pipeline.ingest('ev', } . batch_sql(5000, 5600, bad => 50) . q{)});
	push @out, $q->(q{SELECT * FROM pipeline.ingest('ev', } . batch_sql(1, 200) . q{)});
	push @out, 'folded ' . $q->(q{SELECT pipeline.run_hot()});
	push @out, $q->(qq{SELECT * FROM pipeline.close_days($as_of) ORDER BY 1, 2, 3});
	push @out, $q->(qq{SELECT * FROM pipeline.close_days($as_of) ORDER BY 1, 2, 3});
	my %layers = (
		receipts => q{SELECT batch_id, source, batch_key, received, accepted, duplicates, rejected
		                FROM pipeline.batches ORDER BY batch_id},
		dead_letters => q{SELECT batch_id, payload, error, field FROM pipeline.dead_letters ORDER BY id},
		raw => q{SELECT count(*), count(DISTINCT event_id), sum(amount), sum(_pl_batch) FROM pipeline.ev_raw},
		live => q{SELECT * FROM metrics.m_live ORDER BY bucket, kind, platform},
		daily => q{SELECT day, kind, platform, events, revenue, lo, hi, avg_amount, users, status
		             FROM metrics.m_daily ORDER BY 1, 2, 3},
		corrections => q{SELECT day, kind, platform, events_delta, revenue_delta, lo, hi, users_delta, batch_ids
		                   FROM metrics.m_corrections ORDER BY 1, 2, 3},
		restated => q{SELECT * FROM metrics.m_restated ORDER BY 1, 2, 3},
		reconcile => q{SELECT * FROM metrics.m_reconcile ORDER BY 1, 2, 3},
		exact => q{SELECT (event_time AT TIME ZONE 'UTC')::date, kind, platform, count(*), sum(amount), min(amount),
		                  max(amount), round(avg(amount), 6), count(DISTINCT user_id)
		             FROM pipeline.ev_raw GROUP BY 1, 2, 3 ORDER BY 1, 2, 3},
		status => q{SELECT name, events_folded, backlog FROM pipeline.status WHERE kind = 'metric'});
	$scenario{$_} = $q->($layers{$_}) for keys %layers;
	$scenario{steps} = join("\n", @out);
	return {%scenario};
}

my $a = scenario($single, 0);
my $b = scenario($coord, 1);
same_text($_, $a->{$_}, $b->{$_}) for sort keys %$a;

done_testing();
