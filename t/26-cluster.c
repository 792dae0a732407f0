/* 26-cluster.c - the store's cluster sync, with Redis played by the test
 *
 * Four stores (nodes a, b, c and a late d) in one process, each with its
 * own cluster section.  The test plays the transport: it collects each
 * node's outbox into an in-memory stream, and delivers the streams to
 * the other nodes with ina_cluster_apply(), as the agent would, and then
 * also as a bad network would: twice, with holes, late, with garbage.
 * After every scene each node's cluster-wide totals must be exactly the
 * sum of every node's local totals (for blocks at and between the
 * granularities, over single windows and ranges, for all three events)
 * and its cluster-wide SMTP sessions ("inbound_cidr") the sum of every
 * node's SMTP gauge.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "tap/basic.h"
#include "tap/inatest.h"

#define T0 1700002800
#define NNODES 4
#define MAXMSG 4096

#define BODY                                                             \
    "flush_delay = 0\n"                                                  \
    "monitors = {\"60,10\", \"300,2\"}\n"                                \
    "ipv4_prefixes = {32, 24, 16}\n"                                     \
    "ipv6_prefixes = {128, 64, 48}\n"                                    \
    "cluster {\n redis = \"127.0.0.1:1\"\n node = \"%s\"\n}\n"

static int64_t now = T0;
static struct ina_store *st[NNODES];
static const char *const names[NNODES] = {"a", "b", "c", "d"};
static int live = 3;               /* nodes 0 .. live-1 take part */

/* A message as the transport holds it. */
struct wmsg {
    char node[8];
    uint64_t inc, seq, sweep_start;
    int kind;
    int64_t as_of;
    uint8_t *data;
    size_t len;
    char pos[32];
};

/* Each node's stream, and how far each node has read each stream. */
static struct wmsg streams[NNODES][MAXMSG];
static size_t nstream[NNODES];
static size_t readpos[NNODES][NNODES];

static const char *const blocks[] = {
    "192.0.2.7", "192.0.2.0/24", "192.0.2.0/26", "198.51.100.0/22",
    "198.51.0.0/16", "10.0.0.0/8", "2001:db8::1", "2001:db8::/32",
    "2001:db8:1::/48", "0.0.0.0/0",
};

/* grab - copy an outbox message into a stream */

static int
grab(void *arg, const struct ina_cluster_msg *m)
{
    size_t i = (size_t) (uintptr_t) arg;
    struct wmsg *w;

    if (nstream[i] == MAXMSG)
        bail("stream %zu full", i);
    w = &streams[i][nstream[i]];
    memset(w, 0, sizeof(*w));
    snprintf(w->node, sizeof(w->node), "%s", m->node);
    w->inc = m->inc;
    w->seq = m->seq;
    w->kind = m->kind;
    w->as_of = m->as_of;
    w->sweep_start = m->sweep_start;
    if ((w->data = malloc(m->len + 1)) == NULL)
        sysbail("malloc");
    memcpy(w->data, m->data, m->len);
    w->len = m->len;
    snprintf(w->pos, sizeof(w->pos), "%zu-0", nstream[i] + 1);
    nstream[i]++;
    return 0;
}

/* publish - node i collects, "sends" its outbox, marks it sent; returns
 * the number of messages sent */

static size_t
publish(size_t i, unsigned flags)
{
    uint64_t seq = 0, rows = 0;
    size_t before = nstream[i];
    int rc;

    rc = ina_cluster_collect(st[i], flags, now * 1000, &seq, &rows);
    if (rc != 0)
        bail("collect on %s: %s", names[i], ina_strerror(rc));
    if ((rc = ina_cluster_outbox(st[i], 0, grab, (void *) (uintptr_t) i))
        != 0)
        bail("outbox of %s: %s", names[i], ina_strerror(rc));
    if (nstream[i] > before
        && (rc = ina_cluster_sent(st[i], streams[i][nstream[i] - 1].seq,
                                  now * 1000)) != 0)
        bail("sent on %s: %s", names[i], ina_strerror(rc));
    return nstream[i] - before;
}

/* to_msg - a transport message as ina_cluster_apply() takes it */

static void
to_msg(const struct wmsg *w, struct ina_cluster_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->node = w->node;
    m->inc = w->inc;
    m->seq = w->seq;
    m->kind = w->kind;
    m->as_of = w->as_of;
    m->sweep_start = w->sweep_start;
    m->data = w->data;
    m->len = w->len;
    m->pos = w->pos;
}

/* deliver - every node reads every other live node's new messages
 *
 * As the agent does: one apply per node with every message read and the
 * heartbeats of the nodes (how far each has sent, as of now). */

static void
deliver(void)
{
    static struct ina_cluster_msg m[NNODES * MAXMSG];
    struct ina_cluster_beat b[NNODES];
    size_t to, from, k, n, nb;
    int rc;

    for (to = 0; to < (size_t) live; to++) {
        n = nb = 0;
        for (from = 0; from < (size_t) live; from++) {
            if (to == from)
                continue;
            for (k = readpos[to][from]; k < nstream[from]; k++)
                to_msg(&streams[from][k], &m[n++]);
            readpos[to][from] = nstream[from];
            if (nstream[from] > 0) {
                b[nb].node = names[from];
                b[nb].inc = streams[from][nstream[from] - 1].inc;
                b[nb].seq = streams[from][nstream[from] - 1].seq;
                b[nb].as_of = now * 1000;
                nb++;
            }
        }
        if ((rc = ina_cluster_apply(st[to], m, n, b, nb, NULL, 0,
                                    now * 1000)) != 0)
            bail("apply on %s: %s", names[to], ina_strerror(rc));
    }
}

/* peer_arg, peer_cb - one node's view of another, by ina_cluster_status */

struct peer_arg {
    const char *node;
    struct ina_cluster_peer p;
    int found;
};

static int
peer_cb(void *arg, const struct ina_cluster_peer *p)
{
    struct peer_arg *a = arg;

    if (strcmp(a->node, p->node) == 0) {
        a->p = *p;
        a->found = 1;
    }
    return 0;
}

static struct peer_arg
peer(size_t at, size_t of)
{
    struct peer_arg a;
    int rc;

    memset(&a, 0, sizeof(a));
    a.node = names[of];
    if ((rc = ina_cluster_status(st[at], NULL, peer_cb, &a)) != 0)
        bail("status: %s", ina_strerror(rc));
    return a;
}

/* resync - the nodes that wait for a sweep ask for it; the asked ones
 * sweep; everything is delivered until nobody waits (a few rounds) */

static void
resync(void)
{
    struct ina_cluster_request rq;
    struct peer_arg pa;
    size_t at, of, round;
    int rc, waiting;

    for (round = 0; round < 10; round++) {
        waiting = 0;
        for (at = 0; at < (size_t) live; at++)
            for (of = 0; of < (size_t) live; of++) {
                if (at == of)
                    continue;
                pa = peer(at, of);
                if (!pa.found || !pa.p.resync)
                    continue;
                waiting = 1;
                rq.node = names[at];
                rq.inc = pa.p.inc;
                rq.after = pa.p.resync_after;
                if ((rc = ina_cluster_apply(st[of], NULL, 0, NULL, 0, &rq, 1,
                                            now * 1000)) != 0)
                    bail("request: %s", ina_strerror(rc));
            }
        if (!waiting)
            return;
        for (at = 0; at < (size_t) live; at++)
            publish(at, 0);
        deliver();
    }
    bail("resync does not end");
}

/* count, sessions - a count and a session gauge on one node, this
 * node's or cluster-wide */

static uint64_t
count(size_t i, enum ina_event ev, const char *mon, const char *cidr,
      uint32_t a, uint32_t b, unsigned flags)
{
    struct ina_cidr c = test_addr(cidr);
    char err[256];
    uint64_t n;

    if (ina_query(st[i], ev, mon, &c, a, b, flags, &n, err, sizeof(err))
        != 0)
        bail("query %s on %s: %s", cidr, names[i], err);
    return n;
}

static uint64_t
sessions(size_t i, const char *cidr, const char *service)
{
    struct ina_cidr c = test_addr(cidr);
    char err[256];
    uint64_t n;

    if (ina_session_count(st[i], &c, service, &n, err, sizeof(err)) != 0)
        bail("sessions %s on %s: %s", cidr, names[i], err);
    return n;
}

/* converged - every live node's cluster totals are the sum of the
 * locals; returns the number of mismatches (and says the first) */

static int
converged(void)
{
    static const char *const mons[] = {"60,10", "300,2"};
    static const uint32_t ranges[][2] = {{0, 0}, {1, 1}, {0, 2}, {0, 10}};
    uint64_t want, seen;
    size_t i, j, b, m, r;
    int e, bad = 0;

    for (b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++)
        for (m = 0; m < 2; m++)
            for (r = 0; r < 4; r++)
                for (e = 0; e < INA_NEVENTS; e++) {
                    if (ranges[r][1] > (m == 0 ? 10u : 2u))
                        continue;
                    want = 0;
                    for (j = 0; j < (size_t) live; j++)
                        want += count(j, (enum ina_event) e, mons[m],
                                      blocks[b], ranges[r][0], ranges[r][1],
                                      0);
                    for (i = 0; i < (size_t) live; i++) {
                        seen = count(i, (enum ina_event) e, mons[m],
                                     blocks[b], ranges[r][0], ranges[r][1],
                                     INA_QUERY_CLUSTER);
                        if (seen != want && bad++ == 0)
                            diag("%s: %s %s %u..%u %s: cluster %llu, sum "
                                 "of locals %llu", names[i], mons[m],
                                 blocks[b], ranges[r][0], ranges[r][1],
                                 ina_event_name((enum ina_event) e),
                                 (unsigned long long) seen,
                                 (unsigned long long) want);
                    }
                }
    for (b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++) {
        want = 0;
        for (j = 0; j < (size_t) live; j++)
            want += sessions(j, blocks[b], "SMTP");
        for (i = 0; i < (size_t) live; i++) {
            seen = sessions(i, blocks[b], "inbound_cidr");
            if (seen != want && bad++ == 0)
                diag("%s: sessions %s: cluster %llu, sum %llu", names[i],
                     blocks[b], (unsigned long long) seen,
                     (unsigned long long) want);
        }
    }
    return bad;
}

/* rec - record n events of ev from addr on node i */

static void
rec(size_t i, enum ina_event ev, const char *addr, uint64_t n)
{
    struct ina_cidr c = test_addr(addr);
    int rc;

    if ((rc = ina_record(st[i], ev, &c, n)) != 0)
        bail("record: %s", ina_strerror(rc));
}

/* traffic - a mix of events on node i, different per call */

static void
traffic(size_t i, unsigned salt)
{
    char addr[64];
    unsigned k;

    for (k = 0; k < 20; k++) {
        snprintf(addr, sizeof(addr), "192.0.2.%u", (k * 7 + salt) % 64);
        rec(i, INA_CONNECTION, addr, 1 + k % 3);
        snprintf(addr, sizeof(addr), "198.51.%u.%u", 100 + k % 4,
                 (k + salt) % 250);
        rec(i, (enum ina_event) (k % 3), addr, 2);
        snprintf(addr, sizeof(addr), "2001:db8:%x::%x", k % 3, salt + k);
        rec(i, INA_REJECTION, addr, 1);
        snprintf(addr, sizeof(addr), "10.%u.%u.1", salt % 7, k);
        rec(i, INA_RECEPTION, addr, 5);
    }
}

/* sopen - open (or close, n < 0) SMTP sessions by hand on node i */

static void
sopen(size_t i, const char *addr, int64_t n, const char *service)
{
    struct ina_cidr c = test_addr(addr);
    int rc;

    if ((rc = ina_session_adjust(st[i], &c, service, n, NULL)) != 0)
        bail("session: %s", ina_strerror(rc));
}

/* open_node - open node i's store with the test clock */

static void
open_node(size_t i)
{
    char body[512], dir[16];
    struct ina_conf *conf;

    snprintf(body, sizeof(body), BODY, names[i]);
    snprintf(dir, sizeof(dir), "node-%s", names[i]);
    conf = test_conf(dir, body);
    st[i] = test_open(conf);
    ina_store_set_clock(st[i], test_clock, &now);
    ina_conf_free(conf);
}

/* test_noncluster - every cluster call refuses a store without one */

static void
test_noncluster(void)
{
    struct ina_conf *conf = test_conf("plain", NULL);
    struct ina_store *p = test_open(conf);
    struct ina_cidr c = test_addr("192.0.2.1");
    uint64_t n;
    char err[256];

    is_int(INA_ENOCLUSTER, ina_cluster_collect(p, 0, 0, NULL, NULL),
           "collect without a cluster is INA_ENOCLUSTER");
    is_int(INA_ENOCLUSTER, ina_cluster_apply(p, NULL, 0, NULL, 0, NULL, 0,
                                             0),
           "...so is apply");
    is_int(INA_ENOCLUSTER, ina_cluster_status(p, NULL, NULL, NULL),
           "...and status");
    is_int(INA_ENOCLUSTER, ina_query(p, INA_CONNECTION, "60,10", &c, 0, 0,
                                     INA_QUERY_CLUSTER, &n, err,
                                     sizeof(err)),
           "...and a cluster query");
    is_int(INA_ENOCLUSTER, ina_session_count(p, &c, "inbound_cidr", &n, err,
                                             sizeof(err)),
           "...and inbound_cidr");
    like(err, "\"inbound_cidr\" counts sessions cluster-wide", "...saying so");
    ina_store_close(p);
    ina_conf_free(conf);
}

/* nobody_waits - no node waits for a sweep */

static int
nobody_waits(void)
{
    size_t at, of;
    struct peer_arg pa;

    for (at = 0; at < (size_t) live; at++)
        for (of = 0; of < (size_t) live; of++)
            if (at != of && (pa = peer(at, of)).found && pa.p.resync)
                return 0;
    return 1;
}

/* main - the scenes, in order */

/* idle_worker - the agent's collect applies what an idle worker left
 * pending: with flush_delay > 0 a worker that records and then waits
 * (alive, making no call) leaves its events in the pending tables, and
 * only a later call of some process flushes them to the tree, that the
 * agent reads.  The collect loop is that call. */

static void
idle_worker(void)
{
    struct ina_conf *conf;
    struct ina_store *w, *agent;
    struct ina_cidr c = test_addr("203.0.113.77");
    uint64_t seq = 0, rows = 0;
    int up[2], down[2], status, i;
    char x;
    pid_t pid;

    conf = test_conf("idle", "flush_delay = 20\n"
                             "monitors = {\"60,10\"}\n"
                             "ipv4_prefixes = {32}\n"
                             "ipv6_prefixes = {128}\n"
                             "cluster {\n redis = \"127.0.0.1:1\"\n"
                             " node = \"a\"\n}\n");
    if (pipe(up) != 0 || pipe(down) != 0)
        sysbail("pipe");
    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        w = test_open(conf);
        ina_store_set_clock(w, test_clock, &now);
        for (i = 0; i < 3; i++)
            if (ina_record(w, INA_CONNECTION, &c, 1) != 0)
                _exit(1);
        if (write(up[1], "x", 1) != 1 || read(down[0], &x, 1) != 1)
            _exit(1);
        _exit(0);
    }
    ok(read(up[0], &x, 1) == 1, "a worker records 3 and goes idle");
    agent = test_open(conf);
    ina_store_set_clock(agent, test_clock, &now);
    usleep(60 * 1000);
    is_int(0, ina_cluster_collect(agent, 0, now * 1000, &seq, &rows),
           "the agent collects after the flush delay");
    ok(rows > 0, "its collect found the idle worker's events in the tree");
    if (write(down[1], "x", 1) != 1)
        sysbail("write");
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "the worker exits");
    ina_store_close(agent);
    ina_conf_free(conf);
}

/* recent_entries - the entries of a store's index of recent windows, as
 * mdb_stat(1) counts them (-1 if it has none) */

static long
recent_entries(const char *dir)
{
    char cmd[1024], line[256];
    long n = -1;
    FILE *f;

    snprintf(cmd, sizeof(cmd), "mdb_stat -s recent '%s/%s' 2>/dev/null",
             test_tmpdir(), dir);
    if ((f = popen(cmd, "r")) == NULL)
        sysbail("popen");
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, " Entries: %ld", &n) == 1)
            break;
    pclose(f);
    return n;
}

/* collect_exact - an ordinary collect publishes want rows (what), and
 * a full collect after it finds nothing it missed */

static void
collect_exact(struct ina_store *agent, uint64_t want, const char *what)
{
    uint64_t seq = 0, rows = 0;

    is_int(0, ina_cluster_collect(agent, 0, now * 1000, &seq, &rows),
           "an ordinary collect");
    is_uint(want, rows, "...publishes %s", what);
    is_int(0, ina_cluster_collect(agent, INA_CLUSTER_FULL, now * 1000, &seq,
                                  &rows), "a full collect");
    is_uint(0, rows, "...finds nothing the ordinary one missed");
}

/* recent_index - the index of recent windows, which an ordinary collect
 * reads instead of every now record
 *
 * A handle with a cluster makes it at its first read-write open, from
 * the records already there; a worker that opened the store before
 * (with no cluster of its own) keeps it from its next write on; and
 * over a window's end the ordinary collects leave nothing for a full one
 * to find.  Without the worker's part its new prefixes would reach only
 * the full collect. */

static void
recent_index(void)
{
    static const char *const plain_body =
        "flush_delay = 0\n"
        "monitors = {\"60,10\", \"300,2\"}\n"
        "ipv4_prefixes = {32, 24}\n"
        "ipv6_prefixes = {128}\n";
    struct ina_conf *plain, *conf;
    struct ina_store *w, *agent;
    struct ina_cidr c;
    int up[2], down[2], status, k;
    char x, addr[64], body[512];
    pid_t pid;

    plain = test_conf("recent", plain_body);
    snprintf(body, sizeof(body), "%s%s", plain_body,
             "cluster {\n redis = \"127.0.0.1:1\"\n node = \"a\"\n}\n");
    conf = test_conf("recent", body);
    if (pipe(up) != 0 || pipe(down) != 0)
        sysbail("pipe");
    if ((pid = fork()) < 0)
        sysbail("fork");
    if (pid == 0) {
        w = test_open(plain);
        ina_store_set_clock(w, test_clock, &now);
        c = test_addr("203.0.113.1");
        if (ina_record(w, INA_CONNECTION, &c, 1) != 0
            || write(up[1], "x", 1) != 1 || read(down[0], &x, 1) != 1)
            _exit(1);
        for (k = 0; k < 20; k++) {
            snprintf(addr, sizeof(addr), "198.18.%d.%d", k, k + 1);
            c = test_addr(addr);
            if (ina_record(w, INA_RECEPTION, &c, 2) != 0)
                _exit(1);
        }
        if (write(up[1], "x", 1) != 1)
            _exit(1);
        ina_store_close(w);
        _exit(0);
    }
    ok(read(up[0], &x, 1) == 1, "a worker without a cluster records first");
    is_int(-1, (int) recent_entries("recent"), "...and makes no index");
    agent = test_open(conf);
    ina_store_set_clock(agent, test_clock, &now);
    /* The worker's record: one prefix at /32 and /24, of width 60. */
    is_int(2, (int) recent_entries("recent"),
           "a handle with a cluster makes the index from the records "
           "there");
    if (write(down[1], "x", 1) != 1)
        sysbail("write");
    ok(read(up[0], &x, 1) == 1, "the worker records 20 new addresses");
    waitpid(pid, &status, 0);
    is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
           "...and exits");
    is_int(42, (int) recent_entries("recent"),
           "...which it entered in the index");
    /* 21 addresses, each its own /32 and /24, in two widths. */
    collect_exact(agent, 84, "the worker's 21 addresses");

    /* The next window: the old entries move to the counts database. */
    now += 60;
    for (k = 0; k < 10; k++) {
        snprintf(addr, sizeof(addr), "198.18.%d.%d", k, k + 1);
        c = test_addr(addr);
        if (ina_record(agent, INA_CONNECTION, &c, 1) != 0)
            bail("record");
    }
    collect_exact(agent, 40, "the next window's 10 addresses");
    /* Three windows on, the first window's keys are gone. */
    now += 180;
    c = test_addr("203.0.113.1");
    if (ina_record(agent, INA_CONNECTION, &c, 1) != 0)
        bail("record");
    is_int(2, (int) recent_entries("recent"),
           "windows older than the last two leave the index");
    ina_store_close(agent);
    ina_conf_free(conf);
    ina_conf_free(plain);
    now = T0;
}

int
main(void)
{
    struct ina_cluster_msg m;
    struct ina_cluster_beat beat;
    struct ina_cluster_self self;
    struct peer_arg pa;
    struct wmsg bad;
    size_t i, k, first;
    uint64_t before;
    int rc;

    plan_lazy();
    test_noncluster();
    for (i = 0; i < 3; i++)
        open_node(i);

    /* An empty cluster: nothing to publish, and every total is 0. */
    for (i = 0; i < 3; i++)
        is_uint(0, publish(i, INA_CLUSTER_FULL),
                "node %s: nothing to publish at first", names[i]);
    is_int(0, ina_cluster_status(st[0], &self, NULL, NULL), "status works");
    ok(self.inc != 0, "...and the store has an incarnation");
    is_uint(0, self.seq, "...and no message yet");

    /* Different traffic on every node, sessions on two. */
    traffic(0, 1);
    traffic(1, 2);
    traffic(1, 3);
    traffic(2, 5);
    sopen(0, "192.0.2.7", 3, "SMTP");
    sopen(1, "192.0.2.9", 2, "SMTP");
    sopen(1, "192.0.2.9", 4, "ECStream");
    sopen(2, "2001:db8::1", 1, "SMTP");
    for (i = 0; i < 3; i++)
        ok(publish(i, 0) > 0, "node %s publishes its traffic", names[i]);
    is_int(1, converged() > 0, "before delivery the totals differ");
    deliver();
    is_int(0, converged(), "after delivery every cluster total is the sum "
           "of the locals");
    /* a has 3 SMTP sessions in 192.0.2.0/24, b 2, c none there. */
    is_uint(5, sessions(2, "192.0.2.0/24", "inbound_cidr"),
            "inbound_cidr counts SMTP sessions of every node");
    is_uint(0, sessions(2, "192.0.2.0/24", "ECStream"),
            "...and other services stay local");
    pa = peer(1, 0);
    ok(pa.found && pa.p.seq > 0 && !pa.p.resync,
       "b knows a, at message %llu, no resync",
       (unsigned long long) pa.p.seq);
    is_int(now * 1000, pa.p.as_of, "...as of a's collect");

    /* The transport replays everything: nothing counts twice. */
    memset(readpos, 0, sizeof(readpos));
    deliver();
    is_int(0, converged(), "a replay of every stream changes nothing");

    /* Nothing changed: nothing is published. */
    for (i = 0; i < 3; i++)
        is_uint(0, publish(i, INA_CLUSTER_FULL),
                "node %s: no change, no message", names[i]);

    /* A lost message: b never sees a's next one, then sees the one
     * after; it asks for a resync, a sweeps, and b is exact again. */
    traffic(0, 11);
    first = nstream[0];
    publish(0, 0);
    traffic(0, 12);
    sopen(0, "192.0.2.7", -1, "SMTP");
    publish(0, 0);
    readpos[1][0] = first + 1;          /* message first is lost for b */
    deliver();
    pa = peer(1, 0);
    ok(pa.p.resync, "b noticed the hole in a's messages");
    is_uint(streams[0][first].seq, pa.p.resync_after,
            "...and waits for a sweep after the missing number");
    ok(converged() > 0, "...and is inexact meanwhile");
    resync();
    ok(nobody_waits(), "after the sweep nobody waits");
    is_int(0, converged(), "...and every total is exact again");

    /* A clear whose message is lost: the sweep's end deletes the rows
     * the receiver should no longer have. */
    {
        struct ina_cidr blk = test_addr("198.51.100.0/24");
        uint64_t removed;

        if ((rc = ina_clear(st[1], &blk, &removed)) != 0)
            bail("clear: %s", ina_strerror(rc));
        ok(removed > 0, "b clears a block (%llu records)",
           (unsigned long long) removed);
    }
    first = nstream[1];
    publish(1, 0);
    traffic(1, 21);
    publish(1, 0);
    readpos[2][1] = first + 1;          /* c never sees the clear */
    deliver();
    ok(peer(2, 1).p.resync, "c noticed it missed b's clear");
    resync();
    is_int(0, converged(), "after the sweep c has b's clear too");

    /* A heartbeat ahead of every message read means lost messages. */
    traffic(2, 31);
    first = nstream[2];
    publish(2, 0);
    nstream[2] = first;                 /* lost by the transport */
    free(streams[2][first].data);
    beat.node = "c";
    beat.inc = streams[2][first].inc;
    beat.seq = streams[2][first].seq;
    beat.as_of = now * 1000;
    if ((rc = ina_cluster_apply(st[0], NULL, 0, &beat, 1, NULL, 0,
                                now * 1000)) != 0)
        bail("beat: %s", ina_strerror(rc));
    pa = peer(0, 2);
    ok(pa.p.resync, "a heartbeat ahead of the messages asks for a resync");
    is_string("0-0", pa.p.pos, "...and reads the stream again from its start");
    /* b gets the same heartbeat without the message too. */
    if ((rc = ina_cluster_apply(st[1], NULL, 0, &beat, 1, NULL, 0,
                                now * 1000)) != 0)
        bail("beat: %s", ina_strerror(rc));
    resync();
    is_int(0, converged(), "the sweep makes good the lost message");
    /* A heartbeat in step only makes the node fresher. */
    beat.seq = peer(0, 2).p.seq;
    beat.as_of = now * 1000 + 700;
    if ((rc = ina_cluster_apply(st[0], NULL, 0, &beat, 1, NULL, 0,
                                now * 1000 + 700)) != 0)
        bail("beat: %s", ina_strerror(rc));
    pa = peer(0, 2);
    ok(!pa.p.resync, "a heartbeat in step asks for nothing");
    is_int(now * 1000 + 700, pa.p.as_of, "...and moves as_of");

    /* A node's own messages, and garbage, are harmless. */
    to_msg(&streams[0][0], &m);
    if ((rc = ina_cluster_apply(st[0], &m, 1, NULL, 0, NULL, 0, now * 1000))
        != 0)
        bail("own: %s", ina_strerror(rc));
    is_int(0, converged(), "a node ignores its own messages");
    bad = streams[1][nstream[1] - 1];
    bad.seq++;
    bad.data = (uint8_t *) "\001\001\377\377\377";
    bad.len = 5;
    to_msg(&bad, &m);
    is_int(0, ina_cluster_apply(st[0], &m, 1, NULL, 0, NULL, 0, now * 1000),
           "a malformed message is not an error of the apply");
    ok(peer(0, 1).p.resync, "...but asks for a resync");
    /* b's numbering has moved on under a's feet: b's next messages skip
     * the one a took as malformed. */
    publish(1, 0);
    traffic(1, 41);
    publish(1, 0);
    deliver();
    resync();
    is_int(0, converged(), "after the resync a is exact again");

    /* A late node: d reads every stream from its start (nothing was
     * trimmed) and catches up without a sweep. */
    open_node(3);
    live = 4;
    traffic(3, 51);
    sopen(3, "198.51.100.1", 2, "SMTP");
    publish(3, 0);
    deliver();
    ok(!peer(3, 0).p.resync && peer(3, 0).p.seq > 0,
       "d read a's whole stream from its start, without a sweep");
    ok(!peer(3, 2).p.resync, "...and read past the hole in c's stream "
       "through the sweep it holds after it");
    resync();
    is_int(0, converged(), "a node added late catches up exactly");

    /* A node gone silent: after INA_CLUSTER_GONE_MS its sessions no
     * longer count anywhere; heard again, a sweep brings them back. */
    now += 31;
    for (i = 0; i < 3; i++)
        if ((rc = ina_cluster_apply(st[i], NULL, 0, NULL, 0, NULL, 0,
                                    now * 1000)) != 0)
            bail("upkeep: %s", ina_strerror(rc));
    pa = peer(0, 3);
    ok(pa.p.gone, "d is gone for a after 31 silent seconds");
    is_uint(sessions(0, "198.51.100.0/24", "SMTP"),
            sessions(0, "198.51.100.0/24", "inbound_cidr"),
            "...and d's sessions no longer count on a");
    for (i = 0; i < 3; i++)
        publish(i, 0);
    live = 4;
    beat.node = "d";
    beat.inc = peer(0, 3).p.inc;
    beat.seq = peer(0, 3).p.seq;
    beat.as_of = now * 1000;
    for (i = 0; i < 3; i++)
        if ((rc = ina_cluster_apply(st[i], NULL, 0, &beat, 1, NULL, 0,
                                    now * 1000)) != 0)
            bail("beat: %s", ina_strerror(rc));
    ok(!peer(0, 3).p.gone, "d is heard again");
    /* Everyone was silent for everyone: all gauges come back by sweeps. */
    for (i = 0; i < 4; i++) {
        size_t j;

        for (j = 0; j < 4; j++) {
            if (i == j)
                continue;
            beat.node = names[j];
            beat.inc = peer(i, j).p.inc;
            beat.seq = peer(i, j).p.seq;
            beat.as_of = now * 1000;
            if ((rc = ina_cluster_apply(st[i], NULL, 0, &beat, 1, NULL, 0,
                                        now * 1000)) != 0)
                bail("beat: %s", ina_strerror(rc));
        }
    }
    resync();
    is_int(0, converged(), "...and after the sweeps its sessions count "
           "again");

    /* Windows roll: new traffic in a new window, old windows age out of
     * the cluster table as of the local one. */
    now += 300;
    for (i = 0; i < 4; i++)
        traffic(i, 60 + (unsigned) i);
    for (i = 0; i < 4; i++)
        publish(i, 0);
    deliver();
    is_int(0, converged(), "five minutes on, still exact");
    /* Events of the previous narrow window, published after it rolled
     * over, reach every width. */
    traffic(0, 70);
    traffic(2, 71);
    now += 60;
    publish(0, 0);
    publish(2, 0);
    deliver();
    is_int(0, converged(), "events published a window late reach every "
           "width");

    /* A change to an older window (a dump loaded, a dead process's
     * journal replayed) waits for a full collect. */
    {
        struct ina_counter c;

        memset(&c, 0, sizeof(c));
        c.width = 60;
        c.window = (uint32_t) (now / 60) - 3;
        c.prefix = test_addr("192.0.2.0/24");
        c.prefix.has_mask = 1;
        c.count[INA_RECEPTION] = 17;
        if ((rc = ina_load_counter(st[2], &c)) != 0)
            bail("load: %s", ina_strerror(rc));
        is_uint(0, publish(2, 0), "a change three windows back is not in "
                "an ordinary collect");
        ok(publish(2, INA_CLUSTER_FULL) > 0, "...but in a full one");
        deliver();
        is_int(0, converged(), "...and then every node has it");
    }
    if ((rc = ina_cluster_status(st[0], &self, NULL, NULL)) != 0)
        bail("status: %s", ina_strerror(rc));
    before = self.rows;
    now += 3600;
    for (i = 0; i < 4; i++)
        publish(i, INA_CLUSTER_FULL);
    deliver();
    if ((rc = ina_cluster_apply(st[0], NULL, 0, NULL, 0, NULL, 0,
                                now * 1000)) != 0)
        bail("upkeep: %s", ina_strerror(rc));
    if ((rc = ina_cluster_status(st[0], &self, NULL, NULL)) != 0)
        bail("status: %s", ina_strerror(rc));
    ok(self.rows < before, "an hour on, a's cluster table shrank (%llu "
       "rows, was %llu)", (unsigned long long) self.rows,
       (unsigned long long) before);
    is_int(0, converged(), "...and every total is still exact (all 0 but "
           "the gauges)");
    {
        uint64_t removed = 0;

        now += 600;
        before = count(0, INA_CONNECTION, "60,10", "0.0.0.0/0", 0, 10,
                       INA_QUERY_CLUSTER);
        is_int(0, ina_expire(st[0], &removed), "ina_expire runs");
        if ((rc = ina_cluster_status(st[0], &self, NULL, NULL)) != 0)
            bail("status: %s", ina_strerror(rc));
        is_uint(before, count(0, INA_CONNECTION, "60,10", "0.0.0.0/0", 0, 10,
                              INA_QUERY_CLUSTER),
                "...and changes no total");
        ok(sessions(0, "0.0.0.0/0", "inbound_cidr")
               > sessions(0, "0.0.0.0/0", "SMTP"),
           "...and keeps the other nodes' gauges");
    }

    for (i = 0; i < NNODES; i++)
        ina_store_close(st[i]);
    for (i = 0; i < NNODES; i++)
        for (k = 0; k < nstream[i]; k++)
            free(streams[i][k].data);
    idle_worker();
    recent_index();
    test_cleanup();
    return 0;
}
