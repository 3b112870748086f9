# Concurrent ingest: one batch_key sent by two sessions at once, many
# sessions sending overlapping event ids, and sessions creating the same
# new day partition at the same time.  Blocking is observed in
# pg_stat_activity / pg_blocking_pids, never waited for with sleeps.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $node = PipelineNode::new_node('ingest_concurrency');
$node->start;

my $contract = q{order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, amount numeric(12,2) CHECK (amount >= 0)};

# one database per case, so that every whole-table check below is exact
sub setup_db
{
	my ($db) = @_;
	PipelineNode::create_database($node, $db);
	$node->safe_psql($db, qq{SELECT pipeline.create_source('orders', '$contract', event_id => 'order_id')});
	return;
}

# an event as JSON text
sub event
{
	my ($id, $time, $amount) = @_;
	$amount = 10 unless defined $amount;
	return qq({"order_id": $id, "event_time": "$time", "user_id": "u$id", "amount": $amount});
}

sub ingest_sql
{
	my ($key, @events) = @_;
	my $json = '[' . join(', ', @events) . ']';
	my $k = defined $key ? "'$key'" : 'NULL';
	return qq{SELECT * FROM pipeline.ingest('orders', '$json'::jsonb, $k)};
}

# the output of a statement sent with query_until(qr/b-started/, ...) and
# followed by \echo b-done
sub b_result
{
	my ($session) = @_;
	my $out = $session->query_until(qr/b-done\r?\n/, '');
	$out =~ s/\r?\n?b-done\r?\n//;
	return $out;
}

my $receipt_re = qr/^(\d+)\|(\d+)\|(\d+)\|(\d+)\|(\d+)$/;

###########################################################################
# 1. the same batch_key from two sessions at once
###########################################################################
setup_db('samekey');
my $log_start = -s $node->logfile;

# received 7: five good events, one in-batch duplicate (of 100001), one
# rejected (negative amount)
my $t0 = $node->safe_psql('samekey',
	q{SELECT to_char((now() - interval '5 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')});

sub batch_of
{
	my ($base) = @_;
	return (
		event($base + 3, $t0), event($base + 1, $t0), event($base + 5, $t0),
		event($base + 2, $t0), event($base + 1, $t0), event($base + 4, $t0),
		event($base + 6, $t0, -1));
}

for my $variant ('commit', 'rollback')
{
	my $key = $variant eq 'commit' ? 'key-1' : 'key-2';
	my $base = $variant eq 'commit' ? 100000 : 200000;
	my $sql = ingest_sql($key, batch_of($base));

	my ($sa, $apid) = PipelineNode::session($node, 'samekey');
	my ($sb, $bpid) = PipelineNode::session($node, 'samekey', on_error_stop => 0);

	my $ra = $sa->query_safe("BEGIN; $sql;");
	like($ra, $receipt_re, "$variant: session A gets a receipt inside its open transaction");
	my ($a_batch) = $ra =~ $receipt_re;
	is(join('|', ($ra =~ $receipt_re)[1 .. 4]), '7|5|1|1',
		"$variant: A's receipt: received 7, accepted 5, duplicates 1, rejected 1");

	$sb->query_until(qr/b-started/, "\\echo b-started\n$sql;\n\\echo b-done\n");
	ok(PipelineNode::wait_blocked($node, 'samekey', $bpid, holder => $apid), "$variant: B waits for A's transaction")
	  or die "backend $bpid never blocked behind $apid";

	$sa->query_safe($variant eq 'commit' ? 'COMMIT' : 'ROLLBACK');
	my $rb = b_result($sb);
	is($sb->{stderr}, '', "$variant: no error reaches B");

	my $where = "batch_key = '$key'";
	if ($variant eq 'commit')
	{
		is($rb, $ra, 'commit: B gets the same receipt as A (same batch_id and counts)');
	}
	else
	{
		like($rb, $receipt_re, 'rollback: B gets a receipt');
		my ($b_batch, @counts) = $rb =~ $receipt_re;
		isnt($b_batch, $a_batch, 'rollback: B applied the batch under a new batch_id');
		is(join('|', @counts), '7|5|1|1', 'rollback: B accepted the events itself');
		is($node->safe_psql('samekey', "SELECT count(*) FROM pipeline.batch_log WHERE batch_id = $a_batch"),
			'0', "rollback: A's batch_id is gone");
	}
	is($node->safe_psql('samekey',
			"SELECT string_agg(batch_id || '|' || received || '|' || accepted || '|' || duplicates || '|' || rejected, ',')"
			  . " FROM pipeline.batches WHERE $where"),
		$rb, "$variant: pipeline.batches has exactly one row for $key, the receipt B got");
	is($node->safe_psql('samekey', qq{
			SELECT string_agg(order_id::text, ',' ORDER BY order_id)
			  FROM pipeline.orders_raw WHERE order_id BETWEEN $base AND $base + 999}),
		join(',', map { $base + $_ } 1 .. 5),
		"$variant: raw holds the batch's five events, once each");
	is($node->safe_psql('samekey', qq{
			SELECT count(*) FROM pipeline.orders_ids WHERE event_id BETWEEN $base AND $base + 999}),
		'5', "$variant: the id index holds five ids");
	is($node->safe_psql('samekey', qq{
			SELECT count(*) FROM pipeline.dead_letters d JOIN pipeline.batches b USING (batch_id)
			 WHERE b.$where}),
		'1', "$variant: one dead letter, not two");

	$sa->quit;
	$sb->quit;
}
is($node->safe_psql('samekey', 'SELECT count(*) FROM pipeline.orders_raw WHERE order_id < 300000'), '10',
	'ten events stored by the two key races in all');

# 1b. the same ids without a batch_key: A stores ids 1..5 (of base) and
# keeps its transaction open; B sends 3..8 with one id that a committed
# batch stored before.  B's primary key reports A's ids as possibly held,
# its second look finds them in progress, and the chunk goes to the
# statement path, which waits for A: committed, they are B's duplicates;
# rolled back, they are B's to store.
for my $variant ('commit', 'rollback')
{
	my $base = $variant eq 'commit' ? 300000 : 400000;
	$node->safe_psql('samekey', ingest_sql(undef, event($base + 50, $t0)));
	my $sql_a = ingest_sql(undef, map { event($base + $_, $t0) } 1 .. 5);
	my $sql_b = ingest_sql(undef, map { event($base + $_, $t0) } 3 .. 8, 50);

	my ($sa, $apid) = PipelineNode::session($node, 'samekey');
	my ($sb, $bpid) = PipelineNode::session($node, 'samekey', on_error_stop => 0);

	my $ra = $sa->query_safe("BEGIN; $sql_a;");
	is(join('|', ($ra =~ $receipt_re)[1 .. 4]), '5|5|0|0', "ids $variant: A accepts its five");
	$sb->query_until(qr/b-started/, "\\echo b-started\n$sql_b;\n\\echo b-done\n");
	ok(PipelineNode::wait_blocked($node, 'samekey', $bpid, holder => $apid),
		"ids $variant: B waits for A's transaction")
	  or die "backend $bpid never blocked behind $apid";
	$sa->query_safe($variant eq 'commit' ? 'COMMIT' : 'ROLLBACK');
	my $rb = b_result($sb);
	is($sb->{stderr}, '', "ids $variant: no error reaches B");
	is(join('|', ($rb =~ $receipt_re)[1 .. 4]),
		$variant eq 'commit' ? '7|3|4|0' : '7|6|1|0',
		$variant eq 'commit'
		? 'ids commit: B accepts 6..8, and 3..5 and the stored id are duplicates'
		: 'ids rollback: B accepts 3..8, the stored id is a duplicate');
	is($node->safe_psql('samekey', qq{
			SELECT string_agg(order_id::text, ',' ORDER BY order_id)
			  FROM pipeline.orders_raw WHERE order_id BETWEEN $base AND $base + 999}),
		join(',', map { $base + $_ } ($variant eq 'commit' ? (1 .. 8) : (3 .. 8)), 50),
		"ids $variant: raw holds each id once");
	is($node->safe_psql('samekey', qq{
			SELECT count(*) FROM pipeline.orders_ids WHERE event_id BETWEEN $base AND $base + 999}),
		$variant eq 'commit' ? '9' : '7', "ids $variant: the id table holds each id once");
	$sa->quit;
	$sb->quit;
}
my $log1 = PipelineNode::log_since($node, $log_start);
unlike($log1, qr/ERROR|deadlock detected/, 'no error in the server log for the batch_key races');

###########################################################################
# 2. eight sessions ingesting heavily overlapping ids
###########################################################################
setup_db('overlap');
my $clients = 8;
my $xacts = 25;
my $per_batch = 100;
# the day partitions the run needs exist beforehand (case 3 races on
# those): a warm-up batch of ids 1 and 2, 55 minutes ago and 5 minutes
# ahead, brackets every event time the clients will send
is($node->safe_psql('overlap', q{
	SELECT received || '|' || accepted FROM pipeline.ingest('orders', jsonb_build_array(
	  jsonb_build_object('order_id', 1, 'event_time', now() - interval '55 minutes', 'user_id', 'u1', 'amount', 1),
	  jsonb_build_object('order_id', 2, 'event_time', now() + interval '5 minutes', 'user_id', 'u2', 'amount', 2)))}),
	'2|2', 'warm-up batch stored');
my $batches = $clients * $xacts + 1;
my $pgbench_xacts = $clients * $xacts;

# ids drawn with replacement from 0..999: overlaps across batches and
# duplicates within one; ids divisible by 97 (11 of them) carry a negative
# amount and are always rejected
my $script = qq{
SELECT * FROM pipeline.ingest('orders',
  (SELECT jsonb_agg(jsonb_build_object(
            'order_id', i,
            'event_time', now() - random() * interval '50 minutes',
            'user_id', 'u' || i,
            'amount', CASE WHEN i % 97 = 0 THEN -1 ELSE i % 100 END))
     FROM (SELECT floor(random() * 1000)::int AS i
             FROM generate_series(1, $per_batch)) AS s));
};
$log_start = -s $node->logfile;
$node->pgbench("-n -c $clients -j 2 -t $xacts", 0,
	[ qr{number of transactions actually processed: $pgbench_xacts/$pgbench_xacts},
	  qr{number of failed transactions: 0 } ],
	[ qr{^$} ],
	'pgbench: 8 clients ingesting overlapping ids',
	{ '010_overlap.sql' => $script }, 'overlap');
my $log2 = PipelineNode::log_since($node, $log_start);
unlike($log2, qr/deadlock detected/, 'no deadlock in the server log');
unlike($log2, qr/duplicate key/, 'no unique violation in the server log');
unlike($log2, qr/ERROR/, 'no error at all in the server log');

is($node->safe_psql('overlap', 'SELECT count(*) FROM pipeline.batches'),
	$batches, "$batches receipts");
is($node->safe_psql('overlap', 'SELECT sum(received) FROM pipeline.batches'),
	$pgbench_xacts * $per_batch + 2, 'every event sent was received');
is($node->safe_psql('overlap', q{
		SELECT count(*) FROM pipeline.batches
		 WHERE received <> accepted + duplicates + rejected}),
	'0', 'every receipt conserves its events');
is($node->safe_psql('overlap', q{
		SELECT sum(received) = sum(accepted) + sum(duplicates) + sum(rejected)
		  FROM pipeline.batches}),
	't', 'conservation over all receipts');
is($node->safe_psql('overlap', q{
		SELECT count(*) || '|' || count(DISTINCT order_id) FROM pipeline.orders_raw}),
	'989|989',
	'each valid id of 0..999 stored exactly once (989 = 1000 minus 11 multiples of 97)');
is($node->safe_psql('overlap', 'SELECT sum(accepted) FROM pipeline.batches'),
	'989', 'sum(accepted) equals the raw row count');
is($node->safe_psql('overlap', 'SELECT count(*) FROM pipeline.orders_ids'),
	'989', 'the id index has as many ids as raw has rows');
is($node->safe_psql('overlap', q{
		SELECT count(*) FROM (
		  (SELECT order_id FROM pipeline.orders_raw EXCEPT SELECT event_id FROM pipeline.orders_ids)
		  UNION ALL
		  (SELECT event_id FROM pipeline.orders_ids EXCEPT SELECT order_id FROM pipeline.orders_raw)) AS d}),
	'0', 'the id index and raw hold the same ids');
is($node->safe_psql('overlap', q{
		SELECT count(*) FROM pipeline.batches AS b
		  LEFT JOIN (SELECT _pl_batch, count(*) AS n FROM pipeline.orders_raw GROUP BY 1) AS r
		         ON r._pl_batch = b.batch_id
		 WHERE b.accepted <> coalesce(r.n, 0)}),
	'0', "each receipt's accepted count is the number of raw rows carrying its batch_id");
is($node->safe_psql('overlap', q{
		SELECT count(*) FROM pipeline.orders_raw AS r JOIN pipeline.orders_ids AS i
		    ON i.event_id = r.order_id WHERE i._pl_batch <> r._pl_batch}),
	'0', 'raw row and id index agree on the batch that stored each id');
is($node->safe_psql('overlap', q{
		SELECT (SELECT sum(rejected) FROM pipeline.batches) = count(*)
		   AND bool_and(payload::jsonb ->> 'order_id' ~ '^[0-9]+$'
		                AND (payload::jsonb ->> 'order_id')::int % 97 = 0)
		  FROM pipeline.dead_letters}),
	't', 'sum(rejected) equals the dead letters, all of them the negative-amount ids');
is($node->safe_psql('overlap', 'SELECT count(*) FROM pipeline.orders_raw WHERE order_id % 97 = 0'),
	'0', 'no rejected id reached raw');


###########################################################################
# 3. sessions creating the same new day partitions at once
###########################################################################
setup_db('newday');
$log_start = -s $node->logfile;

# day D (five days ago, UTC: the source's day_timezone) as 'YYYY-MM-DD'
# and 'YYYYMMDD', with its neighbours and two days further back
my %day;
for my $off (-1, 0, 1, -10, -9)
{
	my ($iso, $tag) = split /\|/, $node->safe_psql('newday', qq{
		SELECT to_char(d, 'YYYY-MM-DD') || '|' || to_char(d, 'YYYYMMDD')
		  FROM (SELECT (now() AT TIME ZONE 'UTC')::date - 5 + ($off) AS d) AS x});
	$day{$off} = { iso => $iso, part => "orders_raw_$tag" };
}
is($node->safe_psql('newday', q{
		SELECT count(*) FROM pg_inherits WHERE inhparent = 'pipeline.orders_raw'::regclass}),
	'0', 'no partition exists before the race');

sub partitions
{
	return $node->safe_psql('newday', q{
		SELECT string_agg(c.relname, ',' ORDER BY c.relname)
		  FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'pipeline.orders_raw'::regclass});
}

sub receipt_counts
{
	my ($r) = @_;
	my @f = $r =~ $receipt_re;
	return @f ? join('|', @f[1 .. 4]) : "no receipt in '$r'";
}

# --- 3a. A and B both need day D; A holds it uncommitted ------------------
{
	my ($sa, $apid) = PipelineNode::session($node, 'newday', on_error_stop => 0);
	my ($sb, $bpid) = PipelineNode::session($node, 'newday', on_error_stop => 0);
	my ($dm, $d0, $dp) = map { $day{$_}{iso} } (-1, 0, 1);

	# A: day D (both edges) and D-1, out of order
	my $ra = $sa->query('BEGIN; '
		  . ingest_sql(undef,
			event(1, "${d0}T00:00:00Z"), event(6, "${dm}T12:00:00Z"),
			event(2, "${d0}T12:00:00Z"), event(3, "${d0}T23:59:59.999Z"))
		  . ';');
	is($sa->{stderr}, '', '3a: no error reaches A');
	is(receipt_counts($ra), '4|4|0|0', '3a: A stored four events over days D-1 and D');

	# B: day D+1 first, then day D, and id 3 again
	$sb->query_until(qr/b-started/, "\\echo b-started\n"
		  . ingest_sql(undef,
			event(4, "${dp}T00:00:00Z"), event(5, "${d0}T06:00:00Z"), event(3, "${d0}T07:00:00Z"))
		  . ";\n\\echo b-done\n");
	ok(PipelineNode::wait_blocked($node, 'newday', $bpid, holder => $apid),
		'3a: B waits for A, which holds day D uncommitted')
	  or die "backend $bpid never blocked behind $apid";

	$sa->query('COMMIT');
	my $rb = b_result($sb);
	is($sb->{stderr}, '', '3a: no error reaches B once A committed day D');
	is(receipt_counts($rb), '3|2|1|0', '3a: B: received 3, accepted 2, id 3 a duplicate of A');
	$sa->quit;
	$sb->quit;

	is(partitions(), join(',', sort map { $day{$_}{part} } (-1, 0, 1)),
		'3a: one partition per day, each created once');
	is($node->safe_psql('newday', q{
			SELECT string_agg(order_id || ':' || tableoid::regclass::text, ',' ORDER BY order_id)
			  FROM pipeline.orders_raw}),
		join(',',
			map { "$_->[0]:pipeline.$day{$_->[1]}{part}" }
			  ([1, 0], [2, 0], [3, 0], [4, 1], [5, 0], [6, -1])),
		'3a: every row landed in the partition of its day, the edges included');
}

# --- 3b. crossing days: A has attached day X and goes on to day Y while B
# is creating day Y.  A's lock state is that of one batch spanning X and Y
# between its two days; A's two statements make the interleaving exact.
{
	my ($sa, $apid) = PipelineNode::session($node, 'newday', on_error_stop => 0);
	my ($sb, $bpid) = PipelineNode::session($node, 'newday', on_error_stop => 0);
	my ($dx, $dy) = map { $day{$_}{iso} } (-10, -9);

	my $ra = $sa->query('BEGIN; ' . ingest_sql(undef, event(10, "${dx}T08:00:00Z")) . ';');
	is(receipt_counts($ra), '1|1|0|0', '3b: A created day X');

	$sb->query_until(qr/b-started/, "\\echo b-started\n"
		  . ingest_sql(undef, event(11, "${dy}T08:00:00Z")) . ";\n\\echo b-done\n");
	ok(PipelineNode::wait_blocked($node, 'newday', $bpid, holder => $apid), '3b: B, creating day Y, waits for A')
	  or die "backend $bpid never blocked behind $apid";

	$ra = $sa->query(ingest_sql(undef, event(12, "${dy}T09:00:00Z")));
	is($sa->{stderr}, '', '3b: no error reaches A sending day Y');
	is(receipt_counts($ra), '1|1|0|0', '3b: A stored its day Y event');
	$sa->query('COMMIT');
	my $rb = b_result($sb);
	is($sb->{stderr}, '', '3b: no error reaches B');
	is(receipt_counts($rb), '1|1|0|0', '3b: B stored its day Y event');
	$sa->quit;
	$sb->quit;

	is($node->safe_psql('newday', q{
			SELECT string_agg(order_id || ':' || tableoid::regclass::text, ',' ORDER BY order_id)
			  FROM pipeline.orders_raw WHERE order_id BETWEEN 10 AND 12}),
		join(',', "10:pipeline.$day{-10}{part}", "11:pipeline.$day{-9}{part}",
			"12:pipeline.$day{-9}{part}"),
		'3b: all three events stored, each in the partition of its day');
}

# --- 3c. the same race without choreography: 8 clients, each batch spread
# over five days that have no partition yet
my $burst = q{
SELECT * FROM pipeline.ingest('orders',
  (SELECT jsonb_agg(jsonb_build_object(
            'order_id', 1000 + floor(random() * 2000)::int,
            'event_time', ((now() AT TIME ZONE 'UTC')::date - 25 + floor(random() * 5)::int
                           + random() * interval '1 day') AT TIME ZONE 'UTC',
            'user_id', 'u', 'amount', 1))
     FROM generate_series(1, 20)));
};
$node->pgbench("-n -c 8 -j 2 -t 5", 0,
	[ qr{number of transactions actually processed: 40/40}, qr{number of failed transactions: 0 } ],
	[ qr{^$} ],
	'3c: pgbench: 8 clients creating five new days at once',
	{ '010_newdays.sql' => $burst }, 'newday');
is($node->safe_psql('newday', q{
		SELECT count(*) FROM pg_inherits WHERE inhparent = 'pipeline.orders_raw'::regclass}),
	'10', '3c: five more partitions, one per day');
is($node->safe_psql('newday', q{
		SELECT count(*) FROM pipeline.orders_raw
		 WHERE tableoid::regclass::text
		       <> 'pipeline.orders_raw_' || to_char((event_time AT TIME ZONE 'UTC')::date, 'YYYYMMDD')}),
	'0', 'every row of the database is in the partition of its day');
is($node->safe_psql('newday', 'SELECT count(*) FROM pipeline.batches WHERE received = 20'),
	'40', '3c: 40 receipts of 20 events');
is($node->safe_psql('newday', q{
		SELECT (sum(accepted) - (SELECT count(*) FROM pipeline.orders_raw)) || '|'
		       || (sum(received) - sum(accepted) - sum(duplicates) - sum(rejected)) || '|' || sum(rejected)
		  FROM pipeline.batches}),
	'0|0|0', 'case 3 receipts: sum(accepted) = raw rows, conserved, none rejected');
my $log3 = PipelineNode::log_since($node, $log_start);
unlike($log3, qr/ERROR|deadlock detected/, 'no error in the server log for the new-day races');

###########################################################################
# 4. rows written while their BRIN ranges are being summarized: a raw
# partition's BRIN index on _pl_batch gets one entry per heap page (the
# page's first row of the chunk; every row of a chunk has its batch), so
# a range summarized between a batch's first page and its last must still
# find all of the batch's rows through the index.  Four clients ingest
# into one day while a fifth summarizes every range of that day's
# partition, the last, still-filling one too, over and over.
###########################################################################
setup_db('brinrace');
$node->safe_psql('brinrace', q{
	CREATE SEQUENCE public.next_id;
	SELECT accepted FROM pipeline.ingest('orders', jsonb_build_array(
	  jsonb_build_object('order_id', nextval('public.next_id'), 'event_time', '2026-03-10T00:00:00Z',
	                     'user_id', 'u', 'amount', 1)))});
my $fill = q{
SELECT * FROM pipeline.ingest('orders',
  (SELECT jsonb_agg(jsonb_build_object(
            'order_id', nextval('public.next_id'),
            'event_time', '2026-03-10T00:00:00Z'::timestamptz + random() * interval '1 day',
            'user_id', 'u' || i, 'amount', i % 100))
     FROM generate_series(1, 2000) AS i));
};
my $summarize = q{
SELECT count(brin_summarize_range(i.indexrelid, r))
  FROM pg_index AS i,
       generate_series(0, pg_relation_size(i.indrelid) / current_setting('block_size')::int, 128) AS r
 WHERE i.indrelid = 'pipeline.orders_raw_20260310'::regclass;
};
$log_start = -s $node->logfile;
$node->pgbench("-n -c 5 -j 2 -t 30", 0,
	[ qr{number of transactions actually processed: 150/150}, qr{number of failed transactions: 0 } ],
	[ qr{^$} ],
	'4: pgbench: ingest into one day while its ranges are summarized',
	{ '010_brin_fill.sql' => $fill, '010_brin_summarize.sql' => $summarize }, 'brinrace');
my ($batches4, $pages4) = split /\|/, $node->safe_psql('brinrace', q{
	SELECT (SELECT count(*) FROM pipeline.batches) || '|'
	       || pg_relation_size('pipeline.orders_raw_20260310') / current_setting('block_size')::int});
cmp_ok($batches4, '>', 20, "4: $batches4 batches ingested during the race");
cmp_ok($pages4, '>', 256, "4: the day's partition spans $pages4 pages, more than two ranges");
like($node->safe_psql('brinrace', q{
	SET enable_seqscan = off;
	EXPLAIN (COSTS OFF) SELECT count(*) FROM pipeline.orders_raw_20260310 WHERE _pl_batch = 1}),
	qr/Bitmap Index Scan on orders_raw_20260310__pl_batch_idx/, '4: the count below goes through the BRIN index');
is($node->safe_psql('brinrace', q{
	SET enable_seqscan = off;
	SELECT count(*) FROM pipeline.batches AS b
	 WHERE b.accepted <> (SELECT count(*) FROM pipeline.orders_raw_20260310 AS r
	                       WHERE r._pl_batch = b.batch_id)}),
	'0', "4: every batch's rows are found through the BRIN index");
is($node->safe_psql('brinrace', q{
	SELECT sum(accepted) = (SELECT count(*) FROM pipeline.orders_raw) FROM pipeline.batches}),
	't', '4: sum(accepted) equals the raw rows');
# (autovacuum on the growing partition may be cancelled by a summarizing
# that waits for it: that is autovacuum's own message, not an error of ours)
is(join("\n", grep { /ERROR|deadlock detected/ && !/canceling autovacuum task/ }
			 split /\n/, PipelineNode::log_since($node, $log_start)),
	'', '4: no error in the server log');

$node->stop;
done_testing();
