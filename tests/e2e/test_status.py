"""Explainable health: /status, /healthz?verbose, /readyz and /startupz,
transition log lines and health metrics, --probe-interval, --status.

DESIGN.md "Contracts added after the first release"; README "Why was my
driver restarted?" and "Readiness and start-up". /healthz itself must stay
upstream-exact: test_healthz.py covers it and keeps passing.
"""

import calendar
import hashlib
import json
import os
import re
import signal
import subprocess
import time

import lpharness as h

STATUS_KEYS = {"verdict", "streak", "last_success", "last_failure", "checks",
               "probes", "policy", "driver", "process"}
VERDICT_KEYS = {"healthy", "status", "body", "reason", "at", "fallback"}
CHECK_KEYS = {"at", "endpoint", "healthy", "status", "body", "seconds",
              "fallback", "probes"}
PROBE_KEYS = {"at", "code", "ready", "connected", "seconds", "error"}
NOT_READY = "driver responded but is not ready"
RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


def status(d, path="/status", **kw):
    r = d.request("GET", path, **kw)
    assert r.status == 200, r
    return json.loads(r.body)


def rfc3339_seconds(text):
    """Seconds since the epoch of a /status time ("2026-11-27T16:00:00.123456Z")."""
    whole, frac = text[:-1].split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + frac)


def metric(d, name):
    """The value of one sample (name with labels, exactly) on /metrics."""
    body = d.request("GET", "/metrics").text()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ")[1])
    raise AssertionError("no sample %s in:\n%s" % (name, body))


class Case(h.LPTestCase):

    def http_daemon(self, *args, mock_args=()):
        """A mock and a daemon serving /healthz, /status and /metrics on one --http-endpoint."""
        port = h.free_port()
        return self.healthy_daemon("--http-endpoint=127.0.0.1:%d" % port, *args,
                                   mock_args=mock_args, port=port, health_port_flag=False)


class StatusPage(Case):

    def test_json_has_exactly_the_contract_keys(self):
        mock, d = self.healthy_daemon()
        before = status(d)
        self.assertEqual(set(before), STATUS_KEYS)
        # Nothing checked yet: nulls, empty lists, a zero streak.
        self.assertTrue(VERDICT_KEYS <= set(before["verdict"]))
        self.assertIsNone(before["verdict"]["healthy"])
        self.assertEqual(before["streak"]["count"], 0)
        self.assertEqual((before["checks"], before["probes"]), ([], []))
        self.assertIsNone(before["last_success"])

        self.assertHealthz(d.request(), 200, "ok")
        s = status(d)
        v = s["verdict"]
        self.assertEqual((v["healthy"], v["status"], v["body"], v["reason"], v["fallback"]),
                         (True, 200, "ok", "ok", None))
        self.assertRegex(v["at"], RFC3339)
        self.assertEqual((s["streak"]["healthy"], s["streak"]["count"]), (True, 1))
        self.assertRegex(s["last_success"], RFC3339)
        self.assertIsNone(s["last_failure"])
        self.assertEqual(len(s["checks"]), 1)
        self.assertTrue(CHECK_KEYS <= set(s["checks"][0]))
        c = s["checks"][0]
        self.assertEqual((c["endpoint"], c["healthy"], c["status"], c["body"], c["probes"],
                          c["fallback"]), ("healthz", True, 200, "ok", 1, None))
        self.assertGreater(c["seconds"], 0)
        self.assertTrue(PROBE_KEYS <= set(s["probes"][0]))
        p = s["probes"][0]
        self.assertEqual((p["code"], p["ready"], p["connected"], p["error"]),
                         ("OK", None, True, None))
        # The built-in policy, fingerprinted as sha256sum would.
        with open(os.path.join(h.SOURCE_DIR, "lua", "default.lua"), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        pol = s["policy"]
        self.assertEqual((pol["source"], pol["sha256"], pol["runs_in"], pol["reloads"],
                          pol["last_reload_error"]),
                         ("builtin", digest, "daemon", {"success": 0, "failure": 0}, None))
        self.assertGreater(pol["memory_bytes"], 0)
        self.assertEqual(s["driver"], {"address": "unix://" + mock.socket_path,
                                       "name": "mock.csi.example.com",
                                       "vendor_version": "0.1.0", "connected": True})
        rc, out, _ = self.run_daemon("--version")
        self.assertEqual(s["process"]["version"], out.split()[-1])
        self.assertRegex(s["process"]["started_at"], RFC3339)
        self.assertGreater(s["process"]["uptime_seconds"], 0)
        r = d.request("GET", "/status")
        self.assertEqual(r.header("Content-Type"), "application/json")

    def test_reading_status_never_probes(self):
        mock, d = self.healthy_daemon()
        self.assertHealthz(d.request(), 200, "ok")
        calls = mock.calls()
        for _ in range(20):
            status(d)
            d.request("GET", "/status?format=text")
        time.sleep(0.2)  # a probe started by a read would have arrived by now
        self.assertEqual(mock.calls(), calls)

    def test_text_format_and_unknown_formats(self):
        mock, d = self.healthy_daemon()
        self.assertHealthz(d.request(), 200, "ok")
        for r in (d.request("GET", "/status?format=text"),
                  d.request("GET", "/status", headers=[("Accept", "text/plain")]),
                  d.request("GET", "/status?x=1&format=text&y")):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("Content-Type"), "text/plain; charset=utf-8")
            text = r.text()
            self.assertIn("ENDPOINT", text)
            self.assertRegex(text, r"(?m)^healthz +healthy +200 +1 ")
            self.assertIn("mock.csi.example.com", text)
        # format= wins over Accept; unknown parameters are ignored.
        r = d.request("GET", "/status?format=json&verbose",
                      headers=[("Accept", "text/plain")])
        self.assertEqual(set(json.loads(r.body)), STATUS_KEYS)
        r = d.request("GET", "/status?format=xml")
        self.assertEqual(r.status, 400)
        self.assertEqual(r.text(), 'unknown format "xml": the formats are json, text\n')
        r = d.request("HEAD", "/status")
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertGreater(int(r.header("Content-Length")), 100)

    def test_status_false_is_404(self):
        mock, d = self.healthy_daemon("--status=false")
        r = d.request("GET", "/status")
        self.assertEqual((r.status, r.text()), (404, "404 page not found\n"))
        self.assertHealthz(d.request(), 200, "ok")

    def test_keeps_the_last_32_checks_and_probes_oldest_first(self):
        mock, d = self.healthy_daemon()
        for _ in range(40):
            self.assertHealthz(d.request(), 200, "ok")
        s = status(d)
        self.assertEqual((len(s["checks"]), len(s["probes"])), (32, 32))
        self.assertEqual(s["streak"]["count"], 40)
        ats = [c["at"] for c in s["checks"]]
        self.assertEqual(ats, sorted(ats))
        self.assertEqual(s["checks"][-1]["at"], s["verdict"]["at"])

    def test_hostile_bodies_stay_valid_json_and_bounded(self):
        policy = self.write_file("hostile.lua", """
local p = {}
function p.check(ctx)
  ctx.probe()
  return false, 'a"b\\n\\0\\255\\xe2\\x82' .. string.rep('x', 1024 * 1024 - 20), 503
end
return p
""")
        mock, d = self.healthy_daemon("--policy=" + policy)
        r = d.request()
        self.assertEqual((r.status, len(r.body)), (503, 1024 * 1024 - 20 + 8))
        raw = d.request("GET", "/status").body
        s = json.loads(raw.decode("utf-8"))  # valid UTF-8 and valid JSON
        body = s["verdict"]["body"]
        self.assertTrue(body.startswith('a"b\n\x00\ufffd'), body[:20])
        self.assertLessEqual(len(body.encode()), 1023 + 2 * 3)
        self.assertLess(len(raw), 200 * 1024)
        text = d.request("GET", "/status?format=text").text()
        self.assertNotIn("\n\x00", text)


class Verbose(Case):

    def test_verbose_adds_reason_and_probes(self):
        mock, d = self.healthy_daemon()
        plain = d.request()
        self.assertHealthz(plain, 200, "ok")
        r = d.request("GET", "/healthz?verbose")
        self.assertEqual(r.status, 200)
        lines = r.text().split("\n")
        self.assertEqual(lines[0], "ok")
        self.assertEqual(lines[1], "[+]reason: ok")
        self.assertRegex(lines[2], r"^\[\+\]probe 1: OK ready=absent connected=true "
                                   r"seconds=\d+\.\d{6}$")
        self.assertEqual(lines[3:], [""])
        self.assertEqual(r.header("Content-Type"), "text/plain; charset=utf-8")

    def test_verbose_failure_keeps_status(self):
        mock, d = self.healthy_daemon(mock_args=("--ready=false",))
        r = d.request("GET", "/healthz?verbose=1")
        self.assertEqual(r.status, 500)
        lines = r.text().split("\n")
        self.assertEqual(lines[:2], [NOT_READY, "[-]reason: " + NOT_READY])
        self.assertRegex(lines[2], r"^\[\+\]probe 1: OK ready=false ")
        # The upstream answer is untouched without ?verbose.
        self.assertHealthz(d.request(), 500, NOT_READY)

    def test_verbose_shows_every_probe_and_the_fallback(self):
        policy = self.write_file("retry.lua", """
local p = {}
function p.check(ctx)
  ctx.probe(); ctx.probe()
  error("gave up")
end
return p
""")
        mock, d = self.healthy_daemon("--policy=" + policy,
                                      mock_args=("--probe-code=UNAVAILABLE",
                                                 "--probe-message=down"))
        r = d.request("GET", "/healthz?verbose")
        self.assertEqual(r.status, 500)
        lines = r.text().split("\n")
        self.assertEqual(lines[0], "rpc error: code = Unavailable desc = down")
        self.assertRegex(lines[1], r"^\[-\]reason: .*retry\.lua:5: gave up \(the policy "
                                   r"failed: error; the built-in policy answered\)$")
        self.assertRegex(lines[2], r"^\[-\]probe 1: UNAVAILABLE connected=true seconds=\S+: "
                                   r"rpc error: code = Unavailable desc = down$")
        self.assertRegex(lines[3], r"^\[-\]probe 2: UNAVAILABLE ")
        self.assertEqual(lines[4:], [""])  # the fallback replayed probe 2: no third
        s = status(d)
        self.assertEqual(s["verdict"]["fallback"], "error")
        self.assertIn("gave up", s["verdict"]["reason"])
        self.assertEqual(s["checks"][-1]["probes"], 2)


class ReadyAndStartup(Case):

    def test_builtin_answers(self):
        mock, d = self.healthy_daemon(mock_args=("--ready=false",))
        self.assertHealthz(d.request(), 500, NOT_READY)  # upstream's answer, unchanged
        self.assertHealthz(d.request("GET", "/readyz"), 500, NOT_READY)
        self.assertHealthz(d.request("GET", "/startupz"), 200, "ok")
        r = d.request("HEAD", "/readyz")
        self.assertEqual((r.status, r.body), (500, b""))

        mock2, d2 = self.healthy_daemon(mock_args=("--ready=true",))
        for path in ("/healthz", "/readyz", "/startupz"):
            self.assertHealthz(d2.request("GET", path), 200, "ok")

    def test_startup_needs_one_ok_probe_then_stays_started(self):
        script = self.script_flag("flip.lua", """
local d = {}
function d.probe(call)
  if call.n == 1 then return { code = "UNAVAILABLE", message = "booting" } end
  if call.n == 2 then return { ready = false } end
  return { code = "UNAVAILABLE", message = "gone" }
end
return d
""")
        mock, d = self.healthy_daemon(mock_args=(script,))
        self.assertHealthz(d.request("GET", "/startupz"), 500,
                           "rpc error: code = Unavailable desc = booting")
        self.assertHealthz(d.request("GET", "/startupz"), 200, "ok")  # ready=false is started
        self.assertHealthz(d.request("GET", "/startupz"), 200, "ok")  # no probe needed
        self.assertEqual(mock.calls(), 2)

    def test_policy_functions_share_state(self):
        policy = self.write_file("split3.lua", """
local p = {}
function p.check(ctx) ctx.state.n = (ctx.state.n or 0) + 1; return true, "alive" end
function p.ready(ctx) return ctx.state.n ~= nil, "checks " .. tostring(ctx.state.n) end
return p
""")
        mock, d = self.healthy_daemon("--policy=" + policy, mock_args=("--ready=false",))
        self.assertHealthz(d.request("GET", "/readyz"), 500, "checks nil")
        self.assertHealthz(d.request(), 200, "alive")
        self.assertHealthz(d.request("GET", "/readyz"), 200, "checks 1")
        # No startup function: the built-in one answers (an OK Probe, whatever ready says).
        self.assertHealthz(d.request("GET", "/startupz"), 200, "ok")
        self.assertEqual(status(d)["policy"]["runs_in"], "worker")

    def test_each_endpoint_coalesces_its_own_requests(self):
        mock, d = self.http_daemon(mock_args=("--probe-delay=300ms",))
        results = h.run_parallel(
            lambda i: d.request("GET", "/readyz" if i % 2 else "/healthz"), 8)
        self.assertTrue(all(r.status == 200 for r in results), results)
        self.assertEqual(mock.calls(), 2)  # one check per endpoint
        self.assertEqual(metric(d, "livenessprobe_requests_coalesced_total"), 6)

    def test_ready_that_is_not_a_function_fails_loading(self):
        policy = self.write_file("badready.lua",
                                 "local p = {check = function() return true end}\n"
                                 "p.ready = 5\nreturn p\n")
        mock = self.start_mock()
        rc, _, err = self.run_daemon("--csi-address=" + mock.socket_path,
                                     "--health-port=%d" % h.free_port(),
                                     "--policy=" + policy)
        self.assertEqual(rc, 1)
        self.assertIn("badready.lua:3: the policy's ready must be a function, got number", err)
        rc, _, err = self.run_daemon("--check-policy=" + policy)
        self.assertEqual(rc, 1)
        self.assertIn("badready.lua:3: the policy's ready must be a function, got number", err)

    def test_failing_ready_falls_back_to_the_builtin_ready(self):
        policy = self.write_file("readyboom.lua", """
local p = {}
function p.check(ctx) return true end
function p.ready(ctx) error("boom") end
return p
""")
        mock, d = self.healthy_daemon("--policy=" + policy, mock_args=("--ready=false",))
        self.assertHealthz(d.request("GET", "/readyz"), 500, NOT_READY)
        c = status(d)["verdict"]["endpoints"]["readyz"]
        self.assertEqual(c["fallback"], "error")
        self.assertIn("readyboom.lua:4: boom", c["reason"])
        line = d.wait_log("Policy failed, answering with the built-in policy", 5)
        self.assertIn('endpoint="readyz"', line)

    def test_check_policy_reports_every_function(self):
        split = os.path.join(h.SOURCE_DIR, "examples", "policies", "split.lua")
        rc, _, out = self.run_daemon("--check-policy=" + split)
        self.assertEqual(rc, 0, out)
        for fn in ("check", "ready", "startup"):
            self.assertIn("verdict of %s(ctx)" % fn, out)
        only = self.write_file("only.lua", "return {check = function() return true end}\n")
        rc, _, out = self.run_daemon("--check-policy=" + only)
        self.assertEqual(rc, 0, out)
        self.assertIn("no ready(ctx): the built-in policy answers /readyz", out)
        self.assertIn("no startup(ctx): the built-in policy answers /startupz", out)
        bad = self.write_file("badstartup.lua", """
local p = {check = function() return true end}
function p.startup(ctx) return "started" end
return p
""")
        rc, _, out = self.run_daemon("--check-policy=" + bad)
        self.assertEqual(rc, 1)
        self.assertIn("startup(ctx) fails on the 'ready' probe result", out)
        self.assertIn("startup must return a boolean first, got string", out)


class Transitions(Case):

    def flip_driver(self):
        """A driver healthy for calls 1-2, down for 3-4, healthy again after."""
        return self.script_flag("flip.lua", """
local d = {}
function d.probe(call)
  if call.n == 3 or call.n == 4 then return { code = "UNAVAILABLE", message = "blip" } end
  return { ready = true }
end
return d
""")

    def test_changes_are_logged_and_counted_once(self):
        mock, d = self.http_daemon(mock_args=(self.flip_driver(),))
        self.assertEqual(metric(d, 'livenessprobe_healthy{endpoint="healthz"}'), 0)
        self.assertEqual(metric(
            d, 'livenessprobe_health_transitions_total{endpoint="healthz",to="unhealthy"}'), 0)
        answers = [d.request().status for _ in range(6)]
        self.assertEqual(answers, [200, 200, 500, 500, 200, 200])
        changes = [l for l in d.log_lines() if '"Health changed"' in l]
        self.assertEqual(len(changes), 2, d.stderr())
        self.assertTrue(changes[0].startswith("I"))
        self.assertIn('endpoint="healthz" from="healthy" to="unhealthy" '
                      'reason="rpc error: code = Unavailable desc = blip" streak="2"',
                      changes[0])
        self.assertIn('from="unhealthy" to="healthy" reason="ok" streak="2"', changes[1])
        for to in ("healthy", "unhealthy"):
            self.assertEqual(metric(
                d, 'livenessprobe_health_transitions_total{endpoint="healthz",to="%s"}'
                % to), 1)
        self.assertEqual(metric(d, 'livenessprobe_healthy{endpoint="healthz"}'), 1)
        last = metric(d, 'livenessprobe_last_success_timestamp_seconds{endpoint="healthz"}')
        self.assertLess(abs(last - time.time()), 60)
        s = status(d)
        self.assertEqual((s["streak"]["healthy"], s["streak"]["count"]), (True, 2))
        self.assertRegex(s["last_failure"], RFC3339)

    def test_json_log_line(self):
        mock, d = self.healthy_daemon("--logging-format=json",
                                      mock_args=(self.flip_driver(),))
        for _ in range(3):
            d.request()
        line = d.wait_log("Health changed", 5)
        rec = json.loads(line)
        self.assertEqual((rec["msg"], rec["endpoint"], rec["from"], rec["to"], rec["streak"]),
                         ("Health changed", "healthz", "healthy", "unhealthy", "2"))
        self.assertEqual(rec["v"], 0)

    def test_shutting_down_is_not_a_verdict(self):
        # A request parked at SIGTERM gets "shutting down": not kept, not a change.
        slow = self.script_flag("slow.lua", """
local d = {}
function d.probe(call)
  if call.n == 1 then return { ready = true } end
  return { ready = true, delay = 5 }
end
return d
""")
        mock, d = self.healthy_daemon(mock_args=(slow,))
        self.assertHealthz(d.request(), 200, "ok")
        c = h.HTTPConn(d.port)
        self.addCleanup(c.close)
        c.send(c.build())
        self.assertTrue(h.wait_until(lambda: mock.calls() >= 1, 5))
        time.sleep(0.3)  # parked on the slow Probe (the signal first gives the same answer)
        d.signal(signal.SIGTERM)
        self.assertHealthz(c.read_response(), 500, "livenessprobe is shutting down")
        self.assertEqual(d.wait(h.SHUTDOWN_TIMEOUT + 5), 0)
        self.assertNotIn("Health changed", d.stderr())

    def test_steady_health_is_silent(self):
        mock, d = self.healthy_daemon()
        for _ in range(5):
            self.assertHealthz(d.request(), 200, "ok")
        self.assertEqual([l for l in d.log_lines() if "Health changed" in l], [])


class ProbeInterval(Case):

    def test_background_checks_keep_status_current(self):
        mock, d = self.http_daemon("--probe-interval=1s")
        self.assertTrue(h.wait_until(lambda: len(status(d)["checks"]) >= 2, h.scaled(10)))
        self.assertEqual(metric(d, 'livenessprobe_healthy{endpoint="healthz"}'), 1)
        self.assertGreaterEqual(metric(d, 'livenessprobe_checks_total{result="healthy"}'), 2)
        # Only /healthz runs in the background.
        self.assertEqual({c["endpoint"] for c in status(d)["checks"]}, {"healthz"})

    def test_request_joins_a_background_check(self):
        mock, d = self.http_daemon("--probe-interval=3s", "--probe-timeout=3s",
                                   mock_args=("--probe-delay=2s",))
        # The first background check tells when the timer fires: its start.
        self.assertTrue(h.wait_until(lambda: status(d)["checks"], h.scaled(15)))
        first = status(d)["checks"][0]
        fired = rfc3339_seconds(first["at"]) - first["seconds"]
        # Half a second into the next one (its probe takes 2 s), a request joins it.
        time.sleep(max(0.0, fired + 3.5 - time.time()))
        r = d.request()
        self.assertHealthz(r, 200, "ok")
        self.assertLess(r.elapsed, 1.9)
        self.assertEqual(metric(d, "livenessprobe_requests_coalesced_total"), 1)
        self.assertEqual(mock.calls(), 2)

    def test_a_request_never_gets_a_stored_verdict(self):
        mock, d = self.healthy_daemon("--probe-interval=1s")
        self.assertTrue(h.wait_until(lambda: mock.calls() >= 1, h.scaled(10)))
        self.assertTrue(h.wait_until(lambda: len(status(d)["checks"]) >= 1, h.scaled(10)))
        before = mock.calls()
        self.assertHealthz(d.request(), 200, "ok")
        self.assertGreater(mock.calls(), before)

    def test_interval_below_check_timeout_exits_2(self):
        rc, _, err = self.run_daemon("--probe-interval=500ms", "--check-timeout=1s")
        self.assertEqual(rc, 2)
        self.assertIn('invalid value "500ms" for flag -probe-interval: must be 0 (off) or at '
                      'least --check-timeout (1s)', err)


class Routes(Case):

    def test_metrics_path_equal_to_a_route_is_refused(self):
        for path in ("/status", "/readyz", "/startupz"):
            rc, _, err = self.run_daemon("--http-endpoint=127.0.0.1:%d" % h.free_port(),
                                         "--metrics-path=" + path)
            self.assertEqual(rc, 2)
            self.assertIn("%s is already served on the --http-endpoint listener" % path, err)

    def test_exact_routes_win_over_a_metrics_subtree(self):
        port = h.free_port()
        mock, d = self.healthy_daemon("--http-endpoint=127.0.0.1:%d" % port,
                                      "--metrics-path=/", port=port, health_port_flag=False)
        self.assertHealthz(d.request("GET", "/readyz"), 200, "ok")
        self.assertHealthz(d.request("GET", "/startupz"), 200, "ok")
        self.assertEqual(set(status(d)), STATUS_KEYS)
        self.assertIn("livenessprobe_healthy", d.request("GET", "/anything").text())

    def test_separate_metrics_listener_has_no_status(self):
        mport = h.free_port()
        mock, d = self.healthy_daemon("--metrics-address=127.0.0.1:%d" % mport)
        self.assertTrue(h.wait_until(lambda: d.port_open(), 5))
        r = h.http_request(mport, "GET", "/status")
        self.assertEqual(r.status, 404)
        self.assertEqual(set(status(d)), STATUS_KEYS)

    def test_health_series_exist_from_start(self):
        mock, d = self.http_daemon()
        for e in ("healthz", "readyz", "startupz"):
            self.assertEqual(metric(d, 'livenessprobe_healthy{endpoint="%s"}' % e), 0)
            self.assertEqual(metric(
                d, 'livenessprobe_last_success_timestamp_seconds{endpoint="%s"}' % e), 0)
            for to in ("healthy", "unhealthy"):
                self.assertEqual(metric(
                    d, 'livenessprobe_health_transitions_total{endpoint="%s",to="%s"}'
                    % (e, to)), 0)


class AlertRules(Case):
    """The README's alerting rules: promtool accepts them and their unit tests pass."""

    PROMTOOL = "/usr/bin/promtool"

    def promtool(self, *args):
        self.assertTrue(os.path.exists(self.PROMTOOL),
                        "%s missing: install Debian's prometheus package" % self.PROMTOOL)
        return subprocess.run([self.PROMTOOL] + list(args), capture_output=True, text=True,
                              cwd=os.path.join(h.SOURCE_DIR, "examples", "prometheus"),
                              timeout=120)

    def test_rules_check_and_unit_tests_pass(self):
        p = self.promtool("check", "rules", "livenessprobe-rules.yaml")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("SUCCESS: 3 rules found", p.stdout)
        p = self.promtool("test", "rules", "livenessprobe-rules.test.yaml")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_rules_use_series_the_sidecar_exports(self):
        with open(os.path.join(h.SOURCE_DIR, "examples", "prometheus",
                               "livenessprobe-rules.yaml")) as f:
            rules = f.read()
        used = set(re.findall(r"(livenessprobe_\w+)\{([^}]*)\}", rules))
        self.assertGreaterEqual(len(used), 3)
        mock, d = self.http_daemon()
        exposition = d.request("GET", "/metrics").text()
        for name, labels in used:
            self.assertIn("%s{%s" % (name, labels), exposition)


class Reloads(Case):

    def test_status_follows_reloads(self):
        policy = self.write_file("p.lua", "return {check = function() return true, 'v1' end}\n")
        mock, d = self.healthy_daemon("--policy=" + policy)
        self.assertHealthz(d.request(), 200, "v1")
        s = status(d)["policy"]
        self.assertEqual(s["source"], policy)
        with open(policy, "rb") as f:
            self.assertEqual(s["sha256"], hashlib.sha256(f.read()).hexdigest())
        self.write_file("p.lua", "return {check = 1}\n")
        d.signal(signal.SIGHUP)
        self.assertTrue(h.wait_until(
            lambda: status(d)["policy"]["reloads"]["failure"] == 1, h.scaled(5)))
        s = status(d)["policy"]
        self.assertIn("p.lua:1: the policy table has no check function", s["last_reload_error"])
        self.write_file("p.lua", "return {check = function() return true, 'v2' end}\n")
        d.signal(signal.SIGHUP)
        self.assertTrue(h.wait_until(
            lambda: status(d)["policy"]["reloads"]["success"] == 1, h.scaled(5)))
        s = status(d)["policy"]
        self.assertIsNone(s["last_reload_error"])
        self.assertHealthz(d.request(), 200, "v2")


if __name__ == "__main__":
    h.main()
