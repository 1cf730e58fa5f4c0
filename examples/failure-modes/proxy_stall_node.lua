-- Proxy mode: a node plugin whose mount path stalls. In front of a real
-- driver (--proxy-to), the first CALLS NodeStageVolume and the first CALLS
-- NodePublishVolume calls are forwarded; every later one hangs, as a stuck
-- mount does: kubelet's call runs into its deadline and the volume never
-- appears. Probe and every other call are forwarded untouched, so the
-- sidecar keeps answering /healthz 200 "ok": a liveness probe does not see a
-- stalled mount path, and kubelet does not restart the driver for it.
--
--   csi-mock-driver --csi-address=/csi/csi.sock --proxy-to=/csi-real/csi.sock \
--     --script=proxy_stall_node.lua --call-log=/var/log/csi-proxy/calls.jsonl
--
-- The call log has a stalled call as "code":"CANCELLED" (the caller gave
-- up), "backend":null, "injected":"hang". Without --proxy-to the first
-- calls get the mock's own answer (UNIMPLEMENTED), the later ones hang.
local CALLS = 2

local driver = {}

-- call.n counts each method's calls on its own.
local function stall(call)
  if call.n > CALLS then
    return { hang = true }
  end
  return nil -- forwarded untouched
end

driver.node_stage_volume = stall
driver.node_publish_volume = stall

return driver
