# ALTER EXTENSION pipeline UPDATE.  A database that installed 0.1.0 (the
# shipped script, kept as it was) and was upgraded equals a fresh install of
# the current version: every member object as pg_dump --binary-upgrade
# prints it, the list of members, and their privileges.  And a 0.1.0
# database in the middle of its life (two sources, metrics, frozen days,
# corrections, dead letters, checks, pg_cron jobs), upgraded, then run on,
# gives exactly the numbers of a database that ran the same steps on the
# current version from the start.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;
use PipelineCompare qw(same_text state_of same_state keys_of close_days_sql);

# the worker is off: folds happen when the test calls run_hot()
my $node = PipelineNode::new_node('upgrade', conf => "pipeline.enabled = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
my $current = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'pipeline'});
for my $db (qw(fresh upgraded filled reference))
{
	$node->safe_psql('postgres', qq{CREATE DATABASE $db});
	$node->safe_psql('postgres', qq{ALTER DATABASE $db SET TimeZone = 'UTC'; ALTER DATABASE $db SET DateStyle = ISO});
}

# --- helpers ------------------------------------------------------------------

# The schema-only dump of a database in binary-upgrade mode: unlike a plain
# dump, it prints every member of the extension one by one (with ALTER
# EXTENSION ... ADD).  Only what is necessarily different between two
# databases with the same objects is masked:
#  - \restrict / \unrestrict carry a random key, new at every pg_dump run;
#  - binary_upgrade_set_next_*() carry the OIDs and relfilenodes of types,
#    tables, indexes and toast tables (and, for attribute versions, WAL
#    positions): assigned when each object was created;
#  - relfrozenxid / relminmxid are transaction ids, and a toast table is
#    named by its OID in the UPDATE that sets them;
#  - binary_upgrade_create_empty_extension() lists the extension's
#    configuration tables by OID: the test compares them by name instead
#    (extconfig below);
#  - a column dropped by an upgrade script stays in the catalog as
#    "........pg.dropped.N........", and the binary-upgrade dump recreates
#    and drops it again; a fresh install never had it, and no statement
#    can see it;
#  - the GRANTs and REVOKEs of one object come out in the order of its ACL
#    array, which is the order in which the privileges were granted: they
#    are sorted (the ACLs themselves are also compared, sorted, below).
sub member_dump
{
	my ($db) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'pg_dump', '--schema-only', '--binary-upgrade', '-d', $node->connstr($db) ],
		'>', \$out, '2>', \$err)
	  or die "pg_dump of $db failed: $err";
	$out =~ s/^\\(?:un)?restrict \S+$/\\restrict <key>/mg;
	$out =~ s/(binary_upgrade_set_next_\w+)\('[^']*'/$1('<oid>'/g;
	$out =~ s/^SET relfrozenxid = '\d+', relminmxid = '\d+'$/SET relfrozenxid = '<xid>', relminmxid = '<mxid>'/mg;
	$out =~ s/^WHERE oid = '\d+';$/WHERE oid = '<toast oid>';/mg;
	$out =~ s/(binary_upgrade_create_empty_extension\('pipeline', 'pipeline', \w+, '[^']*', )'\{[\d,]*\}'/$1'<config oids>'/g;
	$out =~ s/^\n-- For binary upgrade, recreate dropped column\.\n(?:.*\n)*?ALTER TABLE ONLY .* DROP COLUMN "\.+pg\.dropped\.\d+\.+";\n//mg;
	$out =~ s/^\s+"\.+pg\.dropped\.\d+\.+" .*\n//mg;
	$out =~ s/,\n\);$/\n);/mg;
	my (@lines, @grants);
	for my $line (split /\n/, $out)
	{
		if ($line =~ /^(?:GRANT|REVOKE) /)
		{
			push @grants, $line;
			next;
		}
		push @lines, sort @grants;
		@grants = ();
		push @lines, $line;
	}
	push @lines, sort @grants;
	return join("\n", @lines) . "\n";
}

# the objects that belong to the extension, as PostgreSQL describes them
my $members_sql = q{
	SELECT string_agg(o, E'\n' ORDER BY o)
	  FROM (SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS o
	          FROM pg_catalog.pg_depend AS d JOIN pg_catalog.pg_extension AS e ON e.oid = d.refobjid
	         WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
	           AND e.extname = 'pipeline') AS m};

# privileges on the schemas and everything in them (tables, views,
# sequences, columns, functions, types), and the initial privileges that
# CREATE EXTENSION and ALTER EXTENSION recorded; each ACL's items sorted
my $acl_sql = q{
	WITH s AS (SELECT oid, nspname FROM pg_catalog.pg_namespace WHERE nspname IN ('pipeline', 'metrics')),
	acl(o, a) AS (
		SELECT 'schema ' || s.nspname, n.nspacl FROM pg_catalog.pg_namespace AS n JOIN s USING (oid)
		UNION ALL
		SELECT c.relkind::text || ' ' || c.oid::regclass, c.relacl
		  FROM pg_catalog.pg_class AS c JOIN s ON s.oid = c.relnamespace
		UNION ALL
		SELECT 'column ' || a.attrelid::regclass || '.' || a.attname, a.attacl
		  FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
		  JOIN s ON s.oid = c.relnamespace
		 WHERE a.attacl IS NOT NULL
		UNION ALL
		SELECT 'function ' || p.oid::regprocedure, p.proacl
		  FROM pg_catalog.pg_proc AS p JOIN s ON s.oid = p.pronamespace
		UNION ALL
		SELECT 'type ' || t.oid::regtype, t.typacl
		  FROM pg_catalog.pg_type AS t JOIN s ON s.oid = t.typnamespace
		UNION ALL
		SELECT 'initial ' || pg_catalog.pg_describe_object(i.classoid, i.objoid, i.objsubid), i.initprivs
		  FROM pg_catalog.pg_init_privs AS i WHERE i.privtype = 'e')
	SELECT string_agg(o || ' ' || COALESCE((SELECT string_agg(x::text, ',' ORDER BY x::text)
	                                          FROM unnest(a) AS x), '(default)'), E'\n' ORDER BY o)
	  FROM acl};

# --- 1. an upgraded install equals a fresh one --------------------------------

$node->safe_psql('fresh', 'CREATE EXTENSION pipeline CASCADE');
$node->safe_psql('upgraded', q{CREATE EXTENSION pipeline VERSION '0.1.0' CASCADE});
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'pipeline'}),
	'0.1.0', 'database upgraded starts at 0.1.0');
$node->safe_psql('upgraded', 'ALTER EXTENSION pipeline UPDATE');
is($current, '0.2.0', 'the current version is 0.2.0');
for my $db (qw(fresh upgraded))
{
	is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'pipeline'}),
		$current, "database $db is at $current");
}

my %dump = map { $_ => member_dump($_) } qw(fresh upgraded);
like($dump{fresh}, qr/^ALTER EXTENSION pipeline ADD FUNCTION pipeline\.ingest\(/m,
	'the binary-upgrade dump lists the members of the extension one by one');
same_text('fresh', $dump{fresh}, 'upgraded', $dump{upgraded},
	'the dump of every member object is the same, fresh and upgraded');

my %members = map { $_ => $node->safe_psql($_, $members_sql) } qw(fresh upgraded);
cmp_ok(scalar(split /\n/, $members{fresh}), '>', 100, 'the extension has its members');
same_text('fresh', $members{fresh}, 'upgraded', $members{upgraded}, 'the same objects are members of the extension');
# (as a set: an upgrade script registers its new tables after the old ones)
my $config_sql = q{SELECT string_agg(c::regclass || ' ' || quote_literal(w), ', ' ORDER BY c::regclass::text)
                     FROM pg_extension AS e, unnest(e.extconfig, e.extcondition) AS x(c, w)
                    WHERE e.extname = 'pipeline'};
is($node->safe_psql('upgraded', $config_sql), $node->safe_psql('fresh', $config_sql),
	'the same configuration tables, dumped with the same conditions');
same_text('fresh', $node->safe_psql('fresh', $acl_sql), 'upgraded', $node->safe_psql('upgraded', $acl_sql),
	'the same privileges on the schemas and every object in them, and the same initial privileges');

# --- 2. a 0.1.0 database in use, upgraded, against the current version -------

my @both = qw(filled reference);

# runs $sql in both databases, which must answer the same; returns the answer
sub step
{
	my ($test, $sql) = @_;
	my %out = map { $_ => $node->safe_psql($_, $sql) } @both;
	same_text('reference', $out{reference}, 'filled', $out{filled}, $test);
	return $out{reference};
}

# orders $from..$to on the New York day $day (the id decides the time of
# day, the user, platform, amount and currency; every 25th carries a field
# the contract does not name, every 11th no platform)
sub orders
{
	my ($from, $to, $day) = @_;
	return qq{(SELECT jsonb_agg(jsonb_build_object(
			'order_id', i,
			'event_time', (date '$day' + (i * 37 % 1440) * interval '1 minute') AT TIME ZONE 'America/New_York',
			'user_id', 'u' || (i % 17),
			'platform', CASE WHEN i % 11 <> 0 THEN (ARRAY['web', 'ios', 'android'])[1 + i % 3] END,
			'amount', (i % 40) + 0.5,
			'currency', CASE WHEN i % 9 = 0 THEN 'USD' ELSE 'EUR' END)
		|| CASE WHEN i % 25 = 0 THEN jsonb_build_object('coupon', 'C' || i) ELSE '{}' END ORDER BY i)
	  FROM generate_series($from, $to) AS i)};
}

# three orders that are dead letters: a failed CHECK, an unreadable event
# time, a missing NOT NULL field
sub bad_orders
{
	my ($id) = @_;
	return qq{'[{"order_id": $id, "event_time": "2026-01-10T15:00:00Z", "user_id": "neg", "amount": -1},
	            {"order_id": @{[$id + 1]}, "event_time": "the day before", "user_id": "x"},
	            {"order_id": @{[$id + 2]}, "event_time": "2026-01-10T16:00:00Z", "amount": 3}]'::jsonb};
}

# clicks $from..$to on the UTC day $day
sub clicks
{
	my ($from, $to, $day) = @_;
	return qq{(SELECT jsonb_agg(jsonb_build_object(
			'id', i, 'event_time', timestamptz '$day 00:00+00' + (i * 53 % 1440) * interval '1 minute',
			'user_id', 'v' || (i % 23), 'page', (ARRAY['/', '/shop', '/cart'])[1 + i % 3]) ORDER BY i)
	  FROM generate_series($from, $to) AS i)};
}

# a receipt, without the batch id (the same steps give the same ids, but
# the comparisons go by batch key)
sub ingest
{
	my ($source, $key, $events) = @_;
	return qq{SELECT concat_ws(' ', '$key:', received, accepted, duplicates, rejected)
	            FROM pipeline.ingest('$source', $events, batch_key => '$key');\n};
}

sub run_checks
{
	my ($as_of) = @_;
	return qq{SELECT string_agg(concat_ws('|', check_name, status, observed, threshold, detail), E'\n'
	                            ORDER BY check_name)
	            FROM pipeline.run_checks('$as_of');\n};
}

# every row of a relation as jsonb text, sorted, without the columns in @drop
sub rows
{
	my ($rel, @drop) = @_;
	return rows_where($rel, '', @drop);
}

# the same, with $mask (a jsonb expression over the row t) laid over each row
sub rows_where
{
	my ($rel, $mask, @drop) = @_;
	my $drop = @drop ? " - '{" . join(',', @drop) . "}'::text[]" : '';
	$mask = " || $mask" if $mask ne '';
	return qq{SELECT string_agg(r, E'\n' ORDER BY r) FROM (SELECT (to_jsonb(t)$drop$mask)::text AS r FROM $rel AS t) AS s};
}

# restate_day() has no simulated clock: a restated day is frozen at the wall
# clock's now() (after every simulated clock of this test), which also goes
# into the day's digest (of its _daily rows)
my $restated = q{CASE WHEN t.frozen_at > '2026-02-01' THEN '{"frozen_at": "<restate_day now()>"}'::jsonb
                      ELSE '{}' END};
my $restated_digest = q{CASE WHEN t.frozen_at > '2026-02-01'
                             THEN '{"frozen_at": "<restate_day now()>", "digest": "<of the restated rows>"}'::jsonb
                             ELSE '{}' END};

# What the two databases must agree on: every serving view of both
# metrics, the receipts, dead letters, drift, catalogs, closures, checks
my %state_sql;
for my $m (qw(sales views))
{
	$state_sql{"metrics.${m}_live"} = rows("metrics.${m}_live");
	$state_sql{"metrics.${m}_daily"} = rows_where("metrics.${m}_daily", $restated);
	$state_sql{"metrics.${m}_corrections"} = qq{
		SELECT string_agg(r, E'\n' ORDER BY r)
		  FROM (SELECT ((to_jsonb(t) - '{created_at,batch_ids}'::text[])
		                || jsonb_build_object('batches', @{[keys_of('t.batch_ids')]}))::text AS r
		          FROM metrics.${m}_corrections AS t) AS s};
	$state_sql{"metrics.${m}_restated"} = rows("metrics.${m}_restated");
	$state_sql{"metrics.${m}_reconcile"} = rows_where("metrics.${m}_reconcile", $restated);
}
$state_sql{'pipeline.batches'} = q{
	SELECT string_agg(concat_ws(' ', source, batch_key, received, accepted, duplicates, rejected, contract_version),
	                  E'\n' ORDER BY batch_key)
	  FROM pipeline.batches};
$state_sql{'pipeline.dead_letters'} = qq{
	SELECT count(*) || E'\n' || string_agg(concat_ws(' | ', source, @{[keys_of('ARRAY[d.batch_id]')]}, payload,
	                                                 error_code, field, error, contract_version),
	                                       E'\n' ORDER BY source, payload)
	  FROM pipeline.dead_letters AS d};
$state_sql{'pipeline.contract_drift'} = q{
	SELECT string_agg(concat_ws(' ', source, field, events), E'\n' ORDER BY source, field) FROM pipeline.contract_drift};
$state_sql{'pipeline.sources'} = rows('pipeline.sources', 'created_at');
$state_sql{'pipeline.contracts'} = rows('pipeline.contracts', 'created_at');
$state_sql{'pipeline.metrics'} = rows('pipeline.metrics', 'created_at');
# with each metric's definition, generated fold and fold counters; the
# fold's merge of a distinct sketch and how it finds its batches' rows are
# the things the update changes in the catalog (distinct_union, then
# _distinct_absorb; the list of batches, then their span too: checked on
# their own)
my $merge_masked = q{jsonb_build_object('fold_sql',
	regexp_replace(regexp_replace(t.fold_sql, ' = pipeline\.(distinct_union|_distinct_absorb)\(h\.', ' = <distinct merge>(h.', 'g'),
	               'WHERE (r\._pl_batch OPERATOR\(pg_catalog\.>=\) \$5 AND r\._pl_batch OPERATOR\(pg_catalog\.<=\) \$6 AND '
	               '\(r\._pl_batch OPERATOR\(pg_catalog\.\+\) 0\) OPERATOR\(pg_catalog\.=\) ANY \(\$1\)'
	               '|r\._pl_batch OPERATOR\(pg_catalog\.=\) ANY \(\$1\)) ', 'WHERE <the batches> '))};
$state_sql{'pipeline.metric_catalog'} = rows_where('pipeline.metric_catalog', $merge_masked, 'created_at', 'fold_snapshot',
	'last_fold_at', 'last_fold_ms', 'last_cleanup_at', 'last_error_at');
$state_sql{'pipeline.close_runs'} = rows('pipeline.close_runs', 'ran_at');
$state_sql{'pipeline.day_closures'} =
  rows_where('pipeline.day_closures', $restated_digest, 'computed_at', 'frozen_snapshot', 'corrected_snapshot');
$state_sql{'pipeline.checks'} = rows('pipeline.checks', 'created_at');
$state_sql{'pipeline.check_results'} = rows('pipeline.check_results');
# (not new_digest: the digest of rows frozen at restate_day's now())
$state_sql{'pipeline.restatements'} = q{
	SELECT string_agg(concat_ws(' ', metric, day, version, reason, old_digest,
	                            jsonb_array_length(old_rows), jsonb_array_length(absorbed_corrections)),
	                  E'\n' ORDER BY metric, day, version)
	  FROM pipeline.restatements};
$state_sql{'raw events'} = q{
	SELECT (SELECT count(*) FROM pipeline.orders_raw) || ' orders, ' || (SELECT count(*) FROM pipeline.clicks_raw) || ' clicks'};

# this database's pg_cron jobs, as pg_cron has them, the database name
# replaced so that the two compare
sub jobs
{
	my ($db) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT string_agg(concat_ws('|', replace(jobname, '$db', '<db>'), schedule, command, username),
		                  E'\n' ORDER BY jobname)
		  FROM cron.job WHERE database = '$db'});
}

sub job_ids
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		qq{SELECT string_agg(jobid::text, ',' ORDER BY jobid) FROM cron.job WHERE database = '$db'});
}

# schedule() in both databases, then the jobs are paused at once: they
# would run close_days() and run_checks() on the real clock, in one database
# before the other.  pg_cron starts jobs at the top of a minute, so this
# keeps away from it.
sub schedule_paused
{
	my $second = (localtime)[0];
	sleep(62 - $second) if $second >= 55;
	$node->safe_psql($_, 'SELECT pipeline.schedule()') for @both;
	$node->safe_psql('postgres', q{
		SELECT cron.alter_job(jobid, active => false) FROM cron.job WHERE database IN ('filled', 'reference')});
	return;
}

# --- the same life, on 0.1.0 (filled) and on the current version (reference)

$node->safe_psql('filled', q{CREATE EXTENSION pipeline VERSION '0.1.0' CASCADE});
$node->safe_psql('reference', 'CREATE EXTENSION pipeline CASCADE');
is($node->safe_psql('filled', q{SELECT extversion FROM pg_extension WHERE extname = 'pipeline'}) . ' '
	 . $node->safe_psql('reference', q{SELECT extversion FROM pg_extension WHERE extname = 'pipeline'}),
	"0.1.0 $current", 'filled starts at 0.1.0, reference at the current version');

step('two sources, two metrics, three checks', q{
	SELECT pipeline.create_source('orders',
	    $$order_id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text NOT NULL, platform text,
	      amount numeric(12,2) CHECK (amount >= 0), currency text NOT NULL DEFAULT 'EUR'$$,
	    event_id => 'order_id', allowed_lateness => '2 hours', freeze_after => '24 hours',
	    day_timezone => 'America/New_York');
	SELECT pipeline.create_source('clicks', 'id bigint NOT NULL, event_time timestamptz NOT NULL, user_id text, page text',
	    event_id => 'id', allowed_lateness => '1 hour', freeze_after => '12 hours');
	SELECT pipeline.create_metric('sales', 'orders', '{platform}',
	    'count(*) AS orders, sum(amount) AS revenue, count(DISTINCT user_id) AS buyers,
	     min(amount) AS smallest, max(amount) AS largest, avg(amount) AS avg_amount',
	    bucket => '1 hour', filter => 'currency = ''EUR''', hot_retention => '100 years');
	SELECT pipeline.create_metric('views', 'clicks', '{page}', 'count(*) AS views, count(DISTINCT user_id) AS visitors',
	    bucket => '15 minutes', hot_retention => '100 years');
	SELECT pipeline.add_check('orders_fresh', 'freshness', 'orders', '{"max_lag": "6 hours", "basis": "watermark"}');
	SELECT pipeline.add_check('sales_complete', 'completeness', 'sales', '{"tolerance": 0, "days": 30}');
	SELECT pipeline.add_check('views_complete', 'completeness', 'views', '{"days": 30}', severity => 'fail');
	SELECT 'created'});

my $first = step('batches with re-sent ids and dead letters, one retried',
	ingest('orders', 'web-1', orders(1, 120, '2026-01-10') . ' || ' . bad_orders(9001))
	  . ingest('orders', 'web-2', orders(100, 220, '2026-01-11'))
	  . ingest('orders', 'web-2', orders(100, 220, '2026-01-11'))
	  . ingest('clicks', 'app-1', clicks(1, 150, '2026-01-10'))
	  . ingest('clicks', 'app-2', clicks(120, 300, '2026-01-11'))
	  . ingest('clicks', 'app-3',
		q[$${"id": 701, "event_time": "2026-01-11T10:00:00Z", "user_id": "v1", "page": "/"}
{not json
{"id": 702, "event_time": "2026-01-11T11:00:00Z", "user_id": "v99", "page": "/shop"}$$::text]));
is($first, "web-1: 123 120 0 3\nweb-2: 121 100 21 0\nweb-2: 121 100 21 0\napp-1: 150 150 0 0\n"
	. "app-2: 181 150 31 0\napp-3: 3 2 0 1",
	'... each receipt as expected: duplicates, dead letters, the retry answered with the original receipt');

step('a fold, days closed on a simulated clock, late events before and after a freeze',
	q{SELECT 'folded ' || pipeline.run_hot();}
	  . close_days_sql('2026-01-11 08:00+00')
	  . ingest('orders', 'web-3', orders(221, 300, '2026-01-12') . ' || ' . orders(301, 305, '2026-01-10'))
	  . close_days_sql('2026-01-12 06:00+00')
	  . ingest('orders', 'late-1', orders(400, 410, '2026-01-10') . ' || ' . bad_orders(9011))
	  . ingest('clicks', 'late-2', clicks(800, 820, '2026-01-10'))
	  . q{SELECT 'folded ' || pipeline.run_hot();}
	  . close_days_sql('2026-01-13 06:00+00')
	  . run_checks('2026-01-13 06:00+00'));

schedule_paused();
same_text('reference', jobs('reference'), 'filled', jobs('filled'), 'schedule() made the same pg_cron jobs');
like(jobs('reference'), qr/^pipeline:<db>:checks\|.*\npipeline:<db>:close_days\|.*\npipeline:<db>:maintenance\|/,
	'... the checks, close_days and maintenance jobs');
my $filled_jobs = job_ids('filled');

my $before = same_state($node, \%state_sql, 'reference', 'filled', 'before the update');
like($before->{'metrics.sales_corrections'}, qr/"batches": \["late-1"\]/,
	'... which has corrections of a frozen day, from the late batch');
like($before->{'pipeline.day_closures'}, qr/"status": "frozen"/, '... frozen days');
like($before->{'pipeline.dead_letters'}, qr/^7\n/, '... and seven dead letters');

# --- the update -----------------------------------------------------------------

my $filled_before = state_of($node, 'filled', \%state_sql);
my $merges = q{SELECT string_agg(metric || ' ' || (regexp_match(fold_sql, 'pipeline\.(distinct_union|_distinct_absorb)\(h\.'))[1],
                                 ', ' ORDER BY metric)
                 FROM pipeline.metric_catalog};
is($node->safe_psql('filled', $merges), 'sales distinct_union, views distinct_union',
	'before the update, the folds merge distinct sketches with distinct_union');
my $spans = q{SELECT string_agg(metric || ' ' || (strpos(fold_sql, 'r._pl_batch OPERATOR(pg_catalog.>=) $5 AND '
                                                        'r._pl_batch OPERATOR(pg_catalog.<=) $6') > 0),
                                ', ' ORDER BY metric)
                FROM pipeline.metric_catalog};
is($node->safe_psql('filled', $spans), 'sales false, views false',
	'... and find their batches\' rows by the list alone');
$node->safe_psql('filled', 'ALTER EXTENSION pipeline UPDATE');
is($node->safe_psql('filled', q{SELECT extversion FROM pg_extension WHERE extname = 'pipeline'}),
	$current, "filled is at $current after ALTER EXTENSION pipeline UPDATE");
my $filled_after = state_of($node, 'filled', \%state_sql);
my $folds = q{SELECT string_agg(metric || ': ' || fold_sql, E'\n' ORDER BY metric) FROM pipeline.metric_catalog};
same_text('reference', $node->safe_psql('reference', $folds), 'filled', $node->safe_psql('filled', $folds),
	'after the update, the folds are the ones a fresh install makes');
is($node->safe_psql('filled', $merges), 'sales _distinct_absorb, views _distinct_absorb',
	'... which merge distinct sketches with _distinct_absorb');
is($node->safe_psql('filled', $spans), 'sales true, views true',
	'... and find their batches\' rows by the span of their ids');
same_text('before', $filled_before->{$_}, 'after', $filled_after->{$_}, "the update changed nothing in $_")
  for sort keys %state_sql;
same_text('reference', member_dump('reference'), 'filled', member_dump('filled'),
	'the whole schema (generated tables, partitions, views) is the same in filled and reference');

# --- and on, in both ------------------------------------------------------------

my $again = step('the same batch key again, re-sent ids, new and late events, a fold, days closed, checks',
	ingest('orders', 'web-2', orders(100, 220, '2026-01-11'))
	  . q{SELECT count(*) || ' receipt, batch id kept: '
	             || bool_and(batch_id = (SELECT r.batch_id FROM pipeline.ingest('orders', '[]'::jsonb,
	                                                                             batch_key => 'web-2') AS r))
	        FROM pipeline.batches WHERE batch_key = 'web-2';}
	  . ingest('orders', 'web-4', orders(1, 10, '2026-01-10') . ' || ' . orders(500, 560, '2026-01-12')
		  . ' || ' . bad_orders(9021))
	  . ingest('orders', 'late-3', orders(600, 620, '2026-01-11') . ' || ' . orders(621, 630, '2026-01-10'))
	  . ingest('clicks', 'late-4', clicks(900, 930, '2026-01-10') . ' || ' . clicks(931, 960, '2026-01-12'))
	  . q{SELECT 'folded ' || pipeline.run_hot();}
	  . close_days_sql('2026-01-14 12:00+00')
	  . close_days_sql('2026-01-14 12:00+00')
	  . run_checks('2026-01-14 12:00+00'));
like($again, qr/^web-2: 121 100 21 0\n1 receipt, batch id kept: true\n/,
	'... a retry of a batch sent before the update gets its original receipt and batch id, and no second receipt');
step('a restatement, every frozen day verified, late orders for the restated day, checks a year later',
	q{SELECT pipeline.restate_day('sales', '2026-01-10', 'late orders absorbed');
	  SELECT string_agg(metric || ' ' || day || ' ' || pipeline.verify_day(metric, day), ', ' ORDER BY metric, day)
	    FROM pipeline.day_closures WHERE status = 'frozen';}
	  . ingest('orders', 'late-5', orders(700, 705, '2026-01-10'))
	  . close_days_sql('2026-01-15 00:00+00')
	  . run_checks('2027-01-01 00:00+00'));

schedule_paused();
is(job_ids('filled'), $filled_jobs, 'schedule() after the update updates the same pg_cron jobs in place');
same_text('reference', jobs('reference'), 'filled', jobs('filled'), '... and they are the jobs of the current version');

my $after = same_state($node, \%state_sql, 'reference', 'filled', 'after the update and more of the same');
like($after->{'metrics.sales_corrections'}, qr/"batches": \["late-3"\]/,
	'... which has corrections from a batch after the update');
like($after->{'pipeline.restatements'}, qr/^sales 2026-01-10 2 late orders absorbed \w+ 4 8$/, '... and a restatement');
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job_run_details}), '0',
	'no pg_cron job ran meanwhile');

$node->stop;
done_testing();
