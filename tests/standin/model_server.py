#!/usr/bin/env python3
"""A local stand-in for ``tensorflow_model_server``, for machines where it cannot be installed.

Production uses TensorFlow Serving (see serving/README.md). This server exists so that tests and
notebooks can send real gRPC and REST requests without the real binary. It implements, over the
same SavedModel directory layout (``BASE_PATH/<version>/saved_model.pb``):

- gRPC ``tensorflow.serving.PredictionService/Predict`` and ``GetModelMetadata``, and
  ``tensorflow.serving.ModelService/GetModelStatus`` (protos from tensorflow-serving-api);
- REST ``POST /v1/models/NAME[/versions/N]:predict`` (the columnar ``"inputs"`` and the row
  ``"instances"`` forms; ``{"b64": ...}`` for binary strings; outputs whose alias ends in
  ``_bytes`` come back base64-encoded), ``GET /v1/models/NAME[/versions/N]`` (status) and
  ``GET /v1/models/NAME[/versions/N]/metadata``.

Each version is loaded through TensorFlow's session-based SavedModel loader
(``tf.compat.v1.saved_model.loader.load``), the mechanism ``tensorflow_model_server`` uses, and
requests are validated the way TF Serving's ``RunPredict`` does (the same status codes: unknown
model NOT_FOUND, unknown signature FAILED_PRECONDITION, missing/extra/mistyped inputs
INVALID_ARGUMENT; signature default inputs are honoured); REST bodies are parsed with the
rules and messages of TF Serving's ``json_tensor.cc``. Declared tensor shapes, dtypes and integer
ranges are checked before any value is materialised. Like TF Serving's default version policy,
only the latest version is served; the base path is polled for new versions every
``--file_system_poll_wait_seconds``. Warm-up requests in ``assets.extra/`` are replayed on load.

Runs, and what stops them (serving/README.md, "The local stand-in server", has the details):
at most ``--max_concurrent_runs`` requests run at once, each in a TF session of its own; the
client's gRPC deadline, ``--no_deadline_timeout_in_ms`` (gRPC requests without a deadline) or
``--rest_api_timeout_in_ms`` (REST) becomes the run's ``RunOptions.timeout_in_ms``; a request
whose client cancels or disconnects has its session closed, which cancels its run. SIGTERM or
Ctrl-C: no new requests, ``--shutdown_grace_seconds`` for those in flight, then their runs are
cancelled and the process exits.

Run it with ``tensorflow_model_server``'s flags::

    python tests/standin/model_server.py --port=8500 --rest_api_port=8501 \\
        --model_name=tfstyle --model_base_path=$PWD/saved_models/tfstyle

No batching, no XLA (TF Serving's defaults too).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import re
import select
import signal
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import any_pb2, text_format  # noqa: E402
from tensorflow.core.framework import tensor_pb2, types_pb2  # noqa: E402
from tensorflow.core.protobuf import error_codes_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

log = logging.getLogger("model_server")
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_MESSAGE = 2**31 - 1  # TF Serving accepts messages up to INT_MAX bytes
State = get_model_status_pb2.ModelVersionStatus.State
DEFAULT_SIGNATURE = "serving_default"

# Defaults of the stand-in's own flags (tensorflow_model_server has none of these).
MAX_CONCURRENT_RUNS = 2
NO_DEADLINE_TIMEOUT_MS = 3_600_000  # 1 h
REST_MAX_BODY_BYTES = 256 * 2**20
SHUTDOWN_GRACE_SECONDS = 5.0
#: A gRPC deadline further away than this is "no deadline" (gRPC reports ~2**63 s then).
NO_DEADLINE_SECONDS = 10 * 365 * 86400.0

# gRPC status -> HTTP status, as TF Serving's REST server maps them (http_server.cc,
# ToHTTPStatusCode).
HTTP_STATUS = {
    grpc.StatusCode.CANCELLED: 499,  # "client closed request"
    grpc.StatusCode.UNKNOWN: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.GATEWAY_TIMEOUT,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: HTTPStatus.CONFLICT,
    grpc.StatusCode.PERMISSION_DENIED: HTTPStatus.FORBIDDEN,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.ABORTED: HTTPStatus.CONFLICT,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS: HTTPStatus.INTERNAL_SERVER_ERROR,
    grpc.StatusCode.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
}
_CODES = {code.value[0]: code for code in grpc.StatusCode}
INVALID = grpc.StatusCode.INVALID_ARGUMENT

# The TensorProto field that holds the values of each dtype (the others must stay empty).
_VALUE_FIELDS = [
    f.name for f in tensor_pb2.TensorProto.DESCRIPTOR.fields if f.name.endswith("_val")
]
_FIELD_OF = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
    types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val",
}


class ServingError(Exception):
    """A request failed with a gRPC status code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def _dtype_name(enum: int) -> str:
    try:
        return tf.dtypes.as_dtype(enum).name
    except TypeError:
        return f"DataType({enum})"


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


#: ``--enable_serialization_as_tensor_content``: outputs as ``Tensor::AsProtoTensorContent``
#: (raw bytes) instead of TF Serving's default, ``Tensor::AsProtoField`` (predict_util.cc).
SERIALIZE_AS_TENSOR_CONTENT = False

#: The repeated field ``Tensor::AsProtoField`` fills, by dtype (tensor.cc).
_PROTO_FIELDS = {
    tf.float32: "float_val", tf.float64: "double_val", tf.int32: "int_val", tf.int16: "int_val",
    tf.int8: "int_val", tf.uint8: "int_val", tf.uint16: "int_val", tf.int64: "int64_val",
    tf.uint32: "uint32_val", tf.uint64: "uint64_val", tf.bool: "bool_val",
    tf.string: "string_val",
}  # fmt: skip


def as_proto_field(value) -> tensor_pb2.TensorProto:
    """``value`` as TF Serving answers it by default: ``Tensor::AsProtoField``, one typed value
    a time (a uint8 image costs 1-2 bytes a pixel channel in ``int_val``, not 1 as raw bytes)."""
    value = np.asarray(value)
    dtype = tf.as_dtype(value.dtype)
    if dtype not in _PROTO_FIELDS:
        return tf.make_tensor_proto(value)
    proto = tensor_pb2.TensorProto(
        dtype=dtype.as_datatype_enum, tensor_shape=tf.TensorShape(value.shape).as_proto()
    )
    getattr(proto, _PROTO_FIELDS[dtype]).extend(value.ravel().tolist())
    return proto


class Servable:
    """One version of one model: a pool of up to ``max_runs`` sessions, each running one
    request at a time (so that one request can be cancelled by closing its session)."""

    def __init__(self, name: str, version: int, path: str, max_runs: int = MAX_CONCURRENT_RUNS):
        self.name = name
        self.version = version
        self.path = path
        self.max_runs = max(1, max_runs)
        first = _Session(path)
        self.signatures = first.signatures
        self._cond = threading.Condition()
        self._idle = [first]
        self._open = {first}
        self._opening = 0
        self._closing = False

    def warm_up(self) -> int:
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.isfile(path):
            return 0
        count = 0
        for record in tf.compat.v1.io.tf_record_iterator(path):
            entry = prediction_log_pb2.PredictionLog.FromString(record)
            if entry.HasField("predict_log"):
                self.predict(entry.predict_log.request, Call("warm-up"))
                count += 1
        return count

    def predict(self, request, call: Call | None = None):
        """Run a PredictRequest as TF Serving's RunPredict does; returns a PredictResponse."""
        call = call or Call("predict")
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature_name not in self.signatures:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found.',
            )
        signature = self.signatures[signature_name]
        feeds = self._feeds(signature, request.inputs)
        aliases = list(request.output_filter) or list(signature.outputs)
        seen = set()
        for alias in request.output_filter:
            if alias not in signature.outputs:
                raise ServingError(
                    INVALID,
                    f"output tensor alias not found in signature: {alias} Outputs expected to "
                    f"be in the set {{{','.join(sorted(signature.outputs))}}}.",
                )
            if alias in seen:
                raise ServingError(INVALID, f"duplicate output tensor alias: {alias}")
            seen.add(alias)
        fetches = [signature.outputs[a].name for a in aliases]
        session = self._acquire(call)
        try:
            call.attach(session)
            options = tf.compat.v1.RunOptions(timeout_in_ms=call.run_timeout_ms())
            try:
                values = session.session.run(fetches, feed_dict=feeds, options=options)
            except (tf.errors.OpError, RuntimeError) as err:
                # RuntimeError: the session was closed just before the run started.
                if call.cancelled:
                    raise call.cancelled_error() from err
                if session.closed:
                    raise ServingError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"Servable {self.name} version {self.version} was unloaded during the run",
                    ) from err
                if isinstance(err, tf.errors.DeadlineExceededError):
                    lines = err.message.strip().splitlines() or ["Deadline exceeded"]
                    raise call.deadline_error(lines[-1]) from err
                if not isinstance(err, tf.errors.OpError):
                    raise
                code = _CODES.get(err.error_code, grpc.StatusCode.UNKNOWN)
                raise ServingError(code, err.message) from err
        finally:
            call.detach()
            self._release(session)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        response.model_spec.signature_name = signature_name
        encode = tf.make_tensor_proto if SERIALIZE_AS_TENSOR_CONTENT else as_proto_field
        for alias, value in zip(aliases, values, strict=True):
            response.outputs[alias].CopyFrom(encode(value))
        return response

    def _acquire(self, call: Call) -> _Session:
        """An idle session; a new one while fewer than ``max_runs`` are open; else wait."""
        with self._cond:
            while True:
                if self._closing:
                    raise ServingError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"Servable {self.name} version {self.version} is being unloaded",
                    )
                if call.deadline is not None and time.monotonic() >= call.deadline:
                    raise call.deadline_error(
                        f"Deadline exceeded while waiting for one of the {self.max_runs} "
                        "sessions (--max_concurrent_runs)"
                    )
                call.check()
                if self._idle:
                    return self._idle.pop()
                if len(self._open) + self._opening < self.max_runs:
                    self._opening += 1
                    break
                self._cond.wait(timeout=0.2)
        session = None
        try:
            session = _Session(self.path)
        except Exception as err:
            raise ServingError(
                grpc.StatusCode.INTERNAL, f"Could not open a session for {self.path}: {err}"
            ) from err
        finally:
            with self._cond:
                self._opening -= 1
                if session is not None:
                    self._open.add(session)
                opened = len(self._open)
                self._cond.notify_all()
        log.info("%s version %d: %d sessions open", self.name, self.version, opened)
        return session

    def _release(self, session: _Session) -> None:
        with self._cond:
            if session.closed or self._closing:
                self._open.discard(session)
                close = not session.closed
            else:
                self._idle.append(session)
                close = False
            self._cond.notify_all()
        if close:
            session.close()

    def _feeds(self, signature, inputs) -> dict:
        """TF Serving's VerifyRequestInputsSize + GetInputValues, plus the dtype and shape
        checks that its C++ Session::Run makes (the Python session would cast silently)."""
        request_keys, signature_keys = set(inputs), set(signature.inputs)
        if len(inputs) > len(signature.inputs) or (
            len(inputs) < len(signature.inputs) and not signature.defaults
        ):
            raise ServingError(
                INVALID,
                f"input size does not match signature: {len(inputs)}!={len(signature.inputs)} "
                f"len({{{','.join(sorted(request_keys))}}}) != "
                f"len({{{','.join(sorted(signature_keys))}}}). "
                f"Sent extra: {{{','.join(sorted(request_keys - signature_keys))}}}. "
                f"Missing but required: {{{','.join(sorted(signature_keys - request_keys))}}}.",
            )
        feeds = {}
        for index, (alias, info) in enumerate(sorted(signature.inputs.items())):
            if alias in inputs:
                proto = inputs[alias]
            elif alias in signature.defaults:
                proto = signature.defaults[alias]
            else:
                raise ServingError(
                    INVALID,
                    f"Signature input alias: {alias}(feed name: {info.name}) not found in "
                    f"request and no default value provided. Inputs expected to be in the "
                    f"request {{{','.join(sorted(request_keys))}}}, or default input alias set: "
                    f"{','.join(sorted(signature.defaults))}",
                )
            _check_tensor(alias, index, info, proto)  # before any value is materialised
            try:
                value = tf.make_ndarray(proto)
            except Exception as err:
                raise ServingError(INVALID, f"tensor parsing error: {alias}") from err
            feeds[info.name] = value
        unknown = request_keys - signature_keys
        if unknown:
            raise ServingError(
                INVALID,
                f"Inputs contains invalid name. Used request inputs: "
                f"{','.join(sorted(request_keys & signature_keys))}, request input: "
                f"{','.join(sorted(request_keys))}",
            )
        return feeds

    def metadata(self) -> get_model_metadata_pb2.SignatureDefMap:
        sigs = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signatures.items():
            sigs.signature_def[key].CopyFrom(value)
        return sigs

    def close(self, force: bool = False) -> None:
        """Unload: idle sessions close now, busy ones when their run ends (or now if force,
        which cancels those runs)."""
        with self._cond:
            self._closing = True
            idle, self._idle = self._idle, []
            self._open.difference_update(idle)
            busy = list(self._open) if force else []
            self._cond.notify_all()
        for session in idle + busy:
            session.close()


def _check_tensor(alias: str, index: int, info, proto) -> None:
    """Refuse a TensorProto whose dtype, declared shape, value count or integer values do not
    fit the signature input, reading only its header and value counts: ``tf.make_ndarray``
    would first expand a short value list to the declared shape (a shape of [500000000] with
    one value is 2 GB)."""
    if proto.dtype != info.dtype:
        raise ServingError(
            INVALID,
            f"Expects arg[{index}] to be {_dtype_name(info.dtype)} but "
            f"{_dtype_name(proto.dtype)} is provided (input '{alias}')",
        )
    dtype = tf.dtypes.as_dtype(info.dtype)
    expected = tf.TensorShape(info.tensor_shape)
    if proto.tensor_shape.unknown_rank:
        raise ServingError(INVALID, f"input '{alias}': a tensor needs a known shape")
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise ServingError(INVALID, f"input '{alias}': negative dimension in shape {dims}")
    if not expected.is_compatible_with(tf.TensorShape(dims)):
        raise ServingError(INVALID, f"input '{alias}' must have shape {expected}; got {dims}")
    count = math.prod(dims)
    field = _FIELD_OF.get(proto.dtype)
    stray = [f for f in _VALUE_FIELDS if f != field and len(getattr(proto, f))]
    if field is None or stray or (proto.tensor_content and dtype == tf.string):
        where = ", ".join(stray) or "tensor_content"
        raise ServingError(
            INVALID, f"input '{alias}' is {dtype.name} but carries values in {where}"
        )
    if proto.tensor_content:
        itemsize = np.dtype(dtype.as_numpy_dtype).itemsize
        if len(getattr(proto, field)) or len(proto.tensor_content) != count * itemsize:
            raise ServingError(
                INVALID,
                f"input '{alias}' declares shape {dims} ({count} {dtype.name} values, "
                f"{count * itemsize} bytes) but tensor_content has {len(proto.tensor_content)} "
                "bytes",
            )
        return
    values = getattr(proto, field)
    present = len(values) // (2 if dtype.is_complex else 1)
    # Fewer values than declared: TF fills with the last one (zeros if none); allowed only
    # where the signature bounds the shape, so that the filling stays small.
    if present > count or (present < count and not expected.is_fully_defined()):
        raise ServingError(
            INVALID,
            f"input '{alias}' declares shape {dims} ({count} values) but carries {present}",
        )
    if field == "int_val" and dtype != tf.int32 and values:
        low, high = dtype.min, dtype.max
        if min(values) < low or max(values) > high:
            raise ServingError(
                INVALID,
                f"input '{alias}' is {dtype.name}: values must be in [{low}, {high}]",
            )


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
        if re.fullmatch(r"\d{1,18}", n) and os.path.isdir(os.path.join(base, n))
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


def _spec_version(model_spec) -> int | None:
    return model_spec.version.value if model_spec.HasField("version") else None


def _limit(timeout_ms: int, flag: str) -> tuple[float | None, str]:
    if timeout_ms <= 0:
        return None, ""
    return timeout_ms / 1000, f"the server's limit ({flag}={timeout_ms})"


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager, no_deadline_timeout_ms: int = NO_DEADLINE_TIMEOUT_MS):
        self.manager = manager
        self.no_deadline_timeout_ms = no_deadline_timeout_ms

    def Predict(self, request, context):
        remaining = context.time_remaining()  # about 2**63 s when the client set no deadline
        if remaining is not None and remaining < NO_DEADLINE_SECONDS:
            call = Call("gRPC Predict", remaining, "the client's deadline")
        else:
            call = Call(
                "gRPC Predict",
                *_limit(self.no_deadline_timeout_ms, "--no_deadline_timeout_in_ms"),
            )
        client_deadline = call.limit == "the client's deadline" and call.deadline is not None

        def rpc_ended():
            # The RPC ended: after our answer (done), or before it because the client cancelled,
            # its connection dropped, its deadline passed or the server is stopping.
            if call.done:
                return
            if client_deadline and time.monotonic() >= call.deadline - 0.5:
                return  # RunOptions.timeout_in_ms stops the run; its session stays usable
            if self.manager.stopping:
                call.cancel("the server is shutting down", grpc.StatusCode.UNAVAILABLE)
            else:
                call.cancel("the client cancelled the RPC or went away")

        with self.manager.track(call):
            if not context.add_callback(rpc_ended):  # the RPC has already ended
                rpc_ended()
            try:
                servable = self.manager.get(
                    request.model_spec.name, _spec_version(request.model_spec)
                )
                return servable.predict(request, call)
            except ServingError as err:
                context.abort(err.code, err.message)

    def GetModelMetadata(self, request, context):
        try:
            servable = self.manager.get(request.model_spec.name, _spec_version(request.model_spec))
        except ServingError as err:
            context.abort(err.code, err.message)
        if list(request.metadata_field) != ["signature_def"]:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Metadata field signature_def is the only one supported",
            )
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        packed = any_pb2.Any()
        packed.Pack(servable.metadata())
        response.metadata["signature_def"].CopyFrom(packed)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    def GetModelStatus(self, request, context):
        try:
            items = self.manager.model_status(
                request.model_spec.name, _spec_version(request.model_spec)
            )
        except ServingError as err:
            context.abort(err.code, err.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, (state, message, code) in items:
            entry = response.model_version_status.add(version=version, state=state)
            entry.status.error_code = code
            entry.status.error_message = message
        return response


class RestServer(ThreadingHTTPServer):
    """The REST API: one thread per connection (HTTP/1.1 keep-alive)."""

    daemon_threads = True

    def __init__(
        self,
        address,
        manager: ModelManager,
        timeout_ms: int = 30000,
        no_deadline_timeout_ms: int = NO_DEADLINE_TIMEOUT_MS,
        max_body_bytes: int = REST_MAX_BODY_BYTES,
    ):
        self.manager = manager
        if timeout_ms > 0:
            self.run_limit = _limit(timeout_ms, "--rest_api_timeout_in_ms")
        else:
            self.run_limit = _limit(no_deadline_timeout_ms, "--no_deadline_timeout_in_ms")
        self.max_body_bytes = max_body_bytes
        self.stopping = False
        super().__init__(address, RestHandler)


class RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # answer even a garbled request line with headers
    timeout = 120  # seconds a connection may stay silent (idle keep-alive, a stalled body)
    server: RestServer
    _path = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d{1,18}))?(/metadata|:predict)?$")

    def log_message(self, fmt, *args):
        log.debug("rest: " + fmt, *args)

    # -- responses: always JSON ------------------------------------------------------------

    def _send(self, status: int, body: dict) -> None:
        # TF Serving writes its JSON with rapidjson's PrettyWriter (4-space indents, one value a
        # line): a 1024 px uint8 "image" output is about 110 MiB of it.
        data = json.dumps(body, indent=4).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client has gone
            self.close_connection = True

    def _error(self, err: ServingError) -> None:
        status = err.http_status or HTTP_STATUS.get(err.code, HTTPStatus.INTERNAL_SERVER_ERROR)
        self._send(status, {"error": err.message})
        if self._body_unread:
            self._linger()

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, headers too long, unknown method), as
        JSON ``{"error": ...}`` like every other answer."""
        self.close_connection = True
        try:
            text = message or HTTPStatus(code).phrase
        except ValueError:
            text = message or str(code)
        self.log_error("code %d, message %s", code, text)
        data = json.dumps({"error": text}).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 205, 304):
                self.wfile.write(data)
        except OSError:
            pass

    def _linger(self) -> None:
        """Close after refusing a body unread: stop sending, discard what the client is still
        sending for a moment (closing with unread data would reset the connection before the
        client reads the answer)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            end, total = time.monotonic() + 1.0, 0
            while time.monotonic() < end and total < 2**20:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                total += len(chunk)
        except OSError:
            pass

    # -- the request body ------------------------------------------------------------------

    def _declared_length(self) -> int | None:
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return None
        text = {v.strip() for v in values}
        if len(text) != 1 or not re.fullmatch(r"[0-9]{1,19}", next(iter(text))):
            self.close_connection = True
            raise ServingError(INVALID, f"Malformed Content-Length header: {', '.join(values)!r}")
        length = int(next(iter(text)))
        if length > self.server.max_body_bytes:
            self.close_connection = True
            raise ServingError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"Request body of {length} bytes is over this server's limit of "
                f"{self.server.max_body_bytes} bytes (--rest_api_max_body_bytes)",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        return length

    def handle_expect_100(self):
        try:  # refuse an oversized or malformed body before the client sends it
            self._declared_length()
        except ServingError as err:
            self._body_unread = True
            self._error(err)
            return False
        return super().handle_expect_100()

    _body_unread = False

    def _read_body(self) -> bytes:
        """The whole body (Content-Length or chunked), after checking its declared size."""
        self._body_unread = True
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            self.close_connection = True  # until the whole body is read
            if self.headers.get("Content-Length") is not None:
                raise ServingError(INVALID, "Both Content-Length and Transfer-Encoding given")
            if encoding.strip().lower() != "chunked":
                raise ServingError(
                    grpc.StatusCode.UNIMPLEMENTED, f"Unsupported Transfer-Encoding: {encoding!r}"
                )
            body = self._read_chunked()
            self.close_connection = self.headers.get("Connection", "").lower() == "close"
        else:
            length = self._declared_length()
            if length is None:
                # An empty body ("The document is empty" for :predict, as TF Serving says);
                # a POST may have sent one anyway, unframed: close after answering.
                self.close_connection = self.close_connection or self.command == "POST"
                self._body_unread = self.command == "POST"
                return b""
            body = self.rfile.read(length)
            if len(body) < length:
                self.close_connection = True
                raise ServingError(
                    INVALID, f"Request body ended after {len(body)} of the {length} bytes declared"
                )
        self._body_unread = False
        return body

    def _read_chunked(self) -> bytes:
        limit, body = self.server.max_body_bytes, bytearray()
        while True:
            line = self.rfile.readline(1024)
            size = line.split(b";", 1)[0].strip()
            if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", size):
                raise ServingError(INVALID, "Malformed chunked request body")
            size = int(size, 16)
            if size == 0:
                break
            if len(body) + size > limit:
                raise ServingError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"Request body is over this server's limit of {limit} bytes "
                    "(--rest_api_max_body_bytes)",
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                )
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise ServingError(INVALID, "Malformed chunked request body")
            body += chunk
        for _ in range(100):  # trailer fields, up to the blank line
            if self.rfile.readline(65537) in (b"\r\n", b"\n", b""):
                break
        return bytes(body)

    # -- dispatch ----------------------------------------------------------------------------

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        try:
            body = self._read_body()
            if self.server.stopping:
                self.close_connection = True
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "The server is shutting down")
            match = self._path.match(self.path)
            action = match and match.group(3)
            if (
                not match
                or method not in ("GET", "POST")
                or (method == "POST") != (action == ":predict")
            ):
                raise ServingError(INVALID, f"Malformed request: {method} {self.path}")
            name, version = match.group(1), match.group(2)
            version = None if version is None else int(version)
            if method == "POST":
                self._predict(name, version, body)
            elif action == "/metadata":
                self._metadata(name, version)
            else:
                self._status(name, version)
        except ServingError as err:
            self._error(err)
        except TimeoutError:
            self.close_connection = True
            self._send(HTTPStatus.REQUEST_TIMEOUT, {"error": "Timed out reading the request"})
        except Exception as err:  # a bug here must not cost the client its answer
            log.exception("REST %s %s failed", method, self.path)
            self.close_connection = True
            message = f"Internal error: {type(err).__name__}: {err}"
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": message})

    def _predict(self, name: str, version: int | None, body: bytes) -> None:
        manager = self.server.manager
        call = Call("REST predict", *self.server.run_limit)
        with manager.track(call):  # until the answer is written (shutdown waits for it)
            try:
                document = _parse_json(body)
                servable = manager.get(name, version)
                request, columnar = _json_to_request(servable, name, version, document)
                with self._watch_client(call):
                    response = servable.predict(request, call)
                self._send(HTTPStatus.OK, _response_to_json(response, columnar))
            except ServingError as err:
                self._error(err)

    @contextlib.contextmanager
    def _watch_client(self, call: Call):
        """While the run goes on, watch the connection: if the client closes it, cancel."""
        done = threading.Event()
        sock = self.connection

        def watch():
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
            while not done.is_set():
                if not poller.poll(200):
                    continue
                try:
                    data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    call.cancel("the HTTP client closed the connection")
                return  # or it sent more (a pipelined request): it is still there

        threading.Thread(target=watch, name="rest-watch", daemon=True).start()
        try:
            yield
        finally:
            done.set()

    def _metadata(self, name: str, version: int | None) -> None:
        from google.protobuf import json_format

        servable = self.server.manager.get(name, version)
        # http_rest_api_util.cc ToJsonString: proto field names, every field printed.
        sigs = json.loads(
            json_format.MessageToJson(
                servable.metadata(),
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
        )
        body = {
            "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
            "metadata": {"signature_def": sigs},
        }
        self._send(HTTPStatus.OK, body)

    def _status(self, name: str, version: int | None) -> None:
        items = self.server.manager.model_status(name, version)
        body = {
            "model_version_status": [
                {
                    "version": str(v),
                    "state": State.Name(state),
                    "status": {
                        "error_code": error_codes_pb2.Code.Name(code),
                        "error_message": msg,
                    },
                }
                for v, (state, msg, code) in items
            ]
        }
        self._send(HTTPStatus.OK, body)


# -- JSON <-> tensors, with the rules and messages of TF Serving's util/json_tensor.cc ----------

_MAX_JSON_RANK = 32


def _parse_json(body: bytes):
    if not body:
        raise ServingError(INVALID, "JSON Parse error: The document is empty")
    try:
        return json.loads(body)
    except json.JSONDecodeError as err:
        raise ServingError(INVALID, f"JSON Parse error: {err.msg} at offset: {err.pos}") from err
    except UnicodeDecodeError as err:
        raise ServingError(
            INVALID, f"JSON Parse error: Invalid encoding in string. at offset: {err.start}"
        ) from err
    except RecursionError as err:
        raise ServingError(INVALID, "JSON Parse error: nested too deeply") from err
    except ValueError as err:  # e.g. an integer literal of more than 4300 digits
        raise ServingError(INVALID, f"JSON Parse error: {err}") from err


def _json_debug(value) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 256 else text[:256] + "..."


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _json_leaf(value, dtype: tf.DType, alias: str):
    def type_error(detail=""):
        return ServingError(
            INVALID,
            f"JSON Value: {_json_debug(value)} Type: {_json_type(value)} is not of expected "
            f"type: {dtype.name} (input '{alias}'{detail})",
        )

    if dtype == tf.string:
        if isinstance(value, str):
            try:
                return value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise type_error(": not valid UTF-8") from err
        if not isinstance(value, dict):
            raise type_error()
        if not _is_b64(value):
            raise ServingError(
                INVALID,
                f"JSON Value: {_json_debug(value)} not formatted correctly for base64 data "
                f"(input '{alias}')",
            )
        text = value["b64"]
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError) as err:
            raise ServingError(INVALID, f"Unable to base64 decode (input '{alias}')") from err
    if dtype == tf.bool:
        if not isinstance(value, bool):
            raise type_error()
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise type_error()
    if dtype.is_integer:
        if not isinstance(value, int):
            raise type_error()
        if not dtype.min <= value <= dtype.max:
            raise type_error(f": an integer in [{dtype.min}, {dtype.max}]")
        return value
    if dtype.is_floating:
        try:
            return float(value)
        except OverflowError as err:
            raise type_error() from err
    raise ServingError(
        grpc.StatusCode.UNIMPLEMENTED,
        f"Conversion of JSON Value: {_json_debug(value)} to type: {dtype.name} (input '{alias}')",
    )


def _json_tensor(value, dtype: tf.DType, alias: str) -> np.ndarray:
    """A JSON value (nested lists of leaves) as an array of ``dtype``, checked leaf by leaf."""
    shape, probe = [], value
    while isinstance(probe, list):
        if len(shape) == _MAX_JSON_RANK:
            raise ServingError(
                INVALID, f"input '{alias}': lists nested deeper than {_MAX_JSON_RANK} levels"
            )
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    leaves = []

    def walk(item, level):
        if isinstance(item, list):
            if level >= len(shape):
                raise ServingError(
                    INVALID,
                    f"Encountered list at unexpected level: {level} expected < {len(shape)} "
                    f"(input '{alias}')",
                )
            if len(item) != shape[level]:
                raise ServingError(
                    INVALID,
                    f"Encountered list at unexpected size: {len(item)} at level: {level} "
                    f"expected size: {shape[level]} (input '{alias}')",
                )
            for x in item:
                walk(x, level + 1)
        elif level != len(shape):
            raise ServingError(
                INVALID,
                f"JSON Value: {_json_debug(item)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {len(shape)} (input '{alias}')",
            )
        else:
            leaves.append(_json_leaf(item, dtype, alias))

    walk(value, 0)
    np_dtype = object if dtype == tf.string else dtype.as_numpy_dtype
    array = np.empty(len(leaves), dtype=np_dtype)
    array[:] = leaves
    return array.reshape(shape)


def _json_to_request(servable: Servable, name: str, version, body) -> tuple:
    if not isinstance(body, dict):
        raise ServingError(INVALID, f"JSON Value: {_json_debug(body)} Is not object")
    signature_name = body.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise ServingError(
            INVALID,
            f"JSON Value: {_json_debug(body)} not formatted correctly. 'signature_name' key "
            "must be a string value.",
        )
    signature_name = signature_name or DEFAULT_SIGNATURE
    if signature_name not in servable.signatures:
        raise ServingError(
            INVALID, f'Serving signature name: "{signature_name}" not found in signature def'
        )
    signature = servable.signatures[signature_name]
    only = next(iter(signature.inputs)) if len(signature.inputs) == 1 else None
    if "inputs" in body and "instances" in body:
        raise ServingError(
            INVALID,
            f"JSON Value: {_json_debug(body)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist ",
        )
    names = sorted(signature.inputs)  # every input: REST takes none from the defaults
    if "inputs" in body:
        value = body["inputs"]
        if isinstance(value, dict) and not _is_b64(value):
            # json_tensor.cc FillTensorMapFromInputsMap: looks up each of the signature's
            # inputs; other keys are ignored.
            for alias in names:
                if alias not in value:
                    raise ServingError(INVALID, f"Missing named input: {alias} in 'inputs' object.")
            inputs = {alias: value[alias] for alias in names}
        elif only is None:
            raise ServingError(
                INVALID,
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map",
            )
        else:
            inputs = {only: value}
    elif "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list):
            raise ServingError(
                INVALID,
                f"JSON Value: {_json_debug(body)} Expecting 'instances' to be an list/array",
            )
        if not rows:
            raise ServingError(
                INVALID, f"JSON Value: {_json_debug(body)} No values in 'instances' array"
            )
        objects = [isinstance(r, dict) and not _is_b64(r) for r in rows]
        if objects[0]:
            # json_tensor.cc FillTensorMapFromInstancesList: every object has exactly the
            # signature's inputs.
            for i, row in enumerate(rows):
                if not objects[i]:
                    raise ServingError(
                        INVALID, f"Expecting object but got list at item {i} of input list"
                    )
                for key in row:
                    if key not in signature.inputs:
                        raise ServingError(
                            INVALID,
                            f"Failed to process element: {i} key: {key} of 'instances' list. "
                            f"Error: INVALID_ARGUMENT: JSON object: does not have named input: "
                            f"{key}",
                        )
                if sorted(row) != names:
                    raise ServingError(
                        INVALID,
                        f"Failed to process element: {i} of 'instances' list. JSON object: "
                        f"{_json_debug(row)} keys must be equal to: {','.join(names)}",
                    )
            inputs = {k: [row[k] for row in rows] for k in names}
        elif any(objects):
            i = objects.index(True)
            raise ServingError(
                INVALID, f"Expecting value/list but got object at item {i} of input list"
            )
        elif only is None:
            raise ServingError(
                INVALID,
                "instances is a plain list, but expecting list of objects as multiple input "
                "tensors required as per tensorinfo_map",
            )
        else:
            inputs = {only: rows}
    else:
        raise ServingError(INVALID, "Missing 'inputs' or 'instances' key")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for alias, value in inputs.items():
        dtype = tf.as_dtype(signature.inputs[alias].dtype)
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(_json_tensor(value, dtype, alias)))
    return request, "inputs" in body


def _response_to_json(response, columnar: bool) -> dict:
    outputs = {}
    for alias, proto in response.outputs.items():
        value = tf.make_ndarray(proto)
        if proto.dtype == tf.string.as_datatype_enum:
            encode = (
                (lambda b: {"b64": base64.b64encode(b).decode()})
                if alias.endswith("_bytes")
                else (lambda b: b.decode("utf-8", "replace"))
            )
            value = (
                np.vectorize(encode, otypes=[object])(value) if value.ndim else encode(value.item())
            )
            outputs[alias] = value.tolist() if isinstance(value, np.ndarray) else value
        else:
            outputs[alias] = value.tolist()
    if columnar:
        return {"outputs": outputs if len(outputs) > 1 else next(iter(outputs.values()))}
    rows = max((len(v) if isinstance(v, list) else 1 for v in outputs.values()), default=0)
    return {
        "predictions": [
            {k: v[i] if isinstance(v, list) else v for k, v in outputs.items()} for i in range(rows)
        ]
    }


def parse_flags(argv=None) -> argparse.Namespace:
    def boolean(v: str) -> bool:
        if v.lower() not in ("true", "false", "1", "0"):
            raise argparse.ArgumentTypeError(f"expected true or false, got {v!r}")
        return v.lower() in ("true", "1")

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500)")
    p.add_argument("--rest_api_port", type=int, default=0, help="REST port; 0 disables REST")
    p.add_argument(
        "--rest_api_timeout_in_ms",
        type=int,
        default=30000,
        help="run timeout of REST requests (default 30000; 0: --no_deadline_timeout_in_ms)",
    )
    p.add_argument("--model_name", default="default")
    p.add_argument("--model_base_path", default="")
    p.add_argument("--model_config_file", default="")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0)
    p.add_argument("--enable_batching", type=boolean, nargs="?", const=True, default=False)
    p.add_argument(
        "--xla_cpu_compilation_enabled",
        type=boolean,
        nargs="?",
        const=True,
        default=False,
        help="accepted for compatibility; XLA stays off",
    )
    p.add_argument("--grpc_max_threads", type=int, default=16)
    p.add_argument("--max_num_load_retries", type=int, default=5)
    p.add_argument("--load_retry_interval_micros", type=int, default=60 * 10**6)
    p.add_argument(
        "--enable_serialization_as_tensor_content",
        type=boolean,
        nargs="?",
        const=True,
        default=False,
        help="gRPC outputs as raw tensor_content (default: typed fields, as TF Serving)",
    )
    # The stand-in's own flags (tensorflow_model_server has none of these):
    p.add_argument(
        "--max_concurrent_runs",
        type=int,
        default=MAX_CONCURRENT_RUNS,
        help="requests run at once per model version, each in its own TF session; more wait "
        f"(default {MAX_CONCURRENT_RUNS})",
    )
    p.add_argument(
        "--no_deadline_timeout_in_ms",
        type=int,
        default=NO_DEADLINE_TIMEOUT_MS,
        help="run timeout of gRPC requests sent without a deadline "
        f"(default {NO_DEADLINE_TIMEOUT_MS}, 1 h; 0: none, as TF Serving)",
    )
    p.add_argument(
        "--rest_api_max_body_bytes",
        type=int,
        default=REST_MAX_BODY_BYTES,
        help=f"larger REST bodies are refused unread with 413 (default {REST_MAX_BODY_BYTES})",
    )
    p.add_argument(
        "--shutdown_grace_seconds",
        type=float,
        default=SHUTDOWN_GRACE_SECONDS,
        help="on SIGTERM, time requests in flight get before their runs are cancelled "
        f"(default {SHUTDOWN_GRACE_SECONDS:g})",
    )
    args = p.parse_args(argv)
    if bool(args.model_base_path) == bool(args.model_config_file):
        p.error("give exactly one of --model_base_path or --model_config_file")
    if args.enable_batching:
        p.error("--enable_batching: batching is not supported (tfstyle's inputs are scalars)")
    if args.max_concurrent_runs < 1:
        p.error("--max_concurrent_runs must be at least 1")
    if args.rest_api_max_body_bytes < 1:
        p.error("--rest_api_max_body_bytes must be at least 1")
    for flag in ("rest_api_timeout_in_ms", "no_deadline_timeout_in_ms", "shutdown_grace_seconds"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and value >= 0):
            p.error(f"--{flag} must be a number >= 0")
    return args


def models_from_flags(args) -> dict[str, str]:
    if args.model_base_path:
        return {args.model_name: os.path.abspath(args.model_base_path)}
    config = model_server_config_pb2.ModelServerConfig()
    with open(args.model_config_file) as f:
        text_format.Parse(f.read(), config)
    base = os.path.dirname(os.path.abspath(args.model_config_file))
    return {
        m.name: m.base_path if os.path.isabs(m.base_path) else os.path.join(base, m.base_path)
        for m in config.model_config_list.config
    }


def shut_down(manager: ModelManager, grpc_server, http: RestServer | None, grace: float) -> None:
    """Stop accepting, give requests in flight ``grace`` seconds, then cancel their runs."""
    start = time.monotonic()
    log.info(
        "stopping: no new requests; %d in flight get %g s to finish", manager.in_flight(), grace
    )
    manager.stop()
    grpc_stopped = grpc_server.stop(grace)  # refuses new RPCs now, cancels the rest after grace
    if http is not None:
        http.stopping = True
        http.shutdown()
        http.server_close()
    while manager.in_flight() and time.monotonic() - start < grace:
        time.sleep(0.05)
    if manager.in_flight():
        log.info("grace period over: cancelling %d runs", manager.in_flight())
        manager.cancel_all("the server is shutting down")
        end = time.monotonic() + 2.0
        while manager.in_flight() and time.monotonic() < end:
            time.sleep(0.05)
    grpc_stopped.wait(timeout=0.5)
    if manager.in_flight():
        log.warning("%d requests still running; exiting without them", manager.in_flight())
    manager.close_all()
    log.info("stopped after %.1f s", time.monotonic() - start)


def serve(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_flags(argv)
    global SERIALIZE_AS_TENSOR_CONTENT
    SERIALIZE_AS_TENSOR_CONTENT = args.enable_serialization_as_tensor_content
    stopped = threading.Event()

    def stop(signum, frame):
        log.info("signal %d: shutting down", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    manager = ModelManager(
        models_from_flags(args),
        args.file_system_poll_wait_seconds,
        args.max_concurrent_runs,
        args.max_num_load_retries,
        args.load_retry_interval_micros / 1e6,
    )
    failed = manager.poll()
    if stopped.is_set():
        return 0
    if failed:  # as tensorflow_model_server: a model that fails its first load stops the start
        print(f"Failed to start server. Error: {failed[0]}", flush=True)
        return 255
    manager.start_polling()

    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
    ]
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=args.grpc_max_threads), options=options
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, args.no_deadline_timeout_in_ms), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    server.add_insecure_port(f"0.0.0.0:{args.port}")
    server.start()
    log.info("Running gRPC ModelServer at 0.0.0.0:%d ...", args.port)

    http = None
    if args.rest_api_port:
        http = RestServer(
            ("0.0.0.0", args.rest_api_port),
            manager,
            args.rest_api_timeout_in_ms,
            args.no_deadline_timeout_in_ms,
            args.rest_api_max_body_bytes,
        )
        threading.Thread(target=http.serve_forever, name="rest", daemon=True).start()
        log.info("Exporting HTTP/REST API at:localhost:%d ...", args.rest_api_port)

    stopped.wait()
    shut_down(manager, server, http, args.shutdown_grace_seconds)
    return 0


if __name__ == "__main__":
    code = serve()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Exit now: do not wait at interpreter exit for worker threads (gRPC's pool, REST
    # connections) that are still unwinding a cancelled run.
    os._exit(code)
