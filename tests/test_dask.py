"""Scale-out: the same release from a local Dask cluster of two workers as from the default
runner, byte for byte."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

CLI = Path(sys.executable).with_name("reportdata")


def _project(root: Path, count: int) -> Path:
    sources = []
    for n in range(count):
        path = root / "raw" / "embedded" / f"brief-{n}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"某区第{n}期简报\n\n一、项目\n\n今年新开工项目{10 + n}个,完成投资{n + 3}.2亿元。\n"
            f"\n二、就业\n\n新增就业岗位{1200 + n}个。\n",
            encoding="utf-8",
        )
        sources.append(
            {"id": f"brief-{n}", "dataset": "district", "path": f"raw/embedded/brief-{n}.txt"}
        )
    doc = {
        "datasets": {"district": {"title": "某区简报中的数字", "licence": {"name": "CC0-1.0"}}},
        "sources": sources,
    }
    (root / "sources.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    return root


def _digests(root: Path) -> dict[str, str]:
    """Digests of the published files (not the hidden ones: locks and the warehouse build's
    memo of file stamps, which are never mirrored or listed)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "published").rglob("*"))
        if p.is_file()
        and p.suffix in (".csv", ".json", ".md", ".html")
        and not p.name.startswith(".")
    }


@pytest.mark.slow
def test_a_two_worker_dask_cluster_publishes_the_same_bytes(prefect_server, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "SOURCE_DATE_EPOCH": "1700000000"}
    trees = []
    for name, extra in (("default", []), ("dask", ["--runner", "dask", "--workers", "2"])):
        root = _project(tmp_path / name, 8)
        done = subprocess.run(
            [str(CLI), "run", "--no-progress", *extra],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        assert "district: published version 1.0.0" in done.stdout
        trees.append(_digests(root))
    assert trees[0] == trees[1]
    assert "published/district/1.0.0/indicators.csv" in trees[0]


@pytest.mark.slow
def test_the_dask_runner_sends_extraction_to_the_cluster(prefect_server, tmp_path):
    """Given a scheduler address, the extraction chunks run on that cluster's workers."""
    from distributed import Client, LocalCluster
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    from reportdata.project import load
    from reportdata.runner import run_datasets

    root = _project(tmp_path, 6)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as dask,
    ):
        before = sum(dask.run(lambda dask_worker: dask_worker.state.transition_counter).values())
        (result,) = run_datasets(
            load(root),
            ["district"],
            progress=False,
            runner="dask",
            address=cluster.scheduler_address,
        )
        after = sum(dask.run(lambda dask_worker: dask_worker.state.transition_counter).values())
    assert result.version == "1.0.0" and not result.failures
    assert after > before  # the workers ran tasks for this run
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(limit=1, sort=FlowRunSort.START_TIME_DESC)
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
    extract = [t for t in tasks if t.name.startswith("extract-sources")]
    assert len(extract) == 6  # 2 workers x 4 chunks asked for, at most one a source


_RERUN = """
import sys
from pathlib import Path
from reportdata.project import load
from reportdata.runner import run_datasets
(summary,) = run_datasets(load(Path(sys.argv[1])), ["district"], progress=False, runner="dask")
print(summary.version, summary.new, "distributed" in sys.modules)
"""


@pytest.mark.slow
def test_a_dask_run_with_nothing_to_extract_imports_no_dask(prefect_server, tmp_path):
    """The Dask runner is imported and its cluster started on the first extraction task sent
    to it: an unchanged rerun pays for neither, nor does a run with one changed report."""
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    root = _project(tmp_path, 3)
    first = subprocess.run([str(CLI), "run", "--no-progress"], cwd=root, env=env, timeout=600)
    assert first.returncode == 0

    def rerun() -> str:
        done = subprocess.run(
            [sys.executable, "-c", _RERUN, str(root)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    assert rerun() == "1.0.0 False False"
    brief = root / "raw/embedded/brief-1.txt"
    brief.write_text(brief.read_text("utf-8").replace("11个", "12个"), "utf-8")
    assert rerun() == "1.0.1 True False"  # one report is extracted in the flow's process
    for n in (0, 2):
        brief = root / f"raw/embedded/brief-{n}.txt"
        brief.write_text(brief.read_text("utf-8").replace("新增", "全年新增"), "utf-8")
    assert rerun().split()[1:] == ["True", "True"]  # two go to the cluster


@pytest.mark.parametrize(
    ("given", "taken"),
    [
        ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("TLS://scheduler.example:8786/", "tls://scheduler.example:8786"),
        ("tcp://[::1]:8786", "tcp://[::1]:8786"),
    ],
)
def test_a_scheduler_address_is_taken_as_dask_takes_it(given, taken):
    from reportdata.dask_runner import scheduler_address

    assert scheduler_address(given) == taken


@pytest.mark.parametrize(
    "given",
    ["notanaddress", "tcp://10.0.0.5", "http://10.0.0.5:8786", "tcp://10.0.0.5:99999",
     "tcp://10.0.0.5:8786/status", "inproc://10.0.0.5/1/2", "tcp://:8786"],
)  # fmt: skip
def test_a_malformed_scheduler_address_is_refused_before_anything_runs(given, tmp_path):
    done = subprocess.run(
        [str(CLI), "run", "--no-progress", "--runner", "dask", "--address", given],
        cwd=_project(tmp_path, 2),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: {given!r} is not a Dask scheduler address: use tcp://HOST:PORT "
        "(tcp://, tls://, ws://, wss:// are understood)."
    ]
    assert not (tmp_path / "published").exists()


def test_an_address_without_the_dask_runner_is_refused(tmp_path):
    done = subprocess.run(
        [str(CLI), "run", "--no-progress", "--address", "tcp://10.0.0.5:8786"],
        cwd=_project(tmp_path, 2),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: --address names a Dask scheduler: it needs --runner dask."
    assert not (tmp_path / "published").exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _versions(root: Path) -> list[str]:
    folder = root / "published" / "district"
    return (
        sorted(p.name for p in folder.iterdir() if p.name[0].isdigit()) if folder.exists() else []
    )


@pytest.mark.slow
def test_an_unreachable_scheduler_ends_the_run_with_a_sentence(prefect_server, tmp_path):
    """Nobody listens at the address: the run says so once, publishes nothing and leaves the
    project to the next run."""
    import dask

    from reportdata.errors import ClusterError
    from reportdata.project import load
    from reportdata.runner import run_datasets

    root = _project(tmp_path, 3)
    address = f"tcp://127.0.0.1:{_closed_port()}"
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        pytest.raises(ClusterError) as caught,
    ):
        run_datasets(load(root), ["district"], progress=False, runner="dask", address=address)
    assert str(caught.value).startswith(f"Could not use the Dask scheduler at {address}: ")
    assert str(caught.value).endswith("; nothing was published.")
    assert _versions(root) == []
    (summary,) = run_datasets(load(root), ["district"], progress=False, lock_timeout=5)
    assert (summary.version, summary.new) == ("1.0.0", True)


_RELEASE = threading.Event()


def _hold_the_worker() -> None:
    _RELEASE.wait(120)


def _scheduler_tasks(client) -> int:
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


@pytest.fixture
def held_cluster():
    """A cluster of one worker thread kept busy: the run's tasks wait on the scheduler."""
    from distributed import Client, LocalCluster

    _RELEASE.clear()
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
        dashboard_address=None,
    ) as cluster, Client(cluster) as client:  # fmt: skip
        hold = client.submit(_hold_the_worker, pure=False)
        try:
            yield cluster, client
        finally:
            _RELEASE.set()
            del hold


@pytest.mark.slow
def test_workers_gone_while_tasks_wait_end_the_run(
    prefect_server, tmp_path, monkeypatch, held_cluster
):
    """Every worker leaves while the run's extraction waits: the run gives up after
    WORKER_WAIT_S instead of waiting forever with the project locked."""
    from reportdata import dask_runner
    from reportdata.errors import ClusterError
    from reportdata.project import load
    from reportdata.runner import run_datasets

    cluster, client = held_cluster
    monkeypatch.setattr(dask_runner, "WORKER_WAIT_S", 2.0)
    monkeypatch.setattr(dask_runner, "POLL_S", 0.2)
    root = _project(tmp_path, 3)
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(
                run_datasets(
                    load(root), ["district"], progress=False, runner="dask",
                    address=cluster.scheduler_address,
                )
            )  # fmt: skip
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 120
    while _scheduler_tasks(client) < 2 and runner.is_alive():
        assert time.monotonic() < deadline, "the run's tasks never reached the scheduler"
        time.sleep(0.1)
    cluster.scale(0)
    runner.join(120)
    assert not runner.is_alive()
    (error,) = outcome
    assert isinstance(error, ClusterError), error
    assert str(error) == (
        f"Could not use the Dask scheduler at {cluster.scheduler_address}: it has had no worker "
        "for 2 s while tasks waited; nothing was published."
    )
    assert _versions(root) == []


class _Pending:
    """A Dask future that is never done."""

    def done(self) -> bool:
        return False

    def result(self, timeout: float | None = None) -> None:
        raise TimeoutError


def test_a_connection_reset_while_asking_for_workers_is_the_connection_lost():
    """The scheduler went away between two polls: distributed reports the reset of its
    connection pool (CommClosedError, an OSError) in its own words; the run says it in one
    sentence, as it does when the tasks' futures are cancelled."""
    from types import SimpleNamespace

    from distributed.comm import CommClosedError

    from reportdata.dask_runner import LazyDaskTaskRunner
    from reportdata.errors import ClusterError

    def reset() -> dict:
        raise CommClosedError(
            "in <TCP (closed) ConnectionPool.ncores local=tcp://127.0.0.1:40544 "
            "remote=tcp://127.0.0.1:38347>: ConnectionResetError: [Errno 104] Connection "
            "reset by peer"
        )

    runner = LazyDaskTaskRunner(address="tcp://127.0.0.1:38347")
    runner._runner = SimpleNamespace(client=SimpleNamespace(nthreads=reset))
    with pytest.raises(ClusterError) as caught:
        runner.watch(_Pending())
    assert str(caught.value) == (
        "Could not use the Dask scheduler at tcp://127.0.0.1:38347: the connection to it was "
        "lost; nothing was published."
    )


@pytest.mark.slow
def test_a_scheduler_lost_mid_run_is_one_sentence(prefect_server, tmp_path, held_cluster):
    """The scheduler goes away while the run's tasks wait on it: the command prints one
    sentence, no traceback, exits 1 and publishes nothing."""
    cluster, client = held_cluster
    root = _project(tmp_path, 3)
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    proc = subprocess.Popen(
        [str(CLI), "run", "--no-progress", "--runner", "dask", "--address",
         cluster.scheduler_address],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while _scheduler_tasks(client) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "the run's tasks never reached the scheduler"
            time.sleep(0.1)
        client.close()
        cluster.close()
        _, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        f"error: Could not use the Dask scheduler at {cluster.scheduler_address}: the "
        "connection to it was lost; nothing was published."
    ]
    assert _versions(root) == []
