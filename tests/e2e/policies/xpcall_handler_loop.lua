-- Hostile: an xpcall message handler that loops (stock 5.4.4 hangs here).
local policy = {}
function policy.check(ctx)
  xpcall(error, function() while true do end end)
  return true, "handler returned"
end
return policy
