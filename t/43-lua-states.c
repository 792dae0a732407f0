/* 43-lua-states.c - several Lua states in one process, and the C calls
 *
 * Each Lua state that loads msys.audit has its own state (store handle,
 * current connection): two states on one store see each other's counts
 * but not each other's peer, a state on another store sees nothing of
 * the first, and closing one state leaves the others working.  The C
 * calls of msys_audit.h are checked here too: their codes and messages,
 * and the closed and not-loaded cases.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "basic.h"
#include "msys_audit.h"

/* write_conf - a configuration file for store NAME; returns its path */

static char *
write_conf(const char *name)
{
    static char paths[2][1024];
    static int next;
    char *path = paths[next++ % 2];
    FILE *f;

    snprintf(path, sizeof(paths[0]), "%s/%s.conf", test_tmpdir(), name);
    if ((f = fopen(path, "w")) == NULL)
        sysbail("%s", path);
    fprintf(f, "inbound_audit {\n  store = \"%s/%s\"\n"
            "  map_size = \"16M\"\n  monitors = {\"3600,24\"}\n"
            "  ipv4_prefixes = {32, 24}\n  ipv6_prefixes = {64}\n}\n",
            test_tmpdir(), name);
    if (fclose(f) != 0)
        sysbail("%s", path);
    return path;
}

/* new_state - a Lua state with msys.audit loaded */

static lua_State *
new_state(void)
{
    lua_State *L;

    if ((L = luaL_newstate()) == NULL)
        bail("luaL_newstate");
    luaL_openlibs(L);
    luaL_requiref(L, "msys.audit", luaopen_msys_audit, 0);
    lua_pop(L, 1);
    return L;
}

/* number - the integer value of a Lua expression, or -1 */

static long long
number(lua_State *L, const char *expr)
{
    char code[512];
    long long n;

    snprintf(code, sizeof(code), "return %s", expr);
    if (luaL_dostring(L, code) != LUA_OK || !lua_isinteger(L, -1)) {
        diag("lua: %s: %s", expr, lua_tostring(L, -1));
        lua_settop(L, 0);
        return -1;
    }
    n = (long long) lua_tointeger(L, -1);
    lua_settop(L, 0);
    return n;
}

/* error_of - the error a chunk raises ("" if none); static buffer */

static const char *
error_of(lua_State *L, const char *code)
{
    static char msg[512];

    msg[0] = '\0';
    if (luaL_dostring(L, code) != LUA_OK)
        snprintf(msg, sizeof(msg), "%s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return msg;
}

#define CONN "msys.audit.connections('3600,24')"

int
main(void)
{
    lua_State *a, *b, *c, *bare, *none;
    char *conf_one, *conf_two, err[512];
    int rc;

    plan_lazy();
    conf_one = write_conf("one");
    conf_two = write_conf("two");

    /* a and c share store one; b has store two.  The configuration is
     * looked up at each state's first call. */
    setenv("INBOUND_AUDIT_CONF", conf_one, 1);
    a = new_state();
    is_int(0, ina_lua_record(a, INA_CONNECTION, "192.0.2.1", 3, err,
                             sizeof(err)), "state a records 3 on store one");
    setenv("INBOUND_AUDIT_CONF", conf_two, 1);
    b = new_state();
    is_int(0, ina_lua_record(b, INA_CONNECTION, "192.0.2.1", 5, err,
                             sizeof(err)), "state b records 5 on store two");
    setenv("INBOUND_AUDIT_CONF", conf_one, 1);
    c = new_state();
    is_int(3, number(c, "msys.audit.connections('3600,24', '192.0.2.1')"),
           "state c, on store one, reads a's 3");
    is_int(5, number(b, "msys.audit.connections('3600,24', '192.0.2.1')"),
           "state b reads only its own store's 5");

    /* Each state has its own current connection. */
    is_int(0, ina_lua_set_peer(a, "192.0.2.1", err, sizeof(err)),
           "a's peer is 192.0.2.1");
    is_int(0, ina_lua_set_peer(c, "192.0.2.2", err, sizeof(err)),
           "c's peer is 192.0.2.2");
    is_int(3, number(a, CONN), "a reads 3 for its peer");
    is_int(0, number(c, CONN), "c reads 0 for its own peer");
    like(error_of(b, "return " CONN), "no cidr given and no current "
         "connection", "b has no peer at all");
    is_int(0, ina_lua_record(c, INA_CONNECTION, NULL, 2, err, sizeof(err)),
           "c records 2 for its peer through the C call");
    is_int(0, ina_lua_session_open(c, NULL, "ECStream", err, sizeof(err)),
           "c opens a session for its peer");
    is_int(5, number(a, "msys.audit.connections('3600,24', "
                     "'192.0.2.0/24')"), "a sees them: 5 in the /24");
    is_int(1, number(a, "msys.audit.inbound_session_count('192.0.2.2', "
                     "'ECStream')"), "and c's session");

    /* Closing one state leaves the others working. */
    lua_close(a);
    is_int(0, ina_lua_record(c, INA_CONNECTION, "192.0.2.2", 1, err,
                             sizeof(err)), "c records after a is closed");
    is_int(6, number(c, "msys.audit.connections('3600,24', "
                     "'192.0.2.0/24')"), "and reads 6");
    is_int(0, ina_lua_session_close(c, "192.0.2.2", "ECStream", err,
                                    sizeof(err)), "c closes its session");
    is_int(0, number(c, "msys.audit.inbound_session_count('192.0.2.2', "
                     "'ECStream')"), "and the gauge is back at 0");
    is_int(5, number(b, "msys.audit.connections('3600,24', '192.0.2.1')"),
           "b is untouched");

    /* The C calls' errors. */
    rc = ina_lua_set_peer(c, "192.0.2.300", err, sizeof(err));
    is_int(INA_EBADCIDR, rc, "set_peer of a bad address: INA_EBADCIDR");
    like(err, "bad cidr \"192.0.2.300\"", "and the message quotes it");
    rc = ina_lua_set_peer(c, "192.0.2.0/24", err, sizeof(err));
    is_int(INA_EBADCIDR, rc, "set_peer of a block: INA_EBADCIDR");
    like(err, "not an address", "and the message says so");
    is_int(0, ina_lua_set_peer(c, NULL, err, sizeof(err)),
           "set_peer(NULL) clears the peer");
    rc = ina_lua_record(c, INA_CONNECTION, NULL, 1, err, sizeof(err));
    is_int(INA_ENOADDR, rc, "record without address or peer: INA_ENOADDR");
    like(err, "no address given and no current connection",
         "and the message says so");
    rc = ina_lua_record(c, (enum ina_event) 7, "192.0.2.1", 1, err,
                        sizeof(err));
    is_int(INA_EBADEVENT, rc, "record of no event: INA_EBADEVENT");
    rc = ina_lua_session_open(c, "192.0.2.1", "", err, sizeof(err));
    is_int(INA_EBADSERVICE, rc, "an empty service: INA_EBADSERVICE");
    like(err, "bad service name", "and the message says so");
    is_int(0, ina_lua_record(c, INA_CONNECTION, "192.0.2.1", 0, NULL, 0),
           "a NULL errbuf is allowed");

    /* A state without msys.audit, and one without a configuration. */
    if ((bare = luaL_newstate()) == NULL)
        bail("luaL_newstate");
    rc = ina_lua_set_peer(bare, "192.0.2.1", err, sizeof(err));
    is_int(ENOENT, rc, "a state without the module: ENOENT");
    like(err, "msys.audit is not loaded in this Lua state",
         "and the message says so");
    lua_close(bare);
    setenv("INBOUND_AUDIT_CONF", "/nonexistent/inbound_audit.conf", 1);
    none = new_state();
    is_int(0, ina_lua_set_peer(none, "192.0.2.1", err, sizeof(err)),
           "set_peer needs no configuration");
    rc = ina_lua_record(none, INA_CONNECTION, NULL, 1, err, sizeof(err));
    is_int(INA_ECONF, rc, "record without a configuration: INA_ECONF");
    like(err, "the inbound_audit module is not configured: "
         "/nonexistent/inbound_audit.conf", "and the message says why");
    like(error_of(none, "return " CONN), "not configured",
         "the Lua call raises it");
    setenv("INBOUND_AUDIT_CONF", conf_two, 1);
    is_int(0, ina_lua_record(none, INA_CONNECTION, NULL, 1, err,
                             sizeof(err)),
           "once a configuration is there, the next call loads it");
    is_int(6, number(none, "msys.audit.connections('3600,24', "
                     "'192.0.2.1')"), "and reads store two: 6");

    /* __close and __gc close the state once and for all. */
    like(error_of(none, "local _, s = debug.getupvalue(msys.audit.record, 1) "
                  "error(tostring(s))"), "msys.audit.state (open)",
         "the state's __tostring says it is open");
    is_string("", error_of(none, "local _, s = debug.getupvalue("
                           "msys.audit.record, 1) "
                           "getmetatable(s).__close(s) "
                           "getmetatable(s).__gc(s)"),
              "__close then __gc: idempotent");
    like(error_of(none, "return " CONN), "the msys.audit state is closed",
         "a closed state raises");
    rc = ina_lua_record(none, INA_CONNECTION, "192.0.2.1", 1, err,
                        sizeof(err));
    is_int(EBADF, rc, "and the C calls return EBADF");
    like(err, "the msys.audit state is closed", "with a message");
    lua_close(none);
    lua_close(b);
    lua_close(c);
    return 0;
}
