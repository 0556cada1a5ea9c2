#!/usr/bin/env python3
"""Speed benchmark: tfstyle's default optimisation against the TensorFlow tutorial's recipe.

Both optimise the same objective (tfstyle's network, weights, layers, loss definitions and loss
weights, content initialisation, the bundled example images, the same resolution). Prints a
table and writes ``speed.json`` and ``speed.png`` (objective versus wall-clock time) to --out.

    python benchmarks/speed.py                                  # defaults: < 10 minutes here
    python benchmarks/speed.py --weights vgg16_notop.weights.h5 --backbone vgg16

Sections:
- peak: a 4096 x 4096 float32 matrix product (`--peak-size`), the machine's practical peak GFLOP/s;
- per step: seconds per optimisation step at --size, the convolutions' FLOPs (forward and
  input-gradient passes) and the GFLOP/s achieved, next to the peak;
- baseline: the tutorial recipe (Adam, learning rate 0.02, beta_1 0.99, epsilon 0.1, one
  ``tf.function`` step per Python-loop iteration on a ``tf.Variable`` image) for --baseline-steps;
- tfstyle: ``tfstyle.transfer`` with its defaults; the wall time until its image, evaluated on the
  objective at the full --size, is at least as good as the baseline's final objective;
- the PyTorch tutorial's recipe (``torch_recipe.py``; needs ``pip install torch``, skipped
  otherwise): ``torch.optim.LBFGS`` with its defaults for --torch-evaluations, judged at the best
  point of its last 20 evaluations;
- shortest runs: the fewest ``iterations`` whose ``transfer`` run ends at each recipe's objective,
  and its wall time, with the default coarse-to-fine schedule and with every step at --size
  (past ``shared_iterations`` one run watched at each step finds the count: ``shortest_run``);
- memory: peak resident memory of a tfstyle run at each of --memory-sizes (a fresh process each).

Times exclude tracing (each method is run once before it is timed) and the objective evaluations
made only to draw the curves. Timings are medians over --repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import CONTENT, ROOT, STYLE, Problem, print_machine, used_precision  # noqa: E402

import tfstyle  # noqa: E402
from tfstyle import options, pipeline, precision  # noqa: E402


def measure_peak(repeats: int = 5, n: int = 4096) -> float:
    a = tf.random.stateless_uniform((n, n), seed=(1, 2))
    b = tf.random.stateless_uniform((n, n), seed=(3, 4))
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.linalg.matmul(x, y)))
    return 2 * n**3 / common.median_seconds(lambda: matmul(a, b).numpy(), repeats) / 1e9


def conv_flops(problem: Problem) -> float:
    """FLOPs of one step's convolutions: forward plus the input-gradient pass (same count)."""
    h, w = problem.content.shape[:2]
    total = 0.0
    extractor = problem.objective.extractor
    shapes = {}
    x = tf.zeros((1, h, w, 3))
    for layer in extractor.layers[1:]:
        x = layer(x)
        shapes[layer.name] = x.shape
        if isinstance(layer, tf.keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            total += 2.0 * x.shape[1] * x.shape[2] * cout * kh * kw * cin
    return 2 * total  # forward + input gradient


def time_per_step(
    problem: Problem, optimizer: str, precision: str, steps: int, repeats: int
) -> float:
    """Seconds per step of ``steps`` steps in one loop (tracing excluded)."""
    opts = problem.opts.replace(precision=precision, optimizer=optimizer)
    run = pipeline.get(opts).compiled
    lr = tf.constant(opts.learning_rate_or_default)
    state = pipeline.get(opts).optimizer.init(problem.content[None])
    k = tf.constant(steps)  # a tensor, as transfer passes it: one trace for any count
    run.advance(state, problem.targets, problem.weights, lr, k).image.numpy()  # trace
    return common.median_seconds(
        lambda: run.advance(state, problem.targets, problem.weights, lr, k).image.numpy(),
        repeats, per=steps,
    )  # fmt: skip


def calibrate(weights, backbone: str) -> tuple[float, precision.Choice]:
    """What ``precision="auto"`` costs on first use here (a fresh cache), and what it chooses."""
    import tempfile

    saved = {k: os.environ.pop(k, None) for k in (precision.CACHE_ENV, precision.ENV)}
    opts = options.Options(weights=weights, backbone=backbone)
    with tempfile.TemporaryDirectory() as cache:
        os.environ[precision.CACHE_ENV] = cache
        began = time.perf_counter()
        choice = pipeline.get(opts).precision
        seconds = time.perf_counter() - began
    for k, v in saved.items():
        os.environ.pop(k, None)
        if v is not None:
            os.environ[k] = v
    return seconds, choice


def time_transfer_per_step(problem: Problem, progress: bool, steps: int, repeats: int) -> float:
    """Seconds per step of a ``tfstyle.transfer`` call at the full size (tracing excluded)."""
    size = problem.options["size"]
    kwargs = {**problem.options, "seed": 0, "progress": progress, "iterations": steps,
              "min_scale": size}  # fmt: skip
    tfstyle.transfer(CONTENT, STYLE, **{**kwargs, "iterations": 2})  # trace
    return common.median_seconds(
        lambda: tfstyle.transfer(CONTENT, STYLE, **kwargs), repeats, per=steps
    )


def run_baseline(problem: Problem, steps: int) -> dict:
    """The TensorFlow tutorial's loop, on tfstyle's objective."""
    image = tf.Variable(problem.content[None])
    opt = tf.keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)
    objective, targets, weights = problem.objective, problem.targets, problem.weights

    @tf.function(autograph=False)  # plain Python: nothing for AutoGraph to convert
    def train_step(image):
        with tf.GradientTape() as tape:
            loss = objective(image, targets, weights)["total"]
        grad = tape.gradient(loss, image)
        opt.apply_gradients([(grad, image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        return loss

    train_step(image)  # trace, then start again from scratch
    image.assign(problem.content[None])
    for v in opt.variables:
        if "momentum" in v.path or "velocity" in v.path:
            v.assign(tf.zeros_like(v))
    opt.iterations.assign(0)
    curve, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        loss = float(train_step(image))  # the objective before this step's update
        curve.append((time.perf_counter() - start, step - 1, loss))
    wall = time.perf_counter() - start
    final = problem.value(image[0])
    curve.append((wall, steps, final))
    return {"wall_s": wall, "steps": steps, "final_objective": final, "curve": curve}


def run_tfstyle(problem: Problem, iterations: int, every: int, target: float) -> dict:
    """tfstyle.transfer with its defaults; the curve excludes the evaluation time."""
    curve, clock = [], {"paused": 0.0, "start": 0.0}

    def callback(step, losses, image):
        t = time.perf_counter()
        curve.append((t - clock["start"] - clock["paused"], step, problem.value(image)))
        clock["paused"] += time.perf_counter() - t

    kwargs = {**problem.options, "seed": 0, "progress": False}
    tfstyle.transfer(CONTENT, STYLE, iterations=2, **kwargs)  # trace
    clock["start"] = time.perf_counter()
    tfstyle.transfer(
        CONTENT, STYLE, iterations=iterations, callback=callback, callback_every=every, **kwargs
    )
    # transfer() evaluates the losses it passes to the callback: one forward pass a callback
    # that a plain run does not make. Subtract its measured cost.
    evaluate_s = _evaluate_seconds(problem)
    curve = [(t - evaluate_s * (k + 1), step, v) for k, (t, step, v) in enumerate(curve)]
    reached = next((c for c in curve if c[2] <= target), None)
    result = {
        "iterations": iterations,
        "curve": curve,
        "evaluate_s": evaluate_s,
        "steps_to_target": reached[1] if reached else None,
    }
    if reached:  # confirm with a clean run of the same schedule, stopped after that step
        image = _stopped_after(reached[1], iterations, kwargs)
        result["wall_to_target_s"] = image.wall_s
        result["objective_at_target"] = problem.value(np.asarray(image, np.float32) / 255.0)
    return result


def shortest_run(
    problem: Problem, target: float, extra: dict, limit: int, start: int = 8,
    tried: dict | None = None,
) -> dict | None:  # fmt: skip
    """The fewest ``iterations`` whose ``transfer`` run (its defaults, updated by ``extra``) ends
    at an image whose full-size objective is at most ``target``, to within 5 % (one iteration
    below 20). The run's wall time includes everything a user waits for but tracing. None if no
    run of at most ``limit`` iterations gets there.

    The counts tried: ``start``, then larger counts until a run gets there, then counts inside
    the bracket until it is within 5 %. Each next count is where a line through the two nearest
    runs' (log iterations, log objective) meets the target (``_next_count``): at 1024 px a run
    takes minutes, and the line needs fewer of them than growing by half and halving the
    bracket; where no line can be drawn, the count grows by half or the bracket is halved.

    ``tried`` (iterations -> that run's figures) holds the runs of earlier searches with the same
    ``extra``, and gets this search's: a run of the same count is not made again (its objective
    is that of a seeded run), and the search starts from the counts they bracket.

    Beyond ``shared_iterations`` a longer run takes the same coarse steps and only more at the
    full size, so a run of n iterations is the first n steps of any longer one: once the search
    passes that count, one run of ``limit`` iterations, stopped at the first full-size step whose
    objective is at most ``target`` (``_scan``), names the count, and a clean run of that count
    gives its wall time and final image (the next count below it is the scan's)."""
    kwargs = {**problem.options, "seed": 0, "progress": False, **extra}
    shared = kwargs.get("shared_iterations", options.DEFAULTS["shared_iterations"])
    tried = {} if tried is None else tried
    if not tried:
        tfstyle.transfer(CONTENT, STYLE, iterations=2, **kwargs)  # trace

    def reaches(n: int) -> bool:
        if n not in tried:
            began = time.perf_counter()
            image = tfstyle.transfer(CONTENT, STYLE, iterations=n, **kwargs)
            wall = time.perf_counter() - began
            value = problem.value(np.asarray(image, np.float32) / 255.0)
            tried[n] = {"iterations": n, "wall_s": wall, "objective": value}
            print(f"  {n} iterations: {wall:.1f} s -> {value:.4g} (target {target:.4g})",
                  flush=True)  # fmt: skip
        return tried[n]["objective"] <= target

    low = max((n for n, r in tried.items() if r["objective"] > target), default=0)
    above = [n for n, r in tried.items() if r["objective"] <= target and n > low]
    high = min(above) if above else None
    n = start if not tried else _next_count(tried, target, low, None)
    scanned = None
    while high is None:
        if n > limit:
            if low >= limit:
                return None
            n = limit
        if n > shared and scanned is None:
            after = max(low, shared)
            scanned = _scan(target, after, limit, kwargs)
            if scanned is None:
                return None
            first, sure = scanned
            if first - 1 > after:
                low = first - 1  # the scan saw that step miss
            # A clean run's final image is uint8 and may miss what the scan's float one reached:
            # then the count SCAN_MARGIN below the target.
            for n in (first, sure):
                if n is not None and n > low:
                    if reaches(n):
                        high = n
                        break
                    low = n
            n = _next_count(tried, target, low, None)
            continue
        if reaches(n):
            high = n
        else:
            low, n = n, _next_count(tried, target, n, None)
    while high - low > max(1, high // 20):
        n = _next_count(tried, target, low, high)
        low, high = (low, n) if reaches(n) else (n, high)
    return {**tried[high], "tried": [tried[k] for k in sorted(tried)]}


#: How far below the target ``_scan`` goes on to: the final image is rounded to uint8, which
#: raised the objective by 0.04 % at 512 px (2026-12-07).
SCAN_MARGIN = 0.002


def _scan(target: float, after: int, limit: int, kwargs: dict) -> tuple[int, int | None] | None:
    """The first step past ``after`` of a run of ``limit`` iterations at which the image's
    objective (at the full size: the callback's, in float32) is at most ``target``, and the
    first at which it is ``SCAN_MARGIN`` below it (None if the run ends first); None if the
    objective never gets there."""
    size, found = kwargs["size"], []

    def watch(step, losses, image):
        if step <= after or losses["scale"] != size or len(found) == 2:
            return
        if not found and losses["total"] <= target:
            found.append(step)
        if found and losses["total"] <= target * (1 - SCAN_MARGIN):
            found.append(step)
            raise KeyboardInterrupt  # transfer stops there

    began = time.perf_counter()
    try:
        tfstyle.transfer(CONTENT, STYLE, iterations=limit, callback=watch, callback_every=1,
                         **kwargs)  # fmt: skip
    except tfstyle.Interrupted:
        pass
    print(f"  one run of {limit} iterations, watched at each step past {after}: "
          + (f"at the target after {found[0]}" if found else "never at the target")
          + (f", {SCAN_MARGIN:.1%} below it after {found[1]}" if len(found) == 2 else "")
          + f" ({time.perf_counter() - began:.1f} s)", flush=True)  # fmt: skip
    return (found[0], found[1] if len(found) == 2 else None) if found else None


def _next_count(tried: dict, target: float, low: int, high: int | None) -> int:
    """The next count to try above ``low`` (a count that does not get there, or 0) and below
    ``high`` (the fewest that do, or None): where the line through the two runs nearest the
    target in (log iterations, log objective) meets it, aimed 10 % high while nothing gets there
    (the next run then likely does), and kept at least an eighth of the bracket from its ends;
    without such a line, half as many again as ``low``, or the bracket's middle."""
    points = sorted((n, r["objective"]) for n, r in tried.items() if n > 0 and r["objective"] > 0)
    if high is None:
        fallback = max(low + low // 2, low + 1)
        near = [p for p in points if p[0] <= low][-2:]
    else:
        fallback = (low + high) // 2
        near = [p for p in points if p[0] in (low, high)]
    if len(near) == 2 and near[0][1] != near[1][1]:
        (n0, v0), (n1, v1) = near
        slope = (np.log(v1) - np.log(v0)) / (np.log(n1) - np.log(n0))
        if slope < 0:  # more steps, lower objective: the line can be followed
            guess = n1 * float(np.exp((np.log(target) - np.log(v1)) / slope))
            if high is None:
                return int(min(max(guess * 1.1, low + max(1, low // 8)), 3 * low))
            width = high - low
            return int(min(max(guess, low + max(1, width // 8)), high - max(1, width // 8)))
    return fallback


def run_torch_recipe(problem: Problem, evaluations: int) -> dict:
    """The PyTorch tutorial's recipe on this objective (``torch_recipe.py``), if torch is
    installed and ``evaluations`` > 0; otherwise why not, under ``skipped``."""
    if evaluations <= 0:
        return {"skipped": "--torch-evaluations 0"}
    import torch_recipe

    try:
        recipe = torch_recipe.recipe_target(problem, evaluations)
    except ImportError as e:  # torch is imported only now
        print(f"PyTorch tutorial recipe: skipped ({e})")
        return {"skipped": str(e)}
    print(
        f"PyTorch tutorial recipe (torch {recipe['torch']}, {recipe['torch_threads']} threads): "
        f"{recipe['evaluations']} evaluations in {recipe['wall_s']:.1f} s; the best point of its "
        f"last {torch_recipe.LAST} evaluations (its final image ends on an update it never "
        f"evaluated): {recipe['best_last20']:.4g}, the final image: {recipe['final_objective']:.4g}"
    )
    return recipe


def _stopped_after(steps: int, iterations: int, kwargs: dict):
    """The image of a run of ``iterations`` (the schedule of scales depends on it) stopped after
    ``steps`` (one callback, there), with ``wall_s``: the time it took."""
    calls = []

    def stop(step, losses, image):
        calls.append(step)
        if len(calls) == 1 and step < iterations:
            raise KeyboardInterrupt  # transfer returns the image so far (full size)

    start = time.perf_counter()
    try:
        image = tfstyle.transfer(
            CONTENT, STYLE, iterations=iterations, callback=stop, callback_every=steps, **kwargs
        )
    except tfstyle.Interrupted as stopped:
        image = stopped.image
    image.wall_s = time.perf_counter() - start
    return image


def _evaluate_seconds(problem: Problem, repeats: int = 5) -> float:
    image = problem.content[None]
    evaluate = problem.pipeline.compiled.evaluate
    evaluate(image, problem.targets, problem.weights)
    t = time.perf_counter()
    for _ in range(repeats):
        evaluate(image, problem.targets, problem.weights)["total"].numpy()
    return (time.perf_counter() - t) / repeats


def _interpolate(curve, t: float) -> float | None:
    """Objective a method had reached at wall time t (the last point at or before t)."""
    before = [v for time_s, _, v in curve if time_s <= t]
    return before[-1] if before else None


def memory_child(size: int, weights, backbone: str, iterations: int) -> None:
    tfstyle.transfer(
        CONTENT,
        STYLE,
        size=size,
        min_scale=size,  # every step at the full size: the peak of a default run's last scale
        iterations=iterations,
        weights=weights,
        backbone=backbone,
        seed=0,
        progress=False,
    )
    print(
        json.dumps(
            {
                "size": size,
                "peak_rss_mib": peak_rss_mib(),
            }
        )
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory. ``ru_maxrss`` is not it: Linux carries it across
    ``exec`` from the forking parent, so a child would report the benchmark's own peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def measure_memory(size: int, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        str(size),
        "--backbone",
        args.backbone,
        "--weights",
        args.weights or "none",
        "--memory-iterations",
        str(args.memory_iterations),
    ]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode != 0:
        return {"size": size, "error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    return result


def plot(path: str, baseline: dict, ours: dict, title: str, recipe: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, run in (
        ("tutorial recipe (Adam 0.02, beta_1 0.99)", baseline),
        ("tfstyle default", ours),
    ):
        t = [c[0] for c in run["curve"]]
        v = [c[2] for c in run["curve"]]
        ax.semilogy(t, v, label=name)
    if recipe and recipe.get("curve"):  # the objective of each point it evaluated
        t, v = [c[0] for c in recipe["curve"]], [c[2] for c in recipe["curve"]]
        ax.semilogy(t, v, label="PyTorch tutorial recipe (LBFGS defaults)", alpha=0.7)
    ax.axhline(baseline["final_objective"], color="gray", ls=":", label="baseline's final")
    ax.set_xlabel("wall-clock seconds")
    ax.set_ylabel("objective at full resolution")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


@dataclasses.dataclass
class Bench:
    """What every section of a run uses: the options, the problem and the precisions."""

    args: argparse.Namespace
    weights: str | None
    problem: Problem
    label: str
    machine: dict
    flags: list
    calibration_s: float
    chosen: precision.Choice  # what precision="auto" chose
    ran: str  # what transfer() runs in: auto's choice, unless TFSTYLE_PRECISION forces one
    iterations: int
    optimizer: str


#: The sections a run may leave out (--sections); the TF tutorial's recipe always runs: its
#: objective is the target the others are measured against.
SECTIONS = ("step", "tfstyle", "torch", "shortest", "memory")
#: The shortest runs' schedules (--schedules): name -> transfer options at --size.
SCHEDULES = {"default": lambda size: {}, "single": lambda size: {"min_scale": size}}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--baseline-steps", type=int, default=200)
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="tfstyle steps to run for the curve (default: transfer's default)",
    )
    p.add_argument("--weights", default="none", help="a weights file, or none (random network)")
    p.add_argument("--backbone", default=options.DEFAULTS["backbone"])
    p.add_argument("--repeats", type=int, default=1, help="repeats of each timed run")
    p.add_argument("--memory-sizes", type=int, nargs="*", default=[256, 512, 1024])
    p.add_argument(
        "--precision-sizes",
        type=int,
        nargs="*",
        default=[512],
        help="more sizes at which to time a step in float32, bfloat16 and auto",
    )
    p.add_argument("--memory-iterations", type=int, default=3)
    p.add_argument("--peak-size", type=int, default=4096,
                   help="side of the float32 matmul that measures the CPU's peak GFLOP/s")
    p.add_argument(
        "--torch-evaluations",
        type=int,
        default=300,
        help="evaluations of the PyTorch tutorial's recipe (0: skip it; needs torch)",
    )
    p.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="what to measure besides the machine and the TF tutorial's recipe (default: all)",
    )
    p.add_argument(
        "--schedules",
        nargs="+",
        choices=SCHEDULES,
        default=list(SCHEDULES),
        help="tfstyle's schedules for the shortest runs: default (coarse to fine), single scale",
    )
    p.add_argument(
        "--start-iterations",
        type=int,
        default=8,
        help="the shortest runs' first try (then more until one gets there, then counts in "
        "the bracket, each where the last two runs' trend meets the target)",
    )
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def set_up(args: argparse.Namespace, weights: str | None) -> Bench:
    """The machine, what ``precision="auto"`` chooses and costs, and the problem at --size."""
    machine = precision._machine()
    flags = print_machine()
    calibration_s, chosen = calibrate(weights, args.backbone)
    print(f"precision auto -> {chosen}; the calibration took {calibration_s:.1f} s")
    problem = Problem(args.size, weights, args.backbone)
    label = (
        f"{args.backbone}, {'random' if weights is None else os.path.basename(weights)} "
        f"weights, {tuple(problem.content.shape[:2])} px"
    )
    print(f"tfstyle speed benchmark: {label}, TensorFlow {tf.__version__}, {os.cpu_count()} CPUs")
    auto = chosen.precision
    ran = used_precision(options.Options(weights=weights, backbone=args.backbone)).precision
    if ran != auto:
        print(f"{precision.ENV} is set: tfstyle's runs below use {ran}, not auto's {auto}")
    return Bench(
        args=args, weights=weights, problem=problem, label=label, machine=machine, flags=flags,
        calibration_s=calibration_s, chosen=chosen, ran=ran,
        iterations=args.iterations or options.DEFAULTS["iterations"],
        optimizer=options.DEFAULTS["optimizer"],
    )  # fmt: skip


def peak_section(bench: Bench) -> dict:
    """The float32 peak of the machine (printed with the per-step figures)."""
    return {"peak_gflops": measure_peak(n=bench.args.peak_size)}


def per_step_section(bench: Bench, peak: float) -> dict:
    """Seconds per step in float32 and bfloat16 at --size and each --precision-sizes, the FLOPs
    and GFLOP/s next to the peak, and a step of a default ``transfer`` call. With the machine's
    entries, in the order speed.json has always had."""
    args, problem, optimizer, ran = bench.args, bench.problem, bench.optimizer, bench.ran
    auto = bench.chosen.precision
    flops = conv_flops(problem)
    steps = {
        p: time_per_step(problem, optimizer, p, 5, max(args.repeats, 3))
        for p in ("float32", "bfloat16")
    }
    by_size = {args.size: steps}
    for size in args.precision_sizes:
        if size in by_size:  # --size itself: measured above
            continue
        other = Problem(size, bench.weights, args.backbone)
        by_size[size] = {
            p: time_per_step(other, optimizer, p, 3, max(args.repeats, 2))
            for p in ("float32", "bfloat16")
        }
    for size, s in by_size.items():
        print(
            f"a step at {size} px: float32 {s['float32']:.3f} s, bfloat16 {s['bfloat16']:.3f} s "
            f"({s['float32'] / s['bfloat16']:.2f}x float32), auto ({auto}) {s[auto]:.3f} s"
        )
    print(f"peak ({args.peak_size}^3 float32 matmul): {peak:.0f} GFLOP/s")
    for p, per_step in steps.items():
        achieved = flops / per_step / 1e9
        print(
            f"one {optimizer} step at {args.size} px, {p}: {per_step:.3f} s, "
            f"{flops / 1e9:.1f} GFLOP -> {achieved:.0f} GFLOP/s, {achieved / peak:.2f} of the "
            f"float32 peak (which allows {flops / 1e9 / peak:.3f} s: "
            f"ratio {per_step / (flops / 1e9 / peak):.2f})"
        )
    # What users get: a default transfer() call, with and without its progress bar.
    transfer_steps = {
        progress: time_transfer_per_step(problem, progress, 20, max(args.repeats, 2))
        for progress in (True, False)
    }
    for progress, s in transfer_steps.items():
        print(
            f"tfstyle.transfer at {args.size} px, progress {'on' if progress else 'off'}: "
            f"{s:.3f} s a step (20 steps, {ran})"
        )
    return {
        "step_flops": flops,
        "step_s": steps[ran],
        "step_s_by_precision": steps,
        "step_s_by_size_and_precision": by_size,
        "cpu": bench.machine["cpu"],
        "cpu_flags": bench.flags,
        "auto": {
            "precision": auto,
            "reason": bench.chosen.reason,
            "calibration_s": bench.calibration_s,
        },
        "transfer_step_s": {
            "progress_on": transfer_steps[True],
            "progress_off": transfer_steps[False],
        },
        "precision": ran,
        "step_gflops": flops / steps[ran] / 1e9,
    }


def baseline_section(bench: Bench) -> dict:
    """The TensorFlow tutorial's recipe for --baseline-steps, --repeats times (the median run)."""
    args = bench.args
    baselines = [run_baseline(bench.problem, args.baseline_steps) for _ in range(args.repeats)]
    walls = [b["wall_s"] for b in baselines]
    baseline = sorted(baselines, key=lambda b: b["wall_s"])[len(baselines) // 2]
    print(
        f"baseline: {args.baseline_steps} steps in {statistics.median(walls):.1f} s "
        f"(runs: {', '.join(f'{w:.1f}' for w in walls)}), final objective "
        f"{baseline['final_objective']:.4g}"
    )
    return {"baseline": baseline, "baseline_walls_s": walls}


def tfstyle_section(bench: Bench, baseline: dict) -> dict:
    """tfstyle's default run: when it reaches the baseline's final objective, and where it is at
    the baseline's wall time."""
    target, iterations = baseline["final_objective"], bench.iterations
    runs = [run_tfstyle(bench.problem, iterations, 2, target) for _ in range(bench.args.repeats)]
    ours = runs[len(runs) // 2]
    result = {"tfstyle": ours, "tfstyle_walls_s": [r.get("wall_to_target_s") for r in runs]}
    if ours.get("wall_to_target_s"):
        t = statistics.median(r["wall_to_target_s"] for r in runs if r.get("wall_to_target_s"))
        ratio = baseline["wall_s"] / t
        at_equal = _interpolate(baseline["curve"], t)
        result.update(ratio=ratio, baseline_objective_at_equal_time=at_equal)
        print(
            f"tfstyle: reaches {target:.4g} after {ours['steps_to_target']} steps in {t:.1f} s "
            f"(objective {ours['objective_at_target']:.4g}): {ratio:.1f}x faster; at {t:.1f} s "
            f"the baseline was at {at_equal:.4g}"
            if at_equal
            else ""
        )
    else:
        best = min(c[2] for c in ours["curve"])
        print(f"tfstyle: did not reach {target:.4g} in {iterations} steps (best {best:.4g})")

    at_baseline_end = _interpolate(ours["curve"], baseline["wall_s"])
    result["tfstyle_objective_at_baseline_wall"] = at_baseline_end
    last_t, _, last_v = ours["curve"][-1]
    if at_baseline_end is not None and last_t >= baseline["wall_s"]:
        print(
            f"at the baseline's {baseline['wall_s']:.1f} s: baseline {target:.4g}, "
            f"tfstyle {at_baseline_end:.4g}"
        )
    else:
        print(
            f"tfstyle's curve ends at {last_t:.1f} s with {last_v:.4g} "
            f"(the baseline's final: {target:.4g} at {baseline['wall_s']:.1f} s)"
        )
    return result


def torch_recipe_section(bench: Bench) -> dict:
    """The PyTorch tutorial's recipe, or why it was skipped."""
    return {"torch_recipe": run_torch_recipe(bench.problem, bench.args.torch_evaluations)}


def shortest_runs_section(bench: Bench, baseline: dict, recipe: dict) -> dict:
    """The recipes' objectives as targets; how long the shortest tfstyle run that reaches each
    takes, with the default coarse-to-fine schedule and with every step at the full size."""
    size, limit = bench.args.size, 4 * bench.iterations
    recipes = {"TF tutorial": {"wall_s": baseline["wall_s"], "target": baseline["final_objective"]}}
    if "best_last20" in recipe:
        recipes["PyTorch tutorial"] = {"wall_s": recipe["wall_s"], "target": recipe["best_last20"]}
    shortest = []
    tried = {schedule: {} for schedule in bench.args.schedules}  # runs shared by the recipes
    # The higher target first: its runs bracket the lower one's search.
    for name, r in sorted(recipes.items(), key=lambda item: -item[1]["target"]):
        for schedule in bench.args.schedules:
            extra = SCHEDULES[schedule](size)
            start = bench.args.start_iterations
            run = shortest_run(
                bench.problem, r["target"], extra, limit=limit, start=start, tried=tried[schedule]
            )
            schedule = {"single": "single scale"}.get(schedule, schedule)
            row = {"recipe": name, "schedule": schedule, "target": r["target"], "run": run}
            if run:
                row["ratio"] = r["wall_s"] / run["wall_s"]
            shortest.append(row)
            print(
                f"tfstyle ({schedule}) to the {name}'s {r['target']:.4g}: "
                + (
                    f"{run['iterations']} iterations, {run['wall_s']:.1f} s ({bench.ran}) -> "
                    f"{run['objective']:.4g}: {row['ratio']:.1f}x the recipe's {r['wall_s']:.1f} s"
                    if run
                    else f"not reached in {limit} iterations"
                )
            )
    return {"shortest_runs": shortest}


def memory_section(bench: Bench) -> dict:
    """Peak resident memory of a tfstyle run at each --memory-sizes, a fresh process each."""
    args = bench.args
    memory = [measure_memory(size, args) for size in args.memory_sizes]
    for m in memory:
        print(
            f"memory at {m['size']} px: "
            + (
                f"peak RSS {m['peak_rss_mib']:.0f} MiB "
                f"({args.memory_iterations} steps, {m['wall_s']:.0f} s with start-up)"
                if "error" not in m
                else f"failed: {m['error']}"
            )
        )
    return {"memory": memory}


def print_table(bench: Bench, result: dict) -> None:
    """The summary table of a run's ``result`` (speed.json's entries; the sections a run left
    out have no rows)."""
    args, ran = bench.args, bench.ran
    peak, flops = result["peak_gflops"], result.get("step_flops")
    baseline, ours = result["baseline"], result.get("tfstyle")
    transfer_steps = {}
    if "transfer_step_s" in result:
        transfer_steps = {True: result["transfer_step_s"]["progress_on"],
                          False: result["transfer_step_s"]["progress_off"]}  # fmt: skip
    rows = [
        ("float32 matmul peak", f"{peak:.0f} GFLOP/s"),
        *[
            (
                f"step at {args.size} px, {p}",
                f"{s:.3f} s ({flops / s / 1e9:.0f} GFLOP/s, "
                f"{s / (flops / 1e9 / peak):.2f}x what the peak allows)",
            )
            for p, s in result.get("step_s_by_precision", {}).items()
        ],
        *[
            (f"transfer() step, progress {'on' if p else 'off'}, {ran}", f"{s:.3f} s")
            for p, s in transfer_steps.items()
        ],
        (
            f"baseline, {args.baseline_steps} steps",
            f"{baseline['wall_s']:.1f} s -> {baseline['final_objective']:.4g}",
        ),
        *(
            [
                (
                    "tfstyle to that objective",
                    f"{ours.get('wall_to_target_s') or 0:.1f} s ({ours['steps_to_target']} steps)"
                    if ours.get("wall_to_target_s")
                    else "not reached",
                ),
                ("speed-up", f"{result['ratio']:.1f}x" if "ratio" in result else "-"),
            ]
            if ours
            else []
        ),
        *[
            (
                f"shortest run to the {r['recipe']} ({r['schedule']})",
                f"{r['run']['wall_s']:.1f} s, {r['run']['iterations']} its: {r['ratio']:.1f}x"
                if r["run"]
                else "not reached",
            )
            for r in result.get("shortest_runs", [])
        ],
        *[
            (
                f"peak memory at {m['size']} px",
                f"{m['peak_rss_mib']:.0f} MiB" if "error" not in m else m["error"],
            )
            for m in result.get("memory", [])
        ],
    ]
    width = max(len(name) for name, _ in rows)
    print("\n" + "\n".join(f"{name:<{width}}  {value}" for name, value in rows))


#: The figures of the sections done so far, in --out while a run goes on (speed.json at the end).
PARTIAL = "speed.partial.json"


def write_results(bench: Bench, result: dict) -> None:
    """speed.json and speed.png in --out."""
    out = bench.args.out
    with open(os.path.join(out, "speed.json"), "w") as f:
        json.dump(result, f, indent=1)
    if "tfstyle" not in result:
        print(f"wrote {out}/speed.json (no tfstyle curve to plot: --sections left it out)")
        return
    plot(os.path.join(out, "speed.png"), result["baseline"], result["tfstyle"], bench.label,
         result.get("torch_recipe"))  # fmt: skip
    print(f"wrote {out}/speed.json and speed.png")


def main(argv=None) -> int:
    args = parse_args(argv)
    weights = None if args.weights.lower() == "none" else args.weights
    if args.memory_child:
        memory_child(args.memory_child, weights, args.backbone, args.memory_iterations)
        return 0
    os.makedirs(args.out, exist_ok=True)
    bench = set_up(args, weights)
    result = {"label": bench.label, "size": args.size}
    partial = os.path.join(args.out, PARTIAL)

    def measured(section: dict) -> None:
        """``section``'s figures into ``result``, and all so far into ``PARTIAL``: a run of
        hours stopped half-way keeps what it measured."""
        result.update(section)
        with open(partial + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(partial + ".tmp", partial)

    sections = set(args.sections)
    measured(peak_section(bench))
    if "step" in sections:
        measured(per_step_section(bench, result["peak_gflops"]))
    measured(baseline_section(bench))
    if "tfstyle" in sections:
        measured(tfstyle_section(bench, result["baseline"]))
    recipe = torch_recipe_section(bench) if "torch" in sections else {}
    measured(recipe)
    if "shortest" in sections:
        measured(shortest_runs_section(bench, result["baseline"], recipe.get("torch_recipe", {})))
    if "memory" in sections:
        measured(memory_section(bench))
    print_table(bench, result)
    write_results(bench, result)
    os.remove(partial)
    return 0


if __name__ == "__main__":
    sys.exit(main())
