-- Hostile: check returns a string where the boolean belongs.
local policy = {}
function policy.check(ctx)
  ctx.probe()
  return "ok", "ok"
end
return policy
