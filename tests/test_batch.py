"""Batch stylisation on Apache Beam (``tfstyle batch``, ``tfstyle.batch``): real pipelines on
Beam's local runner over tiny images, compared with ``tfstyle.transfer``."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import PIL.Image
import pytest

pytest.importorskip("apache_beam")

import tfstyle  # noqa: E402
from tfstyle import batch, batch_files, cli  # noqa: E402

# Two scales (24 and 48 px), so that the style targets are computed at two sizes.
OPTIONS = dict(
    weights=None, seed=3, size=48, min_scale=24, iterations=6, precision="float32"
)  # fmt: skip
FLAGS = ["--weights", "none", "--seed", "3", "--size", "48", "--min-scale", "24",
         "--iterations", "6", "--precision", "float32"]  # fmt: skip
GOOD = {"a.jpg": (40, 48), "a.png": (48, 40), "sub/c.png": (48, 48), "sub/d.jpg": (36, 48)}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A directory of four images (two named alike, two in a subdirectory), one corrupt JPEG,
    and a style image."""
    root = tmp_path_factory.mktemp("batch")
    rng = np.random.default_rng(0)
    for name, (h, w) in GOOD.items():
        (root / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(root / "in" / name, quality=95)
    (root / "in" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG after all")
    PIL.Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(root / "style.png")
    return root


@pytest.fixture(scope="module")
def first_run(inputs):
    """The first run, in process (one worker): its counts."""
    return batch.run(
        str(inputs / "in"), str(inputs / "style.png"), str(inputs / "out"), workers=1,
        progress=False, **OPTIONS,
    )  # fmt: skip


def _snapshot(directory) -> dict:
    return {
        os.path.relpath(os.path.join(d, f), directory): (
            os.stat(os.path.join(d, f)).st_mtime_ns,
            open(os.path.join(d, f), "rb").read(),
        )
        for d, _, names in os.walk(directory)
        for f in names
    }


@pytest.mark.slow
def test_outputs_equal_transfer_and_failure_is_recorded(inputs, first_run):
    # Once per worker: one network, the style targets once per scale (not once per image).
    assert first_run == batch.Counts(done=4, skipped=0, failed=1, models_loaded=1,
                                     style_targets=2)  # fmt: skip
    out = inputs / "out"
    for name in GOOD:
        expected = tfstyle.transfer(
            str(inputs / "in" / name), str(inputs / "style.png"), progress=False, **OPTIONS
        )
        written = PIL.Image.open(out / (name + ".png"))
        assert written.size == expected.size
        np.testing.assert_array_equal(np.asarray(written), np.asarray(expected))
    lines = (out / batch_files.DEAD_LETTER).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records == [
        {
            "input": str(inputs / "in" / "bad.jpg"),
            "error": records[0]["error"],
        }
    ]
    assert records[0]["error"].startswith("content: the bytes given are not an encoded image")
    assert "\n" not in records[0]["error"]
    written = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out)
                     for f in fs)  # fmt: skip
    assert written == sorted([n + ".png" for n in GOOD] + [batch_files.DEAD_LETTER])


@pytest.mark.slow
def test_rerun_skips_what_is_done(inputs, first_run, capsys):
    out = inputs / "out"
    before = _snapshot(out)
    code = cli.main(
        ["batch", str(inputs / "in"), str(inputs / "style.png"), "-o", str(out), "--workers",
         "1", "-q", *FLAGS]
    )  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1  # an input failed
    assert len(lines) == 1
    assert lines[0].startswith("tfstyle: 0 done, 4 skipped, 1 failed (listed in ")
    after = _snapshot(out)
    dead_letter = before.pop(batch_files.DEAD_LETTER)[1]
    assert after.pop(batch_files.DEAD_LETTER)[1] == dead_letter  # written again, the same line
    assert after == before  # no output written again (same bytes, same modification time)


@pytest.mark.slow
@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_prints_nothing_when_nothing_failed(inputs, tmp_path, capfd, quiet):
    (tmp_path / "in").mkdir()
    shutil.copy(inputs / "in" / "a.png", tmp_path / "in" / "a.png")
    shutil.copy(inputs / "in" / "a.jpg", tmp_path / "in" / "a.jpg")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.jpg.png").write_bytes(b"\x89PNG")  # done before: skipped
    argv = ["batch", str(tmp_path / "in"), str(inputs / "style.png"), "-o", str(tmp_path / "out"),
            "--workers", "1", *FLAGS] + (["-q"] if quiet else [])  # fmt: skip
    code = cli.main(argv)
    out, err = capfd.readouterr()
    assert code == 0, err
    assert (tmp_path / "out" / "a.png.png").stat().st_size > 0
    assert out == ""
    if quiet:
        assert err == ""
    else:
        assert "tfstyle: 1 done, 1 skipped, 0 failed; network built 1x" in err


@pytest.mark.slow
def test_ctrl_c_keeps_complete_outputs_and_the_same_command_does_the_rest(inputs, tmp_path, capsys):
    """Ctrl-C in a real process; the same command, run again (in this process: what is tested
    is what it does with the outputs there, not how it starts), does the rest."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(1)
    for k in range(4):
        pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        PIL.Image.fromarray(pixels).save(src / f"{k}.png")
    argv = [sys.executable, "-m", "tfstyle", "batch", str(src), str(inputs / "style.png"), "-o",
            str(out), "-q", *FLAGS, "--iterations", "20"]  # fmt: skip

    def written():
        return sorted(p.name for p in out.glob("*.png") if not p.name.startswith("."))

    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out.is_dir() and written()):  # Ctrl-C once the first output is there
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [
        "tfstyle: interrupted; the outputs written are complete: run the same command again to "
        "do the rest"
    ]
    assert not [p for p in os.listdir(out) if p.startswith(".tfstyle-batch-")]  # its own: gone
    kept = written()
    assert 1 <= len(kept) < 4
    for name in kept:  # every output under its own name is whole
        with PIL.Image.open(out / name) as image:
            image.load()
            assert image.size == (48, 48)
    loud = [a for a in argv[3:] if a != "-q"]  # the closing line, to count what the rerun did
    capsys.readouterr()
    code = cli.main(loud)
    again = capsys.readouterr().err
    assert code == 0, again
    assert f"tfstyle: {4 - len(kept)} done, {len(kept)} skipped, 0 failed;" in again
    assert written() == [f"{k}.png.png" for k in range(4)]


@pytest.mark.slow
def test_sigterm_stops_a_batch_as_ctrl_c_does(inputs, tmp_path):
    """A scheduler's SIGTERM: the run's own files removed, a line saying so, exit 143."""
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "tfstyle", "batch", str(inputs / "in"), str(inputs / "style.png"),
            "-o", str(out), "-q", *FLAGS, "--iterations", "200"]  # fmt: skip
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240

    def staged():
        return out.is_dir() and [p for p in os.listdir(out) if p.startswith(".tfstyle-batch-")]

    while not staged():  # the run has begun
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the batch ended or hung before it began: {proc.communicate()[1]}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("tfstyle: terminated; the outputs written are")
    assert not staged()


def _declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (its pixels are 8 x 8)."""
    buffer = io.BytesIO()
    PIL.Image.new("RGB", (8, 8)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.slow
def test_two_workers_load_the_model_once_each(inputs, first_run, tmp_path):
    """Local parallelism: two worker processes, each builds the network once and computes the
    style targets once per scale; the pixels do not depend on the worker. A too small and a
    too large input fail with their own errors."""
    shutil.copytree(inputs / "in", tmp_path / "in")
    (tmp_path / "in" / "bad.jpg").unlink()
    PIL.Image.new("RGB", (96, 4)).save(tmp_path / "in" / "thin.png")
    (tmp_path / "in" / "huge.png").write_bytes(_declaring(9000, 9000))
    counts = batch.run(
        str(tmp_path / "in"), str(inputs / "style.png"), str(tmp_path / "out"), workers=2,
        progress=False, **OPTIONS,
    )  # fmt: skip
    assert counts == batch.Counts(done=4, skipped=0, failed=2, models_loaded=2,
                                  style_targets=4)  # fmt: skip
    for name in GOOD:
        assert (tmp_path / "out" / (name + ".png")).read_bytes() == (
            inputs / "out" / (name + ".png")
        ).read_bytes()
    lines = (tmp_path / "out" / batch_files.DEAD_LETTER).read_text().splitlines()
    errors = {os.path.basename(r["input"]): r["error"] for r in map(json.loads, lines)}
    assert errors == {
        "huge.png": "content: each side must be between 1 and 8192 px; got 9000x9000 "
        "(width x height)",
        "thin.png": errors["thin.png"],
    }
    assert errors["thin.png"].startswith("content: a 96x4 image becomes 48x2 at size=")
    assert "shorter side must be at least 16 px" in errors["thin.png"]


@pytest.mark.parametrize(
    "change, message",
    [
        (["--size", "8"], "size must be between 16 and 4096; got 8"),
        (["--optimizer", "sgd"], "optimizer must be one of"),
        (["--workers", "0"], "workers must be an integer between 1 and"),
        (["--workers", str((os.cpu_count() or 1) + 1)], "workers must be an integer between 1"),
        (
            ["--", "--direct_num_workers=abc"],
            "beam options: argument --direct_num_workers: invalid int value: 'abc'",
        ),
        (["--", "--bogus_flag=1", "stray"], "beam options: not understood: --bogus_flag=1 stray"),
        (["--runner", "DataflowRunner", "--workers", "2"], "workers sets the local runner's"),
        (["--init", "missing.png"], "init: no such file"),
    ],
)
def test_bad_option_fails_before_the_pipeline(inputs, tmp_path, capsys, change, message):
    out = tmp_path / "out"
    code = cli.main(
        ["batch", str(inputs / "in"), str(inputs / "style.png"), "-o", str(out), *FLAGS, *change]
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("tfstyle: error: "), lines
    assert message in lines[0]
    assert not out.exists()  # checked before anything was made


@pytest.mark.parametrize(
    "content, out, message",
    [
        ("in/nothing*.jpg", "out", "no files in"),
        ("missing", "out", "content: no such file or directory"),
        ("in", "in", "is the input directory"),
        ("in/sub", "in", "is the input directory"),
        ("in", "nowhere/out", "OUT_DIR's parent: directory does not exist: "),
        ("in", "style.png/out", "style.png' is a file, not a directory"),  # said so (issue 29)
        ("", "out", "content: a path or URL is needed; got ''"),  # an empty shell variable
        ("in", "link", "is the input directory"),  # a link to it: the same place
        ("link", "in", "is the input directory"),
        ("in", "loop", "OUT_DIR: '{dir}/loop' is a link that loops, not a directory"),
        # Beam's dead-letter writer reads OUT_DIR as a pattern (probe, issue 29)
        ("in", "out[1]", "has a glob character (* ? [)"),
    ],
)
def test_bad_input_or_output_fails_before_the_pipeline(inputs, capsys, content, out, message):
    if not (inputs / "link").exists():
        (inputs / "link").symlink_to(inputs / "in")
    if not os.path.lexists(inputs / "loop"):
        (inputs / "loop").symlink_to(inputs / "loop")  # its own target: it said "File exists"
    message = message.format(dir=inputs)
    content = str(inputs / content) if content else ""
    before = _snapshot(inputs / "in")
    code = cli.main(
        ["batch", content, str(inputs / "style.png"), "-o", str(inputs / out), *FLAGS]
    )  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(lines) == 1 and message in lines[0], lines
    assert _snapshot(inputs / "in") == before


def test_inputs_named_by_globs_and_odd_names(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ["a.png", "[b].png", "sub/c.png", ".hidden.png"]:
        (tmp_path / "in" / name).write_bytes(b"x")
    out = str(tmp_path / "out")
    root, found = batch_files.list_inputs(str(tmp_path / "in" / "**" / "*.png"), out)
    # "**" also stands for no directory at all, as in a shell with globstar.
    assert [os.path.relpath(p, root) for p in found] == ["[b].png", "a.png", "sub/c.png"]
    # A link to nothing is an input (that will fail, named), not silently left out.
    (tmp_path / "in" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    every = ["[b].png", "a.png", "gone.png", "sub/c.png"]
    root, found = batch_files.list_inputs(str(tmp_path / "in"), out)
    assert [os.path.relpath(p, root) for p in found] == every
    # A file that exists is that file, though its name would be a pattern.
    assert batch_files.list_inputs(str(tmp_path / "in" / "[b].png"), out)[1] == [
        str(tmp_path / "in" / "[b].png")
    ]
    # So is a directory (issue 29: "g[1]" was read as a pattern, and found no file).
    (tmp_path / "in").rename(tmp_path / "g[1]")
    root, found = batch_files.list_inputs(str(tmp_path / "g[1]"), out)
    assert [os.path.relpath(p, root) for p in found] == every


def test_only_a_complete_output_is_skipped(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "done.png").write_bytes(b"\x89PNG")
    names = ("empty.png", "dir.png", "done.png")
    assert [batch_files.complete(str(tmp_path / n)) for n in names] == [False, False, True]


def test_bad_style_is_named(inputs, tmp_path, capsys):
    code = cli.main(
        ["batch", str(inputs / "in"), str(inputs / "in" / "bad.jpg"), "-o", str(tmp_path), *FLAGS]
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert lines == [lines[0]] and "style: the bytes given are not an encoded image" in lines[0]
    code = cli.main(["batch", str(inputs / "in"), str(inputs / "in"), "-o", str(tmp_path), *FLAGS])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and lines == [f"tfstyle: error: style: {str(inputs / 'in')!r} is not a "
                                   "regular file (it is a directory)"]  # fmt: skip


def test_inputs_and_output_names(inputs, tmp_path):
    """A directory: its image files at any depth, not hidden ones, not those under an OUT_DIR
    inside it; a glob; outputs named after the whole input name, so a.jpg and a.png differ."""
    root = str(inputs / "in")
    (tmp_path / "in").mkdir()
    for name in ["a.jpg", "a.png", ".hidden.png", "notes.txt"]:
        (tmp_path / "in" / name).write_bytes(b"x")
    (tmp_path / "in" / "out").mkdir()
    (tmp_path / "in" / "out" / "a.jpg.png").write_bytes(b"x")
    found_root, found = batch_files.list_inputs(str(tmp_path / "in"), str(tmp_path / "in" / "out"))
    assert found_root == str(tmp_path / "in")
    assert found == [str(tmp_path / "in" / n) for n in ["a.jpg", "a.png"]]
    outputs = [batch_files.output_path(p, found_root, "/o") for p in found]
    assert outputs == ["/o/a.jpg.png", "/o/a.png.png"]
    glob_root, found = batch_files.list_inputs(root + "/sub/*.jpg", str(tmp_path / "o"))
    assert glob_root == root + "/sub"
    assert found == [root + "/sub/d.jpg"]
    assert batch_files.output_path(root + "/sub/c.png", root, "/o") == "/o/sub/c.png.png"


def test_beam_options_after_double_dash():
    args = cli.build_parser().parse_args(
        ["batch", "in", "s.png", "t.png", "-o", "out", "--size", "64", "--", "--project", "p",
         "--region", "r"]
    )  # fmt: skip
    assert args.style == ["s.png", "t.png"]
    assert args.size == 64
    assert args.beam_args == ["--project", "p", "--region", "r"]
    assert cli.build_parser().parse_args(["batch", "in", "s.png", "-o", "o"]).beam_args == []


def test_without_beam_says_what_to_install(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # as if not installed
    code = cli.main(["batch", str(inputs / "in"), str(inputs / "style.png"), "-o", str(tmp_path)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert lines == ['tfstyle: error: tfstyle batch needs Apache Beam: pip install "tfstyle[beam]"']


def test_transfer_does_not_import_beam():
    import subprocess

    code = (
        "import sys; from tfstyle import cli; cli.build_parser(); "
        "print('apache_beam' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _one_image(path, side=40):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(np.full((side, side, 3), 128, np.uint8)).save(path)


def test_batchs_own_file_names_are_never_an_outputs(inputs, tmp_path, capsys):
    """An input directory named like the dead-letter file, or a directory already there, is
    refused before any work; nothing is deleted (issue 29)."""
    source = tmp_path / "src"
    _one_image(source / batch_files.DEAD_LETTER / "x.png")
    out = tmp_path / "out"
    argv = ["batch", str(source), str(inputs / "style.png"), "-o", str(out), *FLAGS]
    assert cli.main(argv) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "an input directory named 'failed.jsonl' would put its outputs in" in line
    assert not out.exists() or not os.listdir(out)

    (source / batch_files.DEAD_LETTER / "x.png").rename(source / "x.png")
    kept = out / batch_files.DEAD_LETTER / "notes.txt"
    kept.parent.mkdir(parents=True)
    kept.write_text("mine")
    assert cli.main(argv) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "failed.jsonl' exists and is not a file" in line
    assert kept.read_text() == "mine" and not (out / "x.png.png").exists()

    # A file of that name that an earlier run did not write is not replaced either.
    kept.unlink()
    kept.parent.rmdir()
    notes = out / batch_files.DEAD_LETTER
    notes.write_text("my precious notes\n")
    assert cli.main(argv) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "failed.jsonl' exists and is not batch's list of failed inputs" in line
    assert notes.read_text() == "my precious notes\n" and not (out / "x.png.png").exists()
    # Nor a link there (batch writes a file, never a link), whatever it points to.
    notes.rename(tmp_path / "elsewhere.jsonl")
    notes.symlink_to(tmp_path / "elsewhere.jsonl")
    assert cli.main(argv) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "failed.jsonl' exists and is not a file (or is a link)" in line
    notes.unlink()
    # An earlier run's list (or an empty file) is this run's to replace.
    notes.write_text('{"input": "a.png", "error": "content: not an image"}\n')
    assert batch_files.check_own_names(str(out), set()) is None


def test_a_fifo_or_dangling_link_at_an_output_name_fails_that_input(inputs, tmp_path):
    """Not replaced, and failed before its work (issue 29)."""
    for name in ("x.png", "y.png"):
        _one_image(tmp_path / "src" / name)
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "x.png.png")
    (out / "y.png.png").symlink_to(tmp_path / "nowhere.png")
    _one_image(tmp_path / "src" / "z.png")
    (out / "z.png.png").write_bytes(b"")  # not batch's: its outputs appear complete
    counts = batch.run(str(tmp_path / "src"), str(inputs / "style.png"), str(out),
                       workers=1, progress=False, **OPTIONS)  # fmt: skip
    assert (counts.done, counts.failed) == (0, 3)
    records = [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]
    errors = sorted(r["error"] for r in records)
    assert "exists and is a FIFO, not a regular file" in errors[0]
    assert "exists and is a link to nothing, not a regular file" in errors[1]
    assert "z.png.png' exists and is empty" in errors[2]
    assert (out / "z.png.png").read_bytes() == b""
    assert stat.S_ISFIFO(os.lstat(out / "x.png.png").st_mode)
    assert os.path.islink(out / "y.png.png")


def test_a_stopped_batch_removes_only_its_own_files(inputs, tmp_path, monkeypatch, capsys):
    """Ctrl-C removes this run's staging directory and nothing else, even outputs under names
    like Beam's temporary ones (issue 29)."""
    source, out = tmp_path / "src", tmp_path / "out"
    _one_image(source / "beam-temp-failed.jsonl-1" / "a.png")
    _one_image(source / "b.png")
    finished = out / "beam-temp-failed.jsonl-1" / "a.png.png"
    _one_image(finished)  # an earlier run's output
    seen = []

    def interrupted(pipeline, out_dir, todo, progress):
        seen.extend(n for n in os.listdir(out_dir) if n.startswith(".tfstyle-batch-"))
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "_run_watched", interrupted)
    argv = ["batch", str(source), str(inputs / "style.png"), "-o", str(out), *FLAGS]
    assert cli.main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert len(seen) == 1  # the run staged its files in a directory of its own ...
    assert sorted(os.listdir(out)) == ["beam-temp-failed.jsonl-1"]  # ... and removed only that
    assert finished.stat().st_size > 0


def test_an_output_name_too_long_fails_before_the_work(inputs, tmp_path):
    """An input whose name is allowed but whose output's (``.png`` added) is not: a line in the
    dead letter saying so, not a stylisation lost at the write (issue 29)."""
    long_name = "a" * 250 + ".jpg"  # 254 bytes; its output, 258
    _one_image(tmp_path / "src" / long_name)
    counts = batch.run(str(tmp_path / "src"), str(inputs / "style.png"), str(tmp_path / "out"),
                       workers=1, progress=False, **OPTIONS)  # fmt: skip
    assert (counts.done, counts.failed) == (0, 1)
    lines = (tmp_path / "out" / "failed.jsonl").read_text().splitlines()
    [record] = [json.loads(line) for line in lines]
    assert record["error"].startswith("output: file name longer than 255 bytes")
