"""A publisher that tests/test_crash.py kills at random moments.

Usage: ``python crash_publisher.py INPUTS PUBLISHED VARIANT``

It imports reportdata, reads the prepared rows and dataset metadata from INPUTS (JSON written
by the test), builds and checks the tables of variant VARIANT (as the flow checks them before
publishing), prints ``ready`` and waits for a line on stdin. Then it publishes the tables into
PUBLISHED with `reportdata.publish.publish`, printing ``phase <name> <seconds>`` as it enters
each step and ``done <version> <new> <seconds>`` at the end, so the test knows which step a
kill interrupted.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Rows = dict[str, list[dict[str, Any]]]

# (module, function, phase): a call of the function starts the phase. finish_release imports
# the catalog, site and warehouse functions when it runs, so patching their modules suffices.
PHASES = (
    ("reportdata.publish", "_write_file", "files"),
    ("reportdata.validate", "validate_package", "validate"),  # imported when called
    ("reportdata.warehouse", "prepare_append", "append"),  # on a thread, during "validate"
    ("reportdata.publish", "fsync_dir", "rename"),
    ("reportdata.publish", "finish_release", "finish"),
    ("reportdata.warehouse", "build_warehouse", "warehouse"),
    ("reportdata.publish", "_write_latest", "latest"),
    ("reportdata.catalog", "write_catalog", "catalog"),
    ("reportdata.site", "write_site", "site"),
)
WRITE = "write"
"""The phase of an atomic write of a derived file (fsutil.atomic_write_bytes), within the
finishing steps; the step it belongs to resumes when the write returns."""
WRITERS = ("reportdata.publish", "reportdata.catalog", "reportdata.site")
"""The modules whose atomic_write_bytes is marked."""
PHASE_NAMES = ("prepare", *dict.fromkeys(p for _, _, p in PHASES), WRITE, "done")
"""Every phase; but for `WRITE`, in the order a publish of a new version goes through them."""


def variant_rows(base: Rows, k: int) -> Rows:
    """Variant `k` of the data: one indicator left out and another's subject revised.

    Consecutive variants always differ (they leave out different rows), so each one published
    on top of the previous is a new version.
    """
    indicators = [dict(row) for row in base["indicators"]]
    n = len(indicators)
    revised = indicators[(3 * k + 1) % n]
    revised["subject"] = f"{revised['subject']}（第{k}次修订）"
    del indicators[k % n]
    return {"documents": base["documents"], "sections": base["sections"], "indicators": indicators}


class PhaseMarker:
    """Prints ``phase <name>`` on stdout, flushed, whenever the phase changes."""

    def __init__(self) -> None:
        self.current = ""
        self.start = time.perf_counter()

    def enter(self, phase: str) -> None:
        if phase != self.current:
            self.current = phase
            sys.stdout.write(f"phase {phase} {time.perf_counter() - self.start:.3f}\n")
            sys.stdout.flush()

    def wrap(self, module: str, name: str, phase: str, resume: bool = False) -> None:
        """Replace ``module.name`` by a wrapper that enters `phase`, then calls it (and with
        `resume`, enters the phase it was called in again when it returns).

        A function the module no longer has is left alone: markers only report.
        """
        mod = importlib.import_module(module)
        original: Callable[..., Any] | None = getattr(mod, name, None)
        if original is None:
            return

        @functools.wraps(original)
        def marked(*args: Any, **kwargs: Any) -> Any:
            caller = self.current
            self.enter(phase)
            result = original(*args, **kwargs)
            if resume:
                self.enter(caller)
            return result

        setattr(mod, name, marked)


def main(argv: list[str]) -> int:
    inputs, published, variant = Path(argv[0]), Path(argv[1]), int(argv[2])
    import frictionless  # noqa: F401 - imported before "ready": publishing validates with it

    from reportdata.publish import DatasetInfo, publish
    from reportdata.schema import TABLES, to_frame
    from reportdata.validate import check_tables

    data = json.loads(inputs.read_text(encoding="utf-8"))
    rows = variant_rows(data["rows"], variant)
    tables = {name: to_frame(name, rows[name]) for name in TABLES}
    info = DatasetInfo(**data["info"])
    report = check_tables(tables)  # as the flow does before it publishes
    if not report.ok:
        sys.stderr.write(f"variant {variant} is invalid: {report.summary()}\n")
        return 1
    marker = PhaseMarker()
    for module, name, phase in PHASES:
        marker.wrap(module, name, phase)
    for module in WRITERS:
        marker.wrap(module, "atomic_write_bytes", WRITE, resume=True)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if not sys.stdin.readline():
        return 1  # the test went away without starting us
    start = marker.start = time.perf_counter()
    marker.enter("prepare")
    result = publish(tables, info, published, report=report)
    elapsed = time.perf_counter() - start
    marker.enter("done")
    sys.stdout.write(f"done {result.version} {result.new} {elapsed:.3f}\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
