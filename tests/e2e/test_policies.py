"""Custom Lua policies through the real binary.

DESIGN.md "Policy scripts" is the contract: loading (--policy, --check-policy),
the ctx API, the limits, fallback to the built-in policy, the worker process
and reload (file watch, ConfigMap ..data swap, SIGHUP). The hostile policies
are files in tests/e2e/policies/ (the library writes made from one
template there): each must end in the built-in policy's
answer, on time, logged and counted, and leave the daemon answering, idle and
no bigger than before.
"""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import lpharness as h

POLICIES = os.path.join(h.HERE, "policies")

# The library-write fixtures share one body (policies/library_write.lua.in):
# odd checks try the write, even checks verify the libraries. name: (what it
# does, for the header comment; the write statement).
LIBRARY_WRITE_TEMPLATE = os.path.join(POLICIES, "library_write.lua.in")
LIBRARY_WRITES = {
    "write_global": ("writes a global.", "x = 1"),
    "write_global_table": ("writes a global through _G.", "_G.x = 1"),
    "write_rawset_library": ("writes around the metatable with rawset.",
                             'rawset(string, "upper", nil)'),
    "write_setmetatable_library": ("removes the string library's metatable.",
                                   "setmetatable(string, nil)"),
    "write_string_field": ("replaces a string library function.", "string.upper = nil"),
    "write_string_metatable": ("edits the string metatable's __index.",
                               'getmetatable("").__index.upper = nil'),
    "write_through_load": ("writes from a chunk made with load.",
                           'load("string.upper = nil; x = 1")()'),
}

HEALTHY = (200, "ok")
NOT_READY = (500, h.NOT_READY_BODY)
FALLBACK_MSG = "Policy failed, answering with the built-in policy"
RELOADED_MSG = "Policy reloaded"
RELOAD_FAILED_MSG = "Policy reload failed, keeping the previous policy"

# DESIGN.md: a reload takes effect within 2 s.
RELOAD_WITHIN = 2.0
# A check that ends in fallback is answered by its deadline plus this.
LATE_MARGIN = 0.5
# Idle: the daemon and its worker together, as a share of one core.
IDLE_CPU = 0.05
# "Memory stays flat": RSS after vs. before, per process.
RSS_SLACK_KIB = 3 * 1024

# Set LP_POLICY_REPORT=1 to print one line per hostile run on stderr.
REPORT = bool(os.environ.get("LP_POLICY_REPORT"))


def versioned(tag):
    """A policy answering like the built-in one, with tag as its healthy body."""
    return ("local policy = {}\n"
            "function policy.check(ctx)\n"
            "  local r = ctx.probe()\n"
            "  if not r.ok then return false, r.error end\n"
            "  return true, %r\n"
            "end\n"
            "return policy\n" % tag).replace("'", '"')


COUNTER = ("local policy = {}\n"
           "function policy.check(ctx)\n"
           "  ctx.state.n = (ctx.state.n or 0) + 1\n"
           "  ctx.probe()\n"
           "  return true, tostring(ctx.state.n)\n"
           "end\n"
           "return policy\n")

# Line 4 does not parse.
SYNTAX_ERROR = ("local policy = {}\n"
                "function policy.check(ctx)\n"
                "  local r = ctx.probe()\n"
                "  return r.ok,, 'x'\n"
                "end\n"
                "return policy\n")


class PolicyCase(h.LPTestCase):
    """Helpers shared by the policy tests."""

    def write(self, text, name="policy.lua", directory=None):
        return self.write_file(name, text, directory)

    def hostile_fixture(self, name):
        """The path of hostile fixture name: a file in POLICIES, or a library
        write rendered from its template into the test's directory."""
        if name not in LIBRARY_WRITES:
            return os.path.join(POLICIES, name + ".lua")
        what, statement = LIBRARY_WRITES[name]
        with open(LIBRARY_WRITE_TEMPLATE) as f:
            text = f.read()
        # The template's own two-line header says how it is filled in.
        text = text.split("\n", 2)[2].replace("@WHAT@", what).replace("@WRITE@", statement)
        return self.write(text, name + ".lua")

    def policy_daemon(self, policy, *args, mock=None, mock_args=(), wait=True, env=None):
        """A daemon running policy, serving /healthz and /metrics on one port."""
        if mock is None:
            mock = self.start_mock(*mock_args)
        port = h.free_port()
        d = self.start_daemon("--http-endpoint=127.0.0.1:%d" % port,
                              "--policy=" + policy, *args, csi=mock.socket_path,
                              port=port, health_port_flag=False, cwd=self.tmp,
                              wait=wait, env=env)
        return mock, d

    def metrics(self, d):
        r = d.request(path="/metrics")
        self.assertEqual(r.status, 200)
        return h.parse_metrics(r.text())

    def klog(self, d, message):
        """The key/values of every log line of d whose message is message."""
        out = []
        for line in d.log_lines():
            p = h.parse_klog(line)
            if p and p[1] == message:
                out.append(p[2])
        return out

    def fallbacks(self, d):
        return self.klog(d, FALLBACK_MSG)

    def assertMentions(self, text, want):
        """text contains want (a string), or one of want (a tuple)."""
        alternatives = want if isinstance(want, tuple) else (want,)
        self.assertTrue(any(w in text for w in alternatives),
                        "%r not found in %r" % (want, text))

    def assertGone(self, pid, within=2.0):
        """Process pid (a worker the daemon killed) is gone, reaped: it may
        take a moment to die, and the daemon reaps it from a timer."""
        h.wait_until(lambda: not os.path.exists("/proc/%d" % pid), within)
        self.assertFalse(os.path.exists("/proc/%d" % pid), "killed worker %d still exists" % pid)

    def worker_pid(self, d):
        """The daemon's one worker; waits for it (a worker that died soon after
        it started is restarted after a delay of 100 ms or more)."""
        h.wait_until(lambda: len(h.child_pids(d.pid)) == 1, 3)
        kids = h.child_pids(d.pid)
        self.assertEqual(len(kids), 1, "want exactly one policy worker, got %s" % kids)
        return kids[0]

    def wait_body(self, d, body, within, since=None):
        """Asks /healthz until it answers body; returns the seconds it took."""
        since = time.monotonic() if since is None else since
        deadline = since + h.scaled(within) + 1.0
        last = None
        while time.monotonic() < deadline:
            last = d.request()
            if last.body == body.encode():
                return time.monotonic() - since
            time.sleep(0.05)
        self.fail("/healthz never answered %r (last %r); stderr tail:\n%s"
                  % (body, last, d.stderr()[-2000:]))

    def wait_count(self, d, message, n, within):
        """Waits until message has been logged n times; returns its key/values."""
        deadline = time.monotonic() + h.scaled(within)
        while True:
            lines = self.klog(d, message)
            if len(lines) >= n or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(len(lines), n, "%r logged %d times, want %d; stderr:\n%s"
                                % (message, len(lines), n, d.stderr()[-2000:]))
        return lines


# ---------------------------------------------------------------------------
# Loading

# name: (source, text the error must contain, or a tuple of alternatives);
# the file is written as NAME.lua.
BAD_POLICIES = {
    "syntax": (SYNTAX_ERROR, "syntax.lua:4:"),
    "number": ("return 42\n",
               "number.lua: the policy must return a table with a check function, got number"),
    "nocheck": ("return { chek = function(ctx) return true end }\n",
                "nocheck.lua:1: the policy table has no check function (check is nil)"),
    "checknumber": ("return { check = 1 }\n",
                    "checknumber.lua:1: the policy table has no check function (check is number)"),
    "readynumber": ("local p = { check = function(ctx) return true end }\n"
                    "p.ready = 7\nreturn p\n",
                    "readynumber.lua:3: the policy's ready must be a function, got number"),
    "startuptable": ("return { check = function(ctx) return true end,\n"
                     "         startup = {} }\n",
                     "startuptable.lua:2: the policy's startup must be a function, got table"),
    "nothing": ("local policy = {}\n", "nothing.lua: the chunk returned nothing"),
    "raises": ("local policy = {}\nerror('boom at load')\nreturn policy\n",
               "raises.lua:2: boom at load"),
    "writes": ("string.upper = nil\nreturn { check = function(ctx) return true end }\n",
               "writes.lua:1: attempt to write 'upper' in a read-only table"),
    # The budget stops it, or (a slow run: valgrind) the 1 s load deadline.
    "loops": ("while true do end\nreturn { check = function(ctx) return true end }\n",
              ("loops.lua: loading exceeded the instruction limit",
               "loops.lua: loading ran out of time")),
}


class LoadTest(PolicyCase):
    """A policy that does not load stops the daemon at start (exit 1)."""

    def start_bad(self, name):
        source, _ = BAD_POLICIES[name]
        path = self.write(source, name + ".lua")
        # No driver: the policy is loaded before the driver is waited for.
        return self.run_daemon("--csi-address=" + self.sock_path(),
                               "--health-port=%d" % h.free_port(), "--policy=" + path)

    def test_bad_policies_exit_1(self):
        for name, (_, want) in sorted(BAD_POLICIES.items()):
            with self.subTest(policy=name):
                start = time.monotonic()
                rc, out, err = self.start_bad(name)
                self.assertEqual(rc, 1, err)
                self.assertMentions(err, want)
                lines = [p for p in map(h.parse_klog, err.splitlines())
                         if p and p[1] == "Cannot load the policy"]
                self.assertEqual(len(lines), 1, err)
                self.assertEqual(lines[0][0], "E")
                self.assertMentions(lines[0][2]["err"], want)
                self.assertLess(time.monotonic() - start, h.scaled(5))

    def test_missing_file_exits_1(self):
        path = os.path.join(self.tmp, "absent.lua")
        rc, out, err = self.run_daemon("--csi-address=" + self.sock_path(),
                                       "--health-port=%d" % h.free_port(),
                                       "--policy=" + path)
        self.assertEqual(rc, 1, err)
        self.assertIn(path + ": No such file or directory", err)

    def test_runaway_in_c_at_load_exits_1(self):
        # The top level runs inside C for seconds: the worker is given a few
        # seconds to load, then killed, and the daemon exits.
        # 300 characters: minutes of matching (150 takes ~8 s, too close to the 5 s guard).
        path = self.write('string.find(("a"):rep(300), ".-.-.-.-b")\n'
                          "return { check = function(ctx) return true end }\n",
                          "slowload.lua")
        start = time.monotonic()
        rc, out, err = self.run_daemon("--csi-address=" + self.sock_path(),
                                       "--health-port=%d" % h.free_port(),
                                       "--policy=" + path, timeout=h.scaled(8))
        self.assertEqual(rc, 1, err)
        self.assertIn("slowload.lua: loading did not finish", err)
        self.assertLess(time.monotonic() - start, h.scaled(5))

    def test_good_policy_starts(self):
        path = self.write(versioned("custom ok"))
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "custom ok")
        self.assertEqual(len(h.child_pids(d.pid)), 1)


class CheckPolicyTest(PolicyCase):
    """--check-policy validates a file and exits, with no driver anywhere."""

    def test_good_file(self):
        path = self.write(versioned("v1"))
        rc, out, err = self.run_daemon("--check-policy=" + path)
        self.assertEqual(rc, 0, err)
        self.assertIn(path + ": policy loads", err)

    def test_bad_files_same_messages_as_policy(self):
        for name, (source, want) in sorted(BAD_POLICIES.items()):
            with self.subTest(policy=name):
                path = self.write(source, name + ".lua")
                rc, out, err = self.run_daemon("--check-policy=" + path)
                self.assertEqual(rc, 1, err)
                self.assertMentions(err, want)
                if isinstance(want, tuple) and h.WRAPPER:
                    continue  # timing decides the text; the wrapper slows one side only
                # The very text --policy logs as err=.
                rc2, _, err2 = self.run_daemon("--csi-address=" + self.sock_path(),
                                               "--health-port=%d" % h.free_port(),
                                               "--policy=" + path)
                self.assertEqual(rc2, 1)
                logged = [p[2]["err"] for p in map(h.parse_klog, err2.splitlines())
                          if p and p[1] == "Cannot load the policy"]
                self.assertEqual(logged, [err.strip()])

    def test_runaway_in_c_at_load(self):
        # No hook stops the top level inside C: a timer ends the check.
        # 300 characters: minutes of matching (150 takes ~8 s, too close to the 5 s guard).
        path = self.write('string.find(("a"):rep(300), ".-.-.-.-b")\n'
                          "return { check = function(ctx) return true end }\n",
                          "slowload.lua")
        start = time.monotonic()
        rc, out, err = self.run_daemon("--check-policy=" + path, timeout=h.scaled(10))
        self.assertEqual(rc, 1, err)
        self.assertIn("loading did not finish", err)
        self.assertLess(time.monotonic() - start, h.scaled(6))

    def test_check_policy_wins_over_policy(self):
        good = self.write(versioned("v1"), "good.lua")
        bad = self.write(SYNTAX_ERROR, "bad.lua")
        rc, out, err = self.run_daemon("--policy=" + bad, "--check-policy=" + good)
        self.assertEqual(rc, 0, err)

    def test_hostile_fixtures_fail_their_check(self):
        # Every hostile fixture loads (it is hostile at check time, not at
        # load time), and --check-policy runs check(ctx) too: each is
        # caught, the case and file:line named, exit 1.
        for name in sorted(HOSTILE):
            with self.subTest(policy=name):
                path = self.hostile_fixture(name)
                rc, out, err = self.run_daemon("--check-policy=" + path,
                                               timeout=h.scaled(12))
                self.assertEqual(rc, 1, err)
                self.assertIn(path + ": policy loads", err)
                self.assertRegex(err, re.escape(path) + r"(:\d+)?: check\(ctx\) (fails on|on) "
                                 r"the '[^']+' probe result")


# ---------------------------------------------------------------------------
# The ctx API

class CtxTest(PolicyCase):

    def test_probe_timeout_argument(self):
        path = self.write("local policy = {}\n"
                          "function policy.check(ctx)\n"
                          "  local r = ctx.probe(0.2)\n"
                          "  return r.ok, r.error\n"
                          "end\n"
                          "return policy\n")
        mock, d = self.policy_daemon(path, mock_args=["--probe-delay=500ms"])
        for _ in range(2):
            r = d.request()
            self.assertHealthz(r, 500, h.DEADLINE_BODY)
            self.assertAtDeadline(r, 0.2)

    def probe_arg_policy(self, arg):
        return self.write("local policy = {}\n"
                          "function policy.check(ctx)\n"
                          "  local r = ctx.probe(%s)\n"
                          "  if not r.ok then return false, r.error end\n"
                          "  return true, 'probed'\n"
                          "end\n"
                          "return policy\n" % arg, "probe_arg.lua")

    def assertProbeCappedByCheck(self, arg):
        """ctx.probe(arg) of a hanging driver ends at the 300 ms check deadline."""
        mock, d = self.policy_daemon(self.probe_arg_policy(arg), "--check-timeout=300ms",
                                     mock_args=["--probe-hang"])
        r = d.request()
        self.assertHealthz(r, 500, h.DEADLINE_BODY)
        self.assertAtDeadline(r, 0.3)
        self.assertEqual(self.fallbacks(d), [])
        self.stop_daemon(d)
        self.stop_mock(mock)

    def test_probe_timeout_longer_than_check_is_capped(self):
        # DESIGN.md: a probe's deadline is the smaller of its timeout and
        # what is left of the check; any timeout, however large.
        for arg in ("100", "1e10", "math.huge"):
            with self.subTest(timeout=arg):
                self.assertProbeCappedByCheck(arg)
                mock, d = self.policy_daemon(self.probe_arg_policy(arg))
                self.assertHealthz(d.request(), 200, "probed")
                self.assertEqual(mock.calls(), 1)
                self.stop_daemon(d)

    def test_probe_timeout_not_positive_means_the_default(self):
        # 0, a negative number or NaN: the --probe-timeout applies (here
        # capped by the check), and the policy's verdict stands.
        for arg in ("0", "-1", "0/0"):
            with self.subTest(timeout=arg):
                self.assertProbeCappedByCheck(arg)

    def test_status_and_body(self):
        path = self.write("local policy = {}\n"
                          "local answers = {\n"
                          "  { true, 'fine', 203 },\n"
                          "  { true },\n"
                          "  { false },\n"
                          "  { false, 'gone', 410 },\n"
                          "  { true, 'fine again' },\n"
                          "  { false, 'nope', nil },\n"
                          "  { true, nil, 299 },\n"
                          "}\n"
                          "function policy.check(ctx)\n"
                          "  ctx.state.n = (ctx.state.n or 0) + 1\n"
                          "  return table.unpack(answers[ctx.state.n], 1, 3)\n"
                          "end\n"
                          "return policy\n")
        mock, d = self.policy_daemon(path)
        want = [(203, "fine"), (200, "ok"), (500, "unhealthy"), (410, "gone"),
                (200, "fine again"), (500, "nope"), (299, "ok")]
        for status, body in want:
            r = d.request()
            self.assertHealthz(r, status, body)
            self.assertEqual(r.header("Content-Type"), h.TEXT_TYPE)
        self.assertEqual(self.fallbacks(d), [])
        # A policy that makes no probe makes none.
        self.assertEqual(mock.calls(), 0)

    def test_body_bytes_kept(self):
        # A body is a Lua string: any bytes, NUL included, reach the client.
        path = self.write("return { check = function(ctx)\n"
                          "  return true, 'a\\0b\\255c' .. string.rep('x', 3)\n"
                          "end }\n")
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, b"a\x00b\xffcxxx")

    def test_status_204(self):
        # HTTP forbids content (and Content-Length) in a 204: the body the
        # policy gave cannot go on the wire, or a client reusing the
        # connection reads it as the start of the next response.
        path = self.write("return { check = function(ctx) return true, 'fine', 204 end }\n")
        mock, d = self.policy_daemon(path)
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        data = h.exchange(d.port, req + req[:-2] + b"Connection: close\r\n\r\n")
        first, _, rest = data.partition(b"\r\n\r\n")
        self.assertTrue(first.startswith(b"HTTP/1.1 204 "), data)
        self.assertNotIn(b"content-length: 4", first.lower(), data)
        self.assertTrue(rest.startswith(b"HTTP/1.1 204 "),
                        "bytes after a 204's header block: %r" % data)

    def test_state_survives_between_checks(self):
        mock, d = self.policy_daemon(self.write(COUNTER))
        for n in (1, 2, 3):
            self.assertHealthz(d.request(), 200, str(n))

    def test_state_kept_after_fallback(self):
        # DESIGN.md: after a fallback, ctx.state is left as the policy left it.
        path = self.write("local policy = {}\n"
                          "function policy.check(ctx)\n"
                          "  ctx.state.n = (ctx.state.n or 0) + 1\n"
                          "  if ctx.state.n == 2 then error('second check fails') end\n"
                          "  ctx.probe()\n"
                          "  return true, tostring(ctx.state.n)\n"
                          "end\n"
                          "return policy\n")
        mock, d = self.policy_daemon(path)
        for body in ("1", "ok", "3", "4"):
            self.assertHealthz(d.request(), 200, body)
        self.assertEqual([kv["reason"] for kv in self.fallbacks(d)], ["error"])

    def test_history(self):
        path = self.write("local policy = {}\n"
                          "function policy.check(ctx)\n"
                          "  local h, good = ctx.history, true\n"
                          "  for i, r in ipairs(h) do\n"
                          "    good = good and r.ok == true and r.code == 'OK'\n"
                          "      and r.at < ctx.now() and (i == 1 or h[i - 1].at <= r.at)\n"
                          "  end\n"
                          "  ctx.probe()\n"
                          "  return true, #h .. ' ' .. tostring(good)\n"
                          "end\n"
                          "return policy\n")
        mock, d = self.policy_daemon(path)
        for i in range(20):
            self.assertHealthz(d.request(), 200, "%d true" % min(i, 16))

    def test_driver(self):
        path = self.write("return { check = function(ctx)\n"
                          "  return true, ctx.driver.name .. ' ' .. ctx.driver.vendor_version\n"
                          "end }\n")
        mock, d = self.policy_daemon(path, mock_args=[
            "--name=policy-test.csi.example.org", "--vendor-version=2.5.1"])
        self.assertHealthz(d.request(), 200, "policy-test.csi.example.org 2.5.1")
        mock2, d2 = self.policy_daemon(path, mock=self.start_mock(path=self.sock_path("b.sock")))
        self.assertHealthz(d2.request(), 200, h.MOCK_NAME + " 0.1.0")

    def test_sleep_then_probe(self):
        path = self.write("local policy = {}\n"
                          "function policy.check(ctx)\n"
                          "  local t0, left0 = ctx.now(), ctx.deadline()\n"
                          "  ctx.sleep(0.3)\n"
                          "  local r = ctx.probe()\n"
                          "  return r.ok, string.format('%.2f %.2f', ctx.now() - t0,\n"
                          "                             left0 - ctx.deadline())\n"
                          "end\n"
                          "return policy\n")
        mock, d = self.policy_daemon(path, "--check-timeout=2s")
        r = d.request()
        self.assertEqual(r.status, 200, r)
        slept, spent = map(float, r.text().split())
        self.assertAlmostEqual(slept, 0.3, delta=h.scaled(0.05))
        self.assertAlmostEqual(spent, 0.3, delta=h.scaled(0.05))
        self.assertAtDeadline(r, 0.3)
        self.assertEqual(mock.calls(), 1)

    def deadline_left(self, *args):
        path = self.write("return { check = function(ctx)\n"
                          "  return true, string.format('%.6f', ctx.deadline())\n"
                          "end }\n", "deadline.lua")
        mock, d = self.policy_daemon(path, *args)
        r = d.request()
        self.assertEqual(r.status, 200, r)
        self.stop_daemon(d)
        self.stop_mock(mock)
        return float(r.text())

    def test_deadline(self):
        left = self.deadline_left("--check-timeout=2s")
        self.assertLess(left, 2.0)
        self.assertGreater(left, 2.0 - h.scaled(0.1))
        # The check timeout defaults to the probe timeout.
        left = self.deadline_left("--probe-timeout=3s")
        self.assertLess(left, 3.0)
        self.assertGreater(left, 3.0 - h.scaled(0.1))
        left = self.deadline_left()
        self.assertLess(left, 1.0)
        self.assertGreater(left, 1.0 - h.scaled(0.1))

    def test_log(self):
        path = self.write("local policy = {}\n"
                          "function policy.check(ctx)\n"
                          "  ctx.log('error', 'x')\n"
                          "  ctx.log('warning', 'careful')\n"
                          "  ctx.log('info', 'fyi')\n"
                          "  ctx.log(4, 'verbose four')\n"
                          "  ctx.log(5, 'verbose five')\n"
                          "  return true\n"
                          "end\n"
                          "return policy\n")
        mock, d = self.policy_daemon(path, "-v=4")
        self.assertHealthz(d.request(), 200, "ok")
        got = {}
        deadline = time.monotonic() + h.scaled(2)
        while len(got) < 4 and time.monotonic() < deadline:
            for line in d.log_lines():
                m = h.KLOG_RE.match(line)
                if m and m.group(5).startswith("policy.lua:"):
                    got[h.parse_klog(line)[1]] = (m.group(1), m.group(5))
            time.sleep(0.02)
        self.assertEqual(got, {"x": ("E", "policy.lua:3"),
                               "careful": ("W", "policy.lua:4"),
                               "fyi": ("I", "policy.lua:5"),
                               "verbose four": ("I", "policy.lua:6")})
        self.assertIn("x", [l[1] for l in map(h.parse_klog, self.error_lines(d)) if l])

    def test_retries_are_more_calls(self):
        path = self.write("local policy = {}\n"
                          "function policy.check(ctx)\n"
                          "  local r\n"
                          "  for i = 1, 3 do r = ctx.probe() end\n"
                          "  if not r.ok then return false, r.error end\n"
                          "  return true, 'three'\n"
                          "end\n"
                          "return policy\n")
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "three")
        self.assertEqual(mock.calls(), 3)
        self.assertHealthz(d.request(), 200, "three")
        self.assertEqual(mock.calls(), 6)
        mock2, d2 = self.policy_daemon(path, mock=self.start_mock(
            "--probe-code=Unavailable", "--probe-message=down", path=self.sock_path("u.sock")))
        self.assertHealthz(d2.request(), 500, "rpc error: code = Unavailable desc = down")
        self.assertEqual(mock2.calls(), 3)

    def test_probe_result_fields(self):
        path = self.write("local policy = {}\n"
                          "function policy.check(ctx)\n"
                          "  local r = ctx.probe(0.3)\n"
                          "  local f = {}\n"
                          "  for _, k in ipairs({ 'ok', 'ready', 'code', 'message', 'error',\n"
                          "                       'connected' }) do\n"
                          "    f[#f + 1] = tostring(r[k])\n"
                          "  end\n"
                          "  f[#f + 1] = type(r.seconds) .. ' ' .. type(r.at)\n"
                          "  return true, table.concat(f, '|')\n"
                          "end\n"
                          "return policy\n")
        cases = [
            ([], "true|nil|OK||nil|true|number number"),
            (["--ready=true"], "true|true|OK||nil|true|number number"),
            (["--ready=false"], "true|false|OK||nil|true|number number"),
            (["--probe-code=FailedPrecondition", "--probe-message=plugin not healthy"],
             "false|nil|FAILED_PRECONDITION|plugin not healthy|"
             "rpc error: code = FailedPrecondition desc = plugin not healthy|true|number number"),
            (["--probe-hang"],
             "false|nil|DEADLINE_EXCEEDED|context deadline exceeded|%s|true|number number"
             % h.DEADLINE_BODY),
        ]
        for i, (args, want) in enumerate(cases):
            with self.subTest(mock=args):
                mock = self.start_mock(*args, path=self.sock_path("f%d.sock" % i))
                mock, d = self.policy_daemon(path, mock=mock)
                self.assertHealthz(d.request(), 200, want)
                if not args:
                    # Driver gone (socket removed): no connection in time.
                    self.stop_mock(mock)
                    self.assertHealthz(d.request(), 200,
                                       "false|nil|UNAVAILABLE|context deadline exceeded|"
                                       "context deadline exceeded|false|number number")
                self.stop_daemon(d)


# ---------------------------------------------------------------------------
# Limits

class LimitsTest(PolicyCase):

    def fallback_reasons(self, d):
        return [kv["reason"] for kv in self.fallbacks(d)]

    def test_memory_limit_flag(self):
        path = self.write("return { check = function(ctx)\n"
                          "  local s = string.rep('x', 2 * 1024 * 1024)\n"
                          "  return #s > 0, 'big'\n"
                          "end }\n")
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "big")
        mock2, d2 = self.policy_daemon(path, "--policy-memory-limit=1Mi", mock=self.start_mock(
            "--ready=false", path=self.sock_path("b.sock")))
        self.assertHealthz(d2.request(), *NOT_READY)
        self.assertEqual(self.fallback_reasons(d2), ["memory"])

    def test_instruction_limit_flag(self):
        path = self.write("return { check = function(ctx)\n"
                          "  local n = 0\n"
                          "  for i = 1, 100000 do n = n + i end\n"
                          "  return true, 'counted'\n"
                          "end }\n")
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "counted")
        mock2, d2 = self.policy_daemon(path, "--policy-instruction-limit=10000",
                                       mock=self.start_mock(path=self.sock_path("b.sock")))
        self.assertHealthz(d2.request(), 200, "ok")
        self.assertEqual(self.fallback_reasons(d2), ["instructions"])

    def test_check_deadline_stops_a_loop(self):
        # With a budget too large to matter, the check deadline stops the loop.
        path = os.path.join(POLICIES, "infinite_loop.lua")
        mock, d = self.policy_daemon(path, "--policy-instruction-limit=1000000000000",
                                     "--check-timeout=500ms", mock_args=["--ready=false"])
        r = d.request()
        self.assertHealthz(r, *NOT_READY)
        self.assertGreater(r.elapsed, 0.5 - h.scaled(0.05))
        self.assertLess(r.elapsed, 0.5 + h.scaled(LATE_MARGIN))
        self.assertEqual(self.fallback_reasons(d), ["timeout"])
        self.assertLess(h.cpu_share(d.pid, 1.0), IDLE_CPU)


# ---------------------------------------------------------------------------
# Hostile policies

# name: (fallback reasons allowed, text the logged err must contain,
#        whether every check falls back, whether the worker must be killed).
# The library-write fixtures fall back on odd checks and verify the libraries
# on even ones.
# A bomb fills the memory cap well within the check deadline, except in the
# sanitizer build, where allocation is slow enough (on a busy CI machine)
# for the deadline to come first: both end the check by fallback.
BOMB_REASONS = {"memory", "timeout"} if h.SANITIZED else {"memory"}
BOMB_ERRORS = ("not enough memory", "ran out of time") if h.SANITIZED else ("not enough memory",)
HOSTILE = {
    "infinite_loop": ({"instructions", "timeout"}, "infinite_loop.lua:", True, False),
    "pcall_loop": ({"instructions", "timeout"}, "pcall_loop.lua:", True, False),
    "sleep_loop": ({"timeout"}, "ctx.sleep() would cross the check deadline", True, False),
    "string_bomb": (BOMB_REASONS, BOMB_ERRORS, True, False),
    "table_bomb": (BOMB_REASONS, BOMB_ERRORS, True, False),
    "deep_recursion": ({"memory", "error"}, "deep_recursion.lua:", True, False),
    "os_execute": ({"error"}, "attempt to index a nil value (global 'os')", True, False),
    "io_open": ({"error"}, "attempt to index a nil value (global 'io')", True, False),
    "require_module": ({"error"}, "attempt to call a nil value (global 'require')", True,
                       False),
    "binary_chunk": ({"error"}, "attempt to load a binary chunk", True, False),
    "debug_access": ({"error"}, "attempt to index a nil value (global 'debug')", True, False),
    "coroutine_access": ({"error"}, "attempt to index a nil value (global 'coroutine')",
                         True, False),
    "gc_finalizer": ({"error"}, "__gc metamethods are not allowed", True, False),
    "xpcall_handler_loop": ({"instructions", "timeout"}, "xpcall_handler_loop.lua:", True,
                            False),
    "error_table": ({"error"}, "(error object is a table value)", True, False),
    "error_tostring_loop": ({"error"}, "(error object is a table value)", True, False),
    "error_nil": ({"error"}, "(error object is a nil value)", True, False),
    "sort_yield": ({"error"}, "attempt to yield across a C-call boundary", True, False),
    "return_nothing": ({"return"}, "check must return a boolean first, got nothing", True,
                       False),
    "return_string_first": ({"return"}, "check must return a boolean first, got string",
                            True, False),
    "status_out_of_range": ({"return"}, "check's status must be an integer in", True, False),
    "pathological_pattern": ({"timeout"}, "policy worker killed", True, True),
    "probe_then_loop": ({"instructions", "timeout"}, "probe_then_loop.lua:", True, False),
    "probe_then_pattern": ({"timeout"}, "policy worker killed", True, True),
    "write_string_field": ({"error"}, "attempt to write 'upper' in a read-only table", False,
                           False),
    "write_global_table": ({"error"}, "attempt to write 'x' in a read-only table", False,
                           False),
    "write_global": ({"error"}, "attempt to write 'x' in a read-only table", False, False),
    "write_string_metatable": ({"error"}, "attempt to index a nil value (field '__index')",
                               False, False),
    "write_setmetatable_library": ({"error"}, "cannot change a protected metatable", False,
                                   False),
    "write_rawset_library": ({"error"}, "attempt to call a nil value (global 'rawset')",
                             False, False),
    "write_through_load": ({"error"}, "attempt to write 'upper' in a read-only table", False,
                           False),
}

CHECK_TIMEOUT = 1.0
# One hostile check, then this many more.
MORE_CHECKS = 3


class HostileTest(PolicyCase):
    """Each fixture against a healthy and a not-ready driver, side by side."""

    def test_every_fixture_is_listed(self):
        files = {os.path.basename(p)[:-4] for p in glob.glob(os.path.join(POLICIES, "*.lua"))}
        self.assertEqual(files | set(LIBRARY_WRITES), set(HOSTILE))
        self.assertEqual(files & set(LIBRARY_WRITES), set())

    def run_hostile(self, name):
        reasons, err_text, every, kills = HOSTILE[name]
        path = self.hostile_fixture(name)
        runs = []
        for label, mock_args, want in (("ready", [], HEALTHY),
                                       ("not-ready", ["--ready=false"], NOT_READY)):
            mock = self.start_mock(*mock_args, path=self.sock_path(label + ".sock"))
            mock, d = self.policy_daemon(path, "--probe-timeout=1s",
                                         "--check-timeout=%gs" % CHECK_TIMEOUT, mock=mock)
            worker = self.worker_pid(d)
            runs.append({"label": label, "mock": mock, "d": d, "want": want,
                         "worker": worker,
                         "rss": (h.rss_kib_of(d.pid), h.rss_kib_of(worker))})

        def exercise(i):
            return [runs[i]["d"].request() for _ in range(1 + MORE_CHECKS)]

        results = h.run_parallel(exercise, len(runs), timeout=60)
        # A killed worker is reaped a moment after its kill (the loop does
        # not wait for it); its whole life's CPU then shows up in the
        # daemon's children's time, so idleness is measured once it is gone.
        # A worker started again after a kill (at once, in the background)
        # spends its start-up (tens of ms in the sanitizer build) loading the
        # policy: idleness is what follows, once it waits for its next frame.
        for run in runs:
            wait_reaped(run["d"].pid, 2.0)
            wait_worker_waiting(run["d"].pid, 3.0)
        cpu = h.cpu_share([run["d"].pid for run in runs], 1.0)
        bound = CHECK_TIMEOUT + h.scaled(LATE_MARGIN)
        for run, responses in zip(runs, results):
            d, mock = run["d"], run["mock"]
            with self.subTest(driver=run["label"]):
                if isinstance(responses, Exception):
                    raise responses
                status, body = run["want"]
                # The hostile check itself.
                first = responses[0]
                self.assertHealthz(first, status, body)
                self.assertLessEqual(first.elapsed, bound, first)
                logged = self.fallbacks(d)
                self.assertGreaterEqual(len(logged), 1, d.stderr()[-2000:])
                self.assertIn(logged[0]["reason"], reasons, logged[0])
                self.assertMentions(logged[0]["err"], err_text)
                # And after it: still the built-in policy's answers, on time.
                for r in responses[1:]:
                    self.assertHealthz(r, status, body)
                    self.assertLessEqual(r.elapsed, bound, r)
                checks = len(responses)
                self.assertEqual(len(logged), checks if every else (checks + 1) // 2)
                for kv in logged:
                    self.assertIn(kv["reason"], reasons, kv)
                # Exactly one Probe per check: the fallback reuses the
                # policy's probe, or makes the only one.
                self.assertEqual(mock.calls(), checks)
                m = self.metrics(d)
                counted = {k: v for k, v in m.items()
                           if k.startswith("livenessprobe_policy_fallbacks_total{")}
                want_counts = {}
                for kv in logged:
                    key = 'livenessprobe_policy_fallbacks_total{reason="%s"}' % kv["reason"]
                    want_counts[key] = want_counts.get(key, 0) + 1
                self.assertEqual(counted, want_counts)
                result = "healthy" if status == 200 else "unhealthy"
                self.assertEqual(m['livenessprobe_checks_total{result="%s"}' % result], checks)
                # The worker: the same one, or (runaway inside C) a new one,
                # the old one gone.
                worker = self.worker_pid(d)
                if kills:
                    self.assertNotEqual(worker, run["worker"])
                    self.assertGone(run["worker"])
                else:
                    self.assertEqual(worker, run["worker"])
                rss_after = (h.rss_kib_of(d.pid), h.rss_kib_of(worker))
                if REPORT:
                    sys.stderr.write(
                        "\nREPORT %s %s: %s %r first=%.3fs max=%.3fs reason=%s cpu=%.3f "
                        "rss daemon %d->%d worker %d->%d kB\n"
                        % (name, run["label"], first.status, first.body, first.elapsed,
                           max(r.elapsed for r in responses), logged[0]["reason"], cpu,
                           run["rss"][0], rss_after[0], run["rss"][1], rss_after[1]))
                if h.RSS_MEANINGFUL:
                    self.assertLessEqual(rss_after[0] - run["rss"][0], RSS_SLACK_KIB,
                                         "daemon RSS grew (kB)")
                    self.assertLessEqual(rss_after[1] - run["rss"][1], RSS_SLACK_KIB,
                                         "worker RSS grew (kB): %d -> %d"
                                         % (run["rss"][1], rss_after[1]))
        self.assertLess(cpu, IDLE_CPU, "daemons + workers not idle after %s" % name)
        # The daemons ran in self.tmp: nothing a policy tried to create is there.
        self.assertEqual(glob.glob(os.path.join(self.tmp, "pwned*")), [])


def wait_reaped(pid, within):
    """Waits (on the condition) until process pid has no child left unreaped."""
    deadline = time.monotonic() + h.scaled(within)
    while h.zombie_children(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def wait_worker_waiting(pid, within):
    """Waits (on the condition) until pid has one child, asleep with its CPU
    time unchanged over 50 ms: a loaded worker blocked on its socket."""
    deadline = time.monotonic() + h.scaled(within)
    while time.monotonic() < deadline:
        kids = h.child_pids(pid)
        if len(kids) == 1:
            before = h.cpu_ticks(kids[0])
            time.sleep(0.05)
            if (h.process_state(kids[0]) == "S" and before is not None
                    and h.cpu_ticks(kids[0]) == before):
                return
        else:
            time.sleep(0.01)


def _hostile_test(name):
    def test(self):
        self.run_hostile(name)
    test.__doc__ = "hostile policy %s.lua" % name
    return test


for _name in HOSTILE:
    setattr(HostileTest, "test_" + _name, _hostile_test(_name))


# ---------------------------------------------------------------------------
# The worker process

class WorkerTest(PolicyCase):

    def test_worker_killed_while_idle_is_replaced(self):
        path = self.write(versioned("custom"))
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "custom")
        old = self.worker_pid(d)
        os.kill(old, signal.SIGKILL)
        time.sleep(0.2)
        self.assertHealthz(d.request(), 200, "custom")
        new = self.worker_pid(d)
        self.assertNotEqual(new, old)
        self.assertHealthz(d.request(), 200, "custom")

    def killed_mid_check(self, mock_args, policy_text, *args):
        path = self.write(policy_text)
        mock, d = self.policy_daemon(path, "--check-timeout=2s", *args, mock_args=mock_args)
        old = self.worker_pid(d)
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", d.request()))
        t.start()
        time.sleep(0.2)
        os.kill(old, signal.SIGKILL)
        t.join(10)
        # The built-in policy answers; the death is the reason given.
        self.assertHealthz(result["r"], *HEALTHY)
        self.assertLess(result["r"].elapsed, 2.0 + h.scaled(LATE_MARGIN))
        reasons = [kv["reason"] for kv in self.fallbacks(d)]
        self.assertEqual(reasons, ["crash"], self.fallbacks(d))
        self.assertEqual(self.metrics(d).get(
            'livenessprobe_policy_fallbacks_total{reason="crash"}'), 1)
        self.assertNotEqual(self.worker_pid(d), old)

    def test_worker_killed_during_sleep(self):
        # The worker dies while the daemon holds the turn (a ctx.sleep).
        self.killed_mid_check([], "return { check = function(ctx)\n"
                                  "  ctx.sleep(0.5)\n"
                                  "  return true, 'slept'\n"
                                  "end }\n")

    def test_worker_killed_during_probe(self):
        # The worker dies while the daemon holds the turn (a slow Probe).
        self.killed_mid_check(["--probe-delay=500ms"], versioned("probed"))

    def test_worker_killed_running_lua(self):
        # The worker dies while it runs Lua (a loop the budget allows).
        self.killed_mid_check([], "return { check = function(ctx)\n"
                                  "  local t = ctx.now()\n"
                                  "  while ctx.now() - t < 0.5 do end\n"
                                  "  return true, 'spun'\n"
                                  "end }\n", "--policy-instruction-limit=1000000000000")

    def test_concurrent_requests_share_one_fallback(self):
        path = os.path.join(POLICIES, "pathological_pattern.lua")
        mock, d = self.policy_daemon(path, "--check-timeout=1s", mock_args=["--ready=false"])
        results = h.run_parallel(lambda i: d.request(), 10)
        for r in results:
            self.assertNotIsInstance(r, Exception)
            self.assertHealthz(r, *NOT_READY)
            self.assertLess(r.elapsed, 1.0 + h.scaled(LATE_MARGIN))
        self.assertEqual(mock.calls(), 1)
        self.assertEqual(len(self.fallbacks(d)), 1)

    def test_respawn_never_stalls_the_loop(self):
        # A worker killed for a runaway (a pattern inside C) is started
        # again at once, and its policy takes ~0.6 s to load: meanwhile
        # /metrics on its own listener answers promptly, and a check that
        # waits for the loading worker still falls back by its deadline plus
        # the worker's 250 ms grace.
        loops = self.calibrated_loops(0.6)
        path = self.write("local x = 0\n"
                          "for i = 1, %d do x = x + i %% 7 end\n"
                          "return { check = function(ctx)\n"
                          "  local r = ctx.probe()\n"
                          "  string.find((\"a\"):rep(150), \".-.-.-.-b\")\n"
                          "  return r.ok, 'custom'\n"
                          "end }\n" % loops)
        mock = self.start_mock()
        mport = h.free_port()
        d = self.start_daemon("--policy=" + path, "--check-timeout=1s",
                              "--policy-instruction-limit=100000000000",
                              "--metrics-address=127.0.0.1:%d" % mport, csi=mock.socket_path)
        stop = threading.Event()
        slowest = [0.0, 0]

        def scrape():
            while not stop.is_set():
                r = h.http_request(mport, path="/metrics")
                self.assertEqual(r.status, 200)
                slowest[0] = max(slowest[0], r.elapsed)
                slowest[1] += 1
                time.sleep(0.01)

        t = threading.Thread(target=scrape, daemon=True)
        t.start()
        try:
            answers = [d.request() for _ in range(3)]
        finally:
            stop.set()
            t.join(10)
        for r in answers:
            self.assertHealthz(r, *HEALTHY)
            self.assertLess(r.elapsed, 1.0 + 0.25 + h.scaled(0.1), r)
        self.assertGreater(slowest[1], 50)
        self.assertLess(slowest[0], h.scaled(0.05), "slowest /metrics answer while the "
                        "worker restarted: %.3f s" % slowest[0])
        self.assertEqual([kv["reason"] for kv in self.fallbacks(d)], ["timeout"] * 3)

    def calibrated_loops(self, seconds):
        """A loop count whose top-level loop takes about seconds to load here."""
        loops = 1000000
        for _ in range(6):
            path = self.write("local x = 0\nfor i = 1, %d do x = x + i %% 7 end\n"
                              "return { check = function(ctx) return true end }\n" % loops,
                              "calibrate.lua")
            start = time.monotonic()
            rc, _, err = self.run_daemon("--check-policy=" + path,
                                         "--policy-instruction-limit=100000000000")
            took = time.monotonic() - start
            self.assertEqual(rc, 0, err)
            if took > seconds * 0.8:
                break
            loops = int(loops * seconds / max(took, 0.01))
        # The whole load must stay under its own 1 s limit, with room to spare.
        return int(loops * min(1.0, seconds / max(took, 0.01)))

    def test_forbidden_call_kills_the_worker(self):
        # A worker that calls what its seccomp filter forbids (open(2), as an
        # escaped policy would; a test-only hook, nothing Lua can reach) is
        # killed by the kernel: the check is answered by fallback at once,
        # and the worker is started again.
        path = self.write(versioned("custom"))
        mock, d = self.policy_daemon(path, "--check-timeout=2s",
                                     env={"LP_TEST_WORKER_FORBIDDEN_OPEN": "1"})
        if d.wait_log("runs without its seccomp filter", 0.5):
            self.skipTest("this build or kernel has no seccomp filter for the worker")
        old = self.worker_pid(d)
        r = d.request()
        self.assertHealthz(r, *HEALTHY)  # the built-in policy's answer, not "custom"
        self.assertLess(r.elapsed, h.scaled(0.5))
        self.assertEqual([kv["reason"] for kv in self.fallbacks(d)], ["crash"])
        deadline = time.monotonic() + h.scaled(3)
        while time.monotonic() < deadline and h.child_pids(d.pid) in ([], [old]):
            time.sleep(0.02)
        self.assertNotEqual(self.worker_pid(d), old)
        self.assertGone(old)

    def test_worker_is_confined(self):
        # Without the test hook the same worker runs its policy as usual.
        path = self.write(versioned("custom"))
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "custom")
        if not d.wait_log("runs without its seccomp filter", 0.2):
            with open("/proc/%d/status" % self.worker_pid(d)) as f:
                self.assertIn("Seccomp:\t2", f.read())

    def test_no_time_at_all_still_runs_the_policy(self):
        # --probe-timeout=-1s (so a check deadline already past): the policy
        # still runs, its probe fails at once with upstream's text, and
        # neither the worker's watchdog nor the check's own limit fires
        # before the worker could answer.
        path = self.write("return { check = function(ctx)\n"
                          "  local r = ctx.probe()\n"
                          "  return r.ok, r.error or 'fine'\n"
                          "end }\n")
        mock, d = self.policy_daemon(path, "--probe-timeout=-1s")
        worker = self.worker_pid(d)
        for _ in range(3):
            r = d.request()
            self.assertHealthz(r, 500, h.CONNECT_FAIL_BODY)
            self.assertLess(r.elapsed, h.scaled(0.25))
        self.assertEqual(self.fallbacks(d), [])
        self.assertEqual(self.worker_pid(d), worker)

    def test_reload_signal_during_shutdown(self):
        # SIGHUP right behind SIGTERM reaches the loop's last pass, after the
        # policy source is freed: it is ignored (the sanitizer build would
        # report a use after free), and the daemon exits 0.
        path = self.write(versioned("custom"))
        for _ in range(5):
            mock, d = self.policy_daemon(path)
            os.kill(d.pid, signal.SIGTERM)
            d.wait_log("Shutting down", 5)
            os.kill(d.pid, signal.SIGHUP)
            rc = d.wait(h.SHUTDOWN_TIMEOUT + (30 if d.wrapped else 0))
            self.assertEqual(rc, 0, d.stderr()[-3000:])
            self.assertNotIn("AddressSanitizer", d.stderr())
            self.stop_mock(mock)

    def run_worker_fed(self, data):
        """Runs a bare worker whose socket (fd 3) gets data, then EOF; returns its status."""
        ours, theirs = socket.socketpair()
        with ours, theirs:
            p = subprocess.Popen([h.LP_BIN, "--policy-worker", "0", "text"],
                                 # close_fds would close fd 3 after preexec_fn's dup2;
                                 # Python's own descriptors are close-on-exec anyway.
                                 close_fds=False,
                                 preexec_fn=lambda: os.dup2(theirs.fileno(), 3),
                                 stderr=subprocess.PIPE)
            theirs.close()
            ours.sendall(data)
            ours.shutdown(socket.SHUT_WR)
            _, err = p.communicate(timeout=h.scaled(10))
        return p.returncode, err.decode(errors="replace")

    def test_worker_exit_status(self):
        # A worker whose daemon goes away exits 0, its socket closed within its
        # seccomp filter (not killed by it: that would be -SIGSYS); one sent
        # bytes that are no frame exits 1.
        self.assertEqual(self.run_worker_fed(b""), (0, ""))
        rc, err = self.run_worker_fed(b"\xff" * 64)
        self.assertEqual(rc, 1, err)

    def test_shutdown_during_runaway(self):
        path = os.path.join(POLICIES, "pathological_pattern.lua")
        mock, d = self.policy_daemon(path, "--check-timeout=3s")
        worker = self.worker_pid(d)
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", d.request()))
        t.start()
        time.sleep(0.3)
        self.stop_daemon(d)
        t.join(10)
        self.assertIn("r", result)
        self.assertLess(result["r"].elapsed, 0.3 + h.SHUTDOWN_TIMEOUT)
        # Gone, not even a zombie: the daemon reaps what it killed before it exits.
        self.assertFalse(os.path.exists("/proc/%d" % worker))


# ---------------------------------------------------------------------------
# Reload

class ReloadTest(PolicyCase):

    def test_plain_write(self):
        path = self.write(versioned("v1"))
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "v1")
        start = time.monotonic()
        with open(path, "w") as f:
            f.write(versioned("v2"))
        self.assertLessEqual(self.wait_body(d, "v2", RELOAD_WITHIN, start),
                             h.scaled(RELOAD_WITHIN))
        self.assertEqual(self.klog(d, RELOADED_MSG), [{"policy": path}])

    def test_rename_over(self):
        path = self.write(versioned("v1"))
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "v1")
        start = time.monotonic()
        tmp = self.write(versioned("v2"), ".policy.lua.tmp")
        os.replace(tmp, path)
        self.assertLessEqual(self.wait_body(d, "v2", RELOAD_WITHIN, start),
                             h.scaled(RELOAD_WITHIN))
        self.wait_count(d, RELOADED_MSG, 1, 1)

    def test_configmap_data_swap(self):
        # What kubelet does to a ConfigMap volume: the file is a symlink
        # through ..data, and an update swaps ..data atomically.
        cm = os.path.join(self.tmp, "cm")
        os.makedirs(os.path.join(cm, "..2026_01"))
        self.write(versioned("v1"), "policy.lua", os.path.join(cm, "..2026_01"))
        os.symlink("..2026_01", os.path.join(cm, "..data"))
        os.symlink("..data/policy.lua", os.path.join(cm, "policy.lua"))
        path = os.path.join(cm, "policy.lua")
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "v1")
        for n, tag in ((2, "v2"), (3, "v3")):
            start = time.monotonic()
            new = os.path.join(cm, "..2026_0%d" % n)
            os.makedirs(new)
            self.write(versioned(tag), "policy.lua", new)
            os.symlink("..2026_0%d" % n, os.path.join(cm, "..data_tmp"))
            os.replace(os.path.join(cm, "..data_tmp"), os.path.join(cm, "..data"))
            shutil.rmtree(os.path.join(cm, "..2026_0%d" % (n - 1)))
            self.assertLessEqual(self.wait_body(d, tag, RELOAD_WITHIN, start),
                                 h.scaled(RELOAD_WITHIN))
        self.wait_count(d, RELOADED_MSG, 2, 1)

    def test_same_text_is_not_a_reload(self):
        # Other files in the directory, or a rewrite with the same text,
        # leave the running policy (and its ctx.state) alone.
        path = self.write(COUNTER)
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "1")
        with open(path, "w") as f:
            f.write(COUNTER)
        self.write("unrelated", "README")
        time.sleep(1.0)
        self.assertHealthz(d.request(), 200, "2")
        self.assertEqual(self.klog(d, RELOADED_MSG), [])
        self.assertEqual(self.klog(d, RELOAD_FAILED_MSG), [])

    def test_broken_version_keeps_old(self):
        path = self.write(versioned("v1"))
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "v1")
        with open(path, "w") as f:
            f.write(SYNTAX_ERROR)
        failed = self.wait_count(d, RELOAD_FAILED_MSG, 1, RELOAD_WITHIN + 1)
        self.assertEqual(failed[0]["policy"], path)
        self.assertIn("policy.lua:4:", failed[0]["err"])
        for _ in range(5):
            self.assertHealthz(d.request(), 200, "v1")
            time.sleep(0.05)
        with open(path, "w") as f:
            f.write("return 42\n")
        failed = self.wait_count(d, RELOAD_FAILED_MSG, 2, RELOAD_WITHIN + 1)
        self.assertIn("must return a table", failed[1]["err"])
        self.assertHealthz(d.request(), 200, "v1")
        start = time.monotonic()
        with open(path, "w") as f:
            f.write(versioned("v3"))
        self.assertLessEqual(self.wait_body(d, "v3", RELOAD_WITHIN, start),
                             h.scaled(RELOAD_WITHIN))
        self.assertEqual(len(self.klog(d, RELOADED_MSG)), 1)

    def test_sighup_starts_state_afresh(self):
        path = self.write(COUNTER)
        mock, d = self.policy_daemon(path)
        for n in (1, 2, 3):
            self.assertHealthz(d.request(), 200, str(n))
        worker = self.worker_pid(d)
        d.signal(signal.SIGHUP)
        self.wait_count(d, RELOADED_MSG, 1, 2)
        self.assertHealthz(d.request(), 200, "1")
        self.assertHealthz(d.request(), 200, "2")
        self.assertNotEqual(self.worker_pid(d), worker)
        self.assertGone(worker)

    def test_sighup_with_broken_file_keeps_old_state(self):
        path = self.write(COUNTER)
        mock, d = self.policy_daemon(path)
        for n in (1, 2):
            self.assertHealthz(d.request(), 200, str(n))
        with open(path, "w") as f:
            f.write(SYNTAX_ERROR)
        self.wait_count(d, RELOAD_FAILED_MSG, 1, RELOAD_WITHIN + 1)
        d.signal(signal.SIGHUP)
        self.wait_count(d, RELOAD_FAILED_MSG, 2, 2)
        self.assertHealthz(d.request(), 200, "3")
        self.assertEqual(self.klog(d, RELOADED_MSG), [])

    def test_reload_waits_for_check_in_flight(self):
        path = self.write("local policy = {}\n"
                          "function policy.check(ctx)\n"
                          "  ctx.sleep(0.6)\n"
                          "  return true, 'v1'\n"
                          "end\n"
                          "return policy\n")
        mock, d = self.policy_daemon(path, "--check-timeout=2s")
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", d.request()))
        t.start()
        time.sleep(0.1)
        start = time.monotonic()
        with open(path, "w") as f:
            f.write(versioned("v2"))
        t.join(10)
        self.assertHealthz(result["r"], 200, "v1")
        self.assertAtDeadline(result["r"], 0.6)
        self.assertLessEqual(self.wait_body(d, "v2", RELOAD_WITHIN, start),
                             h.scaled(RELOAD_WITHIN))
        self.assertEqual(self.fallbacks(d), [])

    def test_reload_runaway_load_does_not_stall_healthz(self):
        # A new version whose top level runs away inside C must fail to
        # load without holding up /healthz meanwhile.
        path = self.write(versioned("v1"))
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "v1")
        with open(path, "w") as f:
            f.write('string.find(("a"):rep(300), ".-.-.-.-b")\n' + versioned("v2"))
        slow = []
        end = time.monotonic() + 4.5
        while time.monotonic() < end:
            r = d.request()
            self.assertHealthz(r, 200, "v1")
            if r.elapsed > h.scaled(0.5):
                slow.append(round(r.elapsed, 3))
            time.sleep(0.1)
        failed = self.wait_count(d, RELOAD_FAILED_MSG, 1, 1)
        self.assertIn("loading did not finish", failed[0]["err"])
        self.assertLess(h.cpu_share(d.pid, 1.0), IDLE_CPU)
        self.assertEqual(slow, [], "/healthz answers held up by the reload (seconds)")


# ---------------------------------------------------------------------------
# Policy metrics

class MetricsTest(PolicyCase):

    def test_reloads_counted(self):
        path = self.write(versioned("v1"))
        mock, d = self.policy_daemon(path)
        with open(path, "w") as f:
            f.write(versioned("v2"))
        self.wait_body(d, "v2", RELOAD_WITHIN)
        with open(path, "w") as f:
            f.write(SYNTAX_ERROR)
        self.wait_count(d, RELOAD_FAILED_MSG, 1, RELOAD_WITHIN + 1)
        d.signal(signal.SIGHUP)
        self.wait_count(d, RELOAD_FAILED_MSG, 2, 2)
        with open(path, "w") as f:
            f.write(versioned("v3"))
        self.wait_body(d, "v3", RELOAD_WITHIN)
        d.signal(signal.SIGHUP)
        self.wait_count(d, RELOADED_MSG, 3, 2)
        m = self.metrics(d)
        self.assertEqual(
            {k: v for k, v in m.items() if k.startswith("livenessprobe_policy_reloads_total")},
            {'livenessprobe_policy_reloads_total{result="success"}': 3,
             'livenessprobe_policy_reloads_total{result="failure"}': 2})

    def test_fallbacks_counted_by_reason(self):
        # One policy, three reasons in turn.
        path = self.write("local policy = {}\n"
                          "function policy.check(ctx)\n"
                          "  ctx.state.n = (ctx.state.n or 0) + 1\n"
                          "  if ctx.state.n == 1 then error('first') end\n"
                          "  if ctx.state.n == 2 then return 'second' end\n"
                          "  if ctx.state.n == 3 then while true do end end\n"
                          "  if ctx.state.n == 4 then error('fourth') end\n"
                          "  return true, 'fine'\n"
                          "end\n"
                          "return policy\n")
        mock, d = self.policy_daemon(path)
        for want in ("ok", "ok", "ok", "ok", "fine"):
            self.assertHealthz(d.request(), 200, want)
        m = self.metrics(d)
        self.assertEqual(
            {k: v for k, v in m.items() if k.startswith("livenessprobe_policy_fallbacks")},
            {'livenessprobe_policy_fallbacks_total{reason="error"}': 2,
             'livenessprobe_policy_fallbacks_total{reason="return"}': 1,
             'livenessprobe_policy_fallbacks_total{reason="instructions"}': 1})
        self.assertEqual(m['livenessprobe_checks_total{result="healthy"}'], 5)

    def test_policy_memory_gauge(self):
        # ctx.state keeps about 1 MiB: the gauge shows the worker's Lua state.
        path = self.write("return { check = function(ctx)\n"
                          "  ctx.state.big = ctx.state.big or string.rep('x', 1024 * 1024)\n"
                          "  return true, 'kept'\n"
                          "end }\n")
        mock, d = self.policy_daemon(path)
        self.assertHealthz(d.request(), 200, "kept")
        m = self.metrics(d)
        self.assertIn("livenessprobe_policy_memory_bytes", m, sorted(
            k for k in m if k.startswith("livenessprobe_")))
        self.assertGreater(m["livenessprobe_policy_memory_bytes"], 1024 * 1024)
        self.assertLess(m["livenessprobe_policy_memory_bytes"], 16 * 1024 * 1024)


if __name__ == "__main__":
    h.main()
