/* Levelled logging to stderr. Every message passes through zd_mask_pii() first, so a phone
 * number, e-mail address or ID number that slips into a message is masked before it is written.
 * Callers still never pass names or contact values on purpose. */
#ifndef ZD_LOG_H
#define ZD_LOG_H

#include <stddef.h>

enum zd_log_level { ZD_LOG_DEBUG = 0, ZD_LOG_INFO, ZD_LOG_WARN, ZD_LOG_ERROR };

/* How lines are written. TEXT: "<UTC time> <LEVEL> <message>". JOURNAL: "<N><message>", the
 * sd-daemon priority prefix journald reads (it adds the time itself), so `journalctl -p err`
 * works. JSON: one object per line, {"ts", "level", "msg"}, for log shippers. */
enum zd_log_format { ZD_LOG_TEXT = 0, ZD_LOG_JOURNAL, ZD_LOG_JSON };

void zd_log_set_level(enum zd_log_level level);
void zd_log_set_format(enum zd_log_format format);
/* Parses "text", "journal", "json" or "auto" (journal when stderr is the journal, per
 * $JOURNAL_STREAM, else text); returns 0 or -EINVAL. */
int zd_log_format_parse(const char *s, enum zd_log_format *out);
/* Parses "debug", "info", "warn", "error"; returns 0 or -EINVAL. */
int zd_log_level_parse(const char *s, enum zd_log_level *out);
void zd_log(enum zd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The id of the request being served (zhidad's request ids), added to every line logged until it
 * is cleared: " request_id=<id>" after a text or journal line, a "request_id" member in JSON.
 * It is added after masking, so callers pass only ids that masking would leave alone. The id is
 * copied (at most 128 bytes); NULL or "" clears it. The log is single-threaded, like the daemon's
 * event loop. */
void zd_log_set_request_id(const char *id);
/* The id set now (an internal copy, valid until the next set), or NULL. */
const char *zd_log_request_id(void);

#define zd_debug(...) zd_log(ZD_LOG_DEBUG, __VA_ARGS__)
#define zd_info(...) zd_log(ZD_LOG_INFO, __VA_ARGS__)
#define zd_warn(...) zd_log(ZD_LOG_WARN, __VA_ARGS__)
#define zd_error_log(...) zd_log(ZD_LOG_ERROR, __VA_ARGS__)

/* Copies in to out (capacity cap, always NUL-terminated), masking personal data: e-mail
 * addresses keep their first character and domain ("a***@b.cn"), runs of 7 or more digits
 * (phone and ID numbers, with an optional leading '+' and a trailing X) keep their first 3 and
 * last 2 digits. Returns the length written. */
size_t zd_mask_pii(const char *in, char *out, size_t cap);

#endif
