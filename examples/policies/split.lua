-- Three questions, three answers (README "Readiness and start-up").
--
-- kubelet asks a CSI driver's pod three things; upstream livenessprobe
-- answers all of them with one /healthz, so a driver that says
-- ready=false while it initializes (healthy, per the CSI spec) is
-- restarted as if it were dead. With this policy:
--   check   (/healthz,  livenessProbe)  alive: any OK Probe, whatever ready says;
--   ready   (/readyz,   readinessProbe) in service: an OK Probe with ready not false;
--   startup (/startupz, startupProbe)   started: the first OK Probe, then always.
-- A driver that hangs or errors still fails /healthz and is restarted.
local policy = {}

-- One Probe. An OK one (whatever ready says) means the driver has started;
-- otherwise nil and upstream's error text.
local function answered(ctx)
  local r = ctx.probe()
  if not r.ok then
    return nil, r.error
  end
  ctx.state.started = true
  return r
end

function policy.check(ctx)
  local r, err = answered(ctx)
  if not r then
    return false, err
  end
  if r.ready == false then
    return true, "alive, not ready yet"
  end
  return true, "ok"
end

function policy.ready(ctx)
  local r, err = answered(ctx)
  if not r then
    return false, err
  end
  if r.ready == false then
    return false, "driver responded but is not ready"
  end
  return true, "ok"
end

function policy.startup(ctx)
  if ctx.state.started then
    return true, "ok"
  end
  local r, err = answered(ctx)
  if not r then
    return false, err
  end
  return true, "started"
end

return policy
