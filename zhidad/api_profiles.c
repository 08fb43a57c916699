/* Profile endpoints (SPEC §2): PUT / GET / PATCH / DELETE /v1/profiles/{id} and the NDJSON
 * bulk import. Validation happens here, before anything reaches Redis, so a bad line or body
 * is never half-applied; the write itself is one atomic script (profiles/store.c). */
#include <cjson/cJSON.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/text.h"
#include "profiles/follower.h"
#include "profiles/json.h"
#include "profiles/store.h"
#include "zhidad/api.h"
#include "zhidad/audit.h"
#include "zhidad/http.h"
#include "zhidad/precond.h"
#include "zhidad/service.h"

#define PATCH_RETRIES 5
#define MERGE_PATCH "application/merge-patch+json"
#define IMPORT_BATCH 200
#define IMPORT_ERRORS_MAX 100

/* The stored profile as answered to clients: {"id": ..., <document>, "version": n}. */
static cJSON *profile_answer(const char *id, const char *json, size_t len, uint64_t version)
{
    cJSON *doc = zd_profile_stored_doc(json, len);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "id", id);
    if (doc) {
        cJSON *it = doc->child;
        while (it) {
            cJSON *next = it->next;
            cJSON_AddItemToObject(out, it->string, cJSON_DetachItemViaPointer(doc, it));
            it = next;
        }
        cJSON_Delete(doc);
    }
    cJSON_AddNumberToObject(out, "version", (double)version);
    return out;
}

static int store_status_http(int status)
{
    return status == -ENOMEM ? 500 : 503;
}

static void reply_store_error(zd_req *req, int status)
{
    zd_req_reply_error(req, store_status_http(status), "store_unavailable",
                       "the profile store did not answer (%s); the write may or may not have "
                       "happened: retrying it is safe",
                       zd_strerror(status));
}

/* Reads If-Match / If-None-Match (zhidad/precond.h); answers 400 itself when malformed. */
static bool read_precond(zd_req *req, zd_precond *cond)
{
    zd_error err;
    if (zd_precond_parse(zd_req_header(req, "If-Match"), zd_req_header(req, "If-None-Match"), cond,
                         &err) == 0)
        return true;
    zd_req_reply_zderror(req, 400, &err);
    return false;
}

/* 412: nothing was written. known: the current state was read (exists, version). */
static void reply_precondition_failed(zd_req *req, bool known, bool exists, uint64_t version)
{
    char etag[ZD_ETAG_MAX];
    if (known && exists) {
        zd_req_set_header(req, "ETag", zd_etag(version, etag));
        zd_req_reply_error(req, 412, "precondition_failed",
                           "the profile is at version %llu, which the If-Match/If-None-Match "
                           "header excludes; nothing was written",
                           (unsigned long long)version);
    } else if (known) {
        zd_req_reply_error(req, 412, "precondition_failed",
                           "there is no profile with this id, and If-Match requires one; nothing "
                           "was written");
    } else {
        zd_req_reply_error(req, 412, "precondition_failed",
                           "the profile is not at the version If-Match names (or it exists and "
                           "If-None-Match is \"*\"); nothing was written");
    }
}

static void set_etag(zd_req *req, uint64_t version)
{
    char etag[ZD_ETAG_MAX];
    zd_req_set_header(req, "ETag", zd_etag(version, etag));
}

static bool check_id(zd_req *req, const char *id)
{
    if (id && zd_id_valid(id, strlen(id)))
        return true;
    zd_req_reply_error(req, 400, "invalid_id",
                       "profile id must be 1-128 characters of "
                       "[A-Za-z0-9_.:-]");
    return false;
}

/* ---- PUT and PATCH ---------------------------------------------------------------------- */

typedef struct write_op {
    zd_service *svc;
    zd_req *req;
    zd_profile *p;
    cJSON *patch; /* PATCH only: the merge patch, re-applied on a version conflict */
    int attempts;
    zd_precond cond; /* If-Match / If-None-Match */
    bool read_first; /* PUT whose preconditions the store cannot check alone: read, check, write
                        expecting what was read */
} write_op;

static void write_op_free(write_op *w)
{
    zd_profile_free(w->p);
    cJSON_Delete(w->patch);
    free(w);
}

static void patch_start(write_op *w);
static void put_read(write_op *w);

static void put_done(int status, const zd_put_result *res, int n, void *udata)
{
    write_op *w = udata;
    if (status != 0) {
        reply_store_error(w->req, status);
        write_op_free(w);
        return;
    }
    switch (res[0].outcome) {
    case ZD_PUT_CONFLICT:
        if (!w->patch && !w->read_first) {
            /* The store checked If-Match / If-None-Match: * itself. */
            reply_precondition_failed(w->req, false, false, 0);
            break;
        }
        /* Changed since it was read: read again (and check the preconditions again). */
        if (++w->attempts < PATCH_RETRIES) {
            if (w->patch) {
                zd_profile_free(w->p);
                w->p = NULL;
                patch_start(w);
            } else {
                put_read(w);
            }
            return;
        }
        zd_req_reply_error(w->req, 409, "conflict",
                           "profile changed concurrently %d times; retry the %s", w->attempts,
                           w->patch ? "PATCH" : "PUT");
        break;
    case ZD_PUT_FULL:
        zd_req_reply_error(w->req, 507, "partition_full",
                           "the profile's partition has used all its index ids");
        break;
    case ZD_PUT_CREATED:
    case ZD_PUT_UPDATED:
    case ZD_PUT_UNCHANGED: {
        if (res[0].outcome != ZD_PUT_UNCHANGED)
            zd_follower_apply(w->svc->follower, res[0].gid, res[0].entry, res[0].epoch,
                              res[0].old_json, res[0].old_len, w->p);
        char *json = zd_profile_to_json(w->p);
        set_etag(w->req, res[0].version);
        if (!json)
            zd_req_reply_error(w->req, 500, "out_of_memory",
                               "the profile was stored (version %llu) but the answer could not "
                               "be built: out of memory",
                               (unsigned long long)res[0].version);
        else
            zd_req_reply_json(w->req, 200,
                              profile_answer(w->p->id, json, strlen(json), res[0].version));
        free(json);
        break;
    }
    }
    write_op_free(w);
}

static void write_profile(write_op *w, const char *expect)
{
    int part = zd_partition_of(w->p->id, w->svc->cfg->partitions);
    const char *ex[1] = {expect};
    int rc = zd_store_put_batch(w->svc->store, part, &w->p, 1, ex, put_done, w);
    if (rc != 0) {
        reply_store_error(w->req, rc);
        write_op_free(w);
    }
}

static void handle_put(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *id = zd_req_param(req, "id");
    if (!check_id(req, id))
        return;
    /* The body goes through the same validator as each import line. */
    size_t len;
    const char *body = zd_req_body(req, &len);
    zd_error err;
    zd_profile *p;
    int rc = zd_profile_from_text(svc->cfg->schema, id, body, len, svc->cfg->json_depth_max, &p,
                                  NULL, &err);
    if (rc != 0) {
        zd_req_reply_zderror(req, rc == -ENOMEM ? 500 : 400, &err);
        return;
    }
    zd_precond cond;
    if (!read_precond(req, &cond)) {
        zd_profile_free(p);
        return;
    }
    write_op *w = calloc(1, sizeof(*w));
    if (!w) {
        zd_profile_free(p);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    w->svc = svc;
    w->req = req;
    w->p = p;
    w->cond = cond;
    char buf[ZD_ETAG_MAX];
    const char *expect;
    if (zd_precond_direct(&cond, buf, &expect)) {
        write_profile(w, expect);
    } else {
        w->read_first = true;
        put_read(w);
    }
}

/* PUT with preconditions the store cannot check alone ("*", lists): the current version is
 * read and checked here, and the write expects that version, so a write in between makes it
 * read again rather than overwrite. */
static void put_got(int status, const char *json, size_t len, uint32_t gid, uint64_t version,
                    void *udata)
{
    write_op *w = udata;
    if (status != 0) {
        reply_store_error(w->req, status);
        write_op_free(w);
        return;
    }
    if (!zd_precond_holds(&w->cond, json != NULL, version)) {
        reply_precondition_failed(w->req, true, json != NULL, version);
        write_op_free(w);
        return;
    }
    char ver[24];
    snprintf(ver, sizeof(ver), "%llu", (unsigned long long)version);
    write_profile(w, json ? ver : "-");
}

static void put_read(write_op *w)
{
    int rc = zd_store_get(w->svc->store, w->p->id, put_got, w);
    if (rc != 0) {
        reply_store_error(w->req, rc);
        write_op_free(w);
    }
}

static void patch_got(int status, const char *json, size_t len, uint32_t gid, uint64_t version,
                      void *udata)
{
    write_op *w = udata;
    if (status != 0) {
        reply_store_error(w->req, status);
        write_op_free(w);
        return;
    }
    const char *id = zd_req_param(w->req, "id");
    if (!zd_precond_holds(&w->cond, json != NULL, version)) {
        reply_precondition_failed(w->req, true, json != NULL, version);
        write_op_free(w);
        return;
    }
    if (!json) {
        zd_req_reply_error(w->req, 404, "not_found", "no profile with this id");
        write_op_free(w);
        return;
    }
    zd_error err;
    cJSON *cur = zd_profile_stored_doc(json, len);
    if (!cur) {
        /* Merging onto nothing would replace the stored profile by the patch alone. */
        zd_req_log(w->req, ZD_LOG_WARN,
                   "profiles: stored profile %.128s is not valid JSON; PATCH refused", id);
        zd_req_reply_error(w->req, 500, "invalid_stored_profile",
                           "the stored profile is not valid JSON; replace it with PUT");
        write_op_free(w);
        return;
    }
    cJSON *merged = zd_json_merge_patch(cur, w->patch);
    cJSON_Delete(cur);
    /* zd_profile_from_json checks the merged result as a whole, values included. */
    int rc = merged ? zd_profile_from_json(w->svc->cfg->schema, id, merged, &w->p, &err)
                    : zd_error_set(&err, "out_of_memory", NULL, "out of memory");
    cJSON_Delete(merged);
    if (rc != 0) {
        zd_req_reply_zderror(w->req, strcmp(err.code, "out_of_memory") == 0 ? 500 : 400, &err);
        write_op_free(w);
        return;
    }
    char ver[24];
    snprintf(ver, sizeof(ver), "%llu", (unsigned long long)version);
    write_profile(w, ver);
}

static void patch_start(write_op *w)
{
    int rc = zd_store_get(w->svc->store, zd_req_param(w->req, "id"), patch_got, w);
    if (rc != 0) {
        reply_store_error(w->req, rc);
        write_op_free(w);
    }
}

static void handle_patch(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    if (!check_id(req, zd_req_param(req, "id")))
        return;
    /* A PATCH body means nothing without its type: only a merge patch is understood. */
    if (!zd_req_content_type_is(req, MERGE_PATCH)) {
        zd_req_set_header(req, "Accept-Patch", MERGE_PATCH);
        zd_req_reply_error(
            req, 415, "unsupported_media_type",
            "PATCH takes a JSON merge patch (RFC 7386) with Content-Type: " MERGE_PATCH);
        return;
    }
    zd_precond cond;
    if (!read_precond(req, &cond))
        return;
    cJSON *body = zd_req_json(req);
    if (!body)
        return;
    write_op *w = calloc(1, sizeof(*w));
    if (!w) {
        cJSON_Delete(body);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    w->svc = svc;
    w->req = req;
    w->patch = body;
    w->cond = cond;
    patch_start(w);
}

/* ---- GET and DELETE --------------------------------------------------------------------- */

static void get_done(int status, const char *json, size_t len, uint32_t gid, uint64_t version,
                     void *udata)
{
    zd_req *req = udata;
    if (status != 0)
        reply_store_error(req, status);
    else if (!json)
        zd_req_reply_error(req, 404, "not_found", "no profile with this id");
    else {
        set_etag(req, version);
        zd_req_reply_json(req, 200, profile_answer(zd_req_param(req, "id"), json, len, version));
    }
}

static void handle_get(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *id = zd_req_param(req, "id");
    if (!check_id(req, id))
        return;
    int rc = zd_store_get(svc->store, id, get_done, req);
    if (rc != 0)
        reply_store_error(req, rc);
}

typedef struct del_op {
    zd_service *svc;
    zd_req *req;
    char *who; /* the API key's name, for the audit record */
    char *role;
    zd_precond cond;
    bool read_first; /* preconditions checked here against a read (see put_got) */
    int attempts;
} del_op;

static void del_op_free(del_op *d)
{
    free(d->who);
    free(d->role);
    free(d);
}

/* Audit and index side of an erasure, shared with import's delete lines. */
static void erased(zd_service *svc, const char *who, const char *role, uint32_t gid,
                   const char *old_json, size_t old_len, const char *entry, uint64_t epoch)
{
    zd_follower_apply(svc->follower, gid, entry, epoch, old_json, old_len, NULL);
    /* The id itself may be an ID number: the audit names the erased profile only by its
     * partition and dense id, which identify no one once the profile is gone. */
    char target[32];
    snprintf(target, sizeof(target), "p%u/%u", gid >> ZD_DENSE_BITS, gid & ZD_DENSE_MAX);
    zd_audit(svc->redis, "profile.delete", who, role, target);
}

static void del_read(del_op *d);

static void del_done(int status, zd_del_outcome outcome, uint32_t gid, const char *old_json,
                     size_t old_len, const char *entry, uint64_t epoch, void *udata)
{
    del_op *d = udata;
    const char *id = zd_req_param(d->req, "id");
    if (status != 0) {
        reply_store_error(d->req, status);
    } else if (outcome == ZD_DEL_CONFLICT) {
        if (d->read_first && ++d->attempts < PATCH_RETRIES) {
            del_read(d); /* changed since it was read: check again */
            return;
        }
        if (d->read_first)
            zd_req_reply_error(d->req, 409, "conflict",
                               "profile changed concurrently %d times; retry the DELETE",
                               d->attempts);
        else
            reply_precondition_failed(d->req, false, false, 0);
    } else if (outcome == ZD_DEL_ABSENT) {
        /* If-Match requires a current version. */
        if (d->cond.match)
            reply_precondition_failed(d->req, true, false, 0);
        else
            zd_req_reply_error(d->req, 404, "not_found", "no profile with this id");
    } else {
        erased(d->svc, d->who, d->role, gid, old_json, old_len, entry, epoch);
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "id", id);
        cJSON_AddBoolToObject(out, "deleted", 1);
        zd_req_reply_json(d->req, 200, out);
    }
    del_op_free(d);
}

static void del_got(int status, const char *json, size_t len, uint32_t gid, uint64_t version,
                    void *udata)
{
    del_op *d = udata;
    char ver[24];
    snprintf(ver, sizeof(ver), "%llu", (unsigned long long)version);
    if (status != 0) {
        reply_store_error(d->req, status);
    } else if (!zd_precond_holds(&d->cond, json != NULL, version)) {
        reply_precondition_failed(d->req, true, json != NULL, version);
    } else if (!json) {
        zd_req_reply_error(d->req, 404, "not_found", "no profile with this id");
    } else if ((status = zd_store_del(d->svc->store, zd_req_param(d->req, "id"), ver, del_done,
                                      d)) == 0) {
        return;
    } else {
        reply_store_error(d->req, status);
    }
    del_op_free(d);
}

static void del_read(del_op *d)
{
    int rc = zd_store_get(d->svc->store, zd_req_param(d->req, "id"), del_got, d);
    if (rc != 0) {
        reply_store_error(d->req, rc);
        del_op_free(d);
    }
}

static void handle_delete(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *id = zd_req_param(req, "id");
    if (!check_id(req, id))
        return;
    zd_precond cond;
    if (!read_precond(req, &cond))
        return;
    del_op *d = calloc(1, sizeof(*d));
    const zd_apikey *k = zd_req_key(req);
    if (d) {
        d->svc = svc;
        d->req = req;
        d->cond = cond;
        d->who = strdup(k ? k->name : "-");
        d->role = strdup(k ? zd_role_name(k->role) : "none");
    }
    if (!d || !d->who || !d->role) {
        if (d)
            del_op_free(d);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    char buf[ZD_ETAG_MAX];
    const char *expect;
    if (!zd_precond_direct(&cond, buf, &expect)) {
        d->read_first = true;
        del_read(d);
        return;
    }
    int rc = zd_store_del(svc->store, id, expect, del_done, d);
    if (rc != 0) {
        reply_store_error(req, rc);
        del_op_free(d);
    }
}

/* ---- NDJSON import ---------------------------------------------------------------------- */

typedef struct import_batch {
    struct import_op *op;
    int n;
    zd_profile *p[IMPORT_BATCH];
    int line[IMPORT_BATCH];
} import_batch;

typedef struct import_op {
    zd_service *svc;
    zd_req *req;
    int pending; /* batches in flight */
    long imported, unchanged, failed, lines;
    long deleted; /* profiles erased by "op": "delete" lines */
    cJSON *errors;
    int nerrors;
    struct timespec t0;
} import_op;

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

static void import_finish(import_op *op)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms =
        (double)(t1.tv_sec - op->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - op->t0.tv_nsec) / 1e6;
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "lines", (double)op->lines);
    cJSON_AddNumberToObject(out, "imported", (double)op->imported);
    cJSON_AddNumberToObject(out, "deleted", (double)op->deleted);
    cJSON_AddNumberToObject(out, "unchanged", (double)op->unchanged);
    cJSON_AddNumberToObject(out, "failed", (double)op->failed);
    cJSON_AddItemToObject(out, "errors", op->errors);
    cJSON_AddNumberToObject(out, "took_ms", ms);
    zd_req_log(op->req, ZD_LOG_INFO,
               "import: %ld lines, %ld imported, %ld deleted, %ld unchanged, %ld failed in %.0f ms",
               op->lines, op->imported, op->deleted, op->unchanged, op->failed, ms);
    zd_req_reply_json(op->req, 200, out);
    /* An import chunk churns through megabytes of parser objects; return them to the OS. */
    malloc_trim(0);
    free(op);
}

static void batch_free(import_batch *b)
{
    for (int i = 0; i < b->n; i++)
        zd_profile_free(b->p[i]);
    free(b);
}

static void import_batch_done(int status, const zd_put_result *res, int n, void *udata)
{
    import_batch *b = udata;
    import_op *op = b->op;
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
    batch_free(b);
    if (--op->pending == 0)
        import_finish(op);
}

static void import_flush(import_op *op, import_batch **slot, int part)
{
    import_batch *b = *slot;
    *slot = NULL;
    if (!b)
        return;
    op->pending++;
    int rc = zd_store_put_batch(op->svc->store, part, b->p, b->n, NULL, import_batch_done, b);
    if (rc != 0)
        import_batch_done(rc, NULL, 0, b);
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
        erased(op->svc, k ? k->name : "-", k ? zd_role_name(k->role) : "none", gid, old_json,
               old_len, entry, epoch);
        op->deleted++;
    } else {
        op->unchanged++; /* nothing to delete: what the line asks for is already so */
    }
    free(d);
    if (--op->pending == 0)
        import_finish(op);
}

static void import_flush(import_op *op, import_batch **slot, int part);

/* Erases profile id as line lineno asks. The lines before it that wrote the same partition go
 * first: their batch is sent now, ahead of the delete on the same Redis connection, so the
 * lines of one import apply in their order. */
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
    op->pending++;
    int rc = zd_store_del(op->svc->store, id, NULL, import_del_done, d);
    if (rc != 0)
        import_del_done(rc, ZD_DEL_ABSENT, 0, NULL, 0, NULL, 0, d);
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
    if (++b->n == IMPORT_BATCH)
        import_flush(op, &batches[part], part);
}

static void handle_import(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    size_t len;
    const char *body = zd_req_body(req, &len);
    if (!body)
        return; /* zd_req_body answered (too large) */
    import_op *op = calloc(1, sizeof(*op));
    import_batch *batches[ZD_PARTITIONS_MAX] = {0};
    if (!op || !(op->errors = cJSON_CreateArray())) {
        free(op);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    op->svc = svc;
    op->req = req;
    clock_gettime(CLOCK_MONOTONIC, &op->t0);
    /* Hold one reference while lines are being queued so an early batch reply cannot finish
     * the import before the last line is read. */
    op->pending = 1;
    int lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(body + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - body) : len;
        size_t l = end - pos;
        lineno++;
        if (l > 0 && body[pos + l - 1] == '\r')
            l--;
        bool blank = true;
        for (size_t i = 0; i < l && blank; i++)
            blank = body[pos + i] == ' ' || body[pos + i] == '\t';
        if (!blank) {
            op->lines++;
            import_line(op, batches, body + pos, l, lineno);
        }
        pos = end + 1;
    }
    for (int p = 0; p < svc->cfg->partitions; p++)
        import_flush(op, &batches[p], p);
    if (--op->pending == 0)
        import_finish(op);
}

int zd_api_profiles_register(zd_service *svc)
{
    unsigned writers = ZD_ROLE_APP | ZD_ROLE_ADMIN;
    int rc = 0;
    rc |= zd_http_route(svc->http, "PUT", "/v1/profiles/{id}", writers, handle_put, svc);
    rc |= zd_http_route(svc->http, "PATCH", "/v1/profiles/{id}", writers, handle_patch, svc);
    rc |= zd_http_route(svc->http, "GET", "/v1/profiles/{id}", writers, handle_get, svc);
    rc |= zd_http_route(svc->http, "DELETE", "/v1/profiles/{id}", writers, handle_delete, svc);
    /* An import while not ready is refused whole (503 not_ready) rather than answered line by
     * line with store_unavailable. */
    rc |= zd_http_route_flags(svc->http, "POST", "/v1/profiles:import", writers,
                              ZD_ROUTE_LARGE_BODY | ZD_ROUTE_NEEDS_READY, handle_import, svc);
    return rc ? -EINVAL : 0;
}
