/* inaudit-cluster-probe.c - measure the cluster sync: staleness, record cost
 *
 * Usage: inaudit-cluster-probe lat CONF_A CONF_B SAMPLES [GAP_MS]
 *        inaudit-cluster-probe load CONF RATE SECONDS [SOURCES]
 *
 * lat: records one connection from a fresh address on node A (CONF_A),
 * flushes it, and polls node B's cluster-wide count of that address
 * every 200 us until it shows, SAMPLES times, pausing a random 0 ..
 * GAP_MS (default 200) between samples so that the records fall at
 * every phase of the agents' intervals.  Prints the staleness (record
 * call to visibility on B) as min, p50, p90, p99 and max in ms.
 *
 * load: records RATE events a second for SECONDS on one store, open
 * loop (event i is due at i / RATE; a late call does not shift the
 * others), from SOURCES addresses (default 20000) of 100.64.0.0/10
 * drawn at random, each a connection followed by a reception or a
 * rejection.  Times every call, and prints the achieved rate and the
 * record call's p50, p99, p99.9 and max in microseconds: the record
 * path's cost, to compare with and without a sync agent running.
 *
 * Both run on the library of the build tree; tools/cluster-staleness.sh
 * drives them.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "inaudit.h"

/* now_ns - the monotonic clock */

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* sleep_ns - sleep that long */

static void
sleep_ns(uint64_t ns)
{
    struct timespec ts;

    ts.tv_sec = (time_t) (ns / 1000000000u);
    ts.tv_nsec = (long) (ns % 1000000000u);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* open_conf - load a configuration and open its store; exits on error */

static struct ina_store *
open_conf(const char *path, unsigned flags)
{
    struct ina_conf *conf;
    struct ina_store *st;
    char msg[1024];

    if (ina_conf_load(path, &conf, msg, sizeof(msg)) != 0
        || ina_store_open(conf, flags, &st, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "inaudit-cluster-probe: %s\n", msg);
        exit(1);
    }
    ina_conf_free(conf);
    ina_store_set_log(st, NULL, NULL);
    return st;
}

/* cmp_u64 - order for qsort */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}

/* pct - the p-th percentile of sorted v[0 .. n-1] */

static uint64_t
pct(const uint64_t *v, size_t n, double p)
{
    double r = ceil(p / 100.0 * (double) n);
    size_t i = (size_t) r;

    if (n == 0)
        return 0;
    return v[i == 0 ? 0 : i - 1 < n ? i - 1 : n - 1];
}

/* host - address number k of 100.64.0.0/10 */

static struct ina_cidr
host(uint32_t k)
{
    struct ina_cidr c;
    uint32_t a = 0x64400000u | (k & 0x3fffffu);

    memset(&c, 0, sizeof(c));
    c.family = 4;
    c.plen = 32;
    c.addr[0] = (uint8_t) (a >> 24);
    c.addr[1] = (uint8_t) (a >> 16);
    c.addr[2] = (uint8_t) (a >> 8);
    c.addr[3] = (uint8_t) a;
    return c;
}

/* cluster_count - B's cluster-wide connections of a host, windows 0..1 */

static uint64_t
cluster_count(struct ina_store *b, const struct ina_cidr *c)
{
    char msg[512];
    uint64_t n;

    if (ina_query(b, INA_CONNECTION, "60,10", c, 0, 1, INA_QUERY_CLUSTER, &n,
                  msg, sizeof(msg)) != 0) {
        fprintf(stderr, "inaudit-cluster-probe: %s\n", msg);
        exit(1);
    }
    return n;
}

/* cmd_lat - staleness from a record on A to its sight on B */

static int
cmd_lat(const char *conf_a, const char *conf_b, long samples, long gap_ms)
{
    struct ina_store *a = open_conf(conf_a, 0);
    struct ina_store *b = open_conf(conf_b, INA_STORE_RDONLY);
    uint64_t *lat, t0, before, p50, p90, p99;
    struct ina_cidr c;
    long i, lost = 0;
    uint32_t base;

    if ((lat = calloc((size_t) samples, sizeof(*lat))) == NULL)
        return 1;
    srandom((unsigned) getpid());
    base = (uint32_t) random();
    for (i = 0; i < samples; i++) {
        c = host(base + (uint32_t) i);
        before = cluster_count(b, &c);
        t0 = now_ns();
        if (ina_record(a, INA_CONNECTION, &c, 1) != 0 || ina_flush(a) != 0) {
            fprintf(stderr, "inaudit-cluster-probe: record failed\n");
            return 1;
        }
        while (cluster_count(b, &c) == before) {
            if (now_ns() - t0 > 10000000000u) {
                lost++;
                break;
            }
            sleep_ns(200000);
        }
        lat[i] = now_ns() - t0;
        if (gap_ms > 0)
            sleep_ns((uint64_t) (random() % gap_ms) * 1000000u);
    }
    qsort(lat, (size_t) samples, sizeof(*lat), cmp_u64);
    p50 = pct(lat, (size_t) samples, 50);
    p90 = pct(lat, (size_t) samples, 90);
    p99 = pct(lat, (size_t) samples, 99);
    printf("staleness_ms samples=%ld min=%.1f p50=%.1f p90=%.1f p99=%.1f "
           "max=%.1f timeouts=%ld\n", samples, (double) lat[0] / 1e6,
           (double) p50 / 1e6, (double) p90 / 1e6, (double) p99 / 1e6,
           (double) lat[samples - 1] / 1e6, lost);
    free(lat);
    ina_store_close(a);
    ina_store_close(b);
    return lost > 0;
}

/* cmd_load - record at a fixed rate, timing every call */

static int
cmd_load(const char *conf, long rate, double seconds, long sources)
{
    struct ina_store *st = open_conf(conf, 0);
    uint64_t n = (uint64_t) ((double) rate * seconds), i, t0, due, t, *lat;
    uint64_t p50, p99, p999;
    struct ina_cidr c;
    double took;

    if ((lat = calloc((size_t) n, sizeof(*lat))) == NULL)
        return 1;
    srandom((unsigned) getpid());
    t0 = now_ns();
    for (i = 0; i < n; i++) {
        due = t0 + i * 1000000000u / (uint64_t) rate;
        if ((t = now_ns()) < due)
            sleep_ns(due - t);
        c = host((uint32_t) (random() % sources));
        t = now_ns();
        if (ina_record(st, (i & 1) == 0 ? INA_CONNECTION
                           : (i & 2) ? INA_RECEPTION : INA_REJECTION,
                       &c, 1) != 0) {
            fprintf(stderr, "inaudit-cluster-probe: record failed\n");
            return 1;
        }
        lat[i] = now_ns() - t;
    }
    took = (double) (now_ns() - t0) / 1e9;
    if (ina_flush(st) != 0)
        return 1;
    qsort(lat, (size_t) n, sizeof(*lat), cmp_u64);
    p50 = pct(lat, (size_t) n, 50);
    p99 = pct(lat, (size_t) n, 99);
    p999 = pct(lat, (size_t) n, 99.9);
    printf("record_us events=%llu rate=%.0f/s p50=%.2f p99=%.2f p999=%.1f "
           "max=%.1f\n", (unsigned long long) n, (double) n / took,
           (double) p50 / 1e3, (double) p99 / 1e3, (double) p999 / 1e3,
           (double) lat[n - 1] / 1e3);
    free(lat);
    ina_store_close(st);
    return 0;
}

/* usage - the synopsis; exits 2 */

static void __attribute__((__noreturn__))
usage(void)
{
    fprintf(stderr,
            "usage: inaudit-cluster-probe lat CONF_A CONF_B SAMPLES "
            "[GAP_MS]\n"
            "       inaudit-cluster-probe load CONF RATE SECONDS "
            "[SOURCES]\n");
    exit(2);
}

/* main - dispatch on the mode */

int
main(int argc, char **argv)
{
    if (argc >= 5 && strcmp(argv[1], "lat") == 0 && argc <= 6)
        return cmd_lat(argv[2], argv[3], atol(argv[4]) > 0 ? atol(argv[4])
                                                           : 100,
                       argc == 6 ? atol(argv[5]) : 200);
    if (argc >= 5 && strcmp(argv[1], "load") == 0 && argc <= 6
        && atol(argv[3]) > 0 && atof(argv[4]) > 0)
        return cmd_load(argv[2], atol(argv[3]), atof(argv[4]),
                        argc == 6 && atol(argv[5]) > 0 ? atol(argv[5])
                                                       : 20000);
    usage();
}
