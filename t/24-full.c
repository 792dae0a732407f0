/* 24-full.c - a flood far beyond the map: degrade, keep counting, recover
 *
 * A 1 MiB map takes a flood of unique IPv6 sources many times what it
 * holds.  No record may fail; the store must first give up its finest
 * granularity (then the next), say so once per step in the log, show it
 * in stat, keep exact counts at the coarsest granularity, and return to
 * full precision once the flood's windows expire.  Run with one
 * transaction per record and with buffering.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap/basic.h"
#include "tap/inatest.h"

#define T0 1700002800
#define FLOOD 40000

static int64_t now = T0;
static int warnings, notices, restored;

/* logger - count the store's log lines by kind */

static void
logger(void *arg, int prio, const char *msg)
{
    (void) arg;
    if (prio == INA_LOG_WARNING && strstr(msg, "degraded") != NULL)
        warnings++;
    if (prio == INA_LOG_NOTICE && strstr(msg, "map use fell") != NULL) {
        notices++;
        if (strstr(msg, "full precision restored") != NULL)
            restored++;
    }
}

/* run - the flood with one flush delay */

static void
run(const char *dir, int delay)
{
    struct ina_conf *conf;
    struct ina_store *st;
    struct ina_stat s;
    struct ina_cidr c;
    char body[512], addr[64], err[256];
    uint64_t n, fails = 0, first_used = 0;
    int i, max_level = 0;

    snprintf(body, sizeof(body),
             "map_size = \"1M\"\nflush_delay = %d\n"
             "monitors = {\"60,2\"}\nipv4_prefixes = {24}\n"
             "ipv6_prefixes = {128, 64, 48}\n", delay);
    conf = test_conf(dir, body);
    now = T0;
    warnings = notices = restored = 0;
    st = test_open(conf);
    ina_store_set_clock(st, test_clock, &now);
    ina_store_set_log(st, logger, NULL);
    for (i = 0; i < FLOOD; i++) {
        /* Unique /128s in 64 /64s of one /48; the clock ticks a second
         * every 1000 events (all in windows 0..1), so the map-use check
         * runs. */
        snprintf(addr, sizeof(addr), "2001:db8:1:%x::%x", i % 64, i + 1);
        c = test_addr(addr);
        if (ina_record(st, INA_CONNECTION, &c, 1) != 0)
            fails++;
        if (i % 1000 == 999)
            now++;
        if (i == 999 && ina_store_stat(st, &s) == 0)
            first_used = s.map_used;
        if (i % 1000 == 999 && ina_store_stat(st, &s) == 0
            && s.degraded > max_level)
            max_level = s.degraded;
    }
    if (ina_flush(st) != 0)
        fails++;
    is_uint(0, fails, "delay %d: %d records into a 1 MiB map, none failed",
            delay, FLOOD);
    ok(max_level >= 1, "delay %d: the store degraded (level %d)", delay,
       max_level);
    is_int(max_level, warnings,
           "delay %d: one warning per step down (%d)", delay, warnings);
    is_int(0, ina_store_stat(st, &s), "delay %d: stat", delay);
    ok(s.degraded >= 1, "delay %d: stat shows the degradation", delay);
    diag("delay %d: ~%llu bytes per tracked /128 before degrading "
         "(map use after 1000 sources, 3 grains)", delay,
         (unsigned long long) (first_used / 1000));
    c = test_addr("2001:db8:1::/48");
    is_int(0, ina_query(st, INA_CONNECTION, "60,2", &c, 0, 2, 0, &n, err,
                        sizeof(err)), "delay %d: query the /48", delay);
    is_uint(FLOOD, n,
            "delay %d: the /48 (the coarsest grain) counted every event",
            delay);
    is_uint(0, s.dropped, "delay %d: nothing was dropped", delay);

    /* The flood stops; its windows expire; precision comes back. */
    for (i = 0; i < 40; i++) {
        now += 60;
        c = test_addr("2001:db8:2::1");
        if (ina_record(st, INA_CONNECTION, &c, 1) != 0
            || ina_flush(st) != 0)
            fails++;
    }
    is_int(0, ina_store_stat(st, &s), "delay %d: stat after the flood",
           delay);
    is_int(0, s.degraded, "delay %d: full precision is back", delay);
    is_int(1, restored, "delay %d: and the log said so once", delay);
    c = test_addr("2001:db8:2::1");
    is_int(0, ina_query(st, INA_CONNECTION, "60,2", &c, 0, 0, 0, &n, err,
                        sizeof(err)), "delay %d: query a host", delay);
    is_uint(1, n, "delay %d: a /128 counts again", delay);
    ina_store_close(st);
    ina_conf_free(conf);
}

int
main(void)
{
    plan_lazy();
    run("direct", 0);
    run("buffered", 10);
    return 0;
}
