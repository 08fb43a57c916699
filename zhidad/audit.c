/* Audit records go to one capped stream; see docs/DESIGN.md for what each action carries.
 * GET /v1/audit reads it back newest first, a page at a time. */
#include "zhidad/audit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "redis/keys.h"

#define AUDIT_MAXLEN 1000000

static void audit_done(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    const char *action = udata;
    /* The action only: a record's target may be a profile id, which stays out of logs. */
    if (status != 0 || zd_reply_is(reply, ZD_REPLY_ERROR))
        zd_warn("audit: could not append a %s record (%s)", action,
                zd_strerror(status ? status : -EIO));
}

void zd_audit(zd_redis *r, const char *action, const char *key_name, const char *role,
              const char *target)
{
    if (zd_redis_cmd(r, audit_done, (void *)action,
                     "XADD %s MAXLEN ~ %d * action %s key %s role %s target %s", ZD_KEY_AUDIT,
                     AUDIT_MAXLEN, action, key_name, role, target ? target : "") != 0)
        zd_warn("audit: could not queue a %s record", action);
}

void zd_audit_req(zd_redis *r, zd_req *req, const char *action, const char *target)
{
    const zd_apikey *k = zd_req_key(req);
    zd_audit(r, action, k ? k->name : "-", k ? zd_role_name(k->role) : "none", target);
}

/* ---- reading ---------------------------------------------------------------------------- */

/* Records fetched per XREVRANGE while filtering: large enough that a page takes few round trips,
 * small enough that one reply stays a few hundred KiB. */
#define AUDIT_BATCH 1000

typedef struct audit_rec {
    char *id, *time, *action, *key, *role, *target;
} audit_rec;

typedef struct audit_read {
    zd_redis *r;
    zd_audit_read_cb cb;
    void *udata;
    char action[128]; /* "" = every action */
    int limit;
    int scanned; /* records examined so far */
    int batch;   /* records asked for by the command in flight */
    audit_rec *recs;
    int n; /* records kept, at most limit */
    uint64_t end_ms, end_seq;
    bool at_newest; /* the next command starts at "+" */
} audit_read;

static void rec_clear(audit_rec *a)
{
    free(a->id);
    free(a->time);
    free(a->action);
    free(a->key);
    free(a->role);
    free(a->target);
}

/* Parses "<ms>-<seq>" (decimal, each within 64 bits). 0 or -EINVAL. */
static int parse_id(const char *s, uint64_t *ms, uint64_t *seq)
{
    uint64_t v[2] = {0, 0};
    for (int part = 0; part < 2; part++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        for (; *s >= '0' && *s <= '9'; s++) {
            uint64_t d = (uint64_t)(*s - '0');
            if (v[part] > (UINT64_MAX - d) / 10)
                return -EINVAL;
            v[part] = v[part] * 10 + d;
        }
        if (part == 0 && *s++ != '-')
            return -EINVAL;
    }
    if (*s)
        return -EINVAL;
    *ms = v[0];
    *seq = v[1];
    return 0;
}

/* Moves the read's end just below id (inclusive ranges: Redis 7 also has "(" for exclusive
 * ones, but "(0-0" is an error rather than an empty range). False when nothing is below. */
static bool end_below(audit_read *a, uint64_t ms, uint64_t seq)
{
    a->at_newest = false;
    if (seq > 0) {
        a->end_ms = ms;
        a->end_seq = seq - 1;
    } else if (ms > 0) {
        a->end_ms = ms - 1;
        a->end_seq = UINT64_MAX;
    } else {
        return false;
    }
    return true;
}

static void read_finish(audit_read *a, int status, const char *next)
{
    zd_audit_record *out = calloc((size_t)a->n + 1, sizeof(*out));
    if (status == 0 && !out)
        status = -ENOMEM;
    for (int i = 0; status == 0 && i < a->n; i++)
        out[i] = (zd_audit_record){a->recs[i].id,  a->recs[i].time, a->recs[i].action,
                                   a->recs[i].key, a->recs[i].role, a->recs[i].target};
    a->cb(status, status == 0 ? out : NULL, status == 0 ? a->n : 0, status == 0 ? next : NULL,
          a->udata);
    free(out);
    for (int i = 0; i < a->n; i++)
        rec_clear(&a->recs[i]);
    free(a->recs);
    free(a);
}

static const char *field_of(const zd_reply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < zd_reply_len(fields); i += 2)
        if (zd_reply_eq(zd_reply_at(fields, i), name)) {
            const char *v = zd_reply_str(zd_reply_at(fields, i + 1), NULL);
            return v ? v : "";
        }
    return "";
}

/* Keeps one entry as record a->n. 0 or -ENOMEM. */
static int keep(audit_read *a, const char *id, uint64_t ms, const zd_reply *fields)
{
    char when[40];
    struct tm tm;
    time_t secs = (time_t)(ms / 1000);
    if (!gmtime_r(&secs, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm))
        snprintf(when, sizeof(when), "?");
    size_t w = strlen(when);
    snprintf(when + w, sizeof(when) - w, ".%03uZ", (unsigned)(ms % 1000));
    audit_rec *r = &a->recs[a->n];
    *r = (audit_rec){strdup(id),
                     strdup(when),
                     strdup(field_of(fields, "action")),
                     strdup(field_of(fields, "key")),
                     strdup(field_of(fields, "role")),
                     strdup(field_of(fields, "target"))};
    if (!r->id || !r->time || !r->action || !r->key || !r->role || !r->target) {
        rec_clear(r);
        return -ENOMEM;
    }
    a->n++;
    return 0;
}

static int read_next(audit_read *a);

static void read_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    audit_read *a = udata;
    if (status == 0 && !zd_reply_is(reply, ZD_REPLY_ARRAY))
        status = -EIO;
    if (status != 0) {
        read_finish(a, status, NULL);
        return;
    }
    size_t got = zd_reply_len(reply);
    char next[48] = "";
    for (size_t i = 0; i < got; i++) {
        const zd_reply *entry = zd_reply_at(reply, i);
        const char *id = zd_reply_str(zd_reply_at(entry, 0), NULL);
        uint64_t ms, seq;
        if (!id || parse_id(id, &ms, &seq) != 0) {
            read_finish(a, -EIO, NULL);
            return;
        }
        a->scanned++;
        const zd_reply *fields = zd_reply_at(entry, 1);
        if (!a->action[0] || strcmp(field_of(fields, "action"), a->action) == 0) {
            if (a->n == a->limit) {
                /* One more than a page: the page ends at its last record, and the next one
                 * starts right after it. */
                read_finish(a, 0, a->recs[a->n - 1].id);
                return;
            }
            if (keep(a, id, ms, fields) != 0) {
                read_finish(a, -ENOMEM, NULL);
                return;
            }
        }
        snprintf(next, sizeof(next), "%s", id);
        if (!end_below(a, ms, seq)) {
            read_finish(a, 0, NULL); /* 0-0: nothing can be older */
            return;
        }
    }
    if (got < (size_t)a->batch) {
        read_finish(a, 0, NULL); /* the stream has nothing older */
        return;
    }
    if (a->scanned >= ZD_AUDIT_SCAN_MAX) {
        /* Examined enough for one request: continue after the last record examined. */
        read_finish(a, 0, next);
        return;
    }
    int rc = read_next(a);
    if (rc != 0)
        read_finish(a, rc, NULL);
}

static int read_next(audit_read *a)
{
    /* Unfiltered, one more than a page tells whether another page follows. */
    a->batch = a->action[0] ? AUDIT_BATCH : a->limit + 1;
    if (a->batch > ZD_AUDIT_SCAN_MAX - a->scanned)
        a->batch = ZD_AUDIT_SCAN_MAX - a->scanned;
    char end[48];
    if (a->at_newest)
        snprintf(end, sizeof(end), "+");
    else
        snprintf(end, sizeof(end), "%" PRIu64 "-%" PRIu64, a->end_ms, a->end_seq);
    return zd_redis_cmd(a->r, read_reply, a, "XREVRANGE %s %s - COUNT %d", ZD_KEY_AUDIT, end,
                        a->batch);
}

int zd_audit_read(zd_redis *r, const char *cursor, const char *action, int limit,
                  zd_audit_read_cb cb, void *udata)
{
    uint64_t ms = 0, seq = 0;
    if (cursor && parse_id(cursor, &ms, &seq) != 0)
        return -EINVAL;
    if (limit < 1)
        limit = 1;
    audit_read *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->recs = calloc((size_t)limit, sizeof(*a->recs));
    if (!a->recs) {
        free(a);
        return -ENOMEM;
    }
    *a = (audit_read){
        .r = r, .cb = cb, .udata = udata, .limit = limit, .recs = a->recs, .at_newest = true};
    snprintf(a->action, sizeof(a->action), "%s", action ? action : "");
    if (cursor && !end_below(a, ms, seq)) {
        /* Nothing is older than 0-0. cb must not run inside this call: ask Redis for an empty
         * range instead, which answers on the loop like any read. */
        a->end_ms = 0;
        a->end_seq = 0;
        a->at_newest = false;
        a->limit = limit;
    }
    int rc = read_next(a);
    if (rc != 0) {
        free(a->recs);
        free(a);
    }
    return rc;
}
