"""/healthz against a driver written in Go with grpc-go, like production ones.

csi-go-driver (tests/godriver/, built by tests/godriver/build.sh with
Debian's Go toolchain and grpc-go 1.33) frames its replies the way grpc-go
servers do, not the way the C core's do. The compatibility rows of
test_healthz.py (ready set, unset and false; every status code, with plain
and awkward UTF-8 messages; slow, hanging, stopped, killed and vanished
drivers) and test_channel.py's driver restarts run here again, unchanged,
against it: the same answers, the same deadlines.

LP_GO_DRIVER names the binary (default: csi-go-driver beside LP_MOCK).
"""

import os
import unittest

import lpharness as h
import test_channel
import test_healthz

LP_GO_DRIVER = os.path.abspath(
    os.environ.get("LP_GO_DRIVER") or os.path.join(os.path.dirname(h.LP_MOCK), "csi-go-driver"))

# csi-mock-driver's flags the rows use, as csi-go-driver spells them.
GO_FLAGS = {"--probe-hang": "--probe-delay=1h"}


class GoDriver:
    """Starts csi-go-driver wherever a test starts csi-mock-driver."""

    def start_mock(self, *args, path=None, wait=True):
        path = path or self.sock_path()
        m = h.Mock([GO_FLAGS.get(a, a) for a in args], self.tmp, self._name("go"), path,
                   binary=LP_GO_DRIVER)
        self._procs.append(m)
        if wait:
            m.wait_listening()
        return m


class GoReadyTest(GoDriver, test_healthz.ReadyTest):
    pass


class GoErrorCodeTest(GoDriver, test_healthz.ErrorCodeTest):
    pass


class GoUnreachableTest(GoDriver, test_healthz.UnreachableTest):
    pass


class GoDeadlineTest(GoDriver, test_healthz.DeadlineTest):
    pass


class GoRestartTest(GoDriver, test_channel.SocketReplacedTest):
    pass


class GoDriverItselfTest(GoDriver, h.LPTestCase):
    """The driver is what it claims: grpc-go answering, its own flags."""

    def test_identity_and_plugin_info(self):
        mock, d = self.healthy_daemon("-v=5")
        self.assertHealthz(d.request(), 200, "ok")
        self.assertEqual(mock.calls("GetPluginInfo"), 1)
        self.assertTrue(d.wait_log('"CSI driver info" driver="go.csi.example.com"', h.scaled(5)),
                        d.stderr())

    def test_bad_flags_exit_2(self):
        m = self.start_mock("--ready=maybe", wait=False)
        self.assertEqual(m.wait(h.scaled(10)), 2)
        self.assertFalse(os.path.exists(m.socket_path))


if __name__ == "__main__":
    unittest.main()
