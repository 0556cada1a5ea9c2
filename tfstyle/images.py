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

#: Smallest allowed working size (shorter side of the optimised image): VGG pools it four times.
MIN_SIDE = 16
#: Largest allowed ``size`` (longer side of the optimised image). Memory grows with the pixels.
MAX_SIZE = 4096
#: Largest side accepted for an input image before resizing.
MAX_INPUT_SIDE = 8192

ImageLike = str | os.PathLike | bytes | PIL.Image.Image | np.ndarray | tf.Tensor


def load_image(source: ImageLike, name: str = "image") -> np.ndarray:
    """Read an image from any supported source as RGB float32 ``(H, W, 3)`` in [0, 1].

    Args:
        source: a path, the bytes of an encoded image (PNG, JPEG, BMP, GIF, ...), a PIL image,
            or an array/tensor ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` of
            uint8, uint16 or float in [0, 1]. Grayscale, alpha, palette and 16-bit images are
            converted to RGB (alpha is composited over white).
        name: the argument's name, used in error messages.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: anything that is not a readable image, with what is allowed.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{name}: no such file: {path!r}")
        with open(path, "rb") as f:
            data = f.read()
        try:
            array = _decode(data)
        except (PIL.UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"{name}: {path!r} is not a readable image file ({err})") from err
    elif isinstance(source, (bytes, bytearray, memoryview)):
        try:
            array = _decode(bytes(source))
        except (PIL.UnidentifiedImageError, OSError, SyntaxError) as err:
            raise ValueError(f"{name}: the bytes given are not an encoded image ({err})") from err
    elif isinstance(source, PIL.Image.Image):
        array = _pil_to_array(source)
    elif isinstance(source, (np.ndarray, tf.Tensor)):
        array = _array_to_rgb(np.asarray(source), name)
    else:
        raise ValueError(
            f"{name} must be a path, bytes, a PIL image, a NumPy array or a tensor; "
            f"got {type(source).__name__}"
        )
    h, w = array.shape[:2]
    if max(h, w) > MAX_INPUT_SIDE or min(h, w) < 1:
        raise ValueError(
            f"{name}: image is {w}x{h}; each side must be between 1 and {MAX_INPUT_SIDE} px"
        )
    return array


def _decode(data: bytes) -> np.ndarray:
    with PIL.Image.open(io.BytesIO(data)) as img:
        img.load()
        if img.format == "JPEG" and img.getexif().get(0x0112, 1) == 1:
            # TensorFlow's JPEG decoder, as in the exported graph: JPEG decoders differ by a
            # few levels, which the optimisation would amplify.
            decoded = tf.io.decode_image(data, channels=3, dtype=tf.float32)
            return np.ascontiguousarray(decoded.numpy())
        return _pil_to_array(img)


def _pil_to_array(img: PIL.Image.Image) -> np.ndarray:
    img = PIL.ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: keep the precision instead of PIL's clipping conversion to "L".
        gray = np.asarray(img, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=-1)
    if img.mode == "F":
        return _array_to_rgb(np.asarray(img, dtype=np.float32), "image")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composited over white in float, exactly as the exported graph does.
        return _array_to_rgb(np.asarray(img.convert("RGBA")), "image")
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"{name}: an image array must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
            f"got {array.shape}"
        )
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
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
        rgb, alpha = array[..., :3], array[..., 3:]
        array = rgb * alpha + (1.0 - alpha)  # composite over white
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
