"""A size too large for the memory here fails at once, with one line naming the numbers."""

import pytest

import tfstyle
from tfstyle import memory

GIB = 2**30


def test_estimate_passes_through_the_measurements():
    for precision, points in memory.PEAK.items():
        for pixels, peak in points:
            side = int(pixels**0.5)
            assert memory.estimate(side, side, precision) == pytest.approx(peak)
        assert memory.estimate(4096, 4096, precision) > memory.estimate(2048, 2048, precision)


def test_available_memory_is_read_here():
    room = memory.available()
    assert room is not None and 0 < room < 2**50


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
    need = memory.estimate(768, 1024, "float32") / GIB
    assert message.startswith(f"size: a 1024x768 result needs about {need:.1f} GiB of memory")
    assert "2.0 GiB is available here; the largest size that fits is about" in message
    largest = int(message.split("about ")[-1].split(" px")[0])
    assert memory.estimate(largest * 3 // 4, largest, "float32") <= 2.0 * GIB
    assert memory.estimate((largest + 8) * 3 // 4, largest + 8, "float32") > 2.0 * GIB


def test_the_check_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(memory, "available", lambda: 1.0 * GIB)
    with pytest.raises(ValueError, match="TFSTYLE_MEMORY_CHECK=0"):
        memory.check(2048, 2048, 2048, "float32")
    monkeypatch.setenv("TFSTYLE_MEMORY_CHECK", "0")
    memory.check(2048, 2048, 2048, "float32")  # no error
