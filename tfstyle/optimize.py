"""The optimisation: targets, objective, initial image and the Adam / L-BFGS loops.

Everything here is TensorFlow code over tensors, with the whole optimiser state carried in loop
variables (no ``tf.Variable``, no Keras optimizer), so the Python API and the exported
SavedModel signature run the very same graph. ``advance`` runs ``k`` steps in one
``tf.while_loop``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import keras
import tensorflow as tf

from tfstyle import images, losses

OPTIMIZERS = ("adam", "lbfgs")
INITS = ("content", "noise", "style-mean")
#: Default learning rate of each optimiser (pixels are in [0, 1]).
LEARNING_RATES = {"adam": 0.05, "lbfgs": 1.0}  # measured: see README
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-8
#: Curvature pairs kept by L-BFGS.
LBFGS_HISTORY = 10
#: Largest change of any pixel in one L-BFGS step (a trust region). Without it the first steps
#: overshoot by orders of magnitude (measured: see README); smaller caps slow convergence.
LBFGS_MAX_STEP = 0.3
#: Amplitude of the noise added to the mean colour by ``init="style-mean"``.
STYLE_MEAN_NOISE = 0.1


class Targets(NamedTuple):
    """What the generated image is compared with, computed once per run."""

    content: tuple  # content-layer activations of the content image, (1, H, W, C) each
    style: tuple  # style-layer Gram matrices of the (blended) style images, (C, C) each


class LossWeights(NamedTuple):
    """The objective's weights, as tensors so that a served request can set them."""

    content: tf.Tensor
    style: tf.Tensor
    tv: tf.Tensor
    style_layers: tf.Tensor  # one weight per style layer


class AdamState(NamedTuple):
    image: tf.Tensor  # (1, H, W, 3) in [0, 1]
    m: tf.Tensor
    v: tf.Tensor
    step: tf.Tensor  # int32, steps taken
    loss: tf.Tensor  # objective at the last image evaluated (before the last update)


class LBFGSState(NamedTuple):
    image: tf.Tensor  # (1, H, W, 3) in [0, 1]
    prev_x: tf.Tensor  # (n,) the previous iterate, flattened
    prev_g: tf.Tensor  # (n,) its gradient
    s: tf.Tensor  # (history, n) iterate differences, newest last
    y: tf.Tensor  # (history, n) gradient differences, newest last
    pairs: tf.Tensor  # int32, number of valid rows at the end of s and y
    step: tf.Tensor
    loss: tf.Tensor


class Objective:
    """``L = alpha * L_content + beta * L_style + tv_weight * L_tv`` on a feature extractor.

    Args:
        extractor: model from ``features.build_extractor`` returning a dict of activations.
        content_layers: layers whose activations are matched to the content image.
        style_layers: layers whose Gram matrices are matched to the style image(s).
    """

    def __init__(
        self, extractor: keras.Model, content_layers: Sequence[str], style_layers: Sequence[str]
    ):
        self.extractor = extractor
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)

    def targets(self, content: tf.Tensor, styles: Sequence[tf.Tensor], blend) -> Targets:
        """Content activations and blended style Grams; ``content``, ``styles`` ``(H, W, 3)``."""
        content_features = self.extractor(content[None])
        grams = None
        blend = tf.cast(blend, tf.float32)
        for k, style in enumerate(styles):
            features = self.extractor(style[None])
            layer_grams = [blend[k] * losses.gram_matrix(features[n])[0] for n in self.style_layers]
            grams = (
                layer_grams
                if grams is None
                else [a + b for a, b in zip(grams, layer_grams, strict=True)]
            )
        return Targets(tuple(content_features[n] for n in self.content_layers), tuple(grams))

    def __call__(self, image: tf.Tensor, targets: Targets, weights: LossWeights) -> dict:
        """Loss terms of ``image`` ``(1, H, W, 3)``: a dict with total, content, style, tv."""
        features = self.extractor(image)
        content = losses.content_loss([features[n] for n in self.content_layers], targets.content)
        style = losses.style_loss(
            [features[n] for n in self.style_layers], targets.style, weights.style_layers
        )
        tv = losses.total_variation_loss(image)
        total = losses.total_loss(content, style, tv, weights.content, weights.style, weights.tv)
        return {"total": total, "content": content, "style": style, "tv": tv}


def initial_image(init, content: tf.Tensor, styles: Sequence[tf.Tensor], blend, seed) -> tf.Tensor:
    """The starting image ``(H, W, 3)`` for ``init`` in ``INITS`` (a string tensor is fine).

    ``seed`` (an integer, possibly a tensor) makes the noise repeatable.
    """
    shape = tf.shape(content)
    noise = tf.random.stateless_uniform(shape, seed=tf.stack([tf.cast(seed, tf.int64), 0]))
    blend = tf.cast(blend, tf.float32)
    mean = tf.add_n([blend[k] * tf.reduce_mean(s, axis=[0, 1]) for k, s in enumerate(styles)])
    style_mean = tf.clip_by_value(mean + STYLE_MEAN_NOISE * (noise - 0.5), 0.0, 1.0)
    if isinstance(init, str):
        return {"content": content, "noise": noise, "style-mean": style_mean}[init]
    return tf.case(
        [
            (tf.equal(init, "noise"), lambda: noise),
            (tf.equal(init, "style-mean"), lambda: style_mean),
        ],
        default=lambda: content,
    )


def init_state(optimizer: str, image: tf.Tensor):
    """Optimiser state at step 0 for a starting image ``(H, W, 3)``."""
    image = tf.convert_to_tensor(image, tf.float32)[None]
    step = tf.constant(0, tf.int32)
    loss = tf.constant(float("nan"), tf.float32)
    if optimizer == "adam":
        zeros = tf.zeros_like(image)
        return AdamState(image, zeros, zeros, step, loss)
    flat = tf.reshape(image, [-1])
    history = tf.zeros(tf.stack([LBFGS_HISTORY, tf.size(flat)]), tf.float32)
    return LBFGSState(
        image, flat, tf.zeros_like(flat), history, history, tf.constant(0, tf.int32), step, loss
    )


def advance(objective: Objective, optimizer: str, learning_rate, state, targets, weights, k):
    """Take ``k`` optimisation steps (a ``tf.while_loop``); returns the new state."""
    update = _adam_update if optimizer == "adam" else _lbfgs_update
    learning_rate = tf.cast(learning_rate, tf.float32)

    def body(i, state):
        with tf.GradientTape() as tape:
            tape.watch(state.image)
            loss = objective(state.image, targets, weights)["total"]
        grad = tape.gradient(loss, state.image)
        return i + 1, update(state, loss, grad, learning_rate)

    _, state = tf.while_loop(
        lambda i, _: i < k, body, (tf.constant(0, tf.int32), state), parallel_iterations=1
    )
    return state


def _adam_update(state: AdamState, loss, grad, learning_rate) -> AdamState:
    beta1, beta2 = ADAM_BETAS
    step = state.step + 1
    t = tf.cast(step, tf.float32)
    m = beta1 * state.m + (1.0 - beta1) * grad
    v = beta2 * state.v + (1.0 - beta2) * tf.square(grad)
    m_hat = m / (1.0 - beta1**t)
    v_hat = v / (1.0 - beta2**t)
    image = state.image - learning_rate * m_hat / (tf.sqrt(v_hat) + ADAM_EPSILON)
    return AdamState(tf.clip_by_value(image, 0.0, 1.0), m, v, step, loss)


def _lbfgs_update(state: LBFGSState, loss, grad, learning_rate) -> LBFGSState:
    """One L-BFGS step without line search, in a trust region, projected onto [0, 1]."""
    x = tf.reshape(state.image, [-1])
    g = tf.reshape(grad, [-1])
    s_new = x - state.prev_x
    y_new = g - state.prev_g
    sy = tf.tensordot(s_new, y_new, 1)
    accept = tf.logical_and(state.step > 0, sy > 1e-10)
    s = tf.where(accept, tf.concat([state.s[1:], s_new[None]], 0), state.s)
    y = tf.where(accept, tf.concat([state.y[1:], y_new[None]], 0), state.y)
    pairs = tf.minimum(state.pairs + tf.cast(accept, tf.int32), LBFGS_HISTORY)

    # Two-loop recursion over the valid rows (the last `pairs` of them).
    valid = tf.cast(tf.range(LBFGS_HISTORY) >= LBFGS_HISTORY - pairs, tf.float32)
    rho = valid / tf.where(valid > 0, tf.reduce_sum(s * y, axis=1), 1.0)
    q = g
    alphas = [None] * LBFGS_HISTORY
    for j in reversed(range(LBFGS_HISTORY)):
        alphas[j] = rho[j] * tf.tensordot(s[j], q, 1)
        q = q - alphas[j] * y[j]
    sy_last, yy_last = tf.tensordot(s[-1], y[-1], 1), tf.tensordot(y[-1], y[-1], 1)
    gamma = tf.where(pairs > 0, sy_last / tf.where(pairs > 0, yy_last, 1.0), 1.0)
    r = gamma * q
    for j in range(LBFGS_HISTORY):
        beta = rho[j] * tf.tensordot(y[j], r, 1)
        r = r + s[j] * (alphas[j] - beta)
    direction = -r

    # Not a descent direction (bad curvature after projection): fall back to the gradient.
    descent = tf.tensordot(direction, g, 1) < 0.0
    direction = tf.where(descent, direction, -g)
    pairs = tf.where(descent, pairs, 0)
    first = pairs == 0
    # The first step (no curvature yet) moves the largest pixel by LBFGS_MAX_STEP; later steps
    # are learning_rate times the quasi-Newton step, shrunk to that trust region if larger.
    largest = tf.maximum(tf.reduce_max(tf.abs(direction)), 1e-30)
    step_size = tf.where(
        first,
        LBFGS_MAX_STEP / largest,
        tf.minimum(learning_rate, LBFGS_MAX_STEP / largest),
    )
    new_x = tf.clip_by_value(x + step_size * direction, 0.0, 1.0)
    image = tf.reshape(new_x, tf.shape(state.image))
    return LBFGSState(image, x, g, s, y, pairs, state.step + 1, loss)


def finish(image: tf.Tensor, content: tf.Tensor, preserve_colors) -> tf.Tensor:
    """Final ``(H, W, 3)`` image: optionally with the content's colours (chrominance)."""
    image = image[0]
    if isinstance(preserve_colors, bool):
        return images.transfer_chrominance(image, content) if preserve_colors else image
    preserved = images.transfer_chrominance(image, content)
    return tf.where(tf.cast(preserve_colors, tf.bool), preserved, image)
