"""``tfstyle app``: a web page to try style transfer, built on Gradio.

Gradio is the convention for ML demos (the model hubs' pages are Gradio pages): it gives the
upload widgets, a request queue with each user's place in it, live updates from a generator,
and an inline view in Colab, none of which tfstyle should write by hand.

The page runs on one of two engines:

- ``InProcess``: ``tfstyle.Stylizer`` in this process (every option of the table);
- ``Served``: a TensorFlow Serving endpoint through ``tfstyle.client`` in parts (the options a
  request may set, one style image), so the page is the front end of a deployment.

A run is a generator: the optimisation runs in a thread and reports its image every few steps;
each report is shown with the step, the scale and the loss. Stop ends the run at the next
chunk (about a second in process, a part when served) with the image reached, which is then
offered for download with the options used (and the CLI line that repeats the run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import re
import shlex
import tempfile
import threading
from collections.abc import Iterator

import numpy as np
import PIL.Image

from tfstyle import files, images, interrupts, options

#: The controls shown first; the rest of the table is under "More options".
MAIN = ("size", "iterations", "style_weight", "style_scale", "preserve_colors")
#: The page's defaults where they differ from the table's: a first try on a CPU takes seconds,
#: not minutes (the CLI line offered with each result states every value used).
PAGE_DEFAULTS = {"size": 256, "iterations": 100}
#: Largest upload, in bytes; larger files are refused by the page before they are sent.
MAX_UPLOAD_BYTES = 50 * 2**20
#: Option kinds the page has a control for: not callables, images (uploaded instead) or the
#: weights, which the operator chooses (``tfstyle app --weights``): a visitor must not name
#: files on the server.
_KINDS = ("int", "float", "bool", "choice", "layers", "floats", "init")
#: Runs waiting beyond this are refused with "the queue is full".
QUEUE_SIZE = 20
#: Reports (images shown) per run.
REPORTS = 20
#: The opacity of the paint on the page (the content shows through); a region's weight is
#: the paint's opacity relative to it (soft brush edges below 1).
PAINT_OPACITY = 0.6
#: Drawn regions are read at most this many pixels (any resolution with the content's aspect
#: ratio will do: a mask is resized to each layer's feature map).
DRAWN_PIXELS = 2**20
#: The brush colours of drawn regions: style k's region is painted in colour k (Gradio's
#: palette, reordered so the first two contrast most).
REGION_COLOURS = (
    ("red", (204, 50, 50)), ("blue", (50, 112, 204)), ("green", (50, 204, 112)),
    ("purple", (173, 50, 204)), ("yellow", (173, 204, 50)),
)  # fmt: skip

_HERE = os.path.dirname(os.path.abspath(__file__))
#: The repository's bundled images, where the package runs from a clone.
EXAMPLES = os.path.join(os.path.dirname(_HERE), "examples")


def flag_names() -> list[str]:
    """The options ``tfstyle app`` takes as flags (its page's starting values): those the page
    has a control for, and the operator's ``weights``; not masks or an ``init`` image, which a
    visitor uploads."""
    return [o.name for o in options.OPTIONS if o.flag and (o.kind in _KINDS or o.name == "weights")]


def gradio():
    """The ``gradio`` module, or one line saying how to install it."""
    from tfstyle import extras

    return extras.need("gradio", "the page", "Gradio", "app")


@dataclasses.dataclass
class Report:
    """What a run shows: its image so far, where it is, and (at the end) its files."""

    image: PIL.Image.Image | None
    text: str
    fraction: float
    done: bool = False
    files: list[str] = dataclasses.field(default_factory=list)
    command: str = ""


class InProcess:
    """Runs ``tfstyle.Stylizer`` in this process: every option of the table."""

    name = "in-process"
    served = False
    many_styles = True
    concurrency = max(1, (os.cpu_count() or 1) // 2)  # a run uses the cores it is given

    def __init__(self, weights=options.DEFAULTS["weights"]):
        self.weights = weights  # the operator's: not a control on the page

    def option_rows(self) -> list[options.Option]:
        return [o for o in options.OPTIONS if o.flag and o.kind in _KINDS]

    def run(self, content, styles, values, regions, report, stop) -> tuple:
        """Stylise; ``report(step, losses, image)`` every few steps; returns ``(image, step)``."""
        import tfstyle

        every = max(1, values["iterations"] // REPORTS)
        stylizer = tfstyle.Stylizer(
            styles if len(styles) > 1 else styles[0], **values, **regions, progress=False,
            callback=report, callback_every=every, weights=self.weights,
        )  # fmt: skip
        try:
            return stylizer(content, stop=stop), values["iterations"]
        except interrupts.Interrupted as stopped:
            return stopped.image, stopped.step


class Served:
    """Sends the run to TensorFlow Serving in parts (``tfstyle.client.stylize``): the options a
    request may set, and one style image."""

    served = True
    many_styles = False
    concurrency = 4  # the server does the work; its own queue bounds it

    def __init__(self, server: str | None = None, url: str | None = None, chunk: int = 10):
        self.server, self.url, self.chunk = server, url, chunk
        self.name = f"served by {url or server}"

    def option_rows(self) -> list[options.Option]:
        return [o for o in options.OPTIONS
                if o.flag and o.kind in _KINDS and o.name in options.REQUEST_OPTIONS
                or o.name == "iterations"]  # fmt: skip

    def run(self, content, styles, values, regions, report, stop) -> tuple:
        from tfstyle import client

        iterations = values.pop("iterations")

        def part_done(step, loss, image):
            report(step, {"total": loss}, image)
            if stop.is_set():
                raise KeyboardInterrupt  # the client stops after this part: Interrupted

        where = {"url": self.url} if self.url else {"server": self.server}
        masks = {k: v for k, v in regions.items() if v is not None}
        try:
            image, _ = client.stylize(
                content, styles[0], iterations=iterations, chunk=self.chunk, progress=False,
                callback=part_done, **where, **values, **masks,
            )  # fmt: skip
            return image, iterations
        except interrupts.Interrupted as stopped:
            return stopped.image, stopped.step


def values_from(
    rows: list[options.Option], raw: list, served: bool = False, defaults: dict | None = None
) -> dict:
    """The option values of the page's controls (text fields parsed by the row's kind). An
    empty field is the page's starting value (``defaults``, the operator's flags), else the
    option's default, or (``served``) the model's value."""
    values = {}
    for row, value in zip(rows, raw, strict=True):
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            if served:
                continue
            if defaults and row.name in defaults:
                values[row.name] = defaults[row.name]
                continue
            if row.kind in ("int", "float") and not row.none:
                raise ValueError(f"{row.name}: give a value ({row.allowed()})")
            continue
        if row.kind == "bool" and isinstance(value, str):  # served: "", "true" or "false"
            value = value == "true"
        if row.kind == "int":
            if float(value) != int(value):
                raise ValueError(f"{row.name} must be a whole number; got {value}")
            value = int(value)
        elif row.kind == "float":
            value = float(value)
        elif row.kind == "layers":
            value = [v for v in value.replace(",", " ").split() if v]
        elif row.kind == "floats":
            try:
                value = [float(v) for v in value.replace(",", " ").split()]
            except ValueError:
                raise ValueError(
                    f"{row.name} must be numbers separated by commas; got {value!r}"
                ) from None
        elif row.kind == "weights" and value.lower() == "none":
            value = None
        values[row.name] = value
    return values


def command_line(content: str, styles: list[str], values: dict, regions: dict) -> str:
    """The ``tfstyle transfer`` line that repeats a run (the options that differ from the
    table's defaults)."""
    from tfstyle import flags

    argv = ["tfstyle", "transfer", os.path.basename(content),
            *(os.path.basename(s) for s in styles), "-o", "out.png"]  # fmt: skip
    for name, value in values.items():
        row = options.BY_NAME[name]
        if value == row.default:
            continue
        flag = flags.flag_name(row)
        if row.kind == "bool":
            argv += [flag] if value else []
        elif isinstance(value, list):
            argv += [flag, *(str(v) for v in value)]
        else:
            argv += [flag, "none" if value is None else str(value)]
    for name, value in regions.items():
        if value is None:
            continue
        flag = flags.flag_name(options.BY_NAME[name])
        for path in value if isinstance(value, list) else [value]:
            argv += [flag, os.path.basename(path)]
    return shlex.join(argv)


def _paths(upload) -> list[str]:
    """The paths of a file upload (one, several or none)."""
    if upload is None:
        return []
    if isinstance(upload, (list, tuple)):
        return [_path(u) for u in upload]
    return [_path(upload)]


def _path(upload) -> str:
    return upload if isinstance(upload, str) else getattr(upload, "name", str(upload))


def preview(upload, name: str):
    """The uploaded image(s), decoded as a run reads them (so a bad file is said on upload)."""
    shown = []
    paths = _paths(upload)
    for k, path in enumerate(paths):
        label = name if len(paths) == 1 else f"{name}[{k}]"
        try:
            array = images.load_image(path, label)
        except (ValueError, OSError) as err:
            raise gradio().Error(str(err), print_exception=False) from None
        shown.append(images.to_pil(array))
    return shown


def drawn_masks(drawing, styles: int, out_dir: str) -> list[str] | None:
    """The masks painted on the page's drawing (a ``gradio.ImageEditor`` value: RGBA
    ``layers`` over the content), written as PNGs in ``out_dir``; ``None`` if nothing is
    painted. Style ``k``'s mask is where colour ``k`` of ``REGION_COLOURS`` was painted, the
    paint's opacity (relative to ``PAINT_OPACITY``) its weight: soft brush edges; later layers
    paint over earlier ones."""
    layers = [np.asarray(x) for x in (drawing or {}).get("layers") or [] if x is not None]
    if not layers:
        return None
    height, width = layers[0].shape[:2]
    scale = min(1.0, (DRAWN_PIXELS / (height * width)) ** 0.5)  # plenty for a region
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        layers = [np.asarray(PIL.Image.fromarray(x).resize(size, PIL.Image.BOX))
                  if x.shape[:2] == (height, width) else x for x in layers]  # fmt: skip
        height, width = size[1], size[0]
    colour = np.zeros((height, width, 3), np.float32)
    alpha = np.zeros((height, width), np.float32)
    for layer in layers:
        if layer.shape[:2] != (height, width) or layer.ndim != 3 or layer.shape[2] != 4:
            raise ValueError(f"drawing: a layer of {layer.shape}; expected {height}x{width} RGBA")
        a = layer[..., 3].astype(np.float32) / 255
        colour = colour * (1 - a[..., None]) + layer[..., :3] * a[..., None]  # paint over
        alpha = alpha * (1 - a) + a
    if not np.any(alpha > 0):
        return None
    shown = colour / np.maximum(alpha, 1e-6)[..., None]  # the colour painted, not its opacity
    distances = [((shown - rgb) ** 2).sum(-1) for _, rgb in REGION_COLOURS]
    nearest = np.argmin(distances, axis=0)
    used = set(np.unique(nearest[alpha > 0]).tolist())
    if max(used) >= styles:
        name = REGION_COLOURS[max(used)][0]
        raise ValueError(
            f"drawing: {name} paints style {max(used) + 1}, but there "
            f"{'is 1 style image' if styles == 1 else f'are {styles} style images'}"
        )  # fmt: skip
    paths = []
    for k in range(styles):
        if k not in used:
            raise ValueError(
                f"drawing: nothing is painted in {REGION_COLOURS[k][0]} for style {k + 1}; "
                "paint each style's region in its colour, or clear the drawing"
            )  # fmt: skip
        mask = np.where(nearest == k, np.minimum(alpha / PAINT_OPACITY, 1), 0)
        paths.append(os.path.join(out_dir, f"mask-{k + 1}.png"))
        files.save_image(PIL.Image.fromarray(np.round(mask * 255).astype(np.uint8)), paths[-1])
    return paths


class Runs:
    """The stop events of a browser session's runs: one per Paint, running or queued. Stop sets
    them all (the run going and any queued behind it by a second Paint); one session's Stop
    touches no other's."""

    def __init__(self):
        self._events: dict[str, list[threading.Event]] = {}
        self._lock = threading.Lock()

    def arm(self, session: str) -> None:
        """A new run of ``session`` is queued: its own event."""
        with self._lock:
            self._events.setdefault(session, []).append(threading.Event())

    def stop(self, session: str) -> None:
        with self._lock:
            for event in self._events.get(session, []):
                event.set()

    def take(self, session: str) -> threading.Event:
        """The event of the run of ``session`` that starts now: the first armed and not yet
        taken (runs start in the order they were queued)."""
        with self._lock:
            events = self._events.setdefault(session, [])
            for event in events:
                if not getattr(event, "taken", False):
                    break
            else:
                event = threading.Event()
                events.append(event)
            event.taken = True
            return event

    def done(self, session: str, event: threading.Event) -> None:
        with self._lock:
            events = self._events.get(session, [])
            if event in events:
                events.remove(event)
            if not events:
                self._events.pop(session, None)


def paint(
    engine, rows, content, styles, masks, content_mask, raw, stop, out_dir, defaults=None,
    drawing=None,
) -> Iterator:  # fmt: skip
    """Run one stylisation on ``engine`` and yield a ``Report`` at each image it shows, then
    the result (complete, or as far as Stop let it go). The regions are uploaded ``masks`` or
    painted on ``drawing`` (``drawn_masks``), not both."""
    content_paths, style_paths = _paths(content), _paths(styles)
    if not content_paths:
        raise ValueError("content: upload a content image (or pick the bundled one)")
    if not style_paths:
        raise ValueError("style: upload at least one style image (or pick the bundled one)")
    if len(style_paths) > 1 and not engine.many_styles:
        raise ValueError(
            f"style: a served model takes one style image; got {len(style_paths)}"
        )  # fmt: skip
    values = values_from(rows, raw, served=engine.served, defaults=defaults)
    mask_paths = _paths(masks)
    drawn = drawn_masks(drawing, len(style_paths), out_dir)
    if drawn and mask_paths:
        raise ValueError("masks: upload masks or paint the regions, not both")
    mask_paths = drawn or mask_paths
    regions = {"masks": mask_paths or None, "content_mask": (_paths(content_mask) or [None])[0]}
    if not engine.many_styles:  # the served signature's masks: one region for its one style
        regions = {"mask": (mask_paths or [None])[0], "content_mask": regions["content_mask"]}
    iterations = values["iterations"]
    updates: queue.Queue = queue.Queue()

    def report(step, losses, image):
        if not isinstance(image, PIL.Image.Image):
            image = images.to_pil(image)
        scale = f" · {losses['scale']} px" if "scale" in losses else ""
        text = f"step {step} of {iterations}{scale} · loss {losses['total']:.4g}"
        updates.put(Report(image, text, step / max(iterations, 1)))

    result: dict = {}

    def work():
        try:
            result["value"] = engine.run(
                content_paths[0], style_paths, dict(values), dict(regions), report, stop
            )
        except BaseException as err:  # handed to the page
            result["error"] = err
        finally:
            updates.put(None)

    threading.Thread(target=work, name="tfstyle-page-run", daemon=True).start()
    try:
        while True:
            item = updates.get()
            while item is not None and not updates.empty():  # behind: show the latest only
                following = updates.get()
                if following is None:
                    updates.put(None)
                    break
                item = following
            if item is None:
                break
            yield item
    finally:
        stop.set()  # the page went away (or the run ended): nothing runs on for nobody
    if "error" in result:
        raise result["error"]
    image, step = result["value"]
    png = os.path.join(out_dir, "tfstyle.png")
    files.save_image(image, png)
    if not engine.served:
        values = {**values, "weights": engine.weights}  # the operator's: in the line and JSON
    command = command_line(
        content_paths[0], style_paths, values,
        {k: v for k, v in regions.items() if k in options.BY_NAME},
    )  # fmt: skip
    used = os.path.join(out_dir, "tfstyle-options.json")
    with open(used, "w") as f:
        json.dump({"options": values, "steps_done": step, "engine": engine.name,
                   "command": command}, f, indent=2)  # fmt: skip
    said = "done" if step >= iterations else f"stopped after step {step} of {iterations}"
    yield Report(image, f"{said} · {image.width}x{image.height} px", step / max(iterations, 1),
                 done=True, files=[png, used, *(drawn or [])], command=command)  # fmt: skip


def preview_file(image: PIL.Image.Image, out_dir: str, shown: list[str]) -> str:
    """``image`` in a new PNG file of ``out_dir`` for the page to show. Never one file written
    twice: given an image, Gradio caches it under its content's hash and rewrites that file in
    place when an equal image comes again (the last preview and the result), and a browser
    fetching it meanwhile got a broken response ("Too much data for declared Content-Length");
    a file it copies under a new name. The file of two previews ago is deleted: Gradio copied
    it into its cache before asking for the next."""
    path = os.path.join(out_dir, f"step-{len(shown) + 1}.png")
    files.save_image(image, path)
    shown.append(path)
    if len(shown) > 2:
        with contextlib.suppress(OSError):
            os.remove(shown[-3])
    return path


def status_html(text: str, fraction: float, done: bool = False) -> str:
    """The run's progress bar and its line (step, scale, loss)."""
    import html

    state = "done" if done else "running"
    return (
        f'<div class="tfstyle-status" data-state="{state}">'
        f'<progress value="{fraction:.4f}" max="1" style="width:100%"></progress>'
        f"<div>{html.escape(text)}</div></div>"
    )


def build(engine=None, defaults: dict | None = None):
    """The page (a ``gradio.Blocks``) on ``engine`` (default: ``InProcess()``); ``defaults``
    replaces some of the controls' starting values (``PAGE_DEFAULTS``, then the table's)."""
    gr = gradio()
    defaults = {**PAGE_DEFAULTS, **(defaults or {})}
    engine = engine or InProcess(weights=defaults.get("weights", options.DEFAULTS["weights"]))
    rows = engine.option_rows()
    main = [r for r in rows if r.name in MAIN]
    more = [r for r in rows if r.name not in MAIN]
    ordered = main + more
    served = engine.served
    runs = Runs()
    bundled = [os.path.join(EXAMPLES, n) for n in ("content.jpg", "style.png")]
    have_examples = all(os.path.isfile(p) for p in bundled)

    with gr.Blocks(title="tfstyle") as page:
        gr.Markdown(
            "# tfstyle\nNeural style transfer (Gatys et al.): upload a photo and one or more "
            f"style images, then **Paint**. Engine: {engine.name}."
        )
        with gr.Row():
            with gr.Column(min_width=280):
                content = gr.File(label="Content image", file_types=["image"],
                                  elem_id="content")  # fmt: skip
                content_view = gr.Gallery(label="Content", height=200, columns=1,
                                          show_label=False, elem_id="content-view")  # fmt: skip
            with gr.Column(min_width=280):
                styles = gr.File(
                    label="Style image(s)" if engine.many_styles else "Style image",
                    file_count="multiple" if engine.many_styles else "single",
                    file_types=["image"], elem_id="styles",
                )  # fmt: skip
                styles_view = gr.Gallery(label="Styles", height=200, columns=3,
                                         show_label=False, elem_id="styles-view")  # fmt: skip
        if have_examples:
            use_bundled = gr.Button("Use the bundled images", size="sm", elem_id="bundled")
        controls = []
        with gr.Row():
            for row in main:
                controls.append(_control(gr, row, defaults, served))
        with gr.Accordion("More options", open=False):
            for row in more:
                controls.append(_control(gr, row, defaults, served))
        with gr.Accordion("Regions (masks)", open=False):
            colours = REGION_COLOURS if engine.many_styles else REGION_COLOURS[:1]
            legend = ", ".join(f"{name} for style {k + 1}" for k, (name, _) in enumerate(colours))
            gr.Markdown(
                f"Paint where each style goes on the content ({legend}); what is left "
                "unpainted keeps the content alone. Or upload one mask per style image, white "
                "where that style goes (the content's aspect ratio). A content mask weighs the "
                "content loss per position."
            )
            drawing = gr.ImageEditor(
                label="Regions, painted on the content", type="numpy", image_mode="RGBA",
                sources=(), transforms=(), layers=False, format="png", elem_id="drawing",
                brush=gr.Brush(colors=[(f"rgb{rgb}", PAINT_OPACITY) for _, rgb in colours],
                               color_mode="fixed"),
            )  # fmt: skip
            masks = gr.File(label="Masks, one per style, in order",
                            file_count="multiple" if engine.many_styles else "single",
                            file_types=["image"], elem_id="masks")  # fmt: skip
            content_mask = gr.File(label="Content mask", file_types=["image"])
        with gr.Row():
            go = gr.Button("Paint", variant="primary", elem_id="paint")
            halt = gr.Button("Stop", variant="stop", elem_id="stop")
        status = gr.HTML(status_html("", 0.0), elem_id="status")
        result = gr.Image(label="Result", type="pil", format="png", interactive=False,
                          elem_id="result")  # fmt: skip
        downloads = gr.File(label="Download (PNG, and the options used)", file_count="multiple",
                            interactive=False, elem_id="downloads")  # fmt: skip
        command = gr.Code(label="The same run from the command line", language="shell",
                          interactive=False, elem_id="command")  # fmt: skip
        gallery = gr.Gallery(label="This session's results", columns=4, elem_id="gallery")
        history = gr.State([])

        def content_changed(upload):
            shown = preview(upload, "content")
            canvas = {"background": shown[0], "layers": [], "composite": shown[0]}
            return shown, canvas if shown else None

        content.change(content_changed, content, [content_view, drawing])
        styles.change(lambda u: preview(u, "style"), styles, styles_view)
        if have_examples:
            use_bundled.click(
                lambda: (bundled[0], bundled[1:] if engine.many_styles else bundled[1]),
                None, [content, styles],
            )  # fmt: skip

        def arm(request):
            runs.arm(request.session_hash)
            return status_html("waiting for its turn…", 0.0)

        def halt_run(request):  # Stop, or the visitor closed the page
            runs.stop(request.session_hash)

        def run(request, content, styles, masks, content_mask, drawn, past, *raw):
            stop = runs.take(request.session_hash)
            if stop.is_set():
                runs.done(request.session_hash, stop)
                yield status_html("stopped before it started", 0.0), None, None, "", past, past
                return
            out_dir = tempfile.mkdtemp(prefix="tfstyle-page-")
            shown_paths: list[str] = []
            try:
                for shown in paint(engine, ordered, content, styles, masks, content_mask,
                                   list(raw), stop, out_dir, defaults, drawn):  # fmt: skip
                    bar = status_html(shown.text, shown.fraction, shown.done)
                    if shown.done:
                        past = [*past, (shown.files[0], shown.text)]
                        yield bar, shown.files[0], shown.files, shown.command, past, past
                    else:
                        shown_path = preview_file(shown.image, out_dir, shown_paths)
                        yield bar, shown_path, None, "", past, past
            except (ValueError, OSError, ImportError) as err:
                raise gr.Error(str(err), print_exception=False) from None
            except Exception as err:  # noqa: BLE001 (a server error, a TensorFlow one: one line)
                raise gr.Error(f"{type(err).__name__}: {err}", print_exception=False) from None
            finally:
                runs.done(request.session_hash, stop)
                for path in shown_paths[-2:]:  # Gradio has its copies; the run's files stay
                    with contextlib.suppress(OSError):
                        os.remove(path)

        for fn in (arm, halt_run, run):  # Gradio passes the request to a parameter of this type
            fn.__annotations__["request"] = gr.Request
        go.click(arm, None, status, queue=False).then(
            run, [content, styles, masks, content_mask, drawing, history, *controls],
            [status, result, downloads, command, history, gallery],
            concurrency_limit=engine.concurrency,
        )  # fmt: skip
        halt.click(halt_run, None, None, queue=False)
        page.unload(halt_run)  # a closed page's run stops at its next chunk, not its next image
    page.queue(max_size=QUEUE_SIZE)
    return page


def _control(gr, row: options.Option, defaults: dict, served: bool = False):
    """The control for an option row, labelled with its name, its help as the info line.
    ``served``: empty to start with (the model's value), but for the iterations."""
    value = defaults.get(row.name, row.default)
    info = re.split(r"\. |; |: | \(", row.help)[0].rstrip(".") + "."  # the rest: --help
    common = {"label": row.name, "info": info, "elem_id": f"option-{row.name}", "min_width": 200}
    if served and row.name != "iterations":
        common["info"] = "Empty: the model's value. " + info
        if row.kind == "bool":
            return gr.Dropdown(["", "true", "false"], value="", **common)
        if row.kind in ("choice", "init"):
            return gr.Dropdown(["", *row.choices], value="", **common)
        if row.kind in ("int", "float"):
            return gr.Number(value=None, precision=0 if row.kind == "int" else None, **common)
        return gr.Textbox(value="", **common)
    if row.kind == "bool":
        return gr.Checkbox(value=bool(value), **common)
    if row.kind in ("choice", "init"):
        return gr.Dropdown(list(row.choices), value=value, **common)
    if row.kind in ("int", "float") and row.name in ("size", "iterations", "style_scale"):
        high = {"size": 2048, "iterations": 1000, "style_scale": 4.0}[row.name]
        step = 1 if row.kind == "int" else 0.05
        low = row.low if not row.above else row.low + step
        return gr.Slider(low, max(high, value), value=value, step=step, **common)
    if row.kind in ("int", "float"):
        return gr.Number(value=value, precision=0 if row.kind == "int" else None, **common)
    if row.kind in ("layers", "floats"):
        text = "" if value is None else ", ".join(str(v) for v in value)
        return gr.Textbox(value=text, **common)
    text = "none" if value is None else str(value)
    return gr.Textbox(value=text, **common)


def launch(
    engine=None, *, port: int = 7860, host: str = "127.0.0.1", share: bool = False,
    defaults: dict | None = None, inline: bool | None = None, block: bool = True,
):  # fmt: skip
    """Start the page on ``host:port`` (in Colab: shown inline); returns the ``gradio.Blocks``
    once it is serving (``block``: and waits until Ctrl-C)."""
    page = build(engine, defaults)
    page.launch(
        server_name=host, server_port=port, share=share, inline=inline, quiet=True,
        max_file_size=MAX_UPLOAD_BYTES, show_error=True, prevent_thread_lock=not block,
        allowed_paths=[EXAMPLES] if os.path.isdir(EXAMPLES) else None,  # the bundled images
    )  # fmt: skip
    return page
