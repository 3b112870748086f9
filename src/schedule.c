/*
 * schedule.c
 *	  pipeline.schedule() and pipeline.unschedule(): the pg_cron jobs of the
 *	  current database, created, updated and removed from any database.
 *
 * pg_cron keeps its jobs in one database (cron.database_name) and its
 * functions work only there, while pipeline is installed in any database.
 * So these functions open a libpq connection to that database, over the
 * server's own Unix socket (the first of unix_socket_directories, the
 * server's port), as the current user, and call pg_cron there.  The jobs
 * therefore belong to the caller and run as the caller: nothing here can
 * schedule work as another role (pg_cron refuses its username argument to
 * non-superusers, and it is never passed).
 *
 * The jobs of database <db>, named so that each database has its own (job
 * names are unique per pg_cron user, across databases):
 *	pipeline:<db>:close_days	every 5 minutes		SELECT pipeline.close_days()
 *	pipeline:<db>:maintenance	hourly, minute 17	SELECT pipeline.maintain()
 *	pipeline:<db>:checks		every 5 minutes		SELECT pipeline.run_checks()
 * cron.schedule_in_database() with an existing name updates that job's
 * schedule and command (pg_cron >= 1.4), so schedule() is idempotent; both
 * jobs are written by one statement, so either both change or neither.
 *
 * The remote work commits on its own: the caller's transaction rolling back
 * afterwards does not undo it (pg_cron offers no two-phase hook).
 *
 * cron_jobs() reads cron.job and cron.job_run_details there, as the caller,
 * so pg_cron's row security shows a plain role only its own jobs (a
 * superuser sees every role's).  pipeline.status calls it once per query,
 * and turns any error into a row rather than failing (src/sql/90_status.sql).
 *
 * Every value sent to the other database (names, schedules, commands) is an
 * out-of-line query parameter, never spliced into SQL text.  Waits on the
 * connection go through the latch, so a cancel or a statement_timeout
 * interrupts them; an interrupted query is cancelled on the other side
 * before the connection is closed.
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq-fe.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

#include "pipeline.h"

PG_FUNCTION_INFO_V1(pipeline_schedule);
PG_FUNCTION_INFO_V1(pipeline_unschedule);
PG_FUNCTION_INFO_V1(pipeline_cron_jobs);

/* the jobs: name suffix, schedule (close_days' can be overridden), command */
#define JOB_CLOSE_DAYS			"close_days"
#define JOB_CLOSE_DAYS_COMMAND	"SELECT pipeline.close_days()"
#define JOB_MAINTENANCE			"maintenance"
#define JOB_MAINTENANCE_SCHEDULE "17 * * * *"
#define JOB_MAINTENANCE_COMMAND	"SELECT pipeline.maintain()"
#define JOB_CHECKS				"checks"
#define JOB_CHECKS_SCHEDULE		"*/5 * * * *"
#define JOB_CHECKS_COMMAND		"SELECT pg_catalog.count(*) FROM pipeline.run_checks()"

/* the signature pg_cron 1.4 gives it, for hints */
#define SCHEDULE_IN_DATABASE_SIGNATURE \
	"cron.schedule_in_database(text, text, text, text, text, boolean)"

/*
 * cron_jobs() gives up on the pg_cron database after this long: a status
 * view polled by a dashboard must not hang behind a lock on cron.job
 */
#define CRON_JOBS_TIMEOUT		"5s"

/* a connection to the pg_cron database, with what error messages need */
typedef struct CronConnection
{
	PGconn	   *conn;
	const char *database;		/* cron.database_name */
	const char *role;			/* the current user, who owns the jobs */
} CronConnection;


/*
 * Whether pg_cron is loaded.  Its setting cron.database_name exists only
 * when pg_cron is preloaded: otherwise there is no such setting, or only a
 * placeholder left by a postgresql.conf line that no library claimed.
 */
static bool
CronIsLoaded(void)
{
	return GetConfigOption("cron.database_name", true, false) != NULL &&
		(GetConfigOptionFlags("cron.database_name", true) & GUC_CUSTOM_PLACEHOLDER) == 0;
}

/* the database pg_cron lives in */
static const char *
CronDatabaseName(void)
{
	const char *name = GetConfigOption("cron.database_name", true, false);

	if (!CronIsLoaded())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_cron is not loaded"),
				 errdetail("pipeline's scheduled jobs are pg_cron jobs, and pg_cron runs only when the server preloads it."),
				 errhint("Set shared_preload_libraries = 'pg_cron,pipeline' in postgresql.conf and restart the server.")));
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cron.database_name is empty"),
				 errhint("Set cron.database_name in postgresql.conf to the database pg_cron is installed in.")));
	return name;
}

/* "pipeline:<db>:<job>"; pg_cron stores job names as type name */
static char *
JobName(const char *job)
{
	char	   *dbname = get_database_name(MyDatabaseId);
	char	   *name;

	if (dbname == NULL)
		elog(ERROR, "could not find the name of the current database");
	name = psprintf("pipeline:%s:%s", dbname, job);
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("pg_cron job name \"%s\" is too long", name),
				 errdetail("pg_cron job names are at most %d bytes, and pipeline names its jobs "
						   "\"pipeline:<database>:<job>\".", NAMEDATALEN - 1),
				 errhint("Use a database name of at most %d bytes.",
						 (int) (NAMEDATALEN - 1 - (strlen(name) - strlen(dbname))))));
	return name;
}

/* where the server listens locally: the first of unix_socket_directories */
static char *
LocalSocketDirectory(void)
{
	char	   *raw = pstrdup(Unix_socket_directories ? Unix_socket_directories : "");
	List	   *dirs;
	char	   *dir;

	if (!SplitDirectoriesString(raw, ',', &dirs) || dirs == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the server listens on no Unix socket"),
				 errdetail("pipeline reaches the pg_cron database over the server's own Unix socket."),
				 errhint("Set unix_socket_directories in postgresql.conf and restart the server.")));
	dir = (char *) linitial(dirs);
	/* relative to the data directory, which is every backend's cwd */
	if (dir[0] != '@' && !is_absolute_path(dir))
		dir = make_absolute_path(dir);
	return dir;
}

/*
 * Waits until the connection's socket is ready for io_event, or the latch
 * is set (then interrupts are served: a cancel throws from here).
 */
static void
CronWait(CronConnection *cc, int io_event)
{
	pgsocket	sock = PQsocket(cc->conn);
	int			rc;

	if (sock == PGINVALID_SOCKET)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("lost the connection to database \"%s\"", cc->database),
				 errdetail_internal("%s", pchomp(PQerrorMessage(cc->conn)))));
	rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | io_event,
						   sock, -1L, PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* connects cc->conn, or throws with a hint saying what to allow */
static void
CronConnect(CronConnection *cc)
{
	const char *keywords[9];
	const char *values[9];
	int			n = 0;
	PostgresPollingStatusType status = PGRES_POLLING_WRITING;

	keywords[n] = "host";
	values[n++] = LocalSocketDirectory();
	keywords[n] = "port";
	values[n++] = psprintf("%d", PostPortNumber);
	keywords[n] = "user";
	values[n++] = cc->role;
	keywords[n] = "dbname";
	values[n++] = cc->database;
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	/* every name below is qualified; this keeps operators built-in too */
	keywords[n] = "options";
	values[n++] = "-c search_path=pg_catalog";
	keywords[n] = "fallback_application_name";
	values[n++] = "pipeline.schedule";
	keywords[n] = NULL;
	values[n] = NULL;

	/* a libpq socket is a file descriptor the backend must account for */
	if (!AcquireExternalFD())
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to database \"%s\": too many open files", cc->database),
				 errhint("Raise max_files_per_process or the server's \"ulimit -n\".")));

	/* expand_dbname = 0: the database name is a name, never a connection string */
	cc->conn = PQconnectStartParams(keywords, values, 0);
	if (cc->conn == NULL)
	{
		ReleaseExternalFD();
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while connecting to database \"%s\"", cc->database)));
	}
	if (PQstatus(cc->conn) != CONNECTION_BAD)
	{
		while (status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED)
		{
			CronWait(cc, status == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE);
			status = PQconnectPoll(cc->conn);
		}
	}
	if (PQstatus(cc->conn) != CONNECTION_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to the pg_cron database \"%s\" as role \"%s\"",
						cc->database, cc->role),
				 errdetail_internal("%s", pchomp(PQerrorMessage(cc->conn))),
				 errhint("pipeline connects to the pg_cron database over the server's Unix socket, without a password; "
						 "allow local connections for role \"%s\" to database \"%s\" in pg_hba.conf. "
						 "pg_cron's own job runs connect too, unless cron.use_background_workers = on.",
						 cc->role, cc->database)));
}

/* closes the connection, first cancelling a query still running there */
static void
CronDisconnect(CronConnection *cc)
{
	if (cc->conn == NULL)
		return;
	if (PQtransactionStatus(cc->conn) == PQTRANS_ACTIVE)
	{
		PGcancel   *cancel = PQgetCancel(cc->conn);
		char		errbuf[256];

		if (cancel != NULL)
		{
			(void) PQcancel(cancel, errbuf, sizeof(errbuf));
			PQfreeCancel(cancel);
		}
	}
	PQfinish(cc->conn);
	cc->conn = NULL;
	ReleaseExternalFD();
}

/*
 * Runs one statement with text parameters in the pg_cron database and
 * returns its result (PGRES_TUPLES_OK), which the caller must PQclear
 * before it can throw.  An error there is rethrown here with its SQLSTATE,
 * detail and hint, saying where it happened.
 */
static PGresult *
CronQuery(CronConnection *cc, const char *sql, int nparams, const char *const *params)
{
	PGresult   *last = NULL;
	PGresult   *res;

	if (!PQsendQueryParams(cc->conn, sql, nparams, NULL, params, NULL, NULL, 0))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not send a query to database \"%s\"", cc->database),
				 errdetail_internal("%s", pchomp(PQerrorMessage(cc->conn)))));
	for (;;)
	{
		while (PQisBusy(cc->conn))
		{
			CronWait(cc, WL_SOCKET_READABLE);
			if (!PQconsumeInput(cc->conn))
			{
				if (last != NULL)
					PQclear(last);
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("lost the connection to database \"%s\"", cc->database),
						 errdetail_internal("%s", pchomp(PQerrorMessage(cc->conn)))));
			}
		}
		res = PQgetResult(cc->conn);
		if (res == NULL)
			break;
		if (last != NULL)
			PQclear(last);
		last = res;
	}

	if (last == NULL || PQresultStatus(last) != PGRES_TUPLES_OK)
	{
		const char *field;
		int			sqlerrcode = ERRCODE_CONNECTION_FAILURE;
		char	   *message;
		char	   *detail = NULL;
		char	   *hint = NULL;

		/* copy what the report needs: the result is malloc'd, not palloc'd */
		field = last ? PQresultErrorField(last, PG_DIAG_SQLSTATE) : NULL;
		if (field != NULL && strlen(field) == 5)
			sqlerrcode = MAKE_SQLSTATE(field[0], field[1], field[2], field[3], field[4]);
		/*
		 * A statement cancelled over there (its statement_timeout) is not a
		 * cancel of this one: keep query_canceled for a real cancel here,
		 * which exception handlers (pipeline.status's) must not swallow.
		 */
		if (sqlerrcode == ERRCODE_QUERY_CANCELED)
			sqlerrcode = ERRCODE_CONNECTION_FAILURE;
		field = last ? PQresultErrorField(last, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		message = pstrdup(field ? field : pchomp(PQerrorMessage(cc->conn)));
		if (last && (field = PQresultErrorField(last, PG_DIAG_MESSAGE_DETAIL)) != NULL)
			detail = pstrdup(field);
		if (last && (field = PQresultErrorField(last, PG_DIAG_MESSAGE_HINT)) != NULL)
			hint = pstrdup(field);
		if (last != NULL)
			PQclear(last);
		ereport(ERROR,
				(errcode(sqlerrcode),
				 errmsg("pg_cron in database \"%s\": %s", cc->database, message),
				 detail ? errdetail_internal("%s", detail) : 0,
				 hint ? errhint("%s", hint) : 0));
	}
	return last;
}

/*
 * Checks, in the pg_cron database, that pg_cron is installed and that the
 * caller may read its jobs and (if may_schedule) create them, so that each
 * missing piece gets an error naming the fix rather than pg_cron's own
 * "permission denied".  The catalogs read here are readable by every role.
 * Returns false, with missing_ok, when pg_cron is not installed there.
 */
static bool
CronCheckAccess(CronConnection *cc, bool may_schedule, bool missing_ok)
{
	PGresult   *res;
	bool		installed;
	bool		usage = false;
	bool		has_function = false;
	bool		may_execute = false;
	const char *quoted_role = quote_identifier(cc->role);

	res = CronQuery(cc,
					"SELECT n.oid IS NOT NULL AND pg_catalog.has_schema_privilege(n.oid, 'USAGE'),"
					"       f.oid IS NOT NULL,"
					"       f.oid IS NOT NULL AND pg_catalog.has_function_privilege(f.oid, 'EXECUTE')"
					"  FROM pg_catalog.pg_extension AS e"
					"  LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname = 'cron'"
					"  LEFT JOIN pg_catalog.pg_proc AS f"
					"    ON f.pronamespace = n.oid AND f.proname = 'schedule_in_database'"
					" WHERE e.extname = 'pg_cron'",
					0, NULL);
	installed = PQntuples(res) > 0;
	if (installed)
	{
		usage = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
		has_function = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
		may_execute = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	}
	PQclear(res);

	if (!installed && missing_ok)
		return false;
	if (!installed)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_cron is not installed in database \"%s\"", cc->database),
				 errdetail("pg_cron keeps its jobs in the database named by cron.database_name."),
				 errhint("Run CREATE EXTENSION pg_cron in database \"%s\" as a superuser.",
						 cc->database)));
	if (!usage)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not use pg_cron in database \"%s\"", cc->role, cc->database),
				 errdetail("Reading and changing pg_cron jobs needs USAGE on schema cron."),
				 errhint("In database \"%s\", a superuser can run: GRANT USAGE ON SCHEMA cron TO %s;",
						 cc->database, quoted_role)));
	if (!may_schedule)
		return true;
	if (!has_function)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("pg_cron in database \"%s\" has no cron.schedule_in_database()", cc->database),
				 errdetail("pipeline schedules jobs in other databases, which needs pg_cron 1.4 or later."),
				 errhint("Run ALTER EXTENSION pg_cron UPDATE in database \"%s\".", cc->database)));
	if (!may_execute)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not schedule pg_cron jobs in other databases", cc->role),
				 errdetail("pg_cron revokes EXECUTE on cron.schedule_in_database() from PUBLIC."),
				 errhint("In database \"%s\", a superuser can run: GRANT EXECUTE ON FUNCTION %s TO %s;",
						 cc->database, SCHEDULE_IN_DATABASE_SIGNATURE, quoted_role)));
	return true;
}

/*
 * What a connection will need, before connecting.  Allocated rather than a
 * local: PG_FINALLY reads the connection that PG_TRY set.
 */
static CronConnection *
CronPrepare(void)
{
	CronConnection *cc = palloc0(sizeof(CronConnection));

	cc->database = CronDatabaseName();
	cc->role = GetUserNameFromId(GetUserId(), false);
	return cc;
}

/* "pipeline:<db>:", the prefix of this database's job names (JobName()) */
static char *
JobPrefix(void)
{
	char	   *dbname = get_database_name(MyDatabaseId);

	if (dbname == NULL)
		elog(ERROR, "could not find the name of the current database");
	return psprintf("pipeline:%s:", dbname);
}

/*
 * Connects for a short look at pg_cron's tables (a status view or
 * housekeeping must not hang on it): statements give up after
 * CRON_JOBS_TIMEOUT.  False, with missing_ok, when pg_cron is not installed
 * there.
 */
static bool
CronOpenShort(CronConnection *cc, bool missing_ok)
{
	const char *timeout[1] = {CRON_JOBS_TIMEOUT};

	CronConnect(cc);
	PQclear(CronQuery(cc, "SELECT pg_catalog.set_config('statement_timeout', $1::text, false)",
					  1, timeout));
	return CronCheckAccess(cc, false, missing_ok);
}

/*
 * pipeline.schedule(close_days_schedule text) creates this database's jobs,
 * or updates their schedule and command.
 */
Datum
pipeline_schedule(PG_FUNCTION_ARGS)
{
	CronConnection *cc;
	char	   *close_days_schedule;
	const char *params[10];
	PGresult   *res;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("close_days_schedule must not be NULL"),
				 errhint("Pass a cron schedule such as '*/5 * * * *', or omit the argument.")));
	close_days_schedule = text_to_cstring(PG_GETARG_TEXT_PP(0));

	/* before connecting: errors that need no round trip come first */
	cc = CronPrepare();
	params[0] = JobName(JOB_CLOSE_DAYS);
	params[1] = close_days_schedule;
	params[2] = JOB_CLOSE_DAYS_COMMAND;
	params[3] = JobName(JOB_MAINTENANCE);
	params[4] = JOB_MAINTENANCE_SCHEDULE;
	params[5] = JOB_MAINTENANCE_COMMAND;
	params[6] = get_database_name(MyDatabaseId);
	params[7] = JobName(JOB_CHECKS);
	params[8] = JOB_CHECKS_SCHEDULE;
	params[9] = JOB_CHECKS_COMMAND;

	PG_TRY();
	{
		CronConnect(cc);
		(void) CronCheckAccess(cc, true, false);
		/* one statement: all jobs change, or none does */
		res = CronQuery(cc,
						"SELECT cron.schedule_in_database($1::text, $2::text, $3::text, $7::text),"
						"       cron.schedule_in_database($4::text, $5::text, $6::text, $7::text),"
						"       cron.schedule_in_database($8::text, $9::text, $10::text, $7::text)",
						10, params);
		PQclear(res);
	}
	PG_FINALLY();
	{
		CronDisconnect(cc);
	}
	PG_END_TRY();

	PG_RETURN_VOID();
}

/*
 * pipeline.unschedule() removes this database's jobs: the caller's own, or,
 * for a superuser, every role's.  Nothing to remove is not an error.
 */
Datum
pipeline_unschedule(PG_FUNCTION_ARGS)
{
	CronConnection *cc;
	const char *params[3];
	PGresult   *res;

	cc = CronPrepare();
	params[0] = JobName(JOB_CLOSE_DAYS);
	params[1] = JobName(JOB_MAINTENANCE);
	params[2] = JobName(JOB_CHECKS);

	PG_TRY();
	{
		CronConnect(cc);
		(void) CronCheckAccess(cc, false, false);
		/* cron.job shows a non-superuser only their own jobs (row security) */
		res = CronQuery(cc,
						"SELECT pg_catalog.count(cron.unschedule(j.jobid))"
						"  FROM cron.job AS j"
						" WHERE j.jobname IN ($1::name, $2::name, $3::name)",
						3, params);
		PQclear(res);
	}
	PG_FINALLY();
	{
		CronDisconnect(cc);
	}
	PG_END_TRY();

	PG_RETURN_VOID();
}

/* a timestamptz from microseconds since the Unix epoch, as text; NULL stays NULL */
static Datum
UnixMicrosToTimestampTz(const PGresult *res, int row, int col, bool *isnull)
{
	*isnull = PQgetisnull(res, row, col);
	if (*isnull)
		return (Datum) 0;
	return TimestampTzGetDatum(pg_strtoint64(PQgetvalue(res, row, col)) -
							   (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY);
}

/* a text column of the remote result; NULL stays NULL */
static Datum
RemoteText(const PGresult *res, int row, int col, bool *isnull)
{
	*isnull = PQgetisnull(res, row, col);
	if (*isnull)
		return (Datum) 0;
	return CStringGetTextDatum(PQgetvalue(res, row, col));
}

/* cron_jobs()'s rows, from the remote result, into the function's tuplestore */
static void
CronJobsStore(FunctionCallInfo fcinfo, const PGresult *res)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			row;

	for (row = 0; row < PQntuples(res); row++)
	{
		Datum		values[10];
		bool		nulls[10];
		int			col;

		values[0] = Int64GetDatum(pg_strtoint64(PQgetvalue(res, row, 0)));
		nulls[0] = false;
		for (col = 1; col <= 4; col++)
			values[col] = RemoteText(res, row, col, &nulls[col]);
		nulls[5] = PQgetisnull(res, row, 5);
		values[5] = BoolGetDatum(!nulls[5] && strcmp(PQgetvalue(res, row, 5), "t") == 0);
		values[6] = UnixMicrosToTimestampTz(res, row, 6, &nulls[6]);
		values[7] = UnixMicrosToTimestampTz(res, row, 7, &nulls[7]);
		values[8] = RemoteText(res, row, 8, &nulls[8]);
		values[9] = RemoteText(res, row, 9, &nulls[9]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * pipeline.cron_jobs(missing_ok boolean) returns this database's pg_cron
 * jobs that the caller may see, each with its latest run.  With missing_ok,
 * pg_cron not loaded, or not installed in its database, is no rows rather
 * than an error; everything else that goes wrong is an error with a hint.
 *
 * The latest run is found walking cron.job_run_details backwards by runid
 * (its primary key), per job: cheap for jobs that ran lately, a scan of the
 * table for one that never ran.  pg_cron never purges that table itself.
 */
Datum
pipeline_cron_jobs(PG_FUNCTION_ARGS)
{
	bool		missing_ok = !PG_ARGISNULL(0) && PG_GETARG_BOOL(0);
	CronConnection *cc;
	const char *params[1];
	PGresult   *volatile res = NULL;

	InitMaterializedSRF(fcinfo, 0);
	if (missing_ok && !CronIsLoaded())
		PG_RETURN_NULL();

	cc = CronPrepare();
	params[0] = JobPrefix();

	PG_TRY();
	{
		if (CronOpenShort(cc, missing_ok))
		{
			/* cron.job and its runs show a plain role only its own (row security) */
			res = CronQuery(cc,
							"SELECT j.jobid, j.jobname, j.username, j.schedule, j.command, j.active,"
							"       (EXTRACT(epoch FROM r.start_time) * 1000000)::pg_catalog.int8,"
							"       (EXTRACT(epoch FROM r.end_time) * 1000000)::pg_catalog.int8,"
							"       r.status, r.return_message"
							"  FROM cron.job AS j"
							"  LEFT JOIN LATERAL ("
							"        SELECT d.start_time, d.end_time, d.status, d.return_message"
							"          FROM cron.job_run_details AS d"
							"         WHERE d.jobid = j.jobid"
							"         ORDER BY d.runid DESC LIMIT 1) AS r ON true"
							" WHERE pg_catalog.starts_with(j.jobname::pg_catalog.text, $1::pg_catalog.text)"
							" ORDER BY j.jobname, j.username",
							1, params);
			CronJobsStore(fcinfo, res);
		}
	}
	PG_FINALLY();
	{
		/* the result is malloc'd: freed on error too */
		if (res != NULL)
			PQclear(res);
		CronDisconnect(cc);
	}
	PG_END_TRY();

	PG_RETURN_NULL();
}

/*
 * pipeline._trim_cron_history(keep interval): deletes the runs of this
 * database's pipeline jobs that ended longer than keep ago from
 * cron.job_run_details (pg_cron never purges it; every five minutes two
 * jobs add a row each).  As the caller: pg_cron's row security lets a role
 * delete only its own jobs' runs.  Returns how many went; NULL when pg_cron
 * is not loaded or not installed, which maintain() does not treat as an
 * error.
 */
PG_FUNCTION_INFO_V1(pipeline_trim_cron_history);
Datum
pipeline_trim_cron_history(PG_FUNCTION_ARGS)
{
	CronConnection *cc;
	const char *params[2];
	PGresult   *volatile res = NULL;
	volatile int64 deleted = -1;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("keep must not be NULL")));
	if (!CronIsLoaded())
		PG_RETURN_NULL();

	cc = CronPrepare();
	params[0] = JobPrefix();
	params[1] = DatumGetCString(DirectFunctionCall1(interval_out, PG_GETARG_DATUM(0)));

	PG_TRY();
	{
		if (CronOpenShort(cc, true))
		{
			res = CronQuery(cc,
							"WITH gone AS ("
							"  DELETE FROM cron.job_run_details AS d"
							"   USING cron.job AS j"
							"   WHERE d.jobid = j.jobid"
							"     AND pg_catalog.starts_with(j.jobname::pg_catalog.text, $1::pg_catalog.text)"
							"     AND d.end_time < pg_catalog.now() - $2::pg_catalog.interval"
							"  RETURNING 1)"
							"SELECT pg_catalog.count(*) FROM gone",
							2, params);
			deleted = pg_strtoint64(PQgetvalue(res, 0, 0));
		}
	}
	PG_FINALLY();
	{
		if (res != NULL)
			PQclear(res);
		CronDisconnect(cc);
	}
	PG_END_TRY();

	if (deleted < 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(deleted);
}
