/* batch.c - buffered recording with a crash-safe journal
 *
 * One LMDB write transaction per event costs microseconds: the writer
 * lock, copy-on-write of a path of pages, the commit.  So a handle buffers
 * its events and applies them in one transaction every flush_delay
 * milliseconds, merging equal keys and applying them in key order.
 *
 * Buffering must not cost exactness.  Every event is first appended to
 * the handle's journal, a small file in the store directory mapped shared
 * (journal.PID.START.SEQ): the entry is written, then the journal's tail
 * is advanced, then the call returns.  A flush applies the entries up to
 * a tail and stores that tail in the meta database in the same
 * transaction, so it is applied exactly once.  When a process dies with a
 * non-empty journal (SIGKILL, a crash), any other process that writes
 * finds the journal of a dead owner (pid and start time, as for sessions)
 * and applies the entries past the stored tail in one transaction; so a
 * killed writer loses nothing whose record call returned, and at most
 * adds the one call it was in.  A journal is removed once applied; the
 * meta record of its tail stays until the file is gone and its owner dead,
 * so that a crash between the two can never replay it twice.
 *
 * The batch belongs to the process's environment (env.c), so every handle
 * of a process on one store, every Lua state included, shares it.  Beside
 * the journal it keeps the pending deltas in a hash table of counter keys:
 * queries add them (read-your-writes), and the flush applies them sorted.
 * Only the owner applies its live journal; other processes see its events
 * within flush_delay, or at once after ina_flush().
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "inaudit.h"
#include "internal.h"

#define JOURNAL_MAGIC 0x494e414a /* "INAJ" */
#define JOURNAL_VERSION 1
/* Entries a journal holds; a full journal is flushed at once. */
#define JOURNAL_ENTRIES 16384
/* Pending keys at which a flush is forced whatever the delay. */
#define BATCH_MAX_KEYS 32768

/* The journal file: a header, then a ring of entries.  Entry seq (from 1)
 * lives in slot (seq - 1) % capacity.  tail is written with release
 * order after the entry, so a reader that sees tail sees the entry. */
struct journal_hdr {
    uint32_t magic;
    uint32_t version;
    uint32_t pid;
    uint32_t seq;
    uint64_t start;
    uint64_t capacity;
    uint64_t tail;             /* entries written */
    uint64_t applied;          /* entries known applied (a hint) */
};

struct journal_ent {
    uint32_t time;             /* the clock when recorded */
    uint8_t ev;
    uint8_t family;
    uint8_t pad[2];
    uint64_t n;
    uint8_t addr[16];
};

/* One pending counter: a key and the deltas of the three events. */
struct pend {
    uint8_t klen;              /* 0: empty slot */
    uint8_t key[CKEY_MAX];
    uint64_t d[INA_NEVENTS];
};

/* The batch state of a handle. */
struct batch {
    struct journal_hdr *hdr;   /* NULL until the first record */
    struct journal_ent *ent;
    size_t maplen;
    char path[4096];
    uint32_t seq;
    uint64_t applied;          /* tail applied by our last flush */
    struct pend *tab;          /* pending deltas, open addressing */
    size_t cap, used;
    int64_t first_time;        /* store clock at the first pending event */
    uint64_t deadline_ms;      /* monotonic time to flush by */
};

static pthread_mutex_t batch_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t batch_seq;

/* be_put - big-endian integers into a key */

static void
be_put(uint8_t *p, uint64_t v, int bytes)
{
    int i;

    for (i = bytes - 1; i >= 0; i--) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}

/* mono_ms - a monotonic clock in milliseconds, for flush deadlines */

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/* batch_meta_key - the meta key of a journal's applied tail */

static size_t
batch_meta_key(uint8_t *k, uint32_t pid, uint64_t start, uint32_t seq)
{
    k[0] = 'j';
    be_put(k + 1, pid, 4);
    be_put(k + 5, start, 8);
    be_put(k + 13, seq, 4);
    return 17;
}

/* batch_hash - hash of a counter key */

static uint64_t
batch_hash(const uint8_t *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;

    for (i = 0; i < len; i++)
        h = (h ^ key[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

/* batch_find - the slot of a key, or the empty slot where it goes */

static struct pend *
batch_find(struct pend *tab, size_t cap, const uint8_t *key, size_t len)
{
    size_t i = (size_t) batch_hash(key, len) & (cap - 1);

    for (;;) {
        struct pend *p = &tab[i];

        if (p->klen == 0
            || (p->klen == len && memcmp(p->key, key, len) == 0))
            return p;
        i = (i + 1) & (cap - 1);
    }
}

/* batch_grow - double the pending table */

static int
batch_grow(struct batch *b)
{
    size_t cap = b->cap ? b->cap * 2 : 1024, i;
    struct pend *tab, *p;

    if ((tab = calloc(cap, sizeof(*tab))) == NULL)
        return ENOMEM;
    for (i = 0; i < b->cap; i++)
        if (b->tab[i].klen != 0) {
            p = batch_find(tab, cap, b->tab[i].key, b->tab[i].klen);
            *p = b->tab[i];
        }
    free(b->tab);
    b->tab = tab;
    b->cap = cap;
    return 0;
}

/* batch_add - add one event's deltas at every key it counts under */

static int
batch_add(struct ina_store *st, struct pend **tabp, size_t *capp,
          size_t *usedp, struct batch *grow, int64_t now, int ev,
          int family, const uint8_t *host, uint64_t n)
{
    uint8_t key[CKEY_MAX], addr[16];
    const uint8_t *list;
    unsigned alen = cidr_addrlen(family);
    struct pend *p;
    size_t np, wi, pi, klen;
    int rc;

    np = store_prefixes(st->conf, family, &list);
    for (wi = 0; wi < st->nwidths; wi++) {
        uint32_t win = (uint32_t) (now / st->widths[wi].width);

        for (pi = 0; pi < np; pi++) {
            if ((*usedp + 1) * 2 > *capp) {
                if (grow == NULL)
                    return ENOMEM;
                if ((rc = batch_grow(grow)) != 0)
                    return rc;
                *tabp = grow->tab;
                *capp = grow->cap;
            }
            memcpy(addr, host, alen);
            cidr_mask(addr, alen, list[pi]);
            klen = store_ckey(key, st->widths[wi].width, win, family,
                              list[pi], addr);
            p = batch_find(*tabp, *capp, key, klen);
            if (p->klen == 0) {
                p->klen = (uint8_t) klen;
                memcpy(p->key, key, klen);
                memset(p->d, 0, sizeof(p->d));
                (*usedp)++;
            }
            p->d[ev] = UINT64_MAX - p->d[ev] < n ? UINT64_MAX : p->d[ev] + n;
        }
    }
    return 0;
}

/* pend_cmp - key order of pending counters */

static int
pend_cmp(const void *a, const void *b)
{
    const struct pend *x = *(const struct pend *const *) a;
    const struct pend *y = *(const struct pend *const *) b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);

    return c != 0 ? c : (int) x->klen - (int) y->klen;
}

/* batch_skip_level - is a key's granularity dropped by degradation? */

static int
batch_skipped(struct ina_store *st, int level, const uint8_t *key)
{
    const uint8_t *list;
    size_t np = store_prefixes(st->conf, key[8], &list), i;

    if (level <= 0 || np == 0)
        return 0;
    if ((size_t) level >= np)
        level = (int) np - 1;
    for (i = np - (size_t) level; i < np; i++)
        if (list[i] == key[9])
            return 1;
    return 0;
}

/* batch_apply - add a table of pending counters in one transaction
 *
 * Keys are applied in order through one cursor, so neighbouring keys
 * share the descent and the copied pages. */

static int
batch_apply(struct ina_store *st, MDB_txn *txn, struct pend *tab,
            size_t cap, size_t used)
{
    struct pend **order;
    MDB_cursor *c;
    size_t i, j;
    int rc = 0, level;

    if (used == 0)
        return 0;
    if ((order = malloc(used * sizeof(*order))) == NULL)
        return ENOMEM;
    for (i = 0, j = 0; i < cap && j < used; i++)
        if (tab[i].klen != 0)
            order[j++] = &tab[i];
    qsort(order, j, sizeof(*order), pend_cmp);
    level = store_level(st, txn);
    if ((rc = mdb_cursor_open(txn, st->env->counts, &c)) != 0) {
        free(order);
        return rc;
    }
    for (i = 0; i < j && rc == 0; i++)
        if (!batch_skipped(st, level, order[i]->key))
            rc = store_add_counts(c, order[i]->key, order[i]->klen,
                                  order[i]->d);
    mdb_cursor_close(c);
    free(order);
    return rc;
}

/* batch_meta_get - a journal's applied tail from the meta database */

static uint64_t
batch_meta_get(struct ina_store *st, MDB_txn *txn, const uint8_t *key,
               size_t klen, int *found)
{
    MDB_val k, v;
    uint64_t applied = 0;

    k.mv_data = (void *) key;
    k.mv_size = klen;
    *found = 0;
    if (mdb_get(txn, st->env->meta, &k, &v) == 0
        && v.mv_size == sizeof(applied)) {
        memcpy(&applied, v.mv_data, sizeof(applied));
        *found = 1;
    }
    return applied;
}

/* batch_meta_put - store a journal's applied tail */

static int
batch_meta_put(struct ina_store *st, MDB_txn *txn, const uint8_t *key,
               size_t klen, uint64_t applied)
{
    MDB_val k, v;

    k.mv_data = (void *) key;
    k.mv_size = klen;
    v.mv_data = &applied;
    v.mv_size = sizeof(applied);
    return mdb_put(txn, st->env->meta, &k, &v, 0);
}

/* batch_replay - apply a journal's entries past its stored tail
 *
 * Used for journals of dead processes, and by the owner when its own
 * bookkeeping disagrees with the store.  The entries are re-expanded into
 * counter keys with this handle's configuration. */

static int
batch_replay(struct ina_store *st, MDB_txn *txn,
             const struct journal_hdr *hdr, const struct journal_ent *ent,
             uint64_t *replayed)
{
    uint8_t mkey[17];
    size_t mklen, cap = 0, used = 0;
    uint64_t applied, tail, seq, from;
    struct batch tmp;
    const struct journal_ent *e;
    int found, rc = 0;

    mklen = batch_meta_key(mkey, hdr->pid, hdr->start, hdr->seq);
    applied = batch_meta_get(st, txn, mkey, mklen, &found);
    tail = __atomic_load_n(&hdr->tail, __ATOMIC_ACQUIRE);
    if (tail <= applied)
        return 0;
    /* Entries older than one ring were overwritten; they were applied
     * before the owner reused their slots. */
    from = tail - applied > hdr->capacity ? tail - hdr->capacity : applied;
    memset(&tmp, 0, sizeof(tmp));
    for (seq = from + 1; seq <= tail && rc == 0; seq++) {
        e = &ent[(seq - 1) % hdr->capacity];
        if (e->ev >= INA_NEVENTS || (e->family != 4 && e->family != 6))
            continue;
        if (store_prefixes(st->conf, e->family, &(const uint8_t *) {
                NULL }) == 0)
            continue;
        rc = batch_add(st, &tmp.tab, &cap, &used, &tmp, (int64_t) e->time,
                       e->ev, e->family, e->addr, e->n);
        cap = tmp.cap;
    }
    if (rc == 0)
        rc = batch_apply(st, txn, tmp.tab, tmp.cap, used);
    free(tmp.tab);
    if (rc == 0)
        rc = batch_meta_put(st, txn, mkey, mklen, tail);
    if (rc == 0 && replayed != NULL)
        *replayed += tail - from;
    return rc;
}

/* batch_open_journal - create this handle's journal file */

static int
batch_open_journal(struct ina_store *st)
{
    struct batch *b = st->env->batch;
    size_t len = sizeof(struct journal_hdr)
                 + JOURNAL_ENTRIES * sizeof(struct journal_ent);
    void *map;
    int fd;

    pthread_mutex_lock(&batch_lock);
    b->seq = ++batch_seq;
    pthread_mutex_unlock(&batch_lock);
    snprintf(b->path, sizeof(b->path), "%s/journal.%ld.%llu.%u",
             st->conf->store, (long) st->pid,
             (unsigned long long) st->pstart, (unsigned) b->seq);
    fd = open(b->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
              0660);
    if (fd < 0)
        return errno;
    /* Readable by the store's group, as the store's own files are. */
    (void) fchmod(fd, 0660);
    (void) env_chgrp_path(st->env, b->path);
    /* The blocks are allocated now, so a full disk fails here and not as
     * SIGBUS on a later store into the map. */
    if ((errno = posix_fallocate(fd, 0, (off_t) len)) != 0) {
        int e = errno;

        close(fd);
        unlink(b->path);
        return e;
    }
    map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        unlink(b->path);
        return errno;
    }
    b->hdr = map;
    b->ent = (struct journal_ent *) (b->hdr + 1);
    b->maplen = len;
    b->hdr->pid = (uint32_t) st->pid;
    b->hdr->seq = b->seq;
    b->hdr->start = st->pstart;
    b->hdr->capacity = JOURNAL_ENTRIES;
    b->hdr->tail = 0;
    b->hdr->applied = 0;
    b->hdr->version = JOURNAL_VERSION;
    __atomic_store_n(&b->hdr->magic, JOURNAL_MAGIC, __ATOMIC_RELEASE);
    b->applied = 0;
    return 0;
}

struct flush_arg {
    uint64_t tail;
};

/* flush_txn - apply the pending table and store the tail with it */

static int
flush_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct flush_arg *a = argp;
    struct batch *b = st->env->batch;
    uint8_t mkey[17];
    size_t mklen;
    uint64_t applied;
    int found, rc;

    mklen = batch_meta_key(mkey, b->hdr->pid, b->hdr->start, b->seq);
    applied = batch_meta_get(st, txn, mkey, mklen, &found);
    if (applied != b->applied) {
        /* Someone took our journal for a dead one's and applied part of
         * it: the table no longer matches; apply from the journal. */
        if ((rc = batch_replay(st, txn, b->hdr, b->ent, NULL)) != 0)
            return rc;
        return store_expire_due(st, txn, st->clock(st->clock_arg));
    }
    if ((rc = batch_apply(st, txn, b->tab, b->cap, b->used)) != 0
        || (rc = batch_meta_put(st, txn, mkey, mklen, a->tail)) != 0)
        return rc;
    return store_expire_due(st, txn, st->clock(st->clock_arg));
}

/* batch_clear - forget the pending table after a flush */

static void
batch_clear(struct batch *b)
{
    if (b->used > 0)
        memset(b->tab, 0, b->cap * sizeof(*b->tab));
    b->used = 0;
    b->first_time = 0;
    b->deadline_ms = 0;
}

/* batch_flush_locked - apply the pending events now (batch lock held)
 *
 * A map too full even for the coarsest granularity loses the batch,
 * counted as dropped; nothing else fails the caller's record. */

static int
batch_flush_locked(struct ina_store *st)
{
    struct batch *b = st->env->batch;
    struct flush_arg a;
    int rc;

    if (b == NULL || b->hdr == NULL || b->used == 0)
        return 0;
    a.tail = b->hdr->tail;
    rc = store_write(st, flush_txn, &a);
    if (rc == 0) {
        b->applied = a.tail;
        __atomic_store_n(&b->hdr->applied, a.tail, __ATOMIC_RELEASE);
        batch_clear(b);
    } else if (rc == MDB_MAP_FULL) {
        store_log(st, INA_LOG_ERR,
                  "store %s: map full at the coarsest granularity: %zu "
                  "pending counters were not counted", st->conf->store,
                  b->used);
        store_count_dropped(st, b->hdr->tail - b->applied);
        b->applied = a.tail;
        batch_clear(b);
        rc = 0;
    }
    return rc;
}

/* batch_flush - apply the process's pending events of this store now */

int
batch_flush(struct ina_store *st)
{
    int rc;

    pthread_mutex_lock(&st->env->block);
    rc = batch_flush_locked(st);
    pthread_mutex_unlock(&st->env->block);
    return rc;
}

/* batch_record_locked - journal one event, add it to the pending table */

static int
batch_record_locked(struct ina_store *st, enum ina_event ev,
                    const struct ina_cidr *addr, uint64_t n)
{
    struct batch *b = st->env->batch;
    struct journal_ent *e;
    uint64_t tail, now_ms;
    int64_t now;
    size_t wi;
    int rc;

    if (b == NULL) {
        if ((b = calloc(1, sizeof(*b))) == NULL)
            return ENOMEM;
        st->env->batch = b;
    }
    if (b->hdr == NULL && (rc = batch_open_journal(st)) != 0)
        return rc;
    now = st->clock(st->clock_arg);
    if (now < 0 || now > (int64_t) UINT32_MAX)
        return INA_ECLOCK;
    /* A window boundary flushes what was pending, so that expiry never
     * runs ahead of buffered counts and other processes see the closed
     * window whole. */
    if (b->used > 0) {
        for (wi = 0; wi < st->nwidths; wi++)
            if (now / st->widths[wi].width
                != b->first_time / st->widths[wi].width)
                break;
        if (wi < st->nwidths && (rc = batch_flush_locked(st)) != 0)
            return rc;
    }
    tail = b->hdr->tail;
    if (tail - b->applied >= b->hdr->capacity || b->used >= BATCH_MAX_KEYS) {
        if ((rc = batch_flush_locked(st)) != 0)
            return rc;
    }
    e = &b->ent[tail % b->hdr->capacity];
    e->time = (uint32_t) now;
    e->ev = (uint8_t) ev;
    e->family = addr->family;
    e->n = n;
    memcpy(e->addr, addr->addr, 16);
    __atomic_store_n(&b->hdr->tail, tail + 1, __ATOMIC_RELEASE);
    if ((rc = batch_add(st, &b->tab, &b->cap, &b->used, b, now, (int) ev,
                        addr->family, addr->addr, n)) != 0)
        return rc;
    now_ms = mono_ms();
    if (b->first_time == 0) {
        b->first_time = now;
        b->deadline_ms = now_ms + st->conf->flush_delay;
    }
    if (now_ms >= b->deadline_ms)
        return batch_flush_locked(st);
    return 0;
}

/* batch_record - journal one event and add it to the pending table */

int
batch_record(struct ina_store *st, enum ina_event ev,
             const struct ina_cidr *addr, uint64_t n)
{
    int rc;

    pthread_mutex_lock(&st->env->block);
    rc = batch_record_locked(st, ev, addr, n);
    pthread_mutex_unlock(&st->env->block);
    return rc;
}

/* batch_due - flush if the deadline passed (every entry point calls) */

int
batch_due(struct ina_store *st)
{
    struct batch *b = st->env->batch;
    int rc = 0;

    /* Most queries find nothing pending: no lock, no clock for them. */
    if (!batch_has_pending(st))
        return 0;
    pthread_mutex_lock(&st->env->block);
    if (b->used > 0 && mono_ms() >= b->deadline_ms)
        rc = batch_flush_locked(st);
    pthread_mutex_unlock(&st->env->block);
    return rc;
}

/* batch_pending - the process's pending count of one counter key */

uint64_t
batch_pending(struct ina_store *st, const uint8_t *key, size_t klen,
              int ev)
{
    struct batch *b = st->env->batch;
    struct pend *p;
    uint64_t n = 0;

    if (!batch_has_pending(st))
        return 0;
    pthread_mutex_lock(&st->env->block);
    if (b->used > 0) {
        p = batch_find(b->tab, b->cap, key, klen);
        n = p->klen != 0 ? p->d[ev] : 0;
    }
    pthread_mutex_unlock(&st->env->block);
    return n;
}

/* batch_has_pending - does the process hold unflushed events here? */

int
batch_has_pending(const struct ina_store *st)
{
    struct batch *b = st->env->batch;

    return b != NULL && __atomic_load_n(&b->used, __ATOMIC_RELAXED) > 0;
}

/* batch_forget - drop the parent's batch in a child after fork
 *
 * The events belong to the parent's journal, which the parent (or a
 * survivor) applies; the child only unmaps its copy.  Called by the
 * environment's fork handler, single-threaded. */

void
batch_forget(struct env *e)
{
    struct batch *b = e->batch;

    if (b == NULL)
        return;
    if (b->hdr != NULL)
        munmap(b->hdr, b->maplen);
    free(b->tab);
    free(b);
    e->batch = NULL;
}

/* batch_retire - flush, and remove the journal once it is applied
 *
 * The store stays usable: a later record makes a new journal. */

int
batch_retire(struct ina_store *st)
{
    struct batch *b;
    int rc = 0;

    pthread_mutex_lock(&st->env->block);
    b = st->env->batch;
    if (b != NULL && b->hdr != NULL) {
        rc = batch_flush_locked(st);
        if (rc == 0 && b->applied == b->hdr->tail) {
            unlink(b->path);
            munmap(b->hdr, b->maplen);
            b->hdr = NULL;
            b->ent = NULL;
        }
    }
    pthread_mutex_unlock(&st->env->block);
    return rc;
}

/* batch_parse_name - pid, start and seq from "journal.PID.START.SEQ" */

static int
batch_parse_name(const char *name, uint32_t *pid, uint64_t *start,
                 uint32_t *seq)
{
    unsigned long p, s;
    unsigned long long t;
    int used = 0;

    if (sscanf(name, "journal.%lu.%llu.%lu%n", &p, &t, &s, &used) != 3
        || name[used] != '\0')
        return -1;
    *pid = (uint32_t) p;
    *start = (uint64_t) t;
    *seq = (uint32_t) s;
    return 0;
}

/* batch_gone - add a journal to the list removed after the commit */

static int
batch_gone(char ***list, size_t *n, const char *path)
{
    char **l = realloc(*list, (*n + 1) * sizeof(*l));

    if (l == NULL)
        return ENOMEM;
    *list = l;
    if ((l[*n] = strdup(path)) == NULL)
        return ENOMEM;
    (*n)++;
    return 0;
}

/* batch_sweep_txn - apply and remove the journals of dead processes
 *
 * Runs inside a write transaction (at open and every few seconds).  The
 * files are unlinked only after the transaction commits: the caller gets
 * their names back in *gone. */

int
batch_sweep_txn(struct ina_store *st, MDB_txn *txn, char ***gone,
                size_t *ngone, uint64_t *replayed)
{
    char path[4096], **list = NULL;
    struct journal_hdr *hdr;
    struct dirent *de;
    struct stat sb;
    uint32_t pid, seq;
    uint64_t start;
    size_t n = 0;
    DIR *d;
    void *map;
    int fd, rc = 0;

    *gone = NULL;
    *ngone = 0;
    if ((d = opendir(st->conf->store)) == NULL)
        return 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (batch_parse_name(de->d_name, &pid, &start, &seq) != 0)
            continue;
        if (pid == (uint32_t) st->pid && start == st->pstart)
            continue;
        if (session_alive((pid_t) pid, start))
            continue;
        snprintf(path, sizeof(path), "%s/%s", st->conf->store, de->d_name);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
            continue;
        if (fstat(fd, &sb) != 0) {
            close(fd);
            continue;
        }
        if ((size_t) sb.st_size < sizeof(struct journal_hdr)) {
            /* Its owner died between creating and sizing it: it never
             * held an event. */
            close(fd);
            rc = batch_gone(&list, &n, path);
            continue;
        }
        map = mmap(NULL, (size_t) sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (map == MAP_FAILED)
            continue;
        hdr = map;
        if (hdr->magic == JOURNAL_MAGIC && hdr->version == JOURNAL_VERSION
            && hdr->pid == pid && hdr->start == start && hdr->seq == seq
            && hdr->capacity > 0
            && sizeof(*hdr) + hdr->capacity * sizeof(struct journal_ent)
                   <= (uint64_t) sb.st_size)
            rc = batch_replay(st, txn, hdr,
                              (const struct journal_ent *) (hdr + 1),
                              replayed);
        munmap(map, (size_t) sb.st_size);
        if (rc == 0)
            rc = batch_gone(&list, &n, path);
    }
    closedir(d);
    if (rc != 0) {
        while (n > 0)
            free(list[--n]);
        free(list);
        return rc;
    }
    *gone = list;
    *ngone = n;
    return 0;
}
