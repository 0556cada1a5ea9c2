"""The client's calls: ``predict`` and ``predict_rest`` (a whole run, one request) and
``stylize`` (a run in parts, each a request), all sent through a ``Transport``."""

from __future__ import annotations

import math
import sys
import threading
import urllib.parse

import PIL.Image

from tfstyle import images, interrupts, plan
from tfstyle import signature as sig
from tfstyle.client.arguments import (
    METADATA_TIMEOUT_S,
    REFUSED,
    RETRYABLE,
    ServingError,
    check_request,
    check_server,
    check_timeout,
    check_version,
    deadline_for,
    encode_input,
    encoded_masks,
    servers_of,
    urls_of,
)  # fmt: skip
from tfstyle.client.grpc_api import Grpc
from tfstyle.client.rest_api import Rest

#: Steps per request of ``stylize``. Each part restarts L-BFGS's history: measured at 256 px,
#: parts of 10 steps end 24 % higher in objective than one request, 30 steps 5 %, 60 steps 2 %,
#: in the same time (``benchmarks/chunking.py``). 30 keeps a 1024 px part within minutes.
DEFAULT_CHUNK = 30


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
    """The checked ``PredictRequest`` that ``predict`` sends (options only for ``stylize``)."""
    inputs = _whole_run(content, style, iterations, signature_name, version, options)
    return sig.predict_request(model, version, signature_name, inputs)


def _whole_run(content, style, iterations, signature_name, version, options: dict) -> dict:
    """The checked inputs of a request for the whole run (``predict``, ``predict_rest``)."""
    check_request(iterations, signature_name, options)
    check_version(version)
    return {
        sig.CONTENT: encode_input(content, "content"), sig.STYLE: encode_input(style, "style"),
        sig.ITERATIONS: iterations, **encoded_masks(options),
    }  # fmt: skip


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
            those left out take the values the model was exported with. Also the masks
            ``mask``, ``content_mask`` and ``style_mask`` (``signature.MASK_INPUTS``), each an
            image in any form ``content`` takes, or None for none.

    Raises:
        ServingError: the request failed (one-line message with the reason).
    """
    check_timeout(timeout)
    inputs = _whole_run(content, style, iterations, signature_name, version, options)
    timeout = deadline_for(iterations, options.get("size")) if timeout is None else timeout
    check_server(server)
    with Grpc([server]) as transport:  # only the inputs given (TF Serving >= 2.14 fills the rest)
        image, loss, _ = transport.send(
            model, version, signature_name, inputs, timeout, retries, retry_on={"UNAVAILABLE"}
        )
    return image, loss


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
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must look like 'http://localhost:8501'; got {url!r}")
    inputs = _whole_run(content, style, iterations, signature_name, version, options)
    deadline = deadline_for(iterations, options.get("size")) if timeout is None else timeout
    with Rest([url]) as transport:
        if signature_name != sig.DEFAULT_SIGNATURE:
            # TF Serving's REST API takes no input from a signature's defaults ("Missing named
            # input"): send every input, the ones not given at the export's values.
            metadata_timeout = min(deadline, METADATA_TIMEOUT_S)
            inputs = {**transport.defaults(model, version, metadata_timeout, signature_name),
                      **inputs}  # fmt: skip
        image, loss, _ = transport.send(model, version, signature_name, inputs, deadline, 0)
    return image, loss


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
            values the model was exported with. Also the masks ``mask``, ``content_mask`` and
            ``style_mask`` (``signature.MASK_INPUTS``), each an image or None.

    Raises:
        ServingError: a bad request or model (one line, the reason), the server's refusal of
            the first part included (``REFUSED``: more iterations than the model allows, say).
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
    check_request(iterations, sig.STYLIZE_SIGNATURE, options)
    transport = Rest(urls_of(url)) if url is not None else Grpc(servers_of(server))
    try:
        content_bytes = encode_input(content, "content")
        style_bytes = encode_input(style, "style")
        options = encoded_masks(options)
        defaults = transport.defaults(model, version, min(timeout or math.inf, METADATA_TIMEOUT_S))
        if sig.START_STEP not in defaults:  # exported before parts existed: one request
            chunk = max(iterations, 1)
        size = options.get("size", defaults.get("size"))
        from tqdm.auto import tqdm

        step, resume, latest, loss = 0, b"", None, math.nan  # latest: a PIL image
        stopping = threading.Event()  # set by the first Ctrl-C during a part
        terminated = False  # by SIGTERM (``interrupts.Terminated``), not Ctrl-C
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
                            transport.send,
                            model, version, sig.STYLIZE_SIGNATURE, inputs, deadline, retries,
                            RETRYABLE, bar.set_description, stopping.is_set, notice=notice,
                        )  # fmt: skip
                    except ServingError as err:
                        if stopping.is_set():  # asked to stop: no further attempt was made
                            raise KeyboardInterrupt from None
                        if step == 0 and err.code in REFUSED:  # the request, not a part
                            raise
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
            except KeyboardInterrupt as stop:
                terminated = isinstance(stop, interrupts.Terminated)
        raise interrupts.Interrupted(latest, step, iterations, terminated)
    finally:
        transport.close()


#: Deadline of a real-time request (one forward pass per image), unless given.
REALTIME_TIMEOUT_S = 60.0


def predict_realtime(
    contents,
    *,
    server: str | None = None,
    url: str | None = None,
    model: str = sig.REALTIME_MODEL_NAME,
    version: int | None = None,
    timeout: float | None = None,
    retries: int = 2,
) -> list[PIL.Image.Image]:
    """Stylise images with a real-time model (``tfstyle export --model``) in one request, over
    gRPC (``server``, the default ``localhost:8500``) or REST (``url``); their images, each at
    its own size (up to the export's ``max_size``).

    Args:
        contents: an image (path, bytes, PIL image or array) or a list of them: one batch.
        model: str. Model name on the server. Defaults to ``"tfstyle_realtime"``.
        timeout: float. Deadline in seconds; None: ``REALTIME_TIMEOUT_S``.

    Raises:
        ServingError: the request failed (one-line message with the reason).
    """
    from tfstyle.client.arguments import describe
    from tfstyle.client.transport import open_png

    many = isinstance(contents, (list, tuple))
    contents = list(contents) if many else [contents]
    if not contents:
        raise ValueError("contents: give at least one image")
    check_timeout(timeout)
    check_version(version)
    timeout = REALTIME_TIMEOUT_S if timeout is None else timeout
    encoded = [encode_input(c, f"content[{k}]" if many else "content")
               for k, c in enumerate(contents)]  # fmt: skip
    if url is not None:
        targets, transport, send = urls_of(url), Rest, _realtime_rest
    else:
        server = "localhost:8500" if server is None else server
        check_server(server)
        targets, transport, send = servers_of(server), Grpc, _realtime_grpc
    with transport(targets) as sender:
        for attempt in range(retries + 1):  # a server that is down: the next one
            target = targets[attempt % len(targets)]
            try:
                pngs = send(sender, target, model, version, encoded, timeout)
                break
            except ServingError as err:
                sender.forget(target)
                if err.code not in RETRYABLE or attempt == retries:
                    raise
    try:
        if len(pngs) != len(encoded):
            raise ValueError(f"{len(pngs)} images for {len(encoded)}")
        return [open_png(p) for p in pngs]
    except (ValueError, TypeError, OSError) as err:
        raise ServingError(f"unexpected answer from {target}: {describe(err)}") from None


def _realtime_grpc(transport, server, model, version, encoded, timeout) -> list[bytes]:
    import tensorflow as tf

    from tfstyle.client.grpc_api import grpc_module, one_line, wait

    grpc = grpc_module()

    request = sig.predict_request(model, version, sig.DEFAULT_SIGNATURE, {sig.IMAGES: encoded})
    try:
        answer = wait(transport.stub(server, "predict").Predict.future(request, timeout=timeout))
    except grpc.RpcError as err:
        raise one_line(err, server, model, timeout) from None
    return list(tf.make_ndarray(answer.outputs[sig.IMAGES_BYTES]).reshape(-1))


def _realtime_rest(transport, url, model, version, encoded, timeout) -> list[bytes]:
    import base64
    import json

    from tfstyle.client.rest_api import rest_call, rest_path

    images_b64 = [{"b64": base64.b64encode(e).decode()} for e in encoded]
    inputs = {sig.IMAGES: images_b64}
    body = json.dumps({"signature_name": sig.DEFAULT_SIGNATURE, "inputs": inputs}).encode()
    answer = interrupts.run(rest_call, url, rest_path(model, version) + ":predict", body, timeout)
    outputs = json.loads(answer)["outputs"]
    if isinstance(outputs, dict):  # several named outputs; one is answered as the list itself
        outputs = outputs[sig.IMAGES_BYTES]
    return [base64.b64decode(o["b64"], validate=True) for o in outputs]
