"""A static website over ``published/``: a catalog page and one page a dataset.

Plain HTML with inline CSS and inline SVG charts drawn here: no script, no web font, nothing
fetched when the page is viewed (a Content-Security-Policy says so to the browser too). Every
string taken from the data or a descriptor is HTML-escaped; every link is a relative path built
here from checked names, except source and licence links, which must be plain http(s) URLs.
The same published tree always gives the same bytes.

The pages read the catalog, the latest version's datapackage.json and the CHANGELOG.md: the
history's reasons come from the catalog (no changes.json is read), and the charts from the
dataset's DuckDB file when it is current (else from the latest indicators.json and
sections.json), so that their cost follows the figures drawn, not the size of the dataset.
A dataset page is made again only when what it is made from changed (`write_site`), so that a
release of one dataset does not redraw every other dataset's page.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import heapq
import html
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from reportdata.catalog import CATALOG, CHANGES, PAGE, build_catalog, history_of, read_json
from reportdata.errors import PublishError
from reportdata.fsutil import atomic_write_bytes, file_stamp

_HEADING_RE = re.compile(r"(#{1,6})\s+(.*)")
_BULLET_RE = re.compile(r"\s*[-*+]\s+(.*)")
_URL_UNSAFE = re.compile(r"[\s\"'<>`]")  # \s: the characters str.isspace() accepts
MEMO = ".pages.json"  # by dataset: the inputs its page was made from, and the page's stamp
_MAX_BARS = 12
_FAMILIES = {
    "money": "金额", "area": "面积", "length": "长度", "weight": "重量", "volume": "体积",
    "energy": "能源", "count": "数量", "people": "人数", "percent": "百分比",
    "percentage_point": "百分点", "ratio": "倍数", "time": "时间", "other": "其他",
}  # fmt: skip
_BUMPS = {"initial": "首次发布", "major": "结构变更", "minor": "新增数据", "patch": "修订"}
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"

CSS = """
:root{--fg:#1f2933;--muted:#5b6775;--line:#e3e8ef;--bg:#f4f6f9;--accent:#1d4ed8}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:var(--bg);font:16px/1.6 system-ui,-apple-system,
"Segoe UI","PingFang SC","Hiragino Sans GB","Microsoft YaHei","WenQuanYi Micro Hei",
"Noto Sans CJK SC",sans-serif;-webkit-text-size-adjust:100%}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.top{background:#0f172a;color:#e2e8f0;padding:.7rem 1rem}
.top a{color:#e2e8f0;font-weight:600}.top span{color:#94a3b8}
main{max-width:1000px;margin:0 auto;padding:1rem}
h1{font-size:1.55rem;line-height:1.35;margin:.4rem 0 .5rem}
h2{font-size:1.2rem;margin:0 0 .7rem}h3{font-size:1.05rem;margin:1rem 0 .4rem}
h4,h5,h6{font-size:1rem;margin:.8rem 0 .3rem}
p{margin:.4rem 0}
.lede{color:var(--muted);margin:0 0 .8rem}
.card{background:#fff;border:1px solid var(--line);border-radius:12px;padding:1rem 1.2rem;
margin:1rem 0;box-shadow:0 1px 2px rgba(15,23,42,.04)}
.badge{display:inline-block;padding:.05rem .55rem;border-radius:999px;background:#dbeafe;
color:#1e3a8a;font-size:.82rem;font-weight:600;white-space:nowrap}
.badge.minor{background:#dcfce7;color:#14532d}.badge.patch{background:#fef3c7;color:#78350f}
.badge.major{background:#fee2e2;color:#7f1d1d}.badge.initial{background:#e0e7ff;color:#312e81}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:.7rem;
margin:.8rem 0}
.stat{background:#fff;border:1px solid var(--line);border-radius:12px;padding:.6rem .8rem}
.stat b{display:block;font-size:1.25rem;line-height:1.3;white-space:nowrap}
.stat span{color:var(--muted);font-size:.85rem}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1rem}
.charts .card{margin:0}
figure{margin:0}figcaption{font-weight:600;margin-bottom:.4rem}
svg.chart{display:block;width:100%;max-width:560px;height:auto;font-size:14px}
svg.chart text{fill:#334155}svg.chart text.value{fill:#0f172a;font-weight:600}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid var(--line);
vertical-align:top}
th{background:#f8fafc;font-weight:600;white-space:nowrap}
td ul{margin:0;padding-left:1.1rem}
code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:.86em;
background:#f1f5f9;border-radius:4px;padding:0 .25rem}
.muted{color:var(--muted)}.small{font-size:.85rem}
.links div{white-space:nowrap}.links span{color:var(--muted);font-size:.8rem}
.datasets{list-style:none;padding:0;margin:0}
.changelog{max-height:28rem;overflow:auto}
pre{white-space:pre-wrap;word-break:break-word}
footer{max-width:1000px;margin:0 auto;padding:1rem;color:var(--muted);font-size:.85rem}
@media (max-width:600px){main{padding:.6rem}.card{padding:.8rem}h1{font-size:1.3rem}
.charts{grid-template-columns:1fr}}
"""


# ---------------------------------------------------------------------------- helpers


def esc(value: Any) -> str:
    """Text escaped for HTML content and attribute values alike."""
    return html.escape("" if value is None else str(value), quote=True)


def href(*segments: str) -> str:
    """An escaped relative URL built from path segments we made or checked."""
    return esc("/".join(quote(s, safe="") for s in segments))


def external_href(url: Any) -> str | None:
    """An escaped http(s) URL when ``url`` is one (host required, no spaces), else None."""
    if not isinstance(url, str) or _URL_UNSAFE.search(url):
        return None
    with_parts = urlsplit(url)
    if with_parts.scheme not in ("http", "https") or not with_parts.netloc:
        return None
    return esc(url)


def human_bytes(size: int) -> str:
    """A file size for people: 512 B, 9.2 KB, 1.8 MB."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _trim(number: float, digits: int = 2) -> str:
    text = f"{number:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def money(value: float) -> str:
    """An amount in 元 written with the multiplier a reader expects: 52亿元, 4,800万元."""
    if abs(value) >= 1e8:
        return _trim(value / 1e8) + "亿元"
    if abs(value) >= 1e4:
        return _trim(value / 1e4) + "万元"
    return _trim(value) + "元"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _text_width(text: str) -> float:
    """Rough rendered width at 14px: wide (CJK) characters 14px, others 8px."""
    return sum(14.0 if ord(c) > 0x2E80 else 8.0 for c in text)


def _fit(text: str, width: float) -> str:
    if _text_width(text) <= width:
        return text
    out = ""
    for char in text:
        if _text_width(out + char + "…") > width:
            break
        out += char
    return out + "…"


def _date(created: Any) -> str:
    return str(created)[:10] if isinstance(created, str) else ""


# ---------------------------------------------------------------------------- charts


@dataclass(frozen=True)
class Bar:
    """One bar: what it is, its length, and the value written beside it."""

    label: str
    value: float
    text: str


def bar_chart(bars: list[Bar], title: str, color: str, name: str) -> str:
    """A horizontal bar chart as inline SVG: label and value above each bar."""
    width, row, top = 400.0, 42.0, 2.0
    height = top + row * len(bars) + 2
    biggest = max((b.value for b in bars), default=0.0) or 1.0
    parts = [
        f'<svg class="chart" data-chart="{esc(name)}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img" aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{esc(title)}</title>",
    ]
    for i, bar in enumerate(bars):
        y = top + i * row
        value_width = _text_width(bar.text) + 8
        length = max(bar.value / biggest * width, 2.0)
        parts.append(
            f"<g><title>{esc(bar.label)}: {esc(bar.text)}</title>"
            f'<text x="0" y="{y + 15:.1f}">{esc(_fit(bar.label, width - value_width))}</text>'
            f'<text class="value" x="{width:.0f}" y="{y + 15:.1f}" text-anchor="end">'
            f"{esc(bar.text)}</text>"
            f'<rect x="0" y="{y + 22:.1f}" width="{width:.0f}" height="12" rx="3" '
            f'fill="#eef2f7"/>'
            f'<rect class="bar" x="0" y="{y + 22:.1f}" width="{length:.1f}" height="12" rx="3" '
            f'fill="{esc(color)}"/></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


class MoneyFigure(NamedTuple):
    """A money figure with a positive value: what the money charts show of it."""

    indicator_id: Any
    subject: Any
    quantity_text: Any
    section_id: Any
    value: float


@dataclass(frozen=True)
class SectionSums:
    """Money (value_base, 元) summed by section label, as much of it as the chart shows: the
    ``_MAX_BARS`` largest sums in chart order, how many labels there are, and the total of the
    sums from the ``_MAX_BARS``-th on (one bar when there are more than ``_MAX_BARS``)."""

    top: list[tuple[str, float]]
    count: int
    rest: float


@dataclass
class ChartData:
    """What the three charts are drawn from, already cut to what they show: the largest money
    figures in chart order, the money by section label, and the number of figures of each
    unit family. Both ways of reading a version (`chart_rows`, `warehouse_charts`) give it."""

    largest: list[MoneyFigure]
    sections: SectionSums
    families: dict[str, int]


# The rules of the two money charts, for both ways of reading a version. The JSON way ranks in
# Python with the keys below; the DuckDB way ranks in SQL with the same order (_LARGEST_SQL,
# _SECTIONS_SQL) and hands over only what these rules keep; `section_bars` then cuts both alike.
_LARGEST = 10  # bars of the largest-money chart
_LEAD = "导语"  # the label of a lead section without a heading
_UNTITLED = "（无标题）"  # of another section without one
_OTHER = "其他章节"  # of the bar lumping the smallest sums


def _figure_order(figure: MoneyFigure) -> tuple[float, str]:
    """Largest-money order: largest value first, ties in indicator_id order."""
    return (-figure.value, str(figure.indicator_id))


def _label_order(item: tuple[str, float]) -> tuple[float, str]:
    """Money-by-section order: largest sum first, ties in label order."""
    return (-item[1], item[0])


def _total(values: Iterable[float]) -> float:
    """The values added one by one, smallest first: what DuckDB's ``sum(x ORDER BY x)`` does.

    Every total on the page is summed so, to give the same bits both ways and on every run.
    What is printed is coarse (`money` keeps two decimals of 亿元/万元/元, a bar's width a
    tenth of a pixel), but the charts rank by the whole float and a printed digit can tip at a
    rounding boundary, so nearly equal is not enough. DuckDB's plain ``sum()`` adds in the
    order its threads finish; its ``fsum`` is not always correctly rounded, so may differ from
    ``math.fsum``; Python's ``sum()`` compensates from 3.12 on. Smallest first, the total
    depends on the values alone (equal values add to the same bits in any order), not on a row
    order, is the most accurate order for positive values, and sorting by value costs DuckDB
    about half what sorting by indicator_id does.
    """
    total = 0.0
    for value in sorted(values):
        total += value
    return total


def section_sums(sums: dict[str, float]) -> SectionSums:
    """The chart's part of every label's sum (the JSON way; _SECTIONS_SQL gives the same)."""
    ranked = sorted(sums.items(), key=_label_order)
    rest = _total(value for _, value in ranked[_MAX_BARS - 1 :])
    return SectionSums(ranked[:_MAX_BARS], len(ranked), rest)


def _section_labels(sections: Iterable[tuple[Any, Any, Any]]) -> dict[str, str]:
    """The label of each (section_id, heading, kind): its heading, else lead or untitled (the
    same rule as _SECTIONS_SQL's)."""
    labels = {}
    for section_id, heading, kind in sections:
        text = str(heading or "")
        labels[str(section_id)] = text or (_LEAD if kind == "lead" else _UNTITLED)
    return labels


def chart_rows(
    indicators: list[dict[str, Any]],
    sections: list[dict[str, Any]] | None = None,
    largest: int = _LARGEST,
) -> ChartData:
    """The charts' data from rows of the indicators and sections tables: the ``largest``
    largest money figures, the money by section label, the figures by unit family."""
    figures = []
    families: dict[str, int] = {}
    for row in indicators:
        family = row.get("unit_family")
        name = str(family or "other")
        families[name] = families.get(name, 0) + 1
        if family == "money":
            value = _number(row.get("value_base"))
            if value is not None and value > 0:
                figures.append(
                    MoneyFigure(
                        row.get("indicator_id"),
                        row.get("subject"),
                        row.get("quantity_text"),
                        row.get("section_id"),
                        value,
                    )
                )
    labels = _section_labels(
        (s.get("section_id"), s.get("heading"), s.get("kind")) for s in sections or []
    )
    values: dict[str, list[float]] = {}
    for figure in figures:
        sid = str(figure.section_id)
        values.setdefault(labels.get(sid, sid), []).append(figure.value)
    sums = {label: _total(each) for label, each in values.items()}
    top = heapq.nsmallest(largest, figures, key=_figure_order)
    return ChartData(top, section_sums(sums), families)


def section_bars(data: ChartData) -> list[Bar]:
    """Sum of money figures (value_base, 元) by section heading, largest first; past
    ``_MAX_BARS`` labels, the smallest are lumped in one bar."""
    sums = data.sections
    ranked = sums.top
    if sums.count > _MAX_BARS:
        ranked = [*sums.top[: _MAX_BARS - 1], (_OTHER, sums.rest)]
    return [Bar(label, value, money(value)) for label, value in ranked]


def family_bars(data: ChartData) -> list[Bar]:
    """How many figures of each unit family, most first."""
    ranked = sorted(data.families.items(), key=lambda kv: (-kv[1], kv[0]))
    return [
        Bar(f"{_FAMILIES.get(family, family)} ({family})", count, f"{count} 个")
        for family, count in ranked
    ]


def largest_bars(data: ChartData, limit: int = _LARGEST) -> list[Bar]:
    """The largest money figures, each labelled with its subject and written quantity (ties
    in indicator_id order); at most as many as ``data`` was read with."""
    return [
        Bar(str(f.subject or "（未命名）"), f.value, str(f.quantity_text or "") or money(f.value))
        for f in data.largest[:limit]
    ]


def money_by_section(indicators: list[dict[str, Any]], sections: list[dict[str, Any]]) -> list[Bar]:
    """Sum of money figures (value_base, 元) by section heading, largest first."""
    return section_bars(chart_rows(indicators, sections))


def figures_by_family(indicators: list[dict[str, Any]]) -> list[Bar]:
    """How many figures of each unit family, most first."""
    return family_bars(chart_rows(indicators))


def largest_money(indicators: list[dict[str, Any]], limit: int = 10) -> list[Bar]:
    """The largest money figures, each labelled with its subject and written quantity."""
    return largest_bars(chart_rows(indicators, largest=limit), limit)


# ---------------------------------------------------------------------------- markdown


def _inline(text: str) -> str:
    """Escaped text with `code` spans."""
    pieces = text.split("`")
    if len(pieces) % 2 == 0:  # an unmatched backtick stays literal
        pieces[-2:] = ["`".join(pieces[-2:])]
    return "".join(f"<code>{esc(p)}</code>" if i % 2 else esc(p) for i, p in enumerate(pieces))


def render_markdown(text: str) -> str:
    """A safe rendering of headings, bullets, paragraphs and `code`; the rest is plain text."""
    out: list[str] = []
    para: list[str] = []
    in_list = False

    def flush() -> None:
        nonlocal in_list
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if in_list:
            out.append("</ul>")
            in_list = False

    for line in text.splitlines():
        heading, bullet = _HEADING_RE.fullmatch(line.strip()), _BULLET_RE.fullmatch(line)
        if heading:
            flush()
            level = min(len(heading.group(1)) + 2, 6)
            out.append(f"<h{level}>{_inline(heading.group(2).strip())}</h{level}>")
        elif bullet:
            if para:
                out.append(f"<p>{_inline(' '.join(para))}</p>")
                para.clear()
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(bullet.group(1).strip())}</li>")
        elif line.strip():
            if in_list:
                flush()
            para.append(line.strip())
        else:
            flush()
    flush()
    return "\n".join(out)


# ---------------------------------------------------------------------------- pages


def page(title: str, crumbs: str, body: str, footer: str) -> bytes:
    """A whole HTML document around ``body`` (already escaped)."""
    doc = (
        '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(_CSP)}">\n'
        f'<meta name="referrer" content="no-referrer">\n<title>{esc(title)}</title>\n'
        f"<style>{CSS}</style>\n</head>\n<body>\n"
        f'<header class="top">{crumbs}</header>\n<main>\n{body}\n</main>\n'
        f"<footer>{footer}</footer>\n</body>\n</html>\n"
    )
    return doc.encode("utf-8")


def _stat(value: Any, label: str) -> str:
    return f'<div class="stat"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def latest_entry(dataset: dict[str, Any]) -> dict[str, Any]:
    """The catalog entry of the dataset's latest version."""
    return next(v for v in dataset["versions"] if v["version"] == dataset["latest"])


def _rows_of(version: dict[str, Any], table: str) -> int | None:
    for res in version["resources"]:
        if res["name"] == table and "rows" in res:
            return int(res["rows"])
    return None


def _footer(updated: Any, catalog_link: str | None) -> str:
    made = esc(_date(updated))
    link = f' · <a href="{catalog_link}">catalog.json</a>' if catalog_link else ""
    return f"reportdata 开放数据 · 数据更新于 {made}{link}"


def index_page(catalog: dict[str, Any], has_catalog: bool) -> bytes:
    """The catalog page: every dataset with its title, description and latest version."""
    items = []
    for d in catalog["datasets"]:
        latest = latest_entry(d)
        figures = _rows_of(latest, "indicators")
        facts = [f'最新版本 <span class="badge">{esc(d["latest"])}</span>']
        facts.append(f"更新于 {esc(_date(latest.get('created')))}")
        facts.append(f"{len(d['versions'])} 个版本")
        if figures is not None:
            facts.append(f"{figures} 个数字")
        items.append(
            f'<li class="card dataset" data-dataset="{esc(d["name"])}">'
            f'<h2><a href="{href(d["name"], PAGE)}">{esc(d["title"])}</a></h2>'
            f'<p class="lede">{esc(d["description"])}</p>'
            f'<p class="small">{" · ".join(facts)}</p></li>'
        )
    listing = (
        f'<ul class="datasets">{"".join(items)}</ul>'
        if items
        else '<p class="card">还没有发布的数据集。</p>'
    )
    body = (
        "<h1>开放数据目录</h1>"
        '<p class="lede">政府工作报告中的数字，整理为可下载、可核对、有版本的数据包'
        "（CSV、JSON、DuckDB）。</p>" + listing
    )
    crumbs = '<a href="index.html">reportdata</a> <span>· 数据目录</span>'
    link = href(CATALOG) if has_catalog else None
    return page("开放数据目录 · reportdata", crumbs, body, _footer(catalog.get("generated"), link))


@dataclass
class DatasetFiles:
    """What a dataset page reads besides the catalog."""

    package: dict[str, Any]
    changelog: str | None
    charts: ChartData


def _table_file(root: Path, version: dict[str, Any], filename: str) -> list[dict[str, Any]]:
    for res in version["resources"]:
        if PurePosixPath(res["path"]).name == filename and res["format"] == "json":
            data = read_json(root / res["path"])
            return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    return []


# What the charts need of the latest version, from the dataset's DuckDB file, ranked and cut in
# SQL so that only the bars' rows come back: the _LARGEST largest money figures; the _MAX_BARS
# largest sums by section label, with the number of labels and the sum of the rest (see
# SectionSums); the figures by unit family. The orders are _figure_order's and _label_order's,
# the labels _section_labels', and each sum is added smallest first as by _total.
_MONEY = "unit_family = 'money' AND isfinite(value_base) AND value_base > 0"
_LARGEST_SQL = f"""
SELECT indicator_id, subject, quantity_text, section_id, value_base FROM latest_indicators
WHERE {_MONEY} ORDER BY value_base DESC, indicator_id LIMIT {_LARGEST}"""
_SECTIONS_SQL = f"""
WITH money AS (
  SELECT i.value_base, CASE
    WHEN s.section_id IS NULL THEN coalesce(i.section_id, 'None')
    WHEN coalesce(s.heading, '') <> '' THEN s.heading
    WHEN s.kind = 'lead' THEN '{_LEAD}' ELSE '{_UNTITLED}' END AS label
  FROM (SELECT section_id, value_base FROM latest_indicators WHERE {_MONEY}) AS i
  LEFT JOIN latest_sections AS s ON s.section_id = i.section_id
), sums AS (
  SELECT label, sum(value_base ORDER BY value_base) AS total FROM money GROUP BY label
), ranked AS (
  SELECT label, total, row_number() OVER (ORDER BY total DESC, label) AS n FROM sums
)
SELECT label, total, (SELECT count(*) FROM ranked),
  (SELECT sum(total ORDER BY total) FROM ranked WHERE n >= {_MAX_BARS})
FROM ranked WHERE n <= {_MAX_BARS} ORDER BY n"""
_FAMILIES_SQL = "SELECT unit_family, count(*) FROM latest_indicators GROUP BY unit_family"


def _sums_of(rows: list[tuple[str, float, int, float | None]]) -> SectionSums:
    """SectionSums from _SECTIONS_SQL's rows (label, total, labels, rest)."""
    if not rows:
        return SectionSums([], 0, 0.0)
    return SectionSums(
        [(label, total) for label, total, _, _ in rows], rows[0][2], rows[0][3] or 0.0
    )


def warehouse_charts(root: Path, dataset: dict[str, Any]) -> ChartData | None:
    """The charts' data from the dataset's DuckDB file, opened read-only, when it is current
    (its latest version is the catalog's); None when there is no such file or it cannot be
    read, and the charts are then drawn from the latest version's JSON tables."""
    import duckdb

    rel = dataset.get("duckdb")
    if not rel or not (root / rel).is_file():
        return None
    try:
        con = duckdb.connect(str(root / rel), read_only=True)
    except duckdb.Error:
        return None
    try:
        if con.execute("SELECT version FROM versions WHERE is_latest").fetchall() != [
            (dataset["latest"],)
        ]:
            return None
        largest = [MoneyFigure(*row) for row in con.execute(_LARGEST_SQL).fetchall()]
        sections = _sums_of(con.execute(_SECTIONS_SQL).fetchall())
        families: dict[str, int] = {}
        for family, count in con.execute(_FAMILIES_SQL).fetchall():
            name = str(family or "other")
            families[name] = families.get(name, 0) + count
    except duckdb.Error:
        return None
    finally:
        con.close()
    return ChartData(largest, sections, families)


def load_charts(root: Path, dataset: dict[str, Any]) -> ChartData:
    """The charts' data of the dataset's latest version: from its DuckDB file when that is
    current, else from the version's indicators.json and sections.json."""
    found = warehouse_charts(root, dataset)
    if found is not None:
        return found
    latest = latest_entry(dataset)
    return chart_rows(
        _table_file(root, latest, "indicators.json"), _table_file(root, latest, "sections.json")
    )


def load_files(root: Path, dataset: dict[str, Any]) -> DatasetFiles:
    """Read the latest descriptor, the changelog and what the charts need."""
    latest = latest_entry(dataset)
    package = read_json(root / latest["datapackage"]["path"])
    changelog = None
    if dataset["changelog"]:
        try:
            changelog = (root / dataset["changelog"]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PublishError(f"Cannot read {root / dataset['changelog']}: {exc}.") from exc
    return DatasetFiles(
        package=package if isinstance(package, dict) else {},
        changelog=changelog,
        charts=load_charts(root, dataset),
    )


def _charts(data: ChartData, version: str) -> str:
    specs = [
        ("largest-money", "金额最大的数字（前 10 个）", "#ea580c", largest_bars(data),
         "按折算成元的金额排列，数值照原文写法。"),
        ("money-by-section", "各章节金额合计", "#2563eb", section_bars(data),
         "同一章节中所有金额（折算成元）相加；不同用途的金额相加只作规模参考。"),
        ("figures-by-family", "数字按类别统计", "#0d9488", family_bars(data),
         "每个类别的数字个数。"),
    ]  # fmt: skip
    cards = []
    for name, title, color, bars, note in specs:
        chart = (
            bar_chart(bars, title, color, name)
            if bars
            else '<p class="muted">这一版本没有可画的数字。</p>'
        )
        cards.append(
            f'<div class="card"><figure><figcaption>{esc(title)}</figcaption>{chart}'
            f'<p class="muted small">{esc(note)}</p></figure></div>'
        )
    return (
        f'<section id="charts"><h2>图表 <span class="muted small">（版本 {esc(version)}）'
        f'</span></h2><div class="charts">{"".join(cards)}</div></section>'
    )


def _history_of(root: Path, version: dict[str, Any]) -> dict[str, Any]:
    """A version's bump and reasons as its catalog entry has them (read from its
    changes.json only for an entry of a catalog made before entries held them)."""
    if "reasons" in version or not version.get("changes"):
        return version
    history = history_of(read_json(root / version["changes"]))
    return {**version, **history, "bump": version.get("bump") or history["bump"]}


def _reasons(version: dict[str, Any]) -> str:
    reasons = version.get("reasons")
    if not isinstance(reasons, list) or not reasons:
        return '<span class="muted">—</span>'
    items = "".join(f"<li>{esc(r)}</li>" for r in reasons)
    total = version.get("reasons_total")
    more = total - len(reasons) if isinstance(total, int) else 0
    if more > 0:
        text = f"… 另有 {more} 条"
        shown = _link(version["changes"], text) if version.get("changes") else esc(text)
        items += f'<li class="muted">{shown}</li>'
    return f"<ul>{items}</ul>"


def _history(root: Path, dataset: dict[str, Any]) -> str:
    rows = []
    for entry in dataset["versions"]:
        v = _history_of(root, entry)
        bump = v.get("bump")
        badge = (
            f'<span class="badge {esc(bump)}">{esc(_BUMPS.get(str(bump), bump))}</span>'
            if bump
            else '<span class="muted">—</span>'
        )
        mark = ' <span class="badge">最新</span>' if v["version"] == dataset["latest"] else ""
        rows.append(
            f'<tr data-version="{esc(v["version"])}"><td><b>{esc(v["version"])}</b>{mark}</td>'
            f"<td>{esc(_date(v.get('created')))}</td><td>{badge}</td>"
            f"<td>{_reasons(v)}</td></tr>"
        )
    return (
        '<section id="history" class="card"><h2>版本历史</h2><div class="scroll"><table>'
        "<thead><tr><th>版本</th><th>日期</th><th>类型</th><th>变化</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _changelog(text: str | None) -> str:
    if text is None:
        inner = '<p class="muted">这个数据集还没有更新日志。</p>'
    else:
        inner = (
            f'<p class="small"><a href="{href("CHANGELOG.md")}">CHANGELOG.md</a></p>'
            f'<div class="changelog">{render_markdown(text)}</div>'
        )
    return f'<section id="changelog" class="card"><h2>更新日志</h2>{inner}</section>'


def _field_row(field: dict[str, Any]) -> str:
    enum = (field.get("constraints") or {}).get("enum")
    extra = (
        '<br><span class="muted small">取值：'
        + "、".join(f"<code>{esc(v)}</code>" for v in enum)
        + "</span>"
        if isinstance(enum, list)
        else ""
    )
    return (
        f"<tr><td><code>{esc(field.get('name'))}</code></td><td>{esc(field.get('type', ''))}</td>"
        f"<td>{esc(field.get('description', ''))}{extra}</td></tr>"
    )


def _tables(files: DatasetFiles, latest: dict[str, Any]) -> str:
    blocks = []
    for res in files.package.get("resources") or []:
        schema = res.get("schema") if isinstance(res, dict) else None
        if not isinstance(schema, dict):
            continue
        fields = [f for f in schema.get("fields") or [] if isinstance(f, dict)]
        rows = _rows_of(latest, str(res.get("name")))
        count = f' <span class="muted small">{rows} 行</span>' if rows is not None else ""
        blocks.append(
            f'<div class="table" data-table="{esc(res.get("name"))}">'
            f"<h3>{esc(res.get('title') or res.get('name'))} "
            f"<code>{esc(res.get('name'))}</code>{count}</h3>"
            f'<p class="muted small">{esc(res.get("description", ""))}</p>'
            '<div class="scroll"><table><thead><tr><th>字段</th><th>类型</th><th>说明</th>'
            f"</tr></thead><tbody>{''.join(_field_row(f) for f in fields)}</tbody></table>"
            "</div></div>"
        )
    return f'<section id="tables" class="card"><h2>数据表与字段</h2>{"".join(blocks)}</section>'


def _link(rel: str, text: str, title: str = "") -> str:
    """A link to a catalog path ``<dataset>/...``, made relative to the dataset's folder."""
    parts = PurePosixPath(rel).parts[1:]
    tip = f' title="{esc(title)}"' if title else ""
    return f'<a href="{href(*parts)}"{tip}>{esc(text)}</a>'


def _download_cells(version: dict[str, Any]) -> dict[str, list[str]]:
    """Links to a version's files by column: table CSV, table JSON, other files."""
    cells: dict[str, list[str]] = {"csv": [], "json": [], "meta": []}
    cells["meta"].append(f"<div>{_link(version['datapackage']['path'], 'datapackage.json')}</div>")
    if version["changes"]:
        cells["meta"].append(f"<div>{_link(version['changes'], CHANGES)}</div>")
    for res in version["resources"]:
        if res["path"] == version["changes"]:
            continue
        table = "rows" in res and res["format"] in ("csv", "json")
        column = res["format"] if table else "meta"
        name = PurePosixPath(res["path"]).name
        size = esc(human_bytes(int(res["bytes"])))
        cells[column].append(f"<div>{_link(res['path'], name)} <span>{size}</span></div>")
    return cells


def _downloads(dataset: dict[str, Any]) -> str:
    rows = []
    for v in dataset["versions"]:
        cells = _download_cells(v)
        rows.append(
            f'<tr data-version="{esc(v["version"])}"><td><b>{esc(v["version"])}</b></td>'
            + "".join(
                f'<td class="links">{"".join(cells[k])}</td>' for k in ("csv", "json", "meta")
            )
            + "</tr>"
        )
    whole = ""
    if dataset["duckdb"]:
        name = PurePosixPath(dataset["duckdb"]).name
        whole = f"<p>所有版本合在一个 DuckDB 文件中：{_link(dataset['duckdb'], name)}</p>"
    return (
        f'<section id="downloads" class="card"><h2>下载</h2>{whole}<div class="scroll"><table>'
        "<thead><tr><th>版本</th><th>CSV</th><th>JSON</th><th>元数据</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _about(files: DatasetFiles) -> str:
    items = []
    for lic in files.package.get("licenses") or []:
        if isinstance(lic, dict):
            text = esc(lic.get("title") or lic.get("name") or "")
            url = external_href(lic.get("path"))
            link = f'<a href="{url}" rel="noopener noreferrer">{text}</a>' if url else text
            items.append(f"许可：{link}")
    for src in files.package.get("sources") or []:
        if isinstance(src, dict):
            text = esc(src.get("title") or src.get("path") or "")
            url = external_href(src.get("path"))
            where = "" if url else f' <span class="muted small">{esc(src.get("path", ""))}</span>'
            link = f'<a href="{url}" rel="noopener noreferrer">{text}</a>' if url else text
            items.append(f"来源：{link}{where}")
    return "".join(f'<p class="small">{item}</p>' for item in items)


def dataset_page(root: Path, dataset: dict[str, Any], catalog: dict[str, Any]) -> bytes:
    """The page of one dataset: summary, charts, history, changelog, tables and downloads."""
    files = load_files(root, dataset)
    latest = latest_entry(dataset)
    stats = "".join(
        [
            _stat(dataset["latest"], "最新版本"),
            _stat(_date(latest.get("created")), "更新日期"),
            _stat(len(dataset["versions"]), "版本数"),
            *(
                _stat(rows, label)
                for table, label in (
                    ("documents", "篇报告"),
                    ("sections", "个章节"),
                    ("indicators", "个数字"),
                )
                if (rows := _rows_of(latest, table)) is not None
            ),
        ]
    )
    body = (
        f'<h1>{esc(dataset["title"])}</h1><p class="lede">{esc(dataset["description"])}</p>'
        f'<div class="stats">{stats}</div>{_about(files)}'
        + _charts(files.charts, dataset["latest"])
        + _history(root, dataset)
        + _changelog(files.changelog)
        + _tables(files, latest)
        + _downloads(dataset)
    )
    crumbs = (
        f'<a href="{href("..", PAGE)}">reportdata</a> <span>· 数据目录 · '
        f"{esc(dataset['name'])}</span>"
    )
    has_catalog = (root / CATALOG).is_file()
    link = href("..", CATALOG) if has_catalog else None
    footer = _footer(latest.get("created"), link)  # its own date: no other dataset's
    return page(f"{dataset['title']} · reportdata", crumbs, body, footer)


def _write(path: Path, data: bytes) -> Path:
    """Write `data` atomically, unless the file already holds exactly these bytes."""
    try:
        if path.is_file() and path.read_bytes() == data:
            return path
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise PublishError(f"Could not write {path}: {exc.strerror or exc}.") from exc
    return path


def write_site(published_dir: Path, catalog: dict[str, Any] | None = None) -> list[Path]:
    """Write ``index.html`` and ``<dataset>/index.html`` under ``published_dir``.

    Run it after ``write_catalog`` so that the pages link to ``catalog.json``; pass the
    catalog written there to spare building it twice. A dataset page whose inputs are those
    it was last made from (`_page_inputs`, noted in the hidden ``MEMO`` file) and that is
    still the file then written is left as it is, unread. Returns the paths of all the pages,
    the catalog page first.
    """
    root = Path(published_dir)
    catalog = catalog if catalog is not None else build_catalog(root)
    has_catalog = (root / CATALOG).is_file()
    written = [_write(root / PAGE, index_page(catalog, has_catalog))]
    memo = _read_memo(root)
    made: dict[str, Any] = {}
    for dataset in catalog["datasets"]:
        path = root / dataset["name"] / PAGE
        inputs = _page_inputs(root, dataset, has_catalog)
        noted = memo.get(dataset["name"])
        stamp = _stamp(path)
        current = (
            inputs is not None
            and isinstance(noted, dict)
            and noted.get("inputs") == inputs
            and noted.get("page") == stamp
        )
        if not current:
            _write(path, dataset_page(root, dataset, catalog))
            stamp = _stamp(path)
        if inputs is not None:
            made[dataset["name"]] = {"inputs": inputs, "page": stamp}
        written.append(path)
    if made != memo:
        _write(root / MEMO, json.dumps(made, sort_keys=True).encode("utf-8"))
    return written


def _read_memo(root: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        memo = json.loads((root / MEMO).read_bytes())
        if isinstance(memo, dict):
            return memo
    return {}


def _stamp(path: Path) -> list[int] | None:
    """The path's `fsutil.file_stamp`, None when it is missing or unreadable."""
    try:
        return file_stamp(path.stat())
    except OSError:
        return None


@functools.cache
def _code() -> str:
    """The digest of this module's source: pages made by other code are made again."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _page_inputs(root: Path, dataset: dict[str, Any], has_catalog: bool) -> str | None:
    """A digest of what the dataset's page is made from: this code, whether catalog.json is
    there, the dataset's catalog entry (versions, files with their sizes and hashes, the
    latest datapackage.json's among them, reasons), and the stamps of the files the page
    reads that are no version's: CHANGELOG.md and the DuckDB file with its log. None when an
    entry holds no reasons, so that the page reads changes.json files (an older catalog)."""
    if any("reasons" not in v and v.get("changes") for v in dataset["versions"]):
        return None
    read = [dataset.get("changelog"), dataset.get("duckdb")]
    if dataset.get("duckdb"):
        read.append(dataset["duckdb"] + ".wal")
    stamps = [[rel, _stamp(root / rel)] for rel in read if isinstance(rel, str)]
    body = [_code(), has_catalog, dataset, stamps]
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
