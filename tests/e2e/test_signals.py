"""Signals and shutdown (DESIGN.md "Start-up and shutdown", item 35 as
changed there; UPSTREAM.md §5 for the signals that must not stop it).
"""

import signal
import socket
import threading
import time

import lpharness as h

# TCP states as /proc/net/tcp shows them (include/net/tcp_states.h).
TCP_ESTABLISHED = 0x01
TCP_CLOSE_WAIT = 0x08


def daemon_end(d, client_port):
    """(state, unread bytes) of d's end of the TCP connection from
    client_port, as /proc/net/tcp shows it; None once that end is gone."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if (int(fields[1].rsplit(":", 1)[1], 16) == d.port
                    and int(fields[2].rsplit(":", 1)[1], 16) == client_port):
                return int(fields[3], 16), int(fields[4].split(":")[1], 16)
    return None


def requests_read(d, conns):
    """True once d has read all that was sent on conns (none left unread)."""
    return all(daemon_end(d, c.sock.getsockname()[1]) == (TCP_ESTABLISHED, 0)
               for c in conns)


def closed_by_daemon(d, client_ports):
    """True once d has closed its ends of the connections from client_ports."""
    for port in client_ports:
        end = daemon_end(d, port)
        if end is not None and end[0] in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            return False
    return True


def signal_pending(d, sig):
    """True while sig, sent to d, is neither delivered nor discarded."""
    try:
        mask = int(d.proc_status()["ShdPnd"], 16)
    except (OSError, KeyError):
        return False
    return bool(mask >> (sig - 1) & 1)


class ShutdownTest(h.LPTestCase):

    def assertCleanExit(self, d, sig):
        elapsed = self.stop_daemon(d, sig)
        self.assertLess(elapsed, h.SHUTDOWN_TIMEOUT)
        self.assertEqual(d.stdout(), "")
        return elapsed

    def test_term_and_int_while_serving(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig.name):
                mock, d = self.healthy_daemon()
                self.assertHealthz(d.request(), 200, "ok")
                self.assertCleanExit(d, sig)
                # It stopped listening.
                self.assertFalse(d.port_open())
                self.stop_mock(mock)

    def test_term_and_int_while_waiting_for_driver(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig.name):
                d = self.start_daemon(csi=self.sock_path("absent.sock"), wait=False)
                # Wait until it is surely past flag parsing and start-up.
                self.assertIsNotNone(
                    d.wait_log("Calling CSI driver", h.STARTUP_TIMEOUT), d.stderr())
                # A few reconnect attempts (backoff from 100 ms): waiting, not
                # starting; and still alive meanwhile.
                time.sleep(h.scaled(0.3))
                self.assertTrue(d.alive())
                self.assertCleanExit(d, sig)

    def test_term_while_plugin_info_hangs(self):
        mock = self.start_mock("--info-hang")
        d = self.start_daemon(csi=mock.socket_path, wait=False)
        self.assertTrue(mock.wait_calls(1, "GetPluginInfo", h.STARTUP_TIMEOUT))
        time.sleep(h.scaled(0.2))  # it keeps waiting: no exit of its own
        self.assertTrue(d.alive())
        self.assertCleanExit(d, signal.SIGTERM)

    def test_term_while_request_parked(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig.name):
                mock, d = self.healthy_daemon("--probe-timeout=30s",
                                              mock_args=["--probe-hang"])
                conns = [h.HTTPConn(d.port, timeout=h.scaled(5.0) + 5)
                         for _ in range(3)]
                for c in conns:
                    self.addCleanup(c.close)
                    c.send(c.build())
                self.assertTrue(mock.wait_calls(1, timeout=h.scaled(2.0)))
                # All three are parked: the daemon has read them.
                self.assertTrue(h.wait_until(lambda: requests_read(d, conns), 5.0))
                start = time.monotonic()
                self.assertCleanExit(d, sig)
                # Each parked request got an answer or a closed connection.
                for c in conns:
                    try:
                        r = c.read_response()
                        self.assertEqual(r.status, 500, r)
                    except h.ConnectionClosed:
                        pass
                    except OSError as e:  # reset is a closed connection too
                        self.assertNotIsInstance(e, socket.timeout)
                self.assertLess(time.monotonic() - start,
                                h.SHUTDOWN_TIMEOUT + (30 if d.wrapped else 0))
                self.stop_mock(mock)

    def test_shutdown_does_not_hurt_driver(self):
        mock, d = self.healthy_daemon()
        self.assertHealthz(d.request(), 200, "ok")
        self.assertCleanExit(d, signal.SIGTERM)
        # The driver is still healthy and serving for the next sidecar.
        self.assertTrue(mock.alive())
        d2 = self.start_daemon(csi=mock.socket_path)
        self.assertHealthz(d2.request(), 200, "ok")


class IgnoredSignalsTest(h.LPTestCase):

    def test_pipe_usr1_usr2_hup_keep_serving(self):
        mock, d = self.healthy_daemon()
        for sig in (signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
            with self.subTest(sig=sig.name):
                d.signal(sig)
                # Once delivered (or discarded) its effect, if any, has happened.
                self.assertTrue(h.wait_until(lambda: not signal_pending(d, sig), 5.0))
                self.assertTrue(d.alive(), "%s ended it: %s" % (sig.name, d.stderr()))
                self.assertHealthz(d.request(), 200, "ok")
        self.assertEqual(d.stdout(), "")

    def test_signals_during_parked_request(self):
        # A parked request still gets its answer when such a signal arrives.
        mock, d = self.healthy_daemon("--probe-timeout=500ms",
                                      mock_args=["--probe-delay=300ms"])
        result = {}

        def ask():
            result["r"] = d.request()

        t = threading.Thread(target=ask)
        t.start()
        # Parked: the Probe (300 ms) is at the driver.
        self.assertTrue(mock.wait_calls(1, timeout=h.scaled(2.0)))
        for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE):
            d.signal(sig)
        t.join(h.scaled(5.0))
        self.assertHealthz(result["r"], 200, "ok")
        self.assertTrue(d.alive())


class ClientGoneTest(h.LPTestCase):

    def test_client_disconnects_while_parked(self):
        mock, d = self.healthy_daemon("--probe-timeout=500ms",
                                      mock_args=["--probe-hang"])
        c = h.HTTPConn(d.port)
        c.send(c.build())
        c.close()
        self.assertTrue(mock.wait_calls(1, timeout=h.scaled(2.0)))
        # The abandoned check is over (its line is logged before it ends).
        self.assertIsNotNone(d.wait_log("Health check failed", h.scaled(5.0)),
                             d.stderr())
        self.assertTrue(d.alive())
        r = d.request()
        self.assertHealthz(r, 500, h.DEADLINE_BODY)
        self.assertAtDeadline(r, 0.5)
        self.assertTrue(d.alive())

    def test_many_clients_disconnect_while_parked(self):
        mock, d = self.healthy_daemon("--probe-timeout=500ms",
                                      mock_args=["--probe-hang"])
        for _ in range(20):
            c = h.HTTPConn(d.port)
            c.send(c.build())
            c.close()
        # One client also resets its connection instead of closing it.
        c = h.HTTPConn(d.port)
        c.send(c.build())
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        # The check they were parked on is over (logged before it ends).
        self.assertIsNotNone(d.wait_log("Health check failed", h.scaled(5.0)),
                             d.stderr())
        self.assertTrue(d.alive())
        self.assertHealthz(d.request(), 500, h.DEADLINE_BODY)

    def test_other_waiters_still_answered(self):
        # A leaves, B stays on the same check: B gets the answer at the deadline.
        mock, d = self.healthy_daemon("--probe-timeout=500ms",
                                      mock_args=["--probe-hang"])
        a = h.HTTPConn(d.port)
        b = h.HTTPConn(d.port, timeout=h.scaled(5.0))
        self.addCleanup(b.close)
        start = time.monotonic()
        a.send(a.build())
        b.send(b.build())
        # Both parked on the check before A leaves.
        self.assertTrue(mock.wait_calls(1, timeout=h.scaled(2.0)))
        self.assertTrue(h.wait_until(lambda: requests_read(d, [a, b]), 5.0))
        a.close()
        r = b.read_response(start=start)
        self.assertHealthz(r, 500, h.DEADLINE_BODY)
        self.assertAtDeadline(r, 0.5)
        self.assertEqual(mock.calls(), 1)

    def test_client_disconnects_then_driver_answers(self):
        # The check finishes after its only waiter left: nothing to answer.
        # -v=5: the end of a healthy check shows in the log.
        mock, d = self.healthy_daemon("--probe-timeout=1s", "-v=5",
                                      mock_args=["--probe-delay=300ms"])
        c = h.HTTPConn(d.port)
        c.send(c.build())
        self.assertTrue(mock.wait_calls(1, timeout=h.scaled(2.0)))
        c.close()
        self.assertIsNotNone(d.wait_log("Health check succeeded", h.scaled(5.0)),
                             d.stderr())
        self.assertTrue(d.alive())
        self.assertHealthz(d.request(), 200, "ok")
        self.assertEqual(mock.calls(), 2)

    def test_pipelined_requests_parked_then_client_leaves(self):
        # Two /healthz pipelined on one connection while the probe hangs,
        # then the client leaves: nothing may answer a freed request.
        mock, d = self.healthy_daemon("--probe-timeout=500ms",
                                      mock_args=["--probe-hang"])
        c = h.HTTPConn(d.port)
        c.send(c.build() + c.build("GET", "/healthz?2") + c.build("GET", "/x"))
        self.assertTrue(mock.wait_calls(1, timeout=h.scaled(2.0)))
        self.assertTrue(h.wait_until(lambda: requests_read(d, [c]), 5.0))
        c.close()
        # The check is over, its waiters gone (its line comes just before
        # it answers them).
        self.assertIsNotNone(d.wait_log("Health check failed", h.scaled(5.0)),
                             d.stderr())
        self.assertTrue(d.alive())
        # And pipelined requests that stay are all answered, in order.
        c = h.HTTPConn(d.port, timeout=h.scaled(5.0))
        self.addCleanup(c.close)
        c.send(c.build() + c.build("GET", "/healthz?2") + c.build("GET", "/x"))
        self.assertHealthz(c.read_response(), 500, h.DEADLINE_BODY)
        self.assertHealthz(c.read_response(), 500, h.DEADLINE_BODY)
        self.assertEqual(c.read_response().status, 404)
        self.assertTrue(d.alive())

    def test_half_sent_request(self):
        # A client that sends half a request line and leaves.
        mock, d = self.healthy_daemon()
        ports = []
        for chunk in (b"GET /heal", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"):
            c = h.HTTPConn(d.port)
            ports.append(c.sock.getsockname()[1])
            c.send(chunk)
            c.close()
        # The daemon noticed both leave and closed its ends.
        self.assertTrue(h.wait_until(lambda: closed_by_daemon(d, ports), 5.0))
        self.assertTrue(d.alive())
        self.assertHealthz(d.request(), 200, "ok")
        self.assertEqual(mock.calls(), 1)


if __name__ == "__main__":
    h.main()
