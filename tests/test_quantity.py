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


@pytest.mark.parametrize(
    ("text", "value_base", "unit_base", "qualifier"),
    [
        ("三百元四角五分", 300.45, "元", "exact"),  # 元角分
        ("72元3角", 72.3, "元", "exact"),
        ("八块五", 8.5, "元", "exact"),  # elliptic: 八块五 = 8.5
        ("十块零五", 10.05, "元", "exact"),
        ("六毛三", 0.63, "元", "exact"),
        ("柒角", 0.7, "元", "exact"),
        ("伍佰元整", 500, "元", "exact"),
        ("贰分", 0.02, "元", "exact"),  # 分 after financial numerals
        ("九美元又五美分", 9.05, "美元", "exact"),
        ("港币 800元", 800, "港元", "exact"),  # the currency named before
        ("人民币贰拾元", 20, "元", "exact"),
        ("￥120", 120, "元", "exact"),
        ("五万元美元", 50000, "美元", "exact"),  # and after 元
        ("6.5万台币", 65000, "新台币", "exact"),
        ("两个亿英镑", 200000000, "英镑", "exact"),
        ("至少40元", 40, "元", "over"),
        ("最多三块", 3, "元", "under"),
        ("不超过20万元", 200000, "元", "under"),
        ("80万元（含）以上", 800000, "元", "over"),
    ],
)
def test_money(text, value_base, unit_base, qualifier):
    q = parse_quantity(text)
    assert (q.unit_family, q.unit_base, q.qualifier) == ("money", unit_base, qualifier)
    assert q.value_base == pytest.approx(value_base, rel=1e-12)
    assert q.text == text


def test_compound_money_keeps_value_and_unit_consistent():
    q = parse_quantity("六毛三")
    assert (q.value, q.unit) == (6.3, "毛")
    q = parse_quantity("三百元四角五分")
    assert (q.value, q.unit, q.value_base) == (300.45, "元", 300.45)


@pytest.mark.parametrize(
    ("text", "value_base"),
    [("8k左右", 8000), ("12w", 120000), ("0.5‰", 0.05), ("负百分之三", -3)],
)
def test_latin_multipliers_and_signs(text, value_base):
    assert parse_quantity(text).value_base == pytest.approx(value_base, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "low", "high", "unit_base"),
    [
        ("2到4万元", 20000, 40000, "元"),  # the first end takes the multiplier
        ("六十至九十万吨", 600000, 900000, "吨"),
        ("6000到2万元", 6000, 20000, "元"),  # unless it is larger than the second's number
        ("30~50k元", 30000, 50000, "元"),
        ("1.5万-3万元", 15000, 30000, "元"),
        ("2万元—4万元", 20000, 40000, "元"),
        ("8万(含)-12万元", 80000, 120000, "元"),
        ("五元五角-六元", 5.5, 6, "元"),
        ("100与200之间", 100, 200, ""),
        ("两三千", 2000, 3000, ""),  # two neighbouring digits
        ("六七十万人", 600000, 700000, "人"),
        ("五千多", 5000, 6000, ""),  # 多 and 余 span to the next step
        ("2亿多美元", 200000000, 300000000, "美元"),
        ("几百万", 1000000, 10000000, ""),
        ("数千户", 1000, 10000, "户"),
        ("二十几", 20, 30, ""),
        ("不低于30不高于60", 30, 60, ""),  # bounds
        ("最多90最少40", 40, 90, ""),
        ("大于5小于等于8", 5, 8, ""),
        ("200以上，400以下", 200, 400, ""),
    ],
)
def test_ranges(text, low, high, unit_base):
    q = parse_quantity(text)
    assert (q.low, q.high, q.unit_base) == (pytest.approx(low), pytest.approx(high), unit_base)
    assert q.text == text


@pytest.mark.parametrize(
    "text", ["四角形的边", "三块石头", "七角星", "两两相对", "九九归一", "半岛", "十分重要"]
)
def test_words_with_numeral_characters_are_no_money(text):
    q = parse_quantity(text)
    assert q is None or q.unit_family != "money"


def test_scan_skips_vague_quantities_unless_asked():
    text = "新签约几十个项目，投资三五亿元，另有七八个片区和半个月工期。"
    assert list(scan(text)) == []
    vague = [q.text for q in scan(text, vague=True)]
    assert vague == ["几十个", "三五亿元", "七八个", "半个月"]


def test_scan_keeps_words_after_a_number_apart():
    # 一期 after 3亿 begins a word; a dash at a line start is a bullet, not a sign.
    assert [q.text for q in scan("总投资3亿一期工程")] == []
    found = list(scan("- 5家企业，收入3块一次"))
    assert [(q.text, q.value_base) for q in found] == [("5家", 5), ("3块", 3)]


def test_traditional_numerals_keep_offsets():
    text = "全年收入參萬元，另有貳佰零參萬元。"
    found = list(scan(text))
    assert [(q.text, q.value_base) for q in found] == [("參萬元", 30000), ("貳佰零參萬元", 2030000)]
    for q in found:
        assert text[q.start : q.end] == q.text


def test_new_units_resolve():
    assert resolve("毛") == ("money", "元", 0.1)
    assert resolve("港币") == ("money", "港元", 1.0)
    assert unit_multiplier("k元") == 1000


@pytest.mark.parametrize(
    ("text", "value_base"),
    [("1·8%", 1.8), ("1 214个", 1214), ("共7 350人", 7350), ("2,460.5万元", 24605000)],
)
def test_scraped_number_forms(text, value_base):
    assert parse_quantity(text).value_base == pytest.approx(value_base)


def test_direct_reading_of_common_shapes_matches_the_general_reading(monkeypatch):
    """The shortcut for a number, multiplier and unit (4.7万人, 20.84亿元, 三项) reads
    every quantity exactly as the general reading does."""
    import random

    import reportdata.quantity as quantity

    pieces = ["3", "20.84", "0.5", "一", "两", "三十", "五", "七八", "一二", "半", "亿", "万",
              "千", "元", "块", "角", "毛", "项", "个", "人", "方", "度", "%", "美元", "余",
              "楼", "大", "以上", "到", "，", " ", "第", "和"]  # fmt: skip
    rng = random.Random(3)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))) for _ in range(3000)]
    texts += ["4.7万人", "20.84亿元", "三项工作", "五角大楼", "两块牌子", "三方", "1.5亿美元"]
    taken = []
    shortcut = quantity._read_simple

    def counted(*args):
        q = shortcut(*args)
        taken.append(q is not None)
        return q

    monkeypatch.setattr(quantity, "_read_simple", counted)
    direct = [[q for q in scan(t, require_unit=False, vague=True)] for t in texts]
    assert sum(taken) > 300  # the shortcut read many of them
    monkeypatch.setattr(quantity, "_read_simple", lambda *args: None)
    general = [[q for q in scan(t, require_unit=False, vague=True)] for t in texts]
    assert direct == general


def test_optional_groups_written_as_branches_keep_their_meaning():
    """Each optional group becomes a branch with an empty second way; escapes, classes and
    lazy or possessive groups are left alone."""
    from reportdata.quantity import _optional_as_branch

    rewritten = _optional_as_branch(r"a(?:b[)?]c)?(?P<x>d)??e(f)?+g(h)?\)?[\]x]")
    assert rewritten == r"a(?:(?:b[)?]c)|)(?P<x>d)??e(f)?+g(?:(h)|)\)?[\]x]"
    assert _optional_as_branch(r"(?P<n>\d+)(?:万)?元") == r"(?P<n>\d+)(?:(?:万)|)元"


def test_quantity_pattern_with_branches_finds_what_the_written_grammar_finds():
    """The scan's pattern (optional groups as branches) matches the grammar as written
    exactly: same spans and same groups, on many texts built from the grammar's pieces."""
    import random
    import re

    import reportdata.quantity as quantity

    written = re.compile(quantity._QUANTITY)
    assert written.pattern != quantity.QUANTITY_RE.pattern
    pieces = ["3", "20.84", "1,200", "0.5", "一", "两", "三十", "五", "七八", "几", "十几", "半",
              "亿", "万", "千", "k", "元", "块", "角", "毛", "分", "项", "个", "人", "方", "%",
              "百分之", "美元", "欧元", "人民币", "余", "多", "约", "近", "超过", "不少于",
              "大于", "小于", "以上", "以下", "左右", "之间", "(含)", "到", "至", "-", "与",
              "同时", "楼", "大", "整", "，", "、", " ", "\n", "第", "和", "年"]  # fmt: skip
    rng = random.Random(11)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(4000)]
    found = 0
    for text in texts:
        ours = [(m.span(), m.groupdict()) for m in quantity.QUANTITY_RE.finditer(text)]
        assert ours == [(m.span(), m.groupdict()) for m in written.finditer(text)], text
        found += len(ours)
    assert found > 4000  # the texts hold many quantities


@pytest.mark.parametrize(
    ("text", "quantity_text"),
    [
        ("今年出口增长3%日元贬值", "3%"),
        ("进口煤炭2万吨港币结算", "2万吨"),
        ("合同金额3000万元港元", "3000万元港元"),  # a currency word after 元 still joins
    ],
)
def test_a_currency_word_joins_only_an_amount_in_yuan(text, quantity_text):
    from reportdata.normalize import fold
    from reportdata.quantity import QUANTITY_RE

    found = [m.group(0) for m in QUANTITY_RE.finditer(fold(text))]
    assert quantity_text in found
