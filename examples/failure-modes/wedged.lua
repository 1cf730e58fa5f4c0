-- A wedged driver: healthy for HEALTHY_SECONDS, then every Probe hangs
-- forever (a deadlock inside the driver). The process and its socket stay,
-- so only the probe timeout reveals the problem: the sidecar answers
-- "context deadline exceeded" after --probe-timeout, every time.
--
-- With --proxy-to the hang is the proxy's; before it, Probe is forwarded to
-- the real driver.
--
--   csi-mock-driver --csi-address=/tmp/csi.sock --script=wedged.lua
local HEALTHY_SECONDS = 10

local driver = {}

function driver.probe(call)
  if call.elapsed >= HEALTHY_SECONDS then
    return { hang = true }
  end
  return { ready = true }
end

return driver
