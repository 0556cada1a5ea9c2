"""Tiled steps (``tile_size``) against whole-image steps: time per step, and the peak memory of a
tiled run in a fresh process (issue 24's targets: a tiled step at most 2x a whole one where both
fit; a 4096 px float32 run under 12 GiB).

    python benchmarks/tiles.py --sizes 1024 2048 --tile-size 512        # step times
    python benchmarks/tiles.py --memory 4096 --tile-size 512 --steps 2  # peak RSS, fresh process
    python benchmarks/tiles.py --sizes --lbfgs 2048 4096  # the L-BFGS optimiser's own memory

Random VGG19 weights (time and memory do not depend on them), float32, the default layers.
Prints the CPU's flags; compare figures from one run only, with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import common
import tensorflow as tf

from tfstyle import images, options, pipeline


def step_seconds(size: int, tile_size: int | None, steps: int) -> tuple[float, float]:
    """Seconds per L-BFGS step at ``size`` (one scale), after a first step that traces; and
    the objective after them."""
    opts = options.Options(size=size, weights=None, seed=0, precision="float32",
                           tile_size=tile_size, min_scale=size)  # fmt: skip
    pipe = pipeline.get(opts)
    content = images.load_image(common.CONTENT, "content")
    style = images.load_image(common.STYLE, "style")
    request = pipeline.request_tensors(opts, 0)
    started = pipe.compiled.start(content, [style], [1.0], request, tf.constant(size), content)
    rate = tf.constant(opts.learning_rate_or_default)
    state = pipe.compiled.advance(started.state, started.targets, started.weights, rate, 1)
    begin = time.perf_counter()
    state = pipe.compiled.advance(state, started.targets, started.weights, rate, steps)
    float(state.state.loss)
    return (time.perf_counter() - begin) / steps, float(state.state.loss)


def peak_gib(size: int, tile_size: int, steps: int) -> dict:
    """A whole ``transfer`` at one scale of ``size`` px, tiled, in a fresh process."""
    code = (
        "import json, resource, time, tfstyle\n"
        "t = time.time()\n"
        f"tfstyle.transfer({common.CONTENT!r}, {common.STYLE!r}, size={size}, "
        f"min_scale={size}, iterations={steps}, tile_size={tile_size}, weights=None, seed=0, "
        "precision='float32', progress=False)\n"
        "print(json.dumps({'peak_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "'seconds': time.time() - t}))\n"
    )
    result = _in_fresh_process(code)
    return {"peak_gib": result["peak_kib"] / 2**20, "seconds": result["seconds"]}


def _in_fresh_process(code: str) -> dict:
    """The JSON that ``code``, run by a fresh Python, prints last."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def lbfgs_peak_gib(size: int, steps: int = 4) -> dict:
    """The L-BFGS optimiser's own memory at ``size`` px, in a fresh process: ``steps`` steps on
    a quadratic (no network), the peak RSS above the process's before them, and that in
    image-sized vectors (its history of 10 pairs is 20 of them)."""
    code = (
        "import json, resource, tensorflow as tf\n"
        "from tfstyle import optimize\n"
        f"x = tf.random.uniform([1, {size}, {size}, 3], seed=0)\n"
        f"target = tf.random.uniform([1, {size}, {size}, 3], seed=1)\n"
        "opt = optimize.get('lbfgs')\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "run = tf.function(lambda state: optimize.advance(\n"
        f"    lambda im: tf.reduce_sum(tf.square(im - target)), opt, 1.0, state, {steps}))\n"
        "float(run(opt.init(x)).loss)\n"
        "print(json.dumps({'before_kib': before,\n"
        "                  'peak_kib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n"
    )
    result = _in_fresh_process(code)
    extra = (result["peak_kib"] - result["before_kib"]) * 1024
    return {"gib": extra / 2**30, "vectors": extra / (size * size * 3 * 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[1024, 2048])
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--memory", type=int, nargs="*", default=[])
    p.add_argument("--lbfgs", type=int, nargs="*", default=[],
                   help="sizes at which to measure the L-BFGS optimiser's own memory")  # fmt: skip
    args = p.parse_args(argv)
    common.print_machine()
    print(f"float32, VGG19 (random weights), default layers, tile_size {args.tile_size}")
    for size in args.sizes:
        whole, whole_loss = step_seconds(size, None, args.steps)
        tiled, tiled_loss = step_seconds(size, args.tile_size, args.steps)
        ratio = tiled / whole
        print(
            f"{size} px: whole {whole:.2f} s a step, tiled {tiled:.2f} s ({ratio:.2f}x); "
            f"objective after {args.steps + 1} steps {whole_loss:.6g} vs {tiled_loss:.6g}"
        )
    for size in args.lbfgs:
        m = lbfgs_peak_gib(size)
        print(f"{size} px: L-BFGS's own peak {m['gib']:.2f} GiB, {m['vectors']:.1f} image-sized "
              "float32 vectors (its history of 10 pairs is 20)")  # fmt: skip
    for size in args.memory:
        m = peak_gib(size, args.tile_size, args.steps)
        print(f"{size} px tiled run, {args.steps} steps: peak RSS {m['peak_gib']:.2f} GiB, "
              f"{m['seconds']:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
