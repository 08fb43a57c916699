/* An index over many compiled rules (the active policies'), for reverse matching: which rules
 * does one profile satisfy? From each rule it extracts a necessary condition — a set of
 * (attribute, value) keys of which a matching profile must hit one: a keyword value, a tag or
 * follows member, a code or code prefix — into inverted lists, so that a profile meets only
 * the rules whose condition it can satisfy; those candidates are then evaluated exactly with
 * zd_rule_match(), the per-profile evaluation explain uses. Rules without a usable condition
 * (e.g. `employees < 300`, `not tags has "x"`) are on an always-check list. Plain C. */
#ifndef ZD_POLICY_INDEX_H
#define ZD_POLICY_INDEX_H

#include <stdint.h>

#include "matcher/rule.h"

typedef struct zd_policy_index zd_policy_index;

/* An empty index. Caller frees with zd_policy_index_free(). NULL on ENOMEM. */
zd_policy_index *zd_policy_index_new(void);
/* zd_policy_index_free(NULL) is a no-op. */
void zd_policy_index_free(zd_policy_index *x);

/* Adds rule r (borrowed: must outlive the index; its strings are referenced) under the caller's
 * number `slot` (>= 0). Returns 0 or -ENOMEM. */
int zd_policy_index_add(zd_policy_index *x, const zd_rule *r, int slot);

/* The slots of every added rule that p satisfies on day `today`, in the order they were added,
 * written to out (capacity cap; the count beyond cap is still returned). Returns the count, or
 * -ENOMEM. */
int zd_policy_index_match(zd_policy_index *x, const zd_profile *p, int32_t today, int *out,
                          int cap);

/* The same answer by evaluating every added rule in turn (the baseline the index is measured
 * against, and its property test's reference). */
int zd_policy_index_match_all(const zd_policy_index *x, const zd_profile *p, int32_t today,
                              int *out, int cap);

typedef struct zd_policy_index_stats {
    int rules;       /* rules added */
    int always;      /* of which on the always-check list */
    int keys;        /* distinct keys */
    long candidates; /* candidates evaluated by zd_policy_index_match() so far */
} zd_policy_index_stats;
void zd_policy_index_get_stats(const zd_policy_index *x, zd_policy_index_stats *st);

#endif
