"""A loaded version of one model (``Servable``): its pool of TF sessions, its warm-up, and
``predict``, which checks a PredictRequest and runs it as TF Serving's ``RunPredict`` does."""

from __future__ import annotations

import logging
import os
import threading
import time

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_log_pb2

if __package__:  # imported as a package (e.g. tests.standin.model_server)
    from .calls import _CODES, DEFAULT_SIGNATURE, INVALID, Call, ServingError, _Session
    from .tensor_protos import _check_tensor, as_proto_field
else:  # run as a script: its directory, tests/standin, is on sys.path
    from calls import _CODES, DEFAULT_SIGNATURE, INVALID, Call, ServingError, _Session
    from tensor_protos import _check_tensor, as_proto_field

log = logging.getLogger("model_server")
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")

# Default of one of the stand-in's own flags (tensorflow_model_server has none of these).
MAX_CONCURRENT_RUNS = 2

#: ``--enable_serialization_as_tensor_content``: outputs as ``Tensor::AsProtoTensorContent``
#: (raw bytes) instead of TF Serving's default, ``Tensor::AsProtoField`` (predict_util.cc).
SERIALIZE_AS_TENSOR_CONTENT = False


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
