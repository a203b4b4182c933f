"""What one flow run costs in Prefect itself, against a local `prefect server start`.

    .venv/bin/python benchmarks/prefect_overhead.py [--runs 5]

Runs a flow with one parameter and one task that does nothing, in this process, and prints
the wall time of each run (median and best): declared sync, declared async (as
`publish-dataset` is), then sync with the flow run's heartbeat thread left out (by replacing
the engine's ``heartbeat_seconds`` with None, for this measurement only). Prefect 3.9 sends
heartbeats from a thread that sleeps in one-second steps; its sync engine joins that thread
when the run ends, so a short run waits for the next step; its async engine does not.

Then an async flow shaped like a `publish-dataset` run that publishes (four tasks and three
artifacts), as Prefect makes it (a new API client for each task and for each artifact made
outside a task: an SSL context and a connection apiece) and with the body inside one
``SyncClientContext``, as `publish-dataset` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale import prefect_server  # the benchmark's own server helper


def measure(runs: int, declared_async: bool = False) -> list[float]:
    from prefect import flow, task
    from prefect.cache_policies import NONE

    @task(cache_policy=NONE)
    def nothing() -> int:
        return 1

    @flow(name="overhead")
    def one(dataset: str) -> int:
        return nothing()

    @flow(name="overhead-async")
    async def one_async(dataset: str) -> int:
        return nothing()

    def call(dataset: str) -> int:
        return asyncio.run(one_async(dataset)) if declared_async else one(dataset)

    call("warm-up")
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        assert call("x") == 1
        walls.append(time.perf_counter() - start)
    return walls


def measure_tasks(runs: int) -> dict[bool, tuple[list[float], float]]:
    """An async flow of four tasks and three artifacts (two made in tasks, one in the flow),
    with and without one client context around its body, the two runs interleaved; per
    variant, the wall times and the SSL contexts a run made (counted here)."""
    import ssl

    from prefect import flow, task
    from prefect.artifacts import create_markdown_artifact
    from prefect.cache_policies import NONE
    from prefect.context import SyncClientContext

    @task(cache_policy=NONE)
    def step(n: int) -> int:
        if n % 2:
            create_markdown_artifact(f"step {n}", key=f"step-{n}")
        return n

    def body() -> int:
        total = sum(step(n) for n in range(4))
        create_markdown_artifact("summary", key="summary", _sync=True)
        return total

    @flow(name="overhead-tasks")
    async def four(shared_client: bool) -> int:
        if shared_client:
            with SyncClientContext.get_or_create():
                return body()
        return body()

    made = [0]
    real = ssl.create_default_context

    def counted(*args, **kwargs):
        made[0] += 1
        return real(*args, **kwargs)

    ssl.create_default_context = counted
    try:
        walls: dict[bool, list[float]] = {False: [], True: []}
        contexts: dict[bool, int] = {False: 0, True: 0}
        asyncio.run(four(True))  # warm-up
        for _ in range(runs):
            for shared in (False, True):
                made[0] = 0
                start = time.perf_counter()
                assert asyncio.run(four(shared)) == 6
                walls[shared].append(time.perf_counter() - start)
                contexts[shared] += made[0]
    finally:
        ssl.create_default_context = real
    return {shared: (walls[shared], contexts[shared] / runs) for shared in walls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, prefect_server(Path(home)) as api:
        os.environ["PREFECT_API_URL"] = api
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
        walls = measure(args.runs)
        declared_async = measure(args.runs, declared_async=True)
        tasks = measure_tasks(args.runs * 3)
        import prefect.flow_engine as engine

        engine.FlowRunEngine.heartbeat_seconds = property(lambda self: None)  # type: ignore
        quiet = measure(args.runs)
    for label, got in (
        ("sync flow, with heartbeats (default)", walls),
        ("async flow, with heartbeats (default)", declared_async),
        ("sync flow, heartbeat thread left out", quiet),
    ):
        print(
            f"{label}: median {statistics.median(got):.3f} s, best {min(got):.3f} s a flow run "
            f"({args.runs} runs)"
        )
    for shared, label in ((False, "a client each (Prefect's way)"), (True, "one client")):
        got, contexts = tasks[shared]
        print(
            f"async flow, 4 tasks and 3 artifacts, {label}: median {statistics.median(got):.3f} "
            f"s, best {min(got):.3f} s a flow run, {contexts:.0f} SSL contexts made a run "
            f"({len(got)} runs, interleaved)"
        )


if __name__ == "__main__":
    main()
