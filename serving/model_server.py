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
INVALID_ARGUMENT; signature default inputs are honoured). Like TF Serving's default version
policy, only the latest version is served; the base path is polled for new versions every
``--file_system_poll_wait_seconds``. Warm-up requests in ``assets.extra/`` are replayed on load.
The client's deadline (gRPC) or ``--rest_api_timeout_in_ms`` (REST) bounds each run.

Run it with ``tensorflow_model_server``'s flags::

    python serving/model_server.py --port=8500 --rest_api_port=8501 \\
        --model_name=tfstyle --model_base_path=$PWD/saved_models/tfstyle

SIGTERM or Ctrl-C stops it cleanly. No batching, no XLA (TF Serving's defaults too).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import logging
import os
import re
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from google.protobuf import any_pb2, text_format  # noqa: E402
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

# gRPC status -> HTTP status, as TF Serving's REST handler maps them.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: HTTPStatus.BAD_REQUEST,
    grpc.StatusCode.NOT_FOUND: HTTPStatus.NOT_FOUND,
    grpc.StatusCode.DEADLINE_EXCEEDED: HTTPStatus.REQUEST_TIMEOUT,
    grpc.StatusCode.UNIMPLEMENTED: HTTPStatus.NOT_IMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE: HTTPStatus.SERVICE_UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: HTTPStatus.TOO_MANY_REQUESTS,
}
_CODES = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request failed with a gRPC status code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Servable:
    """One version of one model, loaded into its own graph and session."""

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)
        self.signatures = dict(meta.signature_def)
        self.path = path

    def warm_up(self) -> int:
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.isfile(path):
            return 0
        count = 0
        for record in tf.compat.v1.io.tf_record_iterator(path):
            entry = prediction_log_pb2.PredictionLog.FromString(record)
            if entry.HasField("predict_log"):
                self.predict(entry.predict_log.request)
                count += 1
        return count

    def predict(self, request, timeout_ms: int | None = None):
        """Run a PredictRequest as TF Serving's RunPredict does; returns a PredictResponse."""
        signature_name = request.model_spec.signature_name or "serving_default"
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
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"output tensor alias not found in signature: {alias} Outputs expected to "
                    f"be in the set {{{','.join(sorted(signature.outputs))}}}.",
                )
            if alias in seen:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}"
                )
            seen.add(alias)
        fetches = [signature.outputs[a].name for a in aliases]
        options = tf.compat.v1.RunOptions(timeout_in_ms=timeout_ms or 0)
        try:
            values = self.session.run(fetches, feed_dict=feeds, options=options)
        except tf.errors.OpError as err:
            code = _CODES.get(err.error_code, grpc.StatusCode.UNKNOWN)
            raise ServingError(code, err.message) from err
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        response.model_spec.signature_name = signature_name
        for alias, value in zip(aliases, values, strict=True):
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
        return response

    def _feeds(self, signature, inputs) -> dict:
        """TF Serving's VerifyRequestInputsSize + GetInputValues, plus the dtype and shape
        checks that its C++ Session::Run makes (the Python session would cast silently)."""
        request_keys, signature_keys = set(inputs), set(signature.inputs)
        if len(inputs) > len(signature.inputs) or (
            len(inputs) < len(signature.inputs) and not signature.defaults
        ):
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
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
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Signature input alias: {alias}(feed name: {info.name}) not found in "
                    f"request and no default value provided. Inputs expected to be in the "
                    f"request {{{','.join(sorted(request_keys))}}}, or default input alias set: "
                    f"{','.join(sorted(signature.defaults))}",
                )
            try:
                value = tf.make_ndarray(proto)
            except Exception as err:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}"
                ) from err
            if proto.dtype != info.dtype:
                expected = tf.dtypes.as_dtype(info.dtype).name
                got = tf.dtypes.as_dtype(proto.dtype).name
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Expects arg[{index}] to be {expected} but {got} is provided",
                )
            shape = tf.TensorShape(info.tensor_shape)
            if not shape.is_compatible_with(value.shape):
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input '{alias}' must have shape {shape}; got {list(value.shape)}",
                )
            feeds[info.name] = value
        unknown = request_keys - signature_keys
        if unknown:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
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

    def close(self) -> None:
        self.session.close()


class ModelManager:
    """Loads the latest version of each model and polls for new ones (TF Serving's default
    'latest' version policy: one version served, older ones unloaded once the new one is up)."""

    def __init__(self, models: dict[str, str], poll_seconds: float):
        self.models = models  # name -> base path
        self.poll_seconds = poll_seconds
        self.lock = threading.Lock()
        self.serving: dict[str, Servable] = {}
        self.status: dict[str, dict[int, tuple[int, str]]] = {name: {} for name in models}
        self._stop = threading.Event()
        self._thread = None

    def poll(self) -> None:
        for name, base in self.models.items():
            versions = _versions(base)
            if not versions:
                continue
            latest = max(versions)
            current = self.serving.get(name)
            if current is not None and current.version == latest:
                continue
            if latest in self.status[name] and self.status[name][latest][0] == State.END:
                continue  # failed to load before: TF Serving does not retry either
            self.status[name][latest] = (State.LOADING, "")
            try:
                servable = Servable(name, latest, os.path.join(base, str(latest)))
                warmed = servable.warm_up()
            except Exception as err:  # report it in the status, keep serving the old version
                log.error("failed to load %s version %d: %s", name, latest, err)
                self.status[name][latest] = (State.END, str(err).splitlines()[0])
                continue
            with self.lock:
                old = self.serving.get(name)
                self.serving[name] = servable
                self.status[name][latest] = (State.AVAILABLE, "")
                if old is not None:
                    self.status[name][old.version] = (State.END, "")
            if old is not None:
                old.close()
            log.info("serving %s version %d (%d warm-up requests)", name, latest, warmed)

    def start_polling(self) -> None:
        def loop():
            while not self._stop.wait(self.poll_seconds):
                self.poll()

        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=loop, name="poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

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
    if not os.path.isdir(base):
        return []
    return [
        int(n)
        for n in os.listdir(base)
        if re.fullmatch(r"\d+", n) and os.path.isfile(os.path.join(base, n, "saved_model.pb"))
    ]


def _spec_version(model_spec) -> int | None:
    return model_spec.version.value if model_spec.HasField("version") else None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    def Predict(self, request, context):
        try:
            servable = self.manager.get(request.model_spec.name, _spec_version(request.model_spec))
            remaining = context.time_remaining()
            timeout_ms = None if remaining is None else max(1, int(remaining * 1000))
            return servable.predict(request, timeout_ms)
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
        for version, (state, message) in items:
            entry = response.model_version_status.add(version=version, state=state)
            entry.status.error_code = 0 if not message else 2
            entry.status.error_message = message
        return response


def _rest_handler(manager: ModelManager, timeout_ms: int):
    path_re = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata|:predict)?$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.debug("rest: " + fmt, *args)

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, err: ServingError) -> None:
            self._send(
                HTTP_STATUS.get(err.code, HTTPStatus.INTERNAL_SERVER_ERROR), {"error": err.message}
            )

        def _route(self, method: str):
            match = path_re.match(self.path)
            if not match:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {method} {self.path}"
                )
            name, version, action = match.groups()
            return name, None if version is None else int(version), action

        def do_GET(self):
            try:
                name, version, action = self._route("GET")
                if action == ":predict":
                    raise ServingError(
                        grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: GET {self.path}"
                    )
                if action == "/metadata":
                    servable = manager.get(name, version)
                    from google.protobuf import json_format

                    sigs = json.loads(json_format.MessageToJson(servable.metadata()))
                    body = {
                        "model_spec": {"name": name, "version": str(servable.version)},
                        "metadata": {"signature_def": sigs},
                    }
                    return self._send(HTTPStatus.OK, body)
                items = manager.model_status(name, version)
                body = {
                    "model_version_status": [
                        {
                            "version": str(v),
                            "state": State.Name(state),
                            "status": {
                                "error_code": "OK" if not msg else "UNKNOWN",
                                "error_message": msg,
                            },
                        }
                        for v, (state, msg) in items
                    ]
                }
                self._send(HTTPStatus.OK, body)
            except ServingError as err:
                self._error(err)

        def do_POST(self):
            try:
                name, version, action = self._route("POST")
                if action != ":predict":
                    raise ServingError(
                        grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: POST {self.path}"
                    )
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except json.JSONDecodeError as err:
                    raise ServingError(
                        grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {err}"
                    ) from err
                servable = manager.get(name, version)
                request, columnar = _json_to_request(servable, name, version, body)
                response = servable.predict(request, timeout_ms)
                self._send(HTTPStatus.OK, _response_to_json(response, columnar))
            except ServingError as err:
                self._error(err)

    return Handler


def _json_value(value, dtype: tf.DType, alias: str):
    def convert(v):
        if isinstance(v, dict):
            if set(v) != {"b64"} or dtype != tf.string:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"JSON object for '{alias}': only {{\"b64\": ...}} for "
                    "DT_STRING inputs is allowed",
                )
            return base64.b64decode(v["b64"])
        if isinstance(v, list):
            return [convert(x) for x in v]
        return v.encode() if isinstance(v, str) else v

    converted = convert(value)
    try:
        if dtype == tf.string:
            return np.array(converted, dtype=object)
        array = np.array(converted)
        if dtype.is_integer and not np.issubdtype(array.dtype, np.integer):
            raise ValueError("not an integer")
        if dtype == tf.bool and array.dtype != np.bool_:
            raise ValueError("not a boolean")
        if array.dtype.kind in "SUO":
            raise ValueError("not a number")
        return array.astype(dtype.as_numpy_dtype)
    except (ValueError, TypeError) as err:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"JSON value for '{alias}' is not a valid {dtype.name}: {err}",
        ) from err


def _json_to_request(servable: Servable, name: str, version, body) -> tuple:
    if not isinstance(body, dict):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "JSON body must be an object")
    signature_name = body.get("signature_name", "serving_default")
    if signature_name not in servable.signatures:
        raise ServingError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f'Serving signature key "{signature_name}" not found.',
        )
    signature = servable.signatures[signature_name]
    if ("inputs" in body) == ("instances" in body):
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Missing 'inputs' or 'instances' key (exactly one is needed)",
        )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    if "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, dict):  # a bare value feeds the only input
            if len(signature.inputs) != 1:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, "'inputs' must be an object naming each input"
                )
            inputs = {next(iter(signature.inputs)): inputs}
    else:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "'instances' must be a non-empty list"
            )
        if all(isinstance(r, dict) for r in rows):
            inputs = {k: [r.get(k) for r in rows] for k in rows[0]}
        elif len(signature.inputs) == 1:
            inputs = {next(iter(signature.inputs)): rows}
        else:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "'instances' must be objects naming each input"
            )
    for alias, value in inputs.items():
        info = signature.inputs.get(alias)
        dtype = tf.as_dtype(info.dtype) if info is not None else tf.string
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(_json_value(value, dtype, alias)))
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
    p.add_argument("--rest_api_timeout_in_ms", type=int, default=30000)
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
    args = p.parse_args(argv)
    if bool(args.model_base_path) == bool(args.model_config_file):
        p.error("give exactly one of --model_base_path or --model_config_file")
    if args.enable_batching:
        p.error("--enable_batching: batching is not supported (tfstyle's inputs are scalars)")
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


def serve(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_flags(argv)
    manager = ModelManager(models_from_flags(args), args.file_system_poll_wait_seconds)
    manager.poll()
    manager.start_polling()

    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
    ]
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(max_workers=args.grpc_max_threads), options=options
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    server.add_insecure_port(f"0.0.0.0:{args.port}")
    server.start()
    log.info("Running gRPC ModelServer at 0.0.0.0:%d ...", args.port)

    http = None
    if args.rest_api_port:
        http = ThreadingHTTPServer(
            ("0.0.0.0", args.rest_api_port), _rest_handler(manager, args.rest_api_timeout_in_ms)
        )
        http.daemon_threads = True
        threading.Thread(target=http.serve_forever, name="rest", daemon=True).start()
        log.info("Exporting HTTP/REST API at:localhost:%d ...", args.rest_api_port)

    stopped = threading.Event()

    def stop(signum, frame):
        log.info("signal %d: shutting down", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stopped.wait()
    manager.stop()
    if http is not None:
        http.shutdown()
    server.stop(grace=5).wait()
    return 0


if __name__ == "__main__":
    sys.exit(serve())
