"""Does publishing a one-report version cost more as a dataset's versions pile up?

    .venv/bin/python benchmarks/history.py [--reports 1000] [--versions 100]

A scheduled dataset gains a version every time one of its reports changes: a year of daily
runs is hundreds of versions. This script publishes ``--reports`` made-up reports
(`benchmarks/scale.py`'s, read and extracted by the library) as 1.0.0, then ``--versions``
versions each with one more report changed (one figure), built on the newest version as a run
that re-extracted that report publishes it (``base``/``replaced``), in this process, with the
Frictionless check in its helper process as a run has it. Each publish is timed, and so are,
from outside, the parts of it that read every version (the warehouse's reading of the version
folders' descriptors and its check of what the file holds, made in the append's thread), the
changelog and the catalog and pages.

It prints, for the first and last tenth of the versions, the median of each part, and the
least-squares slope of each against the number of versions (ms a version); with ``--write``
the table goes to the `# History` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASET = "county-briefs"
MARKER = "# History"

# (label, module, attribute): timed from outside, summed over calls within one publish
PARTS = (
    ("read version descriptors", "reportdata.warehouse", "_read_versions"),
    ("check what the warehouse holds", "reportdata.warehouse", "_held_state"),
    ("append to the warehouse copy (whole)", "reportdata.warehouse", "prepare_append"),
    ("changelog", "reportdata.publish", "_write_changelog"),
    ("catalog and pages", "reportdata.publish", "_write_index"),
)


class Spans:
    """Seconds spent in wrapped functions, by label, from any thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def wrap(self, label: str, module: Any, attr: str) -> None:
        real = getattr(module, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[label] += time.perf_counter() - start

        setattr(module, attr, timed)

    def take(self) -> dict[str, float]:
        with self._lock:
            out, self.seconds = dict(self.seconds), defaultdict(float)
        return out


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def run(reports: int, versions: int, folder: Path) -> list[dict[str, float]]:
    """Publish 1.0.0 and ``versions`` one-report versions; the timings of each of the latter."""
    sys.path.insert(0, str(HERE))
    import importlib

    from scale import make_report
    from site_speed import _rows_of, dataset_info

    from reportdata import package_check
    from reportdata.pipeline import frames, merge
    from reportdata.publish import publish, read_base

    spans = Spans()
    for label, name, attr in PARTS:
        spans.wrap(label, importlib.import_module(name), attr)
    package_check.start()
    info = dataset_info()
    published = folder / "published"
    made = [make_report(n, seed=11) for n in range(reports)]
    started = time.perf_counter()
    first = publish(frames(merge([_rows_of(r) for r in made])), info, published)
    print(f"1.0.0: {reports} reports in {time.perf_counter() - started:.1f} s", flush=True)
    newest = first.version
    out = []
    for i in range(versions):
        report = made[(reports // 2 + i) % reports]
        report.change()
        rows = _rows_of(report)
        spans.take()
        started = time.perf_counter()
        base = read_base(published, DATASET, newest)
        result = publish(
            frames(rows), info, published, base=base, replaced={rows["documents"][0]["document_id"]}
        )
        wall = time.perf_counter() - started
        assert result.new, "a changed report must make a new version"
        newest = result.version
        out.append({"publish": wall, **spans.take()})
        if (i + 1) % 10 == 0 or i + 1 == versions:
            print(f"{i + 2} versions: last publish {wall:.2f} s", flush=True)
    package_check.stop()
    return out


def table(timings: list[dict[str, float]]) -> list[str]:
    """Markdown rows: median of each part over the first and last tenth, and its slope."""
    n = len(timings)
    tenth = max(1, n // 10)
    labels = ["publish", *(label for label, _, _ in PARTS)]
    xs = [float(i + 2) for i in range(n)]  # versions held once this one is published
    lines = [
        f"| part (ms) | versions 2–{tenth + 1} | versions {n - tenth + 2}–{n + 1} | "
        "slope, ms a version |",
        "|---|---:|---:|---:|",
    ]
    for label in labels:
        ys = [t.get(label, 0.0) * 1000 for t in timings]
        early, late = statistics.median(ys[:tenth]), statistics.median(ys[-tenth:])
        name = "**one-report publish (whole)**" if label == "publish" else label
        lines.append(f"| {name} | {early:.0f} | {late:.0f} | {slope(xs, ys):+.2f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--reports", type=int, default=1000)
    ap.add_argument("--versions", type=int, default=100)
    ap.add_argument("--write", action="store_true", help="write docs/benchmarks.md's section")
    ap.add_argument("--note", default="", help="a sentence to add under the table")
    ap.add_argument("--keep", type=Path, help="publish into this (new) folder and keep it")
    args = ap.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True)
        timings = run(args.reports, args.versions, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="history-") as tmp:
            timings = run(args.reports, args.versions, Path(tmp))
    lines = table(timings)
    print("\n".join(lines))
    if args.write:
        sys.path.insert(0, str(HERE))
        from scale import git_commit, write_section

        head = [
            MARKER,
            "",
            f"`benchmarks/history.py --reports {args.reports} --versions {args.versions}`: "
            f"{args.reports:,} made-up reports published as 1.0.0, then {args.versions} "
            "versions each with one more report changed, built on the newest as a run "
            "publishes them (in one process, Frictionless in its helper). Each publish timed "
            "whole and in the parts that could read every version; the median over the first "
            "and the last tenth of the versions, and the least-squares slope against the "
            f"number of versions. {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}, commit {git_commit()}.",
            "",
            *lines,
        ]
        if args.note:
            head += ["", args.note]
        write_section(HERE.parent / "docs" / "benchmarks.md", head, MARKER)


if __name__ == "__main__":
    main()
