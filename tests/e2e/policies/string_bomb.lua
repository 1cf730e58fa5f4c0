-- Hostile: doubles a string with string.rep until the memory cap stops it.
local policy = {}
function policy.check(ctx)
  local s = "x"
  while true do s = string.rep(s, 2) end
end
return policy
