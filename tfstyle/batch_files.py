"""The files of a batch (``tfstyle.batch``): which inputs CONTENT names, where their outputs go,
and reading and writing them through Beam's file systems (``FileSystems``).

No TensorFlow and no Beam pipeline here; Beam's ``FileSystems`` is imported when a function
needs it (``gs://`` and the other schemes Beam has installed work wherever it does).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid

from tfstyle import extras, files

#: The dead-letter file, in OUT_DIR: one JSON object per failed input.
DEAD_LETTER = "failed.jsonl"
#: Files taken from a directory (a glob takes every file it matches but hidden ones).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
#: Video clips taken from a directory, each stylised whole (``tfstyle.video``) into an mp4. A
#: GIF is an image here: its first frame.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")


def is_video(path: str) -> bool:
    """Whether batch takes ``path`` as a clip (``VIDEO_EXTENSIONS``) rather than an image."""
    return path.lower().endswith(VIDEO_EXTENSIONS)


#: The error when Apache Beam is not installed.
INSTALL_HINT = extras.hint("tfstyle batch", "Apache Beam", "beam")


def file_systems():
    """Beam's ``FileSystems``, or an ``ImportError`` saying what to install."""
    try:
        from apache_beam.io.filesystems import FileSystems
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return FileSystems


def absolute(path):
    """A local path made absolute and real, symbolic links resolved (workers need not share the
    launcher's directory, and a link cannot make OUT_DIR look like another place than the
    inputs); a URL or anything else as it is."""
    if not isinstance(path, str) or "://" in path:
        return path
    return os.path.realpath(os.path.expanduser(path))


def list_inputs(content: str, out_dir: str) -> tuple[str, list[str]]:
    """The input root and the sorted input files that ``content`` names (see
    ``tfstyle.batch.run``), none of them under ``out_dir``.

    Raises:
        FileNotFoundError: ``content`` does not exist.
        ValueError: it names no file, or a special file (a FIFO, a device), or ``out_dir`` is
            where the inputs are.
    """
    FileSystems = file_systems()
    local = FileSystems.get_scheme(content) is None
    if any(c in content for c in "*?[") and not (local and os.path.exists(content)):
        cut = min(content.find(c) for c in "*?[" if c in content)
        root, pattern, wanted = content[:cut].rsplit("/", 1)[0] or "/", content, None
    elif local and os.path.isfile(content):
        root, pattern, wanted = os.path.dirname(content), content, None
    elif local and not os.path.isdir(content):
        if os.path.lexists(content):  # a FIFO, a device, a link to nothing or to itself
            files.check_regular(content, "content")
        raise FileNotFoundError(f"content: no such file or directory: {content!r}")
    else:  # a directory; elsewhere than here, a prefix unless it is a file
        if not local and FileSystems.exists(content):
            root, pattern, wanted = FileSystems.split(content)[0], content, None
        else:
            root = content.rstrip("/") or "/"
            pattern, wanted = FileSystems.join(root, "**"), IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    if _inside(root, out_dir) is not None:
        raise ValueError(
            f"OUT_DIR {out_dir!r} is the input directory {root!r} or above it: the outputs "
            "could write over inputs; choose a directory beside it or inside it"
        )
    if local and os.path.isfile(content):  # taken as it is, even with "[" or "*" in its name
        return root, [content]
    found = []
    # A local directory is walked, not matched: its name is no pattern ("g[1]" is itself), and
    # links to nothing (or in a loop) are listed, so that they fail, named.
    listed = (
        [os.path.join(d, n) for d, _, names in os.walk(root) for n in names]
        if local and wanted
        else [meta.path for meta in FileSystems.match([pattern])[0].metadata_list]
    )
    for path in listed:
        relative = _inside(path, root)
        if relative is None or any(p.startswith(".") for p in relative.split("/")):
            continue  # hidden, e.g. an interrupted output's temporary file
        if _inside(path, out_dir) is not None:
            continue  # an output of an earlier run
        if wanted and not path.lower().endswith(wanted):
            continue
        found.append(path)
    if "/**/" in pattern:  # "**" also stands for no directory: photos/**/*.jpg has photos/x.jpg
        top = pattern.replace("/**/", "/", 1)
        found += [
            m.path
            for m in FileSystems.match([top])[0].metadata_list
            if _inside(m.path, out_dir) is None
            and m.path not in found
            and not any(p.startswith(".") for p in _inside(m.path, root).split("/"))
        ]
        found = list(dict.fromkeys(found))
    if not found:
        what = f"no image or video files ({', '.join(wanted)})" if wanted else "no files"
        raise ValueError(f"content: {what} in {content!r} (outside OUT_DIR, not hidden)")
    return root, sorted(found)


def output_path(path: str, root: str, out_dir: str) -> str:
    """The output of input ``path`` (under ``root``): ``out_dir/<path relative to root>.png``,
    or ``.mp4`` for a clip (``is_video``).

    Two inputs never share an output: ``a.jpg`` -> ``a.jpg.png``, ``a.png`` -> ``a.png.png``,
    ``a.mov`` -> ``a.mov.mp4``.
    """
    relative = _inside(path, root)
    if not relative:
        raise ValueError(f"{path!r} is not under the input root {root!r}")
    return file_systems().join(out_dir, relative + (".mp4" if is_video(path) else ".png"))


#: How an input's own masks are named under ``mask_dir`` (``masks_for``): ``{name}`` is the
#: input's path relative to CONTENT's root (extension kept), ``{k}`` the style's number from 1.
MASK_NAME = "{name}.mask{k}"
CONTENT_MASK_NAME = "{name}.content"


def masks_for(path: str, root: str, mask_dir: str, styles: int) -> tuple:
    """The masks of input ``path`` (under ``root``) found in ``mask_dir``: ``(masks, content
    mask)``, each None where not found. ``masks`` is one path per style, named
    ``mask_dir/<path relative to root>.mask<k>.<ext>`` (k from 1, any image extension of
    ``IMAGE_EXTENSIONS``), the content mask ``...<relative>.content.<ext>``: for
    ``photos/trip/a.jpg`` (CONTENT ``photos``), ``masks/trip/a.jpg.mask1.png``.

    Raises:
        ValueError: some of the styles' masks found but not all, or two files for one mask.
    """
    FileSystems = file_systems()
    relative = _inside(path, root)
    base = FileSystems.join(mask_dir, relative)
    local = "://" not in mask_dir

    def find(stem: str) -> str | None:
        if local:  # any case of the extension; a link to nothing is found (and fails, named)
            directory, name = os.path.split(stem)
            wanted = {(name + ext).lower() for ext in IMAGE_EXTENSIONS}
            names = os.listdir(directory) if os.path.isdir(directory) else []
            found = sorted(os.path.join(directory, n) for n in names if n.lower() in wanted)
        else:
            found = [stem + ext for ext in IMAGE_EXTENSIONS if FileSystems.exists(stem + ext)]
        if len(found) > 1:
            raise ValueError(f"masks: {', '.join(map(repr, found))} are one mask twice: keep one")
        return found[0] if found else None

    own = [find(MASK_NAME.format(name=base, k=k + 1)) for k in range(styles)]
    content = find(CONTENT_MASK_NAME.format(name=base))
    if not any(own):
        return None, content
    if not all(own):
        missing = MASK_NAME.format(name=base, k=own.index(None) + 1)
        raise ValueError(
            f"masks: {next(m for m in own if m)!r} is there but not {missing!r}.<ext>: an "
            f"input's masks come one per style ({styles}) or not at all"
        )
    return own, content


def _inside(path: str, directory: str) -> str | None:
    """``path`` relative to ``directory`` ("" if the same), or None if not inside it."""
    directory = directory.rstrip("/")
    if path.rstrip("/") == directory:
        return ""
    prefix = directory + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def check_out_dir(out_dir: str) -> None:
    """A local OUT_DIR: created if its parent exists, and writable."""
    if "://" in out_dir:
        return  # an object store: written to by the workers, with their credentials
    if not os.path.isdir(out_dir):
        parent = os.path.dirname(os.path.abspath(out_dir))
        if not os.path.isdir(parent):
            raise files.not_a_directory(parent, "OUT_DIR's parent")
        if os.path.lexists(out_dir):  # a file, a FIFO, a link to nothing or a looping one
            raise files.not_a_directory(out_dir, "OUT_DIR")
        try:
            os.mkdir(out_dir)
        except OSError as err:
            raise type(err)(f"OUT_DIR: cannot create {out_dir!r}: {err.strerror}") from None
    files.check_writable_dir(out_dir, "OUT_DIR")


def check_own_names(out_dir: str, outputs: set[str]) -> None:
    """Raise unless ``OUT_DIR/failed.jsonl`` is free for the dead-letter file: no output under it
    (an input directory of that name) and nothing there but a file (a directory there, with
    files in it, is never replaced)."""
    own = file_systems().join(out_dir, DEAD_LETTER)
    if any(_inside(output, own) is not None for output in outputs):
        raise ValueError(
            f"content: an input directory named {DEAD_LETTER!r} would put its outputs in "
            f"{own!r}, batch's list of failed inputs; rename it or choose another OUT_DIR"
        )
    if (
        "://" not in out_dir
        and os.path.lexists(own)
        and (os.path.islink(own) or not os.path.isfile(own))
    ):  # batch writes a file there, never a link: a link there is not its own
        raise ValueError(
            f"OUT_DIR: {own!r} exists and is not a file (or is a link); batch writes its list of "
            "failed inputs "
            "there: move it away or choose another OUT_DIR"
        )
    if "://" not in out_dir and os.path.isfile(own) and not _own_dead_letter(own):
        raise ValueError(
            f"OUT_DIR: {own!r} exists and is not batch's list of failed inputs (a line that is "
            "not one of its records); a run replaces that file: move it away or choose another "
            "OUT_DIR"
        )


#: Largest dead-letter file of an earlier run read to recognise it (about 300,000 records).
_MAX_DEAD_LETTER = 64 * 2**20


def _own_dead_letter(path: str) -> bool:
    """Whether the file at ``path`` is an earlier run's dead-letter file (empty, or JSON lines
    of ``{"input": ..., "error": ...}`` records), which a run may replace."""
    try:
        data = files.read_regular(path, "OUT_DIR", _MAX_DEAD_LETTER)
        for line in data.decode("utf-8").splitlines():
            record = json.loads(line)
            if not (isinstance(record, dict) and set(record) == {"input", "error"}):
                return False
    except (OSError, ValueError):  # unreadable, too large, not UTF-8 or not JSON
        return False
    return True


@contextlib.contextmanager
def staging(out_dir: str):
    """A directory of this run's own (``OUT_DIR/.tfstyle-batch-<random>``), where Beam writes the
    dead-letter file and its temporary files; removed, whole, when the run ends however it ends.
    A hidden name is never an output's (``list_inputs`` leaves hidden files out), so removing it
    removes only what this run wrote there."""
    FileSystems = file_systems()
    path = FileSystems.join(out_dir, f".tfstyle-batch-{uuid.uuid4().hex}")
    if "://" not in out_dir:
        os.mkdir(path)
    try:
        yield path
    finally:
        if "://" in out_dir:
            with contextlib.suppress(Exception):  # nothing may have been written there
                FileSystems.delete([path + "/"])
        else:
            shutil.rmtree(path, ignore_errors=True)


def publish(staged: str, out_dir: str) -> None:
    """Move the staged dead-letter file to ``OUT_DIR/failed.jsonl`` (replacing an earlier run's)."""
    FileSystems = file_systems()
    final = FileSystems.join(out_dir, DEAD_LETTER)
    if "://" not in out_dir:
        os.replace(staged, final)
        return
    if FileSystems.exists(final):
        FileSystems.delete([final])
    FileSystems.rename([staged], [final])


def complete(output: str) -> bool:
    """Whether ``output`` is a finished output: a file that is not empty. (Anything else there,
    an empty file or a directory, is not skipped: writing the output then fails, named.)"""
    if "://" not in output:
        return os.path.isfile(output) and os.path.getsize(output) > 0
    found = file_systems().match([output])[0].metadata_list
    return any(m.path == output and m.size_in_bytes > 0 for m in found)


def existing(out_dir: str) -> set[str]:
    """The files under ``out_dir`` (one listing)."""
    FileSystems = file_systems()
    found = FileSystems.match([FileSystems.join(out_dir, "**")])[0].metadata_list
    return {meta.path for meta in found}


def read(path: str, name: str, limit: int) -> bytes:
    """The bytes of a file of at most ``limit`` bytes; errors name the input as ``name``. A local
    file must be a regular one (never a FIFO or a device, which would block or never end)."""
    if "://" not in path:
        return files.read_regular(path, name, limit)
    FileSystems = file_systems()
    from apache_beam.io.filesystem import CompressionTypes

    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{name}: no such file: {path!r}")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(
            f"{name}: {path!r} is larger than {limit // 2**20} MiB; not an image this tool can use"
        )
    return data


def write(data: bytes, output: str) -> None:
    """Write the PNG ``data`` to ``output`` atomically: under a hidden temporary name beside it,
    renamed when complete (a rerun skips only complete outputs; ``list_inputs`` never lists
    hidden files)."""
    FileSystems = file_systems()
    from apache_beam.io.filesystem import CompressionTypes

    if "://" not in output:  # a FIFO, a device or a link to nothing there is not replaced
        files.check_replaceable(output)
    directory, name = FileSystems.split(output)
    temporary = FileSystems.join(directory, f".{name[:64]}.tmp-{uuid.uuid4().hex}")
    try:
        with FileSystems.create(
            temporary, mime_type="image/png", compression_type=CompressionTypes.UNCOMPRESSED
        ) as f:
            f.write(data)
        FileSystems.rename([temporary], [output])
    except Exception:
        try:
            FileSystems.delete([temporary])
        except Exception:  # never created, or already gone
            pass
        raise
