"""Exact tiled steps: the objective and its gradient computed crop by crop (print sizes).

A step on the whole image holds the network's activations for every pixel at once. Both style
losses are functions of sums over positions (a Gram matrix is ``sum_k f_k f_k^T``; a mean and a
covariance come from ``sum_k f_k`` and ``sum_k f_k f_k^T``), so a step can be taken crop by crop
and still be the whole image's step, with no seams (``../shared/DESIGN.md``, "Where scale comes
from"):

1. Forward only, crop by crop: each style layer's sums ``(M, S1, S2)`` over the crop's interior.
2. The style loss of the sums, and its gradient ``dL/dS1``, ``dL/dS2`` (small: C and C x C).
3. Per crop, forward and backward of the surrogate
   ``<dL/dS1, sum F_t> + <dL/dS2, F_t^T F_t>`` plus the (local) content loss of the interior;
   the gradient of the whole crop, halo included, is added into one image-sized gradient.
4. Total variation on the whole image (pixels only: cheap).

This equals the untiled gradient when each crop reaches at least the deepest layer's receptive
field radius past its interior inside the image (``halo``), the interiors cover each position
once, and crop origins are multiples of the deepest layer's stride (pooling windows align).
Memory is one crop's activations plus image-sized buffers.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

import tensorflow as tf

from tfstyle import losses


class Tile(NamedTuple):
    """One crop: its interior ``[top, bottom) x [left, right)`` (the positions it accounts for)
    and the crop ``[crop_top, crop_bottom) x [crop_left, crop_right)`` it is computed on."""

    top: int
    bottom: int
    left: int
    right: int
    crop_top: int
    crop_bottom: int
    crop_left: int
    crop_right: int


def layer_stride(layer: str) -> int:
    """Pixels per feature position of a VGG layer: 2^(K-1) in block K, 2^K at its pool."""
    match = re.fullmatch(r"block(\d+)_(conv\d+|pool)", layer)
    if not match:
        raise ValueError(f"not a VGG layer name: {layer!r}")
    block = int(match[1])
    return 2**block if match[2] == "pool" else 2 ** (block - 1)


def receptive_field(layer: str, backbone: str = "vgg19") -> int:
    """Side in pixels of the receptive field of one feature of ``layer`` (3x3 convolutions,
    2x2 pools of stride 2): 156 at VGG19's block5_conv1."""
    from tfstyle import features

    field, jump = 1, 1
    for name in features.layer_names(backbone):
        if "_conv" in name:
            field += 2 * jump
        elif name.endswith("_pool"):
            field += jump
            jump *= 2
        if name == layer:
            return field
    raise ValueError(f"{layer!r} is not a layer of {backbone}")


def geometry(layers: Sequence[str], backbone: str = "vgg19") -> tuple[int, int]:
    """``(stride, halo)`` for ``layers``: the deepest layer's stride, and half its receptive
    field rounded up to a multiple of that stride (VGG19 block5_conv1: 16, 80)."""
    stride = max(layer_stride(n) for n in layers)
    radius = max(math.ceil(receptive_field(n, backbone) / 2) for n in layers)
    return stride, stride * math.ceil(radius / stride)


def layout(height: int, width: int, tile: int, stride: int, halo: int) -> list[Tile]:
    """Tiles covering ``height`` x ``width``: interiors of ``tile`` px (rounded up to a multiple
    of ``stride``; the last row and column take what is left, a sliver under ``stride`` joining
    the one before), crops ``halo`` px wider on each side within the image."""
    rows = layout_tensor(height, width, tile, stride, halo).numpy().tolist()
    return [Tile(*row) for row in rows]


def interior_side(tile: int, stride: int) -> int:
    """The side of a tile's interior: ``tile`` rounded up to the deepest layer's ``stride``, so
    that every crop's origin lies on the stride (pooling windows align)."""
    return stride * math.ceil(tile / stride)


def layout_tensor(height, width, tile: int, stride: int, halo: int) -> tf.Tensor:
    """``layout`` as an int32 ``(tiles, 8)`` tensor of ``Tile`` rows; ``height`` and ``width``
    may be tensors (a served scale's size is known only when the graph runs)."""
    if tile < 1 or stride < 1 or halo < 0 or halo % stride:
        raise ValueError(f"bad tiling: tile {tile}, stride {stride}, halo {halo}")
    tile = interior_side(tile, stride)

    def spans(size):
        size = tf.cast(size, tf.int32)
        starts = tf.range(0, size, tile)
        sliver = (tf.size(starts) > 1) & (size - starts[-1] < stride)
        starts = tf.cond(sliver, lambda: starts[:-1], lambda: starts)
        ends = tf.concat([starts[1:], [size]], 0)
        return tf.stack(
            [starts, ends, tf.maximum(0, starts - halo), tf.minimum(size, ends + halo)], 1
        )

    rows, cols = spans(height), spans(width)
    r = tf.repeat(rows, tf.shape(cols)[0], axis=0)
    c = tf.tile(cols, [tf.shape(rows)[0], 1])
    # Tile order: top, bottom, left, right, crop_top, crop_bottom, crop_left, crop_right.
    return tf.stack([r[:, 0], r[:, 1], c[:, 0], c[:, 1], r[:, 2], r[:, 3], c[:, 2], c[:, 3]], 1)


def interior(features: tf.Tensor, tile, stride: int) -> tf.Tensor:
    """The part of a crop's ``(1, h, w, C)`` features at ``stride`` that belongs to the tile's
    interior (full-image feature rows ``[top // stride, bottom // stride)``, and columns);
    ``tile`` a ``Tile`` or a row of ``layout_tensor``."""
    top, bottom, left, right, crop_top, _, crop_left, _ = (tile[i] for i in range(8))
    y0, x0 = crop_top // stride, crop_left // stride
    begin = tf.stack([0, top // stride - y0, left // stride - x0, 0])
    size = tf.stack([-1, bottom // stride - top // stride, right // stride - left // stride, -1])
    return tf.slice(features, begin, size)


def _crop(image: tf.Tensor, tile) -> tf.Tensor:
    _, _, _, _, crop_top, crop_bottom, crop_left, crop_right = (tile[i] for i in range(8))
    begin = tf.stack([0, crop_top, crop_left, 0])
    return tf.slice(
        image, begin, tf.stack([-1, crop_bottom - crop_top, crop_right - crop_left, -1])
    )


def _placed(part: tf.Tensor, tile, stride: int, height, width, crop: bool) -> tf.Tensor:
    """``part`` (a crop's gradient, or an interior's features at ``stride``) zero-padded to
    the whole image's ``height`` x ``width`` (at that stride)."""
    top, bottom, left, right, crop_top, crop_bottom, crop_left, crop_right = (
        tile[i] for i in range(8)
    )
    if crop:
        y0, y1, x0, x1 = crop_top, crop_bottom, crop_left, crop_right
    else:
        y0, y1, x0, x1 = top // stride, bottom // stride, left // stride, right // stride
    return tf.pad(part, [[0, 0], [y0, height - y1], [x0, width - x1], [0, 0]])


def layer_info(extractor, layers: Sequence[str]) -> tuple[dict, dict]:
    """``(strides, channels)``: each layer's pixels per feature position and channel count."""
    feats = extractor(tf.zeros([1, 32, 32, 3]))
    return {n: layer_stride(n) for n in layers}, {n: int(feats[n].shape[-1]) for n in layers}


def moments(features: tf.Tensor, mask: tf.Tensor | None = None) -> tuple:
    """``(M, S1, S2)``: the position count, ``sum_k f_k`` ``(C,)`` and ``sum_k f_k f_k^T``
    ``(C, C)`` of ``(1, h, w, C)`` features; with a region's ``mask`` ``(1, h, w, 1)``, each
    position weighted by ``m^2`` (``losses.weighted_moments``)."""
    return losses.weighted_moments(features, mask)


#: Whether the graph being traced in this thread reports each crop done (``reporting``).
_TRACING = threading.local()
#: Who hears of each crop done in a reporting graph: ``listener(done, count, what)``.
_LISTENERS: list[Callable[[int, int, str], None]] = []


@contextlib.contextmanager
def reporting():
    """Graphs traced inside report each crop done to ``listening``'s listeners (through a
    ``tf.py_function``: for ``transfer``'s progress bar, never in an export)."""
    before = getattr(_TRACING, "on", False)
    _TRACING.on = True
    try:
        yield
    finally:
        _TRACING.on = before


@contextlib.contextmanager
def listening(listener: Callable[[int, int, str], None]):
    """``listener(done, count, what)`` hears of each crop done meanwhile (in any thread)."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


def _crop_done(done, count, what) -> int:
    for listener in list(_LISTENERS):
        try:
            listener(int(done), int(count), what.numpy().decode())
        except Exception:  # noqa: BLE001 - a progress display must not stop a run
            pass
    return 0


def _over_tiles(tiles: tf.Tensor, body, initial, what: str = "crops"):
    """``initial`` carried through ``body(tile, carried)`` for each row of ``tiles``, in a
    ``tf.while_loop`` (a Python loop when eager); ``what``: the pass, as a reporting graph
    (``reporting``) names it to listeners."""
    report = getattr(_TRACING, "on", False)

    def step(i, carried):
        new = body(tiles[i], carried)
        for a, b in zip(tf.nest.flatten(new), tf.nest.flatten(carried), strict=True):
            a.set_shape(b.shape)  # what slicing by tensors loses (the batch of 1)
        if report:  # after the crop's work: it reads one value of each result
            probes = [tf.reshape(x, [-1])[:1] for x in tf.nest.flatten(new)]
            done = tf.py_function(
                lambda d, n, w, *_: _crop_done(d, n, w),
                [i + 1, tf.shape(tiles)[0], tf.constant(what), *probes],
                tf.int32,
            )
            with tf.control_dependencies([done]):
                new = tf.nest.map_structure(tf.identity, new)
        return i + 1, new

    _, carried = tf.while_loop(
        lambda i, _: i < tf.shape(tiles)[0],
        step,
        (tf.constant(0), initial),
        parallel_iterations=1,
    )
    return carried


def _full_shape(image, stride: int):
    """The feature rows and columns at ``stride`` of a VGG layer on ``image`` (floor halving)."""
    shape = tf.shape(image)
    return shape[1] // stride, shape[2] // stride


def whole_features(extractor, image: tf.Tensor, layers: Sequence[str], tiles, strides: dict,
                   channels: dict) -> dict:  # fmt: skip
    """The full-image features of ``layers`` (``channels``: each one's channel count),
    assembled from the interiors of the crops, forward only: the content targets, computed
    once per scale."""

    def body(tile, carried):
        feats = extractor(_crop(image, tile))
        return {
            n: carried[n] + _placed(interior(feats[n], tile, strides[n]), tile, strides[n],
                                    *_full_shape(image, strides[n]), crop=False)
            for n in layers
        }  # fmt: skip

    initial = {
        n: tf.zeros(tf.stack([1, *_full_shape(image, strides[n]), channels[n]])) for n in layers
    }
    return _over_tiles(tiles, body, initial, "content features")


def style_moments(extractor, image: tf.Tensor, layers: Sequence[str], tiles, strides: dict,
                  channels: dict, regions=None) -> list:  # fmt: skip
    """Each style layer's ``moments`` of the whole image, summed over the crops' interiors;
    with ``regions`` (``pipeline.Targets.regions``: per region, its weight and one whole-image
    map per layer), a list of them per region, each position weighted by the region's map."""

    def body(tile, carried):
        feats = extractor(_crop(image, tile))
        return _added_moments(carried, feats, layers, tile, strides, regions)

    return _over_tiles(tiles, body, _zero_moments(layers, channels, regions), "style sums")


def _zero_moments(layers: Sequence[str], channels: dict, regions=None) -> list:
    zeros = [
        (tf.constant(0.0), tf.zeros([channels[n]]), tf.zeros([channels[n], channels[n]]))
        for n in layers
    ]
    return zeros if regions is None else [list(zeros) for _ in regions]


def _added_moments(carried: list, feats: dict, layers, tile, strides: dict, regions=None):
    """``carried`` plus the ``moments`` of the tile's interior of each layer of ``feats`` (per
    region, weighted by its map's interior, with ``regions``)."""

    def added(carried, maps):
        parts = [
            moments(
                interior(feats[n], tile, strides[n]),
                None if maps is None else _target_part(maps[i], tile, strides[n]),
            )
            for i, n in enumerate(layers)
        ]
        return [tuple(x + y for x, y in zip(c, p, strict=True))
                for c, p in zip(carried, parts, strict=True)]  # fmt: skip

    if regions is None:
        return added(carried, None)
    return [added(c, maps) for c, (_, maps) in zip(carried, regions, strict=True)]


def _content_part(feats: dict, content_target: dict, tile, strides: dict,
                  content_weights: dict | None = None) -> tf.Tensor:  # fmt: skip
    """Half the squared distance of the tile's interior features to the content target's
    (each position weighted by ``content_weights``' map of the layer, if given)."""
    part = tf.constant(0.0)
    for n, target in content_target.items():
        mine = interior(feats[n], tile, strides[n])
        square = tf.square(mine - _target_part(target, tile, strides[n]))
        if content_weights is not None:
            square = _target_part(content_weights[n], tile, strides[n]) * square
        part += 0.5 * tf.reduce_sum(square)
    return part


def _content_maps(objective, targets) -> dict | None:
    """The content weight map of each content layer (``Targets.content_weights``), by name."""
    if targets.content_weights is None:
        return None
    return dict(zip(objective.content_layers, targets.content_weights, strict=True))


def _terms(image, content, style, weights) -> dict:
    """The loss terms from the sum of the crops' content parts and the style loss: content
    and TV per area (as ``Objective.terms``), TV on the whole image."""
    from tfstyle.pipeline import AREA_REFERENCE

    shape = tf.shape(image)
    per_area = AREA_REFERENCE / tf.cast(shape[1] * shape[2], tf.float32)
    tv = per_area * losses.total_variation_loss(image)
    content = per_area * content
    total = losses.total_loss(content, style, tv, weights.content, weights.style, weights.tv)
    return {"total": total, "content": content, "style": style, "tv": tv}


def value(objective, image: tf.Tensor, targets, weights, tiles, strides: dict,
          channels: dict) -> dict:  # fmt: skip
    """``value_and_gradient``'s loss terms alone, in one forward pass over the crops (the
    value of a run's last image: no gradient wanted)."""
    style_layers, regions = objective.style_layers, targets.regions
    content_target = dict(zip(objective.content_layers, targets.content, strict=True))
    content_maps = _content_maps(objective, targets)

    def body(tile, carried):
        sums, content = carried
        feats = objective.extractor(_crop(image, tile))
        sums = _added_moments(sums, feats, style_layers, tile, strides, regions)
        part = _content_part(feats, content_target, tile, strides, content_maps)
        return sums, content + part

    initial = (_zero_moments(style_layers, channels, regions), tf.constant(0.0))
    sums, content = _over_tiles(tiles, body, initial, "value")
    style = objective.style_of_moments(sums, targets, weights)
    return _terms(image, content, style, weights)


def value_and_gradient(objective, image: tf.Tensor, targets, weights, tiles, strides: dict,
                       channels: dict) -> tuple[dict, tf.Tensor]:  # fmt: skip
    """The loss terms (as ``objective(image, targets, weights)`` gives them) and the gradient of
    the total with respect to ``image`` ``(1, H, W, 3)``, computed crop by crop.

    ``targets.content`` holds the whole image's content features (``whole_features``);
    ``tiles`` is ``layout_tensor``'s; ``strides`` and ``channels`` give each layer's.
    """
    from tfstyle.pipeline import AREA_REFERENCE

    style_layers, content_layers = objective.style_layers, objective.content_layers
    shape = tf.shape(image)
    height, width = shape[1], shape[2]
    per_area = AREA_REFERENCE / tf.cast(height * width, tf.float32)  # of the content loss
    # 1-2: the style loss of the whole image's sums, and its gradient with respect to them.
    regions = targets.regions
    sums = style_moments(
        objective.extractor, image, style_layers, tiles, strides, channels, regions
    )
    with tf.GradientTape() as tape:
        tape.watch(sums)
        style = objective.style_of_moments(sums, targets, weights)
    d_sums = tape.gradient(style, sums, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    content_target = dict(zip(content_layers, targets.content, strict=True))
    content_maps = _content_maps(objective, targets)
    # Per region (one, unweighted, without regions): its maps and the gradient of its sums.
    per_region = [(None, d_sums)] if regions is None else [
        (maps, d) for (_, maps), d in zip(regions, d_sums, strict=True)
    ]  # fmt: skip

    # 3: per crop, the surrogate's gradient (style) and the content loss's, into one gradient.
    def body(tile, carried):
        gradient, content = carried
        crop = _crop(image, tile)
        with tf.GradientTape() as tape:
            tape.watch(crop)
            feats = objective.extractor(crop)
            surrogate = tf.constant(0.0)
            for maps, d_region in per_region:
                for i, (n, (_, d1, d2)) in enumerate(zip(style_layers, d_region, strict=True)):
                    mask = None if maps is None else _target_part(maps[i], tile, strides[n])
                    _, s1, s2 = moments(interior(feats[n], tile, strides[n]), mask)
                    surrogate += tf.reduce_sum(d1 * s1) + tf.reduce_sum(d2 * s2)
            part = _content_part(feats, content_target, tile, strides, content_maps)
            total = weights.style * surrogate + weights.content * per_area * part
        grad = tape.gradient(total, crop)
        placed = _placed(grad, tile, 1, height, width, crop=True)
        return gradient + placed, content + part

    gradient, content = _over_tiles(
        tiles, body, (tf.zeros_like(image), tf.constant(0.0)), "gradients"
    )
    # 4: total variation, on the whole image.
    with tf.GradientTape() as tape:
        tape.watch(image)
        tv = per_area * losses.total_variation_loss(image)
        weighted_tv = weights.tv * tv
    gradient += tape.gradient(weighted_tv, image)
    return _terms(image, content, style, weights), gradient


def _target_part(target: tf.Tensor, tile, stride: int) -> tf.Tensor:
    """The whole image's content features at the tile's interior."""
    top, bottom, left, right = (tile[i] // stride for i in range(4))
    return tf.slice(
        target, tf.stack([0, top, left, 0]), tf.stack([-1, bottom - top, right - left, -1])
    )


class Tiling:
    """How a pipeline tiles (the ``tile_size`` option): a scale whose longer side is above
    ``tile_size`` takes its steps crop by crop, with crops laid out for ``layers``."""

    def __init__(self, extractor, layers: Sequence[str], backbone: str, tile_size: int):
        self.extractor, self.layers, self.tile_size = extractor, tuple(layers), tile_size
        self.stride, self.halo = geometry(self.layers, backbone)
        self.strides, self.channels = layer_info(extractor, self.layers)
        #: The side of a crop away from the image's edges: the interior and two halos.
        self.crop_side = interior_side(tile_size, self.stride) + 2 * self.halo

    def needed(self, image: tf.Tensor) -> tf.Tensor:
        """Whether ``image`` ``(1, H, W, 3)`` is tiled: a bool scalar tensor."""
        shape = tf.shape(image)
        return tf.maximum(shape[1], shape[2]) > self.tile_size

    def grid(self, image: tf.Tensor) -> tf.Tensor:
        """``layout_tensor`` of ``image`` ``(1, H, W, 3)``."""
        shape = tf.shape(image)
        return layout_tensor(shape[1], shape[2], self.tile_size, self.stride, self.halo)

    def features(self, image: tf.Tensor, layers: Sequence[str]) -> dict:
        """``whole_features`` of ``image``."""
        return whole_features(self.extractor, image, layers, self.grid(image), self.strides,
                              self.channels)  # fmt: skip

    def moments(self, image: tf.Tensor, layers: Sequence[str], regions=None) -> list:
        """``style_moments`` of ``image``."""
        return style_moments(self.extractor, image, layers, self.grid(image), self.strides,
                             self.channels, regions)  # fmt: skip

    def value(self, objective, image, targets, weights) -> dict:
        """``value`` of ``image``."""
        return value(objective, image, targets, weights, self.grid(image), self.strides,
                     self.channels)  # fmt: skip

    def value_and_gradient(self, objective, image, targets, weights) -> tuple[dict, tf.Tensor]:
        """``value_and_gradient`` of ``image``."""
        return value_and_gradient(objective, image, targets, weights, self.grid(image),
                                  self.strides, self.channels)  # fmt: skip
