"""The public Python API: ``transfer``. Its options and their defaults come from ``options``."""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import PIL.Image
import tensorflow as tf
from tqdm.auto import tqdm

from tfstyle import checks, features, images, interrupts, masks, memory, options, pipeline, tiles
from tfstyle.interrupts import Interrupted

StyleInput = images.ImageLike | Sequence[images.ImageLike]
#: Wall-clock seconds of work per ``tf.function`` call of the optimisation loop: long enough
#: that the call costs nothing, short enough for a moving progress bar and a prompt Ctrl-C.
CHUNK_SECONDS = 1.0


@options.documented
def transfer(
    content: images.ImageLike,
    style: StyleInput | None = None,
    *,
    size: int = 512,
    iterations: int = 200,
    min_scale: int = 256,
    scale_span: float = 8.0,
    scale_factor: float = 2.0,
    steps_ratio: float = 0.38,
    shared_iterations: int = 200,
    style_scale: float = 1.0,
    average_decay: float = 0.0,
    content_weight: float = 1.0,
    style_weight: float = 1e4,
    tv_weight: float = 10.0,
    optimizer: str = "lbfgs",
    learning_rate: float | None = None,
    init: str | images.ImageLike = "content",
    seed: int | None = None,
    weights: str | os.PathLike | None = "imagenet",
    backbone: str = "vgg19",
    pooling: str = "max",
    precision: str = "auto",
    content_layers: Sequence[str] = features.DEFAULT_CONTENT_LAYERS,
    style_layers: Sequence[str] = features.DEFAULT_STYLE_LAYERS,
    style_loss: str = "gram",
    style_layer_weights: Sequence[float] | None = None,
    tile_size: int | None = None,
    style_blend_weights: Sequence[float] | None = None,
    masks: Sequence[images.ImageLike] | None = None,
    style_masks: Sequence[images.ImageLike | None] | None = None,
    content_mask: images.ImageLike | None = None,
    preserve_colors: bool = False,
    model: str | os.PathLike | None = None,
    callback: Callable[[int, dict, np.ndarray], None] | None = None,
    callback_every: int = 10,
    progress: bool = True,
) -> PIL.Image.Image:
    """Paint ``content`` in the style of ``style`` (Gatys et al.) and return the image.

    Args:
        content: the content image: a path, encoded bytes, a PIL image, or an array/tensor
            (H, W, 3) of uint8 or float in [0, 1].
        style: the style image (same kinds), or a list of them to blend; None with ``model``
            (a trained network has its own style).
        {options}

    Returns:
        The stylised image, a PIL RGB image.

    Raises:
        ValueError: a bad option value or image, naming it and what is allowed; or an objective
            that stopped being finite (the step and the likely cause are named).
        FileNotFoundError: an image, weights or ``model`` path that does not exist
            (``NotADirectoryError``: a ``model`` that is a file).
        Interrupted: Ctrl-C (a ``KeyboardInterrupt``), within about 0.1 s; its ``image`` is the
            result after its ``step``, upsampled to the output's size if a coarser scale was
            running (the callback, if any, has seen that step's image at its scale).

    Example:
        >>> image = tfstyle.transfer("examples/content.jpg", "examples/style.png",
        ...                          size=256, iterations=100)
        >>> image.save("out.png")
        >>> fast = tfstyle.transfer("examples/content.jpg", model="models/starry")  # one pass
    """
    values = {name: value for name, value in locals().items() if name in options.BY_NAME}
    opts = options.Options(**values)  # the options' errors first, then the images' in order
    if model is not None:
        return _realtime(content, style, opts)
    content = images.load_image(content, "content")
    if style is None:
        raise ValueError(
            "style must be an image or a non-empty list of images (or give model=, the "
            "directory of a model trained by tfstyle train); got None"
        )
    return Stylizer(style, **values)(content)


#: The options that apply with ``model`` (a trained network fixed the rest).
REALTIME_OPTIONS = ("model", "size", "progress")


def _realtime(content, style, opts) -> PIL.Image.Image:
    """``transfer`` with ``model``: one forward pass of the trained network
    (``realtime.stylize``); a style image or an option it cannot apply is one error."""
    from tfstyle import realtime

    if style is not None:
        raise ValueError(
            f"style: given with model; the network trained in {os.fspath(opts.model)!r} has "
            "its style (give no style image)"
        )
    values = {o.name: getattr(opts, o.name) for o in options.OPTIONS}
    given = options.first_given(values, options.DEFAULTS, allowed=REALTIME_OPTIONS)
    if given:
        raise ValueError(f"{given}: does not apply with model (of the options, only size does: "
                         "the rest were fixed when the network was trained)")  # fmt: skip
    return realtime.stylize(content, opts.model, size=opts.size)


_masks = masks  # the module, where an argument of the same name hides it


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
        if opts.model is not None:
            raise ValueError(
                "model: a trained network paints with transfer(content, model=...) (or "
                "tfstyle transfer/batch --model); here it does not apply"
            )
        styles_in = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles_in:
            raise ValueError("style must be an image or a non-empty list of images")
        self.blend = _blend_weights(opts.style_blend_weights, len(styles_in))
        self.styles = [
            images.load_image(s, "style" if len(styles_in) == 1 else f"style[{k}]")
            for k, s in enumerate(styles_in)
        ]
        self.init = None if _named_init(opts.init) else images.load_image(opts.init, "init")
        count = len(self.styles)
        for name in ("masks", "style_masks"):
            _masks.check_count(getattr(opts, name), count, name)
        #: Per style, None or its region of the style image (``style_masks``), loaded, checked.
        self.style_masks = None
        if opts.style_masks is not None:
            self.style_masks = [
                None if m is None else _loaded_mask(m, f"style_masks[{k}]", self.styles[k], "style")
                for k, m in enumerate(opts.style_masks)
            ]
        #: The regions (``masks``) and the content weight map, loaded; checked against each
        #: content image when it comes.
        self.masks = _loaded_masks(opts.masks)
        self.content_mask = (
            None if opts.content_mask is None else _masks.load(opts.content_mask, "content_mask")
        )
        self._style_targets: dict = {}  # (tile size, scale px) -> Pipeline.style_targets there
        self._lock = threading.Lock()  # one computation per scale, whatever the threads
        #: How many times style targets were computed (once per scale size used).
        self.style_targets_computed = 0
        #: More arguments of the progress bar (``tfstyle.video`` puts it under its own).
        self.bar_options: dict = {}

    @functools.cached_property
    def network(self) -> pipeline.Pipeline:
        """The pipeline (network, objective, optimiser) for the options, built on first use."""
        return pipeline.get(self.options)

    def pipeline_for(self, content_img) -> pipeline.Pipeline:
        """The pipeline for a content image ``(H, W, 3)``: ``network``, or, when ``tile_size``
        is unset and the last scale would not fit in memory on the whole image, the same
        options in tiles of ``memory.AUTO_TILE_SIZE`` px (``tfstyle.tiles``)."""
        opts, whole = self.options, self.network
        if opts.tile_size is not None:
            return whole
        shape = images.working_shape(*content_img.shape[:2], opts.size)
        height, width = (int(v) for v in shape)
        if max(height, width) <= memory.AUTO_TILE_SIZE or memory.fits(
            height, width, whole.precision.precision
        ):
            return whole
        return pipeline.get(opts.replace(tile_size=memory.AUTO_TILE_SIZE))

    def style_targets(self, pipe: pipeline.Pipeline, request: dict, scale: int) -> tuple:
        """The style targets at ``scale`` px of ``pipe`` (``pipeline_for``'s), computed on first
        use."""
        tiling = pipe.objective.tiling
        key = (None if tiling is None else tiling.tile_size, scale, "masks" in request)
        with self._lock:
            if key not in self._style_targets:
                self._style_targets[key] = _checked(
                    pipe.compiled.style_targets,
                    self.styles, self.blend, request, tf.constant(scale),
                )  # fmt: skip
                self.style_targets_computed += 1
            return self._style_targets[key]

    def __call__(
        self, content: images.ImageLike, masks=None, content_mask=None, *, init=None,
        temporal=None, stop: threading.Event | None = None,
    ) -> PIL.Image.Image:  # fmt: skip
        """The stylised ``content`` (a path, bytes, a PIL image or an array), a PIL RGB image.

        ``masks`` and ``content_mask``, if given, replace the options' for this image (one
        mask set per content image: ``tfstyle batch``). ``init`` (a float ``(h, w, 3)`` array)
        replaces the options' starting image, and ``temporal`` adds a video frame's temporal
        term: ``(previous, mask, weight)``, the previous frame's result warped onto this one
        ``(h, w, 3)``, the consistency mask ``(h, w, 1)`` and ``temporal_weight``
        (``tfstyle.video``). ``stop``, an event another thread may set (a page's Stop button),
        ends the run within about ``CHUNK_SECONDS`` as Ctrl-C does: ``Interrupted``, with the
        image so far.

        Raises as ``transfer`` does.
        """
        opts = self.options
        content_img = images.load_image(content, "content")
        if masks is not None:
            masks = masks if isinstance(masks, (list, tuple)) else [masks]
            options.BY_NAME["masks"].check(masks)
            _masks.check_count(masks, len(self.styles), "masks")
        regions = self.masks if masks is None else _loaded_masks(masks)
        if content_mask is not None:
            options.BY_NAME["content_mask"].check(content_mask)
            content_mask = _masks.load(content_mask, "content_mask")
        else:
            content_mask = self.content_mask
        for k, mask in enumerate(regions or []):
            _masks.check(mask, content_img.shape, f"masks[{k}]")
        if content_mask is not None:
            _masks.check(content_mask, content_img.shape, "content_mask")
        seed = opts.seed if opts.seed is not None else int(np.random.default_rng().integers(2**31))
        request = pipeline.request_tensors(opts, seed, self.init if init is None else init)
        if temporal is not None:
            previous, mask, weight = temporal
            request["temporal"] = (tf.constant(previous, tf.float32), tf.constant(mask, tf.float32))
            request["temporal_weight"] = tf.constant(weight, tf.float32)
        if regions is not None:
            request["masks"] = [tf.constant(m) for m in regions]
        if content_mask is not None:
            request["content_mask"] = tf.constant(content_mask)
        if self.style_masks is not None:
            request["style_masks"] = [None if m is None else tf.constant(m)
                                      for m in self.style_masks]  # fmt: skip
        pipe = self.pipeline_for(content_img)
        hooks = _Eager(self, pipe, request, content_img)
        hooks.stop = stop
        try:
            bar = tqdm(total=opts.iterations, disable=not opts.progress, unit="step",
                       **self.bar_options)  # fmt: skip
            with bar as hooks.bar:
                image, _, _ = _checked(
                    pipe.run, content_img, self.styles, self.blend,
                    tf.constant(opts.iterations), request, None, None, None, hooks, direct=True,
                )  # fmt: skip
        except KeyboardInterrupt as stop:  # wherever it lands: a graph call, the callback, ...
            with interrupts.further_ctrl_c_ignored():  # a second press must not lose the image
                raise hooks.interrupted(isinstance(stop, interrupts.Terminated)) from None
        return images.to_pil(image)


class _Eager(pipeline.Hooks):
    """``Pipeline.run``'s hooks for ``Stylizer``: every compiled step in a worker thread (Ctrl-C
    at once), style targets kept per scale, a scale's steps in chunks of about
    ``CHUNK_SECONDS`` with the progress bar and the callback between them, the memory check
    before the first step, and what Ctrl-C returns."""

    def __init__(self, stylizer: Stylizer, pipe: pipeline.Pipeline, request: dict, content):
        super().__init__(pipe)
        self.stylizer, self.opts = stylizer, stylizer.options
        self.request, self.content = request, content
        self.bar = None  # the progress bar, set by the caller
        self.every = self.opts.callback_every if self.opts.callback is not None else None
        self.step, self.state, self.current, self.scale = 0, None, None, None  # current: Started
        self.reported = []  # the steps whose image the callback has seen
        self.sizes: list[int] = []
        self.postfix = "loss=?"  # the bar's, until a step is done
        self.stop: threading.Event | None = None  # set from another thread: stop as Ctrl-C does

    @property
    def compiled(self):
        return self.pipeline.reporting  # tiled steps report their crops to the progress bar

    def call(self, fn, *args):
        with tiles.listening(self.crop_done):
            return interrupts.run(fn, *args)

    def crop_done(self, done: int, count: int, what: str) -> None:
        """A tiled pass's ``done``-th crop of ``count`` (``what``: the pass): on the bar, whose
        steps may take minutes."""
        self.bar.set_postfix_str(f"{self.postfix}, {what}: crop {done}/{count}")

    def planned(self, scales) -> None:
        self.sizes = [int(v) for v in scales.sizes]
        shape = images.working_shape(*self.content.shape[:2], self.opts.size)
        tiling, crop = self.pipeline.objective.tiling, None
        if tiling is not None and max(int(v) for v in shape) > tiling.tile_size:
            crop = tiling.crop_side
        memory.check(
            *(int(v) for v in shape), self.opts.size, self.pipeline.precision.precision, crop
        )

    def style(self, size):
        return self.stylizer.style_targets(self.pipeline, self.request, int(size))

    def started(self, index, size, begin, started) -> None:
        self.current, self.state, self.scale = started, started.state, int(size)  # together
        index, count = int(index), len(self.sizes)
        where = f"{self.scale} px" if count == 1 else f"{self.scale} px {index + 1}/{count}"
        choice = self.pipeline.precision
        self.bar.set_description(f"{where}, {choice.precision} ({choice.brief})")

    def advance(self, started, state, learning_rate, begin, k):
        """The steps in chunks: the first of one step (it may trace), then of about
        ``CHUNK_SECONDS`` each, cut at every ``callback_every``-th step."""
        end, chunk, every = self.step + int(k), 1, self.every
        while self.step < end:
            n = min(chunk, end - self.step)
            if every is not None:
                n = min(n, every - self.step % every)
            began = time.perf_counter()
            new = self.call(
                self.compiled.advance,
                state, started.targets, started.weights, learning_rate, tf.constant(n),
            )  # fmt: skip
            loss = float(new.loss)
            if not math.isfinite(loss):
                return new  # the run's check names the step and the weights
            state, self.state, self.step = new, new, self.step + n  # together: no Ctrl-C between
            if int(new.step) > n:  # the first call at a scale may trace: not a measure
                elapsed = time.perf_counter() - began
                chunk = max(1, min(4 * chunk, round(n * CHUNK_SECONDS / max(elapsed, 1e-6))))
            self.bar.update(n)
            self.postfix = f"loss={loss:.4g}"
            self.bar.set_postfix_str(self.postfix, refresh=False)
            if every is not None and self.step % every == 0 and self.step < self.opts.iterations:
                self.report()
            if self.stop is not None and self.stop.is_set():
                raise KeyboardInterrupt  # ``Stylizer.__call__`` makes it ``Interrupted``
        return state

    def finished(self, state, started) -> None:
        self.bar.set_postfix_str(self.postfix)  # not the last crop's
        if self.every is not None:  # after the last step, at the last scale
            self.report()

    def report(self) -> None:
        """The callback, with the current image at its scale and its loss terms."""
        run, started = self.compiled, self.current
        terms = run.evaluate(self.state.image, started.targets, started.weights)
        losses = {k: float(v) for k, v in terms.items()}
        image, _ = run.finish(
            self.state.image, started.content, started.targets, started.weights,
            self.request["preserve_colors"],
        )  # fmt: skip
        self.opts.callback(self.step, {**losses, "scale": self.scale}, image.numpy())
        self.reported.append(self.step)

    def interrupted(self, terminated: bool = False) -> Interrupted:
        """The ``Interrupted`` for Ctrl-C now: the latest image at the output's size (before
        the first scale started: the content), after the callback has seen it."""
        opts = self.opts
        image = self.content if self.state is None else self.state.image[0]
        result = self.pipeline.full_size(image, self.content, opts.size, opts.preserve_colors)
        if self.every is not None and self.state is not None and self.reported[-1:] != [self.step]:
            self.report()  # the callback sees the image returned
        return Interrupted(images.to_pil(result), self.step, opts.iterations, terminated)


def _checked(fn, *args, direct: bool = False):
    """``interrupts.run(fn, *args)`` (``direct``: ``fn(*args)`` in this thread), the pipeline's
    own checks as one-line ``ValueError``s."""
    try:
        return fn(*args) if direct else interrupts.run(fn, *args)
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(checks.message_of(err)) from None


def _loaded_mask(source, name: str, image: np.ndarray, of: str) -> np.ndarray:
    """``masks.load`` of ``source``, checked against ``image`` (its aspect ratio, not black;
    ``of``: what the image is)."""
    mask = _masks.load(source, name)
    _masks.check(mask, image.shape, name, of)
    return mask


def _loaded_masks(sources) -> list | None:
    """The masks of ``sources`` (``masks``: one per style), loaded, or None."""
    if sources is None:
        return None
    if not isinstance(sources, (list, tuple)):
        sources = [sources]
    return [_masks.load(m, f"masks[{k}]") for k, m in enumerate(sources)]


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
