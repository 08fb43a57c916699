/* Lua scripts by their SHA-1: EVALSHA first, and the script's text only when Redis answers
 * NOSCRIPT (after a restart, a SCRIPT FLUSH or on a new node). Sending the text with every
 * EVAL made Redis hash and look up 2.5 KB per delivery settle: a fifth of its CPU per notice
 * at batch 1 (docs/BENCHMARKS.md, "Dispatch"). */
#ifndef ZD_SCRIPT_H
#define ZD_SCRIPT_H

#include <stddef.h>

#include "redis/redis.h"

/* Runs an EVAL given as an argument vector, argv[0] = "EVAL", argv[1] = the script's text
 * (a string of static storage: its SHA-1 is computed once and cached by address), argv[2]
 * the key count, then keys and arguments; argvlen NULL: strlen. Sent as EVALSHA; a NOSCRIPT
 * answer is retried once as EVAL, which also loads the script. The same contract as
 * zd_redis_cmdargv(): 0 and cb exactly once, or a negative code and cb never. */
int zd_redis_eval(zd_redis *r, zd_redis_cb cb, void *udata, int argc, const char **argv,
                  const size_t *argvlen);

/* The hex SHA-1 of text (41 bytes with the NUL), as Redis names a script. */
void zd_script_sha1(const char *text, size_t len, char out[41]);

#endif
