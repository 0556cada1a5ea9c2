"""Exact tiled steps (issue 24): the objective and its gradient computed crop by crop equal the
whole image's, for both style losses, both backbones and poolings, odd sizes and edge tiles."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import smooth_image

from tfstyle import options, pipeline, tiles
from tfstyle.pipeline import LossWeights

SHALLOW = {"content_layers": ("block2_conv2",),
           "style_layers": ("block1_conv1", "block2_conv1", "block3_conv1")}  # fmt: skip


def test_geometry_of_vgg19():
    assert tiles.receptive_field("block5_conv1") == 156  # ../shared/DESIGN.md
    assert tiles.geometry(["block1_conv1", "block5_conv1"]) == (16, 80)
    assert tiles.geometry(["block3_conv1"]) == (4, 12)
    assert tiles.layer_stride("block4_pool") == 16 and tiles.layer_stride("block4_conv2") == 8


@pytest.mark.parametrize("height, width, tile", [(97, 83, 32), (64, 64, 64), (40, 150, 16)])
def test_layout_covers_every_position_once(height, width, tile):
    covered = np.zeros((height, width), int)
    for t in tiles.layout(height, width, tile, stride=8, halo=16):
        covered[t.top : t.bottom, t.left : t.right] += 1
        assert t.top % 8 == 0 and t.left % 8 == 0  # pooling windows align
        assert t.crop_top % 8 == 0 and t.crop_left % 8 == 0
        assert t.crop_top == max(0, t.top - 16) and t.crop_bottom == min(height, t.bottom + 16)
    assert (covered == 1).all()


def _compare(height, width, tile, **changes):
    opts = options.Options(weights=None, precision="float32", **changes)
    objective = pipeline.get(opts).objective
    content = tf.constant(smooth_image(0, height, width))
    style = tf.constant(smooth_image(1, 64, 64))
    image = tf.constant(smooth_image(2, height, width))[None]
    targets = objective.targets(content, [style], [1.0])
    n = len(objective.style_layers)
    weights = LossWeights(tf.constant(1.0), tf.constant(1e4), tf.constant(10.0),
                          tf.constant([1.0 / n] * n))  # fmt: skip
    with tf.GradientTape() as tape:
        tape.watch(image)
        whole = objective(image, targets, weights)
    expected = tape.gradient(whole["total"], image)

    layers = objective.content_layers + objective.style_layers
    stride, halo = tiles.geometry(layers, opts.backbone)
    layout = tiles.layout(height, width, tile, stride, halo)
    assert len(layout) > 1
    strides, channels = tiles.layer_info(objective.extractor, layers)
    grid = tiles.layout_tensor(height, width, tile, stride, halo)
    content_features = tiles.whole_features(
        objective.extractor, content[None], objective.content_layers, grid, strides, channels
    )
    for name, target in zip(objective.content_layers, targets.content, strict=True):
        np.testing.assert_allclose(content_features[name], target, rtol=1e-4,
                                   atol=1e-5 * float(tf.reduce_max(target)))  # fmt: skip
    tiled_targets = targets._replace(content=tuple(content_features.values()))
    terms, gradient = tiles.value_and_gradient(
        objective, image, tiled_targets, weights, grid, strides, channels
    )
    forward = tiles.value(objective, image, tiled_targets, weights, grid, strides, channels)
    for name in ("total", "content", "style", "tv"):
        assert float(terms[name]) == pytest.approx(float(whole[name]), rel=2e-5), name
        assert float(forward[name]) == pytest.approx(float(terms[name]), rel=1e-6), name
    scale = float(tf.reduce_max(tf.abs(expected)))
    np.testing.assert_allclose(gradient, expected, rtol=0, atol=5e-5 * scale)


@pytest.mark.parametrize(
    "height, width, tile, changes",
    [
        (96, 80, 32, {}),  # the default layers: 80 px halos
        (97, 83, 32, SHALLOW),  # odd sizes: the last row and column of tiles are short
        (70, 131, 32, {"backbone": "vgg16", "pooling": "avg"}),
        (97, 83, 16, {**SHALLOW, "style_loss": "wasserstein"}),
    ],
)
def test_tiled_objective_and_gradient_equal_the_whole_images(height, width, tile, changes):
    _compare(height, width, tile, **changes)


def test_tiled_step_in_a_graph_of_unknown_size():
    """The served graph knows a scale's size only when it runs: the same tiles, as ops."""
    opts = options.Options(weights=None, precision="float32", **SHALLOW)
    objective = pipeline.get(opts).objective
    layers = objective.content_layers + objective.style_layers
    stride, halo = tiles.geometry(layers)
    strides, channels = tiles.layer_info(objective.extractor, layers)
    style = tf.constant(smooth_image(1, 64, 64))
    n = len(objective.style_layers)
    weights = LossWeights(tf.constant(1.0), tf.constant(1e4), tf.constant(10.0),
                          tf.constant([1.0 / n] * n))  # fmt: skip

    def step(content, image):
        grid = tiles.layout_tensor(tf.shape(image)[1], tf.shape(image)[2], 32, stride, halo)
        whole = tiles.whole_features(
            objective.extractor, content, objective.content_layers, grid, strides, channels
        )
        targets = objective.targets(content[0], [style], [1.0])._replace(
            content=tuple(whole.values())
        )
        return tiles.value_and_gradient(objective, image, targets, weights, grid, strides, channels)

    spec = tf.TensorSpec([1, None, None, 3], tf.float32)
    graph = tf.function(step, input_signature=[spec, spec])
    for height, width in ((97, 83), (64, 120)):
        content = tf.constant(smooth_image(0, height, width))[None]
        image = tf.constant(smooth_image(2, height, width))[None]
        (terms, gradient), (eager_terms, eager_gradient) = (
            graph(content, image),
            step(content, image),
        )
        assert float(terms["total"]) == pytest.approx(float(eager_terms["total"]), rel=1e-5)
        scale = float(tf.reduce_max(tf.abs(eager_gradient)))
        np.testing.assert_allclose(gradient, eager_gradient, rtol=0, atol=1e-5 * scale)


def test_a_traced_step_of_known_size_builds_only_the_branch_it_takes():
    """A size known when traced (the API's scales) decides tiles or not in Python: the graph
    holds no tf.cond between the two (its branches ran 1.2x slower: benchmarks/README.md), and
    a served size (unknown) keeps the cond."""
    opts = options.Options(weights=None, precision="float32", tile_size=48, **SHALLOW)
    objective = pipeline.get(opts).objective
    style = tf.constant(smooth_image(1, 40, 40))  # below the tiles: never tiled
    n = len(objective.style_layers)
    weights = LossWeights(tf.constant(1.0), tf.constant(1e4), tf.constant(10.0),
                          tf.constant([1.0 / n] * n))  # fmt: skip

    def ops(spec):
        def step(image):
            targets = objective.targets(image[0], [style], [1.0])
            return objective.value_and_gradient(image, targets, weights)

        graph = tf.function(step).get_concrete_function(spec).graph
        return {op.type for op in graph.get_operations()}

    whole = ops(tf.TensorSpec([1, 40, 40, 3], tf.float32))
    assert not whole & {"If", "StatelessIf", "While", "StatelessWhile"}
    assert ops(tf.TensorSpec([1, 64, 64, 3], tf.float32)) & {"While", "StatelessWhile"}
    unknown = ops(tf.TensorSpec([1, None, None, 3], tf.float32))
    assert unknown & {"If", "StatelessIf"}


def test_a_tiled_run_traces_each_scale_at_its_size(content_array, style_array):
    """So that each scale's graph holds only the branch it takes (above), a tiled API run
    traces its steps once per scale, at the scale's size, not once generically."""
    import tfstyle

    run = {**RUN, "min_scale": 32, "iterations": 6, "tile_size": 32}  # at 32 px, then 64
    tfstyle.transfer(content_array, style_array, **run)
    advance = pipeline.get(options.Options(**run)).reporting.advance
    shapes = [tuple(f.inputs[0].shape) for f in advance._list_all_concrete_functions()]
    assert len(shapes) == len(set(shapes)) >= 2  # one trace per scale
    assert all(None not in shape for shape in shapes)
    assert max(shapes) == (1, 48, 64, 3)


RUN = {"size": 64, "iterations": 4, "weights": None, "seed": 0, "progress": False,
       "precision": "float32", **SHALLOW}  # fmt: skip


@pytest.fixture(scope="module")
def tiled_run():
    """``transfer`` of ``RUN`` in 32 px tiles, made once for the tests below: its image, and
    what it reported to ``tiles.listening``: ``(what, done, count)`` for each crop."""
    import tfstyle

    heard = []
    content, style = smooth_image(0, 48, 64), smooth_image(1, 64, 64)  # conftest's
    with tiles.listening(lambda done, count, what: heard.append((what, done, count))):
        image = np.asarray(tfstyle.transfer(content, style, tile_size=32, **RUN))
    return image, heard


def test_a_tiled_run_is_the_whole_image_run_to_a_level(content_array, style_array, tiled_run):
    """Four L-BFGS steps at 64 px in 32 px tiles (4 crops a step) against whole images: the
    steps agree to float rounding, which a few steps amplify to at most one level of 255."""
    import tfstyle

    whole = np.asarray(tfstyle.transfer(content_array, style_array, **RUN)).astype(int)
    tiled = tiled_run[0]
    assert tiled.shape == whole.shape == (48, 64, 3)
    assert np.abs(tiled.astype(int) - whole).max() <= 1


# The exported graph's tiled steps against transfer's: test_export.py's
# test_served_tiled_model_equals_the_api (one export there for the tiles and the Adam optimiser).


def test_the_memory_check_knows_tiles(monkeypatch):
    from tfstyle import memory

    gib = 2**30
    monkeypatch.setattr(memory, "available", lambda: 23.0 * gib)  # this machine
    with pytest.raises(ValueError, match="largest size that fits is about"):
        memory.check(4096, 4096, 4096, "float32")  # whole images: about 56 GiB
    # Tiled: a crop's network (2.4 GiB at 672 px) and the rest as measured at 4096 px.
    need = memory.tiled_estimate(4096, 4096, 672, "float32")
    assert 8 * gib < need < 12 * gib
    memory.check(4096, 4096, 4096, "float32", crop=672)
    monkeypatch.setattr(memory, "available", lambda: 8.0 * gib)
    with pytest.raises(ValueError, match=r"tiled in 672 px crops\), and 8.0 GiB .* about \d+ px"):
        memory.check(4096, 4096, 4096, "float32", crop=672)


def test_a_run_that_would_not_fit_whole_takes_tiles(
    monkeypatch, content_array, style_array, tiled_run
):
    """With ``tile_size`` unset, a run whose last scale would not fit on the whole image takes
    the steps in ``memory.AUTO_TILE_SIZE`` tiles: the run ``tile_size`` would have given."""
    import tfstyle
    from tfstyle import memory

    monkeypatch.setattr(memory, "AUTO_TILE_SIZE", 32)
    # The whole image does not fit; its tiles do.
    monkeypatch.setattr(memory, "fits", lambda height, width, precision, crop=None: bool(crop))
    stylizer = tfstyle.Stylizer(style_array, **RUN)
    assert stylizer.pipeline_for(content_array).objective.tiling.tile_size == 32
    auto = np.asarray(stylizer(content_array))
    np.testing.assert_array_equal(auto, tiled_run[0])
    monkeypatch.setattr(memory, "fits", lambda height, width, precision, crop=None: True)
    assert stylizer.pipeline_for(content_array).objective.tiling is None


def test_tiled_steps_report_their_crops(tiled_run):
    """transfer's graphs report each crop of each pass (its progress bar shows them); the
    exported graph, bit for bit the same steps (test_export.py), holds no such report."""
    heard = tiled_run[1]
    stride, halo = tiles.geometry(SHALLOW["content_layers"] + SHALLOW["style_layers"])
    count = len(tiles.layout(48, 64, 32, stride, halo))
    crops = [(done, count) for done in range(1, count + 1)]
    for what, passes in (("content features", 1), ("style sums", 4), ("gradients", 4),
                         ("value", 1)):  # fmt: skip
        assert [(d, n) for w, d, n in heard if w == what] == crops * passes, what
    assert heard[-1] == ("value", count, count)


def test_a_print_size_export_tiles_the_requests_above_1024_px():
    """An export with ``max_size`` above 1024 and ``tile_size`` unset tiles the requests above
    1024 px, so that the memory it records per request is bounded by a crop, not the image."""
    from tfstyle import export, features, memory

    assert export.tiling_for(None, 1024) is None  # a default export: whole images, as before
    assert export.tiling_for(None, 4096) == export.SERVED_TILE_SIZE == 1024
    assert export.tiling_for(256, 4096) == 256  # as set
    stride, halo = tiles.geometry(features.DEFAULT_CONTENT_LAYERS + features.DEFAULT_STYLE_LAYERS)
    crop = 1024 + 2 * halo
    assert (stride, crop) == (16, 1184)
    per_request = export.memory_metadata(4096, 1024, crop)["per_request"]
    assert per_request["1024"] == round(memory.served_per_request_gib(1024), 2)  # whole
    assert memory.served_per_request_gib(crop) < per_request["4096"]
    assert per_request["4096"] < memory.served_per_request_gib(4096) / 4  # whole: about 62 GiB
