"""Video: flow, warp and consistency on known motion; real clips in and out (PyAV), the temporal
term, resume after Ctrl-C, bad input. Tiny generated clips (a pan across a smooth image) and
random weights."""

import fractions
import os

import numpy as np
import PIL.Image
import pytest
from helpers import bomb_png, smooth_image

av = pytest.importorskip("av", reason="the video tests need the 'video' extra")
pytest.importorskip("cv2", reason="the video tests need the 'video' extra")

import tfstyle  # noqa: E402
from tfstyle import api, cli, temporal, video_io  # noqa: E402
from tfstyle import clip as clips  # noqa: E402

#: Every frame a 48 x 64 window, 2 px further right than the last, of this image.
PANORAMA = (smooth_image(3, 48, 160) * 255).round().astype(np.uint8)
FRAMES = 8
SHIFT = 2
FAST = {"size": 32, "iterations": 4, "weights": None, "seed": 0}
VIDEO = {"frame_iterations": 3, "progress": False, **FAST}


def pan(frames: int = FRAMES) -> list:
    return [PANORAMA[:, SHIFT * t : SHIFT * t + 64] for t in range(frames)]


def write_clip(path, frames, fps=12, audio: bool = False) -> str:
    """An H.264 mp4 (or any container PyAV guesses from ``path``) of ``frames``, with a second
    of 440 Hz AAC audio if ``audio``."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        (stream.height, stream.width), stream.pix_fmt = frames[0].shape[:2], "yuv420p"
        stream.options = {"crf": "10"}
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=44100)
            sound.layout = "mono"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if sound is not None:
            t = np.arange(44100) / 44100
            samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            chunk = 1024
            for i in range(0, samples.shape[1] - chunk, chunk):
                frame = av.AudioFrame.from_ndarray(
                    samples[:, i : i + chunk], format="flt", layout="mono"
                )
                frame.sample_rate, frame.pts = 44100, i
                for packet in sound.encode(frame):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return str(path)


def read_clip(path) -> tuple[list, fractions.Fraction, bool]:
    info = video_io.probe(str(path))
    return list(video_io.frames(info)), info.fps, info.has_audio


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    return write_clip(tmp_path_factory.mktemp("clip") / "pan.mp4", pan(), audio=True)


@pytest.fixture
def style(image_files) -> str:
    return image_files[1]


# -- flow, warp, consistency ---------------------------------------------------------------------


def test_flow_of_a_known_shift_is_recovered():
    first, second = pan(2)  # the scene moves 2 px to the left from first to second
    forward = temporal.flow(first, second)
    inner = forward[8:-8, 8:-8]
    assert np.abs(np.median(inner[..., 0]) + SHIFT) < 0.25
    assert np.abs(np.median(inner[..., 1])) < 0.25


def test_warp_of_a_known_shift_is_exact_away_from_the_borders():
    image = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    backward = np.zeros((20, 30, 2), np.float32)
    backward[..., 0], backward[..., 1] = 3.0, -2.0  # frame t's pixel p was at p + (3, -2)
    warped = temporal.warp(image, backward).numpy()
    np.testing.assert_array_equal(warped[2:, :-3], image[:-2, 3:])
    half = np.zeros_like(backward)
    half[..., 0] = 0.5  # halfway between two columns: their mean
    np.testing.assert_allclose(
        temporal.warp(image, half).numpy()[:, :-1], (image[:, :-1] + image[:, 1:]) / 2, atol=1e-6
    )


def test_consistency_is_zero_where_a_region_appears():
    # A square moves 6 px right over a still background: the strip of background it uncovers
    # was hidden in the first frame.
    background = (smooth_image(4, 64, 64) * 255).astype(np.uint8)
    square = (smooth_image(7, 20, 20) * 255).astype(np.uint8)
    first, second = background.copy(), background.copy()
    first[22:42, 14:34], second[22:42, 20:40] = square, square
    mask = temporal.consistency(temporal.flow(second, first), temporal.flow(first, second))
    assert mask.shape == (64, 64, 1) and set(np.unique(mask)) <= {0.0, 1.0}
    assert mask[24:40, 14:20].mean() < 0.25  # uncovered: no pixel of the first frame is there
    assert mask[:14].mean() > 0.95 and mask[50:].mean() > 0.95  # still background: consistent
    # A pan: what enters the frame at the right was outside the previous one.
    first, second = pan(2)
    mask = temporal.consistency(temporal.flow(second, first), temporal.flow(first, second))
    assert mask[8:-8, -SHIFT:].max() == 0 and mask[8:-8, 8:-8].mean() > 0.9


# -- clips in and out ----------------------------------------------------------------------------


def test_read_and_write_keep_frames_rate_and_audio(clip, tmp_path):
    frames, fps, has_audio = read_clip(clip)
    assert len(frames) == FRAMES and fps == 12 and has_audio
    luma = [np.asarray(PIL.Image.fromarray(f).convert("L"), int) for f in (frames[3], pan()[3])]
    assert np.abs(luma[0] - luma[1]).mean() < 3  # H.264 at crf 10 (colour at half resolution)
    paths = []
    for k, frame in enumerate(frames):
        paths.append(str(tmp_path / f"{k}.png"))
        PIL.Image.fromarray(frame).save(paths[-1])
    for name in ("copy.mp4", "copy.webm", "copy.mov", "copy.gif", "frames"):
        out = str(tmp_path / name)
        video_io.write(out, paths, fps, video_io.probe(clip))
        again, rate, audio = read_clip(out)
        assert len(again) == FRAMES and again[0].shape == (48, 64, 3), name
        if name == "copy.gif":  # a GIF's delays are in hundredths of a second: 8 for 1/12
            assert rate == 12.5
        else:
            assert rate == (video_io.FOLDER_FPS if name == "frames" else 12), name
        assert audio == (name in ("copy.mp4", "copy.webm", "copy.mov")), name
    with av.open(clip) as a, av.open(str(tmp_path / "copy.mp4")) as b:  # copied, not re-encoded
        original = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
        copied = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    assert copied and copied == original[: len(copied)]


# -- the run -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def styled(clip, tmp_path_factory) -> tuple:
    """The clip stylised once (``VIDEO``), and its frames."""
    style = tmp_path_factory.mktemp("style") / "style.png"
    PIL.Image.fromarray((smooth_image(1, 64, 64) * 255).round().astype(np.uint8)).save(style)
    out = str(tmp_path_factory.mktemp("out") / "styled")  # a folder of frames: exact pixels
    assert clips.video(clip, str(style), out, **VIDEO) == out
    return str(style), out, read_clip(out)[0]


def test_every_frame_after_the_first_is_the_temporal_step_of_the_last(clip, styled):
    style, out, frames = styled
    assert len(frames) == FRAMES and frames[0].shape == (24, 32, 3)
    assert not os.path.exists(out + clips.WORK_SUFFIX)  # removed once the clip is written
    content = read_clip(clip)[0]
    assert np.array_equal(
        frames[0], np.asarray(tfstyle.transfer(content[0], style, progress=False, **FAST))
    )
    # Frame 3 again, by hand, from frame 2's result: the flow, the mask, the warp, the steps.
    later = api.Stylizer(style, **{**FAST, "iterations": 3, "min_scale": 32, "progress": False})
    small = [
        np.asarray(PIL.Image.fromarray(c).resize((32, 24), PIL.Image.BILINEAR)) for c in content
    ]
    backward = temporal.flow(small[3], small[2])
    mask = temporal.consistency(backward, temporal.flow(small[2], small[3]))
    warped = temporal.warp(frames[2] / np.float32(255), backward).numpy()
    again = later(content[3], init=warped, temporal=(warped, mask, 50.0))
    assert np.array_equal(np.asarray(again), frames[3])
    # Weight 0: no temporal term, the same start: the plain run from the warped image. A very
    # large weight holds the frame where the mask is 1 to the warped image.
    free = later(content[3], init=warped, temporal=(warped, mask, 0.0))
    plain = np.asarray(later(content[3], init=warped))
    assert np.array_equal(np.asarray(free), plain)
    held = np.asarray(later(content[3], init=warped, temporal=(warped, mask, 1e9)), int)
    start = np.round(warped * 255).astype(int)
    ones = mask[..., 0] == 1
    assert ones.mean() > 0.5 and np.abs(held - start)[ones].max() <= 1
    assert np.abs(plain.astype(int) - start)[ones].max() > 10


def test_ctrl_c_keeps_the_frames_done_and_the_same_command_resumes(
    clip, styled, tmp_path, monkeypatch
):
    style, _, frames = styled
    out = str(tmp_path / "styled.mp4")
    real, calls = api.Stylizer.__call__, []

    def interrupted_at_the_fourth(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(api.Stylizer, "__call__", interrupted_at_the_fourth)
    with pytest.raises(clips.VideoInterrupted) as stop:
        clips.video(clip, style, out, **VIDEO)
    assert stop.value.done == 3 and stop.value.partial == str(tmp_path / "styled.partial.mp4")
    assert len(read_clip(stop.value.partial)[0]) == 3 and not os.path.exists(out)
    work = out + clips.WORK_SUFFIX
    assert sorted(os.listdir(work)) == ["frame-000001.png", "frame-000002.png",
                                        "frame-000003.png", "run.json"]  # fmt: skip
    monkeypatch.setattr(api.Stylizer, "__call__", real)
    calls.clear()
    folder = str(tmp_path / "resumed")
    os.rename(work, folder + clips.WORK_SUFFIX)  # the same run, written as frames to compare
    # (the run's key does not include the output's name)
    clips.video(clip, style, folder, **VIDEO)
    assert [np.array_equal(a, b) for a, b in zip(read_clip(folder)[0], frames, strict=True)] == [
        True
    ] * FRAMES


def test_cli_video_writes_a_playable_clip_with_the_audio(clip, style, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    argv = ["video", clip, style, "-o", str(out), "--size", "32", "--iterations", "2",
            "--frame-iterations", "1", "--weights", "none", "--max-frames", "3", "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    frames, fps, has_audio = read_clip(out)
    assert len(frames) == 3 and fps == 12 and has_audio and frames[0].shape == (24, 32, 3)
    assert capsys.readouterr().err == ""


def test_a_truncated_clip_is_written_and_said_to_be_short(style, tmp_path, capsys):
    # Probe round 7b (issue 29): FFmpeg reads a Matroska file cut in half up to the cut, with no
    # error, and the output was silently half the clip.
    whole = write_clip(tmp_path / "whole.mkv", pan(12))
    assert video_io.probe(whole).frames == 12  # from the duration: a whole file is not short
    cut, nothing_left = tmp_path / "cut.mkv", tmp_path / "half.mkv"
    data = open(whole, "rb").read()
    cut.write_bytes(data[: len(data) * 9 // 10])
    nothing_left.write_bytes(data[: len(data) // 2])  # the frames are all in the second half
    out = tmp_path / "out.mp4"
    argv = ["video", str(nothing_left), style, "-o", str(out), "--weights", "none", "-q"]
    assert cli.main(argv) == 1 and not out.exists()
    assert capsys.readouterr().err == (
        f"tfstyle: error: video: {str(nothing_left)!r} has no frames that can be decoded (its "
        "header declares about 12: the file may be truncated)\n"
    )
    out = tmp_path / "out.mp4"
    argv = ["video", str(cut), style, "-o", str(out), "--size", "32", "--iterations", "2",
            "--frame-iterations", "1", "--weights", "none", "-q"]  # fmt: skip
    assert cli.main(argv) == 0
    written = len(read_clip(out)[0])
    assert 0 < written < 12
    assert capsys.readouterr().err == (
        f"tfstyle: warning: video: {str(cut)!r} ended after {written} frames where its header "
        f"declares about 12: the file may be truncated; {out} has the {written}\n"
    )


@pytest.mark.parametrize(
    "make, output, message",
    [
        (lambda d: _text(d / "a.mp4"), "o.mp4", "video: .* is not a readable video"),
        (lambda d: str(d / "missing.mp4"), "o.mp4", "video: no such file"),
        (lambda d: str(d), "o.mp4", "the folder .* has no frames"),
        (lambda d: write_clip(d / "tiny.mp4", [f[:8, :12] for f in pan(3)]), "o.mp4",
         "frames of 12x8 px; each side must be between 16 and 8192 px"),
        (lambda d: _audio_only(d / "a.m4a"), "o.mp4", "has no video stream"),
        (lambda d: write_clip(d / "c.mp4", pan(2)), "o.avi", "unknown video extension '.avi'"),
        (
            lambda d: write_clip(d / "c.mp4", pan(2)),
            "in",
            "output: .*in' exists; a folder of frames must be new",
        ),
        # Probe round 7 (issue 29): a frame side over 8192 px is refused before any frame is
        # decoded (a 1.6 MB clip of 16000 px frames took 3.8 GB, then a traceback) ...
        (lambda d: _png_clip(d / "wide.mov", 9000, 16), "o.mp4", "frames of 9000x16 px"),
        # a PNG bomb named .mp4 (probe round 10's 3 GB file: "frames of 0x0 px"): FFmpeg reads
        # it as a stream of PNGs and finds no frame size
        (lambda d: _bytes(d / "bomb.mp4", bomb_png()), "o.mp4",
         "bomb.mp4' is not a readable video \\(its png stream gives no frame size\\)"),
        # ... and so is a folder frame's, from its header (a PNG declaring 100000 px a side)
        (lambda d: _frames(d, [(32, 24)], bomb=True), "o", "not a readable image file"),
        # a FIFO among a folder's frames (it hung), frames of different sizes (a traceback)
        (lambda d: _frames(d, [(32, 24)], fifo=True), "o", "is not a regular file .*a FIFO"),
        (lambda d: _frames(d, [(32, 24), (24, 32)]), "o", "every frame must have the first's"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_nothing_is_written(
    tmp_path, style, capsys, make, output, message
):
    import re

    (tmp_path / "in").mkdir()
    source = make(tmp_path / "in")
    before = sorted(os.listdir(tmp_path))
    out = tmp_path / output
    argv = ["video", source, style, "-o", str(out), "--weights", "none", "--size", "32", "-q"]
    assert cli.main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfstyle: error: "), lines
    assert re.search(message, lines[0]), lines
    assert sorted(os.listdir(tmp_path)) == before  # no output, no work directory


def _png_clip(path, width: int, height: int) -> str:
    """A clip of two frames stored as PNG (FFmpeg's png codec): any size, a small file."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("png", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        for _ in range(2):
            frame = np.zeros((height, width, 3), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return str(path)


def _frames(directory, sizes, bomb: bool = False, fifo: bool = False) -> str:
    """A folder of frames of ``sizes`` ((width, height) each); the first a PNG whose header
    declares 100000 px a side (``bomb``), or a FIFO (``fifo``)."""
    folder = directory / "frames"
    folder.mkdir()
    for k, (width, height) in enumerate(sizes):
        PIL.Image.fromarray(PANORAMA[:height, :width]).save(folder / f"f{k + 1}.png")
    if bomb:
        (folder / "f0.png").write_bytes(bomb_png())
    if fifo:
        os.mkfifo(folder / "f0.png")
    return str(folder)


def _text(path) -> str:
    path.write_text("not a video")
    return str(path)


def _bytes(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _audio_only(path) -> str:
    with av.open(str(path), "w", format="mp4") as out:
        sound = out.add_stream("aac", rate=44100)
        sound.layout = "mono"
        samples = np.zeros((1, 1024), np.float32)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    return str(path)


def test_api_options_are_checked_before_any_file(tmp_path):
    with pytest.raises(TypeError, match="unknown video option.s. callback, sise; allowed: size"):
        tfstyle.video(str(tmp_path / "missing.mp4"), "s.png", str(tmp_path / "o.mp4"), sise=3,
                      callback=print)  # fmt: skip
    with pytest.raises(ValueError, match="frame_iterations must be an integer"):
        tfstyle.video("missing.mp4", "s.png", "o.mp4", frame_iterations=1.5)
    assert os.listdir(tmp_path) == []


# -- many clips: tfstyle batch -------------------------------------------------------------------


def test_batch_takes_clips_in_order_and_records_a_clip_that_cannot_be_read(clip, style, tmp_path):
    pytest.importorskip("apache_beam", reason="tfstyle batch needs the 'beam' extra")
    import json
    import shutil

    from tfstyle import batch, batch_files

    (tmp_path / "in").mkdir()
    shutil.copy(clip, tmp_path / "in" / "pan.mov")  # any of the video extensions
    (tmp_path / "in" / "bad.mp4").write_text("not a video")
    quick = {**FAST, "iterations": 2, "frame_iterations": 1}
    counts = batch.run(str(tmp_path / "in"), style, str(tmp_path / "out"), progress=False, **quick)
    assert (counts.done, counts.failed) == (1, 1)
    lines = (tmp_path / "out" / batch_files.DEAD_LETTER).read_text().splitlines()
    (record,) = [json.loads(line) for line in lines]
    assert record["input"] == str(tmp_path / "in" / "bad.mp4")
    assert "is not a readable video" in record["error"] and str(tmp_path / "in") in record["error"]
    expected = tfstyle.video(clip, style, str(tmp_path / "expected.mp4"), progress=False, **quick)
    got, fps, has_audio = read_clip(tmp_path / "out" / "pan.mov.mp4")
    assert len(got) == FRAMES and fps == 12 and has_audio
    assert all(np.array_equal(a, b) for a, b in zip(got, read_clip(expected)[0], strict=True))


def test_a_work_directory_of_another_run_is_not_mixed_in(clip, style, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    work = tmp_path / ("o.mp4" + clips.WORK_SUFFIX)
    work.mkdir()
    (work / "run.json").write_text('{"key": "another run"}')
    (work / "frame-000001.png").write_bytes(b"someone else's")
    argv = ["video", clip, style, "-o", str(out), "--weights", "none", "--size", "32", "-q"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds the frames of another run" in err
    assert sorted(os.listdir(work)) == ["frame-000001.png", "run.json"] and not out.exists()


@pytest.mark.parametrize("module", ["av", "cv2"])
def test_without_the_video_extra_one_line_says_what_to_install(
    clip, style, tmp_path, capsys, monkeypatch, module
):
    monkeypatch.setitem(__import__("sys").modules, module, None)  # "import av" fails
    argv = ["video", clip, style, "-o", str(tmp_path / "o.mp4"), "--weights", "none"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err == f"tfstyle: error: {video_io.INSTALL_HINT}\n"
    assert not (tmp_path / "o.mp4").exists()


def test_nothing_it_did_not_write_is_written_over(clip, style, tmp_path, capsys):
    """Probe round 7 (issue 29): the output over an input (the clip, the style image) ran and
    replaced it; a stopped run's OUT.partial.EXT replaced a file (or a folder) of that name."""
    import shutil

    own, gif = str(tmp_path / "own.mp4"), str(tmp_path / "style.gif")
    shutil.copy(clip, own)
    PIL.Image.open(style).save(gif)  # a style image that is also a video's extension
    flags = ["--weights", "none", "--size", "32", "-q"]
    for argv, says in (
        (["video", own, style, "-o", own], f"'{own}' is also an input"),
        (["video", clip, gif, "-o", gif], f"'{gif}' is also an input"),
    ):
        assert cli.main([*argv, *flags]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err
    for partial in ("out.partial.mp4", "frames.partial"):
        target = tmp_path / partial
        (target.mkdir() if "." not in partial[-5:] else target.write_text("mine"))
        output = str(tmp_path / partial.replace(".partial", ""))
        assert cli.main(["video", clip, style, "-o", output, *flags]) == 1
        err = capsys.readouterr().err
        assert f"output: '{target}' exists; a stopped run writes the frames done there" in err
    assert (tmp_path / "out.partial.mp4").read_text() == "mine"
    assert filecmp_same(own, clip) and os.path.isdir(tmp_path / "frames.partial")


def filecmp_same(a, b) -> bool:
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def test_sigterm_stops_a_video_as_ctrl_c_does_and_its_partial_clip_is_replaced_then_removed(
    clip, style, tmp_path, capsys, monkeypatch
):
    from tfstyle import interrupts

    out = tmp_path / "o.mp4"
    argv = ["video", clip, style, "-o", str(out), "--weights", "none", "--size", "32",
            "--iterations", "2", "--frame-iterations", "1", "-q"]  # fmt: skip
    real, calls = api.Stylizer.__call__, []

    def stopped(at):
        def call(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == at:
                raise interrupts.Terminated
            return real(self, *args, **kwargs)

        return call

    monkeypatch.setattr(api.Stylizer, "__call__", stopped(3))
    assert cli.main(argv) == 143
    err = capsys.readouterr().err
    partial = tmp_path / "o.partial.mp4"
    assert "terminated after 2 of 8 frames;" in err and len(read_clip(partial)[0]) == 2
    calls.clear()
    monkeypatch.setattr(api.Stylizer, "__call__", stopped(3))  # one more frame, stopped again
    assert cli.main(argv) == 143
    assert len(read_clip(partial)[0]) == 4  # its own partial clip, replaced
    monkeypatch.setattr(api.Stylizer, "__call__", real)
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert len(read_clip(out)[0]) == FRAMES and not partial.exists()
    assert not os.path.exists(str(out) + clips.WORK_SUFFIX)


def test_the_benchmark_script_runs_and_writes_its_results(tmp_path, capsys):
    """benchmarks/video.py at a toy size: both methods and a variant run, each judged by the
    three measures, and the clips, the strip and the results written."""
    import json
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
    import video as bench  # benchmarks/video.py

    out = tmp_path / "out"
    argv = ["--frames", "4", "--size", "32", "--shift", "2", "--iterations", "4",
            "--frame-iterations", "2", "--also", "1:5", "--out", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    result = json.loads((out / "video.json").read_text())
    rows = result["results"]
    assert list(rows) == ["temporal", "independent", "temporal 1 its, weight 5"]
    for name, row in rows.items():
        assert len(row["per_frame"]) == 3 and len(row["objective_per_frame"]) == 4, name
        assert row["objective"] == pytest.approx(np.mean(row["objective_per_frame"]))
        assert all(0 < o < np.inf for o in row["objective_per_frame"])
        assert all(np.isfinite(row["strength_per_frame"])) and row["temporal_error"] > 0
        clip_name = name.replace(" ", "-").replace(",", "")
        frames, _, _ = read_clip(out / f"{clip_name}.mp4")
        assert len(frames) == 4 and frames[0].shape == (24, 32, 3)
    # Both temporal runs paint the first frame alike (the same transfer); they differ after it.
    first = [rows[n]["objective_per_frame"] for n in ("temporal", "temporal 1 its, weight 5")]
    assert first[0][0] == first[1][0] and first[0][1:] != first[1][1:]
    assert 1 <= result["independent_iterations"] <= 40
    with PIL.Image.open(out / "strip.jpg") as strip:
        assert strip.size == (4 * 32, 3 * 24)  # content, temporal, independent; 4 frames
    printed = capsys.readouterr().out
    assert "| objective, later frames (vs independent) |" in printed
    assert "x (target: at least 3x)" in printed and "1.00x) |" in printed  # independent's own
    with pytest.raises(SystemExit) as refused:  # no fit of the independent frames' time
        bench.main([*argv, "--iterations", "1"])
    assert refused.value.code == 2 and "--iterations must be at least 2" in capsys.readouterr().err
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no frames left behind
