-- Hostile: a finalizer that loops (finalizers run where no hook reaches).
local policy = {}
function policy.check(ctx)
  setmetatable({}, { __gc = function() while true do end end })
  return true, "installed a finalizer"
end
return policy
