-- A driver whose gRPC server stops accepting connections and then drops
-- the one it has: after CALLS healthy Probes it stops calling accept() and
-- closes the sidecar's connection in the middle of the next Probe. The
-- socket file is still there and new connections are queued by the kernel
-- but never served, so every later probe times out.
--
-- With --proxy-to it is the proxy that stops accepting and closes the
-- connection (the real driver behind it is untouched); the healthy answers
-- are forwarded.
--
--   csi-mock-driver --csi-address=/tmp/csi.sock --script=stops_accepting.lua
local CALLS = 3

local driver = {}

function driver.probe(call)
  if call.n == CALLS then
    return { ready = true, action = "stop_accepting" }
  end
  if call.n > CALLS then
    return { action = "close_connection" }
  end
  return { ready = true }
end

return driver
