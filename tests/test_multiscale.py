"""Coarse-to-fine optimisation: the ladder of sizes, the targets at each, the hand-over between
scales, and what the callback, the progress bar and Ctrl-C see (random network, tiny images)."""

import sys
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

import tfstyle
from tfstyle import images, options, pipeline

FAST = {"size": 64, "weights": None, "progress": False, "seed": 0, "precision": "float32"}


def schedule(shape, iterations, style_shape=(64, 64, 3), **kwargs):
    request = pipeline.request_tensors(options.Options(**{**FAST, **kwargs}), 0)
    sizes, steps = pipeline.schedule(
        tf.constant(shape), [tf.constant(style_shape)], tf.constant(iterations), request
    )
    return sizes.numpy().tolist(), steps.numpy().tolist()


@pytest.mark.parametrize(
    "shape, iterations, kwargs, sizes, steps",
    [
        # The defaults: 256, 512, 1024, the steps falling by 0.38 a scale and summing to 200; at
        # 256 px one scale.
        ((768, 1024, 3), 200, {"size": 1024}, [256, 512, 1024], [131, 50, 19]),
        ((768, 1024, 3), 200, {"size": 512}, [256, 512], [145, 55]),
        ((768, 1024, 3), 200, {"size": 256}, [256], [200]),
        ((768, 1024, 3), 200, {"size": 1024, "min_scale": 128, "steps_ratio": 0.4},
         [128, 256, 512, 1024], [123, 49, 20, 8]),
        ((768, 1024, 3), 200, {"size": 1024, "min_scale": 128, "steps_ratio": 1.0},
         [128, 256, 512, 1024], [50, 50, 50, 50]),
        # The ladder keeps its proportions (scale_span 8): a print gets the 2048 px run's shares.
        ((768, 1024, 3), 200, {"size": 2048}, [256, 512, 1024, 2048], [127, 48, 18, 7]),
        ((768, 1024, 3), 200, {"size": 4096}, [512, 1024, 2048, 4096], [127, 48, 18, 7]),
        ((768, 1024, 3), 200, {"size": 4000}, [500, 1000, 2000, 4000], [127, 48, 18, 7]),
        ((768, 1024, 3), 200, {"size": 4096, "scale_span": 4096, "min_scale": 128},
         [128, 256, 512, 1024, 2048, 4096], [124, 48, 18, 6, 3, 1]),
        ((768, 1024, 3), 200, {"size": 1024, "scale_span": 2, "min_scale": 16}, [512, 1024],
         [145, 55]),
        # Beyond shared_iterations (200) every step is at the full size: the coarse steps are
        # those of a 200-iteration run, however long the run.
        ((768, 1024, 3), 1000, {"size": 1024}, [256, 512, 1024], [131, 50, 819]),
        ((768, 1024, 3), 201, {"size": 1024}, [256, 512, 1024], [131, 50, 20]),
        ((768, 1024, 3), 100, {"size": 1024, "shared_iterations": 50, "min_scale": 128},
         [128, 256, 512, 1024], [32, 12, 4, 52]),
        ((768, 1024, 3), 9, {"size": 1024, "shared_iterations": 0}, [1024], [9]),
        ((768, 1024, 3), 60, {"size": 1024, "shared_iterations": 100, "min_scale": 128},
         [128, 256, 512, 1024], [38, 14, 6, 2]),  # fewer than shared_iterations: shared as before
        # The last scale is size itself, however the factor falls.
        ((48, 64, 3), 10, {"size": 300, "min_scale": 100, "scale_factor": 1.5},
         [100, 150, 225, 300], [6, 3, 0, 1]),  # the last scale gets a step
        ((48, 64, 3), 1, {"size": 512, "steps_ratio": 0.01}, [512], [1]),
        # min_scale at or above size: one scale, as before multi-scale.
        ((48, 64, 3), 7, {"size": 64, "min_scale": 64}, [64], [7]),
        ((48, 64, 3), 7, {"size": 64, "min_scale": 4096}, [64], [7]),
        # A wide image starts where its shorter side is 16 px: 16 * 640 / 40 = 256.
        ((40, 640, 3), 9, {"size": 1024, "steps_ratio": 1.0, "min_scale": 128}, [256, 512, 1024],
         [3, 3, 3]),
        # ... and where a style's shorter side is 16 px: 16 * 400 / 40 = 160; 16 / 0.1 = 160.
        ((48, 64, 3), 8, {"size": 1024, "steps_ratio": 1.0, "style_shape": (40, 400, 3),
                          "min_scale": 128}, [160, 320, 640, 1024], [2, 2, 2, 2]),
        ((48, 64, 3), 8, {"size": 1024, "steps_ratio": 1.0, "style_scale": 0.1, "min_scale": 128},
         [160, 320, 640, 1024], [2, 2, 2, 2]),
        # Scales that would get no step before the first that does are dropped.
        ((48, 64, 3), 2, {"size": 512, "min_scale": 64, "steps_ratio": 16.0}, [512], [2]),
        ((48, 64, 3), 0, {"size": 512, "min_scale": 64}, [512], [0]),
    ],
)  # fmt: skip
def test_the_ladder_of_sizes_and_the_steps(shape, iterations, kwargs, sizes, steps):
    assert schedule(shape, iterations, **kwargs) == (sizes, steps)


def test_steps_always_sum_to_iterations():
    rng = np.random.default_rng(0)
    for _ in range(30):
        iterations = int(rng.integers(0, 5000))
        kwargs = {
            "size": int(rng.integers(16, 4097)),
            "min_scale": int(rng.integers(16, 4097)),
            "scale_span": float(rng.uniform(1, 4096)),
            "scale_factor": float(rng.uniform(1.1, 16)),
            "steps_ratio": float(rng.uniform(0.01, 16)),
            "shared_iterations": int(rng.integers(0, 5000)),
        }
        sizes, steps = schedule((300, 400, 3), iterations, **kwargs)
        assert sum(steps) == iterations and min(steps) >= 0, kwargs
        assert sizes[-1] == kwargs["size"] and sizes == sorted(set(sizes)), kwargs


def test_targets_are_computed_at_each_scale(content_array, style_array):
    opts = options.Options(**FAST)
    pipe = pipeline.get(opts)
    request = pipeline.request_tensors(opts, 0)
    objective = pipe.objective
    for size in (32, 64):
        started = pipe.start(content_array, [style_array], [1.0], request, size, content_array)
        content = images.resize_longer_side(content_array, size)
        style = images.resize_longer_side(style_array, size)
        expected = objective.targets(content, [style], [1.0])
        assert started.content.shape[:2] == content.shape[:2]
        for got, want in zip(started.targets.style, expected.style, strict=True):
            np.testing.assert_array_equal(got, want)
        assert int(started.state.step) == 0  # a fresh optimiser state


def test_each_scale_starts_from_the_previous_result_upsampled(content_array, style_array):
    # steps_ratio 1e-6 gives 2 of 3 steps to the 32 px scale and 1 (the last scale's least) to
    # the 64 px one: the result is one step at 64 px from the 32 px run's image, upsampled.
    seen = []
    tfstyle.transfer(
        content_array, style_array, iterations=2, callback=lambda *a: seen.append(a),
        **{**FAST, "size": 32},
    )  # fmt: skip
    small = seen[-1][2]
    assert small.shape == (24, 32, 3)
    upsampled = images.resize(small, 48, 64).numpy()
    expected = tfstyle.transfer(content_array, style_array, iterations=1, init=upsampled, **FAST)
    result = tfstyle.transfer(
        content_array, style_array, iterations=3, min_scale=32, steps_ratio=1e-6, **FAST
    )
    np.testing.assert_array_equal(np.asarray(result), np.asarray(expected))


def test_callback_and_progress_bar_report_the_scale(content_array, style_array, capsys):
    calls = []
    tfstyle.transfer(
        content_array, style_array, iterations=6, min_scale=32, steps_ratio=1.0,
        callback=lambda *a: calls.append(a), callback_every=2, **{**FAST, "progress": True},
    )  # fmt: skip
    assert [(step, losses["scale"], image.shape) for step, losses, image in calls] == [
        (2, 32, (24, 32, 3)),
        (4, 64, (48, 64, 3)),
        (6, 64, (48, 64, 3)),
    ]
    err = capsys.readouterr().err
    assert "32 px 1/2" in err and "64 px 2/2" in err and "6/6" in err


def test_ctrl_c_at_a_coarse_scale_returns_an_image_of_the_full_size(content_array, style_array):
    seen = []

    def stop(step, losses, image):
        seen.append(image.shape)
        if len(seen) == 1:  # as Ctrl-C would, once
            raise KeyboardInterrupt

    with pytest.raises(tfstyle.Interrupted) as caught:
        tfstyle.transfer(
            content_array, style_array, iterations=6, min_scale=32, callback=stop,
            callback_every=1, **FAST,
        )  # fmt: skip
    assert caught.value.step == 1 and caught.value.image.size == (64, 48)
    # Interrupted in the callback, which is called again with the image returned (as for any
    # Ctrl-C): step 1's image at its own scale, 32 px.
    assert seen == [(24, 32, 3), (24, 32, 3)]


def test_a_thin_style_raises_the_first_scale_or_is_named_at_size(content_array):
    wide = np.zeros((40, 400, 3), np.float32)  # 16 px high only at 160 px and above
    with pytest.raises(ValueError, match=r"^style: a 400x40 image becomes 64x6 at 64 px"):
        tfstyle.transfer(content_array, wide, iterations=2, min_scale=32, **FAST)
    image = tfstyle.transfer(
        content_array, wide, iterations=2, min_scale=32, **{**FAST, "size": 160}
    )  # first scale raised from 32 to 160 px
    assert image.size == (160, 120)


def test_a_style_too_large_fails_before_the_first_scale(content_array, style_array):
    calls = []
    with pytest.raises(ValueError, match=r"^style_scale: .* 4800 px \(style_scale 16 x 300 px\)"):
        tfstyle.transfer(
            content_array, style_array, iterations=2, size=300, style_scale=16, min_scale=32,
            callback=lambda *a: calls.append(a), callback_every=1,
            **{k: v for k, v in FAST.items() if k != "size"},
        )  # fmt: skip
    assert calls == []  # no scale ran


def test_the_pipelines_used_most_recently_are_kept(monkeypatch):
    # A long-lived process (the page, a batch) alternating between sets of options: the one in
    # use again is kept, and the one unused longest goes (each holds a network and its traced
    # steps; building one is what this test replaces, to count the builds).
    built = []
    monkeypatch.setattr(pipeline, "_PIPELINES", {})
    monkeypatch.setattr(pipeline, "Pipeline", lambda opts: built.append(opts) or SimpleNamespace())
    base = options.Options(weights=None, precision="float32")
    sets = [base.replace(style_layer_weights=(float(i),) * 5) for i in range(9)]
    for opts in sets[:8]:
        pipeline.get(opts)
    pipeline.get(sets[0])  # used again: now the most recent
    pipeline.get(sets[8])  # a ninth: the least recently used (sets[1]) goes
    assert len(built) == 9
    pipeline.get(sets[0])
    assert len(built) == 9  # kept
    pipeline.get(sets[1])
    assert len(built) == 10  # built again


def test_threads_asking_for_one_pipeline_get_one(monkeypatch):
    # The page runs several runs at once: a pipeline in use was briefly out of the cache as it
    # became the most recent, and another thread then built it again (a review, 2026-12-08).
    built = []
    monkeypatch.setattr(pipeline, "_PIPELINES", {})
    monkeypatch.setattr(pipeline, "Pipeline", lambda opts: built.append(opts) or SimpleNamespace())
    opts = options.Options(weights=None, precision="float32")
    got = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        threads = [
            threading.Thread(target=lambda: got.extend(pipeline.get(opts) for _ in range(2000)))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(built) == 1 and len(got) == 8000 and len({id(p) for p in got}) == 1
