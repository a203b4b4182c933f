"""What one flow run costs in Prefect itself, against a local `prefect server start`.

    .venv/bin/python benchmarks/prefect_overhead.py [--runs 5]

Runs a flow with one parameter and one task that does nothing, in this process, and prints
the wall time of each run (median and best): declared sync, declared async (as
`publish-dataset` is), then sync with the flow run's heartbeat thread left out (by replacing
the engine's ``heartbeat_seconds`` with None, for this measurement only). Prefect 3.9 sends
heartbeats from a thread that sleeps in one-second steps; its sync engine joins that thread
when the run ends, so a short run waits for the next step; its async engine does not.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, prefect_server(Path(home)) as api:
        os.environ["PREFECT_API_URL"] = api
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
        walls = measure(args.runs)
        declared_async = measure(args.runs, declared_async=True)
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


if __name__ == "__main__":
    main()
