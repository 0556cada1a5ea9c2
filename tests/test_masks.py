"""Where the style goes (issue 25): guided Gram matrices per region, a content weight map, style
masks, on the whole image and in tiles."""

import json

import numpy as np
import pytest
import tensorflow as tf
from helpers import smooth_image

import tfstyle
from tfstyle import losses, masks, options, pipeline, tiles
from tfstyle.pipeline import LossWeights

SHALLOW = {"content_layers": ("block2_conv2",),
           "style_layers": ("block1_conv1", "block2_conv1", "block3_conv1")}  # fmt: skip
RUN = {"size": 64, "iterations": 4, "weights": None, "seed": 0, "progress": False,
       "precision": "float32"}  # fmt: skip


def _left(height, width, value=1.0, other=0.0):
    mask = np.full((height, width), other, np.float32)
    mask[:, : width // 2] = value
    return mask


def test_guided_gram_loss_is_the_papers_formula():
    """Against a NumPy transcription: ``G = (F m)^T (F m)``, ``E = ||G / M_m - A / M||^2 / 4N^2``
    with ``M_m = sum m^2``, a soft mask."""
    rng = np.random.default_rng(0)
    f = rng.random((1, 5, 7, 4)).astype(np.float32)
    m = rng.random((1, 5, 7, 1)).astype(np.float32)
    a = rng.random((4, 4)).astype(np.float32)
    fm = (f * m).reshape(-1, 4).astype(np.float64)
    area, positions = float((m.astype(np.float64) ** 2).sum()), 35.0
    expected = ((fm.T @ fm / area - a / positions) ** 2).sum() / (4 * 4**2)
    target = losses.region_gram_target(tf.constant(a), tf.constant(m))
    got = losses.guided_layer_style_loss(tf.constant(f), tf.constant(m), target)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # A mask of ones: the same floats as the loss without a mask.
    ones = tf.ones((1, 5, 7, 1))
    plain = losses.layer_style_loss(tf.constant(f), tf.constant(a))
    assert float(losses.guided_layer_style_loss(
        tf.constant(f), ones, losses.region_gram_target(tf.constant(a), ones)
    )) == float(plain)  # fmt: skip
    # The weighted moments are the same sums.
    w = m.reshape(-1, 1).astype(np.float64) ** 2
    flat = f.reshape(-1, 4).astype(np.float64)
    count, s1, s2 = (np.asarray(x) for x in losses.weighted_moments(f, m))
    np.testing.assert_allclose(count, w.sum(), rtol=1e-6)
    np.testing.assert_allclose(s1, (w * flat).sum(0), rtol=1e-5)
    np.testing.assert_allclose(s2, flat.T @ (w * flat), rtol=1e-5)


@pytest.mark.parametrize("height, width", [(64, 64), (97, 83)])
def test_layer_maps_have_each_layers_shape_and_average_the_pixels(height, width):
    opts = options.Options(weights=None, precision="float32")
    extractor = pipeline.get(opts).extractor
    layers = opts.style_layers
    feats = extractor(tf.zeros((1, height, width, 3)))
    mask = _left(height, width)[..., None]
    maps = masks.layer_maps(
        tf.constant(mask), height, width, [tiles.layer_stride(n) for n in layers]
    )
    for name, layer_map in zip(layers, maps, strict=True):
        assert layer_map.shape[1:3] == feats[name].shape[1:3], name
        assert float(tf.reduce_min(layer_map)) >= 0 and float(tf.reduce_max(layer_map)) <= 1
    # Averages: the left half's share survives every halving (the top-left position is white).
    assert float(maps[-1][0, 0, 0, 0]) == 1.0 and float(maps[-1][0, 0, -1, 0]) == 0.0
    np.testing.assert_allclose(float(tf.reduce_mean(maps[0])), mask.mean(), atol=0.02)


@pytest.mark.parametrize("scales", [{}, {"size": 64, "min_scale": 16}])
def test_a_mask_of_ones_is_todays_run_exactly(content_array, style_array, scales):
    """Masks of ones (regions, content map, style mask; at every scale of a ladder too) give
    the run without masks to the bit: what the served model computes when they are absent."""
    run = {**RUN, **scales}
    plain = np.asarray(tfstyle.transfer(content_array, style_array, **run))
    ones = np.ones(content_array.shape[:2], np.float32)
    style_ones = np.ones(style_array.shape[:2], np.float32)
    masked = tfstyle.transfer(content_array, style_array, masks=[ones], content_mask=ones,
                              style_masks=[style_ones], **run)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(masked), plain)


def _objective(**changes):
    opts = options.Options(weights=None, precision="float32", **SHALLOW, **changes)
    return pipeline.get(opts).objective


def _weights(objective, style=1e4):
    n = len(objective.style_layers)
    return LossWeights(tf.constant(1.0), tf.constant(style), tf.constant(10.0),
                       tf.constant([1.0 / n] * n))  # fmt: skip


def test_a_style_in_the_left_half_leaves_the_right_halfs_statistics_alone():
    """The gradient of a region's style loss with respect to each style layer's features is zero
    wherever its mask is: the right half's statistics are not pulled by that style (its pixels
    may still move, through the receptive fields that straddle the edge)."""
    objective = _objective()
    height, width = 48, 64
    content = tf.constant(smooth_image(0, height, width))
    style = tf.constant(smooth_image(1, 64, 64))
    left = tf.constant(_left(height, width)[..., None])
    targets = objective.targets(content, [style], [1.0], regions=[left])
    ((weight, maps),) = targets.regions
    feats = objective.extractor(tf.constant(smooth_image(2, height, width))[None])
    style_features = [feats[n] for n in objective.style_layers]
    with tf.GradientTape() as tape:
        tape.watch(style_features)
        loss = objective.style.guided_loss(
            style_features, maps, targets.style[0], _weights(objective).style_layers
        )
    grads = tape.gradient(loss, style_features)
    for name, grad, layer_map in zip(objective.style_layers, grads, maps, strict=True):
        outside = layer_map[0, :, :, 0] == 0
        inside = layer_map[0, :, :, 0] == 1
        assert float(tf.reduce_max(tf.abs(tf.boolean_mask(grad[0], outside)))) == 0.0, name
        assert float(tf.reduce_max(tf.abs(tf.boolean_mask(grad[0], inside)))) > 0.0, name
    assert float(weight) == 1.0


@pytest.mark.parametrize("style_loss", ["gram", "wasserstein"])
def test_tiled_regions_equal_the_whole_image(style_loss):
    """Two styles in soft regions, a content weight map and a style mask: the tiled objective
    and gradient equal the whole image's (odd sizes, edge tiles)."""
    objective = _objective(style_loss=style_loss)
    height, width, tile = 97, 83, 16
    content = tf.constant(smooth_image(0, height, width))
    styles = [tf.constant(smooth_image(1, 64, 64)), tf.constant(smooth_image(3, 56, 72))]
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None].repeat(height, 0)
    regions = [tf.constant(ramp), tf.constant(1 - ramp)]
    face = tf.constant(_left(height, width, 1.0, 0.3)[..., None])
    style_mask = tf.constant(_left(56, 72)[..., None])
    targets = objective.targets(content, styles, [0.7, 0.3], regions=regions,
                                content_mask=face, style_masks=[None, style_mask])  # fmt: skip
    weights = _weights(objective)
    image = tf.constant(smooth_image(2, height, width))[None]
    with tf.GradientTape() as tape:
        tape.watch(image)
        whole = objective(image, targets, weights)
    expected = tape.gradient(whole["total"], image)

    layers = objective.content_layers + objective.style_layers
    stride, halo = tiles.geometry(layers)
    strides, channels = tiles.layer_info(objective.extractor, layers)
    grid = tiles.layout_tensor(height, width, tile, stride, halo)
    terms, gradient = tiles.value_and_gradient(
        objective, image, targets, weights, grid, strides, channels
    )
    forward = tiles.value(objective, image, targets, weights, grid, strides, channels)
    for name in ("total", "content", "style", "tv"):
        assert float(terms[name]) == pytest.approx(float(whole[name]), rel=2e-5), name
        assert float(forward[name]) == pytest.approx(float(terms[name]), rel=1e-6), name
    scale = float(tf.reduce_max(tf.abs(expected)))
    # The Wasserstein loss's gradient amplifies float rounding through the matrix square roots
    # of covariances that a region makes nearly singular (block3_conv1: about 240 positions
    # in a half for 256 channels): 1.5-2.6e-4 of the largest here, 4e-5 without regions.
    tolerance = 5e-5 if style_loss == "gram" else 5e-4
    np.testing.assert_allclose(gradient, expected, rtol=0, atol=tolerance * scale)
    # The style image's statistics in tiles, from its region only, equal the whole image's.
    tiling = tiles.Tiling(objective.extractor, layers, "vgg19", tile)
    tiled_objective = pipeline.Objective(objective.extractor, objective.content_layers,
                                         objective.style_layers, style_loss, tiling)  # fmt: skip
    big_style = tf.constant(smooth_image(3, 97, 83))
    big_mask = tf.constant(_left(97, 83)[..., None])
    expected_stats = objective.style_targets([big_style], [1.0], [big_mask])
    tiled_stats = tiled_objective.style_targets([big_style], [1.0], [big_mask])
    for a, b in zip(tf.nest.flatten(expected_stats), tf.nest.flatten(tiled_stats), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * float(tf.reduce_max(tf.abs(a))))


def test_regions_put_each_style_where_its_mask_is(content_array, style_array):
    """Two styles split left and right: each half of the result is nearer (by the guided Gram
    loss of that half) to its own style than the other half's style makes it."""
    other = np.ascontiguousarray(style_array[::-1, ::-1] ** 3)
    left = _left(48, 64)
    run = {**RUN, "iterations": 8, "style_weight": 1e6}
    split = np.asarray(tfstyle.transfer(content_array, [style_array, other],
                                        masks=[left, 1 - left], **run))  # fmt: skip
    swapped = np.asarray(tfstyle.transfer(content_array, [style_array, other],
                                          masks=[1 - left, left], **run))  # fmt: skip
    objective = _objective()
    content = tf.constant(content_array)
    styles = [tf.constant(style_array), tf.constant(other)]
    targets = objective.targets(content, styles, [0.5, 0.5],
                                regions=[tf.constant(left[..., None])] * 2)  # fmt: skip

    def left_loss(image, k):
        feats = objective.extractor(tf.constant(image, tf.float32)[None] / 255.0)
        (_, maps) = targets.regions[0]
        return float(objective.style.guided_loss(
            [feats[n] for n in objective.style_layers], maps, targets.style[k],
            _weights(objective).style_layers,
        ))  # fmt: skip

    # The left half of ``split`` is painted with style 0, of ``swapped`` with style 1.
    assert left_loss(split, 0) < left_loss(swapped, 0)
    assert left_loss(swapped, 1) < left_loss(split, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"masks": [np.ones((64, 64))]}, "masks[0]: a 64x64 mask for a 64x48 content image"),
        ({"masks": [np.zeros((48, 64))]}, "masks[0]: the mask is black everywhere"),
        ({"masks": [np.ones((48, 64))] * 2}, "masks must have one mask per style image (1); got 2"),
        ({"masks": ["no-such.png"]}, "masks[0]: no such file: 'no-such.png'"),
        ({"masks": [3]}, "masks[0] must be an image"),
        ({"masks": [b"not an image"]}, "masks[0]"),
        ({"content_mask": np.zeros((48, 64))}, "content_mask: the mask is black everywhere"),
        ({"content_mask": np.ones((10, 64))}, "content_mask: a 64x10 mask"),
        (
            {"style_masks": [np.ones((32, 64))]},
            "style_masks[0]: a 64x32 mask for a 64x64 style image; a mask must have the style's",
        ),
        ({"style_masks": []}, "style_masks must be a list of images"),
    ],
)
def test_bad_masks_are_one_line_naming_them(content_array, style_array, kwargs, message):
    with pytest.raises(ValueError) as err:
        tfstyle.transfer(content_array, style_array, **RUN, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def _png(path, array):
    import PIL.Image

    PIL.Image.fromarray(np.asarray(array * 255, np.uint8)).save(path)
    return str(path)


def test_the_cli_takes_a_mask_per_style_and_names_a_bad_one(tmp_path, capsys, image_files):
    from tfstyle import cli

    content, style = image_files
    left = _left(24, 32)  # half the content's resolution: any resolution will do
    masks = [_png(tmp_path / "left.png", left), _png(tmp_path / "right.png", 1 - left)]
    face = _png(tmp_path / "face.png", _left(48, 64, 1.0, 0.3))
    out = tmp_path / "out.png"
    flags = ["--size", "64", "--iterations", "3", "--weights", "none", "--seed", "0", "-q",
             "--precision", "float32"]  # fmt: skip
    argv = ["transfer", content, style, style, "--mask", masks[0], "--mask", masks[1],
            "--content-mask", face, "-o", str(out), *flags]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    expected = tfstyle.transfer(content, [style, style], masks=masks, content_mask=face, size=64,
                                iterations=3, weights=None, seed=0, progress=False,
                                precision="float32")  # fmt: skip
    import PIL.Image

    np.testing.assert_array_equal(np.asarray(PIL.Image.open(out)), np.asarray(expected))
    # One mask for two styles: one line, exit 1, nothing written.
    bad = tmp_path / "bad.png"
    argv = ["transfer", content, style, style, "--mask", masks[0], "-o", str(bad), *flags]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.strip() == "tfstyle: error: masks must have one mask per style image (2); got 1"
    assert not bad.exists()
    # The output may not overwrite a mask.
    argv = ["transfer", content, style, "--mask", masks[0], "-o", masks[0], *flags]
    assert cli.main(argv) == 1 and "mask" not in capsys.readouterr().out
    assert PIL.Image.open(masks[0]).size == (32, 24)


def test_a_batch_takes_one_mask_for_every_input(tmp_path):
    pytest.importorskip("apache_beam")
    from tfstyle import batch

    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    for name, shape in (("a.png", (48, 64)), ("b.png", (24, 32)), ("tall.png", (64, 48))):
        _png(tmp_path / "in" / name, rng.random((*shape, 3)))
    style = _png(tmp_path / "style.png", rng.random((48, 48, 3)))
    mask = _png(tmp_path / "mask.png", _left(48, 64))
    options = dict(size=32, iterations=2, weights=None, seed=0, precision="float32")
    counts = batch.run(str(tmp_path / "in"), style, str(tmp_path / "out"), workers=1,
                       progress=False, masks=[mask], **options)  # fmt: skip
    assert (counts.done, counts.failed) == (2, 1)
    expected = tfstyle.transfer(str(tmp_path / "in" / "a.png"), style, masks=[mask],
                                progress=False, **options)  # fmt: skip
    import PIL.Image

    written = PIL.Image.open(tmp_path / "out" / "a.png.png")
    np.testing.assert_array_equal(np.asarray(written), np.asarray(expected))
    with open(tmp_path / "out" / "failed.jsonl") as f:
        (failure,) = [json.loads(line) for line in f]
    assert "tall.png" in failure["input"] and "masks[0]: a 64x48 mask" in failure["error"]


def test_a_batch_takes_each_inputs_own_masks_from_a_mask_dir(tmp_path):
    """``mask_dir``: an input's own masks by the naming rule (``batch_files.masks_for``), the
    run's masks where it has none; an input with masks for some styles only fails, named."""
    pytest.importorskip("apache_beam")
    import PIL.Image

    from tfstyle import batch, batch_files

    rng = np.random.default_rng(1)
    src, masks_dir = tmp_path / "in", tmp_path / "masks"
    for name in ("a.png", "sub/b.jpg", "c.png"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        _png(src / name, rng.random((48, 64, 3)))
    (masks_dir / "sub").mkdir(parents=True)
    own_a = _png(masks_dir / "a.png.mask1.png", _left(24, 32))
    own_b = _png(masks_dir / "sub" / "b.jpg.mask1.png", _left(48, 64, other=0.3))
    content_b = _png(masks_dir / "sub" / "b.jpg.content.png", _left(48, 64, 0.2, 1.0))
    style = _png(tmp_path / "style.png", rng.random((48, 48, 3)))
    run_mask = _png(tmp_path / "mask.png", _left(48, 64, 0.0, 1.0))  # the right half
    options = dict(size=32, iterations=3, weights=None, seed=0, precision="float32")
    counts = batch.run(str(src), style, str(tmp_path / "out"), workers=1, progress=False,
                       mask_dir=str(masks_dir), masks=[run_mask], **options)  # fmt: skip
    assert (counts.done, counts.failed) == (3, 0)
    for name, given in (("a.png", {"masks": [own_a]}),
                        ("sub/b.jpg", {"masks": [own_b], "content_mask": content_b}),
                        ("c.png", {"masks": [run_mask]})):  # fmt: skip
        expected = tfstyle.transfer(str(src / name), style, progress=False, **given, **options)
        written = PIL.Image.open(tmp_path / "out" / (name + ".png"))
        np.testing.assert_array_equal(np.asarray(written), np.asarray(expected), err_msg=name)
    # The masks change the result (the comparison is not between equal images).
    plain = tfstyle.transfer(str(src / "a.png"), style, progress=False, **options)
    assert not np.array_equal(np.asarray(plain), np.asarray(PIL.Image.open(
        tmp_path / "out" / "a.png.png")))  # fmt: skip

    # Masks for some of the styles only, or one mask twice: that input fails, named.
    root, path = str(src), str(src / "a.png")
    with pytest.raises(ValueError, match=r"a.png.mask1.png' is there but not .*a.png.mask2'"):
        batch_files.masks_for(path, root, str(masks_dir), 2)
    _png(masks_dir / "a.png.mask1.jpg", _left(24, 32))
    with pytest.raises(ValueError, match="are one mask twice: keep one"):
        batch_files.masks_for(path, root, str(masks_dir), 1)
    # Any case of the extension; a link to nothing is found (reading it then fails, named).
    (masks_dir / "a.png.mask1.jpg").rename(masks_dir / "c.png.mask1.JPG")
    (masks_dir / "c.png.content.png").symlink_to(tmp_path / "nowhere.png")
    own, content = batch_files.masks_for(str(src / "c.png"), root, str(masks_dir), 1)
    assert own == [str(masks_dir / "c.png.mask1.JPG")]
    assert content == str(masks_dir / "c.png.content.png")
    # A mask directory inside the inputs' would have its masks stylised as inputs.
    with pytest.raises(ValueError, match="mask_dir: .* is inside the input directory"):
        batch.run(str(tmp_path), style, str(tmp_path / "out2"), mask_dir=str(masks_dir),
                  **options)  # fmt: skip
    # A file given as the mask directory is said to be one, not "missing" (probe, issue 29).
    with pytest.raises(NotADirectoryError, match="mask_dir: .*c.png' is a file, not a directory"):
        batch.run(str(src), style, str(tmp_path / "out3"), mask_dir=str(src / "c.png"), **options)


def test_a_transparent_part_of_a_mask_is_black():
    """A mask drawn on a transparent layer selects what was drawn (an image's transparency is
    white); the API and the served model read it alike."""
    import io

    import PIL.Image

    from tfstyle import images

    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[:, :32] = 255  # opaque white on the left, transparent on the right
    buf = io.BytesIO()
    PIL.Image.fromarray(rgba).save(buf, format="PNG")
    mask = masks.load(buf.getvalue(), "masks[0]")
    assert mask[:, :32].min() == 1 and mask[:, 32:].max() == 0
    served = masks.decoded(tf.constant(buf.getvalue()), "mask", tf.zeros((48, 64, 3)))
    np.testing.assert_array_equal(served.numpy(), mask)
    np.testing.assert_array_equal(masks.load(rgba, "masks[0]"), mask)  # an array, the same
    assert images.load_image(buf.getvalue(), "content")[:, 32:].min() == 1  # an image: white
