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

#endif
