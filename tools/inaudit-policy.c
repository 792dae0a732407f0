/* inaudit-policy.c - run Momentum-style policy scripts on SMTP sessions
 *
 * The policy host of inbound-audit: it loads Lua policy scripts written
 * for Momentum (msys.registerModule with validate_* hooks, msys.core,
 * vctx:set_code, vctx:disconnect, msys.audit), and drives their hooks
 * over a stream of SMTP sessions, read from a replay file (one step a
 * line: "PEER PHASE [ARG]") or generated.  As the sessions go it records
 * into the store what an MTA would: a connection and an open session at
 * connect, a reception for each accepted message, a rejection for each
 * refused connection or message, and the session's close.  It tells
 * msys.audit the current connection before each step, applies the reply
 * the hooks set, and prints one line per decision.  inaudit-policy(1) and
 * the README give the hooks, their arguments and the reply rules.
 *
 * msys.audit is linked in and preloaded, so scripts find it, msys.core
 * and msys.extended.* without any LUA_PATH or LUA_CPATH.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
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

/* Values of msys.core. */
#define VALIDATE_CONT 0
#define VALIDATE_DONE 1
#define VCTX_MESS 1
#define VCTX_CONN 2

#define VCTX_META "inaudit.vctx"
#define AC_META "inaudit.ac"
#define MSG_META "inaudit.message"
#define REPLY_TEXT_MAX 512
#define ERRLEN 512

/* The phases of a session, in the order SMTP has them. */
enum phase { PH_CONNECT, PH_EHLO, PH_MAILFROM, PH_RCPTTO, PH_DATA, PH_QUIT };

static const struct {
    const char *name;
    const char *hook; /* NULL: no hook (quit) */
    int arg;          /* the step takes an argument */
} phases[] = {
    {"connect", "validate_connect", 0},
    {"ehlo", "validate_ehlo", 1},
    {"mailfrom", "validate_mailfrom", 1},
    {"rcptto", "validate_rcptto", 1},
    {"data", "validate_data", 0},
    {"quit", NULL, 0},
};
#define NPHASES (sizeof(phases) / sizeof(phases[0]))

/* The validation context of a session, a userdata the hooks see; its
 * user value holds the connection and message context tables. */
struct vctx {
    int code;        /* reply code set by a hook, 0 if none */
    int disconnect;  /* a hook asked to drop the connection */
    char text[REPLY_TEXT_MAX];
};

/* The state of a transaction (MAIL FROM to DATA). */
enum txn { TXN_NONE, TXN_OPEN, TXN_REFUSED };

/* One SMTP session, keyed by its peer's address text. */
struct session {
    char peer[INA_CIDR_TEXT_MAX + 1];
    int dropped;       /* the policy ended it; skip its steps */
    enum txn txn;
    unsigned rcpts;    /* accepted recipients of the transaction */
    int vctx_ref;      /* registry references of its Lua objects */
    int ac_ref;
    int msg_ref;
    struct vctx *vctx;
};

/* The host: the Lua state, the input, the open sessions, counters. */
struct host {
    lua_State *L;
    int modules_ref;   /* array of {name = , mod = } in order */
    const char *source;
    unsigned long line;
    int quiet;
    int failed;        /* an input error stops the run */
    struct session *sess;
    size_t nsess, cap;
    unsigned long sessions, steps, accepted, rejected, disconnected;
    unsigned long errors;
};

static void usage(void) __attribute__((__noreturn__));

/* usage - the synopsis, on stderr, and exit 2 */

static void
usage(void)
{
    fprintf(stderr,
            "usage: inaudit-policy [-q] [-c CONF] -s SCRIPT [-s SCRIPT]...\n"
            "                      [-r REPLAY | -g N [-S SEED] [-d MSEC]]\n"
            "       inaudit-policy -V\n");
    exit(2);
}

/* ---------------------------------------------------------------------
 * The Lua environment of the scripts
 * ------------------------------------------------------------------- */

/* vctx_check - argument 1 as a validation context */

static struct vctx *
vctx_check(lua_State *L)
{
    return (struct vctx *) luaL_checkudata(L, 1, VCTX_META);
}

/* vctx_reply - store a reply code and text */

static void
vctx_reply(lua_State *L, struct vctx *v, int code, int text_arg,
           const char *dflt)
{
    const char *text = luaL_optstring(L, text_arg, dflt);

    v->code = code;
    snprintf(v->text, sizeof(v->text), "%s", text);
}

/* vctx_set_code - vctx:set_code(code, text): the reply to this step */

static int
vctx_set_code(lua_State *L)
{
    struct vctx *v = vctx_check(L);
    lua_Integer code = luaL_checkinteger(L, 2);

    luaL_argcheck(L, code >= 200 && code <= 599, 2,
                  "an SMTP reply code is 200 to 599");
    vctx_reply(L, v, (int) code, 3, "");
    return 0;
}

/* vctx_disconnect - vctx:disconnect(code, text): reply and hang up */

static int
vctx_disconnect(lua_State *L)
{
    struct vctx *v = vctx_check(L);
    lua_Integer code = luaL_optinteger(L, 2, 421);

    luaL_argcheck(L, code >= 400 && code <= 599, 2,
                  "a disconnect code is 400 to 599");
    vctx_reply(L, v, (int) code, 3, "4.7.0 connection closed by policy");
    v->disconnect = 1;
    return 0;
}

/* vctx_scope - push the context table of scope argument 2 */

static void
vctx_scope(lua_State *L)
{
    lua_Integer scope = luaL_checkinteger(L, 2);

    luaL_argcheck(L, scope == VCTX_MESS || scope == VCTX_CONN, 2,
                  "msys.core.VCTX_MESS or msys.core.VCTX_CONN expected");
    lua_getiuservalue(L, 1, 1);
    lua_rawgeti(L, -1, scope);
}

/* vctx_get - vctx:get(scope, key): a context value, or nil */

static int
vctx_get(lua_State *L)
{
    vctx_check(L);
    luaL_checkstring(L, 3);
    vctx_scope(L);
    lua_pushvalue(L, 3);
    lua_rawget(L, -2);
    return 1;
}

/* vctx_set - vctx:set(scope, key, value): set (string) or delete (nil) */

static int
vctx_set(lua_State *L)
{
    vctx_check(L);
    luaL_checkstring(L, 3);
    if (!lua_isnoneornil(L, 4))
        luaL_checkstring(L, 4);
    vctx_scope(L);
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 4);
    lua_rawset(L, -3);
    return 0;
}

/* ac_inbound_session_count - ac:inbound_session_count([cidr[, svc]]) */

static int
ac_inbound_session_count(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 3);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "msys.audit");
    lua_getfield(L, -1, "inbound_session_count");
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 1);
    return 1;
}

/* msg_mailfrom - msg:mailfrom(): the envelope sender */

static int
msg_mailfrom(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "_mailfrom");
    return 1;
}

/* msg_rcptto - msg:rcptto(): the recipient of this step */

static int
msg_rcptto(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "_rcptto");
    return 1;
}

/* core_register - msys.registerModule(name, mod)
 *
 * Modules run in the order they were registered; registering a name
 * again replaces that module in its place. */

static int
core_register(lua_State *L)
{
    lua_Integer i, n;

    luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushvalue(L, lua_upvalueindex(1));
    n = luaL_len(L, -1);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 3, i);
        lua_getfield(L, -1, "name");
        if (lua_rawequal(L, -1, 1)) {
            lua_pop(L, 1);
            lua_pushvalue(L, 2);
            lua_setfield(L, -2, "mod");
            return 0;
        }
        lua_pop(L, 2);
    }
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "name");
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "mod");
    lua_rawseti(L, 3, n + 1);
    return 0;
}

/* open_core - the loader of msys.core */

static int
open_core(lua_State *L)
{
    lua_getglobal(L, "msys");
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, VALIDATE_CONT);
    lua_setfield(L, -2, "VALIDATE_CONT");
    lua_pushinteger(L, VALIDATE_DONE);
    lua_setfield(L, -2, "VALIDATE_DONE");
    lua_pushinteger(L, VCTX_MESS);
    lua_setfield(L, -2, "VCTX_MESS");
    lua_pushinteger(L, VCTX_CONN);
    lua_setfield(L, -2, "VCTX_CONN");
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "core");
    return 1;
}

/* open_extended - the loader of msys.extended.message, .vctx and .ac
 *
 * Their methods are already on the objects the hooks receive; requiring
 * them makes msys.extended.<name> exist, as in Momentum. */

static int
open_extended(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *dot = strrchr(name, '.');

    lua_getglobal(L, "msys");
    luaL_getsubtable(L, -1, "extended");
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, dot != NULL ? dot + 1 : name);
    return 1;
}

/* host_meta - register a metatable whose __index is a method table */

static void
host_meta(lua_State *L, const char *name, const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

/* traceback - message handler: the error with a traceback */

static int
traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* host_lua - make the Lua state of the scripts */

static void
host_lua(struct host *h)
{
    static const luaL_Reg vctx_methods[] = {
        {"set_code", vctx_set_code},
        {"disconnect", vctx_disconnect},
        {"get", vctx_get},
        {"set", vctx_set},
        {NULL, NULL}
    };
    static const luaL_Reg ac_methods[] = {
        {"inbound_session_count", ac_inbound_session_count},
        {NULL, NULL}
    };
    static const luaL_Reg msg_methods[] = {
        {"mailfrom", msg_mailfrom},
        {"rcptto", msg_rcptto},
        {NULL, NULL}
    };
    static const char *const extended[] = {
        "msys.extended.message", "msys.extended.vctx", "msys.extended.ac"
    };
    lua_State *L;
    size_t i;

    if ((L = luaL_newstate()) == NULL)
        errx(1, "cannot make a Lua state: out of memory");
    h->L = L;
    luaL_openlibs(L);
    host_meta(L, VCTX_META, vctx_methods);
    host_meta(L, AC_META, ac_methods);
    host_meta(L, MSG_META, msg_methods);

    /* The global msys, with registerModule closing over the list. */
    lua_newtable(L);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    h->modules_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcclosure(L, core_register, 1);
    lua_setfield(L, -2, "registerModule");
    lua_setglobal(L, "msys");

    /* Preloads: require finds these without any search path. */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, open_core);
    lua_setfield(L, -2, "msys.core");
    for (i = 0; i < sizeof(extended) / sizeof(extended[0]); i++) {
        lua_pushcfunction(L, open_extended);
        lua_setfield(L, -2, extended[i]);
    }
    lua_pushcfunction(L, luaopen_msys_audit);
    lua_setfield(L, -2, "msys.audit");
    lua_pop(L, 1);

    /* msys.audit is loaded now, so the host can set peers and record
     * before any script requires it. */
    luaL_requiref(L, "msys.audit", luaopen_msys_audit, 0);
    lua_pop(L, 1);
}

/* host_load - run a policy script */

static void
host_load(struct host *h, const char *path)
{
    lua_State *L = h->L;

    lua_pushcfunction(L, traceback);
    if (luaL_loadfile(L, path) != LUA_OK || lua_pcall(L, 0, 0, -2) != LUA_OK)
        errx(1, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------------
 * Sessions and steps
 * ------------------------------------------------------------------- */

/* host_error - report an input error at the current line; stops */

static void __attribute__((__format__(__printf__, 2, 3)))
host_error(struct host *h, const char *fmt, ...)
{
    char msg[ERRLEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    warnx("%s:%lu: %s", h->source, h->line, msg);
    h->failed = 1;
}

/* host_store_error - report a store error; the run goes on */

static void
host_store_error(struct host *h, const char *what, const char *msg)
{
    warnx("%s:%lu: %s: %s", h->source, h->line, what, msg);
    h->errors++;
}

/* host_find - the session of a peer, or NULL */

static struct session *
host_find(struct host *h, const char *peer)
{
    size_t i;

    for (i = 0; i < h->nsess; i++)
        if (strcmp(h->sess[i].peer, peer) == 0)
            return &h->sess[i];
    return NULL;
}

/* host_new_session - a session for peer, with its Lua objects */

static struct session *
host_new_session(struct host *h, const char *peer)
{
    lua_State *L = h->L;
    struct session *s;

    if (h->nsess == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        struct session *n = realloc(h->sess, cap * sizeof(*n));

        if (n == NULL)
            err(1, "realloc");
        h->sess = n;
        h->cap = cap;
    }
    s = &h->sess[h->nsess++];
    memset(s, 0, sizeof(*s));
    snprintf(s->peer, sizeof(s->peer), "%s", peer);

    s->vctx = lua_newuserdatauv(L, sizeof(struct vctx), 1);
    memset(s->vctx, 0, sizeof(struct vctx));
    luaL_setmetatable(L, VCTX_META);
    lua_createtable(L, 2, 0);
    lua_newtable(L);
    lua_rawseti(L, -2, VCTX_MESS);
    lua_newtable(L);
    lua_rawseti(L, -2, VCTX_CONN);
    lua_setiuservalue(L, -2, 1);
    s->vctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_createtable(L, 0, 1);
    lua_pushstring(L, peer);
    lua_setfield(L, -2, "remote_ip");
    luaL_setmetatable(L, AC_META);
    s->ac_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->msg_ref = LUA_NOREF;
    h->sessions++;
    return s;
}

/* host_end_session - close a session's gauge (unless dropped already) */

static void
host_end_session(struct host *h, struct session *s)
{
    char err[ERRLEN];

    if (!s->dropped
        && ina_lua_session_close(h->L, s->peer, NULL, err, sizeof(err)) != 0)
        host_store_error(h, "session close", err);
}

/* host_forget - remove a session and its Lua objects */

static void
host_forget(struct host *h, struct session *s)
{
    luaL_unref(h->L, LUA_REGISTRYINDEX, s->vctx_ref);
    luaL_unref(h->L, LUA_REGISTRYINDEX, s->ac_ref);
    luaL_unref(h->L, LUA_REGISTRYINDEX, s->msg_ref);
    *s = h->sess[--h->nsess];
}

/* host_record - record an event for the session's peer */

static void
host_record(struct host *h, struct session *s, enum ina_event ev)
{
    char err[ERRLEN];

    if (ina_lua_record(h->L, ev, s->peer, 1, err, sizeof(err)) != 0)
        host_store_error(h, "record", err);
}

/* host_new_message - a fresh message for a transaction */

static void
host_new_message(struct host *h, struct session *s, const char *mailfrom)
{
    lua_State *L = h->L;

    luaL_unref(L, LUA_REGISTRYINDEX, s->msg_ref);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, mailfrom);
    lua_setfield(L, -2, "_mailfrom");
    luaL_setmetatable(L, MSG_META);
    s->msg_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    /* The message context starts empty with each transaction. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->vctx_ref);
    lua_getiuservalue(L, -1, 1);
    lua_newtable(L);
    lua_rawseti(L, -2, VCTX_MESS);
    lua_pop(L, 2);
}

/* host_hooks - run every module's hook of a phase
 *
 * Hooks are called as methods, mod:hook(args..., ac, vctx), in the
 * order the modules were registered, until one returns VALIDATE_DONE or
 * asks to disconnect.  A hook that raises ends the phase with 451. */

static void
host_hooks(struct host *h, struct session *s, enum phase ph, const char *arg)
{
    lua_State *L = h->L;
    lua_Integer i, n;
    int base, nargs, rc, done = 0;

    memset(s->vctx, 0, sizeof(*s->vctx));
    lua_pushcfunction(L, traceback);
    base = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->modules_ref);
    n = luaL_len(L, -1);
    for (i = 1; i <= n && !done; i++) {
        lua_rawgeti(L, base + 1, i);
        lua_getfield(L, -1, "mod");
        if (lua_getfield(L, -1, phases[ph].hook) != LUA_TFUNCTION) {
            lua_settop(L, base + 1);
            continue;
        }
        lua_pushvalue(L, -2); /* self */
        nargs = 1;
        if (ph == PH_RCPTTO || ph == PH_DATA) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, s->msg_ref);
            nargs++;
        }
        if (phases[ph].arg) {
            lua_pushstring(L, arg);
            nargs++;
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->ac_ref);
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->vctx_ref);
        nargs += 2;
        rc = lua_pcall(L, nargs, 1, base);
        if (rc != LUA_OK) {
            warnx("%s:%lu: %s %s: %s", h->source, h->line, s->peer,
                  phases[ph].name, lua_tostring(L, -1));
            h->errors++;
            s->vctx->code = 451;
            s->vctx->disconnect = 0;
            snprintf(s->vctx->text, sizeof(s->vctx->text),
                     "4.3.0 policy error");
            done = 1;
        } else if (lua_isinteger(L, -1)
                   && lua_tointeger(L, -1) == VALIDATE_DONE) {
            done = 1;
        }
        if (s->vctx->disconnect)
            done = 1;
        lua_settop(L, base + 1);
    }
    lua_settop(L, base - 1);
}

/* host_print - one decision line
 *
 * "PEER PHASE VERDICT [CODE "TEXT"]": the verdict is accept, reject or
 * disconnect; the code and text are those of the reply, if one was set.
 * The text is quoted, with '"', '\' and control characters escaped. */

static void
host_print(struct host *h, const char *peer, enum phase ph,
           const char *verdict, int code, const char *text)
{
    const unsigned char *p;

    if (h->quiet)
        return;
    printf("%s %s %s", peer, phases[ph].name, verdict);
    if (code != 0) {
        printf(" %d \"", code);
        for (p = (const unsigned char *) text; *p != '\0'; p++) {
            if (*p == '"' || *p == '\\')
                printf("\\%c", *p);
            else if (*p < 0x20 || *p == 0x7f)
                printf("\\x%02x", *p);
            else
                putchar(*p);
        }
        putchar('"');
    }
    putchar('\n');
}

/* host_decide - print a hook phase's decision and count it
 *
 * Returns 1 if the step was refused (a 4xx/5xx reply or a disconnect).
 * A disconnect also ends the session. */

static int
host_decide(struct host *h, struct session *s, enum phase ph)
{
    struct vctx *v = s->vctx;
    const char *verdict = "accept";
    int refused = v->disconnect || v->code >= 400;

    if (v->disconnect)
        verdict = "disconnect";
    else if (refused)
        verdict = "reject";
    host_print(h, s->peer, ph, verdict, v->code, v->text);
    if (v->disconnect)
        h->disconnected++;
    else if (refused)
        h->rejected++;
    else
        h->accepted++;
    return refused;
}

/* host_drop - the policy ended the session: close it now */

static void
host_drop(struct host *h, struct session *s)
{
    host_end_session(h, s);
    s->dropped = 1;
    s->txn = TXN_NONE;
}

/* host_refuse_step - a reply the host itself gives (bad sequence) */

static void
host_refuse_step(struct host *h, struct session *s, enum phase ph, int code,
                 const char *text)
{
    host_print(h, s->peer, ph, "reject", code, text);
    h->rejected++;
}

/* host_connect - a new session */

static void
host_connect(struct host *h, const char *peer)
{
    struct session *s = host_find(h, peer);
    char err[ERRLEN];

    if (s != NULL && !s->dropped) {
        host_error(h, "%s already has an open session (quit it first)",
                   peer);
        return;
    }
    if (s != NULL)
        host_forget(h, s);
    s = host_new_session(h, peer);
    host_record(h, s, INA_CONNECTION);
    if (ina_lua_session_open(h->L, peer, NULL, err, sizeof(err)) != 0)
        host_store_error(h, "session open", err);
    host_hooks(h, s, PH_CONNECT, NULL);
    if (host_decide(h, s, PH_CONNECT)) {
        /* A refused greeting ends the session: nothing more is taken. */
        host_record(h, s, INA_REJECTION);
        host_drop(h, s);
    }
}

/* host_step - one step of a session */

static void
host_step(struct host *h, const char *peer, enum phase ph, const char *arg)
{
    struct session *s;
    char err[ERRLEN];

    h->steps++;
    if (ina_lua_set_peer(h->L, peer, err, sizeof(err)) != 0) {
        host_error(h, "bad peer: %s", err);
        return;
    }
    if (ph == PH_CONNECT) {
        host_connect(h, peer);
        return;
    }
    if ((s = host_find(h, peer)) == NULL) {
        host_error(h, "%s has no open session (connect first)", peer);
        return;
    }
    if (ph == PH_QUIT) {
        host_end_session(h, s);
        host_forget(h, s);
        return;
    }
    if (s->dropped)
        return; /* the policy hung up: the client's next steps go nowhere */

    switch (ph) {
    case PH_EHLO:
        host_hooks(h, s, ph, arg);
        if (host_decide(h, s, ph) && s->vctx->disconnect) {
            host_record(h, s, INA_REJECTION);
            host_drop(h, s);
        }
        break;
    case PH_MAILFROM:
        host_new_message(h, s, arg);
        s->txn = TXN_OPEN;
        s->rcpts = 0;
        host_hooks(h, s, ph, arg);
        if (host_decide(h, s, ph)) {
            host_record(h, s, INA_REJECTION);
            s->txn = TXN_REFUSED;
            if (s->vctx->disconnect)
                host_drop(h, s);
        }
        break;
    case PH_RCPTTO:
        if (s->txn != TXN_OPEN) {
            host_refuse_step(h, s, ph, 503, "5.5.1 need MAIL command");
            break;
        }
        lua_rawgeti(h->L, LUA_REGISTRYINDEX, s->msg_ref);
        lua_pushstring(h->L, arg);
        lua_setfield(h->L, -2, "_rcptto");
        lua_pop(h->L, 1);
        host_hooks(h, s, ph, arg);
        if (!host_decide(h, s, ph)) {
            s->rcpts++;
        } else if (s->vctx->disconnect) {
            host_record(h, s, INA_REJECTION);
            host_drop(h, s);
        }
        break;
    case PH_DATA:
        if (s->txn != TXN_OPEN) {
            host_refuse_step(h, s, ph, 503, "5.5.1 need MAIL command");
            break;
        }
        s->txn = TXN_NONE;
        if (s->rcpts == 0) {
            host_refuse_step(h, s, ph, 554, "5.5.1 no valid recipients");
            host_record(h, s, INA_REJECTION);
            break;
        }
        host_hooks(h, s, ph, NULL);
        if (host_decide(h, s, ph)) {
            host_record(h, s, INA_REJECTION);
            if (s->vctx->disconnect)
                host_drop(h, s);
        } else {
            host_record(h, s, INA_RECEPTION);
        }
        break;
    default:
        break;
    }
}

/* host_line - parse and run one line "PEER PHASE [ARG]" */

static void
host_line(struct host *h, char *line)
{
    char *peer, *phase, *arg, *end;
    size_t i;

    line[strcspn(line, "\r\n")] = '\0';
    peer = line + strspn(line, " \t");
    if (*peer == '\0' || *peer == '#')
        return;
    phase = peer + strcspn(peer, " \t");
    if (*phase != '\0')
        *phase++ = '\0';
    phase += strspn(phase, " \t");
    arg = phase + strcspn(phase, " \t");
    if (*arg != '\0')
        *arg++ = '\0';
    arg += strspn(arg, " \t");
    end = arg + strlen(arg);
    while (end > arg && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    if (*phase == '\0') {
        host_error(h, "no phase after \"%s\" (valid: connect, ehlo, "
                   "mailfrom, rcptto, data, quit)", peer);
        return;
    }
    for (i = 0; i < NPHASES; i++)
        if (strcmp(phase, phases[i].name) == 0)
            break;
    if (i == NPHASES) {
        host_error(h, "unknown phase \"%s\" (valid: connect, ehlo, "
                   "mailfrom, rcptto, data, quit)", phase);
        return;
    }
    if (phases[i].arg && *arg == '\0') {
        host_error(h, "%s needs an argument", phases[i].name);
        return;
    }
    if (!phases[i].arg && *arg != '\0') {
        host_error(h, "%s takes no argument (got \"%s\")", phases[i].name,
                   arg);
        return;
    }
    host_step(h, peer, (enum phase) i, arg);
}

/* host_replay - run the steps of a replay file ("-": standard input) */

static void
host_replay(struct host *h, const char *path)
{
    FILE *f = stdin;
    char *line = NULL;
    size_t cap = 0;

    h->source = strcmp(path, "-") == 0 ? "(stdin)" : path;
    if (strcmp(path, "-") != 0 && (f = fopen(path, "r")) == NULL)
        err(1, "%s", path);
    while (!h->failed && getline(&line, &cap, f) != -1) {
        h->line++;
        host_line(h, line);
    }
    if (ferror(f))
        err(1, "%s", h->source);
    free(line);
    if (f != stdin)
        fclose(f);
}

/* gen_next - the generator's pseudo-random numbers (xorshift64*) */

static uint64_t
gen_next(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545f4914f6cdd1dULL;
}

/* host_generate - run n synthetic sessions
 *
 * Peers come mostly from a busy /24 (198.51.100.0/24, 20 hosts), then
 * from 203.0.113.0/24, 192.0.2.0/24 and 2001:db8::/32, so a per-/24
 * limit has something to find.  Each session is connect, ehlo, mailfrom,
 * one to three rcptto, data and quit. */

static void
host_generate(struct host *h, unsigned long n, uint64_t seed,
              unsigned long delay_ms)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
    char peer[64], line[256];
    unsigned long i, r, k;

    h->source = "(generated)";
    for (i = 0; i < n && !h->failed; i++) {
        r = (unsigned long) (gen_next(&x) % 100);
        if (r < 60)
            snprintf(peer, sizeof(peer), "198.51.100.%lu",
                     1 + (unsigned long) (gen_next(&x) % 20));
        else if (r < 85)
            snprintf(peer, sizeof(peer), "203.0.113.%lu",
                     1 + (unsigned long) (gen_next(&x) % 200));
        else if (r < 95)
            snprintf(peer, sizeof(peer), "192.0.2.%lu",
                     1 + (unsigned long) (gen_next(&x) % 250));
        else
            snprintf(peer, sizeof(peer), "2001:db8:%lx::%lx",
                     (unsigned long) (gen_next(&x) % 4),
                     1 + (unsigned long) (gen_next(&x) % 1000));
#define GEN_STEP(...)                                                   \
        do {                                                            \
            snprintf(line, sizeof(line), __VA_ARGS__);                  \
            h->line++;                                                  \
            if (!h->failed)                                             \
                host_line(h, line);                                     \
        } while (0)
        GEN_STEP("%s connect", peer);
        GEN_STEP("%s ehlo mail%lu.example.net", peer, i);
        GEN_STEP("%s mailfrom <sender%lu@example.net>", peer, i);
        for (k = 0, r = 1 + (unsigned long) (gen_next(&x) % 3); k < r; k++)
            GEN_STEP("%s rcptto <user%lu@example.org>", peer, k);
        GEN_STEP("%s data", peer);
        GEN_STEP("%s quit", peer);
#undef GEN_STEP
        if (delay_ms > 0)
            usleep((useconds_t) (delay_ms * 1000));
    }
}

/* parse_ulong - a decimal option argument, or usage */

static unsigned long
parse_ulong(const char *opt, const char *s)
{
    unsigned long v;
    char *end;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-') {
        warnx("-%s: \"%s\" is not a number", opt, s);
        usage();
    }
    return v;
}

int
main(int argc, char **argv)
{
    struct host h;
    const char **scripts = NULL;
    const char *replay = NULL;
    char msg[ERRLEN];
    unsigned long gen = 0, delay = 0, seed = 1;
    size_t nscripts = 0, i;
    int c, generate = 0;

    memset(&h, 0, sizeof(h));
    while ((c = getopt(argc, argv, "c:d:g:hqr:s:S:V")) != -1) {
        switch (c) {
        case 'c':
            if (setenv("INBOUND_AUDIT_CONF", optarg, 1) != 0)
                err(1, "setenv");
            break;
        case 'd':
            delay = parse_ulong("d", optarg);
            break;
        case 'g':
            gen = parse_ulong("g", optarg);
            generate = 1;
            break;
        case 'q':
            h.quiet = 1;
            break;
        case 'r':
            replay = optarg;
            break;
        case 's':
            scripts = realloc(scripts, (nscripts + 1) * sizeof(*scripts));
            if (scripts == NULL)
                err(1, "realloc");
            scripts[nscripts++] = optarg;
            break;
        case 'S':
            seed = parse_ulong("S", optarg);
            break;
        case 'V':
            printf("%s\n", INA_VERSION_STRING);
            return 0;
        default:
            usage();
        }
    }
    if (optind != argc || nscripts == 0 || (generate && replay != NULL))
        usage();
    setvbuf(stdout, NULL, _IOLBF, 0);

    host_lua(&h);
    /* Fail now, not at the first step, without a usable store: a record
     * of 0 events opens it and counts nothing. */
    c = ina_lua_record(h.L, INA_CONNECTION, "127.0.0.1", 0, msg, sizeof(msg));
    if (c != 0 && c != INA_ENOFAMILY)
        errx(1, "%s", msg);
    for (i = 0; i < nscripts; i++)
        host_load(&h, scripts[i]);

    if (generate)
        host_generate(&h, gen, (uint64_t) seed, delay);
    else
        host_replay(&h, replay != NULL ? replay : "-");

    /* Sessions the input left open end with it. */
    while (h.nsess > 0) {
        host_end_session(&h, &h.sess[0]);
        host_forget(&h, &h.sess[0]);
    }
    if (h.quiet)
        printf("sessions=%lu steps=%lu accepted=%lu rejected=%lu "
               "disconnected=%lu errors=%lu\n", h.sessions, h.steps,
               h.accepted, h.rejected, h.disconnected, h.errors);
    lua_close(h.L);
    free(h.sess);
    free(scripts);
    return h.failed || h.errors > 0 ? 1 : 0;
}
