/* Small text helpers: UTF-8 validation, identifier checks, edit distance, exact decimals. */
#ifndef ZD_TEXT_H
#define ZD_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool zd_utf8_valid(const char *s, size_t len);

/* Number of Unicode code points in valid UTF-8 s[0..len). */
size_t zd_utf8_chars(const char *s, size_t len);

/* Profile ids: 1-ZD_ID_MAX chars of [A-Za-z0-9_.:-]. */
#define ZD_ID_MAX 128
bool zd_id_valid(const char *s, size_t len);

/* Levenshtein distance, capped: returns cap+1 as soon as the distance exceeds cap. */
int zd_edit_distance(const char *a, const char *b, int cap);

/* Parses a decimal number text ("-12", "3.25", "1e3" is rejected) into an integer scaled by
 * 10^decimals. *rem is set to 0 when the value is exactly representable at that scale,
 * otherwise to +1/-1: the sign of (value - *scaled / 10^decimals), i.e. *scaled is the value
 * truncated toward zero. Returns 0, -EINVAL for bad syntax, -ERANGE on overflow. */
int zd_decimal_parse(const char *s, size_t len, int decimals, int64_t *scaled, int *rem);

/* Scales a double by 10^decimals, requiring that it has at most that many decimals
 * (within 1e-9 relative slack). Returns 0, -EINVAL (too many decimals / not finite),
 * -ERANGE (overflow). */
int zd_double_to_scaled(double v, int decimals, int64_t *scaled);

/* What an SMS text costs. GSM-7 (3GPP TS 23.038 default alphabet) holds 160 septets in one
 * message and 153 per part of a concatenated one (the user data header takes the rest); a
 * character of the extension table (^ { } \ [ ~ ] | € and form feed) takes two septets. A text
 * with any other character goes as UCS-2 (UTF-16): 70 units single, 67 per part, a code point
 * above U+FFFF taking two. A two-unit character is never split between parts, so parts are
 * packed greedily as the handset does. */
#define ZD_SMS_GSM7_SINGLE 160
#define ZD_SMS_GSM7_PART 153
#define ZD_SMS_UCS2_SINGLE 70
#define ZD_SMS_UCS2_PART 67

struct zd_sms_count {
    size_t chars; /* Unicode code points (what a person counts as characters) */
    size_t units; /* GSM-7 septets or UCS-2 16-bit units, whichever encoding is used */
    bool ucs2;    /* false: fits the GSM-7 alphabet; true: needs UCS-2 */
    int segments; /* messages billed; an empty text still is one message */
};

/* Counts s[0..len), which must be valid UTF-8 (returns -EINVAL otherwise, *out untouched).
 * Returns 0 and fills *out. */
int zd_sms_count(const char *s, size_t len, struct zd_sms_count *out);

#endif
