"""``precision="auto"``: bfloat16 convolutions only where they are measured to be faster here.

A CPU flag says what a CPU can do, not what is faster: with AVX512_BF16 an AMD EPYC ran the VGG
steps about 1.9x faster in bfloat16 than in float32, an Intel Xeon 1.5x slower. So on a CPU with
native bfloat16 (AVX512_BF16 or AMX-BF16) ``choose`` times a few forward + input-gradient steps
of the network the run will use, in float32 and in bfloat16, at a small size
(``CALIBRATION_SIDE``), and takes bfloat16 only when it is at least ``MARGIN`` times faster.
The decision is cached (``cache_path``) under a key of what decides it: CPU model, flags and
count, TensorFlow version, backbone, pooling, layers. Without native bfloat16 the answer is
float32 without measuring (bfloat16 is emulated there, about 10x slower). On a GPU the rule is
compute capability 8.0 or newer (Ampere has bfloat16 tensor cores), not measured.

``TFSTYLE_PRECISION=float32`` (or ``bfloat16``) in the environment, or a ``precision`` other
than ``"auto"``, forces a precision and skips all of this. ``pipeline.get`` is the one caller.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from tfstyle import files

#: Every value of the ``precision`` option; the last two are what a model runs.
PRECISIONS = ("auto", "float32", "bfloat16")
#: bfloat16 must be at least this many times faster than float32 to be chosen. Repeated
#: calibrations here vary by about 5 %, and bfloat16 rounds the features (the objective differs
#: by up to 2 %), so a gain within noise is not worth it.
MARGIN = 1.15
#: Side of the square image the calibration times (about 2.5 s in all on 2 cores).
CALIBRATION_SIDE = 128
#: Timed steps per precision, after one untimed (tracing) step; the fastest counts.
CALIBRATION_STEPS = 3
ENV = "TFSTYLE_PRECISION"
#: Overrides the cache directory (default: the platform's user cache directory).
CACHE_ENV = "TFSTYLE_CACHE_DIR"
_CACHE_FILE = "precision.json"
_CACHE_FORMAT = 1


class Choice(NamedTuple):
    """The precision a run uses, and why."""

    precision: str  # "float32" or "bfloat16"
    reason: str  # e.g. "1.93x float32 on this CPU (AMD EPYC), measured 2026-11-25"
    brief: str = ""  # the reason in a few words, for a progress bar: "1.93x float32 here"

    def __str__(self) -> str:
        return f"{self.precision}: {self.reason}"


#: Seconds per step of one precision; ``choose`` takes another for tests.
Timer = Callable[[str], float]


def check_environment() -> None:
    """A ``ValueError`` now for a ``TFSTYLE_PRECISION`` that is not a precision (said before
    any work, not when a run first chooses); empty is unset."""
    forced = os.environ.get(ENV, "")
    if forced:
        check(forced.strip(), ENV)


def choose(
    precision: str,
    *,
    backbone: str,
    pooling: str,
    layers: Sequence[str],
    weights=None,
    timer: Timer | None = None,
) -> Choice:
    """The precision to run for option value ``precision`` on this machine.

    Args:
        precision: "auto", "float32" or "bfloat16".
        backbone, pooling, layers, weights: the network the run uses (the one timed).
        timer: seconds per step of a precision; None times the real network.
    """
    check(precision, "precision")
    if precision != "auto":
        return Choice(precision, "set by the precision option", "set")
    forced = os.environ.get(ENV, "").strip()
    if forced:
        check(forced, ENV)
        if forced != "auto":
            return Choice(forced, f"set by {ENV}", ENV)
    machine = _machine()
    if machine["gpus"]:
        return _gpu_rule(machine["gpus"])
    if not machine["native_bfloat16"]:
        return Choice(
            "float32", "this CPU has no native bfloat16 (AVX512_BF16 or AMX-BF16)", "no bf16 here"
        )
    import tensorflow as tf

    key = {
        "format": _CACHE_FORMAT, "cpu": machine["cpu"], "flags": machine["flags"],
        "cpus": os.cpu_count(), "tensorflow": tf.__version__, "backbone": backbone,
        "pooling": pooling, "layers": sorted(set(layers)), "candidates": ["float32", "bfloat16"],
    }  # fmt: skip
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    memo = (digest, cache_path())
    if timer is None and memo in _MEMO:
        return _MEMO[memo]
    entries = _read_cache()
    entry = entries.get(digest)
    choice = _from_entry(entry, machine["cpu"]) if isinstance(entry, dict) else None
    if choice is None:
        if timer is None:
            timer = _network_timer(backbone, pooling, tuple(layers), weights)
        seconds = {p: timer(p) for p in ("float32", "bfloat16")}
        entry = {
            "key": {k: v for k, v in key.items() if k != "flags"},  # for a reader of the file
            "float32_s": seconds["float32"],
            "bfloat16_s": seconds["bfloat16"],
            "measured": datetime.date.today().isoformat(),
        }
        entries[digest] = entry
        _write_cache(entries)
        choice = _from_entry(entry, machine["cpu"])
    if timer is None:
        _MEMO[memo] = choice
    return choice


_MEMO: dict[tuple, Choice] = {}


def decide(float32_s: float, bfloat16_s: float) -> str:
    """bfloat16 when it is at least ``MARGIN`` times faster than float32, else float32."""
    return "bfloat16" if float32_s >= MARGIN * bfloat16_s else "float32"


def check(value, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``PRECISIONS``."""
    if value not in PRECISIONS:
        allowed = ", ".join(repr(p) for p in PRECISIONS)
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")


def cache_path() -> str:
    """Where decisions are cached: ``$TFSTYLE_CACHE_DIR`` or the user cache directory. A
    ``$TFSTYLE_CACHE_DIR`` that is there and not a directory (a file, ``/dev/null``) is an
    error, not a cache silently never written."""
    directory = os.environ.get(CACHE_ENV)
    if directory and os.path.lexists(directory) and not os.path.isdir(directory):
        raise files.not_a_directory(directory, CACHE_ENV)
    if not directory:
        import platformdirs

        directory = platformdirs.user_cache_dir("tfstyle", appauthor=False)
    return os.path.join(directory, _CACHE_FILE)


def _from_entry(entry: dict, cpu: str) -> Choice | None:
    """The choice a cache entry records, or None when the entry is not one of ours."""
    try:
        f32, bf16, when = float(entry["float32_s"]), float(entry["bfloat16_s"]), entry["measured"]
    except (KeyError, TypeError, ValueError):
        return None
    if not (f32 > 0 and bf16 > 0) or not isinstance(when, str):
        return None
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", when):  # printed: a date, nothing else
        return None
    speedup = f32 / bf16
    precision = decide(f32, bf16)
    if precision == "bfloat16":
        reason = f"{speedup:.2f}x float32 on this CPU ({cpu}), measured {when}"
        brief = f"{speedup:.2f}x float32 here"
    else:
        reason = (
            f"bfloat16 ran {speedup:.2f}x float32 on this CPU ({cpu}), not the {MARGIN}x that "
            f"would choose it; measured {when}"
        )
        brief = f"bf16 {speedup:.2f}x here"
    return Choice(precision, reason, brief)


def _read_cache() -> dict:
    """The cached entries; an unreadable or corrupt file reads as empty (and is rewritten)."""
    try:  # a regular file of a sane size: a FIFO or a link to /dev/zero would never end
        data = json.loads(files.read_regular(cache_path(), "precision cache", 2**20))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(entries: dict) -> None:
    """Write ``entries`` atomically (temporary file, then rename); failing to write is no error."""
    path = cache_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".precision.", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entries, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # measured again next time


def _network_timer(backbone: str, pooling: str, layers: tuple, weights) -> Timer:
    """Time forward + input-gradient steps of the run's own network (``build_extractor``
    caches the models, so the one chosen is not built again)."""
    import tensorflow as tf

    from tfstyle import features

    image = tf.random.stateless_uniform((1, CALIBRATION_SIDE, CALIBRATION_SIDE, 3), (0, 0))
    steps = {}
    for p in ("float32", "bfloat16"):
        model = features.build_extractor(
            layers, backbone=backbone, pooling=pooling, weights=weights, precision=p
        )

        def step(x, model=model):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.add_n([tf.reduce_mean(tf.square(v)) for v in model(x).values()])
            return tape.gradient(loss, x)

        steps[p] = tf.function(step, autograph=False)
        steps[p](image).numpy()  # traces

    def seconds(p: str) -> float:
        times = []
        for _ in range(CALIBRATION_STEPS):
            began = time.perf_counter()
            steps[p](image).numpy()
            times.append(time.perf_counter() - began)
        return min(times)

    return seconds


def _machine() -> dict:
    """CPU model and flags (Linux), native bfloat16, and the GPUs with compute capabilities."""
    import tensorflow as tf

    gpus = [
        tf.config.experimental.get_device_details(g) for g in tf.config.list_physical_devices("GPU")
    ]
    cpu, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == "model name":
                    cpu = value.strip()
                elif name.strip() == "flags":
                    flags = sorted(value.split())
                    break
    except OSError:
        pass
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    return {"cpu": cpu, "flags": flags, "native_bfloat16": native, "gpus": gpus}


def _gpu_rule(gpus: list) -> Choice:
    caps = [g.get("compute_capability") for g in gpus]
    names = ", ".join(str(g.get("device_name", "GPU")) for g in gpus)
    if all(cap is not None and tuple(cap) >= (8, 0) for cap in caps):
        return Choice("bfloat16", f"{names}: compute capability 8.0 or newer (not measured)", "GPU")
    return Choice("float32", f"{names}: compute capability below 8.0 (not measured)", "GPU")
