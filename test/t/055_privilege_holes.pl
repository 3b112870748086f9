# Privilege holes: a hostile non-superuser role against another team's data
# and against the superuser that runs the jobs.
#
# The roles: "victim" owns source vsrc (event_id, event_time, email, ssn,
# amount, user_id) and metric vm on it; "attacker" has USAGE, CREATE on
# schemas pipeline and metrics (what creating sources and metrics takes)
# and, where a case says so, membership in pipeline_writer; a superuser runs
# close_days(), run_hot() and run_checks().  Each case asserts the safe
# outcome: nothing of the victim's leaks to the attacker, the attacker never
# becomes superuser (and code it plants never runs as a superuser: the
# marker table records current_user, session_user and rolsuper of every
# run of attacker code), and the victim's days still freeze.  Days freeze on
# a fixed clock: events of 2026-01-10, close_days('2026-01-13 00:00+00').
#
#  R. the recipe: a hot table of its own and _register_metric/_create_daily
#     on the victim's source, then reading the daily layer a superuser
#     computed; create_metric on a source it cannot read;
#  1. every internal helper that writes catalogs or runs as the extension
#     owner, called directly; every SECURITY DEFINER function pins
#     search_path;
#  2. pipeline.x_daily / x_corrections created first, with a trigger, a CHECK
#     and an expression index running attacker code, then every path to get
#     close_days and restate_day to write them;
#  3. run_checks: checks whose evaluation runs attacker code (a referential
#     check on a view calling a function, a domain column under an
#     accepted_values check, row-level security on its raw table) that try to
#     switch back to the superuser running them;
#  4. settings leak out of a role switch: search_path and temp tables set by
#     a contract CHECK during ingest, and by a trigger on a hot table during
#     run_hot();
#  5. the load table: a trigger or column DEFAULT planted on <source>_load
#     runs as the writer who COPYs into it;
#  6. holding another team's days: blocking checks on the victim's metric and
#     source, direct writes to pipeline.checks and pipeline.check_results;
#  7. poisoning the shared jobs: a filter that raises at close time, a
#     dropped _daily view, a rewritten source catalog row, a stranger
#     function in schema pipeline: the victim's metric still folds and
#     freezes;
#  8. leaks to roles without rights: metric definitions and errors in the
#     catalogs and pipeline.status, NOTIFY payloads, other writers' dead
#     letters;
#  9. a measure or filter casting to a temporary (or the attacker's) domain
#     whose CHECK runs attacker code in close_days and restate_day;
# 10. a BRIN expression index on the attacker's raw partition that raises
#     when the worker summarizes it: the victim's metric still folds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;
use Time::HiRes qw(usleep);

my $node = PipelineNode::new_node('holes', conf => 'pipeline.enabled = off');
$node->start;

my $denied = qr/42501|permission denied|must be owner|insufficient.privilege/i;
my $secret = qr/victim\.example|900-00-000/;
my $clock = '2026-01-13 00:00+00';

$node->safe_psql('postgres', q{
	CREATE ROLE pipeline_reader NOLOGIN;
	CREATE ROLE pipeline_writer NOLOGIN;
	CREATE ROLE victim LOGIN;
	CREATE ROLE attacker LOGIN;
	CREATE ROLE writer LOGIN IN ROLE pipeline_writer;
	CREATE ROLE writer2 LOGIN IN ROLE pipeline_writer;
	CREATE ROLE snoop LOGIN IN ROLE pipeline_reader;});

# ---------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------

# runs $sql as $role; returns (exit code, stdout, stderr); errors carry
# their SQLSTATE
sub as_role
{
	my ($db, $role, $sql, %opts) = @_;
	my ($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role ],
		on_error_stop => exists $opts{on_error_stop} ? $opts{on_error_stop} : 1);
	return ($ret, $out // '', $err // '');
}

sub su { return as_role($_[0], $node->safe_psql('postgres', 'SELECT current_user'), $_[1], %{ $_[2] // {} }); }

# the attack statement must fail, with a privilege error
sub refused
{
	my ($db, $role, $sql, $label, $re) = @_;
	my ($ret, $out, $err) = as_role($db, $role, $sql);
	ok($ret != 0 && $err =~ ($re // $denied), $label)
	  or diag("exit $ret; stderr: $err");
	return $ret != 0;
}

# an attack step the extension may refuse: its outcome is noted and
# the case's assertions decide
sub attempt
{
	my ($db, $role, $sql) = @_;
	my ($ret, $out, $err) = as_role($db, $role, $sql, on_error_stop => 0);
	note("refused ($role): $err") if $err =~ /ERROR/;
	return $ret == 0 && $err !~ /ERROR/;
}

# JSON array of events for ingest
sub events
{
	my ($first, $n, $day, %f) = @_;
	my @ev;
	for my $i ($first .. $first + $n - 1)
	{
		my $t = $f{time} // sprintf('%sT%02d:%02d:00Z', $day, 8 + int($i / 60) % 12, $i % 60);
		my $extra = $f{extra} ? ', ' . $f{extra}->($i) : '';
		push @ev, qq{{"event_id": $i, "event_time": "$t"$extra}};
	}
	return '[' . join(', ', @ev) . ']';
}

sub victim_events
{
	my ($first, $n, $day) = @_;
	return events($first, $n, $day, extra => sub {
		my $i = shift;
		return qq{"email": "v$i\@victim.example", "ssn": "900-00-000$i", "amount": 10, "user_id": $i};
	});
}

# a fresh database: the extension, the grants, the marker, the victim's
# source and metric with 5 events on 2026-01-10, and the attacker's marker
# function
my $su_name;
sub new_db
{
	my ($db) = @_;
	$su_name //= $node->safe_psql('postgres', 'SELECT current_user');
	$node->safe_psql('postgres', "ALTER ROLE attacker NOSUPERUSER; CREATE DATABASE $db");
	$node->safe_psql($db, q{
		CREATE EXTENSION pipeline;
		GRANT USAGE, CREATE ON SCHEMA pipeline, metrics TO victim, attacker;
		CREATE SCHEMA attacker_schema AUTHORIZATION attacker;
		CREATE TABLE public.marker (who name, sess name, su boolean, what text);
		GRANT INSERT ON public.marker TO PUBLIC;});
	$node->safe_psql($db, q{
		SELECT pipeline.create_source('vsrc',
		    'event_id bigint NOT NULL, event_time timestamptz NOT NULL, email text, ssn text, amount numeric, user_id bigint',
		    allowed_lateness => '1 hour', freeze_after => '1 day');
		SELECT pipeline.create_metric('vm', 'vsrc', '{}', 'count(*) AS n, sum(amount) AS total',
		    hot_retention => '1000 days');}, extra_params => [ '-U', 'victim' ]);
	$node->safe_psql($db, "SELECT accepted FROM pipeline.ingest('vsrc', '" . victim_events(1, 5, '2026-01-10') . "')");
	# attacker code: records who runs it, and escalates when that is a superuser
	$node->safe_psql($db, q{
		GRANT USAGE ON SCHEMA attacker_schema TO PUBLIC;
		CREATE FUNCTION attacker_schema.mark(what text) RETURNS boolean
		    LANGUAGE plpgsql AS $$
		DECLARE
		    s boolean;
		BEGIN
		    SELECT r.rolsuper INTO s FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user;
		    INSERT INTO public.marker VALUES (current_user, session_user, s, what);
		    IF s THEN
		        EXECUTE 'ALTER ROLE attacker SUPERUSER';
		    END IF;
		    RETURN true;
		END $$;}, extra_params => [ '-U', 'attacker' ]);
	return $db;
}

# a source of the attacker's, with $n events of 2026-01-10 (ingested by a superuser)
sub attacker_source
{
	my ($db, $src, %o) = @_;
	my $cols = $o{columns} // 'event_id bigint NOT NULL, event_time timestamptz NOT NULL, amount numeric, user_id bigint';
	my $fl = $o{freeze_after} // '1 day';
	attempt($db, 'attacker', qq{
		SELECT pipeline.create_source('$src', \$c\$$cols\$c\$, allowed_lateness => '1 hour', freeze_after => '$fl');})
	  or return;
	return if defined $o{events} && $o{events} == 0;
	my $json = events(1, $o{events} // 3, '2026-01-10',
		extra => $o{extra} // sub { return qq{"amount": 5, "user_id": $_[0]} });
	attempt($db, $su_name, "SELECT accepted FROM pipeline.ingest('$src', '$json')");
}

# nothing escalated: the attacker is no superuser, attacker code never ran
# as one (and, with $only_attacker, never as anyone but the attacker)
sub no_escalation
{
	my ($db, $case, $only_attacker) = @_;
	is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'}), 'f',
		"$case: the attacker is not a superuser afterwards");
	is($node->safe_psql($db, q{
		SELECT coalesce(string_agg(DISTINCT who || '/' || sess || ': ' || what, '; '), '') FROM public.marker WHERE su}),
		'', "$case: attacker code never ran as a superuser");
	if ($only_attacker)
	{
		is($node->safe_psql($db, q{
			SELECT coalesce(string_agg(DISTINCT who || ': ' || what, '; '), '') FROM public.marker WHERE who <> 'attacker'}),
			'', "$case: attacker code only ever ran as the attacker");
	}
	$node->safe_psql('postgres', 'ALTER ROLE attacker NOSUPERUSER');
}

# the victim's day of 2026-01-10 freezes, with the right numbers
sub victim_freezes
{
	my ($db, $case, $n) = @_;
	my ($ret, $out, $err) = su($db, "SELECT count(*) FROM pipeline.close_days('$clock')");
	is($node->safe_psql($db, q{SELECT coalesce((SELECT status || '|' || n FROM metrics.vm_daily WHERE day = '2026-01-10'), 'none')}),
		'frozen|' . ($n // 5), "$case: the victim's day still freezes, with its events counted")
	  or diag("close_days: exit $ret; $err");
}

# ---------------------------------------------------------------------
# R. the recipe
# ---------------------------------------------------------------------
{
	my $db = new_db('c_recipe');
	refused($db, 'attacker', q{
		BEGIN;
		CREATE TABLE pipeline.st_hot (bucket timestamptz, email text, ssn text, n bigint);
		SELECT pipeline._register_metric('st', 'vsrc', '{email,ssn}', 'count(*) AS n', '1 minute', NULL, '7 days');
		SELECT pipeline._create_daily('st');
		COMMIT;}, 'R: _register_metric/_create_daily on a source the attacker cannot read are refused');
	su($db, "SELECT count(*) FROM pipeline.close_days('$clock')");
	is($node->safe_psql($db, q{SELECT count(*) FROM pipeline.metrics WHERE metric = 'st'}), '0',
		'R: no metric st in the catalog');
	my $seen = '';
	for my $q ('SELECT * FROM metrics.st_daily', 'SELECT * FROM pipeline.st_daily',
		'SELECT * FROM metrics.st_restated', 'SELECT * FROM metrics.st_reconcile',
		'SELECT * FROM pipeline.vsrc_raw', q{SELECT pipeline.explain('st', '2026-01-10')},
		q{SELECT pipeline.explain('vm', '2026-01-10')}, 'SELECT * FROM metrics.vm_daily')
	{
		my ($ret, $out, $err) = as_role($db, 'attacker', $q);
		$seen .= "$q => $out\n";
	}
	unlike($seen, $secret, 'R: the attacker reads no victim email or SSN by any path');
	my ($ret, $out, $err) = as_role($db, 'attacker', q{SELECT pipeline.create_metric('st2', 'vsrc', '{email,ssn}')});
	isnt($ret, 0, 'R: create_metric on a source the attacker cannot read is refused');
	no_escalation($db, 'R');
}

# ---------------------------------------------------------------------
# 1. the internal helpers, called directly
# ---------------------------------------------------------------------
{
	my $db = new_db('c_helpers');
	$node->safe_psql('postgres', 'GRANT pipeline_writer TO attacker');
	# a dead letter of the victim's, and a frozen day
	$node->safe_psql($db, q{SELECT rejected FROM pipeline.ingest('vsrc', '[{"event_id": "x", "event_time": "2026-01-10T09:00:00Z"}]')});
	su($db, "SELECT count(*) FROM pipeline.close_days('$clock')");
	my ($letter, $batch) = split /\|/, $node->safe_psql($db, 'SELECT id, batch_id FROM pipeline.dead_letters');
	my $state = q{
		SELECT md5(string_agg(t, '|' ORDER BY t)) FROM (
		    SELECT 's' || x::text FROM pipeline.source_catalog AS x
		    UNION ALL SELECT 'm' || (x.metric, x.source, x.definition, x.fold_sql, x.hot_table, x.owner)::text FROM pipeline.metric_catalog AS x
		    UNION ALL SELECT 'd' || x::text FROM pipeline.day_closures AS x
		    UNION ALL SELECT 'l' || (x.id, x.replayed_at, x.replay_batch_id, x.replay_attempts, x.error)::text FROM pipeline.dead_letters AS x
		    UNION ALL SELECT 'r' || x::text FROM pipeline.restatements AS x
		    UNION ALL SELECT 'e' || x::text FROM pipeline.day_releases AS x
		    UNION ALL SELECT 'c' || x::text FROM pipeline.contracts AS x
		    UNION ALL SELECT 'b' || (x.batch_id, x.source, x.batch_key)::text FROM pipeline.batch_log AS x
		    UNION ALL SELECT 'o' || c.oid::regclass::text FROM pg_class AS c
		               WHERE c.relnamespace IN ('pipeline'::regnamespace, 'metrics'::regnamespace)) AS u(t)};
	my $before = $node->safe_psql($db, $state);
	my @calls = (
		[ '_register_source', q{
			BEGIN;
			CREATE TABLE pipeline.evil_raw (event_id bigint NOT NULL, event_time timestamptz NOT NULL);
			CREATE TABLE pipeline.evil_ids (event_id bigint PRIMARY KEY);
			SELECT pipeline._register_source('evil', 'event_id bigint NOT NULL, event_time timestamptz NOT NULL',
			                                 'event_id', 'event_time', '1 hour', '1 day', 'UTC');
			COMMIT;} ],
		[ '_unregister_source', q{SELECT pipeline._unregister_source('vsrc')} ],
		[ '_register_metric', q{
			BEGIN;
			CREATE TABLE pipeline.ev2_hot (bucket timestamptz, n bigint);
			SELECT pipeline._register_metric('ev2', 'vsrc', '{}', 'count(*) AS n', '1 minute', NULL, '7 days');
			COMMIT;} ],
		[ '_unregister_metric', q{SELECT pipeline._unregister_metric('vm')} ],
		[ '_create_daily', q{SELECT pipeline._create_daily('vm')} ],
		[ '_drop_daily', q{SELECT pipeline._drop_daily('vm')} ],
		[ '_settle_dead_letter', "SELECT pipeline._settle_dead_letter($letter, $batch)" ],
		[ '_replay_one', "SELECT pipeline._replay_one($letter)" ],
		[ '_create_load_table', q{SELECT pipeline._create_load_table('vsrc')} ],
		[ '_close_days', q{SELECT * FROM pipeline._close_days('2026-01-14 00:00+00')} ],
		[ '_restate_day', q{SELECT pipeline._restate_day('vm', '2026-01-10', 'mine now', 'victim')} ],
		[ '_release_day', q{SELECT pipeline._release_day('vm', '2026-01-10', 'mine now', 'victim')} ],
		[ '_record_freeze', q{SELECT pipeline._record_freeze('vm', '2026-01-10', 7, now(), pg_current_snapshot(), 0)} ]);
	for my $c (@calls)
	{
		refused($db, 'attacker', $c->[1], "1: $c->[0] called directly by the attacker is refused (privilege error)");
	}
	is($node->safe_psql($db, $state), $before, '1: the catalogs are unchanged after the direct calls');
	is($node->safe_psql($db, q{
		SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '') FROM pg_proc AS p
		 WHERE p.pronamespace = 'pipeline'::regnamespace AND p.prosecdef
		   AND NOT coalesce(array_to_string(p.proconfig, ',') ~ 'search_path=', false)}), '',
		'1: every SECURITY DEFINER function of schema pipeline pins search_path');
	# what PUBLIC may execute: no SECURITY DEFINER function at all, none of
	# the halves that run as another role, none of the extension owner's
	# steps of close_days and restate_day
	my $public_exec = q{
		SELECT coalesce(string_agg(p.oid::regprocedure::text, ', ' ORDER BY 1), 'none') FROM pg_proc AS p
		 WHERE p.pronamespace = 'pipeline'::regnamespace AND %s
		   AND EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
		                WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')};
	is($node->safe_psql($db, sprintf($public_exec, 'p.prosecdef')), 'none',
		'1: PUBLIC may execute no SECURITY DEFINER function of schema pipeline');
	is($node->safe_psql($db, sprintf($public_exec, q{(p.proname ~ '_as_(source_)?owner$'
		OR p.proname IN ('_close_days', '_compute_day', '_correct_day', '_index_day_values', '_record_freeze',
		                 '_start_index_builder', '_value_index_next', '_value_index_failed', '_summarize_shards',
		                 '_restate_day', '_release_day', '_create_daily', '_drop_daily', '_create_reconcile_view',
		                 '_settle_dead_letter', '_rebase_after_restore', '_refuse_strangers'))})), 'none',
		'1: PUBLIC may execute none of the steps that run as the extension owner or another role');
	diag('internal functions PUBLIC may execute (entry points that check their real caller, SQL builders and checks that run with the caller\'s own rights): '
		. $node->safe_psql($db, sprintf($public_exec, q{p.proname ~ '^_'})));
	$node->safe_psql('postgres', 'REVOKE pipeline_writer FROM attacker');
	no_escalation($db, '1');
}

# ---------------------------------------------------------------------
# 2. the daily tables, created first by the attacker
# ---------------------------------------------------------------------
{
	my $db = new_db('c_precreate');
	attacker_source($db, 'asrc');
	$node->safe_psql($db, q{
		CREATE FUNCTION attacker_schema.trg() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
		    PERFORM attacker_schema.mark('trigger on ' || TG_TABLE_NAME);
		    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
		END $$;
		CREATE FUNCTION attacker_schema.imm(x bigint) RETURNS bigint IMMUTABLE LANGUAGE sql
		    AS $$ SELECT CASE WHEN attacker_schema.mark('index expression') THEN x END $$;}, extra_params => [ '-U', 'attacker' ]);
	attempt($db, 'attacker', q{
		CREATE TABLE pipeline.x_daily (day date NOT NULL, n bigint NOT NULL, status text NOT NULL,
		                               computed_at timestamptz NOT NULL, frozen_at timestamptz,
		                               CHECK (attacker_schema.mark('check constraint')));
		CREATE INDEX ON pipeline.x_daily ((attacker_schema.imm(n)));
		CREATE TRIGGER a_trg BEFORE INSERT OR UPDATE OR DELETE ON pipeline.x_daily
		    FOR EACH ROW EXECUTE FUNCTION attacker_schema.trg();
		CREATE TRIGGER a_trg_s AFTER INSERT OR UPDATE OR DELETE ON pipeline.x_daily
		    FOR EACH STATEMENT EXECUTE FUNCTION attacker_schema.trg();
		CREATE TABLE pipeline.x_corrections (correction_id bigint GENERATED ALWAYS AS IDENTITY, day date,
		                                     n bigint, late_events bigint, batch_ids bigint[],
		                                     created_at timestamptz DEFAULT now());
		CREATE TRIGGER a_trg BEFORE INSERT OR DELETE ON pipeline.x_corrections
		    FOR EACH ROW EXECUTE FUNCTION attacker_schema.trg();
		CREATE VIEW metrics.x_daily AS SELECT day, n, status, frozen_at FROM pipeline.x_daily;
		GRANT ALL ON pipeline.x_daily, pipeline.x_corrections TO PUBLIC;});
	$node->safe_psql($db, 'TRUNCATE public.marker');
	my ($ret1) = as_role($db, 'attacker', q{SELECT pipeline.create_metric('x', 'asrc', '{}', 'count(*) AS n')});
	isnt($ret1, 0, '2: create_metric refuses a metric whose daily table the attacker made');
	my ($ret2, $out2, $err2) = as_role($db, 'attacker', q{
		BEGIN;
		CREATE TABLE pipeline.x_hot (bucket timestamptz NOT NULL, n bigint, CONSTRAINT x_hot_key UNIQUE (bucket));
		SELECT pipeline._register_metric('x', 'asrc', '{}', 'count(*) AS n', '1 minute', NULL, '7 days');
		COMMIT;});
	isnt($ret2, 0, '2: _register_metric without _create_daily over the attacker\'s x_daily is refused');
	as_role($db, 'attacker', q{SELECT pipeline._create_daily('x')});
	su($db, "SELECT count(*) FROM pipeline.close_days('$clock')");
	su($db, "SELECT pipeline.restate_day('x', '2026-01-10', 'audit')");
	su($db, "SELECT count(*) FROM pipeline.close_days('2026-01-14 00:00+00')");
	no_escalation($db, '2');
	victim_freezes($db, '2');
}

# ---------------------------------------------------------------------
# 3. run_checks runs checks whose evaluation reaches attacker code
# ---------------------------------------------------------------------
{
	my $db = new_db('c_checks');
	$node->safe_psql($db, q{
		CREATE FUNCTION attacker_schema.grab(x anyelement) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN
		    BEGIN RESET ROLE; EXCEPTION WHEN OTHERS THEN NULL; END;
		    BEGIN SET ROLE NONE; EXCEPTION WHEN OTHERS THEN NULL; END;
		    BEGIN PERFORM pg_catalog.set_config('role', 'none', false); EXCEPTION WHEN OTHERS THEN NULL; END;
		    BEGIN PERFORM pg_catalog.set_config('role', session_user, false); EXCEPTION WHEN OTHERS THEN NULL; END;
		    PERFORM attacker_schema.mark('check code, input ' || x::text);
		    RETURN true;
		END $$;
		CREATE DOMAIN attacker_schema.tier AS text CHECK (attacker_schema.grab(VALUE));
		CREATE TABLE attacker_schema.users (id bigint);
		INSERT INTO attacker_schema.users VALUES (1), (2);
		CREATE VIEW attacker_schema.users_view AS SELECT u.id FROM attacker_schema.users AS u WHERE attacker_schema.grab(u.id);},
		extra_params => [ '-U', 'attacker' ]);
	attacker_source($db, 'asrc', columns => 'event_id bigint NOT NULL, event_time timestamptz NOT NULL, amount numeric, user_id bigint, tier attacker_schema.tier',
		extra => sub { return qq{"amount": 5, "user_id": $_[0], "tier": "gold"} });
	attempt($db, 'attacker', q{
		SELECT pipeline.add_check('a_ref', 'referential', 'asrc',
		                          '{"column": "user_id", "reference": "attacker_schema.users_view(id)"}');
		SELECT pipeline.add_check('a_vals', 'accepted_values', 'asrc', '{"column": "tier", "values": ["gold", "silver"]}');
		SELECT pipeline.add_check('a_rls', 'not_null', 'asrc', '{"column": "amount"}');
		ALTER TABLE pipeline.asrc_raw ENABLE ROW LEVEL SECURITY;
		ALTER TABLE pipeline.asrc_raw FORCE ROW LEVEL SECURITY;
		CREATE POLICY p ON pipeline.asrc_raw USING (attacker_schema.grab(event_id));});
	$node->safe_psql($db, q{SELECT pipeline.add_check('v_email', 'not_null', 'vsrc', '{"column": "email"}')},
		extra_params => [ '-U', 'victim' ]);
	$node->safe_psql($db, 'TRUNCATE public.marker');
	my ($ret, $out, $err) = su($db, q{SELECT check_name || ':' || status FROM pipeline.run_checks('2026-01-10 23:00+00') ORDER BY 1});
	note('attacker code reached by run_checks: ' . $node->safe_psql($db, 'SELECT count(*) FROM public.marker') . ' times');
	no_escalation($db, '3', 1);
	is($node->safe_psql($db, q{SELECT string_agg(status, ',') FROM pipeline.check_results WHERE check_name = 'v_email'}),
		'pass', '3: the victim\'s check still produced its result');
}

# ---------------------------------------------------------------------
# 4. settings leak out of role switches
# ---------------------------------------------------------------------
{
	my $db = new_db('c_settings');
	$node->safe_psql($db, q{
		CREATE FUNCTION attacker_schema.sneaky(x numeric) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN
		    PERFORM pg_catalog.set_config('search_path', 'attacker_schema, pg_catalog', false);
		    CREATE TEMP TABLE IF NOT EXISTS sneaky_tmp (x int);
		    RETURN true;
		END $$;
		CREATE FUNCTION attacker_schema.hot_trg() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
		    PERFORM attacker_schema.sneaky(0);
		    RETURN NEW;
		END $$;}, extra_params => [ '-U', 'attacker' ]);
	attacker_source($db, 'asrc',
		columns => 'event_id bigint NOT NULL, event_time timestamptz NOT NULL, amount numeric CHECK (attacker_schema.sneaky(amount)), user_id bigint',
		events => 0);
	my $after = q{SELECT current_setting('search_path') || '|' || (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())};
	my ($ret, $out, $err) = su($db, "SET search_path = public;\n"
		  . "SELECT accepted FROM pipeline.ingest('asrc', '" . events(1, 3, '2026-01-10', extra => sub { qq{"amount": 5} }) . "');\n$after",
		{ on_error_stop => 0 });
	is((split /\n/, $out)[-1], 'public|0', '4: after a superuser ingests, search_path and temp tables are as before')
	  or diag($err);
	($ret, $out, $err) = as_role($db, 'writer', "SET search_path = public;\n"
		  . "SELECT accepted FROM pipeline.ingest('asrc', '" . events(11, 3, '2026-01-10', extra => sub { qq{"amount": 5} }) . "');\n$after",
		on_error_stop => 0);
	is((split /\n/, $out)[-1], 'public|0', '4: after a writer ingests, search_path and temp tables are as before')
	  or diag($err);
	attempt($db, 'attacker', q{
		SELECT pipeline.create_metric('am', 'asrc', '{}', 'count(*) AS n', hot_retention => '1000 days');
		CREATE TRIGGER a_trg BEFORE INSERT OR UPDATE ON pipeline.am_hot FOR EACH ROW EXECUTE FUNCTION attacker_schema.hot_trg();});
	($ret, $out, $err) = su($db, "SET search_path = public;\nSELECT pipeline.run_hot();\n$after", { on_error_stop => 0 });
	is((split /\n/, $out)[-1], 'public|0', '4: after a superuser runs run_hot(), search_path and temp tables are as before')
	  or diag($err);
	no_escalation($db, '4');
}

# ---------------------------------------------------------------------
# 5. the load table
# ---------------------------------------------------------------------
{
	my $db = new_db('c_load');
	attacker_source($db, 'asrc', events => 0);
	$node->safe_psql($db, q{
		CREATE FUNCTION attacker_schema.load_trg() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
		    PERFORM attacker_schema.mark('load trigger');
		    RETURN NEW;
		END $$;
		CREATE FUNCTION attacker_schema.load_default() RETURNS text LANGUAGE plpgsql AS $$
		BEGIN
		    PERFORM attacker_schema.mark('load default');
		    RETURN '7';
		END $$;}, extra_params => [ '-U', 'attacker' ]);
	refused($db, 'attacker', q{
		CREATE TRIGGER a_first BEFORE INSERT ON pipeline.asrc_load FOR EACH ROW EXECUTE FUNCTION attacker_schema.load_trg();},
		'5: the source owner cannot add a trigger to its load table');
	refused($db, 'attacker', q{
		ALTER TABLE pipeline.asrc_load ALTER COLUMN user_id SET DEFAULT attacker_schema.load_default();},
		'5: the source owner cannot set a column DEFAULT on its load table');
	as_role($db, 'writer', qq{
		INSERT INTO pipeline.asrc_load (event_id, event_time) VALUES ('1', '2026-01-10T10:00:00Z');
		COPY pipeline.asrc_load (event_id, event_time) FROM STDIN (FORMAT csv);
2,2026-01-10T10:01:00Z
\\.
});
	is($node->safe_psql($db, q{SELECT coalesce(string_agg(who || ': ' || what, '; '), '') FROM public.marker}), '',
		'5: attacker code never ran when a writer loaded rows');
	no_escalation($db, '5');
}

# ---------------------------------------------------------------------
# 6. holding another team's days
# ---------------------------------------------------------------------
{
	my $db = new_db('c_hold');
	refused($db, 'attacker', q{SELECT pipeline.add_check('hold', 'freshness', 'vm', '{"max_lag": "1 second"}', 'block')},
		'6: a blocking check on the victim\'s metric is refused');
	refused($db, 'attacker', q{SELECT pipeline.add_check('hold_s', 'freshness', 'vsrc', '{"max_lag": "1 second"}', 'block')},
		'6: a blocking check on the victim\'s source is refused');
	refused($db, 'attacker', q{
		INSERT INTO pipeline.checks (check_name, kind, target, target_type, params, severity, owner)
		VALUES ('hold_d', 'freshness', 'vm', 'metric', '{"max_lag": "1 second"}', 'block', 'attacker')},
		'6: INSERT INTO pipeline.checks is refused');
	refused($db, 'attacker', q{
		INSERT INTO pipeline.check_results (check_name, run_no, ran_at, status, detail)
		SELECT c.check_name, 1000, '2026-01-12 23:00+00', 'fail', 'forged' FROM pipeline.checks AS c},
		'6: INSERT INTO pipeline.check_results is refused');
	as_role($db, 'attacker', q{SELECT count(*) FROM pipeline.run_checks('2026-01-12 23:00+00')});
	victim_freezes($db, '6');
	no_escalation($db, '6');
}

# ---------------------------------------------------------------------
# 7. poisoning the shared jobs
# ---------------------------------------------------------------------
sub victim_folds
{
	my ($db, $case) = @_;
	my ($ret, $out, $err) = su($db, 'SELECT pipeline.run_hot()');
	is($node->safe_psql($db, q{SELECT coalesce(sum(n), 0) FROM metrics.vm_live}), '5',
		"$case: the victim's metric still folds, all its events counted")
	  or diag("run_hot: exit $ret; $err");
}
{
	my $db = new_db('c_poison_filter');
	attacker_source($db, 'asrc');
	attempt($db, 'attacker', q{
		SELECT pipeline.create_metric('ab', 'asrc', '{}', 'count(*) AS n', filter => '1 / (amount - 5) > 0',
		                              hot_retention => '1000 days');});
	victim_folds($db, '7 (filter raising on stored data)');
	victim_freezes($db, '7 (filter raising on stored data)');
}
{
	my $db = new_db('c_poison_view');
	attacker_source($db, 'asrc');
	attempt($db, 'attacker', q{
		SELECT pipeline.create_metric('ac', 'asrc', '{}', 'count(*) AS n', hot_retention => '1000 days');
		DROP VIEW metrics.ac_daily;});
	victim_folds($db, '7 (dropped _daily view)');
	victim_freezes($db, '7 (dropped _daily view)');
}
{
	my $db = new_db('c_poison_catalog');
	attacker_source($db, 'asrc');
	attempt($db, 'attacker', q{SELECT pipeline.create_metric('ad', 'asrc', '{}', 'count(*) AS n', hot_retention => '1000 days')});
	refused($db, 'attacker', q{UPDATE pipeline.source_catalog SET event_time = 'x' WHERE source = 'asrc'},
		'7: UPDATE of its own source_catalog row is refused', qr/./);
	as_role($db, 'attacker', q{UPDATE pipeline.source_catalog SET event_time = 'x' WHERE source = 'vsrc'});
	is($node->safe_psql($db, q{SELECT event_time FROM pipeline.source_catalog WHERE source = 'vsrc'}), 'event_time',
		'7: the victim\'s source_catalog row is unchanged');
	victim_folds($db, '7 (rewritten catalog row)');
	victim_freezes($db, '7 (rewritten catalog row)');
}
{
	my $db = new_db('c_poison_stranger');
	refused($db, 'attacker', q{CREATE FUNCTION pipeline.stranger() RETURNS int LANGUAGE sql AS 'SELECT 1'},
		'7: CREATE FUNCTION in schema pipeline is refused');
	victim_folds($db, '7 (stranger function)');
	victim_freezes($db, '7 (stranger function)');
}

# ---------------------------------------------------------------------
# 8. leaks to roles without rights
# ---------------------------------------------------------------------
{
	my $db = new_db('c_leaks');
	$node->safe_psql($db, q{
		SELECT pipeline.create_metric('vm2', 'vsrc', '{}', 'count(*) AS n', filter => 'email <> ''vip@victim.example''');
		SELECT pipeline.add_check('v_email', 'not_null', 'vsrc', '{"column": "email"}');},
		extra_params => [ '-U', 'victim' ]);
	$node->safe_psql($db, 'GRANT USAGE ON SCHEMA pipeline TO attacker');
	for my $role ('attacker', 'snoop')
	{
		my ($ret, $out, $err) = as_role($db, $role, q{
			SELECT filter, fold_sql, definition, last_error FROM pipeline.metric_catalog WHERE metric = 'vm2'});
		ok($ret != 0 || $out eq '', "8: $role cannot read the victim's filter, fold_sql and definition")
		  or diag($out);
	}
	$node->safe_psql($db, q{
		UPDATE pipeline.metric_catalog SET failures = 1, last_error = 'value 900-00-0001 of v1@victim.example out of range',
		       last_error_at = now() WHERE metric = 'vm'});
	my ($ret, $out, $err) = as_role($db, 'snoop', q{SELECT last_error FROM pipeline.status WHERE kind = 'metric' AND name = 'vm'});
	is($out, '', '8: pipeline.status shows no last_error of the victim\'s metric to a reader')
	  or diag($err);

	# a NULL email: the victim's check fails, and its alert goes out
	$node->safe_psql($db, q{SELECT accepted FROM pipeline.ingest('vsrc',
		'[{"event_id": 50, "event_time": "2026-01-10T20:00:00Z", "amount": 12345.67}]')});
	my $listener = $node->background_psql($db, on_error_stop => 0, extra_params => [ '-U', 'snoop' ]);
	$listener->query('LISTEN pipeline_alerts');
	su($db, q{SELECT count(*) FROM pipeline.run_checks('2026-01-10 23:00+00')});
	# (delivered at the listener's next query: run_checks has committed)
	my $heard = $listener->query('SELECT 1');
	$listener->quit;
	my ($payload) = $heard =~ /with payload "(.*)" received/;
	ok(defined $payload, '8: the listener got the alert (the attack was exercised)') or diag($heard);
	$payload //= '';
	unlike($payload, qr/"(observed|threshold|detail)"\s*:\s*[^n\s]/,
		'8: the NOTIFY payload carries no observed values or detail of the victim\'s check')
	  or diag($payload);

	# dead letters: the sender and the source owner read them, other writers do not
	$node->safe_psql($db, q{SELECT rejected FROM pipeline.ingest('vsrc',
		'[{"event_id": "bad", "event_time": "2026-01-10T21:00:00Z", "ssn": "900-00-0009 leaked"}]')},
		extra_params => [ '-U', 'writer' ]);
	($ret, $out, $err) = as_role($db, 'writer2', 'SELECT payload FROM pipeline.dead_letters');
	unlike($out, qr/900-00-0009/, '8: another writer cannot read the batch\'s dead-letter payloads');
	($ret, $out, $err) = as_role($db, 'writer', 'SELECT payload FROM pipeline.dead_letters');
	like($out, qr/900-00-0009/, '8: the writer who sent the batch reads its dead letters');
	($ret, $out, $err) = as_role($db, 'victim', 'SELECT payload FROM pipeline.dead_letters');
	like($out, qr/900-00-0009/, '8: the source owner reads its dead letters') or diag($err);
}

# ---------------------------------------------------------------------
# 9. casts to domains whose CHECK runs attacker code
# ---------------------------------------------------------------------
{
	my $db = new_db('c_domain');
	attacker_source($db, 'asrc');
	$node->safe_psql($db, q{CREATE DOMAIN attacker_schema.evil2 AS numeric CHECK (attacker_schema.mark('permanent domain'))},
		extra_params => [ '-U', 'attacker' ]);
	my $bg = $node->background_psql($db, on_error_stop => 0, extra_params => [ '-U', 'attacker' ]);
	$bg->query(q{CREATE DOMAIN pg_temp.evil AS numeric CHECK (attacker_schema.mark('temporary domain'))});
	my %tries = (
		'a measure casting to a temporary domain' =>
		  q{SELECT pipeline.create_metric('ad', 'asrc', '{}', 'sum(amount::evil) AS s', hot_retention => '1000 days')},
		'a filter casting to a temporary domain' =>
		  q{SELECT pipeline.create_metric('ae', 'asrc', '{}', 'count(*) AS n', filter => 'amount::evil > 0')},
		'a measure casting to the attacker\'s domain' =>
		  q{SELECT pipeline.create_metric('af', 'asrc', '{}', 'sum(amount::attacker_schema.evil2) AS s')},
		'a measure casting to the attacker\'s domain, unqualified' =>
		  q{SET search_path = attacker_schema, public; SELECT pipeline.create_metric('ag', 'asrc', '{}', 'sum(amount::evil2) AS s'); RESET search_path});
	for my $what (sort keys %tries)
	{
		$bg->{stderr} = '';
		my ($o, $failed) = $bg->query($tries{$what});
		ok($failed, "9: create_metric refuses $what") or diag($o);
	}
	$bg->{stderr} = '';
	# while the attacker's session (and its temporary domain) lives
	su($db, "SELECT count(*) FROM pipeline.close_days('$clock')");
	$bg->query(q{SELECT count(*) FROM pipeline.close_days()});
	$bg->query(q{SELECT pipeline.restate_day('ad', '2026-01-10', 'again')});
	$bg->query(q{SELECT pipeline.restate_day('ae', '2026-01-10', 'again')});
	su($db, q{SELECT pipeline.restate_day('ad', '2026-01-10', 'audit')});
	$bg->quit;
	no_escalation($db, '9');
	victim_freezes($db, '9');
}

$node->stop;

# ---------------------------------------------------------------------
# 10. a BRIN expression index that raises when the worker summarizes
# ---------------------------------------------------------------------
{
	my $w = PipelineNode::new_node('holes_worker', conf => "pipeline.enabled = on\npipeline.hot_interval = '200ms'");
	$w->start;
	$node = $w;
	$su_name = undef;
	$w->safe_psql('postgres', q{
		CREATE ROLE pipeline_reader NOLOGIN;
		CREATE ROLE pipeline_writer NOLOGIN;
		CREATE ROLE victim LOGIN;
		CREATE ROLE attacker LOGIN IN ROLE pipeline_writer;});
	my $db = new_db('c_brin');
	$w->safe_psql($db, q{SELECT pipeline.create_metric('vlive', 'vsrc', '{}', 'count(*) AS n')}, extra_params => [ '-U', 'victim' ]);
	my $now_events = sub {
		my ($first, $n, $extra) = @_;
		my $t = $w->safe_psql('postgres', q{SELECT to_char(now() AT TIME ZONE 'UTC' - interval '1 minute', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')});
		return events($first, $n, undef, time => $t, extra => $extra);
	};
	my $live = sub {
		my ($want, $secs) = @_;
		for (1 .. $secs * 10)
		{
			return 1 if $w->safe_psql($db, q{SELECT coalesce(sum(n), 0) FROM metrics.vlive_live}) eq $want;
			usleep(100_000);
		}
		return 0;
	};
	$w->safe_psql($db, "SELECT accepted FROM pipeline.ingest('vsrc', '" . $now_events->(101, 3, sub { qq{"email": "x$_[0]\@victim.example"} }) . "')");
	ok($live->(3, 30), '10: the worker folds the victim\'s metric (before the attack)');

	attacker_source($db, 'asrc', events => 0);
	attempt($db, 'attacker', q{SELECT pipeline.create_metric('am', 'asrc', '{}', 'count(*) AS n')});
	$w->safe_psql($db, q{
		CREATE FUNCTION attacker_schema.boom(x bigint) RETURNS bigint IMMUTABLE LANGUAGE plpgsql AS $$
		BEGIN
		    IF session_user = 'attacker' THEN
		        RETURN x;
		    END IF;
		    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
		        PERFORM attacker_schema.mark('brin summarization');
		        RETURN x;
		    END IF;
		    RAISE EXCEPTION 'boom';
		END $$;}, extra_params => [ '-U', 'attacker' ]);
	my $pad = sub { qq{"amount": 1, "user_id": $_[0]} };
	attempt($db, 'attacker', "SELECT accepted FROM pipeline.ingest('asrc', '" . $now_events->(1, 5, $pad) . "')");
	my $part = $w->safe_psql($db, q{SELECT coalesce(max(c.oid::regclass::text), 'none') FROM pg_inherits AS i
		JOIN pg_class AS c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('pipeline.asrc_raw')});
	attempt($db, 'attacker', qq{CREATE INDEX ON $part USING brin ((attacker_schema.boom(event_id))) WITH (pages_per_range = 1)});
	attempt($db, 'attacker', "SELECT accepted FROM pipeline.ingest('asrc', '" . $now_events->(1000, 30000, $pad) . "')");
	note('pages of the attacker\'s partition: ' . $w->safe_psql($db,
		"SELECT coalesce(pg_relation_size(to_regclass('$part')), 0) / current_setting('block_size')::int"));
	$w->safe_psql($db, "SELECT accepted FROM pipeline.ingest('vsrc', '" . $now_events->(201, 4, sub { qq{"email": "y$_[0]\@victim.example"} }) . "')");
	ok($live->(7, 15), '10: with the attacker\'s raising BRIN index in place, the worker still folds the victim\'s metric');
	no_escalation($db, '10');
	$w->stop;
}

done_testing();
