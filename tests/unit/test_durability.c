/* Unit tests of profiles/durability: which Redis settings keep zhida's data, and what the
 * verdict says when they do not. The commands themselves run against real redis-servers in
 * tests/integration/test_redis_durability.py. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "profiles/durability.h"

static zd_durability judged(const char *aof, const char *policy)
{
    zd_durability d;
    memset(&d, 0, sizeof(d));
    snprintf(d.appendonly, sizeof(d.appendonly), "%s", aof);
    snprintf(d.policy, sizeof(d.policy), "%s", policy);
    zd_durability_judge(&d);
    return d;
}

int main(void)
{
    /* volatile-* evicts only keys with a TTL, and zhida sets none. */
    CHECK(!zd_durability_policy_evicts("noeviction"));
    CHECK(!zd_durability_policy_evicts("volatile-lru"));
    CHECK(!zd_durability_policy_evicts("volatile-ttl"));
    CHECK(zd_durability_policy_evicts("allkeys-lru"));
    CHECK(zd_durability_policy_evicts("allkeys-random"));
    CHECK(zd_durability_policy_evicts("allkeys-lfu"));

    zd_durability d = judged("yes", "noeviction");
    CHECK(d.known && d.ok && !d.problem[0] && !d.fix[0]);
    d = judged("yes", "volatile-lfu");
    CHECK(d.ok);
    d = judged("no", "noeviction");
    CHECK(d.known && !d.ok);
    CHECK(strstr(d.problem, "appendonly is no") == d.problem);
    CHECK(strstr(d.problem, "maxmemory-policy") == NULL);
    CHECK_STR(d.fix, "appendonly yes");
    d = judged("yes", "allkeys-lru");
    CHECK(!d.ok && strstr(d.problem, "maxmemory-policy is allkeys-lru") == d.problem);
    CHECK_STR(d.fix, "maxmemory-policy noeviction");
    d = judged("no", "allkeys-lru");
    CHECK(!d.ok && strstr(d.problem, "appendonly is no") && strstr(d.problem, "; maxmemory"));
    CHECK_STR(d.fix, "appendonly yes, maxmemory-policy noeviction");
    /* Unknown settings are not ok, and not judged here (the check names what it was told). */
    d = judged("", "noeviction");
    CHECK(!d.known && !d.ok);
    d = judged("yes", "");
    CHECK(!d.known && !d.ok);
    return check_report("durability");
}
