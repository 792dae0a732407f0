/* memcheck-lua.c - lua5.4 for the sanitized test run: script mode only
 *
 * make sanitize (t/memcheck.sh) builds the module msys/audit.so with
 * -fsanitize=address,undefined.  clang leaves the sanitizer runtime out
 * of shared objects: an instrumented module finds it in the program that
 * loads it, which must carry it.  Debian's /usr/bin/lua5.4 does not, so
 * the module would not load there, and preloading the runtime into the
 * interpreter (LD_PRELOAD) would preload it into every program the Lua
 * tests start too (sh, mktemp, the instrumented tools, which carry their
 * own copy), with leak reports from programs that are not ours.
 *
 * So the sanitized run uses this program as lua5.4 instead: built with
 * the same sanitizer flags (so the runtime is in it, exported for the
 * module), linked with Debian's liblua5.4, it does what "lua5.4 [-e
 * STAT]... [script args...]" does: opens the standard libraries, makes
 * the global arg as lua.c does (arg[0] the script, the interpreter and
 * options before it at negative indices, the arguments after it), runs
 * each -e chunk, then the script with the arguments as "...", and on
 * error prints the program name and a traceback to stderr and exits 1.
 * The state is closed at the end, so LeakSanitizer sees whatever the
 * module leaks.  Nothing else of lua.c (other options, LUA_INIT, the
 * REPL) is used by the tests, and nothing else is here.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* host_traceback - message handler: the error and a traceback */

static int
host_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring")
            && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* host_args - make the global arg as lua.c does
 *
 * The script (argv[script]) is arg[0], what comes before it negative
 * indices, what comes after positive ones; with no script, the program
 * is arg[0]. */

static void
host_args(lua_State *L, int argc, char **argv, int script)
{
    int i;

    if (script == argc)
        script = 0;
    lua_createtable(L, argc - (script + 1), script + 1);
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

/* host_run - parse the options, run the -e chunks, then the script
 *
 * Runs in protected mode; any error propagates to main's lua_pcall. */

static int
host_run(lua_State *L)
{
    int argc = (int) lua_tointeger(L, 1);
    char **argv = (char **) lua_touserdata(L, 2);
    const char *chunk;
    int script;
    int i;

    /* Options: any number of "-e STAT" or "-eSTAT", then "--" or the
     * script ("-" is standard input). */
    for (script = 1; script < argc && argv[script][0] == '-'; script++) {
        if (strcmp(argv[script], "-") == 0)
            break;
        if (strcmp(argv[script], "--") == 0) {
            script++;
            break;
        }
        if (strncmp(argv[script], "-e", 2) != 0)
            return luaL_error(L, "unrecognized option '%s' (this lua5.4 "
                              "knows only -e)", argv[script]);
        if (argv[script][2] == '\0' && ++script == argc)
            return luaL_error(L, "'-e' needs an argument");
    }

    luaL_openlibs(L);
    host_args(L, argc, argv, script);
    for (i = 1; i < script; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        chunk = argv[i][2] != '\0' ? argv[i] + 2 : argv[++i];
        if (luaL_loadbuffer(L, chunk, strlen(chunk), "=(command line)")
            != LUA_OK)
            return lua_error(L);
        lua_call(L, 0, 0);
    }
    if (script == argc)
        return 0;
    if (luaL_loadfile(L, strcmp(argv[script], "-") == 0 ? NULL
                                                         : argv[script])
        != LUA_OK)
        return lua_error(L);
    luaL_checkstack(L, argc, "too many arguments to the script");
    for (i = script + 1; i < argc; i++)
        lua_pushstring(L, argv[i]);
    lua_call(L, argc - script - 1, 0);
    return 0;
}

/* main - lua5.4 [-e STAT]... [SCRIPT [ARG...]] */

int
main(int argc, char **argv)
{
    lua_State *L;
    int status;

    if (argc < 2) {
        fprintf(stderr, "usage: %s [-e STAT]... [SCRIPT [ARG...]] (this is "
                "the sanitized run's lua5.4: no REPL)\n", argv[0]);
        return 1;
    }
    if ((L = luaL_newstate()) == NULL) {
        fprintf(stderr, "%s: cannot create a Lua state\n", argv[0]);
        return 1;
    }
    lua_pushcfunction(L, host_traceback);
    lua_pushcfunction(L, host_run);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    status = lua_pcall(L, 2, 0, 1);
    if (status != LUA_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
        fflush(stderr);
    }
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
