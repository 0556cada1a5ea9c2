"""The one pipeline: from decoded images to the stylised image, for the API and the served model.

``Pipeline.start`` resizes the images to the working size, computes the targets (content
activations, style Gram matrices) once and the optimiser's state at the starting image;
``Pipeline.advance`` takes ``k`` optimisation steps in one ``tf.while_loop``; ``Pipeline.finish``
gives the final image and its objective. ``tfstyle.transfer`` calls the three as ``tf.function``s
(``advance`` in chunks, so that a progress bar and callbacks run between them); the exported
signature calls ``Pipeline.run``, the same three in one graph. Both therefore compute the same
pixels.

The per-request values (size, weights, learning rate, seed, init, preserve_colors) arrive as a
dict of tensors, ``request``, with the dtypes of ``options.REQUEST_OPTIONS``; everything fixed by
an export (network, layers, optimiser) is fixed when the ``Pipeline`` is built.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import keras
import tensorflow as tf

from tfstyle import checks, features, images, losses, optimize, precision
from tfstyle.options import INITS, REQUEST_OPTIONS

#: Multiplies the Wasserstein style loss so that the default ``style_weight`` balances it against
#: the content loss about as it balances the Gram loss (measured: see README).
WASSERSTEIN_SCALE = 400.0
#: Amplitude of the noise added to the mean colour by ``init="style-mean"``.
STYLE_MEAN_NOISE = 0.1
#: The error of a run whose objective stops being finite (``{}``: loss, step, iterations,
#: content_weight, style_weight, tv_weight). ``optimize.advance`` stops at that step.
NOT_FINITE = (
    "the objective became {} at step {} of {}: the loss weights (content_weight {}, "
    "style_weight {}, tv_weight {}, style_layer_weights {}) are likely too large for float32; "
    "lower them"
)


class Targets(NamedTuple):
    """What the generated image is compared with, computed once per run."""

    content: tuple  # content-layer activations of the content image, (1, H, W, C) each
    # Per style layer, of the (blended) style images: the Gram matrix (C, C) for the Gram loss;
    # (mean (C,), covariance (C, C), its square root) for the Wasserstein loss.
    style: tuple


class LossWeights(NamedTuple):
    """The objective's weights, as tensors so that a served request can set them."""

    content: tf.Tensor
    style: tf.Tensor
    tv: tf.Tensor
    style_layers: tf.Tensor  # one weight per style layer


class Objective:
    """``L = alpha * L_content + beta * L_style + tv_weight * L_tv`` on a feature extractor.

    Args:
        extractor: model from ``features.build_extractor`` returning a dict of activations.
        content_layers: layers whose activations are matched to the content image.
        style_layers: layers whose Gram matrices are matched to the style image(s).
    """

    def __init__(
        self,
        extractor: keras.Model,
        content_layers: Sequence[str],
        style_layers: Sequence[str],
        style_loss: str = "gram",
    ):
        self.extractor = extractor
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.style_loss = style_loss

    def targets(self, content: tf.Tensor, styles: Sequence[tf.Tensor], blend) -> Targets:
        """Content activations and blended style statistics; images ``(H, W, 3)``."""
        content_features = self.extractor(content[None])
        blend = tf.cast(blend, tf.float32)
        per_style = []  # per style image, per layer: a tuple of statistics
        for style in styles:
            feats = self.extractor(style[None])
            if self.style_loss == "gram":
                per_style.append([(losses.gram_matrix(feats[n])[0],) for n in self.style_layers])
            else:
                per_style.append([losses.feature_stats(feats[n]) for n in self.style_layers])
        blended = [  # the blend weights' mean of each statistic
            tuple(
                tf.add_n([blend[k] * per_style[k][layer][i] for k in range(len(styles))])
                for i in range(len(per_style[0][layer]))
            )
            for layer in range(len(self.style_layers))
        ]
        if self.style_loss == "gram":
            style = tuple(stats[0] for stats in blended)
        else:
            style = tuple((mean, cov, losses.sqrtm(cov)) for mean, cov in blended)
        return Targets(tuple(content_features[n] for n in self.content_layers), style)

    def __call__(self, image: tf.Tensor, targets: Targets, weights: LossWeights) -> dict:
        """Loss terms of ``image`` ``(1, H, W, 3)``: a dict with total, content, style, tv."""
        feats = self.extractor(image)
        content = losses.content_loss([feats[n] for n in self.content_layers], targets.content)
        style_features = [feats[n] for n in self.style_layers]
        if self.style_loss == "gram":
            style = losses.style_loss(style_features, targets.style, weights.style_layers)
        else:
            layer_losses = tf.stack(
                [
                    losses.layer_wasserstein_loss(f, *stats)
                    for f, stats in zip(style_features, targets.style, strict=True)
                ]
            )
            style = WASSERSTEIN_SCALE * tf.reduce_sum(weights.style_layers * layer_losses)
        tv = losses.total_variation_loss(image)
        total = losses.total_loss(content, style, tv, weights.content, weights.style, weights.tv)
        return {"total": total, "content": content, "style": style, "tv": tv}


class Started(NamedTuple):
    """What ``Pipeline.start`` returns: everything ``advance`` and ``finish`` need."""

    content: tf.Tensor  # (H, W, 3) the content at the working size
    targets: Targets
    weights: LossWeights
    state: tuple  # the optimiser's state


class Pipeline:
    """Style transfer for the options an export fixes (network, layers, optimiser).

    Build with ``get(opts)``, which caches one per set of those options.
    """

    def __init__(self, opts):
        #: The precision the network runs, and why (set by ``get``).
        self.precision = precision.Choice(opts.precision, "set by the precision option", "set")
        layers = tuple(dict.fromkeys(opts.content_layers + opts.style_layers))
        extractor = features.build_extractor(
            layers,
            backbone=opts.backbone,
            pooling=opts.pooling,
            weights=opts.weights,
            precision=opts.precision,
        )
        self.objective = Objective(
            extractor, opts.content_layers, opts.style_layers, opts.style_loss
        )
        self.optimizer = optimize.get(opts.optimizer)
        n = len(opts.style_layers)
        self.style_layer_weights = tuple(opts.style_layer_weights or (1.0 / n,) * n)

    @property
    def extractor(self) -> keras.Model:
        return self.objective.extractor

    def start(self, content, styles: Sequence[tf.Tensor], blend, request: dict) -> Started:
        """Working-size images, targets and the optimiser's state at the starting image.

        Args:
            content: ``(H, W, 3)`` float image in [0, 1].
            styles: the style images, ``(h, w, 3)`` each.
            blend: one weight per style image, summing to 1.
            request: the per-request values (``request_tensors``); ``request["init"]`` is a
                string (one of ``INITS``) or an ``(h, w, 3)`` image.
        """
        shape = tf.shape(content)
        size = request["size"]
        height, width = images.working_shape(shape[0], shape[1], size)
        big_enough = checks.check(
            tf.minimum(height, width) >= images.MIN_SIDE,
            f"content: a {{}}x{{}} image becomes {{}}x{{}} at size={{}}; its shorter side must "
            f"be at least {images.MIN_SIDE} px (raise size or crop the image)",
            shape[1], shape[0], width, height, size,
        )  # fmt: skip
        with tf.control_dependencies([big_enough]):
            content = images.resize(content, height, width)
        style_side = tf.cast(tf.round(tf.cast(size, tf.float32) * request["style_scale"]), tf.int32)
        style_fits = checks.check(
            (style_side >= images.MIN_SIDE) & (style_side <= images.MAX_SIZE),
            f"style_scale: the longer side of the style images would be {{}} px (style_scale "
            f"{{}} x size {{}}); it must be between {images.MIN_SIDE} and {images.MAX_SIZE}",
            style_side, request["style_scale"], size,
        )  # fmt: skip
        resized = []
        for k, style in enumerate(styles):
            name = "style" if len(styles) == 1 else f"style[{k}]"
            shape = tf.shape(style)
            with tf.control_dependencies([style_fits]):
                h, w = images.working_shape(shape[0], shape[1], style_side)
            wide_enough = checks.check(
                tf.minimum(h, w) >= images.MIN_SIDE,
                f"{name}: a {{}}x{{}} image becomes {{}}x{{}} at {{}} px; its shorter side must "
                f"be at least {images.MIN_SIDE} px (use a less elongated image, or raise size "
                f"or style_scale)",
                shape[1], shape[0], w, h, style_side,
            )  # fmt: skip
            with tf.control_dependencies([wide_enough]):
                resized.append(images.resize(style, h, w))
        styles = resized
        init = request["init"]
        if init.dtype == tf.string:
            start = initial_image(init, content, styles, blend, request["seed"])
        else:
            start = images.resize(init, height, width)
        weights = LossWeights(
            request["content_weight"],
            request["style_weight"],
            request["tv_weight"],
            tf.constant(self.style_layer_weights, tf.float32),
        )
        targets = self.objective.targets(content, styles, blend)
        return Started(content, targets, weights, self.optimizer.init(start[None]))

    def advance(self, state, targets: Targets, weights: LossWeights, learning_rate, k):
        """Take ``k`` steps (one ``tf.while_loop``); returns the new state."""

        def loss_fn(image):
            return self.objective(image, targets, weights)["total"]

        return optimize.advance(loss_fn, self.optimizer, learning_rate, state, k)

    def evaluate(self, image, targets: Targets, weights: LossWeights) -> dict:
        """The loss terms of an image ``(1, H, W, 3)``."""
        return self.objective(image, targets, weights)

    def finish(self, image, content, targets: Targets, weights: LossWeights, preserve_colors):
        """The final ``(H, W, 3)`` image and the objective at ``image`` (before colour work)."""
        loss = self.objective(image, targets, weights)["total"]
        return self.output(image, content, preserve_colors), loss

    @staticmethod
    def output(image, content, preserve_colors) -> tf.Tensor:
        """The result ``(H, W, 3)`` for an optimised ``image`` ``(1, H, W, 3)``: with the
        content's colours when ``preserve_colors``."""
        image = image[0]
        if isinstance(preserve_colors, bool):
            preserve_colors = tf.constant(preserve_colors)
        return tf.where(preserve_colors, images.transfer_chrominance(image, content), image)

    def run(self, content, styles, blend, iterations, request: dict):
        """``start``, ``advance`` for ``iterations`` steps and ``finish``, in one graph.

        The three are called as the same ``tf.function``s the API calls, kept as function calls
        (not inlined), so that the graph optimiser cannot fuse work across them differently
        from the API's chunked calls: the served pixels equal ``transfer``'s.
        """
        run = self.compiled
        started = run.start(content, styles, blend, request)
        state = run.advance(
            started.state, started.targets, started.weights, request["learning_rate"], iterations
        )
        w = started.weights
        finite = checks.check(
            tf.math.is_finite(state.loss) | tf.equal(iterations, 0),
            NOT_FINITE,
            state.loss, state.step, iterations, w.content, w.style, w.tv, w.style_layers,
        )  # fmt: skip
        with tf.control_dependencies([finite]):
            image = tf.identity(state.image)
        return run.finish(
            image,
            started.content,
            started.targets,
            started.weights,
            request["preserve_colors"],
        )

    @functools.cached_property
    def compiled(self) -> _Compiled:
        """``start``, ``advance``, ``evaluate`` and ``finish`` as ``tf.function``s."""
        return _Compiled(self)


class _Compiled:
    def __init__(self, pipeline: Pipeline):
        def fn(method):
            return tf.function(
                method,
                reduce_retracing=True,
                autograph=False,
                experimental_attributes={"_noinline": True},
            )

        self.start = fn(pipeline.start)
        self.advance = fn(pipeline.advance)
        self.evaluate = fn(pipeline.evaluate)
        self.finish = fn(pipeline.finish)


#: The options a ``Pipeline`` fixes; the rest are per request or per call.
FIXED = ("content_layers", "style_layers", "style_layer_weights", "backbone", "pooling",
         "weights", "precision", "optimizer", "style_loss")  # fmt: skip
_PIPELINES: dict = {}


def get(opts) -> Pipeline:
    """The pipeline for the ``FIXED`` options of ``opts`` (an ``Options``), built once.

    ``precision="auto"`` is resolved here, once per machine and network (``precision.choose``);
    the pipeline's ``precision`` says which precision runs and why.
    """
    layers = tuple(dict.fromkeys(opts.content_layers + opts.style_layers))
    choice = precision.choose(
        opts.precision,
        backbone=opts.backbone,
        pooling=opts.pooling,
        layers=layers,
        weights=opts.weights,
    )
    opts = opts.replace(precision=choice.precision)
    key = (tuple(getattr(opts, name) for name in FIXED), features.check_weights(opts.weights))
    if key not in _PIPELINES:
        if len(_PIPELINES) >= 8:
            del _PIPELINES[next(iter(_PIPELINES))]  # the oldest
        _PIPELINES[key] = Pipeline(opts)
    _PIPELINES[key].precision = choice
    return _PIPELINES[key]


def request_tensors(opts, seed: int, init=None) -> dict:
    """The per-request values of ``opts`` as the tensors a served request carries.

    ``seed`` replaces ``opts.seed`` (which may be None); ``init``, an ``(h, w, 3)`` image,
    replaces a named ``opts.init``.
    """
    values = {name: getattr(opts, name) for name in REQUEST_OPTIONS}
    values["seed"] = seed
    values["learning_rate"] = opts.learning_rate_or_default
    tensors = {n: tf.constant(v, tf.as_dtype(REQUEST_OPTIONS[n])) for n, v in values.items()
               if n != "init" or init is None}  # fmt: skip
    if init is not None:
        tensors["init"] = tf.constant(init, tf.float32)
    return tensors


def initial_image(init, content: tf.Tensor, styles: Sequence[tf.Tensor], blend, seed) -> tf.Tensor:
    """The starting image ``(H, W, 3)`` for ``init`` (a string tensor, one of ``INITS``).

    ``seed`` (an integer tensor) makes the noise repeatable.
    """
    shape = tf.shape(content)
    noise = tf.random.stateless_uniform(shape, seed=tf.stack([tf.cast(seed, tf.int64), 0]))
    blend = tf.cast(blend, tf.float32)
    mean = tf.add_n([blend[k] * tf.reduce_mean(s, axis=[0, 1]) for k, s in enumerate(styles)])
    style_mean = tf.clip_by_value(mean + STYLE_MEAN_NOISE * (noise - 0.5), 0.0, 1.0)
    known = checks.check(
        tf.reduce_any(tf.equal(init, list(INITS))),
        "init must be one of " + ", ".join(repr(i) for i in INITS) + "; got {}",
        init,
    )
    with tf.control_dependencies([known]):
        index = tf.argmax(tf.cast(tf.equal(init, list(INITS)), tf.int32), output_type=tf.int32)
    starts = {"content": lambda: content, "noise": lambda: noise, "style-mean": lambda: style_mean}
    return tf.switch_case(index, [starts[name] for name in INITS])
