/* auditctl.c - the operator's tool of inbound-audit
 *
 * auditctl shows the configuration, reads counts, lists the top blocks,
 * watches them live, injects events by hand, clears and expires counters,
 * shows store statistics, and dumps and loads the whole store as JSON
 * lines.  Each subcommand is a cmd_* handler found through one table; a
 * handler parses its own options and returns the exit status (0 ok, 1
 * error), and every usage error exits 2 through cmd_usage().
 *
 * Read-only subcommands open the store with INA_STORE_RDONLY: they take a
 * reader slot and never the writer lock, so they never block the MTA's
 * workers.  Tables are for people; --json prints one JSON document whose
 * schema auditctl(1) documents and which stays stable.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curses.h>
#include <jansson.h>

#include "inaudit.h"

/* Rows of `top` by default, and its ceiling. */
#define TOP_DEF 10
#define TOP_MAX 100000
/* Seconds between refreshes of `watch`, by default and at most. */
#define WATCH_DEF 1
#define WATCH_MAX 3600
/* Version of the dump format (the "format" of its header line). */
#define DUMP_FORMAT 1
/* Longest line `load` accepts. */
#define LOAD_LINE_MAX 4096

/* What every handler gets: the global options and, once loaded, the
 * configuration. */
struct ctl {
    const char *conf_path;      /* -c, or NULL */
    int json;                   /* --json */
    const struct command *cmd;  /* the subcommand running */
    struct ina_conf *conf;
};

struct command {
    const char *name;           /* one or two words: "stats", "show ip" */
    int (*fn)(struct ctl *, int, char **);
    const char *synopsis;
};

static int cmd_show_config(struct ctl *, int, char **);
static int cmd_show_monitors(struct ctl *, int, char **);
static int cmd_show_ip(struct ctl *, int, char **);
static int cmd_query(struct ctl *, int, char **);
static int cmd_sessions(struct ctl *, int, char **);
static int cmd_top(struct ctl *, int, char **);
static int cmd_watch(struct ctl *, int, char **);
static int cmd_record(struct ctl *, int, char **);
static int cmd_session(struct ctl *, int, char **);
static int cmd_clear(struct ctl *, int, char **);
static int cmd_expire(struct ctl *, int, char **);
static int cmd_stats(struct ctl *, int, char **);
static int cmd_dump(struct ctl *, int, char **);
static int cmd_load(struct ctl *, int, char **);

static const struct command commands[] = {
    {"show config", cmd_show_config, "show config"},
    {"show monitors", cmd_show_monitors, "show monitors"},
    {"show ip", cmd_show_ip, "show ip CIDR"},
    {"query", cmd_query,
     "query MONITOR CIDR [--event E] [--start A] [--end B] [--cluster]"},
    {"sessions", cmd_sessions, "sessions CIDR [--service S]"},
    {"top", cmd_top,
     "top MONITOR [--event E] [--prefix /N] [--start A] [--end B] [-n K] "
     "[-4|-6]"},
    {"watch", cmd_watch,
     "watch MONITOR [--event E] [--prefix /N] [--start A] [--end B] "
     "[-n K] [-4|-6] [-i SECONDS]"},
    {"record", cmd_record, "record EVENT ADDR [N]"},
    {"session", cmd_session, "session open|close ADDR [--service S]"},
    {"clear", cmd_clear, "clear CIDR | clear --all"},
    {"expire", cmd_expire, "expire"},
    {"stats", cmd_stats, "stats"},
    {"dump", cmd_dump, "dump"},
    {"load", cmd_load, "load [--merge] [FILE]"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The options every subcommand takes besides its own. */
#define COMMON_SHORT "jh"
#define COMMON_LONG                                                          \
    {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'},     \
    {                                                                        \
        NULL, 0, NULL, 0                                                     \
    }

static const char *const event_plural[INA_NEVENTS] = {
    "connections", "receptions", "rejections"};
static const char *const event_title[INA_NEVENTS] = {
    "Connections", "Receptions", "Rejections"};

/* ---------------------------------------------------------------------
 * Messages and usage
 * ------------------------------------------------------------------- */

/* Messages carry the fixed name "auditctl" rather than err(3)'s
 * program_invocation_short_name: the uninstalled binary runs through a
 * libtool wrapper under another name, and the tests compare messages
 * exactly. */

/* vwarnmsg - print "auditctl: CMD: message" on stderr */

static void INA_PRINTF(2, 0)
vwarnmsg(const struct ctl *ctl, const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs("auditctl: ", stderr);
    if (ctl != NULL && ctl->cmd != NULL)
        fprintf(stderr, "%s: ", ctl->cmd->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

/* warnmsg - report an error of the running subcommand */

static void INA_PRINTF(2, 3)
warnmsg(const struct ctl *ctl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vwarnmsg(ctl, fmt, ap);
    va_end(ap);
}

/* fail - report an error and return the error exit status */

static int INA_PRINTF(2, 3)
fail(const struct ctl *ctl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vwarnmsg(ctl, fmt, ap);
    va_end(ap);
    return 1;
}

/* die - report an error the program cannot go on from, and exit 1 */

static void INA_PRINTF(2, 3) __attribute__((__noreturn__))
die(const struct ctl *ctl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vwarnmsg(ctl, fmt, ap);
    va_end(ap);
    exit(1);
}

/* usage - print the synopsis of every subcommand and exit
 *
 * To stderr with status 2 after a usage error; to stdout with status 0
 * when asked for with -h. */

static void __attribute__((__noreturn__))
usage(FILE *fp, int status)
{
    size_t i;

    fprintf(fp, "usage: auditctl [-c CONF] [--json] SUBCOMMAND ...\n"
                "       auditctl -V | -h\n"
                "subcommands:\n");
    for (i = 0; i < NCOMMANDS; i++)
        fprintf(fp, "  %s\n", commands[i].synopsis);
    exit(status);
}

/* cmd_usage - a usage error of a subcommand: say what, show its
 * synopsis, exit 2 */

static void INA_PRINTF(2, 3) __attribute__((__noreturn__))
cmd_usage(const struct ctl *ctl, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vwarnmsg(ctl, fmt, ap);
    va_end(ap);
    fprintf(stderr, "usage: auditctl [-c CONF] [--json] %s\n",
            ctl->cmd->synopsis);
    exit(2);
}

/* version - print the version, as mdb_stat -V does */

static void __attribute__((__noreturn__))
version(void)
{
    printf("%s\n", INA_VERSION_STRING);
    exit(fflush(stdout) == 0 ? 0 : 1);
}

/* xmalloc, xrealloc, xstrdup - allocate or exit */

static void *
xrealloc(void *p, size_t n)
{
    if ((p = realloc(p, n == 0 ? 1 : n)) == NULL)
        die(NULL, "out of memory");
    return p;
}

static void *
xmalloc(size_t n)
{
    return xrealloc(NULL, n);
}

static char *
xstrdup(const char *s)
{
    char *p = strdup(s);

    if (p == NULL)
        die(NULL, "out of memory");
    return p;
}

/* ---------------------------------------------------------------------
 * Argument parsing
 * ------------------------------------------------------------------- */

/* opt_next - the next option of a subcommand
 *
 * Handles the options every subcommand has (--json, --help) and turns
 * getopt's complaints into usage errors.  shortopts starts with ':' so
 * that a missing value is told apart from an unknown option. */

static int
opt_next(struct ctl *ctl, int argc, char **argv, const char *shortopts,
         const struct option *longopts)
{
    int c;

    opterr = 0;
    for (;;) {
        c = getopt_long(argc, argv, shortopts, longopts, NULL);
        switch (c) {
        case 'j':
            ctl->json = 1;
            continue;
        case 'h':
            printf("usage: auditctl [-c CONF] [--json] %s\n",
                   ctl->cmd->synopsis);
            exit(fflush(stdout) == 0 ? 0 : 1);
        case ':':
            cmd_usage(ctl, "option %s needs a value", argv[optind - 1]);
        case '?':
            if (optopt != 0)
                cmd_usage(ctl, "unknown option -%c", optopt);
            cmd_usage(ctl, "unknown option %s", argv[optind - 1]);
        default:
            return c;
        }
    }
}

/* opt_start - prepare getopt for a subcommand's argument vector */

static void
opt_start(void)
{
    /* 0, not 1: glibc then forgets the state of the previous scan. */
    optind = 0;
}

/* parse_u64 - a decimal number without sign, 0 .. max
 *
 * Returns 0, or -1 if text is not such a number. */

static int
parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = (uint64_t) v;
    return 0;
}

/* arg_window - a window index of --start or --end */

static uint32_t
arg_window(const struct ctl *ctl, const char *opt, const char *text)
{
    uint64_t v;

    if (parse_u64(text, UINT32_MAX, &v) != 0)
        cmd_usage(ctl, "%s \"%s\": not a window index (0, 1, ...)", opt,
                  text);
    return (uint32_t) v;
}

/* arg_event - an event name */

static enum ina_event
arg_event(const struct ctl *ctl, const char *text)
{
    enum ina_event ev;

    if (ina_event_parse(text, &ev) != 0)
        cmd_usage(ctl, "event \"%s\": not an event (connections, "
                       "receptions, rejections)", text);
    return ev;
}

/* arg_cidr - a block or address; a bare "/mask" is refused
 *
 * host set: the text must be an address, without a mask shorter than
 * its family's. */

static struct ina_cidr
arg_cidr(const struct ctl *ctl, const char *text, int host)
{
    struct ina_cidr c;
    char msg[256];

    if (ina_cidr_parse(text, strlen(text), &c, msg, sizeof(msg)) != 0)
        cmd_usage(ctl, "%s", msg);
    if (c.family == 0)
        cmd_usage(ctl, "\"%s\": a bare mask needs an address here", text);
    if (host && c.plen != (c.family == 4 ? 32 : 128))
        cmd_usage(ctl, "\"%s\": an address is needed here, not a block",
                  text);
    return c;
}

/* arg_monitor - a monitor name "W,N"; whether it is configured is
 * checked later, against the store's configuration */

static const char *
arg_monitor(const struct ctl *ctl, const char *text)
{
    struct ina_monitor m;
    char msg[256];

    if (ina_monitor_parse(text, &m, msg, sizeof(msg)) != 0)
        cmd_usage(ctl, "%s", msg);
    return text;
}

/* arg_service - a service name of the session gauge */

static const char *
arg_service(const struct ctl *ctl, const char *text)
{
    size_t n = strlen(text);

    if (n == 0 || n > INA_SERVICE_MAX)
        cmd_usage(ctl, "service \"%s\": must be 1 to %d characters", text,
                  INA_SERVICE_MAX);
    return text;
}

/* ---------------------------------------------------------------------
 * The configuration and the store
 * ------------------------------------------------------------------- */

/* ctl_log - the library's operational messages, on stderr */

static void
ctl_log(void *arg, int priority, const char *msg)
{
    (void) arg;
    (void) priority;
    fprintf(stderr, "auditctl: %s\n", msg);
}

/* ctl_conf - load the configuration once; exit 1 if it cannot be */

static const struct ina_conf *
ctl_conf(struct ctl *ctl)
{
    char path[4096], msg[1024];

    if (ctl->conf != NULL)
        return ctl->conf;
    if (ina_conf_path(ctl->conf_path, path, sizeof(path)) != 0)
        die(ctl, "%s: path too long", ctl->conf_path);
    if (ina_conf_load(path, &ctl->conf, msg, sizeof(msg)) != 0)
        die(ctl, "%s", msg);
    return ctl->conf;
}

/* ctl_open - open the store of the configuration; exit 1 if it cannot
 * be opened */

static struct ina_store *
ctl_open(struct ctl *ctl, unsigned flags)
{
    struct ina_store *st;
    char msg[1024];

    if (ina_store_open(ctl_conf(ctl), flags, &st, msg, sizeof(msg)) != 0)
        die(ctl, "%s", msg);
    ina_store_set_log(st, ctl_log, NULL);
    return st;
}

/* ---------------------------------------------------------------------
 * Output: text helpers, tables, JSON
 * ------------------------------------------------------------------- */

/* fmt_utc - a Unix time as ISO 8601 UTC */

static char *
fmt_utc(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t) t;
    struct tm tm;

    if (gmtime_r(&tt, &tm) == NULL
        || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, len, "%lld", (long long) t);
    return buf;
}

/* fmt_size - a byte count for people: "1.0 GiB" */

static char *
fmt_size(uint64_t n, char *buf, size_t len)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double) n;
    size_t u = 0;

    if (n < 1024) {
        snprintf(buf, len, "%llu B", (unsigned long long) n);
        return buf;
    }
    v /= 1024.0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, len, "%.1f %s", v, unit[u]);
    return buf;
}

/* fmt_span - a duration for people: "11m", "1h5m", "1d1h" */

static char *
fmt_span(uint64_t s, char *buf, size_t len)
{
    static const struct {
        uint64_t secs;
        char unit;
    } part[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    size_t i, off = 0;

    buf[0] = '\0';
    for (i = 0; i < 4 && off < len; i++)
        if (s >= part[i].secs) {
            off += (size_t) snprintf(buf + off, len - off, "%llu%c",
                                     (unsigned long long) (s / part[i].secs),
                                     part[i].unit);
            s %= part[i].secs;
        }
    if (buf[0] == '\0')
        snprintf(buf, len, "0s");
    return buf;
}

/* fmt_share - count as a share of total, in percent with one decimal,
 * rounded half up: "53.3%" */

static char *
fmt_share(uint64_t count, uint64_t total, char *buf, size_t len)
{
    long double x;
    uint64_t pm;

    if (total == 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    x = (long double) count * 1000.0L / (long double) total;
    pm = (uint64_t) (x + 0.5L);
    snprintf(buf, len, "%llu.%llu%%", (unsigned long long) (pm / 10),
             (unsigned long long) (pm % 10));
    return buf;
}

/* fmt_u64 - a number as text, in a buffer of the caller */

static char *
fmt_u64(uint64_t n, char *buf, size_t len)
{
    snprintf(buf, len, "%llu", (unsigned long long) n);
    return buf;
}

/* An aligned text table: rows of cells, printed with each column as
 * wide as its widest cell.  align has one letter per column, 'l' or
 * 'r'. */
struct table {
    const char *align;
    size_t ncols;
    char **cell;
    size_t nrows, cap;
};

/* table_init - an empty table of strlen(align) columns */

static void
table_init(struct table *t, const char *align)
{
    memset(t, 0, sizeof(*t));
    t->align = align;
    t->ncols = strlen(align);
}

/* table_rowv - append a row of ncols strings (copied) */

static void
table_rowv(struct table *t, const char *const *cells)
{
    size_t i;

    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cell = xrealloc(t->cell, t->cap * t->ncols * sizeof(char *));
    }
    for (i = 0; i < t->ncols; i++)
        t->cell[t->nrows * t->ncols + i] = xstrdup(cells[i]);
    t->nrows++;
}

/* table_row - append a row given as ncols arguments */

static void
table_row(struct table *t, ...)
{
    const char *cells[32];
    va_list ap;
    size_t i;

    va_start(ap, t);
    for (i = 0; i < t->ncols && i < 32; i++)
        cells[i] = va_arg(ap, const char *);
    va_end(ap);
    table_rowv(t, cells);
}

/* table_print - print the table with two blanks between columns */

static void
table_print(const struct table *t, FILE *fp)
{
    size_t width[32], r, i, n;
    const char *s;

    for (i = 0; i < t->ncols && i < 32; i++) {
        width[i] = 0;
        for (r = 0; r < t->nrows; r++) {
            n = strlen(t->cell[r * t->ncols + i]);
            if (n > width[i])
                width[i] = n;
        }
    }
    for (r = 0; r < t->nrows; r++) {
        for (i = 0; i < t->ncols && i < 32; i++) {
            s = t->cell[r * t->ncols + i];
            if (i > 0)
                fputs("  ", fp);
            if (t->align[i] == 'r')
                fprintf(fp, "%*s", (int) width[i], s);
            else if (i + 1 < t->ncols)
                fprintf(fp, "%-*s", (int) width[i], s);
            else
                fputs(s, fp);
        }
        fputc('\n', fp);
    }
}

/* table_free - free the cells */

static void
table_free(struct table *t)
{
    size_t i;

    for (i = 0; i < t->nrows * t->ncols; i++)
        free(t->cell[i]);
    free(t->cell);
    memset(t, 0, sizeof(*t));
}

/* jcheck - a new JSON value, or exit: jansson returns NULL only when out
 * of memory */

static json_t *
jcheck(json_t *v)
{
    if (v == NULL)
        die(NULL, "out of memory");
    return v;
}

/* jnum - a count as a JSON integer
 *
 * JSON integers of jansson are signed 64-bit; counts past INT64_MAX
 * (9.2e18 events) do not occur in practice and are shown as that. */

static json_t *
jnum(uint64_t v)
{
    return jcheck(json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t) v));
}

/* jstr - a string as JSON */

static json_t *
jstr(const char *s)
{
    return jcheck(json_string(s));
}

/* jset - set a member of an object, taking the reference of v */

static void
jset(json_t *obj, const char *key, json_t *v)
{
    if (json_object_set_new(obj, key, jcheck(v)) != 0)
        die(NULL, "out of memory");
}

/* jpush - append to an array, taking the reference of v */

static void
jpush(json_t *arr, json_t *v)
{
    if (json_array_append_new(arr, jcheck(v)) != 0)
        die(NULL, "out of memory");
}

/* jprint - print a JSON document on stdout and free it */

static void
jprint(json_t *doc)
{
    json_dumpf(doc, stdout,
               JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    fputc('\n', stdout);
    json_decref(doc);
}

/* jmonitor - a monitor's description at time now */

static json_t *
jmonitor(const struct ina_monitor *m, int64_t now)
{
    json_t *o = jcheck(json_object());
    int64_t start = ina_window_start(m, now, 0);
    char when[32];

    jset(o, "monitor", jstr(m->name));
    jset(o, "width", jnum(m->width));
    jset(o, "history", jnum(m->history));
    jset(o, "span", jnum((uint64_t) m->width * (m->history + 1u)));
    jset(o, "current_window_start", json_integer(start));
    jset(o, "current_window_start_utc", jstr(fmt_utc(start, when,
                                                      sizeof(when))));
    return o;
}

/* clock_now - the current Unix time (faketime(1) applies) */

static int64_t
clock_now(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (int64_t) time(NULL);
    return (int64_t) ts.tv_sec;
}

/* clock_now_ms - the current Unix time in milliseconds */

static int64_t
clock_now_ms(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (int64_t) time(NULL) * 1000;
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* finest - the finest configured mask of a family, 0 if none */

static unsigned
finest(const struct ina_conf *conf, int family)
{
    if (family == 4)
        return conf->nprefixes4 ? conf->prefixes4[conf->nprefixes4 - 1] : 0;
    return conf->nprefixes6 ? conf->prefixes6[conf->nprefixes6 - 1] : 0;
}

/* ---------------------------------------------------------------------
 * show config, show monitors
 * ------------------------------------------------------------------- */

/* no_args - parse the options of a subcommand that takes no argument */

static void
no_args(struct ctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {COMMON_LONG};

    opt_start();
    while (opt_next(ctl, argc, argv, ":" COMMON_SHORT, longopts) != -1)
        cmd_usage(ctl, "unexpected option");
    if (optind < argc)
        cmd_usage(ctl, "unexpected argument \"%s\"", argv[optind]);
}

/* monitors_table - print the monitors and their current windows */

static void
monitors_table(const struct ina_conf *conf, int64_t now)
{
    struct table t;
    char w[24], h[24], span[32], when[32];
    const struct ina_monitor *m;
    size_t i;

    table_init(&t, "lrrll");
    table_row(&t, "MONITOR", "WIDTH", "HISTORY", "SPAN",
              "CURRENT WINDOW START");
    for (i = 0; i < conf->nmonitors; i++) {
        m = &conf->monitors[i];
        table_row(&t, m->name, fmt_u64(m->width, w, sizeof(w)),
                  fmt_u64(m->history, h, sizeof(h)),
                  fmt_span((uint64_t) m->width * (m->history + 1u), span,
                           sizeof(span)),
                  fmt_utc(ina_window_start(m, now, 0), when, sizeof(when)));
    }
    table_print(&t, stdout);
    table_free(&t);
}

/* jmonitors - the monitors as a JSON array */

static json_t *
jmonitors(const struct ina_conf *conf, int64_t now)
{
    json_t *a = jcheck(json_array());
    size_t i;

    for (i = 0; i < conf->nmonitors; i++)
        jpush(a, jmonitor(&conf->monitors[i], now));
    return a;
}

/* prefixes_text - "/16 /24 /32", or a note when the family is off */

static char *
prefixes_text(const uint8_t *p, size_t n, char *buf, size_t len)
{
    size_t i, off = 0;

    if (n == 0) {
        snprintf(buf, len, "(none: not counted)");
        return buf;
    }
    buf[0] = '\0';
    for (i = 0; i < n && off < len; i++)
        off += (size_t) snprintf(buf + off, len - off, "%s/%u",
                                 i ? " " : "", (unsigned) p[i]);
    return buf;
}

/* jprefixes - a prefix list as a JSON array */

static json_t *
jprefixes(const uint8_t *p, size_t n)
{
    json_t *a = jcheck(json_array());
    size_t i;

    for (i = 0; i < n; i++)
        jpush(a, jnum(p[i]));
    return a;
}

/* cmd_show_config - the effective configuration */

static int
cmd_show_config(struct ctl *ctl, int argc, char **argv)
{
    const struct ina_conf *conf;
    struct table t;
    char size[64], buf[256], list[256];
    int64_t now = clock_now();
    json_t *o, *cl;

    no_args(ctl, argc, argv);
    conf = ctl_conf(ctl);
    if (ctl->json) {
        o = jcheck(json_object());
        jset(o, "file", jstr(conf->file ? conf->file : ""));
        jset(o, "store", jstr(conf->store));
        jset(o, "map_size", jnum(conf->map_size));
        jset(o, "flush_delay", jnum(conf->flush_delay));
        jset(o, "monitors", jmonitors(conf, now));
        jset(o, "ipv4_prefixes", jprefixes(conf->prefixes4,
                                           conf->nprefixes4));
        jset(o, "ipv6_prefixes", jprefixes(conf->prefixes6,
                                           conf->nprefixes6));
        if (conf->cluster) {
            cl = jcheck(json_object());
            jset(cl, "redis", jstr(conf->cluster_redis
                                       ? conf->cluster_redis : ""));
            jset(cl, "node", jstr(conf->cluster_node
                                      ? conf->cluster_node : ""));
            jset(cl, "interval", jnum(conf->cluster_interval));
            /* The path only: the password is read by inaudit-sync
             * alone, and never shown. */
            jset(cl, "password_file",
                 conf->cluster_password_file
                     ? jstr(conf->cluster_password_file) : json_null());
            jset(o, "cluster", cl);
        } else {
            jset(o, "cluster", json_null());
        }
        jprint(o);
        return 0;
    }
    table_init(&t, "ll");
    table_row(&t, "file", conf->file ? conf->file : "");
    table_row(&t, "store", conf->store);
    snprintf(buf, sizeof(buf), "%llu (%s)",
             (unsigned long long) conf->map_size,
             fmt_size(conf->map_size, size, sizeof(size)));
    table_row(&t, "map_size", buf);
    if (conf->flush_delay > 0)
        snprintf(buf, sizeof(buf), "%u ms", (unsigned) conf->flush_delay);
    else
        snprintf(buf, sizeof(buf), "0 (every record is applied at once)");
    table_row(&t, "flush_delay", buf);
    table_row(&t, "ipv4_prefixes", prefixes_text(conf->prefixes4,
                                                 conf->nprefixes4, list,
                                                 sizeof(list)));
    table_row(&t, "ipv6_prefixes", prefixes_text(conf->prefixes6,
                                                 conf->nprefixes6, list,
                                                 sizeof(list)));
    if (conf->cluster) {
        snprintf(buf, sizeof(buf), "redis %s, node %s, interval %u ms%s%s",
                 conf->cluster_redis ? conf->cluster_redis : "?",
                 conf->cluster_node ? conf->cluster_node : "?",
                 (unsigned) conf->cluster_interval,
                 conf->cluster_password_file ? ", password from " : "",
                 conf->cluster_password_file ? conf->cluster_password_file
                                             : "");
        table_row(&t, "cluster", buf);
    } else {
        table_row(&t, "cluster", "not configured");
    }
    table_print(&t, stdout);
    table_free(&t);
    putchar('\n');
    monitors_table(conf, now);
    return 0;
}

/* cmd_show_monitors - the monitors, their spans and current windows */

static int
cmd_show_monitors(struct ctl *ctl, int argc, char **argv)
{
    const struct ina_conf *conf;
    int64_t now = clock_now();
    json_t *o;

    no_args(ctl, argc, argv);
    conf = ctl_conf(ctl);
    if (ctl->json) {
        o = jcheck(json_object());
        jset(o, "monitors", jmonitors(conf, now));
        jprint(o);
        return 0;
    }
    monitors_table(conf, now);
    return 0;
}

/* ---------------------------------------------------------------------
 * show ip, query, sessions
 * ------------------------------------------------------------------- */

/* cmd_show_ip - every monitor, window and event of a block, as
 * Momentum's "inbound_audit show ip" prints them */

static int
cmd_show_ip(struct ctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {COMMON_LONG};
    const struct ina_conf *conf;
    const struct ina_monitor *m;
    struct ina_store *st;
    struct ina_cidr block;
    uint64_t n;
    uint32_t w;
    size_t i, e;
    int64_t now;
    json_t *doc = NULL, *jm = NULL, *jw, *wins = NULL;
    char text[INA_CIDR_STRLEN], msg[512];
    int rc = 0;

    opt_start();
    while (opt_next(ctl, argc, argv, ":" COMMON_SHORT, longopts) != -1)
        ;
    if (argc - optind != 1)
        cmd_usage(ctl, argc - optind < 1 ? "missing CIDR"
                                         : "too many arguments");
    block = arg_cidr(ctl, argv[optind], 0);
    st = ctl_open(ctl, INA_STORE_RDONLY);
    conf = ina_store_conf(st);
    now = ina_store_now(st);
    ina_cidr_format(&block, text, sizeof(text));
    if (ctl->json) {
        doc = jcheck(json_object());
        jset(doc, "cidr", jstr(text));
        jm = jcheck(json_array());
    }
    for (i = 0; i < conf->nmonitors && rc == 0; i++) {
        m = &conf->monitors[i];
        if (ctl->json) {
            json_t *o = jcheck(json_object());

            jset(o, "monitor", jstr(m->name));
            jset(o, "width", jnum(m->width));
            jset(o, "history", jnum(m->history));
            wins = jcheck(json_array());
            for (w = 0; w <= m->history && rc == 0; w++) {
                jw = jcheck(json_object());
                jset(jw, "index", jnum(w));
                jset(jw, "start", json_integer(ina_window_start(m, now, w)));
                for (e = 0; e < INA_NEVENTS && rc == 0; e++) {
                    rc = ina_query(st, (enum ina_event) e, m->name, &block,
                                   w, w, 0, &n, msg, sizeof(msg));
                    jset(jw, event_plural[e], jnum(n));
                }
                jpush(wins, jw);
            }
            jset(o, "windows", wins);
            jpush(jm, o);
            continue;
        }
        for (e = 0; e < INA_NEVENTS && rc == 0; e++)
            for (w = 0; w <= m->history && rc == 0; w++) {
                rc = ina_query(st, (enum ina_event) e, m->name, &block, w, w,
                               0, &n, msg, sizeof(msg));
                if (rc == 0)
                    printf("%s %u/%u: %llu\n", event_title[e],
                           (unsigned) m->width, (unsigned) w,
                           (unsigned long long) n);
            }
    }
    ina_store_close(st);
    if (rc != 0) {
        json_decref(jm);
        json_decref(doc);
        return fail(ctl, "%s", msg);
    }
    if (ctl->json) {
        jset(doc, "monitors", jm);
        jprint(doc);
    }
    return 0;
}

/* cmd_query - one count, as msys.audit.connections() answers it */

static int
cmd_query(struct ctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"event", required_argument, NULL, 'e'},
        {"start", required_argument, NULL, 'S'},
        {"end", required_argument, NULL, 'E'},
        {"cluster", no_argument, NULL, 'C'},
        COMMON_LONG};
    enum ina_event ev = INA_CONNECTION;
    struct ina_store *st;
    struct ina_cidr block;
    const char *monitor;
    uint32_t startv = 0, endv = 0;
    unsigned flags = 0;
    uint64_t n;
    char text[INA_CIDR_STRLEN], msg[512];
    json_t *o;
    int c, rc;

    opt_start();
    while ((c = opt_next(ctl, argc, argv, ":e:" COMMON_SHORT, longopts))
           != -1) {
        switch (c) {
        case 'e':
            ev = arg_event(ctl, optarg);
            break;
        case 'S':
            startv = arg_window(ctl, "--start", optarg);
            break;
        case 'E':
            endv = arg_window(ctl, "--end", optarg);
            break;
        case 'C':
            flags |= INA_QUERY_CLUSTER;
            break;
        }
    }
    if (argc - optind < 2)
        cmd_usage(ctl, argc - optind < 1 ? "missing MONITOR and CIDR"
                                         : "missing CIDR");
    if (argc - optind > 2)
        cmd_usage(ctl, "too many arguments");
    monitor = arg_monitor(ctl, argv[optind]);
    block = arg_cidr(ctl, argv[optind + 1], 0);
    st = ctl_open(ctl, INA_STORE_RDONLY);
    rc = ina_query(st, ev, monitor, &block, startv, endv, flags, &n, msg,
                   sizeof(msg));
    ina_store_close(st);
    if (rc != 0)
        return fail(ctl, "%s", msg);
    if (ctl->json) {
        struct ina_monitor m;

        if (ina_monitor_parse(monitor, &m, NULL, 0) != 0)
            return fail(ctl, "monitor \"%s\": cannot parse", monitor);
        o = jcheck(json_object());
        jset(o, "monitor", jstr(m.name));
        jset(o, "cidr", jstr(ina_cidr_format(&block, text, sizeof(text))));
        jset(o, "event", jstr(event_plural[ev]));
        jset(o, "start", jnum(startv));
        jset(o, "end", jnum(endv));
        jset(o, "cluster", json_boolean(flags & INA_QUERY_CLUSTER));
        jset(o, "count", jnum(n));
        jprint(o);
    } else {
        printf("%llu\n", (unsigned long long) n);
    }
    return 0;
}

/* cmd_sessions - the session gauge of a block */

static int
cmd_sessions(struct ctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"service", required_argument, NULL, 's'}, COMMON_LONG};
    const char *service = "SMTP";
    struct ina_store *st;
    struct ina_cidr block;
    uint64_t n;
    char text[INA_CIDR_STRLEN], msg[512];
    json_t *o;
    int c, rc;

    opt_start();
    while ((c = opt_next(ctl, argc, argv, ":s:" COMMON_SHORT, longopts))
           != -1)
        if (c == 's')
            service = arg_service(ctl, optarg);
    if (argc - optind != 1)
        cmd_usage(ctl, argc - optind < 1 ? "missing CIDR"
                                         : "too many arguments");
    block = arg_cidr(ctl, argv[optind], 0);
    st = ctl_open(ctl, INA_STORE_RDONLY);
    rc = ina_session_count(st, &block, service, &n, msg, sizeof(msg));
    ina_store_close(st);
    if (rc != 0)
        return fail(ctl, "%s", msg);
    if (ctl->json) {
        o = jcheck(json_object());
        jset(o, "cidr", jstr(ina_cidr_format(&block, text, sizeof(text))));
        jset(o, "service", jstr(service));
        jset(o, "count", jnum(n));
        jprint(o);
    } else {
        printf("%llu\n", (unsigned long long) n);
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * top, watch
 * ------------------------------------------------------------------- */

/* What top and watch are asked for. */
struct top_req {
    enum ina_event ev;
    const char *monitor;
    uint32_t startv, endv;
    size_t k;
    int want[2];        /* IPv4, IPv6 */
    int only;           /* -4 or -6 was given */
    unsigned plen;      /* --prefix, or 0 (meaning: the default) */
    int has_plen;
    unsigned interval;  /* watch only */
};

/* One family's answer. */
struct top_res {
    int family;
    unsigned plen;
    struct ina_top_entry *e;
    size_t n;
    uint64_t total;
};

/* top_parse - the options and arguments of top and watch */

static void
top_parse(struct ctl *ctl, int argc, char **argv, struct top_req *rq,
          int watch)
{
    static const struct option longopts[] = {
        {"event", required_argument, NULL, 'e'},
        {"prefix", required_argument, NULL, 'p'},
        {"start", required_argument, NULL, 'S'},
        {"end", required_argument, NULL, 'E'},
        {"interval", required_argument, NULL, 'i'},
        COMMON_LONG};
    const char *p;
    uint64_t v;
    int c;

    memset(rq, 0, sizeof(*rq));
    rq->ev = INA_CONNECTION;
    rq->k = TOP_DEF;
    rq->want[0] = rq->want[1] = 1;
    rq->interval = WATCH_DEF;
    opt_start();
    while ((c = opt_next(ctl, argc, argv, ":e:p:n:i:46" COMMON_SHORT,
                         longopts)) != -1) {
        switch (c) {
        case 'e':
            rq->ev = arg_event(ctl, optarg);
            break;
        case 'p':
            p = optarg[0] == '/' ? optarg + 1 : optarg;
            if (parse_u64(p, 128, &v) != 0)
                cmd_usage(ctl, "--prefix \"%s\": not a mask /0 to /128",
                          optarg);
            rq->plen = (unsigned) v;
            rq->has_plen = 1;
            break;
        case 'S':
            rq->startv = arg_window(ctl, "--start", optarg);
            break;
        case 'E':
            rq->endv = arg_window(ctl, "--end", optarg);
            break;
        case 'n':
            if (parse_u64(optarg, TOP_MAX, &v) != 0 || v == 0)
                cmd_usage(ctl, "-n \"%s\": not a count from 1 to %d",
                          optarg, TOP_MAX);
            rq->k = (size_t) v;
            break;
        case 'i':
            if (!watch)
                cmd_usage(ctl, "unknown option %s", argv[optind - 1]);
            if (parse_u64(optarg, WATCH_MAX, &v) != 0 || v == 0)
                cmd_usage(ctl, "-i \"%s\": not a number of seconds from 1 "
                               "to %d", optarg, WATCH_MAX);
            rq->interval = (unsigned) v;
            break;
        case '4':
        case '6':
            if (rq->only && rq->want[c == '4' ? 0 : 1] == 0)
                cmd_usage(ctl, "-4 and -6 exclude each other");
            rq->only = 1;
            rq->want[0] = c == '4';
            rq->want[1] = c == '6';
            break;
        }
    }
    if (argc - optind != 1)
        cmd_usage(ctl, argc - optind < 1 ? "missing MONITOR"
                                         : "too many arguments");
    rq->monitor = arg_monitor(ctl, argv[optind]);
    if (rq->has_plen && rq->plen > 32) {
        if (rq->only && rq->want[0])
            cmd_usage(ctl, "--prefix /%u is longer than an IPv4 address",
                      rq->plen);
        rq->want[0] = 0;
    }
}

/* top_plen - the mask of a family: --prefix, else /24 for IPv4 and /48
 * for IPv6, or the family's finest configured granularity when that is
 * coarser; 0 means the family is not counted and is skipped */

static unsigned
top_plen(const struct ina_conf *conf, const struct top_req *rq, int family)
{
    unsigned f = finest(conf, family), def = family == 4 ? 24 : 48;

    if (rq->has_plen)
        return rq->plen;
    if (f == 0)
        return 0;
    return f < def ? f : def;
}

/* top_run - the top blocks of each family asked for
 *
 * res[0] is IPv4, res[1] IPv6; a family that is not asked for, or that
 * has no granularity and was not asked for by -4/-6, has family 0.
 * Returns 0, or an error code with msg set. */

static int
top_run(struct ina_store *st, const struct top_req *rq, size_t k,
        struct top_res res[2], char *msg, size_t len)
{
    const struct ina_conf *conf = ina_store_conf(st);
    int fam, i, rc;

    for (i = 0; i < 2; i++) {
        fam = i == 0 ? 4 : 6;
        free(res[i].e);
        memset(&res[i], 0, sizeof(res[i]));
        if (!rq->want[i])
            continue;
        if (finest(conf, fam) == 0 && !rq->only)
            continue;
        res[i].family = fam;
        res[i].plen = top_plen(conf, rq, fam);
        res[i].e = xmalloc(k * sizeof(*res[i].e));
        rc = ina_top(st, rq->ev, rq->monitor, fam, res[i].plen, rq->startv,
                     rq->endv, res[i].e, k, &res[i].n, &res[i].total, msg,
                     len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* cmd_top - the blocks with the most events, largest first */

static int
cmd_top(struct ctl *ctl, int argc, char **argv)
{
    struct top_req rq;
    struct top_res res[2];
    struct ina_monitor mon;
    struct ina_store *st;
    struct table t;
    char msg[512], rank[24], count[24], share[24], text[INA_CIDR_STRLEN];
    json_t *doc, *fams, *jf, *blocks, *jb;
    size_t i, j;
    int rc, first = 1;

    top_parse(ctl, argc, argv, &rq, 0);
    memset(res, 0, sizeof(res));
    st = ctl_open(ctl, INA_STORE_RDONLY);
    rc = top_run(st, &rq, rq.k, res, msg, sizeof(msg));
    ina_store_close(st);
    if (rc != 0
        || ina_monitor_parse(rq.monitor, &mon, msg, sizeof(msg)) != 0) {
        free(res[0].e);
        free(res[1].e);
        return fail(ctl, "%s", msg);
    }
    if (ctl->json) {
        doc = jcheck(json_object());
        jset(doc, "monitor", jstr(mon.name));
        jset(doc, "event", jstr(event_plural[rq.ev]));
        jset(doc, "start", jnum(rq.startv));
        jset(doc, "end", jnum(rq.endv));
        fams = jcheck(json_array());
        for (i = 0; i < 2; i++) {
            if (res[i].family == 0)
                continue;
            jf = jcheck(json_object());
            jset(jf, "family", jnum((uint64_t) res[i].family));
            jset(jf, "prefix", jnum(res[i].plen));
            jset(jf, "total", jnum(res[i].total));
            blocks = jcheck(json_array());
            for (j = 0; j < res[i].n; j++) {
                jb = jcheck(json_object());
                jset(jb, "rank", jnum(j + 1));
                jset(jb, "cidr", jstr(ina_cidr_format(&res[i].e[j].prefix,
                                                      text, sizeof(text))));
                jset(jb, "count", jnum(res[i].e[j].count));
                jpush(blocks, jb);
            }
            jset(jf, "blocks", blocks);
            jpush(fams, jf);
        }
        jset(doc, "families", fams);
        jprint(doc);
    } else {
        for (i = 0; i < 2; i++) {
            if (res[i].family == 0)
                continue;
            if (!first)
                putchar('\n');
            first = 0;
            printf("IPv%d /%u blocks by %s, monitor %s, windows %u..%u: "
                   "%llu in all\n", res[i].family, res[i].plen,
                   event_plural[rq.ev], mon.name, (unsigned) rq.startv,
                   (unsigned) rq.endv, (unsigned long long) res[i].total);
            if (res[i].n == 0) {
                printf("(none)\n");
                continue;
            }
            table_init(&t, "rlrr");
            table_row(&t, "#", "BLOCK", "COUNT", "SHARE");
            for (j = 0; j < res[i].n; j++)
                table_row(&t, fmt_u64(j + 1, rank, sizeof(rank)),
                          ina_cidr_format(&res[i].e[j].prefix, text,
                                          sizeof(text)),
                          fmt_u64(res[i].e[j].count, count, sizeof(count)),
                          fmt_share(res[i].e[j].count, res[i].total, share,
                                    sizeof(share)));
            table_print(&t, stdout);
            table_free(&t);
        }
    }
    free(res[0].e);
    free(res[1].e);
    return 0;
}

/* Set by a signal to end watch's loop. */
static volatile sig_atomic_t watch_stop;

/* watch_signal - end the watch loop on SIGINT, SIGTERM or SIGHUP */

static void
watch_signal(int sig)
{
    (void) sig;
    watch_stop = 1;
}

/* watch_line - print one line at row y, cut at the screen's width */

static void INA_PRINTF(3, 4)
watch_line(int y, int attr, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (y >= LINES)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (attr)
        attron(attr);
    mvaddnstr(y, 0, buf, COLS);
    if (attr)
        attroff(attr);
}

/* watch_family - draw one family's blocks from row y, at most rows
 * rows of them; returns the next free row */

static int
watch_family(int y, const struct top_res *r, const struct top_req *rq,
             size_t rows)
{
    char text[INA_CIDR_STRLEN], share[24], bar[256];
    size_t j, bw, fill, blockw = 18;
    int left;

    watch_line(y++, A_BOLD, "IPv%d /%u by %s: %llu in all", r->family,
               r->plen, event_plural[rq->ev], (unsigned long long) r->total);
    for (j = 0; j < r->n && j < rows; j++)
        if (strlen(ina_cidr_format(&r->e[j].prefix, text, sizeof(text)))
            > blockw)
            blockw = strlen(text);
    watch_line(y++, A_REVERSE, "%4s  %-*s %12s %7s", "#", (int) blockw,
               "BLOCK", "COUNT", "SHARE");
    if (r->n == 0)
        watch_line(y++, 0, "   (none)");
    left = COLS - (int) (4 + 2 + blockw + 1 + 12 + 1 + 7 + 2);
    bw = left > 0 ? (size_t) left : 0;
    if (bw >= sizeof(bar))
        bw = sizeof(bar) - 1;
    for (j = 0; j < r->n && j < rows; j++) {
        fill = 0;
        if (r->total > 0)
            fill = (size_t) ((long double) bw * (long double) r->e[j].count
                             / (long double) r->total + 0.5L);
        if (fill > bw)
            fill = bw;
        memset(bar, '#', fill);
        bar[fill] = '\0';
        watch_line(y++, 0, "%4zu  %-*s %12llu %7s  %s", j + 1, (int) blockw,
                   ina_cidr_format(&r->e[j].prefix, text, sizeof(text)),
                   (unsigned long long) r->e[j].count,
                   fmt_share(r->e[j].count, r->total, share, sizeof(share)),
                   bar);
    }
    return y;
}

/* watch_draw - one screen of watch */

static void
watch_draw(struct ina_store *st, const struct top_req *rq,
           const struct ina_monitor *mon, struct top_res res[2])
{
    const struct ina_conf *conf = ina_store_conf(st);
    struct ina_stat s;
    char when[32], used[32], size[32], share[24], msg[512];
    size_t rows[2], need[2], space, i, nf = 0;
    int y = 0, rc, shown = 0;
    size_t k = LINES > 0 ? (size_t) LINES : 1;

    erase();
    fmt_utc(clock_now(), when, sizeof(when));
    watch_line(y, A_REVERSE, "%-*s", COLS, "");
    watch_line(y++, A_REVERSE, "auditctl watch  %s  %s", conf->store, when);
    rc = ina_store_stat(st, &s);
    if (rc == 0) {
        watch_line(y++, 0, "map %s of %s (%s)  counters %llu  sessions "
                           "%llu  readers %u/%u",
                   fmt_size(s.map_used, used, sizeof(used)),
                   fmt_size(s.map_size, size, sizeof(size)),
                   fmt_share(s.map_used, s.map_size, share, sizeof(share)),
                   (unsigned long long) s.counters,
                   (unsigned long long) s.sessions, (unsigned) s.readers_used,
                   (unsigned) s.readers_max);
        watch_line(y++, s.degraded ? A_BOLD : 0,
                   "degraded %s  reaped %llu  dropped %llu",
                   s.degraded ? "YES" : "no",
                   (unsigned long long) s.reaped,
                   (unsigned long long) s.dropped);
    } else {
        watch_line(y++, A_BOLD, "stats: %s", ina_strerror(rc));
        y++;
    }
    watch_line(y++, 0, "monitor %s  windows %u..%u  every %us  q: quit",
               mon->name, (unsigned) rq->startv, (unsigned) rq->endv,
               rq->interval);
    y++;
    rc = top_run(st, rq, k, res, msg, sizeof(msg));
    if (rc != 0) {
        watch_line(y, A_BOLD, "top: %s", msg);
        refresh();
        return;
    }
    /* Share the rows left between the families, each taking what it
     * needs when the other needs less than half. */
    for (i = 0; i < 2; i++) {
        need[i] = res[i].family == 0 ? 0 : (res[i].n ? res[i].n : 1);
        nf += res[i].family != 0;
        rows[i] = 0;
    }
    space = (size_t) (LINES > y ? LINES - y : 0);
    space = space > nf * 2 + (nf > 1) ? space - nf * 2 - (nf > 1) : 0;
    if (need[0] + need[1] <= space) {
        rows[0] = need[0];
        rows[1] = need[1];
    } else if (need[1] <= space / 2) {
        rows[1] = need[1];
        rows[0] = space - rows[1];
    } else if (need[0] <= space / 2) {
        rows[0] = need[0];
        rows[1] = space - rows[0];
    } else {
        rows[0] = space - space / 2;
        rows[1] = space / 2;
    }
    for (i = 0; i < 2; i++) {
        if (res[i].family == 0)
            continue;
        if (shown++)
            y++;
        y = watch_family(y, &res[i], rq, rows[i]);
    }
    refresh();
}

/* cmd_watch - a live, refreshing full-screen view of top and stats */

static int
cmd_watch(struct ctl *ctl, int argc, char **argv)
{
    struct top_req rq;
    struct top_res res[2];
    struct ina_monitor mon;
    struct ina_store *st;
    struct sigaction sa;
    char msg[512];
    int ch, rc;

    top_parse(ctl, argc, argv, &rq, 1);
    if (ctl->json)
        cmd_usage(ctl, "watch has no JSON output; use top --json");
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return fail(ctl, "needs a terminal on standard input and output");
    if (ina_monitor_parse(rq.monitor, &mon, msg, sizeof(msg)) != 0)
        return fail(ctl, "%s", msg);
    memset(res, 0, sizeof(res));
    st = ctl_open(ctl, INA_STORE_RDONLY);
    /* Check the request once before the screen is taken, so that a
     * wrong monitor or mask is an ordinary error message. */
    if ((rc = top_run(st, &rq, 1, res, msg, sizeof(msg))) != 0) {
        free(res[0].e);
        free(res[1].e);
        ina_store_close(st);
        return fail(ctl, "%s", msg);
    }
    if (initscr() == NULL) {
        ina_store_close(st);
        return fail(ctl, "cannot initialise the terminal");
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watch_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    timeout((int) rq.interval * 1000);
    while (!watch_stop) {
        watch_draw(st, &rq, &mon, res);
        ch = getch();
        if (ch == 'q' || ch == 'Q')
            break;
    }
    endwin();
    free(res[0].e);
    free(res[1].e);
    ina_store_close(st);
    return 0;
}

/* ---------------------------------------------------------------------
 * record, session, clear, expire
 * ------------------------------------------------------------------- */

/* cmd_record - count events by hand */

static int
cmd_record(struct ctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {COMMON_LONG};
    struct ina_store *st;
    struct ina_cidr addr;
    enum ina_event ev;
    uint64_t n = 1;
    char text[INA_CIDR_STRLEN];
    json_t *o;
    int rc;

    opt_start();
    while (opt_next(ctl, argc, argv, ":" COMMON_SHORT, longopts) != -1)
        ;
    if (argc - optind < 2)
        cmd_usage(ctl, argc - optind < 1 ? "missing EVENT and ADDR"
                                         : "missing ADDR");
    if (argc - optind > 3)
        cmd_usage(ctl, "too many arguments");
    ev = arg_event(ctl, argv[optind]);
    addr = arg_cidr(ctl, argv[optind + 1], 1);
    if (argc - optind == 3
        && (parse_u64(argv[optind + 2], UINT64_MAX, &n) != 0 || n == 0))
        cmd_usage(ctl, "N \"%s\": not a count of 1 or more",
                  argv[optind + 2]);
    st = ctl_open(ctl, 0);
    rc = ina_record(st, ev, &addr, n);
    ina_store_close(st);
    ina_cidr_format(&addr, text, sizeof(text));
    /* The address without its mask: it is a host. */
    text[strcspn(text, "/")] = '\0';
    if (rc != 0)
        return fail(ctl, "%s: %s", text, ina_strerror(rc));
    if (ctl->json) {
        o = jcheck(json_object());
        jset(o, "event", jstr(event_plural[ev]));
        jset(o, "address", jstr(text));
        jset(o, "count", jnum(n));
        jprint(o);
    } else {
        printf("recorded %llu %s from %s\n", (unsigned long long) n,
               n == 1 ? ina_event_name(ev) : event_plural[ev], text);
    }
    return 0;
}

/* cmd_session - open or close a session by hand
 *
 * A session opened by auditctl belongs to no process: auditctl exits at
 * once, and a session owned by it would be reaped by the next writer.  It
 * stays until closed by hand or cleared; a close by hand takes only such
 * sessions, never one a worker holds. */

static int
cmd_session(struct ctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"service", required_argument, NULL, 's'}, COMMON_LONG};
    const char *service = "SMTP";
    struct ina_store *st;
    struct ina_cidr addr;
    uint64_t moved = 0, gauge = 0;
    int64_t delta;
    char text[INA_CIDR_STRLEN], msg[512];
    json_t *o;
    int c, rc;

    opt_start();
    while ((c = opt_next(ctl, argc, argv, ":s:" COMMON_SHORT, longopts))
           != -1)
        if (c == 's')
            service = arg_service(ctl, optarg);
    if (argc - optind < 2)
        cmd_usage(ctl, argc - optind < 1 ? "missing open or close"
                                         : "missing ADDR");
    if (argc - optind > 2)
        cmd_usage(ctl, "too many arguments");
    if (strcmp(service, INA_SERVICE_CLUSTER) == 0)
        cmd_usage(ctl, "service \"%s\" is the cluster-wide count of SMTP "
                  "sessions; open or close SMTP sessions instead", service);
    if (strcmp(argv[optind], "open") == 0)
        delta = 1;
    else if (strcmp(argv[optind], "close") == 0)
        delta = -1;
    else
        cmd_usage(ctl, "\"%s\": expected open or close", argv[optind]);
    addr = arg_cidr(ctl, argv[optind + 1], 1);
    ina_cidr_format(&addr, text, sizeof(text));
    text[strcspn(text, "/")] = '\0';
    st = ctl_open(ctl, 0);
    rc = ina_session_adjust(st, &addr, service, delta, &moved);
    if (rc == 0)
        rc = ina_session_count(st, &addr, service, &gauge, msg, sizeof(msg));
    ina_store_close(st);
    if (rc != 0)
        return fail(ctl, "%s: %s", text, ina_strerror(rc));
    if (ctl->json) {
        o = jcheck(json_object());
        jset(o, "action", jstr(delta > 0 ? "open" : "close"));
        jset(o, "address", jstr(text));
        jset(o, "service", jstr(service));
        jset(o, "changed", jnum(moved));
        jset(o, "sessions", jnum(gauge));
        jprint(o);
    } else if (delta > 0) {
        printf("opened 1 %s session from %s (%llu open now)\n", service,
               text, (unsigned long long) gauge);
    } else if (moved > 0) {
        printf("closed 1 %s session from %s (%llu open now)\n", service,
               text, (unsigned long long) gauge);
    } else {
        printf("closed no %s session from %s: none was opened by hand "
               "(%llu open now)\n", service, text,
               (unsigned long long) gauge);
    }
    return 0;
}

/* cmd_clear - delete the counters of a block, or of everything */

static int
cmd_clear(struct ctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"all", no_argument, NULL, 'a'}, COMMON_LONG};
    struct ina_store *st;
    struct ina_cidr block;
    uint64_t removed;
    char text[INA_CIDR_STRLEN];
    json_t *o;
    int c, all = 0, rc;

    opt_start();
    while ((c = opt_next(ctl, argc, argv, ":" COMMON_SHORT, longopts)) != -1)
        if (c == 'a')
            all = 1;
    if (all && optind < argc)
        cmd_usage(ctl, "give either a CIDR or --all, not both");
    if (!all && optind == argc)
        cmd_usage(ctl, "missing CIDR (or --all for everything)");
    if (argc - optind > 1)
        cmd_usage(ctl, "too many arguments");
    if (!all)
        block = arg_cidr(ctl, argv[optind], 0);
    st = ctl_open(ctl, 0);
    rc = ina_clear(st, all ? NULL : &block, &removed);
    ina_store_close(st);
    if (!all)
        ina_cidr_format(&block, text, sizeof(text));
    if (rc != 0)
        return fail(ctl, "%s: %s", all ? "everything" : text,
                    ina_strerror(rc));
    if (ctl->json) {
        o = jcheck(json_object());
        jset(o, "cidr", all ? json_null() : jstr(text));
        jset(o, "removed", jnum(removed));
        jprint(o);
    } else if (all) {
        printf("cleared everything: %llu records removed\n",
               (unsigned long long) removed);
    } else {
        printf("cleared %s: %llu records removed\n", text,
               (unsigned long long) removed);
    }
    return 0;
}

/* cmd_expire - drop the windows past their history now */

static int
cmd_expire(struct ctl *ctl, int argc, char **argv)
{
    struct ina_store *st;
    uint64_t removed;
    json_t *o;
    int rc;

    no_args(ctl, argc, argv);
    st = ctl_open(ctl, 0);
    rc = ina_expire(st, &removed);
    ina_store_close(st);
    if (rc != 0)
        return fail(ctl, "%s: %s", ctl->conf->store, ina_strerror(rc));
    if (ctl->json) {
        o = jcheck(json_object());
        jset(o, "removed", jnum(removed));
        jprint(o);
    } else {
        printf("expired %llu counters\n", (unsigned long long) removed);
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * stats
 * ------------------------------------------------------------------- */

/* Records of one width (0 for session gauges) at one granularity. */
struct entry_count {
    uint32_t width;
    uint8_t family, plen;
    uint64_t n;
};

struct entry_tally {
    struct entry_count *e;
    size_t n, cap, last;
};

/* tally_add - count one record of a width and prefix */

static void
tally_add(struct entry_tally *t, uint32_t width, const struct ina_cidr *p)
{
    struct entry_count *e;
    size_t i;

    /* Records come in key order, so the last bucket is usually it. */
    if (t->n > 0) {
        e = &t->e[t->last];
        if (e->width == width && e->family == p->family
            && e->plen == p->plen) {
            e->n++;
            return;
        }
    }
    for (i = 0; i < t->n; i++) {
        e = &t->e[i];
        if (e->width == width && e->family == p->family
            && e->plen == p->plen)
            break;
    }
    if (i == t->n) {
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 32;
            t->e = xrealloc(t->e, t->cap * sizeof(*t->e));
        }
        e = &t->e[t->n++];
        e->width = width;
        e->family = p->family;
        e->plen = p->plen;
        e->n = 0;
    }
    t->e[i].n++;
    t->last = i;
}

/* tally_counter, tally_gauge - ina_walk() callbacks of stats */

static int
tally_counter(void *arg, const struct ina_counter *c)
{
    tally_add(arg, c->width, &c->prefix);
    return 0;
}

static int
tally_gauge(void *arg, const struct ina_gauge *g)
{
    tally_add(arg, 0, &g->prefix);
    return 0;
}

/* entry_cmp - order of the tally: width, then family, then mask */

static int
entry_cmp(const void *a, const void *b)
{
    const struct entry_count *x = a, *y = b;

    if (x->width != y->width)
        return x->width < y->width ? -1 : 1;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    if (x->plen != y->plen)
        return x->plen < y->plen ? -1 : 1;
    return 0;
}

/* width_name - the monitors of a width: "60,10", "60,10|60,5", or
 * "60s (no monitor)" for a width no monitor has any more */

static char *
width_name(const struct ina_conf *conf, uint32_t width, char *buf,
           size_t len)
{
    size_t i, off = 0;

    buf[0] = '\0';
    for (i = 0; i < conf->nmonitors && off < len; i++)
        if (conf->monitors[i].width == width)
            off += (size_t) snprintf(buf + off, len - off, "%s%s",
                                     off ? "|" : "", conf->monitors[i].name);
    if (buf[0] == '\0')
        snprintf(buf, len, "%us (no monitor)", (unsigned) width);
    return buf;
}

/* stats_matrix - print entries with a row per granularity and a column
 * per width, the session gauges last */

static void
stats_matrix(const struct ina_conf *conf, const struct entry_tally *t)
{
    /* At most INA_MAX_MONITORS widths are configured; a store may hold
     * a few more from an older configuration. */
    uint32_t widths[64];
    uint16_t rows[64];          /* family << 8 | mask */
    char text[66][64];
    const char *cells[66];
    char align[67];
    struct table tab;
    size_t nw = 0, nr = 0, i, j, r;
    uint16_t key;

    /* The tally is sorted by width, family and mask, so widths come in
     * order; the rows are sorted here. */
    for (i = 0; i < t->n; i++) {
        if (t->e[i].width != 0 && (nw == 0 || widths[nw - 1] != t->e[i].width)
            && nw < 64)
            widths[nw++] = t->e[i].width;
        key = (uint16_t) (t->e[i].family << 8 | t->e[i].plen);
        for (j = 0; j < nr && rows[j] != key; j++)
            ;
        if (j == nr && nr < 64) {
            for (; j > 0 && rows[j - 1] > key; j--)
                rows[j] = rows[j - 1];
            rows[j] = key;
            nr++;
        }
    }
    memset(align, 'r', nw + 2);
    align[0] = 'l';
    align[nw + 2] = '\0';
    table_init(&tab, align);
    cells[0] = "entries";
    for (j = 0; j < nw; j++)
        cells[1 + j] = width_name(conf, widths[j], text[1 + j],
                                  sizeof(text[0]));
    cells[nw + 1] = "sessions";
    table_rowv(&tab, cells);
    for (r = 0; r < nr; r++) {
        snprintf(text[0], sizeof(text[0]), "IPv%u /%u",
                 (unsigned) (rows[r] >> 8), (unsigned) (rows[r] & 0xff));
        cells[0] = text[0];
        for (j = 0; j <= nw; j++) {
            uint32_t w = j < nw ? widths[j] : 0;
            uint64_t n = 0;

            for (i = 0; i < t->n; i++)
                if (t->e[i].width == w
                    && (uint16_t) (t->e[i].family << 8 | t->e[i].plen)
                           == rows[r])
                    n = t->e[i].n;
            cells[1 + j] = fmt_u64(n, text[1 + j], sizeof(text[0]));
        }
        table_rowv(&tab, cells);
    }
    table_print(&tab, stdout);
    table_free(&tab);
}

/* What stats shows of the cluster sync (ina_cluster_status). */
struct sync_info {
    int known;                  /* the status could be read */
    int64_t now_ms;
    struct ina_cluster_self self;
    struct ina_cluster_peer *p;
    size_t n, cap;
};

/* sync_peer - collect one node of the status */

static int
sync_peer(void *arg, const struct ina_cluster_peer *p)
{
    struct sync_info *si = arg;

    if (si->n == si->cap) {
        size_t cap = si->cap ? si->cap * 2 : 8;
        struct ina_cluster_peer *q = realloc(si->p, cap * sizeof(*q));

        if (q == NULL)
            return ENOMEM;
        si->p = q;
        si->cap = cap;
    }
    si->p[si->n++] = *p;
    return 0;
}

/* sync_state - a node's state in one word */

static const char *
sync_state(const struct ina_cluster_peer *p)
{
    return p->gone ? "gone" : p->resync ? "resync" : "ok";
}

/* sync_lag_ms - how stale a node's counts are here, -1 if unknown */

static int64_t
sync_lag_ms(const struct sync_info *si, const struct ina_cluster_peer *p)
{
    if (p->as_of <= 0)
        return -1;
    return si->now_ms > p->as_of ? si->now_ms - p->as_of : 0;
}

/* sync_worst - the largest known lag, -1 if none is known */

static int64_t
sync_worst(const struct sync_info *si)
{
    int64_t worst = -1, x;
    size_t i;

    for (i = 0; i < si->n; i++)
        if ((x = sync_lag_ms(si, &si->p[i])) > worst)
            worst = x;
    return worst;
}

/* sync_json - the sync's part of stats --json */

static void
sync_json(json_t *cl, const struct sync_info *si)
{
    json_t *self, *arr, *e;
    int64_t lag;
    size_t i;

    lag = sync_worst(si);
    jset(cl, "sync_lag", lag >= 0 ? json_real((double) lag / 1000.0)
                                  : json_null());
    if (!si->known) {
        jset(cl, "self", json_null());
        jset(cl, "peers", jcheck(json_array()));
        return;
    }
    self = jcheck(json_object());
    jset(self, "incarnation", jnum(si->self.inc));
    jset(self, "seq", jnum(si->self.seq));
    jset(self, "sent", jnum(si->self.sent));
    jset(self, "sent_at", si->self.sent_at > 0
                              ? json_integer(si->self.sent_at)
                              : json_null());
    jset(self, "outbox", jnum(si->self.outbox));
    jset(self, "sweeping", json_boolean(si->self.sweeping));
    jset(self, "rows", jnum(si->self.rows));
    jset(cl, "self", self);
    arr = jcheck(json_array());
    for (i = 0; i < si->n; i++) {
        const struct ina_cluster_peer *p = &si->p[i];

        e = jcheck(json_object());
        jset(e, "node", jstr(p->node));
        jset(e, "state", jstr(sync_state(p)));
        lag = sync_lag_ms(si, p);
        jset(e, "lag", lag >= 0 ? json_real((double) lag / 1000.0)
                                : json_null());
        jset(e, "as_of", p->as_of > 0 ? json_integer(p->as_of)
                                      : json_null());
        jset(e, "heard", p->heard > 0 ? json_integer(p->heard)
                                      : json_null());
        jset(e, "seq", jnum(p->seq));
        jset(e, "messages", jnum(p->messages));
        jpush(arr, e);
    }
    jset(cl, "peers", arr);
}

/* fmt_lag - a lag in ms as seconds for people */

static char *
fmt_lag(int64_t ms, char *buf, size_t len)
{
    if (ms < 0)
        snprintf(buf, len, "unknown");
    else if (ms < 10000)
        snprintf(buf, len, "%.2f s", (double) ms / 1000.0);
    else
        snprintf(buf, len, "%lld s", (long long) (ms / 1000));
    return buf;
}

/* sync_rows - the sync's rows of stats for people: this node's
 * publishing, the worst staleness, and one row per other node */

static void
sync_rows(struct table *t, const struct sync_info *si)
{
    char buf[256], lag[32], name[INA_NODE_MAX + 8];
    size_t i;

    if (!si->known) {
        table_row(t, "sync", "unknown (the store cannot say)");
        return;
    }
    if (si->self.sent_at > 0)
        snprintf(buf, sizeof(buf), "message %llu, sent up to %llu (%llu "
                 "waiting), %s ago%s", (unsigned long long) si->self.seq,
                 (unsigned long long) si->self.sent,
                 (unsigned long long) si->self.outbox,
                 fmt_lag(si->now_ms - si->self.sent_at, lag, sizeof(lag)),
                 si->self.sweeping ? ", sweeping" : "");
    else
        snprintf(buf, sizeof(buf), "message %llu, nothing sent yet (%llu "
                 "waiting)", (unsigned long long) si->self.seq,
                 (unsigned long long) si->self.outbox);
    table_row(t, "sync_publish", buf);
    if (si->n == 0) {
        table_row(t, "sync_lag", "unknown (no other node heard of; is "
                  "inaudit-sync running?)");
        return;
    }
    snprintf(buf, sizeof(buf), "%s (the stalest of %zu node%s)",
             fmt_lag(sync_worst(si), lag, sizeof(lag)), si->n,
             si->n == 1 ? "" : "s");
    table_row(t, "sync_lag", buf);
    for (i = 0; i < si->n; i++) {
        const struct ina_cluster_peer *p = &si->p[i];

        snprintf(name, sizeof(name), "node %s", p->node);
        snprintf(buf, sizeof(buf), "lag %s, message %llu, %s",
                 fmt_lag(sync_lag_ms(si, p), lag, sizeof(lag)),
                 (unsigned long long) p->seq,
                 p->gone ? "gone (not heard from; its sessions do not "
                           "count)"
                 : p->resync ? "resync awaited (its counts are inexact)"
                             : "ok");
        table_row(t, name, buf);
    }
}

/* cmd_stats - store statistics, as a flat list of names and values */

static int
cmd_stats(struct ctl *ctl, int argc, char **argv)
{
    const struct ina_conf *conf;
    struct ina_walker w;
    struct entry_tally tally;
    struct ina_store *st;
    struct ina_stat s;
    struct sync_info sync;
    struct table t;
    char buf[256], a[64], b[64], share[24];
    json_t *o, *arr, *e, *cl;
    size_t i, j;
    int rc;

    no_args(ctl, argc, argv);
    st = ctl_open(ctl, INA_STORE_RDONLY);
    /* ctl's configuration, not the handle's copy: it outlives the
     * handle. */
    conf = ctl->conf;
    memset(&tally, 0, sizeof(tally));
    memset(&sync, 0, sizeof(sync));
    w.counter = tally_counter;
    w.gauge = tally_gauge;
    w.arg = &tally;
    if ((rc = ina_store_stat(st, &s)) == 0)
        rc = ina_walk(st, &w);
    if (rc == 0 && conf->cluster) {
        /* What the sync agent has recorded in the store; the lag of a
         * node is the age of the newest state of it this store holds. */
        sync.now_ms = clock_now_ms();
        sync.known = ina_cluster_status(st, &sync.self, sync_peer,
                                        &sync) == 0;
    }
    ina_store_close(st);
    if (rc != 0) {
        free(tally.e);
        free(sync.p);
        return fail(ctl, "store %s: %s", conf->store, ina_strerror(rc));
    }
    if (tally.n > 1)
        qsort(tally.e, tally.n, sizeof(*tally.e), entry_cmp);
    if (ctl->json) {
        o = jcheck(json_object());
        jset(o, "store", jstr(conf->store));
        jset(o, "format_version", jnum(s.format_version));
        jset(o, "map_size", jnum(s.map_size));
        jset(o, "map_used", jnum(s.map_used));
        jset(o, "map_use_percent",
             json_real(s.map_size ? (double) ((s.map_used * 10000
                                               + s.map_size / 2)
                                              / s.map_size) / 100.0
                                  : 0.0));
        jset(o, "file_size", jnum(s.file_size));
        jset(o, "page_size", jnum(s.page_size));
        jset(o, "counters", jnum(s.counters));
        jset(o, "sessions", jnum(s.sessions));
        jset(o, "owners", jnum(s.owners));
        jset(o, "readers_max", jnum(s.readers_max));
        jset(o, "readers_used", jnum(s.readers_used));
        jset(o, "readers_stale", jnum(s.readers_stale));
        jset(o, "degraded", json_integer(s.degraded));
        jset(o, "reaped", jnum(s.reaped));
        jset(o, "dropped", jnum(s.dropped));
        jset(o, "oldest_window", s.counters ? json_integer(s.oldest_window)
                                            : json_null());
        jset(o, "newest_window", s.counters ? json_integer(s.newest_window)
                                            : json_null());
        arr = jcheck(json_array());
        for (i = 0; i < tally.n; i++) {
            json_t *mons;

            if (tally.e[i].width == 0)
                continue;
            e = jcheck(json_object());
            jset(e, "width", jnum(tally.e[i].width));
            mons = jcheck(json_array());
            for (j = 0; j < conf->nmonitors; j++)
                if (conf->monitors[j].width == tally.e[i].width)
                    jpush(mons, jstr(conf->monitors[j].name));
            jset(e, "monitors", mons);
            jset(e, "family", jnum(tally.e[i].family));
            jset(e, "prefix", jnum(tally.e[i].plen));
            jset(e, "count", jnum(tally.e[i].n));
            jpush(arr, e);
        }
        jset(o, "entries", arr);
        arr = jcheck(json_array());
        for (i = 0; i < tally.n; i++) {
            if (tally.e[i].width != 0)
                continue;
            e = jcheck(json_object());
            jset(e, "family", jnum(tally.e[i].family));
            jset(e, "prefix", jnum(tally.e[i].plen));
            jset(e, "count", jnum(tally.e[i].n));
            jpush(arr, e);
        }
        jset(o, "session_entries", arr);
        if (conf->cluster) {
            cl = jcheck(json_object());
            jset(cl, "redis", jstr(conf->cluster_redis
                                       ? conf->cluster_redis : ""));
            jset(cl, "node", jstr(conf->cluster_node
                                      ? conf->cluster_node : ""));
            jset(cl, "interval", jnum(conf->cluster_interval));
            sync_json(cl, &sync);
            jset(o, "cluster", cl);
        } else {
            jset(o, "cluster", json_null());
        }
        jprint(o);
        free(tally.e);
        free(sync.p);
        return 0;
    }
    table_init(&t, "ll");
    table_row(&t, "store", conf->store);
    snprintf(buf, sizeof(buf), "%u", (unsigned) s.format_version);
    table_row(&t, "format_version", buf);
    snprintf(buf, sizeof(buf), "%llu (%s)",
             (unsigned long long) s.map_size,
             fmt_size(s.map_size, a, sizeof(a)));
    table_row(&t, "map_size", buf);
    snprintf(buf, sizeof(buf), "%llu (%s, %s of the map)",
             (unsigned long long) s.map_used,
             fmt_size(s.map_used, a, sizeof(a)),
             fmt_share(s.map_used, s.map_size, share, sizeof(share)));
    table_row(&t, "map_used", buf);
    snprintf(buf, sizeof(buf), "%llu (%s)",
             (unsigned long long) s.file_size,
             fmt_size(s.file_size, a, sizeof(a)));
    table_row(&t, "file_size", buf);
    table_row(&t, "counters", fmt_u64(s.counters, a, sizeof(a)));
    table_row(&t, "sessions", fmt_u64(s.sessions, a, sizeof(a)));
    table_row(&t, "owners", fmt_u64(s.owners, a, sizeof(a)));
    snprintf(buf, sizeof(buf), "%u used of %u, %u stale cleared",
             (unsigned) s.readers_used, (unsigned) s.readers_max,
             (unsigned) s.readers_stale);
    table_row(&t, "readers", buf);
    if (s.degraded)
        snprintf(buf, sizeof(buf), "YES: the %d finest granularit%s "
                 "skipped (map full)", s.degraded,
                 s.degraded == 1 ? "y is" : "ies are");
    else
        snprintf(buf, sizeof(buf), "no");
    table_row(&t, "degraded", buf);
    if (s.reaped > 0)
        table_row(&t, "reaped", fmt_u64(s.reaped, a, sizeof(a)));
    table_row(&t, "dropped", fmt_u64(s.dropped, a, sizeof(a)));
    table_row(&t, "oldest_window",
              s.counters ? fmt_utc(s.oldest_window, a, sizeof(a)) : "-");
    table_row(&t, "newest_window",
              s.counters ? fmt_utc(s.newest_window, b, sizeof(b)) : "-");
    if (conf->cluster) {
        snprintf(buf, sizeof(buf), "redis %s, node %s, interval %u ms",
                 conf->cluster_redis ? conf->cluster_redis : "?",
                 conf->cluster_node ? conf->cluster_node : "?",
                 (unsigned) conf->cluster_interval);
        table_row(&t, "cluster", buf);
        sync_rows(&t, &sync);
    }
    table_print(&t, stdout);
    table_free(&t);
    if (tally.n > 0) {
        putchar('\n');
        stats_matrix(conf, &tally);
    }
    free(tally.e);
    free(sync.p);
    return 0;
}

/* ---------------------------------------------------------------------
 * dump, load
 * ------------------------------------------------------------------- */

struct dump_arg {
    FILE *out;
    uint64_t counters, sessions;
    int toobig;
};

/* dump_line - print one record as a line of compact JSON */

static int
dump_line(FILE *out, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rc = 0;

    json_decref(o);
    if (s == NULL)
        return ENOMEM;
    if (fputs(s, out) == EOF || putc('\n', out) == EOF)
        rc = errno ? errno : EIO;
    free(s);
    return rc;
}

/* dump_spool - an anonymous file under $TMPDIR (or /tmp), or NULL */

static FILE *
dump_spool(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    FILE *fp;
    int fd;

    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    snprintf(path, sizeof(path), "%s/auditctl-dump.XXXXXX", dir);
    if ((fd = mkstemp(path)) == -1)
        return NULL;
    unlink(path);
    if ((fp = fdopen(fd, "w+")) == NULL)
        close(fd);
    return fp;
}

/* dump_counter, dump_gauge - ina_walk() callbacks of dump */

static int
dump_counter(void *arg, const struct ina_counter *c)
{
    struct dump_arg *d = arg;
    char text[INA_CIDR_STRLEN];
    json_t *o;
    size_t e;

    for (e = 0; e < INA_NEVENTS; e++)
        if (c->count[e] > INT64_MAX) {
            d->toobig = 1;
            return ERANGE;
        }
    o = jcheck(json_object());
    jset(o, "type", jstr("counter"));
    jset(o, "width", jnum(c->width));
    jset(o, "window", jnum(c->window));
    jset(o, "prefix", jstr(ina_cidr_format(&c->prefix, text, sizeof(text))));
    for (e = 0; e < INA_NEVENTS; e++)
        jset(o, event_plural[e], jnum(c->count[e]));
    d->counters++;
    return dump_line(d->out, o);
}

static int
dump_gauge(void *arg, const struct ina_gauge *g)
{
    struct dump_arg *d = arg;
    char text[INA_CIDR_STRLEN];
    json_t *o;

    if (g->count > INT64_MAX) {
        d->toobig = 1;
        return ERANGE;
    }
    o = jcheck(json_object());
    jset(o, "type", jstr("session"));
    jset(o, "service", jstr(g->service));
    jset(o, "prefix", jstr(ina_cidr_format(&g->prefix, text, sizeof(text))));
    jset(o, "count", jnum(g->count));
    d->sessions++;
    return dump_line(d->out, o);
}

/* cmd_dump - the whole store as JSON lines: a header, every counter and
 * session gauge in key order from one snapshot, and an end record that
 * lets load tell a complete dump from a cut one
 *
 * Unless the output is a regular file, the walk writes into a spool file
 * that is copied out afterwards.  A snapshot held while a slow pipe
 * ("auditctl dump | less") blocks the output would keep LMDB from
 * reusing pages, and the writers would fill the map. */

static int
cmd_dump(struct ctl *ctl, int argc, char **argv)
{
    struct ina_store *st;
    struct ina_walker w;
    struct dump_arg d;
    struct stat sb;
    FILE *spool = NULL;
    char buf[65536];
    size_t n;
    json_t *o;
    int rc;

    no_args(ctl, argc, argv);
    memset(&d, 0, sizeof(d));
    d.out = stdout;
    if (fstat(STDOUT_FILENO, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if ((spool = dump_spool()) == NULL)
            return fail(ctl, "cannot make a spool file in %s: %s",
                        getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
                        strerror(errno));
        d.out = spool;
    }
    st = ctl_open(ctl, INA_STORE_RDONLY);
    o = jcheck(json_object());
    jset(o, "type", jstr("header"));
    jset(o, "format", jnum(DUMP_FORMAT));
    jset(o, "version", jstr(INA_VERSION_STRING));
    if ((rc = dump_line(d.out, o)) == 0) {
        w.counter = dump_counter;
        w.gauge = dump_gauge;
        w.arg = &d;
        rc = ina_walk(st, &w);
    }
    ina_store_close(st);
    if (rc == 0) {
        o = jcheck(json_object());
        jset(o, "type", jstr("end"));
        jset(o, "counters", jnum(d.counters));
        jset(o, "sessions", jnum(d.sessions));
        rc = dump_line(d.out, o);
    }
    if (rc == 0 && spool != NULL) {
        if (fflush(spool) != 0 || fseek(spool, 0, SEEK_SET) != 0)
            rc = errno;
        while (rc == 0 && (n = fread(buf, 1, sizeof(buf), spool)) > 0)
            if (fwrite(buf, 1, n, stdout) != n)
                rc = errno ? errno : EIO;
        if (rc == 0 && ferror(spool))
            rc = errno ? errno : EIO;
    }
    if (spool != NULL)
        fclose(spool);
    if (rc != 0)
        return fail(ctl, "%s", d.toobig
                                   ? "a count exceeds the range of JSON "
                                     "integers (2^63-1)"
                                   : ina_strerror(rc));
    return 0;
}

/* What load has read and checked. */
struct load_rec {
    int gauge;                  /* 0: counter, 1: session gauge */
    unsigned long line;
    struct ina_counter c;
    struct ina_gauge g;
};

struct load_set {
    struct load_rec *r;
    size_t n, cap;
    uint64_t counters, sessions;
};

/* load_keys - check that an object has exactly the keys named
 *
 * Returns NULL, or a message naming the first unknown or missing key
 * (in a static buffer). */

static const char *
load_keys(json_t *o, const char *const *keys)
{
    static char msg[128];
    const char *k;
    json_t *v;
    size_t i;

    json_object_foreach (o, k, v) {
        for (i = 0; keys[i] != NULL; i++)
            if (strcmp(k, keys[i]) == 0)
                break;
        if (keys[i] == NULL) {
            snprintf(msg, sizeof(msg), "unknown field \"%.64s\"", k);
            return msg;
        }
    }
    for (i = 0; keys[i] != NULL; i++)
        if (json_object_get(o, keys[i]) == NULL) {
            snprintf(msg, sizeof(msg), "missing field \"%s\"", keys[i]);
            return msg;
        }
    return NULL;
}

/* load_uint - a field that must be an integer from 0 to max */

static const char *
load_uint(json_t *o, const char *key, uint64_t max, uint64_t *out)
{
    static char msg[128];
    json_t *v = json_object_get(o, key);
    json_int_t i;

    if (!json_is_integer(v)) {
        snprintf(msg, sizeof(msg), "field \"%s\" is not an integer", key);
        return msg;
    }
    i = json_integer_value(v);
    if (i < 0 || (uint64_t) i > max) {
        snprintf(msg, sizeof(msg), "field \"%s\" is out of range (0..%llu)",
                 key, (unsigned long long) max);
        return msg;
    }
    *out = (uint64_t) i;
    return NULL;
}

/* load_prefix - a field holding a block in canonical form: an explicit
 * mask, no host bits set */

static const char *
load_prefix(json_t *o, struct ina_cidr *out)
{
    static char msg[256];
    json_t *v = json_object_get(o, "prefix");
    const char *s;
    struct ina_cidr c;
    char text[INA_CIDR_STRLEN];

    if (!json_is_string(v))
        return "field \"prefix\" is not a string";
    s = json_string_value(v);
    if (ina_cidr_parse(s, json_string_length(v), &c, msg, sizeof(msg)) != 0)
        return msg;
    if (c.family == 0 || !c.has_mask) {
        snprintf(msg, sizeof(msg), "prefix \"%.64s\" is not address/mask",
                 s);
        return msg;
    }
    /* Canonical text only: it rules out host bits under the mask, which
     * the parser would otherwise clear without a word. */
    if (strcmp(ina_cidr_format(&c, text, sizeof(text)), s) != 0) {
        snprintf(msg, sizeof(msg), "prefix \"%.64s\" is not in canonical "
                 "form (\"%s\")", s, text);
        return msg;
    }
    *out = c;
    return NULL;
}

/* load_parse - check one line and add its record to the set
 *
 * Returns NULL, or a message saying what is wrong.  *end is set when the
 * line is the end record. */

static const char *
load_parse(const char *line, size_t len, unsigned long lineno,
           struct load_set *set, int *end)
{
    static const char *const hkeys[] = {"type", "format", "version", NULL};
    static const char *const ckeys[] = {"type", "width", "window", "prefix",
                                        "connections", "receptions",
                                        "rejections", NULL};
    static const char *const skeys[] = {"type", "service", "prefix",
                                        "count", NULL};
    static const char *const ekeys[] = {"type", "counters", "sessions",
                                        NULL};
    static char msg[256];
    const char *why = NULL, *type;
    struct load_rec *r;
    json_error_t jerr;
    json_t *o, *v;
    uint64_t x, y;
    size_t e, slen;

    *end = 0;
    o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        snprintf(msg, sizeof(msg), "not JSON: %s", jerr.text);
        return msg;
    }
    if (!json_is_object(o)) {
        why = "not a JSON object";
        goto out;
    }
    v = json_object_get(o, "type");
    if (!json_is_string(v)) {
        why = "no \"type\" string";
        goto out;
    }
    type = json_string_value(v);
    if (lineno == 1 && strcmp(type, "header") != 0) {
        why = "the first line is not the header "
              "({\"type\":\"header\",...}); is this a dump?";
        goto out;
    }
    if (strcmp(type, "header") == 0) {
        if (lineno != 1) {
            why = "a header after the first line";
            goto out;
        }
        if ((why = load_keys(o, hkeys)) != NULL
            || (why = load_uint(o, "format", UINT32_MAX, &x)) != NULL)
            goto out;
        if (x != DUMP_FORMAT) {
            snprintf(msg, sizeof(msg), "dump format %llu, this auditctl "
                     "reads format %d", (unsigned long long) x, DUMP_FORMAT);
            why = msg;
            goto out;
        }
        if (!json_is_string(json_object_get(o, "version")))
            why = "field \"version\" is not a string";
        goto out;
    }
    if (strcmp(type, "end") == 0) {
        if ((why = load_keys(o, ekeys)) != NULL
            || (why = load_uint(o, "counters", INT64_MAX, &x)) != NULL
            || (why = load_uint(o, "sessions", INT64_MAX, &y)) != NULL)
            goto out;
        if (x != set->counters || y != set->sessions) {
            snprintf(msg, sizeof(msg), "the end record counts %llu "
                     "counters and %llu sessions, the dump has %llu and "
                     "%llu", (unsigned long long) x, (unsigned long long) y,
                     (unsigned long long) set->counters,
                     (unsigned long long) set->sessions);
            why = msg;
            goto out;
        }
        *end = 1;
        goto out;
    }
    if (set->n == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 1024;
        set->r = xrealloc(set->r, set->cap * sizeof(*set->r));
    }
    r = &set->r[set->n];
    memset(r, 0, sizeof(*r));
    r->line = lineno;
    if (strcmp(type, "counter") == 0) {
        if ((why = load_keys(o, ckeys)) != NULL
            || (why = load_uint(o, "width", INA_WIDTH_MAX, &x)) != NULL
            || (why = load_uint(o, "window", UINT32_MAX, &y)) != NULL
            || (why = load_prefix(o, &r->c.prefix)) != NULL)
            goto out;
        if (x == 0) {
            why = "field \"width\" is out of range (1..31622400)";
            goto out;
        }
        r->c.width = (uint32_t) x;
        r->c.window = (uint32_t) y;
        for (e = 0; e < INA_NEVENTS; e++)
            if ((why = load_uint(o, event_plural[e], INT64_MAX,
                                 &r->c.count[e])) != NULL)
                goto out;
        set->counters++;
    } else if (strcmp(type, "session") == 0) {
        r->gauge = 1;
        if ((why = load_keys(o, skeys)) != NULL
            || (why = load_prefix(o, &r->g.prefix)) != NULL
            || (why = load_uint(o, "count", INT64_MAX, &r->g.count)) != NULL)
            goto out;
        v = json_object_get(o, "service");
        slen = json_is_string(v) ? json_string_length(v) : 0;
        if (!json_is_string(v) || slen == 0 || slen > INA_SERVICE_MAX
            || strlen(json_string_value(v)) != slen) {
            why = "field \"service\" is not a service name (1 to 32 "
                  "characters)";
            goto out;
        }
        memcpy(r->g.service, json_string_value(v), slen + 1);
        set->sessions++;
    } else {
        snprintf(msg, sizeof(msg), "unknown type \"%.64s\" (header, "
                 "counter, session, end)", type);
        why = msg;
        goto out;
    }
    set->n++;

out:
    json_decref(o);
    return why;
}

/* load_cmp - order records by their store key, to find duplicates */

static int
load_cmp(const void *a, const void *b)
{
    const struct load_rec *x = a, *y = b;
    const struct ina_cidr *p, *q;
    int c;

    if (x->gauge != y->gauge)
        return x->gauge - y->gauge;
    if (x->gauge) {
        if ((c = strcmp(x->g.service, y->g.service)) != 0)
            return c;
        p = &x->g.prefix;
        q = &y->g.prefix;
    } else {
        if (x->c.width != y->c.width)
            return x->c.width < y->c.width ? -1 : 1;
        if (x->c.window != y->c.window)
            return x->c.window < y->c.window ? -1 : 1;
        p = &x->c.prefix;
        q = &y->c.prefix;
    }
    if (p->family != q->family)
        return p->family - q->family;
    if (p->plen != q->plen)
        return p->plen - q->plen;
    if ((c = memcmp(p->addr, q->addr, 16)) != 0)
        return c;
    return x->line < y->line ? -1 : x->line > y->line;
}

/* cmd_load - put a dump back into an empty store
 *
 * Every line is read and checked before anything is written, so a bad
 * line loads nothing.  Loading adds to what is there, so a store that
 * is not empty is refused unless --merge is given. */

static int
cmd_load(struct ctl *ctl, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"merge", no_argument, NULL, 'm'}, COMMON_LONG};
    const char *file = "-", *name, *why;
    struct load_set set;
    struct ina_store *st;
    struct ina_stat s;
    FILE *fp;
    char *line = NULL;
    size_t cap = 0, i;
    ssize_t len;
    unsigned long lineno = 0;
    json_t *o;
    int c, merge = 0, end = 0, rc = 0;

    opt_start();
    while ((c = opt_next(ctl, argc, argv, ":" COMMON_SHORT, longopts)) != -1)
        if (c == 'm')
            merge = 1;
    if (argc - optind > 1)
        cmd_usage(ctl, "too many arguments");
    if (argc - optind == 1)
        file = argv[optind];
    name = strcmp(file, "-") == 0 ? "(stdin)" : file;
    if (strcmp(file, "-") == 0)
        fp = stdin;
    else if ((fp = fopen(file, "r")) == NULL)
        return fail(ctl, "%s: %s", file, strerror(errno));
    memset(&set, 0, sizeof(set));
    while ((len = getline(&line, &cap, fp)) != -1) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (end) {
            rc = fail(ctl, "%s:%lu: a line after the end record", name,
                      lineno);
            break;
        }
        if (len == 0) {
            rc = fail(ctl, "%s:%lu: empty line", name, lineno);
            break;
        }
        if (len > LOAD_LINE_MAX) {
            rc = fail(ctl, "%s:%lu: line longer than %d bytes", name,
                      lineno, LOAD_LINE_MAX);
            break;
        }
        if ((why = load_parse(line, (size_t) len, lineno, &set, &end))
            != NULL) {
            rc = fail(ctl, "%s:%lu: %s", name, lineno, why);
            break;
        }
    }
    free(line);
    if (rc == 0 && ferror(fp))
        rc = fail(ctl, "%s: %s", name, strerror(errno));
    if (fp != stdin)
        fclose(fp);
    if (rc == 0 && lineno == 0)
        rc = fail(ctl, "%s: empty input, not a dump", name);
    else if (rc == 0 && !end)
        rc = fail(ctl, "%s:%lu: input ends without the end record (a cut "
                  "dump?)", name, lineno);
    if (rc == 0 && set.n > 1) {
        qsort(set.r, set.n, sizeof(*set.r), load_cmp);
        for (i = 1; i < set.n && rc == 0; i++) {
            struct load_rec x = set.r[i - 1], y = set.r[i];

            x.line = y.line = 0;
            if (load_cmp(&x, &y) == 0)
                rc = fail(ctl, "%s:%lu: the same record as line %lu", name,
                          set.r[i].line, set.r[i - 1].line);
        }
    }
    if (rc != 0) {
        free(set.r);
        return rc;
    }
    st = ctl_open(ctl, 0);
    if (!merge) {
        if ((rc = ina_store_stat(st, &s)) != 0) {
            ina_store_close(st);
            free(set.r);
            return fail(ctl, "store %s: %s", ctl->conf->store,
                        ina_strerror(rc));
        }
        if (s.counters != 0 || s.sessions != 0) {
            ina_store_close(st);
            free(set.r);
            return fail(ctl, "store %s is not empty (%llu counters, %llu "
                        "session gauges): clear it with \"auditctl clear "
                        "--all\", or add to it with --merge",
                        ctl->conf->store, (unsigned long long) s.counters,
                        (unsigned long long) s.sessions);
        }
    }
    for (i = 0; i < set.n; i++) {
        rc = set.r[i].gauge ? ina_load_gauge(st, &set.r[i].g)
                            : ina_load_counter(st, &set.r[i].c);
        if (rc != 0)
            break;
    }
    ina_store_close(st);
    if (rc != 0) {
        rc = fail(ctl, "%s:%lu: %s (%zu of %zu records were loaded)", name,
                  set.r[i].line, ina_strerror(rc), i, set.n);
        free(set.r);
        return rc;
    }
    free(set.r);
    if (ctl->json) {
        o = jcheck(json_object());
        jset(o, "counters", jnum(set.counters));
        jset(o, "sessions", jnum(set.sessions));
        jprint(o);
    } else {
        printf("loaded %llu counters and %llu session gauges from %s\n",
               (unsigned long long) set.counters,
               (unsigned long long) set.sessions, name);
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------- */

/* find_command - the table entry that argv starts with
 *
 * Sets *words to the number of words of the name.  A first word that
 * only begins two-word names ("show") with a wrong or missing second
 * word is a usage error that lists the right ones. */

static const struct command *
find_command(int argc, char **argv, int *words)
{
    const struct command *cmd;
    struct ctl ctl;
    struct command fake;
    char list[256];
    size_t i, n, off = 0;
    const char *sp;
    int prefix = 0;

    for (i = 0; i < NCOMMANDS; i++) {
        cmd = &commands[i];
        sp = strchr(cmd->name, ' ');
        if (sp == NULL) {
            if (strcmp(argv[0], cmd->name) == 0) {
                *words = 1;
                return cmd;
            }
            continue;
        }
        n = (size_t) (sp - cmd->name);
        if (strlen(argv[0]) != n || strncmp(argv[0], cmd->name, n) != 0)
            continue;
        prefix = 1;
        off += (size_t) snprintf(list + off, sizeof(list) - off, "%s%s",
                                 off ? ", " : "", sp + 1);
        if (argc > 1 && strcmp(argv[1], sp + 1) == 0) {
            *words = 2;
            return cmd;
        }
    }
    memset(&ctl, 0, sizeof(ctl));
    if (prefix) {
        fake.name = argv[0];
        fake.fn = NULL;
        fake.synopsis = NULL;
        ctl.cmd = &fake;
        if (argc > 1)
            warnmsg(&ctl, "unknown object \"%s\" (%s)", argv[1], list);
        else
            warnmsg(&ctl, "what to show? (%s)", list);
    } else {
        warnmsg(NULL, "unknown subcommand \"%s\"", argv[0]);
    }
    usage(stderr, 2);
}

/* main - parse the global options and run the subcommand */

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    struct ctl ctl;
    int c, words, status;

    memset(&ctl, 0, sizeof(ctl));
    opterr = 0;
    /* '+': stop at the subcommand, whose options are its own. */
    while ((c = getopt_long(argc, argv, "+:c:jVh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            ctl.conf_path = optarg;
            break;
        case 'j':
            ctl.json = 1;
            break;
        case 'V':
            version();
        case 'h':
            usage(stdout, 0);
        case ':':
            warnmsg(NULL, "option %s needs a value", argv[optind - 1]);
            usage(stderr, 2);
        default:
            if (optopt != 0)
                warnmsg(NULL, "unknown option -%c", optopt);
            else
                warnmsg(NULL, "unknown option %s", argv[optind - 1]);
            usage(stderr, 2);
        }
    }
    if (optind == argc) {
        warnmsg(NULL, "missing subcommand");
        usage(stderr, 2);
    }
    ctl.cmd = find_command(argc - optind, argv + optind, &words);
    status = ctl.cmd->fn(&ctl, argc - optind - (words - 1),
                         argv + optind + (words - 1));
    ina_conf_free(ctl.conf);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        ctl.cmd = NULL;
        return fail(&ctl, "standard output: %s", strerror(errno));
    }
    return status;
}
