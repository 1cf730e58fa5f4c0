-- The policy sandbox: what a policy (or a csi-mock-driver script) can reach.
-- The one definition of it, used by the daemon, the policy worker and
-- csi-mock-driver (src/sandbox.c embeds this file and runs it when it builds
-- a Lua state), and by the policy specs (spec/support/fake_ctx.lua), so a
-- policy that breaks a rule fails its spec exactly as it fails in the
-- daemon. LUA-NOTES.md has the measurements behind each line.
--
-- Called with G, a table holding the real base functions and libraries,
-- and stopped, a function telling whether a limit has tripped in the
-- current run (the host's; false when there are no limits). Returns the
-- environment policies run in: a read-only proxy.
--
-- It changes two shared things, on purpose, in whatever state runs it:
-- string.dump is removed (a method call reaches the real string table) and
-- the string metatable is locked.
local G, stopped = ...

local type, error, pairs = G.type, G.error, G.pairs
local real_setmetatable, real_rawget, real_pcall = G.setmetatable, G.rawget, G.pcall
local real_load, real_collectgarbage = G.load, G.collectgarbage

-- Base functions policies get as they are. Left out: dofile and loadfile
-- (the file system), print (stdout belongs to nobody), rawset, rawget and
-- rawequal (they bypass the read-only proxies), require (modules). Wrapped
-- below: load, pcall, xpcall, setmetatable, collectgarbage.
local BASE = {
  "assert", "error", "getmetatable", "ipairs", "next", "pairs", "rawlen", "select",
  "tonumber", "tostring", "type", "warn", "_VERSION",
}

-- Libraries, read-only. Left out: io and os (files, processes, the clock
-- of the host), package (modules), debug (it breaks every rule here),
-- coroutine (yields the host does not expect).
local LIBRARIES = { "string", "table", "math", "utf8" }

local function refuse_write(_, key)
  if type(key) == "string" then
    error("attempt to write '" .. key .. "' in a read-only table", 2)
  end
  error("attempt to write to a read-only table", 2)
end

-- An empty table that reads through to t and refuses writes; its metatable
-- is locked. (So pairs() and # see nothing: the README says so.)
local function proxy(t)
  return real_setmetatable({}, { __index = t, __newindex = refuse_write, __metatable = "locked" })
end

-- No bytecode in or out: string.dump goes, from the real table too.
G.string.dump = nil
local string_metatable = G.getmetatable("")
if type(string_metatable) == "table" then -- else a sandbox built earlier locked it
  string_metatable.__metatable = "locked"
end

local visible = {}
for _, name in pairs(BASE) do
  visible[name] = G[name] or error("sandbox: the host has no " .. name)
end
for _, name in pairs(LIBRARIES) do
  visible[name] = proxy(G[name])
end
local env = proxy(visible)
visible._G = env

-- The wrappers are Lua functions, so they stay yieldable (ctx.probe() may
-- be called under them) and run under the host's count hook.

-- pcall (and xpcall) re-raise once a limit has tripped: a script cannot
-- swallow its own kill where the hook cannot yield (inside table.sort
-- comparators and gsub callbacks).
local function rethrow(ok, ...)
  if not ok and stopped() then
    error((...), 0)
  end
  return ok, ...
end

function visible.pcall(f, ...)
  return rethrow(real_pcall(f, ...))
end

-- xpcall's handler runs through the same protected, hooked path: stock
-- xpcall re-enters a looping or failing handler where no hook stops it.
local function handled(ok, ...)
  if ok then
    return false, ...
  end
  return false, (...)
end

function visible.xpcall(f, handler, ...)
  local function finish(ok, ...)
    if ok then
      return true, ...
    end
    return handled(visible.pcall(handler, (...)))
  end
  return finish(visible.pcall(f, ...))
end

-- Text chunks only (bytecode can crash the VM), in this environment (another
-- one would reach the real globals).
function visible.load(chunk, name)
  if type(chunk) ~= "string" then
    return nil, "load: only text chunks are allowed in a policy"
  end
  return real_load(chunk, name, "t", env)
end

-- No __gc: finalizers run from the collector, where no hook can stop them.
function visible.setmetatable(t, mt)
  if type(mt) == "table" and real_rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc metamethods are not allowed in a policy", 2)
  end
  return real_setmetatable(t, mt)
end

-- Only "count": a stopped collector runs later checks into the memory cap.
function visible.collectgarbage(opt)
  if opt ~= "count" then
    error('collectgarbage: only "count" is allowed in a policy', 2)
  end
  return real_collectgarbage("count")
end

return env
