-- Specs load policies in the daemon's own sandbox (lua/sandbox.lua): a
-- policy that breaks its rules fails its spec as it fails in the daemon.
local fake_ctx = require("spec.support.fake_ctx")

local function policy_file(body)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write("local policy = {}\nfunction policy.check(ctx)\n", body, "\nend\nreturn policy\n")
  f:close()
  return path
end

local function check_with(body)
  local path = policy_file(body)
  local policy = fake_ctx.load(path)
  os.remove(path)
  return policy.check(fake_ctx.new())
end

describe("a policy loaded by fake_ctx", function()
  it("cannot reach os, io, debug, require or coroutine", function()
    assert.has_error(function() check_with("return os.time() > 0") end)
    assert.has_error(function() check_with("return io.open('/etc/hostname') ~= nil") end)
    assert.has_error(function() check_with("return debug.getinfo(1) ~= nil") end)
    assert.has_error(function() check_with("return require('x')") end)
    assert.has_error(function() check_with("return coroutine.running() ~= nil") end)
  end)

  it("cannot write a global or a library table", function()
    local ok, err = pcall(check_with, "x = 1 return true")
    assert.is_false(ok)
    assert.matches("attempt to write 'x' in a read-only table", err, nil, true)
    ok, err = pcall(check_with, "string.upper = nil return true")
    assert.is_false(ok)
    assert.matches("attempt to write 'upper' in a read-only table", err, nil, true)
    ok, err = pcall(check_with, "rawset(string, 'upper', nil) return true")
    assert.is_false(ok)
    assert.matches("global 'rawset'", err, nil, true)
  end)

  it("gets the same wrapped functions as in the daemon", function()
    local ok, err = pcall(check_with, "collectgarbage('stop') return true")
    assert.is_false(ok)
    assert.matches('only "count" is allowed', err, nil, true)
    assert.is_true(check_with("return string.dump == nil"))
    local _, load_err = check_with("return load(function() return nil end)")
    assert.are.equal("load: only text chunks are allowed in a policy", load_err)
    local ok2, err2 = pcall(check_with,
      "setmetatable({}, {__gc = function() end}) return true")
    assert.is_false(ok2)
    assert.matches("__gc metamethods are not allowed", err2, nil, true)
  end)

  it("still runs a well-behaved policy", function()
    local path = policy_file("local r = ctx.probe() return r.ok, string.upper('ok')")
    local policy = fake_ctx.load(path)
    os.remove(path)
    local healthy, body = policy.check(fake_ctx.new())
    assert.is_true(healthy)
    assert.are.equal("OK", body)
  end)
end)
