/* inaudit-sync.c - the cluster sync agent of inbound-audit
 *
 * One agent runs beside the MTA on every node with a cluster section.
 * Every interval it collects this node's changes into the store's outbox
 * (ina_cluster_collect), sends the outbox to the node's Redis stream and
 * deletes what Redis took (ina_cluster_sent), publishes a heartbeat, and
 * reads the other nodes' streams into the local cluster table
 * (ina_cluster_apply), which cluster-wide queries read.  Between two
 * collects it waits in a blocking XREAD, so another node's message is
 * applied as soon as Redis has it.
 *
 * Redis keys (one Redis server, or one database of it, per cluster):
 *   inbound-audit:stream:NODE   the node's messages (XADD, trimmed by
 *                               time to the last -k seconds, and dropped
 *                               -k seconds after the node's last message)
 *   inbound-audit:nodes         hash NODE -> "INC SEQ AS_OF": heartbeats
 *   inbound-audit:resync:NODE   hash ASKER -> "INC AFTER": sweep requests
 *
 * All the exactness is the store's: a message goes into the outbox in the
 * transaction that marks its changes published, is deleted only after
 * Redis acknowledged it, and is applied by a receiver in the transaction
 * that records its number.  So the agent can be killed at any point and
 * Redis can restart or vanish: nothing is lost, nothing counted twice.
 * While Redis is unreachable the agent collects nothing (the changes wait
 * in the store), keeps expiring the cluster table, and reconnects with a
 * growing backoff; the MTA never notices, as it never talks to Redis.
 *
 * The Redis password is read from the configuration's password_file at
 * start and never printed; messages show Redis's own error replies only.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* hiredis's sds.h trips -Wconversion (make warnings): silence that flag
 * for its headers only. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wconversion"
#include <hiredis.h>
#pragma GCC diagnostic pop

#include "inaudit.h"

/* Redis key names. */
#define KEY_PREFIX "inbound-audit:"
#define KEY_NODES KEY_PREFIX "nodes"
#define KEY_STREAM KEY_PREFIX "stream:"
#define KEY_RESYNC KEY_PREFIX "resync:"
#define KEY_MAX (sizeof(KEY_PREFIX) + 16 + INA_NODE_MAX)

/* Seconds a stream keeps messages, by default and at most. */
#define DEF_KEEP 120
#define MAX_KEEP 86400
/* Messages read from one stream by one XREAD. */
#define READ_COUNT 256
/* Bytes of rows applied in one transaction, at most (one message more
 * if it is larger): catching up on many messages never holds the store's
 * writer lock for long. */
#define APPLY_BYTES 65536
/* Messages sent in one pipeline. */
#define SEND_BATCH 64
/* Milliseconds between full collects (every retained window). */
#define FULL_EVERY_MS 30000
/* Milliseconds between two requests for the same resync. */
#define RESYNC_EVERY_MS 2000
/* Reconnection backoff, and the connect timeout, milliseconds. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 1000
/* Longest blocking read, so that a stop is seen within a second. */
#define BLOCK_MAX_MS 1000
/* Other nodes followed at most. */
#define MAX_PEERS 1024
/* Longest password. */
#define PASSWORD_MAX 512

/* Another node, as the agent reads it. */
struct peer {
    char node[INA_NODE_MAX + 1];
    char key[KEY_MAX];
    char pos[INA_CLUSTER_POS_MAX];
    int resync;
    uint64_t inc, after;
};

/* The test hooks of INA_SYNC_TEST_CRASH: die by SIGKILL right after the
 * outbox commit, or right after Redis took the messages. */
enum crash_point { CRASH_NONE, CRASH_AFTER_COMMIT, CRASH_AFTER_XADD };

struct agent {
    struct ina_conf *conf;
    struct ina_store *st;
    redisContext *rc;
    const char *node;
    char stream[KEY_MAX];
    char password[PASSWORD_MAX + 1];
    int has_password;
    int64_t interval;          /* ms */
    int keep;                  /* s */
    int foreground, verbose, once;
    int64_t next_tick, next_full, next_connect, backoff;
    uint64_t inc;              /* this store's incarnation */
    int64_t last_id_ms;        /* Redis's clock at our last XADD */
    uint64_t sent;             /* outbox walked up to here this run */
    int64_t last_ask[MAX_PEERS];
    struct peer peers[MAX_PEERS];
    size_t npeers;
    enum crash_point crash;
    int nospace;               /* ENOSPC was logged */
    int failed;                /* -1: something failed */
    uint64_t published, applied;
};

static volatile sig_atomic_t stopping;

/* ---------------------------------------------------------------------
 * Messages, clocks, signals
 * ------------------------------------------------------------------- */

/* logmsg - a line to stderr (-f) or syslog */

static void INA_PRINTF(3, 4)
logmsg(const struct agent *a, int prio, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (a->foreground) {
        fprintf(stderr, "inaudit-sync: %s\n", msg);
        fflush(stderr);
    } else {
        syslog(prio, "%s", msg);
    }
}

/* store_log - the library's operational events, through logmsg */

static void
store_log(void *arg, int prio, const char *msg)
{
    logmsg(arg, prio, "%s", msg);
}

/* wall_ms, mono_ms - the clocks, in milliseconds */

static int64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* on_signal - SIGTERM and SIGINT stop the loop */

static void
on_signal(int sig)
{
    (void) sig;
    stopping = 1;
}

/* usage - the synopsis, on stderr; exits 2 */

static void __attribute__((__noreturn__))
usage(void)
{
    fprintf(stderr,
            "usage: inaudit-sync [-c CONF] [-f] [-v] [-1] [-k SECONDS]\n"
            "       inaudit-sync -V\n");
    exit(2);
}

/* ---------------------------------------------------------------------
 * Redis
 * ------------------------------------------------------------------- */

/* redis_close - drop the connection; the next tick reconnects */

static void
redis_close(struct agent *a, const char *why)
{
    if (a->rc == NULL)
        return;
    logmsg(a, LOG_WARNING, "redis %s: %s; reconnecting",
           a->conf->cluster_redis, why);
    redisFree(a->rc);
    a->rc = NULL;
    a->next_connect = mono_ms() + a->backoff;
}

/* redis_check - a reply is usable; otherwise close and say why
 *
 * A NULL reply is a broken connection; an error reply (NOAUTH after a
 * restart, say) also reconnects, which authenticates again. */

static int
redis_check(struct agent *a, redisReply *r, const char *what)
{
    char why[256];

    if (r == NULL) {
        snprintf(why, sizeof(why), "%s: %s", what,
                 a->rc != NULL && a->rc->errstr[0] ? a->rc->errstr
                                                   : "connection lost");
        redis_close(a, why);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "%s: %.*s", what, (int) r->len, r->str);
        freeReplyObject(r);
        redis_close(a, why);
        return -1;
    }
    return 0;
}

/* redis_connect - connect and authenticate; 0 or -1 */

static int
redis_connect(struct agent *a)
{
    const char *addr = a->conf->cluster_redis;
    struct timeval tv;
    char host[256];
    const char *colon;
    redisReply *r;
    size_t hl;
    int port;

    tv.tv_sec = CONNECT_TIMEOUT_MS / 1000;
    tv.tv_usec = (CONNECT_TIMEOUT_MS % 1000) * 1000;
    if (strncmp(addr, "unix:", 5) == 0) {
        a->rc = redisConnectUnixWithTimeout(addr + 5, tv);
    } else {
        colon = strrchr(addr, ':');
        hl = colon != NULL ? (size_t) (colon - addr) : 0;
        if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
            addr++;
            hl -= 2;
        }
        if (colon == NULL || hl == 0 || hl >= sizeof(host))
            return -1;
        memcpy(host, addr, hl);
        host[hl] = '\0';
        port = atoi(colon + 1);
        a->rc = redisConnectWithTimeout(host, port, tv);
    }
    if (a->rc == NULL || a->rc->err) {
        if (a->backoff <= BACKOFF_MIN_MS || a->verbose)
            logmsg(a, LOG_WARNING, "redis %s: %s", a->conf->cluster_redis,
                   a->rc != NULL ? a->rc->errstr : "out of memory");
        if (a->rc != NULL)
            redisFree(a->rc);
        a->rc = NULL;
        return -1;
    }
    /* Blocking reads wait at most BLOCK_MAX_MS; anything slower than
     * that by two seconds is a Redis in trouble: reconnect. */
    tv.tv_sec = (BLOCK_MAX_MS + 2000) / 1000;
    tv.tv_usec = 0;
    redisSetTimeout(a->rc, tv);
    if (a->has_password) {
        const char *argv[2] = {"AUTH", a->password};
        size_t lens[2] = {4, strlen(a->password)};

        r = redisCommandArgv(a->rc, 2, argv, lens);
        if (redis_check(a, r, "AUTH") != 0)
            return -1;
        freeReplyObject(r);
    }
    logmsg(a, LOG_NOTICE, "redis %s: connected as node %s",
           a->conf->cluster_redis, a->node);
    a->backoff = BACKOFF_MIN_MS;
    return 0;
}

/* ---------------------------------------------------------------------
 * Publishing
 * ------------------------------------------------------------------- */

/* One pipeline of messages being sent. */
struct send_ctx {
    struct agent *a;
    char minid[32];
    size_t n;
    uint64_t last;
};

/* send_one - append one outbox message to the pipeline as an XADD */

static int
send_one(void *arg, const struct ina_cluster_msg *m)
{
    struct send_ctx *s = arg;
    char inc[24], seq[24], kind[2], asof[24], sweep[24];
    const char *argv[20];
    size_t lens[20];
    int i;

    snprintf(inc, sizeof(inc), "%" PRIu64, m->inc);
    snprintf(seq, sizeof(seq), "%" PRIu64, m->seq);
    kind[0] = (char) m->kind;
    kind[1] = '\0';
    snprintf(asof, sizeof(asof), "%" PRId64, m->as_of);
    snprintf(sweep, sizeof(sweep), "%" PRIu64, m->sweep_start);
    argv[0] = "XADD";
    argv[1] = s->a->stream;
    argv[2] = "MINID";
    argv[3] = "~";
    argv[4] = s->minid;
    argv[5] = "*";
    argv[6] = "node";
    argv[7] = m->node;
    argv[8] = "inc";
    argv[9] = inc;
    argv[10] = "seq";
    argv[11] = seq;
    argv[12] = "kind";
    argv[13] = kind;
    argv[14] = "asof";
    argv[15] = asof;
    argv[16] = "sweep";
    argv[17] = sweep;
    argv[18] = "data";
    argv[19] = m->data;
    for (i = 0; i < 19; i++)
        lens[i] = strlen(argv[i]);
    lens[19] = m->len;
    if (redisAppendCommandArgv(s->a->rc, 20, argv, lens) != REDIS_OK)
        return ENOMEM;
    s->n++;
    s->last = m->seq;
    return s->n >= SEND_BATCH ? -1 : 0;
}

/* flush_outbox - send every message of the outbox; 0 once it is empty */

static int
flush_outbox(struct agent *a)
{
    struct send_ctx s;
    redisReply *r;
    char ttl[24];
    size_t i;
    int rc, bad;

    while (a->rc != NULL) {
        memset(&s, 0, sizeof(s));
        s.a = a;
        /* Trimmed by Redis's own clock (stream IDs are its
         * milliseconds), as of the last XADD. */
        snprintf(s.minid, sizeof(s.minid), "%" PRId64 "-0",
                 a->last_id_ms > (int64_t) a->keep * 1000
                     ? a->last_id_ms - (int64_t) a->keep * 1000 : 0);
        rc = ina_cluster_outbox(a->st, a->sent, send_one, &s);
        if (rc != 0 && rc != -1) {
            logmsg(a, LOG_ERR, "outbox: %s", ina_strerror(rc));
            redis_close(a, "the outbox cannot be read");
            return -1;
        }
        if (s.n == 0)
            return 0;
        /* A node that stops publishing leaves no stream behind. */
        snprintf(ttl, sizeof(ttl), "%lld", (long long) a->keep * 2000);
        redisAppendCommand(a->rc, "PEXPIRE %s %s", a->stream, ttl);
        for (i = 0, bad = 0; i <= s.n; i++) {
            r = NULL;
            if (redisGetReply(a->rc, (void **) &r) != REDIS_OK)
                r = NULL;
            if (redis_check(a, r, i < s.n ? "XADD" : "PEXPIRE") != 0)
                return -1;
            bad |= i < s.n && r->type != REDIS_REPLY_STRING;
            if (i < s.n && r->type == REDIS_REPLY_STRING)
                a->last_id_ms = strtoll(r->str, NULL, 10);
            freeReplyObject(r);
        }
        if (bad) {
            redis_close(a, "XADD: unexpected reply");
            return -1;
        }
        if (a->crash == CRASH_AFTER_XADD)
            kill(getpid(), SIGKILL);
        if ((rc = ina_cluster_sent(a->st, s.last, wall_ms())) != 0) {
            logmsg(a, LOG_ERR, "outbox: %s", ina_strerror(rc));
            return -1;
        }
        a->sent = s.last;
    }
    return -1;
}

/* publish - collect, send, and tell the other nodes how far this went */

static void
publish(struct agent *a, int64_t now)
{
    struct ina_cluster_self self;
    uint64_t seq, rows;
    char beat[80];
    redisReply *r;
    int64_t t0;
    int rc, full = mono_ms() >= a->next_full;

    /* Messages left by a previous run or a lost connection go first;
     * nothing new is collected until they are out. */
    if (flush_outbox(a) != 0)
        return;
    t0 = mono_ms();
    rc = ina_cluster_collect(a->st, full ? INA_CLUSTER_FULL : 0, now, &seq,
                             &rows);
    if (rc == ENOSPC) {
        if (!a->nospace)
            logmsg(a, LOG_WARNING, "store %s: map nearly full: publishing "
                   "paused", a->conf->store);
        a->nospace = 1;
        return;
    }
    if (rc != 0) {
        logmsg(a, LOG_ERR, "collect: %s", ina_strerror(rc));
        a->failed = 1;
        return;
    }
    a->nospace = 0;
    if (full)
        a->next_full = mono_ms() + FULL_EVERY_MS;
    if (rows > 0 && a->crash == CRASH_AFTER_COMMIT)
        kill(getpid(), SIGKILL);
    if (flush_outbox(a) != 0)
        return;
    if (rows > 0) {
        a->published += rows;
        if (a->verbose)
            logmsg(a, LOG_INFO, "published %" PRIu64 " rows up to message "
                   "%" PRIu64 " (%scollected in %lld ms)", rows, seq,
                   full ? "fully " : "", (long long) (mono_ms() - t0));
    }
    if (a->inc == 0 && ina_cluster_status(a->st, &self, NULL, NULL) == 0)
        a->inc = self.inc;
    /* Every message up to seq is in Redis, and holds every change made
     * before now. */
    snprintf(beat, sizeof(beat), "%" PRIu64 " %" PRIu64 " %" PRId64, a->inc,
             seq, now);
    r = redisCommand(a->rc, "HSET %s %s %s", KEY_NODES, a->node, beat);
    if (redis_check(a, r, "HSET") == 0)
        freeReplyObject(r);
}

/* ---------------------------------------------------------------------
 * Receiving
 * ------------------------------------------------------------------- */

/* parse_u64, parse_i64 - numbers of the wire; 0 if malformed */

static uint64_t
parse_u64(const char *s, size_t len)
{
    char buf[32];

    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return strtoull(buf, NULL, 10);
}

static int64_t
parse_i64(const char *s, size_t len)
{
    char buf[32];

    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return strtoll(buf, NULL, 10);
}

/* peer_find - a followed node by name, added if new (with "0-0") */

static struct peer *
peer_find(struct agent *a, const char *node, size_t len)
{
    struct peer *p;
    size_t i;

    if (len == 0 || len > INA_NODE_MAX)
        return NULL;
    for (i = 0; i < a->npeers; i++)
        if (strlen(a->peers[i].node) == len
            && memcmp(a->peers[i].node, node, len) == 0)
            return &a->peers[i];
    if (a->npeers == MAX_PEERS)
        return NULL;
    p = &a->peers[a->npeers];
    memset(p, 0, sizeof(*p));
    memcpy(p->node, node, len);
    memcpy(p->key, KEY_STREAM, sizeof(KEY_STREAM) - 1);
    memcpy(p->key + sizeof(KEY_STREAM) - 1, node, len);
    strcpy(p->pos, "0-0");
    a->last_ask[a->npeers] = 0;
    a->npeers++;
    return p;
}

/* refresh_cb - take a node's position and resync state from the store */

static int
refresh_cb(void *arg, const struct ina_cluster_peer *p)
{
    struct agent *a = arg;
    struct peer *q = peer_find(a, p->node, strlen(p->node));

    if (q != NULL) {
        snprintf(q->pos, sizeof(q->pos), "%s", p->pos[0] ? p->pos : "0-0");
        q->resync = p->resync;
        q->after = p->resync_after;
        q->inc = p->inc;
    }
    return 0;
}

/* refresh - the store is the authority on positions: read them back */

static void
refresh(struct agent *a)
{
    int rc = ina_cluster_status(a->st, NULL, refresh_cb, a);

    if (rc != 0)
        logmsg(a, LOG_ERR, "status: %s", ina_strerror(rc));
}

/* ask_resyncs - ask the nodes whose messages were lost for a sweep */

static void
ask_resyncs(struct agent *a, int64_t now)
{
    char key[KEY_MAX], val[64];
    redisReply *r;
    size_t i;

    for (i = 0; i < a->npeers && a->rc != NULL; i++) {
        struct peer *p = &a->peers[i];

        if (!p->resync || now - a->last_ask[i] < RESYNC_EVERY_MS)
            continue;
        a->last_ask[i] = now;
        snprintf(key, sizeof(key), "%s%s", KEY_RESYNC, p->node);
        snprintf(val, sizeof(val), "%" PRIu64 " %" PRIu64, p->inc, p->after);
        r = redisCommand(a->rc, "HSET %s %s %s", key, a->node, val);
        if (redis_check(a, r, "HSET") != 0)
            return;
        freeReplyObject(r);
        if (a->verbose)
            logmsg(a, LOG_INFO, "asked node %s for a resync after message "
                   "%" PRIu64, p->node, p->after);
    }
}

/* field - the value of a field of a stream entry, or NULL */

static const redisReply *
field(const redisReply *fv, const char *name)
{
    size_t i, n = strlen(name);

    for (i = 0; i + 1 < fv->elements; i += 2)
        if (fv->element[i]->type == REDIS_REPLY_STRING
            && fv->element[i]->len == n
            && memcmp(fv->element[i]->str, name, n) == 0
            && fv->element[i + 1]->type == REDIS_REPLY_STRING)
            return fv->element[i + 1];
    return NULL;
}

/* A batch of messages read, pointing into the reply. */
struct inbox {
    struct ina_cluster_msg *m;
    char (*node)[INA_NODE_MAX + 1];
    size_t n, cap;
    int full;                  /* a stream gave READ_COUNT: read again */
};

/* inbox_parse - the messages of an XREAD reply; -1 if malformed */

static int
inbox_parse(const redisReply *r, struct inbox *in)
{
    const redisReply *s, *ents, *e, *fv, *f;
    size_t i, j, need = 0;

    in->n = 0;
    in->full = 0;
    if (r->type == REDIS_REPLY_NIL)
        return 0;
    if (r->type != REDIS_REPLY_ARRAY)
        return -1;
    for (i = 0; i < r->elements; i++) {
        s = r->element[i];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2
            || s->element[1]->type != REDIS_REPLY_ARRAY)
            return -1;
        need += s->element[1]->elements;
        in->full |= s->element[1]->elements >= READ_COUNT;
    }
    if (need > in->cap) {
        void *m = realloc(in->m, need * sizeof(*in->m));
        void *nd;

        if (m == NULL)
            return -1;
        in->m = m;
        if ((nd = realloc(in->node, need * sizeof(*in->node))) == NULL)
            return -1;
        in->node = nd;
        in->cap = need;
    }
    for (i = 0; i < r->elements; i++) {
        ents = r->element[i]->element[1];
        for (j = 0; j < ents->elements; j++) {
            struct ina_cluster_msg *m = &in->m[in->n];

            e = ents->element[j];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
                || e->element[0]->type != REDIS_REPLY_STRING
                || e->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            fv = e->element[1];
            memset(m, 0, sizeof(*m));
            if ((f = field(fv, "node")) == NULL || f->len == 0
                || f->len > INA_NODE_MAX)
                continue;
            memcpy(in->node[in->n], f->str, f->len);
            in->node[in->n][f->len] = '\0';
            m->node = in->node[in->n];
            m->pos = e->element[0]->str;
            if ((f = field(fv, "inc")) != NULL)
                m->inc = parse_u64(f->str, f->len);
            if ((f = field(fv, "seq")) != NULL)
                m->seq = parse_u64(f->str, f->len);
            if ((f = field(fv, "kind")) != NULL && f->len == 1)
                m->kind = (unsigned char) f->str[0];
            if ((f = field(fv, "asof")) != NULL)
                m->as_of = parse_i64(f->str, f->len);
            if ((f = field(fv, "sweep")) != NULL)
                m->sweep_start = parse_u64(f->str, f->len);
            if ((f = field(fv, "data")) != NULL) {
                m->data = f->str;
                m->len = f->len;
            }
            if (m->inc == 0 || m->seq == 0)
                continue;
            in->n++;
        }
    }
    return 0;
}

/* xread - one XREAD of every followed stream; NULL on error or when
 * there is nothing to follow (then *none is set) */

static redisReply *
xread(struct agent *a, int64_t block, int *none)
{
    const char **argv;
    size_t *lens, n = 0, i;
    char count[16], blk[24];
    redisReply *r;

    *none = a->npeers == 0;
    if (*none)
        return NULL;
    argv = calloc(6 + 2 * a->npeers, sizeof(*argv));
    lens = calloc(6 + 2 * a->npeers, sizeof(*lens));
    if (argv == NULL || lens == NULL) {
        free(argv);
        free(lens);
        return NULL;
    }
    snprintf(count, sizeof(count), "%d", READ_COUNT);
    argv[n++] = "XREAD";
    argv[n++] = "COUNT";
    argv[n++] = count;
    if (block > 0) {
        snprintf(blk, sizeof(blk), "%lld", (long long) block);
        argv[n++] = "BLOCK";
        argv[n++] = blk;
    }
    argv[n++] = "STREAMS";
    for (i = 0; i < a->npeers; i++)
        argv[n++] = a->peers[i].key;
    for (i = 0; i < a->npeers; i++)
        argv[n++] = a->peers[i].pos;
    for (i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    r = redisCommandArgv(a->rc, (int) n, argv, lens);
    free(argv);
    free(lens);
    if (redis_check(a, r, "XREAD") != 0)
        return NULL;
    return r;
}

/* advance - after an apply, move the positions past messages from ..
 * to-1 */

static void
advance(struct agent *a, const struct inbox *in, size_t from, size_t to)
{
    size_t i;
    struct peer *p;

    for (i = from; i < to; i++)
        if ((p = peer_find(a, in->m[i].node, strlen(in->m[i].node))) != NULL
            && in->m[i].pos != NULL)
            snprintf(p->pos, sizeof(p->pos), "%s", in->m[i].pos);
}

/* apply - fold a batch into the store, APPLY_BYTES of rows a transaction,
 * the heartbeats and requests with the last; 0, or -1 (the positions of
 * what was not applied are kept) */

static int
apply(struct agent *a, const struct inbox *in,
      const struct ina_cluster_beat *b, size_t nb,
      const struct ina_cluster_request *q, size_t nq, int64_t now)
{
    size_t n = in != NULL ? in->n : 0, i = 0, j, bytes;
    int rc, last;

    do {
        for (j = i, bytes = 0; j < n && (j == i || bytes + in->m[j].len
                                                      <= APPLY_BYTES); j++)
            bytes += in->m[j].len;
        last = j == n;
        rc = ina_cluster_apply(a->st, n > 0 ? in->m + i : NULL, j - i,
                               last ? b : NULL, last ? nb : 0,
                               last ? q : NULL, last ? nq : 0, now);
        if (rc != 0)
            break;
        if (j > i)
            advance(a, in, i, j);
        i = j;
    } while (!last);
    if (rc == ENOSPC) {
        if (!a->nospace)
            logmsg(a, LOG_WARNING, "store %s: map nearly full: the cluster "
                   "table is not updated", a->conf->store);
        a->nospace = 1;
        return -1;
    }
    if (rc != 0) {
        logmsg(a, LOG_ERR, "apply: %s", ina_strerror(rc));
        a->failed = 1;
        return -1;
    }
    if (n > 0) {
        a->applied += n;
        if (a->verbose)
            logmsg(a, LOG_INFO, "applied %zu message(s)", in->n);
    }
    return 0;
}

/* Heartbeats and requests read at the start of a tick. */
struct tickread {
    redisReply *nodes, *reqs;
    struct ina_cluster_beat *b;
    struct ina_cluster_request *q;
    char (*bnode)[INA_NODE_MAX + 1];
    char (*qnode)[INA_NODE_MAX + 1];
    size_t nb, nq;
};

/* read_hash - HGETALL of a hash as parallel arrays; -1 on error */

static int
read_hash(struct agent *a, const char *key, redisReply **out)
{
    redisReply *r = redisCommand(a->rc, "HGETALL %s", key);

    if (redis_check(a, r, "HGETALL") != 0)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
        freeReplyObject(r);
        redis_close(a, "HGETALL: unexpected reply");
        return -1;
    }
    *out = r;
    return 0;
}

/* read_beats - the heartbeats, and the requests addressed to us */

static int
read_beats(struct agent *a, struct tickread *t)
{
    char key[KEY_MAX], val[80];
    const redisReply *f, *v;
    size_t i, n;
    unsigned long long x, y;
    long long z;

    memset(t, 0, sizeof(*t));
    if (read_hash(a, KEY_NODES, &t->nodes) != 0)
        return -1;
    snprintf(key, sizeof(key), "%s%s", KEY_RESYNC, a->node);
    if (read_hash(a, key, &t->reqs) != 0)
        return -1;
    n = t->nodes->elements / 2 + t->reqs->elements / 2 + 1;
    t->b = calloc(n, sizeof(*t->b));
    t->q = calloc(n, sizeof(*t->q));
    t->bnode = calloc(n, sizeof(*t->bnode));
    t->qnode = calloc(n, sizeof(*t->qnode));
    if (t->b == NULL || t->q == NULL || t->bnode == NULL
        || t->qnode == NULL)
        return -1;
    for (i = 0; i + 1 < t->nodes->elements; i += 2) {
        f = t->nodes->element[i];
        v = t->nodes->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING
            || f->len == 0 || f->len > INA_NODE_MAX || v->len >= sizeof(val))
            continue;
        memcpy(val, v->str, v->len);
        val[v->len] = '\0';
        if (sscanf(val, "%llu %llu %lld", &x, &y, &z) != 3)
            continue;
        memcpy(t->bnode[t->nb], f->str, f->len);
        if (strcmp(t->bnode[t->nb], a->node) == 0) {
            if (a->inc != 0 && x != a->inc)
                logmsg(a, LOG_WARNING, "another store publishes as node "
                       "%s (incarnation %llx, ours %llx): give each node a "
                       "name of its own", a->node, x,
                       (unsigned long long) a->inc);
            continue;
        }
        t->b[t->nb].node = t->bnode[t->nb];
        t->b[t->nb].inc = x;
        t->b[t->nb].seq = y;
        t->b[t->nb].as_of = z;
        /* Read its stream in this tick too, so that a node first seen
         * here is not taken for one whose messages were lost. */
        (void) peer_find(a, f->str, f->len);
        t->nb++;
    }
    for (i = 0; i + 1 < t->reqs->elements; i += 2) {
        f = t->reqs->element[i];
        v = t->reqs->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING
            || f->len == 0 || f->len > INA_NODE_MAX || v->len >= sizeof(val))
            continue;
        memcpy(val, v->str, v->len);
        val[v->len] = '\0';
        if (sscanf(val, "%llu %llu", &x, &y) != 2)
            continue;
        memcpy(t->qnode[t->nq], f->str, f->len);
        t->q[t->nq].node = t->qnode[t->nq];
        t->q[t->nq].inc = x;
        t->q[t->nq].after = y;
        t->nq++;
    }
    return 0;
}

/* tickread_free - release what read_beats() made */

static void
tickread_free(struct tickread *t)
{
    if (t->nodes != NULL)
        freeReplyObject(t->nodes);
    if (t->reqs != NULL)
        freeReplyObject(t->reqs);
    free(t->b);
    free(t->q);
    free(t->bnode);
    free(t->qnode);
    memset(t, 0, sizeof(*t));
}

/* receive - heartbeats first, then every message there is, then both
 * applied: a heartbeat ahead of what was read means lost messages */

static void
receive(struct agent *a, struct inbox *in, int64_t now)
{
    struct tickread t;
    redisReply *r;
    int none, last;

    if (read_beats(a, &t) != 0) {
        tickread_free(&t);
        return;
    }
    for (;;) {
        r = xread(a, 0, &none);
        if (r == NULL && !none)
            break;
        if (r != NULL && inbox_parse(r, in) != 0) {
            freeReplyObject(r);
            redis_close(a, "XREAD: unexpected reply");
            break;
        }
        if (r == NULL)
            in->n = in->full = 0;
        last = !in->full;
        if (apply(a, in, last ? t.b : NULL, last ? t.nb : 0,
                  last ? t.q : NULL, last ? t.nq : 0, now) != 0)
            last = 1;
        if (r != NULL)
            freeReplyObject(r);
        if (last)
            break;
    }
    tickread_free(&t);
}

/* wait_messages - block in XREAD until the next tick, applying what
 * arrives */

static void
wait_messages(struct agent *a, struct inbox *in, int64_t until)
{
    redisReply *r;
    int64_t left;
    int none;

    while (!stopping && a->rc != NULL && (left = until - mono_ms()) > 0) {
        if (left > BLOCK_MAX_MS)
            left = BLOCK_MAX_MS;
        r = xread(a, left, &none);
        if (none) {
            poll(NULL, 0, (int) left);
            continue;
        }
        if (r == NULL)
            return;
        if (inbox_parse(r, in) != 0) {
            freeReplyObject(r);
            redis_close(a, "XREAD: unexpected reply");
            return;
        }
        if (in->n > 0 && apply(a, in, NULL, 0, NULL, 0, wall_ms()) == 0)
            refresh(a);
        freeReplyObject(r);
    }
}

/* ---------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------- */

/* tick - one round: publish, receive, upkeep, resync requests */

static void
tick(struct agent *a, struct inbox *in)
{
    int64_t now = wall_ms();

    if (a->rc == NULL && mono_ms() >= a->next_connect) {
        if (redis_connect(a) != 0) {
            a->next_connect = mono_ms() + a->backoff;
            a->backoff = a->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                         : a->backoff * 2;
        }
    }
    if (a->rc != NULL)
        publish(a, now);
    if (a->rc != NULL) {
        receive(a, in, now);
    } else {
        /* Without Redis: the cluster table still expires, and nodes
         * not heard from go stale. */
        (void) apply(a, NULL, NULL, 0, NULL, 0, now);
    }
    refresh(a);
    ask_resyncs(a, now);
}

/* read_password - the Redis password from its file; exits 1 on error */

static void
read_password(struct agent *a, const char *path)
{
    struct stat sb;
    ssize_t n;
    int fd;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "inaudit-sync: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    if (fstat(fd, &sb) == 0 && (sb.st_mode & S_IROTH))
        logmsg(a, LOG_WARNING, "%s: the password file is readable by "
               "everyone", path);
    n = read(fd, a->password, PASSWORD_MAX);
    close(fd);
    if (n < 0) {
        fprintf(stderr, "inaudit-sync: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    a->password[n] = '\0';
    /* The first line is the password. */
    a->password[strcspn(a->password, "\r\n")] = '\0';
    if (a->password[0] == '\0') {
        fprintf(stderr, "inaudit-sync: %s: no password in the file\n",
                path);
        exit(1);
    }
    a->has_password = 1;
}

/* lock_store - one agent per store: an flock on STORE/sync.lock */

static int
lock_store(const char *store)
{
    char path[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/sync.lock", store);
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660)) < 0) {
        fprintf(stderr, "inaudit-sync: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "inaudit-sync: store %s: %s\n", store,
                errno == EWOULDBLOCK ? "another inaudit-sync runs on it"
                                     : strerror(errno));
        exit(1);
    }
    return fd;
}

/* main - options, configuration, store, then the loop */

int
main(int argc, char **argv)
{
    static struct agent agent;
    struct agent *a = &agent;
    struct inbox in;
    struct sigaction sa;
    const char *conf_path = NULL, *crash;
    char path[4096], msg[1024];
    long v;
    int ch, lockfd;

    memset(&in, 0, sizeof(in));
    a->keep = DEF_KEEP;
    while ((ch = getopt(argc, argv, "c:fv1k:Vh")) != -1) {
        switch (ch) {
        case 'c':
            conf_path = optarg;
            break;
        case 'f':
            a->foreground = 1;
            break;
        case 'v':
            a->verbose = 1;
            break;
        case '1':
            a->once = 1;
            break;
        case 'k':
            v = strtol(optarg, NULL, 10);
            if (v < 1 || v > MAX_KEEP)
                usage();
            a->keep = (int) v;
            break;
        case 'V':
            printf("%s\n", INA_VERSION_STRING);
            return 0;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    if (!a->foreground)
        openlog("inaudit-sync", LOG_PID, LOG_MAIL);
    if (ina_conf_path(conf_path, path, sizeof(path)) != 0) {
        fprintf(stderr, "inaudit-sync: %s: path too long\n", conf_path);
        return 1;
    }
    if (ina_conf_load(path, &a->conf, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "inaudit-sync: %s\n", msg);
        return 1;
    }
    if (!a->conf->cluster) {
        fprintf(stderr, "inaudit-sync: %s: no cluster section: nothing to "
                "sync\n", a->conf->file);
        return 1;
    }
    a->node = a->conf->cluster_node;
    a->interval = a->conf->cluster_interval;
    snprintf(a->stream, sizeof(a->stream), "%s%s", KEY_STREAM, a->node);
    if (a->conf->cluster_password_file != NULL)
        read_password(a, a->conf->cluster_password_file);
    if (ina_store_open(a->conf, 0, &a->st, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "inaudit-sync: %s\n", msg);
        return 1;
    }
    ina_store_set_log(a->st, store_log, a);
    lockfd = lock_store(a->conf->store);
    if ((crash = getenv("INA_SYNC_TEST_CRASH")) != NULL)
        a->crash = strcmp(crash, "after-commit") == 0 ? CRASH_AFTER_COMMIT
                   : strcmp(crash, "after-xadd") == 0 ? CRASH_AFTER_XADD
                                                       : CRASH_NONE;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    a->backoff = BACKOFF_MIN_MS;
    refresh(a);
    logmsg(a, LOG_NOTICE, "node %s, store %s, redis %s, every %lld ms",
           a->node, a->conf->store, a->conf->cluster_redis,
           (long long) a->interval);
    a->next_tick = mono_ms();
    while (!stopping) {
        tick(a, &in);
        if (a->once) {
            if (a->rc == NULL)
                a->failed = 1;
            break;
        }
        a->next_tick += a->interval;
        if (a->next_tick < mono_ms())
            a->next_tick = mono_ms();
        if (a->rc != NULL)
            wait_messages(a, &in, a->next_tick);
        else if (a->next_tick > mono_ms())
            poll(NULL, 0, (int) (a->next_tick - mono_ms()));
    }
    logmsg(a, LOG_NOTICE, "stopping: %" PRIu64 " rows published, %" PRIu64
           " messages applied", a->published, a->applied);
    if (a->rc != NULL)
        redisFree(a->rc);
    free(in.m);
    free(in.node);
    ina_store_close(a->st);
    ina_conf_free(a->conf);
    memset(a->password, 0, sizeof(a->password));
    close(lockfd);
    return a->failed ? 1 : 0;
}
