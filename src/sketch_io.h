/*
 * sketch_io.h
 *	  Text and binary I/O shared by the sketch types whose stored form is
 *	  their binary form (distinct_sketch, lateness_sketch, quantile_sketch):
 *	  '\x' hex text, and the bytes themselves on the wire.
 */
#ifndef PIPELINE_SKETCH_IO_H
#define PIPELINE_SKETCH_IO_H

#include "postgres.h"

extern char *SketchHexDecode(const char *str, Size len, const char *type_name, Size *nbytes);
extern char *SketchHexEncode(struct varlena *sketch);
extern bytea *SketchSend(struct varlena *sketch);

#endif
