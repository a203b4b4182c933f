"""The catalog (catalog.json) and the static site, built over datasets published for real."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from reportdata.catalog import build_catalog, write_catalog
from reportdata.errors import PublishError
from reportdata.publish import DatasetInfo, publish
from reportdata.schema import TABLES, to_frame
from reportdata.site import (
    figures_by_family,
    largest_money,
    money_by_section,
    render_markdown,
    write_site,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
EVIL = "<script>alert(1)</script>"
# The heading of the first report carries markup, so that it reaches the charts' SVG text.
TEXT = f"一、旅游{EVIL}\n全年接待游客120万人次，旅游总收入4.7亿元。"
JOBS = "二、就业\n城镇新增就业4800人，发放创业贷款2.2亿元。"
FIRST, SECOND = "2025-01-02T03:04:05Z", "2025-02-03T04:05:06Z"


def _document(doc_id: str, text: str) -> dict:
    return {
        "document_id": doc_id, "dataset": "demo", "title": f"某县报告 {EVIL}", "subtitle": "",
        "publisher": "某县人民政府", "reporter": "", "photographer": "", "area": "某县",
        "report_year": 2024, "licence": "CC-BY-4.0", "origin": f"raw/{doc_id}.txt",
        "raw_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "format": "text",
        "encoding": "utf-8", "script": "simplified", "text": text,
    }  # fmt: skip


def _section(doc_id: str, text: str) -> dict:
    return {
        "section_id": f"{doc_id}-s0", "document_id": doc_id, "ordinal": 0, "kind": "heading",
        "heading": text.split("\n")[0], "plan": False, "char_start": 0, "char_end": len(text),
    }  # fmt: skip


def _figure(doc_id: str, text: str, quantity: str, subject: str, unit: str, factor: float,
            family: str) -> dict:  # fmt: skip
    start = text.index(quantity)
    value = float(quantity.removesuffix(unit))
    return {
        "indicator_id": f"{doc_id}-{start}", "document_id": doc_id,
        "section_id": f"{doc_id}-s0", "subject": subject, "value": value, "unit": unit,
        "value_base": value * factor, "unit_base": unit.lstrip("万亿"),
        "unit_family": family, "qualifier": "exact", "status": "actual", "measure": "level",
        "period": "2024", "quantity_text": quantity, "sentence": text.split("\n")[1],
        "char_start": start, "char_end": start + len(quantity),
    }  # fmt: skip


def rows(with_jobs: bool) -> dict[str, list[dict]]:
    """One report (two figures); with_jobs adds a second report (two more figures)."""
    out = {
        "documents": [_document("demo-2024", TEXT)],
        "sections": [_section("demo-2024", TEXT)],
        "indicators": [
            _figure("demo-2024", TEXT, "120万人次", f"接待游客{EVIL}", "万人次", 1e4, "people"),
            _figure("demo-2024", TEXT, "4.7亿元", "旅游总收入", "亿元", 1e8, "money"),
        ],
    }
    if with_jobs:
        out["documents"].append(_document("jobs-2024", JOBS))
        out["sections"].append(_section("jobs-2024", JOBS))
        out["indicators"] += [
            _figure("jobs-2024", JOBS, "4800人", "新增就业", "人", 1, "people"),
            _figure("jobs-2024", JOBS, "2.2亿元", "创业贷款", "亿元", 1e8, "money"),
        ]
    return out


def info(title: str = "Demo county figures") -> DatasetInfo:
    return DatasetInfo(
        name="demo",
        title=title,
        description=f"Figures from a made-up county report {EVIL}.",
        licenses=[{"name": "CC-BY-4.0", "path": "https://creativecommons.org/licenses/by/4.0/"}],
        sources=[{"title": "某县人民政府", "path": "javascript:alert(1)"}],
    )


def publish_rows(published: Path, data: dict[str, list[dict]], title: str, created: str):
    tables = {name: to_frame(name, data[name]) for name in TABLES}
    return publish(tables, info(title), published, created=created)


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """demo 1.0.0 (one report), then 1.1.0 (a report added).

    1.1.0's changes.json (written by publish, else here) gets a reason holding markup;
    CHANGELOG.md is replaced by one holding markup.
    """
    folder = tmp_path / "published"
    assert publish_rows(folder, rows(False), "Demo county figures", FIRST).version == "1.0.0"
    assert publish_rows(folder, rows(True), f"Demo {EVIL}", SECOND).version == "1.1.0"
    path = folder / "demo" / "1.1.0" / "changes.json"
    changes = json.loads(path.read_text("utf-8")) if path.exists() else {
        "dataset": "demo", "version": "1.1.0", "previous": "1.0.0", "bump": "minor",
        "created": SECOND, "reasons": [],
        "sources": {"added": ["jobs-2024"], "removed": [], "changed": []},
    }  # fmt: skip
    changes["reasons"].append(f"new source jobs-2024 {EVIL}: 2 indicators added")
    path.write_text(json.dumps(changes, ensure_ascii=False), "utf-8")
    (folder / "demo" / "CHANGELOG.md").write_text(
        f"# Changelog\n\n## 1.1.0 (`minor`)\n\n- new source {EVIL}\n- `jobs-2024` added\n",
        "utf-8",
    )
    return folder


def csv_records(path: Path) -> int:
    with open(path, encoding="utf-8", newline="") as fh:
        return len(list(csv.DictReader(fh)))


# ---------------------------------------------------------------------------- catalog


def test_catalog_describes_the_real_files(published: Path) -> None:
    path = write_catalog(published)
    assert path == published / "catalog.json"
    catalog = json.loads(path.read_text("utf-8"))
    assert list(catalog) == ["profile", "generated", "datasets"]
    assert catalog["profile"] == "reportdata-catalog/1"
    assert catalog["generated"] == SECOND
    [demo] = catalog["datasets"]
    assert list(demo) == [
        "name", "title", "description", "latest", "changelog", "duckdb", "page", "versions",
    ]  # fmt: skip
    latest = json.loads((published / "demo" / "latest.json").read_text("utf-8"))["version"]
    assert (demo["name"], demo["latest"], demo["title"]) == ("demo", latest, f"Demo {EVIL}")
    assert demo["changelog"] == "demo/CHANGELOG.md" and demo["page"] == "demo/index.html"
    whole = published / "demo" / "demo.duckdb"  # the all-versions file, when it was built
    assert demo["duckdb"] == ("demo/demo.duckdb" if whole.is_file() else None)
    assert [v["version"] for v in demo["versions"]] == ["1.1.0", "1.0.0"]
    newest, oldest = demo["versions"]
    bump = json.loads((published / "demo/1.1.0/changes.json").read_text("utf-8"))["bump"]
    assert bump == "minor"  # rows added
    assert (newest["created"], newest["bump"], newest["changes"]) == (
        SECOND, bump, "demo/1.1.0/changes.json",
    )  # fmt: skip
    first = published / "demo/1.0.0/changes.json"
    if first.is_file():
        first_bump = json.loads(first.read_text("utf-8"))["bump"]
        assert (oldest["created"], oldest["bump"]) == (FIRST, first_bump)
        assert oldest["changes"] == "demo/1.0.0/changes.json"
    else:
        assert (oldest["created"], oldest["bump"], oldest["changes"]) == (FIRST, None, None)

    for version in demo["versions"]:
        entries = [version["datapackage"], *version["resources"]]
        package = json.loads((published / version["datapackage"]["path"]).read_text("utf-8"))
        assert len(version["resources"]) == len(package["resources"])
        for entry in entries:
            data = (published / entry["path"]).read_bytes()
            assert entry["url"] == entry["path"]
            assert entry["bytes"] == len(data)
            assert entry["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
        for res in version["resources"]:
            file = published / res["path"]
            if res["format"] == "json":
                data = json.loads(file.read_text("utf-8"))
                if isinstance(data, list):  # a table
                    assert res["rows"] == len(data)
                else:  # not a table (changes.json): no row count
                    assert "rows" not in res
            elif res["format"] == "csv":
                assert res["rows"] == csv_records(file)
            else:
                assert res["format"] == "duckdb" and "rows" not in res
    by_name = {r["name"]: r for r in newest["resources"]}
    assert by_name["documents"]["rows"] == 2 == by_name["documents-json"]["rows"]
    assert by_name["indicators"]["rows"] == 4
    # The report text holds newlines: a line count would overcount the documents.
    documents_csv = (published / by_name["documents"]["path"]).read_text("utf-8")
    assert documents_csv.count("\n") - 1 > by_name["documents"]["rows"]


def test_a_rebuilt_catalog_reads_again_only_what_changed(
    published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reportdata.catalog as catalog_module

    write_catalog(published)
    before = json.loads((published / "catalog.json").read_text("utf-8"))
    hashed: list[str] = []
    counted: list[str] = []
    real_facts, real_count = catalog_module._file_facts, catalog_module.count_rows

    def facts(path: Path) -> tuple[int, str]:
        hashed.append(path.relative_to(published).as_posix())
        return real_facts(path)

    def count(path: Path, fmt: str) -> int | None:
        counted.append(path.relative_to(published).as_posix())
        return real_count(path, fmt)

    monkeypatch.setattr(catalog_module, "_file_facts", facts)
    monkeypatch.setattr(catalog_module, "count_rows", count)
    # Published versions never change: only each datapackage.json is hashed again.
    assert build_catalog(published) == before
    assert sorted(hashed) == ["demo/1.0.0/datapackage.json", "demo/1.1.0/datapackage.json"]
    assert counted == []

    # A file whose size differs from the recorded one is hashed and counted again.
    table = published / "demo/1.0.0/indicators.csv"
    table.write_bytes(table.read_bytes() + b"x,y\n")
    hashed.clear()
    rebuilt = build_catalog(published)
    [old] = [v for v in rebuilt["datasets"][0]["versions"] if v["version"] == "1.0.0"]
    entry = next(r for r in old["resources"] if r["path"] == "demo/1.0.0/indicators.csv")
    assert entry["hash"] == "sha256:" + hashlib.sha256(table.read_bytes()).hexdigest()
    assert entry["rows"] == csv_records(table)
    assert "demo/1.0.0/indicators.csv" in hashed and "demo/1.1.0/indicators.csv" not in hashed


def test_a_forged_previous_catalog_is_not_trusted(published: Path) -> None:
    write_catalog(published)
    path = published / "catalog.json"
    honest = json.loads(path.read_text("utf-8"))
    forged = json.loads(path.read_text("utf-8"))
    version = forged["datasets"][0]["versions"][0]
    version["resources"][0]["rows"] = 999_999  # a claim the files do not back
    version["resources"].append(
        {"name": "x", "format": "csv", "path": "../../etc/passwd", "bytes": 1, "hash": "sha256:0"}
    )
    path.write_text(json.dumps(forged), "utf-8")
    assert build_catalog(published) == honest
    path.write_text("{not json", "utf-8")
    assert build_catalog(published) == honest


def test_base_url_makes_every_url_absolute(published: Path) -> None:
    catalog = build_catalog(published, base_url="https://data.example.org/open/")
    entries = [
        e
        for d in catalog["datasets"]
        for v in d["versions"]
        for e in [v["datapackage"], *v["resources"]]
    ]
    assert entries
    for entry in entries:
        assert entry["url"] == "https://data.example.org/open/" + entry["path"]
    with pytest.raises(PublishError, match="not an absolute URL"):
        build_catalog(published, base_url="data.example.org")


def test_catalog_bytes_are_deterministic(published: Path, tmp_path: Path) -> None:
    first = write_catalog(published).read_bytes()
    assert write_catalog(published).read_bytes() == first
    copy = tmp_path / "copy"
    shutil.copytree(published, copy)  # new mtimes, new inodes, same content
    (copy / "catalog.json").unlink()
    assert write_catalog(copy).read_bytes() == first
    assert not list(published.glob(".catalog.json.*"))  # no temporary file left behind


def test_latest_follows_latest_json(published: Path) -> None:
    (published / "demo" / "latest.json").write_text('{"version": "1.0.0", "path": "1.0.0"}')
    [demo] = build_catalog(published)["datasets"]
    assert demo["latest"] == "1.0.0"
    assert demo["title"] == "Demo county figures"  # the metadata of the latest version
    assert [v["version"] for v in demo["versions"]] == ["1.1.0", "1.0.0"]


def test_a_version_without_changes_json_has_no_bump(published: Path) -> None:
    folder = published / "demo" / "1.0.0"
    (folder / "changes.json").unlink(missing_ok=True)
    package = json.loads((folder / "datapackage.json").read_text("utf-8"))
    package["resources"] = [r for r in package["resources"] if r["path"] != "changes.json"]
    (folder / "datapackage.json").write_text(json.dumps(package), "utf-8")
    [demo] = build_catalog(published)["datasets"]
    oldest = demo["versions"][1]
    assert (oldest["version"], oldest["bump"], oldest["changes"]) == ("1.0.0", None, None)
    assert demo["versions"][0]["bump"] == "minor"


def test_a_missing_resource_file_is_an_error(published: Path) -> None:
    (published / "demo" / "1.0.0" / "sections.csv").unlink()
    with pytest.raises(PublishError, match=r"sections\.csv"):
        build_catalog(published)


def test_catalog_of_an_empty_or_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "half").mkdir()  # a dataset folder without any complete version
    assert build_catalog(tmp_path / "empty") == {
        "profile": "reportdata-catalog/1", "generated": None, "datasets": [],
    }  # fmt: skip
    with pytest.raises(PublishError, match="does not exist"):
        build_catalog(tmp_path / "nowhere")


def test_a_resource_path_leaving_its_folder_is_refused(published: Path) -> None:
    descriptor = published / "demo" / "1.0.0" / "datapackage.json"
    package = json.loads(descriptor.read_text("utf-8"))
    package["resources"][0]["path"] = "../../secret.csv"
    descriptor.write_text(json.dumps(package), "utf-8")
    with pytest.raises(PublishError, match="not a plain relative path"):
        build_catalog(published)


# ---------------------------------------------------------------------------- site


def test_site_escapes_everything_from_the_data(published: Path) -> None:
    write_catalog(published)
    paths = write_site(published)
    assert paths == [published / "index.html", published / "demo" / "index.html"]
    escaped = html.escape(EVIL, quote=True)
    for path in paths:
        page = path.read_text("utf-8")
        assert page.startswith("<!DOCTYPE html>")
        assert '<html lang="zh-CN">' in page and '<meta charset="utf-8">' in page
        assert "<script" not in page.lower()  # the pages carry no script, the data none either
        assert f"Demo {escaped}" in page  # the title, shown escaped
    dataset = paths[1].read_text("utf-8")
    svg_texts = re.findall(r"<svg.*?</svg>", dataset, flags=re.S)
    assert any(escaped in svg for svg in svg_texts)  # section heading and subject in charts
    assert f"new source jobs-2024 {escaped}" in dataset  # reasons from changes.json
    assert 'href="javascript:' not in dataset  # a source path that is no http(s) URL is no link
    hrefs = re.findall(r'href="([^"]*)"', dataset)
    external = [h for h in hrefs if "://" in h]
    assert external == ["https://creativecommons.org/licenses/by/4.0/"]
    for link in hrefs:
        if link not in external:
            target = (paths[1].parent / html.unescape(link)).resolve()
            assert target.is_file(), link


def test_dataset_page_shows_history_changelog_columns_and_downloads(published: Path) -> None:
    write_site(published)
    page = (published / "demo" / "index.html").read_text("utf-8")
    for version in ("1.1.0", "1.0.0"):
        assert f'<tr data-version="{version}">' in page
        for name in ("indicators.csv", "documents.json", "datapackage.json"):
            assert f'href="{version}/{name}"' in page
    assert page.count('href="demo.duckdb"') == 1  # every version in one DuckDB file
    for version in ("1.1.0", "1.0.0"):
        linked = page.count(f'href="{version}/changes.json"')  # once, with the metadata
        assert linked == int((published / "demo" / version / "changes.json").is_file())
    assert "<h3>Changelog</h3>" in page and "<li><code>jobs-2024</code> added</li>" in page
    schema = json.loads((SCHEMAS / "indicators.json").read_text("utf-8"))
    for field in schema["fields"]:
        assert html.escape(field["description"], quote=True) in page


def test_site_bytes_are_deterministic(published: Path) -> None:
    first = [p.read_bytes() for p in write_site(published)]
    assert [p.read_bytes() for p in write_site(published)] == first


# ---------------------------------------------------------------------------- pieces


def test_charts_sum_and_rank_the_figures() -> None:
    data = rows(True)
    sections = data["sections"]
    money = [r for r in data["indicators"] if r["unit_family"] == "money"]
    by_section = money_by_section(data["indicators"], sections)
    expected = {
        s["heading"]: sum(r["value_base"] for r in money if r["section_id"] == s["section_id"])
        for s in sections
    }
    assert {b.label: b.value for b in by_section} == expected
    assert [b.value for b in by_section] == sorted(expected.values(), reverse=True)
    top = largest_money(data["indicators"], limit=1)
    biggest = max(money, key=lambda r: r["value_base"])
    assert [(b.label, b.text) for b in top] == [(biggest["subject"], biggest["quantity_text"])]
    counted = {b.label: b.value for b in figures_by_family(data["indicators"])}
    families = [r["unit_family"] for r in data["indicators"]]
    assert sorted(counted.values()) == sorted(families.count(f) for f in set(families))
    assert all(any(f"({f})" in label for label in counted) for f in families)


def test_render_markdown_is_safe_and_small() -> None:
    out = render_markdown("# Title <b>\n\n- one `a<b`\n* two\nplain & text\n")
    assert out == (
        "<h3>Title &lt;b&gt;</h3>\n<ul>\n<li>one <code>a&lt;b</code></li>\n<li>two</li>\n"
        "</ul>\n<p>plain &amp; text</p>"
    )


def test_csv_rows_are_records_not_lines(tmp_path: Path) -> None:
    from reportdata.catalog import count_rows

    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([["id", "text"], ["a", "x\ny\nz"], ["b", ""]])
    path = tmp_path / "t.csv"
    path.write_text(out.getvalue(), "utf-8")
    assert count_rows(path, "csv") == 2
