-- Start-up grace: a driver that answers "not ready" is healthy while it is
-- still initializing, for GRACE_SECONDS after it first answered a Probe.
--
-- The CSI spec says ready=false means "healthy but still initializing";
-- upstream livenessprobe fails the probe anyway, so a slow-starting driver
-- can be restarted in a loop. After the grace period, not-ready fails as
-- upstream does. Errors and timeouts fail at once, as upstream.
local GRACE_SECONDS = 120

local policy = {}

function policy.check(ctx)
  local r = ctx.probe()
  if not r.ok then
    return false, r.error
  end
  -- ctx.state survives between checks (and starts fresh on a policy reload).
  ctx.state.first_answer = ctx.state.first_answer or r.at
  if r.ready == false then
    local waited = r.at - ctx.state.first_answer
    if waited < GRACE_SECONDS then
      return true, string.format("driver is initializing (%.0fs of %ds grace)", waited, GRACE_SECONDS)
    end
    return false, "driver responded but is not ready"
  end
  return true, "ok"
end

return policy
