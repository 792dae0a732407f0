-- limit_24.lua - refuse a /24 that made too many connections lately
--
-- A Momentum policy script for inaudit-policy (or any host that provides
-- msys.core, msys.registerModule and msys.audit).  At connect it counts
-- the connections of the connecting address's /24 (an IPv6 peer's /48)
-- over the last five minutes: windows 0 to 4 of the "60,10" monitor, the
-- current minute and the four before it.  The connection being made is
-- already counted when the hook runs.  Above the limit the connection is
-- refused with 421 and dropped; a block at or under it goes on.
--
-- The limit is INAUDIT_LIMIT_24 from the environment, 100 by default.
-- The configuration must have the "60,10" monitor (the sample's does).
--
-- SPDX-License-Identifier: MIT

require("msys.core")
require("msys.audit")

local LIMIT = math.tointeger(tonumber(os.getenv("INAUDIT_LIMIT_24") or ""))
    or 100
local MONITOR = "60,10"

local mod = {}

function mod:validate_connect(ac, vctx)
    local mask = ac.remote_ip:find(":", 1, true) and "/48" or "/24"
    local n = msys.audit.connections(MONITOR,
                                     { cidr = mask, startv = 0, endv = 4 })
    if n > LIMIT then
        vctx:disconnect(421, ("4.7.0 too many connections from your %s: "
                              .. "%d in 5 minutes, limit %d"):format(mask, n,
                                                                    LIMIT))
        return msys.core.VALIDATE_DONE
    end
    return msys.core.VALIDATE_CONT
end

msys.registerModule("limit_24", mod)
