/* Change-stream follower: initial index load (XINFO marks, then HSCAN of every partition),
 * then XREAD of all partitions' change streams on a dedicated connection, with a rebuild when
 * the stream was trimmed past what this instance had applied. */
#include "profiles/follower.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "profiles/store.h"
#include "redis/keys.h"
#include "redis/redis.h"
#include "redis/timer.h"

#define SCAN_COUNT "1000"
#define READ_COUNT "1000"
#define BLOCK_MS 1000
#define CHECK_INTERVAL_S 5

typedef struct stream_id {
    uint64_t ms, seq;
} stream_id;

/* Writes applied locally whose change-stream entry the follower has not read yet: gid -> entry
 * id. When the follower reaches that entry and nothing else touched the gid in between, the
 * index already holds exactly that write and the entry is skipped — it halves the indexing work
 * of an import. Open addressing with linear probing; a cleared slot has gid EMPTY_GID. */
#define EMPTY_GID UINT32_MAX
typedef struct local_slot {
    uint32_t gid;
    stream_id entry;
} local_slot;

typedef struct local_map {
    local_slot *slots;
    size_t cap, used;
} local_map;

struct zd_follower {
    struct event_base *base;
    const zd_schema *schema;
    zd_redis *redis;
    int nparts;
    zd_index *index;    /* live, NULL before the first load */
    zd_index *building; /* being loaded */
    stream_id last[ZD_PARTITIONS_MAX];
    stream_id mark[ZD_PARTITIONS_MAX]; /* stream positions taken before a load */
    /* Ordinal of the last entry applied per stream (XINFO's entries-added counts every entry
     * ever added), so a trim past it is visible as entries-added - length > seen. */
    uint64_t seen[ZD_PARTITIONS_MAX], mark_seen[ZD_PARTITIONS_MAX];
    int pending;  /* outstanding load replies */
    uint64_t gen; /* bumps on every (re)load; late replies are dropped */
    bool ready, loading, reading, closing;
    zd_timer *retry_t, *check_t;
    void (*on_ready)(void *);
    void *udata;
    zd_follower_stats stats;
    struct timespec load_start;
    local_map local;
};

static size_t slot_of(const local_map *m, uint32_t gid)
{
    size_t i = (size_t)(gid * 2654435761u) & (m->cap - 1);
    while (m->slots[i].gid != EMPTY_GID && m->slots[i].gid != gid)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void local_clear(local_map *m)
{
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static void local_put(local_map *m, uint32_t gid, stream_id entry)
{
    if ((m->used + 1) * 2 > m->cap) {
        local_map bigger = {calloc(m->cap ? m->cap * 2 : 1024, sizeof(local_slot)),
                            m->cap ? m->cap * 2 : 1024, 0};
        if (!bigger.slots)
            return; /* without the hint the entry is simply applied again */
        for (size_t i = 0; i < bigger.cap; i++)
            bigger.slots[i].gid = EMPTY_GID;
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].gid != EMPTY_GID) {
                bigger.slots[slot_of(&bigger, m->slots[i].gid)] = m->slots[i];
                bigger.used++;
            }
        free(m->slots);
        *m = bigger;
    }
    size_t i = slot_of(m, gid);
    if (m->slots[i].gid == EMPTY_GID)
        m->used++;
    m->slots[i].gid = gid;
    m->slots[i].entry = entry;
}

/* Removes gid's hint and tells whether it named exactly `entry`. Deleting from a linear-probing
 * table re-inserts the rest of the cluster so later lookups still find their keys. */
static bool local_take(local_map *m, uint32_t gid, stream_id entry)
{
    if (m->used == 0)
        return false;
    size_t i = slot_of(m, gid);
    if (m->slots[i].gid == EMPTY_GID)
        return false;
    bool same = m->slots[i].entry.ms == entry.ms && m->slots[i].entry.seq == entry.seq;
    m->slots[i].gid = EMPTY_GID;
    m->used--;
    for (size_t j = (i + 1) & (m->cap - 1); m->slots[j].gid != EMPTY_GID;
         j = (j + 1) & (m->cap - 1)) {
        local_slot s = m->slots[j];
        m->slots[j].gid = EMPTY_GID;
        m->slots[slot_of(m, s.gid)] = s;
    }
    return same;
}

/* A reply context carrying the load generation and partition it was sent for. */
typedef struct req {
    zd_follower *fl;
    uint64_t gen;
    int part;
} req;

static void start_load(zd_follower *fl);
static void read_next(zd_follower *fl);

static req *req_new(zd_follower *fl, int part)
{
    req *q = malloc(sizeof(*q));
    if (q) {
        q->fl = fl;
        q->gen = fl->gen;
        q->part = part;
    }
    return q;
}

/* Unpacks and frees a reply context; false when the reply belongs to an earlier load or the
 * follower is closing, and must be dropped. */
static bool req_take(void *udata, zd_follower **fl, int *part)
{
    req *q = udata;
    *fl = q->fl;
    *part = q->part;
    bool live = q->gen == (*fl)->gen && !(*fl)->closing;
    free(q);
    return live;
}

static int parse_id(const char *s, stream_id *id)
{
    char *end;
    id->ms = strtoull(s, &end, 10);
    id->seq = 0;
    if (*end == '-')
        id->seq = strtoull(end + 1, &end, 10);
    return *end == '\0' ? 0 : -EINVAL;
}

static int id_cmp(stream_id a, stream_id b)
{
    if (a.ms != b.ms)
        return a.ms < b.ms ? -1 : 1;
    return a.seq < b.seq ? -1 : a.seq > b.seq;
}

static double elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static zd_profile *parse_doc(zd_follower *fl, const char *id, const char *json, size_t len)
{
    zd_profile *p = NULL;
    zd_error err;
    if (!json || len == 0)
        return NULL;
    if (zd_profile_parse(fl->schema, id, json, len, &p, &err) != 0) {
        /* Stored documents were validated on write; one that fails now means the schema
         * changed under it. Skip it loudly rather than index half of it. */
        fl->stats.bad++;
        zd_warn("follower: stored profile %.128s no longer validates (%s: %s)", id, err.field,
                err.code);
        return NULL;
    }
    return p;
}

static void retry_later(zd_follower *fl, int ms)
{
    zd_timer_arm(fl->retry_t, ms, 0);
}

/* ---- loading ---------------------------------------------------------------------------- */

static void finish_load(zd_follower *fl)
{
    zd_index_optimize(fl->building);
    zd_index_free(fl->index);
    fl->index = fl->building;
    fl->building = NULL;
    memcpy(fl->last, fl->mark, sizeof(fl->last));
    local_clear(&fl->local);
    memcpy(fl->seen, fl->mark_seen, sizeof(fl->seen));
    fl->loading = false;
    fl->stats.load_ms = elapsed_ms(&fl->load_start);
    /* A load parses every stored document once; hand the parser's garbage back to the OS so
     * the daemon's RSS reflects the index, not the load. */
    malloc_trim(0);
    zd_index_stats st;
    zd_index_get_stats(fl->index, &st);
    zd_info("index loaded: %" PRIu64 " profiles in %.0f ms, %.1f bytes/profile", st.profiles,
            fl->stats.load_ms, st.profiles ? (double)st.total_bytes / (double)st.profiles : 0.0);
    if (!fl->ready) {
        fl->ready = true;
        if (fl->on_ready)
            fl->on_ready(fl->udata);
    } else {
        fl->stats.reloads++;
    }
    read_next(fl);
}

static void load_failed(zd_follower *fl, int status)
{
    zd_warn("follower: index load failed (%s); retrying", zd_strerror(status));
    fl->gen++; /* drop the other partitions' outstanding replies */
    zd_index_free(fl->building);
    fl->building = NULL;
    fl->loading = false;
    retry_later(fl, 1000);
}

static void scan_reply(zd_redis *r, int status, const zd_reply *reply, void *udata);

static int send_scan(zd_follower *fl, int part, const char *cursor)
{
    char key[ZD_KEY_MAX];
    req *q = req_new(fl, part);
    if (!q)
        return -ENOMEM;
    zd_key_profiles(part, key);
    int rc = zd_redis_cmd(fl->redis, scan_reply, q, "HSCAN %s %s COUNT " SCAN_COUNT, key, cursor);
    if (rc != 0)
        free(q);
    return rc;
}

static void scan_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    zd_follower *fl;
    int part;
    if (!req_take(udata, &fl, &part))
        return;
    const zd_reply *items = status == 0 ? zd_reply_at(reply, 1) : NULL;
    const char *cursor = status == 0 ? zd_reply_str(zd_reply_at(reply, 0), NULL) : NULL;
    if (!cursor || !zd_reply_is(items, ZD_REPLY_ARRAY)) {
        load_failed(fl, status ? status : -EIO);
        return;
    }
    for (size_t i = 0; i + 1 < zd_reply_len(items); i += 2) {
        const char *id = zd_reply_str(zd_reply_at(items, i), NULL);
        uint32_t dense;
        uint64_t ver;
        const char *json, *v;
        size_t len, vlen;
        v = zd_reply_str(zd_reply_at(items, i + 1), &vlen);
        if (!id || !v || zd_store_split_value(v, vlen, &dense, &ver, &json, &len) != 0) {
            fl->stats.bad++;
            continue;
        }
        /* The index needs only the indexed part of the stored form (before the newline). */
        const char *nl = memchr(json, '\n', len);
        zd_profile *p = parse_doc(fl, id, json, nl ? (size_t)(nl - json) : len);
        if (p) {
            if (zd_index_put(fl->building, zd_gid(part, dense), NULL, p) != 0) {
                zd_profile_free(p);
                load_failed(fl, -ENOMEM);
                return;
            }
            zd_profile_free(p);
        }
    }
    if (strcmp(cursor, "0") != 0) {
        if (send_scan(fl, part, cursor) != 0)
            load_failed(fl, -EIO);
        return;
    }
    if (--fl->pending == 0)
        finish_load(fl);
}

/* The XINFO STREAM fields the follower uses. A missing stream reads as all zeros. */
typedef struct stream_info {
    stream_id lastgen;
    uint64_t added, length;
} stream_info;

static void parse_info(const zd_reply *reply, stream_info *si)
{
    memset(si, 0, sizeof(*si));
    for (size_t i = 0; i + 1 < zd_reply_len(reply); i += 2) {
        const zd_reply *k = zd_reply_at(reply, i), *v = zd_reply_at(reply, i + 1);
        if (zd_reply_eq(k, "last-generated-id") && zd_reply_is(v, ZD_REPLY_STRING))
            parse_id(zd_reply_str(v, NULL), &si->lastgen);
        else if (zd_reply_eq(k, "entries-added"))
            si->added = (uint64_t)zd_reply_int(v);
        else if (zd_reply_eq(k, "length"))
            si->length = (uint64_t)zd_reply_int(v);
    }
}

static void mark_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    zd_follower *fl;
    int part;
    if (!req_take(udata, &fl, &part))
        return;
    if (status != 0) {
        load_failed(fl, status);
        return;
    }
    stream_info si;
    parse_info(reply, &si); /* an error reply means "no such stream yet": start at 0-0 */
    fl->mark[part] = si.lastgen;
    fl->mark_seen[part] = si.added;
    if (--fl->pending > 0)
        return;
    /* Every stream position is marked: anything written from here on is re-applied from the
     * streams after the scan, so the scan may see writes or not without losing any. */
    fl->pending = fl->nparts;
    for (int p = 0; p < fl->nparts; p++)
        if (send_scan(fl, p, "0") != 0) {
            load_failed(fl, -EIO);
            return;
        }
}

static void start_load(zd_follower *fl)
{
    if (fl->loading || fl->closing)
        return;
    fl->gen++;
    fl->loading = true;
    clock_gettime(CLOCK_MONOTONIC, &fl->load_start);
    fl->building = zd_index_new(fl->schema);
    if (!fl->building) {
        load_failed(fl, -ENOMEM);
        return;
    }
    zd_info("follower: loading the index from Redis (%d partitions)", fl->nparts);
    fl->pending = fl->nparts;
    for (int p = 0; p < fl->nparts; p++) {
        char key[ZD_KEY_MAX];
        req *q = req_new(fl, p);
        zd_key_changes(p, key);
        if (!q || zd_redis_cmd(fl->redis, mark_reply, q, "XINFO STREAM %s", key) != 0) {
            free(q);
            load_failed(fl, -EIO);
            return;
        }
    }
}

/* ---- following -------------------------------------------------------------------------- */

static const char *field(const zd_reply *kv, const char *name, size_t *len)
{
    for (size_t i = 0; i + 1 < zd_reply_len(kv); i += 2)
        if (zd_reply_eq(zd_reply_at(kv, i), name))
            return zd_reply_str(zd_reply_at(kv, i + 1), len);
    *len = 0;
    return NULL;
}

static void apply_entry(zd_follower *fl, int part, stream_id entry, const zd_reply *kv)
{
    size_t oplen, idlen, dlen, oldlen, newlen;
    const char *op = field(kv, "op", &oplen);
    const char *id = field(kv, "id", &idlen);
    const char *d = field(kv, "d", &dlen);
    const char *old = field(kv, "old", &oldlen);
    const char *now = field(kv, "new", &newlen);
    if (!op || !id || !d) {
        fl->stats.bad++;
        return;
    }
    uint32_t gid = zd_gid(part, (uint32_t)strtoul(d, NULL, 10));
    fl->stats.entries++;
    if (local_take(&fl->local, gid, entry)) {
        fl->stats.skipped++;
        return;
    }
    zd_profile *oldp = parse_doc(fl, id, old, oldlen);
    if (strcmp(op, "del") == 0) {
        zd_index_del(fl->index, gid, oldp);
    } else {
        zd_profile *newp = parse_doc(fl, id, now, newlen);
        if (newp)
            zd_index_put(fl->index, gid, oldp, newp);
        zd_profile_free(newp);
    }
    zd_profile_free(oldp);
}

static int part_of_key(const zd_follower *fl, const zd_reply *key)
{
    size_t len;
    const char *k = zd_reply_str(key, &len);
    int p = k ? zd_key_changes_partition(k, len) : -1;
    return p < fl->nparts ? p : -1;
}

static void read_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    req *q = udata;
    zd_follower *fl = q->fl;
    bool stale = q->gen != fl->gen;
    free(q);
    if (fl->closing)
        return;
    fl->reading = false;
    if (stale || fl->loading)
        return;
    if (status != 0) {
        if (status != -ECANCELED)
            retry_later(fl, 200);
        return;
    }
    for (size_t s = 0; s < zd_reply_len(reply); s++) {
        const zd_reply *stream = zd_reply_at(reply, s);
        int part = part_of_key(fl, zd_reply_at(stream, 0));
        const zd_reply *entries = zd_reply_at(stream, 1);
        for (size_t e = 0; part >= 0 && e < zd_reply_len(entries); e++) {
            const zd_reply *ent = zd_reply_at(entries, e);
            const char *eid = zd_reply_str(zd_reply_at(ent, 0), NULL);
            stream_id id;
            if (!eid || parse_id(eid, &id) != 0 || id_cmp(id, fl->last[part]) <= 0)
                continue;
            apply_entry(fl, part, id, zd_reply_at(ent, 1));
            fl->last[part] = id;
            fl->seen[part]++;
        }
    }
    read_next(fl);
}

static void read_next(zd_follower *fl)
{
    if (fl->reading || fl->loading || fl->closing || !fl->index)
        return;
    int n = fl->nparts;
    int argc = 6 + 2 * n;
    const char **argv = calloc((size_t)argc, sizeof(char *));
    size_t *lens = calloc((size_t)argc, sizeof(size_t));
    char(*bufs)[ZD_KEY_MAX] = calloc((size_t)(2 * n), ZD_KEY_MAX);
    req *q = req_new(fl, -1);
    if (!argv || !lens || !bufs || !q)
        goto fail;
    argv[0] = "XREAD";
    argv[1] = "COUNT";
    argv[2] = READ_COUNT;
    argv[3] = "BLOCK";
    argv[4] = "1000";
    argv[5] = "STREAMS";
    for (int p = 0; p < n; p++) {
        argv[6 + p] = zd_key_changes(p, bufs[p]);
        snprintf(bufs[n + p], ZD_KEY_MAX, "%" PRIu64 "-%" PRIu64, fl->last[p].ms, fl->last[p].seq);
        argv[6 + n + p] = bufs[n + p];
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (zd_redis_cmdargv_deadline(fl->redis, BLOCK_MS + 5000, read_reply, q, argc, argv, lens) != 0)
        goto fail;
    fl->reading = true;
    free(argv);
    free(lens);
    free(bufs);
    return;
fail:
    free(q);
    free(argv);
    free(lens);
    free(bufs);
    retry_later(fl, 500);
}

/* ---- gap detection ---------------------------------------------------------------------- */

/* XINFO STREAM tells how many entries were ever added and how many are left; if the oldest
 * one left comes after the last one applied here, entries this index never saw were trimmed.
 * A last-generated id behind ours means Redis lost data (restarted without AOF). Either way
 * only a rebuild makes the index equal to Redis again. */
static void info_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    zd_follower *fl;
    int part;
    if (!req_take(udata, &fl, &part) || fl->loading || status != 0)
        return;
    stream_info si;
    parse_info(reply, &si);
    if (si.added - si.length > fl->seen[part] || id_cmp(si.lastgen, fl->last[part]) < 0) {
        zd_warn("follower: partition %d's change stream moved past this index; rebuilding", part);
        start_load(fl);
    }
}

static void check_gaps(zd_follower *fl)
{
    if (!fl->ready || fl->loading || fl->closing)
        return;
    for (int p = 0; p < fl->nparts; p++) {
        char key[ZD_KEY_MAX];
        req *q = req_new(fl, p);
        if (!q)
            return;
        zd_key_changes(p, key);
        if (zd_redis_cmd(fl->redis, info_reply, q, "XINFO STREAM %s", key) != 0)
            free(q);
    }
}

static void check_cb(void *arg)
{
    check_gaps(arg);
}

static void retry_cb(void *arg)
{
    zd_follower *fl = arg;
    if (!fl->index)
        start_load(fl);
    else
        read_next(fl);
}

static void on_connect(zd_redis *r, void *udata)
{
    zd_follower *fl = udata;
    if (!fl->ready && !fl->loading) {
        start_load(fl);
        return;
    }
    /* After a reconnect the pending XREAD was failed; look for a gap, then read again. */
    check_gaps(fl);
    read_next(fl);
}

zd_follower *zd_follower_new(struct event_base *base, const zd_follower_opts *o)
{
    if (o->partitions < 1 || o->partitions > ZD_PARTITIONS_MAX)
        return NULL;
    zd_follower *fl = calloc(1, sizeof(*fl));
    if (!fl)
        return NULL;
    fl->base = base;
    fl->schema = o->schema;
    fl->nparts = o->partitions;
    fl->on_ready = o->on_ready;
    fl->udata = o->udata;
    zd_redis_opts ro = o->redis;
    ro.name = "follower";
    ro.max_inflight = 256;
    ro.queue_max = 10000;
    fl->retry_t = zd_timer_new(base, retry_cb, fl);
    fl->check_t = zd_timer_new(base, check_cb, fl);
    fl->redis = zd_redis_new(base, &ro);
    if (!fl->retry_t || !fl->check_t || !fl->redis) {
        zd_follower_free(fl);
        return NULL;
    }
    zd_timer_arm(fl->check_t, CHECK_INTERVAL_S * 1000, 1);
    zd_redis_on_connect(fl->redis, on_connect, fl);
    if (zd_redis_ready(fl->redis))
        on_connect(fl->redis, fl);
    return fl;
}

void zd_follower_free(zd_follower *fl)
{
    if (!fl)
        return;
    fl->closing = true;
    zd_redis_free(fl->redis); /* fails outstanding commands; their callbacks see `closing` */
    zd_timer_free(fl->retry_t);
    zd_timer_free(fl->check_t);
    zd_index_free(fl->index);
    zd_index_free(fl->building);
    local_clear(&fl->local);
    free(fl);
}

const zd_index *zd_follower_index(const zd_follower *fl)
{
    return fl->index;
}

void zd_follower_apply(zd_follower *fl, uint32_t gid, const char *entry, const char *old_json,
                       size_t old_len, const zd_profile *now)
{
    stream_id sid;
    int part = (int)(gid >> ZD_DENSE_BITS);
    if (!fl->index || !entry || parse_id(entry, &sid) != 0 || part >= fl->nparts ||
        id_cmp(sid, fl->last[part]) <= 0)
        return;
    const char *id = now ? now->id : NULL;
    zd_profile *oldp = NULL;
    if (old_json) {
        /* The id is only used for messages here; the document carries no id of its own. */
        oldp = parse_doc(fl, id ? id : "deleted", old_json, old_len);
    }
    if (now)
        zd_index_put(fl->index, gid, oldp, now);
    else
        zd_index_del(fl->index, gid, oldp);
    zd_profile_free(oldp);
    local_put(&fl->local, gid, sid);
}

void zd_follower_get_stats(const zd_follower *fl, zd_follower_stats *st)
{
    *st = fl->stats;
}
