"""csi-mock-driver's services: Identity, Node and Controller answered from
the flags, by --script hooks, or UNIMPLEMENTED; unknown paths; the stdout
lines; and --call-log, one JSON line per call.

Calls are made with csi-call (tests/tools/csi_call.c: Python has no gRPC
here), and replies decoded with the small protobuf wire reader below. Enum
values are the CSI spec's numbers.
"""

import json
import os
import re
import socket
import subprocess
import time
import unittest

import lpharness as h
from lpharness import (CSI_CALL, INFO, PLUGIN_CAPS, PROBE, NODE_INFO, NODE_CAPS, CONTROLLER_CAPS,
                       PUBLISH, CREATE)

LOG_KEYS = {"time", "method", "request", "code", "seconds"}
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# ---------------------------------------------------------------------------
# The protobuf wire format: varints and length-delimited fields are all the
# CSI replies use.

def _varint(data, i):
    value = shift = 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7f) << shift
        shift += 7
        if b < 0x80:
            return value, i


def fields(data):
    """{field number: [values]}: ints for varints, bytes for the rest."""
    out = {}
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            n, i = _varint(data, i)
            value = data[i:i + n]
            i += n
        else:
            raise ValueError("wire type %d" % wire)
        out.setdefault(number, []).append(value)
    return out


def rpc_caps(reply):
    """Node/ControllerGetCapabilitiesResponse → the RPC types, in order."""
    return [fields(fields(c)[1][0]).get(1, [0])[0] for c in fields(reply).get(1, [])]


def plugin_caps(reply):
    """GetPluginCapabilitiesResponse → [("service" | "expansion", type)]."""
    out = []
    for c in fields(reply).get(1, []):
        ((number, (inner,)),) = fields(c).items()
        out.append(({1: "service", 2: "expansion"}[number], fields(inner).get(1, [0])[0]))
    return out


def node_info(reply):
    """NodeGetInfoResponse → (node_id, max_volumes_per_node, topology dict or None)."""
    f = fields(reply)
    topology = None
    if 3 in f:
        topology = {}
        for entry in fields(f[3][0]).get(1, []):
            e = fields(entry)
            topology[e.get(1, [b""])[0].decode()] = e.get(2, [b""])[0].decode()
    return f.get(1, [b""])[0].decode(), f.get(2, [0])[0], topology


# ---------------------------------------------------------------------------

class ServiceCase(h.LPTestCase):

    def setUp(self):
        super().setUp()
        self.assertTrue(os.access(CSI_CALL, os.X_OK), "no csi-call at %s" % CSI_CALL)
        self.log_path = os.path.join(self.tmp, "calls.jsonl")

    def mock(self, *args, log=True, wait=True):
        if log:
            args = args + ("--call-log=" + self.log_path,)
        return self.start_mock(*args, wait=wait)

    def call(self, mock, path, timeout=None):
        """One call; returns (code, message, reply bytes or None, seconds)."""
        timeout = timeout or h.scaled(10)
        t0 = time.monotonic()
        p = subprocess.run([CSI_CALL, mock.socket_path, path, "%g" % timeout],
                           capture_output=True, text=True, timeout=timeout + h.scaled(10))
        elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        reply = None if out["reply_hex"] is None else bytes.fromhex(out["reply_hex"])
        return out["code"], out["message"], reply, elapsed

    def ok(self, mock, path):
        code, message, reply, _ = self.call(mock, path)
        self.assertEqual((code, message), ("OK", ""))
        self.assertIsNotNone(reply)
        return reply

    def log_lines(self, n, timeout=5.0):
        """The call log's lines, once there are n (a line is written when its call ends)."""
        def read():
            try:
                with open(self.log_path) as f:
                    return f.read().splitlines()
            except FileNotFoundError:
                return []
        self.assertTrue(h.wait_until(lambda: len(read()) >= n, timeout),
                        "call log: %r" % read())
        lines = read()
        self.assertEqual(len(lines), n, lines)
        return [json.loads(line) for line in lines]

    def call_lines(self, mock):
        return [line for line in mock.stdout().splitlines() if line.startswith("call ")]

    def script(self, text):
        return self.script_flag("driver.lua", text)


class ReadOnlyDefaults(ServiceCase):

    def test_every_read_only_method_answers_from_the_defaults(self):
        m = self.mock()
        self.assertEqual(self.ok(m, PROBE), b"")  # ready unset: no field
        info = fields(self.ok(m, INFO))
        self.assertEqual(info, {1: [h.MOCK_NAME.encode()], 2: [b"0.1.0"]})
        self.assertEqual(plugin_caps(self.ok(m, PLUGIN_CAPS)), [("service", 1)])
        self.assertEqual(node_info(self.ok(m, NODE_INFO)), (socket.gethostname(), 0, None))
        self.assertEqual(rpc_caps(self.ok(m, NODE_CAPS)), [1, 2])
        self.assertEqual(rpc_caps(self.ok(m, CONTROLLER_CAPS)), [1, 2])
        self.assertEqual(self.call_lines(m), [
            "call method=Probe n=1", "call method=GetPluginInfo n=1",
            "call method=GetPluginCapabilities n=1", "call method=NodeGetInfo n=1",
            "call method=NodeGetCapabilities n=1", "call method=ControllerGetCapabilities n=1"])

    def test_flags_set_the_data(self):
        m = self.mock("--node-id=node-7", "--max-volumes-per-node=16",
                      "--topology=topology.kubernetes.io/zone=z1,kubernetes.io/hostname=h=1",
                      "--plugin-capabilities=CONTROLLER_SERVICE,VOLUME_ACCESSIBILITY_CONSTRAINTS,"
                      "VOLUME_EXPANSION_ONLINE",
                      "--node-capabilities=EXPAND_VOLUME,VOLUME_CONDITION",
                      "--controller-capabilities=")
        self.assertEqual(node_info(self.ok(m, NODE_INFO)),
                         ("node-7", 16, {"topology.kubernetes.io/zone": "z1",
                                         "kubernetes.io/hostname": "h=1"}))
        self.assertEqual(plugin_caps(self.ok(m, PLUGIN_CAPS)),
                         [("service", 1), ("service", 2), ("expansion", 1)])
        self.assertEqual(rpc_caps(self.ok(m, NODE_CAPS)), [3, 4])
        self.assertEqual(self.ok(m, CONTROLLER_CAPS), b"")  # "": no capabilities

    def test_empty_node_id_on_purpose(self):
        m = self.mock("--node-id=")
        self.assertEqual(self.ok(m, NODE_INFO), b"")

    def test_bad_values_exit_2_with_go_messages(self):
        cases = [
            ("--max-volumes-per-node=-1",
             'invalid value "-1" for flag -max-volumes-per-node: must be at least 0'),
            ("--topology=zone", 'invalid value "zone" for flag -topology: want key=value'),
            ("--node-capabilities=NOPE",
             'invalid value "NOPE" for flag -node-capabilities: unknown capability NOPE '
             "(known: UNKNOWN, STAGE_UNSTAGE_VOLUME,"),
            ("--plugin-capabilities=ONLINE", "VOLUME_EXPANSION_ONLINE, VOLUME_EXPANSION_OFFLINE)"),
        ]
        for arg, message in cases:
            with self.subTest(arg=arg):
                m = self.mock(arg, log=False, wait=False)
                self.assertEqual(m.wait(h.scaled(10)), 2)
                self.assertIn(message, m.stderr())
                self.assertIn("Usage of csi-mock-driver:", m.stderr())
                self.assertFalse(os.path.exists(m.socket_path))

    def test_version_prints_and_exits_0_without_serving(self):
        r = subprocess.run([h.LP_MOCK, "--version", "--csi-address=" + os.path.join(self.tmp, "v.sock")],
                           capture_output=True, text=True, timeout=h.scaled(10))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertRegex(r.stdout, r"^csi-mock-driver [0-9]+\.[0-9]+\.[0-9]+\n$")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "v.sock")))

    def test_call_log_that_cannot_be_opened_exits_2(self):
        path = os.path.join(self.tmp, "no", "such", "calls.jsonl")
        m = self.start_mock("--call-log=" + path, wait=False)
        self.assertEqual(m.wait(h.scaled(10)), 2)
        logged = [kv for _, msg, kv in filter(None, map(h.parse_klog, m.stderr().splitlines()))
                  if msg == "Cannot open the call log"]
        self.assertEqual(logged, [{"err": path + ": No such file or directory"}], m.stderr())
        self.assertFalse(os.path.exists(m.socket_path))


class OtherMethods(ServiceCase):

    def test_unimplemented_without_a_hook(self):
        m = self.mock()
        for path, name, hook in ((PUBLISH, "NodePublishVolume", "node_publish_volume"),
                                 (CREATE, "CreateVolume", "create_volume")):
            code, message, reply, _ = self.call(m, path)
            self.assertEqual(code, "UNIMPLEMENTED")
            self.assertEqual(message, "csi-mock-driver does not implement %s "
                                      "(a --script hook %s can answer it)" % (name, hook))
            self.assertIsNone(reply)
        self.call(m, PUBLISH)
        self.assertEqual(self.call_lines(m), ["call method=NodePublishVolume n=1",
                                              "call method=CreateVolume n=1",
                                              "call method=NodePublishVolume n=2"])

    def test_unknown_path(self):
        m = self.mock()
        code, message, reply, _ = self.call(m, "/csi.v1.Node/NoSuchMethod")
        self.assertEqual((code, message, reply),
                         ("UNIMPLEMENTED", "unknown method /csi.v1.Node/NoSuchMethod", None))
        self.call(m, "/other.Service/X")
        self.assertEqual(self.call_lines(m), ["call method=other n=1", "call method=other n=2"])
        lines = self.log_lines(2)
        self.assertEqual([(l["method"], l["request"], l["code"]) for l in lines],
                         [("/csi.v1.Node/NoSuchMethod", None, "UNIMPLEMENTED"),
                          ("/other.Service/X", None, "UNIMPLEMENTED")])

    def test_a_hook_answers_ok_error_delayed_hung(self):
        m = self.mock(self.script("""
            local d = {}
            function d.node_publish_volume(call)
              local answers = {
                {},                                            -- OK, empty message
                {code = "NOT_FOUND", message = "no volume " .. call.n},
                {delay = 0.3},                                 -- OK, later
                {hang = true},                                 -- never
                {delay = 30},                                  -- past the client's deadline
              }
              if call.n == 7 then return {hang = true} end     -- at shutdown
              return answers[call.n]                           -- 6: nil, UNIMPLEMENTED
            end
            return d"""))
        code, message, reply, _ = self.call(m, PUBLISH)
        self.assertEqual((code, message, reply), ("OK", "", b""))
        code, message, reply, _ = self.call(m, PUBLISH)
        self.assertEqual((code, message, reply), ("NOT_FOUND", "no volume 2", None))
        code, _, reply, elapsed = self.call(m, PUBLISH)
        self.assertEqual((code, reply), ("OK", b""))
        self.assertGreaterEqual(elapsed, 0.3)
        for _ in range(2):
            code, _, _, elapsed = self.call(m, PUBLISH, timeout=0.5)
            self.assertEqual(code, "DEADLINE_EXCEEDED")
            self.assertLess(elapsed, 0.5 + h.scaled(1.0))
        code, message, _, _ = self.call(m, PUBLISH)
        self.assertEqual(code, "UNIMPLEMENTED")
        self.assertIn("node_publish_volume", message)

        lines = self.log_lines(6)
        self.assertEqual([(l["method"], l["request"], l["code"]) for l in lines],
                         [("NodePublishVolume", None, c) for c in
                          ("OK", "NOT_FOUND", "OK", "CANCELLED", "CANCELLED", "UNIMPLEMENTED")])
        self.assertGreaterEqual(lines[2]["seconds"], 0.3)
        for cancelled in lines[3:5]:  # ended by the client's deadline
            self.assertGreaterEqual(cancelled["seconds"], 0.45)
            self.assertLess(cancelled["seconds"], 0.5 + h.scaled(1.0))

        # A call still hanging at SIGTERM is cancelled, logged, and the driver exits cleanly.
        client = subprocess.Popen([CSI_CALL, m.socket_path, PUBLISH, "30"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(client.kill)
        self.assertTrue(m.wait_calls(7, "NodePublishVolume", h.scaled(5)))
        self.assertEqual(self.stop_mock(m), 0, m.stderr())
        out, _ = client.communicate(timeout=h.scaled(10))
        self.assertIn(json.loads(out)["code"], ("CANCELLED", "UNAVAILABLE"))
        self.assertEqual(self.log_lines(7)[6]["code"], "CANCELLED")


class ReadOnlyHooks(ServiceCase):

    def test_hooks_set_the_data(self):
        m = self.mock(self.script("""
            local d = {}
            function d.node_get_info(call)
              if call.n == 1 then
                return {node_id = call.method .. "-" .. call.n, max_volumes_per_node = 3,
                        topology = {["topology.kubernetes.io/zone"] = "z" .. call.n}}
              end
              return {topology = {}}  -- an empty Topology; the flags' node_id
            end
            function d.get_plugin_capabilities()
              return {capabilities = {"VOLUME_EXPANSION_OFFLINE", "GROUP_CONTROLLER_SERVICE"}}
            end
            function d.node_get_capabilities() return {capabilities = {}} end
            function d.controller_get_capabilities()
              return {capabilities = {"GET_SNAPSHOT", "MODIFY_VOLUME"}}
            end
            return d"""), "--node-id=flag-node")
        self.assertEqual(node_info(self.ok(m, NODE_INFO)),
                         ("NodeGetInfo-1", 3, {"topology.kubernetes.io/zone": "z1"}))
        self.assertEqual(node_info(self.ok(m, NODE_INFO)), ("flag-node", 0, {}))
        self.assertEqual(plugin_caps(self.ok(m, PLUGIN_CAPS)),
                         [("expansion", 2), ("service", 3)])
        self.assertEqual(self.ok(m, NODE_CAPS), b"")
        self.assertEqual(rpc_caps(self.ok(m, CONTROLLER_CAPS)), [15, 14])
        self.assertEqual(self.stop_mock(m), 0, m.stderr())

    def test_wrong_fields_answer_internal_and_the_driver_goes_on(self):
        script = self.write_file("driver.lua", """
            local d = {}
            function d.node_get_info(call)
              if call.n == 1 then return {ready = true} end
              if call.n == 2 then return {topology = {zone = {deep = {}}}} end
              return {node_id = "fine"}
            end
            function d.node_get_capabilities()
              return {capabilities = {"CREATE_DELETE_VOLUME"}}
            end
            return d""")
        m = self.mock("--script=" + script)
        prefix = "node_get_info hook: %s: " % script
        for reason in ("unknown field ready in node_get_info's answer (a field of probe)",
                       'topology["zone"] must be a string, not table'):
            code, message, _, _ = self.call(m, NODE_INFO)
            self.assertEqual((code, message), ("INTERNAL", prefix + reason))
        self.assertEqual(node_info(self.ok(m, NODE_INFO))[0], "fine")
        code, message, _, _ = self.call(m, NODE_CAPS)
        self.assertEqual(code, "INTERNAL")
        self.assertIn("capabilities: unknown capability CREATE_DELETE_VOLUME (known: UNKNOWN, "
                      "STAGE_UNSTAGE_VOLUME,", message)
        logged = [kv["err"] for _, msg, kv in
                  filter(None, map(h.parse_klog, m.stderr().splitlines()))
                  if msg == "Script error"]
        self.assertEqual(len(logged), 3, m.stderr())
        self.assertEqual(self.stop_mock(m), 0, m.stderr())

    def test_actions_as_the_call_log_sees_them(self):
        m = self.mock(self.script("""
            local d = {}
            function d.node_get_info(call)
              if call.n == 1 then return {action = "close_connection"} end
              return {action = "exit", exit_code = 3}
            end
            return d"""))
        code, _, _, _ = self.call(m, NODE_INFO)
        self.assertEqual(code, "UNAVAILABLE")
        code, _, _, _ = self.call(m, NODE_INFO)
        self.assertEqual(code, "UNAVAILABLE")
        self.assertEqual(m.wait(h.scaled(5)), 3)
        lines = self.log_lines(2)
        self.assertEqual([(l["method"], l["request"], l["code"]) for l in lines],
                         [("NodeGetInfo", {}, "UNAVAILABLE")] * 2)


class CallLog(ServiceCase):

    def test_one_line_per_call_in_order(self):
        m = self.mock()
        order = [PROBE, NODE_INFO, PUBLISH, "/x.Y/Z", CONTROLLER_CAPS, INFO, NODE_CAPS,
                 PLUGIN_CAPS, PROBE]
        before = time.time()
        for path in order:
            self.call(m, path)
        after = time.time()
        lines = self.log_lines(len(order))
        names = ["Probe", "NodeGetInfo", "NodePublishVolume", "/x.Y/Z",
                 "ControllerGetCapabilities", "GetPluginInfo", "NodeGetCapabilities",
                 "GetPluginCapabilities", "Probe"]
        self.assertEqual([l["method"] for l in lines], names)
        previous = 0
        for line, name in zip(lines, names):
            self.assertEqual(set(line), LOG_KEYS)
            self.assertRegex(line["time"], TIME_RE)
            t = time.mktime(time.strptime(line["time"][:19], "%Y-%m-%dT%H:%M:%S"))
            t = t - time.timezone + float(line["time"][19:-1])  # UTC
            self.assertGreaterEqual(t, int(before * 1000) / 1000)
            self.assertLessEqual(t, after)
            self.assertGreaterEqual(t, previous)
            previous = t
            read_only = not name.startswith("/") and name != "NodePublishVolume"
            self.assertEqual(line["request"], {} if read_only else None)
            self.assertEqual(line["code"], "OK" if read_only else "UNIMPLEMENTED")
            self.assertIsInstance(line["seconds"], float)
            self.assertGreaterEqual(line["seconds"], 0)
            self.assertLess(line["seconds"], h.scaled(2))
        self.assertEqual(self.stop_mock(m), 0, m.stderr())

    def test_appends_to_an_existing_file(self):
        with open(self.log_path, "w") as f:
            f.write('{"kept": true}\n')
        m = self.mock(self.script("""
            return {probe = function() return {code = "FAILED_PRECONDITION"} end}"""))
        self.call(m, PROBE)
        self.log_lines(2)
        self.assertEqual(self.stop_mock(m), 0, m.stderr())
        m = self.mock()
        self.call(m, PROBE)
        lines = self.log_lines(3)
        self.assertEqual(lines[0], {"kept": True})
        self.assertEqual([l["code"] for l in lines[1:]], ["FAILED_PRECONDITION", "OK"])
        self.assertEqual(os.stat(self.log_path).st_mode & 0o777, 0o644)

    def test_stdout_is_unchanged_by_the_log(self):
        m = self.mock()
        self.call(m, PROBE)
        self.call(m, PROBE)
        self.log_lines(2)
        self.assertEqual(m.stdout().splitlines(),
                         ["listening " + m.socket_path,
                          "call method=Probe n=1", "call method=Probe n=2"])
        quiet = self.start_mock("--quiet", "--call-log=" + self.log_path,
                                path=self.sock_path("quiet.sock"))
        self.call(quiet, NODE_INFO)
        self.log_lines(3)
        self.assertEqual(quiet.stdout().splitlines(), ["listening " + quiet.socket_path])


if __name__ == "__main__":
    h.main()
