"""Export the whole optimisation as a SavedModel that TensorFlow Serving runs.

Decoding, resizing, targets, the optimisation loop (the same ``optimize.advance`` as the Python
API) and PNG encoding all happen inside the graph. All optimiser state lives in loop variables,
so concurrent requests on one session are independent. Written with Keras's ``ExportArchive``
(a plain ``tf.saved_model.save`` of a module holding a Keras 3 model does not load in TF
Serving's session-based loader).
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
import tensorflow as tf

from tfstyle import api, features, images, optimize
from tfstyle import signature as sig

#: Largest ``iterations`` a request may ask for, unless the export says otherwise.
DEFAULT_MAX_ITERATIONS = 5000
#: Options of ``transfer`` that an export takes (the rest are per call or per request).
EXPORT_OPTIONS = (
    "size",
    "content_weight",
    "style_weight",
    "tv_weight",
    "optimizer",
    "learning_rate",
    "init",
    "seed",
    "weights",
    "backbone",
    "pooling",
    "precision",
    "content_layers",
    "style_layers",
    "style_layer_weights",
    "preserve_colors",
)
_MAGIC = (b"\x89PNG", b"BM", b"\xff\xd8\xff", b"GIF8")  # PNG, BMP (may carry alpha), JPEG, GIF


def export_saved_model(
    model_dir: str | os.PathLike = sig.MODEL_DIR,
    *,
    version: int | None = None,
    max_size: int | None = None,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    warmup: bool = True,
    **options,
) -> str:
    """Write the style-transfer SavedModel to ``model_dir/<version>/`` for TF Serving.

    Args:
        model_dir: str. The model's base path (what ``--model_base_path`` points at). Defaults to
            ``"saved_models/tfstyle"``.
        version: int. Version directory; None takes one more than the highest present.
            Defaults to None.
        max_size: int. Largest ``size`` the stylize signature accepts; None takes
            ``max(size, 1024)``. Defaults to None.
        max_iterations: int. Largest ``iterations`` a request may ask for. Defaults to 5000.
        warmup: bool. Write warm-up requests to ``assets.extra/`` (needs the ``serving``
            extra). Defaults to True.
        **options: any of ``EXPORT_OPTIONS`` with the meaning and default they have in
            ``tfstyle.transfer``; they become the ``serving_default`` signature's fixed values
            and the ``stylize`` signature's defaults. ``init`` must be a string; ``seed`` None
            is exported as 0.

    Returns:
        The path of the version directory written.

    Example:
        >>> tfstyle.export_saved_model("saved_models/tfstyle", size=512, weights="vgg19.h5")
        'saved_models/tfstyle/1'
    """
    unknown = sorted(set(options) - set(EXPORT_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown export option(s) {', '.join(unknown)}; allowed: {', '.join(EXPORT_OPTIONS)}"
        )
    values = {**default_export_options(), **options}
    if not isinstance(values["init"], str):
        raise ValueError(f"init must be one of {', '.join(optimize.INITS)} for an export")
    opts = api.Options(iterations=0, **values)
    max_size = max(opts.size, 1024) if max_size is None else max_size
    api._check_int("max_size", max_size, opts.size, images.MAX_SIZE)
    api._check_int("max_iterations", max_iterations, 1)
    path = _version_dir(model_dir, version)

    extractor = opts.extractor()
    objective = optimize.Objective(extractor, opts.content_layers, opts.style_layers)
    graph = _StylizeGraph(objective, opts, max_size, max_iterations)

    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.track(extractor)
    scalar = tf.TensorSpec([], tf.string)
    required = [scalar, scalar, tf.TensorSpec([], tf.int32)]
    archive.add_endpoint(sig.DEFAULT_SIGNATURE, graph.serving_default, input_signature=required)
    optional = [tf.TensorSpec([], tf.as_dtype(d)) for d in sig.STYLIZE_OPTIONS.values()]
    archive.add_endpoint(sig.STYLIZE_SIGNATURE, graph.stylize_fn(), required + optional)
    archive.write_out(path, verbose=False)
    _write_metadata(path, opts, max_size, max_iterations)
    if warmup:
        _write_warmup(path, max(opts.size // 8, 2 * images.MIN_SIDE))
    return path


class _StylizeGraph:
    """The exported computation, as functions of the request's tensors."""

    def __init__(self, objective, opts: api.Options, max_size: int, max_iterations: int):
        self.objective = objective
        self.opts = opts
        self.max_size = max_size
        self.max_iterations = max_iterations

    def defaults(self) -> dict:
        o = self.opts
        return {
            "size": o.size,
            "content_weight": o.content_weight,
            "style_weight": o.style_weight,
            "tv_weight": o.tv_weight,
            "learning_rate": o.effective_learning_rate(),
            "seed": 0 if o.seed is None else o.seed,
            "init": o.init,
            "preserve_colors": bool(o.preserve_colors),
        }

    def serving_default(self, content, style, iterations):
        d = self.defaults()
        return self.run(content, style, iterations, **{k: tf.constant(v) for k, v in d.items()})

    def stylize_fn(self):
        """``stylize(content, style, iterations, size=..., ...)`` with the export's defaults
        as Python defaults, which the SavedModel records as the signature's default inputs."""
        d = self.defaults()
        dtypes = {k: tf.as_dtype(v) for k, v in sig.STYLIZE_OPTIONS.items()}
        consts = {k: tf.constant(d[k], dtypes[k]) for k in sig.STYLIZE_OPTIONS}

        def stylize(
            content,
            style,
            iterations,
            size=consts["size"],
            content_weight=consts["content_weight"],
            style_weight=consts["style_weight"],
            tv_weight=consts["tv_weight"],
            learning_rate=consts["learning_rate"],
            seed=consts["seed"],
            init=consts["init"],
            preserve_colors=consts["preserve_colors"],
        ):
            return self.run(
                content,
                style,
                iterations,
                size=size,
                content_weight=content_weight,
                style_weight=style_weight,
                tv_weight=tv_weight,
                learning_rate=learning_rate,
                seed=seed,
                init=init,
                preserve_colors=preserve_colors,
            )

        return stylize

    def run(
        self,
        content,
        style,
        iterations,
        *,
        size,
        content_weight,
        style_weight,
        tv_weight,
        learning_rate,
        seed,
        init,
        preserve_colors,
    ):
        checks = [
            _check_range("iterations", iterations, 0, self.max_iterations),
            _check_range("size", size, images.MIN_SIDE, self.max_size),
            _check_range("seed", seed, 0, 2**31 - 1),
            tf.debugging.Assert(
                tf.reduce_any(tf.equal(init, list(optimize.INITS))),
                [f"init must be one of {', '.join(optimize.INITS)}; got", init],
            ),
        ]
        for name, value in (
            ("content_weight", content_weight),
            ("style_weight", style_weight),
            ("tv_weight", tv_weight),
        ):
            checks.append(
                tf.debugging.Assert(
                    tf.logical_and(value >= 0, tf.math.is_finite(value)),
                    [f"{name} must be a finite number >= 0; got", value],
                )
            )
        checks.append(
            tf.debugging.Assert(
                tf.logical_and(learning_rate > 0, tf.math.is_finite(learning_rate)),
                ["learning_rate must be a finite number > 0; got", learning_rate],
            )
        )
        with tf.control_dependencies(checks):
            content_img = decode_image(content, sig.CONTENT)
            style_img = decode_image(style, sig.STYLE)
        shape = tf.shape(content_img)
        height, width = images.working_shape(shape[0], shape[1], size)
        small = tf.debugging.Assert(
            tf.minimum(height, width) >= images.MIN_SIDE,
            [
                f"content: the image's shorter side must be at least {images.MIN_SIDE} px at the "
                "working size; got (height, width)",
                height,
                width,
            ],
        )
        with tf.control_dependencies([small]):
            content_t = images.resize(content_img, height, width)
        styles = [images.resize_longer_side(style_img, size)]
        blend = tf.constant([1.0])
        start = optimize.initial_image(init, content_t, styles, blend, seed)

        o = self.opts
        weights = optimize.LossWeights(
            content_weight, style_weight, tv_weight, o.loss_weights().style_layers
        )
        targets = self.objective.targets(content_t, styles, blend)
        state = optimize.init_state(o.optimizer, start)
        state = optimize.advance(
            self.objective, o.optimizer, learning_rate, state, targets, weights, iterations
        )
        loss = self.objective(state.image, targets, weights)["total"]
        result = images.to_uint8(optimize.finish(state.image, content_t, preserve_colors))
        return {sig.IMAGE_BYTES: tf.io.encode_png(result), sig.IMAGE: result, sig.LOSS: loss}


def _check_range(name: str, value, low, high):
    return tf.debugging.Assert(
        tf.logical_and(value >= low, value <= high),
        [f"{name} must be between {low} and {high}; got", value],
    )


def decode_image(data: tf.Tensor, name: str) -> tf.Tensor:
    """Encoded PNG/JPEG/GIF/BMP bytes (a scalar string tensor) -> float RGB ``(H, W, 3)``.

    Alpha is composited over white and 16-bit PNGs keep their precision, as in
    ``images.load_image``. Raises ``InvalidArgumentError`` naming ``name`` for anything else.
    """
    prefixes = tf.stack([tf.strings.substr(data, 0, len(m)) for m in _MAGIC])
    # JPEG and GIF decode to RGB only; PNG and BMP may carry alpha.
    matches = tf.equal(prefixes, list(_MAGIC))
    known = tf.reduce_any(matches)
    has_alpha = tf.reduce_any(matches[:2])
    size_ok = tf.strings.length(data) <= 512 * 2**20
    with tf.control_dependencies(
        [
            tf.debugging.Assert(known, [f"{name}: not a PNG, JPEG, GIF or BMP image"]),
            tf.debugging.Assert(size_ok, [f"{name}: encoded image larger than 512 MiB"]),
        ]
    ):
        data = tf.identity(data)

    def rgba():
        return tf.io.decode_image(data, channels=4, dtype=tf.float32, expand_animations=False)

    def rgb():  # with an opaque alpha
        rgb = tf.io.decode_image(data, channels=3, dtype=tf.float32, expand_animations=False)
        return tf.concat([rgb, tf.ones_like(rgb[..., :1])], axis=-1)

    rgba = tf.cond(has_alpha, rgba, rgb)
    rgba.set_shape([None, None, 4])
    shape = tf.shape(rgba)
    with tf.control_dependencies(
        [
            tf.debugging.Assert(
                tf.reduce_max(shape[:2]) <= images.MAX_INPUT_SIDE,
                [
                    f"{name}: each side must be at most {images.MAX_INPUT_SIDE} px; "
                    "got (height, width)",
                    shape[0],
                    shape[1],
                ],
            )
        ]
    ):
        rgb, alpha = rgba[..., :3], rgba[..., 3:]
        return rgb * alpha + (1.0 - alpha)


def _version_dir(model_dir, version: int | None) -> str:
    model_dir = os.fspath(model_dir)
    existing = (
        [int(n) for n in os.listdir(model_dir) if re.fullmatch(r"\d+", n)]
        if os.path.isdir(model_dir)
        else []
    )
    if version is None:
        version = max(existing, default=0) + 1
    api._check_int("version", version, 1)
    path = os.path.join(model_dir, str(version))
    if os.path.exists(path):
        raise FileExistsError(
            f"version: {path!r} already exists; choose another version or remove it"
        )
    return path


def _write_metadata(path: str, opts: api.Options, max_size: int, max_iterations: int) -> None:
    """What exported this model (serve it with tensorflow/serving of the same TF version)."""
    import json

    import keras

    import tfstyle

    options = {k: getattr(opts, k) for k in EXPORT_OPTIONS}
    options["weights"] = None if opts.weights is None else os.fspath(opts.weights)
    options["precision"] = features.resolve_precision(opts.precision)  # what the graph runs
    meta = {
        "tensorflow": tf.__version__, "keras": keras.__version__,
        "tfstyle": tfstyle.__version__, "options": options,
        "max_size": max_size, "max_iterations": max_iterations,
    }  # fmt: skip
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    with open(os.path.join(path, sig.METADATA_FILE), "w") as f:
        json.dump(meta, f, indent=2)


def _write_warmup(path: str, side: int) -> None:
    """Replay file for TF Serving (and the local server): one request per signature."""
    try:
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
    except ImportError as err:
        raise ImportError(
            "warm-up requests need tensorflow-serving-api: pip install 'tfstyle[serving]', "
            "or export with warmup=False"
        ) from err
    import PIL.Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    PIL.Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    png = buf.getvalue()
    os.makedirs(os.path.join(path, os.path.dirname(sig.WARMUP_FILE)), exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(path, sig.WARMUP_FILE)) as writer:
        for name in (sig.DEFAULT_SIGNATURE, sig.STYLIZE_SIGNATURE):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=sig.MODEL_NAME, signature_name=name)
            )
            request.inputs[sig.CONTENT].CopyFrom(tf.make_tensor_proto(png))
            request.inputs[sig.STYLE].CopyFrom(tf.make_tensor_proto(png))
            request.inputs[sig.ITERATIONS].CopyFrom(tf.make_tensor_proto(1, tf.int32))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def default_export_options() -> dict:
    """The export options and their defaults (from ``tfstyle.transfer``'s signature)."""
    return {name: api.transfer.__kwdefaults__[name] for name in EXPORT_OPTIONS}
