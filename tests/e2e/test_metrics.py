"""Metrics: which server serves them, the exposition, and a real Prometheus.

UPSTREAM.md §2.5, §4 and checklist items 28-34; DESIGN.md "Metrics" (our
process_* and livenessprobe_* families). Also the JSON/text log fields
(UPSTREAM.md §1.3) that tests/e2e/test_logs.py leaves loose.

The exposition is parsed strictly here: every line must be a HELP, a TYPE or
a sample, so a malformed line fails the test that scraped it.
"""

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import lpharness as h
from lpharness import INFO, PROBE

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPS = "csi_sidecar_operations_seconds"
BUCKETS = ["0.1", "0.25", "0.5", "1", "2.5", "5", "10", "15", "25", "50",
           "120", "300", "600", "+Inf"]
OPS_LABELS = ["driver_name", "grpc_status_code", "method_name"]
OPS_HELP = ("[ALPHA] Container Storage Interface operation duration with "
            "gRPC error code status total")
START_HELP = "[ALPHA] Start time of the process since unix epoch in seconds."

# DESIGN.md "Metrics": family -> (type, label names of its series).
UPSTREAM_FAMILIES = {
    OPS: ("histogram", OPS_LABELS),
    "process_start_time_seconds": ("gauge", []),
}
PROCESS_FAMILIES = {
    "process_cpu_seconds_total": ("counter", []),
    "process_max_fds": ("gauge", []),
    "process_open_fds": ("gauge", []),
    "process_resident_memory_bytes": ("gauge", []),
    "process_virtual_memory_bytes": ("gauge", []),
}
OWN_FAMILIES = {
    "livenessprobe_checks_total": ("counter", ["result"]),
    "livenessprobe_requests_coalesced_total": ("counter", []),
    "livenessprobe_policy_fallbacks_total": ("counter", ["reason"]),
    "livenessprobe_policy_reloads_total": ("counter", ["result"]),
    "livenessprobe_policy_memory_bytes": ("gauge", []),
    "livenessprobe_healthy": ("gauge", ["endpoint"]),
    "livenessprobe_last_success_timestamp_seconds": ("gauge", ["endpoint"]),
    "livenessprobe_health_transitions_total": ("counter", ["endpoint", "to"]),
}
# The HELP texts the Prometheus Go client gives the process collector's families.
PROCESS_HELP = {
    "process_cpu_seconds_total": "Total user and system CPU time spent in seconds.",
    "process_max_fds": "Maximum number of open file descriptors.",
    "process_open_fds": "Number of open file descriptors.",
    "process_resident_memory_bytes": "Resident memory size in bytes.",
    "process_virtual_memory_bytes": "Virtual memory size in bytes.",
}

DRIVER = "seq.csi.example.com"
PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"

RAISING_POLICY = ("local policy = {}\n"
                  "function policy.check(ctx)\n"
                  "  error('policy bug')\n"
                  "end\n"
                  "return policy\n")


def good_policy(tag):
    """A policy answering like the built-in one, with tag as its healthy body."""
    return ("local policy = {}\n"
            "function policy.check(ctx)\n"
            "  local r = ctx.probe()\n"
            "  if not r.ok then return false, r.error end\n"
            "  return true, \"%s\"\n"
            "end\n"
            "return policy\n" % tag)


# ---------------------------------------------------------------------------
# A strict parser of the text exposition format 0.0.4

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % _NAME)
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
_HELP_RE = re.compile(r"^# HELP (%s) (.*)$" % _NAME)
_TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % _NAME)


def _unescape(value):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


class Sample:
    def __init__(self, name, labels, value, raw):
        self.name = name
        self.labels = labels  # [(name, value)] in the order printed
        self.value = value
        self.raw = raw

    def label(self, name):
        return dict(self.labels).get(name)


class Exposition:
    """One scrape: families in order, their HELP/TYPE, and their samples."""

    def __init__(self, text):
        self.text = text
        self.families = []  # names, in the order their HELP appears
        self.help = {}
        self.type = {}
        self.samples = []
        self.samples_of = {}  # family -> [Sample]
        if text and not text.endswith("\n"):
            raise AssertionError("exposition does not end in a newline")
        current = None
        for line in text.splitlines():
            m = _HELP_RE.match(line)
            if m:
                current = m.group(1)
                if current in self.help:
                    raise AssertionError("family %s announced twice" % current)
                self.families.append(current)
                self.help[current] = m.group(2)
                self.samples_of[current] = []
                continue
            m = _TYPE_RE.match(line)
            if m:
                if m.group(1) != current or current in self.type:
                    raise AssertionError("TYPE line out of place: %r" % line)
                self.type[current] = m.group(2)
                continue
            m = _SAMPLE_RE.match(line)
            if not m:
                raise AssertionError("not a HELP, TYPE or sample line: %r" % line)
            labels = []
            body = m.group(2) or ""
            pos = 0
            while pos < len(body):
                lm = _LABEL_RE.match(body, pos)
                if not lm:
                    raise AssertionError("bad labels in %r" % line)
                labels.append((lm.group(1), _unescape(lm.group(2))))
                pos = lm.end()
                if pos < len(body):
                    if body[pos] != ",":
                        raise AssertionError("bad labels in %r" % line)
                    pos += 1
            sample = Sample(m.group(1), labels, float(m.group(3)), line)
            # Every sample belongs to the family announced last.
            allowed = {current}
            if self.type.get(current) == "histogram":
                allowed = {current + s for s in ("_bucket", "_sum", "_count")}
            if current is None or sample.name not in allowed:
                raise AssertionError("sample %r outside its family (current %s)"
                                     % (line, current))
            self.samples.append(sample)
            self.samples_of[current].append(sample)

    def find(self, name, **labels):
        """Samples of metric name whose labels include labels."""
        return [s for s in self.samples if s.name == name
                and all(s.label(k) == v for k, v in labels.items())]

    def value(self, name, **labels):
        """The value of the one sample name{labels}, or None if absent."""
        found = [s for s in self.find(name, **labels)
                 if len(s.labels) == len(labels)]
        if len(found) > 1:
            raise AssertionError("several samples %s %s" % (name, labels))
        return found[0].value if found else None

    def ops_series(self):
        """{(driver, code, method): {"buckets": [...], "sum": x, "count": n}}."""
        out = {}
        for s in self.samples_of.get(OPS, []):
            d = dict(s.labels)
            key = (d.get("driver_name"), d.get("grpc_status_code"), d.get("method_name"))
            series = out.setdefault(key, {"buckets": [], "le": []})
            if s.name == OPS + "_bucket":
                series["le"].append(d["le"])
                series["buckets"].append(s.value)
            elif s.name == OPS + "_sum":
                series["sum"] = s.value
            else:
                series["count"] = s.value
        return out


# ---------------------------------------------------------------------------

class MetricsCase(h.LPTestCase):
    """Helpers: daemons serving metrics, and scrapes."""

    def endpoint_daemon(self, *args, csi=None, mock_args=(), metrics_path=None, **kw):
        """mock + daemon with --http-endpoint on 127.0.0.1 (health and metrics)."""
        if csi is None:
            mock = self.start_mock(*mock_args)
            csi = mock.socket_path
        else:
            mock = None
        port = h.free_port()
        argv = ["--http-endpoint=127.0.0.1:%d" % port]
        if metrics_path is not None:
            argv.append("--metrics-path=" + metrics_path)
        d = self.start_daemon(*(argv + list(args)), csi=csi, port=port,
                              health_port_flag=False, **kw)
        return mock, d

    def scrape_raw(self, port, path="/metrics", method="GET", headers=None):
        r = h.http_request(port, method, path, headers=headers)
        self.assertEqual(r.status, 200, "scrape %s %s: %r" % (method, path, r))
        self.assertEqual(r.header("Content-Type"), METRICS_TYPE)
        return r

    def scrape(self, port, path="/metrics"):
        r = self.scrape_raw(port, path)
        self.assertIsNone(r.header("Content-Encoding"))
        return Exposition(r.text())

    def assertNotFound(self, resp):
        self.assertEqual((resp.status, resp.body), (404, h.NOT_FOUND_BODY.encode()),
                         "want 404: %r" % resp)

    def assertIsExposition(self, resp):
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("Content-Type"), METRICS_TYPE)
        e = Exposition(resp.text())
        self.assertIn("process_start_time_seconds", e.families)
        return e


# ---------------------------------------------------------------------------
# 1. Routing (UPSTREAM.md §4.2, item 28)

class RoutingTest(MetricsCase):

    def test_health_port_only_serves_no_metrics(self):
        mock, d = self.healthy_daemon()
        self.assertHealthz(d.request(), 200, "ok")
        for path in ("/metrics", "/metrics/", "/custom/path"):
            with self.subTest(path=path):
                self.assertNotFound(d.request("GET", path))
        # --metrics-path alone enables nothing, and is not even validated
        # (upstream ignores it when metrics are off).
        d2 = self.start_daemon("--metrics-path=/m", csi=mock.socket_path)
        self.assertNotFound(d2.request("GET", "/m"))
        d3 = self.start_daemon("--metrics-path=metrics", csi=mock.socket_path)
        self.assertHealthz(d3.request(), 200, "ok")
        self.assertNotFound(d3.request("GET", "/metrics"))

    def test_http_endpoint_default_path(self):
        mock, d = self.endpoint_daemon()
        self.assertHealthz(d.request(), 200, "ok")
        self.assertIsExposition(d.request("GET", "/metrics"))
        for path in ("/metrics/", "/metricsx", "/metrics/x", "/"):
            with self.subTest(path=path):
                self.assertNotFound(d.request("GET", path))
        # Not canonical: ServeMux's redirect, as for /healthz.
        r = d.request("GET", "//metrics")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "/metrics")

    def test_http_endpoint_custom_path(self):
        mock, d = self.endpoint_daemon(metrics_path="/custom/path")
        self.assertHealthz(d.request(), 200, "ok")
        self.assertIsExposition(d.request("GET", "/custom/path"))
        self.assertIsExposition(d.request("GET", "/custom/path?x=1"))
        for path in ("/metrics", "/custom", "/custom/", "/custom/path/",
                     "/custom/path/x"):
            with self.subTest(path=path):
                self.assertNotFound(d.request("GET", path))

    def test_http_endpoint_subtree_path(self):
        # A path ending in "/" serves its whole subtree (UPSTREAM.md §1.2).
        mock, d = self.endpoint_daemon(metrics_path="/m/")
        self.assertHealthz(d.request(), 200, "ok")
        for path in ("/m/", "/m/x", "/m/metrics", "/m/a/b/c"):
            with self.subTest(path=path):
                self.assertIsExposition(d.request("GET", path))
        for path in ("/metrics", "/mx", "/x/m/"):
            with self.subTest(path=path):
                self.assertNotFound(d.request("GET", path))
        # /healthz still probes, nothing else answers it.
        before = mock.calls()
        self.assertHealthz(d.request(), 200, "ok")
        self.assertEqual(mock.calls(), before + 1)

    def test_metrics_address_separate_server(self):
        mock = self.start_mock()
        mport = h.free_port()
        d = self.start_daemon("--metrics-address=127.0.0.1:%d" % mport,
                              csi=mock.socket_path)
        # The metrics server: metrics only, no /healthz.
        self.assertIsExposition(h.http_request(mport, "GET", "/metrics"))
        before = mock.calls()
        self.assertNotFound(h.http_request(mport, "GET", "/healthz"))
        self.assertEqual(mock.calls(), before, "/healthz on the metrics server probed")
        # The health server: /healthz only.
        self.assertHealthz(d.request(), 200, "ok")
        self.assertNotFound(d.request("GET", "/metrics"))
        line = d.wait_log("Separate metrics ServeMux listening", 1.0)
        self.assertIsNotNone(line)
        self.assertEqual(h.parse_klog(line)[2], {"address": "127.0.0.1:%d" % mport})

    def test_metrics_address_custom_paths(self):
        mock = self.start_mock()
        for path, hits, misses in (
                ("/custom/path", ["/custom/path"], ["/metrics", "/custom/path/"]),
                ("/m/", ["/m/", "/m/x/y"], ["/metrics", "/healthz"]),
                # Its own server: /healthz is a legal metrics path there.
                ("/healthz", ["/healthz"], ["/metrics"])):
            with self.subTest(path=path):
                mport = h.free_port()
                d = self.start_daemon("--metrics-address=127.0.0.1:%d" % mport,
                                      "--metrics-path=" + path, csi=mock.socket_path)
                for p in hits:
                    self.assertIsExposition(h.http_request(mport, "GET", p))
                for p in misses:
                    self.assertNotFound(h.http_request(mport, "GET", p))
                # The health server keeps /healthz and has no metrics.
                self.assertHealthz(d.request(), 200, "ok")
                if path != "/healthz":
                    self.assertNotFound(d.request("GET", path))
                self.stop_daemon(d)

    def test_invalid_metrics_path_exits_2(self):
        cases = [
            ("--http-endpoint", "", "must not be empty"),
            ("--http-endpoint", "metrics", 'must start with "/"'),
            ("--http-endpoint", "/healthz", "already served"),
            ("--metrics-address", "", "must not be empty"),
            ("--metrics-address", "metrics", 'must start with "/"'),
        ]
        for flag, value, reason in cases:
            with self.subTest(flag=flag, value=value):
                port = h.free_port()
                rc, out, err = self.run_daemon(
                    "--csi-address=" + self.sock_path("absent.sock"),
                    "%s=127.0.0.1:%d" % (flag, port), "--metrics-path=" + value)
                self.assertEqual(rc, 2, err)
                self.assertEqual(out, "")
                first = err.splitlines()[0]
                self.assertTrue(first.startswith(
                    'invalid value "%s" for flag -metrics-path: ' % value), first)
                self.assertIn(reason, first)
                self.assertIn("Usage of ", err)
                # Refused before any socket was touched.
                self.assertNotIn("Calling CSI driver", err)


# ---------------------------------------------------------------------------
# 2. Exposition (UPSTREAM.md §4.1, §4.3, items 29-34; DESIGN.md "Metrics")

class ExpositionTest(MetricsCase):

    def test_startup_get_plugin_info_sample(self):
        mock, d = self.endpoint_daemon(mock_args=["--name=" + DRIVER])
        e = self.scrape(d.port)
        self.assertEqual(e.help.get(OPS), OPS_HELP)
        self.assertEqual(e.type.get(OPS), "histogram")
        series = e.ops_series()
        # Before any probe: exactly the start-up GetPluginInfo, under unknown-driver.
        self.assertEqual(list(series), [("unknown-driver", "OK", INFO)])
        s = series[("unknown-driver", "OK", INFO)]
        self.assertEqual(s["count"], 1)
        self.assertEqual(s["buckets"], [1] * 14)
        self.assertGreater(s["sum"], 0)
        self.assertLess(s["sum"], 1.0)
        self.assertEqual(mock.calls("GetPluginInfo"), 1)

    def test_slow_get_plugin_info_observed(self):
        # GetPluginInfo has no deadline; its real duration is observed.
        mock, d = self.endpoint_daemon(mock_args=["--info-delay=300ms"])
        s = self.scrape(d.port).ops_series()[("unknown-driver", "OK", INFO)]
        self.assertGreaterEqual(s["sum"], 0.3)
        self.assertLess(s["sum"], 0.3 + h.scaled(0.2))
        self.assertEqual(s["buckets"][:3], [0, 0, 1])  # le 0.1, 0.25, 0.5

    def drive(self, d, args, status, body, n):
        """Starts a mock with args on the daemon's socket; makes n probes
        answered (status, body) and returns (mock, how many probes it made
        in all, how many got each answer)."""
        mock = self.start_mock("--name=" + DRIVER, *args, path=self.sock)
        answers = {}
        got = 0
        deadline = time.monotonic() + h.scaled(3.0)
        while got < n:
            r = d.request()
            key = (r.status, r.body.decode())
            answers[key] = answers.get(key, 0) + 1
            if key == (status, body):
                got += 1
            else:
                # Only "not connected yet" may come before the restarted driver is found.
                self.assertEqual(key, (500, h.CONNECT_FAIL_BODY), args)
                self.assertLess(time.monotonic(), deadline, "driver %s never found" % args)
        return mock, answers

    def take_down(self, mock, how):
        """Ends mock; "silent" leaves a listening socket that never answers
        in its place (returned, to be closed by the caller)."""
        if how == "sigterm":
            self.stop_mock(mock)
            return None
        mock.signal(signal.SIGKILL)
        mock.wait(5)
        mock.close_files()
        if how == "sigkill":
            self.assertTrue(os.path.exists(self.sock))  # stale: connections refused
            return None
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.bind(self.sock)
        silent.listen(16)
        self.addCleanup(silent.close)
        return silent

    def test_probe_observations(self):
        # Item 32: one observation per probe that reached the driver, under the
        # real name and the Go code name; ready=false counts as OK; failed
        # connections add nothing. Also item 30 (buckets, label order).
        self.sock = self.sock_path()
        first = self.start_mock("--name=" + DRIVER, "--ready=unset", path=self.sock)
        port = h.free_port()
        d = self.start_daemon("--http-endpoint=127.0.0.1:%d" % port,
                              "--probe-timeout=300ms", csi=self.sock, port=port,
                              health_port_flag=False)
        fp_body = "rpc error: code = FailedPrecondition desc = plugin not healthy"
        steps = [
            (["--ready=unset"], 200, "ok", "OK", 3),
            (["--ready=true"], 200, "ok", "OK", 2),
            (["--ready=false"], 500, h.NOT_READY_BODY, "OK", 2),
            (["--probe-code=FailedPrecondition", "--probe-message=plugin not healthy"],
             500, fp_body, "FailedPrecondition", 2),
            (["--probe-hang"], 500, h.DEADLINE_BODY, "DeadlineExceeded", 2),
            # Slower than the first bucket: observed at le="0.25", not le="0.1".
            (["--ready=true", "--probe-delay=150ms"], 200, "ok", "OK", 2),
        ]
        want_count = {}
        statuses = {200: 0, 500: 0}
        delayed = 0
        mock = first
        for i, (args, status, body, code, n) in enumerate(steps):
            if i > 0:
                # Driver absent (socket gone, stale socket refusing, or a
                # socket that never speaks HTTP/2): these probes never
                # connect, so nothing is observed.
                how = ("sigterm", "sigkill", "silent")[i % 3]
                silent = self.take_down(mock, how)
                before = self.scrape(port).ops_series()
                for _ in range(2):
                    self.assertHealthz(d.request(), 500, h.CONNECT_FAIL_BODY)
                statuses[500] += 2
                self.assertEqual(self.scrape(port).ops_series(), before,
                                 "a probe that never connected (%s) was observed" % how)
                if silent is not None:
                    silent.close()
                    os.unlink(self.sock)
                mock, answers = self.drive(d, args, status, body, n)
            else:
                answers = {}
                for _ in range(n):
                    r = d.request()
                    key = (r.status, r.body.decode())
                    answers[key] = answers.get(key, 0) + 1
                self.assertEqual(answers, {(status, body): n})
            for (st, _), k in answers.items():
                statuses[st] += k
            # Every probe the driver saw was answered as it should be.
            self.assertEqual(mock.calls(), n, "step %d %s: %s" % (i, args, answers))
            want_count[code] = want_count.get(code, 0) + n
            if "--probe-delay=150ms" in args:
                delayed += n

        e = self.scrape(port)
        series = e.ops_series()
        want_keys = {("unknown-driver", "OK", INFO)}
        want_keys |= {(DRIVER, code, PROBE) for code in want_count}
        self.assertEqual(set(series), want_keys)
        for code, n in want_count.items():
            s = series[(DRIVER, code, PROBE)]
            with self.subTest(code=code):
                self.assertEqual(s["le"], BUCKETS)
                self.assertEqual(s["count"], n)
                self.assertEqual(s["buckets"][-1], n)  # +Inf == count
                self.assertEqual(s["buckets"], sorted(s["buckets"]), "not cumulative")
        ok = series[(DRIVER, "OK", PROBE)]
        # Fast answers land in le="0.1", the 150 ms ones from le="0.25" on.
        if not h.WRAPPER:
            self.assertEqual(ok["buckets"][0], want_count["OK"] - delayed)
        self.assertEqual(ok["buckets"][1], want_count["OK"])
        self.assertGreaterEqual(ok["sum"], 0.15 * delayed)
        self.assertLess(ok["sum"], 0.15 * delayed + h.scaled(0.05) * want_count["OK"])
        # The hung probes: observed at the 300 ms deadline.
        late = series[(DRIVER, "DeadlineExceeded", PROBE)]
        n = want_count["DeadlineExceeded"]
        self.assertEqual(late["buckets"][:2], [0, 0])
        self.assertEqual(late["buckets"][2], n)
        self.assertGreaterEqual(late["sum"], 0.28 * n)
        self.assertLessEqual(late["sum"], (0.3 + h.scaled(0.05)) * n)
        fp = series[(DRIVER, "FailedPrecondition", PROBE)]
        if not h.WRAPPER:
            self.assertEqual(fp["buckets"][0], want_count["FailedPrecondition"])

        # Label order: driver_name, grpc_status_code, method_name, then le.
        for s in e.samples_of[OPS]:
            names = [k for k, _ in s.labels]
            want = OPS_LABELS + (["le"] if s.name.endswith("_bucket") else [])
            self.assertEqual(names, want, s.raw)
        # Series sorted by label values; within a series buckets, _sum, _count.
        keys = []
        for s in e.samples_of[OPS]:
            k = tuple(v for _, v in s.labels[:3])
            if not keys or keys[-1] != k:
                keys.append(k)
        self.assertEqual(keys, sorted(keys))
        self.assertEqual(len(keys), len(set(keys)), "a series is split")
        for k in keys:
            names = [s.name for s in e.samples_of[OPS]
                     if tuple(v for _, v in s.labels[:3]) == k]
            self.assertEqual(names, [OPS + "_bucket"] * 14 + [OPS + "_sum", OPS + "_count"])

        # livenessprobe_checks_total: one check per sequential request.
        self.assertEqual(e.value("livenessprobe_checks_total", result="healthy"),
                         statuses[200])
        self.assertEqual(e.value("livenessprobe_checks_total", result="unhealthy"),
                         statuses[500])
        self.assertEqual(e.value("livenessprobe_requests_coalesced_total"), 0)

    def test_families_sorted_with_help_and_type(self):
        mock, d = self.endpoint_daemon()
        self.assertHealthz(d.request(), 200, "ok")
        e = self.scrape(d.port)
        self.assertEqual(e.families, sorted(e.families))
        for fam in e.families:
            with self.subTest(family=fam):
                self.assertIn(fam, e.type, "no TYPE line")
                self.assertNotEqual(e.help[fam].strip(), "", "empty HELP")
        self.assertEqual(e.help["process_start_time_seconds"], START_HELP)
        self.assertEqual(e.type["process_start_time_seconds"], "gauge")
        for fam, help_text in PROCESS_HELP.items():
            with self.subTest(family=fam):
                self.assertEqual(e.help.get(fam), help_text)
                self.assertEqual(e.type.get(fam), PROCESS_FAMILIES[fam][0])
        # Nothing but the families DESIGN.md lists (no go_*, no strays).
        known = set(UPSTREAM_FAMILIES) | set(PROCESS_FAMILIES) | set(OWN_FAMILIES)
        self.assertEqual(set(e.families) - known, set())

    def test_own_families_present(self):
        # DESIGN.md "Metrics": every livenessprobe_* family, with HELP and TYPE.
        mock, d = self.endpoint_daemon()
        self.assertHealthz(d.request(), 200, "ok")
        e = self.scrape(d.port)
        # The fallbacks family has series only once a policy failed (its
        # labels are reasons); test_policy_fallbacks covers it.
        expected = [f for f in OWN_FAMILIES if f != "livenessprobe_policy_fallbacks_total"]
        missing = [f for f in expected if f not in e.families]
        self.assertEqual(missing, [], "families DESIGN.md promises are not exposed")
        for fam in expected:
            self.assertEqual(e.type[fam], OWN_FAMILIES[fam][0], fam)

    def test_no_family_without_samples(self):
        # The Prometheus Go client drops a family with no series from the
        # exposition; a lone HELP/TYPE pair is not what upstream prints.
        mock, d = self.endpoint_daemon()
        self.assertHealthz(d.request(), 200, "ok")
        e = self.scrape(d.port)
        empty = [f for f in e.families if not e.samples_of[f]]
        self.assertEqual(empty, [], "families announced without any sample")

    def test_label_names_per_family(self):
        mock, d = self.endpoint_daemon()
        self.assertHealthz(d.request(), 200, "ok")
        e = self.scrape(d.port)
        families = dict(UPSTREAM_FAMILIES, **PROCESS_FAMILIES, **OWN_FAMILIES)
        for fam in e.families:
            want = families[fam][1]
            for s in e.samples_of[fam]:
                names = [k for k, _ in s.labels if k != "le"]
                self.assertEqual(names, want, s.raw)

    def test_checks_total(self):
        mock, d = self.endpoint_daemon("--probe-timeout=200ms",
                                       mock_args=["--ready=false"])
        e = self.scrape(d.port)
        self.assertEqual(e.value("livenessprobe_checks_total", result="healthy"), 0)
        self.assertEqual(e.value("livenessprobe_checks_total", result="unhealthy"), 0)
        for _ in range(3):
            self.assertHealthz(d.request(), 500, h.NOT_READY_BODY)
        self.assertHealthz(d.request("HEAD"), 500, b"")
        self.stop_mock(mock)
        mock = self.start_mock(path=mock.socket_path)
        for _ in range(20):
            if d.request().status == 200:
                break
        e = self.scrape(d.port)
        healthy = e.value("livenessprobe_checks_total", result="healthy")
        unhealthy = e.value("livenessprobe_checks_total", result="unhealthy")
        self.assertEqual(healthy, 1)
        self.assertGreaterEqual(unhealthy, 4)
        # Scrapes and 404s are not checks.
        d.request("GET", "/nope")
        self.scrape(d.port)
        e2 = self.scrape(d.port)
        self.assertEqual(e2.value("livenessprobe_checks_total", result="healthy"), healthy)
        self.assertEqual(e2.value("livenessprobe_checks_total", result="unhealthy"),
                         unhealthy)

    def test_requests_coalesced(self):
        mock, d = self.endpoint_daemon("--probe-timeout=3s",
                                       mock_args=["--probe-delay=600ms"])
        n = 6
        results = h.run_parallel(lambda i: d.request(), n)
        for r in results:
            self.assertNotIsInstance(r, Exception)
            self.assertHealthz(r, 200, "ok")
        e = self.scrape(d.port)
        checks = e.value("livenessprobe_checks_total", result="healthy")
        coalesced = e.value("livenessprobe_requests_coalesced_total")
        self.assertGreater(coalesced, 0)
        # Every request either started a check or joined one.
        self.assertEqual(checks + coalesced, n)
        self.assertEqual(mock.calls(), checks)
        self.assertEqual(e.ops_series()[(h.MOCK_NAME, "OK", PROBE)]["count"], checks)

    def test_policy_fallbacks(self):
        mock = self.start_mock()
        policy = os.path.join(self.tmp, "policy.lua")
        with open(policy, "w") as f:
            f.write(RAISING_POLICY)
        mock, d = self.endpoint_daemon("--policy=" + policy, csi=mock.socket_path)
        for _ in range(3):
            self.assertHealthz(d.request(), 200, "ok")  # the built-in verdict
        e = self.scrape(d.port)
        self.assertEqual(e.type.get("livenessprobe_policy_fallbacks_total"), "counter")
        self.assertEqual(
            [(s.labels, s.value) for s in e.find("livenessprobe_policy_fallbacks_total")],
            [([("reason", "error")], 3)])
        self.assertEqual(e.value("livenessprobe_checks_total", result="healthy"), 3)

    def test_policy_reloads(self):
        mock = self.start_mock()
        policy = os.path.join(self.tmp, "policy.lua")
        with open(policy, "w") as f:
            f.write(good_policy("v1"))
        mock, d = self.endpoint_daemon("--policy=" + policy, csi=mock.socket_path)
        self.assertHealthz(d.request(), 200, "v1")
        with open(policy + ".new", "w") as f:
            f.write(good_policy("v2"))
        os.rename(policy + ".new", policy)
        self.assertIsNotNone(d.wait_log('"Policy reloaded"', h.scaled(3.0)), d.stderr())
        self.assertHealthz(d.request(), 200, "v2")
        with open(policy + ".new", "w") as f:
            f.write("return {check = \n")
        os.rename(policy + ".new", policy)
        self.assertIsNotNone(d.wait_log('"Policy reload failed', h.scaled(3.0)), d.stderr())
        self.assertHealthz(d.request(), 200, "v2")
        e = self.scrape(d.port)
        self.assertEqual(e.type.get("livenessprobe_policy_reloads_total"), "counter",
                         "livenessprobe_policy_reloads_total not exposed")
        self.assertEqual(e.value("livenessprobe_policy_reloads_total", result="success"), 1)
        self.assertEqual(e.value("livenessprobe_policy_reloads_total", result="failure"), 1)

    def test_policy_memory_bytes(self):
        for custom in (False, True):
            with self.subTest(custom=custom):
                args = []
                if custom:
                    policy = os.path.join(self.tmp, "policy.lua")
                    with open(policy, "w") as f:
                        f.write(good_policy("custom"))
                    args.append("--policy=" + policy)
                mock, d = self.endpoint_daemon(*args)
                self.assertEqual(d.request().status, 200)
                e = self.scrape(d.port)
                self.assertEqual(e.type.get("livenessprobe_policy_memory_bytes"), "gauge",
                                 "livenessprobe_policy_memory_bytes not exposed")
                value = e.value("livenessprobe_policy_memory_bytes")
                self.assertIsNotNone(value)
                # A Lua state holds some KiB, and stays under the 16 MiB cap.
                self.assertGreater(value, 1024)
                self.assertLessEqual(value, 16 * 1024 * 1024)

    def test_process_families(self):
        t0 = time.time()
        mock, d = self.endpoint_daemon()
        t1 = time.time()
        for _ in range(3):
            self.assertHealthz(d.request(), 200, "ok")
        e = self.scrape(d.port)
        for fam, (typ, _) in PROCESS_FAMILIES.items():
            self.assertEqual(e.type.get(fam), typ, fam)
            self.assertEqual(len(e.samples_of[fam]), 1, fam)
        # Start time: the daemon's real start, and what /proc says to 1/100 s.
        start = e.value("process_start_time_seconds")
        self.assertGreaterEqual(start, t0 - 2.0)  # /proc/stat btime is whole seconds
        self.assertLessEqual(start, t1 + 2.0)
        with open("/proc/stat") as f:
            btime = int(next(l for l in f if l.startswith("btime ")).split()[1])
        with open("/proc/%d/stat" % d.pid) as f:
            stat = f.read()
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        self.assertAlmostEqual(start, btime + ticks / h.CLOCK_TICKS, delta=0.011)
        # Shortest Go formatting: at 1e9 seconds, exponent form.
        raw = e.find("process_start_time_seconds")[0].raw
        self.assertRegex(raw, r"^process_start_time_seconds \d\.\d+e\+09$")

        status = d.proc_status()
        self.assertAlmostEqual(e.value("process_virtual_memory_bytes"),
                               int(status["VmSize"].split()[0]) * 1024,
                               delta=8 * 1024 * 1024)
        rss = int(status["VmRSS"].split()[0]) * 1024
        self.assertAlmostEqual(e.value("process_resident_memory_bytes"), rss,
                               delta=max(2 * 1024 * 1024, rss * 0.2))
        fds = d.fd_count()
        self.assertAlmostEqual(e.value("process_open_fds"), fds, delta=2)
        with open("/proc/%d/limits" % d.pid) as f:
            soft = next(l for l in f if l.startswith("Max open files")).split()[3]
        self.assertEqual(e.value("process_max_fds"), float(soft))
        cpu = e.value("process_cpu_seconds_total")
        self.assertGreaterEqual(cpu, 0)
        self.assertLessEqual(cpu, h.cpu_ticks(d.pid) / h.CLOCK_TICKS + 0.05)

    def test_cpu_seconds_grows(self):
        mock, d = self.endpoint_daemon()
        before = self.scrape(d.port).value("process_cpu_seconds_total")
        # Busy the daemon a little: many scrapes.
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            self.scrape_raw(d.port)
        after = self.scrape(d.port).value("process_cpu_seconds_total")
        self.assertGreater(after, before)
        self.assertAlmostEqual(after, h.cpu_ticks(d.pid) / h.CLOCK_TICKS, delta=0.05)

    def test_any_method(self):
        mock, d = self.endpoint_daemon()
        get = self.scrape_raw(d.port, method="GET")
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            with self.subTest(method=method):
                r = self.scrape_raw(d.port, method=method)
                self.assertIn(OPS, r.text())
                Exposition(r.text())
        # HEAD: headers only (the next response on the connection parses
        # right after them), with the Content-Length a GET would get.
        conn = h.HTTPConn(d.port)
        try:
            head = conn.request("HEAD", "/metrics")
            after = conn.request("GET", "/healthz")
        finally:
            conn.close()
        self.assertEqual(head.status, 200)
        self.assertEqual(head.header("Content-Type"), METRICS_TYPE)
        self.assertAlmostEqual(int(head.header("Content-Length")), len(get.body), delta=64)
        self.assertHealthz(after, 200, "ok")

    def test_gzip(self):
        mock, d = self.endpoint_daemon()
        self.assertHealthz(d.request(), 200, "ok")
        for ae in ("gzip", "gzip, deflate, br", "deflate;q=0.5, gzip;q=0.8"):
            with self.subTest(accept_encoding=ae):
                z = self.scrape_raw(d.port, headers=[("Accept-Encoding", ae)])
                plain = self.scrape_raw(d.port)
                self.assertEqual(z.header("Content-Encoding"), "gzip")
                self.assertEqual(int(z.header("Content-Length")), len(z.body))
                self.assertEqual(z.body[:2], b"\x1f\x8b")
                text = gzip.decompress(z.body).decode()
                # Same text, but for the process figures that move between scrapes.
                moving = ("process_cpu_seconds_total ", "process_resident_memory_bytes ",
                          "process_virtual_memory_bytes ", "process_open_fds ")

                def steady(t):
                    return [l for l in t.splitlines() if not l.startswith(moving)]
                self.assertEqual(steady(text), steady(plain.text()))
                Exposition(text)
        for ae in ("identity", "gzip;q=0", "deflate"):
            with self.subTest(accept_encoding=ae):
                r = self.scrape_raw(d.port, headers=[("Accept-Encoding", ae)])
                self.assertIsNone(r.header("Content-Encoding"))
                Exposition(r.text())


# ---------------------------------------------------------------------------
# 3. promtool

class PromtoolTest(MetricsCase):

    def promtool(self, text):
        self.assertTrue(os.access(PROMTOOL, os.X_OK),
                        "%s missing: install Debian's prometheus package" % PROMTOOL)
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, "promtool check metrics failed:\n%s%s\n--- text:\n%s"
                         % (p.stdout.decode(), p.stderr.decode(), text))

    def test_promtool_check_metrics(self):
        mock = self.start_mock("--probe-code=Unavailable", "--probe-message=a \"quoted\"\nx")
        policy = os.path.join(self.tmp, "policy.lua")
        with open(policy, "w") as f:
            f.write(RAISING_POLICY)
        _, plain = self.endpoint_daemon(csi=mock.socket_path)
        _, custom = self.endpoint_daemon("--policy=" + policy, csi=mock.socket_path)
        for d in (plain, custom):
            for _ in range(3):
                self.assertEqual(d.request().status, 500)
        for d in (plain, custom):
            text = self.scrape_raw(d.port).text()
            self.promtool(text)
            z = self.scrape_raw(d.port, headers=[("Accept-Encoding", "gzip")])
            self.promtool(gzip.decompress(z.body).decode())


# ---------------------------------------------------------------------------
# 4. A real Prometheus

def _api(port, query):
    url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (port, urllib.parse.quote(query))
    with urllib.request.urlopen(url, timeout=5) as r:
        data = json.loads(r.read().decode())
    if data.get("status") != "success":
        raise AssertionError("query %s: %s" % (query, data))
    return data["data"]["result"]


class PrometheusTest(MetricsCase):

    def start_prometheus(self, target):
        self.assertTrue(os.access(PROMETHEUS, os.X_OK),
                        "%s missing: install Debian's prometheus package" % PROMETHEUS)
        port = h.free_port()
        config = os.path.join(self.tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n"
                    "  scrape_interval: 1s\n"
                    "  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: livenessprobe\n"
                    "    static_configs:\n"
                    "      - targets: ['%s']\n" % target)
        data = os.path.join(self.tmp, "tsdb")
        os.mkdir(data)
        p = h.Proc([PROMETHEUS, "--config.file=" + config,
                    "--storage.tsdb.path=" + data,
                    "--web.listen-address=127.0.0.1:%d" % port,
                    "--log.level=warn"], self.tmp, "prometheus", cwd=self.tmp)
        self._procs.append(p)  # killed at teardown whatever happens
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port,
                                            timeout=2) as r:
                    if r.status == 200:
                        return p, port
            except OSError:
                pass
            if not p.alive():
                self.fail("prometheus exited %s: %s" % (p.returncode(), p.stderr()[-3000:]))
            if time.monotonic() > deadline:
                self.fail("prometheus not ready after 20s: %s" % p.stderr()[-3000:])
            time.sleep(0.2)

    def poll(self, port, query, want, within=20.0):
        """Polls query until its single result has value want; returns results."""
        deadline = time.monotonic() + within
        last = None
        while True:
            last = _api(port, query)
            if len(last) == 1 and float(last[0]["value"][1]) == want:
                return last
            if time.monotonic() > deadline:
                self.fail("%s: want %s, last answer %s" % (query, want, last))
            time.sleep(0.5)

    def test_prometheus_scrapes(self):
        mock, d = self.endpoint_daemon(mock_args=["--name=" + DRIVER])
        prom, pport = self.start_prometheus("127.0.0.1:%d" % d.port)
        n = 4
        for _ in range(n):
            self.assertHealthz(d.request(), 200, "ok")
        result = self.poll(pport, 'sum(csi_sidecar_operations_seconds_count'
                                  '{method_name="/csi.v1.Identity/Probe"})', n)
        self.assertEqual(len(result), 1)
        series = _api(pport, 'csi_sidecar_operations_seconds_count'
                             '{method_name="/csi.v1.Identity/Probe"}')
        self.assertEqual(len(series), 1, series)
        labels = series[0]["metric"]
        self.assertEqual(labels["driver_name"], DRIVER)
        self.assertEqual(labels["grpc_status_code"], "OK")
        self.assertEqual(labels["job"], "livenessprobe")
        self.assertEqual(float(series[0]["value"][1]), n)
        self.poll(pport, 'up{job="livenessprobe"}', 1)
        self.poll(pport, 'livenessprobe_checks_total{result="healthy"}', n, within=5)
        info = _api(pport, 'csi_sidecar_operations_seconds_count'
                           '{method_name="/csi.v1.Identity/GetPluginInfo"}')
        self.assertEqual([(s["metric"]["driver_name"], float(s["value"][1])) for s in info],
                         [("unknown-driver", 1.0)])
        # The scrape itself was healthy: no error on the target.
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/targets" % pport,
                                    timeout=5) as r:
            targets = json.loads(r.read().decode())["data"]["activeTargets"]
        self.assertEqual([(t["health"], t["lastError"]) for t in targets], [("up", "")])
        # Stop Prometheus: no orphans.
        prom.signal(signal.SIGTERM)
        rc = prom.wait(20)
        if rc is None:
            prom.kill()
            self.fail("prometheus still running 20 s after SIGTERM")
        self.assertEqual(rc, 0, prom.stderr()[-2000:])


# ---------------------------------------------------------------------------
# 5. Log fields, both formats (UPSTREAM.md §1.3)

class LogFieldsTest(MetricsCase):

    JSON_CALLER = re.compile(r"^([A-Za-z0-9_\-./]+\.c):([1-9][0-9]*)$")

    def assertCallerExists(self, caller):
        m = self.JSON_CALLER.match(caller)
        self.assertIsNotNone(m, "caller %r is not file.c:N" % caller)
        path = os.path.join(h.SOURCE_DIR, "src", m.group(1))
        self.assertTrue(os.path.exists(path), "caller names no source file: %r" % caller)
        with open(path) as f:
            self.assertLessEqual(int(m.group(2)), len(f.readlines()), caller)

    def test_json_fields(self):
        before = time.time() * 1000
        mock, d = self.healthy_daemon("--logging-format=json", "--probe-timeout=300ms",
                                      mock_args=["--probe-code=FailedPrecondition",
                                                 "--probe-message=plugin not healthy"])
        for _ in range(2):
            self.assertEqual(d.request().status, 500)
        # Both error lines (written before the answers, but be sure).
        self.assertTrue(h.wait_until(
            lambda: d.stderr().count('"msg":"Health check failed"') >= 2, 5.0))
        after = time.time() * 1000
        lines = d.log_lines()
        self.assertGreaterEqual(len(lines), 5)
        infos, errors = [], []
        for line in lines:
            # ts is a float of milliseconds, written first.
            self.assertRegex(line, r'^\{"ts":\d{13}\.\d+,"caller":"', line)
            rec = json.loads(line)
            self.assertIsInstance(rec, dict)
            self.assertIsInstance(rec["ts"], float)
            self.assertGreaterEqual(rec["ts"], before - 5)
            self.assertLessEqual(rec["ts"], after + 5)
            self.assertEqual(list(rec)[:3], ["ts", "caller", "msg"], line)
            self.assertCallerExists(rec["caller"])
            (errors if "err" in rec else infos).append(rec)
        # Info records carry v (after msg), error records err and no v.
        for rec in infos:
            self.assertEqual(list(rec)[3], "v", rec)
            self.assertIsInstance(rec["v"], int)
            self.assertEqual(rec["v"], 0)
        self.assertEqual(len(errors), 2)
        for rec in errors:
            self.assertNotIn("v", rec)
            self.assertEqual(rec["msg"], "Health check failed")
            self.assertEqual(rec["err"], "rpc error: code = FailedPrecondition "
                                         "desc = plugin not healthy")
        msgs = [r["msg"] for r in infos]
        self.assertIn("CSI driver name", msgs)
        self.assertIn("ServeMux listening", msgs)
        named = next(r for r in infos if r["msg"] == "CSI driver name")
        self.assertEqual(named["driver"], h.MOCK_NAME)
        # The ts values are in order.
        ts = [json.loads(l)["ts"] for l in lines]
        self.assertEqual(ts, sorted(ts))

    def test_json_v_levels(self):
        mock, d = self.healthy_daemon("--logging-format=json", "-v=5")
        since = len(d.log_lines())
        self.assertHealthz(d.request(), 200, "ok")
        # The check's last line (written before the answer, but be sure).
        self.assertTrue(h.wait_until(
            lambda: '"msg":"Health check succeeded"' in d.stderr(), 5.0))
        recs = [json.loads(l) for l in d.log_lines()[since:]]
        self.assertTrue(recs)
        for rec in recs:
            self.assertEqual(rec.get("v"), 5, rec)
            self.assertNotIn("err", rec)
            self.assertCallerExists(rec["caller"])

    def test_text_fields(self):
        mock, d = self.healthy_daemon("--probe-timeout=300ms",
                                      mock_args=["--probe-code=FailedPrecondition",
                                                 "--probe-message=plugin not healthy"])
        self.assertEqual(d.request().status, 500)
        # The error line (written before the answer, but be sure).
        self.assertIsNotNone(d.wait_log('"Health check failed"', h.scaled(5.0)))
        parsed = []
        for line in d.log_lines():
            m = h.KLOG_RE.match(line)
            self.assertIsNotNone(m, line)
            self.assertCallerExists(m.group(5))
            parsed.append(h.parse_klog(line))
        self.assertIn(("I", "CSI driver name", {"driver": h.MOCK_NAME}), parsed)
        self.assertEqual(
            [p for p in parsed if p[0] == "E"],
            [("E", "Health check failed",
              {"err": "rpc error: code = FailedPrecondition desc = plugin not healthy"})])


if __name__ == "__main__":
    h.main()
