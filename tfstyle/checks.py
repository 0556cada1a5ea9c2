"""Checks that run inside a graph, and their errors as one clear line.

The exported signature and the Python API run the same checks (the API runs the same graph
code), so each rule is written once. A failed check raises ``InvalidArgumentError`` whose message
is ``assertion failed: [<message>]``; ``message_of`` turns that back into ``<message>``.
"""

from __future__ import annotations

import re

import tensorflow as tf


def check(condition, template: str, *values) -> tf.Operation:
    """An assertion op: fails with ``template`` (``{}`` replaced by ``values``) when false."""
    message = tf.strings.format(template, values) if values else template
    return tf.debugging.Assert(condition, [message])


#: Name scope of the decoding of an input (``decoder_scope("content")``).
_DECODER = "decode_input_"


def decoder_scope(name: str) -> str:
    """The name scope under which input ``name`` is decoded (see ``message_of``)."""
    return _DECODER + re.sub(r"\W", "_", name)


def message_of(error: Exception | str) -> str:
    """The informative line of a TensorFlow error (no node list, no "Graph execution error").

    An error raised inside an input's decoder (``decoder_scope``) is prefixed with the input's
    name: "content: not a readable image (Invalid JPEG data, size 35)".
    """
    text = getattr(error, "message", None) or str(error)
    line = _message_line(text)
    decoder = re.search(r"\{\{node (?:[\w.-]+/)*" + _DECODER + r"(\w+?)/", text)
    if decoder and not line.startswith(decoder.group(1) + ":"):
        return f"{decoder.group(1)}: not a readable image ({line})"
    return line


def _message_line(text: str) -> str:
    eager = re.search(r"Summarized data: b(['\"])(.*?)\1", text)  # a check run eagerly
    if eager:
        return eager.group(2)
    # In a graph, alone on a line or after "{{function_node ...}}" (a tf.function called eagerly).
    failed = re.search(r"^(?:\s*|.*\}\}\s*)assertion failed: \[(.*)\]\s*$", text, re.MULTILINE)
    if failed:  # the Assert op prints its message C-escaped: "the content\'s"
        return re.sub(r"\\(['\"\\])", r"\1", failed.group(1))
    for line in text.strip().splitlines():
        line = line.strip()
        if not line or line.startswith("Graph execution error") or line.startswith("{{node"):
            continue
        line = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]( name: ?\S*)?$", "", line)
        if "{{node" in line:
            line = line.split("{{node")[0].strip().rstrip("[").strip()
        return line
    return text.strip()
