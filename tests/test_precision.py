"""precision="auto": measured once per machine and network, cached, forced by the option or env."""

import json
import os

import numpy as np
import pytest

import tfstyle
from tfstyle import pipeline, precision

NETWORK = {"backbone": "vgg19", "pooling": "max", "layers": ("block1_conv1", "block4_conv2")}
NATIVE = {"cpu": "Test CPU", "flags": ["avx2", "avx512_bf16"], "native_bfloat16": True, "gpus": []}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory, and no TFSTYLE_PRECISION."""
    monkeypatch.setenv(precision.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(precision.ENV, raising=False)
    return tmp_path / "cache" / "precision.json"


@pytest.fixture
def native(monkeypatch):
    """A CPU with native bfloat16 (the one thing here that stands in for hardware)."""
    monkeypatch.setattr(precision, "_machine", lambda: dict(NATIVE))


def timer(float32_s, bfloat16_s, calls):
    def seconds(p):
        calls.append(p)
        return {"float32": float32_s, "bfloat16": bfloat16_s}[p]

    return seconds


@pytest.mark.parametrize(
    "float32_s, bfloat16_s, expected",
    [
        (0.19, 0.10, "bfloat16"),  # 1.9x faster (an AMD EPYC)
        (0.27, 0.40, "float32"),  # 1.5x slower (an Intel Xeon with the same flag)
        (0.11, 0.10, "float32"),  # faster, within the margin
        (0.115, 0.10, "bfloat16"),  # exactly the margin
    ],
)
def test_choice_by_measurement(cache, native, float32_s, bfloat16_s, expected):
    calls = []
    choice = precision.choose("auto", **NETWORK, timer=timer(float32_s, bfloat16_s, calls))
    assert choice.precision == expected
    assert sorted(calls) == ["bfloat16", "float32"]
    assert f"{float32_s / bfloat16_s:.2f}x float32" in choice.reason
    assert "Test CPU" in choice.reason and "measured 20" in choice.reason


def test_cache_hit_miss_and_key(cache, native):
    calls = []
    first = precision.choose("auto", **NETWORK, timer=timer(0.2, 0.1, calls))
    assert len(calls) == 2 and cache.is_file()
    again = precision.choose("auto", **NETWORK, timer=timer(0.1, 0.2, calls))
    assert again == first and len(calls) == 2  # a hit: not measured again
    deeper = {**NETWORK, "layers": ("block1_conv1", "block5_conv1")}
    other = precision.choose("auto", **deeper, timer=timer(0.1, 0.2, calls))
    assert other.precision == "float32" and len(calls) == 4  # another network: a miss
    with open(cache) as f:
        entries = json.load(f)
    assert len(entries) == 2
    assert {e["key"]["cpu"] for e in entries.values()} == {"Test CPU"}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"x": 1}', ""])
def test_corrupt_cache_means_measuring_again(cache, native, content):
    calls = []
    precision.choose("auto", **NETWORK, timer=timer(0.2, 0.1, calls))
    (key,) = json.loads(cache.read_text())
    if content == '{"x": 1}':
        content = json.dumps({key: {"float32_s": "fast", "measured": 3}})  # our key, bad entry
    cache.write_text(content)
    choice = precision.choose("auto", **NETWORK, timer=timer(0.1, 0.2, calls))
    assert choice.precision == "float32" and len(calls) == 4
    assert json.loads(cache.read_text())[key]["bfloat16_s"] == 0.2  # rewritten, whole


def test_unwritable_cache_is_not_an_error(tmp_path, monkeypatch, native):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(precision.CACHE_ENV, str(blocker / "cache"))  # under a file
    calls = []
    choice = precision.choose("auto", **NETWORK, timer=timer(0.2, 0.1, calls))
    assert choice.precision == "bfloat16" and len(calls) == 2


def test_forced_precision_skips_the_measurement(cache, native, monkeypatch):
    def never(p):
        raise AssertionError("measured")

    assert precision.choose("float32", **NETWORK, timer=never).precision == "float32"
    assert precision.choose("bfloat16", **NETWORK, timer=never).precision == "bfloat16"
    monkeypatch.setenv(precision.ENV, "float32")
    choice = precision.choose("auto", **NETWORK, timer=never)
    assert choice == ("float32", "set by TFSTYLE_PRECISION", "TFSTYLE_PRECISION")
    monkeypatch.setenv(precision.ENV, "half")
    with pytest.raises(ValueError, match="TFSTYLE_PRECISION must be one of 'auto', 'float32'"):
        precision.choose("auto", **NETWORK, timer=never)
    assert not cache.exists()


def test_no_native_bfloat16_is_float32_without_measuring(cache, monkeypatch):
    monkeypatch.setattr(precision, "_machine", lambda: {**NATIVE, "native_bfloat16": False})
    choice = precision.choose("auto", **NETWORK, timer=lambda p: 1 / 0)
    assert choice.precision == "float32" and "no native bfloat16" in choice.reason


def test_gpu_rule_by_compute_capability():
    assert precision._gpu_rule([{"compute_capability": (8, 6)}]).precision == "bfloat16"
    assert precision._gpu_rule([{"compute_capability": (7, 5)}]).precision == "float32"
    assert precision._gpu_rule([{}]).precision == "float32"


@pytest.mark.slow
def test_auto_end_to_end(cache, content_array, style_array):
    """A real measurement (where bfloat16 is native) and a run in the precision it chose."""
    run = {"size": 32, "iterations": 2, "weights": None, "seed": 0, "progress": False}
    auto = tfstyle.transfer(content_array, style_array, precision="auto", **run)
    chosen = pipeline.get(tfstyle.Options(**run)).precision
    forced = tfstyle.transfer(content_array, style_array, precision=chosen.precision, **run)
    np.testing.assert_array_equal(np.asarray(auto), np.asarray(forced))
    if precision._machine()["native_bfloat16"]:
        (entry,) = json.loads(cache.read_text()).values()
        assert entry["float32_s"] > 0 and entry["bfloat16_s"] > 0
        speedup = entry["float32_s"] / entry["bfloat16_s"]
        assert chosen.precision == ("bfloat16" if speedup >= 1.15 else "float32")
        assert f"{speedup:.2f}x float32" in chosen.reason
    else:
        assert chosen.precision == "float32" and "no native bfloat16" in chosen.reason
        assert not os.path.exists(cache)
