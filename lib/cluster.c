/* cluster.c - the store's side of the cluster sync: publish, apply, status
 *
 * The sync agent (tools/inaudit-sync.c) moves messages between this node
 * and Redis; everything that must be exact lives here, in the store, and
 * changes only in LMDB transactions.
 *
 * Producer.  "published" holds, for every counter ('c' | counter key)
 * and gauge ('s' | session key) this node has published, the value the
 * other nodes know.  A collect compares the local tables with it (merge
 * of two sorted cursors in one read snapshot, so the MTA's writers never
 * wait for it), then, per message of at most CLUSTER_MSG_ROWS rows, in
 * one write transaction: updates "published", takes the next sequence
 * number and puts the message into "outbox" (key: number, u64 BE).  The
 * agent sends the outbox and then deletes it.  Counters are compared in
 * the current and previous window of the narrowest width, and the blocks
 * that changed there are looked up in the wider widths (every retained
 * window of every width on a full collect); published rows of windows no
 * longer kept are forgotten without a message, since every node expires
 * them itself.
 *
 * Consumer.  "cluster" and "csessions" hold the other nodes' counters and
 * gauges, one row per node: the local key followed by the node's local
 * id (u16 BE), so that a block of every node is one contiguous range and
 * a cluster query is one range scan per window beside the local one.  A
 * row's value is its counts followed by the number of the message that
 * last set it.  "peers" maps a node name to what this store knows of it
 * (struct peer_rec): its id, incarnation, last number applied, transport
 * position, freshness, and whether a resync is awaited.  A message is
 * applied in the same transaction that raises the node's number, so it
 * is applied once whatever the transport replays.  A missing number
 * marks the node for a resync: the agent asks it for a sweep (its whole
 * published table as absolute values, in chunks, then an end marker),
 * and at the end marker the rows of that node that no message since the
 * sweep began has set are deleted: the table then equals the node's.
 *
 * Wire encoding of a message's rows (data): a version byte, then groups.
 * A counter group is 1, width and window (varints), family and mask
 * (bytes), a row count (varint), then per row the address bytes under
 * the mask (ceil(mask/8)) and three zigzag varints.  A gauge group is 2,
 * the service (length byte and bytes), family, mask, row count, then per
 * row the address bytes and one zigzag varint.  Deltas in DELTA
 * messages, absolute values in SWEEP messages.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "inaudit.h"
#include "internal.h"

/* Rows of one message at most: a message is one write transaction, so
 * this bounds how long the agent holds the writer lock. */
#define CLUSTER_MSG_ROWS 1024
/* Rows of a sweep put into the outbox by one collect. */
#define CLUSTER_SWEEP_ROWS 8192
/* Expired rows deleted by one apply, and published rows forgotten by
 * one collect, at most. */
#define CLUSTER_EXPIRE_CHUNK 4096
/* Map use (percent) above which the sync adds nothing more, so that the
 * MTA's own counting keeps its room. */
#define CLUSTER_USE_MAX 85
/* Times a transaction is retried after MAP_RESIZED or READERS_FULL. */
#define CLUSTER_RETRIES 8
/* Version of the wire encoding: the first byte of every message. */
#define CLUSTER_WIRE_VERSION 1
#define GROUP_COUNTERS 1
#define GROUP_GAUGES 2
/* Version of a peer record. */
#define PEER_VERSION 1
#define PEER_RESYNC 0x1
#define PEER_GONE 0x2

/* Published keys: a tag byte, then the local key. */
#define PKEY_MAX (1 + SKEY_MAX)
/* Cluster rows: the local key, then the node's id. */
#define RKEY_MAX (SKEY_MAX + CLUSTER_ID_LEN)
#define RVAL_COUNTERS ((INA_NEVENTS + 1) * sizeof(uint64_t))
#define RVAL_GAUGE (2 * sizeof(uint64_t))

/* What the store knows of another node (the "peers" table). */
struct peer_rec {
    uint32_t version;
    uint16_t id;               /* the suffix of its rows, 1 .. 65535 */
    uint16_t flags;            /* PEER_RESYNC, PEER_GONE */
    uint64_t inc;
    uint64_t seq;              /* last number applied */
    int64_t as_of;
    int64_t heard;
    int64_t applied;
    uint64_t messages;
    uint64_t resync_after;
    int64_t beat_as_of;        /* as_of of its last heartbeat */
    char pos[INA_CLUSTER_POS_MAX];
};

/* The head of an outbox value; the rows follow. */
struct outbox_hdr {
    uint8_t kind;
    uint8_t pad[7];
    uint64_t sweep_start;
    int64_t as_of;
};

/* One difference found by a collect, keyed as in "published". */
struct change {
    uint8_t key[PKEY_MAX];
    uint8_t klen;
    uint8_t silent;            /* forget it, send nothing */
    uint64_t val[INA_NEVENTS]; /* the new published value */
    int64_t d[INA_NEVENTS];    /* what is sent */
};

struct changes {
    struct change *v;
    size_t n, cap;
};

/* A growing byte buffer; failed is set once an allocation fails. */
struct buf {
    uint8_t *p;
    size_t len, cap;
    int failed;
};

/* A reader over a message's rows; bad is set past the end. */
struct rd {
    const uint8_t *p, *end;
    int bad;
};

/* ---------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------- */

/* sub_delta - b - a as a signed delta, saturated */

static int64_t
sub_delta(uint64_t a, uint64_t b)
{
    if (b >= a)
        return b - a > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) (b - a);
    return a - b > (uint64_t) INT64_MAX ? -INT64_MAX : -(int64_t) (a - b);
}

/* add_delta - v + d, clamped to 0 .. UINT64_MAX */

static uint64_t
add_delta(uint64_t v, int64_t d)
{
    if (d >= 0)
        return sat_add(v, (uint64_t) d);
    return (uint64_t) -(d + 1) + 1 >= v ? 0 : v - ((uint64_t) -(d + 1) + 1);
}

/* clamp_i64 - an unsigned count as a non-negative signed value */

static int64_t
clamp_i64(uint64_t v)
{
    return v > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) v;
}

/* buf_put, buf_u8, buf_varint - append to a buffer */

static void
buf_put(struct buf *b, const void *d, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        uint8_t *p;

        while (cap < b->len + n)
            cap *= 2;
        if ((p = realloc(b->p, cap)) == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void
buf_u8(struct buf *b, unsigned v)
{
    uint8_t c = (uint8_t) v;

    buf_put(b, &c, 1);
}

static void
buf_varint(struct buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;

    while (v >= 0x80) {
        tmp[n++] = (uint8_t) (v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t) v;
    buf_put(b, tmp, n);
}

/* zigzag, unzigzag - signed values as small unsigned ones */

static uint64_t
zigzag(int64_t v)
{
    return v >= 0 ? (uint64_t) v << 1 : (((uint64_t) -(v + 1)) << 1) | 1;
}

static int64_t
unzigzag(uint64_t u)
{
    return (u & 1) ? -(int64_t) (u >> 1) - 1 : (int64_t) (u >> 1);
}

/* rd_u8, rd_varint, rd_bytes - read from a message, setting bad at the
 * end or on an overlong varint */

static unsigned
rd_u8(struct rd *r)
{
    if (r->bad || r->p >= r->end) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static uint64_t
rd_varint(struct rd *r)
{
    uint64_t v = 0;
    unsigned shift = 0, c;

    do {
        c = rd_u8(r);
        if (r->bad || shift > 63) {
            r->bad = 1;
            return 0;
        }
        v |= (uint64_t) (c & 0x7f) << shift;
        shift += 7;
    } while (c & 0x80);
    return v;
}

static const uint8_t *
rd_bytes(struct rd *r, size_t n)
{
    const uint8_t *p = r->p;

    if (r->bad || (size_t) (r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    r->p += n;
    return p;
}

/* changes_add - a new, zeroed change at the end of the list */

static struct change *
changes_add(struct changes *ch)
{
    struct change *c;

    if (ch->n == ch->cap) {
        size_t cap = ch->cap ? ch->cap * 2 : 256;

        if ((c = realloc(ch->v, cap * sizeof(*c))) == NULL)
            return NULL;
        ch->v = c;
        ch->cap = cap;
    }
    c = &ch->v[ch->n++];
    memset(c, 0, sizeof(*c));
    return c;
}

/* meta_get_bytes, meta_put_bytes - raw values of the meta database */

static size_t
meta_get_bytes(MDB_txn *txn, MDB_dbi dbi, const char *name, void *out,
               size_t max)
{
    MDB_val k, v;

    k.mv_data = (void *) name;
    k.mv_size = strlen(name);
    if (mdb_get(txn, dbi, &k, &v) != 0 || v.mv_size > max)
        return 0;
    memcpy(out, v.mv_data, v.mv_size);
    return v.mv_size;
}

static int
meta_put_bytes(MDB_txn *txn, MDB_dbi dbi, const char *name,
               const void *data, size_t len)
{
    MDB_val k, v;

    k.mv_data = (void *) name;
    k.mv_size = strlen(name);
    v.mv_data = (void *) data;
    v.mv_size = len;
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* cluster_width - the index of a configured width, or -1 */

static int
cluster_width(const struct ina_store *st, uint32_t width)
{
    size_t i;

    for (i = 0; i < st->nwidths; i++)
        if (st->widths[i].width == width)
            return (int) i;
    return -1;
}

/* cluster_cutoff - the oldest window a width keeps at window cur */

static uint32_t
cluster_cutoff(const struct ina_store *st, size_t wi, uint32_t cur)
{
    uint32_t keep = st->widths[wi].keep;

    return cur > keep ? cur - keep : 0;
}

/* cluster_gran_ok - is plen a configured granularity of family? */

static int
cluster_gran_ok(const struct ina_conf *conf, unsigned family, unsigned plen)
{
    const uint8_t *list;
    size_t n, i;

    if (family != 4 && family != 6)
        return 0;
    n = store_prefixes(conf, (int) family, &list);
    for (i = 0; i < n; i++)
        if (list[i] == plen)
            return 1;
    return 0;
}

/* cluster_horizon_ms - how long a silent node is remembered: the
 * longest history any width keeps, and never less than twice the time
 * after which it is gone */

static int64_t
cluster_horizon_ms(const struct ina_store *st)
{
    int64_t h = 2 * (int64_t) INA_CLUSTER_GONE_MS, x;
    size_t i;

    for (i = 0; i < st->nwidths; i++) {
        x = (int64_t) st->widths[i].width
            * ((int64_t) st->widths[i].keep + 1) * 1000;
        if (x > h)
            h = x;
    }
    return h;
}

/* cluster_check - a cluster is configured and the store has its tables */

static int
cluster_check(struct ina_store *st, int write)
{
    if (!st->conf->cluster)
        return INA_ENOCLUSTER;
    if (write && (st->flags & INA_STORE_RDONLY))
        return INA_ERDONLY;
    return 0;
}

/* ---------------------------------------------------------------------
 * Transactions and space
 * ------------------------------------------------------------------- */

/* cluster_data_pages - pages held by the sync's tables */

uint64_t
cluster_data_pages(struct ina_store *st, MDB_txn *txn)
{
    MDB_dbi dbis[5];

    if (!st->env->has_cluster)
        return 0;
    dbis[0] = st->env->cluster;
    dbis[1] = st->env->csessions;
    dbis[2] = st->env->published;
    dbis[3] = st->env->outbox;
    dbis[4] = st->env->peers;
    return store_dbi_pages(txn, dbis, sizeof(dbis) / sizeof(dbis[0]));
}

/* cluster_full - is the map too full for the sync to add anything? */

static int
cluster_full(struct ina_store *st, MDB_txn *txn)
{
    MDB_envinfo info;
    MDB_stat s;
    uint64_t used;

    mdb_env_info(st->env->env, &info);
    mdb_env_stat(st->env->env, &s);
    used = (store_data_pages(st, txn) + cluster_data_pages(st, txn))
           * s.ms_psize;
    return used > (uint64_t) info.me_mapsize / 100 * CLUSTER_USE_MAX;
}

typedef int (*cluster_txn_fn)(struct ina_store *st, MDB_txn *txn, void *arg);

/* cluster_write - run fn in one write transaction
 *
 * Unlike store_write(), a full map is not relieved at the expense of
 * local counting: the sync stops (ENOSPC) and goes stale instead.  With
 * grows, the transaction is refused above CLUSTER_USE_MAX.  The caller
 * holds the handle; fn may run more than once (after MAP_RESIZED). */

static int
cluster_write(struct ina_store *st, cluster_txn_fn fn, void *arg, int grows)
{
    MDB_env *env = st->env->env;
    MDB_txn *txn;
    int rc, tries, dead;

    if (!st->env->has_cluster)
        return MDB_NOTFOUND;
    pthread_mutex_lock(&st->env->wlock);
    for (tries = 0;; tries++) {
        rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc == 0) {
            rc = grows && cluster_full(st, txn) ? ENOSPC : fn(st, txn, arg);
            if (rc == 0)
                rc = mdb_txn_commit(txn);
            else
                mdb_txn_abort(txn);
        }
        if (tries < CLUSTER_RETRIES && rc == MDB_MAP_RESIZED)
            mdb_env_set_mapsize(env, 0);
        else if (tries < CLUSTER_RETRIES && rc == MDB_READERS_FULL)
            mdb_reader_check(env, &dead);
        else
            break;
    }
    pthread_mutex_unlock(&st->env->wlock);
    return rc == MDB_MAP_FULL ? ENOSPC : rc;
}

/* cluster_incarnation - this store's incarnation, made at first use
 *
 * The milliseconds of its making in the high bits, so that a store that
 * replaces another under the same node name has a larger one, and random
 * bits below. */

static int
cluster_incarnation(struct ina_store *st, MDB_txn *txn, int64_t now_ms,
                    uint64_t *inc)
{
    uint16_t rnd = 0;
    int fd;

    *inc = store_meta_u64(txn, st->env->meta, "sync.inc");
    if (*inc != 0)
        return 0;
    if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) >= 0) {
        if (read(fd, &rnd, sizeof(rnd)) != (ssize_t) sizeof(rnd))
            rnd = (uint16_t) getpid();
        close(fd);
    }
    *inc = (uint64_t) (now_ms > 0 ? now_ms : 1) << 16 | rnd;
    return store_meta_put_u64(txn, st->env->meta, "sync.inc", *inc);
}

/* ---------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------- */

/* change_hdr - the group header bytes of a published key, and whether it
 * is a gauge; the address follows them */

static size_t
change_hdr(const struct change *c, int *gauge)
{
    *gauge = c->key[0] == 's';
    if (!*gauge)
        return 1 + CKEY_HDR;
    return 1 + 1 + (size_t) c->key[1] + 2;
}

/* encode_rows - the wire form of changes v[0 .. n-1], silent ones left
 * out; returns the number of rows written */

static size_t
encode_rows(struct buf *b, const struct change *v, size_t n)
{
    size_t i = 0, j, k, hlen, rows = 0, cnt, ab;
    const uint8_t *h;
    int gauge, g2, e;
    unsigned plen;

    buf_u8(b, CLUSTER_WIRE_VERSION);
    while (i < n) {
        if (v[i].silent) {
            i++;
            continue;
        }
        hlen = change_hdr(&v[i], &gauge);
        h = v[i].key;
        /* The group: following rows with the same header. */
        for (j = i + 1, cnt = 1; j < n; j++) {
            if (v[j].silent)
                continue;
            if (change_hdr(&v[j], &g2) != hlen || g2 != gauge
                || memcmp(v[j].key, h, hlen) != 0)
                break;
            cnt++;
        }
        plen = h[hlen - 1];
        ab = (plen + 7) / 8;
        if (!gauge) {
            buf_u8(b, GROUP_COUNTERS);
            buf_varint(b, be_get(h + 1, 4));
            buf_varint(b, be_get(h + 5, 4));
            buf_put(b, h + 9, 2);
        } else {
            buf_u8(b, GROUP_GAUGES);
            buf_put(b, h + 1, hlen - 1);
        }
        buf_varint(b, cnt);
        for (k = i; k < j; k++) {
            if (v[k].silent)
                continue;
            buf_put(b, v[k].key + hlen, ab);
            for (e = 0; e < (gauge ? 1 : INA_NEVENTS); e++)
                buf_varint(b, zigzag(v[k].d[e]));
        }
        rows += cnt;
        i = j;
    }
    return rows;
}

/* ---------------------------------------------------------------------
 * Producer: collect, outbox, sent
 * ------------------------------------------------------------------- */

/* scan_add - note a difference between a local row and a published one
 *
 * local and pub are the values (NULL: no such row); n the values a row
 * holds.  window_dead: a missing local row is expiry, not a clear. */

static int
scan_add(struct changes *ch, uint8_t tag, const uint8_t *key, size_t klen,
         const uint64_t *local, const uint64_t *pub, int n, int window_dead)
{
    struct change *c;
    uint64_t zero[INA_NEVENTS] = {0, 0, 0};
    int e, differ = 0, gone = 1;

    if (local == NULL)
        local = zero;
    if (pub == NULL)
        pub = zero;
    for (e = 0; e < n; e++) {
        differ |= local[e] != pub[e];
        gone &= local[e] == 0;
    }
    if (!differ)
        return 0;
    if ((c = changes_add(ch)) == NULL)
        return ENOMEM;
    c->key[0] = tag;
    memcpy(c->key + 1, key, klen);
    c->klen = (uint8_t) (klen + 1);
    for (e = 0; e < n; e++) {
        c->val[e] = local[e];
        c->d[e] = sub_delta(pub[e], local[e]);
    }
    /* No local row (no counter holds zeros): cleared, or expired. */
    c->silent = gone && window_dead;
    return 0;
}

/* A now entry as a counter of the counts database's key order. */
struct litem {
    uint8_t key[CKEY_MAX];
    uint8_t klen;
    uint64_t d[INA_NEVENTS];
};

/* The local counters of one width from a window on, in key order: the
 * counts database's keys merged with the now database's entries of the
 * width, gathered and sorted first (a pass over every prefix). */
struct local_iter {
    MDB_cursor *cc;
    uint32_t width;
    uint32_t format;          /* the store's, for its now values */
    int rc;                   /* of cc's last move */
    MDB_val k, v;
    struct litem *nv;
    size_t nn, ni;
    /* The current counter: key, counts; have is 0 at the end. */
    uint8_t key[CKEY_MAX];
    size_t klen;
    uint64_t d[INA_NEVENTS];
    int have;
};

/* litem_cmp - the counts database's key order, for the gathered entries */

static int
litem_cmp(const void *a, const void *b)
{
    const struct litem *x = a, *y = b;

    return key_cmp(x->key, x->klen, y->key, y->klen);
}

/* local_take - add a prefix's now entry e to the gathered ones */

static int
local_take(struct local_iter *it, size_t *cap, const MDB_val *k,
           const struct nent *e)
{
    struct litem *p;

    if (it->nn == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        if ((p = realloc(it->nv, *cap * sizeof(*p))) == NULL)
            return ENOMEM;
        it->nv = p;
    }
    p = &it->nv[it->nn++];
    be_put(p->key, it->width, 4);
    be_put(p->key + 4, e->win, 4);
    memcpy(p->key + 8, k->mv_data, k->mv_size);
    p->klen = (uint8_t) (8 + k->mv_size);
    memcpy(p->d, e->d, sizeof(p->d));
    return 0;
}

/* local_gather - the now entries of width from window from on
 *
 * From the index of recent windows (ri, when the caller found it holds
 * these windows: store.c keeps the last few), which names the prefixes
 * whose entry took each window in its key order, so the cost is the
 * windows' prefixes; else by a walk of every now record.  An indexed
 * prefix whose entry has moved on to a later window since is found
 * under that window's key too, and the older one's counts are in the
 * counts database. */

static int
local_gather(MDB_cursor *nc, const struct env *ri, struct local_iter *it,
             uint32_t from)
{
    uint8_t probe[8];
    struct nent e;
    size_t cap = 0;
    MDB_cursor *ic;
    MDB_val k, v, pk, pv;
    int rc;

    if (nc != NULL && ri != NULL) {
        if ((rc = mdb_cursor_open(mdb_cursor_txn(nc), ri->recent, &ic))
            != 0)
            return rc;
        be_put(probe, it->width, 4);
        be_put(probe + 4, from, 4);
        k.mv_data = probe;
        k.mv_size = sizeof(probe);
        for (rc = mdb_cursor_get(ic, &k, &v, MDB_SET_RANGE);
             rc == 0 && k.mv_size > CKEY_HDR && k.mv_size <= CKEY_MAX
             && be_get(k.mv_data, 4) == it->width;
             rc = mdb_cursor_get(ic, &k, &v, MDB_NEXT)) {
            pk.mv_data = (uint8_t *) k.mv_data + 8;
            pk.mv_size = k.mv_size - 8;
            rc = mdb_cursor_get(nc, &pk, &pv, MDB_SET);
            if (rc == MDB_NOTFOUND)
                continue;
            if (rc != 0)
                break;
            if (store_now_entry(it->format, &pv, it->width, &e)
                && e.win == be_get((uint8_t *) k.mv_data + 4, 4)
                && (rc = local_take(it, &cap, &pk, &e)) != 0)
                break;
        }
        mdb_cursor_close(ic);
        /* In the index's order, the counts database's. */
        return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc;
    }
    for (rc = nc != NULL ? now_get(nc, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
         rc == 0; rc = now_get(nc, &k, &v, MDB_NEXT)) {
        if (!store_now_entry(it->format, &v, it->width, &e)
            || e.win < from)
            continue;
        if ((rc = local_take(it, &cap, &k, &e)) != 0)
            return rc;
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    if (it->nn > 1)
        qsort(it->nv, it->nn, sizeof(*it->nv), litem_cmp);
    return 0;
}

/* local_next - move to the next local counter (it->have 0 at the end) */

static int
local_next(struct local_iter *it)
{
    int hc, hn, cmp, e;

    if (it->rc != 0 && it->rc != MDB_NOTFOUND)
        return it->rc;
    hc = it->rc == 0 && it->k.mv_size > CKEY_HDR
         && it->k.mv_size <= CKEY_MAX && be_get(it->k.mv_data, 4) == it->width;
    hn = it->ni < it->nn;
    it->have = hc || hn;
    if (!it->have)
        return 0;
    cmp = !hc ? 1 : !hn ? -1
                : key_cmp(it->k.mv_data, it->k.mv_size, it->nv[it->ni].key,
                          it->nv[it->ni].klen);
    memset(it->d, 0, sizeof(it->d));
    if (cmp <= 0) {
        memcpy(it->key, it->k.mv_data, it->k.mv_size);
        it->klen = it->k.mv_size;
        if (it->v.mv_size == CVAL_SIZE)
            memcpy(it->d, it->v.mv_data, CVAL_SIZE);
        it->rc = mdb_cursor_get(it->cc, &it->k, &it->v, MDB_NEXT);
    }
    if (cmp >= 0) {
        memcpy(it->key, it->nv[it->ni].key, it->nv[it->ni].klen);
        it->klen = it->nv[it->ni].klen;
        for (e = 0; e < INA_NEVENTS; e++)
            it->d[e] = sat_add(it->d[e], it->nv[it->ni].d[e]);
        it->ni++;
    }
    return 0;
}

/* local_begin - the local counters of width from window from on */

static int
local_begin(struct local_iter *it, uint32_t format, MDB_cursor *cc,
            MDB_cursor *nc, const struct env *ri, uint32_t width,
            uint32_t from)
{
    uint8_t probe[8];
    int rc;

    memset(it, 0, sizeof(*it));
    it->cc = cc;
    it->width = width;
    it->format = format;
    if ((rc = local_gather(nc, ri, it, from)) != 0)
        return rc;
    be_put(probe, width, 4);
    be_put(probe + 4, from, 4);
    it->k.mv_data = probe;
    it->k.mv_size = sizeof(probe);
    it->rc = mdb_cursor_get(cc, &it->k, &it->v, MDB_SET_RANGE);
    return local_next(it);
}

/* scan_counters - differences of one width's counters from window from
 * on (with merge; without, only the first part); published rows before
 * cutoff are forgotten silently, and a published row missing locally
 * before safe is taken for expiry */

static int
scan_counters(uint32_t format, MDB_cursor *cc, MDB_cursor *nc,
              const struct env *ri, MDB_cursor *pc, uint32_t width,
              uint32_t from, uint32_t cutoff, int merge, struct changes *ch,
              size_t *forget)
{
    uint8_t probe[1 + 8];
    uint64_t b[INA_NEVENTS];
    struct local_iter it;
    MDB_val kb, vb;
    uint32_t safe = cutoff < UINT32_MAX ? cutoff + 1 : cutoff;
    int rb, hava, havb, cmp, rc;

    /* Published rows of windows no longer kept. */
    probe[0] = 'c';
    be_put(probe + 1, width, 4);
    be_put(probe + 5, 0, 4);
    kb.mv_data = probe;
    kb.mv_size = sizeof(probe);
    rb = mdb_cursor_get(pc, &kb, &vb, MDB_SET_RANGE);
    while (rb == 0 && *forget < CLUSTER_EXPIRE_CHUNK
           && kb.mv_size > 1 + CKEY_HDR && kb.mv_size <= PKEY_MAX
           && ((uint8_t *) kb.mv_data)[0] == 'c'
           && be_get((uint8_t *) kb.mv_data + 1, 4) == width
           && be_get((uint8_t *) kb.mv_data + 5, 4) < cutoff) {
        struct change *c = changes_add(ch);

        if (c == NULL)
            return ENOMEM;
        memcpy(c->key, kb.mv_data, kb.mv_size);
        c->klen = (uint8_t) kb.mv_size;
        c->silent = 1;
        (*forget)++;
        rb = mdb_cursor_get(pc, &kb, &vb, MDB_NEXT);
    }
    if (rb != 0 && rb != MDB_NOTFOUND)
        return rb;
    if (!merge)
        return 0;
    /* The merge of the local counters with the published table from
     * window from. */
    if ((rc = local_begin(&it, format, cc, nc, ri, width, from)) != 0)
        goto out;
    be_put(probe + 1, width, 4);
    be_put(probe + 5, from, 4);
    kb.mv_data = probe;
    kb.mv_size = sizeof(probe);
    rb = mdb_cursor_get(pc, &kb, &vb, MDB_SET_RANGE);
    for (;;) {
        if (rb != 0 && rb != MDB_NOTFOUND) {
            rc = rb;
            goto out;
        }
        hava = it.have;
        havb = rb == 0 && kb.mv_size > 1 + CKEY_HDR
               && ((uint8_t *) kb.mv_data)[0] == 'c'
               && be_get((uint8_t *) kb.mv_data + 1, 4) == width;
        if (!hava && !havb) {
            rc = 0;
            goto out;
        }
        cmp = !hava ? 1 : !havb ? -1
                    : key_cmp(it.key, it.klen, (uint8_t *) kb.mv_data + 1,
                              kb.mv_size - 1);
        if (havb && vb.mv_size == CVAL_SIZE)
            memcpy(b, vb.mv_data, CVAL_SIZE);
        else
            memset(b, 0, sizeof(b));
        if (cmp < 0) {
            rc = scan_add(ch, 'c', it.key, it.klen, it.d, NULL,
                          INA_NEVENTS, 0);
            if (rc == 0)
                rc = local_next(&it);
        } else if (cmp > 0) {
            uint32_t win = (uint32_t) be_get((uint8_t *) kb.mv_data + 5, 4);

            rc = scan_add(ch, 'c', (uint8_t *) kb.mv_data + 1,
                          kb.mv_size - 1, NULL, b, INA_NEVENTS, win < safe);
            rb = mdb_cursor_get(pc, &kb, &vb, MDB_NEXT);
        } else {
            rc = scan_add(ch, 'c', it.key, it.klen, it.d, b, INA_NEVENTS, 0);
            if (rc == 0)
                rc = local_next(&it);
            rb = mdb_cursor_get(pc, &kb, &vb, MDB_NEXT);
        }
        if (rc != 0)
            goto out;
    }

out:
    free(it.nv);
    return rc;
}

/* scan_gauges - differences of every session gauge */

static int
scan_gauges(MDB_cursor *sc, MDB_cursor *pc, struct changes *ch)
{
    uint8_t probe = 's';
    uint64_t a, b;
    MDB_val ka, va, kb, vb;
    int ra, rb, hava, havb, cmp, rc;

    ra = mdb_cursor_get(sc, &ka, &va, MDB_FIRST);
    kb.mv_data = &probe;
    kb.mv_size = 1;
    rb = mdb_cursor_get(pc, &kb, &vb, MDB_SET_RANGE);
    for (;;) {
        if (ra != 0 && ra != MDB_NOTFOUND)
            return ra;
        if (rb != 0 && rb != MDB_NOTFOUND)
            return rb;
        hava = ra == 0 && ka.mv_size > 3 && ka.mv_size <= SKEY_MAX;
        havb = rb == 0 && kb.mv_size > 4
               && ((uint8_t *) kb.mv_data)[0] == 's';
        if (!hava && !havb)
            return 0;
        cmp = !hava ? 1 : !havb ? -1
                    : key_cmp(ka.mv_data, ka.mv_size,
                             (uint8_t *) kb.mv_data + 1, kb.mv_size - 1);
        a = b = 0;
        if (hava && va.mv_size == sizeof(a))
            memcpy(&a, va.mv_data, sizeof(a));
        if (havb && vb.mv_size == sizeof(b))
            memcpy(&b, vb.mv_data, sizeof(b));
        if (cmp < 0) {
            rc = scan_add(ch, 's', ka.mv_data, ka.mv_size, &a, NULL, 1, 0);
            ra = mdb_cursor_get(sc, &ka, &va, MDB_NEXT);
        } else if (cmp > 0) {
            rc = scan_add(ch, 's', (uint8_t *) kb.mv_data + 1,
                          kb.mv_size - 1, NULL, &b, 1, 0);
            rb = mdb_cursor_get(pc, &kb, &vb, MDB_NEXT);
        } else {
            rc = scan_add(ch, 's', ka.mv_data, ka.mv_size, &a, &b, 1, 0);
            ra = mdb_cursor_get(sc, &ka, &va, MDB_NEXT);
            rb = mdb_cursor_get(pc, &kb, &vb, MDB_NEXT);
        }
        if (rc != 0)
            return rc;
    }
}

/* change_cmp - published key order of changes */

static int
change_cmp(const void *a, const void *b)
{
    const struct change *x = a, *y = b;

    return key_cmp(x->key, x->klen, y->key, y->klen);
}

/* A published counter key whose block is followed into wider widths. */
struct follow {
    uint8_t key[1 + CKEY_MAX];
    uint8_t klen;
};

/* follow_cmp - order of the family | mask | address part of published
 * counter keys (key + 9), for sorting out duplicates */

static int
follow_cmp(const void *a, const void *b)
{
    const struct follow *x = a, *y = b;

    return key_cmp(x->key + 9, (size_t) x->klen - 9, y->key + 9,
                  (size_t) y->klen - 9);
}

/* scan_follow - the wider widths' counters of the blocks that changed in
 * the narrowest width's hot windows
 *
 * Every event adds to the window of its time at every width, so a
 * counter of a wider width changed in this interval only if the counter
 * of the same block changed in the narrowest width's windows that cover
 * the same time: looking those blocks up (point reads in both tables) is
 * enough, however many blocks the wider windows hold. */

static int
scan_follow(struct ina_store *st, MDB_txn *txn, size_t n0, uint32_t from0,
            int64_t now, struct changes *ch)
{
    struct follow *sfx;
    uint8_t key[PKEY_MAX];
    uint64_t a[INA_NEVENTS], b[INA_NEVENTS];
    uint32_t w0 = st->widths[0].width, w, win, wlo, whi, cutoff;
    int64_t lo_t, hi_t;
    size_t i, n = 0, k, wi, klen;
    MDB_val kv, v;
    int rc;

    /* Copies, not pointers: the changes found below may move the list. */
    if ((sfx = malloc((n0 + 1) * sizeof(*sfx))) == NULL)
        return ENOMEM;
    for (i = 0; i < n0; i++)
        if (ch->v[i].key[0] == 'c' && !ch->v[i].silent
            && ch->v[i].klen > 9 && ch->v[i].klen <= sizeof(sfx->key)) {
            memcpy(sfx[n].key, ch->v[i].key, ch->v[i].klen);
            sfx[n++].klen = ch->v[i].klen;
        }
    qsort(sfx, n, sizeof(*sfx), follow_cmp);
    for (i = 0, k = 0; i < n; i++)
        if (k == 0 || follow_cmp(&sfx[k - 1], &sfx[i]) != 0)
            sfx[k++] = sfx[i];
    n = k;
    /* The time the narrowest hot windows cover. */
    lo_t = (int64_t) from0 * w0;
    hi_t = ((int64_t) (now / w0) + 1) * w0 - 1;
    rc = 0;
    for (wi = 1; wi < st->nwidths && rc == 0; wi++) {
        w = st->widths[wi].width;
        cutoff = cluster_cutoff(st, wi, (uint32_t) (now / w));
        wlo = (uint32_t) (lo_t / w);
        whi = (uint32_t) (hi_t / w);
        if (wlo < cutoff)
            wlo = cutoff;
        for (win = wlo; win <= whi && win >= wlo && rc == 0; win++)
            for (i = 0; i < n && rc == 0; i++) {
                /* Built on a copy of the narrow key: width and window
                 * replaced, the block kept. */
                klen = sfx[i].klen;
                memcpy(key, sfx[i].key, klen);
                be_put(key + 1, w, 4);
                be_put(key + 5, win, 4);
                kv.mv_data = key + 1;
                kv.mv_size = klen - 1;
                memset(a, 0, sizeof(a));
                memset(b, 0, sizeof(b));
                rc = mdb_get(txn, st->env->counts, &kv, &v);
                if (rc == 0 && v.mv_size == CVAL_SIZE)
                    memcpy(a, v.mv_data, CVAL_SIZE);
                else if (rc != 0 && rc != MDB_NOTFOUND)
                    break;
                /* And the block's now entry, when of this window. */
                if (st->env->has_now) {
                    struct nent e;
                    size_t ev;

                    kv.mv_data = key + 9;
                    kv.mv_size = klen - 9;
                    rc = mdb_get(txn, st->env->now, &kv, &v);
                    if (rc == 0
                        && store_now_entry(st->env->format, &v, w, &e)
                        && e.win == win)
                        for (ev = 0; ev < INA_NEVENTS; ev++)
                            a[ev] = sat_add(a[ev], e.d[ev]);
                    else if (rc != 0 && rc != MDB_NOTFOUND)
                        break;
                }
                kv.mv_data = key;
                kv.mv_size = klen;
                rc = mdb_get(txn, st->env->published, &kv, &v);
                if (rc == 0 && v.mv_size == CVAL_SIZE)
                    memcpy(b, v.mv_data, CVAL_SIZE);
                else if (rc != 0 && rc != MDB_NOTFOUND)
                    break;
                rc = scan_add(ch, 'c', key + 1, klen - 1, a, b, INA_NEVENTS,
                              win <= cutoff);
            }
    }
    free(sfx);
    return rc;
}

/* cluster_scan - every difference between the local tables and the
 * published one, in published key order
 *
 * A full scan merges every retained window of every width with the
 * published table.  An ordinary one merges the narrowest width's
 * current and previous windows, and follows the blocks that changed
 * there into the wider widths (scan_follow), so that its cost is that of
 * the narrowest windows, not of the widest. */

static int
cluster_scan(struct ina_store *st, int full, int64_t now,
             struct changes *ch)
{
    MDB_cursor *cc = NULL, *pc = NULL, *sc = NULL, *nc = NULL;
    const struct env *ri;
    MDB_txn *txn;
    uint32_t cur, cutoff, from, from0 = 0;
    size_t wi, n0 = 0, forget = 0;
    int rc;

    if ((rc = store_read_begin(st, &txn)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, st->env->counts, &cc)) != 0
        || (rc = mdb_cursor_open(txn, st->env->published, &pc)) != 0
        || (rc = mdb_cursor_open(txn, st->env->sessions, &sc)) != 0
        || (st->env->has_now
            && (rc = mdb_cursor_open(txn, st->env->now, &nc)) != 0))
        goto out;
    for (wi = 0; wi < st->nwidths && rc == 0; wi++) {
        cur = (uint32_t) (now / st->widths[wi].width);
        cutoff = cluster_cutoff(st, wi, cur);
        from = full || cur == 0 || cur - 1 < cutoff ? cutoff : cur - 1;
        if (wi == 0)
            from0 = from;
        /* The index of recent windows, where it holds the windows an
         * ordinary scan reads. */
        ri = !full && store_recent_covers(st, st->widths[wi].width, from,
                                          cur)
                 ? st->env
                 : NULL;
        rc = scan_counters(st->env->format, cc, nc, ri, pc,
                           st->widths[wi].width, from, cutoff,
                           full || wi == 0, ch, &forget);
        if (wi == 0)
            n0 = ch->n;
    }
    if (rc == 0 && !full && st->nwidths > 1) {
        rc = scan_follow(st, txn, n0, from0, now, ch);
        if (rc == 0 && ch->n > 1)
            qsort(ch->v, ch->n, sizeof(*ch->v), change_cmp);
    }
    if (rc == 0)
        rc = scan_gauges(sc, pc, ch);

out:
    if (nc != NULL)
        mdb_cursor_close(nc);
    if (sc != NULL)
        mdb_cursor_close(sc);
    if (pc != NULL)
        mdb_cursor_close(pc);
    if (cc != NULL)
        mdb_cursor_close(cc);
    store_read_end(st);
    return rc;
}

/* outbox_put - put message seq into the outbox and make it the last */

static int
outbox_put(struct ina_store *st, MDB_txn *txn, uint64_t seq, int kind,
           uint64_t sweep_start, int64_t as_of, const struct buf *data)
{
    struct outbox_hdr h;
    uint8_t key[8];
    MDB_val k, v;
    int rc;

    memset(&h, 0, sizeof(h));
    h.kind = (uint8_t) kind;
    h.sweep_start = sweep_start;
    h.as_of = as_of;
    be_put(key, seq, 8);
    k.mv_data = key;
    k.mv_size = sizeof(key);
    v.mv_size = sizeof(h) + (data != NULL ? data->len : 0);
    if ((rc = mdb_put(txn, st->env->outbox, &k, &v, MDB_RESERVE)) != 0)
        return rc;
    memcpy(v.mv_data, &h, sizeof(h));
    if (data != NULL && data->len > 0)
        memcpy((uint8_t *) v.mv_data + sizeof(h), data->p, data->len);
    return store_meta_put_u64(txn, st->env->meta, "sync.seq", seq);
}

/* What one collect transaction writes. */
struct collect_arg {
    const struct change *v;
    size_t n;
    int64_t as_of;             /* of its message, 0: none */
    int64_t now_ms;
    uint64_t rows;             /* out */
};

/* collect_txn - publish a run of changes as one message */

static int
collect_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct collect_arg *a = argp;
    struct buf b;
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t inc;
    size_t i;
    int rc, zero, e;

    a->rows = 0;
    if ((rc = cluster_incarnation(st, txn, a->now_ms, &inc)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, st->env->published, &c)) != 0)
        return rc;
    for (i = 0; i < a->n && rc == 0; i++) {
        const struct change *ch = &a->v[i];
        int nv = ch->key[0] == 's' ? 1 : INA_NEVENTS;

        k.mv_data = (void *) ch->key;
        k.mv_size = ch->klen;
        for (zero = 1, e = 0; e < nv; e++)
            zero &= ch->val[e] == 0;
        if (zero || ch->silent) {
            rc = mdb_cursor_get(c, &k, &v, MDB_SET);
            if (rc == 0)
                rc = mdb_cursor_del(c, 0);
            else if (rc == MDB_NOTFOUND)
                rc = 0;
        } else {
            v.mv_data = (void *) ch->val;
            v.mv_size = (size_t) nv * sizeof(uint64_t);
            rc = mdb_cursor_put(c, &k, &v, 0);
        }
    }
    mdb_cursor_close(c);
    if (rc != 0)
        return rc;
    memset(&b, 0, sizeof(b));
    a->rows = encode_rows(&b, a->v, a->n);
    if (b.failed)
        rc = ENOMEM;
    else if (a->rows > 0)
        rc = outbox_put(st, txn,
                        store_meta_u64(txn, st->env->meta, "sync.seq") + 1,
                        INA_CLUSTER_DELTA, 0, a->as_of, &b);
    free(b.p);
    return rc;
}

/* What one sweep transaction did. */
struct sweep_arg {
    int64_t as_of;
    uint64_t rows;             /* out */
};

/* sweep_txn - put the next chunk of a sweep into the outbox
 *
 * The sweep walks the published table from the key after sweep_pos, as
 * absolute values; after its last row comes the end marker. */

static int
sweep_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct sweep_arg *a = argp;
    struct changes ch = {NULL, 0, 0};
    uint8_t pos[PKEY_MAX];
    uint64_t start, seq;
    struct change *c;
    struct buf b;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t plen;
    int rc, e, nv, ended;

    a->rows = 0;
    if (store_meta_u64(txn, st->env->meta, "sync.sweeping") == 0)
        return 0;
    start = store_meta_u64(txn, st->env->meta, "sync.sweep_start");
    plen = meta_get_bytes(txn, st->env->meta, "sync.sweep_pos", pos,
                          sizeof(pos));
    if ((rc = mdb_cursor_open(txn, st->env->published, &cur)) != 0)
        return rc;
    if (plen == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    } else {
        k.mv_data = pos;
        k.mv_size = plen;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && key_cmp(k.mv_data, k.mv_size, pos, plen) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    while (rc == 0 && ch.n < CLUSTER_SWEEP_ROWS) {
        nv = ((uint8_t *) k.mv_data)[0] == 's' ? 1 : INA_NEVENTS;
        if (k.mv_size <= PKEY_MAX
            && v.mv_size == (size_t) nv * sizeof(uint64_t)) {
            if ((c = changes_add(&ch)) == NULL) {
                rc = ENOMEM;
                break;
            }
            memcpy(c->key, k.mv_data, k.mv_size);
            c->klen = (uint8_t) k.mv_size;
            memcpy(c->val, v.mv_data, v.mv_size);
            for (e = 0; e < nv; e++)
                c->d[e] = clamp_i64(c->val[e]);
        }
        plen = k.mv_size <= sizeof(pos) ? k.mv_size : 0;
        if (plen > 0)
            memcpy(pos, k.mv_data, plen);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        free(ch.v);
        return rc;
    }
    ended = rc == MDB_NOTFOUND;
    seq = store_meta_u64(txn, st->env->meta, "sync.seq");
    memset(&b, 0, sizeof(b));
    if (ch.n > 0) {
        a->rows = encode_rows(&b, ch.v, ch.n);
        rc = b.failed ? ENOMEM
                      : outbox_put(st, txn, ++seq, INA_CLUSTER_SWEEP, start,
                                   a->as_of, &b);
    } else {
        rc = 0;
    }
    if (rc == 0 && plen > 0)
        rc = meta_put_bytes(txn, st->env->meta, "sync.sweep_pos", pos, plen);
    /* The walk ended: the end marker, which lets receivers delete what
     * the sweep did not mention. */
    if (rc == 0 && ended) {
        b.len = 0;
        buf_u8(&b, CLUSTER_WIRE_VERSION);
        rc = b.failed ? ENOMEM
                      : outbox_put(st, txn, ++seq, INA_CLUSTER_SWEEP_END,
                                   start, a->as_of, &b);
        if (rc == 0)
            rc = store_meta_put_u64(txn, st->env->meta, "sync.sweeping", 0);
    }
    free(ch.v);
    free(b.p);
    return rc;
}

/* inc_txn - make the store's incarnation */

static int
inc_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    uint64_t inc;

    return cluster_incarnation(st, txn, *(int64_t *) argp, &inc);
}

/* ina_cluster_collect - put this node's changes into the outbox */

int
ina_cluster_collect(struct ina_store *st, unsigned flags, int64_t now_ms,
                    uint64_t *seqp, uint64_t *rowsp)
{
    struct changes ch = {NULL, 0, 0};
    struct collect_arg ca;
    struct sweep_arg sa;
    uint64_t rows = 0;
    MDB_txn *txn;
    int64_t now;
    size_t i, n;
    int rc, noinc, sweeping;

    if (seqp != NULL)
        *seqp = 0;
    if (rowsp != NULL)
        *rowsp = 0;
    if ((rc = cluster_check(st, 1)) != 0)
        return rc;
    if ((rc = store_enter(st)) != 0)
        return rc;
    if (!st->env->has_cluster) {
        rc = MDB_NOTFOUND;
        goto out;
    }
    now = st->clock(st->clock_arg);
    if (now < 0 || now > (int64_t) UINT32_MAX) {
        rc = INA_ECLOCK;
        goto out;
    }
    /* This reads the tree: pending events are applied first, so the
     * cluster's staleness does not wait for flush_delay, and the agent
     * makes the flushes that idle workers would not. */
    if (batch_has_pending(st, BATCH_COUNTS | BATCH_SESSIONS)
        && (rc = batch_flush(st)) != 0)
        goto out;
    if ((rc = store_read_begin(st, &txn)) != 0)
        goto out;
    noinc = store_meta_u64(txn, st->env->meta, "sync.inc") == 0;
    sweeping = store_meta_u64(txn, st->env->meta, "sync.sweeping") != 0;
    store_read_end(st);
    if ((rc = cluster_scan(st, (flags & INA_CLUSTER_FULL) != 0, now, &ch))
        != 0)
        goto out;
    /* One message, one transaction, per CLUSTER_MSG_ROWS changes; the
     * last one carries as_of: with it, everything is sent. */
    for (i = 0; i < ch.n && rc == 0; i += n) {
        n = ch.n - i < CLUSTER_MSG_ROWS ? ch.n - i : CLUSTER_MSG_ROWS;
        ca.v = ch.v + i;
        ca.n = n;
        ca.now_ms = now_ms;
        ca.as_of = i + n == ch.n ? now_ms : 0;
        if ((rc = cluster_write(st, collect_txn, &ca, 1)) == 0) {
            rows += ca.rows;
            noinc = 0;
        }
    }
    if (rc == 0 && sweeping) {
        sa.as_of = now_ms;
        if ((rc = cluster_write(st, sweep_txn, &sa, 1)) == 0)
            rows += sa.rows;
    }
    if (rc == 0 && noinc)
        rc = cluster_write(st, inc_txn, &now_ms, 0);
    if (rc == 0 && seqp != NULL && (rc = store_read_begin(st, &txn)) == 0) {
        *seqp = store_meta_u64(txn, st->env->meta, "sync.seq");
        store_read_end(st);
    }

out:
    free(ch.v);
    store_leave(st);
    if (rowsp != NULL)
        *rowsp = rows;
    return rc;
}

/* ina_cluster_outbox - visit the outbox messages numbered after after */

int
ina_cluster_outbox(struct ina_store *st, uint64_t after,
                   int (*fn)(void *arg, const struct ina_cluster_msg *m),
                   void *arg)
{
    struct ina_cluster_msg m;
    struct outbox_hdr h;
    uint8_t key[8];
    MDB_cursor *c;
    MDB_txn *txn;
    MDB_val k, v;
    uint64_t inc;
    int rc;

    if ((rc = cluster_check(st, 0)) != 0)
        return rc;
    if ((rc = store_enter(st)) != 0)
        return rc;
    if (!st->env->has_cluster || after == UINT64_MAX) {
        store_leave(st);
        return 0;
    }
    if ((rc = store_read_begin(st, &txn)) != 0) {
        store_leave(st);
        return rc;
    }
    inc = store_meta_u64(txn, st->env->meta, "sync.inc");
    if ((rc = mdb_cursor_open(txn, st->env->outbox, &c)) == 0) {
        be_put(key, after + 1, 8);
        k.mv_data = key;
        k.mv_size = sizeof(key);
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        while (rc == 0) {
            if (k.mv_size == 8 && v.mv_size >= sizeof(h)) {
                memcpy(&h, v.mv_data, sizeof(h));
                memset(&m, 0, sizeof(m));
                m.node = st->conf->cluster_node;
                m.inc = inc;
                m.seq = be_get(k.mv_data, 8);
                m.kind = h.kind;
                m.as_of = h.as_of;
                m.sweep_start = h.sweep_start;
                m.data = (uint8_t *) v.mv_data + sizeof(h);
                m.len = v.mv_size - sizeof(h);
                if ((rc = fn(arg, &m)) != 0)
                    break;
            }
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        mdb_cursor_close(c);
    }
    store_read_end(st);
    store_leave(st);
    return rc;
}

/* What ina_cluster_sent() records. */
struct sent_arg {
    uint64_t seq;
    int64_t now_ms;
};

/* sent_txn - delete the sent messages, record how far sending got */

static int
sent_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct sent_arg *a = argp;
    MDB_cursor *c;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_cursor_open(txn, st->env->outbox, &c)) != 0)
        return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0 && k.mv_size == 8 && be_get(k.mv_data, 8) <= a->seq) {
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL)
        return rc;
    if (a->seq > store_meta_u64(txn, st->env->meta, "sync.sent")
        && (rc = store_meta_put_u64(txn, st->env->meta, "sync.sent",
                                    a->seq)) != 0)
        return rc;
    return store_meta_put_u64(txn, st->env->meta, "sync.sent_at",
                              (uint64_t) a->now_ms);
}

/* ina_cluster_sent - the outbox up to seq has been sent */

int
ina_cluster_sent(struct ina_store *st, uint64_t seq, int64_t now_ms)
{
    struct sent_arg a;
    int rc;

    if ((rc = cluster_check(st, 1)) != 0)
        return rc;
    if ((rc = store_enter(st)) != 0)
        return rc;
    a.seq = seq;
    a.now_ms = now_ms;
    rc = cluster_write(st, sent_txn, &a, 0);
    store_leave(st);
    return rc;
}

/* ---------------------------------------------------------------------
 * Consumer: apply
 * ------------------------------------------------------------------- */

/* What one apply transaction has in hand. */
struct apply_arg {
    const struct ina_cluster_msg *msgs;
    size_t nmsgs;
    const struct ina_cluster_beat *beats;
    size_t nbeats;
    const struct ina_cluster_request *reqs;
    size_t nreqs;
    int64_t now_ms;
    int64_t now;               /* the store's clock, seconds */
    MDB_cursor *rows;          /* on "cluster" */
    MDB_cursor *gauges;        /* on "csessions" */
};

/* peer_get - the record of a node; MDB_NOTFOUND if there is none */

static int
peer_get(struct ina_store *st, MDB_txn *txn, const char *node,
         struct peer_rec *p)
{
    MDB_val k, v;
    int rc;

    k.mv_data = (void *) node;
    k.mv_size = strlen(node);
    if ((rc = mdb_get(txn, st->env->peers, &k, &v)) != 0)
        return rc;
    if (v.mv_size != sizeof(*p))
        return MDB_NOTFOUND;
    memcpy(p, v.mv_data, sizeof(*p));
    return p->version == PEER_VERSION ? 0 : MDB_NOTFOUND;
}

/* peer_put - store the record of a node */

static int
peer_put(struct ina_store *st, MDB_txn *txn, const char *node,
         const struct peer_rec *p)
{
    MDB_val k, v;

    k.mv_data = (void *) node;
    k.mv_size = strlen(node);
    v.mv_data = (void *) p;
    v.mv_size = sizeof(*p);
    return mdb_put(txn, st->env->peers, &k, &v, 0);
}

/* peer_new - a record for a node first heard of, with a free id */

static int
peer_new(struct ina_store *st, MDB_txn *txn, uint64_t inc, int64_t now_ms,
         struct peer_rec *p)
{
    static const size_t nbits = 65536;
    uint8_t *used;
    struct peer_rec q;
    MDB_cursor *c;
    MDB_val k, v;
    size_t id;
    int rc;

    if ((used = calloc(nbits / 8, 1)) == NULL)
        return ENOMEM;
    if ((rc = mdb_cursor_open(txn, st->env->peers, &c)) != 0) {
        free(used);
        return rc;
    }
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (v.mv_size == sizeof(q)) {
            memcpy(&q, v.mv_data, sizeof(q));
            used[q.id / 8] |= (uint8_t) (1u << (q.id % 8));
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    for (id = 1; id < nbits && (used[id / 8] & (1u << (id % 8))); id++)
        ;
    free(used);
    if (id == nbits)
        return ENOSPC;
    memset(p, 0, sizeof(*p));
    p->version = PEER_VERSION;
    p->id = (uint16_t) id;
    p->inc = inc;
    p->heard = now_ms;
    strcpy(p->pos, "0-0");
    return 0;
}

/* drop_table - delete the rows of node id set before message before
 * (UINT64_MAX: all of them) from one cluster table */

static int
drop_table(MDB_cursor *c, uint16_t id, uint64_t before, size_t vsize,
           uint64_t *dropped)
{
    MDB_val k, v;
    uint64_t seq;
    int rc;

    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        const uint8_t *key = k.mv_data;

        if (k.mv_size > CLUSTER_ID_LEN
            && be_get(key + k.mv_size - CLUSTER_ID_LEN, CLUSTER_ID_LEN) == id) {
            seq = 0;
            if (v.mv_size == vsize)
                memcpy(&seq, (uint8_t *) v.mv_data + vsize - sizeof(seq),
                       sizeof(seq));
            if (seq < before) {
                if ((rc = mdb_cursor_del(c, 0)) != 0)
                    return rc;
                (*dropped)++;
                rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
                continue;
            }
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
}

/* drop_rows - delete a node's counters and gauges set before before */

static int
drop_rows(struct apply_arg *a, uint16_t id, uint64_t before, int counters,
          uint64_t *dropped)
{
    int rc = 0;

    if (counters)
        rc = drop_table(a->rows, id, before, RVAL_COUNTERS, dropped);
    if (rc == 0)
        rc = drop_table(a->gauges, id, before, RVAL_GAUGE, dropped);
    return rc;
}

/* row_set - set (absolute) or move (delta) one row of a cluster table
 *
 * n values, followed in the stored row by the message number seq.  A row
 * that falls to all zeros is deleted. */

static int
row_set(MDB_cursor *c, const uint8_t *key, size_t klen, const int64_t *d,
        int n, int absolute, uint64_t seq)
{
    uint64_t val[INA_NEVENTS + 1];
    size_t vsize = (size_t) (n + 1) * sizeof(uint64_t);
    MDB_val k, v;
    int rc, e, zero = 1;

    k.mv_data = (void *) key;
    k.mv_size = klen;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    if (rc == 0 && v.mv_size == vsize)
        memcpy(val, v.mv_data, vsize);
    else if (rc == 0 || rc == MDB_NOTFOUND)
        memset(val, 0, sizeof(val));
    else
        return rc;
    for (e = 0; e < n; e++) {
        val[e] = absolute ? (d[e] > 0 ? (uint64_t) d[e] : 0)
                          : add_delta(val[e], d[e]);
        zero &= val[e] == 0;
    }
    val[n] = seq;
    if (zero)
        return rc == 0 ? mdb_cursor_del(c, 0) : 0;
    v.mv_data = val;
    v.mv_size = vsize;
    return mdb_cursor_put(c, &k, &v, rc == 0 ? MDB_CURRENT : 0);
}

/* apply_rows - decode a message's rows, and apply them unless dry
 *
 * Returns 0, EBADMSG if the rows are malformed, or an LMDB code. */

static int
apply_rows(struct ina_store *st, struct apply_arg *a, uint16_t id,
           const struct ina_cluster_msg *m, int dry)
{
    struct rd r;
    uint8_t key[RKEY_MAX], addr[16], hdr[1 + INA_SERVICE_MAX];
    const uint8_t *p;
    uint64_t n, i, width, window;
    int64_t d[INA_NEVENTS];
    unsigned tag, family, plen, slen = 0, ab, alen;
    size_t klen;
    int keep, wi, e, nv, rc;
    uint32_t cur;

    r.p = m->data;
    r.end = r.p + m->len;
    r.bad = 0;
    if (m->len == 0 || m->data == NULL)
        return m->kind == INA_CLUSTER_SWEEP_END ? 0 : EBADMSG;
    if (rd_u8(&r) != CLUSTER_WIRE_VERSION)
        return EBADMSG;
    while (!r.bad && r.p < r.end) {
        tag = rd_u8(&r);
        width = window = 0;
        if (tag == GROUP_COUNTERS) {
            width = rd_varint(&r);
            window = rd_varint(&r);
            if (width == 0 || width > UINT32_MAX || window > UINT32_MAX)
                return EBADMSG;
        } else if (tag == GROUP_GAUGES) {
            slen = rd_u8(&r);
            if (slen == 0 || slen > INA_SERVICE_MAX
                || (p = rd_bytes(&r, slen)) == NULL)
                return EBADMSG;
            memcpy(hdr, p, slen);
        } else {
            return EBADMSG;
        }
        family = rd_u8(&r);
        plen = rd_u8(&r);
        n = rd_varint(&r);
        if (r.bad || (family != 4 && family != 6)
            || plen > cidr_maxlen((int) family))
            return EBADMSG;
        alen = cidr_addrlen((int) family);
        ab = (plen + 7) / 8;
        nv = tag == GROUP_GAUGES ? 1 : INA_NEVENTS;
        /* Each row takes at least ab + nv bytes. */
        if (n > (uint64_t) (r.end - r.p) / (ab + (unsigned) nv))
            return EBADMSG;
        /* Rows this node does not count are read and skipped. */
        keep = !dry && cluster_gran_ok(st->conf, family, plen);
        if (tag == GROUP_COUNTERS && keep) {
            wi = cluster_width(st, (uint32_t) width);
            keep = wi >= 0;
            if (keep) {
                cur = (uint32_t) (a->now / (int64_t) width);
                keep = window >= cluster_cutoff(st, (size_t) wi, cur)
                       && window <= (uint64_t) cur + 1;
            }
        }
        for (i = 0; i < n; i++) {
            if ((p = rd_bytes(&r, ab)) == NULL)
                return EBADMSG;
            for (e = 0; e < nv; e++)
                d[e] = unzigzag(rd_varint(&r));
            if (r.bad)
                return EBADMSG;
            if (!keep)
                continue;
            memset(addr, 0, sizeof(addr));
            memcpy(addr, p, ab);
            cidr_mask(addr, alen, plen);
            if (tag == GROUP_COUNTERS)
                klen = store_ckey(key, (uint32_t) width, (uint32_t) window,
                                  (int) family, plen, addr);
            else
                klen = store_skey(key, (const char *) hdr, slen,
                                  (int) family, plen, addr);
            be_put(key + klen, id, CLUSTER_ID_LEN);
            rc = row_set(tag == GROUP_COUNTERS ? a->rows : a->gauges, key,
                         klen + CLUSTER_ID_LEN, d, nv,
                         m->kind == INA_CLUSTER_SWEEP, m->seq);
            if (rc != 0)
                return rc;
        }
    }
    return r.bad ? EBADMSG : 0;
}

/* peer_new_inc - a node's store was replaced: forget the old one's rows */

static int
peer_new_inc(struct ina_store *st, struct apply_arg *a, const char *node,
             struct peer_rec *p, uint64_t inc)
{
    uint64_t dropped = 0;
    int rc;

    if ((rc = drop_rows(a, p->id, UINT64_MAX, 1, &dropped)) != 0)
        return rc;
    store_log(st, INA_LOG_NOTICE,
              "cluster: node %s has a new store (incarnation %llx, was "
              "%llx): %llu rows of the old one dropped", node,
              (unsigned long long) inc, (unsigned long long) p->inc,
              (unsigned long long) dropped);
    p->inc = inc;
    p->seq = 0;
    p->flags = 0;
    p->resync_after = 0;
    p->as_of = 0;
    strcpy(p->pos, "0-0");
    return 0;
}

/* peer_lookup - a node's record, made if it is new; returns 1 in *skip
 * for a name that cannot be a node's */

static int
peer_lookup(struct ina_store *st, MDB_txn *txn, const char *node,
            uint64_t inc, int64_t now_ms, struct peer_rec *p, int *skip)
{
    size_t len = node != NULL ? strlen(node) : 0;
    int rc;

    *skip = len == 0 || len > INA_NODE_MAX
            || strcmp(node, st->conf->cluster_node) == 0;
    if (*skip)
        return 0;
    rc = peer_get(st, txn, node, p);
    if (rc == MDB_NOTFOUND)
        rc = peer_new(st, txn, inc, now_ms, p);
    return rc;
}

/* apply_msg - apply one message of another node, exactly once */

static int
apply_msg(struct ina_store *st, MDB_txn *txn, struct apply_arg *a,
          const struct ina_cluster_msg *m)
{
    struct peer_rec p;
    uint64_t dropped = 0;
    int rc, skip;

    if ((rc = peer_lookup(st, txn, m->node, m->inc, a->now_ms, &p, &skip))
        != 0 || skip)
        return rc;
    if (m->pos != NULL && strlen(m->pos) < sizeof(p.pos))
        strcpy(p.pos, m->pos);
    if (m->inc < p.inc)            /* a replaced store's leftovers */
        return peer_put(st, txn, m->node, &p);
    if (m->inc > p.inc
        && (rc = peer_new_inc(st, a, m->node, &p, m->inc)) != 0)
        return rc;
    p.heard = a->now_ms;
    p.flags &= (uint16_t) ~PEER_GONE;
    if (m->seq <= p.seq)           /* applied already */
        return peer_put(st, txn, m->node, &p);
    if (m->seq > p.seq + 1) {
        if (!(p.flags & PEER_RESYNC) || m->seq - 1 > p.resync_after)
            store_log(st, INA_LOG_NOTICE,
                      "cluster: node %s: messages %llu..%llu are missing; "
                      "asking for a resync", m->node,
                      (unsigned long long) p.seq + 1,
                      (unsigned long long) m->seq - 1);
        p.flags |= PEER_RESYNC;
        if (m->seq - 1 > p.resync_after)
            p.resync_after = m->seq - 1;
    }
    if ((m->kind != INA_CLUSTER_DELTA && m->kind != INA_CLUSTER_SWEEP
         && m->kind != INA_CLUSTER_SWEEP_END)
        || (rc = apply_rows(st, a, p.id, m, 1)) == EBADMSG) {
        store_log(st, INA_LOG_WARNING,
                  "cluster: node %s: message %llu is malformed or of "
                  "another version; skipped, resync asked", m->node,
                  (unsigned long long) m->seq);
        p.flags |= PEER_RESYNC;
        if (m->seq > p.resync_after)
            p.resync_after = m->seq;
        rc = 0;
    } else if (rc == 0 && (rc = apply_rows(st, a, p.id, m, 0)) == 0
               && m->kind == INA_CLUSTER_SWEEP_END) {
        /* What the sweep did not mention, the node no longer has. */
        if ((rc = drop_rows(a, p.id, m->sweep_start, 1, &dropped)) != 0)
            return rc;
        if ((p.flags & PEER_RESYNC) && m->sweep_start > p.resync_after) {
            p.flags &= (uint16_t) ~PEER_RESYNC;
            store_log(st, INA_LOG_NOTICE,
                      "cluster: node %s: resync complete at message %llu "
                      "(%llu stale rows dropped)", m->node,
                      (unsigned long long) m->seq,
                      (unsigned long long) dropped);
        }
    }
    if (rc != 0)
        return rc;
    p.seq = m->seq;
    if (m->as_of > p.as_of)
        p.as_of = m->as_of;
    p.applied = a->now_ms;
    p.messages++;
    return peer_put(st, txn, m->node, &p);
}

/* apply_beat - a node's heartbeat: freshness, and lost messages */

static int
apply_beat(struct ina_store *st, MDB_txn *txn, struct apply_arg *a,
           const struct ina_cluster_beat *b)
{
    struct peer_rec p;
    int rc, skip;

    /* A node silent for longer than any history is not recreated. */
    if (a->now_ms - b->as_of > cluster_horizon_ms(st))
        return 0;
    if ((rc = peer_lookup(st, txn, b->node, b->inc, a->now_ms, &p, &skip))
        != 0 || skip)
        return rc;
    if (b->inc < p.inc)
        return 0;
    if (b->inc > p.inc && (rc = peer_new_inc(st, a, b->node, &p, b->inc))
                              != 0)
        return rc;
    if (b->as_of > p.beat_as_of) {
        p.beat_as_of = b->as_of;
        p.heard = a->now_ms;
        p.flags &= (uint16_t) ~PEER_GONE;
    }
    if (b->seq > p.seq) {
        /* Every message there was has been read, and this one is not
         * among them: lost.  Read the node's stream again from its start
         * (it may have been made anew) and ask for a sweep. */
        if (!(p.flags & PEER_RESYNC) || b->seq > p.resync_after) {
            store_log(st, INA_LOG_NOTICE,
                      "cluster: node %s has sent up to message %llu, "
                      "applied here %llu: asking for a resync", b->node,
                      (unsigned long long) b->seq,
                      (unsigned long long) p.seq);
            p.flags |= PEER_RESYNC;
            p.resync_after = b->seq;
            strcpy(p.pos, "0-0");
        }
    } else if (b->as_of > p.as_of) {
        p.as_of = b->as_of;
    }
    return peer_put(st, txn, b->node, &p);
}

/* apply_request - another node asks this one for a sweep
 *
 * A sweep that began after the number the asker has missed serves it;
 * otherwise a new one begins with the next message. */

static int
apply_request(struct ina_store *st, MDB_txn *txn,
              const struct ina_cluster_request *r)
{
    MDB_dbi meta = st->env->meta;
    uint64_t inc, seq, start, after;
    int rc;

    inc = store_meta_u64(txn, meta, "sync.inc");
    if (inc == 0 || r->inc != inc)
        return 0;
    seq = store_meta_u64(txn, meta, "sync.seq");
    start = store_meta_u64(txn, meta, "sync.sweep_start");
    after = r->after < seq ? r->after : seq;
    if (start > after)
        return 0;
    store_log(st, INA_LOG_NOTICE,
              "cluster: node %s asks for a resync after message %llu: "
              "sweep from message %llu", r->node ? r->node : "?",
              (unsigned long long) r->after, (unsigned long long) seq + 1);
    if ((rc = store_meta_put_u64(txn, meta, "sync.sweep_start", seq + 1))
            != 0
        || (rc = store_meta_put_u64(txn, meta, "sync.sweeping", 1)) != 0)
        return rc;
    return meta_put_bytes(txn, meta, "sync.sweep_pos", "", 0);
}

/* apply_upkeep - gone and forgotten nodes */

static int
apply_upkeep(struct ina_store *st, MDB_txn *txn, struct apply_arg *a)
{
    struct peer_rec p;
    char node[INA_NODE_MAX + 1];
    int64_t horizon = cluster_horizon_ms(st);
    uint64_t dropped;
    MDB_cursor *c;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_cursor_open(txn, st->env->peers, &c)) != 0)
        return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (v.mv_size != sizeof(p) || k.mv_size > INA_NODE_MAX) {
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            continue;
        }
        memcpy(&p, v.mv_data, sizeof(p));
        memcpy(node, k.mv_data, k.mv_size);
        node[k.mv_size] = '\0';
        dropped = 0;
        if (a->now_ms - p.heard > horizon) {
            if ((rc = drop_rows(a, p.id, UINT64_MAX, 1, &dropped)) != 0
                || (rc = mdb_cursor_del(c, 0)) != 0)
                break;
            store_log(st, INA_LOG_NOTICE,
                      "cluster: node %s not heard from for %lld s: "
                      "forgotten (%llu rows)", node,
                      (long long) ((a->now_ms - p.heard) / 1000),
                      (unsigned long long) dropped);
            rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
            continue;
        }
        if (a->now_ms - p.heard > INA_CLUSTER_GONE_MS
            && !(p.flags & PEER_GONE)) {
            /* Its sessions are presumed closed; a sweep brings them
             * back when it is heard again. */
            if ((rc = drop_rows(a, p.id, UINT64_MAX, 0, &dropped)) != 0)
                break;
            p.flags |= PEER_GONE | PEER_RESYNC;
            if (p.seq > p.resync_after)
                p.resync_after = p.seq;
            store_log(st, INA_LOG_NOTICE,
                      "cluster: node %s not heard from for %lld s: its %llu "
                      "session gauges no longer count", node,
                      (long long) ((a->now_ms - p.heard) / 1000),
                      (unsigned long long) dropped);
            v.mv_data = &p;
            v.mv_size = sizeof(p);
            if ((rc = mdb_cursor_put(c, &k, &v, MDB_CURRENT)) != 0)
                break;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
}

/* apply_txn - ina_cluster_apply() in one transaction */

static int
apply_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct apply_arg *a = argp;
    size_t i;
    int rc;

    a->rows = a->gauges = NULL;
    if ((rc = mdb_cursor_open(txn, st->env->cluster, &a->rows)) != 0
        || (rc = mdb_cursor_open(txn, st->env->csessions, &a->gauges)) != 0)
        goto out;
    for (i = 0; i < a->nmsgs && rc == 0; i++)
        rc = apply_msg(st, txn, a, &a->msgs[i]);
    for (i = 0; i < a->nbeats && rc == 0; i++)
        rc = apply_beat(st, txn, a, &a->beats[i]);
    for (i = 0; i < a->nreqs && rc == 0; i++)
        rc = apply_request(st, txn, &a->reqs[i]);
    if (rc == 0)
        rc = apply_upkeep(st, txn, a);
    if (rc == 0) {
        rc = cluster_expire(st, txn, a->now, CLUSTER_EXPIRE_CHUNK, NULL);
        if (rc == MDB_INCOMPATIBLE)
            rc = 0;
    }

out:
    if (a->gauges != NULL)
        mdb_cursor_close(a->gauges);
    if (a->rows != NULL)
        mdb_cursor_close(a->rows);
    a->rows = a->gauges = NULL;
    return rc;
}

/* ina_cluster_apply - fold other nodes' messages into the cluster table */

int
ina_cluster_apply(struct ina_store *st, const struct ina_cluster_msg *msgs,
                  size_t nmsgs, const struct ina_cluster_beat *beats,
                  size_t nbeats, const struct ina_cluster_request *reqs,
                  size_t nreqs, int64_t now_ms)
{
    struct apply_arg a;
    int rc;

    if ((rc = cluster_check(st, 1)) != 0)
        return rc;
    if ((msgs == NULL && nmsgs > 0) || (beats == NULL && nbeats > 0)
        || (reqs == NULL && nreqs > 0))
        return EINVAL;
    if ((rc = store_enter(st)) != 0)
        return rc;
    memset(&a, 0, sizeof(a));
    a.msgs = msgs;
    a.nmsgs = nmsgs;
    a.beats = beats;
    a.nbeats = nbeats;
    a.reqs = reqs;
    a.nreqs = nreqs;
    a.now_ms = now_ms;
    a.now = st->clock(st->clock_arg);
    if (a.now < 0 || a.now > (int64_t) UINT32_MAX)
        rc = INA_ECLOCK;
    else
        rc = cluster_write(st, apply_txn, &a, nmsgs > 0);
    store_leave(st);
    return rc;
}

/* ---------------------------------------------------------------------
 * Status, queries, expiry
 * ------------------------------------------------------------------- */

/* ina_cluster_status - this node's sync and every known node's */

int
ina_cluster_status(struct ina_store *st, struct ina_cluster_self *self,
                   int (*fn)(void *arg, const struct ina_cluster_peer *p),
                   void *arg)
{
    struct ina_cluster_peer out;
    struct peer_rec p;
    MDB_dbi meta;
    MDB_cursor *c;
    MDB_txn *txn;
    MDB_stat s;
    MDB_val k, v;
    int rc;

    if (self != NULL)
        memset(self, 0, sizeof(*self));
    if ((rc = cluster_check(st, 0)) != 0)
        return rc;
    if ((rc = store_enter(st)) != 0)
        return rc;
    if (!st->env->has_cluster) {
        store_leave(st);
        return 0;
    }
    if ((rc = store_read_begin(st, &txn)) != 0) {
        store_leave(st);
        return rc;
    }
    meta = st->env->meta;
    if (self != NULL) {
        self->inc = store_meta_u64(txn, meta, "sync.inc");
        self->seq = store_meta_u64(txn, meta, "sync.seq");
        self->sent = store_meta_u64(txn, meta, "sync.sent");
        self->sent_at = (int64_t) store_meta_u64(txn, meta, "sync.sent_at");
        self->sweeping = store_meta_u64(txn, meta, "sync.sweeping") != 0;
        self->sweep_start = store_meta_u64(txn, meta, "sync.sweep_start");
        if (mdb_stat(txn, st->env->outbox, &s) == 0)
            self->outbox = s.ms_entries;
        if (mdb_stat(txn, st->env->cluster, &s) == 0)
            self->rows = s.ms_entries;
        if (mdb_stat(txn, st->env->csessions, &s) == 0)
            self->rows += s.ms_entries;
    }
    if (fn != NULL && (rc = mdb_cursor_open(txn, st->env->peers, &c)) == 0) {
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        while (rc == 0) {
            if (v.mv_size == sizeof(p) && k.mv_size <= INA_NODE_MAX) {
                memcpy(&p, v.mv_data, sizeof(p));
                memset(&out, 0, sizeof(out));
                memcpy(out.node, k.mv_data, k.mv_size);
                out.inc = p.inc;
                out.seq = p.seq;
                out.as_of = p.as_of;
                out.heard = p.heard;
                out.applied = p.applied;
                out.messages = p.messages;
                out.resync = (p.flags & PEER_RESYNC) != 0;
                out.resync_after = p.resync_after;
                out.gone = (p.flags & PEER_GONE) != 0;
                memcpy(out.pos, p.pos, sizeof(out.pos));
                out.pos[sizeof(out.pos) - 1] = '\0';
                if ((rc = fn(arg, &out)) != 0)
                    break;
            }
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        mdb_cursor_close(c);
    }
    store_read_end(st);
    store_leave(st);
    return rc;
}

/* cluster_cursor - a cursor on the cluster's counters or gauges
 *
 * *cur is NULL when the store has no cluster tables (a read-only handle
 * on a store made before them): the cluster part is then zero. */

int
cluster_cursor(struct ina_store *st, MDB_txn *txn, int gauges,
               MDB_cursor **cur)
{
    *cur = NULL;
    if (!st->env->has_cluster)
        return 0;
    return mdb_cursor_open(txn, gauges ? st->env->csessions
                                       : st->env->cluster, cur);
}

/* cluster_sum - sum one value over the rows of a block, every node's
 *
 * The rows are keyed pfx (pfxlen bytes) | address (alen) | node id, and
 * those of addresses lo .. hi are one range.  field selects the value. */

int
cluster_sum(MDB_cursor *cur, const uint8_t *pfx, size_t pfxlen,
            const uint8_t *lo, const uint8_t *hi, unsigned alen,
            size_t field, uint64_t *sum)
{
    uint8_t key[RKEY_MAX];
    uint64_t x;
    MDB_val k, v;
    int rc;

    memcpy(key, pfx, pfxlen);
    memcpy(key + pfxlen, lo, alen);
    k.mv_data = key;
    k.mv_size = pfxlen + alen;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != pfxlen + alen + CLUSTER_ID_LEN
            || memcmp(k.mv_data, pfx, pfxlen) != 0
            || memcmp((uint8_t *) k.mv_data + pfxlen, hi, alen) > 0)
            break;
        if (v.mv_size >= (field + 2) * sizeof(x)) {
            memcpy(&x, (uint8_t *) v.mv_data + field * sizeof(x), sizeof(x));
            *sum = sat_add(*sum, x);
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* cluster_expire - delete the cluster's counters no monitor keeps
 *
 * Keys are ordered by width, then window, as in "counts": each width
 * present is one seek, and its expired windows its first keys.  Widths
 * no monitor has lose every row.  At most limit rows go; returns
 * MDB_INCOMPATIBLE when the limit stopped it. */

int
cluster_expire(struct ina_store *st, MDB_txn *txn, int64_t now, size_t limit,
               uint64_t *removed)
{
    uint8_t probe[8];
    uint64_t w;
    uint32_t cutoff;
    MDB_cursor *c;
    MDB_val k, v;
    size_t done = 0;
    int rc, wi;

    if (!st->env->has_cluster)
        return 0;
    if ((rc = mdb_cursor_open(txn, st->env->cluster, &c)) != 0)
        return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0 && done < limit) {
        if (k.mv_size < 8) {
            rc = mdb_cursor_del(c, 0);
            done++;
            if (rc == 0)
                rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
            continue;
        }
        w = be_get(k.mv_data, 4);
        wi = cluster_width(st, (uint32_t) w);
        cutoff = wi < 0 ? UINT32_MAX
                        : cluster_cutoff(st, (size_t) wi,
                                         (uint32_t) (now / (int64_t) w));
        if (wi >= 0 && be_get((uint8_t *) k.mv_data + 4, 4) >= cutoff) {
            /* The rest of this width is kept: on to the next width. */
            if (w == UINT32_MAX)
                break;
            be_put(probe, w + 1, 4);
            be_put(probe + 4, 0, 4);
            k.mv_data = probe;
            k.mv_size = sizeof(probe);
            rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
            continue;
        }
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
        done++;
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
    }
    mdb_cursor_close(c);
    if (removed != NULL)
        *removed += done;
    if (rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL)
        return rc;
    return done >= limit ? MDB_INCOMPATIBLE : 0;
}
