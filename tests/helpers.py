"""Helpers shared by the tests (importable: tests/ is on sys.path under pytest)."""

import io

import numpy as np
import PIL.Image


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


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray((array * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def session_run(path: str, signature_name: str, feeds: dict) -> dict:
    """Run a signature through the session-based loader, as tensorflow_model_server does."""
    return session_runs(path, signature_name, [feeds])[0]


def session_runs(path: str, signature_name: str, feeds: list) -> list:
    """``session_run`` for several requests, on one loaded model."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta.signature_def[signature_name]
        fetches = {alias: info.name for alias, info in signature.outputs.items()}
        return [
            session.run(fetches, {signature.inputs[k].name: v for k, v in f.items()}) for f in feeds
        ]


def pixels(outputs: dict) -> np.ndarray:
    """The uint8 (H, W, 3) image of a served answer: its PNG output, decoded."""
    from tfstyle import signature as sig

    return np.asarray(PIL.Image.open(io.BytesIO(outputs[sig.IMAGE_BYTES])))
