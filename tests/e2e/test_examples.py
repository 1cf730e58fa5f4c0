"""The example policies (examples/policies/*.lua) keep their promises.

Each runs in the real daemon against csi-mock-driver scenarios; where a
scenario needs a driver that changes its answers, the mock is restarted on
the same socket path with other flags. The Kubernetes manifests
(examples/kubernetes/*.yaml) must be what generate.sh makes of the policies
and of the failure-mode scripts (failure-lab.yaml).
"""

import json
import os
import re
import shutil
import subprocess
import threading
import time

import lpharness as h

EXAMPLES = os.path.join(h.SOURCE_DIR, "examples")
POLICIES = os.path.join(EXAMPLES, "policies")
KUBERNETES = os.path.join(EXAMPLES, "kubernetes")

UNAVAILABLE_BODY = "rpc error: code = Unavailable desc = driver is down"


# Manifests written by hand; generate.sh makes the others.
HAND_WRITTEN = {"pod.yaml", "metrics.yaml"}


def example(name):
    return os.path.join(POLICIES, name + ".lua")


class ExampleCase(h.LPTestCase):

    def example_daemon(self, policy, *args, mock_args=(), path=None):
        mock = self.start_mock(*mock_args, path=path)
        d = self.start_daemon("--policy=" + policy, *args, csi=mock.socket_path)
        return mock, d

    def restart_mock(self, mock, *args):
        """A new mock with args on mock's socket path (the old one stopped)."""
        if mock.alive():
            self.stop_mock(mock)
        return self.start_mock(*args, path=mock.socket_path)

    def local_copy(self, name, **constants):
        """A copy of an example policy with top-level constants changed."""
        with open(example(name)) as f:
            text = f.read()
        for key, value in constants.items():
            text, n = re.subn(r"(?m)^local %s = [^\n]*$" % key,
                              "local %s = %s" % (key, value), text)
            self.assertEqual(n, 1, "%s not found in %s.lua" % (key, name))
        path = os.path.join(self.tmp, name + ".lua")
        with open(path, "w") as f:
            f.write(text)
        return path


class StartupGraceTest(ExampleCase):

    def test_not_ready_is_healthy_during_grace(self):
        mock, d = self.example_daemon(example("startup_grace"), mock_args=["--ready=false"])
        for _ in range(3):
            r = d.request()
            self.assertEqual(r.status, 200, r)
            self.assertRegex(r.text(), r"^driver is initializing \(\d+s of 120s grace\)$")
        # Ready, and errors, are answered as the built-in policy does.
        mock = self.restart_mock(mock)
        self.assertHealthz(d.request(), 200, "ok")
        mock = self.restart_mock(mock, "--probe-code=Unavailable",
                                 "--probe-message=driver is down")
        self.assertHealthz(d.request(), 500, UNAVAILABLE_BODY)

    def test_not_ready_fails_after_grace(self):
        path = self.local_copy("startup_grace", GRACE_SECONDS=1)
        mock, d = self.example_daemon(path, mock_args=["--ready=false"])
        first = time.monotonic()
        r = d.request()
        self.assertHealthz(r, 200, "driver is initializing (0s of 1s grace)")
        answers = []
        while time.monotonic() - first < 1.6:
            r = d.request()
            answers.append((time.monotonic() - first, r.status, r.text()))
            time.sleep(0.05)
        flips = [a for a in answers if a[1] == 500]
        self.assertTrue(flips, answers)
        self.assertEqual(flips[0][2], h.NOT_READY_BODY)
        # Healthy until the grace ends, not ready from then on.
        self.assertGreaterEqual(flips[0][0], 1.0 - h.scaled(0.05))
        self.assertLessEqual(flips[0][0], 1.0 + h.scaled(0.2))
        for t, status, body in answers:
            if t < flips[0][0]:
                self.assertEqual(status, 200, answers)
                self.assertIn("initializing", body)
            else:
                self.assertEqual((status, body), (500, h.NOT_READY_BODY), answers)


class RetryTransientTest(ExampleCase):

    ARGS = ("--probe-timeout=1s", "--check-timeout=4s", "-v=4")

    def test_driver_up_during_the_check(self):
        mock, d = self.example_daemon(example("retry_transient"), *self.ARGS)
        self.assertHealthz(d.request(), 200, "ok")
        self.stop_mock(mock)  # down: its socket is gone
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", d.request()))
        t.start()
        # Back once the check has failed a first time and is retrying.
        self.assertTrue(d.wait_log("retrying in 0.2s", h.scaled(5.0)), d.stderr())
        mock = self.start_mock(path=mock.socket_path)
        t.join(10)
        r = result["r"]
        self.assertHealthz(r, 200, "ok")
        self.assertLess(r.elapsed, 4.0)
        self.assertEqual(mock.calls(), 1)
        self.assertTrue(d.wait_log("retrying in 0.2s", 1), d.stderr())

    def test_unavailable_then_ok(self):
        mock, d = self.example_daemon(example("retry_transient"), *self.ARGS, mock_args=[
            "--probe-code=Unavailable", "--probe-message=driver is down"])
        r = d.request()
        # Three attempts, 0.2 s then 0.4 s apart, then the last error.
        self.assertHealthz(r, 500, UNAVAILABLE_BODY)
        self.assertEqual(mock.calls(), 3)
        self.assertAtDeadline(r, 0.6)
        mock = self.restart_mock(mock)
        r = d.request()
        self.assertHealthz(r, 200, "ok")
        self.assertEqual(mock.calls(), 1)
        self.assertLess(r.elapsed, h.scaled(0.1))

    def test_failed_precondition_fails_at_once(self):
        mock, d = self.example_daemon(example("retry_transient"), *self.ARGS, mock_args=[
            "--probe-code=FailedPrecondition", "--probe-message=plugin not healthy"])
        r = d.request()
        self.assertHealthz(r, 500,
                           "rpc error: code = FailedPrecondition desc = plugin not healthy")
        self.assertEqual(mock.calls(), 1)
        self.assertLess(r.elapsed, h.scaled(0.1))

    def test_retries_stay_within_the_check_budget(self):
        # No driver at all: each attempt waits out its probe timeout (1 s);
        # the retries must still end before the 4 s check deadline.
        mock, d = self.example_daemon(example("retry_transient"), *self.ARGS)
        self.stop_mock(mock)
        r = d.request()
        self.assertHealthz(r, 500, h.CONNECT_FAIL_BODY)
        self.assertGreater(r.elapsed, 3.0)
        self.assertLess(r.elapsed, 4.0 + h.scaled(0.05))
        self.assertEqual(len([l for l in d.log_lines() if "retrying in" in l]), 2)
        self.assertFalse([l for l in d.log_lines() if "Policy failed" in l])


class ConsecutiveFailuresTest(ExampleCase):

    def test_third_failure_in_a_row_fails(self):
        mock, d = self.example_daemon(example("consecutive_failures"), mock_args=[
            "--probe-code=Unavailable", "--probe-message=driver is down"])
        for n in (1, 2):
            self.assertHealthz(d.request(), 200, "ok (tolerating failure %d of 3: %s)"
                               % (n, UNAVAILABLE_BODY))
        self.assertHealthz(d.request(), 500, UNAVAILABLE_BODY)
        self.assertHealthz(d.request(), 500, UNAVAILABLE_BODY)
        # Healthy again: 200, and the count starts over.
        mock = self.restart_mock(mock)
        self.assertHealthz(d.request(), 200, "ok")
        mock = self.restart_mock(mock, "--probe-code=Unavailable",
                                 "--probe-message=driver is down")
        self.assertHealthz(d.request(), 200, "ok (tolerating failure 1 of 3: %s)"
                           % UNAVAILABLE_BODY)
        self.assertEqual(mock.calls(), 1)

    def test_not_ready_counts_as_failure(self):
        mock, d = self.example_daemon(example("consecutive_failures"),
                                      mock_args=["--ready=false"])
        for n in (1, 2):
            self.assertHealthz(d.request(), 200, "ok (tolerating failure %d of 3: %s)"
                               % (n, h.NOT_READY_BODY))
        self.assertHealthz(d.request(), 500, h.NOT_READY_BODY)


class LatencyLimitTest(ExampleCase):

    def test_slow_driver_fails_on_third_check(self):
        mock, d = self.example_daemon(example("latency_limit"), "--probe-timeout=1s",
                                      mock_args=["--probe-delay=600ms"])
        for _ in range(2):
            r = d.request()
            self.assertHealthz(r, 200, "ok")
            self.assertGreater(r.elapsed, 0.6)
        r = d.request()
        self.assertEqual(r.status, 500, r)
        self.assertRegex(r.text(), r"^Probe took 0\.6\d\ds, over 0\.500s in 3 checks in a row$")
        # A fast driver is healthy at once, and the slow count starts over.
        mock = self.restart_mock(mock)
        self.assertHealthz(d.request(), 200, "ok")
        mock = self.restart_mock(mock, "--probe-delay=600ms")
        self.assertHealthz(d.request(), 200, "ok")
        self.assertHealthz(d.request(), 200, "ok")
        self.assertEqual(d.request().status, 500)

    def test_fast_driver_is_healthy(self):
        mock, d = self.example_daemon(example("latency_limit"))
        for _ in range(5):
            self.assertHealthz(d.request(), 200, "ok")

    def test_errors_fail_at_once(self):
        mock, d = self.example_daemon(example("latency_limit"), mock_args=[
            "--probe-code=Unavailable", "--probe-message=driver is down"])
        self.assertHealthz(d.request(), 500, UNAVAILABLE_BODY)


class JsonDetailsTest(ExampleCase):

    def test_body_is_json_with_up_to_16_probes(self):
        mock, d = self.example_daemon(example("json_details"))
        for i in range(20):
            r = d.request()
            self.assertEqual(r.status, 200, r)
            doc = json.loads(r.text())
            self.assertEqual(set(doc), {"driver", "healthy", "probes", "reason"})
            self.assertEqual(doc["driver"], h.MOCK_NAME)
            self.assertIs(doc["healthy"], True)
            self.assertEqual(doc["reason"], "ok")
            self.assertEqual(len(doc["probes"]), min(i + 1, 16))
            for p in doc["probes"]:
                self.assertEqual(p["code"], "OK")
                self.assertIs(p["connected"], True)
                self.assertIsInstance(p["at"], (int, float))
                self.assertIsInstance(p["seconds"], (int, float))
            ats = [p["at"] for p in doc["probes"]]
            self.assertEqual(ats, sorted(ats))

    def test_unhealthy_details(self):
        mock, d = self.example_daemon(example("json_details"), mock_args=["--ready=false"])
        doc = json.loads(d.request().text())
        self.assertEqual(doc["healthy"], False)
        self.assertEqual(doc["reason"], h.NOT_READY_BODY)
        self.assertIs(doc["probes"][-1]["ready"], False)
        message = 'say "hi"\\\tand\nleave'
        mock = self.restart_mock(mock, "--probe-code=FailedPrecondition",
                                 "--probe-message=" + message)
        r = d.request()
        self.assertEqual(r.status, 500, r)
        doc = json.loads(r.text())
        want = "rpc error: code = FailedPrecondition desc = " + message
        self.assertEqual(doc["reason"], want)
        self.assertEqual(doc["probes"][-1]["error"], want)
        self.assertEqual(doc["probes"][-1]["code"], "FAILED_PRECONDITION")
        self.assertEqual(len(doc["probes"]), 2)


# ---------------------------------------------------------------------------
# Manifests

def configmap_file(text, key):
    """The `key: |` block of a ConfigMap manifest, unindented."""
    lines = text.split("\n")
    start = lines.index("  %s: |" % key) + 1
    out = []
    for line in lines[start:]:
        if line == "---" or re.match(r"^  \S", line):
            break
        if not line.startswith("    "):
            raise AssertionError("line %r ends the block early" % line)
        out.append(line[4:])
    return "\n".join(out) + "\n"


def configmap_policy(text):
    """The policy.lua block of a ConfigMap manifest, unindented."""
    return configmap_file(text, "policy.lua")


def container_args(text, name):
    """The args of container name in a manifest."""
    m = re.search(r"- name: %s\n(?:.*\n)*?      args:\n((?:        - .*\n)+)" % name, text)
    if not m:
        raise AssertionError("no %s args" % name)
    return [line.strip()[2:] for line in m.group(1).splitlines()]


def sidecar_args(text):
    """The args of the liveness-probe container of a manifest."""
    return container_args(text, "liveness-probe")


class ManifestTest(ExampleCase):

    def manifests(self):
        out = {}
        for name in sorted(os.listdir(POLICIES)):
            if name.endswith(".lua"):
                out[name[:-4]] = os.path.join(KUBERNETES, name[:-4].replace("_", "-") + ".yaml")
        return out

    def test_hand_written_manifests_args_run(self):
        # pod.yaml and metrics.yaml: their sidecar args work as written
        # (the socket path and the port made local).
        for name in sorted(HAND_WRITTEN):
            with self.subTest(manifest=name):
                with open(os.path.join(KUBERNETES, name)) as f:
                    args = sidecar_args(f.read())
                port = h.free_port()
                local = ["--http-endpoint=127.0.0.1:%d" % port if a.startswith("--http-endpoint=")
                         else a for a in args if not a.startswith("--csi-address=")]
                metrics = any(a.startswith("--http-endpoint=") for a in args)
                mock = self.start_mock(path=self.sock_path(name + ".sock"))
                d = self.start_daemon(*local, csi=mock.socket_path, port=port,
                                      health_port_flag=not metrics)
                self.assertEqual(d.request().status, 200)
                if metrics:
                    self.assertEqual(d.request(path="/metrics").status, 200)
                self.stop_daemon(d)
                self.stop_mock(mock)

    def test_generated_manifests_up_to_date(self):
        copy = os.path.join(self.tmp, "examples")
        shutil.copytree(EXAMPLES, copy, symlinks=True)
        for name in os.listdir(os.path.join(copy, "kubernetes")):
            if name.endswith(".yaml") and name not in HAND_WRITTEN:
                os.unlink(os.path.join(copy, "kubernetes", name))
        subprocess.run(["sh", os.path.join(copy, "kubernetes", "generate.sh")],
                       check=True, timeout=30)
        want = sorted(os.listdir(os.path.join(copy, "kubernetes")))
        self.assertEqual(sorted(os.listdir(KUBERNETES)), want)
        for name in want:
            with self.subTest(file=name):
                with open(os.path.join(copy, "kubernetes", name)) as f:
                    fresh = f.read()
                with open(os.path.join(KUBERNETES, name)) as f:
                    self.assertEqual(f.read(), fresh,
                                     "examples/kubernetes/%s is out of date: run "
                                     "examples/kubernetes/generate.sh" % name)

    def test_failure_lab(self):
        # failure-lab.yaml: its ConfigMap carries every failure-mode script
        # as it is, and its two containers' args work (paths made local).
        failure_modes = os.path.join(EXAMPLES, "failure-modes")
        with open(os.path.join(KUBERNETES, "failure-lab.yaml")) as f:
            text = f.read()
        scripts = sorted(n for n in os.listdir(failure_modes) if n.endswith(".lua"))
        self.assertEqual(sorted(re.findall(r"(?m)^  (\S+\.lua): \|$", text)), scripts)
        for name in scripts:
            with open(os.path.join(failure_modes, name)) as f:
                self.assertEqual(configmap_file(text, name), f.read(), name)
        driver = container_args(text, "csi-driver")
        self.assertEqual(driver[0], "--csi-address=/csi/csi.sock")
        script = re.fullmatch(r"--script=/etc/failure-modes/(\S+)", driver[1])
        self.assertIsNotNone(script, driver)
        self.assertIn(script.group(1), scripts)
        mock = self.start_mock("--script=" + os.path.join(failure_modes, script.group(1)),
                               *driver[2:])
        local = [a for a in sidecar_args(text) if not a.startswith("--csi-address=")]
        d = self.start_daemon(*local, csi=mock.socket_path)
        r = d.request()
        self.assertEqual((r.status, r.text()), (200, "ok"))

    def test_configmaps_carry_the_example_policies(self):
        for name, manifest in self.manifests().items():
            with self.subTest(policy=name):
                self.assertTrue(os.path.exists(manifest), manifest)
                with open(manifest) as f:
                    text = f.read()
                with open(example(name)) as f:
                    self.assertEqual(configmap_policy(text), f.read())
                slug = name.replace("_", "-")
                self.assertIn("  name: livenessprobe-policy-%s\n" % slug, text)
                self.assertIn("        name: livenessprobe-policy-%s\n" % slug, text)
                args = sidecar_args(text)
                self.assertIn("--policy=/etc/livenessprobe/policy.lua", args)
                self.assertIn("- mountPath: /etc/livenessprobe\n", text)

    def test_manifest_args_run(self):
        # The sidecar's args from each manifest, pointed at local paths.
        for name, manifest in self.manifests().items():
            with self.subTest(policy=name):
                with open(manifest) as f:
                    args = sidecar_args(f.read())
                local = []
                for a in args:
                    if a.startswith("--csi-address="):
                        continue
                    if a.startswith("--policy="):
                        a = "--policy=" + example(name)
                    if a.startswith("--policy-allow-path="):
                        # A host directory of the Pod: here, one of ours.
                        # (test_deep.py runs deep_check.lua against it.)
                        a = "--policy-allow-path=" + self.tmp
                    local.append(a)
                port = h.free_port()
                mock = self.start_mock(path=self.sock_path(name + ".sock"))
                d = self.start_daemon(*local, csi=mock.socket_path, port=port)
                r = d.request()
                self.assertEqual(r.status, 200, r)
                self.stop_daemon(d)
                self.stop_mock(mock)
        with open(self.manifests()["retry_transient"]) as f:
            self.assertIn("--check-timeout=4s", sidecar_args(f.read()))

    def test_examples_pass_check_policy(self):
        for name in self.manifests():
            with self.subTest(policy=name):
                rc, out, err = self.run_daemon("--check-policy=" + example(name))
                self.assertEqual(rc, 0, err)
                self.assertIn("policy loads", err)


if __name__ == "__main__":
    h.main()
