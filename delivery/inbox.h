/* The per-profile inbox (SPEC §5): the built-in "inbox" gateway type, which stores notices in
 * Redis, and the reads and writes of the inbox API (list, read, read-all, feedback), which
 * count "read" and feedback in the policy's funnel. Keys (redis/keys.h, docs/DESIGN.md
 * "Delivery"): zd:{pN}:inbox:<profile> (hash notice id -> item JSON, plus "#unread") and
 * zd:{pN}:inboxz:<profile> (zset notice id by arrival ms), in the profile's partition slot, so
 * every inbox script also sees the profile hash: nothing is ever stored for a profile that does
 * not exist, and the profile delete script erases both keys with the profile. */
#ifndef ZD_DELIVERY_INBOX_H
#define ZD_DELIVERY_INBOX_H

#include <stdbool.h>
#include <stddef.h>

#include <zhida/gateway.h>

struct cJSON;
typedef struct zd_redis zd_redis;
typedef struct zd_inbox zd_inbox;

/* The longest feedback reason, in bytes of UTF-8. */
#define ZD_INBOX_REASON_MAX 500
/* The most notices one send() of the inbox gateway takes. */
#define ZD_INBOX_BATCH_MAX 100

/* Creates the inbox store on Redis client r (borrowed; must outlive it) for `partitions`
 * profile partitions. NULL on ENOMEM. Caller frees with zd_inbox_free(), after every gateway
 * instance made from it. */
zd_inbox *zd_inbox_new(zd_redis *r, int partitions);
void zd_inbox_free(zd_inbox *ib);

/* ---- the gateway type --------------------------------------------------------------------- */

/* The "inbox" type's table. Its instances are made by zd_inbox_gateway_new() (they need ib);
 * its create() refuses (-ENOTSUP), so delivery/gateways.c wraps instances with
 * zd_gateway_adopt(). send() stores each notice in the inbox of notice->profile (notice->to
 * is not used: the profile id is the address): DELIVERED when stored or already there (the
 * same notice id twice stores one item and counts it unread once), PERMANENT when the profile
 * does not exist, TRANSIENT when Redis did not answer. test() stores nothing: with a "to" it
 * reports whether that profile exists (PERMANENT "no such profile" if not), without one whether
 * Redis answers. */
extern const zd_gateway_type zd_inbox_type;

/* An instance named name (copied) writing through ib (borrowed, outlives it). 0 and *out (an
 * instance of zd_inbox_type, freed by its destroy()), or -ENOMEM. */
int zd_inbox_gateway_new(zd_inbox *ib, const char *name, void **out);

/* ---- the API's reads and writes ----------------------------------------------------------- */

typedef enum zd_inbox_found {
    ZD_INBOX_FOUND = 0,
    ZD_INBOX_NO_PROFILE, /* no profile with this id */
    ZD_INBOX_NO_NOTICE,  /* the profile's inbox holds no such notice */
} zd_inbox_found;

/* status 0 with found; when found is ZD_INBOX_FOUND, answer is the JSON the API returns
 * (caller takes ownership); else answer is NULL. status -ETIMEDOUT, -ECONNRESET, -EAGAIN,
 * -EIO (Redis answered an error), -ENOMEM, -ECANCELED: no answer. Called exactly once, never
 * from inside the call that started it. */
typedef void (*zd_inbox_answer_cb)(int status, zd_inbox_found found, struct cJSON *answer,
                                   void *udata);

/* A page of profile's inbox, newest first: {"profile", "unread", "items": [item...],
 * "next_cursor": "..."|null}, an item being {"id", "policy", "title", "body", "url",
 * "category", "urgent", "created_at", "read", "read_at", "feedback", "status"} (status
 * "withdrawn" when its policy was withdrawn, else "current"). cursor (NULL: the first page) is
 * a next_cursor handed out before; limit 1..500. Returns 0 (cb will run), -EINVAL for a cursor
 * that is not one (cb will not run), or another negative code. Strings are borrowed. */
int zd_inbox_list(zd_inbox *ib, const char *profile, const char *cursor, int limit,
                  zd_inbox_answer_cb cb, void *udata);

/* Marks one item read; the first read counts "<route>:read" in its policy's funnel. The
 * answer is the item as listed, plus "unread" (the profile's count after it). */
int zd_inbox_read(zd_inbox *ib, const char *profile, const char *notice, zd_inbox_answer_cb cb,
                  void *udata);

/* Marks every item read (each first read counted as above): {"profile", "read": <items newly
 * marked>, "unread": 0}. */
int zd_inbox_read_all(zd_inbox *ib, const char *profile, zd_inbox_answer_cb cb, void *udata);

/* Records the recipient's feedback on one item (and marks it read): counts "<route>:useful" or
 * "<route>:not_useful" once per item; a change of mind moves the count. reason may be "" (at
 * most ZD_INBOX_REASON_MAX bytes, the caller checks). The answer is the item, with "unread". */
int zd_inbox_feedback(zd_inbox *ib, const char *profile, const char *notice, bool useful,
                      const char *reason, zd_inbox_answer_cb cb, void *udata);

/* Whether s is a notice id "policy:profile:gateway" as SPEC §5 describes it. */
bool zd_inbox_notice_id_valid(const char *s);

#endif
