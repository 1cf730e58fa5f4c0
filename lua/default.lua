-- The built-in policy: exactly upstream livenessprobe's verdict.
-- A Probe error or a timeout fails the check with upstream's text; ready=false
-- fails it too (upstream does not tell "initializing" from "unhealthy");
-- ready absent counts as ready, as the CSI spec says.
local policy = {}

function policy.check(ctx)
  local r = ctx.probe()
  if not r.ok then
    return false, r.error
  end
  if r.ready == false then
    return false, "driver responded but is not ready"
  end
  return true, "ok"
end

return policy
