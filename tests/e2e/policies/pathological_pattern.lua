-- Hostile: a pattern that backtracks for seconds inside C, where no hook
-- runs. Only killing the worker process stops it.
local policy = {}
function policy.check(ctx)
  return string.find(("a"):rep(150), ".-.-.-.-b") ~= nil, "matched"
end
return policy
