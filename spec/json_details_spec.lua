local fake_ctx = require("spec.support.fake_ctx")
local policy = fake_ctx.load("examples/policies/json_details.lua")

describe("examples/policies/json_details.lua", function()
  it("encodes JSON values", function()
    local e = policy.encode
    assert.are.equal('null', e(nil))
    assert.are.equal('true', e(true))
    assert.are.equal('42', e(42))
    assert.are.equal('0.25', e(0.25))
    assert.are.equal('"a\\"b\\\\c\\n\\u0001"', e('a"b\\c\n\1'))
    assert.are.equal('[1,2,3]', e({ 1, 2, 3 }))
    assert.are.equal('{"a":1,"b":"x"}', e({ b = "x", a = 1 }))
    assert.are.equal('{}', e({}))
  end)

  it("reports the verdict and the probes, oldest first", function()
    local history = { fake_ctx.ok(true), fake_ctx.error("UNAVAILABLE", "down") }
    history[1].at, history[2].at = 10, 11
    local ctx = fake_ctx.new({ probes = { fake_ctx.ok(nil, 0.5) }, history = history, now = 12 })
    local healthy, body = policy.check(ctx)
    assert.is_true(healthy)
    assert.are.equal('{"driver":"fake.csi.example.com","healthy":true,"probes":['
      .. '{"at":10,"code":"OK","connected":true,"ready":true,"seconds":0.001},'
      .. '{"at":11,"code":"UNAVAILABLE","connected":true,"error":"rpc error: code = Unavailable desc = down","seconds":0.001},'
      .. '{"at":12.5,"code":"OK","connected":true,"seconds":0.5}],"reason":"ok"}', body)
  end)

  it("fails as the built-in policy does, with the reason in the body", function()
    local healthy, body = policy.check(fake_ctx.new({ probes = { fake_ctx.ok(false) } }))
    assert.is_false(healthy)
    assert.matches('"reason":"driver responded but is not ready"', body, 1, true)
  end)

  it("keeps at most 16 probes", function()
    local history = {}
    for i = 1, 16 do history[i] = fake_ctx.ok(); history[i].at = i end
    local _, body = policy.check(fake_ctx.new({ history = history }))
    local _, n = body:gsub('"code":', "")
    assert.are.equal(16, n)
    assert.is_nil(body:find('"at":1,', 1, true))
  end)
end)
