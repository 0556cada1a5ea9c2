"""Command line: ``tfstyle transfer CONTENT STYLE [STYLE ...] -o OUT.png [options]``.

The options' flags, defaults and help texts come from the options table
(``tfstyle.options.OPTIONS``), so the CLI never repeats a default.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os
import re
import signal
import sys
import tempfile
from collections.abc import Sequence

from tfstyle import flags, signature  # no TensorFlow: it loads after the line below

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is noise on a command line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: The help of the serving commands' flags that are not options (those come from the table).
_SERVING_HELP = {
    "model": f"model name on the server. Defaults to {signature.MODEL_NAME} (for a real-time "
    f"model: {signature.REALTIME_MODEL_NAME}).",
    "version": "model version; the server's latest when not given.",
    "timeout": "deadline in seconds of each request (finite, > 0); by default it grows with the "
    "request's steps and size (client.deadline_for).",
    "server": "host:port of the gRPC API. Defaults to localhost:8500.",
}

# -q as in cp or pip -q: silence on success; errors and Ctrl-C are still reported, one line.
_QUIET_HELP = "print nothing on success (no progress bar, no 'wrote' line)"


def build_parser() -> argparse.ArgumentParser:
    from tfstyle import app, options

    parser = flags.Parser(prog="tfstyle", description="Neural style transfer on TensorFlow.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=flags.Parser)

    p = commands.add_parser(
        "transfer",
        help="stylise an image",
        description=(
            "Paint CONTENT in the style of STYLE (several styles are blended, or each put in "
            "its region with --mask)."
        ),
    )
    p.add_argument("content", help="content image file")
    p.add_argument("style", nargs="*", help="style image file(s)")
    p.add_argument("-o", "--output", required=True, help="output image file (e.g. out.png)")
    p.add_argument(
        "--model", default=None, metavar="MODEL_DIR",
        help="paint with the real-time network trained in MODEL_DIR (tfstyle train) in one "
        "pass, instead of the optimisation: no style image; of the options, --size only",
    )  # fmt: skip
    flags.add_options(p)
    p.add_argument(
        "--save-every",
        type=flags.integer,
        default=0,
        metavar="N",
        help="also write the image every N steps (N at most --iterations), as OUT.NNNN.png",
    )
    p.add_argument("-q", "--quiet", action="store_true", help=_QUIET_HELP)
    p.add_argument("-v", "--verbose", action="store_true", help="say which precision runs, and why")

    from tfstyle import export

    p = commands.add_parser(
        "export",
        help="write a SavedModel for TensorFlow Serving",
        description=inspect.getdoc(export.export_saved_model).split("\n")[0],
    )
    limits = options.EXPORT_LIMITS  # the export's parameters beside the options
    p.add_argument(
        "--model-dir",
        default=None,
        help=f"the model's base path (what --model_base_path points at). Defaults to "
        f"{signature.MODEL_DIR}.",
    )
    for name, row in limits.items():
        p.add_argument(
            "--" + name.replace("_", "-"), type=flags.integer, default=row.default,
            help=f"{row.help} Defaults to {row.default}.",
        )  # fmt: skip
    p.add_argument("--no-warmup", action="store_true", help="do not write warm-up requests")
    p.add_argument(
        "--model", default=None, metavar="MODEL_DIR",
        help="export the real-time network trained in MODEL_DIR (tfstyle train) instead of the "
        "optimisation: a batch of encoded images in, their PNGs out (up to --max-size, 2048 by "
        "default); the option flags do not apply. --model-dir defaults to "
        "saved_models/tfstyle_realtime then",
    )  # fmt: skip
    flags.add_options(p, options.EXPORT_OPTIONS, defaults=export.EXPORT_DEFAULTS)

    from tfstyle import client

    p = commands.add_parser(
        "request",
        help="stylise through a TF Serving model server",
        description="Send CONTENT and STYLE to a model server over gRPC (or REST with --rest) "
        "and write the stylised image. The run goes in requests of --chunk steps, each resuming "
        "from the image the last returned: a progress bar over the whole run, Ctrl-C lets the "
        "request in flight finish and writes the image so far (twice: at once), and a failed "
        "request is tried again on the next server.",
    )
    helps = _SERVING_HELP
    p.add_argument("content", help="content image file")
    p.add_argument(
        "style", nargs="?", default=None,
        help="style image file; none: the model is a real-time network (tfstyle export "
        "--model), whose style is its own, named tfstyle_realtime unless --model says",
    )  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="output image file (e.g. out.png)")
    p.add_argument(
        "--server",
        default=None,
        help="host:port of a gRPC API, or several joined by commas (a:8500,b:8500): a failed "
        "request is tried again on the next. Defaults to localhost:8500.",
    )
    p.add_argument(
        "--rest",
        metavar="URL",
        default=None,
        help="use the REST API at URL (e.g. http://localhost:8501; several joined by commas) "
        "instead of gRPC",
    )
    p.add_argument(
        "--iterations",
        type=flags.integer,
        default=options.DEFAULTS["iterations"],
        help=options.BY_NAME["iterations"].help,
    )
    p.add_argument(
        "--chunk",
        type=flags.integer,
        default=client.DEFAULT_CHUNK,
        metavar="N",
        help=f"steps per request, or 0 for the whole run in one request. Defaults to "
        f"{client.DEFAULT_CHUNK}.",
    )
    p.add_argument("--model", default=None, help=helps["model"])
    p.add_argument("--version", type=flags.integer, default=None, help=helps["version"])
    p.add_argument(
        "--signature",
        default=None,
        help="signature name of a --chunk 0 request; default serving_default, or stylize when "
        "any option below is given",
    )
    p.add_argument("--timeout", type=flags.number, default=None, help=helps["timeout"])
    p.add_argument("-q", "--quiet", action="store_true", help=_QUIET_HELP)
    flags.add_options(p, options.REQUEST_OPTIONS, unset=True)
    for mask in signature.MASK_INPUTS:
        p.add_argument(f"--{mask.name.replace('_', '-')}", metavar="PATH", help=mask.help)

    p = commands.add_parser("status", help="model status from a model server (gRPC)")
    helps = _SERVING_HELP
    p.add_argument("--server", default="localhost:8500", help=helps["server"])
    p.add_argument("--model", default=signature.MODEL_NAME, help=helps["model"])
    p.add_argument("--version", type=flags.integer, default=None, help=helps["version"])

    from tfstyle import batch  # imports Apache Beam only when a batch runs

    batch.add_parser(commands)

    p = commands.add_parser(
        "video",
        help="stylise a video clip without flicker",
        description=(
            "Paint every frame of VIDEO in the style of STYLE, each frame after the first "
            "starting from the previous result warped by the optical flow and held to it by a "
            "temporal loss (Ruder et al. 2016). The frame rate is kept and the audio copied. "
            "Finished frames are kept in OUT.tfstyle-work: Ctrl-C writes a playable "
            "OUT.partial.EXT of them, and the same command resumes. Needs PyAV and OpenCV: "
            'pip install "tfstyle[video]".'
        ),
    )
    p.add_argument("video", help="video file (mp4, webm, mov, mkv, gif, ...) or folder of frames")
    p.add_argument("style", nargs="+", help="style image file(s)")
    p.add_argument(
        "-o", "--output", required=True,
        help="output video (.mp4 .m4v .mov .mkv: H.264; .webm: VP9; .gif) or, without an "
        "extension, a folder of PNG frames",
    )  # fmt: skip
    flags.add_options(p)
    flags.add_options(p, rows=tuple(options.VIDEO_OPTIONS.values()))
    p.add_argument(
        "--max-frames", type=flags.integer, default=None, metavar="N",
        help="stop after N frames (default: all)",
    )  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help=_QUIET_HELP)

    p = commands.add_parser(
        "app",
        help="a web page to try it (Gradio)",
        description=(
            "Serve a page to upload a content and style images, watch the image being painted, "
            "stop it, and download the result with the options used. It runs in this process, "
            "or is the front end of a TensorFlow Serving deployment (--server or --rest). The "
            "option flags set the page's starting values. Needs Gradio: "
            'pip install "tfstyle[app]".'
        ),
    )
    p.add_argument("--port", type=flags.integer, default=7860, help="port (default: 7860)")
    p.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0: every "
        "interface)",
    )  # fmt: skip
    p.add_argument(
        "--server",
        default=None,
        metavar="HOST:PORT",
        help="run on a model server over gRPC (one style image per run)",
    )
    p.add_argument("--rest", default=None, metavar="URL", help="run on a model server over REST")
    p.add_argument("--share", action="store_true", help="also a public gradio.live link")
    flags.add_options(p, app.flag_names(), defaults=app.PAGE_DEFAULTS)

    from tfstyle import realtime

    p = commands.add_parser(
        "train",
        help="train a real-time network for a style",
        description=(
            "Train a feed-forward network that paints any photo in the style of STYLE in one "
            "pass (Johnson et al. 2016), with the optimisation's objective, on the photos under "
            "--images. Checkpoints go in MODEL_DIR: Ctrl-C keeps the steps done, and the same "
            "command goes on from them (with a larger --steps, it trains longer)."
        ),
    )
    p.add_argument("style", help="style image file")
    p.add_argument("-o", "--output", required=True, metavar="MODEL_DIR",
                   help="the model directory (made if needed)")  # fmt: skip
    p.add_argument("--images", required=True, metavar="DIR",
                   help="folder of photos to train on (searched recursively)")  # fmt: skip
    flags.add_options(p, rows=tuple(options.TRAIN_OPTIONS.values()))
    flags.add_options(p, realtime.OBJECTIVE_OPTIONS)
    p.add_argument("-q", "--quiet", action="store_true", help=_QUIET_HELP)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 on success, 1 on any bad input, 130 on Ctrl-C,
    143 when ``batch`` is stopped by SIGTERM)."""
    with _native_stderr_quiet(), _unfailing_streams():
        return _main(argv)


class _Unfailing:
    """A text stream whose writes never fail: a progress bar or a "wrote" line that cannot be
    shown (stderr on a full disk, a pipe whose reader left, a descriptor open read-only) must
    not fail a run, or lose its image."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _unfailing_streams():
    """``sys.stdout`` and ``sys.stderr`` as ``_Unfailing`` streams while a command runs."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (None if s is None else _Unfailing(s) for s in saved)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _main(argv: Sequence[str] | None) -> int:
    import logging
    import warnings

    # Only tfstyle's own lines on stderr: no library warnings or log records (matplotlib's
    # cache-directory notices, TensorFlow's Python-side warnings, ...).
    warnings.simplefilter("ignore")
    root = logging.getLogger()
    if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
        root.addHandler(logging.NullHandler())
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from tfstyle import interrupts

    try:
        with interrupts.stops_deferred():  # Ctrl-C half-way through an import breaks it
            parser = build_parser()
            args = parser.parse_args(argv)
            import tensorflow as tf

            from tfstyle import batch, checks, client  # Keras and gRPC too

            if args.command == "batch":
                with contextlib.suppress(ImportError):  # said by batch, in its words
                    import apache_beam  # noqa: F401
    except SystemExit as exit_:  # --help, or a usage error already reported in one line
        return int(exit_.code or 0)
    except interrupts.Terminated:
        return _interrupted("terminated; nothing written", 128 + signal.SIGTERM)
    except KeyboardInterrupt:
        return _interrupted("interrupted; nothing written")

    run = {"transfer": _transfer, "export": _export, "request": _request, "status": _status,
           "batch": batch.main, "video": _video, "app": _app, "train": _train}  # fmt: skip
    try:
        if args.command in ("transfer", "batch", "video", "app", "train"):
            from tfstyle import memory, precision

            memory.check_is_on()  # said before any work, not after the progress bar starts
            precision.check_environment()  # TFSTYLE_PRECISION too
        with interrupts.sigterm_as_interrupt():  # SIGTERM stops a run as Ctrl-C does
            return run[args.command](args)
    except client.RunFailed as err:  # a part of a served run: keep what the others did
        if err.image is None:
            return flags.fail(str(err))
        from tfstyle import files

        files.save_image(err.image, args.output)
        return flags.fail(f"{err}; wrote the image after step {err.step} to {args.output}")
    except (ValueError, OSError, ImportError, client.ServingError) as err:
        # FileNotFoundError, FileExistsError and WeightsDownloadError are OSErrors.
        return flags.fail(_as_typed(str(err), parser, args.command))
    except tf.errors.OpError as err:  # e.g. a file system error inside TensorFlow
        return flags.fail(checks.message_of(err))
    except interrupts.Interrupted as stop:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second press must not lose the image
        said, code = (
            ("terminated", 128 + signal.SIGTERM) if stop.terminated else ("interrupted", 130)
        )
        output = getattr(args, "output", None)
        if output and stop.step > 0 and stop.image is not None:
            from tfstyle import files

            files.save_image(stop.image, output)
            return _interrupted(
                f"{said} after step {stop.step} of {stop.iterations}; "
                f"wrote the image so far to {output}", code,
            )  # fmt: skip
        return _interrupted(f"{said} after step {stop.step}; nothing written", code)
    except interrupts.Terminated:
        return _interrupted("terminated; nothing written", 128 + signal.SIGTERM)
    except KeyboardInterrupt:
        return _interrupted("interrupted; nothing written")


def _say(line: str) -> None:
    """A line on stderr, its control characters escaped (a file name may hold a terminal's
    escape sequences)."""
    print(flags.printable(line), file=sys.stderr)


def _interrupted(message: str, code: int = 130) -> int:
    """Report Ctrl-C (or SIGTERM); exit at once if a graph call is still finishing in the
    background, what it had begun to write removed."""
    from tfstyle import files, interrupts

    flags.fail(message)
    if interrupts.busy():
        files.remove_unfinished()  # an export's version directory, half written
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # do not wait for (or tear TensorFlow down under) the abandoned call
    return code  # ``entry`` exits at once


@contextlib.contextmanager
def _native_stderr_quiet():
    """Keep what native code writes to file descriptor 2 (TensorFlow's C++ and absl start-up
    lines, which ``TF_CPP_MIN_LOG_LEVEL`` does not silence before absl is initialised; libjpeg's
    and giflib's warnings) off the terminal, while Python's ``sys.stderr`` (tfstyle's lines,
    the progress bar) still reaches it. What was held back is replayed if the command fails
    unexpectedly, so a broken installation still shows why."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. some notebooks): nothing to hide
        yield
        return
    python_stderr = sys.stderr
    try:
        on_fd2 = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # e.g. captured by a test runner
        on_fd2 = False
    if on_fd2:
        sys.stderr = open(  # noqa: SIM115 (closed below)
            os.dup(saved), "w", encoding=python_stderr.encoding, errors="backslashreplace",
            buffering=1,
        )  # fmt: skip
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException as err:
            if not isinstance(err, (SystemExit, KeyboardInterrupt)):
                held.seek(0)
                os.write(saved, held.read())
            raise
        finally:
            if on_fd2:
                with contextlib.suppress(OSError, ValueError):  # its last flush may fail
                    sys.stderr.close()
                sys.stderr = python_stderr
            os.dup2(saved, 2)
            os.close(saved)


def _transfer(args: argparse.Namespace) -> int:
    from tfstyle import api, files, images, options

    if args.model is not None:
        return _transfer_realtime(args)
    if not args.style:
        raise ValueError("style: give at least one style image (or --model MODEL_DIR, a "
                         "network trained by tfstyle train)")  # fmt: skip
    if args.save_every < 0:
        raise ValueError(f"--save-every must be >= 0; got {args.save_every}")
    if 0 <= args.iterations < args.save_every:  # a bad --iterations: said by its own check
        raise ValueError(
            f"--save-every must be at most --iterations ({args.iterations}), or 0 for no "
            f"snapshots; got {args.save_every}: no image would be saved along the way"
        )
    values = {o.name: getattr(args, o.name) for o in options.OPTIONS if o.flag}
    masks = [*(args.masks or []), *(args.style_masks or []), args.content_mask]
    inputs = [args.content, *args.style, args.init, args.weights, *masks]
    files.check_output(args.output, inputs, size=args.size)
    stem, ext = os.path.splitext(args.output)
    if args.save_every:  # OUT.NNNN.png for every N steps must not be an input either
        steps = range(args.save_every, args.iterations + 1, args.save_every)
        if steps:  # the longest name is the last step's
            files.check_name_length(f"{stem}.{steps[-1]:04d}{ext}", "--save-every")
        # What a snapshot would replace is there already: its name's pattern, listed (not one
        # name per step: --iterations may be 2**31 - 1).
        snapshot = re.compile(rf"{re.escape(os.path.basename(stem))}\.(\d{{4,}}){re.escape(ext)}")
        saved = [
            os.path.join(os.path.dirname(stem), entry)
            for entry in sorted(os.listdir(os.path.dirname(os.path.abspath(args.output))))
            if (m := snapshot.fullmatch(entry))
            and m.group(1) == f"{int(m.group(1)):04d}" and int(m.group(1)) in steps
        ]  # fmt: skip
        for path in saved:  # the same file by any name (a link, a linked directory)
            files.check_replaceable(path, "--save-every")
            for source in inputs:
                if isinstance(source, str) and files.same_file(path, source):
                    raise ValueError(f"--save-every: it would write over the input {source!r}")
    if args.verbose:
        from tfstyle import pipeline, precision

        chosen = pipeline.get(options.Options(**values)).precision
        cache = flags.printable(precision.cache_path())
        print(f"precision {chosen} (cache: {cache})", file=sys.stderr)

    def save(step: int, losses: dict, image) -> None:
        files.save_image(images.to_pil(image), f"{stem}.{step:04d}{ext}")

    style = args.style if len(args.style) > 1 else args.style[0]
    result = api.transfer(
        args.content,
        style,
        callback=save if args.save_every else None,
        callback_every=args.save_every or 10,
        progress=not args.quiet,
        **values,
    )
    files.save_image(result, args.output)
    if not args.quiet:
        _say(f"wrote {args.output}")
    return 0


def _transfer_realtime(args: argparse.Namespace) -> int:
    """``tfstyle transfer CONTENT --model MODEL_DIR``: one pass of the trained network."""
    from tfstyle import files, options, realtime

    if args.style:
        raise ValueError(f"style: {args.style[0]!r} given with --model; the network trained in "
                         f"{args.model!r} has its style (give no style image)")  # fmt: skip
    values = {o.name: getattr(args, o.name) for o in options.OPTIONS if o.flag}
    given = options.first_given(values, options.DEFAULTS, allowed=("size",))
    if given or args.save_every:
        flag = flags.flag_name(options.BY_NAME[given]) if given else "--save-every"
        raise ValueError(f"{flag}: does not apply to --model (of the options, only --size "
                         "does: the rest were fixed when the network was trained)")  # fmt: skip
    files.check_output(args.output, [args.content, args.model], size=args.size)
    files.check_not_inside(args.output, args.model)
    files.save_image(realtime.stylize(args.content, args.model, size=args.size), args.output)
    if not args.quiet:
        _say(f"wrote {args.output}")
    return 0


def _video(args: argparse.Namespace) -> int:
    from tfstyle import clip, options

    values = {o.name: getattr(args, o.name) for o in options.OPTIONS if o.flag}
    values.update({name: getattr(args, name) for name in options.VIDEO_OPTIONS})
    style = args.style if len(args.style) > 1 else args.style[0]
    import warnings

    from tfstyle import interrupts

    try:
        with interrupts.sigterm_as_interrupt(), warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", clip.ShortClipWarning)  # the rest stay silent
            clip.video(
                args.video, style, args.output, max_frames=args.max_frames,
                progress=not args.quiet, **values,
            )  # fmt: skip
    except clip.VideoInterrupted as stop:
        return _interrupted(str(stop), 128 + signal.SIGTERM if stop.terminated else 130)
    if not args.quiet:
        _say(f"wrote {args.output}")
    for warning in said:
        if issubclass(warning.category, clip.ShortClipWarning):
            _say(f"tfstyle: warning: {warning.message}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from tfstyle import interrupts, options, realtime

    values = {name: getattr(args, name) for name in realtime.OBJECTIVE_OPTIONS}
    values.update({name: getattr(args, name) for name in options.TRAIN_OPTIONS})
    try:
        realtime.train(args.style, args.images, args.output, progress=not args.quiet, **values)
    except interrupts.Interrupted as stop:
        return _interrupted(
            f"{'terminated' if stop.terminated else 'interrupted'} after step {stop.step} of "
            f"{stop.iterations}; the steps done are kept in {args.output}, and the same "
            "command goes on from them",
            128 + signal.SIGTERM if stop.terminated else 130,
        )
    if not args.quiet:
        _say(f"wrote {args.output}")
    return 0


def _check_server_flags(args: argparse.Namespace) -> None:
    """``--server`` or ``--rest``, not both, and neither empty (an empty shell variable is not
    the default)."""
    if args.server is not None and args.rest is not None:
        raise ValueError("--server is for gRPC, --rest for REST: give one of them")
    from tfstyle import client

    for flag, value, form in (("--server", args.server, "HOST:PORT"),
                              ("--rest", args.rest, "a URL")):  # fmt: skip
        if value is not None and not value.strip():
            raise ValueError(f"{flag} must be {form}; got {value!r}")
    try:  # the client's own checks, before a page starts that could not reach the server
        if args.server is not None:
            for server in client.servers_of(args.server):
                client.check_server(server)
        if args.rest is not None:
            client.urls_of(args.rest)
    except ValueError as err:
        raise ValueError(f"{'--rest' if args.rest is not None else '--server'}: {err}") from None


def _app(args: argparse.Namespace) -> int:
    import socket
    import threading

    from tfstyle import app, interrupts, options

    app.gradio()  # what to install, before anything else
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be between 1 and 65535; got {args.port}")
    _check_server_flags(args)
    if not args.host.strip():
        raise ValueError("--host must not be empty")
    try:
        socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise ValueError(
            f"--host must be an address or host name of this machine; got {args.host!r} "
            f"({getattr(err, 'strerror', None) or err})"
        ) from None
    defaults = {name: getattr(args, name) for name in app.flag_names()}
    options.Options(**defaults)  # a bad flag: one line now, not a page that cannot run
    if defaults["init"] not in options.INITS:  # a control's value, not a file on the server
        allowed = ", ".join(options.INITS)
        raise ValueError(f"--init: the page starts from one of {allowed} (a visitor chooses); "
                         f"got {defaults['init']!r}")  # fmt: skip
    if args.server or args.rest:
        engine = app.Served(server=args.server, url=args.rest)
    else:
        engine = app.InProcess(weights=defaults.pop("weights"))
    code = 0
    with interrupts.sigterm_as_interrupt():  # SIGTERM stops the page as Ctrl-C does
        try:
            try:
                page = app.launch(engine, port=args.port, host=args.host, share=args.share,
                                  defaults=defaults, block=False)  # fmt: skip
            except OSError as err:
                if "Cannot find empty port" in str(err):
                    raise OSError(
                        f"--port: {args.port} is in use on {args.host} (or cannot be bound "
                        "there); choose another with --port N"
                    ) from None
                raise
            shown = "localhost" if args.host in ("0.0.0.0", "::") else args.host
            print(f"tfstyle: the page is at http://{shown}:{args.port} ({engine.name}; Ctrl-C "
                  "stops it)", file=sys.stderr)  # fmt: skip
            try:
                while not threading.Event().wait(3600):
                    pass
            finally:
                page.close()
        except interrupts.Terminated:
            code = 128 + signal.SIGTERM
        except KeyboardInterrupt:
            code = 130
    print("tfstyle: the page is stopped", file=sys.stderr)
    return code


def _export(args: argparse.Namespace) -> int:
    from tfstyle import export, interrupts, options

    values = {name: getattr(args, name) for name in options.EXPORT_OPTIONS}
    if args.model is not None:
        return _export_realtime(args, values)
    with interrupts.sigterm_as_interrupt():  # a scheduler's SIGTERM: stopped as by Ctrl-C
        path = interrupts.run(  # tracing and saving hold Ctrl-C off: run them in a worker
            export.export_saved_model,
            args.model_dir or signature.MODEL_DIR,
            version=args.version,
            max_size=args.max_size,
            max_iterations=args.max_iterations,
            warmup=not args.no_warmup,
            **values,
        )
    print(
        f"wrote {path}; serve it with tensorflow/serving:{export.serving_version()}",
        file=sys.stderr,
    )
    return 0


def _export_realtime(args: argparse.Namespace, values: dict) -> int:
    """``tfstyle export --model MODEL_DIR``: the trained network (``realtime.export``)."""
    from tfstyle import export, interrupts, options, realtime

    values = {**values, "max_iterations": args.max_iterations}
    limit = options.EXPORT_LIMITS["max_iterations"].default
    defaults = {**options.DEFAULTS, **export.EXPORT_DEFAULTS, "max_iterations": limit}
    given = options.first_given(values, defaults)
    if given:
        flag = "--" + given.replace("_", "-")
        raise ValueError(f"{flag}: does not apply to --model (a trained network's options were "
                         "fixed when it was trained)")  # fmt: skip
    with interrupts.sigterm_as_interrupt():
        path = interrupts.run(
            realtime.export, args.model, args.model_dir or realtime.BASE_PATH,
            version=args.version, max_size=args.max_size or realtime.DEFAULT_MAX_SIZE,
            warmup=not args.no_warmup,
        )  # fmt: skip
    _say(f"wrote {path}; serve it with tensorflow/serving:{export.serving_version()}")
    return 0


def _request(args: argparse.Namespace) -> int:
    from tfstyle import client, files, options, signature

    if args.style is None:
        return _request_realtime(args)
    args.model = args.model or signature.MODEL_NAME
    masks = [getattr(args, t.name) for t in signature.MASK_INPUTS]
    files.check_output(args.output, [args.content, args.style, *masks], size=args.size)
    names = [*options.REQUEST_OPTIONS, *(t.name for t in signature.MASK_INPUTS)]
    values = {n: getattr(args, n) for n in names}
    values = {n: v for n, v in values.items() if v is not None}
    if args.chunk < 0:
        raise ValueError(f"--chunk must be >= 1 steps per request, or 0; got {args.chunk}")
    if args.chunk and args.signature:
        raise ValueError("--signature names the signature of one request: add --chunk 0")
    _check_server_flags(args)
    server = "localhost:8500" if args.server is None else args.server
    common = dict(
        iterations=args.iterations, model=args.model, version=args.version, timeout=args.timeout
    )
    if args.chunk:
        where = {"url": args.rest} if args.rest is not None else {"server": server}
        image, loss = client.stylize(
            args.content, args.style, chunk=args.chunk, progress=not args.quiet,
            **where, **common, **values,
        )  # fmt: skip
    else:
        name = args.signature or (signature.STYLIZE_SIGNATURE if values else None)
        common["signature_name"] = name or signature.DEFAULT_SIGNATURE
        if args.rest is not None:  # an empty --rest is an error, not gRPC
            image, loss = client.predict_rest(
                args.content, args.style, url=args.rest, **common, **values
            )
        else:
            image, loss = client.predict(
                args.content, args.style, server=server, **common, **values
            )
    files.save_image(image, args.output)
    if not args.quiet:
        _say(f"wrote {args.output} (loss {loss:.4g})")
    return 0


def _request_realtime(args: argparse.Namespace) -> int:
    """``tfstyle request CONTENT -o OUT``: one request to a real-time model."""
    from tfstyle import client, files, options, signature

    names = [*options.REQUEST_OPTIONS, *(t.name for t in signature.MASK_INPUTS)]
    defaults = {"chunk": client.DEFAULT_CHUNK, "signature": None,
                "iterations": options.DEFAULTS["iterations"], **dict.fromkeys(names)}  # fmt: skip
    given = options.first_given({n: getattr(args, n) for n in defaults}, defaults)
    if given:
        flag = "--" + given.replace("_", "-")
        raise ValueError(f"{flag}: does not apply to a real-time model (no style image given); "
                         "give a style image to run the optimisation")  # fmt: skip
    files.check_output(args.output, [args.content])
    _check_server_flags(args)
    where = {"url": args.rest} if args.rest is not None else {"server": args.server}
    (image,) = client.predict_realtime(
        args.content, model=args.model or signature.REALTIME_MODEL_NAME, version=args.version,
        timeout=args.timeout, **where,
    )  # fmt: skip
    files.save_image(image, args.output)
    if not args.quiet:
        _say(f"wrote {args.output}")
    return 0


#: Library argument names a command's flag has under another dest: ``(command, name): dest``.
_ALIASES = {("train", "model_dir"): "output"}


def _as_typed(message: str, parser: argparse.ArgumentParser, command: str) -> str:
    """``message`` with a leading ``name:`` (or ``name[k]:``) that is one of ``command``'s flags
    shown as the flag the user typed: the library names its arguments (``mask_dir: ...``,
    ``masks[0]: ...``), a command its flags (``--mask-dir: ...``, ``--mask #1: ...``);
    positionals keep their names. Any surprise leaves the message as it is."""
    head, colon, rest = message.partition(":")
    name, bracket, index = head.partition("[")
    if not colon or not name.isidentifier() or (bracket and not re.fullmatch(r"[0-9]+]", index)):
        return message
    try:
        commands = next(
            a
            for a in parser._actions  # noqa: SLF001 (argparse's own)
            if isinstance(a, argparse._SubParsersAction)  # noqa: SLF001
        ).choices[command]
        dest = _ALIASES.get((command, name), name)
        for action in commands._actions:  # noqa: SLF001
            if action.dest == dest and action.option_strings:
                flag = max(action.option_strings, key=len)
                if bracket:  # the k-th of a flag given once per style: its number, from 1
                    flag = f"{flag} #{int(index[:-1]) + 1}"
                return flag + colon + rest
    except (StopIteration, KeyError, AttributeError, ValueError):
        pass
    return message


def _status(args: argparse.Namespace) -> int:
    from tfstyle import client

    for entry in client.model_status(args.server, args.model, args.version):
        error = f" ({entry['error']})" if entry["error"] else ""
        print(f"{args.model} version {entry['version']}: {entry['state']}{error}")
    return 0


def entry() -> None:
    """The ``tfstyle`` command: ``main``, then exit without tearing TensorFlow down (which takes
    over a second and would hold up Ctrl-C); every file is already complete and closed."""
    _open_standard_streams()
    _skip_unused_imports(sys.argv[1:])
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a pipe whose reader is gone
            stream.flush()
    os._exit(code)


#: Modules Keras imports whenever they are installed (pandas for its data adapters,
#: matplotlib for its image gallery, IPython to tell a notebook: about 1.5 s of every start
#: here), which the commands do not use; the page's Gradio does use pandas.
UNUSED_IMPORTS = ("pandas", "matplotlib", "IPython")


def _skip_unused_imports(argv: Sequence[str]) -> None:
    """In the ``tfstyle`` command's own process, make ``UNUSED_IMPORTS`` look absent (Keras
    then goes without them, as where they are not installed), but for ``tfstyle app``."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in (None, "app"):
        return
    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)  # "import pandas": ImportError, at once


def _open_standard_streams() -> None:
    """Put /dev/null where a standard stream was closed (``2>&-``): otherwise the first file
    opened would take its descriptor (and TensorFlow's log lines would go into an image), and
    Python, finding no stream, would make a finished run fail at its last line."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: fd itself
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    for name, fd in (("stdin", 0), ("stdout", 1), ("stderr", 2)):
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115


if __name__ == "__main__":
    entry()
