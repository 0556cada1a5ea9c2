"""Real-time mode: a feed-forward network that stylises in one forward pass (Johnson, Alahi and
Fei-Fei 2016, "Perceptual Losses for Real-Time Style Transfer"), trained with the objective of
the optimisation (``pipeline.Objective``: the same content, style and TV losses, layers and
weights).

The image transformation network (``transform_net``) is Johnson et al.'s, with the changes the
field settled on since:

- instance normalisation instead of batch normalisation (Ulyanov, Vedaldi and Lempitsky 2016,
  "Instance Normalization: The Missing Ingredient for Fast Stylization"): the contrast of each
  image is normalised away, which is what a style should not depend on;
- upsampling by nearest-neighbour resize then convolution, not transposed convolution (Odena,
  Dumoulin and Olah 2016, "Deconvolution and Checkerboard Artifacts");
- reflection padding, so the borders carry no dark frame.

It is fully convolutional: any size goes in, the same size comes out (an input whose sides are
not multiples of 4 is padded by reflection and the output cropped back).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from tfstyle import images
from tfstyle import signature as sig

#: Johnson et al.'s widths: the first convolution, the two downsamplings, the residual blocks.
WIDTHS = (32, 64, 128)
#: Residual blocks at a quarter of the input's resolution.
RESIDUAL_BLOCKS = 5
#: The input's sides are padded up to a multiple of this (two stride-2 downsamplings).
MULTIPLE = 4


@keras.saving.register_keras_serializable(package="tfstyle")
class ReflectPad(keras.layers.Layer):
    """Pads height and width by ``pad`` pixels on each side, mirrored at the edge."""

    def __init__(self, pad: int, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, inputs):
        p = self.pad
        return keras.ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def get_config(self) -> dict:
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable(package="tfstyle")
class PadToMultiple(keras.layers.Layer):
    """Pads the bottom and right edges, by reflection, up to a multiple of ``multiple``."""

    def __init__(self, multiple: int = MULTIPLE, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)

    def call(self, inputs):
        shape = keras.ops.shape(inputs)
        m = self.multiple
        below, right = (-shape[1]) % m, (-shape[2]) % m
        return keras.ops.pad(inputs, [[0, 0], [0, below], [0, right], [0, 0]], mode="reflect")

    def get_config(self) -> dict:
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="tfstyle")
class CropLike(keras.layers.Layer):
    """The top-left of ``inputs[0]`` at the height and width of ``inputs[1]``."""

    def call(self, inputs):
        image, like = inputs
        shape = keras.ops.shape(like)
        return image[:, : shape[1], : shape[2], :]


def _conv(x, filters: int, kernel: int, stride: int = 1, norm: bool = True, relu: bool = True):
    """Reflection pad, convolution, instance norm, ReLU (Johnson et al.'s unit)."""
    x = ReflectPad(kernel // 2)(x)
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="valid")(x)
    if norm:  # groups=-1: one group per channel, per image: instance normalisation
        x = keras.layers.GroupNormalization(groups=-1, epsilon=1e-5)(x)
    return keras.layers.ReLU()(x) if relu else x


def _residual(x, filters: int):
    y = _conv(x, filters, 3)
    y = _conv(y, filters, 3, relu=False)
    return keras.layers.Add()([x, y])


def transform_net(seed: int | None = None, name: str = "transform_net") -> keras.Model:
    """The image transformation network: RGB in [0, 1] ``(batch, H, W, 3)`` of any size to an RGB
    image in [0, 1] of the same size.

    Args:
        seed: int. Seeds the initial weights (the same seed, the same network). Defaults to
            None (random).
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    small, middle, wide = WIDTHS
    image = keras.Input((None, None, 3), name="image")
    x = PadToMultiple()(image)
    x = _conv(x, small, 9)
    x = _conv(x, middle, 3, stride=2)
    x = _conv(x, wide, 3, stride=2)
    for _ in range(RESIDUAL_BLOCKS):
        x = _residual(x, wide)
    for filters in (middle, small):  # resize, then convolve: no checkerboard
        x = keras.layers.UpSampling2D(2, interpolation="nearest")(x)
        x = _conv(x, filters, 3)
    x = _conv(x, 3, 9, norm=False, relu=False)
    x = keras.layers.Activation("sigmoid")(x)  # [0, 1], as the extractor takes images
    return keras.Model(image, CropLike()([x, image]), name=name)


# --- Training -------------------------------------------------------------------------------

#: Options of the objective a network is trained with (the table's rows, the same meanings as
#: for the optimisation).
OBJECTIVE_OPTIONS = (
    "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
    "style_layer_weights", "style_scale", "backbone", "pooling", "weights", "style_loss",
)  # fmt: skip
#: The model directory's description of its network (style, options, training).
MODEL_FILE = "tfstyle-model.json"
#: The trained network, in Keras's format.
NETWORK_FILE = "network.keras"
#: The style image, as trained on.
STYLE_FILE = "style.png"
#: Checkpoints of a training run, to resume from.
CHECKPOINTS = "checkpoints"
#: Format of the model directory (a directory of another format is refused with this number).
FORMAT = 1


def training_images(folder, leave_out=None) -> list[str]:
    """The image files under ``folder`` (recursively; the extensions ``tfstyle batch`` takes),
    sorted, but those under ``leave_out`` (a model directory inside the folder: its style image
    is not a photo); a ``ValueError`` naming the folder if there are none."""
    from tfstyle.batch_files import IMAGE_EXTENSIONS

    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"images: {folder!r} is not a directory of images")
    skip = None if leave_out is None else os.path.realpath(leave_out)
    found = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        if skip is None or os.path.commonpath([os.path.realpath(root), skip]) != skip
        for name in names
        if name.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not found:
        raise ValueError(
            f"images: no images in {folder!r} (files ending {', '.join(IMAGE_EXTENSIONS)})"
        )
    return found


def crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``size`` x ``size`` crop of ``image`` ``(H, W, 3)``, after resizing its shorter
    side to ``size`` (Johnson et al. train on 256 x 256 crops)."""
    height, width = image.shape[:2]
    scale = size / min(height, width)
    shape = (max(size, round(height * scale)), max(size, round(width * scale)))
    resized = tf.image.resize(image, shape, method="area", antialias=True).numpy()
    top = int(rng.integers(0, shape[0] - size + 1))
    left = int(rng.integers(0, shape[1] - size + 1))
    return resized[top : top + size, left : left + size]


class Batches:
    """Step ``s``'s batch, a function of the seed and ``s`` alone: each epoch is a permutation
    of the images drawn from ``(seed, epoch)``, each crop from ``(seed, s, k)``; so a run
    resumed at step ``s`` sees the batches the uninterrupted run would have."""

    def __init__(self, paths: list[str], size: int, batch_size: int, seed: int):
        self.paths, self.size, self.batch_size, self.seed = paths, size, batch_size, seed
        self.skipped: set[str] = set()

    def indices(self, step: int) -> list[int]:
        count, per_epoch = len(self.paths), max(1, len(self.paths) // self.batch_size)
        epoch, within = divmod(step, per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(count)
        return [int(order[(within * self.batch_size + k) % count]) for k in range(self.batch_size)]

    def __call__(self, step) -> np.ndarray:
        step = int(step)
        out = []
        for k, index in enumerate(self.indices(step)):
            rng = np.random.default_rng([self.seed, step, k])
            out.append(crop(self.image(index), self.size, rng))
        return np.stack(out).astype(np.float32)

    def check_readable(self) -> None:
        """A ``ValueError`` unless at least one image can be read (an unreadable one is
        skipped, as in training)."""
        for index in range(len(self.paths)):
            if self.paths[index] in self.skipped:
                continue
            try:
                images.load_image(self.paths[index], "images")
                return
            except (ValueError, OSError):
                self.skipped.add(self.paths[index])
        raise ValueError(
            f"images: none of the {len(self.paths)} image files can be read (bombs, special "
            "files and files that are not images are skipped)"
        )

    def image(self, index: int) -> np.ndarray:
        """Image ``index``, or the next readable one (an unreadable file is skipped, and
        counted in ``skipped``)."""
        for k in range(len(self.paths)):
            path = self.paths[(index + k) % len(self.paths)]
            if path in self.skipped:
                continue
            try:
                return images.load_image(path, "images")
            except (ValueError, OSError):
                self.skipped.add(path)
        raise ValueError("images: none of the images can be read")

    def dataset(self, start: int, stop: int) -> tf.data.Dataset:
        """The batches of steps ``start`` to ``stop - 1``, decoded ahead in order."""
        shape = (self.batch_size, self.size, self.size, 3)
        load = lambda s: tf.ensure_shape(tf.numpy_function(self, [s], tf.float32), shape)  # noqa: E731
        steps = tf.data.Dataset.range(start, stop)
        return steps.map(load, num_parallel_calls=2, deterministic=True).prefetch(2)


class Trainer:
    """A network, its optimiser and the objective it is trained with, for one style.

    ``step(batch)`` is one training step (a ``tf.function``): the network stylises the batch,
    each image's loss is the optimisation's objective (``pipeline.Objective``) with that image
    as the content, and the mean of the batch's is minimised with Adam."""

    def __init__(self, style: np.ndarray, opts, size: int, learning_rate: float, seed: int,
                 strategy=None):  # fmt: skip
        #: A ``tf.distribute`` strategy (None: the default, one device).
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():  # variables mirrored on its devices
            self._build(style, opts, size, learning_rate, seed)
        self.step = tf.function(self._step)

    def _build(self, style, opts, size, learning_rate, seed) -> None:
        from tfstyle import checks, pipeline

        self.opts = opts
        self.pipe = pipe = pipeline.get(opts)
        request = pipeline.request_tensors(opts, seed)
        try:
            (style_image,) = pipe.resized_styles([tf.constant(style)], request, tf.constant(size))
        except tf.errors.InvalidArgumentError as err:  # the pipeline's own check, one line
            raise ValueError(checks.message_of(err)) from None
        self.style = pipe.objective.style_targets([style_image], tf.constant([1.0]))
        self.weights = pipeline.LossWeights(
            request["content_weight"], request["style_weight"], request["tv_weight"],
            tf.constant(pipe.style_layer_weights, tf.float32),
        )  # fmt: skip
        self.net = transform_net(seed)
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.net.trainable_variables)

    def losses(self, batch: tf.Tensor, stylised: tf.Tensor) -> dict:
        """The objective's terms, averaged over the batch (each image its own content)."""
        objective = self.pipe.objective
        terms = []
        for k in range(batch.shape[0]):  # the batch size is fixed when traced
            targets = objective.targets(batch[k], [], None, style=self.style)
            terms.append(objective.terms(stylised[k : k + 1], targets, self.weights))
        return {name: tf.add_n([t[name] for t in terms]) / len(terms) for name in terms[0]}

    def _step(self, batch) -> dict:
        """One step on ``batch`` (split over the strategy's replicas when distributed: each
        minimises its share of the global mean, and the optimiser sums their gradients)."""
        replicas = self.strategy.num_replicas_in_sync

        def replica_step(local):
            with tf.GradientTape() as tape:
                terms = self.losses(local, self.net(local, training=True))
                share = terms["total"] / replicas
            variables = self.net.trainable_variables
            gradients = tape.gradient(share, variables)
            self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
            return terms

        terms = self.strategy.run(replica_step, args=(batch,))
        mean = tf.distribute.ReduceOp.MEAN
        return {name: self.strategy.reduce(mean, value, axis=None) for name, value in terms.items()}


def train(
    style, images_dir, model_dir, *, size: int = 256, batch_size: int = 4, steps: int = 10_000,
    epochs: float | None = None, learning_rate: float = 1e-3, seed: int = 0,
    checkpoint_every: int = 200, distribute: str | None = None, progress: bool = True,
    **objective,
) -> str:  # fmt: skip
    """Train a network for ``style`` on the photos under ``images_dir``; write it in
    ``model_dir`` (made if needed) and return that path.

    The same call resumes where an earlier one stopped (Ctrl-C, a crash) from its last
    checkpoint in ``model_dir/checkpoints``, and gives the weights the uninterrupted run would
    have: the batches and the crops are functions of the seed and the step (``Batches``).

    Args:
        style: the style image (a path, bytes, a PIL image or an array).
        images_dir: a folder of photos (searched recursively; COCO's train set is what the
            papers use).
        model_dir: where the network, its description (``tfstyle-model.json``), the style
            image, checkpoints and TensorBoard logs go.
        size: int. Side of the square random crops trained on. Defaults to 256.
        batch_size: int. Images per step. Defaults to 4 (Johnson et al.).
        steps: int. Training steps in all. Defaults to 10 000: by the FLOPs of a step (1.3
            TFLOP at the defaults, ``benchmarks/realtime.py``), under an hour on a T4-class
            GPU, the most a common GPU does in that time; Johnson et al. train 40 000.
        epochs: float. Passes over the photos, in place of ``steps``: ``steps = ceil(epochs *
            photos / batch_size)``, counted when the run starts. Defaults to None (``steps``).
        learning_rate: float. Adam's. Defaults to 1e-3 (Johnson et al.).
        seed: int. Seeds the network's initial weights, the order of the images and the
            crops. Defaults to 0.
        checkpoint_every: int. Steps between checkpoints. Defaults to 200.
        distribute: str. ``"mirrored"`` (every device of this machine; ``batch_size`` split
            among them) or ``"multi-worker"`` (the machines ``TF_CONFIG`` names; the chief
            writes ``model_dir``, the others keep their checkpoints in a temporary
            directory); None: one device. Defaults to None.
        progress: bool. A progress bar with the loss. Defaults to True.
        **objective: the objective's options (``OBJECTIVE_OPTIONS``: weights, layers,
            ``style_scale``, backbone and its weights, style loss), as for ``transfer``.

    Raises:
        ValueError: for a bad option or style image, no images in ``images_dir``, or a
            ``model_dir`` holding another run.
        tfstyle.Interrupted: on Ctrl-C, after the checkpoint of the steps done.
    """
    from tqdm.auto import tqdm

    from tfstyle import interrupts, options

    unknown = sorted(set(objective) - set(OBJECTIVE_OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; the objective's are "
                        f"{', '.join(OBJECTIVE_OPTIONS)}")  # fmt: skip
    given = {"size": size, "batch_size": batch_size, "steps": steps, "epochs": epochs,
             "seed": seed, "learning_rate": learning_rate,
             "checkpoint_every": checkpoint_every, "distribute": distribute}  # fmt: skip
    for name, value in given.items():
        options.TRAIN_OPTIONS[name].check(value)
    if epochs is not None and steps != options.TRAIN_OPTIONS["steps"].default:
        raise ValueError(f"give steps or epochs, not both; got steps {steps} and epochs {epochs}")
    opts = options.Options(**objective, precision="float32")
    style_image = images.load_image(style, "style")
    model_dir = os.fspath(model_dir)
    paths = training_images(images_dir, leave_out=model_dir)
    if epochs is not None:
        steps = max(1, math.ceil(epochs * len(paths) / batch_size))
        options.TRAIN_OPTIONS["steps"].check(steps)
    description = {
        "format": FORMAT, "kind": "tfstyle real-time network",
        "options": {n: _plain(getattr(opts, n)) for n in OBJECTIVE_OPTIONS},
        "training": {"size": size, "batch_size": batch_size,  # not steps: it may grow
                     "learning_rate": learning_rate, "seed": seed, "images": len(paths),
                     "images_dir": os.path.abspath(os.fspath(images_dir))},
        "style_sha256": _sha256(style_image),
    }  # fmt: skip
    _check_same_run(model_dir, description)
    strategy = _strategy(distribute)
    if batch_size % strategy.num_replicas_in_sync:
        raise ValueError(
            f"batch_size must be a multiple of the {strategy.num_replicas_in_sync} devices "
            f"training (each takes a share); got {batch_size}"
        )
    trainer = Trainer(style_image, opts, size, learning_rate, seed, strategy)  # checks the style
    if not _is_chief(strategy):  # its own copy, in a directory of its own (TF's pattern)
        import tempfile

        model_dir = tempfile.mkdtemp(prefix="tfstyle-worker-")
    batches = Batches(paths, size, batch_size, seed)
    batches.check_readable()  # one line now, not a data pipeline's error at the first step
    created = not os.path.exists(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    _write_json(os.path.join(model_dir, MODEL_FILE), {**description, "steps": steps})
    images.to_pil(style_image).save(os.path.join(model_dir, STYLE_FILE))
    done = tf.Variable(0, dtype=tf.int64, name="steps_done")
    checkpoint = tf.train.Checkpoint(net=trainer.net, optimizer=trainer.optimizer, step=done)
    manager = tf.train.CheckpointManager(
        checkpoint, os.path.join(model_dir, CHECKPOINTS), max_to_keep=2
    )
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_consumed()
    start = int(done.numpy())
    writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs"))
    bar = tqdm(total=steps, initial=start, disable=not progress, unit="step",
               desc=f"training {size} px")  # fmt: skip
    step = saved = start
    try:
        with interrupts.sigterm_as_interrupt(), writer.as_default():
            dataset = batches.dataset(start, steps)
            if distribute is not None:  # each replica its share of every batch
                dataset = strategy.experimental_distribute_dataset(dataset)
            for batch in dataset:
                terms = trainer.step(batch)
                total = float(terms["total"])
                if not math.isfinite(total):  # kept: the last checkpoint, before it diverged
                    raise ValueError(
                        f"training diverged: the objective became {total} at step {step + 1}; "
                        f"lower --learning-rate ({learning_rate}) or the loss weights "
                        f"(content {opts.content_weight}, style {opts.style_weight}, tv "
                        f"{opts.tv_weight}); the network was not saved"
                    )
                step += 1
                done.assign(step)
                for name, value in terms.items():
                    _scalar(f"loss/{name}", value, step)
                bar.set_postfix_str(f"loss {total:.4g}", refresh=False)
                bar.update(1)
                if step % checkpoint_every == 0 or step == steps:
                    manager.save(checkpoint_number=step)
                    saved = step
    except KeyboardInterrupt as stop:
        if step > saved:  # the steps done are kept: the same call goes on from here
            manager.save(checkpoint_number=step)
        elif created and step == 0:  # nothing done: nothing left behind
            shutil.rmtree(model_dir, ignore_errors=True)
        raise interrupts.Interrupted(
            None, step, steps, terminated=isinstance(stop, interrupts.Terminated)
        ) from None
    except BaseException:
        if created and saved == 0:  # a run that failed before its first checkpoint leaves
            shutil.rmtree(model_dir, ignore_errors=True)  # no directory to refuse the next
        raise
    finally:
        bar.close()
    trainer.net.save(os.path.join(model_dir, NETWORK_FILE))
    finished = {**description, "steps": steps, "steps_done": step,
                "skipped": sorted(batches.skipped)}  # fmt: skip
    _write_json(os.path.join(model_dir, MODEL_FILE), finished)
    return model_dir


def _strategy(distribute: str | None):
    """The ``tf.distribute`` strategy of ``distribute`` (None: the default, one device)."""
    if distribute is None:
        return tf.distribute.get_strategy()
    if distribute == "mirrored":  # the GPUs, or else the CPUs (one, unless configured as more)
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    return tf.distribute.MultiWorkerMirroredStrategy()


def _is_chief(strategy) -> bool:
    """Whether this process writes the model directory: one device, mirrored, or the chief
    (worker 0 where there is no chief) of a multi-worker cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_id == 0)


def _scalar(tag: str, value, step: int) -> None:
    """A scalar for TensorBoard's scalars dashboard, written by TensorFlow's own summary op
    (``tf.summary.scalar`` needs the tensorboard package, which tfstyle does not)."""
    metadata = tf.compat.v1.SummaryMetadata(
        plugin_data=tf.compat.v1.SummaryMetadata.PluginData(plugin_name="scalars")
    )
    tf.summary.write(tag, tf.cast(value, tf.float32), step=step, metadata=metadata)


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _sha256(array: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _write_json(path: str, value: dict) -> None:
    import json

    from tfstyle import files

    with files.atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(value, f, indent=2)


#: The most a model directory's description may hold (it is a few kB).
DESCRIPTION_BYTES = 2**20


def _read_description(path: str) -> dict:
    """The JSON object of a description file: a regular file of at most ``DESCRIPTION_BYTES``
    (never a FIFO or a device, which would block), or one line saying why not."""
    import json

    from tfstyle import files

    try:
        description = json.loads(files.read_regular(path, "model", DESCRIPTION_BYTES))
    except (OSError, ValueError) as err:  # a bad file: named by read_regular or json
        raise ValueError(str(err) if str(err).startswith("model:") else
                         f"model: {path!r} cannot be read: {err}") from None  # fmt: skip
    if not isinstance(description, dict):
        raise ValueError(f"model: {path!r} is not a description (a JSON object)")
    return description


def _identity(description: dict) -> dict:
    """What must match for a training run to go on in a model directory: the style, the
    objective and the training settings; not the steps, nor the photos (a folder that gained
    or lost some goes on with them, no longer bit for bit)."""
    same = {k: v for k, v in description.items() if k not in ("steps", "steps_done", "skipped")}
    training = same.get("training")
    if isinstance(training, dict):
        same["training"] = {k: v for k, v in training.items()
                            if k not in ("images", "images_dir")}  # fmt: skip
    return same


def _check_same_run(model_dir: str, description: dict) -> None:
    """A ``ValueError`` if ``model_dir`` holds a training run of another style or options
    (resuming it with these would mix two networks)."""
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.exists(model_dir):
        return
    if not os.path.isdir(model_dir):
        raise ValueError(f"model_dir: {model_dir!r} is not a directory")
    if not os.path.exists(path):
        if os.listdir(model_dir):
            raise ValueError(
                f"model_dir: {model_dir!r} holds other files; give a new or empty directory "
                "(or that of an earlier run of this training, to resume it)"
            )
        return
    earlier = _read_description(path)
    if type(earlier.get("format")) is not int or earlier["format"] != FORMAT:
        raise ValueError(f"model_dir: {model_dir!r} has format {earlier.get('format')!r}; this "
                         f"tfstyle reads format {FORMAT} (give a new directory)")  # fmt: skip
    if _identity(earlier) != _identity(description):
        raise ValueError(
            f"model_dir: {model_dir!r} holds a training run of another style or other "
            "options; give a new directory to train this one"
        )


# --- Stylising with a trained network --------------------------------------------------------


def describe(model_dir) -> dict:
    """The description of a trained model directory (``tfstyle-model.json``), checked: an
    ``OSError`` if ``model_dir`` is not a directory (missing, a file), a ``ValueError`` naming
    it if it is not a path, not a trained model, was written by another format, or its
    training has not finished."""
    from tfstyle import files

    with contextlib.suppress(TypeError):  # a PathLike giving neither str nor bytes: below
        model_dir = os.fspath(model_dir) if isinstance(model_dir, os.PathLike) else model_dir
    if not isinstance(model_dir, str):  # None, bytes (from a PathLike too), a number...
        raise ValueError(f"model: a trained model's directory (a path) is needed; got "
                         f"{model_dir!r}")  # fmt: skip
    if not os.path.isdir(model_dir):
        raise files.not_a_directory(model_dir, "model")
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.lexists(path):
        raise ValueError(f"model: {model_dir!r} is not a trained tfstyle model (no {MODEL_FILE}; "
                         "tfstyle train writes one)")  # fmt: skip
    description = _read_description(path)
    if type(description.get("format")) is not int or description["format"] != FORMAT:
        found = description.get("format")
        raise ValueError(f"model: {model_dir!r} has format {found!r}; this tfstyle reads "
                         f"format {FORMAT} (train it again with this version)")  # fmt: skip
    network_file = os.path.join(model_dir, NETWORK_FILE)
    if os.path.lexists(network_file):  # there, it must be a regular file (never a FIFO)
        files.check_regular(network_file, "model", NETWORK_BYTES)
    else:
        raise ValueError(
            f"model: {model_dir!r} has not finished training ({description.get('steps_done', 0)}"
            f" steps of {description.get('steps')} done as of its last checkpoint); the same "
            "tfstyle train command goes on"
        )
    return description


_networks: dict = {}  # (model directory, network file's mtime) -> keras.Model
#: The most a network file may hold (Johnson et al.'s is 7 MB).
NETWORK_BYTES = 2**30


def network(model_dir) -> keras.Model:
    """The trained network of ``model_dir`` (``describe``'s checks), loaded once."""
    from tfstyle import files

    describe(model_dir)
    path = os.path.join(os.fspath(model_dir), NETWORK_FILE)
    info = files.check_regular(path, "model", NETWORK_BYTES)  # never a FIFO: it would block
    key = (os.path.realpath(path), info.st_mtime_ns)
    if key not in _networks:
        import zipfile

        if not zipfile.is_zipfile(path):
            raise ValueError(f"model: {path!r} is not a Keras model file (a .keras zip archive)")
        try:
            _networks[key] = keras.models.load_model(path, compile=False)
        except Exception as err:  # noqa: BLE001 (Keras raises many kinds for a bad file)
            raise ValueError(f"model: {path!r} cannot be loaded: {err}") from None
    return _networks[key]


#: Above this side, ``stylize`` paints in overlapping tiles (a forward pass holds about 1 GiB
#: per megapixel of activations: a 4096 px image whole would need about 16 GiB).
TILE_SIZE = 1536
#: The tiles' overlap, blended linearly: well over the receptive field's reach that matters.
TILE_OVERLAP = 128


def stylize(content, model_dir, size: int | None = None, tile_size: int = TILE_SIZE):
    """``content`` (a path, bytes, a PIL image or an array) stylised by the network trained in
    ``model_dir``, in one forward pass; a PIL RGB image.

    Args:
        size: int. Longer side of the output; None: the content's own size. Defaults to None.
        tile_size: int. An image with a side above it is painted in tiles of this side that
            overlap by ``TILE_OVERLAP`` px, blended linearly (the network is local, but its
            instance normalisation sees a tile, not the image: where tiles meet, the blend
            hides the difference). Defaults to 1536.
    """
    from tfstyle import options

    if size is not None:
        options.BY_NAME["size"].check(size)
    if (
        not isinstance(tile_size, int)
        or isinstance(tile_size, bool)
        or tile_size < 2 * TILE_OVERLAP
    ):
        raise ValueError(f"tile_size must be an integer of at least {2 * TILE_OVERLAP}; "
                         f"got {tile_size!r}")  # fmt: skip
    net = network(model_dir)
    image = tf.constant(images.load_image(content, "content"))
    if size is not None:
        image = images.resize_longer_side(image, size)
    if max(image.shape[:2]) <= tile_size:
        return images.to_pil(forward(net, image[None])[0])
    return images.to_pil(tiled(net, image.numpy(), tile_size, TILE_OVERLAP))


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of ``tile`` px covering ``length`` px, each overlapping the next by at
    least ``overlap`` px, the last ending at the edge."""
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return [*starts, length - tile]


def blend_weights(start: int, tile: int, length: int, overlap: int) -> np.ndarray:
    """A tile's weight along one axis: rising linearly over ``overlap`` px where another tile
    overlaps it, 1 elsewhere (at the image's edges too)."""
    weight = np.ones(tile, np.float32)
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    if start > 0:
        weight[:overlap] = ramp
    if start + tile < length:
        weight[-overlap:] = ramp[::-1]
    return weight


def tiled(net: keras.Model, image: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """The network's output for ``image`` ``(H, W, 3)``, tile by tile, blended."""
    height, width = image.shape[:2]
    out = np.zeros((height, width, 3), np.float32)
    total = np.zeros((height, width, 1), np.float32)
    th, tw = min(tile, height), min(tile, width)
    for top in tile_starts(height, th, overlap):
        rows = blend_weights(top, th, height, overlap)
        for left in tile_starts(width, tw, overlap):
            weight = (rows[:, None] * blend_weights(left, tw, width, overlap)[None])[..., None]
            crop = image[None, top : top + th, left : left + tw]
            out[top : top + th, left : left + tw] += weight * np.asarray(forward(net, crop)[0])
            total[top : top + th, left : left + tw] += weight
    return out / total


def forward(net: keras.Model, batch: tf.Tensor) -> tf.Tensor:
    """The network's output for ``batch`` ``(N, H, W, 3)`` in [0, 1], run as a graph (the
    graph the exported model runs, so the same pixels)."""
    return _graph_forward(net)(batch)


_graphs: dict = {}  # id(network) -> its tf.function


def _graph_forward(net: keras.Model):
    if id(net) not in _graphs:
        _graphs[id(net)] = tf.function(lambda batch: net(batch, training=False),
                                       reduce_retracing=True)  # fmt: skip
    return _graphs[id(net)]


# --- Serving --------------------------------------------------------------------------------

#: The real-time model's input and output (a batch of encoded images, and their PNGs), its
#: name on the server and base path: ``tfstyle.signature``'s.
IMAGES, IMAGES_BYTES = sig.IMAGES, sig.IMAGES_BYTES
MODEL_NAME, BASE_PATH = sig.REALTIME_MODEL_NAME, sig.REALTIME_MODEL_DIR
#: The largest side a served real-time model writes (a larger input is scaled down to it).
DEFAULT_MAX_SIZE = 2048


def export(model, base_path, *, version: int | None = None, max_size: int = DEFAULT_MAX_SIZE,
           warmup: bool = True) -> str:  # fmt: skip
    """Write the network trained in ``model`` as a SavedModel for TensorFlow Serving, in
    ``base_path/<version>/``; return that path.

    Its ``serving_default`` takes ``images``, a batch (1-D string tensor) of encoded images
    (PNG, JPEG, GIF or BMP; each any size up to 8192 px a side), and returns ``images_bytes``,
    their PNGs: each stylised at its own size, scaled down first to a longer side of ``max_size`` if
    larger. TF Serving's request batching can gather requests along that batch.

    Args:
        version: int. The version directory; None: one more than the highest there. Defaults
            to None.
        max_size: int. Longer side of the largest output. Defaults to 2048.
        warmup: bool. Write a warm-up request to ``assets.extra/`` (needs the ``serving``
            extra). Defaults to True.
    """
    import dataclasses

    from tfstyle import export as optimisation
    from tfstyle import files, options

    description = describe(model)
    files.check_not_inside(base_path, model, "model_dir")
    dataclasses.replace(options.EXPORT_LIMITS["max_size"], low=images.MIN_SIDE).check(max_size)
    net = network(model)
    spec = tf.TensorSpec([None], tf.string, name=IMAGES)
    serving_default = tf.function(lambda images: {IMAGES_BYTES: _served(net, images, max_size)},
                                  input_signature=[spec], autograph=False)  # fmt: skip
    root = tf.Module()  # the variables, not the Keras model (as export.py saves, for TF Serving)
    root.weights = [v.value for v in net.variables]
    with files.new_directories(base_path, "model_dir"):
        path = optimisation._version_dir(base_path, version)
        with files.atomic_path(path, directory=True) as tmp:
            tf.saved_model.save(root, tmp, signatures={"serving_default": serving_default})
            _write_served_metadata(tmp, description, max_size)
            if warmup:
                _write_served_warmup(tmp)
    return path


def _served(net: keras.Model, data: tf.Tensor, max_size: int) -> tf.Tensor:
    """PNGs of the encoded images ``data`` ``(N,)`` stylised, each at its own size."""

    def one(encoded):
        image = images.decode(encoded, IMAGES)
        shape = tf.shape(image)
        longer = tf.maximum(shape[0], shape[1])
        image = tf.cond(
            longer > max_size, lambda: images.resize_longer_side(image, max_size), lambda: image
        )
        stylised = net(image[None], training=False)[0]
        return tf.io.encode_png(images.to_uint8(stylised))

    return tf.map_fn(one, data, fn_output_signature=tf.string)


def _write_served_metadata(path: str, description: dict, max_size: int) -> None:
    from importlib.metadata import version

    from tfstyle import export as optimisation

    meta = {
        "kind": "real-time", "tensorflow": tf.__version__, "keras": keras.__version__,
        "serving_image": f"tensorflow/serving:{optimisation.serving_version()}",
        "tfstyle": version("tfstyle"), "max_size": max_size, "trained": description,
        "signature": {"serving_default": {"inputs": {IMAGES: "DT_STRING [batch]"},
                                          "outputs": {IMAGES_BYTES: "DT_STRING [batch], PNG"}}},
    }  # fmt: skip
    os.makedirs(os.path.join(path, "assets.extra"), exist_ok=True)
    _write_json(os.path.join(path, sig.METADATA_FILE), meta)


def _write_served_warmup(path: str) -> None:
    """One warm-up request (two small PNGs) for TF Serving and the stand-in to replay."""
    from tfstyle import export as optimisation

    pngs = [optimisation.random_png(side, seed=side) for side in (64, 48)]
    optimisation.write_warmup(path, MODEL_NAME, [("serving_default", {IMAGES: pngs})])
