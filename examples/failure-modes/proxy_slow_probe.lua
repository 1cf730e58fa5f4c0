-- Proxy mode: a real driver whose Probe is now and then slow. In front of it
-- (--proxy-to), every EVERY-th Probe is forwarded DELAY seconds after it
-- arrived, past the sidecar's default 1 s --probe-timeout: that /healthz
-- answers 500 "rpc error: code = DeadlineExceeded desc = context deadline
-- exceeded" after the timeout, and the others get the real driver's answer.
-- With kubelet's failureThreshold above 1 the driver is not restarted;
-- latency_spikes.lua is the same failure with the mock playing the driver.
--
--   csi-mock-driver --csi-address=/csi/csi.sock --proxy-to=/csi-real/csi.sock \
--     --script=proxy_slow_probe.lua --call-log=/var/log/csi-proxy/calls.jsonl
--
-- The call log has a late Probe as "injected":"delay 1.5s" and, as the
-- sidecar gave up first, "code":"CANCELLED" or "DEADLINE_EXCEEDED".
-- Without --proxy-to the mock answers every Probe itself, late or not.
local EVERY = 5
local DELAY = 1.5

local driver = {}

function driver.probe(call)
  if call.n % EVERY == 0 then
    return { delay = DELAY }
  end
  return nil -- forwarded untouched
end

return driver
