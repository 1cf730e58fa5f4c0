"""Pod-level scenarios: the sidecar and a driver under a kubelet-faithful
liveness prober (kubeprober.KubeProber), which "restarts the driver
container" -- SIGKILL, and a new driver on the same socket path -- after
failureThreshold consecutive failed probes, as kubelet does with the
livenessProbe on the driver container (README "Using it in place of
upstream"). The sidecar keeps running across driver restarts.

Periods are short (1 s) so that each scenario stays under ~20 s; the
prober's timeoutSeconds is the sidecar's --probe-timeout plus a scaled
margin (kubelet's must exceed the sidecar's, or probes pile up: UPSTREAM.md
§7, "Probe timeout default").
"""

import os
import re
import signal
import time

import kubeprober as kp
import lpharness as h

PERIOD = 1.0


class Pod:
    """A driver container (csi-mock-driver) and the sidecar, sharing a socket."""

    def __init__(self, test, driver_args=(), sidecar_args=()):
        self.test = test
        self.driver_args = list(driver_args)
        self.drivers = [test.start_mock(*self.driver_args)]
        self.started = [time.monotonic()]   # each driver's start
        self.sidecar = test.start_daemon(*sidecar_args,
                                         csi=self.drivers[0].socket_path)

    @property
    def driver(self):
        return self.drivers[-1]

    def restart_driver(self):
        """kubelet kills the container and starts it again."""
        old = self.driver
        old.signal(signal.SIGKILL)
        old.wait(5)
        new = self.test.start_mock(*self.driver_args, path=old.socket_path)
        self.drivers.append(new)
        self.started.append(time.monotonic())

    def prober(self, **kw):
        kw.setdefault("period", PERIOD)
        p = kp.KubeProber(self.sidecar.port, restart=self.restart_driver, **kw)
        self.test.addCleanup(p.stop)
        return p


class PodTest(h.LPTestCase):

    def run_until(self, prober, predicate, limit):
        """Runs prober until predicate(probes, restarts); returns both."""
        prober.start()
        ok = prober.wait_until(predicate, limit)
        prober.stop()
        probes, restarts = prober.snapshot()
        self.assertEqual(prober.restart_errors, [])
        self.assertTrue(ok, "condition not reached in %.1fs: %d restarts, probes %s"
                        % (limit, len(restarts), probes))
        return probes, restarts

    # A driver that hangs -----------------------------------------------------

    HANG_AFTER = 2.0

    def test_hanging_driver_is_restarted(self):
        # The first driver is healthy for 2 s from its first Probe (not from
        # its start: the sidecar's start-up, slow under valgrind, must not eat
        # the healthy phase), then every Probe hangs; the restarted one
        # (plain flags) is healthy.
        hang = self.script_flag("hang.lua", """
local driver = {}
local first
function driver.probe(call)
  first = first or call.elapsed
  if call.elapsed - first > %g then return {hang = true} end
  return {ready = true}
end
return driver
""" % self.HANG_AFTER)
        pod = Pod(self, [hang], ["--probe-timeout=500ms"])
        pod.driver_args = []  # what the restarted container runs
        threshold = 3
        prober = pod.prober(timeout=0.5 + h.scaled(1.0),
                            failure_threshold=threshold, initial_delay=0.5)

        def restarted_and_healthy(probes, restarts):
            return len(restarts) == 1 and sum(
                1 for p in probes if p.start > restarts[0] and p.ok) >= 4

        probes, restarts = self.run_until(prober, restarted_and_healthy,
                                          h.scaled(8.0) + 8)
        self.assertEqual(len(restarts), 1)
        self.assertEqual(len(pod.drivers), 2)
        before = [p for p in probes if p.start < restarts[0]]
        after = [p for p in probes if p.start > restarts[0]]
        # Healthy, then exactly threshold failures at the sidecar's deadline.
        fails = before[-threshold:]
        self.assertTrue(before[0].ok, before)
        self.assertTrue(all(p.ok for p in before[:-threshold]), before)
        for p in fails:
            self.assertFalse(p.ok)
            self.assertEqual((p.status, p.body.decode()), (500, h.DEADLINE_BODY), p)
            self.assertGreaterEqual(p.elapsed, 0.5 - 0.05, p)
            self.assertLess(p.elapsed, 0.5 + h.scaled(0.25), p)
        # The restart: failureThreshold periods after the last good probe,
        # plus the last probe's 0.5 s timeout.
        last_ok = before[-threshold - 1]
        took = restarts[0] - last_ok.start
        want = threshold * PERIOD + 0.5
        self.assertGreaterEqual(took, want - 0.05, (took, probes))
        self.assertLessEqual(took, want + h.scaled(0.3), (took, probes))
        # ... and relative to the hang itself (the first driver's clock):
        # between (threshold - 1) and threshold periods, plus the timeout.
        onset = probes[0].start + self.HANG_AFTER
        self.assertGreaterEqual(restarts[0] - onset,
                                (threshold - 1) * PERIOD + 0.5 - 0.05)
        self.assertLessEqual(restarts[0] - onset,
                             threshold * PERIOD + 0.5 + h.scaled(0.3))
        # The restarted driver is healthy and is not restarted again; the
        # prober waited initialDelaySeconds first.
        self.assertGreaterEqual(after[0].start - restarts[0], 0.5)
        self.assertTrue(all(p.ok and p.body == b"ok" for p in after), after)
        self.assertTrue(pod.sidecar.alive())
        self.assertGreaterEqual(pod.driver.calls(), len(after))

    # A slow but healthy driver ----------------------------------------------

    def test_slow_healthy_driver_is_never_restarted(self):
        # Each Probe takes 700 ms; the sidecar's timeout is 1 s.
        pod = Pod(self, ["--probe-delay=700ms"], [])
        prober = pod.prober(timeout=1.0 + h.scaled(1.0), failure_threshold=1)
        probes, restarts = self.run_until(
            prober, lambda probes, restarts: len(probes) >= 10 or restarts,
            10 * PERIOD + h.scaled(3.0))
        self.assertEqual(restarts, [])
        self.assertEqual(len(pod.drivers), 1)
        for p in probes:
            self.assertTrue(p.ok, p)
            self.assertEqual(p.body, b"ok")
            self.assertGreaterEqual(p.elapsed, 0.7, p)
            self.assertLess(p.elapsed, 1.0, p)
        self.assertEqual(pod.driver.calls(), len(probes))

    # A driver that is slow to initialize ------------------------------------

    INIT_SECONDS = 4.0
    INIT = """
local driver = {}
-- Not ready for the first %g s after each start, counted from the first
-- Probe (the sidecar's start-up must not eat the phase).
local first
function driver.probe(call)
  first = first or call.elapsed
  return {ready = call.elapsed - first >= %g}
end
return driver
"""

    def init_pod(self, sidecar_args):
        init = self.script_flag("init.lua", self.INIT % ((self.INIT_SECONDS,) * 2))
        pod = Pod(self, [init], sidecar_args)
        prober = pod.prober(timeout=1.0 + h.scaled(1.0), failure_threshold=2,
                            initial_delay=0.5)
        return pod, prober

    def test_slow_init_restart_loop_with_default_policy(self):
        # ready=false is a 500 (upstream, kubernetes-csi/docs #446): the
        # driver is killed before it is ever ready, again and again.
        pod, prober = self.init_pod([])
        probes, restarts = self.run_until(
            prober, lambda probes, restarts: len(restarts) >= 3,
            h.scaled(8.0) + 8)
        self.assertGreaterEqual(len(restarts), 3)
        for p in probes:
            self.assertEqual((p.status, p.body.decode()), (500, h.NOT_READY_BODY), p)
        # Each driver lived well short of its initialization.
        lives = [b - a for a, b in zip(pod.started, pod.started[1:])]
        for life in lives:
            self.assertLess(life, self.INIT_SECONDS, lives)
        # A loop: every driver generation got exactly failureThreshold probes.
        for gen, (a, b) in enumerate(zip(pod.started, pod.started[1:])):
            self.assertEqual(sum(1 for p in probes if a < p.start < b), 2,
                             "generation %d: %s" % (gen, probes))

    def test_slow_init_not_restarted_with_startup_grace(self):
        with open(os.path.join(h.SOURCE_DIR, "examples", "policies",
                               "startup_grace.lua")) as f:
            text = f.read()
        text, n = re.subn(r"(?m)^local GRACE_SECONDS = .*$",
                          "local GRACE_SECONDS = 10", text)
        self.assertEqual(n, 1)
        policy = self.write_file("startup_grace.lua", text)
        pod, prober = self.init_pod(["--policy=" + policy])

        def ready_for_a_while(probes, restarts):
            if restarts or not probes:
                return bool(restarts)
            ready_at = probes[0].start + self.INIT_SECONDS
            return sum(1 for p in probes if p.start > ready_at) >= 2

        probes, restarts = self.run_until(prober, ready_for_a_while,
                                          self.INIT_SECONDS + h.scaled(5.0))
        self.assertEqual(restarts, [])
        self.assertEqual(len(pod.drivers), 1)
        ready_at = probes[0].start + self.INIT_SECONDS
        initializing = [p for p in probes if p.end < ready_at - 0.05]
        ready = [p for p in probes if p.start > ready_at + 0.05]
        self.assertGreaterEqual(len(initializing), 3, probes)
        for p in initializing:
            self.assertEqual(p.status, 200, p)
            self.assertRegex(p.body.decode(),
                             r"^driver is initializing \(\d+s of 10s grace\)$")
        for p in ready:
            self.assertEqual((p.status, p.body), (200, b"ok"), p)
        self.assertTrue(all(p.ok for p in probes), probes)


    # All three kubelet probes, with examples/policies/split.lua ------------

    SPLIT_DRIVER = """
local driver = {}
-- Not ready for %g s from the first Probe, then ready for %g s, then every
-- Probe hangs (a deadlock): initializing, in service, wedged.
local first
function driver.probe(call)
  first = first or call.elapsed
  local t = call.elapsed - first
  if t >= %g then return {hang = true} end
  return {ready = t >= %g}
end
return driver
"""
    SERVING_SECONDS = 3.0

    def test_split_policy_with_three_probes(self):
        # examples/kubernetes/split.yaml in small: startupProbe /startupz,
        # then livenessProbe /healthz and readinessProbe /readyz.
        init, serving = self.INIT_SECONDS, self.SERVING_SECONDS
        script = self.script_flag("split_driver.lua", self.SPLIT_DRIVER % (
            init, serving, init + serving, init))
        policy = os.path.join(h.SOURCE_DIR, "examples", "policies", "split.lua")
        pod = Pod(self, [script], ["--policy=" + policy, "--probe-timeout=500ms"])
        pod.driver_args = []  # the restarted driver is healthy at once
        timeout = 0.5 + h.scaled(1.0)
        probers = {}

        def started():
            for kind, path, threshold in (("liveness", "/healthz", 3),
                                          ("readiness", "/readyz", 1)):
                p = pod.prober(kind=kind, path=path, timeout=timeout,
                               failure_threshold=threshold)
                probers[kind] = p
                p.start()

        startup = pod.prober(kind="startup", path="/startupz", timeout=timeout,
                             failure_threshold=5, started=started)
        startup.start()
        self.assertTrue(startup.wait_until(lambda probes, r: startup.started_at is not None,
                                           h.scaled(5.0) + 5))
        live = None
        deadline = time.monotonic() + init + serving + h.scaled(10.0) + 10
        while time.monotonic() < deadline:
            live = probers.get("liveness")
            if live and live.snapshot()[1] and probers["readiness"].ready_changes[-1:] and \
                    probers["readiness"].ready_changes[-1][0] > live.snapshot()[1][0]:
                break
            time.sleep(0.05)
        for p in probers.values():
            p.stop()
        ready_probe = probers["readiness"]
        probes, restarts = live.snapshot()
        rprobes, _ = ready_probe.snapshot()
        sprobes, srestarts = startup.snapshot()

        # Started at the first Probe, ready=false and all: no start-up restart.
        self.assertEqual([p.ok for p in sprobes], [True], sprobes)
        self.assertEqual((sprobes[0].body, srestarts), (b"started", []))
        # Initializing: alive, not restarted, kept out of service.
        initializing = [p for p in probes if p.body == b"alive, not ready yet"]
        self.assertGreaterEqual(len(initializing), 2, probes)
        self.assertTrue(all(p.ok for p in initializing))
        not_ready = [p for p in rprobes if p.body.decode() == h.NOT_READY_BODY]
        self.assertGreaterEqual(len(not_ready), 2, rprobes)
        self.assertTrue(all(p.status == 500 for p in not_ready))
        # In service once ready; out of service when wedged; in again after the restart.
        changes = [ready for _, ready in ready_probe.ready_changes]
        self.assertEqual(changes[:3], [True, False, True], ready_probe.ready_changes)
        self.assertGreater(ready_probe.ready_changes[0][0], not_ready[-1].end)
        # Wedged: restarted once, after failureThreshold deadline failures.
        self.assertEqual(len(restarts), 1, probes)
        before = [p for p in probes if p.start < restarts[0]]
        self.assertTrue(all(p.ok for p in before[:-3]), before)
        for p in before[-3:]:
            self.assertEqual((p.status, p.body.decode()), (500, h.DEADLINE_BODY), p)
        self.assertEqual(len(pod.drivers), 2)
        self.assertTrue(pod.sidecar.alive())


if __name__ == "__main__":
    h.main()
