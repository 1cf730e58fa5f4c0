"""Command-line compatibility: Go flag syntax, errors, defaults.

UPSTREAM.md §1.1-§1.4 and checklist items 1-7; DESIGN.md "Flags".
"""

import re
import time

import lpharness as h

FLAG_FORMS = [
    lambda f, v: ["-%s=%s" % (f, v)],
    lambda f, v: ["-%s" % f, v],
    lambda f, v: ["--%s=%s" % (f, v)],
    lambda f, v: ["--%s" % f, v],
]
FORM_NAMES = ["-f=v", "-f v", "--f=v", "--f v"]


def usage_blocks(text):
    """{flag name: its usage text} parsed from Go-style usage output."""
    blocks = {}
    name = None
    for line in text.splitlines():
        m = re.match(r"^  -(\S+)", line)
        if m:
            name = m.group(1)
            blocks[name] = line
        elif name and line.startswith("    \t"):
            blocks[name] += "\n" + line
    return blocks


class FlagSyntaxTest(h.LPTestCase):
    """Item 1: every program flag, one or two dashes, "=" or a space."""

    def setUp(self):
        super().setUp()
        self.mock = self.start_mock()

    def start_raw(self, args, port, host="127.0.0.1"):
        return self.start_daemon(*args, port=port, host=host,
                                 health_port_flag=False)

    def test_csi_address_forms(self):
        for form, name in zip(FLAG_FORMS, FORM_NAMES):
            with self.subTest(form=name):
                before = self.mock.calls()
                port = h.free_port()
                d = self.start_raw(form("csi-address", self.mock.socket_path)
                                   + ["--health-port=%d" % port], port)
                self.assertHealthz(d.request(), 200, "ok")
                self.assertEqual(self.mock.calls(), before + 1)
                self.stop_daemon(d)

    def test_health_port_forms(self):
        for form, name in zip(FLAG_FORMS, FORM_NAMES):
            with self.subTest(form=name):
                port = h.free_port()
                d = self.start_raw(["--csi-address=" + self.mock.socket_path]
                                   + form("health-port", str(port)), port)
                self.assertHealthz(d.request(), 200, "ok")
                self.stop_daemon(d)

    def test_probe_timeout_forms(self):
        hang = self.start_mock("--probe-hang", path=self.sock_path("hang.sock"))
        for form, name in zip(FLAG_FORMS, FORM_NAMES):
            with self.subTest(form=name):
                port = h.free_port()
                d = self.start_raw(["--csi-address=" + hang.socket_path,
                                    "--health-port=%d" % port]
                                   + form("probe-timeout", "300ms"), port)
                r = d.request()
                self.assertHealthz(r, 500, h.DEADLINE_BODY)
                self.assertAtDeadline(r, 0.3)
                self.stop_daemon(d)

    def test_http_endpoint_forms(self):
        for form, name in zip(FLAG_FORMS, FORM_NAMES):
            with self.subTest(form=name):
                port = h.free_port()
                d = self.start_raw(["--csi-address=" + self.mock.socket_path]
                                   + form("http-endpoint", "127.0.0.1:%d" % port),
                                   port)
                self.assertHealthz(d.request(), 200, "ok")
                # The endpoint carries the metrics too (UPSTREAM §4.2).
                self.assertEqual(d.request("GET", "/metrics").status, 200)
                self.stop_daemon(d)

    def test_metrics_address_forms(self):
        for form, name in zip(FLAG_FORMS, FORM_NAMES):
            with self.subTest(form=name):
                port, mport = h.free_port(), h.free_port()
                d = self.start_raw(["--csi-address=" + self.mock.socket_path,
                                    "--health-port=%d" % port]
                                   + form("metrics-address", "127.0.0.1:%d" % mport),
                                   port)
                m = h.http_request(mport, "GET", "/metrics")
                self.assertEqual(m.status, 200)
                self.assertIn(b"process_start_time_seconds", m.body)
                # Only the separate server carries the metrics.
                self.assertEqual(d.request("GET", "/metrics").status, 404)
                self.stop_daemon(d)

    def test_metrics_path_forms(self):
        for form, name in zip(FLAG_FORMS, FORM_NAMES):
            with self.subTest(form=name):
                port = h.free_port()
                d = self.start_raw(["--csi-address=" + self.mock.socket_path,
                                    "--http-endpoint=127.0.0.1:%d" % port]
                                   + form("metrics-path", "/custom"), port)
                m = d.request("GET", "/custom")
                self.assertEqual(m.status, 200)
                self.assertIn(b"process_start_time_seconds", m.body)
                self.assertEqual(d.request("GET", "/metrics").status, 404)
                self.stop_daemon(d)

    def test_last_value_wins(self):
        port = h.free_port()
        d = self.start_raw(["--csi-address=/nonexistent/x.sock",
                            "--csi-address=" + self.mock.socket_path,
                            "--health-port=1", "-health-port=%d" % port], port)
        self.assertHealthz(d.request(), 200, "ok")

    def test_first_positional_ends_parsing(self):
        # Item 4: "extra" ends parsing; the bogus endpoint after it is ignored.
        port = h.free_port()
        d = self.start_raw(["--csi-address", self.mock.socket_path,
                            "--health-port", str(port), "extra",
                            "--http-endpoint=bogus"], port)
        self.assertHealthz(d.request(), 200, "ok")
        self.assertEqual(d.stdout(), "")

    def test_double_dash_ends_parsing(self):
        port = h.free_port()
        d = self.start_raw(["--csi-address=" + self.mock.socket_path,
                            "--health-port=%d" % port, "--",
                            "--probe-timeout=abc", "--nope"], port)
        self.assertHealthz(d.request(), 200, "ok")

    def test_bool_flag_does_not_take_next_argument(self):
        # "-logtostderr false": "false" is a positional argument that ends
        # parsing, so the bad endpoint after it is never read.
        port = h.free_port()
        d = self.start_raw(["--csi-address=" + self.mock.socket_path,
                            "--health-port=%d" % port, "-logtostderr", "false",
                            "--http-endpoint=bogus"], port)
        self.assertHealthz(d.request(), 200, "ok")


class HelpAndErrorsTest(h.LPTestCase):
    """Items 2-3 and §1.2: usage, unknown flags, bad values, exit codes."""

    def assertUsageError(self, rc, out, err, first_line):
        self.assertEqual(rc, 2, err)
        self.assertEqual(out, "")
        lines = err.splitlines()
        self.assertGreaterEqual(len(lines), 2, err)
        self.assertEqual(lines[0], first_line)
        self.assertTrue(lines[1].startswith("Usage of "), err)

    def test_help(self):
        for flag in ("-h", "--help", "-help", "--h"):
            with self.subTest(flag=flag):
                rc, out, err = self.run_daemon(flag)
                self.assertEqual(rc, 0)
                self.assertEqual(out, "")
                self.assertTrue(err.startswith("Usage of "), err[:200])
                self.assertIn("-csi-address", err)

    def test_help_shows_defaults(self):
        # Item 2 (probe-timeout 1s kept on purpose, DESIGN.md).
        rc, _, err = self.run_daemon("-h")
        self.assertEqual(rc, 0)
        b = usage_blocks(err)
        self.assertRegex(b["csi-address"], r'^  -csi-address string\n')
        self.assertIn('(default "/run/csi/socket")', b["csi-address"])
        self.assertIn('(default "9808")', b["health-port"])
        self.assertIn('(default "/metrics")', b["metrics-path"])
        self.assertRegex(b["probe-timeout"], r"^  -probe-timeout duration\n")
        self.assertIn("(default 1s)", b["probe-timeout"])
        self.assertNotIn("(default", b["http-endpoint"])
        self.assertNotIn("(default", b["metrics-address"])
        for name in ("v", "vmodule", "logging-format", "log-flush-frequency",
                     "automaxprocs", "logtostderr", "alsologtostderr", "log_dir",
                     "version", "policy", "check-timeout"):
            self.assertIn(name, b)

    def test_unknown_flag(self):
        for args, name in ((["--nope"], "nope"), (["-nope=1"], "nope"),
                           (["--Health-port=1"], "Health-port"),
                           (["--csi-address=/x", "--timeout=1s"], "timeout")):
            with self.subTest(args=args):
                rc, out, err = self.run_daemon(*args)
                self.assertUsageError(rc, out, err,
                                      "flag provided but not defined: -" + name)

    def test_malformed_duration(self):
        for value in ("abc", "5", "1x", "--"):
            with self.subTest(value=value):
                rc, out, err = self.run_daemon("--probe-timeout=" + value)
                self.assertUsageError(
                    rc, out, err,
                    'invalid value "%s" for flag -probe-timeout: parse error' % value)

    def test_bare_duration_with_space(self):
        rc, out, err = self.run_daemon("--probe-timeout", "5")
        self.assertUsageError(
            rc, out, err, 'invalid value "5" for flag -probe-timeout: parse error')

    def test_missing_value(self):
        rc, out, err = self.run_daemon("--csi-address")
        self.assertUsageError(rc, out, err,
                              "flag needs an argument: -csi-address")

    def test_bad_int(self):
        rc, out, err = self.run_daemon("-v=x")
        self.assertUsageError(
            rc, out, err, 'invalid value "x" for flag -v: '
            'strconv.ParseInt: parsing "x": invalid syntax')

    def test_three_dashes(self):
        rc, out, err = self.run_daemon("---csi-address=/x")
        self.assertUsageError(rc, out, err, "bad flag syntax: ---csi-address=/x")

    def test_bool_values(self):
        # §1.4: the values Go's strconv.ParseBool takes.
        for value in ("true", "false", "1", "0", "t", "f", "T", "F", "TRUE",
                      "FALSE", "True", "False"):
            with self.subTest(value=value):
                rc, out, _ = self.run_daemon("-automaxprocs=" + value, "--version")
                self.assertEqual(rc, 0)
                self.assertNotEqual(out, "")
        rc, out, err = self.run_daemon("-automaxprocs=maybe")
        self.assertEqual(rc, 2)
        self.assertIn('invalid boolean value "maybe" for -automaxprocs', err)

    def test_version(self):
        rc, out, err = self.run_daemon("--version")
        self.assertEqual(rc, 0)
        self.assertEqual(len(out.splitlines()), 1, out)
        self.assertIn("livenessprobe", out)
        self.assertNotIn("Usage of", err)

    def test_bad_logging_format(self):
        rc, out, err = self.run_daemon("--logging-format=xml")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("LoggingConfiguration is invalid", err)

    def test_bad_log_flush_frequency(self):
        rc, _, err = self.run_daemon("--log-flush-frequency=0")
        self.assertEqual(rc, 1)
        self.assertIn("LoggingConfiguration is invalid", err)

    def test_vmodule_with_json(self):
        rc, _, err = self.run_daemon("--vmodule=check=5", "--logging-format=json")
        self.assertEqual(rc, 1)
        self.assertIn("LoggingConfiguration is invalid", err)

    def test_bad_metrics_path(self):
        # DESIGN.md: an invalid --metrics-path is a bad value (exit 2).
        for value in ("", "metrics", "/healthz"):
            with self.subTest(value=value):
                rc, out, err = self.run_daemon(
                    "--http-endpoint=127.0.0.1:%d" % h.free_port(),
                    "--metrics-path=" + value)
                self.assertEqual(rc, 2, err)
                self.assertEqual(out, "")
                self.assertIn('invalid value "%s" for flag -metrics-path' % value, err)


class ConflictTest(h.LPTestCase):
    """Items 5-6: conflicting flags exit 1 before any socket is touched."""

    def assertRefused(self, args, message):
        mock = self.start_mock()
        start = time.monotonic()
        rc, out, err = self.run_daemon("--csi-address=" + mock.socket_path, *args)
        self.assertEqual(rc, 1, err)
        self.assertEqual(out, "")
        self.assertIn(message, err)
        # Nothing was touched: no call reached the driver, nothing listened.
        self.assertNotIn("Calling CSI driver", err)
        self.assertNotIn("ServeMux listening", err)
        time.sleep(h.scaled(0.1))  # a call would be printed by now
        self.assertEqual([l for l in mock.stdout().splitlines()
                          if l.startswith("call ")], [])
        self.assertLess(time.monotonic() - start, h.STARTUP_TIMEOUT)

    def test_health_port_with_http_endpoint(self):
        self.assertRefused(["--health-port=19999",
                            "--http-endpoint=127.0.0.1:%d" % h.free_port()],
                           "Only one of `--health-port` and `--http-endpoint` "
                           "can be explicitly set")

    def test_health_port_string_compare(self):
        # The check compares strings: 09808 is not 9808.
        self.assertRefused(["--health-port=09808",
                            "--http-endpoint=127.0.0.1:%d" % h.free_port()],
                           "Only one of `--health-port` and `--http-endpoint`")

    def test_metrics_address_with_http_endpoint(self):
        self.assertRefused(["--metrics-address=127.0.0.1:%d" % h.free_port(),
                            "--http-endpoint=127.0.0.1:%d" % h.free_port()],
                           "Only one of `--metrics-address` and `--http-endpoint` "
                           "can be explicitly set")

    def test_default_health_port_with_http_endpoint_accepted(self):
        mock = self.start_mock()
        port = h.free_port()
        d = self.start_daemon("--health-port=9808",
                              "--http-endpoint=127.0.0.1:%d" % port,
                              csi=mock.socket_path, port=port,
                              health_port_flag=False)
        self.assertHealthz(d.request(), 200, "ok")
        line = d.wait_log("ServeMux listening", 1)
        self.assertIn('address="127.0.0.1:%d"' % port, line)


class AcceptedFlagsTest(h.LPTestCase):
    """Item 7 and DESIGN.md: both logging surfaces and -automaxprocs."""

    def test_logging_and_compat_flags_accepted(self):
        mock = self.start_mock()
        cases = [
            ["-v", "5"], ["-v=2"], ["--v=4"], ["--vmodule=check=5,csi=3"],
            ["--logging-format=json"], ["--logging-format", "text"],
            ["--log-flush-frequency=2s"], ["-automaxprocs"],
            ["-automaxprocs=true"], ["-logtostderr"], ["-logtostderr=false"],
            ["-alsologtostderr"], ["-log_dir=/tmp"], ["-log_file=/dev/null"],
            ["-stderrthreshold=INFO"], ["-skip_headers"], ["-one_output"],
            ["-log_file_max_size=10"], ["-add_dir_header"],
        ]
        for args in cases:
            with self.subTest(args=args):
                d = self.start_daemon(*args, csi=mock.socket_path)
                self.assertHealthz(d.request(), 200, "ok")
                self.assertEqual(d.stdout(), "")
                self.stop_daemon(d)

    def test_effective_probe_timeout_default_is_1s(self):
        mock = self.start_mock("--probe-hang")
        d = self.start_daemon(csi=mock.socket_path)
        r = d.request()
        self.assertHealthz(r, 500, h.DEADLINE_BODY)
        self.assertAtDeadline(r, 1.0)

    def test_effective_csi_address_default(self):
        # -v=5 names the address it connects to before anything else.
        d = self.start_daemon("-v=5", wait=False)
        line = d.wait_log('"Connecting"', h.STARTUP_TIMEOUT)
        self.assertIsNotNone(line, d.stderr())
        self.assertIn('address="unix:///run/csi/socket"', line)

    def test_effective_health_port_default(self):
        mock = self.start_mock()
        d = self.start_daemon(csi=mock.socket_path, health_port_flag=False,
                              port=9808, wait=False)
        line = d.wait_log("ServeMux listening", h.STARTUP_TIMEOUT)
        self.assertIsNotNone(line, d.stderr())
        self.assertIn('address="0.0.0.0:9808"', line)


if __name__ == "__main__":
    h.main()
