"""Scheduled runs on a real Prefect server: `reportdata serve`, a run triggered with
`prefect deployment run`, a schedule firing by itself, and prefect.yaml deploying the same
deployments to a work pool.

These tests start `prefect server start` on 127.0.0.1 once for the module: the session's
test harness runs no scheduler, so schedules never fire there."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from reportdata.deployments import prefect_yaml
from reportdata.project import load

BIN = Path(sys.executable).parent
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def test_prefect_yaml_describes_the_deployments_of_sources_yaml() -> None:
    assert (ROOT / "prefect.yaml").read_text("utf-8") == prefect_yaml(load(ROOT))
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text("utf-8"))
    lixia = load(ROOT).datasets["lixia"]
    (deployment,) = doc["deployments"]
    assert deployment["name"] == "lixia"
    assert deployment["entrypoint"] == "flows/publish_dataset.py:publish_dataset"
    assert deployment["parameters"] == {"dataset": "lixia", "project_dir": "."}
    assert deployment["schedules"][0]["cron"] == lixia.schedule


def _with_schedule(root: Path, cron: str) -> Path:
    doc = yaml.safe_load((root / "sources.yaml").read_text("utf-8"))
    doc["datasets"]["lixia"]["schedule"] = cron
    (root / "sources.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return root


@pytest.mark.parametrize("cron", ["@daily", "0 6 * * 1#1", "*/15 6-18 * * mon-fri"])
def test_a_schedule_prefect_takes_is_served_as_written(project_copy, cron) -> None:
    from reportdata.deployments import specs

    (spec,) = specs(load(_with_schedule(project_copy, cron)))
    assert spec.cron == cron


@pytest.mark.parametrize("cron", ["61 6 * * *", "5", "0 6 * * H", "every day"])
def test_a_schedule_prefect_refuses_is_one_sentence(project_copy, cron) -> None:
    """Told before prefect.yaml is written or a server is looked for (none is set here)."""
    root = _with_schedule(project_copy, cron)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    for extra in (["--write-prefect-yaml"], []):
        done = subprocess.run(
            [str(BIN / "reportdata"), "serve", *extra],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2
        (line,) = done.stderr.splitlines()
        assert line.startswith(
            f"error: Dataset 'lixia' in sources.yaml has the schedule {cron!r}, which Prefect "
            "does not take ("
        )
        assert line.endswith("such as '0 6 * * *'.")
    assert not (root / "prefect.yaml").exists()


@pytest.fixture(scope="module")
def real_server(tmp_path_factory) -> Iterator[str]:
    """`prefect server start` on a free port of 127.0.0.1, with its own PREFECT_HOME."""
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tmp_path_factory.mktemp("prefect-server-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    log = open(home / "server.log", "w")  # noqa: SIM115 - open while the server runs
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (home / "server.log").read_text()
            assert time.monotonic() < deadline, "the Prefect server did not start in 180 s"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _env(server: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": server, "PYTHONIOENCODING": "utf-8", **extra}


def _client(server: str):
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(server)


def _deployment(server: str, name: str, timeout: float = 120):
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with _client(server) as client:
        while True:
            try:
                return client.read_deployment_by_name(name)
            except ObjectNotFound:
                if time.monotonic() > deadline:
                    raise AssertionError(f"deployment {name} never appeared") from None
                time.sleep(0.5)


def _finished_run(server: str, deployment_id, timeout: float, auto: bool | None = None):
    """The first run of the deployment to reach a terminal state (optionally scheduled ones)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout
    with _client(server) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            for run in runs:
                if auto is not None and run.auto_scheduled != auto:
                    continue
                if run.state and run.state.type.value in TERMINAL:
                    return run
            time.sleep(1)
    seen = [(str(r.expected_start_time), r.auto_scheduled, r.state and r.state.name) for r in runs]
    raise AssertionError(f"no run of the deployment finished in {timeout:g} s; runs: {seen}")


@contextmanager
def _serving(root: Path, env: dict[str, str]) -> Iterator[str]:
    """`reportdata serve` in the background; yields its first line. Its later output goes to
    serve.log beside the project, for the failure message of a test that waited in vain."""
    log = root.parent / f"{root.name}-serve.log"
    proc = subprocess.Popen(
        [str(BIN / "reportdata"), "serve"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        drain = threading.Thread(
            target=lambda: log.write_text(proc.stdout.read(), encoding="utf-8"), daemon=True
        )
        drain.start()
        try:
            yield first
        except AssertionError as exc:
            proc.terminate()
            drain.join(30)
            tail = log.read_text(encoding="utf-8")[-3000:] if log.exists() else ""
            raise AssertionError(f"{exc}\n--- reportdata serve said:\n{tail}") from None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_serve_runs_a_deployment_triggered_by_hand(real_server, project_copy):
    env = _env(real_server)
    with _serving(project_copy, env) as said:
        assert said.strip() == "serving publish-dataset/lixia (cron '0 6 * * *', UTC)"
        deployment = _deployment(real_server, "publish-dataset/lixia")
        assert [s.schedule.cron for s in deployment.schedules] == ["0 6 * * *"]
        triggered = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "publish-dataset/lixia"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        run = _finished_run(real_server, deployment.id, timeout=300, auto=False)
    assert run.state.type.value == "COMPLETED", run.state.message
    assert (project_copy / "published/lixia/1.0.0/datapackage.json").is_file()
    assert (project_copy / "published/lixia/latest.json").is_file()


@pytest.mark.slow
def test_a_schedule_fires_by_itself(real_server, tmp_path):
    report = tmp_path / "raw" / "embedded" / "brief.txt"
    report.parent.mkdir(parents=True)
    report.write_text("某镇简报\n\n全镇新建道路12公里,新增绿地3.5万平方米。\n", encoding="utf-8")
    doc = {
        "datasets": {
            "ticker": {"title": "每分钟", "licence": {"name": "CC0-1.0"}, "schedule": "* * * * *"}
        },
        "sources": [{"id": "brief", "dataset": "ticker", "path": "raw/embedded/brief.txt"}],
    }
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    with _serving(tmp_path, _env(real_server)) as said:
        assert "publish-dataset/ticker" in said
        deployment = _deployment(real_server, "publish-dataset/ticker")
        run = _finished_run(real_server, deployment.id, timeout=420, auto=True)
    assert run.state.type.value == "COMPLETED", run.state.message
    assert (tmp_path / "published/ticker/1.0.0/indicators.csv").is_file()


@pytest.mark.slow
def test_prefect_yaml_deploys_to_a_work_pool(real_server, project_copy):
    shutil.copy(ROOT / "prefect.yaml", project_copy / "prefect.yaml")
    shutil.copytree(ROOT / "flows", project_copy / "flows")
    env = _env(real_server, REPORTDATA_PROJECT=str(project_copy))
    pool = subprocess.run(
        [str(BIN / "prefect"), "work-pool", "create", "reportdata", "--type", "process"],
        cwd=project_copy, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deployed = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
        cwd=project_copy, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deployment = _deployment(real_server, "publish-dataset/lixia", timeout=10)
    assert deployment.work_pool_name == "reportdata"
    assert deployment.parameters == {"dataset": "lixia", "project_dir": "."}
    assert [s.schedule.cron for s in deployment.schedules] == ["0 6 * * *"]
