"""Publish the tables as a versioned Data Package: CSV, JSON, DuckDB and `datapackage.json`.

Layout::

    published/<dataset>/latest.json            {"version": "1.1.0", "path": "1.1.0"}
    published/<dataset>/CHANGELOG.md           every version's changes, newest first
    published/<dataset>/<version>/datapackage.json, changes.json
    published/<dataset>/<version>/<table>.csv, <table>.json
    published/<dataset>/<dataset>.duckdb       every version, for SQL (`reportdata.warehouse`)

A version folder is written once, in a temporary sibling renamed into place, and never
rewritten. Its number is computed by the Data Package Version rules from what changed since
the previous version (`reportdata.changes`); tables and metadata equal to the newest
version's (same fingerprint, stored under ``reportdata:fingerprint``) publish nothing.
Files derived from the version folders are brought up to date after each version, and the
latest pointer moves last (`finish_release`); the DuckDB file's append is made on a copy
while the version is checked, and put in place after the version's rename.

Cell formatting, the same in CSV and JSON: numbers are written shortest-repr (``4.7``), and
without ``.0`` when integral (``4800``); booleans ``true``/``false``; a null is an empty CSV
cell and JSON ``null``; an optional string without value is ``""`` (read back as missing by
Frictionless).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportdata.changes import (
    CHANGELOG_HEADING,
    Changes,
    PackageState,
    changelog_entry,
    changelog_head,
    compare,
    next_version,
    render_changelog,
)
from reportdata.delta import (
    INDEX,
    BaseVersion,
    Block,
    block_index,
    read_version,
    splice,
)
from reportdata.errors import PublishError, ValidationFailed
from reportdata.fsutil import (
    atomic_write_bytes,
    exclusive_lock,
    file_stamp,
    fsync_dir,
    fsync_file,
    remove_temp_siblings,
)
from reportdata.memory import give_back
from reportdata.schema import (
    EXACT_INT,
    TABLES,
    conform,
    conform_rows,
    fields,
    json_value,
    load_schema,
    primary_key,
)

if TYPE_CHECKING:  # pandas and the validators load only when a version is written: a rerun
    import pandas as pd  # with nothing new never needs them

    from reportdata.validate import ValidationReport
    from reportdata.warehouse import PreparedAppend

DATAPACKAGE_PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
FINGERPRINT_KEY = "reportdata:fingerprint"
INPUTS_KEY = "reportdata:inputs"  # what the version was made from (pipeline.inputs_fingerprint)
LATEST = "latest.json"
_FORMATS = ("csv", "json")
CHANGES = "changes.json"
CHANGELOG = "CHANGELOG.md"
_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass
class DatasetInfo:
    """Package-level metadata of a dataset (Data Package v2 properties)."""

    name: str
    title: str
    description: str = ""
    licenses: list[dict[str, str]] = field(default_factory=list)
    sources: list[dict[str, str]] = field(default_factory=list)
    contributors: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PublishResult:
    """What `publish` did: the dataset's version now latest, its folder, and if it is new."""

    dataset: str
    version: str
    path: Path
    new: bool
    counts: dict[str, int] = field(default_factory=dict)  # rows of each table of the version
    stamps: dict[str, list[int]] | None = None
    """A new version's files as written and checked (`fsutil.file_stamp` by file name): given
    back to `read_base`, they spare the next run checking them again."""


# ---------------------------------------------------------------------------- rendering


def format_number(value: float) -> str:
    """Shortest round-tripping text of a number; integral values without ``.0`` (4800, 4.7)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot publish the non-finite number {value!r}")
    if value.is_integer() and abs(value) < EXACT_INT:
        return str(int(value))
    return repr(value)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def _by_key(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` conformed to its schema and sorted by its primary key."""
    frame = conform(name, frame)
    key = primary_key(name)
    return frame.sort_values(key, kind="stable").reset_index(drop=True) if key else frame


def table_rows(name: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of table `name` as JSON-ready dicts, in schema field order, sorted by key."""
    import pandas as pd

    frame = _by_key(name, frame)
    specs = [(f["name"], f.get("type", "string")) for f in fields(name)]
    columns = [frame[n].tolist() for n, _ in specs]
    na = pd.NA
    return [
        {n: json_value(v, t, na) for (n, t), v in zip(specs, values, strict=True)}
        for values in zip(*columns, strict=True)
    ]


def _rows(name: str, table: pd.DataFrame | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return conform_rows(name, table) if isinstance(table, list) else table_rows(name, table)


def render_csv(name: str, rows: list[dict[str, Any]]) -> bytes:
    """CSV bytes of `rows`: UTF-8, header, LF newlines, minimal quoting."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f["name"] for f in fields(name)])
    writer.writerows([_csv_cell(v) for v in row.values()] for row in rows)
    return out.getvalue().encode("utf-8")


def render_json(rows: list[dict[str, Any]]) -> bytes:
    """JSON bytes of `rows`: an array with one row object a line, UTF-8 unescaped."""
    body = ",\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    return (f"[\n{body}\n]\n" if rows else "[]\n").encode("utf-8")


def _schema_bytes(name: str) -> bytes:
    return json.dumps(load_schema(name), ensure_ascii=False, sort_keys=True).encode("utf-8")


Facts = dict[str, tuple[dict[str, Any], dict[str, Any]]]
"""Each table's CSV and JSON file facts (bytes, sha256), taken once a version."""


_SIDE_BY_SIDE = 3
"""Threads that hash or write a version's files side by side (hashlib and file writes let go
of the GIL for large buffers); three, so that the largest file, started first, has a core
while the others share the second."""


def _largest_first(items: list[tuple[Any, bytes]]) -> list[tuple[Any, bytes]]:
    return sorted(items, key=lambda item: -len(item[1]))


def file_facts(rendered: Mapping[str, tuple[bytes, bytes]]) -> Facts:
    """The size and sha256 of each rendered file, for the descriptor and the fingerprint."""
    files = _largest_first(
        [((name, i), data) for name, pair in rendered.items() for i, data in enumerate(pair)]
    )
    with ThreadPoolExecutor(max_workers=_SIDE_BY_SIDE) as pool:
        hashing = {key: pool.submit(_file_facts, data) for key, data in files}
    found = {key: future.result() for key, future in hashing.items()}
    return {name: (found[name, 0], found[name, 1]) for name in rendered}


def fingerprint(facts: Facts, metadata: Mapping[str, Any]) -> str:
    """sha256 over the package metadata and each table's name, schema and its CSV and JSON
    files' size and sha256."""
    digest = hashlib.sha256()
    meta = json.dumps(metadata, ensure_ascii=False, sort_keys=True).encode("utf-8")
    parts = [meta]
    for name in TABLES:
        files = [json.dumps(f, sort_keys=True).encode("utf-8") for f in facts[name]]
        parts += [name.encode("utf-8"), _schema_bytes(name), *files]
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return "sha256:" + digest.hexdigest()


# ---------------------------------------------------------------------------- versions


def _version_key(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in version.split("."))
    return major, minor, patch


def version_folders(dataset_dir: Path) -> list[str]:
    """Complete version folders (holding datapackage.json) of a dataset, oldest first."""
    if not dataset_dir.is_dir():
        return []
    found = [
        p.name
        for p in dataset_dir.iterdir()
        if _VERSION_RE.fullmatch(p.name) and (p / "datapackage.json").is_file()
    ]
    return sorted(found, key=_version_key)


def _read_latest(dataset_dir: Path) -> str | None:
    """The version `latest.json` points to, if it is there and names a complete version."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        pointer = json.loads((dataset_dir / LATEST).read_text(encoding="utf-8"))
        version = str(pointer["version"])
        complete = (dataset_dir / version / "datapackage.json").is_file()
        if _VERSION_RE.fullmatch(version) and complete:
            return version
    return None


def newest_version(published_dir: Path, dataset: str) -> str | None:
    """The highest complete version folder of a dataset, whatever latest.json says."""
    versions = version_folders(Path(published_dir) / dataset)
    return versions[-1] if versions else None


def latest_version(published_dir: Path, dataset: str) -> str | None:
    """The dataset's latest version from `latest.json` (else its newest folder), or None."""
    dataset_dir = Path(published_dir) / dataset
    versions = version_folders(dataset_dir)
    return _read_latest(dataset_dir) or (versions[-1] if versions else None)


def read_base(
    published_dir: Path, dataset: str, version: str, stamps: Mapping[str, Any] | None = None
) -> BaseVersion:
    """A published version read as rows, to build the next one on (`reportdata.delta`);
    DeltaUnusable when its files or schemas are not what this code would write. ``stamps``:
    those `publish` gave back when it wrote the version (files unchanged since are trusted)."""
    folder = Path(published_dir) / dataset / version
    return read_version(folder, {name: _inline_schema(name) for name in TABLES}, stamps)


def _stamps(folder: Path) -> dict[str, list[int]]:
    """The `fsutil.file_stamp` of each file of a version folder ({} when one is unreadable)."""
    try:
        return {p.name: file_stamp(p.stat()) for p in sorted(folder.iterdir())}
    except OSError:
        return {}


def read_package(published_dir: Path, dataset: str, version: str | None = None) -> dict[str, Any]:
    """The `datapackage.json` of a published version (the latest by default)."""
    version = version or latest_version(published_dir, dataset)
    if version is None:
        raise PublishError(f"Dataset {dataset!r} has no published version in {published_dir}.")
    if not _VERSION_RE.fullmatch(version):
        raise PublishError(f"{version!r} is not a version number like 1.2.0.")
    path = Path(published_dir) / dataset / version / "datapackage.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PublishError(
            f"Dataset {dataset!r} has no version {version} in {published_dir}."
        ) from None


# ---------------------------------------------------------------------------- descriptor


def _inline_schema(name: str) -> dict[str, Any]:
    """The Table Schema inlined in a resource (its name, title and description go up)."""
    schema = load_schema(name)
    for key in ("name", "title", "description"):
        schema.pop(key, None)
    return schema


def _file_facts(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "hash": "sha256:" + hashlib.sha256(data).hexdigest()}


def _contributors(items: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Contributors in Data Package v2 shape: a v1 ``role`` becomes ``roles: [role]``."""
    out = []
    for item in items:
        item = dict(item)
        role = item.pop("role", None)
        if role and "roles" not in item:
            item["roles"] = [role]
        out.append(item)
    return out


def _metadata(info: DatasetInfo) -> dict[str, Any]:
    """The package-level properties of the descriptor, without version and created."""
    metadata: dict[str, Any] = {
        "$schema": DATAPACKAGE_PROFILE,
        "name": info.name,
        "title": info.title,
        "description": info.description,
        "licenses": info.licenses,
        "sources": info.sources,
        "contributors": _contributors(info.contributors),
    }
    return {k: v for k, v in metadata.items() if v not in ("", [], None)}


def _table_resource(
    name: str, csv_bytes: bytes, facts: dict[str, Any] | None = None
) -> dict[str, Any]:
    schema = load_schema(name)
    return {
        "name": name,
        "type": "table",
        "path": f"{name}.csv",
        "title": schema.get("title", name),
        "description": schema.get("description", ""),
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        **(facts or _file_facts(csv_bytes)),
        "schema": _inline_schema(name),
    }


def _descriptor(
    metadata: Mapping[str, Any],
    version: str,
    created: str,
    facts: Facts,
    fp: str,
    changes: bytes,
    inputs: str | None = None,
) -> dict[str, Any]:
    resources = [_table_resource(name, b"", facts[name][0]) for name in TABLES]
    for name in TABLES:
        resources.append(
            {
                "name": f"{name}-json",
                "path": f"{name}.json",
                "description": f"The {name} table as a JSON array of row objects.",
                "format": "json",
                "mediatype": "application/json",
                "encoding": "utf-8",
                **facts[name][1],
            }
        )
    resources.append(
        {
            "name": "changes",
            "path": CHANGES,
            "description": "What changed since the previous version: rows, schema, metadata.",
            "format": "json",
            "mediatype": "application/json",
            "encoding": "utf-8",
            **_file_facts(changes),
        }
    )
    head = {k: metadata[k] for k in ("$schema", "name", "title", "description") if k in metadata}
    rest = {k: v for k, v in metadata.items() if k not in head}
    return {
        **head,
        "version": version,
        "created": created,
        **rest,
        "resources": resources,
        FINGERPRINT_KEY: fp,
        **({INPUTS_KEY: inputs} if inputs else {}),
    }


def _state(metadata: Mapping[str, Any], rows: Mapping[str, list[dict[str, Any]]]) -> PackageState:
    """The comparable state of tables about to be published (see `reportdata.changes`)."""
    resources = [_table_resource(name, b"") for name in TABLES]
    return PackageState.from_descriptor({**metadata, "resources": resources}, dict(rows))


# ---------------------------------------------------------------------------- writing


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)


def _write_files(folder: Path, files: Mapping[str, bytes]) -> list[str]:
    """Write the files into `folder` side by side, the largest first, each read back as soon
    as it is written; returns the names of those that do not hold the bytes given."""
    with ThreadPoolExecutor(max_workers=_SIDE_BY_SIDE) as pool:
        written = {
            name: pool.submit(_write_and_compare, folder / name, data)
            for name, data in _largest_first(list(files.items()))
        }
    return sorted(name for name, same in written.items() if not same.result())


def _write_and_compare(path: Path, data: bytes) -> bool:
    _write_file(path, data)
    return _same_file(path, data)


def _fsync_files(paths: list[Path]) -> None:
    for path in paths:
        fsync_file(path)


def _json_bytes(value: Any, indent: int | None = None) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=indent) + "\n").encode("utf-8")


def _write_latest(dataset_dir: Path, version: str) -> None:
    pointer = {"version": version, "path": version}
    data = (json.dumps(pointer, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    atomic_write_bytes(dataset_dir / LATEST, data)


def _write_version(
    dataset_dir: Path,
    metadata: Mapping[str, Any],
    version: str,
    created: str,
    rendered: Mapping[str, tuple[bytes, bytes]],
    facts: Facts,
    fp: str,
    changes: Mapping[str, Any],
    inputs: str | None = None,
    check: Callable[[Path], ValidationReport] | None = None,
    index: bytes | None = None,
    prepare: Callable[..., PreparedAppend | None] | None = None,
) -> tuple[Path, dict[str, list[int]], PreparedAppend | None]:
    """Write a complete version into a temporary folder (each file read back as written),
    check it (``check`` of the temporary folder; by default Frictionless validates the whole
    package) while its files go to disk, then rename it into place. ``prepare`` (of the
    temporary folder) readies the warehouse's append from the moment the folder holds its
    datapackage.json and changes.json, while the table files are written (it is given a
    ``written`` callable to wait on before it reads one). ``index`` is its `delta.INDEX`
    file (where each source's rows lie), written with it. Returns the folder, the stamps of
    its files that are the same before the check and after the rename (see `read_base`),
    and what ``prepare`` returned."""
    target = dataset_dir / version
    if target.exists():
        raise PublishError(f"Version folder {target} already exists; versions are never rewritten.")
    tmp = dataset_dir / f".tmp-{version}-{secrets.token_hex(4)}"
    ready: Future[PreparedAppend | None] | None = None
    published = False
    try:
        tmp.mkdir()
        files = {CHANGES: _json_bytes(changes)}  # the small files: written first
        descriptor = _descriptor(metadata, version, created, facts, fp, files[CHANGES], inputs)
        files["datapackage.json"] = _json_bytes(descriptor, indent=2)
        if index is not None:
            files[INDEX] = index
        tables = {}
        for name in TABLES:
            tables[f"{name}.csv"], tables[f"{name}.json"] = rendered[name]
        with ThreadPoolExecutor(max_workers=2) as pool:  # most of DuckDB's work, and fsync
            tables_written = threading.Event()
            try:
                differs = _write_files(tmp, files)
                if prepare and not differs:  # it goes on without the GIL, mostly
                    ready = pool.submit(prepare, tmp, written=tables_written.wait)
                differs += _write_files(tmp, tables)
            finally:
                tables_written.set()
            if differs:
                raise ValidationFailed(
                    f"Version {version} was written wrong ({', '.join(differs)} read back "
                    "different from the bytes its size and sha256 were taken of); nothing "
                    "was published."
                )
            files |= tables
            stamps = _stamps(tmp)
            synced = pool.submit(_fsync_files, [tmp / file_name for file_name in files])
            written = (check or _validate_whole)(tmp)
        synced.result()  # on disk before the rename
        if not written.ok:
            raise ValidationFailed(
                f"The written package failed frictionless validation; nothing was published: "
                f"{written.summary()}"
            )
        prepared = ready.result() if ready else None
        fsync_dir(tmp)
        if target.exists():
            raise PublishError(f"Version folder {target} appeared while publishing; not replaced.")
        os.rename(tmp, target)
        fsync_dir(dataset_dir)
        after = _stamps(target)
        stamps = {name: stamp for name, stamp in stamps.items() if after.get(name) == stamp}
        published = True
    except OSError as exc:
        raise PublishError(
            f"Could not write version {version} in {dataset_dir}: {exc.strerror or exc}."
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not published:
            _discard(ready)  # nor is its warehouse append
    return target, stamps, prepared


def _discard(ready: Future[PreparedAppend | None] | None) -> None:
    """Drop the warehouse append a future made, if it made one."""
    if ready is not None and ready.done() and ready.exception() is None:
        prepared = ready.result()
        if prepared is not None:
            prepared.discard()


def _validate_whole(folder: Path) -> ValidationReport:
    from reportdata.validate import validate_package

    return validate_package(folder / "datapackage.json")


def _waiting_for(new_rows: Future[ValidationReport]) -> Callable[[Path], ValidationReport]:
    """The check of a version made by `delta.splice`: ``new_rows``, the `_check_new_rows`
    started before its files were written. Every file was read back as written
    (`_write_files`), each table's against the bytes its size and sha256 were taken of; the
    other rows are the base version's, validated when it was published."""

    def check(_folder: Path) -> ValidationReport:
        return new_rows.result()

    return check


def _check_new_rows(dataset_dir: Path, tables: Mapping[str, bytes]) -> ValidationReport:
    """Frictionless over a package of the new rows alone (each table's CSV bytes, as
    rendered for the splice), in a temporary folder of `dataset_dir` (swept with the other
    ``.tmp-*`` leftovers if a crash leaves it). It runs in a thread while the version's files
    are written: the helper does the work in its own process."""
    from reportdata.validate import validate_package

    part = dataset_dir / f".tmp-new-rows-{secrets.token_hex(4)}"
    try:
        part.mkdir()
        resources = []
        for name in TABLES:
            csv_bytes = tables[name]
            _write_file(part / f"{name}.csv", csv_bytes)  # read back here, never kept
            resources.append(_table_resource(name, csv_bytes))
        package = {"name": "changed-rows", "resources": resources}
        (part / "datapackage.json").write_bytes(_json_bytes(package, indent=2))
        return validate_package(part / "datapackage.json")
    finally:
        shutil.rmtree(part, ignore_errors=True)


def _same_file(path: Path, expected: bytes, chunk: int = 1 << 22) -> bool:
    """Whether the file holds exactly ``expected``, read back a chunk at a time (each chunk
    compared in place, `bytes.startswith` at an offset: no slice of ``expected`` copied)."""
    at = 0
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as fh:
        while size := fh.readinto(buffer):
            if not expected.startswith(view[:size], at):
                return False
            at += size
    return at == len(expected)


def _now() -> str:
    """Now in UTC, or the moment SOURCE_DATE_EPOCH names (for reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch.isdigit() else datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def publish(
    tables: Mapping[str, pd.DataFrame] | Mapping[str, list[dict[str, Any]]],
    info: DatasetInfo,
    published_dir: Path,
    *,
    created: str | None = None,
    report: ValidationReport | None = None,
    inputs: str | None = None,
    base: BaseVersion | None = None,
    replaced: set[str] | None = None,
) -> PublishResult:
    """Publish `tables` as a new version of `info.name`, unless they equal the newest version.

    The tables are validated first (`ValidationFailed` when they break a check). `created`
    (ISO 8601) defaults to now in UTC. Raises `PublishError` when the folder is unwritable.
    With `base` (the newest version, read by `read_base`), `tables` hold the rows of
    the `replaced` sources only and the other rows are the base's (see `reportdata.delta`).
    `tables` are DataFrames or lists of row dicts (a run that replaces a few reports' rows
    imports no pandas).
    """
    if not _NAME_RE.fullmatch(info.name):
        raise PublishError(
            f"Dataset name {info.name!r} must be lower-case letters, digits, '-' or '_'."
        )
    if report is None:  # the caller's report of these same tables saves a second check
        from reportdata.validate import check

        report = check(tables)
    if not report.ok:
        raise ValidationFailed(f"Nothing was published: {report.summary()}")
    created = created or _now()
    dataset_dir = Path(published_dir) / info.name
    try:
        dataset_dir.mkdir(parents=True, exist_ok=True)
        lock = open(dataset_dir / ".publish.lock", "a+b")  # noqa: SIM115 - held while publishing
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PublishError(
            f"Cannot write to the published folder {published_dir}: {reason}."
        ) from exc
    with lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # one publisher of a dataset at a time
        return _publish_locked(
            tables, info, Path(published_dir), dataset_dir, created, inputs, base, replaced
        )


def _publish_locked(
    tables: Mapping[str, pd.DataFrame] | Mapping[str, list[dict[str, Any]]],
    info: DatasetInfo,
    published_dir: Path,
    dataset_dir: Path,
    created: str,
    inputs: str | None = None,
    base: BaseVersion | None = None,
    replaced: set[str] | None = None,
) -> PublishResult:
    for leftover in dataset_dir.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for written in (dataset_dir / CHANGELOG, dataset_dir / LATEST):
        remove_temp_siblings(written)  # this dataset's lock is held: only crashed writes
    rows = {name: _rows(name, tables[name]) for name in TABLES}  # conformed, sorted
    rendered = {name: (render_csv(name, rows[name]), render_json(rows[name])) for name in TABLES}
    counts = {name: len(rows[name]) for name in TABLES}
    metadata = _metadata(info)

    versions = version_folders(dataset_dir)
    previous = versions[-1] if versions else None
    blocks: Mapping[str, list[Block] | None] = {}
    if base is not None:
        if previous != base.version:
            raise PublishError(
                f"Version {previous} of {info.name} appeared while this run built on version "
                f"{base.version}; nothing was published: run again."
            )
        replaced = set(replaced or ())
        new_csv = {name: rendered[name][0] for name in TABLES}  # what Frictionless checks
        rendered, counts, blocks = splice(base, replaced, rendered)
    facts = file_facts(rendered)
    fp = fingerprint(facts, metadata)
    old_state = None
    if previous is not None:
        descriptor = base.descriptor if base else read_package(published_dir, info.name, previous)
        if descriptor.get(FINGERPRINT_KEY) == fp:
            return _unchanged(published_dir, info, previous, counts)
        if base is not None:  # rows of other sources are equal on both sides: leave them out
            old_state = PackageState.from_descriptor(descriptor, base.rows_of(replaced or set()))
        else:
            old_state = PackageState.from_folder(dataset_dir / previous)
    found = compare(old_state, _state(metadata, rows))
    if found is None:  # same data and metadata, written differently (an older release)
        return _unchanged(published_dir, info, previous, counts)
    version = next_version(previous, found.bump or "patch")
    changes = found.to_json(dataset=info.name, version=version, previous=previous, created=created)
    index = block_index(rendered, blocks)
    held = {f"{version}/{name}.json": rendered[name][1] for name in TABLES}
    if base is not None:  # the base's files, read (checked, or unchanged since written)
        held |= {f"{base.version}/{name}.json": base.tables[name].json for name in TABLES}
    from reportdata.warehouse import prepare_append

    prepare = functools.partial(prepare_append, dataset_dir, info.name, held=held)
    with ThreadPoolExecutor(max_workers=1) as early:  # the new rows' check, meanwhile
        check = None
        if base is not None:
            new_rows = early.submit(_check_new_rows, dataset_dir, new_csv)
            check = _waiting_for(new_rows)
        target, stamps, prepared = _write_version(
            dataset_dir,
            metadata,
            version,
            created,
            rendered,
            facts,
            fp,
            changes,
            inputs,
            check,
            index,
            prepare if previous is not None else None,
        )
    # What is left holds the files' facts and, in `held`, the JSON bytes the warehouse reads:
    # the rows and the other bytes go before it loads them (the first version's peak).
    del rows, rendered, check, found, old_state, changes
    give_back()
    written = {  # rows of the files just written: the catalog need not count them again
        f"{info.name}/{version}/{name}.{ext}": counts[name] for name in TABLES for ext in _FORMATS
    }
    known = {  # and their size and sha256, taken of the bytes written and checked
        f"{info.name}/{version}/{name}.{ext}": (fact["bytes"], fact["hash"])
        for name in TABLES
        for ext, fact in zip(_FORMATS, facts[name], strict=True)
    }
    try:
        finish_release(
            published_dir, info.name, info.title, version, written, held, known, prepared
        )
    finally:
        if prepared is not None:
            prepared.discard()  # when not installed
    return PublishResult(info.name, version, target, True, counts, stamps)


def _unchanged(
    published_dir: Path, info: DatasetInfo, version: str, counts: dict[str, int]
) -> PublishResult:
    """Nothing new to publish: complete what a crashed run may have left undone."""
    finish_release(published_dir, info.name, info.title, version)
    return PublishResult(info.name, version, published_dir / info.name / version, False, counts)


# ---------------------------------------------------------------------------- after a version


def _changes_of(dataset_dir: Path, versions: list[str], only: int | None = None) -> list[dict]:
    """Each version's changes.json (``only``: of the version at that index alone); computed
    from the folders for versions written without."""
    entries = []
    for i, version in enumerate(versions):
        if only is not None and i != only % len(versions):
            continue
        path = dataset_dir / version / CHANGES
        try:
            entries.append(json.loads(path.read_text(encoding="utf-8")))
            continue
        except (OSError, ValueError):
            pass
        new = PackageState.from_folder(dataset_dir / version)
        old = PackageState.from_folder(dataset_dir / versions[i - 1]) if i else None
        found = compare(old, new) or Changes("patch")
        previous = versions[i - 1] if i else None
        created = new.metadata.get("created")
        entries.append(
            found.to_json(
                dataset=dataset_dir.name, version=version, previous=previous, created=created
            )
        )
    return entries


def _write_changelog(dataset_dir: Path, title: str, versions: list[str]) -> None:
    """CHANGELOG.md of every version, newest first. When it already lists every version but
    the newest, in order under today's opening, the newest one's entry is put on top (older
    entries never change); otherwise it is written again from every changes.json."""
    path = dataset_dir / CHANGELOG
    head = changelog_head(title)
    try:
        existing = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        existing = ""
    listed = CHANGELOG_HEADING.findall(existing) if existing.startswith(head) else None
    if listed == versions[::-1]:
        return
    if versions and listed == versions[-2::-1]:
        (entry,) = _changes_of(dataset_dir, versions, only=-1)
        text = head + changelog_entry(entry) + existing[len(head) :]
    else:
        text = render_changelog(title, _changes_of(dataset_dir, versions))
    _write_if_changed(path, text.encode("utf-8"))


def _write_if_changed(path: Path, data: bytes) -> None:
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return
    atomic_write_bytes(path, data)


def _warehouse_current(dataset_dir: Path, dataset: str, versions: list[str], latest: str) -> bool:
    """True when the dataset's all-versions DuckDB file holds exactly these versions."""
    import duckdb

    from reportdata.warehouse import warehouse_path

    path = warehouse_path(dataset_dir, dataset)
    if not path.is_file():
        return False
    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            held = con.execute("SELECT version, is_latest FROM versions").fetchall()
        finally:
            con.close()
    except duckdb.Error:
        return False
    return sorted(held) == sorted((v, v == latest) for v in versions)


def _catalog_latest(published_dir: Path, dataset: str) -> str | None:
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError, AttributeError):
        catalog = json.loads((published_dir / "catalog.json").read_text(encoding="utf-8"))
        for entry in catalog["datasets"]:
            if entry["name"] == dataset:
                return entry["latest"]
    return None


def complete_release(published_dir: Path, dataset: str, title: str) -> str | None:
    """Finish the newest version's release if a crashed run left it unfinished (nothing to do
    when latest.json and the catalog already name it); returns that version, if any."""
    published_dir = Path(published_dir)
    dataset_dir = published_dir / dataset
    newest = newest_version(published_dir, dataset)
    if newest is None:
        return None
    with _locked(dataset_dir / ".publish.lock"):
        for written in (dataset_dir / CHANGELOG, dataset_dir / LATEST):
            remove_temp_siblings(written)
        newest = newest_version(published_dir, dataset) or newest
        done = _read_latest(dataset_dir) == newest
        if not (done and _catalog_latest(published_dir, dataset) == newest):
            finish_release(published_dir, dataset, title, newest)
    return newest


def _locked(path: Path):
    return exclusive_lock(path, PublishError)


def _write_index(
    published_dir: Path,
    rows: Mapping[str, int] | None = None,
    files: Mapping[str, tuple[int, str]] | None = None,
) -> None:
    """catalog.json and the pages, under the lock of the whole published/ folder (every
    dataset's publisher writes them), after removing what crashed writes left; ``rows``: the
    row counts and ``files`` the size and sha256 of files the caller just wrote (see
    `build_catalog`)."""
    from reportdata.catalog import build_catalog, write_catalog
    from reportdata.site import MEMO, write_site

    with _locked(published_dir / ".release.lock"):
        pages = [published_dir / "catalog.json", published_dir / "index.html", published_dir / MEMO]
        pages += [d / "index.html" for d in published_dir.iterdir() if d.is_dir()]
        for page in pages:
            remove_temp_siblings(page)
        catalog = build_catalog(published_dir, rows=rows, files=files)  # once for both
        write_catalog(published_dir, catalog=catalog)
        write_site(published_dir, catalog)


def finish_release(
    published_dir: Path,
    dataset: str,
    title: str,
    latest: str,
    rows: Mapping[str, int] | None = None,
    held: Mapping[str, bytes] | None = None,
    files: Mapping[str, tuple[int, str]] | None = None,
    prepared: PreparedAppend | None = None,
) -> None:
    """Bring what derives from the version folders up to date, then move the latest pointer.

    In order: the dataset's CHANGELOG.md and its all-versions DuckDB file, then latest.json
    (the pointer of record), then the catalog and the pages, which index every dataset's
    pointer. Each step is atomic and skipped when already current, so a run after a crash
    completes what the crashed run left undone and an unchanged rerun writes nothing.
    ``held``: bytes of version files the caller holds, by path in the dataset folder;
    ``rows`` and ``files``: the row counts, and size and sha256, of files the caller just
    wrote and checked, by path in the published folder (see `build_catalog`); ``prepared``:
    the warehouse with `latest` appended while it was written (`warehouse.prepare_append`).
    """
    from reportdata.warehouse import build_warehouse

    published_dir = Path(published_dir)
    dataset_dir = published_dir / dataset
    try:
        versions = version_folders(dataset_dir)
        _write_changelog(dataset_dir, title, versions)
        installed = prepared is not None and prepared.install(versions)
        if not installed and not _warehouse_current(dataset_dir, dataset, versions, latest):
            build_warehouse(dataset_dir, dataset, latest=latest, held=held)
        if _read_latest(dataset_dir) != latest:
            _write_latest(dataset_dir, latest)
        _write_index(published_dir, rows, files)
    except OSError as exc:
        raise PublishError(
            f"Could not finish release {latest} in {dataset_dir}: {exc.strerror or exc}."
        ) from exc
