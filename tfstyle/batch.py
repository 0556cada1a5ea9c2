"""Batch stylisation on Apache Beam: one style and one set of options over many images.

``tfstyle batch CONTENT STYLE [STYLE ...] -o OUT_DIR [options] [--runner R] [-- beam options]``
and ``run(...)`` stylise every image that CONTENT names (a directory, searched recursively for
image files; a glob; or one file) and write one PNG per input under OUT_DIR:
``OUT_DIR/<the input's path relative to the input root>.png`` (``photos/a.jpg`` ->
``OUT_DIR/photos/a.jpg.png``), so two inputs never share an output. In your own pipeline,
``paths | Stylize(style, out_dir, root=..., **options)`` does the same for a ``PCollection`` of
input paths.

- **Once per worker:** the images go through Beam's ``RunInference`` with ``StyleModelHandler``,
  so the network is built once per worker process (Beam's shared model handle) and the style
  targets once per worker and scale (``tfstyle.api.Stylizer`` keeps them), not once per image.
- **Nothing lost, nothing done twice:** an input that fails (not an image, too small, too large,
  unreadable) is written with its error as a line of ``OUT_DIR/failed.jsonl``
  (``{"input": ..., "error": ...}``; written in a hidden directory of the run's own and moved
  into place at the end, so a stopped run removes only that, and an input directory of that
  name is refused) while the others complete; an output that exists is not
  made again, and every output is written under a temporary name and renamed when complete, so
  a rerun of a stopped job does only what is missing.
- **Metrics** (namespace ``tfstyle``): ``done``, ``skipped``, ``failed``, and ``models_loaded``
  and ``style_targets`` (how many times the network was built and the style targets computed).
- **Files** are read and written through Beam's file systems (``FileSystems``): ``gs://`` and
  other schemes work wherever Beam has them installed (``apache-beam[gcp]`` for ``gs://``).

The local runner is Beam's ``FnApiRunner`` (what ``DirectRunner`` runs batch pipelines on, minus
its first try of the Prism runner, which downloads a binary), in this process by default
(``DEFAULT_WORKERS``), or in ``workers`` processes. Apache Beam is imported only when a batch
runs: ``pip install "tfstyle[beam]"``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import threading
import time
from collections.abc import Sequence
from typing import NamedTuple

from tfstyle import api, batch_files, checks, files, flags, images, interrupts, memory, options

#: The options a batch takes: every option of ``transfer`` but the per-call callbacks and bar,
#: and ``model`` (``run`` has its own).
BATCH_OPTIONS = tuple(
    o.name
    for o in options.OPTIONS
    if o.name not in ("callback", "callback_every", "progress", "model")
)
#: What a clip among the inputs also takes (``tfstyle.video``'s own options).
VIDEO_OPTIONS = tuple(options.VIDEO_OPTIONS)
#: Beam metrics namespace of the counters.
NAMESPACE = "tfstyle"
#: Seconds between looks at OUT_DIR for the progress bar (local, and any other file system).
POLL_SECONDS = {"local": 2.0, "remote": 30.0}
#: Local worker processes by default. One: TensorFlow already runs each step on every core, and
#: measured on 2 cores a second worker gained nothing (128 px: 1.05x, 256 px: 0.96x images/min;
#: benchmarks/batch.py) while each worker holds a network and an image's optimisation in memory.
DEFAULT_WORKERS = 1


class Counts(NamedTuple):
    """What a batch did, from its Beam metrics."""

    done: int  # outputs written
    skipped: int  # outputs that existed already
    failed: int  # inputs in the dead-letter file
    models_loaded: int  # networks built (once per worker process)
    style_targets: int  # style-target computations (once per worker and scale)


def run(
    content: str,
    style: str | Sequence[str],
    out_dir: str,
    *,
    runner: str | None = None,
    workers: int | None = None,
    pipeline_args: Sequence[str] = (),
    progress: bool = True,
    mask_dir: str | None = None,
    model: str | None = None,
    **kwargs,
) -> Counts:
    """Stylise every image CONTENT names, one PNG each under ``out_dir``, on Apache Beam (and
    every video clip, one mp4 each).

    Everything is checked before the pipeline starts: the options, the style (and ``init``)
    images, that CONTENT names at least one file, that ``out_dir`` can be written and is not
    where the inputs are. An input that then fails goes to ``out_dir/failed.jsonl``.

    Args:
        content: a directory (every image file under it, at any depth, hidden files left out),
            a glob (``photos/*.jpg``; ``**`` crosses directories) or one image; a local path or
            a URL of a file system Beam has (``gs://...``).
        style: the style image, or a list of them to blend.
        out_dir: the output directory (created if its parent exists). It may be inside the
            input directory (its files are then never read as inputs), not the input directory
            itself or above it.
        runner: a Beam runner name (``DataflowRunner``, ``FlinkRunner``, ``SparkRunner``, ...);
            None runs locally. Defaults to None.
        workers: local worker processes; None: ``DEFAULT_WORKERS``. Local runner only.
        pipeline_args: Beam pipeline options (``["--project", "p", ...]``), passed through.
        progress: show a progress bar (outputs written / to write). Defaults to True.
        mask_dir: a directory of masks per input (``batch_files.masks_for``): the input
            ``CONTENT/trip/a.jpg`` takes ``mask_dir/trip/a.jpg.mask1.png`` (one per style,
            numbered from 1, any image extension) and ``mask_dir/trip/a.jpg.content.png`` (its
            content map) where they exist, and the ``masks`` and ``content_mask`` options
            where not. Not inside CONTENT. Defaults to None.
        model: a model directory of ``tfstyle train`` (local): each image is painted in one
            pass of its network (``realtime.stylize``) instead of the optimisation; ``style``
            is then empty, and of the options only ``size`` applies. Defaults to None.
        **kwargs: the options of ``tfstyle.transfer`` but ``callback``, ``callback_every`` and
            ``progress``; and, for the clips among the inputs (``batch_files.VIDEO_EXTENSIONS``:
            each stylised whole by ``tfstyle.video`` into ``<its name>.mp4``, its frames in
            order), ``temporal_weight`` and ``frame_iterations``.

    Returns:
        The ``Counts`` of the run (done, skipped, failed; network builds, style targets).

    Raises:
        ValueError, OSError, TypeError: a bad option, image, input or output, before the
            pipeline starts.
        ImportError: Apache Beam is not installed.

    Example:
        >>> counts = tfstyle.batch.run("photos/", "style.jpg", "out/", size=256, iterations=100)
        >>> counts.done, counts.failed
    """
    beam, FileSystems = _beam()
    _beam_classes()
    styles = [style] if isinstance(style, str) else list(style or [])
    if model is not None:
        _check_realtime(model, styles, kwargs, mask_dir)
        files.check_not_inside(out_dir, model, "OUT_DIR")
    elif not styles:
        raise ValueError("style: give at least one style image (or a model of tfstyle train)")
    if workers is not None and runner not in (None, "DirectRunner"):
        raise ValueError(f"workers sets the local runner's processes; {runner} has its own options")
    workers = DEFAULT_WORKERS if workers is None else workers
    cores = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= cores:
        raise ValueError(
            f"workers must be an integer between 1 and {cores} (this machine's cores: each "
            f"worker runs TensorFlow on every core and holds its own network); got {workers!r}"
        )
    for name, value in [("content", content), ("OUT_DIR", out_dir)] + [
        ("style" if len(styles) == 1 else f"style[{k}]", v) for k, v in enumerate(styles)
    ]:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name}: a path or URL is needed; got {value!r}")
    _check_beam_args(runner, pipeline_args)
    memory.check_is_on()  # a TFSTYLE_MEMORY_CHECK it does not know: here, not on every input
    styles = [batch_files.absolute(s) for s in styles]
    if isinstance(kwargs.get("init"), str) and kwargs["init"] not in options.INITS:
        kwargs = {**kwargs, "init": batch_files.absolute(kwargs["init"])}
    video = _video_options({n: kwargs.pop(n) for n in list(kwargs) if n in VIDEO_OPTIONS})
    if model is None:
        _stylizer(styles, kwargs)  # checks the options and images now, not on the workers
    out_dir = batch_files.absolute(out_dir)
    if any(c in out_dir for c in "*?["):
        raise ValueError(
            f"OUT_DIR: {out_dir!r} has a glob character (* ? [), which Beam's file writer reads "
            "as a pattern: choose a directory without one"
        )
    root, inputs = batch_files.list_inputs(batch_files.absolute(content), out_dir)
    if mask_dir is not None:
        mask_dir = _checked_mask_dir(mask_dir, root)
    todo = {batch_files.output_path(p, root, out_dir) for p in inputs}
    batch_files.check_own_names(out_dir, todo)  # before OUT_DIR is made: a refused run makes none
    batch_files.check_out_dir(out_dir)

    from apache_beam.io import WriteToText

    todo -= batch_files.existing(out_dir)
    totals = dict.fromkeys(Counts._fields, 0)
    # The dead-letter file is written in a directory of this run's own, and moved into place
    # when the run is done: a stopped run removes that directory and nothing else.
    with batch_files.staging(out_dir) as staging:
        pipeline = beam.Pipeline(*_runner_and_options(runner, workers, pipeline_args))
        failures = (
            pipeline
            | "Inputs" >> beam.Create(inputs)
            | "Stylize"
            >> Stylize(
                styles, out_dir, root=root, mask_dir=mask_dir, model=model, **kwargs, **video
            )  # fmt: skip
        )
        dead_letter = FileSystems.join(staging, batch_files.DEAD_LETTER)
        _ = (
            failures
            | "Json" >> beam.Map(json.dumps)
            | "DeadLetter" >> WriteToText(dead_letter, shard_name_template="")
        )
        for counter in _run_watched(pipeline, out_dir, todo, progress)["counters"]:
            value = counter.committed if counter.committed is not None else counter.attempted
            totals[counter.key.metric.name] += value or 0
        batch_files.publish(dead_letter, out_dir)
    return Counts(**totals)


def _checked_mask_dir(mask_dir, root: str) -> str:
    """``mask_dir`` as an absolute path or URL, checked: a directory (a local one exists), not
    where the inputs are (its masks would be stylised as inputs)."""
    if not isinstance(mask_dir, str) or not mask_dir.strip():
        raise ValueError(f"mask_dir: a path or URL is needed; got {mask_dir!r}")
    mask_dir = batch_files.absolute(mask_dir)
    if "://" not in mask_dir and not os.path.isdir(mask_dir):
        raise files.not_a_directory(mask_dir, "mask_dir")
    if batch_files._inside(mask_dir, root) is not None:  # noqa: SLF001
        raise ValueError(
            f"mask_dir: {mask_dir!r} is inside the input directory {root!r}, whose images are "
            "all inputs: put the masks beside it"
        )
    return mask_dir


def _runner_and_options(runner: str | None, workers: int, pipeline_args: Sequence[str]):
    """The Beam runner and pipeline options: locally, the ``FnApiRunner`` with ``workers``
    processes (one: in this process); else the runner by name, with ``pipeline_args``."""
    from apache_beam.options.pipeline_options import PipelineOptions

    if runner is not None and runner != "DirectRunner":
        return runner, PipelineOptions(list(pipeline_args), runner=runner)
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    mode = "multi_processing" if workers > 1 else "in_memory"
    beam_options = PipelineOptions(
        list(pipeline_args), direct_num_workers=workers, direct_running_mode=mode
    )
    return FnApiRunner(), beam_options


def _run_watched(pipeline, out_dir: str, todo: set[str], progress: bool):
    """Run ``pipeline`` to the end in a worker thread, while this one shows a progress bar of the
    ``todo`` outputs found in ``out_dir`` and takes Ctrl-C at once; returns its ``tfstyle``
    metrics (``MetricResults.query``)."""
    from apache_beam.metrics.metric import MetricsFilter
    from tqdm.auto import tqdm

    _, FileSystems = _beam()

    def work():
        result = pipeline.run()
        result.wait_until_finish()
        return result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))

    poll = POLL_SECONDS["local" if FileSystems.get_scheme(out_dir) is None else "remote"]
    with tqdm(total=len(todo), disable=not progress or not todo, unit="image") as bar:
        last = [time.monotonic()]

        def show():
            if not bar.disable and time.monotonic() - last[0] >= poll:
                bar.update(len(batch_files.existing(out_dir) & todo) - bar.n)
                last[0] = time.monotonic()

        metrics = interrupts.run(work, poll=show)  # short slices: Ctrl-C is not held up
        bar.update(len(todo) - bar.n)
    return metrics


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the ``batch`` command to the CLI's subparsers (no Beam import: it runs in ``main``).

    Arguments after ``--`` are Beam pipeline options, passed through to the runner.
    """
    p = commands.add_parser(
        "batch",
        help="stylise many images (Apache Beam; rerun to resume)",
        description="Stylise every image CONTENT names with the same options, one PNG per input "
        "under OUT_DIR (OUT_DIR/<path relative to CONTENT>.png), and every video clip (.mp4 .m4v "
        ".mov .mkv .webm .avi), one mp4 each as 'tfstyle video' makes it (<path>.mp4; "
        "--temporal-weight, --frame-iterations); inputs that fail are listed in "
        f"OUT_DIR/{batch_files.DEAD_LETTER}; outputs that exist are skipped. Beam pipeline "
        "options go after '--'. Needs Apache Beam: pip install \"tfstyle[beam]\".",
    )
    p.add_argument(
        "content",
        help="a directory (every image file under it), a glob (quoted; ** crosses "
        "directories) or one image; a local path or a Beam URL (gs://...)",
    )
    p.add_argument("style", nargs="*", help="style image file(s)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output directory")
    p.add_argument(
        "--model", default=None, metavar="MODEL_DIR",
        help="paint each image in one pass of the real-time network trained in MODEL_DIR "
        "(tfstyle train; a local directory) instead of the optimisation: no style image; of "
        "the options, --size only",
    )  # fmt: skip
    flags.add_options(p, BATCH_OPTIONS)
    flags.add_options(p, rows=tuple(options.VIDEO_OPTIONS.values()))  # for clips among the inputs
    p.add_argument(
        "--mask-dir",
        default=None,
        metavar="DIR",
        help="masks per input: CONTENT/x/a.jpg takes DIR/x/a.jpg.mask1.png, .mask2.png, ... (one "
        "per style, any image extension) and DIR/x/a.jpg.content.png (its content map) where "
        "they exist, --mask and --content-mask where not",
    )
    p.add_argument(
        "--runner",
        default=None,
        help="Beam runner: DataflowRunner, FlinkRunner, SparkRunner, ... (default: local)",
    )
    p.add_argument(
        "--workers",
        type=flags.integer,
        default=None,
        metavar="N",
        help=f"local worker processes (default {DEFAULT_WORKERS}: TensorFlow already uses every "
        "core)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing when every input is done or skipped (no progress bar, no closing line)",
    )
    parse = p.parse_known_args

    def parse_known_args(args=None, namespace=None):
        args = list(args or [])
        cut = args.index("--") if "--" in args else len(args)
        namespace, extras = parse(args[:cut], namespace)
        namespace.beam_args = args[cut + 1 :]
        return namespace, extras

    p.parse_known_args = parse_known_args  # argparse would take what follows "--" as styles
    return p


def main(args: argparse.Namespace) -> int:
    """The ``batch`` command: 0 when every input is done or skipped, 1 when some failed (they
    are in OUT_DIR/failed.jsonl) or on bad input, 130 on Ctrl-C, 143 on SIGTERM (which stops it
    as Ctrl-C does). It ends with one line of counts (with ``-q``, only when some input
    failed)."""
    import signal
    import sys

    values = {name: getattr(args, name) for name in BATCH_OPTIONS + VIDEO_OPTIONS}
    try:
        # SIGTERM (a scheduler, kill) stops the run as Ctrl-C does, cleanly
        with interrupts.sigterm_as_interrupt():
            counts = run(
                args.content, args.style, args.output, runner=args.runner, workers=args.workers,
                pipeline_args=args.beam_args, progress=not args.quiet, mask_dir=args.mask_dir,
                model=args.model, **values,
            )  # fmt: skip
    except KeyboardInterrupt as stop:  # run() has removed its own temporary files
        terminated = isinstance(stop, interrupts.Terminated)
        print(
            f"tfstyle: {'terminated' if terminated else 'interrupted'}; the outputs written are "
            "complete: run the same command again to do the rest",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM if terminated else 130
    if args.quiet and not counts.failed:
        return 0
    failed = f"{counts.failed} failed"
    if counts.failed:
        dead_letter = batch_files.file_systems().join(
            batch_files.absolute(args.output), batch_files.DEAD_LETTER
        )
        failed += f" (listed in {dead_letter})"
    print(
        flags.printable(
            f"tfstyle: {counts.done} done, {counts.skipped} skipped, {failed}; network built "
            f"{counts.models_loaded}x, style targets computed {counts.style_targets}x"
        ),
        file=sys.stderr,
    )  # the output directory's name escaped: it may hold a terminal's escape sequences
    return 1 if counts.failed else 0


def _beam():
    """``apache_beam`` and its ``FileSystems``, or an ``ImportError`` saying what to install."""
    try:
        import apache_beam
    except ImportError:
        raise ImportError(batch_files.INSTALL_HINT) from None
    return apache_beam, batch_files.file_systems()


def _check_beam_args(runner: str | None, args: Sequence[str]) -> None:
    """Refuse Beam pipeline options that Beam cannot parse, or does not know, in one line
    (Beam's own parser prints its usage and exits)."""
    import contextlib
    import logging

    from apache_beam.options.pipeline_options import PipelineOptions

    class Unknown(logging.Handler):
        def emit(self, record):
            if "Discarding" in record.getMessage():
                unknown = record.args[0] if record.args else record.getMessage()
                raise ValueError(f"beam options: not understood: {' '.join(map(str, unknown))}")

    handler = Unknown()
    logger = logging.getLogger("apache_beam.options.pipeline_options")
    logger.addHandler(handler)
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            PipelineOptions(list(args), **({"runner": runner} if runner else {})).get_all_options()
    except SystemExit:
        lines = [line for line in said.getvalue().splitlines() if "error:" in line]
        detail = lines[-1].split("error:", 1)[1].strip() if lines else said.getvalue().strip()
        raise ValueError(f"beam options: {detail}") from None
    finally:
        logger.removeHandler(handler)


def _read(path: str, name: str) -> bytes:
    """The bytes of an image file (at most what ``load_image`` takes); errors name it ``name``."""
    limit = images._MAX_ENCODED_BYTES  # noqa: SLF001 (load_image's limit, for bytes read here)
    return batch_files.read(path, name, limit)


def _check_realtime(model: str, styles: list, values: dict, mask_dir) -> None:
    """A batch with a real-time ``model``: no style, no masks, of the options only ``size``;
    the model directory readable (``realtime.describe``)."""
    from tfstyle import realtime

    if styles:
        raise ValueError(f"style: {styles[0]!r} given with a model; the network trained in "
                         f"{model!r} has its style (give no style image)")  # fmt: skip
    defaults = {**options.DEFAULTS, **{n: o.default for n, o in options.VIDEO_OPTIONS.items()}}
    given = options.first_given({"mask_dir": mask_dir, **values}, {"mask_dir": None, **defaults},
                                allowed=("size",))  # fmt: skip
    if given:
        raise ValueError(f"{given}: does not apply with a model (of the options, only size "
                         "does: the rest were fixed when the network was trained)")  # fmt: skip
    realtime.describe(model)


def _stylizer(style: Sequence[str], values: dict) -> api.Stylizer:
    """The ``Stylizer`` for style files and option values, files read through ``_read``."""
    init = values.get("init")
    if isinstance(init, str) and init not in options.INITS:
        values = {**values, "init": _read(init, "init")}
    options.options_from(values, BATCH_OPTIONS)  # an unknown name named, not a TypeError
    names = ["style"] if len(style) == 1 else [f"style[{k}]" for k in range(len(style))]
    sources = [_read(path, name) for path, name in zip(style, names, strict=True)]
    return api.Stylizer(sources, progress=False, **values)


def _video_options(values: dict) -> dict:
    """``VIDEO_OPTIONS`` values, checked (each a one-line error naming it)."""
    for name, value in values.items():
        options.VIDEO_OPTIONS[name].check(value)
    return dict(values)


def _message(err: Exception) -> str:
    """One line saying what went wrong (tfstyle's own errors are already one line)."""
    import tensorflow as tf

    if isinstance(err, tf.errors.OpError):
        return checks.message_of(err)
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    line = lines[0] if lines else "failed"
    return line if isinstance(err, (ValueError, OSError)) else f"{type(err).__name__}: {line}"


class _Failure(NamedTuple):
    """The inference of an input that failed: why."""

    error: str


class _Model:
    """What ``StyleModelHandler.load_model`` returns: the ``Stylizer``, and how much of its
    work the metrics have counted (a model is shared by the threads of a worker)."""

    def __init__(self, stylizer: api.Stylizer | None, options: dict | None = None, video=None,
                 realtime: str | None = None):  # fmt: skip
        self.stylizer = stylizer
        #: A real-time model directory whose network paints instead (then no ``stylizer``).
        self.realtime = realtime
        #: The options (``BATCH_OPTIONS``) and ``options.VIDEO_OPTIONS`` values, for clips.
        self.options, self.video = dict(options or {}), dict(video or {})
        self.lock = threading.Lock()
        self.loads, self.targets = 1, 0  # not yet counted: this load; counted: no targets

    def count(self) -> None:
        """Add this model's load (once) and new style-target computations to the metrics."""
        from apache_beam.metrics import Metrics

        with self.lock:
            computed = 0 if self.stylizer is None else self.stylizer.style_targets_computed
            Metrics.counter(NAMESPACE, "models_loaded").inc(self.loads)
            Metrics.counter(NAMESPACE, "style_targets").inc(computed - self.targets)
            self.loads, self.targets = 0, computed


def _stylize(model: _Model, job: tuple) -> bytes | _Failure:
    """The PNG of ``job``'s input path stylised, or why it failed; ``job`` is (input path,
    output path, its masks: ``Stylize``'s). An output name the file system cannot have, or a
    FIFO, a device or a link to nothing already at that name (``files.check_replaceable``),
    fails before the work."""
    path, output, (own, content_mask) = job
    try:
        if "://" not in output:
            files.check_name_length(output, "output")
            files.check_replaceable(output)
            if os.path.lexists(output):  # complete() skipped what batch writes: not its own
                raise ValueError(
                    f"output: {output!r} exists and is empty (or a link to an empty file); batch's "
                    "outputs appear complete: remove it to have it written"
                )
        if isinstance(own, str):  # its masks could not be told (batch_files.masks_for)
            raise ValueError(own)
        if model.realtime is not None:
            return _stylize_realtime(model, path)
        if batch_files.is_video(path):
            return _stylize_clip(model, path)
        masks = None if own is None else [_read(m, f"masks[{k}]") for k, m in enumerate(own)]
        content_mask = None if content_mask is None else _read(content_mask, "content_mask")
        image = model.stylizer(_read(path, "content"), masks=masks, content_mask=content_mask)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    except Exception as err:  # any input's failure is that input's, not the batch's
        return _Failure(_message(err))
    finally:
        model.count()


def _stylize_realtime(model: _Model, path: str) -> bytes:
    """The PNG of the image ``path`` painted by the real-time network."""
    from tfstyle import realtime

    if batch_files.is_video(path):
        raise ValueError("content: a video clip; a batch with a model paints images only")
    image = realtime.stylize(_read(path, "content"), model.realtime, model.options["size"])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


#: The largest clip batch reads from a remote file system into a local file (a local clip is
#: read where it is, a frame at a time).
MAX_REMOTE_CLIP_BYTES = 4 * 2**30


def _stylize_clip(model: _Model, path: str) -> bytes:
    """The mp4 of the clip ``path`` stylised by ``tfstyle.video`` with the model's style
    images and options, frames in order (a remote clip is copied to a local file first)."""
    import tempfile

    from tfstyle import clip

    stylizer = model.stylizer
    styles = stylizer.styles[0] if len(stylizer.styles) == 1 else list(stylizer.styles)
    with tempfile.TemporaryDirectory(prefix="tfstyle-clip-") as tmp:
        local = path
        if "://" in path:
            local = os.path.join(tmp, "clip" + os.path.splitext(path)[1].lower())
            with open(local, "wb") as f:
                f.write(batch_files.read(path, "content", MAX_REMOTE_CLIP_BYTES))
        out = os.path.join(tmp, "out.mp4")
        try:
            clip.video(local, styles, out, progress=False, **model.options, **model.video)
        except (ValueError, OSError) as err:  # named by the input, not the local copy
            raise type(err)(str(err).replace(local, path)) from None
        with open(out, "rb") as f:
            return f.read()


def _write(result) -> list[dict]:
    """Write a ``PredictionResult``'s PNG atomically; a failure's record for the dead letter."""
    from apache_beam.metrics import Metrics

    path, output, _ = result.example
    error = result.inference.error if isinstance(result.inference, _Failure) else None
    if error is None:
        try:
            batch_files.write(result.inference, output)
        except Exception as err:
            error = f"{output}: cannot write the output ({_message(err)})"
    if error is not None:
        Metrics.counter(NAMESPACE, "failed").inc()
        return [{"input": path, "error": error}]
    Metrics.counter(NAMESPACE, "done").inc()
    return []


def _beam_classes() -> None:
    """Define ``StyleModelHandler`` and ``Stylize``, which subclass Beam's classes, as module
    globals (``__getattr__`` calls this on first use)."""
    global StyleModelHandler, Stylize
    if "Stylize" in globals():
        return
    beam, FileSystems = _beam()
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

    class StyleModelHandler(ModelHandler):
        """A Beam ``ModelHandler`` that stylises one image per call, for ``RunInference``.

        An example is ``(input path, output path, its masks)`` (``batch_files.masks_for``'s
        answer, or an error message in place of the masks); its inference is the PNG bytes of the
        stylised input, or a ``_Failure`` saying why not. ``load_model`` (once per worker
        process: Beam shares the model between the worker's threads) reads the style images
        and builds the network; the style targets are then computed once per scale.

        The options are given here, not as ``inference_args``: the network and the style
        targets depend on them, so one handler is one set of options.

        Args:
            style: the style image paths or URLs.
            options: the options of ``tfstyle.transfer`` (``BATCH_OPTIONS``).
        """

        def __init__(self, style: Sequence[str], options: dict, video: dict | None = None,
                     model: str | None = None):  # fmt: skip
            super().__init__(min_batch_size=1, max_batch_size=1)  # images differ in size
            self.style, self.options = list(style), dict(options)
            self.video = _video_options(video or {})
            self.model = model

        def load_model(self) -> _Model:
            if self.model is not None:  # a real-time network, loaded once per worker
                from tfstyle import realtime

                realtime.network(self.model)
                size = self.options.get("size", options.DEFAULTS["size"])
                return _Model(None, {"size": size}, realtime=self.model)
            stylizer = _stylizer(self.style, self.options)
            stylizer.network  # noqa: B018 (builds it now: once per worker)
            return _Model(stylizer, self.options, self.video)

        def run_inference(self, batch, model: _Model, inference_args=None):
            return [PredictionResult(job, _stylize(model, job)) for job in batch]

        def validate_inference_args(self, inference_args) -> None:
            if inference_args:
                raise ValueError(
                    "StyleModelHandler takes its options when made, not as inference_args; "
                    f"got {sorted(inference_args)}"
                )

    class Stylize(beam.PTransform):
        """Stylise a ``PCollection`` of input paths (files under ``root``), one PNG each under
        ``out_dir`` (``batch_files.output_path``); returns the ``PCollection`` of failures, one
        dict ``{"input": path, "error": message}`` each. Outputs that exist are skipped.

        The options and style images are checked when it is made.

        Args:
            style: the style image path or URL, or a list of them to blend.
            out_dir: the output directory.
            root: the directory the inputs are under; their paths relative to it name the
                outputs.
            **options: the options of ``tfstyle.transfer`` (``BATCH_OPTIONS``).

        Example:
            >>> failures = (
            ...     pipeline
            ...     | beam.Create(["gs://b/in/a.jpg", "gs://b/in/b.jpg"])
            ...     | Stylize("gs://b/style.jpg", "gs://b/out", root="gs://b/in", size=256)
            ... )
        """

        def __init__(
            self, style: str | Sequence[str], out_dir: str, *, root: str,
            mask_dir: str | None = None, model: str | None = None, **options,
        ):  # fmt: skip
            super().__init__()
            self.style = [style] if isinstance(style, str) else list(style or [])
            video = {n: options.pop(n) for n in list(options) if n in VIDEO_OPTIONS}
            self.out_dir, self.root, self.options = out_dir, root, options
            self.mask_dir, self.video, self.model = mask_dir, _video_options(video), model
            if model is None:
                _stylizer(self.style, options)
            else:
                _check_realtime(model, self.style, options, mask_dir)

        def expand(self, paths):
            out_dir, root, mask_dir, styles = self.out_dir, self.root, self.mask_dir, self.style

            def to_do(path: str) -> list[tuple]:
                from apache_beam.metrics import Metrics

                output = batch_files.output_path(path, root, out_dir)
                if batch_files.complete(output):  # outputs appear only when they are complete
                    Metrics.counter(NAMESPACE, "skipped").inc()
                    return []
                found = (None, None)
                if mask_dir is not None:
                    try:
                        found = batch_files.masks_for(path, root, mask_dir, len(styles))
                    except ValueError as err:  # that input fails, named
                        found = (str(err), None)
                return [(path, output, found)]

            return (
                paths
                | "ToDo" >> beam.FlatMap(to_do)
                | "Spread" >> beam.Reshuffle()  # over the workers: the inputs come as one bundle
                | "Stylize"
                >> RunInference(StyleModelHandler(self.style, self.options, self.video, self.model))
                | "Write" >> beam.FlatMap(_write)
            )

    StyleModelHandler.__module__ = Stylize.__module__ = __name__


def __getattr__(name: str):
    """``StyleModelHandler`` and ``Stylize`` are defined on first use: they subclass Beam's
    classes, and the CLI imports this module for every command (to build the ``batch``
    command's parser), which must not import Apache Beam (about 1.5 s) for the others."""
    if name in ("StyleModelHandler", "Stylize"):
        _beam_classes()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
