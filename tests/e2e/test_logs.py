"""Log output: volume per probe, wording, formats, streams.

UPSTREAM.md §1.3, §3.4 and checklist items 26 and 36.
"""

import json
import signal
import time

import lpharness as h


def new_lines(d, since, want=1):
    """stderr lines written after the first `since` lines, once there are
    want of them and a moment more for any extra line (that must not come)."""
    h.wait_until(lambda: len(d.log_lines()) - since >= want, 5.0)
    time.sleep(h.scaled(0.05))
    return d.log_lines()[since:]


class TextLogTest(h.LPTestCase):

    def test_healthy_probe_logs_nothing_at_default_v(self):
        mock, d = self.healthy_daemon()
        before = d.stderr()
        for _ in range(5):
            self.assertHealthz(d.request(), 200, "ok")
        time.sleep(h.scaled(0.1))  # room for a line that must not come
        self.assertEqual(d.stderr(), before)
        self.assertEqual(d.stdout(), "")

    def test_healthy_probe_logs_nothing_at_v4(self):
        mock, d = self.healthy_daemon("-v=4")
        before = d.stderr()
        for _ in range(3):
            self.assertHealthz(d.request(), 200, "ok")
        time.sleep(h.scaled(0.1))  # room for a line that must not come
        self.assertEqual(d.stderr(), before)

    def assertOneErrorPerProbe(self, d, n, message, kv):
        """n failed probes: exactly n new lines, each one E line as given."""
        since = len(d.log_lines())
        for _ in range(n):
            self.assertEqual(d.request().status, 500)
        lines = new_lines(d, since, n)
        self.assertEqual(len(lines), n, lines)
        for line in lines:
            parsed = h.parse_klog(line)
            self.assertIsNotNone(parsed, line)
            self.assertEqual(parsed, ("E", message, kv), line)
        self.assertEqual(d.stdout(), "")

    def test_error_code_logs_one_line(self):
        mock, d = self.healthy_daemon(mock_args=[
            "--probe-code=FailedPrecondition", "--probe-message=plugin not healthy"])
        self.assertOneErrorPerProbe(
            d, 3, "Health check failed",
            {"err": "rpc error: code = FailedPrecondition desc = plugin not healthy"})

    def test_not_ready_logs_one_line(self):
        mock, d = self.healthy_daemon(mock_args=["--ready=false"])
        self.assertOneErrorPerProbe(d, 3, "Driver responded but is not ready", {})

    def test_unreachable_logs_one_line(self):
        mock, d = self.healthy_daemon("--probe-timeout=300ms")
        self.stop_mock(mock)
        self.assertOneErrorPerProbe(d, 3, "Failed to establish connection to CSI driver",
                                    {"err": "context deadline exceeded"})

    def test_killed_driver_logs_one_line(self):
        mock, d = self.healthy_daemon("--probe-timeout=300ms")
        mock.signal(signal.SIGKILL)
        mock.wait(5)
        # The first probe may race the daemon noticing the dead connection
        # (test_channel.py covers that); count from the steady state.
        self.assertEqual(d.request().status, 500)
        self.assertOneErrorPerProbe(d, 3, "Failed to establish connection to CSI driver",
                                    {"err": "context deadline exceeded"})

    def test_timeout_logs_one_line(self):
        mock, d = self.healthy_daemon("--probe-timeout=300ms",
                                      mock_args=["--probe-hang"])
        self.assertOneErrorPerProbe(d, 2, "Health check failed",
                                    {"err": h.DEADLINE_BODY})

    def test_zero_timeout_logs_one_line(self):
        mock, d = self.healthy_daemon("--probe-timeout=0")
        self.assertOneErrorPerProbe(d, 3, "Failed to establish connection to CSI driver",
                                    {"err": "context deadline exceeded"})

    def test_v5_success_lines(self):
        mock, d = self.healthy_daemon("-v=5", mock_args=["--name=five.csi.example.org"])
        since = len(d.log_lines())
        self.assertHealthz(d.request(), 200, "ok")
        lines = [h.parse_klog(l) for l in new_lines(d, since, 2)]
        self.assertNotIn(None, lines)
        self.assertIn(("I", "Sending probe request to CSI driver",
                       {"driver": "five.csi.example.org"}), lines)
        self.assertIn(("I", "Health check succeeded", {}), lines)
        i_send = lines.index(("I", "Sending probe request to CSI driver",
                              {"driver": "five.csi.example.org"}))
        i_ok = lines.index(("I", "Health check succeeded", {}))
        self.assertLess(i_send, i_ok)
        self.assertEqual([l for l in lines if l[0] != "I"], [])

    def test_v5_failure_still_one_error_line(self):
        mock, d = self.healthy_daemon("-v=5", mock_args=["--probe-code=Internal"])
        since = len(d.log_lines())
        self.assertEqual(d.request().status, 500)
        lines = [h.parse_klog(l) for l in new_lines(d, since, 2)]
        errors = [l for l in lines if l[0] == "E"]
        self.assertEqual(errors, [("E", "Health check failed",
                                   {"err": "rpc error: code = Internal desc = "})])
        self.assertNotIn(("I", "Health check succeeded", {}), lines)

    def test_header_format(self):
        mock, d = self.healthy_daemon()
        lines = d.log_lines()
        self.assertGreaterEqual(len(lines), 3)
        today = time.strftime("%m%d")
        for line in lines:
            m = h.KLOG_RE.match(line)
            self.assertIsNotNone(m, line)
            self.assertEqual(int(m.group(4)), d.pid, line)
            self.assertIn(m.group(2), (today, time.strftime(
                "%m%d", time.localtime(time.time() - 60))), line)
            # The PID column is right-aligned in 7 characters.
            self.assertRegex(line, r"^[IWEF]\d{4} \S+ [ \d]{7,} ")

    def test_skip_headers(self):
        mock, d = self.healthy_daemon("-skip_headers")
        for line in d.log_lines():
            self.assertIsNone(h.KLOG_RE.match(line), line)
        self.assertIn('"CSI driver name" driver="%s"' % h.MOCK_NAME, d.log_lines())

    def test_stdout_empty_through_lifecycle(self):
        # Item 36: start-up, probes of every kind, shutdown: nothing on stdout.
        mock, d = self.healthy_daemon("-v=5", "--probe-timeout=200ms")
        d.request()
        d.request("GET", "/nope")
        self.stop_mock(mock)
        d.request()
        self.stop_daemon(d)
        self.assertEqual(d.stdout(), "")
        self.assertNotEqual(d.stderr(), "")


class JsonLogTest(h.LPTestCase):

    def records(self, d):
        out = []
        for line in d.log_lines():
            obj = json.loads(line)  # every line is one JSON object
            self.assertIsInstance(obj, dict, line)
            out.append(obj)
        return out

    def test_json_lines(self):
        mock, d = self.healthy_daemon("--logging-format=json", "--probe-timeout=300ms",
                                      mock_args=["--ready=false"])
        self.assertHealthz(d.request(), 500, h.NOT_READY_BODY)
        self.stop_mock(mock)
        self.assertHealthz(d.request(), 500, h.CONNECT_FAIL_BODY)
        recs = self.records(d)
        self.assertGreaterEqual(len(recs), 5)
        now_ms = time.time() * 1000
        for r in recs:
            for key in ("ts", "caller", "msg"):
                self.assertIn(key, r)
            self.assertIsInstance(r["ts"], (int, float))
            self.assertLess(abs(r["ts"] - now_ms), 120000, r)
            self.assertRegex(r["caller"], r"^\S+:\d+$")
        by_msg = {r["msg"]: r for r in recs}
        self.assertEqual(by_msg["CSI driver name"].get("driver"), h.MOCK_NAME)
        self.assertEqual(by_msg["CSI driver name"].get("v"), 0)
        self.assertEqual(by_msg["ServeMux listening"].get("address"),
                         "0.0.0.0:%d" % d.port)
        self.assertIn("Driver responded but is not ready", by_msg)
        self.assertNotIn("v", by_msg["Driver responded but is not ready"])
        fail = by_msg["Failed to establish connection to CSI driver"]
        self.assertEqual(fail.get("err"), "context deadline exceeded")
        self.assertEqual(d.stdout(), "")

    def test_json_one_record_per_failed_probe(self):
        mock, d = self.healthy_daemon("--logging-format=json",
                                      mock_args=["--probe-code=Unavailable",
                                                 "--probe-message=a \"quoted\"\nline"])
        since = len(d.log_lines())
        for _ in range(3):
            self.assertEqual(d.request().status, 500)
        new = [json.loads(l) for l in new_lines(d, since, 3)]
        self.assertEqual(len(new), 3, new)
        for r in new:
            self.assertEqual(r["msg"], "Health check failed")
            self.assertEqual(r["err"], 'rpc error: code = Unavailable '
                                       'desc = a "quoted"\nline')

    def test_json_healthy_probe_quiet(self):
        mock, d = self.healthy_daemon("--logging-format=json")
        before = d.stderr()
        self.assertHealthz(d.request(), 200, "ok")
        time.sleep(h.scaled(0.05))  # room for a line that must not come
        self.assertEqual(d.stderr(), before)

    def test_json_v5(self):
        mock, d = self.healthy_daemon("--logging-format=json", "-v=5")
        since = len(d.log_lines())
        self.assertHealthz(d.request(), 200, "ok")
        new = [json.loads(l) for l in new_lines(d, since, 2)]
        msgs = [(r["msg"], r.get("v")) for r in new]
        self.assertIn(("Sending probe request to CSI driver", 5), msgs)
        self.assertIn(("Health check succeeded", 5), msgs)


if __name__ == "__main__":
    h.main()
