/* Reverse matching (SPEC §4, issue #7): every partition's change stream is consumed through the
 * consumer group "zdrev" (each change handled by one instance; entries of a crashed one are
 * reclaimed with XAUTOCLAIM), the changed profile is tested against the active policies with
 * match_new_profiles through an index over their rules (matcher/policy_index.h), and a profile
 * that newly matches one gets its notice once: a script in the policy's slot creates the
 * notice states only when absent, counts them (matched, queued) and adds a `k r` work item
 * the workers send like any other. docs/DESIGN.md "Reverse matching". */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/date.h"
#include "common/log.h"
#include "delivery/engine.h"
#include "matcher/policy_index.h"
#include "matcher/rule.h"
#include "matcher/segment_store.h"
#include "profiles/profile.h"
#include "redis/script.h"

#define RV_GROUP "zdrev"
#define RV_COUNT "100"   /* entries per read */
#define RV_BLOCK_MS 1000 /* XREADGROUP BLOCK */

/* KEYS: meta, funnel, state, work of one policy. ARGV: gid, routes. Only for an `active`
 * policy and a profile none of whose notices exist: states `q|0|1|` on every route, matched
 * and every route's queued + 1 (so the funnel keeps adding up), one `k r` work item. Answers
 * the notices added (0: nothing to do). */
static const char notice_script[] =
    "if redis.call('HGET', KEYS[1], 'status') ~= 'active' then return 0 end\n"
    "local n = tonumber(ARGV[2])\n"
    "for r = 0, n - 1 do\n"
    "  if redis.call('HEXISTS', KEYS[3], ARGV[1] .. '.' .. r) == 1 then return 0 end\n"
    "end\n"
    "local items = {}\n"
    "for r = 0, n - 1 do\n"
    "  redis.call('HSET', KEYS[3], ARGV[1] .. '.' .. r, 'q|0|1|')\n"
    "  redis.call('HINCRBY', KEYS[2], r .. ':queued', 1)\n"
    "  items[#items + 1] = ARGV[1] .. '.' .. r .. '.0.1'\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[1], 'matched', 1)\n"
    "redis.call('XADD', KEYS[4], '*', 'k', 'r', 'n', table.concat(items, ','))\n"
    "return n\n";

/* One active policy known here. */
typedef struct rv_pol {
    char id[ZD_POLICY_ID_MAX + 1];
    bool eligible; /* match_new_profiles, its rule compiled */
    bool seen;
    int nroutes;
    int32_t deadline; /* day number; INT32_MAX: none */
    zd_rule *rule;
} rv_pol;

typedef struct rv_entry {
    int partition;
    char sid[48];
    char *pid, *newdoc, *olddoc; /* owned; NULL when absent */
    uint32_t dense;
    bool failed;
} rv_entry;

struct dl_reverse {
    dl_engine *e;
    zd_redis *r;
    zd_timer *t;
    bool busy, reading_own; /* reading_own: still draining our own pending entries from 0 */
    int claim_partition;
    int64_t next_claim_ms;
    int npols, cappols;
    rv_pol *pols;
    zd_policy_index *ix;
    bool dirty; /* the set changed: rebuild the index */
    int pending_docs;
    rv_entry *ents;
    int nents;
    int outstanding;
    long changes, notices;
};

static void step(dl_reverse *rv);

static void entries_free(dl_reverse *rv)
{
    for (int i = 0; i < rv->nents; i++) {
        free(rv->ents[i].pid);
        free(rv->ents[i].newdoc);
        free(rv->ents[i].olddoc);
    }
    free(rv->ents);
    rv->ents = NULL;
    rv->nents = 0;
}

static void finish(dl_reverse *rv, int delay_ms)
{
    entries_free(rv);
    rv->busy = false;
    if (!rv->e->stopping)
        zd_timer_arm(rv->t, delay_ms, 0);
}

/* ---- acknowledging ---------------------------------------------------------------------- */

static void acked(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    (void)status;
    (void)reply;
    dl_reverse *rv = udata;
    if (--rv->outstanding == 0)
        finish(rv, 0);
}

/* XACKs every entry of the batch whose notices were all written; a failed one stays pending
 * and is read again (our own pending list after a restart, or XAUTOCLAIM by anyone). */
static void ack_batch(dl_reverse *rv)
{
    rv->outstanding = 1;
    for (int p = 0; p < rv->e->o.partitions; p++) {
        const char *argv[3 + 100];
        int argc = 0;
        char key[ZD_KEY_MAX];
        argv[argc++] = "XACK";
        argv[argc++] = zd_key_changes(p, key);
        argv[argc++] = RV_GROUP;
        for (int i = 0; i < rv->nents && argc < 103; i++)
            if (rv->ents[i].partition == p && !rv->ents[i].failed)
                argv[argc++] = rv->ents[i].sid;
        if (argc > 3 && zd_redis_cmdargv(rv->r, acked, rv, argc, argv, NULL) == 0)
            rv->outstanding++;
    }
    acked(NULL, 0, NULL, rv);
}

/* ---- matching --------------------------------------------------------------------------- */

typedef struct rv_call {
    dl_reverse *rv;
    int entry;
} rv_call;

static void calls_done(dl_reverse *rv)
{
    if (--rv->outstanding == 0)
        ack_batch(rv);
}

static void notice_done(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    rv_call *c = udata;
    dl_reverse *rv = c->rv;
    if (status != 0 || zd_reply_is(reply, ZD_REPLY_ERROR)) {
        zd_warn("delivery: reverse matching could not add a notice (%s)",
                status ? zd_strerror(status) : zd_reply_str(reply, NULL));
        rv->ents[c->entry].failed = true;
    } else if (zd_reply_int(reply) > 0) {
        rv->notices++;
        dl_kick(rv->e);
    }
    free(c);
    calls_done(rv);
}

static zd_profile *parse_doc(const dl_reverse *rv, const char *id, const char *doc)
{
    if (!doc || !id)
        return NULL;
    zd_profile *p = NULL;
    zd_error err;
    if (zd_profile_parse(rv->e->o.schema, id, doc, strlen(doc), &p, &err) != 0)
        return NULL;
    return p;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void add_notice(dl_reverse *rv, int entry, const rv_pol *pol, uint32_t gid)
{
    rv_call *c = malloc(sizeof(*c));
    if (!c) {
        rv->ents[entry].failed = true;
        return;
    }
    *c = (rv_call){rv, entry};
    char meta[ZD_POLICY_KEY_MAX], fun[ZD_POLICY_KEY_MAX], st[ZD_POLICY_KEY_MAX],
        work[ZD_POLICY_KEY_MAX], g[16], nr[8];
    snprintf(g, sizeof(g), "%u", gid);
    snprintf(nr, sizeof(nr), "%d", pol->nroutes);
    const char *argv[] = {"EVAL",
                          notice_script,
                          "4",
                          zd_key_policy(ZD_PK_META, pol->id, meta),
                          zd_key_policy(ZD_PK_FUNNEL, pol->id, fun),
                          zd_key_policy(ZD_PK_STATE, pol->id, st),
                          zd_key_policy(ZD_PK_WORK, pol->id, work),
                          g,
                          nr};
    if (zd_redis_eval(rv->e->redis, notice_done, c, 9, argv, NULL) == 0) {
        rv->outstanding++;
    } else {
        rv->ents[entry].failed = true;
        free(c);
    }
}

/* Tests every change of the batch against the index: a policy the new document matches and
 * the old one (none for a creation) did not gets the notice. */
static void match_batch(dl_reverse *rv)
{
    int32_t today = zd_date_today(rv->e->o.timezone);
    int cap = rv->npols > 0 ? rv->npols : 1;
    int *a = malloc(sizeof(int) * (size_t)cap), *b = malloc(sizeof(int) * (size_t)cap);
    rv->outstanding = 1;
    for (int i = 0; a && b && rv->ix && i < rv->nents; i++) {
        rv_entry *en = &rv->ents[i];
        zd_profile *nw = parse_doc(rv, en->pid, en->newdoc);
        if (!nw)
            continue; /* a delete, or an entry whose document does not validate (logged by
                         the follower) */
        rv->changes++;
        zd_profile *old = parse_doc(rv, en->pid, en->olddoc);
        int na = zd_policy_index_match(rv->ix, nw, today, a, cap);
        int nb = old ? zd_policy_index_match(rv->ix, old, today, b, cap) : 0;
        if (na < 0 || nb < 0) {
            en->failed = true;
            na = 0;
        }
        qsort(b, (size_t)(nb > cap ? cap : nb), sizeof(int), cmp_int);
        for (int k = 0; k < na && k < cap; k++) {
            if (nb > 0 && bsearch(&a[k], b, (size_t)(nb > cap ? cap : nb), sizeof(int), cmp_int))
                continue;
            const rv_pol *pol = &rv->pols[a[k]];
            if (pol->deadline < today)
                continue;
            add_notice(rv, i, pol, zd_gid(en->partition, en->dense));
        }
        zd_profile_free(nw);
        zd_profile_free(old);
    }
    if (!a || !b)
        for (int i = 0; i < rv->nents; i++)
            rv->ents[i].failed = true;
    free(a);
    free(b);
    calls_done(rv);
}

/* ---- the policy set ---------------------------------------------------------------------- */

static const char *seg_lookup(const char *name, void *udata)
{
    const struct {
        const zd_segment *segs;
        int n;
    } *s = udata;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->segs[i].name, name) == 0)
            return s->segs[i].rule;
    return NULL;
}

static void rebuild(dl_reverse *rv)
{
    zd_policy_index_free(rv->ix);
    rv->ix = zd_policy_index_new();
    for (int i = 0; rv->ix && i < rv->npols; i++)
        if (rv->pols[i].eligible && zd_policy_index_add(rv->ix, rv->pols[i].rule, i) != 0) {
            zd_policy_index_free(rv->ix);
            rv->ix = NULL;
        }
    rv->dirty = rv->ix == NULL;
}

static void set_ready(dl_reverse *rv)
{
    if (rv->dirty)
        rebuild(rv);
    if (!rv->ix) {
        /* Out of memory: leave the batch pending, try again later. */
        for (int i = 0; i < rv->nents; i++)
            rv->ents[i].failed = true;
        finish(rv, 1000);
        return;
    }
    match_batch(rv);
}

static void segments_got(int status, const zd_segment *segs, int n, void *udata);

typedef struct rv_doc {
    dl_reverse *rv;
    int i;
} rv_doc;

static void docs_done(dl_reverse *rv)
{
    if (--rv->pending_docs > 0)
        return;
    if (rv->e->stopping || zd_segments_all(rv->e->redis, segments_got, rv) != 0)
        segments_got(-EIO, NULL, 0, rv);
}

/* The document of a policy new to this instance (a pipeline on the engine's connection): held
 * as text in .rule (nroutes -1) until segments_got compiles it. */
static void doc_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    rv_doc *d = udata;
    dl_reverse *rv = d->rv;
    size_t len = 0;
    const char *s =
        status == 0 && zd_reply_is(reply, ZD_REPLY_STRING) ? zd_reply_str(reply, &len) : NULL;
    if (s)
        rv->pols[d->i].rule = (zd_rule *)strndup(s, len);
    free(d);
    docs_done(rv);
}

/* Compiles the documents read (held as text in .rule with .eligible false and .nroutes -1). */
static void segments_got(int status, const zd_segment *segs, int n, void *udata)
{
    dl_reverse *rv = udata;
    struct {
        const zd_segment *segs;
        int n;
    } ss = {segs, status == 0 ? n : 0};
    for (int i = 0; i < rv->npols; i++) {
        rv_pol *p = &rv->pols[i];
        if (p->nroutes != -1)
            continue;
        char *text = (char *)p->rule;
        p->rule = NULL;
        p->nroutes = 0;
        zd_policy *doc = NULL;
        if (!text || zd_policy_from_stored(text, strlen(text), &doc) != 0) {
            free(text);
            continue;
        }
        free(text);
        p->nroutes = doc->nroutes;
        p->deadline = INT32_MAX;
        if (doc->deadline[0])
            zd_date_parse(doc->deadline, &p->deadline);
        const char *rule = doc->effective_rule ? doc->effective_rule : doc->rule;
        zd_rule_error err;
        if (doc->match_new_profiles && zd_rule_compile(rv->e->o.schema, rule, strlen(rule),
                                                       seg_lookup, &ss, &p->rule, &err) == 0)
            p->eligible = true;
        zd_policy_free(doc);
    }
    rv->dirty = true;
    set_ready(rv);
}

static void pol_clear(rv_pol *p)
{
    if (p->nroutes == -1)
        free((char *)p->rule);
    else
        zd_rule_free(p->rule);
    p->rule = NULL;
}

static void active_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_reverse *rv = udata;
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_ARRAY)) {
        for (int i = 0; i < rv->nents; i++)
            rv->ents[i].failed = true;
        finish(rv, 1000);
        return;
    }
    for (int i = 0; i < rv->npols; i++)
        rv->pols[i].seen = false;
    size_t n = zd_reply_len(reply);
    int added = 0;
    for (size_t k = 0; k < n; k++) {
        size_t len;
        const char *id = zd_reply_str(zd_reply_at(reply, k), &len);
        if (!id || len > ZD_POLICY_ID_MAX)
            continue;
        int i = 0;
        while (i < rv->npols && strcmp(rv->pols[i].id, id) != 0)
            i++;
        if (i == rv->npols) {
            if (rv->npols == rv->cappols) {
                int nc = rv->cappols ? rv->cappols * 2 : 16;
                rv_pol *np = realloc(rv->pols, sizeof(rv_pol) * (size_t)nc);
                if (!np)
                    continue;
                rv->pols = np;
                rv->cappols = nc;
            }
            rv_pol *p = &rv->pols[rv->npols++];
            memset(p, 0, sizeof(*p));
            memcpy(p->id, id, len);
            p->nroutes = -1; /* its document is being read */
            added++;
        }
        rv->pols[i].seen = true;
    }
    /* Policies that left the set (done, withdrawn) leave the index. */
    int w = 0;
    for (int i = 0; i < rv->npols; i++) {
        if (!rv->pols[i].seen) {
            pol_clear(&rv->pols[i]);
            rv->dirty = true;
            continue;
        }
        rv->pols[w++] = rv->pols[i];
    }
    rv->npols = w;
    if (added == 0) {
        set_ready(rv);
        return;
    }
    rv->pending_docs = 1;
    for (int i = 0; i < rv->npols; i++) {
        if (rv->pols[i].nroutes != -1)
            continue;
        char k[ZD_POLICY_KEY_MAX];
        rv_doc *d = malloc(sizeof(*d));
        if (!d)
            continue;
        *d = (rv_doc){rv, i};
        if (zd_redis_cmd(rv->e->redis, doc_got, d, "HGET %s doc",
                         zd_key_policy(ZD_PK_META, rv->pols[i].id, k)) == 0)
            rv->pending_docs++;
        else
            free(d);
    }
    docs_done(rv);
}

/* ---- reading ---------------------------------------------------------------------------- */

static char *dup_field(const zd_reply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < zd_reply_len(fields); i += 2)
        if (zd_reply_eq(zd_reply_at(fields, i), name)) {
            size_t len;
            const char *s = zd_reply_str(zd_reply_at(fields, i + 1), &len);
            return s ? strndup(s, len) : NULL;
        }
    return NULL;
}

/* Appends the entries [[id, fields], ...] of one partition's stream to the batch. */
static void take_entries(dl_reverse *rv, int partition, const zd_reply *list)
{
    size_t n = zd_reply_len(list);
    if (n == 0)
        return;
    rv_entry *ne = realloc(rv->ents, sizeof(rv_entry) * ((size_t)rv->nents + n));
    if (!ne)
        return; /* left pending: read again */
    rv->ents = ne;
    for (size_t i = 0; i < n; i++) {
        const zd_reply *e = zd_reply_at(list, i);
        const char *sid = zd_reply_str(zd_reply_at(e, 0), NULL);
        if (!sid || strlen(sid) >= sizeof(rv->ents[0].sid))
            continue;
        rv_entry *en = &rv->ents[rv->nents++];
        memset(en, 0, sizeof(*en));
        en->partition = partition;
        snprintf(en->sid, sizeof(en->sid), "%s", sid);
        /* A deleted entry (nil fields) is only acknowledged. */
        const zd_reply *f = zd_reply_at(e, 1);
        char *op = dup_field(f, "op"), *d = dup_field(f, "d");
        if (op && strcmp(op, "put") == 0 && d) {
            en->pid = dup_field(f, "id");
            en->newdoc = dup_field(f, "new");
            en->olddoc = dup_field(f, "old");
            en->dense = (uint32_t)strtoul(d, NULL, 10);
        }
        free(op);
        free(d);
    }
}

static void after_read(dl_reverse *rv)
{
    if (rv->nents == 0) {
        finish(rv, 0);
        return;
    }
    if (zd_redis_cmd(rv->e->redis, active_got, rv, "SMEMBERS %s", ZD_KEY_POLICY_ACTIVE) != 0) {
        for (int i = 0; i < rv->nents; i++)
            rv->ents[i].failed = true;
        finish(rv, 1000);
    }
}

static void read_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_reverse *rv = udata;
    if (status != 0 || zd_reply_is(reply, ZD_REPLY_ERROR)) {
        if (status == 0)
            zd_warn("delivery: reverse matching read: %s", zd_reply_str(reply, NULL));
        finish(rv, 1000);
        return;
    }
    for (size_t s = 0; s < zd_reply_len(reply); s++) {
        const zd_reply *st = zd_reply_at(reply, s);
        size_t klen;
        const char *key = zd_reply_str(zd_reply_at(st, 0), &klen);
        int p = key ? zd_key_changes_partition(key, klen) : -1;
        if (p >= 0)
            take_entries(rv, p, zd_reply_at(st, 1));
    }
    if (rv->reading_own && rv->nents == 0)
        rv->reading_own = false;
    after_read(rv);
}

static void claim_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_reverse *rv = udata;
    int p = rv->claim_partition;
    rv->claim_partition = (p + 1) % rv->e->o.partitions;
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_ARRAY)) {
        finish(rv, 0);
        return;
    }
    take_entries(rv, p, zd_reply_at(reply, 1));
    /* Entries deleted while pending (trimmed): only acknowledged. */
    const zd_reply *gone = zd_reply_at(reply, 2);
    for (size_t i = 0; i < zd_reply_len(gone); i++) {
        const char *sid = zd_reply_str(zd_reply_at(gone, i), NULL);
        rv_entry *ne = sid ? realloc(rv->ents, sizeof(rv_entry) * ((size_t)rv->nents + 1)) : NULL;
        if (!ne)
            continue;
        rv->ents = ne;
        memset(&ne[rv->nents], 0, sizeof(rv_entry));
        ne[rv->nents].partition = p;
        snprintf(ne[rv->nents].sid, sizeof(ne[0].sid), "%s", sid);
        rv->nents++;
    }
    after_read(rv);
}

static void step(dl_reverse *rv)
{
    dl_engine *e = rv->e;
    if (rv->busy || e->stopping || !zd_redis_ready(rv->r))
        return;
    rv->busy = true;
    int np = e->o.partitions;
    int64_t now = zd_unix_ms();
    if (!rv->reading_own && now >= rv->next_claim_ms) {
        if (rv->claim_partition == np - 1)
            rv->next_claim_ms = now + e->o.claim_idle_ms / 4;
        char key[ZD_KEY_MAX], idle[24];
        snprintf(idle, sizeof(idle), "%d", e->o.claim_idle_ms);
        const char *argv[] = {"XAUTOCLAIM", zd_key_changes(rv->claim_partition, key),
                              RV_GROUP,     e->consumer,
                              idle,         "0-0",
                              "COUNT",      RV_COUNT};
        if (zd_redis_cmdargv(rv->r, claim_got, rv, 8, argv, NULL) != 0)
            finish(rv, 1000);
        return;
    }
    const char **argv = calloc((size_t)(10 + 2 * np), sizeof(char *));
    char(*keys)[ZD_KEY_MAX] = calloc((size_t)np, ZD_KEY_MAX);
    if (!argv || !keys) {
        free(argv);
        free(keys);
        finish(rv, 1000);
        return;
    }
    int argc = 0;
    char block[16];
    snprintf(block, sizeof(block), "%d", RV_BLOCK_MS);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = RV_GROUP;
    argv[argc++] = e->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = RV_COUNT;
    if (!rv->reading_own) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    for (int p = 0; p < np; p++)
        argv[argc++] = zd_key_changes(p, keys[p]);
    for (int p = 0; p < np; p++)
        argv[argc++] = rv->reading_own ? "0" : ">";
    int rc = zd_redis_cmdargv_deadline(rv->r, RV_BLOCK_MS + 5000, read_got, rv, argc, argv, NULL);
    free(argv);
    free(keys);
    if (rc != 0)
        finish(rv, 1000);
}

static void on_timer(void *udata)
{
    step(udata);
}

/* The group on every partition's stream, from its end: changes made before the first start
 * were never meant for reverse matching. BUSYGROUP (it exists) is the usual answer. */
static void group_made(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    (void)udata;
    if (status == 0 && zd_reply_is(reply, ZD_REPLY_ERROR) &&
        strncmp(zd_reply_str(reply, NULL), "BUSYGROUP", 9) != 0)
        zd_warn("delivery: reverse matching: XGROUP CREATE: %s", zd_reply_str(reply, NULL));
}

static void on_connect(zd_redis *r, void *udata)
{
    dl_reverse *rv = udata;
    for (int p = 0; p < rv->e->o.partitions; p++) {
        char key[ZD_KEY_MAX];
        zd_redis_cmd(r, group_made, rv, "XGROUP CREATE %s %s $ MKSTREAM", zd_key_changes(p, key),
                     RV_GROUP);
    }
    /* After a restart, our own pending entries first. */
    rv->reading_own = true;
    zd_timer_arm(rv->t, 0, 0);
}

int dl_reverse_start(dl_engine *e)
{
    dl_reverse *rv = calloc(1, sizeof(*rv));
    if (!rv)
        return -ENOMEM;
    rv->e = e;
    zd_redis_opts o = e->o.redis;
    o.name = "reverse";
    o.deadline_ms = RV_BLOCK_MS + 5000;
    rv->r = zd_redis_new(e->o.base, &o);
    rv->t = zd_timer_new(e->o.base, on_timer, rv);
    rv->reading_own = true;
    e->reverse = rv;
    if (!rv->r || !rv->t)
        return -ENOMEM;
    zd_redis_on_connect(rv->r, on_connect, rv);
    return 0;
}

void dl_reverse_stop(dl_engine *e)
{
    if (e->reverse)
        zd_timer_stop(e->reverse->t);
}

void dl_reverse_free(dl_engine *e)
{
    dl_reverse *rv = e->reverse;
    if (!rv)
        return;
    zd_timer_free(rv->t);
    zd_redis_free(rv->r);
    entries_free(rv);
    for (int i = 0; i < rv->npols; i++)
        pol_clear(&rv->pols[i]);
    free(rv->pols);
    zd_policy_index_free(rv->ix);
    free(rv);
    e->reverse = NULL;
}

void dl_reverse_counts(const dl_engine *e, long *changes, long *notices)
{
    *changes = e->reverse ? e->reverse->changes : 0;
    *notices = e->reverse ? e->reverse->notices : 0;
}
