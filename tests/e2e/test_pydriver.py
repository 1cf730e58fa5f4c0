"""csi_pydriver.py, the CSI driver in Python (Debian's python3-grpcio) that
shares no code with ours: every method and knob through csi_pyclient.call,
replies decoded with the messages protoc generates from proto/csi.proto;
then livenessprobe against it, which proves the sidecar with a server whose
gRPC and protobuf are not our own.

The proxy tests rely on these knobs behaving exactly as asserted here, so a
proxy test that fails points at the proxy, not at this driver.

Needs python3-grpcio, python3-protobuf and protobuf-compiler; without them
every test fails, saying so (csi_pyclient.PyDriverTestCase).
"""

import json
import os
import signal
import threading
import time

import csi_pyclient as pyc
import csi_pydriver
import lpharness as h
from lpharness import INFO, PLUGIN_CAPS, PROBE, NODE_INFO, NODE_CAPS, CONTROLLER_CAPS

ECHO = csi_pydriver.ECHO_METHOD

FOUR_MIB = 4 * 1024 * 1024


class Case(pyc.PyDriverTestCase):

    def setUp(self):
        super().setUp()
        self.pb = pyc.messages()

    def call(self, d, path, request=b"", metadata=(), timeout=10.0):
        return pyc.call(d.socket_path, path, request, metadata, h.scaled(timeout))

    def ok(self, d, path, message_type=None, **kw):
        """The reply of a call that must succeed, decoded when message_type is given."""
        code, details, reply, _ = self.call(d, path, **kw)
        self.assertEqual((code, details), ("OK", ""))
        return message_type.FromString(reply) if message_type else reply

    def call_lines(self, d):
        return [line for line in d.stdout().splitlines() if line.startswith("call ")]

    def behave(self, table):
        """Writes the behaviour file atomically (the driver reads it at every
        call); returns its path."""
        path = os.path.join(self.tmp, "behaviour.json")
        self.write_file("behaviour.json.tmp", json.dumps(table))
        os.rename(path + ".tmp", path)
        return path


class Methods(Case):
    """Each method's answer, as the generated messages decode it."""

    def test_identity(self):
        d = self.start_pydriver()
        info = self.ok(d, INFO, self.pb.GetPluginInfoResponse)
        self.assertEqual((info.name, info.vendor_version, dict(info.manifest)),
                         ("py.csi.example.com", "0.0.1", {"implementation": "python-grpcio"}))
        caps = self.ok(d, PLUGIN_CAPS, self.pb.GetPluginCapabilitiesResponse).capabilities
        self.assertEqual([c.WhichOneof("type") for c in caps], ["service", "volume_expansion"])
        self.assertEqual(caps[0].service.type, self.pb.PluginCapability.Service.CONTROLLER_SERVICE)
        self.assertEqual(caps[1].volume_expansion.type,
                         self.pb.PluginCapability.VolumeExpansion.ONLINE)
        probe = self.ok(d, PROBE, self.pb.ProbeResponse)
        self.assertTrue(probe.HasField("ready"))
        self.assertTrue(probe.ready.value)

    def test_node_and_controller(self):
        d = self.start_pydriver()
        info = self.ok(d, NODE_INFO, self.pb.NodeGetInfoResponse)
        self.assertEqual((info.node_id, info.max_volumes_per_node,
                          dict(info.accessible_topology.segments)),
                         ("py-node", 16, {"topology.py.csi.example.com/zone": "zone-a"}))
        rpc = self.pb.NodeServiceCapability.RPC
        caps = self.ok(d, NODE_CAPS, self.pb.NodeGetCapabilitiesResponse).capabilities
        self.assertEqual([c.rpc.type for c in caps],
                         [rpc.STAGE_UNSTAGE_VOLUME, rpc.GET_VOLUME_STATS])
        rpc = self.pb.ControllerServiceCapability.RPC
        caps = self.ok(d, CONTROLLER_CAPS, self.pb.ControllerGetCapabilitiesResponse).capabilities
        self.assertEqual([c.rpc.type for c in caps],
                         [rpc.CREATE_DELETE_VOLUME, rpc.LIST_VOLUMES])

    def test_flags_name_vendor_node_id_ready(self):
        d = self.start_pydriver("--name=other.example.com", "--vendor=9.9",
                                "--node-id=node-7", "--ready=false")
        info = self.ok(d, INFO, self.pb.GetPluginInfoResponse)
        self.assertEqual((info.name, info.vendor_version), ("other.example.com", "9.9"))
        self.assertEqual(self.ok(d, NODE_INFO, self.pb.NodeGetInfoResponse).node_id, "node-7")
        probe = self.ok(d, PROBE, self.pb.ProbeResponse)
        self.assertEqual((probe.HasField("ready"), probe.ready.value), (True, False))
        self.stop_mock(d)
        d = self.start_pydriver("--ready=unset")
        # ready absent: an empty message on the wire.
        self.assertEqual(self.ok(d, PROBE), b"")

    def test_call_lines(self):
        d = self.start_pydriver()
        for path in (PROBE, INFO, PROBE, NODE_INFO, ECHO, "/csi.v1.Node/NodePublishVolume"):
            self.call(d, path)
        self.assertEqual(self.call_lines(d), [
            "call method=Probe n=1", "call method=GetPluginInfo n=1",
            "call method=Probe n=2", "call method=NodeGetInfo n=1",
            "call method=Echo n=1", "call method=other n=1"])
        self.assertEqual(d.calls("Probe"), 2)

    def test_unknown_paths_unimplemented(self):
        d = self.start_pydriver()
        for path in ("/csi.v1.Node/NodePublishVolume", "/test.v1.Echo/Other", "/nope"):
            code, _, reply, _ = self.call(d, path)
            self.assertEqual((code, reply), ("UNIMPLEMENTED", None), path)


class Knobs(Case):
    """The test knobs the proxy tests stand on."""

    def test_metadata_echo_into_trailers(self):
        d = self.start_pydriver()
        md = (("x-test-echo", "hello"), ("x-test-echo-bin", b"\x00\xff\x01"),
              ("x-other", "not echoed"))
        code, _, reply, trailers = self.call(d, NODE_INFO, metadata=md)
        self.assertEqual(code, "OK")
        self.assertEqual(self.pb.NodeGetInfoResponse.FromString(reply).node_id, "py-node")
        self.assertEqual(trailers, md[:2])
        # Without the key, no trailer of ours.
        _, _, _, trailers = self.call(d, NODE_INFO)
        self.assertFalse([k for k, _ in trailers if k.startswith("x-test")], trailers)

    def test_fail_flag(self):
        d = self.start_pydriver("--fail=Probe:FAILED_PRECONDITION:driver is sick",
                                "--fail=NodeGetInfo:NotFound", "--fail=Echo:14:gone")
        code, details, reply, trailers = self.call(d, PROBE, metadata=[("x-test-echo", "e")])
        self.assertEqual((code, details, reply), ("FAILED_PRECONDITION", "driver is sick", None))
        # The echo rides on errors too.
        self.assertEqual(trailers, (("x-test-echo", "e"),))
        self.assertEqual(self.call(d, NODE_INFO)[:3], ("NOT_FOUND", "", None))
        self.assertEqual(self.call(d, ECHO, b"x")[:3], ("UNAVAILABLE", "gone", None))
        self.assertEqual(self.call(d, INFO)[0], "OK")

    def test_hang_ends_at_the_client_deadline(self):
        d = self.start_pydriver("--hang=NodeGetInfo", "--workers=2")
        # More hung calls than workers: each must give its worker back when
        # its deadline passes, or the later ones (and the Probe) would queue.
        for _ in range(4):
            t0 = time.monotonic()
            code, _, reply, _ = self.call(d, NODE_INFO, timeout=0.3)
            elapsed = time.monotonic() - t0
            self.assertEqual((code, reply), ("DEADLINE_EXCEEDED", None))
            self.assertGreaterEqual(elapsed, 0.3)
            self.assertLess(elapsed, 0.3 + h.scaled(0.5))
        self.assertEqual(self.ok(d, PROBE, self.pb.ProbeResponse).ready.value, True)
        self.assertEqual(d.calls("NodeGetInfo"), 4)

    def test_delay(self):
        d = self.start_pydriver("--delay=Probe:0.3")
        t0 = time.monotonic()
        self.ok(d, PROBE)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        # A deadline before the delay: no answer, DEADLINE_EXCEEDED on time.
        t0 = time.monotonic()
        self.assertEqual(self.call(d, PROBE, timeout=0.1)[0], "DEADLINE_EXCEEDED")
        self.assertLess(time.monotonic() - t0, 0.1 + h.scaled(0.5))

    def test_behaviour_file_switches_without_restart(self):
        path = os.path.join(self.tmp, "behaviour.json")
        d = self.start_pydriver("--behaviour-file=" + path, "--fail=Probe:INTERNAL:flag")
        # No file: the flags.
        self.assertEqual(self.call(d, PROBE)[:2], ("INTERNAL", "flag"))
        self.behave({"Probe": {"code": "UNAVAILABLE", "message": "restarting"}})
        self.assertEqual(self.call(d, PROBE)[:2], ("UNAVAILABLE", "restarting"))
        self.behave({"Probe": {"ready": False}, "GetPluginInfo": {"hang": True}})
        self.assertFalse(self.ok(d, PROBE, self.pb.ProbeResponse).ready.value)
        self.assertEqual(self.call(d, INFO, timeout=0.2)[0], "DEADLINE_EXCEEDED")
        self.behave({"Probe": {"ready": "unset"}, "NodeGetInfo": {"delay": 0.2}})
        self.assertEqual(self.ok(d, PROBE), b"")
        t0 = time.monotonic()
        self.ok(d, NODE_INFO)
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.behave({"Probe": {}})
        self.assertTrue(self.ok(d, PROBE, self.pb.ProbeResponse).ready.value)
        self.write_file("behaviour.json", "{not json")
        code, details, _, _ = self.call(d, PROBE)
        self.assertEqual(code, "INTERNAL")
        self.assertTrue(details.startswith("behaviour file: "), details)
        self.behave({"Probe": {"code": "NoSuchCode"}})
        self.assertEqual(self.call(d, PROBE)[:2],
                         ("INTERNAL", "behaviour file: unknown status code 'NoSuchCode'"))
        self.behave({"Probe": {"hang": True, "colour": "red"}})
        self.assertEqual(self.call(d, PROBE)[:2],
                         ("INTERNAL", "behaviour file: unknown knob colour"))
        self.behave({"Probe": {"delay": "soon"}})
        self.assertEqual(self.call(d, PROBE)[:2],
                         ("INTERNAL", "behaviour file: delay 'soon' is not a number of seconds"))
        os.unlink(path)
        self.assertEqual(self.call(d, PROBE)[:2], ("INTERNAL", "flag"))

    def test_echo_method_is_raw_bytes(self):
        d = self.start_pydriver()
        # Not a protobuf message: no serializer on either side touches it.
        data = b"\xff\xfe\x00raw bytes\x80"
        self.assertEqual(self.ok(d, ECHO, request=data), data[::-1])
        self.assertEqual(self.ok(d, ECHO), b"")

    def test_big_reply_whole(self):
        d = self.start_pydriver("--big-reply-bytes=%d" % FOUR_MIB)
        code, _, reply, _ = self.call(d, INFO, timeout=30)
        self.assertEqual(code, "OK")
        self.assertGreater(len(reply), FOUR_MIB)
        info = self.pb.GetPluginInfoResponse.FromString(reply)
        self.assertEqual(info.vendor_version, "v" * FOUR_MIB)
        self.assertEqual(info.name, "py.csi.example.com")
        # And 4 MiB the other way, over grpcio's default receive limit.
        data = bytes(range(256)) * (FOUR_MIB // 256)
        self.assertEqual(self.ok(d, ECHO, request=data, timeout=30), data[::-1])

    def test_50_concurrent_calls(self):
        # Each call waits 0.3 s in the driver: 50 in a row would take 15 s.
        d = self.start_pydriver("--delay=NodeGetInfo:0.3")
        t0 = time.monotonic()
        results = h.run_parallel(
            lambda i: self.call(d, NODE_INFO, metadata=[("x-test-echo", "call-%d" % i)]), 50)
        elapsed = time.monotonic() - t0
        for i, r in enumerate(results):
            self.assertNotIsInstance(r, Exception)
            code, _, reply, trailers = r
            self.assertEqual(code, "OK")
            self.assertEqual(self.pb.NodeGetInfoResponse.FromString(reply).node_id, "py-node")
            self.assertEqual(trailers, (("x-test-echo", "call-%d" % i),))
        self.assertLess(elapsed, h.scaled(5))
        self.assertTrue(d.wait_calls(50, "NodeGetInfo"))


class Process(Case):
    """Start-up, flags and shutdown of the driver process."""

    def test_sigterm_exits_0_and_removes_socket(self):
        d = self.start_pydriver()
        self.assertTrue(os.path.exists(d.socket_path))
        self.ok(d, PROBE)
        self.assertEqual(self.stop_mock(d), 0)
        self.assertFalse(os.path.exists(d.socket_path))
        self.assertEqual(d.stdout().splitlines()[0], "listening " + d.socket_path)

    def test_sigterm_with_a_hung_call(self):
        d = self.start_pydriver("--hang=Probe")
        results = []
        t = threading.Thread(target=lambda: results.append(self.call(d, PROBE, timeout=30)))
        t.start()
        self.assertTrue(d.wait_calls(1, "Probe"))
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.wait(h.scaled(5))
        self.assertEqual(rc, 0, d.stderr())
        self.assertLess(time.monotonic() - t0, h.scaled(2))
        t.join(h.scaled(5))
        self.assertNotEqual(results[0][0], "OK")
        self.assertFalse(os.path.exists(d.socket_path))

    def test_sigint_exits_0(self):
        d = self.start_pydriver()
        self.assertEqual(self.stop_mock(d, signal.SIGINT), 0)
        self.assertFalse(os.path.exists(d.socket_path))

    def test_bad_flags_exit_2(self):
        for args in (["--fail=Probe:NoSuchCode"], ["--delay=Probe:soon"],
                     ["--ready=maybe"], ["--big-reply-bytes=-1"]):
            d = self.start_pydriver(*args, wait=False)
            self.assertEqual(d.wait(h.scaled(10)), 2, args)
            self.assertIn("csi_pydriver.py: error: ", d.stderr(), args)

    def test_cannot_listen_exits_1(self):
        d = self.start_pydriver(path=os.path.join(self.tmp, "no", "such", "dir", "csi.sock"),
                                wait=False)
        self.assertEqual(d.wait(h.scaled(10)), 1)
        self.assertIn("csi_pydriver: cannot listen on", d.stderr())


class Sidecar(Case):
    """Our livenessprobe against a server whose gRPC is not ours."""

    def test_healthz_ok(self):
        drv = self.start_pydriver()
        lp = self.start_daemon(csi=drv.socket_path)
        self.assertHealthz(lp.request(), 200, "ok")
        self.assertTrue(drv.wait_calls(1, "GetPluginInfo"))
        self.assertEqual(drv.calls("Probe"), 1)

    def test_healthz_follows_the_driver(self):
        path = os.path.join(self.tmp, "behaviour.json")
        drv = self.start_pydriver("--behaviour-file=" + path)
        lp = self.start_daemon(csi=drv.socket_path)
        self.assertHealthz(lp.request(), 200, "ok")
        self.behave({"Probe": {"code": "FAILED_PRECONDITION", "message": "disk gone"}})
        self.assertHealthz(lp.request(), 500,
                           "rpc error: code = FailedPrecondition desc = disk gone")
        self.behave({"Probe": {"ready": False}})
        self.assertHealthz(lp.request(), 500, h.NOT_READY_BODY)
        self.behave({"Probe": {"ready": "unset"}})
        self.assertHealthz(lp.request(), 200, "ok")


if __name__ == "__main__":
    pyc.main()
