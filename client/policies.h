/* The policy commands of the zhida client: publish, status (a live funnel on a terminal),
 * withdraw, and the dead-letter queue (dlq list, dlq replay). */
#ifndef ZD_CLIENT_POLICIES_H
#define ZD_CLIENT_POLICIES_H

#include "client/cli.h"

/* Each returns the exit status (client/cli.h). Strings are borrowed. */
int zd_policy_publish(const zd_cli *c, const char *file);
int zd_policy_status(const zd_cli *c, const char *id);
int zd_policy_withdraw(const zd_cli *c, const char *id);
int zd_dlq_list(const zd_cli *c, const char *policy, const char *gateway);
/* Exactly one of policy, gateway, or ids[0..n) (n > 0). */
int zd_dlq_replay(const zd_cli *c, const char *policy, const char *gateway, char **ids, int n);

#endif
