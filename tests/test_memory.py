"""A size too large for the memory here fails at once, with one line naming the numbers."""

import pytest

import tfstyle
from tfstyle import memory

GIB = 2**30


def test_estimate_matches_a_measurement_it_was_not_fitted_to():
    """The line through the 1024 and 2048 px peaks, at 512 px: a third measurement (float32,
    1.66 GiB) it must not undershoot (the check would let a run through that does not fit),
    nor overshoot by more than 10 %."""
    pixels, measured = memory.CHECK_POINT["float32"]
    side = int(pixels**0.5)
    estimate = memory.estimate(side, side, "float32")
    assert measured <= estimate <= 1.10 * measured
    for precision in memory.PEAK:  # more pixels never need less
        assert memory.estimate(4096, 4096, precision) > memory.estimate(2048, 2048, precision)
    assert memory.estimate(1024, 1024, "bfloat16") < memory.estimate(1024, 1024, "float32")


def _memory_files(tmp_path, monkeypatch, meminfo_kib, limit=None, used=0, inactive=0):
    (tmp_path / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {meminfo_kib} kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    if limit is not None:
        (cgroup / "memory.max").write_text(f"{limit}\n")
        (cgroup / "memory.current").write_text(f"{used}\n")
        (cgroup / "memory.stat").write_text(f"anon 5\ninactive_file {inactive}\n")
    monkeypatch.setattr(memory, "MEMINFO", str(tmp_path / "meminfo"))
    monkeypatch.setattr(memory, "CGROUP", str(cgroup))


def test_available_is_the_lower_of_meminfo_and_the_cgroup_room(tmp_path, monkeypatch):
    _memory_files(tmp_path, monkeypatch, 8 * 2**20, limit=4 * GIB, used=3 * GIB, inactive=GIB)
    assert memory.available() == 2 * GIB  # 4 GiB limit - (3 GiB used - 1 GiB reclaimable)


def test_available_without_a_cgroup_limit_is_meminfo(tmp_path, monkeypatch):
    _memory_files(tmp_path, monkeypatch, 3 * 2**20, limit="max", used=GIB)
    assert memory.available() == 3 * GIB
    monkeypatch.setattr(memory, "CGROUP", str(tmp_path / "none"))
    assert memory.available() == 3 * GIB
    monkeypatch.setattr(memory, "MEMINFO", str(tmp_path / "none"))
    assert memory.available() is None


def test_too_large_for_the_memory_available_is_one_clear_error(
    content_array, style_array, monkeypatch
):
    monkeypatch.setattr(memory, "available", lambda: 2.0 * GIB)  # the edge: this machine's RAM
    with pytest.raises(ValueError) as caught:
        tfstyle.transfer(
            content_array, style_array, size=1024, iterations=1, weights=None, progress=False,
            precision="float32",
        )  # fmt: skip
    message = str(caught.value)
    assert "\n" not in message

    # Not even in tiles (tried, since the whole image does not fit): the tiled figures.
    def need(height, width):
        return memory.tiled_estimate(height, width, 672, "float32")

    assert message.startswith(
        f"size: a 1024x768 result needs about {need(768, 1024) / GIB:.1f} GiB of memory "
        "(estimated, float32, tiled in 672 px crops)"
    )
    assert "2.0 GiB is available here; the largest size that fits is about" in message
    largest = int(message.split("about ")[-1].split(" px")[0])
    assert need(largest * 3 // 4, largest) <= 2.0 * GIB
    assert need((largest + 8) * 3 // 4, largest + 8) > 2.0 * GIB


def test_the_check_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(memory, "available", lambda: 1.0 * GIB)
    with pytest.raises(ValueError, match="TFSTYLE_MEMORY_CHECK=0"):
        memory.check(2048, 2048, 2048, "float32")
    monkeypatch.setenv("TFSTYLE_MEMORY_CHECK", "0")
    memory.check(2048, 2048, 2048, "float32")  # no error
    monkeypatch.setenv("TFSTYLE_MEMORY_CHECK", "off")
    memory.check(2048, 2048, 2048, "float32")  # no error
    monkeypatch.setenv("TFSTYLE_MEMORY_CHECK", "nope")  # not silently taken as on (issue 29)
    with pytest.raises(ValueError, match="must be 0, no, off or false .off.,.*; got 'nope'$"):
        memory.check(2048, 2048, 2048, "float32")


def test_an_unknown_memory_check_value_is_said_before_any_work(
    image_files, tmp_path, monkeypatch, capsys
):
    from tfstyle import cli

    monkeypatch.setenv("TFSTYLE_MEMORY_CHECK", "maybe\x1b[2J")
    out = tmp_path / "out.png"
    content, style = image_files
    code = cli.main(["transfer", content, style, "-o", str(out), "--weights", "none",
                     "--size", "32", "--iterations", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    # One line, escaped, and no progress bar before it: nothing was run.
    assert err.startswith("tfstyle: error: TFSTYLE_MEMORY_CHECK must be ") and err.count("\n") == 1
    assert "'maybe\\x1b[2J'" in err and "\x1b" not in err


def test_the_served_bound_holds_at_every_measured_side():
    """What an export records per request (``served_per_request_gib``) is at least what a request
    was measured to add, whole (512, 1024 px) and in the served tiles (2048, 4096 px), and in
    tiles grows with the image's pixels, not the crop's."""
    for side, peaks in memory.SERVED_PEAK_GIB.items():
        assert memory.served_per_request_gib(side) >= peaks[1] - memory.SERVED_LOADED_GIB - 1e-9
    tile, crop = memory.SERVED_TILED_TILE, 1184
    for side, peak in memory.SERVED_TILED_PEAK_GIB.items():
        measured = peak - memory.SERVED_TILED_LOADED_GIB
        assert memory.served_per_request_gib(side, tile, crop) >= measured
    assert (
        memory.served_per_request_gib(4096, tile, crop)
        > memory.served_per_request_gib(2048, tile, crop)
        > memory.served_per_request_gib(1024)
    )
