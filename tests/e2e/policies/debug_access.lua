-- Hostile: reaches for the debug library (registry, hooks, upvalues).
local policy = {}
function policy.check(ctx)
  debug.sethook()
  local registry = debug.getregistry()
  return true, tostring(registry)
end
return policy
