local fake_ctx = require("spec.support.fake_ctx")
local policy = fake_ctx.load("examples/policies/consecutive_failures.lua")

describe("examples/policies/consecutive_failures.lua", function()
  local function run(state, result)
    return policy.check(fake_ctx.new({ probes = { result }, state = state }))
  end

  it("tolerates two failures in a row and fails the third", function()
    local state = {}
    local down = fake_ctx.error("UNAVAILABLE", "down")
    local healthy, body = run(state, down)
    assert.is_true(healthy)
    assert.matches("tolerating failure 1 of 3", body)
    assert.is_true((run(state, down)))
    healthy, body = run(state, down)
    assert.is_false(healthy)
    assert.are.equal("rpc error: code = Unavailable desc = down", body)
  end)

  it("resets the count on success", function()
    local state = {}
    local down = fake_ctx.unreachable()
    run(state, down)
    run(state, down)
    assert.is_true((run(state, fake_ctx.ok())))
    assert.are.equal(0, state.failures)
    assert.is_true((run(state, down)))
  end)

  it("counts not-ready as a failure", function()
    local state = {}
    for _ = 1, 2 do run(state, fake_ctx.ok(false)) end
    local healthy, body = run(state, fake_ctx.ok(false))
    assert.is_false(healthy)
    assert.are.equal("driver responded but is not ready", body)
  end)
end)
