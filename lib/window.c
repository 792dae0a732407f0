/* window.c - monitors "W,N", their windows, and event names
 *
 * A monitor keeps windows W seconds long, aligned to the Unix epoch, and
 * N completed windows of history beside the current one.  Its name in
 * every API is the canonical "W,N"; blanks around either number are
 * allowed on input and dropped.  The numbers are plain decimal: no sign,
 * no leading zero, so that one monitor has one spelling up to blanks.
 *
 * Window index 0 is the window that contains now, index k the one k
 * windows earlier.  Window boundaries are multiples of W, so floor
 * division is used: times before the epoch fall in the window that starts
 * at or before them, never after.  Every function here is thread-safe.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "inaudit.h"
#include "internal.h"

/* At most this many bytes of the input are quoted in a message. */
#define WIN_QUOTE_MAX 64
/* Room for WIN_QUOTE_MAX escaped bytes ("\xHH" each), "..." and NUL. */
#define WIN_QUOTE_LEN (4 * WIN_QUOTE_MAX + 4)

/* Event names, indexed by enum ina_event; the plural adds an "s". */
static const char *const win_events[INA_NEVENTS] = {
    "connection",
    "reception",
    "rejection",
};

/* win_quote - copy bytes for a message, escaping what is not printable
 *
 * The same rules as in cidr.c: printable ASCII is copied, a double quote
 * and a backslash get a backslash, other bytes become "\xHH", and input
 * beyond WIN_QUOTE_MAX bytes is cut and marked with "...".  out must hold
 * WIN_QUOTE_LEN bytes. */

static void
win_quote(const char *s, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    char *p = out;
    unsigned char c;

    for (i = 0; i < n && i < WIN_QUOTE_MAX; i++) {
        c = (unsigned char) s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char) c;
        } else if (c >= 0x20 && c < 0x7f) {
            *p++ = (char) c;
        } else {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        }
    }
    if (n > WIN_QUOTE_MAX) {
        memcpy(p, "...", 3);
        p += 3;
    }
    *p = '\0';
}

/* win_fail - report a monitor parse error quoting the whole input */

static int INA_PRINTF(4, 5)
win_fail(const char *text, char *errbuf, size_t errlen, const char *fmt, ...)
{
    char quoted[WIN_QUOTE_LEN];
    char detail[WIN_QUOTE_LEN + 128];
    va_list ap;

    if (errbuf == NULL || errlen == 0)
        return INA_EBADMONITOR;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    win_quote(text, strlen(text), quoted);
    return err_set(errbuf, errlen, INA_EBADMONITOR, "bad monitor \"%s\": %s",
                   quoted, detail);
}

/* win_isblank - a blank allowed around the numbers of a monitor */

static int
win_isblank(int c)
{
    return c == ' ' || c == '\t';
}

/* win_number - parse one decimal number of a monitor
 *
 * *pp points at the number (blanks before it already skipped) and is
 * moved past its digits.  what names the number in messages; the number
 * must lie in min .. max.  Returns 0 or INA_EBADMONITOR. */

static int
win_number(const char *text, const char **pp, const char *what,
           uint32_t min, uint32_t max, uint32_t *val, char *errbuf,
           size_t errlen)
{
    char frag[WIN_QUOTE_LEN];
    const char *start = *pp;
    const char *p = start;
    uint64_t v = 0;
    size_t n;

    while (*p >= '0' && *p <= '9') {
        /* Stop growing past max: the digits are quoted, not v. */
        if (v <= max)
            v = v * 10 + (uint64_t) (*p - '0');
        p++;
    }
    n = (size_t) (p - start);
    if (n == 0) {
        if (*p == '\0' || *p == ',')
            return win_fail(text, errbuf, errlen, "%s missing", what);
        win_quote(p, 1, frag);
        return win_fail(text, errbuf, errlen,
                        "unexpected '%s' where %s should be", frag, what);
    }
    if (*p != '\0' && *p != ',' && !win_isblank(*p)) {
        win_quote(p, 1, frag);
        return win_fail(text, errbuf, errlen, "unexpected '%s' after %s",
                        frag, what);
    }
    if (n > 1 && start[0] == '0') {
        /* Quoted and cut like any text, so that a long run of digits
         * cannot push the reason out of the message. */
        win_quote(start, n, frag);
        return win_fail(text, errbuf, errlen, "%s \"%s\" has a leading zero",
                        what, frag);
    }
    if (v < min || v > max) {
        win_quote(start, n, frag);
        return win_fail(text, errbuf, errlen, "%s %s out of range %u..%u",
                        what, frag, (unsigned) min, (unsigned) max);
    }
    *val = (uint32_t) v;
    *pp = p;
    return 0;
}

/* ina_monitor_parse - parse a monitor name "W,N" */

int
ina_monitor_parse(const char *text, struct ina_monitor *out, char *errbuf,
                  size_t errlen)
{
    char frag[WIN_QUOTE_LEN];
    struct ina_monitor m;
    const char *p = text;
    int rc;

    memset(&m, 0, sizeof m);
    while (win_isblank(*p))
        p++;
    if (*p == '\0')
        return win_fail(text, errbuf, errlen, "empty");
    if ((rc = win_number(text, &p, "window width", 1, INA_WIDTH_MAX,
                         &m.width, errbuf, errlen)) != 0)
        return rc;
    while (win_isblank(*p))
        p++;
    if (*p == '\0')
        return win_fail(text, errbuf, errlen, "',' and history N missing");
    if (*p != ',') {
        win_quote(p, 1, frag);
        return win_fail(text, errbuf, errlen,
                        "unexpected '%s' after window width", frag);
    }
    p++;
    while (win_isblank(*p))
        p++;
    if ((rc = win_number(text, &p, "history N", 0, INA_HISTORY_MAX,
                         &m.history, errbuf, errlen)) != 0)
        return rc;
    while (win_isblank(*p))
        p++;
    if (*p != '\0') {
        win_quote(p, 1, frag);
        return win_fail(text, errbuf, errlen,
                        "unexpected '%s' after history N", frag);
    }
    snprintf(m.name, sizeof m.name, "%u,%u", (unsigned) m.width,
             (unsigned) m.history);
    *out = m;
    return 0;
}

/* ina_window_start - start time of window index idx of mon at time now
 *
 * A width of 0 cannot come from ina_monitor_parse(); it is read as 1
 * rather than divided by.  A start before INT64_MIN, which only a clock
 * at the very end of the range can ask for, is returned as INT64_MIN. */

int64_t
ina_window_start(const struct ina_monitor *mon, int64_t now, uint32_t idx)
{
    int64_t w = mon->width > 0 ? (int64_t) mon->width : 1;
    int64_t q = now / w;

    /* C division truncates toward zero; windows need the floor. */
    if (now % w != 0 && now < 0)
        q--;
    /* (q - idx) * w must not go below INT64_MIN; INT64_MIN / w rounds
     * toward zero, so it is the smallest window number that fits. */
    if (q < INT64_MIN / w + (int64_t) idx)
        return INT64_MIN;
    return (q - (int64_t) idx) * w;
}

/* ina_event_parse - event from its name
 *
 * The names are exact and lowercase: "connection" or "connections", and
 * so on.  *ev is left alone on error. */

int
ina_event_parse(const char *name, enum ina_event *ev)
{
    size_t i;
    size_t n;

    for (i = 0; i < INA_NEVENTS; i++) {
        n = strlen(win_events[i]);
        if (strncmp(name, win_events[i], n) == 0
            && (name[n] == '\0' || (name[n] == 's' && name[n + 1] == '\0'))) {
            *ev = (enum ina_event) i;
            return 0;
        }
    }
    return INA_EBADEVENT;
}

/* ina_event_name - singular name of an event
 *
 * A value outside the enum gets "unknown", so that it can always be
 * printed. */

const char *
ina_event_name(enum ina_event ev)
{
    if ((unsigned) ev < INA_NEVENTS)
        return win_events[ev];
    return "unknown";
}
