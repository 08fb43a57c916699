/* The query parameters every list endpoint shares: `limit` and the opaque `cursor`. */
#include <stdio.h>
#include <string.h>

#include "zhida/limits.h"
#include "zhidad/api.h"
#include "zhidad/http.h"

bool zd_api_list_query(zd_req *req, int *limit, const char **cursor)
{
    const char *l = zd_req_query(req, "limit");
    *limit = ZD_LIST_LIMIT_DEFAULT;
    if (l) {
        /* Digits only: atoi-style parsing would take "1.5" as 1 and "10x" as 10. */
        size_t n = strlen(l);
        int v = 0;
        bool ok = n >= 1 && n <= 4;
        for (size_t i = 0; ok && i < n; i++) {
            ok = l[i] >= '0' && l[i] <= '9';
            v = v * 10 + (l[i] - '0');
        }
        if (!ok || v < 1 || v > ZD_LIST_LIMIT_MAX) {
            zd_error err;
            zd_error_set(&err, "invalid_value", "limit",
                         "\"limit\" must be an integer 1-%d (items per page)", ZD_LIST_LIMIT_MAX);
            zd_req_reply_zderror(req, 400, &err);
            return false;
        }
        *limit = v;
    }
    *cursor = zd_req_query(req, "cursor");
    if (*cursor && !**cursor) {
        zd_api_reply_bad_cursor(req);
        return false;
    }
    return true;
}

void zd_api_reply_bad_cursor(zd_req *req)
{
    zd_error err;
    zd_error_set(&err, "invalid_cursor", "cursor",
                 "\"cursor\" is not a cursor of this list: pass the next_cursor of the previous "
                 "page unchanged, or leave it out for the first page");
    zd_req_reply_zderror(req, 400, &err);
}
