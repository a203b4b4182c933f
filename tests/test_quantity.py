"""The quantity grammar: number, multiplier, unit, qualifier, read from text."""

import pytest

from reportdata import parse_quantity
from reportdata.quantity import scan
from reportdata.units import resolve, unit_multiplier


@pytest.mark.parametrize(
    ("text", "value", "unit", "value_base", "unit_base", "family", "qualifier"),
    [
        ("6.3亿元", 6.3, "亿元", 630000000, "元", "money", "exact"),
        ("2900余万元", 2900, "万元", 29000000, "元", "money", "over"),
        ("近8000人", 8000, "人", 8000, "人", "people", "under"),
        ("约1.2万户", 1.2, "万户", 12000, "户", "count", "approx"),
        ("超过60所", 60, "所", 60, "所", "count", "over"),
        ("36万平方米", 36, "万平方米", 360000, "平方米", "area", "exact"),
        ("1.8万亩", 1.8, "万亩", 18000, "亩", "area", "exact"),
        ("4.5公里", 4.5, "公里", 4.5, "公里", "length", "exact"),
        ("12.6%", 12.6, "%", 12.6, "%", "percent", "exact"),
        ("0.7个百分点", 0.7, "个百分点", 0.7, "百分点", "percentage_point", "exact"),
        ("2.5倍", 2.5, "倍", 2.5, "倍", "ratio", "exact"),
        ("360万美元", 360, "万美元", 3600000, "美元", "money", "exact"),
        ("九千余名", 9000, "名", 9000, "人", "people", "over"),
        ("1200人次", 1200, "人次", 1200, "人次", "people", "exact"),
        ("百分之十二", 12, "%", 12, "%", "percent", "exact"),
        ("五十万吨", 50, "万吨", 500000, "吨", "weight", "exact"),
        ("23,400元", 23400, "元", 23400, "元", "money", "exact"),
        ("１５６家", 156, "家", 156, "家", "count", "exact"),
    ],
)
def test_parse_quantity(text, value, unit, value_base, unit_base, family, qualifier):
    q = parse_quantity(text)
    assert q is not None
    assert (q.value, q.unit, q.unit_base, q.unit_family, q.qualifier) == (
        pytest.approx(value),
        unit,
        unit_base,
        family,
        qualifier,
    )
    assert q.value_base == pytest.approx(value_base, rel=1e-12)


def test_value_base_has_no_binary_noise():
    assert parse_quantity("3.3亿元").value_base == 330000000.0
    assert parse_quantity("0.7万人").value_base == 7000.0


def test_range_gives_low_and_high():
    q = parse_quantity("3到5万元")
    assert (q.low, q.high) == (30000, 50000)
    q = parse_quantity("三四百万人")
    assert (q.low, q.high) == (3000000, 4000000)


@pytest.mark.parametrize("text", ["", "没有数字的句子", "万众一心", "一流的服务"])
def test_no_quantity(text):
    q = parse_quantity(text)
    assert q is None or (q.unit_family == "other" and text.startswith("一"))


def test_scan_offsets_index_the_original_text():
    text = "全年新增企业３２０家，带动就业1.5万人。"
    found = list(scan(text))
    assert [q.text for q in found] == ["３２０家", "1.5万人"]
    for q in found:
        assert text[q.start : q.end] == q.text


def test_unit_table_resolves_multipliers():
    assert resolve("万元") == ("money", "元", 10**4)
    assert resolve("名") == ("people", "人", 1)
    assert unit_multiplier("亿立方米") == 10**8
    assert resolve("斤") == ("weight", "千克", 0.5)
    assert resolve("xyz") is None
