/*
 * validate.c
 *	  Checking one event against its source's contract and converting it to
 *	  a row of the raw table.
 *
 * The contract is the raw table's own definition: its columns (minus the
 * internal _pl_ ones), their types, NOT NULL, DEFAULT and CHECK constraints.
 * ContractCompile turns that into input functions and prepared expressions
 * once per batch; ContractConvertEvent then handles one JSON object:
 *	- each column's value is taken from the field of the same name and run
 *	  through the type's input function (JSON null is SQL NULL, a missing
 *	  field takes the column's DEFAULT);
 *	- NOT NULL, the event-time sanity rules and every CHECK constraint are
 *	  evaluated here, so that a bad event becomes a dead letter instead of
 *	  failing the whole INSERT;
 *	- fields the contract does not name are kept in _pl_extra and counted;
 *	  the old name of a renamed column (pipeline.column_aliases) still fills
 *	  it while the new name is absent, so producers not yet updated keep
 *	  working.
 * Rule violations are returned as a Rejection.  Errors raised by input
 * functions or expressions are not caught here: ingest.c runs the loop in a
 * subtransaction and uses current_field to name the culprit.
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/executor.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_oper.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "pipeline.h"
#include "receipts.h"
#include "validate.h"

/* event times before this are not history, they are garbage */
#define MIN_EVENT_TIME_TEXT "1900-01-01 00:00:00+00"

static bool
IsInternalColumn(Form_pg_attribute att)
{
	return att->attisdropped || strncmp(NameStr(att->attname), "_pl_", 4) == 0;
}

static bool NamesDistinct(Contract *c);

static char *
CheckColumns(Relation rel, Node *expr)
{
	Bitmapset  *attrs = NULL;
	StringInfoData buf;
	int			i = -1;

	pull_varattnos(expr, 1, &attrs);
	initStringInfo(&buf);
	while ((i = bms_next_member(attrs, i)) >= 0)
	{
		AttrNumber	attnum = i + FirstLowInvalidHeapAttributeNumber;

		if (attnum <= 0)
			continue;
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfoString(&buf,
							   NameStr(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->attname));
	}
	return buf.data;
}

Contract *
ContractCompile(SourceInfo *src, Relation raw)
{
	TupleDesc	desc = RelationGetDescr(raw);
	Contract   *c = palloc0(sizeof(Contract));
	TupleConstr *constr = desc->constr;
	Oid			lt_opr;

	c->source = src;
	c->estate = CreateExecutorState();
	c->slot = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	c->cols = palloc0(sizeof(ContractColumn) * desc->natts);
	c->id_col = c->time_col = -1;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		ContractColumn *col;
		Oid			infunc;
		Node	   *def;

		if (IsInternalColumn(att))
			continue;
		col = &c->cols[c->ncols];
		col->name = pstrdup(NameStr(att->attname));
		col->attnum = att->attnum;
		col->typid = att->atttypid;
		col->typmod = att->atttypmod;
		col->typbyval = att->attbyval;
		col->typlen = att->attlen;
		col->typalign = att->attalign;
		col->notnull = att->attnotnull;
		getTypeInputInfo(att->atttypid, &infunc, &col->ioparam);
		fmgr_info(infunc, &col->input);
		def = build_column_default(raw, att->attnum);
		if (def != NULL)
			col->default_expr = ExecPrepareExpr((Expr *) def, c->estate);
		if (strcmp(col->name, src->event_id) == 0)
			c->id_col = c->ncols;
		if (strcmp(col->name, src->event_time) == 0)
			c->time_col = c->ncols;
		c->ncols++;
	}
	if (c->id_col < 0 || c->time_col < 0)
		elog(ERROR, "source \"%s\": event-id or event-time column missing from %s",
			 src->name, RelationGetRelationName(raw));

	/* aliases of renamed columns (SPI is connected: we run inside a batch) */
	{
		static SPIPlanPtr plan = NULL;
		Oid			argtype = TEXTOID;
		Datum		arg = CStringGetTextDatum(src->name);
		MemoryContext cxt = CurrentMemoryContext;

		PipelineKeptPlan(&plan, "SELECT alias, column_name FROM pipeline.column_aliases WHERE source = $1",
						 1, &argtype);
		if (SPI_execute_plan(plan, &arg, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read pipeline.column_aliases");
		MemoryContextSwitchTo(cxt);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			char	   *alias = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
			char	   *column = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);

			for (int i = 0; i < c->ncols; i++)
				if (strcmp(c->cols[i].name, column) == 0)
					c->cols[i].aliases = lappend(c->cols[i].aliases, pstrdup(alias));
		}
	}
	c->names_distinct = NamesDistinct(c);

	if (constr != NULL && constr->num_check > 0)
	{
		c->checks = palloc0(sizeof(ContractCheck) * constr->num_check);
		for (int i = 0; i < constr->num_check; i++)
		{
			Node	   *expr = stringToNode(constr->check[i].ccbin);

			c->checks[c->nchecks].name = pstrdup(constr->check[i].ccname);
			c->checks[c->nchecks].columns = CheckColumns(raw, expr);
			c->checks[c->nchecks].expr = ExecPrepareCheck(list_make1(expr), c->estate);
			c->nchecks++;
		}
	}

	/* dedup compares ids with the type's own btree ordering */
	get_sort_group_operators(c->cols[c->id_col].typid, true, true, false,
							 &lt_opr, NULL, NULL, NULL);
	c->id_sort.ssup_cxt = CurrentMemoryContext;
	c->id_sort.ssup_collation = TupleDescAttr(desc, c->cols[c->id_col].attnum - 1)->attcollation;
	PrepareSortSupportFromOrderingOp(lt_opr, &c->id_sort);

	c->min_event_time = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
																CStringGetDatum(MIN_EVENT_TIME_TEXT),
																ObjectIdGetDatum(InvalidOid),
																Int32GetDatum(-1)));
	c->max_event_time = TimestampTzPlusMilliseconds(GetCurrentStatementStartTimestamp(),
													(int64) pipeline_max_future_skew_s * 1000);
	c->retained_from = src->retained_from;
	return c;
}

/* frees what pins the raw table; the column facts stay usable */
void
ContractRelease(Contract *c)
{
	ExecDropSingleTupleTableSlot(c->slot);
	c->slot = NULL;
	FreeExecutorState(c->estate);
	c->estate = NULL;
}

int
ContractCompareIds(Contract *c, Datum a, Datum b)
{
	return ApplySortComparator(a, false, b, false, &c->id_sort);
}

static void
Reject(Rejection *why, int sqlstate, const char *field, const char *fmt,...)
	pg_attribute_printf(4, 5);

static void
Reject(Rejection *why, int sqlstate, const char *field, const char *fmt,...)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	why->error = buf.data;
	why->field = field ? pstrdup(field) : NULL;
	why->sqlstate = sqlstate;
}

static int
Digits(const char *s, int n)
{
	int			v = 0;

	for (int i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * The event-time form producers send almost always, RFC 3339:
 * YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM), parsed without the
 * general datetime machinery (a sixth of the cost of an event).  Anything
 * else, or any doubt, returns false and goes to timestamptz_in.
 */
static bool
ParseRfc3339(const char *s, int len, TimestampTz *result)
{
	int			year, mon, day, hour, min, sec, usec = 0, offset = 0, west;
	int			i = 19;
	struct pg_tm tm;

	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') ||
		s[13] != ':' || s[16] != ':')
		return false;
	year = Digits(s, 4);
	mon = Digits(s + 5, 2);
	day = Digits(s + 8, 2);
	hour = Digits(s + 11, 2);
	min = Digits(s + 14, 2);
	sec = Digits(s + 17, 2);
	if (year < 1 || mon < 1 || mon > 12 || day < 1 || hour < 0 || hour > 23 ||
		min < 0 || min > 59 || sec < 0 || sec > 59)
		return false;
	if (s[i] == '.')
	{
		int			scale = 100000;

		i++;
		if (i >= len || s[i] < '0' || s[i] > '9')
			return false;
		while (i < len && s[i] >= '0' && s[i] <= '9')
		{
			if (scale == 0)
				return false;	/* more than microseconds: let the parser round */
			usec += (s[i] - '0') * scale;
			scale /= 10;
			i++;
		}
	}
	if (i < len && s[i] == 'Z' && i + 1 == len)
		offset = 0;
	else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':')
	{
		int			oh = Digits(s + i + 1, 2);
		int			om = Digits(s + i + 4, 2);

		if (oh < 0 || oh > 15 || om < 0 || om > 59)
			return false;
		offset = (oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
	}
	else
		return false;
	if (day > day_tab[isleap(year)][mon - 1])
		return false;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year;
	tm.tm_mon = mon;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	/* tm2timestamp takes the zone as seconds west of UTC */
	west = -offset;
	return tm2timestamp(&tm, usec, &west, result) == 0 && IS_VALID_TIMESTAMP(*result);
}

/* the text a JSON value gives to a type's input function */
static char *
JsonValueText(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		case jbvBinary:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
		default:
			return NULL;
	}
}

static bool
SameName(const char *a, const char *name, int len)
{
	/* the first byte settles most comparisons of an event's keys */
	if (len == 0)
		return a[0] == '\0';
	return a[0] == name[0] && strncmp(a, name, len) == 0 && a[len] == '\0';
}

/* whether a field of this name fills the column: its name or an alias */
static bool
NamesColumn(ContractColumn *col, const char *name, int len)
{
	ListCell   *lc;

	if (SameName(col->name, name, len))
		return true;
	foreach(lc, col->aliases)
		if (SameName(lfirst(lc), name, len))
			return true;
	return false;
}

/* the column a field fills, by name or by an alias; -1 for an unknown field */
static int
FindColumn(Contract *c, const char *name, int len)
{
	for (int i = 0; i < c->ncols; i++)
		if (NamesColumn(&c->cols[i], name, len))
			return i;
	return -1;
}

/* whether every name and alias fills one column only */
static bool
NamesDistinct(Contract *c)
{
	for (int i = 0; i < c->ncols; i++)
	{
		ListCell   *lc;

		for (int j = 0; j < c->ncols; j++)
		{
			if (j == i)
				continue;
			if (NamesColumn(&c->cols[j], c->cols[i].name, strlen(c->cols[i].name)))
				return false;
			foreach(lc, c->cols[i].aliases)
				if (NamesColumn(&c->cols[j], lfirst(lc), strlen(lfirst(lc))))
					return false;
		}
	}
	return true;
}

/* the field of a column, or else of one of its aliases */
static JsonbValue *
FindField(JsonbContainer *event, ContractColumn *col)
{
	JsonbValue	key;
	JsonbValue *v;
	ListCell   *lc;

	key.type = jbvString;
	key.val.string.val = col->name;
	key.val.string.len = strlen(col->name);
	v = findJsonbValueFromContainer(event, JB_FOBJECT, &key);
	foreach(lc, col->aliases)
	{
		if (v != NULL)
			break;
		key.val.string.val = lfirst(lc);
		key.val.string.len = strlen(lfirst(lc));
		v = findJsonbValueFromContainer(event, JB_FOBJECT, &key);
	}
	return v;
}

static void
CountDrift(DriftCounter *drift, const char *name, int len)
{
	DriftEntry *e;
	char		key[NAMEDATALEN * 2];
	bool		found;

	/* long field names are counted by their first 127 bytes, cut on a character boundary */
	len = pg_mbcliplen(name, len, (int) sizeof(key) - 1);
	memset(key, 0, sizeof(key));
	memcpy(key, name, len);
	e = hash_search(drift->fields, key, HASH_ENTER, &found);
	if (!found)
		e->count = 0;
	e->count++;
}

/*
 * Keeps the fields the contract does not name, as a jsonb object, and
 * counts them.  Returns false when there are none.
 */
static bool
CollectUnknownFields(Contract *c, JsonbContainer *event, Datum *extra,
					 DriftCounter *drift)
{
	JsonbIterator *it = JsonbIteratorInit(event);
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue	key;
	JsonbIteratorToken tok;
	bool		any = false;
	bool		keep = false;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			keep = FindColumn(c, v.val.string.val, v.val.string.len) < 0;
			key = v;
		}
		else if (tok == WJB_VALUE && keep)
		{
			if (!any)
				pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
			any = true;
			pushJsonbValue(&state, WJB_KEY, &key);
			pushJsonbValue(&state, WJB_VALUE, &v);
			CountDrift(drift, key.val.string.val, key.val.string.len);
		}
	}
	if (any)
		*extra = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
	return any;
}

/*
 * Converts field v (NULL: missing) into column i.  Returns false with *why
 * set when the event is to be rejected.  May throw (input functions,
 * DEFAULT expressions): c->current_field names the field.
 */
static bool
ConvertColumn(Contract *c, int i, JsonbValue *v, Datum *values, bool *nulls, Rejection *why)
{
	ContractColumn *col = &c->cols[i];
	ExprContext *econtext = GetPerTupleExprContext(c->estate);
	char	   *text;
	TimestampTz ts;

	c->current_field = col->name;
	if (v == NULL)
	{
		if (col->default_expr != NULL)
		{
			values[i] = ExecEvalExprSwitchContext(col->default_expr, econtext, &nulls[i]);
			if (!nulls[i] && !col->typbyval)
				values[i] = datumCopy(values[i], false, col->typlen);
		}
		else
			nulls[i] = true;
		if (nulls[i] && (col->notnull || i == c->id_col || i == c->time_col))
		{
			Reject(why, ERRCODE_NOT_NULL_VIOLATION, col->name,
				   "field \"%s\" is missing and is required", col->name);
			return false;
		}
		return true;
	}
	if (v->type == jbvNull)
	{
		nulls[i] = true;
		if (col->notnull || i == c->id_col || i == c->time_col)
		{
			Reject(why, ERRCODE_NOT_NULL_VIOLATION, col->name,
				   "field \"%s\" is null and is required", col->name);
			return false;
		}
		return true;
	}
	nulls[i] = false;
	/*
	 * An object or array is a value for json, jsonb and string columns
	 * (which keep its JSON text), not for others: their input functions
	 * would read its text ("[2026-01-01]" is a date to timestamptz_in).
	 */
	if (v->type == jbvBinary && col->typid != JSONBOID && col->typid != JSONOID &&
		TypeCategory(col->typid) != TYPCATEGORY_STRING)
	{
		Reject(why, ERRCODE_INVALID_TEXT_REPRESENTATION, col->name,
			   "field \"%s\" is a JSON %s where %s is expected", col->name,
			   JsonContainerIsArray(v->val.binary.data) ? "array" : "object",
			   format_type_be(col->typid));
		return false;
	}
	if (col->typid == TIMESTAMPTZOID && v->type == jbvString &&
		ParseRfc3339(v->val.string.val, v->val.string.len, &ts))
	{
		values[i] = TimestampTzGetDatum(ts);
		return true;
	}
	/*
	 * An object or array for a jsonb column is taken as it is: the batch's
	 * parse already made it canonical jsonb, which a round trip through its
	 * text and jsonb_in would only rebuild (a tenth of the ingest of an
	 * event with a properties object).
	 */
	if (col->typid == JSONBOID && v->type == jbvBinary)
	{
		values[i] = JsonbPGetDatum(JsonbValueToJsonb(v));
		return true;
	}
	text = JsonValueText(v);
	values[i] = InputFunctionCall(&col->input, text, col->ioparam, col->typmod);
	return true;
}

/*
 * What holds for the whole converted event: a sane event time, inside the
 * dedup horizon, and the contract's CHECK constraints.  Returns false with
 * *why set when the event is to be rejected; may throw (CHECKs).
 */
static bool
CheckConvertedEvent(Contract *c, Datum *values, bool *nulls, Rejection *why)
{
	ExprContext *econtext = GetPerTupleExprContext(c->estate);
	TupleTableSlot *slot = c->slot;

	/* event time: finite, not absurdly old, not beyond the future skew */
	{
		TimestampTz t = DatumGetTimestampTz(values[c->time_col]);
		const char *name = c->cols[c->time_col].name;

		if (TIMESTAMP_NOT_FINITE(t))
		{
			Reject(why, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, name,
				   "field \"%s\" is infinite", name);
			return false;
		}
		if (t < c->min_event_time)
		{
			Reject(why, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, name,
				   "field \"%s\" is before 1900-01-01", name);
			return false;
		}
		if (t > c->max_event_time)
		{
			Reject(why, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, name,
				   "field \"%s\" is %s, further in the future than pipeline.max_future_skew allows",
				   name, timestamptz_to_str(t));
			return false;
		}

		/*
		 * The dedup horizon: the raw events and ids of that day were
		 * dropped by retention, so a re-sent event could no longer be told
		 * from a new one.  Never accepted a second time: a dead letter.
		 */
		if (t < c->retained_from)
		{
			/* (timestamptz_to_str returns one static buffer) */
			char	   *when = pstrdup(timestamptz_to_str(t));
			char	   *kept = pstrdup(timestamptz_to_str(c->retained_from));

			Reject(why, ERRCODE_DATETIME_VALUE_OUT_OF_RANGE, name,
				   "field \"%s\" is %s, on a day past the source's raw retention (raw events are kept from %s on): "
				   "that day's events were dropped, so this one cannot be deduplicated against them",
				   name, when, kept);
			return false;
		}
	}

	/* CHECK constraints, on a row shaped like the raw table */
	if (c->nchecks > 0)
	{
		ExecClearTuple(slot);
		memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
		for (int i = 0; i < c->ncols; i++)
		{
			slot->tts_values[c->cols[i].attnum - 1] = values[i];
			slot->tts_isnull[c->cols[i].attnum - 1] = nulls[i];
		}
		ExecStoreVirtualTuple(slot);
		econtext->ecxt_scantuple = slot;
		for (int k = 0; k < c->nchecks; k++)
		{
			c->current_field = c->checks[k].columns;
			if (!ExecCheck(c->checks[k].expr, econtext))
			{
				Reject(why, ERRCODE_CHECK_VIOLATION, c->checks[k].columns,
					   "field \"%s\" violates check constraint \"%s\"",
					   c->checks[k].columns, c->checks[k].name);
				return false;
			}
		}
		c->current_field = NULL;
	}
	return true;
}

/*
 * Converts one event given as its columns' fields: fields[i] is the JSON
 * value of column i, NULL when the event has none (a missing field: the
 * DEFAULT applies).  Returns true with values/nulls filled, or false with
 * *why set.  May throw (input functions, CHECK expressions): the caller's
 * subtransaction catches it, c->current_field names the field.
 */
bool
ContractConvertValues(Contract *c, JsonbValue **fields, Datum *values, bool *nulls, Rejection *why)
{
	ResetExprContext(GetPerTupleExprContext(c->estate));
	for (int i = 0; i < c->ncols; i++)
		if (!ConvertColumn(c, i, fields[i], values, nulls, why))
			return false;
	c->current_field = NULL;
	return CheckConvertedEvent(c, values, nulls, why);
}

/* Converts one JSON object; its unknown fields go to *extra */
bool
ContractConvertEvent(Contract *c, JsonbContainer *event,
					 Datum *values, bool *nulls,
					 Datum *extra, bool *extra_null,
					 DriftCounter *drift, Rejection *why)
{
	JsonbValue **fields = palloc(sizeof(JsonbValue *) * c->ncols);

	for (int i = 0; i < c->ncols; i++)
		fields[i] = FindField(event, &c->cols[i]);
	if (!ContractConvertValues(c, fields, values, nulls, why))
		return false;
	*extra_null = !CollectUnknownFields(c, event, extra, drift);
	return true;
}

/*
 * Converts one row of the bulk path: fields[field_of[i]] is the text of
 * column i, NULL when the row has none (a missing field: the DEFAULT
 * applies); field_of[i] < 0 when the row has no such column.  A row has
 * no unknown fields.
 */
bool
ContractConvertFields(Contract *c, char **fields, const int *field_of,
					  Datum *values, bool *nulls, Rejection *why)
{
	JsonbValue **v = palloc(sizeof(JsonbValue *) * c->ncols);
	JsonbValue *strings = palloc(sizeof(JsonbValue) * c->ncols);

	for (int i = 0; i < c->ncols; i++)
	{
		char	   *text = field_of[i] >= 0 ? fields[field_of[i]] : NULL;

		v[i] = NULL;
		if (text != NULL)
		{
			v[i] = &strings[i];
			v[i]->type = jbvString;
			v[i]->val.string.val = text;
			v[i]->val.string.len = strlen(text);
		}
	}
	return ContractConvertValues(c, v, values, nulls, why);
}

/*
 * The column a top-level field fills: -1 for an unknown field, -2 for a
 * name that fills more than one column (a column's name that is also
 * another's alias, which the jsonb path resolves column by column).
 */
int
ContractFieldColumn(Contract *c, const char *name, int len, int guess)
{
	int			found = -1;

	/*
	 * Producers send an event's keys in one order, mostly the contract's:
	 * the caller's guess (the column after the previous key's) settles most
	 * keys with one comparison when no name fills two columns.
	 */
	if (c->names_distinct)
	{
		if (guess >= 0 && guess < c->ncols && NamesColumn(&c->cols[guess], name, len))
			return guess;
		return FindColumn(c, name, len);
	}

	for (int i = 0; i < c->ncols; i++)
	{
		if (!NamesColumn(&c->cols[i], name, len))
			continue;
		if (found >= 0)
			return -2;
		found = i;
	}
	return found;
}

/* the column named name (or an alias of it); -1 if none */
int
ContractColumnByName(Contract *c, const char *name)
{
	return FindColumn(c, name, strlen(name));
}
