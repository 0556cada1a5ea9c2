"""The public Python API: ``transfer``. Its signature holds every option's one default."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import PIL.Image
import tensorflow as tf
from tqdm.auto import tqdm

from tfstyle import features, images, optimize

StyleInput = images.ImageLike | Sequence[images.ImageLike]


def transfer(
    content: images.ImageLike,
    style: StyleInput,
    *,
    size: int = 512,
    iterations: int = 200,
    content_weight: float = 1.0,
    style_weight: float = 1e4,
    tv_weight: float = 10.0,
    optimizer: str = "lbfgs",
    learning_rate: float | None = None,
    init: str | images.ImageLike = "content",
    seed: int | None = None,
    weights: features.Weights = "imagenet",
    backbone: str = "vgg19",
    pooling: str = "max",
    precision: str = "auto",
    content_layers: Sequence[str] = features.DEFAULT_CONTENT_LAYERS,
    style_layers: Sequence[str] = features.DEFAULT_STYLE_LAYERS,
    style_layer_weights: Sequence[float] | None = None,
    style_blend_weights: Sequence[float] | None = None,
    preserve_colors: bool = False,
    callback: Callable[[int, dict, np.ndarray], None] | None = None,
    callback_every: int = 10,
    progress: bool = True,
) -> PIL.Image.Image:
    """Paint ``content`` in the style of ``style`` (Gatys et al.) and return the image.

    Args:
        content: the content image: a path, encoded bytes, a PIL image, or an array/tensor
            (H, W, 3) of uint8 or float in [0, 1].
        style: the style image (same kinds), or a list of them to blend.
        size: int. Longer side of the output in pixels; the output keeps the content's aspect
            ratio and the style images are resized to the same longer side. Defaults to 512.
        iterations: int. Optimisation steps. Defaults to 200.
        content_weight: float. alpha, the weight of the content loss. Defaults to 1.0.
        style_weight: float. beta, the weight of the style loss. Defaults to 1e4.
        tv_weight: float. Weight of the total-variation (smoothness) loss. Defaults to 10.0.
        optimizer: str. "lbfgs" (reaches a given objective several times sooner, see
            benchmarks/) or "adam". Defaults to "lbfgs".
        learning_rate: float. Step size; None takes the optimiser's default: adam 0.05 (on
            pixels in [0, 1]), lbfgs 1.0 (a multiple of the quasi-Newton step, which is also
            kept within 0.3 per pixel). Defaults to None.
        init: str or image. Starting image: "content", "noise", "style-mean" (the style's
            mean colour plus a little noise) or an image. Defaults to "content".
        seed: int. Seed of the initial noise; the same inputs, options and seed give the same
            pixels on the same machine. None draws one. Defaults to None.
        weights: str. "imagenet", a path to a Keras weights file of the include_top=False
            network, or None for a random network with a fixed seed. Defaults to "imagenet".
        backbone: str. "vgg19" or "vgg16". Defaults to "vgg19".
        pooling: str. "max" or "avg" (Gatys et al. recommend average pooling). Defaults to
            "max".
        precision: str. Compute precision of the VGG convolutions: "auto" (bfloat16 where the
            hardware has it natively: a GPU of compute capability 8.0+, or a CPU with
            AVX512_BF16 / AMX; else float32), "float32" or "bfloat16". The losses are always
            computed in float32. Defaults to "auto".
        content_layers: list of str. Layers for the content loss. Defaults to block4_conv2.
        style_layers: list of str. Layers for the style loss. Defaults to block1_conv1,
            block2_conv1, block3_conv1, block4_conv1 and block5_conv1.
        style_layer_weights: list of float. Weight of each style layer; None gives each
            1 / len(style_layers). Defaults to None.
        style_blend_weights: list of float. Weight of each style image when several are given,
            normalised to sum to 1; None weighs them equally. Defaults to None.
        preserve_colors: bool. Keep the content image's colours: the result's luminance with
            the content's chrominance (YIQ). Defaults to False.
        callback: called as ``callback(step, losses, image)`` every ``callback_every`` steps and
            after the last one; ``losses`` is a dict of floats (total, content, style, tv) of
            ``image``, a float32 (H, W, 3) array in [0, 1]. Defaults to None.
        callback_every: int. Steps between callbacks. Defaults to 10.
        progress: bool. Show a progress bar with the current loss. Defaults to True.

    Returns:
        The stylised image, a PIL RGB image.

    Example:
        >>> image = tfstyle.transfer("examples/content.jpg", "examples/style.png",
        ...                          size=256, iterations=100)
        >>> image.save("out.png")
    """
    opts = Options(
        size=size,
        iterations=iterations,
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
        optimizer=optimizer,
        learning_rate=learning_rate,
        init=init if isinstance(init, str) else "image",
        seed=seed,
        weights=weights,
        backbone=backbone,
        pooling=pooling,
        precision=precision,
        content_layers=content_layers,
        style_layers=style_layers,
        style_layer_weights=style_layer_weights,
        preserve_colors=preserve_colors,
    )
    _check_int("callback_every", callback_every, 1)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable or None; got {callback!r}")

    styles_in = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles_in:
        raise ValueError("style must be an image or a non-empty list of images")
    blend = _blend_weights(style_blend_weights, len(styles_in))

    content_img = images.load_image(content, "content")
    height, width = images.working_shape(*content_img.shape[:2], opts.size)
    if min(int(height), int(width)) < images.MIN_SIDE:
        raise ValueError(
            f"content: a {content_img.shape[1]}x{content_img.shape[0]} image becomes "
            f"{int(width)}x{int(height)} at size={opts.size}; its shorter side must be at least "
            f"{images.MIN_SIDE} px (raise size or crop the image)"
        )
    content_t = images.resize(tf.constant(content_img), height, width)
    styles = []
    for k, s in enumerate(styles_in):
        name = "style" if len(styles_in) == 1 else f"style[{k}]"
        styles.append(images.resize_longer_side(tf.constant(images.load_image(s, name)), opts.size))
    seed = opts.seed if opts.seed is not None else int(np.random.default_rng().integers(2**31))
    if isinstance(init, str):
        start = optimize.initial_image(init, content_t, styles, blend, seed)
    else:
        start = images.resize(tf.constant(images.load_image(init, "init")), height, width)

    run = _compiled(opts.extractor(), opts.content_layers, opts.style_layers, opts.optimizer)
    targets = run.objective.targets(content_t, styles, blend)
    loss_weights = opts.loss_weights()
    state = optimize.init_state(opts.optimizer, start)
    learning_rate = opts.effective_learning_rate()

    def report(step: int) -> None:
        terms = run.evaluate(state.image, targets, loss_weights)
        image = optimize.finish(state.image, content_t, opts.preserve_colors).numpy()
        callback(step, {k: float(v) for k, v in terms.items()}, image)

    step = 0
    with tqdm(total=opts.iterations, disable=not progress, unit="step") as bar:
        while step < opts.iterations:
            chunk = opts.iterations - step
            if callback is not None:
                chunk = min(chunk, callback_every - step % callback_every)
            if progress:
                chunk = 1
            state = run.advance(state, targets, loss_weights, learning_rate, chunk)
            step += chunk
            bar.update(chunk)
            bar.set_postfix(loss=f"{float(state.loss):.4g}", refresh=False)
            if callback is not None and (step % callback_every == 0 or step == opts.iterations):
                report(step)
    if callback is not None and opts.iterations == 0:
        report(0)
    result = optimize.finish(state.image, content_t, opts.preserve_colors)
    return images.to_pil(result)


@dataclasses.dataclass(frozen=True)
class Options:
    """The algorithm options of ``transfer``, validated (defaults live in its signature)."""

    size: int
    iterations: int
    content_weight: float
    style_weight: float
    tv_weight: float
    optimizer: str
    learning_rate: float | None
    init: str
    seed: int | None
    weights: features.Weights
    backbone: str
    pooling: str
    precision: str
    content_layers: tuple
    style_layers: tuple
    style_layer_weights: tuple | None
    preserve_colors: bool

    def __post_init__(self):
        for name in ("content_layers", "style_layers", "style_layer_weights"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):  # lists -> hashable tuples
                object.__setattr__(self, name, tuple(value))
        _check_int("size", self.size, images.MIN_SIDE, images.MAX_SIZE)
        _check_int("iterations", self.iterations, 0)
        for name in ("content_weight", "style_weight", "tv_weight"):
            _check_number(name, getattr(self, name))
        if self.learning_rate is not None:
            _check_number("learning_rate", self.learning_rate, positive=True)
        features.check_choice("optimizer", self.optimizer, optimize.OPTIMIZERS)
        features.check_choice("init", self.init, optimize.INITS + ("image",))
        if self.seed is not None:
            _check_int("seed", self.seed, 0, 2**31 - 1)
        features.check_choice("backbone", self.backbone, features.BACKBONES)
        features.check_choice("pooling", self.pooling, features.POOLINGS)
        features.check_choice("precision", self.precision, features.PRECISIONS)
        features.check_layers("content_layers", self.content_layers, self.backbone)
        features.check_layers("style_layers", self.style_layers, self.backbone)
        if self.style_layer_weights is not None:
            if len(self.style_layer_weights) != len(self.style_layers):
                raise ValueError(
                    f"style_layer_weights must have one weight per style layer "
                    f"({len(self.style_layers)}); got {len(self.style_layer_weights)}"
                )
            for w in self.style_layer_weights:
                _check_number("style_layer_weights", w)
        if not isinstance(self.preserve_colors, (bool, np.bool_)):
            raise ValueError(f"preserve_colors must be True or False; got {self.preserve_colors!r}")
        features.check_weights(self.weights)

    def extractor(self):
        """The feature extractor for these options (cached)."""
        layers = tuple(dict.fromkeys(self.content_layers + self.style_layers))
        return features.build_extractor(
            layers,
            backbone=self.backbone,
            pooling=self.pooling,
            weights=self.weights,
            precision=self.precision,
        )

    def loss_weights(self) -> optimize.LossWeights:
        layer_weights = self.style_layer_weights or (1.0 / len(self.style_layers),) * len(
            self.style_layers
        )
        return optimize.LossWeights(
            tf.constant(self.content_weight, tf.float32),
            tf.constant(self.style_weight, tf.float32),
            tf.constant(self.tv_weight, tf.float32),
            tf.constant(layer_weights, tf.float32),
        )

    def effective_learning_rate(self) -> float:
        if self.learning_rate is None:
            return optimize.LEARNING_RATES[self.optimizer]
        return self.learning_rate


class _Compiled:
    """The objective and its ``tf.function`` loop for one extractor, layers and optimiser."""

    def __init__(self, extractor, content_layers, style_layers, optimizer):
        self.objective = optimize.Objective(extractor, content_layers, style_layers)
        self.optimizer = optimizer

    @functools.cached_property
    def _advance(self):
        def advance(state, targets, weights, learning_rate, k):
            return optimize.advance(
                self.objective, self.optimizer, learning_rate, state, targets, weights, k
            )

        return tf.function(advance, reduce_retracing=True)

    def advance(self, state, targets, weights, learning_rate, k):
        return self._advance(
            state, targets, weights, tf.constant(learning_rate, tf.float32), tf.constant(k)
        )

    @functools.cached_property
    def evaluate(self):
        return tf.function(self.objective.__call__, reduce_retracing=True)


@functools.lru_cache(maxsize=8)
def _compiled(extractor, content_layers, style_layers, optimizer) -> _Compiled:
    return _Compiled(extractor, content_layers, style_layers, optimizer)


def _blend_weights(blend, count: int) -> np.ndarray:
    if blend is None:
        return np.full(count, 1.0 / count, np.float32)
    blend = np.asarray(blend, dtype=np.float64)
    if blend.shape != (count,) or not np.all(np.isfinite(blend)) or np.any(blend < 0):
        raise ValueError(
            f"style_blend_weights must be {count} non-negative numbers, one per style image; "
            f"got {blend.tolist()}"
        )
    if blend.sum() <= 0:
        raise ValueError("style_blend_weights must not all be zero")
    return (blend / blend.sum()).astype(np.float32)


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {allowed}; got {value}")


def _check_number(name: str, value, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number; got {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(
            f"{name} must be a finite number {'> 0' if positive else '>= 0'}; got {value}"
        )
