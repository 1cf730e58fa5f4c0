local fake_ctx = require("spec.support.fake_ctx")
local policy = fake_ctx.load("examples/policies/split.lua")

-- Each endpoint as the daemon answers it, with the state the three share.
local function ask(which, result, state)
  local ctx = fake_ctx.new({ probes = { result }, state = state })
  local healthy, body, status = fake_ctx.answer(policy, which, ctx)
  return healthy, body, status, ctx.probe_count()
end

describe("examples/policies/split.lua", function()
  it("keeps an initializing driver alive but out of service", function()
    local state = {}
    assert.is_true((ask("healthz", fake_ctx.ok(false), state)))
    local ready, body = ask("readyz", fake_ctx.ok(false), state)
    assert.is_false(ready)
    assert.are.equal("driver responded but is not ready", body)
  end)

  it("is ready when ready is true or absent", function()
    assert.is_true((ask("readyz", fake_ctx.ok(true), {})))
    assert.is_true((ask("readyz", fake_ctx.ok(nil), {})))
  end)

  it("fails every endpoint on errors and hangs, in upstream's words", function()
    for _, which in ipairs({ "healthz", "readyz", "startupz" }) do
      local healthy, body = ask(which, fake_ctx.timeout(), {})
      assert.is_false(healthy)
      assert.are.equal("rpc error: code = DeadlineExceeded desc = context deadline exceeded", body)
      healthy, body = ask(which, fake_ctx.unreachable(), {})
      assert.is_false(healthy)
      assert.are.equal("context deadline exceeded", body)
    end
  end)

  it("is started by the first OK Probe, whatever ready says, and stays started", function()
    local state = {}
    assert.is_false((ask("startupz", fake_ctx.error("UNAVAILABLE", "booting"), state)))
    local started, body = ask("startupz", fake_ctx.ok(false), state)
    assert.is_true(started)
    assert.are.equal("started", body)
    local again, _, _, probes = ask("startupz", fake_ctx.error("UNAVAILABLE", "gone"), state)
    assert.is_true(again)
    assert.are.equal(0, probes)
  end)

  it("counts an OK Probe made by check or ready as started", function()
    local state = {}
    ask("healthz", fake_ctx.ok(false), state)
    local started, _, _, probes = ask("startupz", fake_ctx.unreachable(), state)
    assert.is_true(started)
    assert.are.equal(0, probes)
  end)

  it("leaves statuses to the defaults", function()
    local _, _, status = ask("healthz", fake_ctx.ok(true), {})
    assert.is_nil(status)
  end)
end)

describe("fake_ctx.answer", function()
  local only_check = { check = function() return true, "mine" end }

  it("answers ready and startup with the built-in policy when a policy has none", function()
    local ready, body = fake_ctx.answer(only_check, "ready", fake_ctx.new({ probes = { fake_ctx.ok(false) } }))
    assert.is_false(ready)
    assert.are.equal("driver responded but is not ready", body)
    assert.is_true((fake_ctx.answer(only_check, "startupz", fake_ctx.new({ probes = { fake_ctx.ok(false) } }))))
    assert.are.equal("mine", select(2, fake_ctx.answer(only_check, "healthz", fake_ctx.new())))
  end)

  it("refuses an unknown endpoint", function()
    assert.has_error(function() fake_ctx.answer(only_check, "livez", fake_ctx.new()) end)
  end)
end)
