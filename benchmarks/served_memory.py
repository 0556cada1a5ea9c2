#!/usr/bin/env python3
"""Memory and time of the served model per request (issue 10, resource bounds).

Exports the model (random VGG19 weights unless ``--weights``: memory and time do not depend on
the weights), then, for each ``--sizes`` x ``--concurrent``, a fresh process loads it the way
``tensorflow_model_server`` does (``tf.compat.v1.saved_model.loader.load`` into one session,
default session options: one inter-op and one intra-op pool of all cores), replays a small
warm-up request, and runs that many ``stylize`` requests at once from as many threads, at one
scale (``min_scale = size``: the largest scale's memory from the first step). An export whose
``max_size`` is above 1024 takes the requests above 1024 px in tiles (``export.tiling_for``). It
prints the peak resident memory (``VmHWM``) after the warm-up (the loaded model) and after the
requests, the memory per request ((peak - loaded) / concurrent), and the seconds per step (one
request: the difference between a request of ``--steps`` steps and one of 1 step).

    python benchmarks/served_memory.py --sizes 512 1024 --concurrent 1 2 \\
        --out benchmarks/results/<date>-served-memory
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, os.pardir, "examples")


def vm_hwm_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(path: str, size: int, concurrent: int, steps: int, rounds: int = 1) -> dict:
    """In a fresh process: load ``path``, warm up, run the requests; the figures as a dict."""
    import tensorflow as tf

    from tfstyle import signature as sig

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
    stylize = meta.signature_def[sig.STYLIZE_SIGNATURE]
    with open(os.path.join(EXAMPLES, "content.jpg"), "rb") as f:
        content = f.read()
    with open(os.path.join(EXAMPLES, "style.png"), "rb") as f:
        style = f.read()

    def request(px: int, iterations: int) -> float:
        feeds = {
            stylize.inputs[sig.CONTENT].name: content,
            stylize.inputs[sig.STYLE].name: style,
            stylize.inputs[sig.ITERATIONS].name: iterations,
            stylize.inputs["size"].name: px,
            stylize.inputs["min_scale"].name: px,
        }
        start = time.perf_counter()
        session.run(stylize.outputs[sig.IMAGE_BYTES].name, feed_dict=feeds)
        return time.perf_counter() - start

    request(64, 1)  # what the warm-up leaves behind is part of the loaded model
    loaded = vm_hwm_gib()
    result = {"size": size, "concurrent": concurrent, "loaded_gib": loaded}
    if concurrent == 1:
        one = request(size, 1)
        result["peak_first_gib"] = vm_hwm_gib()  # after one request alone
        many = request(size, steps)
        result.update(request_1_step_s=one, request_s=many, steps=steps,
                      step_s=(many - one) / (steps - 1))  # fmt: skip
    else:
        walls = [0.0] * concurrent

        def run(i):
            walls[i] = request(size, steps)

        peaks, rounds_s = [], []
        for _ in range(rounds):  # memory a long-running server keeps (allocator fragments)
            threads = [threading.Thread(target=run, args=(i,)) for i in range(concurrent)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rounds_s.append(time.perf_counter() - start)
            peaks.append(vm_hwm_gib())
        result.update(wall_s=rounds_s[0], rounds_s=rounds_s, request_s=walls, steps=steps,
                      peak_after_each_round_gib=peaks)  # fmt: skip
    peak = vm_hwm_gib()
    result.update(peak_gib=peak, per_request_gib=(peak - loaded) / concurrent)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--concurrent", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=4, help="steps of the timed request")
    p.add_argument("--weights", default="none", help="a weights file, or none (random network)")
    p.add_argument("--backbone", default="vgg19")
    p.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--model", default=None, help="an exported version directory to measure")
    p.add_argument("--out", default=None, help="write served_memory.json and output.txt here")
    p.add_argument("--rounds", type=int, default=1,
                   help="times the concurrent requests are sent, one after the other")
    p.add_argument("--child", nargs=5, metavar=("PATH", "SIZE", "N", "STEPS", "ROUNDS"),
                   help=argparse.SUPPRESS)  # fmt: skip
    args = p.parse_args(argv)
    if args.child:
        path, size, n, steps, rounds = args.child
        print(json.dumps(child(path, int(size), int(n), int(steps), int(rounds))))
        return 0

    sys.path.insert(0, HERE)
    import common  # noqa: E402
    import tensorflow as tf

    import tfstyle

    lines = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    flags = common.print_machine()
    lines.append(f"CPU flags: {' '.join(flags) or 'no avx2/avx512f/avx512_bf16/amx'}")
    say(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, precision {args.precision}")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model
        if path is None:
            weights = None if args.weights.lower() == "none" else args.weights
            path = tfstyle.export_saved_model(
                os.path.join(tmp, "tfstyle"), weights=weights, backbone=args.backbone,
                seed=0, precision=args.precision, size=min(args.sizes),
                max_size=max(args.sizes), warmup=False,
            )  # fmt: skip
        from tfstyle import signature as sig

        with open(os.path.join(path, sig.METADATA_FILE)) as f:
            meta = json.load(f)
        say(f"export: max_size {meta['max_size']}, tile_size {meta['options']['tile_size']} "
            "(requests above it in tiles)")  # fmt: skip
        results = []
        for size in args.sizes:
            for n in args.concurrent:
                command = [sys.executable, __file__, "--child", path, str(size), str(n),
                           str(args.steps), str(args.rounds)]  # fmt: skip
                out = subprocess.run(command, capture_output=True, text=True)
                if out.returncode != 0:
                    why = (out.stderr.strip().splitlines() or ["?"])[-1]
                    say(f"{size} px x {n}: failed: {why}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results.append(r)
                timing = (
                    f"{r['step_s']:.2f} s a step" if n == 1
                    else f"{r['wall_s']:.0f} s for {n} requests of {r['steps']} steps at once; "
                    "peak after each round: "
                    + ", ".join(f"{g:.2f}" for g in r["peak_after_each_round_gib"]) + " GiB"
                )  # fmt: skip
                say(
                    f"{size} px, {n} at once: loaded {r['loaded_gib']:.2f} GiB, peak "
                    f"{r['peak_gib']:.2f} GiB, {r['per_request_gib']:.2f} GiB a request; {timing}"
                )
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "served_memory.json"), "w") as f:
            json.dump({"precision": args.precision, "results": results}, f, indent=1)
        with open(os.path.join(args.out, "output.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
