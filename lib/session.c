/* session.c - the session gauge and the reaping of dead processes
 *
 * The gauge counts sessions open now, per service and prefix, at every
 * configured granularity (never degraded: a gauge skipped on open but
 * not on close, or the reverse, would drift).  Beside it, every process
 * keeps an owner record per (service, host) it holds sessions for, keyed
 * by its pid and its start time (field 22 of /proc/PID/stat).  When a
 * process dies with sessions open, any other process that reaps (at open,
 * and every few seconds from the write path) finds owner records whose
 * pid is gone or now belongs to a process that started at another time,
 * subtracts them from the gauge and deletes them, in one transaction.
 * Comparing start times means a recycled pid neither keeps a dead
 * process's sessions alive nor makes a live one's vanish.
 *
 * With flush_delay > 0 an open or close is buffered in the pending
 * file's session tables (batch.c), so that it never waits behind a
 * flush for the writer lock: every process counts it at once, and the
 * next flush applies it to the owner record and, by what the record
 * really moved, to the gauge (session_apply).  Reaping applies what is
 * buffered first.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "inaudit.h"
#include "internal.h"

/* Snapshots a close's check renews, at most, while flushes pass it. */
#define SESSION_RETRIES 8

/* session_proc_start - start time of a process, in clock ticks since boot
 *
 * Returns 0 if the process does not exist or /proc cannot be read. */

uint64_t
session_proc_start(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long start;
    FILE *fp;
    size_t n;
    int field;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long) pid);
    if ((fp = fopen(path, "re")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    /* The command name may hold blanks and parentheses: fields start
     * after the last ')'.  The state is field 3, the start time 22. */
    if ((p = strrchr(buf, ')')) == NULL)
        return 0;
    /* p is at the blank before field 3; step to the one before 22. */
    p++;
    for (field = 3; field < 22 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p, " %llu", &start) != 1)
        return 0;
    return (uint64_t) start;
}

/* session_alive - is the process that wrote an owner record alive? */

int
session_alive(pid_t pid, uint64_t start)
{
    uint64_t now;

    if (pid <= 0)
        return 0;
    now = session_proc_start(pid);
    if (now != 0 || start != 0)
        return now == start;
    /* No /proc: fall back to the pid alone. */
    return kill(pid, 0) == 0 || errno == EPERM;
}

/* session_get - a u64 record (an owner count or a gauge), 0 if absent;
 * returns 0 or an LMDB code */

static int
session_get(MDB_txn *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
            uint64_t *value)
{
    MDB_val k, v;
    int rc;

    *value = 0;
    k.mv_data = (void *) key;
    k.mv_size = klen;
    rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0 && v.mv_size == sizeof(*value))
        memcpy(value, v.mv_data, sizeof(*value));
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* session_okey - build this process's owner key; returns its length */

static size_t
session_okey(uint8_t *key, pid_t pid, uint64_t start, const char *service,
             size_t slen, int family, const uint8_t *addr)
{
    uint32_t p = (uint32_t) pid;
    int i;

    for (i = 0; i < 4; i++)
        key[i] = (uint8_t) (p >> (24 - 8 * i));
    for (i = 0; i < 8; i++)
        key[4 + i] = (uint8_t) (start >> (56 - 8 * i));
    return OKEY_HDR
           + store_skey(key + OKEY_HDR, service, slen, family,
                        cidr_maxlen(family), addr);
}

/* session_gauge_add - add delta to the gauge of a host at every grain */

static int
session_gauge_add(struct ina_store *st, MDB_txn *txn, const char *service,
                  size_t slen, int family, const uint8_t *host,
                  int64_t delta)
{
    uint8_t key[SKEY_MAX], addr[16];
    const uint8_t *list;
    unsigned alen = cidr_addrlen(family);
    MDB_cursor *c;
    size_t np, i;
    size_t klen;
    int rc = 0;

    np = store_prefixes(st->conf, family, &list);
    if ((rc = mdb_cursor_open(txn, st->env->sessions, &c)) != 0)
        return rc;
    for (i = 0; i < np && rc == 0; i++) {
        memcpy(addr, host, alen);
        cidr_mask(addr, alen, list[i]);
        klen = store_skey(key, service, slen, family, list[i], addr);
        rc = store_add_u64(c, key, klen, delta, NULL);
    }
    mdb_cursor_close(c);
    return rc;
}

struct session_arg {
    const struct ina_cidr *addr;
    const char *service;
    size_t slen;
    int delta;
};

/* session_txn - open or close one session of this process */

static int
session_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct session_arg *a = argp;
    uint8_t okey[OKEY_MAX], host[16];
    unsigned alen = cidr_addrlen(a->addr->family);
    uint64_t before;
    MDB_cursor *c;
    MDB_val k, v;
    size_t klen;
    int rc;

    memcpy(host, a->addr->addr, alen);
    klen = session_okey(okey, st->pid, st->pstart, a->service, a->slen,
                        a->addr->family, host);
    if ((rc = mdb_cursor_open(txn, st->env->owners, &c)) != 0)
        return rc;
    if (a->delta < 0) {
        /* Close only what this process holds: a close without its open
         * (or after a clear) must not take another process's session. */
        k.mv_data = okey;
        k.mv_size = klen;
        before = 0;
        if (mdb_cursor_get(c, &k, &v, MDB_SET_KEY) == 0
            && v.mv_size == sizeof(before))
            memcpy(&before, v.mv_data, sizeof(before));
        if (before == 0) {
            mdb_cursor_close(c);
            return 0;
        }
    }
    rc = store_add_u64(c, okey, klen, a->delta, NULL);
    mdb_cursor_close(c);
    if (rc != 0)
        return rc;
    return session_gauge_add(st, txn, a->service, a->slen, a->addr->family,
                             host, a->delta);
}

/* session_apply - apply what one process buffered for one (service,
 * host): delta to its owner record, never below zero, and to the gauge
 * at every granularity what the record really moved
 *
 * In a flush, with okey as the process wrote it into the shared table
 * (a key that is not an owner key is left alone).  The record moving
 * less than delta is a close of sessions reaped or cleared after their
 * open: the gauge lost them then. */

int
session_apply(struct ina_store *st, MDB_txn *txn, const uint8_t *okey,
              size_t klen, int64_t delta)
{
    uint64_t before, after;
    unsigned slen, family;
    MDB_cursor *c;
    int64_t move;
    int rc;

    if (klen < OKEY_HDR + 3 || delta == INT64_MIN)
        return 0;
    slen = okey[OKEY_HDR];
    if (slen == 0 || slen > INA_SERVICE_MAX || klen < OKEY_HDR + 3 + slen)
        return 0;
    family = okey[OKEY_HDR + 1 + slen];
    if ((family != 4 && family != 6)
        || okey[OKEY_HDR + 2 + slen] != cidr_maxlen((int) family)
        || klen != OKEY_HDR + 3 + slen + cidr_addrlen((int) family))
        return 0;
    if ((rc = session_get(txn, st->env->owners, okey, klen, &before)) != 0)
        return rc;
    if ((after = add_clamped(before, delta)) == before)
        return 0;
    move = after > before ? (int64_t) (after - before)
                          : -(int64_t) (before - after);
    if ((rc = mdb_cursor_open(txn, st->env->owners, &c)) != 0)
        return rc;
    rc = store_add_u64(c, okey, klen, move, NULL);
    mdb_cursor_close(c);
    if (rc != 0)
        return rc;
    return session_gauge_add(st, txn, (const char *) okey + OKEY_HDR + 1,
                             slen, (int) family, okey + OKEY_HDR + 3 + slen,
                             move);
}

/* session_owned - the sessions this process holds for a (service, host):
 * its owner record and what it buffered since */

static int
session_owned(struct ina_store *st, const uint8_t *okey, size_t klen,
              uint64_t *owned)
{
    uint64_t stored;
    int64_t d;
    MDB_txn *txn;
    int rc, tries;

    for (tries = 0;; tries++) {
        if ((rc = store_read_begin(st, &txn)) != 0)
            return rc;
        if ((rc = session_get(txn, st->env->owners, okey, klen, &stored))
            == 0)
            rc = batch_session_pending(st, txn, 0, okey, klen, &d);
        store_read_end(st);
        if (rc != EAGAIN || tries >= SESSION_RETRIES)
            break;
    }
    if (rc == 0)
        *owned = add_clamped(stored, d);
    return rc;
}

/* session_buffered - open or close a session through the shared tables
 *
 * What a flush applies is the owner record's delta; what queries add
 * until then is the gauges'.  Returns EAGAIN when the tables kept
 * filling. */

static int
session_buffered(struct ina_store *st, const struct session_arg *a)
{
    uint8_t okey[OKEY_MAX], gkey[INA_MAX_PREFIXES][SKEY_MAX], addr[16];
    size_t glen[INA_MAX_PREFIXES], oklen, np, i;
    unsigned alen = cidr_addrlen(a->addr->family);
    const uint8_t *list;
    uint64_t owned;
    int rc;

    oklen = session_okey(okey, st->pid, st->pstart, a->service, a->slen,
                         a->addr->family, a->addr->addr);
    if (a->delta < 0) {
        /* Close only what this process holds (as session_txn). */
        if ((rc = session_owned(st, okey, oklen, &owned)) != 0)
            return rc;
        if (owned == 0)
            return 0;
    }
    np = store_prefixes(st->conf, a->addr->family, &list);
    for (i = 0; i < np; i++) {
        memcpy(addr, a->addr->addr, alen);
        cidr_mask(addr, alen, list[i]);
        glen[i] = store_skey(gkey[i], a->service, a->slen, a->addr->family,
                             list[i], addr);
    }
    return batch_session(st, okey, oklen, &gkey[0][0], glen, np, a->delta);
}

/* session_move - common part of ina_session_open and _close
 *
 * Buffered like the records (flush_delay 0: a transaction each), so that
 * a session call never waits for the writer lock behind a flush.  One
 * call at a time in a process (env->slock): a close's check and its
 * delta must not interleave with another close of the same session. */

static int
session_move(struct ina_store *st, const struct ina_cidr *addr,
             const char *service, int delta)
{
    struct session_arg a;
    const uint8_t *list;
    int rc;

    if (service == NULL)
        service = "SMTP";
    a.slen = strlen(service);
    if (a.slen == 0 || a.slen > INA_SERVICE_MAX)
        return INA_EBADSERVICE;
    if (addr->family != 4 && addr->family != 6)
        return addr->family == 0 ? INA_ENOADDR : EINVAL;
    if (st->flags & INA_STORE_RDONLY)
        return INA_ERDONLY;
    if (store_prefixes(st->conf, addr->family, &list) == 0)
        return INA_ENOFAMILY;
    a.addr = addr;
    a.service = service;
    a.delta = delta;
    if ((rc = store_enter(st)) != 0)
        return rc;
    pthread_mutex_lock(&st->env->slock);
    /* Written directly when the tables kept filling, after what this
     * process buffered before: session_txn reads the owner record from
     * the tree. */
    if (st->conf->flush_delay == 0
        || ((rc = session_buffered(st, &a)) == EAGAIN
            && (rc = batch_flush(st)) == 0))
        rc = store_write(st, session_txn, &a);
    pthread_mutex_unlock(&st->env->slock);
    store_leave(st);
    return rc;
}

/* ina_session_open - one more session open from addr to service */

int
ina_session_open(struct ina_store *st, const struct ina_cidr *addr,
                 const char *service)
{
    return session_move(st, addr, service, 1);
}

/* ina_session_close - one session from addr to service closed */

int
ina_session_close(struct ina_store *st, const struct ina_cidr *addr,
                  const char *service)
{
    return session_move(st, addr, service, -1);
}

struct hand_arg {
    const struct ina_cidr *addr;
    const char *service;
    size_t slen;
    int64_t delta;
    uint64_t moved;
};

/* session_hand_txn - ina_session_adjust() in one transaction
 *
 * A close takes only sessions no process owns: the gauge of the finest
 * block holding the host, less the owner records of hosts inside it. */

static int
session_hand_txn(struct ina_store *st, MDB_txn *txn, void *argp)
{
    struct hand_arg *a = argp;
    const uint8_t *list, *ok;
    uint8_t key[SKEY_MAX], blk[16], host[16];
    unsigned alen = cidr_addrlen(a->addr->family), fine;
    uint64_t gauge = 0, owned = 0, count, take;
    MDB_cursor *c;
    MDB_val k, v;
    size_t np, slen;
    int rc;

    a->moved = 0;
    if (a->delta > 0) {
        a->moved = (uint64_t) a->delta;
        return session_gauge_add(st, txn, a->service, a->slen,
                                 a->addr->family, a->addr->addr, a->delta);
    }
    np = store_prefixes(st->conf, a->addr->family, &list);
    fine = list[np - 1];
    memcpy(blk, a->addr->addr, alen);
    cidr_mask(blk, alen, fine);
    if ((rc = session_get(txn, st->env->sessions, key,
                          store_skey(key, a->service, a->slen,
                                     a->addr->family, fine, blk),
                          &gauge)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, st->env->owners, &c)) != 0)
        return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        ok = k.mv_data;
        slen = k.mv_size > OKEY_HDR ? ok[OKEY_HDR] : 0;
        if (slen == a->slen && v.mv_size == sizeof(count)
            && k.mv_size == OKEY_HDR + 3 + slen + alen
            && memcmp(ok + OKEY_HDR + 1, a->service, slen) == 0
            && ok[OKEY_HDR + 1 + slen] == a->addr->family) {
            memcpy(host, ok + OKEY_HDR + 3 + slen, alen);
            cidr_mask(host, alen, fine);
            if (memcmp(host, blk, alen) == 0) {
                memcpy(&count, v.mv_data, sizeof(count));
                owned += count;
            }
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND)
        return rc;
    if (gauge <= owned)
        return 0;
    take = (uint64_t) -a->delta;
    if (take > gauge - owned)
        take = gauge - owned;
    a->moved = take;
    return session_gauge_add(st, txn, a->service, a->slen, a->addr->family,
                             a->addr->addr, -(int64_t) take);
}

/* ina_session_adjust - open or close sessions by hand, owned by none */

int
ina_session_adjust(struct ina_store *st, const struct ina_cidr *addr,
                   const char *service, int64_t delta, uint64_t *moved)
{
    struct hand_arg a;
    const uint8_t *list;
    int rc;

    if (moved != NULL)
        *moved = 0;
    if (service == NULL)
        service = "SMTP";
    a.slen = strlen(service);
    if (a.slen == 0 || a.slen > INA_SERVICE_MAX)
        return INA_EBADSERVICE;
    if (addr->family != 4 && addr->family != 6)
        return addr->family == 0 ? INA_ENOADDR : EINVAL;
    if (delta == INT64_MIN)
        return EINVAL;
    if (st->flags & INA_STORE_RDONLY)
        return INA_ERDONLY;
    if (store_prefixes(st->conf, addr->family, &list) == 0)
        return INA_ENOFAMILY;
    if (delta == 0)
        return 0;
    a.addr = addr;
    a.service = service;
    a.delta = delta;
    a.moved = 0;
    if ((rc = store_enter(st)) != 0)
        return rc;
    rc = store_write(st, session_hand_txn, &a);
    store_leave(st);
    if (rc == 0 && moved != NULL)
        *moved = a.moved;
    return rc;
}

/* session_reap_txn - subtract the sessions of dead processes
 *
 * Walks the owner records in order; they are grouped by pid and start
 * time, so each process is checked once. */

int
session_reap_txn(struct ina_store *st, MDB_txn *txn, uint64_t *reaped)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t count, start, total = 0, last_start = 0;
    const uint8_t *key;
    uint32_t pid, last_pid = 0;
    int rc, alive = 1, family, checked = 0;
    size_t slen;
    char service[INA_SERVICE_MAX + 1];

    if ((rc = mdb_cursor_open(txn, st->env->owners, &c)) != 0)
        return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        key = k.mv_data;
        if (k.mv_size < OKEY_HDR + 3) {
            rc = mdb_cursor_del(c, 0);
            goto next;
        }
        pid = (uint32_t) key[0] << 24 | (uint32_t) key[1] << 16
              | (uint32_t) key[2] << 8 | key[3];
        start = 0;
        for (int i = 0; i < 8; i++)
            start = start << 8 | key[4 + i];
        if (!checked || pid != last_pid || start != last_start) {
            /* A dead process with sessions still buffered is reaped
             * once they are applied (batch_session_holds). */
            if (pid == (uint32_t) st->pid && start == st->pstart)
                alive = 1;
            else
                alive = session_alive((pid_t) pid, start)
                        || batch_session_holds(st, txn, pid, start);
            last_pid = pid;
            last_start = start;
            checked = 1;
        }
        if (alive) {
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
            continue;
        }
        slen = key[OKEY_HDR];
        if (k.mv_size != OKEY_HDR + 3 + slen + cidr_addrlen(
                             key[OKEY_HDR + 1 + slen])
            || v.mv_size != sizeof(count)) {
            rc = mdb_cursor_del(c, 0);
            goto next;
        }
        memcpy(service, key + OKEY_HDR + 1, slen);
        service[slen] = '\0';
        family = key[OKEY_HDR + 1 + slen];
        memcpy(&count, v.mv_data, sizeof(count));
        {
            uint8_t host[16];

            memcpy(host, key + OKEY_HDR + 3 + slen, cidr_addrlen(family));
            rc = mdb_cursor_del(c, 0);
            if (rc == 0)
                rc = session_gauge_add(st, txn, service, slen, family, host,
                                       -(int64_t) count);
        }
        total += count;
    next:
        if (rc != 0)
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL)
        return rc;
    if (total > 0) {
        rc = store_meta_put_u64(txn, st->env->meta, "reaped",
                                store_meta_u64(txn, st->env->meta, "reaped")
                                    + total);
        if (rc != 0)
            return rc;
        store_log(st, INA_LOG_NOTICE,
                  "store %s: reaped %llu session(s) left open by dead "
                  "processes", st->conf->store, (unsigned long long) total);
    }
    if (reaped != NULL)
        *reaped += total;
    return 0;
}

/* reap_txn - adapter for store_write() */

static int
reap_txn(struct ina_store *st, MDB_txn *txn, void *arg)
{
    /* A retried transaction starts its count again. */
    *(uint64_t *) arg = 0;
    return session_reap_txn(st, txn, arg);
}

/* ina_reap - subtract the sessions of processes that died */

int
ina_reap(struct ina_store *st, uint64_t *reaped)
{
    uint64_t n = 0;
    int rc;

    if (st->flags & INA_STORE_RDONLY)
        return INA_ERDONLY;
    if ((rc = store_enter(st)) != 0)
        return rc;
    /* Sessions buffered by dead processes are applied first, to be
     * reaped here and counted: not by the flush's own periodic pass. */
    if (batch_has_pending(st, BATCH_SESSIONS)) {
        int64_t due = st->next_reap;

        st->next_reap = INT64_MAX;
        rc = batch_flush(st);
        st->next_reap = due;
    }
    if (rc == 0)
        rc = store_write(st, reap_txn, &n);
    store_leave(st);
    if (reaped != NULL)
        *reaped = rc == 0 ? n : 0;
    return rc;
}
