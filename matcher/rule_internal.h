/* The compiled plan of a rule, shared by the compiler (rule.c) and the two evaluators
 * (rule_eval.c). Private to matcher/: callers only see the opaque zd_rule of rule.h. */
#ifndef ZD_RULE_INTERNAL_H
#define ZD_RULE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "matcher/rule.h"

typedef enum zd_rnode_kind { ZD_RN_AND, ZD_RN_OR, ZD_RN_NOT, ZD_RN_LEAF } zd_rnode_kind;

/* What a leaf tests. Every form is false for a profile that lacks the attribute. Numbers and
 * dates are compared as integers (scaled values, day numbers); the compiler has already turned
 * a rule constant with more decimals than the attribute into the equivalent integer bound. */
typedef enum zd_rleaf_form {
    ZD_RL_EXISTS,  /* has a value (tags: at least one tag) */
    ZD_RL_HAS,     /* tags has strs[0] */
    ZD_RL_STR_IN,  /* keyword equals one of strs */
    ZD_RL_CODE_IN, /* code equals one of strs */
    ZD_RL_WITHIN,  /* code starts with one of strs (whole levels) */
    ZD_RL_NUM_CMP, /* number or date `op` v, op one of LT LE GT GE */
    ZD_RL_NUM_IN,  /* number or date equals one of nums */
    ZD_RL_AGE_CMP, /* age in full years of a date `op` v, op one of LT LE GT GE */
    ZD_RL_AGE_IN,  /* age equals one of nums */
} zd_rleaf_form;

typedef struct zd_rnode zd_rnode;
struct zd_rnode {
    zd_rnode_kind kind;
    /* ZD_RN_AND, ZD_RN_OR: nkids >= 2, in source order; ZD_RN_NOT: nkids == 1. */
    int nkids;
    zd_rnode **kids;
    /* ZD_RN_LEAF */
    zd_rleaf_form form;
    const zd_attr *attr;
    bool age;    /* the field was age(attr): explain shows the age */
    bool negate; /* `!=`: has the attribute and it equals none of the values */
    zd_cmp op;
    int64_t v;
    int nvals;
    char **strs;   /* ZD_RL_HAS, ZD_RL_STR_IN, ZD_RL_CODE_IN, ZD_RL_WITHIN */
    int64_t *nums; /* ZD_RL_NUM_IN, ZD_RL_AGE_IN; may be empty (an impossible `=`) */
    char *text;    /* the leaf's source text exactly as written */
    int segment;   /* index into zd_rule.segments, -1 for the rule's own text */
    /* Every node: where it was written, as byte offsets [position, end) into the text named
     * by `segment` (zd_rule.source or zd_rule.segment_sources). A group in parentheses spans
     * them; a node that a segment contributed whole spans that segment's text. */
    int position, end;
};

struct zd_rule {
    const zd_schema *schema;
    zd_rnode *root;
    int nsegments;
    char **segments;        /* names of the segments expanded into this rule */
    char **segment_sources; /* their texts, parallel to segments (owned copies) */
    char *source;           /* the rule's own text (an owned copy) */
};

/* Ages are clamped to this many years: real ages are far inside, so the clamp changes no
 * result, and it keeps the date arithmetic of age thresholds away from int32 overflow. */
#define ZD_RULE_AGE_MAX 1000000

/* The per-profile evaluation of rule_eval.c, shared with reasons.c so that reasons and explain
 * can never disagree: a leaf's truth, and a node's (short-circuiting). */
bool zd_rleaf_true(const zd_rnode *n, const zd_profile *p, int32_t today);
bool zd_rnode_true(const zd_rnode *n, const zd_profile *p, int32_t today);
/* The profile's value of a leaf's attribute; NULL when absent (tags: when empty). */
const zd_value *zd_rleaf_value(const zd_rnode *n, const zd_profile *p);

#endif
