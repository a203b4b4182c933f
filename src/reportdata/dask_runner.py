"""Dask for the flow's extraction tasks, started only when there is extraction to do."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager, nullcontext
from typing import Any
from urllib.parse import urlsplit

from prefect.task_runners import TaskRunner

from reportdata.errors import ClusterError

SCHEMES = ("tcp", "tls", "ws", "wss")
"""The schemes of a scheduler address that reach another machine (Dask's own names)."""

WORKER_WAIT_S = 120.0
"""How long a run waits for the cluster to have a worker (at its start, or once every worker
is gone while tasks wait) before it gives up."""

POLL_S = 2.0
"""How often a run waiting for a task asks the scheduler whether any worker is left."""


LOST = "the connection to it was lost"
"""Why a run failed whose scheduler went away after the run had reached it."""


def scheduler_address(address: str) -> str:
    """``address`` as Dask takes it (``tcp://`` put before a bare ``HOST:PORT``); a
    `ClusterError` sentence when it cannot be a scheduler's address."""
    text = address.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "tcp", text
    usage = f"use tcp://HOST:PORT ({', '.join(s + '://' for s in SCHEMES)} are understood)"
    if scheme.lower() not in SCHEMES:
        raise ClusterError(f"{address!r} is not a Dask scheduler address: {usage}.")
    try:
        parts = urlsplit(f"{scheme.lower()}://{rest}")
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/") or parts.query:
        raise ClusterError(f"{address!r} is not a Dask scheduler address: {usage}.")
    return f"{scheme.lower()}://{rest.rstrip('/')}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and "worker" in str(exc).lower():
        return f"no worker joined it within {WORKER_WAIT_S:.0f} s"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")


@contextmanager
def _quiet(package: str) -> Iterator[None]:
    """No log records from `package`'s loggers meanwhile: closing a client whose scheduler is
    gone logs the cancelled reconnection as an error with its traceback."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] == package]
    loggers = [logging.getLogger(n) for n in [package, *names]]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class _Watched:
    """A task's future on the cluster whose `result` ends in a `ClusterError` sentence, rather
    than waiting forever or a traceback, when the cluster is lost or stays without workers."""

    def __init__(self, future: Any, runner: LazyDaskTaskRunner) -> None:
        self._future = future
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._future, name)

    def wait(self, timeout: float | None = None) -> None:
        self._runner.watch(self._future.wrapped_future, timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        from distributed import KilledWorker
        from distributed.comm import CommClosedError

        self.wait(timeout)
        try:
            return self._future.result(timeout=timeout, raise_on_failure=raise_on_failure)
        except KilledWorker as exc:
            raise self._runner.failed("its workers died running an extraction task") from exc
        except (CancelledError, CommClosedError) as exc:  # the scheduler lost: tasks cancelled
            raise self._runner.failed(LOST) from exc


class LazyDaskTaskRunner(TaskRunner):
    """prefect-dask's DaskTaskRunner, imported and started when the first task is submitted:
    a run with nothing to extract (an unchanged rerun) imports neither prefect-dask nor
    distributed, and starts no cluster. A cluster that cannot be reached or started, or that
    has no worker within `WORKER_WAIT_S`, ends the run with a `ClusterError` sentence."""

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options
        self._runner: Any = None
        self._failed = False

    def duplicate(self) -> LazyDaskTaskRunner:
        return type(self)(**self.options)

    def _where(self) -> str:
        address = self.options.get("address")
        return f"the Dask scheduler at {address}" if address else "a local Dask cluster"

    def _started_runner(self) -> Any:
        if self._runner is None:
            from prefect_dask import DaskTaskRunner

            runner = DaskTaskRunner(**self.options).__enter__()
            try:
                runner.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except Exception as exc:
                error = self.failed(_reason(exc))
                with _quiet("distributed"):
                    runner.__exit__(None, None, None)
                raise error from exc
            self._runner = runner
        return self._runner

    def failed(self, reason: str) -> ClusterError:
        """The sentence for a cluster that failed the run, for `reason`."""
        self._failed = True
        return ClusterError(f"Could not use {self._where()}: {reason}; nothing was published.")

    def watch(self, future: Any, timeout: float | None = None) -> None:
        """Wait for a Dask `future` (at most `timeout` s); a `ClusterError` when the scheduler
        cannot be reached or has had no worker for `WORKER_WAIT_S` meanwhile."""
        client = self._runner.client
        deadline = None if timeout is None else time.monotonic() + timeout
        alone_since: float | None = None
        while not future.done():
            step = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if step <= 0:
                return
            try:
                future.result(timeout=step)
                return
            except TimeoutError:
                pass  # not done yet: is any worker left?
            except Exception:
                return  # done, and failed: `_Watched.result` tells how
            try:
                workers = len(client.nthreads())
            except OSError as exc:  # distributed's CommClosedError is one: it was reached
                raise self.failed(LOST) from exc
            except Exception as exc:
                raise self.failed(_reason(exc)) from exc
            now = time.monotonic()
            alone_since = None if workers else (alone_since or now)
            if alone_since is not None and now - alone_since >= WORKER_WAIT_S:
                alone = f"{WORKER_WAIT_S:.0f} s"
                raise self.failed(f"it has had no worker for {alone} while tasks waited")

    def submit(self, task, parameters, wait_for=None, dependencies=None):  # type: ignore[override]
        future = self._started_runner().submit(task, parameters, wait_for, dependencies)
        return _Watched(future, self)

    def map(self, task, parameters, wait_for=None):  # type: ignore[override]
        from prefect.futures import PrefectFutureList

        futures = self._started_runner().map(task, parameters, wait_for)
        return PrefectFutureList(_Watched(f, self) for f in futures)

    def __exit__(self, *exc: Any) -> None:
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                with _quiet("distributed") if self._failed else nullcontext():
                    runner.__exit__(*exc)
        finally:
            super().__exit__(*exc)
