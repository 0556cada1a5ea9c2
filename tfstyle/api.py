"""The public Python API: ``transfer``. Its options and their defaults come from ``options``."""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading
import time
from collections.abc import Sequence

import numpy as np
import PIL.Image
import tensorflow as tf
from tqdm.auto import tqdm

from tfstyle import checks, images, memory, options, pipeline

StyleInput = images.ImageLike | Sequence[images.ImageLike]
#: Wall-clock seconds of work per ``tf.function`` call of the optimisation loop: long enough
#: that the call costs nothing, short enough for a moving progress bar and a prompt Ctrl-C.
CHUNK_SECONDS = 1.0


@options.documented
def transfer(content: images.ImageLike, style: StyleInput, **kwargs) -> PIL.Image.Image:
    """Paint ``content`` in the style of ``style`` (Gatys et al.) and return the image.

    Args:
        content: the content image: a path, encoded bytes, a PIL image, or an array/tensor
            (H, W, 3) of uint8 or float in [0, 1].
        style: the style image (same kinds), or a list of them to blend.
        {options}

    Returns:
        The stylised image, a PIL RGB image.

    Raises:
        ValueError: a bad option value or image, naming it and what is allowed; or an objective
            that stopped being finite (the step and the likely cause are named).
        FileNotFoundError: an image or weights path that does not exist.
        Interrupted: Ctrl-C (a ``KeyboardInterrupt``), within about 0.1 s; its ``image`` is the
            result after its ``step``, upsampled to the output's size if a coarser scale was
            running (the callback, if any, has seen that step's image at its scale).

    Example:
        >>> image = tfstyle.transfer("examples/content.jpg", "examples/style.png",
        ...                          size=256, iterations=100)
        >>> image.save("out.png")
    """
    unknown = sorted(set(kwargs) - set(options.BY_NAME))
    if unknown:
        raise TypeError(f"transfer() got an unexpected keyword argument {unknown[0]!r}")
    options.Options(**kwargs)  # the options' errors first, then the images' in argument order
    content = images.load_image(content, "content")
    return Stylizer(style, **kwargs)(content)


class Stylizer:
    """One style and one set of options, for any number of content images: what ``transfer``
    does, with the work that does not depend on the content done once.

    The options are checked and the style images (and an ``init`` image) loaded when it is
    made; the network is built on first use (``network``, shared by every ``Stylizer`` of the
    same network in the process); the style targets are computed once per scale size and kept.
    ``stylizer(content)`` returns the same pixels as ``transfer(content, style, **options)``.

    Args:
        style: the style image, or a list of them to blend (as for ``transfer``).
        **options: the options of ``transfer``.

    Example:
        >>> stylize = Stylizer("examples/style.png", size=256, iterations=100)
        >>> for name in ["a.jpg", "b.jpg"]:
        ...     stylize(name).save(name + ".png")
    """

    def __init__(self, style: StyleInput, **kwargs):
        self.options = opts = options.Options(**kwargs)
        styles_in = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles_in:
            raise ValueError("style must be an image or a non-empty list of images")
        self.blend = _blend_weights(opts.style_blend_weights, len(styles_in))
        self.styles = [
            images.load_image(s, "style" if len(styles_in) == 1 else f"style[{k}]")
            for k, s in enumerate(styles_in)
        ]
        self.init = None if _named_init(opts.init) else images.load_image(opts.init, "init")
        self._style_targets: dict = {}  # scale size (px) -> Pipeline.style_targets there
        self._lock = threading.Lock()  # one computation per scale, whatever the threads
        #: How many times style targets were computed (once per scale size used).
        self.style_targets_computed = 0

    @functools.cached_property
    def network(self) -> pipeline.Pipeline:
        """The pipeline (network, objective, optimiser) for the options, built on first use."""
        return pipeline.get(self.options)

    def style_targets(self, request: dict, scale: int) -> tuple:
        """The style targets at ``scale`` px, computed on first use."""
        with self._lock:
            if scale not in self._style_targets:
                self._style_targets[scale] = _checked(
                    self.network.compiled.style_targets,
                    self.styles, self.blend, request, tf.constant(scale),
                )  # fmt: skip
                self.style_targets_computed += 1
            return self._style_targets[scale]

    def __call__(self, content: images.ImageLike) -> PIL.Image.Image:
        """The stylised ``content`` (a path, bytes, a PIL image or an array), a PIL RGB image.

        Raises as ``transfer`` does.
        """
        opts, styles, blend = self.options, self.styles, self.blend
        content_img = images.load_image(content, "content")
        seed = opts.seed if opts.seed is not None else int(np.random.default_rng().integers(2**31))
        request = pipeline.request_tensors(opts, seed, self.init)

        pipe = self.network
        run = pipe.compiled
        shapes = [tf.shape(s) for s in styles]
        schedule = _checked(
            pipeline.schedule, tf.shape(content_img), shapes, tf.constant(opts.iterations), request
        )
        sizes, steps = (v.numpy().tolist() for v in schedule)
        # The result's shape (the last scale's), for an image returned before the last scale.
        final_shape = tuple(int(v) for v in images.working_shape(*content_img.shape[:2], opts.size))
        memory.check(*final_shape, opts.size, pipe.precision.precision)
        every = opts.callback_every if opts.callback is not None else None
        reported = []  # the steps whose image the callback has seen

        def final(state, started) -> tf.Tensor:
            image, _ = run.finish(
                state.image, started.content, started.targets, started.weights,
                request["preserve_colors"],
            )  # fmt: skip
            return image

        def report(step: int, state, started, scale: int) -> None:
            terms = run.evaluate(state.image, started.targets, started.weights)
            losses = {k: float(v) for k, v in terms.items()}
            opts.callback(step, {**losses, "scale": scale}, final(state, started).numpy())
            reported.append(step)

        step, state, started = 0, None, None
        precision = f"{pipe.precision.precision} ({pipe.precision.brief})"
        try:
            with tqdm(total=opts.iterations, disable=not opts.progress, unit="step") as bar:
                first = tf.constant(sizes[0])
                image = _checked(run.initial, content_img, styles, blend, request, first)
                for index, (scale, count) in enumerate(zip(sizes, steps, strict=True)):
                    fresh = _checked(
                        run.start, content_img, styles, blend, request, tf.constant(scale),
                        image, self.style_targets(request, scale),
                    )  # fmt: skip
                    started, state, state_scale = fresh, fresh.state, scale  # together
                    end, chunk = step + count, 1
                    scale_text = (
                        f"{scale} px" if len(sizes) == 1 else f"{scale} px {index + 1}/{len(sizes)}"
                    )
                    bar.set_description(f"{scale_text}, {precision}")
                    while step < end:
                        k = min(chunk, end - step)
                        if every is not None:
                            k = min(k, every - step % every)
                        began = time.perf_counter()
                        new = interruptible(
                            run.advance, state, started.targets, started.weights,
                            request["learning_rate"], tf.constant(k),
                        )  # fmt: skip
                        loss = float(new.loss)
                        if not math.isfinite(loss):
                            raise ValueError(
                                pipeline.NOT_FINITE.format(
                                    loss, end - count + int(new.step), opts.iterations,
                                    opts.content_weight, opts.style_weight, opts.tv_weight,
                                    list(pipe.style_layer_weights),
                                )
                            )  # fmt: skip
                        state, step = new, step + k  # together: no Ctrl-C between the two
                        if int(new.step) > k:  # the first call at a scale may trace: not a measure
                            elapsed = time.perf_counter() - began
                            chunk = max(
                                1, min(4 * chunk, round(k * CHUNK_SECONDS / max(elapsed, 1e-6)))
                            )
                        bar.update(k)
                        bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                        if every is not None and step % every == 0 and step < opts.iterations:
                            report(step, state, started, scale)
                    image = state.image[0]
                if every is not None:  # after the last step, at the last scale
                    report(step, state, started, sizes[-1])
        except KeyboardInterrupt:  # wherever it lands: in a graph call, the callback, the bar
            with _further_ctrl_c_ignored():  # a second press must not lose the image
                stop = _interrupted(pipe, opts, content_img, final_shape, state, step)
                if every is not None and state is not None and reported[-1:] != [step]:
                    # The callback sees the image returned.
                    report(step, state, started, state_scale)
            raise stop from None
        return images.to_pil(final(state, started))


def _checked(fn, *args):
    """``interruptible(fn, *args)``, the pipeline's own checks as one-line ``ValueError``s."""
    try:
        return interruptible(fn, *args)
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(checks.message_of(err)) from None


def _interrupted(pipe, opts, content, shape, state, step: int) -> Interrupted:
    """The ``Interrupted`` for Ctrl-C after ``step``: the latest image at the output's size."""
    content = images.resize(content, *shape)
    # Before the first scale started: the content itself.
    image = content if state is None else images.resize(state.image[0], *shape)
    image = pipe.output(image[None], content, opts.preserve_colors)
    return Interrupted(images.to_pil(image), step, opts.iterations)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during ``transfer``: ``image`` is the result after ``step`` of ``iterations``."""

    def __init__(self, image: PIL.Image.Image, step: int, iterations: int):
        super().__init__(f"interrupted after step {step} of {iterations}")
        self.image, self.step, self.iterations = image, step, iterations


@contextlib.contextmanager
def _further_ctrl_c_ignored():
    """Ignore SIGINT for the block (in the main thread; elsewhere none arrives)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def interruptible(fn, *args, **kwargs):
    """``fn(*args)`` (a graph call) in a worker thread, so that Ctrl-C is not held up until the
    call returns: the main thread waits in short slices and gets ``KeyboardInterrupt`` at once.
    An abandoned call finishes in the background (at most one chunk of steps)."""
    out: dict = {}

    def work():
        try:
            out["value"] = fn(*args, **kwargs)  # eager: returns once computed
        except BaseException as err:  # handed to the caller
            out["error"] = err

    worker = threading.Thread(target=work, name="tfstyle-run", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if "error" in out:
        raise out["error"]
    return out["value"]


def _named_init(init) -> bool:
    """True for a named starting image; any other string is a path."""
    return isinstance(init, str) and init in options.INITS


def _blend_weights(blend, count: int) -> np.ndarray:
    if blend is None:
        return np.full(count, 1.0 / count, np.float32)
    if len(blend) != count:
        raise ValueError(
            f"style_blend_weights must be {count} non-negative numbers, one per style image; "
            f"got {list(blend)}"
        )
    blend = np.asarray(blend, dtype=np.float64)
    if blend.sum() <= 0:
        raise ValueError("style_blend_weights must not all be zero")
    return (blend / blend.sum()).astype(np.float32)
