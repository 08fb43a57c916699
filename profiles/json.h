/* Strict JSON text input: the one gate that request bodies, NDJSON import lines and stored
 * profile documents pass before anything reads them, so that every path accepts exactly the
 * same texts. */
#ifndef ZD_JSON_H
#define ZD_JSON_H

#include <stddef.h>

#include <zhida/error.h>

typedef struct cJSON cJSON;

/* Nesting limit for texts that come from zhida itself (stored documents) and the default of
 * the config's limits.json_depth_max. */
#define ZD_JSON_DEPTH_DEFAULT 32

/* Longest JSON path named in an error ("fields.n", "prefs.mute_categories[1]"). */
#define ZD_JSON_PATH_MAX 63

/* Parses text[0..len) (borrowed; need not be NUL-terminated) as exactly one JSON value. On
 * success returns 0 and *out (caller frees with cJSON_Delete()). Otherwise *out is NULL and
 * err says why, with code
 *   "invalid_utf8"  the text is not well-formed UTF-8;
 *   "bad_json"      empty, a syntax error, a NUL (raw, or written \u0000 inside a string,
 *                   which cJSON would silently cut the string at), text after the value, or
 *                   an object that repeats a key (field: its path);
 *   "too_deep"      arrays and objects nested deeper than depth_max (checked before cJSON
 *                   parses, so a hostile text cannot make it recurse);
 *   "out_of_range"  a number that is not finite, such as 1e999 (cJSON reads it as inf and
 *                   would print it as null), with field naming its path;
 * and returns -EINVAL, or -ENOMEM. Messages never quote string values. */
int zd_json_parse(const char *text, size_t len, int depth_max, cJSON **out, zd_error *err);

/* zd_json_parse() without its value checks (repeated keys, non-finite numbers), for a caller
 * that must look into the tree first (an import line's id, to report it with the line's
 * error) and then runs zd_json_check_values() itself. */
int zd_json_parse_syntax(const char *text, size_t len, int depth_max, cJSON **out, zd_error *err);

/* The value checks of zd_json_parse() on a tree that is already parsed or was built in code:
 * no object repeats a key and every number is finite. Returns 0, -EINVAL with err naming the
 * path, or -ENOMEM. j is borrowed. */
int zd_json_check_values(const cJSON *j, zd_error *err);

#endif
