-- Hostile: raises a table.
local policy = {}
function policy.check(ctx)
  error({})
end
return policy
