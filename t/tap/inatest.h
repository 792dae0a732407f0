/* inatest.h - helpers shared by the store tests
 *
 * test_conf() builds a configuration for a store under the test's
 * private directory; test_addr() parses an address or bails; the manual
 * clock lets a test move time by hand.
 *
 * SPDX-License-Identifier: MIT
 */

#ifndef TAP_INATEST_H
#define TAP_INATEST_H 1

#include <stdint.h>

#include "inaudit.h"

/* A configuration whose store is DIR under test_tmpdir(); body holds
 * the options inside the inbound_audit section other than store (NULL:
 * the sample's monitors and prefixes). */
struct ina_conf *test_conf(const char *dir, const char *body);

/* The parsed address or block, or bail. */
struct ina_cidr test_addr(const char *text);

/* A clock the test moves by hand: pass &clock as the argument. */
int64_t test_clock(void *arg);

/* The SMTP sessions open from a block (ina_session_count), or
 * UINT64_MAX after a diagnostic. */
uint64_t test_sessions(struct ina_store *st, const char *cidr);

/* The journal files (journal.*) in a store directory, or -1. */
int test_journals(const char *dir);

/* Open a store read-write on conf, with the log silenced, or bail. */
struct ina_store *test_open(const struct ina_conf *conf);

#endif /* TAP_INATEST_H */
