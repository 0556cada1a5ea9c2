"""VGG feature extractor: a Keras VGG19 (or VGG16) turned into a multi-output model.

The model takes RGB images in [0, 1], does the VGG preprocessing itself, stops after the deepest
layer that is used, and returns a dict ``{layer_name: activations}``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import keras
import numpy as np

from tfstyle import files

BACKBONES = ("vgg19", "vgg16")
POOLINGS = ("max", "avg")
#: Compute precision of the convolutions ("bfloat16": mixed, float32 weights and outputs).
#: ``precision="auto"`` is resolved to one of them by ``tfstyle.precision.choose``.
PRECISIONS = ("float32", "bfloat16")
DEFAULT_CONTENT_LAYERS = ("block4_conv2",)
DEFAULT_STYLE_LAYERS = (
    "block1_conv1",
    "block2_conv1",
    "block3_conv1",
    "block4_conv1",
    "block5_conv1",
)
#: Seed of the random network used when ``weights=None`` (the same network in every process).
RANDOM_WEIGHTS_SEED = 1234

# ImageNet channel means in BGR order (the "caffe" preprocessing of keras.applications.vgg19).
_VGG_MEAN_BGR = (103.939, 116.779, 123.68)

Weights = str | os.PathLike | None


class WeightsDownloadError(OSError):
    """The ImageNet weights could not be downloaded."""


class VGGPreprocess(keras.layers.Layer):
    """RGB in [0, 1] -> BGR in [0, 255] minus the ImageNet mean, as VGG was trained."""

    def call(self, inputs):
        bgr = keras.ops.flip(inputs * 255.0, axis=-1)
        return bgr - keras.ops.convert_to_tensor(_VGG_MEAN_BGR, dtype=inputs.dtype)


class Float32(keras.layers.Layer):
    """Cast activations back to float32 (the losses are computed in float32)."""

    def call(self, inputs):
        return keras.ops.cast(inputs, "float32")


def layer_names(backbone: str = "vgg19") -> tuple[str, ...]:
    """Names of the layers of ``backbone`` (``include_top=False``) that can be used."""
    return tuple(layer.name for layer in _application(backbone, None).layers[1:])


def build_extractor(
    layers: Sequence[str],
    *,
    backbone: str = "vgg19",
    pooling: str = "max",
    weights: Weights = "imagenet",
    precision: str = "float32",
) -> keras.Model:
    """Build a model that maps ``(batch, H, W, 3)`` RGB in [0, 1] to ``{layer: activations}``.

    Models are cached: the same arguments return the same model object.

    Args:
        layers: names of VGG layers to return, e.g. ``("block4_conv2",)``.
        backbone: str. ``"vgg19"`` or ``"vgg16"``. Defaults to ``"vgg19"``.
        pooling: str. ``"max"`` keeps VGG's max pooling; ``"avg"`` swaps in average pooling
            with the same window (Gatys et al. recommend it), keeping the conv weights.
            Defaults to ``"max"``.
        weights: ``"imagenet"`` (downloaded by Keras and cached), a path to a Keras weights
            file of the whole ``include_top=False`` network (``.weights.h5`` or legacy
            ``.h5``), or ``None`` for a random network with a fixed seed. Defaults to
            ``"imagenet"``.
        precision: str. ``"float32"``, or ``"bfloat16"`` to run the convolutions in bfloat16
            (weights and returned activations stay float32). Defaults to ``"float32"``.

    Example:
        >>> model = build_extractor(["block1_conv1"], weights=None)
        >>> model(tf.zeros((1, 32, 32, 3)))["block1_conv1"].shape
        TensorShape([1, 32, 32, 64])
    """
    check_choice("backbone", backbone, BACKBONES)
    check_choice("pooling", pooling, POOLINGS)
    layers = tuple(layers)
    check_layers("layers", layers, backbone)
    check_choice("precision", precision, PRECISIONS)
    return _build_cached(layers, backbone, pooling, precision, *check_weights(weights))


def check_choice(name: str, value, allowed: Sequence) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {choices}; got {value!r}")


def check_layers(name: str, layers: Sequence[str], backbone: str) -> None:
    """Raise ``ValueError`` unless ``layers`` is a non-empty list of layer names of backbone."""
    if isinstance(layers, str) or not layers:
        raise ValueError(f"{name} must be a non-empty list of layer names; got {layers!r}")
    allowed = layer_names(backbone)
    for layer in layers:
        if layer not in allowed:
            raise ValueError(
                f"{name}: unknown layer {layer!r} for {backbone}; allowed: {', '.join(allowed)}"
            )
    repeated = sorted({layer for layer in layers if list(layers).count(layer) > 1})
    if repeated:
        raise ValueError(f"{name}: each layer may be listed once; repeated: {', '.join(repeated)}")


def check_weights(weights: Weights) -> tuple:
    """Raise unless ``weights`` is "imagenet", None or an existing file; returns a cache key."""
    if weights is None or weights == "imagenet":
        return (weights, None)
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"weights must be 'imagenet', None or a path to a weights file; got {weights!r}"
        )
    path = os.path.abspath(os.fspath(weights))
    info = files.check_regular(os.fspath(weights), "weights")  # not a FIFO, a device, a directory
    return (path, info.st_mtime_ns)  # a rewritten file is loaded again


def _check_declared_size(path: str, model: keras.Model, backbone: str) -> None:
    """Raise if the HDF5 weights file at ``path`` declares more weights than ``model`` holds
    (twice its bytes: float64 copies fit): what Keras would allocate on loading (a small
    compressed file can declare gigabytes), checked before anything is read."""
    import h5py

    if not h5py.is_hdf5(path):
        return  # a .keras archive or no weights file at all: Keras says which
    declared = 0

    def add(_name, item):
        nonlocal declared
        if isinstance(item, h5py.Dataset):
            declared += item.size * item.dtype.itemsize

    try:
        with h5py.File(path, "r") as f:
            f.visititems(add)
    except (OSError, ValueError, TypeError):
        return  # unreadable: Keras's load says so, named
    held = sum(int(np.prod(w.shape)) * 4 for w in model.weights)
    if declared > 2 * held:
        raise ValueError(
            f"weights: {path!r} declares {declared / 2**20:.0f} MiB of weights, more than "
            f"{backbone} (include_top=False) holds ({held / 2**20:.0f} MiB): not its weights file"
        )


@functools.cache
def _application(backbone: str, weights: str | None) -> keras.Model:
    app = {"vgg19": keras.applications.VGG19, "vgg16": keras.applications.VGG16}[backbone]
    if weights != "imagenet":
        return app(include_top=False, weights=None)
    try:
        return app(include_top=False, weights="imagenet")
    except Exception as err:  # Keras raises a bare Exception on a failed download
        raise WeightsDownloadError(
            f"could not download the ImageNet {backbone} weights ({err}); pass "
            f"weights=PATH with a local Keras {backbone} include_top=False weights file "
            f"(CLI: --weights PATH), or weights=None for a random network"
        ) from err


@functools.lru_cache(maxsize=16)
def _build_cached(
    layers: tuple[str, ...], backbone: str, pooling: str, precision: str, weights, _mtime
) -> keras.Model:
    if weights is None or weights == "imagenet":
        vgg = _application(backbone, weights)
    else:
        vgg = _application.__wrapped__(backbone, None)  # a fresh copy to load the file into
    if weights is None:
        _set_random_weights(vgg)
    elif weights != "imagenet":
        _check_declared_size(weights, vgg, backbone)
        try:
            vgg.load_weights(weights)
        except Exception as err:  # Keras raises ValueError, KeyError or OSError here
            first = next((line for line in str(err).splitlines() if line.strip()), "")
            raise ValueError(
                f"weights: {weights!r} does not fit {backbone} (include_top=False): {first}"
            ) from err

    policy = "mixed_bfloat16" if precision == "bfloat16" else None
    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = VGGPreprocess(name="vgg_preprocess")(inputs)
    outputs = {}
    for layer in vgg.layers[1:]:
        if pooling == "avg" and isinstance(layer, keras.layers.MaxPooling2D):
            x = keras.layers.AveragePooling2D(
                pool_size=layer.pool_size,
                strides=layer.strides,
                name=f"{layer.name}_avg",
                dtype=policy,
            )(x)
        elif policy is not None:  # a copy computing in bfloat16, same (float32) weights
            copy = type(layer).from_config({**layer.get_config(), "dtype": policy})
            x = copy(x)
            copy.set_weights(layer.get_weights())
        else:
            x = layer(x)
        if layer.name in layers:
            outputs[layer.name] = x if policy is None else Float32(name=f"{layer.name}_f32")(x)
        if len(outputs) == len(set(layers)):
            break  # nothing deeper is used
    suffix = "" if policy is None else "_bf16"
    return keras.Model(inputs, outputs, name=f"{backbone}_{pooling}_features{suffix}")


def _set_random_weights(vgg: keras.Model) -> None:
    """He-normal kernels and zero biases from a fixed seed: one network in every process."""
    rng = np.random.default_rng(RANDOM_WEIGHTS_SEED)
    for layer in vgg.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:-1])
            kernel = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=kernel.shape)
            layer.set_weights([kernel.astype(np.float32), np.zeros_like(bias)])
