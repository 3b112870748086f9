/*
 * evolve.c
 *	  Checking and applying one change to a source's contract.
 *
 * A change is written as the tail of an ALTER TABLE and parsed with
 * PostgreSQL's grammar ("ALTER TABLE pipeline_contract <change>"), one
 * command only.  What is compatible for producers and for the raw events
 * already stored:
 *	ADD COLUMN c type [DEFAULT ...] [CHECK ...]	nullable, or NOT NULL with
 *											a DEFAULT (producers that do not
 *											send it yet keep working)
 *	RENAME COLUMN a TO b					the old name stays an alias
 *	ALTER COLUMN c TYPE t					widening only: int2 < int4 < int8
 *											< numeric, float4 < float8,
 *											varchar(n) < varchar(m > n) < text,
 *											numeric(p,s) to one holding it
 *	ALTER COLUMN c DROP NOT NULL
 *	DROP COLUMN c
 * Everything else is refused with what it would break.  Whether a metric
 * uses the column is evolve_source's (SQL) business, checked before the
 * change is applied.  pipeline._evolve_check() classifies a change;
 * pipeline._evolve_apply() executes the checked parse tree on the raw table
 * (and on the id table when the event id's type widens): the user's text is
 * never spliced into another statement.
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "pipeline.h"

typedef struct Change
{
	Node	   *stmt;			/* AlterTableStmt or RenameStmt, to execute */
	const char *kind;			/* add_column, rename_column, alter_type, ... */
	char	   *column;
	char	   *new_name;		/* rename */
	Oid			new_type;		/* alter_type */
	int32		new_typmod;
} Change;

static void
Refuse(const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("incompatible contract change: %s", what),
			 detail ? errdetail("%s", detail) : 0,
			 errhint("Compatible changes: ADD COLUMN (nullable or with a DEFAULT), RENAME COLUMN a TO b, "
					 "a widening ALTER COLUMN c TYPE, ALTER COLUMN c DROP NOT NULL, DROP COLUMN.")));
}

static Form_pg_attribute
ColumnOf(Relation rel, const char *name)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);

	if (attnum <= 0 || strncmp(name, "_pl_", 4) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" is not in the contract", name)));
	return TupleDescAttr(RelationGetDescr(rel), attnum - 1);
}

/* numeric typmods: precision and scale; -1 is unconstrained */
static bool
NumericHolds(int32 to, int32 from)
{
	int			fp,
				fs,
				tp,
				ts;

	if (to < 0)
		return true;
	if (from < 0)
		return false;
	fp = ((from - VARHDRSZ) >> 16) & 0xffff;
	fs = (from - VARHDRSZ) & 0xffff;
	tp = ((to - VARHDRSZ) >> 16) & 0xffff;
	ts = (to - VARHDRSZ) & 0xffff;
	return ts >= fs && (tp - ts) >= (fp - fs);
}

/* can every value of the old type be stored, unchanged, in the new one? */
static bool
Widens(Oid from, int32 from_mod, Oid to, int32 to_mod)
{
	if (from == to)
	{
		if (to == NUMERICOID)
			return NumericHolds(to_mod, from_mod);
		if (to == VARCHAROID)
			return to_mod < 0 || (from_mod >= 0 && to_mod >= from_mod);
		return to_mod == from_mod || to_mod < 0;
	}
	switch (from)
	{
		case INT2OID:
			return to == INT4OID || to == INT8OID || (to == NUMERICOID && to_mod < 0);
		case INT4OID:
			return to == INT8OID || (to == NUMERICOID && to_mod < 0);
		case INT8OID:
			return to == NUMERICOID && to_mod < 0;
		case FLOAT4OID:
			return to == FLOAT8OID;
		case VARCHAROID:
			return to == TEXTOID;
		default:
			return false;
	}
}

static Change *
ParseChange(Relation raw, const char *change)
{
	char	   *sql = psprintf("ALTER TABLE pipeline_contract\n%s\n", change);
	List	   *parsed = ParseOrExplain(sql);
	Node	   *stmt;
	Change	   *c = palloc0(sizeof(Change));

	if (list_length(parsed) != 1)
		Refuse("it must be one change", NULL);
	stmt = ((RawStmt *) linitial(parsed))->stmt;
	c->stmt = stmt;

	if (IsA(stmt, RenameStmt))
	{
		RenameStmt *r = (RenameStmt *) stmt;

		if (r->renameType != OBJECT_COLUMN)
			Refuse("only columns can be renamed", NULL);
		(void) ColumnOf(raw, r->subname);
		if (strncmp(r->newname, "_pl_", 4) == 0)
			Refuse(psprintf("column name \"%s\" is reserved", r->newname), NULL);
		r->relation = makeRangeVar("pipeline", RelationGetRelationName(raw), -1);
		c->kind = "rename_column";
		c->column = r->subname;
		c->new_name = r->newname;
		return c;
	}
	if (!IsA(stmt, AlterTableStmt) || list_length(((AlterTableStmt *) stmt)->cmds) != 1)
		Refuse("it must be one ALTER TABLE command", NULL);

	{
		AlterTableStmt *a = (AlterTableStmt *) stmt;
		AlterTableCmd *cmd = linitial_node(AlterTableCmd, a->cmds);

		a->relation = makeRangeVar("pipeline", RelationGetRelationName(raw), -1);
		switch (cmd->subtype)
		{
			case AT_AddColumn:
				{
					ColumnDef  *col = castNode(ColumnDef, cmd->def);
					ListCell   *lc;
					bool		not_null = col->is_not_null;
					bool		has_default = col->raw_default != NULL;

					if (strncmp(col->colname, "_pl_", 4) == 0)
						Refuse(psprintf("column name \"%s\" is reserved", col->colname), NULL);
					if (cmd->missing_ok)
						Refuse("ADD COLUMN IF NOT EXISTS is not a contract change", NULL);
					foreach(lc, col->constraints)
					{
						Constraint *k = lfirst_node(Constraint, lc);

						CheckConstraint(k, col->colname);
						not_null |= (k->contype == CONSTR_NOTNULL);
						has_default |= (k->contype == CONSTR_DEFAULT);
					}
					if (not_null && !has_default)
						Refuse(psprintf("a new NOT NULL column \"%s\" without a DEFAULT", col->colname),
							   "Every producer that does not send it yet would have all its events rejected. "
							   "Add it nullable, or with a DEFAULT.");
					c->kind = "add_column";
					c->column = col->colname;
					return c;
				}
			case AT_AlterColumnType:
				{
					ColumnDef  *def = castNode(ColumnDef, cmd->def);
					Form_pg_attribute att = ColumnOf(raw, cmd->name);
					Oid			typid;
					int32		typmod;

					if (def->raw_default != NULL || def->collClause != NULL)
						Refuse("USING and COLLATE are not allowed in a type change", NULL);
					typenameTypeIdAndMod(NULL, def->typeName, &typid, &typmod);
					if (!Widens(att->atttypid, att->atttypmod, typid, typmod))
						Refuse(psprintf("column \"%s\" from %s to %s is not a widening",
										cmd->name, format_type_with_typemod(att->atttypid, att->atttypmod),
										format_type_with_typemod(typid, typmod)),
							   "Stored events or producers' values might not fit the new type.");
					c->kind = "alter_type";
					c->column = cmd->name;
					c->new_type = typid;
					c->new_typmod = typmod;
					return c;
				}
			case AT_DropNotNull:
				(void) ColumnOf(raw, cmd->name);
				c->kind = "drop_not_null";
				c->column = cmd->name;
				return c;
			case AT_DropColumn:
				(void) ColumnOf(raw, cmd->name);
				if (cmd->behavior == DROP_CASCADE)
					Refuse("DROP COLUMN ... CASCADE is not allowed", NULL);
				c->kind = "drop_column";
				c->column = cmd->name;
				return c;
			case AT_SetNotNull:
				Refuse(psprintf("SET NOT NULL on \"%s\"", cmd->name),
					   "Producers that leave it out would have their events rejected.");
				break;
			case AT_AddConstraint:
				Refuse("adding a constraint to existing columns",
					   "Producers' events that were valid would be rejected.");
				break;
			default:
				Refuse("this kind of ALTER TABLE is not a contract change", NULL);
		}
	}
	return c;					/* not reached */
}

static Datum
Describe(Change *c)
{
	JsonbParseState *state = NULL;
	const char *keys[] = {"kind", "column", "new_name", "new_type"};
	const char *vals[4];

	vals[0] = c->kind;
	vals[1] = c->column;
	vals[2] = c->new_name;
	vals[3] = OidIsValid(c->new_type) ? format_type_with_typemod(c->new_type, c->new_typmod) : NULL;
	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < 4; i++)
	{
		JsonbValue	k;
		JsonbValue	v;

		k.type = jbvString;
		k.val.string.val = (char *) keys[i];
		k.val.string.len = strlen(keys[i]);
		(void) pushJsonbValue(&state, WJB_KEY, &k);
		if (vals[i] == NULL)
			v.type = jbvNull;
		else
		{
			v.type = jbvString;
			v.val.string.val = (char *) vals[i];
			v.val.string.len = strlen(vals[i]);
		}
		(void) pushJsonbValue(&state, WJB_VALUE, &v);
	}
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}

/* pipeline._evolve_check(raw regclass, change text) RETURNS jsonb */
PG_FUNCTION_INFO_V1(pipeline_evolve_check);
Datum
pipeline_evolve_check(PG_FUNCTION_ARGS)
{
	Relation	raw = table_open(PG_GETARG_OID(0), AccessShareLock);
	Change	   *c = ParseChange(raw, text_to_cstring(PG_GETARG_TEXT_PP(1)));
	Datum		result = Describe(c);

	table_close(raw, AccessShareLock);
	PG_RETURN_DATUM(result);
}

/*
 * pipeline._evolve_apply(raw regclass, ids regclass, event_id text, change text)
 *	  Executes the checked change on the raw table; a widening of the
 *	  event-id column widens the id table's key too.
 */
PG_FUNCTION_INFO_V1(pipeline_evolve_apply);
Datum
pipeline_evolve_apply(PG_FUNCTION_ARGS)
{
	Oid			raw_relid = PG_GETARG_OID(0);
	Oid			ids_relid = PG_GETARG_OID(1);
	char	   *event_id = text_to_cstring(PG_GETARG_TEXT_PP(2));
	Relation	raw = table_open(raw_relid, AccessShareLock);
	Change	   *c = ParseChange(raw, text_to_cstring(PG_GETARG_TEXT_PP(3)));

	table_close(raw, NoLock);
	ExecuteUtility(c->stmt, "ALTER TABLE (pipeline contract change)");

	if (strcmp(c->kind, "alter_type") == 0 && strcmp(c->column, event_id) == 0)
	{
		AlterTableStmt *a = makeNode(AlterTableStmt);
		AlterTableCmd *cmd = makeNode(AlterTableCmd);
		ColumnDef  *def = makeColumnDef("event_id", c->new_type, c->new_typmod, InvalidOid);

		cmd->subtype = AT_AlterColumnType;
		cmd->name = "event_id";
		cmd->def = (Node *) def;
		a->relation = makeRangeVar("pipeline", get_rel_name(ids_relid), -1);
		a->cmds = list_make1(cmd);
		a->objtype = OBJECT_TABLE;
		ExecuteUtility((Node *) a, "ALTER TABLE (pipeline id table)");
	}
	PG_RETURN_DATUM(Describe(c));
}
