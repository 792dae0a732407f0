/* inaudit-bench.c - the benchmark: inbound-audit, Redis and a shared-memory floor
 *
 * K forked workers (default 8) play pre-generated event streams into one
 * store made with the sample configuration (monitors 60,10 300,12
 * 3600,24; IPv4 /32 /24 /16; IPv6 /128 /64 /48), and, in the same run,
 * with the same keys and the same workers, into two peers:
 *
 *   - Redis as a central counter server (redis-server started here on a
 *     free loopback port; hiredis; per event one pipelined round trip of
 *     one HINCRBY per counter inbound-audit updates, hash key = the
 *     counter key's bytes, field = the event name);
 *   - the hardware floor: one MAP_SHARED anonymous open-addressing table,
 *     made before fork, of 64-byte slots holding the same key bytes and
 *     three uint64 counters, inserted with a CAS on the slot's tag and
 *     counted with __atomic_fetch_add; no persistence, no snapshots.
 *
 * Workloads (-w): realistic (Zipf s=1.1 over 1M IPv4 + 200k IPv6 sources,
 * each connection followed by a reception or a rejection), adversarial
 * (every event from a fresh uniformly random IPv4 or IPv6 source), policy
 * (the realistic stream through the Lua module as the policy host drives
 * it: set the peer, record the connection, run the seed example's three
 * msys.audit queries, record the outcome), query (point queries from C
 * and from Lua, and a /16 query summing /24 counters, in one process) and
 * scale (record and query cost, store bytes and RSS per address at 10k,
 * 100k, 1M and 10M tracked addresses, and the same lookups in a floor
 * table holding the same keys: how much of the growth is the memory's).
 *
 * Every stream is generated before the clock starts; all workers wait on
 * one barrier and run until their stream ends or the run's duration (-t)
 * is up.  One call in 64 is timed with CLOCK_MONOTONIC for the latency
 * percentiles.  After each inbound-audit run the store's totals are
 * checked against the events the workers recorded: a benchmark that loses
 * counts measures nothing.
 *
 * msys.audit is linked in (lua/libmsysaudit.la) and preloaded, as the
 * policy host does, rather than loaded from package.cpath: a second copy
 * of the library in one process would open the LMDB environment twice,
 * which LMDB forbids.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* hiredis's sds.h trips -Wconversion (make warnings): silence that flag
 * for its headers only. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#include <hiredis.h>
#pragma GCC diagnostic pop
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "inaudit.h"
#include "internal.h"
#include "msys_audit.h"

/* Defaults of the options, and their quick (CI) values. */
#define DEF_WORKERS 8
#define MAX_WORKERS 64
#define DEF_EVENTS 250000          /* stream length per worker */
#define DEF_DURATION 5.0           /* seconds per timed run, at most */
#define DEF_REDIS_EVENTS 20000     /* Redis events per worker, at most */
#define DEF_QUERIES 200000         /* calls per query figure */
#define DEF_SCALE "10k,100k,1M,10M"
#define DEF_SCALE_BUDGET 60.0      /* seconds of fill allowed per point */
#define DEF_SEED 1
#define QUICK_EVENTS 4000
#define QUICK_DURATION 0.5
#define QUICK_REDIS_EVENTS 500
#define QUICK_QUERIES 5000
#define QUICK_SCALE "10k"
#define QUICK_SCALE_BUDGET 10.0
#define MAX_SCALE 8

/* The workloads of -w. */
#define WL_REALISTIC 0x01
#define WL_ADVERSARIAL 0x02
#define WL_POLICY 0x04
#define WL_QUERY 0x08
#define WL_SCALE 0x10
#define WL_ALL 0x1f

/* The systems measured. */
enum bench_peer { PEER_INA, PEER_REDIS, PEER_FLOOR, NPEERS };
static const char *const peer_names[NPEERS] = {
    "inbound-audit", "redis", "floor"
};

/* The sources of the realistic stream, and its Zipf exponent. */
#define V4_SOURCES 1000000u
#define V6_SOURCES 200000u
#define NSOURCES (V4_SOURCES + V6_SOURCES)
#define ZIPF_S 1.1
/* A prime, so rank -> source number is a permutation of NSOURCES. */
#define RANK_STRIDE 1000003ull

/* The bench configuration: the sample's monitors and granularities, and
 * a map sized for what a store will hold (writers reserve the whole map
 * on disk): BENCH_MAP_BASE plus BENCH_MAP_PER_ADDR per address or event. */
#define BENCH_MAP_BASE (256ull << 20)
#define BENCH_MAP_PER_ADDR 1024ull
#define BENCH_MONITOR "60,10"
#define BENCH_PREFIXES4 "32, 24, 16"
#define BENCH_AGG_PREFIXES4 "32, 24"

/* One call in SAMPLE_EVERY is timed (a power of two). */
#define SAMPLE_EVERY 64
/* Counter keys: as lib/internal.h lays them out (width u32 BE, window
 * u32 BE, family, mask length, address), padded with zeros to KEYLEN. */
#define KEY_HDR 10
#define KEYLEN 32
#define MAX_KEYS (INA_MAX_MONITORS * INA_MAX_PREFIXES)
#define TEXTLEN 48
#define ERRLEN 512

/* One pre-generated event. */
struct bench_ev {
    struct ina_cidr addr;       /* the source, as ina_cidr_parse makes it */
    uint8_t ev;                 /* enum ina_event */
    uint32_t src;               /* source number (realistic streams) */
};

/* The event streams of one workload, one slice per worker. */
struct bench_stream {
    int workers;
    size_t n;                   /* events per worker */
    struct bench_ev *ev;        /* workers * n */
    char (*text)[TEXTLEN];      /* the sources as text (policy), or NULL */
    size_t sources;             /* distinct sources in the whole stream */
};

/* A Zipf distribution over ranks 0 .. n-1, as a cumulative table. */
struct bench_zipf {
    size_t n;
    double *cdf;
};

/* The keys an event updates: what the configuration makes the library
 * update, rebuilt here for the peers. */
struct bench_plan {
    size_t nwidths;
    uint32_t widths[INA_MAX_MONITORS];
    size_t np4, np6;
    uint8_t p4[INA_MAX_PREFIXES], p6[INA_MAX_PREFIXES];
    size_t qwidth;              /* index of BENCH_MONITOR's width */
};

struct bench_keys {
    size_t n;
    size_t q;                   /* index of the BENCH_MONITOR host key */
    uint8_t len[MAX_KEYS];
    uint8_t key[MAX_KEYS][KEYLEN];
};

/* The floor: a shared open-addressing table.  tag 0 is empty, 1 is being
 * written, anything else is the published key's hash tag. */
struct floor_slot {
    uint32_t tag;
    uint32_t pad;
    uint8_t key[KEYLEN];
    uint64_t count[INA_NEVENTS];
};

struct floor_table {
    struct floor_slot *slot;
    uint64_t mask;
    size_t bytes;
};

/* What one worker reports, in shared memory. */
struct bench_wres {
    int ok;
    uint64_t t_start, t_end;
    uint64_t events;            /* records */
    uint64_t conns;             /* policy: connections */
    uint64_t queries;           /* query calls (policy: one per connection) */
    uint64_t by_ev[INA_NEVENTS];
    uint64_t inserts;           /* floor: slots this worker created */
    size_t nrs, nqs;            /* latency samples taken */
    uint64_t rss0_kb, rss1_kb;
};

/* Visibility probes (realistic, inbound-audit): worker 0 records one
 * connection from a fresh probe address every PROBE_EVERY events and
 * publishes it here; a reader process of its own, one that records
 * nothing (a policy daemon's place), queries it until it sees it and
 * keeps how long that took.  A worker polling between its own records
 * would time its own records' waits for a flush as well. */
#define PROBE_EVERY 1024
#define PROBE_POLL_NS 20000         /* the reader's pause between queries */
#define PROBE_GRACE_NS 2000000000ull /* it stops this long after the run */
#define MAX_PROBES 4096
/* In the paced run a process of its own opens and closes a session every
 * SESSION_EVERY_NS and times both calls: buffered, they must not wait
 * behind the flushes (with -F 0 each is a write transaction, and waits
 * for the writer lock). */
#define SESSION_EVERY_NS 1000000
#define MAX_SESSIONS 16384
struct bench_probe {
    uint64_t seq;                   /* probes published (release) */
    uint64_t seen;                  /* probes seen by the reader */
    uint64_t done;                  /* worker 0 has stopped recording */
    uint64_t t_ns;                  /* when probe seq was recorded */
    struct ina_cidr addr;
    size_t nfirst;                  /* seen by the first query made */
    size_t nlag;
    uint64_t lag[MAX_PROBES];       /* ns from record to visible */
    int sessions;                   /* time sessions too (set before) */
    size_t nsess;
    uint64_t sopen[MAX_SESSIONS];   /* ns of ina_session_open */
    uint64_t sclose[MAX_SESSIONS];  /* ns of ina_session_close */
};

/* A timed run of K workers. */
struct bench_job {
    struct bench *b;
    int workload;               /* WL_* */
    enum bench_peer peer;
    const struct bench_stream *s;
    const struct ina_conf *conf;
    const char *conf_path;
    struct floor_table *floor;
    size_t limit;               /* events per worker, at most */
    uint64_t duration_ns;
    uint64_t fill_lo, fill_hi;  /* scale fill: address numbers */
    struct bench_wres *res;     /* shared, one per worker */
    struct bench_probe *probe;  /* shared, or NULL */
    uint64_t pace_ns;           /* 0, or ns per event of each worker */
    uint64_t *rsamp, *qsamp;    /* shared, rcap / qcap per worker */
    size_t rcap, qcap;
    size_t shm_bytes;
    int ready_fd, go_fd;
};

/* The p50, p99 and maximum of some timings, ns (lat_of). */
struct bench_lat {
    uint64_t p50, p99, max;
};

/* The aggregate of a run. */
struct bench_result {
    int ran, ok;
    uint64_t events, conns, queries, inserts;
    uint64_t by_ev[INA_NEVENTS];
    double secs, rate, conn_rate;
    uint64_t rp50, rp99, qp50, qp99;
    size_t nvis;                /* visibility probes seen */
    size_t nvis_first;          /* ... by the first query after them */
    struct bench_lat vis;       /* their delays */
    size_t nsess;               /* sessions the session timer timed */
    struct bench_lat sopen;     /* ina_session_open */
    struct bench_lat sclose;    /* ina_session_close */
    size_t tracked;             /* distinct addresses recorded */
    double bytes;               /* store bytes after the run, or < 0 */
    char note[256];
};

/* The query figures, in shared memory. */
struct bench_qres {
    int ok;
    char why[ERRLEN];
    size_t nc, nl, na;
    double c_mean, l_mean, lloop_mean, a_mean;
    uint64_t c_count, l_count, a_count;
    unsigned a_counters;
};

/* One scale point's figures, in shared memory. */
struct bench_sres {
    int ok;
    char why[ERRLEN];
    uint64_t rp50, rp99, qp50, qp99;
    uint64_t map_used, counters;
    uint64_t file0_kb, file_kb;         /* map pages resident: open, walked */
    uint64_t anon0_kb, anon_kb;         /* private memory: open, the end */
    int floor_ok;                       /* the floor's lookup was timed */
    uint64_t fp50, fp99;                /* its p50 and p99 */
};

/* A named figure, for the summary and --json. */
struct bench_fig {
    char name[64];
    double value;
};
#define MAX_FIGS 256

struct bench_redis {
    pid_t pid;
    int port;
    char version[32];
    char note[256];             /* why Redis is not measured */
};

struct bench_opts {
    int workers;
    size_t events;
    double duration;
    size_t redis_events;
    size_t queries;
    unsigned workloads;
    uint64_t scale[MAX_SCALE];
    size_t nscale;
    double scale_budget;
    uint64_t seed;
    const char *dir;
    int flush_delay;            /* -1: the sample configuration's */
    int keep, no_redis, quick, json;
};

struct bench {
    struct bench_opts o;
    char dir[PATH_MAX];
    int own_dir;
    pid_t parent;
    pid_t workers[MAX_WORKERS + 2]; /* the running workers, or 0 */
    FILE *out;
    struct ina_conf *conf;      /* the sample configuration */
    struct bench_plan plan;
    struct bench_zipf zipf;
    struct bench_redis redis;
    int64_t t0;                 /* the pinned clock of the scale phase */
    int realistic_done;
    struct bench_result res[3][NPEERS];
    struct bench_qres q;
    int q_ran;
    uint64_t scale_n[MAX_SCALE];
    struct bench_sres scale[MAX_SCALE];
    size_t nscale_done;
    char scale_note[256];
    struct bench_fig figs[MAX_FIGS];
    size_t nfigs;
};

/* The run being cleaned up at exit or on a signal. */
static struct bench *bench_current;

static void usage(void) __attribute__((__noreturn__));
static void say(struct bench *b, const char *fmt, ...) INA_PRINTF(2, 3);
static void fig(struct bench *b, double v, const char *fmt, ...)
    INA_PRINTF(3, 4);

/* usage - print the synopsis and exit 2 */

static void
usage(void)
{
    fprintf(stderr,
            "usage: inaudit-bench [--quick] [-k WORKERS] [-n EVENTS] "
            "[-t SECONDS]\n"
            "                     [-w WORKLOADS] [-S POINTS] [-B SECONDS] "
            "[-R EVENTS]\n"
            "                     [-q QUERIES] [-s SEED] [-F MS] [-d DIR] "
            "[--keep]\n"
            "                     [--no-redis] [--json]\n"
            "  -k, --workers K        forked workers (default %d)\n"
            "  -n, --events N         events generated per worker "
            "(default %d)\n"
            "  -t, --duration S       longest timed run, seconds "
            "(default %.0f)\n"
            "  -w, --workloads LIST   realistic,adversarial,policy,query,"
            "scale or all\n"
            "  -S, --scale LIST       tracked addresses to measure at "
            "(default %s)\n"
            "  -B, --scale-budget S   skip a scale point whose fill would "
            "take longer\n"
            "                         (default %.0f; 0: no limit)\n"
            "  -R, --redis-events N   Redis events per worker, at most "
            "(default %d)\n"
            "  -q, --queries N        calls per query figure (default %d)\n"
            "  -s, --seed SEED        seed of the generated streams "
            "(default %d)\n"
            "  -F, --flush-delay MS   the stores' flush_delay (default: "
            "the sample's)\n"
            "  -d, --dir DIR          make the stores in DIR and keep "
            "them\n"
            "      --keep             keep the temporary directory\n"
            "      --no-redis         do not measure Redis\n"
            "      --quick            a run of a few seconds (CI)\n"
            "      --json             figures as JSON on stdout, tables on "
            "stderr\n"
            "  -V, --version          print the version\n",
            DEF_WORKERS, DEF_EVENTS, DEF_DURATION, DEF_SCALE,
            DEF_SCALE_BUDGET, DEF_REDIS_EVENTS, DEF_QUERIES, DEF_SEED);
    exit(2);
}

/* say - print to the human output */

static void
say(struct bench *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(b->out, fmt, ap);
    va_end(ap);
    fflush(b->out);
}

/* fig - remember a named figure for the summary and --json */

static void
fig(struct bench *b, double v, const char *fmt, ...)
{
    va_list ap;

    if (b->nfigs >= MAX_FIGS)
        return;
    va_start(ap, fmt);
    vsnprintf(b->figs[b->nfigs].name, sizeof(b->figs[0].name), fmt, ap);
    va_end(ap);
    b->figs[b->nfigs++].value = v;
}

/* now_ns - the monotonic clock, for timings */

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* unix_now - the wall clock in seconds, as the library's default clock */

static int64_t
unix_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec;
}

/* fixed_clock - the pinned clock of the scale and aggregate stores */

static int64_t
fixed_clock(void *arg)
{
    return *(const int64_t *) arg;
}

/* rnd - splitmix64, one state per stream */

static uint64_t
rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* rnd_unit - a uniform double in [0, 1) */

static double
rnd_unit(uint64_t *s)
{
    return (double) (rnd(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* mix32 - a bijection of 32-bit values (murmur3's finaliser) */

static uint32_t
mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= x >> 13;
    x *= 0xc2b2ae35u;
    x ^= x >> 16;
    return x;
}

/* mix64 - a bijection of 64-bit values */

static uint64_t
mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* cmp_u64 - qsort order of latencies */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}

/* percentiles - sort v and read its p50 and p99 */

static void
percentiles(uint64_t *v, size_t n, uint64_t *p50, uint64_t *p99)
{
    size_t i99;

    *p50 = *p99 = 0;
    if (n == 0)
        return;
    qsort(v, n, sizeof(*v), cmp_u64);
    i99 = n * 99 / 100;
    *p50 = v[n / 2];
    *p99 = v[i99 < n ? i99 : n - 1];
}

/* lat_of - the p50, p99 and maximum of n timings (sorts v); zeros if
 * there are none */

static void
lat_of(uint64_t *v, size_t n, struct bench_lat *l)
{
    percentiles(v, n, &l->p50, &l->p99);
    l->max = n > 0 ? v[n - 1] : 0;
}

/* fmt_ns - a duration for people: "612 ns", "19.2 us", "1.25 ms" */

static const char *
fmt_ns(char *buf, size_t len, double ns)
{
    if (!(ns > 0))
        snprintf(buf, len, "-");
    else if (ns < 10000)
        snprintf(buf, len, "%.0f ns", ns);
    else if (ns < 10000000)
        snprintf(buf, len, "%.1f us", ns / 1e3);
    else
        snprintf(buf, len, "%.2f ms", ns / 1e6);
    return buf;
}

/* fmt_ratio - "31.2x", or "-" when either side is missing */

static const char *
fmt_ratio(char *buf, size_t len, double r)
{
    if (!(r > 0) || isinf(r))
        snprintf(buf, len, "-");
    else if (r < 10)
        snprintf(buf, len, "%.2fx", r);
    else
        snprintf(buf, len, "%.1fx", r);
    return buf;
}

/* proc_kb - a "Name:  N kB" line of a file of /proc, 0 if none */

static uint64_t
proc_kb(const char *file, const char *name)
{
    char line[256];
    size_t len = strlen(name);
    unsigned long long v = 0;
    FILE *fp;

    if ((fp = fopen(file, "r")) == NULL)
        return 0;
    while (fgets(line, sizeof(line), fp) != NULL)
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            v = strtoull(line + len + 1, NULL, 10);
            break;
        }
    fclose(fp);
    return (uint64_t) v;
}

/* proc_status_kb - a "Name:  N kB" line of /proc/self/status */

static uint64_t
proc_status_kb(const char *name)
{
    return proc_kb("/proc/self/status", name);
}

/* shm_alloc - zeroed memory shared with the workers forked later */

static void *
shm_alloc(size_t bytes, int populate)
{
    void *p;
    int flags = MAP_SHARED | MAP_ANONYMOUS;

#ifdef MAP_POPULATE
    if (populate)
        flags |= MAP_POPULATE;
#else
    (void) populate;
#endif
    p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (p == MAP_FAILED)
        err(1, "mmap of %zu bytes", bytes);
    return p;
}

/* rm_entry - remove one entry of a tree (nftw callback, depth first) */

static int
rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void) sb;
    (void) ftw;
    if (type == FTW_DP)
        return rmdir(path) == 0 ? 0 : -1;
    return unlink(path) == 0 ? 0 : -1;
}

/* rm_tree - remove a directory tree, if it exists */

static void
rm_tree(const char *path)
{
    struct stat sb;

    if (lstat(path, &sb) != 0)
        return;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        warn("cannot remove %s", path);
}

/* ---------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------- */

/* bench_conf - write DIR/NAME.conf for a store DIR/NAME and load it */

static struct ina_conf *
bench_conf(struct bench *b, const char *name, const char *prefixes4,
           uint64_t addrs, char *path, size_t len)
{
    uint64_t map = BENCH_MAP_BASE + BENCH_MAP_PER_ADDR * addrs;
    struct ina_conf *conf;
    char store[PATH_MAX + 64], errbuf[ERRLEN];
    FILE *fp;

    snprintf(store, sizeof(store), "%s/%s", b->dir, name);
    snprintf(path, len, "%s/%s.conf", b->dir, name);
    /* A store left by an earlier run in -d DIR would add its counts. */
    rm_tree(store);
    if ((fp = fopen(path, "w")) == NULL)
        err(1, "%s", path);
    fprintf(fp,
            "# Written by inaudit-bench: the sample configuration, with a "
            "map for %" PRIu64 " addresses.\n"
            "inbound_audit {\n"
            "    store = \"%s\"\n"
            "    map_size = \"%" PRIu64 "K\"\n"
            "    monitors = {\"60,10\", \"300,12\", \"3600,24\"}\n"
            "    ipv4_prefixes = {%s}\n"
            "    ipv6_prefixes = {128, 64, 48}\n", addrs, store, map >> 10,
            prefixes4);
    if (b->o.flush_delay >= 0)
        fprintf(fp, "    flush_delay = %d\n", b->o.flush_delay);
    fprintf(fp, "}\n");
    if (fclose(fp) != 0)
        err(1, "%s", path);
    if (ina_conf_load(path, &conf, errbuf, sizeof(errbuf)) != 0)
        errx(1, "%s", errbuf);
    return conf;
}

/* bench_plan - the keys the library updates per event, from conf */

static void
bench_plan(struct bench_plan *p, const struct ina_conf *conf)
{
    const struct ina_monitor *q;
    size_t i, j;

    memset(p, 0, sizeof(*p));
    for (i = 0; i < conf->nmonitors; i++) {
        for (j = 0; j < p->nwidths; j++)
            if (p->widths[j] == conf->monitors[i].width)
                break;
        if (j == p->nwidths)
            p->widths[p->nwidths++] = conf->monitors[i].width;
    }
    p->np4 = conf->nprefixes4;
    memcpy(p->p4, conf->prefixes4, p->np4);
    p->np6 = conf->nprefixes6;
    memcpy(p->p6, conf->prefixes6, p->np6);
    if (ina_conf_find_monitor(conf, BENCH_MONITOR, &q, NULL, 0) != 0)
        errx(1, "the bench configuration has no monitor %s", BENCH_MONITOR);
    for (j = 0; j < p->nwidths; j++)
        if (p->widths[j] == q->width)
            p->qwidth = j;
}

/* bench_keys - the counter keys of an event at time now */

static void
bench_keys(const struct bench_plan *p, const struct ina_cidr *a, int64_t now,
           struct bench_keys *k)
{
    const uint8_t *pl = a->family == 4 ? p->p4 : p->p6;
    size_t np = a->family == 4 ? p->np4 : p->np6, w, i;
    unsigned alen = a->family == 4 ? 4 : 16, bits, byte;
    uint8_t *key;

    k->n = 0;
    k->q = p->qwidth * np + np - 1;
    for (w = 0; w < p->nwidths; w++) {
        uint32_t win = (uint32_t) (now / (int64_t) p->widths[w]);

        for (i = 0; i < np; i++) {
            key = k->key[k->n];
            memset(key, 0, KEYLEN);
            be_put(key, p->widths[w], 4);
            be_put(key + 4, win, 4);
            key[8] = a->family;
            key[9] = pl[i];
            bits = pl[i];
            for (byte = 0; byte < alen && bits > 0; byte++, bits -= 8) {
                if (bits >= 8) {
                    key[KEY_HDR + byte] = a->addr[byte];
                } else {
                    key[KEY_HDR + byte] = (uint8_t) (a->addr[byte]
                                                     & (0xff00u >> bits));
                    break;
                }
            }
            k->len[k->n++] = (uint8_t) (KEY_HDR + alen);
        }
    }
}

/* ---------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------- */

/* zipf_init - the cumulative table of ranks 1..n with weight r^-s */

static void
zipf_init(struct bench_zipf *z, size_t n, double s)
{
    double sum = 0;
    size_t i;

    if ((z->cdf = malloc(n * sizeof(double))) == NULL)
        err(1, "malloc");
    for (i = 0; i < n; i++) {
        sum += pow((double) (i + 1), -s);
        z->cdf[i] = sum;
    }
    for (i = 0; i < n; i++)
        z->cdf[i] /= sum;
    z->cdf[n - 1] = 1.0;
    z->n = n;
}

/* zipf_draw - a rank, 0 the most popular (inversion by binary search) */

static size_t
zipf_draw(const struct bench_zipf *z, uint64_t *rng)
{
    double u = rnd_unit(rng);
    size_t lo = 0, hi = z->n - 1, mid;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (z->cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* source_of_rank - the realistic source number of a popularity rank */

static uint32_t
source_of_rank(size_t rank, uint64_t seed)
{
    return (uint32_t) (((uint64_t) rank * RANK_STRIDE + seed % NSOURCES)
                       % NSOURCES);
}

/* source_addr - the address of realistic source id
 *
 * Sources below V4_SOURCES are IPv4 addresses spread over the whole
 * space by a bijection (so all are distinct); the others are IPv6 hosts,
 * 16 per /48, one per /64 of it, with distinct interface ids. */

static void
source_addr(uint32_t id, uint64_t seed, struct ina_cidr *a)
{
    uint32_t j;

    memset(a, 0, sizeof(*a));
    if (id < V4_SOURCES) {
        a->family = 4;
        a->plen = 32;
        be_put(a->addr, mix32(id ^ (uint32_t) seed), 4);
    } else {
        j = id - V4_SOURCES;
        a->family = 6;
        a->plen = 128;
        a->addr[0] = 0x20;
        a->addr[1] = 0x01;
        be_put(a->addr + 2, mix32((j >> 4) ^ (uint32_t) seed), 4);
        a->addr[7] = (uint8_t) (j & 15);
        be_put(a->addr + 8, mix64(j ^ seed), 8);
    }
}

/* scale_addr - the IPv4 address of tracked address number i (distinct) */

static void
scale_addr(uint64_t i, struct ina_cidr *a)
{
    memset(a, 0, sizeof(*a));
    a->family = 4;
    a->plen = 32;
    be_put(a->addr, mix32((uint32_t) i ^ 0x5ca1ab1eu), 4);
}

/* addr_text - the text of an address, as a host would have it */

static void
addr_text(const struct ina_cidr *a, char *buf, size_t len)
{
    if (inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->addr, buf,
                  (socklen_t) len) == NULL)
        snprintf(buf, len, "?");
}

/* stream_alloc - room for workers * n events */

static void
stream_alloc(struct bench_stream *s, int workers, size_t n, int text)
{
    size_t total = (size_t) workers * n;

    memset(s, 0, sizeof(*s));
    s->workers = workers;
    s->n = n;
    if ((s->ev = calloc(total, sizeof(*s->ev))) == NULL)
        err(1, "calloc of %zu events", total);
    if (text && (s->text = calloc(total, TEXTLEN)) == NULL)
        err(1, "calloc of %zu texts", total);
}

/* stream_free - release a stream */

static void
stream_free(struct bench_stream *s)
{
    free(s->ev);
    free(s->text);
    memset(s, 0, sizeof(*s));
}

/* gen_realistic - Zipf sources, each connection then its outcome
 *
 * A quarter of the connections are rejected, the others deliver. */

static void
gen_realistic(struct bench *b, struct bench_stream *s, int text)
{
    uint8_t *seen;
    uint64_t rng;
    size_t w, i, n = s->n & ~(size_t) 1;
    struct bench_ev *e;
    struct ina_cidr check;
    uint32_t id;

    if ((seen = calloc(NSOURCES, 1)) == NULL)
        err(1, "calloc");
    for (w = 0; w < (size_t) s->workers; w++) {
        rng = b->o.seed ^ mix64(0x7ea1 + w);
        e = s->ev + w * s->n;
        for (i = 0; i < n; i += 2) {
            id = source_of_rank(zipf_draw(&b->zipf, &rng), b->o.seed);
            if (!seen[id]) {
                seen[id] = 1;
                s->sources++;
            }
            source_addr(id, b->o.seed, &e[i].addr);
            e[i].ev = INA_CONNECTION;
            e[i].src = id;
            e[i + 1] = e[i];
            e[i + 1].ev = (uint8_t) (rnd(&rng) % 4 == 0 ? INA_REJECTION
                                                        : INA_RECEPTION);
            if (text) {
                addr_text(&e[i].addr, s->text[w * s->n + i], TEXTLEN);
                memcpy(s->text[w * s->n + i + 1], s->text[w * s->n + i],
                       TEXTLEN);
            }
        }
    }
    free(seen);
    /* The generated form must be what ina_cidr_parse makes of the text. */
    {
        char buf[TEXTLEN];

        addr_text(&s->ev[0].addr, buf, sizeof(buf));
        if (ina_cidr_parse(buf, strlen(buf), &check, NULL, 0) != 0
            || memcmp(&check, &s->ev[0].addr, sizeof(check)) != 0)
            errx(1, "internal error: generated address %s differs from "
                    "its parsed form", buf);
    }
}

/* gen_adversarial - every event from a fresh random IPv4 or IPv6 source
 *
 * IPv4 sources are a bijection of the event's global number, so none
 * repeats; IPv6 sources are random in 2000::/3 with an interface id that
 * is a bijection of it.  Events alternate connection and rejection. */

static void
gen_adversarial(struct bench *b, struct bench_stream *s)
{
    uint64_t rng, c, r;
    size_t w, i;
    struct bench_ev *e;

    for (w = 0; w < (size_t) s->workers; w++) {
        rng = b->o.seed ^ mix64(0xad5e + w);
        e = s->ev + w * s->n;
        for (i = 0; i < s->n; i++) {
            c = (uint64_t) w * s->n + i;
            r = rnd(&rng);
            memset(&e[i].addr, 0, sizeof(e[i].addr));
            if (r & 1) {
                e[i].addr.family = 4;
                e[i].addr.plen = 32;
                be_put(e[i].addr.addr,
                       mix32((uint32_t) c ^ (uint32_t) b->o.seed), 4);
            } else {
                e[i].addr.family = 6;
                e[i].addr.plen = 128;
                be_put(e[i].addr.addr, rnd(&rng), 8);
                e[i].addr.addr[0] = (uint8_t) (0x20 | (e[i].addr.addr[0]
                                                       & 0x1f));
                be_put(e[i].addr.addr + 8, mix64(c ^ b->o.seed), 8);
            }
            e[i].ev = (uint8_t) (i & 1 ? INA_REJECTION : INA_CONNECTION);
            e[i].src = (uint32_t) c;
        }
    }
    s->sources = (size_t) s->workers * s->n;
}

/* consumed_sources - distinct sources in what the workers got through */

static size_t
consumed_sources(const struct bench_stream *s, const struct bench_wres *res,
                 int adversarial)
{
    uint8_t *seen;
    size_t w, i, n = 0, done;

    if (adversarial) {
        for (w = 0; w < (size_t) s->workers; w++)
            n += (size_t) res[w].events;
        return n;
    }
    if ((seen = calloc(NSOURCES, 1)) == NULL)
        err(1, "calloc");
    for (w = 0; w < (size_t) s->workers; w++) {
        done = (size_t) res[w].events;
        if (done > s->n)
            done = s->n;
        for (i = 0; i < done; i++) {
            uint32_t id = s->ev[w * s->n + i].src;

            if (!seen[id]) {
                seen[id] = 1;
                n++;
            }
        }
    }
    free(seen);
    return n;
}

/* ---------------------------------------------------------------------
 * The floor: a shared-memory table with atomic adds
 * ------------------------------------------------------------------- */

/* floor_hash - hash of a padded key */

static uint64_t
floor_hash(const uint8_t *key)
{
    uint64_t w, h = 0x9e3779b97f4a7c15ull;
    size_t i;

    for (i = 0; i < KEYLEN; i += 8) {
        memcpy(&w, key + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return mix64(h);
}

/* floor_slots - the slots of a table for want keys: a power of two, at
 * most two thirds full */

static uint64_t
floor_slots(uint64_t want)
{
    uint64_t n = 1024;

    while (n < want + want / 2)
        n <<= 1;
    return n;
}

/* floor_new - a table of at least want slots, made before fork */

static void
floor_new(struct floor_table *t, uint64_t want)
{
    uint64_t n = floor_slots(want);

    t->bytes = (size_t) n * sizeof(struct floor_slot);
    t->slot = shm_alloc(t->bytes, 1);
    t->mask = n - 1;
}

/* floor_free - unmap the table */

static void
floor_free(struct floor_table *t)
{
    if (t->slot != NULL)
        munmap(t->slot, t->bytes);
    t->slot = NULL;
}

/* floor_prefault - map every page of the table in this process
 *
 * fork() does not copy the page tables of a shared mapping: without
 * this, every worker would take a minor fault per page of the table
 * inside the timed run, which no real table in steady state pays. */

static void
floor_prefault(struct floor_table *t)
{
    size_t off, page = (size_t) sysconf(_SC_PAGESIZE);
    volatile uint8_t *p = (volatile uint8_t *) (void *) t->slot;

#ifdef MADV_POPULATE_WRITE
    if (madvise(t->slot, t->bytes, MADV_POPULATE_WRITE) == 0)
        return;
#endif
    /* Read faults: the touch must not write while others may too. */
    for (off = 0; off < t->bytes; off += page)
        (void) p[off + 4];
}

/* floor_find - the slot of key, inserting it if create
 *
 * An empty slot is claimed with a CAS of its tag from 0 to 1, filled,
 * then published with its hash tag; a reader that meets tag 1 waits for
 * the publication.  Returns NULL if the key is absent (and not created)
 * or the table is full; *inserted tells whether this call created it. */

static struct floor_slot *
floor_find(struct floor_table *t, const uint8_t *key, int create,
           int *inserted)
{
    uint64_t h = floor_hash(key), i, probes;
    uint32_t tag = (uint32_t) (h >> 32) | 2u, cur, zero;
    struct floor_slot *s;

    *inserted = 0;
    for (i = h & t->mask, probes = 0; probes <= t->mask;
         i = (i + 1) & t->mask, probes++) {
        s = &t->slot[i];
        cur = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE);
        if (cur == 0) {
            if (!create)
                return NULL;
            zero = 0;
            if (__atomic_compare_exchange_n(&s->tag, &zero, 1u, 0,
                                            __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
                memcpy(s->key, key, KEYLEN);
                __atomic_store_n(&s->tag, tag, __ATOMIC_RELEASE);
                *inserted = 1;
                return s;
            }
            cur = zero;
        }
        while (cur == 1)
            cur = __atomic_load_n(&s->tag, __ATOMIC_ACQUIRE);
        if (cur == tag && memcmp(s->key, key, KEYLEN) == 0)
            return s;
    }
    return NULL;
}

/* ---------------------------------------------------------------------
 * Redis
 * ------------------------------------------------------------------- */

/* redis_in_path - whether redis-server is an executable in $PATH */

static int
redis_in_path(void)
{
    const char *path = getenv("PATH");
    char buf[PATH_MAX];
    const char *p, *q;

    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (p = path; *p != '\0'; p = *q ? q + 1 : q) {
        q = strchr(p, ':');
        if (q == NULL)
            q = p + strlen(p);
        snprintf(buf, sizeof(buf), "%.*s/redis-server", (int) (q - p), p);
        if (access(buf, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* redis_port_free - whether nothing listens on 127.0.0.1:port */

static int
redis_port_free(int port)
{
    struct sockaddr_in sa;
    int fd, ok;

    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        return 0;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* redis_connect - a connection to the bench's server, or NULL */

static redisContext *
redis_connect(const struct bench_redis *r, char *why, size_t len)
{
    struct timeval tv = { 1, 0 };
    redisContext *c;

    c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    if (c == NULL || c->err) {
        snprintf(why, len, "cannot connect to 127.0.0.1:%d: %s", r->port,
                 c != NULL ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    return c;
}

/* redis_simple - run a command whose reply is a status or a string */

static int
redis_simple(redisContext *c, const char *cmd, char *out, size_t len)
{
    redisReply *r = redisCommand(c, cmd);
    int rc = -1;

    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) {
        if (out != NULL)
            snprintf(out, len, "%s", r->str);
        rc = 0;
    }
    freeReplyObject(r);
    return rc;
}

/* redis_used_memory - INFO memory's used_memory, or -1 */

static double
redis_used_memory(const struct bench_redis *r)
{
    char why[ERRLEN], *info, *p;
    redisContext *c;
    double v = -1;

    if ((c = redis_connect(r, why, sizeof(why))) == NULL)
        return -1;
    if ((info = malloc(65536)) != NULL
        && redis_simple(c, "INFO memory", info, 65536) == 0
        && (p = strstr(info, "used_memory:")) != NULL)
        v = strtod(p + 12, NULL);
    free(info);
    redisFree(c);
    return v;
}

/* redis_start - start redis-server on a free loopback port
 *
 * It runs in the foreground as our child with no persistence; it dies
 * with us (PR_SET_PDEATHSIG) and is stopped by redis_stop at exit.
 * Returns 0, or -1 with the reason in r->note. */

static int
redis_start(struct bench *b)
{
    struct bench_redis *r = &b->redis;
    char port[16], log[PATH_MAX + 16], why[ERRLEN], pong[16];
    redisContext *c;
    uint64_t deadline;
    int i, fd, status;
    FILE *fp;

    if (!redis_in_path()) {
        snprintf(r->note, sizeof(r->note), "redis-server is not installed "
                 "(Debian package redis-server): Redis peer skipped");
        return -1;
    }
    if ((fp = popen("redis-server --version 2>/dev/null", "r")) != NULL) {
        char line[256], *v;

        if (fgets(line, sizeof(line), fp) != NULL
            && (v = strstr(line, "v=")) != NULL)
            sscanf(v + 2, "%31[0-9.]", r->version);
        pclose(fp);
    }
    r->port = 0;
    for (i = 0; i < 100; i++) {
        int p = 6390 + (int) ((getpid() + i) % 100);

        if (redis_port_free(p)) {
            r->port = p;
            break;
        }
    }
    if (r->port == 0) {
        snprintf(r->note, sizeof(r->note), "no free loopback port in "
                 "6390..6489: Redis peer skipped");
        return -1;
    }
    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(log, sizeof(log), "%s/redis.log", b->dir);
    if ((r->pid = fork()) < 0)
        err(1, "fork");
    if (r->pid == 0) {
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
        if ((fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no",
               "--daemonize", "no", "--dir", b->dir, (char *) NULL);
        _exit(127);
    }
    deadline = now_ns() + 5000000000ull;
    while (now_ns() < deadline) {
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            snprintf(r->note, sizeof(r->note), "redis-server exited at "
                     "start (see %.150s): Redis peer skipped", log);
            return -1;
        }
        if ((c = redis_connect(r, why, sizeof(why))) != NULL) {
            i = redis_simple(c, "PING", pong, sizeof(pong));
            redisFree(c);
            if (i == 0 && strcmp(pong, "PONG") == 0)
                return 0;
        }
        usleep(20000);
    }
    snprintf(r->note, sizeof(r->note), "redis-server on port %d did not "
             "answer PING within 5 s: Redis peer skipped", r->port);
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &status, 0);
    r->pid = 0;
    return -1;
}

/* redis_stop - stop the server we started */

static void
redis_stop(struct bench_redis *r)
{
    int status;

    if (r->pid <= 0)
        return;
    kill(r->pid, SIGTERM);
    waitpid(r->pid, &status, 0);
    r->pid = 0;
}

/* redis_flush - empty the server before a run; returns 0 or -1 */

static int
redis_flush(const struct bench_redis *r, char *why, size_t len)
{
    redisContext *c;
    int rc;

    if ((c = redis_connect(r, why, len)) == NULL)
        return -1;
    rc = redis_simple(c, "FLUSHALL", NULL, 0);
    redisFree(c);
    if (rc != 0)
        snprintf(why, len, "FLUSHALL failed");
    return rc;
}

/* redis_event - one pipelined round trip: HINCRBY of every key */

static int
redis_event(redisContext *c, const struct bench_keys *k, enum ina_event ev,
            char *why, size_t len)
{
    const char *field = ina_event_name(ev);
    redisReply *r;
    size_t i;
    int rc = 0;

    for (i = 0; i < k->n; i++)
        if (redisAppendCommand(c, "HINCRBY %b %s 1", k->key[i],
                               (size_t) k->len[i], field) != REDIS_OK) {
            snprintf(why, len, "redis: %s", c->errstr);
            return -1;
        }
    for (i = 0; i < k->n; i++) {
        if (redisGetReply(c, (void **) &r) != REDIS_OK || r == NULL) {
            snprintf(why, len, "redis: %s", c->errstr);
            return -1;
        }
        if (r->type != REDIS_REPLY_INTEGER) {
            snprintf(why, len, "redis: HINCRBY: %s",
                     r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
            rc = -1;
        }
        freeReplyObject(r);
    }
    return rc;
}

/* redis_policy - the three counts of the BENCH_MONITOR host key: one
 * HMGET, one round trip (the three fields live in one hash) */

static int
redis_policy(redisContext *c, const struct bench_keys *k, char *why,
             size_t len)
{
    redisReply *r;
    int rc = 0;

    r = redisCommand(c, "HMGET %b connection reception rejection",
                     k->key[k->q], (size_t) k->len[k->q]);
    if (r == NULL) {
        snprintf(why, len, "redis: %s", c->errstr);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        snprintf(why, len, "redis: HMGET: bad reply");
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* ---------------------------------------------------------------------
 * Lua
 * ------------------------------------------------------------------- */

/* The seed page's example, as a function the host calls per connection
 * (the monitor is the bench configuration's one-minute monitor). */
static const char policy_chunk[] =
    "require(\"msys.audit\")\n"
    "return function()\n"
    "  local conn = msys.audit.connections(\"" BENCH_MONITOR "\")\n"
    "  local rcpt = msys.audit.receptions(\"" BENCH_MONITOR "\")\n"
    "  local rejn = msys.audit.rejections(\"" BENCH_MONITOR "\")\n"
    "  return conn + rcpt + rejn\n"
    "end\n";

/* A loop inside Lua, for the per-call cost without the C boundary: n
 * calls, the two addresses in turn. */
static const char loop_chunk[] =
    "local mon, addr, addr2, n = ...\n"
    "local connections = require(\"msys.audit\").connections\n"
    "local c = 0\n"
    "for _ = 1, n // 2 do\n"
    "  c = connections(mon, addr)\n"
    "  connections(mon, addr2)\n"
    "end\n"
    "return c\n";

/* lua_new - a state with the standard libraries and msys.audit preloaded */

static lua_State *
lua_new(char *why, size_t len)
{
    lua_State *L;

    if ((L = luaL_newstate()) == NULL) {
        snprintf(why, len, "cannot create a Lua state");
        return NULL;
    }
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_msys_audit);
    lua_setfield(L, -2, "msys.audit");
    lua_pop(L, 1);
    return L;
}

/* lua_chunk_ref - run a chunk returning a function; reference it */

static int
lua_chunk_ref(lua_State *L, const char *chunk, int *ref, char *why,
              size_t len)
{
    if (luaL_loadstring(L, chunk) != LUA_OK
        || lua_pcall(L, 0, 1, 0) != LUA_OK) {
        snprintf(why, len, "lua: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    *ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* ---------------------------------------------------------------------
 * Running K workers
 * ------------------------------------------------------------------- */

/* job_init - shared results and sample room for a run */

static void
job_init(struct bench_job *j, struct bench *b, int workload,
         enum bench_peer peer, size_t limit, size_t queries)
{
    size_t w = (size_t) b->o.workers;
    char *p;

    memset(j, 0, sizeof(*j));
    j->b = b;
    j->workload = workload;
    j->peer = peer;
    j->limit = limit;
    j->duration_ns = (uint64_t) (b->o.duration * 1e9);
    /* Policy runs sample two records and a query per sampled pair. */
    j->rcap = 2 * (limit / SAMPLE_EVERY) + 4;
    j->qcap = 2 * (queries / SAMPLE_EVERY) + 4;
    j->shm_bytes = w * sizeof(struct bench_wres)
                   + w * (j->rcap + j->qcap) * sizeof(uint64_t);
    p = shm_alloc(j->shm_bytes, 0);
    j->res = (struct bench_wres *) (void *) p;
    p += w * sizeof(struct bench_wres);
    j->rsamp = (uint64_t *) (void *) p;
    p += w * j->rcap * sizeof(uint64_t);
    j->qsamp = (uint64_t *) (void *) p;
}

/* job_free - release the shared memory of a run */

static void
job_free(struct bench_job *j)
{
    munmap(j->res, j->shm_bytes);
    j->res = NULL;
}

/* job_ready - tell the parent this process is ready ('R') or failed
 * ('E'); after 'R', wait for the start.  Returns 0 once started. */

static int
job_ready(struct bench_job *j, char c)
{
    if (write(j->ready_fd, &c, 1) != 1 || c != 'R')
        return -1;
    /* The parent closes its end of the pipe: every worker wakes. */
    while (read(j->go_fd, &c, 1) < 0 && errno == EINTR)
        continue;
    close(j->ready_fd);
    close(j->go_fd);
    return 0;
}

/* job_go - tell the parent this worker is ready; wait for the start */

static void
job_go(struct bench_job *j, int id)
{
    if (job_ready(j, 'R') != 0)
        _exit(1);
    j->res[id].t_start = now_ns();
}

/* job_fail - a worker's failure before or after the start */

static int
job_fail(struct bench_job *j, int id, int started, const char *what)
{
    warnx("%s worker %d: %s", peer_names[j->peer], id, what);
    if (!started)
        (void) job_ready(j, 'E');
    return 1;
}

static int probe_reader(struct bench_job *j);
static int probe_sessions(struct bench_job *j);

/* run_workers - fork the workers, start them together, wait for them
 *
 * Each worker sets up (opens its store, its Lua state, its connection),
 * writes one byte to the ready pipe ('R', or 'E' if it failed), then
 * blocks reading the go pipe; closing our end of it starts every worker
 * at once.  If a worker fails or dies before the start, the others are
 * stopped and the run is not made.  Returns the number of workers that
 * failed. */

static int
run_workers(struct bench_job *j, int (*fn)(struct bench_job *, int))
{
    int ready[2], go[2], i, status, failed = 0, arrived = 0, abort_run = 0;
    /* The visibility probes' reader is one more process, and the session
     * timer another. */
    int nw = j->b->o.workers;
    int k = nw + (j->probe != NULL)
            + (j->probe != NULL && j->probe->sessions);
    pid_t pids[MAX_WORKERS + 2];
    int reaped[MAX_WORKERS + 2];
    struct pollfd pfd;
    char c;

    if (pipe(ready) != 0 || pipe(go) != 0)
        err(1, "pipe");
    fflush(NULL);
    for (i = 0; i < k; i++) {
        reaped[i] = 0;
        if ((pids[i] = fork()) < 0)
            err(1, "fork");
        if (pids[i] == 0) {
            close(ready[0]);
            close(go[1]);
            j->ready_fd = ready[1];
            j->go_fd = go[0];
            _exit(i < nw ? fn(j, i)
                         : i == nw ? probe_reader(j) : probe_sessions(j));
        }
        j->b->workers[i] = pids[i];
    }
    close(ready[1]);
    close(go[0]);
    pfd.fd = ready[0];
    pfd.events = POLLIN;
    while (arrived < k && !abort_run) {
        if (poll(&pfd, 1, 200) > 0) {
            if (read(ready[0], &c, 1) != 1 || c != 'R')
                abort_run = 1;
            else
                arrived++;
            continue;
        }
        /* A worker that died without a word. */
        for (i = 0; i < k; i++)
            if (waitpid(pids[i], &status, WNOHANG) == pids[i]) {
                reaped[i] = 1;
                failed++;
                abort_run = 1;
            }
    }
    if (abort_run)
        for (i = 0; i < k; i++)
            if (!reaped[i])
                kill(pids[i], SIGTERM);
    close(go[1]);
    close(ready[0]);
    for (i = 0; i < k; i++) {
        if (reaped[i])
            continue;
        if (waitpid(pids[i], &status, 0) < 0)
            err(1, "waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    memset(j->b->workers, 0, sizeof(j->b->workers));
    return abort_run && failed == 0 ? 1 : failed;
}

/* job_result - aggregate the workers' reports */

static void
job_result(struct bench_job *j, struct bench_result *r)
{
    int k = j->b->o.workers, i;
    uint64_t t0 = UINT64_MAX, t1 = 0, *v;
    size_t nr = 0, nq = 0, m;

    memset(r, 0, sizeof(*r));
    r->ran = 1;
    r->ok = 1;
    r->bytes = -1;
    for (i = 0; i < k; i++) {
        const struct bench_wres *w = &j->res[i];

        if (!w->ok)
            r->ok = 0;
        if (w->t_start < t0)
            t0 = w->t_start;
        if (w->t_end > t1)
            t1 = w->t_end;
        r->events += w->events;
        r->conns += w->conns;
        r->queries += w->queries;
        r->inserts += w->inserts;
        for (m = 0; m < INA_NEVENTS; m++)
            r->by_ev[m] += w->by_ev[m];
        nr += w->nrs;
        nq += w->nqs;
    }
    r->secs = t1 > t0 ? (double) (t1 - t0) / 1e9 : 0;
    if (r->secs > 0) {
        r->rate = (double) r->events / r->secs;
        r->conn_rate = (double) r->conns / r->secs;
    }
    if ((v = malloc((nr + nq + 1) * sizeof(*v))) == NULL)
        err(1, "malloc");
    for (i = 0, m = 0; i < k; i++) {
        memcpy(v + m, j->rsamp + (size_t) i * j->rcap,
               j->res[i].nrs * sizeof(*v));
        m += j->res[i].nrs;
    }
    percentiles(v, m, &r->rp50, &r->rp99);
    for (i = 0, m = 0; i < k; i++) {
        memcpy(v + m, j->qsamp + (size_t) i * j->qcap,
               j->res[i].nqs * sizeof(*v));
        m += j->res[i].nqs;
    }
    percentiles(v, m, &r->qp50, &r->qp99);
    free(v);
}

/* rsample - keep a record latency sample of worker id */

static void
rsample(struct bench_job *j, int id, uint64_t ns)
{
    struct bench_wres *w = &j->res[id];

    if (w->nrs < j->rcap)
        j->rsamp[(size_t) id * j->rcap + w->nrs++] = ns;
}

/* qsample - keep a query latency sample of worker id */

static void
qsample(struct bench_job *j, int id, uint64_t ns)
{
    struct bench_wres *w = &j->res[id];

    if (w->nqs < j->qcap)
        j->qsamp[(size_t) id * j->qcap + w->nqs++] = ns;
}

/* ---------------------------------------------------------------------
 * The workers
 * ------------------------------------------------------------------- */

/* pace - wait until the clock reaches t (paced runs)
 *
 * Sleeps only when more than 200 us ahead, so that a worker keeps its
 * rate on average without a system call per event. */

static void
pace(uint64_t t)
{
    uint64_t now = now_ns();
    struct timespec ts;

    if (now + 200000 >= t)
        return;
    ts.tv_sec = (time_t) ((t - now) / 1000000000u);
    ts.tv_nsec = (long) ((t - now) % 1000000000u);
    nanosleep(&ts, NULL);
}

/* probe_addr - address id of 2001:2::/48, the IPv6 benchmarking range,
 * which no stream uses: 0 is the session timer's peer, the probes are 1
 * on */

static void
probe_addr(struct ina_cidr *a, uint64_t id)
{
    memset(a, 0, sizeof(*a));
    a->family = 6;
    a->plen = 128;
    be_put(a->addr, 0x20010002u, 4);
    be_put(a->addr + 8, id, 8);
}

/* probe_step - worker 0's part of the visibility probes, at iteration i
 *
 * It records a probe (a connection from probe_addr) once the last one
 * was seen, and publishes it after the record returns.  The probe's record is
 * counted like any other, so the store check still holds. */

static int
probe_step(struct bench_job *j, int id, struct ina_store *st, size_t i)
{
    struct bench_probe *p = j->probe;
    struct bench_wres *w = &j->res[id];
    uint64_t seq;
    int rc;

    if (id != 0 || i % PROBE_EVERY != PROBE_EVERY - 1)
        return 0;
    seq = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&p->seen, __ATOMIC_ACQUIRE) != seq
        || p->nlag >= MAX_PROBES)
        return 0;
    probe_addr(&p->addr, seq + 1);
    if ((rc = ina_record(st, INA_CONNECTION, &p->addr, 1)) != 0)
        return rc;
    w->by_ev[INA_CONNECTION]++;
    p->t_ns = now_ns();
    __atomic_store_n(&p->seq, seq + 1, __ATOMIC_RELEASE);
    return 0;
}

/* probe_start - open the store after fork, as a worker does, and start
 * with the workers; NULL if the store did not open */

static struct ina_store *
probe_start(struct bench_job *j, const char *who)
{
    struct ina_store *st;
    char errbuf[ERRLEN];

    if (ina_store_open(j->conf, 0, &st, errbuf, sizeof(errbuf)) != 0) {
        warnx("%s: %s", who, errbuf);
        (void) job_ready(j, 'E');
        return NULL;
    }
    if (job_ready(j, 'R') != 0) {
        ina_store_close(st);
        return NULL;
    }
    return st;
}

/* probe_running - until worker 0 stops, or the run's time and a grace
 * period are over */

static int
probe_running(const struct bench_job *j, uint64_t deadline)
{
    return !__atomic_load_n(&j->probe->done, __ATOMIC_ACQUIRE)
           && now_ns() < deadline;
}

/* probe_reader - the process that looks for the probes
 *
 * It queries the published probe every PROBE_POLL_NS until it sees it.
 * The delay includes the reader's own wake-up, on CPUs the workers keep
 * busy; whether its first query after the record saw the probe is the
 * store's part alone. */

static int
probe_reader(struct bench_job *j)
{
    struct bench_probe *p = j->probe;
    const struct timespec pause = { 0, PROBE_POLL_NS };
    struct ina_store *st;
    char errbuf[ERRLEN];
    uint64_t seq, n, t, deadline;
    size_t tries = 0;

    if ((st = probe_start(j, "probe reader")) == NULL)
        return 1;
    deadline = now_ns() + j->duration_ns + PROBE_GRACE_NS;
    while (probe_running(j, deadline)) {
        seq = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE);
        if (seq != p->seen) {
            if (ina_query(st, INA_CONNECTION, BENCH_MONITOR, &p->addr, 0, 0,
                          0, &n, errbuf, sizeof(errbuf)) != 0) {
                warnx("probe reader: %s", errbuf);
                ina_store_close(st);
                return 1;
            }
            tries++;
            if (n > 0) {
                t = now_ns();
                p->lag[p->nlag++] = t > p->t_ns ? t - p->t_ns : 0;
                /* A query made after seq was published began after the
                 * probe's record had returned. */
                if (tries == 1)
                    p->nfirst++;
                tries = 0;
                __atomic_store_n(&p->seen, seq, __ATOMIC_RELEASE);
                continue;
            }
        }
        nanosleep(&pause, NULL);
    }
    ina_store_close(st);
    return 0;
}

/* probe_sessions - the process that opens and closes a session every
 * SESSION_EVERY_NS, timing both calls (a process of its own, so that its
 * waits do not delay the probe reader) */

static int
probe_sessions(struct bench_job *j)
{
    struct bench_probe *p = j->probe;
    const struct timespec pause = { 0, SESSION_EVERY_NS };
    struct ina_store *st;
    struct ina_cidr peer;
    uint64_t t, deadline;
    int rc = 0;

    if ((st = probe_start(j, "session timer")) == NULL)
        return 1;
    probe_addr(&peer, 0);
    deadline = now_ns() + j->duration_ns + PROBE_GRACE_NS;
    while (rc == 0 && p->nsess < MAX_SESSIONS
           && probe_running(j, deadline)) {
        nanosleep(&pause, NULL);
        t = now_ns();
        if ((rc = ina_session_open(st, &peer, "SMTP")) != 0)
            break;
        p->sopen[p->nsess] = now_ns() - t;
        t = now_ns();
        rc = ina_session_close(st, &peer, "SMTP");
        p->sclose[p->nsess++] = now_ns() - t;
    }
    if (rc != 0)
        warnx("session timer: %s", ina_strerror(rc));
    ina_store_close(st);
    return rc != 0;
}

/* worker_ina - play a stream into inbound-audit through the C API */

static int
worker_ina(struct bench_job *j, int id)
{
    const struct bench_ev *e = j->s->ev + (size_t) id * j->s->n;
    struct bench_wres *w = &j->res[id];
    struct ina_store *st;
    char errbuf[ERRLEN];
    uint64_t t0, t1, deadline;
    size_t i;
    int rc;

    /* Each worker opens the store after fork, as MTA workers do. */
    if (ina_store_open(j->conf, 0, &st, errbuf, sizeof(errbuf)) != 0)
        return job_fail(j, id, 0, errbuf);
    job_go(j, id);
    deadline = w->t_start + j->duration_ns;
    for (i = 0; i < j->limit; i++) {
        if (j->pace_ns > 0)
            pace(w->t_start + i * j->pace_ns);
        if (j->probe != NULL && (rc = probe_step(j, id, st, i)) != 0) {
            snprintf(errbuf, sizeof(errbuf), "probe: %s", ina_strerror(rc));
            ina_store_close(st);
            return job_fail(j, id, 1, errbuf);
        }
        if ((i & (SAMPLE_EVERY - 1)) == 0) {
            t0 = now_ns();
            rc = ina_record(st, (enum ina_event) e[i].ev, &e[i].addr, 1);
            t1 = now_ns();
            rsample(j, id, t1 - t0);
            if (t1 >= deadline)
                j->limit = i + 1;
        } else {
            rc = ina_record(st, (enum ina_event) e[i].ev, &e[i].addr, 1);
        }
        if (rc != 0) {
            snprintf(errbuf, sizeof(errbuf), "ina_record: %s",
                     ina_strerror(rc));
            ina_store_close(st);
            return job_fail(j, id, 1, errbuf);
        }
        w->by_ev[e[i].ev]++;
    }
    w->events = i;
    if (j->probe != NULL && id == 0)
        __atomic_store_n(&j->probe->done, 1, __ATOMIC_RELEASE);
    /* The batched record path: what is buffered is part of the cost. */
    if ((rc = ina_flush(st)) != 0) {
        snprintf(errbuf, sizeof(errbuf), "ina_flush: %s", ina_strerror(rc));
        ina_store_close(st);
        return job_fail(j, id, 1, errbuf);
    }
    w->t_end = now_ns();
    w->rss1_kb = proc_status_kb("VmRSS");
    ina_store_close(st);
    w->ok = 1;
    return 0;
}

/* worker_ina_policy - the policy host's loop over msys.audit
 *
 * Per connection, as tools/inaudit-policy does: set the peer, record the
 * connection, call the policy (three queries), record the outcome.  The
 * records go through the module's handle; lua_close flushes it. */

static int
worker_ina_policy(struct bench_job *j, int id)
{
    const struct bench_ev *e = j->s->ev + (size_t) id * j->s->n;
    char (*text)[TEXTLEN] = j->s->text + (size_t) id * j->s->n;
    struct bench_wres *w = &j->res[id];
    char errbuf[ERRLEN];
    uint64_t t0, t1, deadline;
    size_t i, p;
    lua_State *L;
    int ref, rc, sample;

    if (setenv("INBOUND_AUDIT_CONF", j->conf_path, 1) != 0)
        return job_fail(j, id, 0, "setenv failed");
    if ((L = lua_new(errbuf, sizeof(errbuf))) == NULL
        || lua_chunk_ref(L, policy_chunk, &ref, errbuf, sizeof(errbuf)) != 0)
        return job_fail(j, id, 0, errbuf);
    /* One call before the start opens the module's store. */
    if (ina_lua_set_peer(L, text[0], errbuf, sizeof(errbuf)) != 0)
        return job_fail(j, id, 0, errbuf);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK)
        return job_fail(j, id, 0, lua_tostring(L, -1));
    lua_pop(L, 1);
    job_go(j, id);
    deadline = w->t_start + j->duration_ns;
    for (i = 0, p = 0; i + 1 < j->limit; i += 2, p++) {
        sample = (p & (SAMPLE_EVERY / 2 - 1)) == 0;
        if ((rc = ina_lua_set_peer(L, text[i], errbuf, sizeof(errbuf)))
            != 0)
            goto fail;
        t0 = sample ? now_ns() : 0;
        rc = ina_lua_record(L, INA_CONNECTION, NULL, 1, errbuf,
                            sizeof(errbuf));
        if (sample)
            rsample(j, id, now_ns() - t0);
        if (rc != 0)
            goto fail;
        t0 = sample ? now_ns() : 0;
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
        if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
            snprintf(errbuf, sizeof(errbuf), "%s", lua_tostring(L, -1));
            goto fail;
        }
        lua_pop(L, 1);
        if (sample)
            qsample(j, id, now_ns() - t0);
        t0 = sample ? now_ns() : 0;
        rc = ina_lua_record(L, (enum ina_event) e[i + 1].ev, NULL, 1,
                            errbuf, sizeof(errbuf));
        if (sample) {
            t1 = now_ns();
            rsample(j, id, t1 - t0);
            if (t1 >= deadline)
                j->limit = i + 2;
        }
        if (rc != 0)
            goto fail;
        w->by_ev[INA_CONNECTION]++;
        w->by_ev[e[i + 1].ev]++;
    }
    w->events = i;
    w->conns = p;
    w->queries = p;
    /* Closing the state closes the module's handle, which flushes. */
    lua_close(L);
    w->t_end = now_ns();
    w->ok = 1;
    return 0;
fail:
    lua_close(L);
    return job_fail(j, id, 1, errbuf);
}

/* worker_redis - the same keys, one pipelined round trip per event */

static int
worker_redis(struct bench_job *j, int id)
{
    const struct bench_ev *e = j->s->ev + (size_t) id * j->s->n;
    struct bench_wres *w = &j->res[id];
    int policy = j->workload == WL_POLICY;
    struct bench_keys k;
    redisContext *c;
    char errbuf[ERRLEN];
    uint64_t t0, t1, deadline;
    size_t i;
    int sample;

    if ((c = redis_connect(&j->b->redis, errbuf, sizeof(errbuf))) == NULL)
        return job_fail(j, id, 0, errbuf);
    job_go(j, id);
    deadline = w->t_start + j->duration_ns;
    for (i = 0; i < j->limit; i++) {
        sample = (i & (SAMPLE_EVERY - 1)) == 0
                 || (policy && (i & (SAMPLE_EVERY - 1)) == 1);
        t0 = sample ? now_ns() : 0;
        bench_keys(&j->b->plan, &e[i].addr, unix_now(), &k);
        if (redis_event(c, &k, (enum ina_event) e[i].ev, errbuf,
                        sizeof(errbuf)) != 0)
            goto fail;
        if (sample) {
            t1 = now_ns();
            rsample(j, id, t1 - t0);
            if (t1 >= deadline)
                j->limit = policy ? (i | 1) + 1 : i + 1;
        }
        w->by_ev[e[i].ev]++;
        if (policy && e[i].ev == INA_CONNECTION) {
            t0 = sample ? now_ns() : 0;
            if (redis_policy(c, &k, errbuf, sizeof(errbuf)) != 0)
                goto fail;
            if (sample)
                qsample(j, id, now_ns() - t0);
            w->conns++;
            w->queries++;
        }
    }
    w->events = i;
    w->t_end = now_ns();
    redisFree(c);
    w->ok = 1;
    return 0;
fail:
    redisFree(c);
    return job_fail(j, id, 1, errbuf);
}

/* worker_floor - the same keys into the shared table */

static int
worker_floor(struct bench_job *j, int id)
{
    const struct bench_ev *e = j->s->ev + (size_t) id * j->s->n;
    struct bench_wres *w = &j->res[id];
    int policy = j->workload == WL_POLICY, inserted, sample;
    struct floor_slot *s;
    struct bench_keys k;
    uint64_t t0, t1, deadline, sum;
    size_t i, m;

    floor_prefault(j->floor);
    job_go(j, id);
    deadline = w->t_start + j->duration_ns;
    for (i = 0; i < j->limit; i++) {
        sample = (i & (SAMPLE_EVERY - 1)) == 0
                 || (policy && (i & (SAMPLE_EVERY - 1)) == 1);
        t0 = sample ? now_ns() : 0;
        bench_keys(&j->b->plan, &e[i].addr, unix_now(), &k);
        for (m = 0; m < k.n; m++) {
            if ((s = floor_find(j->floor, k.key[m], 1, &inserted)) == NULL)
                return job_fail(j, id, 1, "the floor's table is full");
            w->inserts += (uint64_t) inserted;
            __atomic_fetch_add(&s->count[e[i].ev], 1, __ATOMIC_RELAXED);
        }
        if (sample) {
            t1 = now_ns();
            rsample(j, id, t1 - t0);
            if (t1 >= deadline)
                j->limit = policy ? (i | 1) + 1 : i + 1;
        }
        w->by_ev[e[i].ev]++;
        if (policy && e[i].ev == INA_CONNECTION) {
            /* Three lookups, as the policy makes three calls. */
            t0 = sample ? now_ns() : 0;
            for (m = 0, sum = 0; m < INA_NEVENTS; m++)
                if ((s = floor_find(j->floor, k.key[k.q], 0, &inserted))
                    != NULL)
                    sum += __atomic_load_n(&s->count[m], __ATOMIC_RELAXED);
            if (sample)
                qsample(j, id, now_ns() - t0);
            if (sum == 0)
                return job_fail(j, id, 1, "the floor lost a count");
            w->conns++;
            w->queries++;
        }
    }
    w->events = i;
    w->t_end = now_ns();
    w->ok = 1;
    return 0;
}

/* worker_fill - record tracked addresses fill_lo .. fill_hi (scale) */

static int
worker_fill(struct bench_job *j, int id)
{
    struct bench_wres *w = &j->res[id];
    struct ina_store *st;
    struct ina_cidr a;
    char errbuf[ERRLEN];
    uint64_t i, n = 0;
    int rc;

    if (ina_store_open(j->conf, 0, &st, errbuf, sizeof(errbuf)) != 0)
        return job_fail(j, id, 0, errbuf);
    ina_store_set_clock(st, fixed_clock, &j->b->t0);
    w->rss0_kb = proc_status_kb("VmRSS");
    job_go(j, id);
    for (i = j->fill_lo + (uint64_t) id; i < j->fill_hi;
         i += (uint64_t) j->b->o.workers, n++) {
        scale_addr(i, &a);
        if ((rc = ina_record(st, INA_CONNECTION, &a, 1)) != 0) {
            snprintf(errbuf, sizeof(errbuf), "ina_record: %s",
                     ina_strerror(rc));
            ina_store_close(st);
            return job_fail(j, id, 1, errbuf);
        }
    }
    if ((rc = ina_flush(st)) != 0) {
        snprintf(errbuf, sizeof(errbuf), "ina_flush: %s", ina_strerror(rc));
        ina_store_close(st);
        return job_fail(j, id, 1, errbuf);
    }
    w->t_end = now_ns();
    w->events = n;
    w->by_ev[INA_CONNECTION] = n;
    w->rss1_kb = proc_status_kb("VmRSS");
    ina_store_close(st);
    w->ok = 1;
    return 0;
}

/* ---------------------------------------------------------------------
 * Checks on the store after a run
 * ------------------------------------------------------------------- */

/* store_check - the store's totals against what was recorded
 *
 * Sums each event over the whole address space of both families and
 * every window of the longest monitor: with a fresh store, that is every
 * event ever recorded.  Also reads the store's size.  Runs in a child,
 * so the parent never holds an environment across fork.  Returns 0 if
 * the totals are exact, with *bytes the map's used bytes. */

static int
store_check(const struct ina_conf *conf,
            const uint64_t *want, double *bytes, char *why, size_t len)
{
    struct {
        int rc;
        double bytes;
        uint64_t got[INA_NEVENTS];
        char why[ERRLEN];
    } *r;
    const struct ina_monitor *mon;
    struct ina_store *st;
    struct ina_cidr all4, all6;
    struct ina_stat s;
    uint64_t c;
    size_t i, m;
    pid_t pid;
    int status, rc;

    r = shm_alloc(sizeof(*r), 0);
    r->rc = -1;
    mon = &conf->monitors[0];
    for (i = 1; i < conf->nmonitors; i++)
        if ((uint64_t) conf->monitors[i].width * conf->monitors[i].history
            > (uint64_t) mon->width * mon->history)
            mon = &conf->monitors[i];
    fflush(NULL);
    if ((pid = fork()) < 0)
        err(1, "fork");
    if (pid == 0) {
        if (ina_store_open(conf, INA_STORE_RDONLY, &st, r->why,
                           sizeof(r->why)) != 0)
            _exit(1);
        if (ina_cidr_parse("0.0.0.0/0", 9, &all4, NULL, 0) != 0
            || ina_cidr_parse("::/0", 4, &all6, NULL, 0) != 0)
            _exit(1);
        for (m = 0; m < INA_NEVENTS; m++) {
            rc = ina_query(st, (enum ina_event) m, mon->name, &all4, 0,
                           mon->history, 0, &c, r->why, sizeof(r->why));
            if (rc != 0)
                _exit(1);
            r->got[m] = c;
            rc = ina_query(st, (enum ina_event) m, mon->name, &all6, 0,
                           mon->history, 0, &c, r->why, sizeof(r->why));
            if (rc != 0)
                _exit(1);
            r->got[m] += c;
        }
        if ((rc = ina_store_stat(st, &s)) != 0) {
            snprintf(r->why, sizeof(r->why), "ina_store_stat: %s",
                     ina_strerror(rc));
            _exit(1);
        }
        r->bytes = (double) s.map_used;
        ina_store_close(st);
        r->rc = 0;
        _exit(0);
    }
    if (waitpid(pid, &status, 0) < 0)
        err(1, "waitpid");
    *bytes = -1;
    if (r->rc != 0) {
        snprintf(why, len, "cannot read the store: %.400s", r->why);
        munmap(r, sizeof(*r));
        return -1;
    }
    *bytes = r->bytes;
    rc = 0;
    for (m = 0; m < INA_NEVENTS; m++)
        if (r->got[m] != want[m]) {
            snprintf(why, len, "%ss: the store holds %" PRIu64 ", the "
                     "workers recorded %" PRIu64, ina_event_name(
                         (enum ina_event) m), r->got[m], want[m]);
            rc = -1;
            break;
        }
    if (rc == 0)
        snprintf(why, len, "exact (%" PRIu64 " connections, %" PRIu64
                 " receptions, %" PRIu64 " rejections in the store)",
                 want[0], want[1], want[2]);
    munmap(r, sizeof(*r));
    return rc;
}

/* store_warm - make conf's store and read its whole file into the page
 * cache; the seconds that took
 *
 * The floor's table is touched before its run (floor_prefault), and a
 * store that has been running has its file in the page cache likewise:
 * its tree takes pages that earlier transactions used and freed.  A new
 * store's file is a reserved hole, and the first touch of each page has
 * the kernel zero a new one: on this kind of virtual machine, whose host
 * backs guest memory on first use, some microseconds a page, and a run
 * of fresh keys takes a page for every few events.  The pages are read,
 * not written: nothing is dirtied, and the tree's content is untouched.
 * The adversarial workload is measured on a new store too ("cold
 * store"), so that what a first fill costs is printed beside it. */

static double
store_warm(const struct ina_conf *conf)
{
    struct ina_store *st;
    char why[ERRLEN], file[PATH_MAX + 16];
    struct stat sb;
    uint64_t t = now_ns();
    pid_t pid;
    int fd, status;

    fflush(NULL);
    if ((pid = fork()) < 0)
        err(1, "fork");
    if (pid == 0) {
        /* A handle of its own makes the store; the file is then as long
         * as the map. */
        if (ina_store_open(conf, 0, &st, why, sizeof(why)) != 0) {
            warnx("warm-up: %s", why);
            _exit(1);
        }
        snprintf(file, sizeof(file), "%s/data.mdb", conf->store);
        if ((fd = open(file, O_RDONLY)) < 0 || fstat(fd, &sb) != 0
            || file_read_in(fd, 0, (size_t) sb.st_size) != 0) {
            warn("warm-up: %s", file);
            _exit(1);
        }
        close(fd);
        ina_store_close(st);
        _exit(0);
    }
    if (waitpid(pid, &status, 0) < 0)
        err(1, "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        errx(1, "%s: cannot read the store into the page cache",
             conf->store);
    return (double) (now_ns() - t) / 1e9;
}

/* ---------------------------------------------------------------------
 * The throughput workloads
 * ------------------------------------------------------------------- */

/* print_result_row - one peer's line of a workload table */

static void
print_result_row(struct bench *b, int workload, const char *label,
                 const struct bench_result *r)
{
    char p50[24], p99[24], q50[24], q99[24], rate[32], bpa[32];

    if (!r->ran) {
        say(b, "  %-14s %s\n", label,
            r->note[0] ? r->note : "not measured");
        return;
    }
    if (!r->ok) {
        say(b, "  %-14s failed%s%s\n", label,
            r->note[0] ? ": " : "", r->note);
        return;
    }
    fmt_ns(p50, sizeof(p50), (double) r->rp50);
    fmt_ns(p99, sizeof(p99), (double) r->rp99);
    fmt_ns(q50, sizeof(q50), (double) r->qp50);
    fmt_ns(q99, sizeof(q99), (double) r->qp99);
    snprintf(rate, sizeof(rate), "%.0f", r->rate);
    if (r->bytes > 0 && r->tracked > 0)
        snprintf(bpa, sizeof(bpa), "%.0f",
                 r->bytes / (double) r->tracked);
    else
        snprintf(bpa, sizeof(bpa), "-");
    if (workload == WL_POLICY)
        say(b, "  %-14s %10" PRIu64 " %7.2f %12s %10.0f %10s %10s %10s "
            "%10s %8s\n", label, r->events, r->secs, rate,
            r->conn_rate, p50, p99, q50, q99, bpa);
    else
        say(b, "  %-14s %10" PRIu64 " %7.2f %12s %10s %10s %10s\n",
            label, r->events, r->secs, rate, p50, p99, bpa);
}

/* job_visibility - the probes' delays into a result */

static void
job_visibility(struct bench_job *j, struct bench_result *r)
{
    if (j->probe == NULL)
        return;
    r->nvis_first = j->probe->nfirst;
    r->nvis = j->probe->nlag;
    lat_of(j->probe->lag, r->nvis, &r->vis);
    r->nsess = j->probe->nsess;
    lat_of(j->probe->sopen, r->nsess, &r->sopen);
    lat_of(j->probe->sclose, r->nsess, &r->sclose);
    munmap(j->probe, sizeof(*j->probe));
    j->probe = NULL;
}

/* lat_text - a bench_lat for people */

struct lat_text {
    char p50[32], p99[32], max[32];
};

static void
lat_text(const struct bench_lat *l, struct lat_text *t)
{
    fmt_ns(t->p50, sizeof(t->p50), (double) l->p50);
    fmt_ns(t->p99, sizeof(t->p99), (double) l->p99);
    fmt_ns(t->max, sizeof(t->max), (double) l->max);
}

/* fig_lat - a bench_lat as the figures realistic.inbound_audit.TAG
 * NAME_p50_ns, _p99_ns and _max_ns */

static void
fig_lat(struct bench *b, const struct bench_lat *l, const char *tag,
        const char *name)
{
    fig(b, (double) l->p50, "realistic.inbound_audit.%s%s_p50_ns", tag,
        name);
    fig(b, (double) l->p99, "realistic.inbound_audit.%s%s_p99_ns", tag,
        name);
    fig(b, (double) l->max, "realistic.inbound_audit.%s%s_max_ns", tag,
        name);
}

/* say_visibility - one line of visibility delays, and their figures */

static void
say_visibility(struct bench *b, const struct bench_result *r,
               const char *label, const char *tag,
               const struct ina_conf *conf)
{
    struct lat_text t;

    if (r->nvis == 0)
        return;
    lat_text(&r->vis, &t);
    say(b, "  visibility %s (%.0f events/s): a reader process saw a "
        "record after\n    p50 %s, p99 %s, at most %s (%zu probes; "
        "flush_delay %u ms);\n    %zu of them at its first query after the "
        "record returned\n", label, r->rate, t.p50, t.p99, t.max, r->nvis,
        conf->flush_delay, r->nvis_first);
    fig(b, r->rate, "realistic.inbound_audit.%svisibility_events_per_s", tag);
    fig_lat(b, &r->vis, tag, "visibility");
    fig(b, (double) r->nvis, "realistic.inbound_audit.%svisibility_probes",
        tag);
    fig(b, (double) r->nvis_first,
        "realistic.inbound_audit.%svisibility_first_query", tag);
}

/* say_sessions - the session timer's calls, and their figures */

static void
say_sessions(struct bench *b, const struct bench_result *r,
             const char *label, const char *tag)
{
    struct lat_text o, c;

    if (r->nsess == 0)
        return;
    lat_text(&r->sopen, &o);
    lat_text(&r->sclose, &c);
    say(b, "  sessions %s (%zu, one a millisecond by a process of its own; "
        "each call\n    %s): open p50 %s, p99 %s, at most %s;\n    close "
        "p50 %s, p99 %s, at most %s\n", label, r->nsess,
        b->conf->flush_delay > 0 ? "buffered in the shared tables"
                                 : "a write transaction of its own",
        o.p50, o.p99, o.max, c.p50, c.p99, c.max);
    fig(b, (double) r->nsess, "realistic.inbound_audit.%ssessions", tag);
    fig_lat(b, &r->sopen, tag, "session_open");
    fig_lat(b, &r->sclose, tag, "session_close");
}

/* run_paced - the realistic stream at a set rate, for its visibility
 *
 * The workers pace themselves to rate events/s in all, into a store of
 * their own; the probes measure how long a record takes to be seen by
 * a reader process when the store is not saturated.  Counts are checked
 * as in every run. */

static void
run_paced(struct bench *b, const struct bench_stream *s, double rate,
          struct bench_result *r)
{
    struct ina_conf *conf;
    struct bench_job j;
    char path[PATH_MAX + 64], counts[ERRLEN];
    int failed;

    memset(r, 0, sizeof(*r));
    if (rate < 1000)
        return;
    conf = bench_conf(b, "paced", BENCH_PREFIXES4,
                      (uint64_t) b->o.workers * s->n, path, sizeof(path));
    job_init(&j, b, WL_REALISTIC, PEER_INA, s->n, 0);
    j.s = s;
    j.conf = conf;
    j.conf_path = path;
    j.pace_ns = (uint64_t) ((double) b->o.workers * 1e9 / rate);
    j.probe = shm_alloc(sizeof(*j.probe), 0);
    j.probe->sessions = 1;
    failed = run_workers(&j, worker_ina);
    job_result(&j, r);
    job_visibility(&j, r);
    job_free(&j);
    if (failed)
        errx(1, "paced: %d inbound-audit worker(s) failed", failed);
    if (store_check(conf, r->by_ev, &r->bytes, counts, sizeof(counts)) != 0)
        errx(1, "paced: counts are wrong: %s", counts);
    if (!b->o.keep && b->o.dir == NULL)
        rm_tree(conf->store);
    ina_conf_free(conf);
}

/* ina_run - one timed run of inbound-audit's workers over the stream,
 * its counts checked against the store; its row printed as label */

static void
ina_run(struct bench *b, int workload, const struct bench_stream *s,
        const struct ina_conf *conf, const char *path, const char *label,
        struct bench_result *r, char *counts, size_t len)
{
    struct bench_job j;
    int failed;

    job_init(&j, b, workload, PEER_INA, s->n, s->n / 2);
    j.s = s;
    j.conf = conf;
    j.conf_path = path;
    if (workload == WL_REALISTIC && b->o.workers >= 2)
        j.probe = shm_alloc(sizeof(*j.probe), 0);
    failed = run_workers(&j, workload == WL_POLICY ? worker_ina_policy
                                                   : worker_ina);
    job_result(&j, r);
    if (failed)
        errx(1, "%s: %d inbound-audit worker(s) failed", label, failed);
    r->tracked = consumed_sources(s, j.res, workload == WL_ADVERSARIAL);
    job_visibility(&j, r);
    job_free(&j);
    if (store_check(conf, r->by_ev, &r->bytes, counts, len) != 0) {
        print_result_row(b, workload, label, r);
        errx(1, "%s: counts are wrong: %s", label, counts);
    }
    print_result_row(b, workload, label, r);
}

/* say_ratios - the line of a row's rate against Redis's and the floor's
 * (res: the workload's results) */

static void
say_ratios(struct bench *b, const char *label, double rate,
           const struct bench_result *res)
{
    char r1[32], r2[32];

    fmt_ratio(r1, sizeof(r1), res[PEER_REDIS].ok && res[PEER_REDIS].rate > 0
                                  ? rate / res[PEER_REDIS].rate
                                  : 0);
    fmt_ratio(r2, sizeof(r2), res[PEER_FLOOR].ok && rate > 0
                                  ? res[PEER_FLOOR].rate / rate
                                  : 0);
    say(b, "  %s / redis: %s%s    floor / %s: %s\n", label,
        strcmp(r1, "-") == 0 ? "n/a" : r1,
        strcmp(r1, "-") == 0 ? "" : " faster", label,
        strcmp(r2, "-") == 0 ? "n/a" : r2);
}

/* run_workload - one workload against the three systems */

static void
run_workload(struct bench *b, int workload)
{
    static const char *const names[] = { "realistic", "adversarial",
                                         "policy" };
    struct bench_stream s;
    struct bench_result *res, cold;
    struct ina_conf *conf;
    struct floor_table ft;
    struct bench_job j;
    char path[PATH_MAX + 64], why[ERRLEN], counts[ERRLEN];
    char cold_counts[ERRLEN];
    const char *name;
    size_t limit, keys, per_event;
    int idx, adversarial = workload == WL_ADVERSARIAL, failed;
    double mem0, warm;
    uint64_t t;

    idx = workload == WL_REALISTIC ? 0 : workload == WL_ADVERSARIAL ? 1 : 2;
    name = names[idx];
    res = b->res[idx];
    conf = bench_conf(b, name, BENCH_PREFIXES4,
                      (uint64_t) b->o.workers * b->o.events, path,
                      sizeof(path));

    t = now_ns();
    stream_alloc(&s, b->o.workers, b->o.events, workload == WL_POLICY);
    if (adversarial)
        gen_adversarial(b, &s);
    else
        gen_realistic(b, &s, workload == WL_POLICY);
    say(b, "\n== %s: ", name);
    if (workload == WL_REALISTIC)
        say(b, "Zipf s=%.1f over %u IPv4 + %u IPv6 sources, each "
            "connection followed by one reception or rejection\n", ZIPF_S,
            V4_SOURCES, V6_SOURCES);
    else if (adversarial)
        say(b, "every event from a fresh uniformly random source, half "
            "IPv4, half IPv6\n");
    else
        say(b, "the realistic stream through msys.audit: per connection "
            "set_peer,\n   record, the seed example's three queries "
            "(connections/receptions/rejections \"%s\"), record\n",
            BENCH_MONITOR);
    say(b, "   %d workers; %zu events per worker generated in %.2f s "
        "(%zu distinct sources); runs of at most %.1f s\n",
        b->o.workers, s.n, (double) (now_ns() - t) / 1e9, s.sources,
        b->o.duration);
    if (workload == WL_POLICY)
        say(b, "  %-14s %10s %7s %12s %10s %10s %10s %10s %10s %8s\n",
            "", "records", "secs", "records/s", "conns/s", "record p50",
            "p99", "policy p50", "p99", "B/addr");
    else
        say(b, "  %-14s %10s %7s %12s %10s %10s %10s\n", "", "events",
            "secs", "events/s", "record p50", "p99", "B/addr");

    /* inbound-audit: on a store whose file is in the page cache, as the
     * floor's table is, and (adversarial) on a new one. */
    warm = store_warm(conf);
    ina_run(b, workload, &s, conf, path, peer_names[PEER_INA],
            &res[PEER_INA], counts, sizeof(counts));
    if (workload == WL_REALISTIC)
        b->realistic_done = 1;
    if (adversarial) {
        rm_tree(conf->store);
        ina_run(b, workload, &s, conf, path, "cold store", &cold,
                cold_counts, sizeof(cold_counts));
    }

    /* Redis. */
    if (b->redis.pid > 0) {
        limit = b->o.redis_events < s.n ? b->o.redis_events : s.n;
        if (redis_flush(&b->redis, why, sizeof(why)) != 0) {
            res[PEER_REDIS].ran = 0;
            snprintf(res[PEER_REDIS].note, sizeof(res[0].note), "%.200s",
                     why);
        } else {
            mem0 = redis_used_memory(&b->redis);
            job_init(&j, b, workload, PEER_REDIS, limit, limit);
            j.s = &s;
            failed = run_workers(&j, worker_redis);
            job_result(&j, &res[PEER_REDIS]);
            res[PEER_REDIS].tracked = consumed_sources(&s, j.res,
                                                       adversarial);
            job_free(&j);
            if (failed)
                snprintf(res[PEER_REDIS].note, sizeof(res[0].note),
                         "%d worker(s) failed", failed);
            else if (mem0 >= 0)
                res[PEER_REDIS].bytes = redis_used_memory(&b->redis) - mem0;
        }
    } else {
        snprintf(res[PEER_REDIS].note, sizeof(res[0].note), "%.250s",
                 b->redis.note);
    }
    print_result_row(b, workload, peer_names[PEER_REDIS], &res[PEER_REDIS]);

    /* The floor: room for every key the stream can make, in two
     * windows of each width. */
    per_event = b->plan.nwidths
                * (b->plan.np4 > b->plan.np6 ? b->plan.np4 : b->plan.np6);
    keys = (adversarial ? (size_t) b->o.workers * s.n : s.sources * 2)
           * per_event;
    floor_new(&ft, keys);
    job_init(&j, b, workload, PEER_FLOOR, s.n, s.n / 2);
    j.s = &s;
    j.floor = &ft;
    failed = run_workers(&j, worker_floor);
    job_result(&j, &res[PEER_FLOOR]);
    res[PEER_FLOOR].tracked = consumed_sources(&s, j.res, adversarial);
    res[PEER_FLOOR].bytes = (double) res[PEER_FLOOR].inserts
                            * (double) sizeof(struct floor_slot);
    job_free(&j);
    floor_free(&ft);
    if (failed)
        snprintf(res[PEER_FLOOR].note, sizeof(res[0].note),
                 "%d worker(s) failed", failed);
    print_result_row(b, workload, peer_names[PEER_FLOOR], &res[PEER_FLOOR]);

    say(b, "  counts: %s\n", counts);
    if (adversarial)
        say(b, "  cold store counts: %s\n", cold_counts);
    say(b, "  inbound-audit's store: its file read into the page cache "
        "before the run (%.2f s),\n    as a running store's is and as the "
        "floor's table is touched%s\n", warm,
        adversarial ? ";\n    cold store: a new store, every page of whose "
                      "file the run touches first" : "");
    say_visibility(b, &res[PEER_INA], "at full speed", "", conf);
    if (workload == WL_REALISTIC && b->o.workers >= 2) {
        struct bench_result pr;

        run_paced(b, &s, res[PEER_INA].rate / 2, &pr);
        say_visibility(b, &pr, "at half speed", "paced_", conf);
        say_sessions(b, &pr, "at half speed", "paced_");
    }
    stream_free(&s);
    say(b, "  tracked addresses: inbound-audit %zu, redis %zu, floor %zu; "
        "B/addr: map bytes in use (inbound-audit), used_memory (redis), "
        "64-byte slots (floor)\n", res[PEER_INA].tracked,
        res[PEER_REDIS].tracked, res[PEER_FLOOR].tracked);
    if (workload == WL_POLICY)
        say(b, "  policy p50/p99: one call of the policy function, three "
            "queries (redis: one HMGET; floor: three lookups)\n");
    say_ratios(b, peer_names[PEER_INA], res[PEER_INA].rate, res);
    if (adversarial) {
        say_ratios(b, "cold store", cold.rate, res);
        fig(b, cold.rate, "%s.inbound_audit_cold.events_per_s", name);
        fig(b, (double) cold.rp50, "%s.inbound_audit_cold.record_p50_ns",
            name);
        fig(b, (double) cold.rp99, "%s.inbound_audit_cold.record_p99_ns",
            name);
    }
    fig(b, warm, "%s.inbound_audit.warm_s", name);

    fig(b, res[PEER_INA].rate, "%s.inbound_audit.events_per_s", name);
    fig(b, (double) res[PEER_INA].rp50, "%s.inbound_audit.record_p50_ns",
        name);
    fig(b, (double) res[PEER_INA].rp99, "%s.inbound_audit.record_p99_ns",
        name);
    if (res[PEER_INA].tracked > 0 && res[PEER_INA].bytes > 0)
        fig(b, res[PEER_INA].bytes / (double) res[PEER_INA].tracked,
            "%s.inbound_audit.store_bytes_per_addr", name);
    if (workload == WL_POLICY) {
        fig(b, res[PEER_INA].conn_rate, "%s.inbound_audit.conns_per_s",
            name);
        fig(b, (double) res[PEER_INA].qp50,
            "%s.inbound_audit.policy_call_p50_ns", name);
        fig(b, (double) res[PEER_INA].qp99,
            "%s.inbound_audit.policy_call_p99_ns", name);
    }
    if (res[PEER_REDIS].ok) {
        fig(b, res[PEER_REDIS].rate, "%s.redis.events_per_s", name);
        fig(b, (double) res[PEER_REDIS].rp50, "%s.redis.record_p50_ns",
            name);
        fig(b, res[PEER_INA].rate / res[PEER_REDIS].rate,
            "%s.ratio.inbound_audit_over_redis", name);
    }
    if (res[PEER_FLOOR].ok) {
        fig(b, res[PEER_FLOOR].rate, "%s.floor.events_per_s", name);
        fig(b, (double) res[PEER_FLOOR].rp50, "%s.floor.record_p50_ns",
            name);
        fig(b, res[PEER_FLOOR].rate / res[PEER_INA].rate,
            "%s.ratio.floor_over_inbound_audit", name);
    }
    /* Its map is reserved on disk: only the realistic store, which the
     * query figures reuse, stays until the end of the run. */
    if (workload != WL_REALISTIC && !b->o.keep && b->o.dir == NULL)
        rm_tree(conf->store);
    ina_conf_free(conf);
}

/* ---------------------------------------------------------------------
 * Queries
 * ------------------------------------------------------------------- */

/* lua_time_calls - time n calls of connections(monitor, addr) from C
 *
 * Runs under lua_pcall: the function, the monitor and the two addresses
 * (asked in turn) are at stack indices 1..4; upvalue 1 is the sample
 * array, upvalue 2 is n.  Returns the first address's count. */

static int
lua_time_calls(lua_State *L)
{
    uint64_t *v = lua_touserdata(L, lua_upvalueindex(1));
    lua_Integer n = lua_tointeger(L, lua_upvalueindex(2)), i;
    uint64_t t0, last = 0;

    for (i = 0; i < n; i++) {
        t0 = now_ns();
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 2);
        lua_pushvalue(L, 3 + (int) (i & 1));
        lua_call(L, 2, 1);
        v[i] = now_ns() - t0;
        if ((i & 1) == 0)
            last = (uint64_t) lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pushinteger(L, (lua_Integer) last);
    return 1;
}

/* query_lua - the Lua figures: per call timed from C, and a loop in Lua
 *
 * The per-call figure runs lua_time_calls under one lua_pcall, as a host
 * runs a hook: inside, each call is a plain lua_call of
 * msys.audit.connections(monitor, addr) with the strings already Lua
 * values, as in a script. */

static int
query_lua(struct bench_qres *q, uint64_t *lv, size_t n, const char *addr,
          const char *addr2)
{
    lua_State *L;
    uint64_t t0;

    if ((L = lua_new(q->why, sizeof(q->why))) == NULL)
        return -1;
    if (luaL_dostring(L, "require(\"msys.audit\")") != LUA_OK)
        goto lua_fail;
    lua_pushlightuserdata(L, lv);
    lua_pushinteger(L, (lua_Integer) n);
    lua_pushcclosure(L, lua_time_calls, 2);
    lua_getglobal(L, "msys");
    lua_getfield(L, -1, "audit");
    lua_getfield(L, -1, "connections");
    lua_remove(L, -2);
    lua_remove(L, -2);
    lua_pushliteral(L, BENCH_MONITOR);
    lua_pushstring(L, addr);
    lua_pushstring(L, addr2);
    t0 = now_ns();
    if (lua_pcall(L, 4, 1, 0) != LUA_OK)
        goto lua_fail;
    q->l_mean = (double) (now_ns() - t0) / (double) n;
    q->l_count = (uint64_t) lua_tointeger(L, -1);
    lua_pop(L, 1);
    q->nl = n;

    if (luaL_loadstring(L, loop_chunk) != LUA_OK)
        goto lua_fail;
    lua_pushliteral(L, BENCH_MONITOR);
    lua_pushstring(L, addr);
    lua_pushstring(L, addr2);
    lua_pushinteger(L, (lua_Integer) n);
    t0 = now_ns();
    if (lua_pcall(L, 4, 1, 0) != LUA_OK)
        goto lua_fail;
    q->lloop_mean = (double) (now_ns() - t0) / (double) n;
    lua_close(L);
    return 0;
lua_fail:
    snprintf(q->why, sizeof(q->why), "lua: %s", lua_tostring(L, -1));
    lua_close(L);
    return -1;
}

/* query_child - the query figures, measured in one process
 *
 * The point queries ask for the realistic stream's two most popular
 * sources in turn, in window 0 of BENCH_MONITOR; the Lua module opens
 * the same store through INBOUND_AUDIT_CONF.  Window 0 must not roll
 * over during the measure (a query of an empty window is a different,
 * cheaper lookup), so the measure is repeated if the minute changed.
 * The /16 query runs on a store counting IPv4 at /32 and /24 only, under
 * a pinned clock, so it sums 256 /24 counters. */

static int
query_child(struct bench *b, struct bench_qres *q, uint64_t *cv,
            uint64_t *lv, uint64_t *av, uint64_t *tv, size_t n, size_t na,
            const struct ina_conf *conf, const char *conf_path,
            const struct ina_conf *aggconf)
{
    struct ina_store *st;
    struct ina_cidr hot[2], a, block;
    char text[2][TEXTLEN];
    uint64_t t0, c = 0;
    int64_t w0;
    size_t i;
    int rc, attempt, x, y;

    /* The two most popular sources in turn: the handle keeps its last
     * lookup (a policy asks for three events of one key in a row), and a
     * point query here must find its key in the tree. */
    for (i = 0; i < 2; i++) {
        source_addr(source_of_rank(i, b->o.seed), b->o.seed, &hot[i]);
        addr_text(&hot[i], text[i], sizeof(text[i]));
    }
    if (setenv("INBOUND_AUDIT_CONF", conf_path, 1) != 0)
        return -1;
    if (ina_store_open(conf, 0, &st, q->why, sizeof(q->why)) != 0)
        return -1;
    /* The cost of the timer itself: two clock reads. */
    for (i = 0; i < n; i++) {
        t0 = now_ns();
        tv[i] = now_ns() - t0;
    }
    for (attempt = 0; attempt < 3; attempt++) {
        w0 = unix_now() / 60;
        if ((rc = ina_record(st, INA_CONNECTION, &hot[0], 1)) != 0
            || (rc = ina_record(st, INA_CONNECTION, &hot[1], 1)) != 0
            || (rc = ina_flush(st)) != 0) {
            snprintf(q->why, sizeof(q->why), "record: %s",
                     ina_strerror(rc));
            return -1;
        }
        t0 = now_ns();
        for (i = 0; i < n; i++) {
            uint64_t t = now_ns(), got;

            rc = ina_query(st, INA_CONNECTION, BENCH_MONITOR, &hot[i & 1],
                           0, 0, 0, &got, q->why, sizeof(q->why));
            cv[i] = now_ns() - t;
            if (rc != 0)
                return -1;
            if ((i & 1) == 0)
                c = got;
        }
        q->c_mean = (double) (now_ns() - t0) / (double) n;
        q->c_count = c;
        q->nc = n;
        if (query_lua(q, lv, n, text[0], text[1]) != 0)
            return -1;
        if (unix_now() / 60 == w0 && q->c_count > 0 && q->l_count > 0)
            break;
    }
    ina_store_close(st);
    if (attempt == 3) {
        snprintf(q->why, sizeof(q->why), "window 0 kept rolling over");
        return -1;
    }

    if (ina_store_open(aggconf, 0, &st, q->why, sizeof(q->why)) != 0)
        return -1;
    ina_store_set_clock(st, fixed_clock, &b->t0);
    memset(&a, 0, sizeof(a));
    a.family = 4;
    a.plen = 32;
    a.addr[0] = 10;
    for (x = 0; x < 256; x++)
        for (y = 1; y <= 6; y++) {
            /* 4 hosts in each /24 of 10.20/16, 1 in each of its
             * neighbours 10.19/16 and 10.21/16. */
            a.addr[1] = (uint8_t) (y <= 4 ? 20 : y == 5 ? 19 : 21);
            a.addr[2] = (uint8_t) x;
            a.addr[3] = (uint8_t) (y <= 4 ? y : 1);
            if ((rc = ina_record(st, INA_CONNECTION, &a, 1)) != 0) {
                snprintf(q->why, sizeof(q->why), "record: %s",
                         ina_strerror(rc));
                return -1;
            }
        }
    if ((rc = ina_flush(st)) != 0
        || (rc = ina_cidr_parse("10.20.0.0/16", 12, &block, NULL, 0)) != 0) {
        snprintf(q->why, sizeof(q->why), "%s", ina_strerror(rc));
        return -1;
    }
    t0 = now_ns();
    for (i = 0; i < na; i++) {
        uint64_t t = now_ns();

        rc = ina_query(st, INA_CONNECTION, BENCH_MONITOR, &block, 0, 0, 0,
                       &c, q->why, sizeof(q->why));
        av[i] = now_ns() - t;
        if (rc != 0)
            return -1;
    }
    q->a_mean = (double) (now_ns() - t0) / (double) na;
    q->a_count = c;
    q->a_counters = 256;
    q->na = na;
    ina_store_close(st);
    if (q->a_count != 1024) {
        snprintf(q->why, sizeof(q->why), "10.20.0.0/16 counts %" PRIu64
                 ", expected 1024", q->a_count);
        return -1;
    }
    q->ok = 1;
    return 0;
}

/* run_query - the query figures */

static void
run_query(struct bench *b)
{
    struct bench_qres *q;
    struct ina_conf *conf, *aggconf;
    struct bench_stream s;
    struct bench_result r;
    struct bench_job j;
    char path[PATH_MAX + 64], aggpath[PATH_MAX + 64], errbuf[ERRLEN];
    char s1[24], s2[24], s3[24];
    uint64_t *cv, *lv, *av, *tv, p50, p99, t50, t99;
    size_t n = b->o.queries, na = b->o.queries / 20 + 100, bytes;
    pid_t pid;
    int status, failed;

    say(b, "\n== queries: one process, every call timed\n");
    snprintf(path, sizeof(path), "%s/realistic.conf", b->dir);
    if (b->realistic_done) {
        if (ina_conf_load(path, &conf, errbuf, sizeof(errbuf)) != 0)
            errx(1, "%s", errbuf);
        say(b, "   on the realistic workload's store\n");
    } else {
        /* A store with realistic content to query. */
        conf = bench_conf(b, "realistic", BENCH_PREFIXES4,
                          (uint64_t) b->o.workers * 20000, path,
                          sizeof(path));
        stream_alloc(&s, b->o.workers,
                     b->o.events < 20000 ? b->o.events : 20000, 0);
        gen_realistic(b, &s, 0);
        job_init(&j, b, WL_REALISTIC, PEER_INA, s.n, 0);
        j.s = &s;
        j.conf = conf;
        j.duration_ns = UINT64_MAX / 2;
        failed = run_workers(&j, worker_ina);
        job_result(&j, &r);
        job_free(&j);
        stream_free(&s);
        if (failed)
            errx(1, "query: %d worker(s) failed to fill the store", failed);
        say(b, "   on a store filled with %" PRIu64 " realistic events\n",
            r.events);
    }
    aggconf = bench_conf(b, "aggregate", BENCH_AGG_PREFIXES4, 65536, aggpath,
                         sizeof(aggpath));

    bytes = sizeof(*q) + (3 * n + na) * sizeof(uint64_t);
    q = shm_alloc(bytes, 0);
    cv = (uint64_t *) (void *) (q + 1);
    lv = cv + n;
    tv = lv + n;
    av = tv + n;
    fflush(NULL);
    if ((pid = fork()) < 0)
        err(1, "fork");
    if (pid == 0)
        _exit(query_child(b, q, cv, lv, av, tv, n, na, conf, path, aggconf)
              == 0 ? 0 : 1);
    if (waitpid(pid, &status, 0) < 0)
        err(1, "waitpid");
    ina_conf_free(conf);
    ina_conf_free(aggconf);
    if (!q->ok)
        errx(1, "query: %s", q->why[0] ? q->why : "the measuring process "
             "failed");
    b->q = *q;
    b->q_ran = 1;

    percentiles(tv, n, &t50, &t99);
    say(b, "   (each figure includes the two clock reads around the call: "
        "p50 %s)\n", fmt_ns(s1, sizeof(s1), (double) t50));
    say(b, "  %-52s %10s %10s %10s\n", "", "p50", "p99", "mean");
    percentiles(cv, q->nc, &p50, &p99);
    say(b, "  %-52s %10s %10s %10s\n",
        "C    ina_query(connection, \"" BENCH_MONITOR "\", /32, 0, 0)",
        fmt_ns(s1, sizeof(s1), (double) p50),
        fmt_ns(s2, sizeof(s2), (double) p99),
        fmt_ns(s3, sizeof(s3), q->c_mean));
    fig(b, (double) p50, "query.c_point.p50_ns");
    fig(b, (double) p99, "query.c_point.p99_ns");
    percentiles(lv, q->nl, &p50, &p99);
    say(b, "  %-52s %10s %10s %10s\n",
        "Lua  msys.audit.connections(\"" BENCH_MONITOR "\", addr)",
        fmt_ns(s1, sizeof(s1), (double) p50),
        fmt_ns(s2, sizeof(s2), (double) p99),
        fmt_ns(s3, sizeof(s3), q->l_mean));
    fig(b, (double) p50, "query.lua_point.p50_ns");
    fig(b, (double) p99, "query.lua_point.p99_ns");
    say(b, "  %-52s %10s %10s %10s\n",
        "Lua  the same call in a loop inside Lua (mean only)", "-", "-",
        fmt_ns(s3, sizeof(s3), q->lloop_mean));
    fig(b, q->lloop_mean, "query.lua_loop.mean_ns");
    percentiles(av, q->na, &p50, &p99);
    say(b, "  %-52s %10s %10s %10s\n",
        "C    ina_query 10.20.0.0/16 summing 256 /24 counters",
        fmt_ns(s1, sizeof(s1), (double) p50),
        fmt_ns(s2, sizeof(s2), (double) p99),
        fmt_ns(s3, sizeof(s3), q->a_mean));
    fig(b, (double) p50, "query.c_16_over_24.p50_ns");
    fig(b, (double) p99, "query.c_16_over_24.p99_ns");
    say(b, "   point queries: window 0 of the two most popular sources in "
        "turn (the first's count %" PRIu64 "),\n   so that no call finds "
        "its key in the handle's last lookup; /16: a store with "
        "ipv4_prefixes {%s},\n   4 hosts "
        "in each /24 of 10.20/16 and neighbours in 10.19/16 and 10.21/16 "
        "(count %" PRIu64 ", exact)\n", q->c_count, BENCH_AGG_PREFIXES4,
        q->a_count);
    munmap(q, bytes);
}

/* ---------------------------------------------------------------------
 * Scale
 * ------------------------------------------------------------------- */

/* walk_counter - ina_walk callback: touch every record */

static int
walk_counter(void *arg, const struct ina_counter *c)
{
    *(uint64_t *) arg += c->count[0];
    return 0;
}

/* scale_child - the figures of a store holding n tracked addresses */

static int
scale_child(struct bench *b, const struct ina_conf *conf, uint64_t n,
            size_t m, struct bench_sres *r, uint64_t *v)
{
    struct ina_walker walker;
    struct ina_store *st;
    struct ina_cidr a;
    struct ina_stat s;
    uint64_t rng = b->o.seed ^ mix64(n), t, c, sum = 0;
    size_t i;
    int rc;

    if (ina_store_open(conf, 0, &st, r->why, sizeof(r->why)) != 0)
        return -1;
    ina_store_set_clock(st, fixed_clock, &b->t0);
    r->file0_kb = proc_status_kb("RssFile") + proc_status_kb("RssShmem");
    r->anon0_kb = proc_status_kb("RssAnon");
    for (i = 0; i < m; i++) {
        scale_addr(rnd(&rng) % n, &a);
        t = now_ns();
        rc = ina_record(st, INA_CONNECTION, &a, 1);
        v[i] = now_ns() - t;
        if (rc != 0) {
            snprintf(r->why, sizeof(r->why), "ina_record: %s",
                     ina_strerror(rc));
            return -1;
        }
    }
    if ((rc = ina_flush(st)) != 0) {
        snprintf(r->why, sizeof(r->why), "ina_flush: %s", ina_strerror(rc));
        return -1;
    }
    percentiles(v, m, &r->rp50, &r->rp99);
    for (i = 0; i < m; i++) {
        scale_addr(rnd(&rng) % n, &a);
        t = now_ns();
        rc = ina_query(st, INA_CONNECTION, BENCH_MONITOR, &a, 0, 0, 0, &c,
                       r->why, sizeof(r->why));
        v[i] = now_ns() - t;
        if (rc != 0)
            return -1;
        if (c == 0) {
            snprintf(r->why, sizeof(r->why), "a tracked address counts 0");
            return -1;
        }
    }
    percentiles(v, m, &r->qp50, &r->qp99);
    if ((rc = ina_store_stat(st, &s)) != 0) {
        snprintf(r->why, sizeof(r->why), "ina_store_stat: %s",
                 ina_strerror(rc));
        return -1;
    }
    r->map_used = s.map_used;
    r->counters = s.counters;
    /* A worker that has touched the whole store: its RSS holds every
     * page of the map (shared with every other worker). */
    memset(&walker, 0, sizeof(walker));
    walker.counter = walk_counter;
    walker.arg = &sum;
    if ((rc = ina_walk(st, &walker)) != 0) {
        snprintf(r->why, sizeof(r->why), "ina_walk: %s", ina_strerror(rc));
        return -1;
    }
    r->file_kb = proc_status_kb("RssFile") + proc_status_kb("RssShmem");
    r->anon_kb = proc_status_kb("RssAnon");
    ina_store_close(st);
    r->ok = 1;
    return 0;
}

/* floor_scale - the floor's lookup at n tracked addresses
 *
 * A table holding every key the store holds (each width and prefix of
 * the n addresses, at the pinned clock), then m timed lookups of the /32
 * key of random tracked addresses, as scale_child queries the store: how
 * an O(1) lookup grows with the memory it spans.  Returns -1 with why if
 * the table would take more than half the memory available. */

static int
floor_scale(struct bench *b, uint64_t n, size_t m, uint64_t *v,
            struct bench_sres *r, char *why, size_t len)
{
    const struct bench_plan *p = &b->plan;
    struct floor_table ft;
    struct floor_slot *s;
    struct bench_keys k;
    struct ina_cidr a;
    uint64_t keys = 0, avail, rng = b->o.seed ^ mix64(n) ^ 0xf1002u, t, i;
    size_t w, j, bytes;
    int inserted;

    /* At most min(n, 2^len) distinct prefixes of each length (IPv4:
     * len <= 32). */
    for (j = 0; j < p->np4; j++)
        keys += n < (1ull << p->p4[j]) ? n : 1ull << p->p4[j];
    keys *= p->nwidths;
    avail = proc_kb("/proc/meminfo", "MemAvailable") * 1024;
    bytes = (size_t) floor_slots(keys) * sizeof(struct floor_slot);
    if (bytes > avail / 2) {
        snprintf(why, len, "its table of %.1f GiB would take more than "
                 "half the memory available", (double) bytes / 1073741824.0);
        return -1;
    }
    floor_new(&ft, keys);
    for (i = 0; i < n; i++) {
        scale_addr(i, &a);
        bench_keys(p, &a, b->t0, &k);
        for (w = 0; w < k.n; w++) {
            if ((s = floor_find(&ft, k.key[w], 1, &inserted)) == NULL) {
                floor_free(&ft);
                snprintf(why, len, "the floor's table is full");
                return -1;
            }
            s->count[INA_CONNECTION]++;
        }
    }
    for (j = 0; j < m; j++) {
        scale_addr(rnd(&rng) % n, &a);
        bench_keys(p, &a, b->t0, &k);
        t = now_ns();
        s = floor_find(&ft, k.key[k.q], 0, &inserted);
        if (s != NULL && __atomic_load_n(&s->count[INA_CONNECTION],
                                         __ATOMIC_RELAXED) == 0)
            s = NULL;
        v[j] = now_ns() - t;
        if (s == NULL) {
            floor_free(&ft);
            snprintf(why, len, "a tracked address is not in the floor");
            return -1;
        }
    }
    floor_free(&ft);
    percentiles(v, m, &r->fp50, &r->fp99);
    r->floor_ok = 1;
    return 0;
}

/* fmt_count - 10000 as "10k", 1000000 as "1M" */

static const char *
fmt_count(char *buf, size_t len, uint64_t n)
{
    if (n >= 1000000 && n % 1000000 == 0)
        snprintf(buf, len, "%" PRIu64 "M", n / 1000000);
    else if (n >= 1000 && n % 1000 == 0)
        snprintf(buf, len, "%" PRIu64 "k", n / 1000);
    else
        snprintf(buf, len, "%" PRIu64, n);
    return buf;
}

/* run_scale - cost, bytes and RSS at growing numbers of addresses
 *
 * The store is filled cumulatively (10k, then 90k more, ...) by the K
 * workers, one connection per new address, under a pinned clock so that
 * every count stays in window 0 however long the fill takes. */

static void
run_scale(struct bench *b)
{
    struct bench_sres *r;
    struct ina_conf *conf;
    struct bench_result fr;
    struct bench_job j;
    char path[PATH_MAX + 64], c1[24], s1[24], s2[24], s3[24], s4[24];
    char s5[24], fwhy[ERRLEN];
    uint64_t filled = 0, n, *v;
    double rate = 0, secs, rss, anon;
    size_t i, m = b->o.quick ? 2000 : 20000, bytes;
    pid_t pid;
    int status, failed;

    conf = bench_conf(b, "scale", BENCH_PREFIXES4,
                      b->o.nscale ? b->o.scale[b->o.nscale - 1] : 0, path,
                      sizeof(path));
    say(b, "\n== scale: distinct IPv4 addresses, one connection each, "
        "recorded by %d workers;\n   then one process times %zu records "
        "and %zu /32 queries of random tracked addresses\n",
        b->o.workers, m, m);
    say(b, "  %9s %10s %10s %10s %10s %10s %10s %10s %8s %8s %9s\n",
        "addresses", "fill ev/s", "record p50", "p99", "query p50", "p99",
        "floor p50", "counters", "map B/a", "RSS B/a", "priv +kB");
    bytes = sizeof(*r) + m * sizeof(uint64_t);
    for (i = 0; i < b->o.nscale; i++) {
        n = b->o.scale[i];
        if (n <= filled)
            continue;
        if (b->o.scale_budget > 0 && rate > 0
            && (double) (n - filled) / rate > b->o.scale_budget) {
            snprintf(b->scale_note, sizeof(b->scale_note),
                     "%s and beyond skipped: the fill would take about "
                     "%.0f s at %.0f events/s (budget %.0f s, -B 0 lifts "
                     "it)", fmt_count(c1, sizeof(c1), n),
                     (double) (n - filled) / rate, rate,
                     b->o.scale_budget);
            say(b, "  %s\n", b->scale_note);
            break;
        }
        job_init(&j, b, WL_SCALE, PEER_INA, 0, 0);
        j.conf = conf;
        j.fill_lo = filled;
        j.fill_hi = n;
        failed = run_workers(&j, worker_fill);
        job_result(&j, &fr);
        job_free(&j);
        if (failed)
            errx(1, "scale: %d fill worker(s) failed at %" PRIu64, failed,
                 n);
        secs = fr.secs;
        rate = secs > 0 ? (double) (n - filled) / secs : 0;
        filled = n;

        r = shm_alloc(bytes, 0);
        v = (uint64_t *) (void *) (r + 1);
        fflush(NULL);
        if ((pid = fork()) < 0)
            err(1, "fork");
        if (pid == 0)
            _exit(scale_child(b, conf, n, m, r, v) == 0 ? 0 : 1);
        if (waitpid(pid, &status, 0) < 0)
            err(1, "waitpid");
        if (!r->ok)
            errx(1, "scale at %" PRIu64 ": %s", n, r->why);
        if (floor_scale(b, n, m, v, r, fwhy, sizeof(fwhy)) != 0)
            say(b, "  floor at %s not measured: %s\n",
                fmt_count(c1, sizeof(c1), n), fwhy);
        b->scale_n[b->nscale_done] = n;
        b->scale[b->nscale_done++] = *r;
        rss = (double) (r->file_kb > r->file0_kb ? r->file_kb - r->file0_kb
                                                 : 0) * 1024.0 / (double) n;
        anon = (double) (r->anon_kb > r->anon0_kb ? r->anon_kb - r->anon0_kb
                                                  : 0);
        if (r->floor_ok)
            fmt_ns(s5, sizeof(s5), (double) r->fp50);
        else
            snprintf(s5, sizeof(s5), "-");
        say(b, "  %9s %10.0f %10s %10s %10s %10s %10s %10" PRIu64 " %8.0f "
            "%8.0f %9.0f\n", fmt_count(c1, sizeof(c1), n), rate,
            fmt_ns(s1, sizeof(s1), (double) r->rp50),
            fmt_ns(s2, sizeof(s2), (double) r->rp99),
            fmt_ns(s3, sizeof(s3), (double) r->qp50),
            fmt_ns(s4, sizeof(s4), (double) r->qp99), s5, r->counters,
            (double) r->map_used / (double) n, rss, anon);
        fig(b, rate, "scale.%s.fill_events_per_s", c1);
        fig(b, (double) r->rp50, "scale.%s.record_p50_ns", c1);
        fig(b, (double) r->rp99, "scale.%s.record_p99_ns", c1);
        fig(b, (double) r->qp50, "scale.%s.query_p50_ns", c1);
        fig(b, (double) r->qp99, "scale.%s.query_p99_ns", c1);
        if (r->floor_ok) {
            fig(b, (double) r->fp50, "scale.%s.floor_query_p50_ns", c1);
            fig(b, (double) r->fp99, "scale.%s.floor_query_p99_ns", c1);
        }
        fig(b, (double) r->map_used / (double) n,
            "scale.%s.store_bytes_per_addr", c1);
        fig(b, rss, "scale.%s.rss_bytes_per_addr", c1);
        fig(b, anon, "scale.%s.private_kb_growth", c1);
        munmap(r, bytes);
    }
    say(b, "   floor p50: the same /32 lookups in a floor table holding "
        "the store's keys\n   (an O(1) lookup: how the cost grows with "
        "the memory it spans alone);\n");
    say(b, "   map B/a: map bytes in use per address (data.mdb reserves "
        "the whole map on disk);\n   RSS B/a: the measuring process's "
        "resident map pages once it has walked the whole store\n   "
        "(file pages, shared by every worker, not per worker); priv +kB: "
        "its private memory\n   grown during the measure (the write "
        "transactions of its flushes)\n");
    ina_conf_free(conf);
}

/* ---------------------------------------------------------------------
 * Summary
 * ------------------------------------------------------------------- */

/* target_row - one line of the targets table */

static void
target_row(struct bench *b, const char *label, const char *seen,
           const char *target, int status)
{
    static const char *const st[] = { "n/a", "met", "NOT MET" };

    say(b, "  %-44s %14s   %-22s %s\n", label, seen, target, st[status]);
}

/* target_ge - status of a value that must reach a bound (0: n/a) */

static int
target_ge(int have, double v, double bound)
{
    return !have ? 0 : v >= bound ? 1 : 2;
}

/* target_le - status of a value that must stay under a bound */

static int
target_le(int have, double v, double bound)
{
    return !have ? 0 : v <= bound ? 1 : 2;
}

/* print_targets - the issue's targets, met or not */

static void
print_targets(struct bench *b)
{
    static const char *const names[] = { "realistic", "adversarial",
                                         "policy" };
    char seen[64], label[96];
    const struct bench_result *r;
    uint64_t p50, p99;
    double v, bound;
    size_t i;
    int have, k;

    say(b, "\n== targets (this machine: %ld CPUs, %d workers)\n",
        sysconf(_SC_NPROCESSORS_ONLN), b->o.workers);
    r = b->res[0];
    have = r[PEER_INA].ran && r[PEER_INA].ok;
    snprintf(seen, sizeof(seen), have ? "%.0f" : "-", r[PEER_INA].rate);
    target_row(b, "realistic events/s", seen, ">= 1000000",
               target_ge(have, r[PEER_INA].rate, 1e6));
    r = b->res[1];
    have = r[PEER_INA].ran && r[PEER_INA].ok;
    snprintf(seen, sizeof(seen), have ? "%.0f" : "-", r[PEER_INA].rate);
    target_row(b, "adversarial events/s", seen, ">= 300000",
               target_ge(have, r[PEER_INA].rate, 3e5));
    for (k = 0; k < 3; k++) {
        r = b->res[k];
        have = r[PEER_INA].ran && r[PEER_REDIS].ran && r[PEER_REDIS].ok
               && r[PEER_REDIS].rate > 0;
        v = have ? r[PEER_INA].rate / r[PEER_REDIS].rate : 0;
        fmt_ratio(seen, sizeof(seen), v);
        snprintf(label, sizeof(label), "%s: inbound-audit / Redis",
                 names[k]);
        target_row(b, label, seen, ">= 30x faster", target_ge(have, v, 30));
    }
    for (k = 0; k < 3; k++) {
        r = b->res[k];
        have = r[PEER_INA].ran && r[PEER_FLOOR].ran && r[PEER_FLOOR].ok
               && r[PEER_INA].rate > 0;
        v = have ? r[PEER_FLOOR].rate / r[PEER_INA].rate : 0;
        fmt_ratio(seen, sizeof(seen), v);
        snprintf(label, sizeof(label), "%s: floor / inbound-audit",
                 names[k]);
        target_row(b, label, seen, "<= 5x", target_le(have, v, 5));
    }
    have = b->q_ran;
    for (i = 0; i < b->nfigs; i++) {
        const char *n = b->figs[i].name;

        if (strcmp(n, "query.c_point.p50_ns") == 0) {
            fmt_ns(seen, sizeof(seen), b->figs[i].value);
            target_row(b, "point query from C, p50", seen, "<= 500 ns",
                       target_le(have, b->figs[i].value, 500));
        } else if (strcmp(n, "query.lua_point.p50_ns") == 0) {
            fmt_ns(seen, sizeof(seen), b->figs[i].value);
            target_row(b, "point query from Lua, p50", seen, "<= 1 us",
                       target_le(have, b->figs[i].value, 1000));
        } else if (strcmp(n, "query.c_16_over_24.p50_ns") == 0) {
            fmt_ns(seen, sizeof(seen), b->figs[i].value);
            target_row(b, "/16 query over /24 counters, p50", seen,
                       "<= 20 us", target_le(have, b->figs[i].value, 20000));
        }
    }
    if (!have) {
        target_row(b, "point query from C, p50", "-", "<= 500 ns", 0);
        target_row(b, "point query from Lua, p50", "-", "<= 1 us", 0);
        target_row(b, "/16 query over /24 counters, p50", "-", "<= 20 us",
                   0);
    }
    /* Growth: cost at the largest point over cost at the smallest, against
     * the ratio of their logarithms. */
    have = b->nscale_done >= 2;
    if (have) {
        char c0[24], c1[24];
        size_t last = b->nscale_done - 1;

        bound = log2((double) b->scale_n[last]) / log2((double) b->scale_n[0]);
        fmt_count(c0, sizeof(c0), b->scale_n[0]);
        fmt_count(c1, sizeof(c1), b->scale_n[last]);
        for (k = 0; k < 2; k++) {
            p50 = k == 0 ? b->scale[0].rp50 : b->scale[0].qp50;
            p99 = k == 0 ? b->scale[last].rp50 : b->scale[last].qp50;
            v = p50 > 0 ? (double) p99 / (double) p50 : 0;
            snprintf(seen, sizeof(seen), "%.2fx", v);
            snprintf(label, sizeof(label), "growth %s -> %s, %s p50", c0, c1,
                     k == 0 ? "record" : "query");
            {
                char tgt[32];

                snprintf(tgt, sizeof(tgt), "<= %.2fx (log)", bound);
                target_row(b, label, seen, tgt, target_le(1, v, bound));
            }
            fig(b, v, "scale.growth.%s_p50", k == 0 ? "record" : "query");
        }
        if (b->scale[0].floor_ok && b->scale[last].floor_ok
            && b->scale[0].fp50 > 0) {
            v = (double) b->scale[last].fp50 / (double) b->scale[0].fp50;
            say(b, "  (over the same range the floor's O(1) lookup grows "
                "%.2fx: the memory's share)\n", v);
            fig(b, v, "scale.growth.floor_query_p50");
        }
        if (b->scale_n[last] < 10000000)
            say(b, "  (the target is 10k -> 10M; measured up to %s)\n", c1);
    } else {
        target_row(b, "growth 10k -> 10M, record p50", "-", "<= log", 0);
        target_row(b, "growth 10k -> 10M, query p50", "-", "<= log", 0);
    }
}

/* print_json - every figure as one JSON object on stdout */

static void
print_json(struct bench *b)
{
    size_t i;

    printf("{\n  \"version\": \"%s\",\n  \"workers\": %d,\n  \"cpus\": %ld,"
           "\n  \"seed\": %" PRIu64 ",\n  \"redis\": %s,\n  \"figures\": {",
           INA_VERSION_STRING, b->o.workers, sysconf(_SC_NPROCESSORS_ONLN),
           b->o.seed, b->res[0][PEER_REDIS].ok || b->res[1][PEER_REDIS].ok
                          || b->res[2][PEER_REDIS].ok ? "true" : "false");
    for (i = 0; i < b->nfigs; i++) {
        printf("%s\n    \"%s\": ", i ? "," : "", b->figs[i].name);
        if (isfinite(b->figs[i].value))
            printf("%.6g", b->figs[i].value);
        else
            printf("null");
    }
    printf("\n  }\n}\n");
}

/* ---------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------- */

/* bench_cleanup - stop Redis and remove the temporary directory */

static void
bench_cleanup(void)
{
    struct bench *b = bench_current;

    if (b == NULL || getpid() != b->parent)
        return;
    bench_current = NULL;
    redis_stop(&b->redis);
    if (b->own_dir && !b->o.keep)
        rm_tree(b->dir);
}

/* bench_signal - stop Redis and remove the stores on the way out
 *
 * The stores can take gigabytes; nftw is not async-signal-safe, so an
 * rm -rf child removes them. */

static void
bench_signal(int sig)
{
    struct bench *b = bench_current;
    pid_t pid = -1;
    int status, i;

    if (b != NULL && getpid() == b->parent) {
        for (i = 0; i < MAX_WORKERS + 2; i++)
            if (b->workers[i] > 0)
                kill(b->workers[i], SIGTERM);
        if (b->redis.pid > 0)
            kill(b->redis.pid, SIGTERM);
        if (b->own_dir && !b->o.keep && (pid = fork()) == 0) {
            execl("/bin/rm", "rm", "-rf", b->dir, (char *) NULL);
            _exit(127);
        }
        if (pid > 0)
            waitpid(pid, &status, 0);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* parse_count - "250000", "10k", "1M" */

static int
parse_count(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *s == '-')
        return -1;
    if (*end == 'k' || *end == 'K') {
        v *= 1000;
        end++;
    } else if (*end == 'm' || *end == 'M') {
        v *= 1000000;
        end++;
    }
    if (*end != '\0' || v == 0)
        return -1;
    *out = (uint64_t) v;
    return 0;
}

/* parse_seconds - a positive duration, or zero if zero_ok */

static double
parse_seconds(const char *s, int zero_ok)
{
    char *end;
    double v;

    v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0) || v > 86400
        || (!zero_ok && !(v > 0)))
        usage();
    return v;
}

/* parse_workloads - a comma-separated list of workload names */

static unsigned
parse_workloads(const char *list)
{
    static const struct {
        const char *name;
        unsigned bit;
    } tab[] = {
        { "realistic", WL_REALISTIC }, { "adversarial", WL_ADVERSARIAL },
        { "policy", WL_POLICY }, { "query", WL_QUERY },
        { "scale", WL_SCALE }, { "all", WL_ALL }
    };
    char buf[256], *tok, *save;
    unsigned bits = 0;
    size_t i;

    snprintf(buf, sizeof(buf), "%s", list);
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
            if (strcmp(tok, tab[i].name) == 0)
                break;
        if (i == sizeof(tab) / sizeof(tab[0])) {
            warnx("unknown workload \"%s\" (realistic, adversarial, policy, "
                  "query, scale, all)", tok);
            usage();
        }
        bits |= tab[i].bit;
    }
    if (bits == 0)
        usage();
    return bits;
}

/* parse_scale - a comma-separated list of address counts, sorted */

static void
parse_scale(struct bench_opts *o, const char *list)
{
    char buf[256], *tok, *save;
    uint64_t v, t;
    size_t i, k;

    snprintf(buf, sizeof(buf), "%s", list);
    o->nscale = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (parse_count(tok, &v) != 0 || v > 100000000u) {
            warnx("bad scale point \"%s\" (1 .. 100M, e.g. 10k or 1M)", tok);
            usage();
        }
        if (o->nscale == MAX_SCALE)
            usage();
        o->scale[o->nscale++] = v;
    }
    for (i = 1; i < o->nscale; i++)
        for (k = i; k > 0 && o->scale[k - 1] > o->scale[k]; k--) {
            t = o->scale[k];
            o->scale[k] = o->scale[k - 1];
            o->scale[k - 1] = t;
        }
}

/* main - parse the options, run the workloads, print the figures */

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "workers", required_argument, NULL, 'k' },
        { "events", required_argument, NULL, 'n' },
        { "duration", required_argument, NULL, 't' },
        { "workloads", required_argument, NULL, 'w' },
        { "scale", required_argument, NULL, 'S' },
        { "scale-budget", required_argument, NULL, 'B' },
        { "redis-events", required_argument, NULL, 'R' },
        { "queries", required_argument, NULL, 'q' },
        { "seed", required_argument, NULL, 's' },
        { "dir", required_argument, NULL, 'd' },
        { "flush-delay", required_argument, NULL, 'F' },
        { "keep", no_argument, NULL, 'K' },
        { "no-redis", no_argument, NULL, 'N' },
        { "quick", no_argument, NULL, 'Q' },
        { "json", no_argument, NULL, 'J' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    static struct bench bench;
    struct bench *b = &bench;
    const char *o_events = NULL, *o_duration = NULL, *o_redis = NULL;
    const char *o_queries = NULL, *o_scale = NULL, *o_budget = NULL;
    char path[PATH_MAX + 64];
    uint64_t v;
    size_t i;
    int ch;

    b->o.workers = DEF_WORKERS;
    b->o.workloads = WL_ALL;
    b->o.seed = DEF_SEED;
    b->o.flush_delay = -1;
    while ((ch = getopt_long(argc, argv, "k:n:t:w:S:B:R:q:s:d:F:Vh", longopts,
                             NULL)) != -1) {
        switch (ch) {
        case 'k':
            if (parse_count(optarg, &v) != 0 || v > MAX_WORKERS)
                usage();
            b->o.workers = (int) v;
            break;
        case 'n':
            o_events = optarg;
            break;
        case 't':
            o_duration = optarg;
            break;
        case 'w':
            b->o.workloads = parse_workloads(optarg);
            break;
        case 'S':
            o_scale = optarg;
            break;
        case 'B':
            o_budget = optarg;
            break;
        case 'R':
            o_redis = optarg;
            break;
        case 'q':
            o_queries = optarg;
            break;
        case 's':
            if (parse_count(optarg, &b->o.seed) != 0)
                usage();
            break;
        case 'F':
            if (parse_count(optarg, &v) != 0 || v > INA_FLUSH_DELAY_MAX)
                usage();
            b->o.flush_delay = (int) v;
            break;
        case 'd':
            b->o.dir = optarg;
            break;
        case 'K':
            b->o.keep = 1;
            break;
        case 'N':
            b->o.no_redis = 1;
            break;
        case 'Q':
            b->o.quick = 1;
            break;
        case 'J':
            b->o.json = 1;
            break;
        case 'V':
            printf("inaudit-bench (%s)\n", INA_VERSION_STRING);
            return 0;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    /* Defaults, then --quick's, then what was given. */
    b->o.events = b->o.quick ? QUICK_EVENTS : DEF_EVENTS;
    b->o.duration = b->o.quick ? QUICK_DURATION : DEF_DURATION;
    b->o.redis_events = b->o.quick ? QUICK_REDIS_EVENTS : DEF_REDIS_EVENTS;
    b->o.queries = b->o.quick ? QUICK_QUERIES : DEF_QUERIES;
    b->o.scale_budget = b->o.quick ? QUICK_SCALE_BUDGET : DEF_SCALE_BUDGET;
    parse_scale(&b->o, b->o.quick ? QUICK_SCALE : DEF_SCALE);
    if (o_events != NULL) {
        if (parse_count(o_events, &v) != 0 || v < 2 || v > 100000000u)
            usage();
        b->o.events = (size_t) v;
    }
    if (o_duration != NULL)
        b->o.duration = parse_seconds(o_duration, 0);
    if (o_redis != NULL) {
        if (parse_count(o_redis, &v) != 0)
            usage();
        b->o.redis_events = (size_t) v;
    }
    if (o_queries != NULL) {
        if (parse_count(o_queries, &v) != 0 || v > 100000000u)
            usage();
        b->o.queries = (size_t) v;
    }
    if (o_scale != NULL)
        parse_scale(&b->o, o_scale);
    if (o_budget != NULL)
        b->o.scale_budget = parse_seconds(o_budget, 1);

    b->out = b->o.json ? stderr : stdout;
    b->parent = getpid();
    b->t0 = unix_now();
    signal(SIGPIPE, SIG_IGN);
    if (b->o.dir != NULL) {
        if (mkdir(b->o.dir, 0750) != 0 && errno != EEXIST)
            err(1, "%s", b->o.dir);
        if (realpath(b->o.dir, b->dir) == NULL)
            err(1, "%s", b->o.dir);
    } else {
        const char *tmp = getenv("TMPDIR");

        snprintf(b->dir, sizeof(b->dir), "%s/inaudit-bench.XXXXXX",
                 tmp != NULL && *tmp == '/' ? tmp : "/tmp");
        if (mkdtemp(b->dir) == NULL)
            err(1, "mkdtemp %s", b->dir);
        b->own_dir = 1;
    }
    bench_current = b;
    atexit(bench_cleanup);
    signal(SIGINT, bench_signal);
    signal(SIGTERM, bench_signal);
    signal(SIGHUP, bench_signal);

    b->conf = bench_conf(b, "sample", BENCH_PREFIXES4, 0, path,
                         sizeof(path));
    bench_plan(&b->plan, b->conf);
    if (b->o.workloads & (WL_REALISTIC | WL_POLICY | WL_QUERY))
        zipf_init(&b->zipf, NSOURCES, ZIPF_S);

    say(b, "inaudit-bench: %s, %d workers on %ld CPUs, seed %" PRIu64 "%s\n",
        INA_VERSION_STRING, b->o.workers, sysconf(_SC_NPROCESSORS_ONLN),
        b->o.seed, b->o.quick ? " (quick run: the figures are not "
        "meaningful)" : "");
    say(b, "config: monitors");
    for (i = 0; i < b->conf->nmonitors; i++)
        say(b, " %s", b->conf->monitors[i].name);
    say(b, "; IPv4");
    for (i = 0; i < b->conf->nprefixes4; i++)
        say(b, " /%u", b->conf->prefixes4[i]);
    say(b, "; IPv6");
    for (i = 0; i < b->conf->nprefixes6; i++)
        say(b, " /%u", b->conf->prefixes6[i]);
    say(b, "; flush_delay %u ms; map_size %llu MiB + 1 KiB per event or "
        "address\n", b->conf->flush_delay,
        (unsigned long long) (BENCH_MAP_BASE >> 20));
    say(b, "stores: %s%s\n", b->dir, b->own_dir && !b->o.keep
        ? " (removed at exit)" : "");
    if (b->o.workloads & (WL_REALISTIC | WL_ADVERSARIAL | WL_POLICY)) {
        if (b->o.no_redis)
            snprintf(b->redis.note, sizeof(b->redis.note),
                     "not measured (--no-redis)");
        else
            redis_start(b);
        if (b->redis.pid > 0)
            say(b, "redis: redis-server %s on 127.0.0.1:%d, no persistence;"
                " per event one pipelined round trip of %zu HINCRBY\n",
                b->redis.version, b->redis.port,
                b->plan.nwidths * b->plan.np4);
        else
            say(b, "redis: %s\n", b->redis.note);
        say(b, "floor: MAP_SHARED open-addressing table, 64-byte slots "
            "(same key bytes, 3 uint64 counters), CAS insert, atomic "
            "adds\n");
    }

    if (b->o.workloads & WL_REALISTIC)
        run_workload(b, WL_REALISTIC);
    if (b->o.workloads & WL_ADVERSARIAL)
        run_workload(b, WL_ADVERSARIAL);
    if (b->o.workloads & WL_POLICY)
        run_workload(b, WL_POLICY);
    redis_stop(&b->redis);
    if (b->o.workloads & WL_QUERY)
        run_query(b);
    if (b->o.workloads & WL_SCALE)
        run_scale(b);
    print_targets(b);
    if (b->o.json)
        print_json(b);
    ina_conf_free(b->conf);
    free(b->zipf.cdf);
    return 0;
}
