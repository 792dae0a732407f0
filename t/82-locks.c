/* 82-locks.c - LMDB's locks and reader slots after processes die
 *
 * Three ways a dying process can hurt the others, each produced for real
 * with LMDB calls in a child that is then SIGKILLed:
 *  - a writer killed while it holds the write lock: the next writer must
 *    get the lock (robust mutex recovery), not hang;
 *  - readers killed inside read transactions: their slots pin old pages
 *    until cleared; the store clears them (at open and in stat) and says
 *    how many;
 *  - a reader table filled with dead readers: MDB_READERS_FULL must not
 *    reach the caller.  The lock file is made with 4 slots by a child
 *    that keeps the environment open, so the library adopts that size.
 * alarm() turns a hang into a failure.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "tap/basic.h"
#include "tap/inatest.h"

/* raw_env - open the store's environment with LMDB directly (children) */

static MDB_env *
raw_env(const char *dir, unsigned maxreaders)
{
    MDB_env *env;

    if (mdb_env_create(&env) != 0)
        _exit(90);
    if (maxreaders > 0)
        mdb_env_set_maxreaders(env, maxreaders);
    mdb_env_set_maxdbs(env, 16);
    mdb_env_set_mapsize(env, 64u << 20);
    if (mdb_env_open(env, dir, MDB_NOTLS | MDB_NOSYNC, 0660) != 0)
        _exit(91);
    return env;
}

/* child_then_kill - run fn in a child, wait for its signal, SIGKILL it */

static void
child_then_kill(void (*fn)(const char *, int), const char *dir)
{
    int fds[2], status;
    pid_t pid;
    char c;

    if (pipe(fds) != 0)
        sysbail("pipe");
    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        close(fds[0]);
        fn(dir, fds[1]);
        _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], &c, 1) != 1)
        diag("child said nothing");
    close(fds[0]);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

/* hold_write - take the write lock, say so, wait to be killed */

static void
hold_write(const char *dir, int fd)
{
    MDB_env *env = raw_env(dir, 0);
    MDB_txn *txn;

    if (mdb_txn_begin(env, NULL, 0, &txn) != 0)
        _exit(92);
    if (write(fd, "w", 1) != 1)
        _exit(93);
    pause();
}

/* hold_read - open a read transaction, say so, wait to be killed */

static void
hold_read(const char *dir, int fd)
{
    MDB_env *env = raw_env(dir, 0);
    MDB_txn *txn;

    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        _exit(94);
    if (write(fd, "r", 1) != 1)
        _exit(95);
    pause();
}

/* q - connections of a block, window 0 */

static uint64_t
q(struct ina_store *st, const char *cidr)
{
    struct ina_cidr c = test_addr(cidr);
    uint64_t n;
    char err[256];

    if (ina_query(st, INA_CONNECTION, "60,10", &c, 0, 0, 0, &n, err,
                  sizeof(err)) != 0) {
        diag("%s", err);
        return UINT64_MAX;
    }
    return n;
}

static int64_t now;

int
main(void)
{
    struct ina_conf *conf, *small;
    struct ina_store *st;
    struct ina_stat s;
    struct ina_cidr c;
    char err[256];
    int i, status, fds[2];
    pid_t keeper;

    plan_lazy();
    alarm(120);
    conf = test_conf("store", "flush_delay = 0\n");
    st = test_open(conf);
    c = test_addr("192.0.2.1");
    is_int(0, ina_record(st, INA_CONNECTION, &c, 1), "a first record");

    /* A writer killed holding the write lock. */
    child_then_kill(hold_write, conf->store);
    is_int(0, ina_record(st, INA_CONNECTION, &c, 1),
           "a record after a writer died holding the write lock");
    is_uint(2, q(st, "192.0.2.1"), "and both records counted");

    /* Readers killed inside read transactions. */
    for (i = 0; i < 3; i++)
        child_then_kill(hold_read, conf->store);
    is_int(0, ina_store_stat(st, &s), "stat after 3 readers died");
    is_int(3, (int) s.readers_stale, "stat cleared 3 stale reader slots");
    is_int(0, ina_store_stat(st, &s), "stat again");
    is_int(0, (int) s.readers_stale, "nothing stale is left");

    /* The write path clears them too, every few seconds, with no stat
     * and no open: kill 2 more, let 10 s pass, record. */
    for (i = 0; i < 2; i++)
        child_then_kill(hold_read, conf->store);
    now = ina_store_now(st) + 10;
    ina_store_set_clock(st, test_clock, &now);
    is_int(0, ina_record(st, INA_CONNECTION, &c, 1),
           "a record 10 s later");
    is_int(0, ina_store_stat(st, &s), "stat");
    is_int(0, (int) s.readers_stale,
           "the record's maintenance had cleared the 2 dead readers");
    ina_store_close(st);

    /* A reader table of 4 slots, every one left by a dead reader. */
    small = test_conf("small", "flush_delay = 0\n");
    if (pipe(fds) != 0)
        sysbail("pipe");
    if ((keeper = fork()) == 0) {
        MDB_env *env;

        /* Make the environment with 4 reader slots before anyone else
         * opens it, and keep it open, so every later opener adopts the
         * 4-slot table. */
        if (mkdir(small->store, 0750) != 0)
            _exit(97);
        env = raw_env(small->store, 4);
        (void) env;
        close(fds[0]);
        if (write(fds[1], "k", 1) != 1)
            _exit(96);
        pause();
        _exit(0);
    }
    close(fds[1]);
    {
        char ch;

        ok(read(fds[0], &ch, 1) == 1, "a keeper holds a 4-slot reader table");
    }
    for (i = 0; i < 4; i++)
        child_then_kill(hold_read, small->store);
    /* The library's open clears stale slots itself, so fill the table
     * again after opening. */
    st = test_open(small);
    for (i = 0; i < 4; i++)
        child_then_kill(hold_read, small->store);
    c = test_addr("198.51.100.1");
    is_int(0, ina_record(st, INA_CONNECTION, &c, 5),
           "a record with every reader slot held by the dead");
    is_uint(5, q(st, "198.51.100.1"),
            "a query too: READERS_FULL never reaches the caller");
    is_int(0, ina_store_stat(st, &s), "stat");
    ok(s.readers_max <= 5, "the table really has %u slots",
       (unsigned) s.readers_max);
    ina_store_close(st);
    kill(keeper, SIGKILL);
    waitpid(keeper, &status, 0);
    close(fds[0]);
    (void) err;
    ina_conf_free(small);
    ina_conf_free(conf);
    return 0;
}
