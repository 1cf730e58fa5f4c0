"""Regressions: two sidecar bugs the fault matrix (test_faults.py) found.

1. A request arriving together with SIGTERM crashed the daemon: cleanup()
   freed the check, then ran one more event-loop pass "to flush the last
   replies" while the HTTP listener and its connections were still live,
   so a request read in that pass reached the freed check (ASan:
   heap-use-after-free in check_submit; plain build: SIGSEGV in about 6 of
   10 tries). Now http_shutdown() stops listening and answers /healthz with
   500 "livenessprobe is shutting down" before the check is freed.

2. With its file descriptors exhausted by idle clients the daemon spun on
   accept() EMFILE (~100 % of a core) and libevent logged "Error from
   accept() call" ~450,000 times a second. Now a failing accept pauses the
   listener 5 ms, doubling to 1 s, with one log line per retry, as Go's
   net/http does; and the soft RLIMIT_NOFILE is raised to the hard limit at
   start-up, as Go (>= 1.19) does, so ~1,010 idle connections no longer
   reach a soft limit of 1024.
"""

import os
import resource
import signal
import socket
import time
import unittest

import kubeprober as kp
import lpharness as h


class ShutdownRaceTest(h.LPTestCase):

    def test_request_arriving_with_sigterm(self):
        # Deterministic order: the daemon is stopped while a client connects
        # (the kernel completes the handshake) and sends a whole request,
        # and SIGTERM is queued; on SIGCONT the listener and the signal are
        # ready together, and the request is read after cleanup began.
        rcs = []
        tail = ""
        for _ in range(10):
            mock, d = self.healthy_daemon()
            self.assertHealthz(d.request(), 200, "ok")
            os.kill(d.pid, signal.SIGSTOP)
            try:
                c = h.HTTPConn(d.port)
                self.addCleanup(c.close)
                c.send(c.build())
                os.kill(d.pid, signal.SIGTERM)
            finally:
                os.kill(d.pid, signal.SIGCONT)
            rc = d.wait(h.SHUTDOWN_TIMEOUT + 5)
            rcs.append(rc)
            if rc != 0:
                tail = "\n".join(d.stderr().splitlines()[-40:])
            c.close()
            self.stop_mock(mock)
        self.assertEqual(rcs, [0] * 10,
                         "exit statuses after SIGTERM with a request arriving "
                         "(want 0 each; -11 = SIGSEGV, -6 = ASan abort); last "
                         "stderr:\n%s" % tail)

    def test_request_behind_a_parked_one_at_sigterm(self):
        # A request pipelined behind a /healthz parked on a slow Probe is
        # read in the loop pass that flushes the last replies, after the
        # checks and the driver's channel are gone. /status read the freed
        # channel there (ASan: heap-use-after-free in json_driver); every
        # route must answer "shutting down" or close, and exit 0.
        for path in ("/status", "/status?format=text", "/readyz", "/healthz?verbose"):
            mock, d = self.healthy_daemon(mock_args=("--probe-delay=5s",))
            c = h.HTTPConn(d.port)
            self.addCleanup(c.close)
            c.send(c.build(path="/healthz") + c.build(path=path))
            # Usually the first request is parked on its Probe by then; if the
            # signal comes first, both are read during shut-down, which must
            # be answered the same way.
            time.sleep(0.3)
            d.signal(signal.SIGTERM)
            first = c.read_response()
            self.assertHealthz(first, 500, "livenessprobe is shutting down")
            try:
                second = c.read_response()
                self.assertHealthz(second, 500, "livenessprobe is shutting down")
            except (OSError, h.ConnectionClosed):
                pass  # closed unread: also fine
            self.assertEqual(d.wait(h.SHUTDOWN_TIMEOUT + 5), 0,
                             (path, d.stderr()[-3000:]))
            c.close()
            self.stop_mock(mock)


@unittest.skipIf(h.WRAPPER, "a wrapper such as valgrind keeps fds and limits of its own")
class FdExhaustionTest(h.LPTestCase):

    LIMIT = 64

    def test_exhausted_fds_no_spin_no_log_flood(self):
        mock = self.start_mock()
        d = self.start_daemon(csi=mock.socket_path)
        # Both limits: the daemon raises its soft limit to the hard one at
        # start, as Go programs do (test_raises_soft_limit_to_hard).
        resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (self.LIMIT, self.LIMIT))
        self.assertHealthz(d.request(), 200, "ok")
        base = d.fd_count()
        conns = []
        try:
            # Enough idle connections to use every fd, and a few more
            # waiting in the listen backlog.
            for _ in range(self.LIMIT - base + 5):
                conns.append(socket.create_connection(("127.0.0.1", d.port)))
            deadline = time.monotonic() + h.scaled(2.0)
            while d.fd_count() < self.LIMIT and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(d.fd_count(), self.LIMIT)
            lines_before = len(d.log_lines())
            cpu = h.cpu_share(d.pid, 0.5)
            lines = len(d.log_lines()) - lines_before
        finally:
            for s in conns:
                s.close()
        # Keep the post-mortem directory small: the flood is megabytes.
        os.truncate(d.stderr_path, 0)
        # Once the clients are gone the daemon serves again.
        deadline = time.monotonic() + h.scaled(3.0)
        while d.fd_count() > base and time.monotonic() < deadline:
            time.sleep(0.02)
        r = kp.probe_once(d.port, timeout=h.scaled(2.0))
        self.assertTrue(r.ok, r)
        self.assertTrue(d.alive())
        # The bugs: a busy loop and an unbounded log.
        self.assertLess(cpu, 0.3, "daemon used %.0f%% of a core while out of "
                        "fds (accept() EMFILE busy loop)" % (cpu * 100))
        self.assertLess(lines, 50, "%d log lines in 0.5 s while out of fds" % lines)

    def test_raises_soft_limit_to_hard(self):
        mock = self.start_mock()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        # The daemon inherits this soft limit at exec.
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.LIMIT, hard))
        try:
            d = self.start_daemon(csi=mock.socket_path)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        self.assertEqual(resource.prlimit(d.pid, resource.RLIMIT_NOFILE), (hard, hard))


if __name__ == "__main__":
    h.main()
