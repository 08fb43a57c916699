/* Profile endpoints (SPEC §2): PUT / GET / PATCH / DELETE /v1/profiles/{id}; the NDJSON bulk
 * import is in api_import.c. Validation happens here, before anything reaches Redis, so a bad
 * body is never half-applied; the write itself is one atomic script (profiles/store.c). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* PUT / DELETE .../follows/{topic}: +1 adds topic to the profile's follows, -1 removes it;
     * applied like a PATCH (read, change, write expecting the version read, again on a
     * conflict). 0 for other writes. */
    int follow;
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
            if (w->patch || w->follow) {
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
                           w->patch    ? "PATCH"
                           : w->follow ? "follows change"
                                       : "PUT");
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

/* A copy of the stored document cur (borrowed) with topic added to (follow > 0) or removed
 * from its "follows" set; zd_profile_from_json() sorts it and bounds its size. An unchanged
 * set gives an unchanged document, which the store answers without a change entry. */
static cJSON *follow_change(const cJSON *cur, const char *topic, int follow)
{
    cJSON *doc = cJSON_Duplicate(cur, 1);
    if (!doc)
        return NULL;
    cJSON *set = cJSON_GetObjectItemCaseSensitive(doc, "follows");
    if (!cJSON_IsArray(set)) {
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "follows");
        set = cJSON_AddArrayToObject(doc, "follows");
    }
    cJSON *it = set ? set->child : NULL;
    while (it && !(cJSON_IsString(it) && strcmp(it->valuestring, topic) == 0))
        it = it->next;
    if (follow > 0 && !it && set)
        cJSON_AddItemToArray(set, cJSON_CreateString(topic));
    else if (follow < 0 && it)
        cJSON_Delete(cJSON_DetachItemViaPointer(set, it));
    if (!set) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
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
    cJSON *merged = w->follow ? follow_change(cur, zd_req_param(w->req, "topic"), w->follow)
                              : zd_json_merge_patch(cur, w->patch);
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

/* PUT and DELETE /v1/profiles/{id}/follows/{topic} (SPEC §2): one topic at a time, without the
 * client sending the profile. 200 with the stored profile; 404 for a missing profile. */
static void handle_follow(zd_req *req, int follow, zd_service *svc)
{
    if (!check_id(req, zd_req_param(req, "id")))
        return;
    const char *topic = zd_req_param(req, "topic");
    if (!topic || !zd_follow_topic_valid(topic, strlen(topic))) {
        zd_req_reply_error(req, 400, "invalid_topic",
                           "a follows topic must be 1-%d bytes of valid UTF-8 (URL-encoded in "
                           "the path) without control characters, quotes or backslashes",
                           ZD_KEYWORD_MAX);
        return;
    }
    zd_precond cond;
    if (!read_precond(req, &cond))
        return;
    write_op *w = calloc(1, sizeof(*w));
    if (!w) {
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    w->svc = svc;
    w->req = req;
    w->follow = follow;
    w->cond = cond;
    patch_start(w);
}

static void handle_follow_put(zd_req *req, void *udata)
{
    handle_follow(req, 1, udata);
}

static void handle_follow_delete(zd_req *req, void *udata)
{
    handle_follow(req, -1, udata);
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

void zd_api_profile_erased(zd_service *svc, const char *who, const char *role, uint32_t gid,
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
        zd_api_profile_erased(d->svc, d->who, d->role, gid, old_json, old_len, entry, epoch);
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

int zd_api_profiles_register(zd_service *svc)
{
    unsigned writers = ZD_ROLE_APP | ZD_ROLE_ADMIN;
    int rc = 0;
    rc |= zd_http_route(svc->http, "PUT", "/v1/profiles/{id}", writers, handle_put, svc);
    rc |= zd_http_route(svc->http, "PATCH", "/v1/profiles/{id}", writers, handle_patch, svc);
    rc |= zd_http_route(svc->http, "GET", "/v1/profiles/{id}", writers, handle_get, svc);
    rc |= zd_http_route(svc->http, "DELETE", "/v1/profiles/{id}", writers, handle_delete, svc);
    rc |= zd_http_route(svc->http, "PUT", "/v1/profiles/{id}/follows/{topic}", writers,
                        handle_follow_put, svc);
    rc |= zd_http_route(svc->http, "DELETE", "/v1/profiles/{id}/follows/{topic}", writers,
                        handle_follow_delete, svc);
    rc |= zd_api_import_register(svc);
    return rc ? -EINVAL : 0;
}
