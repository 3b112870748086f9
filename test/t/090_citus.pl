# A source distributed on a Citus cluster (a coordinator and two workers on
# 127.0.0.1) gives the same numbers as on a single node: the same scenario
# of every layer (ingest with duplicates, bad rows and a retried batch key,
# the fold, late data, the freeze, corrections, the bulk path, checks, a
# restatement, a contract change, retention, restated, reconcile) runs on
# both, and every receipt, dead letter, hot bucket, daily row, correction,
# check result, restated and reconcile row is compared.  A dump of the
# coordinator restores into a single node and into a new Citus database
# (distributed again) with every number intact, and the work goes on the
# same there.
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
	# (wal senders allowed: the half-way commit below waits for a standby)
	my $node = PipelineNode::new_node($name,
		allows_streaming => 1,
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

# every number of every layer, one query each
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
	# (frozen_at of a restated day is when restate_day ran)
	reconcile => q{SELECT (to_jsonb(r) - 'frozen_at')::text FROM metrics.m_reconcile AS r ORDER BY day, kind, platform},
	exact => q{SELECT (event_time AT TIME ZONE 'UTC')::date, kind, platform, count(*), sum(amount), min(amount),
	                  max(amount), round(avg(amount), 6), count(DISTINCT user_id)
	             FROM pipeline.ev_raw GROUP BY 1, 2, 3 ORDER BY 1, 2, 3},
	status => q{SELECT name, events_folded, backlog FROM pipeline.status WHERE kind = 'metric'});

# every layer of the database $db on $node, as texts
sub layers
{
	my ($node, $db) = @_;
	return { map { $_ => $node->safe_psql($db, $layers{$_}) } keys %layers };
}

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
	# the bulk path: new rows, re-sent ids, a missing kind, negative amounts
	$q->(qq{INSERT INTO pipeline.ev_load (event_id, event_time, kind, platform, user_id, amount)
	        SELECT i, ('$d0'::date + (i % 3))::timestamptz + (i % 1440) * interval '1 minute',
	               CASE WHEN i % 37 = 0 THEN NULL ELSE 'k' || (i % 3) END, 'p' || (i % 2), 'u' || (i % 89),
	               CASE WHEN i % 41 = 0 THEN '-5' ELSE ((i % 30) * 0.25)::text END
	          FROM generate_series(5400, 6400) AS i});
	push @out, 'folded ' . $q->(q{SELECT pipeline.run_hot()});
	push @out, $q->(qq{SELECT * FROM pipeline.close_days($as_of) ORDER BY 1, 2, 3});
	# checks over every layer
	$q->(q{SELECT pipeline.add_check('m_complete', 'completeness', 'm', '{"tolerance": 0}')});
	$q->(q{SELECT pipeline.add_check('ev_valid', 'validity', 'ev', '{"window": "30 days", "max_reject_rate": 0.5}')});
	$q->(q{SELECT pipeline.add_check('ev_kinds', 'accepted_values', 'ev',
	        '{"column": "kind", "values": ["k0", "k1"], "window": "30 days", "max_unexpected_rate": 0.5}')});
	push @out, $q->(q{SELECT check_name, status, observed, threshold FROM pipeline.run_checks() ORDER BY 1});
	# a restatement of the frozen day, absorbing its corrections
	push @out, 'restated version ' . $q->(qq{SELECT pipeline.restate_day('m', '$d0', 'absorb the late events')});
	# a contract change, and events that use it
	push @out, 'contract version ' . $q->(q{SELECT pipeline.evolve_source('ev', 'ADD COLUMN coupon text')});
	push @out, $q->(q{SELECT * FROM pipeline.ingest('ev', (SELECT jsonb_agg(jsonb_build_object('event_id', i,
	        'event_time', ('} . $d0 . q{'::date + (i % 3))::timestamptz + interval '5 hours', 'kind', 'k1', 'amount', 1,
	        'user_id', 'c' || (i % 7), 'coupon', 'C' || (i % 4))) FROM generate_series(7000, 7100) AS i))});
	push @out, 'folded ' . $q->(q{SELECT pipeline.run_hot()});
	push @out, $q->(qq{SELECT * FROM pipeline.close_days($as_of) ORDER BY 1, 2, 3});
	push @out, 'coupons ' . $q->(q{SELECT count(coupon) FROM pipeline.ev_raw});
	# retention: the frozen day's raw events go
	$q->(q{SELECT pipeline.set_retention('ev', raw => '1 day')});
	push @out, $q->(q{SELECT object, action FROM pipeline.maintain() WHERE action = 'dropped' ORDER BY 1});
	my %scenario = %{ layers($node, 'pipeline') };
	$scenario{steps} = join("\n", @out);
	return {%scenario};
}

my $a = scenario($single, 0);
my $b = scenario($coord, 1);
same_text($_, $a->{$_}, $b->{$_}) for sort keys %$a;
# (and the scenario did what it says: the restatement, the new column,
# the dropped day, the checks)
like($a->{steps}, qr/^restated version 2$/m, 'the scenario restated the frozen day');
like($a->{steps}, qr/^coupons 101$/m, 'the scenario ingested events with the new column');
like($a->{steps}, qr/\|dropped$/m, 'the scenario dropped a day by retention');
like($a->{steps}, qr/^ev_kinds\|pass\|0\.33\d*\|0\.5\n(?s:.*)^m_complete\|pass\|0\|0$/m,
	'the scenario ran the checks (a third of the kinds unexpected, every layer complete)');

# A distributed ingest sends its statements over one connection per worker
# (src/raw_store.c); the setting does not outlive the call (an error
# unwinds it with the transaction, as any SET of a function)
is($coord->safe_psql('pipeline', q{
	SET citus.max_adaptive_executor_pool_size = 7;
	SELECT accepted FROM pipeline.ingest('ev', jsonb_build_array(jsonb_build_object(
	    'event_id', 90001, 'event_time', now() - interval '1 minute', 'kind', 'k1')));
	SHOW citus.max_adaptive_executor_pool_size;}), "1
7",
	'a distributed ingest leaves the session\'s Citus pool size as it was');

# Re-sent text ids on a distributed source: the new ones come back from
# the workers and are matched against the chunk by the id type's own
# ordering (copied out of the executor's memory first, which this build
# without assertions would not show if they were not)
is($coord->safe_psql('pipeline', q{
	SELECT pipeline.create_source('tx', 'id text NOT NULL, event_time timestamptz NOT NULL', event_id => 'id');
	SELECT pipeline.distribute_source('tx');
	SELECT accepted FROM pipeline.ingest('tx', (SELECT jsonb_agg(jsonb_build_object('id', 'id-' || i, 'event_time', now()))
	                                            FROM generate_series(1, 300) AS i));
	SELECT accepted || ' ' || duplicates FROM pipeline.ingest('tx', (SELECT jsonb_agg(jsonb_build_object('id', 'id-' || i, 'event_time', now()))
	                                            FROM generate_series(201, 700) AS i));
	SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || min(id) || ' ' || max(id) FROM pipeline.tx_raw;
	SELECT pipeline.drop_source('tx');}), "\n\n300\n400 100\n700 700 id-1 id-99\n",
	're-sent text ids: the new ones stored, once');

# The layers' work runs on the workers: the fold's aggregation (distinct
# sketches included) and the day's computation are pushed down.
my $fold_plan = $coord->safe_psql('pipeline', q{
	SELECT pipeline._distributed_fold_sql(fold_sql, definition) FROM pipeline.metric_catalog WHERE metric = 'm'});
$fold_plan =~ s/\$1/'{1,2}'::bigint[]/g;
$fold_plan =~ s/\$[234]/now() - interval '30 days'/g;
$fold_plan =~ s/\$5/1::bigint/g;
$fold_plan =~ s/\$6/2::bigint/g;
my $explain = $coord->safe_psql('pipeline', "EXPLAIN (COSTS OFF) $fold_plan");
like($explain, qr/Custom Scan \(Citus Adaptive\)(?s:.*)->  Task(?s:.*)(Group|Hash)Aggregate/,
	'the fold aggregates on the workers');

# Dump and restore.  pg_dump on the coordinator reads a distributed
# source's events from the shards.  Restored into a single node (the dump's
# Citus extension left out), the source is a single-node source; restored
# into a Citus database, distribute_source distributes it again.  Either
# way every number is the coordinator's, and the work goes on from there
# as it does on the coordinator: a retried batch key finds its receipt, new
# and late events are folded, corrected or refused, the next day freezes.
sub more
{
	my ($node, $db) = @_;
	my $q = sub { $node->safe_psql($db, $_[0]) };
	my @out;
	push @out, $q->(q{SELECT * FROM pipeline.ingest('ev', } . batch_sql(2500, 4000) . q{, batch_key => 'b2')});
	push @out, $q->(q{SELECT * FROM pipeline.ingest('ev', } . batch_sql(8000, 8600, bad => 60) . q{)});
	push @out, 'folded ' . $q->(q{SELECT pipeline.run_hot()});
	push @out, $q->(qq{SELECT * FROM pipeline.close_days(('$d0'::date + 3)::timestamptz + interval '1 hour') ORDER BY 1, 2, 3});
	return ({ %{ layers($node, $db) }, steps => join("\n", @out) },
		$q->(q{SELECT pipeline._distributed('pipeline.ev_raw')}));
}

my $dump = "$tmp/coordinator.dump";
my ($dump_out, $dump_err) = ('', '');
IPC::Run::run([ 'pg_dump', '-Fc', '-f', $dump, '-d', $coord->connstr('pipeline') ], '>', \$dump_out, '2>', \$dump_err)
  or die "pg_dump of the coordinator failed: $dump_err";
my $at_dump = layers($coord, 'pipeline');

# into a single node: the restore list without Citus's extension
my ($list, $list_err) = ('', '');
IPC::Run::run([ 'pg_restore', '-l', $dump ], '>', \$list, '2>', \$list_err) or die "pg_restore -l failed: $list_err";
my $without_citus = join('', grep { !/ (EXTENSION|COMMENT) - (EXTENSION )?citus/ } split(/^/, $list));
ok(length($without_citus) < length($list), 'the dump holds Citus\'s extension, left out for a single node');
append_to_file("$tmp/restore.list", $without_citus);
$single->safe_psql('postgres', 'CREATE DATABASE restored');
my ($restore_out, $restore_err) = ('', '');
ok(IPC::Run::run([ 'pg_restore', '--exit-on-error', '-L', "$tmp/restore.list", '-d', $single->connstr('restored'), $dump ],
		'>', \$restore_out, '2>', \$restore_err),
	'the coordinator\'s dump restores into a single node') or diag($restore_err);
my $restored = layers($single, 'restored');
same_text("restored on a single node: $_", $at_dump->{$_}, $restored->{$_}) for sort keys %$at_dump;

# into a Citus database: its nodes, then the source distributed again
$_->safe_psql('postgres', 'CREATE DATABASE restored') for ($coord, @workers);
$_->safe_psql('restored', 'CREATE EXTENSION citus') for @workers;
($restore_out, $restore_err) = ('', '');
ok(IPC::Run::run([ 'pg_restore', '--exit-on-error', '-d', $coord->connstr('restored'), $dump ],
		'>', \$restore_out, '2>', \$restore_err),
	'the coordinator\'s dump restores into a new Citus database') or diag($restore_err);
$coord->safe_psql('restored', qq{SELECT citus_set_coordinator_host('127.0.0.1', ${\ $coord->port})});
$coord->safe_psql('restored', qq{SELECT citus_add_node('127.0.0.1', ${\ $_->port})}) for @workers;
$coord->safe_psql('restored', q{SELECT pipeline.distribute_source('ev')});
my $redistributed = layers($coord, 'restored');
same_text("restored and distributed again: $_", $at_dump->{$_}, $redistributed->{$_}) for sort keys %$at_dump;

# and the work goes on the same in all three
my ($go_on, $dist) = more($coord, 'pipeline');
like($go_on->{steps}, qr/^folded [1-9]/m, 'the next fold folded events');
like($go_on->{steps}, qr/\|frozen$/m, 'the next close froze a day');
for my $other ([ 'single node', $single, 'f' ], [ 'distributed again', $coord, 't' ])
{
	my ($name, $node, $want) = @$other;
	my ($after, $distributed) = more($node, 'restored');
	is($distributed, $want, "restored ($name): the source is " . ($want eq 't' ? '' : 'not ') . 'distributed');
	same_text("after the restore ($name), the work goes on: $_", $go_on->{$_}, $after->{$_}) for sort keys %$go_on;
}

# Commits finishing on the workers: batches committed on the coordinator
# whose rows are not yet visible on the workers (Citus's second commit
# phase) are neither lost nor doubled by folds, freezes and corrections
# running all the time.  Four sessions ingest (new ids, re-sent ids, a
# frozen day among the event days) while one folds and closes days.
$coord->safe_psql('pipeline', q{
	SELECT pipeline.create_source('cc', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text');
	SELECT pipeline.distribute_source('cc', 4);
	SELECT pipeline.create_metric('mc', 'cc', measures => 'count(*) AS events, count(DISTINCT user_id) AS users',
	                              bucket => '1 hour', hot_retention => '30 days');});
my $as_of = qq{('$d0'::date + 2)::timestamptz + interval '1 hour'};
$coord->safe_psql('pipeline', qq{
	SELECT * FROM pipeline.ingest('cc', (SELECT jsonb_agg(jsonb_build_object('event_id', i,
	         'event_time', '$d0'::date + (i % 3) + (i % 1440) * interval '1 minute', 'user_id', 'u' || (i % 5000)))
	    FROM generate_series(1, 3000) AS i));
	SELECT pipeline.run_hot();
	SELECT * FROM pipeline.close_days($as_of);});
append_to_file("$tmp/ingest.sql", qq{\\set base random(1, 20000)
SELECT accepted FROM pipeline.ingest('cc', (SELECT jsonb_agg(jsonb_build_object('event_id', :base * 10 + i,
         'event_time', '$d0'::date + ((:base + i) % 3) + (i % 1440) * interval '1 minute', 'user_id', 'u' || ((:base + i) % 7919)))
    FROM generate_series(1, 10) AS i));
});
append_to_file("$tmp/fold.sql", qq{SELECT pipeline.run_hot('mc');
SELECT count(*) FROM pipeline.close_days($as_of);
});
my @pgbench = ('pgbench', '-n', '-T', '15', '-d', $coord->connstr('pipeline'));
my ($out1, $out2, $err1, $err2) = ('', '', '', '');
my $h1 = IPC::Run::start([ @pgbench, '-c', '4', '-j', '2', '-f', "$tmp/ingest.sql" ], '>', \$out1, '2>', \$err1);
my $h2 = IPC::Run::start([ @pgbench, '-c', '1', '-f', "$tmp/fold.sql" ], '>', \$out2, '2>', \$err2);
$h1->finish;
$h2->finish;
my ($batches) = $out1 =~ /transactions actually processed: (\d+)/;
my ($folds) = $out2 =~ /transactions actually processed: (\d+)/;
ok($batches && $folds, "concurrent ingest and folds ran ($batches batches, $folds folds and closes)")
  or diag("$err1\n$err2");
$coord->safe_psql('pipeline', qq{SELECT pipeline.run_hot(); SELECT * FROM pipeline.close_days($as_of);});
is($coord->safe_psql('pipeline', q{SELECT (SELECT sum(events) FROM pipeline.mc_hot) || ' ' || (SELECT count(*) FROM pipeline.cc_raw)}),
	$coord->safe_psql('pipeline', q{SELECT (SELECT count(*) FROM pipeline.cc_raw) || ' ' || (SELECT sum(accepted) FROM pipeline.batch_log WHERE source = 'cc')}),
	'the hot layer counts every accepted event once');
same_text('restated (and provisional) days under concurrency equal raw',
	$coord->safe_psql('pipeline', q{
		SELECT day, events, users, status FROM (
		  SELECT day, events, users, 'frozen' AS status FROM metrics.mc_restated
		  UNION ALL SELECT day, events, users, status FROM metrics.mc_daily WHERE status = 'provisional') AS x
		 ORDER BY day}),
	$coord->safe_psql('pipeline', q{
		SELECT (event_time AT TIME ZONE 'UTC')::date, count(*), count(DISTINCT user_id),
		       CASE WHEN (event_time AT TIME ZONE 'UTC')::date = (SELECT min(day) FROM metrics.mc_daily) THEN 'frozen' ELSE 'provisional' END
		  FROM pipeline.cc_raw WHERE (event_time AT TIME ZONE 'UTC')::date IN (SELECT day FROM metrics.mc_daily)
		 GROUP BY 1 ORDER BY 1}));
ok($coord->safe_psql('pipeline', q{SELECT count(*) FROM metrics.mc_corrections}) > 0,
	'late events of the frozen day became corrections');

# The frozen day's value index: its distinct corrections queued an index
# on user_id of the day's partition, which the index builder creates
# through Citus on every shard; a later correction joins its new values
# to that index on each worker instead of scanning the day, and stays
# exact.  (Shards are hidden from a worker's catalog views unless asked.)
# Each shard's planner chooses between those lookups and one scan of the
# day by cost; this day is small (about 2,000 events a shard), where either
# may win, so the workers are told to avoid scans that would not use the
# index while the test's correction runs: what is tested is that the
# statement Citus sends lets a worker use the index at all.
my $cc_day = qq{(SELECT pipeline._day_partition(s, '$d0'::date) FROM pipeline.source_catalog AS s WHERE s.source = 'cc')};
ok($coord->poll_query_until('pipeline', qq{SELECT pipeline._value_index_ready($cc_day, 'user_id')}),
	'the frozen day of a distributed source gets its value index');
my $cc_idx = $coord->safe_psql('pipeline', qq{SELECT pipeline._value_index_name($cc_day, 'user_id')});
my $idx_scans = sub {
	join ' ', map {
		(split /\n/, $_->safe_psql('pipeline', qq{SET citus.override_table_visibility = off;
			SELECT pg_stat_force_next_flush();
			SELECT count(*) || ':' || coalesce(sum(idx_scan), 0) FROM pg_stat_user_indexes WHERE indexrelname LIKE '$cc_idx%'}))[-1]
	} @workers;
};
$_->safe_psql('pipeline', q{ALTER SYSTEM SET enable_seqscan = off; ALTER SYSTEM SET enable_bitmapscan = off;
	SELECT pg_reload_conf()}) for @workers;
my $scans_before = $idx_scans->();
like($scans_before, qr/^[1-9]\d*:\d+ [1-9]\d*:\d+$/, "every worker holds the index on its shards of the day ($scans_before)");
$coord->safe_psql('pipeline', qq{
	SELECT * FROM pipeline.ingest('cc', (SELECT jsonb_agg(jsonb_build_object('event_id', 900000 + i,
	         'event_time', '$d0'::date + i * interval '1 minute', 'user_id', 'u' || (i * 97)))
	    FROM generate_series(1, 40) AS i));
	SELECT pipeline.run_hot();
	SELECT * FROM pipeline.close_days($as_of);});
# (a worker's statistics reach the view once its backend has reported them)
my ($scans_after, $read_index) = ('', 0);
my @before = map { (split /:/)[1] } split / /, $scans_before;
for (1 .. 50)
{
	$scans_after = $idx_scans->();
	my @after = map { (split /:/)[1] } split / /, $scans_after;
	$read_index = $after[0] > $before[0] && $after[1] > $before[1] and last;
	select(undef, undef, undef, 0.2);
}
ok($read_index, "the correction read the value index on every worker (count:scans $scans_before, then $scans_after)");
$_->safe_psql('pipeline', q{ALTER SYSTEM RESET enable_seqscan; ALTER SYSTEM RESET enable_bitmapscan; SELECT pg_reload_conf()})
  for @workers;
same_text('the correction through the index is exact',
	$coord->safe_psql('pipeline', q{SELECT day, events, users FROM metrics.mc_restated ORDER BY day}),
	$coord->safe_psql('pipeline', qq{
		SELECT (event_time AT TIME ZONE 'UTC')::date, count(*), count(DISTINCT user_id) FROM pipeline.cc_raw
		 WHERE (event_time AT TIME ZONE 'UTC')::date = '$d0' GROUP BY 1}));

# Receipts gone: a source's receipts older than its `batches` retention
# are deleted once folded, while its raw events stay.  The freeze, a
# restatement and a distinct correction of a distributed source find the
# day's events on the workers by their batches: the events of batches
# whose receipts are gone still count, once.  (The same steps on both
# nodes, compared, and against an exact count.)
sub receipts_gone
{
	my ($node, $citus) = @_;
	my $q = sub { $node->safe_psql('pipeline', $_[0]) };
	my @out;
	$q->(q{SELECT pipeline.create_source('rg', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text')});
	$q->(q{SELECT pipeline.distribute_source('rg')}) if $citus;
	$q->(q{SELECT pipeline.create_metric('mg', 'rg', measures => 'count(*) AS events, count(DISTINCT user_id) AS users',
	                                     bucket => '1 hour', hot_retention => '30 days')});
	my $day = sub {
		my ($from, $to, $users) = @_;
		return qq{(SELECT jsonb_agg(jsonb_build_object('event_id', i, 'event_time', '$d0'::date + (i % 1440) * interval '1 minute',
		                   'user_id', $users)) FROM generate_series($from, $to) AS i)};
	};
	$q->(q{SELECT pipeline.ingest('rg', } . $day->(1, 1000, q{'u' || (i % 300)}) . q{)});
	$q->(q{SELECT pipeline.ingest('rg', } . $day->(1001, 2000, q{'u' || (i % 300)}) . q{)});
	push @out, 'folded ' . $q->(q{SELECT pipeline.run_hot('mg')});
	push @out, $q->(qq{SELECT * FROM pipeline.close_days($as_of) ORDER BY 1, 2, 3});
	# the day's two receipts go (folded, and older than a second an hour on)
	$q->(q{SELECT pipeline.set_retention('rg', raw => NULL, batches => '1 second')});
	push @out, $q->(q{SELECT action, detail ~ '^2 receipts' FROM pipeline.maintain(now() + interval '1 hour')
	                   WHERE object = 'pipeline.batch_log' AND action = 'deleted'});
	# late events: 50 users the day had, 50 new ones
	$q->(q{SELECT pipeline.ingest('rg', } . $day->(3001, 3100, q{CASE WHEN i % 2 = 0 THEN 'u' || (i % 100) ELSE 'n' || i END}) . q{)});
	push @out, 'folded ' . $q->(q{SELECT pipeline.run_hot('mg')});
	push @out, $q->(qq{SELECT * FROM pipeline.close_days($as_of) ORDER BY 1, 2, 3});
	push @out, $q->(q{SELECT day, events_delta, users_delta FROM metrics.mg_corrections ORDER BY 1});
	push @out, $q->(q{SELECT day, events, users FROM metrics.mg_restated ORDER BY 1});
	push @out, 'restated version ' . $q->(qq{SELECT pipeline.restate_day('mg', '$d0', 'receipts gone')});
	push @out, $q->(q{SELECT day, events, users, status FROM metrics.mg_daily ORDER BY 1});
	push @out, $q->(q{SELECT day, events, users FROM metrics.mg_restated ORDER BY 1});
	push @out, 'exact ' . $q->(q{SELECT count(*) || '|' || count(DISTINCT user_id) FROM pipeline.rg_raw});
	return join("\n", @out);
}
my $gone_single = receipts_gone($single, 0);
same_text('receipts gone: freeze, corrections and restatement', $gone_single, receipts_gone($coord, 1));
like($gone_single, qr/^deleted\|t$/m, 'receipts gone: the day\'s receipts were deleted');
like($gone_single, qr/\|100\|50\n(?s:.*)\|2100\|350\n(?s:.*)^exact 2100\|350$/m,
	'receipts gone: the correction counts the 50 new users, restated equals raw');

# A batch still being written holds the floor of _batches_seen: the
# batches committed after it took its id are read by the seen list above
# the floor, it is left out until it commits, and then corrected once.
$coord->safe_psql('pipeline', q{
	SELECT pipeline.create_source('ip', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text');
	SELECT pipeline.distribute_source('ip');
	SELECT pipeline.create_metric('mi', 'ip', measures => 'count(*) AS events, count(DISTINCT user_id) AS users',
	                              bucket => '1 hour', hot_retention => '30 days');});
my $ip_batch = sub {
	my ($from, $to, $user) = @_;
	return qq{SELECT accepted FROM pipeline.ingest('ip', (SELECT jsonb_agg(jsonb_build_object('event_id', i,
	    'event_time', '$d0'::date + (i % 1440) * interval '1 minute', 'user_id', $user)) FROM generate_series($from, $to) AS i))};
};
$coord->safe_psql('pipeline', $ip_batch->(1, 100, q{'u' || i}) . qq{; SELECT pipeline.run_hot('mi');
	SELECT count(*) FROM pipeline.close_days($as_of)});
my $writer = $coord->background_psql('pipeline');
$writer->query_safe('BEGIN');
is($writer->query_safe($ip_batch->(201, 250, q{'h' || i})), '50', 'a batch is being written (not committed)');
$coord->safe_psql('pipeline', $ip_batch->(301, 350, q{'m' || i}));
is($coord->safe_psql('pipeline', q{
	SELECT floor = (SELECT max(batch_id) FROM pipeline.batch_log WHERE source = 'ip') - 1 AND unseen = '{}'
	       AND seen = ARRAY[(SELECT max(batch_id) FROM pipeline.batch_log WHERE source = 'ip')]
	  FROM pipeline._batches_seen('ip', pg_current_snapshot())}), 't',
	'_batches_seen: the floor is the id the running batch holds, the later batch is listed above it');
$coord->safe_psql('pipeline', qq{SELECT pipeline.run_hot('mi'); SELECT count(*) FROM pipeline.close_days($as_of);
	SELECT pipeline.restate_day('mi', '$d0', 'with a batch being written')});
is($coord->safe_psql('pipeline', q{SELECT events || ' ' || users FROM metrics.mi_daily}), '150 150',
	'a restatement reads the batch committed later, not the one being written');
my ($ret, $out, $err) = $coord->psql('pipeline', 'BEGIN; ' . $ip_batch->(401, 401, q{'p'}) . q{; PREPARE TRANSACTION 'ip'});
like($err, qr/cannot prepare a transaction that ingested a batch in a Citus database/,
	'a transaction that ingested cannot be prepared in a Citus database');
$writer->query_safe('COMMIT');
$writer->quit;
$coord->safe_psql('pipeline', qq{SELECT pipeline.run_hot('mi'); SELECT count(*) FROM pipeline.close_days($as_of)});
is($coord->safe_psql('pipeline', q{
	SELECT (SELECT string_agg(events_delta || ' ' || users_delta, ',') FROM metrics.mi_corrections)
	       || ' | ' || (SELECT events || ' ' || users FROM metrics.mi_restated)
	       || ' | ' || (SELECT count(*) || ' ' || count(DISTINCT user_id) FROM pipeline.ip_raw)}),
	'50 50 | 200 200 | 200 200', 'the batch written meanwhile is corrected once, when it commits');

# Batch ids are numbered per database: a batch being written in another
# database does not hold this one's floor.
$single->safe_psql('postgres', 'CREATE DATABASE other');
$single->safe_psql('other', q{CREATE EXTENSION pipeline CASCADE;
	SELECT pipeline.create_source('o', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL')});
my $other = $single->background_psql('other');
$other->query_safe(q{BEGIN; SELECT accepted FROM pipeline.ingest('o', '[{"event_id": 1, "event_time": "2026-01-01 10:00+00"}]')});
is($single->safe_psql('pipeline', q{
	SELECT s.floor = (SELECT last_value + 1 FROM pipeline.batch_log_batch_id_seq)
	  FROM pipeline._batches_seen('rg', pg_current_snapshot()) AS s}), 't',
	'a batch being written in another database does not hold the floor');
$other->query_safe('ROLLBACK');
$other->quit;

# A shard moved to the other worker (Citus moves an event's id and raw
# rows, its day partitions included, together): re-sent ids are still
# duplicates, new ones are stored, folded and closed once.
my ($moved, $from, $to) = split /\|/, $coord->safe_psql('pipeline', q{
	SELECT s.shardid, n.nodeport, (SELECT nodeport FROM pg_dist_node WHERE nodeport <> n.nodeport AND noderole = 'primary'
	                                  AND groupid <> 0 LIMIT 1)
	  FROM pg_dist_shard AS s JOIN pg_dist_placement AS p USING (shardid) JOIN pg_dist_node AS n USING (groupid)
	 WHERE s.logicalrelid = 'pipeline.ip_ids'::regclass ORDER BY s.shardid LIMIT 1});
$coord->safe_psql('pipeline', qq{SELECT citus_move_shard_placement($moved, '127.0.0.1', $from, '127.0.0.1', $to,
	shard_transfer_mode => 'block_writes')});
is($coord->safe_psql('pipeline', qq{SELECT nodeport FROM pg_dist_placement JOIN pg_dist_node USING (groupid) WHERE shardid = $moved}),
	$to, 'a shard of the source moved to the other worker');
is($coord->safe_psql('pipeline', $ip_batch->(1, 400, q{'u' || i}) . q{;
	SELECT duplicates FROM pipeline.batch_log WHERE source = 'ip' ORDER BY batch_id DESC LIMIT 1}),
	"200\n200", 'after the move, re-sent ids are duplicates and new ones are stored');
$coord->safe_psql('pipeline', qq{SELECT pipeline.run_hot('mi'); SELECT count(*) FROM pipeline.close_days($as_of)});
is($coord->safe_psql('pipeline', q{
	SELECT (SELECT sum(events) FROM pipeline.mi_hot) || ' | ' || (SELECT events || ' ' || users FROM metrics.mi_restated)
	       || ' | ' || (SELECT count(*) || ' ' || count(DISTINCT user_id) FROM pipeline.ip_raw)}),
	'400 | 400 400 | 400 400', 'and folded and corrected once');

# A commit that stops half-way: the coordinator commits a batch, and its
# COMMIT PREPARED reaches one worker but not the other, whose share stays
# prepared (here the coordinator is lost right then; Citus's own recovery
# is switched off).  The fold commits it first (src/scale_out.c), and
# counts the whole batch.  To stop the commit there: it waits for a
# synchronous standby that does not exist once both workers have
# prepared; the other worker's backend is stopped; the wait is released,
# the first worker commits, and the coordinator's backend and the stopped
# one are killed (each server restarts; a prepared transaction outlives
# that).
$coord->safe_psql('pipeline', q{
	SELECT pipeline.create_source('hc', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL');
	SELECT pipeline.distribute_source('hc');});
# (the metric's owner is no superuser, and its fold recovers all the same;
# Citus connects to the workers as that role, which must be able to log in)
$coord->safe_psql('pipeline', q{CREATE ROLE mh_owner LOGIN});
$coord->safe_psql('pipeline', q{GRANT USAGE, CREATE ON SCHEMA pipeline, metrics TO mh_owner});
$coord->safe_psql('pipeline', q{GRANT SELECT ON pipeline.hc_raw TO mh_owner});
$coord->safe_psql('pipeline', q{
	SET ROLE mh_owner;
	SELECT pipeline.create_metric('mh', 'hc', measures => 'count(*) AS events', bucket => '1 hour',
	                              hot_retention => '30 days');});
is($coord->safe_psql('pipeline', q{SELECT owner FROM pipeline.metric_catalog WHERE metric = 'mh'}), 'mh_owner',
	'half-way: the metric is owned by a role that is no superuser');
# a role that cannot log in can own neither a distributed source nor a
# metric of one: refused with the role's name, not left to fail each batch
$coord->safe_psql('pipeline', q{CREATE ROLE nologin_owner});
$coord->safe_psql('pipeline', q{GRANT USAGE, CREATE ON SCHEMA pipeline, metrics TO nologin_owner});
$coord->safe_psql('pipeline', q{GRANT SELECT ON pipeline.hc_raw TO nologin_owner});
$coord->safe_psql('pipeline', q{
	SET ROLE nologin_owner;
	SELECT pipeline.create_source('nl', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL');});
my ($nl_rc, $nl_out, $nl_err) = $coord->psql('pipeline', q{SELECT pipeline.distribute_source('nl')});
like($nl_err, qr/role "nologin_owner" cannot log in, and Citus connects to the worker nodes as it.*HINT:  ALTER ROLE nologin_owner LOGIN/s,
	'distribute_source refuses a source whose owner cannot log in, with a hint');
($nl_rc, $nl_out, $nl_err) = $coord->psql('pipeline', q{
	SET ROLE nologin_owner;
	SELECT pipeline.create_metric('nlm', 'hc', measures => 'count(*) AS events');});
like($nl_err, qr/role "nologin_owner" cannot log in/, 'create_metric refuses a metric of a distributed source for a role that cannot log in');
is($coord->safe_psql('pipeline', q{
	SELECT (SELECT count(*) FROM pipeline.metric_catalog WHERE metric = 'nlm') || ' ' || pipeline._distributed('pipeline.nl_raw')}),
	'0 false', 'neither was made');
$coord->safe_psql('pipeline', q{ALTER SYSTEM SET citus.recover_2pc_interval = -1});
$coord->safe_psql('pipeline', q{ALTER SYSTEM SET synchronous_standby_names = 'nobody'});
$coord->safe_psql('pipeline', q{SELECT pg_reload_conf()});
my $half = $coord->background_psql('pipeline');
my $half_pid = $half->query_safe('SELECT pg_backend_pid()');
$half->query_until(qr/sent/, q{\echo sent
SELECT accepted FROM pipeline.ingest('hc', (SELECT jsonb_agg(jsonb_build_object('event_id', i,
    'event_time', now() - interval '1 hour')) FROM generate_series(1, 200) AS i));
});
ok($coord->poll_query_until('pipeline', qq{SELECT wait_event = 'SyncRep' FROM pg_stat_activity WHERE pid = $half_pid}),
	'half-way: the batch waits in its commit, prepared on both workers');
my ($w1, $w2) = @workers;
my @stopped = split /\n/, $w2->safe_psql('pipeline', qq{
	SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'citus_internal gpid=%'
	   AND application_name LIKE '%' || lpad('$half_pid', 10, '0')});
ok(@stopped > 0, 'half-way: the second worker\'s backends of that commit found');
kill 'STOP', @stopped;
$coord->safe_psql('pipeline', q{ALTER SYSTEM RESET synchronous_standby_names});
$coord->safe_psql('pipeline', q{SELECT pg_reload_conf()});
ok($w1->poll_query_until('pipeline', q{SELECT count(*) = 0 FROM pg_prepared_xacts}),
	'half-way: the first worker committed its share');
# (killed, not let go: they would read the COMMIT PREPARED already sent)
kill 'KILL', $half_pid;
kill 'KILL', @stopped;
eval { $half->quit };
ok($w2->poll_query_until('pipeline', q{SELECT true}), 'half-way: the second worker is back');
ok($coord->poll_query_until('pipeline', q{SELECT count(*) FROM pipeline.batch_log WHERE source = 'hc'}, '1'),
	'half-way: the coordinator is back, with the batch committed');
is($w2->safe_psql('pipeline', q{SELECT count(*) > 0 FROM pg_prepared_xacts}), 't',
	'half-way: the second worker\'s share is still prepared');
ok($coord->safe_psql('pipeline', q{SELECT count(*) FROM pipeline.hc_raw}) < 200,
	'half-way: so the raw table shows fewer than the 200 events accepted');
# Any role may call pipeline._await_commits() (the fold calls it as the
# metric's owner), but the recovery, which Citus keeps to superusers, is
# only run for a fold, the extension owner and superusers: the metric's
# owner calling it outside a fold only waits, and the share stays prepared.
$coord->safe_psql('pipeline', q{SELECT pipeline._await_commits()}, extra_params => [ '-U', 'mh_owner' ]);
is($w2->safe_psql('pipeline', q{SELECT count(*) > 0 FROM pg_prepared_xacts}), 't',
	'half-way: the metric\'s owner calling pipeline._await_commits() outside a fold gets no recovery from it');
$coord->safe_psql('pipeline', q{SELECT pipeline.run_hot('mh')});
is($coord->safe_psql('pipeline', q{
	SELECT (SELECT sum(events) FROM pipeline.mh_hot) || ' ' || (SELECT count(*) FROM pipeline.hc_raw)
	       || ' ' || (SELECT sum(accepted) FROM pipeline.batch_log WHERE source = 'hc')}),
	'200 200 200', 'half-way: the fold committed the second worker\'s share first, and counts all 200 events');
is($w2->safe_psql('pipeline', q{SELECT count(*) FROM pg_prepared_xacts}), '0',
	'half-way: nothing left prepared');
$coord->safe_psql('pipeline', q{ALTER SYSTEM RESET citus.recover_2pc_interval});
$coord->safe_psql('pipeline', q{SELECT pg_reload_conf()});

# The background workers: the coordinator's folds a distributed source by
# itself; the worker nodes hold none of the pipeline's catalog and do nothing.
$coord->safe_psql('pipeline', q{ALTER SYSTEM SET pipeline.enabled = on; SELECT pg_reload_conf();});
$_->safe_psql('pipeline', q{ALTER SYSTEM SET pipeline.enabled = on; SELECT pg_reload_conf();}) for @workers;
$coord->safe_psql('pipeline', q{SELECT * FROM pipeline.ingest('cc', (SELECT jsonb_agg(jsonb_build_object('event_id', 10000000 + i,
	'event_time', now() - i * interval '1 second', 'user_id', 'x' || i)) FROM generate_series(1, 500) AS i))});
ok($coord->poll_query_until('pipeline', q{SELECT backlog = 0 AND events_folded > 0 FROM pipeline.status WHERE name = 'mc'}),
	'the coordinator\'s worker folds a distributed source');
is($coord->safe_psql('pipeline', q{SELECT (SELECT sum(events) FROM pipeline.mc_hot) = (SELECT count(*) FROM pipeline.cc_raw)}),
	't', 'and counts every event once');
for my $w (@workers)
{
	is($w->safe_psql('pipeline', q{
		SELECT (SELECT count(*) FROM pipeline.source_catalog) + (SELECT count(*) FROM pipeline.metric_catalog)
		       + (SELECT count(*) FROM pipeline.batch_log)}), '0', $w->name . ' holds no pipeline catalog');
	my $log = slurp_file($w->logfile);
	unlike($log, qr/ERROR:.*pipeline|pipeline:.*failed/, $w->name . ' logs no pipeline error');
}

done_testing();
