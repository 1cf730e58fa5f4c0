"""csi-mock-driver --script: the hooks, every answer field, every action,
script errors, and the examples in examples/failure-modes/.

Answers are observed through the real sidecar (its /healthz body is the
driver's answer in upstream's words) and, for what the sidecar cannot see,
directly on the socket.
"""

import os
import re
import socket
import time
import unittest

import lpharness as h

FAILURE_MODES = os.path.join(h.SOURCE_DIR, "examples", "failure-modes")
# Calls answered "INTERNAL" because of the script start with this.
SCRIPT_ERROR = "rpc error: code = Internal desc = probe hook: "
INVALID_BODY = ("rpc error: code = Internal desc = grpc: failed to unmarshal "
                "the received message")


def oversized_body(size):
    return ("rpc error: code = ResourceExhausted desc = Received message "
            "larger than max (%d vs. 4194304)" % size)


class ScriptCase(h.LPTestCase):

    def script(self, text, name="driver.lua"):
        return self.write_file(name, text)

    def probe_script(self, body):
        """A script whose probe hook is body (Lua statements using call)."""
        return self.script("local d = {}\nfunction d.probe(call)\n%s\nend\n"
                           "return d\n" % body)

    def scripted(self, script, *daemon_args, mock_args=()):
        mock = self.start_mock("--script=" + script, *mock_args)
        d = self.start_daemon(*daemon_args, csi=mock.socket_path)
        return mock, d

    def assert_answer(self, d, status, body, within=None):
        r = d.request()
        self.assertEqual((r.status, r.text()), (status, body))
        if within is not None:
            self.assertLess(r.elapsed, within)
        return r


class AnswerFields(ScriptCase):

    def test_ready_true_false_unset_and_nil(self):
        s = self.probe_script("""
            local answers = {{ready = true}, {ready = false}, {ready = "unset"}, {}}
            return answers[call.n]""")
        mock, d = self.scripted(s, mock_args=("--ready=false",))
        self.assert_answer(d, 200, "ok")
        self.assert_answer(d, 500, h.NOT_READY_BODY)
        self.assert_answer(d, 200, "ok")  # unset counts as ready
        # An empty table overrides nothing: the flags' --ready=false.
        self.assert_answer(d, 500, h.NOT_READY_BODY)
        # nil (n = 5 is past the list): the flags' answer too.
        self.assert_answer(d, 500, h.NOT_READY_BODY)

    def test_code_by_name_or_number_with_message(self):
        s = self.probe_script("""
            if call.n == 1 then return {code = "UNAVAILABLE", message = "m1"} end
            if call.n == 2 then return {code = "FailedPrecondition", message = "m2"} end
            return {code = 13, message = "m3"}""")
        mock, d = self.scripted(s)
        self.assert_answer(d, 500, "rpc error: code = Unavailable desc = m1")
        self.assert_answer(d, 500, "rpc error: code = FailedPrecondition desc = m2")
        self.assert_answer(d, 500, "rpc error: code = Internal desc = m3")

    def test_call_number_and_elapsed(self):
        s = self.probe_script("""
            return {code = "UNAVAILABLE",
                    message = string.format("%s n=%d elapsed=%.3f",
                                            call.method, call.n, call.elapsed)}""")
        mock, d = self.scripted(s)
        seen = []
        for n in (1, 2, 3):
            r = d.request()
            m = re.fullmatch(r"rpc error: code = Unavailable desc = "
                             r"Probe n=(\d+) elapsed=([0-9.]+)", r.text())
            self.assertIsNotNone(m, r.text())
            self.assertEqual(int(m.group(1)), n)
            seen.append(float(m.group(2)))
            time.sleep(0.2)  # not a barrier: the elapsed the driver sees grows by this
        self.assertGreater(seen[0], 0)
        self.assertGreaterEqual(seen[2] - seen[0], 0.4)
        self.assertLess(seen[2] - seen[0], h.scaled(2.0))

    def test_delay_within_and_past_the_timeout(self):
        s = self.probe_script("""
            if call.n == 1 then return {ready = true, delay = 0.4} end
            return {ready = true, delay = 2.5}""")
        mock, d = self.scripted(s, "--probe-timeout=1s")
        r = self.assert_answer(d, 200, "ok")
        self.assertGreaterEqual(r.elapsed, 0.4)
        self.assertLess(r.elapsed, 0.4 + h.scaled(0.3))
        r = self.assert_answer(d, 500, h.DEADLINE_BODY)
        self.assertGreaterEqual(r.elapsed, 1.0)
        self.assertLess(r.elapsed, 1.0 + h.scaled(0.3))

    def test_hang(self):
        s = self.probe_script("return {hang = true}")
        mock, d = self.scripted(s, "--probe-timeout=500ms")
        r = self.assert_answer(d, 500, h.DEADLINE_BODY)
        self.assertLess(r.elapsed, 0.5 + h.scaled(0.3))

    def test_get_plugin_info_hook(self):
        s = self.script("""
            local d = {}
            function d.get_plugin_info(call)
              return {name = "scripted.csi.example", vendor_version = "n" .. call.n}
            end
            return d""")
        mock, d = self.scripted(s, "--metrics-address=", "--http-endpoint=")
        line = d.wait_log("scripted.csi.example", h.scaled(5))
        self.assertIsNotNone(line, d.stderr())
        self.assert_answer(d, 200, "ok")  # no probe hook: the flags answer

    def test_get_plugin_info_failing_makes_the_sidecar_exit_1(self):
        s = self.script("""
            local d = {}
            function d.get_plugin_info(call)
              return {code = "UNAVAILABLE", message = "not yet"}
            end
            return d""")
        mock = self.start_mock("--script=" + s)
        rc, out, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                       "--health-port=%d" % h.free_port())
        self.assertEqual(rc, 1, err)
        self.assertIn("not yet", err)


class Actions(ScriptCase):

    def test_exit_leaves_the_socket_like_a_crash(self):
        s = self.probe_script("""
            if call.n == 2 then return {action = "exit", exit_code = 7} end
            return {ready = true}""")
        mock, d = self.scripted(s)
        self.assert_answer(d, 200, "ok")
        r = d.request()
        self.assertEqual(r.status, 500)
        self.assertLess(r.elapsed, 1.0 + h.scaled(0.3))
        self.assertEqual(mock.wait(h.scaled(5)), 7)
        self.assertTrue(os.path.exists(mock.socket_path), "a crash leaves its socket")
        # Nobody listens there any more: refused at once, upstream's text.
        self.assert_answer(d, 500, h.CONNECT_FAIL_BODY, within=1.0 + h.scaled(0.3))
        self.assertTrue(d.alive())

    def test_remove_socket_keeps_the_process(self):
        s = self.probe_script("""
            if call.n == 1 then return {ready = true, action = "remove_socket"} end
            return {ready = true}""")
        mock, d = self.scripted(s)
        self.assert_answer(d, 200, "ok")
        self.assertFalse(os.path.exists(mock.socket_path))
        self.assertTrue(mock.alive())
        self.assert_answer(d, 500, h.CONNECT_FAIL_BODY, within=1.0 + h.scaled(0.3))
        self.assertEqual(self.stop_mock(mock), 0)

    def raw_connect(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(h.scaled(5))
        s.connect(path)
        # The HTTP/2 client preface; a serving gRPC server answers SETTINGS.
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
        self.addCleanup(s.close)
        return s

    def test_stop_and_start_accepting(self):
        s = self.probe_script("""
            if call.n == 1 then return {ready = true, action = "stop_accepting"} end
            if call.n == 2 then return {ready = true, action = "start_accepting"} end
            return {ready = true}""")
        mock, d = self.scripted(s)
        self.assert_answer(d, 200, "ok")
        # The kernel queues the connection, but nobody serves it.
        conn = self.raw_connect(mock.socket_path)
        conn.settimeout(0.5)
        with self.assertRaises(socket.timeout):
            conn.recv(64)
        # The sidecar's connection was made before: still served.
        self.assert_answer(d, 200, "ok")
        conn.settimeout(h.scaled(5))
        frame = conn.recv(9)
        self.assertEqual(len(frame), 9)
        self.assertEqual(frame[3], 0x4, "first frame from the server is SETTINGS")

    def test_close_connection_mid_call(self):
        # Every call closes the connection under it: the sidecar retries once
        # on a new connection (README "Driver restarts"), then reports it.
        s = self.probe_script('return {action = "close_connection"}')
        mock, d = self.scripted(s)
        r = d.request()
        self.assertEqual(r.status, 500)
        self.assertRegex(r.text(), r"^rpc error: code = Unavailable desc = ")
        self.assertLess(r.elapsed, 1.0 + h.scaled(0.3))
        self.assertTrue(mock.wait_calls(2))
        self.assertTrue(mock.alive())

    def test_close_then_healthy_recovers_in_the_same_request(self):
        s = self.probe_script("""
            if call.n % 2 == 1 then return {action = "close_connection"} end
            return {ready = true}""")
        mock, d = self.scripted(s)
        # Every time, not by luck of timing: gRPC's call may end before its
        # channel notices the connection is gone.
        for n in range(1, 11):
            self.assert_answer(d, 200, "ok", within=1.0)
            self.assertEqual(mock.calls(), 2 * n)

    def test_invalid_response(self):
        s = self.probe_script('return {action = "invalid_response"}')
        mock, d = self.scripted(s)
        self.assert_answer(d, 500, INVALID_BODY, within=1.0)

    def test_oversized_response_default_and_sized(self):
        s = self.probe_script("""
            if call.n == 1 then return {action = "oversized_response"} end
            if call.n == 2 then return {action = "oversized_response", size = 6000000} end
            return {action = "oversized_response", size = 1000, ready = true}""")
        mock, d = self.scripted(s)
        self.assert_answer(d, 500, oversized_body(5 << 20), within=h.scaled(2))
        self.assert_answer(d, 500, oversized_body(6000000), within=h.scaled(2))
        # Padded but under the limit: unknown fields are skipped, ready=true.
        self.assert_answer(d, 200, "ok")


class ScriptErrors(ScriptCase):

    def test_runtime_errors_answer_internal_and_the_driver_goes_on(self):
        s = self.probe_script("""
            if call.n == 1 then error("boom") end
            if call.n == 2 then return {colour = "red"} end
            if call.n == 3 then return {delay = -1} end
            if call.n == 4 then return {code = "NOPE"} end
            if call.n == 5 then return 42 end
            if call.n == 6 then return os.time() end
            if call.n == 7 then return {ready = true, name = "x"} end
            if call.n == 8 then return setmetatable({}, {}) end
            return {ready = true}""")
        mock, d = self.scripted(s)
        expected = [
            "%s:4: boom" % s,
            "%s: unknown field colour in probe's answer" % s,
            "%s: delay must be a number of seconds from 0 to 86400" % s,
            "%s: code: unknown gRPC status NOPE" % s,
            "%s: probe must return nil or a plain table, not number" % s,
            "%s:9: attempt to index a nil value (global 'os')" % s,
            "%s: unknown field name in probe's answer (a field of get_plugin_info)" % s,
            "%s: probe must return a table without a metatable" % s,
        ]
        for text in expected:
            self.assert_answer(d, 500, SCRIPT_ERROR + text)
        self.assert_answer(d, 200, "ok")
        logged = [kv["err"] for _, msg, kv in
                  filter(None, map(h.parse_klog, mock.stderr().splitlines()))
                  if msg == "Script error"]
        for text in expected:
            self.assertIn("probe hook: " + text, logged)

    def test_runaway_hook_is_stopped(self):
        s = self.probe_script("""
            if call.n == 1 then while true do end end
            return {ready = true}""")
        mock, d = self.scripted(s, "--probe-timeout=3s")
        r = d.request()
        self.assertEqual(r.status, 500)
        # Whichever limit comes first: a slow (instrumented) build hits the time.
        self.assertRegex(r.text(), "^" + re.escape(SCRIPT_ERROR + s) +
                         ": (exceeded the instruction limit|ran out of time)$")
        self.assertLess(r.elapsed, 1.0 + h.scaled(0.5))
        self.assert_answer(d, 200, "ok")

    def test_memory_bomb_is_stopped(self):
        s = self.probe_script("""
            if call.n == 1 then local t = {} for i = 1, 1e9 do t[i] = ("x"):rep(64) .. i end end
            return {ready = true}""")
        mock, d = self.scripted(s, "--probe-timeout=3s")
        r = d.request()
        self.assertEqual(r.status, 500)
        self.assertRegex(r.text(), "^" + re.escape(SCRIPT_ERROR + s) +
                         ": (not enough memory|exceeded the instruction limit"
                         "|ran out of time)$")
        self.assert_answer(d, 200, "ok")

    def test_scripts_that_cannot_load_exit_2(self):
        cases = [
            ("return 5", "the script must return a plain table of hooks, got number"),
            ("local d = {} function d.Probe() end return d",
             "unknown key Probe in the returned table (did you mean probe?)"),
            ("x = = 1", ":1: unexpected symbol near '='"),
            ("return {probe = 3}", "probe must be a function, not number"),
            # Whichever limit a loaded machine reaches first.
            ("while true do end", ("loading exceeded the instruction limit",
                                   "loading ran out of time")),
            ("return setmetatable({}, {})", "the table of hooks must not have a metatable"),
        ]
        for text, message in cases:
            with self.subTest(text=text):
                path = self.script(text, "bad.lua")
                m = self.start_mock("--script=" + path, wait=False)
                self.assertEqual(m.wait(h.scaled(10)), 2)
                logged = [kv["err"] for _, msg, kv in
                          filter(None, map(h.parse_klog, m.stderr().splitlines()))
                          if msg == "Cannot load the script"]
                self.assertEqual(len(logged), 1, m.stderr())
                self.assertTrue(logged[0].startswith(path), logged)
                alternatives = message if isinstance(message, tuple) else (message,)
                self.assertTrue(any(a in logged[0] for a in alternatives), logged)
                self.assertFalse(os.path.exists(m.socket_path))
        m = self.start_mock("--script=" + os.path.join(self.tmp, "missing.lua"), wait=False)
        self.assertEqual(m.wait(h.scaled(10)), 2)
        self.assertIn("cannot read", m.stderr())


class FailureModeExamples(ScriptCase):
    """Each example keeps the promise in its header comment."""

    def example(self, name, **constants):
        """The example, with constants (e.g. INIT_SECONDS=1) substituted."""
        with open(os.path.join(FAILURE_MODES, name + ".lua")) as f:
            text = f.read()
        for key, value in constants.items():
            text, n = re.subn(r"(?m)^local %s = .*$" % key,
                              "local %s = %s" % (key, value), text)
            self.assertEqual(n, 1, "%s has no constant %s" % (name, key))
        return self.script(text, name + ".lua")

    def test_every_example_loads(self):
        names = sorted(f[:-4] for f in os.listdir(FAILURE_MODES) if f.endswith(".lua"))
        self.assertGreaterEqual(len(names), 9)
        for name in names:
            with self.subTest(example=name):
                m = self.start_mock("--script=" + self.example(name))
                self.assertTrue(m.alive())
                self.stop_mock(m)

    def answers(self, d, n):
        return [(r.status, r.text()) for r in (d.request() for _ in range(n))]

    def test_flapping(self):
        mock, d = self.scripted(self.example("flapping"))
        down = (500, "rpc error: code = Unavailable desc = flapping: down for a while")
        self.assertEqual(self.answers(d, 6),
                         [(200, "ok"), (200, "ok"), down, down, (200, "ok"), (200, "ok")])

    # The driver's clock starts before the sidecar's start-up, which takes
    # longer in instrumented builds and on a loaded machine: the first
    # phase must still be running when the first answer comes. If start-up
    # ate it, the pair is started again with a phase twice as long.

    def phased(self, name, key, seconds, *daemon_args):
        """(mock, d, t0, phase, first answer) of example name whose first
        phase (constant key) lasts long enough to be seen."""
        phase = h.scaled(seconds)
        for _ in range(4):
            t0 = time.monotonic()
            mock, d = self.scripted(self.example(name, **{key: phase}), *daemon_args)
            first = d.request()
            if time.monotonic() < t0 + phase:
                return mock, d, t0, phase, first
            self.stop_daemon(d)
            self.stop_mock(mock)
            phase *= 2
        self.fail("start-up never fit in a %s phase of %.1f s" % (name, phase))

    def until_phase_ends(self, d, first, limit):
        """Answers of d, asked every 50 ms from now, until one differs from
        first (or limit, a time.monotonic(), passes); returns them all. The
        driver's phase clock starts with the driver, somewhat after t0, so
        the change is waited for, not slept to."""
        answers = []
        while True:
            r = d.request()
            answers.append(r)
            if (r.status, r.body) != (first.status, first.body) or time.monotonic() > limit:
                return answers
            time.sleep(0.05)

    def test_slow_start(self):
        mock, d, t0, init, first = self.phased("slow_start", "INIT_SECONDS", 1.0)
        self.assertEqual((first.status, first.text()), (500, h.NOT_READY_BODY))
        answers = self.until_phase_ends(d, first, t0 + init + h.scaled(5))
        self.assertEqual((answers[-1].status, answers[-1].text()), (200, "ok"))
        # It stayed not ready for the whole phase (the driver started after t0).
        self.assertGreaterEqual(time.monotonic() - t0, init)

    def test_crash_loop(self):
        mock, d = self.scripted(self.example("crash_loop", CALLS=2))
        self.assertEqual(self.answers(d, 2), [(200, "ok"), (200, "ok")])
        r = d.request()
        self.assertEqual(r.status, 500)
        self.assertEqual(mock.wait(h.scaled(5)), 1)
        self.assert_answer(d, 500, h.CONNECT_FAIL_BODY)
        # A new driver on the same path: healthy again.
        self.start_mock()
        self.assert_answer(d, 200, "ok")

    def test_wedged(self):
        mock, d, t0, healthy, first = self.phased("wedged", "HEALTHY_SECONDS", 1.0,
                                                  "--probe-timeout=500ms")
        self.assertEqual((first.status, first.text()), (200, "ok"))
        answers = self.until_phase_ends(d, first, t0 + healthy + h.scaled(5))
        r = answers[-1]
        self.assertEqual((r.status, r.text()), (500, h.DEADLINE_BODY))
        self.assertGreaterEqual(time.monotonic() - t0, healthy)
        self.assertLess(r.elapsed, 0.5 + h.scaled(0.3))

    def test_stops_accepting(self):
        mock, d = self.scripted(self.example("stops_accepting", CALLS=2),
                                "--probe-timeout=500ms")
        self.assertEqual(self.answers(d, 2), [(200, "ok"), (200, "ok")])
        for _ in range(2):
            r = d.request()
            self.assertEqual(r.status, 500)
            self.assertLess(r.elapsed, 0.5 + h.scaled(0.3))
        self.assertTrue(mock.alive())
        self.assertTrue(os.path.exists(mock.socket_path))

    def test_vanishing_socket(self):
        mock, d = self.scripted(self.example("vanishing_socket", CALLS=2))
        self.assertEqual(self.answers(d, 2), [(200, "ok"), (200, "ok")])
        self.assertFalse(os.path.exists(mock.socket_path))
        self.assert_answer(d, 500, h.CONNECT_FAIL_BODY)

    def test_garbage(self):
        mock, d = self.scripted(self.example("garbage"))
        self.assertEqual(self.answers(d, 3), [(500, INVALID_BODY),
                                              (500, oversized_body(5 << 20)),
                                              (200, "ok")])

    def test_latency_spikes(self):
        mock, d = self.scripted(self.example("latency_spikes", EVERY=3))
        got = self.answers(d, 3)
        self.assertEqual(got, [(200, "ok"), (200, "ok"), (500, h.DEADLINE_BODY)])

    def test_info_unavailable(self):
        mock = self.start_mock("--script=" + self.example("info_unavailable", FAILURES=1))
        rc, out, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                       "--health-port=%d" % h.free_port())
        self.assertEqual(rc, 1)
        self.assertIn("identity service starting", err)
        d = self.start_daemon(csi=mock.socket_path)
        self.assert_answer(d, 200, "ok")


if __name__ == "__main__":
    unittest.main()
