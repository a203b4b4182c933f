"""Publish the tables as a versioned Data Package: CSV, JSON, DuckDB and `datapackage.json`.

Layout::

    published/<dataset>/latest.json            {"version": "1.1.0", "path": "1.1.0"}
    published/<dataset>/<version>/datapackage.json
    published/<dataset>/<version>/<table>.csv, <table>.json, <dataset>.duckdb

A version folder is written once, in a temporary sibling renamed into place, and never
rewritten. Its content fingerprint (sha256 over the table CSV and JSON bytes and the schemas)
is stored in `datapackage.json` under ``reportdata:fingerprint``; publishing tables whose
fingerprint equals the newest version's writes nothing.

Cell formatting, the same in CSV and JSON: numbers are written shortest-repr (``4.7``), and
without ``.0`` when integral (``4800``); booleans ``true``/``false``; a null is an empty CSV
cell and JSON ``null``; an optional string without value is ``""`` (read back as missing by
Frictionless).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from reportdata.errors import PublishError, ValidationFailed
from reportdata.fsutil import atomic_write_bytes, fsync_dir
from reportdata.load import load_duckdb
from reportdata.schema import TABLES, conform, fields, load_schema, primary_key
from reportdata.validate import ValidationReport, check_tables, validate_package

DATAPACKAGE_PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
FINGERPRINT_KEY = "reportdata:fingerprint"
LATEST = "latest.json"
_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_EXACT_INT = 2**53


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


# ---------------------------------------------------------------------------- rendering


def format_number(value: float) -> str:
    """Shortest round-tripping text of a number; integral values without ``.0`` (4800, 4.7)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot publish the non-finite number {value!r}")
    if value.is_integer() and abs(value) < _EXACT_INT:
        return str(int(value))
    return repr(value)


def _json_value(value: Any, ftype: str) -> Any:
    """A cell as a JSON value: None for nulls, int for integral numbers."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if ftype == "integer":
        return int(value)
    if ftype == "number":
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"cannot publish the non-finite number {number!r}")
        return int(number) if number.is_integer() and abs(number) < _EXACT_INT else number
    if ftype == "boolean":
        return bool(value)
    return str(value)


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
    frame = _by_key(name, frame)
    specs = [(f["name"], f.get("type", "string")) for f in fields(name)]
    columns = [frame[n].tolist() for n, _ in specs]
    return [
        {n: _json_value(v, t) for (n, t), v in zip(specs, values, strict=True)}
        for values in zip(*columns, strict=True)
    ]


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


def fingerprint(rendered: Mapping[str, tuple[bytes, bytes]]) -> str:
    """sha256 over each table's name, schema, CSV and JSON bytes, in table order."""
    digest = hashlib.sha256()
    for name in TABLES:
        for part in (name.encode("utf-8"), _schema_bytes(name), *rendered[name]):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return "sha256:" + digest.hexdigest()


# ---------------------------------------------------------------------------- versions


def next_version(previous: str | None, rows_only_added: bool) -> str:
    """The version after `previous`: 1.0.0 first, MINOR when rows were only added, else PATCH."""
    if previous is None:
        return "1.0.0"
    major, minor, patch = (int(p) for p in previous.split("."))
    return f"{major}.{minor + 1}.0" if rows_only_added else f"{major}.{minor}.{patch + 1}"


def _rows_only_added(old_dir: Path, new_rows: Mapping[str, list[dict[str, Any]]]) -> bool:
    """True when the schemas are unchanged and every old row is still there, unchanged."""
    try:
        package = json.loads((old_dir / "datapackage.json").read_text(encoding="utf-8"))
        old_schemas = {r["name"]: r.get("schema") for r in package.get("resources", [])}
        grew = False
        for name in TABLES:
            if old_schemas.get(name) != _inline_schema(name):
                return False
            old = json.loads((old_dir / f"{name}.json").read_text(encoding="utf-8"))
            new = {json.dumps(r, ensure_ascii=False, sort_keys=True) for r in new_rows[name]}
            if any(json.dumps(r, ensure_ascii=False, sort_keys=True) not in new for r in old):
                return False
            grew = grew or len(new_rows[name]) > len(old)
        return grew
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _version_key(version: str) -> tuple[int, int, int]:
    major, minor, patch = (int(p) for p in version.split("."))
    return major, minor, patch


def _versions(dataset_dir: Path) -> list[str]:
    """Complete version folders of a dataset, oldest first."""
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


def latest_version(published_dir: Path, dataset: str) -> str | None:
    """The dataset's latest version from `latest.json` (else its newest folder), or None."""
    dataset_dir = Path(published_dir) / dataset
    versions = _versions(dataset_dir)
    return _read_latest(dataset_dir) or (versions[-1] if versions else None)


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


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


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


def _descriptor(
    info: DatasetInfo,
    version: str,
    created: str,
    rendered: Mapping[str, tuple[bytes, bytes]],
    duckdb_path: Path,
    fp: str,
) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for name in TABLES:
        schema = load_schema(name)
        resources.append(
            {
                "name": name,
                "type": "table",
                "path": f"{name}.csv",
                "title": schema.get("title", name),
                "description": schema.get("description", ""),
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                **_file_facts(rendered[name][0]),
                "schema": _inline_schema(name),
            }
        )
    for name in TABLES:
        resources.append(
            {
                "name": f"{name}-json",
                "path": f"{name}.json",
                "description": f"The {name} table as a JSON array of row objects.",
                "format": "json",
                "mediatype": "application/json",
                "encoding": "utf-8",
                **_file_facts(rendered[name][1]),
            }
        )
    resources.append(
        {
            "name": "duckdb",
            "path": duckdb_path.name,
            "description": "All tables in one DuckDB database, with column comments.",
            "format": "duckdb",
            "mediatype": "application/x-duckdb",
            "bytes": duckdb_path.stat().st_size,
            "hash": _sha256_file(duckdb_path),
        }
    )
    descriptor: dict[str, Any] = {
        "$schema": DATAPACKAGE_PROFILE,
        "name": info.name,
        "title": info.title,
        "description": info.description,
        "version": version,
        "created": created,
        "licenses": info.licenses,
        "sources": info.sources,
        "contributors": _contributors(info.contributors),
        "resources": resources,
        FINGERPRINT_KEY: fp,
    }
    return {k: v for k, v in descriptor.items() if v not in ("", [], None)}


# ---------------------------------------------------------------------------- writing


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _write_latest(dataset_dir: Path, version: str) -> None:
    pointer = {"version": version, "path": version}
    data = (json.dumps(pointer, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    atomic_write_bytes(dataset_dir / LATEST, data)


def _write_version(
    dataset_dir: Path,
    info: DatasetInfo,
    version: str,
    created: str,
    frames: Mapping[str, pd.DataFrame],
    rendered: Mapping[str, tuple[bytes, bytes]],
    fp: str,
) -> Path:
    """Write a complete version into a temporary folder, then rename it into place."""
    target = dataset_dir / version
    if target.exists():
        raise PublishError(f"Version folder {target} already exists; versions are never rewritten.")
    tmp = dataset_dir / f".tmp-{version}-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
        for name in TABLES:
            csv_bytes, json_bytes = rendered[name]
            _write_synced(tmp / f"{name}.csv", csv_bytes)
            _write_synced(tmp / f"{name}.json", json_bytes)
        duckdb_path = load_duckdb(frames, tmp / f"{info.name}.duckdb")
        descriptor = _descriptor(info, version, created, rendered, duckdb_path, fp)
        text = json.dumps(descriptor, ensure_ascii=False, indent=2) + "\n"
        _write_synced(tmp / "datapackage.json", text.encode("utf-8"))
        written = validate_package(tmp / "datapackage.json")
        if not written.ok:
            raise ValidationFailed(
                f"The written package failed frictionless validation; nothing was published: "
                f"{written.summary()}"
            )
        fsync_dir(tmp)
        if target.exists():
            raise PublishError(f"Version folder {target} appeared while publishing; not replaced.")
        os.rename(tmp, target)
        fsync_dir(dataset_dir)
    except OSError as exc:
        raise PublishError(f"Could not write version {version} in {dataset_dir}: {exc}.") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def publish(
    tables: Mapping[str, pd.DataFrame],
    info: DatasetInfo,
    published_dir: Path,
    *,
    created: str | None = None,
    report: ValidationReport | None = None,
) -> PublishResult:
    """Publish `tables` as a new version of `info.name`, unless they equal the newest version.

    The tables are validated first (`ValidationFailed` when they break a check). `created`
    (ISO 8601) defaults to now in UTC. Raises `PublishError` when the folder is unwritable.
    """
    if not _NAME_RE.fullmatch(info.name):
        raise PublishError(
            f"Dataset name {info.name!r} must be lower-case letters, digits, '-' or '_'."
        )
    if report is None:  # the caller's report of these same tables saves a second check
        report = check_tables(tables)
    if not report.ok:
        raise ValidationFailed(f"Nothing was published: {report.summary()}")
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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
        return _publish_locked(tables, info, Path(published_dir), dataset_dir, created)


def _publish_locked(
    tables: Mapping[str, pd.DataFrame],
    info: DatasetInfo,
    published_dir: Path,
    dataset_dir: Path,
    created: str,
) -> PublishResult:
    for leftover in dataset_dir.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    frames = {name: _by_key(name, tables[name]) for name in TABLES}
    rows = {name: table_rows(name, frames[name]) for name in TABLES}
    rendered = {name: (render_csv(name, rows[name]), render_json(rows[name])) for name in TABLES}
    fp = fingerprint(rendered)

    versions = _versions(dataset_dir)
    previous = versions[-1] if versions else None
    if previous is not None:
        old = read_package(published_dir, info.name, previous)
        if old.get(FINGERPRINT_KEY) == fp:
            if _read_latest(dataset_dir) != previous:  # repair after a crash before latest.json
                _write_latest(dataset_dir, previous)
            return PublishResult(info.name, previous, dataset_dir / previous, new=False)
    added = previous is not None and _rows_only_added(dataset_dir / previous, rows)
    version = next_version(previous, added)
    target = _write_version(dataset_dir, info, version, created, frames, rendered, fp)
    try:
        _write_latest(dataset_dir, version)
    except OSError as exc:
        raise PublishError(f"Could not write {dataset_dir / LATEST}: {exc}.") from exc
    return PublishResult(info.name, version, target, new=True)
