/* fill.c - fill a store from forked writers with known totals (tests)
 *
 * Usage: fill [-h SECONDS] [-d USEC] CONF WORKERS EVENT,ADDR,N ...
 *
 * Forks WORKERS children; each opens the store of CONF after fork() and
 * records every EVENT from ADDR N times, one event per ina_record() call,
 * going round the specifications so that the writers interleave.  The
 * store then holds exactly WORKERS * N events of each specification.
 * The EVENT "session" opens N SMTP sessions instead, owned by the worker;
 * with -h the workers hold them SECONDS seconds before they exit without
 * closing them, as a worker that dies would.  With -d each worker
 * pauses USEC microseconds after each round, so that the writing lasts
 * long enough for readers to run beside it.
 * The parent waits for every child and exits 0 only if all of them did;
 * it prints nothing but errors, so the auditctl tests can run it from
 * the shell.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "inaudit.h"

struct spec {
    int session;
    enum ina_event ev;
    struct ina_cidr addr;
    unsigned long n;
};

/* parse_spec - "EVENT,ADDR,N"; exits 2 if it is not one */

static void
parse_spec(const char *text, struct spec *sp)
{
    char buf[256], *ev, *addr, *n, *end;

    snprintf(buf, sizeof(buf), "%s", text);
    ev = buf;
    if ((addr = strchr(ev, ',')) == NULL || (n = strrchr(addr + 1, ','))
                                                == NULL) {
        fprintf(stderr, "fill: %s: not EVENT,ADDR,N\n", text);
        exit(2);
    }
    *addr++ = '\0';
    *n++ = '\0';
    sp->n = strtoul(n, &end, 10);
    sp->session = strcmp(ev, "session") == 0;
    if ((!sp->session && ina_event_parse(ev, &sp->ev) != 0) || *end != '\0'
        || ina_cidr_parse(addr, strlen(addr), &sp->addr, NULL, 0) != 0
        || sp->addr.family == 0) {
        fprintf(stderr, "fill: %s: not EVENT,ADDR,N\n", text);
        exit(2);
    }
}

/* worker - one child's work; returns its exit status */

static int
worker(const char *path, const struct spec *sp, size_t nspec,
       unsigned hold, unsigned pause)
{
    struct ina_conf *conf;
    struct ina_store *st;
    unsigned long i;
    char msg[512];
    size_t j;
    int rc;

    if (ina_conf_load(path, &conf, msg, sizeof(msg)) != 0
        || ina_store_open(conf, 0, &st, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "fill: %s\n", msg);
        return 1;
    }
    ina_store_set_log(st, NULL, NULL);
    for (i = 0;; i++) {
        int more = 0;

        for (j = 0; j < nspec; j++) {
            if (i >= sp[j].n)
                continue;
            more = 1;
            rc = sp[j].session ? ina_session_open(st, &sp[j].addr, NULL)
                               : ina_record(st, sp[j].ev, &sp[j].addr, 1);
            if (rc != 0) {
                fprintf(stderr, "fill: record: %s\n", ina_strerror(rc));
                return 1;
            }
        }
        if (!more)
            break;
        if (pause > 0)
            usleep(pause);
    }
    if (hold > 0)
        sleep(hold);
    ina_store_close(st);
    ina_conf_free(conf);
    return 0;
}

/* main - fork the writers and wait for them */

int
main(int argc, char **argv)
{
    struct spec *sp;
    unsigned long workers, i;
    unsigned hold = 0, pause = 0;
    pid_t pid;
    int status, bad = 0;
    char *end;

    while (argc > 2 && (strcmp(argv[1], "-h") == 0
                        || strcmp(argv[1], "-d") == 0)) {
        if (argv[1][1] == 'h')
            hold = (unsigned) strtoul(argv[2], NULL, 10);
        else
            pause = (unsigned) strtoul(argv[2], NULL, 10);
        argv += 2;
        argc -= 2;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: fill [-h SECONDS] [-d USEC] CONF WORKERS "
                        "EVENT,ADDR,N ...\n");
        return 2;
    }
    workers = strtoul(argv[2], &end, 10);
    if (*end != '\0' || workers == 0 || workers > 64) {
        fprintf(stderr, "fill: %s: not a number of workers (1-64)\n",
                argv[2]);
        return 2;
    }
    if ((sp = calloc((size_t) argc - 3, sizeof(*sp))) == NULL) {
        perror("fill");
        return 1;
    }
    for (i = 3; i < (unsigned long) argc; i++)
        parse_spec(argv[i], &sp[i - 3]);
    for (i = 0; i < workers; i++) {
        if ((pid = fork()) == -1) {
            perror("fill: fork");
            bad = 1;
            break;
        }
        if (pid == 0)
            _exit(worker(argv[1], sp, (size_t) argc - 3, hold, pause));
    }
    while ((pid = wait(&status)) != -1 || errno == EINTR)
        if (pid != -1 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
            bad = 1;
    free(sp);
    return bad;
}
