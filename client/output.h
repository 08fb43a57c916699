/* What zhida prints: server answers as pretty JSON, or as tables for people, where region and
 * industry codes carry their names ("3301 杭州市") and columns line up with CJK text. */
#ifndef ZD_OUTPUT_H
#define ZD_OUTPUT_H

#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "client/cli.h"

/* j pretty-printed and a newline. */
void zd_out_json(FILE *f, const cJSON *j);

/* The answer of POST /v1/rules:preview: count, sample, one table per breakdown (largest
 * group first, with its share of the audience, and what "breakdown_truncated" left out). */
void zd_out_preview(const zd_cli *c, FILE *f, const cJSON *ans);
/* The answer of POST /v1/rules:explain: match, then each clause with its result and the
 * profile's value. */
void zd_out_explain(const zd_cli *c, FILE *f, const cJSON *ans);
/* Any other object answer (a profile, a segment): one "key  value" line per member, nested
 * objects flattened to dotted keys. */
void zd_out_object(const zd_cli *c, FILE *f, const cJSON *ans);
/* The header line of the demo population table (doc NULL) or one profile's row. */
void zd_out_population_row(const zd_cli *c, FILE *f, const cJSON *doc);

/* Terminal columns text takes: East Asian wide and fullwidth characters count 2. */
size_t zd_out_width(const char *s);

/* "3301 杭州市" when table has a name for code, "330106001 (西湖区)" when only a prefix of
 * it has one, else the code alone. Writes into buf (cap bytes) and returns it. */
const char *zd_out_label(const zd_names *table, const char *code, char *buf, size_t cap);

#endif
