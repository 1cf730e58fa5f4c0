"""csi-mock-driver --proxy-to, end to end: the proxy in front of the Python
driver (csi_pydriver.py, whose gRPC is not ours) and, where a backend must
misbehave in ways only it can, in front of csi-mock-driver itself.

  - the sidecar through the proxy: /healthz, and the fault rows of
    test_faults.py as a proxied driver shows them (a hung Probe, every error
    code, a backend killed, restarted, or its socket removed);
  - forwarding is exact: a call made directly and through the proxy gives
    the same (code, details, reply bytes, trailers), for each method the
    driver serves, a failing one, a raw method outside CSI, 4 MiB either
    way; a client's deadline and cancellation reach the backend's call;
  - 200 concurrent calls, with fds back to the baseline and RSS bounded;
  - the script's hooks in proxy mode, each with its call log line;
  - bad input and hostile peers: no backend yet, --proxy-to naming the
    proxy's own socket, backends that answer garbage, oversized messages or
    nothing at all, idle clients, SIGTERM with calls in flight;
  - examples/failure-modes/ in proxy mode, and examples/kubernetes/proxy.yaml.

Calls are made with csi_pyclient.call (raw bytes both ways, a fresh channel
each), with csi-call where gRPC's default 4 MiB receive limit matters, and
by livenessprobe itself. Needs python3-grpcio (csi_pyclient.PyDriverTestCase).
"""

import json
import os
import random
import re
import signal
import socket
import subprocess
import threading
import time

import csi_pyclient as pyc
import csi_pydriver
import kubeprober as kp
import lpharness as h
from lpharness import (CSI_CALL, INFO, PLUGIN_CAPS, PROBE, NODE_INFO, NODE_CAPS, CONTROLLER_CAPS,
                       STAGE, PUBLISH, CREATE)
from test_examples import configmap_file, container_args

EXAMPLES = os.path.join(h.SOURCE_DIR, "examples")
FAILURE_MODES = os.path.join(EXAMPLES, "failure-modes")
PROXY_YAML = os.path.join(EXAMPLES, "kubernetes", "proxy.yaml")

ECHO = csi_pydriver.ECHO_METHOD
READ_ONLY = (INFO, PLUGIN_CAPS, PROBE, NODE_INFO, NODE_CAPS, CONTROLLER_CAPS)

FOUR_MIB = 4 * 1024 * 1024
TWENTY_MIB = 20 * 1024 * 1024

LOG_KEYS = ["time", "method", "request", "code", "seconds"]
PROXY_LOG_KEYS = LOG_KEYS + ["backend", "injected"]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

# As test_faults.py: the sidecar's default --probe-timeout, "by the deadline"
# is the timeout plus ANSWER_MARGIN, "at once" within PROMPT.
PROBE_TIMEOUT = 1.0
ANSWER_MARGIN = h.scaled(0.5)
PROMPT = h.scaled(0.25)
EARLY_SLACK = 0.05
KUBELET_TIMEOUT = PROBE_TIMEOUT + h.scaled(3.0)
# How soon a backend restarted on its path is reached again (the proxy
# makes a new channel as soon as it sees the file replaced).
BACK_WITHIN = h.scaled(1.0)
# A call answered without waiting for anything, the client's own channel
# set-up included (its deadline is 10 s).
AT_ONCE = h.scaled(0.5)

# The proxy is LP_MOCK: its RSS means something unless that binary is
# sanitized (LP_WRAPPER wraps only the sidecar).
PROXY_SANITIZED = h._is_sanitized(h.LP_MOCK)
# 200 concurrent calls: the first round may grow RSS by gRPC's per-connection
# state that malloc keeps (measured +5.8 MiB); a later round must grow less
# than ROUND_TOL_KIB (measured +364, +104, +64, +24 KiB): a leak of 2 KiB a
# call would grow every round by 400 KiB. Not checked under ASan.
CONCURRENT = 200
MAX_ROUNDS = 6
FIRST_ROUND_TOL_KIB = None if PROXY_SANITIZED else 16 * 1024
ROUND_TOL_KIB = None if PROXY_SANITIZED else 256

NOT_GRPC_PEERS = [
    # (name, bytes the backend sends to the proxy's connection, then closes)
    ("an HTTP/1.1 answer", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
    ("random bytes", random.Random(1).randbytes(4096)),
    ("an HTTP/2 frame header announcing 16 MiB", b"\xff\xff\xff\x04\x00\x00\x00\x00\x00"
     + b"\x00" * 1000),
    ("SETTINGS, then random bytes",
     bytes.fromhex("000000040000000000") + random.Random(2).randbytes(512)),
    ("nothing", b""),
]


def csi_call(socket_path, method, timeout=10.0):
    """(code, message, reply bytes or None) from csi-call: gRPC's default
    4 MiB receive limit, as any Go or C client has it."""
    out = subprocess.run([CSI_CALL, socket_path, method, "%g" % timeout],
                         capture_output=True, text=True, timeout=timeout + h.scaled(10))
    if out.returncode != 0:
        raise AssertionError("csi-call failed (%d): %s" % (out.returncode, out.stderr))
    r = json.loads(out.stdout)
    reply = bytes.fromhex(r["reply_hex"]) if r["reply_hex"] is not None else None
    return r["code"], r["message"], reply


class RawBackend:
    """A unix socket "backend" that is no gRPC server: each connection gets
    data (after the proxy's first bytes, or 0.2 s) and is closed; data None
    keeps every connection open and silent until close()."""

    def __init__(self, path, data):
        self.path = path
        self.data = data
        self.held = []
        self.stopping = threading.Event()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(64)
        # A close does not wake an accept blocked in another thread: poll.
        self.srv.settimeout(0.05)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.data is None:
                self.held.append(c)
                continue
            try:
                c.settimeout(0.2)
                try:
                    c.recv(65536)
                except OSError:
                    pass
                c.sendall(self.data)
            except OSError:
                pass
            c.close()

    def close(self):
        self.stopping.set()
        self.thread.join(h.scaled(5))
        self.srv.close()
        for c in self.held:
            c.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class ProxyCase(pyc.PyDriverTestCase):

    def setUp(self):
        super().setUp()
        self.pb = pyc.messages()
        self.call_log = os.path.join(self.tmp, "calls.jsonl")

    # Processes ------------------------------------------------------------

    def backend_path(self):
        return self.sock_path("backend.sock")

    def start_backend(self, *args):
        """The Python driver on backend.sock."""
        return self.start_pydriver(*args, path=self.backend_path())

    def start_mock_backend(self, *args):
        """csi-mock-driver (no proxy) on backend.sock."""
        return self.start_mock(*args, path=self.backend_path())

    def start_proxy(self, *args, to=None, wait=True):
        """csi-mock-driver --proxy-to=to (default backend.sock) on proxy.sock,
        with a call log. Still running when the test ends, it must exit 0 on
        SIGTERM (a sanitizer's report, or a crash, would not)."""
        m = self.start_mock("--proxy-to=" + (to or self.backend_path()),
                            "--call-log=" + self.call_log, *args,
                            path=self.sock_path("proxy.sock"), wait=wait)
        self.addCleanup(self.stop_proxy_at_teardown, m)
        return m

    def stop_proxy_at_teardown(self, m):
        if not m.alive():
            return
        m.signal(signal.SIGTERM)
        rc = m.wait(h.scaled(10))
        if rc != 0:
            self.fail("%s exited %s at teardown; stderr tail:\n%s"
                      % (m.name, rc, m.stderr()[-3000:]))

    def proxied_daemon(self, *args):
        """livenessprobe on the proxy's socket, up (its GetPluginInfo answered)."""
        return self.start_daemon(*args, csi=self.sock_path("proxy.sock"))

    def behave(self, table):
        """Writes the backend's behaviour file atomically; returns its path."""
        path = os.path.join(self.tmp, "behaviour.json")
        self.write_file("behaviour.json.tmp", json.dumps(table))
        os.rename(path + ".tmp", path)
        return path

    def behaviour_flag(self):
        return "--behaviour-file=" + os.path.join(self.tmp, "behaviour.json")

    # Calls ----------------------------------------------------------------

    def call(self, target, method, request=b"", metadata=(), timeout=None):
        """pyc.call on target (a process with a socket_path, or a path);
        timeout None is a generous scaled 10 s."""
        path = getattr(target, "socket_path", target)
        return pyc.call(path, method, request, metadata,
                        h.scaled(10.0) if timeout is None else timeout)

    def timed_call(self, target, method, **kw):
        t0 = time.monotonic()
        r = self.call(target, method, **kw)
        return r, time.monotonic() - t0

    def get(self, d):
        """/healthz as kubelet asks it."""
        return kp.probe_once(d.port, timeout=KUBELET_TIMEOUT)

    @staticmethod
    def answer(r):
        """(status, body text) of a probe."""
        return r.status, r.body.decode("utf-8", "replace")

    # The call log ---------------------------------------------------------

    def log_lines(self):
        """Every line of the proxy's call log, parsed."""
        try:
            with open(self.call_log) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def wait_log(self, n):
        """The first n lines, once written (a line is written when its call
        ends for the proxy, which may be just after the client's end)."""
        self.assertTrue(h.wait_until(lambda: len(self.log_lines()) >= n, 5.0),
                        "call log has %d lines, want %d: %s"
                        % (len(self.log_lines()), n, self.log_lines()))
        return self.log_lines()[:n]

    def assertLogged(self, line, method, code, backend, injected):
        """line is a proxy's: its keys in order, its method, code and the two
        proxy keys (code and backend may be tuples of the values allowed)."""
        def one_of(value):
            return value if isinstance(value, tuple) else (value,)
        self.assertEqual(list(line), PROXY_LOG_KEYS, line)
        self.assertRegex(line["time"], TIME_RE)
        self.assertIsInstance(line["seconds"], float)
        self.assertEqual(line["method"], method, line)
        self.assertIn(line["code"], one_of(code), line)
        self.assertIn(line["backend"], one_of(backend), line)
        self.assertEqual(line["injected"], injected, line)

    # Resources ------------------------------------------------------------

    def assertFdsBack(self, p, base):
        """p alive, its fd count back to base (after a settle)."""
        self.assertTrue(p.alive(), "%s died (%s): %s"
                        % (p.name, p.returncode(), p.stderr()[-2000:]))
        self.assertTrue(h.wait_until(lambda: p.fd_count() == base, h.FD_SETTLE),
                        "%s: fds not back to %d: %s" % (p.name, base, p.fds()))

    # Sidecar answers, as test_faults.py asserts them -----------------------

    def assertAnswer(self, r, status, body, at_deadline=False, deadline=PROBE_TIMEOUT,
                     prefix=False):
        """status and body (exact, or its start when prefix), by the
        deadline; at_deadline: not before it either; else at once."""
        self.assertIsNone(r.error, "no HTTP answer: %r" % r)
        text = r.body.decode("utf-8", "replace")
        if prefix:
            self.assertEqual(r.status, status, r)
            self.assertTrue(text.startswith(body), "%r does not start with %r" % (text, body))
        else:
            self.assertEqual((r.status, text), (status, body))
        self.assertLessEqual(r.elapsed, deadline + ANSWER_MARGIN, "answered late: %r" % r)
        if at_deadline:
            self.assertGreaterEqual(r.elapsed, deadline - EARLY_SLACK, "answered early: %r" % r)
        else:
            self.assertLess(r.elapsed, PROMPT, "not at once: %r" % r)

    def back_to_healthy(self, d, limit):
        """Polls /healthz until 200 ok, at most limit seconds; returns the
        seconds it took."""
        t0 = time.monotonic()
        while True:
            r = self.get(d)
            if r.ok or time.monotonic() - t0 > limit:
                break
            time.sleep(0.02)
        self.assertAnswer(r, 200, "ok")
        return time.monotonic() - t0

    def unavailable_body(self, reason):
        return ("rpc error: code = Unavailable desc = csi-mock-driver: backend unix://%s "
                "is unavailable: %s" % (self.backend_path(), reason))


class Sidecar(ProxyCase):
    """livenessprobe --csi-address=<the proxy>: the fault rows, proxied."""

    def warm(self, *backend_args):
        """Backend (with a behaviour file), proxy, sidecar; three healthy
        probes; the proxy's fd baseline."""
        drv = self.start_backend(self.behaviour_flag(), *backend_args)
        proxy = self.start_proxy()
        d = self.proxied_daemon()
        for _ in range(3):
            self.assertAnswer(self.get(d), 200, "ok")
        return drv, proxy, d, h.stable_fds(proxy)

    def test_healthz_ok(self):
        drv, proxy, d, _ = self.warm()
        self.assertEqual(drv.calls("GetPluginInfo"), 1)
        self.assertEqual(drv.calls("Probe"), 3)
        self.assertEqual(proxy.calls("Probe"), 3)
        lines = self.wait_log(4)
        self.assertLogged(lines[0], "GetPluginInfo", "OK", "OK", None)
        self.assertEqual(lines[0]["request"], {})
        for line in lines[1:]:
            self.assertLogged(line, "Probe", "OK", "OK", None)
        # The sidecar logged the backend's name, which only the backend knows.
        self.assertIsNotNone(d.wait_log(csi_pydriver.DEFAULT_NAME, h.scaled(2)), d.stderr())

    def test_backend_probe_hangs(self):
        drv, proxy, d, fds = self.warm()
        self.behave({"Probe": {"hang": True}})
        for _ in range(3):
            self.assertAnswer(self.get(d), 500, h.DEADLINE_BODY, at_deadline=True)
        self.assertEqual(drv.calls("Probe"), 6)  # each hung call reached the backend
        # The proxy's call ended with the sidecar's deadline; its backend
        # call, a child, with it.
        ended = ("DEADLINE_EXCEEDED", "CANCELLED")
        for line in self.wait_log(7)[4:]:
            self.assertLogged(line, "Probe", ended, ended, None)
            self.assertGreaterEqual(line["seconds"], PROBE_TIMEOUT - EARLY_SLACK)
        self.assertFdsBack(proxy, fds)
        self.behave({})
        self.assertAnswer(self.get(d), 200, "ok")

    def test_every_error_code_passes_through(self):
        drv, proxy, d, fds = self.warm()
        for code in range(1, 17):
            with self.subTest(code=code):
                message = "through the proxy: code %d" % code
                self.behave({"Probe": {"code": code, "message": message}})
                self.assertAnswer(self.get(d), 500, "rpc error: code = %s desc = %s"
                                  % (h.GO_CODE_NAMES[code], message))
        # Not ready, and ready absent (healthy), as the backend says them.
        self.behave({"Probe": {"ready": False}})
        self.assertAnswer(self.get(d), 500, h.NOT_READY_BODY)
        self.behave({"Probe": {"ready": "unset"}})
        self.assertAnswer(self.get(d), 200, "ok")
        import grpc
        names = {c.value[0]: c.name for c in grpc.StatusCode}
        lines = self.wait_log(4 + 18)
        for code, line in zip(range(1, 17), lines[4:]):
            self.assertLogged(line, "Probe", names[code], names[code], None)
        self.assertFdsBack(proxy, fds)

    def test_backend_killed_then_restarted(self):
        drv, proxy, d, fds = self.warm()
        drv.signal(signal.SIGKILL)
        drv.wait(h.scaled(5))
        self.assertTrue(os.path.exists(self.backend_path()), "SIGKILL leaves the socket file")
        # The proxy's connection to it is gone: refused at once, naming the
        # backend, well before the probe timeout.
        for _ in range(3):
            self.assertAnswer(self.get(d), 500,
                              self.unavailable_body("failed to connect to all addresses"),
                              prefix=True)
        self.assertTrue(proxy.alive())
        drv = self.start_backend(self.behaviour_flag())
        took = self.back_to_healthy(d, BACK_WITHIN)
        self.assertLess(took, BACK_WITHIN)
        self.assertEqual(drv.calls("GetPluginInfo"), 0)  # the sidecar did not restart
        self.assertFdsBack(proxy, fds)

    def test_backend_socket_removed(self):
        drv, proxy, d, fds = self.warm()
        os.unlink(self.backend_path())
        for _ in range(3):
            self.assertAnswer(self.get(d), 500,
                              self.unavailable_body("its socket file is missing"))
        self.assertTrue(drv.alive())
        self.assertEqual(drv.calls("Probe"), 3)  # none reached it
        for line in self.wait_log(7)[4:]:
            self.assertLogged(line, "Probe", "UNAVAILABLE", None, None)
        self.stop_mock(drv)
        self.start_backend()
        self.back_to_healthy(d, BACK_WITHIN)
        self.assertFdsBack(proxy, fds)

    def test_backend_stopped_and_continued(self):
        # The proxy's connection is up and the backend does not answer: the
        # sidecar's deadline, as with a stopped driver (test_faults row 4).
        drv, proxy, d, fds = self.warm()
        os.kill(drv.pid, signal.SIGSTOP)
        try:
            answers = [self.get(d) for _ in range(2)]
        finally:
            os.kill(drv.pid, signal.SIGCONT)
        for r in answers:
            self.assertAnswer(r, 500, h.DEADLINE_BODY, at_deadline=True)
        self.back_to_healthy(d, h.scaled(3))
        self.assertFdsBack(proxy, fds)


class Forwarding(ProxyCase):
    """What the proxy passes on is what the backend said, byte for byte."""

    METADATA = (("x-test-echo", "hello"), ("x-test-echo-bin", b"\x00\xff\x01"),
                ("x-other", "not echoed"))

    def both(self, drv, proxy, method, request=b"", timeout=None):
        """(direct, proxied) results of the same call."""
        return (self.call(drv, method, request, self.METADATA, timeout),
                self.call(proxy, method, request, self.METADATA, timeout))

    def test_same_answers_direct_and_proxied(self):
        drv = self.start_backend("--fail=NodeGetCapabilities:FAILED_PRECONDITION:node caps gone",
                                 "--node-id=node-7")
        proxy = self.start_proxy()
        cases = list(READ_ONLY) + [
            (ECHO, b"\xff\xfe\x00raw bytes\x80"),
            (ECHO, b""),
            PUBLISH,                     # a CSI method the backend does not serve
            "/no.such.Service/Method",   # nor CSI at all
        ]
        seen = []
        for case in cases:
            method, request = case if isinstance(case, tuple) else (case, b"")
            with self.subTest(method=method, request=request):
                direct, proxied = self.both(drv, proxy, method, request)
                self.assertEqual(proxied, direct)
                seen.append((method, direct[0]))
                if method == ECHO:
                    self.assertEqual(direct[2], request[::-1])
        # The cases are what they claim: answers, a failure, echoes, unknowns.
        self.assertEqual([c for _, c in seen], ["OK"] * 4 + ["FAILED_PRECONDITION"]
                         + ["OK"] * 3 + ["UNIMPLEMENTED"] * 2)
        node = self.pb.NodeGetInfoResponse.FromString(self.call(proxy, NODE_INFO)[2])
        self.assertEqual(node.node_id, "node-7")
        _, details, _, trailers = self.call(proxy, NODE_CAPS, metadata=self.METADATA)
        self.assertEqual((details, trailers), ("node caps gone", self.METADATA[:2]))
        # The proxy logs each as the backend answered it, untouched.
        # (CSI methods by name, any other by its path.)
        for (method, code), line in zip(seen, self.wait_log(len(cases))):
            name = method.rsplit("/", 1)[1] if method.startswith("/csi.v1.") else method
            self.assertLogged(line, name, code, code, None)

    def test_odd_details_and_metadata_pass_untouched(self):
        drv = self.start_backend(self.behaviour_flag())
        proxy = self.start_proxy()
        for message in ("control \x01\x02\x7f\n\r\t bytes", "üñí €😀 %41 %% %zz",
                        "6 KiB " + "x" * 6138):
            with self.subTest(message=message[:20]):
                self.behave({"Probe": {"code": "INTERNAL", "message": message}})
                direct, proxied = self.both(drv, proxy, PROBE)
                self.assertEqual(direct[:2], ("INTERNAL", message))
                self.assertEqual(proxied, direct)
        # 4 KiB of metadata in 8 keys comes back whole; 30 KiB is over
        # gRPC's 8 KiB default, refused alike.
        for n, size, code in ((8, 500, "OK"), (30, 1000, "RESOURCE_EXHAUSTED")):
            with self.subTest(keys=n, size=size):
                md = tuple(("x-test-echo-%d" % i, chr(ord("a") + i % 26) * size)
                           for i in range(n))
                direct = self.call(drv, INFO, metadata=md)
                self.assertEqual(self.call(proxy, INFO, metadata=md), direct)
                self.assertEqual((direct[0], direct[3]), (code, md if code == "OK" else ()))
        for line in self.log_lines():
            self.assertEqual(list(line), PROXY_LOG_KEYS, line)

    def test_four_mib_whole_both_ways(self):
        drv = self.start_backend("--big-reply-bytes=%d" % FOUR_MIB)
        proxy = self.start_proxy()
        direct, proxied = self.both(drv, proxy, INFO, timeout=h.scaled(30))
        self.assertEqual(proxied[0], "OK")
        self.assertGreater(len(proxied[2]), FOUR_MIB)
        self.assertEqual(proxied, direct)
        info = self.pb.GetPluginInfoResponse.FromString(proxied[2])
        self.assertEqual(info.vendor_version, "v" * FOUR_MIB)
        data = bytes(range(256)) * (FOUR_MIB // 256)
        code, _, reply, _ = self.call(proxy, ECHO, data, timeout=h.scaled(30))
        self.assertEqual((code, reply), ("OK", data[::-1]))

    def test_deadline_reaches_the_backend(self):
        # One worker in the backend: had its call not ended with the
        # client's deadline, the Probe after it would wait 30 s for it.
        drv = self.start_backend("--delay=NodeGetInfo:30", "--workers=1")
        proxy = self.start_proxy()
        self.assertEqual(self.call(proxy, PROBE)[0], "OK")
        fds = h.stable_fds(proxy)
        (code, _, reply, _), took = self.timed_call(proxy, NODE_INFO, timeout=0.3)
        self.assertEqual((code, reply), ("DEADLINE_EXCEEDED", None))
        self.assertGreaterEqual(took, 0.3)
        self.assertLess(took, 0.3 + h.scaled(0.5))
        self.assertEqual(drv.calls("NodeGetInfo"), 1)
        (code, _, _, _), took = self.timed_call(drv, PROBE, timeout=h.scaled(5))
        self.assertEqual(code, "OK")
        self.assertLess(took, h.scaled(1.0), "the backend's worker was still held")
        ended = ("DEADLINE_EXCEEDED", "CANCELLED")
        self.assertLogged(self.wait_log(2)[1], "NodeGetInfo", ended, ended, None)
        self.assertFdsBack(proxy, fds)

    def test_cancel_reaches_the_backend(self):
        import grpc
        drv = self.start_backend("--hang=NodeGetInfo", "--workers=1")
        proxy = self.start_proxy()
        channel = grpc.insecure_channel("unix:" + proxy.socket_path)
        self.addCleanup(channel.close)
        future = channel.unary_unary(NODE_INFO).future(b"", timeout=h.scaled(30))
        self.assertTrue(drv.wait_calls(1, "NodeGetInfo", h.scaled(5)))
        future.cancel()
        self.assertTrue(future.cancelled())
        (code, _, _, _), took = self.timed_call(drv, PROBE, timeout=h.scaled(5))
        self.assertEqual(code, "OK")
        self.assertLess(took, h.scaled(1.0), "the backend's worker was still held")
        line = self.wait_log(1)[0]
        self.assertLogged(line, "NodeGetInfo", "CANCELLED", "CANCELLED", None)


class Concurrency(ProxyCase):

    def test_200_concurrent_calls(self):
        # Each call waits 0.3 s in the backend: in a row they would take 60 s.
        self.start_backend("--delay=NodeGetInfo:0.3", "--workers=%d" % CONCURRENT)
        proxy = self.start_proxy("--quiet")
        self.assertEqual(self.call(proxy, NODE_INFO)[0], "OK")
        base_fds, base_rss = h.stable_fds(proxy), proxy.rss_kib()
        rounds = []
        for round_ in range(MAX_ROUNDS):
            t0 = time.monotonic()
            results = h.run_parallel(
                lambda i: self.call(proxy, NODE_INFO,
                                    metadata=[("x-test-echo", "round %d call %d" % (round_, i))],
                                    timeout=h.scaled(30)), CONCURRENT, timeout=h.scaled(60))
            took = time.monotonic() - t0
            for i, r in enumerate(results):
                self.assertNotIsInstance(r, Exception, "call %d" % i)
                code, details, reply, trailers = r
                self.assertEqual((code, details), ("OK", ""), "call %d" % i)
                self.assertEqual(self.pb.NodeGetInfoResponse.FromString(reply).node_id,
                                 csi_pydriver.DEFAULT_NODE_ID)
                # Its own answer, not another call's.
                self.assertEqual(trailers, (("x-test-echo", "round %d call %d" % (round_, i)),))
            self.assertLess(took, h.scaled(10))
            self.assertFdsBack(proxy, base_fds)
            rounds.append(proxy.rss_kib())
            if ROUND_TOL_KIB is None or (
                    len(rounds) >= 2 and min(b - a for a, b in zip(rounds, rounds[1:]))
                    <= ROUND_TOL_KIB):
                break
        self.assertTrue(h.wait_until(
            lambda: len(self.log_lines()) == 1 + CONCURRENT * len(rounds), 5.0))
        self.assertEqual({(l["code"], l["backend"]) for l in self.log_lines()}, {("OK", "OK")})
        if ROUND_TOL_KIB is not None:
            growths = [b - a for a, b in zip(rounds, rounds[1:])]
            self.assertLessEqual(rounds[0] - base_rss, FIRST_ROUND_TOL_KIB, rounds)
            self.assertLessEqual(min(growths), ROUND_TOL_KIB, (base_rss, rounds))

    def test_idle_clients_do_not_stop_the_sidecar(self):
        # Hundreds of connections to the proxy that never send a byte: the
        # sidecar's probes through it are answered meanwhile.
        self.start_backend()
        proxy = self.start_proxy()
        d = self.proxied_daemon()
        self.assertAnswer(self.get(d), 200, "ok")
        fds = h.stable_fds(proxy)
        conns = []
        try:
            for _ in range(300):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conns.append(s)
                s.connect(proxy.socket_path)
            self.assertTrue(h.wait_until(lambda: proxy.fd_count() >= fds + 300, 5.0))
            for _ in range(5):
                self.assertAnswer(self.get(d), 200, "ok")
        finally:
            for s in conns:
                s.close()
        self.assertFdsBack(proxy, fds)


class Hooks(ProxyCase):
    """The script in proxy mode: each hook answer, and its call log line."""

    SCRIPT = """
local d = {}
function d.probe(call)
  local n = call.n
  if n == 1 then return nil end
  if n == 2 then return {} end
  if n == 3 then return {delay = 0.3} end
  if n == 4 then return {code = "UNAVAILABLE", message = "injected n=" .. n} end
  if n == 5 then return {hang = true} end
  if n == 6 then return {action = "close_connection"} end
  if n == 7 then return {action = "invalid_response"} end
  if n == 8 then return {forward = true, code = "INTERNAL", message = "replaced"} end
  if n == 9 then return {forward = false} end
  if n == 10 then return {ready = false} end
  if n == 11 then return {delay = 0.2, code = "ABORTED", message = "late"} end
  if n == 12 then return {forward = true, delay = 0.2, code = "NOT_FOUND"} end
  return nil
end
function d.node_get_info(call)
  return {forward = true, code = "ABORTED",
          message = string.format("n=%d elapsed=%.3f", call.n, call.elapsed)}
end
return d
"""

    # n: (code, details, reply: "backend" | None | bytes | "garbage", echo
    #     trailers, at least seconds, call log: code(s), backend, injected)
    EXPECTED = {
        1: ("OK", "", "backend", True, 0, "OK", "OK", None),
        2: ("OK", "", "backend", True, 0, "OK", "OK", None),
        3: ("OK", "", "backend", True, 0.3, "OK", "OK", "delay 0.3s"),
        4: ("UNAVAILABLE", "injected n=4", None, False, 0, "UNAVAILABLE", None,
            "answered UNAVAILABLE"),
        5: ("DEADLINE_EXCEEDED", None, None, False, 0.5, "CANCELLED", None, "hang"),
        6: ("UNAVAILABLE", None, None, False, 0, "UNAVAILABLE", None, "action close_connection"),
        7: ("OK", "", "garbage", False, 0, "OK", None, "action invalid_response"),
        # An error replacement drops the backend's message, not its trailers.
        8: ("INTERNAL", "replaced", None, True, 0, "INTERNAL", "OK",
            "status replaced with INTERNAL"),
        9: ("OK", "", b"", False, 0, "OK", None, "answered OK"),   # the mock's own: ready unset
        10: ("OK", "", "backend", True, 0, "OK", "OK", None),      # ready alone: forwarded
        11: ("ABORTED", "late", None, False, 0.2, "ABORTED", None, "delay 0.2s, answered ABORTED"),
        12: ("NOT_FOUND", "", None, True, 0.2, "NOT_FOUND", "OK",
             "delay 0.2s, status replaced with NOT_FOUND"),
    }

    def test_every_hook_answer(self):
        drv = self.start_backend()
        proxy = self.start_proxy(self.script_flag("hooks.lua", self.SCRIPT))
        backend_reply = self.call(drv, PROBE)[2]
        for n, (code, details, reply, echoed, least, log_code, backend, injected) \
                in sorted(self.EXPECTED.items()):
            with self.subTest(n=n):
                echo = (("x-test-echo", "n=%d" % n),)
                r, took = self.timed_call(proxy, PROBE, metadata=echo,
                                          timeout=0.5 if n == 5 else None)
                self.assertEqual(r[0], code, r)
                if details is not None:
                    self.assertEqual(r[1], details)
                if reply == "backend":
                    self.assertEqual(r[2], backend_reply)
                elif reply == "garbage":
                    from google.protobuf.message import DecodeError
                    with self.assertRaises(DecodeError):
                        self.pb.ProbeResponse.FromString(r[2])
                else:
                    self.assertEqual(r[2], reply)
                self.assertEqual(r[3], echo if echoed else ())
                self.assertGreaterEqual(took, least)
                self.assertLess(took, least + h.scaled(0.5))
                line = self.wait_log(n)[n - 1]
                self.assertLogged(line, "Probe", log_code, backend, injected)
        # Forwarded: 1-3, 8, 10, 12, and the direct call.
        self.assertEqual(drv.calls("Probe"), 7)
        # An unknown method has no hook: forwarded untouched.
        self.assertEqual(self.call(proxy, ECHO, b"abc")[:3], ("OK", "", b"cba"))
        self.assertLogged(self.wait_log(13)[12], ECHO, "OK", "OK", None)
        self.assertTrue(proxy.alive())

    def test_call_number_and_elapsed(self):
        self.start_backend()
        t0 = time.monotonic()
        proxy = self.start_proxy(self.script_flag("hooks.lua", self.SCRIPT))
        seen = []
        for n in (1, 2, 3):
            code, details, _, _ = self.call(proxy, NODE_INFO)
            m = re.fullmatch(r"n=(\d+) elapsed=([0-9.]+)", details)
            self.assertIsNotNone(m, details)
            self.assertEqual((code, int(m.group(1))), ("ABORTED", n))
            seen.append(float(m.group(2)))
            time.sleep(0.2)  # not a barrier: the elapsed the hook sees grows by this
        self.assertGreater(seen[0], 0)
        self.assertLess(seen[0], time.monotonic() - t0)
        self.assertGreaterEqual(seen[2] - seen[0], 0.4)
        self.assertLess(seen[2] - seen[0], h.scaled(2.0))
        for line in self.wait_log(3):
            self.assertLogged(line, "NodeGetInfo", "ABORTED", "OK",
                              "status replaced with ABORTED")

    def test_by_elapsed(self):
        # UNAVAILABLE for the proxy's first PHASE seconds, then forwarded.
        phase = h.scaled(1.0)
        self.start_backend()
        script = self.script_flag("phase.lua", """
local d = {}
function d.get_plugin_capabilities(call)
  if call.elapsed < %r then return {code = "UNAVAILABLE", message = "starting"} end
end
return d
""" % phase)
        t0 = time.monotonic()
        proxy = self.start_proxy(script)
        answers = []
        first = time.monotonic()
        while True:
            code, details, _, _ = self.call(proxy, PLUGIN_CAPS)
            answers.append((code, details))
            if code == "OK" or time.monotonic() - t0 > phase + h.scaled(3):
                break
            time.sleep(0.05)
        self.assertEqual(answers[-1], ("OK", ""))
        for a in answers[:-1]:
            self.assertEqual(a, ("UNAVAILABLE", "starting"))
        self.assertGreaterEqual(time.monotonic() - t0, phase)
        if first < t0 + phase:  # asked in time to see the first phase
            self.assertGreater(len(answers), 1)
        lines = self.wait_log(len(answers))
        for line in lines[:-1]:
            self.assertLogged(line, "GetPluginCapabilities", "UNAVAILABLE", None,
                              "answered UNAVAILABLE")
        self.assertLogged(lines[-1], "GetPluginCapabilities", "OK", "OK", None)

    def test_oversized_answer_instead_of_forwarding(self):
        drv = self.start_backend()
        proxy = self.start_proxy(self.script_flag("big.lua", """
return {probe = function(call) return {action = "oversized_response", size = 6000000} end}
"""))
        code, message, _ = csi_call(proxy.socket_path, PROBE)
        self.assertEqual((code, message),
                         ("RESOURCE_EXHAUSTED",
                          "Received message larger than max (6000000 vs. 4194304)"))
        self.assertEqual(drv.calls("Probe"), 0)
        self.assertLogged(self.wait_log(1)[0], "Probe", "OK", None, "action oversized_response")

    def test_replacing_a_failure_with_ok_sends_a_message(self):
        # BUG (mock_proxy.c maybe_send_status): with forward = true, code =
        # "OK" and a backend that failed, the backend's status is replaced
        # by OK but no message is sent (there was none to pass on), so a
        # unary call ends OK with zero messages: every client reports an
        # error ("grpc: server returned no response message"), while the
        # call log says "code":"OK". The mock's own OK answers always carry
        # a message (an empty one at least).
        self.start_backend("--fail=Probe:FAILED_PRECONDITION:sick")
        self.start_proxy(self.script_flag("mask.lua", """
return {probe = function(call) return {forward = true, code = "OK"} end}
"""))
        d = self.proxied_daemon()
        self.assertLogged(self.wait_log(1)[0], "GetPluginInfo", "OK", "OK", None)
        code, _, reply, _ = self.call(self.sock_path("proxy.sock"), PROBE)
        self.assertEqual(code, "OK")
        self.assertIsNotNone(reply, "status OK without a response message")
        self.assertAnswer(self.get(d), 200, "ok")


class BadInput(ProxyCase):
    """Backends that are missing, wrong, or not gRPC at all."""

    def test_backend_missing_at_start(self):
        proxy = self.start_proxy()  # listens without a backend
        self.assertTrue(proxy.alive())
        (code, details, reply, _), took = self.timed_call(proxy, PROBE)
        self.assertEqual((code, details, reply),
                         ("UNAVAILABLE", "csi-mock-driver: backend unix://%s is unavailable: "
                          "its socket file is missing" % self.backend_path(), None))
        self.assertLess(took, AT_ONCE)
        self.assertLogged(self.wait_log(1)[0], "Probe", "UNAVAILABLE", None, None)
        self.start_backend()
        appeared = time.monotonic()
        self.assertTrue(h.wait_until(lambda: self.call(proxy, PROBE, timeout=h.scaled(2))[0]
                                     == "OK", BACK_WITHIN, interval=0.02))
        self.assertLess(time.monotonic() - appeared, BACK_WITHIN)

    def test_backend_dead_at_start(self):
        # A socket file nobody listens on (a crashed driver's): the proxy
        # starts, answers as a dead driver, and forwards once one binds it.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.backend_path())
        s.close()
        proxy = self.start_proxy()
        (code, details, _, _), took = self.timed_call(proxy, PROBE)
        self.assertEqual(code, "UNAVAILABLE")
        self.assertTrue(details.startswith(
            "csi-mock-driver: backend unix://%s is unavailable: failed to connect to all "
            "addresses" % self.backend_path()), details)
        self.assertLess(took, AT_ONCE)
        os.unlink(self.backend_path())
        self.start_backend()
        appeared = time.monotonic()
        self.assertTrue(h.wait_until(lambda: self.call(proxy, PROBE, timeout=h.scaled(2))[0]
                                     == "OK", BACK_WITHIN, interval=0.02))
        self.assertLess(time.monotonic() - appeared, BACK_WITHIN)

    def test_dead_backend_is_logged_as_never_reached(self):
        # BUG (mock_server.c log_call / mock_proxy.c): the call log's
        # "backend" is documented (mock_call_log.h) as null when the call
        # never reached the backend. With its socket file present but
        # nobody listening (a crashed driver), the call never reaches it
        # either, and the client's details say so ("backend ... is
        # unavailable: failed to connect ..."), yet the line says
        # "backend":"UNAVAILABLE", as if the backend had answered it.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.backend_path())
        s.close()
        proxy = self.start_proxy()
        self.assertEqual(self.call(proxy, PROBE)[0], "UNAVAILABLE")
        self.assertLogged(self.wait_log(1)[0], "Probe", "UNAVAILABLE", None, None)

    def test_proxy_to_itself_exits_2(self):
        path = self.sock_path("proxy.sock")
        for value in (path, "unix://" + path):
            with self.subTest(value=value):
                m = self.start_mock("--proxy-to=" + value, path=path, wait=False)
                self.assertEqual(m.wait(h.scaled(10)), 2, m.stderr())
                self.assertIn('invalid value "%s" for flag -proxy-to: is the socket this '
                              'driver serves (--csi-address): it would call itself' % value,
                              m.stderr())
                self.assertFalse(os.path.exists(path))

    def test_backend_oversized_reply(self):
        # csi-mock-driver as the backend, 20 MiB Probe replies. The proxy
        # has no limit of its own: a client without one gets them whole; one
        # with gRPC's default 4 MiB limit refuses them. The proxy serves on.
        self.start_mock_backend("--node-id=node-1", self.script_flag("big.lua", """
return {probe = function(call) return {action = "oversized_response", size = %d} end}
""" % TWENTY_MIB))
        proxy = self.start_proxy()
        self.assertEqual(self.call(proxy, NODE_INFO)[0], "OK")
        fds, rss = h.stable_fds(proxy), proxy.rss_kib()
        code, _, reply, _ = self.call(proxy, PROBE, timeout=h.scaled(30))
        self.assertEqual(code, "OK")
        self.assertEqual(len(reply), TWENTY_MIB)
        self.assertEqual(self.call(self.backend_path(), PROBE, timeout=h.scaled(30))[2], reply)
        for _ in range(3):
            self.assertEqual(csi_call(proxy.socket_path, PROBE, h.scaled(30))[:2],
                             ("RESOURCE_EXHAUSTED",
                              "Received message larger than max (%d vs. 4194304)" % TWENTY_MIB))
        d = self.proxied_daemon()
        r = self.get(d)
        self.assertEqual(self.answer(r),
                         (500, "rpc error: code = ResourceExhausted desc = Received message "
                          "larger than max (%d vs. 4194304)" % TWENTY_MIB))
        self.assertLess(r.elapsed, PROBE_TIMEOUT)
        node = self.pb.NodeGetInfoResponse.FromString(self.call(proxy, NODE_INFO)[2])
        self.assertEqual(node.node_id, "node-1")
        self.stop_daemon(d)
        self.assertFdsBack(proxy, fds)
        # Each reply passes one message at a time: what stays is malloc's,
        # not a message per call (6 have passed: a leak would be 120 MiB).
        if not PROXY_SANITIZED:
            self.assertLessEqual(proxy.rss_kib() - rss, 3 * TWENTY_MIB // 1024 + 4096)

    def test_backend_invalid_reply(self):
        # Bytes that are no ProbeResponse pass untouched (the proxy does not
        # decode them); the client is the one to refuse them.
        self.start_mock_backend(self.script_flag("bad.lua", """
return {probe = function(call) return {action = "invalid_response"} end}
"""))
        proxy = self.start_proxy()
        direct = self.call(self.backend_path(), PROBE)
        self.assertEqual(self.call(proxy, PROBE), direct)
        self.assertEqual(direct[0], "OK")
        d = self.proxied_daemon()
        self.assertAnswer(self.get(d), 500, "rpc error: code = Internal desc = "
                          "grpc: failed to unmarshal the received message")
        self.assertEqual(self.call(proxy, INFO)[0], "OK")
        self.assertTrue(proxy.alive())

    def test_backend_not_grpc(self):
        proxy = self.start_proxy()
        self.assertEqual(self.call(proxy, PROBE)[0], "UNAVAILABLE")  # no backend yet
        fds = h.stable_fds(proxy)
        prefix = "csi-mock-driver: backend unix://%s is unavailable: " % self.backend_path()
        for name, data in NOT_GRPC_PEERS:
            with self.subTest(peer=name):
                raw = RawBackend(self.backend_path(), data)
                try:
                    for _ in range(2):
                        (code, details, _, _), took = self.timed_call(proxy, PROBE,
                                                                      timeout=h.scaled(3))
                        self.assertEqual(code, "UNAVAILABLE")
                        self.assertTrue(details.startswith(prefix), details)
                        self.assertLess(took, AT_ONCE)
                finally:
                    raw.close()
                self.assertFdsBack(proxy, fds)
        self.start_backend()
        self.assertTrue(h.wait_until(lambda: self.call(proxy, PROBE)[0] == "OK", BACK_WITHIN))

    def test_backend_silent(self):
        # A backend that accepts and never speaks: the client's deadline
        # ends the call, or gRPC's handshake timeout first, either way an
        # answer by the deadline; the connection goes when the peer does.
        proxy = self.start_proxy()
        self.assertEqual(self.call(proxy, PROBE)[0], "UNAVAILABLE")
        fds = h.stable_fds(proxy)
        raw = RawBackend(self.backend_path(), None)
        try:
            (code, _, _, _), took = self.timed_call(proxy, PROBE, timeout=0.5)
            self.assertIn(code, ("DEADLINE_EXCEEDED", "UNAVAILABLE"))
            self.assertLess(took, 0.5 + h.scaled(0.5))
        finally:
            raw.close()
        self.assertFdsBack(proxy, fds)
        self.start_backend()
        self.assertTrue(h.wait_until(lambda: self.call(proxy, PROBE)[0] == "OK", BACK_WITHIN))

    def test_backend_slow_to_handshake(self):
        # BUG (mock_proxy.c channel_open): a backend that takes longer than
        # ~100 ms to answer a new connection's HTTP/2 handshake (here a
        # driver stopped for 0.5 s, as a busy or swapping one is) is
        # answered UNAVAILABLE "... connection attempt timed out before
        # receiving SETTINGS frame" after ~0.1 s, where the same call made
        # directly waits and gets the driver's answer. gRPC takes
        # GRPC_ARG_MIN_RECONNECT_BACKOFF_MS (100 here) as its minimum
        # connect timeout, and the proxy's calls do not wait for ready, so
        # the first attempt's timeout is the call's end. (The sidecar, with
        # the same channel arguments, waits for ready within its deadline.)
        drv = self.start_backend()
        for target in ("direct", "proxied"):
            with self.subTest(target=target):
                proxy = self.start_proxy() if target == "proxied" else None
                os.kill(drv.pid, signal.SIGSTOP)
                timer = threading.Timer(0.5, os.kill, (drv.pid, signal.SIGCONT))
                timer.start()
                try:
                    (code, details, _, _), took = self.timed_call(
                        proxy or drv, PROBE, timeout=h.scaled(3))
                finally:
                    timer.join()
                    os.kill(drv.pid, signal.SIGCONT)
                self.assertEqual((code, details), ("OK", ""))
                self.assertGreaterEqual(took, 0.5 - EARLY_SLACK)
                if proxy:
                    self.stop_mock(proxy)

    def test_sigterm_with_calls_in_flight(self):
        # A forwarded call the backend hangs, one parked by a delay hook, one
        # hung by a hook: SIGTERM ends the proxy at once, each client gets
        # an answer, the backend's call ends with it.
        drv = self.start_backend("--hang=Probe", "--workers=1")
        proxy = self.start_proxy(self.script_flag("park.lua", """
return {node_get_info = function(call) return {delay = 30} end,
        get_plugin_capabilities = function(call) return {hang = true} end}
"""))
        results = {}
        threads = [threading.Thread(target=lambda m=m: results.__setitem__(
            m, self.call(proxy, m, timeout=h.scaled(30)))) for m in (PROBE, NODE_INFO,
                                                                      PLUGIN_CAPS)]
        for t in threads:
            t.start()
        self.assertTrue(drv.wait_calls(1, "Probe", h.scaled(5)))
        self.assertTrue(proxy.wait_calls(1, "NodeGetInfo", h.scaled(5)))
        self.assertTrue(proxy.wait_calls(1, "GetPluginCapabilities", h.scaled(5)))
        t0 = time.monotonic()
        self.assertEqual(self.stop_mock(proxy), 0)
        self.assertLess(time.monotonic() - t0, h.scaled(2))
        for t in threads:
            t.join(h.scaled(5))
        self.assertEqual({m: r[0] for m, r in results.items()},
                         {PROBE: "UNAVAILABLE", NODE_INFO: "UNAVAILABLE",
                          PLUGIN_CAPS: "UNAVAILABLE"})
        self.assertFalse(os.path.exists(proxy.socket_path))
        # The backend's one worker is free again.
        self.assertEqual(self.call(drv, NODE_INFO, timeout=h.scaled(2))[0], "OK")
        logged = {l["method"]: l for l in self.wait_log(3)}
        self.assertLogged(logged["Probe"], "Probe", "CANCELLED", "CANCELLED", None)
        self.assertLogged(logged["NodeGetInfo"], "NodeGetInfo", "CANCELLED", None, "delay 30s")
        self.assertLogged(logged["GetPluginCapabilities"], "GetPluginCapabilities",
                          "CANCELLED", None, "hang")


class FailureModes(ProxyCase):
    """examples/failure-modes/ through the proxy, in front of the Python driver."""

    def example(self, name, **constants):
        """The example, with constants (e.g. CALLS=1) substituted."""
        with open(os.path.join(FAILURE_MODES, name + ".lua")) as f:
            text = f.read()
        for key, value in constants.items():
            text, n = re.subn(r"(?m)^local %s = .*$" % key, "local %s = %s" % (key, value), text)
            self.assertEqual(n, 1, "%s has no constant %s" % (name, key))
        return "--script=" + self.write_file(name + ".lua", text)

    def test_every_example_loads_in_proxy_mode(self):
        self.start_backend()
        names = sorted(f[:-4] for f in os.listdir(FAILURE_MODES) if f.endswith(".lua"))
        self.assertGreaterEqual(len([n for n in names if n.startswith("proxy_")]), 3)
        for name in names:
            with self.subTest(example=name):
                proxy = self.start_proxy(self.example(name))
                self.assertTrue(proxy.alive())
                self.stop_mock(proxy)

    def test_proxy_stall_node(self):
        drv = self.start_backend()
        proxy = self.start_proxy(self.example("proxy_stall_node", CALLS=2))
        d = self.proxied_daemon()
        for method in (STAGE, PUBLISH):
            with self.subTest(method=method):
                direct = self.call(drv, method)
                for _ in range(2):  # forwarded: the backend's own answer
                    self.assertEqual(self.call(proxy, method), direct)
                for _ in range(2):  # then stalled until the caller gives up
                    (code, _, _, _), took = self.timed_call(proxy, method, timeout=0.3)
                    self.assertEqual(code, "DEADLINE_EXCEEDED")
                    self.assertLess(took, 0.3 + h.scaled(0.5))
                self.assertEqual(drv.calls("other"), 3 if method == STAGE else 6)
        # Liveness does not see it.
        self.assertAnswer(self.get(d), 200, "ok")
        lines = self.wait_log(1 + 8 + 1)
        for method in ("NodeStageVolume", "NodePublishVolume"):
            mine = [l for l in lines if l["method"] == method]
            self.assertEqual(len(mine), 4, lines)
            for line in mine[:2]:
                self.assertLogged(line, method, "UNIMPLEMENTED", "UNIMPLEMENTED", None)
            for line in mine[2:]:
                self.assertLogged(line, method, "CANCELLED", None, "hang")

    def test_proxy_flaky_controller(self):
        self.start_backend()
        proxy = self.start_proxy(self.example("proxy_flaky_controller", EVERY=3))
        message = "proxy_flaky_controller: controller busy, try again"
        got = [self.call(proxy, CREATE)[:2] for _ in range(6)]
        forwarded = ("UNIMPLEMENTED", "Method not found!")  # grpcio's words
        dropped = ("UNAVAILABLE", message)
        self.assertEqual(got, [forwarded, forwarded, dropped] * 2)
        for n, line in enumerate(self.wait_log(6), 1):
            if n % 3:
                self.assertLogged(line, "CreateVolume", "UNIMPLEMENTED", "UNIMPLEMENTED", None)
            else:
                self.assertLogged(line, "CreateVolume", "UNAVAILABLE", None,
                                  "answered UNAVAILABLE")
        # Probe is forwarded untouched.
        self.assertEqual(self.call(proxy, PROBE)[:2], ("OK", ""))

    def test_proxy_slow_probe(self):
        drv = self.start_backend()
        self.start_proxy(self.example("proxy_slow_probe", EVERY=3))
        d = self.proxied_daemon()
        self.assertAnswer(self.get(d), 200, "ok")
        self.assertAnswer(self.get(d), 200, "ok")
        self.assertAnswer(self.get(d), 500, h.DEADLINE_BODY, at_deadline=True)
        self.assertAnswer(self.get(d), 200, "ok")
        probes = [l for l in self.wait_log(5) if l["method"] == "Probe"]
        late = [l for l in probes if l["injected"]]
        # The sidecar gave up before the delay passed: never sent on.
        self.assertEqual(len(late), 1, probes)
        self.assertLogged(late[0], "Probe", ("CANCELLED", "DEADLINE_EXCEEDED"), None,
                          "delay 1.5s")
        for line in probes:
            if line is not late[0]:
                self.assertLogged(line, "Probe", "OK", "OK", None)
        self.assertEqual(drv.calls("Probe"), 3)

    def test_flapping_answers_are_the_backends(self):
        # The healthy half is forwarded: a not-ready backend shows through.
        self.start_backend("--ready=false")
        self.start_proxy(self.example("flapping"))
        d = self.proxied_daemon()
        down = (500, "rpc error: code = Unavailable desc = flapping: down for a while")
        not_ready = (500, h.NOT_READY_BODY)
        got = [self.answer(self.get(d)) for _ in range(6)]
        self.assertEqual(got, [not_ready, not_ready, down, down, not_ready, not_ready])

    def test_slow_start(self):
        # Not ready, answered by the proxy (forward = false), then forwarded.
        self.start_backend()
        init = h.scaled(1.5)
        t0 = time.monotonic()
        self.start_proxy(self.example("slow_start", INIT_SECONDS=init))
        d = self.proxied_daemon()
        answers = []
        first = time.monotonic()
        while True:
            r = self.get(d)
            answers.append(self.answer(r))
            if r.ok or time.monotonic() - t0 > init + h.scaled(5):
                break
            time.sleep(0.05)
        self.assertEqual(answers[-1], (200, "ok"))
        for a in answers[:-1]:
            self.assertEqual(a, (500, h.NOT_READY_BODY))
        self.assertGreaterEqual(time.monotonic() - t0, init)
        if first < t0 + init:  # asked in time to see the first phase
            self.assertGreater(len(answers), 1)
        lines = [l for l in self.wait_log(len(answers) + 1) if l["method"] == "Probe"]
        for line in lines[:-1]:
            self.assertLogged(line, "Probe", "OK", None, "answered OK")
        self.assertLogged(lines[-1], "Probe", "OK", "OK", None)

    def test_crash_loop_exits_the_proxy(self):
        drv = self.start_backend()
        proxy = self.start_proxy(self.example("crash_loop", CALLS=2))
        d = self.proxied_daemon()
        self.assertAnswer(self.get(d), 200, "ok")
        self.assertAnswer(self.get(d), 200, "ok")
        self.assertEqual(self.get(d).status, 500)
        self.assertEqual(proxy.wait(h.scaled(5)), 1)
        self.assertTrue(drv.alive(), "the driver behind the proxy runs on")
        self.assertEqual(drv.calls("Probe"), 2)


class Manifest(ProxyCase):
    """examples/kubernetes/proxy.yaml: its ConfigMap and its containers' args."""

    def test_proxy_manifest(self):
        with open(PROXY_YAML) as f:
            text = f.read()
        scripts = sorted(n for n in os.listdir(FAILURE_MODES) if n.endswith(".lua"))
        self.assertEqual(sorted(re.findall(r"(?m)^  (\S+\.lua): \|$", text)), scripts)
        for name in scripts:
            with open(os.path.join(FAILURE_MODES, name)) as f:
                self.assertEqual(configmap_file(text, name), f.read(), name)
        driver = container_args(text, "hostpath-driver")
        self.assertIn("--endpoint=unix:///csi-real/csi.sock", driver)
        proxy_args = container_args(text, "csi-proxy")
        self.assertEqual(proxy_args[:2], ["--csi-address=/csi/csi.sock",
                                          "--proxy-to=/csi-real/csi.sock"])
        script = re.fullmatch(r"--script=/etc/failure/(\S+)", proxy_args[2])
        self.assertIsNotNone(script, proxy_args)
        self.assertIn(script.group(1), scripts)
        self.assertEqual(proxy_args[3], "--call-log=/var/log/csi-proxy/calls.jsonl")
        self.assertEqual(container_args(text, "liveness-probe"), ["--csi-address=/csi/csi.sock"])
        self.assertIn("--csi-address=/csi/csi.sock", container_args(text, "node-driver-registrar"))
        # The args run, paths made local: the sidecar through the proxy.
        local = {"/csi/csi.sock": self.sock_path("proxy.sock"),
                 "/csi-real/csi.sock": self.backend_path(),
                 "/etc/failure/": FAILURE_MODES + "/",
                 "/var/log/csi-proxy/calls.jsonl": self.call_log}
        args = []
        for a in proxy_args:
            for k, v in local.items():
                a = a.replace(k, v)
            args.append(a)
        drv = self.start_backend()
        proxy = self.start_mock(*args[1:], path=self.sock_path("proxy.sock"))
        d = self.start_daemon(*container_args(text, "liveness-probe")[1:],
                              csi=proxy.socket_path)
        self.assertAnswer(self.get(d), 200, "ok")
        self.assertEqual(drv.calls("Probe"), 1)
        self.assertEqual([l["method"] for l in self.wait_log(2)], ["GetPluginInfo", "Probe"])


if __name__ == "__main__":
    pyc.main()
