"""A `reportdata run` stopped by SIGTERM (a scheduler's timeout, `kill`, systemd) unwinds.

Without PREFECT_API_URL a run starts a temporary Prefect server as a child process. Python's
default for SIGTERM ends the run at once, and that server was left running, adopted by
init: one more per stopped run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from _helpers import CLI

SERVER = "prefect.server.api.server:create_app"


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a pid 1 that never reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for_server(run: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [c for c in _children(run.pid) if SERVER in _cmdline(c)]
        if found:
            return found[0]
        assert run.poll() is None, f"the run ended first, with {run.returncode}"
        time.sleep(0.1)
    raise AssertionError(f"no temporary Prefect server started within {timeout} s")


@pytest.mark.slow
def test_sigterm_stops_the_run_and_its_temporary_prefect_server(
    project_copy: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as sink:  # a file, not a pipe: an orphaned server would hold a pipe
        run = subprocess.Popen(
            [str(CLI), "run", "--no-progress"],
            cwd=project_copy,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,  # its own process group: the cleanup below reaches orphans
        )
    server = None
    try:
        server = _wait_for_server(run, timeout=120)
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=90)
        deadline = time.monotonic() + 15
        while _running(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(server), "the temporary Prefect server outlived its run"
    finally:
        if run.poll() is None or (server and _running(server)):
            os.killpg(run.pid, signal.SIGKILL)  # the group the run and its server share
            run.wait()
    assert run.returncode == 143
    assert stderr.read_text().strip().splitlines() == [
        "Stopped by SIGTERM; a version is published whole or not at all."
    ]
    assert not list((project_copy / "published").glob("*/[0-9]*"))
