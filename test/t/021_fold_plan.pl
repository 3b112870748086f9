# The fold's statement runs with settings of its own, whatever the
# session's, and leaves the session's as they were:
#   - no JIT: the planner costs a batch's rows by the size of the raw
#     partitions (its BRIN scan is lossy), so on a large raw table every
#     fold crossed jit_above_cost and compiled its expressions for work
#     bounded by the new events.  Here jit_above_cost = 0 stands for that
#     large table: the fold's plan, logged by auto_explain, has no JIT
#     section, a plain query of the same session has one (skipped when the
#     server has no JIT provider);
#   - rows grouped by hashing: with no statistics yet the planner takes a
#     batch for a few rows and sorts them, which was 40% of the fold of an
#     on-time 100k-event batch.  Here the partition has no statistics: the
#     fold's plan groups with a HashAggregate and sorts nothing, while the
#     same GROUP BY planned by the session sorts.  A fold of more rows
#     than pipeline.fold_hash_rows is left to the planner (a hash
#     aggregate's memory follows its rows): with the setting at 500, a
#     fold of 1,000 rows sorts them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $node = PipelineNode::new_node('fold_plan', conf => 'pipeline.enabled = off');
$node->start;
PipelineNode::create_database($node, 'plan');
my $jit = $node->safe_psql('plan', 'SELECT pg_jit_available()') eq 't';

$node->safe_psql('plan', q{
	SELECT pipeline.create_source('orders', 'order_id bigint NOT NULL, event_time timestamptz NOT NULL,
	                                         user_id text, amount numeric', event_id => 'order_id');
	SELECT pipeline.create_metric('sales', 'orders', '{}',
	                              'count(*) AS n, sum(amount) AS total, count(DISTINCT user_id) AS buyers',
	                              bucket => '1 hour', hot_retention => '7 days');
	SELECT accepted FROM pipeline.ingest('orders', (
	  SELECT jsonb_agg(jsonb_build_object('order_id', i, 'event_time', now() - interval '1 hour',
	                                      'user_id', 'u' || i % 97, 'amount', i % 10))
	    FROM generate_series(1, 1000) AS i));
});

my $offset = -s $node->logfile;
my $out = $node->safe_psql('plan', q{
	LOAD 'auto_explain';
	SET auto_explain.log_min_duration = 0;
	SET auto_explain.log_nested_statements = on;
	SET jit = on;
	SET jit_above_cost = 0;
	SET enable_sort = on;
	SELECT pipeline.run_hot('sales');
	SELECT count(*) FROM pipeline.orders_raw WHERE amount > 4;
	SELECT count(*) FROM (SELECT date_bin('1 hour', event_time, '2000-01-01'), count(*), sum(amount)
	                        FROM pipeline.orders_raw WHERE _pl_batch = 1 GROUP BY 1) AS g;
	SHOW jit;
	SHOW enable_sort;
});
is($out, "1000\n500\n1\non\non", 'the fold folds every event and leaves the session\'s jit and enable_sort as they were');

# auto_explain's entries: a "duration: ... plan:" line and its tab-indented
# continuation lines
my @plans = grep { /duration: .* plan:/ } split /\n(?=\S)/, PipelineNode::log_since($node, $offset);
my @fold = grep { /Query Text: INSERT INTO pipeline\.sales_hot/ } @plans;
my @plain = grep { /Query Text: \s*SELECT count\(\*\) FROM pipeline\.orders_raw/ } @plans;
my @grouped = grep { /Query Text: \s*SELECT count\(\*\) FROM \(SELECT date_bin/ } @plans;
is(scalar @fold, 1, 'the fold statement ran once and its plan was logged');
is(scalar @plain, 1, 'the plain query\'s plan was logged');
is(scalar @grouped, 1, 'the session\'s GROUP BY\'s plan was logged');

like($fold[0] // 'missing', qr/HashAggregate/, 'the fold groups its rows by hashing');
unlike($fold[0] // 'missing', qr/Sort/, 'the fold sorts nothing');
like($grouped[0] // 'missing', qr/Sort/, 'the same GROUP BY planned by the session sorts (the case the fold avoids)');

SKIP:
{
	skip 'this server has no JIT provider (llvmjit)', 2 unless $jit;
	unlike($fold[0] // 'missing', qr/JIT:/, 'the fold\'s plan compiled nothing');
	like($plain[0] // 'missing', qr/JIT:/, 'the same session\'s plain query used JIT');
}

is($node->safe_psql('plan', 'SELECT n || \'|\' || total || \'|\' || buyers FROM metrics.sales_live'),
	'1000|4500|97', 'the hot layer holds the batch');

# a fold of more rows than pipeline.fold_hash_rows: the planner's own choice
$offset = -s $node->logfile;
$out = $node->safe_psql('plan', q{
	SELECT accepted FROM pipeline.ingest('orders', (
	  SELECT jsonb_agg(jsonb_build_object('order_id', 1000 + i, 'event_time', now() - interval '1 hour',
	                                      'user_id', 'u' || i % 97, 'amount', i % 10))
	    FROM generate_series(1, 1000) AS i));
	LOAD 'auto_explain';
	SET auto_explain.log_min_duration = 0;
	SET auto_explain.log_nested_statements = on;
	SET pipeline.fold_hash_rows = 500;
	SELECT pipeline.run_hot('sales');
});
is($out, "1000\n1000", 'a second batch of 1,000 events folded');
@plans = grep { /duration: .* plan:/ } split /\n(?=\S)/, PipelineNode::log_since($node, $offset);
@fold = grep { /Query Text: INSERT INTO pipeline\.sales_hot/ } @plans;
is(scalar @fold, 1, 'the second fold\'s plan was logged');
like($fold[0] // 'missing', qr/Sort/, 'more rows than pipeline.fold_hash_rows: the fold sorts them, as the planner chose');
is($node->safe_psql('plan', 'SELECT n || \'|\' || total || \'|\' || buyers FROM metrics.sales_live'),
	'2000|9000|97', 'the hot layer holds both batches');

$node->stop;
done_testing();
