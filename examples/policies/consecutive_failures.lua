-- Consecutive failures: one failed check does not make the driver
-- unhealthy; THRESHOLD failed checks in a row do. A success resets the
-- count. Use this to ride out a single slow or failed Probe without
-- raising kubelet's failureThreshold for every container.
local THRESHOLD = 3

local policy = {}

local function probe_verdict(ctx)
  local r = ctx.probe()
  if not r.ok then
    return false, r.error
  end
  if r.ready == false then
    return false, "driver responded but is not ready"
  end
  return true, "ok"
end

function policy.check(ctx)
  local healthy, body = probe_verdict(ctx)
  if healthy then
    ctx.state.failures = 0
    return true, body
  end
  ctx.state.failures = (ctx.state.failures or 0) + 1
  if ctx.state.failures < THRESHOLD then
    return true, string.format("ok (tolerating failure %d of %d: %s)", ctx.state.failures, THRESHOLD, body)
  end
  return false, body
end

return policy
