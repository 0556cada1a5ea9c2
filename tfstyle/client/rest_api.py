"""Requests over TF Serving's REST API (``/v1/models/...``), with the standard library."""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import urllib.error
import urllib.request

from tfstyle import checks, interrupts
from tfstyle import signature as sig
from tfstyle.client import arguments
from tfstyle.client.arguments import RETRYABLE, ServingError, describe
from tfstyle.client.transport import Transport


def rest_path(model: str, version: int | None) -> str:
    return f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "")


#: Largest error answer read (TF Serving's are a line of JSON).
MAX_ERROR_BYTES = 2**20


def _bounded(answer, limit: int, url: str) -> bytes:
    """The body of ``answer``, refused past ``limit`` bytes (as gRPC refuses a message larger
    than its limit): a server that answers without end is not read without end."""
    data = answer.read(limit + 1)
    if len(data) > limit:
        raise ServingError(
            f"the answer from {url} is larger than {limit // 2**20 or limit} "
            f"{'MiB' if limit >= 2**20 else 'bytes'}: more than any answer of this model",
            "RESOURCE_EXHAUSTED",
        )
    return data


def rest_call(url: str, path: str, body: bytes | None, timeout: float) -> bytes:
    """The body of the answer to a REST request (POST ``body``, or GET when None) to
    ``url + path``; every failure is a one-line ``ServingError`` naming ``url``."""
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=body,
        headers={"Content-Type": "application/json"} if body is not None else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return _bounded(answer, arguments.MAX_MESSAGE_BYTES, url)
    except urllib.error.HTTPError as err:
        try:
            detail = json.loads(_bounded(err, MAX_ERROR_BYTES, url))["error"]
        except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
            detail = err.reason
        finally:
            err.close()  # its connection, perhaps not read to the end
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
            f"cannot get an answer from {url}: {describe(reason)}", "UNAVAILABLE"
        ) from None
    except (http.client.HTTPException, OSError) as err:  # not an HTTP server, connection cut
        hint = ""
        if isinstance(err, http.client.BadStatusLine):
            hint = "; is it the REST port (--rest_api_port, 8501 by default)?"
        raise ServingError(
            f"cannot get an HTTP answer from {url}: {describe(err)}{hint}", "UNAVAILABLE"
        ) from None


def rest_defaults(url: str, path: str, signature_name: str, timeout: float) -> dict:
    """Every input of ``signature_name`` that has a default, at that default (JSON values), from
    the REST API's ``GET <path>/metadata``; a ``ServingError`` if the model has no such signature
    or one of its inputs has no default but content, style and iterations."""
    data = rest_call(url, path + "/metadata", None, timeout)
    try:
        signatures = json.loads(data)["metadata"]["signature_def"]["signature_def"]
    except (ValueError, KeyError, TypeError) as err:
        raise ServingError(f"unexpected metadata from {url}: {describe(err)}") from None
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
            values[name] = json_tensor_value(defaults[name])
        except (ValueError, KeyError, TypeError, binascii.Error) as err:
            raise ServingError(
                f"unexpected default for {name!r} in the metadata from {url}: {describe(err)}"
            ) from None
    return values


#: TensorProto value fields (as the REST API prints them) by dtype, for scalar defaults.
_VALUE_FIELDS = {
    "DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_INT32": "int_val",
    "DT_INT64": "int64_val", "DT_BOOL": "bool_val", "DT_STRING": "string_val",
}  # fmt: skip
_CONTENT_DTYPES = {"DT_FLOAT": "<f4", "DT_DOUBLE": "<f8", "DT_INT32": "<i4", "DT_INT64": "<i8"}


def json_tensor_value(tensor: dict):
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


class Rest(Transport):
    """Requests over REST; each call has a connection of its own. TF Serving's REST API takes
    no input from a signature's defaults, so a ``stylize`` request sends every input."""

    def defaults(self, model: str, version: int | None, timeout: float,
                 signature_name: str = sig.STYLIZE_SIGNATURE) -> dict:  # fmt: skip
        error = None
        for url in self.targets:
            try:
                values = rest_defaults(url, rest_path(model, version), signature_name, timeout)
            except ServingError as err:
                error = err
                if err.code in RETRYABLE:
                    continue
                raise
            if sig.RESUME_BYTES in values:  # a string: sent as base64, like the images
                values[sig.RESUME_BYTES] = b""
            return values
        raise error

    def call(self, url: str, model: str, version, inputs: dict, timeout: float,
             signature_name: str = sig.STYLIZE_SIGNATURE) -> dict:  # fmt: skip
        body = sig.rest_body(signature_name, inputs)
        path = rest_path(model, version) + ":predict"
        answer = interrupts.run(rest_call, url, path, body, timeout)
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
            raise ServingError(f"unexpected answer from {url}: {describe(err)}") from None
