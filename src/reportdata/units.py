"""Units of measure: what each unit word means, its family and canonical base unit.

This table is the single source of truth for units: the scanner's unit pattern, value_base
and the validator's multiplier check are all derived from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from reportdata.numerals import multiplier_of


@dataclass(frozen=True)
class Unit:
    """A unit word: its family, canonical unit and the factor from it to the canonical unit."""

    word: str
    family: str
    base: str
    factor: float = 1.0


# Other names of a currency, and the name its amounts are given in.
CURRENCY_ALIASES = {
    "港币": "港元",
    "台币": "新台币",
    "澳门币": "澳门元",
    "美金": "美元",
    "美圆": "美元",
    "日币": "日元",
}
# Words and signs that name the currency before an amount (人民币50元, 港币3.14, ￥300).
CURRENCY_PREFIXES = {
    "人民币": "元",
    "港币": "港元",
    "新台币": "新台币",
    "台币": "新台币",
    "澳门币": "澳门元",
    "美金": "美元",
    "￥": "元",
    "¥": "元",
    "$": "美元",
    "€": "欧元",
    "£": "英镑",
}


def _units() -> dict[str, Unit]:
    table: dict[str, Unit] = {}

    def add(family: str, base: str, words: str, factor: float = 1.0) -> None:
        for w in words.split():
            table[w] = Unit(w, family, base, factor)

    # Money: 元 and its colloquial forms; foreign currencies keep their own name.
    add("money", "元", "元 圆 块 块钱 元钱 元人民币 人民币")
    add("money", "元", "角 毛 角钱 毛钱", 0.1)
    add("money", "元", "分 分钱", 0.01)
    add("money", "美元", "美分", 0.01)
    add("money", "欧元", "欧分", 0.01)
    for cur in [
        "美元",
        "欧元",
        "港元",
        "港币",
        "日元",
        "英镑",
        "韩元",
        "澳元",
        "加元",
        "新台币",
        "台币",
        "卢布",
        "印度卢布",
        "泰铢",
        "瑞士法郎",
        "新加坡元",
        "新西兰元",
        "澳门元",
        "澳门币",
        "奈拉",
        "比索",
        "卢比",
        "林吉特",
        "越南盾",
        "瑞典克朗",
        "挪威克朗",
        "丹麦克朗",
        "兰特",
        "雷亚尔",
        "里拉",
        "法郎",
        "马克",
        "美金",
        "美圆",
        "日币",
    ]:
        add("money", CURRENCY_ALIASES.get(cur, cur), cur)
    # Area.
    add("area", "平方米", "平方米 平米 ㎡ m2 m²")
    add("area", "平方米", "平方厘米", 1e-4)
    add("area", "平方公里", "平方公里 平方千米 km2 km²")
    add("area", "亩", "亩 畝")
    add("area", "公顷", "公顷 公頃")
    # Length.
    add("length", "米", "米 m")
    add("length", "米", "厘米 cm", 0.01)
    add("length", "米", "毫米 mm", 0.001)
    add("length", "公里", "公里 千米 km")
    # Weight.
    add("weight", "吨", "吨 噸 t")
    add("weight", "千克", "千克 公斤 kg")
    add("weight", "千克", "克 g", 0.001)
    add("weight", "千克", "斤", 0.5)
    # Volume.
    add("volume", "立方米", "立方米 立方 m3 m³")
    add("volume", "升", "升 L")
    add("volume", "升", "毫升 ml mL", 0.001)
    # Energy and power.
    add("energy", "千瓦时", "千瓦时 度电 kWh")
    add("energy", "吨标准煤", "吨标准煤 吨标煤")
    add("energy", "千瓦", "千瓦 kW")
    add("energy", "千瓦", "兆瓦 MW", 1000)
    # Percentages, points, multiples.
    add("percent", "%", "%")
    add("percent", "%", "‰", 0.1)
    add("percentage_point", "百分点", "个百分点 百分点")
    add("ratio", "倍", "倍")
    # Time spans (not dates).
    add("time", "天", "天")
    # Concentrations (air quality): a family of their own is not in the guide, so "other".
    add("other", "微克/立方米", "微克/立方米 μg/m3 μg/m³")
    add("time", "小时", "小时 个小时")
    add("time", "分钟", "分钟")
    add("time", "月", "个月")
    add("time", "周", "周 个周")
    # People.
    add("people", "人", "人 名 位")
    add("people", "人次", "人次")
    # Counting classifiers keep their own name.
    add(
        "count",
        "",
        "个 家 座 栋 幢 处 项 户 所 套 辆 件 条 次 场 场次 台 批 期 起 只 头 张 本 "
        "部 篇 棵 株 艘 架 间 种 类 支 份 床 盏 把 宗 例 家次 门 组 眼 单 笔 根 班 "
        "届 轮 站 颗 枚 箱 袋 车次 架次 标段 款 路 个次 口",
    )
    return table


UNITS: dict[str, Unit] = _units()
for _w, _u in list(UNITS.items()):
    if _u.family == "count" and not _u.base:
        UNITS[_w] = Unit(_w, "count", _w)
# Classifiers that read as something else after a bare Chinese numeral (三方, 一度, 两口子).
AMBIGUOUS_AFTER_CHINESE = frozenset(
    [
        "方",
        "立方",
        "度",
        "口",
        "天",
        "m",
        "t",
        "g",
        "L",
        "路",
        "门",
        "站",
        "班",
        "轮",
        "届",
        "单",
        "笔",
        "条",
        "部",
        "本",
        "张",
        "头",
        "起",
        "期",
        "支",
        "片区",
        "名",
        "位",
        "件",
        "种",
        "类",
        "次",
        "户",
        "万",
        "m2",
        "km",
        "mm",
        "cm",
        "kg",
        "ml",
        "mL",
        "kW",
        "MW",
        "kWh",
    ]
)


# Money words that are money only where no word goes on after them: 五角 and 5毛 are amounts,
# 五角大楼 and 5亿毛利 are not; 块 only after a bare Chinese numeral (五块, but 两块牌子).
BOUNDED_UNITS = frozenset(["角", "毛"])
BOUNDED_AFTER_CHINESE = frozenset(["块"])
# Unit words that the scanner reads only in context: 分 is a hundredth of 元 after financial
# numerals (壹分) and in 元角分 amounts, but a score or a minute elsewhere.
CONTEXT_ONLY = frozenset(["分"])
# Currencies other than 元 that may follow 元 to name it (三万元欧元, 9000元日币).
FOREIGN_CURRENCIES = tuple(
    w for w, u in UNITS.items() if u.family == "money" and u.base != "元" and u.factor == 1
)


def trie_pattern(words: list[str] | set[str] | tuple[str, ...]) -> str:
    """A regex matching any of ``words``, factored by common prefixes (平方(?:米|公里)…) so
    that the engine tests one character instead of every word in turn; at each branch the
    longer continuation is tried first, as in a longest-first alternation."""
    tree: dict = {}
    for w in words:
        node = tree
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        ends = "" in node
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:
            return "(?:" + body + ")?" if len(branches) == 1 else body + "?"
        return body

    return build(tree)


def unit_pattern() -> str:
    """A regex matching every unit word the scanner reads anywhere, longest first."""
    return trie_pattern([w for w in UNITS if w not in CONTEXT_ONLY])


@lru_cache(maxsize=4096)
def resolve(unit_text: str) -> tuple[str, str, float] | None:
    """(family, base, factor) of a unit as written with its multiplier (万元 → money, 元, 1e4)."""
    if not unit_text:
        return "other", "", 1
    if unit_text in UNITS:
        u = UNITS[unit_text]
        return u.family, u.base, u.factor
    pure = multiplier_of(unit_text)
    if pure is not None:
        return "other", "", pure
    for i in range(1, len(unit_text)):
        head, word = unit_text[:i], unit_text[i:]
        if word in UNITS:
            factor = multiplier_of(head)
            if factor is not None:
                u = UNITS[word]
                return u.family, u.base, factor * u.factor
    return None


def unit_multiplier(unit: str) -> float | None:
    """The factor from value to value_base for a unit as written (万元 → 1e4, 名 → 1)."""
    found = resolve(unit)
    return None if found is None else found[2]
