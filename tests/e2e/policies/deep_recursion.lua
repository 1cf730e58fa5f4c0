-- Hostile: unbounded (non-tail) recursion.
local policy = {}
local function down(n)
  return down(n + 1) + 1
end
function policy.check(ctx)
  return down(1) > 0, "deep"
end
return policy
