-- policy-hooks.lua - a policy for t/65-policy.t that uses every hook
--
-- Each hook decides from its arguments, so the replay file's answers are
-- known; mailfrom and connect report counts in their reply text, so the
-- host's recording shows in its output.
--
-- SPDX-License-Identifier: MIT

require("msys.core")
require("msys.audit")
require("msys.extended.message")
require("msys.extended.vctx")
require("msys.extended.ac")

local core = msys.core
local mod = {}

function mod:validate_connect(ac, vctx)
    if ac.remote_ip == "192.0.2.66" then
        vctx:disconnect(421, "4.7.0 not from you")
        return core.VALIDATE_DONE
    end
    vctx:set(core.VCTX_CONN, "seen", "connect")
    return core.VALIDATE_CONT
end

function mod:validate_ehlo(str, ac, vctx)
    vctx:set(core.VCTX_CONN, "helo", str)
    if str == "bad.example" then
        vctx:set_code(550, "5.7.1 bad helo")
    elseif str == "drop.example" then
        vctx:disconnect(421, "4.7.1 bad helo, bye")
    end
    return core.VALIDATE_CONT
end

function mod:validate_mailfrom(str, ac, vctx)
    if str == "<spam@example.com>" then
        vctx:set_code(550, "5.7.1 sender refused")
        return core.VALIDATE_DONE
    end
    vctx:set(core.VCTX_MESS, "from", str)
    vctx:set_code(250, ("2.1.0 ok conn=%d/24=%d rcpt=%d rejn=%d sess=%d "
                        .. "helo=%s"):format(
        msys.audit.connections("60,10"),
        msys.audit.connections("60,10", "/24"),
        msys.audit.receptions("60,10", { cidr = "/24" }),
        msys.audit.rejections("60,10", "/24"),
        ac:inbound_session_count("/24"),
        tostring(vctx:get(core.VCTX_CONN, "helo"))))
    return core.VALIDATE_CONT
end

function mod:validate_rcptto(msg, str, ac, vctx)
    if str == "<nobody@example.org>" then
        vctx:set_code(550, "5.1.1 no such user")
    elseif str == "<error@example.org>" then
        error("a hook that fails")
    elseif str == "<hangup@example.org>" then
        vctx:disconnect(421, "4.7.0 enough")
    elseif msg:rcptto() ~= str
           or msg:mailfrom() ~= vctx:get(core.VCTX_MESS, "from") then
        vctx:set_code(451, "4.3.0 msg and vctx disagree")
    end
    return core.VALIDATE_CONT
end

function mod:validate_data(msg, ac, vctx)
    if msg:mailfrom() == "<big@example.com>" then
        vctx:set_code(452, "4.3.1 \"too big\", try later")
    end
    return core.VALIDATE_CONT
end

msys.registerModule("hooks", mod)

-- A second module: its connect hook runs after the first one's, unless
-- the first returned VALIDATE_DONE.
local second = {}

function second:validate_connect(ac, vctx)
    vctx:set_code(220, ("hello %s, sessions=%d seen=%s"):format(
        ac.remote_ip, ac:inbound_session_count(),
        tostring(vctx:get(core.VCTX_CONN, "seen"))))
    return core.VALIDATE_CONT
end

msys.registerModule("second", second)
