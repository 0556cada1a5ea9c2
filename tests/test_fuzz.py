"""Fuzzing the image decoders: random bytes and random headers give an image or one clean error.

Both decoders: ``images.load_image`` (the Python API and the CLI) and ``images.decode`` (the op
the served graph runs). A clean error is a ``ValueError`` (Python) or an
``InvalidArgumentError`` (graph) whose message is one line starting with the input's name.
"""

import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf

from tfstyle import checks, images

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
_decode = tf.function(lambda data: images.decode(data, "content"), autograph=False)


def outcome(data: bytes) -> None:
    """Decode ``data`` both ways; fail the test on anything but a result or a clean error."""
    try:
        array = images.load_image(data, "content")
    except ValueError as err:
        assert str(err).startswith("content:") and "\n" not in str(err), str(err)
    else:
        assert array.dtype == np.float32 and array.ndim == 3 and array.shape[2] == 3
        assert 0.0 <= array.min() and array.max() <= 1.0
        assert max(array.shape[:2]) <= images.MAX_INPUT_SIDE
    try:
        served = _decode(tf.constant(data))
    except tf.errors.InvalidArgumentError as err:
        message = checks.message_of(err)
        assert message.startswith("content:") and "\n" not in message, message
    else:
        assert served.shape[2] == 3 and max(served.shape[:2]) <= images.MAX_INPUT_SIDE


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


sides = st.integers(min_value=0, max_value=2**31 - 1) | st.integers(min_value=0, max_value=70)


@FUZZ
@given(st.binary(max_size=256))
def test_random_bytes(data):
    outcome(data)


@FUZZ
@given(
    width=sides,
    height=sides,
    depth=st.sampled_from([1, 2, 4, 8, 16, 3, 0]),
    colour=st.sampled_from([0, 2, 3, 4, 6, 1, 7]),
    rows=st.binary(max_size=200),
    compress=st.booleans(),
)
def test_png_headers(width, height, depth, colour, rows, compress):
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(rows) if compress else rows
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat)
    outcome(data + png_chunk(b"IEND", b""))


@FUZZ
@given(
    width=sides, height=sides, tail=st.binary(max_size=120), bits=st.sampled_from([1, 8, 24, 32])
)
def test_bmp_headers(width, height, tail, bits):
    width, height = width % 2**31, height % 2**31
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, 0, 2835, 2835, 0, 0)
    data = b"BM" + struct.pack("<IHHI", 54 + len(tail), 0, 0, 54) + info + tail
    outcome(data)


@FUZZ
@given(
    width=st.integers(0, 2**16 - 1), height=st.integers(0, 2**16 - 1), tail=st.binary(max_size=120)
)
def test_gif_headers(width, height, tail):
    outcome(b"GIF89a" + struct.pack("<HH", width, height) + tail)


@FUZZ
@given(
    width=st.integers(0, 2**16 - 1),
    height=st.integers(0, 2**16 - 1),
    components=st.sampled_from([1, 3, 4, 0, 2]),
    tail=st.binary(max_size=120),
)
def test_jpeg_headers(width, height, components, tail):
    sof = struct.pack(">BHHB", 8, height, width, components) + b"\x11\x00" * components
    data = b"\xff\xd8\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof + tail
    outcome(data)
