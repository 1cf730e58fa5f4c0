-- Flapping: the driver alternates between healthy and failing, PERIOD calls
-- of each. Shows how many consecutive failures a probe configuration (the
-- kubelet failureThreshold, or a policy such as consecutive_failures.lua)
-- tolerates before the driver is restarted.
--
-- With --proxy-to the healthy half is forwarded (the real driver's answer,
-- whatever it is) and the failing half is answered by the proxy.
--
--   csi-mock-driver --csi-address=/tmp/csi.sock --script=flapping.lua
local PERIOD = 2

local driver = {}

function driver.probe(call)
  local failing = math.floor((call.n - 1) / PERIOD) % 2 == 1
  if failing then
    return { code = "UNAVAILABLE", message = "flapping: down for a while" }
  end
  return { ready = true }
end

return driver
