"""Frictionless validation of a written package: in a helper process when one is ready.

Frictionless's first check in a process costs about half a second of imports and first-use
setup (its plugins, its metadata profiles) before it reads a row. A run whose inputs changed
(so that it may publish) calls `start`: a helper process (this file run as a script, so that
it imports Frictionless and nothing of reportdata) checks an empty package of every table
while the run extracts and validates. `check` then hands the run's package to the warm
helper, and the run's own process is free meanwhile (its DuckDB append goes on beside it).
Without a helper, or when the helper is gone or answers nonsense, the check runs in this
process: the result is the same either way.

The protocol is one JSON line each way: the descriptor's absolute path in, its `raw_check`
out with the path it answers about (the warm-up package goes in first, unanswered). A helper
silent for longer than a check could take (`_patience`) is taken as hung: it is ended and the
check runs here.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

# A helper that has not answered within a minute plus this much a megabyte of the package's
# files is taken as hung: Frictionless checks a few MB a second here (a first version
# of 10,000 reports in 35-62 s, docs/benchmarks.md), so that is several times a slow check.
PATIENCE_S = 60.0
PATIENCE_S_PER_MB = 2.0

_LOCK = threading.Lock()
_HELPER: list[subprocess.Popen[bytes]] = []  # at most one, started by `start`
_WARM_UP: list[Path] = []  # the folder of the package it warms up on, removed by `stop`


def raw_check(descriptor: Path | str | dict[str, Any]) -> dict[str, Any]:
    """Validate a package with Frictionless here: whether it is valid, its package-level
    errors and, per resource, its row count and errors, as plain JSON-ready data."""
    from frictionless import validate

    source = descriptor if isinstance(descriptor, dict) else str(descriptor)
    report = validate(source, type="package")
    return {
        "valid": bool(report.valid),
        "errors": [{"type": str(e.type), "message": str(e.message)} for e in report.errors],
        "tasks": [
            {
                "name": task.name,
                "rows": task.stats.get("rows"),
                "errors": [
                    {
                        "type": str(e.type),
                        "message": str(e.message),
                        "cells": [
                            "" if c is None else str(c) for c in getattr(e, "cells", None) or []
                        ],
                        "row_number": getattr(e, "row_number", None),
                        "field_name": getattr(e, "field_name", None),
                    }
                    for e in task.errors
                ],
            }
            for task in report.tasks
        ],
    }


def start() -> None:
    """Start the helper (once a process; nothing when it cannot start)."""
    with _LOCK:
        if _HELPER:
            return
        try:
            helper = subprocess.Popen(
                # this file as a script, without its folder on sys.path (-P): the helper
                # imports Frictionless and nothing of reportdata (whose import costs 0.2 s)
                [sys.executable, "-P", __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            return
        _HELPER.append(helper)
        with contextlib.suppress(OSError):  # without it, the first check warms the helper
            _WARM_UP.append(Path(tempfile.mkdtemp(prefix="reportdata-warm-up-")))
            if helper.stdin is not None:
                warm = str(_warm_up(_WARM_UP[-1]))
                helper.stdin.write(json.dumps({"warm": warm}).encode("utf-8") + b"\n")
                helper.stdin.flush()


def stop() -> None:
    """End the helper, if any (never while it is asked something: under the same lock)."""
    with _LOCK:
        while _HELPER:
            _end(_HELPER.pop())
        while _WARM_UP:
            shutil.rmtree(_WARM_UP.pop(), ignore_errors=True)


def check(descriptor: Path | str) -> dict[str, Any]:
    """`raw_check` of the package, by the helper when one is running, else here."""
    path = os.path.abspath(descriptor)
    with _LOCK:
        if _HELPER:
            helper = _HELPER[0]
            try:
                answer = _ask(helper, path)
            except BaseException:  # interrupted mid-question: its answer must not be read later
                _end(_HELPER.pop())
                raise
            if answer is not None:
                return answer
            _end(_HELPER.pop())  # gone, or garbled: not asked again
    return raw_check(path)


def _ask(helper: subprocess.Popen[bytes], path: str) -> dict[str, Any] | None:
    """The helper's answer about `path`; None when it gives none of the expected shape."""
    stdin, stdout = helper.stdin, helper.stdout
    if stdin is None or stdout is None:
        return None
    try:
        stdin.write(json.dumps(path).encode("utf-8") + b"\n")
        stdin.flush()
        # one answer a question, read whole: nothing is left in the buffer to wait for
        ready, _, _ = select.select([stdout], [], [], _patience(path))
        if not ready:
            return None  # hung
        answer = json.loads(stdout.readline())
    except (OSError, ValueError):
        return None
    if not isinstance(answer, dict) or answer.pop("path", None) != path:
        return None
    return answer if _well_formed(answer) else None


def _patience(path: str) -> float:
    """Seconds the helper may take to answer about the package at `path` (see PATIENCE_S)."""
    try:
        size = sum(p.stat().st_size for p in Path(path).parent.iterdir() if p.is_file())
    except OSError:
        size = 0
    return PATIENCE_S + PATIENCE_S_PER_MB * size / 2**20


def _well_formed(answer: dict[str, Any]) -> bool:
    """Whether an answer has `raw_check`'s shape (a helper of other code might not)."""
    keys = {"type", "message", "cells", "row_number", "field_name"}
    try:
        return (
            isinstance(answer["valid"], bool)
            and all({"type", "message"} <= e.keys() for e in answer["errors"])
            and all(
                isinstance(t["name"], str)
                and (t["rows"] is None or isinstance(t["rows"], int))
                and all(keys <= e.keys() for e in t["errors"])
                for t in answer["tasks"]
            )
        )
    except (KeyError, TypeError, AttributeError):
        return False


def _end(helper: subprocess.Popen[bytes]) -> None:
    """Stop the helper at once: it holds nothing worth a wait (it only reads packages, and is
    asked nothing now), and its exit, Frictionless loaded, would cost the run ~0.1 s."""
    helper.kill()
    helper.wait()
    for pipe in (helper.stdin, helper.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _warm_up(folder: Path) -> Path:
    """An empty package of every table, written as a publisher writes one (header-only CSV
    files), in `folder`: checking it loads what a real check needs."""
    from reportdata.publish import _json_bytes, _table_resource, render_csv
    from reportdata.schema import TABLES

    resources = []
    for name in TABLES:
        data = render_csv(name, [])
        (folder / f"{name}.csv").write_bytes(data)
        resources.append(_table_resource(name, data))
    path = folder / "datapackage.json"
    path.write_bytes(_json_bytes({"name": "warm-up", "resources": resources}))
    return path


def _serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The helper's loop, until end of input: a path a line in, its `raw_check` a line out;
    a ``{"warm": descriptor}`` line is checked and not answered."""
    for line in requests:
        try:
            request = json.loads(line)
            if isinstance(request, dict):
                with contextlib.suppress(Exception):
                    raw_check(request["warm"])
                continue
            answer: Any = {**raw_check(request), "path": request}
        except Exception as exc:  # the parent then checks it itself
            answer = {"failed": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer, ensure_ascii=False).encode("utf-8") + b"\n")
        answers.flush()


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
else:
    atexit.register(stop)  # a run that ends without `stop` leaves no helper behind
