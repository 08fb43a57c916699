/* The notice template language (SPEC §4): literal text with `{{path}}` and `{{path|fallback}}`
 * placeholders over policy.* (title, summary, url, issuer, category, deadline, id), fields.*,
 * attrs.*, profile.id and reasons. A template is compiled once (at publish, to check it, and
 * once per policy in the engine) into a list of parts; rendering walks the parts into one
 * caller-supplied buffer without allocating. Pure: no Redis, no event loop. */
#ifndef ZD_TEMPLATE_H
#define ZD_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "delivery/policy.h"
#include "profiles/schema.h"

struct cJSON;

typedef struct zd_template zd_template;

/* Why a template was refused. position is the byte offset of the offending placeholder's path
 * (or of its "{{" for a syntax error) in the template text. */
typedef struct zd_template_error {
    char code[40];     /* "unknown_path", "syntax_error", "out_of_memory" */
    char path[64];     /* the unknown path as written (cut to 63 bytes) */
    char message[256]; /* names the path, its position and a near known path */
    int position;
} zd_template_error;

/* What a compiled template reads, as flags (zd_template_uses()): the dispatcher loads or
 * computes only what a policy's templates need. */
enum {
    ZD_TPL_USES_FIELDS = 1,  /* fields.*: the profile's private part */
    ZD_TPL_USES_ATTRS = 2,   /* attrs.*: the profile's indexed part */
    ZD_TPL_USES_REASONS = 4, /* reasons: the rule evaluated against the profile */
};

/* How substituted values are escaped for the gateway's medium. ZD_ESCAPE_HTML escapes values
 * (never the publisher's literal text or fallbacks) for a body that is HTML as given. Every
 * built-in type takes plain text (zd_escape_for_type): JSON bodies (webhook, inbox) are
 * JSON-encoded anyway, SMS is text, and the smtp gateway HTML-escapes the whole body itself
 * for its text/html part. */
typedef enum zd_escape { ZD_ESCAPE_NONE, ZD_ESCAPE_HTML } zd_escape;

/* The escaping notices for a gateway of this type need: ZD_ESCAPE_NONE for every built-in
 * type (see zd_escape). */
zd_escape zd_escape_for_type(const char *gateway_type);

/* Compiles text[0..len) (valid UTF-8). schema (borrowed, may be NULL) checks attrs.<name>
 * against the declared attributes. Returns 0 and *out (caller frees with zd_template_free()),
 * -EINVAL and *err, or -ENOMEM. */
int zd_template_compile(const char *text, size_t len, const zd_schema *schema, zd_template **out,
                        zd_template_error *err);
/* zd_template_free(NULL) is a no-op. */
void zd_template_free(zd_template *t);
unsigned zd_template_uses(const zd_template *t);

/* One profile's values (all borrowed; any may be NULL, which reads as missing). */
typedef struct zd_template_data {
    const zd_policy *policy;
    const char *profile_id;
    const struct cJSON *fields;  /* the profile's "fields" object */
    const struct cJSON *profile; /* the profile document: attrs.x is its attrs.x, or for the
                                    built-in attributes (kind, region, tags) its top-level x */
    const char *reasons;         /* the reasons text (matcher/reasons.h) */
} zd_template_data;

/* Renders t for d into buf (capacity cap; NUL-terminated when cap > 0; cut on a UTF-8
 * boundary when it does not fit). A missing or empty value is replaced by the placeholder's
 * fallback (or nothing). Returns the length the whole rendering needs (excluding the NUL),
 * like snprintf: a result >= cap means it was cut. Allocates nothing. */
size_t zd_template_render(const zd_template *t, const zd_template_data *d, zd_escape esc, char *buf,
                          size_t cap);

#endif
