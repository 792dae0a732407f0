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
 * meta record of its tail stays until the file is gone (a later sweep
 * deletes it then), so that a crash between the two can never replay it
 * twice.
 *
 * The batch belongs to the process's environment (env.c), so every handle
 * of a process on one store, every Lua state included, shares it.  Beside
 * the journal it keeps the pending deltas in a hash table: queries add
 * them (read-your-writes), and the flush applies them sorted.  A batch
 * never spans a window boundary of any width (the boundary flushes it),
 * so an event adds the same deltas to the current window of every width:
 * the table is keyed by prefix (family, mask, address) alone, one entry
 * per granularity instead of one per granularity and width, and the
 * flush writes each entry into every width's current window.
 *
 * Flushes are combined: a flush applies, with this process's table, the
 * entries of every other process's journal past their stored tails, and
 * stores every journal's new tail in the same transaction.  So the first
 * process whose deadline passes serves all the writers, each key merged
 * across them, and the others do not queue behind it for the writer lock
 * to flush what it already applied: after its commit it raises a hint in
 * each journal's header, and the owner then rebuilds its table from the
 * entries past it.  The hint can be lost (the applier dies between its
 * commit and the hint), so a query that finds pending counts for its key
 * reads the journal's tail from its own snapshot, once per snapshot, and
 * catches up to that: the sum is exact for the snapshot it read.
 *
 * A deadline is set when a batch starts: flush_delay after its first
 * event, less the time a flush takes here (the writer lock's holding
 * time, averaged), so that other processes see an event within about
 * flush_delay while the writer keeps up; ina_flush() makes them see it at
 * once.  When it does not keep up, events wait for the flushes before
 * them (inaudit-bench measures both: README, Performance).
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

/* The tables of a collection of journal entries: one per set of windows
 * met (a boundary falls between some entries), applied and reused when
 * more sets come than it holds. */
#define PSET_MAX 4
struct pset {
    struct ptab t[PSET_MAX];
    size_t n;
};

/* The journal of another process, mapped for combined flushes. */
struct peer {
    char name[96];
    struct journal_hdr *hdr;
    size_t maplen;
    int writable;              /* the hint can be published */
    int seen;                  /* found by the last directory scan */
    uint64_t tail;             /* collected up to, in the flush under way */
};

/* The batch state of a process on one store. */
struct batch {
    struct journal_hdr *hdr;   /* NULL until the first record */
    struct journal_ent *ent;
    uint64_t *ms;              /* monotonic ms of each entry's record */
    size_t maplen;
    char path[4096];
    uint32_t seq;
    uint64_t applied;          /* entries the pending table leaves out */
    struct ptab pend;          /* the entries past applied, merged */
    uint64_t deadline_ms;      /* monotonic time to flush by */
    uint64_t flush_ms;         /* how long a flush takes here (average) */
    uint64_t snap_txn;         /* the last snapshot whose stored tail ... */
    uint64_t snap_applied;     /* ... was read, and that tail */
    struct pset merge;         /* a combined flush's tables */
    struct peer *peers;        /* the other processes' journals */
    size_t npeers, peercap;
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

/* be_get - a big-endian integer of a key */

static uint64_t
be_get(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* mono_ms - a monotonic clock in milliseconds, for flush deadlines */

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/* hint_raise - publish an applied tail, never moving it back
 *
 * Several processes may publish into one journal's header: its owner
 * after its own flush, any other process after a combined one. */

static void
hint_raise(uint64_t *hint, uint64_t v)
{
    uint64_t cur = __atomic_load_n(hint, __ATOMIC_RELAXED);

    while (cur < v
           && !__atomic_compare_exchange_n(hint, &cur, v, 1,
                                           __ATOMIC_RELEASE,
                                           __ATOMIC_RELAXED))
        ;
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

/* ptab_slot - the entry of a key, made (with zero deltas) if it is new */

static int
ptab_slot(struct ptab *t, const uint8_t *key, size_t klen,
          struct pend **out)
{
    struct pend *p;
    int rc;

    if ((t->used + 1) * 2 > t->cap && (rc = ptab_grow(t)) != 0)
        return rc;
    p = ptab_find(t, key, klen);
    if (p->klen == 0) {
        p->klen = (uint8_t) klen;
        memcpy(p->key, key, klen);
        memset(p->d, 0, sizeof(p->d));
        t->slot[t->used++] = (size_t) (p - t->tab);
    }
    *out = p;
    return 0;
}

/* sat_add - a + b, saturating */

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
    return UINT64_MAX - a < b ? UINT64_MAX : a + b;
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
        key[1] = list[pi];
        memcpy(key + 2, host, alen);
        cidr_mask(key + 2, alen, list[pi]);
        if ((rc = ptab_slot(t, key, klen, &p)) != 0)
            return rc;
        p->d[ev] = sat_add(p->d[ev], n);
    }
    return 0;
}

/* ptab_merge - add every entry of src into t (of the same windows) */

static int
ptab_merge(struct ptab *t, const struct ptab *src)
{
    const struct pend *o;
    struct pend *p;
    size_t i;
    int e, rc;

    for (i = 0; i < src->used; i++) {
        o = &src->tab[src->slot[i]];
        if ((rc = ptab_slot(t, o->key, o->klen, &p)) != 0)
            return rc;
        for (e = 0; e < INA_NEVENTS; e++)
            p->d[e] = sat_add(p->d[e], o->d[e]);
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
               size_t klen)
{
    MDB_val k, v;
    uint64_t applied = 0;

    k.mv_data = (void *) key;
    k.mv_size = klen;
    if (mdb_get(txn, st->env->meta, &k, &v) == 0
        && v.mv_size == sizeof(applied))
        memcpy(&applied, v.mv_data, sizeof(applied));
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

/* pset_table - the table of a collection for the windows of time
 *
 * When every table holds other windows, the oldest is applied now, in
 * the caller's transaction, and reused: sums do not depend on order. */

static int
pset_table(struct ina_store *st, MDB_txn *txn, struct pset *set,
           int64_t time, struct ptab **out)
{
    struct ptab *t;
    size_t i;
    int rc;

    for (i = 0; i < set->n; i++)
        if (set->t[i].used > 0 && same_windows(st, set->t[i].time, time)) {
            *out = &set->t[i];
            return 0;
        }
    for (i = 0; i < set->n; i++)
        if (set->t[i].used == 0)
            break;
    if (i == set->n && set->n < PSET_MAX)
        set->n++;
    if (i == PSET_MAX) {
        i = 0;
        if ((rc = ptab_apply(st, txn, &set->t[0])) != 0)
            return rc;
        ptab_clear(&set->t[0]);
    }
    t = &set->t[i];
    t->time = time;
    *out = t;
    return 0;
}

/* pset_apply - apply every table of a collection */

static int
pset_apply(struct ina_store *st, MDB_txn *txn, const struct pset *set)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < set->n && rc == 0; i++)
        rc = ptab_apply(st, txn, &set->t[i]);
    return rc;
}

/* pset_clear, pset_free - empty a collection, release it */

static void
pset_clear(struct pset *set)
{
    size_t i;

    for (i = 0; i < set->n; i++)
        ptab_clear(&set->t[i]);
}

static void
pset_free(struct pset *set)
{
    size_t i;

    for (i = 0; i < PSET_MAX; i++)
        ptab_free(&set->t[i]);
    set->n = 0;
}

/* journal_collect - add a journal's entries past its stored tail
 *
 * The entries are re-expanded with this handle's configuration.  *tailp
 * gets the tail read (entries up to it are whole: the owner advances it
 * with release order after writing each), *count the entries added.  The
 * caller stores the tail (journal_mark) in the transaction that applies
 * the collection. */

static int
journal_collect(struct ina_store *st, MDB_txn *txn,
                const struct journal_hdr *hdr,
                const struct journal_ent *ent, struct pset *set,
                uint64_t *tailp, uint64_t *count)
{
    uint8_t mkey[17];
    uint64_t applied, tail, seq, from;
    const struct journal_ent *e;
    const uint8_t *list;
    struct ptab *t;
    int rc = 0;

    applied = batch_meta_get(st, txn, mkey,
                             batch_meta_key(mkey, hdr->pid, hdr->start,
                                            hdr->seq));
    tail = __atomic_load_n(&hdr->tail, __ATOMIC_ACQUIRE);
    *tailp = tail;
    *count = 0;
    if (tail <= applied)
        return 0;
    /* Entries older than one ring were overwritten; they were applied
     * before the owner reused their slots. */
    from = tail - applied > hdr->capacity ? tail - hdr->capacity : applied;
    for (seq = from + 1; seq <= tail && rc == 0; seq++) {
        e = &ent[(seq - 1) % hdr->capacity];
        if (e->ev >= INA_NEVENTS || (e->family != 4 && e->family != 6))
            continue;
        if (store_prefixes(st->conf, e->family, &list) == 0)
            continue;
        if ((rc = pset_table(st, txn, set, (int64_t) e->time, &t)) == 0)
            rc = ptab_add_event(st, t, e->ev, e->family, e->addr, e->n);
    }
    if (rc == 0)
        *count = tail - from;
    return rc;
}

/* journal_mark - store the tail a transaction applied a journal up to */

static int
journal_mark(struct ina_store *st, MDB_txn *txn,
             const struct journal_hdr *hdr, uint64_t tail)
{
    uint8_t mkey[17];

    return batch_meta_put(st, txn, mkey,
                          batch_meta_key(mkey, hdr->pid, hdr->start,
                                         hdr->seq), tail);
}

/* batch_replay - apply a journal's entries past its stored tail
 *
 * For the journals of dead processes (the sweep), in the caller's
 * transaction. */

static int
batch_replay(struct ina_store *st, MDB_txn *txn,
             const struct journal_hdr *hdr, const struct journal_ent *ent,
             uint64_t *replayed)
{
    struct pset set;
    uint64_t tail, count;
    int rc;

    memset(&set, 0, sizeof(set));
    rc = journal_collect(st, txn, hdr, ent, &set, &tail, &count);
    if (rc == 0 && count > 0 && (rc = pset_apply(st, txn, &set)) == 0)
        rc = journal_mark(st, txn, hdr, tail);
    pset_free(&set);
    if (rc == 0 && replayed != NULL)
        *replayed += count;
    return rc;
}

/* journal_valid - does a mapped journal's header match its name? */

static int
journal_valid(const struct journal_hdr *hdr, size_t size, uint32_t pid,
              uint64_t start, uint32_t seq)
{
    return __atomic_load_n(&hdr->magic, __ATOMIC_ACQUIRE) == JOURNAL_MAGIC
           && hdr->version == JOURNAL_VERSION && hdr->pid == pid
           && hdr->start == start && hdr->seq == seq && hdr->capacity > 0
           && hdr->capacity <= (size - sizeof(*hdr))
                                   / sizeof(struct journal_ent);
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

/* batch_open_journal - create this process's journal file */

static int
batch_open_journal(struct ina_store *st)
{
    struct batch *b = st->env->batch;
    size_t len = sizeof(struct journal_hdr)
                 + JOURNAL_ENTRIES * sizeof(struct journal_ent);
    void *map;
    int fd;

    if (b->ms == NULL
        && (b->ms = calloc(JOURNAL_ENTRIES, sizeof(*b->ms))) == NULL)
        return ENOMEM;
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
    /* Readable and writable by the store's group, as the store's own
     * files are: other writers apply it and publish what they applied. */
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
    b->snap_txn = 0;
    b->snap_applied = 0;
    return 0;
}

/* peers_drop - unmap the journals the last scan did not find (or all) */

static void
peers_drop(struct batch *b, int all)
{
    size_t i, j;

    for (i = 0, j = 0; i < b->npeers; i++) {
        if (all || !b->peers[i].seen) {
            munmap(b->peers[i].hdr, b->peers[i].maplen);
            continue;
        }
        b->peers[j++] = b->peers[i];
    }
    b->npeers = j;
}

/* journal_map - map a journal file whole
 *
 * Read-write when want_write is set and the file allows it (*writable
 * says which), read-only otherwise.  Returns 0 with *map and *len set,
 * 1 for a file shorter than a header (its owner died between making and
 * sizing it: it never held an event), -1 when it cannot be opened or
 * mapped.  Checking the header is the caller's (journal_valid). */

static int
journal_map(const char *path, int want_write, void **map, size_t *len,
            int *writable)
{
    struct stat sb;
    int fd = -1;

    *writable = 0;
    if (want_write && (fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) >= 0)
        *writable = 1;
    if (fd < 0 && (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return -1;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return -1;
    }
    if ((size_t) sb.st_size < sizeof(struct journal_hdr)) {
        close(fd);
        return 1;
    }
    *len = (size_t) sb.st_size;
    *map = mmap(NULL, *len, *writable ? PROT_READ | PROT_WRITE : PROT_READ,
                MAP_SHARED, fd, 0);
    close(fd);
    return *map == MAP_FAILED ? -1 : 0;
}

/* peers_map - map the journal of another process, once it is whole */

static void
peers_map(struct ina_store *st, struct batch *b, const char *name,
          uint32_t pid, uint64_t start, uint32_t seq)
{
    char path[4096];
    struct peer *p;
    size_t len;
    void *map;
    int writable;

    if (strlen(name) >= sizeof(p->name))
        return;
    if (b->npeers == b->peercap) {
        size_t cap = b->peercap ? b->peercap * 2 : 16;

        if ((p = realloc(b->peers, cap * sizeof(*p))) == NULL)
            return;
        b->peers = p;
        b->peercap = cap;
    }
    snprintf(path, sizeof(path), "%s/%s", st->conf->store, name);
    if (journal_map(path, 1, &map, &len, &writable) != 0)
        return;
    if (!journal_valid(map, len, pid, start, seq)) {
        /* Still being made: the next scan looks again. */
        munmap(map, len);
        return;
    }
    p = &b->peers[b->npeers++];
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->hdr = map;
    p->maplen = len;
    p->writable = writable;
    p->seen = 1;
    p->tail = 0;
}

/* peers_scan - find the journals of the other processes on the store
 *
 * Mappings are kept from one flush to the next; a journal whose file is
 * gone (retired, or swept after its owner died) is dropped. */

static void
peers_scan(struct ina_store *st, struct batch *b)
{
    struct dirent *de;
    uint32_t pid, seq;
    uint64_t start;
    size_t i;
    DIR *d;

    if ((d = opendir(st->conf->store)) == NULL)
        return;
    for (i = 0; i < b->npeers; i++)
        b->peers[i].seen = 0;
    while ((de = readdir(d)) != NULL) {
        if (batch_parse_name(de->d_name, &pid, &start, &seq) != 0)
            continue;
        if (pid == (uint32_t) st->pid && start == st->pstart)
            continue;
        for (i = 0; i < b->npeers; i++)
            if (strcmp(b->peers[i].name, de->d_name) == 0)
                break;
        if (i < b->npeers)
            b->peers[i].seen = 1;
        else
            peers_map(st, b, de->d_name, pid, start, seq);
    }
    closedir(d);
    peers_drop(b, 0);
}

/* peer_present - is a mapped journal's file still in the store? */

static int
peer_present(const struct ina_store *st, const struct peer *p)
{
    char path[4096];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/%s", st->conf->store, p->name);
    return lstat(path, &sb) == 0 || errno != ENOENT;
}

struct flush_arg {
    uint64_t tail;
};

/* flush_txn - apply the pending events of every journal, with their tails
 *
 * A combined flush: besides this process's pending table, the entries of
 * every other process's journal past its stored tail, so that one
 * transaction per flush delay serves all the writers, with each key
 * merged across them.  Every journal's new tail is stored in the same
 * transaction: an entry is applied exactly once, whoever applies it.
 * When the store's tail of our own journal is past b->applied (another
 * process applied some of it and we have not caught up), our entries are
 * taken from the journal instead of the table. */

static int
flush_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct flush_arg *a = argp;
    struct batch *b = st->env->batch;
    struct pset *m = &b->merge;
    struct ptab *t;
    uint8_t mkey[17];
    size_t mklen, i;
    uint64_t applied, tail, count, others = 0, t0 = mono_ms();
    int rc = 0;

    pset_clear(m);
    for (i = 0; i < b->npeers && rc == 0; i++) {
        /* A journal whose file is gone may have lost its stored tail to
         * a sweep (batch_forget_tails): applying it again would count
         * it twice.  Inside the writer lock no sweep runs, and a file
         * that is here now was here for every sweep before. */
        if (!peer_present(st, &b->peers[i])) {
            b->peers[i].tail = 0;
            continue;
        }
        rc = journal_collect(st, txn, b->peers[i].hdr,
                             (const struct journal_ent *) (b->peers[i].hdr
                                                           + 1),
                             m, &b->peers[i].tail, &count);
        if (count == 0)
            b->peers[i].tail = 0;
        others += count;
    }
    if (rc != 0)
        return rc;
    mklen = batch_meta_key(mkey, b->hdr->pid, b->hdr->start, b->seq);
    applied = batch_meta_get(st, txn, mkey, mklen);
    if (applied != b->applied)
        rc = journal_collect(st, txn, b->hdr, b->ent, m, &tail, &count);
    else if (others == 0)
        rc = ptab_apply(st, txn, &b->pend);
    else if ((rc = pset_table(st, txn, m, b->pend.time, &t)) == 0)
        rc = ptab_merge(t, &b->pend);
    if (rc == 0 && (applied != b->applied || others > 0))
        rc = pset_apply(st, txn, m);
    if (rc == 0 && a->tail > applied)
        rc = batch_meta_put(st, txn, mkey, mklen, a->tail);
    for (i = 0; i < b->npeers && rc == 0; i++)
        if (b->peers[i].tail > 0)
            rc = journal_mark(st, txn, b->peers[i].hdr, b->peers[i].tail);
    if (rc == 0)
        rc = store_expire_due(st, txn, st->clock(st->clock_arg));
    /* The average of the last few, in whole milliseconds: the time the
     * writer lock is held for the flush, not the wait for it. */
    b->flush_ms = (3 * b->flush_ms + (mono_ms() - t0) + 3) / 4;
    return rc;
}

/* batch_lead - how long after its record an event's flush must start
 *
 * flush_delay bounds when other processes see an event, and the flush
 * itself takes time: it starts that much earlier (the average duration
 * of this process's flushes), but never at once. */

static uint64_t
batch_lead(const struct ina_store *st, const struct batch *b)
{
    uint64_t delay = st->conf->flush_delay;

    return b->flush_ms < delay ? delay - b->flush_ms : (delay + 3) / 4;
}

/* batch_clear - forget the pending table after a flush */

static void
batch_clear(struct batch *b)
{
    ptab_clear(&b->pend);
    b->deadline_ms = 0;
}

/* batch_catch_up - follow what another process applied of our journal
 *
 * to is a tail that a combined flush stored (published in the journal's
 * header after its commit, or read from a snapshot).  The pending table
 * is rebuilt from the entries past it, all of the table's windows, and
 * the deadline becomes that of the oldest entry left. */

static int
batch_catch_up(struct ina_store *st, struct batch *b, uint64_t to)
{
    uint64_t tail = b->hdr->tail, seq;
    const struct journal_ent *e;
    int64_t time = b->pend.time;
    int rc = 0;

    if (to <= b->applied)
        return 0;
    if (to > tail)
        to = tail;
    batch_clear(b);
    b->applied = to;
    if (to == tail)
        return 0;
    b->pend.time = time;
    b->deadline_ms = b->ms[to % b->hdr->capacity] + batch_lead(st, b);
    for (seq = to + 1; seq <= tail && rc == 0; seq++) {
        e = &b->ent[(seq - 1) % b->hdr->capacity];
        rc = ptab_add_event(st, &b->pend, e->ev, e->family, e->addr, e->n);
    }
    return rc;
}

/* batch_follow - catch up with the applied tail others published */

static int
batch_follow(struct ina_store *st, struct batch *b)
{
    uint64_t hint;

    if (b == NULL || b->hdr == NULL)
        return 0;
    hint = __atomic_load_n(&b->hdr->applied, __ATOMIC_ACQUIRE);
    return hint > b->applied ? batch_catch_up(st, b, hint) : 0;
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
    size_t i;
    int rc;

    if (b == NULL || b->hdr == NULL)
        return 0;
    if ((rc = batch_follow(st, b)) != 0)
        return rc;
    if (b->pend.used == 0)
        return 0;
    peers_scan(st, b);
    a.tail = b->hdr->tail;
    rc = store_write(st, flush_txn, &a);
    pset_clear(&b->merge);
    if (rc == 0) {
        b->applied = a.tail;
        hint_raise(&b->hdr->applied, a.tail);
        for (i = 0; i < b->npeers; i++)
            if (b->peers[i].tail > 0 && b->peers[i].writable)
                hint_raise(&b->peers[i].hdr->applied, b->peers[i].tail);
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
    if ((rc = batch_follow(st, b)) != 0)
        return rc;
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
    now_ms = mono_ms();
    e = &b->ent[tail % b->hdr->capacity];
    e->time = (uint32_t) now;
    e->ev = (uint8_t) ev;
    e->family = addr->family;
    e->n = n;
    memcpy(e->addr, addr->addr, 16);
    b->ms[tail % b->hdr->capacity] = now_ms;
    __atomic_store_n(&b->hdr->tail, tail + 1, __ATOMIC_RELEASE);
    if (b->pend.used == 0) {
        b->pend.time = now;
        b->deadline_ms = now_ms + batch_lead(st, b);
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
    if ((rc = batch_follow(st, b)) == 0 && b->pend.used > 0
        && mono_ms() >= b->deadline_ms)
        rc = batch_flush_locked(st);
    pthread_mutex_unlock(&st->env->block);
    return rc;
}

/* batch_pending - the process's pending count of one key, in a snapshot
 *
 * Pending events all fall in the table's window of each width: a key of
 * another window has none.  The table leaves out the entries up to
 * b->applied; the snapshot holds those up to the tail stored in it,
 * which another process's combined flush may have moved past b->applied
 * before this process heard of it.  So when the key has pending counts,
 * the snapshot's tail is read (once per snapshot) and the table caught
 * up to it: the sum is exact for that snapshot. */

uint64_t
batch_pending(struct ina_store *st, MDB_txn *txn, const uint8_t *key,
              size_t klen, int ev)
{
    struct batch *b = st->env->batch;
    uint8_t mkey[17];
    uint32_t width, win;
    struct pend *p;
    uint64_t n = 0, id;

    if (!batch_has_pending(st) || klen <= 8 || klen - 8 > PKEY_MAX)
        return 0;
    width = (uint32_t) be_get(key, 4);
    win = (uint32_t) be_get(key + 4, 4);
    pthread_mutex_lock(&st->env->block);
    if (b->pend.used > 0 && width > 0
        && (uint32_t) (b->pend.time / width) == win) {
        p = ptab_find(&b->pend, key + 8, klen - 8);
        if (p->klen != 0 && p->d[ev] != 0) {
            id = (uint64_t) mdb_txn_id(txn);
            if (id != b->snap_txn) {
                b->snap_applied = batch_meta_get(
                    st, txn, mkey,
                    batch_meta_key(mkey, b->hdr->pid, b->hdr->start,
                                   b->seq));
                b->snap_txn = id;
            }
            if (b->snap_applied > b->applied
                && batch_catch_up(st, b, b->snap_applied) == 0)
                p = b->pend.used > 0 ? ptab_find(&b->pend, key + 8, klen - 8)
                                     : NULL;
            n = p != NULL && p->klen != 0 ? p->d[ev] : 0;
        }
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
    peers_drop(b, 1);
    free(b->peers);
    ptab_free(&b->pend);
    pset_free(&b->merge);
    free(b->ms);
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

/* Meta records of removed journals deleted by one sweep, at most. */
#define SWEEP_META_CHUNK 1024

/* batch_forget_tails - delete the stored tails of journals that are gone
 *
 * A journal's tail must outlive its file, or a crash between the
 * transaction that applied it and the unlink would let a later sweep
 * apply it again.  Once the file is gone nothing can apply it, and its
 * record would only pile up: one per journal ever made, a process's
 * lifetime each, which fills the map of a busy MTA that recycles its
 * workers.  Journal names are never reused (pid, start time, sequence),
 * so a missing file is gone for good.  A bounded chunk per sweep. */

static int
batch_forget_tails(struct ina_store *st, MDB_txn *txn)
{
    char path[4096];
    const uint8_t *k;
    struct stat sb;
    MDB_cursor *c;
    MDB_val key, v;
    uint64_t start;
    uint32_t pid, seq;
    size_t done = 0;
    int rc;

    if ((rc = mdb_cursor_open(txn, st->env->meta, &c)) != 0)
        return rc;
    key.mv_data = (void *) "j";
    key.mv_size = 1;
    rc = mdb_cursor_get(c, &key, &v, MDB_SET_RANGE);
    while (rc == 0 && done < SWEEP_META_CHUNK && key.mv_size >= 1
           && ((const uint8_t *) key.mv_data)[0] == 'j') {
        k = key.mv_data;
        if (key.mv_size == 17) {
            pid = (uint32_t) be_get(k + 1, 4);
            start = be_get(k + 5, 8);
            seq = (uint32_t) be_get(k + 13, 4);
            snprintf(path, sizeof(path), "%s/journal.%lu.%llu.%lu",
                     st->conf->store, (unsigned long) pid,
                     (unsigned long long) start, (unsigned long) seq);
            if (lstat(path, &sb) != 0 && errno == ENOENT) {
                if ((rc = mdb_cursor_del(c, 0)) != 0)
                    break;
                done++;
                rc = mdb_cursor_get(c, &key, &v, MDB_GET_CURRENT);
                continue;
            }
        }
        rc = mdb_cursor_get(c, &key, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
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
    uint32_t pid, seq;
    uint64_t start;
    size_t n = 0, len;
    DIR *d;
    void *map;
    int m, writable, rc = 0;

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
        if ((m = journal_map(path, 0, &map, &len, &writable)) < 0)
            continue;
        if (m > 0) {
            /* Never sized: it never held an event. */
            rc = batch_gone(&list, &n, path);
            continue;
        }
        hdr = map;
        if (journal_valid(hdr, len, pid, start, seq))
            rc = batch_replay(st, txn, hdr,
                              (const struct journal_ent *) (hdr + 1),
                              replayed);
        munmap(map, len);
        if (rc == 0)
            rc = batch_gone(&list, &n, path);
    }
    closedir(d);
    if (rc == 0)
        rc = batch_forget_tails(st, txn);
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
