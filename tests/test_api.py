"""tfstyle.transfer end to end on tiny images with the seeded random network (weights=None)."""

import numpy as np
import PIL.Image
import pytest

import tfstyle
from tfstyle import images

FAST = {"size": 64, "weights": None, "progress": False, "seed": 0}


def losses_at(content, style, **kwargs):
    """Loss terms of the image after the run, as reported to the callback."""
    seen = []
    image = tfstyle.transfer(
        content,
        style,
        callback=lambda *args: seen.append(args),
        callback_every=1000,
        **{**FAST, **kwargs},
    )
    return seen[-1][1], image


def chrominance(image) -> np.ndarray:
    return images.rgb_to_yiq(np.asarray(image, np.float32) / 255.0).numpy()[..., 1:]


def test_output_keeps_content_aspect(content_array, style_array):
    image = tfstyle.transfer(content_array, style_array, iterations=2, **FAST)
    assert isinstance(image, PIL.Image.Image) and image.mode == "RGB"
    assert image.size == (64, 48)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_optimisation_lowers_objective(content_array, style_array, optimizer):
    start, _ = losses_at(content_array, style_array, iterations=0, optimizer=optimizer)
    end, _ = losses_at(content_array, style_array, iterations=40, optimizer=optimizer)
    assert end["total"] < 0.3 * start["total"]
    assert end["style"] < start["style"]


def test_iterations_zero_returns_the_content(content_array, style_array):
    image = tfstyle.transfer(content_array, style_array, iterations=0, **FAST)
    expected = images.to_uint8(images.resize(content_array, 48, 64)).numpy()
    np.testing.assert_array_equal(np.asarray(image), expected)


@pytest.mark.parametrize("init", ["noise", "style-mean"])
def test_seed_makes_runs_repeatable(content_array, style_array, init):
    a = tfstyle.transfer(content_array, style_array, iterations=3, init=init, **FAST)
    b = tfstyle.transfer(content_array, style_array, iterations=3, init=init, **FAST)
    c = tfstyle.transfer(content_array, style_array, iterations=3, init=init, **{**FAST, "seed": 1})
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_inits_start_where_they_say(content_array, style_array):
    noise = np.asarray(
        tfstyle.transfer(content_array, style_array, iterations=0, init="noise", **FAST)
    )
    assert 100 < noise.mean() < 155 and noise.std() > 60  # uniform noise
    mean = np.asarray(
        tfstyle.transfer(content_array, style_array, iterations=0, init="style-mean", **FAST)
    )
    style_mean = images.resize_longer_side(style_array, 64).numpy().mean(axis=(0, 1)) * 255
    np.testing.assert_allclose(mean.mean(axis=(0, 1)), style_mean, atol=3)
    assert mean.std(axis=(0, 1)).max() < 0.1 * 255
    given = np.asarray(
        tfstyle.transfer(content_array, style_array, iterations=0, init=style_array, **FAST)
    )
    expected = images.to_uint8(images.resize(style_array, 48, 64)).numpy()
    np.testing.assert_array_equal(given, expected)


#: For each option of the table, a value other than the default (and, where the option only
#: acts together with another, the base run it is compared with).
CHANGES = {
    "size": ({"size": 48}, {}),
    "iterations": ({"iterations": 4}, {}),
    "style_scale": ({"style_scale": 0.5}, {}),
    "min_scale": ({"min_scale": 32}, {}),
    "scale_span": ({"scale_span": 1.0}, {"min_scale": 16}),  # one scale, not 16, 32, 64 px
    "scale_factor": ({"scale_factor": 4.0}, {"min_scale": 16, "iterations": 6}),
    "steps_ratio": ({"steps_ratio": 2.0}, {"min_scale": 32}),
    "shared_iterations": ({"shared_iterations": 1}, {"min_scale": 32}),  # 1 + 2 steps, not 2 + 1
    "average_decay": ({"average_decay": 0.9}, {}),
    "content_weight": ({"content_weight": 100.0}, {}),
    "style_weight": ({"style_weight": 1e6}, {}),
    "tv_weight": ({"tv_weight": 1e5}, {}),
    "optimizer": ({"optimizer": "adam"}, {}),
    "learning_rate": ({"learning_rate": 0.3}, {}),
    "init": ({"init": "noise"}, {}),
    "seed": ({"init": "noise", "seed": 1}, {"init": "noise"}),
    "weights": ({"weights": "WEIGHTS_FILE"}, {}),
    "backbone": ({"backbone": "vgg16"}, {}),
    "pooling": ({"pooling": "avg"}, {}),
    "precision": ({"precision": "bfloat16"}, {}),
    "content_layers": ({"content_layers": ["block3_conv2"]}, {}),
    "style_layers": ({"style_layers": ["block1_conv1", "block2_conv1"]}, {}),
    "style_layer_weights": ({"style_layer_weights": [1.0, 0.0, 0.0, 0.0, 0.0]}, {}),
    # Two small style layers: a 512-channel layer's matrix square root takes seconds to trace.
    "style_loss": (
        {"style_loss": "wasserstein"},
        {"style_layers": ["block1_conv1", "block2_conv1"]},
    ),
    "style_blend_weights": ({"style_blend_weights": [3.0, 1.0]}, {}),
    "masks": ({"masks": [np.repeat([[1.0] * 32 + [0.0] * 32], 48, axis=0)]}, {}),
    "style_masks": ({"style_masks": [np.repeat([[1.0]] * 32 + [[0.0]] * 32, 64, axis=1)]}, {}),
    "content_mask": ({"content_mask": np.repeat([[1.0] * 32 + [0.2] * 32], 48, axis=0)}, {}),
    "preserve_colors": ({"preserve_colors": True}, {}),
}
#: Options that must not change the pixels.
SAME = {
    "progress": {"progress": True},
    "callback": {"callback": lambda *args: None},
    "callback_every": {"callback": lambda *args: None, "callback_every": 1},
}
BASE = {**FAST, "iterations": 3, "precision": "float32"}


def test_every_option_is_covered_below():
    from tfstyle import options

    # tests/test_tiles.py: the same pixels to a level; tests/test_realtime.py: a trained network
    tested_elsewhere = {"tile_size", "model"}
    assert set(CHANGES) | set(SAME) | tested_elsewhere == set(options.BY_NAME)


@pytest.fixture(scope="module")
def vgg19_weights_file(tmp_path_factory):
    import keras

    path = tmp_path_factory.mktemp("weights") / "vgg19.weights.h5"
    keras.utils.set_random_seed(5)
    keras.applications.VGG19(include_top=False, weights=None).save_weights(path)
    return str(path)


_REFERENCES: dict = {}


def _reference(content, style, kwargs):
    """``_run`` of the options the tests compare with, run once per set of options (the seeded
    test images are the same in every test)."""
    key = (content.tobytes(), style.tobytes(), repr(sorted(kwargs.items())))
    if key not in _REFERENCES:
        _REFERENCES[key] = _run(content, style, kwargs)
    return _REFERENCES[key]


def _run(content, style, kwargs):
    styles = [style, np.ascontiguousarray(style[::-1])] if "two_styles" in kwargs else style
    kwargs = {k: v for k, v in kwargs.items() if k != "two_styles"}
    return np.asarray(tfstyle.transfer(content, styles, **kwargs))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CHANGES))
def test_each_option_changes_the_result(content_array, style_array, vgg19_weights_file, name):
    changed, base = CHANGES[name]
    changed = {
        k: vgg19_weights_file if isinstance(v, str) and v == "WEIGHTS_FILE" else v
        for k, v in changed.items()
    }
    if name == "style_blend_weights":
        base = {**base, "two_styles": True}
    reference = _reference(content_array, style_array, {**BASE, **base})
    result = _run(content_array, style_array, {**BASE, **base, **changed})
    assert result.shape != reference.shape or np.abs(result.astype(int) - reference).max() > 0
    # The same options again give the same pixels: the difference is the option's doing.
    again = _run(content_array, style_array, {**BASE, **base, **changed})
    if name == "style_loss":  # not bit-reproducible on CPU (see the option's help): nearly
        assert np.abs(result.astype(int) - again).max() <= 3
        assert np.abs(result.astype(int) - reference).max() > 10
    else:
        np.testing.assert_array_equal(result, again)


@pytest.mark.parametrize("name", list(SAME))
def test_options_that_must_not_change_the_pixels(content_array, style_array, name):
    reference = _reference(content_array, style_array, BASE)
    np.testing.assert_array_equal(
        _run(content_array, style_array, {**BASE, **SAME[name]}), reference
    )


def test_style_blend(content_array, style_array, image_files):
    other = np.ascontiguousarray(style_array[::-1, ::-1])
    one = tfstyle.transfer(content_array, style_array, iterations=3, **FAST)
    blend_all_first = tfstyle.transfer(
        content_array, [style_array, other], iterations=3, style_blend_weights=[2.0, 0.0], **FAST
    )
    np.testing.assert_allclose(np.asarray(one), np.asarray(blend_all_first), atol=1)
    even = tfstyle.transfer(content_array, [style_array, other], iterations=3, **FAST)
    assert not np.array_equal(np.asarray(one), np.asarray(even))


@pytest.mark.slow
def test_preserve_colors_keeps_content_chrominance(content_array, style_array):
    kwargs = dict(iterations=20, style_weight=1e6)
    plain = tfstyle.transfer(content_array, style_array, **FAST, **kwargs)
    kept = tfstyle.transfer(content_array, style_array, preserve_colors=True, **FAST, **kwargs)
    content = images.to_uint8(images.resize(content_array, 48, 64)).numpy()
    drift_plain = np.abs(chrominance(plain) - chrominance(content)).mean()
    drift_kept = np.abs(chrominance(kept) - chrominance(content)).mean()
    assert drift_kept < 0.01 < drift_plain
    # The luminance is the stylised one, not the content's.
    lum = images.rgb_to_yiq(np.asarray(kept, np.float32) / 255).numpy()[..., 0]
    lum_plain = images.rgb_to_yiq(np.asarray(plain, np.float32) / 255).numpy()[..., 0]
    assert np.abs(lum - lum_plain).mean() < 0.02


def test_callback_schedule_and_payload(content_array, style_array):
    calls = []
    tfstyle.transfer(
        content_array,
        style_array,
        iterations=25,
        callback_every=10,
        callback=lambda *args: calls.append(args),
        **FAST,
    )
    assert [c[0] for c in calls] == [10, 20, 25]
    step, losses, image = calls[-1]
    assert set(losses) == {"total", "content", "style", "tv", "scale"}
    assert losses["scale"] == 64  # one scale: min_scale is above size
    assert all(isinstance(losses[k], float) for k in ("total", "content", "style", "tv"))
    assert image.dtype == np.float32 and image.shape == (48, 64, 3)
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_progress_bar_shows_loss(content_array, style_array, capsys):
    tfstyle.transfer(content_array, style_array, iterations=2, **{**FAST, "progress": True})
    err = capsys.readouterr().err
    assert "2/2" in err and "loss=" in err


def test_paths_and_bytes(image_files):
    content, style = image_files
    with open(style, "rb") as f:
        image = tfstyle.transfer(content, f.read(), iterations=1, **FAST)
    assert image.size == (64, 48)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"size": 8}, ValueError, "size must be between 16 and 4096; got 8"),
        ({"size": 10**6}, ValueError, "size must be between"),
        ({"size": 64.5}, ValueError, "size must be an integer"),
        ({"iterations": -1}, ValueError, "iterations must be between 0 and 2147483647; got -1"),
        ({"optimizer": "sgd"}, ValueError, "optimizer must be one of 'adam', 'lbfgs'; got 'sgd'"),
        ({"init": "contnt"}, ValueError, "init must be one of .* or an image; got 'contnt'"),
        ({"init": "image"}, ValueError, "init must be one of .* or an image; got 'image'"),
        ({"init": 3}, ValueError, "init must be one of .* or an image; got int"),
        ({"init": b"junk"}, ValueError, "init: the bytes given are not an encoded image"),
        ({"iterations": 2**31}, ValueError, "iterations must be between 0 and 2147483647"),
        ({"style_weight": 1e300}, ValueError, "style_weight must be a finite number >= 0"),
        ({"pooling": "min"}, ValueError, "pooling must be one of"),
        ({"backbone": "vgg11"}, ValueError, "backbone must be one of"),
        ({"precision": "fp8"}, ValueError, "precision must be one of 'auto', 'float32'"),
        ({"content_layers": ["nope"]}, ValueError, "content_layers: unknown layer 'nope'"),
        ({"style_layer_weights": [1.0]}, ValueError, "one weight per style layer"),
        ({"style_weight": -1.0}, ValueError, "style_weight must be a finite number >= 0"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate must be a finite number > 0"),
        ({"seed": -3}, ValueError, "seed must be between 0 and 2147483647; got -3"),
        ({"style_scale": 0.0}, ValueError, "style_scale must be a finite number > 0 and <= 16"),
        ({"style_scale": 17}, ValueError, "style_scale must be a finite number > 0 and <= 16"),
        (
            {"style_scale": 0.1},
            ValueError,
            "style_scale: the longer side of the style images would be 6 px",
        ),
        (
            {"style_scale": 16, "size": 300},
            ValueError,
            r"would be 4800 px \(style_scale 16 x 300 px\); it must be between 16 and 4096",
        ),
        ({"callback_every": 0}, ValueError, "callback_every must be >= 1"),
        ({"style_blend_weights": [1.0, 2.0]}, ValueError, "style_blend_weights must be 1"),
        ({"weights": "/no/such/weights.h5"}, FileNotFoundError, "weights: no such file"),
        ({"weights": 3}, ValueError, "weights must be 'imagenet', None or a path"),
    ],
)
def test_bad_options(content_array, style_array, kwargs, error, match):
    with pytest.raises(error, match=match):
        tfstyle.transfer(content_array, style_array, **{**FAST, "iterations": 1, **kwargs})


def test_style_scale_sets_the_style_size_for_the_targets(content_array, style_array):
    from tfstyle import options, pipeline

    opts = options.Options(**{**BASE, "size": 48})
    pipe = pipeline.get(opts)

    def grams(style_scale):
        request = pipeline.request_tensors(opts.replace(style_scale=style_scale), 0)
        return pipe.start(
            content_array, [style_array], [1.0], request, 48, content_array
        ).targets.style

    # 1 is the behaviour before the option: the style resized to the output's longer side.
    style = images.resize_longer_side(style_array, 48)
    expected = pipe.objective.targets(images.resize_longer_side(content_array, 48), [style], [1.0])
    for got, want in zip(grams(1.0), expected.style, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(grams(0.5), expected.style, strict=True):
        assert not np.allclose(got, want, rtol=0.05)  # a 24 px style: other statistics
    half = images.resize_longer_side(style_array, 24)
    for got, want in zip(
        grams(0.5), pipe.objective.targets(style, [half], [1.0]).style, strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5)


def test_too_thin_content_is_refused(style_array):
    with pytest.raises(ValueError, match="shorter side must be at least 16"):
        tfstyle.transfer(np.zeros((4, 200, 3), np.uint8), style_array, iterations=1, **FAST)


def test_missing_content_file(style_array, tmp_path):
    with pytest.raises(FileNotFoundError, match="content: no such file"):
        tfstyle.transfer(tmp_path / "x.png", style_array, **FAST)


def test_empty_style_list(content_array):
    with pytest.raises(ValueError, match="non-empty list"):
        tfstyle.transfer(content_array, [], **FAST)


def test_transfer_signature_is_the_options_table():
    """``transfer``'s keyword parameters, written out in its source, are the table's options
    with the table's defaults, in its order; a function whose parameters differ is refused."""
    import inspect

    from tfstyle import options

    params = inspect.signature(tfstyle.transfer).parameters
    assert list(params)[:2] == ["content", "style"]
    keywords = [p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert [(p.name, p.default) for p in keywords] == [(o.name, o.default) for o in options.OPTIONS]
    assert "Defaults to 512." in tfstyle.transfer.__doc__  # the table's Args lines filled in

    def wrong(content, *, size=256):
        """{options}"""

    with pytest.raises(TypeError, match="differ from options.OPTIONS"):
        options.documented(wrong)
