-- A slowly initializing driver: for its first INIT_SECONDS it answers
-- Probe with ready=false (the CSI spec's "healthy, still initializing"),
-- then ready=true. With the default policy the sidecar fails the probe
-- meanwhile, exactly as upstream does, so kubelet may restart the driver
-- before it ever finishes starting; examples/policies/startup_grace.lua
-- keeps it alive.
--
--   csi-mock-driver --csi-address=/tmp/csi.sock --script=slow_start.lua
local INIT_SECONDS = 30

local driver = {}

function driver.probe(call)
  return { ready = call.elapsed >= INIT_SECONDS }
end

return driver
