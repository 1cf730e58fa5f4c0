"""/healthz answers, timing and HTTP routing.

UPSTREAM.md §3 and checklist items 16-24; DESIGN.md "/healthz with the
built-in policy" (the table there is the contract).
"""

import email.utils
import os
import signal
import socket
import time

import lpharness as h


class ReadyTest(h.LPTestCase):
    """Items 17-18: the ready flag."""

    def test_ready_unset(self):
        mock, d = self.healthy_daemon(mock_args=["--ready=unset"])
        r = d.request()
        self.assertHealthz(r, 200, "ok")
        self.assertEqual(r.header("Content-Type"), h.TEXT_TYPE)
        self.assertEqual(r.header("Content-Length"), "2")
        self.assertEqual(mock.calls(), 1)

    def test_ready_true(self):
        mock, d = self.healthy_daemon(mock_args=["--ready=true"])
        r = d.request()
        self.assertHealthz(r, 200, "ok")
        self.assertEqual(r.header("Content-Type"), h.TEXT_TYPE)
        self.assertEqual(r.header("Content-Length"), "2")

    def test_ready_false(self):
        mock, d = self.healthy_daemon(mock_args=["--ready=false"])
        r = d.request()
        self.assertHealthz(r, 500, h.NOT_READY_BODY)
        self.assertEqual(r.header("Content-Type"), h.TEXT_TYPE)
        self.assertEqual(r.header("Content-Length"), str(len(h.NOT_READY_BODY)))
        self.assertEqual(mock.calls(), 1)


class ErrorCodeTest(h.LPTestCase):
    """Item 19: every gRPC status code, with and without a message."""

    # Started this many at a time (valgrind makes each start slow).
    BATCH = 8

    def check_codes(self, message_for):
        cases = []
        for code in range(1, 17):
            for with_message in (False, True):
                cases.append((code, message_for(code) if with_message else ""))
        for i in range(0, len(cases), self.BATCH):
            batch = []
            for code, message in cases[i:i + self.BATCH]:
                path = self.sock_path("c%d%s.sock" % (code, "m" if message else ""))
                args = ["--probe-code=%d" % code]
                if message:
                    args.append("--probe-message=" + message)
                mock = self.start_mock(*args, path=path)
                d = self.start_daemon(csi=path, wait=False)
                batch.append((code, message, mock, d))
            for code, message, mock, d in batch:
                d.wait_port()
                with self.subTest(code=code, message=message):
                    r = d.request()
                    want = "rpc error: code = %s desc = %s" % (
                        h.GO_CODE_NAMES[code], message)
                    self.assertHealthz(r, 500, want)
                    self.assertEqual(r.header("Content-Type"), h.TEXT_TYPE)
                    self.assertEqual(r.header("Content-Length"),
                                     str(len(want.encode())))
                    self.assertEqual(mock.calls(), 1)
                self.stop_daemon(d)
                self.stop_mock(mock)

    def test_codes_plain_message(self):
        self.check_codes(lambda code: "plugin %d not healthy" % code)

    def test_codes_awkward_message(self):
        # Percent signs, non-ASCII and quotes survive the grpc-message encoding.
        self.check_codes(lambda code: "100%% f\u00e4il \"%d\" / x" % code)


class UnreachableTest(h.LPTestCase):
    """Item 20 (and 16): no connection in time → at the deadline."""

    def unreachable(self, timeout, how):
        mock, d = self.healthy_daemon("--probe-timeout=" + timeout)
        self.assertHealthz(d.request(), 200, "ok")
        if how == "sigkill":
            mock.signal(signal.SIGKILL)  # the socket file stays: ECONNREFUSED
            mock.wait(5)
            self.assertTrue(os.path.exists(mock.socket_path))
        elif how == "sigterm":
            self.stop_mock(mock)  # the mock removes its socket: ENOENT
            self.assertFalse(os.path.exists(mock.socket_path))
        elif how == "deleted":
            os.unlink(mock.socket_path)  # the driver keeps running (issue #68)
        elif how == "silent":
            # Something else now owns the path and never speaks HTTP/2.
            self.stop_mock(mock)
            ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.addCleanup(ls.close)
            ls.bind(mock.socket_path)
            ls.listen(64)
        seconds = h.parse_duration(timeout)
        if how == "sigkill":
            # The first probe may race the daemon noticing the dead
            # connection; test_channel.py's test_probe_right_after_driver_dies
            # pins that case down. Here: the steady state.
            self.assertEqual(d.request().status, 500)
        for _ in range(2):
            r = d.request()
            self.assertHealthz(r, 500, h.CONNECT_FAIL_BODY)
            self.assertEqual(r.header("Content-Type"), h.TEXT_TYPE)
            self.assertAtDeadline(r, seconds)
        if how == "deleted":
            self.assertTrue(mock.alive())
            self.assertEqual(mock.calls(), 1)

    def test_driver_killed(self):
        for timeout in ("1s", "500ms"):
            with self.subTest(timeout=timeout):
                self.unreachable(timeout, "sigkill")

    def test_driver_stopped_socket_removed(self):
        for timeout in ("1s", "500ms"):
            with self.subTest(timeout=timeout):
                self.unreachable(timeout, "sigterm")

    def test_socket_deleted_driver_running(self):
        for timeout in ("1s", "500ms"):
            with self.subTest(timeout=timeout):
                self.unreachable(timeout, "deleted")

    def test_silent_socket(self):
        for timeout in ("1s", "500ms"):
            with self.subTest(timeout=timeout):
                self.unreachable(timeout, "silent")


class DeadlineTest(h.LPTestCase):
    """Items 21-22: slow, hanging, stopped drivers; timeouts <= 0."""

    def test_hanging_probe(self):
        for timeout in ("1s", "500ms"):
            with self.subTest(timeout=timeout):
                mock, d = self.healthy_daemon("--probe-timeout=" + timeout,
                                              mock_args=["--probe-hang"])
                r = d.request()
                self.assertHealthz(r, 500, h.DEADLINE_BODY)
                self.assertAtDeadline(r, h.parse_duration(timeout))
                self.assertEqual(mock.calls(), 1)

    def test_stopped_driver(self):
        mock, d = self.healthy_daemon("--probe-timeout=500ms")
        self.assertHealthz(d.request(), 200, "ok")
        os.kill(mock.pid, signal.SIGSTOP)
        try:
            r = d.request()
            # The channel is connected: the Probe itself runs out of time.
            self.assertHealthz(r, 500, h.DEADLINE_BODY)
            self.assertAtDeadline(r, 0.5)
        finally:
            os.kill(mock.pid, signal.SIGCONT)
        # Healthy again once the driver runs.
        deadline = time.monotonic() + h.scaled(2.0)
        while True:
            r = d.request()
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertHealthz(r, 200, "ok")

    def test_slow_probe_within_timeout(self):
        mock, d = self.healthy_daemon("--probe-timeout=1s",
                                      mock_args=["--probe-delay=800ms"])
        r = d.request()
        self.assertHealthz(r, 200, "ok")
        self.assertAtDeadline(r, 0.8)

    def test_slow_probe_past_timeout(self):
        mock, d = self.healthy_daemon("--probe-timeout=500ms",
                                      mock_args=["--probe-delay=800ms"])
        r = d.request()
        self.assertHealthz(r, 500, h.DEADLINE_BODY)
        self.assertAtDeadline(r, 0.5)

    def test_zero_or_negative_timeout_fails_at_once(self):
        for timeout in ("0", "0s", "-1s"):
            with self.subTest(timeout=timeout):
                mock, d = self.healthy_daemon("--probe-timeout=" + timeout)
                for _ in range(2):
                    r = d.request()
                    self.assertHealthz(r, 500, h.CONNECT_FAIL_BODY)
                    self.assertLess(r.elapsed, h.scaled(0.1))
                # Nothing can be asked in no time: the driver sees no Probe.
                self.assertEqual(mock.calls(), 0)


class RoutingTest(h.LPTestCase):
    """Items 23-24 and UPSTREAM §3.2: methods, paths, HTTP details."""

    def setUp(self):
        super().setUp()
        self.mock, self.d = self.healthy_daemon()

    def assertProbes(self, method, path, **kw):
        """method path is a real probe: 200 ok and one more Probe call."""
        before = self.mock.calls()
        r = self.d.request(method, path, **kw)
        self.assertEqual(r.status, 200, "%s %s: %r" % (method, path, r))
        if method != "HEAD":
            self.assertEqual(r.body, b"ok")
        self.assertEqual(self.mock.calls(), before + 1, "%s %s" % (method, path))
        return r

    def assertNoProbe(self, before):
        time.sleep(h.scaled(0.05))  # room for a Probe that must not come
        self.assertEqual(self.mock.calls(), before)

    def test_every_method_probes(self):
        for method in ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"):
            with self.subTest(method=method):
                r = self.assertProbes(method, "/healthz")
                self.assertEqual(r.header("Content-Type"), h.TEXT_TYPE)
                self.assertEqual(r.header("Content-Length"), "2")

    def test_post_with_body_probes(self):
        self.assertProbes("POST", "/healthz", body=b"x" * 1000,
                          headers=[("Content-Type", "application/octet-stream")])

    def test_head_has_headers_and_no_body(self):
        conn = h.HTTPConn(self.d.port)
        self.addCleanup(conn.close)
        before = self.mock.calls()
        r = conn.request("HEAD", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Length"), "2")
        self.assertEqual(r.header("Content-Type"), h.TEXT_TYPE)
        self.assertEqual(self.mock.calls(), before + 1)
        # Had a body followed the headers, this next response would not parse.
        r2 = conn.request("GET", "/healthz")
        self.assertHealthz(r2, 200, "ok")

    def test_head_failure_has_headers_and_no_body(self):
        self.stop_mock(self.mock)
        conn = h.HTTPConn(self.d.port)
        self.addCleanup(conn.close)
        r = conn.request("HEAD", "/healthz")
        self.assertEqual(r.status, 500)
        self.assertEqual(r.header("Content-Length"), str(len(h.CONNECT_FAIL_BODY)))
        r2 = conn.request("GET", "/healthz")
        self.assertHealthz(r2, 500, h.CONNECT_FAIL_BODY)

    def test_query_and_encoding_ignored(self):
        for path in ("/healthz?foo=bar", "/healthz?", "/heal%74hz",
                     "/%68ealthz?x=%2F", "/healthz#frag"):
            with self.subTest(path=path):
                self.assertProbes("GET", path)

    def test_absolute_form_target(self):
        self.assertProbes("GET", "http://localhost:%d/healthz" % self.d.port)

    def test_other_paths_404(self):
        for path in ("/healthz/", "/HEALTHZ", "/healthzx", "/", "/metrics",
                     "/debug/pprof/", "/healthz/x", "/heal%74hz/", "/%00"):
            with self.subTest(path=path):
                before = self.mock.calls()
                r = self.d.request("GET", path)
                self.assertEqual(r.status, 404, r)
                self.assertEqual(r.body, h.NOT_FOUND_BODY.encode())
                self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
                self.assertEqual(r.header("Content-Type"), h.TEXT_TYPE)
                self.assertEqual(r.header("Content-Length"), "19")
                self.assertNoProbe(before)

    def test_404_for_any_method(self):
        for method in ("POST", "HEAD", "DELETE"):
            with self.subTest(method=method):
                r = self.d.request(method, "/nope")
                self.assertEqual(r.status, 404)
                self.assertEqual(r.header("Content-Length"), "19")
                if method != "HEAD":
                    self.assertEqual(r.body, h.NOT_FOUND_BODY.encode())

    def test_non_canonical_paths_redirect(self):
        cases = [("//healthz", "/healthz"), ("/./healthz", "/healthz"),
                 ("/foo/../healthz", "/healthz"), ("//healthz?x=1", "/healthz?x=1"),
                 ("/a/./b/../../healthz?q", "/healthz?q"), ("///", "/")]
        for path, location in cases:
            with self.subTest(path=path):
                before = self.mock.calls()
                r = self.d.request("GET", path)
                self.assertEqual(r.status, 301, r)
                self.assertEqual(r.header("Location"), location)
                self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
                self.assertEqual(r.body, ('<a href="%s">Moved Permanently</a>.\n\n'
                                          % location).encode())
                self.assertNoProbe(before)

    def test_keep_alive_two_requests(self):
        conn = h.HTTPConn(self.d.port)
        self.addCleanup(conn.close)
        self.assertHealthz(conn.request(), 200, "ok")
        self.assertHealthz(conn.request(), 200, "ok")
        self.assertEqual(conn.request("GET", "/nope").status, 404)
        self.assertEqual(self.mock.calls(), 2)

    def test_pipelined_requests(self):
        conn = h.HTTPConn(self.d.port)
        self.addCleanup(conn.close)
        conn.send(conn.build("GET", "/healthz") + conn.build("GET", "/x")
                  + conn.build("GET", "/healthz?second"))
        self.assertHealthz(conn.read_response(), 200, "ok")
        self.assertEqual(conn.read_response().status, 404)
        self.assertHealthz(conn.read_response(), 200, "ok")

    def test_http_1_0(self):
        conn = h.HTTPConn(self.d.port)
        self.addCleanup(conn.close)
        r = conn.request(version="HTTP/1.0", host_header=False)
        self.assertHealthz(r, 200, "ok")
        self.assertEqual(r.version, "HTTP/1.0")
        self.assertTrue(conn.closed_by_peer(h.scaled(1.0)))
        # Date on every normal response (UPSTREAM §3.2), HTTP/1.0 included.
        self.assertIsNotNone(r.header("Date"), r.header_list)

    def test_date_header(self):
        for path, status in (("/healthz", 200), ("/nope", 404), ("//healthz", 301)):
            with self.subTest(path=path):
                r = self.d.request("GET", path)
                self.assertEqual(r.status, status)
                date = r.header("Date")
                self.assertIsNotNone(date, r.header_list)
                when = email.utils.parsedate_to_datetime(date).timestamp()
                self.assertLess(abs(when - time.time()), 5)


if __name__ == "__main__":
    h.main()
