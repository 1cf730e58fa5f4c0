-- Hostile: raises nil.
local policy = {}
function policy.check(ctx)
  error(nil)
end
return policy
