"""The long run (README "Long run"): a flapping driver probed continuously.

Starts csi-mock-driver with flapping_driver.lua and livenessprobe (default
policy, --probe-timeout=1s), then probes /healthz like kubelet
(kubeprober.probe_once, timeoutSeconds=3) back to back for the given
time. Every RESTART_EVERY seconds the driver is killed (SIGKILL) and
started again on the same path, between two probes. One /healthz is one
Probe call (probes never overlap), so the answer to probe k after a
(re)start must be EXPECTED[k % 8]. Reports probes answered, wrong answers,
late answers (answered after --probe-timeout + LATE_SLACK), and the
sidecar's RSS and fd count over time; exits 1 unless wrong = late = 0, the
fd count ends where it was after warm-up and RSS drifted less than
RSS_DRIFT_LIMIT_KIB.

usage: longrun.py BUILD_DIR SECONDS
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import kubeprober  # noqa: E402
import lpharness as h  # noqa: E402

PROBE_TIMEOUT = 1.0
LATE_SLACK = 0.25
KUBELET_TIMEOUT = 3.0
PERIOD = 0.05            # a new probe at most every 50 ms
RESTART_EVERY = 60.0
WARMUP = 30.0
SAMPLE_EVERY = 5.0
QUIET = 0.2              # pause before a sample
RSS_DRIFT_LIMIT_KIB = 1024

NOT_READY = (500, "driver responded but is not ready")
EXPECTED = {
    1: (200, "ok"),
    2: (200, "ok"),
    3: NOT_READY,
    4: (500, "rpc error: code = Unavailable desc = flap"),
    5: (200, "ok"),
    6: (500, "rpc error: code = DeadlineExceeded desc = context deadline exceeded"),
    7: (500, "rpc error: code = FailedPrecondition desc = flap"),
    0: (500, "rpc error: code = Internal desc = grpc: failed to unmarshal the "
             "received message"),
}


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quiet_sample(pid, start):
    """(t, RSS KiB, fds) once the last probe's connection is surely closed.

    A probe returns when its body is read; the sidecar closes its end just
    after, so an instant sample may count that connection.
    """
    time.sleep(QUIET)
    return (time.monotonic() - start, h.rss_kib_of(pid), fd_count(pid))


class Driver:
    def __init__(self, build, sock, script, workdir):
        self.argv = [os.path.join(build, "csi-mock-driver"), "--csi-address=" + sock,
                     "--script=" + script, "--quiet"]
        self.workdir = workdir
        self.sock = sock
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        out = open(os.path.join(self.workdir, "mock%d.out" % self.starts), "w+")
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out.seek(0)
            if "listening" in out.read():
                return
            if self.proc.poll() is not None:
                sys.exit("longrun: csi-mock-driver exited %s" % self.proc.returncode)
            time.sleep(0.01)
        sys.exit("longrun: csi-mock-driver not listening after 10 s")

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def main():
    build, seconds = sys.argv[1], float(sys.argv[2])
    work = tempfile.mkdtemp(prefix="lp-longrun-")
    sock = os.path.join(work, "csi.sock")
    driver = Driver(build, sock, os.path.join(HERE, "flapping_driver.lua"), work)
    driver.start()
    port = h.free_port()
    log = open(os.path.join(work, "livenessprobe.log"), "w")
    lp = subprocess.Popen([os.path.join(build, "livenessprobe"), "--csi-address=" + sock,
                           "--health-port=%d" % port, "--probe-timeout=1s"],
                          stdout=log, stderr=subprocess.STDOUT)
    try:
        return run(lp, driver, port, seconds, work)
    finally:
        lp.send_signal(signal.SIGTERM)
        lp.wait(10)
        driver.kill()


def run(lp, driver, port, seconds, work):
    start = time.monotonic()
    while not kubeprober.probe_once(port, timeout=0.5).status:
        if time.monotonic() - start > 10 or lp.poll() is not None:
            sys.exit("longrun: livenessprobe not answering")
        time.sleep(0.05)
    # That probe was Probe call 1; restart so counting starts clean.
    driver.kill()
    driver.start()
    start = time.monotonic()
    end = start + seconds
    k = 0
    answered = ok = wrong = late = restarts = 0
    slowest = 0.0
    wrong_examples = []
    samples = []  # (t, rss KiB, fds)
    next_sample = start
    next_restart = start + RESTART_EVERY
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_sample:
            samples.append(quiet_sample(lp.pid, start))
            next_sample += SAMPLE_EVERY
        if now >= next_restart:
            driver.kill()
            driver.start()
            restarts += 1
            k = 0
            next_restart += RESTART_EVERY
        k += 1
        r = kubeprober.probe_once(port, timeout=KUBELET_TIMEOUT)
        if lp.poll() is not None:
            print("longrun: livenessprobe exited %s" % lp.returncode)
            return 1
        answered += r.status is not None
        ok += r.ok
        got = (r.status, r.body.decode("utf-8", "replace") if r.status else r.error)
        if got != EXPECTED[k % 8]:
            wrong += 1
            if len(wrong_examples) < 10:
                wrong_examples.append("probe %d after restart %d: got %r, want %r"
                                      % (k, restarts, got, EXPECTED[k % 8]))
        slowest = max(slowest, r.elapsed)
        if r.elapsed > PROBE_TIMEOUT + LATE_SLACK:
            late += 1
        pause = r.start + PERIOD - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    samples.append(quiet_sample(lp.pid, start))
    cpu = cpu_seconds(lp.pid)

    base = next(s for s in samples if s[0] >= min(WARMUP, seconds / 2))
    last = samples[-1]
    rss_max = max(s[1] for s in samples)
    fds_max = max(s[2] for s in samples)
    rss_drift = last[1] - base[1]
    fd_drift = last[2] - base[2]
    elapsed = time.monotonic() - start
    print("longrun: %.0f s, %d driver restarts, files in %s" % (elapsed, restarts, work))
    print("probes answered: %d (%d ok, %d failed as the driver said)"
          % (answered, ok, answered - ok))
    print("wrong answers:   %d" % wrong)
    for line in wrong_examples:
        print("  " + line)
    print("late answers:    %d (slowest %.3f s; late means > %.2f s)"
          % (late, slowest, PROBE_TIMEOUT + LATE_SLACK))
    print("sidecar RSS:     %.2f MB after %.0f s warm-up, %.2f MB at the end, max %.2f MB,"
          " drift %+d KiB" % (base[1] / 1024, base[0], last[1] / 1024, rss_max / 1024,
                              rss_drift))
    minutes = [s for i, s in enumerate(samples)
               if i == 0 or int(s[0] // 60) != int(samples[i - 1][0] // 60)]
    print("RSS by minute:   " + " ".join("%.2f" % (s[1] / 1024) for s in minutes) + " MB")
    print("sidecar fds:     %d after warm-up, %d at the end, max %d, drift %+d"
          % (base[2], last[2], fds_max, fd_drift))
    print("sidecar CPU:     %.2f s in %.0f s (%.2f %% of a core)"
          % (cpu, elapsed, 100 * cpu / elapsed))
    failed = wrong or late or fd_drift != 0 or rss_drift > RSS_DRIFT_LIMIT_KIB or not answered
    print("longrun: %s" % ("FAIL" if failed else "PASS"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
