"""Numbers as Chinese reports write them: Arabic, Chinese, financial and mixed numerals.

Everything here works on text already folded by :func:`reportdata.normalize.fold` (full-width
digits and punctuation to ASCII), so Arabic digits are always ``0-9``.
"""

from __future__ import annotations

import re

DIGITS: dict[str, int] = {}
for _chars, _value in (
    ("零〇○洞", 0),
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
ZEROS = frozenset("零〇○洞")
SMALL_UNITS = {
    "十": 10,
    "拾": 10,
    "什": 10,
    "百": 100,
    "佰": 100,
    "陌": 100,
    "千": 1000,
    "仟": 1000,
    "阡": 1000,
}
BIG_UNITS = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8, "兆": 10**12}
ARCHAIC = {"廿": 20, "卅": 30, "卌": 40}
POINTS = frozenset("点點")
NEGATIVE = frozenset("负負")

CN_NUMERAL_CHARS = "".join(DIGITS) + "".join(SMALL_UNITS) + "".join(BIG_UNITS) + "".join(ARCHAIC)
_CN_CLASS = "[" + re.escape(CN_NUMERAL_CHARS) + "]"
# Arabic number: digits with optional thousands separators and a decimal part.
ARABIC_RE = r"\d+(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
# A Chinese numeral, possibly with a decimal part (三点五, 一百零五点二).
CHINESE_RE = _CN_CLASS + r"+(?:[点點]" + _CN_CLASS + r"+)?"
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
}


def multiplier_of(prefix: str) -> float | None:
    """The factor a multiplier word stands for (万 → 1e4, 万亿 → 1e12, '' → 1), else None."""
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
    return factor


def _digits_only(s: str) -> int | None:
    """A digit-by-digit reading (一七二零 → 1720)."""
    if not s or any(c not in DIGITS for c in s):
        return None
    return int("".join(str(DIGITS[c]) for c in s))


def _section(s: str, whole: bool = False) -> float | None:
    """A number below 万: digits with 十 百 千 and 零 as a filler.

    A run of bare digits (一七二零) reads digit by digit only when it is the ``whole`` numeral.
    """
    if not s:
        return 0
    if len(s) >= 2 and all(c in DIGITS for c in s):
        return _digits_only(s) if whole else None
    total = 0
    num: int | None = None
    last_unit = None
    zero_since_unit = False
    for ch in s:
        if ch in ZEROS:
            zero_since_unit = True
            num = None if num is None else num
            continue
        if ch in DIGITS:
            if num is not None:
                return None
            num = DIGITS[ch]
        elif ch in ARCHAIC:
            if num is not None:
                return None
            total += ARCHAIC[ch]
            last_unit = 10
        elif ch in SMALL_UNITS:
            unit = SMALL_UNITS[ch]
            if last_unit is not None and unit >= last_unit:
                return None
            total += (1 if num is None else num) * unit
            num = None
            last_unit = unit
            zero_since_unit = False
        else:
            return None
    if num is not None:
        # Elliptic form: 一百五 = 150, 千一 = 1100 (a bare digit right after a unit).
        if last_unit is not None and last_unit > 10 and not zero_since_unit:
            total += num * last_unit // 10
        else:
            total += num
    return total


def _integer(s: str, whole: bool = False) -> float | None:
    """A whole Chinese numeral, 万 and 亿 nested (一万亿 = 1e12, 三万五 = 35000)."""
    if not s:
        return None
    for big in ("亿億", "万萬"):
        cut = max(s.rfind(c) for c in big)
        if cut >= 0:
            left, right = s[:cut], s[cut + 1 :]
            factor = BIG_UNITS[s[cut]]
            lv = _integer(left) if left else 1
            if lv is None:
                return None
            if (
                right
                and right[0] not in ZEROS
                and all(c in DIGITS for c in right)
                and len(right) == 1
            ):
                rv: float | None = DIGITS[right] * factor // 10  # 三万五 = 35000
            else:
                rv = _integer(right.lstrip("".join(ZEROS))) if right.strip("".join(ZEROS)) else 0
            if rv is None:
                return None
            return lv * factor + rv
    if "兆" in s:
        left, _, right = s.rpartition("兆")
        lv = _integer(left) if left else 1
        rv = _integer(right) if right else 0
        return None if lv is None or rv is None else lv * 10**12 + rv
    return _section(s, whole)


def chinese_number(s: str) -> float | None:
    """The value of a Chinese numeral (一千零五, 三点五, 负二十, 三万五, 壹佰), else None."""
    s = s.strip()
    sign = 1
    if s and s[0] in NEGATIVE:
        sign, s = -1, s[1:]
    if not s or not any(c in DIGITS or c in ARCHAIC or c in "十拾" for c in s):
        return None  # 万, 亿 or 百 alone are words, not numbers
    point = next((i for i, c in enumerate(s) if c in POINTS), -1)
    if point < 0:
        value = _integer(s, whole=True)
        return None if value is None else sign * value
    int_part, frac = s[:point], s[point + 1 :]
    tail = ""
    while frac and frac[-1] in BIG_UNITS:
        tail = frac[-1] + tail
        frac = frac[:-1]
    if not frac or any(c not in DIGITS for c in frac):
        return None
    whole = _integer(int_part) if int_part else 0
    if whole is None:
        return None
    value = float(f"{int(whole)}.{''.join(str(DIGITS[c]) for c in frac)}")
    factor = multiplier_of(tail) or 1
    return sign * value * factor


def arabic_number(s: str) -> float | None:
    """The value of an Arabic numeral with thousands separators (1,214.5), else None."""
    cleaned = s.replace(",", "").replace(" ", "")
    try:
        return float(cleaned)
    except ValueError:
        return None


def number_value(s: str) -> float | None:
    """The value of any numeral: Arabic, Chinese, or Arabic with Chinese multipliers (4.7万)."""
    s = s.strip()
    if not s:
        return None
    sign = 1
    if s[0] in "-−" or s[0] in NEGATIVE:
        sign, s = -1, s[1:]
    m = re.fullmatch(r"(" + ARABIC_RE + r")\s*([十百千万亿萬億兆]*)", s)
    if m:
        base = arabic_number(m.group(1))
        factor = multiplier_of(m.group(2))
        if base is None or factor is None:
            return None
        return sign * base * factor
    value = chinese_number(s)
    return None if value is None else sign * value
