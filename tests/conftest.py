"""Test settings shared by the whole suite.

Prefect reads its settings when first imported, so they are set here before any test module
imports it: a private PREFECT_HOME, no telemetry, and a generous start-up timeout.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
_PREFECT_HOME = tempfile.mkdtemp(prefix="reportdata-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.pop("PREFECT_API_URL", None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_PREFECT_HOME, ignore_errors=True)


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A fresh project folder holding this repository's sources.yaml and embedded report."""
    shutil.copy(ROOT / "sources.yaml", tmp_path / "sources.yaml")
    shutil.copytree(ROOT / "raw" / "embedded", tmp_path / "raw" / "embedded")
    return tmp_path


@pytest.fixture(scope="session")
def prefect_server():
    """One Prefect test server for the whole session (it costs ~20 s to start)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()
