/*
 * catalog.c
 *	  Reading the extension's own catalog (sources), and the identities the
 *	  ingest steps run as.
 *
 * Three identities take part in an ingest call:
 *	- the caller, who must be a member of pipeline_writer (or a superuser);
 *	- the source owner, who owns the raw and id tables and wrote the
 *	  contract: conversion, CHECK and DEFAULT expressions and the raw writes
 *	  run as that role, never as a superuser;
 *	- the extension owner, for the receipts, dead letters and drift counts,
 *	  which no other role may write to directly.
 * Switching uses SECURITY_LOCAL_USERID_CHANGE, as REFRESH MATERIALIZED VIEW
 * does; an error anywhere restores the caller at transaction abort.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "access/genam.h"

#include "catalog.h"

/* a copy in the context that was current at SPI_connect */
static char *
UpperCopy(const char *s)
{
	char	   *copy = SPI_palloc(strlen(s) + 1);

	strcpy(copy, s);
	return copy;
}

/* SPI must be connected; the result lives in the caller's context */
SourceInfo *
PipelineRequireSource(const char *name)
{
	static SPIPlanPtr plan = NULL;
	static Oid	plan_retention = InvalidOid;
	Oid			retention = get_relname_relid("retention", get_namespace_oid("pipeline", false));
	Datum		arg = CStringGetTextDatum(name);
	SourceInfo *src;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	/*
	 * retained_from: the start of the first local day whose raw events are
	 * still kept (set by maintain(); NULL while nothing was dropped).  The
	 * table came with 0.2.0: until ALTER EXTENSION pipeline UPDATE has made
	 * it, there is no horizon (and the plan is made again once it exists).
	 */
	if (plan == NULL || retention != plan_retention)
	{
		Oid			argtype = TEXTOID;
		SPIPlanPtr	p = SPI_prepare(OidIsValid(retention)
									? "SELECT s.contract_version, s.event_id, s.event_time, s.day_timezone,"
									" s.raw_table::oid, s.ids_table::oid, s.owner::oid,"
									" (r.raw_dropped_through + 1)::timestamp AT TIME ZONE s.day_timezone"
									" FROM pipeline.source_catalog AS s"
									" LEFT JOIN pipeline.retention AS r ON r.source = s.source"
									" WHERE s.source = $1"
									: "SELECT s.contract_version, s.event_id, s.event_time, s.day_timezone,"
									" s.raw_table::oid, s.ids_table::oid, s.owner::oid, NULL::timestamptz"
									" FROM pipeline.source_catalog AS s WHERE s.source = $1",
									1, &argtype);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(p);
		if (plan != NULL)
			SPI_freeplan(plan);
		plan = p;
		plan_retention = retention;
	}
	if (SPI_execute_plan(plan, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pipeline.source_catalog");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("source \"%s\" does not exist", name),
				 errhint("Create it with pipeline.create_source(), or list sources in pipeline.sources.")));

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	src = SPI_palloc(sizeof(SourceInfo));
	src->name = UpperCopy(name);
	src->contract_version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	src->event_id = UpperCopy(SPI_getvalue(tup, desc, 2));
	src->event_time = UpperCopy(SPI_getvalue(tup, desc, 3));
	src->day_timezone = UpperCopy(SPI_getvalue(tup, desc, 4));
	src->raw_relid = DatumGetObjectId(SPI_getbinval(tup, desc, 5, &isnull));
	src->ids_relid = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
	src->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 7, &isnull));
	src->retained_from = DatumGetTimestampTz(SPI_getbinval(tup, desc, 8, &isnull));
	if (isnull)
		TIMESTAMP_NOBEGIN(src->retained_from);
	return src;
}

Oid
PipelineExtensionOwner(void)
{
	static Oid	owner = InvalidOid;
	static Oid	for_extension = InvalidOid;
	Oid			extoid = get_extension_oid("pipeline", false);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	if (extoid == for_extension && OidIsValid(owner))
		return owner;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "extension pipeline not found");
	owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	for_extension = extoid;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return owner;
}

/*
 * Pins search_path to pg_catalog, pg_temp until PipelineUnpinSearchPath
 * (or the end of the transaction): what runs meanwhile resolves no name
 * through a schema the caller controls.  Returns the GUC nesting level to
 * unpin.  A function's SET clause does the same on every call; code that
 * runs per row pins only around its statements.
 */
int
PipelinePinSearchPath(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/* undoes every setting made since PipelinePinSearchPath returned nest */
void
PipelineUnpinSearchPath(int nest)
{
	AtEOXact_GUC(false, nest);
}

/*
 * Runs what follows as another role, with search_path pinned to pg_catalog
 * for as long: the statements run then must not resolve an operator, a
 * function or a type through a schema the caller controls.
 *
 * The switch is a security-restricted operation, as VACUUM and REFRESH
 * MATERIALIZED VIEW make theirs: code that the other role wrote (a CHECK,
 * a trigger on its table, a view it owns) cannot SET ROLE or RESET ROLE
 * back to the session's role, nor create temporary objects that the
 * caller's session would later resolve names through.
 */
void
PipelineBecome(Oid role, RoleSwitch *saved)
{
	GetUserIdAndSecContext(&saved->saved_uid, &saved->saved_sec);
	SetUserIdAndSecContext(role, saved->saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	saved->guc_nest = PipelinePinSearchPath();
}

/*
 * Back to the caller.  Every setting made since PipelineBecome is undone,
 * even a plain SET (as at the end of CREATE INDEX's expression
 * evaluation): nothing the other role's code set outlives the switch.
 */
void
PipelineRestoreRole(RoleSwitch *saved)
{
	PipelineUnpinSearchPath(saved->guc_nest);
	SetUserIdAndSecContext(saved->saved_uid, saved->saved_sec);
}

/*
 * Members of pipeline_writer may ingest (superusers pass too).  EXECUTE on
 * ingest is granted to that role only; this check keeps the rule true if
 * someone grants EXECUTE more widely.
 */
void
PipelineRequireWriter(SourceInfo *src)
{
	Oid			writer = get_role_oid("pipeline_writer", true);
	Oid			me = GetUserId();

	if (OidIsValid(writer) && has_privs_of_role(me, writer))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to ingest into source \"%s\"", src->name),
			 errhint("Ingest needs membership in pipeline_writer: GRANT pipeline_writer TO %s;",
					 quote_identifier(GetUserNameFromId(me, false)))));
}
