"""The style-transfer objective as small pure functions (Gatys et al. 2015/2016).

Notation follows the paper: a layer ``l`` has ``N_l`` channels and ``M_l = H_l * W_l``
positions; ``F^l`` is the generated image's feature matrix, ``P^l`` the content image's and
``A^l`` the style image's Gram matrix. Every function takes its sizes from its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """Unnormalised Gram matrix ``G_ij = sum_k F_ik F_jk`` of each image in a batch.

    Args:
        features: float tensor ``(batch, H, W, C)``.

    Returns:
        ``(batch, C, C)`` tensor of channel co-activations, summed over all ``H * W`` positions.

    Example:
        >>> gram_matrix(tf.ones((1, 2, 2, 3))).numpy()[0, 0, 0]
        4.0
    """
    return tf.einsum("bhwi,bhwj->bij", features, features)


def layer_style_loss(features: tf.Tensor, target_gram: tf.Tensor) -> tf.Tensor:
    """Style loss of one layer: ``E_l = 1 / (4 N_l^2 M_l^2) * sum_ij (G_ij - A_ij)^2``.

    Args:
        features: ``(batch, H, W, C)`` activations of the generated image.
        target_gram: ``(C, C)`` or ``(batch, C, C)`` Gram matrix ``A`` of the style image.

    Returns:
        Scalar; summed over the batch.
    """
    shape = tf.shape(features)
    n = tf.cast(shape[3], features.dtype)
    m = tf.cast(shape[1] * shape[2], features.dtype)
    diff = gram_matrix(features) - target_gram
    return tf.reduce_sum(tf.square(diff)) / (4.0 * tf.square(n) * tf.square(m))


def style_loss(
    features: Sequence[tf.Tensor],
    target_grams: Sequence[tf.Tensor],
    layer_weights: Sequence[float] | tf.Tensor,
) -> tf.Tensor:
    """Weighted style loss over layers: ``L_style = sum_l w_l E_l``.

    Args:
        features: per-layer activations of the generated image.
        target_grams: per-layer Gram matrices of the style image, same order.
        layer_weights: per-layer weights ``w_l``, same order.
    """
    losses = [layer_style_loss(f, a) for f, a in zip(features, target_grams, strict=True)]
    weights = tf.cast(layer_weights, losses[0].dtype)
    return tf.reduce_sum(weights * tf.stack(losses))


def content_loss(features: Sequence[tf.Tensor], targets: Sequence[tf.Tensor]) -> tf.Tensor:
    """Content loss ``L_content = 1/2 * sum_ij (F_ij - P_ij)^2``, summed over content layers.

    Args:
        features: per-layer activations of the generated image.
        targets: per-layer activations ``P`` of the content image, same order and shapes.
    """
    return tf.add_n(
        [0.5 * tf.reduce_sum(tf.square(f - p)) for f, p in zip(features, targets, strict=True)]
    )


def total_variation_loss(images: tf.Tensor) -> tf.Tensor:
    """Squared total variation: ``sum (x[i+1, j] - x[i, j])^2 + sum (x[i, j+1] - x[i, j])^2``.

    Not part of Gatys et al.; a smoothness prior on the pixels (as in Johnson et al. 2016).
    Squared rather than absolute differences keep the objective smooth for L-BFGS.

    Args:
        images: ``(batch, H, W, C)`` pixels, in [0, 1] in this package.
    """
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    return tf.reduce_sum(tf.square(dy)) + tf.reduce_sum(tf.square(dx))


def total_loss(
    content: tf.Tensor,
    style: tf.Tensor,
    tv: tf.Tensor,
    content_weight: float | tf.Tensor,
    style_weight: float | tf.Tensor,
    tv_weight: float | tf.Tensor,
) -> tf.Tensor:
    """The objective ``L = alpha * L_content + beta * L_style + tv_weight * L_tv``."""
    return content_weight * content + style_weight * style + tv_weight * tv
