local fake_ctx = require("spec.support.fake_ctx")
local policy = fake_ctx.load("examples/policies/latency_limit.lua")

describe("examples/policies/latency_limit.lua", function()
  local function run(state, seconds)
    return policy.check(fake_ctx.new({ probes = { fake_ctx.ok(nil, seconds) }, state = state }))
  end

  it("fails after three slow checks in a row", function()
    local state = {}
    assert.is_true((run(state, 0.6)))
    assert.is_true((run(state, 0.7)))
    local healthy, body = run(state, 0.8)
    assert.is_false(healthy)
    assert.matches("over 0.500s in 3 checks in a row", body)
  end)

  it("forgives slowness once a fast answer comes", function()
    local state = {}
    run(state, 0.6)
    run(state, 0.6)
    assert.is_true((run(state, 0.01)))
    assert.is_true((run(state, 0.6)))
  end)

  it("fails errors at once", function()
    local healthy, body = policy.check(fake_ctx.new({ probes = { fake_ctx.timeout() } }))
    assert.is_false(healthy)
    assert.are.equal("rpc error: code = DeadlineExceeded desc = context deadline exceeded", body)
  end)
end)
