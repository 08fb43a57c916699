/* The daemon's region and industry name tables, for the wording of reasons. */
#ifndef ZD_NAMES_TABLES_H
#define ZD_NAMES_TABLES_H

#include "common/names.h"
#include "matcher/reasons.h"

typedef struct zd_names_tables {
    zd_names *regions, *industries; /* owned */
    zd_reason_names names;          /* borrows the two */
} zd_names_tables;

/* Loads the tables from the first data directory that has them; a missing or bad table is a
 * warning (codes are then written as codes), never a start-up error. 0 or -ENOMEM. Free with
 * zd_names_tables_free(). */
int zd_names_tables_load(zd_names_tables *nt);
void zd_names_tables_free(zd_names_tables *nt);

#endif
