"""What the benchmark scripts share: the example images, the objective they measure against
(``Problem``) and the report of the machine and precision they ran with (``print_machine``).

Every script in this directory imports this module and none imports another script: a script
run as ``python benchmarks/speed.py`` is the module ``__main__``, and anything importing
``speed`` then would load a second copy of it. So this module imports no script.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from tfstyle import images, options, pipeline, precision  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTENT = os.path.join(ROOT, "examples", "content.jpg")
STYLE = os.path.join(ROOT, "examples", "style.png")


class Problem:
    """The objective both methods minimise, at one resolution."""

    def __init__(self, size: int, weights, backbone: str):
        self.options = {"size": size, "weights": weights, "backbone": backbone}
        # The objective is judged in float32.
        self.opts = options.Options(**self.options, seed=0, precision="float32")
        self.pipeline = pipeline.get(self.opts)
        content = images.load_image(CONTENT, "content")
        style = images.load_image(STYLE, "style")
        request = pipeline.request_tensors(self.opts, 0)
        size = tf.constant(size)
        started = self.pipeline.compiled.start(content, [style], [1.0], request, size, content)
        self.content = started.content
        self.targets, self.weights = started.targets, started.weights
        self.objective = self.pipeline.objective

    def value(self, image) -> float:
        """Objective of an (H, W, 3) image, resized to this problem's resolution if needed."""
        image = tf.convert_to_tensor(image, tf.float32)
        if image.shape[:2] != self.content.shape[:2]:
            image = images.resize(image, self.content.shape[0], self.content.shape[1])
        terms = self.pipeline.compiled.evaluate(image[None], self.targets, self.weights)
        return float(terms["total"])


def print_machine(opts=None) -> list:
    """Print the CPU and its instruction-set flags (returned); with ``opts``, the precision its
    runs use."""
    machine = precision._machine()
    flags = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in machine["flags"]]
    print(f"CPU: {machine['cpu']}; flags: {' '.join(flags) or 'no avx2/avx512f/avx512_bf16/amx'}")
    if opts is not None:
        choice = used_precision(opts)
        print(f"precision {opts.precision} -> {choice.precision}: {choice.reason}")
        print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs")
    return flags


def used_precision(opts) -> precision.Choice:
    """The precision ``opts`` runs in here (``TFSTYLE_PRECISION`` included)."""
    layers = tuple(dict.fromkeys(opts.content_layers + opts.style_layers))
    return precision.choose(
        opts.precision, backbone=opts.backbone, pooling=opts.pooling, layers=layers,
        weights=opts.weights,
    )  # fmt: skip


def median_seconds(fn, repeats: int, per: int = 1) -> float:
    """The median wall time of ``repeats`` calls of ``fn`` (divided by ``per``: seconds per
    step of a call of ``per`` steps), after one untimed call (tracing, first-use caches)."""
    fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) / per)
    return statistics.median(times)
