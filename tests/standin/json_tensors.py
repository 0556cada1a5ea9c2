"""REST bodies as PredictRequests and PredictResponses as JSON, with the rules and messages of
TF Serving's ``util/json_tensor.cc``."""

from __future__ import annotations

import base64
import binascii
import json
from http import HTTPStatus
from typing import TYPE_CHECKING

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

if __package__:  # imported as a package (e.g. tests.standin.model_server)
    from .calls import DEFAULT_SIGNATURE, INVALID, ServingError
else:  # run as a script: its directory, tests/standin, is on sys.path
    from calls import DEFAULT_SIGNATURE, INVALID, ServingError

if TYPE_CHECKING:
    from .servables import Servable

_MAX_JSON_RANK = 32
#: Most values a REST body may hold (numbers, strings, lists, objects). Python keeps each as an
#: object of 24-60 bytes where the JSON text has 2, so a body of numbers took 20-27 times its
#: size in memory; counted from the text first (an upper bound: every value but the first follows
#: a ``,``, ``:``, ``[`` or ``{``), a body over the limit costs nothing. This server's inputs are
#: encoded images (base64 strings, which have none of those characters) and scalars.
MAX_JSON_VALUES = 2**20


def _parse_json(body: bytes):
    if not body:
        raise ServingError(INVALID, "JSON Parse error: The document is empty")
    values = 1 + sum(body.count(c) for c in (b",", b":", b"[", b"{"))
    if values > MAX_JSON_VALUES:
        raise ServingError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"JSON body of up to {values} values (numbers, strings, lists, objects: counted from "
            f"its commas, colons and brackets); this server takes at most {MAX_JSON_VALUES}",
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        )
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
