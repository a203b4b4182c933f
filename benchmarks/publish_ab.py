"""One-report runs with and without each of the publisher's overlaps, interleaved.

    .venv/bin/python benchmarks/publish_ab.py [--reports 1000] [--rounds 6]

The scale benchmark's runs are minutes apart, and this machine's speed drifts by more than
the speed-ups it would compare. Here one project of N made-up reports (`benchmarks/scale.py`'s
templates, server and child runs, default runner) is published once; then each round changes
one report and runs the flow once per variant, in a shuffled order, each run changing another
report on top of the previous version:

- ``both``: as shipped (the Frictionless check in a helper process, the DuckDB append
  prepared while the version is checked);
- ``no helper``: Frictionless checks in the run's process;
- ``no prepared append``: the DuckDB append made after the version's rename;
- ``neither``.

Medians and ranges of each variant's wall time, its publish step and what lies outside the
steps are printed, in seconds, with the load average over the runs.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale  # the scale benchmark's machinery

VARIANTS = {
    "both": [],
    "no helper": ["helper"],
    "no prepared append": ["prepared-append"],
    "neither": ["helper", "prepared-append"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    n = args.reports
    base = Path(tempfile.mkdtemp(prefix="reportdata-ab-"))
    home = base / "prefect-home"
    home.mkdir()
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    loads = []
    try:
        with scale.prefect_server(home) as api:
            env = scale.run_env(api, home)
            reports = [scale.make_report(i, args.seed) for i in range(n)]
            with scale.ReportServer(reports) as server:
                root = base / "project"
                scale.write_project(root, reports, server.base)
                spec = {"root": str(root), "runner": "default", "workers": 1}
                first = scale.run_child(spec, env)
                print(f"first run: {first['wall']:.1f} s", flush=True)
                rng = random.Random(args.seed)
                changed = 0
                for round_ in range(args.rounds):
                    order = list(VARIANTS)
                    rng.shuffle(order)
                    for variant in order:
                        server.change(reports[(n // 2 + changed) % n].path)
                        changed += 1
                        r = scale.run_child({**spec, "off": VARIANTS[variant]}, env)
                        assert r["new"], r
                        results[variant].append(r)
                        loads.append(r["load_before"])
                        print(
                            f"round {round_ + 1} {variant:20} wall {r['wall']:.2f} s, publish "
                            f"{r['steps']['publish']:.2f} s, outside the steps "
                            f"{r['orchestration']:.2f} s",
                            flush=True,
                        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"\n{n} reports, {args.rounds} rounds; load average {min(loads):.1f}–{max(loads):.1f}")
    print("| variant | wall | publish | outside the steps |")
    print("|---|---:|---:|---:|")
    for variant, runs in results.items():
        cells = []
        for get in (
            lambda r: r["wall"],
            lambda r: r["steps"]["publish"],
            lambda r: r["orchestration"],
        ):
            xs = [get(r) for r in runs]
            cells.append(f"{statistics.median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})")
        print(f"| {variant} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
