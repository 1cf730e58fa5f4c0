-- Hostile: probes from a table.sort comparator (a yield across a C call).
local policy = {}
function policy.check(ctx)
  table.sort({ 3, 2, 1 }, function(a, b)
    ctx.probe()
    return a < b
  end)
  return true, "sorted"
end
return policy
