-- Hostile: tries to run a command. There is no os library: it raises.
local policy = {}
function policy.check(ctx)
  os.execute("touch pwned-by-policy")
  return true, "ran a command"
end
return policy
