"""``ModelManager``: polls each model's base path, loads its latest version (with TF Serving's
load retries), keeps the versions' status, and counts the requests in flight for shutdown."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2

if __package__:  # imported as a package (e.g. tests.standin.model_server)
    from .calls import Call, ServingError
    from .servables import MAX_CONCURRENT_RUNS, Servable
else:  # run as a script: its directory, tests/standin, is on sys.path
    from calls import Call, ServingError
    from servables import MAX_CONCURRENT_RUNS, Servable

log = logging.getLogger("model_server")
State = get_model_status_pb2.ModelVersionStatus.State


class ModelManager:
    """Loads the latest version of each model and polls for new ones (TF Serving's default
    'latest' version policy: one version served, older ones unloaded once the new one is up)."""

    def __init__(
        self,
        models: dict[str, str],
        poll_seconds: float,
        max_runs: int = MAX_CONCURRENT_RUNS,
        load_retries: int = 5,
        retry_seconds: float = 60.0,
    ):
        self.models = models  # name -> base path
        self.poll_seconds = poll_seconds
        self.max_runs = max_runs
        # --max_num_load_retries, --load_retry_interval_micros (TF Serving's defaults: 5, 1 min)
        self.load_retries, self.retry_seconds = load_retries, retry_seconds
        self.lock = threading.Lock()
        self.serving: dict[str, Servable] = {}
        #: name -> version -> (state, error message, error code: a tf.errors code, 0 for OK)
        self.status: dict[str, dict[int, tuple[int, str, int]]] = {name: {} for name in models}
        self._stop = threading.Event()
        self._thread = None
        self._calls: set[Call] = set()
        self._calls_lock = threading.Lock()

    def poll(self) -> list[str]:
        """Load the latest version of each model where it is new; the errors of the versions
        that failed to load (after the retries), as TF Serving words them."""
        failed = []
        for name, base in self.models.items():
            versions = _versions(base)
            if not versions:
                continue
            latest = max(versions)
            current = self.serving.get(name)
            if current is not None and current.version == latest:
                continue
            if latest in self.status[name] and self.status[name][latest][0] == State.END:
                continue  # failed to load after its retries: TF Serving gives up on it too
            self.status[name][latest] = (State.LOADING, "", 0)
            try:
                servable, warmed = self._load(name, latest, os.path.join(base, str(latest)))
            except _LoadFailed as err:  # report it in the status, keep the old version
                self.status[name][latest] = (State.END, err.message, err.code)
                failed.append(
                    f"Loading servable: {{name: {name} version: {latest}}} failed: {err.message}"
                )
                continue
            with self.lock:
                old = self.serving.get(name)
                self.serving[name] = servable
                self.status[name][latest] = (State.AVAILABLE, "", 0)
                if old is not None:
                    self.status[name][old.version] = (State.END, "", 0)
            if old is not None:
                old.close()  # runs in progress finish first
            log.info("serving %s version %d (%d warm-up requests)", name, latest, warmed)
        return failed

    def _load(self, name: str, version: int, path: str):
        """``(servable, warm-up requests run)``; ``_LoadFailed`` once the load has failed
        ``1 + load_retries`` times (a version directory still being written loads on a later
        try, as under TF Serving, which picks up any numeric directory)."""
        for attempt in range(1 + self.load_retries):
            servable = None
            try:
                servable = Servable(name, version, path, self.max_runs)
                return servable, servable.warm_up()
            except Exception as err:
                if servable is not None:  # loaded, failed its warm-up: free its sessions
                    servable.close(force=True)
                code, message = _load_error(err)
                log.error(
                    "failed to load %s version %d (attempt %d of %d): %s",
                    name, version, attempt + 1, 1 + self.load_retries, message,
                )  # fmt: skip
                if attempt < self.load_retries and self._stop.wait(self.retry_seconds):
                    break  # shutting down
        raise _LoadFailed(code, message)

    def start_polling(self) -> None:
        def loop():
            while not self._stop.wait(self.poll_seconds):
                self.poll()

        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=loop, name="poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @contextlib.contextmanager
    def track(self, call: Call):
        """Count ``call`` as in flight (for shutdown) while the block runs."""
        with self._calls_lock:
            self._calls.add(call)
        try:
            yield call
        finally:
            call.finish()
            with self._calls_lock:
                self._calls.discard(call)

    def in_flight(self) -> int:
        with self._calls_lock:
            return len(self._calls)

    def cancel_all(self, reason: str) -> None:
        with self._calls_lock:
            calls = list(self._calls)
        for call in calls:
            call.cancel(reason, grpc.StatusCode.UNAVAILABLE)

    def close_all(self) -> None:
        with self.lock:
            servables = list(self.serving.values())
        for servable in servables:
            servable.close(force=True)

    def get(self, name: str, version: int | None) -> Servable:
        with self.lock:
            servable = self.serving.get(name)
        if servable is None or (version is not None and servable.version != version):
            spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {spec}")
        return servable

    def model_status(self, name: str, version: int | None) -> list:
        if name not in self.status or not self.status[name]:
            raise ServingError(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}"
            )
        items = sorted(self.status[name].items())
        if version is not None:
            items = [(v, s) for v, s in items if v == version]
            if not items:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Could not find version {version} of model {name}",
                )
        return items


def _versions(base: str) -> list[int]:
    """Every numeric directory under ``base``, complete or not (file_system_storage_path_source:
    TF Serving does not look inside before it tries to load)."""
    if not os.path.isdir(base):
        return []
    return [
        int(n)
        for n in os.listdir(base)
        if re.fullmatch(r"[0-9]{1,18}", n) and os.path.isdir(os.path.join(base, n))
    ]


class _LoadFailed(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _load_error(err: BaseException) -> tuple[int, str]:
    """The status code and one-line message of a failed load."""
    if isinstance(err, tf.errors.OpError):
        code = err.error_code
    elif isinstance(err, OSError):  # e.g. no saved_model.pb (yet): NOT_FOUND under TF Serving
        code = tf.errors.NOT_FOUND
    else:
        code = tf.errors.UNKNOWN
    return code, (str(err).strip().splitlines() or [type(err).__name__])[0]
