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
 * the journal it keeps the pending deltas in a hash table: queries add
 * them (read-your-writes), and the flush applies them sorted.  A batch
 * never spans a window boundary of any width (the boundary flushes it),
 * so an event adds the same deltas to the current window of every width:
 * the table is keyed by prefix (family, mask, address) alone, one entry
 * per granularity instead of one per granularity and width, and the
 * flush writes each entry into every width's current window.  Only the
 * owner applies its live journal; other processes see its events within
 * flush_delay, or at once after ina_flush().
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
#define JOURNAL_ENTRIES 131072
/* Pending keys at which a flush is forced whatever the delay. */
#define BATCH_MAX_KEYS 131072

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

/* One pending prefix: family, mask length and address (the tail of its
 * counter keys, from byte 8), and the deltas of the three events. */
#define PKEY_MAX (CKEY_MAX - 8)
struct pend {
    uint8_t klen;              /* 0: empty slot */
    uint8_t key[PKEY_MAX];
    uint64_t d[INA_NEVENTS];
};

/* A table of pending prefixes, all of one time (the store clock of its
 * first event: its window of every width): open addressing over a power
 * of two, with the slots in use listed, so that clearing and sorting
 * touch only those. */
struct ptab {
    struct pend *tab;
    size_t cap, used;
    size_t *slot;              /* the used entries' slot numbers */
    int64_t time;
};

/* The batch state of a process on one store. */
struct batch {
    struct journal_hdr *hdr;   /* NULL until the first record */
    struct journal_ent *ent;
    size_t maplen;
    char path[4096];
    uint32_t seq;
    uint64_t applied;          /* tail applied by our last flush */
    struct ptab pend;          /* the events past applied, merged */
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

/* pkey_hash - hash of a prefix key: three words, multiplied and mixed */

static uint64_t
pkey_hash(const uint8_t *key, size_t len)
{
    uint64_t w[3] = { 0, 0, 0 }, h;

    memcpy(w, key, len);
    h = w[0] * 0x9e3779b97f4a7c15ull ^ w[1] * 0xc2b2ae3d27d4eb4full
        ^ w[2] * 0x165667b19e3779f9ull ^ len;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    return h ^ (h >> 32);
}

/* ptab_find - the slot of a key, or the empty slot where it goes */

static struct pend *
ptab_find(const struct ptab *t, const uint8_t *key, size_t len)
{
    size_t i = (size_t) pkey_hash(key, len) & (t->cap - 1);

    for (;;) {
        struct pend *p = &t->tab[i];

        if (p->klen == 0
            || (p->klen == len && memcmp(p->key, key, len) == 0))
            return p;
        i = (i + 1) & (t->cap - 1);
    }
}

/* ptab_grow - double a table */

static int
ptab_grow(struct ptab *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024, i;
    struct ptab n;
    struct pend *p;

    memset(&n, 0, sizeof(n));
    if ((n.tab = calloc(cap, sizeof(*n.tab))) == NULL
        || (n.slot = malloc(cap / 2 * sizeof(*n.slot))) == NULL) {
        free(n.tab);
        return ENOMEM;
    }
    n.cap = cap;
    for (i = 0; i < t->used; i++) {
        const struct pend *o = &t->tab[t->slot[i]];

        p = ptab_find(&n, o->key, o->klen);
        *p = *o;
        n.slot[i] = (size_t) (p - n.tab);
    }
    free(t->tab);
    free(t->slot);
    t->tab = n.tab;
    t->slot = n.slot;
    t->cap = cap;
    return 0;
}

/* ptab_clear - empty a table, touching only the entries in use */

static void
ptab_clear(struct ptab *t)
{
    size_t i;

    for (i = 0; i < t->used; i++)
        t->tab[t->slot[i]].klen = 0;
    t->used = 0;
    t->time = 0;
}

/* ptab_free - release a table */

static void
ptab_free(struct ptab *t)
{
    free(t->tab);
    free(t->slot);
    memset(t, 0, sizeof(*t));
}

/* ptab_add_event - add one event's deltas at every prefix it counts under */

static int
ptab_add_event(struct ina_store *st, struct ptab *t, int ev, int family,
               const uint8_t *host, uint64_t n)
{
    uint8_t key[PKEY_MAX];
    const uint8_t *list;
    unsigned alen = cidr_addrlen(family);
    size_t np, pi, klen = 2 + alen;
    struct pend *p;
    int rc;

    np = store_prefixes(st->conf, family, &list);
    key[0] = (uint8_t) family;
    for (pi = 0; pi < np; pi++) {
        if ((t->used + 1) * 2 > t->cap && (rc = ptab_grow(t)) != 0)
            return rc;
        key[1] = list[pi];
        memcpy(key + 2, host, alen);
        cidr_mask(key + 2, alen, list[pi]);
        p = ptab_find(t, key, klen);
        if (p->klen == 0) {
            p->klen = (uint8_t) klen;
            memcpy(p->key, key, klen);
            memset(p->d, 0, sizeof(p->d));
            t->slot[t->used++] = (size_t) (p - t->tab);
        }
        p->d[ev] = UINT64_MAX - p->d[ev] < n ? UINT64_MAX : p->d[ev] + n;
    }
    return 0;
}

/* pend_cmp - key order of pending prefixes (the order of their counter
 * keys within one window) */

static int
pend_cmp(const void *a, const void *b)
{
    const struct pend *x = *(const struct pend *const *) a;
    const struct pend *y = *(const struct pend *const *) b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);

    return c != 0 ? c : (int) x->klen - (int) y->klen;
}

/* batch_skipped - is a prefix's granularity dropped by degradation? */

static int
batch_skipped(struct ina_store *st, int level, const uint8_t *pkey)
{
    const uint8_t *list;
    size_t np = store_prefixes(st->conf, pkey[0], &list), i;

    if (level <= 0 || np == 0)
        return 0;
    if ((size_t) level >= np)
        level = (int) np - 1;
    for (i = np - (size_t) level; i < np; i++)
        if (list[i] == pkey[1])
            return 1;
    return 0;
}

/* ptab_apply - add a table of pending prefixes in one transaction
 *
 * The prefixes are sorted once; then each width, in ascending order, gets
 * them in its window of the table's time, so the cursor only moves
 * forward and neighbouring keys share the descent and the copied pages. */

static int
ptab_apply(struct ina_store *st, MDB_txn *txn, const struct ptab *t)
{
    uint8_t key[CKEY_MAX];
    struct pend **order;
    MDB_cursor *c;
    size_t i, n = 0, wi;
    int rc = 0, level;

    if (t->used == 0)
        return 0;
    if ((order = malloc(t->used * sizeof(*order))) == NULL)
        return ENOMEM;
    level = store_level(st, txn);
    for (i = 0; i < t->used; i++)
        if (!batch_skipped(st, level, t->tab[t->slot[i]].key))
            order[n++] = &t->tab[t->slot[i]];
    qsort(order, n, sizeof(*order), pend_cmp);
    if ((rc = mdb_cursor_open(txn, st->env->counts, &c)) != 0) {
        free(order);
        return rc;
    }
    for (wi = 0; wi < st->nwidths && rc == 0; wi++) {
        /* The width and window that head every key of this pass. */
        be_put(key, st->widths[wi].width, 4);
        be_put(key + 4, (uint64_t) (t->time / st->widths[wi].width), 4);
        for (i = 0; i < n && rc == 0; i++) {
            memcpy(key + 8, order[i]->key, order[i]->klen);
            rc = store_add_counts(c, key, 8 + order[i]->klen, order[i]->d);
        }
    }
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

/* same_windows - do two clock readings fall in the same window of every
 * width? */

static int
same_windows(const struct ina_store *st, int64_t a, int64_t b)
{
    size_t wi;

    for (wi = 0; wi < st->nwidths; wi++)
        if (a / st->widths[wi].width != b / st->widths[wi].width)
            return 0;
    return 1;
}

/* batch_replay - apply a journal's entries past its stored tail
 *
 * Used for journals of dead processes, and by the owner when its own
 * bookkeeping disagrees with the store.  The entries are re-expanded
 * with this handle's configuration, into one table per run of entries
 * that share their windows. */

static int
batch_replay(struct ina_store *st, MDB_txn *txn,
             const struct journal_hdr *hdr, const struct journal_ent *ent,
             uint64_t *replayed)
{
    uint8_t mkey[17];
    size_t mklen;
    uint64_t applied, tail, seq, from;
    struct ptab t;
    const struct journal_ent *e;
    const uint8_t *list;
    int found, rc = 0;

    mklen = batch_meta_key(mkey, hdr->pid, hdr->start, hdr->seq);
    applied = batch_meta_get(st, txn, mkey, mklen, &found);
    tail = __atomic_load_n(&hdr->tail, __ATOMIC_ACQUIRE);
    if (tail <= applied)
        return 0;
    /* Entries older than one ring were overwritten; they were applied
     * before the owner reused their slots. */
    from = tail - applied > hdr->capacity ? tail - hdr->capacity : applied;
    memset(&t, 0, sizeof(t));
    for (seq = from + 1; seq <= tail && rc == 0; seq++) {
        e = &ent[(seq - 1) % hdr->capacity];
        if (e->ev >= INA_NEVENTS || (e->family != 4 && e->family != 6))
            continue;
        if (store_prefixes(st->conf, e->family, &list) == 0)
            continue;
        if (t.used > 0 && !same_windows(st, t.time, (int64_t) e->time)) {
            rc = ptab_apply(st, txn, &t);
            ptab_clear(&t);
        }
        if (t.used == 0)
            t.time = (int64_t) e->time;
        if (rc == 0)
            rc = ptab_add_event(st, &t, e->ev, e->family, e->addr, e->n);
    }
    if (rc == 0)
        rc = ptab_apply(st, txn, &t);
    ptab_free(&t);
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
    if ((rc = ptab_apply(st, txn, &b->pend)) != 0
        || (rc = batch_meta_put(st, txn, mkey, mklen, a->tail)) != 0)
        return rc;
    return store_expire_due(st, txn, st->clock(st->clock_arg));
}

/* batch_clear - forget the pending table after a flush */

static void
batch_clear(struct batch *b)
{
    ptab_clear(&b->pend);
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

    if (b == NULL || b->hdr == NULL || b->pend.used == 0)
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
                  "pending prefixes were not counted", st->conf->store,
                  b->pend.used);
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
     * runs ahead of buffered counts, other processes see the closed
     * window whole, and the table stays within one window per width. */
    if (b->pend.used > 0 && !same_windows(st, now, b->pend.time)
        && (rc = batch_flush_locked(st)) != 0)
        return rc;
    tail = b->hdr->tail;
    if (tail - b->applied >= b->hdr->capacity
        || b->pend.used >= BATCH_MAX_KEYS) {
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
    now_ms = mono_ms();
    if (b->pend.used == 0) {
        b->pend.time = now;
        b->deadline_ms = now_ms + st->conf->flush_delay;
    }
    if ((rc = ptab_add_event(st, &b->pend, (int) ev, addr->family,
                             addr->addr, n)) != 0)
        return rc;
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
    if (b->pend.used > 0 && mono_ms() >= b->deadline_ms)
        rc = batch_flush_locked(st);
    pthread_mutex_unlock(&st->env->block);
    return rc;
}

/* batch_pending - the process's pending count of one counter key
 *
 * Pending events all fall in the table's window of each width: a key of
 * another window has none. */

uint64_t
batch_pending(struct ina_store *st, const uint8_t *key, size_t klen,
              int ev)
{
    struct batch *b = st->env->batch;
    uint32_t width, win;
    struct pend *p;
    uint64_t n = 0;

    if (!batch_has_pending(st) || klen <= 8 || klen - 8 > PKEY_MAX)
        return 0;
    width = (uint32_t) key[0] << 24 | (uint32_t) key[1] << 16
            | (uint32_t) key[2] << 8 | key[3];
    win = (uint32_t) key[4] << 24 | (uint32_t) key[5] << 16
          | (uint32_t) key[6] << 8 | key[7];
    pthread_mutex_lock(&st->env->block);
    if (b->pend.used > 0 && width > 0
        && (uint32_t) (b->pend.time / width) == win) {
        p = ptab_find(&b->pend, key + 8, klen - 8);
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

    return b != NULL
           && __atomic_load_n(&b->pend.used, __ATOMIC_RELAXED) > 0;
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
    ptab_free(&b->pend);
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
