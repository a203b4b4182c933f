"""Numerals as Chinese reports write them."""

import pytest

from reportdata.numerals import chinese_number, multiplier_of, number_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("七", 7),
        ("十", 10),
        ("十五", 15),
        ("二十", 20),
        ("一百零八", 108),
        ("三千零六十", 3060),
        ("两千", 2000),
        ("九万六千", 96000),
        ("六万七", 67000),  # elliptic: the unit after 万 is dropped
        ("八百五", 850),
        ("一亿零二百万", 102000000),
        ("三百亿零五万", 30000050000),
        ("五万亿", 5 * 10**12),
        ("贰仟肆佰", 2400),
        ("參萬", 30000),
        ("兩億", 200000000),
        ("零点二五", 0.25),
        ("九点零八", 9.08),
        ("四点二万", 42000),
        ("负六", -6),
        ("二〇三五", 2035),  # digit by digit
    ],
)
def test_chinese_numerals(text, value):
    assert chinese_number(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize("text", ["万", "亿", "百", "千千", "一二万三", ""])
def test_malformed_chinese_numerals_are_none(text):
    assert chinese_number(text) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3,456.7", 3456.7),
        ("12", 12),
        ("6.8万", 68000),
        ("2.35亿", 235000000),
        ("7.1万亿", 7.1e12),
        ("-4.5", -4.5),
        ("九十", 90),
    ],
)
def test_number_value_reads_arabic_mixed_and_chinese(text, value):
    assert number_value(text) == pytest.approx(value, rel=1e-12)


def test_multiplier_words():
    assert multiplier_of("") == 1
    assert multiplier_of("万") == 10**4
    assert multiplier_of("亿") == 10**8
    assert multiplier_of("万亿") == 10**12
    assert multiplier_of("千万") == 10**7
    assert multiplier_of("元") is None
