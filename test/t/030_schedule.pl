# pipeline.schedule() and pipeline.unschedule(): from a database that is not
# cron.database_name, create, update and remove this database's pg_cron
# jobs; the jobs belong to and run as the caller, a plain role included;
# calling twice leaves the same three jobs; a job really runs; every missing piece
# (pg_cron not preloaded or not installed, privileges, pg_hba.conf) is an
# error that names the fix; a wait on pg_cron's database can be cancelled.
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

# --- pg_cron preloaded but not installed in its database ------------------
my ($ret, $out, $err) = $node->psql('app', 'SELECT pipeline.schedule()');
isnt($ret, 0, 'schedule() fails while pg_cron is not installed in cron.database_name');
like($err, qr/pg_cron is not installed in database "postgres"/, '... saying where it is missing');
like($err, qr/HINT:  Run CREATE EXTENSION pg_cron in database "postgres"/, '... and naming the fix');

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');

# --- the three jobs, as the caller, idempotent ------------------------------
$node->safe_psql('app', 'SELECT pipeline.schedule()');
is(jobs(), join("\n",
		"pipeline:app:checks|*/5 * * * *|SELECT pg_catalog.count(*) FROM pipeline.run_checks()|app|$su|t",
		"pipeline:app:close_days|*/5 * * * *|SELECT pipeline.close_days()|app|$su|t",
		"pipeline:app:maintenance|17 * * * *|SELECT pipeline.maintain()|app|$su|t"),
	'schedule() creates the checks, close_days and maintenance jobs for database app, owned by the caller');
my $ids = job_ids($su);

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

# the maintenance command works when called by hand
$node->safe_psql('app', 'SELECT pipeline.maintain()');
pass('pipeline.maintain() runs');

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
my $close_days_exists = $node->safe_psql('app',
	q{SELECT to_regprocedure('pipeline.close_days(timestamptz)') IS NOT NULL});
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
if ($close_days_exists eq 't')
{
	like($run, qr/^app\|\Q$su\E\|SELECT pipeline\.close_days\(\)\|succeeded\|/,
		'the close_days job ran SELECT pipeline.close_days() in database app and succeeded');
}
else
{
	# pipeline.close_days() is not in this build yet: the run reached the
	# database and failed on exactly that
	like($run, qr/^app\|\Q$su\E\|SELECT pipeline\.close_days\(\)\|failed\|.*close_days/,
		'the close_days job ran in database app (and failed: pipeline.close_days() does not exist yet)');
}
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
$node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'pipeline.schedule'})
  or die 'the connection to the pg_cron database stayed';
pass('... and its connection there is gone');
$holder->query_safe('COMMIT');
$holder->quit;
is($node->safe_psql('postgres', "SELECT schedule FROM cron.job WHERE jobname = 'pipeline:app:close_days' AND username = '$su'"),
	'*/5 * * * *', '... and the cancelled call changed nothing');

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

# --- unschedule: one's own jobs; a superuser's call removes every role's ---
$node->safe_psql('app', 'SELECT pipeline.unschedule()', @alice);
is($node->safe_psql('postgres', q{SELECT count(*) FROM cron.job WHERE username = 'alice'}),
	'0', "unschedule() by a plain role removes its jobs");
is(job_ids($su), $ids, "... and not the superuser's");
$node->safe_psql('app', q{SELECT pipeline.schedule()}, @alice);
$node->safe_psql('app', 'SELECT pipeline.unschedule()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'), '0',
	"unschedule() by a superuser removes every role's jobs of the database");
$node->safe_psql('app', 'SELECT pipeline.unschedule()');
pass('unschedule() with nothing scheduled is not an error');

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
$bare->stop;

done_testing();
