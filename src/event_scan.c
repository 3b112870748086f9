/*
 * event_scan.c
 *	  One NDJSON line read straight into its contract's fields, without
 *	  building the jsonb value of the whole event.
 *
 * The jsonb path parses a line with jsonb_in (a tree of every value, then
 * its binary form with sorted keys), looks each column's field up in it,
 * and turns each number back into text (numeric_in, then numeric_out)
 * for the column's input function.  A line whose top-level keys each name
 * one column needs none of that: one pass of PostgreSQL's own JSON lexer
 * collects the fields, a number's text goes to the column's input function
 * as it was sent, and only a nested object or array (a properties object
 * for a jsonb column) is made jsonb, by itself.
 *
 * The result must be exactly the jsonb path's, value for value and error
 * for error, so the scan gives up (EventScanLine returns false and the
 * caller takes the jsonb path) whenever they could differ:
 *	- the line is not one JSON object, or does not lex (jsonb_in then
 *	  reports the error);
 *	- a key the contract does not name (the jsonb path keeps it in
 *	  _pl_extra and counts the drift);
 *	- a column filled twice (a repeated key, a name and an alias of one
 *	  column: jsonb keeps the last key, and prefers the name) or a key that
 *	  fills two columns (ContractFieldColumn).
 * A number is passed as sent when numeric_out(numeric_in(text)) would give
 * the same text back: no exponent, not a negative zero ("-0.0" is "0.0"
 * to numeric), not so long that numeric_in could refuse it.  Any other
 * number goes through numeric_in and numeric_out, as in the jsonb path.
 * Booleans are passed as "true" and "false", which is the text the jsonb
 * path gives them too; no text of a number or a boolean can look like the
 * RFC 3339 form validate.c reads without an input function.
 */
#include "postgres.h"

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "validate.h"

/* longer number texts go through numeric_in, whose limits then apply */
#define PLAIN_NUMBER_MAX_LEN 1000

typedef struct EventScan
{
	Contract   *contract;
	JsonLexContext *lex;
	JsonbValue **fields;
	int			column;			/* the column of the current top-level key */
	char	   *nested_start;	/* where its nested value begins */
	bool		give_up;
} EventScan;

static JsonbValue *
NewValue(EventScan *scan)
{
	JsonbValue *v = palloc(sizeof(JsonbValue));

	if (scan->fields[scan->column] != NULL)
		scan->give_up = true;	/* filled twice */
	scan->fields[scan->column] = v;
	return v;
}

static void
SetString(JsonbValue *v, char *text)
{
	v->type = jbvString;
	v->val.string.val = text;
	v->val.string.len = strlen(text);
}

/* a number as the jsonb path would write it for an input function */
static char *
NumberText(char *token)
{
	size_t		len = strlen(token);

	if (len <= PLAIN_NUMBER_MAX_LEN && strpbrk(token, "eE") == NULL &&
		strncmp(token, "-0", 2) != 0)
		return token;
	return DatumGetCString(DirectFunctionCall1(numeric_out,
											   DirectFunctionCall3(numeric_in, CStringGetDatum(token),
																   ObjectIdGetDatum(InvalidOid),
																   Int32GetDatum(-1))));
}

static void
ScanFieldStart(void *state, char *fname, bool isnull)
{
	EventScan  *scan = state;

	if (scan->lex->lex_level != 1 || scan->give_up)
		return;
	scan->column = ContractFieldColumn(scan->contract, fname, strlen(fname));
	if (scan->column < 0)
		scan->give_up = true;
}

static void
ScanScalar(void *state, char *token, JsonTokenType tokentype)
{
	EventScan  *scan = state;
	JsonbValue *v;

	if (scan->lex->lex_level == 0)
		scan->give_up = true;	/* the line is a scalar */
	if (scan->lex->lex_level != 1 || scan->give_up)
		return;
	v = NewValue(scan);
	switch (tokentype)
	{
		case JSON_TOKEN_STRING:
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			SetString(v, token);	/* true and false: as the jsonb path writes them */
			break;
		case JSON_TOKEN_NUMBER:
			SetString(v, NumberText(token));
			break;
		default:
			v->type = jbvNull;
			break;
	}
}

/* a top-level field's object or array begins: note where */
static void
ScanNestedStart(void *state)
{
	EventScan  *scan = state;

	if (scan->lex->lex_level == 1)
		scan->nested_start = scan->lex->token_start;
}

static void
ScanArrayStart(void *state)
{
	EventScan  *scan = state;

	if (scan->lex->lex_level == 0)
		scan->give_up = true;	/* the line is an array */
	ScanNestedStart(state);
}

/* ...and ends: its text, and only it, becomes jsonb */
static void
ScanNestedEnd(void *state)
{
	EventScan  *scan = state;
	char	   *text;
	Jsonb	   *jb;
	JsonbValue *v;

	if (scan->lex->lex_level != 1 || scan->give_up)
		return;
	text = pnstrdup(scan->nested_start, scan->lex->prev_token_terminator - scan->nested_start);
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	v = NewValue(scan);
	v->type = jbvBinary;
	v->val.binary.data = &jb->root;
	v->val.binary.len = VARSIZE(jb) - VARHDRSZ;
}

/*
 * Fills fields[i] (NULL: missing) for each column of the contract from one
 * NDJSON line, or returns false when the line must take the jsonb path
 * (see the file header).  Allocates in the current memory context; may
 * throw what jsonb_in would throw for the same line (a Unicode escape the
 * database encoding cannot hold, a number numeric cannot hold).
 */
bool
EventScanLine(Contract *c, char *line, int len, JsonbValue **fields)
{
	JsonSemAction sem = {0};
	EventScan	scan = {0};

	scan.contract = c;
	scan.lex = makeJsonLexContextCstringLen(line, len, GetDatabaseEncoding(), true);
	scan.fields = fields;
	for (int i = 0; i < c->ncols; i++)
		fields[i] = NULL;

	sem.semstate = &scan;
	sem.object_field_start = ScanFieldStart;
	sem.scalar = ScanScalar;
	sem.object_start = ScanNestedStart;
	sem.array_start = ScanArrayStart;
	sem.object_end = ScanNestedEnd;
	sem.array_end = ScanNestedEnd;

	if (pg_parse_json(scan.lex, &sem) != JSON_SUCCESS)
		return false;
	return !scan.give_up;
}
