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
--
-- ctx.call(method [, request] [, timeout]) answers from opts.replies
-- (method -> list of results, the last one repeating; by default one
-- fake_ctx.reply() with made-up fields for each method), and raises, as the
-- daemon does, for a method a policy may not call or a request with fields.
-- ctx.file(path) answers from opts.files (path -> {exists, type, size, age}
-- or fake_ctx.file_*()), missing by default; like the daemon it raises for
-- a path outside opts.allow_paths (the --policy-allow-path list; none:
-- every path raises), compared after resolving "." and ".." (no symlinks
-- here: there is no file system).
local M = {}

-- The methods ctx.call may make, in the daemon's order (its error names them).
M.CALLABLE = { "GetPluginInfo", "GetPluginCapabilities", "NodeGetInfo", "NodeGetCapabilities",
               "ControllerGetCapabilities" }

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

-- A successful read-only call whose reply has these fields (e.g. { node_id = "n1" }).
function M.reply(fields, seconds)
  local r = M.ok(nil, seconds)
  r.ready = nil
  for k, v in pairs(fields or {}) do r[k] = v end
  return r
end

-- What each callable method answers when the spec gives nothing: made-up, plausible.
local default_replies = {
  GetPluginInfo = { name = "fake.csi.example.com", vendor_version = "1.0.0", manifest = {} },
  GetPluginCapabilities = { capabilities = { "CONTROLLER_SERVICE" } },
  NodeGetInfo = { node_id = "fake-node", max_volumes_per_node = 0 },
  NodeGetCapabilities = { capabilities = { "STAGE_UNSTAGE_VOLUME", "GET_VOLUME_STATS" } },
  ControllerGetCapabilities = { capabilities = { "CREATE_DELETE_VOLUME",
                                                 "PUBLISH_UNPUBLISH_VOLUME" } },
}

-- ctx.file's answers: an existing entry of a type ("file", "dir", "socket",
-- "symlink", "other"), a missing one, one whose stat did not answer in time.
function M.file_exists(type, size, age)
  return { exists = true, type = type or "file", size = size or 0, age = age or 1 }
end

function M.file_missing()
  return { exists = false }
end

function M.file_timed_out(path)
  return { exists = false, error = 'ctx.file("' .. path .. '"): timed out: the file system '
                                   .. "did not answer by the check deadline" }
end

-- "/a/./b/../c" -> "/a/c": the lexical part of the daemon's resolution.
local function normalize(path)
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return "/" .. table.concat(parts, "/")
end

local function beneath(path, dir)
  dir = normalize(dir)
  return dir == "/" or path == dir or path:sub(1, #dir + 1) == dir .. "/"
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
  local call_counts = {}
  function ctx.call(method, request, timeout)
    assert(type(method) == "string", "bad argument #1 to 'call' (string expected)")
    local allowed = false
    for _, name in ipairs(M.CALLABLE) do allowed = allowed or name == method end
    if not allowed then
      error('ctx.call("' .. method .. '"): not a read-only call a policy may make (allowed: '
            .. table.concat(M.CALLABLE, ", ") .. ")", 2)
    end
    if type(request) == "number" then
      timeout = request
    elseif type(request) == "table" and next(request) ~= nil then
      error('ctx.call("' .. method .. '"): its request has no fields: pass nil or {}', 2)
    end
    if clock >= deadline then error("ctx.call() started after the check deadline", 2) end
    call_counts[method] = (call_counts[method] or 0) + 1
    local scripted = (opts.replies or {})[method]
    local r
    if scripted then
      r = copy(scripted[math.min(call_counts[method], #scripted)])
    else
      r = M.reply(default_replies[method])
    end
    ctx.calls[#ctx.calls + 1] = { "call", method, timeout }
    clock = clock + r.seconds
    r.at = clock
    return r
  end
  function ctx.file(path)
    assert(type(path) == "string", "bad argument #1 to 'file' (string expected)")
    if path:sub(1, 1) ~= "/" then
      error('ctx.file("' .. path .. '"): not an absolute path', 2)
    end
    local resolved = normalize(path)
    local ok = false
    for _, dir in ipairs(opts.allow_paths or {}) do ok = ok or beneath(resolved, dir) end
    if not ok then
      if not opts.allow_paths or #opts.allow_paths == 0 then
        error('ctx.file("' .. path .. '"): no directory is allowed (see --policy-allow-path)', 2)
      end
      error('ctx.file("' .. path .. '"): ' .. resolved
            .. " is outside every --policy-allow-path directory", 2)
    end
    if clock >= deadline then error("ctx.file() started after the check deadline", 2) end
    ctx.calls[#ctx.calls + 1] = { "file", path }
    local answer = (opts.files or {})[path] or (opts.files or {})[resolved] or M.file_missing()
    return copy(answer)
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
