local fake_ctx = require("spec.support.fake_ctx")
local policy = fake_ctx.load("examples/policies/deep_check_controller.lua")

describe("examples/policies/deep_check_controller.lua", function()
  it("is healthy when the controller answers with the required capability", function()
    local ctx = fake_ctx.new({})
    assert.are.same({ true, "ok" }, { policy.check(ctx) })
    assert.are.same({ { "probe", nil }, { "call", "ControllerGetCapabilities", nil } }, ctx.calls)
  end)

  it("fails with upstream's words when Probe fails", function()
    local ctx = fake_ctx.new({ probes = { fake_ctx.error("FAILED_PRECONDITION", "down") } })
    assert.are.same({ false, "rpc error: code = FailedPrecondition desc = down" },
                    { policy.check(ctx) })
  end)

  it("fails when ControllerGetCapabilities fails though Probe is fine", function()
    local ctx = fake_ctx.new({ replies = {
      ControllerGetCapabilities = { fake_ctx.error("INTERNAL", "no backend") } } })
    assert.are.same({ false, "ControllerGetCapabilities failed: rpc error: code = Internal "
                             .. "desc = no backend" }, { policy.check(ctx) })
  end)

  it("fails when the required capability is gone", function()
    local ctx = fake_ctx.new({ replies = {
      ControllerGetCapabilities = { fake_ctx.reply({ capabilities = { "LIST_VOLUMES" } }) } } })
    assert.are.same({ false, "the controller no longer claims CREATE_DELETE_VOLUME" },
                    { policy.check(ctx) })
  end)
end)
