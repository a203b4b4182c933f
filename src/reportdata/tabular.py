"""Figures from tables: rows written as ``| cell | cell |`` lines (HTML and PDF tables are
rendered that way when read), with units declared by a caption (单位:万元) or a column header
(增长(%), 产量(万吨)) applying to the cells under them."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from reportdata.figure import Figure
from reportdata.normalize import fold
from reportdata.numerals import ARABIC_RE
from reportdata.quantity import Quantity, scale
from reportdata.units import resolve, unit_pattern

_UNIT = r"(?:万亿|亿|千万|百万|十万|万|千|百)?(?:" + unit_pattern() + r")"
_DECLARED = re.compile(r"单位\s*[:]\s*(" + _UNIT + r")")
_HEADER_UNIT = re.compile(r"[(\[]\s*(" + _UNIT + r")\s*[)\]]\s*$")
_CELL_NUMBER = re.compile(r"([-+]?\s?(?:" + ARABIC_RE + r"))\s*(" + _UNIT + r")?")
_SEPARATOR = re.compile(r"^[\s|:\-]+$")
_YEAR = re.compile(r"((?:19|20)\d{2})\s*年?")
_GENERIC = re.compile(
    r"^(?:数值|数量|金额|总量|合计|总计|本年|本期|实际|完成|绝对值|指标值|数据|规模"
    r"|(?:年度)?(?:目标|计划|预计|预期)(?:值|数)?)?$"
)
_CHANGE = re.compile(r"增长|增速|增幅|增减|比上年|同比|下降")


@dataclass(frozen=True)
class Cell:
    text: str
    start: int
    end: int


def is_row(line: str) -> bool:
    """A table row: a line with at least two cell separators."""
    return line.count("|") + line.count("｜") >= 2


def _cells(text: str, start: int, end: int) -> list[Cell]:
    cells, pos = [], start
    for part in text[start:end].split("|"):
        lead = len(part) - len(part.lstrip())
        body = part.strip()
        cells.append(Cell(body, pos + lead, pos + lead + len(body)))
        pos += len(part) + 1
    if cells and not cells[0].text:
        cells = cells[1:]
    if cells and not cells[-1].text:
        cells = cells[:-1]
    return cells


def _number(cell: str) -> re.Match[str] | None:
    return _CELL_NUMBER.fullmatch(fold(cell)) if cell else None


def _lines(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for line in text.split("\n"):
        spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def blocks(text: str) -> list[list[tuple[int, int]]]:
    """Runs of consecutive table-row lines, as line spans."""
    if "|" not in text and "｜" not in text:
        return []
    out: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    for a, b in _lines(text):
        if is_row(text[a:b]):
            current.append((a, b))
        elif text[a:b].strip() == "" and current:
            continue
        else:
            if current:
                out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def _caption(text: str, block_start: int) -> str:
    before = text[:block_start].rstrip("\n")
    return before[before.rfind("\n") + 1 :]


def _header_parts(cell: str) -> tuple[str, str]:
    """'增长(%)' → ('增长', '%'); '产量(万吨)' → ('产量', '万吨')."""
    folded = fold(cell)
    m = _HEADER_UNIT.search(folded)
    if m and resolve(m.group(1)):
        return cell[: m.start()].strip(), m.group(1)
    m = _DECLARED.search(folded)
    if m and resolve(m.group(1)):
        return cell[: m.start()].strip(" ,(:"), m.group(1)
    return cell.strip(), ""


def _table_figures(
    text: str, block: list[tuple[int, int]], report_year: int | None
) -> list[Figure]:
    pairs = [((a, b), _cells(text, a, b)) for a, b in block if not _SEPARATOR.match(text[a:b])]
    pairs = [(span, cells) for span, cells in pairs if cells]
    rows = [cells for _, cells in pairs]
    caption = fold(_caption(text, block[0][0]))
    table_unit = ""
    for source in [caption] + [fold(c.text) for r in rows for c in r]:
        m = _DECLARED.search(source)
        if m and resolve(m.group(1)):
            table_unit = m.group(1)
            break
    caption_year = _YEAR.search(caption)
    header: list[Cell] | None = None
    out: list[Figure] = []
    for (a, b), cells in pairs:
        if all(_DECLARED.search(fold(c.text)) or not c.text for c in cells):
            continue  # a row that only declares the unit
        numeric = [c for c in cells if _number(c.text)]
        if not numeric:
            header = cells
            continue
        label_cell = next((c for c in cells if not _number(c.text)), None)
        if label_cell is None:
            continue
        for col, cell in enumerate(cells):
            if cell is label_cell:
                continue
            m = _number(cell.text)
            if m is None:
                continue
            head = header[col].text if header is not None and col < len(header) else ""
            head_name, head_unit = _header_parts(head)
            unit = m.group(2) or head_unit or table_unit
            if not unit:
                continue
            found = resolve(unit)
            if found is None:
                continue
            family, base, factor = found
            value = float(m.group(1).replace(" ", "").replace(",", ""))
            if not math.isfinite(scale(value, factor)):
                continue  # a run of digits beyond a float's range is no amount
            year = _YEAR.fullmatch(fold(head_name).strip())
            change = bool(_CHANGE.search(fold(head_name)))
            name = label_cell.text
            if change:
                name = f"{name}{'增长' if not _CHANGE.search(fold(name)) else ''}"
            elif head_name and not year and not _GENERIC.match(fold(head_name)):
                name = f"{name}{head_name}"
            q = Quantity(
                value=value,
                unit=unit,
                value_base=scale(value, factor),
                unit_base=base,
                unit_family=family,
                qualifier="exact",
                text=cell.text,
                start=cell.start,
                end=cell.end,
            )
            period = (
                year.group(1)
                if year
                else caption_year.group(1)
                if caption_year
                else str(report_year or "")
            )
            head_folded = fold(head)
            status = (
                "estimate"
                if "预计" in head_folded
                else "target"
                if re.search(r"目标|计划|预期", head_folded)
                else "actual"
            )
            out.append(
                Figure(name, q, status, "change" if change else "level", period, text[a:b], a)
            )
    return out


def figures(
    text: str, report_year: int | None, found: list[list[tuple[int, int]]] | None = None
) -> list[Figure]:
    """Every figure in the text's tables (``found``: its :func:`blocks`, if already known)."""
    out: list[Figure] = []
    for block in blocks(text) if found is None else found:
        out.extend(_table_figures(text, block, report_year))
    return out
