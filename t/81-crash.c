/* 81-crash.c - writers SIGKILLed at random moments
 *
 * Writers record events and hold sessions open; the parent kills them
 * with SIGKILL at random moments, round after round.  After each round a
 * fresh handle must open the store, every total must equal the events
 * whose record call returned plus at most the one call in flight in each
 * killed writer, and the sessions of the dead writers must be reaped.
 * A writer killed while it holds LMDB's write lock must not hang the
 * next round (robust mutexes); alarm() turns a hang into a failure.
 *
 * Each writer counts the calls that returned in a shared page, after the
 * call returns, so "returned" is exactly what the parent reads.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap/basic.h"
#include "tap/inatest.h"

#define WRITERS 6
#define ROUNDS 8
#define SESSIONS 3

/* Shared with the writers: calls that returned, sessions opened. */
struct shared {
    volatile uint64_t done[WRITERS];
    volatile int opened[WRITERS];
};

/* writer - open sessions, then record until killed */

static void
writer(const struct ina_conf *conf, struct shared *sh, int id)
{
    struct ina_store *st;
    struct ina_cidr c, s;
    char addr[32], err[256];
    int j;

    if (ina_store_open(conf, 0, &st, err, sizeof(err)) != 0)
        _exit(30);
    ina_store_set_log(st, NULL, NULL);
    snprintf(addr, sizeof(addr), "10.9.%d.1", id);
    s = test_addr(addr);
    for (j = 0; j < SESSIONS; j++) {
        if (ina_session_open(st, &s, NULL) != 0)
            _exit(31);
        sh->opened[id]++;
    }
    for (j = 0;; j++) {
        snprintf(addr, sizeof(addr), "10.8.%d.%d", id, j % 250);
        c = test_addr(addr);
        if (ina_record(st, INA_CONNECTION, &c, 1) != 0)
            _exit(32);
        sh->done[id]++;
    }
}

int
main(void)
{
    struct ina_conf *conf;
    struct ina_store *st, *live;
    struct shared *sh;
    struct ina_cidr c;
    pid_t pids[WRITERS];
    uint64_t n, done, seen_sessions;
    char err[256];
    int i, r, status, killed = 0, exact_rounds = 0;

    plan_lazy();
    conf = test_conf("store", NULL);
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        sysbail("mmap");
    memset((void *) sh, 0, sizeof(*sh));
    srand((unsigned) time(NULL) ^ (unsigned) getpid());
    alarm(600);

    /* The parent holds two sessions all along: reaping must never take
     * a live process's sessions. */
    live = test_open(conf);
    c = test_addr("10.7.0.1");
    if (ina_session_open(live, &c, NULL) != 0
        || ina_session_open(live, &c, NULL) != 0)
        bail("cannot open the parent's sessions");

    for (r = 0; r < ROUNDS; r++) {
        for (i = 0; i < WRITERS; i++) {
            if ((pids[i] = fork()) < 0)
                sysbail("fork");
            if (pids[i] == 0)
                writer(conf, sh, i);
        }
        /* Let them run, then kill each at its own random moment. */
        usleep(20000 + (useconds_t) (rand() % 80000));
        for (i = 0; i < WRITERS; i++) {
            usleep((useconds_t) (rand() % 3000));
            kill(pids[i], SIGKILL);
        }
        for (i = 0; i < WRITERS; i++) {
            if (waitpid(pids[i], &status, 0) != pids[i])
                sysbail("waitpid");
            if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
                killed++;
            else
                diag("writer %d ended otherwise: status %d", i, status);
        }

        /* A fresh handle opens the store (reaping at open). */
        if (ina_store_open(conf, 0, &st, err, sizeof(err)) != 0) {
            ok(0, "round %d: the store opens after the kills: %s", r, err);
            break;
        }
        ina_store_set_log(st, NULL, NULL);
        done = 0;
        for (i = 0; i < WRITERS; i++)
            done += sh->done[i];
        c = test_addr("10.8.0.0/16");
        if (ina_query(st, INA_CONNECTION, "3600,24", &c, 0, 1, 0, &n, err,
                      sizeof(err)) != 0)
            bail("%s", err);
        ok(n >= done && n <= done + (uint64_t) killed,
           "round %d: total %llu within [returned %llu, + %d in flight]",
           r, (unsigned long long) n, (unsigned long long) done, killed);
        if (n == done)
            exact_rounds++;
        /* Reaping: every dead writer's sessions are gone. */
        c = test_addr("10.9.0.0/16");
        if (ina_session_count(st, &c, NULL, &seen_sessions, err,
                              sizeof(err)) != 0)
            bail("%s", err);
        is_uint(0, seen_sessions,
                "round %d: no session of a dead writer is left", r);
        c = test_addr("10.7.0.0/16");
        if (ina_session_count(st, &c, NULL, &seen_sessions, err,
                              sizeof(err)) != 0)
            bail("%s", err);
        is_uint(2, seen_sessions,
                "round %d: the live parent's 2 sessions are kept", r);
        ina_store_close(st);
    }
    is_int(ROUNDS * WRITERS, killed, "%d writers were SIGKILLed",
           ROUNDS * WRITERS);
    for (i = 0, n = 0; i < WRITERS; i++)
        n += (uint64_t) sh->opened[i];
    ok(n > 0, "%llu sessions had been opened, and all were reaped",
       (unsigned long long) n);
    diag("%d of %d rounds ended with no call in flight", exact_rounds,
         ROUNDS);
    ina_store_close(live);
    ina_conf_free(conf);
    return 0;
}
