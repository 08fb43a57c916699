/* zhidad's entry point: reads the config, wires the Redis client, the HTTP server and the API
 * together on one event loop, and stops gracefully on SIGTERM/SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/notify.h"
#include "profiles/follower.h"
#include "zhidad/service.h"

#ifndef ZD_VERSION
#define ZD_VERSION "dev"
#endif

/* How long in-flight requests may take to finish after a stop signal. */
#define DRAIN_MS 2000
#define DRAIN_POLL_MS 20
/* After the drain, the wait for Redis's answers to the last commands (the final audit records)
 * ends when each has been answered or failed by its deadline; this margin past the deadline
 * only covers the Redis client's deadline tick. */
#define FLUSH_SLACK_MS 500

/* Stopping: SIGTERM -> (1) stop accepting, wait for requests in flight (drain_ev) -> (2) the
 * service queues its last audit records, wait until Redis has answered (flush_ev) -> leave
 * the loop, free everything. A second signal leaves the loop at once. */
typedef struct daemon_state {
    zd_service svc;
    struct event *sigterm_ev, *sigint_ev, *sighup_ev, *drain_ev, *flush_ev;
    int drain_waited_ms, flush_waited_ms;
    const char *config_path;
} daemon_state;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: zhidad -c zhida.json [--listen ADDR:PORT] [--redis ADDR:PORT|unix:PATH]\n"
        "              [--log-level debug|info|warn|error] [--check-config | --print-routes]\n"
        "       zhidad --help | --version\n"
        "\n"
        "  -c, --config FILE    the configuration (docs/CONFIG.md)\n"
        "  -t, --check-config   check the configuration (and overrides), print the verdict, exit\n"
        "      --print-routes   print every HTTP route as \"METHOD PATTERN roles\" and exit\n"
        "      --listen ADDR    overrides \"listen\", e.g. 127.0.0.1:8700\n"
        "      --redis ADDR     overrides \"redis\", e.g. 127.0.0.1:6379 or unix:/run/redis.sock\n"
        "      --log-level L    overrides \"log_level\"\n"
        "  -h, --help           this text\n"
        "  -V, --version        the version\n"
        "\n"
        "Exit status: 0 after a clean stop (SIGTERM/SIGINT), a good --check-config or\n"
        "--print-routes; 64 usage error; 78 configuration error (systemd does not restart it);\n"
        "1 any other start-up failure (e.g. the listen address is taken).\n");
}

/* --print-routes: one line per route, "METHOD PATTERN roles", roles comma-separated from the
 * most to the least privileged, "-" for a route without auth. tests/integration/test_openapi.py
 * compares these lines with docs/openapi.json. */
static void print_route(const char *method, const char *pattern, unsigned roles, void *udata)
{
    static const enum zd_role order[] = {ZD_ROLE_ADMIN, ZD_ROLE_PUBLISHER, ZD_ROLE_APP,
                                         ZD_ROLE_VIEWER};
    printf("%s %s ", method, pattern);
    const char *sep = "";
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (roles & (unsigned)order[i]) {
            printf("%s%s", sep, zd_role_name(order[i]));
            sep = ",";
        }
    }
    printf("%s\n", roles ? "" : "-");
}

static void healthz(zd_req *req, void *udata)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    zd_req_reply_json(req, 200, j);
}

static void readyz(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    bool redis = zd_redis_ready(svc->redis);
    bool index = svc->index_ready && svc->follower && zd_follower_ready(svc->follower);
    /* "redis_durability": "require": only on a Redis known to keep our data. */
    bool durable = svc->cfg->redis_durability != ZD_DURABILITY_REQUIRE || svc->redis_durable == 1;
    cJSON *j = cJSON_CreateObject();
    if (zd_service_ready(svc)) {
        cJSON_AddStringToObject(j, "status", "ready");
        zd_req_reply_json(req, 200, j);
        return;
    }
    zd_follower_stats fs = {0};
    if (svc->follower)
        zd_follower_get_stats(svc->follower, &fs);
    cJSON_AddStringToObject(j, "status", svc->stopping ? "stopping" : "not_ready");
    cJSON_AddBoolToObject(j, "redis", redis);
    if (fs.incompatible)
        cJSON_AddStringToObject(j, "redis_version", "older than 7.0");
    if (!durable)
        cJSON_AddStringToObject(j, "redis_durability",
                                svc->redis_durable < 0 ? "not checked yet"
                                                       : svc->durability_problem);
    cJSON_AddStringToObject(j, "index",
                            index              ? "ready"
                            : svc->index_ready ? "rebuilding"
                                               : "loading");
    zd_req_reply_json(req, 503, j);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    daemon_state *d = arg;
    zd_redis_stats rs;
    zd_redis_get_stats(d->svc.redis, &rs);
    long unanswered = rs.inflight + rs.queued;
    int limit = d->svc.cfg->redis_deadline_ms + FLUSH_SLACK_MS;
    if (unanswered == 0 || d->flush_waited_ms >= limit) {
        if (unanswered)
            zd_warn("stopping with %ld Redis command(s) unanswered after %d ms", unanswered, limit);
        event_base_loopbreak(d->svc.base);
        return;
    }
    d->flush_waited_ms += DRAIN_POLL_MS;
    struct timeval tv = {0, DRAIN_POLL_MS * 1000};
    evtimer_add(d->flush_ev, &tv);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    daemon_state *d = arg;
    d->drain_waited_ms += DRAIN_POLL_MS;
    int pending = zd_http_pending(d->svc.http);
    if (pending == 0 || d->drain_waited_ms >= DRAIN_MS) {
        if (pending)
            zd_warn("stopping with %d request(s) unanswered after %d ms", pending, DRAIN_MS);
        zd_service_quiesce(&d->svc);
        flush_cb(-1, 0, d);
        return;
    }
    struct timeval tv = {0, DRAIN_POLL_MS * 1000};
    evtimer_add(d->drain_ev, &tv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    daemon_state *d = arg;
    if (d->svc.stopping) {
        zd_warn("second signal: stopping now");
        event_base_loopbreak(d->svc.base);
        return;
    }
    zd_info("%s: stopping (waiting up to %d ms for requests in flight)",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", DRAIN_MS);
    d->svc.stopping = true;
    zd_notify("STOPPING=1");
    zd_http_stop_accepting(d->svc.http);
    drain_cb(-1, 0, d);
}

/* SIGHUP: reads the config file again. A file that does not load changes nothing; otherwise
 * what can change live (the API keys, log_level, log_format) is applied and everything else
 * keeps its start-up value (the log says which). Command-line overrides were for start-up
 * only and are not re-applied. */
static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
    daemon_state *d = arg;
    char err[512];
    zd_config *next = NULL;
    if (zd_config_load(d->config_path, &next, err, sizeof(err)) != 0) {
        zd_error_log("SIGHUP: %s does not load, nothing changed: %s", d->config_path, err);
        return;
    }
    /* The keys first: if they cannot be swapped (out of memory), nothing changes. */
    char keys[2048];
    int e = zd_http_set_keys(d->svc.http, next->keys, next->nkeys, keys, sizeof(keys));
    if (e != 0) {
        zd_error_log("SIGHUP: cannot apply the API keys (%s), nothing changed", zd_strerror(e));
        zd_config_free(next);
        return;
    }
    /* Names only: never a secret. */
    zd_info("SIGHUP: API keys: %s (%d configured)", keys, next->nkeys);
    enum zd_log_level level = ZD_LOG_INFO;
    enum zd_log_format format = ZD_LOG_TEXT;
    zd_log_level_parse(next->log_level, &level);
    zd_log_format_parse(next->log_format, &format);
    zd_log_set_level(level);
    zd_log_set_format(format);
    zd_info("SIGHUP: reloaded %s: API keys, log_level %s, log_format %s applied; other options "
            "take effect at the next start",
            d->config_path, next->log_level, next->log_format);
    zd_config_free(next);
}

static void stop_loop(zd_service *svc)
{
    event_base_loopbreak(svc->base);
}

/* Exit statuses (sysexits.h values, so operators' tools know them). */
enum { EXIT_USAGE = 64, EXIT_CONFIG = 78 };

/* Start-up errors: one line on stderr; returns status for main() to exit with. */
static int die_with(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int die_with(int status, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "zhidad: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}
#define die(...) die_with(EXIT_FAILURE, __VA_ARGS__)

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"redis", required_argument, NULL, 'r'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"check-config", no_argument, NULL, 't'},
        {"print-routes", no_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    bool check_only = false, print_routes = false;
    const char *config_path = NULL, *listen = NULL, *redis = NULL, *log_level = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hVt", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'l':
            listen = optarg;
            break;
        case 'r':
            redis = optarg;
            break;
        case 'L':
            log_level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("zhidad %s\n", ZD_VERSION);
            return 0;
        case 't':
            check_only = true;
            break;
        case 'P':
            print_routes = true;
            break;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return die_with(EXIT_USAGE, "unexpected argument \"%s\" (see --help)", argv[optind]);
    if (!config_path)
        return die_with(EXIT_USAGE, "%s", "no config given: zhidad -c zhida.json (see --help)");

    char err[512];
    zd_config *cfg = NULL;
    if (zd_config_load(config_path, &cfg, err, sizeof(err)) != 0)
        return die_with(EXIT_CONFIG, "%s: %s", config_path, err);
    int rc = EXIT_FAILURE;
    daemon_state d;
    memset(&d, 0, sizeof(d));
    zd_service *svc = &d.svc;
    svc->cfg = cfg;
    svc->version = ZD_VERSION;

    /* Command-line overrides get the same checks as the file. */
    if (listen) {
        if (strlen(listen) >= sizeof(cfg->listen) ||
            zd_config_check_listen(listen, err, sizeof(err)) != 0) {
            rc = die_with(EXIT_CONFIG, "--listen: %s", "must be IP:PORT, e.g. 127.0.0.1:8700");
            goto out;
        }
        snprintf(cfg->listen, sizeof(cfg->listen), "%s", listen);
    }
    if (redis) {
        if (strlen(redis) >= sizeof(cfg->redis) ||
            zd_config_check_redis_addr(redis, err, sizeof(err)) != 0) {
            rc = die_with(EXIT_CONFIG, "--redis: %s",
                          "must be IP:PORT or unix:/path, e.g. 127.0.0.1:6379");
            goto out;
        }
        snprintf(cfg->redis, sizeof(cfg->redis), "%s", redis);
    }
    if (log_level) {
        enum zd_log_level l;
        if (zd_log_level_parse(log_level, &l) != 0) {
            rc = die_with(EXIT_CONFIG, "--log-level: \"%s\" is not one of debug, info, warn, error",
                          log_level);
            goto out;
        }
        snprintf(cfg->log_level, sizeof(cfg->log_level), "%s", log_level);
    }
    if (check_only) {
        /* Like `nginx -t`: everything a start would check before touching the network. */
        printf("zhidad: the configuration file %s is valid (%d API keys, %d partitions, Redis "
               "%s)\n",
               config_path, cfg->nkeys, cfg->partitions, cfg->redis);
        rc = 0;
        goto out;
    }
    enum zd_log_level level = ZD_LOG_INFO;
    zd_log_level_parse(cfg->log_level, &level);
    zd_log_set_level(level);
    enum zd_log_format format = ZD_LOG_TEXT;
    zd_log_format_parse(cfg->log_format, &format);
    zd_log_set_format(format);

    /* Test-only fault injection (common/fault.h): read once, here. */
    const char *fault = getenv("ZHIDA_FAULT");
    if (fault && *fault) {
        int fe = zd_fault_init(fault, err, sizeof(err));
        if (fe == -ENOTSUP) {
            zd_warn("ZHIDA_FAULT is set but ignored: %s", err);
        } else if (fe != 0) {
            rc = die_with(EXIT_CONFIG, "%s", err);
            goto out;
        } else {
            zd_warn("ZHIDA_FAULT=%s: test-only fault injection is armed; never in production",
                    fault);
        }
    }

    /* A client gone mid-reply must cost an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);

    svc->base = event_base_new();
    /* Three priorities: every event gets the middle one, background timers (import slices)
     * the last, so they run only in loop turns with nothing else to do (redis/timer.h). */
    if (!svc->base || event_base_priority_init(svc->base, 3) != 0) {
        rc = die("%s", "cannot create the event loop");
        goto out;
    }
    zd_redis_opts ro = zd_config_redis_opts(cfg, "main");
    /* --print-routes needs the routes only: no connection to Redis. */
    svc->stop_loop = stop_loop;
    svc->redis = print_routes ? NULL : zd_redis_new(svc->base, &ro);
    svc->http = zd_http_new(svc->base, cfg);
    if ((!svc->redis && !print_routes) || !svc->http) {
        rc = die("%s", "out of memory");
        goto out;
    }
    int e;
    if (zd_http_route(svc->http, "GET", "/healthz", 0, healthz, svc) != 0 ||
        zd_http_route(svc->http, "GET", "/readyz", 0, readyz, svc) != 0) {
        rc = die("%s", "cannot register /healthz, /readyz");
        goto out;
    }
    if ((e = zd_api_register(svc)) != 0) {
        rc = die("cannot register the API routes: %s", zd_strerror(e));
        goto out;
    }
    if (print_routes) {
        zd_http_routes(svc->http, print_route, NULL);
        rc = fflush(stdout) == 0 ? 0 : EXIT_FAILURE;
        goto out;
    }
    if ((e = zd_http_listen(svc->http, cfg->listen)) != 0) {
        snprintf(err, sizeof(err), "cannot listen on %s: %s", cfg->listen, zd_strerror(e));
        rc = die("%s", err);
        goto out;
    }
    if ((e = zd_service_start(svc)) != 0) {
        rc = die("cannot start the service: %s", zd_strerror(e));
        goto out;
    }

    d.sigterm_ev = evsignal_new(svc->base, SIGTERM, signal_cb, &d);
    d.sigint_ev = evsignal_new(svc->base, SIGINT, signal_cb, &d);
    d.sighup_ev = evsignal_new(svc->base, SIGHUP, reload_cb, &d);
    d.drain_ev = evtimer_new(svc->base, drain_cb, &d);
    d.flush_ev = evtimer_new(svc->base, flush_cb, &d);
    d.config_path = config_path;
    if (!d.sigterm_ev || !d.sigint_ev || !d.sighup_ev || !d.drain_ev || !d.flush_ev ||
        event_add(d.sigterm_ev, NULL) != 0 || event_add(d.sigint_ev, NULL) != 0 ||
        event_add(d.sighup_ev, NULL) != 0) {
        rc = die("%s", "cannot install the signal handlers");
        goto out;
    }
    zd_info("zhidad %s listening on %s (port %d), Redis %s, %d partitions", ZD_VERSION, cfg->listen,
            zd_http_port(svc->http), cfg->redis, cfg->partitions);

    event_base_dispatch(svc->base);
    rc = svc->exit_status;
    zd_info("stopped");

out:
    /* Order matters: the service's parts use the Redis client; freeing the client answers
     * every command still pending with -ECANCELED, whose handlers reply 503; a short
     * non-blocking loop then gets those replies onto the wire before the connections close. */
    zd_service_stop(svc);
    zd_redis_free(svc->redis);
    if (svc->base && svc->http && zd_http_connections(svc->http) > 0)
        event_base_loop(svc->base, EVLOOP_NONBLOCK);
    zd_http_free(svc->http);
    if (d.sigterm_ev)
        event_free(d.sigterm_ev);
    if (d.sigint_ev)
        event_free(d.sigint_ev);
    if (d.sighup_ev)
        event_free(d.sighup_ev);
    if (d.drain_ev)
        event_free(d.drain_ev);
    if (d.flush_ev)
        event_free(d.flush_ev);
    if (svc->base)
        event_base_free(svc->base);
    zd_config_free(cfg);
    return rc;
}
