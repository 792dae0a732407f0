/* basic.c - a small TAP producer for the C tests
 *
 * See basic.h.  Children forked by a test must not print TAP: they
 * _exit() with a status for the parent to check.  Only the process that
 * called plan() prints the closing summary and removes the scratch
 * directory.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic.h"

static unsigned long tap_planned;
static unsigned long tap_run;
static unsigned long tap_failed;
static int tap_lazy;
static pid_t tap_pid;
static char *tap_tmpdir;

/* tap_finish - print the summary and set the exit status */

static void
tap_finish(void)
{
    if (tap_pid != getpid())
        return;
    fflush(stdout);
    if (tap_lazy && tap_run > 0)
        printf("1..%lu\n", tap_run);
    if (tap_planned > 0 && tap_run != tap_planned)
        printf("# planned %lu tests but ran %lu\n", tap_planned, tap_run);
    if (tap_failed > 0)
        printf("# failed %lu of %lu tests\n", tap_failed, tap_run);
    fflush(stdout);
    test_cleanup();
    if (tap_failed > 0 || (tap_planned > 0 && tap_run != tap_planned)
        || (tap_lazy && tap_run == 0))
        _exit(1);
}

/* plan - announce the number of tests */

void
plan(unsigned long n)
{
    tap_pid = getpid();
    tap_planned = n;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("1..%lu\n", n);
    atexit(tap_finish);
}

/* plan_lazy - print the plan at the end */

void
plan_lazy(void)
{
    tap_pid = getpid();
    tap_lazy = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    atexit(tap_finish);
}

/* skip_all - skip the whole test file */

void
skip_all(const char *fmt, ...)
{
    va_list ap;

    printf("1..0 # skip ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(0);
}

/* tap_result - print one result line */

static int
tap_result(int cond, const char *fmt, va_list ap)
{
    tap_run++;
    if (!cond)
        tap_failed++;
    printf("%sok %lu", cond ? "" : "not ", tap_run);
    if (fmt != NULL && *fmt != '\0') {
        printf(" - ");
        vprintf(fmt, ap);
    }
    printf("\n");
    fflush(stdout);
    return cond;
}

/* ok - one test */

int
ok(int cond, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cond = tap_result(cond != 0, fmt, ap);
    va_end(ap);
    return cond;
}

/* is_int - compare two integers */

int
is_int(long long want, long long seen, const char *fmt, ...)
{
    va_list ap;
    int cond = want == seen;

    va_start(ap, fmt);
    tap_result(cond, fmt, ap);
    va_end(ap);
    if (!cond)
        diag("wanted: %lld\n#   seen: %lld", want, seen);
    return cond;
}

/* is_uint - compare two unsigned integers */

int
is_uint(unsigned long long want, unsigned long long seen, const char *fmt,
        ...)
{
    va_list ap;
    int cond = want == seen;

    va_start(ap, fmt);
    tap_result(cond, fmt, ap);
    va_end(ap);
    if (!cond)
        diag("wanted: %llu\n#   seen: %llu", want, seen);
    return cond;
}

/* is_string - compare two strings; NULL equals only NULL */

int
is_string(const char *want, const char *seen, const char *fmt, ...)
{
    va_list ap;
    int cond;

    if (want == NULL || seen == NULL)
        cond = want == seen;
    else
        cond = strcmp(want, seen) == 0;
    va_start(ap, fmt);
    tap_result(cond, fmt, ap);
    va_end(ap);
    if (!cond)
        diag("wanted: %s\n#   seen: %s", want ? want : "(null)",
             seen ? seen : "(null)");
    return cond;
}

/* like - the seen string contains needle */

int
like(const char *seen, const char *needle, const char *fmt, ...)
{
    va_list ap;
    int cond = seen != NULL && strstr(seen, needle) != NULL;

    va_start(ap, fmt);
    tap_result(cond, fmt, ap);
    va_end(ap);
    if (!cond)
        diag("wanted text containing: %s\n#   seen: %s", needle,
             seen ? seen : "(null)");
    return cond;
}

/* skip - one skipped test */

void
skip(const char *fmt, ...)
{
    va_list ap;

    tap_run++;
    printf("ok %lu # skip ", tap_run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* diag - a diagnostic line (or several) */

void
diag(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* bail - give up on the whole test */

void
bail(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    printf("Bail out! ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(255);
}

/* sysbail - give up, with errno's text */

void
sysbail(const char *fmt, ...)
{
    va_list ap;
    int err = errno;

    fflush(stdout);
    printf("Bail out! ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(": %s\n", strerror(err));
    fflush(stdout);
    exit(255);
}

/* test_file_path - a fixture under the source t/ directory */

char *
test_file_path(const char *name)
{
    const char *base = getenv("INA_TEST_SRCDIR");
    char *path;
    size_t len;

    if (base == NULL || *base == '\0')
        base = "t";
    len = strlen(base) + strlen(name) + 2;
    if ((path = malloc(len)) == NULL)
        sysbail("malloc");
    snprintf(path, len, "%s/%s", base, name);
    return path;
}

/* test_tmpdir - this test's private scratch directory */

const char *
test_tmpdir(void)
{
    const char *base;
    char *path;
    size_t len;

    if (tap_tmpdir != NULL)
        return tap_tmpdir;
    base = getenv("INA_TEST_BUILDDIR");
    if (base == NULL || *base == '\0')
        base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    len = strlen(base) + 32;
    if ((path = malloc(len)) == NULL)
        sysbail("malloc");
    snprintf(path, len, "%s/tmp.XXXXXX", base);
    if (mkdtemp(path) == NULL)
        sysbail("mkdtemp %s", path);
    tap_tmpdir = path;
    if (tap_pid == 0)
        tap_pid = getpid();
    return tap_tmpdir;
}

/* rm_one - nftw callback removing one entry */

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb;
    (void) flag;
    (void) ftw;
    return remove(path);
}

/* test_cleanup - remove the scratch directory */

void
test_cleanup(void)
{
    if (tap_tmpdir == NULL || tap_pid != getpid())
        return;
    if (getenv("INA_TEST_KEEP") == NULL)
        nftw(tap_tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(tap_tmpdir);
    tap_tmpdir = NULL;
}
