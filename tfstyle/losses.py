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


def guided_layer_style_loss(
    features: tf.Tensor, mask: tf.Tensor, target_gram: tf.Tensor
) -> tf.Tensor:
    """Style loss of one layer in a region (Gatys et al. 2017): the guided Gram matrix
    ``G = (F * m)^T (F * m)`` normalised by the mask's own area ``M_m = sum m^2``,
    ``E = 1 / (4 N^2) * sum_ij (G_ij / M_m - A_ij / M)^2`` with ``M`` the layer's positions:
    ``layer_style_loss`` when ``m`` is 1 everywhere.

    Written as ``||G - A M_m / M||^2 / (4 N^2 M_m^2)`` (``region_gram_target``'s target), so that
    a mask of ones computes the same floats as ``layer_style_loss``.

    Args:
        features: ``(1, H, W, C)`` activations of the generated image.
        mask: ``(1, H, W, 1)`` the region's weight per position, in [0, 1] (``tfstyle.masks``).
        target_gram: ``(C, C)`` the region's target, ``region_gram_target`` of the style's.
    """
    n = tf.cast(tf.shape(features)[3], features.dtype)
    area = tf.reduce_sum(tf.square(mask))
    diff = gram_matrix(features * mask) - target_gram
    return tf.reduce_sum(tf.square(diff)) / tf.maximum(4.0 * tf.square(n) * tf.square(area), 1e-30)


def region_gram_target(target_gram: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """A style's Gram matrix ``A`` as the target of the region ``mask`` ``(1, H, W, 1)``:
    ``A * M_m / M`` (``guided_layer_style_loss``)."""
    return target_gram * (tf.reduce_sum(tf.square(mask)) / positions(mask))


def positions(layer_map: tf.Tensor) -> tf.Tensor:
    """The position count ``H * W`` of a ``(1, H, W, 1)`` map, as a float."""
    shape = tf.shape(layer_map)
    return tf.cast(shape[1] * shape[2], layer_map.dtype)


def weighted_moments(features: tf.Tensor, mask: tf.Tensor | None = None) -> tuple:
    """``(M, S1, S2)`` of ``(1, h, w, C)`` features with the weight ``m^2`` per position
    (``mask`` ``(1, h, w, 1)``; None: 1): ``M = sum m^2``, ``S1 = sum m^2 f``, ``S2 = sum m^2
    f f^T = (F * m)^T (F * m)``. Sums over positions, so crops add up (``tfstyle.tiles``)."""
    flat = tf.reshape(features, [-1, tf.shape(features)[-1]])
    if mask is None:
        count = tf.cast(tf.shape(flat)[0], flat.dtype)
        return count, tf.reduce_sum(flat, axis=0), tf.matmul(flat, flat, transpose_a=True)
    weight = tf.reshape(mask, [-1, 1])
    guided = flat * weight
    return (
        tf.reduce_sum(tf.square(weight)),
        tf.reduce_sum(guided * weight, axis=0),
        tf.matmul(guided, guided, transpose_a=True),
    )


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


def weighted_content_loss(
    features: Sequence[tf.Tensor], targets: Sequence[tf.Tensor], weights: Sequence[tf.Tensor]
) -> tf.Tensor:
    """``content_loss`` with a weight per position: ``1/2 * sum_ij c_j (F_ij - P_ij)^2``, each
    layer's ``c`` a ``(1, H, W, 1)`` map (``tfstyle.masks.content_weights``)."""
    return tf.add_n([
        0.5 * tf.reduce_sum(c * tf.square(f - p))
        for f, p, c in zip(features, targets, weights, strict=True)
    ])  # fmt: skip


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


# --- Wasserstein-2 style loss (an option; not in Gatys et al.) --------------------------------
#: Added to each covariance's diagonal: keeps the matrix square roots well conditioned.
COVARIANCE_EPS = 1e-3
#: Newton-Schulz iterations of ``sqrtm``; enough for the spectra of VGG feature covariances
#: after ``COVARIANCE_EPS`` (the test compares with ``scipy.linalg.sqrtm``).
SQRTM_ITERATIONS = 20


def feature_stats(features: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Mean ``(C,)`` and covariance ``(C, C)`` over the positions of ``(1, H, W, C)`` features
    (``COVARIANCE_EPS`` added to the covariance's diagonal)."""
    flat = tf.reshape(features, [-1, tf.shape(features)[-1]])
    mean = tf.reduce_mean(flat, axis=0)
    centred = flat - mean
    m = tf.cast(tf.shape(flat)[0], flat.dtype)
    cov = tf.matmul(centred, centred, transpose_a=True) / m
    return mean, cov + COVARIANCE_EPS * tf.eye(tf.shape(cov)[0], dtype=cov.dtype)


def sqrtm(matrix: tf.Tensor, iterations: int = SQRTM_ITERATIONS) -> tf.Tensor:
    """Square root of a symmetric positive definite matrix by the coupled Newton-Schulz
    iteration (matrix products only, so it is differentiable and fast on any device)."""
    n = tf.shape(matrix)[0]
    identity = tf.eye(n, dtype=matrix.dtype)
    norm = tf.norm(matrix)  # Frobenius: scales the spectrum into (0, 1] where it converges
    y, z = matrix / norm, identity
    for _ in range(iterations):
        t = 0.5 * (3.0 * identity - tf.matmul(z, y))
        y, z = tf.matmul(y, t), tf.matmul(t, z)
    return y * tf.sqrt(norm)


def layer_wasserstein_loss(
    features: tf.Tensor, target_mean: tf.Tensor, target_cov: tf.Tensor, target_cov_sqrt
) -> tf.Tensor:
    """Squared 2-Wasserstein distance between Gaussians fitted to the features and the style's
    features, per channel: ``(|mu - mu_s|^2 + tr(S + S_s - 2 (S_s^1/2 S S_s^1/2)^1/2)) / C``.

    Args:
        features: ``(1, H, W, C)`` activations of the generated image.
        target_mean, target_cov, target_cov_sqrt: the style's ``feature_stats`` and the square
            root of its covariance (computed once).
    """
    mean, cov = feature_stats(features)
    return wasserstein_of_stats(mean, cov, target_mean, target_cov, target_cov_sqrt)


def wasserstein_of_stats(mean, cov, target_mean, target_cov, target_cov_sqrt) -> tf.Tensor:
    """``layer_wasserstein_loss`` of the generated image's mean and covariance."""
    cross = sqrtm(tf.matmul(tf.matmul(target_cov_sqrt, cov), target_cov_sqrt))
    distance = (
        tf.reduce_sum(tf.square(mean - target_mean))
        + tf.linalg.trace(cov)
        + tf.linalg.trace(target_cov)
        - 2.0 * tf.linalg.trace(cross)
    )
    return distance / tf.cast(tf.shape(cov)[0], cov.dtype)


# --- Style losses as objects: statistics, blend, loss ------------------------------------------
class GramStyle:
    """Gatys et al.: each style layer's Gram matrix ``G = F^T F`` against the style's, with
    ``E_l = ||G - A||^2 / (4 N_l^2 M_l^2)`` (``layer_style_loss``)."""

    name = "gram"

    def statistics(self, features: tf.Tensor) -> tuple:
        """One image's statistics of a layer ``(1, H, W, C)``, each a sum or mean over
        positions, so that several style images blend by a weighted mean of them."""
        return (gram_matrix(features)[0],)

    def statistics_of_moments(self, moments: tuple, count=None) -> tuple:
        """``statistics`` from a layer's ``(M, S1, S2)`` (``tiles.moments``); a region's
        (weighted) sums with the layer's position ``count``: ``S2 * count / M``, its Gram
        matrix as if the region covered the image."""
        if count is None:
            return (moments[2],)
        return (moments[2] * (count / tf.maximum(moments[0], 1e-30)),)

    def statistics_in(self, features: tf.Tensor, mask: tf.Tensor) -> tuple:
        """``statistics`` of the region ``mask`` ``(1, H, W, 1)`` of the features: the guided
        Gram matrix scaled to the whole image's area, ``(F m)^T (F m) * M / M_m`` (the same
        floats as ``statistics`` for a mask of ones)."""
        scale = positions(mask) / tf.maximum(tf.reduce_sum(tf.square(mask)), 1e-30)
        return (gram_matrix(features * mask)[0] * scale,)

    def target(self, statistics: tuple):
        """The (blended) statistics as the target ``loss`` takes: the Gram matrix ``(C, C)``."""
        return statistics[0]

    def loss(self, features: Sequence[tf.Tensor], targets: Sequence, layer_weights) -> tf.Tensor:
        """``L_style = sum_l w_l E_l`` (``style_loss``)."""
        return style_loss(features, targets, layer_weights)

    def loss_of_moments(self, moments: Sequence[tuple], targets: Sequence, layer_weights):
        """``loss`` from each layer's ``(M, S1, S2)`` (``tiles.moments``): ``G = S2``; with a
        region's weighted moments and ``region_target``'s targets, ``guided_loss``."""
        layer_losses = []
        for (m, _, gram), target in zip(moments, targets, strict=True):
            n = tf.cast(tf.shape(gram)[0], gram.dtype)
            diff = gram - target
            layer_losses.append(
                tf.reduce_sum(tf.square(diff)) / tf.maximum(4.0 * n * n * m * m, 1e-30)
            )
        return tf.reduce_sum(tf.cast(layer_weights, tf.float32) * tf.stack(layer_losses))

    def region_target(self, target, mask: tf.Tensor):
        """The style's target as the target of the region ``mask`` (``region_gram_target``)."""
        return region_gram_target(target, mask)

    def guided_loss(self, features, masks, targets, layer_weights) -> tf.Tensor:
        """``sum_l w_l E_l`` of one region (``guided_layer_style_loss``), ``masks`` per layer."""
        layer_losses = [
            guided_layer_style_loss(f, m, a)
            for f, m, a in zip(features, masks, targets, strict=True)
        ]
        return tf.reduce_sum(tf.cast(layer_weights, tf.float32) * tf.stack(layer_losses))


class WassersteinStyle:
    """Each style layer's features as a Gaussian (mean, covariance) against the style's, by the
    squared 2-Wasserstein distance (``layer_wasserstein_loss``). Not in Gatys et al."""

    name = "wasserstein"
    #: Multiplies the loss so that the default ``style_weight`` balances it against the content
    #: loss about as it balances the Gram loss (measured: see README).
    scale = 400.0

    def statistics(self, features: tf.Tensor) -> tuple:
        """Mean ``(C,)`` and covariance ``(C, C)`` of a layer's features (``feature_stats``)."""
        return feature_stats(features)

    def statistics_of_moments(self, moments: tuple, count=None) -> tuple:
        """``statistics`` from a layer's ``(M, S1, S2)``: ``S1 / M``, ``S2 / M - mean mean^T``
        (a region's weighted sums: its own; ``count`` is not needed)."""
        return _stats_of_moments(*moments)

    def target(self, statistics: tuple) -> tuple:
        """``(mean, covariance, its square root)``: the root computed once per target."""
        mean, cov = statistics
        return mean, cov, sqrtm(cov)

    def loss(self, features: Sequence[tf.Tensor], targets: Sequence, layer_weights) -> tf.Tensor:
        """``scale * sum_l w_l W_l``."""
        layer_losses = tf.stack(
            [layer_wasserstein_loss(f, *t) for f, t in zip(features, targets, strict=True)]
        )
        return self.scale * tf.reduce_sum(tf.cast(layer_weights, tf.float32) * layer_losses)

    def loss_of_moments(self, moments: Sequence[tuple], targets: Sequence, layer_weights):
        """``loss`` from each layer's ``(M, S1, S2)`` (``tiles.moments``): the mean ``S1 / M``
        and the covariance ``S2 / M - mean mean^T`` (plus ``COVARIANCE_EPS``)."""
        layer_losses = [
            wasserstein_of_stats(*_stats_of_moments(*m), *target)
            for m, target in zip(moments, targets, strict=True)
        ]
        weighted = tf.cast(layer_weights, tf.float32) * tf.stack(layer_losses)
        return self.scale * tf.reduce_sum(weighted)

    def statistics_in(self, features: tf.Tensor, mask: tf.Tensor) -> tuple:
        """``statistics`` of the region ``mask``: the mean and covariance weighted by ``m^2``."""
        return _stats_of_moments(*weighted_moments(features, mask))

    def region_target(self, target, mask: tf.Tensor):
        """The style's Gaussian, unchanged: the region's mean and covariance are normalised by
        its own weight already."""
        return target

    def guided_loss(self, features, masks, targets, layer_weights) -> tf.Tensor:
        """``loss`` of one region: the mean and covariance of the features weighted by ``m^2``
        (``weighted_moments``), ``masks`` per layer."""
        moments = [weighted_moments(f, m) for f, m in zip(features, masks, strict=True)]
        return self.loss_of_moments(moments, targets, layer_weights)


def _stats_of_moments(m, s1, s2) -> tuple[tf.Tensor, tf.Tensor]:
    """``feature_stats`` from sums over positions (``COVARIANCE_EPS`` included)."""
    mean = s1 / tf.maximum(m, 1e-30)
    eye = tf.eye(tf.shape(s2)[0], dtype=s2.dtype)
    return mean, s2 / tf.maximum(m, 1e-30) - mean[:, None] * mean[None, :] + COVARIANCE_EPS * eye


#: The style losses by name (the ``style_loss`` option).
STYLE_LOSSES = {loss.name: loss for loss in (GramStyle(), WassersteinStyle())}


def get_style_loss(name: str):
    """The style loss called ``name``; a ``ValueError`` naming the allowed ones otherwise."""
    if not isinstance(name, str) or name not in STYLE_LOSSES:
        allowed = ", ".join(repr(n) for n in STYLE_LOSSES)
        raise ValueError(f"style_loss must be one of {allowed}; got {name!r}")
    return STYLE_LOSSES[name]
