"""What bringing the all-versions DuckDB file up to date costs after a one-report release.

    .venv/bin/python benchmarks/warehouse_append.py [--reports 1000] [--repeat 5]
    .venv/bin/python benchmarks/warehouse_append.py --reports 10000 --data /tmp/wh-10k

A dataset of N made-up reports (`benchmarks/scale.py`'s, read and extracted by the library:
about 55 indicators and 8 sections a report) is published with `reportdata.publish.publish`
as version 1.0.0, then one report is changed (one figure corrected) and the next version is
published built on the first (``base``/``replaced``, as a run that re-extracted that report
publishes it). With ``--data DIR`` the dataset is built in DIR once and reused by later runs
(otherwise in a temporary folder, removed at the end). The warehouse of the first version
alone is then built by today's code and kept aside.

Then ``build_warehouse`` of the second version is timed ``--repeat`` times, each time on the
first version's file put back in place and given both versions' JSON files as the bytes a
publisher holds (the append the second release makes), and once from nothing (a rebuild of
both versions, for scale). Each run is broken down by timing, from
outside, the module's steps: the copy of the file, reading descriptors and changes.json,
checking what the file holds, every SQL statement by kind (the INSERTs per table, the
versions/changes rows, commit, CHECKPOINT), the fsyncs and the rename; what no timer covers
is "other". Nested timers are exclusive: a step's time leaves out the steps inside it.
After the runs, the appended file's tables, views and definitions are compared with the
rebuild's (each table both ways with EXCEPT ALL) and the script stops if they differ.
The median of each part over the runs is printed, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASET = "county-briefs"


# ---------------------------------------------------------------------------- the dataset


def build_dataset(published: Path, reports: int) -> tuple[Path, list[str]]:
    """Publish ``reports`` made-up reports, then a version with one of them changed; keep
    the warehouse as it stood after the first at ``<published>/../held-1.duckdb``."""
    sys.path.insert(0, str(HERE))
    from scale import make_report
    from site_speed import _rows_of, dataset_info

    from reportdata.pipeline import frames, merge
    from reportdata.publish import publish, read_base

    info = dataset_info()
    started = time.perf_counter()
    made = [make_report(n, seed=7) for n in range(reports)]
    parts = [_rows_of(r) for r in made]
    print(f"extracted {reports} reports in {time.perf_counter() - started:.1f} s", flush=True)
    started = time.perf_counter()
    first = publish(frames(merge(parts)), info, published, created="2025-01-01T00:00:00Z")
    print(f"published {first.version} in {time.perf_counter() - started:.1f} s", flush=True)
    dataset_dir = published / DATASET
    shutil.copyfile(dataset_dir / f"{DATASET}.duckdb", published.parent / "held-1.duckdb")

    changed = made[reports // 2]
    changed.change()
    rows = _rows_of(changed)
    doc_id = rows["documents"][0]["document_id"]
    started = time.perf_counter()
    base = read_base(published, DATASET, first.version)
    second = publish(
        frames(rows), info, published, created="2025-02-01T00:00:00Z", base=base, replaced={doc_id}
    )
    print(f"published {second.version} in {time.perf_counter() - started:.1f} s", flush=True)
    assert second.new and second.version != first.version
    return dataset_dir, [first.version, second.version]


# ---------------------------------------------------------------------------- timing


class Timer:
    """Exclusive times of named parts: a part's time leaves out the parts inside it."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []  # [start, time of nested parts]

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        frame = [time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            spent = time.perf_counter() - frame[0]
            self.parts[name] += spent - frame[1]
            if self._stack:
                self._stack[-1][1] += spent

    def wrap(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.part(name):
                return func(*args, **kwargs)

        return timed


_INSERT = re.compile(r'\s*INSERT INTO "?([\w]+)"?', re.IGNORECASE)


def sql_label(sql: str) -> str:
    """The part of the breakdown a statement belongs to."""
    text = sql.lstrip()
    upper = text[:40].upper()
    if m := _INSERT.match(text):
        table = m[1].removesuffix("_history")
        return "versions/changes rows" if table in ("versions", "changes") else f"insert {table}"
    if "TEMP TABLE _INCOMING" in text[:60].upper():
        return "read rows (read_json)"
    if upper.startswith("UPDATE") and "_history" in text[:60]:
        return "close gone rows"
    if upper.startswith("CHECKPOINT"):
        return "CHECKPOINT"
    if upper.startswith("UPDATE VERSIONS"):
        return "versions/changes rows"
    if "DUCKDB_" in text.upper() or upper.startswith(("CREATE", "COMMENT")):
        return "check held state"
    if upper.startswith("SELECT VERSION, CREATED"):
        return "check held state"
    return "other SQL"


class TimedConnection:
    """A DuckDB connection whose statements, commit and close are timed."""

    def __init__(self, con: Any, timer: Timer) -> None:
        self._con, self._timer = con, timer

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        with self._timer.part(sql_label(sql)):
            return self._con.execute(sql, *args, **kwargs)

    def commit(self) -> Any:
        with self._timer.part("commit"):
            return self._con.commit()

    def close(self) -> Any:
        with self._timer.part("close"):
            return self._con.close()

    def __enter__(self) -> TimedConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


# The module's functions timed as a whole (when the module has them), exclusive of the SQL
# and other parts inside them.
FUNCTIONS = {
    "_read_versions": "read descriptors",
    "_with_changes": "read changes.json",
    "_held_state": "check held state",
    "_changed_rows": "diff JSON files",
    "_insert_frame": "versions/changes rows",
    "_load_data_table": "load table (Python)",
    "_document_rows": "find the changed documents' rows",
    "_fsync_file": "fsync",
    "fsync_dir": "fsync",
}


@contextmanager
def instrumented(timer: Timer) -> Iterator[None]:
    """Time the warehouse module's steps while the block runs."""
    import duckdb

    from reportdata import warehouse

    saved: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, value: Any) -> None:
        saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    real_connect = duckdb.connect
    try:
        for name, label in FUNCTIONS.items():
            if hasattr(warehouse, name):
                patch(warehouse, name, timer.wrap(label, getattr(warehouse, name)))
        patch(shutil, "copyfile", timer.wrap("copy file", shutil.copyfile))
        patch(os, "replace", timer.wrap("rename", os.replace))
        patch(duckdb, "connect", lambda *a, **k: TimedConnection(real_connect(*a, **k), timer))
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


def run_once(dataset_dir: Path, held: Path | None) -> dict[str, float]:
    """One timed build_warehouse: appended to a copy of `held` with the JSON files a publisher
    holds, or rebuilt when None."""
    from reportdata.schema import TABLES
    from reportdata.warehouse import build_warehouse, warehouse_path

    in_memory = {}
    if held is not None:
        versions = sorted(p.name for p in dataset_dir.iterdir() if re.fullmatch(r"[\d.]+", p.name))
        in_memory = {
            f"{v}/{t}.json": (dataset_dir / v / f"{t}.json").read_bytes()
            for v in versions[-2:]
            for t in TABLES
        }
    target = warehouse_path(dataset_dir, DATASET)
    target.unlink(missing_ok=True)
    if held is not None:
        shutil.copyfile(held, target)
    os.sync()  # the file put back is not dirty in the page cache during the run
    timer = Timer()
    with instrumented(timer):
        started = time.perf_counter()
        build_warehouse(dataset_dir, DATASET, held=in_memory)
        total = time.perf_counter() - started
    parts = dict(timer.parts)
    parts["other"] = total - sum(parts.values())
    parts["total"] = total
    return parts


def hold_first(dataset_dir: Path, first: str, root: Path) -> Path:
    """``<root>/held-1.duckdb``: the warehouse of the first version alone, built by today's
    code (a file kept from an older layout would only be rebuilt)."""
    from reportdata.warehouse import build_warehouse

    alone = root / "first-only" / DATASET
    shutil.rmtree(alone.parent, ignore_errors=True)
    alone.mkdir(parents=True)
    (alone / first).symlink_to(dataset_dir / first, target_is_directory=True)
    held = root / "held-1.duckdb"
    shutil.copyfile(build_warehouse(alone, DATASET), held)
    shutil.rmtree(alone.parent)
    return held


# ---------------------------------------------------------------------------- checking


def same_contents(appended: Path, rebuilt: Path) -> list[str]:
    """What differs between two warehouses: definitions, or rows of a table or view."""
    import duckdb

    from reportdata.warehouse import _catalog

    problems = []
    with (
        duckdb.connect(str(appended), read_only=True) as a,
        duckdb.connect(str(rebuilt), read_only=True) as b,
    ):
        if _catalog(a) != _catalog(b):
            problems.append("definitions")
    with duckdb.connect(":memory:") as con:
        con.execute(f"ATTACH '{appended}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{rebuilt}' AS b (READ_ONLY)")
        names = [
            n
            for (n,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'a' "
                "UNION SELECT view_name FROM duckdb_views() WHERE database_name = 'a' "
                "AND NOT internal ORDER BY 1"
            ).fetchall()
        ]
        for name in names:
            for x, y in (("a", "b"), ("b", "a")):
                sql = f'SELECT count(*) FROM (FROM {x}."{name}" EXCEPT ALL FROM {y}."{name}")'
                if con.execute(sql).fetchone()[0]:
                    problems.append(f"{name} ({x} has rows {y} lacks)")
    return problems


# ---------------------------------------------------------------------------- main

ORDER = [
    "copy file",
    "read descriptors",
    "check held state",
    "read changes.json",
    "load table (Python)",
    "diff JSON files",
    "insert documents",
    "insert sections",
    "insert indicators",
    "versions/changes rows",
    "other SQL",
    "commit",
    "CHECKPOINT",
    "close",
    "fsync",
    "rename",
    "other",
    "total",
]


def show(title: str, runs: list[dict[str, float]]) -> None:
    names = [n for n in ORDER if any(n in r for r in runs)]
    names[-2:-2] = sorted({n for r in runs for n in r} - set(ORDER))
    print(f"\n{title} (median of {len(runs)} run(s), ms; min-max)")
    for name in names:
        values = [r.get(name, 0.0) * 1000 for r in runs]
        median = statistics.median(values)
        print(f"  {name:<24}{median:9.1f}   ({min(values):.1f}-{max(values):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", type=Path, help="build the dataset here once and reuse it")
    args = parser.parse_args()

    import duckdb

    print(
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"{os.cpu_count()} CPU(s), {platform.machine()}"
    )
    with tempfile.TemporaryDirectory(prefix="warehouse-append-") as tmp:
        root = args.data or Path(tmp)
        published = root / "published"
        dataset_dir = published / DATASET
        if not (root / "held-1.duckdb").is_file():
            shutil.rmtree(published, ignore_errors=True)
            build_dataset(published, args.reports)
        versions = sorted(p.name for p in dataset_dir.iterdir() if re.fullmatch(r"[\d.]+", p.name))
        counts = []
        for name in ("documents", "sections", "indicators"):
            data = (dataset_dir / versions[-1] / f"{name}.json").read_bytes()
            size, rows = len(data), data.count(b"\n") - 2
            counts.append(f"{name} {rows:,} rows ({size / 1e6:.1f} MB JSON)")
        held = hold_first(dataset_dir, versions[0], root)
        print(f"versions {versions}; a version holds " + ", ".join(counts))
        print(f"file after the first version: {held.stat().st_size / 1e6:.1f} MB")

        rebuilt = root / "rebuilt.duckdb"
        rebuild = [run_once(dataset_dir, None)]
        shutil.copyfile(dataset_dir / f"{DATASET}.duckdb", rebuilt)
        appends = [run_once(dataset_dir, held) for _ in range(args.repeat)]
        target = dataset_dir / f"{DATASET}.duckdb"
        print(f"file after the append: {target.stat().st_size / 1e6:.1f} MB")
        show("append of the second version", appends)
        show("rebuild of both versions", rebuild)
        problems = same_contents(target, rebuilt)
        if problems:
            sys.exit(f"the appended file differs from the rebuilt one: {', '.join(problems)}")
        print("\nthe appended file holds what the rebuilt one does (definitions and rows)")


if __name__ == "__main__":
    main()
