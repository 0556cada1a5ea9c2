"""Files: inputs read only when they are regular files of a bounded size; outputs checked before
any work, written whole or not at all, never over an input.

Every output tfstyle writes (an image, an export) goes to a temporary name in the same directory
and is renamed into place when complete, so a crash, Ctrl-C or a full disk never leaves a
half-written file under the real name.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator

import PIL.Image


def check_regular(path, name: str, limit: int | None = None) -> os.stat_result:
    """Raise, naming the input ``name``, unless ``path`` is (or links to) a regular file of at
    most ``limit`` bytes: never a FIFO, a device or a directory, which would block or never end
    when read. Returns its ``os.stat`` result."""
    path = os.fspath(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise FileNotFoundError(f"{name}: {path!r} is a link to nothing") from None
        raise FileNotFoundError(f"{name}: no such file: {path!r}") from None
    except OSError as err:  # a link loop, a too-long name, a directory without permission
        raise OSError(f"{name}: cannot read {path!r}: {err.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{name}: {path!r} is not a regular file (it is {_kind(info.st_mode)})")
    if limit is not None and info.st_size > limit:
        raise ValueError(f"{name}: {path!r} is larger than {_size(limit)}, the most it may be")
    return info


def read_regular(path, name: str, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes (``check_regular``),
    opened without blocking and checked again once open (it may have been swapped meanwhile)."""
    check_regular(path, name, limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(os.fspath(path), flags)
    except OSError as err:
        raise OSError(f"{name}: cannot read {os.fspath(path)!r}: {err.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{name}: {os.fspath(path)!r} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{name}: {os.fspath(path)!r} is larger than {_size(limit)}")
    return data


def _kind(mode: int) -> str:
    kinds = {stat.S_ISREG: "a file", stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO",
             stat.S_ISCHR: "a device", stat.S_ISBLK: "a device",
             stat.S_ISSOCK: "a socket"}  # fmt: skip
    return next((kind for test, kind in kinds.items() if test(mode)), "not a file")


def _size(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit} bytes"


#: Formats Pillow writes only up to a side (larger images are shrunk without a word).
_MAX_SIDES = {"ICO": 256}
#: Formats that store fixed square sizes only (any other image is stretched).
_SQUARE_ONLY = ("ICNS",)


def check_output(
    path: str, inputs: Iterable = (), name: str = "output", size: int | None = None
) -> None:
    """Raise unless an image can be written at ``path``: a known extension whose format can hold
    the image (RGB pixels, a longer side of ``size`` px; None: not known, refused by a format of
    limited size such as .ico), an existing writable
    directory, not a directory itself, and not one of ``inputs`` (paths of files read)."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name}: {path!r} is a directory; give a file name")
    ext = os.path.splitext(path)[1].lower()
    if ext not in PIL.Image.registered_extensions():
        raise ValueError(f"{name}: unknown image file extension {ext!r}; use .png or .jpg")
    _check_format(ext, name)
    fmt = PIL.Image.registered_extensions()[ext]
    if fmt in _MAX_SIDES and (size is None or size > _MAX_SIDES[fmt]):
        raise ValueError(
            f"{name}: {ext!r} images are at most {_MAX_SIDES[fmt]} px a side (a larger one is "
            f"shrunk); got size {size if size is not None else '(not given)'}: use .png or "
            f".jpg, or a size of at most {_MAX_SIDES[fmt]}"
        )
    check_writable_dir(os.path.dirname(os.path.abspath(path)), name)
    check_name_length(path, name)
    check_replaceable(path, name)
    check_not_an_input(path, inputs, name)


def check_not_inside(path, directory, name: str = "output") -> None:
    """Raise if ``path`` is the trained model's ``directory`` or inside it (through links):
    writing there would change the model (its style image, its description)."""
    real, top = os.path.realpath(os.fspath(path)), os.path.realpath(os.fspath(directory))
    if real == top or real.startswith(top.rstrip(os.sep) + os.sep):
        raise ValueError(
            f"{name}: {os.fspath(path)!r} is inside the model directory "
            f"{os.fspath(directory)!r}; writing there would change the model: choose another path"
        )


def check_not_an_input(path, inputs, name: str = "output") -> None:
    """Raise if ``path`` is one of ``inputs``: paths of files read, in lists, tuples and dicts
    to any depth (a style list, an options dict); anything else among them is not a path."""
    for source in _paths_in(inputs):
        if same_file(path, source):
            raise ValueError(
                f"{name}: {os.fspath(path)!r} is also an input ({source!r}); "
                f"writing it would destroy the input: choose another output path"
            )


def _paths_in(value) -> Iterator[str]:
    if isinstance(value, (str, os.PathLike)):
        yield os.fspath(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _paths_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _paths_in(item)


def check_replaceable(path, name: str = "output") -> None:
    """Raise if something that is not a regular file is at ``path`` (a FIFO, a device, a
    socket, a link to nothing): writing the output there would replace it. A regular file (or a
    link to one) is replaced by the output, as asked."""
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isfile(path):
        kind = "a link to nothing" if not os.path.exists(path) else _kind(os.stat(path).st_mode)
        raise ValueError(
            f"{name}: {path!r} exists and is {kind}, not a regular file; writing the output "
            "would replace it: choose another path or remove it"
        )


def _check_format(ext: str, name: str) -> None:
    """Raise unless Pillow can write an RGB image (what tfstyle writes) in the format of ``ext``:
    tried on a one-pixel image, so a read-only format (.psd, .fits, .cur) or one that cannot hold
    RGB pixels (.xbm) is refused before the work, not after it."""
    fmt = PIL.Image.registered_extensions()[ext]
    try:
        if fmt in _SQUARE_ONLY:
            raise OSError(f"{fmt} holds fixed square sizes only: the image would be stretched")
        if fmt not in PIL.Image.SAVE:
            raise OSError(f"Pillow reads {fmt} but cannot write it")
        PIL.Image.new("RGB", (1, 1)).save(io.BytesIO(), format=fmt)
    except Exception as err:  # noqa: BLE001 (Pillow's plugins raise what they like)
        raise ValueError(
            f"{name}: {ext!r} images of RGB pixels cannot be written ({err}); use .png or .jpg"
        ) from None


def check_writable_dir(directory: str, name: str) -> None:
    """Raise ``OSError`` naming ``name`` unless ``directory`` exists and a file can be created in
    it (tried: permissions, read-only file systems and /proc all say no only when asked)."""
    if not os.path.isdir(directory):
        raise not_a_directory(directory, name)
    try:
        fd, probe = tempfile.mkstemp(prefix=".tfstyle-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror
        if err.errno == errno.ENOENT:  # the directory is there: its file system (/proc) says no
            reason = "its file system takes no new files"
        message = f"{name}: cannot write to directory {directory!r}: {reason}"
        raise type(err)(message) from None


def not_a_directory(path: str, name: str) -> OSError:
    """The error for a ``path`` that should be a directory and is not: missing, or something
    else (a file, a FIFO, a link to nothing or one that loops)."""
    if os.path.lexists(path):
        try:
            kind = _kind(os.stat(path).st_mode)
        except OSError as err:
            kind = "a link that loops" if err.errno == errno.ELOOP else "a link to nothing"
        return NotADirectoryError(f"{name}: {path!r} is {kind}, not a directory")
    return FileNotFoundError(f"{name}: directory does not exist: {path!r}")


def check_name_length(path: str, name: str) -> None:
    """Raise ``OSError`` naming ``name`` if the file name of ``path`` is longer than its file
    system allows."""
    base = os.path.basename(path)
    try:
        limit = os.pathconf(os.path.dirname(os.path.abspath(path)), "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    if len(os.fsencode(base)) > limit:
        raise OSError(f"{name}: file name longer than {limit} bytes: {base[:40]!r}...")


def save_image(image: PIL.Image.Image, path: str) -> None:
    """Save ``image`` at ``path`` (format from the extension), atomically, at its own size (an
    icon holds just that size, not Pillow's default list of smaller ones)."""
    fmt = PIL.Image.registered_extensions()[os.path.splitext(path)[1].lower()]
    extra = {"sizes": [image.size]} if fmt == "ICO" else {}
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **extra)


_unfinished: set[str] = set()  # atomic_path's temporaries whose block has not ended


_new_dirs: list[str] = []  # new_directories' directories whose block has not ended


def remove_unfinished() -> None:
    """Remove the temporaries of ``atomic_path`` blocks still running (in an abandoned worker
    thread), and the directories of ``new_directories`` blocks left empty, before the process
    exits without waiting for them (Ctrl-C, SIGTERM)."""
    for tmp in list(_unfinished):
        _remove(tmp)
    for path in reversed(list(_new_dirs)):
        with contextlib.suppress(OSError):  # not empty, or already gone
            os.rmdir(path)


@contextlib.contextmanager
def new_directories(path, name: str) -> Iterator[None]:
    """``os.makedirs(path)`` for the block; the directories it created are removed again if the
    block fails or is stopped and they are still empty (an export stopped at once must not
    leave a new, empty model directory). ``name`` names ``path`` in the error."""
    given = os.fspath(path)
    path = os.path.abspath(given)
    missing = []
    head = path
    while not os.path.lexists(head) and os.path.dirname(head) != head:
        missing.append(head)
        head = os.path.dirname(head)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        if os.path.lexists(head) and not os.path.isdir(head):  # FILE or FILE/sub: say so
            what = "is not a directory" if head == path else f"is under {head!r}, not a directory"
            raise NotADirectoryError(f"{name}: {given!r} {what}") from None
        raise type(err)(f"{name}: cannot create {given!r}: {err.strerror}") from None
    missing.reverse()  # outermost first
    _new_dirs.extend(missing)
    try:
        yield
    except BaseException:
        for made in reversed(missing):
            with contextlib.suppress(OSError):
                os.rmdir(made)
        raise
    finally:
        for made in missing:
            _new_dirs.remove(made)


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
    _unfinished.add(tmp)
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
    finally:
        _unfinished.discard(tmp)


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


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name one file (by identity, through links; by their real
    paths where one does not exist)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return os.path.realpath(a) == os.path.realpath(b)
