-- Hostile: check returns nothing.
local policy = {}
function policy.check(ctx)
  ctx.probe()
end
return policy
