# pg_dump of a database in use, pg_restore into a database of ANOTHER
# cluster (its own initdb, its own transaction ids), and then the same steps
# on the original and on the copy: every number equal, no manual step.
#
# The dump is taken with work pending: a batch not folded yet and a late
# batch for a frozen day not corrected yet.  Both must be folded and
# corrected once on the copy, like on the original, and everything after
# the restore is new (src/sql/67_restore.sql).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $old = PipelineNode::new_node('old_cluster', conf => 'pipeline.enabled = off');
my $new = PipelineNode::new_node('new_cluster', conf => 'pipeline.enabled = off');
$old->start;
$new->start;

# the old cluster has given out far more transaction ids than the new one
# will have when the dump is restored: its receipts' ids mean nothing there
$old->safe_psql('postgres', q{
	CREATE PROCEDURE burn(n int) LANGUAGE plpgsql AS $$
	BEGIN FOR i IN 1 .. n LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$;
	CALL burn(20000);});
$old->safe_psql('postgres', 'CREATE DATABASE shop');
$old->safe_psql('shop', q{
	CREATE EXTENSION pipeline CASCADE;
	SELECT pipeline.create_source('orders', 'order_id bigint NOT NULL, event_time timestamptz NOT NULL,
	    user_id int, amount numeric(10,2), platform text', event_id => 'order_id',
	    allowed_lateness => '1 hour', freeze_after => '1 day', day_timezone => 'Europe/Berlin');
	SELECT pipeline.create_metric('sales', 'orders', '{platform}',
	    'count(*) AS orders, sum(amount) AS revenue, count(DISTINCT user_id) AS buyers',
	    hot_retention => '100 years');
	SELECT pipeline.ingest('orders', (
	    SELECT jsonb_agg(jsonb_build_object('order_id', i, 'user_id', i % 13, 'amount', i % 50,
	             'platform', CASE WHEN i % 3 = 0 THEN 'ios' ELSE 'web' END,
	             'event_time', timestamptz '2026-02-01 00:00+00' + i * interval '23 minutes'))
	      FROM generate_series(1, 300) AS i), 'first');
	SELECT pipeline.ingest('orders', '[{"order_id": "x"}, {"order_id": 9000, "event_time": "2026-02-02T10:00:00Z", "amount": "lots"}]', 'bad');
	SELECT pipeline.run_hot();
	SELECT count(*) FROM pipeline.close_days('2026-02-05 00:00+00');
	-- late for a frozen day, corrected before the dump
	SELECT pipeline.ingest('orders', '[{"order_id": 5001, "user_id": 77, "amount": 10, "platform": "web", "event_time": "2026-02-01T12:00:00Z"}]', 'late1');
	SELECT count(*) FROM pipeline.close_days('2026-02-05 01:00+00');
	SELECT pipeline.run_hot();
	-- pending at the dump: not folded, not corrected
	SELECT pipeline.ingest('orders', '[{"order_id": 5002, "user_id": 78, "amount": 20, "platform": "ios", "event_time": "2026-02-01T13:00:00Z"},
	                                   {"order_id": 5003, "user_id": 1, "amount": 5, "platform": "web", "event_time": "2026-02-05T09:00:00Z"}]', 'pending');});

is($old->safe_psql('shop', q{SELECT count(*) FROM pipeline.day_closures WHERE status = 'frozen'}), '3',
	'three frozen days at the dump');
is($old->safe_psql('shop', q{SELECT count(*) FROM metrics.sales_corrections}), '1', 'one correction at the dump');

my $dump = $old->basedir . '/shop.dump';
$old->command_ok([ 'pg_dump', '-Fc', '-d', $old->connstr('shop'), '-f', $dump ], 'pg_dump -Fc');
$new->safe_psql('postgres', 'CREATE DATABASE shop');
$new->command_ok([ 'pg_restore', '-d', $new->connstr('shop'), $dump ], 'pg_restore into another cluster');
isnt($new->safe_psql('shop', 'SELECT system_identifier FROM pipeline.cluster_identity'),
	$new->safe_psql('shop', 'SELECT pipeline._system_identifier()'),
	'the restored database records the old cluster');

# the same steps on both
my @steps = (
	q{SELECT received || '/' || accepted || '/' || duplicates || '/' || rejected
	    FROM pipeline.ingest('orders', '[{"order_id": 1, "event_time": "2026-02-01T00:23:00Z"}]', 'first')},
	q{SELECT received || '/' || accepted || '/' || duplicates || '/' || rejected
	    FROM pipeline.ingest('orders', '[{"order_id": 2, "event_time": "2026-02-01T00:46:00Z"},
	                                     {"order_id": 6001, "user_id": 90, "amount": 7, "platform": "ios", "event_time": "2026-02-05T10:00:00Z"},
	                                     {"order_id": 6002, "user_id": 91, "amount": 8, "platform": "web", "event_time": "2026-02-02T11:00:00Z"}]', 'after')},
	q{SELECT pipeline.run_hot()},
	q{SELECT string_agg(day || ' ' || action, ', ' ORDER BY day, action) FROM pipeline.close_days('2026-02-07 00:00+00')},
	q{SELECT string_agg(day || ' ' || action, ', ' ORDER BY day, action) FROM pipeline.close_days('2026-02-07 00:30+00')},
	q{SELECT string_agg(concat_ws(':', bucket, platform, orders, revenue), ',' ORDER BY bucket, platform) FROM metrics.sales_live},
	q{SELECT string_agg(concat_ws(':', day, platform, orders, revenue, buyers, status), ',' ORDER BY day, platform) FROM metrics.sales_daily},
	q{SELECT string_agg(concat_ws(':', day, platform, orders_delta, revenue_delta, buyers_delta, late_events), ',' ORDER BY day, platform, late_events, orders_delta) FROM metrics.sales_corrections},
	q{SELECT string_agg(concat_ws(':', day, platform, orders, revenue, buyers, corrected), ',' ORDER BY day, platform) FROM metrics.sales_restated},
	q{SELECT string_agg(concat_ws(':', batch_key, received, accepted, duplicates, rejected), ',' ORDER BY batch_id) FROM pipeline.batches},
	q{SELECT count(*) FROM pipeline.dead_letters},
	q{SELECT string_agg(day || ':' || (pipeline.explain('sales', day) ->> 'adds_up'), ',' ORDER BY day)
	    FROM pipeline.day_closures WHERE status = 'frozen'},
	q{SELECT bool_and(pipeline.verify_day('sales', day)) FROM pipeline.day_closures WHERE status = 'frozen'},
	q{SELECT (SELECT sum(orders) FROM metrics.sales_live) = (SELECT count(*) FROM pipeline.orders_raw)},
	q{SELECT (SELECT sum(orders) FROM metrics.sales_restated) = (SELECT count(*) FROM pipeline.orders_raw
	           WHERE (event_time AT TIME ZONE 'Europe/Berlin')::date IN (SELECT day FROM pipeline.day_closures))});
my @out;
for my $i (0 .. $#steps)
{
	$out[$i] = $old->safe_psql('shop', $steps[$i]);
	my $got = $new->safe_psql('shop', $steps[$i]);
	is($got, $out[$i], "step $i is the same on the copy: " . substr($steps[$i] =~ s/\s+/ /gr, 0, 70));
}

is($out[-1], 't', 'restated equals an exact count over raw');
is($out[-2], 't', 'every event is in the hot layer once');
is($out[0], '300/300/0/0', 'a retried batch key gets its original receipt');
like($out[3], qr/2026-02-01 corrected/, 'the late batch pending at the dump became a correction');
is($new->safe_psql('shop', 'SELECT system_identifier = pipeline._system_identifier() FROM pipeline.cluster_identity'),
	't', 'the copy now records its own cluster');
like($new->safe_psql('shop', 'SELECT rebased_from FROM pipeline.cluster_identity'), qr/^-?\d+$/,
	'and which cluster it was re-based from');

done_testing();
