/* Saved segments (named rules, SPEC §3) in Redis. A segment belongs to the scope that wrote it:
 * "*" for an admin, a publisher's region prefix otherwise; a write or delete that names an
 * owner succeeds only on a segment that owner holds (or on a new name), atomically. */
#ifndef ZD_SEGMENT_STORE_H
#define ZD_SEGMENT_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "redis/redis.h"

#define ZD_SEGMENT_OWNER_ADMIN "*"

typedef struct zd_segment {
    const char *name;
    const char *owner; /* "*" or a region prefix */
    const char *rule;
} zd_segment;

/* Every saved segment: status 0 and n segments (valid only during the callback), or a
 * negative code. */
typedef void (*zd_segments_all_cb)(int status, const zd_segment *segs, int n, void *udata);
int zd_segments_all(zd_redis *r, zd_segments_all_cb cb, void *udata);

/* A page of the segments sorted by name (byte order): status 0 and up to `limit` segments
 * (valid only during the callback), and next_cursor, an opaque text to pass as `cursor` for
 * the following page (NULL after the last page; valid only during the callback), or a negative
 * code. A cursor names the last segment of its page, so writes between pages neither repeat
 * nor skip the segments that were there all along. */
typedef void (*zd_segments_list_cb)(int status, const zd_segment *segs, int n,
                                    const char *next_cursor, void *udata);
/* cursor: NULL for the first page, else a next_cursor from an earlier page (borrowed); limit
 * >= 1. Returns -EINVAL, without calling cb, when cursor is not one this module made. */
int zd_segments_list(zd_redis *r, const char *cursor, int limit, zd_segments_list_cb cb,
                     void *udata);

/* One segment: status 0 and seg (NULL when there is none; valid only during the callback). */
typedef void (*zd_segments_get_cb)(int status, const zd_segment *seg, void *udata);
int zd_segments_get(zd_redis *r, const char *name, zd_segments_get_cb cb, void *udata);

/* Saves or deletes name. `owner` is the writer's scope; when `admin` is false the segment must
 * not exist or belong to owner. status: 0, -EPERM (another scope owns it), -ENOENT (delete of
 * a segment that does not exist), or a transport error. A put keeps the first owner when an
 * admin rewrites a publisher's segment. */
typedef void (*zd_segments_done_cb)(int status, void *udata);
int zd_segments_put(zd_redis *r, const char *name, const char *rule, const char *owner, bool admin,
                    zd_segments_done_cb cb, void *udata);
int zd_segments_del(zd_redis *r, const char *name, const char *owner, bool admin,
                    zd_segments_done_cb cb, void *udata);

/* All entry points return 0 (cb will be called exactly once) or a negative code (it will not). */

#endif
