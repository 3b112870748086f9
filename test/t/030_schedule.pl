# pipeline.schedule() and pipeline.unschedule(): from a database that is not
# cron.database_name, create, update and remove this database's pg_cron
# jobs; the jobs belong to and run as the caller, a plain role included;
# calling twice leaves the same three jobs; a job really runs; every missing piece
# (pg_cron not preloaded or not installed, privileges, pg_hba.conf) is an
# error that names the fix; a wait on pg_cron's database can be cancelled.
# pipeline.cron_jobs() and the job rows of pipeline.status show the jobs
# and their last run as pg_cron shows them to the caller; status never
# fails because pg_cron's database cannot be read: it says why in a row.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use PipelineNode;

my $node = PipelineNode::new_node('schedule');
$node->start;
my $su = $node->safe_psql('postgres', 'SELECT current_user');

$node->safe_psql('postgres', 'CREATE DATABASE app');
$node->safe_psql('app', 'CREATE EXTENSION pipeline');

# the jobs as pg_cron sees them, in its database (as the superuser: all roles)
sub jobs
{
	return $node->safe_psql('postgres', q{
		SELECT string_agg(concat_ws('|', jobname, schedule, command, database, username, active),
		                  E'\n' ORDER BY username, jobname)
		  FROM cron.job});
}

sub job_ids
{
	return $node->safe_psql('postgres',
		"SELECT string_agg(jobid::text, ',' ORDER BY jobid) FROM cron.job WHERE username = '$_[0]'");
}

# the job rows of pipeline.status, as one line each
sub status_jobs
{
	my ($db, @opts) = @_;
	return $node->safe_psql($db, q{
		SELECT string_agg(concat_ws('|', name, job_user, job_schedule, job_active, last_error),
		                  E'\n' ORDER BY name, job_user)
		  FROM pipeline.status WHERE kind = 'job'}, @opts);
}

# --- pg_cron preloaded but not installed in its database ------------------
my ($ret, $out, $err) = $node->psql('app', 'SELECT pipeline.schedule()');
isnt($ret, 0, 'schedule() fails while pg_cron is not installed in cron.database_name');
like($err, qr/pg_cron is not installed in database "postgres"/, '... saying where it is missing');
like($err, qr/HINT:  Run CREATE EXTENSION pg_cron in database "postgres"/, '... and naming the fix');
($ret, $out, $err) = $node->psql('app', 'SELECT * FROM pipeline.cron_jobs()');
like($err, qr/pg_cron is not installed in database "postgres"/, 'cron_jobs() says so too');
is($node->safe_psql('app', 'SELECT count(*) FROM pipeline.cron_jobs(missing_ok => true)'), '0',
	'... and with missing_ok returns no rows');
is(status_jobs('app'), '', 'status has no job rows (and no error row): nothing can be scheduled');

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');

# --- the three jobs, as the caller, idempotent ------------------------------
# pg_cron starts */5 jobs at the top of every fifth minute; the checks of
# "not run yet" below keep a few seconds away from it
my ($second, $minute) = (localtime)[0, 1];
sleep(62 - $second) if $minute % 5 == 4 && $second >= 50;
$node->safe_psql('app', 'SELECT pipeline.schedule()');
is(jobs(), join("\n",
		"pipeline:app:checks|*/5 * * * *|SELECT pg_catalog.count(*) FROM pipeline.run_checks()|app|$su|t",
		"pipeline:app:close_days|*/5 * * * *|SELECT pipeline.close_days()|app|$su|t",
		"pipeline:app:maintenance|17 * * * *|SELECT pipeline.maintain()|app|$su|t"),
	'schedule() creates the checks, close_days and maintenance jobs for database app, owned by the caller');
my $ids = job_ids($su);
is(status_jobs('app'), join("\n",
		"pipeline:app:checks|$su|*/5 * * * *|t",
		"pipeline:app:close_days|$su|*/5 * * * *|t",
		"pipeline:app:maintenance|$su|17 * * * *|t"),
	'status shows the three jobs, their owner, schedule and state');
is($node->safe_psql('app', q{
		SELECT string_agg(concat_ws('|', jobname, command, last_run_start, last_run_status), E'\n' ORDER BY jobname)
		  FROM pipeline.cron_jobs()}),
	join("\n",
		"pipeline:app:checks|SELECT pg_catalog.count(*) FROM pipeline.run_checks()",
		"pipeline:app:close_days|SELECT pipeline.close_days()",
		"pipeline:app:maintenance|SELECT pipeline.maintain()"),
	'cron_jobs() returns them with their commands, not run yet');

$node->safe_psql('app', 'SELECT pipeline.schedule()');
is(job_ids($su), $ids, 'calling schedule() again leaves the same three jobs');

$node->safe_psql('app', q{SELECT pipeline.schedule(close_days_schedule => '* * * * *')});
is(job_ids($su), $ids, 'a new schedule updates the jobs in place');
is($node->safe_psql('postgres', "SELECT schedule FROM cron.job WHERE jobname = 'pipeline:app:close_days'"),
	'* * * * *', '... with the new close_days schedule');

# pg_cron's own refusals come back with where they happened; nothing changes
($ret, $out, $err) = $node->psql('app', q{SELECT pipeline.schedule('every minute')});
like($err, qr/ERROR:  pg_cron in database "postgres": invalid schedule: every minute/,
	'an invalid schedule is refused by pg_cron, and said so');
($ret, $out, $err) = $node->psql('app', 'SELECT pipeline.schedule(NULL)');
like($err, qr/close_days_schedule must not be NULL/, 'a NULL schedule is an error, not a silent no-op');
is($node->safe_psql('postgres', "SELECT schedule FROM cron.job WHERE jobname = 'pipeline:app:close_days'"),
	'* * * * *', 'refused calls changed nothing');

# the maintenance command, by hand: it keeps 7 days of this database's
# pipeline job runs in cron.job_run_details, and nothing else goes
$node->safe_psql('postgres', q{
	INSERT INTO cron.job_run_details (jobid, runid, database, username, command, status, start_time, end_time)
	SELECT j.jobid, nextval('cron.runid_seq'), 'app', j.username, j.command, 'succeeded',
	       now() - d * interval '1 day' - interval '1 second', now() - d * interval '1 day'
	  FROM cron.job AS j, (VALUES (10), (8), (1)) AS x(d)
	 WHERE j.jobname = 'pipeline:app:maintenance';
	SELECT cron.schedule('someone_else', '0 0 1 1 *', 'SELECT 1');
	INSERT INTO cron.job_run_details (jobid, runid, database, username, command, status, start_time, end_time)
	SELECT j.jobid, nextval('cron.runid_seq'), 'postgres', j.username, j.command, 'succeeded',
	       now() - interval '30 days', now() - interval '30 days'
	  FROM cron.job AS j WHERE j.jobname = 'someone_else';});
is($node->safe_psql('app', q{SELECT string_agg(object || ' ' || action || ': ' || coalesce(detail, ''), '; ' ORDER BY object)
                              FROM pipeline.maintain()}),
	"cron.job_run_details deleted: 2 runs of this database's pipeline jobs that ended more than 7 days ago; "
	  . 'pipeline.batch_log analyzed: ',
	'maintain() deletes the runs older than 7 days of this database\'s jobs and says so');
is($node->safe_psql('postgres', q{
	SELECT string_agg(j.jobname || ' ' || round(extract(epoch FROM now() - d.end_time) / 86400), ', ' ORDER BY j.jobname)
	  FROM cron.job_run_details AS d JOIN cron.job AS j USING (jobid)
	 WHERE j.jobname IN ('pipeline:app:maintenance', 'someone_else') AND d.end_time < now() - interval '12 hours'}),
	'pipeline:app:maintenance 1, someone_else 30', '... and keeps the newer runs and other jobs\' runs');
$node->safe_psql('postgres', q{SELECT cron.unschedule('someone_else'); DELETE FROM cron.job_run_details;});

# --- a plain role: each missing grant is named, then its own jobs ---------
$node->safe_psql('postgres', 'CREATE ROLE alice LOGIN');
$node->safe_psql('app', 'GRANT USAGE ON SCHEMA pipeline TO alice');
my @alice = (extra_params => [ '-U', 'alice' ]);

($ret, $out, $err) = $node->psql('app', 'SELECT pipeline.schedule()', @alice);
like($err, qr/role "alice" may not use pg_cron in database "postgres"/,
	'a role without USAGE on schema cron is refused');
like($err, qr/HINT:  In database "postgres", a superuser can run: GRANT USAGE ON SCHEMA cron TO alice;/,
	'... with the GRANT that fixes it');
$node->safe_psql('postgres', 'GRANT USAGE ON SCHEMA cron TO alice');

($ret, $out, $err) = $node->psql('app', 'SELECT pipeline.schedule()', @alice);
like($err, qr/role "alice" may not schedule pg_cron jobs in other databases/,
	'a role without EXECUTE on cron.schedule_in_database is refused');
like($err,
	qr/GRANT EXECUTE ON FUNCTION cron\.schedule_in_database\(text, text, text, text, text, boolean\) TO alice;/,
	'... with the GRANT that fixes it');
$node->safe_psql('postgres',
	'GRANT EXECUTE ON FUNCTION cron.schedule_in_database(text, text, text, text, text, boolean) TO alice');

$node->safe_psql('app', q{SELECT pipeline.schedule('* * * * *')}, @alice);
$node->safe_psql('app', q{SELECT pipeline.schedule('* * * * *')}, @alice);
is($node->safe_psql('postgres', q{
		SELECT string_agg(jobname || '|' || database, ',' ORDER BY jobname) FROM cron.job WHERE username = 'alice'}),
	'pipeline:app:checks|app,pipeline:app:close_days|app,pipeline:app:maintenance|app',
	'a plain role gets three jobs of its own, under its own name, after two calls');
is(job_ids($su), $ids, "... and the superuser's jobs are untouched");

# --- the jobs really run, in database app, as the role that scheduled them ---
# pg_cron has minute granularity: the next run starts within 60 s
{
	local $PostgreSQL::Test::Utils::timeout_default = 90;
	$node->poll_query_until('postgres', q{
		SELECT count(DISTINCT d.username) = 2 FROM cron.job_run_details AS d
		  JOIN cron.job AS j USING (jobid)
		 WHERE j.jobname = 'pipeline:app:close_days' AND d.status IN ('succeeded', 'failed')})
	  or die 'no finished run of the close_days jobs within 90 s';
}
my $run = $node->safe_psql('postgres', qq{
	SELECT concat_ws('|', d.database, d.username, d.command, d.status, d.return_message)
	  FROM cron.job_run_details AS d JOIN cron.job AS j USING (jobid)
	 WHERE j.jobname = 'pipeline:app:close_days' AND d.username = '$su'
	 ORDER BY d.runid LIMIT 1});
like($run, qr/^app\|\Q$su\E\|SELECT pipeline\.close_days\(\)\|succeeded\|/,
	'the close_days job ran SELECT pipeline.close_days() in database app and succeeded');
is($node->safe_psql('postgres', q{
		SELECT string_agg(DISTINCT d.database, ',') FROM cron.job_run_details AS d
		  JOIN cron.job AS j USING (jobid)
		 WHERE j.jobname = 'pipeline:app:close_days' AND d.username = 'alice'}),
	'app', "the plain role's job ran in database app as that role");
note("close_days run as alice: " . $node->safe_psql('postgres', q{
		SELECT concat_ws('|', d.status, d.return_message) FROM cron.job_run_details AS d
		  JOIN cron.job AS j USING (jobid)
		 WHERE j.jobname = 'pipeline:app:close_days' AND d.username = 'alice'
		 ORDER BY d.runid LIMIT 1}));

# the last run as status shows it is pg_cron's latest run of the job (read
# twice if a run started between the two reads)
my ($seen, $truth);
for my $try (1 .. 3)
{
	$truth = $node->safe_psql('postgres', qq{
		SELECT concat_ws('|', d.status, d.start_time, d.end_time, d.return_message)
		  FROM cron.job_run_details AS d JOIN cron.job AS j USING (jobid)
		 WHERE j.jobname = 'pipeline:app:close_days' AND j.username = '$su'
		 ORDER BY d.runid DESC LIMIT 1});
	$seen = $node->safe_psql('app', qq{
		SELECT concat_ws('|', last_run_status, last_run_start, last_run_end, last_run_message)
		  FROM pipeline.status WHERE kind = 'job' AND name = 'pipeline:app:close_days' AND job_user = '$su'});
	last if $seen eq $truth;
}
is($seen, $truth, "status shows the close_days job's latest run: status, start, end and message");
like($seen, qr/^(succeeded|running|starting|connecting|sending)\|/, '... which did not fail');
$node->safe_psql('app', 'GRANT pipeline_reader TO alice');
is($node->safe_psql('app', q{
		SELECT string_agg(DISTINCT job_user, ',') || ' ' || count(*) FROM pipeline.status WHERE kind = 'job'}, @alice),
	'alice 3', 'a plain role sees its own three jobs only (pg_cron\'s row security)');
is($node->safe_psql('app', q{
		SELECT count(*) FILTER (WHERE last_run_start IS NOT NULL) > 0
		   AND bool_and((last_run_status IS NOT DISTINCT FROM 'failed') = (last_error IS NOT NULL))
		  FROM pipeline.status WHERE kind = 'job'}, @alice),
	't', "... with its runs, a failed last run's message as last_error");

# back to the default schedule, so the rest of the test is not raced by runs
$node->safe_psql('app', 'SELECT pipeline.schedule()');
$node->safe_psql('app', 'SELECT pipeline.schedule()', @alice);

# --- a wait on pg_cron's database can be cancelled -------------------------
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; LOCK cron.job IN SHARE MODE;');
($ret, $out, $err) = $node->psql('app', q{
	SET statement_timeout = '1s';
	SELECT pipeline.schedule('*/10 * * * *');});
like($err, qr/canceling statement due to statement timeout/,
	'schedule() blocked on a lock in the pg_cron database obeys statement_timeout');
ok($node->poll_query_until('postgres', q{
		SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'pipeline.schedule'}),
	'... and its connection there is gone');
$holder->query_safe('COMMIT');
$holder->quit;
is($node->safe_psql('postgres', "SELECT schedule FROM cron.job WHERE jobname = 'pipeline:app:close_days' AND username = '$su'"),
	'*/5 * * * *', '... and the cancelled call changed nothing');

# status waits at most 5 s for pg_cron's database, then says why in a row
$holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; LOCK cron.job IN ACCESS EXCLUSIVE MODE;');
my $started = time;
is($node->safe_psql('app', q{
		SELECT count(*) || '|' || bool_and(name IS NULL) || '|' || min(last_error)
		  FROM pipeline.status WHERE kind = 'job'}),
	'1|true|pg_cron in database "postgres": canceling statement due to statement timeout',
	'status with cron.job locked: one job row saying the read timed out');
cmp_ok(time - $started, '<', 30, '... after a bounded wait, not the lock holder\'s');
($ret, $out, $err) = $node->psql('app', q{SET statement_timeout = '1s'; SELECT count(*) FROM pipeline.status});
like($err, qr/ERROR:  canceling statement due to statement timeout/,
	'a cancel of the status query itself (waiting there) is a cancel, not swallowed into a row');
unlike($err, qr/pg_cron in database/, '... raised here, not over there');
$holder->query_safe('COMMIT');
$holder->quit;

# --- pg_hba.conf refusing the connection: the error names the file --------
$node->safe_psql('postgres', 'CREATE ROLE blocked LOGIN');
$node->safe_psql('postgres', 'GRANT USAGE ON SCHEMA cron TO blocked');
$node->safe_psql('app', 'GRANT USAGE ON SCHEMA pipeline TO blocked');
my $hba = $node->data_dir . '/pg_hba.conf';
my $hba_lines = slurp_file($hba);
open(my $fh, '>', $hba) or die "could not write $hba: $!";
print $fh "local postgres blocked reject\n$hba_lines";
close($fh);
$node->reload;
($ret, $out, $err) = $node->psql('app', 'SELECT pipeline.schedule()', extra_params => [ '-U', 'blocked' ]);
like($err, qr/could not connect to the pg_cron database "postgres" as role "blocked"/,
	'a connection refused by pg_hba.conf is an error');
like($err, qr/pg_hba\.conf rejects connection/, '... with the server\'s reason');
like($err, qr/allow local connections for role "blocked" to database "postgres" in pg_hba\.conf/,
	'... and the fix');
$node->safe_psql('app', 'GRANT pipeline_reader TO blocked');
($ret, $out, $err) = $node->psql('app', 'SELECT * FROM pipeline.cron_jobs()', extra_params => [ '-U', 'blocked' ]);
like($err, qr/could not connect to the pg_cron database "postgres" as role "blocked"/,
	'cron_jobs() refused by pg_hba.conf is an error');
$node->safe_psql('app', q{
	SELECT pipeline.create_source('ev', 'id bigint NOT NULL, event_time timestamptz NOT NULL', event_id => 'id')});
is($node->safe_psql('app', q{
		SELECT string_agg(concat_ws('|', kind, COALESCE(name, '-'), last_error IS NOT NULL, last_error_at IS NOT NULL), E'\n'
		                  ORDER BY kind, name)
		  FROM pipeline.status}, extra_params => [ '-U', 'blocked' ]),
	"job|-|t|t\nsource|ev|f|f",
	'status refused by pg_hba.conf does not fail: the source row, and one job row with the error');
like($node->safe_psql('app', q{SELECT last_error FROM pipeline.status WHERE kind = 'job'},
		extra_params => [ '-U', 'blocked' ]),
	qr/^could not connect to the pg_cron database "postgres" as role "blocked" \(hint: .*pg_hba\.conf/,
	'... saying what was refused and the fix');
$node->safe_psql('app', q{SELECT pipeline.drop_source('ev')});

# --- unschedule: one's own jobs; a superuser's call removes every role's ---
$node->safe_psql('app', 'SELECT pipeline.unschedule()', @alice);
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE username = 'alice'}),
	'0', "unschedule() by a plain role removes its jobs");
is(job_ids($su), $ids, "... and not the superuser's");
$node->safe_psql('app', q{SELECT pipeline.schedule()}, @alice);
$node->safe_psql('app', 'SELECT pipeline.unschedule()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '0',
	"unschedule() by a superuser removes every role's jobs of the database");
($ret, $out, $err) = $node->psql('app', 'SELECT pipeline.unschedule()');
is($ret, 0, 'unschedule() with nothing scheduled is not an error') or diag($err);

# jobs of another database are not touched
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION pipeline');
$node->safe_psql('other', 'SELECT pipeline.schedule()');
$node->safe_psql('app', 'SELECT pipeline.schedule()');
$node->safe_psql('app', 'SELECT pipeline.unschedule()');
is($node->safe_psql('postgres', q{SELECT string_agg(jobname || '|' || database, ',' ORDER BY jobname) FROM cron.job}),
	'pipeline:other:checks|other,pipeline:other:close_days|other,pipeline:other:maintenance|other',
	"each database has its own jobs; unschedule() leaves the other database's");

$node->stop;

# --- pg_cron not preloaded ---------------------------------------------------
my $bare = PipelineNode::new_node('nocron', preload => 'pipeline');
$bare->start;
$bare->safe_psql('postgres', 'CREATE EXTENSION pipeline');
($ret, $out, $err) = $bare->psql('postgres', 'SELECT pipeline.schedule()');
like($err, qr/ERROR:  pg_cron is not loaded/, 'without pg_cron preloaded, schedule() says so');
like($err, qr/HINT:  Set shared_preload_libraries = 'pg_cron,pipeline'/, '... and names the line to set');
($ret, $out, $err) = $bare->psql('postgres', 'SELECT * FROM pipeline.cron_jobs()');
like($err, qr/ERROR:  pg_cron is not loaded/, 'cron_jobs() says so too');
is($bare->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM pipeline.cron_jobs(missing_ok => true)) || '|' ||
		       (SELECT count(*) FROM pipeline.status WHERE kind = 'job')}),
	'0|0', '... and with missing_ok, like status, shows no jobs');
$bare->stop;

done_testing();
