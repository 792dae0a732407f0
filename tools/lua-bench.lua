#!/usr/bin/env lua5.4
-- lua-bench.lua - the cost of one msys.audit call from Lua
--
-- Times a loop of calls of each common form (CPU time, os.clock) and
-- prints nanoseconds per call, the loop's own cost subtracted.  Run it
-- with INBOUND_AUDIT_CONF naming a configuration with the "60,10"
-- monitor and 32/24/16 IPv4 granularities, and with LUA_CPATH finding the
-- module, e.g. from the build tree:
--
--   LUA_CPATH='t/cmod/?.so;;' INBOUND_AUDIT_CONF=/tmp/b/ia.conf \
--       lua5.4 tools/lua-bench.lua [CALLS]
--
-- It records a few thousand events into that store first.
--
-- SPDX-License-Identifier: MIT

local audit = require("msys.audit")
local N = math.tointeger(tonumber(arg[1] or "")) or 1000000

-- Some traffic: 200 hosts in 192.0.2.0/24, 50 in 198.51.100.0/24.
for i = 1, 200 do
    audit.record("connection", "192.0.2." .. i, i)
end
for i = 1, 50 do
    audit.record("connection", "198.51.100." .. i, 3)
end
audit.set_peer("192.0.2.7")

local function time(f)
    local t = os.clock()
    f()
    return os.clock() - t
end

local base = time(function()
    local g = function() return 0 end
    for _ = 1, N do g("60,10", "192.0.2.7") end
end)

local cases = {
    { "connections(\"60,10\") (the peer, one window)", function()
        local c = audit.connections
        for _ = 1, N do c("60,10") end
    end },
    { "connections(\"60,10\", \"192.0.2.7\")", function()
        local c = audit.connections
        for _ = 1, N do c("60,10", "192.0.2.7") end
    end },
    { "connections(\"60,10\", \"192.0.2.0/24\")", function()
        local c = audit.connections
        for _ = 1, N do c("60,10", "192.0.2.0/24") end
    end },
    { "connections(\"60,10\", {cidr = \"/24\", startv = 0, endv = 4})",
      function()
        local c = audit.connections
        local opt = { cidr = "/24", startv = 0, endv = 4 }
        for _ = 1, N do c("60,10", opt) end
    end },
    { "connections(\"60,10\", \"192.0.2.0/28\") (16 /32 counters)",
      function()
        local c = audit.connections
        for _ = 1, N do c("60,10", "192.0.2.0/28") end
    end },
    { "inbound_session_count(\"/24\")", function()
        local s = audit.inbound_session_count
        for _ = 1, N do s("/24") end
    end },
}

print(("%d calls each; %s"):format(N, audit._VERSION))
for _, case in ipairs(cases) do
    local t = time(case[2]) - base
    print(("%8.0f ns  %s"):format(t / N * 1e9, case[1]))
end
