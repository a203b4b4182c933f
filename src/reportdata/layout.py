"""Layout repair and structure: paragraphs, headings, sidebars, credits.

Newspaper pages and scraped sites break text in ways a reader never sees: a word split
across a column break, a boxed sidebar dropped into the middle of a sentence, headlines
and credits mixed with the body. :func:`structure` repairs these by general rules and
returns the repaired text with its sections as spans of that text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from reportdata.noise import clean
from reportdata.normalize import fold
from reportdata.units import resolve

# Characters that may end a complete paragraph.
_TERMINAL = set('。!?;:…”’"』」)】》')
_SENTENCE_PUNCT = re.compile(r"[,。;!?:、,]")
_LIST_MARKER = re.compile(
    r"^(?:[一二三四五六七八九十]+、|\([一二三四五六七八九十]+\)|第[一二三四五六七八九十]+[章节部分篇])"
)
_BYLINE = re.compile(
    r"^(?:本报|本台|新华社)?\s*(?:记者|通讯员|实习生)[\s:]*(?P<names>[\u4e00-\u9fff·]{2,4}(?:\s+[\u4e00-\u9fff·]{2,4})*)\s*$"
)
_PHOTO = re.compile(
    r"(?P<name>[\u4e00-\u9fff·]{2,4}(?:\s+[\u4e00-\u9fff·]{2,4})*)\s*(?:摄|/摄|摄影)\s*$"
)
_PHOTO_LEAD = re.compile(
    r"^(?:记者\s*)?(?P<name>[\u4e00-\u9fff·]{2,4})\s*摄\s*$|^摄影\s*[:\s]\s*(?P<name2>[\u4e00-\u9fff·]{2,4})"
)
_PLAN_HEADING = re.compile(
    r"工作安排|主要任务|目标任务|总体要求|工作打算|展望|规划|计划|预期目标|主要目标|奋斗目标"
)
_PLAN_OPENING = re.compile(r"展望|今后|未来|下一步|\d{4}年是|将")
MAX_HEADING = 32


@dataclass
class Section:
    """A part of the report: lead, a headed section or a sidebar; span into the repaired text."""

    kind: str
    heading: str
    start: int = 0
    end: int = 0
    plan: bool = False
    paragraphs: list[str] = field(default_factory=list)


@dataclass
class Structure:
    """A report after layout repair."""

    text: str
    sections: list[Section]
    title: str = ""
    subtitle: str = ""
    reporters: list[str] = field(default_factory=list)
    photographers: list[str] = field(default_factory=list)
    credit_line: str = ""
    folded: str = ""  # the text folded (see normalize.fold), for matching


def _is_table_row(line: str) -> bool:
    return line.count("|") + line.count("｜") >= 2


@lru_cache(maxsize=4096)
def _is_heading(line: str) -> bool:
    if len(line) > MAX_HEADING + 2:
        return False
    s = _fold(line).strip()
    if _is_table_row(s):
        return False
    body = _LIST_MARKER.sub("", s)
    if not body or len(s) > MAX_HEADING or _BYLINE.match(s) or _PHOTO.search(s):
        return False
    if (re.search(r"\d", body) and len(body) < 4) or _lone_number(s):
        return False
    return not _SENTENCE_PUNCT.search(body) and not body.endswith(("。", "."))


_LONE = re.compile(r"[-+]?\d[\d,.]*\s*(\S{0,6})|(\S{1,6})")


@lru_cache(maxsize=4096)
def _lone_number(line: str) -> bool:
    """A line holding only a number, a number and its unit, or only a unit (亿元, %): what
    pages that put one number a line leave behind."""
    if len(line) > 24:
        return False
    m = _LONE.fullmatch(_fold(line).strip())
    if not m:
        return False
    unit = m.group(1) if m.group(1) is not None else m.group(2)
    if m.group(2) is not None and not m.group(2).strip():
        return False
    return unit == "" or unit == "%" or resolve(unit) is not None


def _heading_at(lines: list[str], j: int) -> bool:
    """A heading, unless a lone number follows it (then it labels that number)."""
    return _is_heading(lines[j]) and not (j + 1 < len(lines) and _lone_number(lines[j + 1]))


@lru_cache(maxsize=4096)
def _complete(line: str) -> bool:
    """Ends a paragraph: terminal punctuation, or a table row (rows are never joined)."""
    last = line.rstrip()[-1:]
    return (fold(last) if last else "") in _TERMINAL or _is_table_row(line)


def _first_clause(line: str) -> str:
    return re.split(r"[,。;!?:,]", _fold(line), maxsplit=1)[0]


class Line(str):
    """A line of the text; ``gap`` is True when a blank line stood before it (a column or
    paragraph break, not a hard wrap); ``folded`` is its folded twin."""

    gap: bool = False
    folded: str = ""

    @classmethod
    def of(cls, text: str, gap: bool, folded: str) -> Line:
        line = cls(text)
        line.gap = gap
        line.folded = folded
        return line


def _fold(line: str) -> str:
    return getattr(line, "folded", "") or fold(line)


def _stripped(line: str) -> tuple[str, str]:
    """``line.strip()`` and its folded twin."""
    s = line.strip()
    a = len(line) - len(line.lstrip())
    return s, _fold(line)[a : a + len(s)]


def _join(a: str, b: str) -> Line:
    """Join two halves of a broken paragraph. Across a column break (a blank line between
    them) a character printed on both sides is one; a hard wrap repeats nothing. The
    folded twins are joined alike."""
    gap = getattr(b, "gap", True)
    fa, fb = _fold(a), _fold(b)
    a, b = a.rstrip(), b.lstrip()
    fa, fb = fa[: len(a)], fb[len(fb) - len(b) :]
    if gap and a and b and a[-1] == b[0] and "\u4e00" <= a[-1] <= "\u9fff":
        return Line.of(a + b[1:], True, fa + fb[1:])
    return Line.of(a + b, True, fa + fb)


def _front_matter(lines: list[str]) -> tuple[int, str, str, list[str], str]:
    """Where the body starts, and the title, subtitle, reporters and credit line before it."""
    byline_at = -1
    reporters: list[str] = []
    for i, line in enumerate(lines[:10]):
        m = _BYLINE.match(_fold(line).strip()) if len(line) <= 40 else None
        if m:
            byline_at = i
            reporters = m.group("names").split()
            break
    head = lines[:byline_at] if byline_at >= 0 else lines[:1]
    title = subtitle = credit = ""
    headlines = [ln for ln in head if not _complete(ln) and len(ln) <= 80]
    if headlines:
        credit = (
            headlines[-1]
            if byline_at >= 0 and len(headlines) > 1 and len(headlines[-1]) <= 16
            else ""
        )
        titled = [ln for ln in headlines if ln != credit] or headlines
        title, subtitle = _split_title(max(titled, key=len))
    body_start = byline_at + 1 if byline_at >= 0 else (1 if headlines else 0)
    return body_start, title, subtitle, reporters, credit


def _split_title(line: str) -> tuple[str, str]:
    """A headline of kicker phrases and a main title ('A B 区名:标题') → (title, subtitle)."""
    parts = line.split()
    for i, part in enumerate(parts):
        if ":" in fold(part) and i > 0:
            return " ".join(parts[i:]), " ".join(parts[:i])
    return line.strip(), ""


def _repair(paragraphs: list[str]) -> tuple[list[str], dict[int, list[str]]]:
    """Join paragraphs broken by column breaks and lift sidebars out of the sentences they split.

    Returns the body paragraphs, and for each body paragraph index the sidebar blocks (heading
    then paragraphs, flattened) that stood inside it.
    """
    out: list[str] = []
    sidebars: dict[int, list[str]] = {}
    i = 0
    n = len(paragraphs)
    while i < n:
        cur = paragraphs[i]
        i += 1
        if _heading_at(paragraphs, i - 1):
            out.append(cur)
            continue
        while not _complete(cur) and i < n:
            nxt = paragraphs[i]
            if _is_table_row(nxt) or (_lone_number(paragraphs[i - 1]) and not _lone_number(nxt)):
                break  # rows stay rows; after a lone number, the next label starts anew
            if not _heading_at(paragraphs, i):
                cur = _join(cur, nxt)
                i += 1
                continue
            # A heading inside an unfinished sentence: a sidebar. Its end is the first later
            # paragraph that opens with a fragment (a clause too short to stand alone).
            resume = next(
                (
                    j
                    for j in range(i + 2, n)
                    if not _is_heading(paragraphs[j])
                    and _complete(paragraphs[j - 1])
                    and len(_first_clause(paragraphs[j])) <= 4
                ),
                None,
            )
            if resume is None:
                break
            sidebars.setdefault(len(out), []).extend(paragraphs[i:resume])
            cur = _join(cur, paragraphs[resume])
            i = resume + 1
        out.append(cur)
    return out, sidebars


def structure(raw_text: str, *, front_matter: bool = True) -> Structure:
    """Repair the layout of a report's text and split it into sections."""
    cleaned = clean(raw_text.replace("\r\n", "\n").replace("\r", "\n"))
    folded = fold(cleaned)  # once for the whole text; each line keeps its slice
    lines: list[str] = []
    gap = True
    pos = 0
    for ln in cleaned.split("\n"):
        stripped = ln.strip()
        if stripped:
            a = pos + len(ln) - len(ln.lstrip())
            lines.append(Line.of(stripped, gap, folded[a : a + len(stripped)]))
            gap = False
        else:
            gap = True
        pos += len(ln) + 1
    body_start, title, subtitle, reporters, credit = (
        _front_matter(lines) if front_matter else (0, "", "", [], "")
    )
    photographers: list[str] = []
    for ln in lines:
        m = _PHOTO.search(_fold(ln).strip()) if "摄" in ln or "攝" in ln else None
        if m and (len(ln) <= 80):
            photographers.extend(n for n in m.group("name").split() if n not in photographers)
    body, sidebars = _repair(lines[body_start:])

    sections: list[Section] = [Section("lead", "", paragraphs=list(lines[:body_start]))]
    boxed: dict[int, list[Section]] = {}  # sidebars, by the section whose sentence they split
    folded_heading: dict[int, str] = {}  # by id of the section
    for idx, para in enumerate(body):
        if _is_heading(para):
            heading, folded_heading_ = _stripped(para)
            sections.append(Section("heading", heading))
            folded_heading[id(sections[-1])] = folded_heading_
        else:
            sections[-1].paragraphs.append(para)
        if idx in sidebars:
            block = sidebars[idx]
            heading, folded_heading_ = _stripped(block[0])
            side = Section("sidebar", heading, paragraphs=block[1:])
            folded_heading[id(side)] = folded_heading_
            boxed.setdefault(len(sections) - 1, []).append(side)
    ordered: list[Section] = []
    for i, s in enumerate(sections):
        ordered.append(s)
        ordered.extend(boxed.get(i, []))
    if not ordered[0].paragraphs and len(ordered) > 1:
        ordered = ordered[1:]

    parts: list[str] = []
    folded_parts: list[str] = []  # the folded text, built from the folded twins alike
    pos = 0
    for s in ordered:
        s.start = pos
        block = ([s.heading] if s.heading else []) + s.paragraphs
        chunk = "\n\n".join(block)
        parts.append(chunk)
        folded_block = [_fold(p) for p in s.paragraphs]
        if s.heading:
            folded_block.insert(0, folded_heading.get(id(s)) or fold(s.heading))
        folded_parts += ("\n\n".join(folded_block), "\n\n")
        pos += len(chunk)
        s.end = pos
        parts.append("\n\n")
        pos += 2
        opening = _fold(s.paragraphs[0])[:60] if s.paragraphs else ""
        s.plan = bool(_PLAN_HEADING.search(s.heading)) or (
            s.kind == "heading" and bool(_PLAN_OPENING.search(_first_sentence(opening)))
        )
    text = "".join(parts[:-1]) if parts else ""
    folded = "".join(folded_parts[:-1])
    if len(folded) != len(text):  # never expected: the twins are slices of one folding
        folded = fold(text)
    return Structure(text, ordered, title, subtitle, reporters, photographers, credit, folded)


def _first_sentence(folded: str) -> str:
    """The first sentence of folded text."""
    return re.split(r"[。!?;]", folded, maxsplit=1)[0]
