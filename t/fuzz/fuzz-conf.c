/* fuzz-conf.c - libFuzzer target: the configuration loader
 *
 * The input is a configuration text.  ina_conf_parse_text() gets a
 * NUL-terminated copy; ina_conf_load() gets the same bytes in a file,
 * NUL bytes included, which the text call cannot see (conf_lex() refuses
 * them).  Then:
 *
 *   - a refusal returns INA_ECONF (or ENOMEM), leaves *confp NULL, and
 *     writes a terminated message that starts with the name given, in a
 *     roomy buffer and in a tiny one;
 *   - an accepted configuration keeps the rules of lib/inaudit.h: an
 *     absolute store, a map size of at least INA_MAP_SIZE_MIN, 1 ..
 *     INA_MAX_MONITORS monitors whose canonical names parse back to them,
 *     are found by ina_conf_find_monitor() and are all different, prefix
 *     lists sorted coarsest first without duplicates and within the
 *     family's length, at least one family counted, and a cluster with a
 *     Redis address and a node name exactly when a cluster section is
 *     present;
 *   - for a text without a NUL byte, the file and the string give the
 *     same result;
 *   - the configuration is freed (LeakSanitizer checks that it all is).
 *
 * libConfuse's lexer has global state, so the target is single-threaded,
 * as libFuzzer runs it.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inaudit.h"
#include "fuzz.h"

/* The name the configuration is given in messages. */
#define FUZZ_NAME "fuzz.conf"
/* A small error buffer, to check truncation of long messages. */
#define FUZZ_SMALL_ERRLEN 6

/* The file ina_conf_load() reads, in a private directory under $TMPDIR
 * (or /tmp), made at start and removed at exit. */
static char fuzz_dir[1024];
static char fuzz_path[1024 + 16];

/* fuzz_cleanup - remove the file and its directory at exit */

static void
fuzz_cleanup(void)
{
    unlink(fuzz_path);
    rmdir(fuzz_dir);
}

/* LLVMFuzzerInitialize - make the private directory */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");

    (void) argc;
    (void) argv;
    if (tmp == NULL || *tmp != '/')
        tmp = "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/fuzz-conf.XXXXXX", tmp);
    if (mkdtemp(fuzz_dir) == NULL) {
        perror("fuzz-conf: mkdtemp");
        abort();
    }
    snprintf(fuzz_path, sizeof fuzz_path, "%s/in.conf", fuzz_dir);
    atexit(fuzz_cleanup);
    return 0;
}

/* conf_check_prefixes - a prefix list: sorted, unique, within max */

static void
conf_check_prefixes(const uint8_t *data, size_t size, const uint8_t *list,
                    size_t n, unsigned max)
{
    size_t i;

    FUZZ_CHECK(n <= INA_MAX_PREFIXES, data, size, "%zu prefixes", n);
    for (i = 0; i < n; i++) {
        FUZZ_CHECK(list[i] <= max, data, size, "prefix /%u over /%u",
                   list[i], max);
        FUZZ_CHECK(i == 0 || list[i - 1] < list[i], data, size,
                   "prefixes /%u, /%u not sorted or repeated", list[i - 1],
                   list[i]);
    }
}

/* conf_check_valid - the invariants of an accepted configuration */

static void
conf_check_valid(const uint8_t *data, size_t size,
                 const struct ina_conf *conf)
{
    const struct ina_monitor *found;
    struct ina_monitor m;
    const char *p;
    size_t i;
    size_t j;

    FUZZ_CHECK(conf->file != NULL && (strcmp(conf->file, FUZZ_NAME) == 0
                                      || strcmp(conf->file, fuzz_path) == 0),
               data, size, "file \"%s\"", conf->file ? conf->file : "(null)");
    FUZZ_CHECK(conf->store != NULL && conf->store[0] == '/', data, size,
               "store \"%s\"", conf->store ? conf->store : "(null)");
    FUZZ_CHECK(conf->map_size >= INA_MAP_SIZE_MIN, data, size,
               "map_size %llu", (unsigned long long) conf->map_size);
    FUZZ_CHECK(conf->nmonitors >= 1 && conf->nmonitors <= INA_MAX_MONITORS,
               data, size, "%zu monitors", conf->nmonitors);
    for (i = 0; i < conf->nmonitors; i++) {
        const struct ina_monitor *mi = &conf->monitors[i];

        FUZZ_CHECK(memchr(mi->name, '\0', sizeof mi->name) != NULL, data,
                   size, "monitor %zu name unterminated", i);
        FUZZ_CHECK(ina_monitor_parse(mi->name, &m, NULL, 0) == 0
                   && m.width == mi->width && m.history == mi->history
                   && strcmp(m.name, mi->name) == 0, data, size,
                   "monitor \"%s\" (%u,%u) does not parse back", mi->name,
                   (unsigned) mi->width, (unsigned) mi->history);
        FUZZ_CHECK(ina_conf_find_monitor(conf, mi->name, &found, NULL, 0)
                   == 0 && found == mi, data, size,
                   "monitor \"%s\" not found", mi->name);
        for (j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(conf->monitors[j].name, mi->name) != 0, data,
                       size, "monitor \"%s\" twice", mi->name);
    }
    conf_check_prefixes(data, size, conf->prefixes4, conf->nprefixes4, 32);
    conf_check_prefixes(data, size, conf->prefixes6, conf->nprefixes6, 128);
    FUZZ_CHECK(conf->nprefixes4 + conf->nprefixes6 > 0, data, size,
               "no family counted");
    if (!conf->cluster) {
        FUZZ_CHECK(conf->cluster_redis == NULL && conf->cluster_node == NULL,
                   data, size, "cluster values without a cluster");
        return;
    }
    FUZZ_CHECK(conf->cluster_redis != NULL && conf->cluster_redis[0] != '\0',
               data, size, "cluster without a redis address");
    FUZZ_CHECK(conf->cluster_node != NULL && conf->cluster_node[0] != '\0',
               data, size, "cluster without a node name");
    for (p = conf->cluster_node; *p != '\0'; p++)
        FUZZ_CHECK((unsigned char) *p > 0x20 && *p != 0x7f, data, size,
                   "node \"%s\" has a blank", conf->cluster_node);
}

/* conf_check_refused - the outputs of a refusal */

static void
conf_check_refused(const uint8_t *data, size_t size, int rc,
                   const struct ina_conf *conf, const char *errbuf,
                   size_t errlen, const char *name)
{
    FUZZ_CHECK(rc == INA_ECONF || rc == ENOMEM, data, size, "rc %d (%s)",
               rc, ina_strerror(rc));
    FUZZ_CHECK(conf == NULL, data, size, "refused but *confp set");
    FUZZ_CHECK(memchr(errbuf, '\0', errlen) != NULL, data, size,
               "message not terminated in %zu bytes", errlen);
    FUZZ_CHECK(strncmp(errbuf, name, strlen(name) < errlen - 1
                       ? strlen(name) : errlen - 1) == 0, data, size,
               "message \"%s\" does not start with \"%s\"", errbuf, name);
}

/* conf_same - two accepted configurations hold the same values */

static int
conf_same(const struct ina_conf *a, const struct ina_conf *b)
{
    return strcmp(a->store, b->store) == 0 && a->map_size == b->map_size
           && a->nmonitors == b->nmonitors
           && memcmp(a->monitors, b->monitors,
                     a->nmonitors * sizeof a->monitors[0]) == 0
           && a->nprefixes4 == b->nprefixes4
           && memcmp(a->prefixes4, b->prefixes4, a->nprefixes4) == 0
           && a->nprefixes6 == b->nprefixes6
           && memcmp(a->prefixes6, b->prefixes6, a->nprefixes6) == 0
           && a->cluster == b->cluster
           && (!a->cluster
               || (strcmp(a->cluster_redis, b->cluster_redis) == 0
                   && strcmp(a->cluster_node, b->cluster_node) == 0));
}

/* conf_write - put the input in the file ina_conf_load() reads */

static void
conf_write(const uint8_t *data, size_t size)
{
    size_t off = 0;
    ssize_t n;
    int fd;

    if ((fd = open(fuzz_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                   0600)) < 0) {
        perror(fuzz_path);
        abort();
    }
    while (off < size) {
        if ((n = write(fd, data + off, size - off)) <= 0) {
            perror(fuzz_path);
            abort();
        }
        off += (size_t) n;
    }
    close(fd);
}

/* LLVMFuzzerTestOneInput - one input as a text and as a file */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ina_conf *conf = NULL;
    struct ina_conf *fconf = NULL;
    char errbuf[1024];
    char *small;
    char *text;
    int rc;
    int frc;

    if ((text = malloc(size + 1)) == NULL
        || (small = malloc(FUZZ_SMALL_ERRLEN)) == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';

    errbuf[0] = '\0';
    rc = ina_conf_parse_text(text, FUZZ_NAME, &conf, errbuf, sizeof errbuf);
    if (rc == 0) {
        FUZZ_CHECK(conf != NULL, data, size, "accepted but *confp NULL");
        conf_check_valid(data, size, conf);
    } else {
        conf_check_refused(data, size, rc, conf, errbuf, sizeof errbuf,
                           FUZZ_NAME ":");
        /* The same refusal in a buffer of a few bytes. */
        rc = ina_conf_parse_text(text, FUZZ_NAME, &conf, small,
                                 FUZZ_SMALL_ERRLEN);
        conf_check_refused(data, size, rc, conf, small, FUZZ_SMALL_ERRLEN,
                           FUZZ_NAME);
    }

    /* The same bytes from a file: NUL bytes reach conf_lex() this way. */
    conf_write(data, size);
    errbuf[0] = '\0';
    frc = ina_conf_load(fuzz_path, &fconf, errbuf, sizeof errbuf);
    if (frc == 0) {
        FUZZ_CHECK(fconf != NULL, data, size, "accepted but *confp NULL");
        conf_check_valid(data, size, fconf);
        FUZZ_CHECK(memchr(data, '\0', size) == NULL, data, size,
                   "a file with a NUL byte accepted");
    } else {
        conf_check_refused(data, size, frc, fconf, errbuf, sizeof errbuf,
                           fuzz_path);
    }
    if (memchr(data, '\0', size) == NULL) {
        FUZZ_CHECK((rc == 0) == (frc == 0), data, size,
                   "text gives %d, the file %d", rc, frc);
        if (rc == 0 && conf != NULL && fconf != NULL)
            FUZZ_CHECK(conf_same(conf, fconf), data, size,
                       "text and file give different configurations");
    }
    if (conf != NULL) {
        /* A new store path replaces the old one without a leak. */
        FUZZ_CHECK(ina_conf_set_store(conf, "/srv/fuzz") == 0, data, size,
                   "set_store failed");
        FUZZ_CHECK(ina_conf_set_store(conf, "relative") == EINVAL, data,
                   size, "a relative store accepted");
    }
    ina_conf_free(conf);
    ina_conf_free(fconf);
    free(small);
    free(text);
    return 0;
}
