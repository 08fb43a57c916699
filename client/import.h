/* zhida import: streams an NDJSON file of any size to POST /v1/profiles:import as a series of
 * requests of whole lines, two in flight, with a progress bar and a report of failed lines
 * numbered as in the file. */
#ifndef ZD_IMPORT_H
#define ZD_IMPORT_H

#include <stddef.h>

#include "client/cli.h"

/* Default and largest request body. The largest is the server's default
 * limits.import_body_max, so that a chunk is never refused for its size. */
#define ZD_IMPORT_CHUNK_DEFAULT (4u << 20)
#define ZD_IMPORT_CHUNK_MIN 1024u

/* Imports path ("-" is stdin) in chunks of at most chunk_bytes. Progress goes to stderr; the
 * report (table: a summary line and the first failed lines; JSON: the totals and errors in the
 * shape of the API's answer) to stdout. Returns ZD_EXIT_OK, ZD_EXIT_PARTIAL when some lines
 * failed, or the exit status of what stopped the import. */
int zd_import_run(const zd_cli *c, const char *path, size_t chunk_bytes);

#endif
