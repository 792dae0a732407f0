/* layout-probe - what a counts layout costs the one writer, fresh keys
 *
 * A model of the store's apply step for the adversarial mix (every event
 * from a new random source, half IPv4, half IPv6), for two layouts of
 * the counts database, written with LMDB directly:
 *
 *   per width:        a key per width and granularity, as format 1 has
 *                     it (width | window | family | mask | address), its
 *                     value the three event counts: 9 keys an event;
 *   per granularity:  a key per granularity under the coarsest width's
 *                     window, its value that window's counts and one
 *                     entry (width, window, counts) for each finer
 *                     width: 3 keys an event.
 *
 * Each batch of events (a flush's worth) is sorted and applied in one
 * write transaction with the store's own put (MDB_NOOVERWRITE, then
 * MDB_CURRENT on a key that exists), into an environment opened as the
 * store opens its own, whose file is read into the page cache first;
 * only the transactions are timed.  There are no journals, pending
 * tables or expiry: it measures the B-tree's part alone, to decide a
 * change of the store's format by.  At the end every key is read back
 * and the counts must add up to what was applied.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "internal.h"

#define NWIDTHS 3
#define NGRANS 3
#define KEY_MAX CKEY_MAX
/* Per granularity: the coarse window's counts, then one entry for each
 * finer width (width index, window offset, three counts). */
#define ENTRY (2 + 24)
#define VAL_MAX (24 + (NWIDTHS - 1) * ENTRY)

static const uint32_t widths[NWIDTHS] = { 60, 300, 3600 };
static const int masks4[NGRANS] = { 32, 24, 16 };
static const int masks6[NGRANS] = { 128, 64, 48 };

enum layout { PER_WIDTH, PER_GRAN };
static const char *const layout_names[] = { "per width", "per granularity" };

struct item {
    uint8_t key[KEY_MAX];
    uint8_t klen, vlen;
    uint8_t val[VAL_MAX];
};

/* rnd - xorshift64: the same stream for both layouts */

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* item_cmp - the store's key order (key_cmp), LMDB's default */

static int
item_cmp(const void *a, const void *b)
{
    const struct item *x = a, *y = b;

    return key_cmp(x->key, x->klen, y->key, y->klen);
}

/* counts_add - add one event's count to a value at offset off */

static void
counts_add(uint8_t *val, size_t off)
{
    uint64_t c;

    memcpy(&c, val + off, sizeof(c));
    c++;
    memcpy(val + off, &c, sizeof(c));
}

/* value_sum - the connections a value holds (every count it has) */

static uint64_t
value_sum(const uint8_t *val, size_t len, enum layout l)
{
    uint64_t c, sum = 0;
    size_t off;

    memcpy(&c, val, sizeof(c));
    sum += c;
    if (l == PER_GRAN)
        for (off = 24; off + ENTRY <= len; off += ENTRY) {
            memcpy(&c, val + off + 2, sizeof(c));
            sum += c;
        }
    return sum;
}

/* make_items - the keys and values of n events: *out items */

static size_t
make_items(struct item *it, size_t n, enum layout l, uint64_t *seed,
           uint32_t now)
{
    size_t e, m = 0;
    uint8_t a[16], p[16];
    uint64_t r;
    int g, w, v6, mask, nw;
    struct item *x;

    for (e = 0; e < n; e++) {
        r = rnd(seed);
        memcpy(a, &r, 8);
        r = rnd(seed);
        memcpy(a + 8, &r, 8);
        v6 = (int) (rnd(seed) & 1);
        for (g = 0; g < NGRANS; g++) {
            mask = v6 ? masks6[g] : masks4[g];
            memcpy(p, a, sizeof(p));
            cidr_mask(p, cidr_addrlen(v6 ? 6 : 4), (unsigned) mask);
            nw = l == PER_WIDTH ? NWIDTHS : 1;
            for (w = 0; w < nw; w++) {
                uint32_t width = l == PER_WIDTH ? widths[w]
                                                : widths[NWIDTHS - 1];

                x = &it[m++];
                x->klen = (uint8_t) store_ckey(x->key, width, now / width,
                                               v6 ? 6 : 4, (unsigned) mask,
                                               p);
                memset(x->val, 0, sizeof(x->val));
                counts_add(x->val, 0);
                x->vlen = 24;
                if (l == PER_GRAN) {
                    int f;

                    for (f = 0; f < NWIDTHS - 1; f++) {
                        uint8_t *en = x->val + 24 + (size_t) f * ENTRY;

                        en[0] = (uint8_t) f;
                        en[1] = (uint8_t) ((now % widths[NWIDTHS - 1])
                                           / widths[f]);
                        counts_add(en, 2);
                    }
                    x->vlen = VAL_MAX;
                }
            }
        }
    }
    return m;
}

/* apply - one batch in one write transaction */

static void
apply(MDB_env *env, MDB_dbi dbi, struct item *it, size_t m, enum layout l)
{
    uint8_t nv[VAL_MAX];
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    size_t i, off;
    int rc;

    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0
        || (rc = mdb_cursor_open(txn, dbi, &c)) != 0)
        errx(1, "write transaction: %s", mdb_strerror(rc));
    for (i = 0; i < m; i++) {
        k.mv_data = it[i].key;
        k.mv_size = it[i].klen;
        v.mv_data = it[i].val;
        v.mv_size = it[i].vlen;
        rc = mdb_cursor_put(c, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) {
            if (v.mv_size != it[i].vlen)
                errx(1, "a value of %zu bytes", v.mv_size);
            memcpy(nv, v.mv_data, v.mv_size);
            counts_add(nv, 0);
            if (l == PER_GRAN)
                for (off = 24; off + ENTRY <= v.mv_size; off += ENTRY)
                    counts_add(nv, off + 2);
            v.mv_data = nv;
            rc = mdb_cursor_put(c, &k, &v, MDB_CURRENT);
        }
        if (rc != 0)
            errx(1, "put: %s", mdb_strerror(rc));
    }
    mdb_cursor_close(c);
    if ((rc = mdb_txn_commit(txn)) != 0)
        errx(1, "commit: %s", mdb_strerror(rc));
}

/* check - every count read back: the sum must be what was applied */

static uint64_t
check(MDB_env *env, MDB_dbi dbi, enum layout l)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t sum = 0;
    int rc;

    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0
        || (rc = mdb_cursor_open(txn, dbi, &c)) != 0)
        errx(1, "read transaction: %s", mdb_strerror(rc));
    while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0)
        sum += value_sum(v.mv_data, v.mv_size, l);
    if (rc != MDB_NOTFOUND)
        errx(1, "cursor: %s", mdb_strerror(rc));
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    return sum;
}

/* warm - read the whole file into the page cache (as inaudit-bench) */

static void
warm(const char *dir, size_t size)
{
    char path[PATH_MAX];
    int fd;

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if ((fd = open(path, O_RDONLY)) < 0 || file_read_in(fd, 0, size) != 0)
        err(1, "%s", path);
    close(fd);
}

/* run - one layout: n events in batches of batch, into dir */

static int
run(enum layout l, size_t n, size_t batch, const char *dir)
{
    size_t per = l == PER_WIDTH ? NWIDTHS * NGRANS : NGRANS;
    size_t size = ((size_t) 64 << 20) + n * 2048, done = 0, m, b;
    size_t quarter = n / 4 > 0 ? n / 4 : 1, next = quarter;
    uint64_t seed = 88172645463325252ull, want = 0, got;
    uint32_t now = (uint32_t) time(NULL);
    struct item *it;
    MDB_envinfo ei;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    double t, busy = 0;
    char path[PATH_MAX];
    int rc, fd;

    if ((rc = mdb_env_create(&env)) != 0
        || (rc = mdb_env_set_mapsize(env, size)) != 0
        || (rc = mdb_env_open(env, dir, MDB_NOTLS | MDB_NOSYNC
                              | MDB_WRITEMAP, 0600)) != 0)
        errx(1, "%s: %s", dir, mdb_strerror(rc));
    /* The file as long as the map and reserved, as the store makes it. */
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if ((fd = open(path, O_RDWR)) < 0
        || (errno = posix_fallocate(fd, 0, (off_t) size)) != 0)
        err(1, "%s", path);
    close(fd);
    warm(dir, size);
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0
        || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0
        || (rc = mdb_txn_commit(txn)) != 0)
        errx(1, "%s: %s", dir, mdb_strerror(rc));
    if ((it = malloc(sizeof(*it) * batch * per)) == NULL)
        err(1, "malloc");
    while (done < n) {
        b = n - done < batch ? n - done : batch;
        m = make_items(it, b, l, &seed, now);
        qsort(it, m, sizeof(*it), item_cmp);
        t = now_s();
        apply(env, dbi, it, m, l);
        busy += now_s() - t;
        done += b;
        want += m * (l == PER_GRAN ? NWIDTHS : 1);
        if (done >= next || done == n) {
            printf("  %-16s %9zu events  %6.2f us an event, %9.0f events/s so far"
                   "\n", layout_names[l], done, busy / (double) done * 1e6,
                   (double) done / busy);
            next += quarter;
        }
    }
    free(it);
    got = check(env, dbi, l);
    mdb_env_info(env, &ei);
    printf("  %-16s %zu keys an event, file front %.0f bytes an event, "
           "counts %s (%" PRIu64 ")\n", layout_names[l], per,
           (double) (ei.me_last_pgno + 1) * 4096.0 / (double) n,
           got == want ? "exact" : "WRONG", got);
    mdb_env_close(env);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    return got == want ? 0 : 1;
}

static void
usage(int status)
{
    fprintf(status ? stderr : stdout,
            "usage: layout-probe [-n EVENTS] [-b BATCH] [-d DIR]\n"
            "  -n EVENTS  events applied (default 800000)\n"
            "  -b BATCH   events a write transaction (default 13000, a "
            "flush of the\n"
            "             adversarial mix at 130k events/s, flush_delay "
            "100)\n"
            "  -d DIR     an empty directory for the environment (default: "
            "a new one\n"
            "             under TMPDIR, removed at the end)\n");
    exit(status);
}

static size_t
parse_size(const char *s)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0 || v > 100000000)
        errx(2, "%s: not a count from 1 to 100000000", s);
    return (size_t) v;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "events", required_argument, NULL, 'n' },
        { "batch", required_argument, NULL, 'b' },
        { "dir", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    size_t n = 800000, batch = 13000;
    char tmpl[PATH_MAX];
    const char *dir = NULL, *tmp;
    int c, own = 0, rc;

    while ((c = getopt_long(argc, argv, "n:b:d:h", opts, NULL)) != -1)
        switch (c) {
        case 'n':
            n = parse_size(optarg);
            break;
        case 'b':
            batch = parse_size(optarg);
            break;
        case 'd':
            dir = optarg;
            break;
        case 'h':
            usage(0);
            break;
        default:
            usage(2);
        }
    if (optind != argc)
        usage(2);
    if (dir == NULL) {
        tmp = getenv("TMPDIR");
        snprintf(tmpl, sizeof(tmpl), "%s/layout-probe.XXXXXX",
                 tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
        if ((dir = mkdtemp(tmpl)) == NULL)
            err(1, "mkdtemp %s", tmpl);
        own = 1;
    }
    printf("layout-probe: %zu adversarial events (IPv4 /32 /24 /16, IPv6 "
           "/128 /64 /48;\n  widths 60 300 3600), %zu a transaction; the "
           "writer's time only\n", n, batch);
    rc = run(PER_WIDTH, n, batch, dir);
    rc |= run(PER_GRAN, n, batch, dir);
    if (own && rmdir(dir) != 0)
        warn("rmdir %s", dir);
    return rc;
}
