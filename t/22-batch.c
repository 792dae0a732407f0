/* 22-batch.c - buffered recording: visibility, flushes, journal replay
 *
 * With a flush delay long enough that no flush happens by time during
 * the test, every flush here is one the test causes: a range query,
 * ina_flush(), a window boundary, close, exit().  What other processes
 * see is read by a forked child, which maps the shared pending tables
 * afresh; tree() reads the LMDB tree alone.  Every process sees every
 * pending event at once, and a flush by any process applies every
 * process's journal.  Then the journal's promise is checked: a writer
 * SIGKILLed with events pending loses none of them, a flush that cannot
 * finish leaves nothing uncounted, and nothing is ever applied twice.
 * Last, with flushes every 2 ms, a thread reads what another records.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "tap/basic.h"
#include "tap/inatest.h"
#include "internal.h"

#define T0 1700002800

static int64_t now = T0;

/* q - connections of a block in window range a..b, through handle st */

static uint64_t
q(struct ina_store *st, const char *cidr, uint32_t a, uint32_t b)
{
    struct ina_cidr c = test_addr(cidr);
    uint64_t n;
    char err[256];

    if (ina_query(st, INA_CONNECTION, "60,10", &c, a, b, 0, &n, err,
                  sizeof(err)) != 0) {
        diag("%s", err);
        return UINT64_MAX;
    }
    return n;
}

/* other - the same query as another process sees it: from a child */

static uint64_t
other(struct ina_store *st, const char *cidr, uint32_t a, uint32_t b)
{
    uint64_t n = UINT64_MAX;
    int fds[2], status;
    pid_t pid;

    if (pipe(fds) != 0)
        sysbail("pipe");
    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        n = q(st, cidr, a, b);
        _exit(write(fds[1], &n, sizeof(n)) == sizeof(n) ? 0 : 1);
    }
    close(fds[1]);
    if (read(fds[0], &n, sizeof(n)) != sizeof(n))
        n = UINT64_MAX;
    close(fds[0]);
    waitpid(pid, &status, 0);
    return n;
}

/* huge_advised - whether every map of this process of a file in dir
 * whose name starts with pfx is advised for huge pages ("hg" in its
 * VmFlags); -1 if there is no such map
 *
 * Whether the kernel then gives 2 MiB folios depends on its version and
 * filesystem; the advice itself is what the library controls. */

static int
huge_advised(const char *dir, const char *pfx)
{
    char line[4096], real[PATH_MAX], want[PATH_MAX + 64];
    size_t wlen;
    int in = 0, maps = 0, advised = 0;
    FILE *f;

    if (realpath(dir, real) == NULL || (f = fopen("/proc/self/smaps", "r"))
                                           == NULL)
        return -1;
    snprintf(want, sizeof(want), "%s/%s", real, pfx);
    wlen = strlen(want);
    while (fgets(line, sizeof(line), f) != NULL) {
        char *path = strchr(line, '/');
        unsigned long lo, hi;

        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, ':')) {
            in = path != NULL && strncmp(path, want, wlen) == 0;
            maps += in;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            advised += strstr(line, " hg") != NULL;
            in = 0;
        }
    }
    fclose(f);
    return maps == 0 ? -1 : advised == maps;
}

/* poke_journals - write a u64 at an offset of the header of every
 * journal in dir whose name starts with pfx; returns the journals
 * changed, or -1
 *
 * The header is magic, version, pid, seq, start, capacity, tail (u64),
 * then the applied-tail hint at offset 40 and the "adding to epoch" mark
 * at offset 48 (lib/batch.c). */

static int
poke_journals(const char *dir, const char *pfx, off_t off, uint64_t v)
{
    char path[1024];
    struct dirent *de;
    DIR *d = opendir(dir);
    int n = 0, fd;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, pfx, strlen(pfx)) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if ((fd = open(path, O_RDWR)) < 0)
            continue;
        if (pwrite(fd, &v, sizeof(v), off) == sizeof(v))
            n++;
        close(fd);
    }
    closedir(d);
    return n;
}

/* lose_hint - zero the applied-tail hint of the journals in dir */

static int
lose_hint(const char *dir)
{
    return poke_journals(dir, "journal.", 40, 0);
}

/* pending_epoch - the current epoch in a store's pending file (the u64
 * at offset 64: magic, version, instance, slots, 5 spare; lib/batch.c) */

static uint64_t
pending_epoch(const char *dir)
{
    char path[1024];
    uint64_t e = 0;
    int fd;

    snprintf(path, sizeof(path), "%s/pending", dir);
    if ((fd = open(path, O_RDONLY)) < 0)
        return 0;
    if (pread(fd, &e, sizeof(e), 64) != sizeof(e))
        e = 0;
    close(fd);
    return e;
}

/* unlink_pending - remove a store's pending file */

static int
unlink_pending(const char *dir)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/pending", dir);
    return unlink(path);
}

/* pending_adjust - add delta to the connection count of every ready
 * slot of the current epoch's table in a store's pending file (table
 * epoch & 1), as a writer killed
 * before its table adds (a negative delta) or a stray store would leave
 * them; returns the slots changed, or -1
 *
 * The layout is lib/batch.c's: slots per table at offset 16 of the
 * header, the tables from offset 4096, 32-byte slots whose state (2:
 * ready) is the first byte and whose u32 counts start at offset 20. */

static int
pending_adjust(const char *dir, int64_t delta)
{
    char path[1024];
    uint64_t slots, i, t = pending_epoch(dir) & 1;
    uint32_t d;
    uint8_t state;
    off_t off;
    int fd, n = 0;

    snprintf(path, sizeof(path), "%s/pending", dir);
    if ((fd = open(path, O_RDWR)) < 0)
        return -1;
    if (pread(fd, &slots, sizeof(slots), 16) != sizeof(slots)) {
        close(fd);
        return -1;
    }
    for (i = 0; i < slots; i++) {
        off = 4096 + (off_t) (t * slots + i) * 32;
        if (pread(fd, &state, sizeof(state), off) != sizeof(state)
            || pread(fd, &d, sizeof(d), off + 20) != sizeof(d))
            break;
        if (state != 2)
            continue;
        d = delta < 0 && d < (uint32_t) -delta ? 0 : d + (uint32_t) delta;
        if (pwrite(fd, &d, sizeof(d), off + 20) != sizeof(d))
            break;
        n++;
    }
    close(fd);
    return n;
}

/* set_active - write the "adding to epoch" mark of a process's
 * journals */

static int
set_active(const char *dir, pid_t pid, uint64_t epoch)
{
    char pfx[64];

    snprintf(pfx, sizeof(pfx), "journal.%ld.", (long) pid);
    return poke_journals(dir, pfx, 48, epoch);
}

/* meta_tails - journal tails stored in the store's meta database, or -1
 *
 * Read by a forked child with an LMDB environment of its own (the
 * library closes the inherited one in a child): a tail's key is 'j' and
 * 16 bytes.  The count comes back as the child's exit status. */

static int
meta_tails(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_dbi dbi;
    MDB_val k, v;
    int n = 0, rc, status;
    pid_t pid;

    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0
            || mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0) != 0
            || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0
            || mdb_dbi_open(txn, "meta", 0, &dbi) != 0
            || mdb_cursor_open(txn, dbi, &c) != 0)
            _exit(255);
        k.mv_data = (void *) "j";
        k.mv_size = 1;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0
             && ((const char *) k.mv_data)[0] == 'j';
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
            n += k.mv_size == 17;
        mdb_cursor_close(c);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        _exit(n < 255 ? n : 254);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)
        || WEXITSTATUS(status) == 255)
        return -1;
    return WEXITSTATUS(status);
}

/* tree - connections of an IPv4 host in the current "60,10" window as
 * the LMDB tree holds them, without the pending tables, or -1
 *
 * Read by a forked child with an environment of its own, as meta_tails
 * does; the count (below 255) comes back as its exit status. */

static uint64_t
tree(const struct ina_conf *conf, const char *host)
{
    struct ina_cidr c = test_addr(host);
    uint8_t key[14];
    uint64_t cnt = 0;
    uint32_t win = (uint32_t) (now / 60);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k, v;
    int status, i;
    pid_t pid;

    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        for (i = 0; i < 4; i++) {
            key[i] = (uint8_t) (60u >> (8 * (3 - i)));
            key[4 + i] = (uint8_t) (win >> (8 * (3 - i)));
        }
        key[8] = 4;
        key[9] = 32;
        memcpy(key + 10, c.addr, 4);
        if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0
            || mdb_env_open(env, conf->store, MDB_RDONLY | MDB_NOTLS, 0) != 0
            || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0
            || mdb_dbi_open(txn, "counts", 0, &dbi) != 0)
            _exit(255);
        k.mv_data = key;
        k.mv_size = sizeof(key);
        if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size >= sizeof(cnt))
            memcpy(&cnt, v.mv_data, sizeof(cnt));
        /* And the host's now record, in the main database: its 60 s
         * entry, if of this window.  Read here without the library:
         * format 4 packs each entry as width and window (u32 each), a
         * byte of the events it has, then their counts as LEB128. */
        if (mdb_dbi_open(txn, NULL, 0, &dbi) != 0)
            _exit(255);
        k.mv_data = key + 8;
        k.mv_size = sizeof(key) - 8;
        if (mdb_get(txn, dbi, &k, &v) == 0) {
            const uint8_t *p = v.mv_data, *end = p + v.mv_size;

            while (end - p >= 9) {
                uint32_t ew, en;
                uint64_t x[INA_NEVENTS];
                unsigned mask = p[8], e, shift;

                memcpy(&ew, p, 4);
                memcpy(&en, p + 4, 4);
                p += 9;
                for (e = 0; e < INA_NEVENTS; e++) {
                    x[e] = 0;
                    for (shift = 0; (mask & 1u << e) && p < end;
                         shift += 7) {
                        x[e] |= (uint64_t) (*p & 0x7f) << shift;
                        if ((*p++ & 0x80) == 0)
                            break;
                    }
                }
                if (ew == 60 && en == win)
                    cnt += x[INA_CONNECTION];
            }
        }
        mdb_txn_abort(txn);
        mdb_env_close(env);
        _exit(cnt < 255 ? (int) cnt : 254);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)
        || WEXITSTATUS(status) == 255)
        return UINT64_MAX;
    return WEXITSTATUS(status);
}

/* lazy_kb - this process's memory lent back to the kernel (LazyFree in
 * /proc/self/smaps_rollup), or -1 where the kernel does not say */

static long
lazy_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/smaps_rollup", "r");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "LazyFree: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* lend_check - a large flush lends its sort arrays back to the kernel
 * (pset_lend), so that a worker that made one does not keep them */

static void
lend_check(void)
{
    struct ina_conf *cl = test_conf("lend", "map_size = \"256M\"\n"
                                            "flush_delay = 1000\n");
    struct ina_store *st = test_open(cl);
    struct ina_cidr a;
    uint32_t i, fail = 0;
    long kb;

    ina_store_set_clock(st, test_clock, &now);
    memset(&a, 0, sizeof(a));
    a.family = 4;
    a.plen = 32;
    /* 40,000 hosts: the table a quarter full starts a flush of 32k
     * prefixes or more, whose two sort arrays take 1.5 MiB each. */
    for (i = 0; i < 40000; i++) {
        a.addr[0] = 10;
        a.addr[1] = (uint8_t) (i >> 16);
        a.addr[2] = (uint8_t) (i >> 8);
        a.addr[3] = (uint8_t) i;
        fail += ina_record(st, INA_CONNECTION, &a, 1) != 0;
    }
    is_uint(0, fail, "40,000 hosts recorded, pending");
    is_int(0, ina_flush(st), "the flushes apply them");
    if ((kb = lazy_kb()) < 0)
        skip("no LazyFree in /proc/self/smaps_rollup");
    else
        ok(kb >= 2048, "...and lends its sort arrays back to the kernel "
           "(LazyFree %ld kB)", kb);
    is_uint(1, q(st, "10.0.156.63", 0, 0), "a host counts once");
    ina_store_close(st);
    ina_conf_free(cl);
}

/* notes - the store's log: how many messages said "from the journals" */

static int fallbacks;

static void
notes(void *arg, int prio, const char *msg)
{
    (void) arg;
    if (prio == INA_LOG_NOTICE && strstr(msg, "from the journals") != NULL)
        fallbacks++;
}

/* rec - record n single connections from addr */

static int
rec(struct ina_store *st, const char *addr, int n)
{
    struct ina_cidr c = test_addr(addr);
    int i;

    for (i = 0; i < n; i++)
        if (ina_record(st, INA_CONNECTION, &c, 1) != 0)
            return -1;
    return 0;
}

/* Threads: one records into the pending tables while another, on a
 * second handle of the same process, asks for a host and a /22; the
 * tables are read without the process's batch lock. */

#define THREAD_EVENTS 300000
#define THREAD_HOSTS 1024

struct writer {
    struct ina_store *st;
    unsigned done;             /* events recorded, published (release) */
    unsigned failed;
};

static void *
writer_run(void *arg)
{
    struct writer *w = arg;
    struct ina_cidr a = test_addr("198.18.0.0");
    unsigned i;

    for (i = 0; i < THREAD_EVENTS; i++) {
        a.addr[2] = (uint8_t) (i % THREAD_HOSTS >> 8);
        a.addr[3] = (uint8_t) (i % THREAD_HOSTS);
        if (ina_record(w->st, INA_CONNECTION, &a, 1) != 0)
            w->failed++;
        __atomic_store_n(&w->done, i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* host_of - events among the first n that came from host 198.18.0.1 */

static uint64_t
host_of(unsigned n)
{
    return n / THREAD_HOSTS + (n % THREAD_HOSTS > 1);
}

static void
thread_check(void)
{
    struct ina_conf *ct = test_conf("threads", "flush_delay = 2\n"
                                               "monitors = {\"60,10\"}\n"
                                               "ipv4_prefixes = {32, 24}\n");
    struct writer w = { 0 };
    uint64_t host, block, last_host = 0, last_block = 0;
    unsigned lo, hi, reads = 0, bad = 0, back = 0;
    struct ina_store *r;
    pthread_t t;

    w.st = test_open(ct);
    r = test_open(ct);
    ina_store_set_clock(w.st, test_clock, &now);
    ina_store_set_clock(r, test_clock, &now);
    /* Mapped by a record first, so the reader takes the lock-free path
     * from its first query. */
    ok(rec(w.st, "198.18.0.0", 1) == 0, "a thread's handle records one");
    if ((errno = pthread_create(&t, NULL, writer_run, &w)) != 0)
        sysbail("pthread_create");
    do {
        lo = __atomic_load_n(&w.done, __ATOMIC_ACQUIRE);
        host = q(r, "198.18.0.1", 0, 0);
        block = q(r, "198.18.0.0/22", 0, 0);
        hi = __atomic_load_n(&w.done, __ATOMIC_ACQUIRE);
        /* What was recorded before the queries began, at least; what
         * was recorded by their end and the one being recorded then, at
         * most (seen before its ina_record returns).  The /22 holds the
         * first event too. */
        if (host < host_of(lo) || host > host_of(hi + 1)
            || block < lo + 1ull || block > hi + 2ull) {
            if (bad < 5)
                diag("lo %u hi %u host %llu [%llu,%llu] block %llu", lo, hi,
                     (unsigned long long) host,
                     (unsigned long long) host_of(lo),
                     (unsigned long long) host_of(hi + 1),
                     (unsigned long long) block);
            bad++;
        }
        back += host < last_host || block < last_block;
        last_host = host;
        last_block = block;
        reads++;
    } while (hi < THREAD_EVENTS);
    pthread_join(t, NULL);
    is_uint(0, w.failed, "%u events recorded by another thread",
            THREAD_EVENTS);
    is_uint(0, bad, "%u reads meanwhile, each between the events recorded "
            "before it and after it", reads);
    is_uint(0, back, "no read went back");
    is_uint(host_of(THREAD_EVENTS), q(r, "198.18.0.1", 0, 0),
            "the host's count is exact");
    is_uint(THREAD_EVENTS + 1ull, q(r, "198.18.0.0/22", 0, 0),
            "and the /22's");
    ina_store_close(r);
    ina_store_close(w.st);
    ina_conf_free(ct);
}

/* pitem_order - qsort's reference order of apply items */

static int
pitem_order(const void *a, const void *b)
{
    const struct pitem *x = a, *y = b;

    if (x->k0 != y->k0)
        return x->k0 < y->k0 ? -1 : 1;
    if (x->k1 != y->k1)
        return x->k1 < y->k1 ? -1 : 1;
    return x->k2 < y->k2 ? -1 : x->k2 > y->k2;
}

/* sort_check - pitem_sort against qsort on inputs of every shape: random
 * (with ties in the first words, as IPv6 keys of one /48 have), sorted,
 * reversed, all equal, few distinct; then as a flush's are, a few
 * families and masks in the top 16 bits with random addresses after
 * them, and the same crowded into one /16 (a bucket introsort sorts
 * whole); every length up to 40, then large, and each with and without
 * the partitions' scratch.  The deltas travel with their keys. */

static void
sort_check(void)
{
    static const size_t big[] = { 1000, 9000, 100000 };
    static const uint64_t top[] = { 0x0420, 0x0418, 0x0410, 0x0680,
                                    0x0640, 0x0630 };
    size_t n, i, sizes[43], nsizes = 0, bad = 0, lost = 0, runs = 0;
    size_t *cnt;
    struct pitem *a, *r, *tmp;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int shape, scratch;

    for (n = 0; n <= 40; n++)
        sizes[nsizes++] = n;
    a = malloc(100000 * sizeof(*a));
    r = malloc(100000 * sizeof(*r));
    tmp = malloc(100000 * sizeof(*tmp));
    cnt = malloc((PITEM_BUCKETS + 1) * sizeof(*cnt));
    if (a == NULL || r == NULL || tmp == NULL || cnt == NULL)
        sysbail("malloc");
    for (i = 0; i < nsizes + 3; i++) {
        n = i < nsizes ? sizes[i] : big[i - nsizes];
        for (shape = 0; shape < 7; shape++)
            for (scratch = 0; scratch < 2; scratch++) {
                size_t j;
                uint64_t sum = 0, got = 0;

                for (j = 0; j < n; j++) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    a[j].k0 = shape == 0 ? x & 0xffffffffff000f0full
                            : shape == 1 ? j
                            : shape == 2 ? n - j
                            : shape == 3 ? 7
                            : shape == 4 ? x % 3
                            : shape == 5 ? top[x % 6] << 48 | x >> 16
                                         : top[x % 6] << 48
                                               | 0xc0a8ull << 32
                                               | (x >> 40);
                    a[j].k1 = shape == 0 || shape == 5 ? x >> 60 : 0;
                    a[j].k2 = shape == 0 ? (uint32_t) (x >> 32) & 3u
                            : shape == 4 ? (uint32_t) (x >> 40) % 3u : 0;
                    a[j].d[0] = j;
                    a[j].d[1] = a[j].k0 ^ a[j].k2;
                    a[j].d[2] = 0;
                    sum += j;
                }
                memcpy(r, a, n * sizeof(*a));
                qsort(r, n, sizeof(*r), pitem_order);
                pitem_sort(a, n, scratch ? tmp : NULL,
                           scratch ? cnt : NULL);
                for (j = 0; j < n; j++)
                    if (pitem_order(&a[j], &r[j]) != 0)
                        break;
                bad += j < n;
                for (j = 0; j < n; j++) {
                    got += a[j].d[0];
                    lost += a[j].d[1] != (a[j].k0 ^ a[j].k2);
                }
                lost += got != sum;
                runs++;
            }
    }
    is_uint(0, bad, "pitem_sort orders %zu inputs as qsort does", runs);
    is_uint(0, lost, "each item keeps its deltas");
    free(a);
    free(r);
    free(tmp);
    free(cnt);
}

/* resident_mib - MiB of data.mdb in the page cache from byte off on */

static size_t
resident_mib(const char *store, uint64_t off, size_t mib)
{
    char path[4096];
    unsigned char *vec;
    size_t pages = mib << 8, n = 0, i;
    void *m;
    int fd;

    snprintf(path, sizeof(path), "%s/data.mdb", store);
    if ((fd = open(path, O_RDONLY)) < 0)
        sysbail("%s", path);
    m = mmap(NULL, mib << 20, PROT_READ, MAP_SHARED, fd, (off_t) off);
    if (m == MAP_FAILED || (vec = malloc(pages)) == NULL)
        sysbail("mmap");
    if (mincore(m, mib << 20, vec) != 0)
        sysbail("mincore");
    for (i = 0; i < pages; i++)
        n += vec[i] & 1;
    free(vec);
    munmap(m, mib << 20);
    close(fd);
    return n >> 8;
}

/* runway_check - the pages past the tree are read ahead, once
 *
 * Records that find their epoch full read the next pages of data.mdb
 * into the page cache while they wait for the flush before: one piece
 * per step, shared by every process, up to 64 MiB past the tree's last
 * page and never past the end of the file (this test's map is 64M). */

static void
runway_check(struct ina_store *st, const struct ina_conf *conf)
{
    MDB_envinfo ei;
    MDB_stat ms;
    uint64_t front;
    size_t steps = 0, mib, res;
    struct stat sb;
    char path[4096];
    int status;
    pid_t pid;

    if (mdb_env_info(st->env->env, &ei) != 0
        || mdb_env_stat(st->env->env, &ms) != 0)
        bail("mdb_env_info");
    snprintf(path, sizeof(path), "%s/data.mdb", conf->store);
    if (stat(path, &sb) != 0)
        sysbail("%s", path);
    front = ((uint64_t) ei.me_last_pgno + 1) * ms.ms_psize;
    mib = (size_t) (((uint64_t) sb.st_size - front) >> 20);
    ok(mib >= 2 && mib < 64, "the file ends %zu MiB past the tree", mib);
    while (steps <= 64 && batch_runway_step(st) == 1)
        steps++;
    is_uint(mib, steps, "the runway reads it in 1 MiB pieces to its end");
    /* Not every page, always: this machine's kernel runs DAMON pageout,
     * which may evict a clean page of the cache the moment it is read
     * (seen: 62 MiB of 63, once in 30 runs).  Without the reads, the
     * kernel's own read-around leaves at most a few MiB resident. */
    res = resident_mib(conf->store, front, mib);
    ok(res >= mib - mib / 4, "and %zu MiB of its %zu are in the page cache",
       res, mib);
    if ((pid = fork()) == 0) {
        struct ina_store *k = test_open(conf);

        ina_store_set_clock(k, test_clock, &now);
        _exit(rec(k, "203.0.113.31", 1) == 0 && ina_flush(k) == 0
              && batch_runway_step(k) == 0 ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "another process finds the runway read already");
    is_uint(6, q(st, "203.0.113.30", 0, 0), "and the counts are untouched");
}

int
main(void)
{
    struct ina_conf *conf;
    struct ina_store *a, *b;
    int status, fds[2];
    uint64_t reaped;
    pid_t pid;
    char c;

    plan_lazy();
    sort_check();
    conf = test_conf("store", "flush_delay = 1000\n"
                              "monitors = {\"60,10\"}\n"
                              "ipv4_prefixes = {32, 24}\n"
                              "ipv6_prefixes = {128}\n");
    a = test_open(conf);
    b = test_open(conf);
    ina_store_set_clock(a, test_clock, &now);
    ina_store_set_clock(b, test_clock, &now);

    /* Read-your-writes, and buffering seen from another handle. */
    ok(rec(a, "192.0.2.1", 5) == 0, "record 5 on handle A");
    is_uint(5, q(a, "192.0.2.1", 0, 0), "A sees its 5 at once");
    is_uint(5, q(a, "192.0.2.0/24", 0, 0), "A sees them in its /24 too");
    is_int(1, test_journals(conf->store), "A has a journal file");
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) {
        skip("no transparent huge pages in this kernel");
        skip("no transparent huge pages in this kernel");
    } else {
        is_int(1, huge_advised(conf->store, "journal."),
               "the journal's map is advised for huge pages");
        is_int(1, huge_advised(conf->store, "pending"),
               "and so is the pending tables' map");
    }
    is_uint(5, q(b, "192.0.2.1", 0, 0),
            "handle B of the same process shares the pending 5");
    is_uint(5, other(b, "192.0.2.0/24", 0, 0),
            "another process sees them at once: the pending table is "
            "shared");
    is_uint(0, tree(conf, "192.0.2.1"), "but the tree does not have them");
    is_uint(5, q(a, "192.0.2.0/25", 0, 0),
            "a range query on A (a /25 over /32s) sees the 5");
    is_uint(5, tree(conf, "192.0.2.1"), "...because it applied them first");
    ok(rec(a, "192.0.2.1", 3) == 0, "record 3 more on A");
    is_uint(8, other(b, "192.0.2.1", 0, 0), "another process sees 8");
    is_uint(5, tree(conf, "192.0.2.1"), "the tree has 5 of them");
    is_int(0, ina_flush(a), "ina_flush(A)");
    is_uint(8, tree(conf, "192.0.2.1"), "the tree has 8 after the flush");
    is_uint(8, other(b, "192.0.2.1", 0, 0),
            "another process sees 8 after the flush");
    is_uint(8, q(a, "192.0.2.1", 0, 0), "and A is not counting twice");

    /* A window boundary flushes the closed window. */
    ok(rec(a, "192.0.2.2", 4) == 0, "record 4 from .2");
    now = T0 + 60;
    ok(rec(a, "192.0.2.3", 1) == 0, "record 1 from .3 a window later");
    is_uint(4, other(b, "192.0.2.2", 1, 1),
            "another process sees the closed window's 4 in window 1");
    is_uint(1, other(b, "192.0.2.3", 0, 0),
            "and the new window's event, from the new epoch's table");
    is_uint(1, q(a, "192.0.2.3", 0, 0), "which A sees");

    /* Close applies and removes the journal. */
    ina_store_close(a);
    is_uint(1, other(b, "192.0.2.3", 0, 0),
            "closing A applied the pending event");
    is_int(1, test_journals(conf->store), "the journal stays while B is open");
    ina_store_close(b);
    is_int(0, test_journals(conf->store),
           "closing the last handle removed the journal");
    b = test_open(conf);
    ina_store_set_clock(b, test_clock, &now);

    /* SIGKILL with events pending: the journal brings them in. */
    if (pipe(fds) != 0)
        sysbail("pipe");
    if ((pid = fork()) == 0) {
        struct ina_store *k = test_open(conf);

        ina_store_set_clock(k, test_clock, &now);
        if (rec(k, "198.51.100.9", 100) != 0)
            _exit(1);
        /* Every call returned: tell the parent, then wait to be
         * killed with all 100 pending. */
        if (write(fds[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(fds[1]);
    ok(read(fds[0], &c, 1) == 1, "the child recorded 100, all pending");
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
       "the child was SIGKILLed");
    close(fds[0]);
    is_uint(100, q(b, "198.51.100.9", 0, 0),
            "another process sees its 100 in the pending table");
    is_uint(0, tree(conf, "198.51.100.9"), "they are not in the tree yet");
    is_int(1, test_journals(conf->store), "its journal is left behind");
    is_int(0, ina_reap(b, &reaped), "another process writes (reaps)");
    is_int(1, test_journals(conf->store),
           "the journal stays: its epoch is not applied yet");
    is_int(0, ina_flush(b), "another process flushes");
    is_uint(100, tree(conf, "198.51.100.9"),
            "all 100 are applied from the dead child's journal");
    is_uint(100, q(b, "198.51.100.9", 0, 0), "and counted once");
    is_int(0, test_journals(conf->store), "and the journal is gone");
    is_int(0, ina_flush(b), "flush again");
    is_uint(100, q(b, "198.51.100.9", 0, 0), "still 100: never twice");

    /* exit() applies pending events. */
    if ((pid = fork()) == 0) {
        struct ina_store *k = test_open(conf);

        ina_store_set_clock(k, test_clock, &now);
        exit(rec(k, "198.51.100.10", 50) == 0 ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "a child recorded 50 and called exit() without closing");
    is_uint(50, q(b, "198.51.100.10", 0, 0),
            "the exit flush applied all 50");
    is_int(0, test_journals(conf->store), "and left no journal");

    /* A handle with pending events inherited across fork: the child's
     * copy of the parent's pending events is not applied twice. */
    a = test_open(conf);
    ina_store_set_clock(a, test_clock, &now);
    ok(rec(a, "203.0.113.5", 7) == 0, "parent records 7 on A, pending");
    if ((pid = fork()) == 0) {
        int rc = rec(a, "203.0.113.5", 3);

        _exit(rc == 0 && ina_flush(a) == 0 ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "the child recorded 3 on the inherited A and flushed");
    /* A flush applies every process's journal: the child's applied the
     * parent's pending 7 with its own 3. */
    is_uint(10, other(b, "203.0.113.5", 0, 0),
            "another process sees the child's 3 and the parent's 7");
    is_uint(10, q(a, "203.0.113.5", 0, 0),
            "the parent sees 10, not its 7 twice");
    is_int(0, ina_flush(a), "the parent flushes");
    is_uint(10, other(b, "203.0.113.5", 0, 0),
            "another process still sees 7 + 3 = 10");

    /* The applier publishes the tail it stored in the journal's header
     * only after its commit, and may die in between.  The owner goes by
     * the tail its flushes read from the store; counts never depend on
     * the hint: lose it on purpose. */
    ok(rec(a, "203.0.113.6", 4) == 0, "parent records 4 more, pending");
    if ((pid = fork()) == 0) {
        struct ina_store *k = test_open(conf);

        ina_store_set_clock(k, test_clock, &now);
        _exit(rec(k, "203.0.113.9", 1) == 0 && ina_flush(k) == 0 ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "another process records 1 and flushes (all journals)");
    ok(lose_hint(conf->store) >= 1, "the parent's journal hint is lost");
    is_uint(4, q(a, "203.0.113.6", 0, 0),
            "the parent counts its 4 once");
    is_uint(4, other(b, "203.0.113.6", 0, 0), "as others do");
    is_int(0, ina_flush(a), "the parent flushes");
    is_uint(4, q(a, "203.0.113.6", 0, 0), "still 4");
    is_uint(4, other(b, "203.0.113.6", 0, 0), "still 4 for others");
    ina_store_close(a);
    ina_store_close(b);

    /* The stored tails of journals that are gone are not kept forever:
     * one per journal ever made would fill the map of an MTA that
     * recycles its workers.  A sweep (at open, here) deletes them. */
    ok(meta_tails(conf->store) > 0,
       "the tails of this test's removed journals are still stored");
    b = test_open(conf);
    ina_store_set_clock(b, test_clock, &now);
    /* The open sweeps (and removes the dead child's journal), and so
     * does the reap: setting the clock makes a sweep due. */
    is_int(0, ina_reap(b, &reaped), "a writer opens and sweeps twice");
    is_int(0, test_journals(conf->store), "no journal file is left");
    is_int(0, meta_tails(conf->store),
           "and the tails of removed journals are gone");
    is_uint(4, q(b, "203.0.113.6", 0, 0), "and the counts are all there");
    ok(rec(b, "203.0.113.6", 1) == 0 && ina_flush(b) == 0,
       "a live journal flushes");
    is_int(1, meta_tails(conf->store), "its tail is stored");
    is_int(0, ina_reap(b, &reaped), "another write transaction");
    is_int(1, meta_tails(conf->store), "and a live journal keeps its tail");

    /* A table slot counts up to 2^32 - 1.  An add that would pass it
     * takes another slot of the prefix, which queries add and a flush
     * applies like any other; a record of more than that at once gets a
     * transaction of its own. */
    a = test_open(conf);
    ina_store_set_clock(a, test_clock, &now);
    {
        struct ina_cidr big = test_addr("198.18.7.1");
        uint64_t x = 4000000000u;

        is_int(0, ina_flush(a), "big counts: an empty epoch to start");
        is_int(0, ina_record(a, INA_CONNECTION, &big, x),
               "record 4,000,000,000 at once");
        is_int(2, pending_adjust(conf->store, 0),
               "the table holds them in a /32 slot and a /24 slot");
        is_int(0, ina_record(a, INA_CONNECTION, &big, x),
               "and 4,000,000,000 more");
        is_int(4, pending_adjust(conf->store, 0),
               "which each of the two prefixes has in a second slot");
        is_uint(2 * x, q(a, "198.18.7.1", 0, 0),
                "a query adds both slots: 8,000,000,000");
        is_uint(2 * x, other(b, "198.18.7.0/24", 0, 0),
                "another process too, in the /24");
        is_int(0, ina_record(a, INA_CONNECTION, &big, 1), "and 1 more");
        is_int(4, pending_adjust(conf->store, 0),
               "which fits in a slot it has");
        is_int(0, ina_record(a, INA_CONNECTION, &big, 5000000000u),
               "5,000,000,000 at once: more than a slot holds");
        is_int(4, pending_adjust(conf->store, 0),
               "is not buffered");
        is_uint(2 * x + 1 + 5000000000u, q(a, "198.18.7.1", 0, 0),
                "but written at once: 13,000,000,001");
        fallbacks = 0;
        ina_store_set_log(a, notes, NULL);
        is_int(0, ina_flush(a), "a flush");
        is_int(0, fallbacks, "applies the table: it agrees with the journal");
        is_uint(2 * x + 1 + 5000000000u, q(a, "198.18.7.1", 0, 0),
                "the tree has 13,000,000,001, exact");
        is_uint(2 * x + 1 + 5000000000u, other(b, "198.18.7.0/24", 0, 0),
                "the /24 too");
    }
    ina_store_close(a);

    /* A flush that cannot finish.  A writer between its journal entry
     * and its table adds (faked here: the mark in a live journal's
     * header, set by hand) holds the flush of its epoch; the flush gives
     * up, as a flusher killed before its commit would, with the next
     * epoch already current.  Counts stay exact, and the next flush
     * applies the unfinished epoch first. */
    a = test_open(conf);
    ina_store_set_clock(a, test_clock, &now);
    ok(rec(a, "203.0.113.20", 6) == 0, "A records 6, pending");
    ok(set_active(conf->store, getpid(), pending_epoch(conf->store)) >= 1,
       "A's journal looks caught inside a record");
    if ((pid = fork()) == 0) {
        struct ina_store *k = test_open(conf);

        ina_store_set_clock(k, test_clock, &now);
        if (rec(k, "203.0.113.21", 2) != 0)
            _exit(2);
        _exit(ina_flush(k) == EAGAIN ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "another process records 2, and its flush gives up waiting");
    is_uint(6, other(b, "203.0.113.20", 0, 0),
            "a third process sees A's 6 in the unfinished epoch");
    is_uint(2, other(b, "203.0.113.21", 0, 0), "and the dead child's 2");
    is_uint(0, tree(conf, "203.0.113.20"), "none of it is in the tree");
    ok(set_active(conf->store, getpid(), 0) >= 1, "A's record completes");
    ok(rec(a, "203.0.113.20", 1) == 0,
       "A records 1 more, in the new epoch; the unfinished one is due at "
       "once, and the call applies it");
    is_uint(6, tree(conf, "203.0.113.20"), "the tree has A's 6");
    is_uint(2, tree(conf, "203.0.113.21"), "and the child's 2");
    is_uint(7, q(a, "203.0.113.20", 0, 0),
            "A sees 7: 6 from the tree, 1 pending, none twice");
    is_uint(2, other(b, "203.0.113.21", 0, 0), "the child's 2, once");
    is_int(0, ina_flush(b), "flush again");
    is_uint(7, tree(conf, "203.0.113.20"), "the tree has all 7");
    is_uint(7, other(b, "203.0.113.20", 0, 0), "seen once");
    ina_store_close(a);
    ina_store_close(b);

    /* A table that disagrees with the journals: a writer killed between
     * its journal entry and its table adds leaves the table short (faked
     * here by taking the counts out of the table), and a flush, which
     * applies an epoch from its table when the table sums to what the
     * journals hold, applies it from the journals instead.  Likewise for
     * a table that holds more than the journals. */
    a = test_open(conf);
    ina_store_set_clock(a, test_clock, &now);
    ina_store_set_log(a, notes, NULL);
    ok(rec(a, "100.64.0.40", 4) == 0, "A records 4, pending");
    is_int(2, pending_adjust(conf->store, -4),
           "the table loses them (its /32 and /24 slots)");
    is_uint(0, q(a, "100.64.0.40", 0, 0),
            "queries see what the table holds until the flush");
    is_int(0, ina_flush(a), "a flush");
    is_uint(4, tree(conf, "100.64.0.40"), "the tree has the journal's 4");
    is_int(1, fallbacks, "and the flush says so in the log");
    is_uint(4, q(a, "100.64.0.0/24", 0, 0), "in the /24 as well");
    ok(rec(a, "100.64.0.41", 3) == 0, "A records 3, pending");
    is_int(2, pending_adjust(conf->store, 5), "the table gains 5");
    is_int(0, ina_flush(a), "a flush");
    is_uint(3, tree(conf, "100.64.0.41"), "the tree has the journal's 3");
    is_int(1, fallbacks, "not again within the minute");
    is_uint(7, q(a, "100.64.0.0/24", 0, 0), "and the /24 all 7, once");
    ina_store_close(a);

    /* The pending file made again (removed while no process had the
     * store open): the epochs in a dead process's journal are of the old
     * file, and no table holds them.  They are applied whole. */
    if (pipe(fds) != 0)
        sysbail("pipe");
    if ((pid = fork()) == 0) {
        struct ina_store *k = test_open(conf);

        ina_store_set_clock(k, test_clock, &now);
        if (rec(k, "203.0.113.30", 5) != 0
            || write(fds[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(fds[1]);
    ok(read(fds[0], &c, 1) == 1, "a child records 5, all pending");
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ok(unlink_pending(conf->store) == 0, "the pending file is removed");
    b = test_open(conf);
    ina_store_set_clock(b, test_clock, &now);
    is_uint(5, tree(conf, "203.0.113.30"),
            "the next writer's open applied the dead child's 5");
    is_uint(5, q(b, "203.0.113.30", 0, 0), "and counts them once");
    ok(rec(b, "203.0.113.30", 1) == 0 && ina_flush(b) == 0,
       "a record makes a new pending file; a flush");
    is_uint(6, q(b, "203.0.113.30", 0, 0), "6, exact");
    is_int(1, test_journals(conf->store), "only the live journal is left");
    runway_check(b, conf);
    ina_store_close(b);
    ina_conf_free(conf);
    lend_check();
    thread_check();
    return 0;
}
