/* 10-cidr.c - tests of address and CIDR parsing, resolving and formatting
 *
 * Tables of valid texts (each with the family, mask, has_mask and
 * formatted text it must give) and of invalid ones (each with the part of
 * the message that must say what is wrong), then ina_cidr_resolve(),
 * ina_cidr_host(), ina_cidr_format(), the internal cidr_mask() and
 * cidr_last(), and a differential test of the address grammar against the
 * C library's inet_pton() and inet_ntop().
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap/basic.h"
#include "inaudit.h"
#include "internal.h"

/* A text that must parse, and what it must give. */
struct valid {
    const char *text;
    int family;
    unsigned plen;
    int has_mask;
    const char *formatted;
};

static const struct valid valids[] = {
    /* IPv4 hosts. */
    {"0.0.0.0", 4, 32, 0, "0.0.0.0/32"},
    {"1.2.3.4", 4, 32, 0, "1.2.3.4/32"},
    {"255.255.255.255", 4, 32, 0, "255.255.255.255/32"},
    {"192.0.2.1", 4, 32, 0, "192.0.2.1/32"},
    {"10.0.0.10", 4, 32, 0, "10.0.0.10/32"},
    {"100.200.0.99", 4, 32, 0, "100.200.0.99/32"},
    /* IPv4 blocks, host bits cleared. */
    {"10.0.0.0/8", 4, 8, 1, "10.0.0.0/8"},
    {"10.1.2.3/8", 4, 8, 1, "10.0.0.0/8"},
    {"192.168.1.255/24", 4, 24, 1, "192.168.1.0/24"},
    {"192.168.1.255/23", 4, 23, 1, "192.168.0.0/23"},
    {"9.8.7.200/25", 4, 25, 1, "9.8.7.128/25"},
    {"9.8.7.127/25", 4, 25, 1, "9.8.7.0/25"},
    {"100.127.255.255/10", 4, 10, 1, "100.64.0.0/10"},
    {"255.255.255.255/31", 4, 31, 1, "255.255.255.254/31"},
    {"255.255.255.255/1", 4, 1, 1, "128.0.0.0/1"},
    {"127.255.255.255/1", 4, 1, 1, "0.0.0.0/1"},
    {"1.2.3.4/0", 4, 0, 1, "0.0.0.0/0"},
    {"0.0.0.0/0", 4, 0, 1, "0.0.0.0/0"},
    {"1.2.3.4/32", 4, 32, 1, "1.2.3.4/32"},
    {"172.31.255.255/12", 4, 12, 1, "172.16.0.0/12"},
    /* IPv6 hosts in every text form. */
    {"::", 6, 128, 0, "::/128"},
    {"::1", 6, 128, 0, "::1/128"},
    {"1::", 6, 128, 0, "1::/128"},
    {"ffff::", 6, 128, 0, "ffff::/128"},
    {"2001:db8::1", 6, 128, 0, "2001:db8::1/128"},
    {"2001:DB8::1", 6, 128, 0, "2001:db8::1/128"},
    {"2001:0db8:0000:0000:0000:0000:0000:0001", 6, 128, 0,
     "2001:db8::1/128"},
    {"0:0:0:0:0:0:0:0", 6, 128, 0, "::/128"},
    {"0:0:0:0:0:0:0:1", 6, 128, 0, "::1/128"},
    {"1:2:3:4:5:6:7:8", 6, 128, 0, "1:2:3:4:5:6:7:8/128"},
    {"FFFF:ffff:FFFF:ffff:ffff:ffff:ffff:FfFf", 6, 128, 0,
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"},
    /* RFC 5952: "::" never replaces a single zero group... */
    {"1:2:3:4:5:6:7::", 6, 128, 0, "1:2:3:4:5:6:7:0/128"},
    {"::2:3:4:5:6:7:8", 6, 128, 0, "0:2:3:4:5:6:7:8/128"},
    {"2001:db8:0:1:1:1:1:1", 6, 128, 0, "2001:db8:0:1:1:1:1:1/128"},
    /* ...replaces the longest run, and the first of equal runs. */
    {"2001:0:0:1:0:0:0:1", 6, 128, 0, "2001:0:0:1::1/128"},
    {"2001:db8:0:0:1:0:0:1", 6, 128, 0, "2001:db8::1:0:0:1/128"},
    {"1:0:0:2:0:0:3:4", 6, 128, 0, "1::2:0:0:3:4/128"},
    {"1:0:0:2::3", 6, 128, 0, "1:0:0:2::3/128"},
    {"0:0:1::", 6, 128, 0, "0:0:1::/128"},
    {"a:0:0:b:0:0:0:0", 6, 128, 0, "a:0:0:b::/128"},
    {"0001:0002::000a", 6, 128, 0, "1:2::a/128"},
    /* Embedded IPv4 that is not mapped stays IPv6. */
    {"::1.2.3.4", 6, 128, 0, "::102:304/128"},
    {"64:ff9b::192.0.2.33", 6, 128, 0, "64:ff9b::c000:221/128"},
    {"1:2:3:4:5:6:1.2.3.4", 6, 128, 0, "1:2:3:4:5:6:102:304/128"},
    {"1:2:3:4:5::1.2.3.4", 6, 128, 0, "1:2:3:4:5:0:102:304/128"},
    {"::ffff:0:1.2.3.4", 6, 128, 0, "::ffff:0:102:304/128"},
    {"::fffe:1.2.3.4", 6, 128, 0, "::fffe:102:304/128"},
    {"1::ffff:1.2.3.4", 6, 128, 0, "1::ffff:102:304/128"},
    /* IPv6 blocks. */
    {"::/0", 6, 0, 1, "::/0"},
    {"2001:db8::1/64", 6, 64, 1, "2001:db8::/64"},
    {"fe80::1:2/64", 6, 64, 1, "fe80::/64"},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/33", 6, 33, 1,
     "2001:db8:8000::/33"},
    {"2001:db8:abcd:12ff::/56", 6, 56, 1, "2001:db8:abcd:1200::/56"},
    {"2001:db8::/128", 6, 128, 1, "2001:db8::/128"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127", 6, 127, 1,
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/1", 6, 1, 1, "8000::/1"},
    {"1:2:3:4:5:6:1.2.3.4/112", 6, 112, 1, "1:2:3:4:5:6:102:0/112"},
    /* Brackets, mask outside or inside. */
    {"[2001:db8::1]", 6, 128, 0, "2001:db8::1/128"},
    {"[2001:db8::1]/64", 6, 64, 1, "2001:db8::/64"},
    {"[2001:db8::1/64]", 6, 64, 1, "2001:db8::/64"},
    {"[::]", 6, 128, 0, "::/128"},
    {"[::1]/128", 6, 128, 1, "::1/128"},
    {"[::1.2.3.4]", 6, 128, 0, "::102:304/128"},
    /* IPv4-mapped IPv6 is the IPv4 address, mask reduced by 96. */
    {"::ffff:1.2.3.4", 4, 32, 0, "1.2.3.4/32"},
    {"::FFFF:1.2.3.4", 4, 32, 0, "1.2.3.4/32"},
    {"::ffff:1.2.3.4/128", 4, 32, 1, "1.2.3.4/32"},
    {"::ffff:1.2.3.4/120", 4, 24, 1, "1.2.3.0/24"},
    {"::ffff:1.2.3.4/96", 4, 0, 1, "0.0.0.0/0"},
    {"::ffff:c000:0201", 4, 32, 0, "192.0.2.1/32"},
    {"0:0:0:0:0:ffff:192.0.2.1/127", 4, 31, 1, "192.0.2.0/31"},
    {"[::ffff:192.0.2.1]", 4, 32, 0, "192.0.2.1/32"},
    {"[::ffff:192.0.2.1]/112", 4, 16, 1, "192.0.0.0/16"},
    {"[::ffff:192.0.2.1/104]", 4, 8, 1, "192.0.0.0/8"},
    /* A bare mask. */
    {"/0", 0, 0, 1, "/0"},
    {"/8", 0, 8, 1, "/8"},
    {"/24", 0, 24, 1, "/24"},
    {"/32", 0, 32, 1, "/32"},
    {"/33", 0, 33, 1, "/33"},
    {"/64", 0, 64, 1, "/64"},
    {"/128", 0, 128, 1, "/128"},
};

/* A text that must be refused.  len 0 means strlen(text); quoted NULL
 * means the text appears as it is in the message. */
struct invalid {
    const char *text;
    size_t len;
    const char *quoted;
    const char *why;
};

static const struct invalid invalids[] = {
    {"", 0, NULL, ": empty"},
    {"junk", 0, NULL, "not an IPv4 or IPv6 address"},
    {"-1", 0, NULL, "not an IPv4 or IPv6 address"},
    {".1.2.3", 0, NULL, "not an IPv4 or IPv6 address"},
    {"1.2.3", 0, NULL, "IPv4 address needs 4 parts"},
    {"1.2.3.4.5", 0, NULL, "IPv4 address needs 4 parts"},
    {"1.2.3.4.", 0, NULL, "IPv4 address needs 4 parts"},
    {"1", 0, NULL, "IPv4 address needs 4 parts"},
    {"1..3.4", 0, NULL, "IPv4 address has an empty part"},
    {"1.2.3.", 0, NULL, "IPv4 address has an empty part"},
    {"256.1.1.1", 0, NULL, "part \"256\" is over 255"},
    {"1.2.3.1000", 0, NULL, "part \"1000\" is over 255"},
    {"1.2.3.999", 0, NULL, "part \"999\" is over 255"},
    {"01.2.3.4", 0, NULL, "part \"01\" has a leading zero"},
    {"1.2.3.00", 0, NULL, "part \"00\" has a leading zero"},
    {"1.2.3.a", 0, NULL, "bad character 'a' in IPv4 address"},
    {"0x1.2.3.4", 0, NULL, "bad character 'x' in IPv4 address"},
    {"1,2,3,4", 0, NULL, "bad character ',' in IPv4 address"},
    {"1e100", 0, NULL, "bad character 'e' in IPv4 address"},
    {"1.2.3.4 /24", 0, NULL, "bad character ' ' in IPv4 address"},
    /* Masks. */
    {"10.0.0.0/33", 0, NULL, "mask /33 is longer than /32"},
    {"1.2.3.4/999", 0, NULL, "mask /999 is longer than /32"},
    {"::1/129", 0, NULL, "mask /129 is longer than /128"},
    {"/129", 0, NULL, "mask /129 is longer than /128"},
    {"/1000", 0, NULL, "mask /1000 is longer than /128"},
    {"/99999999999999999999", 0, NULL,
     "mask /99999999999999999999 is longer than /128"},
    {"1.2.3.4/-1", 0, NULL, "mask \"-1\" is not a decimal number"},
    {"::/-1", 0, NULL, "mask \"-1\" is not a decimal number"},
    {"/-1", 0, NULL, "mask \"-1\" is not a decimal number"},
    {"/+8", 0, NULL, "mask \"+8\" is not a decimal number"},
    {"1.2.3.4/+8", 0, NULL, "mask \"+8\" is not a decimal number"},
    {"1.2.3.4/24x", 0, NULL, "mask \"24x\" is not a decimal number"},
    {"1.2.3.4/24/8", 0, NULL, "mask \"24/8\" is not a decimal number"},
    {"//24", 0, NULL, "mask \"/24\" is not a decimal number"},
    {"/0x10", 0, NULL, "mask \"0x10\" is not a decimal number"},
    {"/08", 0, NULL, "mask /08 has a leading zero"},
    {"1.2.3.4/08", 0, NULL, "mask /08 has a leading zero"},
    {"1.2.3.4/00", 0, NULL, "mask /00 has a leading zero"},
    {"::/064", 0, NULL, "mask /064 has a leading zero"},
    {"1.2.3.4/", 0, NULL, "mask missing after '/'"},
    {"::1/", 0, NULL, "mask missing after '/'"},
    {"/", 0, NULL, "mask missing after '/'"},
    /* Blanks. */
    {" 1.2.3.4", 0, NULL, "leading blank"},
    {"1.2.3.4 ", 0, NULL, "trailing blank"},
    {"1.2.3.4/24 ", 0, NULL, "trailing blank"},
    {"\t::1", 0, "\\x09::1", "leading blank"},
    {"1.2.3.4\n", 0, "1.2.3.4\\x0a", "trailing blank"},
    {" ", 0, NULL, "leading blank"},
    /* IPv6 syntax. */
    {"::1::", 0, NULL, "more than one '::'"},
    {"1::2::3", 0, NULL, "more than one '::'"},
    {"1:2:3:4:5:6:7:8:9", 0, NULL, "more than 8 groups"},
    {"1:2:3:4:5:6:7", 0, NULL, "has 7 groups, needs 8 or '::'"},
    {"1:2", 0, NULL, "has 2 groups, needs 8 or '::'"},
    {"1:2:3:4:5:6:7:8::", 0, NULL, "has 8 groups and a '::'"},
    {"::1:2:3:4:5:6:7:8", 0, NULL, "has 8 groups and a '::'"},
    {"1:2:3:4::5:6:7:8", 0, NULL, "has 8 groups and a '::'"},
    {":1::", 0, NULL, "starts with a single ':'"},
    {":", 0, NULL, "starts with a single ':'"},
    {"1::2:", 0, NULL, "ends with a single ':'"},
    {":::", 0, NULL, "':::'"},
    {"1:::2", 0, NULL, "':::'"},
    {"12345::", 0, NULL, "group \"12345\" has more than 4 hex digits"},
    {"::00000", 0, NULL, "group \"00000\" has more than 4 hex digits"},
    {"::g", 0, NULL, "bad character 'g' in IPv6 address"},
    {"1g::", 0, NULL, "bad character 'g' in IPv6 address"},
    {"fe80::1%eth0", 0, NULL, "bad character '%' in IPv6 address"},
    {"::1.2.3", 0, NULL, "embedded IPv4 address needs 4 parts"},
    {"::1.2.3.256", 0, NULL, "part \"256\" is over 255"},
    {"::01.2.3.4", 0, NULL, "part \"01\" has a leading zero"},
    {"::1.2.3.4:5", 0, NULL, "embedded IPv4 address must come last"},
    {"::1.2.3.4.5", 0, NULL, "embedded IPv4 address needs 4 parts"},
    {"1:2:3:4:5:6:7:1.2.3.4", 0, NULL, "more than 8 groups"},
    {"1:2:3:4:5:6:7:8:1.2.3.4", 0, NULL, "more than 8 groups"},
    {"1:2:3:4:5:6::1.2.3.4", 0, NULL, "has 8 groups and a '::'"},
    {"1:2:3:4:5:1.2.3.4", 0, NULL, "has 7 groups, needs 8 or '::'"},
    /* Brackets. */
    {"[1.2.3.4]", 0, NULL, "only an IPv6 address goes inside brackets"},
    {"[1.2.3.4]/24", 0, NULL, "only an IPv6 address goes inside brackets"},
    {"[1.2.3.4/24]", 0, NULL, "only an IPv6 address goes inside brackets"},
    {"[::1", 0, NULL, "'[' without ']'"},
    {"[", 0, NULL, "'[' without ']'"},
    {"::1]", 0, NULL, "']' without '['"},
    {"1.2.3.4]", 0, NULL, "']' without '['"},
    {"[::1]/", 0, NULL, "mask missing after '/'"},
    {"[::1/]", 0, NULL, "mask missing after '/'"},
    {"[::1]x", 0, NULL, "\"x\" after ']'"},
    {"[::1]]", 0, NULL, "\"]\" after ']'"},
    {"[[::1]]", 0, NULL, "\"]\" after ']'"},
    {"[::1] /64", 0, NULL, "\" /64\" after ']'"},
    {"[]", 0, NULL, "no address inside the brackets"},
    {"[/64]", 0, NULL, "no address inside the brackets"},
    {"[::1/64]/64", 0, NULL, "mask both inside and outside the brackets"},
    {"[::1]/129", 0, NULL, "mask /129 is longer than /128"},
    {"[ ::1]", 0, NULL, "bad character ' ' in IPv6 address"},
    /* IPv4-mapped with a mask that does not reach the IPv4 part. */
    {"::ffff:1.2.3.4/64", 0, NULL,
     "mask /64 on an IPv4-mapped address is shorter than /96"},
    {"[::ffff:1.2.3.4]/95", 0, NULL,
     "mask /95 on an IPv4-mapped address is shorter than /96"},
    {"::ffff:0:0/0", 0, NULL,
     "mask /0 on an IPv4-mapped address is shorter than /96"},
    /* Quoting of what is not printable, and NUL bytes within len. */
    {"1.2.3.4\0", 8, "1.2.3.4\\x00", "contains a NUL byte"},
    {"1.2\0.3.4", 8, "1.2\\x00.3.4", "contains a NUL byte"},
    {"\0", 1, "\\x00", "contains a NUL byte"},
    {"\"1.2.3.4\"", 0, "\\\"1.2.3.4\\\"", "not an IPv4 or IPv6 address"},
    {"\\1.2.3.4", 0, "\\\\1.2.3.4", "not an IPv4 or IPv6 address"},
    {"\x80\xff", 0, "\\x80\\xff", "not an IPv4 or IPv6 address"},
    {"1.2.3.\x7f", 0, "1.2.3.\\x7f", "bad character '\\x7f' in IPv4"},
    {"::\x01", 0, "::\\x01", "bad character '\\x01' in IPv6"},
};

#define NVALID (sizeof valids / sizeof valids[0])
#define NINVALID (sizeof invalids / sizeof invalids[0])

/* Tests run outside the tables, counted by hand for the plan. */
#define NOTHER 100

/* parse_str - ina_cidr_parse() on a NUL-terminated text */

static int
parse_str(const char *text, struct ina_cidr *out, char *errbuf, size_t errlen)
{
    return ina_cidr_parse(text, strlen(text), out, errbuf, errlen);
}

/* fmt - format a block into a static buffer (tests only) */

static const char *
fmt(const struct ina_cidr *c)
{
    static char buf[INA_CIDR_STRLEN];

    return ina_cidr_format(c, buf, sizeof buf);
}

/* same_cidr - whether two blocks are equal in every field */

static int
same_cidr(const struct ina_cidr *a, const struct ina_cidr *b)
{
    return a->family == b->family && a->plen == b->plen
           && a->has_mask == b->has_mask
           && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* test_valid - every valid text gives its family, mask and text */

static void
test_valid(void)
{
    struct ina_cidr c;
    struct ina_cidr again;
    char errbuf[256];
    char formatted[INA_CIDR_STRLEN];
    size_t i;
    int rc;

    for (i = 0; i < NVALID; i++) {
        const struct valid *v = &valids[i];

        errbuf[0] = '\0';
        memset(&c, 0xa5, sizeof c);
        rc = parse_str(v->text, &c, errbuf, sizeof errbuf);
        if (!is_int(0, rc, "0 from \"%s\"", v->text))
            diag("%s", errbuf);
        is_int(v->family, c.family, "family %d of \"%s\"", v->family,
               v->text);
        is_int(v->plen, c.plen, "mask /%u of \"%s\"", v->plen, v->text);
        is_int(v->has_mask, c.has_mask, "has_mask %d of \"%s\"",
               v->has_mask, v->text);
        ina_cidr_format(&c, formatted, sizeof formatted);
        is_string(v->formatted, formatted, "\"%s\" formats as \"%s\"",
                  v->text, v->formatted);

        /* The formatted text names the same block, now with a mask. */
        rc = parse_str(formatted, &again, NULL, 0);
        again.has_mask = c.has_mask;
        ok(rc == 0 && same_cidr(&c, &again),
           "\"%s\" parses back to the same block", formatted);
    }
}

/* test_invalid - every invalid text is refused with a message */

static void
test_invalid(void)
{
    struct ina_cidr c;
    struct ina_cidr sentinel;
    char errbuf[512];
    char want[256];
    size_t i;
    size_t len;
    int rc;

    memset(&sentinel, 0x5a, sizeof sentinel);
    for (i = 0; i < NINVALID; i++) {
        const struct invalid *v = &invalids[i];
        const char *shown = v->quoted != NULL ? v->quoted : v->text;

        len = v->len != 0 ? v->len : strlen(v->text);
        strcpy(errbuf, "untouched");
        c = sentinel;
        rc = ina_cidr_parse(v->text, len, &c, errbuf, sizeof errbuf);
        is_int(INA_EBADCIDR, rc, "INA_EBADCIDR from \"%s\"", shown);
        snprintf(want, sizeof want, "bad cidr \"%s\": ", shown);
        ok(strncmp(errbuf, want, strlen(want)) == 0,
           "the message about \"%s\" starts by quoting it", shown);
        if (strncmp(errbuf, want, strlen(want)) != 0)
            diag("wanted: %s\n#   seen: %s", want, errbuf);
        like(errbuf, v->why, "and says %s", v->why);
        ok(same_cidr(&c, &sentinel), "and leaves out alone");
    }
}

/* test_exact - a few messages in full */

static void
test_exact(void)
{
    struct ina_cidr c;
    char errbuf[256];
    char big[1001];
    char want[256];
    char raw[7] = {'1', '.', '2', '.', '3', '.', '4'};

    is_int(INA_EBADCIDR, parse_str("1.2.3", &c, errbuf, sizeof errbuf),
           "INA_EBADCIDR from 1.2.3");
    is_string("bad cidr \"1.2.3\": IPv4 address needs 4 parts", errbuf,
              "and the whole message");
    is_int(INA_EBADCIDR, parse_str("10.0.0.0/33", &c, errbuf, sizeof errbuf),
           "INA_EBADCIDR from 10.0.0.0/33");
    is_string("bad cidr \"10.0.0.0/33\": mask /33 is longer than /32", errbuf,
              "and the whole message");
    is_int(INA_EBADCIDR, parse_str("01.2.3.4", &c, errbuf, sizeof errbuf),
           "INA_EBADCIDR from 01.2.3.4");
    is_string("bad cidr \"01.2.3.4\": IPv4 address part \"01\" has a leading "
              "zero (inet_aton would read it as octal)", errbuf,
              "and the whole message");

    /* Overlong input: refused for its length, and quoted cut short. */
    memset(big, 'a', 1000);
    big[1000] = '\0';
    is_int(INA_EBADCIDR, ina_cidr_parse(big, 1000, &c, errbuf, sizeof errbuf),
           "INA_EBADCIDR from 1000 characters");
    snprintf(want, sizeof want, "bad cidr \"%.64s...\": 1000 characters, "
             "longer than 64", big);
    is_string(want, errbuf, "and the message quotes 64 of them");
    memcpy(big, "1.2.3.4", 7);
    is_int(INA_EBADCIDR, ina_cidr_parse(big, INA_CIDR_TEXT_MAX + 1, &c,
                                        errbuf, sizeof errbuf),
           "INA_EBADCIDR from %d characters", INA_CIDR_TEXT_MAX + 1);
    like(errbuf, "65 characters, longer than 64", "and says it is too long");
    is_int(INA_EBADCIDR, ina_cidr_parse(big, INA_CIDR_TEXT_MAX, &c, errbuf,
                                        sizeof errbuf),
           "INA_EBADCIDR from %d characters", INA_CIDR_TEXT_MAX);
    like(errbuf, "bad character 'a' in IPv4 address",
         "and %d is not too long", INA_CIDR_TEXT_MAX);
    is_int(INA_EBADCIDR, ina_cidr_parse(big, SIZE_MAX, &c, errbuf,
                                        sizeof errbuf),
           "INA_EBADCIDR from SIZE_MAX characters, reading none");

    /* The longest valid text fits the limit. */
    is_int(0, parse_str("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]/128",
                        &c, errbuf, sizeof errbuf),
           "0 from the longest valid text");
    is_string("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", fmt(&c),
              "and it is all ones");

    /* Only len bytes are read: no terminator is needed. */
    is_int(0, ina_cidr_parse(raw, sizeof raw, &c, errbuf, sizeof errbuf),
           "0 from 7 bytes without a NUL");
    is_string("1.2.3.4/32", fmt(&c), "and they are 1.2.3.4");
    is_int(0, ina_cidr_parse("10.9.8.7/8", 8, &c, errbuf, sizeof errbuf),
           "0 from the first 8 bytes of 10.9.8.7/8");
    is_string("10.9.8.7/32", fmt(&c), "and the rest is not read");
    is_int(INA_EBADCIDR, ina_cidr_parse("10.9.8.7/8", 9, &c, errbuf,
                                        sizeof errbuf),
           "INA_EBADCIDR from the first 9 bytes");
    is_string("bad cidr \"10.9.8.7/\": mask missing after '/'", errbuf,
              "and the message quotes only those");

    /* No text, no buffer, short buffers. */
    is_int(INA_EBADCIDR, ina_cidr_parse(NULL, 0, &c, errbuf, sizeof errbuf),
           "INA_EBADCIDR from NULL");
    is_string("bad cidr \"\": empty", errbuf, "and it is empty");
    is_int(INA_EBADCIDR, parse_str("junk", &c, NULL, 0),
           "INA_EBADCIDR with no error buffer");
    is_int(INA_EBADCIDR, parse_str("junk", &c, NULL, 100),
           "INA_EBADCIDR with a NULL buffer of some length");
    strcpy(errbuf, "untouched");
    is_int(INA_EBADCIDR, parse_str("junk", &c, errbuf, 0),
           "INA_EBADCIDR with a buffer of length 0");
    is_string("untouched", errbuf, "and the buffer is not written");
    strcpy(errbuf, "untouched");
    is_int(INA_EBADCIDR, parse_str("junk", &c, errbuf, 1),
           "INA_EBADCIDR with a buffer of length 1");
    is_string("", errbuf, "and the buffer is only terminated");
    memset(errbuf, 'x', sizeof errbuf);
    is_int(INA_EBADCIDR, parse_str("junk", &c, errbuf, 12),
           "INA_EBADCIDR with a buffer of length 12");
    is_string("bad cidr \"j", errbuf, "and the message is cut and terminated");
    is_int('x', errbuf[12], "and nothing past the buffer is written");
    is_int(0, parse_str("1.2.3.4", &c, NULL, 0), "0 with no error buffer");
}

/* test_bits - host bits are cleared at every mask */

static void
test_bits(void)
{
    struct ina_cidr c;
    char text[64];
    unsigned plen;
    unsigned i;
    unsigned bad4 = 0;
    unsigned bad6 = 0;
    unsigned bits;

    for (plen = 0; plen <= 32; plen++) {
        snprintf(text, sizeof text, "255.255.255.255/%u", plen);
        if (parse_str(text, &c, NULL, 0) != 0 || c.plen != plen) {
            bad4++;
            continue;
        }
        for (bits = 0, i = 0; i < 16; i++)
            bits += (unsigned) __builtin_popcount(c.addr[i]);
        if (bits != plen || (plen > 0 && (c.addr[0] & 0x80) == 0))
            bad4++;
    }
    is_int(0, bad4, "255.255.255.255/N keeps exactly the N high bits");
    for (plen = 0; plen <= 128; plen++) {
        snprintf(text, sizeof text,
                 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/%u", plen);
        if (parse_str(text, &c, NULL, 0) != 0 || c.plen != plen) {
            bad6++;
            continue;
        }
        for (bits = 0, i = 0; i < 16; i++)
            bits += (unsigned) __builtin_popcount(c.addr[i]);
        if (bits != plen || (plen > 0 && (c.addr[0] & 0x80) == 0))
            bad6++;
    }
    is_int(0, bad6, "all-ones IPv6/N keeps exactly the N high bits");

    /* The unused bytes of an IPv4 address are zero. */
    parse_str("::ffff:255.255.255.255", &c, NULL, 0);
    for (bits = 0, i = 4; i < 16; i++)
        bits += c.addr[i];
    is_int(0, bits, "a mapped address leaves addr[4..15] zero");
    parse_str("/24", &c, NULL, 0);
    for (bits = 0, i = 0; i < 16; i++)
        bits += c.addr[i];
    is_int(0, bits, "a bare mask has an all-zero address");
}

/* test_mask - the internal cidr_mask() and cidr_last() */

static void
test_mask(void)
{
    uint8_t a[16];
    static const uint8_t ones[16] = {
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    };

    memcpy(a, ones, 4);
    cidr_mask(a, 4, 20);
    ok(a[0] == 0xff && a[1] == 0xff && a[2] == 0xf0 && a[3] == 0,
       "cidr_mask /20 gives ff.ff.f0.00");
    memcpy(a, ones, 4);
    cidr_mask(a, 4, 0);
    ok(a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0,
       "cidr_mask /0 clears everything");
    memcpy(a, ones, 4);
    cidr_mask(a, 4, 32);
    ok(memcmp(a, ones, 4) == 0, "cidr_mask /32 keeps everything");
    memcpy(a, ones, 4);
    cidr_mask(a, 4, 40);
    ok(memcmp(a, ones, 4) == 0, "cidr_mask past the length is a no-op");
    memcpy(a, ones, 16);
    cidr_mask(a, 16, 65);
    ok(a[7] == 0xff && a[8] == 0x80 && a[9] == 0 && a[15] == 0,
       "cidr_mask /65 of 16 bytes keeps 8 bytes and one bit");
    memcpy(a, ones, 16);
    cidr_mask(a, 4, 0);
    ok(a[4] == 0xff && a[15] == 0xff, "cidr_mask stays within alen");

    memset(a, 0, sizeof a);
    a[0] = 10;
    a[1] = 1;
    cidr_last(a, 4, 16);
    ok(a[0] == 10 && a[1] == 1 && a[2] == 0xff && a[3] == 0xff,
       "cidr_last 10.1.0.0/16 is 10.1.255.255");
    memset(a, 0, sizeof a);
    a[0] = 192;
    a[1] = 0;
    a[2] = 2;
    a[3] = 128;
    cidr_last(a, 4, 25);
    ok(a[0] == 192 && a[2] == 2 && a[3] == 0xff,
       "cidr_last 192.0.2.128/25 is 192.0.2.255");
    memset(a, 0, sizeof a);
    cidr_last(a, 4, 21);
    ok(a[0] == 0 && a[1] == 0 && a[2] == 0x07 && a[3] == 0xff,
       "cidr_last /21 sets the low 11 bits");
    memset(a, 0, sizeof a);
    cidr_last(a, 16, 0);
    ok(memcmp(a, ones, 16) == 0, "cidr_last /0 sets every bit");
    memset(a, 0, sizeof a);
    cidr_last(a, 16, 128);
    ok(a[0] == 0 && a[15] == 0, "cidr_last /128 sets none");
    memset(a, 0, sizeof a);
    cidr_last(a, 4, 0);
    ok(a[3] == 0xff && a[4] == 0, "cidr_last stays within alen");
    is_int(4, cidr_addrlen(4), "4 address bytes for IPv4");
    is_int(16, cidr_addrlen(6), "16 address bytes for IPv6");
    is_int(32, cidr_maxlen(4), "/32 is an IPv4 host");
    is_int(128, cidr_maxlen(6), "/128 is an IPv6 host");
}

/* test_resolve - bare masks applied to the current connection */

static void
test_resolve(void)
{
    struct ina_cidr rel;
    struct ina_cidr peer4;
    struct ina_cidr peer6;
    struct ina_cidr mapped;
    struct ina_cidr out;
    struct ina_cidr sentinel;
    struct ina_cidr block;

    if (parse_str("192.0.2.77", &peer4, NULL, 0) != 0
        || parse_str("2001:db8:1:2:3:4:5:6", &peer6, NULL, 0) != 0
        || parse_str("::ffff:198.51.100.200", &mapped, NULL, 0) != 0
        || parse_str("10.0.0.0/8", &block, NULL, 0) != 0)
        bail("cannot parse the peers");
    memset(&sentinel, 0x5a, sizeof sentinel);

    (void) parse_str("/24", &rel, NULL, 0);
    is_int(0, ina_cidr_resolve(&rel, &peer4, &out), "0 from /24 of an IPv4 peer");
    is_string("192.0.2.0/24", fmt(&out), "and the peer's /24");
    is_int(1, out.has_mask, "and it has a mask");
    is_int(0, ina_cidr_resolve(&rel, &peer6, &out), "0 from /24 of an IPv6 peer");
    is_string("2001:d00::/24", fmt(&out), "and the peer's IPv6 /24");
    is_int(0, ina_cidr_resolve(&rel, &mapped, &out), "0 from /24 of a mapped peer");
    is_string("198.51.100.0/24", fmt(&out), "and the mapped peer's IPv4 /24");

    (void) parse_str("/64", &rel, NULL, 0);
    is_int(0, ina_cidr_resolve(&rel, &peer6, &out), "0 from /64 of an IPv6 peer");
    is_string("2001:db8:1:2::/64", fmt(&out), "and the peer's /64");
    out = sentinel;
    is_int(INA_EBADCIDR, ina_cidr_resolve(&rel, &peer4, &out),
           "INA_EBADCIDR from /64 of an IPv4 peer");
    ok(same_cidr(&out, &sentinel), "and out is left alone");

    (void) parse_str("/32", &rel, NULL, 0);
    is_int(0, ina_cidr_resolve(&rel, &peer4, &out), "0 from /32 of an IPv4 peer");
    is_string("192.0.2.77/32", fmt(&out), "and the peer itself");
    (void) parse_str("/33", &rel, NULL, 0);
    is_int(INA_EBADCIDR, ina_cidr_resolve(&rel, &peer4, &out),
           "INA_EBADCIDR from /33 of an IPv4 peer");
    is_int(0, ina_cidr_resolve(&rel, &peer6, &out), "but 0 for an IPv6 peer");
    (void) parse_str("/0", &rel, NULL, 0);
    is_int(0, ina_cidr_resolve(&rel, &peer6, &out), "0 from /0 of an IPv6 peer");
    is_string("::/0", fmt(&out), "and the whole IPv6 space");
    (void) parse_str("/128", &rel, NULL, 0);
    is_int(0, ina_cidr_resolve(&rel, &peer6, &out), "0 from /128");
    is_string("2001:db8:1:2:3:4:5:6/128", fmt(&out), "and the IPv6 peer itself");

    (void) parse_str("/24", &rel, NULL, 0);
    out = sentinel;
    is_int(INA_ENOADDR, ina_cidr_resolve(&rel, NULL, &out),
           "INA_ENOADDR from a bare mask and no peer");
    ok(same_cidr(&out, &sentinel), "and out is left alone");
    is_int(INA_ENOADDR, ina_cidr_resolve(&rel, &rel, &out),
           "INA_ENOADDR when the peer is a bare mask too");

    is_int(0, ina_cidr_resolve(&block, NULL, &out),
           "0 from a block with no peer");
    ok(same_cidr(&out, &block), "and the block unchanged");
    is_int(0, ina_cidr_resolve(&block, &peer6, &out),
           "0 from a block with a peer");
    ok(same_cidr(&out, &block), "and the block still unchanged");

    /* out may be the same object as rel. */
    (void) parse_str("/16", &rel, NULL, 0);
    is_int(0, ina_cidr_resolve(&rel, &peer4, &rel), "0 resolving in place");
    is_string("192.0.0.0/16", fmt(&rel), "and rel became the peer's /16");

    /* Hand-made structures that no parse gives. */
    memset(&rel, 0, sizeof rel);
    rel.plen = 200;
    is_int(INA_EBADCIDR, ina_cidr_resolve(&rel, &peer6, &out),
           "INA_EBADCIDR from a bare /200");
    rel.family = 5;
    rel.plen = 8;
    is_int(INA_EBADCIDR, ina_cidr_resolve(&rel, &peer6, &out),
           "INA_EBADCIDR from family 5");
}

/* test_host_format - ina_cidr_host() and corners of ina_cidr_format() */

static void
test_host_format(void)
{
    struct ina_cidr c;
    struct ina_cidr h;
    char buf[INA_CIDR_STRLEN];
    char *r;

    (void) parse_str("10.1.2.3/8", &c, NULL, 0);
    ina_cidr_host(&c, &h);
    is_string("10.0.0.0/32", fmt(&h), "the host of 10.1.2.3/8 is 10.0.0.0/32");
    is_int(0, h.has_mask, "and has no explicit mask");
    (void) parse_str("2001:db8::/32", &c, NULL, 0);
    ina_cidr_host(&c, &h);
    is_string("2001:db8::/128", fmt(&h), "the host of 2001:db8::/32 is a /128");
    (void) parse_str("/24", &c, NULL, 0);
    ina_cidr_host(&c, &h);
    ok(same_cidr(&c, &h), "a bare mask stays a bare mask");
    (void) parse_str("1.2.3.4/24", &c, NULL, 0);
    ina_cidr_host(&c, &c);
    is_string("1.2.3.0/32", fmt(&c), "ina_cidr_host works in place");

    (void) parse_str("255.255.255.255", &c, NULL, 0);
    r = ina_cidr_format(&c, buf, 5);
    ok(r == buf, "ina_cidr_format returns buf");
    is_string("255.", buf, "and cuts the text to the buffer");
    memset(buf, 'x', sizeof buf);
    r = ina_cidr_format(&c, buf, 0);
    ok(r == buf && buf[0] == 'x', "and writes nothing into 0 bytes");
    (void) parse_str("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &c, NULL, 0);
    ina_cidr_format(&c, buf, sizeof buf);
    is_int(43, strlen(buf), "the longest text fits INA_CIDR_STRLEN");

    /* A family 6 structure made by hand with mapped bytes. */
    memset(&c, 0, sizeof c);
    c.family = 6;
    c.plen = 128;
    c.addr[10] = 0xff;
    c.addr[11] = 0xff;
    c.addr[12] = 192;
    c.addr[15] = 1;
    is_string("::ffff:192.0.0.1/128", fmt(&c),
              "mapped bytes in family 6 use mixed notation");
    c.family = 9;
    is_string("(family 9)/128", fmt(&c), "an unknown family is shown as such");
}

/* fuzz_next - xorshift64, a fixed sequence for reproducible tests */

static uint64_t
fuzz_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* test_quad_differential - dotted quads, and texts one character off
 * one, against inet_pton(AF_INET)
 *
 * The parser takes a valid quad in one pass and leaves every other text
 * to its checks, which say why (lib/cidr.c cidr_quad4): both must agree
 * with the C library on where the line between them lies, a text with
 * and without a mask alike. */

static void
test_quad_differential(void)
{
    static const char *const parts[] = {
        "0", "1", "2", "5", "9", "10", "25", "99", "199", "249", "255",
        "256", "260", "300", "999", "00", "01", "007", "1000",
    };
    /* The dot four times: texts of three dots, the ones a parser could
     * take for a quad, come often. */
    static const char *const others[] = { ".", ".", ".", ".", "a", "-", " " };
    const size_t nparts = sizeof parts / sizeof parts[0];
    const size_t nothers = sizeof others / sizeof others[0];
    uint64_t seed = 0x2545f4914f6cdd1dull, r;
    struct ina_cidr c;
    uint8_t want[4];
    char text[64], masked[72];
    unsigned long tries, accepted = 0, mismatches = 0;
    size_t n, k;
    int ours_ok, libc_ok;

    for (tries = 0; tries < 200000; tries++) {
        text[0] = '\0';
        if (tries % 2 == 0) {
            /* Four parts and three dots, each part drawn anew. */
            for (k = 0; k < 7; k++)
                strcat(text, k % 2 ? "." : parts[fuzz_next(&seed) % nparts]);
        } else {
            /* Parts, dots and characters no address has, in any order. */
            n = 1 + fuzz_next(&seed) % 9;
            for (k = 0; k < n; k++) {
                r = fuzz_next(&seed) % (nparts + nothers);
                strcat(text, r < nparts ? parts[r] : others[r - nparts]);
            }
        }
        libc_ok = inet_pton(AF_INET, text, want) == 1;
        ours_ok = parse_str(text, &c, NULL, 0) == 0 && c.family == 4
                  && memcmp(c.addr, want, 4) == 0;
        snprintf(masked, sizeof masked, "%s/32", text);
        ours_ok += parse_str(masked, &c, NULL, 0) == 0 && c.family == 4
                   && memcmp(c.addr, want, 4) == 0;
        accepted += libc_ok;
        if (ours_ok != 2 * libc_ok && mismatches++ < 5)
            diag("disagree on \"%s\": inet_pton %d", text, libc_ok);
    }
    is_int(0, mismatches, "dotted quads: ina_cidr_parse agrees with "
           "inet_pton on %lu texts", tries);
    ok(accepted > 5000 && accepted < tries / 2,
       "and %lu of them were valid", accepted);
}

/* test_differential - our grammar against inet_pton() and inet_ntop() */

static void
test_differential(void)
{
    static const char *const tokens[] = {
        "0", "1", "ab", "FFFF", "0db8", "fffff", "12345", "00000", ":",
        "::", ":", "::", ".", "1.2.3.4", "255.0.0.1", "01.2.3.4", "256.1.1.1",
        "1.2.3", "g", "ffff", "0", "7", "10.0.0.1", "::ffff:", "ffff:",
    };
    const size_t ntokens = sizeof tokens / sizeof tokens[0];
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    struct ina_cidr c;
    uint8_t want[16];
    uint8_t got[16];
    uint8_t raw[16];
    char text[256];
    char libc[INET6_ADDRSTRLEN];
    char ours[INA_CIDR_STRLEN];
    unsigned long tries;
    unsigned long accepted = 0;
    unsigned long mismatches = 0;
    unsigned long fmt_bad = 0;
    unsigned long fmt_checked = 0;
    unsigned long mapped_seen = 0;
    size_t n;
    size_t k;
    size_t i;
    int ours_ok;
    int libc_ok;
    int is6;

    for (tries = 0; tries < 200000; tries++) {
        text[0] = '\0';
        n = 1 + fuzz_next(&seed) % 10;
        for (k = 0; k < n; k++) {
            const char *t = tokens[fuzz_next(&seed) % ntokens];

            if (strlen(text) + strlen(t) + 1 > INA_CIDR_TEXT_MAX)
                break;
            strcat(text, t);
        }
        is6 = strchr(text, ':') != NULL;
        libc_ok = inet_pton(is6 ? AF_INET6 : AF_INET, text, want) == 1;
        ours_ok = parse_str(text, &c, NULL, 0) == 0;
        if (ours_ok) {
            accepted++;
            memset(got, 0, sizeof got);
            if (is6 && c.family == 4) {
                /* A mapped address: put the ::ffff: prefix back. */
                mapped_seen++;
                got[10] = 0xff;
                got[11] = 0xff;
                memcpy(got + 12, c.addr, 4);
            } else {
                memcpy(got, c.addr, cidr_addrlen(c.family));
            }
        }
        if (ours_ok != libc_ok
            || (ours_ok
                && memcmp(got, want, is6 ? 16u : 4u) != 0)) {
            if (mismatches++ < 5)
                diag("disagree on \"%s\": ours %d, inet_pton %d", text,
                     ours_ok, libc_ok);
        }
    }
    is_int(0, mismatches, "ina_cidr_parse agrees with inet_pton on %lu texts",
           tries);
    ok(accepted > 5000 && mapped_seen > 100,
       "and %lu of them were valid (%lu mapped)", accepted, mapped_seen);

    /* Random addresses with runs of zero groups: our RFC 5952 text is
     * inet_ntop()'s wherever glibc does not choose mixed notation, and
     * it parses back to the same bytes. */
    for (tries = 0; tries < 100000; tries++) {
        for (i = 0; i < 8; i++) {
            uint64_t r = fuzz_next(&seed);

            if (r % 3 == 0) {
                raw[2 * i] = 0;
                raw[2 * i + 1] = 0;
            } else {
                raw[2 * i] = (uint8_t) (r >> 8 & (r % 5 == 0 ? 0 : 0xff));
                raw[2 * i + 1] = (uint8_t) (r >> 16);
            }
        }
        if (tries % 101 == 0) {
            memset(raw, 0, 10);
            raw[10] = raw[11] = 0xff;
        }
        memset(&c, 0, sizeof c);
        c.family = 6;
        c.plen = 128;
        memcpy(c.addr, raw, 16);
        ina_cidr_format(&c, ours, sizeof ours);
        if (inet_ntop(AF_INET6, raw, libc, sizeof libc) == NULL)
            sysbail("inet_ntop");
        strcat(libc, "/128");
        if (strchr(libc, '.') == NULL || strncmp(libc, "::ffff:", 7) == 0) {
            fmt_checked++;
            if (strcmp(ours, libc) != 0 && fmt_bad++ < 5)
                diag("format: ours %s, inet_ntop %s", ours, libc);
        }
        if (parse_str(ours, &c, NULL, 0) != 0) {
            if (fmt_bad++ < 5)
                diag("format: %s does not parse", ours);
        } else if (c.family == 6 ? memcmp(c.addr, raw, 16) != 0
                                 : memcmp(c.addr, raw + 12, 4) != 0) {
            if (fmt_bad++ < 5)
                diag("format: %s parses to other bytes", ours);
        }
    }
    is_int(0, fmt_bad, "ina_cidr_format agrees with inet_ntop and parses back");
    ok(fmt_checked > 90000, "and %lu texts were compared", fmt_checked);
}

/* main - run every group of tests */

int
main(void)
{
    plan(NVALID * 6 + NINVALID * 4 + NOTHER);
    test_valid();
    test_invalid();
    test_exact();
    test_bits();
    test_mask();
    test_resolve();
    test_host_format();
    test_quad_differential();
    test_differential();
    return 0;
}
