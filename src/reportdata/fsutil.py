"""Atomic file writes: write a temporary sibling, fsync it, rename it over the target."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once, at import: os.umask can only be read by setting it, which is not thread-safe.
_UMASK = _read_umask()


def file_stamp(info: os.stat_result) -> list[int]:
    """What shows a file unchanged since it was checked: its size, device and inode, and
    modification and status-change times (ns). Writing to a file, or replacing it, changes
    them."""
    return [info.st_size, info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns]


def fsync_file(path: Path) -> None:
    """Put a file's written bytes on disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never half.

    The file keeps the permissions of the one it replaces; a new file gets the ones ``open``
    would give it (mkstemp alone would leave it readable by its owner only).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive_lock(path: Path, error: type[Exception]) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if missing) for the block; the kernel
    releases it however the process ends. A lock file that cannot be opened raises `error`."""
    try:
        fh = open(path, "a+b")  # noqa: SIM115 - held for the block
    except OSError as exc:
        raise error(f"Cannot write to {path.parent}: {exc.strerror or exc}.") from exc
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def remove_temp_siblings(path: Path) -> None:
    """Delete the temporary siblings (``.<name>.*.tmp``) that killed writes of ``path`` left.

    Call it only while holding the lock of whoever writes ``path``: a live writer's
    temporary file looks the same.
    """
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            leftover.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))
