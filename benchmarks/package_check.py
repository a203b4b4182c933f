"""What Frictionless's check of a small package costs a fresh process, here and in a helper.

    .venv/bin/python benchmarks/package_check.py [--repeat 7] [--lead 0.7]

A one-report run checks a package of that report's rows (`reportdata.publish._check_new_rows`):
a few dozen rows, where what costs is Frictionless's first use in the process (its imports,
plugins and metadata profiles). The script writes such a package (the three tables' schemas,
one made-up report's rows, from `benchmarks/scale.py`'s templates) and times, each in a fresh
``python`` process, ``--repeat`` times:

- ``here``: `reportdata.validate.validate_package` in the process (no helper);
- ``helper``: `reportdata.package_check.start` first, ``--lead`` seconds of other work (a
  sleep: the run extracting and validating meanwhile), then the same call, answered by the
  helper;
- ``helper, no lead``: the call right after `start` (the helper's whole start-up waited for);
- ``second``: a second check in the same process, here (Frictionless warm).

Each child process reports the wall time of the call alone. Medians and ranges are printed
in milliseconds, with the machine's load average.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
from reportdata import package_check
from reportdata.validate import validate_package
mode, path, lead = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
if mode.startswith("helper"):
    package_check.start()
    time.sleep(lead if mode == "helper" else 0.0)
if mode == "second":
    validate_package(path)
start = time.perf_counter()
report = validate_package(path)
took = time.perf_counter() - start
assert report.ok, report.summary()
package_check.stop()
print(json.dumps(took))
"""


def _package(folder: Path) -> Path:
    """A package of one made-up report's rows, written as a publisher writes a version."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scale import make_report  # the scale benchmark's own report templates
    from site_speed import _rows_of

    from reportdata.pipeline import frames
    from reportdata.publish import _by_key, _json_bytes, _table_resource, render_csv, table_rows
    from reportdata.schema import TABLES

    tables = frames(_rows_of(make_report(0, seed=7)))
    resources = []
    for name in TABLES:
        data = render_csv(name, table_rows(name, _by_key(name, tables[name])))
        (folder / f"{name}.csv").write_bytes(data)
        resources.append(_table_resource(name, data))
    path = folder / "datapackage.json"
    path.write_bytes(_json_bytes({"name": "one-report", "resources": resources}, indent=2))
    return path


def _time(mode: str, path: Path, lead: float) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(lead)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def read_csv(path: Path) -> list[list[str]]:
    """The data rows of a CSV file (cells may hold line breaks)."""
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))[1:]


def _csvs(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.glob("*.csv"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--lead", type=float, default=0.7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = _package(Path(tmp))
        rows = {n: len(read_csv(f)) for n, f in _csvs(path.parent).items()}
        print(f"package of one report: {rows} rows; load average {os.getloadavg()[0]:.2f}")
        for mode in ("here", "helper", "helper, no lead", "second"):
            key = "helper-now" if mode == "helper, no lead" else mode
            times = [_time(key, path, args.lead) * 1000 for _ in range(args.repeat)]
            print(
                f"{mode:16} median {statistics.median(times):6.0f} ms "
                f"(range {min(times):.0f}–{max(times):.0f}, {args.repeat} processes)"
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
