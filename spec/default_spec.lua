-- The built-in policy must give exactly upstream livenessprobe's answers.
local fake_ctx = require("spec.support.fake_ctx")
local policy = fake_ctx.load("lua/default.lua")

describe("lua/default.lua", function()
  local function check(result)
    local ctx = fake_ctx.new({ probes = { result } })
    local healthy, body, status = policy.check(ctx)
    assert.are.equal(1, ctx.probe_count())
    return healthy, body, status
  end

  it("is healthy when ready is absent", function()
    local healthy, body = check(fake_ctx.ok(nil))
    assert.is_true(healthy)
    assert.are.equal("ok", body)
  end)

  it("is healthy when ready is true", function()
    local healthy, body = check(fake_ctx.ok(true))
    assert.is_true(healthy)
    assert.are.equal("ok", body)
  end)

  it("is unhealthy when ready is present and false", function()
    local healthy, body = check(fake_ctx.ok(false))
    assert.is_false(healthy)
    assert.are.equal("driver responded but is not ready", body)
  end)

  it("passes a gRPC error through in upstream's words", function()
    local healthy, body = check(fake_ctx.error("FAILED_PRECONDITION", "plugin not healthy"))
    assert.is_false(healthy)
    assert.are.equal("rpc error: code = FailedPrecondition desc = plugin not healthy", body)
  end)

  it("keeps the trailing space of an empty message", function()
    local _, body = check(fake_ctx.error("UNAVAILABLE", ""))
    assert.are.equal("rpc error: code = Unavailable desc = ", body)
  end)

  it("reports a slow probe as a deadline", function()
    local healthy, body = check(fake_ctx.timeout())
    assert.is_false(healthy)
    assert.are.equal("rpc error: code = DeadlineExceeded desc = context deadline exceeded", body)
  end)

  it("reports an unreachable driver as upstream's bare context error", function()
    local healthy, body = check(fake_ctx.unreachable())
    assert.is_false(healthy)
    assert.are.equal("context deadline exceeded", body)
  end)

  it("leaves the HTTP status to the defaults", function()
    local _, _, status = check(fake_ctx.ok())
    assert.is_nil(status)
  end)

  it("probes with the default timeout, once", function()
    local ctx = fake_ctx.new()
    policy.check(ctx)
    assert.are.same({ { "probe", nil } }, ctx.calls)
  end)
end)
