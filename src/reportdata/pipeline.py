"""The pipeline's steps as plain functions, composed by the Prefect flow in ``flows/``.

Each step takes data and returns data; none knows about Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reportdata.errors import ValidationFailed
from reportdata.project import Project, Source
from reportdata.pull import Snapshot, latest_snapshot
from reportdata.read import read_bytes
from reportdata.tables import DocumentInfo, build_rows

Rows = dict[str, list[dict]]


@dataclass(frozen=True)
class ReleaseSummary:
    """What a run of one dataset ended with."""

    dataset: str
    version: str
    path: Path
    new: bool
    counts: dict[str, int]


def extract_source(project: Project, source: Source, snapshot: Snapshot | None = None) -> Rows:
    """Read a source's newest snapshot and build its rows."""
    snap = snapshot or latest_snapshot(project.raw_dir, source.id)
    if snap is None:
        from reportdata.errors import PullError

        raise PullError(f"Source {source.id!r} has not been pulled yet.")
    data = snap.path(project.raw_dir).read_bytes()
    read = read_bytes(data, snap.content_type or snap.file)
    info = DocumentInfo(
        document_id=source.id,
        dataset=source.dataset,
        title=source.title,
        publisher=source.publisher,
        area=source.area,
        licence=source.licence,
        origin=source.origin,
        raw_sha256=snap.sha256,
        published_year=source.published_year,
    )
    return build_rows(info, read)


def merge(parts: list[Rows]) -> Rows:
    """Concatenate the rows of several reports, table by table."""
    from reportdata.schema import TABLES

    out: Rows = {name: [] for name in TABLES}
    for part in parts:
        for name in TABLES:
            out[name].extend(part.get(name, []))
    return out


def frames(rows: Rows):
    """Typed DataFrames of the tables, columns from the schemas."""
    from reportdata.schema import TABLES, to_frame

    return {name: to_frame(name, rows.get(name, [])) for name in TABLES}


def check(project: Project, dataset: str, tables):
    """Validate the tables and write the report under reports/<dataset>/ (JSON and Markdown).

    Returns the report; the caller decides what a failure means (see :func:`require_valid`).
    """
    from reportdata.validate import check_tables, write_report

    report = check_tables(tables)
    write_report(report, project.reports_dir / dataset)
    return report


def require_valid(project: Project, dataset: str, report) -> None:
    """Raise ValidationFailed, naming the written report, when ``report`` holds errors."""
    if not report.ok:
        folder = project.reports_dir / dataset
        raise ValidationFailed(
            f"{report.summary().rstrip('.')}; nothing was published. "
            f"See {folder / 'validation.md'}.",
            (str(folder / "validation.json"), str(folder / "validation.md")),
        )


def dataset_info(project: Project, dataset: str):
    """Package metadata for a dataset, from sources.yaml."""
    from reportdata.publish import DatasetInfo

    d = project.dataset(dataset)
    sources = [
        {"title": s.title or s.id, "path": s.url or s.path} for s in project.sources_of(dataset)
    ]
    return DatasetInfo(
        name=d.name,
        title=d.title,
        description=d.description,
        licenses=[d.licence],
        sources=sources,
        contributors=list(d.contributors) or [{"title": "reportdata", "role": "creator"}],
    )


def release(project: Project, dataset: str, tables, report=None) -> ReleaseSummary:
    """Publish the tables as a version of the dataset (nothing new when unchanged);
    ``report``, the result of :func:`check` on these tables, spares a second check."""
    from reportdata.publish import publish

    result = publish(tables, dataset_info(project, dataset), project.published_dir, report=report)
    counts = {name: len(frame) for name, frame in tables.items()}
    return ReleaseSummary(result.dataset, result.version, result.path, result.new, counts)
