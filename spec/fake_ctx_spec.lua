-- The fake ctx's ctx.call and ctx.file keep the daemon's rules (README
-- "Deeper health"), so a policy spec fails where the daemon would.
local fake_ctx = require("spec.support.fake_ctx")

describe("spec/support/fake_ctx.lua ctx.call", function()
  it("answers each read-only method with plausible fields by default", function()
    local ctx = fake_ctx.new({})
    assert.are.equal("fake-node", ctx.call("NodeGetInfo").node_id)
    assert.are.same({ "CONTROLLER_SERVICE" }, ctx.call("GetPluginCapabilities").capabilities)
    local r = ctx.call("ControllerGetCapabilities", {}, 0.5)
    assert.is_true(r.ok)
    assert.are.equal("OK", r.code)
    assert.are.same({ "call", "ControllerGetCapabilities", 0.5 }, ctx.calls[3])
  end)

  it("plays scripted replies in order, the last one repeating", function()
    local ctx = fake_ctx.new({ replies = { NodeGetInfo = {
      fake_ctx.error("UNAVAILABLE", "down"), fake_ctx.reply({ node_id = "n2" }) } } })
    assert.is_false(ctx.call("NodeGetInfo").ok)
    assert.are.equal("n2", ctx.call("NodeGetInfo").node_id)
    assert.are.equal("n2", ctx.call("NodeGetInfo").node_id)
  end)

  it("raises for other methods, naming the allowed ones, and for request fields", function()
    local ctx = fake_ctx.new({})
    local ok, err = pcall(ctx.call, "NodeUnpublishVolume")
    assert.is_false(ok)
    assert.matches("allowed: GetPluginInfo, GetPluginCapabilities, NodeGetInfo, "
                   .. "NodeGetCapabilities, ControllerGetCapabilities", err, 1, true)
    assert.has_error(function() ctx.call("Probe") end)
    assert.has_error(function() ctx.call("NodeGetInfo", { volume_id = "v" }) end)
  end)
end)

describe("spec/support/fake_ctx.lua ctx.file", function()
  local allow = { "/var/lib/kubelet/plugins_registry" }

  it("answers from files, missing by default", function()
    local sock = "/var/lib/kubelet/plugins_registry/x-reg.sock"
    local ctx = fake_ctx.new({ allow_paths = allow,
                               files = { [sock] = fake_ctx.file_exists("socket") } })
    assert.are.equal("socket", ctx.file(sock).type)
    assert.is_false(ctx.file("/var/lib/kubelet/plugins_registry/other").exists)
  end)

  it("raises outside the allowed directories, after resolving ..", function()
    local ctx = fake_ctx.new({ allow_paths = allow })
    assert.has_error(function() ctx.file("/var/lib/kubelet/plugins_registry/../pods") end)
    assert.has_error(function() ctx.file("/var/lib/kubelet/plugins_registry_evil") end)
    assert.has_error(function() ctx.file("relative/path") end)
    assert.has_error(function() fake_ctx.new({}).file("/var/lib/kubelet/plugins_registry/x") end)
    assert.is_false(ctx.file("/var/lib/kubelet/plugins_registry/a/../b").exists)
  end)
end)
