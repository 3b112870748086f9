# Backups, replicas and a library newer than the SQL.
#
# 1. A database in the middle of its life (frozen days, a correction, dead
#    letters, a day dropped by retention), dumped with pg_dump -Fc and
#    restored with pg_restore into a new database of the same cluster, goes
#    on exactly as the original: the same further steps in both give the
#    same receipts, folds, corrections, dead letters and checks, and the
#    restored sequences hand out new batch ids.
# 2. A streaming standby of a primary whose worker folds under load replays
#    everything, starts no pipeline launcher or worker, logs no pipeline
#    error, and answers the serving views with the primary's numbers; once
#    promoted, it starts its workers and counts every event once, those
#    from before the promotion and those after it.
# 3. A database still at 0.1.0 under the 0.2.0 library: its worker says so
#    once in the server log, not every round; after ALTER EXTENSION
#    pipeline UPDATE it folds.
use strict;
use warnings;
use IPC::Run;
use Time::HiRes ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;
use PipelineCompare qw(same_text state_of same_state keys_of close_days_sql);

my $tmp = PostgreSQL::Test::Utils::tempdir;

# every row of a relation as jsonb text, sorted, without the columns in
# @drop, with $extra (a jsonb expression over the row t) laid over each row
sub rows_sql
{
	my ($rel, $extra, @drop) = @_;
	my $drop = @drop ? " - '{" . join(',', @drop) . "}'::text[]" : '';
	$extra = $extra ne '' ? " || $extra" : '';
	return qq{SELECT count(*) || E' rows\\n' || coalesce(string_agg(r, E'\\n' ORDER BY r), '')
	            FROM (SELECT (to_jsonb(t)$drop$extra)::text AS r FROM $rel AS t) AS s};
}

# the server log of a node, cut into entries (a line with a timestamp and
# its continuation lines); returns the entries at ERROR, FATAL or PANIC
# that mention the pipeline, together with the DETAIL, HINT, CONTEXT and
# STATEMENT entries of the same process that follow them
sub pipeline_errors
{
	my ($log) = @_;
	my @entries;
	for my $line (split /\n/, $log)
	{
		if ($line =~ /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/ || !@entries)
		{
			push @entries, $line;
		}
		else
		{
			$entries[-1] .= "\n$line";
		}
	}
	my @found;
	for (my $i = 0; $i < @entries; $i++)
	{
		next unless $entries[$i] =~ /^\S+ \S+ \S+ \[(\d+)\] .*?\b(?:ERROR|FATAL|PANIC):  /;
		my $pid = $1;
		my $group = $entries[$i];
		while ($i + 1 < @entries
			&& $entries[ $i + 1 ] =~ /^\S+ \S+ \S+ \[$pid\] .*?\b(?:DETAIL|HINT|CONTEXT|STATEMENT|QUERY|LOCATION):  /)
		{
			$group .= "\n" . $entries[ ++$i ];
		}
		push @found, $group if $group =~ /pipeline|metrics\./i;
	}
	return @found;
}

###########################################################################
# 1. pg_dump, pg_restore into the same cluster, and on exactly
###########################################################################

# the worker is off: folds happen when the test calls run_hot()
my $node = PipelineNode::new_node('dump', conf => "pipeline.enabled = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE orig');
$node->safe_psql('orig', 'CREATE EXTENSION pipeline CASCADE');

# orders $from..$to on the Paris day $day, users $prefix0..$prefix12 (the
# id decides the time of day, the user, the platform and the amount)
sub orders
{
	my ($from, $to, $day, $prefix) = @_;
	$prefix = 'u' unless defined $prefix;
	return qq{(SELECT jsonb_agg(jsonb_build_object(
			'order_id', i,
			'event_time', (date '$day' + (i * 37 % 1440) * interval '1 minute') AT TIME ZONE 'Europe/Paris',
			'user_id', '$prefix' || (i % 13),
			'platform', (ARRAY['web', 'ios', 'android'])[1 + i % 3],
			'amount', (i % 40) + 0.25) ORDER BY i)
	  FROM generate_series($from, $to) AS i)};
}

# three dead letters: a failed CHECK, an unreadable event time, a missing
# NOT NULL field
sub bad_orders
{
	my ($id) = @_;
	return qq{'[{"order_id": $id, "event_time": "2026-01-12T15:00:00Z", "user_id": "neg", "amount": -1},
	            {"order_id": @{[$id + 1]}, "event_time": "the day before", "user_id": "x"},
	            {"order_id": @{[$id + 2]}, "event_time": "2026-01-12T16:00:00Z", "amount": 3}]'::jsonb};
}

# a receipt: batch key, batch id and counts
sub ingest
{
	my ($key, $events) = @_;
	return qq{SELECT concat_ws(' ', '$key:', batch_id, received, accepted, duplicates, rejected)
	            FROM pipeline.ingest('orders', $events, batch_key => '$key');\n};
}

sub run_checks
{
	my ($as_of) = @_;
	return qq{SELECT 'checks $as_of: ' || string_agg(concat_ws('|', check_name, status, observed, threshold, detail),
	                                                 E'\\n' ORDER BY check_name)
	            FROM pipeline.run_checks('$as_of');\n};
}

my $verify_sql = q{
	SELECT string_agg(metric || ' ' || day || ' ' || pipeline.verify_day(metric, day), E'\n' ORDER BY metric, day)
	  FROM pipeline.day_closures WHERE status = 'frozen'};

# what the two databases must agree on
my %state_sql = (
	'metrics.sales_live' => rows_sql('metrics.sales_live', ''),
	'metrics.sales_daily' => rows_sql('metrics.sales_daily', ''),
	'metrics.sales_corrections' => rows_sql('metrics.sales_corrections',
		qq{jsonb_build_object('batches', @{[keys_of('t.batch_ids')]})}, 'created_at', 'batch_ids'),
	'metrics.sales_restated' => rows_sql('metrics.sales_restated', ''),
	'receipts' => q{
		SELECT string_agg(concat_ws(' ', batch_key, batch_id, received, accepted, duplicates, rejected),
		                  E'\n' ORDER BY batch_id)
		  FROM pipeline.batches},
	'dead letters' => qq{
		SELECT count(*) || E'\\n' || string_agg(concat_ws(' | ', id, @{[keys_of('ARRAY[d.batch_id]')]}, payload,
		                                                  error_code, field, error),
		                                        E'\\n' ORDER BY id)
		  FROM pipeline.dead_letters AS d},
	'pipeline.retention' => rows_sql('pipeline.retention', ''),
	'pipeline.day_closures' =>
	  rows_sql('pipeline.day_closures', '', 'computed_at', 'frozen_snapshot', 'corrected_snapshot'),
	'raw events' => q{SELECT (SELECT count(*) FROM pipeline.orders_raw) || ' raw, '
	                         || (SELECT count(*) FROM pipeline.orders_ids) || ' ids'},
	'verify_day' => $verify_sql,
	'id sequences' => q{
		SELECT (SELECT last_value || ' ' || is_called FROM pipeline.batch_log_batch_id_seq) || ', '
		       || (SELECT last_value || ' ' || is_called FROM pipeline.dead_letters_id_seq)});

# --- the life of orig before the dump --------------------------------------

$node->safe_psql('orig', q{
	SELECT pipeline.create_source('orders',
	    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, platform text,
	      amount numeric(12,2) CHECK (amount >= 0)$$,
	    event_id => 'order_id', allowed_lateness => '2 hours', freeze_after => '24 hours',
	    day_timezone => 'Europe/Paris');
	SELECT pipeline.create_metric('sales', 'orders', '{platform}',
	    'count(*) AS orders, sum(amount) AS revenue, count(DISTINCT user_id) AS buyers',
	    bucket => '1 hour', hot_retention => '100 years');
	SELECT pipeline.add_check('sales_complete', 'completeness', 'sales', '{"tolerance": 0, "days": 30}');});

# Paris days 2026-01-10 to -12 (they end at 23:00 UTC): the 10th freezes
# at the first close, then gets a correction and is dropped by retention
my $life = $node->safe_psql('orig',
	ingest('web-1', orders(1, 100, '2026-01-10') . ' || ' . bad_orders(9001))
	  . ingest('web-2', orders(90, 200, '2026-01-11'))
	  . ingest('web-2', orders(90, 200, '2026-01-11'))
	  . ingest('web-3', orders(201, 300, '2026-01-12') . ' || ' . orders(1, 5, '2026-01-10'))
	  . q{SELECT 'folded ' || pipeline.run_hot();}
	  . close_days_sql('2026-01-12 06:00+00')
	  . ingest('late-1', orders(301, 310, '2026-01-10', 'late') . ' || ' . orders(311, 315, '2026-01-11', 'late'))
	  . q{SELECT 'folded ' || pipeline.run_hot();}
	  . close_days_sql('2026-01-13 06:00+00')
	  . q{SELECT pipeline.set_retention('orders', raw => '2 days', dead_letters => '30 days', batches => '30 days');
	      SELECT string_agg(object || ' ' || action, ', ' ORDER BY object)
	        FROM pipeline.maintain('2026-01-13 06:00+00');}
	  . run_checks('2026-01-13 06:00+00'));
my @life = split /\n/, $life;
is(join("\n", @life[ 0 .. 10 ]), join("\n",
		'web-1: 1 103 100 0 3', 'web-2: 2 111 100 11 0', 'web-2: 2 111 100 11 0', 'web-3: 4 105 100 5 0',
		'folded 300', 'close 2026-01-12 06:00+00: sales 2026-01-10 frozen, sales 2026-01-11 provisional',
		'late-1: 5 15 15 0 0', 'folded 15',
		'close 2026-01-13 06:00+00: sales 2026-01-10 corrected, sales 2026-01-11 frozen, sales 2026-01-12 provisional',
		'', 'pipeline.batch_log analyzed, pipeline.orders_raw_20260110 dropped'),
	'orig: receipts with re-sent ids, dead letters and a retry; days frozen on a simulated clock, '
	  . 'a correction, the oldest day dropped by retention');
like($life, qr/\nchecks 2026-01-13 06:00\+00: sales_complete\|/, 'orig: the checks ran');

my $before = state_of($node, 'orig', \%state_sql);
like($before->{'metrics.sales_corrections'}, qr/"batches": \["late-1"\].*"late_events": 3/,
	'orig: the late batch made corrections of the frozen 2026-01-10');
like($before->{'metrics.sales_daily'}, qr/^9 rows\n.*"status": "frozen"/s, 'orig: frozen daily rows');
like($before->{'pipeline.retention'}, qr/"raw_dropped_through": "2026-01-10"/,
	'orig: retention dropped 2026-01-10');
like($before->{'dead letters'}, qr/^3\n/, 'orig: three dead letters');
is($before->{'raw events'}, '205 raw, 205 ids', 'orig: raw holds the days retention kept');
is($node->safe_psql('orig', q{SELECT sum(orders) FROM metrics.sales_live}), '315',
	'orig: _live counts every accepted event, the dropped day too');
is($before->{verify_day}, "sales 2026-01-10 true\nsales 2026-01-11 true", 'orig: the frozen days verify');
my $max_batch = $node->safe_psql('orig', 'SELECT max(batch_id) FROM pipeline.batches');
my $max_letter = $node->safe_psql('orig', 'SELECT max(id) FROM pipeline.dead_letters');

# --- dump and restore -------------------------------------------------------

$node->command_ok([ 'pg_dump', '-Fc', '-f', "$tmp/orig.dump", '-d', 'orig' ], 'pg_dump -Fc orig');
$node->command_ok([ 'createdb', 'copy' ], 'createdb copy');
my ($out, $err) = ('', '');
my $restored = IPC::Run::run([ 'pg_restore', '-d', $node->connstr('copy'), "$tmp/orig.dump" ],
	'>', \$out, '2>', \$err);
ok($restored && $err eq '', 'pg_restore -d copy, without an error or warning') or diag($err);

same_state($node, \%state_sql, 'orig', 'copy', 'restored', ' in orig and copy');

# --- the same steps in both -------------------------------------------------

# the retry of web-2, re-sent ids with new events, a late batch for the
# frozen 2026-01-11, one for the dropped 2026-01-10, dead letters
my $steps = ingest('web-2', orders(90, 200, '2026-01-11'))
  . q{SELECT count(*) || ' receipt of web-2' FROM pipeline.batches WHERE batch_key = 'web-2';}
  . ingest('web-4', orders(250, 260, '2026-01-12') . ' || ' . orders(400, 450, '2026-01-13')
	  . ' || ' . bad_orders(9101))
  . ingest('late-2', orders(451, 455, '2026-01-11', 'late2') . ' || ' . orders(298, 300, '2026-01-12'))
  . ingest('old-1', orders(460, 462, '2026-01-10') . ' || ' . orders(463, 464, '2026-01-13'))
  . q{SELECT 'folded ' || pipeline.run_hot();}
  . close_days_sql('2026-01-15 06:00+00')
  . run_checks('2026-01-15 06:00+00');
# (an error stops the steps, and its message takes the place of the rest)
my %went;
for my $db (qw(orig copy))
{
	my ($rc, $stdout, $stderr) = $node->psql($db, $steps, on_error_stop => 1);
	$went{$db} = $stdout . ($rc == 0 ? '' : "\n$stderr");
}
same_text('orig', $went{orig}, 'copy', $went{copy}, 'the same steps after the restore answer the same');
like($went{copy}, qr/^web-2: 2 111 100 11 0\n1 receipt of web-2\n/,
	'copy: the retried batch key gets its original receipt and batch id, and no new receipt');
like($went{copy}, qr/\nweb-4: \d+ 65 51 11 3\nlate-2: \d+ 8 5 3 0\nold-1: \d+ 5 2 0 3\nfolded 58\n/,
	'copy: re-sent ids are duplicates, events for the dropped day dead letters, the rest folded');
like($went{copy}, qr/\nclose 2026-01-15 06:00\+00: sales 2026-01-11 corrected, sales 2026-01-12 frozen, sales 2026-01-13 frozen\n/,
	'copy: the late batch corrects the day frozen before the dump; the other days freeze');

my $after = same_state($node, \%state_sql, 'orig', 'copy', 'after the same steps', ' in orig and copy');
like($after->{'metrics.sales_corrections'},
	qr/"day": "2026-01-11", "batches": \["late-2"\], "platform": "\w+", "late_events": (\d), "buyers_delta": \1,/,
	'copy and orig: corrections of 2026-01-11 from the batch after the restore, new buyers included');
is($node->safe_psql('copy', q{
		SELECT count(*) || ' ' || bool_and(error ~ 'on a day past the source''s raw retention')
		  FROM pipeline.dead_letters AS d JOIN pipeline.batches AS b USING (batch_id) WHERE b.batch_key = 'old-1'}),
	'3 true', 'copy: the events for the dropped day are dead letters naming the retention');
is($node->safe_psql('copy', qq{
		SELECT min(batch_id) > $max_batch FROM pipeline.batches WHERE batch_key IN ('web-4', 'late-2', 'old-1')}),
	't', "copy: the restored sequence hands out batch ids after every restored one (> $max_batch)");
is($node->safe_psql('copy', qq{
		SELECT count(*) || ' ' || (min(id) > $max_letter) FROM pipeline.dead_letters WHERE id > $max_letter}),
	'6 true', "copy: and dead letter ids after the restored ones (> $max_letter)");
is($after->{verify_day},
	"sales 2026-01-10 true\nsales 2026-01-11 true\nsales 2026-01-12 true\nsales 2026-01-13 true",
	'copy and orig: every frozen day verifies, the restored ones and the new ones');
is($node->safe_psql('copy', q{
		SELECT (SELECT sum(orders) FROM metrics.sales_live) || ' ' || (SELECT sum(accepted) FROM pipeline.batches)}),
	'373 373', 'copy: _live counts every accepted event once');

$node->stop;

###########################################################################
# 2. a streaming standby, then its promotion
###########################################################################

my $primary = PipelineNode::new_node('primary', allows_streaming => 1, conf => q{
max_connections = 40
pipeline.enabled = on
pipeline.hot_interval = '200ms'
});
$primary->start;
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

$primary->safe_psql('postgres', 'CREATE DATABASE shop');
$primary->safe_psql('shop', q{
	CREATE EXTENSION pipeline CASCADE;
	SELECT pipeline.create_source('orders',
	    'order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, platform text, amount numeric(12,2)',
	    event_id => 'order_id');
	SELECT pipeline.create_metric('sales', 'orders', '{platform}',
	    'count(*) AS n, sum(amount) AS revenue, count(DISTINCT user_id) AS buyers');});
PipelineNode::worker_pid($primary, 'shop');

# orders $from..$to (and $from - 1 again, a duplicate of the previous
# batch) with event times in the current minute; $extra: more events
sub live_batch
{
	my ($key, $from, $to, $extra) = @_;
	return qq{SELECT concat_ws(' ', batch_id, received, accepted, duplicates, rejected)
	            FROM pipeline.ingest('orders', (
	              SELECT jsonb_agg(jsonb_build_object(
	                       'order_id', i,
	                       'event_time', date_trunc('minute', now()) + (i % 60) * interval '1 second',
	                       'user_id', 'u' || (i % 97),
	                       'platform', (ARRAY['web', 'ios', 'android'])[1 + i % 3],
	                       'amount', (i % 40) + 0.25))
	                FROM generate_series($from - 1, $to) AS i) || $extra, batch_key => '$key')};
}

# orders $from..$to on the UTC day $day
sub past_batch
{
	my ($key, $from, $to, $day) = @_;
	return qq{SELECT concat_ws(' ', batch_id, received, accepted, duplicates, rejected)
	            FROM pipeline.ingest('orders', (
	              SELECT jsonb_agg(jsonb_build_object(
	                       'order_id', i,
	                       'event_time', (date '$day' + (i * 37 % 1440) * interval '1 minute') AT TIME ZONE 'UTC',
	                       'user_id', 'p' || (i % 31),
	                       'platform', (ARRAY['web', 'ios', 'android'])[1 + i % 3],
	                       'amount', (i % 40) + 0.25))
	                FROM generate_series($from, $to) AS i), batch_key => '$key')};
}

my %serving = (
	'metrics.sales_live' => rows_sql('metrics.sales_live', ''),
	'metrics.sales_daily' => rows_sql('metrics.sales_daily', ''),
	'metrics.sales_corrections' => rows_sql('metrics.sales_corrections', ''),
	'metrics.sales_restated' => rows_sql('metrics.sales_restated', ''));

# once the primary's worker has folded everything and the standby has
# replayed it, the serving views answer the same on both
sub compare_with_standby
{
	my ($when) = @_;
	$primary->poll_query_until('shop', q{SELECT backlog = 0 FROM pipeline.status WHERE metric = 'sales'})
	  or die "$when: the primary's worker did not fold the backlog";
	$primary->wait_for_catchup($standby);
	my %p = map { $_ => $primary->safe_psql('shop', $serving{$_}) } keys %serving;
	my %s = map { $_ => $standby->safe_psql('shop', $serving{$_}) } keys %serving;
	same_text('primary', $p{$_}, 'standby', $s{$_}, "$when: $_ is the same on the standby") for sort keys %serving;
	return \%p;
}

my $standby_workers_sql = q{
	SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('pipeline worker', 'pipeline launcher')};

# the two UTC days before yesterday: due to freeze at the first close_days()
my @past_days = split /\|/, $primary->safe_psql('shop', q{
	SELECT ((now() AT TIME ZONE 'UTC')::date - 3) || '|' || ((now() AT TIME ZONE 'UTC')::date - 2)});

my $load_s = 60;
my $t_end = Time::HiRes::time() + $load_s;
my ($batches, $next_id, $answers, $standby_workers, $past) = (0, 1, 0, 0, 0);
my (@receipt_errors, @standby_trouble);
while (Time::HiRes::time() < $t_end)
{
	my $t0 = Time::HiRes::time();
	$batches++;
	# every tenth batch carries a bad event; every twentieth comes with a
	# batch for one of the past days and a close_days() that freezes
	# them, then corrects them
	my $extra = $batches % 10 == 0
	  ? qq{'[{"order_id": @{[1000000 + $batches]}, "event_time": "soon", "user_id": "x"}]'::jsonb}
	  : q{'[]'::jsonb};
	my $receipt = $primary->safe_psql('shop', live_batch("live-$batches", $next_id, $next_id + 49, $extra));
	my $bad = $batches % 10 == 0 ? 1 : 0;
	my $expected = join(' ', 51 + $bad, $batches == 1 ? (51, 0) : (50, 1), $bad);
	push @receipt_errors, "live-$batches: $receipt, expected <batch id> $expected"
	  unless $receipt =~ /^\d+ $expected$/;
	$next_id += 50;
	if ($batches % 20 == 1)
	{
		$past++;
		my $first = 5000000 + $past * 100;
		$primary->safe_psql('shop', past_batch("past-$past", $first, $first + 39, $past_days[ $past % 2 ])
			. ';' . q{SELECT count(*) FROM pipeline.close_days()});
	}
	$primary->wait_for_catchup($standby);
	my ($rc, $answer, $trouble) = $standby->psql('shop',
		q{SELECT (SELECT count(*) FROM metrics.sales_live) + (SELECT count(*) FROM metrics.sales_daily)});
	if ($rc == 0 && $answer =~ /^\d+$/) { $answers++ }
	else { push @standby_trouble, "after live-$batches: $trouble" }
	$standby_workers += $standby->safe_psql('postgres', $standby_workers_sql);
	compare_with_standby("after $batches batches") if $batches % 40 == 0;
	my $rest = 0.5 - (Time::HiRes::time() - $t0);
	Time::HiRes::sleep($rest) if $rest > 0;
}
cmp_ok($batches, '>=', 60, "$batches batches sent to the primary in ${load_s} s");
is(join("\n", @receipt_errors), '', 'every live batch: 50 new events, one re-sent id, a dead letter every tenth');
is($answers, $batches, 'the standby answered metrics.sales_live and metrics.sales_daily after each batch')
  or diag(join("\n", @standby_trouble));
is($standby_workers, 0, 'no pipeline launcher or worker ran on the standby (checked after each batch)');
is($standby->safe_psql('postgres', $standby_workers_sql), '0', 'none runs on the standby now');

my $final = compare_with_standby('after the load');
like($final->{'metrics.sales_daily'}, qr/"status": "frozen"/, '... which has frozen days');
like($final->{'metrics.sales_corrections'}, qr/^[1-9]\d* rows\n/, '... and corrections');
is($standby->safe_psql('shop', q{
		SELECT (SELECT sum(n) FROM metrics.sales_live) = (SELECT sum(accepted) FROM pipeline.batches)}),
	't', 'on the standby, _live counts every accepted event once');

my $standby_log = slurp_file($standby->logfile);
my @errors = pipeline_errors($standby_log);
is(scalar(@errors), 0, 'the standby logged no ERROR, FATAL or PANIC about the pipeline while replaying')
  or diag(join("\n", @errors));
unlike($standby_log, qr/pipeline launcher started/, 'no pipeline launcher started on the standby');

# --- promotion --------------------------------------------------------------

my $accepted_before = $primary->safe_psql('shop', 'SELECT sum(accepted) FROM pipeline.batches');
my $max_batch_before = $primary->safe_psql('shop', 'SELECT max(batch_id) FROM pipeline.batches');
$primary->stop('fast');
$standby->promote;
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 'f', 'the standby is promoted');
ok($standby->poll_query_until('postgres', q{
		SELECT count(*) FILTER (WHERE backend_type = 'pipeline launcher') = 1
		   AND count(*) FILTER (WHERE backend_type = 'pipeline worker' AND datname = 'shop') = 1
		  FROM pg_stat_activity}),
	'the promoted node starts the pipeline launcher and the worker of shop');

# new events, re-sent ids from before the promotion, a late event for a
# frozen day
my $promoted = $standby->safe_psql('shop',
	live_batch('promoted-1', $next_id, $next_id + 99, q{'[]'::jsonb}) . ";\n"
	  . live_batch('promoted-2', $next_id - 20, $next_id + 119, q{'[]'::jsonb}) . ";\n"
	  . past_batch('promoted-3', 5000000, 5000009, $past_days[1]));
like($promoted, qr/^\d+ 101 100 1 0\n\d+ 141 20 121 0\n\d+ 10 10 0 0$/,
	'the promoted node takes new events and knows the ids of before the promotion');
is($standby->safe_psql('shop', qq{
		SELECT min(batch_id) > $max_batch_before FROM pipeline.batches WHERE batch_key LIKE 'promoted-%'}),
	't', "new batch ids come after the primary's (> $max_batch_before)");
ok($standby->poll_query_until('shop', q{
		SELECT (SELECT sum(n) FROM metrics.sales_live) = (SELECT sum(accepted) FROM pipeline.batches)}),
	'the promoted node folds: _live counts every accepted event once, before and after the promotion');
my $total = $accepted_before + 130;
is($standby->safe_psql('shop', q{
		SELECT concat_ws(' ', (SELECT sum(accepted) FROM pipeline.batches WHERE batch_key LIKE 'promoted-%'),
		                 (SELECT sum(accepted) FROM pipeline.batches), (SELECT count(*) FROM pipeline.orders_raw),
		                 (SELECT sum(n) FROM metrics.sales_live))}),
	"130 $total $total $total",
	"... $accepted_before events from before the promotion and 130 after it: receipts, raw and _live agree");
is($standby->safe_psql('shop', q{
		SELECT count(*) FROM pipeline.close_days() WHERE action = 'corrected'}),
	'1', 'close_days() on the promoted node corrects the day frozen before the promotion');
cmp_ok($standby->safe_psql('shop', q{
		SELECT count(*) FROM metrics.sales_corrections AS c JOIN pipeline.batches AS b ON b.batch_id = ANY (c.batch_ids)
		 WHERE b.batch_key = 'promoted-3'}),
	'>', 0, '... with correction rows attributed to the late batch');
like($standby->safe_psql('shop', $verify_sql), qr/\Asales $past_days[0] true\nsales $past_days[1] true(?:\nsales \S+ true)*\z/,
	'every frozen day verifies on the promoted node');

@errors = pipeline_errors(slurp_file($standby->logfile));
is(scalar(@errors), 0, 'the promoted node logged no ERROR, FATAL or PANIC about the pipeline')
  or diag(join("\n", @errors));
$standby->stop;

###########################################################################
# 3. the 0.2.0 library with a database still at 0.1.0
###########################################################################

my $old = PipelineNode::new_node('stale', conf => "pipeline.hot_interval = '200ms'");
$old->start;
$old->safe_psql('postgres', 'CREATE DATABASE stale');
$old->safe_psql('stale', q{CREATE EXTENSION pipeline VERSION '0.1.0' CASCADE});
is($old->safe_psql('stale', q{SELECT extversion FROM pg_extension WHERE extname = 'pipeline'}),
	'0.1.0', 'database stale is at 0.1.0');
my $stale_pid = PipelineNode::worker_pid($old, 'stale');

# $n events of source $source, ids from $from, in the minute before now;
# returns the accepted count
sub taps
{
	my ($source, $from, $n) = @_;
	return $old->safe_psql('stale', qq{
		SELECT accepted FROM pipeline.ingest('$source', (
		  SELECT jsonb_agg(jsonb_build_object('tap_id', i, 'kind', 'k' || (i % 4),
		                                      'event_time', date_trunc('minute', now()) - (i % 60) * interval '1 second'))
		    FROM generate_series($from, $from + $n - 1) AS i))});
}

# the 0.1.0 objects in use: the worker folds with them every round
$old->safe_psql('stale', q{
	SELECT pipeline.create_source('taps', 'tap_id bigint NOT NULL, event_time timestamptz NOT NULL, kind text',
	    event_id => 'tap_id');
	SELECT pipeline.create_metric('taps_n', 'taps', '{kind}', 'count(*) AS n');});
is(taps('taps', 1, 300), '300', 'stale at 0.1.0: 300 events accepted');
ok($old->poll_query_until('stale', q{SELECT sum(n) = 300 FROM metrics.taps_n_live}),
	'stale at 0.1.0: the worker folds them with the 0.1.0 objects');

# every tick of the worker seen by a poll, until ten were seen
$old->safe_psql('stale', 'CREATE TABLE seen_ticks (tick timestamptz PRIMARY KEY)');
ok($old->poll_query_until('stale', q{
		WITH t AS (INSERT INTO seen_ticks
		             SELECT last_tick FROM pipeline.workers
		              WHERE kind = 'worker' AND database = 'stale' AND last_tick IS NOT NULL
		           ON CONFLICT DO NOTHING RETURNING 1)
		SELECT (SELECT count(*) FROM seen_ticks) + (SELECT count(*) FROM t) >= 10}),
	'the worker of the 0.1.0 database ticked at least ten times');
is(PipelineNode::worker_pid($old, 'stale'), $stale_pid, '... all in the same process');

my $version_line = qr/pipeline: this database has version 0\.1\.0 of the extension, the library is 0\.2\.0/;
my @told = grep { /$version_line/ } split /\n/, slurp_file($old->logfile);
is(scalar(@told), 1, 'the server log says once that the database has 0.1.0 and the library is 0.2.0')
  or diag(join("\n", @told));
like($told[0] // '', qr/\[$stale_pid\]/, '... the worker of stale says it');
my @worker_errors = grep { /^\S+ \S+ \S+ \[$stale_pid\] .*?\b(?:ERROR|FATAL|PANIC):  / }
  split /\n/, slurp_file($old->logfile);
cmp_ok(scalar(@worker_errors), '<=', 1, 'the worker logged at most one error in those rounds')
  or diag(join("\n", @worker_errors));

$old->safe_psql('stale', 'ALTER EXTENSION pipeline UPDATE');
is($old->safe_psql('stale', q{SELECT extversion FROM pg_extension WHERE extname = 'pipeline'}),
	'0.2.0', 'database stale is at 0.2.0 after ALTER EXTENSION pipeline UPDATE');
$old->safe_psql('stale', q{
	SELECT pipeline.create_source('clicks', 'tap_id bigint NOT NULL, event_time timestamptz NOT NULL, kind text',
	    event_id => 'tap_id');
	SELECT pipeline.create_metric('clicks_n', 'clicks', '{kind}', 'count(*) AS n');});
is(taps('clicks', 1, 200) . ' ' . taps('taps', 251, 100), '200 50',
	'stale at 0.2.0: events accepted by a new source and by the source of 0.1.0');
ok($old->poll_query_until('stale', q{
		SELECT (SELECT sum(n) = 200 FROM metrics.clicks_n_live) AND (SELECT sum(n) = 350 FROM metrics.taps_n_live)}),
	'stale at 0.2.0: the worker folds them, into the new metric and the one of 0.1.0');
is(scalar(grep { /$version_line/ } split /\n/, slurp_file($old->logfile)), 1,
	'the version line is still in the log once');
is(PipelineNode::worker_pid($old, 'stale'), $stale_pid, 'the same worker goes on after the update');

$old->stop;
done_testing();
