-- Hostile: writes from a chunk made with load.
-- Odd checks try the write (which must raise: fallback); even checks verify
-- that the libraries are unchanged and answer as the built-in policy does,
-- so any answer other than the built-in one means the write got through.
local policy = {}

local function intact()
  local probes = {
    function() return string.upper("a") == "A" end,
    function() return ("a"):upper() == "A" end,
    function() return ("%d"):format(7) == "7" and string.rep("a", 2) == "aa" end,
    function() return x == nil and _G.x == nil end,
    function() return type(string) == "table" and type(_G.string) == "table" end,
    function() return table.concat({ "a", "b" }) == "ab" and math.floor(1.5) == 1 end,
    function() return rawset == nil and rawget == nil end,
  }
  for i, f in ipairs(probes) do
    local ok, good = pcall(f)
    if not (ok and good) then return false, i end
  end
  return true
end

function policy.check(ctx)
  ctx.state.n = (ctx.state.n or 0) + 1
  if ctx.state.n % 2 == 1 then
    load("string.upper = nil; x = 1")()
    return true, "write accepted"
  end
  local good, which = intact()
  if not good then
    return true, "LIBRARIES CHANGED (test " .. which .. ")", 299
  end
  local r = ctx.probe()
  if not r.ok then return false, r.error end
  if r.ready == false then return false, "driver responded but is not ready" end
  return true, "ok"
end

return policy
