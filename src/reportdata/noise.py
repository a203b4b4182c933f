"""Scraping noise that copies of reports pick up on mirror sites, removed by general rules.

- HTML entities left in the text, also when a line break split one (``&rdq`` / ``uo;``);
- a short ASCII token a site injects after many lines or sentences (a watermark);
- pinyin readings injected after characters: 區(qū).
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterator

_SPLIT_ENTITY = re.compile(r"&([a-zA-Z]{1,10})\n([a-zA-Z]{0,10};)")
_ENTITY = re.compile(r"&(?:[a-zA-Z]{2,10}|#\d{2,6}|#x[0-9a-fA-F]{2,5});")
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ"
_PINYIN = re.compile(r"[(（]([a-zü" + _TONED + r"]{1,7})[)）]")
# A token glued to the end of a line (or of a sentence) right after Chinese text.
_TOKEN_AT_END = re.compile(r"([A-Za-z0-9]{2,6})(?=[ \t]*(?:\n|$))")
_LETTER = re.compile(r"[A-Za-z]")
_GLUE = re.compile(r"[\u4e00-\u9fff。,;:!?、”’）)》】,.;:!?]")


def _entities(text: str) -> str:
    text = _SPLIT_ENTITY.sub(
        lambda m: (
            "&" + m.group(1) + m.group(2)
            if _ENTITY.fullmatch("&" + m.group(1) + m.group(2))
            else m.group(0)
        ),
        text,
    )
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)


_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def _tokens_at_line_ends(text: str) -> Iterator[str]:
    """The tokens of 2 to 6 letters and digits that end a line right after Chinese text or
    punctuation (what ``_TOKEN_AT_END`` finds there), line by line: a search for the pattern
    would try it at every digit of the text."""
    pos = 0
    for line in text.split("\n"):
        body = line.rstrip(" \t")
        start = end = len(body)
        while start > 0 and body[start - 1] in _ALNUM and end - start <= 6:
            start -= 1
        if 2 <= end - start <= 6 and pos + start > 0 and _GLUE.match(text, pos + start - 1):
            yield body[start:end]
        pos += len(line) + 1


def _watermarks(text: str) -> set[str]:
    """Tokens that end at least three lines and are mixed letters (not a word or a number)."""
    if not _LETTER.search(text):
        return set()
    counts = Counter(_tokens_at_line_ends(text))
    marks = set()
    for token, n in counts.items():
        mixed = bool(re.search(r"[A-Za-z]", token)) and bool(
            re.search(r"\d", token) or (re.search(r"[a-z]", token) and re.search(r"[A-Z]", token))
        )
        if n >= 3 and mixed:
            marks.add(token)
    return marks


def _drop_reading(m: re.Match[str]) -> str:
    """A toned reading right after a Chinese character goes; anything else stays."""
    after_hanzi = m.start() > 0 and "\u4e00" <= m.string[m.start() - 1] <= "\u9fff"
    return "" if after_hanzi and any(c in _TONED for c in m.group(1)) else m.group(0)


def clean(text: str) -> str:
    """Text with scraping noise removed; prose without noise comes back unchanged."""
    if "&" in text:
        text = _entities(text)
    if "(" in text or "（" in text:
        text = _PINYIN.sub(_drop_reading, text)
    marks = _watermarks(text)
    if marks:
        alternation = "|".join(re.escape(t) for t in sorted(marks, key=len, reverse=True))
        text = re.sub(
            r"(?<![A-Za-z0-9])(?:" + alternation + r")(?![A-Za-z0-9])",
            "",
            text,
        )
    return text
