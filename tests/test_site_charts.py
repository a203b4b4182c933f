"""The charts ranked and cut in SQL give the bars the JSON tables give, to the bit, and bring
back only the rows the bars need."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

import reportdata.site as site_module
from reportdata.site import (
    ChartData,
    chart_rows,
    family_bars,
    largest_bars,
    section_bars,
    warehouse_charts,
)

INDICATOR_COLUMNS = (
    "indicator_id VARCHAR, subject VARCHAR, quantity_text VARCHAR, section_id VARCHAR, "
    "unit_family VARCHAR, value_base DOUBLE"
)
SECTION_COLUMNS = "section_id VARCHAR, heading VARCHAR, kind VARCHAR"


def _warehouse(root: Path) -> tuple[duckdb.DuckDBPyConnection, dict[str, Any]]:
    """An empty DuckDB file with what `warehouse_charts` reads (versions, latest_indicators,
    latest_sections), open for writing, and the catalog entry pointing at it."""
    (root / "d").mkdir(parents=True)
    con = duckdb.connect(str(root / "d/d.duckdb"))
    con.execute("CREATE TABLE versions (version VARCHAR, is_latest BOOLEAN)")
    con.execute("INSERT INTO versions VALUES ('1.0.0', false), ('1.1.0', true)")
    con.execute(f"CREATE TABLE latest_indicators ({INDICATOR_COLUMNS})")
    con.execute(f"CREATE TABLE latest_sections ({SECTION_COLUMNS})")
    return con, {"name": "d", "duckdb": "d/d.duckdb", "latest": "1.1.0"}


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, Any]]:
    """A table's rows as the JSON tables hold them."""
    result = con.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _both_ways(root: Path, dataset: dict[str, Any]) -> tuple[ChartData, ChartData]:
    """The charts' data from the DuckDB file, and from its rows as JSON tables."""
    con = duckdb.connect(str(root / dataset["duckdb"]), read_only=True)
    indicators, sections = _rows(con, "latest_indicators"), _rows(con, "latest_sections")
    con.close()
    random.Random(5).shuffle(indicators)  # the JSON way sums in no row order either
    from_db = warehouse_charts(root, dataset)
    assert from_db is not None
    return from_db, chart_rows(indicators, sections)


def _same_page(a: ChartData, b: ChartData) -> None:
    assert a == b
    for bars in (largest_bars, section_bars, family_bars):
        assert bars(a) == bars(b)
    assert site_module._charts(a, "1.1.0") == site_module._charts(b, "1.1.0")


def _added(values: list[float]) -> float:
    total = 0.0
    for value in sorted(values):
        total += value
    return total


# ---------------------------------------------------------------------------- tricky rows

SECTIONS = [
    ("a1", "一、经济", "heading"),
    ("a2", "一、经济", "heading"),  # another report's section of the same heading
    ("l1", "", "lead"),
    ("l2", None, "lead"),
    ("l3", "导语", "heading"),  # a heading that reads like the lead's label
    ("u1", "", "heading"),
    ("u2", None, None),
]
INDICATORS = [  # id, section, family, value_base, subject; in the order stored in DuckDB
    ("i-0001", "a1", "money", 1e16, "甲收入"),
    ("i-0003", "a2", "money", 1.0, "小额"),
    ("i-0002", "a2", "money", 1.0, "小额"),
    ("i-0009", "u2", "money", 3e16, "乙"),  # tied with i-0004: ranked after it
    ("i-0004", "u1", "money", 3e16, "甲"),
    ("i-0005", "l1", "money", 2.5e4, "导语一"),
    ("i-0006", "l2", "money", 0.1, "导语二"),
    ("i-0007", "l3", "money", 0.2, "导语三"),
    ("i-0008", "gone", "money", 7e3, "没有章节"),
    *(
        (f"x-{i}", "a1", "money", bad, "不画")
        for i, bad in enumerate([0.0, -0.0, -5e17, math.inf, -math.inf, math.nan, None])
    ),
    ("p-0001", "a1", "people", 9e17, "人口"),
    ("p-0002", "a1", None, 9e17, "无类"),
    ("p-0003", "a1", "", 9e17, "空类"),
]
BASE_SUMS = {
    "（无标题）": 6e16,
    # Smallest first: 1 + 1 + 1e16 is 1e16 + 2; in the stored order (1e16 first) it is 1e16.
    "一、经济": 1.0000000000000002e16,
    "导语": (0.1 + 0.2) + 2.5e4,
    "gone": 7e3,
}


def _tricky(root: Path, topics: int) -> dict[str, Any]:
    """The rows above, and ``topics`` more labels whose sums tie in pairs."""
    con, dataset = _warehouse(root)
    sections = [*SECTIONS, *((f"t{i}", f"专题{i:02d}", "heading") for i in range(topics))]
    con.executemany("INSERT INTO latest_sections VALUES (?, ?, ?)", sections)
    rows = [(i, s, f, v, subject) for i, s, f, v, subject in INDICATORS]
    rows += [(f"t-{i}", f"t{i}", "money", 1e3 * (i // 2 + 1), "专题") for i in range(topics)]
    con.executemany(
        "INSERT INTO latest_indicators VALUES (?, ?, ?, ?, ?, ?)",
        [(i, subject, f"{subject}数", s, f, v) for i, s, f, v, subject in rows],
    )
    con.close()
    return dataset


@pytest.mark.parametrize("topics", [0, 8, 9, 25])  # 4, 12, 13 and 29 labels
def test_both_ways_give_the_same_bars_on_tricky_rows(tmp_path: Path, topics: int) -> None:
    dataset = _tricky(tmp_path, topics)
    from_db, from_json = _both_ways(tmp_path, dataset)
    _same_page(from_db, from_json)

    # Ties in indicator_id order; the bad values, zero and negative ones, and other units out.
    largest = [(f.indicator_id, f.value) for f in from_db.largest]
    assert largest[:3] == [("i-0004", 3e16), ("i-0009", 3e16), ("i-0001", 1e16)]
    assert len(largest) == min(10, 9 + topics)
    assert all(v > 0 and math.isfinite(v) for _, v in largest)
    assert from_db.families == {"money": 16 + topics, "people": 1, "other": 2}

    # Sums by label (one label for several sections), ranked, the smallest past 12 lumped.
    sums = {**BASE_SUMS, **{f"专题{i:02d}": 1e3 * (i // 2 + 1) for i in range(topics)}}
    ranked = sorted(sums.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) > 12:
        ranked = [*ranked[:11], ("其他章节", _added([v for _, v in ranked[11:]]))]
    assert [(b.label, b.value) for b in section_bars(from_db)] == ranked
    assert from_db.sections.count == len(sums)


def test_no_money_gives_empty_charts_both_ways(tmp_path: Path) -> None:
    con, dataset = _warehouse(tmp_path)
    con.execute("INSERT INTO latest_indicators VALUES ('p', 's', '3人', 'a', 'people', 3)")
    con.close()
    from_db, from_json = _both_ways(tmp_path, dataset)
    _same_page(from_db, from_json)
    assert not largest_bars(from_db) and not section_bars(from_db)
    assert from_db.sections == site_module.SectionSums([], 0, 0.0)


# ---------------------------------------------------------------------------- many rows


class _Counting:
    """A DuckDB connection that notes how many rows each fetch brings back."""

    def __init__(self, con: duckdb.DuckDBPyConnection, fetched: list[int]) -> None:
        self._con, self._fetched = con, fetched

    def execute(self, *args: Any) -> _Counting:
        self._con.execute(*args)
        return self

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows = self._con.fetchall()
        self._fetched.append(len(rows))
        return rows

    def close(self) -> None:
        self._con.close()


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """150,000 figures (two row groups, so DuckDB sums in parallel) with fractional values
    whose sums depend on the order they are added in, over 3,000 sections of 60 headings."""
    root = tmp_path_factory.mktemp("many")
    con, dataset = _warehouse(root)
    con.execute(
        "INSERT INTO latest_sections SELECT 's' || i, CASE WHEN i % 61 = 0 THEN '' "
        "ELSE '标题' || (i % 60) END, CASE WHEN i % 2 = 0 THEN 'lead' ELSE 'heading' END "
        "FROM range(3000) AS r(i)"
    )
    con.execute(
        "INSERT INTO latest_indicators SELECT 'id-' || lpad((hash(i) % 1000000007)::VARCHAR, "
        "10, '0') || '-' || i, '主体' || (i % 7), NULL, 's' || (hash(i + 1) % 3000), "
        "CASE WHEN i % 10 = 0 THEN 'people' ELSE 'money' END, "
        "CASE WHEN i % 97 = 0 THEN -1.5 ELSE ((hash(i + 2) % 100000000) + 1) * 1.37 END "
        "FROM range(150000) AS r(i)"
    )
    con.close()
    return root, dataset


def test_many_rows_give_the_same_bars_both_ways_every_time(
    many: tuple[Path, dict[str, Any]],
) -> None:
    root, dataset = many
    from_db, from_json = _both_ways(root, dataset)
    _same_page(from_db, from_json)
    assert from_db.sections.count > 12 and section_bars(from_db)[-1].label == "其他章节"
    for _ in range(3):
        assert warehouse_charts(root, dataset) == from_db


def test_the_duckdb_way_fetches_only_the_rows_of_the_bars(
    many: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, dataset = many
    fetched: list[int] = []
    connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: _Counting(connect(*a, **k), fetched))
    data = warehouse_charts(root, dataset)
    assert data is not None
    # The version check, the 10 largest, the 12 largest label sums, the two unit families.
    assert fetched == [1, 10, 12, 2]
    assert len(data.largest) == 10 and len(data.sections.top) == 12
