/* Notice text from a policy: its title and summary, or its templates rendered per profile. */
#include "delivery/notice.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tpl_entry {
    char *key; /* "default", a gateway name, "follower" */
    zd_template *title, *body;
} tpl_entry;

struct zd_notice_tpls {
    int n;
    tpl_entry *e;
    const tpl_entry *dflt; /* the "default" entry, or NULL */
};

void zd_notice_tpls_free(zd_notice_tpls *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++) {
        free(t->e[i].key);
        zd_template_free(t->e[i].title);
        zd_template_free(t->e[i].body);
    }
    free(t->e);
    free(t);
}

static int compile_part(const cJSON *obj, const char *name, const zd_schema *schema,
                        zd_template **out)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsString(s))
        return 0;
    return zd_template_compile(s->valuestring, strlen(s->valuestring), schema, out, NULL);
}

int zd_notice_tpls_new(const zd_policy *p, const zd_schema *schema, zd_notice_tpls **out)
{
    *out = NULL;
    if (!cJSON_IsObject(p->templates))
        return 0;
    int n = cJSON_GetArraySize(p->templates);
    zd_notice_tpls *t = calloc(1, sizeof(*t));
    if (!t || (n > 0 && !(t->e = calloc((size_t)n, sizeof(*t->e))))) {
        free(t);
        return -ENOMEM;
    }
    const cJSON *it;
    int rc = 0;
    cJSON_ArrayForEach(it, p->templates)
    {
        tpl_entry *e = &t->e[t->n++];
        if (!(e->key = strdup(it->string))) {
            rc = -ENOMEM;
            goto fail;
        }
        if ((rc = compile_part(it, "title", schema, &e->title)) != 0 ||
            (rc = compile_part(it, "body", schema, &e->body)) != 0)
            goto fail;
        if (strcmp(e->key, "default") == 0)
            t->dflt = e;
    }
    *out = t;
    return 0;
fail:
    zd_notice_tpls_free(t);
    return rc;
}

static const tpl_entry *entry_of(const zd_notice_tpls *t, const char *gateway)
{
    for (int i = 0; gateway && i < t->n; i++)
        if (strcmp(t->e[i].key, gateway) == 0)
            return &t->e[i];
    return NULL;
}

const zd_template *zd_notice_tpl_title(const zd_notice_tpls *t, const char *gateway)
{
    if (!t)
        return NULL;
    const tpl_entry *e = entry_of(t, gateway);
    if (e && e->title)
        return e->title;
    return t->dflt ? t->dflt->title : NULL;
}

const zd_template *zd_notice_tpl_body(const zd_notice_tpls *t, const char *gateway)
{
    if (!t)
        return NULL;
    const tpl_entry *e = entry_of(t, gateway);
    if (e && e->body)
        return e->body;
    return t->dflt ? t->dflt->body : NULL;
}

unsigned zd_notice_tpls_uses(const zd_notice_tpls *t, const char *gateway)
{
    if (!t)
        return 0;
    if (gateway)
        return zd_template_uses(zd_notice_tpl_title(t, gateway)) |
               zd_template_uses(zd_notice_tpl_body(t, gateway));
    unsigned u = 0;
    for (int i = 0; i < t->n; i++)
        u |= zd_template_uses(t->e[i].title) | zd_template_uses(t->e[i].body);
    return u;
}

/* Renders tpl (or copies fixed when tpl is NULL) at dst, which has room for need + 1 bytes;
 * stack holds the first rendering when it fit. */
static void place(const zd_template *tpl, const zd_template_data *td, zd_escape esc,
                  const char *fixed, const char *stack, size_t stack_cap, size_t need, char *dst)
{
    if (!tpl)
        memcpy(dst, fixed, need + 1);
    else if (need < stack_cap)
        memcpy(dst, stack, need + 1);
    else
        zd_template_render(tpl, td, esc, dst, need + 1);
}

int zd_notice_build(const zd_policy *p, const char *profile_id, const zd_notice_data *d,
                    const char *gateway, const char *to, int attempt, zd_notice *out, char *idbuf,
                    char **text)
{
    *text = NULL;
    int n = snprintf(idbuf, ZD_NOTICE_ID_MAX, "%s:%s:%s", p->id, profile_id, gateway);
    if (n < 0 || n >= ZD_NOTICE_ID_MAX)
        return -EINVAL;
    *out = (zd_notice){
        .id = idbuf,
        .policy = p->id,
        .profile = profile_id,
        .gateway = gateway,
        .to = to ? to : "",
        .title = p->title ? p->title : "",
        .body = p->summary ? p->summary : "",
        .url = p->url ? p->url : "",
        .category = p->category ? p->category : "",
        .urgent = p->urgent ? 1 : 0,
        .attempt = attempt,
    };
    const zd_notice_tpls *t = d ? d->tpls : NULL;
    const zd_template *tt = zd_notice_tpl_title(t, gateway), *bt = zd_notice_tpl_body(t, gateway);
    if (!tt && !bt)
        return 0;
    zd_template_data td = {.policy = p,
                           .profile_id = profile_id,
                           .fields = d->fields,
                           .profile = d->profile,
                           .reasons = d->reasons};
    /* One allocation per notice: both parts are rendered into stack buffers, then copied
     * into one "title\0body\0" buffer (rendered again there only when one did not fit). */
    char ts[512], bs[4096];
    size_t tl = tt ? zd_template_render(tt, &td, d->escape, ts, sizeof(ts)) : strlen(out->title);
    size_t bl = bt ? zd_template_render(bt, &td, d->escape, bs, sizeof(bs)) : strlen(out->body);
    char *buf = malloc(tl + bl + 2);
    if (!buf)
        return -ENOMEM;
    place(tt, &td, d->escape, out->title, ts, sizeof(ts), tl, buf);
    place(bt, &td, d->escape, out->body, bs, sizeof(bs), bl, buf + tl + 1);
    out->title = buf;
    out->body = buf + tl + 1;
    *text = buf;
    return 0;
}
