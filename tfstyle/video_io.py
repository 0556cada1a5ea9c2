"""Video files in and out, through PyAV (FFmpeg's libraries, in wheels that bring their own
FFmpeg with H.264, VP9 and GIF encoders: nothing to install beside ``pip install
"tfstyle[video]"``).

A clip is read as RGB frames (uint8 ``(H, W, 3)``), its frame rate and, if it has one, its
first audio stream, which ``write`` copies unchanged (packets remuxed, not re-encoded). A
folder of image files is a clip too (frames in name order, ``FOLDER_FPS`` frames a second),
and so is a GIF; each can be written as well.
"""

from __future__ import annotations

import fractions
import os
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import PIL.Image

from tfstyle import extras, files, images

#: ``extras.hint``'s words for the video extra (PyAV here, OpenCV in ``temporal``).
EXTRA = ("tfstyle video", "PyAV and OpenCV", "video", " (av and opencv-python-headless)")
INSTALL_HINT = extras.hint(*EXTRA)
#: The frame rate of a folder of frames (which has none of its own).
FOLDER_FPS = fractions.Fraction(25)
#: Containers written, by extension: (format, video codec, pixel format, the audio codec the
#: input's audio is re-encoded to where the container cannot hold it as it is; None: no audio).
CONTAINERS = {
    ".mp4": ("mp4", "libx264", "yuv420p", "aac"),
    ".m4v": ("mp4", "libx264", "yuv420p", "aac"),
    ".mov": ("mov", "libx264", "yuv420p", "aac"),
    ".mkv": ("matroska", "libx264", "yuv420p", "aac"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p", "libopus"),
    ".gif": ("gif", None, None, None),  # written by Pillow: a palette of its own per frame
}
#: Image extensions of a folder of frames (read and written).
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


def av():
    """The ``av`` module (PyAV), or one line saying what to install."""
    return extras.need("av", *EXTRA)


class ClipInfo(NamedTuple):
    """What is known of a clip before its frames are decoded."""

    path: str
    fps: fractions.Fraction
    width: int
    height: int
    frames: int | None  # as the container declares it, or its duration (None: neither)
    has_audio: bool
    folder: bool


def is_folder(path: str) -> bool:
    return os.path.isdir(path)


def _folder_frames(path: str) -> list[str]:
    names = sorted(
        n for n in os.listdir(path) if os.path.splitext(n)[1].lower() in FRAME_EXTENSIONS
    )
    return [os.path.join(path, n) for n in names]


def probe(path: str, name: str = "video") -> ClipInfo:
    """The clip's frame rate, size, declared frame count and audio; ``ValueError`` naming
    ``name`` for anything that is not a readable video (no video stream, not a video file, a
    folder without frames)."""
    if is_folder(path):
        frames = _folder_frames(path)
        if not frames:
            raise ValueError(
                f"{name}: the folder {path!r} has no frames ({', '.join(FRAME_EXTENSIONS)} files)"
            )
        sizes = [_frame_size(frame, name) for frame in frames]  # headers only, checked first
        for frame, size in zip(frames, sizes, strict=True):
            if size != sizes[0]:
                raise ValueError(
                    f"{name}: {frame!r} is {size[0]}x{size[1]} px and {frames[0]!r} "
                    f"{sizes[0][0]}x{sizes[0][1]}: every frame must have the first's size"
                )
        width, height = sizes[0]
        _check_sides(path, width, height, name)
        return ClipInfo(path, FOLDER_FPS, width, height, len(frames), False, True)
    files.check_regular(path, name)
    av_ = av()
    try:
        with av_.open(path, metadata_errors="ignore") as container:
            if not container.streams.video:
                raise ValueError(f"{name}: {path!r} has no video stream")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or FOLDER_FPS
            width, height = stream.codec_context.width, stream.codec_context.height
            if not width or not height:  # FFmpeg's probe read no frame (a PNG bomb, say)
                raise ValueError(
                    f"{name}: {path!r} is not a readable video (its "
                    f"{stream.codec_context.name} stream gives no frame size)"
                )
            _check_sides(path, width, height, name)
            frames = stream.frames or None  # Matroska and WebM declare a duration only
            if frames is None and container.duration:
                frames = round(container.duration / av_.time_base * fps) or None
            return ClipInfo(
                path, fractions.Fraction(fps), width, height, frames,
                bool(container.streams.audio), False,
            )  # fmt: skip
    except av_.FFmpegError as err:
        raise ValueError(f"{name}: {path!r} is not a readable video ({_reason(err)})") from None


def _check_sides(path: str, width: int, height: int, name: str) -> None:
    """Frames of at least ``images.MIN_SIDE`` and at most ``images.MAX_INPUT_SIDE`` px a side,
    checked before any frame is decoded."""
    if min(width, height) < images.MIN_SIDE or max(width, height) > images.MAX_INPUT_SIDE:
        raise ValueError(
            f"{name}: {path!r} has frames of {width}x{height} px; each side must be between "
            f"{images.MIN_SIDE} and {images.MAX_INPUT_SIDE} px"
        )


def _frame_size(path: str, name: str) -> tuple[int, int]:
    """A frame file's ``(width, height)`` from its header: a regular file that is an image."""
    files.check_regular(path, name, images._MAX_ENCODED_BYTES)  # noqa: SLF001 (its limit)
    try:
        with PIL.Image.open(path) as img:
            return img.size
    except (OSError, ValueError, PIL.Image.DecompressionBombError) as err:
        raise ValueError(f"{name}: {path!r} is not a readable image file ({err})") from None


def _reason(err) -> str:
    return getattr(err, "strerror", None) or str(err)


def frames(info: ClipInfo, name: str = "video") -> Iterator[np.ndarray]:
    """The clip's frames in order, RGB uint8 ``(H, W, 3)``, decoded one at a time."""
    if info.folder:
        for path in _folder_frames(info.path):
            yield (images.load_image(path, name) * 255.0 + 0.5).astype(np.uint8)
        return
    size = (info.width, info.height)
    av_ = av()
    try:
        with av_.open(info.path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream), 1):
                if (frame.width, frame.height) != size:  # before its pixels are converted
                    raise ValueError(
                        f"{name}: {info.path!r}: frame {index} is {frame.width}x{frame.height} "
                        f"px and the clip {size[0]}x{size[1]}: every frame must have its size"
                    )
                yield frame.to_ndarray(format="rgb24")
    except av_.FFmpegError as err:
        reason = _reason(err)
        raise ValueError(f"{name}: {info.path!r}: a frame cannot be decoded ({reason})") from None


def check_output(path: str, name: str = "output") -> None:
    """Raise unless a clip can be written at ``path``: a known container extension (a file
    there is replaced at the end) or, without an extension, a folder of frames that does not
    exist yet; in a writable directory."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in CONTAINERS and ext != "":
        raise ValueError(
            f"{name}: {path!r}: unknown video extension {ext!r}; one of "
            f"{', '.join(CONTAINERS)}, or a folder (no extension) for PNG frames"
        )
    parent = os.path.dirname(os.path.abspath(path))
    files.check_writable_dir(parent, f"{name}'s directory")
    if ext in CONTAINERS:
        files.check_replaceable(path, name)  # a file is replaced; a FIFO or a device is not
    elif os.path.lexists(path):  # a folder of frames is made new, never mixed with another's
        raise FileExistsError(f"{name}: {path!r} exists; a folder of frames must be new")


def write(path: str, frame_paths: list[str], fps, audio_from: ClipInfo | None = None) -> None:
    """Write the frames (image files, in order) as the clip ``path``: a container by its
    extension (``CONTAINERS``; odd sides lose their last row or column, which H.264 and VP9
    need even) or, without an extension, a folder of PNG frames; the audio of ``audio_from``
    copied when the container takes it. Written beside ``path`` and renamed into place."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in CONTAINERS:
        _write_folder(path, frame_paths)
        return
    if ext == ".gif":
        _write_gif(path, frame_paths, fps)
        return
    fmt, codec, pix_fmt, audio_codec = CONTAINERS[ext]
    av_ = av()
    with files.atomic_path(path) as partial, av_.open(partial, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fractions.Fraction(fps))
        with PIL.Image.open(frame_paths[0]) as first:
            width, height = first.size
        if pix_fmt == "yuv420p":
            width, height = width - width % 2, height - height % 2
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        audio = None
        if audio_codec and audio_from is not None and audio_from.has_audio:
            audio = _AudioCopy(audio_from.path, out, audio_codec)
        for frame_path in frame_paths:
            with PIL.Image.open(frame_path) as img:
                pixels = np.asarray(img.convert("RGB"))[:height, :width]
            frame = av_.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:
            audio.copy(len(frame_paths) / fractions.Fraction(fps))


class _AudioCopy:
    """The first audio stream of a clip, added to ``out`` as it is and copied packet by packet;
    re-encoded to ``codec`` where the container cannot hold it (AAC in WebM)."""

    def __init__(self, source: str, out, codec: str):
        av_ = av()
        self.source = av_.open(source, metadata_errors="ignore")
        self.input = self.source.streams.audio[0]
        self.out, self.resampler = out, None
        try:
            self.output = out.add_stream_from_template(self.input)
        except ValueError:  # "'webm' format does not support 'aac' codec"
            rate = 48000 if codec == "libopus" else self.input.rate
            self.output = out.add_stream(codec, rate=rate)
            self.output.layout = self.input.layout.name
            self.resampler = av_.AudioResampler(
                format=self.output.format.name, layout=self.input.layout.name, rate=rate
            )

    def copy(self, seconds) -> None:
        """The audio up to ``seconds`` (the video's length)."""
        try:
            if self.resampler is None:
                self._copy_packets(seconds)
            else:
                self._reencode(seconds)
        finally:
            self.source.close()

    def _copy_packets(self, seconds) -> None:
        for packet in self.source.demux(self.input):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            if packet.pts is not None and packet.pts * packet.time_base > seconds:
                break
            packet.stream = self.output
            self.out.mux(packet)

    def _reencode(self, seconds) -> None:
        def encode(frames):
            for frame in frames:
                for packet in self.output.encode(frame):
                    self.out.mux(packet)

        for frame in self.source.decode(self.input):
            if frame.pts is not None and frame.pts * frame.time_base > seconds:
                break
            encode(self.resampler.resample(frame))
        encode(self.resampler.resample(None))
        encode([None])


def _write_gif(path: str, frame_paths: list[str], fps) -> None:
    """An animated GIF, each frame quantised by Pillow to a palette of its own (FFmpeg's GIF
    encoder takes palette frames only), looping; frames read one at a time. A GIF's delays are
    whole hundredths of a second: 12 frames a second become 12.5."""

    def rest():
        for frame_path in frame_paths[1:]:
            with PIL.Image.open(frame_path) as img:
                yield img.convert("RGB")

    duration = round(1000 / float(fps))  # ms a frame
    with PIL.Image.open(frame_paths[0]) as first, files.atomic_path(path) as partial:
        first.convert("RGB").save(
            partial, format="GIF", save_all=True, append_images=rest(), duration=duration, loop=0
        )


def _write_folder(path: str, frame_paths: list[str]) -> None:
    """The frames as ``path/frame-000001.png`` ...: made in a folder beside it, renamed into
    place (``path`` must not exist)."""
    if os.path.lexists(path):
        raise FileExistsError(f"output: {path!r} exists; a folder of frames is made new")
    with files.atomic_path(path, directory=True) as partial:
        for k, frame_path in enumerate(frame_paths, 1):
            with PIL.Image.open(frame_path) as img:
                img.convert("RGB").save(os.path.join(partial, f"frame-{k:06d}.png"))
