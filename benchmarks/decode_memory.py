"""What decoding one large input costs in memory: the served model decodes each input image whole
(``tfstyle.images.decode``, in its graph) before resizing it to the run's size, so an 8192 px
photograph sent to a 64 px export still costs its full-size pixels while it is decoded.

Each kind of image (an RGB PNG, an RGBA PNG, a JPEG; compressible, so the request is small) is
decoded and resized to 64 px by a graph function in a fresh process; the script prints the peak
resident memory above what the process held before the call.

    python benchmarks/decode_memory.py --side 8192
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys

KINDS = {"RGB PNG": ("RGB", "PNG"), "RGBA PNG": ("RGBA", "PNG"), "JPEG": ("RGB", "JPEG")}


def child(side: int, kind: str) -> dict:
    import numpy as np
    import PIL.Image
    import tensorflow as tf

    from tfstyle import images

    mode, fmt = KINDS[kind]
    pixels = np.zeros((side, side, len(mode)), np.uint8)
    pixels[::7, ::5] = 200  # some structure; still compresses to a small request
    buf = io.BytesIO()
    PIL.Image.fromarray(pixels, mode).save(buf, fmt)
    del pixels

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
    def decode_and_resize(data):
        return images.resize_longer_side(images.decode(data, "content"), 64)

    decode_and_resize.get_concrete_function()  # traced before the measurement
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shape = decode_and_resize(tf.constant(buf.getvalue())).shape
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"kind": kind, "side": side, "encoded_bytes": len(buf.getvalue()),
            "added_gib": (peak - before) / 2**20, "out": list(shape)}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--side", type=int, default=8192, help="the input's side in px (8192)")
    p.add_argument("--child", choices=list(KINDS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.side, args.child)))
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common

    common.print_machine()
    for kind in KINDS:
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--side", str(args.side), "--child", kind],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{kind}, {r['side']} px ({r['encoded_bytes'] // 1024} KiB encoded): decoding and "
              f"resizing to 64 px added {r['added_gib']:.2f} GiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
