-- Hostile: makes its own coroutines (yields the host does not expect).
local policy = {}
function policy.check(ctx)
  local co = coroutine.wrap(function() ctx.probe() end)
  co()
  return true, "made a coroutine"
end
return policy
