/* msys_audit.h - the C side of msys.audit, for hosts that embed Lua
 *
 * A host (an MTA, the policy host tools/inaudit-policy) that runs
 * msys.audit scripts tells the module which connection is current and
 * records what happens, from C, through these calls.  Each works on the
 * msys.audit module loaded last in the Lua state L (by require, or by
 * luaL_requiref with luaopen_msys_audit), and does what the Lua functions
 * msys.audit.set_peer, .record, .session_open and .session_close do.
 *
 * Unlike the Lua functions they never raise: they return 0 or an error
 * code of lib/inaudit.h (or an errno value), and, if errbuf is not NULL,
 * write a message saying what is wrong into it.  They call no Lua
 * function and allocate no Lua memory, so they may be called outside a
 * protected call.  They are exported by the module (msys/audit.so) and by
 * any program that links lua/audit.c.
 *
 * Errors common to all: ENOENT (msys.audit is not loaded in L), EBADF
 * (its state was closed), INA_ECONF (the module is not configured: the
 * configuration could not be loaded or the store not opened; the message
 * says why), INA_EBADCIDR (addr is not an address).
 *
 * SPDX-License-Identifier: MIT
 */

#ifndef MSYS_AUDIT_H
#define MSYS_AUDIT_H 1

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "inaudit.h"

#ifdef __cplusplus
extern "C" {
#endif

/* luaopen_msys_audit - open the module (what require("msys.audit") runs)
 *
 * Returns the module table, which it also stores as the global
 * msys.audit.  Never fails for want of a configuration: the store is
 * opened on the first call that needs it. */
LUAMOD_API int luaopen_msys_audit(lua_State *L);

/* ina_lua_set_peer - set or clear the current connection's address
 *
 * addr is an IPv4 or IPv6 address in any form ina_cidr_parse() accepts
 * (brackets and IPv4-mapped forms included), without a mask shorter than
 * a host's; NULL clears the peer.  Needs no configuration. */
int ina_lua_set_peer(lua_State *L, const char *addr, char *errbuf,
                     size_t errlen) INA_NONNULL(1);

/* ina_lua_record - record n events from addr (NULL: the current peer)
 *
 * Also returns INA_ENOADDR when addr is NULL and no peer is set, and the
 * codes of ina_record(). */
int ina_lua_record(lua_State *L, enum ina_event ev, const char *addr,
                   uint64_t n, char *errbuf, size_t errlen) INA_NONNULL(1);

/* ina_lua_session_open, ina_lua_session_close - move the session gauge
 *
 * For addr (NULL: the current peer) and service (NULL: "SMTP").  Also
 * returns INA_ENOADDR when addr is NULL and no peer is set, and the codes
 * of ina_session_open() and ina_session_close(). */
int ina_lua_session_open(lua_State *L, const char *addr,
                         const char *service, char *errbuf, size_t errlen)
    INA_NONNULL(1);
int ina_lua_session_close(lua_State *L, const char *addr,
                          const char *service, char *errbuf, size_t errlen)
    INA_NONNULL(1);

/* ina_lua_flush - apply the events buffered by this process now
 *
 * Events recorded through the module are buffered for up to the
 * configuration's flush_delay and applied by later calls; a host calls
 * this from its idle loop, and before a worker leaves with _exit().
 * (msys.audit.flush() does the same from Lua.)  Returns 0, or the codes
 * of ina_flush(). */
int ina_lua_flush(lua_State *L, char *errbuf, size_t errlen) INA_NONNULL(1);

#ifdef __cplusplus
}
#endif

#endif /* MSYS_AUDIT_H */
