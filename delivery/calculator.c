/* The policy calculator: the live policies one profile is eligible for (delivery/calculator.h).
 *
 * The live set is cached as a refcounted snapshot (entries + the rule index over them). A
 * request reads the active set's ids; when they are the cached snapshot's it uses it as is,
 * otherwise it reads the documents of the new ids, compiles their effective rules (with the
 * segments, as the fan-out and reverse matching do) and swaps in a new snapshot that shares
 * the unchanged entries. A request holds a reference to its snapshot, so a swap by a
 * concurrent request never frees what it is reading. Status is read per candidate on every
 * request: it changes (dispatching -> active -> done, withdrawn) while the document does not. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"
#include "common/log.h"
#include "delivery/calculator.h"
#include "matcher/policy_index.h"
#include "matcher/segment_store.h"
#include "redis/keys.h"

typedef struct calc_ent {
    int refs;
    zd_policy *doc;
    zd_rule *eff;     /* NULL: the rule did not compile (the policy is never offered) */
    int32_t deadline; /* day number; INT32_MAX: none */
} calc_ent;

typedef struct calc_set {
    int refs;
    int n;
    calc_ent **ents; /* sorted by id */
    zd_policy_index *ix;
} calc_set;

struct zd_calc {
    zd_redis *r;
    const zd_schema *schema;
    calc_set *cur; /* NULL before the first request */
};

typedef struct calc_req {
    zd_calc *c;
    const zd_profile *p;
    int32_t today;
    char *scope;
    zd_calc_cb cb;
    void *udata;
    calc_set *set; /* referenced */
    /* Building a new snapshot: ids of the active set, and the documents read for new ones. */
    char **ids;
    char **docs;
    int nids;
    int pending;
    /* Candidates and their statuses. */
    int *slots;
    int nslots;
    int *status;
} calc_req;

static void ent_unref(calc_ent *e)
{
    if (!e || --e->refs > 0)
        return;
    zd_policy_free(e->doc);
    zd_rule_free(e->eff);
    free(e);
}

static void set_unref(calc_set *s)
{
    if (!s || --s->refs > 0)
        return;
    for (int i = 0; i < s->n; i++)
        ent_unref(s->ents[i]);
    free(s->ents);
    zd_policy_index_free(s->ix);
    free(s);
}

zd_calc *zd_calc_new(zd_redis *r, const zd_schema *schema)
{
    zd_calc *c = calloc(1, sizeof(*c));
    if (c) {
        c->r = r;
        c->schema = schema;
    }
    return c;
}

void zd_calc_free(zd_calc *c)
{
    if (!c)
        return;
    set_unref(c->cur);
    free(c);
}

static void req_end(calc_req *q, int status, const zd_calc_hit *hits, int n)
{
    q->cb(status, hits, n, q->udata);
    set_unref(q->set);
    for (int i = 0; i < q->nids; i++) {
        free(q->ids[i]);
        if (q->docs)
            free(q->docs[i]);
    }
    free(q->ids);
    free(q->docs);
    free(q->slots);
    free(q->status);
    free(q->scope);
    free(q);
}

/* ---- step 3: statuses of the candidates, the answer ------------------------------------ */

static void answer(calc_req *q)
{
    zd_calc_hit *hits = calloc((size_t)(q->nslots ? q->nslots : 1), sizeof(*hits));
    if (!hits) {
        req_end(q, -ENOMEM, NULL, 0);
        return;
    }
    int n = 0;
    for (int i = 0; i < q->nslots; i++) {
        const calc_ent *e = q->set->ents[q->slots[i]];
        if (q->status[i] != ZD_POLICY_ACTIVE && q->status[i] != ZD_POLICY_DISPATCHING)
            continue;
        hits[n++] = (zd_calc_hit){e->doc, e->eff, (zd_policy_status)q->status[i]};
    }
    req_end(q, 0, hits, n);
    free(hits);
}

typedef struct calc_st {
    calc_req *q;
    int i;
} calc_st;

static void status_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    calc_st *s = udata;
    calc_req *q = s->q;
    size_t len = 0;
    const char *v =
        status == 0 && zd_reply_is(reply, ZD_REPLY_STRING) ? zd_reply_str(reply, &len) : NULL;
    if (v) {
        char name[24];
        snprintf(name, sizeof(name), "%.*s", (int)len, v);
        q->status[s->i] = zd_policy_status_parse(name);
    }
    free(s);
    if (--q->pending == 0)
        answer(q);
}

static void match_set(calc_req *q)
{
    calc_set *s = q->set;
    q->slots = malloc(sizeof(int) * (size_t)(s->n ? s->n : 1));
    if (!q->slots) {
        req_end(q, -ENOMEM, NULL, 0);
        return;
    }
    int n = s->ix ? zd_policy_index_match(s->ix, q->p, q->today, q->slots, s->n) : 0;
    if (n < 0) {
        req_end(q, n, NULL, 0);
        return;
    }
    /* Scope and deadline are known here; only the rest need their status read. */
    int w = 0;
    for (int i = 0; i < n && i < s->n; i++) {
        const calc_ent *e = s->ents[q->slots[i]];
        if (e->deadline < q->today)
            continue;
        if (q->scope && strcmp(e->doc->scope, q->scope) != 0)
            continue;
        q->slots[w++] = q->slots[i];
    }
    q->nslots = w;
    q->status = malloc(sizeof(int) * (size_t)(w ? w : 1));
    if (!q->status) {
        req_end(q, -ENOMEM, NULL, 0);
        return;
    }
    q->pending = 1;
    for (int i = 0; i < w; i++) {
        q->status[i] = -1;
        calc_st *st = malloc(sizeof(*st));
        char k[ZD_POLICY_KEY_MAX];
        if (!st)
            continue;
        *st = (calc_st){q, i};
        if (zd_redis_cmd(q->c->r, status_got, st, "HGET %s status",
                         zd_key_policy(ZD_PK_META, s->ents[q->slots[i]]->doc->id, k)) == 0)
            q->pending++;
        else
            free(st);
    }
    if (--q->pending == 0)
        answer(q);
}

/* ---- step 2: a new snapshot ------------------------------------------------------------ */

static calc_ent *find_ent(const calc_set *s, const char *id)
{
    if (!s)
        return NULL;
    int lo = 0, hi = s->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strcmp(s->ents[mid]->doc->id, id);
        if (c == 0)
            return s->ents[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

typedef struct seg_list {
    const zd_segment *segs;
    int n;
} seg_list;

static const char *seg_lookup(const char *name, void *udata)
{
    const seg_list *s = udata;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->segs[i].name, name) == 0)
            return s->segs[i].rule;
    return NULL;
}

static calc_ent *ent_compile(const zd_calc *c, const char *text, const seg_list *segs)
{
    calc_ent *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->refs = 1;
    if (zd_policy_from_stored(text, strlen(text), &e->doc) != 0) {
        free(e);
        return NULL;
    }
    e->deadline = INT32_MAX;
    if (e->doc->deadline[0])
        zd_date_parse(e->doc->deadline, &e->deadline);
    const char *rule = e->doc->effective_rule ? e->doc->effective_rule : e->doc->rule;
    zd_rule_error err;
    if (zd_rule_compile(c->schema, rule, strlen(rule), seg_lookup, (void *)segs, &e->eff, &err) !=
        0) {
        zd_warn("calculator: policy %s: its rule does not compile (%s)", e->doc->id, err.message);
        e->eff = NULL;
    }
    return e;
}

static int cmp_ent(const void *a, const void *b)
{
    return strcmp((*(calc_ent *const *)a)->doc->id, (*(calc_ent *const *)b)->doc->id);
}

static void segments_got(int status, const zd_segment *segs, int n, void *udata)
{
    calc_req *q = udata;
    zd_calc *c = q->c;
    seg_list sl = {segs, status == 0 ? n : 0};
    calc_set *s = calloc(1, sizeof(*s));
    if (!s || !(s->ents = calloc((size_t)(q->nids ? q->nids : 1), sizeof(calc_ent *)))) {
        free(s);
        req_end(q, -ENOMEM, NULL, 0);
        return;
    }
    s->refs = 1;
    for (int i = 0; i < q->nids; i++) {
        calc_ent *e = find_ent(c->cur, q->ids[i]);
        if (e)
            e->refs++;
        else if (q->docs[i])
            e = ent_compile(c, q->docs[i], &sl);
        if (e)
            s->ents[s->n++] = e;
    }
    qsort(s->ents, (size_t)s->n, sizeof(calc_ent *), cmp_ent);
    s->ix = zd_policy_index_new();
    for (int i = 0; s->ix && i < s->n; i++)
        if (s->ents[i]->eff && zd_policy_index_add(s->ix, s->ents[i]->eff, i) != 0) {
            zd_policy_index_free(s->ix);
            s->ix = NULL;
        }
    if (!s->ix) {
        set_unref(s);
        req_end(q, -ENOMEM, NULL, 0);
        return;
    }
    set_unref(c->cur);
    c->cur = s;
    s->refs++;
    q->set = s;
    match_set(q);
}

static void docs_done(calc_req *q);

typedef struct calc_doc {
    calc_req *q;
    int i;
} calc_doc;

static void doc_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    calc_doc *d = udata;
    calc_req *q = d->q;
    size_t len = 0;
    const char *s =
        status == 0 && zd_reply_is(reply, ZD_REPLY_STRING) ? zd_reply_str(reply, &len) : NULL;
    if (s)
        q->docs[d->i] = strndup(s, len);
    free(d);
    docs_done(q);
}

static void docs_done(calc_req *q)
{
    if (--q->pending > 0)
        return;
    if (zd_segments_all(q->c->r, segments_got, q) != 0)
        segments_got(-EIO, NULL, 0, q);
}

/* ---- step 1: the active set ------------------------------------------------------------ */

static void active_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    calc_req *q = udata;
    zd_calc *c = q->c;
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_ARRAY)) {
        req_end(q, status ? status : -EIO, NULL, 0);
        return;
    }
    size_t n = zd_reply_len(reply);
    q->ids = calloc(n ? n : 1, sizeof(char *));
    q->docs = calloc(n ? n : 1, sizeof(char *));
    if (!q->ids || !q->docs) {
        req_end(q, -ENOMEM, NULL, 0);
        return;
    }
    int known = 0;
    for (size_t k = 0; k < n; k++) {
        size_t len;
        const char *id = zd_reply_str(zd_reply_at(reply, k), &len);
        if (!id || len > ZD_POLICY_ID_MAX || !(q->ids[q->nids] = strndup(id, len)))
            continue;
        if (find_ent(c->cur, q->ids[q->nids]))
            known++;
        q->nids++;
    }
    if (c->cur && known == q->nids && known == c->cur->n) {
        /* The cached snapshot is the live set. */
        q->set = c->cur;
        q->set->refs++;
        match_set(q);
        return;
    }
    q->pending = 1;
    for (int i = 0; i < q->nids; i++) {
        if (find_ent(c->cur, q->ids[i]))
            continue;
        calc_doc *d = malloc(sizeof(*d));
        char k[ZD_POLICY_KEY_MAX];
        if (!d)
            continue;
        *d = (calc_doc){q, i};
        if (zd_redis_cmd(c->r, doc_got, d, "HGET %s doc",
                         zd_key_policy(ZD_PK_META, q->ids[i], k)) == 0)
            q->pending++;
        else
            free(d);
    }
    docs_done(q);
}

int zd_calc_match(zd_calc *c, const zd_profile *p, int32_t today, const char *scope, zd_calc_cb cb,
                  void *udata)
{
    calc_req *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    *q = (calc_req){.c = c, .p = p, .today = today, .cb = cb, .udata = udata};
    if (scope && !(q->scope = strdup(scope))) {
        free(q);
        return -ENOMEM;
    }
    int rc = zd_redis_cmd(c->r, active_got, q, "SMEMBERS %s", ZD_KEY_POLICY_ACTIVE);
    if (rc != 0) {
        free(q->scope);
        free(q);
    }
    return rc;
}
