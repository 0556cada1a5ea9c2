"""The losses against direct NumPy transcriptions of the reference formulas.

The formulas are Gatys et al. 2015/2016's, as written in the docstrings of tfstyle/losses.py.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfstyle import losses

RNG = np.random.default_rng(42)


def np_gram(f):  # f: (H, W, C) -> F (N x M), G = F F^T
    F = f.reshape(-1, f.shape[-1]).T
    return F @ F.T


def np_layer_style(f, a):
    N = f.shape[-1]
    M = f.shape[0] * f.shape[1]
    G = np_gram(f)
    return ((G - a) ** 2).sum() / (4.0 * N**2 * M**2)


def test_gram_matrix_known_tensor():
    # Two channels over two positions: F = [[1, 2], [3, 4]] -> G = F F^T = [[5, 11], [11, 25]].
    features = tf.constant([[[[1.0, 3.0], [2.0, 4.0]]]])  # (1, 1, 2, 2)
    np.testing.assert_array_equal(losses.gram_matrix(features)[0], [[5.0, 11.0], [11.0, 25.0]])


def test_gram_matrix_matches_numpy():
    f = RNG.standard_normal((2, 5, 7, 6)).astype(np.float32)
    got = losses.gram_matrix(tf.constant(f)).numpy()
    for b in range(2):
        np.testing.assert_allclose(got[b], np_gram(f[b].astype(np.float64)), rtol=1e-5, atol=1e-4)


def test_layer_style_loss_matches_formula():
    f = RNG.standard_normal((1, 6, 5, 8)).astype(np.float32)
    a = np_gram(RNG.standard_normal((6, 5, 8)))
    got = float(losses.layer_style_loss(tf.constant(f), tf.constant(a, tf.float32)))
    np.testing.assert_allclose(got, np_layer_style(f[0].astype(np.float64), a), rtol=1e-5)


def test_style_loss_weighted_sum_over_layers():
    feats = [RNG.standard_normal((1, 8, 8, 4)), RNG.standard_normal((1, 4, 4, 6))]
    grams = [np_gram(RNG.standard_normal((8, 8, 4))), np_gram(RNG.standard_normal((4, 4, 6)))]
    weights = [0.3, 2.0]
    expected = sum(
        w * np_layer_style(f[0], a) for w, f, a in zip(weights, feats, grams, strict=True)
    )
    got = losses.style_loss(
        [tf.constant(f, tf.float32) for f in feats],
        [tf.constant(a, tf.float32) for a in grams],
        weights,
    )
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_style_loss_zero_at_own_gram():
    f = tf.constant(RNG.standard_normal((1, 4, 4, 3)), tf.float32)
    assert float(losses.style_loss([f], [losses.gram_matrix(f)[0]], [1.0])) == 0.0


def test_content_loss_matches_formula():
    f = [RNG.standard_normal((1, 5, 6, 7)), RNG.standard_normal((1, 2, 3, 4))]
    p = [RNG.standard_normal((1, 5, 6, 7)), RNG.standard_normal((1, 2, 3, 4))]
    expected = sum(0.5 * ((a - b) ** 2).sum() for a, b in zip(f, p, strict=True))
    got = losses.content_loss(
        [tf.constant(x, tf.float32) for x in f], [tf.constant(x, tf.float32) for x in p]
    )
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def np_tv(x):
    return ((x[:, 1:] - x[:, :-1]) ** 2).sum() + ((x[:, :, 1:] - x[:, :, :-1]) ** 2).sum()


def test_total_variation_matches_formula():
    x = RNG.random((2, 9, 7, 3))
    np.testing.assert_allclose(
        float(losses.total_variation_loss(tf.constant(x, tf.float32))), np_tv(x), rtol=1e-5
    )


@pytest.mark.parametrize("size", [2, 5])
def test_total_variation_checkerboard_known(size):
    # A 0/1 checkerboard: every one of the 2 * n * (n - 1) neighbour pairs differs by 1, per
    # channel.
    board = (np.indices((size, size)).sum(axis=0) % 2).astype(np.float32)
    image = np.repeat(board[None, :, :, None], 3, axis=-1)
    assert float(losses.total_variation_loss(tf.constant(image))) == 3 * 2 * size * (size - 1)


def test_total_variation_constant_is_zero():
    assert float(losses.total_variation_loss(tf.fill((1, 5, 5, 3), 0.7))) == 0.0


def test_total_loss_combines_terms():
    total = losses.total_loss(2.0, 3.0, 5.0, content_weight=0.5, style_weight=10.0, tv_weight=0.1)
    assert float(total) == pytest.approx(0.5 * 2 + 10 * 3 + 0.1 * 5)


# --- the Wasserstein-2 style loss, against SciPy -------------------------------------------


def np_stats(f):  # (H, W, C) -> mean (C,), covariance (C, C) + eps I
    x = f.reshape(-1, f.shape[-1]).astype(np.float64)
    mean = x.mean(0)
    cov = (x - mean).T @ (x - mean) / x.shape[0]
    return mean, cov + losses.COVARIANCE_EPS * np.eye(x.shape[1])


def np_w2(f, style):
    """Squared 2-Wasserstein distance between the Gaussians of f's and style's features, / C."""
    scipy_linalg = pytest.importorskip("scipy.linalg")
    (m1, c1), (m2, c2) = np_stats(f), np_stats(style)
    root2 = scipy_linalg.sqrtm(c2).real
    cross = scipy_linalg.sqrtm(root2 @ c1 @ root2).real
    return (((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(cross)) / len(m1)


def relu_features(h, w, c, scale=1.0):
    # Like VGG activations: non-negative, channels of very different scales, some rank-deficient.
    base = np.maximum(RNG.normal(size=(h, w, c)), 0) * RNG.uniform(0.1, 30, size=c) * scale
    base[..., : c // 8] = 0.0  # dead channels
    return base.astype(np.float32)


@pytest.mark.parametrize("c", [3, 16, 64])
def test_sqrtm_matches_scipy(c):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    _, cov = np_stats(relu_features(12, 10, c))
    got = losses.sqrtm(tf.constant(cov, tf.float32)).numpy()
    want = scipy_linalg.sqrtm(cov).real
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    np.testing.assert_allclose(got @ got, cov, rtol=1e-3, atol=1e-3 * np.abs(cov).max())


@pytest.mark.parametrize("c, scale", [(8, 1.0), (32, 3.0), (64, 0.2)])
def test_wasserstein_loss_matches_scipy(c, scale):
    f, style = relu_features(9, 11, c, scale), relu_features(14, 7, c)
    mean, cov = losses.feature_stats(tf.constant(style[None]))
    got = losses.layer_wasserstein_loss(tf.constant(f[None]), mean, cov, losses.sqrtm(cov))
    assert float(got) == pytest.approx(np_w2(f, style), rel=2e-3)


def test_wasserstein_loss_is_zero_at_the_style_and_differentiable():
    style = relu_features(10, 10, 16)
    mean, cov = losses.feature_stats(tf.constant(style[None]))
    root = losses.sqrtm(cov)
    same = losses.layer_wasserstein_loss(tf.constant(style[None]), mean, cov, root)
    assert abs(float(same)) < 1e-3 * float(tf.linalg.trace(cov)) / 16
    moved = tf.constant(style[None] * 1.5)
    with tf.GradientTape() as tape:
        tape.watch(moved)
        loss = losses.layer_wasserstein_loss(moved, mean, cov, root)
    grad = tape.gradient(loss, moved)
    assert float(loss) > 0 and np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).max() > 0
