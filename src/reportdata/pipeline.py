"""The pipeline's steps as plain functions, composed by the Prefect flow in ``flows/``.

Each step takes data and returns data; none knows about Prefect.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportdata.errors import ReportdataError, ValidationFailed
from reportdata.project import Project, Source
from reportdata.pull import Snapshot, latest_snapshot
from reportdata.read import read_bytes, read_file
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
    failures: dict[str, str] = field(default_factory=dict)


@dataclass
class Extracted:
    """The rows of the sources that could be read, and why the others could not."""

    rows: dict[str, Rows] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # source id → cache key of its rows
    failures: dict[str, str] = field(default_factory=dict)  # source id → the sentence
    cached: int = 0


def _snapshot_of(project: Project, source: Source) -> Snapshot:
    snap = latest_snapshot(project.raw_dir, source.id)
    if snap is None:
        from reportdata.errors import PullError

        raise PullError(f"Source {source.id!r} has not been pulled yet.")
    return snap


def extract_source(project: Project, source: Source, snapshot: Snapshot | None = None) -> Rows:
    """Read a source's newest snapshot and build its rows."""
    snap = snapshot or _snapshot_of(project, source)
    data = read_file(snap.path(project.raw_dir), f"The snapshot of source {source.id!r}")
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


def pull_sources(
    project: Project, sources: list[Source], workers: int = 8, on_done=None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Pull every source; returns (results, failures) by source id, in the sources' order.
    ``on_done(id, result)`` hears of each source as it is done, in this thread (result None
    when it failed).

    Up to ``workers`` URLs are fetched at a time, all over one libcurl multi handle driven
    from this thread (connections kept open, no thread a transfer); new bytes are stored,
    and sources that are files read, by ``workers`` threads meanwhile. A source that cannot
    be pulled is recorded with its sentence; the others go on.
    """
    from concurrent.futures import Future, ThreadPoolExecutor, as_completed

    from reportdata import pull as pulling

    workers = max(1, workers)
    policy = pulling.POLICY
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    storing: dict[Future, Source] = {}

    def settle(source: Source, result: Any, error: BaseException | None) -> None:
        if error is None:
            results[source.id] = result
        elif isinstance(error, ReportdataError):
            failures[source.id] = str(error)
        elif isinstance(error, OSError):
            failures[source.id] = f"Source {source.id!r} could not be stored: {error}."
        else:
            raise error
        if on_done is not None:
            on_done(source.id, result if error is None else None)

    def stored(future: Future) -> None:
        error = future.exception()
        settle(storing.pop(future), None if error else future.result(), error)

    with pulling.HttpClient() as client, ThreadPoolExecutor(max_workers=workers) as pool:
        for source in sources:
            if not source.url:
                storing[pool.submit(pulling.pull, project, source)] = source
        jobs = [(s, pulling.pull_steps(project, s, policy)) for s in sources if s.url]
        for source, got, error in client.run_many(jobs, workers, policy):
            if error is None and not isinstance(got, pulling.PullResult):
                storing[pool.submit(pulling.store_fetched, project, source, got)] = source
            else:
                settle(source, got, error)
            for future in [f for f in storing if f.done()]:
                stored(future)
        for future in as_completed(list(storing)):
            stored(future)
    order = [s.id for s in sources]
    return (
        {i: results[i] for i in order if i in results},
        {i: failures[i] for i in order if i in failures},
    )


def extract_sources(project: Project, sources: list[Source]) -> Extracted:
    """Rows of each source, from the cache when its raw bytes, its sources.yaml entry and the
    extractor are unchanged; a source that cannot be read is recorded, not raised."""
    from reportdata import cache

    out = Extracted()
    for source in sources:
        try:
            snap = _snapshot_of(project, source)
            key = source_key(source, snap)
            rows = cache.load_rows(project, source.id, key)
            if rows is None:
                rows = extract_source(project, source, snap)
                cache.save_rows(project, source.id, key, rows)
            else:
                out.cached += 1
        except ReportdataError as exc:
            out.failures[source.id] = str(exc)
            continue
        except OSError as exc:
            out.failures[source.id] = f"Source {source.id!r} could not be read: {exc}."
            continue
        out.rows[source.id] = rows
        out.keys[source.id] = key
    return out


def source_key(source: Source, snapshot: Snapshot) -> str:
    """The cache key of a source's rows (see :mod:`reportdata.cache`) made from ``snapshot``."""
    from reportdata import cache

    return cache.source_key(source, snapshot.sha256, snapshot.content_type or snapshot.file)


def source_keys(sources: list[Source], snapshots: dict[str, Snapshot]) -> dict[str, str]:
    """Each source's :func:`source_key` from the snapshot in force, reading no rows: enough
    to tell whether a release is still current."""
    return {s.id: source_key(s, snapshots[s.id]) for s in sources if s.id in snapshots}


def inputs_fingerprint(project: Project, dataset: str, keys: dict[str, str]) -> str:
    """What a release is made from: each source's cache key and the dataset's metadata."""
    from dataclasses import asdict

    meta = json.dumps(asdict(project.dataset(dataset)), sort_keys=True, ensure_ascii=False)
    body = json.dumps(sorted(keys.items())) + "\0" + meta
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()


def failing_sources(report, tables) -> set[str] | None:
    """The sources (document ids) whose rows the validation errors are about; None when an
    error belongs to no row (a missing table), so no source can be blamed alone."""
    from reportdata.schema import TABLES, primary_key

    owners: dict[tuple[str, str], str] = {}
    for name in TABLES:
        table = tables[name]
        key = primary_key(name)
        if len(key) != 1:
            continue
        if isinstance(table, list):  # row dicts (`conformed`)
            pairs = ((row.get(key[0]), row.get("document_id")) for row in table)
        elif "document_id" in table:
            pairs = zip(table[key[0]].tolist(), table["document_id"].tolist(), strict=True)
        else:
            continue
        for k, doc in pairs:
            owners[(name, str(k))] = str(doc)
    blamed: set[str] = set()
    for error in report.errors:
        owner = owners.get((error["table"], str(error.get("key"))))
        if owner is None:
            return None
        blamed.add(owner)
    return blamed


def previous_rows(project: Project, dataset: str, source_ids: set[str]) -> dict[str, Rows]:
    """The rows the latest published version holds for these sources, by source."""
    from reportdata.publish import latest_version
    from reportdata.schema import TABLES

    version = latest_version(project.published_dir, dataset)
    found: dict[str, Rows] = {}
    if version is None or not source_ids:
        return found
    folder = project.published_dir / dataset / version
    for name in TABLES:
        try:
            rows = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        for row in rows:
            doc = row.get("document_id")
            if doc in source_ids:
                found.setdefault(doc, {t: [] for t in TABLES})[name].append(row)
    return found


def _inputs_note(project: Project, dataset: str) -> Path:
    return project.root / ".reportdata" / "inputs" / f"{dataset}.json"


def _read_note(project: Project, dataset: str, version: str) -> dict[str, Any]:
    """What the last run noted about ``version`` (see `_note_release`); {} when nothing."""
    with contextlib.suppress(OSError, ValueError):
        note = json.loads(_inputs_note(project, dataset).read_text(encoding="utf-8"))
        if isinstance(note, dict) and note.get("version") == version:
            return note
    return {}


def published_inputs(project: Project, dataset: str) -> set[str]:
    """The inputs fingerprints the newest published version is known to be made from: the one
    it recorded (``reportdata:inputs``), and the one a later run noted when other inputs (a
    new extractor, say) gave exactly its tables, so that no new version was written."""
    from reportdata.publish import INPUTS_KEY, newest_version, read_package

    version = newest_version(project.published_dir, dataset)
    if version is None:
        return set()
    known = set()
    with contextlib.suppress(ReportdataError):
        value: Any = read_package(project.published_dir, dataset, version).get(INPUTS_KEY)
        if isinstance(value, str):
            known.add(value)
    noted = _read_note(project, dataset, version).get("inputs")
    if isinstance(noted, str):
        known.add(noted)
    return known


def _note_release(
    project: Project,
    dataset: str,
    version: str,
    inputs: str | None,
    keys: dict[str, str],
    stamps: dict[str, list[int]] | None = None,
) -> None:
    """Remember (in .reportdata/, best effort) what ``version`` was made from: the inputs
    fingerprint when every source was read, and the cache key of each source whose own rows
    it holds (a source that failed keeps older rows and is left out); with the stamps of its
    files as `publish` wrote them (None: those of the last note of ``version``, for a run
    that wrote nothing)."""
    from reportdata.fsutil import atomic_write_bytes

    if stamps is None:
        stamps = _read_note(project, dataset, version).get("stamps")
    note = {"version": version, "inputs": inputs, "sources": dict(sorted(keys.items()))}
    if isinstance(stamps, dict):
        note["stamps"] = stamps
    with contextlib.suppress(OSError):
        path = _inputs_note(project, dataset)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(note).encode("utf-8"))


@dataclass
class Plan:
    """A run that builds the next version on the newest one (see `reportdata.delta`)."""

    base: Any  # delta.BaseVersion
    replaced: set[str]  # sources whose rows the run replaces: changed, new or removed
    noted: dict[str, str]  # source → cache key of the rows the base holds

    def kept(self, current: set[str]) -> set[str]:
        """Sources of the dataset whose base rows stay whatever the run finds."""
        return (self.base.sources() & current) - self.replaced

    def keys_after(
        self, current: set[str], replaced: set[str], fresh: dict[str, str]
    ) -> dict[str, str]:
        """The cache keys behind the next version: the base's for the sources it keeps, the
        run's for the ``replaced`` sources that published their own rows (``fresh``)."""
        kept = {s: k for s, k in self.noted.items() if s in current and s not in replaced}
        return {**kept, **{s: k for s, k in fresh.items() if s in replaced}}


def plan(
    project: Project, dataset: str, keys: dict[str, str], current: set[str]
) -> tuple[Plan | None, str]:
    """Build on the newest version when its note names the cache key of each source it holds:
    the sources whose key differs (or that are new or gone) are replaced, the others keep
    their rows unread. (None, why) when the whole version must be made again."""
    from reportdata.delta import DeltaUnusable
    from reportdata.publish import newest_version, read_base

    version = newest_version(project.published_dir, dataset)
    if version is None:
        return None, "first version"
    note = _read_note(project, dataset, version)
    noted, stamps = note.get("sources"), note.get("stamps")
    if not isinstance(noted, dict):
        return None, f"no note of the sources behind version {version}"
    try:
        base = read_base(
            project.published_dir, dataset, version, stamps if isinstance(stamps, dict) else None
        )
    except DeltaUnusable as exc:
        return None, f"version {version} cannot be built on: {exc}"
    replaced = {sid for sid, key in keys.items() if noted.get(sid) != key}
    replaced |= base.sources() - current
    return Plan(base, replaced, {str(k): str(v) for k, v in noted.items()}), ""


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


def conformed(rows: Rows) -> Rows:
    """The tables as row dicts cast to their schemas, in their order: what `frames` holds,
    without pandas (for the few rows of a run that replaces some reports)."""
    from reportdata.schema import TABLES, conform_rows

    return {name: conform_rows(name, rows.get(name, []), sort=False) for name in TABLES}


def check(project: Project, dataset: str, tables, note: str = ""):
    """Validate the tables and write the report under reports/<dataset>/ (JSON and Markdown;
    ``note`` says what the tables cover when it is not the whole dataset).

    Returns the report; the caller decides what a failure means (see :func:`require_valid`).
    """
    from reportdata import validate

    report = validate.check(tables)
    report.note = note
    validate.write_report(report, project.reports_dir / dataset)
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


def release(
    project: Project,
    dataset: str,
    tables,
    report=None,
    inputs: str | None = None,
    keys: dict[str, str] | None = None,
    plan: Plan | None = None,
    replaced: set[str] | None = None,
) -> ReleaseSummary:
    """Publish the tables as a version of the dataset (nothing new when unchanged);
    ``report``, the result of :func:`check` on these tables, spares a second check;
    ``inputs`` (see :func:`inputs_fingerprint`) and ``keys`` (each source's cache key, for
    the sources whose own rows the tables hold) are noted so that a rerun can skip work.
    With ``plan``, ``tables`` hold the rows of the ``replaced`` sources only and the version
    is built on ``plan.base``."""
    from reportdata.publish import newest_version, publish

    result = publish(
        tables,
        dataset_info(project, dataset),
        project.published_dir,
        report=report,
        inputs=inputs,
        base=plan.base if plan else None,
        replaced=replaced,
    )
    if newest_version(project.published_dir, dataset) == result.version:
        stamps = (result.stamps or {}) if result.new else None  # None: those noted stay
        _note_release(project, dataset, result.version, inputs, keys or {}, stamps)
    return ReleaseSummary(result.dataset, result.version, result.path, result.new, result.counts)
