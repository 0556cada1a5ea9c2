#!/usr/bin/env python3
"""Batch throughput: images per minute of ``tfstyle batch`` on Beam's local runner, by workers.

Makes --images distinct content images (crops of the bundled photo, flipped alternately, the
longer side --size px), then stylises them with the bundled style at --size with
``tfstyle batch`` once per --workers value, each a fresh process into a fresh OUT_DIR, and
prints the wall time (start-up included: Python, TensorFlow, worker processes, the network and
its tracing, as a user sees it) and the images per minute of each, and the ratio to the first.

    python benchmarks/batch.py                                 # 16 images at 128 px, 1 and 2
    python benchmarks/batch.py --size 256 --images 8           # the README's 256 px figure
    python benchmarks/batch.py --images 2 --size 32 --iterations 2 --workers 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from tfstyle import options  # noqa: E402


def make_images(directory: str, count: int, size: int) -> None:
    """``count`` distinct crops of the bundled photo, longer side ``size`` px, as PNGs."""
    photo = PIL.Image.open(common.CONTENT).convert("RGB")
    rng = np.random.default_rng(0)
    side = min(photo.size) * 3 // 4
    for k in range(count):
        x = int(rng.integers(0, photo.width - side + 1))
        y = int(rng.integers(0, photo.height - side * 3 // 4 + 1))
        crop = photo.crop((x, y, x + side, y + side * 3 // 4)).resize((size, size * 3 // 4))
        if k % 2:
            crop = crop.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(os.path.join(directory, f"{k:03d}.png"))


def run_batch(inputs: str, out_dir: str, workers: int, args) -> dict:
    """One ``tfstyle batch`` run in a fresh process: its wall time and counts."""
    command = [
        sys.executable, "-m", "tfstyle", "batch", inputs, common.STYLE, "-o", out_dir, "-q",
        "--workers", str(workers), "--size", str(args.size), "--iterations",
        str(args.iterations), "--weights", args.weights, "--precision", args.precision,
        "--seed", "0",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = re.search(r"(\d+) done, (\d+) skipped, (\d+) failed", done.stderr)
    if done.returncode != 0 or not summary:
        raise SystemExit(f"tfstyle batch failed ({done.returncode}): {done.stderr.strip()}")
    images = int(summary.group(1))
    return {
        "workers": workers, "images": images, "wall_s": round(wall, 2),
        "images_per_minute": round(60 * images / wall, 2), "summary": done.stderr.strip(),
    }  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--iterations", type=int, default=options.DEFAULTS["iterations"])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--weights", default="none", help="a weights file, or none (random network)")
    p.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"))
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    args = p.parse_args(argv)

    weights = None if args.weights == "none" else args.weights
    common.print_machine(options.Options(weights=weights, precision=args.precision))
    print(
        f"{args.images} images of {args.size} px (longer side), {args.iterations} iterations "
        f"each, default schedule; wall time includes start-up"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="tfstyle-batch-bench-") as work:
        inputs = os.path.join(work, "in")
        os.mkdir(inputs)
        make_images(inputs, args.images, args.size)
        for workers in args.workers:
            result = run_batch(inputs, os.path.join(work, f"out-{workers}"), workers, args)
            results.append(result)
            ratio = result["images_per_minute"] / results[0]["images_per_minute"]
            print(
                f"workers {workers}: {result['wall_s']:.1f} s, "
                f"{result['images_per_minute']:.2f} images/min ({ratio:.2f}x workers "
                f"{results[0]['workers']}); {result['summary'].removeprefix('tfstyle: ')}"
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
