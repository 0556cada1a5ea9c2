"""The client's argument checks, deadlines and errors (no gRPC, no TensorFlow at import)."""

from __future__ import annotations

import http.client
import io
import math
import numbers
import os
import re
import urllib.parse

from tfstyle import files, images
from tfstyle import signature as sig

#: Seconds allowed for a request: a base plus this much per iteration at 512 px and below, growing
#: with the pixel count above: twice a served step on a 2-core AVX2 CPU (5.1 s at 512 px, 20 s at
#: 1024 px, benchmarks/served_memory.py), so that a server running two requests at once still
#: answers; raise ``timeout`` for slower servers.
DEADLINE_BASE_S = 60.0
DEADLINE_PER_ITERATION_S = 10.0
DEADLINE_SIZE = 512
#: A request's own work besides its steps, counted as steps at its size: the content and style
#: targets at its scale and the objective at its end (a 4096 px part of one step outlived a
#: deadline that counted its step alone, 700 s, on a 2-core CPU: 2026-12-07).
DEADLINE_PART_STEPS = 2
#: Failures of a part that another attempt (on the next server) may not repeat: the server was
#: unreachable, busy, stopping or too slow. Others (a bad input) fail at once.
RETRYABLE = frozenset({
    "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED",
    "408", "429", "502", "503", "504",
})  # fmt: skip
#: Failures that refuse the request itself (an option out of the model's range, such as more
#: iterations than its cap): said as they are when the first part fails so, not as a failed part.
REFUSED = frozenset({"INVALID_ARGUMENT", "FAILED_PRECONDITION", "400"})
#: Largest message the client sends or accepts (a PNG of the largest output fits easily).
MAX_MESSAGE_BYTES = 256 * 2**20
#: Seconds allowed for a metadata request (at most the whole call's timeout).
METADATA_TIMEOUT_S = 30.0


class ServingError(RuntimeError):
    """A request to the model server failed; the message is one line saying why."""

    def __init__(self, message: str, code: str = "UNKNOWN"):
        super().__init__(message)
        self.code = code


def deadline_for(iterations: int, size: int | None = None) -> float:
    """Default deadline in seconds for a request of ``iterations`` steps at ``size`` px (None:
    ``DEADLINE_SIZE``), its own work (``DEADLINE_PART_STEPS``) counted as steps."""
    area = max(1.0, ((size or DEADLINE_SIZE) / DEADLINE_SIZE) ** 2)
    return DEADLINE_BASE_S + DEADLINE_PER_ITERATION_S * (iterations + DEADLINE_PART_STEPS) * area


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


def check_version(version) -> None:
    """Raise ``ValueError`` unless ``version`` is None or an integer in [1, 2^63 - 1]."""
    if version is None:
        return
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not (1 <= version <= sig.MAX_VERSION)
    ):
        raise ValueError(
            f"version must be an integer between 1 and {sig.MAX_VERSION}; got {version!r}"
        )


def check_server(server) -> None:
    """Raise ``ValueError`` unless ``server`` is ``host:port`` with a port in [1, 65535] (an IPv6
    host in brackets: ``[::1]:8500``)."""
    host, _, port = str(server).rpartition(":")
    bad_host = (
        not host or "/" in host or any(c.isspace() for c in host)
        or (":" in host and not (host.startswith("[") and host.endswith("]")))
    )  # fmt: skip
    port_ok = re.fullmatch("[0-9]{1,5}", port) and 1 <= int(port) <= 65535  # never "²" or "٣"
    if not isinstance(server, str) or bad_host or not port_ok:
        raise ValueError(
            f"server must be host:port with a port between 1 and 65535 (e.g. localhost:8500); "
            f"got {server!r}"
        )


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
        try:
            port_ok = parts is not None and (parts.port is None or 1 <= parts.port <= 65535)
        except ValueError:  # "http://host:x"
            port_ok = False
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.netloc
            or not item.isascii()
            or not port_ok
        ):  # fmt: skip  (never "٨٥٠١" as a port)
            raise ValueError(f"url must look like 'http://localhost:8501'; got {item!r}")
    return items


#: The mask inputs of the ``stylize`` signature (``signature.MASK_INPUTS``): images, sent
#: encoded (``encoded_masks``).
MASKS = tuple(t.name for t in sig.MASK_INPUTS)


def check_request(iterations: int, signature_name: str, options: dict) -> None:
    """Refuse a bad ``iterations``, an unknown or bad per-request option, or options for a
    signature that takes none (the options table's rules, as the served graph checks them).
    ``options`` may hold the mask inputs (``MASKS``), each an image or None."""
    from tfstyle.options import BY_NAME, REQUEST_OPTIONS

    BY_NAME[sig.ITERATIONS].check(iterations)
    allowed = [*REQUEST_OPTIONS, *MASKS]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown request option(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    options = {n: v for n, v in options.items() if not (n in MASKS and v is None)}
    for name, value in options.items():
        if name in MASKS:
            continue  # an image: read and checked by encoded_masks, decoded by the server
        if name == "init" and value not in BY_NAME["init"].choices:
            allowed = ", ".join(repr(c) for c in BY_NAME["init"].choices)
            raise ValueError(f"init must be one of {allowed} in a request; got {value!r}")
        BY_NAME[name].check(value)
    if options and signature_name != sig.STYLIZE_SIGNATURE:
        raise ValueError(
            f"options ({', '.join(options)}) need signature_name={sig.STYLIZE_SIGNATURE!r}; "
            f"the {signature_name!r} signature takes only content, style and iterations"
        )


def encode_input(image: images.ImageLike, name: str, background: str = "white") -> bytes:
    """Encoded image bytes to send: PNG, JPEG, GIF and BMP files and bytes as they are (what the
    served model decodes), anything else read here (``images.load_image``: a file that is not
    an image fails here, named) and sent as PNG, its transparency over ``background``."""
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    elif isinstance(image, (str, os.PathLike)):
        # a regular file (never a FIFO or a device, which would block), bounded before it is read
        data = files.read_regular(image, name, images._MAX_ENCODED_BYTES)
    else:
        data = None
    if data is not None and data.startswith(images._MAGIC):
        return data
    pixels = images.load_image(image, name, background)  # a path is read again: named
    buf = io.BytesIO()
    images.to_pil(pixels).save(buf, format="PNG")
    return buf.getvalue()


def encoded_masks(options: dict) -> dict:
    """``options`` with each mask input (``MASKS``) encoded for the request (``encode_input``),
    and those that are None left out (the server's default: no mask)."""
    return {
        name: encode_input(value, name, background="black") if name in MASKS else value
        for name, value in options.items()
        if not (name in MASKS and value is None)
    }


def describe(err: BaseException | str) -> str:
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
