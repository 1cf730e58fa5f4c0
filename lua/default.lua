-- The built-in policy: exactly upstream livenessprobe's verdict on /healthz.
-- A Probe error or a timeout fails the check with upstream's text; ready=false
-- fails it too (upstream does not tell "initializing" from "unhealthy");
-- ready absent counts as ready, as the CSI spec says.
-- /readyz asks the same of one Probe; /startupz only that a Probe has
-- answered OK once (whatever ready says) since the sidecar started.
local policy = {}

local not_ready = "driver responded but is not ready"

function policy.check(ctx)
  local r = ctx.probe()
  if not r.ok then
    return false, r.error
  end
  ctx.state.started = true
  if r.ready == false then
    return false, not_ready
  end
  return true, "ok"
end

policy.ready = policy.check

function policy.startup(ctx)
  if ctx.state.started then
    return true, "ok"
  end
  local r = ctx.probe()
  if not r.ok then
    return false, r.error
  end
  ctx.state.started = true
  return true, "ok"
end

return policy
