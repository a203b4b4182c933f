"""Scale-out: the same release from a local Dask cluster of two workers as from the default
runner, byte for byte."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

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
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "published").rglob("*"))
        if p.is_file() and p.suffix in (".csv", ".json", ".md", ".html")
    }


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
