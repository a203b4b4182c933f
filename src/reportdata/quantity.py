"""The Chinese quantity grammar: find and read quantities (number, multiplier, unit, qualifier)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from reportdata.normalize import fold
from reportdata.numerals import (
    ARABIC_RE,
    BIG_UNITS,
    CHINESE_RE,
    DIGITS,
    ZEROS,
    chinese_number,
    multiplier_of,
    number_value,
)
from reportdata.units import AMBIGUOUS_AFTER_CHINESE, resolve, unit_pattern

QUALIFIER_WORDS = {
    "over": "超过 超出 多于 高于 逾 突破 余 多 以上 之多 过",
    "under": "将近 接近 近 不足 不到 少于 低于 以内 以下 未满",
    "approx": "约 大约 大概 左右 上下 来 许",
}
QUALIFIER_OF = {w: q for q, words in QUALIFIER_WORDS.items() for w in words.split()}

_PRE = r"(?P<pre>超过|超出|多于|高于|逾|突破|将近|接近|不足|不到|少于|低于|大约|大概|约|近)?"
_NUM = r"(?:[-−负]\s?)?(?:" + ARABIC_RE + r"|" + CHINESE_RE + r")"
_PCT = r"百分之(?P<pct>" + CHINESE_RE + r"|" + ARABIC_RE + r")"
_MULT = r"(?P<mult>万亿|千亿|百亿|十亿|千万|百万|十万|亿|万|千|百|萬億|億|萬)"
QUANTITY_RE = re.compile(
    _PRE
    + r"(?:"
    + _PCT
    + r"|(?P<num>"
    + _NUM
    + r")(?:\s?(?P<sep>到|至|~|-|—|－)\s?(?P<num2>"
    + _NUM
    + r"))?(?P<q1>余|多|来|几)?"
    + _MULT
    + r"?(?P<q2>余|多)?\s?(?P<unit>"
    + unit_pattern()
    + r")?)(?P<post>以上|以下|左右|上下|以内|之多)?"
)


@dataclass(frozen=True)
class Quantity:
    """A quantity read from text; ``start``/``end`` index the text it was read from."""

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


def _split_chinese_multiplier(numeral: str) -> tuple[str, str]:
    """四千八百万 → (四千八百, 万): a trailing 万/亿 is the written multiplier when it is the
    only 万/亿 in the numeral (一百亿零十万 stays whole)."""
    body = numeral.rstrip("".join(BIG_UNITS))
    tail = numeral[len(body) :]
    if not body or not tail or any(c in BIG_UNITS for c in body):
        return numeral, ""
    return body, tail


def _has_digit(numeral: str) -> bool:
    return any(c.isdigit() or c in DIGITS or c in "十拾廿卅卌" for c in numeral)


def _fuzzy_chinese(numeral: str) -> tuple[float, float] | None:
    """两三百 → (200, 300), 十几 → handled by caller: two adjacent digits before a unit."""
    m = re.fullmatch(r"([一二两三四五六七八九])([二三四五六七八九])([十百千万亿]+)", numeral)
    if not m or DIGITS[m.group(2)] != DIGITS[m.group(1)] + 1:
        return None
    factor = multiplier_of(m.group(3)) or 1
    return DIGITS[m.group(1)] * factor, DIGITS[m.group(2)] * factor


def scale(value: float, factor: float) -> float:
    """value × factor without binary noise (2.2 × 1e8 = 220000000, not 220000000.00000003)."""
    return float(Decimal(repr(float(value))) * Decimal(repr(float(factor))))


def _read(m: re.Match[str], text: str, require_unit: bool) -> Quantity | None:
    pre, post = m.group("pre") or "", m.group("post") or ""
    unit_word = m.group("unit") or ""
    low = high = None
    chinese = False
    if m.group("pct") is not None:
        value = number_value(m.group("pct"))
        if value is None:
            return None
        mult, unit_word, numeral = "", "%", m.group("pct")
        chinese = not numeral[0].isdigit()
    else:
        numeral = m.group("num").strip()
        mult = m.group("mult") or ""
        chinese = not any(c.isdigit() for c in numeral)
        if chinese:
            if not _has_digit(numeral):
                return None
            if not mult:
                numeral, mult = _split_chinese_multiplier(numeral)
            value = chinese_number(numeral)
            if value is None:
                fuzzy = _fuzzy_chinese(numeral + mult)
                if fuzzy is None:
                    return None
                (low, high), value, mult = fuzzy, fuzzy[0], ""
        else:
            value = number_value(numeral)
        if value is None:
            return None
        if m.group("num2"):
            second = number_value(m.group("num2"))
            if second is None:
                return None
            low, high = value, second
    if require_unit and not unit_word:
        return None
    approx_word = bool(m.group("q1") or m.group("q2"))
    if chinese and unit_word in AMBIGUOUS_AFTER_CHINESE and not mult and not approx_word:
        return None
    unit = mult + unit_word
    if unit:
        found = resolve(unit)
        if found is None:
            return None
        family, base, factor = found
    else:
        family, base, factor = "other", "", 1
    qualifier = "exact"
    for word in (pre, m.group("q1") or "", m.group("q2") or "", post):
        if word in QUALIFIER_OF:
            qualifier = QUALIFIER_OF[word]
    if m.group("q1") == "几":
        return None
    start, end = m.start(), m.end()
    if low is not None and high is not None:
        low, high = scale(low, factor), scale(high, factor)
    return Quantity(
        value=float(value),
        unit=unit,
        value_base=scale(value, factor),
        unit_base=base,
        unit_family=family,
        qualifier=qualifier,
        text=text[start:end],
        start=start,
        end=end,
        low=low,
        high=high,
        numeral=numeral,
        chinese=chinese,
    )


def scan(text: str, *, require_unit: bool = True) -> Iterator[Quantity]:
    """Every quantity in ``text``, left to right; offsets index ``text`` itself."""
    folded = fold(text)
    for m in QUANTITY_RE.finditer(folded):
        if not m.group("num") and m.group("pct") is None:
            continue
        q = _read(m, text, require_unit)
        if q is not None:
            yield q


def parse_quantity(text: str) -> Quantity | None:
    """The quantity in ``text`` (value, unit, value_base, unit_base, unit_family, qualifier,
    low and high for a range), or None when there is none."""
    best = None
    whole = text.strip()
    for q in scan(text, require_unit=False):
        if q.chinese and not q.unit and len(q.numeral) == 1 and q.text != whole:
            continue  # a lone 一 or 万 inside a word (一切, 万众) is no number
        if best is None or (q.end - q.start) > (best.end - best.start):
            best = q
    return best


__all__ = ["QUANTITY_RE", "ZEROS", "Quantity", "parse_quantity", "scan"]
