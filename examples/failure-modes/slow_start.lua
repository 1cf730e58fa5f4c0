-- A slowly initializing driver: for its first INIT_SECONDS it answers
-- Probe with ready=false (the CSI spec's "healthy, still initializing"),
-- then ready=true. With the default policy the sidecar fails the probe
-- meanwhile, exactly as upstream does, so kubelet may restart the driver
-- before it ever finishes starting; examples/policies/startup_grace.lua
-- keeps it alive.
--
-- With --proxy-to the not-ready answers come from the proxy (forward =
-- false: answer as the mock would; ready alone would be forwarded
-- untouched) and afterwards Probe is forwarded to the real driver.
--
--   csi-mock-driver --csi-address=/tmp/csi.sock --script=slow_start.lua
local INIT_SECONDS = 30

local driver = {}

function driver.probe(call)
  if call.elapsed < INIT_SECONDS then
    return { ready = false, forward = false }
  end
  return { ready = true }
end

return driver
