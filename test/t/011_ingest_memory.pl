# Memory stays bounded: a 100k-event batch grows the backend's peak RSS by
# at most a small multiple of the batch's own size, through both forms.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $node = PipelineNode::new_node('memory');
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', q{
	CREATE EXTENSION pipeline;
	SELECT pipeline.create_source('orders',
		'order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL,
		 amount numeric(12,2) CHECK (amount >= 0), note text', event_id => 'order_id');
	CREATE TABLE batch AS
	SELECT jsonb_agg(jsonb_build_object(
	           'order_id', i, 'event_time', now() - (i % 72) * interval '1 hour',
	           'user_id', 'user-' || (i % 5000), 'amount', (i % 1000) / 10.0,
	           'note', CASE WHEN i % 10 = 0 THEN NULL ELSE 'n' END,
	           'unknown_field', i % 3)) AS events
	  FROM generate_series(1, 100000) AS i;
	CREATE TABLE ndjson AS
	SELECT string_agg(jsonb_build_object(
	           'order_id', 1000000 + i, 'event_time', now() - (i % 72) * interval '1 hour',
	           'user_id', 'user-' || (i % 5000), 'amount', CASE WHEN i % 100 = 0 THEN -1 ELSE 1 END)::text,
	           E'\n') AS events
	  FROM generate_series(1, 100000) AS i;
});

sub peak_rss_kb
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or die "cannot read /proc/$pid/status: $!";
	while (<$fh>) { return $1 if /^VmHWM:\s+(\d+)\s+kB/; }
	die "no VmHWM for $pid";
}

for my $form (['jsonb', 'batch', 'events'], ['text', 'ndjson', 'events'])
{
	my ($name, $table, $col) = @$form;
	my ($session, $pid) = PipelineNode::session($node, 'app');
	# warm the backend up: catalogs, plans, a first partition
	$session->query_safe("SELECT received FROM pipeline.ingest('orders', '[]'::jsonb)");
	# the batch's own size: its text, as the client sends it
	my $size_kb = $node->safe_psql('app', "SELECT octet_length(${col}::text) / 1024 FROM $table");
	my $before = peak_rss_kb($pid);
	my $out = $session->query_safe(
		"SELECT received, accepted + duplicates + rejected FROM pipeline.ingest('orders', (SELECT $col FROM $table))");
	my $after = peak_rss_kb($pid);
	is($out, '100000|100000', "$name: 100k events received and accounted for");
	my $growth = $after - $before;
	diag("$name: batch $size_kb kB, peak RSS grew by $growth kB");
	# the input is held whole (detoasted, and for text split in place) plus
	# one 10k-event chunk at a time: allow 6x the batch, plus 16 MB for the
	# catalog entries of the 72 day partitions it creates
	cmp_ok($growth, '<', 6 * $size_kb + 16 * 1024,
		"$name: peak RSS growth stays within a small multiple of the batch");
	$session->quit;
}

is($node->safe_psql('app', 'SELECT count(*) FROM pipeline.orders_raw'), '199000',
	'all valid events stored');
$node->stop;
done_testing();
