"""Changes between dataset versions: the Data Package Version bump, changes.json and the texts."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reportdata.changes import (
    Changes,
    PackageState,
    TableRows,
    compare,
    diff_versions,
    next_version,
    render_changelog,
    render_diff,
)
from reportdata.errors import PublishError
from reportdata.publish import DatasetInfo, publish, table_rows
from reportdata.schema import TABLES, load_schema, to_frame

METADATA = {"name": "demo", "title": "Demo county reports", "version": "1.0.0",
            "created": "2025-01-02T03:04:05Z", "reportdata:fingerprint": "sha256:aa"}  # fmt: skip
# Made-up report texts: each figure is (quantity as written, subject, value, unit, unit family).
REPORTS: dict[str, tuple[str, list[tuple[str, str, float, str, str]]]] = {
    "demo-2024": (
        "一、旅游\n全年接待游客120万人次，旅游总收入4.7亿元。",
        [("120万人次", "接待游客", 120, "万人次", "people"),
         ("4.7亿元", "旅游总收入", 4.7, "亿元", "money")],
    ),
    "jobs-2024": ("二、就业\n城镇新增就业4800人。", [("4800人", "新增就业", 4800, "人", "people")]),
}  # fmt: skip
FACTORS = {"万人次": 1e4, "亿元": 1e8, "人": 1}


def _rows(doc_id: str, text: str, figures: list[tuple[str, str, float, str, str]]) -> TableRows:
    """The document, section and indicator rows of one made-up report."""
    document = {
        "document_id": doc_id, "dataset": "demo", "title": "某县政府工作报告", "subtitle": "",
        "publisher": "某县人民政府", "reporter": "", "photographer": "", "area": "某县",
        "report_year": 2024, "licence": "CC-BY-4.0", "origin": f"raw/{doc_id}.txt",
        "raw_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "format": "text",
        "encoding": "utf-8", "script": "simplified", "text": text,
    }  # fmt: skip
    section = {
        "section_id": f"{doc_id}-s0", "document_id": doc_id, "ordinal": 0, "kind": "heading",
        "heading": text.split("\n")[0], "plan": False, "char_start": 0, "char_end": len(text),
    }  # fmt: skip
    indicators = []
    for quantity, subject, value, unit, family in figures:
        start = text.index(quantity)
        indicators.append({
            "indicator_id": f"{doc_id}-{start}", "document_id": doc_id,
            "section_id": f"{doc_id}-s0", "subject": subject, "value": value, "unit": unit,
            "value_base": value * FACTORS[unit], "unit_base": unit.lstrip("万亿"),
            "unit_family": family, "qualifier": "exact", "status": "actual", "measure": "level",
            "period": "2024", "quantity_text": quantity, "sentence": text.split("\n")[1],
            "char_start": start, "char_end": start + len(quantity),
        })  # fmt: skip
    return {"documents": [document], "sections": [section], "indicators": indicators}


def tables_of(*doc_ids: str) -> TableRows:
    """JSON-ready rows (as publish writes them) of the given made-up reports."""
    raw: TableRows = {name: [] for name in TABLES}
    for doc_id in doc_ids:
        for name, rows in _rows(doc_id, *REPORTS[doc_id]).items():
            raw[name] += rows
    return {name: table_rows(name, to_frame(name, raw[name])) for name in TABLES}


def state(
    *doc_ids: str, metadata: dict | None = None, rows: TableRows | None = None
) -> PackageState:
    """A PackageState of the real schemas holding the given reports."""
    schemas = {name: load_schema(name) for name in TABLES}
    return PackageState(dict(metadata or METADATA), schemas, rows or tables_of(*doc_ids))


def with_schema(base: PackageState, table: str, edit: Callable[[dict], Any]) -> PackageState:
    """`base` with the schema of `table` edited in place by `edit` (rows untouched)."""
    schemas = copy.deepcopy(base.schemas)
    edit(schemas[table])
    return PackageState(base.metadata, schemas, base.rows)


def field_of(schema: dict, name: str) -> dict:
    return next(f for f in schema["fields"] if f["name"] == name)


def as_json(changes: Changes, version: str = "1.1.0", previous: str | None = "1.0.0") -> dict:
    return changes.to_json(
        dataset="demo", version=version, previous=previous, created="2025-02-03T04:05:06Z"
    )


# ---------------------------------------------------------------------------- no change


def test_identical_versions_have_no_changes() -> None:
    assert compare(state("demo-2024"), state("demo-2024")) is None


def test_version_created_and_private_keys_are_not_changes() -> None:
    newer = {**METADATA, "version": "1.0.1", "created": "2030-01-01T00:00:00Z",
             "reportdata:fingerprint": "sha256:bb"}  # fmt: skip
    assert compare(state("demo-2024"), state("demo-2024", metadata=newer)) is None


# ---------------------------------------------------------------------------- rows


def test_a_new_document_is_minor_and_names_its_source() -> None:
    changes = compare(state("demo-2024"), state("demo-2024", "jobs-2024"))
    assert changes is not None and changes.bump == "minor"
    assert changes.sources == {"added": ["jobs-2024"], "removed": [], "changed": []}
    counts = {name: t["counts"] for name, t in changes.tables.items()}
    assert counts["indicators"] == {"added": 1, "removed": 0, "changed": 0}
    assert counts["documents"] == {"added": 1, "removed": 0, "changed": 0}
    assert [r["indicator_id"] for r in changes.tables["indicators"]["added"]] == ["jobs-2024-11"]
    assert changes.reasons == ["new source jobs-2024: 1 document, 1 section, 1 indicator added"]
    log = render_changelog("Demo", [as_json(changes)])
    assert "- Source `jobs-2024` added: 1 document, 1 section, 1 indicator." in log


def test_a_corrected_value_is_patch_with_old_and_new_values() -> None:
    rows = tables_of("demo-2024")
    rows["indicators"][0].update(value=121, value_base=1_210_000)
    changes = compare(state("demo-2024"), state(rows=rows))
    assert changes is not None and changes.bump == "patch"
    assert changes.sources == {"added": [], "removed": [], "changed": ["demo-2024"]}
    (row,) = changes.tables["indicators"]["changed"]
    assert row["key"] == {"indicator_id": "demo-2024-11"}
    assert row["document_id"] == "demo-2024"
    assert row["fields"] == {
        "value": {"old": 120, "new": 121},
        "value_base": {"old": 1_200_000, "new": 1_210_000},
    }
    log = render_changelog("Demo", [as_json(changes, "1.0.1")])
    assert "- Source `demo-2024`: 1 indicator changed (value, value_base)." in log
    diff = render_diff(as_json(changes, "1.0.1"))
    assert "demo 1.0.0 → 1.0.1: patch" in diff
    assert "value: 120 → 121" in diff and "value_base: 1200000 → 1210000" in diff


def test_a_row_removed_from_a_source_that_stays_is_patch() -> None:
    rows = tables_of("demo-2024")
    rows["indicators"].pop()
    changes = compare(state("demo-2024"), state(rows=rows))
    assert changes is not None and changes.bump == "patch"
    assert changes.tables["indicators"]["counts"] == {"added": 0, "removed": 1, "changed": 0}
    assert changes.sources["changed"] == ["demo-2024"] and changes.sources["removed"] == []


def test_rows_added_to_a_source_that_stays_are_minor() -> None:
    rows = tables_of("demo-2024")
    extra = dict(rows["indicators"][0], indicator_id="demo-2024-99")
    rows["indicators"].append(extra)
    changes = compare(state("demo-2024"), state(rows=rows))
    assert changes is not None and changes.bump == "minor"
    assert changes.sources == {"added": [], "removed": [], "changed": ["demo-2024"]}


def test_a_removed_source_is_major() -> None:
    changes = compare(state("demo-2024", "jobs-2024"), state("demo-2024"))
    assert changes is not None and changes.bump == "major"
    assert changes.sources == {"added": [], "removed": ["jobs-2024"], "changed": []}
    assert changes.tables["sections"]["counts"]["removed"] == 1
    log = render_changelog("Demo", [as_json(changes, "2.0.0")])
    assert "- Source `jobs-2024` removed: 1 document, 1 section, 1 indicator." in log


def test_the_highest_bump_wins() -> None:
    rows = tables_of("demo-2024", "jobs-2024")
    rows["indicators"][0]["subject"] = "全年接待游客"  # patch, with a new source (minor)
    changes = compare(state("demo-2024"), state(rows=rows))
    assert changes is not None and changes.bump == "minor"
    assert changes.sources == {"added": ["jobs-2024"], "removed": [], "changed": ["demo-2024"]}
    titled = state(rows=rows, metadata={**METADATA, "title": "Other"})  # and a field removed
    dropped = with_schema(titled, "indicators", lambda s: s["fields"].pop())
    changes = compare(state("demo-2024"), dropped)
    assert changes is not None and changes.bump == "major"


# ---------------------------------------------------------------------------- schema


def _remove(name: str) -> Callable[[dict], None]:
    return lambda s: s["fields"].remove(field_of(s, name))


def _constraint(name: str, key: str, value: Any) -> Callable[[dict], None]:
    def edit(schema: dict) -> None:
        constraints = field_of(schema, name).setdefault("constraints", {})
        if value is None:
            constraints.pop(key)
        else:
            constraints[key] = value

    return edit


def _reorder(schema: dict) -> None:
    schema["fields"][0], schema["fields"][1] = schema["fields"][1], schema["fields"][0]


@pytest.mark.parametrize(
    ("edit", "bump", "change"),
    [
        (_remove("unit"), "major", "removed"),
        (lambda s: field_of(s, "char_start").update(type="number"), "major", "retyped"),
        (lambda s: field_of(s, "unit").update(name="unit_text"), "major", "renamed"),
        (lambda s: s["fields"].append({"name": "note", "type": "string"}), "major", "added"),
        (_reorder, "major", "reordered"),
        (_constraint("unit", "required", True), "major", "tightened"),
        (_constraint("subject", "required", None), "minor", "loosened"),
        (_constraint("qualifier", "enum", ["exact", "over"]), "major", "tightened"),
        (_constraint("qualifier", "enum", ["exact", "over", "under", "approx", "range"]),
         "minor", "loosened"),
        (_constraint("char_start", "minimum", 1), "major", "tightened"),
        (_constraint("char_start", "minimum", -5), "minor", "loosened"),
        (_constraint("char_start", "maximum", 10**6), "major", "tightened"),
        (_constraint("unit", "pattern", "[^0-9]*"), "major", "tightened"),
        (_constraint("period", "pattern", "[0-9]{4}"), "major", "tightened"),
        (_constraint("period", "pattern", None), "minor", "loosened"),
        (_constraint("subject", "unique", True), "major", "tightened"),
        (lambda s: s.update(primaryKey=["document_id", "char_start"]), "major",
         "primaryKey changed"),
        (lambda s: s["foreignKeys"].pop(), "minor", "loosened"),
        (lambda s: field_of(s, "unit").update(description="单位"), "patch", "redescribed"),
        (lambda s: s.update(description="Figures."), "patch", "redescribed"),
    ],
)  # fmt: skip
def test_schema_changes_bump_by_the_data_package_version_rules(
    edit: Callable[[dict], Any], bump: str, change: str
) -> None:
    old = state("demo-2024")
    changes = compare(old, with_schema(old, "indicators", edit))
    assert changes is not None
    assert changes.bump == bump
    assert change in [e["change"] for e in changes.schema]
    assert {e["resource"] for e in changes.schema} == {"indicators"}
    assert not any(t["counts"]["changed"] for t in changes.tables.values())


def test_a_retyped_field_records_old_and_new_types() -> None:
    old = state("demo-2024")
    new = with_schema(old, "indicators", lambda s: field_of(s, "unit").update(type="integer"))
    changes = compare(old, new)
    assert changes is not None
    assert changes.schema == [{"resource": "indicators", "field": "unit", "change": "retyped",
                               "old": "string", "new": "integer"}]  # fmt: skip
    log = render_changelog("Demo", [as_json(changes, "2.0.0")])
    assert '- Schema: `indicators.unit` retyped (`"string"` → `"integer"`).' in log


def test_a_removed_field_is_not_reported_as_changed_rows() -> None:
    old = state("demo-2024")
    rows = {n: [dict(r) for r in rs] for n, rs in old.rows.items()}
    for row in rows["indicators"]:
        del row["unit"]
    new = with_schema(PackageState(old.metadata, old.schemas, rows), "indicators", _remove("unit"))
    changes = compare(old, new)
    assert changes is not None and changes.bump == "major"
    assert changes.tables["indicators"]["counts"] == {"added": 0, "removed": 0, "changed": 0}


def test_resources_added_and_removed() -> None:
    old = state("demo-2024")
    without = PackageState(
        old.metadata,
        {n: s for n, s in old.schemas.items() if n != "sections"},
        {n: r for n, r in old.rows.items() if n != "sections"},
    )
    added = compare(without, old)
    assert added is not None and added.bump == "minor"
    assert [e["change"] for e in added.schema] == ["resource added"]
    assert added.tables["sections"]["counts"]["added"] == 1
    removed = compare(old, without)
    assert removed is not None and removed.bump == "major"
    assert [e["change"] for e in removed.schema] == ["resource removed"]


# ---------------------------------------------------------------------------- metadata


def test_a_metadata_change_is_patch() -> None:
    new_meta = {**METADATA, "title": "Demo county reports, corrected", "version": "1.0.1"}
    changes = compare(state("demo-2024"), state("demo-2024", metadata=new_meta))
    assert changes is not None and changes.bump == "patch"
    assert changes.metadata == [
        {"property": "title", "old": "Demo county reports", "new": "Demo county reports, corrected"}
    ]
    assert changes.sources == {"added": [], "removed": [], "changed": []}
    assert changes.reasons == ["metadata title changed"]


# ---------------------------------------------------------------------------- first version


def test_the_first_version_adds_every_row() -> None:
    changes = compare(None, state("demo-2024", "jobs-2024"))
    assert changes is not None and changes.bump == "initial"
    assert changes.sources["added"] == ["demo-2024", "jobs-2024"]
    assert changes.tables["indicators"]["counts"] == {"added": 3, "removed": 0, "changed": 0}
    doc = as_json(changes, "1.0.0", None)
    assert list(doc) == ["dataset", "version", "previous", "bump", "created", "reasons",
                         "sources", "schema", "metadata", "tables"]  # fmt: skip
    assert doc["previous"] is None and doc["bump"] == "initial"
    assert doc["tables"]["indicators"]["key"] == ["indicator_id"]
    assert json.loads(json.dumps(doc)) == doc


# ---------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("previous", "bump", "expected"),
    [(None, "initial", "1.0.0"), (None, "minor", "1.0.0"), ("1.0.0", "patch", "1.0.1"),
     ("1.2.3", "minor", "1.3.0"), ("1.2.3", "major", "2.0.0"), ("9.9.9", "patch", "9.9.10"),
     ("2.10.0", "minor", "2.11.0")],
)  # fmt: skip
def test_next_version(previous: str | None, bump: str, expected: str) -> None:
    assert next_version(previous, bump) == expected


@pytest.mark.parametrize(("previous", "bump"), [("1.0", "patch"), ("1.0.0", "huge"),
                                                ("1.0.0", "initial")])  # fmt: skip
def test_next_version_rejects_bad_input(previous: str, bump: str) -> None:
    with pytest.raises(ValueError):
        next_version(previous, bump)


# ---------------------------------------------------------------------------- texts


def test_changelog_lists_versions_newest_first_with_date_and_bump() -> None:
    first = as_json(compare(None, state("demo-2024")), "1.0.0", None)
    first["created"] = "2025-01-02T03:04:05Z"
    second = as_json(compare(state("demo-2024"), state("demo-2024", "jobs-2024")))
    entries = [first, second]
    log = render_changelog("Demo county reports", entries)
    assert log.startswith("# Changelog: Demo county reports\n")
    newest, oldest = log.index("## 1.1.0 — 2025-02-03 (minor)"), log.index("## 1.0.0 — 2025-01-02")
    assert newest < oldest
    assert "- Source `demo-2024` added: 1 document, 1 section, 2 indicators." in log[oldest:]
    assert "jobs-2024" not in log[oldest:]
    assert render_changelog("Demo county reports", entries[::-1]) == log


def test_diff_limits_long_lists_but_keeps_exact_counts() -> None:
    rows = tables_of("demo-2024")
    template = rows["indicators"][0]
    rows["indicators"] += [dict(template, indicator_id=f"demo-2024-x{i:02}") for i in range(15)]
    changes = compare(state("demo-2024"), state(rows=rows))
    assert changes is not None and changes.tables["indicators"]["counts"]["added"] == 15
    text = render_diff(as_json(changes), limit=4)
    assert "indicators (key indicator_id): 15 added, 0 removed, 0 changed" in text
    assert text.count("    + demo-2024-x") == 4
    assert "… and 11 more" in text
    assert "demo-2024-x03 (source demo-2024)" in text and "demo-2024-x04" not in text


# ---------------------------------------------------------------------------- published


INFO = DatasetInfo(name="demo", title="Demo county reports",
                   licenses=[{"name": "CC-BY-4.0", "title": "Creative Commons Attribution 4.0",
                              "path": "https://creativecommons.org/licenses/by/4.0/"}])  # fmt: skip


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two published versions: 1.0.0 with one report, then one with a second report."""
    folder = tmp_path_factory.mktemp("changes") / "published"
    for doc_ids in (("demo-2024",), ("demo-2024", "jobs-2024")):
        rows = tables_of(*doc_ids)
        frames = {name: to_frame(name, rows[name]) for name in TABLES}
        publish(frames, INFO, folder, created="2025-01-02T03:04:05Z")
    return folder


def test_package_state_reads_a_published_folder(published: Path) -> None:
    loaded = PackageState.from_folder(published / "demo" / "1.0.0")
    assert loaded.rows == tables_of("demo-2024")
    assert set(loaded.schemas) == set(TABLES)
    assert loaded.schemas["indicators"]["fields"] == load_schema("indicators")["fields"]
    assert loaded.metadata["title"] == INFO.title and "resources" not in loaded.metadata


def test_diff_between_published_versions_both_ways(published: Path) -> None:
    newer = sorted(p.name for p in (published / "demo").iterdir() if p.name[0].isdigit())[-1]
    forward = diff_versions(published, "demo", "1.0.0", newer)
    assert (forward["previous"], forward["version"], forward["bump"]) == ("1.0.0", newer, "minor")
    assert forward["sources"] == {"added": ["jobs-2024"], "removed": [], "changed": []}
    assert forward["schema"] == [] and forward["metadata"] == []
    backward = diff_versions(published, "demo", newer, "1.0.0")
    assert backward["bump"] == "major"
    assert backward["sources"]["removed"] == ["jobs-2024"]
    assert backward["tables"]["indicators"]["removed"] == forward["tables"]["indicators"]["added"]
    same = diff_versions(published, "demo", newer, newer)
    assert same["bump"] is None and same["tables"]["indicators"]["counts"]["added"] == 0
    assert f"demo 1.0.0 → {newer}: minor" in render_diff(forward)
    assert "+ jobs-2024-11 (source jobs-2024)" in render_diff(forward)


@pytest.mark.parametrize(
    ("dataset", "v1", "v2", "message"),
    [("nope", "1.0.0", "1.0.0", "not published"), ("demo", "1.0.0", "7.0.0", "no version 7.0.0"),
     ("demo", "1.0", "1.0.0", "not a version number"), ("../demo", "1.0.0", "1.0.0", "dataset")],
)  # fmt: skip
def test_diff_versions_rejects_unknown_input(
    published: Path, dataset: str, v1: str, v2: str, message: str
) -> None:
    with pytest.raises(PublishError, match=message):
        diff_versions(published, dataset, v1, v2)
