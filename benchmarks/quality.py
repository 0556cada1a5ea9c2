#!/usr/bin/env python3
"""Any size, same look: the default run at several sizes against the single-scale run before it.

For each of --sizes it runs ``tfstyle.transfer`` on the bundled example images twice:

- ``new``: the defaults (coarse to fine from ``min_scale``; content and TV terms per 512 x 512
  pixels);
- ``old``: what tfstyle did before (one scale, ``min_scale=size``; content and TV terms summed
  over positions, reproduced exactly by scaling ``content_weight`` and ``tv_weight`` by
  ``H * W / 512**2``), unless --no-old.

and prints, per run, the wall time, its cost in full-resolution steps (``cost``: the schedule's
steps weighted by each scale's area over the full one; with --cost also ``measured_cost``, the
wall time over a full-resolution step's, measured), the **style strength** at full resolution
(``1 - L_style(result) / L_style(content photo)``, the default objective's Gram style term judged
at the result's own size against the style resized to it, float32: 1 is the style's statistics
matched, 0 the photo's; also per style layer, in the JSON: the total is mostly the layers with
the largest terms), the ratio of the weighted style term to the weighted content
term at the result (each run's own objective), the result's full-resolution objective under the
default objective, the mean absolute Laplacian of its pixels (noise), and a Gram distance to the
style judged at 256 px (per style layer,
``||G(x) - G(style)|| / ||G(style)||`` with ``G`` the Gram matrix over positions divided by their
count, averaged over the layers; the content photo's own distance is printed for scale). It
writes each image, ``quality.json`` and ``sizes.jpg`` (sizes across, old above new) to --out.

Issue 24's target for the default: the strength at 1024, 2048 and 4096 px within 0.10 of
256 px's, at a cost under 40 full-resolution steps at 1024 px.

--same-time also runs single-scale at each size for the wall time the default run took (its
step time measured first) and compares the full-resolution objectives reached.

    python benchmarks/quality.py --weights vgg16_notop.weights.h5 --backbone vgg16
    python benchmarks/quality.py --precision float32 --no-old --same-time --sizes 512 1024

Random weights (the default without --weights) measure time only: they give a blur, not a
style. Every run prints the CPU's flags and the precision used.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import PIL.ImageDraw  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import tfstyle  # noqa: E402
from tfstyle import images, losses, memory, options, pipeline  # noqa: E402

JUDGE_SIZE = 256
WHOLE_SIZE = 2048  # above it the judging evaluations run in tiles


def old_weights(size: int, opts) -> dict:
    """The weights under which today's objective is the single-scale objective before the change
    (content and TV summed over positions)."""
    with PIL.Image.open(common.CONTENT) as content:
        h, w = (int(v) for v in images.working_shape(content.height, content.width, size))
    area = h * w / pipeline.AREA_REFERENCE
    return {"content_weight": opts.content_weight * area, "tv_weight": opts.tv_weight * area}


class Judge:
    """Gram distance to the style at ``JUDGE_SIZE`` px, on the run's network."""

    def __init__(self, opts):
        self.pipe = pipeline.get(opts.replace(precision="float32"))
        self.layers = opts.style_layers
        self.style = self.grams(images.load_image(common.STYLE, "style"))

    def grams(self, image) -> list:
        image = images.resize_longer_side(tf.convert_to_tensor(image, tf.float32), JUDGE_SIZE)
        feats = self.pipe.extractor(image[None])
        out = []
        for name in self.layers:
            f = tf.cast(feats[name], tf.float32)
            positions = float(f.shape[1] * f.shape[2])
            out.append(losses.gram_matrix(f)[0].numpy() / positions)
        return out

    def distance(self, image) -> float:
        ds = [
            np.linalg.norm(g - s) / np.linalg.norm(s)
            for g, s in zip(self.grams(image), self.style, strict=True)
        ]
        return float(np.mean(ds))


def high_frequency(image: np.ndarray) -> float:
    """Mean absolute Laplacian of an (H, W, 3) image in [0, 1]: pixel-level noise."""
    lap = (
        4 * image[1:-1, 1:-1]
        - image[:-2, 1:-1] - image[2:, 1:-1] - image[1:-1, :-2] - image[1:-1, 2:]
    )  # fmt: skip
    return float(np.abs(lap).mean())


def terms(opts, image: np.ndarray, size: int, **weights) -> dict:
    """The loss terms of ``image`` (float (H, W, 3)) under the objective of ``opts`` at ``size``,
    with ``weights`` replacing the loss weights; the ratio of weighted style to content."""
    opts = opts.replace(size=size, precision="float32", **weights)
    evaluate, _ = evaluator(opts, image, size)
    t = evaluate()
    weighted_content = opts.content_weight * t["content"]
    t["style_to_content"] = opts.style_weight * t["style"] / max(weighted_content, 1e-30)
    return t


def evaluator(opts, image: np.ndarray, size: int):
    """``(evaluate, weights)``: ``evaluate(weights=None)`` gives the loss terms of ``image`` at
    ``size`` under ``opts`` (the targets computed once), with ``weights`` (``LossWeights``)
    replacing the run's ``weights``."""
    if size > WHOLE_SIZE and opts.tile_size is None:  # exact (tests/test_tiles.py), and fits
        opts = opts.replace(tile_size=memory.AUTO_TILE_SIZE)
    pipe = pipeline.get(opts)
    content = images.load_image(common.CONTENT, "content")
    style = images.load_image(common.STYLE, "style")
    request = pipeline.request_tensors(opts, 0)
    started = pipe.compiled.start(content, [style], [1.0], request, tf.constant(size), content)
    image = tf.convert_to_tensor(image, tf.float32)
    if image.shape[:2] != started.content.shape[:2]:
        image = images.resize(image, *started.content.shape[:2])

    def evaluate(weights=None) -> dict:
        terms = pipe.compiled.evaluate(image[None], started.targets, weights or started.weights)
        return {k: float(v) for k, v in terms.items()}

    return evaluate, started.weights


def strengths(reference, image: np.ndarray, photo_terms: list, size: int) -> dict:
    """The style strength ``1 - L_style(image) / L_style(photo)`` under the ``reference``
    objective at ``size``, in all (``total``) and per style layer (``by_layer``, each layer's
    term alone); ``photo_terms`` is ``layer_terms`` of the content photo."""
    own = layer_terms(reference, image, size)
    return {"total": 1 - sum(own) / sum(photo_terms),
            "by_layer": [1 - a / b for a, b in zip(own, photo_terms, strict=True)]}  # fmt: skip


def layer_terms(reference, image: np.ndarray, size: int) -> list:
    """Each style layer's Gram term of ``image`` under ``reference`` at ``size`` (weight 1)."""
    opts = reference.replace(size=size, precision="float32")
    evaluate, weights = evaluator(opts, image, size)
    n = len(opts.style_layers)
    return [
        evaluate(weights._replace(style_layers=tf.one_hot(k, n, dtype=weights.style_layers.dtype)))[
            "style"
        ]
        for k in range(n)
    ]


def schedule_cost(kwargs: dict, iterations: int) -> tuple[float, list]:
    """The run's cost in full-resolution steps (each scale's steps times its area over the last
    scale's) and its schedule as ``[(longer side, steps), ...]``."""
    opts = options.Options(**kwargs)
    with PIL.Image.open(common.CONTENT) as content, PIL.Image.open(common.STYLE) as style:
        shapes = [(content.height, content.width, 3)], [(style.height, style.width, 3)]
    sizes, steps = pipeline.schedule(
        shapes[0][0], shapes[1], tf.constant(iterations), pipeline.request_tensors(opts, 0)
    )
    ladder = [(int(a), int(b)) for a, b in zip(sizes.numpy(), steps.numpy(), strict=True)]
    return sum(n * (s / ladder[-1][0]) ** 2 for s, n in ladder), ladder


def step_seconds(kwargs: dict, size: int) -> float:
    """Seconds a full-resolution step takes (single scale, 7 steps minus 2, traced first)."""
    single = {**kwargs, "size": size, "min_scale": size}
    run(single, 2)
    _, two = run(single, 2)
    _, seven = run(single, 7)
    return max((seven - two) / 5, 1e-3)


def run(kwargs: dict, iterations: int) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    image = tfstyle.transfer(common.CONTENT, common.STYLE, iterations=iterations, **kwargs)
    return np.asarray(image, np.float32) / 255.0, time.perf_counter() - start


def single_scale_for(seconds: float, kwargs: dict, size: int) -> tuple[np.ndarray, float, int]:
    """Single-scale at ``size`` for about ``seconds`` (its step time measured first)."""
    single = {**kwargs, "min_scale": size}
    run(single, 2)  # trace
    _, two = run(single, 2)
    _, seven = run(single, 7)
    per_step = max((seven - two) / 5, 1e-3)
    steps = max(1, int((seconds - two + 2 * per_step) / per_step))
    image, wall = run(single, steps)
    return image, wall, steps


def grid(path: str, rows: dict, sizes: list, tile: int = 360) -> None:
    names = list(rows)
    canvas = PIL.Image.new("RGB", (80 + tile * len(sizes), 24 + tile * len(names)), "white")
    draw = PIL.ImageDraw.Draw(canvas)
    for c, size in enumerate(sizes):
        draw.text((80 + c * tile + 4, 6), f"{size} px", fill="black")
    for r, name in enumerate(names):
        draw.text((6, 24 + r * tile + tile // 2), name, fill="black")
        for c, size in enumerate(sizes):
            if size in rows[name]:
                image = PIL.Image.fromarray(np.uint8(np.round(rows[name][size] * 255)))
                scale = (tile - 4) / max(image.size)
                shape = (round(image.width * scale), round(image.height * scale))
                image = image.resize(shape, PIL.Image.LANCZOS)
                canvas.paste(image, (80 + c * tile + 2, 24 + r * tile + 2))
    canvas.save(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--iterations", type=int, default=options.DEFAULTS["iterations"])
    p.add_argument("--weights", default=None, help="a weights file (default: random, seeded)")
    p.add_argument("--backbone", default="vgg19")
    p.add_argument("--precision", default="auto")
    p.add_argument("--no-old", action="store_true", help="skip the single-scale old runs")
    p.add_argument("--same-time", action="store_true")
    p.add_argument("--cost", action="store_true",
                   help="measure a full-resolution step too: each run's measured cost")  # fmt: skip
    p.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                   help="options for the new runs, e.g. min_scale=256 steps_ratio=0.5")  # fmt: skip
    p.add_argument("--out", default=os.path.join(common.ROOT, "benchmarks", "results", "quality"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    base = {"weights": args.weights, "backbone": args.backbone, "seed": 0, "progress": False}
    base["precision"] = args.precision
    extra = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    opts = options.Options(**{**base, **extra})
    common.print_machine(opts)
    judge = Judge(opts)
    reference = options.Options(**base)  # the default objective: what the strength is judged by
    content_photo = images.load_image(common.CONTENT, "content")
    photo = judge.distance(content_photo)
    print(f"Gram distance to the style at {JUDGE_SIZE} px: the content photo {photo:.3f}")
    results, pictures = [], {"old": {}, "new": {}}
    run({**base, **extra, "size": 64}, 2)  # build and trace once
    for size in args.sizes:
        kwargs = {**base, **extra, "size": size}
        photo_terms = layer_terms(reference, np.asarray(content_photo, np.float32), size)
        per_step = step_seconds(kwargs, size) if args.cost else None
        variants = {"new": kwargs}
        if not args.no_old:
            variants["old"] = {**kwargs, "min_scale": size, **old_weights(size, opts)}
        for name, kw in variants.items():
            image, wall = run(kw, args.iterations)
            own = terms(opts, image, size, **{k: kw[k] for k in kw if k.endswith("_weight")})
            new = terms(opts, image, size)
            cost, ladder = schedule_cost(kw, args.iterations)
            strength = strengths(reference, image, photo_terms, size)
            row = {"run": name, "size": size, "wall_s": wall, "cost": cost, "schedule": ladder,
                   "strength": strength["total"], "strength_by_layer": strength["by_layer"],
                   "objective": new["total"],
                   "style_to_content": own["style_to_content"],
                   "gram_distance": judge.distance(image),
                   "high_frequency": high_frequency(image)}  # fmt: skip
            if per_step is not None:
                row["step_s"], row["measured_cost"] = per_step, wall / per_step
            results.append(row)
            pictures[name][size] = image
            PIL.Image.fromarray(np.uint8(np.round(image * 255))).save(
                os.path.join(args.out, f"{name}-{size}.png")
            )
            print(json.dumps(row), flush=True)
            if name == "new" and args.same_time:
                single, wall_s, steps = single_scale_for(wall, kwargs, size)
                row = {"run": "single-scale, same time", "size": size, "wall_s": wall_s,
                       "steps": steps, "objective": terms(opts, single, size)["total"],
                       "strength": strengths(reference, single, photo_terms, size)["total"],
                       "gram_distance": judge.distance(single),
                       "high_frequency": high_frequency(single)}  # fmt: skip
                results.append(row)
                print(json.dumps(row), flush=True)
    with open(os.path.join(args.out, "quality.json"), "w") as f:
        json.dump({"options": {**base, **extra}, "photo_gram_distance": photo,
                   "results": results}, f, indent=2)  # fmt: skip
    grid(os.path.join(args.out, "sizes.jpg"), {k: v for k, v in pictures.items() if v}, args.sizes)
    print(f"{'run':<26}{'size':>6}{'wall s':>9}{'cost':>7}{'strength':>9}{'style/content':>15}"
          f"{'objective':>12}{'Gram d':>8}{'noise':>8}")  # fmt: skip
    for r in results:
        ratio = f"{r['style_to_content']:.3g}" if "style_to_content" in r else "-"
        cost = f"{r['cost']:.1f}" if "cost" in r else "-"
        strength = f"{r['strength']:.3f}" if "strength" in r else "-"
        print(f"{r['run']:<26}{r['size']:>6}{r['wall_s']:>9.1f}{cost:>7}{strength:>9}{ratio:>15}"
              f"{r['objective']:>12.4g}{r['gram_distance']:>8.3f}"
              f"{r.get('high_frequency', float('nan')):>8.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
