/* Prometheus text exposition and histograms (see metrics.h). */
#include "common/metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

void zd_hist_observe(zd_hist *h, const zd_hist_bounds *b, double v)
{
    int i = 0;
    while (i < b->n && v > b->le[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

static void put(zd_metrics *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(zd_metrics *m, const char *fmt, ...)
{
    if (m->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(m->s ? m->s + m->len : NULL, m->s ? m->cap - m->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            m->failed = true;
            return;
        }
        if (m->s && m->len + (size_t)n < m->cap) {
            m->len += (size_t)n;
            return;
        }
        size_t cap = (m->cap ? m->cap * 2 : 8192) + (size_t)n;
        char *s = realloc(m->s, cap);
        if (!s) {
            m->failed = true;
            return;
        }
        m->s = s;
        m->cap = cap;
    }
}

/* HELP text escapes \ and line feeds; label values also ". */
static void put_escaped(zd_metrics *m, const char *s, bool quote)
{
    const char *run = s;
    for (; *s; s++) {
        if (*s != '\\' && *s != '\n' && !(quote && *s == '"'))
            continue;
        put(m, "%.*s\\%c", (int)(s - run), run, *s == '\n' ? 'n' : *s);
        run = s + 1;
    }
    put(m, "%s", run);
}

/* name{labels[,extra_name="extra_value"]} — the braces only when there is a label. */
static void put_series(zd_metrics *m, const char *suffix, const char *const *labels,
                       const char *extra_name, const char *extra_value)
{
    put(m, "%s%s", m->family, suffix);
    bool any = false;
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        put(m, "%s%s=\"", any ? "," : "{", labels[i]);
        put_escaped(m, labels[i + 1], true);
        put(m, "\"");
        any = true;
    }
    if (extra_name) {
        put(m, "%s%s=\"%s\"", any ? "," : "{", extra_name, extra_value);
        any = true;
    }
    put(m, "%s", any ? "} " : " ");
}

static void put_double(zd_metrics *m, double v)
{
    /* 15 significant digits: exact for what we print (a Unix time with centiseconds, sums
     * of seconds) without the noise of 17. */
    if (isnan(v))
        put(m, "NaN");
    else if (isinf(v))
        put(m, "%sInf", v > 0 ? "+" : "-");
    else
        put(m, "%.15g", v);
}

void zd_metrics_family(zd_metrics *m, const char *name, const char *type, const char *help)
{
    snprintf(m->family, sizeof(m->family), "%s", name);
    snprintf(m->type, sizeof(m->type), "%s", type);
    put(m, "# HELP %s ", name);
    put_escaped(m, help, false);
    put(m, "\n# TYPE %s %s\n", name, type);
}

void zd_metrics_int(zd_metrics *m, const char *const *labels, long long v)
{
    put_series(m, "", labels, NULL, NULL);
    put(m, "%lld\n", v);
}

void zd_metrics_value(zd_metrics *m, const char *const *labels, double v)
{
    put_series(m, "", labels, NULL, NULL);
    put_double(m, v);
    put(m, "\n");
}

void zd_metrics_hist(zd_metrics *m, const char *const *labels, const zd_hist *h,
                     const zd_hist_bounds *b)
{
    uint64_t cum = 0;
    char le[32];
    for (int i = 0; i < b->n; i++) {
        cum += h->counts[i];
        snprintf(le, sizeof(le), "%g", b->le[i]);
        put_series(m, "_bucket", labels, "le", le);
        put(m, "%llu\n", (unsigned long long)cum);
    }
    put_series(m, "_bucket", labels, "le", "+Inf");
    put(m, "%llu\n", (unsigned long long)h->count);
    put_series(m, "_sum", labels, NULL, NULL);
    put_double(m, h->sum);
    put(m, "\n");
    put_series(m, "_count", labels, NULL, NULL);
    put(m, "%llu\n", (unsigned long long)h->count);
}

/* ---- process_* from /proc/self ---- */

/* Reads a small /proc file into buf (NUL-terminated). 0 or -1. */
static int read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0 ? 0 : -1;
}

/* The boot time (Unix seconds) from /proc/stat's btime line, or -1. */
static long long boot_time(void)
{
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return -1;
    char line[256];
    long long bt = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %lld", &bt) == 1)
            break;
    fclose(f);
    return bt;
}

/* The process start time in Unix seconds, from field 22 of /proc/self/stat (clock ticks after
 * boot), or -1. The command name (field 2) may hold spaces and parentheses: parse after the
 * last ')'. */
static double start_time(void)
{
    char buf[1024];
    if (read_small("/proc/self/stat", buf, sizeof(buf)) != 0)
        return -1;
    const char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ticks = 0;
    /* After ')': field 3 (state) ... field 22 (starttime): skip 19 fields. */
    int field = 2;
    for (const char *s = p + 1; *s; s++) {
        if (*s != ' ')
            continue;
        if (++field == 22) {
            ticks = strtoull(s + 1, NULL, 10);
            break;
        }
    }
    long hz = sysconf(_SC_CLK_TCK);
    long long bt = boot_time();
    if (field != 22 || hz <= 0 || bt < 0)
        return -1;
    return (double)bt + (double)ticks / (double)hz;
}

static long long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor, open only while counting */
}

void zd_metrics_process(zd_metrics *m)
{
    struct rusage ru;
    zd_metrics_family(m, "process_cpu_seconds_total", "counter",
                      "Total user and system CPU time spent in seconds.");
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        zd_metrics_value(m, NULL,
                         (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                             (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);

    /* statm: total program size and resident set, in pages. */
    char buf[256];
    unsigned long long size = 0, resident = 0;
    bool statm = read_small("/proc/self/statm", buf, sizeof(buf)) == 0 &&
                 sscanf(buf, "%llu %llu", &size, &resident) == 2;
    long page = sysconf(_SC_PAGESIZE);
    zd_metrics_family(m, "process_resident_memory_bytes", "gauge",
                      "Resident memory size in bytes.");
    if (statm && page > 0)
        zd_metrics_int(m, NULL, (long long)(resident * (unsigned long long)page));
    zd_metrics_family(m, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    if (statm && page > 0)
        zd_metrics_int(m, NULL, (long long)(size * (unsigned long long)page));

    long long fds = open_fds();
    zd_metrics_family(m, "process_open_fds", "gauge", "Number of open file descriptors.");
    if (fds >= 0)
        zd_metrics_int(m, NULL, fds);
    struct rlimit rl;
    zd_metrics_family(m, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        zd_metrics_value(m, NULL, rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);

    double st = start_time();
    zd_metrics_family(m, "process_start_time_seconds", "gauge",
                      "Start time of the process since unix epoch in seconds.");
    if (st >= 0)
        zd_metrics_value(m, NULL, st);
}

void zd_metrics_free(zd_metrics *m)
{
    if (!m)
        return;
    free(m->s);
    m->s = NULL;
    m->len = m->cap = 0;
    m->failed = false;
}
