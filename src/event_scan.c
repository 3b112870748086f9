/*
 * event_scan.c
 *	  One NDJSON line read straight into its contract's fields, without
 *	  building the jsonb value of the whole event.
 *
 * The jsonb path parses a line with jsonb_in (a tree of every value, then
 * its binary form with sorted keys), looks each column's field up in it,
 * and turns each number back into text (numeric_in, then numeric_out)
 * for the column's input function.  A line whose top-level keys each name
 * one column needs none of that: PostgreSQL's JSON lexer, token by token
 * and without its escape handling (which copies a string a byte at a
 * time), finds the fields; a string without escapes is used where it lies
 * in the line, one with escapes is copied with them undone here; a
 * number's text goes to the column's input function as it was sent; and
 * only a nested object or array (a properties object for a jsonb column)
 * is made jsonb, by itself, once its grammar has been checked here as
 * pg_parse_json checks it.
 *
 * The result must be exactly the jsonb path's, value for value and error
 * for error, so the scan gives up (EventScanLine returns false and the
 * caller takes the jsonb path) whenever they could differ:
 *	- the line is not one JSON object, or does not lex or parse (jsonb_in
 *	  then reports the error);
 *	- a key the contract does not name (the jsonb path keeps it in
 *	  _pl_extra and counts the drift);
 *	- a column filled twice (a repeated key, a name and an alias of one
 *	  column: jsonb keeps the last key, and prefers the name) or a key that
 *	  fills two columns (ContractFieldColumn);
 *	- an escape that jsonb_in judges (\u0000, a lone surrogate, a
 *	  character beyond ASCII in a database that is not UTF8).
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

/* the next token into lex->token_type; false if the text does not lex */
static bool
NextToken(JsonLexContext *lex)
{
	return json_lex(lex) == JSON_SUCCESS;
}

/* four hexadecimal digits at p, before end */
static bool
Hex4(const char *p, const char *end, pg_wchar *ch)
{
	*ch = 0;
	if (end - p < 4)
		return false;
	for (int k = 0; k < 4; k++)
	{
		char		d = p[k];

		*ch <<= 4;
		if (d >= '0' && d <= '9')
			*ch += d - '0';
		else if (d >= 'a' && d <= 'f')
			*ch += d - 'a' + 10;
		else if (d >= 'A' && d <= 'F')
			*ch += d - 'A' + 10;
		else
			return false;
	}
	return true;
}

/* JSON's one-letter escapes, and the characters they stand for */
#define SHORT_ESCAPES	"\"\\/bfnrt"
#define SHORT_ESCAPED	"\"\\/\b\f\n\r\t"

/*
 * The value of the string token just read: its own text when it has no
 * escape (most keys and values: nothing is copied), else a copy with the
 * escapes undone.  False for an escape whose judgement is left to the
 * jsonb path: \u0000, a lone surrogate, a character beyond ASCII in a
 * database whose encoding is not UTF8.
 */
static bool
StringValue(JsonLexContext *lex, char **val, int *len)
{
	char	   *p = lex->token_start + 1;
	char	   *end = lex->token_terminator - 1;
	const char *short_form;
	StringInfoData buf;

	if (memchr(p, '\\', end - p) == NULL)
	{
		*val = p;
		*len = end - p;
		return true;
	}
	initStringInfo(&buf);
	while (p < end)
	{
		char	   *escape = memchr(p, '\\', end - p);
		pg_wchar	ch;
		pg_wchar	low;

		if (escape == NULL)
		{
			appendBinaryStringInfo(&buf, p, end - p);
			break;
		}
		appendBinaryStringInfo(&buf, p, escape - p);
		p = escape + 2;
		short_form = strchr(SHORT_ESCAPES, escape[1]);
		if (short_form != NULL && escape[1] != '\0')
		{
			appendStringInfoChar(&buf, SHORT_ESCAPED[short_form - SHORT_ESCAPES]);
			continue;
		}
		/* else \uXXXX, a surrogate pair taking two */
		if (escape[1] != 'u' || !Hex4(p, end, &ch))
			return false;
		p += 4;
		if (is_utf16_surrogate_first(ch))
		{
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
				!Hex4(p + 2, end, &low) || !is_utf16_surrogate_second(low))
				return false;
			ch = surrogate_pair_to_codepoint(ch, low);
			p += 6;
		}
		else if (is_utf16_surrogate_second(ch))
			return false;
		if (ch == 0)
			return false;
		if (GetDatabaseEncoding() == PG_UTF8)
		{
			unsigned char utf8[5];

			unicode_to_utf8(ch, utf8);
			appendBinaryStringInfo(&buf, (char *) utf8, pg_utf_mblen(utf8));
		}
		else if (ch < 0x80)
			appendStringInfoChar(&buf, (char) ch);
		else
			return false;
	}
	*val = buf.data;
	*len = buf.len;
	return true;
}

/* a number as the jsonb path would write it for an input function */
static void
NumberValue(JsonLexContext *lex, JsonbValue *v)
{
	char	   *token = lex->token_start;
	int			len = lex->token_terminator - lex->token_start;

	v->type = jbvString;
	if (len <= PLAIN_NUMBER_MAX_LEN && memchr(token, 'e', len) == NULL && memchr(token, 'E', len) == NULL &&
		!(len >= 2 && token[0] == '-' && token[1] == '0'))
	{
		v->val.string.val = token;
		v->val.string.len = len;
		return;
	}
	v->val.string.val = DatumGetCString(DirectFunctionCall1(numeric_out,
															DirectFunctionCall3(numeric_in,
																				CStringGetDatum(pnstrdup(token, len)),
																				ObjectIdGetDatum(InvalidOid),
																				Int32GetDatum(-1))));
	v->val.string.len = strlen(v->val.string.val);
}

/* what the innermost open object or array of a nested value expects next */
typedef enum NestedState
{
	OBJECT_KEY_OR_END,			/* after { */
	OBJECT_KEY,					/* after , */
	OBJECT_COLON,
	OBJECT_VALUE,
	OBJECT_COMMA_OR_END,
	ARRAY_VALUE_OR_END,			/* after [ */
	ARRAY_VALUE,				/* after , */
	ARRAY_COMMA_OR_END
} NestedState;

/*
 * A scalar of a nested value as jsonb_in makes it; false for a string the
 * jsonb path must judge (an escape, see StringValue, or a length jsonb
 * cannot hold).
 */
static bool
NestedScalar(JsonLexContext *lex, JsonbValue *v)
{
	switch (lex->token_type)
	{
		case JSON_TOKEN_STRING:
			v->type = jbvString;
			return StringValue(lex, &v->val.string.val, &v->val.string.len) &&
				v->val.string.len <= JENTRY_OFFLENMASK;
		case JSON_TOKEN_NUMBER:
			v->type = jbvNumeric;
			v->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																 CStringGetDatum(pnstrdup(lex->token_start,
																						  lex->token_terminator - lex->token_start)),
																 ObjectIdGetDatum(InvalidOid),
																 Int32GetDatum(-1)));
			return true;
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			v->type = jbvBool;
			v->val.boolean = lex->token_type == JSON_TOKEN_TRUE;
			return true;
		default:
			v->type = jbvNull;
			return true;
	}
}

/*
 * The object or array whose first token was just read, as jsonb: its
 * grammar checked as pg_parse_json checks it (json_lex checks each token)
 * and its value built as jsonb_in builds it (pushJsonbValue, which keeps
 * the last of repeated keys), in the one pass over its tokens.  NULL if it
 * is not valid JSON or holds a string the jsonb path must judge.  A stack
 * of states rather than recursion: depth costs memory, not C stack.
 */
static Jsonb *
NestedJsonb(JsonLexContext *lex)
{
	JsonbParseState *parse = NULL;
	JsonbValue *root = NULL;
	int			size = 16;
	NestedState *stack = palloc(sizeof(NestedState) * size);
	int			depth = 0;
	bool		opens = true;	/* the token read is the value's first */

	while (opens || depth > 0)
	{
		NestedState *top = depth > 0 ? &stack[depth - 1] : NULL;
		JsonTokenType tok;
		JsonbValue	v;

		if (!opens && !NextToken(lex))
			return NULL;
		opens = false;
		tok = lex->token_type;
		switch (top == NULL ? OBJECT_VALUE : *top)
		{
			case OBJECT_KEY_OR_END:
			case OBJECT_KEY:
				if (tok == JSON_TOKEN_OBJECT_END && *top == OBJECT_KEY_OR_END)
				{
					root = pushJsonbValue(&parse, WJB_END_OBJECT, NULL);
					depth--;
					continue;
				}
				if (tok != JSON_TOKEN_STRING || !NestedScalar(lex, &v))
					return NULL;
				pushJsonbValue(&parse, WJB_KEY, &v);
				*top = OBJECT_COLON;
				continue;
			case OBJECT_COLON:
				if (tok != JSON_TOKEN_COLON)
					return NULL;
				*top = OBJECT_VALUE;
				continue;
			case OBJECT_COMMA_OR_END:
			case ARRAY_COMMA_OR_END:
				if (tok == JSON_TOKEN_COMMA)
					*top = *top == OBJECT_COMMA_OR_END ? OBJECT_KEY : ARRAY_VALUE;
				else if (tok == JSON_TOKEN_OBJECT_END && *top == OBJECT_COMMA_OR_END)
				{
					root = pushJsonbValue(&parse, WJB_END_OBJECT, NULL);
					depth--;
				}
				else if (tok == JSON_TOKEN_ARRAY_END && *top == ARRAY_COMMA_OR_END)
				{
					root = pushJsonbValue(&parse, WJB_END_ARRAY, NULL);
					depth--;
				}
				else
					return NULL;
				continue;
			case ARRAY_VALUE_OR_END:
				if (tok == JSON_TOKEN_ARRAY_END)
				{
					root = pushJsonbValue(&parse, WJB_END_ARRAY, NULL);
					depth--;
					continue;
				}
				break;
			case OBJECT_VALUE:
			case ARRAY_VALUE:
				break;
		}

		/* a value: in an object, an array, or the nested value itself */
		if (top != NULL)
			*top = *top == OBJECT_VALUE ? OBJECT_COMMA_OR_END : ARRAY_COMMA_OR_END;
		if (tok == JSON_TOKEN_OBJECT_START || tok == JSON_TOKEN_ARRAY_START)
		{
			if (depth == size)
			{
				size *= 2;
				stack = repalloc(stack, sizeof(NestedState) * size);
			}
			stack[depth++] = tok == JSON_TOKEN_OBJECT_START ? OBJECT_KEY_OR_END : ARRAY_VALUE_OR_END;
			pushJsonbValue(&parse, tok == JSON_TOKEN_OBJECT_START ? WJB_BEGIN_OBJECT : WJB_BEGIN_ARRAY, NULL);
		}
		else if (top != NULL &&
				 (tok == JSON_TOKEN_STRING || tok == JSON_TOKEN_NUMBER || tok == JSON_TOKEN_TRUE ||
				  tok == JSON_TOKEN_FALSE || tok == JSON_TOKEN_NULL))
		{
			if (!NestedScalar(lex, &v))
				return NULL;
			pushJsonbValue(&parse, *top == OBJECT_COMMA_OR_END ? WJB_VALUE : WJB_ELEM, &v);
		}
		else
			return NULL;
	}
	pfree(stack);
	return JsonbValueToJsonb(root);
}

/*
 * The value of a top-level field, its first token just read; false if the
 * line must take the jsonb path.  Only a nested object or array is made
 * jsonb (NestedJsonb).
 */
static bool
FieldValue(JsonLexContext *lex, JsonbValue *v)
{
	Jsonb	   *jb;

	switch (lex->token_type)
	{
		case JSON_TOKEN_STRING:
			v->type = jbvString;
			return StringValue(lex, &v->val.string.val, &v->val.string.len);
		case JSON_TOKEN_NUMBER:
			NumberValue(lex, v);
			return true;
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			/* "true" and "false": the text the jsonb path gives them */
			v->type = jbvString;
			v->val.string.val = lex->token_start;
			v->val.string.len = lex->token_terminator - lex->token_start;
			return true;
		case JSON_TOKEN_NULL:
			v->type = jbvNull;
			return true;
		case JSON_TOKEN_OBJECT_START:
		case JSON_TOKEN_ARRAY_START:
			jb = NestedJsonb(lex);
			if (jb == NULL)
				return false;
			v->type = jbvBinary;
			v->val.binary.data = &jb->root;
			v->val.binary.len = VARSIZE(jb) - VARHDRSZ;
			return true;
		default:
			return false;
	}
}

/*
 * Fills fields[i] (NULL: missing) for each column of the contract from one
 * NDJSON line, or returns false when the line must take the jsonb path
 * (see the file header).  Allocates in the current memory context; may
 * throw what jsonb_in would throw for the same line (a number numeric
 * cannot hold).
 */
bool
EventScanLine(Contract *c, char *line, int len, JsonbValue **fields)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen(line, len, GetDatabaseEncoding(), false);

	for (int i = 0; i < c->ncols; i++)
		fields[i] = NULL;

	if (!NextToken(lex) || lex->token_type != JSON_TOKEN_OBJECT_START || !NextToken(lex))
		return false;
	if (lex->token_type != JSON_TOKEN_OBJECT_END)
	{
		int			column = -1;

		for (;;)
		{
			char	   *name;
			int			name_len;
			JsonbValue *v;

			if (lex->token_type != JSON_TOKEN_STRING || !StringValue(lex, &name, &name_len))
				return false;
			column = ContractFieldColumn(c, name, name_len, column + 1);
			if (column < 0 || fields[column] != NULL)
				return false;	/* unknown, ambiguous, or filled twice */
			if (!NextToken(lex) || lex->token_type != JSON_TOKEN_COLON || !NextToken(lex))
				return false;
			v = palloc(sizeof(JsonbValue));
			if (!FieldValue(lex, v))
				return false;
			fields[column] = v;
			if (!NextToken(lex))
				return false;
			if (lex->token_type == JSON_TOKEN_OBJECT_END)
				break;
			if (lex->token_type != JSON_TOKEN_COMMA || !NextToken(lex))
				return false;
		}
	}
	/* nothing after the object */
	return NextToken(lex) && lex->token_type == JSON_TOKEN_END;
}
