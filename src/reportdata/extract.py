"""From repaired report text to indicator rows: which quantities are figures, and what they say.

The rules follow the extraction guide (../shared/extraction-guide.md): a figure is a quantity
that measures something; names in quotes, thresholds, dates and list markers are not.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from itertools import accumulate, count, pairwise
from operator import add

from reportdata.figure import Figure
from reportdata.layout import Section
from reportdata.normalize import fold
from reportdata.numerals import ARABIC_RE, CHINESE_RE, number_value
from reportdata.quantity import Quantity, scan
from reportdata.tabular import blocks as table_blocks
from reportdata.tabular import figures as table_figures

_CLAUSE_BREAK = ",;。!?:\n"
_SENTENCE_BREAK = "。!?;\n"
_QUOTES = {"“": "”", '"': '"', "《": "》", "「": "」", "『": "』", "‘": "’"}


def _last_chars(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """The characters a match of ``pattern`` can end with, or None when any may (a class
    with ranges or categories); used to skip searches for patterns that end with ``$``."""
    from re import _parser  # the standard parser of re (sre_parse in older versions)

    def of_sequence(items: list) -> tuple[set[str], bool] | None:
        found: set[str] = set()
        for op, av in reversed(list(items)):
            part = of_item(op, av)
            if part is None:
                return None
            chars, optional = part
            found |= chars
            if not optional:
                return found, False
        return found, True

    def of_item(op: object, av: object) -> tuple[set[str], bool] | None:
        name = str(op)
        if name == "LITERAL":
            return {chr(av)}, False
        if name == "IN":
            if all(str(o) == "LITERAL" for o, _ in av):
                return {chr(v) for _, v in av}, False
            return None
        if name == "BRANCH":
            found, optional = set(), False
            for branch in av[1]:
                part = of_sequence(branch)
                if part is None:
                    return None
                found |= part[0]
                optional = optional or part[1]
            return found, optional
        if name == "SUBPATTERN":
            return of_sequence(av[-1])
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            part = of_sequence(av[2])
            return None if part is None else (part[0], part[1] or av[0] == 0)
        if name in ("AT", "ASSERT", "ASSERT_NOT"):
            return set(), True
        return None

    try:
        part = of_sequence(_parser.parse(pattern.pattern, pattern.flags))
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    return None if part is None or part[1] else frozenset(part[0])


class _Ending:
    """A pattern that ends with ``$``, searched only where the text's last character can end
    a match: most clauses end with no such word, and a failed search tries every position."""

    def __init__(self, pattern: str) -> None:
        self.pattern = re.compile(pattern)
        last = _last_chars(self.pattern)
        # None: any character may end a match. $ also matches before a final newline.
        self.ends = None if last is None else last | {"\n"}

    def search(self, text: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        end = len(text) if endpos is None else min(endpos, len(text))
        if self.ends is not None and (end <= pos or text[end - 1] not in self.ends):
            return None  # a match is never empty, and ends in one of ``ends``
        return self.pattern.search(text, pos, end)

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self.pattern.fullmatch(text)


# Words that only frame the figure: time, scope, adverbs, linking verbs.
_LEAD_STRIP = re.compile(
    r"(?:[、,]+|其中|同时|另外|此外|并且|并|与|和|及"
    r"|截至(?:目前|当前|\d{4}年)?(?:\d{1,2}月(?:底|末|份)?)?(?:底|末)?"
    r"|截止(?:目前|\d{4}年)?(?:\d{1,2}月(?:底|末)?)?|目前|当前|今年(?:以来)?|去年|全年|年内|一年来|近年来|年末|年初|年底"
    r"|近(?:\d+|[一二两三四五六七八九十]+)年(?:来|以来)?"
    r"|\d{4}年(?:\d{1,2}月(?:底|末)?)?(?:以来|底|末)?|上半年|下半年|前三季度|[一二三四]季度"
    r"|全[区市县省镇乡国州盟旗]|我[区市县省镇]|辖区内?|[区市县省镇乡村]里"
    r"|累计|共计|合计|总计|共有|拥有|现有|共|已经|已|先后|陆续|首次|全力|大力|成功|新近|进一步"
    r"|预计|初步预计|预估|力争|计划|争取(?=实现|达到|完成|突破)|将|要|确保|力求)"
)
# Each branch opens with a character, so that the search skips to where one may begin.
_TAIL_STRIP = _Ending(
    r"(?:分别为|分别达到?|分别|预计达到|预计为|预计|达到了|达到|达|为|是|约为|约|共计|共|计|有|由|从|"
    r"控制在|保持在|稳定在|维持在|是[^,;。]{0,12}的|"
    r"位居(?:全[国省市区县州])?|居(?:全[国省市区县州])?|列(?:全[国省市区县州])?|"
    r"排名?(?:全[国省市区县州])?|完成|实现|"
    r"超过|超|突破|逾|近|将近|接近|不足|不到|累计|总计|合计|总数为|了|已|将|力争|实现了|完成了)$"
)
_LIGHT_VERB = re.compile(r"实现|完成|达到|取得|拥有")
_CHANGE_WORDS = _Ending(
    r"(?:同比|比上年|比去年|较上年|较去年|年均)?(?:增长|下降|提高|降低|减少|增加|上升|回落|增速为?|"
    r"扩大|缩小|提升|下滑|回升|增幅|降幅)(?:了|约|达到?|为)?$"
)
_SHARE_WORDS = re.compile(
    r"(?:(?:占比|比重|占|比例)[^,。;]{0,16}(?:为|达到?|达)?|完成[^,。;]{0,12}的)$"
)
_ESTIMATE = re.compile(r"初步预计|预计|预估|估计")
# Every branch opens with a character (look-behinds come after it), so that a search skips
# to the characters that can begin one.
_TARGET = re.compile(
    r"力争|目标(?=[是为:,]|任务)|预\w{0,2}目标|主\w{0,2}目标|计划(?<![年度的]计划)|预期"
    r"|争取(?=实现|达到|完成|突破)|确保|力求|要(?<![主重需只必]要)(?![求素点闻害])|将"
)
_FUTURE_AFTER_JIANG = re.compile(
    r"将(?:进一步|继续|持续|全力|加快|大力|努力|重点|着力|不断|积极|深入|扎实|力争|实现|达到|建成|完成|"
    r"新增|新建|打造|推进|推动|开展|建设|形成|提升|达|突破|超过|新开工|投入|安排|争取|确保|启动|实施|"
    r"投资|改造|引进|培育|增加|扩大|新培育|举办|组织)"
)
_VERB_STOP = re.compile(
    r"(?:提供|实现|完成|达到|建成|投用|投入使用|落户|落地|开展|参与|成为|获得|进入|覆盖|受益|享受|纳入|"
    r"开工|竣工|投产|增长|下降|提高|减少|累计|同比|位居|排名|得到|带动|惠及|帮助|解决|"
    r"参加|完工|上线|入驻|签约|通过|获批|获评|涌现|崛起|落成|开业|运营|吸纳|接待|新增)"
)
# (?<!\d\d\d) after 19|20 checks the character before the year: a pattern that opens with a
# look-behind loses the regex engine's fast scan for its first character (3 to 4 times slower).
_YEAR = re.compile(r"((?:19|20)(?<!\d\d\d)\d{2})年")
_AS_OF = re.compile(
    r"截[至止](?:(?P<year>(?:19|20)\d{2})年)?(?P<month>\d{1,2})月(?:底|末|份|\d{1,2}日)?"
)
_YEAR_RANGE = re.compile(r"((?:19|20)(?<!\d\d\d)\d{2})\s*[-—~至到]\s*((?:19|20)\d{2})年")


_QUOTE_CHARS = re.compile("[" + re.escape("".join(_QUOTES) + "".join(_QUOTES.values())) + "]")


def _quote_spans(text: str) -> list[tuple[int, int]]:
    """Spans inside quotation marks and book-title marks, which hold names, not figures."""
    spans = []
    stack: list[tuple[str, int]] = []
    last = 0  # the quotation mark before; a line break since then closes every open quote
    for m in _QUOTE_CHARS.finditer(text):
        ch, i = m.group(), m.start()
        if stack and text.find("\n", last, i) >= 0:
            stack.clear()
        last = i
        if stack and ch == _QUOTES[stack[-1][0]]:
            _opener, start = stack.pop()
            spans.append((start, i + 1))
        elif ch in _QUOTES and not (ch == '"' and stack and stack[-1][0] == '"'):
            stack.append((ch, i))
    return spans


def _inside(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Inside one of ``spans`` (sorted by start; nested quotes are rare and shallow)."""
    i = bisect_left(spans, (start, 0))
    return i > 0 and any(a < start and end <= b for a, b in spans[max(0, i - 3) : i])


class _Breaks:
    """Positions of break characters, for finding the clause or sentence around a position;
    ``within`` (the positions of a wider set of breaks) saves a pass over the text."""

    def __init__(self, folded: str, chars: str, within: _Breaks | None = None) -> None:
        if within is None:
            # The k-th break stands after the first k + 1 pieces between breaks and k breaks.
            pieces = re.split("[" + re.escape(chars) + "]", folded)
            self.at = list(map(add, accumulate(map(len, pieces[:-1])), count()))
        else:
            self.at = [i for i in within.at if folded[i] in chars]
        self.size = len(folded)

    def bounds(self, pos: int) -> tuple[int, int]:
        at = self.at
        i = bisect_left(at, pos)
        return (at[i - 1] + 1 if i else 0), (at[i] if i < len(at) else self.size)

    def start(self, pos: int) -> int:
        i = bisect_left(self.at, pos)
        return self.at[i - 1] + 1 if i else 0


def _is_threshold(folded: str, q: Quantity) -> bool:
    """A quantity that only qualifies a noun: 过10亿元项目, 100米以上楼宇, 世界500强."""
    after = folded[q.end : q.end + 1]
    before = folded[max(0, q.start - 1) : q.start]
    noun_follows = bool(after) and ("\u4e00" <= after <= "\u9fff") and after not in "的"
    if q.text.endswith(("以上", "以下")) and noun_follows:
        return True
    return bool(before == "过" and noun_follows)


_RANK = re.compile(r"第(" + ARABIC_RE + r"|" + CHINESE_RE + r")(名|位)")


def _ranks(text: str, folded: str) -> list[Quantity]:
    """Ranks given with a numeral (第3位, 第三名): figures of their own, 第 included."""
    out = []
    for m in _RANK.finditer(folded):
        value = number_value(m.group(1))
        if value is None:
            continue
        out.append(
            Quantity(
                value=value,
                unit=m.group(2),
                value_base=value,
                unit_base=m.group(2),
                unit_family="other",
                qualifier="exact",
                text=text[m.start() : m.end()],
                start=m.start(),
                end=m.end(),
                numeral=m.group(1),
                chinese=not m.group(1)[0].isdigit(),
            )
        )
    return out


def _is_anniversary(folded: str, q: Quantity) -> bool:
    """建党100周年, 建区30年: an anniversary names an occasion, it measures nothing."""
    return q.unit == "周" and folded[q.end : q.end + 1] == "年"


def _in_rows(rows: list[tuple[int, int]], pos: int) -> bool:
    """In one of the table rows' spans."""
    return any(a <= pos < b for a, b in rows)


def _not_figure(folded: str, q: Quantity) -> bool:
    """An ordinal or a threshold, for a quantity after 第 or 过 (the checks below need one)."""
    return _is_ordinal(folded, q) or _is_threshold(folded, q)


def _is_ordinal(folded: str, q: Quantity) -> bool:
    """第3批, 第一 and list markers are ordinals, not figures."""
    return folded[max(0, q.start - 1) : q.start] == "第"


def _is_article(q: Quantity) -> bool:
    """一 before a classifier is the article 'a', not a count (一批, 一项一项)."""
    return q.chinese and q.numeral in {"一", "壹", "幺"} and q.unit_family in {"count", "people"}


_EDGE = " 、,:,:　"


def _trim(fs: str, a: int, b: int) -> tuple[int, int]:
    """``a`` and ``b`` moved past the edge characters (spaces, commas) at both ends of fs[a:b]."""
    part = fs[a:b]
    kept = part.lstrip(_EDGE)
    a += len(part) - len(kept)
    return a, b - (len(kept) - len(kept.rstrip(_EDGE)))


def _clean_subject(s: str, fs: str | None = None) -> str:
    """Drop the words that only frame a figure (time, scope, adverbs, linking verbs).

    Matching runs on ``fs``, the folded twin of ``s`` (same length); the original is kept.
    """
    if fs is None:
        fs = fold(s)
    a, b = _trim(fs, 0, len(s))
    for _ in range(4):
        before = (a, b)
        m = _LEAD_STRIP.match(fs, a, b)
        if m and m.end() > a:
            a, b = _trim(fs, m.end(), b)
        m = _TAIL_STRIP.search(fs, max(a, b - 16), b)  # no tail word is longer
        if m and m.start() < b:
            a, b = _trim(fs, a, m.start())
        if (a, b) == before:
            break
    if _LIGHT_VERB.match(fs, a, b) and b - a - 2 >= 3:
        a += 2
    return s[a:b]


_CONJUNCTIONS = frozenset(["和", "与", "及", "或", "至", "到", "、", "以及", "并"])
_AFTER_END = re.compile(r"[,;。!?:\n、(]")
_NOT_A_NOUN = re.compile(r"以上|以下|左右|多|余|之|比|同比|增长|下降")


def _after_subject(folded: str, text: str, q: Quantity, next_start: int) -> str:
    limit = min(next_start, len(text))
    first = q.end
    while first < limit and folded[first].isspace():
        first += 1
    if first >= limit or not ("\u4e00" <= folded[first] <= "\u9fff") or folded[first] in "的了":
        return ""  # no word follows (what the checks below find too, only later)
    m = _AFTER_END.search(folded, q.end, limit)
    end = m.start() if m else limit
    stop = _VERB_STOP.search(folded, q.end + 1, end)
    if stop:
        end = stop.start()
    start = q.end
    while start < end and folded[start].isspace():
        start += 1
    while end > start and folded[end - 1].isspace():
        end -= 1
    if start == end or not ("\u4e00" <= folded[start] <= "\u9fff") or folded[start] in "的了":
        return ""
    if _VERB_STOP.match(folded, start, end) or _NOT_A_NOUN.match(folded, start, end):
        return ""
    if folded[start:end] in _CONJUNCTIONS:
        return ""  # 4.12万元和2.05万元: 和 joins two figures, it names nothing
    return text[start:end]


_DISTRIBUTED = re.compile(r"^(?P<items>.+?)分别(?P<predicate>[^,;。]*)$")


def _distributed(subject: str) -> list[str]:
    """The subjects of A、B分别为X、Y, one an item: 城、乡居民收入分别增长 → 城居民收入增长,
    乡居民收入增长 (short first items share the last item's tail)."""
    m = _DISTRIBUTED.match(subject)
    if not m:
        return []
    items = [i for i in re.split(r"[、和与及]", m.group("items")) if i]
    if len(items) < 2:
        return []
    predicate = m.group("predicate")
    predicate = predicate if _CHANGE_WORDS.fullmatch(fold(predicate) or "-") else ""
    head = len(items[0])
    last = items[-1]
    if head <= 2 and all(len(i) == head for i in items[:-1]) and len(last) > head + 1:
        tail = last[head:]
        items = [i + tail for i in items[:-1]] + [last]
    return [i + predicate for i in items]


_CLAUSE_END = re.compile(r"[,;。!?\n]")
_PLAN_OPENING = re.compile(r"力争|计划(?=[在到于要将新建实现完成])|预期目标")
_COMPARISON = re.compile(r"比上年末?|比去年|比上季度?|较上年末?|较去年|同比|环比")
_COMPARED = _Ending(
    r"(?:" + _COMPARISON.pattern + r")(?:净)?"
    r"(?:增长|下降|提高|降低|减少|增加|上升|回落|扩大|缩小|提升|下滑|回升)(?:了|约)?$"
)
_SEPARATELY = re.compile(r"分别(?=[^,。;]{0,2}$)|分别(?=增长|下降|提高|达到|为)")
_TIMES_OF = _Ending(r"是.{0,12}的$")  # 是上年的1.5倍
_TO_LEVEL = _Ending(r"(?:增加|提高|下降|减少|扩大|上升|降低|增长|缩小|提升|调整|升)(?:到|至)$")


def _measure(b: str, q: Quantity) -> str:
    """level, change, share or rank, from the folded text before the figure."""
    if q.text.startswith("第"):
        return "rank"
    b = b[-24:]  # every pattern below ends the text and is shorter than this
    if _TO_LEVEL.search(b):
        return "level"  # 由38%提高到41%: the new level
    if _COMPARED.search(b):
        return "change"  # 比上年末增加2.1万人: a change of any kind of quantity
    if q.unit_family in {"percent", "percentage_point", "ratio"}:
        if _CHANGE_WORDS.search(b) or (q.unit_family == "ratio" and _TIMES_OF.search(b)):
            return "change"
        if q.unit_family == "percent" and _SHARE_WORDS.search(b):
            return "share"
        if re.search(r"增长|下降|提高|降低|减少|增加|增幅|降幅", b[-6:]):
            return "change"
    return "level"


def _status_words(text: str) -> str:
    if _ESTIMATE.search(text):
        return "estimate"
    if "将" in text:
        if _FUTURE_AFTER_JIANG.search(text) or _TARGET.search(text.replace("将", "")):
            return "target"
    elif _TARGET.search(text):
        return "target"
    return ""


def _status(
    clause_before: str, sentence_before: str, section: Section | None, plan_earlier: bool
) -> str:
    """estimate or target from the (folded) words of the figure's clause, or of the lead-in
    that opens the list it stands in (主要预期目标:…), or of a plan announced in an earlier
    clause of its sentence (``plan_earlier``); target in a plan section; else actual."""
    found = _status_words(clause_before)
    if found:
        return found
    lead = sentence_before
    if ":" in lead:
        found = _status_words(lead[: lead.rfind(":")])
        if found:
            return found
    if plan_earlier:
        return "target"  # 县里将新建学校5所,改造小区30个: a plan governs the rest of its sentence
    if section is not None and section.plan and not _YEAR.search(sentence_before):
        return "target"
    return "actual"


class _Years:
    """Every year, as-of month and year range the folded text states, by position."""

    def __init__(self, folded: str) -> None:
        self.years = [(m.start(), m.group(1)) for m in _YEAR.finditer(folded)]
        self.year_at = [pos for pos, _ in self.years]
        self.as_of = [
            (m.start(), m.group("year"), m.group("month")) for m in _AS_OF.finditer(folded)
        ]
        self.ranges = [(m.start(), m.group(1), m.group(2)) for m in _YEAR_RANGE.finditer(folded)]

    def last_year(self, start: int, end: int) -> str | None:
        i = bisect_left(self.year_at, end) - 1
        return self.years[i][1] if i >= 0 and self.years[i][0] >= start else None

    @staticmethod
    def _last(items: list[tuple], start: int, end: int) -> tuple | None:
        found = None
        for item in items:
            if item[0] >= end:
                break
            if item[0] >= start:
                found = item
        return found

    def period(
        self,
        p_start: int,
        s_start: int,
        pos: int,
        status: str,
        report_year: int | None,
        heading: tuple[int, int] = (0, 0),
    ) -> str:
        """The figure's period: as of a month, a year range or a year stated in its sentence
        (or paragraph, or its section's heading: 2024年工作安排), else the report's year for
        results."""
        as_of = self._last(self.as_of, s_start, pos)
        if as_of:
            year = as_of[1] or self.last_year(p_start, pos) or report_year
            return f"{year}-{int(as_of[2]):02d}" if year else ""
        span = self._last(self.ranges, s_start, pos)
        if span:
            return f"{span[1]}-{span[2]}"
        year = (
            self.last_year(s_start, pos) or self.last_year(p_start, pos) or self.last_year(*heading)
        )
        if year:
            return year
        if status == "target":
            return ""
        return str(report_year) if report_year else ""


class _SectionFinder:
    """The section a position falls in (see _section_at), by bisection when the sections
    follow one another without overlapping, as :func:`layout.structure` makes them."""

    def __init__(self, sections: list[Section]) -> None:
        self.sections = sections
        self.starts = [s.start for s in sections]
        self.ordered = all(s.start <= s.end for s in sections) and all(
            a.end <= b.start for a, b in pairwise(sections)
        )

    def __call__(self, pos: int) -> Section | None:
        if not self.ordered:
            return _section_at(self.sections, pos)
        i = bisect_right(self.starts, pos) - 1
        return self.sections[i] if i >= 0 and pos < self.sections[i].end else None


def _section_at(sections: Iterable[Section], pos: int) -> Section | None:
    for s in sections:
        if s.start <= pos < s.end:
            return s
    return None


def figures(
    text: str, sections: list[Section], report_year: int | None, folded: str | None = None
) -> list[Figure]:
    """Every figure the repaired ``text`` states, in reading order."""
    folded = fold(text) if folded is None else folded
    quotes = sorted(_quote_spans(folded))
    tables = table_blocks(text)
    rows = [span for block in tables for span in block]
    found = [
        q
        for q in scan(text, folded=folded)
        if not (quotes and _inside(quotes, q.start, q.end))
        and not (rows and _in_rows(rows, q.start))
        and not (q.chinese and _is_article(q))
        and not (q.start and folded[q.start - 1] in "过第" and _not_figure(folded, q))
        and not (q.text.endswith(("以上", "以下")) and _is_threshold(folded, q))
        and not (q.unit == "周" and _is_anniversary(folded, q))
    ]
    found += [r for r in _ranks(text, folded) if not _inside(quotes, r.start, r.end)]
    found.sort(key=lambda q: q.start)
    out: list[Figure] = []
    prev_end_in_clause = -1
    last_subject = ""
    clauses = _Breaks(folded, _CLAUSE_BREAK)
    sentences = _Breaks(folded, _SENTENCE_BREAK, clauses)
    paragraphs = _Breaks(folded, "\n", sentences)
    years = _Years(folded)
    plans = sorted(
        m.start() for rx in (_FUTURE_AFTER_JIANG, _PLAN_OPENING) for m in rx.finditer(folded)
    )
    share: list[str] = []
    share_index = 0
    section_at = _SectionFinder(sections)
    for k, q in enumerate(found):
        c_start, c_end = clauses.bounds(q.start)
        s_start, s_end = sentences.bounds(q.start)
        p_start = paragraphs.start(q.start)
        if prev_end_in_clause > c_start:
            c_start = prev_end_in_clause
        next_start = found[k + 1].start if k + 1 < len(found) else len(text)
        before = folded[c_start : q.start]
        after = _after_subject(folded, text, q, next_start)
        subject = after or _clean_subject(text[c_start : q.start], before)
        measure = _measure(before, q)
        if out and c_start == prev_end_in_clause and _TO_LEVEL.fullmatch(before.strip()):
            subject = out[-1].subject  # 由X提高到Y: Y is a level of the same subject
        if not subject and out and c_start == prev_end_in_clause:
            # A list after one predicate (分别增长4.8%、7.2%): the same subject and measure.
            subject, measure = out[-1].subject, out[-1].measure
        if measure == "rank" and len(subject) <= 3 and last_subject:
            subject = last_subject + subject  # 增速居全市第2位: the rank of the growth before it
        if measure == "change" and _COMPARISON.search(fold(subject)):
            subject = _COMPARISON.sub("", subject)  # 地区生产总值比上年增长 → …增长
        if (
            measure == "change"
            and _CHANGE_WORDS.fullmatch(fold(subject) or "增长")
            and last_subject
        ):
            subject = last_subject + subject
        if not subject:
            subject = (
                _clean_subject(text[s_start : q.start], folded[s_start : q.start]) or last_subject
            )
        if "分别" in subject or "分別" in subject:
            cut = [m.span() for m in _SEPARATELY.finditer(fold(subject))]
            for a, b in reversed(cut):
                subject = subject[:a] + subject[b:]
        k = before.rfind("分别")
        if k >= 0 and not after:
            lead = _clean_subject(text[c_start : c_start + k], before[:k])
            items = _distributed(lead + "分别" + text[c_start + k + 2 : q.start])
            if items:
                share, share_index = items, 0
                subject = items[0]
        elif share and out and c_start == prev_end_in_clause and subject == out[-1].subject:
            share_index += 1  # A、B分别为X、Y: the next item takes the next figure
            subject = share[share_index] if share_index < len(share) else subject
        else:
            share = []
        section = section_at(q.start)
        comma = folded.rfind(",", s_start, q.start)
        i = bisect_left(plans, s_start)
        plan_earlier = comma > s_start and i < len(plans) and plans[i] < comma
        status = _status(before, folded[s_start : q.start], section, plan_earlier)
        if (
            status == "actual"
            and out
            and out[-1].status != "actual"
            and not _CLAUSE_END.search(folded, out[-1].quantity.end, q.start)
        ):
            status = out[-1].status  # a status word governs the list it opens: 预计达到38座、5座
        heading = (section.start, section.start + len(section.heading)) if section else (0, 0)
        period = years.period(p_start, max(s_start, p_start), q.start, status, report_year, heading)
        out.append(Figure(subject, q, status, measure, period, text[s_start:s_end], s_start))
        prev_end_in_clause = q.end if q.end < c_end else -1
        if measure == "level":
            last_subject = subject
    out.extend(table_figures(text, report_year, tables))
    out.sort(key=lambda f: f.quantity.start)
    # A number no word names (a text that is only 1326.1角, a table row without a label)
    # measures nothing the reader can tell: no figure.
    return [f for f in out if f.subject.strip()]


_FUTURE = re.compile(r"将|计划|力争|预期|争取|展望")
_DATED = re.compile(r"((?:19|20)\d{2})(?:年\s*\d{1,2}\s*月\s*\d{1,2}\s*日|-\d{1,2}-\d{1,2}(?!\d))")
_STATES_FIGURES = re.compile(
    r"\d\s*[万亿千百]?\s*(?:元|%|人|个|家|户|吨|亩|平方米|公里|项|所|座|倍)"
)


# The years a report can describe: the bounds of documents.report_year (schemas/documents.json);
# an earlier year is history the report recalls (1930年建校), never the report's own year.
_REPORT_YEARS = range(1949, 2101)


def report_year(text: str, published_year: int | None, folded: str | None = None) -> int | None:
    """The year a report's figures describe, from its own words and its publication year.

    In order: a review or bulletin naming its year (2019年工作回顾); a report speaking of
    "the past year" with a known publication year (given, or a full date in its first lines);
    else the latest year the text states results for (a sentence with no future marker).
    None when no such year lies within the schema's bounds.
    """
    year = _stated_year(fold(text) if folded is None else folded, published_year)
    return year if year is not None and year in _REPORT_YEARS else None


def _stated_year(t: str, published_year: int | None) -> int | None:
    m = re.search(
        r"((?:19|20)\d{2})年(?:工作回顾|国民经济和社会发展统计公报|统计公报|.{0,6}工作总结)", t
    )
    if m and int(m.group(1)) in _REPORT_YEARS:
        return int(m.group(1))
    if published_year is None:
        dated = _DATED.search(t[:400])
        published_year = int(dated.group(1)) if dated else None
    if published_year and re.search(r"刚刚过去的一年|过去的一年|过去一年|去年|上一年|上年", t):
        return published_year - 1
    past: list[int] = []
    sentences = _Breaks(t, "。!?;\n")
    for m in _YEAR.finditer(t):
        a, b = sentences.bounds(m.start())
        sentence = t[a:b]
        if (
            int(m.group(1)) in _REPORT_YEARS
            and _STATES_FIGURES.search(sentence)
            and not (_DATED.search(sentence) or _FUTURE.search(sentence))
        ):
            past.append(int(m.group(1)))
    if published_year:
        past = [y for y in past if y < published_year] or [published_year - 1]
    return max(past) if past else None
