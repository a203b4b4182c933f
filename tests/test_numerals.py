"""Numerals as Chinese reports write them."""

import pytest

from reportdata.numerals import (
    chinese_number,
    is_digit_string,
    is_elliptic,
    multiplier_of,
    number_value,
    split_multiplier,
)


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


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8万3千2百", 83200),  # Arabic digits before Chinese units
        ("6亿零七千150", 600007150),
        ("2万900", 20900),
        ("4百07", 407),
        ("3万2千零40万", None),  # two 万 groups out of order
        ("八千 六百 二十", 8620),  # spaced out
        ("九百 点 二", 900.2),
        ("4万万", 400000000),
        ("2千万亿", 2 * 10**15),
        ("五万三千亿", 5.3 * 10**12),
        ("零点零七万", 700),
        ("七点25", 7.25),
        (".35", 0.35),
        ("-.8", -0.8),
        ("四分之三", 0.75),
        ("8分之2", 0.25),
        ("2又四分之一", 2.25),
        ("负三又二分之一", -3.5),
        ("千分之六", 0.006),
        ("半", 0.5),
        ("半千", 500),
        ("两万三", 23000),  # elliptic
        ("千二", 1200),
        ("萬四", 14000),
        ("卅八", 38),
        ("九〇二", 902),  # digit by digit
        ("四四", 44),
        ("两两", None),  # 两 is never read digit by digit
    ],
)
def test_numerals_of_every_form(text, value):
    if value is None:
        assert number_value(text) is None
    else:
        assert number_value(text) == pytest.approx(value, rel=1e-12)


def test_value_has_no_binary_noise():
    assert number_value("3.3亿") == 330000000.0
    assert number_value("零点零七万") == 700.0


@pytest.mark.parametrize(
    ("text", "split"),
    [
        ("6200万", ("6200", "万")),
        ("5千万亿", ("5", "千万亿")),
        ("九千三百万", ("九千三百", "万")),
        ("零点五亿", ("零点五", "亿")),
        ("七亿零三十万", ("七亿零三十万", "")),  # 万 inside a numeral with 亿
        ("六万四", ("六万四", "")),
    ],
)
def test_split_multiplier(text, split):
    assert split_multiplier(text) == split


def test_elliptic_and_digit_strings():
    assert is_elliptic("两万三") and is_elliptic("千二") and is_elliptic("3万5")
    assert not is_elliptic("二十三") and not is_elliptic("一百零三") and not is_elliptic("35")
    assert is_digit_string("九〇二") and is_digit_string("四四点五")
    assert not is_digit_string("四十四")


def test_latin_multipliers():
    assert multiplier_of("k") == 1000
    assert multiplier_of("w") == 10**4
    assert multiplier_of("kg") is None
