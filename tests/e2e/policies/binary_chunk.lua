-- Hostile: tries to load bytecode (which can crash the VM). load only takes
-- text chunks; string.dump is gone.
local policy = {}
function policy.check(ctx)
  local chunk = "\27LuaT\0\25\147\r\n\26\n\4\8\8xV\0\0\0\0\0\0\0\0\0\0\0(w@\1\0"
  local f = assert(load(chunk, "=binary"))
  return true, tostring(f())
end
return policy
