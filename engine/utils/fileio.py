"""Atomic file writes: readers (the console, a resuming job) never see a torn file.

Each writer goes to a temporary file in the same directory, flushes and fsyncs it, then
``os.replace``s it over the target, which is atomic on POSIX filesystems. The file gets the mode
an ordinary ``open`` would give it (the target's own mode, else 0666 less the umask), not
mkstemp's 0600. A failure (a full disk, no permission) leaves the old file and raises an
OSError that names the target.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process umask, read without changing it (Linux /proc; else the set-and-restore dance)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(target: Path) -> int:
    """The mode ``open(target, "w")`` would leave: the existing file's, else 0666 less the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def with_path(error: OSError, path: str | os.PathLike) -> OSError:
    """``error`` naming ``path`` (a write to a file descriptor raises ENOSPC with no file name)."""
    if error.filename is None and error.errno is not None:
        return type(error)(error.errno, error.strerror, str(path))
    return error


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), new_file_mode(target))
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as error:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError) and error.filename is None:
            raise with_path(error, target) from None
        raise
    _fsync_dir(target.parent)


@contextmanager
def atomic_directory(out: str | os.PathLike):
    """``with atomic_directory(out) as tmp:`` fill ``tmp``; on success it becomes ``out`` whole.

    ``tmp`` is a folder beside ``out`` (same filesystem), made with the umask's mode. A new
    ``out`` is ``tmp`` renamed; into an existing ``out`` each file is renamed over its namesake
    once all are complete, and files of others there (the console's decode.log) stay. A failure
    removes ``tmp`` and leaves ``out`` as it was; an OSError about a file in ``tmp`` names the file
    as it would be in ``out``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(20, "exists and is not a directory", str(out))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        try:
            yield tmp
        except OSError as error:
            if error.filename and str(error.filename).startswith(str(tmp)):
                named = str(out) + str(error.filename)[len(str(tmp)):]
                raise type(error)(error.errno, error.strerror, named) from None
            raise
        if out.exists():
            for item in sorted(tmp.iterdir()):
                os.replace(item, out / item.name)
        else:
            os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(out.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` through :func:`atomic_write_bytes` (torch imported lazily: the console never needs it)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())
