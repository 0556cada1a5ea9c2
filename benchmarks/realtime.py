#!/usr/bin/env python3
"""Real-time mode (``tfstyle train``, ``tfstyle.realtime``) against the optimisation.

0. **Training cost** at ``tfstyle train``'s defaults: the FLOPs of a step (counted from its
   graph), its seconds on this CPU, and the default run's time here and, estimated from the
   FLOPs, on GPUs (``GPU_RATES``; none here to measure on). ``--cost-steps 0`` skips it.
1. **Training**: a network for the bundled style, trained here on scikit-image's sample
   photos (``--photos``; package-shipped, so no download) less the held-out ones, in random
   ``--size`` px crops: steps, images, wall time and seconds per step, with the machine.
2. **Latency** of one image at 256, 512 and 1024 px in process (``realtime.stylize``'s forward
   pass) and through the exported model as TensorFlow Serving runs it (the SavedModel's
   ``serving_default``, PNG in and out), and **throughput** with batching (several 256 px
   images in one request), against the optimisation's time for the same image (a default
   ``transfer``, at ``--optimise-sizes``).
3. **Quality** on the held-out photos, judged by the optimisation's own objective at 256 px
   (float32, each photo its own content): the network's output, the optimisation given the
   network's time (as many steps as fit), and the optimisation run to the end (its defaults);
   plus a side-by-side picture (``realtime.jpg``: photo, network, optimisation at equal time,
   optimisation to the end).

Writes ``realtime.json`` and ``realtime.jpg`` under ``--out`` and prints the tables with the
CPU's flags. Random weights (without ``--weights``) give a blur, not a style: time only.

    python benchmarks/realtime.py --weights vgg16_notop.weights.h5 --backbone vgg16 \\
        --photos DIR_OF_SKIMAGE_DATA --out DIR
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfstyle  # noqa: E402
from tfstyle import images, options, pipeline, realtime  # noqa: E402

#: GPUs for the estimate of a training run's time (not measured: none here), each at half its
#: float32 peak (NVIDIA's data sheets), the share of the peak a convolutional network's training
#: step commonly reaches.
GPU_RATES = {"T4 (8.1 TFLOPS float32)": 8.1e12 / 2, "L4 (30.3)": 30.3e12 / 2,
             "A100 (19.5; TF32 off)": 19.5e12 / 2}  # fmt: skip

#: scikit-image's samples kept out of training, to judge the network on.
HELD_OUT = ("chelsea.png", "coffee.png")
#: Samples that are not photographs (test patterns, text, logos): not trained on.
NOT_PHOTOS = ("chessboard_GRAY.png", "chessboard_RGB.png", "logo.png", "text.png", "page.png",
              "microaneurysms.png", "phantom.png", "horse.png", "clock_motion.png")  # fmt: skip


def photos_dir(given: str | None) -> str:
    """``given``, or scikit-image's data directory (``pip install scikit-image``)."""
    if given:
        return given
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None:
        sys.exit("needs photos: --photos DIR, or pip install scikit-image (its samples)")
    return os.path.join(os.path.dirname(spec.origin), "data")


def split(photos: str, out: str) -> tuple[str, list[str]]:
    """A folder of the training photos (links) under ``out``, and the held-out photos' paths."""
    train = os.path.join(out, "train-photos")
    shutil.rmtree(train, ignore_errors=True)
    os.makedirs(train)
    held = []
    for name in sorted(os.listdir(photos)):
        if not name.lower().endswith((".png", ".jpg", ".jpeg")) or name in NOT_PHOTOS:
            continue
        if name in HELD_OUT:
            held.append(os.path.join(photos, name))
        else:
            os.symlink(os.path.join(photos, name), os.path.join(train, name))
    return train, held


def objective(image: np.ndarray, content: np.ndarray, style: np.ndarray, opts) -> float:
    """The optimisation's objective of ``image`` with ``content`` as the content (both at the
    same size), float32, the style at ``style_scale`` times that size."""
    pipe = pipeline.get(opts)
    request = pipeline.request_tensors(opts, 0)
    size = tf.constant(max(content.shape[:2]))
    started = pipe.compiled.start(content, [style], [1.0], request, size, content)
    terms = pipe.compiled.evaluate(
        tf.constant(image, tf.float32)[None], started.targets, started.weights
    )
    return float(terms["total"])


def step_flops(trainer: realtime.Trainer, size: int, batch_size: int) -> float:
    """Floating-point operations of one step of ``trainer`` (``batch_size`` crops of ``size``
    px, the network forward and backward, VGG on the stylised batch forward and back to its
    input, on the content batch forward), counted by TensorFlow's profiler over the traced
    step (traced here, for these shapes): the convolutions, their gradients and the matrix
    products (Gram matrices)."""
    spec = tf.TensorSpec([batch_size, size, size, 3], tf.float32)
    graph = trainer.step.get_concrete_function(spec).graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options_ = builder(builder.float_operation()).with_empty_output().build()
    return float(tf.compat.v1.profiler.profile(graph, options=options_).total_float_ops)


def training_cost(opts, size: int, timed: int) -> dict:
    """What ``tfstyle train``'s defaults cost (``steps`` steps of ``batch_size`` crops of
    ``size`` px): the FLOPs of a step, a step's seconds on this CPU (the median of ``timed``,
    after one that traces it), and so the whole run's time here and, estimated from the FLOPs,
    on the GPUs of ``GPU_RATES``."""
    batch, steps = (options.TRAIN_OPTIONS[n].default for n in ("batch_size", "steps"))
    trainer = realtime.Trainer(images.load_image(common.STYLE, "style"), opts, size, 1e-3, 0)
    flops = step_flops(trainer, size, batch)  # (its step traced for these shapes)
    crops = tf.constant(np.random.default_rng(0).random((batch, size, size, 3), np.float32))
    trainer.step(crops)  # the first call's own work, outside the timing
    seconds = common.median_seconds(lambda: float(trainer.step(crops)["total"]), timed)
    cost = {"crop": size, "batch_size": batch, "steps": steps, "flops_per_step": flops,
            "cpu_s_per_step": round(seconds, 3), "cpu_gflops": round(flops / seconds / 1e9, 1),
            "cpu_hours": round(steps * seconds / 3600, 1),
            "gpu_minutes_estimated": {name: round(steps * flops / rate / 60, 1)
                                      for name, rate in GPU_RATES.items()}}  # fmt: skip
    print(f"training cost, train's defaults ({steps} steps of {batch} crops of {size} px): "
          f"{flops / 1e9:.0f} GFLOP a step; here {seconds:.2f} s a step ({cost['cpu_gflops']} "
          f"GFLOP/s), {cost['cpu_hours']} h in all; estimated on a GPU at half its float32 "
          "peak: " + ", ".join(f"{n} {m} min" for n, m in cost["gpu_minutes_estimated"].items()))
    return cost


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    images.to_pil(array).save(buffer, "PNG")
    return buffer.getvalue()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default="none", help="a weights file, or none (random network)")
    p.add_argument("--backbone", default=options.DEFAULTS["backbone"])
    p.add_argument("--photos", default=None, help="photos to train on (default: scikit-image's)")
    p.add_argument("--model", default=None, help="a trained model directory: no training")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--content-weight", type=float, default=options.DEFAULTS["content_weight"],
                   help="the training's content weight (the quality is judged at the default)")
    p.add_argument("--iterations", type=int, default=options.DEFAULTS["iterations"],
                   help="the optimisation's steps, run to the end")
    p.add_argument("--size", type=int, default=128, help="training crops' side")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--optimise-sizes", type=int, nargs="*", default=[256, 512])
    p.add_argument("--quality-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cost-size", type=int, default=options.TRAIN_OPTIONS["size"].default,
                   help="the training cost's crops (default: train's)")  # fmt: skip
    p.add_argument("--cost-steps", type=int, default=3,
                   help="training steps timed for the cost (0: the cost is not measured)")
    p.add_argument("--out", default=os.path.join(common.ROOT, "benchmarks", "results"))
    args = p.parse_args(argv)
    weights = None if args.weights == "none" else args.weights
    os.makedirs(args.out, exist_ok=True)
    objective_options = {"weights": weights, "backbone": args.backbone}
    opts = options.Options(**objective_options, precision="float32")
    flags = common.print_machine(opts)
    result = {"cpu_flags": flags, "precision": "float32", "cpus": os.cpu_count()}

    if args.cost_steps > 0:
        result["cost"] = training_cost(opts, args.cost_size, args.cost_steps)

    train_dir, held = split(photos_dir(args.photos), args.out)
    model = args.model or os.path.join(args.out, "model")
    if args.model is None:
        start = time.perf_counter()
        realtime.train(common.STYLE, train_dir, model, steps=args.steps, size=args.size,
                       batch_size=args.batch_size, content_weight=args.content_weight,
                       **objective_options)  # fmt: skip
        seconds = time.perf_counter() - start
        result["training"] = {
            "steps": args.steps, "crop": args.size, "batch_size": args.batch_size,
            "content_weight": args.content_weight,
            "images": len(os.listdir(train_dir)), "seconds": round(seconds, 1),
            "s_per_step": round(seconds / args.steps, 3),
        }  # fmt: skip
        print(f"training: {args.steps} steps of {args.batch_size} crops of {args.size} px on "
              f"{len(os.listdir(train_dir))} photos: {seconds:.0f} s "
              f"({seconds / args.steps:.2f} s a step)")  # fmt: skip
    net = realtime.network(model)
    served_dir = os.path.join(args.out, "served")
    shutil.rmtree(served_dir, ignore_errors=True)
    path = realtime.export(model, served_dir, max_size=max(args.sizes), warmup=False)
    served = tf.saved_model.load(path).signatures["serving_default"]

    photo = images.load_image(held[0], "photo")
    style = images.load_image(common.STYLE, "style")
    latency = []
    for side in args.sizes:
        image = images.resize_longer_side(tf.constant(photo), side).numpy()
        local = common.median_seconds(
            lambda image=image: realtime.forward(net, image[None]).numpy(), args.repeats
        )
        data = tf.constant([png(image)])
        remote = common.median_seconds(lambda data=data: served(images=data), args.repeats)
        row = {"size": side, "in_process_s": round(local, 4), "served_s": round(remote, 4)}
        if side in args.optimise_sizes:
            start = time.perf_counter()
            tfstyle.transfer(image, style, size=side, iterations=args.iterations,
                             progress=False, **objective_options)  # fmt: skip
            row["optimisation_s"] = round(time.perf_counter() - start, 2)
            row["speedup"] = round(row["optimisation_s"] / remote, 1)
        latency.append(row)
        print(f"{side} px: network {local * 1000:.0f} ms in process, {remote * 1000:.0f} ms "
              f"served (PNG in and out)"
              + (f"; the optimisation {row['optimisation_s']:.1f} s ({row['speedup']}x)"
                 if "optimisation_s" in row else ""))  # fmt: skip
    result["latency"] = latency
    small = images.resize_longer_side(tf.constant(photo), 256).numpy()
    throughput = []
    for count in args.batches:
        data = tf.constant([png(small)] * count)
        seconds = common.median_seconds(lambda data=data: served(images=data), args.repeats)
        throughput.append({"batch": count, "images_per_s": round(count / seconds, 2)})
        print(f"served, {count} images of 256 px a request: {count / seconds:.1f} images/s")
    result["throughput"] = throughput

    quality, rows = [], []
    size = args.quality_size
    judged = options.Options(**objective_options, size=size, precision="float32")
    for path in held:
        content = images.resize_longer_side(tf.constant(images.load_image(path, "photo")), size)
        content = content.numpy()
        start = time.perf_counter()
        fast = np.asarray(realtime.forward(net, content[None])[0])
        fast_s = time.perf_counter() - start
        start = time.perf_counter()
        full = np.asarray(tfstyle.transfer(content, style, size=size, iterations=args.iterations,
                                           progress=False, **objective_options),
                          np.float32) / 255  # fmt: skip
        full_s = time.perf_counter() - start
        steps = max(1, round(args.iterations * fast_s / full_s))
        equal = np.asarray(tfstyle.transfer(content, style, size=size, iterations=steps,
                                            progress=False, **objective_options),
                           np.float32) / 255  # fmt: skip
        row = {
            "photo": os.path.basename(path), "size": size,
            "content": objective(content, content, style, judged),
            "network": objective(fast, content, style, judged), "network_s": round(fast_s, 3),
            "optimisation_equal_time": objective(equal, content, style, judged),
            "equal_time_steps": steps,
            "optimisation_to_the_end": objective(full, content, style, judged),
            "optimisation_s": round(full_s, 1),
        }  # fmt: skip
        quality.append(row)
        print(f"{row['photo']} at {size} px, objective (lower is better): content "
              f"{row['content']:.4g}, network {row['network']:.4g} ({fast_s:.2f} s), "
              f"optimisation in the same time ({steps} steps) {row['optimisation_equal_time']:.4g}"
              f", optimisation to the end {row['optimisation_to_the_end']:.4g} "
              f"({full_s:.0f} s)")  # fmt: skip
        rows.append(np.concatenate([content, fast, equal, full], axis=1))
    result["quality"] = quality
    width = max(r.shape[1] for r in rows)
    strip = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    images.to_pil(strip).save(os.path.join(args.out, "realtime.jpg"), quality=90)
    with open(os.path.join(args.out, "realtime.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {os.path.join(args.out, 'realtime.json')} and realtime.jpg (photo | network | "
          "optimisation in the network's time | optimisation to the end)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
