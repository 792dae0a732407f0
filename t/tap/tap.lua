-- tap.lua - a small TAP producer for the Lua tests
--
-- The names follow the C helper (t/tap/basic.h): plan, ok, is, like,
-- error_like, diag, bail, skip_all, done_testing.  Output goes to stdout.
-- done_testing() (or the end of a planned run) exits non-zero if any test
-- failed or the plan was not met.  tmpdir() gives the test a private
-- scratch directory that done_testing() removes.
--
-- SPDX-License-Identifier: MIT

local tap = {}

local planned, run, failed = nil, 0, 0
local scratch, owned = nil, false

-- tap.plan - announce how many tests will run
function tap.plan(n)
    planned = n
    io.write("1..", n, "\n")
end

-- tap.diag - a diagnostic line (or lines) on stdout
function tap.diag(msg)
    for line in (tostring(msg) .. "\n"):gmatch("([^\n]*)\n") do
        io.write("# ", line, "\n")
    end
end

-- tap.ok - one test; returns cond so callers can add diagnostics
function tap.ok(cond, desc)
    run = run + 1
    io.write(cond and "ok " or "not ok ", run, " - ", desc or "", "\n")
    if not cond then
        failed = failed + 1
        local info = debug.getinfo(2, "Sl")
        if info and info.short_src == debug.getinfo(1, "S").short_src then
            info = debug.getinfo(3, "Sl")
        end
        if info then
            tap.diag(("  Failed test at %s line %d"):format(info.short_src,
                info.currentline))
        end
    end
    return cond
end

-- tap.is - compare with ==, values and their types
function tap.is(want, seen, desc)
    local same = want == seen and math.type(want) == math.type(seen)
    if not tap.ok(same, desc) then
        tap.diag(("  wanted: %s (%s)\n    seen: %s (%s)"):format(
            tostring(want), math.type(want) or type(want),
            tostring(seen), math.type(seen) or type(seen)))
    end
    return same
end

-- tap.like - a string matching a Lua pattern
function tap.like(seen, pattern, desc)
    local m = type(seen) == "string" and seen:find(pattern) ~= nil
    if not tap.ok(m, desc) then
        tap.diag(("  %s\n  does not match '%s'"):format(tostring(seen),
            pattern))
    end
    return m
end

-- tap.error_like - fn raises an error whose message matches pattern
--
-- The pattern is a Lua pattern unless plain is true.  Returns the
-- message.
function tap.error_like(fn, pattern, desc, plain)
    local good, err = pcall(fn)
    local m = not good and type(err) == "string"
        and err:find(pattern, 1, plain) ~= nil
    if not tap.ok(m, desc) then
        if good then
            tap.diag("  no error was raised")
        else
            tap.diag(("  %s\n  does not match '%s'"):format(tostring(err),
                pattern))
        end
    end
    return err
end

-- tap.lives_ok - fn raises no error; returns its first result
function tap.lives_ok(fn, desc)
    local good, res = pcall(fn)
    if not tap.ok(good, desc) then
        tap.diag("  raised: " .. tostring(res))
    end
    return res
end

-- tap.skip - record n (default 1) skipped tests
function tap.skip(why, n)
    for _ = 1, n or 1 do
        run = run + 1
        io.write("ok ", run, " # skip ", why, "\n")
    end
end

-- tap.shquote - quote a string for sh
function tap.shquote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- tap.tmpdir - a private scratch directory (absolute), made on first use
function tap.tmpdir()
    if scratch == nil then
        local base = os.getenv("INA_TEST_BUILDDIR") or "."
        local p = io.popen("mktemp -d \"$(cd " .. tap.shquote(base)
            .. " && pwd)/tmp.XXXXXXXX\"")
        scratch = p:read("l")
        p:close()
        if scratch == nil or scratch == "" then
            tap.bail("cannot make a scratch directory under " .. base)
        end
        owned = true
    end
    return scratch
end

-- tap.cleanup - remove the scratch directory, if this process made it
function tap.cleanup()
    if scratch ~= nil and owned then
        os.execute("rm -rf " .. tap.shquote(scratch))
    end
    scratch = nil
end

-- tap.interpreter - the command that runs this script's interpreter
function tap.interpreter()
    local i = -1
    while arg and arg[i - 1] ~= nil do
        i = i - 1
    end
    return arg and arg[i] or "lua5.4"
end

-- tap.run - run a shell command; returns its output (stdout and stderr
-- together, unless the command redirects them) and its exit status
function tap.run(cmd)
    local p = io.popen(cmd .. " 2>&1")
    local out = p:read("a")
    local _, how, code = p:close()
    return out, how == "exit" and code or 128 + code
end

-- tap.faketime - a command prefix that freezes the clock at Unix time t
--
-- Skips the whole test when Debian's faketime is not installed.
function tap.faketime(t)
    return "TZ=UTC LD_PRELOAD=" .. tap.shquote(tap.faketime_lib())
        .. " FAKETIME=" .. tap.shquote(os.date("!%Y-%m-%d %H:%M:%S", t))
        .. " "
end

-- tap.faketime_lib - the path of libfaketime, preloaded directly
--
-- Not through faketime(1): the wrapper names a semaphore after its pid
-- and fails when a recycled pid meets one a killed run left behind.
-- Skips the whole test when Debian's faketime is not installed.
function tap.faketime_lib()
    -- What libfaketime left in /dev/shm for dead pids would meet a
    -- recycled pid (tap/faketime-sweep.sh).
    tap.run("sh " .. tap.shquote((os.getenv("INA_TEST_SRCDIR") or "t")
        .. "/tap/faketime-sweep.sh"))
    local lib = tap.run("for f in /usr/lib/*/faketime/libfaketime.so.1 "
        .. "/usr/lib/faketime/libfaketime.so.1; do [ -f \"$f\" ] && "
        .. "echo \"$f\" && break; done; true"):match("^(/[^\n]+)")
    if not lib then
        tap.skip_all("libfaketime is not installed (apt-get install faketime)")
    end
    return lib
end

-- tap.set_clock - move the clock of a test set up with opts.clock
function tap.set_clock(t)
    local f = assert(io.open(assert(tap.clock_file, "no clock file"), "w"))
    f:write(os.date("!%Y-%m-%d %H:%M:%S", t), "\n")
    f:close()
end

-- The configuration the Lua tests use unless they say otherwise.
tap.CONF_BODY = [[
  monitors = {"60,1", "60,10", "300,12", "3600,24"}
  ipv4_prefixes = {32, 24, 16}
  ipv6_prefixes = {64, 48}
]]

-- tap.write_conf - write a configuration file for a store under dir
function tap.write_conf(path, store, body)
    local f = assert(io.open(path, "w"))
    f:write("inbound_audit {\n  store = \"", store, "\"\n",
        "  map_size = \"16M\"\n", body or tap.CONF_BODY, "}\n")
    f:close()
    return path
end

-- tap.setup - run this script again in the environment a test needs
--
-- The first run makes the scratch directory and a configuration for a
-- store in it (opts.body: the options besides store and map_size), then
-- runs the script again with INBOUND_AUDIT_CONF set and, if opts.time is
-- given, the clock frozen at that Unix time by faketime (or, with
-- opts.clock, frozen at that time until tap.set_clock() moves it); it
-- removes the directory and exits with the second run's status.  In the
-- second run, setup returns the scratch directory and the configuration's
-- path.
function tap.setup(opts)
    opts = opts or {}
    if os.getenv("INA_TEST_CHILD") then
        scratch, owned = os.getenv("INA_TEST_TMP"), false
        tap.clock_file = os.getenv("FAKETIME_TIMESTAMP_FILE")
        return scratch, os.getenv("INBOUND_AUDIT_CONF")
    end
    local dir = tap.tmpdir()
    local conf = tap.write_conf(dir .. "/inbound_audit.conf",
        dir .. "/store", opts.body)
    local clock = ""
    if opts.time then
        clock = tap.faketime(opts.time)
    elseif opts.clock then
        -- libfaketime rereads this file at every clock reading.
        local preload = tap.faketime_lib()
        tap.clock_file = dir .. "/clock"
        tap.set_clock(opts.clock)
        clock = ("TZ=UTC LD_PRELOAD=%s FAKETIME_TIMESTAMP_FILE=%s "
            .. "FAKETIME_NO_CACHE=1 "):format(tap.shquote(preload),
            tap.shquote(tap.clock_file))
    end
    local cmd = ("INA_TEST_CHILD=1 INA_TEST_TMP=%s INBOUND_AUDIT_CONF=%s "
        .. "%s%s %s"):format(tap.shquote(dir), tap.shquote(conf), clock,
        tap.shquote(tap.interpreter()), tap.shquote(arg[0]))
    io.stdout:flush()
    local _, how, code = os.execute(cmd)
    tap.cleanup()
    os.exit(how == "exit" and code or 128 + code)
end

-- tap.bail - stop the whole run
function tap.bail(msg)
    io.write("Bail out! ", tostring(msg), "\n")
    tap.cleanup()
    os.exit(255)
end

-- tap.skip_all - skip the whole test file
function tap.skip_all(why)
    io.write("1..0 # skip ", why, "\n")
    tap.cleanup()
    os.exit(0)
end

-- tap.done_testing - end the run; exits with the failure status
function tap.done_testing()
    if planned == nil then
        io.write("1..", run, "\n")
    elseif planned ~= run then
        tap.diag(("Looks like you planned %d tests but ran %d."):format(
            planned, run))
    end
    if failed > 0 then
        tap.diag(("Looks like you failed %d test%s of %d."):format(failed,
            failed == 1 and "" or "s", run))
    end
    tap.cleanup()
    io.stdout:flush()
    os.exit((failed == 0 and (planned == nil or planned == run)) and 0 or 1)
end

-- tap.srcdir, tap.builddir - where the test's inputs and builds are
function tap.srcdir(name)
    return (os.getenv("INA_TEST_SRCDIR") or "t") .. "/" .. name
end

function tap.builddir(name)
    return (os.getenv("INA_TEST_BUILDDIR") or "t") .. "/" .. name
end

return tap
