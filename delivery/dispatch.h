/* Between the workers' two halves: dispatch_queue.c reads entries from the work streams and
 * hands each to dispatch.c, which turns it into notices, sends and settles them. Private to
 * delivery/. */
#ifndef ZD_DELIVERY_DISPATCH_H
#define ZD_DELIVERY_DISPATCH_H

#include <stdbool.h>

#include "delivery/engine.h"

/* Starts work on entry id of pol's stream (fields borrowed: the entry's field array, or a nil
 * reply for an entry deleted while pending). Acknowledges it once every notice is settled;
 * when something fails it ends without acknowledging, and the entry is reclaimed later. */
void dl_job_start(dl_engine *e, dl_policy *pol, const char *id, const zd_reply *fields);
/* Whether entry id of pol is in progress here. */
bool dl_job_inflight(const dl_engine *e, const dl_policy *pol, const char *id);
/* Calls fn for every entry in progress here. */
void dl_jobs_foreach(dl_engine *e, void (*fn)(dl_policy *pol, const char *id, void *u), void *u);

#endif
