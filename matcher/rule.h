/* The rule language of SPEC §3: lexer, parser, checker and the compiled plan, evaluated two
 * ways that always agree: over the index (the audience of a rule) and against one profile
 * (explain, reverse matching). Plain C: no event loop, no Redis. */
#ifndef ZD_RULE_H
#define ZD_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <roaring/roaring.h>

#include "profiles/index.h"
#include "profiles/profile.h"
#include "profiles/schema.h"

#define ZD_RULE_MAX_BYTES (16 * 1024)
#define ZD_RULE_MAX_DEPTH 64

typedef struct zd_rule zd_rule;

/* Where and why a rule failed to compile. position is a byte offset into the text of the rule
 * being compiled (0-based), line and column are 1-based (column counts bytes). For an error
 * inside a segment, segment names it and the position is within the segment's text. */
typedef struct zd_rule_error {
    char code[40];     /* "syntax_error", "unknown_field", "type_mismatch", "rule_too_large",
                        * "too_deep", "unknown_segment", "segment_cycle", "invalid_value",
                        * "out_of_memory", and from zd_rule_check_cost() "rule_too_complex" */
    char message[320]; /* names what was expected / wrong, with did-you-mean when near */
    char segment[64];
    int position, line, column;
} zd_rule_error;

/* Looks up a saved segment's rule text by name; returns NULL if there is none. The returned
 * text is borrowed until zd_rule_compile() returns. */
typedef const char *(*zd_segment_lookup_fn)(const char *name, void *udata);

/* Compiles text[0..len) against schema s (borrowed, must outlive the rule). Segments are
 * expanded at compile time through lookup (may be NULL: then any segment is an error).
 * Returns 0 and *out (caller frees with zd_rule_free()), or -EINVAL and *err (err may be NULL),
 * or -ENOMEM. */
int zd_rule_compile(const zd_schema *s, const char *text, size_t len, zd_segment_lookup_fn lookup,
                    void *udata, zd_rule **out, zd_rule_error *err);
/* zd_rule_free(NULL) is a no-op. */
void zd_rule_free(zd_rule *r);

/* The size of a compiled rule, its segments expanded. `comparisons` counts the values its
 * leaves test (a leaf with an `in` or `within` list counts one per value); `cost` estimates
 * the work of evaluating it over the index in units of one bitmap lookup: a number or date
 * comparison is a range scan and costs ZD_RULE_COST_SCAN per value, `age(x) =` two of them,
 * a `not` or `!=` ZD_RULE_COST_NOT (docs/DESIGN.md, "Rule cost"). */
typedef struct zd_rule_size {
    long comparisons;
    long cost;
} zd_rule_size;

#define ZD_RULE_COST_SCAN 8
#define ZD_RULE_COST_NOT 2

zd_rule_size zd_rule_measure(const zd_rule *r);

/* Checks that r costs at most max_cost. Returns 0, or -EINVAL with *err set to
 * "rule_too_complex" and a message naming r's size and the limit; limit_name (borrowed; e.g.
 * "limits.rule_max_cost") tells the reader where the limit is set. The text and nesting limits
 * bound the work of compiling; this one bounds the work of evaluating, which segments can
 * multiply far beyond what the text shows. */
int zd_rule_check_cost(const zd_rule *r, long max_cost, const char *limit_name, zd_rule_error *err);

/* The audience: a new bitmap of every live profile in ix that r selects on day `today`
 * (a day number of a real calendar date; age() is computed against it). ix must be built over
 * the rule's schema. Caller frees with roaring_bitmap_free(). NULL only on ENOMEM. */
roaring_bitmap_t *zd_rule_audience(const zd_rule *r, const zd_index *ix, int32_t today);

/* Clause counts: what each condition of a rule keeps, for an operator looking for the one that
 * narrows the audience. */
typedef struct zd_rule_clause {
    const char *text;    /* the comparison as written (borrowed from the rule) */
    const char *segment; /* the segment it was written in (borrowed), NULL for the rule's text */
    int position;        /* byte offset of text in the rule's text or in the segment's */
    bool negated;        /* under an odd number of `not`: the rule keeps what it does not count */
    uint64_t count;      /* profiles (within the given set) for which the comparison holds */
} zd_rule_clause;

/* One conjunct of the rule's top-level AND chain (parentheses and segments that are ANDs
 * joined into it, in source order); a rule that is no AND is one step. */
typedef struct zd_rule_step {
    char *text;          /* the conjunct as written, e.g. "(a or b)" (owned by the counts) */
    const char *segment; /* as in zd_rule_clause */
    int position;
    int first_clause, nclauses; /* its comparisons: clauses[first_clause .. + nclauses) */
    uint64_t count;             /* profiles (within the set) satisfying it and all before it */
} zd_rule_step;

typedef struct zd_rule_counts {
    int nclauses;
    zd_rule_clause *clauses; /* every leaf comparison in source order, as zd_rule_explain() */
    int nsteps;
    zd_rule_step *steps;
} zd_rule_counts;

/* Counts, over ix on day `today` and within `within` (borrowed; NULL: every profile), how many
 * profiles each leaf comparison of r selects on its own, and how many remain after each step
 * of the top-level AND chain in source order. Each leaf is evaluated once for its own count
 * and once inside its step, so the work is at most twice that of zd_rule_audience() and
 * bounded by the rule's cost like it. The last step's set is the audience within `within`:
 * when audience is not NULL it receives it (caller frees with roaring_bitmap_free()).
 * Returns 0 and *out (caller frees with zd_rule_counts_free(); it borrows from r, which must
 * outlive it), or -ENOMEM. */
int zd_rule_count_clauses(const zd_rule *r, const zd_index *ix, int32_t today,
                          const roaring_bitmap_t *within, zd_rule_counts **out,
                          roaring_bitmap_t **audience);
/* zd_rule_counts_free(NULL) is a no-op. */
void zd_rule_counts_free(zd_rule_counts *c);

/* True when profile p satisfies r on day `today`. */
bool zd_rule_match(const zd_rule *r, const zd_profile *p, int32_t today);

/* Explains r against p: returns a cJSON object {"match": bool, "clauses": [{"text": "...",
 * "result": bool, "value": <the profile's value or null>}, ...]} with one entry per leaf
 * comparison in source order (segments contribute their own leaves, with "segment": name).
 * "match" always equals zd_rule_match(). Caller frees with cJSON_Delete(); NULL on ENOMEM. */
cJSON *zd_rule_explain(const zd_rule *r, const zd_profile *p, int32_t today);

/* The reasons of a match, as a citizen reads them: matcher/reasons.h. */

#endif
