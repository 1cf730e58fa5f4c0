-- Proxy mode: a flaky controller. In front of a real driver (--proxy-to),
-- every EVERY-th CreateVolume is answered UNAVAILABLE by the proxy instead of
-- reaching the driver, as a controller that drops requests under load does;
-- the others are forwarded untouched. Shows whether the provisioner retries
-- (UNAVAILABLE is retryable) and how soon. Probe is forwarded untouched:
-- the sidecar keeps answering /healthz 200 "ok".
--
--   csi-mock-driver --csi-address=/csi/csi.sock --proxy-to=/csi-real/csi.sock \
--     --script=proxy_flaky_controller.lua --call-log=/var/log/csi-proxy/calls.jsonl
--
-- The call log has a dropped call as "code":"UNAVAILABLE", "backend":null,
-- "injected":"answered UNAVAILABLE", a forwarded one with the driver's own
-- status in "backend" and "injected":null. Without --proxy-to the other
-- calls get the mock's own answer (UNIMPLEMENTED).
local EVERY = 3
local MESSAGE = "proxy_flaky_controller: controller busy, try again"

local driver = {}

function driver.create_volume(call)
  if call.n % EVERY == 0 then
    return { code = "UNAVAILABLE", message = MESSAGE }
  end
  return nil -- forwarded untouched
end

return driver
