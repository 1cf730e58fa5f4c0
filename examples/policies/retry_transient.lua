-- Retry transient errors: a Probe that fails with a code that usually
-- clears by itself (UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED) or with no
-- connection is tried again, up to MAX_ATTEMPTS in all, with a doubling
-- backoff, as long as the check's budget (--check-timeout) allows. Give
-- the check more time than one probe, e.g. --probe-timeout=1s
-- --check-timeout=4s. Other errors fail at once.
local MAX_ATTEMPTS = 3
local FIRST_BACKOFF = 0.2 -- seconds
local TRANSIENT = { UNAVAILABLE = true, RESOURCE_EXHAUSTED = true, ABORTED = true }

local policy = {}

local function verdict(r)
  if not r.ok then
    return false, r.error
  end
  if r.ready == false then
    return false, "driver responded but is not ready"
  end
  return true, "ok"
end

local function transient(r)
  return not r.ok and (not r.connected or TRANSIENT[r.code] == true)
end

function policy.check(ctx)
  local backoff = FIRST_BACKOFF
  local r = ctx.probe()
  for attempt = 2, MAX_ATTEMPTS do
    -- Retry only when a sleep and a useful probe (at least 100 ms) still fit.
    if not transient(r) or ctx.deadline() < backoff + 0.1 then
      break
    end
    ctx.log(4, string.format("attempt %d failed (%s), retrying in %.1fs", attempt - 1, r.code, backoff))
    ctx.sleep(backoff)
    r = ctx.probe() -- the daemon caps its deadline at what is left of the check
    backoff = backoff * 2
  end
  return verdict(r)
end

return policy
