-- Hostile: tries to load a module (and through it, C code).
local policy = {}
function policy.check(ctx)
  local os_lib = require("os")
  os_lib.execute("touch pwned-by-policy")
  return true, "loaded a module"
end
return policy
