"""Shared fixtures: tiny seeded images and files; TensorFlow kept quiet."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402


def smooth_image(seed: int, height: int, width: int) -> np.ndarray:
    """A seeded float32 (H, W, 3) image in [0, 1] with structure at several scales."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(1, 6, size=3)
        channels.append(0.5 + 0.35 * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase))
    image = np.stack(channels, axis=-1) + 0.1 * rng.standard_normal((height, width, 3))
    return np.clip(image, 0, 1).astype(np.float32)


@pytest.fixture
def content_array() -> np.ndarray:
    return smooth_image(0, 48, 64)


@pytest.fixture
def style_array() -> np.ndarray:
    return smooth_image(1, 64, 64)


@pytest.fixture
def image_files(tmp_path, content_array, style_array):
    """(content.png, style.png) paths."""
    paths = []
    for name, array in (("content", content_array), ("style", style_array)):
        path = tmp_path / f"{name}.png"
        PIL.Image.fromarray((array * 255).round().astype(np.uint8)).save(path)
        paths.append(str(path))
    return tuple(paths)
