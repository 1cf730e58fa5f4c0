-- Hostile: grows a table of tables until the memory cap stops it.
local policy = {}
function policy.check(ctx)
  local t, i = {}, 0
  while true do
    i = i + 1
    t[i] = { i, tostring(i) }
  end
end
return policy
