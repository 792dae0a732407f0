/* inaudit.h - libinaudit: per-prefix inbound traffic counters on LMDB
 *
 * libinaudit counts what happens on a mail server's inbound side
 * (connections, received messages, rejected messages, and sessions open
 * right now) per IP address and per CIDR block, in rolling time windows,
 * in one LMDB environment that every worker process of the MTA maps.
 * Any process reads consistent totals for any block over any range of
 * retained windows directly from the map; there is no server.
 *
 * This header is the manual.  Every function says what it does, what
 * each parameter means, what it returns and which error codes it can
 * return, and what may be done with it across fork() and threads.
 *
 * Error convention (as in LMDB): every fallible function returns an int.
 * 0 is success, a positive value is an errno value, LMDB's own codes
 * (-30799 .. -30780) pass through unchanged, and our codes are the INA_E*
 * block below (-31999 .. -31000).  ina_strerror() turns any of them into
 * text.  Where a message needs context (a file and line, the list of
 * configured monitors), the function also writes it into a buffer the
 * caller owns.  The library never prints, never exits and never aborts on
 * bad input; its one side channel is the log callback of
 * ina_store_set_log(), used for rare operational events (degraded mode,
 * reaped sessions).
 *
 * SPDX-License-Identifier: MIT
 */

#ifndef INAUDIT_H
#define INAUDIT_H 1

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the library and of this header. */
#define INA_VERSION_MAJOR 0
#define INA_VERSION_MINOR 1
#define INA_VERSION_PATCH 0
#define INA_VERSION_STRING "inbound-audit 0.1.0"

/* Version of the on-disk format.  A store written with a later format is
 * refused at open with INA_EVERSION; one of an older format is read as it
 * is by a read-only handle and upgraded by a read-write open (version 1:
 * no now records; version 2: the now records in a named database;
 * version 3: their values not packed). */
#define INA_FORMAT_VERSION 4

#if defined(__GNUC__) || defined(__clang__)
#define INA_NONNULL(...) __attribute__((__nonnull__(__VA_ARGS__)))
#define INA_WUR __attribute__((__warn_unused_result__))
#define INA_PRINTF(f, a) __attribute__((__format__(__printf__, f, a)))
#else
#define INA_NONNULL(...)
#define INA_WUR
#define INA_PRINTF(f, a)
#endif

/* Return codes.  Positive values are errno values; LMDB's codes pass
 * through; these are ours. */

/* A text is not an address, a CIDR block or a bare "/mask". */
#define INA_EBADCIDR (-31000)
/* A text is not a monitor "W,N", or W or N is out of range. */
#define INA_EBADMONITOR (-31001)
/* The monitor named is not in the configuration. */
#define INA_ENOMONITOR (-31002)
/* A window index is beyond the monitor's history, or start > end. */
#define INA_EWINDOW (-31003)
/* A block's mask is finer than the finest configured granularity. */
#define INA_ETOOFINE (-31004)
/* No granularity is configured for the block's address family. */
#define INA_ENOFAMILY (-31005)
/* A text names no event ("connection", "reception", "rejection"). */
#define INA_EBADEVENT (-31006)
/* The store was written in an incompatible format version. */
#define INA_EVERSION (-31007)
/* The configuration could not be loaded (details in the errbuf). */
#define INA_ECONF (-31008)
/* A cluster-wide total was asked for and no cluster is configured. */
#define INA_ENOCLUSTER (-31009)
/* A mutating call was made on a store opened read-only. */
#define INA_ERDONLY (-31010)
/* A service name is empty or longer than INA_SERVICE_MAX. */
#define INA_EBADSERVICE (-31011)
/* The clock reads a time before the epoch or past the format's range. */
#define INA_ECLOCK (-31012)
/* A bare "/mask" was given where a full address is required. */
#define INA_ENOADDR (-31013)
/* The store directory is unsafe (relative, a symlink, world-writable,
 * owned by another user) or is not a directory. */
#define INA_EUNSAFE (-31014)

/* The first and last of our codes, for range checks. */
#define INA_ERRCODE_FIRST INA_EUNSAFE
#define INA_ERRCODE_LAST INA_EBADCIDR

/* ina_strerror - text for any return code
 *
 * Returns a static string for 0, an errno value, an LMDB code or an INA_E
 * code.  Unknown codes get a generic text.  Thread-safe. */
const char *ina_strerror(int rc);

/* ---------------------------------------------------------------------
 * Addresses and CIDR blocks
 * ------------------------------------------------------------------- */

/* Longest text ina_cidr_parse() accepts; longer input is INA_EBADCIDR.
 * The longest valid form, "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]
 * /128", is 51 characters. */
#define INA_CIDR_TEXT_MAX 64

/* Buffer size that always holds ina_cidr_format()'s output. */
#define INA_CIDR_STRLEN 48

/* A parsed address or block.
 *
 * family is 4 or 6; 0 means a bare "/mask" with no address (relative to
 * the current connection, see ina_cidr_resolve()).  plen is the mask
 * length, 0..32 or 0..128.  addr holds the address in network byte order
 * (IPv4 in addr[0..3]) with every bit past plen cleared.  has_mask tells
 * whether the text carried an explicit mask; an address without one is a
 * host (/32 or /128).  An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
 * stored as the IPv4 address, its mask reduced by 96. */
struct ina_cidr {
    uint8_t family;
    uint8_t plen;
    uint8_t has_mask;
    uint8_t addr[16];
};

/* ina_cidr_parse - parse an address, a CIDR block or a bare "/mask"
 *
 * Accepts dotted-quad IPv4, every RFC 4291 / RFC 5952 IPv6 text form
 * (including embedded IPv4), IPv6 in square brackets with the mask inside
 * or outside them ("[2001:db8::1]/64"), an optional "/N" mask, and a bare
 * "/N" (stored with family 0).  Host bits under the mask are cleared.
 * text need not be NUL-terminated: len bytes are read, and a NUL among
 * them is an error.  Leading or trailing blanks are errors.
 *
 * On error, if errbuf is not NULL, a message quoting the input and saying
 * what is wrong is written into it (errlen bytes at most, always
 * terminated).
 *
 * Returns 0, or INA_EBADCIDR.  Pure function; thread-safe. */
int ina_cidr_parse(const char *text, size_t len, struct ina_cidr *out,
                   char *errbuf, size_t errlen) INA_NONNULL(3) INA_WUR;

/* ina_cidr_resolve - apply a bare "/mask" to the current connection
 *
 * If rel has an address (family 4 or 6), it is copied to out unchanged.
 * If it is a bare mask (family 0), out is peer under rel's mask; an IPv4
 * peer with a mask over 32 is INA_EBADCIDR.  peer may be NULL when there is
 * no current connection: then a bare mask is INA_ENOADDR.
 *
 * Returns 0, INA_EBADCIDR or INA_ENOADDR.  Thread-safe. */
int ina_cidr_resolve(const struct ina_cidr *rel, const struct ina_cidr *peer,
                     struct ina_cidr *out) INA_NONNULL(1, 3) INA_WUR;

/* ina_cidr_host - make a host block (/32 or /128) of an address
 *
 * Copies addr with its mask set to the full length of its family. */
void ina_cidr_host(const struct ina_cidr *addr, struct ina_cidr *out)
    INA_NONNULL(1, 2);

/* ina_cidr_format - write a block as text
 *
 * Writes "a.b.c.d/N" or the RFC 5952 form "x::y/N" into buf, which should
 * hold INA_CIDR_STRLEN bytes.  A bare mask is written "/N".  Returns buf.
 * Thread-safe. */
char *ina_cidr_format(const struct ina_cidr *c, char *buf, size_t len)
    INA_NONNULL(1, 2);

/* ---------------------------------------------------------------------
 * Monitors and events
 * ------------------------------------------------------------------- */

/* Limits of a monitor "W,N": W seconds a window (1 .. INA_WIDTH_MAX),
 * N completed windows of history (0 .. INA_HISTORY_MAX). */
#define INA_WIDTH_MAX 31622400u /* 366 days */
#define INA_HISTORY_MAX 100000u
/* Buffer size that holds any canonical monitor name. */
#define INA_MONITOR_NAMELEN 24

/* A monitor: windows width seconds long, aligned to the Unix epoch, and
 * history completed windows kept beside the current one (indices 0 .. N).
 * name is the canonical "W,N". */
struct ina_monitor {
    uint32_t width;
    uint32_t history;
    char name[INA_MONITOR_NAMELEN];
};

/* ina_monitor_parse - parse a monitor name "W,N"
 *
 * Blanks around either number are allowed ("60, 10" is "60,10"); nothing
 * else is.  Fills out, name included in canonical form.  On error writes a
 * message into errbuf if it is not NULL.  Returns 0 or INA_EBADMONITOR.
 * Thread-safe. */
int ina_monitor_parse(const char *text, struct ina_monitor *out,
                      char *errbuf, size_t errlen) INA_NONNULL(1, 2) INA_WUR;

/* ina_window_start - start time of window index idx of mon at time now
 *
 * Window 0 is the one containing now; idx 1 is the one before.  Returns
 * the Unix time of its first second (negative before the epoch). */
int64_t ina_window_start(const struct ina_monitor *mon, int64_t now,
                         uint32_t idx) INA_NONNULL(1);

/* The windowed events.  The session gauge is separate (ina_session_*). */
enum ina_event {
    INA_CONNECTION = 0,
    INA_RECEPTION = 1,
    INA_REJECTION = 2
};
#define INA_NEVENTS 3

/* ina_event_parse - event from its name
 *
 * Accepts "connection", "reception", "rejection" and their plurals.
 * Returns 0 or INA_EBADEVENT. */
int ina_event_parse(const char *name, enum ina_event *ev)
    INA_NONNULL(1, 2) INA_WUR;

/* ina_event_name - singular name of an event ("connection", ...) */
const char *ina_event_name(enum ina_event ev);

/* ---------------------------------------------------------------------
 * Configuration
 * ------------------------------------------------------------------- */

#define INA_MAX_MONITORS 32
#define INA_MAX_PREFIXES 16
/* Default and smallest map size ceilings, bytes. */
#define INA_MAP_SIZE_DEFAULT (1024ull * 1024 * 1024)
#define INA_MAP_SIZE_MIN (1024ull * 1024)
/* Default and largest flush delay, milliseconds (0: every record is its
 * own transaction). */
#define INA_FLUSH_DELAY_DEFAULT 100
#define INA_FLUSH_DELAY_MAX 1000
/* Longest service name of the session gauge. */
#define INA_SERVICE_MAX 32
/* Longest cluster node name. */
#define INA_NODE_MAX 64
/* Default, smallest and largest interval of the sync agent, ms. */
#define INA_CLUSTER_INTERVAL_DEFAULT 100
#define INA_CLUSTER_INTERVAL_MIN 10
#define INA_CLUSTER_INTERVAL_MAX 60000

/* The effective configuration.  ina_conf_load() fills it; the caller
 * frees it with ina_conf_free().  prefixes4 and prefixes6 are sorted from
 * coarsest to finest, without duplicates; either may be empty, in which
 * case that family is not counted. */
struct ina_conf {
    char *file;          /* where it was read from, or "(builtin)" */
    char *store;         /* absolute directory of the LMDB environment */
    uint64_t map_size;   /* ceiling of the memory map, bytes */
    uint32_t flush_delay; /* ms a record may wait before it is applied */
    char *group;         /* group of the store's files, or NULL */
    size_t nmonitors;
    struct ina_monitor monitors[INA_MAX_MONITORS];
    size_t nprefixes4;
    uint8_t prefixes4[INA_MAX_PREFIXES];
    size_t nprefixes6;
    uint8_t prefixes6[INA_MAX_PREFIXES];
    int cluster;         /* a cluster section is present */
    char *cluster_redis; /* "host:port" or "unix:/path" */
    char *cluster_node;  /* this node's name */
    uint32_t cluster_interval;   /* ms between two publications */
    char *cluster_password_file; /* Redis password file, or NULL */
};

/* ina_conf_path - find the configuration file
 *
 * The lookup order of the SPEC: explicit if it is not NULL, else
 * $INBOUND_AUDIT_CONF if set and not empty, else the build's
 * $(sysconfdir)/inbound-audit/inbound_audit.conf.  The chosen path is
 * copied into buf.  Returns 0, or ENAMETOOLONG if it does not fit. */
int ina_conf_path(const char *explicit_path, char *buf, size_t len)
    INA_NONNULL(2) INA_WUR;

/* ina_conf_load - load and validate a configuration file
 *
 * Parses path with libconfuse and checks every value: monitors (W >= 1,
 * N >= 0, no duplicates after canonicalisation), prefixes (at most /32 and
 * /128), an absolute store path, a map size with an optional K, M, G or T
 * suffix.  On error writes "file:line: what and why" into errbuf and
 * returns INA_ECONF, or ENOENT/EACCES/... if the file cannot be read (the
 * message names the file).  On success *confp is a new configuration.
 * Thread-safe: calls are serialised, as libconfuse's lexer is global. */
int ina_conf_load(const char *path, struct ina_conf **confp, char *errbuf,
                  size_t errlen) INA_NONNULL(1, 2) INA_WUR;

/* ina_conf_parse_text - load a configuration from a string
 *
 * As ina_conf_load(), for a configuration held in memory; name is used in
 * messages in place of a file name. */
int ina_conf_parse_text(const char *text, const char *name,
                        struct ina_conf **confp, char *errbuf,
                        size_t errlen) INA_NONNULL(1, 2, 3) INA_WUR;

/* ina_conf_default_text - the built-in sample configuration
 *
 * Returns the text of the configuration the demo runs on: the sample
 * conf/inbound_audit.conf with its store set to "/var/lib/inbound-audit".
 * Callers replace the store with ina_conf_set_store(). */
const char *ina_conf_default_text(void);

/* ina_conf_set_store - replace the store directory of a configuration
 *
 * path must be absolute.  Returns 0, EINVAL or ENOMEM. */
int ina_conf_set_store(struct ina_conf *conf, const char *path)
    INA_NONNULL(1, 2) INA_WUR;

/* ina_conf_find_monitor - look up a monitor by name
 *
 * name is parsed with ina_monitor_parse(), so "60, 10" finds "60,10".
 * Returns 0 and sets *mon, INA_EBADMONITOR, or INA_ENOMONITOR; for either
 * error, if errbuf is not NULL, it says which monitors are configured. */
int ina_conf_find_monitor(const struct ina_conf *conf, const char *name,
                          const struct ina_monitor **mon, char *errbuf,
                          size_t errlen) INA_NONNULL(1, 2, 3) INA_WUR;

/* ina_conf_copy - a deep copy of a configuration
 *
 * *copyp is a new configuration to free with ina_conf_free().  Returns 0
 * or ENOMEM. */
int ina_conf_copy(const struct ina_conf *conf, struct ina_conf **copyp)
    INA_NONNULL(1, 2) INA_WUR;

/* ina_conf_free - free a configuration; NULL is allowed */
void ina_conf_free(struct ina_conf *conf);

/* ---------------------------------------------------------------------
 * The store
 * ------------------------------------------------------------------- */

struct ina_store;

/* Flags of ina_store_open(). */
/* Open for reading only: mutating calls return INA_ERDONLY, and nothing
 * is written at open (no directory or files are created). */
#define INA_STORE_RDONLY 0x1

/* ina_store_open - open (or create) the store of a configuration
 *
 * Creates the store directory (mode 0750) and the LMDB environment in it
 * (files 0660) if they do not exist, unless INA_STORE_RDONLY is given.
 * Checks the format-version record and refuses a later version with
 * INA_EVERSION; a read-write open upgrades an older one, and is refused
 * with INA_EVERSION when a read-only handle of this process (or of the
 * parent it forked from) holds the store open at that older format.
 * The configuration is copied; the caller may free conf
 * afterwards.  Clears stale reader slots and reaps sessions of dead
 * processes.
 *
 * The map size is fixed at open to the larger of the configured ceiling
 * and the current file size, and never changed at run time, so no process
 * ever remaps under another.
 *
 * One process may open any number of handles on one store: they share
 * one LMDB environment (LMDB forbids opening a file twice in a process).
 *
 * On error writes a message naming the store and the reason into errbuf
 * if it is not NULL.  Returns 0, an errno value, an LMDB code,
 * INA_EVERSION or INA_EUNSAFE.
 *
 * Fork: a handle opened before fork() keeps working in the child, which
 * reopens the environment on its first call.  Threads: a handle may be
 * used from several threads; calls on one handle are serialised. */
int ina_store_open(const struct ina_conf *conf, unsigned flags,
                   struct ina_store **storep, char *errbuf, size_t errlen)
    INA_NONNULL(1, 3) INA_WUR;

/* ina_store_close - close a handle; NULL is allowed
 *
 * The environment is closed with the last handle of the process.  Call it
 * in the process that opened the handle or in a child; either is safe. */
void ina_store_close(struct ina_store *st);

/* ina_store_conf - the configuration the handle was opened with */
const struct ina_conf *ina_store_conf(const struct ina_store *st)
    INA_NONNULL(1);

/* The clock: returns the current Unix time in seconds.  The default reads
 * clock_gettime(CLOCK_REALTIME), so faketime(1) applies. */
typedef int64_t (*ina_clock_fn)(void *arg);

/* ina_store_set_clock - replace the clock of a handle (tests)
 *
 * fn NULL restores the default clock. */
void ina_store_set_clock(struct ina_store *st, ina_clock_fn fn, void *arg)
    INA_NONNULL(1);

/* ina_store_now - the handle's clock reading */
int64_t ina_store_now(struct ina_store *st) INA_NONNULL(1);

/* Log priorities passed to the log callback (syslog's values). */
#define INA_LOG_ERR 3
#define INA_LOG_WARNING 4
#define INA_LOG_NOTICE 5
#define INA_LOG_INFO 6

typedef void (*ina_log_fn)(void *arg, int priority, const char *msg);

/* ina_store_set_log - where operational events are reported
 *
 * The default sends them to syslog(3).  fn NULL silences them. */
void ina_store_set_log(struct ina_store *st, ina_log_fn fn, void *arg)
    INA_NONNULL(1);

/* ina_record - count n events of one kind from one address
 *
 * Adds n to the current window's counter of addr's prefix, at every
 * configured granularity of its family, for every monitor width.  addr's
 * mask is ignored: it is the host address.
 *
 * With a flush delay (flush_delay > 0, the default), the event is first
 * appended to the process's journal, a file mapped in the store
 * directory, and added to the pending counts that every process on the
 * store shares (the file "pending" there): queries from any process see
 * it as soon as the call returns.  Pending counts are applied to the
 * store in one transaction when flush_delay has passed since the first
 * of them (checked by every call of every process), at a window
 * boundary, when a buffer fills, before a range query, by ina_flush()
 * and by ina_store_close() (and at exit()); one process at a time starts
 * a timed flush, and a flush applies every process's journal.  If a
 * process dies, a later flush applies its journal: nothing whose call
 * returned is lost, at most the call in flight is added (and queries may
 * see part of that one call until it is applied).
 * With flush_delay = 0 the event is one LMDB transaction of its own.
 *
 * A full map never fails the call: the store expires old windows, then
 * counts at coarser granularities only (degraded mode, logged once and
 * shown by ina_store_stat()).
 *
 * Returns 0, INA_ERDONLY, INA_ENOFAMILY (the family has no granularity;
 * nothing is counted), INA_ENOADDR, INA_ECLOCK, EINVAL, an errno value if
 * the journal cannot be created, or an LMDB code on I/O error. */
int ina_record(struct ina_store *st, enum ina_event ev,
               const struct ina_cidr *addr, uint64_t n)
    INA_NONNULL(1, 3) INA_WUR;

/* ina_flush - apply every process's pending events and sessions on the
 * store now
 *
 * Queries see pending events without it; it puts them in the tree, for
 * readers of the tree itself (the sync agent, dumps) and hosts' idle
 * loops.  Returns 0, EAGAIN when a writer stayed caught inside a record
 * call for seconds (a stopped process: the next flush finishes the
 * work), or an LMDB code. */
int ina_flush(struct ina_store *st) INA_NONNULL(1) INA_WUR;

/* Flags of ina_query(). */
/* The cluster-wide total: this node's count plus the other nodes' counts
 * that the sync agent has folded into the local cluster table. */
#define INA_QUERY_CLUSTER 0x1

/* ina_query - total of an event for a block over a range of windows
 *
 * Sums the counts of ev for every address in block over windows startv ..
 * endv (0 the current window, up to the monitor's history N) of the
 * monitor named monitor ("W,N", blanks allowed), read from one snapshot.
 * A mask equal to a configured granularity is one lookup per window; any
 * other mask is the sum over the coarsest finer granularity, one range
 * scan per window.  block must carry an address (not a bare mask).
 *
 * With INA_QUERY_CLUSTER the count is cluster-wide: this node's count
 * (as without the flag) plus the other nodes' counts of the same block
 * and windows, read from the cluster table in the same snapshot.  The
 * cluster table is filled by the sync agent (inaudit-sync, see the
 * "Cluster" section below); the query itself is a local read with no
 * network I/O, and the other nodes' part is as fresh as the agent made
 * it (ina_cluster_status() tells how fresh).  Without a cluster section
 * in the configuration, INA_QUERY_CLUSTER is INA_ENOCLUSTER.
 *
 * On error, if errbuf is not NULL, writes a message that says what is
 * wrong and what is valid (the configured monitors, the window range, the
 * finest granularity).
 *
 * Returns 0 and sets *count, or INA_EBADMONITOR, INA_ENOMONITOR,
 * INA_EWINDOW, INA_ETOOFINE, INA_ENOFAMILY, INA_ENOADDR, INA_ENOCLUSTER, or
 * an LMDB code.  Never writes to the store. */
int ina_query(struct ina_store *st, enum ina_event ev, const char *monitor,
              const struct ina_cidr *block, uint32_t startv, uint32_t endv,
              unsigned flags, uint64_t *count, char *errbuf, size_t errlen)
    INA_NONNULL(1, 3, 4, 8) INA_WUR;

/* ina_session_open, ina_session_close - move the session gauge
 *
 * Adds one (open) or subtracts one (close) to the sessions open now from
 * addr to service ("SMTP" if NULL), at every granularity of addr's family.
 * The session is owned by the calling process: if it dies with sessions
 * open, another process subtracts them (see ina_reap()).  A session must
 * be closed by the process that opened it.  Closing more sessions than are
 * open leaves the gauge at zero, never below.
 *
 * With flush_delay > 0 (the default) the call is buffered as a record is:
 * every process's ina_session_count() counts it as soon as it returns,
 * and the store's tree gets it at the next flush.  It never starts a
 * timed flush, and waits for the writer lock only when the shared
 * session tables are full (it then applies them first) or when the store
 * has no pending file yet (the first buffered call makes it).
 *
 * Returns 0, INA_ERDONLY, INA_EBADSERVICE, INA_ENOFAMILY or an LMDB
 * code. */
int ina_session_open(struct ina_store *st, const struct ina_cidr *addr,
                     const char *service) INA_NONNULL(1, 2) INA_WUR;
int ina_session_close(struct ina_store *st, const struct ina_cidr *addr,
                      const char *service) INA_NONNULL(1, 2) INA_WUR;

/* ina_session_adjust - open or close sessions by hand (auditctl)
 *
 * Moves the session gauge of addr's host to service ("SMTP" if NULL) at
 * every granularity of its family, like ina_session_open() and
 * ina_session_close(), but without an owner record: such sessions belong
 * to no process, are never reaped (as loaded gauges are not), and stay
 * until closed by hand or cleared.  delta > 0 opens delta sessions.
 * delta < 0 closes at most -delta of the sessions no process owns in the
 * finest configured block holding addr (that block's gauge less its
 * owner records), so a close by hand never takes a worker's session.
 * *moved, if not NULL, gets the number of sessions actually opened or
 * closed.
 *
 * Returns 0, INA_ERDONLY, INA_EBADSERVICE, INA_ENOADDR, INA_ENOFAMILY,
 * EINVAL (delta is INT64_MIN) or an LMDB code. */
int ina_session_adjust(struct ina_store *st, const struct ina_cidr *addr,
                       const char *service, int64_t delta, uint64_t *moved)
    INA_NONNULL(1, 2) INA_WUR;

/* The service name of ina_session_count() that counts cluster-wide. */
#define INA_SERVICE_CLUSTER "inbound_cidr"

/* ina_session_count - sessions open now from a block to a service
 *
 * service NULL means "SMTP".  The service INA_SERVICE_CLUSTER
 * ("inbound_cidr", as in Momentum) is the cluster-wide count of SMTP
 * sessions: this node's "SMTP" gauge plus the "SMTP" gauges the other
 * nodes last published, read locally from the cluster table; without a
 * cluster section it is INA_ENOCLUSTER.  A node that has not been heard
 * from for INA_CLUSTER_GONE_MS no longer counts (its sessions are
 * presumed closed) until it is heard again.  Sessions still buffered
 * (ina_session_open()) count: a mask equal to a granularity adds them
 * from the shared tables, any other mask applies them first.
 *
 * Returns 0 and sets *count, or INA_EBADSERVICE, INA_ETOOFINE,
 * INA_ENOFAMILY, INA_ENOADDR, INA_ENOCLUSTER or an LMDB code; errbuf as
 * for ina_query(). */
int ina_session_count(struct ina_store *st, const struct ina_cidr *block,
                      const char *service, uint64_t *count, char *errbuf,
                      size_t errlen) INA_NONNULL(1, 2, 4) INA_WUR;

/* ina_reap - subtract the sessions of processes that died
 *
 * A process is identified by its pid and its start time, so a recycled
 * pid is never mistaken for the process that held it.  ina_store_open()
 * and the write path (at most every few seconds) call this already.
 * Sessions still buffered are applied first, so that a dead process's
 * are all taken; the write path's pass, which does not flush, leaves a
 * dead process with sessions still buffered to a later pass.  *reaped,
 * if not NULL, gets the number of sessions subtracted now.
 * Returns 0, INA_ERDONLY or an LMDB code. */
int ina_reap(struct ina_store *st, uint64_t *reaped) INA_NONNULL(1) INA_WUR;

/* ina_expire - delete every window no monitor retains any more
 *
 * Windows older than the longest history of their width, and windows in
 * the future (after the clock stepped back), are deleted.  The write path
 * does this by itself in bounded chunks; this call finishes the job.  The
 * other nodes' counters in the cluster table expire with the same
 * windows (the sync agent also expires them as it goes).  *removed, if
 * not NULL, gets the number of counters deleted.  Returns 0, INA_ERDONLY
 * or an LMDB code. */
int ina_expire(struct ina_store *st, uint64_t *removed)
    INA_NONNULL(1) INA_WUR;

/* ina_clear - delete the counters of a block, or of everything
 *
 * block NULL clears every counter and session gauge.  Otherwise every
 * windowed counter and session gauge whose prefix lies inside block, at
 * every granularity and every window, is deleted, and so are counters of
 * coarser prefixes that contain block (they would otherwise still count
 * the block's events).  *removed gets the number of records deleted.
 * Only this node's counts are cleared: with a cluster, the sync agent
 * publishes the removal, so the other nodes' cluster tables follow; the
 * local cluster table mirrors the other nodes and is left alone (clear
 * on each node to clear a block cluster-wide).
 * Returns 0, INA_ERDONLY, INA_ENOADDR or an LMDB code. */
int ina_clear(struct ina_store *st, const struct ina_cidr *block,
              uint64_t *removed) INA_NONNULL(1) INA_WUR;

/* Store statistics (ina_store_stat). */
struct ina_stat {
    uint32_t format_version;
    uint64_t map_size;       /* bytes of the map */
    uint64_t map_used;       /* bytes in use (pages not free) */
    uint64_t file_size;      /* bytes of data.mdb on disk */
    uint64_t page_size;
    uint64_t counters;       /* windowed counter records */
    uint64_t sessions;       /* session gauge records */
    uint64_t owners;         /* per-process session ownership records */
    uint32_t readers_max;
    uint32_t readers_used;   /* reader slots in use */
    uint32_t readers_stale;  /* slots cleared by this call */
    int degraded;            /* finest granularities skipped now (0: none) */
    uint64_t reaped;         /* sessions reaped since the store was made */
    uint64_t dropped;        /* events lost to a full map, ever */
    int64_t oldest_window;   /* start time of the oldest stored window */
    int64_t newest_window;   /* start time of the newest stored window */
};

/* ina_store_stat - fill st with the store's statistics
 *
 * Clears stale reader slots first (readers_stale says how many).  Reads
 * one snapshot.  Returns 0 or an LMDB code. */
int ina_store_stat(struct ina_store *st, struct ina_stat *out)
    INA_NONNULL(1, 2) INA_WUR;

/* One counter record, as walked by ina_walk(). */
struct ina_counter {
    uint32_t width;          /* monitor width W, seconds */
    uint32_t window;         /* window number: start time / width */
    struct ina_cidr prefix;  /* the counted prefix (has_mask set) */
    uint64_t count[INA_NEVENTS];
};

/* One session gauge record, as walked by ina_walk(). */
struct ina_gauge {
    char service[INA_SERVICE_MAX + 1];
    struct ina_cidr prefix;
    uint64_t count;
};

/* Callbacks of ina_walk(); a non-zero return stops the walk and is
 * returned by it.  Either may be NULL. */
struct ina_walker {
    int (*counter)(void *arg, const struct ina_counter *c);
    int (*gauge)(void *arg, const struct ina_gauge *g);
    void *arg;
};

/* ina_walk - visit every counter and gauge record in key order
 *
 * Reads one snapshot.  The callbacks must not call into the store.
 * Returns 0, a callback's non-zero value, or an LMDB code. */
int ina_walk(struct ina_store *st, const struct ina_walker *w)
    INA_NONNULL(1, 2) INA_WUR;

/* ina_load_counter, ina_load_gauge - add a record back (dump/load)
 *
 * Adds c's counts to the counter of its width, window and prefix, and g's
 * count to the gauge of its service and prefix, as ina_walk() reported
 * them.  Loaded gauges are owned by no process and are never reaped.
 * Returns 0, INA_ERDONLY, EINVAL or an LMDB code. */
int ina_load_counter(struct ina_store *st, const struct ina_counter *c)
    INA_NONNULL(1, 2) INA_WUR;
int ina_load_gauge(struct ina_store *st, const struct ina_gauge *g)
    INA_NONNULL(1, 2) INA_WUR;

/* One row of ina_top(). */
struct ina_top_entry {
    struct ina_cidr prefix;
    uint64_t count;
};

/* ina_top - the blocks with the most events
 *
 * Sums ev over windows startv .. endv of monitor, per block of family
 * (4 or 6) and mask plen, and returns the k largest, largest first (ties
 * in address order), in out[0 .. *n-1].  plen may be any mask not finer
 * than the family's finest granularity.  *total gets the sum over all
 * blocks of the family.  Reads one snapshot.
 *
 * Returns 0, INA_ENOMONITOR, INA_EBADMONITOR, INA_EWINDOW, INA_ETOOFINE,
 * INA_ENOFAMILY, ENOMEM or an LMDB code; errbuf as for ina_query(). */
int ina_top(struct ina_store *st, enum ina_event ev, const char *monitor,
            int family, unsigned plen, uint32_t startv, uint32_t endv,
            struct ina_top_entry *out, size_t k, size_t *n, uint64_t *total,
            char *errbuf, size_t errlen)
    INA_NONNULL(1, 3, 8, 10, 11) INA_WUR;

/* ---------------------------------------------------------------------
 * Cluster
 *
 * With a cluster section, one sync agent per node (inaudit-sync) shares
 * the node's counts with the other nodes through Redis, and folds theirs
 * into the cluster table of the local store, which cluster-wide queries
 * read (INA_QUERY_CLUSTER, INA_SERVICE_CLUSTER).  The functions below are
 * the agent's: the store does the bookkeeping, the agent the transport.
 *
 * Producer.  The store keeps what this node has published (the
 * "published" table: every counter and gauge as the other nodes know
 * it).  ina_cluster_collect() compares the local counts with it and
 * writes the differences as numbered messages into an outbox, updating
 * the published table and the sequence number in the same transaction;
 * the agent sends the outbox (ina_cluster_outbox()) and then deletes what
 * was sent (ina_cluster_sent()).  A crash anywhere leaves either the
 * changes unpublished (found again by the next collect) or a message in
 * the outbox (sent again: receivers skip numbers they have), never a
 * change lost or counted twice.  While Redis is unreachable nothing is
 * collected; the changes wait in the store and go out as one message.
 *
 * Consumer.  ina_cluster_apply() applies other nodes' messages in one
 * transaction, together with each node's last applied sequence number,
 * so a message is applied exactly once whatever is replayed.  A node
 * whose messages went missing (Redis restarted without persistence, the
 * stream was trimmed, the node is new here) is asked for a sweep: its
 * whole published table sent again as absolute values, after which the
 * rows it no longer has are deleted.  So a node that joins late, or
 * returns, catches up on every retained window.
 *
 * Message numbers are per node and per incarnation (a random number made
 * with the node's store, so that a replaced store starts afresh).  All
 * nodes must use the same monitors and granularities and keep their
 * clocks in step (NTP): windows are numbered from the Unix epoch.
 * ------------------------------------------------------------------- */

/* A node not heard from for this long is gone: its session gauges stop
 * counting until it is heard again (counters stay, and age out with
 * their windows). */
#define INA_CLUSTER_GONE_MS 30000
/* Room for a transport position (a Redis stream ID) with its NUL. */
#define INA_CLUSTER_POS_MAX 48

/* Kinds of messages. */
/* Changes since the node's previous message: rows of signed deltas. */
#define INA_CLUSTER_DELTA 'D'
/* A chunk of a sweep: rows of absolute values. */
#define INA_CLUSTER_SWEEP 'S'
/* The end of a sweep that began at sweep_start: the receiver deletes the
 * node's rows no message since sweep_start has mentioned. */
#define INA_CLUSTER_SWEEP_END 'E'

/* One message of a node: in the outbox, on the wire and when applied.
 * data holds the rows in the store's own compact encoding, opaque to the
 * transport. */
struct ina_cluster_msg {
    const char *node;        /* the node that made it */
    uint64_t inc;            /* that node's store incarnation */
    uint64_t seq;            /* its number, from 1, per incarnation */
    int kind;                /* INA_CLUSTER_DELTA, _SWEEP or _SWEEP_END */
    int64_t as_of;           /* ms: with this message, every change the
                              * node committed before as_of is sent; 0
                              * for no such claim */
    uint64_t sweep_start;    /* _SWEEP, _SWEEP_END: where the sweep began */
    const void *data;
    size_t len;
    const char *pos;         /* its transport position, or NULL */
};

/* A heartbeat: how far a node has sent its messages. */
struct ina_cluster_beat {
    const char *node;
    uint64_t inc;
    uint64_t seq;            /* every message up to seq is sent */
    int64_t as_of;           /* ms: and holds every change before as_of */
};

/* A request of another node for a sweep of this node's table. */
struct ina_cluster_request {
    const char *node;        /* who asks (for the log) */
    uint64_t inc;            /* the incarnation it asks of */
    uint64_t after;          /* a sweep must begin after this number */
};

/* Flags of ina_cluster_collect(). */
/* Compare every retained window of every width, not only the recent
 * ones (events reach older windows only by a late flush, a journal
 * replay, a load or a clear; the agent does this every half minute, so
 * such changes travel up to that late, and as_of does not cover them). */
#define INA_CLUSTER_FULL 0x1

/* ina_cluster_collect - put this node's changes into the outbox
 *
 * Compares the local counters with the published table: those of the
 * current and previous windows of the narrowest width, and, in the wider
 * widths, the blocks that changed there (every event counts at every
 * width, so the work is that of the narrowest windows); with
 * INA_CLUSTER_FULL, every retained window of every width.  The session
 * gauges are compared too.  The differences are written into new outbox
 * messages (at most a thousand rows a message; one transaction each,
 * which also updates the published table), then, if
 * another node asked for a sweep, the next chunk of it.  now_ms is the
 * caller's clock in ms (the as_of of the last message).  *seq, if not
 * NULL, gets the number of the last message in the outbox (0: none ever),
 * *rows the number of rows written now.  The counters are read from a
 * snapshot: the MTA's writers never wait for the comparison.
 *
 * Returns 0, INA_ENOCLUSTER, INA_ERDONLY, ENOSPC (the map is nearly full:
 * nothing is collected, so local counting keeps its room), ENOMEM or an
 * LMDB code. */
int ina_cluster_collect(struct ina_store *st, unsigned flags, int64_t now_ms,
                        uint64_t *seq, uint64_t *rows)
    INA_NONNULL(1) INA_WUR;

/* ina_cluster_outbox - visit the outbox messages numbered after after
 *
 * Calls fn for each, in order, from one snapshot; the message and its
 * data are valid during the call only.  A non-zero return of fn stops the
 * walk and is returned.  Returns 0, INA_ENOCLUSTER or an LMDB code. */
int ina_cluster_outbox(struct ina_store *st, uint64_t after,
                       int (*fn)(void *arg, const struct ina_cluster_msg *m),
                       void *arg) INA_NONNULL(1, 3) INA_WUR;

/* ina_cluster_sent - the outbox up to seq has been sent
 *
 * Deletes those messages and records seq and now_ms for
 * ina_cluster_status().  Returns 0, INA_ENOCLUSTER, INA_ERDONLY or an LMDB
 * code. */
int ina_cluster_sent(struct ina_store *st, uint64_t seq, int64_t now_ms)
    INA_NONNULL(1) INA_WUR;

/* ina_cluster_apply - fold other nodes' messages into the cluster table
 *
 * In one transaction: applies msgs[0 .. nmsgs-1] (in each node's order;
 * numbers already applied are skipped, a missing number marks the node
 * for a resync), records each node's number, transport position and
 * freshness; then takes the heartbeats beats[0 .. nbeats-1], which must
 * have been read before the caller read every message available (a beat
 * ahead of what was applied then means messages were lost: the node is
 * marked for a resync and its position reset); then the sweep requests
 * addressed to this node; then does the upkeep: deletes expired windows
 * of the cluster table (a bounded chunk), drops the gauges of nodes gone
 * for INA_CLUSTER_GONE_MS and forgets nodes silent for longer than the
 * longest retained history.  Messages of this node itself are ignored.
 * Rows of widths or granularities this node does not count, and of
 * windows it no longer keeps, are skipped.  A malformed message is
 * skipped, logged, and marks its node for a resync.  now_ms is the
 * caller's clock.  Any array may be empty (NULL with a count of 0).
 *
 * Returns 0, INA_ENOCLUSTER, INA_ERDONLY, ENOSPC (the map is nearly full:
 * nothing is applied; the caller reads the messages again later) or an
 * LMDB code. */
int ina_cluster_apply(struct ina_store *st, const struct ina_cluster_msg *msgs,
                      size_t nmsgs, const struct ina_cluster_beat *beats,
                      size_t nbeats, const struct ina_cluster_request *reqs,
                      size_t nreqs, int64_t now_ms) INA_NONNULL(1) INA_WUR;

/* This node's side of the sync, as ina_cluster_status() reports it. */
struct ina_cluster_self {
    uint64_t inc;            /* the store's incarnation (0: none yet) */
    uint64_t seq;            /* last message number collected */
    uint64_t sent;           /* last message number sent */
    int64_t sent_at;         /* ms when it was sent (0: never) */
    uint64_t outbox;         /* messages waiting to be sent */
    int sweeping;            /* a sweep is under way */
    uint64_t sweep_start;    /* where the last sweep began (0: none) */
    uint64_t rows;           /* rows in the cluster table (all nodes) */
};

/* Another node, as this store knows it. */
struct ina_cluster_peer {
    char node[INA_NODE_MAX + 1];
    uint64_t inc;            /* its incarnation */
    uint64_t seq;            /* last message number applied */
    int64_t as_of;           /* ms: every change it made before as_of is
                              * in the cluster table (0: unknown) */
    int64_t heard;           /* ms when it was last heard from */
    int64_t applied;         /* ms when its last message was applied */
    uint64_t messages;       /* messages applied */
    int resync;              /* messages were lost: a sweep is awaited,
                              * and its counts are inexact until then */
    uint64_t resync_after;   /* the sweep must begin after this number */
    int gone;                /* not heard for INA_CLUSTER_GONE_MS */
    char pos[INA_CLUSTER_POS_MAX]; /* transport position to read after */
};

/* ina_cluster_status - this node's sync and every known node's
 *
 * Fills *self (if not NULL) and calls fn (if not NULL) for each other
 * node, in name order, from one snapshot; a non-zero return of fn stops
 * the walk and is returned.  Works on a read-only handle.  The staleness
 * of a node's counts at time now is now - as_of.  Returns 0,
 * INA_ENOCLUSTER or an LMDB code. */
int ina_cluster_status(struct ina_store *st, struct ina_cluster_self *self,
                       int (*fn)(void *arg, const struct ina_cluster_peer *p),
                       void *arg) INA_NONNULL(1) INA_WUR;

#ifdef __cplusplus
}
#endif

#endif /* INAUDIT_H */
