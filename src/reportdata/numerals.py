"""Numbers as Chinese reports write them: Arabic, Chinese, financial and mixed numerals.

Everything here works on text already folded by :func:`reportdata.normalize.fold` (full-width
digits and punctuation to ASCII), so Arabic digits are always ``0-9``.

One evaluator reads every form: 一千零五, 三点五, 壹佰, 4.7万, 7万5千4百, 200亿零四千230,
elliptic 三万五 (35000) and 千一 (1100), digit by digit 一七二零 (1720), fractions 五分之一 and
3又一千分之23, halves 半 and 半百, and numerals spaced out as 一百 五 十 二.
"""

from __future__ import annotations

import math
import re
import sys
from decimal import Decimal, InvalidOperation

DIGITS: dict[str, int] = {}
for _chars, _value in (
    ("零〇○", 0),
    ("一壹幺弌", 1),
    ("二两贰貳兩俩倆弍", 2),
    ("三叁參叄弎", 3),
    ("四肆", 4),
    ("五伍", 5),
    ("六陆陸", 6),
    ("七柒", 7),
    ("八捌", 8),
    ("九玖", 9),
):
    for _c in _chars:
        DIGITS[_c] = _value
ZEROS = frozenset("零〇○")
LIANG = frozenset("两兩俩倆")  # 2 as a count, never a digit read out one by one
FINANCIAL = frozenset("壹贰貳叁參叄肆伍陆陸柒捌玖拾佰仟")
SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
BIG_UNITS = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8, "兆": 10**12}
ARCHAIC = {"廿": 20, "卅": 30, "卌": 40}
LATIN_MULTIPLIERS = {"k": 10**3, "w": 10**4}
POINTS = frozenset("点點")
NEGATIVE = frozenset("负負")

CN_NUMERAL_CHARS = "".join(DIGITS) + "".join(SMALL_UNITS) + "".join(BIG_UNITS) + "".join(ARCHAIC)
_CN_CLASS = "[" + re.escape(CN_NUMERAL_CHARS) + "]"
_UNIT_CHARS = "".join(SMALL_UNITS) + "".join(BIG_UNITS)
# Arabic number: digits with optional thousands separators and a decimal part.
ARABIC_RE = r"\d+(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# A Chinese numeral, possibly with a decimal part (三点五, 一百零五点二).
CHINESE_RE = _CN_CLASS + r"+(?:[点點]" + _CN_CLASS + r"+)?"

# A numeral as written, for the scanner: Chinese characters and Arabic numbers mixed
# (7万5千4百), up to two spaces before a Chinese character (一百 五 十 二, 1000  万), a decimal
# part (四百 点 五, 零点77) and a multiplier after it (零点零零三四二万). The body is atomic:
# a numeral is never split back into shorter numerals while matching.
# Digits with thousands separators (1,214 or 1 214) and a decimal point ("·" is a point that
# scraped pages print for "."): 1,214.5, 1 214, 1·8.
# The digit runs of the first two forms are possessive: giving digits back leaves a digit
# where the separator must stand, so it never helps, and trying it is slow.
_ARABIC_TOKEN = (
    r"(?:\d++(?:,\d{3})+(?:[.·]\d+)?|\d{1,3}+(?: \d{3}(?!\d))+(?:[.·]\d+)?|\d+(?:[.·]\d+)?)"
)
_BODY = (
    r"(?>(?:" + _ARABIC_TOKEN + r"|(?<![\d.])\.\d+|" + _CN_CLASS + r")"
    r"(?: {0,2}" + _CN_CLASS + r"(?:" + _ARABIC_TOKEN + r"|  ?\d++(?=[十百千万亿萬億]))?)*+"
    r"(?: {0,2}[点點] {0,2}(?:\d++|[" + re.escape("".join(DIGITS)) + r"]++)"
    r"(?: {0,2}[" + re.escape("".join(BIG_UNITS)) + r"])*+)?)"
)
_SIGN = r"(?:(?<![\dA-Za-z])-|[负負] ?)"  # "- 3" at a line start is a list bullet
_HALF = r"一?半(?:[百千万亿萬億])?"
_OF = r" ?分 ?之 ?"
# A number, or a fraction: 五分之一, 一百分之2, 千分之五, 3又一千分之23, 负五分之6.
NUMERAL_RE = (
    r"(?:" + _SIGN + r")?(?:" + _HALF + r"|(?:" + _BODY + r"|[百千万萬](?=" + _OF + r"))"
    r"(?: ?又 ?" + _BODY + r"(?=" + _OF + r"))?(?:" + _OF + _BODY + r")?)"
)

MULTIPLIER_WORDS = {
    "万亿": 10**12,
    "萬億": 10**12,
    "千亿": 10**11,
    "百亿": 10**10,
    "十亿": 10**9,
    "亿": 10**8,
    "億": 10**8,
    "千万": 10**7,
    "千萬": 10**7,
    "百万": 10**6,
    "百萬": 10**6,
    "十万": 10**5,
    "十萬": 10**5,
    "万": 10**4,
    "萬": 10**4,
    "千": 10**3,
    "仟": 10**3,
    "百": 10**2,
    "佰": 10**2,
    "十": 10,
    **LATIN_MULTIPLIERS,
}


def multiplier_of(prefix: str) -> float | None:
    """The factor a multiplier word stands for (万 → 1e4, 万亿 → 1e12, k → 1e3, '' → 1),
    else None; None too for a run no float can hold (亿亿亿… forty times)."""
    if not prefix:
        return 1
    if prefix in MULTIPLIER_WORDS:
        return MULTIPLIER_WORDS[prefix]
    factor = 1
    for ch in prefix:
        if ch in BIG_UNITS:
            factor *= BIG_UNITS[ch]
        elif ch in SMALL_UNITS:
            factor *= SMALL_UNITS[ch]
        else:
            return None
    return factor if factor <= sys.float_info.max else None


_TOKENS = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?|\.\d+|\S")


def _tokens(s: str) -> list[str]:
    return _TOKENS.findall(s)


def _is_arabic(tok: str) -> bool:
    return tok[0].isdigit() or tok[0] == "."


def _arabic(tok: str) -> Decimal:
    return Decimal(tok.replace(",", "").replace(" ", "").replace("·", "."))


def is_digit_string(s: str) -> bool:
    """A run of two or more bare Chinese digits (一七二零, 二〇三五): read digit by digit."""
    body = s.split("点")[0].split("點")[0]
    return len(body) >= 2 and all(c in DIGITS for c in body)


def is_elliptic(s: str) -> bool:
    """A numeral ending in a bare digit that stands for the unit below the last one (三万五,
    一百二, 千一)."""
    return (
        len(s) >= 2
        and (s[-1] in DIGITS or s[-1].isdigit())
        and s[-1] not in ZEROS
        and s[-1] != "0"
        and (s[-2] in BIG_UNITS or SMALL_UNITS.get(s[-2], 0) > 10)
    )


def _digit_string(toks: list[str]) -> Decimal | None:
    if any(t in LIANG for t in toks):
        return None  # 两两 is no number
    return Decimal("".join(str(DIGITS[t]) for t in toks))


def _integer(toks: list[str]) -> Decimal | None:
    """A whole number below the decimal point: units nest (一万三千亿), 零 fills, an Arabic
    number stands where a digit may (200亿零四千230), a final bare digit is elliptic (三万五)."""
    if not toks:
        return None
    if len(toks) >= 2 and all(t in DIGITS for t in toks):
        return _digit_string(toks)
    groups: list[tuple[Decimal, int]] = []  # parts already multiplied by 万/亿, with magnitude
    section = Decimal(0)
    num: Decimal | None = None
    has = False  # anything since the last 万/亿
    last_small: int | None = None
    prev_unit = 0  # the unit token just before the current one, 0 when none
    elliptic_unit = 0
    for tok in toks:
        unit = 0
        if _is_arabic(tok) or (tok in DIGITS and tok not in ZEROS):
            if num is not None:
                return None
            num = _arabic(tok) if _is_arabic(tok) else Decimal(DIGITS[tok])
            single = not _is_arabic(tok) or (len(tok) == 1 and tok != "0")
            elliptic_unit = prev_unit if single else 0
            has = True
        elif tok in ZEROS:
            if num is not None:
                return None
            has = True
        elif tok in ARCHAIC:
            if num is not None:
                return None
            section += ARCHAIC[tok]
            last_small, has, unit = 10, True, 10
        elif tok in SMALL_UNITS:
            u = SMALL_UNITS[tok]
            if last_small is not None and u >= last_small:
                return None
            section += (num if num is not None else 1) * u
            num, last_small, has, unit = None, u, True, u
        elif tok in BIG_UNITS:
            big = BIG_UNITS[tok]
            value = section + (num or 0)
            mag = 1
            if has:
                while groups and groups[-1][1] < big:  # 一万三千亿: the lower groups too
                    part, m = groups.pop()
                    value, mag = value + part, max(mag, m)
                if groups and groups[-1][1] <= big:
                    return None  # 三万二万: a second group of the same order
            elif groups and groups[-1][1] <= big:  # 万万, 千万亿: multiply what stands
                while groups and groups[-1][1] <= big:
                    part, m = groups.pop()
                    value, mag = value + part, max(mag, m)
            elif not groups:
                value = Decimal(1)  # 萬九: a leading 万 is one 万
            else:
                return None
            groups.append((value * big, mag * big))
            section, num, has, last_small, unit = Decimal(0), None, False, None, big
        else:
            return None
        prev_unit = unit
    if num is not None:
        if elliptic_unit > 10:
            num *= elliptic_unit // 10  # 三万五 = 35000, 千一 = 1100, 一百二 = 120
        section += num
    return sum((g for g, _ in groups), Decimal(0)) + section


def _decimal(s: str) -> Decimal | None:
    """A numeral without sign, fraction or half: integer part, 点 and digits, a multiplier."""
    point = next((i for i, c in enumerate(s) if c in POINTS), -1)
    if point < 0:
        toks = _tokens(s)
        return _integer(toks) if toks else None
    int_part, frac = s[:point], s[point + 1 :]
    tail = ""
    while frac and frac[-1] in BIG_UNITS:
        tail, frac = frac[-1] + tail, frac[:-1]
    if frac.isdigit() and frac.isascii():
        digits = frac
    elif frac and all(c in DIGITS for c in frac):
        digits = "".join(str(DIGITS[c]) for c in frac)
    else:
        return None
    whole = _integer(_tokens(int_part)) if int_part else Decimal(0)
    if whole is None:
        return None
    factor = multiplier_of(tail)
    return None if factor is None else (whole + Decimal("0." + digits)) * factor


def _has_digit(s: str) -> bool:
    return any(c.isdigit() or c in DIGITS or c in ARCHAIC or c in "十拾半" for c in s)


def _value(s: str) -> Decimal | None:
    s = "".join(s.split())
    if not s or not _has_digit(s):
        return None  # 万, 亿 or 百 alone are words, not numbers
    sign = 1
    if s[0] in "-−" or s[0] in NEGATIVE:
        sign, s = -1, s[1:]
    if "分之" in s:
        head, _, numer = s.partition("分之")
        whole_text, _, den_text = head.rpartition("又")
        whole = _decimal(whole_text) if whole_text else Decimal(0)
        den = _decimal(den_text) if _has_digit(den_text) else multiplier_of(den_text)
        num = _decimal(numer)
        if whole is None or den is None or num is None or den == 0:
            return None
        return sign * (whole + num / Decimal(den))
    if s in ("半", "一半"):
        return sign * Decimal("0.5")
    if s[0] == "半":
        factor = multiplier_of(s[1:])
        return None if factor is None else sign * Decimal("0.5") * factor
    value = _decimal(s)
    return None if value is None else sign * value


_PLAIN_ARABIC = re.compile(r"-?" + _ARABIC_TOKEN)


def numeral_value(s: str) -> float | None:
    """The value of any numeral (一千零五, 4.7万, 7万5千4百, 三万五, 五分之一, 半), else None;
    None too for a numeral beyond a float's range (a run of 400 digits is no amount)."""
    if _PLAIN_ARABIC.fullmatch(s):
        value = float(s.replace(",", "").replace(" ", "").replace("·", "."))
    else:
        try:
            exact = _value(s)
        except InvalidOperation:
            return None
        if exact is None:
            return None
        value = float(exact)
    return value if math.isfinite(value) else None


_ARABIC_MULTIPLIER = re.compile(r"([-负負]?(?:" + _ARABIC_TOKEN + r"))([" + _UNIT_CHARS + r"]+)")


def split_multiplier(numeral: str) -> tuple[str, str]:
    """The number as written and its multiplier: 4800万 → (4800, 万), 3千万亿 → (3, 千万亿),
    四千八百万 → (四千八百, 万). A trailing 万/亿 is the multiplier only when the body holds
    no other 万/亿 (一百亿零十万 stays whole)."""
    if numeral.isascii() and numeral.replace(".", "", 1).isdigit():
        return numeral, ""
    s = "".join(numeral.split())
    m = _ARABIC_MULTIPLIER.fullmatch(s)
    if m and multiplier_of(m.group(2)) is not None:
        return m.group(1), m.group(2)
    body = s.rstrip("".join(BIG_UNITS))
    tail = s[len(body) :]
    if not tail or not _has_digit(body) or any(c in BIG_UNITS for c in body):
        return s, ""
    if "分之" in body or body[-1] in POINTS or body[-1] in "又负負-":
        return s, ""
    return body, tail


def chinese_number(s: str) -> float | None:
    """The value of a Chinese numeral (一千零五, 三点五, 负二十, 三万五, 壹佰), else None."""
    s = s.strip()
    if any(c.isdigit() for c in s):
        return None
    return numeral_value(s)


def number_value(s: str) -> float | None:
    """The value of any numeral: Arabic, Chinese, or Arabic with Chinese multipliers (4.7万)."""
    return numeral_value(s)
