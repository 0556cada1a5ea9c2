"""Image loading from every source kind, mode conversion, resizing and colour transforms."""

import io

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from tfstyle import images


def _png_bytes(img: PIL.Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_sources_agree(tmp_path, content_array):
    u8 = (content_array * 255).round().astype(np.uint8)
    pil = PIL.Image.fromarray(u8)
    path = tmp_path / "c.png"
    pil.save(path)
    expected = u8.astype(np.float32) / 255
    for source in (str(path), path, _png_bytes(pil), pil, u8, expected, tf.constant(u8)):
        got = images.load_image(source)
        assert got.dtype == np.float32 and got.shape == (48, 64, 3)
        np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "CMYK", "1"])
def test_modes_become_rgb(mode):
    base = PIL.Image.fromarray((np.indices((20, 30)).sum(0) * 4 % 256).astype(np.uint8))
    if mode == "I;16":
        img = PIL.Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
        assert img.mode.startswith("I")
    else:
        img = base.convert(mode)
    got = images.load_image(_png_bytes(img) if mode != "CMYK" else img)
    assert got.shape == (20, 30, 3) and 0.0 <= got.min() and got.max() <= 1.0


def test_sixteen_bit_keeps_precision():
    values = np.array([[0, 1, 65535]], dtype=np.uint16)
    img = PIL.Image.fromarray(values)
    got = images.load_image(_png_bytes(img))
    np.testing.assert_allclose(got[0, :, 0], [0.0, 1 / 65535, 1.0], rtol=1e-5, atol=1e-9)


def test_rgba_alpha_composited_over_white():
    rgba = np.zeros((2, 2, 4), np.uint8)  # transparent black
    got = images.load_image(rgba)
    np.testing.assert_allclose(got, 1.0)


def test_grayscale_array_replicated():
    got = images.load_image(np.full((4, 5), 0.25, np.float32))
    assert got.shape == (4, 5, 3) and np.allclose(got, 0.25)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="content: no such file"):
        images.load_image(tmp_path / "nope.png", "content")


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    with pytest.raises(ValueError, match="style: .* is not a readable image file"):
        images.load_image(path, "style")


@pytest.mark.parametrize(
    "source, match",
    [
        (b"garbage", "not an encoded image"),
        (np.zeros((4, 4, 2), np.uint8), r"must have shape"),
        (np.full((4, 4, 3), 2.0), r"values in \[0, 1\]"),
        (np.zeros((4, 4, 3), np.int64), "dtype must be"),
        (12, "must be a path, bytes"),
    ],
)
def test_bad_sources(source, match):
    with pytest.raises(ValueError, match=match):
        images.load_image(source, "content")


def test_working_shape_keeps_aspect():
    h, w = images.working_shape(300, 400, 64)
    assert (int(h), int(w)) == (48, 64)
    h, w = images.working_shape(1000, 10, 100)
    assert (int(h), int(w)) == (100, 1)


def test_resize_longer_side():
    out = images.resize_longer_side(tf.random.uniform((30, 60, 3)), 40)
    assert out.shape == (20, 40, 3)


def test_yiq_round_trip():
    x = tf.random.stateless_uniform((5, 7, 3), seed=(1, 1))
    np.testing.assert_allclose(images.yiq_to_rgb(images.rgb_to_yiq(x)), x, atol=1e-5)


def test_to_uint8_rounds_and_clips():
    x = tf.constant([[[-0.5, 0.5 / 255 + 1e-4, 1.5]]])
    np.testing.assert_array_equal(images.to_uint8(x), [[[0, 1, 255]]])


def test_exact_images_round_trip_bit_for_bit():
    rng = np.random.default_rng(0)
    image = rng.random((5, 7, 3), dtype=np.float32)
    image[0, 0] = [0.0, 1.0, np.nextafter(np.float32(0), np.float32(1))]  # the edges
    data = images.encode_exact(tf.constant(image)).numpy()
    assert data.startswith(images.EXACT_PREFIX)
    for back in (images.decode_exact(data, "x").numpy(), images.load_image(data, "init")):
        assert back.dtype == np.float32
        np.testing.assert_array_equal(back.view(np.uint32), image.view(np.uint32))


@pytest.mark.parametrize(
    "data, match",
    [
        (images.EXACT_PREFIX, r"init: not an exact image \(what this model returns as init\)$"),
        (images.EXACT_PREFIX + b"\x89PNG\r\n", "init: not an exact image .*: its header declares"),
        (b"tfstyle-float32\nJPEG", r"init: not an exact image \(what"),
    ],
)
def test_broken_exact_images_are_one_line(data, match):
    with pytest.raises(ValueError, match=match) as e:
        images.load_image(data, "init")
    assert "\n" not in str(e.value)


def test_an_odd_width_or_out_of_range_exact_image_is_refused():
    odd = images.EXACT_PREFIX + tf.io.encode_png(tf.zeros([3, 5, 3], tf.uint16)).numpy()
    with pytest.raises(ValueError, match="header declares 5x3 px"):
        images.load_image(odd, "init")
    above_one = images.encode_exact(tf.fill([2, 2, 3], 1.5)).numpy()
    with pytest.raises(ValueError, match=r"not all numbers in \[0, 1\]"):
        images.load_image(above_one, "init")


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "GIF", "JPEG"])
def test_same_image_in_any_form_gives_the_same_pixels(tmp_path, fmt):
    """One conversion to float, whatever the form: a file, its bytes, a PIL image and a uint8
    array of the same pixels load bit for bit alike (a second rounding would differ by an ulp,
    which a short L-BFGS run amplifies to many grey levels)."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    path = tmp_path / f"image.{fmt.lower()}"
    PIL.Image.fromarray(pixels).save(path, fmt)
    data = path.read_bytes()
    # The file's pixels as TensorFlow's decoder reads them (the served model's decoder).
    decoded = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    forms = [str(path), data, decoded]
    if fmt != "JPEG":  # a decoded PIL image: PIL's JPEG decoder rounds its IDCT differently
        forms.append(PIL.Image.open(io.BytesIO(data)))
    loaded = [images.load_image(f) for f in forms]
    for other in loaded[1:]:
        assert other.dtype == np.float32
        np.testing.assert_array_equal(other, loaded[0])
    np.testing.assert_array_equal(np.round(loaded[0] * 255.0), decoded)  # the same image


@pytest.mark.slow
def test_transfer_gives_the_same_pixels_for_a_path_and_an_array(tmp_path):
    import tfstyle

    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    path = tmp_path / "content.png"
    PIL.Image.fromarray(pixels).save(path)
    style = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    run = dict(size=32, iterations=4, weights=None, seed=0, progress=False)
    by_path = tfstyle.transfer(str(path), style, **run)
    by_array = tfstyle.transfer(pixels, style, **run)
    np.testing.assert_array_equal(np.asarray(by_path), np.asarray(by_array))


def _gif(frames: list, canvas: tuple | None = None) -> bytes:
    """A GIF of ``frames`` (H x W x 3 uint8 arrays), its header's canvas (width, height)
    replaced by ``canvas`` if given (a file can claim anything)."""
    buf = io.BytesIO()
    pictures = [PIL.Image.fromarray(f).convert("P") for f in frames]
    pictures[0].save(buf, "GIF", save_all=True, append_images=pictures[1:])
    data = bytearray(buf.getvalue())
    if canvas is not None:
        data[6:10] = canvas[0].to_bytes(2, "little") + canvas[1].to_bytes(2, "little")
    return bytes(data)


def test_a_gif_is_bounded_by_its_frames_not_its_header():
    """TensorFlow decodes every frame of a GIF at the frame's own size: a small file whose header
    claims a small canvas could hold frames of 65535 px, or many large ones. The frames' sizes
    are read from their descriptors before any pixel (issue 29)."""
    rng = np.random.default_rng(0)

    def frame(h, w):
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    def decode(data):
        return images.decode(tf.constant(data), "content", max_side=64).numpy()

    assert decode(_gif([frame(30, 40), frame(30, 40)])).shape == (30, 40, 3)  # 2400 px in all
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        decode(_gif([frame(100, 60)], canvas=(32, 24)))  # a frame larger than the canvas
    assert "content: the GIF's first 1 frames declare up to 100 px a side and 6000 pixels" in (
        err.value.message
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="and 7200 pixels in all; each side"):
        decode(_gif([frame(60, 60) for _ in range(3)]))  # each within 64 px; 3 are too many
    # An empty first sub-block of an extension: giflib reads on past it (the next byte is a
    # sub-block's length, here 0x3B, the trailer's value), and so must the walk (probe, issue 29).
    data = bytearray(_gif([frame(100, 60)], canvas=(32, 24)))
    start = 13 + (3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    data[start:start] = bytes([0x21, 0xFE, 0x00, 0x3B]) + b"x" * 59 + b"\0"
    with pytest.raises(tf.errors.InvalidArgumentError, match="up to 100 px a side"):
        decode(bytes(data))
    # A walk of bounded length: a GIF of more blocks than that is refused, not walked for minutes.
    many = (
        _gif([frame(2, 2)])[:-1]
        + bytes([0x21, 0xFE, 0x01, 0x41, 0x00]) * (images.MAX_GIF_BLOCKS + 1)
        + b"\x3b"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="content: a GIF of more than"):
        decode(many)
    # LZW data no frame of its size can need (giflib took 30 s over 33 MB of clear codes).
    small = _gif([frame(8, 8)])
    assert small.endswith(b"\x00\x3b")
    bloated = small[:-2] + (b"\xff" + b"\xaa" * 255) * 5 + b"\x00\x3b"
    with pytest.raises(tf.errors.InvalidArgumentError, match="carries more image data than"):
        decode(bloated)
    # Through load_image: one line, the limit of an input (8192 px).
    big = _gif([np.zeros((8200, 10, 3), np.uint8)], canvas=(10, 10))
    with pytest.raises(ValueError, match="up to 8200 px a side and 82000 pixels in all; each side "
                       "must be at most 8192 px"):  # fmt: skip
        images.load_image(big, "style")


@pytest.mark.parametrize("fourth", [0, 77])
def test_a_32_bit_bmp_whose_fourth_byte_is_unused_is_opaque(fourth):
    """A 32-bit BMP whose header declares no alpha mask: its fourth byte (0, or anything) is not
    alpha, as PIL reads it; it was read as transparent, white (probes, issue 29)."""
    import struct

    height, width = 4, 6
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    rows = b"".join(
        np.concatenate([pixels[r][:, ::-1], np.full((width, 1), fourth, np.uint8)], 1).tobytes()
        for r in range(height - 1, -1, -1)
    )  # bottom-up rows of BGRX
    header = (
        b"BM"
        + struct.pack("<IHHI", 54 + len(rows), 0, 0, 54)
        + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 32, 0, len(rows), 0, 0, 0, 0)
    )
    data = header + rows
    np.testing.assert_array_equal(
        images.load_image(data, "content"), images.load_image(pixels, "content")
    )
    np.testing.assert_array_equal(
        np.asarray(PIL.Image.open(io.BytesIO(data)).convert("RGB")), pixels
    )
