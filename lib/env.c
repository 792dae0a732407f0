/* env.c - the process's LMDB environments, shared by all handles
 *
 * LMDB forbids opening one environment twice in a process (closing the
 * second copy drops the first one's fcntl locks) and forbids using an
 * environment after fork().  This module owns both rules.  It keeps a
 * registry of open environments keyed by the store directory's device and
 * inode, with a reference count, so every ina_store handle of a process,
 * the Lua module's included, shares one MDB_env.  A pthread_atfork child
 * handler closes every inherited environment at once, before the host can
 * close or reuse its descriptors; the child reopens lazily on its first
 * call (env_check).  Closing an inherited environment in the child is safe
 * in LMDB 0.9.24: it clears only reader slots of the child's own pid.
 *
 * Environment flags are fixed here for every process: MDB_NOTLS (reader
 * slots belong to transactions, so cached read transactions can be reset
 * and renewed across threads), MDB_NOSYNC (a process crash loses no
 * committed transaction; counters need no fsync per event) and, for every
 * process that may write, MDB_WRITEMAP: a transaction writes its pages in
 * the map instead of in malloc'd copies that the commit then pwrites,
 * which halves the cost of a flush (README, Performance).  LMDB sizes the
 * file of a WRITEMAP environment to the whole map, sparse; a store into a
 * hole of a full disk would be SIGBUS in a worker, so the file's blocks
 * are reserved with fallocate(2) at open, and a disk that cannot hold the
 * map fails the open with ENOSPC instead.  The map size is fixed at open
 * to the larger of the configured ceiling and the file size and is never
 * changed at run time, so no process can remap or truncate under another.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "inaudit.h"
#include "internal.h"

/* Reader slots of a new lock file; an existing one keeps its size. */
#define ENV_MAXREADERS 1024
/* Named databases: meta, counts, sessions, owners, recent, the five of
 * the cluster sync, format 2's now (read-only), and room to grow. */
#define ENV_MAXDBS 16
/* Attempts to open while another process opens or closes (lmdb.h). */
#define ENV_OPEN_TRIES 5

static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;
/* This process's pid, kept by the fork handler: glibc does not cache
 * getpid(), and every entry point compares it. */
static pid_t env_mypid;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static struct env *env_list;

/* env_atfork_child - close every inherited environment in a new child
 *
 * Runs in the child right after fork(), single-threaded.  The registry
 * lock may have been held by another thread of the parent, so it is made
 * anew.  Transactions and cursors cached by handles are forgotten by the
 * handles themselves (they compare pids), never aborted: aborting an
 * inherited NOTLS transaction would free the parent's reader slot. */

static void
env_atfork_child(void)
{
    struct env *e;

    pthread_mutex_init(&env_lock, NULL);
    env_mypid = getpid();
    for (e = env_list; e != NULL; e = e->next) {
        if (e->env != NULL) {
            mdb_env_close(e->env);
            e->env = NULL;
        }
        pthread_mutex_init(&e->wlock, NULL);
        pthread_mutex_init(&e->block, NULL);
        pthread_mutex_init(&e->slock, NULL);
        batch_forget(e);
    }
}

/* env_init_once - install the fork handler */

static void
env_init_once(void)
{
    env_mypid = getpid();
    pthread_atfork(NULL, NULL, env_atfork_child);
}

/* env_pid - this process's pid, without a system call
 *
 * Kept by the fork handler, so a child made by fork() sees its own.  A
 * child made without the handlers running (a raw clone(2)) is not
 * supported, as LMDB itself does not support it. */

pid_t
env_pid(void)
{
    pthread_once(&env_once, env_init_once);
    return env_mypid;
}

/* env_mkdir - create the store directory, mode 0750, if it is missing */

/* env_group - the gid of a group name, and whether this process is in it
 *
 * Returns 0 and sets *gid, or ENOENT. */

static int
env_group(const char *name, gid_t *gid, int *member)
{
    struct group gr, *res = NULL;
    char buf[4096];
    gid_t groups[256];
    int n, i;

    if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) != 0 || res == NULL)
        return ENOENT;
    *gid = gr.gr_gid;
    *member = getegid() == gr.gr_gid;
    n = getgroups((int) (sizeof(groups) / sizeof(groups[0])), groups);
    for (i = 0; i < n && !*member; i++)
        *member = groups[i] == gr.gr_gid;
    return 0;
}

/* env_owner_ok - may this process use a store owned by someone else?
 *
 * Its own, or root's when it is root; another user's only through the
 * configured group, when the directory belongs to that group and the
 * process is a member. */

static int
env_owner_ok(const struct stat *sb, const char *group)
{
    gid_t gid;
    int member;

    if (sb->st_uid == geteuid() || geteuid() == 0)
        return 1;
    return group != NULL && env_group(group, &gid, &member) == 0 && member
           && sb->st_gid == gid;
}

/* env_chgrp - give a new file or directory to the configured group */

static int
env_chgrp(const char *path, const char *group)
{
    gid_t gid;
    int member;

    if (group == NULL)
        return 0;
    if (env_group(group, &gid, &member) != 0)
        return ENOENT;
    return chown(path, (uid_t) -1, gid) == 0 ? 0 : errno;
}

static int
env_mkdir(const char *dir, const char *group, int rdonly, char *errbuf,
          size_t errlen)
{
    struct stat sb;

    if (dir[0] != '/')
        return err_set(errbuf, errlen, INA_EUNSAFE,
                       "store %s: not an absolute path", dir);
    if (lstat(dir, &sb) == 0) {
        if (S_ISLNK(sb.st_mode))
            return err_set(errbuf, errlen, INA_EUNSAFE,
                           "store %s: is a symbolic link", dir);
        if (!S_ISDIR(sb.st_mode))
            return err_set(errbuf, errlen, ENOTDIR,
                           "store %s: not a directory", dir);
        if (sb.st_mode & S_IWOTH)
            return err_set(errbuf, errlen, INA_EUNSAFE,
                           "store %s: world-writable (mode %04o)", dir,
                           (unsigned) (sb.st_mode & 07777));
        if (!env_owner_ok(&sb, group))
            return err_set(errbuf, errlen, INA_EUNSAFE,
                           "store %s: owned by uid %ld, not by this user "
                           "(uid %ld); run as its owner, or share it "
                           "through the configuration's group", dir,
                           (long) sb.st_uid, (long) geteuid());
        return 0;
    }
    if (errno != ENOENT || rdonly)
        return err_set(errbuf, errlen, errno, "store %s: %s", dir,
                       strerror(errno));
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return err_set(errbuf, errlen, errno, "store %s: mkdir: %s", dir,
                       strerror(errno));
    /* The umask may have taken bits away; set exactly 0750. */
    if (chmod(dir, 0750) != 0)
        return err_set(errbuf, errlen, errno, "store %s: chmod: %s", dir,
                       strerror(errno));
    if (env_chgrp(dir, group) != 0)
        return err_set(errbuf, errlen, errno, "store %s: chgrp %s: %s",
                       dir, group, strerror(errno));
    return 0;
}

/* env_fix_mode - make a file of a new store 0660 despite the umask */

static void
env_fix_mode(const char *dir, const char *name, const char *group)
{
    char path[4096];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (stat(path, &sb) != 0 || sb.st_uid != geteuid())
        return;
    if ((sb.st_mode & 0777) != 0660)
        chmod(path, 0660);
    (void) env_chgrp(path, group);
}

/* env_key_cmp - the counter databases' LMDB comparison (key_cmp) */

static int
env_key_cmp(const MDB_val *a, const MDB_val *b)
{
    return key_cmp(a->mv_data, a->mv_size, b->mv_data, b->mv_size);
}

/* env_open_recent - open the index of recent windows in txn: with width
 * 0 the one there is (MDB_NOTFOUND if none), else a new one of that
 * width (made empty; the caller fills it).  Sets recent and
 * recent_width; has_recent is for the caller to set once txn has
 * committed (a handle opened in a transaction that aborts is gone with
 * it, and until the commit no other transaction may use it). */

int
env_open_recent(struct env *e, MDB_txn *txn, uint32_t width)
{
    uint64_t w;
    int rc;

    if (width == 0) {
        w = store_meta_u64(txn, e->meta, "recent_width");
        if (w == 0 || w > UINT32_MAX)
            return MDB_NOTFOUND;
    } else {
        w = width;
    }
    if ((rc = mdb_dbi_open(txn, "recent", width != 0 ? MDB_CREATE : 0,
                           &e->recent)) != 0
        || (rc = mdb_set_compare(txn, e->recent, env_key_cmp)) != 0)
        return rc;
    if (width != 0
        && (rc = store_meta_put_u64(txn, e->meta, "recent_width", w)) != 0)
        return rc;
    e->recent_width = (uint32_t) w;
    return 0;
}

/* env_upgrade - note where format 1 left its windows (legacy_time)
 *
 * Format 1 kept every window in the counts database; the formats since
 * keep each prefix's newest windows in its now record.  The counts of
 * format 1 stay where they are, added by every query as before.  A
 * point query reads the counts database only where it may hold the
 * window asked for; so the end of the last window format 1 wrote (or
 * the upgrade's time, if later) is kept as legacy_time, and up to it
 * both are read. */

static int
env_upgrade(MDB_txn *txn, struct env *e)
{
    uint8_t probe[4];
    uint64_t legacy = (uint64_t) time(NULL), end;
    uint32_t width, win;
    MDB_cursor *c;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_cursor_open(txn, e->counts, &c)) != 0)
        return rc;
    /* The last key of each width has its newest window. */
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0 && k.mv_size >= 8) {
        width = (uint32_t) be_get(k.mv_data, 4);
        if (width == UINT32_MAX)
            break;
        be_put(probe, width + 1u, 4);
        k.mv_data = probe;
        k.mv_size = sizeof(probe);
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == 0)
            rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
        else if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
        if (rc != 0 || k.mv_size < 8)
            break;
        win = (uint32_t) be_get((uint8_t *) k.mv_data + 4, 4);
        end = ((uint64_t) win + 1) * be_get(k.mv_data, 4);
        if (end > legacy)
            legacy = end;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    return store_meta_put_u64(txn, e->meta, "legacy_time", legacy);
}

/* env_pack - a now value of format 2 or 3 as format 4's, in buf
 * (NVAL_MAX bytes): 0, or -1 if it is not one (it counted nothing) */

static int
env_pack(const MDB_val *v, uint8_t *buf, MDB_val *out)
{
    struct nent ent[NENT_MAX];
    int n;

    if ((n = store_now_unpack(NOW_PACKED_FORMAT - 1, v, ent)) <= 0)
        return -1;
    out->mv_data = buf;
    out->mv_size = store_now_pack(ent, (size_t) n, buf);
    return 0;
}

/* env_upgrade_now - move format 2's now database into the main one
 *
 * Format 2 kept the now records in a named database; format 3 keeps them
 * in LMDB's main database, beside the named databases' own records
 * (internal.h, now_key).  A renewed read transaction must look a named
 * database's record up in the main database before its first read of it
 * (LMDB marks them stale), a tenth of a point query's instructions that
 * the main database never costs.  The records are copied in key order,
 * packed as format 4's (env_upgrade_pack), and the old database deleted,
 * in the caller's transaction: the map must hold both copies until it
 * commits. */

static int
env_upgrade_now(MDB_txn *txn, MDB_dbi main)
{
    uint8_t buf[NVAL_MAX];
    MDB_cursor *c;
    MDB_dbi old;
    MDB_val k, v, pv;
    int rc;

    if ((rc = mdb_dbi_open(txn, "now", 0, &old)) != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    if ((rc = mdb_set_compare(txn, old, env_key_cmp)) != 0
        || (rc = mdb_cursor_open(txn, old, &c)) != 0)
        return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (!now_key(&k))
            break;
        if (env_pack(&v, buf, &pv) == 0
            && (rc = mdb_put(txn, main, &k, &pv, 0)) != 0)
            break;
    }
    mdb_cursor_close(c);
    if (rc == 0)
        rc = MDB_CORRUPTED;     /* a key no now record has */
    if (rc != MDB_NOTFOUND)
        return rc;
    return mdb_drop(txn, old, 1);
}

/* env_upgrade_pack - pack format 3's now values as format 4's
 *
 * In place in the main database, in the caller's transaction, which
 * copies every leaf page of the now records: the map must hold both
 * copies until it commits.  A value that is not one (it counted
 * nothing, and a record of its prefix failed on it) is deleted.  A put
 * of another size moves the page's nodes, so each is made by key from
 * a copy, and the cursor placed anew after it (store_expire_now). */

static int
env_upgrade_pack(MDB_txn *txn, MDB_dbi main)
{
    uint8_t kbuf[NKEY_MAX], buf[NVAL_MAX];
    MDB_cursor *c;
    MDB_val k, v, pv;
    int rc;

    if ((rc = mdb_cursor_open(txn, main, &c)) != 0)
        return rc;
    rc = now_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (env_pack(&v, buf, &pv) != 0) {
            if ((rc = mdb_cursor_del(c, 0)) == 0)
                rc = now_get(c, &k, &v, MDB_GET_CURRENT);
            continue;
        }
        memcpy(kbuf, k.mv_data, k.mv_size);
        k.mv_data = kbuf;
        if ((rc = mdb_put(txn, main, &k, &pv, 0)) != 0)
            break;
        if ((rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY)) == 0)
            rc = now_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
}

/* env_put_format - write the format record */

static int
env_put_format(MDB_txn *txn, MDB_dbi meta, uint32_t version)
{
    MDB_val k, v;

    k.mv_data = (void *) "format";
    k.mv_size = 6;
    v.mv_data = &version;
    v.mv_size = sizeof(version);
    return mdb_put(txn, meta, &k, &v, 0);
}

/* env_get_format - read the format record: 0, or MDB_NOTFOUND, or
 * INA_EVERSION when it is malformed */

int
env_get_format(MDB_txn *txn, MDB_dbi meta, uint32_t *version)
{
    MDB_val k, v;
    int rc;

    k.mv_data = (void *) "format";
    k.mv_size = 6;
    if ((rc = mdb_get(txn, meta, &k, &v)) != 0)
        return rc;
    if (v.mv_size != sizeof(*version))
        return INA_EVERSION;
    memcpy(version, v.mv_data, sizeof(*version));
    return 0;
}

/* env_open_dbis - open the databases and check the format
 *
 * DBIs must be opened in a transaction that commits, so that every later
 * transaction of the process sees them.  A read-write open upgrades a
 * store of an older format; a read-only one reads it as it is, and
 * store_read_begin sees when another process has upgraded it since. */

static int
env_open_dbis(struct env *e, char *errbuf, size_t errlen)
{
    MDB_txn *txn;
    unsigned cflag = e->rdonly ? 0 : MDB_CREATE;
    uint32_t version;
    int rc;

    rc = mdb_txn_begin(e->env, NULL, e->rdonly ? MDB_RDONLY : 0, &txn);
    if (rc != 0)
        return err_set(errbuf, errlen, rc, "store %s: %s", e->path,
                       mdb_strerror(rc));
    if ((rc = mdb_dbi_open(txn, "meta", cflag, &e->meta)) != 0)
        goto fail;
    rc = env_get_format(txn, e->meta, &version);
    if (rc == MDB_NOTFOUND && !e->rdonly) {
        version = INA_FORMAT_VERSION;
        if ((rc = env_put_format(txn, e->meta, version)) != 0)
            goto fail;
    } else if (rc == INA_EVERSION) {
        mdb_txn_abort(txn);
        return err_set(errbuf, errlen, rc,
                       "store %s: malformed format record; move the "
                       "store aside and start a new one", e->path);
    } else if (rc != 0) {
        goto fail;
    } else if (version < 1 || version > INA_FORMAT_VERSION) {
        mdb_txn_abort(txn);
        return err_set(errbuf, errlen, INA_EVERSION,
                       "store %s: format version %u, this is %s which "
                       "reads versions 1 to %u; dump it with the auditctl "
                       "that wrote it, or move it aside",
                       e->path, (unsigned) version, INA_VERSION_STRING,
                       (unsigned) INA_FORMAT_VERSION);
    }
    if ((rc = mdb_dbi_open(txn, "counts", cflag, &e->counts)) != 0
        || (rc = mdb_set_compare(txn, e->counts, env_key_cmp)) != 0
        || (rc = mdb_dbi_open(txn, "sessions", cflag, &e->sessions)) != 0
        || (rc = mdb_dbi_open(txn, "owners", cflag, &e->owners)) != 0)
        goto fail;
    /* The main database holds the now records from format 3 on, in the
     * counter databases' order (which is also LMDB's default, that the
     * named databases' own records need). */
    if ((rc = mdb_dbi_open(txn, NULL, 0, &e->now)) != 0
        || (rc = mdb_set_compare(txn, e->now, env_key_cmp)) != 0)
        goto fail;
    if (!e->rdonly && version < INA_FORMAT_VERSION) {
        if ((version == 1 && (rc = env_upgrade(txn, e)) != 0)
            || (version == 2 && (rc = env_upgrade_now(txn, e->now)) != 0)
            || (version == 3 && (rc = env_upgrade_pack(txn, e->now)) != 0)
            || (rc = env_put_format(txn, e->meta, INA_FORMAT_VERSION)) != 0) {
            mdb_txn_abort(txn);
            return err_set(errbuf, errlen, rc, "store %s: upgrading format "
                           "%u to %u: %s%s", e->path, (unsigned) version,
                           (unsigned) INA_FORMAT_VERSION, mdb_strerror(rc),
                           rc == MDB_MAP_FULL
                               ? " (the map holds the now records twice "
                                 "until it commits: raise map_size)"
                               : "");
        }
        version = INA_FORMAT_VERSION;
    }
    e->format = version;
    e->legacy_time = store_meta_u64(txn, e->meta, "legacy_time");
    /* Read-only, format 1 has no now records (it reads as if empty), and
     * format 2 has them in a named database. */
    e->has_now = version != 1;
    if (version == 2
        && ((rc = mdb_dbi_open(txn, "now", 0, &e->now)) != 0
            || (rc = mdb_set_compare(txn, e->now, env_key_cmp)) != 0))
        goto fail;
    /* The cluster sync's tables (cluster.c): the other nodes' counters
     * and gauges, what this node has published, its outbox, and what it
     * knows of the other nodes.  A store made before they existed gets
     * them at its first read-write open; until then a read-only handle
     * sees an empty cluster. */
    e->has_cluster = 0;
    rc = mdb_dbi_open(txn, "cluster", cflag, &e->cluster);
    if (rc == 0
        && (rc = mdb_set_compare(txn, e->cluster, env_key_cmp)) == 0
        && (rc = mdb_dbi_open(txn, "csessions", cflag, &e->csessions)) == 0
        && (rc = mdb_dbi_open(txn, "published", cflag, &e->published)) == 0
        && (rc = mdb_dbi_open(txn, "outbox", cflag, &e->outbox)) == 0
        && (rc = mdb_dbi_open(txn, "peers", cflag, &e->peers)) == 0)
        e->has_cluster = 1;
    else if (rc != MDB_NOTFOUND || !e->rdonly)
        goto fail;
    e->has_recent = 0;
    if (e->has_now && (rc = env_open_recent(e, txn, 0)) == 0)
        e->has_recent = 1;      /* this transaction commits below */
    else if (e->has_now && rc != MDB_NOTFOUND)
        goto fail;
    if ((rc = mdb_txn_commit(txn)) != 0)
        return err_set(errbuf, errlen, rc, "store %s: %s", e->path,
                       mdb_strerror(rc));
    return 0;

fail:
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return err_set(errbuf, errlen, ENOENT,
                       "store %s: not initialised (open it read-write once)",
                       e->path);
    return err_set(errbuf, errlen, rc, "store %s: %s", e->path,
                   mdb_strerror(rc));
}

/* env_file_size - size of data.mdb, 0 if it does not exist */

static uint64_t
env_file_size(const char *dir)
{
    char path[4096];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (stat(path, &sb) != 0)
        return 0;
    return (uint64_t) sb.st_size;
}

/* env_reserve - give every block of a WRITEMAP map its disk space
 *
 * The file is as long as the map and sparse where LMDB never wrote.
 * fallocate(2), not posix_fallocate(3): glibc's fallback for file systems
 * without it writes zero bytes over the file, which could undo a
 * concurrent writer's store into the map.  Nothing is done when the file
 * is already allocated, as it is at every open but the first. */

static int
env_reserve(struct env *e, char *errbuf, size_t errlen)
{
    struct stat sb;
    int fd, rc;

    if ((rc = mdb_env_get_fd(e->env, &fd)) != 0)
        return err_set(errbuf, errlen, rc, "store %s: %s", e->path,
                       mdb_strerror(rc));
    if (fstat(fd, &sb) != 0)
        return err_set(errbuf, errlen, errno, "store %s: data.mdb: %s",
                       e->path, strerror(errno));
    if ((uint64_t) sb.st_blocks * 512u >= (uint64_t) sb.st_size)
        return 0;
    if (fallocate(fd, 0, 0, sb.st_size) == 0)
        return 0;
    if (errno == ENOSPC)
        return err_set(errbuf, errlen, ENOSPC,
                       "store %s: the disk cannot hold the map "
                       "(map_size %llu bytes is reserved in data.mdb): "
                       "free space or lower map_size", e->path,
                       (unsigned long long) sb.st_size);
    return err_set(errbuf, errlen, errno,
                   "store %s: cannot reserve the map's %llu bytes in "
                   "data.mdb: %s", e->path, (unsigned long long) sb.st_size,
                   strerror(errno));
}

/* env_open_lmdb - create and open the MDB_env of e */

static int
env_open_lmdb(struct env *e, char *errbuf, size_t errlen)
{
    uint64_t size;
    int rc, tries, dead;
    unsigned flags;

    for (tries = 0;; tries++) {
        if ((rc = mdb_env_create(&e->env)) != 0)
            return err_set(errbuf, errlen, rc, "store %s: %s", e->path,
                           mdb_strerror(rc));
        size = env_file_size(e->path);
        if (size < e->map_size)
            size = e->map_size;
        mdb_env_set_mapsize(e->env, (size_t) size);
        mdb_env_set_maxreaders(e->env, ENV_MAXREADERS);
        mdb_env_set_maxdbs(e->env, ENV_MAXDBS);
        flags = MDB_NOTLS | MDB_NOSYNC;
        if (e->rdonly && access(e->path, W_OK) != 0)
            flags |= MDB_RDONLY;
        else
            flags |= MDB_WRITEMAP;
        rc = mdb_env_open(e->env, e->path, flags, 0660);
        if (rc == 0 && (flags & MDB_WRITEMAP)
            && (rc = env_reserve(e, errbuf, errlen)) != 0) {
            mdb_env_close(e->env);
            e->env = NULL;
            return rc;
        }
        if (rc == 0)
            break;
        mdb_env_close(e->env);
        e->env = NULL;
        /* Another process opening or closing at the same instant can
         * make the open fail transiently (lmdb.h caveats). */
        if ((rc == EAGAIN || rc == EBUSY) && tries < ENV_OPEN_TRIES) {
            usleep(1000u << tries);
            continue;
        }
        if (rc == ENOENT && e->rdonly)
            return err_set(errbuf, errlen, rc,
                           "store %s: no store here (data.mdb missing)",
                           e->path);
        return err_set(errbuf, errlen, rc, "store %s: %s", e->path,
                       mdb_strerror(rc));
    }
    if (!e->rdonly) {
        env_fix_mode(e->path, "data.mdb", e->group);
        env_fix_mode(e->path, "lock.mdb", e->group);
    }
    /* Clear reader slots left by processes that died. */
    mdb_reader_check(e->env, &dead);
    e->pid = env_pid();
    if ((rc = env_open_dbis(e, errbuf, errlen)) != 0) {
        mdb_env_close(e->env);
        e->env = NULL;
        return rc;
    }
    return 0;
}

/* env_acquire - get the process's environment of a store directory
 *
 * Creates the directory unless rdonly, then finds the registered
 * environment of that directory or opens a new one.  A read-only caller
 * does not make a shared environment read-only: handles enforce their
 * own mode. */

int
env_acquire(const char *dir, const char *group, uint64_t map_size,
            int rdonly, struct env **out, char *errbuf, size_t errlen)
{
    struct stat sb;
    struct env *e;
    int rc;

    pthread_once(&env_once, env_init_once);
    if ((rc = env_mkdir(dir, group, rdonly, errbuf, errlen)) != 0)
        return rc;
    if (stat(dir, &sb) != 0)
        return err_set(errbuf, errlen, errno, "store %s: %s", dir,
                       strerror(errno));
    pthread_mutex_lock(&env_lock);
    for (e = env_list; e != NULL; e = e->next)
        if (e->dev == sb.st_dev && e->ino == sb.st_ino)
            break;
    if (e != NULL) {
        e->refs++;
        pthread_mutex_unlock(&env_lock);
        *out = e;
        return 0;
    }
    if ((e = calloc(1, sizeof(*e))) == NULL
        || (e->path = strdup(dir)) == NULL
        || (group != NULL && (e->group = strdup(group)) == NULL)) {
        if (e != NULL)
            free(e->path);
        free(e);
        pthread_mutex_unlock(&env_lock);
        return err_set(errbuf, errlen, ENOMEM, "store %s: out of memory",
                       dir);
    }
    e->dev = sb.st_dev;
    e->ino = sb.st_ino;
    e->map_size = map_size;
    e->rdonly = rdonly;
    e->refs = 1;
    pthread_mutex_init(&e->wlock, NULL);
    pthread_mutex_init(&e->block, NULL);
    pthread_mutex_init(&e->slock, NULL);
    if ((rc = env_open_lmdb(e, errbuf, errlen)) != 0) {
        pthread_mutex_unlock(&env_lock);
        free(e->path);
        free(e->group);
        free(e);
        return rc;
    }
    e->next = env_list;
    env_list = e;
    pthread_mutex_unlock(&env_lock);
    *out = e;
    return 0;
}

/* env_check - reopen the environment in a child after fork()
 *
 * Every entry point calls this (through the handle) before touching
 * LMDB.  The fork handler has already closed the inherited MDB_env; here
 * the child opens its own. */

int
env_check(struct env *e)
{
    int rc = 0;

    if (e->env != NULL && e->pid == env_pid())
        return 0;
    pthread_mutex_lock(&env_lock);
    if (e->env != NULL && e->pid != env_pid()) {
        /* No fork handler ran (a raw clone, or vfork semantics): close
         * the inherited copy now. */
        mdb_env_close(e->env);
        e->env = NULL;
    }
    if (e->env == NULL)
        rc = env_open_lmdb(e, NULL, 0);
    pthread_mutex_unlock(&env_lock);
    return rc;
}

/* env_chgrp_path - give a file made in the store to its group */

int
env_chgrp_path(const struct env *e, const char *path)
{
    return env_chgrp(path, e->group);
}

/* env_last_ref - is this the process's last handle on the store? */

int
env_last_ref(struct env *e)
{
    int last;

    pthread_mutex_lock(&env_lock);
    last = e->refs == 1;
    pthread_mutex_unlock(&env_lock);
    return last;
}

/* env_release - drop one reference; close with the last */

void
env_release(struct env *e)
{
    struct env **pp;

    pthread_mutex_lock(&env_lock);
    if (--e->refs > 0) {
        pthread_mutex_unlock(&env_lock);
        return;
    }
    for (pp = &env_list; *pp != NULL; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    pthread_mutex_unlock(&env_lock);
    if (e->env != NULL)
        mdb_env_close(e->env);
    pthread_mutex_destroy(&e->wlock);
    pthread_mutex_destroy(&e->block);
    pthread_mutex_destroy(&e->slock);
    batch_forget(e);
    free(e->path);
    free(e->group);
    free(e);
}
