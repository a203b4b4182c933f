"""Run the `publish-dataset` flow from the command line, with a progress bar.

Prefect is imported here, not at CLI start, so that other commands start fast.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from reportdata.errors import ReportdataError
from reportdata.pipeline import ReleaseSummary
from reportdata.progress import listen
from reportdata.project import Project

STAGES = ("pull", "extract", "validate", "publish")


def prefect_defaults() -> None:
    """Settings that keep a local run quiet and robust, unless the user set them already."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


class _NoUserTracebacks(logging.Filter):
    """Show a user error as its sentence on the console; keep the traceback for bugs."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ReportdataError):
            record.exc_info = None
            record.exc_text = None
        return True


class _ConsoleLeavesErrorsToTheCli(logging.Filter):
    """On the console, run loggers keep quiet about failures: the CLI prints each user
    error (and each failed source) once, as one sentence. The API handler still records
    everything, and a bug still ends in its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        runs = record.name.startswith(("prefect.flow_runs", "prefect.task_runs"))
        return not (runs and record.levelno >= logging.WARNING)


def _quiet_user_errors() -> None:
    def add(handler: logging.Handler, kind: type[logging.Filter]) -> None:
        if not any(isinstance(f, kind) for f in handler.filters):
            handler.addFilter(kind())

    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            add(handler, _NoUserTracebacks)
    for handler in logging.getLogger().handlers:  # Prefect's console handler sits on the root
        if isinstance(handler, logging.StreamHandler):
            add(handler, _ConsoleLeavesErrorsToTheCli)


@contextmanager
def _progress_bar(total: int, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        transient=False,
    )
    job = bar.add_task("starting Prefect", total=total)

    def on_step(stage: str, detail: str) -> None:
        bar.update(job, advance=1, description=f"{stage} {detail}")

    stop = listen(on_step)
    try:
        with bar:
            yield
    finally:
        stop()


def check_server(url: str) -> None:
    """A `ProjectError` sentence unless the Prefect server at `url` (PREFECT_API_URL) answers
    its health check: a run or a serve against a server that is down says so at once."""
    import httpx

    try:
        with httpx.stream("GET", url.rstrip("/") + "/health", timeout=10) as answer:
            answer.raise_for_status()
            for _ in answer.iter_bytes(chunk_size=1024):
                break  # a few bytes say the server is there; never read an unbounded body
    except httpx.HTTPError as exc:
        raise unreachable(url, exc) from exc


def unreachable(url: str, exc: BaseException) -> ReportdataError:
    """The sentence for a Prefect server that does not answer."""
    from reportdata.errors import ProjectError

    return ProjectError(f"Cannot reach the Prefect server at {url} (PREFECT_API_URL): {exc}.")


def run_datasets(
    project: Project,
    names: list[str],
    *,
    progress: bool = True,
    publish_to: str | None = None,
    endpoint_url: str | None = None,
    lock_timeout: float = 1800.0,
    runner: str = "default",
    address: str | None = None,
    workers: int = 2,
) -> list[ReleaseSummary]:
    """Run the flow once per dataset; raise the first user error as its sentence.

    With ``publish_to`` each run also mirrors published/ there (see `reportdata.remote`).
    With ``runner="dask"`` extraction is spread over a Dask cluster: the one at ``address``
    (tcp://host:port), else a local cluster of ``workers`` processes.
    """
    prefect_defaults()
    publish_dataset, chunks = _flow(runner, address, workers)
    from prefect.settings import PREFECT_API_URL

    if url := PREFECT_API_URL.value():  # without it Prefect starts a temporary server
        check_server(url)

    _quiet_user_errors()
    total = sum(len(project.sources_of(n)) + len(STAGES) - 1 for n in names)
    results = []
    with _progress_bar(total, progress):
        for name in names:
            try:
                state = asyncio.run(
                    publish_dataset(
                        name,
                        str(project.root),
                        publish_to=publish_to,
                        endpoint_url=endpoint_url,
                        lock_timeout=lock_timeout,
                        chunks=chunks,
                        return_state=True,
                    )
                )
            except RuntimeError as exc:
                if "ephemeral Prefect API server" not in str(exc):
                    raise
                raise ReportdataError(
                    "Prefect's temporary server did not start; set PREFECT_API_URL to a running "
                    "server, or point PREFECT_HOME at a fresh folder (a database left in "
                    "~/.prefect by another Prefect version can stop it)."
                ) from exc
            if state.is_failed():
                exc = _user_error(state)
                if exc is not None:
                    raise exc
                state.result()  # a bug: let it raise with its traceback
            out = state.result()
            results.append(
                ReleaseSummary(
                    out["dataset"],
                    out["version"],
                    out["path"],
                    out["new"],
                    out["counts"],
                    out.get("failures", {}),
                )
            )
    return results


def _flow(runner: str, address: str | None, workers: int):
    """The flow with the task runner asked for, and how many extraction chunks to make."""
    from flows.publish_dataset import publish_dataset

    if runner == "default":
        if address:
            raise ReportdataError("--address names a Dask scheduler: it needs --runner dask.")
        return publish_dataset, 1
    if runner != "dask":
        raise ReportdataError(f"Unknown runner {runner!r}; use 'default' or 'dask'.")
    from reportdata.dask_runner import LazyDaskTaskRunner, scheduler_address

    options: dict[str, Any] = (
        {"address": scheduler_address(address)}
        if address
        else {
            "cluster_kwargs": {
                "n_workers": workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        }
    )
    return publish_dataset.with_options(task_runner=LazyDaskTaskRunner(**options)), max(
        1, workers
    ) * 4


def _user_error(state) -> ReportdataError | None:
    try:
        state.result()
    except ReportdataError as exc:
        return exc
    except Exception:
        return None
    return None
