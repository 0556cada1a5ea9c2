#!/usr/bin/env python3
"""What splitting one optimisation into bounded requests costs (issue 10, long jobs).

A served run in chunks of N steps starts each chunk from the image the last one returned: the
L-BFGS history (curvature pairs) is lost at every boundary, and an image carried as a PNG is
also rounded to 8 bits. This runs ``--steps`` L-BFGS steps at one scale (``--size``, the
example images) in one loop and in chunks of each ``--chunks``, with the state rebuilt from the
image at each boundary (float32, and rounded to uint8 as a PNG would carry it), and prints the
final objective and the wall time of each.

    python benchmarks/chunking.py --weights vgg16_notop.weights.h5 --backbone vgg16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from tfstyle import optimize, pipeline  # noqa: E402


def run(problem: common.Problem, steps: int, chunk: int, rounded: bool) -> dict:
    """``steps`` steps in chunks of ``chunk``, each chunk from a fresh optimiser state."""
    pipe = pipeline.get(problem.opts)
    compiled = pipe.compiled
    lr = tf.constant(problem.opts.learning_rate_or_default)
    image = problem.content[None]
    start = time.perf_counter()
    done = 0
    while done < steps:
        k = min(chunk, steps - done)
        state = optimize.averaged(pipe.optimizer.init(image), 0.0)
        state = compiled.advance(state, problem.targets, problem.weights, lr, tf.constant(k))
        image = state.image
        if rounded:  # what a PNG carries between requests
            image = tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255.0) / 255.0
        done += k
    image.numpy()
    wall = time.perf_counter() - start
    return {"chunk": chunk, "rounded": rounded, "wall_s": wall,
            "objective": problem.value(image[0])}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--chunks", type=int, nargs="*", default=[10, 25, 50, 100])
    p.add_argument("--weights", default="none", help="a weights file, or none (random network)")
    p.add_argument("--backbone", default="vgg19")
    p.add_argument("--out", default=None, help="write chunking.json here")
    args = p.parse_args(argv)
    weights = None if args.weights.lower() == "none" else args.weights
    problem = common.Problem(args.size, weights, args.backbone)
    common.print_machine(problem.opts)
    run(problem, 2, 1, False)  # trace
    results = [run(problem, args.steps, args.steps, False)]
    for chunk in args.chunks:
        results += [run(problem, args.steps, chunk, False), run(problem, args.steps, chunk, True)]
    whole = results[0]
    print(f"{args.steps} L-BFGS steps at {tuple(problem.content.shape[:2])} px, float32:")
    for r in results:
        label = "one request" if r is whole else f"chunks of {r['chunk']}"
        label += ", uint8 between" if r["rounded"] else ""
        print(
            f"  {label:<28} objective {r['objective']:.4g} "
            f"({r['objective'] / whole['objective']:.2f}x), {r['wall_s']:.1f} s"
        )
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "chunking.json"), "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
