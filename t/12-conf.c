/* 12-conf.c - the configuration: loading, validation, lookup
 *
 * Checks that the sample conf/inbound_audit.conf and the built-in text
 * are the same configuration, that every option is read back, that the
 * lookup order of ina_conf_path() is the SPEC's, that every invalid value
 * and every syntax error is refused with the right file and line (the
 * fixtures are t/data/conf-*.conf; each says what is wrong with it), and
 * that monitors are found with or without blanks.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inaudit.h"
#include "tap/basic.h"

/* As in lib/conf.c: Makefile.am defines it for both. */
#ifndef INA_SYSCONFDIR
#define INA_SYSCONFDIR "/etc"
#endif

/* A fixture that must be refused: where, and what the message says. */
struct bad_file {
    const char *file;  /* under t/data */
    int line;          /* line in the message; 0 for none */
    const char *why;   /* text the message contains */
    const char *also;  /* more text it contains, or NULL */
};

static const struct bad_file bad_files[] = {
    {"conf-store-relative.conf", 4,
     "store: \"var/lib/inbound-audit\" is not an absolute path", NULL},
    {"conf-store-empty.conf", 3, "store: the path is empty", NULL},
    {"conf-map-size-junk.conf", 5,
     "map_size: \"1GB\" is not a size (bytes, or a number with a K, M, G "
     "or T suffix)", NULL},
    {"conf-map-size-small.conf", 3,
     "map_size: \"1023K\" is below the minimum of 1048576 bytes", NULL},
    {"conf-map-size-overflow.conf", 3,
     "map_size: \"16777216T\" is too large", NULL},
    {"conf-monitor-width-zero.conf", 5, "monitors: ", "\"0,5\""},
    {"conf-monitor-width-big.conf", 3, "monitors: ", "\"31622401,1\""},
    {"conf-monitor-history-big.conf", 3, "monitors: ", "\"60,100001\""},
    {"conf-monitor-malformed.conf", 5, "monitors: ", "\"3600;24\""},
    {"conf-monitor-dup.conf", 6,
     "monitors: \"60, 10\" is the same monitor as \"60,10\"", NULL},
    {"conf-monitors-empty.conf", 6, "monitors: the list is empty", NULL},
    {"conf-prefix4-negative.conf", 4,
     "ipv4_prefixes: -1 is out of range (0 to 32)", NULL},
    {"conf-prefix4-33.conf", 3,
     "ipv4_prefixes: 33 is out of range (0 to 32)", NULL},
    {"conf-prefix6-129.conf", 4,
     "ipv6_prefixes: 129 is out of range (0 to 128)", NULL},
    {"conf-prefix-dup.conf", 4, "ipv6_prefixes: 64 is listed twice", NULL},
    {"conf-prefix-hex.conf", 3,
     "ipv4_prefixes: \"0x10\" is not a prefix length", NULL},
    {"conf-prefixes-none.conf", 5,
     "ipv4_prefixes and ipv6_prefixes are both empty", NULL},
    {"conf-unknown-option.conf", 4, "stores", NULL},
    {"conf-no-section.conf", 0, "no inbound_audit section", NULL},
    {"conf-two-sections.conf", 8,
     "more than one inbound_audit section (the first ends at line 4)",
     NULL},
    {"conf-two-clusters.conf", 8,
     "more than one cluster section (the first ends at line 5)", NULL},
    {"conf-unterminated-string.conf", 4, "unterminated string", NULL},
    {"conf-unterminated-comment.conf", 4, "unterminated comment", NULL},
    {"conf-missing-brace.conf", 3, "this '{' is never closed", NULL},
    {"conf-missing-open-brace.conf", 3, "opening brace", NULL},
    {"conf-extra-brace.conf", 5, "closing brace", NULL},
    {"conf-comment-lines.conf", 13, "map_size: \"0\" is below the minimum",
     NULL},
    {"conf-redis-bad.conf", 4,
     "redis: \"localhost\" is not \"host:port\" or \"unix:/path\"", NULL},
    {"conf-node-empty.conf", 5, "node: the name is empty", NULL},
    {"conf-node-long.conf", 4, "node: ", "is longer than 64 bytes"},
    {"conf-interval-bad.conf", 5,
     "interval: 5 is out of range 10..60000 (milliseconds)", NULL},
    {"conf-password-relative.conf", 6,
     "password_file: \"redis.password\" is not an absolute path", NULL},
};

/* Map sizes that are accepted, and their values. */
static const struct {
    const char *text;
    unsigned long long bytes;
} good_sizes[] = {
    {"1048576", 1048576ull},
    {"1M", 1048576ull},
    {"1m", 1048576ull},
    {"1024k", 1048576ull},
    {"1024K", 1048576ull},
    {"3g", 3ull << 30},
    {"1T", 1ull << 40},
    {"16777215T", 16777215ull << 40},
    {"18446744073709551615", 18446744073709551615ull},
};

/* Map sizes that are refused, and what the message says. */
static const struct {
    const char *text;
    const char *why;
} bad_sizes[] = {
    {"", "is not a size"},
    {"G", "is not a size"},
    {"1 G", "is not a size"},
    {" 1G", "is not a size"},
    {"1G ", "is not a size"},
    {"-1G", "is not a size"},
    {"+1G", "is not a size"},
    {"1.5G", "is not a size"},
    {"1GiB", "is not a size"},
    {"1P", "is not a size"},
    {"0x100000", "is not a size"},
    {"1048575", "is below the minimum"},
    {"0", "is below the minimum"},
    {"1023k", "is below the minimum"},
    {"18446744073709551616", "is too large"},
    {"99999999999999999999X", "is not a size"},
    {"17179869184G", "is too large"},
};

/* Set before a call that fails, to check that it stores NULL. */
static struct ina_conf not_null;

/* A file with a NUL byte on line 3. */
static const char nul_text[] = "inbound_audit {\n  store = \"/a\"\n\0\n}\n";

/* has_prefix - the message starts with "file:line: " (or "file: ") */

static int
has_prefix(const char *msg, const char *file, int line, const char *what)
{
    char want[1024];

    if (line > 0)
        snprintf(want, sizeof want, "%s:%d: ", file, line);
    else
        snprintf(want, sizeof want, "%s: ", file);
    if (!ok(strncmp(msg, want, strlen(want)) == 0,
            "%s: the message starts with \"%s\"", what, want)) {
        diag("seen: %s", msg);
        return 0;
    }
    return 1;
}

/* read_file - the whole of a file, malloc'd and NUL-terminated */

static char *
read_file(const char *path)
{
    FILE *fp;
    char *buf;
    long n;

    if ((fp = fopen(path, "r")) == NULL)
        sysbail("cannot open %s", path);
    if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0
        || fseek(fp, 0, SEEK_SET) != 0)
        sysbail("cannot size %s", path);
    if ((buf = malloc((size_t) n + 1)) == NULL)
        sysbail("malloc");
    if (fread(buf, 1, (size_t) n, fp) != (size_t) n)
        sysbail("cannot read %s", path);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* write_file - write a file under the scratch directory; returns its path */

static char *
write_file(const char *name, const char *text, size_t len)
{
    char *path;
    size_t n = strlen(test_tmpdir()) + strlen(name) + 2;
    FILE *fp;

    if ((path = malloc(n)) == NULL)
        sysbail("malloc");
    snprintf(path, n, "%s/%s", test_tmpdir(), name);
    if ((fp = fopen(path, "w")) == NULL)
        sysbail("cannot create %s", path);
    if (fwrite(text, 1, len, fp) != len || fclose(fp) != 0)
        sysbail("cannot write %s", path);
    return path;
}

/* conf_is - two configurations are equal, field by field (not file) */

static void
conf_is(const struct ina_conf *want, const struct ina_conf *seen,
        const char *what)
{
    size_t i;

    is_string(want->store, seen->store, "%s: store", what);
    is_uint(want->map_size, seen->map_size, "%s: map_size", what);
    is_uint(want->nmonitors, seen->nmonitors, "%s: number of monitors",
            what);
    for (i = 0; i < want->nmonitors && i < seen->nmonitors; i++) {
        is_string(want->monitors[i].name, seen->monitors[i].name,
                  "%s: monitor %zu name", what, i);
        is_uint(want->monitors[i].width, seen->monitors[i].width,
                "%s: monitor %zu width", what, i);
        is_uint(want->monitors[i].history, seen->monitors[i].history,
                "%s: monitor %zu history", what, i);
    }
    is_uint(want->nprefixes4, seen->nprefixes4, "%s: number of IPv4 "
            "prefixes", what);
    for (i = 0; i < want->nprefixes4 && i < seen->nprefixes4; i++)
        is_uint(want->prefixes4[i], seen->prefixes4[i],
                "%s: IPv4 prefix %zu", what, i);
    is_uint(want->nprefixes6, seen->nprefixes6, "%s: number of IPv6 "
            "prefixes", what);
    for (i = 0; i < want->nprefixes6 && i < seen->nprefixes6; i++)
        is_uint(want->prefixes6[i], seen->prefixes6[i],
                "%s: IPv6 prefix %zu", what, i);
    is_int(want->cluster, seen->cluster, "%s: cluster", what);
    is_string(want->cluster_redis, seen->cluster_redis, "%s: redis", what);
    is_string(want->cluster_node, seen->cluster_node, "%s: node", what);
    is_uint(want->cluster_interval, seen->cluster_interval, "%s: interval",
            what);
    is_string(want->cluster_password_file, seen->cluster_password_file,
              "%s: password_file", what);
}

/* data_path - the path of a fixture under t/data, malloc'd */

static char *
data_path(const char *name)
{
    char rel[256];

    snprintf(rel, sizeof rel, "data/%s", name);
    return test_file_path(rel);
}

/* load - load a fixture under t/data, bailing out if it fails */

static struct ina_conf *
load(const char *name)
{
    struct ina_conf *conf;
    char errbuf[512];
    char *path = data_path(name);
    int rc;

    rc = ina_conf_load(path, &conf, errbuf, sizeof errbuf);
    if (rc != 0)
        bail("cannot load %s: %s", path, errbuf);
    free(path);
    return conf;
}

/* test_sample - the sample file is the built-in text, and its values */

static void
test_sample(void)
{
    struct ina_conf *file_conf;
    struct ina_conf *text_conf;
    char errbuf[512];
    char *path = test_file_path("../conf/inbound_audit.conf");
    char *text = read_file(path);
    int rc;

    is_string(text, ina_conf_default_text(),
              "the sample file is the built-in text, byte for byte");
    free(text);

    rc = ina_conf_load(path, &file_conf, errbuf, sizeof errbuf);
    if (!is_int(0, rc, "the sample file loads"))
        bail("%s", errbuf);
    rc = ina_conf_parse_text(ina_conf_default_text(), "(builtin)",
                             &text_conf, errbuf, sizeof errbuf);
    if (!is_int(0, rc, "the built-in text parses"))
        bail("%s", errbuf);
    conf_is(file_conf, text_conf, "sample file and built-in text");

    /* Every value of the sample, against the SPEC. */
    is_string(path, file_conf->file, "the file is where it was read");
    is_string("(builtin)", text_conf->file, "the text has the name given");
    is_string("/var/lib/inbound-audit", file_conf->store, "store");
    is_uint(INA_MAP_SIZE_DEFAULT, file_conf->map_size, "map_size is 1G");
    is_uint(1ull << 30, file_conf->map_size, "...and 1G is 2^30 bytes");
    is_uint(3, file_conf->nmonitors, "three monitors");
    is_string("60,10", file_conf->monitors[0].name, "monitor 0 is 60,10");
    is_uint(60, file_conf->monitors[0].width, "...of width 60");
    is_uint(10, file_conf->monitors[0].history, "...and history 10");
    is_string("300,12", file_conf->monitors[1].name, "monitor 1 is 300,12");
    is_string("3600,24", file_conf->monitors[2].name,
              "monitor 2 is 3600,24");
    is_uint(3600, file_conf->monitors[2].width, "...of width 3600");
    is_uint(24, file_conf->monitors[2].history, "...and history 24");
    is_uint(3, file_conf->nprefixes4, "three IPv4 prefixes");
    is_uint(16, file_conf->prefixes4[0], "coarsest IPv4 prefix first: 16");
    is_uint(24, file_conf->prefixes4[1], "then 24");
    is_uint(32, file_conf->prefixes4[2], "then 32");
    is_uint(3, file_conf->nprefixes6, "three IPv6 prefixes");
    is_uint(48, file_conf->prefixes6[0], "coarsest IPv6 prefix first: 48");
    is_uint(64, file_conf->prefixes6[1], "then 64");
    is_uint(128, file_conf->prefixes6[2], "then 128");
    is_int(0, file_conf->cluster, "no cluster (it is commented out)");
    ok(file_conf->cluster_redis == NULL, "...so no redis");
    ok(file_conf->cluster_node == NULL, "...and no node");

    ina_conf_free(file_conf);
    ina_conf_free(text_conf);
    free(path);
}

/* test_values - every option read back from files that set them */

static void
test_values(void)
{
    struct ina_conf *conf;
    struct ina_conf *sample;
    char errbuf[512];
    char host[256];

    conf = load("conf-full.conf");
    is_string("/srv/audit#1", conf->store, "full: a '#' in quotes is kept");
    is_uint(512ull << 20, conf->map_size, "full: map_size 512m");
    is_uint(3, conf->nmonitors, "full: three monitors");
    is_string("300,12", conf->monitors[0].name,
              "full: monitors in file order, blanks dropped");
    is_string("60,5", conf->monitors[1].name,
              "full: \" 60 ,5 \" is canonicalised");
    is_uint(60, conf->monitors[1].width, "full: ...width 60");
    is_uint(5, conf->monitors[1].history, "full: ...history 5");
    is_string("86400,7", conf->monitors[2].name, "full: then 86400,7");
    is_uint(3, conf->nprefixes4, "full: three IPv4 prefixes");
    is_uint(16, conf->prefixes4[0], "full: IPv4 sorted: 16");
    is_uint(24, conf->prefixes4[1], "full: then 24");
    is_uint(32, conf->prefixes4[2], "full: then 32");
    is_uint(4, conf->nprefixes6, "full: four IPv6 prefixes");
    is_uint(32, conf->prefixes6[0], "full: IPv6 sorted: 32");
    is_uint(56, conf->prefixes6[1], "full: then 56");
    is_uint(64, conf->prefixes6[2], "full: then 64");
    is_uint(128, conf->prefixes6[3], "full: then 128");
    is_int(1, conf->cluster, "full: a cluster section");
    is_string("[::1]:6380", conf->cluster_redis, "full: redis");
    is_string("mx2.example.org", conf->cluster_node, "full: node");
    is_uint(250, conf->cluster_interval, "full: interval");
    is_string("/etc/inbound-audit/redis.password",
              conf->cluster_password_file, "full: password_file");
    ina_conf_free(conf);

    /* An empty section is the sample, option by option. */
    conf = load("conf-defaults.conf");
    if (ina_conf_parse_text(ina_conf_default_text(), "(builtin)", &sample,
                            errbuf, sizeof errbuf) != 0)
        bail("%s", errbuf);
    conf_is(sample, conf, "defaults");
    ina_conf_free(sample);
    ina_conf_free(conf);

    /* An empty cluster section takes the defaults of its options. */
    if (gethostname(host, sizeof host) != 0)
        sysbail("gethostname");
    host[sizeof host - 1] = '\0';
    conf = load("conf-cluster-defaults.conf");
    is_string("/var/lib//inbound-audit", conf->store,
              "unquoted store with \"//\" inside is not a comment");
    is_int(1, conf->cluster, "empty cluster section: cluster is on");
    is_string("127.0.0.1:6379", conf->cluster_redis,
              "...redis defaults to 127.0.0.1:6379");
    is_string(host, conf->cluster_node, "...node defaults to the host name");
    is_uint(INA_CLUSTER_INTERVAL_DEFAULT, conf->cluster_interval,
            "...interval to 100 ms");
    ok(conf->cluster_password_file == NULL, "...and no password file");
    ina_conf_free(conf);
}

/* test_bad_files - every fixture refused with its file, line and reason */

static void
test_bad_files(void)
{
    struct ina_conf *conf;
    char errbuf[512];
    char *path;
    size_t i;
    int rc;

    for (i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
        path = data_path(bad_files[i].file);
        conf = &not_null;
        errbuf[0] = '\0';
        rc = ina_conf_load(path, &conf, errbuf, sizeof errbuf);
        is_int(INA_ECONF, rc, "%s is refused", bad_files[i].file);
        ok(conf == NULL, "%s: no configuration is returned",
           bad_files[i].file);
        has_prefix(errbuf, path, bad_files[i].line, bad_files[i].file);
        like(errbuf, bad_files[i].why, "%s: the message says why",
             bad_files[i].file);
        if (bad_files[i].also != NULL)
            like(errbuf, bad_files[i].also, "%s: ...and quotes the value",
                 bad_files[i].file);
        free(path);
    }
}

/* test_map_sizes - the map size syntax, accepted and refused */

static void
test_map_sizes(void)
{
    struct ina_conf *conf;
    char text[256];
    char errbuf[512];
    size_t i;
    int rc;

    for (i = 0; i < sizeof good_sizes / sizeof good_sizes[0]; i++) {
        snprintf(text, sizeof text,
                 "inbound_audit {\n    map_size = \"%s\"\n}\n",
                 good_sizes[i].text);
        rc = ina_conf_parse_text(text, "sizes", &conf, errbuf,
                                 sizeof errbuf);
        if (!is_int(0, rc, "map_size \"%s\" is accepted", good_sizes[i].text))
            diag("%s", errbuf);
        else
            is_uint(good_sizes[i].bytes, conf->map_size,
                    "...and is %llu bytes", good_sizes[i].bytes);
        ina_conf_free(rc == 0 ? conf : NULL);
    }
    for (i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
        snprintf(text, sizeof text,
                 "inbound_audit {\n    map_size = \"%s\"\n}\n",
                 bad_sizes[i].text);
        rc = ina_conf_parse_text(text, "sizes", &conf, errbuf,
                                 sizeof errbuf);
        is_int(INA_ECONF, rc, "map_size \"%s\" is refused",
               bad_sizes[i].text);
        has_prefix(errbuf, "sizes", 2, "map_size");
        like(errbuf, bad_sizes[i].why, "...because it %s",
             bad_sizes[i].why);
    }
}

/* test_limits - INA_MAX_MONITORS and INA_MAX_PREFIXES, and one more
 *
 * Each value is on its own line after the first two, so the line of the
 * message shows which value broke the limit. */

static void
test_limits(void)
{
    struct ina_conf *conf;
    char text[4096];
    char errbuf[512];
    size_t off;
    unsigned n;
    unsigned i;
    int rc;

    for (n = INA_MAX_MONITORS; n <= INA_MAX_MONITORS + 1; n++) {
        off = (size_t) snprintf(text, sizeof text,
                                "inbound_audit {\n    monitors = {\n");
        for (i = 0; i < n; i++)
            off += (size_t) snprintf(text + off, sizeof text - off,
                                     "        \"%u,1\"%s\n", 60 * (i + 1),
                                     i + 1 < n ? "," : "");
        snprintf(text + off, sizeof text - off, "    }\n}\n");
        rc = ina_conf_parse_text(text, "monitors", &conf, errbuf,
                                 sizeof errbuf);
        if (n == INA_MAX_MONITORS) {
            is_int(0, rc, "%u monitors are accepted", n);
            is_uint(n, rc == 0 ? conf->nmonitors : 0, "...all of them");
            ina_conf_free(rc == 0 ? conf : NULL);
        } else {
            is_int(INA_ECONF, rc, "%u monitors are refused", n);
            has_prefix(errbuf, "monitors", (int) n + 2, "too many monitors");
            like(errbuf, "more than 32 monitors", "...says the limit");
        }
    }

    for (n = INA_MAX_PREFIXES; n <= INA_MAX_PREFIXES + 1; n++) {
        off = (size_t) snprintf(text, sizeof text,
                                "inbound_audit {\n    ipv6_prefixes = {\n");
        for (i = 0; i < n; i++)
            off += (size_t) snprintf(text + off, sizeof text - off,
                                     "        %u%s\n", 128 - i,
                                     i + 1 < n ? "," : "");
        snprintf(text + off, sizeof text - off, "    }\n}\n");
        rc = ina_conf_parse_text(text, "prefixes", &conf, errbuf,
                                 sizeof errbuf);
        if (n == INA_MAX_PREFIXES) {
            is_int(0, rc, "%u IPv6 prefixes are accepted", n);
            is_uint(n, rc == 0 ? conf->nprefixes6 : 0, "...all of them");
            is_uint(128 - n + 1, rc == 0 ? conf->prefixes6[0] : 0,
                    "...coarsest first");
            ina_conf_free(rc == 0 ? conf : NULL);
        } else {
            is_int(INA_ECONF, rc, "%u IPv6 prefixes are refused", n);
            has_prefix(errbuf, "prefixes", (int) n + 2, "too many prefixes");
            like(errbuf, "ipv6_prefixes: more than 16 prefix lengths",
                 "...says the limit");
        }
    }
}

/* test_text - ina_conf_parse_text names its errors with name */

static void
test_text(void)
{
    struct ina_conf *conf;
    char errbuf[512];
    int rc;

    rc = ina_conf_parse_text("inbound_audit {\n  store = \"/x\"\n  "
                             "monitors = {\"60,10\"\n}\n", "my-text", &conf,
                             errbuf, sizeof errbuf);
    is_int(INA_ECONF, rc, "a section without its closing brace is refused");
    has_prefix(errbuf, "my-text", 1, "unclosed section");
    like(errbuf, "this '{' is never closed", "...and says so");

    rc = ina_conf_parse_text("inbound_audit {\n  store = \"/x\n", "other",
                             &conf, errbuf, sizeof errbuf);
    is_int(INA_ECONF, rc, "an unterminated string is refused");
    has_prefix(errbuf, "other", 2, "unterminated string");
    like(errbuf, "unterminated string", "...and says so");

    rc = ina_conf_parse_text("inbound_audit {\n  store = '/x\n}\n", "sq",
                             &conf, errbuf, sizeof errbuf);
    is_int(INA_ECONF, rc, "an unterminated single-quoted string too");
    has_prefix(errbuf, "sq", 2, "unterminated single-quoted string");

    /* An error before the unterminated string is the one reported. */
    rc = ina_conf_parse_text("inbound_audit {\n  store = \"x\"\n"
                             "  map_size = \"1G\n}\n", "first",
                             &conf, errbuf, sizeof errbuf);
    is_int(INA_ECONF, rc, "relative store, then an unterminated string");
    has_prefix(errbuf, "first", 2, "the earlier error wins");
    like(errbuf, "store: \"x\" is not an absolute path", "...and is the "
         "store's");

    rc = ina_conf_parse_text("inbound_audit {\n  ipv4_prefixes = {32,\n"
                             "  010}\n}\n", "octal", &conf, errbuf,
                             sizeof errbuf);
    is_int(INA_ECONF, rc, "a prefix length with a leading zero is refused");
    is_string("octal:3: ipv4_prefixes: \"010\" is not a prefix length",
              errbuf, "...neither octal nor decimal: ambiguous");

    rc = ina_conf_parse_text("inbound_audit {\n  ipv6_prefixes = {-0}\n}\n",
                             "minus", &conf, errbuf, sizeof errbuf);
    is_int(INA_ECONF, rc, "-0 is refused");
    is_string("minus:2: ipv6_prefixes: \"-0\" is not a prefix length",
              errbuf, "...as not a prefix length");

    rc = ina_conf_parse_text("inbound_audit {\n  ipv6_prefixes = {0}\n}\n",
                             "zero", &conf, errbuf, sizeof errbuf);
    if (is_int(0, rc, "a /0 prefix is allowed")) {
        is_uint(1, conf->nprefixes6, "...it is the only IPv6 prefix");
        is_uint(0, conf->prefixes6[0], "...and it is 0");
        ina_conf_free(conf);
    } else {
        diag("%s", errbuf);
    }

    rc = ina_conf_parse_text("inbound_audit {\n  ipv4_prefixes = {99999}\n"
                             "}\n", "huge", &conf, errbuf, sizeof errbuf);
    is_int(INA_ECONF, rc, "a huge prefix length is refused");
    is_string("huge:2: ipv4_prefixes: 99999 is out of range (0 to 32)",
              errbuf, "...as out of range");

    rc = ina_conf_parse_text("", "empty", &conf, errbuf, sizeof errbuf);
    is_int(INA_ECONF, rc, "an empty text is refused");
    is_string("empty: no inbound_audit section", errbuf,
              "...for want of a section");

    rc = ina_conf_parse_text("inbound_audit { monitors = {\"60,10\", # x\n"
                             "\"60,11\" /* y */, \"60,12\" // z\n} }",
                             "comments", &conf, errbuf, sizeof errbuf);
    if (is_int(0, rc, "comments inside a list are allowed")) {
        is_uint(3, conf->nmonitors, "...and hide no monitor");
        is_string("60,12", conf->monitors[2].name, "...the last is 60,12");
        ina_conf_free(conf);
    } else {
        diag("%s", errbuf);
    }

    /* A failed parse leaves libConfuse's lexer usable: the first call
     * stops inside a string, the second must parse normally. */
    rc = ina_conf_parse_text("inbound_audit {\n store = \"\\9\"\n}\n", "esc",
                             &conf, errbuf, sizeof errbuf);
    is_int(INA_ECONF, rc, "a bad escape in a string is refused");
    has_prefix(errbuf, "esc", 2, "bad escape");
    rc = ina_conf_parse_text(ina_conf_default_text(), "again", &conf, errbuf,
                             sizeof errbuf);
    is_int(0, rc, "...and the next parse works");
    ina_conf_free(rc == 0 ? conf : NULL);

    /* errbuf is optional. */
    rc = ina_conf_parse_text("x = 1\n", "noerrbuf", &conf, NULL, 0);
    is_int(INA_ECONF, rc, "errors without an errbuf are still returned");
}

/* test_files - what ina_conf_load does with files it cannot use */

static void
test_files(void)
{
    struct ina_conf *conf;
    char errbuf[512];
    char *path;
    char *big;
    int rc;

    path = data_path("conf-does-not-exist.conf");
    conf = &not_null;
    rc = ina_conf_load(path, &conf, errbuf, sizeof errbuf);
    is_int(ENOENT, rc, "a missing file is ENOENT");
    ok(conf == NULL, "...and returns no configuration");
    has_prefix(errbuf, path, 0, "missing file");
    like(errbuf, strerror(ENOENT), "...and says why");
    rc = ina_conf_load(path, &conf, NULL, 0);
    is_int(ENOENT, rc, "...also without an errbuf");
    free(path);

    rc = ina_conf_load(test_tmpdir(), &conf, errbuf, sizeof errbuf);
    is_int(EISDIR, rc, "a directory is EISDIR");
    has_prefix(errbuf, test_tmpdir(), 0, "directory");

    path = write_file("unreadable.conf", "inbound_audit {\n}\n",
                      strlen("inbound_audit {\n}\n"));
    if (chmod(path, 0) != 0)
        sysbail("chmod %s", path);
    if (geteuid() == 0) {
        skip("root reads any file");
        skip("root reads any file");
    } else {
        rc = ina_conf_load(path, &conf, errbuf, sizeof errbuf);
        is_int(EACCES, rc, "an unreadable file is EACCES");
        has_prefix(errbuf, path, 0, "unreadable file");
    }
    free(path);

    path = write_file("nul.conf", nul_text, sizeof nul_text - 1);
    rc = ina_conf_load(path, &conf, errbuf, sizeof errbuf);
    is_int(INA_ECONF, rc, "a NUL byte in the file is refused");
    has_prefix(errbuf, path, 3, "NUL byte");
    like(errbuf, "NUL byte", "...and is named");
    free(path);

    if ((big = malloc(1024 * 1024 + 2)) == NULL)
        sysbail("malloc");
    memset(big, '\n', 1024 * 1024 + 1);
    path = write_file("big.conf", big, 1024 * 1024 + 1);
    rc = ina_conf_load(path, &conf, errbuf, sizeof errbuf);
    is_int(EFBIG, rc, "a file over 1 MiB is EFBIG");
    free(path);
    free(big);
}

/* test_path - the lookup order of ina_conf_path() */

static void
test_path(void)
{
    char buf[4096];
    char small[8];
    int rc;

    setenv("INBOUND_AUDIT_CONF", "/from/env.conf", 1);
    rc = ina_conf_path("/explicit.conf", buf, sizeof buf);
    is_int(0, rc, "explicit path");
    is_string("/explicit.conf", buf, "...wins over the environment");

    rc = ina_conf_path(NULL, buf, sizeof buf);
    is_int(0, rc, "no explicit path");
    is_string("/from/env.conf", buf, "...$INBOUND_AUDIT_CONF is next");

    setenv("INBOUND_AUDIT_CONF", "", 1);
    rc = ina_conf_path(NULL, buf, sizeof buf);
    is_int(0, rc, "empty $INBOUND_AUDIT_CONF");
    is_string(INA_SYSCONFDIR "/inbound-audit/inbound_audit.conf", buf,
              "...is ignored: the build's default");

    unsetenv("INBOUND_AUDIT_CONF");
    rc = ina_conf_path(NULL, buf, sizeof buf);
    is_int(0, rc, "no $INBOUND_AUDIT_CONF");
    is_string(INA_SYSCONFDIR "/inbound-audit/inbound_audit.conf", buf,
              "...the build's default");

    rc = ina_conf_path("/0123456789", small, sizeof small);
    is_int(ENAMETOOLONG, rc, "a path that does not fit is ENAMETOOLONG");
    is_string("", small, "...and the buffer is left empty");
    rc = ina_conf_path("/abcdef", small, sizeof small);
    is_int(0, rc, "a path that just fits");
    is_string("/abcdef", small, "...is copied");
}

/* test_find_monitor - lookup by name, blanks allowed, and the messages */

static void
test_find_monitor(void)
{
    const struct ina_monitor *mon;
    struct ina_conf *conf;
    char errbuf[512];
    int rc;

    conf = load("../../conf/inbound_audit.conf");

    mon = NULL;
    rc = ina_conf_find_monitor(conf, "300,12", &mon, errbuf, sizeof errbuf);
    is_int(0, rc, "300,12 is found");
    ok(mon == &conf->monitors[1], "...as the second monitor");

    mon = NULL;
    rc = ina_conf_find_monitor(conf, " 3600 , 24 ", &mon, errbuf,
                               sizeof errbuf);
    is_int(0, rc, "\" 3600 , 24 \" is found");
    ok(mon == &conf->monitors[2], "...as 3600,24");

    mon = NULL;
    rc = ina_conf_find_monitor(conf, "60,\t10", &mon, NULL, 0);
    is_int(0, rc, "\"60,<tab>10\" is found without an errbuf");
    ok(mon == &conf->monitors[0], "...as 60,10");

    rc = ina_conf_find_monitor(conf, "61,1", &mon, errbuf, sizeof errbuf);
    is_int(INA_ENOMONITOR, rc, "61,1 is not configured");
    is_string("monitor \"61,1\" is not configured (configured: 60,10 300,12 "
              "3600,24)", errbuf, "...and the message lists the monitors");

    rc = ina_conf_find_monitor(conf, "60, 11", &mon, errbuf, sizeof errbuf);
    is_int(INA_ENOMONITOR, rc, "\"60, 11\" is not configured");
    like(errbuf, "monitor \"60,11\" is not configured",
         "...and is named canonically");

    rc = ina_conf_find_monitor(conf, "sixty", &mon, errbuf, sizeof errbuf);
    is_int(INA_EBADMONITOR, rc, "\"sixty\" is not a monitor");
    like(errbuf, "\"sixty\"", "...the message quotes it");
    like(errbuf, "(configured: 60,10 300,12 3600,24)",
         "...and lists the monitors");

    rc = ina_conf_find_monitor(conf, "0,1", &mon, NULL, 0);
    is_int(INA_EBADMONITOR, rc, "0,1 is a bad monitor, without errbuf too");

    ina_conf_free(conf);
}

/* test_set_store - replacing the store directory */

static void
test_set_store(void)
{
    struct ina_conf *conf;
    char errbuf[512];

    if (ina_conf_parse_text(ina_conf_default_text(), "(builtin)", &conf,
                            errbuf, sizeof errbuf) != 0)
        bail("%s", errbuf);
    is_int(0, ina_conf_set_store(conf, "/tmp/store"),
           "an absolute store is accepted");
    is_string("/tmp/store", conf->store, "...and replaces the old one");
    is_int(EINVAL, ina_conf_set_store(conf, "tmp/store"),
           "a relative store is EINVAL");
    is_int(EINVAL, ina_conf_set_store(conf, ""), "an empty one too");
    is_string("/tmp/store", conf->store, "...and the store is unchanged");
    ina_conf_free(conf);
    ina_conf_free(NULL);
    ok(1, "ina_conf_free(NULL) is harmless");
}

/* loader - a thread that loads good and bad configurations in turn */

static void *
loader(void *arg)
{
    const char *dir = arg;
    struct ina_conf *conf;
    char path[4096];
    char errbuf[512];
    long failures = 0;
    int i;

    for (i = 0; i < 100; i++) {
        snprintf(path, sizeof path, "%s/%s", dir,
                 i % 2 == 0 ? "conf-full.conf" : "conf-monitor-dup.conf");
        if (ina_conf_load(path, &conf, errbuf, sizeof errbuf) == 0) {
            if (i % 2 != 0 || strcmp(conf->monitors[1].name, "60,5") != 0)
                failures++;
            ina_conf_free(conf);
        } else if (i % 2 == 0 || strstr(errbuf, ":6: monitors") == NULL) {
            failures++;
        }
    }
    return (void *) (intptr_t) failures;
}

/* test_threads - loads from several threads at once all work */

static void
test_threads(void)
{
    pthread_t threads[4];
    char *dir = test_file_path("data");
    void *result;
    long failures = 0;
    int i;

    for (i = 0; i < 4; i++)
        if (pthread_create(&threads[i], NULL, loader, dir) != 0)
            bail("pthread_create");
    for (i = 0; i < 4; i++) {
        if (pthread_join(threads[i], &result) != 0)
            bail("pthread_join");
        failures += (long) (intptr_t) result;
    }
    is_int(0, failures, "400 loads from 4 threads at once all right");
    free(dir);
}

/* main - run every group */

int
main(void)
{
    plan(393);
    test_sample();
    test_values();
    test_bad_files();
    test_map_sizes();
    test_limits();
    test_text();
    test_files();
    test_path();
    test_find_monitor();
    test_set_store();
    test_threads();
    return 0;
}
