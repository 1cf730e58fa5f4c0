"""Deeper health (README "Deeper health"): ctx.call and ctx.file end to end.

The sidecar runs a policy that makes read-only CSI calls to csi-mock-driver
(whose --call-log says what it was asked) and stats files under
--policy-allow-path; the examples deep_check.lua and
deep_check_controller.lua run against the mock as their Pods would run them.
"""
import json
import os
import socket
import time

import lpharness as h

EXAMPLES = os.path.join(h.SOURCE_DIR, "examples", "policies")
DRIVER = "mock.csi.example.com"  # the mock's default --name
CALL_LOG_KEYS = {"time", "method", "request", "code", "seconds"}


class DeepTest(h.LPTestCase):

    def policy_daemon(self, policy_text, *args, mock_args=()):
        """A mock (with a call log) and a daemon running policy_text."""
        self.call_log = os.path.join(self.tmp, "calls.jsonl")
        mock = self.start_mock("--call-log=" + self.call_log, *mock_args)
        policy = self.write_file("policy.lua", policy_text)
        port = h.free_port()
        d = self.start_daemon("--http-endpoint=127.0.0.1:%d" % port, "--policy=" + policy,
                              *args, csi=mock.socket_path, port=port,
                              health_port_flag=False)
        return mock, d

    def wait_body(self, d, want, within=5.0):
        """Asks /healthz until the policy (loaded in its worker) answers want."""
        deadline = time.monotonic() + h.scaled(within)
        last = None
        while time.monotonic() < deadline:
            last = d.request()
            if last.body == want.encode():
                return last
            time.sleep(0.05)
        self.fail("/healthz never answered %r (last %r); stderr tail:\n%s"
                  % (want, last, d.stderr()[-2000:]))

    def calls(self):
        """The mock's call log, parsed: one dict per line."""
        with open(self.call_log) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        for entry in lines:
            self.assertEqual(set(entry), CALL_LOG_KEYS, entry)
            self.assertRegex(entry["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertGreaterEqual(entry["seconds"], 0)
        return lines

    def metrics(self, d):
        r = d.request(path="/metrics")
        self.assertEqual(r.status, 200)
        return h.parse_metrics(r.text())

    # ctx.call ---------------------------------------------------------------

    def test_each_call_returns_its_reply_as_lua_values(self):
        policy = r"""
local p = {}
function p.check(ctx)
  local info = ctx.call("NodeGetInfo")
  local node = ctx.call("NodeGetCapabilities", {})
  local ctrl = ctx.call("ControllerGetCapabilities", nil, 0.5)
  local plugin = ctx.call("GetPluginInfo")
  local pcaps = ctx.call("GetPluginCapabilities")
  return true, table.concat({
    tostring(info.ok), info.code, info.node_id, math.type(info.max_volumes_per_node),
    tostring(info.max_volumes_per_node),
    info.accessible_topology.segments["topology.example.com/zone"],
    table.concat(node.capabilities, "+"), table.concat(ctrl.capabilities, "+"),
    plugin.name, plugin.vendor_version, table.concat(pcaps.capabilities, "+"),
    math.type(info.at), tostring(info.seconds < 1)}, " ")
end
return p
"""
        mock, d = self.policy_daemon(policy, mock_args=(
            "--node-id=node-e2e", "--max-volumes-per-node=16",
            "--topology=topology.example.com/zone=z1",
            "--node-capabilities=STAGE_UNSTAGE_VOLUME,EXPAND_VOLUME",
            "--controller-capabilities=LIST_VOLUMES",
            "--plugin-capabilities=CONTROLLER_SERVICE,VOLUME_EXPANSION_ONLINE",
            "--vendor-version=9.9.9"))
        self.wait_body(d, "true OK node-e2e integer 16 z1 STAGE_UNSTAGE_VOLUME+EXPAND_VOLUME "
                          "LIST_VOLUMES %s 9.9.9 CONTROLLER_SERVICE+VOLUME_EXPANSION_ONLINE "
                          "float true" % DRIVER)
        # The mock was asked exactly these, with empty requests, in order.
        asked = [c for c in self.calls() if c["method"] in (
            "NodeGetInfo", "NodeGetCapabilities", "ControllerGetCapabilities",
            "GetPluginCapabilities")]
        self.assertEqual([c["method"] for c in asked[:4]],
                         ["NodeGetInfo", "NodeGetCapabilities", "ControllerGetCapabilities",
                          "GetPluginCapabilities"])
        for c in asked:
            self.assertEqual(c["request"], {}, c)
            self.assertEqual(c["code"], "OK", c)
        # Counted as upstream's sidecars count their calls, by method path.
        m = self.metrics(d)
        for path in ("/csi.v1.Node/NodeGetInfo", "/csi.v1.Node/NodeGetCapabilities",
                     "/csi.v1.Controller/ControllerGetCapabilities",
                     "/csi.v1.Identity/GetPluginCapabilities"):
            key = ('csi_sidecar_operations_seconds_count{driver_name="%s",'
                   'grpc_status_code="OK",method_name="%s"}' % (DRIVER, path))
            self.assertGreaterEqual(m.get(key, 0), 1, (key, sorted(m)[:40]))

    def test_errors_hangs_and_bad_replies_are_results_not_raises(self):
        script = self.write_file("driver.lua", r"""
local d = {}
function d.node_get_info(call) return { code = "FAILED_PRECONDITION", message = "backend lost" } end
function d.controller_get_capabilities(call) return { hang = true } end
function d.get_plugin_capabilities(call) return { action = "invalid_response" } end
function d.node_get_capabilities(call) return { action = "oversized_response", size = 70000 } end
return d
""")
        policy = r"""
local p = {}
function p.check(ctx)
  local a = ctx.call("NodeGetInfo")
  local b = ctx.call("ControllerGetCapabilities", 0.3)
  local c = ctx.call("GetPluginCapabilities")
  local e = ctx.call("NodeGetCapabilities")
  local ok, err = pcall(ctx.call, "NodeUnpublishVolume")
  return true, table.concat({
    a.code, a.message, a.error, tostring(a.node_id),
    b.code, b.message, string.format("%.1f", b.seconds),
    c.code, c.message,
    e.code, tostring(e.message:match("^the reply is 7000[01] bytes, more than the 65536 a "
      .. "read%-only call may answer$") ~= nil), tostring(e.capabilities),
    tostring(ok), tostring(err:find("allowed: GetPluginInfo, GetPluginCapabilities, "
      .. "NodeGetInfo, NodeGetCapabilities, ControllerGetCapabilities", 1, true) ~= nil)}, "|")
end
return p
"""
        mock, d = self.policy_daemon(policy, "--check-timeout=3s",
                                     mock_args=("--script=" + script,))
        self.wait_body(d, "|".join([
            "FAILED_PRECONDITION", "backend lost",
            "rpc error: code = FailedPrecondition desc = backend lost", "nil",
            "DEADLINE_EXCEEDED", "context deadline exceeded", "0.3",
            "INTERNAL", "grpc: failed to unmarshal the received message: 3 bytes are no valid "
                        "csi.v1.GetPluginCapabilitiesResponse",
            "RESOURCE_EXHAUSTED", "true", "nil",
            "false", "true"]), within=10)
        calls = self.calls()
        by_method = {}
        for c in calls:
            by_method.setdefault(c["method"], []).append(c)
        self.assertEqual(by_method["NodeGetInfo"][0]["code"], "FAILED_PRECONDITION")
        # The hung call ended when the sidecar gave up on it, at its 0.3 s.
        h.wait_until(lambda: "ControllerGetCapabilities" in
                     {c["method"] for c in self.calls()}, 3)
        hung = [c for c in self.calls() if c["method"] == "ControllerGetCapabilities"][0]
        self.assertEqual(hung["code"], "CANCELLED")
        self.assertGreaterEqual(hung["seconds"], 0.25)
        # A write RPC never reaches the driver.
        self.assertNotIn("NodeUnpublishVolume", by_method)

    # ctx.file ---------------------------------------------------------------

    def make_tree(self):
        """tmp/allowed (a socket, a file, a dir, links in and out), tmp/outside/secret."""
        allowed = os.path.join(self.tmp, "allowed")
        outside = os.path.join(self.tmp, "outside")
        os.makedirs(os.path.join(allowed, "sub"))
        os.makedirs(outside)
        self.write_file("secret", "s", outside)
        self.write_file("file", "12345", allowed)
        os.symlink("file", os.path.join(allowed, "link-in"))
        os.symlink("../outside/secret", os.path.join(allowed, "link-out"))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(os.path.join(allowed, "reg.sock"))
        self.addCleanup(sock.close)
        return allowed

    def test_file_types_missing_and_escapes(self):
        allowed = self.make_tree()
        policy = r"""
local A = @ALLOWED@
local p = {}
local function try(ctx, path)
  local ok, r = pcall(ctx.file, path)
  if not ok then return "raise" end
  if r.error then return "error" end
  if not r.exists then return "missing" end
  return r.type
end
function p.check(ctx)
  local f = ctx.file(A .. "/file")
  return true, table.concat({
    try(ctx, A .. "/reg.sock"), try(ctx, A .. "/file"), try(ctx, A .. "/sub"),
    try(ctx, A .. "/link-in"), try(ctx, A .. "/missing"), try(ctx, A .. "/missing/deeper"),
    try(ctx, A .. "/../outside/secret"), try(ctx, A .. "/link-out"),
    try(ctx, A .. "/missing/../../outside/secret"), try(ctx, A .. "-evil"),
    try(ctx, "relative/path"), tostring(f.size), tostring(f.age >= 0 and f.age < 600)}, ",")
end
return p
""".replace("@ALLOWED@", json.dumps(allowed))
        mock, d = self.policy_daemon(policy, "--policy-allow-path=" + allowed)
        self.wait_body(d, "socket,file,dir,file,missing,missing,raise,raise,raise,raise,raise,"
                          "5,true")

    def test_file_without_allow_path_raises_and_falls_back(self):
        policy = 'return {check = function(ctx) ctx.file("/tmp") return true, "x" end}'
        mock, d = self.policy_daemon(policy)

        def raised():
            r = d.request()  # checks run on request; the first may come before the policy
            self.assertEqual((r.status, r.body), (200, b"ok"))  # the built-in policy's answer
            return any("no directory is allowed" in line for line in d.log_lines())
        h.wait_until(raised, 5, interval=0.05)
        lines = [line for line in d.log_lines() if "no directory is allowed" in line]
        self.assertTrue(lines, d.stderr()[-2000:])
        self.assertIn("Policy failed, answering with the built-in policy", lines[0])
        self.assertIn('reason="error"', lines[0])

    def test_relative_or_missing_allow_path_exits_2(self):
        for value, reason in (("var/lib", "must be an absolute path"),
                              (os.path.join(self.tmp, "missing"), "No such file or directory"),
                              (self.write_file("f", "x"), "not a directory")):
            rc, out, err = self.run_daemon("--policy-allow-path=" + value)
            self.assertEqual(rc, 2, err)
            self.assertIn('invalid value "%s" for flag -policy-allow-path: %s' % (value, reason),
                          err)

    def test_check_policy_simulates_calls_and_files(self):
        policy = self.write_file("sim.lua", r"""
return { check = function(ctx)
  local p = ctx.probe()
  local info = ctx.call("NodeGetInfo")
  local caps = ctx.call("ControllerGetCapabilities")
  local f = ctx.file("/var/lib/kubelet/plugins_registry/x-reg.sock")
  if not info.ok then return false, "call: " .. info.code end
  return true, table.concat({info.node_id, caps.capabilities[1], tostring(f.exists),
                             tostring(f.type)}, " ")
end }
""")
        rc, out, err = self.run_daemon("--check-policy=" + policy)
        self.assertEqual(rc, 0, err)
        rows = {line[2:22].strip(): line[23:] for line in err.splitlines()
                if line.startswith("  ")}
        for case in ("ready", "not ready", "ready absent"):
            self.assertEqual(rows[case], "200 check-policy-node CREATE_DELETE_VOLUME true socket")
        self.assertEqual(rows["FAILED_PRECONDITION"], "500 call: FAILED_PRECONDITION")

    # The examples -------------------------------------------------------------

    def deep_check_policy(self, registry):
        """examples/policies/deep_check.lua with its REGISTRY pointed at registry."""
        with open(os.path.join(EXAMPLES, "deep_check.lua")) as f:
            text = f.read()
        line = 'local REGISTRY = "/var/lib/kubelet/plugins_registry"'
        self.assertIn(line, text)
        return text.replace(line, "local REGISTRY = %s" % json.dumps(registry))

    def test_deep_check_example(self):
        registry = os.path.join(self.tmp, "plugins_registry")
        os.makedirs(registry)
        reg_path = os.path.join(registry, DRIVER + "-reg.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(reg_path)
        self.addCleanup(sock.close)
        mock, d = self.policy_daemon(self.deep_check_policy(registry),
                                     "--policy-allow-path=" + registry)
        self.wait_body(d, "ok")
        self.assertIn("NodeGetInfo", {c["method"] for c in self.calls()})
        # The registration socket goes: unhealthy, saying so.
        os.unlink(reg_path)
        r = self.wait_body(d, "registration socket %s is missing" % reg_path)
        self.assertEqual(r.status, 500)
        self.write_file(DRIVER + "-reg.sock", "not a socket", registry)
        self.wait_body(d, "registration socket %s is a file, not a socket" % reg_path)

    def test_deep_check_example_node_server_down(self):
        registry = os.path.join(self.tmp, "plugins_registry")
        os.makedirs(registry)
        script = self.write_file("driver.lua", r"""
return { node_get_info = function(call) return { code = "UNAVAILABLE", message = "node server wedged" } end }
""")
        mock, d = self.policy_daemon(self.deep_check_policy(registry),
                                     "--policy-allow-path=" + registry,
                                     mock_args=("--script=" + script,))
        r = self.wait_body(d, "NodeGetInfo failed: rpc error: code = Unavailable desc = node "
                              "server wedged")
        self.assertEqual(r.status, 500)

    def test_deep_check_controller_example(self):
        with open(os.path.join(EXAMPLES, "deep_check_controller.lua")) as f:
            text = f.read()
        mock, d = self.policy_daemon(text)
        self.wait_body(d, "ok")
        self.stop_daemon(d)
        self.stop_mock(mock)
        mock, d = self.policy_daemon(text, mock_args=("--controller-capabilities=LIST_VOLUMES",))
        r = self.wait_body(d, "the controller no longer claims CREATE_DELETE_VOLUME")
        self.assertEqual(r.status, 500)


if __name__ == "__main__":
    h.main()
