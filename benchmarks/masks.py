#!/usr/bin/env python3
"""Pictures of masks (issue 25): two styles split by a mask, and a portrait with and without a
content weight map. For the eye, with real (ImageNet-derived) weights: random ones give a blur.

    python benchmarks/masks.py --photo rocket.jpg --weights vgg16_notop.weights.h5 \\
        --backbone vgg16 --out benchmarks/results/<date>-masks

``--photo``: a photograph with sky above ground (scikit-image's ``skimage/data/rocket.jpg``, a
NASA photograph in the public domain, is what the results used: ``pip download --no-deps
scikit-image`` and take it from the wheel). Its sky mask is drawn by colour (blue above red by
``--sky-margin`` levels, smoothed), the ground mask is the rest; the sky gets the bundled style,
the ground a second style this script paints (a warm mosaic, ``mosaic``). The portrait is the
bundled photo (astronaut Eileen Collins) with a strong style, once plain and once with a content
map that is white on the face (an ellipse) and dark elsewhere.

Writes, to ``--out``: the masks, each result, ``split.jpg`` (photo | sky mask | result) and
``portrait.jpg`` (photo | content map | without | with), and prints each run's time.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, os.pardir, "examples")


def mosaic(size: int = 512, seed: int = 3) -> PIL.Image.Image:
    """A warm mosaic of irregular tiles with dark seams: a style unlike the bundled one."""
    rng = np.random.default_rng(seed)
    palette = [(200, 60, 30), (230, 130, 40), (240, 190, 80), (150, 40, 40), (90, 30, 20),
               (250, 220, 160)]  # fmt: skip
    img = PIL.Image.new("RGB", (size, size), (40, 20, 15))
    draw = PIL.ImageDraw.Draw(img)
    step = 28
    for y in range(-step, size + step, step):
        for x in range(-step, size + step, step):
            cx, cy = x + rng.uniform(0, step), y + rng.uniform(0, step)
            points = [
                (cx + r * np.cos(a), cy + r * np.sin(a))
                for a, r in zip(
                    np.sort(rng.uniform(0, 2 * np.pi, 6)), rng.uniform(10, 20, 6), strict=True
                )  # fmt: skip
            ]
            colour = palette[rng.integers(len(palette))]
            draw.polygon(points, fill=tuple(int(np.clip(c + rng.normal(0, 12), 0, 255))
                                            for c in colour), outline=(30, 15, 10))  # fmt: skip
    return img.filter(PIL.ImageFilter.SMOOTH)


def sky_mask(photo: PIL.Image.Image, margin: int) -> PIL.Image.Image:
    """White where the photo is sky: blue above red by ``margin`` levels, smoothed."""
    rgb = np.asarray(photo.convert("RGB")).astype(np.int32)
    sky = (rgb[..., 2] - rgb[..., 0] > margin).astype(np.uint8) * 255
    return (
        PIL.Image.fromarray(sky)
        .filter(PIL.ImageFilter.MedianFilter(5))
        .filter(PIL.ImageFilter.GaussianBlur(1.5))
    )


def face_map(photo: PIL.Image.Image, box: tuple, floor: int) -> PIL.Image.Image:
    """A content weight map: white in the ellipse ``box`` (fractions of the sides), ``floor``
    elsewhere, with a soft edge."""
    w, h = photo.size
    img = PIL.Image.new("L", (w, h), floor)
    x0, y0, x1, y1 = box
    PIL.ImageDraw.Draw(img).ellipse((x0 * w, y0 * h, x1 * w, y1 * h), fill=255)
    return img.filter(PIL.ImageFilter.GaussianBlur(w / 60))


def side_by_side(images: list, height: int) -> PIL.Image.Image:
    scaled = [i.convert("RGB").resize((round(i.width * height / i.height), height),
                                      PIL.Image.LANCZOS) for i in images]  # fmt: skip
    out = PIL.Image.new("RGB", (sum(i.width for i in scaled) + 8 * (len(scaled) - 1), height),
                        "white")  # fmt: skip
    x = 0
    for i in scaled:
        out.paste(i, (x, 0))
        x += i.width + 8
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photo", required=True, help="a photo with sky above ground")
    p.add_argument("--weights", required=True)
    p.add_argument("--backbone", default="vgg16")
    p.add_argument("--size", type=int, default=384)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--sky-margin", type=int, default=25)
    p.add_argument("--split-style-weight", type=float, default=1e3,
                   help="the split's style weight (the default 1e4 paints over the towers)")
    p.add_argument("--parts", nargs="+", choices=["split", "portrait"],
                   default=["split", "portrait"])
    p.add_argument("--portrait-style-weight", type=float, default=1e5)
    p.add_argument(
        "--face",
        type=float,
        nargs=4,
        default=(0.33, 0.08, 0.62, 0.55),
        help="the face's ellipse in the bundled photo: x0 y0 x1 y1, fractions",
    )
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import tfstyle

    os.makedirs(args.out, exist_ok=True)
    common = dict(size=args.size, iterations=args.iterations, weights=args.weights,
                  backbone=args.backbone, precision="float32", progress=False, seed=0)  # fmt: skip

    def run(name, *a, **kw):
        start = time.perf_counter()
        image = tfstyle.transfer(*a, **common, **kw)
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
        image.save(os.path.join(args.out, f"{name}.png"))
        return image

    if "split" in args.parts:
        split(args, run)
    if "portrait" in args.parts:
        portrait(args, run)


def split(args, run) -> None:
    photo = PIL.Image.open(args.photo).convert("RGB")
    style_a = PIL.Image.open(os.path.join(EXAMPLES, "style.png")).convert("RGB")
    style_b = mosaic()
    style_b.save(os.path.join(args.out, "style-mosaic.png"))
    sky = sky_mask(photo, args.sky_margin)
    ground = PIL.Image.fromarray(255 - np.asarray(sky))
    sky.save(os.path.join(args.out, "mask-sky.png"))
    image = run("split", photo, [style_a, style_b], masks=[sky, ground],
                style_weight=args.split_style_weight)  # fmt: skip
    side_by_side([photo, sky, image], 320).save(os.path.join(args.out, "split.jpg"), quality=92)


def portrait(args, run) -> None:
    style_a = PIL.Image.open(os.path.join(EXAMPLES, "style.png")).convert("RGB")
    portrait = PIL.Image.open(os.path.join(EXAMPLES, "content.jpg")).convert("RGB")
    face = face_map(portrait, tuple(args.face), floor=40)
    face.save(os.path.join(args.out, "mask-face.png"))
    strong = dict(style_weight=args.portrait_style_weight)
    plain = run("portrait-plain", portrait, style_a, **strong)
    kept = run("portrait-face-kept", portrait, style_a, content_mask=face, **strong)
    side_by_side([portrait, face, plain, kept], 320).save(
        os.path.join(args.out, "portrait.jpg"), quality=92
    )


if __name__ == "__main__":
    main()
