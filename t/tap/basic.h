/* basic.h - a small TAP producer for the C tests
 *
 * The API names follow C TAP Harness (plan, ok, is_int, is_string, diag,
 * bail, sysbail) so the tests read familiar; the code is our own.  Output
 * goes to stdout; a test exits non-zero if any test failed or the plan was
 * not met.  test_tmpdir() gives each test a private scratch directory that
 * test_cleanup() removes.
 *
 * SPDX-License-Identifier: MIT
 */

#ifndef TAP_BASIC_H
#define TAP_BASIC_H 1

#include <stddef.h>
#include <stdint.h>

#define TAP_PRINTF(f, a) __attribute__((__format__(__printf__, f, a)))
#define TAP_NORETURN __attribute__((__noreturn__))

void plan(unsigned long n);
void plan_lazy(void);
void skip_all(const char *fmt, ...) TAP_PRINTF(1, 2) TAP_NORETURN;

int ok(int cond, const char *fmt, ...) TAP_PRINTF(2, 3);
int is_int(long long want, long long seen, const char *fmt, ...)
    TAP_PRINTF(3, 4);
int is_uint(unsigned long long want, unsigned long long seen,
            const char *fmt, ...) TAP_PRINTF(3, 4);
int is_string(const char *want, const char *seen, const char *fmt, ...)
    TAP_PRINTF(3, 4);
int like(const char *seen, const char *needle, const char *fmt, ...)
    TAP_PRINTF(3, 4);
void skip(const char *fmt, ...) TAP_PRINTF(1, 2);

void diag(const char *fmt, ...) TAP_PRINTF(1, 2);
void bail(const char *fmt, ...) TAP_PRINTF(1, 2) TAP_NORETURN;
void sysbail(const char *fmt, ...) TAP_PRINTF(1, 2) TAP_NORETURN;

/* Path of a file under $INA_TEST_SRCDIR (t/ of the source tree); the
 * result is malloc'd. */
char *test_file_path(const char *name);

/* A fresh private directory for this test, made once per process; it is
 * removed (recursively) at exit by the process that made it. */
const char *test_tmpdir(void);

/* Remove the test directory now (also done at exit). */
void test_cleanup(void);

#endif /* TAP_BASIC_H */
