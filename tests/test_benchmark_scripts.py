"""The benchmark scripts stay in step with the code they time: a function they wrap by name
and that no longer exists would break the benchmark only when someone next runs it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", ROOT / "benchmarks" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _missing(names: list[tuple[str, str]]) -> list[str]:
    """Those of ``(module[:class], attribute)`` that name no function."""
    missing = []
    for where, attr in names:
        module_name, _, cls = where.partition(":")
        owner = importlib.import_module(module_name)
        if cls:
            owner = getattr(owner, cls, None)
        if not callable(getattr(owner, attr, None)):
            missing.append(f"{where}.{attr}")
    return missing


def test_every_function_the_scale_benchmark_times_exists():
    timed = _script("scale").TIMED
    assert len(timed) > 20
    assert _missing([(where, attr) for where, attr, _label in timed]) == []


def test_every_function_the_history_benchmark_times_exists():
    parts = _script("history").PARTS
    assert _missing([(where, attr) for _label, where, attr in parts]) == []


def test_a_function_gone_is_named():
    assert _missing([("reportdata.publish", "_check_spliced")]) == [
        "reportdata.publish._check_spliced"
    ]
