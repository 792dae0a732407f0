/* inatest.c - helpers shared by the store tests
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic.h"
#include "inatest.h"

#define TEST_BODY                                                        \
    "monitors = {\"60,10\", \"300,12\", \"3600,24\"}\n"                   \
    "ipv4_prefixes = {32, 24, 16}\n"                                     \
    "ipv6_prefixes = {128, 64, 48}\n"

/* test_conf - a configuration for a store under the test directory */

struct ina_conf *
test_conf(const char *dir, const char *body)
{
    struct ina_conf *conf;
    char text[4096], err[512];

    snprintf(text, sizeof(text),
             "inbound_audit {\n  store = \"%s/%s\"\n  map_size = \"64M\"\n"
             "%s}\n", test_tmpdir(), dir, body ? body : TEST_BODY);
    if (ina_conf_parse_text(text, "test", &conf, err, sizeof(err)) != 0)
        bail("test configuration: %s", err);
    return conf;
}

/* test_addr - parse an address or block, or bail */

struct ina_cidr
test_addr(const char *text)
{
    struct ina_cidr c;
    char err[256];

    if (ina_cidr_parse(text, strlen(text), &c, err, sizeof(err)) != 0)
        bail("%s", err);
    return c;
}

/* test_clock - a clock the test moves by hand */

int64_t
test_clock(void *arg)
{
    return *(int64_t *) arg;
}

/* test_log - the store's log as TAP diagnostics (INA_TEST_LOG set) */

static void
test_log(void *arg, int prio, const char *msg)
{
    (void) arg;
    fprintf(stderr, "# log %d: %s\n", prio, msg);
}

/* test_open - open a store read-write, silently, or bail */

struct ina_store *
test_open(const struct ina_conf *conf)
{
    struct ina_store *st;
    char err[512];

    if (ina_store_open(conf, 0, &st, err, sizeof(err)) != 0)
        bail("open: %s", err);
    ina_store_set_log(st, getenv("INA_TEST_LOG") ? test_log : NULL, NULL);
    return st;
}

/* test_sessions - the SMTP sessions open from a block, or UINT64_MAX */

uint64_t
test_sessions(struct ina_store *st, const char *cidr)
{
    struct ina_cidr c = test_addr(cidr);
    uint64_t n;
    char err[256];

    if (ina_session_count(st, &c, NULL, &n, err, sizeof(err)) != 0) {
        diag("%s", err);
        return UINT64_MAX;
    }
    return n;
}

/* test_journals - the journal files in a store directory, or -1 */

int
test_journals(const char *dir)
{
    struct dirent *de;
    DIR *d = opendir(dir);
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "journal.", 8) == 0)
            n++;
    closedir(d);
    return n;
}
