/* 83-torture.c - 200 and more SIGKILLs at random moments
 *
 * Round after round, writers open a session, record connections and a
 * reception, close the session, again and again, and are SIGKILLed at
 * random moments: inside a record, a flush, a session transaction, a
 * journal append.  After every round a fresh handle opens the store and
 * every writer's total must equal the record calls that returned, plus at
 * most one call in flight per kill of that writer; no session gauge may
 * stay above the sessions really open (none: every writer is dead and
 * reaped); and after a flush, the totals must still be exact and the
 * journals of the dead all applied and gone.
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
#define ROUNDS 35

struct shared {
    volatile uint64_t done[WRITERS];   /* record calls that returned */
    volatile uint64_t kills[WRITERS];
};

/* writer - sessions with traffic, until killed */

static void
writer(const struct ina_conf *conf, struct shared *sh, int id)
{
    struct ina_store *st;
    struct ina_cidr c;
    char addr[32], err[256];
    unsigned j;

    if (ina_store_open(conf, 0, &st, err, sizeof(err)) != 0)
        _exit(30);
    ina_store_set_log(st, NULL, NULL);
    for (j = 0;; j++) {
        snprintf(addr, sizeof(addr), "10.%d.%u.%u", 10 + id, j % 7,
                 j % 200);
        c = test_addr(addr);
        if (ina_session_open(st, &c, NULL) != 0)
            _exit(31);
        if (ina_record(st, INA_CONNECTION, &c, 1) != 0)
            _exit(32);
        sh->done[id]++;
        if (ina_record(st, INA_CONNECTION, &c, 1) != 0)
            _exit(33);
        sh->done[id]++;
        if (ina_session_close(st, &c, NULL) != 0)
            _exit(34);
    }
}

/* bad_totals - writers whose total is not the calls that returned plus
 * at most one per kill, each told with diag() */

static int
bad_totals(struct ina_store *st, const struct shared *sh, int r,
           const char *when)
{
    struct ina_cidr c;
    char block[32], err[256];
    uint64_t n;
    int i, bad = 0;

    for (i = 0; i < WRITERS; i++) {
        snprintf(block, sizeof(block), "10.%d.0.0/16", 10 + i);
        c = test_addr(block);
        if (ina_query(st, INA_CONNECTION, "3600,24", &c, 0, 1, 0, &n, err,
                      sizeof(err)) != 0)
            bail("%s", err);
        if (n < sh->done[i] || n > sh->done[i] + sh->kills[i]) {
            diag("round %d writer %d%s: total %llu, returned %llu, "
                 "kills %llu", r, i, when, (unsigned long long) n,
                 (unsigned long long) sh->done[i],
                 (unsigned long long) sh->kills[i]);
            bad++;
        }
    }
    return bad;
}

int
main(void)
{
    struct ina_conf *conf;
    struct ina_store *st;
    struct shared *sh;
    struct ina_cidr c;
    pid_t pids[WRITERS];
    uint64_t n, sessions;
    char err[256];
    int i, r, status, killed = 0, totals_wrong = 0, bad_gauges = 0;
    int bad_journals = 0;

    plan_lazy();
    conf = test_conf("store", NULL);
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        sysbail("mmap");
    memset((void *) sh, 0, sizeof(*sh));
    srand((unsigned) time(NULL) ^ (unsigned) getpid());
    alarm(900);

    for (r = 0; r < ROUNDS; r++) {
        for (i = 0; i < WRITERS; i++) {
            if ((pids[i] = fork()) < 0)
                sysbail("fork");
            if (pids[i] == 0)
                writer(conf, sh, i);
        }
        usleep(5000 + (useconds_t) (rand() % 40000));
        for (i = 0; i < WRITERS; i++) {
            usleep((useconds_t) (rand() % 2000));
            kill(pids[i], SIGKILL);
        }
        for (i = 0; i < WRITERS; i++) {
            if (waitpid(pids[i], &status, 0) != pids[i])
                sysbail("waitpid");
            if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
                killed++;
                sh->kills[i]++;
            } else {
                diag("round %d: writer %d ended with status %d", r, i,
                     status);
            }
        }
        if (ina_store_open(conf, 0, &st, err, sizeof(err)) != 0) {
            ok(0, "round %d: the store opens: %s", r, err);
            break;
        }
        ina_store_set_log(st, NULL, NULL);
        totals_wrong += bad_totals(st, sh, r, "");
        c = test_addr("0.0.0.0/0");
        if (ina_session_count(st, &c, NULL, &sessions, err,
                              sizeof(err)) != 0)
            bail("%s", err);
        if (sessions != 0) {
            diag("round %d: %llu sessions of dead writers left", r,
                 (unsigned long long) sessions);
            bad_gauges++;
        }
        /* The totals above came partly from the pending tables; after a
         * flush they come from the tree, and the dead writers' journals
         * are applied and removed. */
        if (ina_flush(st) != 0)
            bail("round %d: flush failed", r);
        totals_wrong += bad_totals(st, sh, r, " after the flush");
        if (test_journals(conf->store) != 0) {
            diag("round %d: %d journals of dead writers left", r,
                 test_journals(conf->store));
            bad_journals++;
        }
        ina_store_close(st);
    }
    ok(killed >= 200, "%d writers were SIGKILLed at random moments", killed);
    is_int(0, totals_wrong,
           "every writer's total was exact after every round (returned "
           "calls, plus at most one per kill)");
    is_int(0, bad_gauges, "no session gauge outlived its writer");
    is_int(0, bad_journals, "every dead writer's journal was applied");
    for (i = 0, n = 0; i < WRITERS; i++)
        n += sh->done[i];
    diag("%llu record calls returned over %d kills",
         (unsigned long long) n, killed);
    ina_conf_free(conf);
    return 0;
}
