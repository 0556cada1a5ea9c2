"""Images in and out: decoding, conversion to RGB float in [0, 1], resizing, colour transfer.

The resizing, quantisation and colour functions are TensorFlow ops, shared by the Python API and
the exported SavedModel so that both see exactly the same pixels.
"""

from __future__ import annotations

import io
import os

import numpy as np
import PIL.Image
import PIL.ImageOps
import tensorflow as tf

from tfstyle import checks, files

#: Smallest allowed working size (shorter side of the optimised image): VGG pools it four times.
MIN_SIDE = 16
#: Largest allowed ``size`` (longer side of the optimised image). Memory grows with the pixels.
MAX_SIZE = 4096
#: Largest side accepted for an input image before resizing.
MAX_INPUT_SIDE = 8192

ImageLike = str | os.PathLike | bytes | PIL.Image.Image | np.ndarray | tf.Tensor


def load_image(source: ImageLike, name: str = "image", background: str = "white") -> np.ndarray:
    """Read an image from any supported source as RGB float32 ``(H, W, 3)`` in [0, 1].

    PNG, JPEG, GIF and BMP are decoded by ``decode``, the decoder the exported model runs, so
    the API and a served model see the same pixels (plus the EXIF orientation of a JPEG here,
    which the served model does not apply). Other formats are read with PIL.

    Args:
        source: a path, the bytes of an encoded image (PNG, JPEG, BMP, GIF, ...; or a served
            part's ``resume_bytes``, ``encode_exact``, read bit for bit), a PIL image,
            or an array/tensor ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` of
            uint8, uint16 or float in [0, 1]. Grayscale, alpha, palette and 16-bit images are
            converted to RGB (alpha is composited over ``background``).
        name: the argument's name, used in error messages.
        background: "white" (images) or "black" (masks: a transparent part selects nothing),
            what a transparent pixel becomes. Defaults to "white".

    Raises:
        FileNotFoundError: a path that does not exist.
        OSError: a path that cannot be read (no permission, a link to itself).
        ValueError: anything that is not a readable image (a FIFO, a device, a directory, a
            file over 512 MiB, bytes that are not an image), with what is allowed.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        # A regular file (not a directory, a device such as /dev/zero or a pipe), bounded in size
        # before it is read into memory.
        data = files.read_regular(path, name, _MAX_ENCODED_BYTES)
        array = _decode_bytes(data, name, f"{path!r} is not a readable image file", background)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        array = _decode_bytes(
            bytes(source), name, "the bytes given are not an encoded image", background
        )
    elif isinstance(source, PIL.Image.Image):
        _check_sides(source.height, source.width, name)
        array = _pil_to_array(source, name, background)
    elif isinstance(source, (np.ndarray, tf.Tensor)):
        array = _array_to_rgb(np.asarray(source), name, background)
    else:
        raise ValueError(
            f"{name} must be a path, bytes, a PIL image, a NumPy array or a tensor; "
            f"got {type(source).__name__}"
        )
    _check_sides(*array.shape[:2], name)
    return array


#: What ``load_image`` takes.
IMAGE_TYPES = (str, os.PathLike, bytes, bytearray, memoryview, PIL.Image.Image, np.ndarray,
               tf.Tensor)  # fmt: skip
_MAGIC = (b"\x89PNG", b"BM", b"\xff\xd8\xff", b"GIF8")  # PNG, BMP (may carry alpha), JPEG, GIF
_MAX_ENCODED_BYTES = 512 * 2**20


def _sides_message(name: str, max_side: int = MAX_INPUT_SIDE) -> str:
    return f"{name}: each side must be between 1 and {max_side} px; got {{}}x{{}} (width x height)"


def _check_sides(height: int, width: int, name: str) -> None:
    if max(height, width) > MAX_INPUT_SIDE or min(height, width) < 1:
        raise ValueError(_sides_message(name).format(width, height))


def _decode_bytes(data: bytes, name: str, not_image: str, background: str) -> np.ndarray:
    if data.startswith((*_MAGIC, EXACT_PREFIX)):  # EXACT_PREFIX: a served part's resume_bytes
        try:
            array = decode_resume(tf.constant(data), name, background=background).numpy()
        except tf.errors.InvalidArgumentError as err:
            message = checks.message_of(err)
            if message.startswith(f"{name}:"):
                raise ValueError(message) from None
            raise ValueError(f"{name}: {not_image} ({message})") from None
        if data.startswith(b"\xff\xd8\xff"):
            array = _exif_orient(data, array)
        return np.ascontiguousarray(array)
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
            _check_sides(
                img.height, img.width, name
            )  # before decoding: a small file can claim a lot
            img.load()
            return _pil_to_array(img, name, background)
    except PIL.UnidentifiedImageError:  # its text names the buffer object: no help
        raise ValueError(f"{name}: {not_image} (not a format PIL knows)") from None
    except (PIL.Image.DecompressionBombError, OSError, SyntaxError) as err:
        raise ValueError(f"{name}: {not_image} ({err})") from None
    except ValueError as err:
        if str(err).startswith(f"{name}:"):  # ours (its sides, its mode): already named
            raise
        raise ValueError(f"{name}: {not_image} ({err})") from None
    except (MemoryError, RecursionError):
        raise
    except Exception as err:  # noqa: BLE001 (Pillow's decoders raise what they like on a broken file)
        raise ValueError(f"{name}: {not_image} ({type(err).__name__}: {err})") from None


def _exif_orient(data: bytes, array: np.ndarray) -> np.ndarray:
    """Apply a JPEG's EXIF orientation (PIL reads the tag; the pixels stay TensorFlow's)."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
            orientation = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: the pixels as stored
        return array
    method = {2: PIL.Image.Transpose.FLIP_LEFT_RIGHT, 3: PIL.Image.Transpose.ROTATE_180,
              4: PIL.Image.Transpose.FLIP_TOP_BOTTOM, 5: PIL.Image.Transpose.TRANSPOSE,
              6: PIL.Image.Transpose.ROTATE_270, 7: PIL.Image.Transpose.TRANSVERSE,
              8: PIL.Image.Transpose.ROTATE_90}.get(orientation)  # fmt: skip
    if method is None:
        return array
    # The same transposition as PIL.ImageOps.exif_transpose, on an index image.
    index = np.arange(array.shape[0] * array.shape[1], dtype=np.int32).reshape(array.shape[:2])
    moved = np.asarray(PIL.Image.fromarray(index).transpose(method))
    return array.reshape(-1, 3)[moved]


def decode(
    data: tf.Tensor, name: str, max_side: int = MAX_INPUT_SIDE, background: str = "white"
) -> tf.Tensor:
    """Encoded PNG/JPEG/GIF/BMP bytes (a scalar string tensor) -> float RGB ``(H, W, 3)``.

    TensorFlow ops, run by the exported model and by ``load_image``. The size the header
    declares is checked (each side at most ``max_side``; a GIF's frames too) before the pixels
    are decoded; alpha is composited over ``background`` ("white" or "black"); 16-bit PNGs keep
    their precision. Raises ``InvalidArgumentError`` naming ``name`` otherwise.
    """
    # The decoders' own errors ("Invalid JPEG data") do not say which input: the name scope
    # does, and ``checks.message_of`` puts it in front.
    with tf.name_scope(checks.decoder_scope(name)):
        return _decode(data, name, max_side, background)


def _decode(data: tf.Tensor, name: str, max_side: int, background: str) -> tf.Tensor:
    prefixes = tf.stack([tf.strings.substr(data, 0, len(m)) for m in _MAGIC])
    matches = tf.equal(prefixes, list(_MAGIC))
    with tf.control_dependencies(
        [
            checks.check(tf.reduce_any(matches), f"{name}: not a PNG, JPEG, GIF or BMP image"),
            checks.check(
                tf.strings.length(data) <= _MAX_ENCODED_BYTES,
                f"{name}: encoded image larger than {_MAX_ENCODED_BYTES // 2**20} MiB",
            ),
        ]
    ):
        data = tf.identity(data)
    height, width = _header_shape(data, matches)
    readable = checks.check(
        tf.minimum(height, width) >= 1,
        f"{name}: not a readable image (its header declares {{}}x{{}} px)",
        width,
        height,
    )
    with tf.control_dependencies([readable]):
        sides_ok = tf.maximum(height, width) <= max_side
    message = _sides_message(name, max_side)
    with tf.control_dependencies([checks.check(sides_ok, message, width, height)]):
        data = tf.identity(data)
    # A GIF's header gives its canvas; TensorFlow decodes every frame (each may be larger than
    # the canvas, up to 65535 px a side) and returns the largest frame's size: the frames' own
    # sizes are read too, before any pixel.
    frames, side, area, slack, steps = tf.cond(
        matches[3],
        lambda: _gif_frames(data, max_side),
        lambda: (
            tf.constant(1),
            tf.maximum(height, width),
            height * width,
            tf.constant(0, tf.int64),
            tf.constant(0, tf.int64),
        ),
    )
    gif_ok = checks.check(
        (side <= max_side) & (area <= max_side * max_side),
        f"{name}: the GIF's first {{}} frames declare up to {{}} px a side and {{}} pixels in "
        f"all; each side must be at most {max_side} px, and the frames {max_side}x{max_side} "
        f"pixels in all",
        frames, side, area,
    )  # fmt: skip
    gif_short = checks.check(
        steps <= MAX_GIF_BLOCKS,
        f"{name}: a GIF of more than {MAX_GIF_BLOCKS} blocks (frames, extensions and their data "
        f"sub-blocks); at most {MAX_GIF_BLOCKS}",
    )
    gif_lean = checks.check(
        slack >= 0,
        f"{name}: a GIF frame carries more image data than its pixels can need (at most "
        f"{GIF_DATA_PER_PIXEL} bytes a pixel and {GIF_DATA_PER_FRAME} a frame)",
    )
    with tf.control_dependencies([gif_ok, gif_short, gif_lean]):
        data = tf.identity(data)

    # An opaque image is returned as decoded, without an alpha channel: composited over any
    # background it is itself bit for bit (x * 1 + 0), and an 8192 px RGB image then costs its
    # float pixels once, not four times (the alpha, RGBA and the composite).
    def with_alpha():  # PNG and BMP may carry alpha
        # Decoded with their own channels: TensorFlow's channels=4 fills the alpha of a 1, 2 or
        # 4-bit grayscale PNG with 1 (of 255), a transparent image.
        x = _to_float(
            tf.cond(
                matches[0],  # a PNG may have 16 bits, which decode_png keeps (8 bits: v * 257)
                lambda: tf.io.decode_png(data, channels=0, dtype=tf.uint16),
                lambda: _widened(tf.io.decode_bmp(data, channels=0)),
            )
        )
        by_channels = [
            lambda: tf.tile(x[..., :1], [1, 1, 3]),
            lambda: over(tf.concat([tf.tile(x[..., :1], [1, 1, 3]), x[..., 1:2]], -1), background),
            lambda: x[..., :3],
            # A 32-bit BMP's fourth byte is no alpha unless its header declares an alpha mask
            # (PIL reads it so): opaque.
            lambda: tf.cond(
                matches[0] | _bmp_alpha(data), lambda: over(x, background), lambda: x[..., :3]
            ),
        ]
        return tf.switch_case(tf.clip_by_value(tf.shape(x)[-1] - 1, 0, 3), by_channels)

    def opaque():  # JPEG and GIF decode to RGB only
        return _to_float(_widened(tf.io.decode_image(data, channels=3, expand_animations=False)))

    rgb = tf.cond(tf.reduce_any(matches[:2]), with_alpha, opaque)
    rgb.set_shape([None, None, 3])
    return rgb


#: What starts an exact image (``encode_exact``), and tells it apart from an ordinary one.
EXACT_PREFIX = b"tfstyle-float32\n"


def encode_exact(image: tf.Tensor) -> tf.Tensor:
    """A float32 ``(h, w, 3)`` image as a scalar string, losslessly: ``EXACT_PREFIX`` and a
    16-bit RGB PNG ``(h, 2w)`` holding each value's upper 16 bits on the left and its lower 16
    bits on the right (the same on any byte order). ``decode_exact`` reverses it bit for bit."""
    bits = tf.bitcast(tf.cast(image, tf.float32), tf.uint32)
    upper = tf.cast(tf.bitwise.right_shift(bits, 16), tf.uint16)
    lower = tf.cast(tf.bitwise.bitwise_and(bits, 0xFFFF), tf.uint16)
    png = tf.io.encode_png(tf.concat([upper, lower], axis=1))
    return tf.strings.join([EXACT_PREFIX, png])


def decode_exact(data: tf.Tensor, name: str, max_side: int = MAX_INPUT_SIDE) -> tf.Tensor:
    """``encode_exact``'s string -> the float32 ``(h, w, 3)`` image, checked: an
    ``InvalidArgumentError`` naming ``name`` for anything ``encode_exact`` cannot have written
    (no prefix, not a 16-bit PNG of even width, a side over ``max_side``, values that are not
    finite numbers in [0, 1]). The sides are checked from the header before any pixel is
    decoded, and the halves widened one at a time."""
    with tf.name_scope(checks.decoder_scope(name)):
        not_ours = f"{name}: not an exact image (what this model returns as {name})"
        prefixed = tf.equal(tf.strings.substr(data, 0, len(EXACT_PREFIX)), EXACT_PREFIX)
        with tf.control_dependencies([checks.check(prefixed, not_ours)]):
            png = tf.strings.substr(data, len(EXACT_PREFIX), tf.strings.length(data))
        is_png = tf.equal(tf.strings.substr(png, 0, len(_MAGIC[0])), _MAGIC[0])
        with tf.control_dependencies([checks.check(is_png, not_ours)]):
            is_png = tf.constant([True, False, False, False])  # _MAGIC's order
            height, double = _header_shape(tf.identity(png), is_png)
        width = double // 2
        sides = checks.check(
            (tf.minimum(height, width) >= 1) & (tf.maximum(height, width) <= max_side)
            & tf.equal(double % 2, 0),
            f"{not_ours}: its header declares {{}}x{{}} px (each side at most {max_side})",
            double, height,
        )  # fmt: skip
        with tf.control_dependencies([sides]):
            halves = tf.io.decode_png(tf.identity(png), channels=3, dtype=tf.uint16)
        upper, lower = tf.split(halves, 2, axis=1)
        bits = tf.bitwise.left_shift(tf.cast(upper, tf.uint32), 16)
        bits = tf.bitwise.bitwise_or(bits, tf.cast(lower, tf.uint32))
        image = tf.bitcast(bits, tf.float32)
        in_range = checks.check(
            tf.reduce_all((image >= 0.0) & (image <= 1.0)),  # false for NaN too
            f"{not_ours}: its values are not all numbers in [0, 1]",
        )
        with tf.control_dependencies([in_range]):
            return tf.identity(image)


def decode_resume(
    data: tf.Tensor, name: str, max_side: int = MAX_INPUT_SIDE, background: str = "white"
) -> tf.Tensor:
    """An image to continue from: ``encode_exact``'s string (bit for bit), or any image
    ``decode`` reads (PNG, JPEG, GIF, BMP); float32 ``(H, W, 3)``, each side at most
    ``max_side`` (a served model's ``max_size``: no run it does is larger)."""
    exact = tf.equal(tf.strings.substr(data, 0, len(EXACT_PREFIX)), EXACT_PREFIX)
    return tf.cond(
        exact,
        lambda: decode_exact(data, name, max_side),
        lambda: decode(data, name, max_side, background),
    )


def _header_shape(data: tf.Tensor, matches: tf.Tensor):
    """(height, width) as the header declares them, read without decoding the pixels."""
    data = tf.strings.join([data, b"\0" * 32])  # a truncated header reads as zeros

    def uint(offset: int, length: int, big_endian: bool) -> tf.Tensor:
        raw = tf.io.decode_raw(tf.strings.substr(data, offset, length), tf.uint8)
        raw = tf.cast(raw, tf.int64)
        weights = [256 ** (length - 1 - i if big_endian else i) for i in range(length)]
        return tf.reduce_sum(raw * tf.constant(weights, tf.int64))

    def png():
        return uint(20, 4, True), uint(16, 4, True)

    def bmp():  # a negative height (top-down rows) is stored as two's complement
        height = uint(22, 4, False)
        return tf.where(height >= 2**31, 2**32 - height, height), uint(18, 4, False)

    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(data), tf.int64)
        return shape[0], shape[1]

    def gif():
        return uint(8, 2, False), uint(6, 2, False)

    index = tf.argmax(tf.cast(matches, tf.int32), output_type=tf.int32)
    return tf.switch_case(index, [png, bmp, jpeg, gif])


#: Most blocks and sub-blocks of a GIF walked to read its frames' sizes (``_gif_frames``): a
#: few seconds of work, the data of a 4096 px photograph as a GIF (8192 px of noise has more).
MAX_GIF_BLOCKS = 2**17
#: Most LZW data a GIF frame may carry: bytes a pixel (12-bit codes: 1.5, and the clear codes an
#: encoder adds) and a frame's overhead. More is work for giflib and no pixels (a stream of clear
#: codes took 30 s to decode).
GIF_DATA_PER_PIXEL = 2
GIF_DATA_PER_FRAME = 1024


@tf.function(autograph=False)
def _gif_frames(data: tf.Tensor, max_side: int):
    """``(frames, largest side, pixels in all, image data to spare, blocks walked)`` of a GIF's
    frames (to spare: ``GIF_DATA_PER_PIXEL`` a pixel and ``GIF_DATA_PER_FRAME`` a frame less
    their LZW data; negative: a frame carries more than it can need), as their image
    descriptors declare them, walked as giflib's ``DGifSlurp`` (which TensorFlow's decoder runs)
    reads the file: a block is an image (``0x2C``: its descriptor, a colour table, the LZW code
    size, then data sub-blocks) or an extension (``0x21``, a label, then sub-blocks; giflib
    takes the first sub-block whatever its length, an empty one too, and reads on to the next
    empty one); a sub-block is a length byte and that many bytes. The walk stops at the trailer
    (``0x3B``), at anything else, at the end of the data, once the frames exceed ``max_side``,
    or after ``MAX_GIF_BLOCKS`` steps. Bytes are read one at a time from the string (no copy
    of the file as numbers)."""
    n = tf.cast(tf.strings.length(data), tf.int64)  # its bytes
    padded = tf.strings.join([data, b"\0" * 16])  # reads past the end read zeros

    def at(i):
        byte = tf.strings.substr(padded, tf.minimum(tf.cast(i, tf.int64), n + 15), 1)
        return tf.cast(tf.io.decode_raw(byte, tf.uint8)[0], tf.int64)

    def table(flags):  # the size of a colour table a flags byte announces
        size = 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(flags, 7))
        return tf.where(flags >= 128, size, 0)

    def step(pos, in_blocks, in_image, frames, side, area, slack, steps):
        def sub_block():
            size = at(pos)
            return (
                pos + size + 1,
                size > 0,
                in_image,
                frames,
                side,
                area,
                (slack - tf.where(in_image, size, 0)),
            )

        def block():
            def image():
                w, h = at(pos + 5) + 256 * at(pos + 6), at(pos + 7) + 256 * at(pos + 8)
                start = pos + 10 + table(at(pos + 9)) + 1  # + the LZW minimum code size
                side_ = tf.maximum(side, tf.maximum(w, h))
                return (
                    start,
                    tf.constant(True),
                    tf.constant(True),
                    frames + 1,
                    side_,
                    area + w * h,
                    slack + GIF_DATA_PER_PIXEL * w * h + GIF_DATA_PER_FRAME,
                )

            def extension():  # the label, then the first sub-block, taken whatever its length
                return (
                    pos + 3 + at(pos + 2),
                    tf.constant(True),
                    tf.constant(False),
                    frames,
                    side,
                    area,
                    slack,
                )

            def end():
                return n, tf.constant(False), in_image, frames, side, area, slack

            kind = at(pos)
            index = tf.where(tf.equal(kind, 0x2C), 0, tf.where(tf.equal(kind, 0x21), 1, 2))
            return tf.switch_case(index, [image, extension, end])

        return (*tf.cond(in_blocks, sub_block, block), steps + 1)

    limit = tf.constant(max_side, tf.int64)
    zero = tf.constant(0, tf.int64)
    _, _, _, frames, side, area, slack, steps = tf.while_loop(
        lambda pos, _, __, frames, side, area, slack, steps: (pos < n) & (side <= limit)
        & (area <= limit * limit) & (slack >= 0) & (steps <= MAX_GIF_BLOCKS),
        step,
        (13 + table(at(10)), tf.constant(False), tf.constant(False), zero, zero, zero, zero,
         zero),
    )  # fmt: skip
    return tf.cast(frames, tf.int32), side, area, slack, steps


def _bmp_alpha(data: tf.Tensor) -> tf.Tensor:
    """Whether a BMP's header declares alpha: a V3 header or later (at least 56 bytes) with
    bit-field compression (3 or 6) and a non-zero alpha mask (at byte 66)."""
    data = tf.strings.join([data, b"\0" * 80])  # a short header reads as zeros

    def uint32(offset: int) -> tf.Tensor:
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, 4), tf.uint8), tf.int64)
        return tf.reduce_sum(raw * tf.constant([1, 256, 256**2, 256**3], tf.int64))

    compression = uint32(30)
    return (uint32(14) >= 56) & ((compression == 3) | (compression == 6)) & (uint32(66) != 0)


def _widened(pixels: tf.Tensor) -> tf.Tensor:
    """uint8 pixels as uint16 ``v * 257``, as ``decode_png`` gives an 8-bit PNG."""
    return tf.cast(pixels, tf.uint16) * 257


#: The one conversion of pixels to float: 16-bit values times float32(1 / 65535) (8-bit ones
#: as ``v * 257``, which ``decode_png`` gives). A multiplication, in NumPy and in TensorFlow
#: alike, eager or in a graph: a division by a constant may be rewritten in a graph, and a
#: second conversion differs by an ulp, which a short L-BFGS run amplifies to many grey levels.
_SCALE = np.float32(1 / 65535)


def _to_float(pixels: tf.Tensor) -> tf.Tensor:
    """uint16 pixels (8-bit ones widened by ``_widened``) to float32 in [0, 1] (``_SCALE``)."""
    return tf.cast(pixels, tf.float32) * _SCALE


def _float_pixels(array: np.ndarray) -> np.ndarray:
    """A uint8 or uint16 array to float32 in [0, 1]: what ``_to_float`` gives for the same
    pixels decoded from a file, bit for bit."""
    if array.dtype == np.uint8:
        array = array.astype(np.uint16) * np.uint16(257)
    return array.astype(np.float32) * _SCALE


def over_white(rgba):
    """Composite an ``(..., 4)`` RGBA float image (array or tensor) over white: RGB."""
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    return rgb * alpha + (1.0 - alpha)


def over(rgba, background: str):
    """Composite an ``(..., 4)`` RGBA float image (array or tensor) over ``background``,
    "white" (``over_white``) or "black"."""
    if background not in ("white", "black"):
        raise ValueError(f"background must be 'white' or 'black'; got {background!r}")
    return over_white(rgba) if background == "white" else rgba[..., :3] * rgba[..., 3:]


def _pil_to_array(img: PIL.Image.Image, name: str, background: str = "white") -> np.ndarray:
    img = PIL.ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: keep the precision instead of PIL's clipping conversion to "L".
        return _array_to_rgb(np.clip(np.asarray(img), 0, 65535).astype(np.uint16), name)
    if img.mode == "F":
        return _array_to_rgb(np.asarray(img, dtype=np.float32), name)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return _array_to_rgb(np.asarray(img.convert("RGBA")), name, background)
    return _float_pixels(np.asarray(img.convert("RGB")))


def _array_to_rgb(array: np.ndarray, name: str, background: str = "white") -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{name}: an image array must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
            f"got {array.shape}"
        )
    if array.dtype in (np.uint8, np.uint16):
        array = _float_pixels(array)
    elif np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
            raise ValueError(
                f"{name}: a float image must have values in [0, 1]; "
                f"got values in [{np.nanmin(array):g}, {np.nanmax(array):g}]"
            )
    else:
        raise ValueError(f"{name}: image dtype must be uint8, uint16 or float; got {array.dtype}")
    if array.shape[-1] == 4:
        array = over(array, background)
    elif array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


def working_shape(height, width, size):
    """Height and width with the longer side ``size`` and the aspect ratio kept (TF ops)."""
    height = tf.cast(height, tf.float64)
    width = tf.cast(width, tf.float64)
    scale = tf.cast(size, tf.float64) / tf.maximum(height, width)
    new_h = tf.maximum(tf.cast(tf.round(height * scale), tf.int32), 1)
    new_w = tf.maximum(tf.cast(tf.round(width * scale), tf.int32), 1)
    return new_h, new_w


def resize(image: tf.Tensor, height, width) -> tf.Tensor:
    """Resize an ``(H, W, 3)`` float image in [0, 1] to ``(height, width, 3)``, antialiased."""
    out = tf.image.resize(image, tf.stack([height, width]), method="bilinear", antialias=True)
    return tf.clip_by_value(out, 0.0, 1.0)


def resize_longer_side(image: tf.Tensor, size) -> tf.Tensor:
    """Resize an ``(H, W, 3)`` float image so that its longer side is ``size``."""
    shape = tf.shape(image)
    return resize(image, *working_shape(shape[0], shape[1], size))


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """Quantise a float image in [0, 1] to uint8, rounding to nearest."""
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0), tf.uint8)


def to_pil(image) -> PIL.Image.Image:
    """A float ``(H, W, 3)`` image in [0, 1] (array or tensor) as a PIL RGB image."""
    return PIL.Image.fromarray(np.asarray(to_uint8(tf.convert_to_tensor(image))))


# RGB <-> YIQ (NTSC), the colour space Gatys et al. 2016 use for colour preservation.
_RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    dtype=np.float32,
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def rgb_to_yiq(image: tf.Tensor) -> tf.Tensor:
    """Convert ``(..., 3)`` RGB to YIQ (luminance Y, chrominance I and Q)."""
    return tf.tensordot(image, tf.constant(_RGB_TO_YIQ.T), axes=1)


def yiq_to_rgb(image: tf.Tensor) -> tf.Tensor:
    """Convert ``(..., 3)`` YIQ back to RGB."""
    return tf.tensordot(image, tf.constant(_YIQ_TO_RGB.T), axes=1)


def transfer_chrominance(stylized: tf.Tensor, content: tf.Tensor) -> tf.Tensor:
    """Keep the luminance of ``stylized`` and take the chrominance (I, Q) of ``content``.

    Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer", colour transfer
    after stylisation. Both images ``(H, W, 3)`` in [0, 1] with the same shape.
    """
    y = rgb_to_yiq(stylized)[..., :1]
    iq = rgb_to_yiq(content)[..., 1:]
    return tf.clip_by_value(yiq_to_rgb(tf.concat([y, iq], axis=-1)), 0.0, 1.0)
