"""The VGG multi-output extractor: layer names, shapes, truncation, preprocessing, weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfstyle import features


def test_returns_named_layers_with_expected_shapes():
    model = features.build_extractor(["block1_conv1", "block3_conv2"], weights=None)
    out = model(tf.zeros((2, 32, 48, 3)))
    assert set(out) == {"block1_conv1", "block3_conv2"}
    assert out["block1_conv1"].shape == (2, 32, 48, 64)
    assert out["block3_conv2"].shape == (2, 8, 12, 256)


@pytest.mark.parametrize(
    "backbone, deepest", [("vgg19", "block4_conv2"), ("vgg16", "block2_conv1")]
)
def test_stops_after_deepest_layer(backbone, deepest):
    model = features.build_extractor(["block1_conv1", deepest], backbone=backbone, weights=None)
    names = [layer.name for layer in model.layers]
    assert names[-1] == deepest
    assert not any(n.startswith("block5") for n in names)


def test_default_layers_stop_at_block5_conv1():
    layers = features.DEFAULT_CONTENT_LAYERS + features.DEFAULT_STYLE_LAYERS
    model = features.build_extractor(layers, weights=None)
    names = [layer.name for layer in model.layers]
    assert names[-1] == "block5_conv1" and "block5_conv2" not in names


def test_random_weights_are_seeded_and_reproducible_across_models():
    a = features.build_extractor(["block2_conv1"], weights=None)
    b = features.build_extractor(["block2_conv1"], backbone="vgg19", pooling="max", weights=None)
    assert a is b  # cached
    x = tf.random.stateless_uniform((1, 32, 32, 3), seed=(1, 2))
    kernel = a.get_layer("block1_conv1").get_weights()[0]
    # The same numbers a fresh process draws: He-normal from RANDOM_WEIGHTS_SEED.
    rng = np.random.default_rng(features.RANDOM_WEIGHTS_SEED)
    expected = rng.normal(0.0, np.sqrt(2.0 / 27), size=kernel.shape).astype(np.float32)
    np.testing.assert_array_equal(kernel, expected)
    np.testing.assert_array_equal(a(x)["block2_conv1"], b(x)["block2_conv1"])


def test_preprocessing_inside_matches_keras_vgg19_preprocess_input():
    model = features.build_extractor(["block1_conv1"], weights=None)
    x = tf.random.stateless_uniform((1, 16, 16, 3), seed=(3, 4))
    conv = model.get_layer("block1_conv1")
    expected = conv(keras.applications.vgg19.preprocess_input(x.numpy() * 255.0))
    np.testing.assert_allclose(model(x)["block1_conv1"], expected, rtol=1e-5, atol=1e-3)


def test_avg_pooling_swaps_pools_and_keeps_conv_weights():
    mx = features.build_extractor(["block2_conv1"], pooling="max", weights=None)
    avg = features.build_extractor(["block2_conv1"], pooling="avg", weights=None)
    kinds = {type(layer).__name__ for layer in avg.layers}
    assert "AveragePooling2D" in kinds and "MaxPooling2D" not in kinds
    np.testing.assert_array_equal(
        mx.get_layer("block2_conv1").get_weights()[0],
        avg.get_layer("block2_conv1").get_weights()[0],
    )
    x = tf.random.stateless_uniform((1, 16, 16, 3), seed=(5, 6))
    assert not np.allclose(mx(x)["block2_conv1"], avg(x)["block2_conv1"])


def test_weights_file_round_trip(tmp_path):
    vgg = keras.applications.VGG16(include_top=False, weights=None)
    path = tmp_path / "vgg16.weights.h5"
    vgg.save_weights(path)
    model = features.build_extractor(["block1_conv2"], backbone="vgg16", weights=str(path))
    np.testing.assert_array_equal(
        model.get_layer("block1_conv2").get_weights()[0],
        vgg.get_layer("block1_conv2").get_weights()[0],
    )


def test_weights_file_of_wrong_network_is_a_clear_error(tmp_path):
    path = tmp_path / "vgg16.weights.h5"
    keras.applications.VGG16(include_top=False, weights=None).save_weights(path)
    with pytest.raises(ValueError, match="does not fit vgg19"):
        features.build_extractor(["block1_conv1"], backbone="vgg19", weights=str(path))


def test_missing_weights_file():
    with pytest.raises(FileNotFoundError, match="weights: no such file"):
        features.build_extractor(["block1_conv1"], weights="/nonexistent/w.h5")


def test_imagenet_download_failure_says_how_to_pass_a_file(monkeypatch):
    # The internet is the edge this machine cannot reach: make the download fail the way Keras does.
    from keras.src.utils import file_utils

    def fail(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid: None -- offline")

    monkeypatch.setattr(file_utils, "get_file", fail)
    features._application.cache_clear()
    try:
        with pytest.raises(features.WeightsDownloadError, match="weights=PATH") as err:
            features.build_extractor(["block1_conv1"], backbone="vgg16", weights="imagenet")
        assert "\n" not in str(err.value)
    finally:
        features._application.cache_clear()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"layers": ["block9_conv1"]}, "unknown layer 'block9_conv1'"),
        ({"layers": []}, "non-empty list"),
        ({"layers": ["block1_conv1"], "backbone": "resnet"}, "backbone must be one of"),
        ({"layers": ["block1_conv1"], "pooling": "min"}, "pooling must be one of"),
        (
            {"layers": ["block5_conv4"], "backbone": "vgg16"},
            "unknown layer 'block5_conv4' for vgg16",
        ),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs.setdefault("weights", None)
    with pytest.raises(ValueError, match=match):
        features.build_extractor(**kwargs)


def test_bfloat16_extractor_approximates_float32():
    layers = ["block1_conv1", "block3_conv1", "block5_conv1"]
    fp32 = features.build_extractor(layers, weights=None, precision="float32")
    bf16 = features.build_extractor(layers, weights=None, precision="bfloat16")
    assert fp32 is not bf16
    x = tf.random.stateless_uniform((1, 32, 32, 3), seed=(7, 8))
    a, b = fp32(x), bf16(x)
    for name in layers:
        assert b[name].dtype == tf.float32
        error = np.linalg.norm(a[name] - b[name]) / np.linalg.norm(a[name])
        assert 0 < error < 0.03, (name, error)  # bfloat16 has 8 bits of mantissa
    kinds = {
        layer.dtype_policy.name for layer in bf16.layers if isinstance(layer, keras.layers.Conv2D)
    }
    assert kinds == {"mixed_bfloat16"}


def test_extractor_takes_only_a_concrete_precision():
    # "auto" is resolved by tfstyle.precision before a network is built.
    with pytest.raises(ValueError, match="precision must be one of 'float32', 'bfloat16'"):
        features.build_extractor(["block1_conv1"], weights=None, precision="auto")


def test_legacy_h5_weights_file(tmp_path):
    # The format of Keras 2's save_weights and of the files keras.applications downloads.
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    vgg = keras.applications.VGG16(include_top=False, weights=None)
    path = tmp_path / "vgg16_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, vgg)
    model = features.build_extractor(["block2_conv2"], backbone="vgg16", weights=str(path))
    np.testing.assert_array_equal(
        model.get_layer("block2_conv2").get_weights()[0],
        vgg.get_layer("block2_conv2").get_weights()[0],
    )
