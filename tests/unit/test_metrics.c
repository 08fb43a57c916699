/* Unit tests of common/metrics: the exposition text of families, samples, escaped label
 * values and histograms, and the process_* families. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "common/metrics.h"

static void test_family_and_escaping(void)
{
    zd_metrics m = {0};
    zd_metrics_family(&m, "t_requests_total", "counter", "Requests\nby \\route.");
    zd_metrics_int(&m, NULL, 7);
    zd_metrics_int(&m, (const char *[]){"route", "/a/{id}", "q", "say \"hi\"\\\n", NULL}, 3);
    zd_metrics_family(&m, "t_ratio", "gauge", "A ratio.");
    zd_metrics_value(&m, NULL, 0.25);
    zd_metrics_value(&m, (const char *[]){"k", "inf", NULL}, INFINITY);
    zd_metrics_value(&m, (const char *[]){"k", "nan", NULL}, NAN);
    CHECK(!m.failed);
    CHECK_STR(m.s, "# HELP t_requests_total Requests\\nby \\\\route.\n"
                   "# TYPE t_requests_total counter\n"
                   "t_requests_total 7\n"
                   "t_requests_total{route=\"/a/{id}\",q=\"say \\\"hi\\\"\\\\\\n\"} 3\n"
                   "# HELP t_ratio A ratio.\n"
                   "# TYPE t_ratio gauge\n"
                   "t_ratio 0.25\n"
                   "t_ratio{k=\"inf\"} +Inf\n"
                   "t_ratio{k=\"nan\"} NaN\n");
    zd_metrics_free(&m);
    CHECK(m.s == NULL && m.len == 0);
    zd_metrics_free(NULL);
}

static void test_histogram(void)
{
    static const double le[] = {0.1, 1, 10};
    const zd_hist_bounds b = {le, 3};
    zd_hist h = {{0}, 0, 0};
    double obs[] = {0.05, 0.1, 0.5, 3, 42, 42};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        zd_hist_observe(&h, &b, obs[i]);
    zd_metrics m = {0};
    zd_metrics_family(&m, "t_seconds", "histogram", "Latency.");
    zd_metrics_hist(&m, (const char *[]){"route", "/x", NULL}, &h, &b);
    CHECK_STR(m.s, "# HELP t_seconds Latency.\n"
                   "# TYPE t_seconds histogram\n"
                   "t_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"
                   "t_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"
                   "t_seconds_bucket{route=\"/x\",le=\"10\"} 4\n"
                   "t_seconds_bucket{route=\"/x\",le=\"+Inf\"} 6\n"
                   "t_seconds_sum{route=\"/x\"} 87.65\n"
                   "t_seconds_count{route=\"/x\"} 6\n");
    zd_metrics_free(&m);
}

static void test_process(void)
{
    zd_metrics m = {0};
    zd_metrics_process(&m);
    CHECK(!m.failed && m.s != NULL);
    static const char *const names[] = {"process_cpu_seconds_total",
                                        "process_resident_memory_bytes",
                                        "process_virtual_memory_bytes",
                                        "process_open_fds",
                                        "process_max_fds",
                                        "process_start_time_seconds"};
    for (size_t i = 0; m.s && i < sizeof(names) / sizeof(names[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "\n%s ", names[i]);
        CHECK(strstr(m.s, line) != NULL);
    }
    zd_metrics_free(&m);
}

int main(void)
{
    test_family_and_escaping();
    test_histogram();
    test_process();
    return check_report("metrics");
}
