"""The dataset warehouse: every published version in one DuckDB file at a stable path."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reportdata.errors import PublishError
from reportdata.publish import DatasetInfo, publish, render_json, table_rows
from reportdata.schema import TABLES, fields, primary_key, to_frame
from reportdata.warehouse import README_QUERIES, build_warehouse, warehouse_path

INFO = DatasetInfo(name="demo", title="Demo county reports", description="Made-up figures.")
TOURISM = (
    "一、旅游\n全年接待游客120万人次，旅游总收入4.7亿元。\n二、投资\n固定资产投资35亿元，增长5%。"
)
CORRECTED = TOURISM.replace("4.7亿元", "4.9亿元")
REVENUE_ID = f"demo-2024-{TOURISM.index('4.7亿元')}"
JOBS = "一、就业\n城镇新增就业4800人，发放创业担保贷款1.2亿元。"
UNITS = {  # unit: (factor, unit_base, family)
    "万人次": (1e4, "人次", "people"),
    "亿元": (1e8, "元", "money"),
    "人": (1, "人", "people"),
    "%": (1, "%", "percent"),
}


def _document(doc_id: str, text: str, year: int | None) -> dict[str, Any]:
    return {
        "document_id": doc_id, "dataset": "demo", "title": "某县政府工作报告", "subtitle": "",
        "publisher": "某县人民政府", "reporter": "", "photographer": "", "area": "某县",
        "report_year": year, "licence": "CC-BY-4.0", "origin": f"raw/{doc_id}.txt",
        "raw_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "format": "text",
        "encoding": "utf-8", "script": "simplified", "text": text,
    }  # fmt: skip


def _sections(doc_id: str, text: str) -> list[dict[str, Any]]:
    """One section a heading line ("一、…"), each running to the next heading."""
    lines = text.split("\n")
    starts = [text.index(line) for line in lines if "、" in line[:2]]
    ends = [*starts[1:], len(text)]
    return [
        {"section_id": f"{doc_id}-s{i}", "document_id": doc_id, "ordinal": i, "kind": "heading",
         "heading": text[start:].split("\n")[0], "plan": False, "char_start": start,
         "char_end": end}
        for i, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]  # fmt: skip


def _indicator(doc_id: str, text: str, quantity: str, subject: str, value: float, unit: str):
    start = text.index(quantity)
    section = sum(1 for s in _sections(doc_id, text) if s["char_start"] <= start) - 1
    factor, unit_base, family = UNITS[unit]
    sentence = next(line for line in text.split("\n") if quantity in line)
    return {
        "indicator_id": f"{doc_id}-{start}", "document_id": doc_id,
        "section_id": f"{doc_id}-s{section}", "subject": subject, "value": value, "unit": unit,
        "value_base": value * factor, "unit_base": unit_base, "unit_family": family,
        "qualifier": "exact", "status": "actual", "measure": "change" if unit == "%" else "level",
        "period": "2024", "quantity_text": quantity, "sentence": sentence, "char_start": start,
        "char_end": start + len(quantity),
    }  # fmt: skip


def rows_v1() -> dict[str, list[dict[str, Any]]]:
    """One report: tourism and investment."""
    doc = "demo-2024"
    return {
        "documents": [_document(doc, TOURISM, 2024)],
        "sections": _sections(doc, TOURISM),
        "indicators": [
            _indicator(doc, TOURISM, "120万人次", "接待游客", 120, "万人次"),
            _indicator(doc, TOURISM, "4.7亿元", "旅游总收入", 4.7, "亿元"),
            _indicator(doc, TOURISM, "35亿元", "固定资产投资", 35, "亿元"),
            _indicator(doc, TOURISM, "5%", "固定资产投资增长", 5, "%"),
        ],
    }


def rows_v2() -> dict[str, list[dict[str, Any]]]:
    """The tourism revenue corrected to 4.9亿元, and a second report (year unknown) added."""
    doc, jobs = "demo-2024", "jobs-2024"
    return {
        "documents": [_document(doc, CORRECTED, 2024), _document(jobs, JOBS, None)],
        "sections": _sections(doc, CORRECTED) + _sections(jobs, JOBS),
        "indicators": [
            _indicator(doc, CORRECTED, "120万人次", "接待游客", 120, "万人次"),
            _indicator(doc, CORRECTED, "4.9亿元", "旅游总收入", 4.9, "亿元"),
            _indicator(doc, CORRECTED, "35亿元", "固定资产投资", 35, "亿元"),
            _indicator(doc, CORRECTED, "5%", "固定资产投资增长", 5, "%"),
            _indicator(jobs, JOBS, "4800人", "新增就业", 4800, "人"),
            _indicator(jobs, JOBS, "1.2亿元", "创业担保贷款", 1.2, "亿元"),
        ],
    }


def _publish(published: Path, rows: dict[str, list[dict[str, Any]]], created: str) -> str:
    tables = {name: to_frame(name, rows[name]) for name in TABLES}
    return publish(tables, INFO, published, created=created).version


def expected_rows(rows: dict[str, list[dict[str, Any]]], name: str) -> list[tuple]:
    """The rows of a table as published (schema order, sorted by key), as tuples."""
    return [tuple(r.values()) for r in table_rows(name, to_frame(name, rows[name]))]


def table_contents(path: Path, table: str, where: str = "") -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(f'SELECT * FROM "{table}" {where} ORDER BY ALL').fetchall()


@pytest.fixture
def published(tmp_path: Path) -> Path:
    return tmp_path / "published"


@pytest.fixture(scope="module")
def published_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The demo dataset published twice, once for the module (publishing takes seconds)."""
    published = tmp_path_factory.mktemp("template") / "published"
    first = _publish(published, rows_v1(), "2025-01-01T00:00:00Z")
    second = _publish(published, rows_v2(), "2025-02-01T00:00:00Z")
    return published / "demo", first, second


@pytest.fixture
def two_versions(published_once: tuple[Path, str, str], tmp_path: Path) -> tuple[Path, str, str]:
    """A fresh copy of the twice-published dataset, without its warehouse: its folder and
    both versions."""
    template, first, second = published_once
    dataset_dir = tmp_path / "published" / "demo"
    shutil.copytree(template, dataset_dir, ignore=shutil.ignore_patterns("demo.duckdb"))
    return dataset_dir, first, second


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(sql).fetchall()


# ---------------------------------------------------------------------------- contents


def _first_cell_elsewhere(path: Path, sql: str):
    """The first cell `sql` answers over the file at `path`, asked from another process (as
    an analyst's connection would be)."""
    script = (
        "import duckdb, json, sys; "
        "con = duckdb.connect(sys.argv[1], read_only=True); "
        f"print(json.dumps(con.sql({sql!r}).fetchall()[0][0]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_every_version_is_there_with_exact_values(two_versions: tuple[Path, str, str]) -> None:
    dataset_dir, first, second = two_versions
    path = build_warehouse(dataset_dir, "demo")
    assert path == dataset_dir / "demo.duckdb" == warehouse_path(dataset_dir, "demo")
    for version, rows in ((first, rows_v1()), (second, rows_v2())):
        for name in TABLES:
            key = ", ".join(f'"{k}"' for k in primary_key(name))
            got = query(
                path, f"SELECT * FROM \"{name}\" WHERE version = '{version}' ORDER BY {key}"
            )
            assert [row[0] for row in got] == [version] * len(rows[name])
            assert [row[1:] for row in got] == expected_rows(rows, name)
    # optional strings stay "" and an unknown year stays null, as in the JSON files
    assert query(path, "SELECT DISTINCT subtitle FROM documents") == [("",)]
    assert query(path, "SELECT report_year FROM documents WHERE document_id = 'jobs-2024'") == [
        (None,)
    ]


def test_tables_are_typed_keyed_and_commented(two_versions: tuple[Path, str, str]) -> None:
    path = build_warehouse(two_versions[0], "demo")
    with duckdb.connect(str(path), read_only=True) as con:
        for name in TABLES:
            columns = con.sql(
                "SELECT column_name, data_type, comment FROM duckdb_columns() "
                "WHERE table_name = ? ORDER BY column_index",
                params=[name],
            ).fetchall()
            assert [c[0] for c in columns] == ["version", *(f["name"] for f in fields(name))]
            assert columns[0][1] == "VARCHAR" and columns[0][2]
            types = {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE"}
            types["boolean"] = "BOOLEAN"
            for field, (_, ctype, comment) in zip(fields(name), columns[1:], strict=True):
                assert ctype == types[field["type"]]
                assert comment == field["description"]
            # stored once a distinct row, keyed by the table's key and its first version
            history = con.sql(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE table_name = ? ORDER BY column_index",
                params=[f"{name}_history"],
            ).fetchall()
            assert history == [
                *((f["name"], types[f["type"]]) for f in fields(name)),
                ("first_seq", "INTEGER"),
                ("last_seq", "INTEGER"),
            ]
            pk = con.sql(
                "SELECT constraint_column_names FROM duckdb_constraints() "
                "WHERE table_name = ? AND constraint_type = 'PRIMARY KEY'",
                params=[f"{name}_history"],
            ).fetchall()
            assert pk == [([*primary_key(name), "first_seq"],)]


def test_latest_views_hold_only_the_latest_version(two_versions: tuple[Path, str, str]) -> None:
    path = build_warehouse(two_versions[0], "demo")
    rows = rows_v2()
    for name in TABLES:
        key = ", ".join(f'"{k}"' for k in primary_key(name))
        assert query(path, f'SELECT * FROM "latest_{name}" ORDER BY {key}') == expected_rows(
            rows, name
        )


def test_each_row_is_stored_once_with_the_versions_holding_it(
    two_versions: tuple[Path, str, str],
) -> None:
    path = build_warehouse(two_versions[0], "demo")
    for name in TABLES:
        old, new = set(expected_rows(rows_v1(), name)), set(expected_rows(rows_v2(), name))
        if name == "indicators":
            assert old & new and old - new and new - old  # kept, changed or gone, added rows
        stored = query(
            path,
            f'SELECT * EXCLUDE (first_seq, last_seq), first_seq, last_seq FROM "{name}_history"',
        )
        assert len(stored) == len(old | new)  # not one copy a version
        spans = {row[:-2]: row[-2:] for row in stored}
        assert all(spans[row] == (1, None) for row in old & new)
        assert all(spans[row] == (1, 1) for row in old - new)
        assert all(spans[row] == (2, None) for row in new - old)


def test_a_row_that_leaves_and_comes_back_is_held_twice(published: Path) -> None:
    versions = [
        _publish(published, rows, created)
        for rows, created in (
            (rows_v1(), "2025-01-01T00:00:00Z"),
            (rows_v2(), "2025-02-01T00:00:00Z"),
            (rows_v1(), "2025-03-01T00:00:00Z"),
        )
    ]
    path = build_warehouse(published / "demo", "demo")
    rebuilt_rows = query(path, "SELECT * FROM indicators_history ORDER BY ALL")
    spans = query(
        path,
        f"SELECT value, first_seq, last_seq FROM indicators_history "
        f"WHERE indicator_id = '{REVENUE_ID}' ORDER BY first_seq",
    )
    # 4.7亿元, corrected to 4.9 in the second version, back to 4.7 in the third
    assert spans == [(4.7, 1, 1), (4.9, 2, 2), (4.7, 3, None)]
    held = query(
        path,
        f"SELECT version FROM indicators WHERE indicator_id = '{REVENUE_ID}' AND value = 4.7 "
        "ORDER BY 1",
    )
    assert held == [(versions[0],), (versions[2],)]
    for version, rows in zip(versions, (rows_v1(), rows_v2(), rows_v1()), strict=True):
        for name in TABLES:
            got = query(
                path,
                f'SELECT * EXCLUDE (version) FROM "{name}" '
                f"WHERE version = '{version}' ORDER BY ALL",
            )
            assert got == sorted(expected_rows(rows, name))
    # the file each publish appended to holds what this rebuild does
    assert rebuilt_rows == query(
        published / "demo" / "demo.duckdb", "SELECT * FROM indicators_history ORDER BY ALL"
    )


def _changes_json(version_dir: Path) -> dict[str, Any] | None:
    path = version_dir / "changes.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def test_versions_table(two_versions: tuple[Path, str, str]) -> None:
    dataset_dir, first, second = two_versions
    path = build_warehouse(dataset_dir, "demo")
    got = query(path, "SELECT * FROM versions ORDER BY major, minor, patch")
    parts = [tuple(int(p) for p in v.split(".")) for v in (first, second)]
    bump = (_changes_json(dataset_dir / second) or {}).get("bump", "minor")
    assert got == [
        (first, 1, "2025-01-01T00:00:00Z", "initial", None, False, *parts[0]),
        (second, 2, "2025-02-01T00:00:00Z", bump, first, True, *parts[1]),
    ]


def test_versions_without_changes_json_are_told_from_their_numbers(published: Path) -> None:
    for version, created in (("1.0.0", "2025-01-01"), ("1.0.1", "2025-02-01"), ("2.0.0", None)):
        folder = published / "demo" / version
        folder.mkdir(parents=True)
        package: dict[str, Any] = {"name": "demo", "version": version, "resources": []}
        if created:
            package["created"] = created
        (folder / "datapackage.json").write_text(json.dumps(package))
    path = build_warehouse(published / "demo", "demo")
    assert query(path, "SELECT * FROM versions ORDER BY major, minor, patch") == [
        ("1.0.0", 1, "2025-01-01", "initial", None, False, 1, 0, 0),
        ("1.0.1", 2, "2025-02-01", "patch", "1.0.0", False, 1, 0, 1),
        ("2.0.0", 3, None, "major", "1.0.1", True, 2, 0, 0),
    ]
    assert query(path, "SELECT count(*) FROM indicators") == [(0,)]


def test_changes_table_counts_what_changes_json_lists(two_versions: tuple[Path, str, str]) -> None:
    dataset_dir, first, second = two_versions
    path = build_warehouse(dataset_dir, "demo")
    expected = {}
    for version in (first, second):
        for name, entry in (
            (_changes_json(dataset_dir / version) or {}).get("tables") or {}
        ).items():
            for kind in ("added", "removed"):
                if entry[kind]:
                    expected[(version, name, kind)] = len(entry[kind])
            fields_changed = sum(len(item["fields"]) for item in entry["changed"])
            if fields_changed:
                expected[(version, name, "changed")] = fields_changed
    got = query(path, "SELECT version, resource, change, count(*) FROM changes GROUP BY ALL")
    assert {row[:3]: row[3] for row in got} == expected


def test_latest_json_picks_the_latest_and_incomplete_folders_are_ignored(
    two_versions: tuple[Path, str, str],
) -> None:
    dataset_dir, first, second = two_versions
    (dataset_dir / "9.9.9").mkdir()  # no datapackage.json: not a version
    (dataset_dir / ".tmp-9.9.8-abcd").mkdir()
    (dataset_dir / ".tmp-9.9.8-abcd" / "datapackage.json").write_text("{}")
    (dataset_dir / "latest.json").write_text(json.dumps({"version": first, "path": first}))
    path = build_warehouse(dataset_dir, "demo")
    assert query(path, "SELECT version, is_latest FROM versions ORDER BY ALL") == [
        (first, True),
        (second, False),
    ]
    assert query(path, "SELECT count(*) FROM latest_indicators") == [
        (len(rows_v1()["indicators"]),)
    ]


def test_changes_table_from_changes_json(two_versions: tuple[Path, str, str]) -> None:
    dataset_dir, first, second = two_versions
    added_row = table_rows("indicators", to_frame("indicators", rows_v2()["indicators"][-1:]))[0]
    changes = {
        "dataset": "demo", "version": second, "previous": first, "bump": "patch",
        "created": "2025-02-01T00:00:00Z", "reasons": ["corrected"],
        "sources": {"added": ["jobs-2024"], "removed": [], "changed": ["demo-2024"]},
        "schema": [], "metadata": [],
        "tables": {"indicators": {
            "key": ["indicator_id"], "counts": {"added": 1, "removed": 0, "changed": 1},
            "added": [added_row], "removed": [],
            "changed": [{"key": {"indicator_id": REVENUE_ID}, "document_id": "demo-2024",
                         "fields": {"value": {"old": 4.7, "new": 4.9},
                                    "quantity_text": {"old": "4.7亿元", "new": "4.9亿元"}}}],
        }},
    }  # fmt: skip
    (dataset_dir / second / "changes.json").write_text(json.dumps(changes, ensure_ascii=False))
    path = build_warehouse(dataset_dir, "demo")
    key = json.dumps({"indicator_id": added_row["indicator_id"]}, ensure_ascii=False)
    changed = json.dumps({"indicator_id": REVENUE_ID})
    assert query(path, f"SELECT * FROM changes WHERE version = '{second}' ORDER BY ALL") == [
        (second, first, "indicators", "added", key, "jobs-2024", None, None, None),
        (second, first, "indicators", "changed", changed,
         "demo-2024", "quantity_text", "4.7亿元", "4.9亿元"),
        (second, first, "indicators", "changed", changed,
         "demo-2024", "value", "4.7", "4.9"),
    ]  # fmt: skip


def test_an_older_schema_without_a_required_column_still_loads(
    two_versions: tuple[Path, str, str],
) -> None:
    dataset_dir, first, second = two_versions
    package_path = dataset_dir / first / "datapackage.json"
    package = json.loads(package_path.read_text())
    resource = next(r for r in package["resources"] if r["name"] == "indicators")
    resource["schema"]["fields"] = [
        f for f in resource["schema"]["fields"] if f["name"] != "measure"
    ]
    package_path.write_text(json.dumps(package, ensure_ascii=False))
    data_path = dataset_dir / first / "indicators.json"
    old_rows = json.loads(data_path.read_text())
    data_path.write_text(
        json.dumps([{k: v for k, v in r.items() if k != "measure"} for r in old_rows])
    )
    path = build_warehouse(dataset_dir, "demo")
    assert query(
        path, "SELECT version, count(measure) FROM indicators GROUP BY ALL ORDER BY 1"
    ) == [
        (first, 0),
        (second, len(rows_v2()["indicators"])),
    ]


def test_no_version_is_a_publish_error(published: Path) -> None:
    (published / "demo").mkdir(parents=True)
    with pytest.raises(PublishError, match="no published version"):
        build_warehouse(published / "demo", "demo")


# ---------------------------------------------------------------------------- README queries


def _money_rows(rows: dict[str, list[dict[str, Any]]]) -> list[tuple]:
    headings = {s["section_id"]: s["heading"] for s in rows["sections"]}
    money = [i for i in rows["indicators"] if i["unit_family"] == "money"]
    money.sort(key=lambda i: (-i["value_base"], i["indicator_id"]))
    return [
        (
            i["subject"],
            i["quantity_text"],
            i["value_base"],
            i["unit_base"],
            headings[i["section_id"]],
        )
        for i in money
    ]


def _diff_rows(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[tuple]:
    before = {r["indicator_id"]: r for r in old}
    after = {r["indicator_id"]: r for r in new}
    out = []
    for ind in sorted(before.keys() | after.keys()):
        b, a = before.get(ind), after.get(ind)
        if b == a:
            continue
        change = "added" if b is None else "removed" if a is None else "changed"
        either = a or b
        out.append(
            (change, ind, either["subject"], b and b["quantity_text"], a and a["quantity_text"],
             b and b["value_base"], a and a["value_base"], either["unit_base"])
        )  # fmt: skip
    return sorted(out, key=lambda r: (r[0], r[1]))


def _section_rows(rows: dict[str, list[dict[str, Any]]]) -> list[tuple]:
    out = []
    for sec in sorted(rows["sections"], key=lambda s: (s["document_id"], s["ordinal"])):
        inds = [i for i in rows["indicators"] if i["section_id"] == sec["section_id"]]
        money = [i for i in inds if i["unit_family"] == "money"]
        summed = [
            i["value_base"]
            for i in money
            if i["unit_base"] == "元" and i["measure"] == "level" and i["status"] == "actual"
        ]
        total = sum(summed) if summed else None
        out.append(
            (sec["document_id"], sec["ordinal"], sec["heading"], len(inds), len(money), total)
        )
    return out


def test_readme_queries_answer_their_questions(two_versions: tuple[Path, str, str]) -> None:
    path = build_warehouse(two_versions[0], "demo")
    assert len(README_QUERIES) == 3
    money, diff, sections = (query(path, sql) for _, sql in README_QUERIES)
    v1, v2 = rows_v1(), rows_v2()
    assert money == _money_rows(v2)
    assert money[0][:2] == ("固定资产投资", "35亿元")
    assert diff == _diff_rows(v1["indicators"], v2["indicators"])
    assert {row[0] for row in diff} == {"added", "changed"}
    assert ("changed", REVENUE_ID) in {row[:2] for row in diff}
    assert [r[:5] for r in sections] == [r[:5] for r in _section_rows(v2)]
    assert [r[5] for r in sections] == pytest.approx([r[5] for r in _section_rows(v2)])


# ---------------------------------------------------------------------------- atomicity


def test_a_read_only_connection_survives_a_rebuild(published: Path) -> None:
    first = _publish(published, rows_v1(), "2025-01-01T00:00:00Z")
    path = build_warehouse(published / "demo", "demo")
    sql = "SELECT list(version ORDER BY version) FROM versions"
    reader = duckdb.connect(str(path), read_only=True)
    try:
        assert reader.sql(sql).fetchall() == [([first],)]
        second = _publish(published, rows_v2(), "2025-02-01T00:00:00Z")
        assert build_warehouse(published / "demo", "demo") == path
        assert reader.sql(sql).fetchall() == [([first],)]
        count = reader.sql("SELECT count(*) FROM latest_indicators").fetchall()
        assert count == [(len(rows_v1()["indicators"]),)]
        # a new connection, from another process as an analyst's would be, sees the new file
        assert _first_cell_elsewhere(path, sql) == [first, second]
    finally:
        reader.close()


def test_crash_leftovers_are_removed(two_versions: tuple[Path, str, str]) -> None:
    dataset_dir = two_versions[0]
    stale = [
        dataset_dir / ".demo.duckdb.tmp-0badf00d",
        dataset_dir / ".demo.duckdb.tmp-0badf00d.wal",
    ]
    for leftover in stale:
        leftover.write_bytes(b"half a database")
    build_warehouse(dataset_dir, "demo")
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in dataset_dir.glob(".demo.duckdb.tmp-*")) == []


def test_a_failed_build_leaves_the_old_file_and_no_temp(
    two_versions: tuple[Path, str, str],
) -> None:
    dataset_dir, _, second = two_versions
    aside = dataset_dir.parent / "aside"
    (dataset_dir / second).rename(aside)
    path = build_warehouse(dataset_dir, "demo")  # holds the first version only
    before = path.read_bytes()
    aside.rename(dataset_dir / second)
    (dataset_dir / second / "indicators.json").write_text("[{not json")
    with pytest.raises(PublishError, match="warehouse"):
        build_warehouse(dataset_dir, "demo")  # appending the second fails
    assert path.read_bytes() == before
    assert list(dataset_dir.glob(".demo.duckdb.tmp-*")) == []
    path.unlink()
    with pytest.raises(PublishError, match="warehouse"):
        build_warehouse(dataset_dir, "demo")  # so does a rebuild
    assert not path.exists() and list(dataset_dir.glob(".demo.duckdb.tmp-*")) == []


def test_building_twice_gives_the_same_contents(two_versions: tuple[Path, str, str]) -> None:
    dataset_dir = two_versions[0]
    names = [*TABLES, "versions", "changes", *(f"latest_{t}" for t in TABLES)]
    path = build_warehouse(dataset_dir, "demo")
    first = {name: table_contents(path, name) for name in names}
    build_warehouse(dataset_dir, "demo")
    second = {name: table_contents(path, name) for name in names}
    assert first == second
    assert all(first[name] for name in names if name != "changes")


def test_thousands_of_rows_load_whole(published: Path) -> None:
    """A version of thousands of rows loads completely (its speed is a benchmark's business)."""
    rows = rows_v1()
    base = rows["indicators"][0]
    many = [dict(base, indicator_id=f"demo-2024-x{i:05d}") for i in range(5000)]
    tables = {name: to_frame(name, rows[name]) for name in ("documents", "sections")}
    tables["indicators"] = to_frame("indicators", many)
    publish(tables, INFO, published, created="2025-01-01T00:00:00Z")
    path = build_warehouse(published / "demo", "demo")
    assert query(path, "SELECT count(*) FROM indicators") == [(5000,)]
    ids = query(path, "SELECT min(indicator_id), max(indicator_id) FROM latest_indicators")
    assert ids == [("demo-2024-x00000", "demo-2024-x04999")]


def test_the_readme_shows_the_queries_this_module_runs() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    for question, sql in README_QUERIES:
        assert question in readme and sql in readme


# ---------------------------------------------------------------------------- appending

FIXED_JOBS = JOBS.replace("4800人", "5200人")  # same length: a corrected figure, a patch


def rows_v3() -> dict[str, list[dict[str, Any]]]:
    """The jobs figure corrected from 4800 to 5200 people."""
    rows = rows_v2()
    jobs = "jobs-2024"
    rows["documents"][1] = _document(jobs, FIXED_JOBS, None)
    rows["sections"] = [s for s in rows["sections"] if s["document_id"] != jobs]
    rows["sections"] += _sections(jobs, FIXED_JOBS)
    rows["indicators"][4:] = [
        _indicator(jobs, FIXED_JOBS, "5200人", "新增就业", 5200, "人"),
        _indicator(jobs, FIXED_JOBS, "1.2亿元", "创业担保贷款", 1.2, "亿元"),
    ]
    return rows


@pytest.fixture(scope="module")
def three_published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo dataset published three times (each publish brings the warehouse up to date),
    with copies of its warehouse as it stood after the first and the second."""
    root = tmp_path_factory.mktemp("three")
    published = root / "published"
    versions = []
    for i, (rows, created) in enumerate(
        ((rows_v1(), "2025-01-01T00:00:00Z"), (rows_v2(), "2025-02-01T00:00:00Z"),
         (rows_v3(), "2025-03-01T00:00:00Z"))
    ):  # fmt: skip
        versions.append(_publish(published, rows, created))
        shutil.copyfile(published / "demo" / "demo.duckdb", root / f"after-{i + 1}.duckdb")
    assert versions == ["1.0.0", "1.1.0", "1.1.1"]
    return {"dir": published / "demo", "versions": versions, "after": root / "after-{}.duckdb"}


def dataset_copy(three: dict[str, Any], tmp_path: Path, held: int | None) -> Path:
    """A copy of the thrice-published dataset whose warehouse held its first `held` versions
    (none when `held` is None)."""
    dataset_dir = tmp_path / "copy" / "published" / "demo"
    shutil.copytree(three["dir"], dataset_dir, ignore=shutil.ignore_patterns("demo.duckdb"))
    if held is not None:
        shutil.copyfile(str(three["after"]).format(held), dataset_dir / "demo.duckdb")
    return dataset_dir


def rebuilt(dataset_dir: Path, tmp_path: Path, latest: str | None = None) -> Path:
    """The warehouse a rebuild from scratch makes of the version folders in `dataset_dir`."""
    fresh = tmp_path / "rebuilt" / "published" / "demo"
    shutil.copytree(dataset_dir, fresh, ignore=shutil.ignore_patterns("*.duckdb*"))
    return build_warehouse(fresh, "demo", latest=latest)


MINE = "database_name = current_database() AND schema_name = 'main'"


def everything(path: Path) -> dict[str, list[tuple]]:
    """The definitions of a warehouse and the rows of each of its tables and views, ordered."""
    with duckdb.connect(str(path), read_only=True) as con:
        out = {
            "columns": con.sql(
                "SELECT table_name, column_index, column_name, data_type, is_nullable, comment "
                f"FROM duckdb_columns() WHERE {MINE} ORDER BY ALL"
            ).fetchall(),
            "constraints": con.sql(
                "SELECT table_name, constraint_type, constraint_column_names "
                f"FROM duckdb_constraints() WHERE {MINE} ORDER BY ALL"
            ).fetchall(),
            "views": con.sql(
                "SELECT view_name, sql, comment FROM duckdb_views() "
                f"WHERE {MINE} AND NOT internal ORDER BY 1"
            ).fetchall(),
        }
        names = [t for t, *_ in out["columns"]]
        for name in sorted(set(names)):
            out[name] = con.sql(f'SELECT * FROM "{name}" ORDER BY ALL').fetchall()
        return out


def held_versions(path: Path) -> list[tuple[str, bool]]:
    return query(path, "SELECT version, is_latest FROM versions ORDER BY major, minor, patch")


@pytest.fixture
def rebuilds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each full rebuild build_warehouse makes (the latest version it was given)."""
    from reportdata import warehouse

    calls: list[str] = []
    real = warehouse._rebuild

    def counting(target: Path, versions: list[Any], latest: str) -> None:
        calls.append(latest)
        real(target, versions, latest)

    monkeypatch.setattr(warehouse, "_rebuild", counting)
    return calls


def break_json_files(dataset_dir: Path, versions: list[str]) -> None:
    """Make every JSON file of these versions but datapackage.json unreadable as JSON."""
    for version in versions:
        for path in (dataset_dir / version).glob("*.json"):
            if path.name != "datapackage.json":
                path.write_text("[{not json")


def test_publishing_appends_what_a_rebuild_would_hold(
    three_published: dict[str, Any], tmp_path: Path
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=3)
    path = dataset_dir / "demo.duckdb"
    assert held_versions(path) == [("1.0.0", False), ("1.1.0", False), ("1.1.1", True)]
    got, want = everything(path), everything(rebuilt(dataset_dir, tmp_path))
    assert got == want
    assert {"columns", "constraints", "views", *TABLES, "versions", "changes"} <= got.keys()
    assert all(got[f"latest_{t}"] for t in TABLES) and got["changes"]
    for name in TABLES:
        assert query(path, f'SELECT DISTINCT version FROM "{name}" ORDER BY 1') == [
            ("1.0.0",),
            ("1.1.0",),
            ("1.1.1",),
        ]
    assert ("5200人",) in query(path, "SELECT quantity_text FROM latest_indicators")


def test_an_append_reads_only_the_new_version(
    three_published: dict[str, Any], tmp_path: Path, rebuilds: list[str]
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    want = everything(rebuilt(dataset_dir, tmp_path / "ref"))
    rebuilds.clear()
    break_json_files(dataset_dir, ["1.0.0", "1.1.0"])
    path = build_warehouse(dataset_dir, "demo")
    assert rebuilds == []
    assert everything(path) == want
    # a rebuild would have had to read the broken files
    path.unlink()
    with pytest.raises(PublishError, match=r"Cannot read .*1\.0\.0"):
        build_warehouse(dataset_dir, "demo")


def test_moving_latest_back_only_marks_it(
    three_published: dict[str, Any], tmp_path: Path, rebuilds: list[str]
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=3)
    want = everything(rebuilt(dataset_dir, tmp_path / "ref", latest="1.0.0"))
    rebuilds.clear()
    break_json_files(dataset_dir, ["1.0.0", "1.1.0", "1.1.1"])
    path = build_warehouse(dataset_dir, "demo", latest="1.0.0")
    assert rebuilds == []
    assert everything(path) == want
    assert held_versions(path) == [("1.0.0", True), ("1.1.0", False), ("1.1.1", False)]
    assert len(want["latest_indicators"]) == len(rows_v1()["indicators"])


def test_a_current_warehouse_is_left_as_it_is(
    three_published: dict[str, Any], tmp_path: Path, rebuilds: list[str]
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=3)
    path = dataset_dir / "demo.duckdb"
    before = (path.stat().st_ino, path.read_bytes())
    build_warehouse(dataset_dir, "demo", latest="1.1.1")
    assert (path.stat().st_ino, path.read_bytes()) == before
    assert rebuilds == [] and list(dataset_dir.glob(".demo.duckdb.tmp-*")) == []


def _garbage(dataset_dir: Path) -> None:
    (dataset_dir / "demo.duckdb").write_bytes(b"not a database at all" * 100)


def _changes_table_dropped(dataset_dir: Path) -> None:
    with duckdb.connect(str(dataset_dir / "demo.duckdb")) as con:
        con.execute("DROP TABLE changes")


def _version_removed(dataset_dir: Path) -> None:
    shutil.rmtree(dataset_dir / "1.1.0")


def _newest_removed(dataset_dir: Path) -> None:
    shutil.rmtree(dataset_dir / "1.1.1")


def _older_version_added(dataset_dir: Path) -> None:
    """The warehouse was built while 1.1.0 was away; now 1.1.0 is back, older than 1.1.1."""
    aside = dataset_dir.parent / "aside"
    (dataset_dir / "1.1.0").rename(aside)
    build_warehouse(dataset_dir, "demo")
    aside.rename(dataset_dir / "1.1.0")


def _schema_loosened(dataset_dir: Path) -> None:
    """The new version no longer requires `measure`: the column may now be null."""
    package_path = dataset_dir / "1.1.1" / "datapackage.json"
    package = json.loads(package_path.read_text())
    resource = next(r for r in package["resources"] if r["name"] == "indicators")
    measure = next(f for f in resource["schema"]["fields"] if f["name"] == "measure")
    measure.get("constraints", {}).pop("required")
    package_path.write_text(json.dumps(package, ensure_ascii=False))


def _version_republished(dataset_dir: Path) -> None:
    """1.1.0 was removed and published again: its folder is not what the warehouse holds."""
    package_path = dataset_dir / "1.1.0" / "datapackage.json"
    package = json.loads(package_path.read_text())
    package["created"] = "2025-02-15T00:00:00Z"
    package_path.write_text(json.dumps(package, ensure_ascii=False))


def _stale_wal(dataset_dir: Path) -> None:
    """A write-ahead log of the old file, which a copy would leave behind."""
    (dataset_dir / "demo.duckdb.wal").write_bytes(b"not a log of the new file" * 100)


@pytest.mark.parametrize(
    ("held", "change", "expected"),
    [
        (2, _garbage, ["1.0.0", "1.1.0", "1.1.1"]),
        (2, _changes_table_dropped, ["1.0.0", "1.1.0", "1.1.1"]),
        (3, _version_removed, ["1.0.0", "1.1.1"]),
        (3, _newest_removed, ["1.0.0", "1.1.0"]),
        (None, _older_version_added, ["1.0.0", "1.1.0", "1.1.1"]),
        (2, _schema_loosened, ["1.0.0", "1.1.0", "1.1.1"]),
        (2, _version_republished, ["1.0.0", "1.1.0", "1.1.1"]),
        (2, _stale_wal, ["1.0.0", "1.1.0", "1.1.1"]),
    ],
)
def test_a_warehouse_that_cannot_be_appended_to_is_rebuilt(
    three_published: dict[str, Any],
    tmp_path: Path,
    rebuilds: list[str],
    held: int | None,
    change: Any,
    expected: list[str],
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=held)
    change(dataset_dir)
    want = everything(rebuilt(dataset_dir, tmp_path / "ref"))
    rebuilds.clear()
    path = build_warehouse(dataset_dir, "demo")
    assert rebuilds == [expected[-1]]
    assert not (dataset_dir / "demo.duckdb.wal").exists()
    got = everything(path)
    assert got == want
    assert [v for v, _ in held_versions(path)] == expected
    assert [row[0] for row in got["versions"]] == expected


def test_a_loosened_schema_makes_the_column_nullable(
    three_published: dict[str, Any], tmp_path: Path
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    sql = (
        "SELECT is_nullable FROM duckdb_columns() "
        "WHERE table_name = 'indicators_history' AND column_name = 'measure'"
    )
    assert query(dataset_dir / "demo.duckdb", sql) == [(False,)]
    _schema_loosened(dataset_dir)
    assert query(build_warehouse(dataset_dir, "demo"), sql) == [(True,)]


def test_a_failed_append_leaves_the_old_file_and_no_temp(
    three_published: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reportdata import warehouse

    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    path = dataset_dir / "demo.duckdb"
    before = path.read_bytes()

    def fail(*args: Any) -> None:
        raise RuntimeError("the machine stopped mid-append")

    monkeypatch.setattr(warehouse, "_append", fail)
    with pytest.raises(RuntimeError, match="mid-append"):
        build_warehouse(dataset_dir, "demo")
    assert path.read_bytes() == before
    assert list(dataset_dir.glob(".demo.duckdb.tmp-*")) == []


def test_a_crash_mid_append_leaves_the_old_file_and_the_next_build_cleans_up(
    three_published: dict[str, Any], tmp_path: Path
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    path = dataset_dir / "demo.duckdb"
    before = path.read_bytes()
    script = (
        "import os, sys\n"
        "from reportdata import warehouse\n"
        "def crash(con, *args):\n"
        '    con.execute("DELETE FROM versions")\n'  # half-done work that must not show
        "    os._exit(7)\n"
        "warehouse._append = crash\n"
        "warehouse.build_warehouse(sys.argv[1], 'demo')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(dataset_dir)], check=False)
    assert done.returncode == 7
    assert path.read_bytes() == before
    assert list(dataset_dir.glob(".demo.duckdb.tmp-*")) != []  # what the crash left
    want = everything(rebuilt(dataset_dir, tmp_path / "ref"))
    build_warehouse(dataset_dir, "demo")
    assert list(dataset_dir.glob(".demo.duckdb.tmp-*")) == []
    assert everything(path) == want


def test_a_reader_keeps_the_old_file_while_versions_are_appended(
    three_published: dict[str, Any], tmp_path: Path
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    path = dataset_dir / "demo.duckdb"
    reader = duckdb.connect(str(path), read_only=True)
    sql = "SELECT list(version ORDER BY version) FROM versions"
    try:
        assert reader.sql(sql).fetchall() == [(["1.0.0", "1.1.0"],)]
        build_warehouse(dataset_dir, "demo")
        # a second build while the reader holds the old file must not see that file as current
        build_warehouse(dataset_dir, "demo")
        assert reader.sql(sql).fetchall() == [(["1.0.0", "1.1.0"],)]
        count = reader.sql("SELECT count(*) FROM latest_indicators").fetchall()
        assert count == [(len(rows_v2()["indicators"]),)]
        assert _first_cell_elsewhere(path, sql) == ["1.0.0", "1.1.0", "1.1.1"]
    finally:
        reader.close()


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Records, for each table a build appends, whether only some documents' rows were read
    (True) or every row (False)."""
    from reportdata import warehouse

    calls: list[tuple[str, bool]] = []
    real = warehouse._document_rows

    def recording(con: Any, table: str, *args: Any) -> bytes | None:
        part = real(con, table, *args)
        calls.append((table, part is not None))
        return part

    monkeypatch.setattr(warehouse, "_document_rows", recording)
    return calls


def histories(path: Path) -> dict[str, list[tuple]]:
    return {name: table_contents(path, f"{name}_history") for name in TABLES}


def without_changes_json(dataset_dir: Path, tmp_path: Path) -> Path:
    """A copy of the version folders without their changes.json: every row is compared."""
    copy = tmp_path / "plain" / "demo"
    shutil.copytree(dataset_dir, copy, ignore=shutil.ignore_patterns("demo.duckdb*"))
    for changes in copy.glob("*/changes.json"):
        changes.unlink()
    return copy


def test_an_append_reads_only_the_documents_changes_json_names(
    three_published: dict[str, Any], tmp_path: Path, compared: list[tuple[str, bool]]
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    path = build_warehouse(dataset_dir, "demo")
    assert compared == [(name, True) for name in TABLES]
    reference = build_warehouse(without_changes_json(dataset_dir, tmp_path), "demo")
    assert histories(path) == histories(reference)
    jobs = query(path, "SELECT first_seq, last_seq FROM indicators_history WHERE value = 4800")
    assert jobs == [(2, 2)]  # corrected to 5200 in the third version


def _other_row_edited(dataset_dir: Path) -> None:
    """A row of a document changes.json does not name differs from the previous version's."""
    path = dataset_dir / "1.1.1" / "indicators.json"
    path.write_bytes(path.read_bytes().replace("固定资产投资".encode(), "固定资产投入".encode()))


def _other_row_dropped(dataset_dir: Path) -> None:
    """A row of a document changes.json does not name is missing from the new version."""
    path = dataset_dir / "1.1.1" / "indicators.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    path.write_bytes(render_json([r for r in rows if r["subject"] != "接待游客"]))


def _made_against_another_version(dataset_dir: Path) -> None:
    path = dataset_dir / "1.1.1" / "changes.json"
    changes = json.loads(path.read_text(encoding="utf-8"))
    changes["previous"] = "1.0.0"
    path.write_text(json.dumps(changes, ensure_ascii=False), encoding="utf-8")


def _not_one_row_a_line(dataset_dir: Path) -> None:
    path = dataset_dir / "1.1.1" / "indicators.json"
    path.write_text(json.dumps(json.loads(path.read_text(encoding="utf-8")), ensure_ascii=False))


@pytest.mark.parametrize(
    "change",
    [_other_row_edited, _other_row_dropped, _made_against_another_version, _not_one_row_a_line],
)
def test_an_append_compares_every_row_when_the_rest_is_not_shown_the_same(
    three_published: dict[str, Any],
    tmp_path: Path,
    compared: list[tuple[str, bool]],
    change: Any,
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    change(dataset_dir)
    path = build_warehouse(dataset_dir, "demo")
    assert ("indicators", True) not in compared
    reference = build_warehouse(without_changes_json(dataset_dir, tmp_path), "demo")
    assert histories(path) == histories(reference)
    latest = query(path, "SELECT * FROM latest_indicators ORDER BY ALL")
    written = json.loads((dataset_dir / "1.1.1" / "indicators.json").read_text("utf-8"))
    assert latest == sorted(tuple(r.values()) for r in written)


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 3)), max_size=8),
    edits=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 3)), max_size=3),
    touched=st.sets(st.sampled_from("abcd")),
)
def test_the_other_rows_are_the_same_bytes_exactly_when_they_are_the_same_rows(
    before: list[tuple[str, int]], edits: list[tuple[int, int]], touched: set[str]
) -> None:
    from reportdata.warehouse import _others, _row_spans, _same_bytes

    after = list(before)
    for at, value in edits:  # change, or drop (value 0), rows of any document
        if at < len(after):
            after[at : at + 1] = [] if value == 0 else [(after[at][0], value + 10)]

    def render(rows: list[tuple[str, int]]) -> bytes:
        return render_json([{"document_id": d, "value": v} for d, v in rows])

    old, new = render(before), render(after)
    old_spans, new_spans = _row_spans(old, touched), _row_spans(new, touched)
    assert old_spans is not None and new_spans is not None
    same = _same_bytes(_others(new, new_spans), _others(old, old_spans))
    assert same == (
        [r for r in before if r[0] not in touched] == [r for r in after if r[0] not in touched]
    )


def test_an_append_takes_the_files_a_publisher_holds(
    three_published: dict[str, Any], tmp_path: Path, compared: list[tuple[str, bool]]
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    want = histories(build_warehouse(without_changes_json(dataset_dir, tmp_path), "demo"))
    held = {}
    for version in ("1.1.0", "1.1.1"):
        path = dataset_dir / version / "indicators.json"
        held[f"{version}/indicators.json"] = path.read_bytes()
        path.write_text("[{not json")  # what the files say no longer matters
    path = build_warehouse(dataset_dir, "demo", held=held)
    assert ("indicators", True) in compared
    assert histories(path) == want


def _changes_edited(dataset_dir: Path, edit: Any) -> None:
    path = dataset_dir / "1.1.1" / "changes.json"
    changes = json.loads(path.read_text(encoding="utf-8"))
    edit(changes["tables"]["indicators"])
    path.write_text(json.dumps(changes, ensure_ascii=False), encoding="utf-8")


def test_a_malformed_changes_json_is_compared_in_full_or_refused_in_a_sentence(
    three_published: dict[str, Any], tmp_path: Path, compared: list[tuple[str, bool]]
) -> None:
    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    _changes_edited(dataset_dir, lambda entry: entry.__setitem__("counts", [1]))
    path = build_warehouse(dataset_dir, "demo")
    assert "indicators" not in dict(compared)  # its list of changes was not trusted
    assert histories(path) == histories(
        build_warehouse(without_changes_json(dataset_dir, tmp_path), "demo")
    )
    dataset_dir = dataset_copy(three_published, tmp_path / "again", held=2)
    _changes_edited(dataset_dir, lambda entry: entry.__setitem__("key", 5))
    with pytest.raises(PublishError, match=r"changes\.json of version 1\.1\.1 is malformed"):
        build_warehouse(dataset_dir, "demo")


# ---------------------------------------------------------------------------- prepared appends


@pytest.fixture
def appends(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Records what a publisher asks of the warehouse: each prepared append (whether its
    version's folder was in place yet, and what it returned) and each `build_warehouse`."""
    from reportdata import warehouse

    calls: dict[str, list[Any]] = {"prepared": [], "built": []}
    real_prepare, real_build = warehouse.prepare_append, warehouse.build_warehouse

    def prepare(dataset_dir: Path, dataset: str, folder: Path, **kwargs: Any):
        version = json.loads((folder / "datapackage.json").read_text())["version"]
        in_place = (Path(dataset_dir) / version).exists()
        result = real_prepare(dataset_dir, dataset, folder, **kwargs)
        calls["prepared"].append((version, in_place, result))
        return result

    def build(dataset_dir: Path, dataset: str, **kwargs: Any) -> Path:
        calls["built"].append(kwargs.get("latest"))
        return real_build(dataset_dir, dataset, **kwargs)

    monkeypatch.setattr(warehouse, "prepare_append", prepare)
    monkeypatch.setattr(warehouse, "build_warehouse", build)
    return calls


def _after_prepare(monkeypatch: pytest.MonkeyPatch, then: Any) -> None:
    """Make `then()` happen right after each prepared append, before it can be installed."""
    from reportdata import warehouse

    prepare = warehouse.prepare_append

    def followed(*args: Any, **kwargs: Any):
        result = prepare(*args, **kwargs)
        then()
        return result

    monkeypatch.setattr(warehouse, "prepare_append", followed)


def test_a_publisher_appends_its_version_before_the_rename_and_installs_it_after(
    published: Path, tmp_path: Path, appends: dict[str, list[Any]]
) -> None:
    first = _publish(published, rows_v1(), "2025-01-01T00:00:00Z")
    assert appends["prepared"] == [] and appends["built"] == [first]  # nothing to append to
    (published / "demo" / ".demo.duckdb.tmp-0").write_bytes(b"what a killed append left")
    second = _publish(published, rows_v2(), "2025-02-01T00:00:00Z")
    ((version, in_place, prepared),) = appends["prepared"]
    assert (version, in_place) == (second, False)  # made while the folder was temporary
    assert prepared is not None and not prepared.tmp.exists()  # installed: renamed into place
    assert appends["built"] == [first]  # no build after the rename
    path = published / "demo" / "demo.duckdb"
    assert held_versions(path) == [(first, False), (second, True)]
    assert everything(path) == everything(rebuilt(published / "demo", tmp_path))
    assert list((published / "demo").glob(".demo.duckdb.tmp-*")) == []


def test_a_version_that_fails_its_check_leaves_the_warehouse_and_no_append(
    published: Path, appends: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reportdata import publish as publishing
    from reportdata.errors import ValidationFailed
    from reportdata.validate import ValidationReport

    _publish(published, rows_v1(), "2025-01-01T00:00:00Z")
    path = published / "demo" / "demo.duckdb"
    before = path.read_bytes()
    error = {"table": "indicators", "check": "type", "key": None, "column": None, "message": "x"}
    failing = ValidationReport(ok=False, errors=[error])
    monkeypatch.setattr(publishing, "_validate_whole", lambda folder: failing)
    with pytest.raises(ValidationFailed):
        _publish(published, rows_v2(), "2025-02-01T00:00:00Z")
    ((_, _, prepared),) = appends["prepared"]
    assert prepared is not None  # it was made, then dropped with the version
    assert path.read_bytes() == before
    assert list((published / "demo").glob(".demo.duckdb.tmp-*")) == []


def test_an_append_started_before_the_table_files_are_written_waits_for_them(
    published: Path, tmp_path: Path
) -> None:
    """A publisher starts the append once the folder holds datapackage.json and changes.json;
    a table file the append reads from the folder (not held in memory) is waited for."""
    import threading

    from reportdata.warehouse import prepare_append

    _publish(published, rows_v1(), "2025-01-01T00:00:00Z")
    elsewhere = tmp_path / "elsewhere" / "published"
    shutil.copytree(published, elsewhere)
    second = _publish(elsewhere, rows_v2(), "2025-02-01T00:00:00Z")
    made = elsewhere / "demo" / second
    dataset_dir = published / "demo"
    folder = dataset_dir / f".tmp-{second}-0000abcd"
    folder.mkdir()
    for name in ("datapackage.json", "changes.json"):
        shutil.copy2(made / name, folder / name)
    written = threading.Event()
    result: list[Any] = []
    append = threading.Thread(
        target=lambda: result.append(
            prepare_append(dataset_dir, "demo", folder, held=None, written=written.wait)
        )
    )
    append.start()
    append.join(timeout=1.0)
    assert append.is_alive()  # waiting for the tables
    for table in made.iterdir():
        if not (folder / table.name).exists():
            shutil.copy2(table, folder / table.name)
    written.set()
    append.join(timeout=60)
    (prepared,) = result
    assert prepared is not None
    os.rename(folder, dataset_dir / second)
    assert prepared.install(["1.0.0", second])
    path = warehouse_path(dataset_dir, "demo")
    assert everything(path) == everything(rebuilt(dataset_dir, tmp_path, latest=second))


def test_a_warehouse_changed_since_its_append_was_prepared_is_built_again(
    published: Path, tmp_path: Path, appends: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _publish(published, rows_v1(), "2025-01-01T00:00:00Z")

    def touched() -> None:  # another writer
        path = published / "demo" / "demo.duckdb"
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

    _after_prepare(monkeypatch, touched)
    second = _publish(published, rows_v2(), "2025-02-01T00:00:00Z")
    assert appends["built"] == [first, second]  # the prepared copy was not put in place
    path = published / "demo" / "demo.duckdb"
    assert everything(path) == everything(rebuilt(published / "demo", tmp_path))
    assert list((published / "demo").glob(".demo.duckdb.tmp-*")) == []


def test_no_append_is_prepared_on_a_warehouse_missing_a_version(
    three_published: dict[str, Any], tmp_path: Path, appends: dict[str, list[Any]]
) -> None:
    """A warehouse behind by a version gets its build after the rename (both versions)."""
    dataset_dir = dataset_copy(three_published, tmp_path, held=2)  # lacks 1.1.1
    published = dataset_dir.parent
    rows = rows_v3()
    rows["indicators"] = rows["indicators"][:-1]
    version = publish(
        {name: to_frame(name, rows[name]) for name in TABLES}, INFO, published,
        created="2025-04-01T00:00:00Z",
    ).version  # fmt: skip
    assert [(v, p) for v, _, p in appends["prepared"]] == [(version, None)]
    assert appends["built"] == [version]
    path = dataset_dir / "demo.duckdb"
    assert [v for v, _ in held_versions(path)] == ["1.0.0", "1.1.0", "1.1.1", version]
    assert everything(path) == everything(rebuilt(dataset_dir, tmp_path))


def test_an_append_that_fails_while_prepared_is_made_after_the_rename(
    published: Path, tmp_path: Path, appends: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prepared append is only a head start: whatever breaks it, the version publishes."""
    from reportdata import warehouse

    first = _publish(published, rows_v1(), "2025-01-01T00:00:00Z")

    def broken(*args: Any) -> None:
        raise ValueError("pandas could not make a frame")

    monkeypatch.setattr(warehouse, "_prepare", broken)
    second = _publish(published, rows_v2(), "2025-02-01T00:00:00Z")
    assert [p for _, _, p in appends["prepared"]] == [None]
    assert appends["built"] == [first, second]
    path = published / "demo" / "demo.duckdb"
    assert everything(path) == everything(rebuilt(published / "demo", tmp_path))
    assert list((published / "demo").glob(".demo.duckdb.tmp-*")) == []


def test_a_release_that_stops_before_its_append_is_installed_drops_it(
    published: Path, appends: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version is in place but its release unfinished: the next run finishes it."""
    from reportdata import publish as publishing

    first = _publish(published, rows_v1(), "2025-01-01T00:00:00Z")
    path = published / "demo" / "demo.duckdb"
    before = path.read_bytes()

    def disk_full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(publishing, "_write_changelog", disk_full)
        with pytest.raises(PublishError, match="No space left"):
            _publish(published, rows_v2(), "2025-02-01T00:00:00Z")
    ((second, _, prepared),) = appends["prepared"]
    assert prepared is not None and not prepared.tmp.exists()
    assert path.read_bytes() == before and (published / "demo" / second).is_dir()
    assert publishing.complete_release(published, "demo", INFO.title) == second
    assert held_versions(path) == [(first, False), (second, True)]


def test_a_version_that_appears_before_the_append_is_installed_gets_a_build(
    published: Path, tmp_path: Path, appends: dict[str, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _publish(published, rows_v1(), "2025-01-01T00:00:00Z")
    restored = published / "demo" / "0.9.0"
    _after_prepare(monkeypatch, lambda: shutil.copytree(published / "demo" / first, restored))
    second = _publish(published, rows_v2(), "2025-02-01T00:00:00Z")
    assert appends["built"] == [first, second]
    path = published / "demo" / "demo.duckdb"
    assert [v for v, _ in held_versions(path)] == ["0.9.0", first, second]
    assert everything(path) == everything(rebuilt(published / "demo", tmp_path))


@pytest.mark.parametrize("count", [3, 1001])
def test_few_rows_go_in_as_parameters_and_many_through_a_dataframe_alike(count, monkeypatch):
    """The versions and changes tables get the same values either way: parameters (up to
    FEW_ROWS: no pandas for a small version) or a DataFrame (more rows)."""
    from reportdata import warehouse

    rows = [
        ("1.0.1", None if i % 3 else "1.0.0", "indicators", "changed", f'{{"id": "k{i}"}}',
         None if i % 5 == 0 else f"doc-{i}", "value", "12.5" if i % 2 else None, "中文,\"引号\"")
        for i in range(count)
    ]  # fmt: skip
    names = [c[0] for c in warehouse._CHANGES_COLUMNS]
    tables = []
    for few in (count, count - 1):  # as parameters; through a DataFrame
        monkeypatch.setattr(warehouse, "FEW_ROWS", few)
        with duckdb.connect() as con:
            warehouse._create_side_table(con, "changes", warehouse._CHANGES_COLUMNS, [], "c")
            warehouse._insert_rows(con, "changes", names, rows)
            tables.append(con.sql("SELECT * FROM changes ORDER BY key").fetchall())
    assert tables[0] == tables[1]
    assert sorted(tables[0], key=lambda r: r[4]) == sorted(rows, key=lambda r: r[4])


# ---------------------------------------------------------------------------- the build's memo


@pytest.fixture
def descriptors_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders whose datapackage.json the warehouse parses, in order."""
    from reportdata import warehouse

    calls: list[str] = []
    real = warehouse._read_json

    def counting(path: Path) -> Any:
        if path.name == "datapackage.json":
            calls.append(path.parent.name)
        return real(path)

    monkeypatch.setattr(warehouse, "_read_json", counting)
    return calls


@pytest.fixture
def catalogs_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each time the catalog a rebuild would create is made in an in-memory database."""
    from reportdata import warehouse

    calls: list[int] = []
    real = warehouse._made_catalog

    def counting(sql: list[str]) -> str:
        calls.append(len(sql))
        return real(sql)

    monkeypatch.setattr(warehouse, "_made_catalog", counting)
    return calls


def test_a_publish_reads_no_descriptor_it_read_before(
    three_published: dict[str, Any],
    tmp_path: Path,
    descriptors_read: list[str],
    catalogs_made: list[int],
    rebuilds: list[str],
) -> None:
    from reportdata.warehouse_memo import memo_path

    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    memo_path(dataset_dir / "demo.duckdb").unlink()  # start without a memo
    old = ["1.0.0", "1.1.0", "1.1.1"]
    path = build_warehouse(dataset_dir, "demo")
    assert sorted(descriptors_read) == old and len(catalogs_made) == 1
    descriptors_read.clear()
    catalogs_made.clear()

    fourth = _publish(dataset_dir.parent, rows_v1(), "2025-04-01T00:00:00Z")
    assert fourth == "2.0.0" and rebuilds == []
    assert not set(descriptors_read) & set(old)  # only the new version's own descriptor
    assert catalogs_made == []  # the same tables as before: the catalog's digest remembered
    assert everything(path) == everything(rebuilt(dataset_dir, tmp_path / "ref"))

    # a descriptor written again (same bytes, new stamp) is read again
    package = dataset_dir / "1.1.0" / "datapackage.json"
    package.write_bytes(package.read_bytes())
    descriptors_read.clear()
    build_warehouse(dataset_dir, "demo")
    assert descriptors_read == ["1.1.0"]
    memo = json.loads(memo_path(dataset_dir / "demo.duckdb").read_text())
    assert sorted(memo["versions"]) == [*old, "2.0.0"]
    assert len(memo["schemas"]) == len(TABLES)  # shared by every version: stored once


def test_a_broken_or_lying_memo_costs_a_rebuild_not_a_wrong_file(
    three_published: dict[str, Any], tmp_path: Path, rebuilds: list[str]
) -> None:
    from reportdata.warehouse_memo import FORMAT, memo_path

    dataset_dir = dataset_copy(three_published, tmp_path, held=2)
    want = everything(rebuilt(dataset_dir, tmp_path / "ref"))
    memo = memo_path(dataset_dir / "demo.duckdb")

    memo.write_text("{not json")
    rebuilds.clear()
    path = build_warehouse(dataset_dir, "demo")
    assert rebuilds == [] and everything(path) == want  # appended as without a memo
    data = json.loads(memo.read_text())
    assert data["format"] == FORMAT and sorted(data["versions"]) == ["1.0.0", "1.1.0", "1.1.1"]

    # a memo whose catalog digests are wrong: the file no longer looks appendable
    shutil.copyfile(str(three_published["after"]).format(2), path)
    data["catalogs"] = {key: "0" * 64 for key in data["catalogs"]}
    memo.write_text(json.dumps(data))
    build_warehouse(dataset_dir, "demo")
    assert rebuilds == ["1.1.1"] and everything(path) == want
