/* Code-to-name tables read from TSV data files (data/regions-*.tsv: GB/T 2260 regions,
 * data/industries.tsv: GB/T 4754 industries), so people read "3301 杭州市" instead of "3301". */
#ifndef ZD_NAMES_H
#define ZD_NAMES_H

#include <stddef.h>

#include "zhida/error.h"

/* Longest code and name a table accepts, in bytes. */
#define ZD_NAMES_CODE_MAX 32
#define ZD_NAMES_NAME_MAX 256

typedef struct zd_names zd_names;

/* An empty table, or NULL on ENOMEM. Caller frees with zd_names_free(). */
zd_names *zd_names_new(void);
/* zd_names_free(NULL) is a no-op. */
void zd_names_free(zd_names *n);

/* Adds the entries of one TSV file: each line "code<TAB>name"; blank lines and lines starting
 * with '#' are skipped; a trailing '\r' is dropped. A code is 1..ZD_NAMES_CODE_MAX bytes of
 * [A-Za-z0-9], a name 1..ZD_NAMES_NAME_MAX bytes of valid UTF-8 without tabs. Returns 0;
 * -errno when the file cannot be read; -EINVAL for a malformed line or a code already in the
 * table with another name (err, which may be NULL, names the file and line); -ENOMEM. On an
 * error the entries read before the bad line stay in the table. path is borrowed. */
int zd_names_load(zd_names *n, const char *path, zd_error *err);

/* The name of code, or NULL when the table has none. The pointer is owned by the table and
 * valid until zd_names_free(). n may be NULL (no names). */
const char *zd_names_get(const zd_names *n, const char *code);

/* The name of the longest prefix of code (code itself included) that has one, and that
 * prefix's length in *prefix_len; NULL when none has. "330106001" -> "西湖区", 6. */
const char *zd_names_get_prefix(const zd_names *n, const char *code, size_t *prefix_len);

/* Number of entries. */
size_t zd_names_count(const zd_names *n);

#endif
