-- Deeper health for a node plugin (README "Deeper health").
--
-- Probe() is shallow: many drivers answer it from a goroutine that stays
-- fine while the part serving volumes is wedged or has lost its backend.
-- This policy asks more of the driver, within one check deadline:
--   1. Probe, as upstream does (its errors in upstream's words);
--   2. NodeGetInfo, which goes through the node server, must answer OK
--      with a node ID;
--   3. the kubelet plugin-registration socket that node-driver-registrar
--      creates for this driver must exist: without it kubelet forgets the
--      driver on this node.
-- Needs --policy-allow-path=/var/lib/kubelet/plugins_registry and that
-- directory mounted into the sidecar (examples/kubernetes/deep-check.yaml).
local REGISTRY = "/var/lib/kubelet/plugins_registry"

local policy = {}

function policy.check(ctx)
  local probe = ctx.probe()
  if not probe.ok then
    return false, probe.error
  end
  -- Gets what is left of the check (ctx.probe's timeout rules).
  local info = ctx.call("NodeGetInfo")
  if not info.ok then
    return false, "NodeGetInfo failed: " .. info.error
  end
  if info.node_id == "" then
    return false, "NodeGetInfo answered an empty node_id"
  end
  local socket = REGISTRY .. "/" .. ctx.driver.name .. "-reg.sock"
  local reg = ctx.file(socket)
  if reg.error then
    return false, reg.error
  end
  if not reg.exists then
    return false, "registration socket " .. socket .. " is missing"
  end
  if reg.type ~= "socket" then
    return false, "registration socket " .. socket .. " is a " .. reg.type .. ", not a socket"
  end
  return true, "ok"
end

return policy
