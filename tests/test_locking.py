"""One run at a time per project: the lock, its sentence, and no stale lock after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reportdata.errors import RunLocked
from reportdata.locking import lock_path, run_lock

HOLDER = """
import sys, time
from pathlib import Path
from reportdata.locking import run_lock
with run_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold_in_a_process(root: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_second_run_is_refused_with_who_holds_the_lock(tmp_path: Path) -> None:
    child = _hold_in_a_process(tmp_path)
    try:
        pattern = rf"pid {child.pid}, since .*try again"
        with pytest.raises(RunLocked, match=pattern) as info, run_lock(tmp_path, timeout=0):
            pass
        assert info.value.exit_code == 75
    finally:
        child.kill()
        child.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    child = _hold_in_a_process(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert lock_path(tmp_path).exists()  # the file stays; the kernel dropped the lock
    with run_lock(tmp_path, timeout=0):
        pass


def test_a_waiting_run_goes_on_when_the_first_ends(tmp_path: Path) -> None:
    order: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with run_lock(tmp_path):
            first_holds.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    first_holds.wait(5)
    with run_lock(tmp_path, timeout=30, poll=0.01):
        order.append("second holds")
    thread.join()
    assert order == ["first done", "second holds"]
