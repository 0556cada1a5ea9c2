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


def message_of(error: Exception | str) -> str:
    """The informative line of a TensorFlow error (no node list, no "Graph execution error")."""
    text = getattr(error, "message", None) or str(error)
    eager = re.search(r"Summarized data: b(['\"])(.*?)\1", text)  # a check run eagerly
    if eager:
        return eager.group(2)
    failed = re.search(r"^\s*assertion failed: \[(.*)\]\s*$", text, re.MULTILINE)  # in a graph
    if failed:
        return failed.group(1)
    for line in text.strip().splitlines():
        line = line.strip()
        if not line or line.startswith("Graph execution error") or line.startswith("{{node"):
            continue
        line = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]( name: ?\S*)?$", "", line)
        if "{{node" in line:
            line = line.split("{{node")[0].strip().rstrip("[").strip()
        return line
    return text.strip()
