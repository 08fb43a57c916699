/* Reasons: why a profile is eligible for a rule, as sentences a citizen reads ("注册地在杭州市",
 * "成立不满3年", "员工少于300人"), not as the rule's text. Built on the same per-profile
 * evaluation as zd_rule_explain(): a reason is a clause explain reports, satisfied the way the
 * match needed it. Plain C, no event loop, no Redis; used by notice templates ({{reasons}}) and
 * the policy calculator (GET /v1/profiles/{id}/policies). */
#ifndef ZD_REASONS_H
#define ZD_REASONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/names.h"
#include "matcher/rule.h"

/* The code-to-name tables reasons use (both borrowed, either may be NULL: codes are then
 * written as codes). `regions` names the built-in `region` attribute (GB/T 2260), `industries`
 * names a code attribute called "industry" (GB/T 4754). */
typedef struct zd_reason_names {
    const zd_names *regions;
    const zd_names *industries;
} zd_reason_names;

/* One needed clause. Which clauses are needed: all of an `and`, the first satisfied branch of
 * an `or` (in source order), and under a `not` the dual (the first failing conjunct of an
 * `and`, every branch of an `or`). So the reasons of a match are a smallest set of the
 * clauses explain reports whose values alone decide the rule, each satisfied as used. */
typedef struct zd_reason {
    int clause;       /* index into explain's "clauses" (every leaf, source order) */
    bool negated;     /* the clause is false and a `not` made that count ("无失信记录") */
    const char *text; /* the clause as written (borrowed from the rule) */
    const void *leaf; /* opaque: the compiled clause, for zd_reason_word() */
} zd_reason;

/* The needed clauses of r for p on day `today` (a day number), in source order. Writes at
 * most max into out and returns how many there are (may be more than max); 0 when p does not
 * satisfy r. Allocates nothing. */
int zd_rule_reason_clauses(const zd_rule *r, const zd_profile *p, int32_t today, zd_reason *out,
                           int max);

/* Writes the citizen's wording of reason rs (from zd_rule_reason_clauses() on the same r and
 * p) into buf (capacity cap, always NUL-terminated, cut on a UTF-8 boundary). Returns the
 * length written. names may be NULL. */
size_t zd_reason_word(const zd_reason *rs, const zd_profile *p, int32_t today,
                      const zd_reason_names *names, char *buf, size_t cap);

/* The reasons of r for p as one text: each needed clause's wording, or the publisher's
 * wording from `overrides` (borrowed cJSON object, may be NULL: {"<clause text as written>":
 * "<wording>"}; a clause used negated is looked up as "not <clause text>" — see
 * zd_rule_check_reason_texts()), joined by sep (e.g. "，"), into buf (capacity cap, always
 * NUL-terminated, cut on a UTF-8 boundary). Returns the length written; 0 with buf "" when p
 * does not satisfy r. Allocates nothing. */
size_t zd_rule_reasons(const zd_rule *r, const zd_profile *p, int32_t today,
                       const zd_reason_names *names, const cJSON *overrides, const char *sep,
                       char *buf, size_t cap);

/* The same reasons as a cJSON array of strings (the policy calculator's shape). Caller frees
 * with cJSON_Delete(); NULL on ENOMEM. An empty array when p does not satisfy r. */
cJSON *zd_rule_reasons_json(const zd_rule *r, const zd_profile *p, int32_t today,
                            const zd_reason_names *names, const cJSON *overrides);

/* Checks a policy's "reason_texts" object: every key must be the text of a clause of r as
 * written (or "not " followed by one, for the clause's wording when a `not` makes it a
 * reason), every value a non-empty string of at most 512 bytes. Returns 0, or -EINVAL with
 * the offending key copied into bad (capacity badcap) and a message into msg (capacity
 * msgcap). */
int zd_rule_check_reason_texts(const zd_rule *r, const cJSON *texts, char *bad, size_t badcap,
                               char *msg, size_t msgcap);

#endif
