/* libFuzzer target for the notice template language: arbitrary bytes compile as a template
 * (against the default schema); whatever compiles is rendered for a fixed profile with both
 * escapings and every small buffer size, and must agree with itself: the length returned is
 * the length rendered into a big enough buffer, a cut rendering is a prefix of the whole and
 * ends on a character boundary, and valid UTF-8 in gives valid UTF-8 out. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"
#include "delivery/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static zd_schema *schema;
static zd_policy policy;
static cJSON *doc, *fields;

static void init(void)
{
    schema = zd_schema_default();
    policy = (zd_policy){.id = "hz-1",
                         .title = "稳岗补贴<&>",
                         .summary = "摘要",
                         .url = "https://x.cn/p?a=1&b=2",
                         .issuer = "杭州市人力社保局",
                         .category = "employment",
                         .deadline = "2021-07-01"};
    doc = cJSON_Parse("{\"kind\": \"enterprise\", \"region\": \"330106\", \"attrs\": "
                      "{\"employees\": 40, \"registered_capital\": 100.5, \"founded\": "
                      "\"2022-06-16\"}, \"tags\": [\"hightech\", \"srdi\"]}");
    fields = cJSON_Parse("{\"company\": \"杭州某某\\\"科技\\\"<有限>公司\", \"empty\": \"\", "
                         "\"n\": 3.25, \"b\": true}");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schema)
        init();
    if (size > 4096)
        return 0;
    const char *text = (const char *)data;
    zd_template *t = NULL;
    zd_template_error err;
    int rc = zd_template_compile(text, size, schema, &t, &err);
    if (rc != 0) {
        if (t || (rc == -EINVAL && (err.position < 0 || (size_t)err.position > size)))
            abort();
        return 0;
    }
    bool utf8 = zd_utf8_valid(text, size);
    zd_template_data d = {.policy = &policy,
                          .profile_id = "e0000042",
                          .fields = fields,
                          .profile = doc,
                          .reasons = "注册地在杭州市，员工少于300人"};
    for (int esc = 0; esc < 2; esc++) {
        size_t need = zd_template_render(t, &d, (zd_escape)esc, NULL, 0);
        char *full = malloc(need + 1);
        if (!full)
            abort();
        if (zd_template_render(t, &d, (zd_escape)esc, full, need + 1) != need ||
            strlen(full) > need || (utf8 && !zd_utf8_valid(full, need)))
            abort();
        char small[64];
        for (size_t cap = 1; cap <= sizeof(small); cap++) {
            if (zd_template_render(t, &d, (zd_escape)esc, small, cap) != need)
                abort();
            size_t n = strlen(small);
            if (n >= cap || memcmp(small, full, n) != 0 || (utf8 && !zd_utf8_valid(small, n)))
                abort();
        }
        free(full);
    }
    zd_template_free(t);
    return 0;
}
