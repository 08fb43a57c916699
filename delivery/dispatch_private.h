/* What dispatch.c and dispatch_settle.c share: an entry in progress (a job), its notices
 * (items) and the batches they go out in. */
#ifndef ZD_DISPATCH_PRIVATE_H
#define ZD_DISPATCH_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include <zhida/gateway.h>

#include "delivery/engine.h"
#include "delivery/notice.h"

typedef struct dl_item {
    uint32_t gid;
    int route;
    int exp_gwi, exp_att; /* the state the entry expects */
    int gwi;              /* the chain position chosen */
    bool live;            /* to be routed (its state is the expected one) */
    bool send;            /* routed to gwi, waiting for its cap reservation */
    char imm;             /* the outcome of a notice settled without a gateway */
    int64_t until;        /* deferred: the end of the quiet hours (Unix ms) */
    char *profile;        /* owned */
    char *to;             /* owned; personal data */
    char *text;           /* owned: a templated policy's rendered "title\0body\0" for gwi */
} dl_item;

struct dl_job {
    dl_engine *e;
    dl_policy *pol;
    char id[48];
    int n;
    dl_item *items;
    int ops;      /* Redis commands and batches outstanding, plus 1 while routing */
    bool abandon; /* end without XACK: the entry stays pending and is reclaimed */
    bool acked;
    int64_t t0_ms;
    dl_job *next;
};

struct dl_batch {
    dl_job *job;
    int gi; /* gateway index, -1: settle only (no contact, gateway unavailable) */
    int n;
    int *idx;
    zd_notice *notices;
    char (*ids)[ZD_NOTICE_ID_MAX];
    char **texts; /* rendered "title\0body\0" per notice (owned), only for templated policies */
    zd_timer *pace_t;
    dl_batch *next;
};

/* Ends a batch's part of its job: abandon = the entry must not be acknowledged. */
void dl_batch_end(dl_batch *b, bool abandon);
/* Releases the frequency-cap reservation of item it's profile (every route failed). */
void dl_cap_release(dl_job *j, const dl_item *it);

/* Settles batch b with res (n results of a gateway, valid during the call), or NULL for a
 * batch settled without a gateway (dispatch_settle.c). */
void dl_settle(dl_batch *b, const zd_gw_result *res);
/* Sends every result waiting to be settled (the engine e as void *, for its timer). */
void dl_settle_flush(void *e);
/* Drops what waits to be settled, its entries unacknowledged (the engine is being freed). */
void dl_settle_drop(dl_engine *e);

#endif
