"""Image optimisers: Adam and L-BFGS as small objects whose whole state is a tuple of tensors.

No ``tf.Variable`` and no Keras optimizer: the state is carried through a ``tf.while_loop``, so
the Python API and the exported SavedModel signature run the very same graph, and concurrent
requests on one TF Serving session cannot interfere. ``advance`` takes ``k`` steps in one loop.

Each optimiser has ``name``, ``learning_rate`` (its default), ``init(image)`` (the state at step
0) and ``update(state, loss, grad, learning_rate)`` (one step). ``get(name)`` looks one up in
``OPTIMIZERS`` and is the one place where an unknown name fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

#: Largest change of any pixel in one L-BFGS step (a trust region). Without it the first steps
#: overshoot by orders of magnitude (measured: see README); smaller caps slow convergence.
LBFGS_MAX_STEP = 0.3


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
    # One (n,) tensor a pair, not a (history, n) stack: shifting a tuple copies no pixels, where
    # a stack's concat and where held three copies of it at once (63 image-sized buffers, 12
    # GiB at 4096 px: benchmarks/tiles.py --lbfgs).
    s: tuple  # `history` iterate differences (n,), newest last
    y: tuple  # `history` gradient differences (n,), newest last
    pairs: tf.Tensor  # int32, number of valid rows at the end of s and y
    step: tf.Tensor
    loss: tf.Tensor


class Adam:
    """Adam on the pixels, projected onto [0, 1] after each step."""

    name = "adam"
    learning_rate = 0.05  # on pixels in [0, 1]; measured: see README
    betas = (0.9, 0.999)
    epsilon = 1e-8

    def init(self, image: tf.Tensor) -> AdamState:
        """State at step 0 for a starting image ``(1, H, W, 3)``."""
        image = tf.convert_to_tensor(image, tf.float32)
        zeros = tf.zeros_like(image)
        return AdamState(image, zeros, zeros, tf.constant(0), tf.constant(float("nan")))

    def update(self, state: AdamState, loss, grad, learning_rate) -> AdamState:
        beta1, beta2 = self.betas
        step = state.step + 1
        t = tf.cast(step, tf.float32)
        m = beta1 * state.m + (1.0 - beta1) * grad
        v = beta2 * state.v + (1.0 - beta2) * tf.square(grad)
        m_hat = m / (1.0 - beta1**t)
        v_hat = v / (1.0 - beta2**t)
        image = state.image - learning_rate * m_hat / (tf.sqrt(v_hat) + self.epsilon)
        return AdamState(tf.clip_by_value(image, 0.0, 1.0), m, v, step, loss)


def _dot(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """The dot product of two vectors: ``tf.tensordot(a, b, 1)``'s own matmul (the same
    arithmetic, so the same bits), built from 3 ops where tensordot builds about 20 for its
    general shapes (a tenth of the step's tracing time went to them)."""
    return tf.reshape(tf.matmul(tf.reshape(a, [1, -1]), tf.reshape(b, [-1, 1])), [])


class LBFGS:
    """L-BFGS without line search, in a trust region, projected onto [0, 1].

    ``learning_rate`` multiplies the quasi-Newton step, which is also kept within
    ``LBFGS_MAX_STEP`` per pixel; the first step (no curvature yet) moves the largest pixel by
    exactly ``LBFGS_MAX_STEP``.
    """

    name = "lbfgs"
    learning_rate = 1.0
    history = 10  # curvature pairs kept

    def init(self, image: tf.Tensor) -> LBFGSState:
        """State at step 0 for a starting image ``(1, H, W, 3)``."""
        image = tf.convert_to_tensor(image, tf.float32)
        flat = tf.reshape(image, [-1])
        rows = tuple(tf.zeros_like(flat) for _ in range(self.history))
        zero = tf.constant(0)
        return LBFGSState(
            image, flat, tf.zeros_like(flat), rows, rows, zero, zero, tf.constant(float("nan"))
        )

    def update(self, state: LBFGSState, loss, grad, learning_rate) -> LBFGSState:
        history = self.history
        x = tf.reshape(state.image, [-1])
        g = tf.reshape(grad, [-1])
        s_new = x - state.prev_x
        y_new = g - state.prev_g
        sy = _dot(s_new, y_new)
        accept = tf.logical_and(state.step > 0, sy > 1e-10)
        s, y = tf.cond(
            accept,
            lambda: ((*state.s[1:], s_new), (*state.y[1:], y_new)),
            lambda: (tuple(state.s), tuple(state.y)),
        )
        pairs = tf.minimum(state.pairs + tf.cast(accept, tf.int32), history)

        # Two-loop recursion over the valid rows (the last `pairs` of them).
        valid = tf.cast(tf.range(history) >= history - pairs, tf.float32)
        sy_rows = tf.stack([_dot(s[j], y[j]) for j in range(history)])
        rho = valid / tf.where(valid > 0, sy_rows, 1.0)
        q = g
        alphas = [None] * history
        for j in reversed(range(history)):
            alphas[j] = rho[j] * _dot(s[j], q)
            q = q - alphas[j] * y[j]
        sy_last, yy_last = _dot(s[-1], y[-1]), _dot(y[-1], y[-1])
        gamma = tf.where(pairs > 0, sy_last / tf.where(pairs > 0, yy_last, 1.0), 1.0)
        r = gamma * q
        for j in range(history):
            beta = rho[j] * _dot(y[j], r)
            r = r + s[j] * (alphas[j] - beta)
        direction = -r

        # Not a descent direction (bad curvature after projection): fall back to the gradient.
        descent = _dot(direction, g) < 0.0
        direction = tf.where(descent, direction, -g)
        pairs = tf.where(descent, pairs, 0)
        first = pairs == 0
        largest = tf.maximum(tf.reduce_max(tf.abs(direction)), 1e-30)
        step_size = tf.where(
            first,
            LBFGS_MAX_STEP / largest,
            tf.minimum(learning_rate, LBFGS_MAX_STEP / largest),
        )
        new_x = tf.clip_by_value(x + step_size * direction, 0.0, 1.0)
        image = tf.reshape(new_x, tf.shape(state.image))
        return LBFGSState(image, x, g, s, y, pairs, state.step + 1, loss)


class Averaged(NamedTuple):
    """An optimiser's state and an exponential moving average of its images.

    The average is bias-corrected (as in crowsonkb/style-transfer-pytorch): after ``n`` steps it
    is ``total / (1 - decay ** n)``; with ``decay`` 0 it is the last image exactly. ``image`` is
    the average (the starting image before any step), ``loss`` and ``step`` the optimiser's.
    """

    state: tuple  # the optimiser's state: its image is the iterate the steps are taken from
    total: tf.Tensor  # (1, H, W, 3): sum over steps of decay ** (n - k) * (1 - decay) * image_k
    weight: tf.Tensor  # 1 - decay ** n
    decay: tf.Tensor

    @property
    def image(self) -> tf.Tensor:
        mean = self.total / tf.maximum(self.weight, 1e-30)
        return tf.where(self.weight > 0, mean, self.state.image)

    @property
    def loss(self) -> tf.Tensor:
        return self.state.loss

    @property
    def step(self) -> tf.Tensor:
        return self.state.step


def averaged(state, decay) -> Averaged:
    """``state`` with an average of the images to come (none yet), ``decay`` in [0, 1)."""
    zero = tf.constant(0.0)
    return Averaged(state, tf.zeros_like(state.image), zero, tf.cast(decay, tf.float32))


#: The optimisers by name.
OPTIMIZERS = {opt.name: opt for opt in (Adam(), LBFGS())}


def get(name: str):
    """The optimiser called ``name``; a ``ValueError`` naming the allowed ones otherwise."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        allowed = ", ".join(repr(n) for n in OPTIMIZERS)
        raise ValueError(f"optimizer must be one of {allowed}; got {name!r}")
    return OPTIMIZERS[name]


def advance(loss_fn: Callable[[tf.Tensor], tf.Tensor], optimizer, learning_rate, state, k,
            value_and_gradient=None):  # fmt: skip
    """Take ``k`` steps of ``optimizer`` on ``loss_fn(image)`` in one ``tf.while_loop``.

    The loop stops early at the first image whose objective or gradient is not finite: the state
    holds that image, ``state.step`` the steps that led to it, ``state.loss`` the objective (nan
    if only the gradient was not finite).

    Args:
        loss_fn: the scalar objective of an image ``(1, H, W, 3)``.
        optimizer: an optimiser object (``get(name)``).
        learning_rate: float or scalar tensor.
        state: the optimiser's state (``optimizer.init(image)`` or a previous ``advance``), or
            an ``Averaged`` one (``averaged``), whose average is then updated after each step.
        k: int or int32 scalar tensor, steps to take.
        value_and_gradient: ``(loss, gradient)`` of an image, for an objective whose gradient
            is not one tape's (tiled steps, ``tfstyle.tiles``); None differentiates ``loss_fn``.

    Returns:
        The new state; ``state.loss`` is the objective of the last image evaluated.
    """
    learning_rate = tf.cast(learning_rate, tf.float32)

    def step(state):
        if value_and_gradient is not None:
            loss, grad = value_and_gradient(state.image)
        else:
            with tf.GradientTape() as tape:
                tape.watch(state.image)
                loss = loss_fn(state.image)
            grad = tape.gradient(loss, state.image)
        finite = tf.math.is_finite(loss) & tf.reduce_all(tf.math.is_finite(grad))
        state = tf.cond(
            finite,
            lambda: optimizer.update(state, loss, grad, learning_rate),
            # Stop here, keeping the last finite image; a finite loss with a non-finite
            # gradient is reported as nan, so that the caller sees the run stopped.
            lambda: state._replace(loss=tf.where(tf.math.is_finite(loss), float("nan"), loss)),
        )
        return finite, state

    def body(i, ok, state):
        if not isinstance(state, Averaged):
            return (i + 1, *step(state))
        finite, inner = step(state.state)
        keep = 1.0 - state.decay
        total = tf.where(finite, state.decay * state.total + keep * inner.image, state.total)
        weight = tf.where(finite, state.decay * state.weight + keep, state.weight)
        return i + 1, finite, Averaged(inner, total, weight, state.decay)

    _, _, state = tf.while_loop(
        lambda i, ok, _: (i < k) & ok,
        body,
        (tf.constant(0), tf.constant(True), state),
        parallel_iterations=1,
    )
    return state
