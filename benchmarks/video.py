#!/usr/bin/env python3
"""Video without flicker: the temporal method (``tfstyle.video``) against independent frames.

A real clip is made first: a pan across the bundled content photo (``--frames`` windows of
``--size`` x 3/4 of it, ``--shift`` px further right each, written as H.264 with PyAV), so the
motion is real and known. Then:

- ``temporal``: ``tfstyle.video`` with its defaults (the first frame a default ``transfer``,
  each later one ``frame_iterations`` steps from the previous result warped by the flow, with
  the temporal loss);
- ``independent``: every frame its own ``transfer`` from the content, with the iterations that
  make the whole clip take the same time (a line through two timed runs of the first frame).

Each is judged by its **temporal error**: the mean squared difference (pixels in [0, 1]) between
frame t and frame t-1 warped onto it by the *content's* flow, over the pixels where that flow is
consistent (``tfstyle.temporal.temporal_error``), averaged over the clip: what flickers where
the scene does not change. Issue 26's target: the temporal method at least 3x lower. And by its
**style strength** per frame, ``1 - L_style(frame) / L_style(content frame)`` under the default
objective (float32): a clip can be steady and yet lose its style after the first frame. And by
the **objective** of each frame (content + style + total variation, the temporal term left
out): what a transfer of that frame minimises, so how well it is painted, compared with the
independent frames' (a steady clip of poorly painted frames scores well on the first measure
only; the style strength saturates near 1 on strong styles). ``--also
ITERATIONS:WEIGHT ...`` adds temporal runs with other ``frame_iterations`` and
``temporal_weight`` to the table (how many steps a later frame needs).

It writes both clips (mp4), a strip of frames (``strip.jpg``: temporal above, independent
below), ``video.json`` and prints the table, with the CPU's flags and the precision.

    python benchmarks/video.py --weights vgg16_notop.weights.h5 --backbone vgg16 --out DIR

Random weights (without --weights) give a blur, not a style: time only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import PIL.Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import tfstyle  # noqa: E402
from tfstyle import api, images, options, pipeline, temporal, video_io  # noqa: E402


def make_clip(path: str, frames: int, size: int, shift: int, fps: int = 12) -> list:
    """A pan across the content photo, written to ``path``; the frames as written (uint8)."""
    import av

    photo = PIL.Image.open(common.CONTENT).convert("RGB")
    width, height = size, size * 3 // 4
    scale = max((width + shift * (frames - 1)) / photo.width, height / photo.height)
    if scale > 1:
        photo = photo.resize((round(photo.width * scale) + 1, round(photo.height * scale) + 1),
                             PIL.Image.LANCZOS)  # fmt: skip
    pixels = np.asarray(photo)
    top = (pixels.shape[0] - height) // 2
    clip = [pixels[top : top + height, shift * t : shift * t + width] for t in range(frames)]
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12"}
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return list(video_io.frames(video_io.probe(path)))  # as decoded


def temporal_errors(content: list, stylised: list) -> list:
    """Per frame after the first: ``temporal.temporal_error`` under the content's flow."""
    errors = []
    for t in range(1, len(stylised)):
        small = [np.asarray(PIL.Image.fromarray(c).resize(stylised[t].shape[1::-1],
                                                          PIL.Image.BILINEAR))
                 for c in (content[t - 1], content[t])]  # fmt: skip
        backward = temporal.flow(small[1], small[0])
        mask = temporal.consistency(backward, temporal.flow(small[0], small[1]))
        errors.append(temporal.temporal_error(
            stylised[t - 1] / np.float32(255), stylised[t] / np.float32(255), backward, mask
        ))  # fmt: skip
    return errors


def judged(frames: list, content: list, opts) -> tuple[list, list]:
    """Per frame, under the objective of ``opts`` at the frame's size (float32, the temporal
    term left out): the style strength ``1 - L_style(frame) / L_style(content frame)`` (1 is
    the style's statistics matched, 0 the content's, as ``quality.py`` judges an image), and
    the objective itself (content + style + total variation): how well the frame is painted,
    what a transfer of that frame minimises."""
    import tensorflow as tf

    opts = opts.replace(precision="float32")
    pipe = pipeline.get(opts)
    request = pipeline.request_tensors(opts, 0)
    style = tf.constant(images.load_image(common.STYLE, "style"))
    strengths, objectives = [], []
    for image, photo in zip(frames, content, strict=True):
        height, width = image.shape[:2]
        photo = np.asarray(PIL.Image.fromarray(photo).resize((width, height), PIL.Image.BILINEAR))
        photo = tf.constant(photo / np.float32(255))
        started = pipe.compiled.start(
            photo, [style], [1.0], request, tf.constant(max(height, width)), photo
        )
        terms = [
            pipe.compiled.evaluate(x[None], started.targets, started.weights)
            for x in (tf.constant(image / np.float32(255)), photo)
        ]
        strengths.append(1 - float(terms[0]["style"]) / float(terms[1]["style"]))
        objectives.append(float(terms[0]["total"]))
    return strengths, objectives


def memory_child(frames: int, out: str) -> dict:
    """A ``frames``-frame pan stylised at 32 px with random weights in this (fresh) process:
    its peak RSS (``--memory``)."""
    import resource

    clip = os.path.join(out, f".memory-{frames}.mp4")
    make_clip(clip, frames, 64, 1)
    began = time.perf_counter()
    tfstyle.video(clip, common.STYLE, os.path.join(out, f".memory-{frames}-out.mp4"), size=32,
                  iterations=4, frame_iterations=2, weights=None, progress=False)  # fmt: skip
    for name in (clip, os.path.join(out, f".memory-{frames}-out.mp4")):
        os.remove(name)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"frames": frames, "seconds": time.perf_counter() - began, "peak_rss_mib": peak}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="none", help="Keras weights file, imagenet or none")
    p.add_argument("--backbone", default="vgg19")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256, help="frame width in px (height 3/4)")
    p.add_argument("--shift", type=int, default=3, help="px the pan moves a frame")
    p.add_argument("--iterations", type=int, default=options.DEFAULTS["iterations"],
                   help="the first frame's (and the timing runs') iterations")  # fmt: skip
    p.add_argument("--temporal-weight", type=float,
                   default=options.VIDEO_OPTIONS["temporal_weight"].default)  # fmt: skip
    p.add_argument("--frame-iterations", type=int,
                   default=options.VIDEO_OPTIONS["frame_iterations"].default)  # fmt: skip
    p.add_argument(
        "--also",
        nargs="*",
        default=[],
        metavar="ITERATIONS:WEIGHT",
        help="more temporal runs (frame_iterations:temporal_weight), in the table",
    )
    p.add_argument("--out", default="video-results")
    p.add_argument(
        "--memory",
        nargs="+",
        type=int,
        metavar="FRAMES",
        help="only this: the peak RSS of clips of these lengths (a fresh process "
        "each, 32 px, random weights): memory must not grow with the clip",
    )
    p.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.iterations < 2:
        p.error("--iterations must be at least 2 (the independent frames' time is fitted to "
                "two runs of the first frame, of --iterations and a quarter of it)")  # fmt: skip
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.out)))
        return 0
    if args.memory:
        import subprocess

        os.makedirs(args.out, exist_ok=True)
        common.print_machine()
        for frames in args.memory:
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--memory-child", str(frames),
                 "--out", args.out], check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            r = json.loads(out.strip().splitlines()[-1])
            peak = r["peak_rss_mib"]
            print(f"{r['frames']} frames: {r['seconds']:.1f} s, peak RSS {peak:.0f} MiB")
        return 0
    weights = None if args.weights.lower() == "none" else args.weights
    os.makedirs(args.out, exist_ok=True)
    base = {"size": args.size, "weights": weights, "backbone": args.backbone, "seed": 0,
            "iterations": args.iterations}  # fmt: skip
    common.print_machine(options.Options(**base))
    clip = os.path.join(args.out, "pan.mp4")
    content = make_clip(clip, args.frames, args.size, args.shift)
    print(f"clip: {len(content)} frames of {content[0].shape[1]}x{content[0].shape[0]} px, "
          f"a pan of {args.shift} px a frame ({clip})")  # fmt: skip

    tfstyle.transfer(content[0], common.STYLE, **{**base, "iterations": 2, "progress": False})
    began = time.perf_counter()  # (traced above: the first frame's scales)
    folder = os.path.join(args.out, "temporal-frames")
    tfstyle.video(clip, common.STYLE, folder, temporal_weight=args.temporal_weight,
                frame_iterations=args.frame_iterations, progress=False, **base)  # fmt: skip
    temporal_s = time.perf_counter() - began
    temporal_frames = list(video_io.frames(video_io.probe(folder)))
    variants = []
    for spec in args.also:
        its, weight = spec.split(":")
        began = time.perf_counter()
        out = os.path.join(args.out, f"temporal-{its}-{weight}")
        tfstyle.video(clip, common.STYLE, out, temporal_weight=float(weight),
                      frame_iterations=int(its), progress=False, **base)  # fmt: skip
        seconds = time.perf_counter() - began
        variants.append((f"temporal {its} its, weight {weight}",
                         list(video_io.frames(video_io.probe(out))), seconds))  # fmt: skip

    # Independent frames in the same time: iterations from a line through two timed runs.
    stylizer = {}

    def timed(iterations: int, frame) -> tuple[float, np.ndarray]:
        if iterations not in stylizer:
            stylizer[iterations] = api.Stylizer(common.STYLE, progress=False,
                                                **{**base, "iterations": iterations})  # fmt: skip
            stylizer[iterations](frame)  # traced once
        began = time.perf_counter()
        image = np.asarray(stylizer[iterations](frame))
        return time.perf_counter() - began, image

    hi, lo = args.iterations, max(1, args.iterations // 4)
    (t_hi, _), (t_lo, _) = timed(hi, content[0]), timed(lo, content[0])
    # (at toy sizes the two timings can be equal within their noise: a step costs at least a
    # quarter of the longer run's mean step, and a frame at most 10x its iterations)
    per_step = max((t_hi - t_lo) / (hi - lo), t_hi / hi / 4)
    budget = temporal_s / len(content)
    iterations = min(max(1, round(hi + (budget - t_hi) / per_step)), 10 * hi)
    began = time.perf_counter()
    independent_frames = [timed(iterations, frame)[1] for frame in content]
    independent_s = time.perf_counter() - began

    rows = {}
    opts = options.Options(**base)
    for name, frames, seconds in (("temporal", temporal_frames, temporal_s),
                                  ("independent", independent_frames, independent_s),
                                  *variants):  # fmt: skip
        errors = temporal_errors(content, frames)
        strengths, objectives = judged(frames, content, opts)
        rows[name] = {"seconds": seconds, "seconds_per_frame": seconds / len(frames),
                      "temporal_error": float(np.mean(errors)), "per_frame": errors,
                      "style_strength": float(np.mean(strengths)),
                      "strength_per_frame": strengths, "objective": float(np.mean(objectives)),
                      "objective_per_frame": objectives}  # fmt: skip
        paths = []
        for k, frame in enumerate(frames):
            paths.append(os.path.join(args.out, f".{name}-{k:04d}.png"))
            PIL.Image.fromarray(frame).save(paths[-1])
        video_io.write(os.path.join(args.out, f"{name.replace(' ', '-').replace(',', '')}.mp4"),
                       paths, 12)  # fmt: skip
        for path in paths:
            os.remove(path)
    ratio = rows["independent"]["temporal_error"] / rows["temporal"]["temporal_error"]
    print(
        f"temporal: first frame {args.iterations} iterations, then {args.frame_iterations} a "
        f"frame, temporal_weight {args.temporal_weight}; independent: {iterations} iterations "
        "a frame"
    )
    print("| method | wall | per frame | temporal error | style strength (first, last frame) "
          "| objective, later frames (vs independent) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    reference = np.mean(rows["independent"]["objective_per_frame"][1:] or [np.nan])
    for name, row in rows.items():
        first, last = row["strength_per_frame"][0], row["strength_per_frame"][-1]
        later = np.mean(row["objective_per_frame"][1:] or [np.nan])
        print(f"| {name} | {row['seconds']:.1f} s | {row['seconds_per_frame']:.1f} s | "
              f"{row['temporal_error']:.5f} | {row['style_strength']:.3f} ({first:.3f}, "
              f"{last:.3f}) | {later:.4g} ({later / reference:.2f}x) |")  # fmt: skip
    print(f"independent / temporal error: {ratio:.1f}x (target: at least 3x)")
    picks = np.linspace(0, len(content) - 1, min(5, len(content))).round().astype(int)
    strip = np.concatenate([
        np.concatenate([f[k] for k in picks], axis=1)
        for f in (content, temporal_frames, independent_frames)
    ], axis=0)  # fmt: skip
    PIL.Image.fromarray(strip).save(os.path.join(args.out, "strip.jpg"), quality=92)
    with open(os.path.join(args.out, "video.json"), "w") as f:
        json.dump({"args": vars(args), "independent_iterations": iterations, "results": rows,
                   "ratio": ratio}, f, indent=1)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
