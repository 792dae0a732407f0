/* admin.c - whole-store operations: expire, clear, stat, walk, load, top
 *
 * These are the operator's operations (auditctl and the demo), not the
 * MTA's hot path.  Scans read one snapshot; deletions run in write
 * transactions of bounded size so that a large expiry never holds the
 * writer lock for long or dirties more pages than LMDB allows in one
 * transaction.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "inaudit.h"
#include "internal.h"

/* Counters deleted per transaction by ina_expire(). */
#define ADMIN_EXPIRE_CHUNK 20000

/* be32 - a big-endian field of a key */

static uint32_t
be32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | (uint32_t) p[3];
}

/* admin_decode_counter - a counter record as struct ina_counter
 *
 * Returns 0, or EINVAL for a record of the wrong shape. */

static int
admin_decode_counter(const MDB_val *k, const MDB_val *v,
                     struct ina_counter *c)
{
    const uint8_t *key = k->mv_data;
    unsigned family;

    if (k->mv_size < CKEY_HDR + 4 || v->mv_size != CVAL_SIZE)
        return EINVAL;
    family = key[8];
    if ((family != 4 && family != 6)
        || k->mv_size != CKEY_HDR + cidr_addrlen((int) family)
        || key[9] > cidr_maxlen((int) family))
        return EINVAL;
    memset(c, 0, sizeof(*c));
    c->width = be32(key);
    c->window = be32(key + 4);
    c->prefix.family = (uint8_t) family;
    c->prefix.plen = key[9];
    c->prefix.has_mask = 1;
    memcpy(c->prefix.addr, key + CKEY_HDR, cidr_addrlen((int) family));
    memcpy(c->count, v->mv_data, CVAL_SIZE);
    return 0;
}

/* admin_decode_gauge - a session record as struct ina_gauge */

static int
admin_decode_gauge(const MDB_val *k, const MDB_val *v, struct ina_gauge *g)
{
    const uint8_t *key = k->mv_data;
    size_t slen;
    unsigned family;

    if (k->mv_size < 4 || v->mv_size != sizeof(uint64_t))
        return EINVAL;
    slen = key[0];
    if (slen == 0 || slen > INA_SERVICE_MAX || k->mv_size < slen + 3)
        return EINVAL;
    family = key[1 + slen];
    if ((family != 4 && family != 6)
        || k->mv_size != 3 + slen + cidr_addrlen((int) family)
        || key[2 + slen] > cidr_maxlen((int) family))
        return EINVAL;
    memset(g, 0, sizeof(*g));
    memcpy(g->service, key + 1, slen);
    g->service[slen] = '\0';
    g->prefix.family = (uint8_t) family;
    g->prefix.plen = key[2 + slen];
    g->prefix.has_mask = 1;
    memcpy(g->prefix.addr, key + 3 + slen, cidr_addrlen((int) family));
    memcpy(&g->count, v->mv_data, sizeof(g->count));
    return 0;
}

/* admin_inside - is prefix p inside block b (same family, not coarser)? */

static int
admin_inside(const struct ina_cidr *p, const struct ina_cidr *b)
{
    uint8_t a[16];
    unsigned alen = cidr_addrlen(b->family);

    if (p->family != b->family || p->plen < b->plen)
        return 0;
    memcpy(a, p->addr, alen);
    cidr_mask(a, alen, b->plen);
    return memcmp(a, b->addr, alen) == 0;
}

struct expire_arg {
    uint64_t removed;
    int more;
    /* The now database's sweep is done: in a committed chunk (now_done),
     * in the chunk under way (now_txn, kept once it commits). */
    int now_done, now_txn;
};

/* expire_txn - one bounded chunk of ina_expire()
 *
 * Configured widths lose the windows their monitors no longer keep;
 * widths no monitor has any more (the configuration changed) lose
 * everything. */

static int
expire_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct expire_arg *a = argp;
    uint64_t done = 0;
    int64_t now = st->clock(st->clock_arg);
    uint8_t probe[4];
    MDB_cursor *c;
    MDB_val k, v;
    uint32_t w;
    size_t i;
    int rc;

    a->more = 0;
    a->removed = 0;
    a->now_txn = a->now_done;
    /* Each width's old windows, then (i == nwidths) the now database's
     * entries of windows no monitor keeps, of any width: once, not again
     * in each chunk the counts database's other widths take below. */
    for (i = 0; i <= st->nwidths; i++) {
        if (i < st->nwidths) {
            st->widths[i].clean = 0;
            rc = store_expire_width(st, txn, i,
                                    (uint32_t) (now / st->widths[i].width),
                                    ADMIN_EXPIRE_CHUNK - done, &done);
        } else if (!a->now_txn) {
            rc = store_expire_now(st, txn, now, ADMIN_EXPIRE_CHUNK - done, 1,
                                  &done);
            a->now_txn = rc == 0;
        } else {
            rc = 0;
        }
        if (rc == MDB_INCOMPATIBLE) {
            a->more = 1;
            a->removed = done;
            return 0;
        }
        if (rc != 0)
            return rc;
    }
    if ((rc = mdb_cursor_open(txn, st->env->counts, &c)) != 0)
        return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0 && done < ADMIN_EXPIRE_CHUNK) {
        w = k.mv_size >= 4 ? be32(k.mv_data) : 0;
        for (i = 0; i < st->nwidths; i++)
            if (st->widths[i].width == w)
                break;
        if (i < st->nwidths && k.mv_size >= 4) {
            /* A configured width: skip to the next width. */
            if (w == UINT32_MAX)
                break;
            probe[0] = (uint8_t) ((w + 1) >> 24);
            probe[1] = (uint8_t) ((w + 1) >> 16);
            probe[2] = (uint8_t) ((w + 1) >> 8);
            probe[3] = (uint8_t) (w + 1);
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
    if (rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL)
        return rc;
    a->more = done >= ADMIN_EXPIRE_CHUNK;
    /* Then the other nodes' counters in the cluster table (cluster.c),
     * which expire with the same windows. */
    if (!a->more) {
        rc = cluster_expire(st, txn, now, ADMIN_EXPIRE_CHUNK - done, &done);
        if (rc == MDB_INCOMPATIBLE)
            a->more = 1;
        else if (rc != 0)
            return rc;
    }
    a->removed = done;
    return 0;
}

/* ina_expire - delete every window no monitor retains any more */

int
ina_expire(struct ina_store *st, uint64_t *removed)
{
    struct expire_arg a;
    uint64_t total = 0;
    int rc;

    if (removed != NULL)
        *removed = 0;
    if (st->flags & INA_STORE_RDONLY)
        return INA_ERDONLY;
    if ((rc = store_enter(st)) != 0)
        return rc;
    /* The handle's own pending events first. */
    (void) batch_flush(st);
    memset(&a, 0, sizeof(a));
    do {
        if ((rc = store_write(st, expire_txn, &a)) != 0)
            break;
        a.now_done = a.now_txn;
        total += a.removed;
    } while (a.more);
    store_leave(st);
    if (removed != NULL)
        *removed = total;
    return rc;
}

/* A block's counts in one window, to take off the coarser counters. */
struct clear_part {
    uint32_t width, window;
    uint64_t count[INA_NEVENTS];
    char service[INA_SERVICE_MAX + 1]; /* gauges: which service */
};

struct clear_arg {
    struct ina_store *st;
    const struct ina_cidr *block;
    unsigned gran;                     /* counters that sum the block */
    uint64_t removed;
    struct clear_part *parts;
    size_t nparts, cap;
};

/* clear_note - remember what a deleted counter of the block held */

static int
clear_note(struct clear_arg *a, uint32_t width, uint32_t window,
           const uint64_t *count, size_t ncount, const char *service)
{
    struct clear_part *p;
    size_t i;

    for (i = 0; i < a->nparts; i++) {
        p = &a->parts[i];
        if (p->width == width && p->window == window
            && strcmp(p->service, service) == 0)
            break;
    }
    if (i == a->nparts) {
        if (a->nparts == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 64;

            if ((p = realloc(a->parts, cap * sizeof(*p))) == NULL)
                return ENOMEM;
            a->parts = p;
            a->cap = cap;
        }
        p = &a->parts[a->nparts++];
        memset(p, 0, sizeof(*p));
        p->width = width;
        p->window = window;
        snprintf(p->service, sizeof(p->service), "%s", service);
    }
    for (i = 0; i < ncount; i++)
        p->count[i] += count[i];
    return 0;
}

/* clear_now - delete the now records inside the block, noting what
 * those at the block's granularity held */

static int
clear_now(MDB_cursor *nc, struct clear_arg *a)
{
    struct ina_cidr p;
    const uint8_t *key;
    struct nent ent[NENT_MAX];
    MDB_val k, v;
    size_t i, n;
    int rc, got;

    rc = now_get(nc, &k, &v, MDB_FIRST);
    while (rc == 0) {
        key = k.mv_data;
        memset(&p, 0, sizeof(p));
        if (k.mv_size != 2 + cidr_addrlen(key[0])
            || (got = store_now_unpack(a->st->env->format, &v, ent)) < 0) {
            rc = now_get(nc, &k, &v, MDB_NEXT);
            continue;
        }
        p.family = key[0];
        p.plen = key[1];
        p.has_mask = 1;
        memcpy(p.addr, key + 2, cidr_addrlen(key[0]));
        if (!admin_inside(&p, a->block)) {
            rc = now_get(nc, &k, &v, MDB_NEXT);
            continue;
        }
        n = (size_t) got;
        for (i = 0; i < n && p.plen == a->gran; i++)
            if ((rc = clear_note(a, ent[i].width, ent[i].win, ent[i].d,
                                 INA_NEVENTS, "")) != 0)
                return rc;
        if ((rc = mdb_cursor_del(nc, 0)) != 0)
            return rc;
        a->removed += n;
        a->st->now_delta -= (int64_t) n;
        rc = now_get(nc, &k, &v, MDB_GET_CURRENT);
    }
    return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
}

/* clear_take_now - take up to rem off the now entry of (width, window) of
 * a prefix, leaving in rem what it did not hold */

static int
clear_take_now(struct clear_arg *a, MDB_txn *txn, const uint8_t *pkey,
               size_t pklen, uint32_t width, uint32_t window, uint64_t *rem)
{
    struct nent ent[NENT_MAX];
    uint8_t buf[NVAL_MAX];
    MDB_dbi dbi = a->st->env->now;
    MDB_val k, v;
    size_t i, n, e;
    int rc, zero, got;

    /* By the transaction's own lookups, not the cursor that walked the
     * database to its end: a put through that cursor was seen to leave
     * a stale copy of another key (LMDB 0.9.24). */
    k.mv_data = (void *) pkey;
    k.mv_size = pklen;
    if ((rc = mdb_get(txn, dbi, &k, &v)) != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    if ((got = store_now_unpack(a->st->env->format, &v, ent)) < 0)
        return 0;
    n = (size_t) got;
    for (i = 0; i < n; i++)
        if (ent[i].width == width && ent[i].win == window)
            break;
    if (i == n)
        return 0;
    zero = 1;
    for (e = 0; e < INA_NEVENTS; e++) {
        uint64_t t = rem[e] < ent[i].d[e] ? rem[e] : ent[i].d[e];

        ent[i].d[e] -= t;
        rem[e] -= t;
        zero = zero && ent[i].d[e] == 0;
    }
    /* An entry left with nothing goes, as a counter key would. */
    if (zero) {
        memmove(&ent[i], &ent[i + 1], (n - i - 1) * sizeof(ent[0]));
        n--;
        a->st->now_delta--;
        if (n == 0)
            return mdb_del(txn, dbi, &k, NULL);
    }
    v.mv_data = buf;
    v.mv_size = store_now_pack(ent, n, buf);
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* clear_counters - delete the block's counters, then take its totals off
 * every coarser counter that contains it */

static int
clear_counters(struct ina_store *st, MDB_txn *txn, struct clear_arg *a)
{
    const struct ina_cidr *b = a->block;
    struct ina_counter ctr;
    uint8_t key[CKEY_MAX], addr[16];
    uint64_t val[INA_NEVENTS], rem[INA_NEVENTS];
    const uint8_t *list;
    unsigned alen = cidr_addrlen(b->family);
    MDB_cursor *c, *nc = NULL;
    MDB_val k, v;
    size_t np, i, j, e;
    int rc, zero;

    if ((rc = mdb_cursor_open(txn, st->env->counts, &c)) != 0)
        return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (admin_decode_counter(&k, &v, &ctr) != 0
            || !admin_inside(&ctr.prefix, b)) {
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            continue;
        }
        if (ctr.prefix.plen == a->gran
            && (rc = clear_note(a, ctr.width, ctr.window, ctr.count,
                                INA_NEVENTS, "")) != 0)
            break;
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
        a->removed++;
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL)
        goto out;
    if ((rc = mdb_cursor_open(txn, st->env->now, &nc)) != 0)
        goto out;
    if ((rc = clear_now(nc, a)) != 0)
        goto out;
    np = store_prefixes(st->conf, b->family, &list);
    for (i = 0; i < a->nparts && rc == 0; i++) {
        for (j = 0; j < np && list[j] < b->plen && rc == 0; j++) {
            memcpy(addr, b->addr, alen);
            cidr_mask(addr, alen, list[j]);
            k.mv_size = store_ckey(key, a->parts[i].width,
                                   a->parts[i].window, b->family, list[j],
                                   addr);
            k.mv_data = key;
            /* The coarser prefix's now entry first, the rest from its
             * key in the counts database. */
            memcpy(rem, a->parts[i].count, sizeof(rem));
            if ((rc = clear_take_now(a, txn, key + 8, k.mv_size - 8,
                                     a->parts[i].width, a->parts[i].window,
                                     rem)) != 0)
                break;
            if ((rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY)) != 0) {
                rc = rc == MDB_NOTFOUND ? 0 : rc;
                continue;
            }
            if (v.mv_size != CVAL_SIZE)
                continue;
            memcpy(val, v.mv_data, CVAL_SIZE);
            zero = 1;
            for (e = 0; e < INA_NEVENTS; e++) {
                val[e] = val[e] > rem[e] ? val[e] - rem[e] : 0;
                zero = zero && val[e] == 0;
            }
            if (zero) {
                rc = mdb_cursor_del(c, 0);
            } else {
                v.mv_data = val;
                v.mv_size = CVAL_SIZE;
                rc = mdb_cursor_put(c, &k, &v, MDB_CURRENT);
            }
        }
    }

out:
    if (nc != NULL)
        mdb_cursor_close(nc);
    mdb_cursor_close(c);
    return rc;
}

/* clear_gauges - the same for the session gauges and their owners */

static int
clear_gauges(struct ina_store *st, MDB_txn *txn, struct clear_arg *a)
{
    const struct ina_cidr *b = a->block;
    struct ina_gauge g;
    struct ina_cidr host;
    uint8_t key[SKEY_MAX], addr[16];
    const uint8_t *list, *ok;
    unsigned alen = cidr_addrlen(b->family);
    MDB_cursor *c;
    MDB_val k, v;
    size_t np, i, j, slen;
    int rc;

    a->nparts = 0;
    if ((rc = mdb_cursor_open(txn, st->env->sessions, &c)) != 0)
        return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (admin_decode_gauge(&k, &v, &g) != 0
            || !admin_inside(&g.prefix, b)) {
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            continue;
        }
        if (g.prefix.plen == a->gran
            && (rc = clear_note(a, 0, 0, &g.count, 1, g.service)) != 0)
            break;
        if ((rc = mdb_cursor_del(c, 0)) != 0)
            break;
        a->removed++;
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL)
        goto out;
    rc = 0;
    np = store_prefixes(st->conf, b->family, &list);
    for (i = 0; i < a->nparts && rc == 0; i++) {
        slen = strlen(a->parts[i].service);
        for (j = 0; j < np && list[j] < b->plen && rc == 0; j++) {
            memcpy(addr, b->addr, alen);
            cidr_mask(addr, alen, list[j]);
            k.mv_size = store_skey(key, a->parts[i].service, slen,
                                   b->family, list[j], addr);
            rc = store_add_u64(c, key, k.mv_size,
                               -(int64_t) a->parts[i].count[0], NULL);
        }
    }
    mdb_cursor_close(c);
    if (rc != 0)
        return rc;
    /* Owner records of the cleared sessions go too, so that neither a
     * later close nor reaping takes them off the gauge a second time. */
    if ((rc = mdb_cursor_open(txn, st->env->owners, &c)) != 0)
        return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        ok = k.mv_data;
        if (k.mv_size > OKEY_HDR + 3) {
            slen = ok[OKEY_HDR];
            memset(&host, 0, sizeof(host));
            host.family = ok[OKEY_HDR + 1 + slen];
            host.plen = (uint8_t) cidr_maxlen(host.family);
            if ((host.family == 4 || host.family == 6)
                && k.mv_size == OKEY_HDR + 3 + slen
                                    + cidr_addrlen(host.family)) {
                memcpy(host.addr, ok + OKEY_HDR + 3 + slen,
                       cidr_addrlen(host.family));
                if (admin_inside(&host, b)) {
                    if ((rc = mdb_cursor_del(c, 0)) != 0)
                        break;
                    rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
                    continue;
                }
            }
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }

out:
    mdb_cursor_close(c);
    return rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL ? rc : 0;
}

/* clear_txn - ina_clear() in one transaction */

static int
clear_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct clear_arg *a = argp;
    MDB_stat s;
    uint64_t n;
    int rc;

    a->removed = 0;
    a->nparts = 0;
    if (a->block == NULL) {
        if ((rc = mdb_stat(txn, st->env->counts, &s)) != 0)
            return rc;
        a->removed += s.ms_entries;
        if ((rc = mdb_stat(txn, st->env->sessions, &s)) != 0)
            return rc;
        a->removed += s.ms_entries;
        n = store_meta_u64(txn, st->env->meta, "now_entries");
        a->removed += n;
        st->now_delta = -(int64_t) n;
        if ((rc = mdb_drop(txn, st->env->counts, 0)) != 0
            || (rc = store_now_drop(st, txn)) != 0
            || (rc = mdb_drop(txn, st->env->sessions, 0)) != 0
            || (rc = mdb_drop(txn, st->env->owners, 0)) != 0
            || (st->env->has_recent
                && (rc = mdb_drop(txn, st->env->recent, 0)) != 0))
            return rc;
        return 0;
    }
    if ((rc = clear_counters(st, txn, a)) != 0)
        return rc;
    return clear_gauges(st, txn, a);
}

/* ina_clear - delete the counters of a block, or of everything */

int
ina_clear(struct ina_store *st, const struct ina_cidr *block,
          uint64_t *removed)
{
    struct clear_arg a;
    int rc;

    if (removed != NULL)
        *removed = 0;
    if (st->flags & INA_STORE_RDONLY)
        return INA_ERDONLY;
    memset(&a, 0, sizeof(a));
    a.st = st;
    a.block = block;
    if (block != NULL) {
        if (block->family != 4 && block->family != 6)
            return INA_ENOADDR;
        if ((rc = store_granularity(st->conf, block->family, block->plen,
                                    &a.gran, NULL, 0)) != 0)
            return rc;
    }
    if ((rc = store_enter(st)) != 0)
        return rc;
    /* The handle's own pending events first. */
    (void) batch_flush(st);
    rc = store_write(st, clear_txn, &a);
    store_leave(st);
    free(a.parts);
    if (rc == 0 && removed != NULL)
        *removed = a.removed;
    return rc;
}

/* stat_reader_line - count the reader table's lines (mdb_reader_list) */

static int
stat_reader_line(const char *msg, void *ctx)
{
    unsigned *n = ctx;

    if (strstr(msg, "pid") == NULL && strstr(msg, "no active") == NULL)
        (*n)++;
    return 0;
}

/* stat_window_edges - oldest and newest window start of one width */

static void
stat_window_edges(MDB_cursor *c, uint32_t width, int64_t *oldest,
                  int64_t *newest)
{
    uint8_t probe[4];
    MDB_val k, v;
    int rc;

    probe[0] = (uint8_t) (width >> 24);
    probe[1] = (uint8_t) (width >> 16);
    probe[2] = (uint8_t) (width >> 8);
    probe[3] = (uint8_t) width;
    k.mv_data = probe;
    k.mv_size = sizeof(probe);
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (rc != 0 || k.mv_size < CKEY_HDR || be32(k.mv_data) != width)
        return;
    if (*oldest == 0 || (int64_t) be32((uint8_t *) k.mv_data + 4) * width
                            < *oldest)
        *oldest = (int64_t) be32((uint8_t *) k.mv_data + 4) * width;
    /* The last key of this width: just before the next width. */
    if (width < UINT32_MAX) {
        uint32_t next = width + 1;

        probe[0] = (uint8_t) (next >> 24);
        probe[1] = (uint8_t) (next >> 16);
        probe[2] = (uint8_t) (next >> 8);
        probe[3] = (uint8_t) next;
        k.mv_data = probe;
        k.mv_size = sizeof(probe);
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        rc = mdb_cursor_get(c, &k, &v, rc == 0 ? MDB_PREV : MDB_LAST);
    } else {
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    }
    if (rc == 0 && k.mv_size >= CKEY_HDR && be32(k.mv_data) == width
        && (int64_t) be32((uint8_t *) k.mv_data + 4) * width > *newest)
        *newest = (int64_t) be32((uint8_t *) k.mv_data + 4) * width;
}

/* stat_now_edges - widen *oldest .. *newest by the now database's
 * entries of windows some monitor keeps (a pass over every prefix) */

static int
stat_now_edges(struct ina_store *st, MDB_cursor *nc, int64_t *oldest,
               int64_t *newest)
{
    int64_t now = st->clock(st->clock_arg), t;
    struct nent ent[NENT_MAX];
    MDB_val k, v;
    int rc, i, n;

    for (rc = now_get(nc, &k, &v, MDB_FIRST); rc == 0;
         rc = now_get(nc, &k, &v, MDB_NEXT)) {
        n = store_now_unpack(st->env->format, &v, ent);
        for (i = 0; i < n; i++) {
            if (store_now_expired(st, &ent[i], now, 0))
                continue;
            t = (int64_t) ent[i].win * ent[i].width;
            if (*oldest == 0 || t < *oldest)
                *oldest = t;
            if (t > *newest)
                *newest = t;
        }
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ina_store_stat - fill out with the store's statistics */

int
ina_store_stat(struct ina_store *st, struct ina_stat *out)
{
    MDB_env *env;
    MDB_envinfo info;
    MDB_stat s;
    MDB_txn *txn;
    MDB_envinfo ei;
    struct stat sb;
    char path[4096];
    uint64_t data_pages;
    MDB_cursor *cc, *nc;
    size_t i;
    int rc, dead = 0;
    unsigned readers = 0;

    memset(out, 0, sizeof(*out));
    if ((rc = store_enter(st)) != 0)
        return rc;
    /* The handle's own pending events first. */
    (void) batch_flush(st);
    env = st->env->env;
    mdb_reader_check(env, &dead);
    out->readers_stale = (uint32_t) dead;
    mdb_reader_list(env, stat_reader_line, &readers);
    if ((rc = store_read_begin(st, &txn)) != 0) {
        store_leave(st);
        return rc;
    }
    out->format_version = st->env->format;
    rc = store_read_cursor(st, STORE_RCOUNTS, &cc);
    out->degraded = store_level(st, txn);
    out->reaped = store_meta_u64(txn, st->env->meta, "reaped");
    out->dropped = store_meta_u64(txn, st->env->meta, "dropped");
    if (rc == 0 && (rc = mdb_stat(txn, st->env->counts, &s)) == 0)
        out->counters = s.ms_entries;
    if (rc == 0 && st->env->has_now)
        out->counters += store_meta_u64(txn, st->env->meta, "now_entries");
    if (rc == 0 && (rc = mdb_stat(txn, st->env->sessions, &s)) == 0)
        out->sessions = s.ms_entries;
    if (rc == 0 && (rc = mdb_stat(txn, st->env->owners, &s)) == 0)
        out->owners = s.ms_entries;
    data_pages = store_data_pages(st, txn) + cluster_data_pages(st, txn);
    if (rc == 0) {
        for (i = 0; i < st->nwidths; i++)
            stat_window_edges(cc, st->widths[i].width,
                              &out->oldest_window, &out->newest_window);
        if ((rc = store_read_cursor(st, STORE_RNOW, &nc)) == 0 && nc != NULL)
            rc = stat_now_edges(st, nc, &out->oldest_window,
                                &out->newest_window);
    }
    store_read_end(st);
    mdb_env_info(env, &info);
    mdb_env_stat(env, &s);
    ei = info;
    out->page_size = s.ms_psize;
    out->map_size = ei.me_mapsize;
    out->map_used = data_pages * s.ms_psize;
    out->readers_max = ei.me_maxreaders;
    out->readers_used = readers;
    snprintf(path, sizeof(path), "%s/data.mdb", st->conf->store);
    if (stat(path, &sb) == 0)
        out->file_size = (uint64_t) sb.st_size;
    store_leave(st);
    return rc;
}

/* admin_walk_now - visit the counters of one now record: each entry of
 * a window some monitor keeps */

static int
admin_walk_now(struct ina_store *st, const MDB_val *k, const MDB_val *v,
               const struct ina_walker *w)
{
    const uint8_t *key = k->mv_data;
    struct ina_counter ctr;
    struct nent ent[NENT_MAX], *e;
    int64_t now = st->clock(st->clock_arg);
    unsigned family;
    int rc, i, n;

    if (k->mv_size < 2
        || (n = store_now_unpack(st->env->format, v, ent)) < 0)
        return 0;
    family = key[0];
    if ((family != 4 && family != 6)
        || k->mv_size != 2 + cidr_addrlen((int) family)
        || key[1] > cidr_maxlen((int) family))
        return 0;
    for (i = 0; i < n; i++) {
        e = &ent[i];
        if (store_now_expired(st, e, now, 0))
            continue;
        memset(&ctr, 0, sizeof(ctr));
        ctr.width = e->width;
        ctr.window = e->win;
        ctr.prefix.family = (uint8_t) family;
        ctr.prefix.plen = key[1];
        ctr.prefix.has_mask = 1;
        memcpy(ctr.prefix.addr, key + 2, cidr_addrlen((int) family));
        memcpy(ctr.count, e->d, sizeof(ctr.count));
        if ((rc = w->counter(w->arg, &ctr)) != 0)
            return rc;
    }
    return 0;
}

/* ina_walk - visit every counter and gauge record in key order */

int
ina_walk(struct ina_store *st, const struct ina_walker *w)
{
    struct ina_counter ctr;
    struct ina_gauge g;
    MDB_cursor *sc, *cc, *nc;
    MDB_txn *txn;
    MDB_val k, v;
    int rc;

    if ((rc = store_enter(st)) != 0)
        return rc;
    /* The handle's own pending events first. */
    (void) batch_flush(st);
    if ((rc = store_read_begin(st, &txn)) != 0) {
        store_leave(st);
        return rc;
    }
    if ((rc = store_read_cursor(st, STORE_RCOUNTS, &cc)) != 0)
        goto out;
    rc = mdb_cursor_get(cc, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (w->counter != NULL && admin_decode_counter(&k, &v, &ctr) == 0
            && (rc = w->counter(w->arg, &ctr)) != 0)
            goto out;
        rc = mdb_cursor_get(cc, &k, &v, MDB_NEXT);
    }
    if (rc != MDB_NOTFOUND
        || (rc = store_read_cursor(st, STORE_RNOW, &nc)) != 0)
        goto out;
    /* Then each prefix's newest windows: a counter of the same key as
     * one above is the rest of its count. */
    rc = nc != NULL ? now_get(nc, &k, &v, MDB_FIRST) : MDB_NOTFOUND;
    while (rc == 0) {
        if (w->counter != NULL
            && (rc = admin_walk_now(st, &k, &v, w)) != 0)
            goto out;
        rc = now_get(nc, &k, &v, MDB_NEXT);
    }
    if (rc != MDB_NOTFOUND || (rc = store_read_sessions(st, &sc)) != 0)
        goto out;
    rc = mdb_cursor_get(sc, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (w->gauge != NULL && admin_decode_gauge(&k, &v, &g) == 0
            && (rc = w->gauge(w->arg, &g)) != 0)
            goto out;
        rc = mdb_cursor_get(sc, &k, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;

out:
    store_read_end(st);
    store_leave(st);
    return rc;
}

/* load_counter_txn - add one dumped counter back */

static int
load_counter_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    const struct ina_counter *c = argp;
    uint8_t key[NKEY_MAX];
    struct nent e;
    MDB_cursor *cur, *nc;
    unsigned alen = cidr_addrlen(c->prefix.family);
    int rc;

    /* As a record of that window would: into the prefix's now record
     * when newest (a dump lists the counts database first, then the now
     * records, so a copy has the layout of the original). */
    if ((rc = mdb_cursor_open(txn, st->env->counts, &cur)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, st->env->now, &nc)) != 0) {
        mdb_cursor_close(cur);
        return rc;
    }
    key[0] = c->prefix.family;
    key[1] = (uint8_t) c->prefix.plen;
    memcpy(key + 2, c->prefix.addr, alen);
    e.width = c->width;
    e.win = c->window;
    memcpy(e.d, c->count, sizeof(e.d));
    rc = store_now_merge(st, nc, cur, key, 2 + alen, &e, 1,
                         st->clock(st->clock_arg));
    mdb_cursor_close(nc);
    mdb_cursor_close(cur);
    return rc;
}

/* admin_prefix_ok - a loaded prefix is well formed */

static int
admin_prefix_ok(const struct ina_cidr *p)
{
    uint8_t a[16];
    unsigned alen;

    if (p->family != 4 && p->family != 6)
        return 0;
    alen = cidr_addrlen(p->family);
    if (p->plen > cidr_maxlen(p->family))
        return 0;
    memcpy(a, p->addr, alen);
    cidr_mask(a, alen, p->plen);
    return memcmp(a, p->addr, alen) == 0;
}

/* ina_load_counter - add a dumped counter back */

int
ina_load_counter(struct ina_store *st, const struct ina_counter *c)
{
    int rc;

    if (st->flags & INA_STORE_RDONLY)
        return INA_ERDONLY;
    if (c->width < 1 || c->width > INA_WIDTH_MAX || !admin_prefix_ok(&c->prefix))
        return EINVAL;
    if ((rc = store_enter(st)) != 0)
        return rc;
    rc = store_write(st, load_counter_txn, (void *) c);
    store_leave(st);
    return rc;
}

/* load_gauge_txn - add one dumped gauge back */

static int
load_gauge_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    const struct ina_gauge *g = argp;
    uint8_t key[SKEY_MAX];
    MDB_cursor *c;
    size_t klen;
    int rc;

    if (g->count > INT64_MAX)
        return EINVAL;
    if ((rc = mdb_cursor_open(txn, st->env->sessions, &c)) != 0)
        return rc;
    klen = store_skey(key, g->service, strlen(g->service), g->prefix.family,
                      g->prefix.plen, g->prefix.addr);
    rc = store_add_u64(c, key, klen, (int64_t) g->count, NULL);
    mdb_cursor_close(c);
    return rc;
}

/* ina_load_gauge - add a dumped gauge back */

int
ina_load_gauge(struct ina_store *st, const struct ina_gauge *g)
{
    size_t slen = strnlen(g->service, sizeof(g->service));
    int rc;

    if (st->flags & INA_STORE_RDONLY)
        return INA_ERDONLY;
    if (slen == 0 || slen > INA_SERVICE_MAX)
        return INA_EBADSERVICE;
    if (!admin_prefix_ok(&g->prefix))
        return EINVAL;
    if ((rc = store_enter(st)) != 0)
        return rc;
    rc = store_write(st, load_gauge_txn, (void *) g);
    store_leave(st);
    return rc;
}

/* One block's running total in ina_top(). */
struct top_acc {
    uint8_t addr[16];
    uint64_t count;
};

/* top_by_addr, top_by_count - orders for ina_top() */

static int
top_by_addr(const void *a, const void *b)
{
    return memcmp(((const struct top_acc *) a)->addr,
                  ((const struct top_acc *) b)->addr, 16);
}

static int
top_by_count(const void *a, const void *b)
{
    const struct top_acc *x = a, *y = b;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return memcmp(x->addr, y->addr, 16);
}

/* top_list - the blocks ina_top() has summed so far, in the order seen */
struct top_list {
    struct top_acc *acc;
    size_t n, cap;
};

/* top_add - add x events of a counter of address addr (masked to plen)
 * to the list: to its last block when that is the same */

static int
top_add(struct top_list *l, const uint8_t *key, unsigned alen,
        unsigned plen, uint64_t x)
{
    uint8_t addr[16];
    struct top_acc *p;

    if (x == 0)
        return 0;
    memset(addr, 0, sizeof(addr));
    memcpy(addr, key, alen);
    cidr_mask(addr, alen, plen);
    if (l->n > 0 && memcmp(l->acc[l->n - 1].addr, addr, 16) == 0) {
        l->acc[l->n - 1].count = sat_add(l->acc[l->n - 1].count, x);
        return 0;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        if ((p = realloc(l->acc, l->cap * sizeof(*p))) == NULL)
            return ENOMEM;
        l->acc = p;
    }
    memcpy(l->acc[l->n].addr, addr, 16);
    l->acc[l->n++].count = x;
    return 0;
}

/* ina_top - the blocks with the most events */

int
ina_top(struct ina_store *st, enum ina_event ev, const char *monitor,
        int family, unsigned plen, uint32_t startv, uint32_t endv,
        struct ina_top_entry *out, size_t k, size_t *n, uint64_t *total,
        char *errbuf, size_t errlen)
{
    const struct ina_monitor *mon;
    struct top_list l = { NULL, 0, 0 };
    struct top_acc *acc;
    MDB_cursor *cc, *nc = NULL;
    size_t nacc, i, j;
    uint8_t pfx[CKEY_MAX], zero[16];
    unsigned gran, alen;
    uint64_t x;
    int64_t now;
    uint32_t cur, wi;
    MDB_txn *txn;
    MDB_val key, v;
    int rc;

    *n = 0;
    *total = 0;
    if ((unsigned) ev >= INA_NEVENTS)
        return err_set(errbuf, errlen, INA_EBADEVENT, "no such event");
    if ((rc = ina_conf_find_monitor(st->conf, monitor, &mon, errbuf,
                                    errlen)) != 0)
        return rc;
    if (startv > endv || endv > mon->history)
        return err_set(errbuf, errlen, INA_EWINDOW,
                       "window range %u..%u invalid for monitor %s (valid: "
                       "0..%u, start not after end)", startv, endv,
                       mon->name, mon->history);
    if (family != 4 && family != 6)
        return err_set(errbuf, errlen, EINVAL, "family must be 4 or 6");
    if (plen > cidr_maxlen(family))
        return err_set(errbuf, errlen, INA_EBADCIDR,
                       "mask /%u is longer than /%u", plen,
                       cidr_maxlen(family));
    if ((rc = store_granularity(st->conf, family, plen, &gran, errbuf,
                                errlen)) != 0)
        return rc;
    alen = cidr_addrlen(family);
    memset(zero, 0, sizeof(zero));
    if ((rc = store_enter(st)) != 0)
        return err_set(errbuf, errlen, rc, "%s", ina_strerror(rc));
    /* The handle's own pending events first. */
    (void) batch_flush(st);
    now = st->clock(st->clock_arg);
    if (now < 0 || now > (int64_t) UINT32_MAX) {
        store_leave(st);
        return err_set(errbuf, errlen, INA_ECLOCK, "clock out of range");
    }
    cur = (uint32_t) (now / mon->width);
    if ((rc = store_read_begin(st, &txn)) != 0) {
        store_leave(st);
        return err_set(errbuf, errlen, rc, "%s", ina_strerror(rc));
    }
    /* Keys of one window come in address order, and masking keeps that
     * order, so each window's blocks are summed in one streaming pass
     * over the counts database and one over the now database; the
     * passes are then merged by sorting. */
    if ((rc = store_read_cursor(st, STORE_RCOUNTS, &cc)) == 0)
        rc = store_read_cursor(st, STORE_RNOW, &nc);
    for (wi = startv; wi <= endv && wi <= cur && rc == 0; wi++) {
        store_ckey(pfx, mon->width, cur - wi, family, gran, zero);
        key.mv_data = pfx;
        key.mv_size = CKEY_HDR;
        rc = mdb_cursor_get(cc, &key, &v, MDB_SET_RANGE);
        while (rc == 0) {
            if (key.mv_size != CKEY_HDR + alen
                || memcmp(key.mv_data, pfx, CKEY_HDR) != 0)
                break;
            if (v.mv_size == CVAL_SIZE) {
                memcpy(&x, (uint8_t *) v.mv_data + ev * sizeof(x),
                       sizeof(x));
                if ((rc = top_add(&l, (uint8_t *) key.mv_data + CKEY_HDR,
                                  alen, plen, x)) != 0)
                    break;
                *total = sat_add(*total, x);
            }
            rc = mdb_cursor_get(cc, &key, &v, MDB_NEXT);
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
        if (rc != 0 || nc == NULL)
            continue;
        key.mv_data = pfx + 8;
        key.mv_size = 2;
        rc = mdb_cursor_get(nc, &key, &v, MDB_SET_RANGE);
        while (rc == 0) {
            if (key.mv_size != 2 + alen
                || memcmp(key.mv_data, pfx + 8, 2) != 0)
                break;
            if (store_now_field(st->env->format, &v, mon->width, cur - wi,
                                (size_t) ev, &x)) {
                if ((rc = top_add(&l, (uint8_t *) key.mv_data + 2, alen,
                                  plen, x)) != 0)
                    break;
                *total = sat_add(*total, x);
            }
            rc = mdb_cursor_get(nc, &key, &v, MDB_NEXT);
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    store_read_end(st);
    store_leave(st);
    acc = l.acc;
    nacc = l.n;
    if (rc != 0) {
        free(acc);
        return err_set(errbuf, errlen, rc, "%s", ina_strerror(rc));
    }
    /* Merge the passes' blocks. */
    if (nacc > 1) {
        qsort(acc, nacc, sizeof(*acc), top_by_addr);
        for (i = 0, j = 1; j < nacc; j++) {
            if (memcmp(acc[i].addr, acc[j].addr, 16) == 0)
                acc[i].count = sat_add(acc[i].count, acc[j].count);
            else
                acc[++i] = acc[j];
        }
        nacc = i + 1;
    }
    if (nacc > 1)
        qsort(acc, nacc, sizeof(*acc), top_by_count);
    for (i = 0; i < nacc && i < k; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].prefix.family = (uint8_t) family;
        out[i].prefix.plen = (uint8_t) plen;
        out[i].prefix.has_mask = 1;
        memcpy(out[i].prefix.addr, acc[i].addr, alen);
        out[i].count = acc[i].count;
    }
    *n = i;
    free(acc);
    return 0;
}
