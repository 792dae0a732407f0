/* store.c - open, record and query: the hot paths of libinaudit
 *
 * A handle (struct ina_store) is a private copy of the configuration, a
 * reference to the process's shared LMDB environment (env.c), one cached
 * read transaction with its cursors, the clock and the log sink.
 *
 * Counters live in the "counts" database, keyed width | window | family |
 * mask | address (see internal.h), valued with one uint64_t per event.
 * Monitors of equal width share their counters: the window of a width is
 * the same whatever the history, and the store keeps the longest history
 * any monitor of that width asks for.  A record is one write transaction
 * that adds to the current window's key at every granularity of every
 * width, so it is all in or all out whenever the process dies.  Expiry
 * happens in the same transactions: the first writer that sees a window
 * roll over deletes what no monitor retains, in bounded chunks.  A query
 * renews the cached read transaction, sums one key or one key range per
 * window, and resets it: no lock, no system call, no allocation.
 *
 * The map is a fixed ceiling.  When it fills (a soft threshold checked
 * about once a second, or LMDB's MDB_MAP_FULL), the store expires, then
 * stops counting the finest granularities (degraded mode, recorded in the
 * meta database so every process follows, logged once) and recovers when
 * usage falls.  A record never fails for lack of space.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "inaudit.h"
#include "internal.h"

/* Map use above which the store degrades, and below which it recovers,
 * in percent of the map. */
#define STORE_USE_HIGH 90
#define STORE_USE_LOW 70
/* Seconds a level reached by an overflow (MDB_MAP_FULL) is held before
 * map use may lift it. */
#define STORE_FULL_HOLD 60
/* Seconds between map-use checks and between reaping passes. */
#define STORE_USAGE_EVERY 1
#define STORE_REAP_EVERY 5
/* Counters deleted by expiry in one record transaction, at most. */
#define STORE_EXPIRE_CHUNK 2048
/* Windows before the current one that the index of recent windows
 * keeps: the sync agent's ordinary scan reads the current and the one
 * before, and its clock may be a window behind a writer's. */
#define RECENT_KEEP 2u
/* Times a transaction is retried after MAP_RESIZED, READERS_FULL. */
#define STORE_RETRIES 8

/* The process's open handles, flushed at exit(). */
static pthread_mutex_t store_list_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t store_exit_once = PTHREAD_ONCE_INIT;
static struct ina_store *store_list;

/* store_exit_flush - apply every handle's pending events at exit() */

static void
store_exit_flush(void)
{
    struct ina_store *st;

    pthread_mutex_lock(&store_list_lock);
    for (st = store_list; st != NULL; st = st->next) {
        if (st->pid != env_pid())
            continue;
        if (pthread_mutex_trylock(&st->lock) != 0)
            continue;
        if (env_check(st->env) == 0)
            (void) batch_retire(st);
        pthread_mutex_unlock(&st->lock);
    }
    pthread_mutex_unlock(&store_list_lock);
}

/* store_exit_init - register the exit flush once */

static void
store_exit_init(void)
{
    atexit(store_exit_flush);
}

/* store_default_clock - wall time in seconds
 *
 * The coarse clock (the last tick's time): every record reads it, and it
 * costs a third of CLOCK_REALTIME's 30 ns here. */

static int64_t
store_default_clock(void *arg)
{
    struct timespec ts;

    (void) arg;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t) ts.tv_sec;
}

/* store_default_log - operational events go to syslog */

static void
store_default_log(void *arg, int prio, const char *msg)
{
    (void) arg;
    syslog(prio, "inbound-audit: %s", msg);
}

/* store_log - report an operational event through the handle's sink */

void
store_log(struct ina_store *st, int prio, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (st->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    st->log(st->log_arg, prio, msg);
}

/* store_ckey - build a counter key; returns its length */

size_t
store_ckey(uint8_t *key, uint32_t width, uint32_t win, int family,
           unsigned plen, const uint8_t *addr)
{
    unsigned alen = cidr_addrlen(family);

    be_put(key, width, 4);
    be_put(key + 4, win, 4);
    key[8] = (uint8_t) family;
    key[9] = (uint8_t) plen;
    memcpy(key + CKEY_HDR, addr, alen);
    return CKEY_HDR + alen;
}

/* store_skey - build a session key; returns its length */

size_t
store_skey(uint8_t *key, const char *service, size_t slen, int family,
           unsigned plen, const uint8_t *addr)
{
    unsigned alen = cidr_addrlen(family);

    key[0] = (uint8_t) slen;
    memcpy(key + 1, service, slen);
    key[1 + slen] = (uint8_t) family;
    key[2 + slen] = (uint8_t) plen;
    memcpy(key + 3 + slen, addr, alen);
    return 3 + slen + alen;
}

/* store_prefixes - the configured granularities of a family */

size_t
store_prefixes(const struct ina_conf *conf, int family,
               const uint8_t **list)
{
    if (family == 4) {
        *list = conf->prefixes4;
        return conf->nprefixes4;
    }
    *list = conf->prefixes6;
    return conf->nprefixes6;
}

/* store_granularity - the counters that answer a block of mask plen
 *
 * The coarsest configured granularity not coarser than the block: equal
 * to plen when plen is configured (one key), otherwise the next finer one
 * (one key range). */

int
store_granularity(const struct ina_conf *conf, int family, unsigned plen,
                  unsigned *gran, char *errbuf, size_t errlen)
{
    const uint8_t *list;
    size_t n, i;

    n = store_prefixes(conf, family, &list);
    if (n == 0)
        return err_set(errbuf, errlen, INA_ENOFAMILY,
                       "no IPv%d granularity is configured (ipv%d_prefixes "
                       "is empty)", family, family);
    for (i = 0; i < n; i++)
        if (list[i] >= plen) {
            *gran = list[i];
            return 0;
        }
    return err_set(errbuf, errlen, INA_ETOOFINE,
                   "mask /%u is finer than the finest IPv%d granularity "
                   "/%u", plen, family, (unsigned) list[n - 1]);
}

/* store_meta_u64 - read a number from the meta database (0 if absent) */

uint64_t
store_meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *name)
{
    MDB_val k, v;
    uint64_t value = 0;

    k.mv_data = (void *) name;
    k.mv_size = strlen(name);
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == sizeof(value))
        memcpy(&value, v.mv_data, sizeof(value));
    return value;
}

/* store_meta_put_u64 - write a number into the meta database */

int
store_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *name,
                   uint64_t value)
{
    MDB_val k, v;

    k.mv_data = (void *) name;
    k.mv_size = strlen(name);
    v.mv_data = &value;
    v.mv_size = sizeof(value);
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* store_level - the degradation in force: finest granularities skipped */

int
store_level(struct ina_store *st, MDB_txn *txn)
{
    int level = (int) store_meta_u64(txn, st->env->meta, "degraded");

    return level > st->force_level ? level : st->force_level;
}

/* store_max_level - the deepest degradation: one granularity left */

static int
store_max_level(const struct ina_conf *conf)
{
    size_t n = conf->nprefixes4 > conf->nprefixes6 ? conf->nprefixes4
                                                   : conf->nprefixes6;

    return n > 0 ? (int) n - 1 : 0;
}

/* store_add_u64 - add delta to a uint64 value at key, clamping at 0
 *
 * Positions cur at key; updates in place when it exists (same size, so
 * LMDB overwrites on the copied page), inserts otherwise, deletes when the
 * result is 0.  *result, if not NULL, gets the new value. */

int
store_add_u64(MDB_cursor *cur, const uint8_t *key, size_t klen,
              int64_t delta, uint64_t *result)
{
    MDB_val k, v;
    uint64_t value = 0;
    int rc;

    k.mv_data = (void *) key;
    k.mv_size = klen;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    if (rc == 0 && v.mv_size == sizeof(value))
        memcpy(&value, v.mv_data, sizeof(value));
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    value = add_clamped(value, delta);
    if (result != NULL)
        *result = value;
    if (value == 0)
        return rc == 0 ? mdb_cursor_del(cur, 0) : 0;
    v.mv_data = &value;
    v.mv_size = sizeof(value);
    return mdb_cursor_put(cur, &k, &v, rc == 0 ? MDB_CURRENT : 0);
}

/* store_add_counts - add deltas to the counts of one counter key
 *
 * One search either way: MDB_NOOVERWRITE inserts a new key with the
 * deltas as its counts, or leaves the cursor on the existing key with
 * data pointing at its value (MDB_KEYEXIST); the sum then overwrites the
 * value in place (same size, on the page the put already copied).  Sums
 * saturate rather than wrap. */

int
store_add_counts(MDB_cursor *cur, const uint8_t *key, size_t klen,
                 const uint64_t *d)
{
    uint64_t val[INA_NEVENTS];
    MDB_val k, v;
    int rc, e;

    k.mv_data = (void *) key;
    k.mv_size = klen;
    memcpy(val, d, sizeof(val));
    v.mv_data = val;
    v.mv_size = CVAL_SIZE;
    if ((rc = mdb_cursor_put(cur, &k, &v, MDB_NOOVERWRITE)) != MDB_KEYEXIST)
        return rc;
    if (v.mv_size != CVAL_SIZE)
        return MDB_CORRUPTED;
    memcpy(val, v.mv_data, CVAL_SIZE);
    for (e = 0; e < INA_NEVENTS; e++)
        val[e] = sat_add(val[e], d[e]);
    v.mv_data = val;
    v.mv_size = CVAL_SIZE;
    return mdb_cursor_put(cur, &k, &v, MDB_CURRENT);
}

/* store_hist_add - add counts to the counts database's key of a width's
 * window for a prefix (a now key) */

static int
store_hist_add(MDB_cursor *hc, const struct nent *e, const uint8_t *pkey,
               size_t pklen)
{
    uint8_t key[CKEY_MAX];

    be_put(key, e->width, 4);
    be_put(key + 4, e->win, 4);
    memcpy(key + 8, pkey, pklen);
    return store_add_counts(hc, key, 8 + pklen, e->d);
}

/* store_recent_live - does the write transaction under way keep an
 * index of recent windows (the environment's, or one it opened)? */

static int
store_recent_live(const struct ina_store *st)
{
    return st->env->has_recent || st->recent_opened;
}

/* store_recent_of - is a now entry of the width the index of recent
 * windows keeps? */

static int
store_recent_of(const struct ina_store *st, const struct nent *e)
{
    return store_recent_live(st) && e->width == st->env->recent_width;
}

/* store_recent_covers - does the index of recent windows hold every
 * prefix of width's windows from .. cur (a reader's question: only an
 * index whose opening transaction committed counts)?  It keeps the last
 * RECENT_KEEP windows of a writer's clock, and a reader's may be one
 * window behind. */

int
store_recent_covers(const struct ina_store *st, uint32_t width,
                    uint32_t from, uint32_t cur)
{
    return __atomic_load_n(&st->env->has_recent, __ATOMIC_ACQUIRE)
           && st->env->recent_width == width
           && from + (RECENT_KEEP - 1) >= cur;
}

/* store_recent_note - enter a prefix's new now entry of the index's
 * width into the index of recent windows (an empty value under the
 * counts database's key of that window) */

static int
store_recent_note(struct ina_store *st, MDB_cursor *nc,
                  const struct nent *e, const uint8_t *pkey, size_t pklen)
{
    uint8_t key[CKEY_MAX];
    MDB_val k, v;

    be_put(key, e->width, 4);
    be_put(key + 4, e->win, 4);
    memcpy(key + 8, pkey, pklen);
    k.mv_data = key;
    k.mv_size = 8 + pklen;
    v.mv_data = NULL;
    v.mv_size = 0;
    return mdb_put(mdb_cursor_txn(nc), st->env->recent, &k, &v, 0);
}

/* store_now_add - add counts d, at clock time, to every window of the
 * handle's widths for one prefix
 *
 * One put in the now database (nc) when each width's entry is of time's
 * window or the prefix has none.  An entry of an older window is moved
 * to the counts database (hc) and replaced; an event older than its
 * width's entry (the clock stepped back) is added there instead.  The
 * entries of widths this handle does not count (another configuration
 * on the same store) are kept; a record holds NENT_MAX entries at most,
 * and a width that finds no room goes to the counts database.
 *
 * So the counts database holds a window of a prefix's width only where
 * the record's entry of that width is newer or missing (or the window
 * is from before an upgrade from format 1): what lets a point query of
 * the entry's own window read one database (store_point). */

int
store_now_add(struct ina_store *st, MDB_cursor *nc, MDB_cursor *hc,
              const uint8_t *pkey, size_t pklen, int64_t time,
              const uint64_t *d)
{
    struct nent add[NENT_MAX];
    size_t j;

    for (j = 0; j < st->nwidths; j++) {
        add[j].width = st->widths[j].width;
        add[j].win = (uint32_t) (time / st->widths[j].width);
        memcpy(add[j].d, d, sizeof(add[j].d));
    }
    return store_now_merge(st, nc, hc, pkey, pklen, add, st->nwidths, time);
}

/* store_now_merge - add n entries (ascending by width, each with its
 * window) to a prefix's now record, as store_now_add does; now is the
 * clock, for what is expired */

int
store_now_merge(struct ina_store *st, MDB_cursor *nc, MDB_cursor *hc,
                const uint8_t *pkey, size_t pklen, const struct nent *add,
                size_t n, int64_t time)
{
    struct nent old[NENT_MAX], out[NENT_MAX];
    const struct nent *noted = NULL;
    uint8_t buf[NVAL_MAX];
    size_t no, i, j, m = 0, e, olen;
    MDB_val k, v;
    int rc, got;

    k.mv_data = (void *) pkey;
    k.mv_size = pklen;
    v.mv_data = buf;
    v.mv_size = store_now_pack(add, n, buf);
    if ((rc = mdb_cursor_put(nc, &k, &v, MDB_NOOVERWRITE)) != MDB_KEYEXIST) {
        if (rc != 0)
            return rc;
        st->now_delta += (int64_t) n;
        for (j = 0; j < n; j++)
            if (store_recent_of(st, &add[j]))
                return store_recent_note(st, nc, &add[j], pkey, pklen);
        return 0;
    }
    if ((got = store_now_unpack(st->env->format, &v, old)) <= 0)
        return MDB_CORRUPTED;
    no = (size_t) got;
    olen = v.mv_size;
    /* Both ascend by width. */
    for (i = j = 0; i < no || j < n;) {
        if (j == n || (i < no && old[i].width < add[j].width)) {
            /* Another configuration's width: kept. */
            out[m++] = old[i++];
            continue;
        }
        if (i == no || add[j].width < old[i].width) {
            /* A width the record has no entry of yet: one if there is
             * room beside the entries still to come, else the counts go
             * to the counts database (where, with no entry of the width,
             * every query looks). */
            if (m + (no - i) < NENT_MAX) {
                if (store_recent_of(st, &add[j]))
                    noted = &add[j];
                out[m++] = add[j];
            } else if ((rc = store_hist_add(hc, &add[j], pkey, pklen)) != 0)
                return rc;
            j++;
            continue;
        }
        if (old[i].win == add[j].win) {
            out[m] = old[i];
            for (e = 0; e < INA_NEVENTS; e++)
                out[m].d[e] = sat_add(out[m].d[e], add[j].d[e]);
            m++;
        } else if (old[i].win < add[j].win) {
            /* A window no monitor keeps any more is not moved. */
            if (!store_now_expired(st, &old[i], time, 0)
                && (rc = store_hist_add(hc, &old[i], pkey, pklen)) != 0)
                return rc;
            if (store_recent_of(st, &add[j]))
                noted = &add[j];
            out[m++] = add[j];
        } else {
            if ((rc = store_hist_add(hc, &add[j], pkey, pklen)) != 0)
                return rc;
            out[m++] = old[i];
        }
        i++;
        j++;
    }
    k.mv_data = (void *) pkey;
    k.mv_size = pklen;
    v.mv_data = buf;
    v.mv_size = store_now_pack(out, m, buf);
    st->now_delta += (int64_t) m - (int64_t) no;
    /* MDB_CURRENT only in place; a value of another size is put by key,
     * as everywhere the now database's values change size (the puts of
     * store_expire_now and clear_take_now in admin.c say why). */
    if ((rc = mdb_cursor_put(nc, &k, &v, v.mv_size == olen ? MDB_CURRENT
                                                            : 0)) != 0)
        return rc;
    /* The index after the record's last put: nothing between the
     * first put and the second may move nc. */
    return noted != NULL ? store_recent_note(st, nc, noted, pkey, pklen)
                         : 0;
}

/* now_varint_long - read a LEB128 varint of at most 64 bits at *p,
 * before end: 0, or -1 if it runs past end or past 64 bits */

static int
now_varint_long(const uint8_t **p, const uint8_t *end, uint64_t *x)
{
    const uint8_t *q = *p;
    unsigned shift;
    uint8_t b;

    *x = 0;
    for (shift = 0; q < end && shift <= 63; shift += 7) {
        b = *q++;
        if (shift == 63 && b > 1)
            return -1;
        *x |= (uint64_t) (b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            *p = q;
            return 0;
        }
    }
    return -1;
}

/* now_varint - the same, inline for the one byte most counts take */

static inline int
now_varint(const uint8_t **p, const uint8_t *end, uint64_t *x)
{
    if (*p < end && **p < 0x80) {
        *x = *(*p)++;
        return 0;
    }
    return now_varint_long(p, end, x);
}

/* now_entry_at - read the packed entry at *p (format 4), before end,
 * into *out and step over it: 0, or -1 if it is malformed */

static int
now_entry_at(const uint8_t **p, const uint8_t *end, struct nent *out)
{
    const uint8_t *q = *p;
    unsigned mask, e;

    if (end - q < 9 || (mask = q[8]) >> INA_NEVENTS)
        return -1;
    memcpy(&out->width, q, 4);
    memcpy(&out->win, q + 4, 4);
    q += 9;
    for (e = 0; e < INA_NEVENTS; e++) {
        out->d[e] = 0;
        if ((mask & 1u << e) && now_varint(&q, end, &out->d[e]) != 0)
            return -1;
    }
    *p = q;
    return 0;
}

/* now_find - where the packed entry of a width begins in a value of
 * format 4, or NULL: none, or the value is malformed before it (the
 * widths ascend, so it is found on the way) */

static const uint8_t *
now_find(const MDB_val *v, uint32_t width)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    struct nent before;
    uint32_t w;

    while (end - p >= 9) {
        memcpy(&w, p, sizeof(w));
        if (w == width)
            return p;
        if (w > width || now_entry_at(&p, end, &before) != 0)
            return NULL;
    }
    return NULL;
}

/* store_now_pack - pack n entries (ascending by width) as format 4's now
 * value into out (NVAL_MAX bytes); returns its length */

size_t
store_now_pack(const struct nent *e, size_t n, uint8_t *out)
{
    uint8_t *p = out, *mask;
    uint64_t x;
    size_t i, j;

    for (i = 0; i < n; i++) {
        memcpy(p, &e[i].width, 4);
        memcpy(p + 4, &e[i].win, 4);
        mask = p + 8;
        *mask = 0;
        p += 9;
        for (j = 0; j < INA_NEVENTS; j++) {
            if ((x = e[i].d[j]) == 0)
                continue;
            *mask |= (uint8_t) (1u << j);
            for (; x >= 0x80; x >>= 7)
                *p++ = (uint8_t) (x | 0x80);
            *p++ = (uint8_t) x;
        }
    }
    return (size_t) (p - out);
}

/* store_now_unpack - the entries of a now value of a store's format into
 * out (NENT_MAX of them): how many, or -1 if the value is not one (a
 * length no number of entries has, a varint that runs on, an unknown
 * event, widths out of order, too many entries)
 *
 * Copied: LMDB aligns values to two bytes only. */

int
store_now_unpack(uint32_t format, const MDB_val *v, struct nent *out)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    int n, i;

    if (format < NOW_PACKED_FORMAT) {
        if (v->mv_size % sizeof(*out) != 0
            || v->mv_size > NENT_MAX * sizeof(*out))
            return -1;
        memcpy(out, p, v->mv_size);
        n = (int) (v->mv_size / sizeof(*out));
        for (i = 1; i < n; i++)
            if (out[i].width <= out[i - 1].width)
                return -1;
        return n;
    }
    for (n = 0; p < end; n++)
        if (n == NENT_MAX || now_entry_at(&p, end, &out[n]) != 0
            || (n > 0 && out[n].width <= out[n - 1].width))
            return -1;
    return n;
}

/* store_now_entry - copy a now value's entry of a width to *out: 1, or
 * 0 if it has none (nor has a value malformed before that entry)
 *
 * Copied: LMDB aligns values to two bytes only. */

int
store_now_entry(uint32_t format, const MDB_val *v, uint32_t width,
                struct nent *out)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    size_t n = v->mv_size / sizeof(*out), i;
    uint32_t w;

    if (format >= NOW_PACKED_FORMAT)
        return (p = now_find(v, width)) != NULL
               && now_entry_at(&p, end, out) == 0;
    if (v->mv_size % sizeof(*out) != 0)
        return 0;
    for (i = 0; i < n; i++) {
        memcpy(&w, p + i * sizeof(*out) + offsetof(struct nent, width),
               sizeof(w));
        if (w == width) {
            memcpy(out, p + i * sizeof(*out), sizeof(*out));
            return 1;
        }
    }
    return 0;
}

/* store_now_field - one count of a now value's entry of a width, when
 * that entry is of window win: 1 with *x set, or 0 (no such entry, nor
 * in a value malformed before that count)
 *
 * What a scan over many prefixes asks of each (store_now_sum, ina_top),
 * without decoding the rest of the entry. */

int
store_now_field(uint32_t format, const MDB_val *v, uint32_t width,
                uint32_t win, size_t field, uint64_t *x)
{
    const uint8_t *p = v->mv_data, *end = p + v->mv_size;
    struct nent e;
    unsigned mask;
    uint64_t skip;
    uint32_t w;
    size_t i;

    *x = 0;
    if (format < NOW_PACKED_FORMAT) {
        if (!store_now_entry(format, v, width, &e) || e.win != win)
            return 0;
        *x = e.d[field];
        return 1;
    }
    /* Of the entry only the window and the one count are read. */
    if ((p = now_find(v, width)) == NULL)
        return 0;
    memcpy(&w, p + 4, sizeof(w));
    if (w != win || (mask = p[8]) >> INA_NEVENTS)
        return 0;
    p += 9;
    for (i = 0; i < field; i++)
        if ((mask & 1u << i) && now_varint(&p, end, &skip) != 0)
            return 0;
    return !(mask & 1u << field) || now_varint(&p, end, x) == 0;
}

/* store_now_sum - add the now entries of one width's window win over
 * the block lo .. hi at granularity gran to *sum (field: the event) */

int
store_now_sum(uint32_t format, MDB_cursor *nc, uint32_t width, uint32_t win,
              int family, unsigned gran, const uint8_t *lo,
              const uint8_t *hi, size_t field, uint64_t *sum)
{
    uint8_t key[NKEY_MAX];
    unsigned alen = cidr_addrlen(family);
    uint64_t x;
    MDB_val k, v;
    int rc;

    key[0] = (uint8_t) family;
    key[1] = (uint8_t) gran;
    memcpy(key + 2, lo, alen);
    k.mv_data = key;
    k.mv_size = 2 + alen;
    rc = mdb_cursor_get(nc, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != 2 + alen || memcmp(k.mv_data, key, 2) != 0
            || memcmp((uint8_t *) k.mv_data + 2, hi, alen) > 0)
            break;
        if (store_now_field(format, &v, width, win, field, &x))
            *sum = sat_add(*sum, x);
        rc = mdb_cursor_get(nc, &k, &v, MDB_NEXT);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* store_enter - take the handle for one call
 *
 * In a child after fork() the handle forgets the parent's cached
 * transaction (never aborting it), learns its own pid and start time,
 * and reopens the environment. */

int
store_enter(struct ina_store *st)
{
    int rc;
    size_t i;

    if (st->pid != env_pid()) {
        /* The parent's cached transaction and cursors are plain heap
         * blocks here: free them without an LMDB call, since aborting
         * would release the parent's reader slot. */
        for (i = 0; i < 3; i++) {
            free(st->rcur[i]);
            st->rcur[i] = NULL;
        }
        free(st->rtxn);
        st->rtxn = NULL;
        st->pt_txn = 0;
        st->pend_txn = 0;
        pthread_mutex_init(&st->lock, NULL);
        st->pid = env_pid();
        st->pstart = session_proc_start(st->pid);
        st->next_reap = 0;
        for (i = 0; i < st->nwidths; i++)
            st->widths[i].clean = 0;
    }
    pthread_mutex_lock(&st->lock);
    if ((rc = env_check(st->env)) != 0)
        pthread_mutex_unlock(&st->lock);
    return rc;
}

/* store_leave - release the handle */

void
store_leave(struct ina_store *st)
{
    pthread_mutex_unlock(&st->lock);
}

/* store_drop_rtxn - abort the cached read transaction (this process's) */

static void
store_drop_rtxn(struct ina_store *st)
{
    int i;

    for (i = 0; i < 3; i++) {
        if (st->rcur[i] != NULL)
            mdb_cursor_close(st->rcur[i]);
        st->rcur[i] = NULL;
    }
    if (st->rtxn != NULL)
        mdb_txn_abort(st->rtxn);
    st->rtxn = NULL;
    st->pt_txn = 0;
    st->pend_txn = 0;
}

/* store_read_format - INA_EVERSION when a store a read-only handle
 * opened at an older format has been upgraded since, by another
 * process: this handle's view of where its records are is wrong, and
 * only a new handle reads it right.  Costs nothing at the current
 * format. */

static int
store_read_format(struct ina_store *st, MDB_txn *txn)
{
    uint32_t version;

    if (st->env->format == INA_FORMAT_VERSION
        || (env_get_format(txn, st->env->meta, &version) == 0
            && version == st->env->format))
        return 0;
    mdb_txn_reset(txn);
    return INA_EVERSION;
}

/* store_read_begin - a read snapshot, from the cached transaction
 *
 * Renewing a reset NOTLS transaction costs a few stores into the
 * process's own reader slot.  MAP_RESIZED (an operator raised the
 * ceiling) adopts the new size; READERS_FULL clears stale slots; both
 * retry a bounded number of times. */

int
store_read_begin(struct ina_store *st, MDB_txn **txn)
{
    MDB_env *env = st->env->env;
    int rc, tries, dead;

    for (tries = 0; tries < STORE_RETRIES; tries++) {
        if (st->rtxn != NULL) {
            rc = mdb_txn_renew(st->rtxn);
            if (rc == 0) {
                st->rlive = 0;
                *txn = st->rtxn;
                return store_read_format(st, st->rtxn);
            }
            store_drop_rtxn(st);
        } else {
            rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &st->rtxn);
            if (rc == 0) {
                if ((rc = mdb_cursor_open(st->rtxn, st->env->counts,
                                          &st->rcur[STORE_RCOUNTS])) == 0
                    && (rc = mdb_cursor_open(st->rtxn, st->env->sessions,
                                             &st->rcur[STORE_RSESSIONS]))
                           == 0
                    && (!st->env->has_now
                        || (rc = mdb_cursor_open(st->rtxn, st->env->now,
                                                 &st->rcur[STORE_RNOW]))
                               == 0)) {
                    st->rlive = STORE_RALL;
                    *txn = st->rtxn;
                    return store_read_format(st, st->rtxn);
                }
                store_drop_rtxn(st);
            } else {
                st->rtxn = NULL;
            }
        }
        if (rc == MDB_MAP_RESIZED)
            mdb_env_set_mapsize(env, 0);
        else if (rc == MDB_READERS_FULL)
            mdb_reader_check(env, &dead);
        else
            return rc;
    }
    return rc;
}

/* store_read_sessions - the sessions cursor of the current snapshot
 *
 * Renewed on first use only: renewing a cursor of a named database looks
 * its record up in the main database (LMDB marks every named database
 * stale in a renewed transaction), a lookup a counter query does not
 * need. */

int
store_read_sessions(struct ina_store *st, MDB_cursor **cur)
{
    return store_read_cursor(st, STORE_RSESSIONS, cur);
}

/* store_read_cursor - a cursor of the current snapshot (which: one of
 * STORE_RCOUNTS ...), renewed on its first use; *cur is NULL for
 * STORE_RNOW in a store without a now database */

int
store_read_cursor(struct ina_store *st, int which, MDB_cursor **cur)
{
    int rc;

    *cur = st->rcur[which];
    if (*cur == NULL || (st->rlive & (1u << which)))
        return 0;
    if ((rc = mdb_cursor_renew(st->rtxn, *cur)) != 0)
        return rc;
    st->rlive |= 1u << which;
    return 0;
}

/* store_read_end - release the snapshot, keeping the handles */

void
store_read_end(struct ina_store *st)
{
    if (st->rtxn != NULL)
        mdb_txn_reset(st->rtxn);
}

/* store_dbi_pages - branch, leaf and overflow pages of some databases */

uint64_t
store_dbi_pages(MDB_txn *txn, const MDB_dbi *dbis, size_t n)
{
    MDB_stat s;
    uint64_t pages = 0;
    size_t i;

    for (i = 0; i < n; i++)
        if (mdb_stat(txn, dbis[i], &s) == 0)
            pages += s.ms_branch_pages + s.ms_leaf_pages
                     + s.ms_overflow_pages;
    return pages;
}

/* store_data_pages - pages that hold the data of a snapshot
 *
 * The sum of the branch, leaf and overflow pages of every tree: the main
 * database, the freelist and our named databases.  This is the store's
 * real size.  The file's high-water mark is not: a reader stalled for a
 * moment pins every page freed meanwhile, and the file grows by that
 * much without any more data (lmdb.md 4.3), which must not cost the
 * store its precision.  Such growth meets MDB_MAP_FULL instead. */

uint64_t
store_data_pages(struct ina_store *st, MDB_txn *txn)
{
    MDB_dbi dbis[8];
    size_t n = 6;

    dbis[0] = 0;                    /* the freelist */
    dbis[1] = 1;                    /* the main database */
    dbis[2] = st->env->meta;
    dbis[3] = st->env->counts;
    dbis[4] = st->env->sessions;
    dbis[5] = st->env->owners;
    if (st->env->has_now && st->env->now != dbis[1])
        dbis[n++] = st->env->now;   /* format 2's, read-only */
    if (st->env->has_recent)
        dbis[n++] = st->env->recent;
    return store_dbi_pages(txn, dbis, n);
}

/* store_check_usage - move the degradation level with map use
 *
 * Runs inside a write transaction at most once a second per process. */

static int
store_check_usage(struct ina_store *st, MDB_txn *txn)
{
    MDB_envinfo info;
    MDB_stat s;
    uint64_t used, mapsize;
    int level, rc = 0;

    mdb_env_info(st->env->env, &info);
    mdb_env_stat(st->env->env, &s);
    mapsize = info.me_mapsize;
    used = store_data_pages(st, txn) * s.ms_psize;
    level = (int) store_meta_u64(txn, st->env->meta, "degraded");
    if (used * 100 > mapsize * STORE_USE_HIGH
        && level < store_max_level(st->conf)) {
        level++;
        rc = store_meta_put_u64(txn, st->env->meta, "degraded",
                                (uint64_t) level);
    } else if (used * 100 < mapsize * STORE_USE_LOW && level > 0
               && st->clock(st->clock_arg)
                      >= (int64_t) store_meta_u64(txn, st->env->meta,
                                                  "full_at")
                             + STORE_FULL_HOLD) {
        level--;
        rc = store_meta_put_u64(txn, st->env->meta, "degraded",
                                (uint64_t) level);
    }
    if (st->force_level > level)
        st->force_level = level;
    return rc;
}

/* store_log_level - log a change of degradation once per process */

static void
store_log_level(struct ina_store *st, int level)
{
    if (level == st->logged_level)
        return;
    if (level > st->logged_level)
        store_log(st, INA_LOG_WARNING,
                  "store %s: map %s full: degraded to level %d (the %d "
                  "finest granularities are not counted)",
                  st->conf->store, level > 0 ? "nearly" : "", level, level);
    else
        store_log(st, INA_LOG_NOTICE,
                  "store %s: map use fell: degradation now level %d%s",
                  st->conf->store, level,
                  level == 0 ? " (full precision restored)" : "");
    st->logged_level = level;
}

/* expire_keys - delete the keys of width W (counter key layout) whose
 * window is in from .. to - 1 (to 0: every window from from on, so a
 * caller with nothing before a cutoff of 0 does not call), at most
 * limit - *done of them; *done counts them */

static int
expire_keys(MDB_cursor *c, uint32_t width, uint32_t from, uint32_t to,
            size_t limit, size_t *done)
{
    uint8_t probe[8];
    MDB_val k, v;
    int rc;

    be_put(probe, width, 4);
    be_put(probe + 4, from, 4);
    k.mv_data = probe;
    k.mv_size = sizeof(probe);
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && *done < limit && k.mv_size > 8
           && (uint32_t) be_get(k.mv_data, 4) == width
           && (to == 0
               || (uint32_t) be_get((uint8_t *) k.mv_data + 4, 4) < to)) {
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            return rc;
        (*done)++;
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
    }
    return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
}

/* store_expire_width - delete windows of one width no monitor keeps
 *
 * Keys of width W are ordered by window, so the expired windows (before
 * cur - keep) are the first keys of W and windows from the future (the
 * clock stepped back) are the last.  At most limit keys are deleted;
 * returns 0 and sets the width clean when nothing is left to do,
 * MDB_INCOMPATIBLE (used as "more to do") when the limit stopped it. */

int
store_expire_width(struct ina_store *st, MDB_txn *txn, size_t wi,
                   uint32_t cur, size_t limit, uint64_t *removed)
{
    struct store_width *w = &st->widths[wi];
    uint32_t cutoff = cur > w->keep ? cur - w->keep : 0;
    MDB_cursor *c;
    size_t done = 0;
    int rc;

    if (w->clean && w->clean_win == cur)
        return 0;
    if ((rc = mdb_cursor_open(txn, st->env->counts, &c)) != 0)
        return rc;
    /* The old end, then the future end. */
    rc = cutoff > 0 ? expire_keys(c, w->width, 0, cutoff, limit, &done) : 0;
    if (rc == 0 && cur < UINT32_MAX)
        rc = expire_keys(c, w->width, cur + 1, 0, limit, &done);
    if (rc == 0 && done < limit) {
        w->clean = 1;
        w->clean_win = cur;
    } else if (rc == 0) {
        rc = MDB_INCOMPATIBLE;
    }
    mdb_cursor_close(c);
    if (removed != NULL)
        *removed += done;
    return rc;
}

/* store_expire_recent - clear the index of recent windows of the windows
 * before the last RECENT_KEEP and of those after the next (the clock
 * stepped back), at most limit keys; 0 when done, MDB_INCOMPATIBLE when
 * the limit stopped it.  The window after the current one stays: another
 * process's clock may be a little ahead at a boundary. */

static int
store_expire_recent(struct ina_store *st, MDB_txn *txn, int64_t now,
                    size_t limit)
{
    struct env *e = st->env;
    uint32_t cur;
    MDB_cursor *c;
    size_t done = 0;
    int rc;

    if (!store_recent_live(st) || now < 0)
        return 0;
    cur = (uint32_t) (now / e->recent_width);
    if (st->recent_clean == cur)
        return 0;
    if ((rc = mdb_cursor_open(txn, e->recent, &c)) != 0)
        return rc;
    rc = cur > RECENT_KEEP ? expire_keys(c, e->recent_width, 0,
                                         cur - RECENT_KEEP, limit, &done)
                           : 0;
    if (rc == 0 && cur < UINT32_MAX - 1)
        rc = expire_keys(c, e->recent_width, cur + 2, 0, limit, &done);
    mdb_cursor_close(c);
    if (rc == 0 && done < limit)
        st->recent_clean = cur;
    else if (rc == 0)
        rc = MDB_INCOMPATIBLE;
    return rc;
}

/* store_now_expired - is a now entry of a window no monitor of this
 * handle keeps (or from the future: the clock stepped back)?  Entries of
 * widths the handle does not count are kept unless all (an expiry asked
 * for by the operator: ina_expire). */

int
store_now_expired(const struct ina_store *st, const struct nent *e,
                  int64_t now, int all)
{
    uint32_t cur;
    size_t i;

    for (i = 0; i < st->nwidths; i++)
        if (st->widths[i].width == e->width) {
            cur = (uint32_t) (now / e->width);
            return e->win > cur
                   || (cur > st->widths[i].keep
                       && e->win < cur - st->widths[i].keep);
        }
    return all;
}

/* store_now_drop - delete every now record (clear --all), one by one:
 * mdb_drop would empty the main database, the named databases' records
 * with it */

int
store_now_drop(struct ina_store *st, MDB_txn *txn)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_cursor_open(txn, st->env->now, &c)) != 0)
        return rc;
    for (rc = now_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = now_get(c, &k, &v, MDB_GET_CURRENT))
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
}

/* store_expire_now - drop expired entries from the now database
 *
 * A sweep of the whole database in key order, started when a window of
 * a width rolled over since the last one, and run a chunk at a time (at
 * most limit keys changed, four times as many read): an entry no monitor
 * keeps is removed, and a key left with none is deleted.  Queries never
 * ask for such windows; the sweep gives their space back.  Returns 0 when
 * the sweep is done or not due, MDB_INCOMPATIBLE when it goes on. */

int
store_expire_now(struct ina_store *st, MDB_txn *txn, int64_t now,
                 size_t limit, int all, uint64_t *removed)
{
    struct nent ent[NENT_MAX];
    uint8_t kbuf[NKEY_MAX], vbuf[NVAL_MAX];
    uint64_t mark = 0;
    size_t i, n, m, done = 0, seen = 0;
    MDB_cursor *c;
    MDB_val k, v;
    int rc, got;

    for (i = 0; i < st->nwidths; i++)
        mark += (uint64_t) (now / st->widths[i].width);
    if (!st->now_sweeping && mark == st->now_swept && !all)
        return 0;
    if (!st->now_sweeping || (all && !st->now_sweep_all)) {
        st->now_sweeping = 1;
        st->now_sweep_all = all;
        st->now_swept = mark;
        st->now_poslen = 0;
    }
    if ((rc = mdb_cursor_open(txn, st->env->now, &c)) != 0)
        return rc;
    k.mv_data = st->now_pos;
    k.mv_size = st->now_poslen;
    rc = st->now_poslen == 0 ? now_get(c, &k, &v, MDB_FIRST)
                             : now_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && done < limit && seen < 4 * limit) {
        seen++;
        if ((got = store_now_unpack(st->env->format, &v, ent)) < 0) {
            rc = now_get(c, &k, &v, MDB_NEXT);
            continue;
        }
        n = (size_t) got;
        for (i = m = 0; i < n; i++)
            if (!store_now_expired(st, &ent[i], now, all))
                ent[m++] = ent[i];
        if (m == n) {
            rc = now_get(c, &k, &v, MDB_NEXT);
            continue;
        }
        done += n - m;
        if (m == 0) {
            if ((rc = mdb_cursor_del(c, 0)) != 0)
                break;
            rc = now_get(c, &k, &v, MDB_GET_CURRENT);
            continue;
        }
        /* A put of another size moves the page's nodes: the key is
         * given from a copy, not from the page, and by the transaction,
         * not by this cursor, which has deleted before (clear_take_now
         * in admin.c: such a put left a stale copy of another key). */
        if (k.mv_size > sizeof(kbuf)) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(kbuf, k.mv_data, k.mv_size);
        k.mv_data = kbuf;
        v.mv_data = vbuf;
        v.mv_size = store_now_pack(ent, m, vbuf);
        if ((rc = mdb_put(txn, st->env->now, &k, &v, 0)) != 0)
            break;
        /* Then on from the key again, the cursor placed anew. */
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
        if (rc == 0)
            rc = now_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && k.mv_size <= sizeof(st->now_pos)) {
        /* Stopped by the limit: go on from this key next time. */
        memcpy(st->now_pos, k.mv_data, k.mv_size);
        st->now_poslen = k.mv_size;
        rc = MDB_INCOMPATIBLE;
    } else if (rc == MDB_NOTFOUND || rc == EINVAL) {
        st->now_sweeping = 0;
        st->now_sweep_all = 0;
        rc = 0;
    }
    mdb_cursor_close(c);
    st->now_delta -= (int64_t) done;
    if (removed != NULL)
        *removed += done;
    return rc;
}

/* store_relieve - make room after MDB_MAP_FULL
 *
 * Clears stale readers, expires everything expirable, and raises the
 * degradation level by one, in the store if it can still be written,
 * else in this process.  Returns 0 if something changed, MDB_MAP_FULL if
 * nothing more can be done. */

static int
store_relieve(struct ina_store *st, int level_seen)
{
    MDB_env *env = st->env->env;
    MDB_txn *txn;
    uint64_t removed = 0;
    int dead, rc, level;
    uint32_t cur;
    size_t i;
    int64_t now = st->clock(st->clock_arg);

    mdb_reader_check(env, &dead);
    if (mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        for (i = 0; i < st->nwidths; i++) {
            st->widths[i].clean = 0;
            cur = (uint32_t) (now / st->widths[i].width);
            rc = store_expire_width(st, txn, i, cur, SIZE_MAX, &removed);
            if (rc != 0)
                break;
        }
        st->now_sweeping = 0;
        st->now_sweep_all = 0;
        st->now_delta = 0;
        if (rc == 0)
            (void) store_expire_now(st, txn, now, SIZE_MAX / 4, 0,
                                    &removed);
        if (store_now_count(st, txn) != 0 || mdb_txn_commit(txn) != 0)
            removed = 0;
    }
    /* Space came back: try again at the same precision. */
    if (removed > 0)
        return 0;
    level = level_seen + 1;
    if (level > store_max_level(st->conf))
        return MDB_MAP_FULL;
    if (mdb_txn_begin(env, NULL, 0, &txn) == 0) {
        /* The time of the overflow holds the level for a while: a map
         * can fill with pages a large transaction copies while the data
         * itself stays under the recovery threshold.  A commit frees the
         * transaction even when it fails. */
        if (store_meta_put_u64(txn, st->env->meta, "degraded",
                               (uint64_t) level) != 0
            || store_meta_put_u64(txn, st->env->meta, "full_at",
                                  (uint64_t) now) != 0)
            mdb_txn_abort(txn);
        else if (mdb_txn_commit(txn) == 0) {
            store_log_level(st, level);
            return 0;
        }
    }
    st->force_level = level;
    store_log_level(st, level);
    return 0;
}

/* store_unlink_gone - remove the journals a committed sweep applied */

static void
store_unlink_gone(struct ina_store *st, int committed)
{
    size_t i;

    for (i = 0; i < st->ngone; i++) {
        if (committed)
            unlink(st->gone[i]);
        free(st->gone[i]);
    }
    free(st->gone);
    st->gone = NULL;
    st->ngone = 0;
}

/* store_maintain - periodic work piggybacked on write transactions */

static int
store_maintain(struct ina_store *st, MDB_txn *txn, int64_t now)
{
    uint64_t reaped = 0;
    int rc;

    if (now >= st->next_usage) {
        st->next_usage = now + STORE_USAGE_EVERY;
        if ((rc = store_check_usage(st, txn)) != 0)
            return rc;
    }
    if (now >= st->next_reap) {
        uint64_t replayed = 0;
        int dead;

        st->next_reap = now + STORE_REAP_EVERY;
        /* Reader slots of dead processes pin the pages freed since their
         * snapshot: clear them here too, not only at open (one fcntl per
         * distinct pid). */
        mdb_reader_check(st->env->env, &dead);
        if ((rc = session_reap_txn(st, txn, &reaped)) != 0)
            return rc;
        /* Journals of dead processes: what no flush applied is applied
         * here, their files removed after the commit (after any that
         * this transaction's flush listed). */
        if ((rc = batch_sweep_txn(st, txn, &st->gone, &st->ngone,
                                  &replayed)) != 0)
            return rc;
        if (replayed > 0)
            store_log(st, INA_LOG_NOTICE,
                      "store %s: applied %llu event(s) journaled by dead "
                      "processes", st->conf->store,
                      (unsigned long long) replayed);
    }
    return 0;
}

/* store_now_count - add the transaction's change of the now database's
 * entries (st->now_delta) to its count in the meta database */

int
store_now_count(struct ina_store *st, MDB_txn *txn)
{
    uint64_t n;
    int64_t d = st->now_delta;

    st->now_delta = 0;
    if (d == 0)
        return 0;
    n = store_meta_u64(txn, st->env->meta, "now_entries");
    n = d < 0 && (uint64_t) -d > n ? 0 : n + (uint64_t) d;
    return store_meta_put_u64(txn, st->env->meta, "now_entries", n);
}

/* store_recent_check - at the start of a write transaction: open the
 * index of recent windows if another process has made it since this one
 * opened the store, so that every writer keeps it */

static int
store_recent_check(struct ina_store *st, MDB_txn *txn)
{
    int rc;

    if (store_recent_live(st) || !st->env->has_now)
        return 0;
    rc = env_open_recent(st->env, txn, 0);
    if (rc == 0)
        st->recent_opened = 1;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* recent_create_txn - make the index of recent windows for the handle's
 * narrowest width, from every now entry of that width */

static int
recent_create_txn(struct ina_store *st, MDB_txn *txn, void *arg)
{
    struct nent e;
    MDB_cursor *nc;
    MDB_val k, v;
    int rc;

    (void) arg;
    if (store_recent_live(st) || !st->env->has_now || st->nwidths == 0)
        return 0;
    if ((rc = env_open_recent(st->env, txn, st->widths[0].width)) != 0)
        return rc;
    st->recent_opened = 1;
    if ((rc = mdb_cursor_open(txn, st->env->now, &nc)) != 0)
        return rc;
    for (rc = now_get(nc, &k, &v, MDB_FIRST); rc == 0;
         rc = now_get(nc, &k, &v, MDB_NEXT))
        if (store_now_entry(st->env->format, &v, st->widths[0].width, &e)
            && (rc = store_recent_note(st, nc, &e, k.mv_data, k.mv_size))
                   != 0)
            break;
    mdb_cursor_close(nc);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* store_write - run fn in one write transaction, with the error ladder
 *
 * MAP_RESIZED adopts the persisted size and retries; MAP_FULL relieves
 * the map (expiry, then degradation) and retries until nothing more can
 * be given up.  The caller holds the handle. */

int
store_write(struct ina_store *st, store_txn_fn fn, void *arg)
{
    MDB_env *env = st->env->env;
    MDB_txn *txn;
    int rc, tries, level = 0, dead;
    size_t i;

    if (st->flags & INA_STORE_RDONLY)
        return INA_ERDONLY;
    pthread_mutex_lock(&st->env->wlock);
    for (tries = 0;; tries++) {
        rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc == 0) {
            level = store_level(st, txn);
            st->now_delta = 0;
            rc = store_recent_check(st, txn);
            if (rc == 0)
                rc = fn(st, txn, arg);
            if (rc == 0)
                rc = store_maintain(st, txn, st->clock(st->clock_arg));
            if (rc == 0)
                rc = store_now_count(st, txn);
            if (rc == 0) {
                rc = mdb_txn_commit(txn);
            } else {
                mdb_txn_abort(txn);
            }
            if (rc == 0) {
                /* An index opened in it is the environment's now. */
                if (st->recent_opened)
                    __atomic_store_n(&st->env->has_recent, 1,
                                     __ATOMIC_RELEASE);
                st->recent_opened = 0;
                store_log_level(st, level);
                store_unlink_gone(st, 1);
                break;
            }
            store_unlink_gone(st, 0);
            /* Whatever the failed transaction believed it expired is
             * undone, and an index it opened is closed with it. */
            for (i = 0; i < st->nwidths; i++)
                st->widths[i].clean = 0;
            st->now_sweeping = 0;
            st->now_swept = 0;
            st->recent_clean = 0;
            st->recent_opened = 0;
        }
        if (tries >= STORE_RETRIES + store_max_level(st->conf))
            break;
        if (rc == MDB_MAP_RESIZED) {
            mdb_env_set_mapsize(env, 0);
        } else if (rc == MDB_READERS_FULL) {
            mdb_reader_check(env, &dead);
        } else if (rc == MDB_MAP_FULL) {
            if (store_relieve(st, level) != 0)
                break;
        } else {
            break;
        }
    }
    pthread_mutex_unlock(&st->env->wlock);
    return rc;
}

/* ina_store_open - open (or create) the store of a configuration */

int
ina_store_open(const struct ina_conf *conf, unsigned flags,
               struct ina_store **storep, char *errbuf, size_t errlen)
{
    struct ina_store *st;
    struct ina_conf *copy;
    size_t i, j;
    int rc;

    *storep = NULL;
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return err_set(errbuf, errlen, ENOMEM, "out of memory");
    if (ina_conf_copy(conf, &copy) != 0) {
        free(st);
        return err_set(errbuf, errlen, ENOMEM, "out of memory");
    }
    st->conf = copy;
    st->flags = flags;
    st->clock = store_default_clock;
    st->log = store_default_log;
    st->pid = env_pid();
    st->pstart = session_proc_start(st->pid);
    st->logged_level = 0;
    pthread_mutex_init(&st->lock, NULL);
    /* Distinct widths, each kept as long as its longest monitor. */
    for (i = 0; i < conf->nmonitors; i++) {
        for (j = 0; j < st->nwidths; j++)
            if (st->widths[j].width == conf->monitors[i].width)
                break;
        if (j == st->nwidths) {
            st->widths[j].width = conf->monitors[i].width;
            st->nwidths++;
        }
        if (conf->monitors[i].history > st->widths[j].keep)
            st->widths[j].keep = conf->monitors[i].history;
    }
    /* Ascending widths keep each record's keys in sorted order. */
    for (i = 1; i < st->nwidths; i++)
        for (j = i; j > 0 && st->widths[j - 1].width > st->widths[j].width;
             j--) {
            struct store_width t = st->widths[j];

            st->widths[j] = st->widths[j - 1];
            st->widths[j - 1] = t;
        }
    rc = env_acquire(conf->store, conf->group, conf->map_size,
                     (flags & INA_STORE_RDONLY) != 0, &st->env, errbuf,
                     errlen);
    if (rc != 0)
        goto fail;
    if (!(flags & INA_STORE_RDONLY)) {
        uint64_t reaped;

        /* An environment a read-only handle of this process opened at
         * an older format (or a parent's, inherited) was not upgraded:
         * writing through it would put this format's records into the
         * older one. */
        if ((rc = env_check(st->env)) == 0
            && st->env->format < INA_FORMAT_VERSION) {
            err_set(errbuf, errlen, INA_EVERSION,
                    "store %s: format %u, open read-only in this process: "
                    "close its read-only handles, so that a read-write "
                    "open can upgrade it to %u", conf->store,
                    (unsigned) st->env->format,
                    (unsigned) INA_FORMAT_VERSION);
            env_release(st->env);
            rc = INA_EVERSION;
            goto fail;
        }
        /* Reap at open: a restarted MTA subtracts what its dead
         * predecessors left open. */
        if (rc != 0 || (rc = ina_reap(st, &reaped)) != 0
            || (conf->cluster && !st->env->has_recent
                && (rc = store_write(st, recent_create_txn, NULL)) != 0)) {
            err_set(errbuf, errlen, rc, "store %s: %s", conf->store,
                    ina_strerror(rc));
            env_release(st->env);
            goto fail;
        }
    }
    pthread_once(&store_exit_once, store_exit_init);
    pthread_mutex_lock(&store_list_lock);
    st->next = store_list;
    store_list = st;
    pthread_mutex_unlock(&store_list_lock);
    *storep = st;
    return 0;

fail:
    ina_conf_free(copy);
    pthread_mutex_destroy(&st->lock);
    free(st);
    return rc;
}

/* ina_store_close - close a handle */

void
ina_store_close(struct ina_store *st)
{
    struct ina_store **pp;

    if (st == NULL)
        return;
    pthread_mutex_lock(&store_list_lock);
    for (pp = &store_list; *pp != NULL; pp = &(*pp)->next)
        if (*pp == st) {
            *pp = st->next;
            break;
        }
    pthread_mutex_unlock(&store_list_lock);
    if (st->pid == env_pid()) {
        /* Pending events are applied; with the process's last handle on
         * the store, the journal is removed. */
        pthread_mutex_lock(&st->lock);
        if (env_check(st->env) == 0) {
            if (env_last_ref(st->env))
                (void) batch_retire(st);
            else
                (void) batch_flush(st);
            store_drop_rtxn(st);
        }
        pthread_mutex_unlock(&st->lock);
    }
    /* In a child that never used the handle, the parent's transaction is
     * simply forgotten (and its batch was dropped at fork). */
    env_release(st->env);
    ina_conf_free(st->conf);
    free(st);
}

/* ina_store_conf - the configuration of a handle */

const struct ina_conf *
ina_store_conf(const struct ina_store *st)
{
    return st->conf;
}

/* ina_store_set_clock - replace the clock */

void
ina_store_set_clock(struct ina_store *st, ina_clock_fn fn, void *arg)
{
    size_t i;

    st->clock = fn != NULL ? fn : store_default_clock;
    st->clock_arg = fn != NULL ? arg : NULL;
    st->next_reap = st->next_usage = 0;
    for (i = 0; i < st->nwidths; i++)
        st->widths[i].clean = 0;
}

/* ina_store_now - the handle's clock */

int64_t
ina_store_now(struct ina_store *st)
{
    return st->clock(st->clock_arg);
}

/* ina_store_set_log - where operational events go */

void
ina_store_set_log(struct ina_store *st, ina_log_fn fn, void *arg)
{
    st->log = fn;
    st->log_arg = arg;
}

/* store_clock_check - a clock reading usable as a window number */

static int
store_clock_check(int64_t now)
{
    return now < 0 || now > (int64_t) UINT32_MAX ? INA_ECLOCK : 0;
}

/* What one record adds. */
struct record_arg {
    enum ina_event ev;
    const struct ina_cidr *addr;
    uint64_t n;
    int64_t now;
};

/* record_txn - add one event's counts, then expire a chunk if due */

static int
record_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct record_arg *a = argp;
    uint8_t key[NKEY_MAX];
    uint64_t d[INA_NEVENTS];
    const uint8_t *list;
    MDB_cursor *c, *nc;
    size_t np, pi;
    unsigned alen = cidr_addrlen(a->addr->family);
    int rc, level;

    /* The clock is read under the writer lock, so transactions see time
     * in commit order: a writer that waited for the lock across a window
     * boundary must not take the new window for "the future" and expire
     * it. */
    a->now = st->clock(st->clock_arg);
    if ((rc = store_clock_check(a->now)) != 0)
        return rc;
    np = store_prefixes(st->conf, a->addr->family, &list);
    level = store_level(st, txn);
    /* Degradation drops the finest granularities, always keeping one. */
    if ((size_t) level >= np)
        level = (int) np - 1;
    np -= (size_t) level;
    if ((rc = mdb_cursor_open(txn, st->env->now, &nc)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, st->env->counts, &c)) != 0) {
        mdb_cursor_close(nc);
        return rc;
    }
    /* Masks ascend, so keys come in sorted order. */
    memset(d, 0, sizeof(d));
    d[a->ev] = a->n;
    for (pi = 0; pi < np && rc == 0; pi++) {
        key[0] = (uint8_t) a->addr->family;
        key[1] = list[pi];
        memcpy(key + 2, a->addr->addr, alen);
        cidr_mask(key + 2, alen, list[pi]);
        rc = store_now_add(st, nc, c, key, 2 + alen, a->now, d);
    }
    mdb_cursor_close(c);
    mdb_cursor_close(nc);
    if (rc != 0)
        return rc;
    return store_expire_due(st, txn, a->now);
}

/* store_expire_due - expire a bounded chunk where a window rolled over */

int
store_expire_due(struct ina_store *st, MDB_txn *txn, int64_t now)
{
    size_t wi;
    int rc;

    for (wi = 0; wi < st->nwidths; wi++) {
        rc = store_expire_width(st, txn, wi,
                                (uint32_t) (now / st->widths[wi].width),
                                STORE_EXPIRE_CHUNK, NULL);
        if (rc == MDB_INCOMPATIBLE)
            return 0;   /* the next transaction goes on */
        if (rc != 0)
            return rc;
    }
    rc = store_expire_now(st, txn, now, STORE_EXPIRE_CHUNK, 0, NULL);
    if (rc == 0)
        rc = store_expire_recent(st, txn, now, STORE_EXPIRE_CHUNK);
    return rc == MDB_INCOMPATIBLE ? 0 : rc;
}

/* ina_record - count n events of one kind from one address */

int
ina_record(struct ina_store *st, enum ina_event ev,
           const struct ina_cidr *addr, uint64_t n)
{
    struct record_arg a;
    const uint8_t *list;
    int rc;

    if ((unsigned) ev >= INA_NEVENTS
        || (addr->family != 4 && addr->family != 6))
        return addr->family == 0 ? INA_ENOADDR : EINVAL;
    if (st->flags & INA_STORE_RDONLY)
        return INA_ERDONLY;
    if (store_prefixes(st->conf, addr->family, &list) == 0)
        return INA_ENOFAMILY;
    if (n == 0)
        return 0;
    a.ev = ev;
    a.addr = addr;
    a.n = n;
    if ((rc = store_enter(st)) != 0)
        return rc;
    /* EAGAIN: the windows kept moving under the buffered path, or the
     * event counts more than 2^32 - 1 at once, and it is not journaled:
     * it gets a transaction of its own. */
    if (st->conf->flush_delay == 0
        || (rc = batch_record(st, ev, addr, n)) == EAGAIN) {
        rc = store_write(st, record_txn, &a);
        if (rc == MDB_MAP_FULL) {
            /* Nothing more can be given up: the event is lost, and the
             * loss is counted where the operator will see it. */
            store_log(st, INA_LOG_ERR,
                      "store %s: map full at the coarsest granularity: "
                      "an event was not counted", st->conf->store);
            store_count_dropped(st, 1);
            rc = 0;
        }
    }
    store_leave(st);
    return rc;
}

/* store_count_dropped - count events lost to a full map, best effort */

void
store_count_dropped(struct ina_store *st, uint64_t n)
{
    MDB_txn *txn;

    if (mdb_txn_begin(st->env->env, NULL, 0, &txn) != 0)
        return;
    /* A commit frees the transaction even when it fails. */
    if (store_meta_put_u64(txn, st->env->meta, "dropped",
                           store_meta_u64(txn, st->env->meta, "dropped")
                               + n) == 0)
        mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
}

/* ina_flush - apply the handle's pending events now */

int
ina_flush(struct ina_store *st)
{
    int rc;

    if ((rc = store_enter(st)) != 0)
        return rc;
    rc = batch_flush(st);
    store_leave(st);
    return rc;
}

/* store_sum - sum values over one key or one key range
 *
 * The keys are those of prefix pfx (plen_off bytes, followed by an
 * address of alen bytes) from lo to hi inclusive; with exact, lo only.
 * field selects the uint64 of each value. */

static int
store_sum(MDB_cursor *c, const uint8_t *pfx, size_t pfxlen,
          const uint8_t *lo, const uint8_t *hi, unsigned alen, int exact,
          size_t field, uint64_t *sum)
{
    uint8_t key[SKEY_MAX + CKEY_MAX];
    uint64_t x;
    MDB_val k, v;
    int rc;

    memcpy(key, pfx, pfxlen);
    memcpy(key + pfxlen, lo, alen);
    k.mv_data = key;
    k.mv_size = pfxlen + alen;
    rc = mdb_cursor_get(c, &k, &v, exact ? MDB_SET_KEY : MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != pfxlen + alen || memcmp(k.mv_data, pfx, pfxlen) != 0
            || memcmp((uint8_t *) k.mv_data + pfxlen, hi, alen) > 0)
            break;
        if (v.mv_size >= (field + 1) * sizeof(x)) {
            memcpy(&x, (uint8_t *) v.mv_data + field * sizeof(x), sizeof(x));
            *sum = sat_add(*sum, x);
        }
        if (exact)
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* store_point - the counts of one counter key in the read snapshot
 *
 * From the handle's last lookup when it was of the same key in the same
 * snapshot (LMDB numbers every commit, and a snapshot's contents never
 * change), else from the tree: the prefix's now entry of the key's width
 * when it is of the key's window, and the key in the counts database
 * unless that cannot hold any of the window (the entry is of it, and the
 * window began after legacy_time).  A key found nowhere counts zero. */

static int
store_point(struct ina_store *st, MDB_txn *txn, const uint8_t *key,
            size_t klen, const uint64_t **val)
{
    uint64_t id = (uint64_t) mdb_txn_id(txn), x[INA_NEVENTS];
    uint32_t width = (uint32_t) be_get(key, 4);
    uint32_t win = (uint32_t) be_get(key + 4, 4);
    MDB_cursor *c;
    struct nent e;
    MDB_val k, v;
    int rc, hist = 1, i;

    *val = st->pt_val;
    if (id != 0 && st->pt_txn == id && st->pt_klen == klen
        && memcmp(st->pt_key, key, klen) == 0)
        return 0;
    st->pt_txn = 0;
    memset(st->pt_val, 0, sizeof(st->pt_val));
    if ((rc = store_read_cursor(st, STORE_RNOW, &c)) != 0)
        return rc;
    if (c != NULL) {
        k.mv_data = (void *) (key + 8);
        k.mv_size = klen - 8;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
        if (rc == 0 && store_now_entry(st->env->format, &v, width, &e)) {
            if (e.win == win) {
                memcpy(st->pt_val, e.d, sizeof(st->pt_val));
                hist = (uint64_t) win * width <= st->env->legacy_time;
            } else {
                hist = e.win > win;
            }
        } else if (rc != 0 && rc != MDB_NOTFOUND) {
            return rc;
        }
    }
    if (hist) {
        if ((rc = store_read_cursor(st, STORE_RCOUNTS, &c)) != 0)
            return rc;
        k.mv_data = (void *) key;
        k.mv_size = klen;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
        if (rc == 0 && v.mv_size == CVAL_SIZE) {
            memcpy(x, v.mv_data, CVAL_SIZE);
            for (i = 0; i < INA_NEVENTS; i++)
                st->pt_val[i] = sat_add(st->pt_val[i], x[i]);
        } else if (rc != 0 && rc != MDB_NOTFOUND) {
            return rc;
        }
    }
    st->pt_txn = id;
    st->pt_klen = klen;
    memcpy(st->pt_key, key, klen);
    return 0;
}

/* store_sum_cluster - the cluster table's part of a query
 *
 * The other nodes' rows of block lo .. hi at granularity gran, in
 * windows startv .. endv of width, summed into *sum by the same walk as
 * the local part (cluster_sum: one key range per window).  A store
 * without cluster tables adds nothing. */

static int
store_sum_cluster(struct ina_store *st, MDB_txn *txn, uint32_t width,
                  uint32_t cur, uint32_t startv, uint32_t endv, int family,
                  unsigned gran, const uint8_t *lo, const uint8_t *hi,
                  size_t field, uint64_t *sum)
{
    uint8_t pfx[CKEY_MAX];
    MDB_cursor *c;
    uint32_t i;
    int rc;

    if ((rc = cluster_cursor(st, txn, 0, &c)) != 0 || c == NULL)
        return rc;
    for (i = startv; i <= endv && i <= cur && rc == 0; i++) {
        store_ckey(pfx, width, cur - i, family, gran, lo);
        rc = cluster_sum(c, pfx, CKEY_HDR, lo, hi, cidr_addrlen(family),
                         field, sum);
    }
    mdb_cursor_close(c);
    return rc;
}

/* store_settle - before a query: start a flush if one is due, and
 * before a range query (range) apply what the pending tables hold of
 * what it reads (BATCH_COUNTS or BATCH_SESSIONS)
 *
 * Every process's pending events and sessions count at once: a single
 * key adds them from the shared tables, a range applies them first. */

static int
store_settle(struct ina_store *st, int range, unsigned what)
{
    int rc = batch_due(st);

    if (rc == 0 && range && batch_has_pending(st, what))
        rc = batch_flush(st);
    return rc;
}

/* ina_query - total of an event for a block over a range of windows */

int
ina_query(struct ina_store *st, enum ina_event ev, const char *monitor,
          const struct ina_cidr *block, uint32_t startv, uint32_t endv,
          unsigned flags, uint64_t *count, char *errbuf, size_t errlen)
{
    const struct ina_monitor *mon;
    uint8_t pfx[CKEY_MAX], lo[16], hi[16];
    unsigned gran, alen;
    uint64_t sum = 0;
    int64_t now;
    uint32_t cur, i;
    MDB_txn *txn;
    int rc, tries;

    *count = 0;
    if ((unsigned) ev >= INA_NEVENTS)
        return err_set(errbuf, errlen, INA_EBADEVENT, "no such event %d",
                       (int) ev);
    if ((flags & INA_QUERY_CLUSTER) && !st->conf->cluster)
        return err_set(errbuf, errlen, INA_ENOCLUSTER,
                       "cluster metrics are not configured");
    if ((rc = ina_conf_find_monitor(st->conf, monitor, &mon, errbuf,
                                    errlen)) != 0)
        return rc;
    if (startv > endv)
        return err_set(errbuf, errlen, INA_EWINDOW,
                       "window range %u..%u is empty: startv is greater "
                       "than endv", startv, endv);
    if (endv > mon->history)
        return err_set(errbuf, errlen, INA_EWINDOW,
                       "window %u out of range for monitor %s (valid: "
                       "0..%u)", endv, mon->name, mon->history);
    if (block->family != 4 && block->family != 6)
        return err_set(errbuf, errlen, INA_ENOADDR,
                       "a bare mask needs the current connection's address");
    if ((rc = store_granularity(st->conf, block->family, block->plen, &gran,
                                errbuf, errlen)) != 0)
        return rc;
    alen = cidr_addrlen(block->family);
    memcpy(lo, block->addr, alen);
    cidr_mask(lo, alen, block->plen);
    memcpy(hi, lo, alen);
    cidr_last(hi, alen, block->plen);
    cidr_mask(hi, alen, gran);
    if ((rc = store_enter(st)) != 0)
        return err_set(errbuf, errlen, rc, "store %s: %s", st->conf->store,
                       ina_strerror(rc));
    now = st->clock(st->clock_arg);
    if ((rc = store_clock_check(now)) != 0) {
        store_leave(st);
        return err_set(errbuf, errlen, rc, "clock reads %lld",
                       (long long) now);
    }
    cur = (uint32_t) (now / mon->width);
    rc = store_settle(st, gran != block->plen, BATCH_COUNTS);
    /* A snapshot older than the pending tables (EAGAIN) is renewed. */
    for (tries = 0; rc == 0 && (rc = store_read_begin(st, &txn)) == 0;
         tries++) {
        sum = 0;
        for (i = startv; i <= endv && i <= cur && rc == 0; i++) {
            size_t klen = store_ckey(pfx, mon->width, cur - i,
                                     block->family, gran, lo);
            const uint64_t *val;
            uint64_t x;

            if (gran != block->plen) {
                MDB_cursor *c;

                if ((rc = store_read_cursor(st, STORE_RCOUNTS, &c)) == 0)
                    rc = store_sum(c, pfx, CKEY_HDR, lo, hi, alen, 0,
                                   (size_t) ev, &sum);
                if (rc == 0
                    && (rc = store_read_cursor(st, STORE_RNOW, &c)) == 0
                    && c != NULL)
                    rc = store_now_sum(st->env->format, c, mon->width,
                                       cur - i, block->family, gran, lo,
                                       hi, (size_t) ev, &sum);
            } else if ((rc = store_point(st, txn, pfx, klen, &val)) == 0
                       && (rc = batch_pending(st, txn, pfx, klen, (int) ev,
                                              &x)) == 0) {
                sum = sat_add(sum, val[ev]);
                sum = sat_add(sum, x);
            }
        }
        if (rc != EAGAIN || tries >= STORE_RETRIES)
            break;
        store_read_end(st);
        rc = 0;
    }
    if (rc == 0 || rc == EAGAIN) {
        /* Cluster-wide: the other nodes' rows of the same block and
         * windows, which the sync agent keeps in the cluster table, from
         * the same snapshot (cluster.c). */
        if (rc == 0 && (flags & INA_QUERY_CLUSTER))
            rc = store_sum_cluster(st, txn, mon->width, cur, startv, endv,
                                   block->family, gran, lo, hi,
                                   (size_t) ev, &sum);
        store_read_end(st);
    }
    store_leave(st);
    if (rc != 0)
        return err_set(errbuf, errlen, rc, "store %s: %s", st->conf->store,
                       ina_strerror(rc));
    *count = sum;
    return 0;
}

/* ina_session_count - sessions open now from a block to a service */

int
ina_session_count(struct ina_store *st, const struct ina_cidr *block,
                  const char *service, uint64_t *count, char *errbuf,
                  size_t errlen)
{
    uint8_t pfx[SKEY_MAX], lo[16], hi[16];
    unsigned gran, alen;
    size_t slen, pfxlen;
    uint64_t sum = 0;
    int64_t d;
    MDB_cursor *cc, *sc;
    MDB_txn *txn;
    int rc, cluster, tries;

    *count = 0;
    if (service == NULL)
        service = "SMTP";
    /* "inbound_cidr" is Momentum's cluster-wide count of SMTP sessions:
     * the local SMTP gauge plus the other nodes' (cluster.c). */
    cluster = strcmp(service, INA_SERVICE_CLUSTER) == 0;
    if (cluster && !st->conf->cluster)
        return err_set(errbuf, errlen, INA_ENOCLUSTER,
                       "service \"%s\" counts sessions cluster-wide: "
                       "cluster metrics are not configured", service);
    if (cluster)
        service = "SMTP";
    slen = strlen(service);
    if (slen == 0 || slen > INA_SERVICE_MAX)
        return err_set(errbuf, errlen, INA_EBADSERVICE,
                       "service name \"%.40s\" must be 1 to %d characters",
                       service, INA_SERVICE_MAX);
    if (block->family != 4 && block->family != 6)
        return err_set(errbuf, errlen, INA_ENOADDR,
                       "a bare mask needs the current connection's address");
    if ((rc = store_granularity(st->conf, block->family, block->plen, &gran,
                                errbuf, errlen)) != 0)
        return rc;
    alen = cidr_addrlen(block->family);
    memcpy(lo, block->addr, alen);
    cidr_mask(lo, alen, block->plen);
    memcpy(hi, lo, alen);
    cidr_last(hi, alen, block->plen);
    cidr_mask(hi, alen, gran);
    pfxlen = store_skey(pfx, service, slen, block->family, gran, lo) - alen;
    if ((rc = store_enter(st)) != 0)
        return err_set(errbuf, errlen, rc, "store %s: %s", st->conf->store,
                       ina_strerror(rc));
    rc = store_settle(st, gran != block->plen, BATCH_SESSIONS);
    for (tries = 0; rc == 0 && (rc = store_read_begin(st, &txn)) == 0;
         tries++) {
        sum = 0;
        if ((rc = store_read_sessions(st, &sc)) == 0)
            rc = store_sum(sc, pfx, pfxlen, lo, hi, alen,
                           gran == block->plen, 0, &sum);
        if (rc == 0 && gran == block->plen
            && (rc = batch_session_pending(st, txn, 1, pfx, pfxlen + alen,
                                           &d)) == 0)
            sum = add_clamped(sum, d);
        if (rc != EAGAIN || tries >= STORE_RETRIES)
            break;
        store_read_end(st);
        rc = 0;
    }
    if (rc == 0 || rc == EAGAIN) {
        if (rc == 0 && cluster && (rc = cluster_cursor(st, txn, 1, &cc)) == 0
            && cc != NULL) {
            rc = cluster_sum(cc, pfx, pfxlen, lo, hi, alen, 0, &sum);
            mdb_cursor_close(cc);
        }
        store_read_end(st);
    }
    store_leave(st);
    if (rc != 0)
        return err_set(errbuf, errlen, rc, "store %s: %s", st->conf->store,
                       ina_strerror(rc));
    *count = sum;
    return 0;
}
