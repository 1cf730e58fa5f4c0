-- Hostile: swallows every error the hook raises, for ever.
local policy = {}
function policy.check(ctx)
  while true do pcall(function() while true do end end) end
end
return policy
