#!/usr/bin/env lua5.4
-- 41-lua-window.t - msys.audit window ranges across rollover and expiry
--
-- The script runs under libfaketime with a clock file (tap.setup's
-- opts.clock), so one Lua state sees the clock move: events are recorded
-- at known times, and window indices, ranges and the end of each
-- monitor's history are checked at known later times, at and around
-- window boundaries.  A second process, started at the same fake time,
-- reads and writes the same store.
--
-- SPDX-License-Identifier: MIT

local tap = require("tap")
local ok, is, error_like = tap.ok, tap.is, tap.error_like

-- 2023-11-14 22:20:00 UTC: a boundary of the 60 and 300 s windows,
-- 1200 s into an hour.
local T0 = 1700000400
tap.setup({ clock = T0 })

local audit = require("msys.audit")
local C = audit.connections
local A, B = "192.0.2.1", "198.51.100.1"

local function at(t)
    tap.set_clock(t)
    if os.time() ~= t then
        tap.bail(("the clock reads %d, not %d"):format(os.time(), t))
    end
end

local function range(mon, cidr, a, b)
    return C(mon, { cidr = cidr, startv = a, endv = b })
end

-- One event count per minute: 1, 2, 4, 8 in minutes 0 to 3.
at(T0 + 5);   audit.record("connection", A, 1)
at(T0 + 65);  audit.record("connection", A, 2)
at(T0 + 125); audit.record("connection", A, 4)
at(T0 + 185); audit.record("connection", A, 8)

at(T0 + 190)
is(8, C("60,10", A), "60,10 window 0 (default) holds minute 3's 8")
is(8, range("60,10", A, 0, 0), "0..0: 8")
is(4, range("60,10", A, 1, 1), "window 1: 4")
is(2, range("60,10", A, 2, 2), "window 2: 2")
is(1, range("60,10", A, 3, 3), "window 3: 1")
is(0, range("60,10", A, 4, 4), "window 4: 0")
is(15, range("60,10", A, 0, 3), "0..3: the sum 15")
is(6, range("60,10", A, 1, 2), "1..2: 6")
is(3, range("60,10", A, 2, 10), "2..10: 3")
is(15, range("60,10", A, 0, 10), "0..10: 15")
is(15, range("60,10", "192.0.2.0/24", 0, 3), "the /24 over 0..3: 15")
is(15, range("60,10", "192.0.2.0/30", 0, 3), "a /30 over 0..3: 15")
is(15, range("60,10", "192.0.0.0/16", 0, 3), "the /16 over 0..3: 15")
is(8, C("60,1", A), "60,1 window 0: 8")
is(4, range("60,1", A, 1, 1), "60,1 window 1: 4")
is(12, range("60,1", A, 0, 1), "60,1 0..1: 12, its whole history")
is(15, C("300,12", A), "300,12 window 0: all 15")
is(15, C("3600,24", A), "3600,24 window 0: all 15")
audit.set_peer(A)
is(15, C("60,10", { startv = 0, endv = 3 }), "the peer over 0..3: 15")
is(15, C("60,10", { cidr = "/24", startv = 0, endv = 3 }),
   "the peer's /24 over 0..3: 15")

-- Another process at the same time reads the same totals and writes.
local lua = tap.shquote(tap.interpreter())
local out, status = tap.run(lua .. " -e " .. tap.shquote([[
    local a = require("msys.audit")
    io.write(a.connections("60,10", {cidr = "192.0.2.1", endv = 3}), "\n")
    a.record("connection", "192.0.2.1", 16)
]]))
is(0, status, "a second process runs")
is("15\n", out, "and reads 15 over 0..3")
is(24, C("60,10", A), "its 16 land in window 0 here: 24")

-- Rollover at the exact second: 239 is minute 3, 240 minute 4.
at(T0 + 239); audit.record("connection", B, 1)
is(1, C("60,10", B), "T0+239: window 0 has 1")
at(T0 + 240); audit.record("connection", B, 2)
is(2, C("60,10", B), "T0+240: window 0 has the new minute's 2")
is(1, range("60,10", B, 1, 1), "and window 1 the old minute's 1")
is(3, range("60,10", B, 0, 1), "0..1: 3")
audit.session_open(A)
at(T0 + 299)
is(2, C("60,10", B), "T0+299: still minute 4, window 0 has 2")
is(3, C("300,12", B), "and 300,12 window 0 has all 3")
is(31, C("300,12", A), "and all 31 of the other address")
at(T0 + 300)
is(0, C("60,10", B), "T0+300: a new minute, window 0 is empty")
is(2, range("60,10", B, 1, 1), "window 1 has 2")
is(1, range("60,10", B, 2, 2), "window 2 has 1")
is(0, C("300,12", B), "and a new 300 s window: window 0 is empty")
is(3, range("300,12", B, 1, 1), "window 1 has 3")
is(31, range("300,12", A, 0, 12), "0..12 has all 31 of the other")

-- The end of the history: 60,10 keeps windows 0..10.
at(T0 + 665)
is(30, range("60,10", A, 0, 10), "T0+665: minute 0 is past window 10: 30")
is(2, range("60,10", A, 10, 10), "window 10 holds minute 1's 2")
is(24, range("60,10", A, 8, 8), "window 8 holds minute 3's 24")
error_like(function() return range("60,10", A, 11, 11) end,
           "window 11 out of range for monitor 60,10 %(valid: 0..10%)",
           "window 11 is out of range")
at(T0 + 725)
is(28, range("60,10", A, 0, 10), "T0+725: minute 1 has gone too: 28")
at(T0 + 785)
is(24, range("60,10", A, 0, 10), "T0+785: only minute 3 is left: 24")
at(T0 + 845)
is(0, range("60,10", A, 0, 10), "T0+845: nothing is left")
is(0, range("60,1", A, 0, 1), "nor on 60,1")
is(31, range("300,12", A, 2, 2), "300,12 window 2 holds all 31")
is(3, range("300,12", B, 2, 2), "and the other address's 3")
at(T0 + 3899)
is(31, range("300,12", A, 12, 12), "T0+3899: window 12 still holds 31")
at(T0 + 3900)
is(0, range("300,12", A, 0, 12), "T0+3900: 300,12 has let it go")

-- The hour: T0 is 1200 s into one, so it ends at T0+2400.
at(T0 + 2399)
is(31, C("3600,24", A), "T0+2399: 3600,24 window 0 holds 31")
at(T0 + 2400)
is(0, C("3600,24", A), "T0+2400: a new hour, window 0 is empty")
is(31, range("3600,24", A, 1, 1), "window 1 holds 31")
at(T0 + 2400 + 23 * 3600)
is(31, range("3600,24", A, 24, 24), "23 hours on: window 24 holds 31")
is(31, range("3600,24", A, 0, 24), "and 0..24 too")
at(T0 + 2400 + 24 * 3600)
is(0, range("3600,24", A, 0, 24), "24 hours on: it has gone")
is(0, range("3600,24", B, 0, 0), "the other address's hour has gone too")
audit.record("connection", B, 5)
is(5, C("3600,24", B), "5 recorded in the new hour")
is(5, range("60,10", B, 0, 10), "and on 60,10")

-- The session gauge is not windowed.
is(1, audit.inbound_session_count(A), "a session opened a day ago is open")
audit.session_close(A)
is(0, audit.inbound_session_count(A), "until it is closed")

tap.done_testing()
