/* The gid -> id table of index_ids.h: 4 bytes plus the id per profile, with the arena
 * compacted once garbage exceeds half of it. */
#include "profiles/index_ids.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/profile.h"

#define ZD_ARENA_MAX ((size_t)UINT32_MAX)

static int idpart_reserve_offs(zd_idpart *p, uint32_t dense)
{
    if (dense < p->noffs)
        return 0;
    /* Grow by half, not double: dense ids are handed out in order, so the table grows in small
     * steps and the slack matters for the memory target. */
    uint64_t n = (uint64_t)p->noffs + p->noffs / 2 + 16;
    if (n < (uint64_t)dense + 1)
        n = (uint64_t)dense + 1;
    if (n > (uint64_t)ZD_DENSE_MAX + 1)
        n = (uint64_t)ZD_DENSE_MAX + 1;
    uint32_t *no = realloc(p->offs, n * sizeof(*no));
    if (!no)
        return -ENOMEM;
    memset(no + p->noffs, 0, (n - p->noffs) * sizeof(*no));
    p->offs = no;
    p->noffs = (uint32_t)n;
    return 0;
}

/* Rewrites the arena without garbage, with room for `need` more bytes. */
static int idpart_compact(zd_idpart *p, size_t need)
{
    size_t used = p->alen - p->garbage;
    size_t cap = used + need + used / 2 + 64;
    if (cap > ZD_ARENA_MAX)
        cap = ZD_ARENA_MAX;
    if (used + need > cap)
        return -ENOMEM;
    char *na = malloc(cap);
    if (!na)
        return -ENOMEM;
    size_t n = 1;
    na[0] = '\0';
    for (uint32_t d = 0; d < p->noffs; d++) {
        if (!p->offs[d])
            continue;
        size_t l = strlen(p->arena + p->offs[d]) + 1;
        memcpy(na + n, p->arena + p->offs[d], l);
        p->offs[d] = (uint32_t)n;
        n += l;
    }
    free(p->arena);
    p->arena = na;
    p->alen = n;
    p->acap = cap;
    p->garbage = 0;
    return 0;
}

static int idpart_append(zd_idpart *p, const char *id, size_t l, uint32_t *off)
{
    /* arena[0] is the reserved empty string that offset 0 points at. */
    size_t start = p->alen ? p->alen : 1;
    if (start + l > p->acap) {
        if (p->garbage > p->alen / 2) {
            if (idpart_compact(p, l) < 0)
                return -ENOMEM;
        } else {
            size_t cap = p->acap + p->acap / 2 + 256;
            if (cap < start + l)
                cap = start + l;
            if (cap > ZD_ARENA_MAX)
                cap = ZD_ARENA_MAX;
            if (start + l > cap)
                return -ENOMEM;
            char *na = realloc(p->arena, cap);
            if (!na)
                return -ENOMEM;
            p->arena = na;
            p->acap = cap;
        }
    }
    if (p->alen == 0) {
        p->arena[0] = '\0';
        p->alen = 1;
    }
    memcpy(p->arena + p->alen, id, l);
    *off = (uint32_t)p->alen;
    p->alen += l;
    return 0;
}

int zd_idpart_set(zd_idpart *p, uint32_t dense, const char *id)
{
    if (idpart_reserve_offs(p, dense) < 0)
        return -ENOMEM;
    uint32_t cur = p->offs[dense];
    if (cur && strcmp(p->arena + cur, id) == 0)
        return 0;
    size_t l = strlen(id) + 1, oldl = cur ? strlen(p->arena + cur) + 1 : 0;
    uint32_t off;
    /* Unlink the old id first, so that a compaction inside append drops it. Append fails only
     * before touching the arena, so the old id can be put back then. */
    p->offs[dense] = 0;
    p->garbage += oldl;
    if (idpart_append(p, id, l, &off) < 0) {
        p->offs[dense] = cur;
        p->garbage -= oldl;
        return -ENOMEM;
    }
    p->offs[dense] = off;
    return 0;
}

void zd_idpart_del(zd_idpart *p, uint32_t dense)
{
    if (dense >= p->noffs || !p->offs[dense])
        return;
    p->garbage += strlen(p->arena + p->offs[dense]) + 1;
    p->offs[dense] = 0;
}

const char *zd_idpart_get(const zd_idpart *p, uint32_t dense)
{
    if (dense >= p->noffs || !p->offs[dense])
        return NULL;
    return p->arena + p->offs[dense];
}

void zd_idpart_trim(zd_idpart *p)
{
    if (p->garbage > 0 && p->alen > 0)
        idpart_compact(p, 0);
    if (p->acap > p->alen && p->alen > 0) {
        char *na = realloc(p->arena, p->alen);
        if (na) {
            p->arena = na;
            p->acap = p->alen;
        }
    }
    uint32_t used = p->noffs;
    while (used > 0 && !p->offs[used - 1])
        used--;
    if (used == 0) {
        free(p->offs);
        p->offs = NULL;
        p->noffs = 0;
    } else if (used < p->noffs) {
        uint32_t *no = realloc(p->offs, used * sizeof(*no));
        if (no) {
            p->offs = no;
            p->noffs = used;
        }
    }
}

void zd_idpart_free(zd_idpart *p)
{
    free(p->offs);
    free(p->arena);
    *p = (zd_idpart){0};
}
