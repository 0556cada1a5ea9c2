"""The speed benchmark measures what it says: the same objective for both methods, real FLOPs."""

import json
import os
import sys

import numpy as np
import pytest

import tfstyle

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
# Plain imports: a benchmark script that no longer imports fails these tests, not skips them.
import common  # noqa: E402
import speed  # noqa: E402

pytestmark = pytest.mark.slow


def test_problem_objective_is_transfers_objective():
    problem = common.Problem(32, None, "vgg19")
    seen = []
    for precision in ("float32", "auto"):
        tfstyle.transfer(
            common.CONTENT,
            common.STYLE,
            size=32,
            iterations=0,
            weights=None,
            progress=False,
            precision=precision,
            callback=lambda *a: seen.append(a),
        )
    assert problem.value(problem.content) == pytest.approx(seen[0][1]["total"], rel=1e-6)
    # The default (bfloat16 convolutions where the hardware has them) optimises the same
    # objective up to bfloat16 rounding.
    assert problem.value(problem.content) == pytest.approx(seen[1][1]["total"], rel=0.02)


def test_conv_flops_match_a_hand_count():
    problem = common.Problem(32, None, "vgg19")  # content 32x32, layers up to block5_conv1
    convs = [
        (32, 3, 64),
        (32, 64, 64),
        (16, 64, 128),
        (16, 128, 128),
        (8, 128, 256),
        (8, 256, 256),
        (8, 256, 256),
        (8, 256, 256),
        (4, 256, 512),
        (4, 512, 512),
        (4, 512, 512),
        (4, 512, 512),
        (2, 512, 512),
    ]
    forward = sum(2 * side * side * cout * 9 * cin for side, cin, cout in convs)
    assert speed.conv_flops(problem) == 2 * forward


def test_trust_region_bounds_every_lbfgs_step(content_array, style_array):
    from tfstyle import optimize

    images = []
    tfstyle.transfer(
        content_array,
        style_array,
        size=48,
        iterations=6,
        weights=None,
        seed=0,
        optimizer="lbfgs",
        progress=False,
        callback_every=1,
        callback=lambda step, losses, image: images.append(image),
    )
    steps = [np.abs(b - a).max() for a, b in zip(images, images[1:], strict=False)]
    assert max(steps) <= optimize.LBFGS_MAX_STEP + 1e-6
    assert max(steps) > 0.01  # and it does move


def test_script_runs_and_writes_results(tmp_path, capsys):
    # In this process (its memory runs are fresh processes of the script itself). At 16 px, the
    # smallest size: a bfloat16 step, emulated on a CPU without it, costs a sixth of 32 px's.
    argv = ["--size", "16", "--baseline-steps", "6", "--iterations", "10", "--memory-sizes", "32",
            "--memory-iterations", "1", "--precision-sizes", "16", "--peak-size", "1024",
            "--torch-evaluations", "20", "--out", str(tmp_path)]  # fmt: skip
    assert speed.main(argv) == 0
    out = capsys.readouterr().out
    assert "GFLOP/s" in out and "baseline: 6 steps" in out
    with open(tmp_path / "speed.json") as f:
        result = json.load(f)
    assert result["peak_gflops"] > 0 and result["step_s"] > 0
    assert "CPU: " in out and "precision auto -> " in out
    steps = result["step_s_by_size_and_precision"]
    assert set(steps) == {"16"} and all(s["float32"] > 0 < s["bfloat16"] for s in steps.values())
    assert result["auto"]["precision"] in ("float32", "bfloat16")
    assert len(result["baseline"]["curve"]) == 7
    assert result["memory"][0]["peak_rss_mib"] > 100
    assert (tmp_path / "speed.png").stat().st_size > 1000
    # The PyTorch recipe runs where torch is installed (an optional benchmark dependency).
    recipe = result["torch_recipe"]
    assert ("best_last20" in recipe) != ("skipped" in recipe)
    rows = result["shortest_runs"]
    assert len(rows) == (4 if "best_last20" in recipe else 2)
    for row in rows:
        if row["run"]:  # the fewest iterations that get there; one fewer did not
            assert row["run"]["objective"] <= row["target"]
            fewer = [t for t in row["run"]["tried"] if t["iterations"] < row["run"]["iterations"]]
            assert all(t["objective"] > row["target"] for t in fewer[-1:])
    assert "shortest run to the TF tutorial (default)" in out


def test_torch_objective_equals_tensorflows():
    pytest.importorskip("torch")
    import torch_recipe

    problem = common.Problem(32, None, "vgg19")
    objective, check = torch_recipe.checked_objective(problem)
    for name in ("content", "random"):
        assert check[name]["rel"] < torch_recipe.TOLERANCE, check
    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    value = float(objective(torch_recipe.to_torch(image)))
    assert value == pytest.approx(problem.value(image), rel=1e-4)


def test_quality_script_runs_and_reproduces_the_old_objective(tmp_path):
    import quality

    from tfstyle import options, pipeline

    # "old" is the objective before per-area weights: content and TV summed over positions.
    opts = options.Options(weights=None)
    old = quality.old_weights(48, opts)  # the example content is square: 48 x 48
    assert old["content_weight"] * pipeline.AREA_REFERENCE / 48**2 == opts.content_weight
    assert old["tv_weight"] * pipeline.AREA_REFERENCE / 48**2 == opts.tv_weight
    argv = ["--sizes", "32", "48", "--iterations", "3", "--same-time", "--precision", "float32"]
    assert quality.main([*argv, "--set", "min_scale=16", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "quality.json") as f:
        rows = json.load(f)["results"]
    assert [(r["run"], r["size"]) for r in rows] == [
        ("new", 32), ("single-scale, same time", 32), ("old", 32),
        ("new", 48), ("single-scale, same time", 48), ("old", 48),
    ]  # fmt: skip
    assert all(r["objective"] > 0 and 0 < r["gram_distance"] < 2 for r in rows)
    assert (tmp_path / "sizes.jpg").stat().st_size > 1000


def test_chunking_script_rebuilds_the_state_at_each_chunk(tmp_path, capsys):
    import chunking

    assert chunking.main(["--size", "32", "--steps", "4", "--chunks", "2", "4",
                          "--out", str(tmp_path)]) == 0  # fmt: skip
    with open(tmp_path / "chunking.json") as f:
        results = json.load(f)
    whole, *chunked = results
    assert (whole["chunk"], whole["rounded"]) == (4, False)
    # One chunk of all the steps is the one request, exactly; two chunks are another run.
    four = next(r for r in chunked if r["chunk"] == 4 and not r["rounded"])
    assert four["objective"] == whole["objective"]
    two = next(r for r in chunked if r["chunk"] == 2 and not r["rounded"])
    assert two["objective"] != whole["objective"]
    assert "chunks of 2, uint8 between" in capsys.readouterr().out


def test_script_measures_only_the_sections_asked_for(tmp_path, capsys):
    argv = ["--size", "32", "--baseline-steps", "6", "--iterations", "10", "--peak-size", "256",
            "--sections", "shortest", "--schedules", "default", "--start-iterations", "2",
            "--torch-evaluations", "0", "--out", str(tmp_path)]  # fmt: skip
    assert speed.main(argv) == 0
    out = capsys.readouterr().out
    with open(tmp_path / "speed.json") as f:
        result = json.load(f)
    assert not {"tfstyle", "memory", "torch_recipe", "step_s"} & set(result)
    [row] = result["shortest_runs"]  # the TF recipe's target, the default schedule only
    assert row["schedule"] == "default"
    if row["run"]:
        assert row["run"]["tried"][0]["iterations"] == 2
    assert "shortest run to the TF tutorial (default)" in out and "baseline: 6 steps" in out
    assert "  2 iterations: " in out  # each try, as it ends
    assert not (tmp_path / "speed.png").exists()
    assert not (tmp_path / speed.PARTIAL).exists()  # the whole result is in speed.json


def test_a_run_stopped_half_way_keeps_the_sections_it_measured(tmp_path, monkeypatch):
    def stopped(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(speed, "shortest_runs_section", stopped)
    argv = ["--size", "16", "--baseline-steps", "2", "--peak-size", "64", "--sections",
            "shortest", "--torch-evaluations", "0", "--out", str(tmp_path)]  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        speed.main(argv)
    with open(tmp_path / speed.PARTIAL) as f:
        kept = json.load(f)
    assert kept["peak_gflops"] > 0 and len(kept["baseline"]["curve"]) == 3
    assert not (tmp_path / "speed.json").exists()


def test_shortest_runs_of_two_targets_share_their_runs(monkeypatch):
    # The higher target's search, then the lower one's with its runs: no count is run twice,
    # and each answer is the fewest that get there (the next count below it did not).
    problem = common.Problem(16, None, "vgg19")
    extra = speed.SCHEDULES["default"](16)
    made = []
    transfer = speed.tfstyle.transfer

    def counted(*args, **kwargs):
        made.append(kwargs["iterations"])
        return transfer(*args, **kwargs)

    monkeypatch.setattr(speed.tfstyle, "transfer", counted)
    tried = {}
    first = speed.shortest_run(problem, problem.value(problem.content) * 0.9, extra, 60, 2, tried)
    lower = first["objective"] * 0.3  # some steps more (a count or two more did not do)
    searched = len(made)
    second = speed.shortest_run(problem, lower, extra, 60, 2, tried)
    assert first and second and second["iterations"] > first["iterations"]
    assert made[0] == 2 and len(set(made[1:])) == len(made) - 1  # traced once; no count twice
    assert made[searched:] and min(made[searched:]) > first["iterations"]  # from where it ended
    below = max((t for t in tried.values() if t["iterations"] < second["iterations"]),
                key=lambda t: t["iterations"])  # fmt: skip
    assert second["objective"] <= lower < below["objective"]


def test_shortest_run_past_shared_iterations_is_one_watched_run(monkeypatch):
    # Past shared_iterations a run is the start of any longer one: one run of the limit, stopped
    # where it gets there, then a clean run of that count; the count below does not get there.
    problem = common.Problem(16, None, "vgg19")
    extra = {"shared_iterations": 3}
    made = []
    transfer = speed.tfstyle.transfer

    def counted(*args, **kwargs):
        made.append(kwargs["iterations"])
        return transfer(*args, **kwargs)

    kwargs = {**problem.options, **extra, "seed": 0, "progress": False}

    def value(iterations):
        image = transfer(common.CONTENT, common.STYLE, iterations=iterations, **kwargs)
        return problem.value(np.asarray(image, np.float32) / 255.0)

    target = value(12) * 1.01  # some steps past shared_iterations
    monkeypatch.setattr(speed.tfstyle, "transfer", counted)
    run = speed.shortest_run(problem, target, extra, 60, 2, {})
    assert run and 3 < run["iterations"] <= 12 and run["objective"] <= target
    assert made.count(60) == 1 and made[-1] == run["iterations"]  # the watched run, then clean
    assert value(run["iterations"] - 1) > target
