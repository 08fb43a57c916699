/* The configured gateway instances, created once from the config's "gateways" section (the
 * built-in types, and plugin types registered by the loader before the config was checked). */
#include "delivery/gateways.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/log.h"
#include "delivery/inbox.h"

struct zd_gateways {
    int n;
    char **names;   /* every configured name, in config order */
    char **types;   /* its configured "type" */
    zd_gateway **g; /* one per name; every configured type is available */
};

/* The inbox type writes to Redis, which gateway/ may not know: its instances are made here
 * and handed to the host (zd_gateway_adopt). */
static int new_inbox(zd_inbox *inbox, const char *name, const cJSON *opts, zd_gateway **out,
                     char *err, size_t errlen)
{
    int rc = zd_gateway_check(name, opts, err, errlen);
    if (rc)
        return rc;
    if (!inbox) {
        snprintf(err, errlen, "gateways.%s: no inbox store to write to", name);
        return -ENOTSUP;
    }
    void *inst;
    if ((rc = zd_inbox_gateway_new(inbox, name, &inst))) {
        snprintf(err, errlen, "gateways.%s: out of memory", name);
        return rc;
    }
    return zd_gateway_adopt(name, opts, &zd_inbox_type, inst, out, err, errlen);
}

static bool is_inbox(const cJSON *opts)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(opts, "type");
    return cJSON_IsString(t) && strcmp(t->valuestring, zd_inbox_type.name) == 0;
}

int zd_gateways_new(const zd_gw_host *host, const cJSON *config, zd_inbox *inbox, zd_gateways **out,
                    char *err, size_t errlen)
{
    *out = NULL;
    zd_gateways *gs = calloc(1, sizeof(*gs));
    if (!gs)
        return -ENOMEM;
    int n = config ? cJSON_GetArraySize(config) : 0;
    if (n > 0 && (!(gs->g = calloc((size_t)n, sizeof(*gs->g))) ||
                  !(gs->names = calloc((size_t)n, sizeof(*gs->names))) ||
                  !(gs->types = calloc((size_t)n, sizeof(*gs->types))))) {
        zd_gateways_free(gs);
        return -ENOMEM;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, config)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
        if (!(gs->names[gs->n] = strdup(e->string)) ||
            !(gs->types[gs->n] = strdup(cJSON_IsString(type) ? type->valuestring : ""))) {
            gs->n++;
            zd_gateways_free(gs);
            return -ENOMEM;
        }
        int rc = is_inbox(e) ? new_inbox(inbox, e->string, e, &gs->g[gs->n], err, errlen)
                             : zd_gateway_new(host, e->string, e, &gs->g[gs->n], err, errlen);
        gs->n++;
        if (rc) {
            zd_gateways_free(gs);
            return rc;
        }
    }
    *out = gs;
    return 0;
}

int zd_gateways_count(const zd_gateways *gs)
{
    return gs ? gs->n : 0;
}

zd_gateway *zd_gateways_at(const zd_gateways *gs, int i)
{
    return gs && i >= 0 && i < gs->n ? gs->g[i] : NULL;
}

const char *zd_gateways_name(const zd_gateways *gs, int i)
{
    return gs && i >= 0 && i < gs->n ? gs->names[i] : NULL;
}

const char *zd_gateways_type(const zd_gateways *gs, int i)
{
    return gs && i >= 0 && i < gs->n ? gs->types[i] : NULL;
}

int zd_gateways_index(const zd_gateways *gs, const char *name)
{
    for (int i = 0; gs && i < gs->n; i++) {
        if (strcmp(gs->names[i], name) == 0)
            return i;
    }
    return -1;
}

zd_gateway *zd_gateways_find(const zd_gateways *gs, const char *name)
{
    return zd_gateways_at(gs, zd_gateways_index(gs, name));
}

void zd_gateways_free(zd_gateways *gs)
{
    if (!gs)
        return;
    for (int i = 0; i < gs->n; i++) {
        zd_gateway_free(gs->g[i]);
        free(gs->names[i]);
        free(gs->types[i]);
    }
    free(gs->g);
    free(gs->names);
    free(gs->types);
    free(gs);
}
