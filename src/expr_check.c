/*
 * expr_check.c
 *	  Validation of user-supplied metric definitions: measures, filter and
 *	  dimensions.
 *
 * A measure list such as
 *	  count(*) AS orders, sum(amount) AS revenue, count(DISTINCT user_id) AS buyers
 * is parsed with PostgreSQL's grammar as the target list of a SELECT and
 * checked in two passes:
 *	1. on the raw parse tree, an allowlist: each item is count/sum/min/max/avg
 *	   (DISTINCT only with count) of one argument made of columns, constants,
 *	   casts, operators, CASE, COALESCE/NULLIF/GREATEST/LEAST and a short list
 *	   of functions, all unqualified.  Anything else (subqueries, other
 *	   functions, qualified names, parameters, window or ordered aggregates,
 *	   FROM/WHERE clauses, several statements) is refused by name;
 *	2. the same tree, given our own FROM pipeline.<source>_raw, is analysed
 *	   with search_path pinned to pg_catalog, so names resolve to built-ins
 *	   only; the result must reference no column outside the source and call
 *	   only immutable functions.
 * Each argument is then deparsed from the analysed tree (ruleutils), and it
 * is that canonical text, never the user's, that goes into the generated
 * fold statement.  The filter is one boolean expression checked the same way.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/analyze.h"
#include "parser/parser.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"

#include "catalog.h"
#include "pipeline.h"

/* functions a measure argument or filter may call (all immutable here) */
static const char *const AllowedFunctions[] = {
	"abs", "round", "trunc", "floor", "ceil", "ceiling", "sign", "mod",
	"lower", "upper", "length", "char_length", "substr", "substring", "left", "right",
	"btrim", "ltrim", "rtrim", "replace", "split_part", "starts_with", "concat",
	"date_part", "extract", "date_bin", "timezone",
	NULL
};

static const char *const Aggregates[] = {"count", "sum", "min", "max", "avg", "percentile_cont", NULL};

typedef struct CheckState
{
	const char *what;			/* "measure \"revenue\"" or "filter" */
	Oid			raw_relid;		/* the one relation expressions may read */
	List	   *columns;		/* names of the source columns read, for evolve_source */
} CheckState;

static void
Refuse(CheckState *st, const char *fmt,...) pg_attribute_printf(2, 3);

static void
Refuse(CheckState *st, const char *fmt,...)
{
	char		buf[512];
	va_list		args;

	va_start(args, fmt);
	vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s: %s", st->what, buf),
			 errhint("Measures are count(*), count(x), count(DISTINCT x), sum(x), min(x), max(x), "
					 "avg(x) and percentile_cont(p) WITHIN GROUP (ORDER BY x), each optionally with "
					 "FILTER (WHERE condition), where x and the condition use source columns, constants, "
					 "arithmetic, casts, CASE and simple immutable functions such as lower() or round().")));
}

static bool
InList(const char *name, const char *const *list)
{
	for (int i = 0; list[i] != NULL; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

static const char *
SingleName(List *names)
{
	if (list_length(names) != 1)
		return NULL;
	return strVal(linitial(names));
}

/* pass 1: the allowlist on the raw parse tree of an argument or filter */
static bool
CheckRawExpr(Node *node, CheckState *st)
{
	if (node == NULL)
		return false;

	switch (nodeTag(node))
	{
		case T_ColumnRef:
			{
				ColumnRef  *ref = (ColumnRef *) node;

				if (list_length(ref->fields) != 1 || !IsA(linitial(ref->fields), String))
					Refuse(st, "only plain column names of the source may be referenced");
				return false;
			}
		case T_A_Const:
		case T_BoolExpr:
		case T_NullTest:
		case T_BooleanTest:
		case T_CaseExpr:
		case T_CaseWhen:
		case T_CoalesceExpr:
		case T_MinMaxExpr:
		case T_List:
			break;
		case T_TypeCast:
			{
				TypeCast   *tc = (TypeCast *) node;

				if (list_length(tc->typeName->names) > 2 ||
					(list_length(tc->typeName->names) == 2 &&
					 strcmp(strVal(linitial(tc->typeName->names)), "pg_catalog") != 0))
					Refuse(st, "casts to types outside pg_catalog are not allowed");
				return CheckRawExpr(tc->arg, st);
			}
		case T_A_Expr:
			{
				A_Expr	   *e = (A_Expr *) node;

				if (e->kind == AEXPR_OP_ANY || e->kind == AEXPR_OP_ALL)
					Refuse(st, "ANY/ALL comparisons are not allowed");
				if (SingleName(e->name) == NULL)
					Refuse(st, "schema-qualified operators are not allowed");
				break;
			}
		case T_FuncCall:
			{
				FuncCall   *fc = (FuncCall *) node;
				const char *name = SingleName(fc->funcname);

				if (name == NULL)
					Refuse(st, "schema-qualified functions are not allowed");
				if (InList(name, Aggregates))
					Refuse(st, "aggregate %s() is not allowed inside an expression", name);
				if (!InList(name, AllowedFunctions))
					Refuse(st, "function %s() is not allowed", name);
				if (fc->agg_order || fc->agg_filter || fc->over || fc->agg_star || fc->agg_distinct)
					Refuse(st, "function %s() cannot take ORDER BY, FILTER, OVER, * or DISTINCT", name);
				break;
			}
		case T_SubLink:
			Refuse(st, "subqueries are not allowed");
			break;
		case T_ParamRef:
			Refuse(st, "parameters are not allowed");
			break;
		case T_SQLValueFunction:
			Refuse(st, "CURRENT_USER, CURRENT_TIMESTAMP and similar are not allowed");
			break;
		default:
			Refuse(st, "this kind of expression is not allowed");
	}
	return raw_expression_tree_walker(node, CheckRawExpr, st);
}

/* pass 2, after analysis: only immutable functions, pg_catalog's only */
static bool
CheckFunctionWalker(Oid funcid, void *context)
{
	CheckState *st = context;

	if (get_func_namespace(funcid) != PG_CATALOG_NAMESPACE)
		Refuse(st, "function %s is not a built-in function", get_func_name(funcid));
	if (func_volatile(funcid) != PROVOLATILE_IMMUTABLE)
		Refuse(st, "function %s is not immutable", get_func_name(funcid));
	return false;
}

static Oid
TypeNamespace(Oid typid)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	Oid			nsp;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for type %u", typid);
	nsp = ((Form_pg_type) GETSTRUCT(tup))->typnamespace;
	ReleaseSysCache(tup);
	return nsp;
}

/*
 * Types: the fold runs as the metric's owner, but close_days and
 * restate_day evaluate the same expressions as the extension owner.  A
 * domain's CHECK is code its creator wrote, so no cast to a domain outside
 * pg_catalog; and nothing of a temporary schema (pg_temp is on the pinned
 * search_path, last, and is searched for types).
 */
static void
CheckExprType(Node *node, CheckState *st)
{
	Oid			typid = exprType(node);

	if (OidIsValid(typid) && isAnyTempNamespace(TypeNamespace(typid)))
		Refuse(st, "type %s is a temporary type", format_type_be(typid));
	if (IsA(node, CoerceToDomain) &&
		TypeNamespace(((CoerceToDomain *) node)->resulttype) != PG_CATALOG_NAMESPACE)
		Refuse(st, "casts to domain %s are not allowed: its CHECK would run wherever the metric is computed",
			   format_type_be(((CoerceToDomain *) node)->resulttype));
}

static bool
CheckAnalyzedExpr(Node *node, CheckState *st)
{
	if (node == NULL)
		return false;
	(void) check_functions_in_node(node, CheckFunctionWalker, st);
	/* the nodes a cast becomes */
	if (IsA(node, Const) || IsA(node, FuncExpr) || IsA(node, RelabelType) ||
		IsA(node, CoerceViaIO) || IsA(node, ArrayCoerceExpr) || IsA(node, CoerceToDomain))
		CheckExprType(node, st);
	if (IsA(node, Var))
	{
		Var		   *var = (Var *) node;
		char	   *name = var->varattno > 0 ? get_attname(st->raw_relid, var->varattno, false) : NULL;

		if (name == NULL || strncmp(name, "_pl_", 4) == 0)
			Refuse(st, "only the source's contract columns may be referenced");
		if (!list_member(st->columns, makeString(name)))
			st->columns = lappend(st->columns, makeString(name));
	}

	return expression_tree_walker(node, CheckAnalyzedExpr, st);
}

typedef struct AnalyzeCall
{
	RawStmt    *raw;
	Query	   *query;
} AnalyzeCall;

static void
AnalyzeStep(void *arg)
{
	AnalyzeCall *call = arg;
	int			nest = PipelinePinSearchPath();

	call->query = parse_analyze_fixedparams(call->raw, "SELECT (pipeline metric definition)",
											NULL, 0, NULL);
	PipelineUnpinSearchPath(nest);
}

/*
 * Analyses "SELECT <targets> FROM pipeline.<raw>" built from the checked
 * parse tree, with search_path pinned to pg_catalog.  The analyzer's own
 * errors (an unknown column, no such operator) are restated as errors in
 * the definition.
 */
static Query *
AnalyzeAgainstRaw(SelectStmt *select, Oid raw_relid, CheckState *st)
{
	AnalyzeCall call;
	ErrorData  *edata;

	select->fromClause = list_make1(makeRangeVar("pipeline", get_rel_name(raw_relid), -1));
	call.raw = makeNode(RawStmt);
	call.raw->stmt = (Node *) select;
	call.raw->stmt_location = -1;
	call.raw->stmt_len = -1;
	call.query = NULL;
	edata = PipelineCatchError(AnalyzeStep, &call);
	if (edata != NULL)
		Refuse(st, "%s", edata->message);
	return call.query;
}

static char *
Deparse(Node *expr, Oid raw_relid)
{
	List	   *context = deparse_context_for(get_rel_name(raw_relid), raw_relid);

	return deparse_expression(expr, context, false, false);
}

static SelectStmt *
ParseSelectList(const char *text, CheckState *st)
{
	char	   *sql = psprintf("SELECT %s\n", text);
	List	   *parsed;
	SelectStmt *select;

	parsed = raw_parser(sql, RAW_PARSE_DEFAULT);
	if (list_length(parsed) != 1)
		Refuse(st, "it must be a single list of expressions");
	select = (SelectStmt *) ((RawStmt *) linitial(parsed))->stmt;
	if (!IsA(select, SelectStmt) || select->fromClause || select->whereClause ||
		select->groupClause || select->havingClause || select->windowClause ||
		select->distinctClause || select->sortClause || select->limitCount ||
		select->limitOffset || select->lockingClause || select->withClause ||
		select->valuesLists || select->op != SETOP_NONE || select->intoClause)
		Refuse(st, "it must be a list of expressions, without FROM, WHERE or other clauses");
	return select;
}

static bool
IsIdentifier(const char *name)
{
	if (name == NULL || name[0] == '\0' || strlen(name) > 40)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_'))
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

static void
AddPair(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue	k;
	JsonbValue	v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	(void) pushJsonbValue(state, WJB_KEY, &k);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	(void) pushJsonbValue(state, WJB_VALUE, &v);
}

static const char *
FormatType(Oid typid, int32 typmod)
{
	return format_type_with_typemod(typid, typmod);
}

/*
 * percentile_cont(p) WITHIN GROUP (ORDER BY x): p a number literal strictly
 * between 0 and 1 (0 and 1 are min and max), one ascending sort key.
 */
static void
CheckPercentile(FuncCall *fc, CheckState *st)
{
	A_Const    *c = list_length(fc->args) == 1 ? (A_Const *) linitial(fc->args) : NULL;
	SortBy	   *key;
	double		p = 0.0;

	if (!fc->agg_within_group)
		Refuse(st, "percentile_cont needs WITHIN GROUP (ORDER BY x)");
	if (fc->agg_distinct || fc->agg_star)
		Refuse(st, "percentile_cont takes no DISTINCT or *");
	if (c == NULL || !IsA(c, A_Const) || c->isnull ||
		!(IsA(&c->val, Float) || IsA(&c->val, Integer)))
		Refuse(st, "the fraction of percentile_cont must be a number such as 0.95");
	p = IsA(&c->val, Integer) ? (double) intVal(&c->val) : strtod(castNode(Float, &c->val)->fval, NULL);
	if (!(p > 0.0 && p < 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: the fraction of percentile_cont must be between 0 and 1, exclusive", st->what),
				 errhint("Use e.g. 0.5 for the median or 0.99; min(x) and max(x) give the extremes.")));
	if (list_length(fc->agg_order) != 1)
		Refuse(st, "percentile_cont orders by exactly one expression");
	key = linitial_node(SortBy, fc->agg_order);
	if (key->sortby_dir != SORTBY_DEFAULT || key->sortby_nulls != SORTBY_NULLS_DEFAULT)
		Refuse(st, "percentile_cont orders by x ascending: leave out DESC, USING and NULLS");
	(void) CheckRawExpr(key->node, st);
}

/* the fraction p of a checked percentile_cont, as a number literal */
static const char *
PercentileFraction(Aggref *aggref)
{
	Node	   *p = eval_const_expressions(NULL, (Node *) linitial(aggref->aggdirectargs));

	if (!IsA(p, Const) || ((Const *) p)->consttype != FLOAT8OID || ((Const *) p)->constisnull)
		elog(ERROR, "percentile_cont fraction is not a float8 constant");
	return float8out_internal(DatumGetFloat8(((Const *) p)->constvalue));
}

/* an avg's hot and daily layers keep its sum: numeric for exact types */
static const char *
AvgSumType(Oid avgtype)
{
	if (avgtype == FLOAT8OID)
		return "double precision";
	if (avgtype == INTERVALOID)
		return "interval";
	return "numeric";
}

/*
 * pipeline._compile_metric(raw regclass, dimensions text[], measures text,
 *							 filter text) RETURNS jsonb
 *	  {"dimensions": [{"name", "type"}],
 *	   "measures": [{"name", "agg", "expr", "arg_type", "type"
 *					 [, "sum_type"] [, "p"] [, "filter"]}],
 *	   "filter": "<deparsed>" | null}
 *	  agg is a kind of pipeline.measure_kinds: count_star, count,
 *	  count_distinct, sum, min, max, avg or percentile; expr is the deparsed
 *	  argument; type is the aggregate's result type; sum_type (avg) the type
 *	  its sum is kept in; p (percentile) the fraction; filter the measure's
 *	  own FILTER condition, deparsed.
 */
PG_FUNCTION_INFO_V1(pipeline_compile_metric);
Datum
pipeline_compile_metric(PG_FUNCTION_ARGS)
{
	Oid			raw_relid = PG_GETARG_OID(0);
	ArrayType  *dims = PG_GETARG_ARRAYTYPE_P(1);
	char	   *measures = text_to_cstring(PG_GETARG_TEXT_PP(2));
	char	   *filter = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	JsonbParseState *state = NULL;
	JsonbValue *result;
	CheckState	st;
	SelectStmt *select;
	Query	   *query;
	ListCell   *lc;
	Datum	   *dim_values;
	bool	   *dim_nulls;
	int			ndims;
	Relation	rel;
	List	   *names = NIL;
	int			n = 0;

	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);

	/* dimensions: plain columns of the source */
	rel = table_open(raw_relid, AccessShareLock);
	deconstruct_array(dims, TEXTOID, -1, false, TYPALIGN_INT, &dim_values, &dim_nulls, &ndims);
	{
		JsonbValue	k;

		k.type = jbvString;
		k.val.string.val = "dimensions";
		k.val.string.len = strlen("dimensions");
		(void) pushJsonbValue(&state, WJB_KEY, &k);
	}
	(void) pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < ndims; i++)
	{
		char	   *name = dim_nulls[i] ? NULL : TextDatumGetCString(dim_values[i]);
		AttrNumber	attnum = name ? get_attnum(raw_relid, name) : InvalidAttrNumber;
		Form_pg_attribute att;

		if (attnum <= 0 || strncmp(name, "_pl_", 4) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("invalid dimension: \"%s\" is not a column of the source",
							name ? name : "NULL"),
					 errhint("Dimensions are column names of the source's contract.")));
		if (list_member(names, makeString(name)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("dimension \"%s\" is listed twice", name)));
		if (!IsIdentifier(name))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("dimension \"%s\" is not a plain lower-case identifier", name)));
		names = lappend(names, makeString(name));
		att = TupleDescAttr(RelationGetDescr(rel), attnum - 1);
		(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		AddPair(&state, "name", name);
		AddPair(&state, "type", FormatType(att->atttypid, att->atttypmod));
		(void) pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	(void) pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	table_close(rel, AccessShareLock);

	/* measures */
	st.what = "measures";
	st.raw_relid = raw_relid;
	st.columns = NIL;
	for (int i = 0; i < ndims; i++)
		st.columns = lappend(st.columns, makeString(TextDatumGetCString(dim_values[i])));
	select = ParseSelectList(measures, &st);
	foreach(lc, select->targetList)
	{
		ResTarget  *rt = lfirst_node(ResTarget, lc);
		FuncCall   *fc = (FuncCall *) rt->val;
		const char *agg;

		n++;
		if (!IsA(fc, FuncCall) || SingleName(fc->funcname) == NULL ||
			!InList(SingleName(fc->funcname), Aggregates))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid measure %d: it must be count, sum, min, max, avg or percentile_cont of an expression", n),
					 errhint("For example: count(*) AS orders, sum(amount) AS revenue, count(DISTINCT user_id) AS buyers, "
							 "percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95_latency")));
		agg = SingleName(fc->funcname);
		if (rt->name == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("measure %d (%s) needs a name", n, agg),
					 errhint("Name it with AS, e.g. %s(...) AS total.", agg)));
		if (!IsIdentifier(rt->name))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("measure name \"%s\" is not a plain lower-case identifier of at most 40 characters",
							rt->name)));
		if (list_member(names, makeString(rt->name)))
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_COLUMN),
					 errmsg("name \"%s\" is used twice among dimensions and measures", rt->name)));
		names = lappend(names, makeString(rt->name));
		st.what = psprintf("measure \"%s\"", rt->name);
		if (fc->over || fc->func_variadic)
			Refuse(&st, "OVER and VARIADIC are not allowed");
		if (strcmp(agg, "percentile_cont") == 0)
			CheckPercentile(fc, &st);
		else if (fc->agg_order || fc->agg_within_group)
			Refuse(&st, "ORDER BY and WITHIN GROUP are only allowed in percentile_cont(p) WITHIN GROUP (ORDER BY x)");
		else
		{
			if (fc->agg_distinct && strcmp(agg, "count") != 0)
				Refuse(&st, "DISTINCT is only allowed in count(DISTINCT x)");
			if (fc->agg_star ? strcmp(agg, "count") != 0 : list_length(fc->args) != 1)
				Refuse(&st, "%s() takes exactly one argument", agg);
			if (!fc->agg_star)
				(void) CheckRawExpr(linitial(fc->args), &st);
		}
		if (fc->agg_filter)
			(void) CheckRawExpr(fc->agg_filter, &st);
	}

	st.what = "measures";
	query = AnalyzeAgainstRaw(select, raw_relid, &st);
	{
		JsonbValue	k;

		k.type = jbvString;
		k.val.string.val = "measures";
		k.val.string.len = strlen("measures");
		(void) pushJsonbValue(&state, WJB_KEY, &k);
	}
	(void) pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	foreach(lc, query->targetList)
	{
		TargetEntry *te = lfirst_node(TargetEntry, lc);
		Aggref	   *aggref = (Aggref *) te->expr;
		const char *aggname = get_func_name(aggref->aggfnoid);
		const char *kind = aggname;
		Node	   *arg = NULL;

		st.what = psprintf("measure \"%s\"", te->resname);
		if (!IsA(aggref, Aggref))
			Refuse(&st, "it is not an aggregate");
		if (aggref->aggstar)
			kind = "count_star";
		else
		{
			arg = (Node *) linitial_node(TargetEntry, aggref->args)->expr;
			(void) CheckAnalyzedExpr(arg, &st);
			if (aggref->aggdistinct)
				kind = "count_distinct";
			else if (aggref->aggkind == AGGKIND_ORDERED_SET)
			{
				kind = "percentile";
				if (aggref->aggtype != FLOAT8OID)
					Refuse(&st, "percentile_cont of type %s is not supported: order by a number",
						   format_type_be(exprType(arg)));
			}
		}
		if (aggref->aggfilter)
			(void) CheckAnalyzedExpr((Node *) aggref->aggfilter, &st);
		(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		AddPair(&state, "name", te->resname);
		AddPair(&state, "agg", kind);
		AddPair(&state, "expr", arg ? Deparse(arg, raw_relid) : NULL);
		AddPair(&state, "arg_type", arg ? FormatType(exprType(arg), exprTypmod(arg)) : NULL);
		AddPair(&state, "type", FormatType(aggref->aggtype, -1));
		if (strcmp(kind, "avg") == 0)
			AddPair(&state, "sum_type", AvgSumType(aggref->aggtype));
		if (strcmp(kind, "percentile") == 0)
			AddPair(&state, "p", PercentileFraction(aggref));
		if (aggref->aggfilter)
			AddPair(&state, "filter", Deparse((Node *) aggref->aggfilter, raw_relid));
		(void) pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	(void) pushJsonbValue(&state, WJB_END_ARRAY, NULL);

	/* filter: one boolean expression */
	{
		JsonbValue	k;
		char	   *deparsed = NULL;

		if (filter != NULL)
		{
			TargetEntry *te;

			st.what = "filter";
			select = ParseSelectList(filter, &st);
			if (list_length(select->targetList) != 1 ||
				lfirst_node(ResTarget, list_head(select->targetList))->name != NULL)
				Refuse(&st, "it must be one boolean expression");
			(void) CheckRawExpr(lfirst_node(ResTarget, list_head(select->targetList))->val, &st);
			query = AnalyzeAgainstRaw(select, raw_relid, &st);
			te = linitial_node(TargetEntry, query->targetList);
			if (exprType((Node *) te->expr) != BOOLOID)
				Refuse(&st, "it is of type %s, not boolean", format_type_be(exprType((Node *) te->expr)));
			(void) CheckAnalyzedExpr((Node *) te->expr, &st);
			deparsed = Deparse((Node *) te->expr, raw_relid);
		}
		k.type = jbvString;
		k.val.string.val = "filter";
		k.val.string.len = strlen("filter");
		(void) pushJsonbValue(&state, WJB_KEY, &k);
		if (deparsed)
		{
			k.val.string.val = deparsed;
			k.val.string.len = strlen(deparsed);
		}
		else
			k.type = jbvNull;
		(void) pushJsonbValue(&state, WJB_VALUE, &k);
	}

	/* every source column the metric reads: evolve_source checks against it */
	{
		JsonbValue	k;

		k.type = jbvString;
		k.val.string.val = "columns";
		k.val.string.len = strlen("columns");
		(void) pushJsonbValue(&state, WJB_KEY, &k);
		(void) pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
		foreach(lc, st.columns)
		{
			JsonbValue	v;

			v.type = jbvString;
			v.val.string.val = strVal(lfirst(lc));
			v.val.string.len = strlen(v.val.string.val);
			(void) pushJsonbValue(&state, WJB_ELEM, &v);
		}
		(void) pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	}

	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}
