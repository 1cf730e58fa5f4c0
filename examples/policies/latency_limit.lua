-- Latency limit: a driver whose Probe takes longer than LIMIT_SECONDS in
-- SLOW_CHECKS checks in a row is unhealthy, even though each answer came
-- back before the probe timeout. Errors fail at once, as upstream.
local LIMIT_SECONDS = 0.5
local SLOW_CHECKS = 3

local policy = {}

function policy.check(ctx)
  local r = ctx.probe()
  if not r.ok then
    return false, r.error
  end
  if r.ready == false then
    return false, "driver responded but is not ready"
  end
  if r.seconds > LIMIT_SECONDS then
    ctx.state.slow = (ctx.state.slow or 0) + 1
  else
    ctx.state.slow = 0
  end
  if ctx.state.slow >= SLOW_CHECKS then
    return false, string.format("Probe took %.3fs, over %.3fs in %d checks in a row", r.seconds, LIMIT_SECONDS, ctx.state.slow)
  end
  return true, "ok"
end

return policy
