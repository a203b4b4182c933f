"""Frictionless checks in a helper process: the same answers as a check here, and a check
here whenever the helper cannot answer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reportdata import package_check
from reportdata.validate import validate_package


@pytest.fixture(autouse=True)
def no_helper_left() -> Iterator[None]:
    package_check.stop()
    yield
    package_check.stop()
    assert package_check._HELPER == []


@pytest.fixture
def broken_package(tmp_path: Path) -> Path:
    """A package whose rows break their schema: a number that is not one, a key twice, a
    foreign key to nothing, and a hash that is not the file's."""
    (tmp_path / "places.csv").write_text(
        "place_id,name\n1,历下\nx,市中\n1,槐荫\n", encoding="utf-8"
    )
    (tmp_path / "figures.csv").write_text("figure_id,place_id\nf1,1\nf2,9\n", encoding="utf-8")
    descriptor = {
        "name": "broken",
        "resources": [
            {
                "name": "places",
                "path": "places.csv",
                "hash": "sha256:" + "0" * 64,
                "schema": {
                    "fields": [
                        {"name": "place_id", "type": "integer"},
                        {"name": "name", "type": "string"},
                    ],
                    "primaryKey": ["place_id"],
                },
            },
            {
                "name": "figures",
                "path": "figures.csv",
                "schema": {
                    "fields": [
                        {"name": "figure_id", "type": "string"},
                        {"name": "place_id", "type": "integer"},
                    ],
                    "primaryKey": ["figure_id"],
                    "foreignKeys": [
                        {
                            "fields": ["place_id"],
                            "reference": {"resource": "places", "fields": ["place_id"]},
                        }
                    ],
                },
            },
        ],
    }
    path = tmp_path / "datapackage.json"
    path.write_text(json.dumps(descriptor, ensure_ascii=False), encoding="utf-8")
    return path


def _not_here(path: object) -> dict:
    raise AssertionError("checked in this process")


def test_the_helper_answers_what_a_check_here_answers(
    broken_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = package_check.raw_check(broken_package)
    kinds = {e["type"] for t in here["tasks"] for e in t["errors"]}
    assert not here["valid"] and {"type-error", "primary-key", "hash-count"} <= kinds
    report_here = validate_package(broken_package)

    package_check.start()
    (helper,) = package_check._HELPER
    monkeypatch.setattr(package_check, "raw_check", _not_here)
    assert package_check.check(broken_package) == here
    assert validate_package(broken_package) == report_here
    assert package_check._HELPER[0] is helper  # kept for the next check
    package_check.stop()
    assert helper.returncode is not None  # ended


def test_a_relative_path_names_the_same_package(
    broken_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(broken_package.parent)
    here = package_check.raw_check(broken_package)
    package_check.start()
    monkeypatch.setattr(package_check, "raw_check", _not_here)
    assert package_check.check("datapackage.json") == here


def test_a_helper_that_died_leaves_the_check_to_this_process(broken_package: Path) -> None:
    package_check.start()
    (helper,) = package_check._HELPER
    helper.kill()
    helper.wait()
    assert package_check.check(broken_package) == package_check.raw_check(broken_package)
    assert package_check._HELPER == []


def test_a_helper_that_answers_nonsense_is_not_asked_again(broken_package: Path) -> None:
    echo = "import sys\nfor line in sys.stdin:\n    print('[1, 2]', flush=True)\n"
    fake = subprocess.Popen(
        [sys.executable, "-c", echo], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    package_check._HELPER.append(fake)
    assert package_check.check(broken_package) == package_check.raw_check(broken_package)
    assert package_check._HELPER == [] and fake.returncode is not None


def test_a_helper_silent_past_its_deadline_is_ended_and_the_check_runs_here(
    broken_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung helper does not hold the run: past `_patience` the check runs here (this fake
    would answer "valid" for the right path, but only after a minute)."""
    valid = {"valid": True, "errors": [], "tasks": []}
    slow = (
        "import json, sys, time\n"
        "for line in sys.stdin:\n"
        "    time.sleep(60)\n"
        f"    print(json.dumps({{**{valid!r}, 'path': json.loads(line)}}), flush=True)\n"
    )
    fake = subprocess.Popen(
        [sys.executable, "-c", slow], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    package_check._HELPER.append(fake)
    monkeypatch.setattr(package_check, "_patience", lambda path: 0.5)
    answer = package_check.check(broken_package)
    assert answer == package_check.raw_check(broken_package) and not answer["valid"]
    assert package_check._HELPER == [] and fake.returncode is not None


def test_the_deadline_grows_with_the_package(tmp_path: Path) -> None:
    (tmp_path / "datapackage.json").write_bytes(b"{}")
    empty = package_check._patience(str(tmp_path / "datapackage.json"))
    (tmp_path / "big.csv").write_bytes(b"x" * 2**21)
    assert empty >= package_check.PATIENCE_S
    assert package_check._patience(str(tmp_path / "datapackage.json")) >= empty + 3.9


def test_a_descriptor_frictionless_cannot_read_is_reported_as_here(tmp_path: Path) -> None:
    garbled = tmp_path / "datapackage.json"
    garbled.write_text("{not json", encoding="utf-8")
    here = package_check.raw_check(garbled)
    assert not here["valid"] and here["errors"]
    package_check.start()
    assert package_check.check(garbled) == here
    assert len(package_check._HELPER) == 1  # an answer, not a failure


def test_an_answer_about_another_package_is_not_taken(broken_package: Path) -> None:
    """A helper answering for another path (or of other code) is dropped, and the check
    runs here."""
    valid = {"valid": True, "errors": [], "tasks": [], "path": "/elsewhere/datapackage.json"}
    line = json.dumps(json.dumps(valid))
    reply = f"import sys\nfor line in sys.stdin:\n    print({line}, flush=True)\n"
    fake = subprocess.Popen(
        [sys.executable, "-c", reply], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    package_check._HELPER.append(fake)
    answer = package_check.check(broken_package)
    assert answer == package_check.raw_check(broken_package) and not answer["valid"]
    assert package_check._HELPER == []


def test_a_question_cut_short_ends_the_helper(
    broken_package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its answer would otherwise be read as the answer to the next question."""
    package_check.start()
    (helper,) = package_check._HELPER

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(package_check, "_ask", interrupted)
    with pytest.raises(KeyboardInterrupt):
        package_check.check(broken_package)
    assert package_check._HELPER == [] and helper.returncode is not None
