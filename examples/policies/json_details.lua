-- A JSON body with the details of the last probes: the verdict of the
-- built-in policy, plus what the driver answered in this check and in up
-- to 15 earlier ones (ctx.history). The sandbox has no JSON library, so
-- this file carries a small encoder for strings, numbers, booleans, nil
-- (as null), arrays and string-keyed tables.
local policy = {}

local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
                  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local encode

local function encode_table(t)
  local parts = {}
  if #t > 0 then
    for i = 1, #t do parts[i] = encode(t[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys) -- stable output, easy to diff and to test
  for i, k in ipairs(keys) do parts[i] = encode_string(k) .. ":" .. encode(t[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function encode(v)
  local kind = type(v)
  if kind == "nil" then return "null" end
  if kind == "boolean" then return tostring(v) end
  if kind == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if math.type(v) == "integer" then return tostring(v) end
    return string.format("%.6g", v)
  end
  if kind == "string" then return encode_string(v) end
  if kind == "table" then return encode_table(v) end
  error("cannot encode a " .. kind)
end

policy.encode = encode -- exported for the spec

local function summary(r)
  return { at = r.at, code = r.code, connected = r.connected, error = r.error,
           ready = r.ready, seconds = r.seconds }
end

function policy.check(ctx)
  local r = ctx.probe()
  local healthy, reason = true, "ok"
  if not r.ok then
    healthy, reason = false, r.error
  elseif r.ready == false then
    healthy, reason = false, "driver responded but is not ready"
  end
  local probes = {}
  local history = ctx.history
  for i = math.max(1, #history - 14), #history do probes[#probes + 1] = summary(history[i]) end
  probes[#probes + 1] = summary(r)
  return healthy, encode({ driver = ctx.driver.name, healthy = healthy, reason = reason, probes = probes })
end

return policy
