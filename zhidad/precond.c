/* If-Match / If-None-Match: parsing the entity-tag lists and checking them against a version. */
#include "zhidad/precond.h"

#include <stdio.h>
#include <string.h>

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* One header value into any / v[] / *n; strong: If-Match's strong comparison. */
static int parse_list(const char *value, const char *name, bool strong, bool *any, uint64_t *v,
                      int *n, zd_error *err)
{
    const char *s = skip_ows(value);
    if (*s == '*' && *skip_ows(s + 1) == '\0') {
        *any = true;
        return 0;
    }
    int tags = 0;
    while (1) {
        s = skip_ows(s);
        bool weak = strncmp(s, "W/", 2) == 0;
        if (weak)
            s += 2;
        if (*s != '"')
            goto bad;
        const char *start = ++s;
        /* etagc: visible ASCII but '"', and obs-text. */
        while (*s && *s != '"') {
            unsigned char c = (unsigned char)*s;
            if (c < 0x21 || c == 0x7f)
                goto bad;
            s++;
        }
        if (*s != '"' || ++tags > ZD_PRECOND_TAGS_MAX)
            goto bad;
        size_t len = (size_t)(s - start);
        s++;
        uint64_t ver = 0;
        bool number = len > 0 && len <= 19;
        for (size_t i = 0; number && i < len; i++) {
            number = start[i] >= '0' && start[i] <= '9';
            ver = ver * 10 + (uint64_t)(start[i] - '0');
        }
        if (number && !(strong && weak))
            v[(*n)++] = ver;
        s = skip_ows(s);
        if (*s == '\0')
            return 0;
        if (*s != ',')
            goto bad;
        s++;
    }
bad:
    return zd_error_set(err, "bad_request", name,
                        "%s must be \"*\" or a comma-separated list of at most %d entity tags "
                        "such as \"3\" (the profile's version, quoted)",
                        name, ZD_PRECOND_TAGS_MAX);
}

int zd_precond_parse(const char *if_match, const char *if_none_match, zd_precond *out,
                     zd_error *err)
{
    memset(out, 0, sizeof(*out));
    if (if_match) {
        out->match = true;
        int rc = parse_list(if_match, "If-Match", true, &out->match_any, out->match_v, &out->nmatch,
                            err);
        if (rc != 0)
            return rc;
    }
    if (if_none_match) {
        out->none = true;
        return parse_list(if_none_match, "If-None-Match", false, &out->none_any, out->none_v,
                          &out->nnone, err);
    }
    return 0;
}

static bool listed(const uint64_t *v, int n, uint64_t version)
{
    for (int i = 0; i < n; i++) {
        if (v[i] == version)
            return true;
    }
    return false;
}

bool zd_precond_holds(const zd_precond *p, bool exists, uint64_t version)
{
    /* RFC 9110 §13.2.2: If-Match first, then If-None-Match. */
    if (p->match && !(exists && (p->match_any || listed(p->match_v, p->nmatch, version))))
        return false;
    if (p->none && exists && (p->none_any || listed(p->none_v, p->nnone, version)))
        return false;
    return true;
}

bool zd_precond_any(const zd_precond *p)
{
    return p->match || p->none;
}

bool zd_precond_direct(const zd_precond *p, char buf[ZD_ETAG_MAX], const char **expect)
{
    *expect = NULL;
    if (!p->match && !p->none)
        return true;
    if (p->match && !p->none && !p->match_any && p->nmatch == 1) {
        snprintf(buf, ZD_ETAG_MAX, "%llu", (unsigned long long)p->match_v[0]);
        *expect = buf;
        return true;
    }
    if (p->none && p->none_any && !p->match) {
        *expect = "-";
        return true;
    }
    return false;
}

const char *zd_etag(uint64_t version, char buf[ZD_ETAG_MAX])
{
    snprintf(buf, ZD_ETAG_MAX, "\"%llu\"", (unsigned long long)version);
    return buf;
}
