/* The synthetic Zhejiang population behind `zhida demo-population`: deterministic citizen and
 * enterprise profiles (SPEC §2 documents plus "id") for demos, tests and the benchmarks. */
#ifndef ZD_POPULATION_H
#define ZD_POPULATION_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* No generated line is longer than this (the JSON text, without the newline). */
#define ZD_POPGEN_LINE_MAX 2048

/* The day the population is "as of": no birth or founding date lies after it. */
#define ZD_POPGEN_AS_OF "2026-06-30"

typedef struct zd_popgen zd_popgen;

/* A generator for one seed. Profile n of a kind depends only on (seed, kind, n), never on how
 * many profiles are generated or in which order. NULL on ENOMEM.
 * Caller frees with zd_popgen_free(). */
zd_popgen *zd_popgen_new(uint64_t seed);
/* zd_popgen_free(NULL) is a no-op. */
void zd_popgen_free(zd_popgen *g);

/* Formats citizen n (id "c%07d", n >= 1) as one compact JSON object into buf, which must hold
 * ZD_POPGEN_LINE_MAX bytes. Returns the length (no newline, NUL-terminated). */
size_t zd_popgen_citizen(const zd_popgen *g, uint64_t n, char *buf);
/* Same for enterprise n (id "e%07d"). */
size_t zd_popgen_enterprise(const zd_popgen *g, uint64_t n, char *buf);

/* Formats line i (0-based, i < citizens + enterprises) of what zd_popgen_write() writes for
 * these counts into buf (ZD_POPGEN_LINE_MAX bytes); returns its length (no newline). */
size_t zd_popgen_line(const zd_popgen *g, uint64_t citizens, uint64_t enterprises, uint64_t i,
                      char *buf);

/* Writes citizens + enterprises NDJSON lines to out, the two kinds evenly interleaved, each
 * numbered from 1. Returns 0 or a negative errno code when writing fails. */
int zd_popgen_write(const zd_popgen *g, uint64_t citizens, uint64_t enterprises, FILE *out);

#endif
