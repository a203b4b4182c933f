"""Schemas derived from the Table Schemas, and the validation report."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from conftest import SHARED

from reportdata import pipeline
from reportdata.publish import table_rows
from reportdata.schema import (
    TABLES,
    conform_rows,
    field_names,
    load_schema,
    pandera_schema,
    schemas_dir,
    to_frame,
)
from reportdata.tables import DocumentInfo, rows_from_bytes
from reportdata.validate import (
    ValidationReport,
    check_rows,
    check_tables,
    unit_multiplier,
    write_report,
)

TEXT = "一、旅游\n全年接待游客120万人次，旅游总收入4.7亿元。"
SENTENCE = "全年接待游客120万人次，旅游总收入4.7亿元。"


def _indicator(
    quantity: str, subject: str, value: float, unit: str, base: float, unit_base: str, family: str
) -> dict:
    start = TEXT.index(quantity)
    return {
        "indicator_id": f"demo-2024-{start}", "document_id": "demo-2024",
        "section_id": "demo-2024-s0", "subject": subject, "value": value, "unit": unit,
        "value_base": base, "unit_base": unit_base, "unit_family": family, "qualifier": "exact",
        "status": "actual", "measure": "level", "period": "2024", "quantity_text": quantity,
        "sentence": SENTENCE, "char_start": start, "char_end": start + len(quantity),
    }  # fmt: skip


def sample_tables() -> dict[str, pd.DataFrame]:
    """One document, one section and two indicators that pass every check."""
    documents = pd.DataFrame([{
        "document_id": "demo-2024", "dataset": "demo", "title": "某县2024年政府工作报告",
        "subtitle": "", "publisher": "某县人民政府", "reporter": "", "photographer": "",
        "area": "某县", "report_year": 2024, "licence": "CC-BY-4.0",
        "origin": "raw/demo/report.txt",
        "raw_sha256": hashlib.sha256(TEXT.encode("utf-8")).hexdigest(), "format": "text",
        "encoding": "utf-8", "script": "simplified", "text": TEXT,
    }])  # fmt: skip
    sections = pd.DataFrame([{
        "section_id": "demo-2024-s0", "document_id": "demo-2024", "ordinal": 0,
        "kind": "heading", "heading": "一、旅游", "plan": False, "char_start": 0,
        "char_end": len(TEXT),
    }])  # fmt: skip
    indicators = pd.DataFrame([
        _indicator("120万人次", "接待游客", 120.0, "万人次", 1_200_000.0, "人次", "people"),
        _indicator("4.7亿元", "旅游总收入", 4.7, "亿元", 470_000_000.0, "元", "money"),
    ])  # fmt: skip
    return {"documents": documents, "sections": sections, "indicators": indicators}


def checks_of(report: ValidationReport) -> set[tuple[str, str]]:
    return {(e["table"], e["check"]) for e in report.errors}


# ---------------------------------------------------------------------------- schema


def test_schemas_are_found_and_complete() -> None:
    assert (schemas_dir() / "documents.json").is_file()
    for name in TABLES:
        descriptor = load_schema(name)
        assert descriptor["name"] == name
        assert list(pandera_schema(name).columns) == field_names(name)


def test_load_schema_returns_a_copy() -> None:
    load_schema("documents")["fields"].clear()
    assert load_schema("documents")["fields"]


def test_pandera_schema_coerces_integers_and_keeps_optional_year_null() -> None:
    documents = sample_tables()["documents"]
    documents["report_year"] = None
    out = pandera_schema("documents").validate(documents)
    assert str(out["report_year"].dtype) == "Int64"
    assert out["report_year"].isna().all()


@pytest.mark.parametrize(
    ("unit", "unit_base", "factor"),
    [
        ("万元", "元", 1e4),
        ("亿元", "元", 1e8),
        ("万亿元", "元", 1e12),
        ("千万", "", 1e7),
        ("百万吨", "吨", 1e6),
        ("人次", "人次", 1.0),
        ("名", "人", 1.0),
        ("大", "个", 1.0),
        ("", "", 1.0),
        ("万亩", "亩", 1e4),
        ("厘米", "米", 0.01),  # not a prefix: the unit table of reportdata.units decides
        ("角", "元", 0.1),
    ],
)
def test_unit_multiplier(unit: str, unit_base: str, factor: float) -> None:
    assert unit_multiplier(unit, unit_base) == factor


# ---------------------------------------------------------------------------- checks


def test_valid_tables_pass() -> None:
    report = check_tables(sample_tables())
    assert report.ok, report.errors
    assert report.counts == {"documents": 1, "sections": 1, "indicators": 2}
    assert report.summary().startswith("Validation passed")


def test_tables_without_rows_pass() -> None:
    tables = sample_tables()
    tables["indicators"] = to_frame("indicators", [])
    assert list(tables["indicators"].columns) == field_names("indicators")
    report = check_tables(tables)
    assert report.ok, report.errors
    assert report.counts["indicators"] == 0


def test_rows_built_from_dicts_are_coerced() -> None:
    tables = {
        name: to_frame(name, frame.to_dict("records")) for name, frame in sample_tables().items()
    }
    assert str(tables["sections"]["ordinal"].dtype) == "Int64"
    assert check_tables(tables).ok


def test_wrong_value_base_fails() -> None:
    tables = sample_tables()
    tables["indicators"].loc[0, "value_base"] = 120.0
    report = check_tables(tables)
    assert checks_of(report) == {("indicators", "value_base")}
    (error,) = report.errors
    assert error["key"] == "demo-2024-11" and error["column"] == "value_base"


def test_value_base_tolerates_rounding() -> None:
    tables = sample_tables()
    tables["indicators"].loc[1, "value_base"] = 4.7 * 1e8 * (1 + 1e-12)
    assert check_tables(tables).ok


def test_wrong_quantity_text_fails() -> None:
    tables = sample_tables()
    tables["indicators"].loc[1, "quantity_text"] = "4.7亿"
    report = check_tables(tables)
    assert checks_of(report) == {("indicators", "quantity_text")}
    assert "'4.7亿元'" in report.errors[0]["message"]


def test_span_outside_the_text_fails() -> None:
    tables = sample_tables()
    tables["indicators"].loc[1, "char_end"] = len(TEXT) + 5
    assert ("indicators", "span") in checks_of(check_tables(tables))


def test_section_of_another_document_fails() -> None:
    tables = sample_tables()
    other_text = "二、交通\n新建公路30公里。"
    other = (
        tables["documents"]
        .iloc[[0]]
        .assign(
            document_id="other-2024",
            text=other_text,
            raw_sha256=hashlib.sha256(other_text.encode("utf-8")).hexdigest(),
        )
    )
    tables["documents"] = pd.concat([tables["documents"], other], ignore_index=True)
    other_section = tables["sections"].iloc[[0]].assign(
        section_id="other-2024-s0", document_id="other-2024", heading="二、交通",
        char_end=len(other_text),
    )  # fmt: skip
    tables["sections"] = pd.concat([tables["sections"], other_section], ignore_index=True)
    tables["indicators"].loc[0, "section_id"] = "other-2024-s0"
    report = check_tables(tables)
    assert checks_of(report) == {("indicators", "section")}
    assert "other-2024" in report.errors[0]["message"]


def test_span_outside_its_section_fails() -> None:
    tables = sample_tables()
    tables["sections"].loc[0, "char_end"] = 10
    report = check_tables(tables)
    assert checks_of(report) == {("indicators", "section")}


def test_foreign_keys_fail() -> None:
    tables = sample_tables()
    tables["sections"].loc[0, "document_id"] = "nowhere"
    tables["indicators"].loc[1, "section_id"] = "nowhere-s9"
    report = check_tables(tables)
    assert ("sections", "foreign_key") in checks_of(report)
    assert any(e["check"] == "foreign_key" and e["column"] == "section_id" for e in report.errors)


def test_missing_column_fails_without_crashing_the_cross_checks() -> None:
    tables = sample_tables()
    tables["indicators"] = tables["indicators"].drop(columns=["quantity_text"])
    report = check_tables(tables)
    assert not report.ok
    assert checks_of(report) == {("indicators", "missing_column")}
    assert report.errors[0]["column"] == "quantity_text"


def test_missing_table_fails() -> None:
    tables = sample_tables()
    del tables["sections"]
    assert ("sections", "missing_table") in checks_of(check_tables(tables))


def test_schema_constraints_are_collected_lazily() -> None:
    tables = sample_tables()
    docs = tables["documents"]
    docs.loc[0, "format"] = "doc"
    docs.loc[0, "title"] = ""
    docs.loc[0, "raw_sha256"] = "abc"
    docs.loc[0, "report_year"] = 1800
    docs.loc[0, "reporter"] = None
    dup = tables["indicators"].iloc[[0]]
    tables["indicators"] = pd.concat([tables["indicators"], dup], ignore_index=True)
    tables["indicators"].loc[1, "period"] = "24"
    report = check_tables(tables)
    assert {
        ("documents", "enum"),
        ("documents", "required"),
        ("documents", "pattern"),
        ("documents", "minimum"),
        ("indicators", "unique"),
        ("indicators", "pattern"),
    } <= checks_of(report)
    reporter = [e for e in report.errors if e["column"] == "reporter"]
    assert reporter and reporter[0]["check"] == "not_null"


def test_optional_strings_may_be_empty_but_required_pattern_is_full_match() -> None:
    tables = sample_tables()
    tables["indicators"].loc[0, "period"] = ""
    tables["indicators"].loc[1, "period"] = "2021-2025"
    assert check_tables(tables).ok
    tables["documents"].loc[0, "document_id"] = "demo-2024 "  # trailing space: no full match
    assert ("documents", "pattern") in checks_of(check_tables(tables))


# ---------------------------------------------------------------------------- report


def test_report_json_and_markdown_are_written(tmp_path) -> None:
    tables = sample_tables()
    extra = pd.concat([tables["indicators"]] * 30, ignore_index=True)
    extra["indicator_id"] = [f"demo-2024-x{i}" for i in range(len(extra))]
    extra["value_base"] = 1.0
    tables["indicators"] = extra
    report = check_tables(tables)
    assert len(report.errors) == 60
    json_path, md_path = write_report(report, tmp_path / "reports")
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["ok"] is False and len(data["errors"]) == 60
    assert set(data["errors"][0]) == {"table", "check", "key", "column", "message"}
    markdown = md_path.read_text(encoding="utf-8")
    assert markdown.startswith("# Validation report\n\nValidation failed with 60 errors")
    assert "## indicators: value_base (60)" in markdown
    assert "… and 10 more" in markdown
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "validation.json",
        "validation.md",
    ]


def test_passing_report_markdown() -> None:
    markdown = check_tables(sample_tables()).to_markdown()
    assert "Validation passed" in markdown and "##" not in markdown


# ------------------------------------------------------------------ rows without pandas


def _records() -> dict[str, list[dict]]:
    return {name: frame.to_dict("records") for name, frame in sample_tables().items()}


def _dev_rows() -> dict[str, list[dict]]:
    """The rows the extractor makes of the dev corpus's reports."""
    rows: dict[str, list[dict]] = {name: [] for name in TABLES}
    for n, path in enumerate(sorted((SHARED / "corpus" / "dev").glob("*.txt"))):
        year = 2020 if n % 2 else None  # the optional integer: null and not
        info = DocumentInfo(path.stem, "dev", "标题", "发布者", "某区", "CC0-1.0", str(path),
                            "0" * 64, year)  # fmt: skip
        for name, part in rows_from_bytes(info, path.read_bytes(), path.name).items():
            rows[name] += part
    return rows


def test_rows_are_cast_and_sorted_as_the_dataframes_publish_them() -> None:
    """`conform_rows` gives what `table_rows(to_frame(...))` gives: the same values of the
    same JSON types (1 and 1.0 differ in a published file), in the same order."""
    rows = _dev_rows()
    rows["indicators"][0] |= {"value": 120, "value_base": 1.2e6, "char_start": 3.0}
    rows["documents"][0] |= {"report_year": 2024.0, "subtitle": None}
    rows["sections"][0]["plan"] = 1
    for name in TABLES:
        shuffled = list(reversed(rows[name]))
        expected = table_rows(name, to_frame(name, shuffled))
        assert json.dumps(conform_rows(name, shuffled), ensure_ascii=False) == json.dumps(
            expected, ensure_ascii=False
        )
    with pytest.raises(ValueError, match="non-integral"):
        conform_rows("sections", [{**rows["sections"][0], "ordinal": 1.5}])


def _set(table: str, i: int, **values):
    return lambda rows: rows[table][i].update(values)


def _drop_a_table(rows):
    rows["indicators"].clear()


def _a_second_document(rows):
    other = "二、交通\n新建公路30公里。"
    rows["documents"].append(
        {
            **rows["documents"][0],
            "document_id": "other-2024",
            "text": other,
            "raw_sha256": hashlib.sha256(other.encode()).hexdigest(),
        }
    )
    rows["sections"].append(
        {
            **rows["sections"][0],
            "section_id": "other-2024-s0",
            "document_id": "other-2024",
            "char_end": len(other),
        }
    )
    rows["indicators"][0]["section_id"] = "other-2024-s0"  # fmt: skip


MUTATIONS = {
    "valid": lambda rows: None,
    "enum": _set("documents", 0, format="doc"),
    "required string empty": _set("documents", 0, title=""),
    "required string null": _set("indicators", 1, subject=None),
    "required number null": _set("indicators", 0, value=None, value_base=None),
    "optional string null": _set("documents", 0, reporter=None),
    "pattern": _set("documents", 0, raw_sha256="abc"),
    "pattern of an optional string": _set("indicators", 1, period="24"),
    "minimum": _set("documents", 0, report_year=1800),
    "maximum": _set("documents", 0, report_year=2200),
    "integer minimum": _set("sections", 0, ordinal=-1),
    "empty key": _set("documents", 0, document_id=""),
    "duplicate key": lambda rows: rows["indicators"].append(dict(rows["indicators"][0])),
    "value_base": _set("indicators", 0, value_base=120.0),
    "quantity_text": _set("indicators", 1, quantity_text="4.7亿"),
    "span": _set("indicators", 1, char_end=len(TEXT) + 5),
    "span outside its section": _set("sections", 0, char_end=10),
    "section of another document": _a_second_document,
    "foreign keys": lambda rows: (
        _set("sections", 0, document_id="nowhere")(rows),
        _set("indicators", 1, section_id="nowhere-s9")(rows),
    ),
    "no indicators": _drop_a_table,
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_rows_are_checked_as_pandera_checks_dataframes(mutation: str) -> None:
    """`check_rows` (no pandas: a run that replaces a few reports) finds exactly what
    `check_tables` finds, with the same checks, keys, columns and messages."""
    rows = _records()
    MUTATIONS[mutation](rows)
    by_pandera = check_tables({name: to_frame(name, rows[name]) for name in TABLES})
    by_rows = check_rows(pipeline.conformed(rows))
    assert (by_rows.ok, by_rows.counts) == (by_pandera.ok, by_pandera.counts)
    assert by_pandera.ok == (mutation in ("valid", "no indicators"))

    def key(error: dict) -> str:
        return json.dumps(error, ensure_ascii=False, sort_keys=True)

    assert sorted(map(key, by_rows.errors)) == sorted(map(key, by_pandera.errors))


def test_every_mutation_at_once_and_the_dev_corpus() -> None:
    rows = _records()
    for mutation in MUTATIONS.values():
        mutation(rows)
    for tables in (rows, _dev_rows()):
        by_pandera = check_tables({name: to_frame(name, tables[name]) for name in TABLES})
        by_rows = check_rows(pipeline.conformed(tables))
        assert sorted(map(str, by_rows.errors)) == sorted(map(str, by_pandera.errors))
        assert by_rows.counts == by_pandera.counts
