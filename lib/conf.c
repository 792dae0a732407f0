/* conf.c - the configuration file: schema, validation, lookup
 *
 * The file is read with libConfuse: one inbound_audit section holding
 * store, map_size, monitors, ipv4_prefixes, ipv6_prefixes and an optional
 * cluster section.  Every range rule is a validator installed with
 * cfg_set_validate_func(), so that a bad value is refused while the parser
 * still knows its line, and every message reaches the caller's errbuf as
 * "file:line: which and why" through our error function.  The values are
 * then copied into a struct ina_conf; no cfg_t ever leaves this file.
 *
 * Two things about libConfuse 3.3 shape this file.  Its lexer is a flex
 * scanner with global state, so every use of it here is serialised by
 * conf_lock (which also guards conf_current, the parse the error function
 * reports into).  And its lexer counts comment lines two or three times,
 * rejects a comment inside a list, and takes the end of the file as the
 * end of any section still open; so conf_lex() first blanks the comments
 * out (newlines kept, so lines stay where they were) and finds unclosed
 * braces and unterminated strings and comments itself, following the
 * token rules of libConfuse's lexer.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <confuse.h>

#include "inaudit.h"
#include "internal.h"

#ifndef INA_SYSCONFDIR
#define INA_SYSCONFDIR "/etc"
#endif

/* Where the configuration is found when nothing else says. */
#define CONF_DEFAULT_PATH INA_SYSCONFDIR "/inbound-audit/inbound_audit.conf"

/* The largest file read; a configuration is a few hundred bytes. */
#define CONF_FILE_MAX (1024 * 1024)

/* Room for one message before "file:line: " is put in front of it. */
#define CONF_MSG_MAX 512

/* At most this many bytes of a value are quoted in a message. */
#define CONF_QUOTE_MAX 64
/* Room for CONF_QUOTE_MAX escaped bytes ("\xHH" each), "..." and NUL. */
#define CONF_QUOTE_LEN (4 * CONF_QUOTE_MAX + 4)

/* Braces whose lines conf_lex() remembers; deeper nesting is still
 * counted, and is refused by the schema anyway. */
#define CONF_DEPTH_MAX 64

/* Defaults of the options (Postfix's DEF_ names), the values of the
 * sample conf/inbound_audit.conf.  The lists are arrays, not literals,
 * because libConfuse's list initialisers take a char *. */
#define DEF_STORE "/var/lib/inbound-audit"
#define DEF_MAP_SIZE "1G"
#define DEF_REDIS "127.0.0.1:6379"
#define DEF_FLUSH_DELAY INA_FLUSH_DELAY_DEFAULT
#define DEF_CLUSTER_INTERVAL INA_CLUSTER_INTERVAL_DEFAULT
static char def_monitors[] = "{\"60,10\", \"300,12\", \"3600,24\"}";
static char def_ipv4_prefixes[] = "{32, 24, 16}";
static char def_ipv6_prefixes[] = "{128, 64, 48}";

/* The built-in configuration: the text of conf/inbound_audit.conf, to
 * the byte (t/12-conf checks it). */
static const char conf_default_text[] =
    "# inbound_audit.conf - configuration of inbound-audit (libinaudit)\n"
    "#\n"
    "# Every option is shown with its default value.  "
    "See inbound_audit.conf(5).\n"
    "\n"
    "inbound_audit {\n"
    "    # Directory of the LMDB environment; an absolute path.\n"
    "    store = \"/var/lib/inbound-audit\"\n"
    "    # Ceiling of the memory map: bytes, or a number with K, M, G or "
    "T;\n"
    "    # writers reserve all of it on disk (data.mdb is as long as the "
    "map).\n"
    "    map_size = \"1G\"\n"
    "    # Milliseconds a record may wait before it reaches the store's "
    "tree (0 to\n"
    "    # 1000); every process sees it at once.\n"
    "    flush_delay = 100\n"
    "    # Group of the store's directory and files (default: the "
    "creator's).\n"
    "    #group = \"mail\"\n"
    "    # Monitors \"W,N\": windows of W seconds, N past windows kept.\n"
    "    monitors = {\"60,10\", \"300,12\", \"3600,24\"}\n"
    "    # Prefix lengths counted for every IPv4 event (0 to 32).\n"
    "    ipv4_prefixes = {32, 24, 16}\n"
    "    # Prefix lengths counted for every IPv6 event (0 to 128).\n"
    "    ipv6_prefixes = {128, 64, 48}\n"
    "    # Optional: share counts with the other nodes through Redis.\n"
    "    #cluster {\n"
    "    #    # The Redis server, \"host:port\" or \"unix:/path\".\n"
    "    #    redis = \"127.0.0.1:6379\"\n"
    "    #    # The name of this node; the default is the host name.\n"
    "    #    node = \"mx1\"\n"
    "    #    # Milliseconds between two publications by inaudit-sync "
    "(10 to 60000).\n"
    "    #    interval = 100\n"
    "    #    # A file holding the Redis password (AUTH); none by default.\n"
    "    #    password_file = \"/etc/inbound-audit/redis.password\"\n"
    "    #}\n"
    "}\n";

/* One parse in progress: what the error function needs. */
struct conf_parse {
    const char *name;   /* the file name used in messages */
    char *errbuf;       /* the caller's buffer, or NULL */
    size_t errlen;
    int failed;         /* a message has been written */
    int errline;        /* its line (0: none) */
};

/* What conf_lex() finds besides the comments it blanks. */
struct conf_lexinfo {
    int err_line;        /* line of the first lexical error, 0: none */
    const char *err_msg; /* what it is */
    int open_line;       /* line of the innermost '{' never closed, 0 */
};

/* libConfuse's lexer is not reentrant: one parse at a time. */
static pthread_mutex_t conf_lock = PTHREAD_MUTEX_INITIALIZER;
/* The parse conf_errfunc() reports into; guarded by conf_lock. */
static struct conf_parse *conf_current;

static int conf_check_store(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_map_size(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_flush_delay(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_group(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_monitors(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_prefixes(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_redis(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_node(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_interval(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_password_file(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_cluster(cfg_t *cfg, cfg_opt_t *opt);
static int conf_check_section(cfg_t *cfg, cfg_opt_t *opt);
static int conf_parse_prefix(cfg_t *cfg, cfg_opt_t *opt, const char *value,
                             void *result);

/* The schema.  Both sections are CFGF_MULTI so that cfg_size() tells
 * whether they are present at all (libConfuse makes a default instance of
 * any other section) and so that a second one is seen, not merged. */
static cfg_opt_t conf_cluster_opts[] = {
    CFG_STR("redis", DEF_REDIS, CFGF_NONE),
    CFG_STR("node", NULL, CFGF_NODEFAULT),
    CFG_INT("interval", DEF_CLUSTER_INTERVAL, CFGF_NONE),
    CFG_STR("password_file", NULL, CFGF_NODEFAULT),
    CFG_END()
};

static cfg_opt_t conf_section_opts[] = {
    CFG_STR("store", DEF_STORE, CFGF_NONE),
    CFG_STR("map_size", DEF_MAP_SIZE, CFGF_NONE),
    CFG_INT("flush_delay", DEF_FLUSH_DELAY, CFGF_NONE),
    CFG_STR("group", NULL, CFGF_NODEFAULT),
    CFG_STR_LIST("monitors", def_monitors, CFGF_NONE),
    CFG_INT_LIST_CB("ipv4_prefixes", def_ipv4_prefixes, CFGF_NONE,
                    conf_parse_prefix),
    CFG_INT_LIST_CB("ipv6_prefixes", def_ipv6_prefixes, CFGF_NONE,
                    conf_parse_prefix),
    CFG_SEC("cluster", conf_cluster_opts, CFGF_MULTI),
    CFG_END()
};

static cfg_opt_t conf_root_opts[] = {
    CFG_SEC("inbound_audit", conf_section_opts, CFGF_MULTI),
    CFG_END()
};

/* The validators, by option path. */
static const struct {
    const char *path;
    cfg_validate_callback_t fn;
} conf_validators[] = {
    {"inbound_audit", conf_check_section},
    {"inbound_audit|store", conf_check_store},
    {"inbound_audit|map_size", conf_check_map_size},
    {"inbound_audit|flush_delay", conf_check_flush_delay},
    {"inbound_audit|group", conf_check_group},
    {"inbound_audit|monitors", conf_check_monitors},
    {"inbound_audit|ipv4_prefixes", conf_check_prefixes},
    {"inbound_audit|ipv6_prefixes", conf_check_prefixes},
    {"inbound_audit|cluster", conf_check_cluster},
    {"inbound_audit|cluster|redis", conf_check_redis},
    {"inbound_audit|cluster|node", conf_check_node},
    {"inbound_audit|cluster|interval", conf_check_interval},
    {"inbound_audit|cluster|password_file", conf_check_password_file},
};

/* conf_quote - copy a value for a message, escaping what is not printable
 *
 * Printable ASCII is copied, a double quote and a backslash get a
 * backslash, other bytes become "\xHH", and a value longer than
 * CONF_QUOTE_MAX bytes is cut and marked with "...".  out must hold
 * CONF_QUOTE_LEN bytes.  Returns out. */

static char *
conf_quote(const char *s, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t i;
    char *p = out;
    unsigned char c;

    for (i = 0; s[i] != '\0' && i < CONF_QUOTE_MAX; i++) {
        c = (unsigned char) s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char) c;
        } else if (c >= 0x20 && c < 0x7f) {
            *p++ = (char) c;
        } else {
            *p++ = '\\';
            *p++ = 'x';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        }
    }
    if (s[i] != '\0') {
        memcpy(p, "...", 3);
        p += 3;
    }
    *p = '\0';
    return out;
}

/* conf_errfunc - libConfuse's error function: "file:line: message"
 *
 * libConfuse calls it for its own errors and for our validators'
 * cfg_error().  Only the first message of a parse is kept: it is the one
 * that stopped the parse.  The file name is the one the caller gave, not
 * libConfuse's ("[buf]" for a string). */

static void INA_PRINTF(2, 0)
conf_errfunc(cfg_t *cfg, const char *fmt, va_list ap)
{
    struct conf_parse *cp = conf_current;
    char msg[CONF_MSG_MAX];
    int line = cfg != NULL ? cfg->line : 0;

    if (cp == NULL || cp->failed)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (line > 0)
        err_set(cp->errbuf, cp->errlen, 0, "%s:%d: %s", cp->name, line, msg);
    else
        err_set(cp->errbuf, cp->errlen, 0, "%s: %s", cp->name, msg);
    cp->failed = 1;
    cp->errline = line;
}

/* conf_size_parse - parse a map size: decimal bytes, optional K/M/G/T
 *
 * The suffix is one letter, either case, and means a binary multiple
 * (K is 1024).  Nothing else is allowed: no blanks, sign, fraction or
 * "B".  Returns 0, EINVAL for junk or ERANGE if the size overflows. */

static int
conf_size_parse(const char *s, uint64_t *out)
{
    size_t ndigits = strspn(s, "0123456789");
    const char *suffix = s + ndigits;
    uint64_t mult = 1;
    uint64_t v = 0;
    unsigned digit;
    size_t i;

    if (ndigits == 0 || (suffix[0] != '\0' && suffix[1] != '\0'))
        return EINVAL;
    switch (suffix[0]) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mult = 1024ull;
        break;
    case 'm':
    case 'M':
        mult = 1024ull * 1024;
        break;
    case 'g':
    case 'G':
        mult = 1024ull * 1024 * 1024;
        break;
    case 't':
    case 'T':
        mult = 1024ull * 1024 * 1024 * 1024;
        break;
    default:
        return EINVAL;
    }
    for (i = 0; i < ndigits; i++) {
        digit = (unsigned) (s[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return ERANGE;
        v = v * 10 + digit;
    }
    if (v > UINT64_MAX / mult)
        return ERANGE;
    v *= mult;
#if SIZE_MAX < UINT64_MAX
    /* The map is one mapping: it must fit the address space. */
    if (v > SIZE_MAX)
        return ERANGE;
#endif
    *out = v;
    return 0;
}

/* conf_check_store - the store is a non-empty absolute path */

static int
conf_check_store(cfg_t *cfg, cfg_opt_t *opt)
{
    const char *s = cfg_opt_getnstr(opt, 0);
    char q[CONF_QUOTE_LEN];

    if (s == NULL || *s == '\0') {
        cfg_error(cfg, "store: the path is empty");
        return -1;
    }
    if (*s != '/') {
        cfg_error(cfg, "store: \"%s\" is not an absolute path",
                  conf_quote(s, q));
        return -1;
    }
    return 0;
}

/* conf_check_map_size - the map size parses and is not too small */

static int
conf_check_map_size(cfg_t *cfg, cfg_opt_t *opt)
{
    const char *s = cfg_opt_getnstr(opt, 0);
    char q[CONF_QUOTE_LEN];
    uint64_t v;
    int rc;

    if (s == NULL)
        s = "";
    rc = conf_size_parse(s, &v);
    if (rc == ERANGE) {
        cfg_error(cfg, "map_size: \"%s\" is too large", conf_quote(s, q));
        return -1;
    }
    if (rc != 0) {
        cfg_error(cfg,
                  "map_size: \"%s\" is not a size (bytes, or a number with "
                  "a K, M, G or T suffix)", conf_quote(s, q));
        return -1;
    }
    if (v < INA_MAP_SIZE_MIN) {
        cfg_error(cfg, "map_size: \"%s\" is below the minimum of %llu "
                  "bytes (%lluK)", conf_quote(s, q),
                  (unsigned long long) INA_MAP_SIZE_MIN,
                  (unsigned long long) (INA_MAP_SIZE_MIN / 1024));
        return -1;
    }
    return 0;
}

/* conf_check_flush_delay - the flush delay is 0 to 1000 ms */

static int
conf_check_flush_delay(cfg_t *cfg, cfg_opt_t *opt)
{
    long v = cfg_opt_getnint(opt, 0);

    if (v < 0 || v > INA_FLUSH_DELAY_MAX) {
        cfg_error(cfg, "flush_delay: %ld is out of range 0..%d "
                  "(milliseconds)", v, INA_FLUSH_DELAY_MAX);
        return -1;
    }
    return 0;
}

/* conf_check_group - the store's group exists */

static int
conf_check_group(cfg_t *cfg, cfg_opt_t *opt)
{
    const char *s = cfg_opt_getnstr(opt, 0);
    char q[CONF_QUOTE_LEN], buf[4096];
    struct group gr, *res = NULL;

    if (s == NULL || *s == '\0') {
        cfg_error(cfg, "group: the name is empty");
        return -1;
    }
    if (getgrnam_r(s, &gr, buf, sizeof(buf), &res) != 0 || res == NULL) {
        cfg_error(cfg, "group: \"%s\" is not a group of this system",
                  conf_quote(s, q));
        return -1;
    }
    return 0;
}

/* conf_check_monitors - every monitor parses; none twice; not too many
 *
 * libConfuse calls a list's validator after each value and again at the
 * closing brace, so the whole list is checked each time: the first call
 * that fails is the one for the offending value, on its line.  An empty
 * list calls nothing; conf_check_section() refuses it. */

static int
conf_check_monitors(cfg_t *cfg, cfg_opt_t *opt)
{
    struct ina_monitor m[INA_MAX_MONITORS];
    char msg[CONF_MSG_MAX];
    char q1[CONF_QUOTE_LEN];
    char q2[CONF_QUOTE_LEN];
    unsigned n = cfg_opt_size(opt);
    unsigned i;
    unsigned j;

    if (n > INA_MAX_MONITORS) {
        cfg_error(cfg, "monitors: more than %u monitors",
                  (unsigned) INA_MAX_MONITORS);
        return -1;
    }
    for (i = 0; i < n; i++) {
        const char *s = cfg_opt_getnstr(opt, i);

        if (ina_monitor_parse(s, &m[i], msg, sizeof msg) != 0) {
            cfg_error(cfg, "monitors: %s", msg);
            return -1;
        }
        for (j = 0; j < i; j++)
            if (m[j].width == m[i].width && m[j].history == m[i].history) {
                conf_quote(s, q1);
                conf_quote(cfg_opt_getnstr(opt, j), q2);
                cfg_error(cfg,
                          "monitors: \"%s\" is the same monitor as \"%s\"",
                          q1, q2);
                return -1;
            }
    }
    return 0;
}

/* conf_parse_prefix - read a prefix length as a plain decimal number
 *
 * This replaces libConfuse's strtol(..., 0), which would read "010" as
 * eight and "0x10" as sixteen: here both are refused, a leading zero as
 * in window.c's monitors.  An optional minus sign is read so that the
 * validator can say that a negative length is out of range. */

static int
conf_parse_prefix(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    const char *name = cfg_opt_name(opt);
    char q[CONF_QUOTE_LEN];
    const char *digits = value[0] == '-' ? value + 1 : value;
    size_t n = strspn(digits, "0123456789");
    long v = 0;
    size_t i;

    /* No digit, junk after them, or a leading zero (so "-0" too). */
    if (n == 0 || digits[n] != '\0'
        || (digits[0] == '0' && (n > 1 || digits != value))) {
        cfg_error(cfg, "%s: \"%s\" is not a prefix length", name,
                  conf_quote(value, q));
        return -1;
    }
    /* Four digits are out of range whatever they are; quote the text. */
    if (n > 3) {
        cfg_error(cfg, "%s: %s is out of range (0 to %d)", name,
                  conf_quote(value, q),
                  strcmp(name, "ipv4_prefixes") == 0 ? 32 : 128);
        return -1;
    }
    for (i = 0; i < n; i++)
        v = v * 10 + (digits[i] - '0');
    *(long *) result = digits != value ? -v : v;
    return 0;
}

/* conf_check_prefixes - lengths in range, none twice, not too many
 *
 * Called for ipv4_prefixes and ipv6_prefixes; the name tells the family.
 * As for monitors, the whole list is checked at every call. */

static int
conf_check_prefixes(cfg_t *cfg, cfg_opt_t *opt)
{
    const char *name = cfg_opt_name(opt);
    long max = strcmp(name, "ipv4_prefixes") == 0 ? 32 : 128;
    unsigned n = cfg_opt_size(opt);
    unsigned i;
    unsigned j;
    long v;

    if (n > INA_MAX_PREFIXES) {
        cfg_error(cfg, "%s: more than %u prefix lengths", name,
                  (unsigned) INA_MAX_PREFIXES);
        return -1;
    }
    for (i = 0; i < n; i++) {
        v = cfg_opt_getnint(opt, i);
        if (v < 0 || v > max) {
            cfg_error(cfg, "%s: %ld is out of range (0 to %ld)", name, v,
                      max);
            return -1;
        }
        for (j = 0; j < i; j++)
            if (cfg_opt_getnint(opt, j) == v) {
                cfg_error(cfg, "%s: %ld is listed twice", name, v);
                return -1;
            }
    }
    return 0;
}

/* conf_check_redis - "host:port" with a port 1..65535, or "unix:/path" */

static int
conf_check_redis(cfg_t *cfg, cfg_opt_t *opt)
{
    const char *s = cfg_opt_getnstr(opt, 0);
    char q[CONF_QUOTE_LEN];
    const char *colon;
    const char *p;
    unsigned long port = 0;

    if (s == NULL)
        s = "";
    if (strncmp(s, "unix:", 5) == 0) {
        if (s[5] == '/')
            return 0;
        cfg_error(cfg, "redis: \"%s\": the socket path must be absolute",
                  conf_quote(s, q));
        return -1;
    }
    colon = strrchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0')
        goto bad;
    for (p = s; p < colon; p++)
        if (*p == ' ' || *p == '\t' || (unsigned char) *p < 0x20)
            goto bad;
    for (p = colon + 1; *p >= '0' && *p <= '9'; p++)
        if (port <= 65535)
            port = port * 10 + (unsigned long) (*p - '0');
    if (*p != '\0' || port < 1 || port > 65535)
        goto bad;
    return 0;

bad:
    cfg_error(cfg, "redis: \"%s\" is not \"host:port\" or \"unix:/path\"",
              conf_quote(s, q));
    return -1;
}

/* conf_check_node - a node name is not empty and has no blank */

static int
conf_check_node(cfg_t *cfg, cfg_opt_t *opt)
{
    const char *s = cfg_opt_getnstr(opt, 0);
    char q[CONF_QUOTE_LEN];
    const char *p;

    if (s == NULL || *s == '\0') {
        cfg_error(cfg, "node: the name is empty");
        return -1;
    }
    if (strlen(s) > INA_NODE_MAX) {
        cfg_error(cfg, "node: \"%s\" is longer than %d bytes",
                  conf_quote(s, q), INA_NODE_MAX);
        return -1;
    }
    for (p = s; *p != '\0'; p++)
        if ((unsigned char) *p <= 0x20 || (unsigned char) *p == 0x7f) {
            cfg_error(cfg,
                      "node: \"%s\" contains a blank or a control character",
                      conf_quote(s, q));
            return -1;
        }
    return 0;
}

/* conf_check_interval - the sync interval is 10 to 60000 ms */

static int
conf_check_interval(cfg_t *cfg, cfg_opt_t *opt)
{
    long v = cfg_opt_getnint(opt, 0);

    if (v < INA_CLUSTER_INTERVAL_MIN || v > INA_CLUSTER_INTERVAL_MAX) {
        cfg_error(cfg, "interval: %ld is out of range %d..%d "
                  "(milliseconds)", v, INA_CLUSTER_INTERVAL_MIN,
                  INA_CLUSTER_INTERVAL_MAX);
        return -1;
    }
    return 0;
}

/* conf_check_password_file - the password file is an absolute path
 *
 * Only the path is checked here: the file is read by the sync agent,
 * which alone needs the password, so that no other program that loads
 * the configuration ever holds it. */

static int
conf_check_password_file(cfg_t *cfg, cfg_opt_t *opt)
{
    const char *s = cfg_opt_getnstr(opt, 0);
    char q[CONF_QUOTE_LEN];

    if (s == NULL || *s == '\0') {
        cfg_error(cfg, "password_file: the path is empty");
        return -1;
    }
    if (*s != '/') {
        cfg_error(cfg, "password_file: \"%s\" is not an absolute path",
                  conf_quote(s, q));
        return -1;
    }
    return 0;
}

/* conf_check_cluster - at most one cluster section
 *
 * Called as each cluster section closes, with cfg the inbound_audit
 * section and its line that of the closing brace. */

static int
conf_check_cluster(cfg_t *cfg, cfg_opt_t *opt)
{
    unsigned n = cfg_opt_size(opt);

    if (n > 1) {
        cfg_error(cfg, "more than one cluster section (the first ends at "
                  "line %d)", cfg_opt_getnsec(opt, 0)->line);
        return -1;
    }
    return 0;
}

/* conf_check_section - one inbound_audit section, with what it needs
 *
 * Called as each inbound_audit section closes, with cfg the root and its
 * line that of the closing brace.  Here go the rules no single value
 * breaks: at most one section, at least one monitor (an empty list calls
 * no validator), and at least one family counted. */

static int
conf_check_section(cfg_t *cfg, cfg_opt_t *opt)
{
    unsigned n = cfg_opt_size(opt);
    cfg_t *sec;

    if (n > 1) {
        cfg_error(cfg, "more than one inbound_audit section (the first ends "
                  "at line %d)", cfg_opt_getnsec(opt, 0)->line);
        return -1;
    }
    if ((sec = cfg_opt_getnsec(opt, n - 1)) == NULL)
        return -1;
    if (cfg_size(sec, "monitors") == 0) {
        cfg_error(cfg, "monitors: the list is empty (at least one monitor "
                  "is required)");
        return -1;
    }
    if (cfg_size(sec, "ipv4_prefixes") == 0
        && cfg_size(sec, "ipv6_prefixes") == 0) {
        cfg_error(cfg, "ipv4_prefixes and ipv6_prefixes are both empty: "
                  "nothing would be counted");
        return -1;
    }
    return 0;
}

/* conf_isword - a byte of an unquoted string, as libConfuse's lexer has it */

static int
conf_isword(char c)
{
    return c != '\0' && strchr(" #\"'\t\n\r={}()+,*", c) == NULL;
}

/* conf_blank - blank t[from .. to-1] out, keeping newlines; count them */

static void
conf_blank(char *t, size_t from, size_t to, int *line)
{
    size_t i;

    for (i = from; i < to; i++) {
        if (t[i] == '\n')
            (*line)++;
        else
            t[i] = ' ';
    }
}

/* conf_env_end - the end of a "${NAME}" at t[i], or i if there is none
 *
 * libConfuse's lexer takes "${" up to the next '}' as one token, inside
 * double quotes too, whatever lies between. */

static size_t
conf_env_end(const char *t, size_t len, size_t i)
{
    size_t j;

    if (i + 1 >= len || t[i] != '$' || t[i + 1] != '{')
        return i;
    for (j = i + 2; j < len && t[j] != '}'; j++)
        ;
    return j < len ? j + 1 : i;
}

/* conf_lines - the number of newlines in t[from .. to-1] */

static int
conf_lines(const char *t, size_t from, size_t to)
{
    int n = 0;

    for (; from < to; from++)
        if (t[from] == '\n')
            n++;
    return n;
}

/* conf_lex - blank the comments of a text out; find what libConfuse misses
 *
 * Walks t as libConfuse 3.3's lexer does (comments "#...", "//..." at the
 * start of a token, "/ * ... * /"; double- and single-quoted strings with
 * backslash escapes; "${NAME}"; unquoted strings, which may hold "//"
 * after their first byte) and overwrites each comment with blanks, keeping
 * its newlines.  Records the first NUL byte, unterminated string or
 * comment, and the innermost '{' left open at the end. */

static void
conf_lex(char *t, size_t len, struct conf_lexinfo *li)
{
    int opened[CONF_DEPTH_MAX];
    size_t depth = 0;
    size_t i = 0;
    size_t j;
    size_t end;
    int line = 1;
    int start;
    char quote;
    const char *nul;

    memset(li, 0, sizeof *li);
    /* libConfuse reads up to the first NUL byte: so do we, and say so. */
    if ((nul = memchr(t, '\0', len)) != NULL) {
        len = (size_t) (nul - t);
        li->err_line = 1 + conf_lines(t, 0, len);
        li->err_msg = "NUL byte in the file";
    }
    while (i < len) {
        char c = t[i];

        if (c == '\n') {
            line++;
            i++;
        } else if (c == '#' || (c == '/' && i + 1 < len && t[i + 1] == '/')) {
            for (j = i; j < len && t[j] != '\n'; j++)
                ;
            conf_blank(t, i, j, &line);
            i = j;
        } else if (c == '/' && i + 1 < len && t[i + 1] == '*') {
            start = line;
            for (j = i + 2; j + 1 < len; j++)
                if (t[j] == '*' && t[j + 1] == '/')
                    break;
            if (j + 1 >= len) {
                conf_blank(t, i, len, &line);
                if (li->err_line == 0) {
                    li->err_line = start;
                    li->err_msg = "unterminated comment";
                }
                break;
            }
            conf_blank(t, i, j + 2, &line);
            i = j + 2;
        } else if (c == '"' || c == '\'') {
            start = line;
            quote = c;
            for (j = i + 1; j < len && t[j] != quote; ) {
                if (t[j] == '\\' && j + 1 < len) {
                    if (t[j + 1] == '\n')
                        line++;
                    j += 2;
                } else if (quote == '"'
                           && (end = conf_env_end(t, len, j)) != j) {
                    line += conf_lines(t, j, end);
                    j = end;
                } else {
                    if (t[j] == '\n')
                        line++;
                    j++;
                }
            }
            if (j >= len) {
                if (li->err_line == 0) {
                    li->err_line = start;
                    li->err_msg = "unterminated string";
                }
                break;
            }
            i = j + 1;
        } else if ((end = conf_env_end(t, len, i)) != i) {
            line += conf_lines(t, i, end);
            i = end;
        } else if (conf_isword(c)) {
            while (i < len && conf_isword(t[i]))
                i++;
        } else {
            if (c == '{') {
                if (depth < CONF_DEPTH_MAX)
                    opened[depth] = line;
                depth++;
            } else if (c == '}' && depth > 0) {
                depth--;
            }
            i++;
        }
    }
    if (depth > 0)
        li->open_line = opened[(depth < CONF_DEPTH_MAX ? depth
                                                       : CONF_DEPTH_MAX) - 1];
}

/* conf_copy_prefixes - copy a prefix list, sorted coarsest first */

static size_t
conf_copy_prefixes(cfg_t *sec, const char *name, uint8_t *out)
{
    size_t n = cfg_size(sec, name);
    size_t i;
    size_t j;
    uint8_t v;

    for (i = 0; i < n; i++) {
        v = (uint8_t) cfg_getnint(sec, name, (unsigned) i);
        for (j = i; j > 0 && out[j - 1] > v; j--)
            out[j] = out[j - 1];
        out[j] = v;
    }
    return n;
}

/* conf_hostname - this host's name, for a cluster node without one */

static char *
conf_hostname(void)
{
    char host[256];

    if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
        return strdup("localhost");
    host[sizeof host - 1] = '\0';
    /* Linux host names are at most 64 bytes; others are cut there. */
    host[INA_NODE_MAX] = '\0';
    return strdup(host);
}

/* conf_build - copy a parsed and validated section into a new ina_conf */

static int
conf_build(cfg_t *sec, const char *name, struct ina_conf **confp,
           char *errbuf, size_t errlen)
{
    struct ina_conf *conf;
    cfg_t *cl;
    const char *node;
    size_t i;

    if ((conf = calloc(1, sizeof *conf)) == NULL)
        goto nomem;
    if ((conf->file = strdup(name)) == NULL
        || (conf->store = strdup(cfg_getstr(sec, "store"))) == NULL)
        goto nomem;
    if (conf_size_parse(cfg_getstr(sec, "map_size"), &conf->map_size) != 0)
        goto invalid;
    conf->flush_delay = (uint32_t) cfg_getint(sec, "flush_delay");
    if (cfg_size(sec, "group") > 0
        && (conf->group = strdup(cfg_getstr(sec, "group"))) == NULL)
        goto nomem;
    conf->nmonitors = cfg_size(sec, "monitors");
    for (i = 0; i < conf->nmonitors; i++)
        if (ina_monitor_parse(cfg_getnstr(sec, "monitors", (unsigned) i),
                              &conf->monitors[i], NULL, 0) != 0)
            goto invalid;
    conf->nprefixes4 = conf_copy_prefixes(sec, "ipv4_prefixes",
                                          conf->prefixes4);
    conf->nprefixes6 = conf_copy_prefixes(sec, "ipv6_prefixes",
                                          conf->prefixes6);
    if (cfg_size(sec, "cluster") > 0) {
        cl = cfg_getnsec(sec, "cluster", 0);
        conf->cluster = 1;
        if ((conf->cluster_redis = strdup(cfg_getstr(cl, "redis"))) == NULL)
            goto nomem;
        node = cfg_size(cl, "node") > 0 ? cfg_getstr(cl, "node") : NULL;
        conf->cluster_node = node != NULL ? strdup(node) : conf_hostname();
        if (conf->cluster_node == NULL)
            goto nomem;
        conf->cluster_interval = (uint32_t) cfg_getint(cl, "interval");
        if (cfg_size(cl, "password_file") > 0
            && (conf->cluster_password_file
                = strdup(cfg_getstr(cl, "password_file"))) == NULL)
            goto nomem;
    }
    *confp = conf;
    return 0;

nomem:
    ina_conf_free(conf);
    return err_set(errbuf, errlen, ENOMEM, "%s: out of memory", name);

invalid:
    /* The validators have passed every value: this cannot happen. */
    ina_conf_free(conf);
    return err_set(errbuf, errlen, INA_ECONF,
                   "%s: internal error: a validated value does not parse",
                   name);
}

/* conf_parse - parse a configuration text, validate it, build the struct
 *
 * t is modified (its comments are blanked out); len is its length, which
 * may hold NUL bytes for conf_lex() to refuse.  name is used in messages.
 * Serialised by conf_lock, since libConfuse's lexer has global state. */

static int
conf_parse(char *t, size_t len, const char *name, struct ina_conf **confp,
           char *errbuf, size_t errlen)
{
    struct conf_parse cp;
    struct conf_lexinfo li;
    cfg_t *cfg;
    size_t i;
    int rc;

    conf_lex(t, len, &li);
    memset(&cp, 0, sizeof cp);
    cp.name = name;
    cp.errbuf = errbuf;
    cp.errlen = errlen;

    pthread_mutex_lock(&conf_lock);
    conf_current = &cp;
    if ((cfg = cfg_init(conf_root_opts, CFGF_NONE)) == NULL) {
        rc = err_set(errbuf, errlen, ENOMEM, "%s: out of memory", name);
        goto done;
    }
    cfg_set_error_function(cfg, conf_errfunc);
    for (i = 0; i < sizeof conf_validators / sizeof conf_validators[0]; i++)
        cfg_set_validate_func(cfg, conf_validators[i].path,
                              conf_validators[i].fn);

    /* A lexical error the parse ran into reads better than libConfuse's
     * "premature end of file"; any error on an earlier line comes first. */
    rc = cfg_parse_buf(cfg, t);
    if (li.err_line > 0 && (rc == CFG_SUCCESS || !cp.failed
                            || cp.errline == 0
                            || li.err_line <= cp.errline)) {
        rc = err_set(errbuf, errlen, INA_ECONF, "%s:%d: %s", name,
                     li.err_line, li.err_msg);
    } else if (rc != CFG_SUCCESS) {
        if (!cp.failed)
            err_set(errbuf, errlen, 0, "%s: cannot parse", name);
        rc = INA_ECONF;
    } else if (li.open_line > 0) {
        rc = err_set(errbuf, errlen, INA_ECONF,
                     "%s:%d: this '{' is never closed (a '}' is missing "
                     "before the end of the file)", name, li.open_line);
    } else if (cfg_size(cfg, "inbound_audit") == 0) {
        rc = err_set(errbuf, errlen, INA_ECONF,
                     "%s: no inbound_audit section", name);
    } else {
        rc = conf_build(cfg_getnsec(cfg, "inbound_audit", 0), name, confp,
                        errbuf, errlen);
    }
    cfg_free(cfg);

done:
    conf_current = NULL;
    pthread_mutex_unlock(&conf_lock);
    return rc;
}

/* conf_read - read a whole file into a new NUL-terminated buffer
 *
 * The file is read here rather than by libConfuse so that an error is
 * the open's or read's errno, a directory is refused before flex (which
 * exits on a read error) sees it, and a NUL byte can be told from the end
 * of the text. */

static int
conf_read(const char *path, char **textp, size_t *lenp, char *errbuf,
          size_t errlen)
{
    struct stat sb;
    char *text = NULL;
    size_t len = 0;
    ssize_t n;
    int fd;
    int err;

    if ((fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC)) < 0) {
        err = errno;
        return err_set(errbuf, errlen, err, "%s: %s", path, strerror(err));
    }
    if (fstat(fd, &sb) != 0) {
        err = errno;
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        err = EISDIR;
        goto fail;
    }
    if ((text = malloc(CONF_FILE_MAX + 1)) == NULL) {
        err = ENOMEM;
        goto fail;
    }
    for (;;) {
        n = read(fd, text + len, CONF_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = errno;
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t) n;
        if (len > CONF_FILE_MAX) {
            close(fd);
            free(text);
            return err_set(errbuf, errlen, EFBIG,
                           "%s: larger than %d bytes", path, CONF_FILE_MAX);
        }
    }
    close(fd);
    text[len] = '\0';
    *textp = text;
    *lenp = len;
    return 0;

fail:
    close(fd);
    free(text);
    return err_set(errbuf, errlen, err, "%s: %s", path, strerror(err));
}

/* ina_conf_path - find the configuration file */

int
ina_conf_path(const char *explicit_path, char *buf, size_t len)
{
    const char *path = explicit_path;
    size_t n;

    if (path == NULL) {
        path = getenv("INBOUND_AUDIT_CONF");
        if (path == NULL || *path == '\0')
            path = CONF_DEFAULT_PATH;
    }
    n = strlen(path);
    if (n >= len) {
        if (len > 0)
            buf[0] = '\0';
        return ENAMETOOLONG;
    }
    memcpy(buf, path, n + 1);
    return 0;
}

/* ina_conf_load - load and validate a configuration file */

int
ina_conf_load(const char *path, struct ina_conf **confp, char *errbuf,
              size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    *confp = NULL;
    if ((rc = conf_read(path, &text, &len, errbuf, errlen)) != 0)
        return rc;
    rc = conf_parse(text, len, path, confp, errbuf, errlen);
    free(text);
    return rc;
}

/* ina_conf_parse_text - load a configuration from a string */

int
ina_conf_parse_text(const char *text, const char *name,
                    struct ina_conf **confp, char *errbuf, size_t errlen)
{
    char *copy;
    size_t len = strlen(text);
    int rc;

    *confp = NULL;
    if ((copy = malloc(len + 1)) == NULL)
        return err_set(errbuf, errlen, ENOMEM, "%s: out of memory", name);
    memcpy(copy, text, len + 1);
    rc = conf_parse(copy, len, name, confp, errbuf, errlen);
    free(copy);
    return rc;
}

/* ina_conf_default_text - the built-in sample configuration */

const char *
ina_conf_default_text(void)
{
    return conf_default_text;
}

/* ina_conf_set_store - replace the store directory of a configuration */

int
ina_conf_set_store(struct ina_conf *conf, const char *path)
{
    char *copy;

    if (path[0] != '/')
        return EINVAL;
    if ((copy = strdup(path)) == NULL)
        return ENOMEM;
    free(conf->store);
    conf->store = copy;
    return 0;
}

/* ina_conf_find_monitor - look up a monitor by name
 *
 * Both errors list the configured monitors, since that is what the
 * caller needs to fix the name. */

int
ina_conf_find_monitor(const struct ina_conf *conf, const char *name,
                      const struct ina_monitor **mon, char *errbuf,
                      size_t errlen)
{
    char list[INA_MAX_MONITORS * INA_MONITOR_NAMELEN + 1];
    char msg[CONF_MSG_MAX];
    struct ina_monitor m;
    size_t off = 0;
    size_t i;
    int rc;

    /* The canonical name, as policies mostly write it, needs no parse. */
    for (i = 0; i < conf->nmonitors; i++)
        if (strcmp(conf->monitors[i].name, name) == 0) {
            *mon = &conf->monitors[i];
            return 0;
        }
    rc = ina_monitor_parse(name, &m, msg, sizeof msg);
    if (rc == 0)
        for (i = 0; i < conf->nmonitors; i++)
            if (conf->monitors[i].width == m.width
                && conf->monitors[i].history == m.history) {
                *mon = &conf->monitors[i];
                return 0;
            }
    if (errbuf == NULL || errlen == 0)
        return rc != 0 ? INA_EBADMONITOR : INA_ENOMONITOR;

    /* Each name is shorter than INA_MONITOR_NAMELEN: they all fit. */
    list[0] = '\0';
    for (i = 0; i < conf->nmonitors; i++)
        off += (size_t) snprintf(list + off, sizeof list - off, "%s%s",
                                 i > 0 ? " " : "", conf->monitors[i].name);
    if (rc != 0)
        return err_set(errbuf, errlen, INA_EBADMONITOR,
                       "%s (configured: %s)", msg, list);
    return err_set(errbuf, errlen, INA_ENOMONITOR,
                   "monitor \"%s\" is not configured (configured: %s)",
                   m.name, list);
}

/* ina_conf_free - free a configuration; NULL is allowed */

void
ina_conf_free(struct ina_conf *conf)
{
    if (conf == NULL)
        return;
    free(conf->file);
    free(conf->store);
    free(conf->group);
    free(conf->cluster_redis);
    free(conf->cluster_node);
    free(conf->cluster_password_file);
    free(conf);
}

/* conf_dupstr - strdup that keeps NULL; sets *failed on ENOMEM */

static char *
conf_dupstr(const char *s, int *failed)
{
    char *d;

    if (s == NULL)
        return NULL;
    if ((d = strdup(s)) == NULL)
        *failed = 1;
    return d;
}

/* ina_conf_copy - a deep copy of a configuration
 *
 * The one place that knows which fields own memory: a field added to
 * struct ina_conf is copied here and freed in ina_conf_free(). */

int
ina_conf_copy(const struct ina_conf *conf, struct ina_conf **copyp)
{
    struct ina_conf *c;
    int failed = 0;

    *copyp = NULL;
    if ((c = malloc(sizeof(*c))) == NULL)
        return ENOMEM;
    *c = *conf;
    c->file = conf_dupstr(conf->file, &failed);
    c->store = conf_dupstr(conf->store, &failed);
    c->group = conf_dupstr(conf->group, &failed);
    c->cluster_redis = conf_dupstr(conf->cluster_redis, &failed);
    c->cluster_node = conf_dupstr(conf->cluster_node, &failed);
    c->cluster_password_file = conf_dupstr(conf->cluster_password_file,
                                           &failed);
    if (failed) {
        ina_conf_free(c);
        return ENOMEM;
    }
    *copyp = c;
    return 0;
}
