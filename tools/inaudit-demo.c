/* inaudit-demo.c - fill a store with a realistic inbound mix and report
 *
 * The live demo of inbound-audit: several forked workers, each opening
 * the store after fork as MTA workers do, play a synthetic inbound
 * stream into one store made with the built-in sample configuration.
 * Thousands of IPv4 and IPv6 sources connect with a heavy-tailed
 * (Zipf-like) popularity; a few abusive /24s and /48s burst.  Every
 * connection opens a session, then delivers (a reception) or is turned
 * away (a rejection), then closes.  The parent then prints, for every
 * monitor, the top blocks and a few point queries, and the cost of one
 * record and one query as measured on this store.
 *
 * The store and a configuration file naming it are left in DIR (a new
 * temporary directory unless -d is given), so that the policy host and
 * auditctl can be run on them afterwards; tools/demo.sh does that.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "inaudit.h"

/* Sources of the synthetic mix. */
#define DEMO_V4_SOURCES 4000
#define DEMO_V6_SOURCES 1000

/* The abusive blocks: documentation ranges, so no real network is
 * named. */
static const char *const demo_abusers[] = {
    "203.0.113.", "198.51.100.", "2001:db8:bad:", NULL
};

static void usage(void) __attribute__((__noreturn__));

/* usage - print the synopsis and exit 2 */

static void
usage(void)
{
    fprintf(stderr,
            "usage: inaudit-demo [-w WORKERS] [-n EVENTS] [-d DIR]\n"
            "  -w WORKERS  forked workers (default 4)\n"
            "  -n EVENTS   connections per worker (default 20000)\n"
            "  -d DIR      directory for the store and its configuration\n"
            "              (default: a new temporary directory)\n");
    exit(2);
}

/* demo_now_ns - a monotonic clock for timings */

static uint64_t
demo_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* demo_rand - a small xorshift generator, one state per worker */

static uint64_t
demo_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* demo_zipf - a source index with popularity ~ 1/rank
 *
 * Inverse transform of the continuous 1/x density over 1..n: cheap,
 * and heavy-tailed like real inbound traffic. */

static unsigned
demo_zipf(uint64_t *s, unsigned n)
{
    double u = (double) (demo_rand(s) >> 11) / 9007199254740992.0;
    double x = exp(u * log((double) n));

    return (unsigned) x - 1;
}

/* demo_source - the text of source i of the mix */

static void
demo_source(uint64_t *s, char *buf, size_t len)
{
    unsigned r = (unsigned) (demo_rand(s) % 100), i;

    if (r < 12) {
        /* A burst from an abusive block. */
        i = (unsigned) (demo_rand(s) % 3);
        if (i < 2)
            snprintf(buf, len, "%s%u", demo_abusers[i],
                     (unsigned) (demo_rand(s) % 254 + 1));
        else
            snprintf(buf, len, "%s%x::%x", demo_abusers[i],
                     (unsigned) (demo_rand(s) % 16),
                     (unsigned) (demo_rand(s) % 65535 + 1));
    } else if (r < 82) {
        i = demo_zipf(s, DEMO_V4_SOURCES);
        /* Spread the sources over many /16s and /24s. */
        snprintf(buf, len, "%u.%u.%u.%u", 11 + i % 180, (i * 7) % 256,
                 (i / 7) % 256, 1 + i % 250);
    } else {
        i = demo_zipf(s, DEMO_V6_SOURCES);
        snprintf(buf, len, "2001:db8:%x:%x::%x", 0x100 + i % 97, i % 13,
                 1 + i);
    }
}

/* demo_worker - one MTA worker: sessions with their outcomes */

static int
demo_worker(const struct ina_conf *conf, int id, long events)
{
    struct ina_store *st;
    struct ina_cidr peer;
    char addr[64], errbuf[512];
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t) (id + 1);
    long i;
    int rc;

    /* Each worker opens the store after fork, as MTA workers do. */
    if ((rc = ina_store_open(conf, 0, &st, errbuf, sizeof(errbuf))) != 0) {
        warnx("worker %d: %s", id, errbuf);
        return 1;
    }
    for (i = 0; i < events; i++) {
        demo_source(&seed, addr, sizeof(addr));
        if (ina_cidr_parse(addr, strlen(addr), &peer, errbuf,
                           sizeof(errbuf)) != 0) {
            warnx("worker %d: %s", id, errbuf);
            return 1;
        }
        if ((rc = ina_record(st, INA_CONNECTION, &peer, 1)) != 0
            || (rc = ina_session_open(st, &peer, NULL)) != 0
            || (rc = ina_record(st, demo_rand(&seed) % 4 == 0
                                        ? INA_REJECTION : INA_RECEPTION,
                                &peer, 1)) != 0
            || (rc = ina_session_close(st, &peer, NULL)) != 0) {
            warnx("worker %d: %s: %s", id, addr, ina_strerror(rc));
            return 1;
        }
    }
    ina_store_close(st);
    return 0;
}

/* demo_top - print the top blocks of one monitor and family */

static void
demo_top(struct ina_store *st, const char *mon, int family, unsigned plen)
{
    struct ina_top_entry top[5];
    char buf[INA_CIDR_STRLEN], errbuf[256];
    uint64_t total;
    size_t n, i;

    if (ina_top(st, INA_CONNECTION, mon, family, plen, 0, 0, top, 5, &n,
                &total, errbuf, sizeof(errbuf)) != 0) {
        printf("    top: %s\n", errbuf);
        return;
    }
    for (i = 0; i < n; i++)
        printf("    %-24s %8" PRIu64 "  %5.1f%%\n",
               ina_cidr_format(&top[i].prefix, buf, sizeof(buf)),
               top[i].count,
               total ? 100.0 * (double) top[i].count / (double) total : 0.0);
}

/* demo_point - print one point query */

static void
demo_point(struct ina_store *st, enum ina_event ev, const char *mon,
           const char *cidr, uint32_t a, uint32_t b)
{
    struct ina_cidr c;
    char errbuf[256];
    uint64_t n;

    if (ina_cidr_parse(cidr, strlen(cidr), &c, errbuf, sizeof(errbuf)) != 0
        || ina_query(st, ev, mon, &c, a, b, 0, &n, errbuf,
                     sizeof(errbuf)) != 0) {
        printf("  %s: %s\n", cidr, errbuf);
        return;
    }
    printf("  %-12s %-8s %-22s windows %u..%u: %" PRIu64 "\n",
           ina_event_name(ev), mon, cidr, a, b, n);
}

/* demo_timing - the cost of one record and one point query, here */

static void
demo_timing(struct ina_store *st)
{
    struct ina_cidr c, b;
    uint64_t t0, n;
    char errbuf[256];
    int i, records = 20000, queries = 200000;

    if (ina_cidr_parse("192.0.2.10", 10, &c, NULL, 0) != 0
        || ina_cidr_parse("192.0.2.0/24", 12, &b, NULL, 0) != 0)
        return;
    t0 = demo_now_ns();
    for (i = 0; i < records; i++)
        if (ina_record(st, INA_CONNECTION, &c, 1) != 0)
            return;
    printf("  record (one process):      %6.0f ns\n",
           (double) (demo_now_ns() - t0) / records);
    t0 = demo_now_ns();
    for (i = 0; i < queries; i++)
        if (ina_query(st, INA_CONNECTION, "60,10", &c, 0, 0, 0, &n, errbuf,
                      sizeof(errbuf)) != 0)
            return;
    printf("  point query /32:           %6.0f ns\n",
           (double) (demo_now_ns() - t0) / queries);
    t0 = demo_now_ns();
    for (i = 0; i < queries; i++)
        if (ina_query(st, INA_CONNECTION, "60,10", &b, 0, 9, 0, &n, errbuf,
                      sizeof(errbuf)) != 0)
            return;
    printf("  /24 over windows 0..9:     %6.0f ns\n",
           (double) (demo_now_ns() - t0) / queries);
    /* One source in each of the 256 /16s of 10.0.0.0/8. */
    for (i = 0; i < 256; i++) {
        char a[32];
        struct ina_cidr h;

        snprintf(a, sizeof(a), "10.%d.0.1", i);
        if (ina_cidr_parse(a, strlen(a), &h, NULL, 0) != 0
            || ina_record(st, INA_CONNECTION, &h, 1) != 0)
            return;
    }
    if (ina_flush(st) != 0
        || ina_cidr_parse("10.0.0.0/8", 10, &b, NULL, 0) != 0)
        return;
    t0 = demo_now_ns();
    for (i = 0; i < 2000; i++)
        if (ina_query(st, INA_CONNECTION, "60,10", &b, 0, 0, 0, &n, errbuf,
                      sizeof(errbuf)) != 0)
            return;
    printf("  /8 summing 256 /16s:      %6.0f ns\n",
           (double) (demo_now_ns() - t0) / 2000);
}

int
main(int argc, char **argv)
{
    struct ina_conf *conf;
    struct ina_store *st;
    struct ina_stat s;
    char errbuf[512], dir[4096], store[4200], cpath[4200];
    const char *dirarg = NULL;
    long events = 20000;
    int workers = 4, ch, i, status, failed = 0;
    pid_t *pids;
    uint64_t t0, dt;
    FILE *fp;
    size_t m;

    while ((ch = getopt(argc, argv, "w:n:d:h")) != -1) {
        switch (ch) {
        case 'w':
            workers = atoi(optarg);
            if (workers < 1 || workers > 256)
                usage();
            break;
        case 'n':
            events = atol(optarg);
            if (events < 1)
                usage();
            break;
        case 'd':
            dirarg = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    if (dirarg == NULL) {
        const char *tmp = getenv("TMPDIR");

        snprintf(dir, sizeof(dir), "%s/inbound-audit-demo.XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(dir) == NULL)
            err(1, "mkdtemp %s", dir);
    } else {
        if (realpath(dirarg, dir) == NULL)
            err(1, "%s", dirarg);
    }
    snprintf(store, sizeof(store), "%s/store", dir);
    snprintf(cpath, sizeof(cpath), "%s/inbound_audit.conf", dir);

    /* The built-in sample configuration, with the store moved here; the
     * same text goes to a file for the tools run after the demo. */
    if (ina_conf_parse_text(ina_conf_default_text(), "(builtin)", &conf,
                            errbuf, sizeof(errbuf)) != 0)
        errx(1, "built-in configuration: %s", errbuf);
    if (ina_conf_set_store(conf, store) != 0)
        errx(1, "%s: cannot set the store", store);
    if ((fp = fopen(cpath, "w")) == NULL)
        err(1, "%s", cpath);
    fprintf(fp, "# Written by inaudit-demo: the built-in sample "
                "configuration.\ninbound_audit {\n  store = \"%s\"\n"
                "  map_size = \"1G\"\n  monitors = {", store);
    for (m = 0; m < conf->nmonitors; m++)
        fprintf(fp, "%s\"%s\"", m ? ", " : "", conf->monitors[m].name);
    fprintf(fp, ", \"60,1\"}\n  ipv4_prefixes = {");
    for (m = 0; m < conf->nprefixes4; m++)
        fprintf(fp, "%s%u", m ? ", " : "", conf->prefixes4[m]);
    fprintf(fp, "}\n  ipv6_prefixes = {");
    for (m = 0; m < conf->nprefixes6; m++)
        fprintf(fp, "%s%u", m ? ", " : "", conf->prefixes6[m]);
    fprintf(fp, "}\n}\n");
    if (fclose(fp) != 0)
        err(1, "%s", cpath);
    /* The demo's policies ask for "60,1" (the reference page's example);
     * use the file, which has it, from here on. */
    ina_conf_free(conf);
    if (ina_conf_load(cpath, &conf, errbuf, sizeof(errbuf)) != 0)
        errx(1, "%s", errbuf);

    printf("inbound-audit demo: %d workers x %ld connections into %s\n",
           workers, events, store);
    if ((pids = calloc((size_t) workers, sizeof(*pids))) == NULL)
        err(1, "calloc");
    t0 = demo_now_ns();
    for (i = 0; i < workers; i++) {
        if ((pids[i] = fork()) < 0)
            err(1, "fork");
        if (pids[i] == 0)
            _exit(demo_worker(conf, i, events));
    }
    for (i = 0; i < workers; i++) {
        if (waitpid(pids[i], &status, 0) < 0)
            err(1, "waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    dt = demo_now_ns() - t0;
    free(pids);
    if (failed)
        errx(1, "%d worker(s) failed", failed);
    printf("%ld sessions (%ld events) in %.2f s: %.0f events/s over %d "
           "processes\n\n", events * workers, events * workers * 4,
           (double) dt / 1e9, (double) (events * workers * 4) * 1e9
           / (double) dt, workers);

    if (ina_store_open(conf, 0, &st, errbuf, sizeof(errbuf)) != 0)
        errx(1, "%s", errbuf);
    /* The shortest and the longest monitor of the sample. */
    for (m = 0; m < conf->nmonitors; m += conf->nmonitors > 2 ? 2 : 1) {
        printf("monitor %s: top IPv4 /24 by connections, window 0\n",
               conf->monitors[m].name);
        demo_top(st, conf->monitors[m].name, 4, 24);
        printf("monitor %s: top IPv6 /48 by connections, window 0\n",
               conf->monitors[m].name);
        demo_top(st, conf->monitors[m].name, 6, 48);
    }
    printf("\npoint queries:\n");
    demo_point(st, INA_CONNECTION, "60,10", "203.0.113.0/24", 0, 0);
    demo_point(st, INA_REJECTION, "60,10", "203.0.113.0/24", 0, 1);
    demo_point(st, INA_CONNECTION, "300,12", "198.51.100.7", 0, 0);
    demo_point(st, INA_CONNECTION, "3600,24", "[2001:db8:bad::]/48", 0, 0);
    demo_point(st, INA_RECEPTION, "3600,24", "0.0.0.0/0", 0, 0);
    demo_point(st, INA_RECEPTION, "3600,24", "::/0", 0, 0);
    printf("\ncost of one call, one process (a scratch store beside it):\n");
    {
        struct ina_store *scratch;
        char sdir[4300];

        /* The timing loops record thousands of events: into a store of
         * their own, so the demo's counts stay those of the mix. */
        snprintf(sdir, sizeof(sdir), "%s/scratch", dir);
        if (ina_conf_set_store(conf, sdir) != 0
            || ina_store_open(conf, 0, &scratch, errbuf,
                              sizeof(errbuf)) != 0)
            errx(1, "scratch store %s: %s", sdir, errbuf);
        demo_timing(scratch);
        ina_store_close(scratch);
        if (ina_conf_set_store(conf, store) != 0)
            errx(1, "%s: cannot set the store", store);
    }
    if (ina_store_stat(st, &s) == 0)
        printf("\nstore: %" PRIu64 " counters, %.1f MiB of data in a "
               "%.0f MiB map\n", s.counters,
               (double) s.map_used / 1048576.0,
               (double) s.map_size / 1048576.0);
    ina_store_close(st);
    ina_conf_free(conf);
    printf("config: %s\n", cpath);
    return 0;
}
