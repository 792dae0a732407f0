/* fuzz-lua-options.c - libFuzzer target: msys.audit's argument handling
 *
 * One Lua 5.4 state with msys.audit loaded (lua/audit.c is linked in, as
 * the policy host does) serves every input.  Its configuration is a file
 * in a private temporary directory, named by INBOUND_AUDIT_CONF, whose
 * store lies in the same directory; a few connections and sessions are
 * recorded in it at start so that queries have something to sum.
 *
 * Each input is a small program read byte by byte (missing bytes read as
 * zero): the first byte picks the function (connections, receptions,
 * rejections, inbound_session_count) and the current connection (none,
 * an IPv4 peer, an IPv6 peer, or a string from the input given to
 * set_peer); the second, how many arguments follow (0 to 3); then each
 * argument is a Lua value decoded from the input: nil, a string of raw
 * bytes, an integer, a float, a boolean, a table of decoded keys and
 * values, a string from a list of meaningful ones (monitors, cidrs,
 * option names, service names), a boundary integer, or an options table
 * with the four real option names.  The call is made with lua_pcall().
 *
 * Any Lua error is a fine answer, as long as it is a string.  A success
 * must return one non-negative integer.  A crash, an ASan or UBSan report
 * or a leak is a failure, and so is an error value that is not a string.
 * With FUZZ_DEBUG set in the environment, each call and its result or
 * error are printed, which shows what a seed does.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "inaudit.h"
#include "msys_audit.h"
#include "fuzz.h"

/* Deepest nesting of decoded tables, and most pairs in one. */
#define FUZZ_DEPTH_MAX 2
#define FUZZ_PAIRS_MAX 6

/* The Lua state, the module table's registry reference, and the private
 * directory that holds the configuration and the store. */
static lua_State *fuzz_L;
static int fuzz_module = LUA_NOREF;
static char fuzz_dir[1024];
/* FUZZ_DEBUG set: print each call's result or error (to read seeds). */
static int fuzz_debug;

/* The functions under test, by the first byte of the input. */
static const char *const fuzz_funcs[] = {
    "connections", "receptions", "rejections", "inbound_session_count",
};

/* Strings that mean something to msys.audit. */
static const char *const fuzz_strings[] = {
    "60,10", "300,12", "3600,24", "60, 10", " 300 , 12 ", "60,11", "0,1",
    "60", "", "192.0.2.1", "192.0.2.0/24", "192.0.0.0/16", "192.0.2.1/32",
    "192.0.2.0/25", "10.0.0.0/8", "0.0.0.0/0", "/24", "/16", "/0", "/32",
    "/33", "/64", "/128", "/129", "2001:db8::1", "2001:db8::/48",
    "2001:db8::/64", "[2001:db8::1]/128", "::ffff:192.0.2.1", "::",
    "startv", "endv", "cidr", "cluster", "SMTP", "IMAP", "inbound_cidr",
    "connection", "x",
};

/* Integers at the edges of what the options accept. */
static const lua_Integer fuzz_ints[] = {
    0, 1, 2, 10, 11, 12, 13, 24, 25, -1, (lua_Integer) UINT32_MAX,
    (lua_Integer) UINT32_MAX + 1, LUA_MAXINTEGER, LUA_MININTEGER,
    (lua_Integer) 1 << 53, 100000,
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* The input being read. */
struct reader {
    const uint8_t *p;
    size_t n;
};

/* rd_byte - the next byte of the input, or 0 at its end */

static unsigned
rd_byte(struct reader *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

/* rd_u64 - the next 8 bytes, little-endian */

static uint64_t
rd_u64(struct reader *r)
{
    uint64_t v = 0;
    unsigned i;

    for (i = 0; i < 8; i++)
        v |= (uint64_t) rd_byte(r) << (8 * i);
    return v;
}

/* rd_push_string - push a string of the next len bytes (fewer at the end) */

static void
rd_push_string(lua_State *L, struct reader *r, size_t len)
{
    if (len > r->n)
        len = r->n;
    lua_pushlstring(L, (const char *) r->p, len);
    r->p += len;
    r->n -= len;
}

static void push_value(lua_State *L, struct reader *r, int depth);

/* push_pairs - set n decoded key/value pairs into the table on top
 *
 * A nil or NaN key cannot index a table; such a pair is dropped.
 * lua_rawset calls no metamethod and raises only for want of memory. */

static void
push_pairs(lua_State *L, struct reader *r, int depth, unsigned n,
           int named)
{
    static const char *const names[] = {"startv", "endv", "cidr",
                                        "cluster"};
    unsigned i;

    for (i = 0; i < n; i++) {
        if (named)
            lua_pushstring(L, names[rd_byte(r) % NELEM(names)]);
        else
            push_value(L, r, depth + 1);
        push_value(L, r, depth + 1);
        if (lua_isnil(L, -2)
            || (lua_type(L, -2) == LUA_TNUMBER && !lua_isinteger(L, -2)
                && isnan(lua_tonumber(L, -2)))) {
            lua_pop(L, 2);
            continue;
        }
        lua_rawset(L, -3);
    }
}

/* push_value - push one Lua value decoded from the input */

static void
push_value(lua_State *L, struct reader *r, int depth)
{
    uint64_t u;
    double d;
    unsigned tag = rd_byte(r) % 9;

    if (!lua_checkstack(L, 8))
        abort();
    if (depth >= FUZZ_DEPTH_MAX && (tag == 5 || tag == 8))
        tag = 0;
    switch (tag) {
    case 0:
        lua_pushnil(L);
        break;
    case 1:
        rd_push_string(L, r, rd_byte(r) % 80);
        break;
    case 2:
        lua_pushinteger(L, (lua_Integer) rd_u64(r));
        break;
    case 3:
        u = rd_u64(r);
        memcpy(&d, &u, sizeof d);
        lua_pushnumber(L, d);
        break;
    case 4:
        lua_pushboolean(L, rd_byte(r) & 1);
        break;
    case 5:
        lua_newtable(L);
        push_pairs(L, r, depth, rd_byte(r) % (FUZZ_PAIRS_MAX + 1), 0);
        break;
    case 6:
        lua_pushstring(L, fuzz_strings[rd_byte(r) % NELEM(fuzz_strings)]);
        break;
    case 7:
        lua_pushinteger(L, fuzz_ints[rd_byte(r) % NELEM(fuzz_ints)]);
        break;
    default:
        lua_newtable(L);
        push_pairs(L, r, depth, 1 + rd_byte(r) % 4, 1);
        break;
    }
}

/* fuzz_rm - nftw callback: remove one entry, children first */

static int
fuzz_rm(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void) sb;
    (void) ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* fuzz_cleanup - close the state (and the store), remove the directory */

static void
fuzz_cleanup(void)
{
    if (fuzz_L != NULL)
        lua_close(fuzz_L);
    fuzz_L = NULL;
    if (fuzz_dir[0] != '\0')
        nftw(fuzz_dir, fuzz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* fuzz_setup_fail - report a failure to set the target up, and abort */

static void __attribute__((__noreturn__))
fuzz_setup_fail(const char *what, const char *why)
{
    fprintf(stderr, "fuzz-lua-options: %s: %s\n", what, why);
    abort();
}

/* LLVMFuzzerInitialize - configuration, store, Lua state, some counts */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const addrs[] = {
        "192.0.2.1", "192.0.2.77", "192.0.3.9", "10.1.2.3", "2001:db8::1",
        "2001:db8:0:1::5",
    };
    char path[1200];
    char errbuf[512];
    const char *tmp = getenv("TMPDIR");
    FILE *f;
    size_t i;

    (void) argc;
    (void) argv;
    fuzz_debug = getenv("FUZZ_DEBUG") != NULL;
    if (tmp == NULL || *tmp != '/')
        tmp = "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/fuzz-lua.XXXXXX", tmp);
    if (mkdtemp(fuzz_dir) == NULL)
        fuzz_setup_fail("mkdtemp", strerror(errno));
    atexit(fuzz_cleanup);
    snprintf(path, sizeof path, "%s/inbound_audit.conf", fuzz_dir);
    if ((f = fopen(path, "w")) == NULL)
        fuzz_setup_fail(path, strerror(errno));
    fprintf(f, "inbound_audit {\n"
            "    store = \"%s/store\"\n"
            "    map_size = \"64M\"\n"
            "    monitors = {\"60,10\", \"300,12\", \"3600,24\"}\n"
            "    ipv4_prefixes = {32, 24, 16}\n"
            "    ipv6_prefixes = {128, 64, 48}\n"
            "}\n", fuzz_dir);
    if (fclose(f) != 0)
        fuzz_setup_fail(path, strerror(errno));
    if (setenv("INBOUND_AUDIT_CONF", path, 1) != 0)
        fuzz_setup_fail("setenv", strerror(errno));

    if ((fuzz_L = luaL_newstate()) == NULL)
        fuzz_setup_fail("luaL_newstate", "out of memory");
    luaL_requiref(fuzz_L, "msys.audit", luaopen_msys_audit, 0);
    fuzz_module = luaL_ref(fuzz_L, LUA_REGISTRYINDEX);

    for (i = 0; i < NELEM(addrs); i++) {
        if (ina_lua_record(fuzz_L, INA_CONNECTION, addrs[i], i + 1, errbuf,
                           sizeof errbuf) != 0
            || ina_lua_record(fuzz_L, INA_REJECTION, addrs[i], 2 * i, errbuf,
                              sizeof errbuf) != 0
            || ina_lua_session_open(fuzz_L, addrs[i], i % 2 ? "IMAP" : NULL,
                                    errbuf, sizeof errbuf) != 0)
            fuzz_setup_fail(addrs[i], errbuf);
    }
    return 0;
}

/* fuzz_call - call msys.audit.<name> with the nargs values on the stack
 *
 * Returns lua_pcall()'s status; the result or error is left on top. */

static int
fuzz_call(lua_State *L, const char *name, int nargs)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_module);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    lua_insert(L, -(nargs + 1));
    return lua_pcall(L, nargs, 1, 0);
}

/* LLVMFuzzerTestOneInput - one call of msys.audit from the input */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_L;
    struct reader r = {data, size};
    const char *name;
    char errbuf[512];
    unsigned b0;
    int nargs;
    int top;
    int i;
    int rc;

    top = lua_gettop(L);
    b0 = rd_byte(&r);
    name = fuzz_funcs[b0 % NELEM(fuzz_funcs)];

    /* The current connection. */
    switch (b0 / NELEM(fuzz_funcs) % 4) {
    case 0:
        rc = ina_lua_set_peer(L, NULL, errbuf, sizeof errbuf);
        break;
    case 1:
        rc = ina_lua_set_peer(L, "192.0.2.77", errbuf, sizeof errbuf);
        break;
    case 2:
        rc = ina_lua_set_peer(L, "2001:db8::1", errbuf, sizeof errbuf);
        break;
    default:
        rd_push_string(L, &r, rd_byte(&r) % 64);
        rc = fuzz_call(L, "set_peer", 1);
        FUZZ_CHECK(rc == LUA_OK || lua_type(L, -1) == LUA_TSTRING, data,
                   size, "set_peer raised a %s", luaL_typename(L, -1));
        rc = 0;
        lua_settop(L, top);
        break;
    }
    FUZZ_CHECK(rc == 0, data, size, "setting the peer: %s", errbuf);

    nargs = (int) (rd_byte(&r) % 4);
    for (i = 0; i < nargs; i++)
        push_value(L, &r, 0);
    rc = fuzz_call(L, name, nargs);
    if (fuzz_debug) {
        fprintf(stderr, "msys.audit.%s(%d args): %s %s\n", name, nargs,
                rc == LUA_OK ? "returned" : "raised",
                luaL_tolstring(L, -1, NULL));
        lua_pop(L, 1);
    }
    if (rc == LUA_OK) {
        FUZZ_CHECK(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0, data,
                   size, "msys.audit.%s returned a %s", name,
                   luaL_typename(L, -1));
    } else {
        FUZZ_CHECK(rc == LUA_ERRRUN && lua_type(L, -1) == LUA_TSTRING, data,
                   size, "msys.audit.%s: status %d, error value a %s", name,
                   rc, luaL_typename(L, -1));
    }
    lua_settop(L, top);
    return 0;
}
