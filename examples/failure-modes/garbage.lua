-- A driver that answers with bytes the client cannot use: every third
-- Probe gets a body that is no valid ProbeResponse, every third a valid one
-- padded past gRPC's 4 MiB receive limit, the rest are healthy. The
-- sidecar must report each as a failed probe (Internal, ResourceExhausted)
-- and never crash on them.
--
-- With --proxy-to the bad answers come from the proxy and the healthy ones
-- are forwarded (the real driver's answer).
--
--   csi-mock-driver --csi-address=/tmp/csi.sock --script=garbage.lua
local driver = {}

function driver.probe(call)
  local k = call.n % 3
  if k == 1 then
    return { action = "invalid_response" }
  elseif k == 2 then
    return { action = "oversized_response", size = 5 * 1024 * 1024 }
  end
  return { ready = true }
end

return driver
