"""Releases as their users meet them, through the real commands against a Prefect server:
a second report makes a MINOR version whose changelog names it, `diff` says what changed,
the all-versions DuckDB answers the README's queries, a downloaded version verifies and a
tampered one is refused, and two fresh clones publish byte-identical files."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
from conftest import ROOT

from reportdata.warehouse import README_QUERIES

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).with_name("reportdata")
# A short report written for this test (not taken from any real document).
SECOND_REPORT = (
    "历下区2022年民生工作简报\n\n"
    "一、就业\n\n"
    "2022年,全区城镇新增就业2.6万人,发放创业担保贷款3.2亿元。\n\n"
    "二、教育\n\n"
    "新建改扩建中小学5所,新增学位6800个。\n"
)


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _env(server_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    return {**env, "PREFECT_API_URL": server_url, "PYTHONIOENCODING": "utf-8", **extra}


@contextmanager
def _serve(folder: Path) -> Iterator[str]:
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _rows(path: Path) -> list[dict]:
    return json.loads(path.read_text("utf-8"))


def test_a_second_report_makes_a_minor_version_people_can_diff_query_and_download(
    prefect_server, project_copy, tmp_path
):
    env = _env(prefect_server)
    first = _cli("run", "--no-progress", cwd=project_copy, env=env)
    assert first.returncode == 0, first.stderr
    assert "lixia: published version 1.0.0" in first.stdout

    report = tmp_path / "lixia-2022-brief.txt"
    report.write_text(SECOND_REPORT, encoding="utf-8")
    added = _cli(
        "add", str(report), "--dataset", "lixia", "--id", "lixia-2022-brief",
        "--publisher", "历下区人民政府", "--area", "济南市历下区", "--published", "2022",
        cwd=project_copy, env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    mirror = tmp_path / "mirror"
    second = _cli(
        "run", "--no-progress", "--publish-to", mirror.as_uri(), cwd=project_copy, env=env
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "lixia: published version 1.1.0" in second.stdout
    assert json.loads((mirror / "lixia/latest.json").read_text("utf-8"))["version"] == "1.1.0"
    for name in ("datapackage.json", "indicators.csv", "changes.json"):
        copied = (mirror / "lixia/1.1.0" / name).read_bytes()
        assert copied == (project_copy / "published/lixia/1.1.0" / name).read_bytes()

    published = project_copy / "published"
    changes = json.loads((published / "lixia/1.1.0/changes.json").read_text("utf-8"))
    assert (changes["bump"], changes["previous"]) == ("minor", "1.0.0")
    assert changes["sources"]["added"] == ["lixia-2022-brief"]
    new_rows = [r for r in _rows(published / "lixia/1.1.0/indicators.json")]
    brief = [r for r in new_rows if r["document_id"] == "lixia-2022-brief"]
    assert {r["quantity_text"] for r in brief} >= {"2.6万人", "3.2亿元", "6800个"}
    assert changes["tables"]["indicators"]["counts"]["added"] == len(brief)
    changelog = (published / "lixia/CHANGELOG.md").read_text("utf-8")
    newest = changelog.split("## 1.0.0")[0]
    assert "## 1.1.0" in newest and "`lixia-2022-brief`" in newest and "(minor)" in newest

    diff = _cli("diff", "lixia", "1.0.0", "1.1.0", cwd=project_copy, env=env)
    assert diff.returncode == 0, diff.stderr
    assert "lixia 1.0.0 → 1.1.0: minor" in diff.stdout
    assert "lixia-2022-brief" in diff.stdout
    assert f"{len(brief)} added" in diff.stdout

    # SQL across versions: the stable DuckDB file answers the README's three questions.
    con = duckdb.connect(str(published / "lixia/lixia.duckdb"), read_only=True)
    try:
        versions = con.sql("select version, is_latest from versions order by version").fetchall()
        largest, changed, by_section = (con.sql(sql).fetchall() for _, sql in README_QUERIES)
    finally:
        con.close()
    assert versions == [("1.0.0", False), ("1.1.0", True)]
    money = [r for r in new_rows if r["unit_family"] == "money"]
    assert largest[0][2] == max(r["value_base"] for r in money)
    assert {row[1] for row in changed if row[0] == "added"} == {r["indicator_id"] for r in brief}
    sections = _rows(published / "lixia/1.1.0/sections.json")
    assert sum(row[3] for row in by_section) == len(new_rows)
    assert len(by_section) == len(sections)

    # The catalog leads to the new version, which downloads and verifies; a tampered copy
    # of the same release is refused and leaves nothing behind.
    catalog = json.loads((published / "catalog.json").read_text("utf-8"))
    assert [v["version"] for v in catalog["datasets"][0]["versions"]] == ["1.1.0", "1.0.0"]
    with _serve(published) as base:
        got = _cli(
            "download", f"{base}/catalog.json", "--dataset", "lixia", "--to", "dl",
            cwd=tmp_path, env=env,
        )  # fmt: skip
    assert got.returncode == 0, got.stderr
    for name in ("indicators.csv", "indicators.json", "datapackage.json", "changes.json"):
        downloaded = (tmp_path / "dl/lixia/1.1.0" / name).read_bytes()
        assert downloaded == (published / "lixia/1.1.0" / name).read_bytes()

    tampered = tmp_path / "tampered"
    shutil.copytree(published, tampered)
    csv_path = tampered / "lixia/1.1.0/indicators.csv"
    csv_path.write_bytes(csv_path.read_bytes().replace(b"3.2", b"9.2", 1))
    with _serve(tampered) as base:
        refused = _cli(
            "download", f"{base}/lixia/1.1.0/datapackage.json", "--to", "bad",
            cwd=tmp_path, env=env,
        )  # fmt: skip
    assert refused.returncode != 0
    assert refused.stderr.strip().startswith("error: ") and "indicators.csv" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").rglob("*"))


def _clone(tmp: Path, name: str) -> Path:
    """A fresh copy of the repository's tracked files, as a clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    target = tmp / name / "main"
    for rel in filter(None, (p.decode() for p in listed)):
        src = ROOT / rel
        if src.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / rel)
    return target


def _published_digests(root: Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    """Digests of the published files (not the hidden ones: locks and the warehouse build's
    memo of file stamps, which are never mirrored or listed)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "published").rglob("*"))
        if p.is_file() and p.suffix in suffixes and not p.name.startswith(".")
    }


def test_two_fresh_clones_publish_byte_identical_files(prefect_server, tmp_path):
    text = (".csv", ".json", ".md", ".html")
    digests = []
    for name in ("a", "b"):
        clone = _clone(tmp_path, name)
        done = _cli(
            "run",
            "--no-progress",
            cwd=clone,
            env=_env(prefect_server, SOURCE_DATE_EPOCH="1700000000"),
        )
        assert done.returncode == 0, done.stderr
        digests.append(_published_digests(clone, text))
    assert digests[0] == digests[1]
    assert any(k.endswith("1.0.0/indicators.csv") for k in digests[0])

    # Without a fixed date only `created` may differ: the tables' files are the same bytes.
    clone = _clone(tmp_path, "c")
    done = _cli("run", "--no-progress", cwd=clone, env=_env(prefect_server))
    assert done.returncode == 0, done.stderr
    tables = {k: v for k, v in digests[0].items() if k.split("/")[-1].split(".")[0] in
              ("documents", "sections", "indicators")}  # fmt: skip
    assert len(tables) == 6
    assert {k: v for k, v in _published_digests(clone, text).items() if k in tables} == tables


def test_a_mirror_that_fails_keeps_the_local_release_and_the_next_run_completes_it(
    prefect_server, project_copy, tmp_path
):
    """The local version is published before the mirror: the sentence says where it is, and
    the next run with the same --publish-to finishes the copy."""
    env = _env(prefect_server)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the mirror's folder should be\n")
    target = (blocker / "mirror").as_uri()
    failed = _cli("run", "--no-progress", "--publish-to", target, cwd=project_copy, env=env)
    assert failed.returncode == 1
    (line,) = failed.stderr.strip().splitlines()
    local = project_copy / "published" / "lixia" / "1.0.0"
    assert line.startswith(f"error: Could not mirror to {target}: ")
    assert line.endswith(
        f" Version 1.0.0 of lixia is published in {local}; the next run with --publish-to "
        "completes the mirror."
    )
    assert (local / "datapackage.json").is_file()

    blocker.unlink()
    again = _cli("run", "--no-progress", "--publish-to", target, cwd=project_copy, env=env)
    assert again.returncode == 0, again.stderr
    assert "lixia: unchanged, latest is version 1.0.0" in again.stdout
    mirrored = blocker / "mirror" / "lixia"
    assert json.loads((mirrored / "latest.json").read_text("utf-8"))["version"] == "1.0.0"
    assert (mirrored / "1.0.0" / "indicators.csv").read_bytes() == (
        local / "indicators.csv"
    ).read_bytes()
