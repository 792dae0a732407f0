/* 80-multiproc.c - many processes recording and querying one store
 *
 * Eight writers record 20,000 events each while a ninth process queries
 * the totals as they grow.  Half the writers use the handle the parent
 * opened before fork() (the child reopens the environment by itself), the
 * other half open their own.  At the end every total must be exact: no
 * increment lost, none counted twice.  A child's result is its exit
 * status; children never print TAP.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap/basic.h"
#include "tap/inatest.h"

#define WRITERS 8
#define EVENTS 20000
#define HOSTS 100

/* test_log_stderr - the store's log as diagnostics */

static void
test_log_stderr(void *arg, int prio, const char *msg)
{
    (void) arg;
    fprintf(stderr, "# log %d: %s\n", prio, msg);
}

/* writer - record EVENTS connections (and every 4th a reception) */

static int
writer(struct ina_store *st, int id)
{
    struct ina_cidr c;
    char addr[32];
    int j, rc;

    for (j = 0; j < EVENTS; j++) {
        snprintf(addr, sizeof(addr), "10.0.%d.%d", id, j % HOSTS);
        c = test_addr(addr);
        if ((rc = ina_record(st, INA_CONNECTION, &c, 1)) != 0)
            return 10;
        if (j % 4 == 0 && (rc = ina_record(st, INA_RECEPTION, &c, 1)) != 0)
            return 11;
    }
    /* The children leave with _exit(), which skips the exit flush: a
     * host that ends a worker that way flushes first. */
    return ina_flush(st) == 0 ? 0 : 12;
}

/* Big counts: every writer records BIG at once, BIGS times, to one
 * host, so that the processes' adds cross a pending slot's 2^32 - 1
 * together and move on to further slots of the prefix. */
#define BIG 1500000000ull
#define BIGS 8
#define BIG_HOST "10.9.9.9"

/* big_writer - record BIG rejections BIGS times, and leave them pending
 * (_exit() skips the exit flush) */

static int
big_writer(const struct ina_conf *conf)
{
    struct ina_store *st;
    struct ina_cidr c = test_addr(BIG_HOST);
    char err[256];
    int j, rc = 0;

    if (ina_store_open(conf, 0, &st, err, sizeof(err)) != 0)
        return 40;
    for (j = 0; j < BIGS && rc == 0; j++)
        if (ina_record(st, INA_REJECTION, &c, BIG) != 0)
            rc = 41;
    return rc;
}

/* watch - query a block's total of an event until it reaches all
 *
 * The total must never go down, never exceed all, and always be a whole
 * number of records of unit each (every record's add is one atomic add
 * to one slot).  Gives up after 240 s, and is killed if a call hangs. */

static int
watch(const struct ina_conf *conf, enum ina_event ev, const char *block,
      uint64_t all, uint64_t unit)
{
    struct ina_store *st;
    struct ina_cidr c = test_addr(block);
    uint64_t n, last = 0;
    time_t t0 = time(NULL);
    char err[256];

    alarm(250);
    if (ina_store_open(conf, INA_STORE_RDONLY, &st, err, sizeof(err)) != 0)
        return 20;
    for (;;) {
        if (ina_query(st, ev, "3600,24", &c, 0, 1, 0, &n, err,
                      sizeof(err)) != 0)
            return 21;
        if (n < last || n > all || n % unit != 0)
            return 22;
        last = n;
        if (n == all)
            break;
        if (time(NULL) - t0 > 240)
            return 23;
    }
    ina_store_close(st);
    return 0;
}

int
main(void)
{
    struct ina_conf *conf;
    struct ina_store *st, *own;
    struct ina_cidr c;
    pid_t pids[WRITERS + 1];
    uint64_t n;
    char err[256], addr[32];
    int i, status, rc, bad;

    plan_lazy();
    conf = test_conf("store", NULL);
    st = test_open(conf);
    alarm(300);

    /* Use the handle once before fork, so the children inherit a live
     * environment and a cached read transaction. */
    c = test_addr("10.0.0.0/16");
    if (ina_query(st, INA_CONNECTION, "60,10", &c, 0, 0, 0, &n, err,
                  sizeof(err)) != 0)
        bail("%s", err);

    if ((pids[WRITERS] = fork()) == 0)
        _exit(watch(conf, INA_CONNECTION, "10.0.0.0/16",
                    (uint64_t) WRITERS * EVENTS, 1));
    for (i = 0; i < WRITERS; i++) {
        if ((pids[i] = fork()) < 0)
            sysbail("fork");
        if (pids[i] == 0) {
            if (i % 2 == 0)
                _exit(writer(st, i));
            if (ina_store_open(conf, 0, &own, err, sizeof(err)) != 0)
                _exit(30);
            ina_store_set_log(own, getenv("INA_TEST_LOG") ? test_log_stderr : NULL, NULL);
            rc = writer(own, i);
            ina_store_close(own);
            _exit(rc);
        }
    }
    bad = 0;
    for (i = 0; i < WRITERS; i++) {
        if (waitpid(pids[i], &status, 0) != pids[i])
            sysbail("waitpid");
        if (!is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : 100 +
                    WTERMSIG(status), "writer %d (%s handle) exits 0", i,
                    i % 2 == 0 ? "inherited" : "own"))
            bad++;
    }
    if (waitpid(pids[WRITERS], &status, 0) != pids[WRITERS])
        sysbail("waitpid");
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : 100,
           "the reader saw totals only grow, up to the exact end");

    /* Exact totals, read by the parent's pre-fork handle. */
    c = test_addr("10.0.0.0/16");
    rc = ina_query(st, INA_CONNECTION, "3600,24", &c, 0, 1, 0, &n, err,
                   sizeof(err));
    is_uint((uint64_t) WRITERS * EVENTS, n,
            "%d connections in total", WRITERS * EVENTS);
    rc = ina_query(st, INA_RECEPTION, "3600,24", &c, 0, 1, 0, &n, err,
                   sizeof(err));
    is_uint((uint64_t) WRITERS * EVENTS / 4, n, "%d receptions in total",
            WRITERS * EVENTS / 4);
    for (i = 0; i < WRITERS; i++) {
        snprintf(addr, sizeof(addr), "10.0.%d.0/24", i);
        c = test_addr(addr);
        rc = ina_query(st, INA_CONNECTION, "3600,24", &c, 0, 1, 0, &n, err,
                       sizeof(err));
        is_uint(EVENTS, n, "writer %d's /24 has exactly %d", i, EVENTS);
        snprintf(addr, sizeof(addr), "10.0.%d.%d", i, i * 7 % HOSTS);
        c = test_addr(addr);
        rc = ina_query(st, INA_CONNECTION, "3600,24", &c, 0, 1, 0, &n, err,
                       sizeof(err));
        is_uint(EVENTS / HOSTS, n, "and host %s exactly %d", addr,
                EVENTS / HOSTS);
    }

    /* Counts past a pending slot's 32 bits, from every writer at once. */
    if ((pids[WRITERS] = fork()) == 0)
        _exit(watch(conf, INA_REJECTION, BIG_HOST,
                    (uint64_t) WRITERS * BIGS * BIG, BIG));
    for (i = 0; i < WRITERS; i++) {
        if ((pids[i] = fork()) < 0)
            sysbail("fork");
        if (pids[i] == 0)
            _exit(big_writer(conf));
    }
    for (i = 0, bad = 0; i < WRITERS; i++) {
        if (waitpid(pids[i], &status, 0) != pids[i])
            sysbail("waitpid");
        bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    is_int(0, bad, "%d writers record %d x 1,500,000,000 each to one host",
           WRITERS, BIGS);
    if (waitpid(pids[WRITERS], &status, 0) != pids[WRITERS])
        sysbail("waitpid");
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : 100,
           "a reader saw only whole records, growing to the end");
    c = test_addr(BIG_HOST);
    rc = ina_query(st, INA_REJECTION, "3600,24", &c, 0, 1, 0, &n, err,
                   sizeof(err));
    is_uint((uint64_t) WRITERS * BIGS * BIG, n,
            "the host has 96,000,000,000, exact, the last epoch's from "
            "the pending slots");
    is_int(0, ina_flush(st), "a flush");
    rc = ina_query(st, INA_REJECTION, "3600,24", &c, 0, 1, 0, &n, err,
                   sizeof(err));
    is_uint((uint64_t) WRITERS * BIGS * BIG, n,
            "and 96,000,000,000 from the tree");
    c = test_addr("10.9.9.0/24");
    rc = ina_query(st, INA_REJECTION, "3600,24", &c, 0, 1, 0, &n, err,
                   sizeof(err));
    is_uint((uint64_t) WRITERS * BIGS * BIG, n, "and so has its /24");
    (void) rc;
    ina_store_close(st);
    ina_conf_free(conf);
    return 0;
}
