require("msys.core");
require("msys.audit");
require("msys.extended.message");

local mod = {};

function mod:validate_mailfrom(str, ac, vctx)
  local conn = msys.audit.connections("60,1");
  local rcpt = msys.audit.receptions("60,1");
  local rejn = msys.audit.rejections("60,1");
  return msys.core.VALIDATE_DONE;
end

msys.registerModule("validate_mailfrom", mod);
