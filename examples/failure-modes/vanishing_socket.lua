-- The socket file disappears while the driver keeps running (a cleanup job
-- or a host-path remount removed it): after CALLS Probes the driver unlinks
-- its own socket. Connections already made still work, but the sidecar
-- checks the path before each probe, as a fresh connect would, and fails
-- with "context deadline exceeded" from then on.
--
-- With --proxy-to the proxy removes its own socket, the one the sidecar
-- dials; the other answers are forwarded.
--
--   csi-mock-driver --csi-address=/tmp/csi.sock --script=vanishing_socket.lua
local CALLS = 3

local driver = {}

function driver.probe(call)
  if call.n == CALLS then
    return { ready = true, action = "remove_socket" }
  end
  return { ready = true }
end

return driver
