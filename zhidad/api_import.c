/* POST /v1/profiles:import (SPEC §2): NDJSON lines validated like PUT bodies and written in
 * atomic per-partition batches, paced so that an import shares zhidad with everything else —
 * slices in idle loop turns, bounded windows of batches, a Redis connection of its own
 * (docs/DESIGN.md, "Imports"). */
#include <assert.h>
#include <cjson/cJSON.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/text.h"
#include "profiles/follower.h"
#include "profiles/json.h"
#include "profiles/store.h"
#include "redis/timer.h"
#include "zhidad/api.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

/* An import is validated and written in slices, each in an event-loop turn with nothing else
 * ready (a background timer), so that requests and Redis replies, the change-stream follower's
 * included, are served first; a slice runs at least every IMPORT_STARVE_MS all the same. Its
 * batches go to Redis on a connection of their own (docs/DESIGN.md, "Imports"). Batches in
 * flight are bounded per import and over all imports: an import whose window is full stops
 * validating until one of its batches is answered. So zhidad's memory follows the window, not
 * the body, and no batch waits in a queue long enough to time out because of imports alone. */
#define IMPORT_BATCH 200                /* lines per script call ... */
#define IMPORT_BATCH_BYTES (256u << 10) /* ... fewer when their lines add up to this */
#define IMPORT_SLICE_LINES 128          /* lines validated per loop turn (~1-2 ms) ... */
#define IMPORT_SLICE_BYTES (64u << 10)  /* ... fewer when they add up to this */
#define IMPORT_WINDOW 4                 /* batches in flight per import */
#define IMPORT_GLOBAL_WINDOW 16         /* batches in flight over all imports */
#define IMPORT_STARVE_MS 50             /* longest wait for a slice while others are busy */
#define IMPORT_ERRORS_MAX 100

typedef struct import_batch {
    struct import_op *op;
    int n;
    size_t bytes; /* of the lines in it */
    zd_profile *p[IMPORT_BATCH];
    int line[IMPORT_BATCH];
} import_batch;

/* READING: lines left to validate; FLUSHING: the last partial batches left to send; WAITING:
 * nothing more to send, answers outstanding. An abandoned import (client gone, zhidad
 * stopping) drops its unsent lines and goes straight to WAITING. It is answered and freed when
 * WAITING with nothing in flight. */
enum import_state { IMPORT_READING, IMPORT_FLUSHING, IMPORT_WAITING };

typedef struct import_op {
    zd_service *svc;
    struct zd_importer *im;
    zd_req *req;
    enum import_state state;
    const char *abandoned; /* NULL, or why: "client_gone", "shutting_down" */
    size_t body_len, pos;  /* the body's length when the import started; next byte to read */
    int lineno;
    int next_flush; /* FLUSHING: the next partition whose partial batch goes */
    import_batch *batches[ZD_PARTITIONS_MAX];
    int inflight; /* batches sent and not answered */
    long imported, unchanged, failed, lines;
    long deleted; /* profiles erased by "op": "delete" lines */
    cJSON *errors;
    int nerrors;
    int64_t t0_ns;                 /* zd_mono_ns() at the start */
    struct import_op *prev, *next; /* in im's list, in round-robin order */
} import_op;

/* The imports of one zhidad: their bulk Redis connection, and the turn that runs one slice of
 * the first import that may proceed, then moves it to the back. */
struct zd_importer {
    zd_service *svc;
    zd_redis *redis;
    zd_store *store;   /* on redis */
    zd_timer *turn;    /* background, zero delay: when the loop has nothing else to do ... */
    zd_timer *overdue; /* ... or after IMPORT_STARVE_MS at the latest */
    bool turn_armed, stopping;
    import_op *head, *tail;
    int nops;
    int inflight; /* batches in flight over all imports */
};

static void import_error(import_op *op, int line, const char *id, const zd_error *e)
{
    op->failed++;
    if (op->nerrors >= IMPORT_ERRORS_MAX)
        return;
    op->nerrors++;
    cJSON *item = cJSON_CreateObject();
    cJSON_AddNumberToObject(item, "line", line);
    if (id)
        cJSON_AddStringToObject(item, "id", id);
    cJSON *ej = cJSON_AddObjectToObject(item, "error");
    cJSON_AddStringToObject(ej, "code", e->code);
    cJSON_AddStringToObject(ej, "message", e->message);
    if (e->field[0])
        cJSON_AddStringToObject(ej, "field", e->field);
    cJSON_AddItemToArray(op->errors, item);
}

/* The one place an import's state changes; it asserts the transition is one we planned. */
static void import_set_state(import_op *op, enum import_state to)
{
    bool ok = (op->state == IMPORT_READING && to != IMPORT_READING) ||
              (op->state == IMPORT_FLUSHING && to == IMPORT_WAITING);
    assert(ok);
    (void)ok;
    op->state = to;
}

static void op_unlink(zd_importer *im, import_op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        im->head = op->next;
    if (op->next)
        op->next->prev = op->prev;
    else
        im->tail = op->prev;
    op->prev = op->next = NULL;
}

static void op_append(zd_importer *im, import_op *op)
{
    op->prev = im->tail;
    op->next = NULL;
    if (im->tail)
        im->tail->next = op;
    else
        im->head = op;
    im->tail = op;
}

static void import_finish(import_op *op)
{
    zd_importer *im = op->im;
    double ms = zd_ms_since(op->t0_ns);
    zd_req_log(op->req, ZD_LOG_INFO,
               "import: %ld lines, %ld imported, %ld deleted, %ld unchanged, %ld failed in %.0f "
               "ms%s%s",
               op->lines, op->imported, op->deleted, op->unchanged, op->failed, ms,
               op->abandoned ? "; abandoned: " : "", op->abandoned ? op->abandoned : "");
    if (op->abandoned && strcmp(op->abandoned, "shutting_down") == 0) {
        zd_req_reply_error(op->req, 503, "shutting_down",
                           "zhidad stopped before the import finished: %ld lines read, %ld "
                           "imported, %ld deleted, %ld unchanged, %ld failed; importing the body "
                           "again is safe",
                           op->lines, op->imported, op->deleted, op->unchanged, op->failed);
        cJSON_Delete(op->errors);
    } else {
        cJSON *out = cJSON_CreateObject();
        cJSON_AddNumberToObject(out, "lines", (double)op->lines);
        cJSON_AddNumberToObject(out, "imported", (double)op->imported);
        cJSON_AddNumberToObject(out, "deleted", (double)op->deleted);
        cJSON_AddNumberToObject(out, "unchanged", (double)op->unchanged);
        cJSON_AddNumberToObject(out, "failed", (double)op->failed);
        cJSON_AddItemToObject(out, "errors", op->errors);
        cJSON_AddNumberToObject(out, "took_ms", ms);
        zd_req_reply_json(op->req, 200, out);
    }
    op_unlink(im, op);
    im->nops--;
    free(op);
    /* An import churns through megabytes of parser objects; return them to the OS once the
     * last one is done. */
    if (im->nops == 0)
        malloc_trim(0);
}

static void batch_free(import_batch *b)
{
    for (int i = 0; i < b->n; i++)
        zd_profile_free(b->p[i]);
    free(b);
}

/* Counts a batch's outcome line by line (status != 0: every line failed as a whole). */
static void batch_results(import_op *op, import_batch *b, int status, const zd_put_result *res)
{
    for (int i = 0; i < b->n; i++) {
        zd_error e;
        if (status != 0) {
            zd_error_set(&e, "store_unavailable", NULL,
                         "the profile store did not answer (%s); the line may or may not have "
                         "been applied: importing it again is safe",
                         zd_strerror(status));
            import_error(op, b->line[i], b->p[i]->id, &e);
            continue;
        }
        switch (res[i].outcome) {
        case ZD_PUT_CREATED:
        case ZD_PUT_UPDATED:
            zd_follower_apply(op->svc->follower, res[i].gid, res[i].entry, res[i].epoch,
                              res[i].old_json, res[i].old_len, b->p[i]);
            op->imported++;
            break;
        case ZD_PUT_UNCHANGED:
            op->unchanged++;
            break;
        case ZD_PUT_FULL:
            zd_error_set(&e, "partition_full", "id",
                         "the profile's partition has used all its index ids");
            import_error(op, b->line[i], b->p[i]->id, &e);
            break;
        case ZD_PUT_CONFLICT:
            zd_error_set(&e, "conflict", "id", "concurrent write conflict");
            import_error(op, b->line[i], b->p[i]->id, &e);
            break;
        }
    }
}

/* Whether op may send one more batch now. */
static bool import_may_send(const import_op *op)
{
    return op->inflight < IMPORT_WINDOW && op->im->inflight < IMPORT_GLOBAL_WINDOW;
}

static bool import_runnable(const import_op *op)
{
    return op->state != IMPORT_WAITING && import_may_send(op);
}

/* Arms the next turn if some import may proceed; otherwise an answered batch will. */
static void importer_kick(zd_importer *im)
{
    if (im->turn_armed || im->stopping)
        return;
    for (const import_op *op = im->head; op; op = op->next) {
        if (import_runnable(op)) {
            zd_timer_arm(im->turn, 0, 0);
            zd_timer_arm(im->overdue, IMPORT_STARVE_MS, 0);
            im->turn_armed = true;
            return;
        }
    }
}

/* One of op's batches or deletes was answered: it may finish, and others may send again. */
static void import_answered(import_op *op)
{
    zd_importer *im = op->im;
    op->inflight--;
    im->inflight--;
    if (op->state == IMPORT_WAITING && op->inflight == 0)
        import_finish(op);
    importer_kick(im);
}

static void import_batch_done(int status, const zd_put_result *res, int n, void *udata)
{
    import_batch *b = udata;
    import_op *op = b->op;
    batch_results(op, b, status, res);
    batch_free(b);
    import_answered(op);
}

/* Sends the batch in *slot (if any) and empties the slot. */
static void import_flush(import_op *op, import_batch **slot, int part)
{
    import_batch *b = *slot;
    *slot = NULL;
    if (!b)
        return;
    int rc = zd_store_put_batch(op->im->store, part, b->p, b->n, NULL, import_batch_done, b);
    if (rc != 0) {
        batch_results(op, b, rc, NULL);
        batch_free(b);
        return;
    }
    op->inflight++;
    op->im->inflight++;
}

/* ---- import lines with "op" (bulk sync) ---- */

typedef struct import_del {
    import_op *op;
    int line;
    char id[ZD_ID_MAX + 1];
} import_del;

static void import_del_done(int status, zd_del_outcome outcome, uint32_t gid, const char *old_json,
                            size_t old_len, const char *entry, uint64_t epoch, void *udata)
{
    import_del *d = udata;
    import_op *op = d->op;
    if (status != 0) {
        zd_error e;
        zd_error_set(&e, "store_unavailable", NULL,
                     "the profile store did not answer (%s); the line may or may not have been "
                     "applied: importing it again is safe",
                     zd_strerror(status));
        import_error(op, d->line, d->id, &e);
    } else if (outcome == ZD_DEL_DELETED) {
        const zd_apikey *k = zd_req_key(op->req);
        zd_api_profile_erased(op->svc, k ? k->name : "-", k ? zd_role_name(k->role) : "none", gid,
                              old_json, old_len, entry, epoch);
        op->deleted++;
    } else {
        op->unchanged++; /* nothing to delete: what the line asks for is already so */
    }
    free(d);
    import_answered(op);
}

/* Erases profile id as line lineno asks. The lines before it that wrote the same partition go
 * first: their batch is sent now, ahead of the delete on the same (import) Redis connection, so
 * the lines of one import apply in their order. A delete counts against the windows like a
 * batch (a delete line may send its partition's batch too, and so go one over). */
static void import_delete(import_op *op, import_batch **batches, const char *id, int lineno)
{
    int part = zd_partition_of(id, op->svc->cfg->partitions);
    import_flush(op, &batches[part], part);
    import_del *d = calloc(1, sizeof(*d));
    zd_error e;
    if (!d) {
        zd_error_set(&e, "out_of_memory", NULL, "out of memory");
        import_error(op, lineno, id, &e);
        return;
    }
    d->op = op;
    d->line = lineno;
    snprintf(d->id, sizeof(d->id), "%s", id);
    int rc = zd_store_del(op->im->store, id, NULL, import_del_done, d);
    if (rc != 0) {
        zd_error_set(&e, "store_unavailable", NULL,
                     "the profile store did not answer (%s); the line was not applied: importing "
                     "it again is safe",
                     zd_strerror(rc));
        import_error(op, lineno, id, &e);
        free(d);
        return;
    }
    op->inflight++;
    op->im->inflight++;
}

/* A line with a top-level "op" (docs/API.md, import): "delete" erases the profile its "id"
 * names (the line holds nothing else), "put" is a plain line. Returns 1 when the line was
 * dealt with here (a delete, or an error), 0 with *put (caller frees) for a valid "put" line,
 * -1 for a line without "op", which the caller validates as usual. */
static int import_op_line(import_op *op, import_batch **batches, const char *s, size_t len,
                          int lineno, zd_profile **put)
{
    *put = NULL;
    /* Only a line that spells "op" is looked into before the usual validation. */
    if (!memmem(s, len, "\"op\"", 4))
        return -1;
    cJSON *doc;
    zd_error e;
    if (zd_json_parse(s, len, op->svc->cfg->json_depth_max, &doc, &e) != 0)
        return -1; /* the usual path reports the same error */
    const cJSON *jop = cJSON_GetObjectItemCaseSensitive(doc, "op");
    if (!cJSON_IsObject(doc) || !jop) {
        cJSON_Delete(doc);
        return -1;
    }
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const char *id = cJSON_IsString(jid) && zd_id_valid(jid->valuestring, strlen(jid->valuestring))
                         ? jid->valuestring
                         : NULL;
    int rc = 1;
    if (!cJSON_IsString(jop)) {
        zd_error_set(&e, "invalid_type", "op", "\"op\" must be a string: \"put\" or \"delete\"");
    } else if (strcmp(jop->valuestring, "put") == 0) {
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "op");
        if (!cJSON_IsString(jid))
            zd_error_set(&e, "missing_field", "id",
                         "the profile must carry its id: a string \"id\"");
        else if (!id)
            zd_error_set(&e, "invalid_id", "id",
                         "profile id must be 1-128 characters of [A-Za-z0-9_.:-]");
        else if (zd_profile_from_json(op->svc->cfg->schema, id, doc, put, &e) == 0)
            rc = 0;
    } else if (strcmp(jop->valuestring, "delete") == 0) {
        const cJSON *extra = doc->child;
        while (extra && (strcmp(extra->string, "id") == 0 || strcmp(extra->string, "op") == 0))
            extra = extra->next;
        if (!cJSON_IsString(jid))
            zd_error_set(&e, "missing_field", "id",
                         "a delete line must carry the id to delete: a string \"id\"");
        else if (!id)
            zd_error_set(&e, "invalid_id", "id",
                         "profile id must be 1-128 characters of [A-Za-z0-9_.:-]");
        else if (extra)
            zd_error_set(&e, "unknown_field", extra->string,
                         "a delete line holds only \"id\" and \"op\", not \"%.64s\"",
                         extra->string);
        else
            rc = 2;
    } else {
        zd_error_set(&e, "invalid_value", "op", "\"op\" must be \"put\" or \"delete\"");
    }
    if (rc == 2) {
        import_delete(op, batches, id, lineno);
        rc = 1;
    } else if (rc == 1) {
        import_error(op, lineno, id, &e);
    }
    cJSON_Delete(doc);
    return rc;
}

/* Validates one NDJSON line, through the same validator as a PUT body, and adds it to its
 * partition's batch. */
static void import_line(import_op *op, import_batch **batches, const char *s, size_t len,
                        int lineno)
{
    zd_error e;
    zd_profile *p;
    char id[ZD_ID_MAX + 1];
    int r = import_op_line(op, batches, s, len, lineno, &p);
    if (r > 0)
        return;
    if (r < 0 && zd_profile_from_text(op->svc->cfg->schema, NULL, s, len,
                                      op->svc->cfg->json_depth_max, &p, id, &e) != 0) {
        import_error(op, lineno, id[0] ? id : NULL, &e);
        return;
    }
    int part = zd_partition_of(p->id, op->svc->cfg->partitions);
    if (!batches[part]) {
        batches[part] = calloc(1, sizeof(import_batch));
        if (!batches[part]) {
            zd_error_set(&e, "out_of_memory", NULL, "out of memory");
            import_error(op, lineno, p->id, &e);
            zd_profile_free(p);
            return;
        }
        batches[part]->op = op;
    }
    import_batch *b = batches[part];
    b->p[b->n] = p;
    b->line[b->n] = lineno;
    b->bytes += len;
    if (++b->n == IMPORT_BATCH || b->bytes >= IMPORT_BATCH_BYTES)
        import_flush(op, &batches[part], part);
}

/* Checks one line of the body (l bytes at s, without the line end) and hands it on. */
static void import_text(import_op *op, const char *s, size_t l)
{
    bool blank = true;
    for (size_t i = 0; i < l && blank; i++)
        blank = s[i] == ' ' || s[i] == '\t';
    if (blank)
        return;
    op->lines++;
    import_line(op, op->batches, s, l, op->lineno);
}

/* Drops op's unsent lines; it is answered once what it already sent is answered. */
static void import_abandon(import_op *op, const char *why)
{
    op->abandoned = why;
    for (int p = 0; p < ZD_PARTITIONS_MAX; p++) {
        if (op->batches[p])
            batch_free(op->batches[p]);
        op->batches[p] = NULL;
    }
    if (op->state != IMPORT_WAITING)
        import_set_state(op, IMPORT_WAITING);
    if (op->inflight == 0)
        import_finish(op);
}

/* One turn of op: validates up to a slice of lines, sending each batch as it fills, while its
 * window allows; then the last partial batches. May finish (free) op. */
static void import_slice(import_op *op)
{
    size_t len;
    const char *body = zd_req_body(op->req, &len);
    if (!zd_req_alive(op->req) || len != op->body_len) {
        /* The client left (and with it, perhaps, the body): nobody waits for the rest. */
        import_abandon(op, "client_gone");
        return;
    }
    if (op->state == IMPORT_READING) {
        size_t start = op->pos;
        for (int n = 0; op->pos < len && n < IMPORT_SLICE_LINES &&
                        op->pos - start < IMPORT_SLICE_BYTES && import_may_send(op);
             n++) {
            const char *nl = memchr(body + op->pos, '\n', len - op->pos);
            size_t end = nl ? (size_t)(nl - body) : len;
            size_t l = end - op->pos;
            op->lineno++;
            if (l > 0 && body[op->pos + l - 1] == '\r')
                l--;
            import_text(op, body + op->pos, l);
            op->pos = end + 1;
        }
        if (op->pos >= len)
            import_set_state(op, IMPORT_FLUSHING);
    }
    if (op->state == IMPORT_FLUSHING) {
        int parts = op->svc->cfg->partitions;
        while (op->next_flush < parts && (!op->batches[op->next_flush] || import_may_send(op))) {
            import_flush(op, &op->batches[op->next_flush], op->next_flush);
            op->next_flush++;
        }
        if (op->next_flush >= parts)
            import_set_state(op, IMPORT_WAITING);
    }
    if (op->state == IMPORT_WAITING && op->inflight == 0)
        import_finish(op);
}

static void import_turn(void *udata)
{
    zd_importer *im = udata;
    im->turn_armed = false;
    zd_timer_stop(im->turn);
    zd_timer_stop(im->overdue);
    for (import_op *op = im->head; op; op = op->next) {
        if (import_runnable(op)) {
            /* Round robin: the import that runs now goes to the back. */
            op_unlink(im, op);
            op_append(im, op);
            import_slice(op);
            break;
        }
    }
    importer_kick(im);
}

static void handle_import(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    zd_importer *im = svc->importer;
    size_t len;
    zd_req_body(req, &len);
    if (!im || im->stopping) {
        zd_req_reply_error(req, 503, "shutting_down", "the server is shutting down");
        return;
    }
    import_op *op = calloc(1, sizeof(*op));
    if (!op || !(op->errors = cJSON_CreateArray())) {
        free(op);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    op->svc = svc;
    op->im = im;
    op->req = req;
    op->body_len = len;
    op->t0_ns = zd_mono_ns();
    op_append(im, op);
    im->nops++;
    importer_kick(im);
}

int zd_api_import_start(zd_service *svc)
{
    zd_importer *im = calloc(1, sizeof(*im));
    if (!im)
        return -ENOMEM;
    im->svc = svc;
    zd_redis_opts ro = zd_config_redis_opts(svc->cfg, "import");
    im->redis = zd_redis_new(svc->base, &ro);
    im->store = im->redis
                    ? zd_store_new(im->redis, svc->cfg->partitions, svc->cfg->change_stream_maxlen)
                    : NULL;
    im->turn = zd_timer_new_background(svc->base, import_turn, im);
    im->overdue = zd_timer_new(svc->base, import_turn, im);
    if (!im->store || !im->turn || !im->overdue) {
        zd_timer_free(im->turn);
        zd_timer_free(im->overdue);
        zd_store_free(im->store);
        zd_redis_free(im->redis);
        free(im);
        return -ENOMEM;
    }
    svc->importer = im;
    return 0;
}

void zd_api_import_stop(zd_service *svc)
{
    zd_importer *im = svc->importer;
    if (!im)
        return;
    im->stopping = true;
    zd_timer_free(im->turn);
    zd_timer_free(im->overdue);
    im->turn = im->overdue = NULL;
    for (import_op *op = im->head, *next; op; op = next) {
        next = op->next;
        if (!op->abandoned)
            import_abandon(op, "shutting_down");
    }
    /* Batches still in flight are answered -ECANCELED from inside zd_redis_free(), which
     * finishes the imports they belong to. */
    zd_store_free(im->store);
    zd_redis_free(im->redis);
    svc->importer = NULL;
    free(im);
}

void zd_api_import_stats(const zd_service *svc, zd_import_stats *st)
{
    memset(st, 0, sizeof(*st));
    const zd_importer *im = svc->importer;
    if (!im)
        return;
    st->active = im->nops;
    st->batches_inflight = im->inflight;
    zd_redis_get_stats(im->redis, &st->redis);
}

int zd_api_import_register(zd_service *svc)
{
    /* An import while not ready is refused whole (503 not_ready) rather than answered line by
     * line with store_unavailable. */
    return zd_http_route_flags(svc->http, "POST", "/v1/profiles:import",
                               ZD_ROLE_APP | ZD_ROLE_ADMIN,
                               ZD_ROUTE_LARGE_BODY | ZD_ROUTE_NEEDS_READY, handle_import, svc);
}
