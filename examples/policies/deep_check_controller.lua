-- Deeper health for a controller plugin (README "Deeper health").
--
-- The controller side of deep_check.lua: after Probe, the controller
-- server itself must answer ControllerGetCapabilities within the same check
-- deadline, and still claim the capabilities the deployment relies on. A
-- controller that lost its backend connection often fails or hangs here
-- while Probe still says OK.
local REQUIRED = { "CREATE_DELETE_VOLUME" }

local policy = {}

function policy.check(ctx)
  local probe = ctx.probe()
  if not probe.ok then
    return false, probe.error
  end
  local caps = ctx.call("ControllerGetCapabilities")
  if not caps.ok then
    return false, "ControllerGetCapabilities failed: " .. caps.error
  end
  local have = {}
  for _, name in ipairs(caps.capabilities) do
    have[name] = true
  end
  for _, name in ipairs(REQUIRED) do
    if not have[name] then
      return false, "the controller no longer claims " .. name
    end
  end
  return true, "ok"
end

return policy
