-- Hostile: a tight loop with no probe. The instruction budget (or the
-- check deadline) must stop it; the built-in policy then probes once.
local policy = {}
function policy.check(ctx)
  while true do end
end
return policy
