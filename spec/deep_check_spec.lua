local fake_ctx = require("spec.support.fake_ctx")
local policy = fake_ctx.load("examples/policies/deep_check.lua")

local REGISTRY = "/var/lib/kubelet/plugins_registry"
local SOCKET = REGISTRY .. "/fake.csi.example.com-reg.sock"

-- A ctx with the registry allowed, as the example's Pod runs it.
local function new(opts)
  opts.allow_paths = opts.allow_paths or { REGISTRY }
  return fake_ctx.new(opts)
end

describe("examples/policies/deep_check.lua", function()
  it("is healthy when Probe, NodeGetInfo and the registration socket all answer", function()
    local ctx = new({ files = { [SOCKET] = fake_ctx.file_exists("socket") } })
    assert.are.same({ true, "ok" }, { policy.check(ctx) })
    assert.are.same({ { "probe", nil }, { "call", "NodeGetInfo", nil }, { "file", SOCKET } },
                    ctx.calls)
  end)

  it("fails with upstream's words when Probe fails, and asks nothing more", function()
    local ctx = new({ probes = { fake_ctx.unreachable() } })
    assert.are.same({ false, "context deadline exceeded" }, { policy.check(ctx) })
    assert.are.equal(1, #ctx.calls)
  end)

  it("fails when NodeGetInfo fails or hangs, though Probe is fine", function()
    local ctx = new({ replies = { NodeGetInfo = { fake_ctx.error("UNAVAILABLE", "backend lost") } } })
    assert.are.same({ false, "NodeGetInfo failed: rpc error: code = Unavailable desc = backend lost" },
                    { policy.check(ctx) })
    ctx = new({ replies = { NodeGetInfo = { fake_ctx.timeout(0.9) } } })
    local healthy, body = policy.check(ctx)
    assert.is_false(healthy)
    assert.matches("DeadlineExceeded", body)
  end)

  it("fails on an empty node_id", function()
    local ctx = new({ replies = { NodeGetInfo = { fake_ctx.reply({ node_id = "" }) } },
                      files = { [SOCKET] = fake_ctx.file_exists("socket") } })
    assert.are.same({ false, "NodeGetInfo answered an empty node_id" }, { policy.check(ctx) })
  end)

  it("fails when the registration socket is missing, not a socket, or its stat hangs", function()
    local ctx = new({})
    assert.are.same({ false, "registration socket " .. SOCKET .. " is missing" },
                    { policy.check(ctx) })
    ctx = new({ files = { [SOCKET] = fake_ctx.file_exists("file") } })
    assert.are.same({ false, "registration socket " .. SOCKET .. " is a file, not a socket" },
                    { policy.check(ctx) })
    ctx = new({ files = { [SOCKET] = fake_ctx.file_timed_out(SOCKET) } })
    local healthy, body = policy.check(ctx)
    assert.is_false(healthy)
    assert.matches("timed out", body)
  end)

  it("raises without --policy-allow-path, as the daemon does (it then falls back)", function()
    local ctx = fake_ctx.new({})
    assert.has_error(function() policy.check(ctx) end)
  end)

  it("leaves /readyz and /startupz to the built-in policy", function()
    assert.is_nil(rawget(policy, "ready"))
    assert.is_nil(rawget(policy, "startup"))
  end)
end)
