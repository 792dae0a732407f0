/* fuzz-monitor.c - libFuzzer target: monitor names and event names
 *
 * ina_monitor_parse() and ina_event_parse() take C strings, so the input
 * is copied into an exactly sized heap buffer with a NUL after it (a NUL
 * inside the input simply ends the text early, as it would for a
 * caller).  Then:
 *
 *   - an error leaves a terminated "bad monitor" message, in a roomy
 *     buffer and in a tiny one, and the same code without a buffer;
 *   - a parse gives W in 1 .. INA_WIDTH_MAX and N in 0 .. INA_HISTORY_MAX,
 *     its name is exactly the text with its blanks taken out, and the
 *     name parses back to the same monitor;
 *   - ina_window_start() of the parsed monitor, at a time and index taken
 *     from the input, is floor(now / W) - idx windows of W seconds, or
 *     INT64_MIN where that is below the range (checked in 128 bits);
 *   - ina_conf_find_monitor() on the sample configuration finds a
 *     configured monitor by any spelling and refuses anything else with a
 *     message listing the configured ones;
 *   - ina_event_parse() accepts exactly the three names and their
 *     plurals, and ina_event_name() gives the singular back.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inaudit.h"
#include "fuzz.h"

/* A small error buffer, to check truncation of long messages. */
#define FUZZ_SMALL_ERRLEN 5

/* The sample configuration, for ina_conf_find_monitor(). */
static struct ina_conf *fuzz_conf;

/* LLVMFuzzerInitialize - load the built-in configuration once */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char errbuf[256];

    (void) argc;
    (void) argv;
    if (ina_conf_parse_text(ina_conf_default_text(), "(builtin)", &fuzz_conf,
                            errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "fuzz-monitor: the built-in configuration: %s\n",
                errbuf);
        abort();
    }
    return 0;
}

/* mon_unblank - the text without its spaces and tabs, into out */

static void
mon_unblank(const char *text, char *out)
{
    for (; *text != '\0'; text++)
        if (*text != ' ' && *text != '\t')
            *out++ = *text;
    *out = '\0';
}

/* mon_get64 - up to 8 bytes of the input from offset off, little-endian */

static uint64_t
mon_get64(const uint8_t *data, size_t size, size_t off)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < 8 && off + i < size; i++)
        v |= (uint64_t) data[off + i] << (8 * i);
    return v;
}

/* mon_check_window - ina_window_start against 128-bit arithmetic */

static void
mon_check_window(const uint8_t *data, size_t size,
                 const struct ina_monitor *m)
{
    int64_t now;
    uint32_t idx;
    int64_t got;
    __int128 q;
    __int128 want;
    int k;

    for (k = 0; k < 4; k++) {
        switch (k) {
        case 0:
            now = (int64_t) mon_get64(data, size, size > 8 ? size - 8 : 0);
            break;
        case 1:
            now = INT64_MIN + (int64_t) (mon_get64(data, size, 0) % 1000);
            break;
        case 2:
            now = INT64_MAX - (int64_t) (mon_get64(data, size, 0) % 1000);
            break;
        default:
            now = (int64_t) (mon_get64(data, size, 0) % 4000000000u)
                  - 2000000000;
            break;
        }
        idx = (uint32_t) mon_get64(data, size, 1);
        if (k >= 2)
            idx %= m->history + 1;
        got = ina_window_start(m, now, idx);
        q = (__int128) now / m->width;
        if ((__int128) now % m->width != 0 && now < 0)
            q--;
        want = (q - idx) * m->width;
        if (want < INT64_MIN)
            want = INT64_MIN;
        FUZZ_CHECK(got == (int64_t) want, data, size,
                   "window_start(%s, %lld, %u) = %lld, want %lld", m->name,
                   (long long) now, (unsigned) idx, (long long) got,
                   (long long) want);
    }
}

/* mon_check_find - the sample configuration's lookup of the text */

static void
mon_check_find(const uint8_t *data, size_t size, const char *text, int rc,
               const struct ina_monitor *m)
{
    const struct ina_monitor *found = NULL;
    char errbuf[1024];
    char *small;
    size_t i;
    int configured = 0;
    int frc;

    if (rc == 0)
        for (i = 0; i < fuzz_conf->nmonitors; i++)
            if (strcmp(fuzz_conf->monitors[i].name, m->name) == 0)
                configured = 1;
    errbuf[0] = '\0';
    frc = ina_conf_find_monitor(fuzz_conf, text, &found, errbuf,
                                sizeof errbuf);
    if (configured) {
        FUZZ_CHECK(frc == 0 && found != NULL
                   && strcmp(found->name, m->name) == 0, data, size,
                   "configured monitor %s not found (rc %d)", m->name, frc);
        return;
    }
    FUZZ_CHECK(frc == (rc == 0 ? INA_ENOMONITOR : INA_EBADMONITOR), data,
               size, "find rc %d, parse rc %d", frc, rc);
    FUZZ_CHECK(strstr(errbuf, "(configured: 60,10 300,12 3600,24)") != NULL,
               data, size, "message \"%s\"", errbuf);
    if ((small = malloc(FUZZ_SMALL_ERRLEN)) == NULL)
        abort();
    frc = ina_conf_find_monitor(fuzz_conf, text, &found, small,
                                FUZZ_SMALL_ERRLEN);
    FUZZ_CHECK(memchr(small, '\0', FUZZ_SMALL_ERRLEN) != NULL, data, size,
               "find leaves a short buffer unterminated");
    free(small);
}

/* mon_check_event - ina_event_parse accepts exactly six names */

static void
mon_check_event(const uint8_t *data, size_t size, const char *text)
{
    static const char *const names[] = {
        "connection", "connections", "reception", "receptions",
        "rejection", "rejections",
    };
    enum ina_event ev = (enum ina_event) 77;
    size_t i;
    int want = -1;
    int rc;

    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(text, names[i]) == 0)
            want = (int) (i / 2);
    rc = ina_event_parse(text, &ev);
    if (want < 0) {
        FUZZ_CHECK(rc == INA_EBADEVENT && (int) ev == 77, data, size,
                   "event accepted (rc %d, ev %d)", rc, (int) ev);
        return;
    }
    FUZZ_CHECK(rc == 0 && (int) ev == want, data, size, "event rc %d ev %d",
               rc, (int) ev);
    FUZZ_CHECK(strncmp(ina_event_name(ev), text, strlen(ina_event_name(ev)))
               == 0, data, size, "event name %s", ina_event_name(ev));
}

/* LLVMFuzzerTestOneInput - one input as a monitor and as an event name */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ina_monitor m;
    struct ina_monitor m2;
    char *text;
    char *bare;
    char *small;
    char errbuf[512];
    int rc;
    int rc2;

    if ((text = malloc(size + 1)) == NULL || (bare = malloc(size + 1)) == NULL
        || (small = malloc(FUZZ_SMALL_ERRLEN)) == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';

    errbuf[0] = '\0';
    memset(&m, 0, sizeof m);
    rc = ina_monitor_parse(text, &m, errbuf, sizeof errbuf);
    FUZZ_CHECK(rc == 0 || rc == INA_EBADMONITOR, data, size, "rc %d", rc);
    rc2 = ina_monitor_parse(text, &m2, NULL, 0);
    FUZZ_CHECK(rc2 == rc, data, size, "rc %d without errbuf, %d with", rc2,
               rc);
    rc2 = ina_monitor_parse(text, &m2, small, FUZZ_SMALL_ERRLEN);
    FUZZ_CHECK(rc2 == rc, data, size, "rc %d with a small errbuf, %d", rc2,
               rc);

    if (rc != 0) {
        FUZZ_CHECK(strncmp(errbuf, "bad monitor \"", 13) == 0, data, size,
                   "message \"%s\"", errbuf);
        FUZZ_CHECK(memchr(small, '\0', FUZZ_SMALL_ERRLEN) != NULL, data, size,
                   "short buffer unterminated");
    } else {
        FUZZ_CHECK(m.width >= 1 && m.width <= INA_WIDTH_MAX
                   && m.history <= INA_HISTORY_MAX, data, size,
                   "monitor %u,%u out of range", (unsigned) m.width,
                   (unsigned) m.history);
        FUZZ_CHECK(memchr(m.name, '\0', sizeof m.name) != NULL, data, size,
                   "name unterminated");
        mon_unblank(text, bare);
        FUZZ_CHECK(strcmp(bare, m.name) == 0, data, size,
                   "name \"%s\" is not the text without blanks \"%s\"",
                   m.name, bare);
        rc2 = ina_monitor_parse(m.name, &m2, NULL, 0);
        FUZZ_CHECK(rc2 == 0 && memcmp(&m, &m2, sizeof m) == 0, data, size,
                   "name \"%s\" does not parse back", m.name);
        mon_check_window(data, size, &m);
    }
    mon_check_find(data, size, text, rc, &m);
    mon_check_event(data, size, text);
    free(small);
    free(bare);
    free(text);
    return 0;
}
