"""Publishing versioned Data Packages (CSV, JSON, DuckDB) and checking them with Frictionless."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from reportdata.errors import PublishError, ValidationFailed
from reportdata.publish import (
    DatasetInfo,
    format_number,
    latest_version,
    publish,
    read_package,
)
from reportdata.schema import TABLES, to_frame
from reportdata.validate import validate_package

TEXT = "一、旅游\n全年接待游客120万人次，旅游总收入4.7亿元。"
JOBS_TEXT = "二、就业\n城镇新增就业4800人。"
CREATED = "2025-01-02T03:04:05Z"
INFO = DatasetInfo(
    name="demo",
    title="Demo county reports",
    description="Figures from a made-up county report.",
    licenses=[{"name": "CC-BY-4.0", "path": "https://creativecommons.org/licenses/by/4.0/",
               "title": "Creative Commons Attribution 4.0"}],
    sources=[{"title": "某县人民政府", "path": "https://example.org/report"}],
    contributors=[{"title": "reportdata", "role": "author"}],
)  # fmt: skip


def _document(doc_id: str, text: str) -> dict:
    return {
        "document_id": doc_id, "dataset": "demo", "title": "某县政府工作报告", "subtitle": "",
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


def _indicator(
    doc_id: str,
    text: str,
    quantity: str,
    subject: str,
    value: float,
    unit: str,
    factor: float,
    unit_base: str,
    family: str,
) -> dict:
    start = text.index(quantity)
    return {
        "indicator_id": f"{doc_id}-{start}", "document_id": doc_id,
        "section_id": f"{doc_id}-s0", "subject": subject, "value": value, "unit": unit,
        "value_base": value * factor, "unit_base": unit_base, "unit_family": family,
        "qualifier": "exact", "status": "actual", "measure": "level", "period": "2024",
        "quantity_text": quantity, "sentence": text.split("\n")[1], "char_start": start,
        "char_end": start + len(quantity),
    }  # fmt: skip


def sample_tables(with_jobs: bool = False) -> dict[str, pd.DataFrame]:
    """One report (two figures); with_jobs adds a second report with one more figure."""
    doc, jobs = "demo-2024", "jobs-2024"
    docs, secs = [_document(doc, TEXT)], [_section(doc, TEXT)]
    inds = [
        _indicator(doc, TEXT, "120万人次", "接待游客", 120, "万人次", 1e4, "人次", "people"),
        _indicator(doc, TEXT, "4.7亿元", "旅游总收入", 4.7, "亿元", 1e8, "元", "money"),
    ]
    if with_jobs:
        docs.append(_document(jobs, JOBS_TEXT))
        secs.append(_section(jobs, JOBS_TEXT))
        inds.append(
            _indicator(jobs, JOBS_TEXT, "4800人", "新增就业", 4800, "人", 1, "人", "people")
        )
    rows = {"documents": docs, "sections": secs, "indicators": inds}
    return {name: to_frame(name, rows[name]) for name in TABLES}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` with its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def published(tmp_path: Path) -> Path:
    return tmp_path / "published"


# ---------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [(4800.0, "4800"), (4.7, "4.7"), (0.1 + 0.2, "0.30000000000000004"), (-0.0, "0"),
     (1e20, "1e+20"), (1_200_000.0, "1200000"), (0.05, "0.05")],
)  # fmt: skip
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text


# ---------------------------------------------------------------------------- publish


def test_publish_writes_a_valid_package(published: Path) -> None:
    result = publish(sample_tables(with_jobs=True), INFO, published, created=CREATED)
    assert (result.dataset, result.version, result.new) == ("demo", "1.0.0", True)
    assert result.path == published / "demo" / "1.0.0"
    names = sorted(p.name for p in result.path.iterdir())
    data_files = [f"{t}.{ext}" for t in TABLES for ext in ("csv", "json")]
    # and, hidden, where each source's rows lie (for the next version; never mirrored)
    assert names == sorted(["datapackage.json", "changes.json", ".blocks.json", *data_files])
    assert json.loads((published / "demo" / "latest.json").read_text()) == {
        "version": "1.0.0",
        "path": "1.0.0",
    }
    assert latest_version(published, "demo") == "1.0.0"

    csv_text = (result.path / "indicators.csv").read_bytes().decode("utf-8")
    assert "\r" not in csv_text
    lines = csv_text.split("\n")
    assert lines[0].startswith("indicator_id,document_id,section_id,subject,value,unit,")
    assert lines[1].startswith("demo-2024-11,demo-2024,demo-2024-s0,接待游客,120,万人次,1200000,")
    assert ",4.7,亿元,470000000,元," in lines[2]
    assert ",4800,人,4800,人," in lines[3]  # rows sorted by indicator_id
    docs_csv = (result.path / "documents.csv").read_text(encoding="utf-8")
    assert '"一、旅游\n全年接待游客' in docs_csv  # the multi-line text is quoted

    rows = json.loads((result.path / "indicators.json").read_text(encoding="utf-8"))
    assert [r["indicator_id"] for r in rows] == ["demo-2024-11", "demo-2024-23", "jobs-2024-11"]
    assert list(rows[0]) == list(sample_tables()["indicators"].columns)
    assert rows[2]["value"] == 4800 and isinstance(rows[2]["value"], int)
    assert rows[1]["value"] == 4.7
    assert "旅游" in (result.path / "indicators.json").read_text(encoding="utf-8")

    package = read_package(published, "demo")
    assert package["$schema"] == "https://datapackage.org/profiles/2.0/datapackage.json"
    assert package["version"] == "1.0.0" and package["created"] == CREATED
    assert package["reportdata:fingerprint"].startswith("sha256:")
    assert package["contributors"] == [{"title": "reportdata", "roles": ["author"]}]
    resources = {r["name"]: r for r in package["resources"]}
    table = resources["indicators"]
    assert table["type"] == "table" and table["format"] == "csv"
    assert table["schema"]["primaryKey"] == ["indicator_id"]
    data = (result.path / "indicators.csv").read_bytes()
    assert table["bytes"] == len(data)
    assert table["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert resources["changes"]["path"] == "changes.json"
    assert resources["indicators-json"]["mediatype"] == "application/json"

    report = validate_package(result.path / "datapackage.json")
    assert report.ok, report.errors
    assert report.counts == {"documents": 2, "sections": 2, "indicators": 3}


def test_frictionless_cli_validates_the_package(published: Path) -> None:
    result = publish(sample_tables(), INFO, published, created=CREATED)
    cli = Path(sys.executable).parent / "frictionless"
    run = subprocess.run(
        [str(cli), "validate", str(result.path / "datapackage.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_dataset_duckdb_opens_read_only(published: Path) -> None:
    publish(sample_tables(), INFO, published, created=CREATED)
    con = duckdb.connect(str(published / "demo" / "demo.duckdb"), read_only=True)
    try:
        rows = con.sql(
            "select indicator_id, value_base from latest_indicators order by 1"
        ).fetchall()
        assert rows == [("demo-2024-11", 1_200_000.0), ("demo-2024-23", 470_000_000.0)]
        comments = con.sql(
            "select count(*) from duckdb_columns() where comment is not null"
        ).fetchall()
        # every column of the three tables, plus the version column each carries
        assert comments[0][0] >= sum(len(sample_tables()[t].columns) for t in TABLES)
    finally:
        con.close()


def test_identical_tables_publish_nothing(published: Path) -> None:
    first = publish(sample_tables(), INFO, published, created=CREATED)
    before = snapshot(published)
    again = publish(sample_tables(), INFO, published, created="2030-01-01T00:00:00Z")
    assert (again.version, again.new, again.path) == ("1.0.0", False, first.path)
    assert snapshot(published) == before


def test_every_file_of_a_version_is_on_disk_before_its_folder_is_renamed_into_place(
    published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from reportdata import publish as publishing

    events: list[tuple[str, str]] = []
    real_fsync, real_rename = publishing._fsync_files, os.rename

    def fsync_files(paths: list[Path]) -> None:
        real_fsync(paths)
        events.extend(("synced", p.name) for p in paths)

    def rename(src, dst) -> None:
        events.append(("renamed", Path(dst).name))
        real_rename(src, dst)

    monkeypatch.setattr(publishing, "_fsync_files", fsync_files)
    monkeypatch.setattr(publishing.os, "rename", rename)
    publish(sample_tables(), INFO, published, created=CREATED)
    written = sorted(p.name for p in (published / "demo" / "1.0.0").iterdir())
    assert events[-1] == ("renamed", "1.0.0")
    assert sorted(name for kind, name in events[:-1] if kind == "synced") == written


def test_a_version_that_cannot_be_synced_to_disk_is_not_published(
    published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reportdata import publish as publishing

    def no_disk(paths: list[Path]) -> None:
        raise OSError(5, "Input/output error")

    publish(sample_tables(), INFO, published, created=CREATED)
    monkeypatch.setattr(publishing, "_fsync_files", no_disk)
    with pytest.raises(PublishError, match="Input/output error"):
        publish(sample_tables(with_jobs=True), INFO, published, created=CREATED)
    assert sorted(p.name for p in (published / "demo").iterdir() if not p.is_file()) == ["1.0.0"]
    assert latest_version(published, "demo") == "1.0.0"


def test_changes_make_new_versions_and_leave_old_ones_alone(published: Path) -> None:
    publish(sample_tables(), INFO, published, created=CREATED)
    v1 = snapshot(published / "demo" / "1.0.0")

    added = publish(sample_tables(with_jobs=True), INFO, published, created=CREATED)
    assert (added.version, added.new) == ("1.1.0", True)  # rows only added: MINOR

    changed_tables = sample_tables(with_jobs=True)
    changed_tables["indicators"].loc[0, "subject"] = "全年接待游客"
    changed = publish(changed_tables, INFO, published, created=CREATED)
    assert (changed.version, changed.new) == ("1.1.1", True)  # a row changed: PATCH

    assert snapshot(published / "demo" / "1.0.0") == v1
    assert latest_version(published, "demo") == "1.1.1"
    assert read_package(published, "demo", "1.0.0")["version"] == "1.0.0"
    for version in ("1.0.0", "1.1.0", "1.1.1"):
        assert validate_package(published / "demo" / version / "datapackage.json").ok


def test_each_version_records_its_changes_and_the_changelog_names_them(published: Path) -> None:
    publish(sample_tables(), INFO, published, created=CREATED)
    publish(sample_tables(with_jobs=True), INFO, published, created="2025-02-03T00:00:00Z")
    first = json.loads((published / "demo" / "1.0.0" / "changes.json").read_text("utf-8"))
    second = json.loads((published / "demo" / "1.1.0" / "changes.json").read_text("utf-8"))
    assert (first["bump"], first["previous"]) == ("initial", None)
    assert (second["bump"], second["previous"]) == ("minor", "1.0.0")
    added = second["tables"]["indicators"]["added"]
    assert added and all(row["subject"] for row in added)
    assert second["tables"]["indicators"]["counts"]["added"] == len(added)
    changelog = (published / "demo" / "CHANGELOG.md").read_text("utf-8")
    assert changelog.index("## 1.1.0 — 2025-02-03 (minor)") < changelog.index("## 1.0.0")
    assert "`jobs-2024`" in changelog.split("## 1.0.0")[0]  # the source behind 1.1.0


def test_metadata_only_changes_make_a_patch(published: Path) -> None:
    publish(sample_tables(), INFO, published, created=CREATED)
    retitled = DatasetInfo(**{**INFO.__dict__, "title": "Demo county reports, retitled"})
    result = publish(sample_tables(), retitled, published, created=CREATED)
    assert (result.version, result.new) == ("1.0.1", True)
    changes = json.loads((result.path / "changes.json").read_text("utf-8"))
    assert changes["metadata"] == [{"property": "title", "old": INFO.title, "new": retitled.title}]


def test_a_removed_source_makes_a_major_version(published: Path) -> None:
    publish(sample_tables(with_jobs=True), INFO, published, created=CREATED)
    result = publish(sample_tables(), INFO, published, created=CREATED)
    assert result.version == "2.0.0"
    changes = json.loads((result.path / "changes.json").read_text("utf-8"))
    assert changes["sources"]["removed"] == ["jobs-2024"]


def test_created_follows_source_date_epoch(published: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result = publish(sample_tables(), INFO, published)
    assert read_package(published, "demo", result.version)["created"] == "2023-11-14T22:13:20Z"


def test_leftover_temporary_folders_are_removed(published: Path) -> None:
    leftover = published / "demo" / ".tmp-1.0.0-deadbeef"
    leftover.mkdir(parents=True)
    (leftover / "indicators.csv").write_text("half a release")
    result = publish(sample_tables(), INFO, published, created=CREATED)
    assert result.new
    assert not leftover.exists()
    assert not list((published / "demo").glob(".tmp-*"))


def test_missing_latest_pointer_is_repaired(published: Path) -> None:
    publish(sample_tables(), INFO, published, created=CREATED)
    (published / "demo" / "latest.json").unlink()  # as if the publisher died before writing it
    result = publish(sample_tables(), INFO, published, created=CREATED)
    assert (result.version, result.new) == ("1.0.0", False)
    assert json.loads((published / "demo" / "latest.json").read_text())["version"] == "1.0.0"


def test_an_existing_version_folder_is_never_rewritten(published: Path) -> None:
    squatter = published / "demo" / "1.0.0"
    squatter.mkdir(parents=True)
    (squatter / "note.txt").write_text("not ours")
    with pytest.raises(PublishError, match="never rewritten"):
        publish(sample_tables(), INFO, published, created=CREATED)
    assert [p.name for p in squatter.iterdir()] == ["note.txt"]


def test_unwritable_published_dir_raises_publish_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the published folder should be")
    with pytest.raises(PublishError, match="Cannot write to the published folder"):
        publish(sample_tables(), INFO, blocker / "published", created=CREATED)


def test_invalid_tables_are_not_published(published: Path) -> None:
    tables = sample_tables()
    tables["indicators"].loc[0, "value_base"] = 1.0
    with pytest.raises(ValidationFailed, match="Nothing was published"):
        publish(tables, INFO, published, created=CREATED)
    assert not (published / "demo").exists()
    assert latest_version(published, "demo") is None
    with pytest.raises(PublishError, match="no published version"):
        read_package(published, "demo")


def test_validate_package_reports_tampering(published: Path) -> None:
    result = publish(sample_tables(), INFO, published, created=CREATED)
    target = published / "tampered"
    target.mkdir()
    for p in result.path.iterdir():
        (target / p.name).write_bytes(p.read_bytes())
    csv_path = target / "indicators.csv"
    csv_path.write_bytes(csv_path.read_bytes().replace(b",4.7,", b",4.8,"))
    report = validate_package(target / "datapackage.json")
    assert not report.ok
    assert ("indicators", "hash-count") in {(e["table"], e["check"]) for e in report.errors}
    assert "failed" in report.summary()


def test_a_written_package_that_fails_frictionless_is_not_published(
    published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reportdata.publish as pub

    real = pub.render_csv

    def broken(name: str, rows: list) -> bytes:
        data = real(name, rows)
        return data.replace(b"indicator_id", b"indicator_no", 1) if name == "indicators" else data

    monkeypatch.setattr(pub, "render_csv", broken)
    with pytest.raises(ValidationFailed, match="frictionless"):
        publish(sample_tables(), INFO, published, created=CREATED)
    assert latest_version(published, "demo") is None
    assert [p.name for p in (published / "demo").iterdir() if not p.name.startswith(".")] == []
    assert not list((published / "demo").glob(".tmp-*"))
