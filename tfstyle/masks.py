"""Where the style goes: a mask per style image, and a content weight map (Gatys et al. 2017,
"Controlling Perceptual Factors in Neural Style Transfer", spatial control).

A mask is an image at any resolution with the content's aspect ratio: white is "this style",
black "not this style", grays in between (soft edges). It is read as the mean of its RGB
channels, in [0, 1] (``load``); a transparent part is black (a mask drawn on a transparent layer
selects what was drawn). At each scale it is resized to the content's working size, then
to each layer's feature map by the network's own pooling pattern, averaged (``layer_maps``: a
VGG layer at stride ``2^p`` has ``floor`` halved rows ``p`` times, and so does the mask, each
value the mean of the 2 x 2 pixels below it): the mask's value at a feature position is the
share of that position's pixels that belong to the region.

Each style ``k`` then has its own loss on the guided features ``F * m_k`` (``losses``): the
guided Gram matrix ``G_k = (F * m_k)^T (F * m_k)``, normalised by the mask's own area
``M_k = sum m_k^2`` (the region's position count for a binary mask), against that style's
target. A position no mask covers has no style loss: the content (and total variation) alone
applies there.

The content weight map (``content_mask``) multiplies the content loss position by position,
normalised to a mean of 1 at each content layer: the content term keeps its overall weight,
moved to where the map is bright (a face kept recognisable, the background painted freely).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfstyle import images

#: How far a mask's aspect ratio (width / height) may be from the content's, relative: a mask
#: drawn at another resolution rounds its sides to whole pixels.
ASPECT_TOLERANCE = 0.02


def load(source, name: str) -> np.ndarray:
    """A mask ``(H, W, 1)`` float32 in [0, 1]: any image ``images.load_image`` reads, as the mean
    of its RGB channels (a grayscale image: its gray levels), transparent parts black."""
    rgb = images.load_image(source, name, background="black")
    return channel_mean(tf.constant(rgb)).numpy()


def channel_mean(rgb: tf.Tensor) -> tf.Tensor:
    """A mask ``(H, W, 1)`` from an ``(H, W, 3)`` image: the mean of its channels (the same op
    for the API and the served model, so both read the same floats)."""
    return tf.reduce_mean(rgb, axis=-1, keepdims=True)


def aspect_error(name: str, of: str = "content") -> str:
    """The error of a mask ``name`` whose aspect ratio is not the image's (``of``: "content"
    or "style"); ``{}``: the mask's width and height, the image's."""
    return (
        f"{name}: a {{}}x{{}} mask for a {{}}x{{}} {of} image; a mask must have the {of}'s "
        f"aspect ratio (within {ASPECT_TOLERANCE:.0%}; any resolution)"
    )


def black_error(name: str) -> str:
    """The error of a mask ``name`` that is black everywhere."""
    return f"{name}: the mask is black everywhere; white marks where it applies"


def check(mask: np.ndarray, image_shape, name: str, of: str = "content") -> None:
    """A ``ValueError`` naming ``name`` if the mask's aspect ratio is not that of the image
    (``of``: "content" or "style") or the mask is black everywhere (it would select nothing)."""
    height, width = mask.shape[:2]
    i_height, i_width = image_shape[:2]
    if abs((width / height) / (i_width / i_height) - 1) > ASPECT_TOLERANCE:
        raise ValueError(aspect_error(name, of).format(width, height, i_width, i_height))
    if not np.any(mask > 0):
        raise ValueError(black_error(name))


def decoded(data: tf.Tensor, name: str, image: tf.Tensor, of: str = "content") -> tf.Tensor:
    """The served model's mask: the encoded image ``data`` (a string scalar) as ``load`` reads
    it, checked against ``image`` ``(H, W, 3)`` as ``check`` does, or ones where ``data`` is
    empty (no mask: the run without one, to the bit)."""
    from tfstyle import checks

    shape = tf.shape(image)

    def given():
        mask = channel_mean(images.decode(data, name, background="black"))
        size = tf.shape(mask)
        ratio = tf.cast(size[1] * shape[0], tf.float64) / tf.cast(size[0] * shape[1], tf.float64)
        aspect = checks.check(
            tf.abs(ratio - 1) <= ASPECT_TOLERANCE,
            aspect_error(name, of), size[1], size[0], shape[1], shape[0],
        )  # fmt: skip
        black = checks.check(tf.reduce_max(mask) > 0, black_error(name))
        with tf.control_dependencies([aspect, black]):
            return tf.identity(mask)

    return tf.cond(
        tf.strings.length(data) > 0, given, lambda: tf.ones(tf.concat([shape[:2], [1]], 0))
    )


def check_count(value: Sequence | None, styles: int, name: str) -> None:
    """A ``ValueError`` unless ``value`` (masks given per style) has one entry per style."""
    if value is not None and len(value) != styles:
        raise ValueError(f"{name} must have one mask per style image ({styles}); got {len(value)}")


def layer_maps(mask: tf.Tensor, height, width, strides: Sequence[int]) -> tuple:
    """``mask`` ``(h, w, 1)`` resized to ``height`` x ``width``, then averaged down to each
    stride of ``strides`` the way VGG's 2 x 2 pooling shrinks the image: one ``(1, H_l, W_l,
    1)`` map per stride."""
    resized = images.resize(mask, height, width)
    # A constant mask stays exactly constant (a resize's weights may sum to 1 - 2^-24): a mask
    # of ones is then the run without one, to the bit (the served model's absent masks).
    constant = tf.reduce_min(mask) == tf.reduce_max(mask)
    level = tf.where(constant, tf.fill(tf.shape(resized), tf.reduce_max(mask)), resized)[None]
    by_stride, stride = {}, 1
    for target in sorted(set(strides)):
        while stride < target:
            level = tf.nn.avg_pool2d(level, 2, 2, "VALID")
            stride *= 2
        by_stride[target] = level
    return tuple(by_stride[s] for s in strides)


def content_weights(mask: tf.Tensor, height, width, strides: Sequence[int]) -> tuple:
    """``layer_maps`` normalised to a mean of 1 each: the content loss's weight per position (0
    at a layer where the map has no bright position left: one white column an odd width drops)."""
    maps = layer_maps(mask, height, width, strides)
    return tuple(tf.math.divide_no_nan(m, tf.reduce_mean(m)) for m in maps)
