# The fold's statement runs without JIT, whatever the session's settings:
# the planner costs a batch's rows by the size of the raw partitions (its
# BRIN scan is lossy), so on a large raw table every fold crossed
# jit_above_cost and compiled its expressions for work bounded by the new
# events.  Here jit_above_cost = 0 stands for that large table: the fold's
# plan, logged by auto_explain, has no JIT section, a plain query of the
# same session has one, and the session's jit setting is what it was.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $node = PipelineNode::new_node('fold_jit', conf => 'pipeline.enabled = off');
$node->start;
PipelineNode::create_database($node, 'jit');

if ($node->safe_psql('jit', 'SELECT pg_jit_available()') ne 't')
{
	$node->stop;
	plan skip_all => 'this server has no JIT provider (llvmjit)';
}

$node->safe_psql('jit', q{
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
my $out = $node->safe_psql('jit', q{
	LOAD 'auto_explain';
	SET auto_explain.log_min_duration = 0;
	SET auto_explain.log_nested_statements = on;
	SET jit = on;
	SET jit_above_cost = 0;
	SELECT pipeline.run_hot('sales');
	SELECT count(*) FROM pipeline.orders_raw WHERE amount > 4;
	SHOW jit;
});
is($out, "1000\n500\non", 'the fold folds every event and leaves the session\'s jit setting as it was');

# auto_explain's entries: a "duration: ... plan:" line and its tab-indented
# continuation lines
my @plans = grep { /duration: .* plan:/ } split /\n(?=\S)/, PipelineNode::log_since($node, $offset);
my @fold = grep { /Query Text: INSERT INTO pipeline\.sales_hot/ } @plans;
my @plain = grep { /Query Text: \s*SELECT count\(\*\) FROM pipeline\.orders_raw/ } @plans;
is(scalar @fold, 1, 'the fold statement ran once and its plan was logged');
is(scalar @plain, 1, 'the plain query\'s plan was logged');
unlike($fold[0] // 'missing', qr/JIT:/, 'the fold\'s plan compiled nothing');
like($plain[0] // 'missing', qr/JIT:/, 'the same session\'s plain query used JIT');

is($node->safe_psql('jit', 'SELECT n || \'|\' || total || \'|\' || buyers FROM metrics.sales_live'),
	'1000|4500|97', 'the hot layer holds the batch');

$node->stop;
done_testing();
