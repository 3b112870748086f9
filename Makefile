# pipeline: an analytics event pipeline inside PostgreSQL (PGXS build).
#
# The install script is assembled from one file per concern in src/sql/,
# in name order, so that each part of the SQL surface lives next to the
# others of its kind instead of in one long file.

EXTENSION = pipeline
EXTVERSION = 0.2.0
MODULE_big = pipeline
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA_built = pipeline--$(EXTVERSION).sql
# Released versions keep their install script as shipped; each release adds
# an upgrade script from the one before (ALTER EXTENSION pipeline UPDATE).
DATA = pipeline--0.1.0.sql pipeline--0.1.0--0.2.0.sql
PGFILEDESC = "pipeline - analytics event pipeline"

# pg_regress: one file per behaviour area, run against an existing server
# (test/run_all.sh starts it with shared_preload_libraries set).
REGRESS = $(sort $(basename $(notdir $(wildcard sql/*.sql))))
REGRESS_OPTS = --inputdir=.

# -Wextra is on and warnings are errors.  PostgreSQL 15's own headers trip
# one -Wextra category, so only that one is switched off:
#   unused-parameter   fmgr.h (PG_FUNCTION_ARGS) and bufpage.h inlines
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter

# pipeline.schedule() reaches pg_cron's database over libpq (src/schedule.c)
PG_CPPFLAGS += -I$(shell $(PG_CONFIG) --includedir)
# the workers compare it with the version installed in each database
PG_CPPFLAGS += -DPIPELINE_VERSION=\"$(EXTVERSION)\"
SHLIB_LINK += -lpq

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

pipeline--$(EXTVERSION).sql: $(sort $(wildcard src/sql/*.sql))
	cat $^ > $@

# PGXS does not track header dependencies: every object is rebuilt when a
# shared header changes (a struct that changed size under a stale object
# is a crash, not a warning).
$(OBJS): $(wildcard src/*.h)
