/* internal.h - declarations shared between the files of libinaudit
 *
 * Never installed.  Names here carry a module prefix without "ina_"
 * (err_, cidr_, env_, store_, ...), so the shared library, which exports
 * only ^ina_, keeps them private.
 *
 * SPDX-License-Identifier: MIT
 */

#ifndef INA_INTERNAL_H
#define INA_INTERNAL_H 1

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "inaudit.h"

/* error.c */

/* err_set - format a message into a caller's buffer, if there is one
 *
 * buf may be NULL (then nothing happens); the text is always terminated.
 * Returns rc, so that "return err_set(buf, len, rc, ...)" reads well. */
int err_set(char *buf, size_t len, int rc, const char *fmt, ...)
    INA_PRINTF(4, 5);

/* be_put, be_get - big-endian integers of 1 to 8 bytes, in keys and
 * records
 *
 * A word in one load or store where the length is a constant of 2, 4
 * or 8 (queries read a key's width and window so; a flush makes and
 * unmakes its sort items' words so, and gcc's -O2 left those as loops
 * of a byte at a time: 100 instructions a prefix each way). */
static inline void
be_put(uint8_t *p, uint64_t v, int bytes)
{
    uint64_t u;
    uint32_t w;
    uint16_t h;
    int i;

    switch (bytes) {
    case 8:
        u = __builtin_bswap64(v);
        memcpy(p, &u, 8);
        return;
    case 4:
        w = __builtin_bswap32((uint32_t) v);
        memcpy(p, &w, 4);
        return;
    case 2:
        h = __builtin_bswap16((uint16_t) v);
        memcpy(p, &h, 2);
        return;
    default:
        break;
    }
    for (i = bytes - 1; i >= 0; i--) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}

static inline uint64_t
be_get(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    uint32_t w;
    uint16_t h;
    int i;

    switch (bytes) {
    case 8:
        memcpy(&v, p, 8);
        return __builtin_bswap64(v);
    case 4:
        memcpy(&w, p, 4);
        return __builtin_bswap32(w);
    case 2:
        memcpy(&h, p, 2);
        return __builtin_bswap16(h);
    default:
        break;
    }
    for (i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* sat_add - a + b, saturating: counts stop at UINT64_MAX, never wrap */
static inline uint64_t
sat_add(uint64_t a, uint64_t b)
{
    return UINT64_MAX - a < b ? UINT64_MAX : a + b;
}

/* add_clamped - a + d for a signed d: never below 0, saturating above
 * (counts and gauges with deltas that may be negative) */
static inline uint64_t
add_clamped(uint64_t a, int64_t d)
{
    uint64_t take;

    if (d >= 0)
        return sat_add(a, (uint64_t) d);
    take = (uint64_t) 0 - (uint64_t) d;
    return take >= a ? 0 : a - take;
}

/* key_cmp - LMDB's default key order: bytes as unsigned, and a key
 * before the longer keys it begins
 *
 * Whole words, big-endian: eight bytes at a time, and the last word of
 * a common part of n bytes read again from n - 8 (or, below eight
 * bytes, two words of four from 0 and n - 4, or a byte pair), its bytes
 * already compared equal deciding nothing.  The counter databases use
 * it as their LMDB comparison (env.c), which LMDB calls some twenty
 * times per lookup: a byte at a time was a sixth of a point query's
 * instructions, and a word, a half word and a byte in turn a seventh
 * (an IPv4 now key is six bytes).  The order being the default's,
 * mdb_dump(1) or any program that does not set it reads the store the
 * same. */
static inline int
key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen, i = 0;
    uint64_t u, v;
    uint32_t x, y;

    if (n >= 8) {
        for (;;) {
            memcpy(&u, a + i, 8);
            memcpy(&v, b + i, 8);
            if (u != v)
                goto word;
            if (i + 8 == n)
                break;
            i = i + 16 <= n ? i + 8 : n - 8;
        }
    } else if (n >= 4) {
        memcpy(&x, a, 4);
        memcpy(&y, b, 4);
        if (x == y) {
            memcpy(&x, a + n - 4, 4);
            memcpy(&y, b + n - 4, 4);
        }
        if (x != y)
            return __builtin_bswap32(x) < __builtin_bswap32(y) ? -1 : 1;
    } else if (n > 0) {
        x = (uint32_t) a[0] << 16 | (uint32_t) a[n / 2] << 8 | a[n - 1];
        y = (uint32_t) b[0] << 16 | (uint32_t) b[n / 2] << 8 | b[n - 1];
        if (x != y)
            return x < y ? -1 : 1;
    }
    return alen < blen ? -1 : alen > blen;
word:
    return __builtin_bswap64(u) < __builtin_bswap64(v) ? -1 : 1;
}

/* cidr.c */

/* cidr_addrlen - bytes of address of a family (4 -> 4, 6 -> 16) */
static inline unsigned
cidr_addrlen(int family)
{
    return family == 4 ? 4u : 16u;
}

/* cidr_maxlen - mask length of a host of a family (32 or 128) */
static inline unsigned
cidr_maxlen(int family)
{
    return family == 4 ? 32u : 128u;
}

/* cidr_mask - clear every bit of addr past plen */
void cidr_mask(uint8_t *addr, unsigned alen, unsigned plen);

/* cidr_last - set every bit of addr past plen (last address of a block) */
void cidr_last(uint8_t *addr, unsigned alen, unsigned plen);

/* env.c */

#include <pthread.h>

struct batch;
#include <sys/types.h>

#include <lmdb.h>

/* One LMDB environment of this process, shared by every handle on the
 * same store directory (see env.c). */
struct env {
    struct env *next;
    dev_t dev;                /* registry key: the directory's identity */
    ino_t ino;
    char *path;
    char *group;              /* group given to new files, or NULL */
    uint64_t map_size;
    int rdonly;               /* opened by a read-only handle first */
    int refs;
    pid_t pid;                /* process that opened env */
    MDB_env *env;             /* NULL in a child until env_check() */
    pthread_mutex_t wlock;    /* one write transaction per process */
    pthread_mutex_t block;    /* guards batch */
    pthread_mutex_t slock;    /* one session open or close (session.c) */
    struct batch *batch;      /* the process's buffered events (batch.c) */
    MDB_dbi meta, counts, sessions, owners;
    /* The newest windows of each prefix (store.c): LMDB's main database
     * (format 3), or a read-only handle's named one of format 2; has_now
     * is 0 when a read-only handle opened a store of format 1, which has
     * none.  format is the store's as opened (older only read-only). */
    int has_now;
    MDB_dbi now;
    uint32_t format;
    uint64_t legacy_time;     /* clock of the upgrade from format 1, or 0 */
    /* The sync agent's tables (cluster.c); has_cluster is 0 when a
     * read-only handle opened a store made before they existed. */
    int has_cluster;
    MDB_dbi cluster, csessions, published, outbox, peers;
    /* The index of recent windows (store.c): a key, as the counts
     * database's, for each prefix whose now entry of recent_width took a
     * window, kept for the last windows; a handle with a cluster makes it
     * at its first read-write open, and every writer keeps it from then
     * on.  has_recent is 0 where there is none (yet). */
    int has_recent;
    MDB_dbi recent;
    uint32_t recent_width;
};

int env_open_recent(struct env *e, MDB_txn *txn, uint32_t width);
int env_get_format(MDB_txn *txn, MDB_dbi meta, uint32_t *version);
int env_acquire(const char *dir, const char *group, uint64_t map_size,
                int rdonly, struct env **out, char *errbuf, size_t errlen);
int env_chgrp_path(const struct env *e, const char *path);
int env_check(struct env *e);
int env_last_ref(struct env *e);
pid_t env_pid(void);
void env_release(struct env *e);

/* store.c */

/* Counter keys: width W (u32 BE) | window number (u32 BE) | family (u8) |
 * mask length (u8) | address (4 or 16 bytes, BE, host bits zero).  With
 * memcmp order every block at one granularity of one window is one
 * contiguous range.  Values are INA_NEVENTS native uint64_t. */
#define CKEY_HDR 10
#define CKEY_MAX (CKEY_HDR + 16)
#define CVAL_SIZE (INA_NEVENTS * sizeof(uint64_t))

/* The now records: a key per prefix, family (u8) | mask length (u8) |
 * address, as a counter key after its width and window.
 * Its value holds, for each width with events of the prefix, the newest
 * such window and its counts: entries ascending by width (packed on
 * disk, below; struct nent in memory).
 * Every other window of the prefix is in the counts database, whose
 * total for a key is its value plus the now entry of that width when
 * the entry is of the key's window.  A flush writes a prefix's widths
 * in one put; a window an entry leaves is moved to the counts database
 * then (store_now_add). */
struct nent {
    uint32_t width, win;
    uint64_t d[INA_NEVENTS];
};
#define NENT_MAX INA_MAX_MONITORS
#define NKEY_MAX (2 + 16)

/* A now value on disk.  Formats 2 and 3 held the entries as struct nent
 * is (32 bytes each).  Format 4 packs each: its width and window (u32,
 * native order), a byte with bit e set for each event e whose count is
 * not zero, and those counts as LEB128 varints in event order, so that
 * a source's first connection and rejection take 11 bytes a width.  A
 * flush copies every leaf page it touches, and random prefixes touch
 * one page each: twice as many records to a page made a transaction of
 * them cost a third less (store.c, store_now_pack). */
#define NPACK_MAX (8 + 1 + INA_NEVENTS * 10)
#define NVAL_MAX (NENT_MAX * NPACK_MAX)
#define NOW_PACKED_FORMAT 4

/* now_key - is k a now record's key?
 *
 * From format 3 the now records are in LMDB's main database (env.c),
 * whose other records are the named databases', keyed by their names.  A
 * now key begins with its family, 4 or 6, a name with a letter, so the
 * now records come first and a walk of them ends at the first key that
 * is not one. */
static inline int
now_key(const MDB_val *k)
{
    const uint8_t *p = k->mv_data;

    return k->mv_size >= 2 && k->mv_size <= NKEY_MAX
           && (p[0] == 4 || p[0] == 6);
}

/* now_get - mdb_cursor_get on the now records: MDB_NOTFOUND past the
 * last of them, at the named databases' records, so that every walk
 * ends there as at the end of a database of its own */
static inline int
now_get(MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op)
{
    int rc = mdb_cursor_get(c, k, v, op);

    return rc == 0 && !now_key(k) ? MDB_NOTFOUND : rc;
}

/* Session keys: service length (u8) | service | family | mask length |
 * address.  Owner keys: pid (u32 BE) | process start time (u64 BE) |
 * service length | service | family | host address. */
#define SKEY_MAX (1 + INA_SERVICE_MAX + 2 + 16)
#define OKEY_HDR 12
#define OKEY_MAX (OKEY_HDR + SKEY_MAX)

/* Distinct monitor widths and how many windows of each are kept. */
struct store_width {
    uint32_t width;
    uint32_t keep;          /* longest history of the monitors of width */
    uint32_t clean_win;     /* window for which expiry found nothing */
    int clean;              /* clean_win is valid */
};

struct ina_store {
    struct env *env;
    struct ina_conf *conf;  /* private copy */
    unsigned flags;
    pid_t pid;              /* process that last used the handle */
    uint64_t pstart;        /* its start time (owner records) */
    pthread_mutex_t lock;   /* one call at a time on a handle */
    MDB_txn *rtxn;          /* cached read transaction, kept reset */
    /* Its cursors (STORE_RCOUNTS, STORE_RSESSIONS, STORE_RNOW: NULL if
     * the store has no now database), each renewed for the current
     * snapshot on first use (the bits of rlive). */
    MDB_cursor *rcur[3];
    unsigned rlive;
    /* The last point lookup in the counts: its snapshot (0: none), key
     * and value.  A policy asks for the three events of one key in a
     * row, and a snapshot never changes. */
    uint64_t pt_txn;
    size_t pt_klen;
    uint8_t pt_key[CKEY_MAX];
    uint64_t pt_val[INA_NEVENTS];
    /* The last snapshot whose applied epoch of the pending tables a
     * query read (0: none), and that epoch (batch.c, pend_read). */
    uint64_t pend_txn;
    uint64_t pend_epoch;
    ina_clock_fn clock;
    void *clock_arg;
    ina_log_fn log;
    void *log_arg;
    size_t nwidths;
    struct store_width widths[INA_MAX_MONITORS];
    /* The sweep of the now database (store_expire_now): the windows it
     * was started for (the sum of every width's), whether it is under
     * way, and the key it goes on from. */
    uint64_t now_swept;
    int now_sweeping, now_sweep_all;
    int64_t now_delta;      /* entries the write transaction added */
    /* The index of recent windows was opened in the write transaction
     * under way (its handle lasts only if it commits); the window whose
     * older keys the index was last cleared of (0: not yet). */
    int recent_opened;
    uint32_t recent_clean;
    size_t now_poslen;
    uint8_t now_pos[NKEY_MAX];
    int64_t next_reap;      /* clock time of the next reaping pass */
    int64_t next_usage;     /* clock time of the next map-use check */
    int force_level;        /* degradation this process could not store */
    int logged_level;       /* degradation last logged by this process */
    char **gone;            /* journals to unlink after the commit */
    size_t ngone;
    struct ina_store *next; /* the process's open handles */
};

/* A unit of work run inside one write transaction by store_write(). */
typedef int (*store_txn_fn)(struct ina_store *st, MDB_txn *txn, void *arg);

int store_enter(struct ina_store *st);
void store_leave(struct ina_store *st);
int store_write(struct ina_store *st, store_txn_fn fn, void *arg);
int store_read_begin(struct ina_store *st, MDB_txn **txn);
#define STORE_RCOUNTS 0
#define STORE_RSESSIONS 1
#define STORE_RNOW 2
#define STORE_RALL ((1u << 3) - 1)  /* rlive: each of the three renewed */
int store_read_cursor(struct ina_store *st, int which, MDB_cursor **cur);
int store_read_sessions(struct ina_store *st, MDB_cursor **cur);
void store_read_end(struct ina_store *st);
size_t store_ckey(uint8_t *key, uint32_t width, uint32_t win, int family,
                  unsigned plen, const uint8_t *addr);
size_t store_skey(uint8_t *key, const char *service, size_t slen,
                  int family, unsigned plen, const uint8_t *addr);
int store_granularity(const struct ina_conf *conf, int family,
                      unsigned plen, unsigned *gran, char *errbuf,
                      size_t errlen);
size_t store_prefixes(const struct ina_conf *conf, int family,
                      const uint8_t **list);
int store_level(struct ina_store *st, MDB_txn *txn);
uint64_t store_data_pages(struct ina_store *st, MDB_txn *txn);
uint64_t store_dbi_pages(MDB_txn *txn, const MDB_dbi *dbis, size_t n);
int store_recent_covers(const struct ina_store *st, uint32_t width,
                        uint32_t from, uint32_t cur);
uint64_t store_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *name);
int store_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name,
                       uint64_t value);
int store_now_count(struct ina_store *st, MDB_txn *txn);
int store_now_expired(const struct ina_store *st, const struct nent *e,
                      int64_t now, int all);
int store_now_drop(struct ina_store *st, MDB_txn *txn);
int store_expire_now(struct ina_store *st, MDB_txn *txn, int64_t now,
                     size_t limit, int all, uint64_t *removed);
int store_expire_width(struct ina_store *st, MDB_txn *txn, size_t wi,
                       uint32_t cur, size_t limit, uint64_t *removed);
void store_log(struct ina_store *st, int prio, const char *fmt, ...)
    INA_PRINTF(3, 4);
int store_add_u64(MDB_cursor *cur, const uint8_t *key, size_t klen,
                  int64_t delta, uint64_t *result);
int store_now_add(struct ina_store *st, MDB_cursor *nc, MDB_cursor *hc,
                  const uint8_t *pkey, size_t pklen, int64_t time,
                  const uint64_t *d);
int store_now_merge(struct ina_store *st, MDB_cursor *nc, MDB_cursor *hc,
                    const uint8_t *pkey, size_t pklen, const struct nent *add,
                    size_t n, int64_t time);
size_t store_now_pack(const struct nent *e, size_t n, uint8_t *out);
int store_now_unpack(uint32_t format, const MDB_val *v, struct nent *out);
int store_now_entry(uint32_t format, const MDB_val *v, uint32_t width,
                    struct nent *out);
int store_now_field(uint32_t format, const MDB_val *v, uint32_t width,
                    uint32_t win, size_t field, uint64_t *x);
int store_now_sum(uint32_t format, MDB_cursor *nc, uint32_t width,
                  uint32_t win, int family, unsigned gran, const uint8_t *lo,
                  const uint8_t *hi, size_t field, uint64_t *sum);
int store_add_counts(MDB_cursor *cur, const uint8_t *key, size_t klen,
                     const uint64_t *d);

void store_count_dropped(struct ina_store *st, uint64_t n);
int store_expire_due(struct ina_store *st, MDB_txn *txn, int64_t now);

/* cluster.c */

/* Cluster rows: the key of the local table (a counter key, or a session
 * key) followed by the node's local id (u16 BE), so the rows of a block
 * of every node are one contiguous range. */
#define CLUSTER_ID_LEN 2

int cluster_cursor(struct ina_store *st, MDB_txn *txn, int gauges,
                   MDB_cursor **cur);
int cluster_sum(MDB_cursor *cur, const uint8_t *pfx, size_t pfxlen,
                const uint8_t *lo, const uint8_t *hi, unsigned alen,
                size_t field, uint64_t *sum);
int cluster_expire(struct ina_store *st, MDB_txn *txn, int64_t now,
                   size_t limit, uint64_t *removed);
uint64_t cluster_data_pages(struct ina_store *st, MDB_txn *txn);

/* session.c */

int session_reap_txn(struct ina_store *st, MDB_txn *txn, uint64_t *reaped);
int session_apply(struct ina_store *st, MDB_txn *txn, const uint8_t *okey,
                  size_t klen, int64_t delta);
uint64_t session_proc_start(pid_t pid);
int session_alive(pid_t pid, uint64_t start);

/* batch.c */

struct batch;

/* A prefix in apply order: its key as big-endian words (zero-padded, the
 * length last), so that sorting compares integers in the order of the
 * counter keys, and its deltas, so that an apply reads nothing else. */
struct pitem {
    uint64_t k0, k1;
    uint64_t d[INA_NEVENTS];
    uint32_t k2;
};

/* The buckets of pitem_sort's partitions: 16 bits of the first word. */
#define PITEM_BUCKETS 65536u

void pitem_sort(struct pitem *a, size_t n, struct pitem *tmp, size_t *cnt);

int batch_record(struct ina_store *st, enum ina_event ev,
                 const struct ina_cidr *addr, uint64_t n);
int batch_flush(struct ina_store *st);
int batch_runway_step(struct ina_store *st);
int file_read_in(int fd, uint64_t off, size_t len);
int batch_due(struct ina_store *st);
int batch_pending(struct ina_store *st, MDB_txn *txn, const uint8_t *key,
                  size_t klen, int ev, uint64_t *n);
/* What batch_has_pending() asks about. */
#define BATCH_COUNTS 1u
#define BATCH_SESSIONS 2u
int batch_has_pending(struct ina_store *st, unsigned what);
int batch_session(struct ina_store *st, const uint8_t *okey, size_t oklen,
                  const uint8_t *gkey, const size_t *glen, size_t ng, int d);
int batch_session_pending(struct ina_store *st, MDB_txn *txn, int gauge,
                          const uint8_t *key, size_t klen, int64_t *d);
int batch_session_holds(struct ina_store *st, MDB_txn *txn, uint32_t pid,
                        uint64_t start);
void batch_forget(struct env *e);
int batch_retire(struct ina_store *st);
int batch_sweep_txn(struct ina_store *st, MDB_txn *txn, char ***gone,
                    size_t *ngone, uint64_t *replayed);

#endif /* INA_INTERNAL_H */
