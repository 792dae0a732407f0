/* 21-window.c - windows under an injected clock: rollover, ranges, expiry
 *
 * The test clock moves by hand, so every window boundary is crossed on
 * purpose: a count must move from window 0 to window 1 exactly when the
 * clock crosses a multiple of the width, sums over ranges must add the
 * right windows, and expiry must delete exactly the windows no monitor
 * keeps, including windows "from the future" left by a clock step back.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap/basic.h"
#include "tap/inatest.h"

/* An hour boundary: every width of the test starts a window here. */
#define T0 1700002800

static int64_t now = T0;

/* q - one query, UINT64_MAX on error */

static uint64_t
q(struct ina_store *st, const char *mon, const char *cidr, uint32_t a,
  uint32_t b)
{
    struct ina_cidr c = test_addr(cidr);
    uint64_t n;
    char err[256];

    if (ina_query(st, INA_CONNECTION, mon, &c, a, b, 0, &n, err,
                  sizeof(err)) != 0) {
        diag("%s", err);
        return UINT64_MAX;
    }
    return n;
}

/* rec - record n connections from addr, or bail */

static void
rec(struct ina_store *st, const char *addr, uint64_t n)
{
    struct ina_cidr c = test_addr(addr);

    if (ina_record(st, INA_CONNECTION, &c, n) != 0)
        bail("record failed");
}

/* counters - records in the store */

static uint64_t
counters(struct ina_store *st)
{
    struct ina_stat s;

    if (ina_store_stat(st, &s) != 0)
        bail("stat failed");
    return s.counters;
}

int
main(void)
{
    struct ina_conf *conf;
    struct ina_store *st;
    uint64_t removed, sum;
    int i;

    plan_lazy();
    /* Two monitors of one width share counters; the longer history
     * decides what is kept. */
    /* Every record is its own transaction here, so that each expiry
     * happens where the test expects it; t/22-batch.c covers buffering. */
    conf = test_conf("store", "flush_delay = 0\n"
                              "monitors = {\"10,2\", \"10,4\", \"60,1\"}\n"
                              "ipv4_prefixes = {32, 24}\n"
                              "ipv6_prefixes = {128}\n");
    st = test_open(conf);
    ina_store_set_clock(st, test_clock, &now);

    /* Rollover at the window boundary, not before. */
    rec(st, "192.0.2.1", 1);
    now = T0 + 9;
    rec(st, "192.0.2.1", 2);
    is_uint(3, q(st, "10,2", "192.0.2.1", 0, 0),
            "3 in window 0 at the last second of the window");
    now = T0 + 10;
    is_uint(0, q(st, "10,2", "192.0.2.1", 0, 0),
            "0 in window 0 once the clock crosses the boundary");
    is_uint(3, q(st, "10,2", "192.0.2.1", 1, 1),
            "3 moved to window 1");
    rec(st, "192.0.2.1", 4);
    now = T0 + 25;
    rec(st, "192.0.2.1", 8);
    /* Windows of "10,*" now: 0 = [T0+20, T0+30) 8; 1 = [T0+10, 20) 4;
     * 2 = [T0, 10) 3. */
    is_uint(8, q(st, "10,2", "192.0.2.0/24", 0, 0), "window 0 holds 8");
    is_uint(4, q(st, "10,2", "192.0.2.0/24", 1, 1), "window 1 holds 4");
    is_uint(3, q(st, "10,2", "192.0.2.0/24", 2, 2), "window 2 holds 3");
    is_uint(12, q(st, "10,2", "192.0.2.1", 0, 1), "0..1 sums 12");
    is_uint(7, q(st, "10,2", "192.0.2.1", 1, 2), "1..2 sums 7");
    is_uint(15, q(st, "10,4", "192.0.2.1", 0, 4),
            "0..4 of the longer monitor sums all 15");
    is_uint(15, q(st, "60,1", "192.0.2.1", 0, 0),
            "the 60 s window holds all 15");
    is_uint(0, q(st, "60,1", "192.0.2.1", 1, 1),
            "and its window 1 is empty");

    /* Expiry: width 10 keeps 4 completed windows.  At T0+50 the window
     * of T0 is 5 back and goes; T0+10 (4 back) stays. */
    now = T0 + 50;
    is_int(0, ina_expire(st, &removed), "expire");
    is_uint(2, removed,
            "2 counters expired: the /32 and /24 of the oldest window");
    is_uint(4, q(st, "10,4", "192.0.2.1", 4, 4),
            "window 4 (T0+10) is still there");
    is_uint(12, q(st, "10,4", "192.0.2.1", 0, 4),
            "0..4 now sums 12");
    is_int(0, ina_expire(st, &removed), "expire again");
    is_uint(0, removed, "nothing more to expire");

    /* Recording expires by itself as windows roll. */
    now = T0 + 3600 + 120;
    rec(st, "192.0.2.9", 1);
    /* Left: width 10 current window (2 keys); width 60: current (2) and
     * the window one back is empty; T0's 60 s window is 62 back, gone. */
    is_uint(4, counters(st),
            "after a record an hour later only current windows remain");

    /* A clock step back leaves counts "in the future"; they must never be
     * credited to a window when time catches up. */
    now = T0 + 7200;
    rec(st, "198.51.100.1", 5);
    now = T0 + 3600;
    rec(st, "198.51.100.1", 1);
    is_uint(1, q(st, "10,4", "198.51.100.1", 0, 4),
            "after the step back only the new count shows");
    now = T0 + 7200;
    is_uint(0, q(st, "10,4", "198.51.100.1", 0, 0),
            "the future window was expired by the record after the step");
    now = T0 + 3600;

    /* The clock jumps forward a day: nothing of the old day is counted
     * as recent, and the old windows go at the first record. */
    now = T0 + 3600;
    rec(st, "203.0.113.1", 7);
    now = T0 + 3600 + 86400;
    is_uint(0, q(st, "10,4", "203.0.113.1", 0, 4),
            "a day later the old counts are in no retained window");
    is_uint(0, q(st, "60,1", "203.0.113.1", 0, 1),
            "nor in the 60 s monitor's");
    rec(st, "203.0.113.1", 1);
    is_uint(1, q(st, "60,1", "203.0.113.1", 0, 1),
            "a record after the jump counts 1");
    is_uint(4, counters(st),
            "and the old day's counters were expired by it");

    /* Many windows of many keys: expiry crosses pages and chunks and
     * stays exact. */
    now = T0 + 100000;
    for (i = 0; i < 3000; i++) {
        char a[32];

        snprintf(a, sizeof(a), "10.%d.%d.1", i / 256, i % 256);
        rec(st, a, 1);
    }
    sum = q(st, "10,4", "10.0.0.0/8", 0, 0);
    if (sum == 3000) {
        /* Distinct /24s: 3000 /32 + 3000 /24 keys in width 10, and the
         * same in width 60. */
        ok(1, "3000 sources recorded in one window");
    } else {
        ok(0, "3000 sources recorded in one window (saw %llu)",
           (unsigned long long) sum);
    }
    now = T0 + 100000 + 600;
    is_int(0, ina_expire(st, &removed), "expire 12000 counters at once");
    is_uint(12000, removed,
            "exactly the 12000 counters of the old windows go");
    is_uint(0, counters(st), "the store is empty");
    is_uint(0, q(st, "10,4", "10.0.0.0/8", 0, 4), "and reads 0");

    /* Before the epoch the store refuses to count rather than wrap. */
    now = -5;
    {
        struct ina_cidr c = test_addr("192.0.2.1");

        is_int(INA_ECLOCK, ina_record(st, INA_CONNECTION, &c, 1),
               "a clock before 1970 is INA_ECLOCK");
    }
    ina_store_close(st);
    ina_conf_free(conf);
    return 0;
}
