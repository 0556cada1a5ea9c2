"""Export the whole optimisation as a SavedModel that TensorFlow Serving runs.

Decoding, resizing, targets, the optimisation loop (the same ``optimize.advance`` as the Python
API) and PNG encoding all happen inside the graph. All optimiser state lives in loop variables,
so concurrent requests on one session are independent. Saved as Keras's ``ExportArchive`` saves
(a plain ``tf.saved_model.save`` of a module holding a Keras 3 model does not load in TF
Serving's session-based loader).
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import os
import re

import numpy as np
import tensorflow as tf

from tfstyle import checks, files, images, masks, memory, options, pipeline
from tfstyle import signature as sig

#: Largest ``iterations`` a request may ask for, unless the export says otherwise.
DEFAULT_MAX_ITERATIONS = options.EXPORT_LIMITS["max_iterations"].default
#: Where an export's default differs from ``transfer``'s: the model runs on the server, so the
#: precision cannot be measured here; float32 is right on every server.
EXPORT_DEFAULTS = {"precision": "float32"}
#: An export whose ``max_size`` is above this, with ``tile_size`` unset, takes the requests above
#: it in tiles of this side (``tile_size``): a request up to 1024 px runs on the whole image, as
#: in a 1024 px export, and a larger one holds one crop's network (1184 px with VGG19's default
#: layers) and its image-sized buffers, never the whole image's network (``tiling_for``).
SERVED_TILE_SIZE = 1024


def export_saved_model(
    model_dir: str | os.PathLike = sig.MODEL_DIR,
    *,
    version: int | None = None,
    max_size: int | None = None,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    warmup: bool = True,
    **export_options,
) -> str:
    """Write the style-transfer SavedModel to ``model_dir/<version>/`` for TF Serving.

    Args:
        model_dir: str. The model's base path (what ``--model_base_path`` points at). Defaults to
            ``"saved_models/tfstyle"``.
        {limits}
        warmup: bool. Write warm-up requests to ``assets.extra/`` (needs the ``serving``
            extra). Defaults to True.
        **export_options: any of ``options.EXPORT_OPTIONS``, with the meaning and default they
            have in ``tfstyle.transfer``. They become the ``serving_default`` signature's fixed
            values; the per-request ones (``options.REQUEST_OPTIONS``) are also the ``stylize``
            signature's default inputs. ``init`` must be a name (not an image); ``seed`` None
            is exported as 0; ``precision`` is ``"float32"`` (the default) or ``"bfloat16"``
            (for servers whose hardware runs it faster), not ``"auto"``.

    Returns:
        The path of the version directory written.

    Example:
        >>> tfstyle.export_saved_model("saved_models/tfstyle", size=512, weights="vgg19.h5")
        'saved_models/tfstyle/1'
    """
    unknown = sorted(set(export_options) - set(options.EXPORT_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown export option(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(options.EXPORT_OPTIONS)}"
        )
    opts = options.Options(**{**EXPORT_DEFAULTS, **export_options})
    if opts.precision == "auto":
        raise ValueError(
            "precision: 'auto' is measured on the machine that runs the model, and an export "
            "runs on the server; choose 'float32' (the default, right on every server) or "
            "'bfloat16' (for a server measured to run it faster)"
        )
    if not (isinstance(opts.init, str) and opts.init in options.INITS):
        allowed = ", ".join(repr(i) for i in options.INITS)
        got = opts.init if isinstance(opts.init, str) else type(opts.init).__name__
        raise ValueError(f"init must be one of {allowed} for an export; got {got!r}")
    max_size = max(opts.size, 1024) if max_size is None else max_size
    limits = options.EXPORT_LIMITS
    dataclasses.replace(limits["max_size"], low=opts.size, none=False).check(max_size)
    limits["max_iterations"].check(max_iterations)
    opts = opts.replace(tile_size=tiling_for(opts.tile_size, max_size))
    with files.new_directories(model_dir, "model_dir"):  # removed again if nothing is written
        path = _version_dir(model_dir, version)
        _save(path, opts, max_size, max_iterations, warmup)
    return path


def _save(path: str, opts, max_size: int, max_iterations: int, warmup: bool) -> None:
    """Trace the signatures and write the SavedModel at ``path`` (complete, or not at all)."""
    served = _Served(pipeline.get(opts), opts, max_size, max_iterations)

    # Each signature a tf.function (the SavedModel records stylize's Python defaults as the
    # signature's default inputs), traced once, by the save.
    signatures = {
        name: tf.function(fn, input_signature=specs, autograph=False)
        for name, fn, specs in (
            (sig.DEFAULT_SIGNATURE, served.serving_default, served.required),
            (sig.STYLIZE_SIGNATURE, served.stylize,
             served.required + list(served.optional.values())),
        )
    }  # fmt: skip
    # The model's variables, not the Keras model: a Keras 3 model tracked whole does not load in
    # TF Serving's loader (Keras's ExportArchive saves the same way). A variable the signatures
    # read that is not here fails the save.
    root = tf.Module()
    root.weights = [v.value for v in served.pipeline.extractor.variables]
    # Written under a hidden name and renamed when complete: a server polling model_dir (it
    # loads any numeric directory) never sees a half-written version.
    with files.atomic_path(path, directory=True) as tmp:
        tf.saved_model.save(root, tmp, signatures=signatures)
        _write_metadata(tmp, opts, max_size, max_iterations, served.crop_side)
        if warmup:
            _write_warmup(tmp, max(opts.size // 8, 2 * images.MIN_SIDE), served.defaults)


export_saved_model.__doc__ = export_saved_model.__doc__.replace(
    "{limits}", options.docstring_args(rows=tuple(options.EXPORT_LIMITS.values())).lstrip()
)


def tiling_for(tile_size: int | None, max_size: int) -> int | None:
    """The ``tile_size`` an export takes: ``tile_size`` as set, else ``SERVED_TILE_SIZE`` when
    ``max_size`` is above it (a served request's memory stays bounded by a crop), else None."""
    if tile_size is None and max_size > SERVED_TILE_SIZE:
        return SERVED_TILE_SIZE
    return tile_size


class _Served:
    """The exported computation: request checks, in-graph decoding, then the one pipeline."""

    def __init__(self, pipe: pipeline.Pipeline, opts, max_size: int, max_iterations: int):
        self.pipeline = pipe
        tiling = pipe.objective.tiling
        #: The side of a tiled request's crops, None when requests run on whole images.
        self.crop_side = None if tiling is None else tiling.crop_side
        self.limits = {"size": max_size, sig.ITERATIONS: max_iterations}
        contract = sig.stylize_inputs()
        #: The inputs both signatures require: content, style, iterations.
        self.required = [
            tf.TensorSpec([], t.dtype, name=t.name) for t in contract if t.default == sig.REQUIRED
        ]
        seed = 0 if opts.seed is None else opts.seed
        #: The per-request options' values for serving_default.
        self.request = pipeline.request_tensors(opts, seed)
        #: The stylize signature's optional inputs and their defaults: the export's values of
        #: the options, the contract's for the rest.
        self.defaults = {
            t.name: self.request[t.name] if t.option else tf.constant(t.default, t.dtype)
            for t in contract if t.default != sig.REQUIRED
        }  # fmt: skip
        self.optional = {
            name: tf.TensorSpec([], value.dtype, name=name) for name, value in self.defaults.items()
        }

    @property
    def serving_default(self):
        """``serving_default(content, style, iterations)``: the export's options, the run
        without masks (its own graph: a model loads it sooner without the masked branch)."""

        def serving_default(content, style, iterations):
            outputs = self.run(content, style, iterations, dict(self.request))
            del outputs[sig.RESUME_BYTES]  # a whole run: nothing to resume
            return outputs

        return serving_default

    @property
    def stylize(self):
        """``stylize(content, style, iterations, <option>=<export's value>, ...)``: Python
        defaults, which the SavedModel records as the signature's default inputs."""
        params = [
            inspect.Parameter(spec.name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for spec in self.required
        ]
        params += [
            inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=v)
            for n, v in self.defaults.items()
        ]
        signature = inspect.Signature(params)

        def stylize(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)
            content, style, iterations = (values.pop(n) for n in list(values)[:3])
            return self.run(content, style, iterations, values)

        stylize.__signature__ = signature
        return stylize

    def run(self, content, style, iterations, request: dict) -> dict:
        """The outputs; ``request`` holds the options and, for ``stylize``, ``RETURN_IMAGE`` and
        the part of the run to take (``START_STEP``, ``STOP_STEP``, ``RESUME_BYTES``)."""
        part = {t.name: request.pop(t.name, tf.constant(t.default, t.dtype))
                for t in sig.PART_INPUTS}  # fmt: skip
        return_image, start, stop, resume = (part[t.name] for t in sig.PART_INPUTS)
        guides = {t.name: request.pop(t.name) for t in sig.MASK_INPUTS if t.name in request}
        checked = options.graph_checks({sig.ITERATIONS: iterations, **request}, self.limits)
        with tf.control_dependencies(checked):
            stop = tf.where(tf.equal(stop, -1), iterations, stop)
        checked += _part_checks(start, stop, iterations, resume)
        with tf.control_dependencies(checked):
            content_img = images.decode(content, sig.CONTENT)
            style_img = images.decode(style, sig.STYLE)
            resume_img = tf.cond(
                start > 0,
                lambda: images.decode_resume(resume, sig.RESUME_BYTES, self.limits["size"]),
                lambda: tf.zeros([1, 1, 3]),
            )
        image, loss, reached = self._optimised(
            content_img, style_img, iterations, request, guides, start, stop, resume_img
        )
        result = images.to_uint8(image)
        # The PNG is the payload; the raw pixels only when asked for (see signature.IMAGE).
        pixels = tf.cond(return_image, lambda: result, lambda: tf.zeros([0, 0, 3], tf.uint8))
        resumable = tf.cond(
            stop < iterations,
            lambda: images.encode_exact(reached),
            lambda: tf.constant(""),
        )
        return {
            sig.IMAGE_BYTES: tf.io.encode_png(result), sig.IMAGE: pixels, sig.LOSS: loss,
            sig.RESUME_BYTES: resumable,
        }  # fmt: skip

    def _optimised(self, content, style, iterations, request, guides, start, stop, resume):
        """``Pipeline.run`` of the request: with regions, a content map and a style region
        where ``guides`` (the mask inputs) has any, decoded in the graph (``masks.decoded``:
        ones for those left empty); a request with none, and ``serving_default``, take the run
        without masks, as a separate branch: the same graph as a model without mask inputs."""

        def plain():
            return self.pipeline.run(
                content, [style], [1.0], iterations, request, start, stop, resume
            )

        if not guides:
            return plain()

        def guided():
            masked = dict(request)
            masked["masks"] = [masks.decoded(guides[sig.MASK], sig.MASK, content)]
            masked["content_mask"] = masks.decoded(
                guides[sig.CONTENT_MASK], sig.CONTENT_MASK, content
            )
            masked["style_masks"] = [
                masks.decoded(guides[sig.STYLE_MASK], sig.STYLE_MASK, style, "style")
            ]
            hooks = _StyleTargets(self.pipeline, [style], masked)
            return self.pipeline.run(
                content, [style], [1.0], iterations, masked, start, stop, resume, hooks
            )

        given = tf.reduce_any(tf.stack([tf.strings.length(g) > 0 for g in guides.values()]))
        return tf.cond(given, guided, plain)


class _StyleTargets(pipeline.Hooks):
    """``Pipeline.run``'s hooks with the style targets of each scale computed by the compiled
    ``style_targets``, as ``tfstyle.transfer`` computes them (``Stylizer.style_targets``)."""

    def __init__(self, pipe: pipeline.Pipeline, styles: list, request: dict):
        super().__init__(pipe)
        self.styles, self.request = styles, request

    def style(self, size):
        return self.compiled.style_targets(self.styles, [1.0], self.request, size)


def _part_checks(start, stop, iterations, resume) -> list:
    """Checks of the part of a run a request asks for (``stop`` already -1 -> iterations)."""
    return [
        checks.check(
            (start >= 0) & (start <= iterations),
            f"{sig.START_STEP} must be between 0 and {sig.ITERATIONS} ({{}}); got {{}}",
            iterations, start,
        ),
        checks.check(
            (stop >= start) & (stop <= iterations),
            f"{sig.STOP_STEP} must be -1 (the end) or between {sig.START_STEP} ({{}}) and "
            f"{sig.ITERATIONS} ({{}}); got {{}}",
            start, iterations, stop,
        ),
        checks.check(
            (start == 0) | (tf.strings.length(resume) > 0),
            f"{sig.RESUME_BYTES}: a part starting at step {{}} needs the {sig.RESUME_BYTES} "
            f"output of the part that stopped there",
            start,
        ),
    ]  # fmt: skip


#: What hardware an export's precision runs well on (recorded in its metadata).
PRECISION_NEEDS = {
    "float32": "any CPU or GPU",
    "bfloat16": "a CPU with AVX512_BF16 or AMX (measured faster there only on some: see the "
    "README), or a GPU of compute capability 8.0 or newer; elsewhere bfloat16 is emulated, "
    "about 10x slower than float32",
}

#: The ``tensorflow/serving`` image for a model exported by TensorFlow ``major.minor``: the newest
#: TF Serving release of that minor version (each is also a ``tensorflow-serving-api`` release on
#: PyPI). A TensorFlow patch release has no Serving image of its own (TF 2.21.1 is served by
#: 2.21.0), and 2.15 and 2.16 have no ``.0`` Serving release: a tag built from
#: ``tf.__version__`` can name an image that does not exist.
SERVING_IMAGES = {
    "2.14": "2.14.1", "2.15": "2.15.1", "2.16": "2.16.1", "2.17": "2.17.1",
    "2.18": "2.18.1", "2.19": "2.19.1", "2.20": "2.20.0", "2.21": "2.21.0",
}  # fmt: skip


def serving_version(tf_version: str | None = None) -> str:
    """The ``tensorflow/serving`` tag that serves a model exported by ``tf_version`` (default:
    this TensorFlow); for a TensorFlow newer than ``SERVING_IMAGES`` knows, its newest tag."""
    match = re.match(r"(\d+)\.(\d+)", tf_version or tf.__version__)
    minor = f"{match[1]}.{match[2]}" if match else ""
    if minor in SERVING_IMAGES:
        return SERVING_IMAGES[minor]
    return SERVING_IMAGES[max(SERVING_IMAGES, key=lambda v: tuple(map(int, v.split("."))))]


def _version_dir(model_dir, version: int | None) -> str:
    """The new version's path under ``model_dir`` (an existing directory, checked writable)."""
    model_dir = os.fspath(model_dir)
    files.check_writable_dir(model_dir, "model_dir")
    existing = (
        [int(n) for n in os.listdir(model_dir) if re.fullmatch(r"[0-9]{1,18}", n)]
        if os.path.isdir(model_dir)
        else []
    )
    if version is None:
        version = max(existing, default=0) + 1
    options.EXPORT_LIMITS["version"].check(version)  # TF Serving reads versions as int64
    path = os.path.join(model_dir, str(version))
    if os.path.exists(path):
        raise FileExistsError(
            f"version: {path!r} already exists; choose another version or remove it"
        )
    return path


def _write_metadata(path: str, opts, max_size: int, max_iterations: int, crop: int | None) -> None:
    """What exported this model (serve it with tensorflow/serving of the same TF version)."""
    from importlib.metadata import version

    import keras

    values = {k: getattr(opts, k) for k in options.EXPORT_OPTIONS}
    values["weights"] = None if opts.weights is None else os.fspath(opts.weights)
    meta = {
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "serving_image": f"tensorflow/serving:{serving_version()}",
        "tfstyle": version("tfstyle"), "options": values,
        "max_size": max_size, "max_iterations": max_iterations,
        "precision_needs": PRECISION_NEEDS[opts.precision],
        # Measured on the served model in float32 (tfstyle.memory; bfloat16 needs less): the
        # loaded model, the peaks with 1 and 2 requests at once, and a bound on what each
        # request running at once adds at a square size (512, 1024 and max_size px).
        "memory_gib": memory_metadata(max_size, opts.tile_size, crop),
    }  # fmt: skip
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    with open(os.path.join(path, sig.METADATA_FILE), "w") as f:
        json.dump(meta, f, indent=2)


def memory_metadata(max_size: int, tile_size: int | None, crop: int | None) -> dict:
    """The export's ``memory_gib``: the served model's measured peaks (float32; bfloat16 needs
    less) and a bound on what each request running at once adds at a square size (512, 1024 and
    ``max_size`` px), in ``tile_size`` tiles of ``crop`` px crops above ``tile_size``."""
    return {
        "process": memory.SERVED_LOADED_GIB,
        "measured_peak": {str(side): {str(n): gib for n, gib in peaks.items()}
                          for side, peaks in memory.SERVED_PEAK_GIB.items()},
        "per_request": {str(side): round(memory.served_per_request_gib(side, tile_size, crop), 2)
                        for side in (512, 1024, max_size)},
    }  # fmt: skip


def _write_warmup(path: str, side: int, defaults: dict) -> None:
    """Replay file for TF Serving (and the local server): one request per signature.

    The ``stylize`` request sends every input (``defaults``: the export's values), because TF
    Serving before 2.14 takes no input from a signature's defaults, and a failed warm-up request
    fails the model's load."""
    png = random_png(side, seed=0)
    requests = []
    for name in (sig.DEFAULT_SIGNATURE, sig.STYLIZE_SIGNATURE):
        inputs = {sig.CONTENT: png, sig.STYLE: png, sig.ITERATIONS: 1}
        if name == sig.STYLIZE_SIGNATURE:
            inputs.update({k: v.numpy() for k, v in defaults.items()})
        requests.append((name, inputs))
    write_warmup(path, sig.MODEL_NAME, requests)


def random_png(side: int, seed: int) -> bytes:
    """A PNG of ``side`` x ``side`` seeded random pixels (a warm-up request's image)."""
    import PIL.Image

    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def write_warmup(path: str, model: str, requests: list) -> None:
    """Write ``requests``, ``(signature name, inputs)`` pairs to ``model``, as the SavedModel's
    warm-up file in ``path``: the replay file TF Serving (and the stand-in) runs before it
    serves the version. Built here, after the one line saying what to install if the serving
    API is missing (building a request needs it too)."""
    from tfstyle import extras

    prediction_log_pb2 = extras.need(
        "tensorflow_serving.apis.prediction_log_pb2", "a warm-up request",
        "tensorflow-serving-api", "serving", ", or export with warmup=False",
    )  # fmt: skip
    os.makedirs(os.path.join(path, os.path.dirname(sig.WARMUP_FILE)), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(path, sig.WARMUP_FILE)) as writer:
        for name, inputs in requests:
            request = sig.predict_request(model, None, name, inputs)
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
