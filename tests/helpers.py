"""Helpers shared by the tests (importable: tests/ is on sys.path under pytest)."""

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import PIL.Image


def smooth_image(seed: int, height: int, width: int) -> np.ndarray:
    """A seeded float32 (H, W, 3) image in [0, 1] with structure at several scales."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(1, 6, size=3)
        channels.append(0.5 + 0.35 * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase))
    image = np.stack(channels, axis=-1) + 0.1 * rng.standard_normal((height, width, 3))
    return np.clip(image, 0, 1).astype(np.float32)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray((array * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(side: int = 100000) -> bytes:
    """A PNG whose header declares ``side`` px a side (a decompression bomb's first bytes)."""
    import struct
    import zlib

    chunk = b"IHDR" + struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\0" * 64)  # fmt: skip


def session_run(path: str, signature_name: str, feeds: dict) -> dict:
    """Run a signature through the session-based loader, as tensorflow_model_server does."""
    return session_runs(path, signature_name, [feeds])[0]


def session_runs(path: str, signature_name: str, feeds: list) -> list:
    """``session_run`` for several requests, on one loaded model."""
    session, meta = loaded_session(path)
    signature = meta.signature_def[signature_name]
    return [run_signature(session, signature, f) for f in feeds]


_SESSIONS: dict = {}  # (path, saved_model.pb's mtime) -> (session, MetaGraphDef)
_MAX_SESSIONS = 4


def loaded_session(path: str) -> tuple:
    """``(session, meta_graph)`` of the SavedModel version at ``path``, loaded once (as a model
    server loads a version once and runs every request on that session): a load, and the first
    run of each signature (the graph's optimisation), cost seconds each."""
    import tensorflow as tf

    key = (os.path.realpath(path), os.stat(os.path.join(path, "saved_model.pb")).st_mtime_ns)
    if key not in _SESSIONS:
        if len(_SESSIONS) >= _MAX_SESSIONS:
            oldest = next(iter(_SESSIONS))
            _SESSIONS.pop(oldest)[0].close()
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph)
        with graph.as_default():  # only while loading: other tests run eagerly
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        _SESSIONS[key] = (session, meta)
    return _SESSIONS[key]


def run_signature(session, signature, feeds: dict) -> dict:
    """One request on a loaded session: the inputs not in ``feeds`` take the signature's
    defaults, as TF Serving (>= 2.14) fills them; every request feeding the same inputs, the
    session reuses one executor instead of pruning and optimising the graph per request."""
    import tensorflow as tf

    fetches = {alias: info.name for alias, info in signature.outputs.items()}
    values = {k: tf.make_ndarray(v) for k, v in signature.defaults.items()}
    values.update(feeds)
    return session.run(fetches, {signature.inputs[k].name: v for k, v in values.items()})


def pixels(outputs: dict) -> np.ndarray:
    """The uint8 (H, W, 3) image of a served answer: its PNG output, decoded."""
    from tfstyle import signature as sig

    return np.asarray(PIL.Image.open(io.BytesIO(outputs[sig.IMAGE_BYTES])))


#: The one export the serving tests share (``conftest.exported``): a test that changes a model
#: directory serves a copy (``copy_model``).
EXPORT = {"size": 48, "weights": None, "seed": 3}
#: (width, height) of its answers for the seeded 64 x 48 content image.
ANSWER_SIZE = (48, 36)


def copy_model(base_path, dest, versions=(1,), warmup: bool = False):
    """Copy versions of the model at ``base_path`` to ``dest`` (a new base path); without the
    warm-up file unless ``warmup`` (replaying it costs about 7 s a load here, and only the
    tests of warm-up need it)."""
    from tfstyle import signature as sig

    for version in versions:
        target = os.path.join(dest, str(version))
        shutil.copytree(os.path.join(base_path, "1"), target)
        if not warmup:
            os.remove(os.path.join(target, sig.WARMUP_FILE))
    return dest


def raw_request(pngs, signature_name=None, model=None, **inputs):
    """A ``PredictRequest`` built by hand (not by the contract: tests send wrong dtypes too):
    content and style from ``pngs``, iterations 1, then ``inputs``; a TensorProto is sent as it
    is, a None input left out, anything else as ``tf.make_tensor_proto(value)``."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2
    from tensorflow_serving.apis import predict_pb2

    from tfstyle import signature as sig

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model or sig.MODEL_NAME
    request.model_spec.signature_name = signature_name or sig.DEFAULT_SIGNATURE
    values = {sig.CONTENT: pngs[0], sig.STYLE: pngs[1], sig.ITERATIONS: np.int32(1), **inputs}
    for name, value in values.items():
        if value is None:
            continue
        proto = value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        request.inputs[name].CopyFrom(proto)
    return request


#: The local stand-in for tensorflow_model_server.
STANDIN = [sys.executable, os.path.join(os.path.dirname(__file__), "standin", "model_server.py")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ModelServer:
    """A model server subprocess (``command``: the stand-in, or ``tensorflow_model_server``) on
    free loopback ports, serving ``base_path`` as the tfstyle model, logging to ``log_path``
    (default: ``server-<port>.log`` beside ``base_path``). ``flags`` come after the defaults
    here, so they override them; with ``config_file``, the models of that ``models.config``
    instead (``model_name`` the one ``wait_for`` waits for). ``with ModelServer(...) as srv:``
    stops it at the end."""

    def __init__(self, base_path, *flags, command=STANDIN, log_path=None, model_name=None,
                 config_file=None):  # fmt: skip
        self.grpc_port, self.rest_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.grpc_port}"
        self.url = f"http://127.0.0.1:{self.rest_port}"
        self.base_path, self.command = str(base_path), command
        self.log_path = str(
            log_path
            or os.path.join(os.path.dirname(self.base_path), f"server-{self.grpc_port}.log")
        )
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed by stop)
        from tfstyle import signature as sig

        self.model_name = model_name or sig.MODEL_NAME
        self.process = subprocess.Popen(
            [
                *command,
                f"--port={self.grpc_port}",
                f"--rest_api_port={self.rest_port}",
                *self._served(config_file),
                "--file_system_poll_wait_seconds=1",
                "--load_retry_interval_micros=500000",  # TF Serving's default: 1 min
                *(["--host=127.0.0.1"] if command == STANDIN else []),  # loopback only
                *flags,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )

    def _served(self, config_file) -> list:
        if config_file is not None:
            return [f"--model_config_file={config_file}"]
        return [f"--model_name={self.model_name}", f"--model_base_path={self.base_path}"]

    def wait_for(self, version: int | None = None, timeout: float = 180) -> list:
        """The model status once ``version`` (None: any) is AVAILABLE."""
        from tfstyle import client

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.process.poll() is None, self.read_log()[-5000:]
            try:
                status = client.model_status(self.address, self.model_name, timeout=2)
                if any(
                    s["state"] == "AVAILABLE" and version in (None, s["version"]) for s in status
                ):
                    return status
            except client.ServingError:
                pass
            time.sleep(0.3)
        raise AssertionError(
            f"version {version} not AVAILABLE in {timeout} s:\n{self.read_log()[-5000:]}"
        )

    def read_log(self) -> str:
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def peak_rss_kb(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 30 s; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.log.closed:
            self.log.close()
        return self.process.returncode


class Proxy:
    """A TCP forwarder on loopback to ``address`` (``host:port``): a server that can go away.
    ``close()`` stops listening and cuts every connection, which a client sees as it sees a
    server that stopped (connections reset, then refused), without starting a second server."""

    def __init__(self, address: str):
        host, port = address.rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self._listener.accept()
            except OSError:  # closed
                return
            try:
                far = socket.create_connection(self._target)
            except OSError:
                near.close()
                continue
            with self._lock:
                self._sockets += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        try:  # wakes the accept() blocked in its thread, which close() alone does not
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
