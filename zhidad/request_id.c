/* Request ids: validating a client's, reading a traceparent's, making new ones. */
#include "zhidad/request_id.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

bool zd_request_id_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > ZD_REQUEST_ID_MAX)
        return false;
    size_t digits = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\' || c == '@')
            return false;
        /* Log lines carry the id after masking (so that it stays greppable): nothing in it may
         * look like personal data, wherever it is in the id: no e-mail address ('@'), no
         * phone or ID number (7 digits in a row). */
        digits = c >= '0' && c <= '9' ? digits + 1 : 0;
        if (digits >= 7)
            return false;
    }
    return true;
}

static bool lower_hex(const char *s, size_t n, bool *nonzero)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        if (c != '0')
            *nonzero = true;
    }
    return true;
}

bool zd_request_id_from_traceparent(const char *tp, char out[33])
{
    /* version "-" trace-id "-" parent-id "-" flags; later versions may append "-..." */
    if (!tp)
        return false;
    size_t len = strlen(tp);
    if (len < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return false;
    bool v_nz = false, t_nz = false, p_nz = false, f_nz = false;
    if (!lower_hex(tp, 2, &v_nz) || !lower_hex(tp + 3, 32, &t_nz) ||
        !lower_hex(tp + 36, 16, &p_nz) || !lower_hex(tp + 53, 2, &f_nz))
        return false;
    if (memcmp(tp, "ff", 2) == 0 || !t_nz || !p_nz)
        return false;
    if (len != 55 && (memcmp(tp, "00", 2) == 0 || tp[55] != '-'))
        return false;
    memcpy(out, tp + 3, 32);
    out[32] = '\0';
    return true;
}

/* splitmix64 over a random seed: ids must be unique, not secret. */
static uint64_t next_random(void)
{
    static uint64_t state;
    static bool seeded;
    if (!seeded) {
        if (getrandom(&state, sizeof(state), GRND_NONBLOCK) != (ssize_t)sizeof(state)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)getpid();
        }
        seeded = true;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void zd_request_id_new(char out[33])
{
    /* About a third of random hex ids hold 7 digits in a row somewhere: draw again. */
    do {
        snprintf(out, 33, "%016llx%016llx", (unsigned long long)next_random(),
                 (unsigned long long)next_random());
    } while (!zd_request_id_valid(out, 32));
}

bool zd_request_id_pick(const char *xrid, const char *tp, char out[ZD_REQUEST_ID_MAX + 1])
{
    if (xrid) {
        size_t len = strlen(xrid);
        if (zd_request_id_valid(xrid, len)) {
            memcpy(out, xrid, len + 1);
            return true;
        }
    }
    if (zd_request_id_from_traceparent(tp, out))
        return true;
    zd_request_id_new(out);
    return false;
}
