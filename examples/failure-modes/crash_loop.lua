-- A driver that crashes: it answers CALLS Probes, then exits with status 1
-- in the middle of the next one, leaving its socket file behind as a real
-- crash does. The sidecar must answer the interrupted probe and every later
-- one with a failure by its timeout, and recover as soon as a new driver
-- binds the same path.
--
-- With --proxy-to the healthy answers are the real driver's (forwarded), and
-- it is the proxy that exits: the sidecar's socket dies, the driver behind
-- it runs on.
--
--   csi-mock-driver --csi-address=/tmp/csi.sock --script=crash_loop.lua
local CALLS = 5

local driver = {}

function driver.probe(call)
  if call.n > CALLS then
    return { action = "exit", exit_code = 1 }
  end
  return { ready = true }
end

return driver
