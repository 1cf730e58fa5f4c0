"""Self-check of kubeprober.py against a tiny local HTTP server.

The pod-level tests (test_pods.py) trust the prober to judge like kubelet;
here it meets answers whose verdict is known: 200-399 pass, 400+ fail,
redirects are followed, slow headers or a slow body past timeoutSeconds
fail, and failureThreshold consecutive failures restart exactly once.
No livenessprobe binary is involved.
"""

import http.server
import threading
import time
import unittest

import kubeprober as kp
import lpharness as h


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.seen.append((self.path, dict(self.headers.items()),
                             self.client_address))
        path = self.path
        if path == "/switch":
            path = srv.switch_target
        elif path == "/cycle":
            with srv.lock:
                path = srv.cycle[srv.cycle_n % len(srv.cycle)]
                srv.cycle_n += 1
        if path.startswith("/s/"):
            self.answer(int(path[3:]), b"status %s" % path[3:].encode())
        elif path.startswith("/redirect/"):
            # /redirect/CODE/TARGET...
            _, _, code, target = path.split("/", 3)
            self.answer(int(code), b"", [("Location", "/" + target)])
        elif path == "/loop":
            self.answer(302, b"", [("Location", "/loop")])
        elif path == "/elsewhere":
            self.answer(302, b"", [("Location", "http://127.0.0.2:1/x")])
        elif path == "/slow-headers":
            time.sleep(srv.sleep)
            self.answer(200, b"late")
        elif path == "/slow-body":
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"12345")
            self.wfile.flush()
            time.sleep(srv.sleep)
            self.wfile.write(b"67890")
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"2\r\nok\r\n0\r\n\r\n")
        elif path == "/big":
            self.answer(200, b"x" * 100000)
        elif path == "/no-answer":
            self.close_connection = True
        else:
            self.answer(404, b"no")

    def answer(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a prober that gave up (timeout tests) breaks the pipe


class _ServerMixin:
    """A local HTTP server on 127.0.0.1, shared by a class's tests."""

    @classmethod
    def setUpClass(cls):
        cls.srv = _Server(("127.0.0.1", 0), _Handler)
        cls.srv.lock = threading.Lock()
        cls.srv.seen = []
        cls.srv.sleep = 1.0
        cls.srv.switch_target = "/s/500"
        cls.srv.cycle = ["/s/200"]
        cls.srv.cycle_n = 0
        cls.port = cls.srv.server_address[1]
        cls.thread = threading.Thread(target=cls.srv.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.shutdown()
        cls.srv.server_close()



class ProbeOnceTest(_ServerMixin, unittest.TestCase):

    def probe(self, path, timeout=None):
        return kp.probe_once(self.port, path=path,
                             timeout=h.scaled(1.0) if timeout is None else timeout)

    def test_2xx_3xx_pass_4xx_5xx_fail(self):
        for status, ok in ((200, True), (204, True), (299, True), (300, True),
                           (304, True), (399, True), (400, False), (404, False),
                           (499, False), (500, False), (503, False)):
            with self.subTest(status=status):
                r = self.probe("/s/%d" % status)
                self.assertIsNone(r.error, r)
                self.assertEqual(r.status, status)
                self.assertEqual(r.ok, ok, r)

    def test_request_is_kubelets(self):
        with self.srv.lock:
            del self.srv.seen[:]
        r1 = self.probe("/s/200")
        r2 = self.probe("/s/200")
        self.assertTrue(r1.ok and r2.ok)
        with self.srv.lock:
            seen = list(self.srv.seen)
        self.assertEqual(len(seen), 2)
        path, headers, client = seen[0]
        self.assertEqual(path, "/s/200")
        self.assertEqual(headers, {
            "Host": "127.0.0.1:%d" % self.port,
            "User-Agent": "kube-probe/1.28",
            "Accept": "*/*",
            "Connection": "close",
        })
        # A new TCP connection per probe.
        self.assertNotEqual(seen[0][2], seen[1][2])

    def test_redirects_followed(self):
        r = self.probe("/redirect/301/s/200")
        self.assertTrue(r.ok, r)
        self.assertEqual((r.status, r.body), (200, b"status 200"))
        self.assertEqual(r.redirects, ["/s/200"])
        # The verdict is the final answer's.
        r = self.probe("/redirect/302/s/500")
        self.assertFalse(r.ok, r)
        self.assertEqual(r.status, 500)
        # A redirect loop: Go gives up after 10 redirects; a failure.
        r = self.probe("/loop")
        self.assertFalse(r.ok, r)
        self.assertEqual(len(r.redirects), 10)
        self.assertIn("redirects", r.error)
        # Another host: not followed, and a success, as kubelet decides.
        r = self.probe("/elsewhere")
        self.assertTrue(r.ok, r)
        self.assertEqual(r.status, 302)

    def test_bodies(self):
        r = self.probe("/chunked")
        self.assertEqual((r.ok, r.body), (True, b"ok"))
        r = self.probe("/big")
        self.assertTrue(r.ok, r)
        self.assertEqual(len(r.body), kp.MAX_BODY)

    def test_timeout_covers_headers_and_body(self):
        for path in ("/slow-headers", "/slow-body"):
            with self.subTest(path=path):
                r = self.probe(path, timeout=0.3)
                self.assertFalse(r.ok, r)
                self.assertIsNone(r.status)
                self.assertIn("timeout", r.error)
                self.assertGreaterEqual(r.elapsed, 0.3)
                self.assertLess(r.elapsed, 0.3 + h.scaled(0.2))

    def test_errors_fail(self):
        r = self.probe("/no-answer")
        self.assertFalse(r.ok, r)
        self.assertIn("EOF", r.error)
        port = h.free_port()  # nothing listens there
        r = kp.probe_once(port, timeout=1.0)
        self.assertFalse(r.ok, r)
        self.assertIn("ConnectionRefused", r.error)
        self.assertLess(r.elapsed, h.scaled(0.5))


class WorkerTest(_ServerMixin, unittest.TestCase):
    """The periodic worker: thresholds, restarts, initial delay, period."""

    def test_threshold_restarts_exactly_once(self):
        self.srv.switch_target = "/s/500"
        restarted = []

        def restart():
            restarted.append(time.monotonic())
            self.srv.switch_target = "/s/200"  # the new container is healthy

        p = kp.KubeProber(self.port, path="/switch", period=0.1, timeout=1.0,
                          failure_threshold=3, initial_delay=0.3,
                          restart=restart)
        with p:
            self.assertTrue(p.wait_until(
                lambda probes, restarts: len(restarts) == 1
                and sum(1 for x in probes if x.ok) >= 5, h.scaled(5.0)))
        probes, restarts = p.snapshot()
        self.assertEqual(len(restarts), 1)
        self.assertEqual(len(restarted), 1)
        self.assertEqual([x.ok for x in probes[:3]], [False] * 3, probes)
        self.assertTrue(all(x.ok for x in probes[3:]), probes)
        # The restart follows the third failure, and the next probe waits
        # initialDelaySeconds after it.
        self.assertGreaterEqual(restarts[0], probes[2].end)
        self.assertGreaterEqual(probes[3].start - restarted[0], 0.3)
        # The first probe waited the initial delay too; then every period.
        self.assertGreaterEqual(probes[0].start - p.started, 0.3)
        # A ticker: the i-th tick is i periods after the first, never
        # earlier (a probe that started late leaves the next gap shorter:
        # seen on a busy CI machine), and none waits much longer.
        starts = [x.start for x in probes[3:]]
        for i, t in enumerate(starts):
            self.assertGreaterEqual(t - starts[0], i * 0.1 - 0.01, starts)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        for gap in gaps:
            self.assertLess(gap, 0.1 + h.scaled(0.1), gaps)

    def test_readiness_follows_thresholds_and_never_restarts(self):
        # 200 200 500 500 200 ...: ready after 1 success, not ready after 2 failures.
        self.srv.cycle = ["/s/200", "/s/200", "/s/500", "/s/500", "/s/200"]
        self.srv.cycle_n = 0
        p = kp.KubeProber(self.port, path="/cycle", period=0.05, timeout=1.0,
                          failure_threshold=2, success_threshold=1, kind="readiness",
                          restart=lambda: self.fail("restarted"))
        self.assertFalse(p.ready)  # kubelet starts a container not ready
        with p:
            self.assertTrue(p.wait_until(
                lambda probes, restarts: len(probes) >= 5, h.scaled(5.0)))
        probes, restarts = p.snapshot()
        self.assertEqual(restarts, [])
        self.assertEqual([ready for _, ready in p.ready_changes[:3]], [True, False, True])
        self.assertEqual(p.ready_changes[0][0], probes[0].end)
        self.assertEqual(p.ready_changes[1][0], probes[3].end)  # the second failure

    def test_startup_stops_at_its_first_success(self):
        self.srv.cycle = ["/s/500", "/s/500", "/s/200", "/s/500"]
        self.srv.cycle_n = 0
        started = []
        p = kp.KubeProber(self.port, path="/cycle", period=0.05, timeout=1.0,
                          failure_threshold=3, kind="startup",
                          started=lambda: started.append(time.monotonic()),
                          restart=lambda: self.fail("restarted"))
        with p:
            self.assertTrue(p.wait_until(
                lambda probes, restarts: p.started_at is not None, h.scaled(5.0)))
            time.sleep(0.2)
        probes, restarts = p.snapshot()
        self.assertEqual([x.ok for x in probes], [False, False, True])
        self.assertEqual(len(started), 1)
        self.assertEqual(p.started_at, probes[2].end)

    def test_failures_below_threshold_do_not_restart(self):
        # fail, fail, ok, fail, fail, ok ...: never three in a row.
        self.srv.cycle = ["/s/500", "/s/500", "/s/200"]
        self.srv.cycle_n = 0
        p = kp.KubeProber(self.port, path="/cycle", period=0.05, timeout=1.0,
                          failure_threshold=3,
                          restart=lambda: self.fail("restarted"))
        with p:
            self.assertTrue(p.wait_until(
                lambda probes, restarts: len(probes) >= 12, h.scaled(5.0)))
        probes, restarts = p.snapshot()
        self.assertEqual(restarts, [])
        self.assertEqual([x.ok for x in probes[:6]],
                         [False, False, True, False, False, True])

    def test_slow_probe_delays_next_tick(self):
        # A probe longer than the period: the next one starts right after.
        self.srv.sleep = 0.25
        p = kp.KubeProber(self.port, path="/slow-headers", period=0.1,
                          timeout=2.0, failure_threshold=100)
        with p:
            self.assertTrue(p.wait_until(
                lambda probes, restarts: len(probes) >= 3, h.scaled(5.0)))
        probes, _ = p.snapshot()
        self.assertTrue(all(x.ok for x in probes), probes)
        for a, b in zip(probes, probes[1:]):
            self.assertGreaterEqual(b.start - a.start, 0.25)
            self.assertLess(b.start - a.end, h.scaled(0.05))

    def test_stop_ends_the_thread(self):
        p = kp.KubeProber(self.port, path="/s/200", period=0.05).start()
        self.assertTrue(p.wait_until(lambda probes, _: len(probes) >= 2,
                                     h.scaled(2.0)))
        p.stop()
        n = len(p.snapshot()[0])
        time.sleep(h.scaled(0.2))  # room for a probe that must not come
        self.assertEqual(len(p.snapshot()[0]), n)


if __name__ == "__main__":
    h.main()
