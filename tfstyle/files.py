"""Output files: checked before any work, written whole or not at all, never over an input.

Every output tfstyle writes (an image, an export) goes to a temporary name in the same directory
and is renamed into place when complete, so a crash, Ctrl-C or a full disk never leaves a
half-written file under the real name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator

import PIL.Image


def check_output(path: str, inputs: Iterable = (), name: str = "output") -> None:
    """Raise unless an image can be written at ``path``: a known extension, an existing writable
    directory, not a directory itself, and not one of ``inputs`` (paths of files read)."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name}: {path!r} is a directory; give a file name")
    ext = os.path.splitext(path)[1].lower()
    if ext not in PIL.Image.registered_extensions():
        raise ValueError(f"{name}: unknown image file extension {ext!r}; use .png or .jpg")
    check_writable_dir(os.path.dirname(os.path.abspath(path)), name)
    _check_name_length(path, name)
    for source in inputs:
        if isinstance(source, (str, os.PathLike)) and _same_file(path, source):
            raise ValueError(
                f"{name}: {path!r} is also an input ({os.fspath(source)!r}); "
                f"writing it would destroy the input: choose another output path"
            )


def check_writable_dir(directory: str, name: str) -> None:
    """Raise ``OSError`` naming ``name`` unless ``directory`` exists and a file can be created in
    it (tried: permissions, read-only file systems and /proc all say no only when asked)."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{name}: directory does not exist: {directory!r}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".tfstyle-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        message = f"{name}: cannot write to directory {directory!r}: {err.strerror}"
        raise type(err)(message) from None


def _check_name_length(path: str, name: str) -> None:
    base = os.path.basename(path)
    try:
        limit = os.pathconf(os.path.dirname(os.path.abspath(path)), "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    if len(os.fsencode(base)) > limit:
        raise OSError(f"{name}: file name longer than {limit} bytes: {base[:40]!r}...")


def save_image(image: PIL.Image.Image, path: str) -> None:
    """Save ``image`` at ``path`` (format from the extension), atomically."""
    fmt = PIL.Image.registered_extensions()[os.path.splitext(path)[1].lower()]
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt)


@contextlib.contextmanager
def atomic_path(path: str, directory: bool = False) -> Iterator[str]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` if the block succeeds,
    removed if it fails. ``directory``: the temporary path is a fresh directory, and ``path``
    must not exist (a directory is never replaced)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)[:64]}.tmp-"
    if directory:
        tmp = tempfile.mkdtemp(prefix=prefix, dir=parent)
    else:
        fd, tmp = tempfile.mkstemp(prefix=prefix, dir=parent)
        os.close(fd)
    try:
        yield tmp
        # mkstemp/mkdtemp make private (0600/0700) entries: give the usual umask's modes.
        os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())
        if directory:
            os.rename(tmp, path)  # fails if path appeared meanwhile
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove(path: str) -> None:
    import shutil

    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return os.path.realpath(a) == os.path.realpath(b)
