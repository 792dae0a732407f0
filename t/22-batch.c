/* 22-batch.c - buffered recording: visibility, flushes, journal replay
 *
 * With a flush delay long enough that no flush happens by time during
 * the test, every flush here is one the test causes: a query that needs
 * the store, ina_flush(), a window boundary, close, exit().  What other
 * processes see is read by a forked child (a child drops its parent's
 * pending events at fork, so it sees only the store); a second handle in
 * the same process shares the process's pending events.  A flush by any
 * process applies every process's journal (combined flushes), and the
 * owner of a journal someone else applied counts each event once.  Then
 * the journal's promise is checked: a writer SIGKILLed with events pending
 * loses none of them, and nothing is ever applied twice.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "tap/basic.h"
#include "tap/inatest.h"

#define T0 1700002800

static int64_t now = T0;

/* q - connections of a block in window range a..b, through handle st */

static uint64_t
q(struct ina_store *st, const char *cidr, uint32_t a, uint32_t b)
{
    struct ina_cidr c = test_addr(cidr);
    uint64_t n;
    char err[256];

    if (ina_query(st, INA_CONNECTION, "60,10", &c, a, b, 0, &n, err,
                  sizeof(err)) != 0) {
        diag("%s", err);
        return UINT64_MAX;
    }
    return n;
}

/* other - the same query as another process sees it: from a child */

static uint64_t
other(struct ina_store *st, const char *cidr, uint32_t a, uint32_t b)
{
    uint64_t n = UINT64_MAX;
    int fds[2], status;
    pid_t pid;

    if (pipe(fds) != 0)
        sysbail("pipe");
    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        n = q(st, cidr, a, b);
        _exit(write(fds[1], &n, sizeof(n)) == sizeof(n) ? 0 : 1);
    }
    close(fds[1]);
    if (read(fds[0], &n, sizeof(n)) != sizeof(n))
        n = UINT64_MAX;
    close(fds[0]);
    waitpid(pid, &status, 0);
    return n;
}

/* lose_hint - zero the applied-tail hint of the journals in dir
 *
 * The hint is the 8 bytes at offset 40 of a journal's header (magic,
 * version, pid, seq, start, capacity, tail, applied; lib/batch.c).
 * Returns the journals changed. */

static int
lose_hint(const char *dir)
{
    char path[1024];
    struct dirent *de;
    uint64_t zero = 0;
    DIR *d = opendir(dir);
    int n = 0, fd;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "journal.", 8) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if ((fd = open(path, O_RDWR)) < 0)
            continue;
        if (pwrite(fd, &zero, sizeof(zero), 40) == sizeof(zero))
            n++;
        close(fd);
    }
    closedir(d);
    return n;
}

/* meta_tails - journal tails stored in the store's meta database, or -1
 *
 * Read by a forked child with an LMDB environment of its own (the
 * library closes the inherited one in a child): a tail's key is 'j' and
 * 16 bytes.  The count comes back as the child's exit status. */

static int
meta_tails(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_dbi dbi;
    MDB_val k, v;
    int n = 0, rc, status;
    pid_t pid;

    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0
            || mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0) != 0
            || mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0
            || mdb_dbi_open(txn, "meta", 0, &dbi) != 0
            || mdb_cursor_open(txn, dbi, &c) != 0)
            _exit(255);
        k.mv_data = (void *) "j";
        k.mv_size = 1;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0
             && ((const char *) k.mv_data)[0] == 'j';
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
            n += k.mv_size == 17;
        mdb_cursor_close(c);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        _exit(n < 255 ? n : 254);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)
        || WEXITSTATUS(status) == 255)
        return -1;
    return WEXITSTATUS(status);
}

/* rec - record n single connections from addr */

static int
rec(struct ina_store *st, const char *addr, int n)
{
    struct ina_cidr c = test_addr(addr);
    int i;

    for (i = 0; i < n; i++)
        if (ina_record(st, INA_CONNECTION, &c, 1) != 0)
            return -1;
    return 0;
}

int
main(void)
{
    struct ina_conf *conf;
    struct ina_store *a, *b;
    int status, fds[2];
    uint64_t reaped;
    pid_t pid;
    char c;

    plan_lazy();
    conf = test_conf("store", "flush_delay = 1000\n"
                              "monitors = {\"60,10\"}\n"
                              "ipv4_prefixes = {32, 24}\n"
                              "ipv6_prefixes = {128}\n");
    a = test_open(conf);
    b = test_open(conf);
    ina_store_set_clock(a, test_clock, &now);
    ina_store_set_clock(b, test_clock, &now);

    /* Read-your-writes, and buffering seen from another handle. */
    ok(rec(a, "192.0.2.1", 5) == 0, "record 5 on handle A");
    is_uint(5, q(a, "192.0.2.1", 0, 0), "A sees its 5 at once");
    is_uint(5, q(a, "192.0.2.0/24", 0, 0), "A sees them in its /24 too");
    is_int(1, test_journals(conf->store), "A has a journal file");
    is_uint(5, q(b, "192.0.2.1", 0, 0),
            "handle B of the same process shares the pending 5");
    is_uint(0, other(b, "192.0.2.0/24", 0, 0),
            "another process does not see them yet: they are buffered");
    is_uint(5, q(a, "192.0.2.0/25", 0, 0),
            "a range query on A (a /25 over /32s) sees the 5");
    is_uint(5, other(b, "192.0.2.0/24", 0, 0),
            "...because it applied them: another process sees 5");
    ok(rec(a, "192.0.2.1", 3) == 0, "record 3 more on A");
    is_uint(5, other(b, "192.0.2.1", 0, 0),
            "another process still sees 5");
    is_int(0, ina_flush(a), "ina_flush(A)");
    is_uint(8, other(b, "192.0.2.1", 0, 0),
            "another process sees 8 after the flush");
    is_uint(8, q(a, "192.0.2.1", 0, 0), "and A is not counting twice");

    /* A window boundary flushes the closed window. */
    ok(rec(a, "192.0.2.2", 4) == 0, "record 4 from .2");
    now = T0 + 60;
    ok(rec(a, "192.0.2.3", 1) == 0, "record 1 from .3 a window later");
    is_uint(4, other(b, "192.0.2.2", 1, 1),
            "another process sees the closed window's 4 in window 1");
    is_uint(0, other(b, "192.0.2.3", 0, 0),
            "but not yet the new window's event");
    is_uint(1, q(a, "192.0.2.3", 0, 0), "which A sees");

    /* Close applies and removes the journal. */
    ina_store_close(a);
    is_uint(1, other(b, "192.0.2.3", 0, 0),
            "closing A applied the pending event");
    is_int(1, test_journals(conf->store), "the journal stays while B is open");
    ina_store_close(b);
    is_int(0, test_journals(conf->store),
           "closing the last handle removed the journal");
    b = test_open(conf);
    ina_store_set_clock(b, test_clock, &now);

    /* SIGKILL with events pending: the journal brings them in. */
    if (pipe(fds) != 0)
        sysbail("pipe");
    if ((pid = fork()) == 0) {
        struct ina_store *k = test_open(conf);

        ina_store_set_clock(k, test_clock, &now);
        if (rec(k, "198.51.100.9", 100) != 0)
            _exit(1);
        /* Every call returned: tell the parent, then wait to be
         * killed with all 100 pending. */
        if (write(fds[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(fds[1]);
    ok(read(fds[0], &c, 1) == 1, "the child recorded 100, all pending");
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
       "the child was SIGKILLed");
    close(fds[0]);
    is_uint(0, q(b, "198.51.100.9", 0, 0),
            "its events are not in the store yet");
    is_int(1, test_journals(conf->store), "its journal is left behind");
    is_int(0, ina_reap(b, &reaped), "another process writes (reaps)");
    is_uint(100, q(b, "198.51.100.9", 0, 0),
            "all 100 are applied from the dead child's journal");
    is_int(0, test_journals(conf->store), "and the journal is gone");
    is_int(0, ina_reap(b, &reaped), "reap again");
    is_uint(100, q(b, "198.51.100.9", 0, 0), "still 100: never twice");

    /* exit() applies pending events. */
    if ((pid = fork()) == 0) {
        struct ina_store *k = test_open(conf);

        ina_store_set_clock(k, test_clock, &now);
        exit(rec(k, "198.51.100.10", 50) == 0 ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "a child recorded 50 and called exit() without closing");
    is_uint(50, q(b, "198.51.100.10", 0, 0),
            "the exit flush applied all 50");
    is_int(0, test_journals(conf->store), "and left no journal");

    /* A handle with pending events inherited across fork: the child's
     * copy of the parent's pending events is not applied twice. */
    a = test_open(conf);
    ina_store_set_clock(a, test_clock, &now);
    ok(rec(a, "203.0.113.5", 7) == 0, "parent records 7 on A, pending");
    if ((pid = fork()) == 0) {
        int rc = rec(a, "203.0.113.5", 3);

        _exit(rc == 0 && ina_flush(a) == 0 ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "the child recorded 3 on the inherited A and flushed");
    /* A flush applies every process's journal (combined flushes): the
     * child's applied the parent's pending 7 with its own 3. */
    is_uint(10, other(b, "203.0.113.5", 0, 0),
            "another process sees the child's 3 and the parent's 7");
    is_uint(10, q(a, "203.0.113.5", 0, 0),
            "the parent sees 10, not its 7 twice");
    is_int(0, ina_flush(a), "the parent flushes");
    is_uint(10, other(b, "203.0.113.5", 0, 0),
            "another process still sees 7 + 3 = 10");

    /* The applier publishes the tail it stored in the journal's header
     * only after its commit, and may die in between.  The owner must
     * then go by the tail in its snapshot: lose the hint on purpose. */
    ok(rec(a, "203.0.113.6", 4) == 0, "parent records 4 more, pending");
    if ((pid = fork()) == 0) {
        struct ina_store *k = test_open(conf);

        ina_store_set_clock(k, test_clock, &now);
        _exit(rec(k, "203.0.113.9", 1) == 0 && ina_flush(k) == 0 ? 0 : 1);
    }
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "another process records 1 and flushes (combined)");
    ok(lose_hint(conf->store) >= 1, "the parent's journal hint is lost");
    is_uint(4, q(a, "203.0.113.6", 0, 0),
            "the parent counts its 4 once, from its snapshot's tail");
    is_uint(4, other(b, "203.0.113.6", 0, 0), "as others do");
    is_int(0, ina_flush(a), "the parent flushes");
    is_uint(4, q(a, "203.0.113.6", 0, 0), "still 4");
    is_uint(4, other(b, "203.0.113.6", 0, 0), "still 4 for others");
    ina_store_close(a);
    ina_store_close(b);

    /* The stored tails of journals that are gone are not kept forever:
     * one per journal ever made would fill the map of an MTA that
     * recycles its workers.  A sweep (at open, here) deletes them. */
    ok(meta_tails(conf->store) > 0,
       "the tails of this test's removed journals are still stored");
    b = test_open(conf);
    ina_store_set_clock(b, test_clock, &now);
    /* The open sweeps (and removes the dead child's journal), and so
     * does the reap: setting the clock makes a sweep due. */
    is_int(0, ina_reap(b, &reaped), "a writer opens and sweeps twice");
    is_int(0, test_journals(conf->store), "no journal file is left");
    is_int(0, meta_tails(conf->store),
           "and the tails of removed journals are gone");
    is_uint(4, q(b, "203.0.113.6", 0, 0), "and the counts are all there");
    ok(rec(b, "203.0.113.6", 1) == 0 && ina_flush(b) == 0,
       "a live journal flushes");
    is_int(1, meta_tails(conf->store), "its tail is stored");
    is_int(0, ina_reap(b, &reaped), "another write transaction");
    is_int(1, meta_tails(conf->store), "and a live journal keeps its tail");
    ina_store_close(b);
    ina_conf_free(conf);
    return 0;
}
