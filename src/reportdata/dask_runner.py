"""Dask for the flow's extraction tasks, started only when there is extraction to do."""

from __future__ import annotations

from typing import Any

from prefect.task_runners import TaskRunner


class LazyDaskTaskRunner(TaskRunner):
    """prefect-dask's DaskTaskRunner, imported and started when the first task is submitted:
    a run with nothing to extract (an unchanged rerun) imports neither prefect-dask nor
    distributed, and starts no cluster."""

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options
        self._runner: Any = None

    def duplicate(self) -> LazyDaskTaskRunner:
        return type(self)(**self.options)

    def _started_runner(self) -> Any:
        if self._runner is None:
            from prefect_dask import DaskTaskRunner

            self._runner = DaskTaskRunner(**self.options).__enter__()
        return self._runner

    def submit(self, task, parameters, wait_for=None, dependencies=None):  # type: ignore[override]
        return self._started_runner().submit(task, parameters, wait_for, dependencies)

    def map(self, task, parameters, wait_for=None):  # type: ignore[override]
        return self._started_runner().map(task, parameters, wait_for)

    def __exit__(self, *exc: Any) -> None:
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                runner.__exit__(*exc)
        finally:
            super().__exit__(*exc)
