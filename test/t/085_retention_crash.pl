# Retention under stress: maintain() stopped dead in the middle of dropping
# a day (kill -9 of its backend) loses and drops nothing, and while it is in
# the middle of a day, ingest into the other days of the source goes on.
#
# The source owner's own trigger on its id table makes maintain() wait
# right after it deleted the day's ids and before it dropped the partition
# (the trigger runs as that owner, in the restricted context of the drop).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use PipelineNode;

my $node = PipelineNode::new_node('retention_crash', conf => 'pipeline.enabled = off');
$node->start;

$node->safe_psql('postgres', q{
	CREATE DATABASE app;
	CREATE ROLE team LOGIN;});
$node->safe_psql('app', q{
	CREATE EXTENSION pipeline CASCADE;
	CREATE SCHEMA team AUTHORIZATION team;
	GRANT USAGE, CREATE ON SCHEMA pipeline, metrics TO team;});
$node->safe_psql('app', q{
	SELECT pipeline.create_source('taps', 'tap_id bigint NOT NULL, event_time timestamptz NOT NULL, kind text',
	    event_id => 'tap_id', allowed_lateness => '1 hour', freeze_after => '1 day');
	SELECT pipeline.create_metric('taps_n', 'taps', '{kind}', 'count(*) AS n, count(DISTINCT tap_id) AS taps');},
	extra_params => [ '-U', 'team' ]);

# 1,000 events on each of 2026-02-01, -02 and -03, all frozen by 2026-02-06
$node->safe_psql('app', q{
	SELECT pipeline.ingest('taps', (
	    SELECT jsonb_agg(jsonb_build_object('tap_id', d * 10000 + i, 'kind', 'k' || (i % 3),
	             'event_time', timestamptz '2026-01-31 00:00+00' + d * interval '1 day' + i * interval '1 minute'))
	      FROM generate_series(1, 1000) AS i), 'day' || d)
	  FROM generate_series(1, 3) AS d;
	SELECT pipeline.run_hot();
	SELECT count(*) FROM pipeline.close_days('2026-02-06 00:00+00');});
$node->safe_psql('app', q{SELECT pipeline.set_retention('taps', '2 days')}, extra_params => [ '-U', 'team' ]);

sub state
{
	return $node->safe_psql('app', q{
		SELECT (SELECT string_agg(d::text, ',' ORDER BY d) FROM pipeline._source_days('taps') AS d) || ' | '
		    || (SELECT count(*) FROM pipeline.taps_raw) || ' raw | '
		    || (SELECT count(*) FROM pipeline.taps_ids) || ' ids | '
		    || (SELECT count(*) FROM pipeline.batches WHERE source = 'taps') || ' receipts | '
		    || coalesce((SELECT raw_dropped_through::text FROM pipeline.retention WHERE source = 'taps'), 'no horizon') || ' | '
		    || (SELECT string_agg(day || ':' || kind || ':' || n || ':' || status, ',' ORDER BY day, kind)
		          FROM metrics.taps_n_daily)});
}
my $before = state();
like($before, qr/^2026-02-01,2026-02-02,2026-02-03 \| 3000 raw \| 3000 ids \| 3 receipts \| no horizon \|/,
	'three frozen days of 1,000 events before maintain');

# the owner's trigger: maintain waits in the middle of dropping a day
$node->safe_psql('app', q{
	CREATE FUNCTION team.slow_down() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN PERFORM pg_sleep(300); RETURN NULL; END $$;
	CREATE TRIGGER slow_down AFTER DELETE ON pipeline.taps_ids
	    FOR EACH STATEMENT EXECUTE FUNCTION team.slow_down();}, extra_params => [ '-U', 'team' ]);

my ($out, $err) = ('', '');
my $maintain = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('app'), '-c',
	  q{SELECT * FROM pipeline.maintain('2026-02-05 12:00+00')} ],
	'>', \$out, '2>', \$err);
$node->poll_query_until('app', q{
	SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query ~ 'maintain'})
  or die 'maintain never reached the middle of a day';
my $pid = $node->safe_psql('app', q{
	SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query ~ 'maintain'});

# meanwhile, ingest into another day of the source does not wait for it,
# even for a day that needs a new partition
my ($rc, $accepted, $ingest_err) = $node->psql('app', q{
	SET statement_timeout = '5s';
	SELECT accepted FROM pipeline.ingest('taps',
	    '[{"tap_id": 99, "kind": "k1", "event_time": "2026-02-05T10:00:00Z"}]')});
is($rc . '|' . $accepted, '0|1', 'an event for another day is accepted while maintain is in the middle of a day')
  or diag($ingest_err);

# kill -9 in the middle: crash recovery, then nothing lost, nothing dropped
PipelineNode::kill9_and_wait($node, $pid) or die 'the server did not come back';
$maintain->finish;
my $after_crash = state();
my $expected = $before;
$expected =~ s/ 3000 raw \| 3000 ids \| 3 receipts / 3001 raw | 3001 ids | 4 receipts /;
$expected =~ s/^2026-02-01,2026-02-02,2026-02-03 /2026-02-01,2026-02-02,2026-02-03,2026-02-05 /;
is($after_crash, $expected, 'after a crash in the middle of maintain: every day, id, receipt and daily row is there');

# without the trigger, the next run drops the two oldest days, exactly
$node->safe_psql('app', 'DROP TRIGGER slow_down ON pipeline.taps_ids', extra_params => [ '-U', 'team' ]);
is($node->safe_psql('app', q{SELECT string_agg(object || ' ' || action, ', ' ORDER BY object)
                               FROM pipeline.maintain('2026-02-05 12:00+00') WHERE action = 'dropped'}),
	'pipeline.taps_raw_20260201 dropped, pipeline.taps_raw_20260202 dropped',
	'the next maintain drops the days it could not');
like(state(), qr/^2026-02-03,2026-02-05 \| 1001 raw \| 1001 ids \| 4 receipts \| 2026-02-02 \|/,
	'the two days and their ids went, nothing else');
is((split / \| /, state())[5], (split / \| /, $before)[5], 'the daily rows are the same');
is($node->safe_psql('app', q{SELECT bool_and(pipeline.verify_day('taps_n', day))
                               FROM metrics.taps_n_daily WHERE status = 'frozen'}),
	't', 'every frozen day still matches its digest');

done_testing();
