"""The fault matrix: what /healthz answers, and when, for each way a driver
(or an HTTP client) can misbehave, through the real binaries.

Each row runs livenessprobe with the default policy and flags (so
--probe-timeout=1s) against csi-mock-driver, asks /healthz the way kubelet
does (kubeprober.probe_once: a new connection, Connection: close) and
asserts:

  - the answer: status and exact body (or, where only the sidecar's
    gRPC library writes the text, its code and a stable part of it);
  - its timing: by the deadline (probe timeout + a scaled margin), and for
    answers that must wait for the timeout, not before it;
  - the daemon is still alive;
  - afterwards, its fd count is back to the baseline taken before the row
    (after a short settle: the server closes its side of the last probe's
    connection a moment after the answer), and its RSS within a stated
    tolerance of the baseline.

The measured answer times go to a markdown table when LP_FAULT_TABLE names
a file (one row per matrix row, appended when the module ends):

    | row | driver behaviour | /healthz answer | measured answer time |

Rows 1 and 14 share one test (both wait for the 10 s start-up log line).
"""

import os
import random
import resource
import signal
import socket
import sys
import time

import kubeprober as kp
import lpharness as h

PROBE_TIMEOUT = 1.0                 # the sidecar's default --probe-timeout
ANSWER_MARGIN = h.scaled(0.5)       # "by the deadline": timeout + this
PROMPT = h.scaled(0.25)             # an answer that needs no waiting
EARLY_SLACK = 0.05                  # never this much before the deadline
# The prober's own timeout: well past the deadline, so that a late answer
# shows as late instead of as a kubelet timeout.
KUBELET_TIMEOUT = PROBE_TIMEOUT + h.scaled(3.0)

SANITIZED = not h.WRAPPER and not h.RSS_MEANINGFUL
# RSS tolerance of a row, in KiB. A plain build: +1 MiB (a row's new code
# paths -- error formatting, gRPC's error objects, a new channel -- touch a
# few pages once; a leak per probe or per reconnect shows over the rows'
# repeated probes). ASan keeps every freed block in its quarantine (up to
# 256 MiB) and adds redzones and shadow pages, so RSS grows with every
# allocation a row makes, leak or not; there the bound is only a sanity
# check (+24 MiB; the rows measured +0.1..12.6 MiB, row 11 has its own
# bound). Plain builds measured +0.02..0.4 MiB (rows 11 and 15: see there).
# LP_FAULT_DEBUG=1 prints each row's growth. Under LP_WRAPPER (valgrind)
# RSS is the tool's, not the daemon's: not checked.
RSS_TOL_KIB = 1024 if h.RSS_MEANINGFUL else (24 * 1024 if SANITIZED else None)
# Row 15: rounds of 1,000 idle connections, and the growth one of the later
# rounds must stay within (half a leak of 1 KiB per connection).
MAX_ROUNDS = 6
ROUND_TOL_KIB = 512 if h.RSS_MEANINGFUL else RSS_TOL_KIB


def later_growths(rounds):
    """RSS growth of each round after the first, KiB."""
    return [b - a for a, b in zip(rounds, rounds[1:])]


# The table, filled by the rows: {row: (behaviour, answer, time)}.
TABLE = {}
TABLE_HEADER = ("| row | driver behaviour | /healthz answer | measured answer time |\n"
                "|---|---|---|---|\n")


def tearDownModule():
    path = os.environ.get("LP_FAULT_TABLE")
    if not path or not TABLE:
        return
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a") as f:
        if new:
            f.write(TABLE_HEADER)
        for row in sorted(TABLE):
            behaviour, answer, when = TABLE[row]
            f.write("| %d | %s | %s | %s |\n" % (row, behaviour, answer, when))


def _noise(n, seed):
    """n reproducible random bytes."""
    return random.Random(seed).randbytes(n)


def fmt_s(seconds):
    return "%.3f s" % seconds


def fmt_range(times):
    lo, hi = min(times), max(times)
    if hi < 0.0005:
        return "< 1 ms (%d answers)" % len(times)
    if len(times) == 1:
        return fmt_s(lo)
    return "%.3f–%.3f s (%d answers)" % (lo, hi, len(times))


def md_body(body):
    """A body for a markdown cell."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return "`%s`" % text.replace("|", "\\|").replace("\n", "\\n")


class FaultMatrixTest(h.LPTestCase):

    # Helpers --------------------------------------------------------------

    def get(self, d):
        """/healthz as kubelet asks it."""
        return kp.probe_once(d.port, timeout=KUBELET_TIMEOUT)

    def assertAnswer(self, r, status, body, at_deadline=False,
                     deadline=PROBE_TIMEOUT, prefix=False):
        """status and body (exact, or its start when prefix), by the
        deadline; at_deadline: not before it either; else prompt."""
        self.assertIsNone(r.error, "no HTTP answer: %r" % r)
        text = r.body.decode("utf-8", "replace")
        if prefix:
            self.assertEqual(r.status, status, r)
            self.assertTrue(text.startswith(body), "%r does not start with %r"
                            % (text, body))
        else:
            self.assertEqual((r.status, text), (status, body))
        self.assertLessEqual(r.elapsed, deadline + ANSWER_MARGIN,
                             "answered late: %r" % r)
        if at_deadline:
            self.assertGreaterEqual(r.elapsed, deadline - EARLY_SLACK,
                                    "answered early: %r" % r)
        else:
            self.assertLess(r.elapsed, PROMPT, "not prompt: %r" % r)

    def assertRefused(self, port):
        r = kp.probe_once(port, timeout=KUBELET_TIMEOUT)
        self.assertFalse(r.ok, r)
        self.assertIn("ConnectionRefused", r.error or "", r)
        return r

    def baseline(self, d):
        """(fds, rss KiB) of d before a row, after its warm-up."""
        return h.stable_fds(d), d.rss_kib()

    def assertBackToBaseline(self, d, base, rss_tol_kib=RSS_TOL_KIB):
        """Alive, fds back to base[0] (after a settle), RSS within tolerance."""
        self.assertTrue(d.alive(), "daemon died (%s): %s"
                        % (d.returncode(), d.stderr()[-2000:]))
        base_fds, base_rss = base
        deadline = time.monotonic() + h.FD_SETTLE
        while d.fd_count() != base_fds and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(d.fd_count(), base_fds,
                         "fds not back to the baseline: %s" % d.fds())
        if os.environ.get("LP_FAULT_DEBUG"):
            print("RSS %+d KiB" % (d.rss_kib() - base_rss), file=sys.stderr)
        if rss_tol_kib is not None:
            grown = d.rss_kib() - base_rss
            self.assertLessEqual(grown, rss_tol_kib,
                                 "RSS grew %d KiB (tolerance %d KiB)"
                                 % (grown, rss_tol_kib))

    def warm_daemon(self, *args, mock_args=(), probes=3):
        """A healthy pair, warmed up (first probes done), and its baseline."""
        mock, d = self.healthy_daemon(*args, mock_args=mock_args)
        for _ in range(probes):
            self.assertAnswer(self.get(d), 200, "ok")
        return mock, d, self.baseline(d)

    def swap_driver(self, mock, *args, sig=signal.SIGTERM):
        """The driver is restarted with other flags on the same path."""
        self.stop_mock(mock, sig)
        return self.start_mock(*args, path=mock.socket_path)

    def back_to_healthy(self, d, limit=None):
        """Polls /healthz until 200 ok; returns that answer."""
        deadline = time.monotonic() + (h.scaled(3.0) if limit is None else limit)
        while True:
            r = self.get(d)
            if r.ok or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertAnswer(r, 200, "ok")
        return r

    def record(self, row, behaviour, answer, when):
        TABLE[row] = (behaviour, answer, when)

    # Rows 1 and 14: nothing to serve yet ------------------------------------

    def test_row01_row14_waiting_at_start(self):
        # Row 1: no driver at all. Row 14: a driver whose GetPluginInfo hangs.
        # Upstream (UPSTREAM.md §2.1, §2.3) waits for both forever, logging,
        # with no TCP listener: kubelet's probe gets "connection refused".
        absent_path = self.sock_path("absent.sock")
        hang_mock = self.start_mock("--info-hang", path=self.sock_path("hang.sock"))
        t0 = time.monotonic()
        d_absent = self.start_daemon(csi=absent_path, wait=False)
        d_hang = self.start_daemon(csi=hang_mock.socket_path, wait=False)
        self.assertTrue(hang_mock.wait_calls(1, "GetPluginInfo", h.scaled(2.0)))
        self.assertTrue(d_absent.wait_log("Calling CSI driver", h.STARTUP_TIMEOUT),
                        d_absent.stderr())
        # After start-up settled: the fds a retrying daemon holds, once its
        # reconnect backoff (from 100 ms, 1.6 times longer each) is at its
        # 1 s cap. Wall time of the daemon's timers, not a barrier.
        time.sleep(1.5)
        fds_absent = h.stable_fds(d_absent, quiet=0.3)
        fds_hang = h.stable_fds(d_hang)
        rss = (d_absent.rss_kib(), d_hang.rss_kib())
        refused = {d_absent: [], d_hang: []}
        lines = {}
        needles = {d_absent: '"Still connecting"',
                   d_hang: '"Still waiting for the CSI driver name"'}
        # The reminders come every 10 s: wait for both, probing like kubelet.
        limit = t0 + 11.5 + h.scaled(0.5)
        while len(lines) < 2 and time.monotonic() < limit:
            for d in (d_absent, d_hang):
                self.assertTrue(d.alive(), d.stderr())
                refused[d].append(self.assertRefused(d.port).elapsed)
                if d not in lines:
                    line = d.wait_log(needles[d], 0)
                    if line:
                        lines[d] = line
            time.sleep(0.25)
        self.assertEqual(set(lines), {d_absent, d_hang},
                         "reminders missing; stderr:\n%s\n---\n%s"
                         % (d_absent.stderr(), d_hang.stderr()))
        for d, address in ((d_absent, absent_path), (d_hang, hang_mock.socket_path)):
            level, msg, kv = h.parse_klog(lines[d])
            self.assertEqual((level, kv.get("address")), ("I", "unix://" + address))
            self.assertNotIn("ServeMux listening", d.stderr())
            self.assertNotIn('"CSI driver name"', d.stderr())
        # No growth while retrying (row 1) or waiting (row 14).
        for d, fds, r in ((d_absent, fds_absent, rss[0]), (d_hang, fds_hang, rss[1])):
            self.assertBackToBaseline(d, (fds, r))
        self.assertEqual(hang_mock.calls("GetPluginInfo"), 1)
        self.assertEqual(hang_mock.calls("Probe"), 0)

        # Row 1 ends: the driver appears; the sidecar serves ok.
        mock = self.start_mock(path=absent_path)
        appeared = time.monotonic()
        d_absent.wait_port(h.scaled(3.0))
        listening_after = time.monotonic() - appeared
        r = self.get(d_absent)
        self.assertAnswer(r, 200, "ok")
        self.assertLess(listening_after, h.scaled(2.0))
        self.assertEqual(mock.calls("GetPluginInfo"), 1)

        self.record(1, "absent at start; appears after ~12 s",
                    "connection refused (no listener) while absent; then 200 `ok`",
                    "refused in %s; listening %.2f s after the driver; ok in %s"
                    % (fmt_range(refused[d_absent]), listening_after,
                       fmt_s(r.elapsed)))
        self.record(14, "GetPluginInfo hangs at start (`--info-hang`)",
                    "connection refused (no listener yet); "
                    "`Still waiting for the CSI driver name` every 10 s",
                    "refused in %s" % fmt_range(refused[d_hang]))

    # Rows 2-4: the driver process or its socket -----------------------------

    def test_row02_socket_deleted(self):
        mock, d, base = self.warm_daemon()
        os.unlink(mock.socket_path)
        answers = [self.get(d) for _ in range(2)]
        for r in answers:
            self.assertAnswer(r, 500, h.CONNECT_FAIL_BODY, at_deadline=True)
        self.assertTrue(mock.alive())
        self.assertEqual(mock.calls(), 3)  # the warm-up's, none since
        # The driver is restarted (new socket): healthy, fds as before.
        mock = self.swap_driver(mock)
        self.back_to_healthy(d)
        self.assertBackToBaseline(d, base)
        self.record(2, "socket file deleted while the driver runs",
                    "500 %s" % md_body(h.CONNECT_FAIL_BODY),
                    fmt_range([r.elapsed for r in answers]))

    def test_row03_driver_killed_and_restarted(self):
        mock, d, base = self.warm_daemon()
        mock.signal(signal.SIGKILL)
        mock.wait(5)
        # The first probe may race the daemon noticing the dead connection
        # (test_channel.py pins that case); any 500 at the deadline.
        first = self.get(d)
        self.assertEqual(first.status, 500, first)
        self.assertLessEqual(first.elapsed, PROBE_TIMEOUT + ANSWER_MARGIN)
        answers = [self.get(d) for _ in range(2)]
        for r in answers:
            self.assertAnswer(r, 500, h.CONNECT_FAIL_BODY, at_deadline=True)
        mock = self.start_mock(path=mock.socket_path)
        restarted = time.monotonic()
        ok = self.back_to_healthy(d, h.scaled(1.0))
        ok_after = time.monotonic() - restarted
        self.assertEqual(mock.calls("GetPluginInfo"), 0)
        self.assertBackToBaseline(d, base)
        self.record(3, "SIGKILL, restarted on the same path",
                    "500 %s while down; 200 `ok` after the restart"
                    % md_body(h.CONNECT_FAIL_BODY),
                    "%s while down; ok %.3f s after the restart (answer %s)"
                    % (fmt_range([first.elapsed] + [r.elapsed for r in answers]),
                       ok_after, fmt_s(ok.elapsed)))

    def test_row04_driver_stopped_and_continued(self):
        mock, d, base = self.warm_daemon()
        os.kill(mock.pid, signal.SIGSTOP)
        try:
            answers = [self.get(d) for _ in range(2)]
        finally:
            os.kill(mock.pid, signal.SIGCONT)
        for r in answers:
            # The connection is up: the Probe itself runs out of time.
            self.assertAnswer(r, 500, h.DEADLINE_BODY, at_deadline=True)
        ok = self.back_to_healthy(d)
        self.assertBackToBaseline(d, base)
        self.record(4, "SIGSTOP, then SIGCONT",
                    "500 %s while stopped; 200 `ok` after SIGCONT"
                    % md_body(h.DEADLINE_BODY),
                    "%s; ok in %s" % (fmt_range([r.elapsed for r in answers]),
                                      fmt_s(ok.elapsed)))

    # Rows 5-8: the Probe's answer (mock flags) --------------------------------

    def flag_row(self, args, status, body, at_deadline, n=3, prefix=False,
                 deadline=PROBE_TIMEOUT):
        """Warm healthy pair; the driver restarts with args; n probes."""
        mock, d, base = self.warm_daemon()
        mock = self.swap_driver(mock, *args)
        answers = [self.get(d) for _ in range(n)]
        for r in answers:
            self.assertAnswer(r, status, body, at_deadline, deadline, prefix)
        self.assertEqual(mock.calls(), n)
        mock = self.swap_driver(mock)
        self.back_to_healthy(d)
        self.assertBackToBaseline(d, base)
        return answers

    def test_row05_probe_hangs(self):
        answers = self.flag_row(["--probe-hang"], 500, h.DEADLINE_BODY, True)
        self.record(5, "Probe hangs (`--probe-hang`)",
                    "500 %s" % md_body(h.DEADLINE_BODY),
                    fmt_range([r.elapsed for r in answers]))

    def test_row06_slow_within_timeout(self):
        answers = self.flag_row(["--probe-delay=700ms"], 200, "ok", True,
                                deadline=0.7)
        for r in answers:
            self.assertLess(r.elapsed, PROBE_TIMEOUT, r)
        self.record(6, "Probe answers after 700 ms (`--probe-delay`, timeout 1 s)",
                    "200 `ok`", fmt_range([r.elapsed for r in answers]))

    def test_row07_not_ready(self):
        answers = self.flag_row(["--ready=false"], 500, h.NOT_READY_BODY, False)
        self.record(7, "not ready (`--ready=false`)",
                    "500 %s" % md_body(h.NOT_READY_BODY),
                    fmt_range([r.elapsed for r in answers]))

    def test_row08_every_error_code(self):
        # test_healthz.py covers the bodies with and without messages; here
        # one daemon sees the driver restart with each code in turn, and
        # the answers are timed and the daemon's fds and RSS checked.
        mock, d, base = self.warm_daemon()
        times = []
        for code in range(1, 17):
            with self.subTest(code=code):
                message = "row 8: code %d" % code
                mock = self.swap_driver(mock, "--probe-code=%d" % code,
                                        "--probe-message=" + message)
                r = self.get(d)
                self.assertAnswer(r, 500, "rpc error: code = %s desc = %s"
                                  % (h.GO_CODE_NAMES[code], message))
                self.assertEqual(mock.calls(), 1)
                times.append(r.elapsed)
        mock = self.swap_driver(mock)
        self.back_to_healthy(d)
        self.assertBackToBaseline(d, base)
        self.record(8, "Probe fails with each gRPC code 1–16 "
                       "(`--probe-code`, `--probe-message`)",
                    "500 `rpc error: code = <GoName> desc = <message>`",
                    fmt_range(times))

    # Rows 9-12: scripted drivers ----------------------------------------------

    FLAP = """
local driver = {}
-- 1: ready, 2: UNAVAILABLE, 3: not ready, 0: ready unset; then again.
function driver.probe(call)
  local k = call.n % 4
  if k == 1 then return {ready = true} end
  if k == 2 then return {code = "UNAVAILABLE", message = "flap " .. call.n} end
  if k == 3 then return {ready = false} end
  return {}
end
return driver
"""

    def test_row09_flapping(self):
        mock, d, base = self.warm_daemon()
        mock = self.swap_driver(mock, self.script_flag("flap.lua", self.FLAP))
        seen = []
        times = []
        for i in range(12):
            r = self.get(d)
            n = mock.calls()
            # One Probe per request: the answer is call n's.
            self.assertEqual(n, i + 1)
            want = {1: (200, "ok"),
                    2: (500, "rpc error: code = Unavailable desc = flap %d" % n),
                    3: (500, h.NOT_READY_BODY),
                    0: (200, "ok")}[n % 4]
            with self.subTest(call=n):
                self.assertAnswer(r, *want)
            seen.append(r.status)
            times.append(r.elapsed)
        self.assertEqual(seen, [200, 500, 500, 200] * 3)
        mock = self.swap_driver(mock)
        self.back_to_healthy(d)
        self.assertBackToBaseline(d, base)
        self.record(9, "flapping (script: ready / UNAVAILABLE / not ready / "
                       "ready unset, in turn)",
                    "each call's own answer: 200 `ok`, 500 `rpc error: code = "
                    "Unavailable desc = flap N`, 500 %s, 200 `ok`"
                    % md_body(h.NOT_READY_BODY),
                    fmt_range(times))

    def script_row(self, name, text, n=3):
        """Warm pair; the driver restarts with a script; n answers."""
        mock, d, base = self.warm_daemon()
        mock = self.swap_driver(mock, self.script_flag(name, text))
        answers = [self.get(d) for _ in range(n)]
        return mock, d, base, answers

    def test_row10_invalid_response(self):
        mock, d, base, answers = self.script_row(
            "invalid.lua",
            'return {probe = function(call) return {action = "invalid_response"} end}')
        body = ("rpc error: code = Internal desc = "
                "grpc: failed to unmarshal the received message")
        for r in answers:
            self.assertAnswer(r, 500, body)
        self.assertEqual(mock.calls(), 3)
        mock = self.swap_driver(mock)
        self.back_to_healthy(d)
        self.assertBackToBaseline(d, base)
        self.record(10, "status OK with bytes that are no ProbeResponse "
                        "(script `invalid_response`)",
                    "500 %s" % md_body(body), fmt_range([r.elapsed for r in answers]))

    def test_row11_oversized_response(self):
        # A 5 MiB reply (gRPC's receive limit is 4 MiB): gRPC refuses it.
        mock, d, base, answers = self.script_row(
            "oversized.lua",
            'return {probe = function(call) return {action = "oversized_response"} end}',
            n=5)
        prefix = "rpc error: code = ResourceExhausted desc = "
        for r in answers:
            self.assertAnswer(r, 500, prefix, prefix=True)
            self.assertIn("larger than max", r.body.decode())
        self.assertEqual(mock.calls(), 5)
        # More of them: what gRPC buffers is freed each time (RSS bounded).
        # Not under ASan, whose quarantine keeps every freed buffer.
        for _ in range(10 if not SANITIZED else 0):
            self.assertEqual(self.get(d).status, 500)
        # SIGKILL: after oversized replies the mock sometimes takes ~10 s to
        # exit on SIGTERM (grpc_shutdown_blocking in mock_server_free waits
        # for gRPC's executor thread); not the sidecar's business.
        mock = self.swap_driver(mock, sig=signal.SIGKILL)
        self.back_to_healthy(d)
        # gRPC reads the whole 5 MiB (in HTTP/2 frames) before it refuses
        # it; malloc keeps the freed buffers, in whichever of gRPC's
        # threads' arenas read them. Measured: RSS stays within +3..9 MiB of
        # the baseline over 80 such replies (bounded, no leak), dd9c3d8
        # alike; one CI run saw +12 MiB. The tolerance: three such
        # messages' worth, plus the usual 1 MiB (a leak of one message per
        # reply would still show as +75 MiB).
        # Under ASan the quarantine (256 MiB) keeps each freed 5 MiB buffer
        # and its frame copies: 8 MiB per reply on top of the usual bound
        # (measured: +97 MiB after 15 replies, hence only 5 there).
        tol = RSS_TOL_KIB
        if tol is not None:
            tol += 8 * 1024 * len(answers) if SANITIZED else 15 * 1024
        self.assertBackToBaseline(d, base, tol)
        self.record(11, "5 MiB reply, over gRPC's 4 MiB limit "
                        "(script `oversized_response`)",
                    "500 %s" % md_body(answers[0].body),
                    fmt_range([r.elapsed for r in answers]))

    def assertCalls(self, mock, n):
        """The mock has seen exactly n Probe calls. It logs a call as it
        acts on it, which for a closed connection can be just after the
        sidecar already answered: wait for the n-th line, then compare."""
        mock.wait_calls(n, timeout=h.scaled(5))
        self.assertEqual(mock.calls(), n)

    def test_row12_connection_closed_mid_call(self):
        # A driver that closes the connection instead of answering: the
        # sidecar sends a Probe whose connection broke under it once more,
        # on a fresh channel, within the same deadline (csi.c
        # broken_under_call: upstream's per-probe dial would have reached
        # the driver anew). So one close is invisible (200, two calls) and
        # a close of the retry too is a prompt 500 Unavailable with gRPC's
        # text ("Socket closed" or "Broken pipe", as the close is noticed
        # reading or writing).
        mock, d, base, answers = self.script_row(
            "close.lua",
            'return {probe = function(call) return {action = "close_connection"} end}')
        prefix = "rpc error: code = Unavailable desc = "
        for r in answers:
            self.assertAnswer(r, 500, prefix, prefix=True)
        # Each request's retry goes out on a fresh channel; on a loaded
        # machine (ASan, CI) that channel can fail before the driver reads
        # the call, still a prompt Unavailable. So: one call per request at
        # least, a retry seen, never more than two (the 40 rows below need
        # every retry to succeed).
        mock.wait_calls(2 * len(answers), timeout=h.scaled(2))
        self.assertGreater(mock.calls(), len(answers))
        self.assertLessEqual(mock.calls(), 2 * len(answers))
        # Only the odd calls are closed: every request's first call.
        mock = self.swap_driver(mock, self.script_flag("close_odd.lua", """
local driver = {}
function driver.probe(call)
  if call.n % 2 == 1 then return {action = "close_connection"} end
  return {ready = true}
end
return driver
"""))
        # 40 requests: a retry whose new channel shared the dying connection
        # through gRPC's process-wide subchannel pool failed now and then
        # (5 of 300 requests here); csi.c now gives each channel its own
        # pool. So this catches that regression about every other run.
        single = []
        for i in range(40):
            r = self.get(d)
            self.assertAnswer(r, 200, "ok")
            self.assertCalls(mock, 2 * (i + 1))
            single.append(r)
        mock = self.swap_driver(mock)
        self.back_to_healthy(d)
        self.assertBackToBaseline(d, base)
        self.record(12, "connection closed instead of an answer "
                        "(script `close_connection`)",
                    "every call closed: 500 `%s…` (`Socket closed` / "
                    "`Broken pipe`) after one retry; only the first call "
                    "closed: 200 `ok` (the sidecar's retry)" % prefix,
                    "%s closed; %s retried" % (fmt_range([r.elapsed for r in answers]),
                                               fmt_range([r.elapsed for r in single])))

    # Row 13: GetPluginInfo fails ----------------------------------------------

    def test_row13_plugin_info_fails(self):
        mock = self.start_mock("--info-code=FailedPrecondition",
                               "--info-message=row 13")
        port = h.free_port()
        start = time.monotonic()
        rc, out, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                       "--health-port=%d" % port)
        took = time.monotonic() - start
        self.assertEqual(rc, 1, err)
        self.assertIn('"Failed to get CSI driver name" err="rpc error: '
                      'code = FailedPrecondition desc = row 13"', err)
        self.assertNotIn("ServeMux listening", err)
        self.assertLess(took, h.scaled(2.0))
        r = self.assertRefused(port)
        self.assertEqual(mock.calls("GetPluginInfo"), 1)
        self.record(13, "GetPluginInfo fails at start (`--info-code=FailedPrecondition`)",
                    "none: the sidecar exits 1 (`Failed to get CSI driver name`) "
                    "without listening; connection refused",
                    "exit after %s; refused in %s" % (fmt_s(took), fmt_s(r.elapsed)))

    # Rows 15-17: HTTP clients ---------------------------------------------------

    def test_row15_thousand_idle_connections(self):
        n = 1000
        # This process needs n + its own fds, the daemon n + ~15. CI images
        # often have a soft limit of 1024: raise ours. (The daemon raises
        # its own soft limit to the hard one at start-up, as Go programs
        # do; the table notes what it ended up with.)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 2 * n + 100
        if soft != resource.RLIM_INFINITY and soft < want:
            if hard != resource.RLIM_INFINITY and hard < want:
                self.skipTest("RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        mock, d, base = self.warm_daemon()
        with open("/proc/%d/limits" % d.pid) as f:
            limit = [l for l in f if l.startswith("Max open files")][0].split()[3]
        self.assertGreaterEqual(int(limit), n + 100)

        prober = kp.KubeProber(d.port, period=0.2, timeout=KUBELET_TIMEOUT,
                               failure_threshold=1)
        prober.start()
        self.addCleanup(prober.stop)
        # Up to MAX_ROUNDS rounds; it stops at the first later round that
        # grew less than ROUND_TOL_KIB (see below).
        rounds = []
        for round_ in range(MAX_ROUNDS):
            conns = []
            try:
                for _ in range(n):
                    s = socket.create_connection(("127.0.0.1", d.port))
                    conns.append(s)
                # All accepted and held by the daemon.
                deadline = time.monotonic() + h.scaled(3.0)
                while d.fd_count() < base[0] + n and time.monotonic() < deadline:
                    time.sleep(0.02)
                self.assertGreaterEqual(d.fd_count(), base[0] + n)
                # Probes meanwhile (at least 5 with all n open).
                held = len(prober.snapshot()[0])
                self.assertTrue(prober.wait_until(
                    lambda probes, _: len(probes) >= held + 5, h.scaled(5.0)))
                # Still open on the daemon's side (idle timeout is 64 s).
                self.assertGreaterEqual(d.fd_count(), base[0] + n)
            finally:
                for s in conns:
                    s.close()
            self.assertBackToBaseline(d, base, None)
            rounds.append(d.rss_kib())
            if RSS_TOL_KIB is None or (
                    len(rounds) >= 2 and min(later_growths(rounds)) <= ROUND_TOL_KIB):
                break
        prober.stop()
        probes, restarts = prober.snapshot()
        self.assertEqual(restarts, [])
        for r in probes:
            self.assertAnswer(r, 200, "ok")
        # Each connection costs libevent a few KiB (evhttp_connection,
        # bufferevent, buffers); malloc keeps them after the close: the
        # first round may stay up to +4 MiB (measured +2.1..3.2 MiB). Later
        # rounds reuse that memory, but malloc's placement varies and
        # settles after a few rounds (measured here, 10 rounds: +20, +60,
        # +372, +20, +628, +4, 0, 0, 0 KiB; in CI two later rounds grew
        # +1.0 and +1.3 MiB). A leak of even 1 KiB per connection grows
        # every round by 1,000 KiB or more: so some later round must grow
        # less than ROUND_TOL_KIB.
        if RSS_TOL_KIB is not None:
            self.assertLessEqual(rounds[0] - base[1], RSS_TOL_KIB + 3 * 1024)
            self.assertLessEqual(min(later_growths(rounds)), ROUND_TOL_KIB, rounds)
        self.record(15, "healthy; 1,000 idle client TCP connections held open "
                        "(daemon's RLIMIT_NOFILE %s)" % limit,
                    "200 `ok` to every probe",
                    "%s" % fmt_range([r.elapsed for r in probes]))

    def test_row16_slow_clients(self):
        # libevent's per-connection timeout (evhttp_set_timeout, 64 s here:
        # 2 × (check + probe timeout) + 60 s) is an inactivity timeout that
        # every byte received resets: a client trickling a byte a second is
        # kept until it completes its request (or its headers pass the
        # 16 KiB cap, or it pauses for 64 s). There is no overall
        # request-header deadline. It costs one connection each and does
        # not delay other requests.
        mock, d, base = self.warm_daemon()
        prober = kp.KubeProber(d.port, period=0.25, timeout=KUBELET_TIMEOUT,
                               failure_threshold=1)
        prober.start()
        self.addCleanup(prober.stop)
        n, trickle = 5, 5
        conns = [h.HTTPConn(d.port, timeout=h.scaled(5.0)) for _ in range(n)]
        for c in conns:
            self.addCleanup(c.close)
        wire = conns[0].build("GET", "/healthz")
        start = time.monotonic()
        for i in range(trickle):
            for c in conns:
                c.send(wire[i:i + 1])
            time.sleep(1.0)  # the scenario: one byte a second
        # Kept open (recv would return b"" had the server closed them).
        for c in conns:
            c.sock.setblocking(False)
            try:
                self.assertNotEqual(c.sock.recv(1), b"", "slow client closed")
            except BlockingIOError:
                pass
            c.sock.setblocking(True)
            c.sock.settimeout(h.scaled(5.0))
        # Completed, they are answered like anyone else.
        for c in conns:
            c.send(wire[trickle:])
        for c in conns:
            resp = c.read_response()
            self.assertHealthz(resp, 200, "ok")
        slow_for = time.monotonic() - start
        prober.stop()
        probes, restarts = prober.snapshot()
        self.assertEqual(restarts, [])
        self.assertGreaterEqual(len(probes), 10)
        for r in probes:
            self.assertAnswer(r, 200, "ok")
        for c in conns:
            c.close()
        self.assertBackToBaseline(d, base)
        self.record(16, "healthy; %d clients sending 1 byte/s" % n,
                    "200 `ok` to every probe; the slow clients are kept "
                    "(no header deadline) and answered 200 `ok` after %.0f s"
                    % slow_for,
                    fmt_range([r.elapsed for r in probes]))

    # (name, bytes, expected): expected is an HTTP status answered before a
    # close, "wait" (an incomplete request: no answer yet, still open), or
    # "close" (closed without an answer).
    MALFORMED = [
        ("TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
         + _noise(64, 1) + b"\r\n\r\n", 400),
        ("random bytes", _noise(4096, 2), 400),
        ("request line without target", b"GET\r\n\r\n", 400),
        ("HTTP/9.9", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400),
        ("HTTP/0.9 request line", b"GET /healthz\r\n\r\n", 400),
        ("NUL in the request line", b"GET /heal\x00thz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("20 KiB header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
         + b"a" * 20000 + b"\r\n\r\n", 400),
        ("3,000 headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
         + b"".join(b"X-%d: y\r\n" % i for i in range(3000)) + b"\r\n", 400),
        ("20 KiB URI", b"GET /healthz?" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 400),
        ("20 KiB line, no line end", b"G" * 20000, 400),
        ("20 KiB of NUL bytes", b"\x00" * 20000, 400),
        ("header line without colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
        ("folded header", b"GET /healthz HTTP/1.1\r\n Host: x\r\n\r\n", 400),
        ("Content-Length: abc", b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: abc\r\n\r\n", 400),
        ("Content-Length: -5", b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: -5\r\n\r\n", 400),
        ("Content-Length: 99999999999", b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 99999999999\r\n\r\n", 413),
        ("100 kB body (cap 64 KiB)", b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 100000\r\n\r\n", 413),
        ("bad chunk size", b"POST /healthz HTTP/1.1\r\nHost: x\r\n"
         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 413),
        ("unknown method", b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        ("garbage without line end", b"hello world", "wait"),
        ("100 NUL bytes", b"\x00" * 100, "wait"),
        ("half a request, then EOF", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", "close"),
    ]

    def send_raw(self, d, data, expected):
        """Sends data on a new connection; returns what came back."""
        s = socket.create_connection(("127.0.0.1", d.port))
        self.addCleanup(s.close)
        start = time.monotonic()
        s.sendall(data)
        if expected == "close":
            s.shutdown(socket.SHUT_WR)
        s.settimeout(h.scaled(0.3) if expected == "wait" else h.scaled(2.0))
        out = b""
        closed = False
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                out += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
        elapsed = time.monotonic() - start
        s.close()
        return out, closed, elapsed

    def test_row17_malformed_http(self):
        mock, d, base = self.warm_daemon()
        seen = []
        times = []
        for name, data, expected in self.MALFORMED:
            with self.subTest(payload=name):
                out, closed, elapsed = self.send_raw(d, data, expected)
                self.assertTrue(d.alive(), "daemon died on %r: %s"
                                % (name, d.stderr()[-2000:]))
                if expected == "wait":
                    self.assertEqual((out, closed), (b"", False))
                elif expected == "close":
                    self.assertEqual((out, closed), (b"", True))
                    times.append(elapsed)
                else:
                    status = out.split(b"\r\n", 1)[0]
                    self.assertTrue(status.startswith(b"HTTP/1.1 %d " % expected),
                                    "%s: %r" % (name, out[:200]))
                    self.assertIn(b"\r\nConnection: close\r\n", out)
                    self.assertTrue(closed, "%s: not closed after %r" % (name, out))
                    self.assertLess(elapsed, PROMPT)
                    times.append(elapsed)
                seen.append(expected)
        # The daemon still probes, and the bad connections are all gone.
        self.assertAnswer(self.get(d), 200, "ok")
        self.assertEqual(mock.calls(), 4)   # none of the above probed
        self.assertBackToBaseline(d, base)
        self.record(17, "healthy; malformed HTTP (%d kinds: garbage, bad request "
                        "lines, 20 KiB header/URI/line, NUL bytes, bad "
                        "Content-Length, bad chunk, unknown method, truncated)"
                        % len(self.MALFORMED),
                    "400 (%d), 413 (%d), 501 (%d), each then closed; incomplete "
                    "requests wait (%d) or are closed at EOF (%d); "
                    "/healthz still 200 `ok`"
                    % tuple(seen.count(k) for k in (400, 413, 501, "wait", "close")),
                    fmt_range(times))

    def test_row17b_duplicate_content_length(self):
        # As Go's net/http: lengths that disagree are refused (400, closed);
        # the same length twice is accepted.
        mock, d, base = self.warm_daemon()
        out, closed, _ = self.send_raw(
            d, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
               b"Content-Length: 2\r\n\r\nab", None)
        self.assertRegex(out, rb"^HTTP/1\.1 400 Bad Request\r\n")
        self.assertTrue(out.endswith(b"\r\n\r\n400 Bad Request"), out)
        self.assertTrue(closed)
        out, closed, _ = self.send_raw(
            d, b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
               b"Content-Length: 2\r\nConnection: close\r\n\r\nab", None)
        self.assertRegex(out, rb"^HTTP/1\.1 200 OK\r\n")
        self.assertTrue(out.endswith(b"\r\n\r\nok"), out)
        self.assertAnswer(self.get(d), 200, "ok")
        self.assertBackToBaseline(d, base)

    def test_row17c_lenient_parsing(self):
        # Go's net/http answers 400 to this; libevent's parser ends the
        # value at the NUL. Not a crash; pinned only as "an answer, then
        # the daemon still works".
        mock, d, base = self.warm_daemon()
        out, closed, _ = self.send_raw(
            d, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n"
               b"Connection: close\r\n\r\n", None)
        self.assertTrue(d.alive())
        self.assertRegex(out[:13], rb"^HTTP/1\.1 (200|400) ", out)
        self.assertTrue(closed)
        self.assertAnswer(self.get(d), 200, "ok")
        self.assertBackToBaseline(d, base)


if __name__ == "__main__":
    h.main()
