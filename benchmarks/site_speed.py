"""Time what a release spends on the catalog and the pages: build_catalog and write_site.

    .venv/bin/python benchmarks/site_speed.py --published /path/to/published [--repeat 5]
    .venv/bin/python benchmarks/site_speed.py --reports 1000   # build a dataset first

The published folder is copied to a temporary folder first (the original is never written),
or built there from ``--reports`` made-up reports (`benchmarks/scale.py`'s, read and
extracted by the library, published three times: then one report changed, then another).

``catalog.json`` is left as a release finds it: current for every version but each dataset's
latest one, whose entry `build_catalog` then makes (hashing and counting its files; with
``rows`` given, as a publisher that knows its row counts would call it, only hashing). The
pages are removed before each `write_site` run so that each run writes them; it is timed with
the dataset's DuckDB file in place and hidden (the charts then come from the JSON tables), and
the two runs' pages are compared. Best of ``--repeat`` runs, in seconds.

With ``--datasets N`` the folder holds N datasets (the first and N-1 copies, their version
files hard-linked), and `write_site` is also timed as a release of one dataset calls it: that
dataset's DuckDB file just replaced (as an append installs it), every page and the pages' memo
as the last release left them; then with the memo gone, so that every page is made.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASET = "county-briefs"


def best_of(repeat: int, run: Callable[[], Any], before: Callable[[], None] | None = None) -> float:
    """The shortest of ``repeat`` timed calls of ``run`` (``before`` runs untimed first)."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


# ---------------------------------------------------------------------------- a dataset


def _rows_of(report: Any) -> dict[str, list[dict]]:
    from reportdata.read import read_bytes
    from reportdata.tables import DocumentInfo, build_rows

    doc_id = f"brief-{report.number:05d}"
    info = DocumentInfo(
        document_id=doc_id, dataset=DATASET, title=report.title, publisher="某县人民政府",
        area="某县", licence="CC0-1.0", origin=f"raw/{doc_id}.txt", raw_sha256="0" * 64,
        published_year=report.year,
    )  # fmt: skip
    return build_rows(info, read_bytes(report.text().encode("utf-8"), "text/plain"))


def dataset_info():
    """The made-up dataset's metadata (also used by warehouse_append.py)."""
    from reportdata.publish import DatasetInfo

    return DatasetInfo(
        name=DATASET,
        title="县区工作报告中的数字 (benchmark)",
        description="Figures from made-up county reports, written by a benchmark.",
        licenses=[
            {"name": "CC0-1.0", "path": "https://creativecommons.org/publicdomain/zero/1.0/"}
        ],
    )


def build_published(folder: Path, reports: int) -> None:
    """Publish ``reports`` made-up reports as version 1.0.0, then two one-report changes."""
    sys.path.insert(0, str(HERE))
    from scale import make_report

    from reportdata.pipeline import frames, merge
    from reportdata.publish import publish

    info = dataset_info()
    made = [make_report(n, seed=7) for n in range(reports)]
    parts = [_rows_of(r) for r in made]
    for step in range(3):
        if step:
            changed = made[(reports // 2 + step) % reports]
            changed.change()
            parts[changed.number] = _rows_of(changed)
        started = time.perf_counter()
        created = f"2025-01-0{step + 1}T00:00:00Z"
        result = publish(frames(merge(parts)), info, folder, created=created)
        print(f"published {result.version} in {time.perf_counter() - started:.1f} s", flush=True)


# ---------------------------------------------------------------------------- timing


def prepare(root: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Write the current catalog.json, then one without each dataset's latest version (the
    state a release leaves before it rebuilds the catalog). Returns the whole catalog and the
    row counts of the latest versions' files."""
    from reportdata.catalog import build_catalog, catalog_bytes, write_catalog

    whole = build_catalog(root)
    write_catalog(root, catalog=whole)
    rows = {
        res["path"]: res["rows"]
        for d in whole["datasets"]
        for v in d["versions"]
        if v["version"] == d["latest"]
        for res in v["resources"]
        if "rows" in res
    }
    older = copy.deepcopy(whole)
    for d in older["datasets"]:
        d["versions"] = [v for v in d["versions"] if v["version"] != d["latest"]]
    (root / "catalog.json").write_bytes(catalog_bytes(older))
    return whole, rows


def measure(root: Path, repeat: int) -> dict[str, Any]:
    from reportdata.catalog import build_catalog, catalog_bytes
    from reportdata.site import write_site

    whole, rows = prepare(root)
    out: dict[str, Any] = {}
    assert build_catalog(root) == whole
    out["build_catalog"] = best_of(repeat, lambda: build_catalog(root))
    if "rows" in inspect.signature(build_catalog).parameters:
        assert build_catalog(root, rows=rows) == whole
        out["build_catalog(rows=...)"] = best_of(repeat, lambda: build_catalog(root, rows=rows))
    (root / "catalog.json").write_bytes(catalog_bytes(whole))

    pages = [root / "index.html", *(root / d["name"] / "index.html" for d in whole["datasets"])]

    def clear() -> None:
        for page in pages:
            page.unlink(missing_ok=True)

    out["write_site"] = best_of(repeat, lambda: write_site(root, whole), clear)
    with_duckdb = [p.read_bytes() for p in pages]
    hidden = []
    for d in whole["datasets"]:
        if d["duckdb"] and (root / d["duckdb"]).is_file():
            (root / d["duckdb"]).rename(root / (d["duckdb"] + ".hidden"))
            hidden.append(d["duckdb"])
    try:
        out["write_site (JSON charts)"] = best_of(repeat, lambda: write_site(root, whole), clear)
    finally:
        for rel in hidden:
            (root / (rel + ".hidden")).rename(root / rel)
    out["pages identical"] = with_duckdb == [p.read_bytes() for p in pages]
    return out


def copies(root: Path, datasets: int) -> None:
    """Make the folder hold ``datasets`` datasets: the one there and copies of it, named
    ``<name>-2`` and on (version files hard-linked: never rewritten; the DuckDB file and the
    changelog copied)."""
    (first,) = [d for d in root.iterdir() if d.is_dir()]
    for n in range(2, datasets + 1):
        name = f"{first.name}-{n}"
        shutil.copytree(first, root / name, copy_function=os.link)
        for rel in (f"{first.name}.duckdb", "CHANGELOG.md", "latest.json"):
            path = root / name / rel
            if path.is_file():
                data = path.read_bytes()
                path.unlink()
                path.write_bytes(data)
        (root / name / f"{first.name}.duckdb").rename(root / name / f"{name}.duckdb")


def measure_release(root: Path, repeat: int) -> dict[str, Any]:
    """write_site as a release of the first dataset calls it, with the others' pages kept
    (see the module's docstring), then with every page made."""
    from reportdata.catalog import build_catalog, write_catalog
    from reportdata.site import MEMO, write_site

    whole = build_catalog(root)
    write_catalog(root, catalog=whole)
    write_site(root, whole)
    first = whole["datasets"][0]
    duckdb_file = root / first["duckdb"]

    def released() -> None:
        copy = duckdb_file.with_name(".copy")
        shutil.copyfile(duckdb_file, copy)
        os.replace(copy, duckdb_file)

    def forgotten() -> None:
        released()
        (root / MEMO).unlink(missing_ok=True)

    datasets = len(whole["datasets"])
    return {
        "datasets": datasets,
        "write_site after one release": best_of(repeat, lambda: write_site(root, whole), released),
        "write_site, every page made": best_of(repeat, lambda: write_site(root, whole), forgotten),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--published", type=Path, help="a published folder (copied first)")
    parser.add_argument("--reports", type=int, default=1000, help="reports to publish otherwise")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each step (best kept)")
    parser.add_argument("--datasets", type=int, default=1, help="datasets in the folder")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    import reportdata

    with tempfile.TemporaryDirectory(prefix="site-speed-") as tmp:
        root = Path(tmp) / "published"
        if args.published:
            shutil.copytree(args.published, root, symlinks=True)
        else:
            build_published(root, args.reports)
        copies(root, args.datasets)
        results = measure(root, args.repeat)
        if args.datasets > 1:
            results |= measure_release(root, args.repeat)
    results["code"] = str(Path(reportdata.__file__).parent)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, value in results.items():
        shown = f"{value:8.3f} s" if isinstance(value, float) else value
        print(f"{name:28} {shown}")


if __name__ == "__main__":
    main()
