/*
 * sketch_io.c
 *	  Text and binary I/O of the sketch types stored as their binary form
 *	  (see sketch_io.h).  Each type parses and checks the bytes itself; this
 *	  file only moves them between hex text, the wire and a varlena.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"

#include "sketch_io.h"

/* the bytes of '\x<hex>'; an error names the type being read */
char *
SketchHexDecode(const char *str, Size len, const char *type_name, Size *nbytes)
{
	char	   *bytes;

	if (len < 2 || str[0] != '\\' || str[1] != 'x')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type %s", type_name),
				 errdetail("A %s is written as \\x followed by the hex digits of its binary form.",
						   type_name)));
	bytes = palloc((len - 2) / 2 + 1);
	*nbytes = hex_decode(str + 2, len - 2, bytes);
	return bytes;
}

/* '\x<hex>' of a sketch's bytes */
char *
SketchHexEncode(struct varlena *sketch)
{
	Size		len = VARSIZE_ANY_EXHDR(sketch);
	char	   *out = palloc(2 + 2 * len + 1);
	uint64		n;

	out[0] = '\\';
	out[1] = 'x';
	n = hex_encode(VARDATA_ANY(sketch), len, out + 2);
	out[2 + n] = '\0';
	return out;
}

/* the send function's result: the bytes as they are */
bytea *
SketchSend(struct varlena *sketch)
{
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbytes(&buf, VARDATA_ANY(sketch), VARSIZE_ANY_EXHDR(sketch));
	return pq_endtypsend(&buf);
}
