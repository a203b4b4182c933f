"""The real flow, end to end, against a Prefect server and from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import SHARED

from reportdata.validate import validate_package

pytestmark = pytest.mark.slow

GOLD = SHARED / "corpus/dev/lixia-2021-qilu.gold.jsonl"


def _gold_required() -> list[dict]:
    rows = [json.loads(line) for line in GOLD.read_text("utf-8").splitlines() if line.strip()]
    return [r for r in rows if not r.get("optional")]


def _assert_release_holds_the_gold_figures(version_dir: Path) -> None:
    report = validate_package(version_dir / "datapackage.json")
    assert report.ok, report.to_markdown()
    con = duckdb.connect(str(version_dir.parent / "lixia.duckdb"), read_only=True)
    try:
        found = con.execute(
            "select value_base, unit_family, quantity_text, qualifier, status, period "
            "from indicators where version = ?",
            [version_dir.name],
        ).fetchall()
        comments = con.sql(
            "select count(*) from duckdb_columns() "
            "where table_name = 'indicators' and comment is not null and comment <> ''"
        ).fetchall()[0][0]
    finally:
        con.close()
    columns = len(json.loads((version_dir / "indicators.json").read_text("utf-8"))[0])
    assert comments == columns + 1  # and the version column
    for g in _gold_required():
        match = [
            f
            for f in found
            if abs(f[0] - g["value_base"]) <= 1e-9 * max(1, abs(g["value_base"]))
            and f[1] == g["unit_family"]
        ]
        assert match, f"missing {g['quantity_text']}"
        assert (match[0][2], match[0][3], match[0][4], match[0][5]) == (
            g["quantity_text"],
            g["qualifier"],
            g["status"],
            g["period"],
        )
    assert len(found) == len(_gold_required())


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_flow_against_a_server_publishes_once_with_artifacts(prefect_server, project_copy):
    from _helpers import run_flow as publish_dataset
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    assert prefect_server
    first = publish_dataset("lixia", str(project_copy))
    assert first["new"] is True and first["version"] == "1.0.0"
    version_dir = project_copy / "published/lixia/1.0.0"
    _assert_release_holds_the_gold_figures(version_dir)
    assert (project_copy / "reports/lixia/validation.md").is_file()
    manifest = json.loads((project_copy / "raw/lixia-2021-qilu/manifest.json").read_text())
    assert len(manifest["snapshots"]) == 1

    before = _tree(project_copy / "published")
    second = publish_dataset("lixia", str(project_copy))
    assert second["new"] is False and second["version"] == "1.0.0"
    assert _tree(project_copy / "published") == before

    with get_client(sync_client=True) as client:
        keys = {
            a.key
            for a in client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["lixia-validation", "lixia-figures"])
                )
            )
        }
    assert keys == {"lixia-validation", "lixia-figures"}


def test_the_async_flow_still_sends_heartbeats_and_makes_its_summary(prefect_server, project_copy):
    """The flow is declared async (so a short run does not wait for the heartbeat thread); the
    server must still get the run's heartbeat, and the summary made in the flow's own body."""
    import time

    import httpx
    from _helpers import run_flow as publish_dataset
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    state = publish_dataset("lixia", str(project_copy), return_state=True)
    assert state.is_completed()
    run_id = f"prefect.flow-run.{state.state_details.flow_run_id}"
    seen: set[str] = set()
    for _ in range(40):  # events reach the server a little after the run
        answer = httpx.post(
            f"{prefect_server}/events/filter",
            json={"filter": {"resource": {"id": [run_id]}}, "limit": 50},
            timeout=10,
        )
        answer.raise_for_status()
        seen = {e["event"] for e in answer.json()["events"]}
        if "prefect.flow-run.heartbeat" in seen:
            break
        time.sleep(0.25)
    assert "prefect.flow-run.heartbeat" in seen
    with get_client(sync_client=True) as client:
        (summary,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["lixia-summary"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
    assert "lixia-2021-qilu" in summary.data
    # the run extracted and published (its rows are dropped once validated; the summary
    # still tells this run from one that had nothing to do)
    assert "extractions reused." in summary.data
    assert "nothing extracted or published" not in summary.data


def test_a_run_makes_no_api_client_per_task_or_artifact(prefect_server, project_copy, monkeypatch):
    """Every task and artifact of a run goes through one API client (each new client costs an
    SSL context and a connection): a first run (four tasks, three artifacts) makes no more
    clients than an unchanged rerun (one task, one artifact)."""
    from _helpers import run_flow as publish_dataset
    from prefect.client.orchestration import SyncPrefectClient

    made: list[int] = []
    real_init = SyncPrefectClient.__init__

    def counted(self, *args, **kwargs):
        made.append(id(self))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(SyncPrefectClient, "__init__", counted)
    first = publish_dataset("lixia", str(project_copy))
    first_clients = len(made)
    made.clear()
    rerun = publish_dataset("lixia", str(project_copy))
    assert first["new"] is True and rerun["new"] is False
    assert 0 < first_clients == len(made)


def test_failed_validation_publishes_nothing_and_keeps_the_release(
    prefect_server, project_copy, monkeypatch
):
    from _helpers import run_flow as publish_dataset

    from reportdata import cache, pipeline

    publish_dataset("lixia", str(project_copy))
    before = _tree(project_copy / "published")

    real = pipeline.extract_source

    def corrupted(*args, **kwargs):
        rows = real(*args, **kwargs)
        rows["indicators"][0]["value_base"] *= 3
        return rows

    monkeypatch.setattr(pipeline, "extract_source", corrupted)
    monkeypatch.setattr(cache, "extractor_version", lambda: "a-changed-extractor")
    state = publish_dataset("lixia", str(project_copy), return_state=True)
    assert state.is_failed()
    assert "nothing was published" in state.message
    assert _tree(project_copy / "published") == before
    report = json.loads((project_copy / "reports/lixia/validation.json").read_text("utf-8"))
    assert report["ok"] is False
    assert any(e["check"] == "value_base" for e in report["errors"])
    assert "value_base" in (project_copy / "reports/lixia/validation.md").read_text("utf-8")


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("reportdata")
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_cli_run_without_a_server_then_rerun_publishes_nothing(project_copy, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    done = _cli(["run", "--no-progress"], project_copy, env)
    assert done.returncode == 0, done.stderr
    assert "lixia: published version 1.0.0" in done.stdout
    _assert_release_holds_the_gold_figures(project_copy / "published/lixia/1.0.0")

    frictionless = Path(sys.executable).with_name("frictionless")
    checked = subprocess.run(
        [str(frictionless), "validate", "published/lixia/1.0.0/datapackage.json"],
        cwd=project_copy,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout

    again = _cli(["run", "--no-progress"], project_copy, env)
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout
    assert sorted(p.name for p in (project_copy / "published/lixia").iterdir()) == [
        ".lixia.duckdb.lock",
        ".lixia.duckdb.memo.json",
        ".publish.lock",
        "1.0.0",
        "CHANGELOG.md",
        "index.html",
        "latest.json",
        "lixia.duckdb",
    ]
    assert {p.name for p in (project_copy / "published").iterdir()} >= {
        "catalog.json",
        "index.html",
        "lixia",
    }
    assert "Traceback" not in again.stderr
