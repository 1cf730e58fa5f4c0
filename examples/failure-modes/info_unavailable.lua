-- GetPluginInfo fails at start: the driver is listening but its identity
-- service is not up yet. Upstream livenessprobe (and this sidecar) exits
-- with status 1 when GetPluginInfo returns an error, so the sidecar
-- container restarts until the driver answers; after FAILURES failed calls
-- it answers normally.
--
-- With --proxy-to the failures come from the proxy and later calls are
-- forwarded: the sidecar gets the real driver's name (name and
-- vendor_version below apply only without --proxy-to).
--
--   csi-mock-driver --csi-address=/tmp/csi.sock --script=info_unavailable.lua
local FAILURES = 2

local driver = {}

function driver.get_plugin_info(call)
  if call.n <= FAILURES then
    return { code = "UNAVAILABLE", message = "identity service starting" }
  end
  return { name = "mock.csi.example.com", vendor_version = "0.1.0" }
end

return driver
