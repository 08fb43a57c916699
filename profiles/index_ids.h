/* The index's gid -> profile id table: per partition, ids back to back in a char arena.
 * Internal to the index (profiles/index*.c). */
#ifndef ZD_INDEX_IDS_H
#define ZD_INDEX_IDS_H

#include <stddef.h>
#include <stdint.h>

/* Per partition, the ids live back to back in a char arena and offs[dense] is the offset of
 * gid's id (0 = no id: arena[0] is a reserved NUL). That is 4 bytes plus the id per profile.
 * (Partition and dense id are the top 6 and low 26 bits of the gid as zd_gid() lays it out;
 * any other layout stays correct, and is lean as long as those low bits are dense.)
 * An id that is deleted or replaced leaves its bytes behind as garbage; the arena is rewritten
 * once garbage exceeds half of it, so churn costs amortized O(1) and bounded memory. */
typedef struct zd_idpart {
    uint32_t *offs;
    uint32_t noffs; /* allocated entries of offs */
    char *arena;
    size_t alen, acap;
    size_t garbage; /* bytes of dead ids in the arena */
} zd_idpart;

/* Records id (borrowed, copied) for dense id `dense`. Returns 0 or -ENOMEM (then the old id,
 * if any, is kept). */
int zd_idpart_set(zd_idpart *p, uint32_t dense, const char *id);
/* The id of dense (borrowed until the next set/del/trim), or NULL. */
const char *zd_idpart_get(const zd_idpart *p, uint32_t dense);
/* Forgets the id of dense. */
void zd_idpart_del(zd_idpart *p, uint32_t dense);
/* Drops garbage and growth slack after a bulk load. */
void zd_idpart_trim(zd_idpart *p);
/* Frees everything; the partition is empty and reusable. */
void zd_idpart_free(zd_idpart *p);

#endif
