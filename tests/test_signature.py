"""The served request's contract (tfstyle.signature): the one declaration the export, the
client, the warm-up requests and serving/README.md follow."""

import base64
import json
import os
import re

import tensorflow as tf

from tfstyle import options
from tfstyle import signature as sig

README = os.path.join(os.path.dirname(__file__), "..", "serving", "README.md")


def _between(text: str, name: str) -> str:
    match = re.search(rf"<!-- {name}: .*? -->\n(.*?)\n<!-- /{name} -->", text, re.S)
    assert match, f"serving/README.md has no generated {name} table"
    return match[1]


def test_readme_tables_are_the_contract():
    with open(README) as f:
        text = f.read()
    assert _between(text, "inputs") == sig.markdown_table()
    assert _between(text, "outputs") == sig.markdown_table(sig.OUTPUTS)


def test_contract_rows():
    rows = sig.stylize_inputs()
    names = [t.name for t in rows]
    assert len(names) == len(set(names))
    assert names[:3] == [sig.CONTENT, sig.STYLE, sig.ITERATIONS]
    assert [t.name for t in rows if t.default == sig.REQUIRED] == names[:3]
    # The options table's per-request rows, with its dtypes, the masks and the part inputs.
    assert [t.name for t in rows if t.option] == list(options.REQUEST_OPTIONS)
    assert all(t.dtype == options.REQUEST_OPTIONS[t.name] for t in rows if t.option)
    assert [t for t in rows if not t.option][3:] == [*sig.MASK_INPUTS, *sig.PART_INPUTS]
    for t in (*sig.MASK_INPUTS, *sig.PART_INPUTS):  # a default the dtype can hold
        assert tf.constant(t.default, t.dtype).dtype == tf.as_dtype(t.dtype)


def test_predict_request_uses_the_contract_dtypes():
    inputs = {sig.CONTENT: b"png", sig.STYLE: b"png", sig.ITERATIONS: 3, "seed": 2**40,
              "style_weight": 5, sig.RETURN_IMAGE: True, sig.START_STEP: 1,
              sig.RESUME_BYTES: b"r", "init": "noise"}  # fmt: skip
    request = sig.predict_request("m", 7, sig.STYLIZE_SIGNATURE, inputs)
    assert request.model_spec.name == "m" and request.model_spec.version.value == 7
    assert request.model_spec.signature_name == sig.STYLIZE_SIGNATURE
    assert set(request.inputs) == set(inputs)
    for name, value in inputs.items():
        proto = request.inputs[name]
        assert proto.dtype == tf.as_dtype(sig.dtype_of(name)).as_datatype_enum, name
        got = tf.make_ndarray(proto).item()
        assert got == (value.encode() if isinstance(value, str) else value), name
    assert not sig.predict_request("m", None, "x", {}).model_spec.HasField("version")


def test_rest_body_sends_bytes_as_base64():
    body = json.loads(
        sig.rest_body(
            sig.STYLIZE_SIGNATURE, {sig.CONTENT: b"\x00\xff", "init": "noise", "size": 32}
        )
    )
    assert body["signature_name"] == sig.STYLIZE_SIGNATURE
    assert base64.b64decode(body["inputs"][sig.CONTENT]["b64"]) == b"\x00\xff"
    assert body["inputs"]["init"] == "noise" and body["inputs"]["size"] == 32
