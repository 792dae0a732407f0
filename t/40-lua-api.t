#!/usr/bin/env lua5.4
-- 40-lua-api.t - msys.audit from Lua: every option, default and error
--
-- The script runs twice: first to write a configuration into a scratch
-- directory, then again under that configuration with the clock frozen
-- by faketime, so that every event recorded here falls in window 0 of
-- every monitor and each count below is known exactly.  IPv6 is counted
-- at /64 and /48 only, so that a host query is finer than the finest
-- granularity.
--
-- SPDX-License-Identifier: MIT

local tap = require("tap")
local ok, is, like, error_like = tap.ok, tap.is, tap.like, tap.error_like

-- 2023-11-14 22:20:00 UTC: a window boundary of every monitor.
local T0 = 1700000400
local dir = tap.setup({ time = T0 })

-- The module: require returns the table and makes the global.
local audit = require("msys.audit")
is("table", type(audit), "require returns the module table")
ok(msys ~= nil and msys.audit == audit, "and makes it the global msys.audit")
ok(require("msys.audit") == audit, "and a second require returns it again")
like(audit._VERSION, "^inbound%-audit %d+%.%d+%.%d+$",
     "_VERSION names the version")
is(T0, os.time(), "the clock is frozen at T0")

-- Recording.
local function rec(ev, addr, n)
    audit.record(ev, addr, n)
end
rec("connection", "192.0.2.1", 3)
rec("connection", "::ffff:192.0.2.1")          -- mapped: 192.0.2.1
rec("connection", "192.0.2.2", 2)
rec("connections", "192.0.2.200")               -- plural accepted
rec("connection", "192.0.3.5", 4)
rec("connection", "198.51.100.7", 5)
rec("reception", "192.0.2.1", 2)
rec("rejections", "192.0.2.2", 1)
rec("connection", "2001:db8:1:2::1", 2)
rec("connection", "[2001:db8:1:2::2]")         -- bracketed
rec("connection", "2001:DB8:1:3:0:0:0:1", 4)    -- uncompressed, upper case
rec("connection", "2001:db8:2::1", 1)
rec("reception", "203.0.113.9", 0)              -- a count of 0 counts nothing

local C = audit.connections
local M = "60,10"

-- String and table options, IPv4, masks at and between granularities.
is(4, C(M, "192.0.2.1"), "4 connections from 192.0.2.1 (string cidr)")
is(4, C(M, { cidr = "192.0.2.1" }), "4 from 192.0.2.1 (table cidr)")
is(4, C(M, "192.0.2.1/32"), "4 from 192.0.2.1/32")
is(4, C(M, "::ffff:192.0.2.1"), "4 from the mapped form ::ffff:192.0.2.1")
is(7, C(M, "::ffff:192.0.2.0/120"), "7 from ::ffff:192.0.2.0/120, a /24")
is(7, C(M, "192.0.2.0/24"), "7 from 192.0.2.0/24 (a granularity)")
is(7, C(M, "192.0.2.77/24"), "7 from 192.0.2.77/24: host bits ignored")
is(6, C(M, "192.0.2.0/28"), "6 from 192.0.2.0/28 (between /24 and /32)")
is(1, C(M, "192.0.2.128/25"), "1 from 192.0.2.128/25")
is(11, C(M, "192.0.0.0/16"), "11 from 192.0.0.0/16 (a granularity)")
is(11, C(M, "192.0.0.0/20"), "11 from 192.0.0.0/20 (between /16 and /24)")
is(11, C(M, "192.0.0.0/8"), "11 from 192.0.0.0/8 (coarser than all)")
is(16, C(M, "0.0.0.0/0"), "16 IPv4 connections in all")
is(5, C(M, "198.51.100.0/24"), "5 from 198.51.100.0/24")
is(0, C(M, "203.0.113.0/24"), "0 from a block never seen")
is("integer", math.type(C(M, "192.0.2.1")), "the result is a Lua integer")

-- IPv6 in every form.
is(3, C(M, "2001:db8:1:2::/64"), "3 from 2001:db8:1:2::/64")
is(3, C(M, "[2001:db8:1:2::]/64"), "3 from [2001:db8:1:2::]/64")
is(3, C(M, "[2001:db8:1:2::/64]"), "3 from [2001:db8:1:2::/64]")
is(3, C(M, { cidr = "2001:db8:1:2:ffff::/64" }),
   "3 from 2001:db8:1:2:ffff::/64 (table, host bits ignored)")
is(4, C(M, "2001:0db8:0001:0003::/64"), "4 from 2001:0db8:0001:0003::/64")
is(7, C(M, "2001:db8:1:2::/63"), "7 from 2001:db8:1:2::/63 (two /64s)")
is(7, C(M, "2001:db8:1::/56"), "7 from 2001:db8:1::/56 (between)")
is(7, C(M, "2001:db8:1::/48"), "7 from 2001:db8:1::/48 (a granularity)")
is(8, C(M, "2001:db8::/32"), "8 from 2001:db8::/32 (coarser than all)")
is(8, C(M, "::/0"), "8 IPv6 connections in all")

-- The three events are separate.
is(2, audit.receptions(M, "192.0.2.1"), "2 receptions from 192.0.2.1")
is(2, audit.receptions(M, "192.0.2.0/24"), "2 receptions from its /24")
is(0, audit.receptions(M, "192.0.2.2"), "0 receptions from 192.0.2.2")
is(1, audit.rejections(M, "192.0.2.0/24"), "1 rejection from the /24")
is(1, audit.rejections(M, { cidr = "192.0.2.2" }), "1 from 192.0.2.2")
is(0, audit.rejections(M, "192.0.2.1"), "0 rejections from 192.0.2.1")
is(0, audit.receptions(M, "203.0.113.9"), "0 receptions after n = 0")

-- Windows: defaults, ranges, other monitors, spelling of names.
is(7, C(M, { cidr = "192.0.2.0/24", startv = 0 }), "7 with startv = 0")
is(7, C(M, { cidr = "192.0.2.0/24", endv = 0 }), "7 with endv = 0")
is(7, C(M, { cidr = "192.0.2.0/24", startv = 0, endv = 10 }),
   "7 over windows 0..10")
is(7, C(M, { cidr = "192.0.2.0/24", startv = 0.0, endv = 10.0 }),
   "7 with integral floats 0.0 and 10.0")
is(0, C(M, { cidr = "192.0.2.0/24", startv = 1, endv = 1 }),
   "0 in window 1")
is(0, C(M, { cidr = "192.0.2.0/24", startv = 1, endv = 10 }),
   "0 over windows 1..10")
is(7, C("60, 10", "192.0.2.0/24"), "\"60, 10\" names the same monitor")
is(7, C(" 60 ,10 ", "192.0.2.0/24"), "and so does \" 60 ,10 \"")
is(7, C("300,12", { cidr = "192.0.2.0/24", endv = 12 }),
   "7 on 300,12 over 0..12")
is(7, C("3600,24", "192.0.2.0/24"), "7 on 3600,24")
is(7, C("60,1", { cidr = "192.0.2.0/24", startv = 0, endv = 1 }),
   "7 on 60,1 over 0..1 (N + 1 windows: the current and N)")
is(7, C(M, { cidr = "192.0.2.0/24", cluster = false }),
   "cluster = false is the local count")
is(7, C(M, { cidr = "192.0.2.0/24", startv = 0, endv = 3, cluster = false }),
   "and so with every option together")

-- The current connection: default cidr and bare masks.
audit.set_peer("192.0.2.2")
is(2, C(M), "no options: the current connection 192.0.2.2")
is(2, C(M, nil), "options nil: the same")
is(2, C(M, {}), "an empty table: the same")
is(2, C(M, { startv = 0, endv = 10 }), "a table without cidr: the same")
is(7, C(M, "/24"), "\"/24\": the current connection's /24")
is(7, C(M, { cidr = "/24" }), "{cidr = \"/24\"}: the same")
is(6, C(M, "/28"), "\"/28\": between granularities")
is(11, C(M, { cidr = "/16", endv = 2 }), "\"/16\" over 0..2")
is(2, C(M, "/32"), "\"/32\": the host")
is(16, C(M, "/0"), "\"/0\": every IPv4 address")
is(1, audit.rejections(M), "rejections default to the connection too")
-- The module keeps the last cidr text it parsed (a policy asks about
-- one block several times): the same text, another of its length, a
-- malformed one of its length, and the same bare mask for two peers.
is(2, C(M, "192.0.2.2"), "a host by text")
is(2, C(M, "192.0.2.2"), "the same text again")
is(4, C(M, "192.0.2.1"), "another text of the same length")
error_like(function() return C(M, "192.0.2.x") end,
           "bad character 'x'", "a malformed one of that length raises")
is(4, C(M, "192.0.2.1"), "and the last good one counts still")
audit.set_peer("192.0.2.1")
is(4, C(M, "/32"), '"/32" with the peer 192.0.2.1')
audit.set_peer("192.0.2.2")
is(2, C(M, "/32"), "and with the peer 192.0.2.2")
audit.set_peer("::ffff:192.0.2.1")
is(4, C(M), "a mapped peer is its IPv4 address")
audit.set_peer("[2001:db8:1:2::2]")
is(3, C(M, "/64"), "a bracketed IPv6 peer: \"/64\"")
is(7, C(M, "/48"), "and \"/48\"")
is(7, C(M, "/56"), "and \"/56\" between them")
error_like(function() return C(M) end,
           "mask /128 is finer than the finest IPv6 granularity /64",
           "an IPv6 host is finer than /64, and the error names /64")
audit.set_peer("2001:db8:1:3::1")
is(4, C(M, "/64"), "set_peer replaces the peer")
audit.set_peer(nil)
error_like(function() return C(M) end,
           "no cidr given and no current connection",
           "no cidr and no peer raises")
error_like(function() return C(M, { startv = 0 }) end,
           "no cidr given and no current connection",
           "and so does a table without cidr")
error_like(function() return C(M, "/24") end,
           "\"/24\" is a mask for the current connection's address, and "
           .. "there is no current connection", "a bare mask without peer",
           true)
audit.set_peer()
error_like(function() return C(M) end, "no current connection",
           "set_peer() clears it too")

-- Sessions.
audit.session_open("192.0.2.1")
audit.session_open("192.0.2.1", "SMTP")
audit.session_open("192.0.2.2", "ECStream")
audit.session_open("2001:db8:1:2::1")
local S = audit.inbound_session_count
is(2, S("192.0.2.0/24"), "2 SMTP sessions from the /24 (default service)")
is(2, S("192.0.2.1", "SMTP"), "2 from 192.0.2.1 to SMTP")
is(1, S("192.0.2.0/24", "ECStream"), "1 to ECStream")
is(0, S("192.0.2.0/24", "smtp"), "service names are case-sensitive")
is(1, S("2001:db8:1::/48"), "1 IPv6 session")
audit.set_peer("192.0.2.9")
is(2, S("/24"), "\"/24\" with a peer")
is(2, S("/24", nil), "servicename nil is SMTP")
is(0, S(), "no cidr: the peer 192.0.2.9 as a host")
is(0, S(nil, "ECStream"), "and nil cidr with a service")
audit.set_peer("192.0.2.1")
is(2, S(), "no cidr: the peer 192.0.2.1")
audit.session_close("192.0.2.1")
is(1, S("192.0.2.0/24"), "1 after a close")
audit.session_close()
audit.session_close()
is(0, S("192.0.2.0/24"), "closing more than were open leaves 0")
is(1, S("192.0.2.0/24", "ECStream"), "the other service is untouched")
is("integer", math.type(S("192.0.2.0/24")), "the session count is an integer")
error_like(function() return S("/24", "inbound_cidr") end,
           "\"inbound_cidr\" counts sessions cluster%-wide: cluster "
           .. "metrics are not configured", "inbound_cidr means cluster")

-- Errors: monitors.
error_like(function() return C("60,2", "192.0.2.1") end,
           'monitor "60,2" is not configured %(configured: 60,1 60,10 '
           .. '300,12 3600,24%)', "an unknown monitor lists the configured")
error_like(function() return C("sixty", "192.0.2.1") end,
           "msys.audit.connections: .*configured: 60,1 60,10 300,12",
           "a malformed monitor lists them too")
error_like(function() return audit.receptions("1,1", "192.0.2.1") end,
           "msys.audit.receptions: monitor \"1,1\" is not configured",
           "each function names itself")
error_like(function() return audit.rejections("60,1\0", "192.0.2.1") end,
           "contains a NUL byte", "a NUL in the monitor name")

-- Errors: cidrs, quoted.
for _, bad in ipairs({ "300.1.2.3", "192.0.2.1/33", "192.0.2", "2001:db8::g",
                       "[192.0.2.1]", "192.0.2.1 ", " 192.0.2.1", "",
                       "/129", "2001:db8::1/129", "[2001:db8::1", "x" }) do
    error_like(function() return C(M, bad) end,
               ('bad cidr "%s"'):format(bad), ("bad cidr %q raises, quoted")
               :format(bad), true)
    error_like(function() return C(M, { cidr = bad }) end,
               ('bad cidr "%s"'):format(bad), ("and in a table"), true)
end
error_like(function() return C(M, "192.0.2.1\0") end, "NUL",
           "a NUL in a cidr string")
error_like(function() return C(M, { cidr = "192.0.2.1\0" }) end, "NUL",
           "a NUL in a table cidr")
audit.set_peer("192.0.2.1")
error_like(function() return C(M, "/64") end,
           "the current connection is IPv4, valid masks are /0 to /32",
           "an IPv6 mask on an IPv4 peer")
error_like(function() return C(M, "2001:db8:1:2::1") end,
           "finer than the finest IPv6 granularity /64",
           "too fine names the finest granularity")

-- Errors: windows.
error_like(function() return C(M, { endv = 11 }) end,
           "window 11 out of range for monitor 60,10 %(valid: 0..10%)",
           "endv past N gives the range")
error_like(function() return C("60,1", { startv = 2, endv = 2 }) end,
           "window 2 out of range for monitor 60,1 %(valid: 0..1%)",
           "and so for another monitor")
error_like(function() return C(M, { endv = 2 ^ 40 }) end,
           "window 1099511627776 out of range for monitor 60,10 "
           .. "%(valid: 0..10%)", "a huge endv gives the range")
error_like(function() return C(M, { startv = 2, endv = 1 }) end,
           "window range 2..1 is empty: startv is greater than endv$",
           "startv > endv (and no word of a default endv)")
error_like(function() return C(M, { startv = 3 }) end,
           "startv is greater than endv %(endv defaults to 0%)",
           "startv alone > the default endv says endv defaults to 0")
error_like(function() return C(M, { startv = -1 }) end,
           "option 'startv' must be a window index 0 or more, got %-1",
           "a negative startv")
error_like(function() return C(M, { endv = -2 }) end,
           "option 'endv' must be a window index 0 or more, got %-2",
           "a negative endv")
error_like(function() return C(M, { startv = 0.5 }) end,
           "option 'startv' must be an integer, got 0.5", "a fraction")
error_like(function() return C(M, { endv = "1" }) end,
           "option 'endv' must be an integer, got string", "a string endv")

-- Errors: argument types and option keys.
error_like(function() return audit.connections() end,
           "bad argument #1 to '[%w.]*connections' %(monitor string "
           .. "expected, got no value%)", "no monitor, and the function "
           .. "is named")
error_like(function() return C(60) end,
           "bad argument #1 .*monitor string expected, got number",
           "a number as monitor")
error_like(function() return C(M, true) end,
           "bad argument #2 .*table or cidr string expected, got boolean",
           "a boolean as options")
error_like(function() return C(M, 192) end,
           "bad argument #2 .*table or cidr string expected, got number",
           "a number as options")
error_like(function() return C(M, { cidr = 192 }) end,
           "option 'cidr' must be a string, got number", "a number cidr")
error_like(function() return C(M, { cluster = "yes" }) end,
           "option 'cluster' must be a boolean, got string",
           "a string cluster")
error_like(function() return C(M, { cluster = 1 }) end,
           "option 'cluster' must be a boolean, got number",
           "a number cluster")
error_like(function() return C(M, { foo = 1 }) end,
           "unknown option 'foo'; valid: startv, endv, cidr, cluster",
           "an unknown key is named, with the valid ones")
error_like(function() return C(M, { Startv = 1 }) end,
           "unknown option 'Startv'", "keys are case-sensitive")
error_like(function() return C(M, { "192.0.2.1" }) end,
           "unknown option %[1%]; valid:", "a positional entry")
error_like(function() return C(M, { cidr = "192.0.2.1", window = 0 }) end,
           "unknown option 'window'", "an unknown key beside known ones")
error_like(function() return C(M, { cidr = "192.0.2.1", cluster = true }) end,
           "msys.audit.connections: cluster metrics are not configured",
           "cluster = true without a cluster")
error_like(function() return audit.receptions(M, { cluster = true }) end,
           "msys.audit.receptions: cluster metrics are not configured",
           "and for receptions")
error_like(function() return S(24) end,
           "bad argument #1 .*cidr string or nil expected, got number",
           "inbound_session_count: a number cidr")
error_like(function() return S("/24", 1) end,
           "bad argument #2 .*service name string or nil expected",
           "inbound_session_count: a number service")
error_like(function() return S("/24", "") end,
           "service name \"\" must be 1 to 32 characters", "an empty service")
error_like(function() return S("/24", ("x"):rep(33)) end,
           "must be 1 to 32 characters", "a service name too long")
error_like(function() return S("bad") end, 'bad cidr "bad"',
           "inbound_session_count: a bad cidr")

-- Errors: the host's functions.
error_like(function() audit.record("connect", "192.0.2.1") end,
           'unknown event "connect" %(valid: connection, reception, '
           .. 'rejection%)', "record: an unknown event")
error_like(function() audit.record(nil, "192.0.2.1") end,
           "bad argument #1 .*event name string expected, got nil",
           "record: no event")
error_like(function() audit.record("connection", "/24") end,
           'bad address "/24": a bare mask, not an address',
           "record: a bare mask")
error_like(function() audit.record("connection", "192.0.2.0/24") end,
           'bad address "192.0.2.0/24": the block 192.0.2.0/24, not an '
           .. 'address', "record: a block")
error_like(function() audit.record("connection", "192.0.2.1", -1) end,
           "bad argument #3 .*the count must be 0 or more",
           "record: a negative count")
error_like(function() audit.record("connection", "192.0.2.1", 1.5) end,
           "bad argument #3 .*number has no integer representation",
           "record: a fractional count")
error_like(function() audit.set_peer("192.0.2.300") end,
           'msys.audit.set_peer: bad cidr "192.0.2.300"',
           "set_peer: a bad address")
error_like(function() audit.set_peer("/24") end,
           'bad address "/24": a bare mask', "set_peer: a bare mask")
error_like(function() audit.set_peer(3232235521) end,
           "bad argument #1 .*address string or nil expected, got number",
           "set_peer: a number")
error_like(function() audit.session_open("192.0.2.1", ("s"):rep(33)) end,
           "msys.audit.session_open: bad service name", "a long service")
error_like(function() audit.session_close("::/0") end,
           "the block ::/0, not an address", "session_close: a block")
audit.set_peer(nil)
error_like(function() audit.record("connection") end,
           "msys.audit.record: no address given and no current connection",
           "record: no address and no peer")
error_like(function() audit.session_open() end,
           "no address given and no current connection",
           "session_open: no address and no peer")
is(4, C(M, "192.0.2.1"), "and the failed calls counted nothing")
audit.set_peer("192.0.2.1")
audit.record("connection")
is(5, C(M, "192.0.2.1"), "record with no address counts the peer")

-- The reference page's example script, unchanged, with stand-ins for
-- the host's msys.core and msys.extended.message.
package.preload["msys.core"] = function()
    msys.core = { VALIDATE_CONT = 0, VALIDATE_DONE = 1 }
    return msys.core
end
package.preload["msys.extended.message"] = function() return {} end
local registered = {}
msys.registerModule = function(name, mod) registered[name] = mod end
local chunk = assert(loadfile(tap.srcdir("../lua/policies/seed_example.lua")))
tap.lives_ok(chunk, "the reference page's example script loads")
local mod = registered.validate_mailfrom
ok(mod ~= nil, "and registers its module")
local res = tap.lives_ok(function()
    return mod:validate_mailfrom("<a@example.com>", {}, {})
end, "its validate_mailfrom runs against the store")
is(1, res, "and returns VALIDATE_DONE")

-- Counts that do not fit a Lua integer raise rather than wrap.
audit.record("connection", "10.255.255.1", math.maxinteger)
is(math.maxinteger, C(M, "10.255.255.1"), "math.maxinteger fits")
audit.record("connection", "10.255.255.1", 1)
error_like(function() return C(M, "10.255.255.1") end,
           "the count 9223372036854775808 does not fit a Lua integer",
           "2^63 raises")

-- Without a configuration: require works, every call raises.
local code = [[
local a = require("msys.audit")
print("required")
for _, f in ipairs({
    function() return a.connections("60,1", "192.0.2.1") end,
    function() return a.receptions("60,1", "192.0.2.1") end,
    function() return a.inbound_session_count("192.0.2.1") end,
    function() a.record("connection", "192.0.2.1") end,
    function() a.session_open("192.0.2.1") end }) do
    print(select(2, pcall(f)))
end
a.set_peer("192.0.2.1")
print("peer set")
]]
local function lua(env, src)
    return tap.run(env .. " " .. tap.shquote(tap.interpreter()) .. " -e "
                   .. tap.shquote(src))
end
local out, status = lua("INBOUND_AUDIT_CONF=" .. tap.shquote(dir
                        .. "/missing.conf"), code)
is(0, status, "missing configuration: the process exits normally")
like(out, "^required\n", "require succeeds")
local _, n = out:gsub("the inbound_audit module is not configured: [^\n]*"
                      .. "missing.conf: No such file or directory\n", "")
is(5, n, "each of five calls raises 'not configured' with the reason")
like(out, "\npeer set\n$", "set_peer needs no configuration")

local broken = dir .. "/broken.conf"
local f = assert(io.open(broken, "w"))
f:write('inbound_audit {\n  store = "' .. dir .. '/s2"\n  monitors = '
        .. '{"60,0x"}\n}\n')
f:close()
out, status = lua("INBOUND_AUDIT_CONF=" .. tap.shquote(broken), code)
is(0, status, "broken configuration: the process exits normally")
_, n = out:gsub("the inbound_audit module is not configured: [^\n]*"
                .. "broken.conf:%d+: [^\n]+\n", "")
is(5, n, "each call raises 'not configured' with file and line")
ok(not out:find(dir, 1, true),
   "the messages name the file but never the paths of the system")

out, status = lua("INBOUND_AUDIT_CONF=" .. tap.shquote(dir .. "/missing.conf"),
                  [[local a = require("msys.audit")
                    local ok, e = pcall(a.connections, "60,1", "192.0.2.1")
                    os.exit(ok and 1 or 0)]])
is(0, status, "a failed call leaves the state usable (no crash)")

tap.done_testing()
