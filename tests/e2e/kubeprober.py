"""A kubelet-faithful httpGet liveness prober, for the pod-level e2e tests.

Stdlib only. It mimics what kubelet (1.28, pkg/probe/http and
pkg/kubelet/prober/worker.go) does for

    livenessProbe:
      httpGet: {host: HOST, port: PORT, path: PATH}
      initialDelaySeconds, periodSeconds, timeoutSeconds,
      failureThreshold, successThreshold

One probe: a new TCP connection, one request

    GET PATH HTTP/1.1
    Host: HOST:PORT
    User-Agent: kube-probe/1.28
    Accept: */*
    Connection: close          (kubelet's transport disables keep-alive
                                and compression: no Accept-Encoding)

then the status line, headers and at most 10 KiB of body, all within
timeoutSeconds (Go's http.Client.Timeout covers dialing, redirects and
reading the body). Success iff the final status is 200-399. Redirects
(301, 302, 303, 307, 308 with a Location) are followed like Go's client
does, up to 10, to the same host and port; a redirect elsewhere counts as
success, as kubelet treats it ("Probe terminated redirects"). Any timeout,
refused connection, reset, malformed answer or close before the answer is
a failure.

The worker (KubeProber) probes every period seconds; a probe running
longer than the period delays the next one (a Go ticker drops missed
ticks). Results go through worker.go's run-length logic: failureThreshold
consecutive failures make the container "fail" -- the restart callback is
called (the test kills the driver and starts a new one), the counters are
reset and probing resumes initialDelaySeconds after the restart, like a
new container. Fractional seconds are accepted everywhere (kubelet takes
whole seconds; the tests use short periods to stay fast).
"""

import socket
import threading
import time
import urllib.parse

KUBE_VERSION = "1.28"
MAX_BODY = 10 * 1024        # kubelet's maxRespBodyLength
MAX_REDIRECTS = 10          # Go's http.Client default
REDIRECT_CODES = (301, 302, 303, 307, 308)


class ProbeResult:
    """One probe: when it started, how long it took, what it saw."""

    def __init__(self, start, elapsed, status=None, body=b"", error=None,
                 redirects=()):
        self.start = start          # time.monotonic() at the start
        self.elapsed = elapsed      # seconds, the whole probe
        self.status = status        # final HTTP status, or None on error
        self.body = body            # at most MAX_BODY bytes of the final body
        self.error = error          # text of the error, or None
        self.redirects = list(redirects)  # Locations followed
        self.ok = error is None and status is not None and 200 <= status < 400

    @property
    def end(self):
        return self.start + self.elapsed

    def __repr__(self):
        what = self.error if self.error else "%s %r" % (self.status, self.body[:60])
        return "<probe %s %.3fs %s>" % ("ok" if self.ok else "FAIL",
                                        self.elapsed, what)


class _ProbeError(Exception):
    pass


def _read_response(sock, deadline):
    """(status, body) of one HTTP/1.x response on sock, by the deadline."""
    buf = b""

    def fill():
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise _ProbeError("EOF before the end of the response")
        return chunk

    while b"\r\n\r\n" not in buf:
        buf += fill()
        if len(buf) > 1 << 20:
            raise _ProbeError("response headers too long")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or \
            not parts[1].isdigit() or len(parts[1]) != 3:
        raise _ProbeError("malformed HTTP response %r" % lines[0])
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if not sep:
            raise _ProbeError("malformed MIME header line %r" % line)
        headers[k.strip().lower()] = v.strip()
    body = rest
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(body) < min(n, MAX_BODY):
            body += fill()
        body = body[:n]
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while True:
            while b"\r\n" not in body:
                body += fill()
            size_line, body = body.split(b"\r\n", 1)
            n = int(size_line.split(b";")[0], 16)
            if n == 0 or len(out) >= MAX_BODY:
                break
            while len(body) < n + 2:
                body += fill()
            out += body[:n]
            body = body[n + 2:]
        body = out
    else:
        try:
            while len(body) < MAX_BODY:
                body += fill()
        except _ProbeError:
            pass  # delimited by close
    return status, headers, body[:MAX_BODY]


def probe_once(port, host="127.0.0.1", path="/healthz", timeout=1.0):
    """One kubelet httpGet probe; returns a ProbeResult (never raises)."""
    start = time.monotonic()
    deadline = start + timeout
    redirects = []
    cur_host, cur_port, cur_path = host, port, path
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            fam = socket.AF_INET6 if ":" in cur_host else socket.AF_INET
            sock = socket.socket(fam, socket.SOCK_STREAM)
            try:
                sock.settimeout(left)
                sock.connect((cur_host, cur_port))
                hostport = ("[%s]" % cur_host if ":" in cur_host else cur_host)
                req = ("GET %s HTTP/1.1\r\n"
                       "Host: %s:%d\r\n"
                       "User-Agent: kube-probe/%s\r\n"
                       "Accept: */*\r\n"
                       "Connection: close\r\n\r\n"
                       % (cur_path, hostport, cur_port, KUBE_VERSION))
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                sock.sendall(req.encode("latin-1"))
                status, headers, body = _read_response(sock, deadline)
            finally:
                sock.close()
            location = headers.get("location")
            if status in REDIRECT_CODES and location:
                if len(redirects) >= MAX_REDIRECTS:
                    raise _ProbeError("stopped after %d redirects" % MAX_REDIRECTS)
                base = "http://%s:%d%s" % (cur_host, cur_port, cur_path)
                url = urllib.parse.urlsplit(urllib.parse.urljoin(base, location))
                redirects.append(location)
                if (url.hostname, url.port or 80) != (cur_host, cur_port):
                    # kubelet: a redirect to another host is not followed
                    # and the probe succeeds (with a warning event).
                    return ProbeResult(start, time.monotonic() - start, status,
                                       body, None, redirects)
                cur_path = url.path or "/"
                if url.query:
                    cur_path += "?" + url.query
                continue
            return ProbeResult(start, time.monotonic() - start, status, body,
                               None, redirects)
    except socket.timeout:
        return ProbeResult(start, time.monotonic() - start,
                           error="timeout after %.3fs" % timeout,
                           redirects=redirects)
    except (OSError, _ProbeError, ValueError) as e:
        return ProbeResult(start, time.monotonic() - start,
                           error="%s: %s" % (type(e).__name__, e),
                           redirects=redirects)


class KubeProber:
    """kubelet's probe worker for one container, in a background thread.

    kind is the probe: "liveness" (the default), "readiness" or "startup".
    restart: called (in the prober's thread) when failureThreshold
    consecutive liveness or startup probes failed; it must kill the
    container and start a new one before returning. A readiness probe never
    restarts: failureThreshold failures in a row make the container not
    ready, successThreshold successes ready (it starts not ready, as in
    kubelet); ready_changes records (time, ready). A startup probe stops at
    its first success (successThreshold is 1 for startup probes) and calls
    started. probes and restarts record everything.
    """

    def __init__(self, port, host="127.0.0.1", path="/healthz", period=10.0,
                 timeout=1.0, failure_threshold=3, success_threshold=1,
                 initial_delay=0.0, restart=None, kind="liveness", started=None):
        assert kind in ("liveness", "readiness", "startup"), kind
        self.kind = kind
        self.started_cb = started
        self.ready = False
        self.ready_changes = []   # (time.monotonic(), ready)
        self.started_at = None    # startup: when its first success ended
        self.port = port
        self.host = host
        self.path = path
        self.period = period
        self.timeout = timeout
        self.failure_threshold = failure_threshold
        self.success_threshold = success_threshold
        self.initial_delay = initial_delay
        self.restart_cb = restart
        self.probes = []      # ProbeResult, in order
        self.restarts = []    # time.monotonic() of each restart decision
        self.restart_errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._changed = threading.Condition(self._lock)
        self._thread = None
        self.started = None

    # Life cycle ---------------------------------------------------------

    def start(self):
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="kubeprober",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=None):
        """Stops probing; waits for a probe in progress (<= its timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5 if timeout is None else timeout)
            if self._thread.is_alive():
                raise RuntimeError("prober thread did not stop")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # Queries ------------------------------------------------------------

    def snapshot(self):
        """(probes, restarts): copies, safe to read while it runs."""
        with self._lock:
            return list(self.probes), list(self.restarts)

    def wait_until(self, predicate, timeout):
        """Waits until predicate(probes, restarts) is true; returns it."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                if predicate(self.probes, self.restarts):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)

    # The worker ---------------------------------------------------------

    def _sleep_until(self, when):
        """False if stopped meanwhile."""
        return not self._stop.wait(max(0.0, when - time.monotonic()))

    def _run(self):
        last_result = None   # worker.go's lastResult (None = Unknown)
        result_run = 0
        next_at = time.monotonic() + self.initial_delay
        while self._sleep_until(next_at):
            scheduled = next_at
            r = probe_once(self.port, self.host, self.path, self.timeout)
            with self._lock:
                self.probes.append(r)
                self._changed.notify_all()
            if r.ok == last_result:
                result_run += 1
            else:
                last_result = r.ok
                result_run = 1
            # A Go ticker: the next tick is a period after the last one; a
            # probe that overran gets the one buffered tick at once.
            next_at = max(scheduled + self.period, time.monotonic())
            if self.kind == "readiness":
                threshold = self.success_threshold if r.ok else self.failure_threshold
                if result_run >= threshold and self.ready != r.ok:
                    with self._lock:
                        self.ready = r.ok
                        self.ready_changes.append((r.end, r.ok))
                        self._changed.notify_all()
                continue
            if self.kind == "startup" and r.ok:
                with self._lock:
                    self.started_at = r.end
                    self._changed.notify_all()
                if self.started_cb is not None:
                    self.started_cb()
                break
            if not r.ok and result_run >= self.failure_threshold:
                when = time.monotonic()
                if self._stop.is_set():
                    break
                try:
                    if self.restart_cb is not None:
                        self.restart_cb()
                except Exception as e:  # noqa: BLE001 - reported to the test
                    self.restart_errors.append(e)
                with self._lock:
                    self.restarts.append(when)
                    self._changed.notify_all()
                # onHold until the new container; then a fresh worker state.
                last_result = None
                result_run = 0
                next_at = time.monotonic() + self.initial_delay
