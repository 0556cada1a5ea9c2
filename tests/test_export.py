"""The exported SavedModel, run through the session-based loader that TF Serving uses."""

import io
import json
import os

import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
from helpers import EXPORT, pixels, png_bytes, session_run, session_runs

import tfstyle
from tfstyle import export, images, options, pipeline
from tfstyle import options as options_table
from tfstyle import signature as sig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(exported):
    return str(exported)


@pytest.fixture(scope="module")
def loaded(model_dir):
    """``loaded(signature_name, feeds)`` runs one request on the export's one session."""
    return lambda name, feeds: session_run(os.path.join(model_dir, "1"), name, feeds)


def api_image(content, style, iterations, **options) -> np.ndarray:
    image = tfstyle.transfer(
        content,
        style,
        iterations=iterations,
        progress=False,
        **{**EXPORT, **export.EXPORT_DEFAULTS, **options},
    )
    return np.asarray(image)


def test_layout_and_signatures(model_dir):
    path = os.path.join(model_dir, "1")
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert os.path.isfile(os.path.join(path, sig.WARMUP_FILE))
    with open(os.path.join(path, sig.METADATA_FILE)) as f:
        meta = json.load(f)
    assert meta["tensorflow"] == tf.__version__ and meta["options"]["size"] == 48
    assert meta["options"]["precision"] == "float32"  # an export's default: never measured
    assert meta["serving_image"] == f"tensorflow/serving:{export.serving_version()}"
    assert meta["precision_needs"] == "any CPU or GPU"
    # Memory: what a request adds, from the measured peaks of the served model.
    measured = meta["memory_gib"]["measured_peak"]
    per_request = meta["memory_gib"]["per_request"]
    loaded = meta["memory_gib"]["process"]
    assert 0 < loaded < measured["512"]["1"] < measured["512"]["2"] < measured["1024"]["1"]
    for side in ("512", "1024"):  # the bound per request holds for two at once, measured
        assert measured[side]["2"] <= loaded + 2 * per_request[side]
    assert set(per_request) == {"512", "1024"}  # this export's max_size is 1024
    from tensorflow.core.protobuf import saved_model_pb2

    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        model = saved_model_pb2.SavedModel.FromString(f.read())
    sigs = model.meta_graphs[0].signature_def
    default = sigs[sig.DEFAULT_SIGNATURE]
    assert set(default.inputs) == {sig.CONTENT, sig.STYLE, sig.ITERATIONS}
    assert default.inputs[sig.CONTENT].dtype == tf.string.as_datatype_enum
    assert default.inputs[sig.ITERATIONS].dtype == tf.int32.as_datatype_enum
    assert default.inputs[sig.CONTENT].tensor_shape.dim == []  # scalar
    assert set(default.outputs) == {sig.IMAGE_BYTES, sig.IMAGE, sig.LOSS}
    assert default.outputs[sig.IMAGE].dtype == tf.uint8.as_datatype_enum
    stylize = sigs[sig.STYLIZE_SIGNATURE]
    assert set(stylize.outputs) == {sig.IMAGE_BYTES, sig.IMAGE, sig.LOSS, sig.RESUME_BYTES}
    part = {sig.START_STEP, sig.STOP_STEP, sig.RESUME_BYTES}
    masks = {sig.MASK, sig.CONTENT_MASK, sig.STYLE_MASK}
    optional = {*options.REQUEST_OPTIONS, sig.RETURN_IMAGE, *part, *masks}
    assert set(stylize.inputs) == {sig.CONTENT, sig.STYLE, sig.ITERATIONS, *optional}
    # The export's options are the stylize signature's default inputs (TF Serving honours them).
    assert set(stylize.defaults) == optional
    assert not tf.make_ndarray(stylize.defaults[sig.RETURN_IMAGE])
    assert tf.make_ndarray(stylize.defaults["size"]) == 48
    assert tf.make_ndarray(stylize.defaults["seed"]) == 3
    assert tf.make_ndarray(stylize.defaults[sig.STOP_STEP]) == -1  # the run's end
    # Every input and output as the contract (tfstyle.signature) declares it.
    for t in sig.stylize_inputs():
        assert stylize.inputs[t.name].dtype == tf.as_dtype(t.dtype).as_datatype_enum, t.name
        assert stylize.inputs[t.name].tensor_shape.dim == [], t.name
        if t.default not in (sig.REQUIRED, sig.EXPORTED):
            value = tf.make_ndarray(stylize.defaults[t.name]).item()
            assert value == (t.default.encode() if isinstance(t.default, str) else t.default)
    for t in sig.OUTPUTS:
        assert stylize.outputs[t.name].dtype == tf.as_dtype(t.dtype).as_datatype_enum, t.name


def test_serving_default_equals_python_api(model_dir, pngs):
    content, style = pngs
    out = session_run(
        os.path.join(model_dir, "1"),
        sig.DEFAULT_SIGNATURE,
        {sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: 4},
    )
    expected = api_image(content, style, 4)
    assert pixels(out).shape == (36, 48, 3)
    np.testing.assert_array_equal(pixels(out), expected)
    # The raw pixels only when asked for (stylize's return_image): not in serving_default.
    assert out[sig.IMAGE].shape == (0, 0, 3) and out[sig.IMAGE].dtype == np.uint8
    assert np.isfinite(out[sig.LOSS]) and out[sig.LOSS] > 0
    feeds = {sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: 4, sig.RETURN_IMAGE: True}
    raw = session_run(os.path.join(model_dir, "1"), sig.STYLIZE_SIGNATURE, feeds)
    assert raw[sig.IMAGE].dtype == np.uint8
    np.testing.assert_array_equal(raw[sig.IMAGE], expected)
    np.testing.assert_array_equal(pixels(raw), expected)


def test_jpeg_inputs_equal_python_api(model_dir, content_array, style_array):
    def jpeg(array):
        buf = io.BytesIO()
        PIL.Image.fromarray((array * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=90)
        return buf.getvalue()

    content, style = jpeg(content_array), jpeg(style_array)
    out = session_run(
        os.path.join(model_dir, "1"),
        sig.DEFAULT_SIGNATURE,
        {sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: 4},
    )
    np.testing.assert_array_equal(pixels(out), api_image(content, style, 4))


def test_stylize_options_equal_python_api(model_dir, pngs):
    content, style = pngs
    options = {
        "size": 40,
        "content_weight": 2.0,
        "style_weight": 1e3,
        "tv_weight": 1.0,
        "learning_rate": 0.03,
        "seed": 11,
        "init": "noise",
        "preserve_colors": True,
        "style_scale": 1.5,
        "min_scale": 20,
        "scale_span": 1.5,
        "scale_factor": 1.5,
        "steps_ratio": 0.5,
        "shared_iterations": 3,  # 2 steps at 27 px and 3 at 40 (without it: 3 and 2)
        "average_decay": 0.5,
    }
    assert set(options) == set(options_table.REQUEST_OPTIONS)  # every per-request option
    feeds = {sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: 5, **options}
    out = session_run(os.path.join(model_dir, "1"), sig.STYLIZE_SIGNATURE, feeds)
    expected = api_image(content, style, 5, **options)  # at 27 and 40 px
    assert pixels(out).shape == (30, 40, 3)
    np.testing.assert_array_equal(pixels(out), expected)


def test_stylize_defaults_are_the_export_options(model_dir, pngs):
    content, style = pngs
    path = os.path.join(model_dir, "1")
    feeds = {sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: 2}
    a = session_run(path, sig.STYLIZE_SIGNATURE, feeds)
    b = session_run(path, sig.DEFAULT_SIGNATURE, feeds)
    np.testing.assert_array_equal(pixels(a), pixels(b))


def test_loss_falls_with_iterations(model_dir, pngs):
    content, style = pngs
    path = os.path.join(model_dir, "1")
    losses = [
        session_run(
            path, sig.DEFAULT_SIGNATURE, {sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: n}
        )[sig.LOSS]
        for n in (0, 10)
    ]
    assert losses[1] < 0.5 * losses[0]


def test_a_run_in_parts(model_dir, pngs):
    """A part resumed from the image another part returned is ``transfer`` from that image; a
    part stopping at a coarse scale returns the result so far at the output's size."""
    content, style = pngs
    path = os.path.join(model_dir, "1")
    # 48 px output from 24 px: 3 steps at 24 px, then 6 at 48 px.
    run = {sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: 9, "min_scale": 24,
           "steps_ratio": 2.0}  # fmt: skip
    whole, whole_again, first, half = session_runs(
        path,
        sig.STYLIZE_SIGNATURE,
        [run, {**run, sig.STOP_STEP: 9}, {**run, sig.STOP_STEP: 3}, {**run, sig.STOP_STEP: 6}],
    )
    assert whole[sig.RESUME_BYTES] == b"" and whole_again[sig.RESUME_BYTES] == b""
    np.testing.assert_array_equal(pixels(whole_again), pixels(whole))
    carried = images.decode_exact(first[sig.RESUME_BYTES], sig.RESUME_BYTES).numpy()
    assert carried.shape == (18, 24, 3)  # at the scale reached
    assert pixels(first).shape == pixels(whole).shape == (36, 48, 3)  # at the output's size
    assert half[sig.LOSS] > whole[sig.LOSS]  # both at 48 px: after 6 steps and after 9
    for part, start in ((first, 3), (half, 6)):  # at the scale boundary, and within a scale
        rest = session_run(
            path, sig.STYLIZE_SIGNATURE,
            {**run, sig.START_STEP: start, sig.RESUME_BYTES: part[sig.RESUME_BYTES]},
        )  # fmt: skip
        assert rest[sig.RESUME_BYTES] == b""
        carried = images.decode_exact(part[sig.RESUME_BYTES], sig.RESUME_BYTES).numpy()
        expected = api_image(content, style, 9 - start, init=carried, min_scale=48)
        # Within one level: the API resizes the image it starts from twice (to the first scale,
        # then to the scale's start), the part once, and a few L-BFGS steps on a random network
        # amplify any difference (1/65535 of noise in the carried image moves pixels by 20).
        diff = np.abs(pixels(rest).astype(int) - expected.astype(int))
        assert diff.max() <= 1, diff.max()
        assert rest[sig.LOSS] == pytest.approx(whole[sig.LOSS], rel=0.1)


def test_parts_carry_the_image_bit_for_bit(model_dir, pngs):
    """A part of no steps from a part's ``resume_bytes`` is at exactly the image that part
    reached: the same objective to the last bit and the same ``resume_bytes`` (a rounded carry,
    such as a 16-bit PNG, moves the objective); an ordinary image is taken as well."""
    content, style = pngs
    path = os.path.join(model_dir, "1")
    run = {sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: 6, "min_scale": 48}
    first = session_run(path, sig.STYLIZE_SIGNATURE, {**run, sig.STOP_STEP: 3})
    resume = first[sig.RESUME_BYTES]
    reached = images.decode_exact(resume, sig.RESUME_BYTES)
    rounded = tf.io.encode_png(tf.cast(tf.round(reached * 65535.0), tf.uint16)).numpy()
    zero_steps = {**run, sig.START_STEP: 3, sig.STOP_STEP: 3}
    again, from_png = session_runs(
        path,
        sig.STYLIZE_SIGNATURE,
        [{**zero_steps, sig.RESUME_BYTES: r} for r in (resume, rounded)],
    )
    assert again[sig.LOSS] == first[sig.LOSS]
    assert again[sig.RESUME_BYTES] == resume
    assert from_png[sig.LOSS] != first[sig.LOSS]
    assert from_png[sig.LOSS] == pytest.approx(first[sig.LOSS], rel=1e-3)


@pytest.mark.parametrize(
    "feeds, message",
    [
        ({sig.ITERATIONS: -1}, "iterations must be between 0 and"),
        ({sig.ITERATIONS: export.DEFAULT_MAX_ITERATIONS + 1}, "iterations must be between 0 and"),
        ({sig.CONTENT: b"not an image"}, "content: not a PNG, JPEG, GIF or BMP image"),
        ({sig.STYLE: b"\x89PNG broken"}, "style: not a readable image"),
        ({sig.CONTENT: png_bytes(np.zeros((1, 9000, 3)))}, "content: each side must be between"),
        ({sig.ITERATIONS: 2**31 - 1}, "iterations must be between 0 and 5000"),
        ({"seed": -1}, "seed must be between 0 and 2147483647"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number > 0"),
        ({"size": 8}, "size must be between 16 and 1024"),
        ({"init": "contnt"}, "init must be one of"),
        ({"style_weight": -1.0}, "style_weight must be a finite number >= 0"),
        (
            {"style_weight": 1e38},
            r"the objective or its gradient became inf at step 0 of 1: the loss weights",
        ),
        ({"style_scale": 0.0}, "style_scale must be a finite number > 0 and <= 16"),
        ({"size": 300, "style_scale": 15.0}, "the longer side of the style images would be 4500"),
        ({sig.START_STEP: 2}, r"start_step must be between 0 and iterations \(1\); got 2"),
        ({sig.START_STEP: -1}, r"start_step must be between 0 and iterations \(1\); got -1"),
        ({sig.STOP_STEP: 5}, r"stop_step must be -1 \(the end\) or between start_step \(0\)"),
        ({sig.STOP_STEP: -5}, r"stop_step must be -1 \(the end\) or between .* got -5"),
        (
            {sig.ITERATIONS: 4, sig.START_STEP: 3, sig.STOP_STEP: 2, sig.RESUME_BYTES: b"x"},
            r"stop_step must be -1 \(the end\) or between start_step \(3\) and iterations \(4\); "
            "got 2",
        ),
        ({sig.START_STEP: 1}, "resume_bytes: a part starting at step 1 needs the resume_bytes"),
        ({sig.START_STEP: 1, sig.RESUME_BYTES: b"junk"}, "resume_bytes: not a PNG, JPEG, GIF"),
        (
            {sig.START_STEP: 1, sig.RESUME_BYTES: images.EXACT_PREFIX + b"\x89PNG junk"},
            r"resume_bytes: not an exact image \(what this model returns as resume_bytes\): its "
            "header declares",
        ),
        (
            {
                sig.START_STEP: 1,
                sig.RESUME_BYTES: images.EXACT_PREFIX + png_bytes(np.ones((4, 8, 3))),
            },
            "resume_bytes: not an exact image .*: its values are not all numbers in",
        ),
        # A resume image is never larger than the export's max_size (1024): its sides are
        # refused from the header, before its pixels take memory (issue 29).
        (
            {
                sig.START_STEP: 1,
                sig.RESUME_BYTES: images.EXACT_PREFIX
                + tf.io.encode_png(tf.zeros([8, 2 * 1025, 3], tf.uint16)).numpy(),
            },
            r"resume_bytes: not an exact image .*: its header declares 2050x8 px \(each side at "
            r"most 1024\)",
        ),
        (
            {sig.START_STEP: 1, sig.RESUME_BYTES: png_bytes(np.zeros((1, 1025, 3)))},
            "resume_bytes: each side must be between 1 and 1024 px; got 1025x1",
        ),
        # Masks (the content is 64 x 48, the style 64 x 64), checked as the API checks them.
        (
            {sig.MASK: png_bytes(np.ones((64, 64, 3)))},
            # (the Assert op escapes the quote: checks.message_of takes the escape away)
            r"mask: a 64x64 mask for a 64x48 content image; a mask must have the content\\'s "
            r"aspect ratio \(within 2%; any resolution\)",
        ),
        (
            {sig.CONTENT_MASK: png_bytes(np.zeros((24, 32, 3)))},
            "content_mask: the mask is black everywhere",
        ),
        (
            {sig.STYLE_MASK: png_bytes(np.ones((48, 64, 3)))},
            "style_mask: a 64x48 mask for a 64x64 style image",
        ),
        ({sig.MASK: b"not an image"}, "mask: not a PNG, JPEG, GIF or BMP image"),
    ],
)
def test_bad_inputs_fail_inside_the_graph(loaded, pngs, feeds, message):
    content, style = pngs
    full = {sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: 1, **feeds}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded(sig.STYLIZE_SIGNATURE, full)


def test_too_small_and_too_large_images(model_dir, pngs):
    path = os.path.join(model_dir, "1")
    thin = png_bytes(np.zeros((2, 64, 3), np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match="shorter side must be at least 16"):
        session_run(
            path, sig.DEFAULT_SIGNATURE, {sig.CONTENT: thin, sig.STYLE: pngs[1], sig.ITERATIONS: 1}
        )
    huge = io.BytesIO()
    PIL.Image.new("L", (8193, 1)).save(huge, format="PNG")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="each side must be between 1 and 8192 px; got 8193x1"
    ):
        session_run(
            path,
            sig.DEFAULT_SIGNATURE,
            {sig.CONTENT: pngs[0], sig.STYLE: huge.getvalue(), sig.ITERATIONS: 1},
        )


@pytest.mark.parametrize(
    "fmt", ["JPEG", "GIF", "BMP", "PNG-RGBA", "PNG-16", "PNG-1", "PNG-LA", "PNG-P-alpha"]
)
def test_decoder_matches_pil(fmt):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    if fmt in ("PNG-1", "PNG-LA", "PNG-P-alpha"):  # bilevel; gray + alpha; palette + tRNS
        rgba = PIL.Image.fromarray(rng.integers(0, 255, (9, 7, 4), dtype=np.uint8))
        mode = {"PNG-1": "1", "PNG-LA": "LA", "PNG-P-alpha": "PA"}[fmt]
        image = rgba.convert(mode) if mode != "PA" else rgba.convert("P")
        if mode == "PA":
            image.info["transparency"] = 0
        image.save(buf, "PNG", **({"transparency": 0} if mode == "PA" else {}))
        buf.seek(0)
        pixels = np.asarray(PIL.Image.open(buf).convert("RGBA")) / 255.0
        expected = pixels[..., :3] * pixels[..., 3:] + (1 - pixels[..., 3:])  # over white
    elif fmt == "PNG-16":
        pixels = rng.integers(0, 65535, (9, 7), dtype=np.uint16)
        PIL.Image.fromarray(pixels).save(buf, "PNG")
        expected = np.repeat(pixels[..., None] / 65535.0, 3, axis=-1)
    elif fmt == "PNG-RGBA":
        pixels = rng.integers(0, 255, (9, 7, 4), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(buf, "PNG")
        rgb, alpha = pixels[..., :3] / 255.0, pixels[..., 3:] / 255.0
        expected = rgb * alpha + (1 - alpha)  # over white
    else:
        PIL.Image.fromarray(rng.integers(0, 255, (9, 7, 3), dtype=np.uint8)).save(buf, fmt)
        buf.seek(0)
        expected = np.asarray(PIL.Image.open(buf).convert("RGB")) / 255.0
    data = buf.getvalue()
    got = images.decode(tf.constant(data), "content").numpy()
    assert got.shape == (9, 7, 3)
    np.testing.assert_allclose(got, expected, atol=4 / 255 if fmt == "JPEG" else 1e-6)
    # The Python loader runs the same decoder: the API and a served model see the same pixels.
    np.testing.assert_array_equal(images.load_image(data), got)


#: One export for the paths the shared one does not take (issue 24's tiles, the Adam optimiser):
#: Adam in 32 px tiles of a 48 x 64 image, with shallow layers (small halos).
ADAM_TILED = {"size": 64, "weights": None, "seed": 0, "optimizer": "adam", "tile_size": 32,
              "content_layers": ("block2_conv2",),
              "style_layers": ("block1_conv1", "block2_conv1", "block3_conv1")}  # fmt: skip


@pytest.fixture(scope="module")
def adam_tiled_model(tmp_path_factory):
    base = tmp_path_factory.mktemp("saved") / "adam-tiled"
    return tfstyle.export_saved_model(base, warmup=False, **ADAM_TILED)


@pytest.fixture(scope="module")
def api_pipelines():
    """The API's own pipelines (``pipeline._PIPELINES``) for this module's comparisons: traced
    by the API, not by the exports made in this process (as a user's, who exported elsewhere;
    those of the first call's sizes were once 1 level off), and kept between its tests."""
    return {}


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_served_image_is_the_api_image_for_every_init(
    model_dir, request, pngs, optimizer, api_pipelines, monkeypatch
):
    """Every init, with and without the content's colours (L-BFGS: each init both ways), for
    both optimisers (Adam's export in tiles: its steps are the tiled ones, the scale's size known
    only when the graph runs; each init once, the colours kept for every other one: the colours
    are kept after the optimiser, whichever it is)."""
    if optimizer == "lbfgs":
        path, exported = os.path.join(model_dir, "1"), {}
        pairs = [(init, keep) for init in options.INITS for keep in (False, True)]
    else:
        path, exported = request.getfixturevalue("adam_tiled_model"), ADAM_TILED
        pairs = [(init, i % 2 == 1) for i, init in enumerate(options.INITS)]
    monkeypatch.setattr(pipeline, "_PIPELINES", api_pipelines)
    content, style = pngs
    cases = [
        {"init": init, "preserve_colors": keep, "style_weight": 1e3, "seed": 7}
        for init, keep in pairs
    ]
    feeds = [{sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: 5, **c} for c in cases]
    served = session_runs(path, sig.STYLIZE_SIGNATURE, feeds)
    for case, out in zip(cases, served, strict=True):
        expected = api_image(content, style, 5, **{**exported, "optimizer": optimizer, **case})
        np.testing.assert_array_equal(pixels(out), expected, err_msg=str(case))
    # The cases differ from each other: the comparison is not between constant images.
    assert len({pixels(out).tobytes() for out in served}) == len(cases)


def test_served_tiled_model_equals_the_api(adam_tiled_model, pngs, api_pipelines, monkeypatch):
    """The exported graph takes the same tiled steps (its scale sizes known only when it runs).
    Through stylize with the export's options as its defaults (the same graph as serving_default:
    test_stylize_defaults_are_the_export_options); one signature of this export, not two, is
    prepared for its first request (seconds for a tiled graph)."""
    monkeypatch.setattr(pipeline, "_PIPELINES", api_pipelines)
    with open(os.path.join(adam_tiled_model, sig.METADATA_FILE)) as f:
        meta = json.load(f)
    assert meta["options"]["tile_size"] == 32 and meta["options"]["optimizer"] == "adam"
    feeds = {sig.CONTENT: pngs[0], sig.STYLE: pngs[1], sig.ITERATIONS: 4}
    served = pixels(session_run(adam_tiled_model, sig.STYLIZE_SIGNATURE, feeds))
    expected = api_image(*pngs, 4, **ADAM_TILED)
    assert served.shape == (48, 64, 3)  # above the tiles: tiled, 4 crops a step
    np.testing.assert_array_equal(served, expected)


def test_a_bad_base_is_one_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="model_dir: .*/m' is under .*/file', not a "):
        tfstyle.export_saved_model(tmp_path / "file" / "m", size=32, weights=None)
    with pytest.raises(NotADirectoryError, match="^model_dir: .*/file' is not a directory$"):
        tfstyle.export_saved_model(tmp_path / "file", size=32, weights=None)  # said "File exists"
    with pytest.raises(ValueError, match="unknown export option"):  # fails before any writing
        tfstyle.export_saved_model(tmp_path / "new", sise=32, weights=None)
    assert not (tmp_path / "new").exists()


def test_export_with_a_weights_file_avg_pooling_and_the_wasserstein_loss(tmp_path, pngs):
    # One export for several paths: a weights file read into the graph, VGG16 with average
    # pooling, L-BFGS from the style's mean, and the Wasserstein loss (two style layers: each a
    # matrix square root in the graph).
    weights = tmp_path / "vgg16.weights.h5"
    network = keras.applications.VGG16(include_top=False, weights=None)
    network.save_weights(weights)
    layers = {"content_layers": ["block2_conv1"], "style_layers": ["block1_conv1", "block2_conv1"]}
    options = {"size": 32, "weights": str(weights), "backbone": "vgg16", "pooling": "avg",
               "optimizer": "lbfgs", "init": "style-mean", "seed": 5, "style_loss": "wasserstein",
               **layers}  # fmt: skip
    path = tfstyle.export_saved_model(tmp_path / "m", version=7, warmup=False, **options)
    assert path.endswith(os.path.join("m", "7"))
    assert os.listdir(tmp_path / "m") == ["7"]  # renamed into place: nothing left beside it
    content, style = pngs
    feeds = {sig.CONTENT: content, sig.STYLE: style, sig.ITERATIONS: 3}
    out = session_run(path, sig.DEFAULT_SIGNATURE, feeds)
    options.update(export.EXPORT_DEFAULTS)  # what the export ran: float32
    expected = np.asarray(tfstyle.transfer(content, style, iterations=3, progress=False, **options))
    assert pixels(out).shape == expected.shape == (24, 32, 3) and np.isfinite(out[sig.LOSS])
    # The matrix square root is not bit-reproducible between a graph and eager runs.
    assert np.abs(pixels(out).astype(int) - expected).max() <= 3
    # The weights file was read: every variable the model saved is one of the file's arrays
    # (the network's own seeded initialisation is another).
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    saved = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
             if k.startswith("weights/")]  # fmt: skip
    from_file = network.get_weights()
    assert len(saved) == 6  # block1_conv1, block1_conv2, block2_conv1: kernels and biases
    for array in saved:
        assert any(a.shape == array.shape and np.array_equal(a, array) for a in from_file)


def test_next_version_and_existing_version(model_dir):
    assert export._version_dir(model_dir, None).endswith(os.path.join("tfstyle", "2"))
    with pytest.raises(FileExistsError, match="already exists"):
        export._version_dir(model_dir, 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sise": 64}, "unknown export option"),
        ({"init": np.zeros((4, 4, 3))}, "init must be one of"),
        ({"size": 8}, "size must be between"),
        ({"max_iterations": 0}, "max_iterations must be between 1 and"),
        ({"size": 64, "max_size": 32}, "max_size must be between 64 and"),
        ({"version": 0}, "version must be between 1 and 9223372036854775807"),
        ({"precision": "auto"}, "precision: 'auto' is measured on the machine that runs"),
    ],
)
def test_bad_export_options(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tfstyle.export_saved_model(tmp_path / "m", **{"weights": None, **kwargs})
