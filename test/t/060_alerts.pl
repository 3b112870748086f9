# NOTIFY pipeline_alerts: a session that LISTENs gets one JSON payload per
# new failure of a check (its first run failing, or a pass turning into a
# fail), none while the check stays failing or passes, none from a run that
# rolls back, and one only when two sessions run the checks at the same
# time; for a daily SLA, one for its early warning and one more when the
# warning turns into a miss.  Every wait is on an observable condition: each round ends with a
# sentinel NOTIFY, and the listener reads until the sentinel arrives, so
# "no alert" means none was sent before it.
use strict;
use warnings;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $node = PipelineNode::new_node('alerts');
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION pipeline');
$node->safe_psql('app', q{
	SELECT pipeline.create_source('orders',
	    'order_id bigint NOT NULL, event_time timestamptz NOT NULL, platform text',
	    event_id => 'order_id');
	SELECT pipeline.ingest('orders', (
	    SELECT jsonb_agg(jsonb_build_object('order_id', i,
	             'event_time', timestamptz '2026-03-08 10:00:00+00' + i * interval '1 minute',
	             'platform', (ARRAY['web', 'ios'])[1 + i % 2]))
	      FROM generate_series(1, 50) AS i));
	SELECT pipeline.add_check('platform_set', 'not_null', 'orders', '{"column": "platform"}', 'fail');
	SELECT pipeline.add_check('platforms', 'accepted_values', 'orders',
	                          '{"column": "platform", "values": ["web", "ios"]}');
});

my $listener = $node->background_psql('app');
$listener->query_safe('LISTEN pipeline_alerts');

my $round = 0;

# The payloads the listener received since the last round, in order.  Sends
# a sentinel NOTIFY (after everything committed so far) and reads until it
# arrives.
sub alerts
{
	$round++;
	$node->safe_psql('app', "NOTIFY pipeline_alerts, 'sentinel $round'");
	my $seen = '';
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	until ($seen =~ /payload "sentinel $round"/)
	{
		die "no sentinel $round from the listener" if time > $deadline;
		$seen .= $listener->query_safe('SELECT 1');
	}
	my @payloads;
	while ($seen =~ /Asynchronous notification "pipeline_alerts" with payload "(.*)" received from server process with PID \d+\./g)
	{
		my $p = $1;
		last if $p eq "sentinel $round";
		next if $p =~ /^sentinel /;
		push @payloads, decode_json($p);
	}
	return @payloads;
}

sub run_checks
{
	my ($as_of) = @_;
	return $node->safe_psql('app', qq{
		SELECT string_agg(check_name || '=' || status, ',' ORDER BY check_name)
		  FROM pipeline.run_checks('$as_of')});
}

# observed, threshold and detail of a check's latest run, from pipeline.alerts
sub alert_row
{
	my ($check) = @_;
	my ($observed, $threshold, $detail) = split /\|/, $node->safe_psql('app', qq{
		SELECT observed || '|' || threshold || '|' || detail FROM pipeline.alerts WHERE check_name = '$check'}), 3;
	return (observed => $observed, threshold => $threshold, detail => $detail);
}

# --- passing checks send nothing --------------------------------------------
is(run_checks('2026-03-08 11:00+00'), 'platform_set=pass,platforms=pass', 'both checks pass on good data');
is(scalar(alerts()), 0, 'no alert while the checks pass');

# --- a new failure: one payload, with everything an on-call needs ------------
$node->safe_psql('app', q{
	SELECT pipeline.ingest('orders', (
	    SELECT jsonb_agg(jsonb_build_object('order_id', 100 + i,
	             'event_time', timestamptz '2026-03-08 10:30:00+00' + i * interval '1 second'))
	      FROM generate_series(1, 5) AS i))});
is(run_checks('2026-03-08 11:00+00'), 'platform_set=fail,platforms=pass', 'events without a platform fail not_null');
my @a = alerts();
is(scalar(@a), 1, 'one alert for the new failure');
# any role may LISTEN: the payload names the check and how bad it is, never
# what it read (observed, threshold and detail are in pipeline.alerts, for
# the members of the check's owner)
is_deeply([ sort keys %{ $a[0] } ],
	[qw(check_name kind ran_at severity status target)],
	'the payload has check_name, kind, target, severity, status and ran_at, no observed value or detail');
is($a[0]{check_name}, 'platform_set', '... check_name');
is($a[0]{kind}, 'not_null', '... kind');
is($a[0]{target}, 'orders', '... target');
is($a[0]{severity}, 'fail', '... severity');
is($a[0]{status}, 'fail', '... status');
my %row = alert_row('platform_set');
is($row{observed}, '0.090909', 'pipeline.alerts: observed (5 of 55 events)');
is($row{threshold}, '0', '... threshold');
like($row{detail}, qr/^5 of 55 events .*: no platform;/, '... detail');
like($a[0]{ran_at}, qr/^2026-03-08T11:00:00/, '... ran_at is the run\'s as_of');
is($node->safe_psql('app', 'SELECT check_name FROM pipeline.alerts'), 'platform_set',
	'the failing check is in pipeline.alerts');

# --- still failing: no repeat ------------------------------------------------
is(run_checks('2026-03-08 11:05+00'), 'platform_set=fail,platforms=pass', 'the check still fails');
is(run_checks('2026-03-08 11:10+00'), 'platform_set=fail,platforms=pass', '... and again');
is(scalar(alerts()), 0, 'no alert while it stays failing');

# --- pass, then fail again: a new alert ---------------------------------------
is(run_checks('2026-03-07 11:00+00'), 'platform_set=pass,platforms=pass', 'a day without the bad events passes');
is(scalar(alerts()), 0, 'passing sends nothing');
is(run_checks('2026-03-08 11:15+00'), 'platform_set=fail,platforms=pass', 'failing again');
@a = alerts();
is(scalar(@a), 1, 'a failure after a pass is a new failure: one alert');
is($a[0]{check_name}, 'platform_set', '... for the check that failed');

# --- a check failing on its first run ------------------------------------------
$node->safe_psql('app', q{
	SELECT pipeline.add_check('web_only', 'accepted_values', 'orders',
	                          '{"column": "platform", "values": ["web"]}', 'block')});
is(run_checks('2026-03-08 11:20+00'), 'platform_set=fail,platforms=pass,web_only=fail',
	'a new check fails on its first run');
@a = alerts();
is(scalar(@a), 1, 'its first failure is announced, the old one is not repeated');
is($a[0]{check_name}, 'web_only', '... for the new check');
is($a[0]{severity}, 'block', '... with its severity');

# --- a run that rolls back announces nothing -------------------------------------
$node->safe_psql('app', q{
	SELECT pipeline.drop_check('web_only');
	SELECT pipeline.add_check('web_only', 'accepted_values', 'orders',
	                          '{"column": "platform", "values": ["web"]}')});
is(scalar(alerts()), 0, 'recreating a check sends nothing');
$node->safe_psql('app', q{
	BEGIN;
	SELECT count(*) FROM pipeline.run_checks('2026-03-08 11:25+00');
	ROLLBACK});
is(scalar(alerts()), 0, 'a rolled-back run sends no alert');
is($node->safe_psql('app', q{SELECT count(*) FROM pipeline.check_results WHERE check_name = 'web_only'}), '0',
	'... and leaves no result');

# --- two sessions running the checks at once: one alert ----------------------------
my $first = $node->background_psql('app');
my $second = $node->background_psql('app');
$first->query_safe(q{BEGIN; SELECT count(*) FROM pipeline.run_checks('2026-03-08 11:30+00')});
# the second waits for the first's lock on the check, then sees its result
$second->query_until(qr/started/, q{
	\echo started
	SELECT string_agg(check_name || '=' || status, ',' ORDER BY check_name) FROM pipeline.run_checks('2026-03-08 11:30+00');
});
$node->poll_query_until('app', q{
	SELECT count(*) > 0 FROM pg_stat_activity
	 WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE '%run_checks%'})
  or die 'the second run never waited for the first';
$first->query_safe('COMMIT');
is($second->query_safe('SELECT 1'), 'platform_set=fail,platforms=pass,web_only=fail' . "\n1",
	'the second run finishes after the first commits, with the same statuses');
@a = alerts();
is(scalar(@a), 1, 'one alert for the new failure, not one per session');
is($a[0]{check_name}, 'web_only', '... for the check that newly failed');
is($node->safe_psql('app', q{SELECT count(*) FROM pipeline.check_results WHERE check_name = 'web_only'}), '2',
	'both runs are in the history');
$first->quit;
$second->quit;

# --- a daily SLA: the early warning, then the miss: two alerts ------------------
# yesterday (2026-03-08, UTC) is due provisional by 07:00 on 2026-03-09,
# with a warning from 06:00; nobody has run close_days yet
$node->safe_psql('app', q{
	SELECT pipeline.create_metric('sales', 'orders', measures => 'count(*) AS orders');
	SELECT pipeline.add_check('sales_sla', 'sla', 'sales', '{"ready_by": "07:00", "warn_before": "1 hour"}', 'fail')});
is(scalar(alerts()), 0, 'adding the SLA sends nothing');

# the other checks keep their statuses (no alerts of theirs): count the SLA's
sub sla_alerts { return grep { $_->{check_name} eq 'sales_sla' } alerts(); }

like(run_checks('2026-03-09 05:00+00'), qr/sales_sla=pass/, 'before the warning window the SLA passes');
is(scalar(sla_alerts()), 0, '... and sends nothing');

like(run_checks('2026-03-09 06:30+00'), qr/sales_sla=warn/, 'inside the window: an early warning');
@a = sla_alerts();
is(scalar(@a), 1, 'the warning is announced');
is($a[0]{status}, 'warn', '... with status warn');
is($a[0]{kind}, 'sla', '... kind sla');
is($a[0]{severity}, 'fail', '... and the check\'s severity');
%row = alert_row('sales_sla');
like($row{detail}, qr/^SLA at risk: sales 2026-03-08 not provisional yet, due by 07:00 UTC in 00:30:00;/, '... detail');
is($row{observed} + 0, -1800, '... observed: 30 minutes before the deadline');
is($node->safe_psql('app', q{SELECT status FROM pipeline.alerts WHERE check_name = 'sales_sla'}), 'warn',
	'pipeline.alerts shows the warning');

like(run_checks('2026-03-09 06:45+00'), qr/sales_sla=warn/, 'still warning');
is(scalar(sla_alerts()), 0, '... sends nothing');

like(run_checks('2026-03-09 07:00+00'), qr/sales_sla=fail/, 'at 07:00 the SLA is missed');
@a = sla_alerts();
is(scalar(@a), 1, 'the warning turned miss is announced');
is($a[0]{status}, 'fail', '... with status fail');
%row = alert_row('sales_sla');
like($row{detail}, qr/^SLA missed: sales 2026-03-08 not provisional by 07:00 UTC; it is open/, '... detail');
like($a[0]{ran_at}, qr/^2026-03-09T07:00:00/, '... ran_at');
is($node->safe_psql('app', q{SELECT status || ' ' || (since = '2026-03-09 07:00+00') FROM pipeline.alerts WHERE check_name = 'sales_sla'}),
	'fail true', 'pipeline.alerts: failing since the miss, not since the warning');

like(run_checks('2026-03-09 07:05+00'), qr/sales_sla=fail/, 'still missed');
is(scalar(sla_alerts()), 0, '... sends nothing');

$node->safe_psql('app', q{SELECT count(*) FROM pipeline.close_days('2026-03-09 07:10+00')});
like(run_checks('2026-03-09 07:15+00'), qr/sales_sla=pass/, 'once close_days made the day provisional, it passes');
is(scalar(sla_alerts()), 0, '... and passing sends nothing');
is($node->safe_psql('app', q{SELECT count(*) FROM pipeline.alerts WHERE check_name = 'sales_sla'}), '0',
	'... and the alert is gone');

$listener->quit;
$node->stop;
done_testing();
