/* 28-session-batch.c - sessions buffered in the shared tables
 *
 * A session open or close goes into the pending file's session tables,
 * as a record goes into its counter tables: every process counts it at
 * once, the tree gets it at the next flush, and no session call waits
 * for the writer lock.  Shown here: what the tree holds before and after
 * a flush, that a close takes only the caller's own sessions, calls made
 * while another process holds the writer lock, a SIGKILLed process's
 * buffered opens and closes, the periodic reaping of a dead process
 * whose sessions are still buffered, what a flush does with owner
 * deltas that are malformed or larger than the record, four processes
 * opening and closing at once under frequent flushes, and a pending file
 * of an older version.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "tap/basic.h"
#include "tap/inatest.h"
#include "internal.h"

/* child_txn - a transaction in an LMDB environment of a forked child's
 * own on the store (the library's is closed in a child), or _exit(255) */

static MDB_txn *
child_txn(const struct ina_conf *conf, unsigned flags, MDB_env **env)
{
    MDB_txn *txn;

    if (mdb_env_create(env) != 0 || mdb_env_set_maxdbs(*env, 16) != 0
        || mdb_env_set_mapsize(*env, 64u << 20) != 0
        || mdb_env_open(*env, conf->store, MDB_NOTLS | flags, 0660) != 0
        || mdb_txn_begin(*env, NULL, flags & MDB_RDONLY, &txn) != 0)
        _exit(255);
    return txn;
}

/* child_status - the exit status of a child, or -1 */

static int
child_status(pid_t pid)
{
    int status;

    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* tree_gauge - the SMTP gauge of an IPv4 block as the tree holds it,
 * without the pending tables (below 255), or -1 */

static int
tree_gauge(const struct ina_conf *conf, const char *cidr)
{
    struct ina_cidr c = test_addr(cidr);
    uint8_t key[SKEY_MAX];
    uint64_t n = 0;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k, v;
    pid_t pid;
    int s;

    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        txn = child_txn(conf, MDB_RDONLY, &env);
        if (mdb_dbi_open(txn, "sessions", 0, &dbi) != 0)
            _exit(255);
        k.mv_size = store_skey(key, "SMTP", 4, 4, c.plen, c.addr);
        k.mv_data = key;
        if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == sizeof(n))
            memcpy(&n, v.mv_data, sizeof(n));
        _exit(n < 255 ? (int) n : 254);
    }
    s = child_status(pid);
    return s == 255 ? -1 : s;
}

/* tree_owned - the sessions the tree's owner records give a pid, in all
 * (below 255), or -1 */

static int
tree_owned(const struct ina_conf *conf, pid_t owner)
{
    uint64_t n = 0, x;
    const uint8_t *p;
    MDB_env *env;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_dbi dbi;
    MDB_val k, v;
    pid_t pid;
    int rc, s;

    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        txn = child_txn(conf, MDB_RDONLY, &env);
        if (mdb_dbi_open(txn, "owners", 0, &dbi) != 0
            || mdb_cursor_open(txn, dbi, &cur) != 0)
            _exit(255);
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            p = k.mv_data;
            if (k.mv_size > 4 && v.mv_size == sizeof(x)
                && be_get(p, 4) == (uint64_t) owner) {
                memcpy(&x, v.mv_data, sizeof(x));
                n += x;
            }
        }
        _exit(n < 255 ? (int) n : 254);
    }
    s = child_status(pid);
    return s == 255 ? -1 : s;
}

/* open_n, close_n - n session calls from a host, 0 when all succeed */

static int
move_n(struct ina_store *st, const char *host, int n, int open)
{
    struct ina_cidr c = test_addr(host);
    int i, rc = 0;

    for (i = 0; i < n && rc == 0; i++)
        rc = open ? ina_session_open(st, &c, NULL)
                  : ina_session_close(st, &c, NULL);
    return rc;
}

/* What bad_txn applies: owner keys as the shared table may hold them. */
struct apply_case {
    const char *what;
    uint8_t key[OKEY_MAX + 1];
    size_t klen;
    int64_t d;
};

static struct apply_case cases[16];
static size_t ncases;
static int case_rc[16];

/* The process the cases' owner keys name: a child that waits, alive,
 * so that no reaping takes what the cases apply. */
static pid_t idle;

/* owner_key - an owner key of the idle child for host */

static size_t
owner_key(uint8_t *key, const char *host)
{
    struct ina_cidr c = test_addr(host);

    be_put(key, (uint64_t) idle, 4);
    be_put(key + 4, session_proc_start(idle), 8);
    return OKEY_HDR + store_skey(key + OKEY_HDR, "SMTP", 4, 4, 32, c.addr);
}

/* add_case - a case: an owner key for host, bent by what */

static void
add_case(const char *what, const char *host, int bend, int64_t d)
{
    struct apply_case *a = &cases[ncases++];

    a->what = what;
    a->klen = owner_key(a->key, host);
    a->d = d;
    switch (bend) {
    case 1: a->klen = OKEY_HDR + 2; break;            /* cut short */
    case 2: a->key[OKEY_HDR] = 0; break;              /* no service */
    case 3: a->key[OKEY_HDR] = INA_SERVICE_MAX + 1; break;
    case 4: a->key[OKEY_HDR + 5] = 5; break;          /* family 5 */
    case 5: a->key[OKEY_HDR + 6] = 24; break;         /* not a host */
    case 6: a->klen++; break;                         /* a byte too many */
    }
}

/* cases_txn - session_apply() on every case, in one transaction */

static int
cases_txn(struct ina_store *st, MDB_txn *txn, void *arg)
{
    size_t i;

    (void) arg;
    for (i = 0; i < ncases; i++)
        case_rc[i] = session_apply(st, txn, cases[i].key, cases[i].klen,
                                   cases[i].d);
    return 0;
}

/* run_cases - apply the cases, then forget them */

static int
run_cases(struct ina_store *st)
{
    int rc;

    if ((rc = store_enter(st)) != 0)
        return rc;
    rc = store_write(st, cases_txn, NULL);
    store_leave(st);
    return rc;
}

/* killable - a child that opens a handle on conf, runs steps and waits
 * to be killed; its pid once the steps are done, or -1 */

static pid_t
killable(const struct ina_conf *conf, int (*steps)(struct ina_store *))
{
    int fds[2], done;
    pid_t pid;
    char ch;

    if (pipe(fds) != 0)
        sysbail("pipe");
    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        struct ina_store *k = test_open(conf);

        if (steps(k) != 0 || write(fds[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(fds[1]);
    done = read(fds[0], &ch, 1) == 1;
    close(fds[0]);
    if (!done) {
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* open5_close1 - a session in the tree (.6), then buffered: 3 opens
 * (.5), the close of .6 and an open (.7) */

static int
open5_close1(struct ina_store *k)
{
    return move_n(k, "192.0.2.6", 1, 1) != 0 || ina_flush(k) != 0
           || move_n(k, "192.0.2.5", 3, 1) != 0
           || move_n(k, "192.0.2.6", 1, 0) != 0
           || move_n(k, "192.0.2.7", 1, 1) != 0;
}

/* close1_open1 - a session in the tree (.30), then buffered: its close
 * and an open (.31) */

static int
close1_open1(struct ina_store *k)
{
    return move_n(k, "192.0.2.30", 1, 1) != 0 || ina_flush(k) != 0
           || move_n(k, "192.0.2.30", 1, 0) != 0
           || move_n(k, "192.0.2.31", 1, 1) != 0;
}

/* pending_version - the version word of the store's pending file */

static int
pending_version(const char *dir)
{
    char path[4096];
    uint32_t h[2] = { 0, 0 };
    int fd;

    snprintf(path, sizeof(path), "%s/pending", dir);
    if ((fd = open(path, O_RDONLY)) < 0)
        return -1;
    if (read(fd, h, sizeof(h)) != (ssize_t) sizeof(h))
        h[1] = 0;
    close(fd);
    return (int) h[1];
}

int
main(void)
{
    struct ina_conf *conf, *old, *busy;
    struct ina_store *st, *o;
    struct ina_cidr c;
    uint64_t reaped, n;
    int64_t clk;
    int fds[2], back[2], i, all;
    pid_t kids[4];
    char ch, path[4096];
    pid_t pid;
    int fd;

    plan_lazy();
    /* A second between flushes: nothing here reaches the tree unless a
     * test flushes. */
    conf = test_conf("store", "flush_delay = 1000\n"
                              "ipv4_prefixes = {16, 24, 32}\n");
    st = test_open(conf);

    /* Buffered, and counted at once. */
    is_int(0, move_n(st, "192.0.2.1", 2, 1), "open 2 sessions from .1");
    is_int(0, move_n(st, "192.0.2.2", 1, 1), "and 1 from .2");
    is_uint(2, test_sessions(st, "192.0.2.1"), "the /32 counts 2 at once");
    is_uint(3, test_sessions(st, "192.0.2.0/24"), "the /24 counts 3");
    is_uint(3, test_sessions(st, "192.0.0.0/16"), "the /16 counts 3");
    is_int(0, tree_gauge(conf, "192.0.2.1/32"),
           "the tree holds none of them yet");
    is_int(0, tree_owned(conf, getpid()), "nor an owner record");

    /* Another process sees them, and cannot close them. */
    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        struct ina_store *b = test_open(conf);
        int bad = 0;

        bad |= test_sessions(b, "192.0.2.1") != 2;
        bad |= test_sessions(b, "192.0.2.0/24") != 3;
        bad |= move_n(b, "192.0.2.1", 1, 0) != 0;
        bad |= test_sessions(b, "192.0.2.1") != 2;
        ina_store_close(b);
        _exit(bad);
    }
    is_int(0, child_status(pid),
           "another process counts 3 at once, and its close takes none");
    is_uint(2, test_sessions(st, "192.0.2.1"), "so .1 still has 2");

    /* A close of an open still buffered nets it out; a close with no
     * open moves nothing. */
    is_int(0, move_n(st, "192.0.2.2", 1, 0), "close the one from .2");
    is_int(0, move_n(st, "192.0.2.9", 3, 0), "close 3 never opened");
    is_uint(2, test_sessions(st, "192.0.2.0/24"), "the /24 counts 2");
    is_uint(0, test_sessions(st, "192.0.2.9"), "and .9 none");
    is_int(0, ina_flush(st), "flush");
    is_int(2, tree_gauge(conf, "192.0.2.1/32"), "the tree has .1's 2");
    is_int(2, tree_gauge(conf, "192.0.2.0/24"), "its /24 has 2");
    is_int(2, tree_gauge(conf, "192.0.0.0/16"), "its /16 has 2");
    is_int(0, tree_gauge(conf, "192.0.2.2/32"), ".2 nets out to none");
    is_int(2, tree_owned(conf, getpid()), "owned by this process: 2");
    is_uint(2, test_sessions(st, "192.0.2.0/24"), "counted once: 2");

    /* No session call waits for the writer lock: a child holds it until
     * told, or 60 s; had a call waited, the child would be gone when it
     * returned. */
    if (pipe(fds) != 0 || pipe(back) != 0)
        sysbail("pipe");
    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        MDB_env *env;
        MDB_txn *txn = child_txn(conf, 0, &env);

        close(fds[1]);
        if (write(back[1], "x", 1) != 1)
            _exit(1);
        alarm(60);
        if (read(fds[0], &ch, 1) != 1)
            _exit(1);
        mdb_txn_abort(txn);
        _exit(0);
    }
    close(fds[0]);
    ok(read(back[0], &ch, 1) == 1, "another process holds the writer lock");
    is_int(0, move_n(st, "192.0.2.3", 1, 1), "open one from .3");
    is_int(0, move_n(st, "192.0.2.1", 1, 0), "close one of .1's");
    is_uint(2, test_sessions(st, "192.0.2.0/24"), "the /24 counts 2");
    is_int(0, waitpid(pid, NULL, WNOHANG),
           "all while the writer lock was held");
    if (write(fds[1], "x", 1) != 1)
        sysbail("write");
    is_int(0, child_status(pid), "the lock is given back");
    close(fds[1]);
    close(back[0]);
    close(back[1]);
    is_int(0, ina_flush(st), "flush");
    is_int(1, tree_gauge(conf, "192.0.2.1/32"), "the tree: .1 has 1");
    is_int(1, tree_gauge(conf, "192.0.2.3/32"), ".3 has 1");
    is_int(2, tree_gauge(conf, "192.0.2.0/24"), "the /24 has 2");

    /* SIGKILL with sessions buffered: an open, and a close of a session
     * in the tree.  Reaping applies what the dead process buffered and
     * takes all it held, once. */
    pid = killable(conf, open5_close1);
    ok(pid > 0, "a child opened 5 and closed 1");
    is_uint(3, test_sessions(st, "192.0.2.5"), "its 3 from .5 count");
    is_uint(0, test_sessions(st, "192.0.2.6"), "its closed one does not");
    is_uint(6, test_sessions(st, "192.0.2.0/24"), "the /24 counts 2 + 4");
    is_int(1, tree_gauge(conf, "192.0.2.6/32"),
           "the tree still has the one it closed");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    is_int(0, ina_reap(st, &reaped), "reap");
    is_uint(4, reaped, "the dead child's 4 open sessions are reaped");
    is_uint(2, test_sessions(st, "192.0.2.0/24"), "the /24 is back to 2");
    is_uint(2, test_sessions(st, "192.0.0.0/16"), "and the /16");
    is_int(2, tree_gauge(conf, "192.0.2.0/24"), "in the tree too");
    is_int(0, tree_gauge(conf, "192.0.2.6/32"), ".6 is 0 there");
    is_int(0, ina_reap(st, &reaped), "reap again");
    is_uint(0, reaped, "nothing more");

    /* The writers' periodic reaping does not flush: a dead process
     * whose sessions are still buffered waits for them to be applied,
     * or a close of one in the tree would be taken twice. */
    pid = killable(conf, close1_open1);
    ok(pid > 0,
       "a child closed one in the tree and opened one, both buffered");
    is_uint(3, test_sessions(st, "192.0.2.0/24"), "the /24 counts 2 + 1");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    /* A new clock makes the handle's periodic pass due, and a session
     * opened by hand is a write transaction that runs it. */
    clk = (int64_t) time(NULL);
    ina_store_set_clock(st, test_clock, &clk);
    c = test_addr("192.0.2.40");
    is_int(0, ina_session_adjust(st, &c, NULL, 1, &n),
           "a write with the periodic reaping due");
    is_uint(4, test_sessions(st, "192.0.2.0/24"),
            "the /24: 2 + 1 by hand + the dead child's 1 not reaped yet");
    is_int(0, ina_flush(st), "flush");
    is_int(0, ina_reap(st, &reaped), "reap");
    is_uint(1, reaped, "the child's open one is reaped once applied");
    is_uint(3, test_sessions(st, "192.0.2.0/24"), "the /24: 2 + 1");
    is_int(3, tree_gauge(conf, "192.0.2.0/24"), "so is the tree's");
    c = test_addr("192.0.2.40");
    is_int(0, ina_session_adjust(st, &c, NULL, -1, &n), "close it by hand");
    ina_store_set_clock(st, NULL, NULL);

    /* A handle closed applies its process's sessions. */
    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        struct ina_store *k = test_open(conf);
        int bad = move_n(k, "192.0.2.8", 1, 1) != 0;

        ina_store_close(k);
        bad |= tree_gauge(conf, "192.0.2.8/32") != 1;
        bad |= tree_owned(conf, getpid()) != 1;
        _exit(bad);
    }
    is_int(0, child_status(pid),
           "closing a handle puts its process's session in the tree");
    is_int(0, ina_reap(st, &reaped), "reap");
    is_uint(1, reaped, "that child's session goes when it does");
    ina_store_close(st);
    is_int(1, tree_gauge(conf, "192.0.2.1/32"),
           "this process's .1 is in the tree after its close");

    /* What a flush applies comes from a file others can write: owner
     * keys that are not well formed are left alone, and a close moves
     * the gauges by what the owner record really had. */
    if ((idle = fork()) < 0)
        sysbail("fork");
    if (idle == 0) {
        pause();
        _exit(0);
    }
    st = test_open(conf);
    c = test_addr("203.0.113.9");
    is_int(0, ina_session_adjust(st, &c, NULL, 1, &n),
           "a session opened by hand in 203.0.113.0/24");
    add_case("a key cut short", "203.0.113.5", 1, 1);
    add_case("no service name", "203.0.113.5", 2, 1);
    add_case("a service name too long", "203.0.113.5", 3, 1);
    add_case("family 5", "203.0.113.5", 4, 1);
    add_case("a /24, not a host", "203.0.113.5", 5, 1);
    add_case("a byte too many", "203.0.113.5", 6, 1);
    add_case("a delta of INT64_MIN", "203.0.113.5", 0, INT64_MIN);
    is_int(0, run_cases(st), "malformed owner deltas are applied");
    for (i = 0; i < (int) ncases; i++)
        is_int(0, case_rc[i], "...%s: no error", cases[i].what);
    is_int(0, tree_owned(conf, idle), "...and no owner record made");
    is_int(1, tree_gauge(conf, "203.0.113.0/24"), "...nor any gauge moved");
    ncases = 0;
    add_case("+2", "203.0.113.5", 0, 2);
    is_int(0, run_cases(st), "a process's +2 is applied");
    is_int(2, tree_owned(conf, idle), "...to its owner record");
    is_int(2, tree_gauge(conf, "203.0.113.5/32"), "...its host's gauge");
    is_int(3, tree_gauge(conf, "203.0.113.0/24"), "...and the /24's");
    ncases = 0;
    add_case("-5", "203.0.113.5", 0, -5);
    is_int(0, run_cases(st), "then a -5 (3 of them reaped or cleared)");
    is_int(0, tree_owned(conf, idle), "...the owner record is gone");
    is_int(0, tree_gauge(conf, "203.0.113.5/32"), "...the host's gauge is 0");
    is_int(1, tree_gauge(conf, "203.0.113.0/24"),
           "...and the /24 loses 2, not 5: the one by hand stays");
    ina_store_close(st);
    kill(idle, SIGKILL);
    waitpid(idle, NULL, 0);

    /* Four processes at once, with flushes every few milliseconds under
     * them: each opens 600 sessions over 30 hosts and closes 400, with a
     * record between calls; the counts are exact while they hold theirs,
     * and zero once all are closed. */
    busy = test_conf("busy", "flush_delay = 5\n"
                             "ipv4_prefixes = {16, 24, 32}\n");
    st = test_open(busy);
    if (pipe(fds) != 0 || pipe(back) != 0)
        sysbail("pipe");
    for (i = 0; i < 4; i++) {
        if ((kids[i] = fork()) < 0)
            sysbail("fork");
        if (kids[i] == 0) {
            struct ina_store *k = test_open(busy);
            char host[32];
            int j, bad = 0;

            close(fds[1]);
            close(back[0]);
            for (j = 0; j < 600 && !bad; j++) {
                snprintf(host, sizeof(host), "10.%d.%d.%d", 1 + i % 2,
                         j % 3, j % 10);
                c = test_addr(host);
                bad |= ina_session_open(k, &c, NULL) != 0;
                bad |= ina_record(k, INA_CONNECTION, &c, 1) != 0;
                if (j % 3 != 2)
                    continue;
                /* Close the two opened just before (same hosts as two
                 * of the last three). */
                snprintf(host, sizeof(host), "10.%d.%d.%d", 1 + i % 2,
                         (j - 1) % 3, (j - 1) % 10);
                c = test_addr(host);
                bad |= ina_session_close(k, &c, NULL) != 0;
                snprintf(host, sizeof(host), "10.%d.%d.%d", 1 + i % 2,
                         (j - 2) % 3, (j - 2) % 10);
                c = test_addr(host);
                bad |= ina_session_close(k, &c, NULL) != 0;
            }
            if (write(back[1], bad ? "b" : "x", 1) != 1
                || read(fds[0], &ch, 1) != 1)
                _exit(1);
            for (j = 2; j < 600 && !bad; j += 3) {
                snprintf(host, sizeof(host), "10.%d.%d.%d", 1 + i % 2,
                         j % 3, j % 10);
                c = test_addr(host);
                bad |= ina_session_close(k, &c, NULL) != 0;
            }
            ina_store_close(k);
            _exit(bad);
        }
    }
    close(back[1]);
    for (i = 0, all = 1; i < 4; i++)
        all &= read(back[0], &ch, 1) == 1 && ch == 'x';
    ok(all, "four processes hold 200 sessions each");
    is_uint(400, test_sessions(st, "10.1.0.0/16"), "10.1/16 counts 400");
    is_uint(400, test_sessions(st, "10.2.0.0/16"), "10.2/16 counts 400");
    is_uint(800, test_sessions(st, "10.0.0.0/8"), "10/8 (a range) 800");
    is_uint(40, test_sessions(st, "10.1.2.9"), "10.1.2.9: 20 of each of two");
    if (write(fds[1], "xxxx", 4) != 4)
        sysbail("write");
    for (i = 0, all = 1; i < 4; i++)
        all &= child_status(kids[i]) == 0;
    ok(all, "they close them all and exit");
    is_uint(0, test_sessions(st, "10.1.0.0/16"), "10.1/16 counts none");
    is_uint(0, test_sessions(st, "10.0.0.0/8"), "nor does 10/8");
    is_int(0, ina_reap(st, &reaped), "reap");
    is_uint(0, reaped, "nothing was left to reap");
    close(fds[0]);
    close(fds[1]);
    close(back[0]);
    ina_store_close(st);
    ina_conf_free(busy);

    /* A pending file of the version before (the store's processes all
     * stopped) is made again at the next record. */
    old = test_conf("old", "flush_delay = 1000\n"
                           "monitors = {\"60,10\"}\n"
                           "ipv4_prefixes = {32, 24}\n");
    o = test_open(old);
    ina_store_close(o);
    snprintf(path, sizeof(path), "%s/pending", old->store);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0660)) < 0
        || ftruncate(fd, 4096 + 4096 * 136) != 0
        || pwrite(fd, (const uint32_t[]){ 0x494e4150, 1 }, 8, 0) != 8)
        sysbail("%s", path);
    close(fd);
    is_int(1, pending_version(old->store), "a version 1 pending file");
    o = test_open(old);
    c = test_addr("198.51.100.1");
    is_int(0, ina_record(o, INA_CONNECTION, &c, 1), "a record");
    is_int(0, ina_session_open(o, &c, NULL), "a session");
    is_int(3, pending_version(old->store), "made again as version 3");
    if (ina_query(o, INA_CONNECTION, "60,10", &c, 0, 0, 0, &n, NULL, 0) != 0)
        n = UINT64_MAX;
    is_uint(1, n, "the record counts");
    is_uint(1, test_sessions(o, "198.51.100.1"), "so does the session");
    ina_store_close(o);
    ina_conf_free(old);
    ina_conf_free(conf);
    return 0;
}
