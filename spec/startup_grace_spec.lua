local fake_ctx = require("spec.support.fake_ctx")
local policy = fake_ctx.load("examples/policies/startup_grace.lua")

describe("examples/policies/startup_grace.lua", function()
  it("counts not-ready as healthy during the grace period", function()
    local state = {}
    local healthy, body = policy.check(fake_ctx.new({ probes = { fake_ctx.ok(false) }, state = state, now = 100 }))
    assert.is_true(healthy)
    assert.matches("initializing", body)
    healthy = policy.check(fake_ctx.new({ probes = { fake_ctx.ok(false) }, state = state, now = 200 }))
    assert.is_true(healthy)
  end)

  it("fails not-ready after the grace period, counted from the first answer", function()
    local state = {}
    policy.check(fake_ctx.new({ probes = { fake_ctx.ok(false) }, state = state, now = 100 }))
    local healthy, body = policy.check(fake_ctx.new({ probes = { fake_ctx.ok(false) }, state = state, now = 221 }))
    assert.is_false(healthy)
    assert.are.equal("driver responded but is not ready", body)
  end)

  it("starts the grace period at the first answer, not at the first check", function()
    local state = {}
    policy.check(fake_ctx.new({ probes = { fake_ctx.unreachable() }, state = state, now = 0 }))
    assert.is_nil(state.first_answer)
    local healthy = policy.check(fake_ctx.new({ probes = { fake_ctx.ok(false) }, state = state, now = 500 }))
    assert.is_true(healthy)
  end)

  it("fails errors at once, in upstream's words", function()
    local healthy, body = policy.check(fake_ctx.new({ probes = { fake_ctx.error("FAILED_PRECONDITION", "broken") } }))
    assert.is_false(healthy)
    assert.are.equal("rpc error: code = FailedPrecondition desc = broken", body)
  end)

  it("is healthy when ready", function()
    local healthy, body = policy.check(fake_ctx.new({ probes = { fake_ctx.ok(true) } }))
    assert.is_true(healthy)
    assert.are.equal("ok", body)
  end)
end)
