"""What keeps a release's catalog and pages cheap: row counts handed in or counted fast, the
history's reasons kept in the catalog, and the charts read from the DuckDB file, each giving
what the slower way gave."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import shutil
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import yaml
from _helpers import EMBEDDED

import reportdata.catalog as catalog_module
import reportdata.site as site_module
from reportdata import pipeline
from reportdata.catalog import REASONS, build_catalog, count_rows, write_catalog
from reportdata.errors import PublishError
from reportdata.project import load
from reportdata.pull import pull
from reportdata.site import (
    Bar,
    dataset_page,
    figures_by_family,
    largest_money,
    money,
    money_by_section,
    warehouse_charts,
    write_site,
)

# ---------------------------------------------------------------------------- CSV rows


def reader_count(path: Path) -> int:
    """The rows count_rows gave before it had a fast way: csv.reader's records, less one."""
    with open(path, encoding="utf-8", newline="") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def same_count(path: Path) -> None:
    """count_rows gives csv.reader's count, or both fail."""
    try:
        expected: int | None = reader_count(path)
    except (csv.Error, UnicodeDecodeError):
        expected = None
    if expected is None:
        with pytest.raises(PublishError):
            count_rows(path, "csv")
    else:
        assert count_rows(path, "csv") == expected, path.read_bytes()


TRICKY = {
    "quotes": b'id,text\na,"x, y"\nb,"say ""hi"""\n',
    "only doubled quotes": b'id,text\n"""",""""""\n"",""\n',
    "quoted newlines": b'id,text\na,"one\ntwo\n\nthree"\nb,"\n"\n',
    "empty lines": b"id,text\n\na,b\n\n\n",
    "empty cells": b'id,text\n,\n"",\n,""\n',
    "a quoted header": b'"id","text"\n"a","b"\n',
    "no rows": b"id,text\n",
    "CJK": '编号,文字\n甲,"乙，丙\n丁"\n'.encode(),
}
FALLBACK = {
    "CRLF": b'id,text\r\na,"x\r\ny"\r\nb,c\r\n',
    "a lone CR": b"id,text\ra,b\n",
    "no final newline": b'id,text\na,"b\nc"',
    "a quote inside a cell": b'id,text\na,b"c\nd,e\n',
    "text after a closing quote": b'id,text\na,"b"c,d\ne,f\n',
    "space before a quote": b'id,text\na, "b,c"\n',
    "an open quote": b'id,text\na,"b\nc\n',
    "a BOM before a quote": b'\xef\xbb\xbf"id",text\na,b\n',
    "NUL": b"id,text\na,b\x00c\n",
    "not UTF-8": b"id,text\na,\xff\n",
    "empty file": b"",
}


@pytest.mark.parametrize("name", list(TRICKY))
def test_the_fast_csv_count_is_csv_readers(tmp_path: Path, name: str) -> None:
    data = TRICKY[name]
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    assert catalog_module._csv_records(data) is not None  # counted without csv.reader
    same_count(path)


@pytest.mark.parametrize("name", list(FALLBACK))
def test_files_the_fast_count_is_unsure_of_go_to_csv_reader(tmp_path: Path, name: str) -> None:
    data = FALLBACK[name]
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    if data:
        with pytest.raises(UnicodeDecodeError) if name == "not UTF-8" else nullcontext():
            assert catalog_module._csv_records(data) is None
    same_count(path)


def test_the_csv_count_agrees_with_csv_reader_on_random_files(tmp_path: Path) -> None:
    rng = random.Random(20251127)
    path = tmp_path / "r.csv"
    pieces = ["a", "é", ",", '"', '""', "\n", "\n", "\r", "\r\n", " ", "文"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        path.write_bytes(text.encode("utf-8"))
        same_count(path)


def test_files_csv_writer_writes_are_counted_fast(tmp_path: Path) -> None:
    rng = random.Random(7)
    path = tmp_path / "w.csv"
    alphabet = ["a", "b", ",", '"', "\n", " ", "元", "，"]
    for _ in range(300):
        rows = [
            ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(3)]
            for _ in range(rng.randint(0, 8))
        ]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([["id", "text", "more"], *rows])
        path.write_text(out.getvalue(), "utf-8")
        assert catalog_module._csv_records(path.read_bytes()) is not None
        assert count_rows(path, "csv") == reader_count(path) == len(rows)


# ---------------------------------------------------------------------------- a dataset


def _brief(n: int) -> str:
    """A short made-up report; every brief has the same headings, so sums cross reports."""
    return (
        f"某县第{n}号工作简报\n\n一、经济\n\n"
        f"全县实现地区生产总值{100 + n}.5亿元,新增市场主体{2000 + n}户,"
        f"完成固定资产投资{n * 37 + 0.3}亿元。\n\n"
        f"二、民生\n\n城镇新增就业{3000 + n}人,发放创业担保贷款{4500 + n}万元,"
        f"新建养老服务站{n + 2}个。\n"
    )


def _project(root: Path, briefs: int) -> Path:
    (root / "raw" / "embedded").mkdir(parents=True)
    shutil.copyfile(EMBEDDED / "lixia-2021-qilu.txt", root / "raw/embedded/lixia.txt")
    sources = [{"id": "lixia-2021", "path": "raw/embedded/lixia.txt", "published": "2021"}]
    for n in range(1, briefs + 1):
        (root / f"raw/embedded/brief-{n}.txt").write_text(_brief(n), "utf-8")
        sources.append({"id": f"brief-{n}", "path": f"raw/embedded/brief-{n}.txt"})
    doc = {
        "datasets": {
            "county": {
                "title": "某县报告中的数字",
                "description": "Figures from a real report and made-up county briefs.",
                "licence": {"name": "CC0-1.0", "title": "Public domain"},
            }
        },
        "sources": [
            {"dataset": "county", "publisher": "某县", "published": "2024", **s} for s in sources
        ],
    }
    (root / "sources.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return root


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """county 1.0.0 (the Lixia report and one brief), then 1.1.0 (three briefs more), as a
    run publishes them; its published folder."""
    proj = load(_project(tmp_path_factory.mktemp("county"), briefs=4))
    parts = {
        s.id: pipeline.extract_source(proj, s, pull(proj, s).snapshot)
        for s in proj.sources_of("county")
    }
    first = pipeline.merge([parts["lixia-2021"], parts["brief-1"]])
    assert pipeline.release(proj, "county", pipeline.frames(first)).version == "1.0.0"
    whole = pipeline.merge(list(parts.values()))
    assert pipeline.release(proj, "county", pipeline.frames(whole)).version == "1.1.0"
    published = proj.published_dir
    assert json.loads((published / "county/latest.json").read_text("utf-8"))["version"] == "1.1.0"
    assert (published / "county/county.duckdb").is_file()
    return published


@pytest.fixture
def published(county: Path, tmp_path: Path) -> Path:
    """A copy of the county published folder, for a test to change."""
    folder = tmp_path / "published"
    shutil.copytree(county, folder)
    return folder


def _dataset(catalog: dict[str, Any], name: str = "county") -> dict[str, Any]:
    return next(d for d in catalog["datasets"] if d["name"] == name)


# ---------------------------------------------------------------------------- row counts


def _watch(monkeypatch: pytest.MonkeyPatch, published: Path, name: str) -> list[str]:
    """The paths (from ``published``) the catalog's function ``name`` is called on, as it runs."""
    seen: list[str] = []
    real = getattr(catalog_module, name)

    def watched(path: Path, *args: Any) -> Any:
        seen.append(path.relative_to(published).as_posix())
        return real(path, *args)

    monkeypatch.setattr(catalog_module, name, watched)
    return seen


def test_row_counts_handed_in_are_used_and_those_files_not_counted(
    published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = build_catalog(published)
    (published / "catalog.json").unlink()  # every entry is made again
    counted = _watch(monkeypatch, published, "count_rows")
    given = {"county/1.1.0/indicators.json": 12345, "county/1.1.0/indicators.csv": 54321}
    catalog = build_catalog(published, rows=given)
    [newest] = [v for v in _dataset(catalog)["versions"] if v["version"] == "1.1.0"]
    rows = {r["path"]: r.get("rows") for r in newest["resources"]}
    assert {p: rows[p] for p in given} == given  # taken as given: the caller wrote the file
    assert not set(given) & set(counted)  # and not read to count its rows
    assert "county/1.1.0/sections.json" in counted and "county/1.0.0/indicators.csv" in counted
    # The true counts handed in give the catalog counting gives, counting nothing.
    truthful = {
        r["path"]: r["rows"] for v in _dataset(honest)["versions"] for r in v["resources"]
        if "rows" in r
    }  # fmt: skip
    counted.clear()
    assert build_catalog(published, rows=truthful) == honest
    assert counted == []


def test_file_facts_handed_in_are_used_and_those_files_not_hashed(
    published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = build_catalog(published)
    (published / "catalog.json").unlink()  # every entry is made again
    hashed = _watch(monkeypatch, published, "_file_facts")
    given = {"county/1.1.0/indicators.csv": (7, "sha256:" + "ab" * 32)}
    catalog = build_catalog(published, files=given)
    [newest] = [v for v in _dataset(catalog)["versions"] if v["version"] == "1.1.0"]
    facts_of = {r["path"]: (r["bytes"], r["hash"]) for r in newest["resources"]}
    assert facts_of["county/1.1.0/indicators.csv"] == given["county/1.1.0/indicators.csv"]
    assert "county/1.1.0/indicators.csv" not in hashed  # taken as given: the caller wrote it
    assert "county/1.1.0/indicators.json" in hashed
    # The true facts handed in give the catalog hashing gives, hashing none of those files.
    truthful = {
        r["path"]: (r["bytes"], r["hash"]) for v in _dataset(honest)["versions"]
        for r in v["resources"]
    }  # fmt: skip
    hashed.clear()
    assert build_catalog(published, files=truthful) == honest
    assert not set(truthful) & set(hashed)


# ---------------------------------------------------------------------------- reasons


def _with_reasons(published: Path, version: str, count: int) -> list[str]:
    """Give a version's changes.json ``count`` reasons; returns them."""
    path = published / "county" / version / "changes.json"
    changes = json.loads(path.read_text("utf-8"))
    changes["reasons"] = [f"reason {i} <b>{version}</b>" for i in range(count)]
    path.write_text(json.dumps(changes, ensure_ascii=False), "utf-8")
    return changes["reasons"]


def test_version_entries_carry_their_first_reasons(published: Path) -> None:
    many = _with_reasons(published, "1.0.0", REASONS + 5)
    catalog = build_catalog(published)
    newest, oldest = _dataset(catalog)["versions"]
    assert list(oldest) == [
        "version", "created", "bump", "reasons", "reasons_total", "datapackage", "changes",
        "resources",
    ]  # fmt: skip
    assert (oldest["reasons"], oldest["reasons_total"]) == (many[:REASONS], REASONS + 5)
    changes = json.loads((published / "county/1.1.0/changes.json").read_text("utf-8"))
    assert newest["reasons"] == changes["reasons"] and changes["reasons"]
    assert newest["reasons_total"] == len(changes["reasons"]) and newest["bump"] == "minor"


def test_the_history_shows_the_first_reasons_and_links_the_rest(published: Path) -> None:
    many = _with_reasons(published, "1.0.0", REASONS + 5)
    write_catalog(published)
    write_site(published)
    page = (published / "county/index.html").read_text("utf-8")
    history = page[page.index('<section id="history"') : page.index('<section id="changelog"')]
    row = history[history.index('<tr data-version="1.0.0">') :]
    for reason in many[:REASONS]:
        assert f"<li>{site_module.esc(reason)}</li>" in row
    assert site_module.esc(many[REASONS]) not in page
    assert '<li class="muted"><a href="1.0.0/changes.json">… 另有 5 条</a></li>' in row


def test_reused_entries_keep_their_reasons_and_the_site_reads_no_changes_json(
    published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_catalog(published)
    before = json.loads((published / "catalog.json").read_text("utf-8"))
    pages = [p.read_bytes() for p in write_site(published, before)]
    read: list[str] = []
    real = catalog_module.read_json

    def reading(path: Path) -> Any:
        read.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(catalog_module, "read_json", reading)
    monkeypatch.setattr(site_module, "read_json", reading)
    assert build_catalog(published) == before
    assert "changes.json" not in read
    # The pages need no changes.json at all: with every one unreadable, the same bytes.
    for changes in published.glob("county/*/changes.json"):
        changes.write_bytes(b"\xff not json")
    (published / site_module.MEMO).unlink()  # so that the pages are made again, not kept
    assert [p.read_bytes() for p in write_site(published, before)] == pages
    assert "changes.json" not in read


def test_an_older_catalog_without_reasons_is_completed_reading_only_changes_json(
    published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = build_catalog(published)
    older = json.loads(json.dumps(honest))
    for version in _dataset(older)["versions"]:
        del version["reasons"], version["reasons_total"]
    (published / "catalog.json").write_text(json.dumps(older), "utf-8")
    # A catalog of that shape handed to write_site gives the same pages.
    assert [p.read_bytes() for p in write_site(published, older)] == [
        p.read_bytes() for p in write_site(published, honest)
    ]
    hashed: list[str] = []
    counted: list[str] = []
    read: list[str] = []
    real_facts, real_count = catalog_module._file_facts, catalog_module.count_rows
    real_read = catalog_module.read_json
    monkeypatch.setattr(
        catalog_module, "_file_facts", lambda p: hashed.append(p.name) or real_facts(p)
    )
    monkeypatch.setattr(
        catalog_module, "count_rows", lambda p, f: counted.append(p.name) or real_count(p, f)
    )
    monkeypatch.setattr(catalog_module, "read_json", lambda p: read.append(p.name) or real_read(p))
    assert build_catalog(published) == honest
    assert hashed == ["datapackage.json", "datapackage.json"] and counted == []
    assert read.count("changes.json") == 2  # once a version


# ---------------------------------------------------------------------------- charts


def _old_money_rows(indicators: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
    """The charts as they were drawn before (sorting every row, two passes): the reference."""
    out = []
    for row in indicators:
        value = row.get("value_base")
        ok = not isinstance(value, bool) and isinstance(value, int | float)
        value = float(value) if ok and math.isfinite(value) else None
        if row.get("unit_family") == "money" and value is not None and value > 0:
            out.append((row, value))
    return out


def _smallest_first(values: Any) -> float:
    """Plain float addition, smallest first: how the page adds every total up."""
    total = 0.0
    for value in sorted(values):
        total += value
    return total


def _old_charts(indicators: list[dict], sections: list[dict]) -> tuple[list, list, list]:
    labels = {}
    for s in sections:
        heading = str(s.get("heading") or "")
        labels[str(s.get("section_id"))] = heading or (
            "导语" if s.get("kind") == "lead" else "（无标题）"
        )
    values: dict[str, list[float]] = defaultdict(list)
    for row, value in _old_money_rows(indicators):
        sid = str(row.get("section_id"))
        values[labels.get(sid, sid)].append(value)
    sums = {label: _smallest_first(each) for label, each in values.items()}
    ranked = sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) > 12:
        ranked = [*ranked[:11], ("其他章节", _smallest_first(v for _, v in ranked[11:]))]
    by_section = [Bar(label, value, money(value)) for label, value in ranked]
    counts: dict[str, int] = defaultdict(int)
    for r in indicators:
        counts[str(r.get("unit_family") or "other")] += 1
    families = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    rows = sorted(
        _old_money_rows(indicators), key=lambda rv: (-rv[1], str(rv[0].get("indicator_id")))
    )
    largest = [
        Bar(str(r.get("subject") or "（未命名）"), v, str(r.get("quantity_text") or "") or money(v))
        for r, v in rows[:10]
    ]
    return by_section, [(f, c) for f, c in families], largest


def test_the_one_pass_charts_equal_the_old_ones_ties_included() -> None:
    rng = random.Random(11)
    values: list[Any] = [1e8, 1e8, 2.5e4, 0.1 + 0.2, 3, True, None, -5, 0, math.inf, math.nan]
    sections = [
        {"section_id": f"s{i}", "heading": rng.choice(["一、经济", "", None, "二、民生"]),
         "kind": rng.choice(["heading", "lead"])}
        for i in range(30)
    ]  # fmt: skip
    for _ in range(50):
        indicators = [
            {
                "indicator_id": f"d-{rng.randint(0, 10**6):07d}",
                "section_id": rng.choice([*(s["section_id"] for s in sections), "gone", None]),
                "subject": rng.choice(["收入", "", None]),
                "quantity_text": rng.choice(["1亿元", "", None]),
                "unit_family": rng.choice(["money", "money", "people", "", None, "area"]),
                "value_base": rng.choice([*values, rng.uniform(1, 1e9)]),
            }
            for _ in range(rng.randint(0, 80))
        ]
        by_section, families, largest = _old_charts(indicators, sections)
        assert money_by_section(indicators, sections) == by_section
        assert [(b.label, b.value) for b in figures_by_family(indicators)] == [
            (f"{site_module._FAMILIES.get(f, f)} ({f})", c) for f, c in families
        ]
        assert largest_money(indicators) == largest


def test_charts_from_the_duckdb_file_give_the_page_the_json_tables_give(published: Path) -> None:
    write_catalog(published)
    catalog = json.loads((published / "catalog.json").read_text("utf-8"))
    county = _dataset(catalog)
    duckdb_file = published / "county/county.duckdb"
    whole = duckdb_file.read_bytes()
    data = warehouse_charts(published, county)
    assert data is not None and data.largest and len(data.families) > 2
    tables = {
        t: json.loads((published / f"county/1.1.0/{t}.json").read_text("utf-8"))
        for t in ("indicators", "sections")
    }
    assert data == site_module.chart_rows(tables["indicators"], tables["sections"])
    with_money = {r["section_id"] for r in tables["indicators"] if r["unit_family"] == "money"}
    assert 1 < data.sections.count < len(with_money)  # sums cross reports

    json_copy = published.parent / "json-only"
    shutil.copytree(published, json_copy)
    (json_copy / "county/county.duckdb").unlink()
    assert warehouse_charts(json_copy, county) is None
    from_json = dataset_page(json_copy, county, catalog)

    # The DuckDB way parses no JSON table: with them unreadable the page is the same.
    for table in ("indicators.json", "sections.json"):
        (published / "county/1.1.0" / table).write_bytes(b"not json")
    assert dataset_page(published, county, catalog) == from_json
    assert duckdb_file.read_bytes() == whole  # opened read-only
    assert not (published / "county/county.duckdb.wal").exists()

    charts = from_json[from_json.index(b'<section id="charts"') :]
    assert charts.count(b'<rect class="bar"') > 10


def test_a_duckdb_file_not_current_or_unreadable_leaves_the_charts_to_the_json(
    published: Path,
) -> None:
    (published / "county/latest.json").write_text('{"version": "1.0.0", "path": "1.0.0"}')
    catalog = build_catalog(published)
    county = _dataset(catalog)
    assert county["latest"] == "1.0.0"
    assert warehouse_charts(published, county) is None  # its latest version is 1.1.0
    stale = dataset_page(published, county, catalog)
    first = json.loads((published / "county/1.0.0/indicators.json").read_text("utf-8"))
    money_rows = [r for r in first if r["unit_family"] == "money" and r["value_base"] > 0]
    biggest = max(money_rows, key=lambda r: r["value_base"])
    assert site_module.esc(biggest["quantity_text"]).encode() in stale

    (published / "county/county.duckdb").write_bytes(b"not a database" * 100)
    assert warehouse_charts(published, county) is None
    assert dataset_page(published, county, catalog) == stale


# ---------------------------------------------------------------------------- reuse


def test_a_reused_entry_parses_no_descriptor(
    published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_catalog(published)
    honest = build_catalog(published)
    parsed = _watch(monkeypatch, published, "read_json")
    assert build_catalog(published) == honest
    descriptors = [p for p in parsed if p.endswith("datapackage.json")]
    assert descriptors == ["county/1.1.0/datapackage.json"]  # the newest's title, once


def test_an_entry_pointing_outside_its_version_is_made_again(published: Path) -> None:
    write_catalog(published)
    honest = build_catalog(published)
    path = published / "catalog.json"
    catalog = json.loads(path.read_text("utf-8"))
    resource = _dataset(catalog)["versions"][-1]["resources"][0]
    copy = published / "county" / "elsewhere.csv"  # the same bytes, outside the version
    copy.write_bytes((published / resource["path"]).read_bytes())
    resource["path"] = resource["url"] = "county/elsewhere.csv"
    path.write_text(json.dumps(catalog), "utf-8")
    assert build_catalog(published) == honest


# ---------------------------------------------------------------------------- pages kept


@pytest.fixture
def two(tmp_path: Path) -> Any:
    """A project of two datasets, county (three briefs) and town (two), each published once,
    town on 2024-05-01 and county on 2024-06-01."""
    raw = tmp_path / "raw" / "embedded"
    raw.mkdir(parents=True)
    sources = []
    for n in range(1, 6):
        (raw / f"brief-{n}.txt").write_text(_brief(n), "utf-8")
        dataset = "county" if n <= 3 else "town"
        sources.append({"id": f"brief-{n}", "path": f"raw/embedded/brief-{n}.txt"})
        sources[-1] |= {"dataset": dataset, "publisher": "某县", "published": "2024"}
    about = {"description": "Made-up briefs.", "licence": {"name": "CC0-1.0"}}
    doc = {
        "datasets": {"county": {"title": "县", **about}, "town": {"title": "镇", **about}},
        "sources": sources,
    }
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    proj = load(tmp_path)
    for dataset, day in (("town", "1714521600"), ("county", "1717200000")):
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SOURCE_DATE_EPOCH", day)
            _release(proj, dataset)
    return proj


def _release(proj: Any, dataset: str, skip: int = 0) -> str:
    """Publish the dataset's sources (but the first ``skip``); returns the version."""
    sources = proj.sources_of(dataset)[skip:]
    parts = [pipeline.extract_source(proj, s, pull(proj, s).snapshot) for s in sources]
    return pipeline.release(proj, dataset, pipeline.frames(pipeline.merge(parts))).version


def _making(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The datasets whose page is made, as it happens."""
    made: list[str] = []
    real = site_module.dataset_page

    def making(root: Path, dataset: dict[str, Any], catalog: dict[str, Any]) -> bytes:
        made.append(dataset["name"])
        return real(root, dataset, catalog)

    monkeypatch.setattr(site_module, "dataset_page", making)
    return made


def test_a_release_makes_only_its_own_dataset_page_again(
    two: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = two.published_dir
    town = (published / "town/index.html").read_bytes()
    made = _making(monkeypatch)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1893456000")  # 2030-01-01
    assert _release(two, "county", skip=1) == "2.0.0"
    assert made == ["county"]
    assert (published / "town/index.html").read_bytes() == town
    assert "2030-01-01" in (published / "index.html").read_text("utf-8")
    assert "2030-01-01" in (published / "county/index.html").read_text("utf-8")
    # A dataset page's footer gives its own date, not the catalog's newest.
    assert "2024-05-01" in town.decode("utf-8")[town.decode("utf-8").index("<footer") :]
    # The page kept is the page made anew.
    kept = [p.read_bytes() for p in write_site(published)]
    assert made == ["county"]
    (published / site_module.MEMO).unlink()
    assert [p.read_bytes() for p in write_site(published)] == kept
    assert made == ["county", "county", "town"]


@pytest.mark.parametrize(
    "change", ["page edited", "page removed", "changelog", "duckdb file", "code", "memo"]
)
def test_a_dataset_page_is_made_again_when_what_it_is_made_from_changed(
    two: Any, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    published = two.published_dir
    pages = [p.read_bytes() for p in write_site(published)]
    made = _making(monkeypatch)
    town = published / "town"
    if change == "page edited":
        (town / "index.html").write_bytes(b"<p>edited by hand</p>")
    elif change == "page removed":
        (town / "index.html").unlink()
    elif change == "changelog":
        with (town / "CHANGELOG.md").open("a", encoding="utf-8") as fh:
            fh.write("\n- 一条新的说明\n")
    elif change == "duckdb file":
        shutil.copyfile(town / "town.duckdb", town / "copy.duckdb")
        (town / "copy.duckdb").replace(town / "town.duckdb")
    elif change == "code":
        monkeypatch.setattr(site_module, "_code", lambda: "other code")
    else:
        (published / site_module.MEMO).write_text("not json", "utf-8")
    again = [p.read_bytes() for p in write_site(published)]
    expected = {"code": ["county", "town"], "memo": ["county", "town"]}.get(change, ["town"])
    assert made == expected
    if change == "changelog":
        assert "一条新的说明" in again[2].decode("utf-8") and again[:2] == pages[:2]
    else:
        assert again == pages
    assert write_site(published) and made == expected  # and noted: not made a third time
