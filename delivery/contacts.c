/* Counting recipients without a contact per route: HMGET of stored profiles in batches of one
 * partition, a few in flight, and only each profile's "contacts" keys looked at. */
#include "delivery/contacts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/prefs.h"
#include "profiles/store.h"
#include "redis/keys.h"
#include "redis/redis.h"

typedef struct count_call {
    zd_redis *r;
    zd_contacts_cb cb;
    void *udata;
    zd_contact_plan plan;
    char **ids;
    int *parts;
    size_t n, next; /* ids[next..n) not sent yet */
    int inflight;
    int status;
    uint64_t read;
    uint64_t no_contact[ZD_POLICY_ROUTES_MAX];
    uint64_t muted[ZD_POLICY_ROUTES_MAX];
} count_call;

static void call_free(count_call *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->ids[i]);
    free(c->ids);
    free(c->parts);
    free(c);
}

/* Whether the private part of a stored value has a non-empty contact for gateway. */
static void count_one(count_call *c, const char *v, size_t len)
{
    const cJSON *contacts = NULL;
    cJSON *priv = NULL;
    uint32_t dense;
    uint64_t version;
    const char *json;
    size_t jlen;
    if (v && zd_store_split_value(v, len, &dense, &version, &json, &jlen) == 0) {
        const char *nl = memchr(json, '\n', jlen);
        if (nl) {
            priv = cJSON_ParseWithLength(nl + 1, jlen - (size_t)(nl + 1 - json));
            contacts = cJSON_GetObjectItemCaseSensitive(priv, "contacts");
        }
    }
    c->read++;
    zd_prefs prefs;
    zd_prefs_read(cJSON_GetObjectItemCaseSensitive(priv, "prefs"), &prefs);
    bool all_muted = zd_prefs_mutes_category(&prefs, c->plan.category);
    for (int r = 0; r < c->plan.nroutes; r++) {
        bool reachable = false, muted = all_muted;
        for (int g = 0; g < c->plan.n[r] && !reachable && !all_muted; g++) {
            if (zd_prefs_mutes_gateway(&prefs, c->plan.gateways[r][g])) {
                muted = true;
                continue;
            }
            if (c->plan.contactless[r][g]) {
                reachable = true;
                continue;
            }
            const cJSON *to = cJSON_GetObjectItemCaseSensitive(contacts, c->plan.gateways[r][g]);
            reachable = cJSON_IsString(to) && to->valuestring[0];
        }
        if (!reachable && muted)
            c->muted[r]++;
        else if (!reachable)
            c->no_contact[r]++;
    }
    cJSON_Delete(priv);
}

static void send_more(count_call *c);
static void finish_if_idle(count_call *c);

static void batch_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    count_call *c = udata;
    c->inflight--;
    if (status == 0 && !zd_reply_is(reply, ZD_REPLY_ARRAY))
        status = -EIO;
    if (status != 0 && c->status == 0)
        c->status = status;
    for (size_t i = 0; c->status == 0 && i < zd_reply_len(reply); i++) {
        size_t len = 0;
        const char *v = zd_reply_str(zd_reply_at(reply, i), &len);
        count_one(c, v, len);
    }
    send_more(c);
    finish_if_idle(c);
}

static void finish_if_idle(count_call *c)
{
    if (c->inflight > 0)
        return;
    c->cb(c->status, c->status == 0 ? c->read : 0, c->no_contact, c->muted, c->udata);
    call_free(c);
}

static void send_more(count_call *c)
{
    while (c->status == 0 && c->next < c->n && c->inflight < ZD_CONTACTS_INFLIGHT) {
        size_t start = c->next, end = start;
        while (end < c->n && end - start < ZD_CONTACTS_BATCH && c->parts[end] == c->parts[start])
            end++;
        size_t k = end - start;
        const char **argv = malloc((k + 2) * sizeof(char *));
        char key[ZD_KEY_MAX];
        if (!argv) {
            c->status = -ENOMEM;
            break;
        }
        argv[0] = "HMGET";
        argv[1] = zd_key_profiles(c->parts[start], key);
        for (size_t i = 0; i < k; i++)
            argv[i + 2] = c->ids[start + i];
        int rc = zd_redis_cmdargv(c->r, batch_got, c, (int)(k + 2), argv, NULL);
        free(argv);
        if (rc != 0) {
            c->status = rc;
            break;
        }
        c->next = end;
        c->inflight++;
    }
}

static void pinged(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    count_call *c = udata;
    c->inflight--;
    c->status = status;
    finish_if_idle(c);
}

int zd_contacts_count(zd_redis *r, char **ids, int *parts, size_t n, const zd_contact_plan *plan,
                      zd_contacts_cb cb, void *udata)
{
    count_call *c = calloc(1, sizeof(*c));
    if (!c) {
        for (size_t i = 0; i < n; i++)
            free(ids[i]);
        free(ids);
        free(parts);
        return -ENOMEM;
    }
    c->r = r;
    c->cb = cb;
    c->udata = udata;
    c->plan = *plan;
    c->ids = ids;
    c->parts = parts;
    c->n = n;
    if (n == 0) {
        /* Nothing to read: answer from the loop like any other reply would be. */
        const char *argv[] = {"PING"};
        c->inflight++;
        int rc = zd_redis_cmdargv(r, pinged, c, 1, argv, NULL);
        if (rc != 0) {
            call_free(c);
            return rc;
        }
        return 0;
    }
    send_more(c);
    if (c->inflight == 0) {
        /* Not one batch could be sent: the callback is not called. */
        int rc = c->status ? c->status : -EIO;
        call_free(c);
        return rc;
    }
    return 0;
}
