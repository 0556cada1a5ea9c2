"""``tfstyle.video``: a clip stylised frame by frame without flicker (Ruder, Dosovitskiy and
Brox 2016).

The first frame is an ordinary ``transfer`` (coarse to fine, ``iterations`` steps). Every later
frame starts from the previous result warped onto it by the optical flow of the content frames
and takes ``frame_iterations`` steps at the full size only, with the temporal loss
(``tfstyle.temporal``) holding it to that warped result where the flow is consistent.

Finished frames are written, each complete, to a work directory beside the output
(``OUT.tfstyle-work``); Ctrl-C keeps them and writes a playable ``OUT.partial.EXT`` of them,
and the same command resumes at the first frame not done. The video is written at the end
(the audio copied), and the work directory removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Sequence

import numpy as np
import PIL.Image
from tqdm.auto import tqdm

from tfstyle import api, files, images, interrupts, options, temporal, video_io
from tfstyle.interrupts import Interrupted

#: The work directory's name: the output's, with this after it.
WORK_SUFFIX = ".tfstyle-work"
_MANIFEST = "run.json"


class ShortClipWarning(UserWarning):
    """The clip ended well before the length its header declares (a truncated file): the
    frames it had were stylised and written."""


class VideoInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``video``: ``done`` frames are finished and kept (``partial``: a playable
    clip of them, or None if there were none)."""

    def __init__(
        self, done: int, total: int | None, partial: str | None, work: str,
        terminated: bool = False,
    ):  # fmt: skip
        super().__init__(done, total, partial, work)
        self.done, self.total, self.partial, self.work = done, total, partial, work
        #: Stopped by SIGTERM (``interrupts.Terminated``), not Ctrl-C.
        self.terminated = terminated

    def __str__(self) -> str:
        how = "terminated" if self.terminated else "interrupted"
        of = f" of {self.total}" if self.total else ""
        if not self.partial:
            return f"{how} before the first frame was done; nothing written"
        return (
            f"{how} after {self.done}{of} frames; {self.partial} has them, and "
            f"{self.work} keeps them: the same command resumes"
        )


def video(
    source: str,
    style,
    output: str,
    *,
    temporal_weight: float = options.VIDEO_OPTIONS["temporal_weight"].default,
    frame_iterations: int = options.VIDEO_OPTIONS["frame_iterations"].default,
    max_frames: int | None = None,
    progress: bool = True,
    **kwargs,
) -> str:
    """Stylise the clip ``source`` (a video file or a folder of frames) in the style of
    ``style`` (an image, or a list to blend) and write it to ``output``; returns ``output``.

    Args:
        source: a video file (mp4, webm, mov, mkv, gif, ...: anything FFmpeg reads) or a folder
            of frames (PNG/JPEG/BMP files, in name order, 25 frames a second).
        style: the style image(s), as for ``transfer``.
        output: a video file (``.mp4``, ``.m4v``, ``.mov``, ``.mkv``: H.264; ``.webm``: VP9;
            ``.gif``) or a path without an extension for a folder of PNG frames. The frame rate
            is kept and the audio copied (not into a GIF or a folder).
        temporal_weight: float. The temporal loss's weight (``options.VIDEO_OPTIONS``).
        frame_iterations: int. Steps for each frame after the first.
        max_frames: stop after this many frames (None: all).
        progress: a progress bar over frames, and one over the steps of the current frame.
        **kwargs: ``transfer``'s options (``size``, ``iterations`` for the first frame,
            ``style_weight``, ``weights``, ...), for every frame.

    Raises:
        ValueError: a bad option, a ``source`` that is not a readable video (or has no frames,
            or frames below the smallest size), an output extension that is not a video.
        VideoInterrupted: Ctrl-C; the frames done are kept (see the module's docstring).

    Warns:
        ShortClipWarning: the clip ended well before its header's length (a truncated file);
            the frames it had are written.
    """
    values = {"temporal_weight": temporal_weight, "frame_iterations": frame_iterations}
    for name, value in values.items():
        options.VIDEO_OPTIONS[name].check(value)
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                   or max_frames < 1):  # fmt: skip
        raise ValueError(f"max_frames must be an integer >= 1 or None; got {max_frames!r}")
    allowed = tuple(n for n in options.BY_NAME if n not in ("callback", "callback_every"))
    # the options' errors before any file is looked at
    opts = options.options_from(kwargs, allowed, "video option")
    video_io.av(), temporal._cv2()  # what to install, before any work
    output = os.fspath(output)
    video_io.check_output(output)
    work, partial = output.rstrip(os.sep) + WORK_SUFFIX, _partial_name(output)
    _check_not_inputs([output, partial, work], [source, style, kwargs])
    info = video_io.probe(os.fspath(source), "video")
    shown = {**kwargs, "progress": progress}
    first = api.Stylizer(style, **shown)
    later = api.Stylizer(
        style, **{**shown, "iterations": frame_iterations, "min_scale": opts.size,
                  "init": "content"},
    )  # fmt: skip
    for stylizer in (first, later):
        stylizer.bar_options = {"leave": False, "position": 1}
    key = _run_key(info, first, opts, values)
    if os.path.lexists(partial) and not _wrote_partial(work, key, partial):
        raise FileExistsError(
            f"output: {partial!r} exists; a stopped run writes the frames done there: move it, "
            "or give another output name"
        )
    total = info.frames if max_frames is None else min(info.frames or max_frames, max_frames)
    done: list[str] = []
    bar = tqdm(total=total, unit="frame", disable=not progress, position=0)
    try:
        with bar:
            _stylise_frames(info, first, later, temporal_weight, max_frames, work, key, done, bar)
    except (Interrupted, KeyboardInterrupt) as stop:
        written = None
        if not done and os.path.isdir(work) and os.listdir(work) == [_MANIFEST]:
            shutil.rmtree(work, ignore_errors=True)  # nothing in it: "nothing written" holds
        if done:
            _write_partial(partial, done, info, work, key)
            written = partial
        raise VideoInterrupted(
            len(done),
            total,
            written,
            work,
            isinstance(stop, interrupts.Terminated) or getattr(stop, "terminated", False),
        ) from None
    if not done:
        declared = (
            f" that can be decoded (its header declares about {info.frames}: the file may be "
            "truncated)" if info.frames else ""
        )  # fmt: skip
        raise ValueError(f"video: {info.path!r} has no frames{declared}")
    video_io.write(output, done, info.fps, info)
    # Fewer than the header's count (less a margin for a duration rounded or a variable rate):
    # FFmpeg reads a truncated Matroska or WebM file up to where it was cut, without an error.
    if (max_frames is None or len(done) < max_frames) and len(done) < 0.9 * (info.frames or 0):
        warnings.warn(
            f"video: {info.path!r} ended after {len(done)} frames where its header declares "
            f"about {info.frames}: the file may be truncated; {output} has the {len(done)}",
            ShortClipWarning,
            stacklevel=2,
        )
    if os.path.lexists(partial) and _wrote_partial(work, key, partial):
        files._remove(partial)  # noqa: SLF001 (a stopped run's, now whole in the output)
    shutil.rmtree(work, ignore_errors=True)
    return output


def _stylise_frames(info, first, later, weight, max_frames, work, key, done, bar) -> None:
    """Each frame in turn: from the work directory if finished there, else stylised and
    written there; ``done`` gets each finished frame's path."""
    size = first.options.size
    previous = previous_small = None
    for index, frame in enumerate(video_io.frames(info, "video")):
        if max_frames is not None and index >= max_frames:
            break
        if index == 0:
            _open_work(work, key)
        path = os.path.join(work, f"frame-{index + 1:06d}.png")
        height, width = (int(v) for v in images.working_shape(*frame.shape[:2], size))
        small = np.asarray(PIL.Image.fromarray(frame).resize((width, height), PIL.Image.BILINEAR))
        if os.path.exists(path):  # written whole (renamed into place) by an earlier run
            result = images.load_image(path, "frame")
        else:
            bar.set_description(f"frame {index + 1}")
            if previous is None:
                image = first(frame)
            else:
                backward = temporal.flow(small, previous_small)  # frame t -> t-1
                forward = temporal.flow(previous_small, small)
                mask = temporal.consistency(backward, forward)
                warped = temporal.warp(previous, backward).numpy()
                image = later(frame, init=warped, temporal=(warped, mask, weight))
            files.save_image(image, path)
            result = images.load_image(path, "frame")  # as resuming reads it: the same frames
        done.append(path)
        previous, previous_small = result, small
        bar.update(1)


def _run_key(info, stylizer, opts, values) -> str:
    """What makes a run's frames: the clip, the style images, the options."""
    stat = os.stat(info.path)
    digest = hashlib.sha256()
    for style in stylizer.styles:
        digest.update(np.ascontiguousarray(style).tobytes())
    described = {
        "clip": [os.path.abspath(info.path), stat.st_size, stat.st_mtime_ns],
        "styles": digest.hexdigest(),
        "options": {k: repr(v) for k, v in sorted(vars(opts).items()) if k != "progress"},
        "video": values,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def _open_work(work: str, key: str) -> None:
    """The work directory for the run ``key``: made, or an earlier run's of the same key."""
    manifest = os.path.join(work, _MANIFEST)
    if os.path.lexists(work):
        if not os.path.isdir(work):
            raise files.not_a_directory(work, "the work directory")
        try:
            with open(manifest) as f:
                same = json.load(f).get("key") == key
        except (OSError, ValueError):
            same = False
        if not same:
            raise ValueError(
                f"{work!r} holds the frames of another run (another clip, style or options): "
                "remove it, or give another output name"
            )
        return
    with files.atomic_path(work, directory=True) as tmp:
        with open(os.path.join(tmp, _MANIFEST), "w") as f:
            json.dump({"key": key}, f)


def _partial_name(output: str) -> str:
    """Where a stopped run writes its frames done: ``OUT.partial.EXT`` (a folder:
    ``OUT.partial``)."""
    stem, ext = os.path.splitext(output.rstrip(os.sep))
    return f"{stem}.partial{ext}"


def _wrote_partial(work: str, key: str, partial: str) -> bool:
    """Whether ``partial`` is what a stopped run of ``key`` wrote (its work directory says so):
    only that is ever replaced or removed."""
    try:
        with open(os.path.join(work, _MANIFEST)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return False
    return record.get("key") == key and record.get("partial") == os.path.abspath(partial)


def _write_partial(partial: str, done: Sequence[str], info, work: str, key: str) -> None:
    """A playable clip of the frames done at ``partial``, recorded in the work directory as
    this run's (replacing only a partial clip this run wrote before)."""
    if os.path.lexists(partial):  # checked at the start: this run's own, from before
        files._remove(partial)  # noqa: SLF001
    with files.atomic_path(os.path.join(work, _MANIFEST)) as tmp, open(tmp, "w") as f:
        json.dump({"key": key, "partial": os.path.abspath(partial)}, f)
    video_io.write(partial, list(done), info.fps, info)


def _check_not_inputs(paths: Sequence[str], sources) -> None:
    """Raise if writing any of ``paths`` (the output, its partial file, the work directory)
    would write over an input file: the clip, a style image, or a file an option names
    (``init``, ``weights``, masks)."""
    for path in paths:
        if os.path.lexists(path):
            files.check_not_an_input(path, sources)
