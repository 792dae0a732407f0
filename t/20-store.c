/* 20-store.c - the store: open, record, query, sessions, clear, walk, top
 *
 * Every count asserted here is known from what the test recorded, under
 * a clock the test holds still, so a wrong key, a wrong range scan or a
 * lost increment shows as a wrong number.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "basic.h"
#include "inatest.h"
#include "internal.h"

/* An hour boundary, so every sample width starts a window here. */
#define T0 1700002800

static int64_t now = T0;

/* q - a query that must succeed */

static uint64_t
q(struct ina_store *st, enum ina_event ev, const char *mon,
  const char *cidr, uint32_t a, uint32_t b)
{
    struct ina_cidr c = test_addr(cidr);
    uint64_t n = 0;
    char err[256];
    int rc;

    rc = ina_query(st, ev, mon, &c, a, b, 0, &n, err, sizeof(err));
    if (rc != 0) {
        diag("query %s %s: %s", mon, cidr, err);
        return UINT64_MAX;
    }
    return n;
}

/* rec - record n events or bail */

static void
rec(struct ina_store *st, enum ina_event ev, const char *addr, uint64_t n)
{
    struct ina_cidr c = test_addr(addr);
    int rc = ina_record(st, ev, &c, n);

    if (rc != 0)
        bail("record %s: %s", addr, ina_strerror(rc));
}

/* sessions - the gauge of a block */

static uint64_t
sessions(struct ina_store *st, const char *cidr, const char *svc)
{
    struct ina_cidr c = test_addr(cidr);
    uint64_t n = 0;
    char err[256];

    if (ina_session_count(st, &c, svc, &n, err, sizeof(err)) != 0) {
        diag("session count %s: %s", cidr, err);
        return UINT64_MAX;
    }
    return n;
}

struct walk_sum {
    uint64_t counters, gauges, conn;
};

static int
walk_counter(void *arg, const struct ina_counter *c)
{
    struct walk_sum *w = arg;

    w->counters++;
    w->conn += c->count[INA_CONNECTION];
    return 0;
}

static int
walk_gauge(void *arg, const struct ina_gauge *g)
{
    struct walk_sum *w = arg;

    w->gauges += g->count;
    return 0;
}

static int
walk_load(void *arg, const struct ina_counter *c)
{
    return ina_load_counter(arg, c);
}

static int
walk_load_gauge(void *arg, const struct ina_gauge *g)
{
    return ina_load_gauge(arg, g);
}

/* memcmp_order - the reference order: memcmp over the shorter length,
 * then the shorter key first */

static int
memcmp_order(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    if (c != 0)
        return c < 0 ? -1 : 1;
    return alen < blen ? -1 : alen > blen;
}

/* key_cmp_check - key_cmp, the counter databases' comparison, against
 * memcmp on keys of every length up to a counter key's, equal up to
 * every byte and differing there in every bit, or in every byte from
 * there on (its first, middle and last, overlapping, words each decide
 * some) */

static void
key_cmp_check(void)
{
    uint8_t a[CKEY_MAX], b[CKEY_MAX];
    uint64_t x = 0x2545f4914f6cdd1dull;
    size_t alen, blen, at, bad = 0, runs = 0;
    unsigned bit;

    for (alen = 0; alen <= CKEY_MAX; alen++)
        for (blen = 0; blen <= CKEY_MAX; blen++)
            for (at = 0; at <= CKEY_MAX; at++)
                for (bit = 0; bit < 9; bit++) {
                    size_t j;

                    for (j = 0; j < CKEY_MAX; j++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        a[j] = b[j] = (uint8_t) x;
                    }
                    /* Equal before at; at differs in one bit (or, bit
                     * 8, in random bytes from there on). */
                    if (at < CKEY_MAX && bit < 8)
                        b[at] ^= (uint8_t) (1u << bit);
                    else
                        for (j = at; j < CKEY_MAX; j++)
                            b[j] = (uint8_t) (x >> (j % 8 * 8));
                    bad += key_cmp(a, alen, b, blen)
                           != memcmp_order(a, alen, b, blen);
                    runs++;
                }
    is_uint(0, bad, "key_cmp orders %zu pairs of keys as memcmp does",
            runs);
}

/* be_check - be_put and be_get against the byte at a time they stand
 * for, at every length and at odd addresses: lengths 2, 4 and 8 take a
 * word's load or store, the others the loop */

static int
be_one(int bytes, uint64_t v, size_t off)
{
    uint8_t buf[24], want[24];
    uint64_t x = v, mask;
    int i, bad = 0;

    memset(buf, 0xa5, sizeof(buf));
    memset(want, 0xa5, sizeof(want));
    for (i = bytes - 1; i >= 0; i--) {
        want[off + (size_t) i] = (uint8_t) x;
        x >>= 8;
    }
    be_put(buf + off, v, bytes);
    bad += memcmp(buf, want, sizeof(buf)) != 0;
    mask = bytes == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * bytes)) - 1;
    bad += be_get(want + off, bytes) != (v & mask);
    return bad;
}

static void
be_check(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t bad = 0, runs = 0, off;
    int bytes, k;

    for (bytes = 1; bytes <= 8; bytes++)
        for (off = 0; off < 8; off++)
            for (k = 0; k < 64; k++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                /* Values as wide as the field and wider, and ends. */
                bad += be_one(bytes, k == 0 ? 0 : k == 1 ? UINT64_MAX : x,
                              off);
                runs++;
            }
    is_uint(0, bad, "be_put and be_get agree with a byte at a time in %zu "
            "cases", runs);
}

/* xorshift - the tests' own random numbers, the same every run */

static uint64_t
xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* nent_same - are two entries equal? */

static int
nent_same(const struct nent *a, const struct nent *b)
{
    return a->width == b->width && a->win == b->win
           && memcmp(a->d, b->d, sizeof(a->d)) == 0;
}

/* unpack - store_now_unpack of len bytes of buf at format 4 */

static int
unpack(const uint8_t *buf, size_t len, struct nent *out)
{
    MDB_val v;

    v.mv_data = (void *) buf;
    v.mv_size = len;
    return store_now_unpack(INA_FORMAT_VERSION, &v, out);
}

/* now_codec_check - format 4's packed now values (store.c): what is
 * packed unpacks the same, and every malformed value is refused, not
 * read past its end */

static void
now_codec_check(void)
{
    static const uint64_t mags[] = { 0, 1, 127, 128, 16383, 16384,
                                     (uint64_t) 1 << 35, UINT64_MAX - 1,
                                     UINT64_MAX };
    struct nent in[NENT_MAX + 1], out[NENT_MAX], one;
    uint8_t buf[NVAL_MAX + NPACK_MAX], tmp[NVAL_MAX], raw[80];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    size_t len, cut, i, e, bad = 0, badcut = 0, badfind = 0, runs;
    size_t badfield = 0;
    int n, got;
    MDB_val v;

    /* Random values: 1 to NENT_MAX entries, counts of every size. */
    for (runs = 0; runs < 4000; runs++) {
        n = 1 + (int) (xorshift(&x) % NENT_MAX);
        for (i = 0; i < (size_t) n; i++) {
            in[i].width = (uint32_t) (i == 0 ? 1 + xorshift(&x) % 100
                                             : in[i - 1].width + 1
                                                   + xorshift(&x) % 5000);
            in[i].win = (uint32_t) xorshift(&x);
            for (e = 0; e < INA_NEVENTS; e++)
                in[i].d[e] = xorshift(&x) % 3 == 0
                                 ? xorshift(&x)
                                 : mags[xorshift(&x) % 9];
        }
        len = store_now_pack(in, (size_t) n, buf);
        got = unpack(buf, len, out);
        if (got != n || len > NVAL_MAX)
            bad++;
        for (i = 0; got == n && i < (size_t) n; i++) {
            uint64_t c;

            if (!nent_same(&in[i], &out[i]))
                bad++;
            v.mv_data = buf;
            v.mv_size = len;
            if (!store_now_entry(INA_FORMAT_VERSION, &v, in[i].width, &one)
                || !nent_same(&in[i], &one))
                badfind++;
            /* One count of the entry, of its window only. */
            for (e = 0; e < INA_NEVENTS; e++)
                if (!store_now_field(INA_FORMAT_VERSION, &v, in[i].width,
                                     in[i].win, e, &c)
                    || c != in[i].d[e]
                    || store_now_field(INA_FORMAT_VERSION, &v, in[i].width,
                                       in[i].win + 1, e, &c))
                    badfield++;
        }
        v.mv_data = buf;
        v.mv_size = len;
        if (store_now_entry(INA_FORMAT_VERSION, &v, in[n - 1].width + 1,
                            &one))
            badfind++;
        /* Every shorter value ends inside an entry, or at the end of one:
         * then it is that many entries. */
        for (cut = 0; cut < len && runs < 500; cut++) {
            got = unpack(buf, cut, out);
            for (i = 0; i < (size_t) n; i++)
                if (store_now_pack(in, i, tmp) == cut)
                    break;
            if (got != (i < (size_t) n ? (int) i : -1))
                badcut++;
        }
    }
    is_uint(0, bad, "packed now values unpack as they were (%zu)", runs);
    is_uint(0, badfind, "...and each width's entry is found, no other");
    is_uint(0, badfield, "...and each count of it, in its window only");
    is_uint(0, badcut, "...and a value cut short is refused, or is the "
            "entries before the cut");

    memset(in, 0, sizeof(in));
    in[0].width = 60;
    in[0].win = 28333333;
    in[0].d[INA_CONNECTION] = 1;
    in[0].d[INA_REJECTION] = 1;
    is_uint(11, store_now_pack(in, 1, buf), "a connection and a rejection "
            "pack in 11 bytes");
    for (e = 0; e < INA_NEVENTS; e++)
        in[0].d[e] = UINT64_MAX;
    is_uint(NPACK_MAX, store_now_pack(in, 1, buf), "the largest entry is "
            "NPACK_MAX bytes");
    in[1] = in[0];
    len = store_now_pack(in, 2, buf);
    is_int(-1, unpack(buf, len, out), "two entries of one width are "
           "refused");
    in[1].width = 30;
    len = store_now_pack(in, 2, buf);
    is_int(-1, unpack(buf, len, out), "...and widths out of order");
    for (i = 0; i <= NENT_MAX; i++) {
        in[i] = in[0];
        in[i].width = (uint32_t) (i + 1);
    }
    len = store_now_pack(in, NENT_MAX, buf);
    is_int(NENT_MAX, unpack(buf, len, out), "NENT_MAX entries unpack");
    len = store_now_pack(in, NENT_MAX + 1, buf);
    is_int(-1, unpack(buf, len, out), "...and one more is refused");

    /* One entry by hand: width, window, the events' bits, varints. */
    memset(raw, 0, sizeof(raw));
    raw[0] = 60;
    raw[8] = 1u << INA_NEVENTS;
    is_int(-1, unpack(raw, 9, out), "an unknown event's bit is refused");
    raw[8] = 1;
    for (i = 0; i < 9; i++)
        raw[9 + i] = 0xff;
    raw[18] = 0x01;
    is_int(1, unpack(raw, 19, out), "a ten-byte varint of 2^64-1 unpacks");
    is_uint(UINT64_MAX, out[0].d[INA_CONNECTION], "...as 2^64-1");
    raw[18] = 0x02;
    is_int(-1, unpack(raw, 19, out), "...a larger one is refused");
    raw[18] = 0x81;
    raw[19] = 0x00;
    is_int(-1, unpack(raw, 20, out), "...and an eleventh byte");
    raw[9] = 0x80;
    is_int(-1, unpack(raw, 10, out), "a varint that runs past the value "
           "is refused");
    is_int(0, unpack(raw, 0, out), "an empty value holds no entries");

    /* Format 3's values: whole struct nent arrays. */
    v.mv_data = in;
    v.mv_size = 2 * sizeof(struct nent);
    is_int(2, store_now_unpack(3, &v, out), "format 3's values are read "
           "as they are");
    {
        uint64_t c = 0;

        ok(store_now_field(3, &v, in[1].width, in[1].win, INA_REJECTION, &c)
               && c == in[1].d[INA_REJECTION],
           "...and a count of one of their entries");
    }
    v.mv_size = 2 * sizeof(struct nent) - 1;
    is_int(-1, store_now_unpack(3, &v, out), "...a length no number of "
           "entries has is refused");
    in[1].width = in[0].width;
    v.mv_size = 2 * sizeof(struct nent);
    is_int(-1, store_now_unpack(3, &v, out), "...and widths out of order "
           "(an upgrade drops such a value)");
    v.mv_size = (NENT_MAX + 1) * sizeof(struct nent);
    is_int(-1, store_now_unpack(3, &v, out), "...and more than NENT_MAX");

    /* Random bytes: refused, or entries that pack and unpack the same. */
    for (runs = bad = badfind = 0; runs < 200000; runs++) {
        len = xorshift(&x) % sizeof(raw);
        for (i = 0; i < len; i++)
            raw[i] = (uint8_t) xorshift(&x);
        /* Mostly known events, so that some values are whole. */
        if (len > 8 && xorshift(&x) % 2)
            raw[8] &= (1u << INA_NEVENTS) - 1;
        v.mv_data = raw;
        v.mv_size = len;
        if ((got = unpack(raw, len, out)) < -1 || got > NENT_MAX) {
            bad++;
        } else if (got > 0) {
            len = store_now_pack(out, (size_t) got, buf);
            if (unpack(buf, len, in) != got)
                bad++;
            for (i = 0; i < (size_t) got; i++)
                bad += !nent_same(&in[i], &out[i]);
        }
        /* A lookup in a whole value finds its entries and counts; in any
         * other it never reads past the end (ASan and valgrind, in CI). */
        i = got > 0 ? xorshift(&x) % (size_t) got : 0;
        e = xorshift(&x) % INA_NEVENTS;
        {
            uint32_t w = got > 0 ? out[i].width : (uint32_t) xorshift(&x);
            uint32_t wn = got > 0 ? out[i].win : (uint32_t) xorshift(&x);
            uint64_t c;
            int found = store_now_entry(INA_FORMAT_VERSION, &v, w, &one);
            int field = store_now_field(INA_FORMAT_VERSION, &v, w, wn, e,
                                        &c);

            if (got >= 0 && found != (got > 0))
                badfind++;
            else if (got > 0 && (!nent_same(&one, &out[i]) || !field
                                 || c != out[i].d[e]))
                badfind++;
        }
    }
    is_uint(0, bad, "random bytes are refused or read whole (%zu)", runs);
    is_uint(0, badfind, "...and a whole value's lookups find its entries "
            "and counts");
}

/* put_format - write a store's format record, as LMDB directly: not
 * env.c's writer, so that a change of the record's layout fails the
 * tests of older stores instead of following them */

static void
put_format(MDB_txn *txn, MDB_dbi meta, uint32_t version)
{
    MDB_val k, v;

    k.mv_data = (void *) "format";
    k.mv_size = 6;
    v.mv_data = &version;
    v.mv_size = sizeof(version);
    if (mdb_put(txn, meta, &k, &v, 0) != 0)
        bail("cannot write the format record");
}

/* to_format - rewrite a closed store of this format as format 2 or 3
 * had it (LMDB directly, as an older inaudit left it): the now values as
 * arrays of struct nent, not packed, and for format 2 in a named
 * database "now" instead of the main one; 64 records a transaction, so
 * that a nearly full map holds the change; returns how many */

static size_t
to_format(const char *dir, uint32_t version)
{
    uint8_t keys[64][NKEY_MAX], last[NKEY_MAX];
    struct nent vals[64][NENT_MAX];
    size_t klen[64], vn[64], lastlen = 0, n, i, moved = 0;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi mdb, nd = 0, meta;
    MDB_cursor *c;
    MDB_val k, v;
    int r, got;

    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0
        || mdb_env_open(env, dir, 0, 0660) != 0)
        bail("cannot open the store with LMDB directly");
    do {
        if (mdb_txn_begin(env, NULL, 0, &txn) != 0
            || mdb_dbi_open(txn, NULL, 0, &mdb) != 0
            || (version == 2
                && mdb_dbi_open(txn, "now", MDB_CREATE, &nd) != 0)
            || mdb_cursor_open(txn, mdb, &c) != 0)
            bail("cannot open the store with LMDB directly");
        n = 0;
        /* On after the last key rewritten (format 2 has moved it). */
        k.mv_data = last;
        k.mv_size = lastlen;
        r = mdb_cursor_get(c, &k, &v, lastlen == 0 ? MDB_FIRST
                                                    : MDB_SET_RANGE);
        if (r == 0 && lastlen > 0 && k.mv_size == lastlen
            && memcmp(k.mv_data, last, lastlen) == 0)
            r = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        for (; r == 0 && now_key(&k) && n < 64;
             r = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            if ((got = store_now_unpack(INA_FORMAT_VERSION, &v, vals[n]))
                < 0)
                bail("a now record that is not one");
            memcpy(keys[n], k.mv_data, k.mv_size);
            klen[n] = k.mv_size;
            vn[n++] = (size_t) got;
        }
        mdb_cursor_close(c);
        for (i = 0; i < n; i++) {
            k.mv_data = keys[i];
            k.mv_size = klen[i];
            v.mv_data = vals[i];
            v.mv_size = vn[i] * sizeof(struct nent);
            if (version == 2
                    ? mdb_put(txn, nd, &k, &v, 0) != 0
                          || mdb_del(txn, mdb, &k, NULL) != 0
                    : mdb_put(txn, mdb, &k, &v, 0) != 0)
                bail("cannot rewrite a now record");
        }
        if (n > 0) {
            memcpy(last, keys[n - 1], klen[n - 1]);
            lastlen = klen[n - 1];
        } else {
            if (mdb_dbi_open(txn, "meta", 0, &meta) != 0)
                bail("no meta database");
            put_format(txn, meta, version);
        }
        if (mdb_txn_commit(txn) != 0)
            bail("cannot commit the rewrite as format %u", version);
        moved += n;
    } while (n > 0);
    mdb_env_close(env);
    return moved;
}

/* format_upgrade - a store of format 2 (the now records in a named
 * database) or 3 (their values not packed) is read as it is by a
 * read-only handle, upgraded by a read-write open, and a read-only
 * handle of another process that read it at the old format is told it
 * must open the store anew */

static void
format_upgrade(uint32_t version)
{
    static const uint8_t hkey[] = { 4, 32, 198, 51, 100, 7 };
    struct ina_conf *c2 = test_conf(version == 2 ? "v2" : "v3", NULL);
    struct ina_store *st, *ro;
    struct ina_stat s;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi nd;
    MDB_val k, v;
    uint64_t n = 0;
    struct ina_cidr c = test_addr("198.51.100.7");
    char err[256];
    pid_t pid;
    int rc, status, go[2];

    st = test_open(c2);
    ina_store_set_clock(st, test_clock, &now);
    rec(st, INA_CONNECTION, "198.51.100.7", 5);
    rec(st, INA_REJECTION, "198.51.100.7", 1);
    rec(st, INA_CONNECTION, "2001:db8::1", 3);
    is_int(0, ina_flush(st), "format %u: counts flushed", version);
    ina_store_close(st);
    /* Two hosts at three granularities, every width in one record. */
    is_uint(2 * 3, to_format(c2->store, version), "a store rewritten as "
            "format %u: 6 now records", version);

    /* A read-only handle first, then a read-write open in the same
     * process, or in a child forked meanwhile: the environment was not
     * upgraded, and a write through it would mix the formats. */
    rc = ina_store_open(c2, INA_STORE_RDONLY, &ro, err, sizeof(err));
    is_int(0, rc, "format %u: a read-only handle first", version);
    if (rc != 0)
        bail("%s", err);
    rc = ina_store_open(c2, 0, &st, err, sizeof(err));
    is_int(INA_EVERSION, rc, "...then a read-write open is refused");
    like(err, "close its read-only handles", "...and says what to do: %s",
         err);
    if (rc == 0)
        ina_store_close(st);
    fflush(NULL);
    if ((pid = fork()) < 0)
        bail("fork");
    if (pid == 0)
        _exit(ina_store_open(c2, 0, &st, err, sizeof(err)) == INA_EVERSION
                  ? 0
                  : 1);
    is_int(0, waitpid(pid, &status, 0) == pid ? status : -1,
           "...and so is one in a child forked meanwhile");
    ina_store_close(ro);

    /* The other process, forked before this one opens the store (a
     * child would share an environment open at the fork, read-only),
     * waits to be told to open it read-write: the upgrade. */
    fflush(NULL);
    if (pipe(go) != 0 || (pid = fork()) < 0)
        bail("fork");
    if (pid == 0) {
        struct ina_store *w;
        char x;

        close(go[1]);
        if (read(go[0], &x, 1) != 1
            || ina_store_open(c2, 0, &w, err, sizeof(err)) != 0)
            _exit(1);
        ina_store_set_clock(w, test_clock, &now);
        if (ina_record(w, INA_CONNECTION, &c, 2) != 0 || ina_flush(w) != 0)
            _exit(2);
        ina_store_close(w);
        _exit(0);
    }
    close(go[0]);
    rc = ina_store_open(c2, INA_STORE_RDONLY, &ro, err, sizeof(err));
    is_int(0, rc, "format %u: a read-only open reads it", version);
    if (rc != 0)
        bail("%s", err);
    ina_store_set_clock(ro, test_clock, &now);
    is_int(0, ina_store_stat(ro, &s), "...its statistics");
    is_uint(version, s.format_version, "...of format %u", version);
    is_uint(5, q(ro, INA_CONNECTION, "60,10", "198.51.100.7", 0, 0),
            "...a host's 5 connections, from its now record");
    is_uint(1, q(ro, INA_REJECTION, "3600,24", "198.51.100.0/24", 0, 0),
            "...its /24's rejection");
    is_uint(5, q(ro, INA_CONNECTION, "300,12", "198.51.0.0/16", 0, 0),
            "...its /16's, by a range");
    is_uint(3, q(ro, INA_CONNECTION, "60,10", "2001:db8::/32", 0, 0),
            "...an IPv6 range");

    if (write(go[1], "x", 1) != 1)
        bail("write");
    close(go[1]);
    if (waitpid(pid, &status, 0) != pid)
        bail("waitpid");
    is_int(0, status, "another process opens it read-write and records");
    rc = ina_query(ro, INA_CONNECTION, "60,10", &c, 0, 0, 0, &n, err,
                   sizeof(err));
    is_int(INA_EVERSION, rc, "the read-only handle that read format %u is "
           "refused now: %s", version, err);
    rc = ina_query(ro, INA_CONNECTION, "60,10", &c, 0, 0, 0, &n, err,
                   sizeof(err));
    is_int(INA_EVERSION, rc, "...every time, not reading a wrong total");
    ina_store_close(ro);

    st = test_open(c2);
    ina_store_set_clock(st, test_clock, &now);
    is_int(0, ina_store_stat(st, &s), "a new handle");
    is_uint(INA_FORMAT_VERSION, s.format_version, "...reads format %d",
            INA_FORMAT_VERSION);
    is_uint(7, q(st, INA_CONNECTION, "60,10", "198.51.100.7", 0, 0),
            "...format %u's 5 connections and the 2 since", version);
    is_uint(7, q(st, INA_CONNECTION, "3600,24", "198.51.0.0/16", 0, 0),
            "...the /16's by a range");
    is_uint(1, q(st, INA_REJECTION, "60,10", "198.51.100.7", 0, 0),
            "...the rejection");
    is_uint(3, q(st, INA_CONNECTION, "300,12", "2001:db8::1", 0, 0),
            "...the IPv6 host's");
    /* Two hosts, three granularities, three widths. */
    is_uint(2 * 3 * 3, s.counters, "...every counter once");
    ina_store_close(st);
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0
        || mdb_env_open(env, c2->store, MDB_RDONLY, 0660) != 0
        || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        bail("cannot open the store with LMDB directly");
    is_int(MDB_NOTFOUND, mdb_dbi_open(txn, "now", 0, &nd),
           "the named now database is gone");
    /* The host's record, its three widths' entries of 7 connections and
     * 1 rejection packed: 11 bytes each (internal.h). */
    k.mv_data = (void *) hkey;
    k.mv_size = sizeof(hkey);
    if (mdb_dbi_open(txn, NULL, 0, &nd) != 0)
        bail("no main database");
    rc = mdb_get(txn, nd, &k, &v);
    is_int(0, rc, "the host's now record is in the main database");
    is_uint(3 * 11, rc == 0 ? v.mv_size : 0, "...packed");
    mdb_txn_abort(txn);
    mdb_env_close(env);
    ina_conf_free(c2);
}

/* format_full - an upgrade the map cannot hold fails the open with
 * advice and leaves the store of its format (2 or 3), whole; a larger
 * map then takes it */

static void
format_full(uint32_t version)
{
    static const char body[] = "map_size = \"1M\"\nmonitors = {\"60,1\"}\n"
                               "ipv4_prefixes = {32}\nipv6_prefixes = {}\n"
                               "flush_delay = 0\n";
    struct ina_conf *cf = test_conf(version == 2 ? "v2full" : "v3full",
                                    body), *big;
    struct ina_store *st, *ro;
    struct ina_stat s;
    struct ina_cidr a;
    char err[512];
    uint64_t n = 0;
    int rc;

    st = test_open(cf);
    ina_store_set_clock(st, test_clock, &now);
    memset(&a, 0, sizeof(a));
    a.family = 4;
    a.plen = 32;
    a.addr[0] = 10;
    /* Distinct hosts until 55% of the map is in use: the older values,
     * not packed, take more, and the upgrade needs room for both. */
    do {
        a.addr[2] = (uint8_t) (n >> 8);
        a.addr[3] = (uint8_t) n;
        if (ina_record(st, INA_CONNECTION, &a, 1) != 0)
            bail("record");
        n++;
        if (n % 256 == 0 && ina_store_stat(st, &s) != 0)
            bail("stat");
    } while (n < 65536 && (n % 256 != 0 || s.map_used * 100 < s.map_size * 55));
    ina_store_close(st);
    diag("%" PRIu64 " hosts fill %" PRIu64 " of %" PRIu64 " bytes", n,
         s.map_used, s.map_size);
    is_uint(n, to_format(cf->store, version), "a nearly full store "
            "rewritten as format %u", version);

    rc = ina_store_open(cf, 0, &st, err, sizeof(err));
    is_int(MDB_MAP_FULL, rc, "a read-write open cannot upgrade it");
    like(err, version == 2 ? "upgrading format 2 to 4"
                           : "upgrading format 3 to 4",
         "...and says so: %s", err);
    like(err, "raise map_size", "...and what to do");
    if (rc == 0)
        ina_store_close(st);
    rc = ina_store_open(cf, INA_STORE_RDONLY, &ro, err, sizeof(err));
    is_int(0, rc, "a read-only open reads it still");
    if (rc == 0) {
        ina_store_set_clock(ro, test_clock, &now);
        is_uint(n, q(ro, INA_CONNECTION, "60,1", "10.0.0.0/16", 0, 0),
                "...every host's connection, in format %u", version);
        is_int(0, ina_store_stat(ro, &s), "...its statistics");
        is_uint(version, s.format_version, "...of format %u", version);
        ina_store_close(ro);
    }
    big = test_conf(version == 2 ? "v2full" : "v3full", "map_size = \"4M\"\nmonitors = {\"60,1\"}\n"
                              "ipv4_prefixes = {32}\nipv6_prefixes = {}\n");
    st = test_open(big);
    ina_store_set_clock(st, test_clock, &now);
    is_int(0, ina_store_stat(st, &s), "a larger map upgrades it");
    is_uint(INA_FORMAT_VERSION, s.format_version, "...to format %d",
            INA_FORMAT_VERSION);
    is_uint(n, q(st, INA_CONNECTION, "60,1", "10.0.0.0/16", 0, 0),
            "...every connection kept");
    is_uint(n, s.counters, "...each host's counter once");
    ina_store_close(st);
    ina_conf_free(big);
    ina_conf_free(cf);
}

int
main(void)
{
    struct ina_conf *conf, *conf2;
    struct ina_store *st, *ro, *st2;
    struct ina_cidr c;
    struct ina_stat s;
    struct ina_top_entry top[8];
    struct walk_sum ws;
    struct ina_walker w;
    struct stat sb;
    char err[512], path[1024];
    uint64_t n, total, removed;
    size_t nt;
    int rc, i;

    plan_lazy();

    key_cmp_check();
    be_check();
    now_codec_check();

    conf = test_conf("store", NULL);
    st = test_open(conf);
    ina_store_set_clock(st, test_clock, &now);

    /* Creation: directory 0750, files 0660, format record. */
    ok(stat(conf->store, &sb) == 0 && (sb.st_mode & 07777) == 0750,
       "store directory is created 0750");
    snprintf(path, sizeof(path), "%s/data.mdb", conf->store);
    ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0660,
       "data.mdb is created 0660");
    /* A writer maps the store MDB_WRITEMAP: the whole map must have its
     * blocks, so that a full disk fails the open, not a store into the
     * map (SIGBUS). */
    is_uint(conf->map_size, (uint64_t) sb.st_size,
            "data.mdb is as long as the map");
    ok((uint64_t) sb.st_blocks * 512u >= (uint64_t) sb.st_size,
       "...and every block of it is reserved on disk");
    snprintf(path, sizeof(path), "%s/lock.mdb", conf->store);
    ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0660,
       "lock.mdb is created 0660");
    rc = ina_store_stat(st, &s);
    is_int(0, rc, "0 from stat of a new store");
    is_uint(INA_FORMAT_VERSION, s.format_version,
            "format version %d is recorded", INA_FORMAT_VERSION);
    is_uint(0, s.counters, "0 counters in a new store");

    /* IPv4 at every configured granularity. */
    rec(st, INA_CONNECTION, "192.0.2.1", 1);
    rec(st, INA_CONNECTION, "192.0.2.1", 2);
    rec(st, INA_CONNECTION, "192.0.2.77", 4);
    rec(st, INA_CONNECTION, "192.0.3.5", 8);
    rec(st, INA_RECEPTION, "192.0.2.1", 16);
    rec(st, INA_REJECTION, "192.0.2.77", 32);
    is_uint(3, q(st, INA_CONNECTION, "60,10", "192.0.2.1", 0, 0),
            "3 connections from 192.0.2.1 (a /32 lookup)");
    is_uint(7, q(st, INA_CONNECTION, "60,10", "192.0.2.0/24", 0, 0),
            "7 connections from 192.0.2.0/24 (a /24 lookup)");
    is_uint(15, q(st, INA_CONNECTION, "300,12", "192.0.0.0/16", 0, 0),
            "15 connections from 192.0.0.0/16 (a /16 lookup)");
    is_uint(15, q(st, INA_CONNECTION, "3600,24", "192.0.0.0/22", 0, 0),
            "15 connections from 192.0.0.0/22 (a /24 range)");
    is_uint(7, q(st, INA_CONNECTION, "60,10", "192.0.2.0/25", 0, 0),
            "7 connections from 192.0.2.0/25 (a /32 range)");
    is_uint(3, q(st, INA_CONNECTION, "60,10", "192.0.2.0/26", 0, 0),
            "3 connections from 192.0.2.0/26 (77 is outside)");
    is_uint(4, q(st, INA_CONNECTION, "60,10", "192.0.2.64/26", 0, 0),
            "4 connections from 192.0.2.64/26");
    is_uint(15, q(st, INA_CONNECTION, "60,10", "0.0.0.0/0", 0, 0),
            "15 connections from 0.0.0.0/0 (a /16 range)");
    is_uint(7, q(st, INA_CONNECTION, "60,10", "192.0.2.99/24", 0, 0),
            "host bits of the block are ignored");
    is_uint(16, q(st, INA_RECEPTION, "60,10", "192.0.2.0/24", 0, 0),
            "16 receptions, counted apart from connections");
    is_uint(32, q(st, INA_REJECTION, "60,10", "192.0.0.0/16", 0, 0),
            "32 rejections");
    is_uint(0, q(st, INA_REJECTION, "60,10", "192.0.2.1", 0, 0),
            "0 rejections from a host that had none");
    is_uint(3, q(st, INA_CONNECTION, "60, 10", "::ffff:192.0.2.1", 0, 0),
            "an IPv4-mapped address and \"60, 10\" find the same counter");
    is_uint(7, q(st, INA_CONNECTION, "60,10", "::ffff:192.0.2.0/120", 0, 0),
            "a mapped /120 is the IPv4 /24");

    /* IPv6. */
    rec(st, INA_CONNECTION, "2001:db8::1", 1);
    rec(st, INA_CONNECTION, "2001:db8::2", 10);
    rec(st, INA_CONNECTION, "2001:db8:0:1::1", 100);
    rec(st, INA_CONNECTION, "2001:db8:1::1", 1000);
    is_uint(1, q(st, INA_CONNECTION, "60,10", "2001:db8::1", 0, 0),
            "1 connection from 2001:db8::1");
    is_uint(11, q(st, INA_CONNECTION, "60,10", "2001:db8::/64", 0, 0),
            "11 connections from 2001:db8::/64");
    is_uint(111, q(st, INA_CONNECTION, "60,10", "[2001:db8::]/48", 0, 0),
            "111 from [2001:db8::]/48");
    is_uint(1111, q(st, INA_CONNECTION, "60,10", "2001:db8::/32", 0, 0),
            "1111 from 2001:db8::/32 (a /48 range)");
    is_uint(111, q(st, INA_CONNECTION, "60,10", "2001:db8::/56", 0, 0),
            "111 from 2001:db8::/56 (a /64 range)");
    is_uint(11, q(st, INA_CONNECTION, "60,10", "2001:db8::/120", 0, 0),
            "11 from 2001:db8::/120 (a /128 range)");
    is_uint(15, q(st, INA_CONNECTION, "60,10", "0.0.0.0/0", 0, 0),
            "IPv6 events do not count for IPv4");

    /* Errors, with messages that say what is valid. */
    c = test_addr("192.0.2.1");
    rc = ina_query(st, INA_CONNECTION, "61,1", &c, 0, 0, 0, &n, err,
                   sizeof(err));
    is_int(INA_ENOMONITOR, rc, "unknown monitor is INA_ENOMONITOR");
    like(err, "60,10 300,12 3600,24", "...and the message lists them");
    rc = ina_query(st, INA_CONNECTION, "sixty", &c, 0, 0, 0, &n, err,
                   sizeof(err));
    is_int(INA_EBADMONITOR, rc, "malformed monitor is INA_EBADMONITOR");
    rc = ina_query(st, INA_CONNECTION, "60,10", &c, 0, 11, 0, &n, err,
                   sizeof(err));
    is_int(INA_EWINDOW, rc, "window 11 of 60,10 is INA_EWINDOW");
    like(err, "0..10", "...and the message gives the range 0..10");
    rc = ina_query(st, INA_CONNECTION, "60,10", &c, 2, 1, 0, &n, err,
                   sizeof(err));
    is_int(INA_EWINDOW, rc, "startv > endv is INA_EWINDOW");
    rc = ina_query(st, INA_CONNECTION, "60,10", &c, 0, 10, 0, &n, err,
                   sizeof(err));
    is_int(0, rc, "window 10 of 60,10 is valid (current plus 10)");
    rc = ina_query(st, INA_CONNECTION, "60,10", &c, 0, 0, INA_QUERY_CLUSTER,
                   &n, err, sizeof(err));
    is_int(INA_ENOCLUSTER, rc, "cluster query without cluster config");
    like(err, "cluster metrics are not configured", "...says so");
    c = test_addr("/24");
    rc = ina_query(st, INA_CONNECTION, "60,10", &c, 0, 0, 0, &n, err,
                   sizeof(err));
    is_int(INA_ENOADDR, rc, "a bare mask is INA_ENOADDR for the store");
    conf2 = test_conf("v4only", "monitors = {\"60,1\"}\n"
                                "ipv4_prefixes = {24}\n"
                                "ipv6_prefixes = {}\n");
    st2 = test_open(conf2);
    c = test_addr("192.0.2.1");
    rc = ina_query(st2, INA_CONNECTION, "60,1", &c, 0, 0, 0, &n, err,
                   sizeof(err));
    is_int(INA_ETOOFINE, rc, "a /32 with /24 counters is INA_ETOOFINE");
    like(err, "/24", "...and the message names the finest /24");
    c = test_addr("2001:db8::1");
    is_int(INA_ENOFAMILY, ina_record(st2, INA_CONNECTION, &c, 1),
           "recording IPv6 with no IPv6 prefixes is INA_ENOFAMILY");
    ina_store_close(st2);
    ina_conf_free(conf2);

    /* Sessions. */
    c = test_addr("198.51.100.7");
    is_int(0, ina_session_open(st, &c, NULL), "open a session");
    is_int(0, ina_session_open(st, &c, NULL), "open another");
    is_int(0, ina_session_open(st, &c, "Control"), "open one to Control");
    is_uint(2, sessions(st, "198.51.100.7", "SMTP"),
            "2 SMTP sessions open from the host");
    is_uint(2, sessions(st, "198.51.100.0/24", NULL),
            "2 from its /24 (SMTP is the default)");
    is_uint(1, sessions(st, "198.51.100.0/24", "Control"),
            "1 to Control");
    is_uint(0, sessions(st, "198.51.100.0/24", "smtp"),
            "service names are case-sensitive");
    is_int(0, ina_session_close(st, &c, NULL), "close one");
    is_uint(1, sessions(st, "198.51.100.0/28", NULL), "1 left");
    is_int(0, ina_session_close(st, &c, NULL), "close the last");
    is_int(0, ina_session_close(st, &c, NULL), "a close too many is fine");
    is_uint(0, sessions(st, "198.51.100.0/16", NULL),
            "...and the gauge stays at 0");
    c = test_addr("198.51.100.7");
    is_int(INA_EBADSERVICE, ina_session_open(st, &c, ""),
           "an empty service is refused");

    /* Read-only handle: sees everything, writes nothing. */
    rc = ina_store_open(conf, INA_STORE_RDONLY, &ro, err, sizeof(err));
    is_int(0, rc, "read-only open of the same store in the same process");
    if (rc == 0) {
        ina_store_set_clock(ro, test_clock, &now);
        is_uint(7, q(ro, INA_CONNECTION, "60,10", "192.0.2.0/24", 0, 0),
                "the read-only handle reads the same totals");
        c = test_addr("192.0.2.1");
        is_int(INA_ERDONLY, ina_record(ro, INA_CONNECTION, &c, 1),
               "and cannot record");
        ina_store_close(ro);
    }

    /* Top. */
    rc = ina_top(st, INA_CONNECTION, "60,10", 4, 32, 0, 0, top, 8, &nt,
                 &total, err, sizeof(err));
    is_int(0, rc, "top /32");
    is_uint(3, nt, "3 IPv4 hosts");
    is_uint(15, total, "total 15");
    ok(nt == 3 && top[0].count == 8 && top[1].count == 4
           && top[2].count == 3,
       "largest first: 8 4 3");
    rc = ina_top(st, INA_CONNECTION, "60,10", 4, 24, 0, 0, top, 1, &nt,
                 &total, err, sizeof(err));
    ok(rc == 0 && nt == 1 && top[0].count == 8,
       "top /24 with k=1: 192.0.3.0/24 with 8");
    rc = ina_top(st, INA_CONNECTION, "60,10", 4, 23, 0, 0, top, 8, &nt,
                 &total, err, sizeof(err));
    ok(rc == 0 && nt == 1 && top[0].count == 15,
       "top /23 (unconfigured) sums the /24s: one block of 15");
    rc = ina_top(st, INA_CONNECTION, "60,10", 6, 48, 0, 0, top, 8, &nt,
                 &total, err, sizeof(err));
    ok(rc == 0 && nt == 2 && top[0].count == 1000 && top[1].count == 111,
       "top IPv6 /48: 1000 then 111");

    /* Walk, then load into a fresh store: identical answers. */
    memset(&ws, 0, sizeof(ws));
    w.counter = walk_counter;
    w.gauge = walk_gauge;
    w.arg = &ws;
    is_int(0, ina_walk(st, &w), "walk the store");
    is_uint(45, ws.counters,
            "45 counter records: (6 IPv4 + 9 IPv6 prefixes) x 3 widths");
    is_uint(135 + 9999, ws.conn,
            "their connections sum to 15 and 1111, x 3 grains x 3 widths");
    is_uint(3, ws.gauges, "the open Control session at 3 grains");
    conf2 = test_conf("copy", NULL);
    st2 = test_open(conf2);
    ina_store_set_clock(st2, test_clock, &now);
    w.counter = walk_load;
    w.gauge = walk_load_gauge;
    w.arg = st2;
    is_int(0, ina_walk(st, &w), "load every record into a new store");
    is_uint(q(st, INA_CONNECTION, "60,10", "0.0.0.0/0", 0, 0),
            q(st2, INA_CONNECTION, "60,10", "0.0.0.0/0", 0, 0),
            "the copy answers the same IPv4 total");
    is_uint(q(st, INA_REJECTION, "300,12", "192.0.2.77", 0, 0),
            q(st2, INA_REJECTION, "300,12", "192.0.2.77", 0, 0),
            "and the same host rejections");
    is_uint(q(st, INA_CONNECTION, "3600,24", "2001:db8::/32", 0, 0),
            q(st2, INA_CONNECTION, "3600,24", "2001:db8::/32", 0, 0),
            "and the same IPv6 total");
    ina_store_close(st2);
    ina_conf_free(conf2);

    /* Clear a block: its counters go, and coarser totals drop by it. */
    c = test_addr("192.0.2.0/24");
    rc = ina_clear(st, &c, &removed);
    is_int(0, rc, "clear 192.0.2.0/24");
    ok(removed > 0, "clear says it removed %llu records",
       (unsigned long long) removed);
    is_uint(0, q(st, INA_CONNECTION, "60,10", "192.0.2.0/24", 0, 0),
            "the /24 reads 0");
    is_uint(0, q(st, INA_CONNECTION, "60,10", "192.0.2.1", 0, 0),
            "its hosts read 0");
    is_uint(8, q(st, INA_CONNECTION, "60,10", "192.0.0.0/16", 0, 0),
            "the /16 lost exactly the /24's 7");
    is_uint(8, q(st, INA_CONNECTION, "3600,24", "192.0.3.0/24", 0, 0),
            "the neighbour /24 keeps its 8");
    is_uint(0, q(st, INA_REJECTION, "60,10", "192.0.0.0/16", 0, 0),
            "the /16's rejections (all from the block) are 0");
    rc = ina_clear(st, NULL, &removed);
    is_int(0, rc, "clear everything");
    is_uint(0, q(st, INA_CONNECTION, "60,10", "2001:db8::/32", 0, 0),
            "IPv6 reads 0 after clear --all");
    is_int(0, ina_store_stat(st, &s), "stat after clear");
    is_uint(0, s.counters, "0 counters after clear --all");

    /* The counter keys are in LMDB's default order (memcmp's), though
     * the library sets a faster comparison of its own: LMDB itself, with
     * the default, finds every key by a lookup and walks them in order.
     * IPv4 and IPv6 keys differ in length, and the addresses are spread
     * so that many differ only in their last bytes. */
    for (i = 0; i < 3000; i++) {
        char a[64];

        if (i % 3 == 0)
            snprintf(a, sizeof(a), "2001:db8:%x::%x:%x", i % 7, i % 251,
                     (unsigned) i * 2654435761u >> 16);
        else
            snprintf(a, sizeof(a), "%u.%u.%u.%u", 10 + i % 3, i % 256,
                     (i * 7) % 256, (unsigned) (i * 2654435761u) >> 24);
        c = test_addr(a);
        if (ina_record(st, INA_CONNECTION, &c, 1) != 0)
            break;
    }
    is_int(3000, i, "3000 records from spread IPv4 and IPv6 addresses");
    is_int(0, ina_flush(st), "flushed");
    is_int(0, ina_store_stat(st, &s), "stat");
    ina_store_close(st);
    {
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;
        MDB_cursor *cur;
        MDB_val k, v, pk, g;
        uint8_t prev[64];
        size_t plen = 0, cmp;
        uint64_t keys = 0, found = 0, ordered = 0;
        int r;

        static const char *const dbs[] = { "counts", NULL };
        uint64_t first, entries = 0, names = 0, pages = 0;
        char name[16][32];
        struct nent ent[NENT_MAX];
        MDB_stat ms;
        size_t d;

        /* The counts database and the now records (the prefixes' newest
         * windows, in the main database before the named databases'
         * records), each in memcmp order. */
        if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0
            || mdb_env_open(env, conf->store, MDB_RDONLY, 0660) != 0
            || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
            bail("cannot open the store with LMDB directly");
        for (d = 0; d < 2; d++) {
            if (mdb_dbi_open(txn, dbs[d], 0, &dbi) != 0
                || mdb_cursor_open(txn, dbi, &cur) != 0)
                bail("cannot open the store with LMDB directly");
            first = keys + 1;
            for (r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0;
                 r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                if (d == 1 && (k.mv_size < 2
                               || (((uint8_t *) k.mv_data)[0] != 4
                                   && ((uint8_t *) k.mv_data)[0] != 6))) {
                    /* A named database: none after it is a now key. */
                    if (names < 16 && k.mv_size < sizeof(name[0])) {
                        memcpy(name[names], k.mv_data, k.mv_size);
                        name[names][k.mv_size] = '\0';
                    }
                    names++;
                    continue;
                }
                if (d == 1 && names > 0)
                    break;
                keys++;
                /* A now record holds a counter for each of its entries. */
                entries += d == 0 ? 1
                                  : (uint64_t) store_now_unpack(
                                        INA_FORMAT_VERSION, &v, ent);
                cmp = plen < k.mv_size ? plen : k.mv_size;
                if (keys == first
                    || (r = memcmp(prev, k.mv_data, cmp)) < 0
                    || (r == 0 && plen < k.mv_size))
                    ordered++;
                pk = k;
                if (mdb_get(txn, dbi, &pk, &g) == 0)
                    found++;
                if (k.mv_size <= sizeof(prev)) {
                    memcpy(prev, k.mv_data, k.mv_size);
                    plen = k.mv_size;
                }
            }
            mdb_cursor_close(cur);
        }
        /* Every page in use: the freelist's, the main database's and
         * each named database's. */
        for (d = 0; d < 2 + names && d < 2 + 16; d++) {
            if (d >= 2 && mdb_dbi_open(txn, name[d - 2], 0, &dbi) != 0)
                bail("cannot open database %s", name[d - 2]);
            if (mdb_stat(txn, d < 2 ? (MDB_dbi) d : dbi, &ms) != 0)
                bail("cannot stat a database");
            pages += ms.ms_branch_pages + ms.ms_leaf_pages
                     + ms.ms_overflow_pages;
        }
        mdb_txn_abort(txn);
        mdb_env_close(env);
        ok(names >= 5, "the main database's named databases follow "
           "(%" PRIu64 ")", names);
        is_uint(pages * ms.ms_psize, s.map_used,
                "map_used counts every page in use once");
        is_uint(s.counters, entries, "LMDB walks every counter");
        is_uint(keys, ordered, "each after the one before, in memcmp order");
        is_uint(keys, found, "and finds each by a lookup");
    }

    /* A store of format 1 (no now database: every window in the counts
     * database) is read as it is by a read-only handle, and upgraded by
     * a read-write open, its counts kept where they are. */
    {
        static const uint32_t widths[3] = { 60, 300, 3600 };
        static const uint8_t masks[3] = { 16, 24, 32 };
        struct ina_conf *c1 = test_conf("v1", NULL);
        struct ina_cidr h = test_addr("198.51.100.7");
        uint64_t val[INA_NEVENTS] = { 5, 0, 1 }, legacy = 0;
        uint8_t key[14];
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi meta, counts;
        MDB_val k, v;
        uint32_t win;
        size_t wi, mi;

        st2 = test_open(c1);
        ina_store_close(st2);
        if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0
            || mdb_env_open(env, c1->store, 0, 0660) != 0
            || mdb_txn_begin(env, NULL, 0, &txn) != 0
            || mdb_dbi_open(txn, "meta", 0, &meta) != 0
            || mdb_dbi_open(txn, "counts", 0, &counts) != 0)
            bail("cannot open the store with LMDB directly");
        put_format(txn, meta, 1);
        /* 5 connections and 1 rejection of 198.51.100.7 in the current
         * window of each width, at each granularity, as format 1 kept
         * them. */
        for (wi = 0; wi < 3; wi++)
            for (mi = 0; mi < 3; mi++) {
                win = (uint32_t) (now / widths[wi]);
                be_put(key, widths[wi], 4);
                be_put(key + 4, win, 4);
                key[8] = 4;
                key[9] = masks[mi];
                memcpy(key + 10, h.addr, 4);
                cidr_mask(key + 10, 4, masks[mi]);
                k.mv_data = key;
                k.mv_size = sizeof(key);
                v.mv_data = val;
                v.mv_size = sizeof(val);
                if (mdb_put(txn, counts, &k, &v, 0) != 0)
                    bail("cannot write a counter");
            }
        if (mdb_txn_commit(txn) != 0)
            bail("cannot commit");
        mdb_env_close(env);

        rc = ina_store_open(c1, INA_STORE_RDONLY, &ro, err, sizeof(err));
        is_int(0, rc, "format 1: a read-only open reads it");
        if (rc == 0) {
            ina_store_set_clock(ro, test_clock, &now);
            is_uint(5, q(ro, INA_CONNECTION, "60,10", "198.51.100.7", 0, 0),
                    "...a host's 5 connections");
            is_uint(5, q(ro, INA_CONNECTION, "3600,24", "198.51.0.0/16", 0,
                         0), "...and its /16's, by a range");
            ina_store_close(ro);
        }
        st2 = test_open(c1);
        ina_store_set_clock(st2, test_clock, &now);
        is_int(0, ina_store_stat(st2, &s), "a read-write open upgrades it");
        is_uint(INA_FORMAT_VERSION, s.format_version, "...to format %d",
                INA_FORMAT_VERSION);
        is_uint(5, q(st2, INA_CONNECTION, "60,10", "198.51.100.7", 0, 0),
                "the host still counts 5");
        rec(st2, INA_CONNECTION, "198.51.100.7", 2);
        is_int(0, ina_flush(st2), "2 more, flushed");
        is_uint(7, q(st2, INA_CONNECTION, "60,10", "198.51.100.7", 0, 0),
                "a point query adds format 1's 5 and the now record's 2");
        is_uint(7, q(st2, INA_CONNECTION, "300,12", "198.51.100.0/24", 0,
                     0), "...a /24's too");
        is_uint(7, q(st2, INA_CONNECTION, "60,10", "198.51.0.0/16", 0, 0),
                "...and a range over the /24s");
        is_uint(1, q(st2, INA_REJECTION, "3600,24", "198.51.100.7", 0, 0),
                "...and the rejection");
        now += 60;
        rec(st2, INA_CONNECTION, "198.51.100.7", 1);
        is_int(0, ina_flush(st2), "a minute on, 1 more");
        is_uint(1, q(st2, INA_CONNECTION, "60,10", "198.51.100.7", 0, 0),
                "the new minute counts 1");
        is_uint(7, q(st2, INA_CONNECTION, "60,10", "198.51.100.7", 1, 1),
                "the one before still 7");
        is_uint(8, q(st2, INA_CONNECTION, "3600,24", "198.51.100.7", 0, 0),
                "the hour 8");
        ina_store_close(st2);
        /* Read with LMDB directly once no handle holds the store (one
         * environment a process). */
        if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0
            || mdb_env_open(env, c1->store, MDB_RDONLY, 0660) != 0
            || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0
            || mdb_dbi_open(txn, "meta", 0, &meta) != 0)
            bail("cannot open the store with LMDB directly");
        k.mv_data = (void *) "legacy_time";
        k.mv_size = 11;
        if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == sizeof(legacy))
            memcpy(&legacy, v.mv_data, sizeof(legacy));
        mdb_txn_abort(txn);
        mdb_env_close(env);
        ok(legacy >= ((uint64_t) now / 3600 + 1) * 3600,
           "...noting that format 1 wrote windows up to the end of the "
           "current hour");
        ina_conf_free(c1);
    }
    format_upgrade(2);
    format_upgrade(3);
    format_full(2);
    format_full(3);

    /* A record holds 32 entries: a configuration whose width finds it
     * full of another's still counts exactly (in the counts database,
     * where a point query looks when the record has no entry of its
     * width). */
    {
        char body[2048];
        struct ina_conf *cw, *cn;
        struct ina_store *sw, *sn;
        size_t len, k;

        len = (size_t) snprintf(body, sizeof(body), "monitors = {");
        for (k = 0; k < 32; k++)
            len += (size_t) snprintf(body + len, sizeof(body) - len,
                                     "%s\"%u,1\"", k ? ", " : "",
                                     (unsigned) (61 + k));
        snprintf(body + len, sizeof(body) - len,
                 "}\nipv4_prefixes = {32}\nipv6_prefixes = {}\n"
                 "flush_delay = 0\n");
        cw = test_conf("room", body);
        cn = test_conf("room", "monitors = {\"60,1\"}\n"
                               "ipv4_prefixes = {32}\nipv6_prefixes = {}\n"
                               "flush_delay = 0\n");
        sw = test_open(cw);
        sn = test_open(cn);
        ina_store_set_clock(sw, test_clock, &now);
        ina_store_set_clock(sn, test_clock, &now);
        rec(sw, INA_CONNECTION, "192.0.2.9", 4);
        is_uint(4, q(sw, INA_CONNECTION, "92,1", "192.0.2.9", 0, 0),
                "32 widths: the host's record holds them all");
        rec(sn, INA_CONNECTION, "192.0.2.9", 5);
        is_uint(5, q(sn, INA_CONNECTION, "60,1", "192.0.2.9", 0, 0),
                "a 33rd width finds no room and still counts 5");
        rec(sn, INA_CONNECTION, "192.0.2.9", 2);
        is_uint(7, q(sn, INA_CONNECTION, "60,1", "192.0.2.9", 0, 0),
                "...and 7 after 2 more");
        is_uint(4, q(sw, INA_CONNECTION, "61,1", "192.0.2.9", 0, 0),
                "the other configuration's widths keep their 4");
        rec(sw, INA_CONNECTION, "192.0.2.9", 1);
        is_uint(5, q(sw, INA_CONNECTION, "92,1", "192.0.2.9", 0, 0),
                "...and add to them: 5 at its widest");
        is_uint(7, q(sn, INA_CONNECTION, "60,1", "192.0.2.9", 0, 0),
                "while the 33rd keeps 7");
        ina_store_close(sn);
        ina_store_close(sw);
        ina_conf_free(cn);
        ina_conf_free(cw);
    }

    /* A bad format version is refused with advice. */
    {
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;

        if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 8) != 0
            || mdb_env_open(env, conf->store, 0, 0660) != 0
            || mdb_txn_begin(env, NULL, 0, &txn) != 0
            || mdb_dbi_open(txn, "meta", 0, &dbi) != 0)
            bail("cannot open the store with LMDB directly");
        put_format(txn, dbi, 99);
        if (mdb_txn_commit(txn) != 0)
            bail("cannot write the format record");
        mdb_env_close(env);
    }
    rc = ina_store_open(conf, 0, &st, err, sizeof(err));
    is_int(INA_EVERSION, rc, "a store of format 99 is refused");
    like(err, "format version 99", "...and the message names the version");
    like(err, "move it aside", "...and says what to do");
    ina_conf_free(conf);
    return 0;
}
