"""Many sources in one run: a failing source is reported and isolated, only changed work is
redone, and a second run waits for (or gives up on) the first. Against the session's
Prefect server, calling the flow in-process so that the extractor can be watched."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from _helpers import ConditionalServer, Route, http_server

from reportdata.locking import run_lock

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def _report(n: int) -> str:
    """A short report written for the tests; its figures differ with n."""
    return (
        f"某县第{n}号工作简报\n\n一、经济\n\n"
        f"全县实现地区生产总值{100 + n}.5亿元,新增市场主体{2000 + n}户。\n\n"
        f"二、民生\n\n城镇新增就业{3000 + n}人,新建养老服务站{n + 2}个。\n"
    )


def _project(root: Path, sources: list[dict]) -> Path:
    doc = {
        "datasets": {
            "county": {
                "title": "某县报告中的数字",
                "description": "Figures from made-up county briefs.",
                "licence": {"name": "CC0-1.0", "title": "Public domain"},
            }
        },
        "sources": [{"dataset": "county", "publisher": "某县", **s} for s in sources],
    }
    (root / "sources.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return root


def _file_source(root: Path, n: int, data: bytes | None = None) -> dict:
    path = root / "raw" / "embedded" / f"brief-{n}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if data is not None else _report(n).encode("utf-8"))
    return {"id": f"brief-{n}", "path": f"raw/embedded/brief-{n}.txt", "published": "2024"}


def _docs(root: Path, version: str) -> set[str]:
    rows = json.loads((root / f"published/county/{version}/documents.json").read_text("utf-8"))
    return {r["document_id"] for r in rows}


def _checked_again(*args, **kwargs):
    raise AssertionError("the base version was checked again")


def _no_frames(*args, **kwargs):
    raise AssertionError("a version built on the newest one made DataFrames of its rows")


@pytest.fixture
def counted(monkeypatch):
    """Count the reports the extractor really reads (cache hits are not counted)."""
    from reportdata import pipeline

    seen: list[str] = []
    real = pipeline.extract_source

    def counting(project, source, snapshot=None):
        seen.append(source.id)
        return real(project, source, snapshot)

    monkeypatch.setattr(pipeline, "extract_source", counting)
    return seen


def test_failing_sources_are_reported_and_the_rest_still_publish(
    prefect_server, tmp_path, monkeypatch
):
    from _helpers import run_flow as publish_dataset
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from reportdata import cache, pipeline

    with http_server({"/gone": Route(404, b"no such page")}) as server:
        sources = [_file_source(tmp_path, n) for n in (1, 2, 3)]
        sources.append(_file_source(tmp_path, 4, PNG))  # unreadable
        sources.append({"id": "web-gone", "url": server.url("/gone")})  # unreachable
        _project(tmp_path, sources)

        real = pipeline.extract_source

        def invalid_for_3(project, source, snapshot=None):
            rows = real(project, source, snapshot)
            if source.id == "brief-3":
                rows["indicators"][0]["value_base"] *= 7  # breaks value = value_base check
            return rows

        monkeypatch.setattr(pipeline, "extract_source", invalid_for_3)
        first = publish_dataset("county", str(tmp_path))

    assert first["new"] is True and first["version"] == "1.0.0"
    assert set(first["failures"]) == {"brief-3", "brief-4", "web-gone"}
    assert "404" in first["failures"]["web-gone"]
    assert "failed validation" in first["failures"]["brief-3"]
    assert _docs(tmp_path, "1.0.0") == {"brief-1", "brief-2"}
    with get_client(sync_client=True) as client:
        (summary,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["county-summary"])),
            limit=1,
        )
    for sid in ("brief-3", "brief-4", "web-gone"):
        assert f"| {sid} | failed: " in summary.data
    assert "| brief-1 | " in summary.data and "| brief-1 | failed" not in summary.data

    # The extractor is fixed (brief-3 validates now) and brief-1 breaks: brief-1 keeps the
    # rows it had, and nothing else moves.
    monkeypatch.setattr(pipeline, "extract_source", real)
    monkeypatch.setattr(cache, "extractor_version", lambda: "the-fixed-extractor")
    before = (tmp_path / "published/county/1.0.0/indicators.json").read_bytes()
    (tmp_path / "raw/embedded/brief-1.txt").write_bytes(PNG)
    second = publish_dataset("county", str(tmp_path))
    assert "brief-1" in second["failures"]
    assert second["version"] == "1.1.0"  # brief-3 now validates: a new source, MINOR
    assert _docs(tmp_path, "1.1.0") == {"brief-1", "brief-2", "brief-3"}
    kept = json.loads((tmp_path / "published/county/1.1.0/indicators.json").read_text("utf-8"))
    old = json.loads(before)
    assert [r for r in kept if r["document_id"] == "brief-1"] == [
        r for r in old if r["document_id"] == "brief-1"
    ]


def test_the_command_names_each_failed_source_and_exits_3(prefect_server, tmp_path):
    """`reportdata run` warns once a failed source, by its id, even when its URL holds the id,
    and exits 3 (some sources failed) after the others published."""
    import os
    import socket
    import subprocess

    from _helpers import CLI

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    sources = [_file_source(tmp_path, n) for n in (1, 2)]
    sources.append({"id": "gone", "url": f"http://127.0.0.1:{port}/gone.txt"})
    _project(tmp_path, sources)
    done = subprocess.run(
        [str(CLI), "run", "--no-progress"],
        cwd=tmp_path,
        env={**os.environ, "PREFECT_API_URL": prefect_server},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("county: published version 1.0.0")
    assert "Traceback" not in done.stderr
    warning, total = done.stderr.strip().splitlines()
    assert warning.startswith(f"warning: gone: http://127.0.0.1:{port}/gone.txt could not be")
    assert total == "1 source(s) failed and kept their last published rows; the rest published."
    assert _docs(tmp_path, "1.0.0") == {"brief-1", "brief-2"}


@pytest.fixture
def cached_reads(monkeypatch):
    """Once started (call it), record the sources whose cached rows are read."""
    from reportdata import cache

    seen: list[str] = []
    real = cache.load_rows

    def start() -> list[str]:
        monkeypatch.setattr(
            cache,
            "load_rows",
            lambda project, sid, key: seen.append(sid) or real(project, sid, key),
        )
        return seen

    return start


def test_only_changed_sources_are_extracted_again(
    prefect_server, tmp_path, counted, cached_reads, monkeypatch
):
    from _helpers import run_flow as publish_dataset

    from reportdata import delta, pipeline

    _project(tmp_path, [_file_source(tmp_path, n) for n in range(12)])
    first = publish_dataset("county", str(tmp_path), chunks=3)
    assert (first["version"], first["new"]) == ("1.0.0", True)
    assert sorted(counted) == sorted(f"brief-{n}" for n in range(12))

    counted.clear()
    read = cached_reads()
    before = {p: p.read_bytes() for p in (tmp_path / "published").rglob("*") if p.is_file()}
    again = publish_dataset("county", str(tmp_path), chunks=3)
    assert (again["version"], again["new"]) == ("1.0.0", False)
    assert counted == []  # nothing extracted again,
    assert read == []  # nor any cached rows read: the snapshots alone tell
    assert again["counts"] == {}  # nor validated or published: the inputs are the release's
    after = {p: p.read_bytes() for p in (tmp_path / "published").rglob("*") if p.is_file()}
    assert after == before

    corrected = _report(5).replace("105.5亿元", "106.5亿元")  # a value corrected in place
    (tmp_path / "raw/embedded/brief-5.txt").write_text(corrected, encoding="utf-8")
    with monkeypatch.context() as patched:  # 1.0.0's files are as its run wrote them (noted)
        patched.setattr(delta, "hashlib", SimpleNamespace(sha256=_checked_again))
        patched.setattr(delta, "_indexed_blocks", _checked_again)
        patched.setattr(pipeline, "frames", _no_frames)  # its rows are checked as row dicts
        changed = publish_dataset("county", str(tmp_path), chunks=3)
    assert counted == ["brief-5"]
    assert read == ["brief-5"]  # the other sources' rows are not even read: kept from 1.0.0
    assert (changed["version"], changed["new"]) == ("1.0.1", True)  # corrected values: PATCH
    assert changed["counts"]["documents"] == 12
    validation = (tmp_path / "reports/county/validation.md").read_text("utf-8")
    assert "validated the rows of the 1 source it extracted" in validation
    assert "other 11 sources' rows are those of version 1.0.0" in validation
    v1 = json.loads((tmp_path / "published/county/1.0.0/indicators.json").read_text("utf-8"))
    v2 = json.loads((tmp_path / "published/county/1.0.1/indicators.json").read_text("utf-8"))
    assert [r for r in v1 if r["document_id"] != "brief-5"] == [
        r for r in v2 if r["document_id"] != "brief-5"
    ]
    assert "106.5" in json.dumps([r for r in v2 if r["document_id"] == "brief-5"])

    counted.clear()
    read.clear()
    assert publish_dataset("county", str(tmp_path))["new"] is False
    assert (counted, read) == ([], [])  # the note of 1.0.1 names every source's inputs

    # brief-5 changes again and its figures fail validation: it keeps its 1.0.1 rows and
    # nothing new is published; the same inputs again give the same outcome, decided from
    # the snapshots.
    (tmp_path / "raw/embedded/brief-5.txt").write_text(_report(55), encoding="utf-8")
    real = pipeline.extract_source

    def invalid(project, source, snapshot=None):
        rows = real(project, source, snapshot)
        rows["indicators"][0]["value_base"] *= 7  # breaks value = value_base check
        return rows

    monkeypatch.setattr(pipeline, "extract_source", invalid)
    monkeypatch.setattr(pipeline, "frames", _no_frames)  # blamed among row dicts
    read.clear()
    broken = publish_dataset("county", str(tmp_path))
    assert (broken["version"], broken["new"]) == ("1.0.1", False)
    assert list(broken["failures"]) == ["brief-5"] and read == ["brief-5"]
    assert "failed validation" in broken["failures"]["brief-5"]
    read.clear()
    assert publish_dataset("county", str(tmp_path))["counts"] == {}
    assert read == []
    assert _docs(tmp_path, "1.0.1") == {f"brief-{n}" for n in range(12)}
    assert not (tmp_path / "published/county/1.0.2").exists()


def test_a_second_run_gives_up_while_the_first_holds_the_project(prefect_server, tmp_path):
    from _helpers import run_flow as publish_dataset

    _project(tmp_path, [_file_source(tmp_path, 1)])
    with run_lock(tmp_path):
        state = publish_dataset("county", str(tmp_path), lock_timeout=0, return_state=True)
    assert state.is_failed()
    assert "Another reportdata run is publishing" in state.message
    assert not (tmp_path / "published").exists()
    done = publish_dataset("county", str(tmp_path), lock_timeout=0)
    assert done["version"] == "1.0.0"


def test_three_hundred_unchanged_reports_cost_only_their_conditional_requests(
    prefect_server, tmp_path, counted, cached_reads, monkeypatch
):
    """The rerun of 300 url sources with nothing changed: 300 answers of 304 over a few kept
    connections, no report extracted, no cached rows read, nothing validated or written."""
    from _helpers import run_flow as publish_dataset

    from reportdata import package_check, pipeline

    helpers: set[int] = set()  # a Frictionless helper starts only for a run that will publish
    real_start = package_check.start

    def start() -> None:  # asked at each new snapshot and before extracting: started once
        real_start()
        helpers.update(helper.pid for helper in package_check._HELPER)

    monkeypatch.setattr(package_check, "start", start)
    checked_here: list[str] = []  # and the package is checked there, not in the run's process
    real_check = package_check.raw_check
    monkeypatch.setattr(
        package_check, "raw_check", lambda p: checked_here.append(str(p)) or real_check(p)
    )
    server = ConditionalServer({f"/r/{n}.txt": _report(n).encode("utf-8") for n in range(300)})
    try:
        sources = [{"id": f"r-{n}", "url": f"{server.base}/r/{n}.txt"} for n in range(300)]
        _project(tmp_path, sources)
        first = publish_dataset("county", str(tmp_path))
        assert (first["version"], first["new"], first["failures"]) == ("1.0.0", True, {})
        assert len(helpers) == 1 and package_check._HELPER == []  # ended with the run
        assert checked_here == []
        assert server.answers == {200: 300} and len(counted) == 300

        counted.clear()
        server.answers.clear()
        server.connections = 0
        read = cached_reads()
        checked: list[str] = []
        monkeypatch.setattr(pipeline, "check", lambda *a: checked.append("check"))
        before = {p: p.stat().st_mtime_ns for p in (tmp_path / "published").rglob("*")}
        again = publish_dataset("county", str(tmp_path))
        assert (again["version"], again["new"], again["failures"]) == ("1.0.0", False, {})
        assert server.answers == {304: 300}
        assert server.connections <= 8  # one client, connections kept open between pulls
        assert (counted, read, checked) == ([], [], [])
        assert len(helpers) == 1
        assert {p: p.stat().st_mtime_ns for p in (tmp_path / "published").rglob("*")} == before
    finally:
        server.close()


def test_new_inputs_that_give_the_same_tables_are_remembered(
    prefect_server, tmp_path, counted, cached_reads, monkeypatch
):
    """A new extractor that finds exactly the published figures writes no version; the rerun
    after it must still know the release is current (it cannot record that in the version)."""
    from _helpers import run_flow as publish_dataset

    from reportdata import cache, delta

    _project(tmp_path, [_file_source(tmp_path, n) for n in range(4)])
    assert publish_dataset("county", str(tmp_path))["new"]

    monkeypatch.setattr(cache, "extractor_version", lambda: "a-new-extractor")
    counted.clear()
    upgraded = publish_dataset("county", str(tmp_path))
    assert (upgraded["version"], upgraded["new"]) == ("1.0.0", False)
    assert sorted(counted) == [f"brief-{n}" for n in range(4)]  # every report read anew

    counted.clear()
    read = cached_reads()
    again = publish_dataset("county", str(tmp_path))
    assert (again["version"], again["new"], again["counts"]) == ("1.0.0", False, {})
    assert (counted, read) == ([], [])  # decided from the snapshots alone

    # The note kept the stamps of 1.0.0's files through the run that wrote nothing: the
    # next version is built on it without checking its files again.
    (tmp_path / "raw/embedded/brief-2.txt").write_text(_report(22), encoding="utf-8")
    with monkeypatch.context() as patched:
        patched.setattr(delta, "hashlib", SimpleNamespace(sha256=_checked_again))
        patched.setattr(delta, "_indexed_blocks", _checked_again)
        changed = publish_dataset("county", str(tmp_path))
    assert changed["new"] and changed["version"] != "1.0.0"
