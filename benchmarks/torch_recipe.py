#!/usr/bin/env python3
"""The PyTorch tutorial's style-transfer recipe on tfstyle's objective, and its per-step cost.

"Neural Transfer Using PyTorch" (pytorch.org tutorials) minimises the objective with
``optim.LBFGS([input_img])`` and every default (lr 1, max_iter 20, history_size 100, no line
search), a closure that clamps ``input_img`` to [0, 1] and counts evaluations, and
``while run[0] <= num_steps: optimizer.step(closure)`` with ``num_steps=300``. This module runs
that loop on exactly tfstyle's objective (``common.Problem``: the network and its weights, layers,
preprocessing, loss definitions and weights, per-area scaling, content initialisation, the
example images and the resolution) and times one forward + input-gradient pass in PyTorch and in
TensorFlow, with thread and compiler variants of each.

    python benchmarks/torch_recipe.py --weights vgg16_notop.weights.h5 --backbone vgg16 --out DIR

PyTorch is an optional, benchmark-only dependency (``pip install torch``); it is imported only
when a function needs it. Only the Gram style loss in float32 is reproduced.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import weakref

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfstyle import options, pipeline  # noqa: E402

TUTORIAL = "https://pytorch.org/tutorials/advanced/neural_style_tutorial.html"
#: The torch objective should equal tfstyle's to this relative difference (float32) ...
TOLERANCE = 1e-4
#: ... and no benchmark runs beyond this one.
REFUSE = 1e-3
#: The recipe is judged at the best point it evaluated in its last this many evaluations:
#: torch.optim.LBFGS without a line search ends every step() on an update it never evaluates.
LAST = 20
#: TensorFlow variants timed in a fresh process each (threading cannot change after start):
#: name -> (environment variables, settings of the child).
TF_VARIANTS: dict[str, tuple[dict, dict]] = {
    "default": ({}, {}),
    "onednn-off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, {}),
    "intra2-inter1": ({}, {"intra_op": 2, "inter_op": 1}),
    "omp-kmp": (
        {
            "OMP_NUM_THREADS": "2",
            "KMP_BLOCKTIME": "0",
            "KMP_AFFINITY": "granularity=fine,compact,1,0",
        },
        {},
    ),  # fmt: skip
    "xla": ({}, {"jit_compile": True}),
}
#: Thread counts torch is timed with (torch.set_num_threads).
TORCH_THREADS = (1, 2)


def _torch():
    """The torch module, or an ImportError saying how to install it."""
    # PyPI's torch wheel is built for CUDA and warns, where CUDA libraries are absent, that no
    # GPU will be used: the recipe runs on the CPU by design, so that warning says nothing.
    warnings.filterwarnings("ignore", message="CUDA initialization", category=UserWarning)
    try:
        import torch
    except ImportError as err:
        raise ImportError("torch is not installed: pip install torch") from err
    return torch


def to_torch(image):
    """An ``(H, W, 3)`` image (array or tensor) as a float32 ``(1, 3, H, W)`` torch tensor."""
    torch = _torch()
    array = np.asarray(image, np.float32).transpose(2, 0, 1)[None]
    return torch.from_numpy(np.ascontiguousarray(array))


def to_numpy(image) -> np.ndarray:
    """A ``(1, 3, H, W)`` torch tensor as an ``(H, W, 3)`` float32 array."""
    return image.detach()[0].permute(1, 2, 0).contiguous().numpy()


class TorchObjective:
    """tfstyle's float32 objective (``pipeline.Objective``, Gram style loss) in PyTorch.

    ``network`` is a ``torch.nn.Sequential`` VGG cut after the deepest layer the problem uses,
    with the Keras extractor's convolution weights (HWIO kernels -> OIHW) and pooling; the input
    goes through the same caffe preprocessing (RGB in [0, 1] -> BGR x 255 minus the ImageNet
    mean). The targets (content activations, style Gram matrices) and loss weights are the ones
    TensorFlow computed for the problem, so only the forward pass and the losses are recomputed.

    Args:
        problem: ``common.Problem``.

    Example:
        >>> problem = common.Problem(64, None, "vgg16")
        >>> float(TorchObjective(problem)(to_torch(problem.content)))  # problem.value(content)
    """

    def __init__(self, problem):
        torch = _torch()
        from tfstyle import features

        objective = problem.objective
        if objective.style.name != "gram":
            raise ValueError(f"only the gram style loss is reproduced; got {objective.style.name}")
        self.content_layers = objective.content_layers
        self.style_layers = objective.style_layers
        wanted = set(self.content_layers + self.style_layers)
        layers, self.taps = [], {}  # taps: index in the network -> layer name
        for layer in objective.extractor.layers:
            if isinstance(layer, (keras.layers.InputLayer, features.VGGPreprocess)):
                continue
            if layer.dtype_policy.name != "float32":
                raise ValueError(
                    f"only a float32 extractor is reproduced; {layer.name} computes in "
                    f"{layer.dtype_policy.name}"
                )
            layers += self._convert(layer, torch)
            if layer.name in wanted:
                self.taps[len(layers) - 1] = layer.name
        missing = wanted - set(self.taps.values())
        if missing:
            raise ValueError(f"the extractor has no layer {', '.join(sorted(missing))}")
        self.network = torch.nn.Sequential(*layers[: max(self.taps) + 1])
        self.network.eval().requires_grad_(False)
        self.mean = torch.tensor(features._VGG_MEAN_BGR, dtype=torch.float32).view(1, 3, 1, 1)
        targets, weights = problem.targets, problem.weights
        self.content_targets = [  # (1, H, W, C) -> (1, C, H, W)
            torch.from_numpy(np.ascontiguousarray(np.asarray(t).transpose(0, 3, 1, 2)))
            for t in targets.content
        ]
        self.style_targets = [torch.from_numpy(np.array(g, np.float32)) for g in targets.style]
        scalar = lambda w: torch.tensor(float(w), dtype=torch.float32)  # noqa: E731
        self.content_weight = scalar(weights.content)
        self.style_weight = scalar(weights.style)
        self.tv_weight = scalar(weights.tv)
        self.style_layer_weights = torch.from_numpy(np.array(weights.style_layers, np.float32))

    @staticmethod
    def _convert(layer, torch) -> list:
        """The torch modules computing a Keras layer of the VGG (channels first)."""
        name = type(layer).__name__
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            ok = (
                layer.strides == (1, 1)
                and layer.dilation_rate == (1, 1)
                and layer.padding == "same"
                and kh % 2 == 1
                and kw % 2 == 1
                and layer.use_bias
                and layer.activation is keras.activations.relu
            )
            if not ok:
                raise ValueError(f"{layer.name}: only stride-1 'same' ReLU convolutions are copied")
            conv = torch.nn.Conv2d(cin, cout, (kh, kw), padding=(kh // 2, kw // 2))
            kernel, bias = (np.asarray(w, np.float32) for w in layer.get_weights())
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
                conv.bias.copy_(torch.from_numpy(bias))
            return [conv, torch.nn.ReLU(inplace=False)]  # the tutorial's non-inplace ReLU
        pools = {"MaxPooling2D": torch.nn.MaxPool2d, "AveragePooling2D": torch.nn.AvgPool2d}
        if name in pools:
            if layer.padding != "valid":
                raise ValueError(f"{layer.name}: only 'valid' pooling is copied")
            return [pools[name](tuple(layer.pool_size), tuple(layer.strides))]
        raise ValueError(f"{layer.name}: no torch equivalent of a {name} layer here")

    def terms(self, image) -> dict:
        """Loss terms of ``image`` ``(1, 3, H, W)`` in [0, 1]: total, content, style, tv."""
        torch = _torch()
        if image.shape[0] != 1:
            raise ValueError(f"one image at a time; got a batch of {image.shape[0]}")
        x = torch.flip(image * 255.0, dims=(1,)) - self.mean  # caffe: BGR, x 255, minus mean
        feats = {}
        for index, module in enumerate(self.network):
            x = module(x)
            if index in self.taps:
                feats[self.taps[index]] = x
        content = sum(
            0.5 * torch.sum(torch.square(feats[n] - p))
            for n, p in zip(self.content_layers, self.content_targets, strict=True)
        )
        layer_losses = []
        for name, target in zip(self.style_layers, self.style_targets, strict=True):
            f = feats[name]
            n, m = f.shape[1], f.shape[2] * f.shape[3]
            flat = f.reshape(n, m)
            gram = flat @ flat.T
            # tfstyle's float32 denominator: 4 * n^2 * m^2, each factor rounded as TF does.
            scale = np.float32(4.0) * np.square(np.float32(n)) * np.square(np.float32(m))
            layer_losses.append(torch.sum(torch.square(gram - target)) / float(scale))
        style = torch.sum(self.style_layer_weights * torch.stack(layer_losses))
        dy = image[:, :, 1:, :] - image[:, :, :-1, :]
        dx = image[:, :, :, 1:] - image[:, :, :, :-1]
        tv = torch.sum(torch.square(dy)) + torch.sum(torch.square(dx))
        area = np.float32(pipeline.AREA_REFERENCE) / np.float32(image.shape[2] * image.shape[3])
        content, tv = float(area) * content, float(area) * tv
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        return {"total": total, "content": content, "style": style, "tv": tv}

    def forward(self, image):
        """The objective (a scalar tensor) of ``image`` ``(1, 3, H, W)`` in [0, 1]."""
        return self.terms(image)["total"]

    __call__ = forward


def check_objective(problem, objective: TorchObjective, seed: int = 0) -> dict:
    """The torch objective against ``problem.value`` on the content image and a uniform random
    image: per image, both values and their relative difference; ``max_rel``, the larger."""
    torch = _torch()
    h, w = problem.content.shape[:2]
    noise = np.random.default_rng(seed).uniform(size=(h, w, 3)).astype(np.float32)
    result = {}
    for name, image in (("content", np.asarray(problem.content)), ("random", noise)):
        with torch.no_grad():
            ours = float(objective(to_torch(image)))
        theirs = problem.value(image)
        result[name] = {"torch": ours, "tf": theirs, "rel": abs(ours - theirs) / abs(theirs)}
    result["max_rel"] = max(result["content"]["rel"], result["random"]["rel"])
    return result


_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def checked_objective(problem) -> tuple[TorchObjective, dict]:
    """``TorchObjective(problem)`` and its ``check_objective`` (built once per problem); raises
    ``RuntimeError`` if the two objectives differ by more than ``REFUSE``."""
    if problem not in _CHECKED:
        objective = TorchObjective(problem)
        check = check_objective(problem, objective)
        if check["max_rel"] > REFUSE:
            raise RuntimeError(
                f"the torch objective differs from tfstyle's by {check['max_rel']:.2e} relative "
                f"(content image: torch {check['content']['torch']:.6g}, tf "
                f"{check['content']['tf']:.6g}; random image: torch "
                f"{check['random']['torch']:.6g}, tf {check['random']['tf']:.6g}); allowed "
                f"{REFUSE:g}: refusing to benchmark"
            )
        _CHECKED[problem] = (objective, check)
    return _CHECKED[problem]


def run_recipe(problem, evaluations: int = 300) -> dict:
    """The tutorial's loop on the problem, from the content image, timed.

    Returns a dict: ``wall_s``; ``evaluations`` actually made (the loop stops at the first
    ``step()`` that ends past ``evaluations``, so up to ``max_iter - 1`` more); ``curve``, per
    evaluation (seconds since the start, evaluation index from 1, the torch objective of the
    clamped image evaluated); ``best_last20``, the lowest objective among the points evaluated in
    the last ``LAST`` evaluations, re-evaluated with ``problem.value`` (tfstyle's float32
    objective), with ``best_last20_evaluation``, its index; ``final_objective``,
    ``problem.value`` of the final clamped image; ``check``, the objective-equality check.
    """
    torch = _torch()
    objective, check = checked_objective(problem)
    content = to_torch(problem.content)
    warm = content.clone().requires_grad_(True)  # untimed warm-up forward and backward
    objective(warm).backward()

    input_img = content.clone()
    input_img.requires_grad_(True)
    optimizer = torch.optim.LBFGS([input_img])
    run = [0]
    curve = []
    # Candidates for the minimum of the last LAST evaluations, increasing in loss (a monotonic
    # queue): (index, loss, image). The front is the minimum.
    window = collections.deque()

    def record(loss: float) -> None:
        index, key = run[0], loss if math.isfinite(loss) else math.inf
        curve.append((time.perf_counter() - start, index, loss))
        while window and window[-1][1] >= key:
            window.pop()
        window.append((index, key, input_img.detach().clone()))
        while window[0][0] <= index - LAST:
            window.popleft()

    start = time.perf_counter()
    while run[0] <= evaluations:

        def closure():
            with torch.no_grad():
                input_img.clamp_(0, 1)
            optimizer.zero_grad()
            loss = objective(input_img)
            loss.backward()
            run[0] += 1
            record(loss.item())
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    wall = time.perf_counter() - start

    best_index, best_loss, best_image = window[0]
    return {
        "recipe": "torch.optim.LBFGS defaults (lr 1, max_iter 20, history_size 100, no line "
        f"search), clamp in the closure, while run[0] <= {evaluations}: step(closure) ({TUTORIAL})",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "shape": list(problem.content.shape[:2]),
        "check": check,
        "wall_s": wall,
        "evaluations": run[0],
        "curve": curve,
        "best_last20": problem.value(to_numpy(best_image)),
        "best_last20_torch": best_loss,
        "best_last20_evaluation": best_index,
        "final_objective": problem.value(to_numpy(input_img)),
    }


def recipe_target(problem, evaluations: int = 300) -> dict:
    """``run_recipe``: the PyTorch recipe's run, for speed.py to compare with (use
    ``best_last20`` as the recipe's objective; ``final_objective`` beside it)."""
    return run_recipe(problem, evaluations)


def time_step_torch(problem, repeats: int = 5, threads: int | None = None) -> float:
    """Seconds for one forward + input-gradient pass of the torch objective at the problem's
    size (median of ``repeats`` after a warm-up), with ``threads`` intra-op threads (None:
    torch's current setting, which is restored afterwards)."""
    torch = _torch()
    objective, _ = checked_objective(problem)
    image = to_torch(problem.content).requires_grad_(True)

    def once() -> None:
        image.grad = None
        objective(image).backward()

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        once()
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            once()
            times.append(time.perf_counter() - began)
    finally:
        torch.set_num_threads(previous)
    return statistics.median(times)


def time_step_tf(problem, repeats: int = 5, jit_compile: bool = False) -> float:
    """Seconds for one forward + input-gradient pass of tfstyle's objective in a
    ``tf.function`` (``jit_compile``: XLA) at the problem's size (median of ``repeats`` after
    a warm-up that includes tracing)."""
    objective, targets, weights = problem.objective, problem.targets, problem.weights

    @tf.function(jit_compile=jit_compile, autograph=False)
    def step(image):
        with tf.GradientTape() as tape:
            tape.watch(image)
            loss = objective(image, targets, weights)["total"]
        return loss, tape.gradient(loss, image)

    image = tf.constant(problem.content[None])
    step(image)[1].numpy()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        step(image)[1].numpy()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def tf_variant_child(name: str, sizes, weights, backbone: str, repeats: int) -> None:
    """In a fresh process: time ``time_step_tf`` under variant ``name`` at each size, printing
    one JSON line each."""
    settings = TF_VARIANTS[name][1]
    if "intra_op" in settings:  # before TensorFlow's runtime starts
        tf.config.threading.set_intra_op_parallelism_threads(settings["intra_op"])
        tf.config.threading.set_inter_op_parallelism_threads(settings["inter_op"])
    for size in sizes:
        problem = common.Problem(size, weights, backbone)
        seconds = time_step_tf(problem, repeats, jit_compile=settings.get("jit_compile", False))
        threading = tf.config.threading
        line = {
            "variant": name,
            "size": size,
            "step_s": seconds,
            "intra_op": threading.get_intra_op_parallelism_threads(),
            "inter_op": threading.get_inter_op_parallelism_threads(),
        }
        print(json.dumps(line), flush=True)


def time_tf_variant(name: str, sizes, weights, backbone: str, repeats: int) -> dict:
    """``{size: seconds or {"error": line}}`` for TF variant ``name``, from a fresh process.
    The variant's environment variables are set in it and every other variant's removed."""
    env = dict(os.environ)
    for other, _ in TF_VARIANTS.values():
        for key in other:
            env.pop(key, None)
    env.update(TF_VARIANTS[name][0])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    command = [
        sys.executable, os.path.abspath(__file__), "--tf-variant", name,
        "--step-sizes", *map(str, sizes), "--backbone", backbone,
        "--weights", "none" if weights is None else os.fspath(weights),
        "--repeats", str(repeats),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    found = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            found[record["size"]] = record["step_s"]
    if out.returncode != 0:
        error = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        for size in sizes:
            found.setdefault(size, {"error": error})
    return found


def _fmt(value) -> str:
    return f"{value:.3f} s" if isinstance(value, float) else f"failed: {value['error']}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=256, help="longer side of the recipe's run, px")
    p.add_argument("--weights", default="none", help="a weights file, or none (random network)")
    p.add_argument("--backbone", default=options.DEFAULTS["backbone"], choices=("vgg19", "vgg16"))
    p.add_argument(
        "--evaluations", type=int, default=300, help="the tutorial's num_steps (0: only the steps)"
    )
    p.add_argument(
        "--step-sizes", type=int, nargs="*", default=[256, 512], help="sizes to time a step at"
    )
    p.add_argument(
        "--tf-variants",
        nargs="*",
        default=list(TF_VARIANTS),
        choices=list(TF_VARIANTS),
        help="TensorFlow variants to time, a fresh process each",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed passes per step figure")
    p.add_argument("--out", default=None, help="directory for torch_recipe.json (default: a new "
                   "temporary directory)")  # fmt: skip
    p.add_argument("--tf-variant", default=None, choices=list(TF_VARIANTS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    weights = None if args.weights.lower() == "none" else args.weights
    if args.tf_variant:
        tf_variant_child(args.tf_variant, args.step_sizes, weights, args.backbone, args.repeats)
        return 0
    torch = _torch()
    out = args.out or tempfile.mkdtemp(prefix="torch_recipe-")
    os.makedirs(out, exist_ok=True)

    problem = common.Problem(args.size, weights, args.backbone)
    flags = common.print_machine(problem.opts)
    threading = tf.config.threading
    print(
        f"PyTorch {torch.__version__}: {torch.get_num_threads()} intra-op threads, "
        f"{torch.get_num_interop_threads()} inter-op, mkldnn "
        f"{torch.backends.mkldnn.is_available()}; TensorFlow intra-op "
        f"{threading.get_intra_op_parallelism_threads()}, inter-op "
        f"{threading.get_inter_op_parallelism_threads()} (0: TensorFlow's choice)"
    )
    label = (
        f"{args.backbone}, {'random' if weights is None else os.path.basename(weights)} "
        f"weights, {tuple(problem.content.shape[:2])} px"
    )
    print(f"PyTorch tutorial recipe on tfstyle's objective: {label}")
    objective, check = checked_objective(problem)
    for name in ("content", "random"):
        c = check[name]
        print(
            f"objective check, {name} image: torch {c['torch']:.7g}, tf {c['tf']:.7g}, relative "
            f"difference {c['rel']:.1e} (target {TOLERANCE:g}, refused above {REFUSE:g})"
        )

    recipe = run_recipe(problem, args.evaluations) if args.evaluations > 0 else None
    if recipe:
        print(
            f"recipe ({TUTORIAL}): {recipe['evaluations']} evaluations in "
            f"{recipe['wall_s']:.1f} s ({recipe['wall_s'] / recipe['evaluations']:.3f} s each)"
        )
        print(
            f"  judged at the best point it evaluated in its last {LAST} evaluations (torch's "
            f"L-BFGS without a line search ends each step() on an update it never evaluates): "
            f"{recipe['best_last20']:.4g} (evaluation {recipe['best_last20_evaluation']}); "
            f"its final image: {recipe['final_objective']:.4g}"
        )

    steps = {}
    for size in args.step_sizes:
        other = problem if size == args.size else common.Problem(size, weights, args.backbone)
        checked_objective(other)
        row = {"torch": time_step_torch(other, args.repeats)}
        for n in TORCH_THREADS:
            row[f"torch_threads_{n}"] = time_step_torch(other, args.repeats, threads=n)
        row["tf"] = time_step_tf(other, args.repeats)
        steps[size] = row
    variants = {
        name: time_tf_variant(name, args.step_sizes, weights, args.backbone, args.repeats)
        for name in args.tf_variants
    }
    for size, row in steps.items():
        for name in args.tf_variants:
            row[f"tf_{name}"] = variants[name].get(size, {"error": "no result"})

    print("\none forward + input-gradient pass of the whole objective (median of "
          f"{args.repeats}; another process may share the CPU):")  # fmt: skip
    for size, row in steps.items():
        print(f"  {size} px:")
        for key, value in row.items():
            ratio = f"  ({value / row['torch']:.2f}x torch)" if isinstance(value, float) else ""
            print(f"    {key:<22} {_fmt(value)}{ratio}")

    result = {
        "label": label,
        "size": args.size,
        "cpu_flags": flags,
        "tensorflow": tf.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "check": check,
        "recipe": recipe,
        "step_s": steps,
    }
    path = os.path.join(out, "torch_recipe.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
