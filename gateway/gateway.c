/* The gateway host: type registry, shared retry options, config checks, and the zd_gateway
 * wrapper around a type's instance. */
#include "gateway/gateway.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/log.h"
#include "gateway/sms_http.h"
#include "gateway/smtp.h"
#include "gateway/webhook.h"

#define TYPES_MAX 32

/* Built-in type names. A NULL type is not created here: a layer above creates its instances and
 * hands them over with zd_gateway_adopt() (inbox: it writes to Redis, which gateway/ may not
 * include; delivery/inbox.c). Its name is reserved and its shared options are checked;
 * own_options says whether it may have others (inbox has none). */
static const struct builtin {
    const char *name;
    const zd_gateway_type *type;
    bool own_options;
    const char *made_by; /* NULL type: the layer that creates its instances */
} builtins[] = {
    {"webhook", &zd_webhook_type, true, NULL},
    {"inbox", NULL, false, "delivery/ (delivery/gateways.c)"},
    {"sms_http", &zd_sms_http_type, true, NULL},
    {"smtp", &zd_smtp_type, true, NULL},
};
#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

/* Plugin types (zd_gateway_type_register). */
static const zd_gateway_type *registered[TYPES_MAX];
static int nregistered;

static const char *const shared_keys[] = {"type", "max_attempts", "retry_base_ms", "retry_max_ms",
                                          NULL};

struct zd_gateway {
    const zd_gateway_type *type;
    void *inst;
    char *name;
    zd_gateway_retry retry;
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static const struct builtin *builtin_named(const char *name)
{
    for (size_t i = 0; i < NBUILTINS; i++) {
        if (strcmp(builtins[i].name, name) == 0)
            return &builtins[i];
    }
    return NULL;
}

bool zd_gateway_type_builtin(const char *name)
{
    return builtin_named(name) != NULL;
}

const zd_gateway_type *zd_gateway_type_find(const char *name)
{
    const struct builtin *b = builtin_named(name);
    if (b)
        return b->type;
    for (int i = 0; i < nregistered; i++) {
        if (strcmp(registered[i]->name, name) == 0)
            return registered[i];
    }
    return NULL;
}

int zd_gateway_type_register(const zd_gateway_type *t, char *err, size_t errlen)
{
    if (t->abi_version != ZD_GATEWAY_ABI_VERSION)
        return fail(err, errlen, "gateway type built for ABI version %u, zhidad has %d",
                    t->abi_version, ZD_GATEWAY_ABI_VERSION);
    if (!t->name || !t->name[0] || !t->check || !t->create || !t->max_batch || !t->send ||
        !t->destroy)
        return fail(err, errlen, "gateway type \"%.64s\" lacks its name or a callback",
                    t->name ? t->name : "");
    if (builtin_named(t->name) || zd_gateway_type_find(t->name)) {
        fail(err, errlen, "gateway type \"%.64s\" exists already", t->name);
        return -EEXIST;
    }
    if (nregistered == TYPES_MAX)
        return fail(err, errlen, "more than %d gateway types", TYPES_MAX);
    registered[nregistered++] = t;
    return 0;
}

/* ---- shared options --------------------------------------------------------------------- */

static int get_long(const cJSON *o, const char *gw, const char *key, long lo, long hi, long *out,
                    char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        return 0;
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
    if (!cJSON_IsNumber(v) || !(d >= (double)lo && d <= (double)hi) || d != (double)(long)d)
        return fail(err, errlen, "\"gateways.%s.%s\" must be an integer %ld..%ld", gw, key, lo, hi);
    *out = (long)d;
    return 0;
}

static bool is_shared(const char *key)
{
    for (int i = 0; shared_keys[i]; i++) {
        if (strcmp(shared_keys[i], key) == 0)
            return true;
    }
    return false;
}

/* Checks the shared part of opts and fills *retry; *type_out is the type's entry. */
static int check_shared(const char *name, const cJSON *opts, zd_gateway_retry *retry,
                        const struct builtin **b_out, const zd_gateway_type **type_out, char *err,
                        size_t errlen)
{
    if (!cJSON_IsObject(opts))
        return fail(err, errlen, "\"gateways.%s\" must be an object with a \"type\"", name);
    const cJSON *m;
    cJSON_ArrayForEach(m, opts)
    {
        for (const cJSON *p = opts->child; p != m; p = p->next) {
            if (strcmp(p->string, m->string) == 0)
                return fail(err, errlen, "duplicate key \"gateways.%s.%.64s\"", name, m->string);
        }
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(opts, "type");
    if (!cJSON_IsString(t) || !t->valuestring[0])
        return fail(err, errlen, "\"gateways.%s.type\" must be a non-empty string", name);
    *b_out = builtin_named(t->valuestring);
    *type_out = zd_gateway_type_find(t->valuestring);
    if (!*b_out && !*type_out) {
        char known[256] = "";
        size_t at = 0;
        for (size_t i = 0; i < NBUILTINS; i++)
            at += (size_t)snprintf(known + at, sizeof(known) - at, "%s%s", i ? ", " : "",
                                   builtins[i].name);
        for (int i = 0; i < nregistered && at < sizeof(known); i++)
            at += (size_t)snprintf(known + at, sizeof(known) - at, ", %s", registered[i]->name);
        return fail(err, errlen, "\"gateways.%s.type\": unknown gateway type \"%.64s\" (known: %s)",
                    name, t->valuestring, known);
    }
    *retry = (zd_gateway_retry){.max_attempts = 10, .base_ms = 1000, .max_ms = 3600000};
    long attempts = retry->max_attempts;
    if (get_long(opts, name, "max_attempts", 1, 1000, &attempts, err, errlen) ||
        get_long(opts, name, "retry_base_ms", 100, 3600000, &retry->base_ms, err, errlen) ||
        get_long(opts, name, "retry_max_ms", 100, 86400000, &retry->max_ms, err, errlen))
        return -EINVAL;
    retry->max_attempts = (int)attempts;
    if (retry->max_ms < retry->base_ms)
        return fail(err, errlen, "\"gateways.%s.retry_max_ms\" must be at least retry_base_ms",
                    name);
    if (*b_out && !(*b_out)->own_options) {
        cJSON_ArrayForEach(m, opts)
        {
            if (!is_shared(m->string))
                return fail(err, errlen,
                            "unknown key \"gateways.%s.%.64s\" (a %s gateway takes only "
                            "max_attempts, retry_base_ms and retry_max_ms)",
                            name, m->string, (*b_out)->name);
        }
    }
    return 0;
}

/* The type's own options as JSON text (malloc'd): opts without the shared keys. */
static char *own_options(const cJSON *opts)
{
    cJSON *copy = cJSON_Duplicate(opts, 1);
    if (!copy)
        return NULL;
    for (int i = 0; shared_keys[i]; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(copy, shared_keys[i]);
    char *text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    return text;
}

int zd_gateway_check(const char *name, const cJSON *opts, char *err, size_t errlen)
{
    zd_gateway_retry retry;
    const struct builtin *b = NULL;
    const zd_gateway_type *t = NULL;
    int rc = check_shared(name, opts, &retry, &b, &t, err, errlen);
    if (rc || !t)
        return rc;
    char *text = own_options(opts);
    if (!text)
        return fail(err, errlen, "out of memory");
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "gateways.%s.", name);
    rc = t->check(text, prefix, err, errlen);
    /* The text may hold secrets. */
    explicit_bzero(text, strlen(text));
    free(text);
    return rc;
}

/* ---- the default host ------------------------------------------------------------------- */

static void host_log(const zd_gw_host *h, int level, const char *msg)
{
    zd_log((enum zd_log_level)(level < 0 ? 0 : level > 3 ? 3 : level), "%s", msg);
}

static int64_t host_monotonic_ms(const zd_gw_host *h)
{
    return zd_mono_ms();
}

static int64_t host_unix_ms(const zd_gw_host *h)
{
    return zd_unix_ms();
}

void zd_gateway_host_init(zd_gw_host *h, void *event_base)
{
    *h = (zd_gw_host){
        .abi_version = ZD_GATEWAY_ABI_VERSION,
        .event_base = event_base,
        .log = host_log,
        .monotonic_ms = host_monotonic_ms,
        .unix_ms = host_unix_ms,
    };
}

/* ---- instances -------------------------------------------------------------------------- */

int zd_gateway_new(const zd_gw_host *host, const char *name, const cJSON *opts, zd_gateway **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    zd_gateway_retry retry;
    const struct builtin *b = NULL;
    const zd_gateway_type *t = NULL;
    int rc = check_shared(name, opts, &retry, &b, &t, err, errlen);
    if (rc)
        return rc;
    if (!t) {
        fail(err, errlen, "gateways.%s: %s gateways are created by %s", name, b->name, b->made_by);
        return -ENOTSUP;
    }
    zd_gateway *g = calloc(1, sizeof(*g));
    char *text = own_options(opts);
    rc = -ENOMEM;
    if (!g || !text || !(g->name = strdup(name)))
        goto fail;
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "gateways.%s.", name);
    if ((rc = t->create(host, name, text, prefix, &g->inst, err, errlen)))
        goto fail;
    g->type = t;
    g->retry = retry;
    explicit_bzero(text, strlen(text));
    free(text);
    *out = g;
    return 0;
fail:
    if (rc == -ENOMEM)
        fail(err, errlen, "out of memory");
    if (text) {
        explicit_bzero(text, strlen(text));
        free(text);
    }
    if (g)
        free(g->name);
    free(g);
    return rc;
}

int zd_gateway_adopt(const char *name, const cJSON *opts, const zd_gateway_type *t, void *inst,
                     zd_gateway **out, char *err, size_t errlen)
{
    *out = NULL;
    zd_gateway_retry retry;
    const struct builtin *b = NULL;
    const zd_gateway_type *found = NULL;
    int rc = check_shared(name, opts, &retry, &b, &found, err, errlen);
    if (rc == 0 && (!b || b->type || !b->made_by || strcmp(b->name, t->name) != 0))
        rc = fail(err, errlen, "gateways.%s: not a gateway of type %s", name, t->name);
    zd_gateway *g = NULL;
    if (rc == 0 && (!(g = calloc(1, sizeof(*g))) || !(g->name = strdup(name)))) {
        rc = -ENOMEM;
        fail(err, errlen, "out of memory");
    }
    if (rc) {
        if (g)
            free(g->name);
        free(g);
        t->destroy(inst);
        return rc;
    }
    g->type = t;
    g->inst = inst;
    g->retry = retry;
    *out = g;
    return 0;
}

const char *zd_gateway_name(const zd_gateway *g)
{
    return g->name;
}

const char *zd_gateway_type_name(const zd_gateway *g)
{
    return g->type->name;
}

const zd_gateway_retry *zd_gateway_retry_opts(const zd_gateway *g)
{
    return &g->retry;
}

int zd_gateway_max_batch(const zd_gateway *g)
{
    return g->type->max_batch(g->inst);
}

int zd_gateway_send(zd_gateway *g, const zd_notice *notices, size_t n, zd_gw_done_fn done,
                    void *udata)
{
    return g->type->send(g->inst, notices, n, done, udata);
}

/* A test send's callback and its data, between the type and the caller. */
typedef struct test_ctx {
    zd_gw_test_fn done;
    void *udata;
} test_ctx;

static void test_answer(int status, const zd_gw_result *result, const char *answer, void *udata)
{
    test_ctx *c = udata;
    /* The receiver may echo the notice, contact included. */
    char masked[2048];
    zd_mask_pii(answer ? answer : "", masked, sizeof(masked));
    c->done(status, result, masked, c->udata);
    free(c);
}

static void test_via_send(int status, const zd_gw_result *results, size_t n, void *udata)
{
    test_answer(status, &results[0], "", udata);
}

int zd_gateway_test(zd_gateway *g, const zd_notice *notice, zd_gw_test_fn done, void *udata)
{
    test_ctx *c = malloc(sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->done = done;
    c->udata = udata;
    int rc = g->type->test ? g->type->test(g->inst, notice, test_answer, c)
                           : g->type->send(g->inst, notice, 1, test_via_send, c);
    if (rc)
        free(c);
    return rc;
}

void zd_gateway_stats(const zd_gateway *g, zd_gw_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (g->type->stats)
        g->type->stats(g->inst, st);
}

void zd_gateway_free(zd_gateway *g)
{
    if (!g)
        return;
    g->type->destroy(g->inst);
    free(g->name);
    free(g);
}
