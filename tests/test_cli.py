"""The real console script, run in subprocesses: help, extract, add, pull and validate.

No Prefect here: the package that `validate` checks is published with the library's own steps.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from _helpers import EMBEDDED, SENTENCES, files_under, make_project, run_cli

from reportdata import cli, pipeline
from reportdata.layout import structure
from reportdata.project import load
from reportdata.pull import pull

GUIDE_COLUMNS = [
    "subject", "value", "unit", "value_base", "unit_base", "unit_family", "qualifier",
    "status", "measure", "period", "quantity_text", "sentence", "char_start", "char_end",
]  # fmt: skip
BINARY = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def one_error_line(result) -> str:
    """The user-error contract: non-zero exit, one line on stderr starting 'error:', no trace."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    path = tmp_path / "county.txt"
    path.write_text(SENTENCES, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ help


def test_app_help_lists_every_command(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "Usage: reportdata" in result.stdout
    for name in ("run", "add", "pull", "extract", "validate"):
        assert re.search(rf"^\s+{name}\s+\S", result.stdout, re.M), name


@pytest.mark.parametrize("command", ["run", "add", "pull", "extract", "validate"])
def test_command_help_describes_the_command(tmp_path: Path, command: str) -> None:
    result = run_cli(command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Usage: reportdata {command}" in result.stdout
    summary = inspect.getdoc(getattr(cli, command)).split("\n\n")[0]
    assert squash(summary) in squash(result.stdout)
    if command != "extract":
        assert "--project" in result.stdout


# ------------------------------------------------------------------------------ extract


def jsonl_rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_extract_jsonl_rows_carry_the_guide_columns(report: Path) -> None:
    result = run_cli("extract", str(report), "--format", "jsonl", cwd=report.parent)
    assert result.returncode == 0, result.stderr
    rows = jsonl_rows(result.stdout)
    assert rows
    repaired = structure(SENTENCES).text  # the offsets point into the layout-repaired text
    for row in rows:
        assert list(row) == GUIDE_COLUMNS
        assert repaired[row["char_start"] : row["char_end"]] == row["quantity_text"]
        assert row["quantity_text"] in row["sentence"]
        assert row["sentence"] in SENTENCES

    by_text = {row["quantity_text"]: row for row in rows}
    income = by_text["8.6亿元"]
    assert (income["value"], income["unit"], income["unit_base"]) == (8.6, "亿元", "元")
    assert income["value_base"] == pytest.approx(8.6e8)
    assert income["unit_family"] == "money"
    assert "旅游收入" in income["subject"]
    assert income["period"] == "2023"
    visitors = by_text["120万人次"]
    assert visitors["value_base"] == pytest.approx(1.2e6)
    assert visitors["unit_base"] == "人次"
    loans = by_text["4500万元"]
    assert loans["value_base"] == pytest.approx(4.5e7)
    assert "贷款" in loans["subject"]
    assert by_text["3200人"]["value"] == 3200


def test_extract_csv_has_the_guide_header(report: Path) -> None:
    as_csv = run_cli("extract", str(report), "-f", "csv", cwd=report.parent)
    as_jsonl = run_cli("extract", str(report), "-f", "jsonl", cwd=report.parent)
    assert as_csv.returncode == 0, as_csv.stderr
    reader = csv.DictReader(io.StringIO(as_csv.stdout))
    assert reader.fieldnames == GUIDE_COLUMNS
    rows = list(reader)
    expected = jsonl_rows(as_jsonl.stdout)
    assert [r["quantity_text"] for r in rows] == [r["quantity_text"] for r in expected]
    assert [int(r["char_start"]) for r in rows] == [r["char_start"] for r in expected]
    assert [float(r["value_base"]) for r in rows] == [r["value_base"] for r in expected]


def test_extract_table_for_people(report: Path) -> None:
    result = run_cli("extract", str(report), cwd=report.parent)
    assert result.returncode == 0, result.stderr
    for column in GUIDE_COLUMNS[:11]:
        assert column in result.stdout
    for quantity in ("8.6亿元", "120万人次", "3200人", "4500万元"):
        assert quantity in result.stdout


def test_extract_refuses_an_unknown_format(report: Path) -> None:
    result = run_cli("extract", str(report), "--format", "xml", cwd=report.parent)
    assert result.returncode != 0
    assert "--format" in result.stderr
    assert "jsonl" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "--wait", "-5"], "Invalid value for '--wait'"),
        (["run", "--workers", "0"], "Invalid value for '--workers'"),
        (["run", "--workers", "two"], "Invalid value for '--workers'"),
        (["run", "--no-such-option"], "No such option: --no-such-option"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_a_bad_option_value_is_a_usage_error_not_a_traceback(
    tmp_path: Path, args: list[str], said: str
) -> None:
    """Typer checks these values with its own copy of click: still the usage, one error
    line and exit 2."""
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("Usage: reportdata")
    assert lines[-1].startswith(f"Error: {said}")
    assert len(lines) <= 3


@pytest.mark.parametrize("kind", ["missing", "folder", "binary", "empty"])
def test_extract_user_errors_are_one_line(tmp_path: Path, kind: str) -> None:
    target = tmp_path / f"{kind}.txt"
    if kind == "folder":
        target.mkdir()
    elif kind == "binary":
        target.write_bytes(BINARY)
    elif kind == "empty":
        target.write_bytes(b"")
    line = one_error_line(run_cli("extract", str(target), "-f", "jsonl", cwd=tmp_path))
    if kind in ("missing", "folder"):
        assert str(target) in line


def test_extract_the_embedded_default(tmp_path: Path) -> None:
    result = run_cli("extract", str(EMBEDDED / "lixia-2021-qilu.txt"), "-f", "jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = jsonl_rows(result.stdout)
    assert len(rows) == 18
    text = (EMBEDDED / "lixia-2021-qilu.txt").read_text(encoding="utf-8")
    for row in rows:
        assert row["quantity_text"] in text


# ------------------------------------------------------------------------------ add and pull


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def test_add_copies_registers_and_pulls(project: Path, report: Path) -> None:
    result = run_cli("add", str(report), "--dataset", "towns", "--published", "2023", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "added county" in result.stdout

    proj = load(project)
    [added] = proj.sources_of("towns")
    assert added.id == "county"
    assert added.path == "raw/embedded/county.txt"
    assert added.published_year == 2023
    assert [s.id for s in proj.sources_of("lixia")] == ["lixia-2021-qilu"]
    assert (project / added.path).read_bytes() == report.read_bytes()
    manifest = json.loads((project / "raw" / "county" / "manifest.json").read_text("utf-8"))
    [snap] = manifest["snapshots"]
    assert snap["sha256"] == hashlib.sha256(report.read_bytes()).hexdigest()
    assert (project / "raw" / "county" / snap["file"]).read_bytes() == report.read_bytes()


def test_add_refuses_a_binary_file_and_changes_nothing(project: Path, tmp_path: Path) -> None:
    blob = tmp_path / "scan.txt"
    blob.write_bytes(BINARY)
    before = files_under(project)
    line = one_error_line(run_cli("add", str(blob), "-d", "towns", cwd=project))
    assert "binary" in line
    assert files_under(project) == before


def test_add_is_all_or_nothing(project: Path, report: Path, tmp_path: Path) -> None:
    blob = tmp_path / "scan.txt"
    blob.write_bytes(BINARY)
    before = files_under(project)
    result = run_cli("add", str(report), str(blob), "-d", "towns", cwd=project)
    # the first file pulled fine, but the call failed: its copy and snapshot are gone too
    assert files_under(project) == before
    assert sorted(p.name for p in (project / "raw").iterdir()) == ["embedded"]
    assert str(blob) in one_error_line(result)  # the sentence says which file failed


def test_add_refuses_id_with_two_sources(project: Path, report: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text(SENTENCES, encoding="utf-8")
    before = files_under(project)
    line = one_error_line(
        run_cli("add", str(report), str(other), "-d", "towns", "--id", "x", cwd=project)
    )
    assert "--id" in line
    assert files_under(project) == before


@pytest.mark.parametrize(
    "args",
    [("pull",), ("validate",), ("add", "county.txt", "-d", "towns")],
    ids=["pull", "validate", "add"],
)
def test_commands_outside_a_project_fail_with_one_sentence(
    report: Path, args: tuple[str, ...]
) -> None:
    line = one_error_line(run_cli(*args, cwd=report.parent))
    assert "sources.yaml" in line
    assert "--project" in line


@pytest.mark.parametrize("command", ["run", "serve"])
def test_a_prefect_server_that_is_down_is_one_sentence(project: Path, command: str) -> None:
    """PREFECT_API_URL names a server nobody answers for: said at once, nothing published."""
    import os
    import socket
    import subprocess

    from _helpers import CLI

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"  # closed again below
    result = subprocess.run(
        [str(CLI), command, *(["--no-progress"] if command == "run" else [])],
        cwd=project,
        env={**os.environ, "PREFECT_API_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith(f"error: Cannot reach the Prefect server at {url} (PREFECT_API_URL): ")
    assert not (project / "published").exists()


def test_project_option_works_from_elsewhere(project: Path, report: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    added = run_cli("add", str(report), "-d", "towns", "--project", str(project), cwd=elsewhere)
    assert added.returncode == 0, added.stderr
    assert [s.id for s in load(project).sources_of("towns")] == ["county"]

    first = run_cli("pull", "lixia", "--project", str(project), cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    assert "lixia-2021-qilu: new snapshot" in first.stdout
    again = run_cli("pull", "-p", str(project), cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert "lixia-2021-qilu: unchanged" in again.stdout
    assert "county: unchanged" in again.stdout
    assert list(elsewhere.iterdir()) == []


def test_add_a_file_already_in_the_project_registers_it_in_place(project: Path) -> None:
    inside = project / "notes" / "county.txt"
    inside.parent.mkdir()
    inside.write_text(SENTENCES, encoding="utf-8")
    taken = run_cli("add", str(inside), "-d", "towns", cwd=project)
    again = run_cli("add", "notes/county.txt", "-d", "towns", cwd=project)
    assert taken.returncode == 0 and again.returncode == 0, taken.stderr + again.stderr
    sources = load(project).sources_of("towns")
    assert [(s.id, s.path) for s in sources] == [
        ("county", "notes/county.txt"),
        ("county-2", "notes/county.txt"),
    ]
    assert not (project / "raw" / "embedded" / "county.txt").exists()


def test_validate_before_anything_is_published(project: Path) -> None:
    line = one_error_line(run_cli("validate", cwd=project))
    assert "no published version" in line


def test_pull_of_an_unknown_dataset(project: Path) -> None:
    line = one_error_line(run_cli("pull", "towns", cwd=project))
    assert "towns" in line


# ------------------------------------------------------------------------------ validate


def publish(root: Path) -> Path:
    """Publish every dataset of the project with the library's steps (no Prefect)."""
    proj = load(root)
    for name in proj.datasets:
        parts = []
        for source in proj.sources_of(name):
            snapshot = pull(proj, source).snapshot
            parts.append(pipeline.extract_source(proj, source, snapshot))
        tables = pipeline.frames(pipeline.merge(parts))
        release = pipeline.release(proj, name, tables)
    return release.path


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("published"))
    publish(root)
    return root


def test_validate_a_published_package(published: Path) -> None:
    result = run_cli("validate", cwd=published)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout
    assert "INVALID" not in result.stdout
    package = published / "published" / "lixia" / "1.0.0" / "datapackage.json"
    assert str(package) in result.stdout
    by_path = run_cli("validate", "--package", str(package), cwd=published.parent)
    assert by_path.returncode == 0, by_path.stdout


def test_validate_finds_a_tampered_byte(published: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(published, root, symlinks=True)
    csv_path = root / "published" / "lixia" / "1.0.0" / "indicators.csv"
    data = bytearray(csv_path.read_bytes())
    at = data.index(b"\n") + 1  # the first byte of the first row
    data[at] = ord("X") if data[at] != ord("X") else ord("Y")
    csv_path.chmod(0o644)
    csv_path.write_bytes(bytes(data))

    result = run_cli("validate", "lixia", cwd=root)
    assert result.returncode == 1
    assert "INVALID" in result.stdout
    assert "indicators" in result.stdout
    assert "hash" in result.stdout
    assert "Traceback" not in result.stderr


def test_validate_an_unknown_dataset(published: Path) -> None:
    line = one_error_line(run_cli("validate", "towns", cwd=published))
    assert "towns" in line


def test_validate_an_unpublished_version(published: Path) -> None:
    line = one_error_line(run_cli("validate", "lixia", "--version", "9.9.9", cwd=published))
    assert "9.9.9" in line


def test_pull_names_each_failed_source_and_pulls_the_others(tmp_path: Path) -> None:
    from _helpers import Route, http_server

    root = tmp_path / "many"
    root.mkdir()
    good = Route(200, SENTENCES.encode(), {"Content-Type": "text/plain; charset=utf-8"})
    with http_server({"/a.txt": good, "/c.txt": good}) as server:
        lines = ["datasets:\n  demo:\n    title: 县里的数字\n    licence: CC-BY-4.0\nsources:\n"]
        for sid in ("a", "b", "c"):
            url = server.url(f"/{sid}.txt")
            lines.append(f"  - id: {sid}\n    dataset: demo\n    url: {url}\n")
        (root / "sources.yaml").write_text("".join(lines), encoding="utf-8")
        done = run_cli("pull", cwd=root)
    assert done.returncode == cli.PARTIAL, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["a", "c"]
    assert all("new snapshot" in line for line in done.stdout.splitlines())
    warning, summary = done.stderr.strip().splitlines()
    assert warning.startswith("warning: b: ") and "HTTP 404" in warning
    assert summary == "1 source(s) could not be pulled; the others were."
    assert sorted(p.name for p in (root / "raw").iterdir()) == ["a", "c"]
