"""Every option of tfstyle, once: default, type, allowed values, where it applies, help text.

``OPTIONS`` is the one table. From it come ``transfer``'s keyword signature and the ``Args`` of its
docstring (``documented``), the ``Options`` record that validates a set of values, the CLI's
flags and help (``tfstyle.cli``), the options an export takes, the ``stylize`` signature's inputs,
dtypes and defaults (``tfstyle.export``) and the checks run inside the graph (``graph_checks``).

Where an option applies (``Option.scope``):

- ``INPUT``: a required input of both served signatures (``iterations``);
- ``REQUEST``: fixed by the export for ``serving_default``, an optional input of ``stylize``;
- ``EXPORT``: fixed when the model is exported (it changes the graph);
- ``CALL``: the Python API only (callbacks, the progress bar, several styles).

Adding a per-request option: a row here, the code that uses it (``pipeline.Request`` and where it
is used), and its test.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from tfstyle import checks, features, files, images, losses, optimize, precision, signature

INPUT, REQUEST, EXPORT, CALL = "input", "request", "export", "call"
#: Ways of matching the style (``style_loss``): the registry's names.
STYLE_LOSSES = tuple(losses.STYLE_LOSSES)
#: Named starting images; ``init`` also takes an image.
INITS = ("content", "noise", "style-mean")
_INT32_MAX = 2**31 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class Option:
    """One option: its default, kind, allowed values, scope and help text."""

    name: str
    default: Any
    kind: str  # int, float, bool, choice, layers, floats, weights, init, callable
    scope: str
    help: str
    low: float | None = None
    high: float | None = None
    above: bool = False  # strictly greater than low
    choices: tuple = ()
    none: bool = False  # None is allowed
    dtype: str | None = None  # the tensor dtype when served (INPUT and REQUEST)
    flag: bool = True  # a command-line flag (the CLI has its own way for the others)

    @property
    def type_name(self) -> str:
        """The type as the docstring states it ("int", "list of str", "str or image", ...)."""
        names = {"choice": "str", "layers": "list of str", "floats": "list of float",
                 "weights": "str", "init": "str or image", "callable": "callable",
                 "masks": "list of images", "mask": "image", "model": "path"}  # fmt: skip
        return names.get(self.kind, self.kind)

    def allowed(self, high: float | None = None) -> str:
        """What is allowed, in words ("between 16 and 4096", "one of 'max', 'avg'", ...)."""
        high = self.high if high is None else high
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "init":
            return "one of " + ", ".join(repr(c) for c in self.choices) + " or an image"
        if self.kind in ("int", "float"):
            if high is not None and self.kind == "int":
                return f"between {self.low} and {high}"
            number = "" if self.kind == "int" else "a finite number "
            upper = f" and <= {high:g}" if high is not None else ""
            return f"{number}{'>' if self.above else '>='} {self.low}{upper}"
        return ""

    def check(self, value, high: float | None = None) -> None:
        """Raise ``ValueError`` naming the option, the value and what is allowed."""
        if value is None and self.none:
            return
        high = self.high if high is None else high
        name = self.name
        if self.kind == "int":
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer; got {value!r}")
            if value < self.low or (high is not None and value > high):
                raise ValueError(f"{name} must be {self.allowed(high)}; got {value}")
        elif self.kind == "float":
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.number)
            ):
                raise ValueError(f"{name} must be a number; got {value!r}")
            try:
                value = float(value)
            except OverflowError:  # an int beyond any float
                raise ValueError(f"{name} must be {self.allowed(high)}; got {value}") from None
            too_low = value <= self.low if self.above else value < self.low
            too_high = high is not None and value > high
            # float32 is what the graph computes in: 1e300 would become inf there, and a value
            # that must be above the bound, 1e-320, would become the bound (0).
            big = not math.isfinite(value) or abs(value) > _FLOAT32_MAX
            too_low = too_low or (not big and self.above and float(np.float32(value)) <= self.low)
            if big or too_low or too_high:
                raise ValueError(f"{name} must be {self.allowed()}; got {value}")
        elif self.kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False; got {value!r}")
        elif self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{name} must be {self.allowed()}; got {value!r}")
        elif self.kind == "floats":
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not value:
                raise ValueError(f"{name} must be a non-empty list of numbers; got {value!r}")
            for v in value:
                dataclasses.replace(self, kind="float").check(v)
        elif self.kind == "layers":
            if not isinstance(value, (list, tuple)) or not value:
                raise ValueError(f"{name} must be a non-empty list of layer names; got {value!r}")
        elif self.kind == "weights":
            features.check_weights(value)
        elif self.kind == "model":
            if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
                raise ValueError(f"{name} must be a model directory (a path); got {value!r}")
        elif self.kind == "masks":
            if not isinstance(value, (list, tuple)) or not value:
                raise ValueError(f"{name} must be a list of images, one per style image; got "
                                 f"{value!r}")  # fmt: skip
            for k, mask in enumerate(value):
                if not (mask is None and name == "style_masks"):
                    _check_image(mask, f"{name}[{k}]")
        elif self.kind == "mask":
            _check_image(value, name)
        elif self.kind == "callable":
            if not callable(value):
                raise ValueError(f"{name} must be callable or None; got {value!r}")
        elif self.kind == "init":
            if isinstance(value, str) and value not in self.choices:
                if not os.path.lexists(value):  # a misspelt choice, most likely
                    allowed = self.allowed()
                    raise ValueError(f"{name} must be {allowed}; got {value!r} (no such file)")
                try:  # an image file: a regular one (not a FIFO, a device, a looping link)
                    files.check_regular(value, name)
                except (OSError, ValueError) as err:
                    raise ValueError(f"{err} ({name} must be {self.allowed()})") from None
            if not isinstance(value, images.IMAGE_TYPES):
                raise ValueError(f"{name} must be {self.allowed()}; got {type(value).__name__}")

    def graph_check(self, value, high=None):
        """The same rule as ``check``, as an op on a served input ``value``."""
        high = self.high if high is None else high
        if self.kind == "int":
            ok = value >= self.low if high is None else (value >= self.low) & (value <= high)
        elif self.kind == "float":
            ok = (value > self.low if self.above else value >= self.low) & _is_finite(value)
            if high is not None:
                ok = ok & (value <= high)
        elif self.kind == "init":
            ok = _any_equal(value, self.choices)
        else:
            return None
        return checks.check(ok, f"{self.name} must be {self.allowed(high)}; got {{}}", value)


def _check_image(value, name: str) -> None:
    """A ``ValueError`` naming ``name`` unless ``value`` is something ``load_image`` takes (a
    path must exist)."""
    if not isinstance(value, images.IMAGE_TYPES):
        raise ValueError(
            f"{name} must be an image (a path, bytes, a PIL image or an array); got "
            f"{type(value).__name__}"
        )
    if isinstance(value, (str, os.PathLike)) and not os.path.lexists(value):
        raise ValueError(f"{name}: no such file: {os.fspath(value)!r}")


def _is_finite(value):
    import tensorflow as tf

    return tf.math.is_finite(value)


def _any_equal(value, choices):
    import tensorflow as tf

    return tf.reduce_any(tf.equal(value, list(choices)))


OPTIONS: tuple[Option, ...] = (
    Option("size", 512, "int", REQUEST, "Longer side of the output in pixels; the output keeps "
           "the content's aspect ratio and the style images are resized to the same longer side.",
           low=images.MIN_SIDE, high=images.MAX_SIZE, dtype="int32"),
    Option("iterations", 200, "int", INPUT, "Optimisation steps in all, over all scales (one "
           "step is one evaluation of the objective and its gradient, at that scale's size).",
           low=0, high=_INT32_MAX, dtype="int32"),
    Option("min_scale", 256, "int", REQUEST, "Longer side in px of the first, coarsest scale: "
           "the image is optimised at sizes from min_scale up to size, scale_factor apart, each "
           "scale starting from the previous one's result upsampled (coarse to fine: large "
           "structure forms cheaply at a small size). At least size runs at size alone.",
           low=images.MIN_SIDE, high=images.MAX_SIZE, dtype="int32"),
    Option("scale_span", 8.0, "float", REQUEST, "Largest ratio between size and the first "
           "scale: the first scale is at least size / scale_span px (and at least min_scale), "
           "so the ladder keeps its proportions at larger sizes: a 2048 px run starts at 256 px, a "
           "4096 px one at 512 px, each scale getting the share of the steps a 2048 px run gives "
           "it (a print is not an enlarged thumbnail). 4096 lifts the bound.",
           low=1, high=images.MAX_SIZE, dtype="float32"),
    Option("scale_factor", 2.0, "float", REQUEST, "Ratio between successive scales.",
           low=1.1, high=16, dtype="float32"),
    Option("steps_ratio", 0.38, "float", REQUEST, "How the iterations are shared between "
           "scales: each scale gets steps_ratio times the steps of the scale below it (1 shares "
           "them equally; below 1 spends most steps at the cheap coarse scales).",
           low=0, above=True, high=16, dtype="float32"),
    Option("shared_iterations", 200, "int", REQUEST, "At most this many of the iterations "
           "are shared between the scales by steps_ratio; the rest all run at the last scale, "
           "size (a longer run refines the full-size image: the coarse scales set the look in a "
           "bounded number of steps). 0 runs every step at size.",
           low=0, high=_INT32_MAX, dtype="int32"),
    Option("style_scale", 1.0, "float", REQUEST, "Size of the style images relative to the "
           "output: each is resized so that its longer side is style_scale * size (at least "
           f"{images.MIN_SIDE}, at most {images.MAX_SIZE} px). Below 1 paints with smaller "
           "strokes and motifs, above 1 with larger ones.",
           low=0, above=True, high=16, dtype="float32"),
    Option("average_decay", 0.0, "float", REQUEST, "The result is an exponential moving "
           "average of the images over the steps at each scale, with this decay (bias-corrected; "
           "each scale starts from the previous one's average); 0 returns the last step's image.",
           low=0, high=0.999, dtype="float32"),
    Option("content_weight", 1.0, "float", REQUEST, "alpha, the weight of the content loss.",
           low=0, dtype="float32"),
    Option("style_weight", 1e4, "float", REQUEST, "beta, the weight of the style loss.",
           low=0, dtype="float32"),
    Option("tv_weight", 10.0, "float", REQUEST,
           "Weight of the total-variation (smoothness) loss.", low=0, dtype="float32"),
    Option("optimizer", "lbfgs", "choice", EXPORT, "The optimiser: \"lbfgs\" (reaches a given "
           "objective several times sooner, see benchmarks/) or \"adam\".",
           choices=tuple(optimize.OPTIMIZERS)),
    Option("learning_rate", None, "float", REQUEST, "Step size; None takes the optimiser's "
           f"default: adam {optimize.Adam.learning_rate} (on pixels in [0, 1]), lbfgs "
           f"{optimize.LBFGS.learning_rate} (a multiple of the quasi-Newton step, which is also "
           f"kept within {optimize.LBFGS_MAX_STEP} per pixel).",
           low=0, above=True, none=True, dtype="float32"),
    Option("init", "content", "init", REQUEST, "Starting image: \"content\", \"noise\", "
           "\"style-mean\" (the style's mean colour plus a little noise), or an image (a path, "
           "bytes, a PIL image or an array; served models take the names only).",
           choices=INITS, dtype="string"),
    Option("seed", None, "int", REQUEST, "Seed of the initial noise; the same inputs, options "
           "and seed give the same pixels on the same machine (with the Gram style loss). None "
           "draws one (an export takes 0).", low=0, high=_INT32_MAX, none=True, dtype="int64"),
    Option("weights", "imagenet", "weights", EXPORT, "\"imagenet\", a path to a Keras weights "
           "file of the include_top=False network, or None for a random network with a fixed "
           "seed.", none=True),
    Option("backbone", "vgg19", "choice", EXPORT, "The network: \"vgg19\" or \"vgg16\".",
           choices=features.BACKBONES),
    Option("pooling", "max", "choice", EXPORT,
           "\"max\" or \"avg\" (Gatys et al. recommend average pooling).",
           choices=features.POOLINGS),
    Option("precision", "auto", "choice", EXPORT, "Compute precision of the VGG convolutions: "
           "\"float32\", \"bfloat16\", or \"auto\": bfloat16 where it is measured to be at "
           f"least {precision.MARGIN}x faster than float32 on this machine (timed once on a CPU "
           "with AVX512_BF16 or AMX and cached; a GPU of compute capability 8.0+), else float32. "
           "TFSTYLE_PRECISION=float32|bfloat16 in the environment forces one. The losses are "
           "always computed in float32. An export takes float32 or bfloat16, default float32.",
           choices=precision.PRECISIONS),
    Option("content_layers", features.DEFAULT_CONTENT_LAYERS, "layers", EXPORT,
           "Layers for the content loss."),
    Option("style_layers", features.DEFAULT_STYLE_LAYERS, "layers", EXPORT,
           "Layers for the style loss."),
    Option("style_loss", "gram", "choice", EXPORT, "How style is matched: \"gram\" (Gatys et "
           "al.: the Gram matrices of the style layers) or \"wasserstein\" (the features' mean "
           "and covariance, the 2-Wasserstein distance between Gaussians; about 3x the time a "
           "step, and not bit-reproducible on a CPU: repeated runs differ by a few levels).",
           choices=STYLE_LOSSES),
    Option("style_layer_weights", None, "floats", EXPORT, "Weight of each style layer; None "
           "gives each 1 / len(style_layers).", low=0, none=True),
    Option("tile_size", None, "int", EXPORT, "Largest side in px of the interiors of the "
           "crops a step is computed on: a scale whose longer side is above it takes each step "
           "crop by crop (each crop reaching half the deepest layer's receptive field past its "
           "interior), the same step as on the whole image up to float rounding, with the "
           "network's memory bounded by the crop (tfstyle/tiles.py). None: whole images, or tiles "
           "of 512 px when the last scale would not fit in memory on the whole image (transfer, "
           "the CLI and batch; an export whose max_size is above 1024 takes requests above "
           "1024 px in tiles of 1024 px).",
           low=images.MIN_SIDE, high=images.MAX_SIZE, none=True),
    Option("style_blend_weights", None, "floats", CALL, "Weight of each style image when "
           "several are given, normalised to sum to 1; None weighs them equally.",
           low=0, none=True),
    Option("masks", None, "masks", CALL, "One mask per style image (a path, bytes, a PIL "
           "image or an array; any resolution with the content's aspect ratio): white where "
           "that style goes, black where it does not, grays for soft edges (the mean of the RGB "
           "channels). Each style then has its own loss in its region, on guided Gram matrices "
           "normalised by the mask's area (Gatys et al. 2017), weighted by len(style) * its "
           "style_blend_weights share (1 each by default); where no mask is white the content "
           "alone applies. None: the styles blended over the whole image.",
           none=True),
    Option("style_masks", None, "masks", CALL, "One mask (or None) per style image, on that "
           "style image: its statistics are taken from the white region only (as if it "
           "covered the image). None: from the whole of each style image.",
           none=True),
    Option("content_mask", None, "mask", CALL, "The content loss's weight per position (an "
           "image like masks): its gray levels are relative weights, normalised to a mean of "
           "1, so the content term keeps its overall weight, moved to the bright parts (a face "
           "kept recognisable under a strong style). None: the same weight everywhere.",
           none=True),
    Option("preserve_colors", False, "bool", REQUEST, "Keep the content image's colours: the "
           "result's luminance with the content's chrominance (YIQ).", dtype="bool"),
    Option("model", None, "model", CALL, "The directory of a real-time model (written by "
           "``tfstyle train``): the content is painted by its network in one forward pass, in "
           "the style it was trained on (give no style image); of the other options only size "
           "applies, the rest were fixed when it was trained. None: the optimisation.",
           none=True, flag=False),
    Option("callback", None, "callable", CALL, "Called as ``callback(step, losses, image)`` "
           "every ``callback_every`` steps and after the last one; ``losses`` is a dict of "
           "floats (total, content, style, tv) of ``image``, a float32 (h, w, 3) array in "
           "[0, 1] at the current scale, plus ``scale``, that scale's longer side in px.",
           none=True, flag=False),
    Option("callback_every", 10, "int", CALL, "Steps between callbacks.", low=1, flag=False),
    Option("progress", True, "bool", CALL, "Show a progress bar with the current loss.",
           flag=False),
)  # fmt: skip

#: ``export_saved_model``'s own parameters beside the options: what a request may ask, the version.
EXPORT_LIMITS: dict[str, Option] = {o.name: o for o in (
    Option("max_size", None, "int", EXPORT, "Largest size a stylize request may ask for; None "
           "takes max(size, 1024).", low=images.MIN_SIDE, high=images.MAX_SIZE, none=True),
    Option("max_iterations", 5000, "int", EXPORT, "Largest iterations a request may ask for.",
           low=1, high=_INT32_MAX),
    Option("version", None, "int", EXPORT, "Version directory; None takes one more than the "
           "highest present.", low=1, high=signature.MAX_VERSION, none=True),
)}  # fmt: skip

#: ``tfstyle.video``'s own options beside the table's (which apply to every frame; ``iterations``
#: to the first, which starts from its ``init``).
VIDEO_OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("temporal_weight", 50.0, "float", CALL, "Weight of the temporal loss (Ruder et al.): "
           "each frame after the first is kept close to the previous result warped by the "
           "optical flow, where the flow is consistent; 0 stylises each frame on its own from "
           "the warped previous result.", low=0.0, high=_FLOAT32_MAX),
    Option("frame_iterations", 40, "int", CALL, "Steps for each frame after the first, at the "
           "full size only (each starts from the previous result warped onto it).", low=0,
           high=_INT32_MAX),
)}  # fmt: skip

#: ``tfstyle train``'s own options (real-time mode: ``tfstyle.realtime``); the objective's are
#: the table's (``realtime.OBJECTIVE_OPTIONS``).
TRAIN_OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("size", 256, "int", CALL, "Side of the square random crops of the photos trained on "
           "(Johnson et al.: 256); the network then stylises any size.", low=images.MIN_SIDE,
           high=2048),
    Option("batch_size", 4, "int", CALL, "Photos per training step.", low=1, high=256),
    Option("steps", 10_000, "int", CALL, "Training steps in all (a resumed run goes on to "
           "this many; raise it to train longer). 10 000: under an hour on a T4-class GPU, "
           "estimated from a step's FLOPs (Johnson et al. train 40 000).", low=1,
           high=_INT32_MAX),
    Option("epochs", None, "float", CALL, "Passes over the photos, in place of steps: steps = "
           "ceil(epochs * photos / batch_size) (Johnson et al.: 2 epochs of COCO, about "
           "40 000 steps). None: steps decides.", low=0, above=True, high=1e6, none=True),
    Option("learning_rate", 1e-3, "float", CALL, "Adam's learning rate.", low=0.0, above=True,
           high=1.0),
    Option("seed", 0, "int", CALL, "Seeds the network's first weights, the order of the photos "
           "and the crops: the same seed, the same network.", low=0, high=_INT32_MAX),
    Option("checkpoint_every", 200, "int", CALL, "Steps between checkpoints (a run stopped or "
           "crashed resumes from the last).", low=1, high=_INT32_MAX),
    Option("distribute", None, "choice", CALL, "Train on several devices with tf.distribute: "
           "'mirrored' (MirroredStrategy: every GPU of this machine, each a share of the batch) "
           "or 'multi-worker' (MultiWorkerMirroredStrategy: the machines TF_CONFIG names, the "
           "chief writing MODEL_DIR); None: one device.",
           choices=("mirrored", "multi-worker"), none=True),
)}  # fmt: skip

#: The table by name.
BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS}
#: Optional inputs of the ``stylize`` signature: name -> dtype name.
REQUEST_OPTIONS: dict[str, str] = {o.name: o.dtype for o in OPTIONS if o.scope == REQUEST}
#: Options an export takes (the rest are per call or, iterations, per request).
EXPORT_OPTIONS: tuple[str, ...] = tuple(o.name for o in OPTIONS if o.scope in (REQUEST, EXPORT))


def _validate(self) -> None:
    for option in OPTIONS:
        value = getattr(self, option.name)
        if option.kind == "masks" and value is not None and not isinstance(value, (list, tuple)):
            value = (value,)  # one image: the mask of the one style
            object.__setattr__(self, option.name, value)
        if option.kind in ("layers", "floats", "masks") and isinstance(
            value, (list, tuple, np.ndarray)
        ):
            value = tuple(value)  # lists -> hashable tuples
            object.__setattr__(self, option.name, value)
        option.check(value)
    features.check_layers("content_layers", self.content_layers, self.backbone)
    features.check_layers("style_layers", self.style_layers, self.backbone)
    if self.style_layer_weights is not None and len(self.style_layer_weights) != len(
        self.style_layers
    ):
        raise ValueError(
            f"style_layer_weights must have one weight per style layer "
            f"({len(self.style_layers)}); got {len(self.style_layer_weights)}"
        )


def _effective_learning_rate(self) -> float:
    """``learning_rate``, or the optimiser's default when it is None."""
    if self.learning_rate is None:
        return optimize.get(self.optimizer).learning_rate
    return self.learning_rate


def _replace(self, **changes):
    """A copy with ``changes`` (validated)."""
    return dataclasses.replace(self, **changes)


Options = dataclasses.make_dataclass(
    "Options",
    [(o.name, Any, dataclasses.field(default=o.default)) for o in OPTIONS],
    frozen=True,
    namespace={
        "__post_init__": _validate,
        "learning_rate_or_default": property(_effective_learning_rate),
        "replace": _replace,
        "__doc__": "Every option of ``tfstyle.transfer``, validated on creation; the defaults "
        "and meanings are in ``tfstyle.options.OPTIONS``.\n\n"
        "Example:\n    >>> Options(size=256).style_weight\n    10000.0",
    },
)
Options.__module__ = __name__


def first_given(values: dict, defaults: dict, allowed=()) -> str | None:
    """The first name of ``values`` whose value is not its default in ``defaults``, the names
    in ``allowed`` aside: the option a caller set where it does not apply (an array is never a
    default)."""
    for name, value in values.items():
        if name in allowed:
            continue
        default = defaults[name]
        if default is None:
            given = value is not None
        elif isinstance(value, (str, bytes, numbers.Number, tuple, list)):
            given = bool(value != default)
        else:  # an image, an array, a tensor: never a default (and not compared as one)
            given = True
        if given:
            return name
    return None


def options_from(values: dict, allowed: tuple[str, ...] | None = None, what: str = "option"):
    """``Options`` from a dict, with a clear error for names not in ``allowed``."""
    allowed = tuple(BY_NAME) if allowed is None else allowed
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise TypeError(f"unknown {what}(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return Options(**values)


def graph_checks(values: dict, highs: dict | None = None) -> list:
    """Assertion ops checking served inputs (``{name: tensor}``) by the table's rules.

    ``highs`` overrides an upper limit (an export's ``max_size`` and ``max_iterations``).
    """
    highs = highs or {}
    ops = [BY_NAME[n].graph_check(v, highs.get(n)) for n, v in values.items()]
    return [op for op in ops if op is not None]


def docstring_args(scopes=(INPUT, REQUEST, EXPORT, CALL), indent: str = "        ",
                   rows: tuple[Option, ...] = OPTIONS) -> str:  # fmt: skip
    """The ``Args:`` lines of the ``rows`` in ``scopes``, Google style, defaults included."""
    import textwrap

    lines = []
    for o in rows:
        if o.scope not in scopes:
            continue
        default = "None" if o.default is None else repr(o.default)
        if o.kind == "layers":
            default = ", ".join(o.default)
        text = f"{o.name}: {o.type_name}. {o.help} Defaults to {default}."
        lines += textwrap.wrap(text, 100, initial_indent=indent, subsequent_indent=indent + "    ")
    return "\n".join(lines)


def documented(func: Callable) -> Callable:
    """Fill ``func``'s docstring with the table's ``Args`` lines, where it has ``{options}``.

    ``func``'s keyword-only parameters are written out in its source (so that readers, IDEs and
    type checkers see them); they must be the table's options, in its order, with its defaults:
    anything else is a ``TypeError`` at import.
    """
    params = inspect.signature(func).parameters.values()
    written = [(p.name, p.default) for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    table = [(o.name, o.default) for o in OPTIONS]
    if written != table:
        raise TypeError(f"{func.__qualname__}'s keyword parameters differ from options.OPTIONS")
    func.__doc__ = func.__doc__.replace("{options}", docstring_args().lstrip())
    return func
