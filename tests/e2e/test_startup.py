"""Start-up: addresses, waiting for the driver, GetPluginInfo, listening.

UPSTREAM.md §2 and checklist items 8-14; DESIGN.md "Start-up and shutdown".
"""

import os
import socket
import time

import lpharness as h


def ipv6_loopback_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


class AddressFormsTest(h.LPTestCase):
    """Item 8: "/path", "unix:///path" (and gRPC's "unix:/path") agree."""

    def test_forms_reach_same_socket(self):
        mock = self.start_mock()
        path = mock.socket_path
        for n, address in enumerate((path, "unix://" + path, "unix:" + path)):
            with self.subTest(address=address):
                d = self.start_daemon("--csi-address=" + address)
                self.assertEqual(mock.calls("GetPluginInfo"), n + 1)
                before = mock.calls()
                self.assertHealthz(d.request(), 200, "ok")
                self.assertEqual(mock.calls(), before + 1)
                self.stop_daemon(d)

    def test_relative_unix_authority_is_fatal(self):
        # Go's resolver reads "relative" as an authority: exit 1 at once.
        rc, out, err = self.run_daemon("--csi-address=unix://relative/x.sock",
                                       "--health-port=%d" % h.free_port())
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertIn("invalid (non-empty) authority: relative", err)
        self.assertNotIn("ServeMux listening", err)

    def test_relative_gprc_unix_form(self):
        # "unix:x.sock" is relative to the working directory (UPSTREAM §2.2).
        mock = self.start_mock()
        d = self.start_daemon("--csi-address=unix:" + os.path.basename(mock.socket_path),
                              cwd=self.tmp)
        self.assertHealthz(d.request(), 200, "ok")


class AbsentDriverTest(h.LPTestCase):
    """Item 9: waits for the driver forever without listening."""

    def test_waits_logs_and_serves_once_driver_appears(self):
        path = self.sock_path()
        start = time.monotonic()
        d = self.start_daemon(csi=path, wait=False)
        # No TCP listener and still alive while the driver is absent (once
        # past start-up: waiting for it).
        self.assertIsNotNone(d.wait_log("Calling CSI driver", h.STARTUP_TIMEOUT),
                             d.stderr())
        self.assertTrue(d.alive(), d.stderr())
        self.assertFalse(d.port_open())
        # "Still connecting" every 10 s: the first one within ~11 s.
        line = d.wait_log('"Still connecting"',
                          11.5 + h.scaled(0.2) - (time.monotonic() - start))
        self.assertIsNotNone(line, "no Still connecting line; stderr:\n" + d.stderr())
        parsed = h.parse_klog(line)
        self.assertIsNotNone(parsed, line)
        self.assertEqual(parsed[1], "Still connecting")
        self.assertEqual(parsed[2].get("address"), "unix://" + path)
        self.assertTrue(d.alive())
        self.assertFalse(d.port_open())
        self.assertNotIn("ServeMux listening", d.stderr())

        # The driver appears: /healthz answers ok within ~2 s.
        mock = self.start_mock(path=path)
        appeared = time.monotonic()
        d.wait_port(timeout=h.scaled(2.0) + (h.STARTUP_TIMEOUT if d.wrapped else 0))
        self.assertHealthz(d.request(), 200, "ok")
        self.assertLess(time.monotonic() - appeared, h.scaled(2.0) + 0.2)
        # Item 10: GetPluginInfo exactly once, however many probes follow.
        for _ in range(3):
            self.assertHealthz(d.request(), 200, "ok")
        self.assertEqual(mock.calls("GetPluginInfo"), 1)
        self.assertEqual(mock.calls("Probe"), 4)

    def test_retries_about_once_a_second(self):
        # A socket that accepts and hangs up at once: every attempt is seen.
        path = self.sock_path()
        d = self.start_daemon(csi=path, wait=False)
        # Connecting (past start-up), then wall time for the backoff to
        # reach its 1 s cap (100 ms, 1.6 times longer each).
        self.assertIsNotNone(d.wait_log("Calling CSI driver", h.STARTUP_TIMEOUT),
                             d.stderr())
        time.sleep(1.5)
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(ls.close)
        ls.bind(path)
        ls.listen(64)
        ls.settimeout(0.1)
        attempts = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 4.0:
            try:
                c, _ = ls.accept()
                c.close()
                attempts += 1
            except socket.timeout:
                pass
        # About one attempt a second (backoff 1 s ± 20 %): not silent, no spin.
        self.assertGreaterEqual(attempts, 2)
        self.assertLessEqual(attempts, 7)
        self.assertTrue(d.alive())
        self.assertFalse(d.port_open())

    def test_silent_socket_keeps_waiting(self):
        # A socket that accepts but never speaks HTTP/2 is not a driver.
        path = self.sock_path()
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(ls.close)
        ls.bind(path)
        ls.listen(64)
        d = self.start_daemon(csi=path, wait=False)
        self.assertIsNotNone(d.wait_log("Calling CSI driver", h.STARTUP_TIMEOUT),
                             d.stderr())
        time.sleep(h.scaled(2.0))  # room for a name or a listener that must not come
        self.assertTrue(d.alive(), d.stderr())
        self.assertFalse(d.port_open())
        self.assertNotIn("CSI driver name", d.stderr())


class PluginInfoTest(h.LPTestCase):
    """Items 10-12: GetPluginInfo once, errors fatal, no deadline."""

    def test_info_error_is_fatal(self):
        mock = self.start_mock("--info-code=Unavailable",
                               "--info-message=driver is starting")
        port = h.free_port()
        rc, out, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                       "--health-port=%d" % port)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertIn('"Failed to get CSI driver name" err="rpc error: '
                      'code = Unavailable desc = driver is starting"', err)
        self.assertNotIn("ServeMux listening", err)
        self.assertEqual(mock.calls("GetPluginInfo"), 1)
        self.assertEqual(mock.calls("Probe"), 0)

    def test_info_error_codes(self):
        for code, name in ((12, "Unimplemented"), (9, "FailedPrecondition"),
                           (2, "Unknown")):
            with self.subTest(code=code):
                mock = self.start_mock("--info-code=%d" % code,
                                       "--info-message=nope " + name,
                                       path=self.sock_path("c%d.sock" % code))
                rc, _, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                             "--health-port=%d" % h.free_port())
                self.assertEqual(rc, 1, err)
                self.assertIn('err="rpc error: code = %s desc = nope %s"'
                              % (name, name), err)

    def test_empty_name_is_fatal(self):
        mock = self.start_mock("--name=")
        rc, out, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                       "--health-port=%d" % h.free_port())
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertIn('"Failed to get CSI driver name" err="driver name is empty"', err)
        self.assertNotIn("ServeMux listening", err)

    def test_slow_info_delays_startup(self):
        # Item 11: no deadline on GetPluginInfo (not even the probe timeout).
        mock = self.start_mock("--info-delay=2s")
        start = time.monotonic()
        d = self.start_daemon("--probe-timeout=500ms", csi=mock.socket_path,
                              wait=False)
        # Past a 500 ms deadline on the call, had it one, and well before
        # its 2 s answer: still waiting, not listening.
        self.assertTrue(mock.wait_calls(1, "GetPluginInfo", h.STARTUP_TIMEOUT))
        time.sleep(1.0)
        self.assertTrue(d.alive(), d.stderr())
        self.assertFalse(d.port_open())
        d.wait_port()
        took = time.monotonic() - start
        self.assertGreaterEqual(took, 2.0)
        if not d.wrapped:
            self.assertLess(took, 2.0 + h.scaled(0.5))
        self.assertHealthz(d.request(), 200, "ok")
        self.assertEqual(mock.calls("GetPluginInfo"), 1)

    def test_log_order_then_listening(self):
        # Item 12: name, then the address, then the port accepts.
        mock = self.start_mock("--name=custom.csi.example.org")
        d = self.start_daemon(csi=mock.socket_path)
        lines = d.log_lines()
        msgs = [h.parse_klog(l) for l in lines]
        self.assertNotIn(None, msgs, lines)
        texts = [m[1] for m in msgs]
        i_call = texts.index("Calling CSI driver to discover driver name")
        i_name = texts.index("CSI driver name")
        i_listen = texts.index("ServeMux listening")
        self.assertLess(i_call, i_name)
        self.assertLess(i_name, i_listen)
        self.assertEqual(msgs[i_name][0], "I")
        self.assertEqual(msgs[i_name][2], {"driver": "custom.csi.example.org"})
        self.assertEqual(msgs[i_listen][2], {"address": "0.0.0.0:%d" % d.port})
        self.assertHealthz(d.request(), 200, "ok")


class ListenerTest(h.LPTestCase):
    """Items 13-14: where /healthz listens, and a busy port."""

    def test_default_listener_ipv4_and_ipv6(self):
        mock, d = self.healthy_daemon()
        self.assertHealthz(h.http_request(d.port, host="127.0.0.1"), 200, "ok")
        if not ipv6_loopback_available():
            self.skipTest("no IPv6 loopback here")
        self.assertHealthz(h.http_request(d.port, host="::1"), 200, "ok")
        self.assertEqual(mock.calls(), 2)

    def test_http_endpoint_binds_only_that_address(self):
        mock = self.start_mock()
        port = h.free_port()
        d = self.start_daemon("--http-endpoint=127.0.0.1:%d" % port,
                              csi=mock.socket_path, port=port,
                              health_port_flag=False)
        self.assertHealthz(d.request(), 200, "ok")
        if ipv6_loopback_available():
            self.assertFalse(d.port_open("::1"))

    def test_ipv6_http_endpoint(self):
        if not ipv6_loopback_available():
            self.skipTest("no IPv6 loopback here")
        mock = self.start_mock()
        port = h.free_port()
        d = self.start_daemon("--http-endpoint=[::1]:%d" % port,
                              csi=mock.socket_path, port=port, host="::1",
                              health_port_flag=False)
        self.assertHealthz(d.request(), 200, "ok")

    def hold_port(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.bind(("0.0.0.0", 0))
        s.listen(1)
        return s.getsockname()[1]

    def test_busy_health_port(self):
        mock = self.start_mock()
        port = self.hold_port()
        rc, out, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                       "--health-port=%d" % port)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertIn('"ServeMux listening" address="0.0.0.0:%d"' % port, err)
        self.assertIn('"Failed to start http server" err="listen tcp 0.0.0.0:%d: '
                      'bind: address already in use"' % port, err)

    def test_busy_http_endpoint(self):
        mock = self.start_mock()
        port = self.hold_port()
        rc, _, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                     "--http-endpoint=127.0.0.1:%d" % port)
        self.assertEqual(rc, 1, err)
        self.assertIn('"Failed to start http server" err="listen tcp 127.0.0.1:%d: '
                      'bind: address already in use"' % port, err)

    def test_busy_metrics_address(self):
        mock = self.start_mock()
        port = self.hold_port()
        rc, _, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                     "--health-port=%d" % h.free_port(),
                                     "--metrics-address=127.0.0.1:%d" % port)
        self.assertEqual(rc, 1, err)
        self.assertIn('"Failed to start prometheus metrics endpoint on specified '
                      'address and path"', err)
        self.assertIn("address already in use", err)

    def test_bad_health_port_value(self):
        # Not validated before listen time (UPSTREAM §1.1): fails there.
        mock = self.start_mock()
        rc, _, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                     "--health-port=abc")
        self.assertEqual(rc, 1, err)
        self.assertIn('"Failed to start http server" err="listen tcp', err)
        self.assertEqual(mock.calls("GetPluginInfo"), 1)


if __name__ == "__main__":
    h.main()
