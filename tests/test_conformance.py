"""Conformance of ``parse_quantity`` with the peers' test vectors in ../shared/conformance.

Each file is read from disk as it stands; a case passes or fails, the pass rate of each file
must reach its floor, and a failing assertion lists every failing case.

How a line maps to the :class:`~reportdata.quantity.Quantity` that ``parse_quantity(text)``
returns (numbers compare with a relative tolerance of 1e-9, absolute 1e-12 near zero, the rule of
``score_indicators.py``):

- ``numerals.jsonl``: ``value`` == ``value_base``. The peers give the plain number, so a text
  with only a multiplier (三百万) or an approximate suffix (500余万, whose peer value is the base
  number 5000000) compares on ``value_base``; so does a cheque-style amount (壹拾壹元壹角 = 11.1)
  or a classifier (半个 = 0.5), whose unit factor is 1. ``low`` and ``high`` are not compared:
  500余万 also carries the span 5000000 to 6000000 that 余 allows.
- ``money.jsonl``: ``unit_family`` == "money", ``unit_base`` == ``currency`` and ``value_base``
  == ``value``, since ``value_base`` is in units of the canonical currency (五毛 = 0.5 元);
  ``qualifier`` must match where the line gives one (an absent one is not read as "exact"). A
  line tagged ``implicit-currency`` names no currency in its text (三百万, 15k左右); the parser
  does not invent one, so there ``unit_base`` may also be empty (and the family "other").
- ``ranges.jsonl``: ``low`` and ``high`` match; where the line gives ``currency`` the family is
  money and ``unit_base`` == ``currency``. Open or closed ends (``interval``) are not compared.
- ``negatives.jsonl``: ``no-number`` → ``None``; ``no-money`` → ``None`` or a quantity whose
  family is not money.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from reportdata import Quantity, parse_quantity

CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance"


def _close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _numeral(case: dict, q: Quantity | None) -> bool:
    return q is not None and _close(q.value_base, case["value"])


def _money(case: dict, q: Quantity | None) -> bool:
    if q is None or not _close(q.value_base, case["value"]):
        return False
    implicit = "implicit-currency" in case.get("tags", [])
    money = q.unit_family == "money" and q.unit_base == case["currency"]
    if not (money or (implicit and not q.unit_base)):
        return False
    return "qualifier" not in case or q.qualifier == case["qualifier"]


def _range(case: dict, q: Quantity | None) -> bool:
    if q is None or not (_close(q.low, case["low"]) and _close(q.high, case["high"])):
        return False
    if "currency" in case:
        return q.unit_family == "money" and q.unit_base == case["currency"]
    return True


def _negative(case: dict, q: Quantity | None) -> bool:
    if case["expect"] == "no-number":
        return q is None
    return q is None or q.unit_family != "money"


def _describe(q: Quantity | None) -> str:
    if q is None:
        return "None"
    fields = f"value_base={q.value_base!r} unit_base={q.unit_base!r} family={q.unit_family}"
    if q.low is not None:
        fields += f" low={q.low!r} high={q.high!r}"
    return f"{fields} qualifier={q.qualifier} text={q.text!r}"


def _expected(case: dict) -> str:
    keep = ("value", "low", "high", "currency", "qualifier", "expect")
    return " ".join(f"{k}={case[k]!r}" for k in keep if k in case)


CHECKS: dict[str, tuple[Callable[[dict, Quantity | None], bool], float]] = {
    "numerals.jsonl": (_numeral, 0.99),
    "money.jsonl": (_money, 0.97),
    "ranges.jsonl": (_range, 0.95),
    "negatives.jsonl": (_negative, 1.0),
}


def run(name: str) -> tuple[int, list[str]]:
    """(number of cases, one line for each failing case) for a conformance file."""
    check, _floor = CHECKS[name]
    lines = (CONFORMANCE / name).read_text(encoding="utf-8").splitlines()
    cases = [json.loads(line) for line in lines if line.strip()]
    failures = []
    for case in cases:
        q = parse_quantity(case["text"])
        if not check(case, q):
            failures.append(f"{case['text']!r}: want {_expected(case)}; got {_describe(q)}")
    return len(cases), failures


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="conformance vectors not present")
@pytest.mark.parametrize("name", list(CHECKS))
def test_conformance_floor(name: str) -> None:
    total, failures = run(name)
    rate = (total - len(failures)) / total
    floor = CHECKS[name][1]
    report = "\n".join(failures)
    assert rate >= floor, f"{name}: {rate:.1%} < {floor:.0%}, failing cases:\n{report}"
