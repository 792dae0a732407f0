/* audit.c - msys.audit: Lua 5.4 binding for libinaudit
 *
 * require("msys.audit") returns the module table and also makes it the
 * global msys.audit, the way Momentum's namespaces are globals, so the
 * reference page's example runs unchanged.  The functions are those of
 * Momentum's reference pages (connections, receptions, rejections,
 * inbound_session_count) plus the host's side (set_peer, record,
 * session_open, session_close); lua/msys_audit.h gives the host's side to
 * C as well.
 *
 * All state lives in one full userdata ("msys.audit.state") shared by the
 * functions as upvalue 1 and kept in the registry for the C calls: the
 * store handle, opened on the first call that needs it (so require never
 * fails for want of a configuration, and the configuration is looked up
 * again on every call until it loads), and the current connection's
 * address.  There are no C globals, so several Lua states in one process
 * are independent; a state made before fork() keeps working in the child
 * because the library reopens its LMDB environment there.
 *
 * The Lua functions raise on every error, with a message that says what
 * is wrong and what is valid; the C calls return codes instead.
 *
 * SPDX-License-Identifier: MIT
 */

#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <lauxlib.h>
#include <lua.h>

#include "inaudit.h"
#include "msys_audit.h"

#define AUDIT_STATE "msys.audit.state"
#define AUDIT_ERRLEN 512
#define AUDIT_PATHLEN 4096
#define AUDIT_OPTIONS "startv, endv, cidr, cluster"

/* The per-Lua-state data, the module's upvalue 1. */
struct audit_state {
    struct ina_store *store; /* NULL until the first call opens it */
    int closed;              /* set by __gc or __close: never reopen */
    int has_peer;            /* a current connection is set */
    struct ina_cidr peer;    /* its address, a host */
    /* The last cidr string parsed and what it was: a policy asks about
     * one connection's block several times in a row (aux_block). */
    size_t last_len;         /* 0: none */
    char last_text[INA_CIDR_TEXT_MAX];
    struct ina_cidr last;
};

/* What a counting query was asked. */
struct audit_query {
    const char *cidr;        /* NULL: the current connection */
    size_t cidrlen;
    lua_Integer startv;
    lua_Integer endv;
    int endv_given;
    int cluster;
};

/* The registry key of the state, for the C calls: its address is unique
 * to this copy of the module. */
static const char audit_key = 'k';

/* aux_err - format a message into a caller's buffer; returns rc */

static int
aux_err(char *buf, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;

    if (buf != NULL && len > 0) {
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* aux_hide_paths - keep file system paths out of what scripts see
 *
 * Messages of the library name the configuration file and the store
 * directory, which policy scripts have no business knowing.  Every
 * absolute path in msg is cut to its last component, in place; the
 * full message goes to syslog for the operator. */

static void
aux_hide_paths(char *msg)
{
    char *r = msg, *w = msg, *last;
    int logged = 0;

    while (*r != '\0') {
        /* A path starts with '/' and a name; "/24" is a mask. */
        if (*r == '/' && (r == msg || r[-1] == ' ' || r[-1] == '"'
                          || r[-1] == '(')
            && r[1] != '\0' && (r[1] < '0' || r[1] > '9')) {
            if (!logged) {
                syslog(LOG_ERR, "inbound-audit: msys.audit: %s", msg);
                logged = 1;
            }
            last = r;
            while (*r != '\0' && *r != ' ' && *r != ':' && *r != '"'
                   && *r != ')' && *r != ',') {
                if (*r == '/' && r[1] != '\0' && r[1] != ' '
                    && r[1] != ':')
                    last = r + 1;
                r++;
            }
            while (last < r)
                *w++ = *last++;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
}

/* aux_open - open the store of the configuration, once
 *
 * The configuration is found as the SPEC says (INBOUND_AUDIT_CONF, then
 * the system file).  A failure is not remembered: the next call looks
 * again, so a host whose configuration is repaired needs no restart. */

static int
aux_open(struct audit_state *st, char *err, size_t errlen)
{
    struct ina_conf *conf;
    char path[AUDIT_PATHLEN], why[AUDIT_ERRLEN];
    int rc;

    if (st->store != NULL)
        return 0;
    if (st->closed)
        return aux_err(err, errlen, EBADF, "the msys.audit state is closed");
    if (ina_conf_path(NULL, path, sizeof(path)) != 0)
        return aux_err(err, errlen, INA_ECONF,
                       "the inbound_audit module is not configured: "
                       "the configuration path is too long");
    if ((rc = ina_conf_load(path, &conf, why, sizeof(why))) != 0)
        return aux_err(err, errlen, INA_ECONF,
                       "the inbound_audit module is not configured: %s",
                       why);
    rc = ina_store_open(conf, 0, &st->store, why, sizeof(why));
    ina_conf_free(conf);
    if (rc != 0) {
        st->store = NULL;
        return aux_err(err, errlen, INA_ECONF,
                       "the inbound_audit module is not configured: %s",
                       why);
    }
    return 0;
}

/* aux_close - close the store; idempotent */

static void
aux_close(struct audit_state *st)
{
    if (st->store != NULL)
        ina_store_close(st->store);
    st->store = NULL;
    st->closed = 1;
}

/* aux_address - parse a host address (no bare mask, no shorter mask) */

static int
aux_address(const char *text, size_t len, struct ina_cidr *out, char *err,
            size_t errlen)
{
    struct ina_cidr c;
    char buf[INA_CIDR_STRLEN];

    if (ina_cidr_parse(text, len, &c, err, errlen) != 0)
        return INA_EBADCIDR;
    if (c.family == 0)
        return aux_err(err, errlen, INA_EBADCIDR,
                       "bad address \"%s\": a bare mask, not an address",
                       text);
    if (c.has_mask && c.plen != (c.family == 4 ? 32 : 128))
        return aux_err(err, errlen, INA_EBADCIDR,
                       "bad address \"%s\": the block %s, not an address",
                       text, ina_cidr_format(&c, buf, sizeof(buf)));
    ina_cidr_host(&c, out);
    return 0;
}

/* aux_subject - the address an event is recorded for
 *
 * text NULL means the current connection. */

static int
aux_subject(struct audit_state *st, const char *text, size_t len,
            struct ina_cidr *out, char *err, size_t errlen)
{
    if (text != NULL)
        return aux_address(text, len, out, err, errlen);
    if (!st->has_peer)
        return aux_err(err, errlen, INA_ENOADDR,
                       "no address given and no current connection");
    *out = st->peer;
    return 0;
}

/* aux_set_peer - set (text) or clear (NULL) the current connection */

static int
aux_set_peer(struct audit_state *st, const char *text, size_t len,
             char *err, size_t errlen)
{
    struct ina_cidr c;
    int rc;

    if (text == NULL) {
        st->has_peer = 0;
        return 0;
    }
    if ((rc = aux_address(text, len, &c, err, errlen)) != 0)
        return rc;
    st->peer = c;
    st->has_peer = 1;
    return 0;
}

/* aux_record - record n events from an address (NULL: the peer) */

static int
aux_record(struct audit_state *st, enum ina_event ev, const char *text,
           size_t len, uint64_t n, char *err, size_t errlen)
{
    struct ina_cidr c;
    char buf[INA_CIDR_STRLEN];
    int rc;

    if ((rc = aux_subject(st, text, len, &c, err, errlen)) != 0)
        return rc;
    if ((rc = aux_open(st, err, errlen)) != 0)
        return rc;
    if ((rc = ina_record(st->store, ev, &c, n)) != 0)
        return aux_err(err, errlen, rc, "%s %s: %s", ina_event_name(ev),
                       ina_cidr_format(&c, buf, sizeof(buf)),
                       ina_strerror(rc));
    return 0;
}

/* aux_session - open or close a session from an address (NULL: peer) */

static int
aux_session(struct audit_state *st, int open, const char *text, size_t len,
            const char *service, char *err, size_t errlen)
{
    struct ina_cidr c;
    char buf[INA_CIDR_STRLEN];
    int rc;

    if (service == NULL)
        service = "SMTP";
    if ((rc = aux_subject(st, text, len, &c, err, errlen)) != 0)
        return rc;
    if ((rc = aux_open(st, err, errlen)) != 0)
        return rc;
    rc = open ? ina_session_open(st->store, &c, service)
              : ina_session_close(st->store, &c, service);
    if (rc == INA_EBADSERVICE)
        return aux_err(err, errlen, rc,
                       "bad service name \"%.40s\": 1 to %d characters",
                       service, INA_SERVICE_MAX);
    if (rc != 0)
        return aux_err(err, errlen, rc, "session of %s to %s: %s",
                       ina_cidr_format(&c, buf, sizeof(buf)), service,
                       ina_strerror(rc));
    return 0;
}

/* ---------------------------------------------------------------------
 * Lua side
 * ------------------------------------------------------------------- */

/* aux_state - the state, upvalue 1 of every function */

static struct audit_state *
aux_state(lua_State *L)
{
    return (struct audit_state *) lua_touserdata(L, lua_upvalueindex(1));
}

/* aux_store - the open store, or raise why there is none */

static struct ina_store *
aux_store(lua_State *L, struct audit_state *st, const char *fname)
{
    char err[AUDIT_ERRLEN];

    if (aux_open(st, err, sizeof(err)) != 0) {
        aux_hide_paths(err);
        luaL_error(L, "%s: %s", fname, err);
    }
    return st->store;
}

/* aux_optstring - argument arg: a string, or NULL if nil or absent
 *
 * Numbers are refused too: a count or an index where an address or a
 * name belongs is a mistake, not something to convert. */

static const char *
aux_optstring(lua_State *L, int arg, size_t *len, const char *what)
{
    const char *s;

    if (lua_isnoneornil(L, arg)) {
        *len = 0;
        return NULL;
    }
    if (lua_type(L, arg) != LUA_TSTRING)
        luaL_typeerror(L, arg, what);
    s = lua_tolstring(L, arg, len);
    if (strlen(s) != *len)
        luaL_argerror(L, arg, "contains a NUL byte");
    return s;
}

/* aux_checkstring - argument arg: a string, required */

static const char *
aux_checkstring(lua_State *L, int arg, const char *what)
{
    const char *s;
    size_t len;

    if ((s = aux_optstring(L, arg, &len, what)) == NULL)
        luaL_typeerror(L, arg, what);
    return s;
}

/* aux_block - the block a query is about
 *
 * text NULL means the current connection's address as a host; a bare
 * "/N" means that address under mask N. */

static void
aux_block(lua_State *L, struct audit_state *st, const char *fname,
          const char *text, size_t len, struct ina_cidr *out)
{
    struct ina_cidr c;
    char err[AUDIT_ERRLEN];

    if (text == NULL) {
        if (!st->has_peer)
            luaL_error(L, "%s: no cidr given and no current connection",
                       fname);
        ina_cidr_host(&st->peer, out);
        return;
    }
    if (len != 0 && len == st->last_len
        && memcmp(text, st->last_text, len) == 0) {
        c = st->last;
    } else {
        if (ina_cidr_parse(text, len, &c, err, sizeof(err)) != 0)
            luaL_error(L, "%s: %s", fname, err);
        if (len < sizeof(st->last_text)) {
            memcpy(st->last_text, text, len);
            st->last_len = len;
            st->last = c;
        }
    }
    if (c.family != 0) {
        *out = c;
        return;
    }
    if (!st->has_peer)
        luaL_error(L, "%s: cidr \"%s\" is a mask for the current "
                   "connection's address, and there is no current "
                   "connection", fname, text);
    if (ina_cidr_resolve(&c, &st->peer, out) != 0)
        luaL_error(L, "%s: cidr \"%s\": the current connection is IPv4, "
                   "valid masks are /0 to /32", fname, text);
}

/* aux_window - the window index at the top of the stack, option name */

static lua_Integer
aux_window(lua_State *L, const char *name)
{
    lua_Integer v;
    int isint;

    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_argerror(L, 2, lua_pushfstring(L, "option '%s' must be an "
                      "integer, got %s", name, luaL_typename(L, -1)));
    v = lua_tointegerx(L, -1, &isint);
    if (!isint)
        luaL_argerror(L, 2, lua_pushfstring(L, "option '%s' must be an "
                      "integer, got %f", name, lua_tonumber(L, -1)));
    if (v < 0)
        luaL_argerror(L, 2, lua_pushfstring(L, "option '%s' must be a "
                      "window index 0 or more, got %I", name, v));
    return v;
}

/* aux_iskey - a string key of length klen equals name */

static int
aux_iskey(const char *key, size_t klen, const char *name)
{
    return klen == strlen(name) && memcmp(key, name, klen) == 0;
}

/* aux_options - read argument 2: nil, an options table, or a cidr
 *
 * Every key of the table must be one of the page's four options. */

static void
aux_options(lua_State *L, struct audit_query *q)
{
    const char *key;
    size_t klen;

    memset(q, 0, sizeof(*q));
    switch (lua_type(L, 2)) {
    case LUA_TNONE:
    case LUA_TNIL:
        return;
    case LUA_TTABLE:
        break;
    case LUA_TSTRING:
        q->cidr = aux_optstring(L, 2, &q->cidrlen, "table or cidr string");
        return;
    default:
        luaL_typeerror(L, 2, "table or cidr string");
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            luaL_argerror(L, 2, lua_pushfstring(L, "unknown option [%s]; "
                          "valid: " AUDIT_OPTIONS,
                          luaL_tolstring(L, -2, NULL)));
        }
        key = lua_tolstring(L, -2, &klen);
        if (aux_iskey(key, klen, "startv")) {
            q->startv = aux_window(L, "startv");
        } else if (aux_iskey(key, klen, "endv")) {
            q->endv = aux_window(L, "endv");
            q->endv_given = 1;
        } else if (aux_iskey(key, klen, "cidr")) {
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_argerror(L, 2, lua_pushfstring(L, "option 'cidr' must "
                              "be a string, got %s", luaL_typename(L, -1)));
            q->cidr = lua_tolstring(L, -1, &q->cidrlen);
        } else if (aux_iskey(key, klen, "cluster")) {
            if (lua_type(L, -1) != LUA_TBOOLEAN)
                luaL_argerror(L, 2, lua_pushfstring(L, "option 'cluster' "
                              "must be a boolean, got %s",
                              luaL_typename(L, -1)));
            q->cluster = lua_toboolean(L, -1);
        } else {
            luaL_argerror(L, 2, lua_pushfstring(L, "unknown option '%s'; "
                          "valid: " AUDIT_OPTIONS, key));
        }
        lua_pop(L, 1);
    }
}

/* aux_range_error - raise for a window index past what uint32 holds */

static void
aux_range_error(lua_State *L, struct ina_store *store, const char *fname,
                const char *monitor, lua_Integer v)
{
    const struct ina_monitor *mon;
    char err[AUDIT_ERRLEN];

    if (ina_conf_find_monitor(ina_store_conf(store), monitor, &mon, err,
                              sizeof(err)) != 0)
        luaL_error(L, "%s: %s", fname, err);
    luaL_error(L, "%s: window %I out of range for monitor %s (valid: 0..%d)",
               fname, v, mon->name, (int) mon->history);
}

/* aux_query - connections, receptions and rejections */

static int
aux_query(lua_State *L, enum ina_event ev, const char *fname)
{
    struct audit_state *st = aux_state(L);
    struct audit_query q;
    struct ina_store *store;
    struct ina_cidr block;
    const char *monitor;
    char err[AUDIT_ERRLEN];
    uint64_t count;
    int rc;

    monitor = aux_checkstring(L, 1, "monitor string");
    aux_options(L, &q);
    store = aux_store(L, st, fname);
    aux_block(L, st, fname, q.cidr, q.cidrlen, &block);
    if (q.startv > (lua_Integer) UINT32_MAX)
        aux_range_error(L, store, fname, monitor, q.startv);
    if (q.endv > (lua_Integer) UINT32_MAX)
        aux_range_error(L, store, fname, monitor, q.endv);
    rc = ina_query(store, ev, monitor, &block, (uint32_t) q.startv,
                   (uint32_t) q.endv, q.cluster ? INA_QUERY_CLUSTER : 0,
                   &count, err, sizeof(err));
    if (rc == INA_EWINDOW && q.startv > q.endv && !q.endv_given)
        luaL_error(L, "%s: %s (endv defaults to 0)", fname, err);
    if (rc != 0) {
        aux_hide_paths(err);
        luaL_error(L, "%s: %s", fname, err);
    }
    if (count > (uint64_t) LUA_MAXINTEGER) {
        snprintf(err, sizeof(err), "%llu", (unsigned long long) count);
        luaL_error(L, "%s: the count %s does not fit a Lua integer", fname,
                   err);
    }
    lua_pushinteger(L, (lua_Integer) count);
    return 1;
}

/* audit_connections - connections from a block over a window range */

static int
audit_connections(lua_State *L)
{
    return aux_query(L, INA_CONNECTION, "msys.audit.connections");
}

/* audit_receptions - messages received from a block */

static int
audit_receptions(lua_State *L)
{
    return aux_query(L, INA_RECEPTION, "msys.audit.receptions");
}

/* audit_rejections - messages rejected from a block */

static int
audit_rejections(lua_State *L)
{
    return aux_query(L, INA_REJECTION, "msys.audit.rejections");
}

/* audit_inbound_session_count - sessions open now from a block
 *
 * cidr nil is the current connection's address; servicename nil is
 * "SMTP".  "inbound_cidr" is Momentum's cluster-wide service: SMTP
 * sessions of every node, read from the local cluster table. */

static int
audit_inbound_session_count(lua_State *L)
{
    static const char fname[] = "msys.audit.inbound_session_count";
    struct audit_state *st = aux_state(L);
    struct ina_store *store;
    struct ina_cidr block;
    const char *cidr, *service;
    char err[AUDIT_ERRLEN];
    uint64_t count;
    size_t len, slen;

    cidr = aux_optstring(L, 1, &len, "cidr string or nil");
    service = aux_optstring(L, 2, &slen, "service name string or nil");
    if (service == NULL)
        service = "SMTP";
    store = aux_store(L, st, fname);
    /* "inbound_cidr" reads the cluster table (ina_session_count()); say
     * so before anything else when there is no cluster. */
    if (strcmp(service, INA_SERVICE_CLUSTER) == 0
        && !ina_store_conf(store)->cluster)
        return luaL_error(L, "%s: service \"inbound_cidr\" counts sessions "
                          "cluster-wide: cluster metrics are not configured",
                          fname);
    aux_block(L, st, fname, cidr, len, &block);
    if (ina_session_count(store, &block, service, &count, err,
                          sizeof(err)) != 0) {
        aux_hide_paths(err);
        return luaL_error(L, "%s: %s", fname, err);
    }
    if (count > (uint64_t) LUA_MAXINTEGER)
        return luaL_error(L, "%s: the count does not fit a Lua integer",
                          fname);
    lua_pushinteger(L, (lua_Integer) count);
    return 1;
}

/* audit_set_peer - set (address) or clear (nil) the current connection */

static int
audit_set_peer(lua_State *L)
{
    struct audit_state *st = aux_state(L);
    const char *addr;
    char err[AUDIT_ERRLEN];
    size_t len;

    addr = aux_optstring(L, 1, &len, "address string or nil");
    if (aux_set_peer(st, addr, len, err, sizeof(err)) != 0)
        return luaL_error(L, "msys.audit.set_peer: %s", err);
    return 0;
}

/* audit_record - record n (default 1) events from an address */

static int
audit_record(lua_State *L)
{
    struct audit_state *st = aux_state(L);
    enum ina_event ev;
    const char *name, *addr;
    char err[AUDIT_ERRLEN];
    lua_Integer n;
    size_t len;

    name = aux_checkstring(L, 1, "event name string");
    addr = aux_optstring(L, 2, &len, "address string or nil");
    n = luaL_optinteger(L, 3, 1);
    if (ina_event_parse(name, &ev) != 0)
        return luaL_argerror(L, 1, lua_pushfstring(L, "unknown event "
                             "\"%s\" (valid: connection, reception, "
                             "rejection)", name));
    luaL_argcheck(L, n >= 0, 3, "the count must be 0 or more");
    if (aux_record(st, ev, addr, len, (uint64_t) n, err, sizeof(err)) != 0) {
        aux_hide_paths(err);
        return luaL_error(L, "msys.audit.record: %s", err);
    }
    return 0;
}

/* aux_session_lua - session_open and session_close */

static int
aux_session_lua(lua_State *L, int open, const char *fname)
{
    struct audit_state *st = aux_state(L);
    const char *addr, *service;
    char err[AUDIT_ERRLEN];
    size_t len, slen;

    addr = aux_optstring(L, 1, &len, "address string or nil");
    service = aux_optstring(L, 2, &slen, "service name string or nil");
    if (aux_session(st, open, addr, len, service, err, sizeof(err)) != 0) {
        aux_hide_paths(err);
        return luaL_error(L, "%s: %s", fname, err);
    }
    return 0;
}

/* audit_session_open - one more session open now from an address */

static int
audit_session_open(lua_State *L)
{
    return aux_session_lua(L, 1, "msys.audit.session_open");
}

/* audit_session_close - one session fewer */

static int
audit_session_close(lua_State *L)
{
    return aux_session_lua(L, 0, "msys.audit.session_close");
}

/* aux_flush - apply the process's pending events of the store now */

static int
aux_flush(struct audit_state *st, char *err, size_t errlen)
{
    int rc;

    /* Nothing was recorded through a store that is not open yet. */
    if (st->store == NULL)
        return 0;
    if ((rc = ina_flush(st->store)) != 0)
        return aux_err(err, errlen, rc, "%s", ina_strerror(rc));
    return 0;
}

/* audit_flush - apply buffered events now (hosts' idle loops) */

static int
audit_flush(lua_State *L)
{
    struct audit_state *st = aux_state(L);
    char err[AUDIT_ERRLEN];

    if (aux_flush(st, err, sizeof(err)) != 0) {
        aux_hide_paths(err);
        return luaL_error(L, "msys.audit.flush: %s", err);
    }
    return 0;
}

/* audit_gc - __gc and __close of the state: close the store */

static int
audit_gc(lua_State *L)
{
    aux_close((struct audit_state *) luaL_checkudata(L, 1, AUDIT_STATE));
    return 0;
}

/* audit_tostring - __tostring of the state */

static int
audit_tostring(lua_State *L)
{
    struct audit_state *st = luaL_checkudata(L, 1, AUDIT_STATE);

    lua_pushfstring(L, "msys.audit.state (%s)", st->closed ? "closed"
                    : st->store != NULL ? "open" : "not yet opened");
    return 1;
}

static const luaL_Reg audit_funcs[] = {
    {"connections", audit_connections},
    {"receptions", audit_receptions},
    {"rejections", audit_rejections},
    {"inbound_session_count", audit_inbound_session_count},
    {"set_peer", audit_set_peer},
    {"record", audit_record},
    {"session_open", audit_session_open},
    {"session_close", audit_session_close},
    {"flush", audit_flush},
    {NULL, NULL}
};

static const luaL_Reg audit_meta[] = {
    {"__gc", audit_gc},
    {"__close", audit_gc},
    {"__tostring", audit_tostring},
    {NULL, NULL}
};

/* aux_newstate - push a new, not yet opened state
 *
 * It is also stored in the registry, for the C calls. */

static void
aux_newstate(lua_State *L)
{
    struct audit_state *st;

    st = lua_newuserdatauv(L, sizeof(*st), 0);
    memset(st, 0, sizeof(*st));
    if (luaL_newmetatable(L, AUDIT_STATE))
        luaL_setfuncs(L, audit_meta, 0);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &audit_key);
}

/* luaopen_msys_audit - open the module */

LUAMOD_API int
luaopen_msys_audit(lua_State *L)
{
    luaL_checkversion(L);
    luaL_newlibtable(L, audit_funcs);
    aux_newstate(L);
    luaL_setfuncs(L, audit_funcs, 1);
    lua_pushliteral(L, INA_VERSION_STRING);
    lua_setfield(L, -2, "_VERSION");

    /* Momentum's namespaces are globals: msys.audit.connections(...)
     * works after a bare require("msys.audit"). */
    switch (lua_getglobal(L, "msys")) {
    case LUA_TTABLE:
        break;
    case LUA_TNIL:
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setglobal(L, "msys");
        break;
    default:
        return luaL_error(L, "msys.audit: the global 'msys' is a %s, not a "
                          "table", luaL_typename(L, -1));
    }
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "audit");
    lua_pop(L, 1);
    return 1;
}

/* ---------------------------------------------------------------------
 * C side (msys_audit.h)
 * ------------------------------------------------------------------- */

/* aux_registered - the state of the module last opened in L
 *
 * Uses only calls that neither allocate nor raise. */

static struct audit_state *
aux_registered(lua_State *L, char *err, size_t errlen, int *rc)
{
    struct audit_state *st = NULL;

    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &audit_key) == LUA_TUSERDATA
        && lua_rawlen(L, -1) == sizeof(*st))
        st = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (st == NULL)
        *rc = aux_err(err, errlen, ENOENT,
                      "msys.audit is not loaded in this Lua state");
    else if (st->closed)
        *rc = aux_err(err, errlen, EBADF, "the msys.audit state is closed");
    else
        return st;
    return NULL;
}

/* ina_lua_set_peer - set or clear the current connection's address */

int
ina_lua_set_peer(lua_State *L, const char *addr, char *errbuf, size_t errlen)
{
    struct audit_state *st;
    int rc;

    if ((st = aux_registered(L, errbuf, errlen, &rc)) == NULL)
        return rc;
    return aux_set_peer(st, addr, addr != NULL ? strlen(addr) : 0, errbuf,
                        errlen);
}

/* ina_lua_record - record n events from an address */

int
ina_lua_record(lua_State *L, enum ina_event ev, const char *addr,
               uint64_t n, char *errbuf, size_t errlen)
{
    struct audit_state *st;
    int rc;

    if ((st = aux_registered(L, errbuf, errlen, &rc)) == NULL)
        return rc;
    if ((unsigned) ev >= INA_NEVENTS)
        return aux_err(errbuf, errlen, INA_EBADEVENT, "no such event %d",
                       (int) ev);
    return aux_record(st, ev, addr, addr != NULL ? strlen(addr) : 0, n,
                      errbuf, errlen);
}

/* ina_lua_session_open - one more session open now */

int
ina_lua_session_open(lua_State *L, const char *addr, const char *service,
                     char *errbuf, size_t errlen)
{
    struct audit_state *st;
    int rc;

    if ((st = aux_registered(L, errbuf, errlen, &rc)) == NULL)
        return rc;
    return aux_session(st, 1, addr, addr != NULL ? strlen(addr) : 0,
                       service, errbuf, errlen);
}

/* ina_lua_session_close - one session fewer */

int
ina_lua_session_close(lua_State *L, const char *addr, const char *service,
                      char *errbuf, size_t errlen)
{
    struct audit_state *st;
    int rc;

    if ((st = aux_registered(L, errbuf, errlen, &rc)) == NULL)
        return rc;
    return aux_session(st, 0, addr, addr != NULL ? strlen(addr) : 0,
                       service, errbuf, errlen);
}

/* ina_lua_flush - apply buffered events now */

int
ina_lua_flush(lua_State *L, char *errbuf, size_t errlen)
{
    struct audit_state *st;
    int rc;

    if ((st = aux_registered(L, errbuf, errlen, &rc)) == NULL)
        return rc;
    return aux_flush(st, errbuf, errlen);
}
