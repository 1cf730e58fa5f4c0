"""The test side of csi_pydriver.py: a grpcio client and the harness.

call() makes one unary call with raw bytes, so the same function calls the
driver directly, through a proxy, or any path at all; replies are decoded by
the caller with the generated messages (messages()). PyDriverTestCase
starts the driver like lpharness starts csi-mock-driver (PyDriver has the
Mock's wait_listening, calls and wait_calls), and fails every test with one
clear message when grpcio cannot be imported: CI installs python3-grpcio
(scripts/install-deps.sh), so a missing package is a broken set-up, never a
reason to skip.

Run a file that uses this with main() instead of lpharness.main(): when
the interpreter running it cannot import grpc (a pyenv python3 on PATH does
not see Debian's dist-packages) it re-executes the file under the one
csi_pydriver.grpc_python() picks.
"""

import importlib
import os
import sys

import csi_pydriver
import lpharness as h

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csi_pydriver.py")
# Set in the environment of the re-executed process, so that a second
# interpreter that cannot import grpc either is not re-executed in a loop.
_REEXEC_ENV = "LP_PYGRPC_REEXEC"


def _import_error():
    """The ImportError of grpc or google.protobuf in this process, or None."""
    try:
        importlib.import_module("grpc")
        importlib.import_module("google.protobuf")
    except ImportError as e:
        return e
    return None


def _grpc_problem():
    """None when this process can import grpc and generate the messages,
    else the message every test fails with."""
    e = _import_error()
    if e is not None:
        try:
            other = csi_pydriver.grpc_python()
        except RuntimeError as e2:
            return str(e2)
        return ("%s cannot import grpc (%s); run this file with %s, or through"
                " csi_pyclient.main(), which re-executes it there" % (sys.executable, e, other))
    try:
        csi_pydriver.load_csi_pb2()
    except RuntimeError as e:
        return str(e)
    return None


def main():
    """unittest.main(), under an interpreter that imports grpc."""
    if _import_error() is not None and not os.environ.get(_REEXEC_ENV):
        try:
            interp = csi_pydriver.grpc_python()
        except RuntimeError:
            interp = None  # every test fails, saying why (PyDriverTestCase)
        if interp:
            os.environ[_REEXEC_ENV] = "1"
            sys.stdout.flush()
            sys.stderr.flush()
            os.execv(interp, [interp] + sys.argv)
    h.main()


def messages():
    """The csi_pb2 module generated from proto/csi.proto."""
    return csi_pydriver.load_csi_pb2()


def call(socket_path, method_path, request_bytes=b"", metadata=(), timeout=10.0):
    """One unary call on a fresh channel to the unix socket socket_path.

    method_path: "/package.Service/Method"; request_bytes go as they are
    (no serializer) and the reply comes back as bytes. metadata: (key,
    value) pairs, keys lower case, values bytes for "-bin" keys. timeout:
    the call's deadline in seconds (None: none).

    Returns (code name, details, reply bytes, trailing metadata): the code
    as grpc.StatusCode names it ("OK", "DEADLINE_EXCEEDED"), details "" when
    there are none, reply None unless the code is OK, trailing metadata a
    tuple of (key, value) pairs as received. A fresh channel per call, so
    no connection state (reconnect backoff) carries from one call to the
    next when a server or a proxy restarts between them.
    """
    import grpc
    channel = grpc.insecure_channel("unix:" + socket_path, options=csi_pydriver.UNLIMITED)
    try:
        stub = channel.unary_unary(method_path)
        try:
            reply, c = stub.with_call(request_bytes, timeout=timeout, metadata=list(metadata))
            code, details, trailers = c.code(), c.details(), c.trailing_metadata()
        except grpc.RpcError as e:
            reply, code, details, trailers = None, e.code(), e.details(), e.trailing_metadata()
        return (code.name, details or "", reply,
                tuple((k, v) for k, v in (trailers or ())))
    finally:
        channel.close()


class PyDriver(h.Mock):
    """csi_pydriver.py as a child process; stdout as csi-mock-driver's."""

    def __init__(self, args, workdir, name, socket_path):
        self.socket_path = socket_path
        h.Proc.__init__(self, [csi_pydriver.grpc_python(), DRIVER,
                               "--csi-address=" + socket_path] + list(args), workdir, name)


class PyDriverTestCase(h.LPTestCase):
    """LPTestCase that fails at once, with one message, without grpcio."""

    _problem = "unchecked"

    def setUp(self):
        super().setUp()
        if PyDriverTestCase._problem == "unchecked":
            PyDriverTestCase._problem = _grpc_problem()
        if PyDriverTestCase._problem:
            self.fail(PyDriverTestCase._problem)

    def start_pydriver(self, *args, path=None, wait=True):
        """csi_pydriver.py with args on path (default the test's csi.sock)."""
        path = path or self.sock_path()
        d = PyDriver(args, self.tmp, self._name("pydriver"), path)
        self._procs.append(d)
        if wait:
            d.wait_listening()
        return d
