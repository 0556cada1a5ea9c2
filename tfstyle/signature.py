"""The served request, declared once: names, dtypes and defaults of every input and output of the
exported signatures, shared by the export, the serving client, the READMEs and the tests.

``stylize_inputs()`` is the contract: ``export`` builds the signatures' ``TensorSpec``s and
defaults from it, the client the dtypes of its gRPC and REST requests, and the input table in
serving/README.md is ``markdown_table()`` (``python -m tfstyle.signature`` prints it; a test
compares). Its rows are the required inputs, the options table's per-request rows
(``tfstyle.options``, scope ``REQUEST``), the masks, and the part inputs of a run in parts. No
TensorFlow at import.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

MODEL_NAME = "tfstyle"
MODEL_DIR = "saved_models/tfstyle"
#: A real-time model (``tfstyle export --model``): its name on the server, its base path, and
#: its ``serving_default``'s one input, a batch of encoded images, and one output, their PNGs
#: (named ``_bytes``: TF Serving's REST API answers such an output in base64).
REALTIME_MODEL_NAME = "tfstyle_realtime"
REALTIME_MODEL_DIR = "saved_models/tfstyle_realtime"
IMAGES = "images"
IMAGES_BYTES = "images_bytes"

#: Signature with the export's options baked in: inputs content, style, iterations.
DEFAULT_SIGNATURE = "serving_default"
#: Signature with every per-request option as an input (those not sent take the export's value).
STYLIZE_SIGNATURE = "stylize"

CONTENT = "content"
STYLE = "style"
ITERATIONS = "iterations"
RETURN_IMAGE = "return_image"
START_STEP = "start_step"
STOP_STEP = "stop_step"
MASK = "mask"
CONTENT_MASK = "content_mask"
STYLE_MASK = "style_mask"
# (Named "_bytes": TF Serving's REST API answers a string output as base64 only under such a name.)
RESUME_BYTES = "resume_bytes"

IMAGE_BYTES = "image_bytes"
IMAGE = "image"
LOSS = "loss"

#: Model versions are int64 in TF Serving, and at least 1.
MAX_VERSION = 2**63 - 1

#: What exported the model: TensorFlow, Keras and tfstyle versions and the export's options.
METADATA_FILE = "assets.extra/tfstyle_export.json"
#: File of warm-up requests TF Serving replays on load (inside the version directory).
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"

#: The default of a required input.
REQUIRED = "required"
#: The default of a per-request option: the value the model was exported with.
EXPORTED = "the export's value"


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One scalar input (or output) of the served signatures."""

    name: str
    dtype: str  # a tf.DType name
    help: str
    default: Any = REQUIRED  # REQUIRED, EXPORTED, or the value a request that omits it gets
    option: bool = False  # a per-request option (a row of tfstyle.options.OPTIONS)


REQUIRED_INPUTS = (
    Tensor(CONTENT, "string", "The content image: the bytes of one PNG, JPEG, GIF (first "
           "frame) or BMP file."),
    Tensor(STYLE, "string", "The style image, the same kinds."),
    # ITERATIONS: the options table's row (below).
)  # fmt: skip

#: Where the style goes (``tfstyle.masks``; the options ``masks``, ``content_mask`` and
#: ``style_masks`` of ``transfer`` for its one style). Each an encoded image or "" (none): a
#: request that sends none runs as a model without masks does, the same graph.
MASK_INPUTS = (
    Tensor(MASK, "string", "Where the style goes: an image with the content's aspect ratio (any "
           "resolution; white = the style, black = the content alone, grays in between); none: "
           "everywhere.", ""),
    Tensor(CONTENT_MASK, "string", "The content loss's weight per position (an image like "
           "`mask`, its gray levels relative weights); none: the same weight everywhere.", ""),
    Tensor(STYLE_MASK, "string", "The region of the style image its statistics are taken from "
           "(an image with the style's aspect ratio); none: the whole style image.", ""),
)  # fmt: skip

#: A run in parts, each a request: a part takes the steps [START_STEP, STOP_STEP) of the run's
#: ITERATIONS, from the RESUME_BYTES output of the part that stopped at START_STEP.
PART_INPUTS = (
    Tensor(RETURN_IMAGE, "bool", "Also fill the raw `image` output.", False),
    Tensor(START_STEP, "int32", "First step of the part of the run this request takes.", 0),
    Tensor(STOP_STEP, "int32", "Step the part stops before; -1 is the end (`iterations`). "
           "A part that stops short of the end returns in `image_bytes` the result so far at "
           "the output's size.", -1),
    Tensor(RESUME_BYTES, "string", "The `resume_bytes` output of the part that stopped at "
           "`start_step` (needed when `start_step` > 0), or any PNG/JPEG/GIF/BMP image to "
           "continue from.", ""),
)  # fmt: skip

OUTPUTS = (
    Tensor(IMAGE_BYTES, "string", "The result as PNG, longer side `size`, the content's aspect "
           "ratio: the payload."),
    Tensor(IMAGE, "uint8", "The same as (H, W, 3) pixels with `return_image`, else empty, shape "
           "(0, 0, 3): a 1024 px result as uint8 is 3 MiB of pixels, over 5 MiB as TF Serving "
           "encodes it (int_val) and 110 MiB of REST JSON."),
    Tensor(LOSS, "float32", "The objective at the returned image (before colour transfer)."),
    Tensor(RESUME_BYTES, "string", "`stylize` only: the image reached, at the scale reached "
           "(before colour transfer), bit for bit (float32 in a 16-bit PNG), to send as the next "
           "part's `resume_bytes`; \"\" when the request ends the run."),
)  # fmt: skip


@functools.cache
def stylize_inputs() -> tuple[Tensor, ...]:
    """Every input of the ``stylize`` signature, in order: content, style, iterations, the
    per-request options (default: the export's value), the masks, the part inputs.
    ``serving_default`` takes the first three."""
    from tfstyle import options  # imports TensorFlow

    required = tuple(Tensor(o.name, o.dtype, o.help) for o in options.OPTIONS
                     if o.scope == options.INPUT)  # fmt: skip
    request = tuple(Tensor(o.name, o.dtype, o.help, EXPORTED, option=True)
                    for o in options.OPTIONS if o.scope == options.REQUEST)  # fmt: skip
    return REQUIRED_INPUTS + required + request + MASK_INPUTS + PART_INPUTS


def inputs_by_name() -> dict[str, Tensor]:
    """``stylize_inputs()`` by name."""
    return {t.name: t for t in stylize_inputs()}


def dtype_of(name: str) -> str:
    """The dtype name of the input ``name`` (``KeyError`` for one the signatures do not have)."""
    return inputs_by_name()[name].dtype


def predict_request(model: str, version: int | None, signature_name: str, inputs: dict):
    """The gRPC ``PredictRequest`` sending ``inputs`` (``{name: value}``) as scalars of the
    contract's dtypes: the one builder (the client, the export's warm-up requests, the tests)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    dtypes = {t.name: t.dtype for t in stylize_inputs()}
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        dtype = tf.as_dtype(dtypes[name]) if name in dtypes else tf.string
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value, dtype))
    return request


def rest_body(signature_name: str, inputs: dict) -> bytes:
    """The REST ``:predict`` body sending ``inputs``: bytes as ``{"b64": ...}``, the rest as JSON
    values (TF Serving converts them to the signature's dtypes)."""
    import base64

    values = {k: {"b64": base64.b64encode(v).decode()} if isinstance(v, bytes) else v
              for k, v in inputs.items()}  # fmt: skip
    return json.dumps({"signature_name": signature_name, "inputs": values}).encode()


#: The DataType names TF Serving and ``saved_model_cli`` print.
DT_NAMES = {"string": "DT_STRING", "int32": "DT_INT32", "int64": "DT_INT64",
            "float32": "DT_FLOAT", "bool": "DT_BOOL", "uint8": "DT_UINT8"}  # fmt: skip


def markdown_table(rows: tuple[Tensor, ...] | None = None) -> str:
    """The table of ``rows`` (default: ``stylize_inputs()``) in serving/README.md."""
    outputs = rows is OUTPUTS
    lines = ["| name | dtype | meaning |", "|---|---|---|"] if outputs else [
        "| name | dtype | default | meaning |", "|---|---|---|---|"]  # fmt: skip
    for t in stylize_inputs() if rows is None else rows:
        default = t.default if t.default in (REQUIRED, EXPORTED) else f"`{json.dumps(t.default)}`"
        default = "" if outputs else f" {default} |"
        lines.append(f"| `{t.name}` | {DT_NAMES[t.dtype]} |{default} {t.help} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table() + "\n\n" + markdown_table(OUTPUTS))
