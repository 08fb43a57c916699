/* Every Redis key name zhida uses, in one place (the layout is in docs/DESIGN.md). Keys of a
 * profile partition carry its hash tag {p<N>}, so a script over one partition touches one
 * slot; keys outside partitions name a tag of their own. */
#ifndef ZD_KEYS_H
#define ZD_KEYS_H

#include <stddef.h>

/* Large enough for every key below. */
#define ZD_KEY_MAX 64

/* Partition keys. Each writes into buf (capacity ZD_KEY_MAX) and returns buf. */
const char *zd_key_profiles(int partition, char *buf); /* hash: id -> stored profile */
const char *zd_key_seq(int partition, char *buf);      /* string: the dense-id counter */
const char *zd_key_changes(int partition, char *buf);  /* stream: the change stream */
const char *zd_key_erase(int partition, char *buf);    /* zset: erasures to scrub from it */
/* hash: "epoch" (the partition's data-set identity, written once per data set) and "n" (the
 * number of change-stream entries ever written by the write scripts; entry k carries n = k) */
const char *zd_key_meta(int partition, char *buf);

/* Keys outside partitions. */
#define ZD_KEY_SEGMENTS "zd:{seg}:segments" /* hash: segment name -> owner scope + rule */
#define ZD_KEY_AUDIT "zd:{audit}:audit"     /* stream: the audit trail */

/* Policy registry keys (docs/DESIGN.md, "Delivery"): one slot, touched at create and listing. */
#define ZD_KEY_POLICY_ORDER "zd:{pol}:order"   /* zset: id scored by creation sequence */
#define ZD_KEY_POLICY_SEQ "zd:{pol}:seq"       /* string: creation sequence counter */
#define ZD_KEY_POLICY_ACTIVE "zd:{pol}:active" /* set: ids of unfinished policies */
#define ZD_KEY_POLICY_LEASE "zd:{pol}:lease"   /* string: scheduler lease "<consumer>/<fence>" */
#define ZD_KEY_POLICY_FENCE "zd:{pol}:fence"   /* string: fencing-token counter */

/* Per-policy keys, tag {d:<id>} (ids are [A-Za-z0-9._-]{1,64}). Each writes into buf (capacity
 * ZD_POLICY_KEY_MAX) and returns buf. */
#define ZD_POLICY_KEY_MAX 96
typedef enum zd_policy_key {
    ZD_PK_META,     /* hash: doc, digest, status, owner, scope, counts, job, fence, times */
    ZD_PK_FUNNEL,   /* hash: "<route>:<bucket>" and "<route>:by:<gateway>" counters */
    ZD_PK_AUD,      /* hash: partition -> frozen audience (portable roaring of dense ids) */
    ZD_PK_WORK,     /* stream: work items, consumer group "zd" */
    ZD_PK_STATE,    /* hash: "<gid>.<route>" -> notice state */
    ZD_PK_RETRY,    /* zset: "<gid>.<route>.<gwi>.<attempt>" scored by due ms */
    ZD_PK_DEAD,     /* stream: dead letters */
    ZD_PK_PACE,     /* hash: token bucket of a paced policy */
    ZD_PK_OUTCOMES, /* hash: gid -> group ("t" treated, "h" holdout) of a reported application */
} zd_policy_key;
const char *zd_key_policy(zd_policy_key k, const char *policy_id, char *buf);

/* A profile's inbox, in its partition's slot: hash notice id -> item JSON (and "#unread"),
 * zset notice id scored by arrival ms. buf has capacity ZD_INBOX_KEY_MAX. */
#define ZD_INBOX_KEY_MAX 192
const char *zd_key_inbox(int partition, const char *profile_id, char *buf);
const char *zd_key_inbox_order(int partition, const char *profile_id, char *buf);

/* A profile's frequency-cap record, in its partition's slot, named by its index id (gid, never
 * the profile id): zset policy id -> the reservation's ms (delivery/dispatch.c). The profile
 * delete script erases it. buf has capacity ZD_KEY_MAX. The prefix ("zd:{pN}:cap:") is what
 * that script appends the gid to. */
const char *zd_key_cap(int partition, unsigned gid, char *buf);
const char *zd_key_cap_prefix(int partition, char *buf);

/* The partition named by a change-stream key, or -1 when key is not one. */
int zd_key_changes_partition(const char *key, size_t len);

#endif
