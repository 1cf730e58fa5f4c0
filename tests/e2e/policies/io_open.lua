-- Hostile: tries to read and write files. There is no io library.
local policy = {}
function policy.check(ctx)
  local f = io.open("pwned-by-policy", "w")
  f:write("x")
  f:close()
  return true, io.open("/etc/passwd"):read("a")
end
return policy
