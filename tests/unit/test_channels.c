/* The pure parts of the sms_http and smtp gateways: body templates and their escaping, the
 * provider answer mapping, e-mail address shapes, and the MIME message. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gateway/sms_http.h"
#include "gateway/smtp.h"

static const zd_notice notice = {
    .id = "p1:e7:sms",
    .policy = "p1",
    .profile = "e7",
    .gateway = "sms",
    .to = "13800000001",
    .title = "补贴",
    .body = "a \"b\"\n& c/d",
    .url = "https://x/?q=1",
    .category = "c",
};

static void test_templates(void)
{
    zd_sms_http_opts o;
    char err[256] = "";
    CHECK_INT(zd_sms_http_opts_parse("{\"url\": \"http://h/s\", \"body\": \"{\\\"m\\\": "
                                     "\\\"{{to}}\\\", \\\"t\\\": \\\"{{body}}\\\", \\\"i\\\": "
                                     "\\\"{{id}}\\\"}\"}",
                                     "gateways.sms.", &o, err, sizeof(err)),
              0);
    size_t len = 0;
    char *b = zd_sms_http_render(&o, &notice, &len);
    CHECK_STR(b, "{\"m\": \"13800000001\", \"t\": \"a \\\"b\\\"\\n& c/d\", \"i\": \"p1:e7:sms\"}");
    CHECK_INT((long)len, (long)strlen(b));
    free(b);
    zd_sms_http_opts_free(&o);

    CHECK_INT(zd_sms_http_opts_parse("{\"url\": \"http://h/s\", \"format\": \"form\", \"body\": "
                                     "\"to={{to}}&msg={{body}}&t={{title}}\"}",
                                     "gateways.sms.", &o, err, sizeof(err)),
              0);
    b = zd_sms_http_render(&o, &notice, &len);
    CHECK_STR(b, "to=13800000001&msg=a+%22b%22%0A%26+c%2Fd&t=%E8%A1%A5%E8%B4%B4");
    free(b);
    zd_sms_http_opts_free(&o);

    CHECK_INT(zd_sms_http_opts_parse("{\"url\": \"http://h/s\", \"format\": \"form\", \"body\": "
                                     "\"to={{to}}&x={{phone}}\"}",
                                     "gateways.sms.", &o, err, sizeof(err)),
              -EINVAL);
    CHECK(strstr(err, "\"gateways.sms.body\": unknown placeholder \"{{phone}}\" at byte 12"));
    CHECK_INT(zd_sms_http_opts_parse("{\"url\": \"http://h/s\", \"body\": \"{\\\"m\\\": {{to}}}\"}",
                                     "gateways.sms.", &o, err, sizeof(err)),
              -EINVAL);
    CHECK(strstr(err, "\"gateways.sms.body\" is not JSON"));
    CHECK_INT(zd_sms_http_opts_parse("{\"url\": \"http://h/s\", \"format\": \"form\", \"body\": "
                                     "\"x\", \"auth_header\": \"Bearer s3cr3t\"}",
                                     "gateways.sms.", &o, err, sizeof(err)),
              -EINVAL);
    CHECK(strstr(err, "gateways.sms.auth_header") && !strstr(err, "s3cr3t"));
}

static void test_answers(void)
{
    zd_sms_http_opts o;
    char err[256] = "";
    CHECK_INT(zd_sms_http_opts_parse("{\"url\": \"http://h/s\", \"format\": \"form\", \"body\": "
                                     "\"x\", \"answer\": {\"field\": \"result.code\", "
                                     "\"delivered\": [\"OK\", 0], \"permanent\": [4001]}}",
                                     "gateways.sms.", &o, err, sizeof(err)),
              0);
    zd_gw_result r;
#define ANSWER(status, text) zd_sms_http_classify(&o, 0, status, NULL, text, strlen(text), 0, &r)
    ANSWER(200, "{\"result\": {\"code\": \"OK\"}}");
    CHECK_INT(r.outcome, ZD_GW_DELIVERED);
    ANSWER(200, "{\"result\": {\"code\": 0}}");
    CHECK_INT(r.outcome, ZD_GW_DELIVERED);
    ANSWER(200, "{\"result\": {\"code\": 4001}}");
    CHECK_INT(r.outcome, ZD_GW_PERMANENT);
    ANSWER(200, "{\"result\": {\"code\": 17}}");
    CHECK_INT(r.outcome, ZD_GW_TRANSIENT);
    ANSWER(200, "not json");
    CHECK_INT(r.outcome, ZD_GW_TRANSIENT);
    ANSWER(503, "{\"result\": {\"code\": \"OK\"}}");
    CHECK_INT(r.outcome, ZD_GW_TRANSIENT);
    ANSWER(404, "{}");
    CHECK_INT(r.outcome, ZD_GW_PERMANENT);
#undef ANSWER
    zd_sms_http_opts_free(&o);
}

static void test_addresses(void)
{
    CHECK(zd_smtp_address_ok("alice@example.cn"));
    CHECK(zd_smtp_address_ok("a.b+tag@mail.example.gov.cn"));
    CHECK(!zd_smtp_address_ok("alice@localhost"));
    CHECK(!zd_smtp_address_ok("not an address"));
    CHECK(!zd_smtp_address_ok("a..b@example.cn"));
    CHECK(!zd_smtp_address_ok("a@b@example.cn"));
    CHECK(!zd_smtp_address_ok("a@example.cn>\r\nRCPT TO:<x@y.cn"));
    CHECK(!zd_smtp_address_ok("a@-x.cn"));
    CHECK(!zd_smtp_address_ok("张三@example.cn"));
}

static void test_message(void)
{
    zd_smtp_opts o;
    char err[256] = "";
    CHECK_INT(zd_smtp_opts_parse("{\"url\": \"smtp://127.0.0.1:25\", \"from\": \"n@example.cn\"}",
                                 "gateways.email.", &o, err, sizeof(err)),
              0);
    zd_notice n = notice;
    n.to = "alice@example.cn";
    size_t len;
    char *m = zd_smtp_message(&o, &n, 1780000000000LL, &len);
    CHECK(m != NULL);
    if (m) {
        CHECK(strstr(m, "Date: Thu, 28 May 2026 20:26:40 +0000\r\n") != NULL);
        CHECK(strstr(m, "To: <alice@example.cn>\r\n") != NULL);
        /* "补贴" in UTF-8, base64. */
        CHECK(strstr(m, "Subject: =?UTF-8?B?6KGl6LS0?=\r\n") != NULL);
        CHECK(strstr(m, "Message-ID: <p1=3Ae7=3Asms@example.cn>\r\n") != NULL);
        CHECK(strstr(m, "Content-Type: text/plain; charset=UTF-8") != NULL);
        CHECK(strstr(m, "Content-Type: text/html; charset=UTF-8") != NULL);
        CHECK((long)strlen(m) == (long)len);
    }
    free(m);
    zd_smtp_opts_free(&o);
    CHECK_INT(zd_smtp_opts_parse("{\"url\": \"smtp://127.0.0.1\", \"from\": \"n@example.cn\", "
                                 "\"password\": \"hunter2\"}",
                                 "gateways.email.", &o, err, sizeof(err)),
              -EINVAL);
    CHECK(strstr(err, "go together") && !strstr(err, "hunter2"));
}

int main(void)
{
    test_templates();
    test_answers();
    test_addresses();
    test_message();
    return check_report("channels");
}
