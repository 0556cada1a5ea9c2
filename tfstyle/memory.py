"""Will a run fit in memory? An estimate from measurements, checked before the run starts.

A step at H x W pixels holds the network's activations for the forward and backward passes and
the optimiser's image-sized buffers: peak memory grows with the pixel count. ``PEAK`` holds the
measured peak resident memory of a run (VGG19, the default layers, L-BFGS) at two sizes, per
precision; ``estimate`` extrapolates linearly in pixels. ``check`` refuses, with one line, a run
whose estimate is above the memory available to this process (``available``: the system's
``MemAvailable``, or a cgroup's limit, whichever is lower), so that a size too large fails at
once instead of swapping or being killed by the system after minutes.
"""

from __future__ import annotations

import os

GIB = 2**30
#: Measured peak resident memory in bytes: {precision: ((pixels, bytes), (pixels, bytes))},
#: two L-BFGS steps at that size (``min_scale=size``) on VGG19 up to block5_conv1, 2026-11-25,
#: this project's CPU (benchmarks/README.md).
PEAK = {
    "float32": ((1024 * 1024, 4.34 * GIB), (2048 * 2048, 14.60 * GIB)),
    "bfloat16": ((1024 * 1024, 3.30 * GIB), (2048 * 2048, 10.12 * GIB)),
}
#: A third measurement, not used by ``estimate``: the test that the line holds below the points.
CHECK_POINT = {"float32": (512 * 512, 1.66 * GIB)}
#: Where ``available`` reads the system's and the cgroup's numbers.
MEMINFO = "/proc/meminfo"
CGROUP = "/sys/fs/cgroup"
#: The served model, measured (benchmarks/served_memory.py, 2026-12-02, float32, this project's
#: 2-core AVX2 CPU): peak resident GiB of a process that loaded the export the way
#: tensorflow_model_server does, after a warm-up (``SERVED_LOADED_GIB``) and with requests at one
#: scale of that side: ``{side: {requests running at once: GiB}}``. One request: the highest of
#: two after each other (a server's allocator keeps some memory between requests).
SERVED_LOADED_GIB = 0.87
SERVED_PEAK_GIB = {512: {1: 2.15, 2: 2.55}, 1024: {1: 5.06, 2: 6.30}}
#: The served model taking requests above ``SERVED_TILED_TILE`` px in tiles of that side (an
#: export with ``max_size`` 4096: ``export.SERVED_TILE_SIZE``, 1184 px crops), measured the same
#: way (benchmarks/served_memory.py --sizes 2048 4096 --concurrent 1 --steps 3, 2026-12-06,
#: float32, a 2-core AVX2 CPU): the loaded model, and the peak of one request at one scale of
#: each side, ``{side: GiB}``: 4.58 and 7.44 GiB a request, under the 7.2 and 12.4 GiB
#: estimated before (``served_per_request_gib`` takes the line through them, until two sides
#: are measured the estimate).
SERVED_TILED_TILE = 1024
SERVED_TILED_LOADED_GIB = 1.04
SERVED_TILED_PEAK_GIB = {2048: 5.63, 4096: 8.48}
#: What those 3-step requests had not yet held of L-BFGS's history, which a longer one holds: 8
#: of its 10 pairs of image-sized float32 vectors (3 channels), in bytes a pixel.
LBFGS_UNFILLED_BYTES_PER_PIXEL = 8 * 2 * 3 * 4


def served_per_request_gib(
    side: int, tile_size: int | None = None, crop: int | None = None
) -> float:
    """A bound on what one request at ``side`` px (square) adds to a server's memory: the
    measured peak of one request alone above the loaded model, on the line through the two
    measured sides (requests running at once measured less each: they share the threads). In
    tiles (``side`` above an export's ``tile_size``, crops of ``crop`` px): a ``crop`` px
    request's network plus the tiled run's bytes per pixel of the image; in the tiles the
    served model was measured with (``SERVED_TILED_TILE``), the line through those measurements
    (once two sides are) plus the L-BFGS history their short requests had not filled."""
    base, per_pixel = _line(
        *((s * s, SERVED_PEAK_GIB[s][1] - SERVED_LOADED_GIB) for s in (512, 1024))
    )
    if tile_size is not None and side > tile_size:
        if tile_size == SERVED_TILED_TILE and len(SERVED_TILED_PEAK_GIB) > 1:
            points = [(s * s, g - SERVED_TILED_LOADED_GIB)
                      for s, g in sorted(SERVED_TILED_PEAK_GIB.items())[:2]]  # fmt: skip
            base, per_pixel = _line(*points)
            return base + (per_pixel + LBFGS_UNFILLED_BYTES_PER_PIXEL / GIB) * side * side
        return served_per_request_gib(min(side, crop)) + TILED_BYTES_PER_PIXEL * side**2 / GIB
    return base + per_pixel * side * side


def _line(point0, point1) -> tuple[float, float]:
    """The value at 0 and the slope of the line through two ``(pixels, amount)`` points."""
    (p0, b0), (p1, b1) = point0, point1
    slope = (b1 - b0) / (p1 - p0)
    return b0 - slope * p0, slope


#: Set to 0 to run whatever the estimate says.
ENV = "TFSTYLE_MEMORY_CHECK"
#: What ``ENV`` may be set to: off, on (unset or empty: on).
ENV_VALUES = {"0": False, "false": False, "no": False, "off": False,
              "1": True, "true": True, "yes": True, "on": True, "": True}  # fmt: skip


def check_is_on() -> bool:
    """Whether the memory check is on (``ENV``); a value it does not know is an error, not
    silently taken as on."""
    value = os.environ.get(ENV, "1")
    if value.strip().lower() not in ENV_VALUES:
        raise ValueError(
            f"{ENV} must be 0, no, off or false (off), or 1, yes, on, true or empty (on); "
            f"got {value!r}"
        )
    return ENV_VALUES[value.strip().lower()]


def peak_line(precision: str) -> tuple[float, float]:
    """Bytes at 0 pixels and bytes per pixel: the line through ``PEAK[precision]``."""
    return _line(*PEAK.get(precision, PEAK["float32"]))


def estimate(height: int, width: int, precision: str) -> float:
    """Estimated peak resident bytes of a run whose last scale is ``height`` x ``width``."""
    base, per_pixel = peak_line(precision)
    return base + per_pixel * height * width


def available() -> float | None:
    """Bytes this process can still use: ``MemAvailable`` or the cgroup's room, the lower; None
    where neither can be read (not Linux)."""
    room = []
    try:
        with open(MEMINFO) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    room.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(os.path.join(CGROUP, "memory.max")) as f:
            limit = f.read().strip()
        with open(os.path.join(CGROUP, "memory.current")) as f:
            used = int(f.read().strip())
        with open(os.path.join(CGROUP, "memory.stat")) as f:  # page cache the kernel can reclaim
            stat = dict(line.split() for line in f if line.count(" ") == 1)
        used -= int(stat.get("inactive_file", 0))
        if limit != "max":
            room.append(int(limit) - used)
    except (OSError, ValueError):
        pass
    return min(room) if room else None


#: A tiled run's memory beyond one crop's network, in bytes per pixel of the image: measured,
#: float32, VGG19, the default layers, an 11-step run at one scale of 4096 px in 512 px tiles
#: (crops of 672 px; 11 steps fill L-BFGS's history of 10 pairs): peak 9.30 GiB in a fresh
#: process (benchmarks/tiles.py --memory 4096 --steps 11, 2026-12-04), less the crop's network
#: on the line of ``PEAK`` (2.39 GiB): about 442 bytes a pixel, of which L-BFGS's history is 240
#: (20 float32 image-sized vectors) and the rest about 17 more (the image, its gradient, the
#: optimiser's other vectors, the content targets at full size).
TILED_BYTES_PER_PIXEL = (9.30 * GIB - 2.39 * GIB) / (4096 * 4096)


def tiled_estimate(height: int, width: int, crop: int, precision: str) -> float:
    """Estimated peak bytes of a tiled run: the network on one ``crop`` x ``crop`` crop (the
    measured line), plus the rest per pixel of the image (``TILED_BYTES_PER_PIXEL``)."""
    return estimate(min(height, crop), min(width, crop), precision) + (
        TILED_BYTES_PER_PIXEL * height * width
    )


#: The side (px) of the tiles' interiors when a run's last scale would not fit in memory on the
#: whole image and ``tile_size`` is unset (``Stylizer.pipeline_for``): crops of 672 px with
#: VGG19's default layers, a tiled step 1.86x a whole one at 1024 px (benchmarks/README.md).
AUTO_TILE_SIZE = 512


def fits(height: int, width: int, precision: str, crop: int | None = None) -> bool:
    """Whether a run whose last scale is ``height`` x ``width`` is estimated to fit in the
    memory available (True where that cannot be read or the check is off)."""
    if not check_is_on():
        return True
    room = available()
    if room is None:
        return True
    return _need(height, width, precision, crop) <= room


def _need(height: int, width: int, precision: str, crop: int | None) -> float:
    if crop is None:
        return estimate(height, width, precision)
    return tiled_estimate(height, width, crop, precision)


def check(height: int, width: int, size: int, precision: str, crop: int | None = None) -> None:
    """Raise ``ValueError`` (one line) if a run whose last scale is ``height`` x ``width`` is
    estimated not to fit in the memory available; name the size, the estimate and the limit.
    ``crop``: the side of a tiled run's crops (interior and halos), None for whole images."""
    if fits(height, width, precision, crop):
        return
    room = available()  # known: fits is True where it is not

    def need_at(scale: float) -> float:
        return _need(int(height * scale), int(width * scale), precision, crop)

    need = need_at(1.0)
    # The largest size of the same aspect ratio whose estimate fits (the estimate grows with
    # the scale: bisect it).
    low, high = 0.0, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (middle, high) if need_at(middle) <= room else (low, middle)
    largest = int(size * low)
    say = f"the largest size that fits is about {largest} px" if largest >= 16 else "no size fits"
    tiled = "" if crop is None else f", tiled in {crop} px crops"
    raise ValueError(
        f"size: a {width}x{height} result needs about {need / GIB:.1f} GiB of memory "
        f"(estimated, {precision}{tiled}), and {room / GIB:.1f} GiB is available here; {say} "
        f"(set {ENV}=0 to try anyway)"
    )
