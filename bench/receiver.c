/* zd_bench_receiver: the webhook receiver of the dispatch benchmark (bench/dispatch.sh). It
 * answers every POST with 200 {} and counts the notices in it, so that zhida, the BullMQ peer
 * and wrk are measured against the same receiver, and the run knows how many notices really
 * arrived and when the first and the last one did.
 *
 *   zd_bench_receiver [--port 0] [--procs 2]
 *
 * --procs worker processes share the port through SO_REUSEPORT (the kernel spreads the
 * connections over them), each with its own libevent loop. HTTP/1.1 keep-alive with
 * pipelining, bodies by Content-Length (what libcurl, Node's http and wrk send), is read by
 * hand: with evhttp the receiver spent 22 us of CPU per one-notice request, twice nginx's
 * 11.5 us, and on two cores the receiver's CPU is taken from the senders. Once they listen it
 * prints "port N" on stdout. GET /stats answers the sums over every worker:
 *   {"requests":..,"notices":..,"bytes":..,"first_ns":..,"last_ns":..,"cpu_s":..,"procs":..}
 * (first_ns/last_ns: CLOCK_REALTIME of the first and the latest request with notices since the
 * last reset; cpu_s: user + system CPU of the workers since they started). GET /reset zeroes
 * the counters; call it only while nothing is being sent. SIGTERM stops every worker.
 *
 * A notice is counted per "attempt" key: every notice object of SPEC §5 has exactly one, and
 * the key's quote cannot occur unescaped inside a JSON string, so a substring search is exact
 * for the bodies zhida and the peer send, without parsing 50 MB/s of JSON. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <event2/event.h>

#define PROCS_MAX 16

/* One worker's counters, on a cache line of its own: only that worker writes them (reset
 * aside), any worker sums them for /stats. */
typedef struct slot {
    uint64_t requests, notices, bytes, first_ns, last_ns;
    int pid, ready;
    char pad[64 - 5 * sizeof(uint64_t) - 2 * sizeof(int)];
} slot;

static slot *slots; /* PROCS_MAX slots in a MAP_SHARED mapping made before fork() */
static int nprocs = 2;
static int self;
static struct event_base *base;
static const char key[] = "\"attempt\":";

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t count_notices(const char *p, size_t n)
{
    uint64_t c = 0;
    const char *end = p + n;
    while (p < end) {
        const char *q = memmem(p, (size_t)(end - p), key, sizeof(key) - 1);
        if (!q)
            break;
        c++;
        p = q + sizeof(key) - 1;
    }
    return c;
}

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* user + system seconds of one process, from /proc/PID/stat (fields 14 and 15). */
static double cpu_seconds(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces: the fields start after its closing parenthesis. */
    const char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* One keep-alive connection: what was read and not yet answered, and the answers not yet
 * written (pipelined requests are answered in order, in one write). */
typedef struct conn {
    int fd;
    struct event *ev;
    char *in;
    size_t len, cap, scanned; /* scanned: bytes of in already searched for the header end */
    char *out;
    size_t olen, ocap;
} conn;

static void conn_close(conn *c)
{
    event_free(c->ev);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static int out_add(conn *c, const char *p, size_t n)
{
    if (c->olen + n > c->ocap) {
        size_t cap = c->ocap ? c->ocap * 2 : 1024;
        while (cap < c->olen + n)
            cap *= 2;
        char *o = realloc(c->out, cap);
        if (!o)
            return -ENOMEM;
        c->out = o;
        c->ocap = cap;
    }
    memcpy(c->out + c->olen, p, n);
    c->olen += n;
    return 0;
}

static int answer(conn *c, int status, const char *json)
{
    char head[160];
    size_t n = strlen(json);
    int h =
        snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                 status, status == 200 ? "OK" : "Bad Request", n);
    return out_add(c, head, (size_t)h) || out_add(c, json, n) ? -ENOMEM : 0;
}

static void stats_json(char *text, size_t size)
{
    uint64_t r = 0, n = 0, b = 0, first = 0, last = 0;
    double cpu = 0;
    for (int i = 0; i < nprocs; i++) {
        r += LOAD(slots[i].requests);
        n += LOAD(slots[i].notices);
        b += LOAD(slots[i].bytes);
        uint64_t f = LOAD(slots[i].first_ns), l = LOAD(slots[i].last_ns);
        if (f && (!first || f < first))
            first = f;
        if (l > last)
            last = l;
        cpu += cpu_seconds(LOAD(slots[i].pid));
    }
    snprintf(text, size,
             "{\"requests\":%" PRIu64 ",\"notices\":%" PRIu64 ",\"bytes\":%" PRIu64
             ",\"first_ns\":%" PRIu64 ",\"last_ns\":%" PRIu64 ",\"cpu_s\":%.3f,\"procs\":%d}",
             r, n, b, first, last, cpu, nprocs);
}

static void on_post(const char *body, size_t len)
{
    slot *s = &slots[self];
    uint64_t c = count_notices(body, len);
    STORE(s->requests, s->requests + 1);
    STORE(s->bytes, s->bytes + len);
    if (c) {
        uint64_t now = realtime_ns();
        STORE(s->notices, s->notices + c);
        if (!s->first_ns)
            STORE(s->first_ns, now);
        STORE(s->last_ns, now);
    }
}

static void on_get(conn *c, const char *path, size_t plen)
{
    char text[320];
    if (plen == 6 && memcmp(path, "/stats", 6) == 0) {
        stats_json(text, sizeof(text));
    } else {
        if (plen == 6 && memcmp(path, "/reset", 6) == 0) {
            for (int i = 0; i < nprocs; i++) {
                STORE(slots[i].requests, 0);
                STORE(slots[i].notices, 0);
                STORE(slots[i].bytes, 0);
                STORE(slots[i].first_ns, 0);
                STORE(slots[i].last_ns, 0);
            }
        }
        strcpy(text, "{}");
    }
    answer(c, 200, text);
}

/* The value of header name (lower case, with the colon) in head[0..n), or NULL. */
static const char *header(const char *head, size_t n, const char *name, size_t *vlen)
{
    size_t k = strlen(name);
    const char *end = head + n;
    for (const char *p = memchr(head, '\n', n); p && p + 1 + k < end;
         p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
        if (strncasecmp(p + 1, name, k) != 0)
            continue;
        const char *v = p + 1 + k;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        const char *e = memchr(v, '\r', (size_t)(end - v));
        *vlen = (size_t)((e ? e : end) - v);
        return v;
    }
    return NULL;
}

/* Answers every complete request in c->in. Returns 0, or -1 when the connection must close
 * (a request it cannot read: chunked bodies, no Content-Length, oversized headers). */
static int handle(conn *c)
{
    size_t off = 0;
    for (;;) {
        char *p = c->in + off;
        size_t avail = c->len - off;
        size_t from = c->scanned > off ? c->scanned - off : 0;
        from = from > 3 ? from - 3 : 0;
        char *hend = from < avail ? memmem(p + from, avail - from, "\r\n\r\n", 4) : NULL;
        if (!hend) {
            c->scanned = c->len;
            if (avail > 64 * 1024)
                return -1;
            break;
        }
        size_t hlen = (size_t)(hend - p) + 4, vlen = 0, clen = 0;
        const char *v = header(p, hlen, "content-length:", &vlen);
        if (v)
            clen = strtoul(v, NULL, 10);
        else if (header(p, hlen, "transfer-encoding:", &vlen))
            return -1;
        if (avail < hlen + clen) {
            /* Ask for the body once, when the headers alone have arrived. */
            const char *x = header(p, hlen, "expect:", &vlen);
            if (x && avail == hlen && vlen >= 12 && strncasecmp(x, "100-continue", 12) == 0)
                out_add(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
            /* The next search finds this header end again at once. */
            c->scanned = off + hlen - 1;
            break;
        }
        if (avail >= 5 && memcmp(p, "POST ", 5) == 0) {
            on_post(p + hlen, clen);
            answer(c, 200, "{}");
        } else {
            const char *path = memchr(p, ' ', hlen);
            const char *pend = path ? memchr(path + 1, ' ', hlen - (size_t)(path + 1 - p)) : NULL;
            if (pend)
                on_get(c, path + 1, (size_t)(pend - path - 1));
            else
                answer(c, 400, "{\"error\":\"bad request line\"}");
        }
        off += hlen + clen;
        c->scanned = off;
    }
    if (off) {
        memmove(c->in, c->in + off, c->len - off);
        c->len -= off;
        c->scanned -= off;
    }
    return 0;
}

static void on_conn(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    if (what & EV_READ) {
        for (;;) {
            if (c->cap - c->len < 16384) {
                size_t cap = c->cap ? c->cap * 2 : 65536;
                char *in = realloc(c->in, cap);
                if (!in)
                    goto close;
                c->in = in;
                c->cap = cap;
            }
            size_t room = c->cap - c->len;
            ssize_t n = read(fd, c->in + c->len, room);
            if (n > 0) {
                c->len += (size_t)n;
                if ((size_t)n < room)
                    break; /* a short read: the socket is drained */
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR))
                goto close;
            break;
        }
        if (handle(c))
            goto close;
    }
    while (c->olen) {
        ssize_t n = write(fd, c->out, c->olen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0)
            goto close;
        memmove(c->out, c->out + n, c->olen - (size_t)n);
        c->olen -= (size_t)n;
    }
    /* Wait for writability only while answers are pending. */
    short want = EV_READ | EV_PERSIST | (c->olen ? EV_WRITE : 0);
    if (want != event_get_events(c->ev)) {
        event_del(c->ev);
        event_assign(c->ev, base, fd, want, on_conn, c);
        event_add(c->ev, NULL);
    }
    return;
close:
    conn_close(c);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    (void)what, (void)arg;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_conn, c);
        if (!c->ev || event_add(c->ev, NULL)) {
            close(fd);
            free(c);
        }
    }
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
        bind(fd, (struct sockaddr *)&a, sizeof(a))) {
        perror("receiver: bind");
        exit(1);
    }
    return fd;
}

static void on_term(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    event_base_loopbreak(base);
}

static int worker(int fd)
{
    base = event_base_new();
    struct event *lev = base ? event_new(base, fd, EV_READ | EV_PERSIST, on_accept, NULL) : NULL;
    if (!lev || listen(fd, 4096) || event_add(lev, NULL)) {
        fprintf(stderr, "receiver: worker %d could not start\n", self);
        return 1;
    }
    struct event *term = evsignal_new(base, SIGTERM, on_term, NULL);
    event_add(term, NULL);
    STORE(slots[self].ready, 1);
    event_base_dispatch(base);
    /* Connections still open are left to the process exit. */
    event_free(term);
    event_free(lev);
    return 0;
}

int main(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--procs") == 0 && i + 1 < argc)
            nprocs = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: zd_bench_receiver [--port 0] [--procs 2]\n");
            return 2;
        }
    }
    if (nprocs < 1 || nprocs > PROCS_MAX) {
        fprintf(stderr, "receiver: --procs must be 1..%d\n", PROCS_MAX);
        return 2;
    }
    slots = mmap(NULL, sizeof(slot) * PROCS_MAX, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
    if (slots == MAP_FAILED) {
        perror("receiver: mmap");
        return 1;
    }
    /* The parent's socket, bound but never listening, reserves the port (also a kernel-chosen
     * one) for the workers' SO_REUSEPORT group without receiving connections itself. */
    int reserve = listen_on(port);
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    getsockname(reserve, (struct sockaddr *)&a, &alen);
    port = ntohs(a.sin_port);

    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, &old);
    for (int i = 0; i < nprocs; i++) {
        int fd = listen_on(port);
        pid_t pid = fork();
        if (pid < 0) {
            perror("receiver: fork");
            return 1;
        }
        if (pid == 0) {
            self = i;
            close(reserve);
            slots[i].pid = getpid();
            signal(SIGINT, SIG_IGN);
            sigprocmask(SIG_SETMASK, &old, NULL);
            return worker(fd);
        }
        slots[i].pid = pid;
        close(fd);
    }
    /* "port" means every worker listens: with fewer, the kernel would spread the first
     * connections over fewer workers. */
    for (int i = 0, tries = 0; i < nprocs && tries < 1000; tries++) {
        if (LOAD(slots[i].ready))
            i++;
        else
            usleep(5000);
    }
    printf("port %d\n", port);
    fflush(stdout);

    int sig;
    sigwait(&set, &sig);
    for (int i = 0; i < nprocs; i++)
        kill(slots[i].pid, SIGTERM);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    return 0;
}
