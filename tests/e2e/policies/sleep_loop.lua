-- Hostile: sleeps for ever in small steps; the sleep that would cross the
-- check deadline ends the check.
local policy = {}
function policy.check(ctx)
  while true do ctx.sleep(0.1) end
end
return policy
