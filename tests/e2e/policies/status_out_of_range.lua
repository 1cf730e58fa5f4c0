-- Hostile: statuses that do not fit the verdict. Cycles through healthy
-- with 500, unhealthy with 200, and a status outside HTTP.
local policy = {}
local bad = { { true, "ok", 500 }, { false, "bad", 200 }, { true, "ok", 1000 }, { true, "ok", 200.5 } }
function policy.check(ctx)
  ctx.probe()
  ctx.state.n = (ctx.state.n or 0) % #bad + 1
  return table.unpack(bad[ctx.state.n])
end
return policy
