-- Hostile: probes first, then loops: the fallback reuses that probe result.
local policy = {}
function policy.check(ctx)
  local r = ctx.probe()
  while r do end
end
return policy
