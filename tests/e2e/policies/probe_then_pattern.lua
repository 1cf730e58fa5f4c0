-- Hostile: probes first, then runs away inside C: the worker is killed and
-- the fallback reuses the probe result.
local policy = {}
function policy.check(ctx)
  ctx.probe()
  return string.find(("a"):rep(150), ".-.-.-.-b") ~= nil, "matched"
end
return policy
