"""One run at a time in a project: two runs never publish at once.

The lock is an ``flock`` on ``.reportdata/run.lock``: the kernel releases it when its holder
exits, however it exits, so a killed run never leaves a stale lock behind. The file records
who holds it, for the sentence the second run prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from reportdata.errors import RunLocked


def lock_path(root: Path) -> Path:
    return Path(root) / ".reportdata" / "run.lock"


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError, TypeError):
        info = json.loads(path.read_text(encoding="utf-8"))
        return f" (pid {int(info['pid'])}, since {info['since']})"
    return ""


@contextlib.contextmanager
def run_lock(root: Path, timeout: float = 0.0, poll: float = 0.2) -> Iterator[None]:
    """Hold the project's run lock, waiting up to `timeout` seconds for another run to end.

    Raises `RunLocked` with one sentence when the lock stays taken.
    """
    path = lock_path(root)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
    except OSError as exc:
        raise RunLocked(f"Cannot create the run lock {path}: {exc.strerror or exc}.") from exc
    with fh:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    waited = f" after waiting {timeout:g} s" if timeout > 0 else ""
                    raise RunLocked(
                        f"Another reportdata run is publishing in {Path(root)}{_holder(path)}"
                        f"{waited}; try again when it has finished."
                    ) from None
                time.sleep(poll)
        since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "since": since}))
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
