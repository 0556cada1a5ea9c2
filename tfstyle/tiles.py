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

import math
import re
from collections.abc import Sequence
from typing import NamedTuple

import tensorflow as tf


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
    of ``stride``; the last row and column take what is left), crops ``halo`` px wider on each
    side within the image."""
    if tile < 1 or stride < 1 or halo < 0 or halo % stride:
        raise ValueError(f"bad tiling: tile {tile}, stride {stride}, halo {halo}")
    tile = stride * math.ceil(tile / stride)

    def spans(size: int) -> list[tuple[int, int, int, int]]:
        starts = list(range(0, size, tile))
        if len(starts) > 1 and size - starts[-1] < stride:  # a sliver: join it to the one before
            starts.pop()
        ends = starts[1:] + [size]
        return [
            (a, b, max(0, a - halo), min(size, b + halo)) for a, b in zip(starts, ends, strict=True)
        ]

    return [
        Tile(top, bottom, left, right, ct, cb, cl, cr)
        for top, bottom, ct, cb in spans(height)
        for left, right, cl, cr in spans(width)
    ]


def interior(features: tf.Tensor, tile: Tile, stride: int) -> tf.Tensor:
    """The part of a crop's ``(1, h, w, C)`` features at ``stride`` that belongs to the tile's
    interior (full-image feature rows ``[top // stride, bottom // stride)``, and columns)."""
    y0, x0 = tile.crop_top // stride, tile.crop_left // stride
    return features[
        :,
        tile.top // stride - y0 : tile.bottom // stride - y0,
        tile.left // stride - x0 : tile.right // stride - x0,
        :,
    ]


def _crop(image: tf.Tensor, tile: Tile) -> tf.Tensor:
    return image[:, tile.crop_top : tile.crop_bottom, tile.crop_left : tile.crop_right, :]


def moments(features: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(M, S1, S2)``: the position count, ``sum_k f_k`` ``(C,)`` and ``sum_k f_k f_k^T``
    ``(C, C)`` of ``(1, h, w, C)`` features."""
    flat = tf.reshape(features, [-1, tf.shape(features)[-1]])
    count = tf.cast(tf.shape(flat)[0], flat.dtype)
    return count, tf.reduce_sum(flat, axis=0), tf.matmul(flat, flat, transpose_a=True)


def _add(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def whole_features(extractor, image: tf.Tensor, layers: Sequence[str], tiles: Sequence[Tile],
                   strides: dict) -> dict:  # fmt: skip
    """The full-image features of ``layers``, assembled from the interiors of the crops (forward
    only): for the content targets, computed once per scale."""
    rows = {}
    for tile in tiles:
        feats = extractor(_crop(image, tile))
        rows.setdefault((tile.top, tile.bottom), []).append(
            {n: interior(feats[n], tile, strides[n]) for n in layers}
        )
    return {
        n: tf.concat([tf.concat([part[n] for part in row], axis=2) for row in rows.values()], 1)
        for n in layers
    }


def style_moments(extractor, image: tf.Tensor, layers: Sequence[str], tiles: Sequence[Tile],
                  strides: dict) -> list:  # fmt: skip
    """Each style layer's ``moments`` of the whole image, summed over the crops' interiors."""
    totals = None
    for tile in tiles:
        feats = extractor(_crop(image, tile))
        parts = [moments(interior(feats[n], tile, strides[n])) for n in layers]
        totals = (
            parts if totals is None else [_add(t, p) for t, p in zip(totals, parts, strict=True)]
        )
    return totals


def value_and_gradient(objective, image: tf.Tensor, targets, weights, tiles: Sequence[Tile],
                       strides: dict) -> tuple[dict, tf.Tensor]:  # fmt: skip
    """The loss terms (as ``objective(image, targets, weights)`` gives them) and the gradient of
    the total with respect to ``image`` ``(1, H, W, 3)``, computed crop by crop.

    ``targets.content`` holds the whole image's content features (``whole_features``).
    """
    from tfstyle.pipeline import AREA_REFERENCE

    style_layers, content_layers = objective.style_layers, objective.content_layers
    shape = tf.shape(image)
    per_area = AREA_REFERENCE / tf.cast(shape[1] * shape[2], tf.float32)
    # 1-2: the style loss of the whole image's sums, and its gradient with respect to them.
    sums = style_moments(objective.extractor, image, style_layers, tiles, strides)
    with tf.GradientTape() as tape:
        tape.watch(sums)
        style = objective.style.loss_of_moments(sums, targets.style, weights.style_layers)
    d_sums = tape.gradient(style, sums, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    # 3: per crop, the surrogate's gradient (style) and the content loss's, into one gradient.
    gradient = tf.zeros_like(image)
    content = tf.constant(0.0)
    height, width = image.shape[1], image.shape[2]
    for tile in tiles:
        crop = _crop(image, tile)
        with tf.GradientTape() as tape:
            tape.watch(crop)
            feats = objective.extractor(crop)
            surrogate = 0.0
            for n, (_, d1, d2) in zip(style_layers, d_sums, strict=True):
                _, s1, s2 = moments(interior(feats[n], tile, strides[n]))
                surrogate += tf.reduce_sum(d1 * s1) + tf.reduce_sum(d2 * s2)
            part = 0.0
            for n, target in zip(content_layers, targets.content, strict=True):
                mine = interior(feats[n], tile, strides[n])
                theirs = _target_part(target, tile, strides[n])
                part += 0.5 * tf.reduce_sum(tf.square(mine - theirs))
            total = weights.style * surrogate + weights.content * per_area * part
        grad = tape.gradient(total, crop)
        content += part
        gradient += tf.pad(grad, [[0, 0], [tile.crop_top, height - tile.crop_bottom],
                                  [tile.crop_left, width - tile.crop_right], [0, 0]])  # fmt: skip
    # 4: total variation, on the whole image.
    from tfstyle import losses

    with tf.GradientTape() as tape:
        tape.watch(image)
        tv = per_area * losses.total_variation_loss(image)
        weighted_tv = weights.tv * tv
    gradient += tape.gradient(weighted_tv, image)
    content = per_area * content
    total = losses.total_loss(content, style, tv, weights.content, weights.style, weights.tv)
    return {"total": total, "content": content, "style": style, "tv": tv}, gradient


def _target_part(target: tf.Tensor, tile: Tile, stride: int) -> tf.Tensor:
    """The whole image's content features at the tile's interior."""
    return target[:, tile.top // stride : tile.bottom // stride,
                  tile.left // stride : tile.right // stride, :]  # fmt: skip
