"""Client for the exported model under TensorFlow Serving: gRPC (``PredictionService``) and REST.

``stylize`` runs one optimisation as a series of bounded requests (parts of ``chunk`` steps,
each resuming from the image the last one returned), with a progress bar, Ctrl-C, and retries
on other servers; ``predict`` and ``predict_rest`` send the whole run as one request.
Model, signature and tensor names come from ``tfstyle.signature``. Each request has an explicit
deadline that grows with its steps and size.

Example:
    >>> from tfstyle import client
    >>> image, loss = client.stylize("content.jpg", "style.jpg", server="a:8500,b:8500",
    ...                              iterations=300)
    >>> image.save("out.png")
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import json
import math
import numbers
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import PIL.Image

from tfstyle import checks, images, interrupts, plan
from tfstyle import signature as sig

#: Seconds allowed for a request: a base plus this much per iteration at 512 px and below, growing
#: with the pixel count above: twice a served step on a 2-core AVX2 CPU (5.1 s at 512 px, 20 s at
#: 1024 px, benchmarks/served_memory.py), so that a server running two requests at once still
#: answers; raise ``timeout`` for slower servers.
DEADLINE_BASE_S = 60.0
DEADLINE_PER_ITERATION_S = 10.0
DEADLINE_SIZE = 512
#: Steps per request of ``stylize``. Each part restarts L-BFGS's history: measured at 256 px,
#: parts of 10 steps end 24 % higher in objective than one request, 30 steps 5 %, 60 steps 2 %,
#: in the same time (``benchmarks/chunking.py``). 30 keeps a 1024 px part within minutes.
DEFAULT_CHUNK = 30
#: Failures of a part that another attempt (on the next server) may not repeat: the server was
#: unreachable, busy, stopping or too slow. Others (a bad input) fail at once.
RETRYABLE = frozenset({
    "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED",
    "408", "429", "502", "503", "504",
})  # fmt: skip
#: Largest message the client sends or accepts (a PNG of the largest output fits easily).
MAX_MESSAGE_BYTES = 256 * 2**20


class ServingError(RuntimeError):
    """A request to the model server failed; the message is one line saying why."""

    def __init__(self, message: str, code: str = "UNKNOWN"):
        super().__init__(message)
        self.code = code


def deadline_for(iterations: int, size: int | None = None) -> float:
    """Default deadline in seconds for a request of ``iterations`` steps at ``size`` px (None:
    ``DEADLINE_SIZE``)."""
    area = max(1.0, ((size or DEADLINE_SIZE) / DEADLINE_SIZE) ** 2)
    return DEADLINE_BASE_S + DEADLINE_PER_ITERATION_S * iterations * area


def check_timeout(timeout) -> None:
    """Refuse a ``timeout`` that is not a finite number of seconds > 0 (None: the default)."""
    if timeout is None:
        return
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, numbers.Real)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValueError(
            f"timeout must be a finite number of seconds > 0, or None for the default; "
            f"got {timeout!r}"
        )


def _describe(err: BaseException | str) -> str:
    """One line for a transport error (``BadStatusLine``'s own text is the raw bytes)."""
    if isinstance(err, str):  # URLError's reason may be a plain message
        return " ".join(err.split())
    if isinstance(err, http.client.RemoteDisconnected):
        return "the server closed the connection without an HTTP answer"
    if isinstance(err, http.client.BadStatusLine):
        return "the answer is not HTTP/1.x (BadStatusLine)"
    if isinstance(err, http.client.IncompleteRead):
        return f"the answer was cut short ({len(err.partial)} bytes read, {err.expected} more due)"
    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, OSError) else f"{type(err).__name__}: {text}"


def encode_input(image: images.ImageLike, name: str) -> bytes:
    """Encoded image bytes to send: files and bytes as they are, anything else as PNG."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise FileNotFoundError(f"{name}: no such file: {os.fspath(image)!r}")
        with open(image, "rb") as f:
            return f.read()
    buf = io.BytesIO()
    images.to_pil(images.load_image(image, name)).save(buf, format="PNG")
    return buf.getvalue()


def _check_request(iterations: int, signature_name: str, options: dict) -> None:
    from tfstyle.options import BY_NAME, REQUEST_OPTIONS

    BY_NAME[sig.ITERATIONS].check(iterations)
    unknown = sorted(set(options) - set(REQUEST_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown request option(s) {', '.join(unknown)}; allowed: {', '.join(REQUEST_OPTIONS)}"
        )
    for name, value in options.items():
        if name == "init" and value not in BY_NAME["init"].choices:
            allowed = ", ".join(repr(c) for c in BY_NAME["init"].choices)
            raise ValueError(f"init must be one of {allowed} in a request; got {value!r}")
        BY_NAME[name].check(value)
    if options and signature_name != sig.STYLIZE_SIGNATURE:
        raise ValueError(
            f"options ({', '.join(options)}) need signature_name={sig.STYLIZE_SIGNATURE!r}; "
            f"the {signature_name!r} signature takes only content, style and iterations"
        )


def build_request(
    content: bytes,
    style: bytes,
    iterations: int,
    *,
    model: str = sig.MODEL_NAME,
    version: int | None = None,
    signature_name: str = sig.DEFAULT_SIGNATURE,
    **options,
):
    """A ``PredictRequest`` for the exported signatures (options only for ``stylize``)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    from tfstyle.options import REQUEST_OPTIONS

    _check_request(iterations, signature_name, options)
    check_version(version)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    request.inputs[sig.CONTENT].CopyFrom(tf.make_tensor_proto(content))
    request.inputs[sig.STYLE].CopyFrom(tf.make_tensor_proto(style))
    request.inputs[sig.ITERATIONS].CopyFrom(tf.make_tensor_proto(iterations, tf.int32))
    for name, value in options.items():
        dtype = tf.as_dtype(REQUEST_OPTIONS[name])
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype))
    return request


#: Model versions are int64 in TF Serving, and at least 1.
_MAX_VERSION = 2**63 - 1


def check_version(version) -> None:
    """Raise ``ValueError`` unless ``version`` is None or an integer in [1, 2^63 - 1]."""
    if version is None:
        return
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not (1 <= version <= _MAX_VERSION)
    ):
        raise ValueError(
            f"version must be an integer between 1 and {_MAX_VERSION}; got {version!r}"
        )


def check_server(server) -> None:
    """Raise ``ValueError`` unless ``server`` is ``host:port`` with a port in [1, 65535] (an IPv6
    host in brackets: ``[::1]:8500``)."""
    host, _, port = str(server).rpartition(":")
    bad_host = (
        not host or "/" in host or any(c.isspace() for c in host)
        or (":" in host and not (host.startswith("[") and host.endswith("]")))
    )  # fmt: skip
    if not isinstance(server, str) or bad_host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(
            f"server must be host:port with a port between 1 and 65535 (e.g. localhost:8500); "
            f"got {server!r}"
        )


def _channel(server: str):
    check_server(server)
    try:
        import grpc
    except ImportError as err:
        raise ImportError("the serving client needs: pip install 'tfstyle[serving]'") from err
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    return grpc.insecure_channel(server, options=options)


def _one_line(err, server: str, model: str, timeout: float, hint: str = "") -> ServingError:
    import grpc

    code = err.code()
    detail = checks.message_of(err.details() or "")
    if code == grpc.StatusCode.NOT_FOUND:
        message = f"model {model!r} not found on {server}: {detail}"
    elif code == grpc.StatusCode.INVALID_ARGUMENT:
        message = f"the server rejected the request: {detail}"
    elif code == grpc.StatusCode.FAILED_PRECONDITION:
        message = f"the server cannot run this request: {detail}"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"no answer from {server} within the {timeout:g} s deadline" + (
            hint
            or "; raise the timeout (--timeout) for this many iterations or this server's speed"
        )
    elif code == grpc.StatusCode.UNAVAILABLE:
        message = f"cannot reach a model server at {server}: {detail}"
    else:
        message = f"{code.name}: {detail}"
    return ServingError(message, code.name)


def predict(
    content: images.ImageLike,
    style: images.ImageLike,
    *,
    server: str = "localhost:8500",
    iterations: int,
    model: str = sig.MODEL_NAME,
    version: int | None = None,
    signature_name: str = sig.DEFAULT_SIGNATURE,
    timeout: float | None = None,
    retries: int = 2,
    **options,
) -> tuple[PIL.Image.Image, float]:
    """Stylise over gRPC; returns ``(image, loss)``.

    Args:
        content: content image (path, bytes, PIL image or array).
        style: style image (same kinds).
        server: str. ``host:port`` of the gRPC API. Defaults to ``"localhost:8500"``.
        iterations: int. Optimisation steps, run by the server.
        model: str. Model name on the server. Defaults to ``"tfstyle"``.
        version: int. Model version; None takes the server's latest. Defaults to None.
        signature_name: str. ``"serving_default"`` or ``"stylize"``. Defaults to
            ``"serving_default"``.
        timeout: float. Deadline in seconds, finite and > 0; None gives
            ``deadline_for(iterations)``.
        retries: int. Retries when the server is unavailable (nothing ran). Defaults to 2.
        **options: per-request options of the stylize signature (``options.REQUEST_OPTIONS``);
            those left out take the values the model was exported with.

    Raises:
        ServingError: the request failed (one-line message with the reason).
    """
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    check_timeout(timeout)
    request = build_request(
        encode_input(content, "content"),
        encode_input(style, "style"),
        iterations,
        model=model,
        version=version,
        signature_name=signature_name,
        **options,
    )
    timeout = deadline_for(iterations, options.get("size")) if timeout is None else timeout
    import grpc

    with _channel(server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for attempt in range(retries + 1):
            try:
                response = stub.Predict(request, timeout=timeout)
                break
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.UNAVAILABLE and attempt < retries:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise _one_line(err, server, model, timeout) from None
    try:
        return _decode_response(response.outputs)
    except (KeyError, ValueError, TypeError, OSError) as err:
        raise ServingError(f"unexpected answer from {server}: {_describe(err)}") from None


def _decode_response(outputs) -> tuple[PIL.Image.Image, float]:
    import tensorflow as tf

    png = tf.make_ndarray(outputs[sig.IMAGE_BYTES]).item()
    return _open_png(png), float(tf.make_ndarray(outputs[sig.LOSS]))


def _open_png(data: bytes) -> PIL.Image.Image:
    image = PIL.Image.open(io.BytesIO(data))
    image.load()
    return image


def predict_rest(
    content: images.ImageLike,
    style: images.ImageLike,
    *,
    url: str = "http://localhost:8501",
    iterations: int,
    model: str = sig.MODEL_NAME,
    version: int | None = None,
    signature_name: str = sig.DEFAULT_SIGNATURE,
    timeout: float | None = None,
    **options,
) -> tuple[PIL.Image.Image, float]:
    """Stylise over TF Serving's REST API; the same arguments as ``predict`` but ``url``
    (``http://host:port`` of the REST API).

    The server's own REST timeout (``--rest_api_timeout_in_ms``, 30 s by default) also applies.
    Every failure to get a well-formed answer is a one-line ``ServingError`` naming ``url``.
    """
    check_timeout(timeout)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must look like 'http://localhost:8501'; got {url!r}")
    _check_request(iterations, signature_name, options)
    check_version(version)
    inputs = {
        sig.CONTENT: {"b64": base64.b64encode(encode_input(content, "content")).decode()},
        sig.STYLE: {"b64": base64.b64encode(encode_input(style, "style")).decode()},
        sig.ITERATIONS: iterations,
        **options,
    }
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "")
    deadline = deadline_for(iterations, options.get("size")) if timeout is None else timeout
    if signature_name != sig.DEFAULT_SIGNATURE:
        # TF Serving's REST API takes no input from a signature's defaults ("Missing named
        # input"): send every input, the ones not given at the export's values.
        defaults = rest_defaults(url, path, signature_name, min(deadline, METADATA_TIMEOUT_S))
        inputs = {**defaults, **inputs}
    body = json.dumps({"signature_name": signature_name, "inputs": inputs}).encode()
    data = _rest_call(url, path + ":predict", body, deadline)
    try:
        outputs = json.loads(data)["outputs"]
        png = base64.b64decode(outputs[sig.IMAGE_BYTES]["b64"], validate=True)
        return _open_png(png), float(outputs[sig.LOSS])
    except (ValueError, KeyError, TypeError, OSError, binascii.Error) as err:
        raise ServingError(f"unexpected answer from {url}: {_describe(err)}") from None


#: Seconds allowed for a REST ``/metadata`` request (at most the whole call's timeout).
METADATA_TIMEOUT_S = 30.0


def rest_defaults(url: str, path: str, signature_name: str, timeout: float) -> dict:
    """Every input of ``signature_name`` that has a default, at that default (JSON values), from
    the REST API's ``GET <path>/metadata``; a ``ServingError`` if the model has no such signature
    or one of its inputs has no default but content, style and iterations."""
    data = _rest_call(url, path + "/metadata", None, timeout)
    try:
        signatures = json.loads(data)["metadata"]["signature_def"]["signature_def"]
    except (ValueError, KeyError, TypeError) as err:
        raise ServingError(f"unexpected metadata from {url}: {_describe(err)}") from None
    if signature_name not in signatures:
        raise ServingError(
            f"the model at {url}{path} has no signature {signature_name!r}; it has "
            f"{', '.join(sorted(n for n in signatures if not n.startswith('__')))}",
            "INVALID_ARGUMENT",
        )
    signature = signatures[signature_name]
    defaults = signature.get("defaults") or {}
    values = {}
    for name in signature.get("inputs") or {}:
        if name in (sig.CONTENT, sig.STYLE, sig.ITERATIONS):
            continue
        if name not in defaults:
            raise ServingError(
                f"the {signature_name!r} signature at {url} needs input {name!r}, which has no "
                "default; pass it as an option",
                "INVALID_ARGUMENT",
            )
        try:
            values[name] = _json_tensor_value(defaults[name])
        except (ValueError, KeyError, TypeError, binascii.Error) as err:
            raise ServingError(
                f"unexpected default for {name!r} in the metadata from {url}: {_describe(err)}"
            ) from None
    return values


#: TensorProto value fields (as the REST API prints them) by dtype, for scalar defaults.
_VALUE_FIELDS = {
    "DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT32": "int_val",
    "DT_INT64": "int64_val", "DT_BOOL": "bool_val", "DT_STRING": "string_val",
}  # fmt: skip
_CONTENT_DTYPES = {"DT_FLOAT": "<f4", "DT_DOUBLE": "<f8", "DT_INT32": "<i4", "DT_INT64": "<i8"}


def _json_tensor_value(tensor: dict):
    """The value of a scalar TensorProto printed as JSON (snake_case field names)."""
    dtype = tensor["dtype"]
    if dtype not in _VALUE_FIELDS:
        raise ValueError(f"dtype {dtype} is not supported")
    dims = (tensor.get("tensor_shape") or {}).get("dim") or []
    if dims:
        raise ValueError(f"a default of shape {[d.get('size') for d in dims]} is not supported")
    if tensor.get("tensor_content"):
        import numpy as np

        raw = base64.b64decode(tensor["tensor_content"], validate=True)
        return np.frombuffer(raw, _CONTENT_DTYPES[dtype])[0].item()
    value = tensor[_VALUE_FIELDS[dtype]][0]
    if dtype == "DT_STRING":
        return base64.b64decode(value, validate=True).decode()
    if dtype == "DT_INT64":
        return int(value)  # int64 values print as JSON strings
    return value


def _rest_call(url: str, path: str, body: bytes | None, timeout: float) -> bytes:
    """The body of the answer to a REST request (POST ``body``, or GET when None) to
    ``url + path``; every failure is a one-line ``ServingError`` naming ``url``."""
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=body,
        headers={"Content-Type": "application/json"} if body is not None else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.read()
    except urllib.error.HTTPError as err:
        try:
            detail = json.loads(err.read())["error"]
        except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
            detail = err.reason
        detail = checks.message_of(str(detail))
        raise ServingError(f"HTTP {err.code} from {url}: {detail}", str(err.code)) from None
    except (TimeoutError, urllib.error.URLError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, TimeoutError):
            raise ServingError(
                f"no answer from {url} within the {timeout:g} s timeout; raise the timeout "
                "(--timeout) for this many iterations or this server's speed",
                "DEADLINE_EXCEEDED",
            ) from None
        raise ServingError(
            f"cannot get an answer from {url}: {_describe(reason)}", "UNAVAILABLE"
        ) from None
    except (http.client.HTTPException, OSError) as err:  # not an HTTP server, connection cut
        hint = ""
        if isinstance(err, http.client.BadStatusLine):
            hint = "; is it the REST port (--rest_api_port, 8501 by default)?"
        raise ServingError(
            f"cannot get an HTTP answer from {url}: {_describe(err)}{hint}", "UNAVAILABLE"
        ) from None


def model_status(
    server: str = "localhost:8500",
    model: str = sig.MODEL_NAME,
    version: int | None = None,
    timeout: float | None = 10.0,
) -> list[dict]:
    """``ModelService.GetModelStatus``: a list of ``{"version", "state", "error"}`` dicts
    (``timeout`` in seconds, finite and > 0; None: 10 s)."""
    import grpc

    check_timeout(timeout)
    check_version(version)
    timeout = 10.0 if timeout is None else timeout
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    state_name = get_model_status_pb2.ModelVersionStatus.State.Name
    with _channel(server) as channel:
        try:
            response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
                request, timeout=timeout
            )
        except grpc.RpcError as err:
            raise _one_line(err, server, model, timeout, hint=" (is it up?)") from None
    return [
        {"version": s.version, "state": state_name(s.state), "error": s.status.error_message}
        for s in response.model_version_status
    ]


def servers_of(server) -> list[str]:
    """The servers of ``server``: ``"host:port"``, several joined by commas, or a list of them."""
    if not isinstance(server, (str, list, tuple)):
        raise ValueError(f"server must be host:port, several joined by commas, or a list; got "
                         f"{server!r}")  # fmt: skip
    items = server.split(",") if isinstance(server, str) else list(server)
    items = [s.strip() if isinstance(s, str) else s for s in items]
    if not items:
        raise ValueError("server must name at least one host:port")
    for item in items:
        check_server(item)
    return items


def urls_of(url) -> list[str]:
    """The REST URLs of ``url``: one, several joined by commas, or a list of them."""
    items = (
        url.split(",")
        if isinstance(url, str)
        else list(url)
        if isinstance(url, (list, tuple))
        else [url]
    )
    items = [u.strip() if isinstance(u, str) else u for u in items]
    for item in items or [""]:
        parts = urllib.parse.urlsplit(item) if isinstance(item, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must look like 'http://localhost:8501'; got {item!r}")
    return items


class RunFailed(ServingError):
    """A part of a ``stylize`` run failed on every attempt. ``image`` is the result after
    ``step`` of ``iterations`` (None before the first part ended)."""

    def __init__(self, message: str, code: str, image, step: int, iterations: int):
        super().__init__(message, code)
        self.image, self.step, self.iterations = image, step, iterations


def stylize(
    content: images.ImageLike,
    style: images.ImageLike,
    *,
    server="localhost:8500",
    url=None,
    iterations: int,
    chunk: int = DEFAULT_CHUNK,
    model: str = sig.MODEL_NAME,
    version: int | None = None,
    timeout: float | None = None,
    retries: int = 2,
    progress: bool = True,
    callback=None,
    **options,
) -> tuple[PIL.Image.Image, float]:
    """Stylise in bounded requests: parts of ``chunk`` steps of the ``stylize`` signature, each
    resuming from the image the one before returned; returns ``(image, loss)``.

    Each part is a request of at most ``chunk`` steps, so no request outlives its deadline,
    however long the run; a failed part is tried again on the next server. The optimiser's
    history restarts at each part (``DEFAULT_CHUNK`` says what that costs). A model exported
    before parts existed is sent the whole run as one request.

    Args:
        content: content image (path, bytes, PIL image or array).
        style: style image (same kinds).
        server: ``host:port`` of a gRPC API, several joined by commas (``"a:8500,b:8500"``),
            or a list. Defaults to ``"localhost:8500"``.
        url: REST API URL(s) (``http://host:8501``) instead of gRPC, in the same forms.
            Defaults to None.
        iterations: int. Optimisation steps of the whole run.
        chunk: int. Steps per request, >= 1. Defaults to ``DEFAULT_CHUNK`` (30).
        model: str. Model name on the server. Defaults to ``"tfstyle"``.
        version: int. Model version; None takes the server's latest. Defaults to None.
        timeout: float. Deadline in seconds of each request, finite and > 0; None gives
            ``deadline_for(chunk, size)``.
        retries: int. Further attempts at a part that failed for a reason another attempt may
            not meet (``RETRYABLE``), each on the next server. Defaults to 2.
        progress: bool. Show a progress bar over the whole run. Defaults to True.
        callback: ``callback(step, loss, image)`` after each part: the steps done, the
            objective and the result so far (a PIL image at the output's size). Defaults to
            None.
        **options: per-request options (``options.REQUEST_OPTIONS``); those left out take the
            values the model was exported with.

    Raises:
        ServingError: a bad request or model (one line, the reason).
        RunFailed: a part failed on every attempt; it carries the image so far.
        tfstyle.Interrupted: Ctrl-C; it carries the image after the last part that ended.
            The first Ctrl-C lets the part in flight finish (the server computes it anyway) and
            then stops; a second one stops at once, cancelling that request.
    """
    check_timeout(timeout)
    check_version(version)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an integer >= 1 (steps per request); got {chunk!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0; got {retries!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable(step, loss, image) or None; got {callback!r}")
    _check_request(iterations, sig.STYLIZE_SIGNATURE, options)
    transport = _Rest(urls_of(url)) if url is not None else _Grpc(servers_of(server))
    try:
        content_bytes = encode_input(content, "content")
        style_bytes = encode_input(style, "style")
        defaults = transport.defaults(model, version, min(timeout or math.inf, METADATA_TIMEOUT_S))
        if sig.START_STEP not in defaults:  # exported before parts existed: one request
            chunk = max(iterations, 1)
        size = options.get("size", defaults.get("size"))
        from tqdm.auto import tqdm

        step, resume, latest, loss = 0, b"", None, math.nan  # latest: a PIL image
        stopping = threading.Event()  # set by the first Ctrl-C during a part
        with tqdm(total=iterations, disable=not progress, unit="step") as bar:
            try:
                for _, stop in plan.requests(iterations, chunk):  # each starts at ``step``
                    if stopping.is_set():
                        break
                    part = {sig.START_STEP: step, sig.STOP_STEP: stop, sig.RESUME_BYTES: resume}
                    if sig.START_STEP not in defaults:
                        part = {}
                    inputs = {
                        sig.CONTENT: content_bytes, sig.STYLE: style_bytes,
                        sig.ITERATIONS: iterations, **defaults, **options, **part,
                    }  # fmt: skip
                    deadline = deadline_for(stop - step, size) if timeout is None else timeout

                    def notice(step=step, stop=stop):
                        stopping.set()
                        bar.write(
                            f"tfstyle: Ctrl-C: stopping when steps {step}-{stop} are done "
                            f"(their request is running); Ctrl-C again to stop now",
                            file=sys.stderr,
                        )

                    try:
                        latest, loss, resume = interrupts.run(
                            transport.part,
                            model, version, inputs, deadline, retries, bar.set_description,
                            stopping.is_set, notice=notice,
                        )  # fmt: skip
                    except ServingError as err:
                        if stopping.is_set():  # asked to stop: no further attempt was made
                            raise KeyboardInterrupt from None
                        raise RunFailed(
                            f"steps {step}-{stop} of {iterations} failed: {err}",
                            err.code, latest, step, iterations,
                        ) from None  # fmt: skip
                    bar.update(stop - step)
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                    step = stop
                    if callback is not None:
                        callback(step, loss, latest)
                    if step >= iterations:
                        return latest, loss
            except KeyboardInterrupt:
                pass
        raise interrupts.Interrupted(latest, step, iterations)
    finally:
        transport.close()


class _Transport:
    """Where ``stylize``'s parts go: ``targets`` (servers or URLs), tried in turn."""

    def __init__(self, targets: list[str]):
        self.targets = targets
        self.where = 0  # the target that took the last part

    def part(self, model, version, inputs: dict, timeout: float, retries: int, show,
             stopping=lambda: False):  # fmt: skip
        """``(image, loss, resume_bytes)`` of one part, tried on the next target after a failure
        another attempt may not meet (``RETRYABLE``), unless ``stopping()``; ``show(target)``
        before each attempt."""
        for attempt in range(retries + 1):
            target = self.targets[(self.where + attempt) % len(self.targets)]
            show(target)
            try:
                outputs = self.call(target, model, version, inputs, timeout)
                break
            except ServingError as err:
                self.forget(target)  # a new connection next time
                if err.code not in RETRYABLE or attempt == retries or stopping():
                    raise
                if len(self.targets) == 1:
                    time.sleep(0.5 * 2**attempt)
        self.where = (self.where + attempt) % len(self.targets)  # stay where it worked
        try:
            image, loss = _open_png(outputs[sig.IMAGE_BYTES]), float(outputs[sig.LOSS])
        except (KeyError, ValueError, TypeError, OSError) as err:
            raise ServingError(f"unexpected answer from {target}: {_describe(err)}") from None
        return image, loss, outputs.get(sig.RESUME_BYTES, b"")

    def forget(self, target: str) -> None:
        """Drop the connection to ``target``, if one is kept."""

    def close(self) -> None:
        for target in self.targets:
            self.forget(target)


class _Grpc(_Transport):
    """``stylize``'s requests over gRPC, one channel per server."""

    def __init__(self, servers: list[str]):
        super().__init__(servers)
        self.channels: dict = {}

    def forget(self, server: str) -> None:
        """Close the channel to ``server``: the next call opens a new connection (behind a
        load balancer, perhaps to another replica)."""
        channel = self.channels.pop(server, None)
        if channel is not None:  # closed aside: a close can wait on a call cut by Ctrl-C
            threading.Thread(target=channel.close, name="tfstyle-close", daemon=True).start()

    def stub(self, server: str, service: str):
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if server not in self.channels:
            self.channels[server] = _channel(server)
        module = {"predict": prediction_service_pb2_grpc, "model": model_service_pb2_grpc}
        stubs = {"predict": "PredictionServiceStub", "model": "ModelServiceStub"}
        return getattr(module[service], stubs[service])(self.channels[server])

    def defaults(self, model: str, version: int | None, timeout: float) -> dict:
        """The stylize signature's default inputs (from the first server that answers)."""
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        error = None
        for server in self.targets:
            try:
                answer = _wait(self.stub(server, "predict").GetModelMetadata.future(
                    request, timeout=timeout
                ))  # fmt: skip
            except grpc.RpcError as err:
                error = _one_line(err, server, model, timeout)
                if error.code in RETRYABLE:
                    continue
                raise error from None
            signatures = get_model_metadata_pb2.SignatureDefMap()
            answer.metadata["signature_def"].Unpack(signatures)
            if sig.STYLIZE_SIGNATURE not in signatures.signature_def:
                raise ServingError(
                    f"the model {model!r} on {server} has no {sig.STYLIZE_SIGNATURE!r} signature",
                    "INVALID_ARGUMENT",
                )
            found = signatures.signature_def[sig.STYLIZE_SIGNATURE].defaults
            return {k: tf.make_ndarray(v).item() for k, v in found.items()}
        raise error

    def call(self, server: str, model: str, version, inputs: dict, timeout: float) -> dict:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        from tfstyle.options import REQUEST_OPTIONS

        dtypes = {sig.ITERATIONS: "int32", sig.START_STEP: "int32", sig.STOP_STEP: "int32",
                  sig.RETURN_IMAGE: "bool", **REQUEST_OPTIONS}  # fmt: skip
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = sig.STYLIZE_SIGNATURE
        if version is not None:
            request.model_spec.version.value = version
        for name, value in inputs.items():
            dtype = tf.as_dtype(dtypes[name]) if name in dtypes else tf.string
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype))
        try:
            answer = _wait(self.stub(server, "predict").Predict.future(request, timeout=timeout))
        except grpc.RpcError as err:
            raise _one_line(err, server, model, timeout) from None
        try:
            return {k: tf.make_ndarray(v).item() for k, v in answer.outputs.items()
                    if k != sig.IMAGE}  # fmt: skip
        except (ValueError, TypeError) as err:
            raise ServingError(f"unexpected answer from {server}: {_describe(err)}") from None


def _wait(future):
    """The result of a gRPC call future. Waits in short sleeps, so that Ctrl-C lands here (never
    inside gRPC's own locks) and at once; the call is then cancelled."""
    try:
        while not future.done():
            time.sleep(0.05)
    except KeyboardInterrupt:
        future.cancel()
        raise
    return future.result()


class _Rest(_Transport):
    """``stylize``'s requests over REST (every input sent: TF Serving's REST API needs it);
    each call has a connection of its own."""

    def defaults(self, model: str, version: int | None, timeout: float) -> dict:
        error = None
        for url in self.targets:
            try:
                values = rest_defaults(
                    url, _rest_path(model, version), sig.STYLIZE_SIGNATURE, timeout
                )
            except ServingError as err:
                error = err
                if err.code in RETRYABLE:
                    continue
                raise
            if sig.RESUME_BYTES in values:  # a string: sent as base64, like the images
                values[sig.RESUME_BYTES] = b""
            return values
        raise error

    def call(self, url: str, model: str, version, inputs: dict, timeout: float) -> dict:
        body = {k: {"b64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v
                for k, v in inputs.items()}  # fmt: skip
        data = json.dumps({"signature_name": sig.STYLIZE_SIGNATURE, "inputs": body}).encode()
        path = _rest_path(model, version) + ":predict"
        answer = interrupts.run(_rest_call, url, path, data, timeout)
        try:
            outputs = json.loads(answer)["outputs"]
            values = {sig.IMAGE_BYTES: outputs[sig.IMAGE_BYTES], sig.LOSS: outputs[sig.LOSS]}
            if sig.RESUME_BYTES in outputs:
                values[sig.RESUME_BYTES] = outputs[sig.RESUME_BYTES]
            for name in (sig.IMAGE_BYTES, sig.RESUME_BYTES):
                if name in values:
                    values[name] = base64.b64decode(values[name]["b64"], validate=True)
            values[sig.LOSS] = float(values[sig.LOSS])
            return values
        except (ValueError, KeyError, TypeError, binascii.Error) as err:
            raise ServingError(f"unexpected answer from {url}: {_describe(err)}") from None


def _rest_path(model: str, version: int | None) -> str:
    return f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "")
