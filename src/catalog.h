/*
 * catalog.h
 *	  The source as read from the extension's catalog, and the identities a
 *	  step runs as: the caller, a source's or metric's owner, the extension
 *	  owner (catalog.c).
 */
#ifndef PIPELINE_CATALOG_H
#define PIPELINE_CATALOG_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* a row of pipeline.source_catalog */
typedef struct SourceInfo
{
	char	   *name;
	int			contract_version;
	char	   *event_id;
	char	   *event_time;
	char	   *day_timezone;
	Oid			raw_relid;
	Oid			ids_relid;
	Oid			owner;
	TimestampTz retained_from;	/* earlier events: raw dropped by retention */
} SourceInfo;

/* who runs a step: the caller, the source owner or the extension owner */
typedef struct RoleSwitch
{
	Oid			saved_uid;
	int			saved_sec;
	int			guc_nest;		/* search_path is pinned at this level */
} RoleSwitch;

extern SourceInfo *PipelineRequireSource(const char *name);
extern void PipelineRequireWriter(SourceInfo *src);
extern Oid	PipelineExtensionOwner(void);
extern int	PipelinePinSearchPath(void);
extern void PipelineUnpinSearchPath(int nest);
extern void PipelineBecome(Oid role, RoleSwitch *saved);
extern void PipelineRestoreRole(RoleSwitch *saved);

#endif							/* PIPELINE_CATALOG_H */
