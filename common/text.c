/* UTF-8 validation, id syntax, edit distance and exact decimal parsing. */
#include "common/text.h"

#include <errno.h>
#include <math.h>
#include <string.h>

bool zd_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int n;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + (size_t)n >= len)
            return false;
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += (size_t)n + 1;
    }
    return true;
}

size_t zd_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

bool zd_id_valid(const char *s, size_t len)
{
    if (len < 1 || len > ZD_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

int zd_edit_distance(const char *a, const char *b, int cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return cap + 1;
    int prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        int rowmin = cur[0];
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            int m = sub < del ? sub : del;
            cur[j] = m < ins ? m : ins;
            if (cur[j] < rowmin)
                rowmin = cur[j];
        }
        if (rowmin > cap)
            return cap + 1;
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb] > cap ? cap + 1 : prev[lb];
}

int zd_decimal_parse(const char *s, size_t len, int decimals, int64_t *scaled, int *rem)
{
    size_t i = 0;
    int neg = 0;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i >= len || s[i] < '0' || s[i] > '9')
        return -EINVAL;
    const int64_t limit = INT64_MAX / 10;
    int64_t v = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (INT64_MAX - (s[i] - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (s[i] - '0');
    }
    int frac_used = 0, nonzero_tail = 0;
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || s[i] < '0' || s[i] > '9')
            return -EINVAL;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (frac_used < decimals) {
                if (v > (INT64_MAX - (s[i] - '0')) / 10)
                    return -ERANGE;
                v = v * 10 + (s[i] - '0');
                frac_used++;
            } else if (s[i] != '0') {
                nonzero_tail = 1;
            }
        }
    }
    if (i != len)
        return -EINVAL;
    for (; frac_used < decimals; frac_used++) {
        if (v > limit)
            return -ERANGE;
        v *= 10;
    }
    *scaled = neg ? -v : v;
    *rem = nonzero_tail ? (neg ? -1 : 1) : 0;
    return 0;
}

int zd_double_to_scaled(double v, int decimals, int64_t *scaled)
{
    if (!isfinite(v))
        return -EINVAL;
    double p = 1;
    for (int i = 0; i < decimals; i++)
        p *= 10;
    double x = v * p;
    if (fabs(x) > 9.0e15)
        return -ERANGE;
    double r = nearbyint(x);
    if (fabs(x - r) > 1e-9 * (fabs(x) > 1 ? fabs(x) : 1))
        return -EINVAL;
    *scaled = (int64_t)r;
    return 0;
}

/* GSM-7 septets one code point takes: 1 for the default alphabet, 2 for the extension table
 * (escape + char), 0 when it is not in GSM-7 at all. */
static int gsm7_septets(unsigned cp)
{
    if (cp < 0x80) {
        switch (cp) {
        case '\n':
        case '\r':
            return 1;
        case '\f':
        case '^':
        case '{':
        case '}':
        case '\\':
        case '[':
        case '~':
        case ']':
        case '|':
            return 2;
        case '`':
            return 0;
        default:
            return cp >= 0x20 && cp < 0x7F ? 1 : 0;
        }
    }
    if (cp == 0x20AC) /* € */
        return 2;
    /* The default alphabet's characters outside ASCII, in code point order. */
    static const unsigned short basic[] = {
        0x00A1, 0x00A3, 0x00A4, 0x00A5, 0x00A7, 0x00BF, 0x00C4, 0x00C5, 0x00C6, 0x00C7,
        0x00C9, 0x00D1, 0x00D6, 0x00D8, 0x00DC, 0x00DF, 0x00E0, 0x00E4, 0x00E5, 0x00E6,
        0x00E8, 0x00E9, 0x00EC, 0x00F1, 0x00F2, 0x00F6, 0x00F8, 0x00F9, 0x00FC, 0x0393,
        0x0394, 0x0398, 0x039B, 0x039E, 0x03A0, 0x03A3, 0x03A6, 0x03A8, 0x03A9,
    };
    size_t lo = 0, hi = sizeof basic / sizeof basic[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (basic[mid] == cp)
            return 1;
        if (basic[mid] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Decodes the code point at s[*i] of valid UTF-8 and advances *i. */
static unsigned utf8_next(const unsigned char *s, size_t *i)
{
    unsigned c = s[*i];
    int n = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    unsigned cp = n == 0 ? c : n == 1 ? (c & 0x1F) : n == 2 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k <= n; k++)
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    *i += (size_t)n + 1;
    return cp;
}

/* Parts needed when characters of width 1 or 2 are packed greedily into parts of `part`
 * units, a character never split. Two passes over the text keep this allocation-free. */
static int sms_parts(const unsigned char *s, size_t len, bool ucs2, size_t part)
{
    int parts = 1;
    size_t used = 0, i = 0;
    while (i < len) {
        unsigned cp = utf8_next(s, &i);
        size_t w = ucs2 ? (cp > 0xFFFF ? 2 : 1) : (size_t)gsm7_septets(cp);
        if (used + w > part) {
            parts++;
            used = 0;
        }
        used += w;
    }
    return parts;
}

int zd_sms_count(const char *str, size_t len, struct zd_sms_count *out)
{
    if (!zd_utf8_valid(str, len))
        return -EINVAL;
    const unsigned char *s = (const unsigned char *)str;
    size_t chars = 0, septets = 0, utf16 = 0, i = 0;
    bool ucs2 = false;
    while (i < len) {
        unsigned cp = utf8_next(s, &i);
        chars++;
        utf16 += cp > 0xFFFF ? 2 : 1;
        int w = ucs2 ? 0 : gsm7_septets(cp);
        if (w == 0)
            ucs2 = true;
        septets += (size_t)w;
    }
    out->chars = chars;
    out->ucs2 = ucs2;
    out->units = ucs2 ? utf16 : septets;
    size_t single = ucs2 ? ZD_SMS_UCS2_SINGLE : ZD_SMS_GSM7_SINGLE;
    size_t part = ucs2 ? ZD_SMS_UCS2_PART : ZD_SMS_GSM7_PART;
    out->segments = out->units <= single ? 1 : sms_parts(s, len, ucs2, part);
    return 0;
}
