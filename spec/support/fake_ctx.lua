-- A fake ctx for testing policies with busted, no C and no driver needed.
--
--   local fake_ctx = require("spec.support.fake_ctx")
--   local policy = fake_ctx.load("lua/default.lua")      -- or examples/policies/x.lua
--   local ctx = fake_ctx.new({ probes = { fake_ctx.ok(), fake_ctx.error("UNAVAILABLE", "down") } })
--   local healthy, body, status = policy.check(ctx)
--   -- /readyz and /startupz as the daemon answers them: the policy's ready or
--   -- startup function, or the built-in policy's when it has none.
--   healthy, body, status = fake_ctx.answer(policy, "ready", ctx)
--
-- ctx.probe() returns the scripted results in order (the last one repeats),
-- each shaped exactly as the daemon's: ok, ready, code, message, error,
-- connected, seconds, at. Time is simulated: ctx.sleep() and each probe's
-- `seconds` advance ctx.now(); ctx.deadline() counts down from `timeout`.
-- ctx.calls records what the policy did, ctx.logs what it logged.
local M = {}

-- Go's names of the canonical codes, for the upstream error text.
local go_names = {
  OK = "OK", CANCELLED = "Canceled", UNKNOWN = "Unknown",
  INVALID_ARGUMENT = "InvalidArgument", DEADLINE_EXCEEDED = "DeadlineExceeded",
  NOT_FOUND = "NotFound", ALREADY_EXISTS = "AlreadyExists",
  PERMISSION_DENIED = "PermissionDenied", RESOURCE_EXHAUSTED = "ResourceExhausted",
  FAILED_PRECONDITION = "FailedPrecondition", ABORTED = "Aborted",
  OUT_OF_RANGE = "OutOfRange", UNIMPLEMENTED = "Unimplemented", INTERNAL = "Internal",
  UNAVAILABLE = "Unavailable", DATA_LOSS = "DataLoss", UNAUTHENTICATED = "Unauthenticated",
}

-- A successful Probe; ready is true, false or nil (absent).
function M.ok(ready, seconds)
  return { ok = true, ready = ready, code = "OK", message = "", connected = true,
           seconds = seconds or 0.001 }
end

-- A Probe that returned a gRPC status (canonical name, e.g. "UNAVAILABLE").
function M.error(code, message, seconds)
  message = message or ""
  return { ok = false, code = code, message = message, connected = true,
           seconds = seconds or 0.001,
           error = "rpc error: code = " .. assert(go_names[code], code) .. " desc = " .. message }
end

-- A Probe slower than its deadline, on a live connection.
function M.timeout(seconds)
  return { ok = false, code = "DEADLINE_EXCEEDED", message = "context deadline exceeded",
           connected = true, seconds = seconds or 1,
           error = "rpc error: code = DeadlineExceeded desc = context deadline exceeded" }
end

-- No connection could be made in time (socket missing, refused, silent).
function M.unreachable(seconds)
  return { ok = false, code = "UNAVAILABLE", message = "context deadline exceeded",
           connected = false, seconds = seconds or 1, error = "context deadline exceeded" }
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- opts: probes (list), timeout (check budget, default 1), now (start time),
-- driver ({name, vendor_version}), state (table), history (list). The
-- daemon gives check, ready and startup one ctx.state: pass the same state
-- table to the ctx of each to see them share it.
function M.new(opts)
  opts = opts or {}
  local probes = opts.probes or { M.ok() }
  local clock = opts.now or 1000
  local deadline = clock + (opts.timeout or 1)
  local n = 0
  local ctx = {
    driver = opts.driver or { name = "fake.csi.example.com", vendor_version = "1.0.0" },
    state = opts.state or {},
    history = opts.history or {},
    calls = {},
    logs = {},
  }
  -- As in the daemon, a probe that starts after the check deadline, or a
  -- sleep that would cross it, ends the check (the daemon then falls back
  -- to the built-in policy): here it raises, so a spec sees it.
  function ctx.probe(timeout)
    if clock > deadline then error("ctx.probe() started after the check deadline", 2) end
    n = n + 1
    local r = copy(probes[math.min(n, #probes)])
    ctx.calls[#ctx.calls + 1] = { "probe", timeout }
    clock = clock + r.seconds
    r.at = clock
    return r
  end
  function ctx.sleep(seconds)
    assert(type(seconds) == "number" and seconds >= 0, "ctx.sleep: bad seconds")
    if clock + seconds > deadline then error("ctx.sleep() would cross the check deadline", 2) end
    ctx.calls[#ctx.calls + 1] = { "sleep", seconds }
    clock = clock + seconds
  end
  function ctx.now() return clock end
  function ctx.deadline() return math.max(0, deadline - clock) end
  function ctx.log(level, message)
    ctx.logs[#ctx.logs + 1] = { level, message }
  end
  function ctx.probe_count() return n end
  return ctx
end

-- The daemon's sandbox, from its one definition (lua/sandbox.lua, beside
-- this file's spec/ directory): the same allow-list and read-only rules, so
-- a policy that calls os.time or writes a global fails its spec as it would
-- fail in the daemon. Built once; like the daemon, it removes string.dump
-- and locks the string metatable of this Lua.
local sandbox_env
local function sandbox()
  if not sandbox_env then
    local here = debug.getinfo(1, "S").source:match("^@(.*)spec/support/fake_ctx%.lua$") or ""
    local build = assert(loadfile(here .. "lua/sandbox.lua", "t"))
    sandbox_env = build(_G, function() return false end)
  end
  return sandbox_env
end

-- Loads a policy file the way the daemon does: a text chunk, in the
-- sandbox, returning a table with a check function, and ready and startup
-- functions or nothing under those names.
function M.load(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  local chunk = assert(load(text, "@" .. path, "t", sandbox()))
  local policy = chunk()
  assert(type(policy) == "table" and type(rawget(policy, "check")) == "function",
         path .. ": must return a table with a check function")
  for _, name in ipairs({ "ready", "startup" }) do
    local fn = rawget(policy, name)
    assert(fn == nil or type(fn) == "function",
           path .. ": the policy's " .. name .. " must be a function, got " .. type(fn))
  end
  return policy
end

-- The function answering each endpoint's question, by its name.
local functions = { check = "check", ready = "ready", startup = "startup",
                    healthz = "check", readyz = "ready", startupz = "startup" }

-- The built-in policy (lua/default.lua beside spec/), loaded once.
local builtin
local function builtin_policy()
  if not builtin then
    local here = debug.getinfo(1, "S").source:match("^@(.*)spec/support/fake_ctx%.lua$") or ""
    builtin = M.load(here .. "lua/default.lua")
  end
  return builtin
end

-- Answers `which` ("check", "ready", "startup", or "healthz", "readyz",
-- "startupz") as the daemon does: with the policy's function, or the
-- built-in policy's when the policy has none (ready and startup are
-- optional). Returns what the function returned.
function M.answer(policy, which, ctx)
  local name = assert(functions[which], "unknown endpoint or function: " .. tostring(which))
  local fn = rawget(policy, name) or builtin_policy()[name]
  return fn(ctx)
end

-- The environment policies run in (for specs of the sandbox itself).
M.sandbox = sandbox

return M
