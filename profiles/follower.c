/* Change-stream follower: initial index load (a probe of every partition marks its stream
 * position, change count and epoch, then HSCAN), then XREAD of all partitions' change streams
 * on a dedicated connection. Every entry is checked before it is applied: its ordinal must
 * follow the last one applied and its epoch must be the index's; a periodic probe catches what
 * no entry shows (deletions ahead of the reader, a new data set with no writes yet). Anything
 * that breaks the chain rebuilds the index (docs/DESIGN.md, "The index follows the streams"). */
#include "profiles/follower.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "profiles/store.h"
#include "redis/keys.h"
#include "redis/redis.h"
#include "redis/timer.h"

#define SCAN_COUNT "1000"
/* Entries per stream and XREAD: one reply (up to partitions x this) is applied in one callback,
 * which must stay short so that API requests are answered between them during an import
 * (16 x 1000 entries took 15-25 ms; 16 x 200 take a few). */
#define READ_COUNT "200"
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

/* Why a rebuild starts: for the log, the counters, and whether the live index may still be
 * served meanwhile (a gap: yes, it is only behind; the others: no, it is wrong). */
typedef enum rebuild_reason { WHY_GAP, WHY_DATASET, WHY_APPLY } rebuild_reason;

struct zd_follower {
    struct event_base *base;
    const zd_schema *schema;
    zd_redis *redis;
    int nparts;
    zd_index *index;    /* live, NULL before the first load */
    zd_index *building; /* being loaded */
    /* Per partition, for the live index: the last entry applied, its ordinal n (the write
     * scripts number entries 1, 2, ... in the meta hash; 0: none yet) and the data set's
     * epoch; mark_* are the same taken for the index being loaded. */
    stream_id last[ZD_PARTITIONS_MAX], mark[ZD_PARTITIONS_MAX];
    uint64_t last_n[ZD_PARTITIONS_MAX], mark_n[ZD_PARTITIONS_MAX];
    uint64_t epoch[ZD_PARTITIONS_MAX], mark_epoch[ZD_PARTITIONS_MAX];
    int pending;  /* outstanding load replies */
    uint64_t gen; /* bumps on every (re)load; late replies are dropped */
    bool ready;   /* the first load completed */
    bool loading, reading, closing;
    bool need_load;  /* a rebuild was asked for: retried until one completes */
    bool stale;      /* the live index is known wrong: not served until a rebuild swaps in */
    bool version_ok; /* this connection's server answered INFO with a version >= 7.0 */
    bool incompatible;
    zd_timer *retry_t, *check_t;
    void (*on_ready)(void *);
    void (*on_incompatible)(const char *, void *);
    void (*on_durability)(const zd_durability *, bool, void *);
    int durability_pending; /* checks sent and not answered */
    bool durability_first;  /* the next verdict is the first on this connection */
    void *udata;
    zd_follower_stats stats;
    int64_t load_start_ns;
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

static uint64_t parse_u64(const char *s, size_t len)
{
    uint64_t v = 0;
    for (size_t i = 0; s && i < len && s[i] >= '0' && s[i] <= '9'; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    return v;
}

/* Parses a stored document into *out (NULL when there is none). Returns 0, -ENOMEM, or -EINVAL
 * for a document that no longer validates (counted and logged; *out NULL). */
static int parse_doc(zd_follower *fl, const char *id, const char *json, size_t len,
                     zd_profile **out)
{
    zd_error err;
    *out = NULL;
    if (!json || len == 0)
        return 0;
    int rc = zd_profile_parse(fl->schema, id, json, len, out, &err);
    if (rc == -ENOMEM)
        return rc;
    if (rc != 0) {
        /* Stored documents were validated on write; one that fails now means the schema
         * changed under it. Skip it loudly rather than index half of it. */
        fl->stats.bad++;
        zd_warn("follower: stored profile %.128s no longer validates (%s: %s)", id, err.field,
                err.code);
        return -EINVAL;
    }
    return 0;
}

static void retry_later(zd_follower *fl, int ms)
{
    zd_timer_arm(fl->retry_t, ms, 0);
}

/* Starts a rebuild unless one is on its way, logging why once. A reason other than a gap also
 * withdraws the live index from service until the rebuild swaps in. */
static void rebuild(zd_follower *fl, rebuild_reason why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rebuild(zd_follower *fl, rebuild_reason why, const char *fmt, ...)
{
    if (why != WHY_GAP && !fl->stale) {
        fl->stale = true;
        zd_warn("follower: the index is withdrawn from service until it is rebuilt");
    }
    if (fl->loading || fl->closing)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    zd_warn("follower: %s; rebuilding the index from Redis", msg);
    if (why == WHY_GAP)
        fl->stats.gaps++;
    else if (why == WHY_DATASET)
        fl->stats.dataset_changes++;
    fl->need_load = true;
    start_load(fl);
}

/* An index update failed (ENOMEM): the index now holds part of a change, so it is withdrawn
 * and rebuilt; the entry is not marked applied. */
static void apply_failed(zd_follower *fl, int part, int rc)
{
    fl->stats.apply_failures++;
    rebuild(fl, WHY_APPLY, "applying a change of partition %d to the index failed (%s)", part,
            zd_strerror(rc));
}

/* ---- the probe: a partition's epoch and stream state in one atomic script ---------------- */

/* KEYS: change stream, meta hash. ARGV: epoch candidate. Creates the epoch when missing (a
 * Redis that never held the partition, or lost it), so an index always records one and a
 * later loss shows as a new epoch. Returns {epoch, n, last-generated-id, max-deleted-entry-id,
 * length, n of the first entry ("" if unknown)}: read together, so they describe one moment. */
static const char probe_script[] =
    "local meta = redis.call('HMGET', KEYS[2], 'epoch', 'n')\n"
    "local epoch = meta[1]\n"
    "if not epoch then\n"
    "  epoch = ARGV[1]\n"
    "  redis.call('HSET', KEYS[2], 'epoch', epoch)\n"
    "end\n"
    "local n = meta[2] or '0'\n"
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {epoch, n, '0-0', '0-0', '0', ''} end\n"
    "local info = redis.call('XINFO', 'STREAM', KEYS[1])\n"
    "local lastgen, maxdel, len, firstn = '0-0', '0-0', '0', ''\n"
    "for i = 1, #info, 2 do\n"
    "  local k, v = info[i], info[i + 1]\n"
    "  if k == 'last-generated-id' then lastgen = v\n"
    "  elseif k == 'max-deleted-entry-id' then maxdel = v\n"
    "  elseif k == 'length' then len = tostring(v)\n"
    "  elseif k == 'first-entry' and v then\n"
    "    local f = v[2]\n"
    "    for j = 1, #f, 2 do if f[j] == 'n' then firstn = f[j + 1] end end\n"
    "  end\n"
    "end\n"
    "return {epoch, n, lastgen, maxdel, len, firstn}\n";

typedef struct probe {
    uint64_t epoch, n, length, first_n; /* first_n 0: unknown (no entry, or one without n) */
    stream_id lastgen, maxdel;
} probe;

static int parse_probe(const zd_reply *reply, probe *pr)
{
    const char *v[6];
    size_t len[6];
    if (zd_reply_len(reply) != 6)
        return -EIO;
    for (size_t i = 0; i < 6; i++)
        if (!(v[i] = zd_reply_str(zd_reply_at(reply, i), &len[i])))
            return -EIO;
    pr->epoch = zd_store_parse_epoch(v[0], len[0]);
    pr->n = parse_u64(v[1], len[1]);
    pr->length = parse_u64(v[4], len[4]);
    pr->first_n = parse_u64(v[5], len[5]);
    if (!pr->epoch || parse_id(v[2], &pr->lastgen) != 0 || parse_id(v[3], &pr->maxdel) != 0)
        return -EIO;
    return 0;
}

static int send_probe(zd_follower *fl, int part, zd_redis_cb cb)
{
    char stream[ZD_KEY_MAX], meta[ZD_KEY_MAX], cand[ZD_EPOCH_TEXT];
    zd_store_format_epoch(zd_store_new_epoch(), cand);
    req *q = req_new(fl, part);
    if (!q)
        return -ENOMEM;
    int rc = zd_redis_cmd(fl->redis, cb, q, "EVAL %s 2 %s %s %s", probe_script,
                          zd_key_changes(part, stream), zd_key_meta(part, meta), cand);
    if (rc != 0)
        free(q);
    return rc;
}

/* ---- loading ---------------------------------------------------------------------------- */

static void finish_load(zd_follower *fl)
{
    zd_index_optimize(fl->building);
    zd_index_free(fl->index);
    fl->index = fl->building;
    fl->building = NULL;
    memcpy(fl->last, fl->mark, sizeof(fl->last));
    memcpy(fl->last_n, fl->mark_n, sizeof(fl->last_n));
    memcpy(fl->epoch, fl->mark_epoch, sizeof(fl->epoch));
    local_clear(&fl->local);
    fl->loading = false;
    fl->need_load = false;
    fl->stale = false;
    fl->stats.load_ms = zd_ms_since(fl->load_start_ns);
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

/* Abandons the load in progress (late replies are dropped by generation); need_load keeps
 * asking for another. */
static void abort_load(zd_follower *fl)
{
    fl->gen++;
    zd_index_free(fl->building);
    fl->building = NULL;
    fl->loading = false;
    fl->need_load = true;
}

static void load_failed(zd_follower *fl, int status)
{
    zd_warn("follower: index load failed (%s); retrying", zd_strerror(status));
    abort_load(fl);
    retry_later(fl, 1000);
}

static void scan_reply(zd_redis *r, int status, const zd_reply *reply, void *udata);
static void verify_reply(zd_redis *r, int status, const zd_reply *reply, void *udata);

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
        zd_profile *p;
        int rc = parse_doc(fl, id, json, nl ? (size_t)(nl - json) : len, &p);
        if (rc == 0 && p)
            rc = zd_index_put(fl->building, zd_gid(part, dense), NULL, p);
        zd_profile_free(p);
        if (rc == -ENOMEM) {
            load_failed(fl, rc);
            return;
        }
    }
    if (strcmp(cursor, "0") != 0) {
        if (send_scan(fl, part, cursor) != 0)
            load_failed(fl, -EIO);
        return;
    }
    if (--fl->pending > 0)
        return;
    /* Before the new index goes live, make sure every partition still holds the data set its
     * scan started on: a scan that ran across a flush would mix two data sets under one
     * epoch. (A Redis restart is caught sooner: the reconnect abandons the load.) */
    fl->pending = fl->nparts;
    for (int p = 0; p < fl->nparts; p++)
        if (send_probe(fl, p, verify_reply) != 0) {
            load_failed(fl, -EIO);
            return;
        }
}

static void verify_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    zd_follower *fl;
    int part;
    if (!req_take(udata, &fl, &part))
        return;
    probe pr;
    if (status != 0 || parse_probe(reply, &pr) != 0) {
        load_failed(fl, status ? status : -EIO);
        return;
    }
    if (pr.epoch != fl->mark_epoch[part] || id_cmp(pr.lastgen, fl->mark[part]) < 0 ||
        pr.n < fl->mark_n[part]) {
        zd_warn("follower: partition %d's data set changed during the load; loading again", part);
        abort_load(fl);
        start_load(fl);
        return;
    }
    if (--fl->pending == 0)
        finish_load(fl);
}

static void mark_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    zd_follower *fl;
    int part;
    if (!req_take(udata, &fl, &part))
        return;
    probe pr;
    if (status != 0 || parse_probe(reply, &pr) != 0) {
        load_failed(fl, status ? status : -EIO);
        return;
    }
    fl->mark[part] = pr.lastgen;
    fl->mark_n[part] = pr.n;
    fl->mark_epoch[part] = pr.epoch;
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
    if (fl->loading || fl->closing || !fl->version_ok)
        return;
    fl->gen++;
    fl->loading = true;
    fl->load_start_ns = zd_mono_ns();
    fl->building = zd_index_new(fl->schema);
    if (!fl->building) {
        load_failed(fl, -ENOMEM);
        return;
    }
    zd_info("follower: loading the index from Redis (%d partitions)", fl->nparts);
    fl->pending = fl->nparts;
    for (int p = 0; p < fl->nparts; p++)
        if (send_probe(fl, p, mark_reply) != 0) {
            load_failed(fl, -EIO);
            return;
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

/* A creation must find its gid free or holding the same profile (this instance's own write,
 * applied early). Another profile there means Redis handed the dense id out again, which it
 * only does after losing data this index still holds. */
static bool gid_taken(const zd_follower *fl, uint32_t gid, const char *id)
{
    const char *cur = zd_index_id(fl->index, gid);
    return cur && strcmp(cur, id) != 0;
}

/* Applies one change to the live index: old's memberships out, now's in. A document that no
 * longer validates is treated as absent (as the load treats it): a bad `now` removes the
 * profile, a bad `old` (memberships unknown) scrubs the gid first. Returns 0 or -ENOMEM. */
static int index_change(zd_follower *fl, uint32_t gid, const char *id, const char *old,
                        size_t oldlen, const char *now, size_t nowlen)
{
    zd_profile *oldp = NULL, *newp = NULL;
    int orc = parse_doc(fl, id, old, oldlen, &oldp);
    int nrc = orc == -ENOMEM ? 0 : parse_doc(fl, id, now, nowlen, &newp);
    int rc = orc == -ENOMEM || nrc == -ENOMEM ? -ENOMEM : 0;
    if (rc == 0 && orc == -EINVAL && newp)
        rc = zd_index_del(fl->index, gid, NULL); /* the put below would not remove them */
    if (rc == 0)
        rc = newp ? zd_index_put(fl->index, gid, oldp, newp) : zd_index_del(fl->index, gid, oldp);
    zd_profile_free(oldp);
    zd_profile_free(newp);
    return rc;
}

/* Checks one entry of partition `part` against the chain the index follows and applies it.
 * Returns 0 (applied or skipped), or -1 when a rebuild has started (the entry is not applied
 * and the rest of the batch must be dropped). */
static int follow_entry(zd_follower *fl, int part, stream_id entry, const zd_reply *kv)
{
    size_t oplen, idlen, dlen, nlen, elen, oldlen, newlen;
    const char *op = field(kv, "op", &oplen);
    const char *id = field(kv, "id", &idlen);
    const char *d = field(kv, "d", &dlen);
    const char *ns = field(kv, "n", &nlen);
    const char *es = field(kv, "e", &elen);
    const char *old = field(kv, "old", &oldlen);
    const char *now = field(kv, "new", &newlen);
    /* Entries written before entries were numbered carry neither n nor e: they are applied
     * unchecked (the periodic probe still watches their stream). */
    uint64_t n = ns ? parse_u64(ns, nlen) : 0;
    uint64_t epoch = es ? zd_store_parse_epoch(es, elen) : 0;
    if (es && epoch != fl->epoch[part]) {
        rebuild(fl, WHY_DATASET, "partition %d's change stream holds another data set (epoch %s)",
                part, es);
        return -1;
    }
    if (ns && n <= fl->last_n[part]) {
        rebuild(fl, WHY_DATASET,
                "partition %d's change count went back (entry %" PRIu64 " after %" PRIu64
                "): Redis lost changes this index holds",
                part, n, fl->last_n[part]);
        return -1;
    }
    if (ns && n != fl->last_n[part] + 1) {
        rebuild(fl, WHY_GAP,
                "partition %d's entries %" PRIu64 "..%" PRIu64
                " were trimmed or deleted before this instance read them",
                part, fl->last_n[part] + 1, n - 1);
        return -1;
    }
    bool del = op && strcmp(op, "del") == 0;
    if (!op || !id || !d || (!del && !now)) {
        fl->stats.bad++;
    } else {
        uint32_t gid = zd_gid(part, (uint32_t)strtoul(d, NULL, 10));
        fl->stats.entries++;
        if (local_take(&fl->local, gid, entry)) {
            fl->stats.skipped++;
        } else if (!del && !old && gid_taken(fl, gid, id)) {
            rebuild(fl, WHY_DATASET, "partition %d handed out dense id %u again", part,
                    (unsigned)(gid & ZD_DENSE_MAX));
            return -1;
        } else {
            int rc = index_change(fl, gid, id, old, oldlen, del ? NULL : now, newlen);
            if (rc != 0) {
                apply_failed(fl, part, rc);
                return -1;
            }
        }
    }
    fl->last[part] = entry;
    if (ns)
        fl->last_n[part] = n;
    return 0;
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
    /* A read sent before this connection's version check answered is dropped unread: the
     * check reads on once it passes. */
    if (stale || fl->loading || !fl->version_ok)
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
            if (follow_entry(fl, part, id, zd_reply_at(ent, 1)) != 0)
                return; /* rebuilding: finish_load reads on */
        }
    }
    read_next(fl);
}

static void read_next(zd_follower *fl)
{
    if (fl->reading || fl->loading || fl->closing || !fl->index || !fl->version_ok)
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

/* ---- checks on reconnect and every few seconds ------------------------------------------ */

/* What no entry can show: a new data set nobody wrote to yet, Redis having lost changes, or
 * entries after the last one applied that are gone before this instance read them (trimmed
 * from the front, or deleted: XDEL advances max-deleted-entry-id; a trim does not, so the
 * first remaining entry's ordinal tells). Sent on the follower's connection behind any XREAD,
 * so it describes the stream just after the replies already processed. */
static void check_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    zd_follower *fl;
    int part;
    probe pr;
    if (!req_take(udata, &fl, &part) || fl->loading || !fl->index || status != 0 ||
        parse_probe(reply, &pr) != 0)
        return;
    if (pr.epoch != fl->epoch[part])
        rebuild(fl, WHY_DATASET, "partition %d holds another data set (epoch changed)", part);
    else if (id_cmp(pr.lastgen, fl->last[part]) < 0 || pr.n < fl->last_n[part])
        rebuild(fl, WHY_DATASET, "Redis lost changes of partition %d that this index holds", part);
    else if (id_cmp(pr.maxdel, fl->last[part]) > 0)
        rebuild(fl, WHY_GAP, "partition %d's entries after the last one applied were deleted",
                part);
    else if (pr.length == 0 ? pr.n > fl->last_n[part]
                            : pr.first_n && pr.first_n > fl->last_n[part] + 1)
        rebuild(fl, WHY_GAP, "partition %d's change stream was trimmed past this index", part);
}

static void check_stream(zd_follower *fl)
{
    if (!fl->ready || fl->loading || fl->closing || !fl->version_ok)
        return;
    for (int p = 0; p < fl->nparts; p++)
        if (send_probe(fl, p, check_reply) != 0)
            return; /* the next tick tries again */
}

/* ---- what zhida relies on from the server: Redis >= 7.0, durability ---------------------- */

static void durability_reply(int status, const zd_durability *d, void *udata)
{
    zd_follower *fl = udata;
    fl->durability_pending--;
    /* A verdict about a server too old is moot: the version check has stopped everything. */
    if (fl->closing || status != 0 || !fl->version_ok || !fl->on_durability)
        return;
    bool first = fl->durability_first;
    fl->durability_first = false;
    fl->on_durability(d, first, fl->udata);
}

/* Asks Redis again whether it keeps our data (appendonly, maxmemory-policy). On the same
 * connection as the version check and the stream probes: on every connect, and on the check
 * timer, so that a CONFIG SET under a running instance is noticed too. */
static void check_durability(zd_follower *fl, bool connect)
{
    if (!fl->on_durability || (fl->durability_pending > 0 && !connect) || fl->closing)
        return;
    if (zd_durability_check(fl->redis, durability_reply, fl) == 0)
        fl->durability_pending++;
    else
        zd_warn("follower: cannot ask Redis whether it keeps zhida's data (out of memory)");
}

static void check_cb(void *arg)
{
    zd_follower *fl = arg;
    if (fl->version_ok)
        check_durability(fl, false);
    /* A rebuild that could not start or failed is retried here too. */
    if (fl->need_load && !fl->loading)
        start_load(fl);
    else
        check_stream(fl);
}

static void retry_cb(void *arg)
{
    zd_follower *fl = arg;
    if (fl->need_load || !fl->index)
        start_load(fl);
    else
        read_next(fl);
}

bool zd_follower_version_ok(int major, int minor)
{
    return major > ZD_REDIS_MIN_MAJOR ||
           (major == ZD_REDIS_MIN_MAJOR && minor >= ZD_REDIS_MIN_MINOR);
}

static void version_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    zd_follower *fl = udata;
    if (fl->closing || status != 0)
        return; /* the connection failed again: the next connect asks again */
    size_t len;
    const char *info = zd_reply_str(reply, &len);
    int major = 0, minor = 0, patch = 0;
    char version[32] = "unknown";
    if (zd_reply_is(reply, ZD_REPLY_STRING) &&
        zd_redis_info_version(info, len, &major, &minor, &patch) == 0)
        snprintf(version, sizeof(version), "%d.%d.%d", major, minor, patch);
    else
        zd_error_log("follower: cannot read the Redis version (INFO server answered %.100s)",
                     info ? info : "nothing");
    if (!zd_follower_version_ok(major, minor)) {
        zd_error_log("Redis %s is too old: zhida needs Redis >= %d.%d (its change-stream checks "
                     "read XINFO STREAM fields added in 7.0); not loading or following",
                     version, ZD_REDIS_MIN_MAJOR, ZD_REDIS_MIN_MINOR);
        fl->incompatible = true;
        if (fl->on_incompatible)
            fl->on_incompatible(version, fl->udata);
        return;
    }
    fl->incompatible = false;
    fl->version_ok = true;
    if (fl->loading) {
        /* The connection dropped under a load: its replies from here on would come from a
         * server that may hold another data set than its marks. Start over. */
        abort_load(fl);
    }
    if (!fl->index || fl->need_load) {
        start_load(fl);
        return;
    }
    /* After a reconnect the pending XREAD was failed; check the streams, then read again. */
    check_stream(fl);
    read_next(fl);
}

static void on_connect(zd_redis *r, void *udata)
{
    zd_follower *fl = udata;
    fl->version_ok = false;
    if (zd_redis_cmd(r, version_reply, fl, "INFO server") != 0)
        zd_warn("follower: cannot ask Redis for its version");
    /* Right behind the version check, ahead of anything a load sends: the verdict is in before
     * the index can be ready. Sent even when an earlier check is still queued. */
    fl->durability_first = true;
    check_durability(fl, true);
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
    fl->on_incompatible = o->on_incompatible;
    fl->on_durability = o->on_durability;
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
    return fl->stale || fl->incompatible ? NULL : fl->index;
}

bool zd_follower_ready(const zd_follower *fl)
{
    return zd_follower_index(fl) != NULL;
}

bool zd_follower_loaded(const zd_follower *fl)
{
    return fl->ready;
}

void zd_follower_apply(zd_follower *fl, uint32_t gid, const char *entry, uint64_t epoch,
                       const char *old_json, size_t old_len, const zd_profile *now)
{
    stream_id sid;
    int part = (int)(gid >> ZD_DENSE_BITS);
    /* A withdrawn index is about to be replaced: nothing written into it is ever read. */
    if (!fl->index || fl->stale || !entry || parse_id(entry, &sid) != 0 || part >= fl->nparts)
        return;
    if (epoch != fl->epoch[part]) {
        /* Written into another data set than the index's: its dense id may be one this index
         * gives another profile, so it must not touch it. */
        rebuild(fl, WHY_DATASET, "a write landed in another data set of partition %d", part);
        return;
    }
    if (id_cmp(sid, fl->last[part]) <= 0)
        return;
    const char *id = now ? now->id : "deleted"; /* only for messages when deleted */
    if (now && !old_json && gid_taken(fl, gid, now->id)) {
        rebuild(fl, WHY_DATASET, "partition %d handed out dense id %u again", part,
                (unsigned)(gid & ZD_DENSE_MAX));
        return;
    }
    zd_profile *oldp = NULL;
    int orc = parse_doc(fl, id, old_json, old_len, &oldp);
    int rc = orc == -ENOMEM ? orc : 0;
    if (rc == 0 && orc == -EINVAL && now)
        rc = zd_index_del(fl->index, gid, NULL); /* the put below would not remove them */
    if (rc == 0)
        rc = now ? zd_index_put(fl->index, gid, oldp, now) : zd_index_del(fl->index, gid, oldp);
    zd_profile_free(oldp);
    if (rc != 0) {
        apply_failed(fl, part, rc);
        return;
    }
    local_put(&fl->local, gid, sid);
}

void zd_follower_get_stats(const zd_follower *fl, zd_follower_stats *st)
{
    *st = fl->stats;
    st->stale = fl->stale;
    st->incompatible = fl->incompatible;
}
