#!/usr/bin/env lua5.4
-- 65-policy.t - the policy host: decisions on replay files, recording,
-- the reference page's example script, the /24 limit, errors
--
-- The host (tools/inaudit-policy) runs under libfaketime with the clock
-- file of tap.setup, so every session of a run falls in one minute and
-- the decisions below are exact.  After a run, this script reads the
-- store through msys.audit to check what the host recorded.
--
-- SPDX-License-Identifier: MIT

local tap = require("tap")
local ok, is, like = tap.ok, tap.is, tap.like

local T0 = 1700000400
local dir, conf = tap.setup({ clock = T0, body = [[
  monitors = {"60,1", "60,10", "300,12"}
  ipv4_prefixes = {32, 24, 16}
  ipv6_prefixes = {128, 64, 48}
]] })

local host = os.getenv("INA_TEST_BUILDDIR") .. "/../tools/inaudit-policy"
local data = tap.srcdir("data/")
local policies = tap.srcdir("../lua/policies/")
local q = tap.shquote

-- policy - run the host; returns stdout, stderr and the exit status
local function policy(args, input, env)
    local errf = dir .. "/stderr"
    local cmd = (env or "") .. " " .. q(host) .. " -c " .. q(conf) .. " "
        .. args .. " 2>" .. q(errf)
    if input ~= nil then
        local f = assert(io.open(dir .. "/stdin", "w"))
        f:write(input)
        f:close()
        cmd = cmd .. " <" .. q(dir .. "/stdin")
    end
    local p = io.popen(cmd)
    local out = p:read("a")
    local _, how, code = p:close()
    local f = assert(io.open(errf))
    local err = f:read("a")
    f:close()
    return out, err, how == "exit" and code or 128 + code
end

local audit = require("msys.audit")
local C, R, J = audit.connections, audit.receptions, audit.rejections
local S = audit.inbound_session_count

-- Every hook, reply and sequence rule on one replay file.
local out, err, status = policy("-s " .. q(data .. "policy-hooks.lua")
                                .. " -r " .. q(data .. "policy.replay"))
is(0, status, "the hooks replay runs (exit 0)")
is("", err, "and says nothing on stderr")
is([[
192.0.2.1 connect accept 220 "hello 192.0.2.1, sessions=1 seen=connect"
192.0.2.1 ehlo accept
192.0.2.1 mailfrom accept 250 "2.1.0 ok conn=1/24=1 rcpt=0 rejn=0 sess=1 helo=mx.example.net"
192.0.2.1 rcptto accept
192.0.2.1 rcptto reject 550 "5.1.1 no such user"
192.0.2.1 data accept
192.0.2.2 connect accept 220 "hello 192.0.2.2, sessions=1 seen=connect"
192.0.2.2 ehlo reject 550 "5.7.1 bad helo"
192.0.2.2 mailfrom reject 550 "5.7.1 sender refused"
192.0.2.2 rcptto reject 503 "5.5.1 need MAIL command"
192.0.2.2 data reject 503 "5.5.1 need MAIL command"
192.0.2.2 mailfrom accept 250 "2.1.0 ok conn=1/24=2 rcpt=1 rejn=1 sess=2 helo=bad.example"
192.0.2.2 rcptto reject 550 "5.1.1 no such user"
192.0.2.2 data reject 554 "5.5.1 no valid recipients"
192.0.2.1 mailfrom accept 250 "2.1.0 ok conn=1/24=2 rcpt=1 rejn=2 sess=2 helo=mx.example.net"
192.0.2.1 rcptto accept
192.0.2.1 data reject 452 "4.3.1 \"too big\", try later"
192.0.2.66 connect disconnect 421 "4.7.0 not from you"
[2001:db8::5] connect accept 220 "hello [2001:db8::5], sessions=1 seen=connect"
[2001:db8::5] ehlo disconnect 421 "4.7.1 bad helo, bye"
192.0.2.3 connect accept 220 "hello 192.0.2.3, sessions=1 seen=connect"
192.0.2.3 data reject 503 "5.5.1 need MAIL command"
192.0.2.3 rcptto reject 503 "5.5.1 need MAIL command"
192.0.2.3 mailfrom accept 250 "2.1.0 ok conn=1/24=4 rcpt=1 rejn=4 sess=1 helo=nil"
192.0.2.3 rcptto disconnect 421 "4.7.0 enough"
]], out, "every decision is the expected one")

-- What the host recorded.
is(4, C("60,10", "192.0.2.0/24"), "4 connections from 192.0.2.0/24")
is(1, R("60,10", "192.0.2.0/24"), "1 reception: the one accepted DATA")
is(1, R("60,10", "192.0.2.1"), "from 192.0.2.1")
is(5, J("60,10", "192.0.2.0/24"),
   "5 rejections: refused MAIL, DATA without recipients, DATA 452, and "
   .. "two disconnects")
is(2, J("60,10", "192.0.2.2"), "2 of them from 192.0.2.2")
is(0, J("60,10", "192.0.2.1") - 1, "1 from 192.0.2.1 (the 452)")
is(1, C("60,10", "2001:db8::/48"), "1 IPv6 connection")
is(1, J("60,10", "2001:db8::5"), "and its disconnect is a rejection")
is(0, S("192.0.2.0/24"), "every session is closed at the end")
is(0, S("::/0"), "the IPv6 one too")

-- A hook that raises: 451, a message on stderr, exit 1.
out, err, status = policy("-s " .. q(data .. "policy-hooks.lua"),
                          "192.0.2.9 connect\n192.0.2.9 mailfrom <x@y>\n"
                          .. "192.0.2.9 rcptto <error@example.org>\n"
                          .. "192.0.2.9 rcptto <bob@example.org>\n")
is(1, status, "a failing hook makes the exit status 1")
like(out, '\n192.0.2.9 rcptto reject 451 "4.3.0 policy error"\n'
     .. '192.0.2.9 rcptto accept\n$',
     "its step is refused with 451, and the session goes on")
like(err, "^inaudit%-policy: %(stdin%):3: 192.0.2.9 rcptto: "
     .. "[^\n]*policy%-hooks.lua:%d+: a hook that fails\n",
     "stderr names the input line, the step and the error")

-- The reference page's example script, unchanged.
local seed = policies .. "seed_example.lua"
local replay = [[
198.51.100.1 connect
198.51.100.1 ehlo a.example
198.51.100.1 mailfrom <a@a.example>
198.51.100.1 rcptto <b@example.org>
198.51.100.1 data
198.51.100.1 quit
198.51.100.2 connect
198.51.100.2 mailfrom <c@a.example>
198.51.100.2 quit
]]
out, err, status = policy("-s " .. q(seed), replay)
is(0, status, "the reference page's example runs under the host")
is("", err, "without a word on stderr")
is([[
198.51.100.1 connect accept
198.51.100.1 ehlo accept
198.51.100.1 mailfrom accept
198.51.100.1 rcptto accept
198.51.100.1 data accept
198.51.100.2 connect accept
198.51.100.2 mailfrom accept
]], out, "and accepts everything (it only reads counts)")
is(2, C("60,1", "198.51.100.0/24"), "its sessions were recorded")
is(1, R("60,1", "198.51.100.0/24"), "with the reception")
local f = assert(io.open(seed))
local text = f:read("a")
f:close()
like(text, '^require%("msys.core"%);\nrequire%("msys.audit"%);\n'
     .. 'require%("msys.extended.message"%);\n\nlocal mod = {};\n\n'
     .. 'function mod:validate_mailfrom%(str, ac, vctx%)\n'
     .. '  local conn = msys.audit.connections%("60,1"%);\n'
     .. '  local rcpt = msys.audit.receptions%("60,1"%);\n'
     .. '  local rejn = msys.audit.rejections%("60,1"%);\n'
     .. '  return msys.core.VALIDATE_DONE;\nend\n\n'
     .. 'msys.registerModule%("validate_mailfrom", mod%);\n$',
     "the script is the page's example, byte for byte")

-- The /24 limit, beside the example script, as the demo runs them.
local limit = policies .. "limit_24.lua"
local burst = ""
for i = 1, 5 do
    burst = burst .. ("203.0.113.%d connect\n203.0.113.%d quit\n"):format(i, i)
end
burst = burst .. "203.0.114.1 connect\n2001:db8:1::1 connect\n"
out, err, status = policy("-s " .. q(seed) .. " -s " .. q(limit), burst,
                          "INAUDIT_LIMIT_24=3")
is(0, status, "limit_24.lua runs")
is([[
203.0.113.1 connect accept
203.0.113.2 connect accept
203.0.113.3 connect accept
203.0.113.4 connect disconnect 421 "4.7.0 too many connections from your /24: 4 in 5 minutes, limit 3"
203.0.113.5 connect disconnect 421 "4.7.0 too many connections from your /24: 5 in 5 minutes, limit 3"
203.0.114.1 connect accept
2001:db8:1::1 connect accept
]], out, "the 4th and 5th connection of a /24 are refused, others not")
is(2, J("60,10", "203.0.113.0/24"), "the two refusals are rejections")

-- Four minutes on, the burst is still within five minutes; five
-- minutes on it is not.
tap.set_clock(T0 + 240)
out = policy("-s " .. q(limit), "203.0.113.9 connect\n", "INAUDIT_LIMIT_24=3")
is('203.0.113.9 connect disconnect 421 "4.7.0 too many connections from '
   .. 'your /24: 6 in 5 minutes, limit 3"\n', out,
   "T0+240: windows 0..4 still hold the burst")
tap.set_clock(T0 + 300)
out = policy("-s " .. q(limit), "203.0.113.9 connect\n", "INAUDIT_LIMIT_24=3")
is("203.0.113.9 connect accept\n", out,
   "T0+300: the burst's minute has left the last 5 minutes")

-- Generated sessions.
out, err, status = policy("-s " .. q(seed) .. " -s " .. q(limit)
                          .. " -g 40 -S 7 -q", nil, "INAUDIT_LIMIT_24=5")
is(0, status, "40 generated sessions run")
like(out, "^sessions=40 steps=%d+ accepted=%d+ rejected=%d+ "
     .. "disconnected=[1-9]%d* errors=0\n$",
     "-q prints the summary, and the busy /24 is refused")
local again = policy("-s " .. q(seed) .. " -g 40 -S 7")
local _, connects = again:gsub(" connect accept\n", "")
is(40, connects, "without -q, one connect line per session")
local other = policy("-s " .. q(seed) .. " -g 40 -S 8")
ok(other ~= again, "another seed makes other sessions")
is(again, policy("-s " .. q(seed) .. " -g 40 -S 7"),
   "the same seed makes the same sessions")

-- Input errors: the line is named, the run stops, exit 1.
local bad = {
    { "192.0.2.1 helo x\n", ":1: unknown phase \"helo\" %(valid: connect, "
      .. "ehlo, mailfrom, rcptto, data, quit%)" },
    { "192.0.2.1\n", ":1: no phase after \"192.0.2.1\"" },
    { "192.0.2.1 connect\n192.0.2.1 mailfrom\n", ":2: mailfrom needs an "
      .. "argument" },
    { "192.0.2.1 connect now\n", ":1: connect takes no argument %(got "
      .. "\"now\"%)" },
    { "# comment\n\n192.0.2.1 ehlo x\n", ":3: 192.0.2.1 has no open "
      .. "session %(connect first%)" },
    { "192.0.2.1 connect\n192.0.2.1 connect\n", ":2: 192.0.2.1 already "
      .. "has an open session" },
    { "300.1.1.1 connect\n", ":1: bad peer: bad cidr \"300.1.1.1\"" },
    { "192.0.2.0/24 connect\n", ":1: bad peer: bad address " },
}
for _, case in ipairs(bad) do
    out, err, status = policy("-s " .. q(seed), case[1] .. "192.0.2.99 "
                              .. "connect\n")
    is(1, status, ("bad input \"%s\": exit 1"):format(
        case[1]:gsub("\n", "\\n")))
    like(err, "^inaudit%-policy: %(stdin%)" .. case[2],
         "and the message names the line")
    ok(not out:find("192.0.2.99"), "and the run stops there")
end
out, err, status = policy("-s " .. q(seed) .. " -r " .. q(dir .. "/none"))
is(1, status, "a missing replay file: exit 1")
like(err, "none: No such file or directory", "with the reason")

-- Usage and setup errors.
out, err, status = policy("", "")
is(2, status, "no script: exit 2")
like(err, "^usage: inaudit%-policy", "with the synopsis")
_, _, status = policy("-s " .. q(seed) .. " -g 3 -r x")
is(2, status, "-g and -r together: exit 2")
_, err, status = policy("-s " .. q(seed) .. " -g 3x")
is(2, status, "-g 3x: exit 2")
like(err, "%-g: \"3x\" is not a number", "naming the option")
out, err, status = policy("-s " .. q(seed) .. " -c " .. q(dir .. "/no.conf"),
                          "")
is(1, status, "no configuration: exit 1")
like(err, "the inbound_audit module is not configured: .*no.conf: No such "
     .. "file", "saying why")
local broken = dir .. "/broken.lua"
f = assert(io.open(broken, "w"))
f:write("local x = \n")
f:close()
out, err, status = policy("-s " .. q(broken), "")
is(1, status, "a script that does not load: exit 1")
like(err, "broken.lua:%d+:", "naming the script and line")
out, err, status = policy("-V")
is(0, status, "-V: exit 0")
like(out, "^inbound%-audit %d", "and prints the version")

tap.done_testing()
