-- Hostile: raises an object whose __tostring loops (a host calling
-- luaL_tolstring on it would hang).
local policy = {}
function policy.check(ctx)
  error(setmetatable({}, { __tostring = function() while true do end end }))
end
return policy
