-- Latency spikes: most Probes answer within BASE seconds, one in EVERY
-- takes SPIKE seconds, longer than the sidecar's default 1 s probe timeout.
-- Shows the difference between the default policy (every spike fails the
-- probe) and examples/policies/retry_transient.lua or latency_limit.lua.
--
-- With --proxy-to every Probe is forwarded after its delay: the real
-- driver's answer, late (proxy_slow_probe.lua delays only the spikes).
--
--   csi-mock-driver --csi-address=/tmp/csi.sock --script=latency_spikes.lua
local BASE = 0.05
local SPIKE = 1.5
local EVERY = 5

local driver = {}

function driver.probe(call)
  if call.n % EVERY == 0 then
    return { ready = true, delay = SPIKE }
  end
  return { ready = true, delay = BASE }
end

return driver
