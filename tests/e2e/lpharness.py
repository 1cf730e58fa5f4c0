"""Shared harness for the end-to-end tests of livenessprobe.

Stdlib only. Each test gets a temporary directory for its unix sockets and
the captured output of every process it starts; every process a test starts
is killed when the test ends, whatever happened (unittest cleanups, plus
PR_SET_PDEATHSIG so that nothing outlives a killed test runner).

Environment:
  LP_BIN         the livenessprobe binary (default: build/livenessprobe)
  LP_MOCK        the csi-mock-driver binary (default: build/csi-mock-driver)
  LP_SOURCE_DIR  the source tree (default: two levels above this file)
  LP_WRAPPER     a command the daemon is started under, e.g. "valgrind ..."
  LP_TIME_SCALE  factor applied to every timing tolerance (default 1)
"""

import ctypes
import json
import os
import re
import resource
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("LP_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
LP_BIN = os.path.abspath(
    os.environ.get("LP_BIN") or os.path.join(SOURCE_DIR, "build", "livenessprobe"))
LP_MOCK = os.path.abspath(
    os.environ.get("LP_MOCK") or os.path.join(SOURCE_DIR, "build", "csi-mock-driver"))
# csi-call (tests/tools/): one unary CSI call from the command line.
CSI_CALL = os.path.abspath(
    os.environ.get("LP_CSI_CALL") or os.path.join(os.path.dirname(LP_MOCK), "csi-call"))
WRAPPER = shlex.split(os.environ.get("LP_WRAPPER", ""))
TIME_SCALE = float(os.environ.get("LP_TIME_SCALE") or "1")


def _is_sanitized(path):
    """True if the binary is built with AddressSanitizer."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


SANITIZED = _is_sanitized(LP_BIN)
# ASan's quarantine and valgrind's own heap make RSS figures meaningless.
RSS_MEANINGFUL = not WRAPPER and not SANITIZED
# Under a wrapper (valgrind) start-up and shutdown take seconds, not ms.
STARTUP_TIMEOUT = 10.0 * (6 if WRAPPER else 1) * max(1.0, TIME_SCALE / 5)
# How long a clean shutdown may take (upper bound for "promptly").
SHUTDOWN_TIMEOUT = 2.0 * TIME_SCALE
# Exit status valgrind gives when it found errors (--error-exitcode).
VALGRIND_ERROR_EXIT = 99

MOCK_NAME = "mock.csi.example.com"

# Go's names for the gRPC status codes, by number.
GO_CODE_NAMES = [
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
    "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
    "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
    "Internal", "Unavailable", "DataLoss", "Unauthenticated",
]

CONNECT_FAIL_BODY = "context deadline exceeded"
DEADLINE_BODY = ("rpc error: code = DeadlineExceeded "
                 "desc = context deadline exceeded")
NOT_READY_BODY = "driver responded but is not ready"
NOT_FOUND_BODY = "404 page not found\n"
TEXT_TYPE = "text/plain; charset=utf-8"

# CSI method paths the tests call or count.
INFO = "/csi.v1.Identity/GetPluginInfo"
PLUGIN_CAPS = "/csi.v1.Identity/GetPluginCapabilities"
PROBE = "/csi.v1.Identity/Probe"
NODE_INFO = "/csi.v1.Node/NodeGetInfo"
NODE_CAPS = "/csi.v1.Node/NodeGetCapabilities"
CONTROLLER_CAPS = "/csi.v1.Controller/ControllerGetCapabilities"
STAGE = "/csi.v1.Node/NodeStageVolume"
PUBLISH = "/csi.v1.Node/NodePublishVolume"
CREATE = "/csi.v1.Controller/CreateVolume"

# klog text header: Lmmdd hh:mm:ss.uuuuuu PID file:line] message
KLOG_RE = re.compile(
    r"^([IWEF])(\d{4}) (\d\d:\d\d:\d\d\.\d{6}) +(\d+) ([^ \]]+:\d+)\] (.*)$")


def scaled(seconds):
    """A timing tolerance, stretched for slow (instrumented) runs."""
    return seconds * TIME_SCALE


def wait_until(predicate, timeout, interval=0.01):
    """Polls predicate() until it is true; False if it is not within
    scaled(timeout) seconds. For waits on a condition instead of a sleep."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text):
    """Seconds in a simple Go duration such as "1s", "500ms", "-1.5s", "0"."""
    m = re.fullmatch(r"(-?[0-9.]+)(ns|us|ms|s|m|h)?", text)
    if not m:
        raise ValueError("unsupported duration %r" % text)
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


# ---------------------------------------------------------------------------
# Processes

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if the test runner dies."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _preexec(rlimits):
    """preexec_fn: _die_with_parent, then the resource limits {RLIMIT_X: (soft, hard)}."""
    def run():
        _die_with_parent()
        for which, value in (rlimits or {}).items():
            resource.setrlimit(which, value)
    return run


def _uses_valgrind(argv):
    return bool(argv) and os.path.basename(argv[0]).startswith("valgrind")


class Proc:
    """A child process whose stdout and stderr go to files in the test dir."""

    def __init__(self, argv, workdir, name, cwd=None, rlimits=None, env=None):
        self.argv = list(argv)
        self.name = name
        self.stdout_path = os.path.join(workdir, name + ".stdout")
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.valgrind_log = None
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=self._err, cwd=cwd, preexec_fn=_preexec(rlimits),
            env=dict(os.environ, **env) if env else None)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def returncode(self):
        return self.popen.poll()

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """Exit status, or None if still running after timeout seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGCONT)  # in case a test stopped it
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait()
        self.close_files()

    def close_files(self):
        for f in (self._out, self._err):
            if not f.closed:
                f.close()

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def valgrind_report(self):
        if not self.valgrind_log:
            return ""
        d, pattern = os.path.split(self.valgrind_log)
        prefix = pattern.split("%p")[0]
        text = []
        for name in sorted(os.listdir(d)):
            if name.startswith(prefix):
                with open(os.path.join(d, name), errors="replace") as f:
                    text.append(f.read())
        return "\n".join(text)

    # /proc readers -------------------------------------------------------

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def fds(self):
        """{fd: link target} of the process."""
        out = {}
        base = "/proc/%d/fd" % self.pid
        for name in os.listdir(base):
            try:
                out[int(name)] = os.readlink(os.path.join(base, name))
            except OSError:
                pass
        return out

    def proc_status(self):
        """The fields of /proc/PID/status as a dict of strings."""
        out = {}
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key] = value.strip()
        return out

    def threads(self):
        return int(self.proc_status()["Threads"])

    def thread_names(self):
        """Sorted comm names of the process's threads."""
        names = []
        base = "/proc/%d/task" % self.pid
        for tid in os.listdir(base):
            try:
                with open(os.path.join(base, tid, "comm")) as f:
                    names.append(f.read().strip())
            except OSError:
                pass
        return sorted(names)

    def rss_kib(self):
        return int(self.proc_status()["VmRSS"].split()[0])


class Mock(Proc):
    """csi-mock-driver; its stdout says "listening PATH" and one line per call."""

    def __init__(self, args, workdir, name, socket_path, binary=None):
        self.socket_path = socket_path
        super().__init__([binary or LP_MOCK, "--csi-address=" + socket_path] + list(args),
                         workdir, name)

    def wait_listening(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "listening " in self.stdout():
                return True
            if not self.alive():
                raise AssertionError(
                    "mock exited (%s) before listening: %s"
                    % (self.returncode(), self.stderr()))
            time.sleep(0.01)
        raise AssertionError("mock not listening after %.1fs" % timeout)

    def calls(self, method="Probe"):
        """How many calls of method the mock has seen so far."""
        needle = "call method=%s " % method
        return sum(1 for line in self.stdout().splitlines()
                   if line.startswith(needle))

    def wait_calls(self, n, method="Probe", timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.calls(method) >= n:
                return True
            time.sleep(0.01)
        return False


class Daemon(Proc):
    """livenessprobe, possibly under LP_WRAPPER, serving on host:port."""

    def __init__(self, args, workdir, name, port, host="127.0.0.1",
                 wrap=True, cwd=None, rlimits=None, env=None):
        self.port = port
        self.host = host
        self.wrapped = bool(WRAPPER) and wrap
        argv = [LP_BIN] + list(args)
        vg_log = None
        if self.wrapped:
            prefix = list(WRAPPER)
            # Keep valgrind's own report out of the daemon's stderr.
            if _uses_valgrind(prefix) and not any(
                    a.startswith(("--log-file", "--log-fd", "--log-socket"))
                    for a in prefix):
                vg_log = os.path.join(workdir, name + ".valgrind.%p.log")
                prefix.insert(1, "--log-file=" + vg_log)
            argv = prefix + argv
        super().__init__(argv, workdir, name, cwd=cwd, rlimits=rlimits, env=env)
        self.valgrind_log = vg_log

    def port_open(self, host=None):
        fam = socket.AF_INET6 if ":" in (host or self.host) else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(0.5)
        try:
            s.connect((host or self.host, self.port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def wait_port(self, timeout=None):
        """Waits until the port accepts; fails if the daemon exits first."""
        timeout = STARTUP_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.port_open():
                return
            if not self.alive():
                raise AssertionError(
                    "livenessprobe exited with %s before listening; stderr:\n%s"
                    % (self.returncode(), self.stderr()))
            time.sleep(0.02)
        raise AssertionError("livenessprobe not listening on %d after %.1fs;"
                             " stderr:\n%s" % (self.port, timeout, self.stderr()))

    def log_lines(self):
        return self.stderr().splitlines()

    def wait_log(self, needle, timeout):
        """Waits until a stderr line contains needle; returns that line."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_lines():
                if needle in line:
                    return line
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def request(self, method="GET", path="/healthz", **kw):
        return http_request(self.port, method, path, host=self.host, **kw)


# ---------------------------------------------------------------------------
# Raw HTTP

class Response:
    def __init__(self, version, status, reason, headers, body, elapsed):
        self.version = version
        self.status = status
        self.reason = reason
        self.header_list = headers  # [(name, value)] as sent
        self.body = body            # bytes
        self.elapsed = elapsed      # seconds from sending to the last byte

    def header(self, name):
        """The last value of header name (case-insensitive), or None."""
        value = None
        for k, v in self.header_list:
            if k.lower() == name.lower():
                value = v
        return value

    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %s %r %.3fs>" % (self.status, self.body[:80], self.elapsed)


class ConnectionClosed(Exception):
    """The server closed the connection before a complete response."""


class HTTPConn:
    """One TCP connection; several requests may be sent on it in order."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.host = host
        self.port = port
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def build(self, method="GET", path="/healthz", headers=None,
              version="HTTP/1.1", body=b"", host_header=True):
        lines = ["%s %s %s" % (method, path, version)]
        hdrs = list(headers or [])
        names = {k.lower() for k, _ in hdrs}
        if host_header and "host" not in names:
            hdrs.insert(0, ("Host", "localhost:%d" % self.port))
        if body and "content-length" not in names:
            hdrs.append(("Content-Length", str(len(body))))
        lines += ["%s: %s" % kv for kv in hdrs]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionClosed("connection closed; got %r" % self.buf)
        self.buf += chunk

    def read_response(self, head=False, start=None):
        """Parses one response; head=True: the request was HEAD (no body)."""
        start = time.monotonic() if start is None else start
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        status = int(status)
        resp = Response(version, status, reason, headers, b"", 0.0)
        if head or status in (204, 304) or 100 <= status < 200:
            pass
        elif resp.header("Content-Length") is not None:
            n = int(resp.header("Content-Length"))
            while len(self.buf) < n:
                self._fill()
            resp.body, self.buf = self.buf[:n], self.buf[n:]
        elif (resp.header("Transfer-Encoding") or "").lower() == "chunked":
            resp.body = self._read_chunked()
        else:
            # Delimited by close.
            try:
                while True:
                    self._fill()
            except ConnectionClosed:
                pass
            resp.body, self.buf = self.buf, b""
        resp.elapsed = time.monotonic() - start
        return resp

    def _read_chunked(self):
        body = b""
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\r\n", 1)
            n = int(line.split(b";")[0], 16)
            while len(self.buf) < n + 2:
                self._fill()
            body += self.buf[:n]
            self.buf = self.buf[n + 2:]
            if n == 0:
                return body

    def request(self, method="GET", path="/healthz", headers=None,
                version="HTTP/1.1", body=b"", host_header=True):
        start = time.monotonic()
        self.send(self.build(method, path, headers, version, body, host_header))
        return self.read_response(head=(method == "HEAD"), start=start)

    def closed_by_peer(self, timeout=1.0):
        """True if the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except OSError:
            return True


def http_request(port, method="GET", path="/healthz", headers=None,
                 version="HTTP/1.1", body=b"", host="127.0.0.1", timeout=10.0,
                 host_header=True):
    """One request on a fresh connection; returns a Response (elapsed set)."""
    start = time.monotonic()
    conn = HTTPConn(port, host, timeout)
    try:
        conn.send(conn.build(method, path, headers, version, body, host_header))
        return conn.read_response(head=(method == "HEAD"), start=start)
    finally:
        conn.close()


def exchange(port, data, half_close=False, timeout=5.0):
    """Sends raw bytes on a fresh connection (then, with half_close, shuts
    down writing) and returns all the server sends until it closes."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(scaled(timeout))
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    finally:
        s.close()


# How long a process's open descriptors may take to settle after a load.
FD_SETTLE = scaled(3.0)


def stable_fds(p, quiet=0.2):
    """p's fd count once unchanged for quiet seconds (at most FD_SETTLE)."""
    deadline = time.monotonic() + FD_SETTLE
    last, since = p.fd_count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        n = p.fd_count()
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def free_port():
    """A TCP port free on every address (IPv4 and IPv6) right now."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", 0))
        return s.getsockname()[1]
    except OSError:
        s.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def parse_klog(line):
    """(level, message, {key: value}) of a structured klog text line, or None."""
    m = KLOG_RE.match(line)
    if not m:
        return None
    rest = m.group(6)
    msg, pos = _parse_quoted(rest, 0) if rest.startswith('"') else (rest, len(rest))
    kv = {}
    while pos < len(rest):
        while pos < len(rest) and rest[pos] == " ":
            pos += 1
        eq = rest.find("=", pos)
        if eq < 0:
            break
        key = rest[pos:eq]
        if rest[eq + 1:eq + 2] == '"':
            value, pos = _parse_quoted(rest, eq + 1)
        else:
            end = rest.find(" ", eq + 1)
            end = len(rest) if end < 0 else end
            value, pos = rest[eq + 1:end], end
        kv[key] = value
    return m.group(1), msg, kv


def _parse_quoted(text, pos):
    """Decodes the Go-quoted string starting at text[pos] == '"'."""
    assert text[pos] == '"'
    i = pos + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return json.loads(text[pos:i + 1]), i + 1
        i += 1
    raise ValueError("unterminated quoted string in %r" % text)


# ---------------------------------------------------------------------------
# Test case base

class LPTestCase(unittest.TestCase):
    """Gives each test a temp dir, and cleans up every process it started.

    Daemons still running at the end of a test get SIGTERM and must exit 0
    within the shutdown timeout: under LP_WRAPPER=valgrind that is where
    memory errors and leaks surface (exit 99), under ASan likewise (exit 1).
    """

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lp-e2e-")
        self._procs = []
        self._counter = 0
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        problems = []
        for p in reversed(self._procs):
            if isinstance(p, Daemon) and p.alive():
                try:
                    os.kill(p.pid, signal.SIGCONT)
                    p.signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
                rc = p.wait(SHUTDOWN_TIMEOUT + (30 if p.wrapped else 0))
                if rc is None:
                    problems.append("%s did not exit on SIGTERM at teardown" % p.name)
                elif rc != 0:
                    problems.append(self._exit_problem(p, rc, "at teardown"))
        for p in self._procs:
            p.kill()
        # Keep the directory for post-mortems only when something went wrong.
        if not problems:
            _rmtree(self.tmp)
        if problems:
            self.fail("; ".join(problems) + " (files in %s)" % self.tmp)

    def _exit_problem(self, p, rc, when):
        text = "%s exited %s %s" % (p.name, rc, when)
        if p.valgrind_log and rc == VALGRIND_ERROR_EXIT:
            text += "; valgrind:\n" + p.valgrind_report()[-6000:]
        else:
            text += "; stderr tail:\n" + p.stderr()[-3000:]
        return text

    def _name(self, base):
        self._counter += 1
        return "%s%d" % (base, self._counter)

    def write_file(self, name, text, directory=None):
        """Writes text to name in the test's directory (or directory); returns the path."""
        path = os.path.join(directory or self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def script_flag(self, name, text):
        """A csi-mock-driver script written to name, as a --script= flag."""
        return "--script=" + self.write_file(name, text)

    def sock_path(self, name="csi.sock"):
        return os.path.join(self.tmp, name)

    def start_mock(self, *args, path=None, wait=True):
        path = path or self.sock_path()
        m = Mock(args, self.tmp, self._name("mock"), path)
        self._procs.append(m)
        if wait:
            m.wait_listening()
        return m

    def stop_mock(self, mock, sig=signal.SIGTERM):
        mock.signal(sig)
        rc = mock.wait(10)
        self.assertIsNotNone(rc, "mock did not exit on %s" % sig)
        mock.close_files()
        return rc

    def start_daemon(self, *args, csi=None, port=None, wait=True, host="127.0.0.1",
                     health_port_flag=True, wrap=True, cwd=None, rlimits=None, env=None):
        """Starts livenessprobe on a free port (--health-port) for csi (a path)."""
        port = free_port() if port is None else port
        argv = []
        if csi is not None:
            argv.append("--csi-address=" + csi)
        if health_port_flag:
            argv.append("--health-port=%d" % port)
        argv += list(args)
        d = Daemon(argv, self.tmp, self._name("lp"), port, host, wrap, cwd, rlimits, env)
        self._procs.append(d)
        if wait:
            d.wait_port()
        return d

    def healthy_daemon(self, *args, mock_args=(), **kw):
        """A mock with mock_args and a daemon pointed at it, both ready."""
        mock = self.start_mock(*mock_args)
        d = self.start_daemon(*args, csi=mock.socket_path, **kw)
        return mock, d

    def run_daemon(self, *args, timeout=None, wrap=True):
        """Runs livenessprobe to completion; returns (rc, stdout, stderr).

        For invocations that must exit on their own (flag errors, --help);
        fails the test if it is still running after timeout seconds.
        """
        timeout = STARTUP_TIMEOUT if timeout is None else timeout
        d = Daemon(list(args), self.tmp, self._name("lp"), 0, wrap=wrap)
        self._procs.append(d)
        rc = d.wait(timeout)
        if rc is None:
            d.kill()
            self.fail("livenessprobe %s still running after %.1fs; stderr:\n%s"
                      % (" ".join(args), timeout, d.stderr()))
        d.close_files()
        if d.valgrind_log and rc == VALGRIND_ERROR_EXIT:
            self.fail(self._exit_problem(d, rc, "(valgrind errors)"))
        return rc, d.stdout(), d.stderr()

    def stop_daemon(self, d, sig=signal.SIGTERM, timeout=None, expect=0):
        """Signals d; asserts it exits with status expect in time."""
        timeout = SHUTDOWN_TIMEOUT if timeout is None else timeout
        if d.wrapped:
            timeout += 30  # valgrind's leak check runs after main returns
        start = time.monotonic()
        d.signal(sig)
        rc = d.wait(timeout)
        elapsed = time.monotonic() - start
        if rc is None:
            d.kill()
            self.fail("%s still running %.1fs after signal %d; stderr tail:\n%s"
                      % (d.name, timeout, sig, d.stderr()[-2000:]))
        d.close_files()
        if rc != expect:
            self.fail(self._exit_problem(d, rc, "after signal %d (want %d)"
                                         % (sig, expect)))
        return elapsed

    # Assertions ----------------------------------------------------------

    def assertHealthz(self, resp, status, body):
        self.assertEqual((resp.status, resp.body),
                         (status, body.encode() if isinstance(body, str) else body),
                         "unexpected /healthz answer %r" % resp)

    def assertAtDeadline(self, resp, deadline, margin=0.05):
        """elapsed within deadline ± margin (scaled)."""
        tol = scaled(margin)
        self.assertGreaterEqual(resp.elapsed, deadline - tol,
                                "answered too early: %r" % resp)
        self.assertLessEqual(resp.elapsed, deadline + tol,
                             "answered too late: %r" % resp)

    def error_lines(self, d):
        """The E lines of d's stderr."""
        return [l for l in d.log_lines() if l.startswith("E")]


def _rmtree(path):
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            try:
                os.unlink(os.path.join(root, name))
            except OSError:
                pass
        for name in dirs:
            try:
                os.rmdir(os.path.join(root, name))
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def run_parallel(fn, n, timeout=30.0):
    """Runs fn(i) in n threads released together; returns results by i.

    An exception in a thread is stored as its result.
    """
    results = [None] * n
    barrier = threading.Barrier(n)

    def worker(i):
        try:
            barrier.wait(timeout)
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - reported by the caller
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results


def main():
    unittest.main(verbosity=2)


# ---------------------------------------------------------------------------
# Helpers for the policy tests (test_policies.py, test_examples.py)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """The fields of /proc/pid/stat after the command name (state first), or
    None if pid is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def _children(pid):
    """(child pid, state letter) for every process whose parent is pid."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    out = []
    for name in names:
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None and int(fields[1]) == pid:
            out.append((int(name), fields[0]))
    return sorted(out)


def child_pids(pid):
    """Pids of the live children of pid (e.g. the daemon's policy worker)."""
    return [c for c, state in _children(pid) if state != "Z"]


def zombie_children(pid):
    """Pids of the children of pid that have exited and are not reaped yet."""
    return [c for c, state in _children(pid) if state == "Z"]


def process_state(pid):
    """The one-letter state of pid (R, S, D, Z, ...), or None if it is gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def cpu_ticks(pid, reaped=False):
    """utime + stime of pid in clock ticks, or None if it is gone.

    reaped=True adds cutime + cstime: what its children that it has
    waited for used.
    """
    fields = _stat_fields(pid)
    if fields is None:
        return None
    ticks = [int(x) for x in fields[11:15]]
    return sum(ticks) if reaped else ticks[0] + ticks[1]


def cpu_share(pids, seconds=1.0):
    """Fraction of one core used over seconds by pids and their children.

    pids: one pid or a list. A child that ends inside the window and is
    reaped counts through its parent's cutime/cstime (its whole life: an
    overestimate, never an underestimate).
    """
    tops = [pids] if isinstance(pids, int) else list(pids)

    def sample():
        out = {p: cpu_ticks(p, reaped=True) for p in tops}
        for p in tops:
            for c in child_pids(p):
                out[c] = cpu_ticks(c)
        return out

    start = sample()
    t0 = time.monotonic()
    time.sleep(seconds)
    end = sample()
    elapsed = time.monotonic() - t0
    used = 0
    for p, ticks in end.items():
        if ticks is not None:
            used += ticks - (start.get(p) or 0)
    return used / CLOCK_TICKS / elapsed


def rss_kib_of(pid):
    """VmRSS of pid in KiB, or None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def parse_metrics(text):
    """{'name{labels}': value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out
