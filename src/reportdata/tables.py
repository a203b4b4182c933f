"""Build the rows of the documents, sections and indicators tables for one report."""

from __future__ import annotations

from dataclasses import dataclass

from reportdata.errors import InputError
from reportdata.extract import figures, report_year
from reportdata.layout import structure
from reportdata.read import ReadResult, read_bytes

_TRADITIONAL = set("區國會經濟發這為與萬億說當對時們個來實現設計劃點業產務機構總額於證據")
_SIMPLIFIED = set("区国会经济发这为与万亿说当对时们个来实现设计划点业产务机构总额于证据")


@dataclass(frozen=True)
class DocumentInfo:
    """What the registry knows of a report before it is read."""

    document_id: str
    dataset: str
    title: str
    publisher: str
    area: str
    licence: str
    origin: str
    raw_sha256: str
    published_year: int | None = None


def detect_script(text: str) -> str:
    """'traditional' when traditional-only characters outnumber simplified-only ones."""
    trad = sum(1 for c in text if c in _TRADITIONAL - _SIMPLIFIED)
    simp = sum(1 for c in text if c in _SIMPLIFIED - _TRADITIONAL)
    return "traditional" if trad > simp else "simplified"


def indicator_row(document_id: str, section_id: str, f) -> dict:
    """One indicators row, columns in the guide's names."""
    q = f.quantity
    return {
        "indicator_id": f"{document_id}-{q.start:06d}",
        "document_id": document_id,
        "section_id": section_id,
        "subject": f.subject,
        "value": q.value,
        "unit": q.unit,
        "value_base": q.value_base,
        "unit_base": q.unit_base,
        "unit_family": q.unit_family,
        "qualifier": q.qualifier,
        "status": f.status,
        "measure": f.measure,
        "period": f.period,
        "quantity_text": q.text,
        "sentence": f.sentence.strip(),
        "char_start": q.start,
        "char_end": q.end,
    }


def build_rows(info: DocumentInfo, read: ReadResult) -> dict[str, list[dict]]:
    """The three tables' rows for one report already read into text; InputError when no
    text is left once scraping noise is removed (a page of only &nbsp; entities)."""
    st = structure(read.text)
    if not st.text.strip():
        raise InputError("The report holds no text once scraping noise is removed.")
    year = report_year(st.text, info.published_year, st.folded)
    section_ids = []
    section_rows = []
    for ordinal, s in enumerate(st.sections):
        sid = f"{info.document_id}-s{ordinal:02d}"
        section_ids.append((s, sid))
        section_rows.append(
            {
                "section_id": sid,
                "document_id": info.document_id,
                "ordinal": ordinal,
                "kind": s.kind,
                "heading": s.heading,
                "plan": s.plan,
                "char_start": s.start,
                "char_end": s.end,
            }
        )
    indicator_rows = []
    for f in figures(st.text, st.sections, year, st.folded):
        sid = next(i for s, i in section_ids if s.start <= f.quantity.start < s.end)
        indicator_rows.append(indicator_row(info.document_id, sid, f))
    document = {
        "document_id": info.document_id,
        "dataset": info.dataset,
        "title": info.title or st.title or _first_line(st.text) or info.document_id,
        "subtitle": st.subtitle,
        "publisher": info.publisher,
        "reporter": " ".join(st.reporters),
        "photographer": " ".join(st.photographers),
        "area": info.area,
        "report_year": year,
        "licence": info.licence,
        "origin": info.origin,
        "raw_sha256": info.raw_sha256,
        "format": read.format,
        "encoding": read.encoding,
        "script": detect_script(st.text),
        "text": st.text,
    }
    return {"documents": [document], "sections": section_rows, "indicators": indicator_rows}


def _first_line(text: str, limit: int = 60) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def rows_from_bytes(info: DocumentInfo, data: bytes, hint: str = "") -> dict[str, list[dict]]:
    """Read raw bytes and build the report's rows."""
    return build_rows(info, read_bytes(data, hint))


GUIDE_COLUMNS = (
    "subject",
    "value",
    "unit",
    "value_base",
    "unit_base",
    "unit_family",
    "qualifier",
    "status",
    "measure",
    "period",
    "quantity_text",
)
