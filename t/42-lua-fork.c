/* 42-lua-fork.c - a Lua state made before fork() keeps working in children
 *
 * The parent makes one Lua state, loads msys.audit into it and uses it
 * (so its store is open), then forks writers that go on using that same
 * state: each records connections from Lua and receptions through the C
 * calls of msys_audit.h, and opens and closes sessions.  A reader forked
 * from the same state queries the growing total meanwhile; it must never
 * go down or past the final total.  At the end the parent's state reads
 * exact totals.  Children report only through their exit status.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "basic.h"
#include "msys_audit.h"

#define WRITERS 4
#define EVENTS 2000

/* write_conf - a configuration file for a store in the test directory */

static void
write_conf(void)
{
    char path[1024];
    FILE *f;

    snprintf(path, sizeof(path), "%s/inbound_audit.conf", test_tmpdir());
    if ((f = fopen(path, "w")) == NULL)
        sysbail("%s", path);
    fprintf(f, "inbound_audit {\n  store = \"%s/store\"\n"
            "  map_size = \"64M\"\n  monitors = {\"60,10\", \"3600,24\"}\n"
            "  ipv4_prefixes = {32, 24, 16}\n  ipv6_prefixes = {64}\n}\n",
            test_tmpdir());
    if (fclose(f) != 0)
        sysbail("%s", path);
    setenv("INBOUND_AUDIT_CONF", path, 1);
}

/* run - run a chunk; returns 0 or -1 with the error in diag (parent) */

static int
run(lua_State *L, const char *code, int quiet)
{
    if (luaL_dostring(L, code) != LUA_OK) {
        if (!quiet)
            diag("lua: %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    lua_settop(L, 0);
    return 0;
}

/* number - the integer value of a Lua expression, or -1 */

static long long
number(lua_State *L, const char *expr, int quiet)
{
    char code[512];
    long long n;

    snprintf(code, sizeof(code), "return %s", expr);
    if (luaL_dostring(L, code) != LUA_OK || !lua_isinteger(L, -1)) {
        if (!quiet)
            diag("lua: %s: %s", expr, lua_tostring(L, -1));
        lua_settop(L, 0);
        return -1;
    }
    n = (long long) lua_tointeger(L, -1);
    lua_settop(L, 0);
    return n;
}

/* writer - record EVENTS connections and receptions through the state */

static int
writer(lua_State *L, int id)
{
    char code[256], addr[32];
    int j;

    snprintf(addr, sizeof(addr), "192.0.2.%d", id + 1);
    if (ina_lua_set_peer(L, addr, NULL, 0) != 0)
        return 10;
    snprintf(code, sizeof(code),
             "for i = 1, %d do msys.audit.record('connection', "
             "'192.0.2.' .. (i %% 8 + 1)) end", EVENTS);
    if (run(L, code, 1) != 0)
        return 11;
    for (j = 0; j < EVENTS; j++)
        if (ina_lua_record(L, INA_RECEPTION, NULL, 1, NULL, 0) != 0)
            return 12;
    for (j = 0; j < 10; j++)
        if (ina_lua_session_open(L, NULL, NULL, NULL, 0) != 0)
            return 13;
    if (run(L, "for i = 1, 10 do msys.audit.session_close() end", 1) != 0)
        return 14;
    lua_close(L);
    return 0;
}

/* reader - query the total until it is complete */

static int
reader(lua_State *L)
{
    long long n, last = 0, total = (long long) WRITERS * EVENTS + 1;

    alarm(120);
    for (;;) {
        n = number(L, "msys.audit.connections('3600,24', "
                   "{cidr = '192.0.2.0/24', endv = 1})", 1);
        if (n < 0)
            return 20;
        if (n < last || n > total)
            return 21;
        if (n == total)
            return 0;
        last = n;
        usleep(1000);
    }
}

int
main(void)
{
    pid_t pids[WRITERS], rpid;
    lua_State *L;
    int i, status;

    plan_lazy();
    write_conf();
    if ((L = luaL_newstate()) == NULL)
        bail("luaL_newstate");
    luaL_openlibs(L);
    luaL_requiref(L, "msys.audit", luaopen_msys_audit, 0);
    lua_pop(L, 1);

    /* Use the state before fork(), so its store is open. */
    is_int(0, run(L, "msys.audit.record('connection', '192.0.2.200')", 0),
           "a connection is recorded before fork");
    is_int(1, number(L, "msys.audit.connections('3600,24', "
                     "{cidr = '192.0.2.0/24', endv = 1})", 0),
           "1 connection is read before fork");
    is_int(0, ina_lua_set_peer(L, "192.0.2.200", NULL, 0),
           "the parent's peer is set");
    /* The children see the store, not the parent's buffered events:
     * apply them before fork(). */
    is_int(0, run(L, "msys.audit.flush()", 0),
           "the parent flushes its buffered connection before fork");

    fflush(stdout);
    if ((rpid = fork()) < 0)
        sysbail("fork");
    if (rpid == 0)
        _exit(reader(L));
    for (i = 0; i < WRITERS; i++) {
        if ((pids[i] = fork()) < 0)
            sysbail("fork");
        if (pids[i] == 0)
            _exit(writer(L, i));
    }
    for (i = 0; i < WRITERS; i++) {
        if (waitpid(pids[i], &status, 0) < 0)
            sysbail("waitpid");
        ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "writer %d recorded through the inherited state (status %d)", i,
           WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
    }
    if (waitpid(rpid, &status, 0) < 0)
        sysbail("waitpid");
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "the reader saw the total grow to %d and never past it (status %d)",
       WRITERS * EVENTS + 1,
       WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));

    /* Exact totals, read by the parent's own state after the children. */
    is_int(WRITERS * EVENTS + 1,
           number(L, "msys.audit.connections('3600,24', "
                  "{cidr = '192.0.2.0/24', endv = 1})", 0),
           "every connection is counted once");
    is_int(WRITERS * EVENTS / 8 + 1,
           number(L, "msys.audit.connections('3600,24', "
                  "{cidr = '192.0.2.200/29', endv = 1}) + "
                  "msys.audit.connections('3600,24', "
                  "{cidr = '192.0.2.1', endv = 1})", 0),
           "and each host's share is exact");
    for (i = 0; i < WRITERS; i++) {
        char expr[160];

        snprintf(expr, sizeof(expr), "msys.audit.receptions('3600,24', "
                 "{cidr = '192.0.2.%d', endv = 1})", i + 1);
        is_int(EVENTS, number(L, expr, 0),
               "%d receptions from writer %d's peer", EVENTS, i);
    }
    is_int(0, number(L, "msys.audit.inbound_session_count('192.0.2.0/24')",
                     0), "every session the writers opened is closed");
    is_int(0, number(L, "msys.audit.receptions('3600,24')", 0),
           "the parent's peer is still its own (0 receptions)");
    lua_close(L);
    return 0;
}
