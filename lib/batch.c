/* batch.c - buffered recording: a journal per process, one shared table
 * of pending counts (and one of sessions), large sorted flushes
 *
 * One LMDB write transaction per event costs microseconds: the writer
 * lock, copy-on-write of a path of pages, the commit.  So events are
 * buffered and applied in large transactions, merged by key and sorted;
 * the larger the transaction, the fewer pages each key copies.  What
 * makes large transactions affordable is that buffering does not hide
 * an event from anyone: every process adds its events to one table of
 * pending counts shared by every process on the store (the file
 * "pending" in the store directory, mapped shared), and every query adds
 * that table to what it reads from its LMDB snapshot.  So another
 * process sees an event as soon as its record call returns, and
 * flush_delay only bounds how long an event waits to reach the tree.
 *
 * Exactness rests on epochs.  The pending file holds two tables; the
 * current epoch's table takes the new events, and the other holds the
 * previous epoch's, being applied or already applied.  A flush, inside
 * an LMDB write transaction (so one at a time), makes the next epoch
 * current, waits for the writers still adding to the old one, applies
 * the old epoch's events and stores "epoch E applied" in the same
 * transaction.  A query reads E from its snapshot and adds the tables of
 * the epochs after E only: an event is in the snapshot or in a table it
 * adds, never both, never neither.  A table is cleared only by a later
 * flush, under a sequence count that makes a query reading it retry.
 *
 * The journals are the truth.  Each process appends an event, tagged
 * with its epoch, to its own journal (a ring in a file,
 * journal.PID.START.SEQ) before it adds the event to the table.  A flush
 * takes every journal's entries up to the old epoch and stores each
 * journal's new tail with E.  It applies them from the epoch's table,
 * merged by key already, when the table sums to what those entries add;
 * else (a writer died between its entry and its adds) it re-expands the
 * entries themselves.  So a process
 * killed mid-call loses nothing whose call returned and adds at most the
 * call it was in (the table may show part of that one call until its
 * epoch is applied); a flusher killed before its commit leaves an epoch
 * that the next flush applies first; journals of dead processes are
 * applied by the flushes like any other and removed once applied.
 *
 * Sessions are buffered in the same epochs, in a smaller pair of tables
 * of their own (a session key holds a service name): an open or a close
 * adds +1 or -1 to its process's owner key, which is what the flush
 * applies (session_apply), and to the gauge key at every granularity,
 * which is what queries add.  They need no journal: the sessions of a
 * process that dies are reaped anyway, and a flush applies its owner
 * deltas first (a table of an epoch not applied is never cleared), so
 * that reaping takes the right count.  What the tables hold for a
 * process killed between its owner add and its gauge adds is off by that
 * call for queries until its epoch is applied, as for a record.
 *
 * A flush starts when the current epoch's first event is flush_delay
 * old (checked by every call; ina_flush() and closing flush at once), at
 * a window boundary (an epoch's table holds one set of windows), when
 * the table or a journal fills, and before a range query.  Only one
 * process at a time starts a timed flush; the others keep recording.
 * A record that finds its epoch full waits for the flush before it to
 * end; meanwhile it reads the next pages of data.mdb past the tree into
 * the page cache (runway_step), so that the flushes, which take those
 * pages next, do not stop on each to have the kernel zero it.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "inaudit.h"
#include "internal.h"

#define JOURNAL_MAGIC 0x494e414a /* "INAJ" */
#define JOURNAL_VERSION 2
/* Entries a journal holds, a power of two with the file at most a 128th
 * of the map; a journal that fills is flushed at once, so it holds what
 * a worker records while an epoch is applied (at full speed, epochs of
 * 100k events or more). */
#define JOURNAL_ENTRIES_MIN 4096u
#define JOURNAL_ENTRIES_MAX 131072u

#define PEND_NAME "pending"
/* Its record in the meta database. */
#define PEND_META "pending_epoch"
#define PEND_MAGIC 0x494e4150 /* "INAP" */
#define PEND_VERSION 3
/* Slots of each table: a power of two, the file at most a 16th of the
 * map.  At most, a table is 16 MiB: the two tables fill this machine's
 * last-level cache (32 MiB), and a table twice as large made every
 * record slower.  An epoch ends when its table is three quarters full
 * (epoch_full), which bounds what a flush applies: LMDB's cost an event
 * halves as its transactions grow fourfold. */
#define PEND_SLOTS_MIN 4096u
#define PEND_SLOTS_MAX 524288u
/* A table at least this fraction full is read and cleared whole, in
 * order, rather than slot by slot through its claim list. */
#define PEND_SCAN_FRACTION 8u
/* Apply arrays at least this large are lent back after a flush. */
#define PSET_LEND_MIN (1u << 20)
/* Each epoch's table of buffered sessions has a sixteenth as many. */
#define PEND_SESSION_SHIFT 4
/* Bytes of the file per slot of each table: the slot and its list entry,
 * for two tables, and the session slots' share of the same, rounded up
 * (the file may be a little longer than its tables, never shorter). */
#define PEND_PER_SLOT                                                    \
    (2 * (sizeof(struct pslot) + sizeof(uint32_t))                       \
     + ((2 * (sizeof(struct sslot) + sizeof(uint32_t))                   \
         + (1u << PEND_SESSION_SHIFT) - 1)                               \
        >> PEND_SESSION_SHIFT))
/* Where the first table starts in the file. */
#define PEND_OFF 4096u
/* How long a flush waits for a live writer between its journal entry and
 * its table adds (a stopped process) before it gives up. */
#define FLUSH_WAIT_MS 2000
/* Spins on a slot another process is claiming before probing past it. */
#define CLAIM_SPINS 256
/* How far past the tree's last page data.mdb is read into the page
 * cache ahead of the flushes, and in what pieces (runway_step). */
#define RUNWAY_BYTES (64u << 20)
#define RUNWAY_CHUNK (1u << 20)
/* A flusher flag older than this is taken over. */
#define FLUSHER_STALE_MS 5000
/* flush_collect: the epoch's table does not hold all of its entries. */
#define FLUSH_JOURNALS (-1)

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
    uint64_t active;           /* epoch the owner is adding to, or 0 */
    uint64_t instance;         /* the pending file its epochs are of */
};

struct journal_ent {
    uint32_t time;             /* the clock when recorded */
    uint8_t ev;
    uint8_t family;
    uint8_t pad[2];
    uint64_t epoch;            /* the table its counts were added to */
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

/* A private table of prefixes, all of one time (the store clock of its
 * first event: its window of every width), for merging what a flush
 * applies: open addressing over a power of two, with the slots in use
 * listed, so that clearing and sorting touch only those. */
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
    struct pitem *item;        /* what an apply sorts, reused */
    struct pitem *tmp;         /* pitem_sort's scratch */
    size_t *cnt;               /* ... and its counters */
    size_t icap;               /* items item and tmp hold */
    size_t touched;            /* items written since they were lent */
};

/* The shared pending file: a header, two tables of slots, then each
 * table's list of the slots claimed (u32, in claim order), so that
 * clearing touches only those; then the same for the two tables of
 * buffered sessions, of the same two epochs. */
struct pend_tab {
    uint64_t gen;              /* 2 * its epoch; odd while cleared */
    int64_t time;              /* the store clock of the epoch */
    uint64_t first_ms;         /* monotonic ms of its first event, or 0 */
    uint64_t pad[5];
    uint64_t used;             /* slots claimed (own cache line) */
    uint64_t sused;            /* session slots claimed */
    uint64_t pad2[6];
};

struct pend_hdr {
    uint32_t magic;
    uint32_t version;
    uint64_t instance;         /* random: the file, as the store knows it */
    uint64_t slots;            /* per table */
    uint64_t pad0[5];
    uint64_t epoch;            /* the current epoch, table epoch & 1 */
    uint64_t applied;          /* an epoch known applied (a hint) */
    uint64_t flusher;          /* pid of a process starting a flush, or 0 */
    uint64_t flusher_ms;       /* when it started */
    uint64_t runway;           /* data.mdb read into the cache up to */
    uint64_t pad1[3];
    struct pend_tab tab[2];
};

/* A slot: claimed (0 -> 1) by one writer, which writes the key and then
 * makes it ready (2).  A writer that finds a slot still being claimed
 * after a while probes past it, so one key may have several slots:
 * readers add them all.  Half a cache line, so that a table of a given
 * size holds twice the prefixes: the counts are 32 bits, and an add that
 * would pass 2^32 - 1 goes to another slot of the key (pend_add); a
 * record of more than that at once is not buffered (batch_record). */
#define PSLOT_MAX UINT32_MAX
struct pslot {
    uint8_t state;
    uint8_t klen;
    uint8_t key[PKEY_MAX];
    uint32_t d[INA_NEVENTS];
};

/* A session slot: the same claim as a counter slot, on a key that is a
 * kind ('o': a process's owner key, what a flush applies; 'g': a gauge
 * key at one granularity, what queries add) followed by the key, and
 * one signed delta.  Two cache lines. */
#define SSKEY_MAX (1 + OKEY_MAX)
struct sslot {
    uint8_t state;
    uint8_t klen;
    uint8_t key[SSKEY_MAX];
    uint8_t pad[6];
    int64_t d;
    uint64_t pad2[6];
};

#define SESSION_OWNER 'o'
#define SESSION_GAUGE 'g'

/* Both kinds of slot begin alike: slot_find and slot_sum work on both. */
#define SLOT_KLEN 1
#define SLOT_KEY 2

_Static_assert(offsetof(struct pslot, klen) == SLOT_KLEN
                   && offsetof(struct pslot, key) == SLOT_KEY
                   && offsetof(struct sslot, klen) == SLOT_KLEN
                   && offsetof(struct sslot, key) == SLOT_KEY,
               "slot layouts");
_Static_assert(sizeof(struct sslot) == 128, "session slot size");
_Static_assert(sizeof(struct journal_hdr) == 64, "journal header size");
_Static_assert(sizeof(struct journal_ent) == 40, "journal entry size");
_Static_assert(sizeof(struct pend_hdr) <= PEND_OFF, "pending header size");
_Static_assert(sizeof(struct pslot) == 32, "pending slot size");
_Static_assert(2 * (sizeof(struct sslot) + sizeof(uint32_t))
                   <= (PEND_PER_SLOT
                       - 2 * (sizeof(struct pslot) + sizeof(uint32_t)))
                          << PEND_SESSION_SHIFT,
               "the pending file holds its session tables");

/* The journal of another process, mapped for flushes. */
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
    size_t maplen;
    char path[4096];
    uint64_t applied;          /* own entries known applied */
    /* The shared tables, NULL if not mapped: set under env->block, and
     * read without it by queries (pend_read), so a map stays until the
     * batch is forgotten (batch_forget), the read-only map that a writer
     * replaced included (retired). */
    struct pend_hdr *ph;
    size_t pmaplen;
    int pwritable;
    struct pend_hdr *retired;
    size_t retired_len;
    uint64_t sess_epoch;       /* the last epoch it buffered sessions in */
    struct pset merge;         /* a flush's tables */
    uint64_t *seen;            /* a bit per slot, for pend_gather */
    uint64_t seen_slots;
    uint64_t journals_ms;      /* when a flush last logged a fallback */
    struct peer *peers;        /* the other processes' journals */
    size_t npeers, peercap;
};

static pthread_mutex_t batch_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t batch_seq;

/* mono_ms - a monotonic clock in milliseconds, for flush deadlines
 *
 * The coarse clock, to the kernel's tick (a few ms): every record reads
 * it, and it costs a third of CLOCK_MONOTONIC's 30 ns here. */

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
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

/* pkey_home - the slot where a key's probe starts, in a table of slots
 * (a power of two) */

static size_t
pkey_home(const uint8_t *key, size_t len, uint64_t slots)
{
    return (size_t) (pkey_hash(key, len) & (slots - 1));
}

/* skey_home - the home slot of a session table key (up to SSKEY_MAX
 * bytes): its words multiplied and mixed */

static size_t
skey_home(const uint8_t *key, size_t len, uint64_t slots)
{
    uint64_t h = len * 0x9e3779b97f4a7c15ull, w;
    size_t i;

    for (i = 0; i < len; i += 8) {
        w = 0;
        memcpy(&w, key + i, len - i < 8 ? len - i : 8);
        h = (h ^ w) * 0xc2b2ae3d27d4eb4full;
        h ^= h >> 29;
    }
    h *= 0xd6e8feb86659fd93ull;
    return (size_t) ((h ^ (h >> 32)) & (slots - 1));
}

/* ptab_find - the slot of a key, or the empty slot where it goes */

static struct pend *
ptab_find(const struct ptab *t, const uint8_t *key, size_t len)
{
    size_t i = pkey_home(key, len, t->cap);

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

/* event_keys - the prefix keys an event counts under: one per
 * granularity of its family, each 2 + address length bytes; returns how
 * many */

static size_t
event_keys(const struct ina_store *st, int family, const uint8_t *host,
           uint8_t keys[INA_MAX_PREFIXES][PKEY_MAX])
{
    const uint8_t *list;
    unsigned alen = cidr_addrlen(family);
    size_t np = store_prefixes(st->conf, family, &list), pi;

    for (pi = 0; pi < np; pi++) {
        keys[pi][0] = (uint8_t) family;
        keys[pi][1] = list[pi];
        memcpy(keys[pi] + 2, host, alen);
        cidr_mask(keys[pi] + 2, alen, list[pi]);
    }
    return np;
}

/* ptab_add_event - add one event's deltas at every prefix it counts under */

static int
ptab_add_event(struct ina_store *st, struct ptab *t, int ev, int family,
               const uint8_t *host, uint64_t n)
{
    uint8_t keys[INA_MAX_PREFIXES][PKEY_MAX];
    size_t np = event_keys(st, family, host, keys), pi;
    struct pend *p;
    int rc;

    for (pi = 0; pi < np; pi++) {
        if ((rc = ptab_slot(t, keys[pi], 2 + cidr_addrlen(family), &p))
            != 0)
            return rc;
        p->d[ev] = sat_add(p->d[ev], n);
    }
    return 0;
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

/* pitem_less - the order of counter keys, by the items' words */

static inline int
pitem_less(const struct pitem *x, const struct pitem *y)
{
    if (x->k0 != y->k0)
        return x->k0 < y->k0;
    if (x->k1 != y->k1)
        return x->k1 < y->k1;
    return x->k2 < y->k2;
}

/* pitem_swap - exchange two items */

static void
pitem_swap(struct pitem *x, struct pitem *y)
{
    struct pitem t = *x;

    *x = *y;
    *y = t;
}

/* pitem_insertion - insertion sort, for short runs */

static void
pitem_insertion(struct pitem *a, size_t n)
{
    size_t i, j;
    struct pitem t;

    for (i = 1; i < n; i++) {
        t = a[i];
        for (j = i; j > 0 && pitem_less(&t, &a[j - 1]); j--)
            a[j] = a[j - 1];
        a[j] = t;
    }
}

/* pitem_sift, pitem_heapsort - the fallback that bounds the worst case */

static void
pitem_sift(struct pitem *a, size_t root, size_t n)
{
    size_t child;

    while ((child = 2 * root + 1) < n) {
        if (child + 1 < n && pitem_less(&a[child], &a[child + 1]))
            child++;
        if (!pitem_less(&a[root], &a[child]))
            return;
        pitem_swap(&a[root], &a[child]);
        root = child;
    }
}

static void
pitem_heapsort(struct pitem *a, size_t n)
{
    size_t i;

    for (i = n / 2; i-- > 0;)
        pitem_sift(a, i, n);
    for (i = n; i-- > 1;) {
        pitem_swap(&a[0], &a[i]);
        pitem_sift(a, 0, i);
    }
}

/* pitem_intro - quicksort on the median of three, recursing into the
 * smaller part; heapsort once depth runs out */

static void
pitem_intro(struct pitem *a, size_t n, unsigned depth)
{
    struct pitem p;
    size_t i, j, m;

    while (n > 16) {
        if (depth-- == 0) {
            pitem_heapsort(a, n);
            return;
        }
        /* a[0] <= a[m] <= a[n - 1]: the scans below stop at the ends. */
        m = n / 2;
        if (pitem_less(&a[m], &a[0]))
            pitem_swap(&a[m], &a[0]);
        if (pitem_less(&a[n - 1], &a[m])) {
            pitem_swap(&a[n - 1], &a[m]);
            if (pitem_less(&a[m], &a[0]))
                pitem_swap(&a[m], &a[0]);
        }
        p = a[m];
        i = 0;
        j = n - 1;
        for (;;) {
            while (pitem_less(&a[i], &p))
                i++;
            while (pitem_less(&p, &a[j]))
                j--;
            if (i >= j)
                break;
            pitem_swap(&a[i], &a[j]);
            i++;
            j--;
        }
        /* a[0..j] <= p <= a[j + 1..n - 1], both parts non-empty. */
        if (j + 1 < n - j - 1) {
            pitem_intro(a, j + 1, depth);
            a += j + 1;
            n -= j + 1;
        } else {
            pitem_intro(a + j + 1, n - j - 1, depth);
            n = j + 1;
        }
    }
    pitem_insertion(a, n);
}

/* Items below which pitem_sort does not partition: a partition's
 * counters cost about what an introsort of that many does. */
#define PITEM_RADIX_MIN 8192u

/* pitem_depth - introsort's depth budget for n items: twice log2(n) */

static unsigned
pitem_depth(size_t n)
{
    unsigned depth = 0;

    for (; n > 1; n >>= 1)
        depth += 2;
    return depth;
}

/* pitem_part - move n items from one array to another, in the order of
 * 16 bits of their first word (from bit shift up), each bucket's items
 * in the order they came (cnt: PITEM_BUCKETS + 1 counters) */

static void
pitem_part(const struct pitem *from, struct pitem *to, size_t n,
           unsigned shift, size_t *cnt)
{
    size_t i, b;

    memset(cnt, 0, (PITEM_BUCKETS + 1) * sizeof(*cnt));
    for (i = 0; i < n; i++)
        cnt[((from[i].k0 >> shift) & (PITEM_BUCKETS - 1)) + 1]++;
    for (b = 0; b < PITEM_BUCKETS; b++)
        cnt[b + 1] += cnt[b];
    for (i = 0; i < n; i++)
        to[cnt[(from[i].k0 >> shift) & (PITEM_BUCKETS - 1)]++] = from[i];
}

/* pitem_run - the end of the run of items from s on whose first words
 * agree above bit shift */

static size_t
pitem_run(const struct pitem *a, size_t s, size_t n, unsigned shift)
{
    uint64_t top = a[s].k0 >> shift;
    size_t e = s + 1;

    while (e < n && a[e].k0 >> shift == top)
        e++;
    return e;
}

/* pitem_sort - sort prefixes into the order of their counter keys
 *
 * A flush's 100k-400k items are first partitioned by the first word's
 * top 16 bits (family and mask length), then each large group by the
 * next 16 (the address's first two bytes), into tmp and back; then each
 * bucket, a few items unless the addresses crowd into one /16, gets an
 * introsort with the comparison inlined.  The introsort alone cost four
 * times as much on a flush of random addresses, and qsort's merge sort
 * through a comparison function ten times.  tmp (n items) and cnt
 * (PITEM_BUCKETS + 1) are scratch; with tmp NULL the introsort does it
 * all. */

void
pitem_sort(struct pitem *a, size_t n, struct pitem *tmp, size_t *cnt)
{
    size_t s, e, bs, be;

    if (tmp == NULL || cnt == NULL || n < PITEM_RADIX_MIN) {
        pitem_intro(a, n, pitem_depth(n));
        return;
    }
    pitem_part(a, tmp, n, 48, cnt);
    for (s = 0; s < n; s = e) {
        e = pitem_run(tmp, s, n, 48);
        if (e - s < PITEM_RADIX_MIN) {
            memcpy(a + s, tmp + s, (e - s) * sizeof(*a));
            pitem_intro(a + s, e - s, pitem_depth(e - s));
            continue;
        }
        pitem_part(tmp + s, a + s, e - s, 32, cnt);
        for (bs = s; bs < e; bs = be) {
            be = pitem_run(a, bs, e, 32);
            if (be - bs > 1)
                pitem_intro(a + bs, be - bs, pitem_depth(be - bs));
        }
    }
}

/* pitem_make - an item of a prefix key (2 to PKEY_MAX bytes) and its
 * deltas */

static void
pitem_make(struct pitem *it, const uint8_t *key, size_t klen,
           const uint64_t *d)
{
    uint8_t w[24];

    memset(w, 0, sizeof(w));
    memcpy(w, key, klen);
    it->k0 = be_get(w, 8);
    it->k1 = be_get(w + 8, 8);
    it->k2 = (uint32_t) be_get(w + 16, 2) << 16 | (uint32_t) klen;
    memcpy(it->d, d, sizeof(it->d));
}

/* pitem_key - an item's prefix key; returns its length */

static size_t
pitem_key(const struct pitem *it, uint8_t key[24])
{
    be_put(key, it->k0, 8);
    be_put(key + 8, it->k1, 8);
    be_put(key + 16, it->k2 >> 16, 2);
    return it->k2 & 0xffffu;
}

/* pset_reserve - room for n prefixes in a collection's apply arrays */

static int
pset_reserve(struct pset *set, size_t n)
{
    struct pitem *it;
    size_t cap = set->icap ? set->icap : 1024;

    if (set->cnt == NULL
        && (set->cnt = malloc((PITEM_BUCKETS + 1) * sizeof(*set->cnt)))
               == NULL)
        return ENOMEM;
    if (n > set->touched)
        set->touched = n;
    if (n <= set->icap)
        return 0;
    while (cap < n)
        cap *= 2;
    if ((it = realloc(set->item, cap * sizeof(*it))) == NULL)
        return ENOMEM;
    set->item = it;
    if ((it = realloc(set->tmp, cap * sizeof(*it))) == NULL)
        return ENOMEM;
    set->tmp = it;
    set->icap = cap;
    return 0;
}

/* items_apply - add n prefixes (set->item) in one transaction, all in
 * the windows of one time
 *
 * The prefixes are sorted once, as integer words (pitem_sort); then
 * each gets its now record (store_now_add: every width's window of that
 * time in one put), in key order, so the cursor only moves forward and
 * neighbouring keys share the descent and the copied pages.  Equal keys
 * (one prefix in two slots) are added one after the other. */

static int
items_apply(struct ina_store *st, MDB_txn *txn, struct pset *set, size_t n,
            int64_t time)
{
    uint8_t key[24];
    struct pitem *it = set->item;
    MDB_cursor *c, *nc;
    size_t i, m = 0, klen;
    int rc = 0, level;

    if (n == 0)
        return 0;
    /* Granularities dropped by degradation (a map near full) first. */
    if ((level = store_level(st, txn)) <= 0)
        m = n;
    for (i = 0; level > 0 && i < n; i++) {
        key[0] = (uint8_t) (it[i].k0 >> 56);
        key[1] = (uint8_t) (it[i].k0 >> 48);
        if (!batch_skipped(st, level, key))
            it[m++] = it[i];
    }
    pitem_sort(it, m, set->tmp, set->cnt);
    if ((rc = mdb_cursor_open(txn, st->env->now, &nc)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, st->env->counts, &c)) != 0) {
        mdb_cursor_close(nc);
        return rc;
    }
    /* One put a prefix, every width's window in it (store_now_add). */
    for (i = 0; i < m && rc == 0; i++) {
        klen = pitem_key(&it[i], key);
        rc = store_now_add(st, nc, c, key, klen, time, it[i].d);
    }
    mdb_cursor_close(c);
    mdb_cursor_close(nc);
    return rc;
}

/* ptab_apply - add a table of a collection in one transaction */

static int
ptab_apply(struct ina_store *st, MDB_txn *txn, struct pset *set,
           const struct ptab *t)
{
    const struct pend *p;
    size_t i;
    int rc;

    if (t->used == 0)
        return 0;
    if ((rc = pset_reserve(set, t->used)) != 0)
        return rc;
    for (i = 0; i < t->used; i++) {
        p = &t->tab[t->slot[i]];
        pitem_make(&set->item[i], p->key, p->klen, p->d);
    }
    return items_apply(st, txn, set, t->used, t->time);
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
        if ((rc = ptab_apply(st, txn, set, &set->t[0])) != 0)
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
pset_apply(struct ina_store *st, MDB_txn *txn, struct pset *set)
{
    size_t i;
    int rc = 0;

    for (i = 0; i < set->n && rc == 0; i++)
        rc = ptab_apply(st, txn, set, &set->t[i]);
    return rc;
}

/* pset_lend - lend the pages of a collection's apply arrays back to the
 * kernel (MADV_FREE), after a flush
 *
 * A flush of a full epoch sorts some 400k prefixes: the arrays reach
 * 2 x 24 MiB, and every process that ever made such a flush would keep
 * them, a flood costing each worker 48 MiB.  Lent, they stay where they
 * are until the kernel runs short of memory, and the next flush writes
 * them before it reads them: a flush after a reclaim finds new zeroed
 * pages, any other the same ones, at no cost.  Only whole pages inside
 * each array are lent, so malloc's own words around it are not. */

static void
pset_lend_range(void *p, size_t len)
{
    uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t) p + page - 1) & ~(page - 1);
    uintptr_t e = ((uintptr_t) p + len) & ~(page - 1);

#ifdef MADV_FREE
    if (p != NULL && e > a)
        (void) madvise((void *) a, (size_t) (e - a), MADV_FREE);
#else
    (void) a;
    (void) e;
#endif
}

static void
pset_lend(struct pset *set)
{
    size_t len = set->touched * sizeof(*set->item);

    /* What an earlier lend gave and no flush has written since is the
     * kernel's already. */
    if (len < PSET_LEND_MIN)
        return;
    pset_lend_range(set->item, len);
    pset_lend_range(set->tmp, len);
    set->touched = 0;
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
    free(set->item);
    free(set->tmp);
    free(set->cnt);
    set->item = NULL;
    set->tmp = NULL;
    set->cnt = NULL;
    set->icap = 0;
    set->touched = 0;
}

/* journal_applied - the tail a snapshot stores for a journal */

static uint64_t
journal_applied(struct ina_store *st, MDB_txn *txn,
                const struct journal_hdr *hdr)
{
    uint8_t mkey[17];

    return batch_meta_get(st, txn, mkey,
                          batch_meta_key(mkey, hdr->pid, hdr->start,
                                         hdr->seq));
}

/* journal_collect - a journal's entries past its stored tail, up to an
 * epoch
 *
 * With a collection (set), the entries are re-expanded into it with this
 * handle's configuration.  Without one (a flush applying the epoch upto
 * from its table), they are only summed into sums: what the record path
 * added to the table (n at every granularity of the family); then
 * FLUSH_JOURNALS if an entry of an earlier epoch is among them (no table
 * holds it) or a sum would saturate.  Entries of later epochs (still in
 * the current table) are left.  *tailp gets the tail collected to
 * (entries up to the journal's tail are whole: the owner advances it
 * with release order after writing each), *count the entries taken.
 * The caller stores the tail (journal_mark) in the transaction that
 * applies them. */

static int
journal_collect(struct ina_store *st, MDB_txn *txn,
                const struct journal_hdr *hdr,
                const struct journal_ent *ent, uint64_t upto,
                struct pset *set, uint64_t *sums, uint64_t *tailp,
                uint64_t *count)
{
    uint64_t applied = journal_applied(st, txn, hdr), tail, seq, from, add;
    const struct journal_ent *e;
    const uint8_t *list;
    struct ptab *t;
    size_t np;
    int rc = 0;

    tail = __atomic_load_n(&hdr->tail, __ATOMIC_ACQUIRE);
    *tailp = applied;
    *count = 0;
    if (tail <= applied)
        return 0;
    /* Entries older than one ring were overwritten; they were applied
     * before the owner reused their slots. */
    from = tail - applied > hdr->capacity ? tail - hdr->capacity : applied;
    for (seq = from + 1; seq <= tail && rc == 0; seq++) {
        e = &ent[(seq - 1) % hdr->capacity];
        if (e->epoch > upto)
            break;
        if (set == NULL && e->epoch < upto)
            return FLUSH_JOURNALS;
        *tailp = seq;
        if (e->ev >= INA_NEVENTS || (e->family != 4 && e->family != 6))
            continue;
        np = store_prefixes(st->conf, e->family, &list);
        if (set == NULL) {
            if (__builtin_mul_overflow(e->n, (uint64_t) np, &add)
                || __builtin_add_overflow(sums[e->ev], add, &sums[e->ev]))
                return FLUSH_JOURNALS;
        } else if (np > 0
                   && (rc = pset_table(st, txn, set, (int64_t) e->time,
                                       &t)) == 0) {
            rc = ptab_add_event(st, t, e->ev, e->family, e->addr, e->n);
        }
    }
    if (rc == 0)
        *count = *tailp - from;
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
 * transaction, up to the epoch stored as applied: the later ones are in
 * a table that queries still add, and the flush of their epoch applies
 * them.  *left says whether entries remain. */

static int
batch_replay(struct ina_store *st, MDB_txn *txn,
             const struct journal_hdr *hdr, const struct journal_ent *ent,
             uint64_t upto, uint64_t *replayed, int *left)
{
    struct pset set;
    uint64_t tail, count;
    int rc;

    memset(&set, 0, sizeof(set));
    rc = journal_collect(st, txn, hdr, ent, upto, &set, NULL, &tail,
                         &count);
    if (rc == 0 && count > 0 && (rc = pset_apply(st, txn, &set)) == 0)
        rc = journal_mark(st, txn, hdr, tail);
    pset_free(&set);
    if (rc == 0 && replayed != NULL)
        *replayed += count;
    *left = tail < __atomic_load_n(&hdr->tail, __ATOMIC_ACQUIRE);
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

/* map_huge - ask for a shared file map on transparent huge pages
 *
 * A record writes a journal entry and adds into random slots of a 32 MiB
 * pending table.  On 4 KiB pages a forked worker takes a minor fault for
 * each page of both files it first touches (fork copies no page tables
 * of a shared map), and the slots spread over 8,192 pages' TLB entries.
 * Where the kernel keeps file pages in 2 MiB folios (this machine's
 * Linux 6.18 on ext4, THP "madvise" or "always") one fault maps 2 MiB;
 * elsewhere the advice is ignored.  Both files are allocated whole and
 * touched whole in use: the folios take at most 2 MiB more a file. */

static void
map_huge(void *map, size_t len)
{
#ifdef MADV_HUGEPAGE
    (void) madvise(map, len, MADV_HUGEPAGE);
#else
    (void) map;
    (void) len;
#endif
}

/* journal_entries - the capacity of this process's journal on a store */

static size_t
journal_entries(const struct ina_store *st)
{
    size_t n = JOURNAL_ENTRIES_MIN;

    while (n < JOURNAL_ENTRIES_MAX
           && sizeof(struct journal_hdr)
                      + 2 * n * sizeof(struct journal_ent)
                  <= st->env->map_size / 128)
        n *= 2;
    return n;
}

/* batch_open_journal - create this process's journal file */

static int
batch_open_journal(struct ina_store *st)
{
    struct batch *b = st->env->batch;
    size_t cap = journal_entries(st),
           len = sizeof(struct journal_hdr)
                 + cap * sizeof(struct journal_ent);
    uint32_t seq;
    void *map;
    int fd;

    pthread_mutex_lock(&batch_lock);
    seq = ++batch_seq;
    pthread_mutex_unlock(&batch_lock);
    snprintf(b->path, sizeof(b->path), "%s/journal.%ld.%llu.%u",
             st->conf->store, (long) st->pid,
             (unsigned long long) st->pstart, (unsigned) seq);
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
    map_huge(map, len);
    b->hdr = map;
    b->ent = (struct journal_ent *) (b->hdr + 1);
    b->maplen = len;
    b->hdr->pid = (uint32_t) st->pid;
    b->hdr->seq = seq;
    b->hdr->start = st->pstart;
    b->hdr->capacity = cap;
    b->hdr->tail = 0;
    b->hdr->applied = 0;
    b->hdr->active = 0;
    b->hdr->instance = b->ph->instance;
    b->hdr->version = JOURNAL_VERSION;
    __atomic_store_n(&b->hdr->magic, JOURNAL_MAGIC, __ATOMIC_RELEASE);
    b->applied = 0;
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

/* file_map - map a journal (or the pending file) whole, shared
 *
 * Read-write when want_write is set and the file allows it (*writable
 * says which), read-only otherwise.  Returns 0 with *map and *len set,
 * 1 for a file shorter than a journal header (a journal whose owner died
 * between making and sizing it: it never held an event), -1 when it
 * cannot be opened or mapped.  Checking the header is the caller's
 * (journal_valid, pend_valid). */

static int
file_map(const char *path, int want_write, void **map, size_t *len,
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
    if (file_map(path, 1, &map, &len, &writable) != 0)
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

/* batch_get - the process's batch state of a store, made on first use */

static struct batch *
batch_get(struct ina_store *st)
{
    struct batch *b = st->env->batch;

    /* Published whole: pend_read reads it without the lock. */
    if (b == NULL && (b = calloc(1, sizeof(struct batch))) != NULL)
        __atomic_store_n(&st->env->batch, b, __ATOMIC_RELEASE);
    return b;
}

/* pend_slots - slots per table for a new pending file: a power of two,
 * the file at most a 16th of the map */

static uint64_t
pend_slots(const struct ina_store *st)
{
    uint64_t n = PEND_SLOTS_MIN;

    while (n < PEND_SLOTS_MAX
           && PEND_OFF + 2 * n * PEND_PER_SLOT <= st->env->map_size / 16)
        n *= 2;
    return n;
}

/* pend_valid - is a mapped pending file whole and of this version? */

static int
pend_valid(const struct pend_hdr *ph, size_t len)
{
    return __atomic_load_n(&ph->magic, __ATOMIC_ACQUIRE) == PEND_MAGIC
           && ph->version == PEND_VERSION && ph->slots >= PEND_SLOTS_MIN
           && (ph->slots & (ph->slots - 1)) == 0
           && PEND_OFF + ph->slots * PEND_PER_SLOT <= len;
}

/* pend_stale - is an open pending file whole but of another version? */

static int
pend_stale(int fd)
{
    uint32_t h[2];

    return pread(fd, h, sizeof(h), 0) == (ssize_t) sizeof(h)
           && h[0] == PEND_MAGIC && h[1] != PEND_VERSION;
}

/* pend_init - lay out a new pending file (its creator, under flock) */

static void
pend_init(struct ina_store *st, struct pend_hdr *ph, uint64_t slots)
{
    uint64_t inst = 0;

    if (getrandom(&inst, sizeof(inst), 0) != (ssize_t) sizeof(inst))
        inst = (uint64_t) time(NULL) << 32 ^ (uint64_t) getpid()
               ^ mono_ms() << 16;
    memset(ph, 0, sizeof(*ph));
    ph->version = PEND_VERSION;
    ph->instance = inst | 1;
    ph->slots = slots;
    /* Epoch 1 is current (table 1); table 0 is ready for epoch 2. */
    ph->epoch = 1;
    ph->tab[1].gen = 2;
    ph->tab[1].time = st->clock(st->clock_arg);
    ph->tab[0].gen = 4;
}

/* pend_announce_txn - store a new pending file's instance, none of its
 * epochs applied: from this snapshot on, queries must map it */

static int pend_put_applied(struct ina_store *st, MDB_txn *txn,
                            const struct pend_hdr *ph, uint64_t epoch);

static int
pend_announce_txn(struct ina_store *st, MDB_txn *txn, void *arg)
{
    return pend_put_applied(st, txn, arg, 0);
}

/* pend_map - map the store's pending file, making it if create is set
 *
 * Returns 0, ENOENT when there is none (or it is being made), or an
 * errno value.  Read-write when the file allows it (b->pwritable). */

static int
pend_map(struct ina_store *st, struct batch *b, int create)
{
    char path[4096];
    struct stat sb;
    size_t len;
    void *map;
    int fd, writable = 1, rc = 0;

    if (b->ph != NULL)
        return 0;
    snprintf(path, sizeof(path), "%s/" PEND_NAME, st->conf->store);
    fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0),
              0660);
    if (fd < 0 && !create) {
        writable = 0;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return errno;
    if (create) {
        /* One maker at a time; a maker that died is done over. */
        if (flock(fd, LOCK_EX) != 0 || fstat(fd, &sb) != 0) {
            rc = errno;
            goto out;
        }
        /* A file of another version (the store's processes all stopped
         * for the upgrade) is made again: its events are in the
         * journals, which name the file they were added to. */
        if (sb.st_size != 0 && pend_stale(fd)) {
            if (ftruncate(fd, 0) != 0) {
                rc = errno;
                goto out;
            }
            sb.st_size = 0;
        }
        if (sb.st_size == 0) {
            (void) fchmod(fd, 0660);
            (void) env_chgrp_path(st->env, path);
            len = PEND_OFF + pend_slots(st) * PEND_PER_SLOT;
            /* A new file has no map yet: the fallback's zeros are safe,
             * and a full disk fails here, not as SIGBUS later. */
            if ((rc = posix_fallocate(fd, 0, (off_t) len)) != 0)
                goto out;
            sb.st_size = (off_t) len;
        }
    } else if (fstat(fd, &sb) != 0) {
        rc = errno;
        goto out;
    }
    len = (size_t) sb.st_size;
    if (len < PEND_OFF + PEND_SLOTS_MIN * PEND_PER_SLOT) {
        rc = ENOENT;
        goto out;
    }
    map = mmap(NULL, len, writable ? PROT_READ | PROT_WRITE : PROT_READ,
               MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        rc = errno;
        goto out;
    }
    map_huge(map, len);
    /* A new file is announced in the store before any process can add
     * to it (it is not valid until then): a query whose snapshot has no
     * announcement has nothing pending to miss. */
    if (create && !pend_valid(map, len)) {
        pend_init(st, map, (len - PEND_OFF) / PEND_PER_SLOT);
        if ((rc = store_write(st, pend_announce_txn, map)) != 0) {
            munmap(map, len);
            goto out;
        }
        __atomic_store_n(&((struct pend_hdr *) map)->magic, PEND_MAGIC,
                         __ATOMIC_RELEASE);
    }
    if (!pend_valid(map, len)) {
        munmap(map, len);
        rc = ENOENT;
        goto out;
    }
    b->pmaplen = len;
    __atomic_store_n(&b->pwritable, writable, __ATOMIC_RELAXED);
    __atomic_store_n(&b->ph, (struct pend_hdr *) map, __ATOMIC_RELEASE);
out:
    /* Unlocked explicitly: the map keeps the open file, and its lock. */
    if (create)
        (void) flock(fd, LOCK_UN);
    close(fd);
    return rc;
}

/* pend_meta - read the meta record of the pending file (its instance
 * and the epoch applied, two u64); returns mdb_get's code */

static int
pend_meta(struct ina_store *st, MDB_txn *txn, MDB_val *v)
{
    MDB_val k;

    k.mv_data = (void *) PEND_META;
    k.mv_size = sizeof(PEND_META) - 1;
    return mdb_get(txn, st->env->meta, &k, v);
}

/* pend_reader - map the pending file for queries, if there is one
 *
 * With a snapshot (txn), only when the snapshot announces one: a store
 * without a pending file costs no system call per query. */

static struct pend_hdr *
pend_reader(struct ina_store *st, struct batch *b, MDB_txn *txn)
{
    MDB_val v;

    if (b->ph != NULL)
        return b->ph;
    if (txn != NULL && pend_meta(st, txn, &v) != 0)
        return NULL;
    (void) pend_map(st, b, 0);
    return b->ph;
}

/* pend_table - the slots of table i of a map */

static struct pslot *
pend_table(const struct pend_hdr *ph, unsigned i)
{
    return (struct pslot *) ((char *) ph + PEND_OFF) + (size_t) i * ph->slots;
}

/* pend_list - the list of claimed slots of table i, after both tables */

static uint32_t *
pend_list(const struct pend_hdr *ph, unsigned i)
{
    return (uint32_t *) pend_table(ph, 2) + (size_t) i * ph->slots;
}

/* pend_sslots - the slots of each session table */

static uint64_t
pend_sslots(const struct pend_hdr *ph)
{
    return ph->slots >> PEND_SESSION_SHIFT;
}

/* pend_stable - the slots of session table i */

static struct sslot *
pend_stable(const struct pend_hdr *ph, unsigned i)
{
    return (struct sslot *) ((char *) ph + PEND_OFF
                             + 2 * ph->slots
                                   * (sizeof(struct pslot)
                                      + sizeof(uint32_t)))
           + (size_t) i * pend_sslots(ph);
}

/* pend_slist - the list of claimed slots of session table i */

static uint32_t *
pend_slist(const struct pend_hdr *ph, unsigned i)
{
    return (uint32_t *) (pend_stable(ph, 0) + 2 * pend_sslots(ph))
           + (size_t) i * pend_sslots(ph);
}

/* pend_applied - the epoch stored as applied in a snapshot (0: none of
 * this file's) */

static uint64_t
pend_applied(struct ina_store *st, MDB_txn *txn, const struct pend_hdr *ph)
{
    MDB_val v;
    uint64_t x[2];

    if (pend_meta(st, txn, &v) != 0 || v.mv_size != sizeof(x))
        return 0;
    memcpy(x, v.mv_data, sizeof(x));
    return x[0] == ph->instance ? x[1] : 0;
}

/* pend_put_applied - store the epoch a transaction applied */

static int
pend_put_applied(struct ina_store *st, MDB_txn *txn,
                 const struct pend_hdr *ph, uint64_t epoch)
{
    MDB_val k, v;
    uint64_t x[2];

    x[0] = ph->instance;
    x[1] = epoch;
    k.mv_data = (void *) PEND_META;
    k.mv_size = sizeof(PEND_META) - 1;
    v.mv_data = x;
    v.mv_size = sizeof(x);
    return mdb_put(txn, st->env->meta, &k, &v, 0);
}

/* pslot_add - add n to a slot's count if it stays within PSLOT_MAX */

static int
pslot_add(uint32_t *d, uint64_t n)
{
    uint32_t cur = __atomic_load_n(d, __ATOMIC_RELAXED);

    while (n <= PSLOT_MAX - cur)
        if (__atomic_compare_exchange_n(d, &cur, (uint32_t) (cur + n), 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            return 1;
    return 0;
}

/* slot_find - the slot of a key in a shared table of slots of size
 * bytes, claimed if the key has none yet
 *
 * used and list are the table's claim count and list.  Returns NULL when
 * every slot was probed. */

static uint8_t *
slot_find(uint8_t *tab, size_t size, uint64_t *used, uint32_t *list,
          uint64_t slots, size_t i, const uint8_t *key, size_t klen)
{
    size_t probes;
    uint8_t *s, cur;
    uint32_t spins;
    uint64_t idx;

    for (probes = 0; probes < slots; probes++, i = (i + 1) & (slots - 1)) {
        s = tab + i * size;
        cur = __atomic_load_n(s, __ATOMIC_ACQUIRE);
        if (cur == 0) {
            /* Listed before it is claimed: a writer killed in between
             * leaves an extra entry, never a slot missing from the
             * list.  Past the list's end, a full clear (pend_reset). */
            idx = __atomic_fetch_add(used, 1, __ATOMIC_RELAXED);
            if (idx < slots)
                __atomic_store_n(&list[idx], (uint32_t) i,
                                 __ATOMIC_RELAXED);
            if (__atomic_compare_exchange_n(s, &cur, 1, 0,
                                            __ATOMIC_ACQUIRE,
                                            __ATOMIC_ACQUIRE)) {
                s[SLOT_KLEN] = (uint8_t) klen;
                memcpy(s + SLOT_KEY, key, klen);
                __atomic_store_n(s, 2, __ATOMIC_RELEASE);
                return s;
            }
        }
        /* Claiming takes a few stores: spin, then yield to a claimer
         * that may have lost its processor. */
        for (spins = 0; cur == 1 && spins < CLAIM_SPINS; spins++) {
            if (spins >= 64)
                sched_yield();
            cur = __atomic_load_n(s, __ATOMIC_ACQUIRE);
        }
        if (cur == 2 && s[SLOT_KLEN] == klen
            && memcmp(s + SLOT_KEY, key, klen) == 0)
            return s;
    }
    return NULL;
}

/* slot_sum - the sum over a key's slots (one key may have several) of
 * the number at offset off: with counts, a slot's u32 count, the sum
 * saturating; else the u64 of a session slot, modulo 2^64 (signed
 * deltas) */

static uint64_t
slot_sum(const uint8_t *tab, size_t size, uint64_t slots, size_t i,
         const uint8_t *key, size_t klen, size_t off, int counts)
{
    size_t probes;
    const uint8_t *s;
    uint64_t sum = 0;
    uint8_t state;

    for (probes = 0; probes < slots; probes++, i = (i + 1) & (slots - 1)) {
        s = tab + i * size;
        state = __atomic_load_n(s, __ATOMIC_ACQUIRE);
        if (state == 0)
            break;
        if (state == 2 && s[SLOT_KLEN] == klen
            && memcmp(s + SLOT_KEY, key, klen) == 0)
            sum = counts ? sat_add(sum, __atomic_load_n(
                                            (const uint32_t *) (s + off),
                                            __ATOMIC_RELAXED))
                         : sum + __atomic_load_n((const uint64_t *) (s + off),
                                                 __ATOMIC_RELAXED);
    }
    return sum;
}

/* pend_add - add one prefix's delta (at most PSLOT_MAX) to a shared
 * table
 *
 * A slot whose count would pass PSLOT_MAX is left as it is, and the
 * search goes on past it, to another slot of the key or a new one.
 * Returns 0, or ENOSPC when every slot was probed (the count then
 * reaches queries only when its epoch is applied). */

static int
pend_add(struct pend_tab *t, struct pslot *tab, uint32_t *list,
         uint64_t slots, size_t i, const uint8_t *key, size_t klen, int ev,
         uint64_t n)
{
    struct pslot *s;
    uint64_t tries;

    for (tries = 0; tries < slots; tries++) {
        s = (struct pslot *) (void *) slot_find((uint8_t *) tab,
                                                sizeof(*tab), &t->used,
                                                list, slots, i, key, klen);
        if (s == NULL)
            return ENOSPC;
        if (pslot_add(&s->d[ev], n))
            return 0;
        i = ((size_t) (s - tab) + 1) & (slots - 1);
    }
    return ENOSPC;
}

/* pend_get - a prefix's count of one event in a shared table: the sum of
 * its slots */

static uint64_t
pend_get(const struct pslot *tab, uint64_t slots, size_t i,
         const uint8_t *key, size_t klen, int ev)
{
    return slot_sum((const uint8_t *) tab, sizeof(*tab), slots, i, key,
                    klen, offsetof(struct pslot, d) + ev * sizeof(uint32_t),
                    1);
}

/* pend_add_event - add one event at every prefix it counts under */

static void
pend_add_event(struct ina_store *st, struct batch *b, unsigned ti, int ev,
               int family, const uint8_t *host, uint64_t n)
{
    uint8_t keys[INA_MAX_PREFIXES][PKEY_MAX];
    size_t np = event_keys(st, family, host, keys), pi;
    size_t klen = 2 + cidr_addrlen(family), at[INA_MAX_PREFIXES];
    struct pslot *tab = pend_table(b->ph, ti);
    uint32_t *list = pend_list(b->ph, ti);
    uint64_t slots = b->ph->slots;

    /* The slots are far apart in a large table: ask for all of them
     * (a slot is half a cache line; to write) before the first add, so that
     * their cache misses overlap rather than follow one another. */
    for (pi = 0; pi < np; pi++) {
        at[pi] = pkey_home(keys[pi], klen, slots);
        __builtin_prefetch(&tab[at[pi]], 1, 3);
    }
    for (pi = 0; pi < np; pi++)
        (void) pend_add(&b->ph->tab[ti], tab, list, slots, at[pi], keys[pi],
                        klen, ev, n);
}

/* slots_clear - empty the claimed slots of a table (all of it when
 * PEND_SCAN_FRACTION full: one pass in order costs less) */

static void
slots_clear(uint8_t *tab, size_t size, const uint32_t *list,
            uint64_t *usedp, uint64_t slots)
{
    uint64_t used = __atomic_load_n(usedp, __ATOMIC_RELAXED), j;

    if (used >= slots / PEND_SCAN_FRACTION)
        memset(tab, 0, slots * size);
    else
        for (j = 0; j < used; j++)
            memset(tab + (list[j] & (slots - 1)) * size, 0, size);
    __atomic_store_n(usedp, 0, __ATOMIC_RELAXED);
}

/* pend_reset - make table i ready for an epoch (under the writer lock)
 *
 * The table holds an applied epoch or nothing.  Queries that read it
 * meanwhile see the sequence change and retry. */

static void
pend_reset(struct batch *b, unsigned i, uint64_t epoch, int64_t time)
{
    struct pend_tab *t = &b->ph->tab[i];

    if (__atomic_load_n(&t->gen, __ATOMIC_ACQUIRE) != 2 * epoch) {
        __atomic_store_n(&t->gen, 2 * epoch - 1, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        slots_clear((uint8_t *) pend_table(b->ph, i), sizeof(struct pslot),
                    pend_list(b->ph, i), &t->used, b->ph->slots);
        slots_clear((uint8_t *) pend_stable(b->ph, i), sizeof(struct sslot),
                    pend_slist(b->ph, i), &t->sused, pend_sslots(b->ph));
    }
    __atomic_store_n(&t->first_ms, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&t->time, time, __ATOMIC_RELAXED);
    __atomic_store_n(&t->gen, 2 * epoch, __ATOMIC_RELEASE);
}

/* journal_upto - the epoch up to which a flush applies a journal: all of
 * it when its epochs are of another pending file (one made again: no
 * table holds them) */

static uint64_t
journal_upto(const struct journal_hdr *h, const struct pend_hdr *ph,
             uint64_t upto)
{
    return h->instance == ph->instance ? upto : UINT64_MAX;
}

/* journals_behind - does some journal hold entries not applied? */

static int
journals_behind(struct ina_store *st, MDB_txn *txn, struct batch *b)
{
    const struct journal_hdr *h;
    size_t i;

    if (b->hdr != NULL && b->hdr->tail > b->applied)
        return 1;
    peers_scan(st, b);
    for (i = 0; i < b->npeers; i++) {
        h = b->peers[i].hdr;
        if (__atomic_load_n(&h->tail, __ATOMIC_ACQUIRE)
            > journal_applied(st, txn, h))
            return 1;
    }
    return 0;
}

/* flush_wait - wait for the writers still adding to an epoch's table
 *
 * A writer marks the epoch it adds to in its journal's header (active)
 * before it checks that the epoch is still current; the flusher moved
 * the epoch on before calling.  A dead writer is not waited for. */

static int
flush_wait(struct batch *b, uint64_t upto)
{
    uint64_t t0 = 0, act;
    const struct journal_hdr *h;
    size_t i;

    for (i = 0; i < b->npeers; i++) {
        h = b->peers[i].hdr;
        for (;;) {
            act = __atomic_load_n(&h->active, __ATOMIC_SEQ_CST);
            if (act == 0 || act > upto
                || !session_alive((pid_t) h->pid, h->start))
                break;
            if (t0 == 0)
                t0 = mono_ms();
            else if (mono_ms() - t0 > FLUSH_WAIT_MS)
                return EAGAIN;
            sched_yield();
        }
    }
    return 0;
}

struct flush_arg {
    int drop;                  /* mark applied without counting (map full) */
    int64_t time;              /* the next epoch's clock, or -1: now */
    uint64_t seen;             /* the epoch a record found full, or 0 */
    uint64_t upto;             /* out: the epoch applied */
    uint64_t own_tail;         /* out: our journal's tail applied */
    uint64_t events;           /* out: entries applied */
    int done;                  /* out: a flush was made */
    int unfinished;            /* out: it finished an earlier one's epoch */
};

/* claimed - the j-th slot a table's claim list names, of the
 * min(used, slots) there are: past the list's end (used >= slots), every
 * slot in turn.  The list may name a slot twice, or one never claimed;
 * seen_first() takes each once. */

static size_t
claimed(const uint32_t *list, uint64_t used, uint64_t slots, uint64_t j)
{
    return used >= slots ? (size_t) j
                         : __atomic_load_n(&list[j], __ATOMIC_RELAXED)
                               & (slots - 1);
}

/* seen_reserve - a bitmap of the slots taken, for tables of up to slots
 * slots (cleared after use by seen_forget) */

static int
seen_reserve(struct batch *b, uint64_t slots)
{
    if (b->seen_slots >= slots)
        return 0;
    free(b->seen);
    if ((b->seen = calloc(slots / 64, sizeof(*b->seen))) == NULL) {
        b->seen_slots = 0;
        return ENOMEM;
    }
    b->seen_slots = slots;
    return 0;
}

/* seen_first - mark slot k taken; 0 if it was already */

static int
seen_first(struct batch *b, size_t k)
{
    uint64_t bit = 1ull << (k % 64);

    if (b->seen[k / 64] & bit)
        return 0;
    b->seen[k / 64] |= bit;
    return 1;
}

/* seen_forget - clear what a claim list's m entries marked */

static void
seen_forget(struct batch *b, const uint32_t *list, uint64_t m,
            uint64_t slots)
{
    uint64_t j;
    size_t k;

    for (j = 0; j < m; j++) {
        k = claimed(list, 0, slots, j);
        b->seen[k / 64] &= ~(1ull << (k % 64));
    }
}

/* pend_gather - copy an epoch's table into a collection's items
 *
 * After flush_wait no writer adds to it.  Each claimed slot is taken
 * once: the claim list may name a slot twice, or one never claimed.  A
 * table an eighth full or more is read whole, in order, rather than
 * through the list (and past the list's end it must be): a slot not
 * claimed is empty, and the list's order costs a cache miss a slot.
 * The counts must sum to sums, what the journals say the epoch added;
 * else FLUSH_JOURNALS. */

static int
pend_gather(struct batch *b, unsigned ti, struct pset *set,
            const uint64_t *sums, size_t *np)
{
    const struct pslot *tab = pend_table(b->ph, ti), *s;
    const uint32_t *list = pend_list(b->ph, ti);
    uint64_t slots = b->ph->slots, got[INA_NEVENTS] = { 0 }, j, k, m;
    uint64_t used = __atomic_load_n(&b->ph->tab[ti].used, __ATOMIC_ACQUIRE);
    uint64_t d[INA_NEVENTS];
    int whole = used >= slots / PEND_SCAN_FRACTION, e, rc;
    size_t n = 0;

    m = whole ? slots : used;
    if ((rc = pset_reserve(set, (size_t) (used < slots ? used : slots)))
            != 0
        || (!whole && (rc = seen_reserve(b, slots)) != 0))
        return rc;
    for (j = 0; j < m; j++) {
        k = whole ? j : claimed(list, used, slots, j);
        if (!whole && !seen_first(b, (size_t) k))
            continue;
        s = &tab[k];
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != 2)
            continue;
        if (s->klen < 2 || s->klen > PKEY_MAX || n >= set->icap) {
            rc = FLUSH_JOURNALS;
            break;
        }
        for (e = 0; e < INA_NEVENTS; e++) {
            d[e] = __atomic_load_n(&s->d[e], __ATOMIC_RELAXED);
            if (__builtin_add_overflow(got[e], d[e], &got[e]))
                rc = FLUSH_JOURNALS;
        }
        pitem_make(&set->item[n++], s->key, s->klen, d);
    }
    if (!whole)
        seen_forget(b, list, m, slots);
    for (e = 0; rc == 0 && e < INA_NEVENTS; e++)
        if (got[e] != sums[e])
            rc = FLUSH_JOURNALS;
    *np = n;
    return rc;
}

/* flush_journal - journal i of a flush: the peers', then our own (i ==
 * npeers); returns 0 for one to leave out
 *
 * A journal whose file is gone may have lost its stored tail to a sweep
 * (batch_forget_tails): applying it again would count it twice.  Inside
 * the writer lock no sweep runs, and a file that is here now was here
 * for every sweep before. */

static int
flush_journal(struct ina_store *st, struct batch *b, size_t i,
              struct flush_arg *a, const struct journal_hdr **h,
              const struct journal_ent **ent, uint64_t **tailp)
{
    if (i == b->npeers) {
        if ((*h = b->hdr) == NULL)
            return 0;
        *ent = b->ent;
        *tailp = &a->own_tail;
        return 1;
    }
    if (!peer_present(st, &b->peers[i])) {
        b->peers[i].tail = 0;
        return 0;
    }
    *h = b->peers[i].hdr;
    *ent = (const struct journal_ent *) (*h + 1);
    *tailp = &b->peers[i].tail;
    return 1;
}

/* flush_collect - collect and apply every journal's entries up to an
 * epoch
 *
 * bytable: from the epoch's table, which merged them by key across the
 * processes as they were recorded; the journals' entries of the epoch
 * then only give each journal's new tail and what the table must sum
 * to.  The table falls short when a writer died between its journal
 * entry and its table adds, when an add found no slot, or when a
 * process expands events with another configuration; and an entry of an
 * earlier epoch left in a journal is in no table.  Then this returns
 * FLUSH_JOURNALS before anything is applied, and the caller collects
 * again from the journals (bytable 0), re-expanding every entry with
 * this handle's configuration: the journals are the truth.  Journals of
 * another pending file are always collected whole, after the check. */

static int
flush_collect(struct ina_store *st, MDB_txn *txn, struct batch *b,
              uint64_t upto, int bytable, struct flush_arg *a,
              uint64_t *own)
{
    uint64_t sums[INA_NEVENTS] = { 0 }, count, *tailp;
    const struct journal_hdr *h;
    const struct journal_ent *ent;
    size_t i, n = 0;
    int rc = 0, pass, mine;

    a->events = 0;
    *own = 0;
    /* Pass 0 takes the journals the table holds, pass 1 the rest. */
    for (pass = bytable ? 0 : 1; pass < 2 && rc == 0; pass++) {
        for (i = 0; i <= b->npeers && rc == 0; i++) {
            if (!flush_journal(st, b, i, a, &h, &ent, &tailp))
                continue;
            mine = bytable && h->instance == b->ph->instance;
            if (mine != (pass == 0))
                continue;
            rc = journal_collect(st, txn, h, ent,
                                 journal_upto(h, b->ph, upto),
                                 mine ? NULL : &b->merge, sums, tailp,
                                 &count);
            if (i == b->npeers)
                *own = count;
            else if (count == 0)
                b->peers[i].tail = 0;
            a->events += count;
        }
        if (rc == 0 && pass == 0)
            rc = pend_gather(b, (unsigned) (upto & 1), &b->merge, sums, &n);
        /* Applied now: pass 1 may use the items (pset_table). */
        if (rc == 0 && pass == 0 && !a->drop)
            rc = items_apply(st, txn, &b->merge, n,
                             __atomic_load_n(&b->ph->tab[upto & 1].time,
                                             __ATOMIC_RELAXED));
    }
    if (rc == 0 && !a->drop)
        rc = pset_apply(st, txn, &b->merge);
    return rc;
}

/* epoch_full - does a record at time now need the epoch after table
 * t's: other windows than the table's, its journal full (applied: its
 * entries known applied), or the table three quarters full?
 *
 * Linear probes in 32-byte slots stay short at that load (two slots a
 * cache line), and the larger epoch makes the flush that applies it
 * cheaper an event. */

static int
epoch_full(const struct ina_store *st, const struct batch *b,
           const struct pend_tab *t, int64_t now, uint64_t applied)
{
    return !same_windows(st, now, __atomic_load_n(&t->time,
                                                  __ATOMIC_RELAXED))
           || (b->hdr != NULL && b->hdr->tail - applied >= b->hdr->capacity)
           || __atomic_load_n(&t->used, __ATOMIC_RELAXED)
                  >= b->ph->slots / 4 * 3;
}

/* file_read_in - read len bytes of fd at off into the page cache, on a
 * mapping of its own: nothing is written; -1 if it cannot be mapped */

int
file_read_in(int fd, uint64_t off, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    volatile const uint8_t *p;
    size_t i;
    void *m;

    m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t) off);
    if (m == MAP_FAILED)
        return -1;
#ifdef MADV_POPULATE_READ
    if (madvise(m, len, MADV_POPULATE_READ) != 0)
#endif
    {
        p = m;
        for (i = 0; i < len; i += page > 0 ? (size_t) page : 4096)
            (void) p[i];
    }
    munmap(m, len);
    return 0;
}

/* runway_step - read the next piece of data.mdb past the tree into the
 * page cache; 0 when RUNWAY_BYTES past the last page are there already
 *
 * A page of the file the tree has never used is a hole (reserved,
 * unwritten): the first touch of it, which is the writer's, in a flush,
 * makes the kernel zero a new page, and on a virtual machine whose host
 * backs guest memory on first use that costs some microseconds a page
 * (about 4 us here: a third of the CPU time of a run of fresh keys, in
 * the writer).  A process waiting for a flush to end has nothing else to
 * do: it reads the pages the flushes will take next, so that the writer
 * finds them in the page cache.  Processes share the work through the
 * pending header: each claims the next piece with a compare-and-swap of
 * ph->runway.  A piece takes about 4 ms here, so a wait may outlast its
 * flush by that much. */

static int
runway_step(struct ina_store *st, struct batch *b)
{
    struct pend_hdr *ph = b->ph;
    MDB_envinfo ei;
    MDB_stat ms;
    struct stat sb;
    uint64_t front, end, upto, from;
    long page = sysconf(_SC_PAGESIZE);
    int fd;

    if (mdb_env_info(st->env->env, &ei) != 0
        || mdb_env_stat(st->env->env, &ms) != 0
        || mdb_env_get_fd(st->env->env, &fd) != 0 || page <= 0)
        return 0;
    front = ((uint64_t) ei.me_last_pgno + 1) * ms.ms_psize;
    end = front + RUNWAY_BYTES;
    if (end > ei.me_mapsize)
        end = ei.me_mapsize;
    /* Never past the end of the file: a mapped page there is SIGBUS. */
    if (fstat(fd, &sb) != 0)
        return 0;
    if (end > (uint64_t) sb.st_size)
        end = (uint64_t) sb.st_size;
    upto = __atomic_load_n(&ph->runway, __ATOMIC_ACQUIRE);
    do {
        /* Behind the tree, or far past it (a smaller file since). */
        from = upto < front || upto > end + RUNWAY_CHUNK ? front : upto;
        from -= from % (uint64_t) page;
        if (from + RUNWAY_CHUNK > end)
            return 0;
    } while (!__atomic_compare_exchange_n(&ph->runway, &upto,
                                          from + RUNWAY_CHUNK, 0,
                                          __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
    return file_read_in(fd, from, RUNWAY_CHUNK) == 0;
}

/* batch_runway_step - runway_step for a handle (tests) */

int
batch_runway_step(struct ina_store *st)
{
    struct batch *b;
    int rc = 0;

    pthread_mutex_lock(&st->env->block);
    if ((b = batch_get(st)) != NULL && b->ph != NULL && b->pwritable
        && env_check(st->env) == 0)
        rc = runway_step(st, b);
    pthread_mutex_unlock(&st->env->block);
    return rc;
}

/* flush_moved_on - does a record that found its epoch full find room in
 * the epoch another flush has made since? */

static int
flush_moved_on(struct ina_store *st, MDB_txn *txn, struct batch *b,
               struct flush_arg *a)
{
    uint64_t own = b->hdr != NULL ? journal_applied(st, txn, b->hdr) : 0;

    if (epoch_full(st, b, &b->ph->tab[b->ph->epoch & 1], a->time, own))
        return 0;
    a->own_tail = own;
    return 1;
}

/* One owner's buffered sessions, for merging. */
struct sdelta {
    uint8_t klen;
    uint8_t key[OKEY_MAX];
    int64_t d;
};

static int
sdelta_cmp(const void *x, const void *y)
{
    const struct sdelta *a = x, *b = y;

    return key_cmp(a->key, a->klen, b->key, b->klen);
}

/* pend_apply_sessions - apply an epoch's buffered sessions
 *
 * Only the owner slots count: each process's deltas of one (service,
 * host), merged across the slots the key may have, in key order, so
 * that session_apply sees the net of what the process did.  The gauge
 * slots were only for queries. */

static int
pend_apply_sessions(struct ina_store *st, MDB_txn *txn, struct batch *b,
                    unsigned ti)
{
    const struct sslot *tab = pend_stable(b->ph, ti), *s;
    const uint32_t *list = pend_slist(b->ph, ti);
    uint64_t ss = pend_sslots(b->ph), used, m, j;
    struct sdelta *v;
    size_t n = 0, i, k;
    int64_t d;
    int rc = 0, whole;

    used = __atomic_load_n(&b->ph->tab[ti].sused, __ATOMIC_ACQUIRE);
    if (used == 0)
        return 0;
    whole = used >= ss;
    m = whole ? ss : used;
    if ((v = malloc(m * sizeof(*v))) == NULL
        || (!whole && seen_reserve(b, ss) != 0)) {
        free(v);
        return ENOMEM;
    }
    for (j = 0; j < m; j++) {
        k = claimed(list, used, ss, j);
        if (!whole && !seen_first(b, k))
            continue;
        s = &tab[k];
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != 2
            || s->klen < 2 || s->klen > SSKEY_MAX
            || s->key[0] != SESSION_OWNER)
            continue;
        if ((d = __atomic_load_n(&s->d, __ATOMIC_RELAXED)) == 0)
            continue;
        v[n].klen = (uint8_t) (s->klen - 1);
        memcpy(v[n].key, s->key + 1, v[n].klen);
        v[n].d = d;
        n++;
    }
    if (!whole)
        seen_forget(b, list, m, ss);
    qsort(v, n, sizeof(*v), sdelta_cmp);
    for (i = 0; i < n && rc == 0; i = k) {
        d = v[i].d;
        for (k = i + 1; k < n && sdelta_cmp(&v[i], &v[k]) == 0; k++)
            d = (int64_t) ((uint64_t) d + (uint64_t) v[k].d);
        if (d != 0)
            rc = session_apply(st, txn, v[i].key, v[i].klen, d);
    }
    free(v);
    return rc;
}

/* flush_txn - apply every journal's entries up to the previous epoch
 *
 * In the flush's write transaction, so one at a time.  If the previous
 * epoch is applied already, the current one becomes the previous: the
 * next epoch's table is made ready and becomes current.  If not (a
 * flusher died before its commit), that epoch is applied first.  Each
 * journal's new tail and the epoch applied are stored in the same
 * transaction: an entry is applied exactly once, whoever applies it. */

static int
flush_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct flush_arg *a = argp;
    struct batch *b = st->env->batch;
    struct pend_hdr *ph = b->ph;
    uint64_t applied, cur, upto, tail, own = 0;
    size_t i;
    int rc = 0;

    a->done = 0;
    a->events = 0;
    a->unfinished = 0;
    pset_clear(&b->merge);
    applied = pend_applied(st, txn, ph);
    cur = __atomic_load_n(&ph->epoch, __ATOMIC_SEQ_CST);
    a->upto = applied;
    if (applied >= cur)
        return EINVAL; /* no flush of this file can store that */
    if (applied + 1 >= cur && a->seen != 0 && cur != a->seen
        && flush_moved_on(st, txn, b, a)) {
        /* Another flush made a new epoch while this record waited for
         * the writer lock, and it has what it needed. */
        return 0;
    }
    if (applied + 1 < cur) {
        upto = cur - 1;
        a->unfinished = 1;
    } else {
        /* An empty epoch is left as it is, unless a record needs other
         * windows than its table's, or a journal holds an entry whose
         * writer died before adding it. */
        if (__atomic_load_n(&ph->tab[cur & 1].used, __ATOMIC_RELAXED) == 0
            && __atomic_load_n(&ph->tab[cur & 1].sused, __ATOMIC_RELAXED)
                   == 0
            && (a->time < 0
                || same_windows(st, a->time,
                                __atomic_load_n(&ph->tab[cur & 1].time,
                                                __ATOMIC_RELAXED)))
            && !journals_behind(st, txn, b)) {
            /* What others applied of our journal, whatever the hint. */
            if (b->hdr != NULL)
                a->own_tail = journal_applied(st, txn, b->hdr);
            return 0;
        }
        pend_reset(b, (cur + 1) & 1, cur + 1,
                   a->time >= 0 ? a->time : st->clock(st->clock_arg));
        __atomic_store_n(&ph->epoch, cur + 1, __ATOMIC_SEQ_CST);
        upto = cur;
    }
    /* After the switch: a journal made later has no entry of upto. */
    peers_scan(st, b);
    if ((rc = flush_wait(b, upto)) != 0)
        return rc;
    rc = flush_collect(st, txn, b, upto, 1, a, &own);
    if (rc == FLUSH_JOURNALS) {
        /* Once a minute at most: processes that count other
         * granularities disagree with the table at every flush. */
        if (b->journals_ms == 0 || mono_ms() - b->journals_ms >= 60000) {
            b->journals_ms = mono_ms();
            store_log(st, INA_LOG_NOTICE,
                      "store %s: epoch %llu applied from the journals: "
                      "its pending table disagrees with them (a process "
                      "killed inside a record, or processes counting "
                      "other granularities)",
                      st->conf->store, (unsigned long long) upto);
        }
        pset_clear(&b->merge);
        rc = flush_collect(st, txn, b, upto, 0, a, &own);
    }
    if (rc == 0 && own > 0)
        rc = journal_mark(st, txn, b->hdr, a->own_tail);
    for (i = 0; i < b->npeers && rc == 0; i++) {
        struct journal_hdr *h = b->peers[i].hdr;

        if (b->peers[i].tail == 0)
            continue;
        rc = journal_mark(st, txn, h, b->peers[i].tail);
        /* A dead process's journal, applied whole, is removed after the
         * commit. */
        tail = __atomic_load_n(&h->tail, __ATOMIC_ACQUIRE);
        if (rc == 0 && b->peers[i].tail == tail
            && !session_alive((pid_t) h->pid, h->start)) {
            char path[4096];

            snprintf(path, sizeof(path), "%s/%s", st->conf->store,
                     b->peers[i].name);
            rc = batch_gone(&st->gone, &st->ngone, path);
        }
    }
    /* A map too full for the counts has no room for sessions either: a
     * dropped open is owned by none, and its close then moves nothing. */
    if (rc == 0 && !a->drop)
        rc = pend_apply_sessions(st, txn, b, (unsigned) (upto & 1));
    if (rc == 0)
        rc = pend_put_applied(st, txn, ph, upto);
    if (rc == 0)
        rc = store_expire_due(st, txn, st->clock(st->clock_arg));
    if (rc == 0) {
        a->upto = upto;
        a->done = 1;
    }
    return rc;
}

/* flusher_claim - become the one process starting a timed flush
 *
 * Returns 0 when another live process is at it. */

static int
flusher_claim(struct pend_hdr *ph, uint64_t me)
{
    uint64_t cur = 0, now = mono_ms();

    /* Looked at before any compare-and-swap: while one process flushes,
     * every record of the others finds the flush due, and a failing
     * compare-and-swap still takes the cache line from the flusher. */
    if ((cur = __atomic_load_n(&ph->flusher, __ATOMIC_ACQUIRE)) == 0
        && __atomic_compare_exchange_n(&ph->flusher, &cur, me, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&ph->flusher_ms, now, __ATOMIC_RELAXED);
        return 1;
    }
    /* Another process's flag is taken over only when old, and then only
     * if its process is gone: a flush never takes that long. */
    if (cur != me
        && (now - __atomic_load_n(&ph->flusher_ms, __ATOMIC_RELAXED)
                < FLUSHER_STALE_MS
            || kill((pid_t) cur, 0) == 0))
        return 0;
    if (!__atomic_compare_exchange_n(&ph->flusher, &cur, me, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return 0;
    __atomic_store_n(&ph->flusher_ms, now, __ATOMIC_RELAXED);
    return 1;
}

/* batch_flush_locked - apply the pending events now (batch lock held)
 *
 * force: wait for the writer lock (a record that needs the next epoch,
 * ina_flush(), a range query); else only if no other process is starting
 * one.  time is the clock of a record that needs the next epoch (-1:
 * none; an empty epoch is then left as it is), and seen the epoch it
 * found full (0: none): if another flush has made a new one with room
 * for it meanwhile, there is nothing more to do.  A map too full even
 * for the coarsest granularity loses the epoch's events, counted as
 * dropped; nothing else fails the caller's record. */

static int
batch_flush_locked(struct ina_store *st, int force, int64_t time,
                   uint64_t seen)
{
    struct batch *b = st->env->batch;
    struct flush_arg a;
    uint64_t me = (uint64_t) st->pid;
    size_t i;
    int rc;

    if (b == NULL || (st->flags & INA_STORE_RDONLY))
        return 0;
    if (b->ph == NULL && (rc = pend_map(st, b, 0)) != 0)
        return rc == ENOENT ? 0 : rc;
    if (!b->pwritable)
        return 0;
    if (!force && !flusher_claim(b->ph, me))
        return 0;
    memset(&a, 0, sizeof(a));
    a.time = time;
    a.seen = seen;
    rc = store_write(st, flush_txn, &a);
    /* A flush asked for applies the current epoch too. */
    if (rc == 0 && force && a.unfinished)
        rc = store_write(st, flush_txn, &a);
    if (rc == MDB_MAP_FULL) {
        a.drop = 1;
        if ((rc = store_write(st, flush_txn, &a)) == 0 && a.done) {
            store_log(st, INA_LOG_ERR,
                      "store %s: map full at the coarsest granularity: "
                      "%llu pending event(s) were not counted",
                      st->conf->store, (unsigned long long) a.events);
            store_count_dropped(st, a.events);
        }
    }
    if (rc == 0) {
        hint_raise(&b->ph->applied, a.upto);
        if (b->hdr != NULL && a.own_tail > b->applied) {
            b->applied = a.own_tail;
            hint_raise(&b->hdr->applied, a.own_tail);
        }
        for (i = 0; a.done && i < b->npeers; i++)
            if (b->peers[i].tail > 0 && b->peers[i].writable)
                hint_raise(&b->peers[i].hdr->applied, b->peers[i].tail);
    }
    pset_clear(&b->merge);
    pset_lend(&b->merge);
    if (!force) {
        uint64_t cur = me;

        (void) __atomic_compare_exchange_n(&b->ph->flusher, &cur, 0, 0,
                                           __ATOMIC_RELEASE,
                                           __ATOMIC_RELAXED);
        if (rc == EAGAIN)
            rc = 0;
    }
    return rc;
}

/* batch_flush - apply every process's pending events of this store now */

int
batch_flush(struct ina_store *st)
{
    int rc = 0;

    pthread_mutex_lock(&st->env->block);
    if (batch_get(st) == NULL)
        rc = ENOMEM;
    else
        rc = batch_flush_locked(st, 1, -1, 0);
    pthread_mutex_unlock(&st->env->block);
    return rc;
}

/* batch_is_due - should a timed flush start? */

static int
batch_is_due(const struct ina_store *st, const struct pend_hdr *ph)
{
    uint64_t cur = __atomic_load_n(&ph->epoch, __ATOMIC_ACQUIRE);
    const struct pend_tab *t = &ph->tab[cur & 1];
    uint64_t first = __atomic_load_n(&t->first_ms, __ATOMIC_RELAXED);

    if (__atomic_load_n(&ph->applied, __ATOMIC_RELAXED) + 1 < cur)
        return 1; /* a flush died, or its hint is not raised yet */
    if (first == 0)
        return 0;
    return __atomic_load_n(&t->used, __ATOMIC_RELAXED) >= ph->slots / 4
           || __atomic_load_n(&t->sused, __ATOMIC_RELAXED)
                  >= pend_sslots(ph) / 4
           || mono_ms() >= first + st->conf->flush_delay;
}

/* batch_writer - the batch of a process that adds to the tables: the
 * pending file mapped for writing, and its journal */

static int
batch_writer(struct ina_store *st, struct batch **out)
{
    struct batch *b = batch_get(st);
    int rc;

    if ((*out = b) == NULL)
        return ENOMEM;
    if (b->ph != NULL && !b->pwritable) {
        /* Mapped read-only by a query before: a writer needs it whole.
         * The read-only map is kept, unused, until the batch is
         * forgotten (a query of another thread may be reading it), or
         * is put back if the file cannot be mapped for writing: retired
         * once at most, since a writable map is never replaced. */
        struct pend_hdr *ro = b->ph;
        size_t rolen = b->pmaplen;

        __atomic_store_n(&b->ph, NULL, __ATOMIC_RELEASE);
        if ((rc = pend_map(st, b, 1)) != 0) {
            __atomic_store_n(&b->ph, ro, __ATOMIC_RELEASE);
            return rc;
        }
        b->retired = ro;
        b->retired_len = rolen;
    }
    if (b->ph == NULL && (rc = pend_map(st, b, 1)) != 0)
        return rc;
    if (b->hdr == NULL && (rc = batch_open_journal(st)) != 0)
        return rc;
    return 0;
}

/* epoch_join - mark the process as adding to epoch cur, in its journal's
 * header, for flush_wait; 0 (unmarked) if cur is no longer current */

static int
epoch_join(struct batch *b, uint64_t cur)
{
    __atomic_store_n(&b->hdr->active, cur, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&b->ph->epoch, __ATOMIC_SEQ_CST) == cur)
        return 1;
    __atomic_store_n(&b->hdr->active, 0, __ATOMIC_RELEASE);
    return 0;
}

/* epoch_leave - done adding to table t: start its flush deadline if this
 * was its first event */

static void
epoch_leave(struct batch *b, struct pend_tab *t)
{
    uint64_t first;

    __atomic_store_n(&b->hdr->active, 0, __ATOMIC_RELEASE);
    if ((first = __atomic_load_n(&t->first_ms, __ATOMIC_RELAXED)) == 0)
        (void) __atomic_compare_exchange_n(&t->first_ms, &first, mono_ms(),
                                           0, __ATOMIC_RELAXED,
                                           __ATOMIC_RELAXED);
}

/* batch_record_locked - journal one event, add it to the current table
 *
 * Returns EAGAIN when the event could not be buffered (the windows kept
 * moving under it, or it counts more than a slot holds): the caller
 * then writes it in a transaction of its own. */

static int
batch_record_locked(struct ina_store *st, enum ina_event ev,
                    const struct ina_cidr *addr, uint64_t n)
{
    struct batch *b;
    struct journal_ent *e;
    struct pend_hdr *ph;
    struct pend_tab *t;
    uint64_t tail, cur, hint;
    int64_t now;
    int rc, tries;

    if (n > PSLOT_MAX)
        return EAGAIN;
    if ((rc = batch_writer(st, &b)) != 0)
        return rc;
    ph = b->ph;
    now = st->clock(st->clock_arg);
    if (now < 0 || now > (int64_t) UINT32_MAX)
        return INA_ECLOCK;
    for (tries = 0;; tries++) {
        cur = __atomic_load_n(&ph->epoch, __ATOMIC_ACQUIRE);
        t = &ph->tab[cur & 1];
        hint = __atomic_load_n(&b->hdr->applied, __ATOMIC_ACQUIRE);
        if (hint > b->applied)
            b->applied = hint;
        if (epoch_full(st, b, t, now, b->applied)) {
            if (tries >= 3)
                return EAGAIN;
            /* While the flush before is applied, read ahead for the
             * next (the previous epoch's table is not free yet). */
            while (__atomic_load_n(&ph->epoch, __ATOMIC_ACQUIRE) == cur
                   && __atomic_load_n(&ph->applied, __ATOMIC_ACQUIRE) + 1
                          < cur
                   && runway_step(st, b))
                ;
            if ((rc = batch_flush_locked(st, 1, now, cur)) != 0)
                return rc;
            continue;
        }
        if (epoch_join(b, cur))
            break;
    }
    tail = b->hdr->tail;
    e = &b->ent[tail % b->hdr->capacity];
    e->time = (uint32_t) now;
    e->ev = (uint8_t) ev;
    e->family = addr->family;
    e->epoch = cur;
    e->n = n;
    memcpy(e->addr, addr->addr, 16);
    __atomic_store_n(&b->hdr->tail, tail + 1, __ATOMIC_RELEASE);
    pend_add_event(st, b, (unsigned) (cur & 1), (int) ev, addr->family,
                   addr->addr, n);
    epoch_leave(b, t);
    if (batch_is_due(st, ph))
        return batch_flush_locked(st, 0, -1, 0);
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

/* batch_due - start a flush if one is due (every entry point calls) */

int
batch_due(struct ina_store *st)
{
    struct batch *b = __atomic_load_n(&st->env->batch, __ATOMIC_ACQUIRE);
    struct pend_hdr *ph;
    int rc = 0;

    /* Without the lock, as pend_read: a writable map is never replaced,
     * and batch_flush_locked reads it again under the lock. */
    if (b == NULL || (st->flags & INA_STORE_RDONLY)
        || (ph = __atomic_load_n(&b->ph, __ATOMIC_ACQUIRE)) == NULL
        || !__atomic_load_n(&b->pwritable, __ATOMIC_RELAXED)
        || !batch_is_due(st, ph))
        return 0;
    pthread_mutex_lock(&st->env->block);
    rc = batch_flush_locked(st, 0, -1, 0);
    pthread_mutex_unlock(&st->env->block);
    return rc;
}

/* What a query asks of the shared tables: a counter key's count of one
 * event in its window, or a session key's net delta. */
struct pend_ask {
    const uint8_t *key;        /* as the tables hold it */
    size_t klen;
    int sess;                  /* of the session tables */
    int ev;                    /* counters: the event */
    uint32_t width, win;       /* counters: the key's window */
};

/* pend_read - the pending sum of a key for a snapshot
 *
 * The tables of the epochs after the one the snapshot applied (for a
 * counter, if they hold the key's window).  Returns 0 with *n set, or
 * EAGAIN when the snapshot is older than both tables or they kept
 * changing: the caller renews its snapshot and asks again.
 *
 * Inside the handle (store_enter), whose fields keep the epoch its last
 * snapshot applied.  The map is taken without env->block once it is
 * there: a map stays until the batch is forgotten, and the tables are
 * read as another process's would be. */

static int
pend_read(struct ina_store *st, MDB_txn *txn, const struct pend_ask *q,
          uint64_t *n)
{
    struct batch *b = __atomic_load_n(&st->env->batch, __ATOMIC_ACQUIRE);
    struct pend_hdr *ph;
    uint64_t g[2], k[2], applied, sum, id, x, used;
    int tries, rc = EAGAIN, probe[2];
    unsigned i;
    size_t at;

    *n = 0;
    ph = b != NULL ? __atomic_load_n(&b->ph, __ATOMIC_ACQUIRE) : NULL;
    if (ph == NULL) {
        pthread_mutex_lock(&st->env->block);
        if ((b = batch_get(st)) != NULL)
            ph = pend_reader(st, b, txn);
        pthread_mutex_unlock(&st->env->block);
        if (ph == NULL)
            return 0;
    }
    id = (uint64_t) mdb_txn_id(txn);
    if (id != st->pend_txn || st->pend_txn == 0) {
        st->pend_epoch = pend_applied(st, txn, ph);
        st->pend_txn = id;
    }
    applied = st->pend_epoch;
    /* The key's home slot is hashed once a table holds anything. */
    at = SIZE_MAX;
    for (tries = 0; tries < 64; tries++) {
        g[0] = __atomic_load_n(&ph->tab[0].gen, __ATOMIC_ACQUIRE);
        g[1] = __atomic_load_n(&ph->tab[1].gen, __ATOMIC_ACQUIRE);
        /* An odd sequence: the table is being made ready for the epoch
         * after the current one (or its maker died at it), and holds
         * nothing to count. */
        k[0] = (g[0] + 1) / 2;
        k[1] = (g[1] + 1) / 2;
        /* Both tables are of epochs later than one after the snapshot's:
         * an epoch between is gone from them. */
        if (applied + 1 < (k[0] < k[1] ? k[0] : k[1]))
            break;
        sum = 0;
        /* An empty table costs no probe (a cache miss in a large one);
         * only after the coverage check above: an empty table may be one
         * made ready again after the epoch an old snapshot lacks. */
        for (i = 0; i < 2; i++) {
            used = __atomic_load_n(q->sess ? &ph->tab[i].sused
                                           : &ph->tab[i].used,
                                   __ATOMIC_ACQUIRE);
            probe[i] = k[i] > applied && !(g[i] & 1) && used > 0
                       && (q->sess
                           || (uint32_t) (__atomic_load_n(&ph->tab[i].time,
                                                          __ATOMIC_RELAXED)
                                          / q->width)
                                  == q->win);
            if (probe[i] && at == SIZE_MAX)
                at = q->sess ? skey_home(q->key, q->klen, pend_sslots(ph))
                             : pkey_home(q->key, q->klen, ph->slots);
            /* Both slots asked for before either is read: the misses
             * overlap. */
            if (probe[i] && !q->sess)
                __builtin_prefetch(&pend_table(ph, i)[at], 0, 3);
        }
        for (i = 0; i < 2; i++) {
            if (!probe[i])
                continue;
            if (q->sess) {
                x = slot_sum((const uint8_t *) pend_stable(ph, i),
                             sizeof(struct sslot), pend_sslots(ph), at,
                             q->key, q->klen, offsetof(struct sslot, d), 0);
                sum += x;
            } else {
                x = pend_get(pend_table(ph, i), ph->slots, at, q->key,
                             q->klen, q->ev);
                sum = sat_add(sum, x);
            }
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&ph->tab[0].gen, __ATOMIC_RELAXED) == g[0]
            && __atomic_load_n(&ph->tab[1].gen, __ATOMIC_RELAXED) == g[1]) {
            *n = sum;
            rc = 0;
            break;
        }
    }
    return rc;
}

/* batch_pending - the pending count of one counter key, for a snapshot
 * (pend_read) */

int
batch_pending(struct ina_store *st, MDB_txn *txn, const uint8_t *key,
              size_t klen, int ev, uint64_t *n)
{
    struct pend_ask q;

    *n = 0;
    if (klen <= 8 || klen - 8 > PKEY_MAX)
        return 0;
    memset(&q, 0, sizeof(q));
    q.key = key + 8;
    q.klen = klen - 8;
    q.ev = ev;
    q.width = (uint32_t) be_get(key, 4);
    q.win = (uint32_t) be_get(key + 4, 4);
    if (q.width == 0)
        return 0;
    return pend_read(st, txn, &q, n);
}

/* session_ask - the table key of a session key of a kind */

static size_t
session_ask(uint8_t *to, int kind, const uint8_t *key, size_t klen)
{
    to[0] = (uint8_t) kind;
    memcpy(to + 1, key, klen);
    return klen + 1;
}

/* batch_session_pending - the net buffered delta of a session gauge key
 * (gauge) or of an owner key (else), for a snapshot: EAGAIN as
 * batch_pending */

int
batch_session_pending(struct ina_store *st, MDB_txn *txn, int gauge,
                      const uint8_t *key, size_t klen, int64_t *d)
{
    uint8_t k[SSKEY_MAX];
    struct pend_ask q;
    uint64_t x;
    int rc;

    *d = 0;
    if (klen + 1 > SSKEY_MAX)
        return 0;
    memset(&q, 0, sizeof(q));
    q.klen = session_ask(k, gauge ? SESSION_GAUGE : SESSION_OWNER, key,
                         klen);
    q.key = k;
    q.sess = 1;
    if ((rc = pend_read(st, txn, &q, &x)) == 0)
        *d = (int64_t) x;
    return rc;
}

/* session_add - add one delta to a session table; 0 when it found no
 * slot */

static int
session_add(struct batch *b, unsigned ti, int kind, const uint8_t *key,
            size_t klen, int64_t d)
{
    uint8_t k[SSKEY_MAX];
    uint64_t ss = pend_sslots(b->ph);
    struct sslot *s;
    size_t n = session_ask(k, kind, key, klen);

    s = (struct sslot *) (void *) slot_find(
        (uint8_t *) pend_stable(b->ph, ti), sizeof(*s), &b->ph->tab[ti].sused,
        pend_slist(b->ph, ti), ss, skey_home(k, n, ss), k, n);
    if (s == NULL)
        return 0;
    (void) __atomic_fetch_add(&s->d, d, __ATOMIC_RELAXED);
    return 1;
}

/* batch_session_holds - does a table of an epoch that txn has not
 * applied hold a session delta of process (pid, start)?
 *
 * For reaping, inside a write transaction (so no flush is under way,
 * and a dead process adds nothing more): a dead process's buffered close
 * of a session in the tree would otherwise be taken twice, once by the
 * reaping and once by the queries adding the close until its epoch is
 * applied. */

int
batch_session_holds(struct ina_store *st, MDB_txn *txn, uint32_t pid,
                    uint64_t start)
{
    char path[4096];
    const struct pend_hdr *ph;
    const struct sslot *tab, *sl;
    const uint32_t *list;
    uint8_t who[OKEY_HDR];
    uint64_t applied, g, used, ss, j, m;
    size_t len;
    unsigned i;
    void *map;
    int writable, found = 0;

    /* Mapped here and not through the batch: reaping may run inside a
     * flush, under the batch lock, or outside it.  Rare: only for a
     * process found dead. */
    snprintf(path, sizeof(path), "%s/" PEND_NAME, st->conf->store);
    if (file_map(path, 0, &map, &len, &writable) != 0)
        return 0;
    ph = map;
    if (len < PEND_OFF || !pend_valid(ph, len))
        goto out;
    be_put(who, pid, 4);
    be_put(who + 4, start, 8);
    applied = pend_applied(st, txn, ph);
    ss = pend_sslots(ph);
    for (i = 0; i < 2 && !found; i++) {
        g = __atomic_load_n(&ph->tab[i].gen, __ATOMIC_ACQUIRE);
        used = __atomic_load_n(&ph->tab[i].sused, __ATOMIC_ACQUIRE);
        if ((g & 1) || g / 2 <= applied || used == 0)
            continue;
        tab = pend_stable(ph, i);
        list = pend_slist(ph, i);
        m = used >= ss ? ss : used;
        for (j = 0; j < m && !found; j++) {
            sl = &tab[claimed(list, used, ss, j)];
            found = __atomic_load_n(&sl->state, __ATOMIC_ACQUIRE) == 2
                    && sl->klen > 1 + OKEY_HDR && sl->key[0] == SESSION_OWNER
                    && memcmp(sl->key + 1, who, OKEY_HDR) == 0
                    && __atomic_load_n(&sl->d, __ATOMIC_RELAXED) != 0;
        }
    }
out:
    munmap(map, len);
    return found;
}

/* batch_session - buffer one process's session open or close
 *
 * okey is its owner key, gkey its gauge keys (ng of them, SKEY_MAX bytes
 * apart, glen long).  The owner delta goes first: it is what the flush
 * applies, so a writer killed between the adds leaves the queries a
 * partial delta until its epoch is applied, and the tree none.  Returns
 * EAGAIN when the tables kept filling: the caller then flushes and
 * writes the session itself. */

int
batch_session(struct ina_store *st, const uint8_t *okey, size_t oklen,
              const uint8_t *gkey, const size_t *glen, size_t ng, int d)
{
    struct batch *b;
    struct pend_hdr *ph;
    struct pend_tab *t;
    uint64_t cur;
    unsigned ti;
    size_t i;
    int rc, tries;

    pthread_mutex_lock(&st->env->block);
    if ((rc = batch_writer(st, &b)) != 0)
        goto out;
    ph = b->ph;
    for (tries = 0;; tries++) {
        cur = __atomic_load_n(&ph->epoch, __ATOMIC_ACQUIRE);
        t = &ph->tab[cur & 1];
        ti = (unsigned) (cur & 1);
        if (__atomic_load_n(&t->sused, __ATOMIC_RELAXED) + 1 + ng
            < pend_sslots(ph) / 2) {
            if (!epoch_join(b, cur))
                continue;
            if (session_add(b, ti, SESSION_OWNER, okey, oklen, d))
                break;
            __atomic_store_n(&b->hdr->active, 0, __ATOMIC_RELEASE);
        }
        if (tries >= 3) {
            rc = EAGAIN;
            goto out;
        }
        if ((rc = batch_flush_locked(st, 1, -1, 0)) != 0)
            goto out;
    }
    for (i = 0; i < ng; i++)
        (void) session_add(b, ti, SESSION_GAUGE, gkey + i * SKEY_MAX,
                           glen[i], d);
    b->sess_epoch = cur;
    /* A due flush is left to the next record or query, which start
     * one: a session call waits for the writer lock only when the tables
     * are full. */
    epoch_leave(b, t);
out:
    pthread_mutex_unlock(&st->env->block);
    return rc;
}

/* batch_has_pending - may some process hold events (what has
 * BATCH_COUNTS) or sessions (BATCH_SESSIONS) not in the tree? */

int
batch_has_pending(struct ina_store *st, unsigned what)
{
    struct batch *b;
    struct pend_hdr *ph;
    const struct pend_tab *t;
    uint64_t cur;
    int r = 0;

    pthread_mutex_lock(&st->env->block);
    b = batch_get(st);
    ph = b != NULL ? pend_reader(st, b, NULL) : NULL;
    if (ph != NULL) {
        cur = __atomic_load_n(&ph->epoch, __ATOMIC_ACQUIRE);
        t = &ph->tab[cur & 1];
        r = ((what & BATCH_COUNTS)
             && __atomic_load_n(&t->used, __ATOMIC_RELAXED) > 0)
            || ((what & BATCH_SESSIONS)
                && __atomic_load_n(&t->sused, __ATOMIC_RELAXED) > 0);
        /* An epoch before the current one not applied yet. */
        if (!r && __atomic_load_n(&ph->applied, __ATOMIC_RELAXED) + 1 < cur)
            r = (what & BATCH_COUNTS)
                || __atomic_load_n(&ph->tab[(cur - 1) & 1].sused,
                                   __ATOMIC_RELAXED)
                       > 0;
    }
    pthread_mutex_unlock(&st->env->block);
    return r;
}

/* batch_forget - drop the parent's batch in a child after fork
 *
 * The events belong to the parent's journal, which the parent (or a
 * survivor) applies; the child only unmaps its copies.  Called by the
 * environment's fork handler, single-threaded. */

void
batch_forget(struct env *e)
{
    struct batch *b = e->batch;

    if (b == NULL)
        return;
    if (b->hdr != NULL)
        munmap(b->hdr, b->maplen);
    if (b->ph != NULL)
        munmap(b->ph, b->pmaplen);
    if (b->retired != NULL)
        munmap(b->retired, b->retired_len);
    peers_drop(b, 1);
    free(b->peers);
    pset_free(&b->merge);
    free(b->seen);
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
        /* Its buffered sessions too, which the journal does not hold. */
        if (b->applied < b->hdr->tail
            || (b->ph != NULL && b->sess_epoch
                                     > __atomic_load_n(&b->ph->applied,
                                                       __ATOMIC_RELAXED)))
            rc = batch_flush_locked(st, 1, -1, 0);
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
 * flushes apply dead processes' journals like any other; the sweep
 * applies what a flush could not have seen (up to the epoch applied:
 * every entry when there is no pending file) and removes the journals
 * applied whole.  The files are unlinked only after the transaction
 * commits: the caller's list *gone gets their names. */

int
batch_sweep_txn(struct ina_store *st, MDB_txn *txn, char ***gone,
                size_t *ngone, uint64_t *replayed)
{
    char path[4096];
    struct journal_hdr *hdr;
    struct pend_hdr ph;
    struct stat sb;
    struct dirent *de;
    uint32_t pid, seq;
    uint64_t start, upto = UINT64_MAX, inst = 0;
    size_t len;
    DIR *d;
    void *map;
    int m, writable, left, fd, rc = 0;

    /* The pending file's header, read and not mapped: the sweep may run
     * inside a flush, under the batch lock, or outside it. */
    snprintf(path, sizeof(path), "%s/" PEND_NAME, st->conf->store);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
        if (fstat(fd, &sb) == 0
            && pread(fd, &ph, sizeof(ph), 0) == (ssize_t) sizeof(ph)
            && pend_valid(&ph, (size_t) sb.st_size)) {
            upto = pend_applied(st, txn, &ph);
            inst = ph.instance;
        }
        close(fd);
    }
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
        if ((m = file_map(path, 0, &map, &len, &writable)) < 0)
            continue;
        if (m > 0) {
            /* Never sized: it never held an event. */
            rc = batch_gone(gone, ngone, path);
            continue;
        }
        hdr = map;
        left = 0;
        if (journal_valid(hdr, len, pid, start, seq))
            rc = batch_replay(st, txn, hdr,
                              (const struct journal_ent *) (hdr + 1),
                              hdr->instance == inst ? upto : UINT64_MAX,
                              replayed, &left);
        munmap(map, len);
        if (rc == 0 && !left)
            rc = batch_gone(gone, ngone, path);
    }
    closedir(d);
    if (rc == 0)
        rc = batch_forget_tails(st, txn);
    return rc;
}
