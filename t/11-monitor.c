/* 11-monitor.c - tests of monitor names, window starts and event names
 *
 * Tables of valid monitor names (with the width, history and canonical
 * name each must give) and of invalid ones (with what the message must
 * say), window starts before and after the epoch and at the ends of the
 * time range, and the event names.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tap/basic.h"
#include "inaudit.h"

/* A monitor name that must parse, and what it must give. */
struct valid {
    const char *text;
    uint32_t width;
    uint32_t history;
    const char *name;
};

static const struct valid valids[] = {
    {"60,10", 60, 10, "60,10"},
    {"60, 10", 60, 10, "60,10"},
    {"60 ,10", 60, 10, "60,10"},
    {" 60 , 10 ", 60, 10, "60,10"},
    {"\t300\t,\t12\t", 300, 12, "300,12"},
    {"  3600,24", 3600, 24, "3600,24"},
    {"1,0", 1, 0, "1,0"},
    {"10,0", 10, 0, "10,0"},
    {"7,100", 7, 100, "7,100"},
    {"86400,7", 86400, 7, "86400,7"},
    {"31622400,100000", 31622400, 100000, "31622400,100000"},
    {"31622400 , 100000", 31622400, 100000, "31622400,100000"},
};

/* A monitor name that must be refused, and what the message says. */
struct invalid {
    const char *text;
    const char *why;
};

static const struct invalid invalids[] = {
    {"", ": empty"},
    {"   ", ": empty"},
    {"60,", "history N missing"},
    {"60, ", "history N missing"},
    {"60,,10", "history N missing"},
    {"60", "',' and history N missing"},
    {"60  ", "',' and history N missing"},
    {",10", "window width missing"},
    {" ,10", "window width missing"},
    {"60 10", "unexpected '1' after window width"},
    {"60;10", "unexpected ';' after window width"},
    {"60.5,10", "unexpected '.' after window width"},
    {"0x3c,10", "unexpected 'x' after window width"},
    {"60,1e3", "unexpected 'e' after history N"},
    {"60,10x", "unexpected 'x' after history N"},
    {"60,10,5", "unexpected ',' after history N"},
    {"60,10 5", "unexpected '5' after history N"},
    {"60,10\n", "unexpected '\\x0a' after history N"},
    {"\n60,10", "unexpected '\\x0a' where window width should be"},
    {"-60,10", "unexpected '-' where window width should be"},
    {"+60,10", "unexpected '+' where window width should be"},
    {"sixty,10", "unexpected 's' where window width should be"},
    {"60,-1", "unexpected '-' where history N should be"},
    {"60,+10", "unexpected '+' where history N should be"},
    {"60,ten", "unexpected 't' where history N should be"},
    {"060,10", "window width \"060\" has a leading zero"},
    {"60,010", "history N \"010\" has a leading zero"},
    {"60,00", "history N \"00\" has a leading zero"},
    {"0,10", "window width 0 out of range 1..31622400"},
    {"31622401,1", "window width 31622401 out of range 1..31622400"},
    {"4294967356,1", "window width 4294967356 out of range 1..31622400"},
    {"99999999999999999999999999,1",
     "window width 99999999999999999999999999 out of range"},
    {"60,100001", "history N 100001 out of range 0..100000"},
    {"60,4294967296", "history N 4294967296 out of range 0..100000"},
};

#define NVALID (sizeof valids / sizeof valids[0])
#define NINVALID (sizeof invalids / sizeof invalids[0])

/* One window start to check. */
struct start {
    uint32_t width;
    int64_t now;
    uint32_t idx;
    int64_t want;
};

static const struct start starts[] = {
    {60, 0, 0, 0},
    {60, 59, 0, 0},
    {60, 60, 0, 60},
    {60, 61, 1, 0},
    {60, 119, 1, 0},
    {60, 120, 1, 60},
    {60, 120, 2, 0},
    {60, 120, 3, -60},
    /* Before the epoch: floor, not truncation toward zero. */
    {60, -1, 0, -60},
    {60, -59, 0, -60},
    {60, -60, 0, -60},
    {60, -61, 0, -120},
    {60, -59, 2, -180},
    {7, -6, 0, -7},
    {7, -7, 0, -7},
    {7, -8, 0, -14},
    {1, -5, 3, -8},
    {1, 12345, 0, 12345},
    {31622400, -1, 0, -31622400},
    {31622400, 31622399, 0, 0},
    /* Ordinary clocks. */
    {300, 1700000123, 0, 1700000100},
    {300, 1700000123, 12, 1699996500},
    {3600, 1700000123, 0, 1699999200},
    {3600, 1700000123, 24, 1699912800},
    {86400, 1700000123, 1, 1699833600},
    /* The largest index. */
    {31622400, 0, UINT32_MAX, -135817173789408000LL},
    {1, 0, UINT32_MAX, -4294967295LL},
    /* The ends of the range: exact where it fits, INT64_MIN below. */
    {60, INT64_MAX, 0, INT64_MAX - 7},
    {1, INT64_MAX, 0, INT64_MAX},
    {1, INT64_MIN, 0, INT64_MIN},
    {2, INT64_MIN, 0, INT64_MIN},
    {1, INT64_MIN, 1, INT64_MIN},
    {3, INT64_MIN, 0, INT64_MIN},
    {3, INT64_MIN + 2, 0, INT64_MIN + 2},
    {3, INT64_MIN + 5, 1, INT64_MIN + 2},
    {3, INT64_MIN + 5, 2, INT64_MIN},
    {60, INT64_MIN + 100, UINT32_MAX, INT64_MIN},
};

#define NSTART (sizeof starts / sizeof starts[0])

/* Tests run outside the tables, counted by hand for the plan. */
#define NOTHER 44

/* shown - a text made safe for a test description (tests only)
 *
 * A newline would end the TAP line, so control characters are written
 * "\xHH" as the library's messages do. */

static const char *
shown(const char *text)
{
    static char buf[256];
    size_t i = 0;

    for (; *text != '\0' && i + 5 < sizeof buf; text++) {
        if ((unsigned char) *text < 0x20)
            i += (size_t) snprintf(buf + i, sizeof buf - i, "\\x%02x",
                                   (unsigned) (unsigned char) *text);
        else
            buf[i++] = *text;
    }
    buf[i] = '\0';
    return buf;
}

/* test_monitor_valid - valid names give width, history and canonical name */

static void
test_monitor_valid(void)
{
    struct ina_monitor m;
    char errbuf[256];
    size_t i;
    int rc;

    for (i = 0; i < NVALID; i++) {
        const struct valid *v = &valids[i];

        memset(&m, 0xa5, sizeof m);
        errbuf[0] = '\0';
        rc = ina_monitor_parse(v->text, &m, errbuf, sizeof errbuf);
        if (!is_int(0, rc, "0 from \"%s\"", shown(v->text)))
            diag("%s", errbuf);
        is_uint(v->width, m.width, "width %u", (unsigned) v->width);
        is_uint(v->history, m.history, "and history %u",
                (unsigned) v->history);
        is_string(v->name, m.name, "and name \"%s\"", v->name);
    }
}

/* test_monitor_invalid - invalid names are refused with a message */

static void
test_monitor_invalid(void)
{
    struct ina_monitor m;
    struct ina_monitor sentinel;
    char errbuf[512];
    char want[256];
    size_t i;
    int rc;

    memset(&sentinel, 0x5a, sizeof sentinel);
    for (i = 0; i < NINVALID; i++) {
        const struct invalid *v = &invalids[i];

        m = sentinel;
        strcpy(errbuf, "untouched");
        rc = ina_monitor_parse(v->text, &m, errbuf, sizeof errbuf);
        is_int(INA_EBADMONITOR, rc, "INA_EBADMONITOR from \"%s\"",
               shown(v->text));
        if (strchr(v->text, '\n') == NULL) {
            snprintf(want, sizeof want, "bad monitor \"%s\": ", v->text);
            ok(strncmp(errbuf, want, strlen(want)) == 0,
               "the message quotes \"%s\"", v->text);
        } else {
            like(errbuf, "\\x0a", "the message escapes the newline");
        }
        like(errbuf, v->why, "and says %s", v->why);
        ok(memcmp(&m, &sentinel, sizeof m) == 0, "and leaves out alone");
    }
}

/* test_monitor_exact - a few messages in full, and the error buffer */

static void
test_monitor_exact(void)
{
    struct ina_monitor m;
    char errbuf[256];
    char big[201];
    char want[256];

    is_int(INA_EBADMONITOR, ina_monitor_parse("60,", &m, errbuf,
                                              sizeof errbuf),
           "INA_EBADMONITOR from \"60,\"");
    is_string("bad monitor \"60,\": history N missing", errbuf,
              "and the whole message");
    is_int(INA_EBADMONITOR, ina_monitor_parse("0,10", &m, errbuf,
                                              sizeof errbuf),
           "INA_EBADMONITOR from \"0,10\"");
    is_string("bad monitor \"0,10\": window width 0 out of range "
              "1..31622400", errbuf, "and the whole message");
    is_int(INA_EBADMONITOR, ina_monitor_parse("60,10\"x", &m, errbuf,
                                              sizeof errbuf),
           "INA_EBADMONITOR from a text with a quote");
    is_string("bad monitor \"60,10\\\"x\": unexpected '\\\"' after history N",
              errbuf, "and the quote is escaped");

    memset(big, '1', 200);
    big[200] = '\0';
    is_int(INA_EBADMONITOR, ina_monitor_parse(big, &m, errbuf, sizeof errbuf),
           "INA_EBADMONITOR from 200 digits");
    snprintf(want, sizeof want, "bad monitor \"%.64s...\": ", big);
    ok(strncmp(errbuf, want, strlen(want)) == 0,
       "and the message quotes 64 of them");
    /* A long number with a leading zero is cut in its reason too, so
     * the reason still fits (found by t/fuzz/fuzz-monitor). */
    memset(big, '0', 200);
    is_int(INA_EBADMONITOR, ina_monitor_parse(big, &m, errbuf, sizeof errbuf),
           "INA_EBADMONITOR from 200 zeros");
    like(errbuf, "000...\" has a leading zero",
         "and the reason quotes 64 of them and says why");

    is_int(INA_EBADMONITOR, ina_monitor_parse("x", &m, NULL, 0),
           "INA_EBADMONITOR with no error buffer");
    strcpy(errbuf, "untouched");
    is_int(INA_EBADMONITOR, ina_monitor_parse("x", &m, errbuf, 0),
           "INA_EBADMONITOR with a buffer of length 0");
    is_string("untouched", errbuf, "and the buffer is not written");
    memset(errbuf, 'x', sizeof errbuf);
    is_int(INA_EBADMONITOR, ina_monitor_parse("x", &m, errbuf, 8),
           "INA_EBADMONITOR with a buffer of length 8");
    is_string("bad mon", errbuf, "and the message is cut and terminated");
    is_int('x', errbuf[8], "and nothing past the buffer is written");
    is_int(0, ina_monitor_parse("60, 10", &m, NULL, 0),
           "0 with no error buffer");
    is_int(0, ina_monitor_parse(m.name, &m, NULL, 0),
           "0 from the canonical name \"%s\"", m.name);
    is_string("60,10", m.name, "and it is its own canonical name");
}

/* test_starts - the table of window starts */

static void
test_starts(void)
{
    struct ina_monitor m;
    size_t i;

    memset(&m, 0, sizeof m);
    for (i = 0; i < NSTART; i++) {
        const struct start *s = &starts[i];

        m.width = s->width;
        is_int(s->want, ina_window_start(&m, s->now, s->idx),
               "window %u of W=%u at %lld starts at %lld", (unsigned) s->idx,
               (unsigned) s->width, (long long) s->now, (long long) s->want);
    }
}

/* test_start_properties - alignment and order over many times */

static void
test_start_properties(void)
{
    static const uint32_t widths[] = {1, 2, 7, 60, 300, 3600};
    struct ina_monitor m;
    size_t i;
    int64_t now;
    int64_t s0;
    int64_t s;
    uint32_t k;
    unsigned long bad;

    memset(&m, 0, sizeof m);
    for (i = 0; i < sizeof widths / sizeof widths[0]; i++) {
        m.width = widths[i];
        bad = 0;
        for (now = -10000; now <= 10000; now += 13) {
            s0 = ina_window_start(&m, now, 0);
            if (!(s0 <= now && now < s0 + m.width) || s0 % m.width != 0)
                bad++;
            for (k = 1; k <= 5; k++) {
                s = ina_window_start(&m, now, k);
                if (s != s0 - (int64_t) k * m.width)
                    bad++;
            }
        }
        is_int(0, bad, "W=%u: window 0 holds now, is aligned, and window k "
               "is k widths before", (unsigned) m.width);
    }

    /* A hand-made width of 0 is read as 1, not divided by. */
    m.width = 0;
    is_int(-3, ina_window_start(&m, -3, 0), "width 0 is read as 1");
}

/* test_events - event names both ways */

static void
test_events(void)
{
    static const char *const bad[] = {
        "", "Connection", "CONNECTIONS", "connectionss", "connection ",
        " connection", "conn", "connectio", "session", "sessions",
        "rejections\n", "receptions s", "s", "connection\ts",
    };
    enum ina_event ev;
    size_t i;

    ev = INA_REJECTION;
    is_int(0, ina_event_parse("connection", &ev), "0 from connection");
    is_int(INA_CONNECTION, ev, "and it is INA_CONNECTION");
    ev = INA_REJECTION;
    is_int(0, ina_event_parse("connections", &ev), "0 from connections");
    is_int(INA_CONNECTION, ev, "and it is INA_CONNECTION");
    ev = INA_CONNECTION;
    is_int(0, ina_event_parse("reception", &ev), "0 from reception");
    is_int(INA_RECEPTION, ev, "and it is INA_RECEPTION");
    ev = INA_CONNECTION;
    is_int(0, ina_event_parse("receptions", &ev), "0 from receptions");
    is_int(INA_RECEPTION, ev, "and it is INA_RECEPTION");
    ev = INA_CONNECTION;
    is_int(0, ina_event_parse("rejection", &ev), "0 from rejection");
    is_int(INA_REJECTION, ev, "and it is INA_REJECTION");
    ev = INA_CONNECTION;
    is_int(0, ina_event_parse("rejections", &ev), "0 from rejections");
    is_int(INA_REJECTION, ev, "and it is INA_REJECTION");

    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ev = INA_RECEPTION;
        if (ina_event_parse(bad[i], &ev) != INA_EBADEVENT
            || ev != INA_RECEPTION)
            break;
    }
    is_int(sizeof bad / sizeof bad[0], i,
           "INA_EBADEVENT from every misspelling, leaving ev alone");
    if (i < sizeof bad / sizeof bad[0])
        diag("accepted \"%s\"", bad[i]);

    is_string("connection", ina_event_name(INA_CONNECTION),
              "INA_CONNECTION is connection");
    is_string("reception", ina_event_name(INA_RECEPTION),
              "INA_RECEPTION is reception");
    is_string("rejection", ina_event_name(INA_REJECTION),
              "INA_REJECTION is rejection");
    is_string("unknown", ina_event_name((enum ina_event) INA_NEVENTS),
              "an event out of range is unknown");
    is_string("unknown", ina_event_name((enum ina_event) -1),
              "and so is a negative one");
}

/* main - run every group of tests */

int
main(void)
{
    plan(NVALID * 4 + NINVALID * 4 + NSTART + NOTHER);
    test_monitor_valid();
    test_monitor_invalid();
    test_monitor_exact();
    test_starts();
    test_start_properties();
    test_events();
    return 0;
}
