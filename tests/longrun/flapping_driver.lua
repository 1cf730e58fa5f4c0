-- The long run's driver (scripts/longrun.sh): its answers flap through
-- every kind of result in a cycle of 8 Probes, so the prober can tell for
-- each probe exactly which answer is right (longrun.py's EXPECTED, which
-- must stay in step with this table).
local driver = {}

local answers = {
  [1] = { ready = true },
  [2] = { ready = "unset" },
  [3] = { ready = false },
  [4] = { code = "UNAVAILABLE", message = "flap" },
  [5] = { ready = true, delay = 0.3 },       -- slow, inside the 1 s timeout
  [6] = { hang = true },                     -- the sidecar's timeout answers
  [7] = { code = "FAILED_PRECONDITION", message = "flap" },
  [0] = { action = "invalid_response" },
}

function driver.probe(call)
  return answers[call.n % 8]
end

return driver
