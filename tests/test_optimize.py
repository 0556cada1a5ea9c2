"""The optimisers on problems with known answers: a convex quadratic inside the [0, 1] box."""

import numpy as np
import pytest
import tensorflow as tf

from tfstyle import optimize

SHAPE = (1, 4, 5, 3)
RNG = np.random.default_rng(0)
CENTRE = tf.constant(RNG.uniform(0.2, 0.8, SHAPE), tf.float32)  # the minimum, inside the box
CURVATURE = tf.constant(RNG.uniform(1.0, 10.0, SHAPE), tf.float32)  # condition number ~10


def quadratic(image):
    return 0.5 * tf.reduce_sum(CURVATURE * tf.square(image - CENTRE))


def run(name, steps, start=None, learning_rate=None):
    opt = optimize.get(name)
    start = tf.zeros(SHAPE) if start is None else start
    state = opt.init(start)
    lr = opt.learning_rate if learning_rate is None else learning_rate
    return optimize.advance(quadratic, opt, lr, state, steps)


@pytest.mark.parametrize("name, steps, tolerance", [("lbfgs", 40, 1e-4), ("adam", 400, 2e-2)])
def test_reaches_the_known_minimum(name, steps, tolerance):
    state = run(name, steps)
    np.testing.assert_allclose(state.image.numpy(), CENTRE.numpy(), atol=tolerance)
    assert int(state.step) == steps


def test_lbfgs_beats_gradient_descent_sized_steps():
    # Quasi-Newton: after 15 steps far closer than Adam after the same number.
    lbfgs = float(quadratic(run("lbfgs", 15).image))
    adam = float(quadratic(run("adam", 15).image))
    assert lbfgs < 1e-3 * adam


def test_minimum_outside_the_box_is_projected():
    opt = optimize.get("lbfgs")

    def outside(image):  # minimum at 1.5: the constrained minimum is the box's edge, 1
        return tf.reduce_sum(tf.square(image - 1.5))

    state = optimize.advance(outside, opt, 1.0, opt.init(tf.zeros(SHAPE)), 30)
    np.testing.assert_allclose(state.image.numpy(), 1.0, atol=1e-6)


def test_lbfgs_trust_region():
    opt = optimize.get("lbfgs")
    state = opt.init(tf.fill(SHAPE, 0.5))
    previous = state.image.numpy()
    for step in range(8):
        state = optimize.advance(quadratic, opt, 100.0, state, 1)  # a huge learning rate
        moved = np.abs(state.image.numpy() - previous).max()
        if step == 0:  # the first step moves the largest pixel by exactly the trust region
            assert moved == pytest.approx(optimize.LBFGS_MAX_STEP, rel=1e-5)
        assert moved <= optimize.LBFGS_MAX_STEP + 1e-6
        previous = state.image.numpy()


def test_lbfgs_falls_back_to_the_gradient_on_bad_curvature():
    opt = optimize.get("lbfgs")
    x = tf.fill(SHAPE, 0.5)
    g = tf.reshape(tf.cast(tf.range(60), tf.float32) / 60.0 - 0.3, SHAPE)
    state = opt.init(x)
    n = int(tf.size(x))
    # A stored pair with negative curvature (s . y < 0): the two-loop recursion then points
    # uphill, and the update must take the steepest-descent step instead and forget the pairs.
    s = (*[tf.zeros([n])] * (opt.history - 1), tf.ones([n]))
    state = state._replace(
        s=s,
        y=tuple(-row for row in s),
        pairs=tf.constant(1),
        step=tf.constant(1),
        prev_x=tf.reshape(x, [-1]) + 1.0,
    )
    # prev_x / prev_g chosen so that the new pair is rejected too (s . y = -n <= 0).
    state = state._replace(prev_g=tf.reshape(g, [-1]) - 1.0)
    new = opt.update(state, tf.constant(0.0), g, tf.constant(1.0))
    assert int(new.pairs) == 0
    expected = np.clip(x - optimize.LBFGS_MAX_STEP / np.abs(g).max() * g, 0, 1)
    np.testing.assert_allclose(new.image.numpy(), expected, atol=1e-6)


def test_adam_first_step_is_the_learning_rate_times_the_sign():
    opt = optimize.get("adam")
    state = optimize.advance(quadratic, opt, 0.01, opt.init(tf.fill(SHAPE, 0.5)), 1)
    grad = (CURVATURE * (0.5 - CENTRE)).numpy()
    np.testing.assert_allclose(state.image.numpy(), 0.5 - 0.01 * np.sign(grad), atol=1e-6)


def test_chunks_equal_one_loop():
    opt = optimize.get("lbfgs")
    whole = optimize.advance(quadratic, opt, 1.0, opt.init(tf.zeros(SHAPE)), 9)
    state = opt.init(tf.zeros(SHAPE))
    for k in (1, 3, 5):
        state = optimize.advance(quadratic, opt, 1.0, state, k)
    np.testing.assert_array_equal(state.image.numpy(), whole.image.numpy())


@pytest.mark.parametrize("name", ["sgd", "LBFGS", None, 3])
def test_unknown_optimizer_is_a_clear_error(name):
    with pytest.raises(ValueError, match=r"optimizer must be one of 'adam', 'lbfgs'; got"):
        optimize.get(name)


@pytest.mark.parametrize("name", list(optimize.OPTIMIZERS))
def test_advance_stops_at_the_first_non_finite_objective(name):
    optimizer = optimize.get(name)

    def loss_fn(image):  # finite while the mean pixel stays above 0.8, then inf
        mean = tf.reduce_mean(image)
        return tf.reduce_sum(image) * tf.where(mean > 0.8, 1.0, float("inf"))

    start = tf.ones((1, 8, 8, 3))
    state = optimize.advance(loss_fn, optimizer, 0.05, optimizer.init(start), 50)
    assert not np.isfinite(float(state.loss))
    assert 0 < int(state.step) < 50  # stopped early, at the step that went non-finite
    mean = float(tf.reduce_mean(state.image))  # the first image whose objective is inf
    assert 0.8 - optimize.LBFGS_MAX_STEP <= mean <= 0.8


@pytest.mark.parametrize("name", ["adam", "lbfgs"])
def test_average_of_the_iterates(name):
    opt = optimize.get(name)
    iterates, state = [], opt.init(tf.zeros(SHAPE))
    for _ in range(6):
        state = optimize.advance(quadratic, opt, opt.learning_rate, state, 1)
        iterates.append(state.image.numpy())
    decay = 0.7
    averaged = optimize.advance(
        quadratic, opt, opt.learning_rate, optimize.averaged(opt.init(tf.zeros(SHAPE)), decay), 6
    )
    # The iterates are the plain run's; the image is their bias-corrected moving average.
    np.testing.assert_array_equal(averaged.state.image.numpy(), iterates[-1])
    weights = [(1 - decay) * decay ** (5 - k) for k in range(6)]
    expected = sum(w * x for w, x in zip(weights, iterates, strict=True)) / sum(weights)
    np.testing.assert_allclose(averaged.image.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert int(averaged.step) == 6 and float(averaged.loss) == float(state.loss)
    # Decay 0 is the last iterate exactly; before any step, the starting image.
    last = optimize.advance(
        quadratic, opt, opt.learning_rate, optimize.averaged(opt.init(tf.zeros(SHAPE)), 0.0), 6
    )
    np.testing.assert_array_equal(last.image.numpy(), iterates[-1])
    start = optimize.averaged(opt.init(tf.fill(SHAPE, 0.5)), decay)
    np.testing.assert_array_equal(start.image.numpy(), np.full(SHAPE, 0.5, np.float32))
