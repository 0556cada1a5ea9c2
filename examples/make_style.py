"""Generate examples/style.png: a swirling brush-stroke painting drawn by code (no third-party art).

Run: python examples/make_style.py  (deterministic: the same file every time)
"""

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 512
PALETTE = [(20, 40, 110), (35, 75, 160), (70, 120, 200), (240, 200, 60), (250, 230, 120),
           (30, 30, 60), (110, 160, 220), (220, 140, 40)]  # fmt: skip


def flow_angle(x: float, y: float) -> float:
    """Direction of the strokes: a few swirls on a gentle diagonal drift."""
    angle = 0.6
    for cx, cy, strength in ((0.3, 0.3, 1.0), (0.7, 0.55, -1.2), (0.35, 0.8, 0.8)):
        dx, dy = x - cx, y - cy
        r2 = dx * dx + dy * dy
        angle += strength * math.exp(-r2 / 0.03) * (math.atan2(dy, dx) + math.pi / 2)
    return angle


OUT = Path(__file__).with_name("style.png")


def main(out: Path = OUT) -> None:
    rng = np.random.default_rng(7)
    img = Image.new("RGB", (SIZE, SIZE), PALETTE[0])
    draw = ImageDraw.Draw(img)
    for _ in range(9000):
        x, y = rng.random(2)
        swirl = math.exp(-((x - 0.7) ** 2 + (y - 0.55) ** 2) / 0.02)
        colour = PALETTE[
            rng.integers(3, 5) if rng.random() < 0.25 + 0.6 * swirl else rng.integers(0, 8)
        ]
        colour = tuple(int(np.clip(c + rng.normal(0, 15), 0, 255)) for c in colour)
        points = [(x * SIZE, y * SIZE)]
        for _ in range(6):
            a = flow_angle(points[-1][0] / SIZE, points[-1][1] / SIZE)
            points.append((points[-1][0] + 4 * math.cos(a), points[-1][1] + 4 * math.sin(a)))
        draw.line(points, fill=colour, width=int(rng.integers(3, 8)), joint="curve")
    img.filter(ImageFilter.SMOOTH).save(out, optimize=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
