"""A request on its way through the server (``Call``: its time limit, its cancellation), the TF
session that runs it (``_Session``), and ``ServingError``: the gRPC status a request fails with."""

from __future__ import annotations

import logging
import math
import threading
import time

import grpc
import tensorflow as tf

log = logging.getLogger("model_server")
DEFAULT_SIGNATURE = "serving_default"

# Default of one of the stand-in's own flags (tensorflow_model_server has none of these).
NO_DEADLINE_TIMEOUT_MS = 3_600_000  # 1 h

_CODES = {code.value[0]: code for code in grpc.StatusCode}
INVALID = grpc.StatusCode.INVALID_ARGUMENT


class ServingError(Exception):
    """A request failed with a gRPC status code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


class Call:
    """One request on its way through the server: its time limit and whether its client still
    waits for it. ``cancel`` (from another thread) closes the TF session running it, which
    cancels the run: the one way the TF session API offers to stop a ``session.run`` early."""

    def __init__(self, what: str, timeout_s: float | None = None, limit: str = "its limit"):
        self.what = what
        self.timeout_s = timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self.limit = limit
        self.reason: str | None = None
        self.code = grpc.StatusCode.CANCELLED
        self.done = False
        self._session: _Session | None = None
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self.reason is not None

    def cancel(self, reason: str, code: grpc.StatusCode = grpc.StatusCode.CANCELLED) -> None:
        with self._lock:
            if self.done or self.reason is not None:
                return
            self.reason, self.code = reason, code
            session = self._session
        log.info("%s: %s%s", self.what, reason, "; cancelling its run" if session else "")
        if session is not None:
            session.close()

    def attach(self, session: _Session) -> None:
        with self._lock:
            if self.reason is None:
                self._session = session
                return
        raise self.cancelled_error()

    def detach(self) -> None:
        with self._lock:
            self._session = None

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self._session = None

    def cancelled_error(self) -> ServingError:
        return ServingError(self.code, f"Request cancelled: {self.reason}")

    def deadline_error(self, detail: str) -> ServingError:
        if self.timeout_s is not None:
            detail = f"{detail}: stopped at {self.limit} ({self.timeout_s:g} s)"
        return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, detail)

    def check(self) -> None:
        if self.reason is not None:
            raise self.cancelled_error()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise self.deadline_error("Deadline exceeded before the run could start")

    def run_timeout_ms(self) -> int:
        """``RunOptions.timeout_in_ms`` for the run: what is left of the limit (0: none)."""
        self.check()
        if self.deadline is None:
            return 0
        return max(1, math.ceil((self.deadline - time.monotonic()) * 1000))


class _Session:
    """A TF session with one version loaded into a graph of its own."""

    def __init__(self, path: str):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)
        self.signatures = dict(meta.signature_def)
        self.closed = False

    def close(self) -> None:
        # DirectSession::Close() cancels the session's in-flight run (its CancellationManager).
        self.closed = True
        self.session.close()


def _limit(timeout_ms: int, flag: str) -> tuple[float | None, str]:
    if timeout_ms <= 0:
        return None, ""
    return timeout_ms / 1000, f"the server's limit ({flag}={timeout_ms})"
