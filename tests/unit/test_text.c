/* Unit tests of common/text.c's SMS counting: characters, encoding, segments at the limits. */
#include "common/text.h"

#include "check.h"

#include <errno.h>
#include <string.h>

/* Counts the NUL-terminated s; returns the struct (chars = 999 when the call failed). */
static struct zd_sms_count count(const char *s)
{
    struct zd_sms_count c = {.chars = 999};
    if (zd_sms_count(s, strlen(s), &c) != 0)
        c.chars = 999;
    return c;
}

/* Builds n copies of the UTF-8 unit u into buf (NUL-terminated). */
static char *rep(char *buf, const char *u, int n)
{
    buf[0] = '\0';
    for (int i = 0; i < n; i++)
        strcat(buf, u);
    return buf;
}

static void test_gsm7(void)
{
    char buf[4096], tmp[4096];
    struct zd_sms_count c = count("");
    CHECK_INT(c.chars, 0);
    CHECK(!c.ucs2);
    CHECK_INT(c.segments, 1);

    c = count("Hello @ £5, é Ñ Δ!\n");
    CHECK_INT(c.chars, 19);
    CHECK(!c.ucs2);
    CHECK_INT(c.units, 19);
    CHECK_INT(c.segments, 1);

    c = count(rep(buf, "a", 160));
    CHECK_INT(c.segments, 1);
    c = count(rep(buf, "a", 161));
    CHECK_INT(c.segments, 2);
    c = count(rep(buf, "a", 306));
    CHECK_INT(c.segments, 2);
    c = count(rep(buf, "a", 307));
    CHECK_INT(c.segments, 3);

    /* Extension characters take two septets. */
    c = count("{€}");
    CHECK_INT(c.chars, 3);
    CHECK_INT(c.units, 6);
    CHECK(!c.ucs2);
    rep(buf, "a", 159);
    strcat(buf, "€");
    c = count(buf);
    CHECK_INT(c.chars, 160);
    CHECK_INT(c.units, 161);
    CHECK_INT(c.segments, 2);

    /* An escape pair is never split: 152 + 2 does not fit 153, so 306 septets need 3 parts. */
    rep(buf, "a", 152);
    strcat(buf, "[");
    strcat(buf, rep(tmp, "a", 152));
    c = count(buf);
    CHECK_INT(c.units, 306);
    CHECK_INT(c.segments, 3);
}

static void test_ucs2(void)
{
    char buf[4096];
    struct zd_sms_count c = count("你好");
    CHECK_INT(c.chars, 2);
    CHECK(c.ucs2);
    CHECK_INT(c.units, 2);
    CHECK_INT(c.segments, 1);

    /* One character outside GSM-7 turns the whole text into UCS-2. */
    c = count("caf\xc3\xaa `x`");
    CHECK(c.ucs2);
    c = count("a`b");
    CHECK(c.ucs2);
    CHECK_INT(c.chars, 3);

    c = count(rep(buf, "汉", 70));
    CHECK_INT(c.chars, 70);
    CHECK_INT(c.segments, 1);
    c = count(rep(buf, "汉", 71));
    CHECK_INT(c.segments, 2);
    c = count(rep(buf, "汉", 134));
    CHECK_INT(c.segments, 2);
    c = count(rep(buf, "汉", 135));
    CHECK_INT(c.segments, 3);

    /* A code point above U+FFFF is one character but two UTF-16 units, kept in one part. */
    c = count("😀");
    CHECK_INT(c.chars, 1);
    CHECK_INT(c.units, 2);
    rep(buf, "汉", 66);
    strcat(buf, "😀汉汉汉");
    c = count(buf);
    CHECK_INT(c.chars, 70);
    CHECK_INT(c.units, 71);
    CHECK_INT(c.segments, 2);
    rep(buf, "汉", 66);
    strcat(buf, "😀");
    strcat(buf, rep(buf + 2000, "汉", 66));
    c = count(buf);
    CHECK_INT(c.units, 134);
    /* 134 units would fill two parts of 67, but 66 + 2 does not fit: 66 | 😀 + 65 | 1. */
    CHECK_INT(c.segments, 3);

    /* Bad UTF-8 is refused. */
    struct zd_sms_count d = {0};
    CHECK_INT(zd_sms_count("\xff", 1, &d), -EINVAL);
    CHECK_INT(zd_sms_count("\xe6\xb1", 2, &d), -EINVAL);
}

int main(void)
{
    test_gsm7();
    test_ucs2();
    return check_report("text");
}
