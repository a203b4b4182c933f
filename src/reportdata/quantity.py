"""The Chinese quantity grammar: find and read quantities (number, multiplier, unit, qualifier).

One compiled pattern finds every quantity in a single pass; each match is then read by small
anchored patterns of the same grammar. A quantity is one amount (4800余万元, 壹拾壹元壹角,
两毛五, 15k左右, 人民币 50元), a range with two ends (3到5万元, 1万(含)-5万元, 10000与20000之间,
三五百, 3000多欧元, 几十万) or a pair of bounds (大于10小于20, 1000以上, 1500以下).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from reportdata.normalize import fold
from reportdata.numerals import (
    ARCHAIC,
    BIG_UNITS,
    DIGITS,
    FINANCIAL,
    NUMERAL_RE,
    SMALL_UNITS,
    ZEROS,
    is_digit_string,
    is_elliptic,
    multiplier_of,
    numeral_value,
    split_multiplier,
)
from reportdata.units import (
    AMBIGUOUS_AFTER_CHINESE,
    BOUNDED_AFTER_CHINESE,
    BOUNDED_UNITS,
    CURRENCY_PREFIXES,
    FOREIGN_CURRENCIES,
    UNITS,
    resolve,
    unit_pattern,
)

QUALIFIER_WORDS = {
    "over": "超过 超出 多于 高于 逾 突破 余 多 以上 之多 过 至少 最少 大于 大于等于 不低于 "
    "不少于 不小于",
    "under": "将近 接近 近 不足 不到 少于 低于 以内 以下 未满 最多 至多 小于 小于等于 不超过 "
    "不高于 不多于 不大于",
    "approx": "约 大约 大概 左右 上下 来 许",
}
QUALIFIER_OF = {w: q for q, words in QUALIFIER_WORDS.items() for w in words.split()}


# 约 and 近 end other words too: 签约 节约 制约 (to sign, save, bind), 最近 附近 (recent, near).
_NOT_AFTER = {"约": "签节制预公条履违特邀契集简", "近": "最附临靠亲就邻"}


def _words(*names: str) -> str:
    """An alternation of words, longest first so that 不少于 wins over 少于."""
    return "|".join(
        (f"(?<![{_NOT_AFTER[w]}])" if w in _NOT_AFTER else "") + re.escape(w)
        for w in sorted(names, key=len, reverse=True)
    )


# Words before an amount: bounds from below and from above (which pair up in 大于10小于20),
# then other qualifiers.
_PRE_WORDS = {
    "lower": "大于等于 大于 不小于 不少于 不低于 高于 多于 超过 最少 至少",
    "upper": "小于等于 小于 不大于 不多于 不高于 不超过 低于 少于 最多 至多",
    "other": "超出 逾 突破 将近 接近 不足 不到 大约 大概 约 近",
}
_LOWER, _UPPER, _PRE_OTHER = (tuple(_PRE_WORDS[k].split()) for k in ("lower", "upper", "other"))
_PRE = _words(*_LOWER, *_UPPER, *_PRE_OTHER)
_POST = r"(?:\(含\))?(?:以上|以下|左右|上下|以内|之多)"
_SEP = r"(?:到|至|~|-{1,2}|—{1,2}|–)"
_CUR_PRE = _words(*CURRENCY_PREFIXES)
_CJK = "\u4e00-\u9fff"
_CN = re.escape("".join(DIGITS) + "".join(SMALL_UNITS) + "".join(BIG_UNITS) + "".join(ARCHAIC))
_DIGIT = "[0-9" + re.escape("".join(c for c in DIGITS if c not in ZEROS)) + "]"
_END_OF_NUMBER = "(?![" + _CN + r"\d.])"
# An elliptic digit (一块二, 两毛五) ends the amount: no word or number goes on after it.
_ELLIPTIC = _DIGIT + r"(?=$|[^" + _CJK + r"\d.]|到|至|以|左右|上下)"
_MULT = r"(?:[十百千万亿萬億]+|[kw](?![A-Za-z]))"  # not K: 4K and 8K are resolutions
_UNIT = r"(?:" + unit_pattern() + r"|(?<=[" + "".join(FINANCIAL) + r"])分(?![钟之]))"
_FEN = _DIGIT + r" ?分(?![钟之])钱?"
# What follows a yuan word: 整, or 角 and 分 (元一角七分, 块六角七分钱), or one elliptic digit
# after 块 (一块二 = 1.2, 三块零四 = 3.04); after 角 or 毛: 分 or an elliptic digit (两毛五).
_CHANGE = (
    r"(?:(?<=[元圆块])(?:[整正](?![" + _CJK + r"])"
    r"|零? ?" + _DIGIT + r" ?[角毛](?: ?零? ?" + _FEN + r"|" + _DIGIT + _END_OF_NUMBER + r")?钱?"
    r"|零? ?" + _FEN + r"|(?<=块)零?" + _ELLIPTIC + r")"
    r"|(?<=[角毛])(?:零? ?" + _FEN + r"|" + _ELLIPTIC + r"))"
)
_CENTS = r"(?<=[美欧]元) ?又? ?(?:\d{1,2}|[" + _CN + r"]{1,3}) ?[美欧]分"
# 几十万, 数十亿, 十几, 二十几万: vague counts, read as the span they allow.
_VAGUE = r"(?:[几数][十百千万亿萬億]+|" + _DIGIT + r"?十几[十百千万亿萬億]*)"


def _group(name: str | None, pattern: str) -> str:
    return f"(?P<{name}>{pattern})" if name else f"(?:{pattern})"


def _amount(named: bool) -> str:
    """One amount: a numeral with what may follow it (余 多, multiplier, unit, 角 分)."""

    def g(name: str, pattern: str) -> str:
        return _group(name if named else None, pattern)

    return (
        r"(?:"
        + g("pct", r"(?:[负負]|(?<![\dA-Za-z])-)?百分之 ?" + NUMERAL_RE)
        + r"|(?:"
        + g("vague", _VAGUE)
        + "|"
        + g("num", NUMERAL_RE)
        + r")(?: ?"
        + g("q1", "[余多来]")
        + r")?(?:个(?=[万亿萬億]))?(?: ?"
        + g("mult", _MULT)
        + r")?"
        + g("q2", "[余多]")
        + r"?(?:\s?"
        + g("unit", _UNIT)
        + r")?"
        + g("cur2", r"(?<=[元圆])(?:" + _words(*FOREIGN_CURRENCIES) + ")")
        + r"?"
        + g("change", _CHANGE)
        + r"?"
        + g("cents", _CENTS)
        + r"?)"
    )


def _optional_as_branch(pattern: str) -> str:
    """``pattern`` with each optional group ``(...)?`` written ``(?:(...)|)``: the same matches
    (a greedy ``?`` tries the group, then nothing, as the branch does), found about a third
    faster: ``re`` saves every group's mark on each optional group it enters, not on a branch.
    Lazy ``??`` and possessive ``?+`` groups stay as they are."""
    out: list[str] = []
    opens: list[int] = []  # where each group still open starts in ``out``
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif c == "[":
            j = i + 1 + (pattern[i + 1 : i + 2] == "^")
            j += pattern[j : j + 1] == "]"  # a ] first in a class is a character
            while pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(pattern[i : j + 1])
            i = j + 1
        elif c == "(":
            opens.append(len(out))
            out.append(c)
            i += 1
        elif c == ")":
            start = opens.pop()
            out.append(c)
            i += 1
            if pattern[i : i + 1] == "?" and pattern[i + 1 : i + 2] not in ("?", "+"):
                group = "".join(out[start:])
                del out[start:]
                out.append("(?:" + group + "|)")
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


_A = _amount(named=False)
_CONNECT = r" ?(?:的同时|同时|并且|而且|并|且|但)? ?"
# Where a quantity may start: a numeral, a sign, 百分之, 几/数, a qualifier or a currency.
_WORD_FIRST = re.escape("".join(sorted({w[0] for w in (*_LOWER, *_UPPER, *_PRE_OTHER)})))
_CUR_FIRST = re.escape("".join(sorted({w[0] for w in CURRENCY_PREFIXES})))
_START = r"(?=[\d.\-负負半几数" + _CN + _WORD_FIRST + _CUR_FIRST + r"])"
_QUANTITY = (
    _START + r"(?:(?=[" + _WORD_FIRST + r"])(?:(?P<lw>" + _words(*_LOWER) + r")"
    r"|(?P<uw>" + _words(*_UPPER) + r")|(?P<pre>" + _PRE + r")) ?)?"
    r"(?:(?=[" + _CUR_FIRST + r"])(?P<cur>" + _CUR_PRE + r") {0,2})?"
    r"(?P<span>" + _amount(named=True) + r"(?:(?:\(含\))?\s?"
    r"(?P<sep>" + _SEP + r"|[与和及](?= ?" + _A + r" ?之?间))\s?(?P<to>" + _A + r"))?"
    r")(?P<between> ?之?间)?(?P<post>(?:\(含\))?(?:(?P<above>以上)|以下|左右|上下|以内|之多))?"
    # A second bound: 大于10小于20, 最多100最少20, 1000以上, 1500以下.
    r"(?P<second>(?(lw)" + _CONNECT + r"(?:" + _words(*_UPPER) + r")"
    r"|(?(uw)" + _CONNECT + r"(?:" + _words(*_LOWER) + r")"
    r"|(?(above) ?[,、]? {0,2}|(?!)))) ?" + _A + r"(?(above)以下|))?"
)
QUANTITY_RE = re.compile(_optional_as_branch(_QUANTITY))
_AMOUNT = re.compile(_optional_as_branch(_amount(named=True)))
_AMOUNT_GROUPS = ("pct", "vague", "num", "q1", "mult", "q2", "unit", "cur2", "change", "cents")
_SECOND = re.compile(
    _optional_as_branch(
        r" ?[,、]? {0,2}(?:的同时|同时|并且|而且|并|且|但)? ?(?P<word>"
        + _words(*_LOWER, *_UPPER)
        + r")? ?(?P<amount>"
        + _A
        + r")(?:以下)?"
    )
)
# 參 folds to 参 (to take part); as a numeral it is read as 叁.
_KEEP_NUMERALS = str.maketrans({"參": "叁"})


@dataclass(slots=True)
class Quantity:
    """A quantity read from text; ``start``/``end`` index the text it was read from.

    ``value`` is the number as written and ``unit`` the unit as written with its multiplier
    (4800余万元: 4800, 万元); ``value_base`` is in ``unit_base``. A range, a fuzzy amount (三五百,
    3000多 = 3000 to 4000) or a pair of bounds also has ``low`` <= ``high`` in ``unit_base``,
    and ``value`` is the end written first (the low end, unless the text puts the high end
    first: 10至6). ``vague`` marks quantities that are no reported figure: a
    span given in words (几十万, 数十亿, 十几, 三五百) or a half (半, 半个月).
    """

    value: float
    unit: str
    value_base: float
    unit_base: str
    unit_family: str
    qualifier: str
    text: str
    start: int
    end: int
    low: float | None = None
    high: float | None = None
    numeral: str = ""
    chinese: bool = False
    vague: bool = False


def scale(value: float, factor: float) -> float:
    """value × factor without binary noise (2.2 × 1e8 = 220000000, not 220000000.00000003)."""
    if factor == 1:
        return float(value)
    product = float(value) * float(factor)
    rounded = float(f"{product:.15g}")  # the noise sits beyond the 15th significant digit
    return rounded if math.isclose(rounded, product, rel_tol=1e-14) else product


@dataclass(slots=True)
class _Amount:
    """One amount as read, before its unit is resolved."""

    value: float
    mult: str
    unit: str
    numeral: str
    chinese: bool
    words: tuple[str, ...] = ()
    low: float | None = None  # as written, before the multiplier
    high: float | None = None
    vague: bool = False
    change: float = 0.0  # 角 分 and cents, in the main unit's base
    currency: str = ""  # a currency named after 元 (三万元欧元)


_FUZZY_PAIR = re.compile(r"(.)(.)([十百千拾佰仟]?)([万亿萬億]*)")


def _fuzzy_pair(numeral: str) -> tuple[float, float, str] | None:
    """三五百 → (300, 500, ''), 三四十万 → (30, 40, 万), 七八 → (7, 8, ''): two digits a step
    or two apart stand for the span between them."""
    m = _FUZZY_PAIR.fullmatch(numeral)
    if not m or m.group(1) not in DIGITS or m.group(2) not in DIGITS:
        return None
    d1, d2 = DIGITS[m.group(1)], DIGITS[m.group(2)]
    if not (1 <= d1 < d2 <= d1 + 2):
        return None
    small = SMALL_UNITS.get(m.group(3), 1)
    return d1 * small, d2 * small, m.group(4)


def _vague(text: str) -> tuple[float, float, str] | None:
    """几十万 → (10, 100, 万); 数十亿 → (10, 100, 亿); 十几 → (10, 20, ''); 几万 → (1, 10, 万)."""
    m = re.fullmatch(r"[几数]([十百千])?([万亿萬億]*)", text)
    if m:
        small = SMALL_UNITS.get(m.group(1) or "", 1)
        return small, 10 * small, m.group(2)
    m = re.fullmatch(r"(.?)十几([万亿萬億]*)", text)
    if m:
        tens = DIGITS.get(m.group(1), 1) if m.group(1) else 1
        return tens * 10, tens * 10 + 10, m.group(2)
    return None


def _step(value: float) -> float:
    """The place of the last significant digit: 3000 → 1000, 4800 → 100, 1.5 → 0.1."""
    digits, _, exponent = f"{abs(value):.15e}".partition("e")
    mantissa = digits.replace(".", "").rstrip("0") or "0"
    return 10.0 ** (int(exponent) - len(mantissa) + 1)


def _change_value(change: str, after: str) -> float:
    """角 and 分 after a yuan word (一角七分 → 0.17, 二 after 块 → 0.2, 零四 → 0.04), or cents."""
    if "美分" in change or "欧分" in change:
        cents = numeral_value(re.sub(r"[又美欧分 ]", "", change))
        return (cents or 0) / 100
    place = 0.01 if after and after in "角毛" else 0.1
    total = Decimal(0)
    pending: int | None = None
    for ch in change:
        if ch in ZEROS:
            place = 0.01
        elif ch.isdigit() or ch in DIGITS:
            pending = int(ch) if ch.isdigit() else DIGITS[ch]
        elif ch in "角毛" and pending is not None:
            total += pending * Decimal("0.1")
            pending, place = None, 0.01
        elif ch == "分" and pending is not None:
            total += pending * Decimal("0.01")
            pending = None
    if pending is not None:
        total += pending * Decimal(repr(place))
    return float(total)


_ANY_DIGIT = re.compile(r"\d")
_FUZZY_WORDS = frozenset(["余", "多"])


@lru_cache(maxsize=4096)
def _chinese_reading(
    numeral: str,
) -> tuple[tuple[float, float, str] | None, str, str, float | None, bool, bool]:
    """What a numeral without Arabic digits reads as: its fuzzy pair (三五百), its body and
    multiplier, the body's value, and whether the body is a digit string or elliptic. Such
    numerals are few (一, 两, 三十, 五百), so their readings are kept."""
    pair = _fuzzy_pair(numeral)
    body, tail = split_multiplier(numeral)
    return pair, body, tail, numeral_value(body), is_digit_string(body), is_elliptic(body)


def _read_amount(m: re.Match[str] | None) -> _Amount | None:
    """The amount read from the named groups of ``m`` (the scan's own or ``_AMOUNT``'s)."""
    if m is None:
        return None
    pct, vague, num, q1, mult, q2, unit, cur2, change, cents = m.group(*_AMOUNT_GROUPS)
    words = (q1, q2) if q1 and q2 else (q1,) if q1 else (q2,) if q2 else ()
    unit, mult = unit or "", mult or ""
    if pct is not None:
        numeral = "".join(pct.split()).replace("百分之", "", 1)  # 负百分之三 = -3%
        value = numeral_value(numeral)
        if value is None:
            return None
        return _Amount(value, "", "%", numeral, not any(c.isdigit() for c in numeral))
    if vague is not None:
        span = _vague(vague)
        if span is None:
            return None
        low, high, tail = span
        return _Amount(low, tail + mult, unit, vague, True, words, low, high, True)
    numeral = "".join(num.split()) if " " in num else num
    chinese = _ANY_DIGIT.search(numeral) is None
    follows = bool(mult or unit or q1 or q2)
    if chinese:
        pair, body, tail, value, digit_string, elliptic = _chinese_reading(numeral)
        if pair is not None and (follows or pair[0] >= 10 or pair[2]):
            low, high, tail = pair
            amount = _Amount(low, tail + mult, unit, numeral, True, words, low, high, True)
            return _finish(amount, unit, cur2, change, cents)
        elliptic = elliptic or digit_string
    else:
        body, tail = split_multiplier(numeral)
        value = numeral_value(body)
        elliptic = is_elliptic(body)
    if value is None:
        return None
    if follows and elliptic:
        return None  # 一二三元 is no amount; in 三亿一期 the 一 begins a word
    amount = _Amount(value, tail + mult, unit, body, chinese, words, vague="半" in body)
    if q1 in _FUZZY_WORDS or q2 in _FUZZY_WORDS:
        amount.low, amount.high = value, value + _step(value)  # 3000多 = 3000 to 4000
    return _finish(amount, unit, cur2, change, cents)


def _finish(
    amount: _Amount, unit: str, cur2: str | None, change: str | None, cents: str | None
) -> _Amount:
    """The amount with the 角 分 or cents after its unit and the currency named after 元."""
    if change and change[0] not in "整正":
        amount.change = _change_value(change, unit[-1:])
    if cents:
        amount.change += _change_value(cents, "")
    amount.currency = cur2 or ""
    return amount


@dataclass(slots=True)
class _Resolved:
    value: float
    unit: str
    value_base: float
    unit_base: str
    family: str
    factor: float


def _resolve(a: _Amount, currency: str) -> _Resolved | None:
    """The amount with its unit resolved; ``currency`` is named before the amount (人民币)."""
    unit_word = a.unit
    named = a.currency or currency
    if named:
        base = UNITS[named].base if named in UNITS else CURRENCY_PREFIXES[named]
        if not unit_word:
            unit_word = base
        elif unit_word in ("元", "圆", "块", "元人民币") and base != "元":
            unit_word = base  # 港币两千九百六十元, 三万元欧元: the named currency
    unit = a.mult + unit_word
    found = resolve(unit)
    if found is None:
        return None
    family, base, factor = found
    value = a.value
    if a.change:
        value = float(Decimal(repr(value)) + Decimal(repr(a.change)) / Decimal(repr(factor)))
    return _Resolved(value, unit, scale(value, factor), base, family, factor)


def _qualifier(*words: str) -> str:
    qualifier = "exact"
    for word in words:
        if word and word.removeprefix("(含)") in QUALIFIER_OF:
            qualifier = QUALIFIER_OF[word.removeprefix("(含)")]
    return qualifier


def _unit_fits(a: _Amount, folded: str, end: int) -> bool:
    """False for a unit word that reads as something else here: after a bare Chinese numeral
    (三方, 两块牌子), or before more of a word (五角大楼, 5亿毛利)."""
    bare = a.chinese and not (a.mult or a.words or a.vague)
    if bare and a.unit in AMBIGUOUS_AFTER_CHINESE:
        return False
    if a.unit in BOUNDED_UNITS or (bare and a.unit in BOUNDED_AFTER_CHINESE):
        return bool(a.change) or not ("\u4e00" <= folded[end : end + 1] <= "\u9fff")
    return True


def _inherit(a: _Amount, b: _Amount) -> _Amount:
    """The first end of a range takes the unit of the second, and its multiplier where the
    number is smaller than the second's: 两到三万 = 2万 to 3万, 8500到3万 = 8500 to 3万."""
    if a.unit or a.change:
        return a
    a.unit, a.currency = b.unit, b.currency
    if a.mult:
        return a
    b_number, b_factor = numeral_value(b.numeral), multiplier_of(b.mult)
    if b.low is not None or b_number is None or b_factor is None:
        return a
    b_value = b_number * b_factor
    run = re.search(r"[十百千万亿拾佰仟萬億kw]+$", b.numeral + b.mult)
    if run is None:
        return a
    tail = run.group()
    for i in range(len(tail)):
        factor = multiplier_of(tail[i:])
        if factor is not None and a.value * factor <= b_value:
            a.mult = tail[i:]
            break
    return a


_SIMPLE_GROUPS = (
    "lw",
    "uw",
    "pre",
    "pct",
    "vague",
    "q1",
    "q2",
    "cur2",
    "change",
    "cents",
    "post",
    "between",
    "sep",
)


# Arabic digits with a multiplier written into the numeral (20.84亿), as split_multiplier
# splits them.
_MULTIPLIER_CHARS = "".join(SMALL_UNITS) + "".join(BIG_UNITS)
_ARABIC_MULTIPLIED = re.compile(r"([0-9]+(?:\.[0-9]+)?)([" + re.escape(_MULTIPLIER_CHARS) + r"]+)")


def _read_simple(m: re.Match[str], folded: str, text: str) -> Quantity | None:
    """The common shapes, read directly: a number with a multiplier and a unit (4.7万人,
    20.84亿元, 三项); None leaves the match to the general reading, which gives the same."""
    num, mult, unit = m.group("num", "mult", "unit")
    chinese = False
    if num.isascii() and num.replace(".", "", 1).isdigit():
        body, tail, value = num, "", float(num)
    elif (split := _ARABIC_MULTIPLIED.fullmatch(num)) is not None:
        body, tail = split.groups()
        if multiplier_of(tail) is None:
            return None
        value = float(body)
    elif _ANY_DIGIT.search(num) is None and " " not in num:
        pair, body, tail, value, digit_string, elliptic = _chinese_reading(num)
        if pair is not None or digit_string or elliptic or value is None or "半" in body:
            return None  # a fuzzy pair, a word (一二三元) or a half: the general reading
        chinese = True
    else:
        return None
    mult = tail + (mult or "")
    found = resolve(mult + unit)
    if found is None:
        return None
    if chinese and not mult and unit in AMBIGUOUS_AFTER_CHINESE:
        return None  # 三方, 一度
    bounded = unit in BOUNDED_UNITS or (chinese and not mult and unit in BOUNDED_AFTER_CHINESE)
    end = m.end()
    if bounded and "\u4e00" <= folded[end : end + 1] <= "\u9fff":
        return None
    family, base, factor = found
    start = m.start()
    return Quantity(
        value,
        mult + unit,
        scale(value, factor),
        base,
        family,
        "exact",
        text[start:end],
        start,
        end,
        None,
        None,
        body,
        chinese,
    )


_UNIT_MARKS = ("unit", "pct", "cur", "to", "second")


def _read(m: re.Match[str], folded: str, text: str, require_unit: bool) -> Quantity | None:
    unit, pct, currency, to, second = m.group(*_UNIT_MARKS)
    if require_unit and not (unit or pct or currency or to or second):
        return None
    if unit and not (currency or to or second) and not any(m.group(*_SIMPLE_GROUPS)):
        simple = _read_simple(m, folded, text)
        if simple is not None:
            return simple
    main = _read_amount(m)
    if main is None:
        return None
    start, end = m.start(), m.end()
    currency = currency or ""
    first, res, low, high = main, None, None, None
    lw, uw, pre, post = m.group("lw", "uw", "pre", "post")
    words = [lw or uw or pre or "", *main.words, post or ""]
    last = main
    if to is not None:
        # A range: 3到5万元, 1万(含)-5万元, 10000与20000之间.
        last = _read_amount(_AMOUNT.fullmatch(m.group("to")))
        if last is None:
            return None
        if m.group("sep") in "与和及" and last.unit == "间":
            last.unit = ""  # 10000与20000间: 间 is "between", not rooms
        _inherit(main, last)
        res, r_b = _resolve(main, currency), _resolve(last, currency)
        if res is None or r_b is None or (main.unit and res.family != r_b.family):
            return None
        low = res.value_base
        high = r_b.value_base if last.high is None else scale(last.high, r_b.factor)
    elif second is not None:
        # Two bounds: 大于10小于20, 不大于50不小于20, 1000以上, 1500以下.
        parts = _SECOND.fullmatch(second)
        other = _read_amount(_AMOUNT.fullmatch(parts.group("amount"))) if parts else None
        if other is None:
            return None
        last = other
        lo, hi = (main, other) if lw or m.group("above") else (other, main)
        _inherit(lo, hi) if not lo.unit else _inherit(hi, lo)
        r_lo, r_hi = _resolve(lo, currency), _resolve(hi, currency)
        if r_lo is None or r_hi is None or r_lo.family != r_hi.family:
            return None
        first, res, low, high, words = lo, r_lo, r_lo.value_base, r_hi.value_base, []
    else:
        res = _resolve(main, currency)
        if res is None:
            return None
        if main.low is not None and main.high is not None:
            low, high = scale(main.low, res.factor), scale(main.high, res.factor)
    if not _unit_fits(last, folded, end):
        return None
    if require_unit and not (first.unit or last.unit):
        return None
    if low is not None and high is not None and low > high:
        low, high = high, low  # 10至6, 负3到负5, 大于20小于10: the span is the same
    qualifier = _qualifier(*words)
    if first.vague and qualifier == "exact":
        qualifier = "approx"
    return Quantity(
        value=float(res.value),
        unit=res.unit,
        value_base=res.value_base,
        unit_base=res.unit_base,
        unit_family=res.family,
        qualifier=qualifier,
        text=text[start:end],
        start=start,
        end=end,
        low=None if low is None else float(low),
        high=None if high is None else float(high),
        numeral=first.numeral,
        chinese=first.chinese,
        vague=first.vague,
    )


def scan(
    text: str, *, require_unit: bool = True, vague: bool = False, folded: str | None = None
) -> Iterator[Quantity]:
    """Every quantity in ``text``, left to right; offsets index ``text`` itself.

    With ``require_unit`` only quantities with a unit; with ``vague`` also the vague ones
    (几十万, 三五百, 半个月), which are no reported figures.
    """
    if folded is None or "參" in text:
        folded = fold(text.translate(_KEEP_NUMERALS) if "參" in text else text)
    for m in QUANTITY_RE.finditer(folded):
        q = _read(m, folded, text, require_unit)
        if q is not None and _finite(q) and (vague or not q.vague):
            yield q


def _finite(q: Quantity) -> bool:
    """False for an amount beyond a float's range (value_base of 1e300万亿 is infinite)."""
    isfinite = math.isfinite
    return (
        isfinite(q.value)
        and isfinite(q.value_base)
        and (q.low is None or isfinite(q.low))
        and (q.high is None or isfinite(q.high))
    )


def _standalone(q: Quantity, whole: str) -> bool:
    """A bare numeral of one character (一切, 四川) or a digit string (九九) read inside other
    words is no number; such a numeral counts only as the whole text."""
    if q.unit or q.text == whole or not q.chinese:
        return True
    return len(q.numeral) > 1 and not is_digit_string(q.numeral)


def parse_quantity(text: str) -> Quantity | None:
    """The quantity in ``text`` (value, unit, value_base, unit_base, unit_family, qualifier,
    low and high for a range), or None when there is none."""
    best = None
    whole = text.strip()
    for q in scan(text, require_unit=False, vague=True):
        if not _standalone(q, whole):
            continue
        if best is None or (q.end - q.start) > (best.end - best.start):
            best = q
    return best


__all__ = ["QUANTITY_RE", "ZEROS", "Quantity", "parse_quantity", "scale", "scan"]
