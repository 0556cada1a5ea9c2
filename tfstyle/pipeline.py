"""The one pipeline: from decoded images to the stylised image, for the API and the served model.

The image is optimised coarse to fine, at a ladder of sizes (``schedule``: from ``min_scale``, or
``size / scale_span`` if larger, up to ``size``, ``scale_factor`` apart, the steps shared by
``steps_ratio``, those beyond ``shared_iterations`` all at ``size``). ``Pipeline.initial`` gives
the starting image at the first size. At each size, ``Pipeline.start`` resizes the images to that
size, computes the targets (content activations, style Gram matrices) and the optimiser's fresh
state at the previous size's image, upsampled
(``Pipeline.style_targets`` gives the style part alone, for a caller that reuses it);
``Pipeline.advance`` takes ``k`` optimisation steps in one ``tf.while_loop``. ``Pipeline.finish``
gives the final image and its objective. ``Pipeline.run`` drives them over the run plan
(``tfstyle.plan``), once for both callers: the exported signature calls it in its graph,
``tfstyle.transfer`` eagerly with ``Hooks`` (``advance`` in chunks, so that a progress bar,
callbacks and Ctrl-C run between them). Both call the same ``tf.function``s, so they compute the
same pixels.

The per-request values (size, weights, learning rate, seed, init, preserve_colors) arrive as a
dict of tensors, ``request``, with the dtypes of ``options.REQUEST_OPTIONS``; everything fixed by
an export (network, layers, optimiser) is fixed when the ``Pipeline`` is built.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import NamedTuple

import keras
import tensorflow as tf

from tfstyle import checks, features, images, losses, masks, optimize, plan, precision, tiles
from tfstyle.options import INITS, REQUEST_OPTIONS

#: The error of a style side out of range ({}: the side, style_scale, the scale's size).
STYLE_SIDE = (
    f"style_scale: the longer side of the style images would be {{}} px (style_scale {{}} x {{}} "
    f"px); it must be between {images.MIN_SIDE} and {images.MAX_SIZE}"
)
#: The content and total-variation terms are per this many pixels (a 512 x 512 image): both are
#: sums over positions, whose gradient at a pixel does not depend on the image's size, while the
#: style term's falls with the pixel count. Scaling them by ``AREA_REFERENCE / (H * W)`` keeps the
#: balance of the three, hence the look, the same at every size (see README).
AREA_REFERENCE = 512 * 512
#: Amplitude of the noise added to the mean colour by ``init="style-mean"``.
STYLE_MEAN_NOISE = 0.1
#: The error of a run whose objective stops being finite (``{}``: loss, step, iterations,
#: content_weight, style_weight, tv_weight). ``optimize.advance`` stops at that step.
NOT_FINITE = (
    "the objective or its gradient became {} at step {} of {}: the loss weights "
    "(content_weight {}, style_weight {}, tv_weight {}, style_layer_weights {}) are likely too "
    "large for float32; lower them"
)


class Targets(NamedTuple):
    """What the generated image is compared with, computed once per run."""

    content: tuple  # content-layer activations of the content image, (1, H, W, C) each
    # Per style layer, of the (blended) style images: the Gram matrix (C, C) for the Gram loss;
    # (mean (C,), covariance (C, C), its square root) for the Wasserstein loss. With regions:
    # one such tuple per region (its style's, as ``region_target`` makes it).
    style: tuple
    # With masks (``tfstyle.masks``): per region, (its weight, one (1, h, w, 1) map per style
    # layer at that layer's resolution); None: one style loss over the whole image.
    regions: tuple | None = None
    # With a content weight map: one (1, h, w, 1) map per content layer, mean 1; None: 1.
    content_weights: tuple | None = None
    # Video (``tfstyle.temporal``): (the previous frame's result warped onto this one, (1, H, W,
    # 3); its weight per pixel, (1, H, W, 1): the consistency mask times temporal_weight).
    temporal: tuple | None = None


class LossWeights(NamedTuple):
    """The objective's weights, as tensors so that a served request can set them."""

    content: tf.Tensor
    style: tf.Tensor
    tv: tf.Tensor
    style_layers: tf.Tensor  # one weight per style layer


class Objective:
    """``L = alpha * L_content + beta * L_style + tv_weight * L_tv`` on a feature extractor.

    ``L_content`` and ``L_tv`` are the reference sums (``tfstyle.losses``) times
    ``AREA_REFERENCE / (H * W)``: per 512 x 512 pixels, so that the weights mean the same at every
    size.

    Args:
        extractor: model from ``features.build_extractor`` returning a dict of activations.
        content_layers: layers whose activations are matched to the content image.
        style_layers: layers whose statistics are matched to the style image(s).
        style_loss: the name of the style loss in ``losses.STYLE_LOSSES``.
        tiling: a ``tiles.Tiling``: images above its size are computed crop by crop.
    """

    def __init__(
        self,
        extractor: keras.Model,
        content_layers: Sequence[str],
        style_layers: Sequence[str],
        style_loss: str = "gram",
        tiling=None,
    ):
        self.extractor = extractor
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        #: The style loss (``losses.STYLE_LOSSES``): its statistics, their blend, the loss.
        self.style = losses.get_style_loss(style_loss)
        #: ``tiles.Tiling`` when images above a size are computed crop by crop, else None.
        self.tiling = tiling

    def _either(self, image, tiled, whole):
        """``whole()``, or ``tiled()`` where the tiling says ``image`` ``(1, H, W, 3)`` needs it:
        decided when traced if the size is known then, else when the graph runs (a served
        scale's size is a tensor)."""
        if self.tiling is None:
            return whole()
        height, width = image.shape[1:3]
        if height is not None and width is not None:  # known when traced: no tf.cond, whose
            # branches ran 1.2x slower than the same graph outside one (benchmarks/tiles.py)
            return tiled() if max(height, width) > self.tiling.tile_size else whole()
        # The whole-image branch as a function call: inlined into the cond, its network and
        # gradient held memory in proportion to the image even when the tiles ran (2.4 GiB at
        # 1536 px, where the tiles alone needed 0.3: benchmarks/tiles.py --memory).
        whole_call = tf.function(
            whole, autograph=False, experimental_attributes={"_noinline": True}
        )
        return tf.cond(self.tiling.needed(image), tiled, whole_call)

    def targets(
        self, content: tf.Tensor, styles: Sequence[tf.Tensor], blend, style: tuple | None = None,
        regions: Sequence[tf.Tensor] | None = None, content_mask: tf.Tensor | None = None,
        style_masks: Sequence | None = None,
    ) -> Targets:  # fmt: skip
        """Content activations and blended style statistics; images ``(H, W, 3)``.

        ``style``: the style statistics (``style_targets``), if already computed; then
        ``styles`` and ``style_masks`` are not used. ``regions``: one mask ``(h, w, 1)`` per
        style (``tfstyle.masks``): each style its own loss in its region, weighted by
        ``len(styles) * blend[k]``. ``content_mask``: the content loss's weight map ``(h, w,
        1)``. ``style_masks``: per style, None or the region ``(h, w, 1)`` of the style image
        its statistics are taken from.
        """
        image, layers = content[None], self.content_layers
        shape = tf.shape(content)

        def whole():
            feats = self.extractor(image)
            return tuple(feats[n] for n in layers)

        def tiled():
            feats = self.tiling.features(image, layers)
            return tuple(feats[n] for n in layers)

        content_features = self._either(image, tiled, whole)
        if style is None:
            style = self.style_targets(styles, blend, style_masks, separate=regions is not None)
        region_maps = None
        if regions is not None:
            strides = [tiles.layer_stride(n) for n in self.style_layers]
            blend = tf.cast(blend, tf.float32)
            region_maps = tuple(
                (len(regions) * blend[k], masks.layer_maps(m, shape[0], shape[1], strides))
                for k, m in enumerate(regions)
            )
            style = tuple(
                tuple(self.style.region_target(t, m) for t, m in zip(own, maps, strict=True))
                for own, (_, maps) in zip(style, region_maps, strict=True)
            )
        content_weights = None
        if content_mask is not None:
            strides = [tiles.layer_stride(n) for n in self.content_layers]
            content_weights = masks.content_weights(content_mask, shape[0], shape[1], strides)
        return Targets(content_features, style, region_maps, content_weights)

    def style_targets(
        self, styles: Sequence[tf.Tensor], blend, style_masks: Sequence | None = None,
        separate: bool = False,
    ) -> tuple:  # fmt: skip
        """The blended style statistics (``Targets.style``) of style images ``(h, w, 3)``;
        ``separate``: each style's own, unblended (one tuple per style, for regions).
        ``style_masks``: per style, None or the region ``(h, w, 1)`` its statistics come from,
        normalised to the whole image's area (a mask of ones changes nothing)."""
        blend = tf.cast(blend, tf.float32)
        per_style = []  # per style image, per layer: a tuple of statistics
        style_masks = style_masks or [None] * len(styles)
        for style, style_mask in zip(styles, style_masks, strict=True):
            image, layers = style[None], self.style_layers
            maps = None
            if style_mask is not None:
                shape = tf.shape(style)
                strides = [tiles.layer_stride(n) for n in layers]
                maps = masks.layer_maps(style_mask, shape[0], shape[1], strides)

            def whole(image=image, layers=layers, maps=maps):
                feats = self.extractor(image)
                if maps is None:
                    return [self.style.statistics(feats[n]) for n in layers]
                return [self.style.statistics_in(feats[n], m)
                        for n, m in zip(layers, maps, strict=True)]  # fmt: skip

            def tiled(image=image, layers=layers, maps=maps):
                if maps is None:
                    moments = self.tiling.moments(image, layers)
                    return [self.style.statistics_of_moments(m) for m in moments]
                (moments,) = self.tiling.moments(image, layers, [(None, maps)])
                return [self.style.statistics_of_moments(s, losses.positions(m))
                        for s, m in zip(moments, maps, strict=True)]  # fmt: skip

            per_style.append(self._either(image, tiled, whole))
        if separate:
            return tuple(tuple(self.style.target(stats) for stats in own) for own in per_style)
        blended = [  # the blend weights' mean of each statistic
            tuple(
                tf.add_n([blend[k] * per_style[k][layer][i] for k in range(len(styles))])
                for i in range(len(per_style[0][layer]))
            )
            for layer in range(len(self.style_layers))
        ]
        return tuple(self.style.target(stats) for stats in blended)

    def __call__(self, image: tf.Tensor, targets: Targets, weights: LossWeights) -> dict:
        """Loss terms of ``image`` ``(1, H, W, 3)``: a dict with total, content, style, tv (and
        temporal, for a video frame after the first)."""
        terms = self._either(
            image,
            lambda: self.tiling.value(self, image, targets, weights),
            lambda: self.terms(image, targets, weights),
        )
        if targets.temporal is None:
            return terms
        temporal = temporal_loss(image, *targets.temporal)
        return {**terms, "temporal": temporal, "total": terms["total"] + temporal}

    def value_and_gradient(self, image, targets: Targets, weights: LossWeights):
        """``(total, d total / d image)``, crop by crop where the tiling says so."""

        def whole():
            with tf.GradientTape() as tape:
                tape.watch(image)
                total = self.terms(image, targets, weights)["total"]
            return total, tape.gradient(total, image)

        def tiled():
            terms, gradient = self.tiling.value_and_gradient(self, image, targets, weights)
            return terms["total"], gradient

        total, gradient = self._either(image, tiled, whole)
        if targets.temporal is None:
            return total, gradient
        with tf.GradientTape() as tape:  # per pixel: on the whole image, tiled or not
            tape.watch(image)
            temporal = temporal_loss(image, *targets.temporal)
        return total + temporal, gradient + tape.gradient(temporal, image)

    def style_of_moments(self, sums: list, targets: Targets, weights: LossWeights) -> tf.Tensor:
        """The style loss from the whole image's sums (``tiles.style_moments``), per region
        with regions."""
        if targets.regions is None:
            return self.style.loss_of_moments(sums, targets.style, weights.style_layers)
        return tf.add_n([
            weight * self.style.loss_of_moments(own_sums, own, weights.style_layers)
            for own_sums, (weight, _), own in zip(sums, targets.regions, targets.style,
                                                  strict=True)
        ])  # fmt: skip

    def terms(self, image: tf.Tensor, targets: Targets, weights: LossWeights) -> dict:
        """``__call__`` on the whole image at once."""
        feats = self.extractor(image)
        content_features = [feats[n] for n in self.content_layers]
        if targets.content_weights is None:
            content = losses.content_loss(content_features, targets.content)
        else:
            content = losses.weighted_content_loss(
                content_features, targets.content, targets.content_weights
            )
        style_features = [feats[n] for n in self.style_layers]
        if targets.regions is None:
            style = self.style.loss(style_features, targets.style, weights.style_layers)
        else:
            style = tf.add_n([
                weight * self.style.guided_loss(style_features, maps, own, weights.style_layers)
                for (weight, maps), own in zip(targets.regions, targets.style, strict=True)
            ])  # fmt: skip
        tv = losses.total_variation_loss(image)
        shape = tf.shape(image)
        per_area = AREA_REFERENCE / tf.cast(shape[1] * shape[2], tf.float32)
        content, tv = per_area * content, per_area * tv
        total = losses.total_loss(content, style, tv, weights.content, weights.style, weights.tv)
        return {"total": total, "content": content, "style": style, "tv": tv}


def temporal_loss(image, previous, weight) -> tf.Tensor:
    """Ruder et al.'s temporal loss of a video frame ``image`` ``(1, H, W, 3)``: ``sum(weight *
    (image - previous)^2)`` per ``AREA_REFERENCE`` pixels, as the content and TV losses are
    (``previous``: the last frame's result warped onto this one; ``weight`` ``(1, H, W, 1)``:
    ``temporal_weight`` where the flow is consistent, 0 elsewhere)."""
    shape = tf.shape(image)
    per_area = AREA_REFERENCE / tf.cast(shape[1] * shape[2], tf.float32)
    return per_area * tf.reduce_sum(weight * tf.square(image - previous))


class Started(NamedTuple):
    """What ``Pipeline.start`` returns: everything ``advance`` and ``finish`` need."""

    content: tf.Tensor  # (H, W, 3) the content at the working size
    targets: Targets
    weights: LossWeights
    state: optimize.Averaged  # the optimiser's state, with the average of its images


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
        tiling = None
        if opts.tile_size is not None:
            tiling = tiles.Tiling(extractor, layers, opts.backbone, opts.tile_size)
        self.objective = Objective(
            extractor, opts.content_layers, opts.style_layers, opts.style_loss, tiling
        )
        self.optimizer = optimize.get(opts.optimizer)
        n = len(opts.style_layers)
        self.style_layer_weights = tuple(opts.style_layer_weights or (1.0 / n,) * n)

    @property
    def extractor(self) -> keras.Model:
        return self.objective.extractor

    def resized(self, content, styles: Sequence[tf.Tensor], request: dict, size):
        """The content and style images at the working size for a longer side of ``size``.

        The content gets the longer side ``size``, each style ``style_scale * size``; an image
        whose shorter side would fall below ``images.MIN_SIDE`` fails, naming it.
        """
        shape = tf.shape(content)
        height, width = images.working_shape(shape[0], shape[1], size)
        big_enough = checks.check(
            tf.minimum(height, width) >= images.MIN_SIDE,
            f"content: a {{}}x{{}} image becomes {{}}x{{}} at size={{}}; its shorter side must "
            f"be at least {images.MIN_SIDE} px (raise size or crop the image)",
            shape[1], shape[0], width, height, size,
        )  # fmt: skip
        with tf.control_dependencies([big_enough]):
            content = images.resize(content, height, width)
        return content, self.resized_styles(styles, request, size)

    def resized_styles(self, styles: Sequence[tf.Tensor], request: dict, size) -> list:
        """The style images at the working size for a longer side of ``size`` (``resized``)."""
        style_side = tf.cast(tf.round(tf.cast(size, tf.float32) * request["style_scale"]), tf.int32)
        style_fits = checks.check(
            (style_side >= images.MIN_SIDE) & (style_side <= images.MAX_SIZE),
            STYLE_SIDE, style_side, request["style_scale"], size,
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
                f"be at least {images.MIN_SIDE} px (use a less elongated image, or raise size, "
                f"min_scale or style_scale)",
                shape[1], shape[0], w, h, style_side,
            )  # fmt: skip
            with tf.control_dependencies([wide_enough]):
                resized.append(images.resize(style, h, w))
        return resized

    def initial(self, content, styles: Sequence[tf.Tensor], blend, request: dict, size):
        """The starting image ``(h, w, 3)`` at the working size for ``size``.

        ``request["init"]`` is a string (one of ``INITS``) or an ``(h, w, 3)`` image.
        """
        content, styles = self.resized(content, styles, request, size)
        init = request["init"]
        if init.dtype == tf.string:
            return initial_image(init, content, styles, blend, request["seed"])
        shape = tf.shape(content)
        return images.resize(init, shape[0], shape[1])

    def style_targets(self, styles: Sequence[tf.Tensor], blend, request: dict, size) -> tuple:
        """The blended style statistics (``Targets.style``) at one scale: what ``start``
        computes for the style images, for a caller that reuses them over many content images
        (``tfstyle.api.Stylizer``). Arguments as for ``start``."""
        return self.objective.style_targets(
            self.resized_styles(styles, request, size),
            blend,
            request.get("style_masks"),
            separate="masks" in request,
        )

    def start(
        self, content, styles: Sequence[tf.Tensor], blend, request: dict, size, init, style=None
    ):
        """Working-size images, targets and the optimiser's fresh state at one scale.

        Args:
            content: ``(H, W, 3)`` float image in [0, 1].
            styles: the style images, ``(h, w, 3)`` each.
            blend: one weight per style image, summing to 1.
            request: the per-request values (``request_tensors``).
            size: the longer side of this scale, in px.
            init: the starting image ``(h, w, 3)`` (``initial``, or the previous scale's
                result), resized to this scale.
            style: the style statistics at this scale (``style_targets``), if already
                computed; then ``styles`` and ``blend`` are not used. None computes them.
        """
        content, styles = self.resized(content, styles if style is None else [], request, size)
        shape = tf.shape(content)
        start = images.resize(init, shape[0], shape[1])
        weights = LossWeights(
            request["content_weight"],
            request["style_weight"],
            request["tv_weight"],
            tf.constant(self.style_layer_weights, tf.float32),
        )
        targets = self.objective.targets(
            content, styles, blend, style, request.get("masks"), request.get("content_mask"),
            request.get("style_masks"),
        )  # fmt: skip
        if "temporal" in request:  # a video frame after the first (``tfstyle.video``)
            previous, mask = request["temporal"]
            previous = images.resize(previous, shape[0], shape[1])
            mask = tf.image.resize(mask, [shape[0], shape[1]], antialias=True)
            weight = request["temporal_weight"] * tf.clip_by_value(mask, 0.0, 1.0)
            targets = targets._replace(temporal=(previous[None], weight[None]))
        state = self.optimizer.init(start[None])
        return Started(
            content, targets, weights, optimize.averaged(state, request["average_decay"])
        )

    def advance(self, state, targets: Targets, weights: LossWeights, learning_rate, k):
        """Take ``k`` steps (one ``tf.while_loop``); returns the new state."""

        def loss_fn(image):
            return self.objective(image, targets, weights)["total"]

        def value_and_gradient(image):
            return self.objective.value_and_gradient(image, targets, weights)

        tiled = value_and_gradient if self.objective.tiling is not None else None
        return optimize.advance(loss_fn, self.optimizer, learning_rate, state, k, tiled)

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

    def run(
        self, content, styles, blend, iterations, request: dict,
        start_step=None, stop_step=None, resume=None, hooks: Hooks | None = None,
    ):  # fmt: skip
        """The whole optimisation, or a part of it: ``schedule``, its ``plan.scales``, then
        ``initial``, ``start`` and ``advance`` at each scale, and ``finish``.

        The one driver of a run: the exported signature calls it in its graph, ``transfer``
        eagerly with ``hooks`` (progress, callbacks, Ctrl-C between chunks of steps). The steps
        are the same ``tf.function``s both ways, each traced once for inputs of any size and
        kept as a function call (not inlined), so that the graph optimiser cannot fuse work
        across them differently: the served pixels equal ``transfer``'s.

        A part: only the steps ``[start_step, stop_step)`` of the run's ``iterations`` are
        taken (``0 <= start_step <= stop_step <= iterations``; None: 0 and ``iterations``),
        starting from ``resume`` (the ``resumable`` image of the part that stopped at
        ``start_step``; unused when it is 0) resized to the scale of ``start_step``, with a
        fresh optimiser state. Parts cover the same schedule as one run.

        Returns:
            ``(image, loss, resumable)``: the result ``(H, W, 3)`` at the output size (the image
            reached, upsampled if a coarser scale was running), the objective at the image
            reached (at its scale, before colour work), and the image reached ``(h, w, 3)``.
        """
        hooks = hooks or Hooks(self)
        run = hooks.compiled
        sizes, steps = schedule(
            tf.shape(content), [tf.shape(s) for s in styles], iterations, request
        )
        start = tf.constant(0) if start_step is None else tf.cast(start_step, tf.int32)
        stop = tf.cast(iterations if stop_step is None else stop_step, tf.int32)
        scales = plan.scales(sizes, steps, start, stop)
        hooks.planned(scales)

        def initial():
            return hooks.call(run.initial, content, styles, blend, request, sizes[0])

        if resume is None:
            image = initial()
        else:
            image = tf.cond(start > 0, lambda: tf.identity(resume), initial)

        def stage(i, image):
            begin, k = scales.begins[i], scales.counts[i]
            started = hooks.call(
                run.start, content, styles, blend, request, sizes[i], image, hooks.style(sizes[i])
            )
            hooks.started(i, sizes[i], begin, started)
            state = hooks.advance(started, started.state, request["learning_rate"], begin, k)
            w = started.weights
            finite = checks.check(
                tf.math.is_finite(state.loss) | tf.equal(k, 0),
                NOT_FINITE,
                state.loss, begin + state.step, iterations,
                w.content, w.style, w.tv, w.style_layers,
            )  # fmt: skip
            with tf.control_dependencies([finite]):
                # (its channels known again: the steps are traced for any shape)
                return started, state, tf.ensure_shape(state.image[0], [None, None, 3])

        _, image = tf.while_loop(
            lambda i, _: i < scales.last,
            lambda i, image: (i + 1, stage(i, image)[2]),
            (scales.first, image),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None, 3])),
            parallel_iterations=1,
        )
        started, state, image = stage(scales.last, image)
        result, loss = hooks.call(
            run.finish, image[None], started.content, started.targets, started.weights,
            request["preserve_colors"],
        )  # fmt: skip
        result = tf.cond(
            tf.equal(scales.last, tf.size(sizes) - 1),
            lambda: result,
            # a part that stops before the last scale: at the output's size
            lambda: self.full_size(image, content, sizes[-1], request["preserve_colors"]),
        )
        hooks.finished(state, started)
        return result, loss, image

    def full_size(self, image, content, size, preserve_colors) -> tf.Tensor:
        """The result ``(H, W, 3)`` at the longer side ``size`` for an image ``(h, w, 3)``
        reached at any scale: upsampled, with the content's colours if ``preserve_colors``."""
        shape = tf.shape(content)
        height, width = images.working_shape(shape[0], shape[1], size)
        out = images.resize(content, height, width)
        return self.output(images.resize(image, height, width)[None], out, preserve_colors)

    @functools.cached_property
    def compiled(self) -> _Compiled:
        """``initial``, ``style_targets``, ``start``, ``advance``, ``evaluate`` and ``finish``
        as ``tf.function``s."""
        return _Compiled(self)

    @functools.cached_property
    def reporting(self) -> _Compiled:
        """``compiled``, traced so that tiled steps report each crop done to
        ``tiles.listening`` (``transfer``'s progress bar); ``compiled`` itself when nothing is
        tiled. Never exported: its graphs hold ``tf.py_function``s."""
        return self.compiled if self.objective.tiling is None else _Compiled(self, report=True)


class _Compiled:
    def __init__(self, pipeline: Pipeline, report: bool = False):
        def fn(method):
            if report:
                traced = method

                @functools.wraps(method)
                def method(*args, **kwargs):
                    with tiles.reporting():
                        return traced(*args, **kwargs)

            steps = tf.function(
                method, autograph=False, experimental_attributes={"_noinline": True}
            )
            if report:
                # Traced at each scale's own size, so that the graph chooses tiles or not when
                # traced (``Objective._either``).
                return steps

            @functools.wraps(method)
            def generic(*args):
                # Traced once for tensors of any size (only their ranks known), and called so,
                # eagerly and in the exported graph: one graph both ways, so the same pixels (a
                # graph traced for the first call's sizes was 1 level off at some pixels).
                steps.get_concrete_function(*tf.nest.map_structure(_any_size, args))
                return steps(*args)

            return generic

        self.initial = fn(pipeline.initial)
        self.start = fn(pipeline.start)
        self.style_targets = fn(pipeline.style_targets)
        self.advance = fn(pipeline.advance)
        self.evaluate = fn(pipeline.evaluate)
        self.finish = fn(pipeline.finish)


def _any_size(value):
    """A tensor's ``TensorSpec`` with only its rank and dtype known; other values as they are."""
    if isinstance(value, (tf.Tensor, tf.Variable)):
        return tf.TensorSpec([None] * value.shape.rank, value.dtype)
    return value


class Hooks:
    """What ``Pipeline.run`` calls around its steps. These do nothing more than the steps: what
    the exported graph runs. ``tfstyle.api`` overrides them to run eagerly with a progress bar,
    callbacks, Ctrl-C and style targets kept between calls."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    @property
    def compiled(self) -> _Compiled:
        """The compiled steps the run calls (``Pipeline.compiled``)."""
        return self.pipeline.compiled

    def call(self, fn, *args):
        """``fn(*args)``: each compiled step (``initial``, ``start``, ``finish``) goes here."""
        return fn(*args)

    def planned(self, scales: plan.Scales) -> None:
        """The run's scales are known (before any step)."""

    def style(self, size):
        """The style targets at scale ``size`` if already computed, else None (computed by
        ``start``)."""
        return None

    def started(self, index, size, begin, started: Started) -> None:
        """Scale ``index`` (longer side ``size``) has started; its first step is ``begin``."""

    def advance(self, started: Started, state, learning_rate, begin, k):
        """Take the ``k`` steps of a scale from ``state``; the new state."""
        return self.compiled.advance(state, started.targets, started.weights, learning_rate, k)

    def finished(self, state, started: Started) -> None:
        """The last scale's steps are done (``state``), before the result is returned."""


#: The options a ``Pipeline`` fixes; the rest are per request or per call.
FIXED = ("content_layers", "style_layers", "style_layer_weights", "backbone", "pooling",
         "weights", "precision", "optimizer", "style_loss", "tile_size")  # fmt: skip
_PIPELINES: dict = {}
_PIPELINES_LOCK = threading.RLock()


def get(opts) -> Pipeline:
    """The pipeline for the ``FIXED`` options of ``opts`` (an ``Options``), built once: the 8
    used most recently are kept (each holds a network and its traced steps). Safe to call from
    several threads: one pipeline is built for one set of options.

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
    with _PIPELINES_LOCK:  # the page's runs call this from several threads at once
        pipe = _PIPELINES.pop(key, None)
        if pipe is None:
            if len(_PIPELINES) >= 8:
                del _PIPELINES[next(iter(_PIPELINES))]  # the least recently used
            pipe = Pipeline(opts)
        _PIPELINES[key] = pipe  # now the most recently used
    pipe.precision = choice
    return pipe


def schedule(shape, style_shapes, iterations, request: dict) -> tuple[tf.Tensor, tf.Tensor]:
    """The scales of a run and the steps taken at each: two int32 vectors of the same length.

    The ladder of sizes (longer sides, px) starts at ``min_scale`` or ``size / scale_span``,
    whichever is larger (raised, if need be, until the shorter side of the content and of each
    style is ``images.MIN_SIDE``; at most ``size``) and
    grows by ``scale_factor`` until ``size``: ``s[i + 1] = min(round(s[i] * scale_factor),
    size)``. The ``iterations``, at most ``shared_iterations`` of them, are shared in proportion
    to ``steps_ratio ** i`` (``i`` = 0 at the coarsest scale), rounded, the last scale getting at
    least one; any beyond ``shared_iterations`` go to the last scale, so the steps sum to
    ``iterations`` and a run longer than ``shared_iterations`` takes the same coarse steps
    whatever its length. Scales before the first that gets a step are dropped, so the run
    starts where the first step is taken. TF ops: the API and the served graph compute the
    same schedule.

    Args:
        shape: the content image's shape ``(H, W, 3)``.
        style_shapes: the style images' shapes.
        iterations: int32 scalar, the total steps.
        request: the per-request values (``request_tensors``).
    """
    size = tf.cast(request["size"], tf.int32)
    factor = tf.cast(request["scale_factor"], tf.float64)
    style_scale = tf.cast(request["style_scale"], tf.float64)
    largest_style = tf.cast(tf.round(tf.cast(size, tf.float64) * style_scale), tf.int32)
    style_fits = checks.check(  # at the last scale: fail before the first
        largest_style <= images.MAX_SIZE,
        STYLE_SIDE, largest_style, request["style_scale"], size,
    )  # fmt: skip

    def smallest(shape):
        """The smallest longer side (px) at which an image's shorter side is MIN_SIDE."""
        longer = tf.cast(tf.maximum(shape[0], shape[1]), tf.float64)
        shorter = tf.cast(tf.maximum(tf.minimum(shape[0], shape[1]), 1), tf.float64)
        return tf.math.ceil(images.MIN_SIDE * longer / shorter)

    fits = [smallest(shape)] + [tf.math.ceil(smallest(s) / style_scale) for s in style_shapes]
    fits = tf.cast(tf.minimum(tf.reduce_max(tf.stack(fits)), images.MAX_SIZE), tf.int32)
    with tf.control_dependencies([style_fits]):
        span = tf.cast(request["scale_span"], tf.float64)
        relative = tf.cast(tf.math.ceil(tf.cast(size, tf.float64) / span), tf.int32)
        lowest = tf.maximum(tf.cast(request["min_scale"], tf.int32), relative)
        first = tf.minimum(size, tf.maximum(lowest, fits))

    def grow(s, previous, ladder):
        up = tf.cast(tf.round(tf.cast(s, tf.float64) * factor), tf.int32)
        return tf.minimum(tf.maximum(up, s + 1), size), s, ladder.write(ladder.size(), s)

    _, _, ladder = tf.while_loop(
        lambda s, previous, _: previous < size,
        grow,
        (first, tf.constant(-1), tf.TensorArray(tf.int32, size=0, dynamic_size=True)),
    )
    sizes = ladder.stack()
    count = tf.size(sizes)
    share = tf.pow(
        tf.cast(request["steps_ratio"], tf.float64), tf.cast(tf.range(count), tf.float64)
    )
    last = tf.cast(iterations, tf.int32)
    total = tf.cast(tf.minimum(last, request["shared_iterations"]), tf.float64)
    bounds = tf.cast(tf.round(total * tf.cumsum(share) / tf.reduce_sum(share)), tf.int32)
    bounds = tf.concat([tf.minimum(bounds[:-1], tf.maximum(last - 1, 0)), [last]], 0)
    steps = bounds - tf.concat([[0], bounds[:-1]], 0)
    used = steps > 0
    begin = tf.where(
        tf.reduce_any(used), tf.argmax(tf.cast(used, tf.int32), output_type=tf.int32), count - 1
    )
    return sizes[begin:], steps[begin:]


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
