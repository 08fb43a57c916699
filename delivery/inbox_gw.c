/* The built-in "inbox" gateway type: a batch of notices becomes items of the recipients'
 * inboxes in Redis, one idempotent script per partition the batch touches. Results are
 * reported from the Redis replies, so always on the loop and never from inside send(). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "delivery/inbox_private.h"
#include "profiles/profile.h"
#include "redis/keys.h"

/* KEYS[1]: the partition's profile hash; then per notice i its inbox hash (KEYS[2i]) and order
 * zset (KEYS[2i+1]). ARGV[1]: arrival ms, ARGV[2]: '1' for a dry run (a test: nothing is
 * written), then per notice (profile id, notice id, item JSON). Returns per notice 'new',
 * 'dup' (already stored: counted unread once) or 'absent' (no such profile: nothing stored,
 * so an erased profile never gets keys back), 'ok' in a dry run. */
static const char deliver_script[] =
    "local out = {}\n"
    "local n = (#KEYS - 1) / 2\n"
    "for i = 1, n do\n"
    "  local pid, nid, item = ARGV[i * 3], ARGV[i * 3 + 1], ARGV[i * 3 + 2]\n"
    "  local h, z = KEYS[i * 2], KEYS[i * 2 + 1]\n"
    "  if redis.call('HEXISTS', KEYS[1], pid) == 0 then out[i] = 'absent'\n"
    "  elseif ARGV[2] == '1' then out[i] = 'ok'\n"
    "  elseif redis.call('HSETNX', h, nid, item) == 1 then\n"
    "    redis.call('HINCRBY', h, '#unread', 1)\n"
    "    redis.call('ZADD', z, ARGV[1], nid)\n"
    "    out[i] = 'new'\n"
    "  else out[i] = 'dup' end\n"
    "end\n"
    "return out\n";

typedef struct inbox_gw inbox_gw;

/* One accepted batch (or test), until every partition's script has answered. */
typedef struct gw_batch {
    inbox_gw *gw; /* NULL once cancelled by destroy(): replies then only free it */
    size_t n;
    zd_gw_result *res;
    int pending;         /* scripts not answered yet */
    bool test, test_any; /* test_any: a test without a profile (only "does Redis answer") */
    zd_gw_done_fn done;
    zd_gw_test_fn tdone;
    void *udata;
    struct gw_batch *prev, *next;
} gw_batch;

/* One partition's script of a batch: which notices of the batch it carries. */
typedef struct gw_part {
    gw_batch *b;
    int n;
    size_t idx[];
} gw_part;

struct inbox_gw {
    zd_inbox *ib;
    char *name;
    gw_batch *batches; /* in flight, for destroy() */
    int in_callback;   /* > 0 while a done callback of ours runs */
    bool dying;        /* destroy() was called from inside a callback */
    zd_gw_stats st;
};

static void set_result(zd_gw_result *r, int outcome, const char *detail)
{
    r->outcome = outcome;
    r->http_status = 0;
    r->retry_after_ms = 0;
    snprintf(r->detail, sizeof(r->detail), "%s", detail);
}

static void gw_free_now(inbox_gw *gw);

static void batch_unlink(inbox_gw *gw, gw_batch *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        gw->batches = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
}

/* Reports b to its caller (status 0 or -ECANCELED) and detaches it from gw. */
static void batch_report(gw_batch *b, int status)
{
    inbox_gw *gw = b->gw;
    batch_unlink(gw, b);
    b->gw = NULL;
    gw->st.requests++;
    for (size_t i = 0; i < b->n; i++) {
        if (status)
            set_result(&b->res[i], ZD_GW_TRANSIENT, "cancelled: the gateway was stopped");
        if (b->res[i].outcome == ZD_GW_DELIVERED)
            gw->st.delivered++;
        else if (b->res[i].outcome == ZD_GW_TRANSIENT)
            gw->st.transient++;
        else
            gw->st.permanent++;
    }
    gw->in_callback++;
    if (b->test)
        b->tdone(status, &b->res[0], "", b->udata);
    else
        b->done(status, b->res, b->n, b->udata);
    gw->in_callback--;
}

static void batch_free(gw_batch *b)
{
    free(b->res);
    free(b);
}

static void part_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    gw_part *p = udata;
    gw_batch *b = p->b;
    if (b->gw) {
        bool ok = status == 0 && zd_reply_is(reply, ZD_REPLY_ARRAY) &&
                  zd_reply_len(reply) == (size_t)p->n;
        char why[100];
        if (status)
            snprintf(why, sizeof(why), "redis: %s", zd_strerror(status));
        else
            snprintf(why, sizeof(why), "redis: unexpected answer to the inbox script");
        for (int i = 0; i < p->n; i++) {
            zd_gw_result *res = &b->res[p->idx[i]];
            const char *o = ok ? zd_reply_str(zd_reply_at(reply, (size_t)i), NULL) : NULL;
            if (b->test_any && ok)
                set_result(res, ZD_GW_DELIVERED, "inbox reachable (a test stores nothing)");
            else if (!o)
                set_result(res, ZD_GW_TRANSIENT, why);
            else if (strcmp(o, "new") == 0)
                set_result(res, ZD_GW_DELIVERED, "stored in the inbox");
            else if (strcmp(o, "dup") == 0)
                set_result(res, ZD_GW_DELIVERED, "already in the inbox");
            else if (strcmp(o, "ok") == 0)
                set_result(res, ZD_GW_DELIVERED,
                           "the profile exists; its inbox is reachable (a test stores nothing)");
            else
                set_result(res, ZD_GW_PERMANENT, "no such profile");
        }
    }
    free(p);
    if (--b->pending > 0)
        return;
    if (!b->gw) {
        batch_free(b);
        return;
    }
    inbox_gw *gw = b->gw;
    batch_report(b, 0);
    batch_free(b);
    if (gw->dying && gw->in_callback == 0)
        gw_free_now(gw);
}

/* ABI notice ids: 1..512 printable ASCII characters without spaces. */
static bool abi_id_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 512)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    }
    return true;
}

static char *item_json(const zd_notice *n, long long now)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "policy", n->policy);
    cJSON_AddStringToObject(o, "gateway", n->gateway);
    cJSON_AddStringToObject(o, "title", n->title);
    cJSON_AddStringToObject(o, "body", n->body);
    cJSON_AddStringToObject(o, "url", n->url);
    cJSON_AddStringToObject(o, "category", n->category);
    cJSON_AddBoolToObject(o, "urgent", n->urgent);
    cJSON_AddNumberToObject(o, "created_at", (double)now);
    cJSON_AddNullToObject(o, "read_at");
    cJSON_AddNullToObject(o, "feedback");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Sends the script for the notices of partition part (their indexes idx[0..k)). */
static int send_part(inbox_gw *gw, gw_batch *b, const zd_notice *notices, int part,
                     const size_t *idx, int k, bool dry, long long now)
{
    int nkeys = 1 + 2 * k, nargs = 2 + 3 * k;
    char(*keybuf)[ZD_INBOX_KEY_MAX] = calloc((size_t)nkeys, sizeof(*keybuf));
    const char **keys = calloc((size_t)nkeys, sizeof(*keys));
    const char **args = calloc((size_t)nargs, sizeof(*args));
    char **items = calloc((size_t)k + 1, sizeof(*items));
    gw_part *p = malloc(sizeof(*p) + (size_t)k * sizeof(size_t));
    char nowbuf[24];
    int rc = -ENOMEM;
    if (!keybuf || !keys || !args || !items || !p)
        goto out;
    snprintf(nowbuf, sizeof(nowbuf), "%lld", now);
    zd_key_profiles(part, keybuf[0]);
    keys[0] = keybuf[0];
    args[0] = nowbuf;
    args[1] = dry ? "1" : "0";
    for (int i = 0; i < k; i++) {
        const zd_notice *n = &notices[idx[i]];
        keys[1 + 2 * i] = zd_key_inbox(part, n->profile, keybuf[1 + 2 * i]);
        keys[2 + 2 * i] = zd_key_inbox_order(part, n->profile, keybuf[2 + 2 * i]);
        if (!dry && !(items[i] = item_json(n, now)))
            goto out;
        args[2 + 3 * i] = n->profile;
        args[3 + 3 * i] = n->id;
        args[4 + 3 * i] = items[i] ? items[i] : "";
        p->idx[i] = idx[i];
    }
    p->b = b;
    p->n = k;
    rc = zd_inbox_eval(gw->ib, deliver_script, nkeys, keys, nargs, args, part_reply, p);
    if (rc == 0)
        p = NULL;
out:
    for (int i = 0; items && i < k; i++)
        free(items[i]);
    free(items);
    free(p);
    free(args);
    free(keys);
    free(keybuf);
    return rc;
}

/* Starts b: one script per partition among notices[0..n). On failure nothing was sent. */
static int batch_start(inbox_gw *gw, gw_batch *b, const zd_notice *notices, size_t n, bool dry)
{
    int parts = gw->ib->partitions;
    int *pof = malloc(n * sizeof(int));
    size_t *idx = malloc(n * sizeof(size_t));
    int rc = 0;
    if (!pof || !idx) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        pof[i] = zd_partition_of(notices[i].profile, parts);
    long long now = zd_unix_ms();
    /* Group by partition: a script touches one slot. The first script sent can no longer be
     * taken back, so a later failure still reports the batch (its other notices TRANSIENT). */
    bool *sent = calloc(n, sizeof(bool));
    if (!sent) {
        rc = -ENOMEM;
        goto out;
    }
    b->pending = 1; /* held while sending, so no early reply can finish b */
    for (size_t i = 0; i < n; i++) {
        if (sent[i])
            continue;
        int k = 0;
        for (size_t j = i; j < n; j++) {
            if (!sent[j] && pof[j] == pof[i]) {
                idx[k++] = j;
                sent[j] = true;
            }
        }
        int r = send_part(gw, b, notices, pof[i], idx, k, dry, now);
        if (r == 0) {
            b->pending++;
        } else if (b->pending == 1) {
            rc = r; /* nothing sent yet: refuse the batch */
            break;
        } else {
            for (int x = 0; x < k; x++)
                set_result(&b->res[idx[x]], ZD_GW_TRANSIENT, "could not queue the inbox write");
        }
    }
    free(sent);
    b->pending--;
    if (rc == 0 && b->pending == 0)
        rc = -ENOMEM; /* cannot happen: n >= 1 */
out:
    free(pof);
    free(idx);
    return rc;
}

static gw_batch *batch_new(size_t n)
{
    gw_batch *b = calloc(1, sizeof(*b));
    if (b && !(b->res = calloc(n, sizeof(*b->res)))) {
        free(b);
        return NULL;
    }
    if (b)
        b->n = n;
    return b;
}

static void batch_link(inbox_gw *gw, gw_batch *b)
{
    b->gw = gw;
    b->next = gw->batches;
    if (gw->batches)
        gw->batches->prev = b;
    gw->batches = b;
}

static int gw_send(void *inst, const zd_notice *notices, size_t n, zd_gw_done_fn done, void *udata)
{
    inbox_gw *gw = inst;
    if (gw->dying)
        return -ECANCELED;
    if (n < 1 || n > ZD_INBOX_BATCH_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!abi_id_ok(notices[i].id))
            return -EINVAL;
    }
    gw_batch *b = batch_new(n);
    if (!b)
        return -ENOMEM;
    b->done = done;
    b->udata = udata;
    batch_link(gw, b);
    int rc = batch_start(gw, b, notices, n, false);
    if (rc) {
        batch_unlink(gw, b);
        batch_free(b);
    }
    return rc;
}

static int gw_test(void *inst, const zd_notice *notice, zd_gw_test_fn done, void *udata)
{
    inbox_gw *gw = inst;
    if (gw->dying)
        return -ECANCELED;
    if (!abi_id_ok(notice->id))
        return -EINVAL;
    gw_batch *b = batch_new(1);
    if (!b)
        return -ENOMEM;
    b->test = true;
    b->tdone = done;
    b->udata = udata;
    batch_link(gw, b);
    /* The "to" of a test names the profile to check; without one only Redis is asked. */
    zd_notice probe = *notice;
    probe.profile = notice->to;
    b->test_any = !notice->to[0];
    int rc = batch_start(gw, b, &probe, 1, true);
    if (rc) {
        batch_unlink(gw, b);
        batch_free(b);
    }
    return rc;
}

static int gw_check(const char *options_json, const char *key_prefix, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(options_json);
    int rc = 0;
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "\"%.60s\" must be an object", key_prefix);
        rc = -EINVAL;
    } else if (o->child) {
        snprintf(err, errlen, "unknown key \"%s%.64s\" (an inbox gateway takes no options)",
                 key_prefix, o->child->string);
        rc = -EINVAL;
    }
    cJSON_Delete(o);
    return rc;
}

static int gw_create(const zd_gw_host *host, const char *name, const char *options_json,
                     const char *key_prefix, void **out, char *err, size_t errlen)
{
    snprintf(err, errlen, "%.60s: inbox gateways are created by delivery/ (zd_inbox_gateway_new)",
             key_prefix);
    return -ENOTSUP;
}

static int gw_max_batch(void *inst)
{
    return ZD_INBOX_BATCH_MAX;
}

static void gw_stats(void *inst, zd_gw_stats *st)
{
    inbox_gw *gw = inst;
    *st = gw->st;
    st->queued = 0;
    st->inflight = 0;
    for (gw_batch *b = gw->batches; b; b = b->next)
        st->inflight++;
}

static void gw_free_now(inbox_gw *gw)
{
    /* Scripts in flight cannot be taken back: their batches are reported cancelled now and
     * freed when Redis answers (or the client fails them). */
    while (gw->batches) {
        gw_batch *b = gw->batches;
        batch_report(b, -ECANCELED);
    }
    free(gw->name);
    free(gw);
}

static void gw_destroy(void *inst)
{
    inbox_gw *gw = inst;
    if (!gw)
        return;
    if (gw->in_callback) {
        gw->dying = true;
        return;
    }
    gw_free_now(gw);
}

const zd_gateway_type zd_inbox_type = {
    .abi_version = ZD_GATEWAY_ABI_VERSION,
    .name = "inbox",
    .check = gw_check,
    .create = gw_create,
    .max_batch = gw_max_batch,
    .send = gw_send,
    .test = gw_test,
    .stats = gw_stats,
    .destroy = gw_destroy,
};

int zd_inbox_gateway_new(zd_inbox *ib, const char *name, void **out)
{
    inbox_gw *gw = calloc(1, sizeof(*gw));
    if (!gw || !(gw->name = strdup(name))) {
        free(gw);
        return -ENOMEM;
    }
    gw->ib = ib;
    *out = gw;
    return 0;
}
