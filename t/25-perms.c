/* 25-perms.c - the store directory's modes, group and trust checks
 *
 * A store is made 0750 with files 0660, in the configured group; a store
 * path that is a symbolic link, a world-writable directory or a
 * directory owned by another user is refused with a message that says
 * which and why.  The other-user case runs in a child that drops root
 * (skipped when the test does not run as root).
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap/basic.h"
#include "tap/inatest.h"

/* mode_gid - mode bits and group of a path, or -1 */

static int
mode_gid(const char *dir, const char *name, gid_t *gid)
{
    char path[4096];
    struct stat sb;

    snprintf(path, sizeof(path), "%s%s%s", dir, name ? "/" : "",
             name ? name : "");
    if (lstat(path, &sb) != 0)
        return -1;
    *gid = sb.st_gid;
    return (int) (sb.st_mode & 07777);
}

/* try_open - open a store, returning the code and the message */

static int
try_open(const struct ina_conf *conf, char *err, size_t len)
{
    struct ina_store *st;
    int rc = ina_store_open(conf, 0, &st, err, len);

    if (rc == 0)
        ina_store_close(st);
    return rc;
}

int
main(void)
{
    struct ina_conf *conf;
    struct ina_store *st;
    struct ina_cidr c;
    struct group *mail = getgrnam("mail");
    struct passwd *nobody = getpwnam("nobody");
    char err[512], path[4096], body[256];
    gid_t gid;
    int status;
    pid_t pid;
    DIR *d;
    struct dirent *de;

    plan_lazy();
    if (mail == NULL)
        skip_all("no group \"mail\" on this system");

    /* Modes and the group. */
    snprintf(body, sizeof(body), "group = \"mail\"\nflush_delay = 1000\n");
    conf = test_conf("grouped", body);
    st = test_open(conf);
    c = test_addr("192.0.2.1");
    is_int(0, ina_record(st, INA_CONNECTION, &c, 1),
           "a record (so a journal exists)");
    is_int(0750, mode_gid(conf->store, NULL, &gid), "store directory 0750");
    is_int((int) mail->gr_gid, (int) gid, "in group mail");
    is_int(0660, mode_gid(conf->store, "data.mdb", &gid), "data.mdb 0660");
    is_int((int) mail->gr_gid, (int) gid, "in group mail");
    is_int(0660, mode_gid(conf->store, "lock.mdb", &gid), "lock.mdb 0660");
    is_int((int) mail->gr_gid, (int) gid, "in group mail");
    if ((d = opendir(conf->store)) == NULL)
        sysbail("opendir");
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "journal.", 8) == 0)
            break;
    ok(de != NULL, "a journal file exists");
    if (de != NULL) {
        is_int(0660, mode_gid(conf->store, de->d_name, &gid),
               "the journal is 0660");
        is_int((int) mail->gr_gid, (int) gid, "in group mail");
    }
    closedir(d);
    ina_store_close(st);
    ina_conf_free(conf);

    /* A symbolic link as the store path. */
    conf = test_conf("link", NULL);
    snprintf(path, sizeof(path), "%s/elsewhere", test_tmpdir());
    if (mkdir(path, 0750) != 0 || symlink(path, conf->store) != 0)
        sysbail("symlink");
    is_int(INA_EUNSAFE, try_open(conf, err, sizeof(err)),
           "a store path that is a symbolic link is refused");
    like(err, "is a symbolic link", "...saying so");
    ina_conf_free(conf);

    /* A world-writable directory. */
    conf = test_conf("open", NULL);
    if (mkdir(conf->store, 0750) != 0 || chmod(conf->store, 0777) != 0)
        sysbail("mkdir");
    is_int(INA_EUNSAFE, try_open(conf, err, sizeof(err)),
           "a world-writable store directory is refused");
    like(err, "world-writable (mode 0777)", "...saying so, with the mode");
    ina_conf_free(conf);

    /* Owned by another user. */
    if (geteuid() != 0 || nobody == NULL) {
        skip("not root: cannot act as another user");
        skip("not root");
        skip("not root");
    } else {
        conf = test_conf("root-owned", NULL);
        st = test_open(conf);
        ina_store_close(st);
        /* Let the other user reach the directory at all. */
        chmod(test_tmpdir(), 0755);
        if ((pid = fork()) == 0) {
            if (setgroups(0, NULL) != 0 || setgid(nobody->pw_gid) != 0
                || setuid(nobody->pw_uid) != 0)
                _exit(90);
            /* A checkout under a private directory is out of reach. */
            if (access(conf->store, F_OK) != 0)
                _exit(77);
            _exit(try_open(conf, err, sizeof(err)) == INA_EUNSAFE
                  && strstr(err, "owned by uid 0") != NULL ? 0 : 1);
        }
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
            skip("the test directory is out of the other user's reach");
        else
            is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                   "another user is refused a store owned by root, with "
                   "the owner named");
        ina_conf_free(conf);

        /* Shared through the configured group. */
        conf = test_conf("shared", body);
        st = test_open(conf);
        ina_store_close(st);
        if ((pid = fork()) == 0) {
            gid_t groups[1] = {mail->gr_gid};

            if (setgroups(1, groups) != 0 || setgid(nobody->pw_gid) != 0
                || setuid(nobody->pw_uid) != 0)
                _exit(90);
            if (access(conf->store, F_OK) != 0)
                _exit(77);
            _exit(try_open(conf, err, sizeof(err)) == 0 ? 0 : 1);
        }
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
            skip("the test directory is out of the other user's reach");
        else
            is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                   "a member of the store's group may open it");
        if ((pid = fork()) == 0) {
            if (setgroups(0, NULL) != 0 || setgid(nobody->pw_gid) != 0
                || setuid(nobody->pw_uid) != 0)
                _exit(90);
            if (access(conf->store, F_OK) != 0)
                _exit(77);
            _exit(try_open(conf, err, sizeof(err)) == INA_EUNSAFE ? 0 : 1);
        }
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
            skip("the test directory is out of the other user's reach");
        else
            is_int(0, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                   "a user outside the group may not");
        ina_conf_free(conf);
    }
    return 0;
}
