"""Shared fixtures: tiny seeded images and files; TensorFlow kept quiet."""

import os
import signal
import tempfile

# Ctrl-C as a terminal delivers it, whatever started pytest: a shell starts background jobs with
# SIGINT ignored, which Python then leaves ignored, and so would every CLI the tests start (the
# Ctrl-C tests would wait forever). Handled here, it is the default again in each child.
signal.signal(signal.SIGINT, signal.default_int_handler)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# precision="auto" caches its measurement: in a directory of this test run, not the user's.
os.environ["TFSTYLE_CACHE_DIR"] = tempfile.mkdtemp(prefix="tfstyle-test-cache-")
os.environ.pop("TFSTYLE_PRECISION", None)

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
from helpers import EXPORT, png_bytes, smooth_image  # noqa: E402

#: The costliest files, costliest first (from CI's --durations): two xdist workers given whole
#: files in this order finish together, where alphabetical order left one of them a long tail.
#: test_api.py second: test_serving.py starts by making the shared export (the other server
#: files wait for it), so the second worker runs test_api.py meanwhile (not 30 s idle).
COSTLIEST_FIRST = (
    "test_serving.py",
    "test_api.py",
    "test_export.py",
    "test_realtime.py",
    "test_server_hostile.py",
    "test_benchmark.py",
    "test_hostile.py",
    "test_batch.py",
    "test_masks.py",
    "test_tiles.py",
    "test_app.py",
    "test_notebook.py",
    "test_video.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(COSTLIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


@pytest.fixture
def content_array() -> np.ndarray:
    return smooth_image(0, 48, 64)


@pytest.fixture
def style_array() -> np.ndarray:
    return smooth_image(1, 64, 64)


@pytest.fixture
def image_files(tmp_path, content_array, style_array):
    """(content.png, style.png) paths."""
    paths = []
    for name, array in (("content", content_array), ("style", style_array)):
        path = tmp_path / f"{name}.png"
        PIL.Image.fromarray((array * 255).round().astype(np.uint8)).save(path)
        paths.append(str(path))
    return tuple(paths)


@pytest.fixture(scope="session")
def pngs() -> tuple:
    """Encoded (content, style) PNG bytes of the seeded test images."""
    return png_bytes(smooth_image(0, 48, 64)), png_bytes(smooth_image(1, 64, 64))


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """The base path of one export (``helpers.EXPORT``, with warm-up requests) for every test
    that only reads it: servers may serve it, nothing may write in it. Made once for the whole
    run: the first pytest-xdist worker to need it exports it into the run's shared temporary
    directory, under a lock; the others wait for it and read it."""
    import fcntl

    import tfstyle
    from tfstyle import signature as sig

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's is popen-gwN in the run's own
        shared = shared.parent
    base = shared / "exported" / sig.MODEL_NAME
    with open(shared / "exported.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not (base / "1").is_dir():  # renamed into place complete, or not there
            assert tfstyle.export_saved_model(base, **EXPORT) == os.path.join(str(base), "1")
    return base
