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

/* The partition named by a change-stream key, or -1 when key is not one. */
int zd_key_changes_partition(const char *key, size_t len);

#endif
