/* 23-session.c - reaping the sessions of dead processes, pids recycled
 *
 * Owner records are planted with LMDB directly, as processes that are
 * gone would have left them: one whose pid now belongs to a live process
 * started at another time (a recycled pid), one whose pid is free, and
 * one of a live process that really holds sessions (pid 1, with its true
 * start time).  Opening the store must reap exactly the first two and
 * keep the live ones, count what it reaped, and a real child that dies
 * holding sessions must be reaped too.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "tap/basic.h"
#include "tap/inatest.h"
#include "internal.h"

/* plant - an owner record and its gauges, as a process would leave them */

static void
plant(MDB_txn *txn, MDB_dbi owners, MDB_dbi gauges, uint32_t pid,
      uint64_t start, const char *host, uint64_t count)
{
    struct ina_cidr c = test_addr(host);
    static const uint8_t plens[] = {16, 24, 32};
    uint8_t key[OKEY_MAX], addr[16];
    MDB_val k, v;
    uint64_t n;
    size_t i;
    int b;

    for (b = 0; b < 4; b++)
        key[b] = (uint8_t) (pid >> (24 - 8 * b));
    for (b = 0; b < 8; b++)
        key[4 + b] = (uint8_t) (start >> (56 - 8 * b));
    k.mv_size = OKEY_HDR + store_skey(key + OKEY_HDR, "SMTP", 4, 4, 32,
                                      c.addr);
    k.mv_data = key;
    v.mv_data = &count;
    v.mv_size = sizeof(count);
    if (mdb_put(txn, owners, &k, &v, 0) != 0)
        _exit(80);
    for (i = 0; i < sizeof(plens); i++) {
        memcpy(addr, c.addr, 4);
        cidr_mask(addr, 4, plens[i]);
        k.mv_size = store_skey(key, "SMTP", 4, 4, plens[i], addr);
        k.mv_data = key;
        n = count;
        if (mdb_get(txn, gauges, &k, &v) == 0 && v.mv_size == sizeof(n)) {
            memcpy(&n, v.mv_data, sizeof(n));
            n += count;
        }
        v.mv_data = &n;
        v.mv_size = sizeof(n);
        if (mdb_put(txn, gauges, &k, &v, 0) != 0)
            _exit(81);
    }
}

/* free_pid - a pid no process has now */

static pid_t
free_pid(void)
{
    pid_t p;

    for (p = 4000000; p > 1000; p -= 7919)
        if (kill(p, 0) != 0 && errno == ESRCH)
            return p;
    return 0;
}

int
main(void)
{
    struct ina_conf *conf;
    struct ina_store *st;
    struct ina_stat s;
    struct ina_cidr c;
    uint64_t reaped, me_start, init_start;
    pid_t pid, dead = free_pid();
    int status, i;

    plan_lazy();
    conf = test_conf("store", "ipv4_prefixes = {16, 24, 32}\n");
    me_start = session_proc_start(getpid());
    init_start = session_proc_start(1);
    ok(me_start != 0 && init_start != 0 && dead != 0,
       "start times of this process and of pid 1, and a free pid %ld",
       (long) dead);

    st = test_open(conf);
    c = test_addr("192.0.2.1");
    is_int(0, ina_session_open(st, &c, NULL), "this process opens a session");
    is_int(0, ina_session_open(st, &c, NULL), "and another");
    ina_store_close(st);

    if ((pid = fork()) == 0) {
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi owners, gauges;

        if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 16) != 0
            || mdb_env_set_mapsize(env, 64u << 20) != 0
            || mdb_env_open(env, conf->store, MDB_NOTLS, 0660) != 0
            || mdb_txn_begin(env, NULL, 0, &txn) != 0
            || mdb_dbi_open(txn, "owners", 0, &owners) != 0
            || mdb_dbi_open(txn, "sessions", 0, &gauges) != 0)
            _exit(82);
        /* This process's pid, started at another time: recycled. */
        plant(txn, owners, gauges, (uint32_t) getppid(), me_start + 1,
              "192.0.2.2", 3);
        /* A pid nobody has. */
        plant(txn, owners, gauges, (uint32_t) dead, 12345, "192.0.2.3", 4);
        /* pid 1, truly: alive, its sessions stay. */
        plant(txn, owners, gauges, 1, init_start, "192.0.2.4", 5);
        _exit(mdb_txn_commit(txn) == 0 ? 0 : 83);
    }
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "owner records planted");

    st = test_open(conf);
    is_uint(2, test_sessions(st, "192.0.2.1"),
            "the live opener's 2 sessions are kept");
    is_uint(0, test_sessions(st, "192.0.2.2"),
            "a recycled pid (same number, other start) is reaped");
    is_uint(0, test_sessions(st, "192.0.2.3"), "a free pid's 4 are reaped");
    is_uint(5, test_sessions(st, "192.0.2.4"),
            "a live other process's 5 are kept");
    is_uint(7, test_sessions(st, "192.0.2.0/24"), "the /24 gauge is 2 + 5");
    is_uint(7, test_sessions(st, "192.0.0.0/16"), "and the /16 too");
    is_int(0, ina_store_stat(st, &s), "stat");
    is_uint(7, s.reaped, "stat counts 7 reaped sessions");

    /* A real child that dies holding sessions. */
    if ((pid = fork()) == 0) {
        struct ina_store *k = test_open(conf);
        struct ina_cidr h = test_addr("198.51.100.7");

        for (i = 0; i < 6; i++)
            if (ina_session_open(k, &h, NULL) != 0)
                _exit(1);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    is_uint(6, test_sessions(st, "198.51.100.7"),
            "a child left 6 sessions open and exited");
    is_int(0, ina_reap(st, &reaped), "reap");
    is_uint(6, reaped, "6 reaped");
    is_uint(0, test_sessions(st, "198.51.100.0/24"), "its gauge is 0");
    is_int(0, ina_reap(st, &reaped), "reap again");
    is_uint(0, reaped, "nothing more to reap");
    is_uint(2, test_sessions(st, "192.0.2.1"), "ours are still there");
    c = test_addr("192.0.2.1");
    is_int(0, ina_session_close(st, &c, NULL), "close ours");
    is_int(0, ina_session_close(st, &c, NULL), "both");
    is_uint(5, test_sessions(st, "192.0.2.0/24"),
            "the /24 holds pid 1's 5 only");
    ina_store_close(st);
    ina_conf_free(conf);
    return 0;
}
