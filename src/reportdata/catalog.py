"""The catalog of everything published: ``published/catalog.json``.

One entry a dataset, its versions newest first, each file with its size, sha256 and (for
tables in CSV and JSON) its row count, all read from the files themselves (a row count the
caller already knows, having just written the file, may be handed in instead). Each version
entry also carries ``reasons``, the first 20 reasons of its changes.json (what the version
changed, in words), and ``reasons_total``, how many it lists: the pages show the history
without reading any changes.json. A published version never changes, so the entry of a
version whose datapackage.json and file sizes are those the previous catalog.json recorded
is taken from there, not hashed and counted again, nor its descriptor parsed.
Paths are POSIX paths relative to the folder holding ``catalog.json``; ``url`` is the path,
or the base URL joined with it. The same tree always gives the same bytes: nothing depends on
the clock.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from reportdata.errors import PublishError
from reportdata.fsutil import atomic_write_bytes

PROFILE = "reportdata-catalog/1"
CATALOG = "catalog.json"
CHANGES = "changes.json"
CHANGELOG = "CHANGELOG.md"
PAGE = "index.html"
_VERSION_RE = re.compile(r"\d+\.\d+\.\d+")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_BASE_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)
_ROW_FORMATS = ("csv", "json")
REASONS = 20  # reasons of a version kept in its catalog entry
# A quote, when the byte before it or the one after it is no delimiter, newline or quote.
_CSV_ODD_QUOTE = re.compile(rb'"(?:(?<=[^,\n"]")|[^,\n"])')


# ---------------------------------------------------------------------------- reading


def read_json(path: Path) -> Any:
    """The JSON document at ``path``; PublishError naming the file when it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PublishError(f"Cannot read {path}: {exc}.") from exc
    except ValueError as exc:
        raise PublishError(f"{path} is not valid JSON: {exc}.") from exc


def version_key(version: str) -> tuple[int, int, int]:
    """Sort key of a version number like 1.2.0."""
    major, minor, patch = (int(p) for p in version.split("."))
    return major, minor, patch


def dataset_names(published_dir: Path) -> list[str]:
    """Datasets under ``published_dir`` with at least one complete version, sorted."""
    return sorted(
        p.name for p in published_dir.iterdir() if _NAME_RE.fullmatch(p.name) and versions(p)
    )


def versions(dataset_dir: Path) -> list[str]:
    """Complete version folders (holding datapackage.json) of a dataset, newest first."""
    from reportdata.publish import version_folders

    return version_folders(dataset_dir)[::-1]


def latest(dataset_dir: Path, found: list[str]) -> str:
    """The version latest.json names when it is a complete version, else the newest one."""
    pointer = dataset_dir / "latest.json"
    if pointer.is_file():
        data = read_json(pointer)
        version = data.get("version") if isinstance(data, dict) else None
        if isinstance(version, str) and version in found:
            return version
    return found[0]


def resource_path(version_dir: Path, raw: Any) -> PurePosixPath:
    """A descriptor's resource path, checked to be a plain relative path inside the folder."""
    if not isinstance(raw, str):
        raise PublishError(f"A resource of {version_dir} has no file path.")
    path = PurePosixPath(raw)
    if (
        path.is_absolute()
        or not path.parts
        or not all(_SEGMENT_RE.fullmatch(p) for p in path.parts)
    ):
        raise PublishError(f"Resource path {raw!r} in {version_dir} is not a plain relative path.")
    return path


def count_rows(path: Path, fmt: str) -> int | None:
    """Rows of a table file: records after the header of a CSV (quoted newlines are one row),
    or items of a JSON array; None for JSON that is no array (no table)."""
    try:
        if fmt == "csv":
            records = _csv_records(path.read_bytes())
            if records is None:  # a file the fast count cannot be sure of: csv.reader's count
                with open(path, encoding="utf-8", newline="") as fh:
                    records = sum(1 for _ in csv.reader(fh))
            return max(records - 1, 0)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise PublishError(f"Cannot count the rows of {path}: {exc}.") from exc
    return len(data) if isinstance(data, list) else None


def _csv_records(data: bytes) -> int | None:
    """The records csv.reader reads from UTF-8 ``data`` (empty lines included), counted
    without parsing a cell; None when the file is not plain enough to be sure: a carriage
    return or NUL, no final newline, a quote left open or one not around a whole cell.

    Cut at every quote, the pieces at odd places are the insides of quoted cells (a doubled
    quote cuts one in two, around an empty piece). Joined by a quote, the other pieces hold
    every newline that ends a record, and each quote must stand between delimiters,
    newlines and quotes (or the file's ends): then csv.reader quotes exactly those cells.
    """
    if not data:
        return 0
    if data[-1:] != b"\n" or b"\r" in data or b"\0" in data:
        return None
    data.decode("utf-8")  # UnicodeDecodeError, as csv.reader's file would raise
    pieces = data.split(b'"')
    if len(pieces) % 2 == 0:
        return None
    outside = b'"'.join(pieces[0::2]) if len(pieces) > 1 else data
    if _CSV_ODD_QUOTE.search(outside):
        return None
    return outside.count(b"\n")


def _file_facts(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    except OSError as exc:
        raise PublishError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return size, "sha256:" + digest.hexdigest()


# ---------------------------------------------------------------------------- building


class _Linker:
    """Turns a path relative to the catalog into its url."""

    def __init__(self, base_url: str | None) -> None:
        if base_url is not None and not _BASE_RE.fullmatch(base_url):
            raise PublishError(f"Base URL {base_url!r} is not an absolute URL like https://host/.")
        self.base = base_url.rstrip("/") if base_url else None

    def url(self, path: str) -> str:
        return f"{self.base}/{quote(path)}" if self.base else path


def _file_entry(
    root: Path, rel: str, linker: _Linker, files: Mapping[str, tuple[int, str]] | None = None
) -> dict[str, Any]:
    known = files.get(rel) if files is not None else None
    size, digest = known if known is not None else _file_facts(root / rel)
    return {"path": rel, "url": linker.url(rel), "bytes": size, "hash": digest}


def _listed(version_dir: Path, prefix: str, package: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, path from the catalog's folder, format) of each resource a package lists."""
    out = []
    for resource in package.get("resources") or []:
        if not isinstance(resource, dict):
            raise PublishError(f"{version_dir / 'datapackage.json'} has a malformed resource.")
        rel = f"{prefix}/{resource_path(version_dir, resource.get('path')).as_posix()}"
        fmt = str(resource.get("format") or PurePosixPath(rel).suffix.lstrip(".")).lower()
        out.append((str(resource.get("name", "")), rel, fmt))
    return out


def _reusable(root: Path, prefix: str, old: Any, datapackage: dict) -> bool:
    """Whether ``old`` (the previous catalog's entry of this version) still describes it: the
    same datapackage.json bytes (so the same resources: the entry was made from, or checked
    against, a descriptor with that hash), each file in the version's folder and of the
    recorded size."""
    try:
        if (old["datapackage"]["hash"], old["datapackage"]["bytes"]) != (
            datapackage["hash"],
            datapackage["bytes"],
        ):
            return False
        for r in old["resources"]:
            path = PurePosixPath(r["path"])
            inside = path.parts[:2] == tuple(prefix.split("/")) and ".." not in path.parts
            if not inside or (root / path).stat().st_size != r["bytes"]:
                return False
        return True
    except (KeyError, TypeError, AttributeError, OSError):
        return False


def history_of(changes: Any) -> dict[str, Any]:
    """``bump``, ``reasons`` (the first `REASONS`) and ``reasons_total`` of a version, from
    its parsed changes.json (None when it has none)."""
    changes = changes if isinstance(changes, dict) else {}
    reasons = changes.get("reasons")
    reasons = reasons if isinstance(reasons, list) else []
    return {
        "bump": changes.get("bump"),
        "reasons": reasons[:REASONS],
        "reasons_total": len(reasons),
    }


def _kept_history(old: dict[str, Any]) -> dict[str, Any] | None:
    """The bump and reasons a previous entry recorded; None when it has none (older shape)."""
    reasons, total = old.get("reasons"), old.get("reasons_total")
    if not isinstance(reasons, list) or isinstance(total, bool) or not isinstance(total, int):
        return None
    return {"bump": old.get("bump"), "reasons": reasons[:REASONS], "reasons_total": total}


def _version_entry(
    root: Path,
    name: str,
    version: str,
    linker: _Linker,
    old: Any = None,
    rows: Mapping[str, int] | None = None,
    files: Mapping[str, tuple[int, str]] | None = None,
) -> dict[str, Any]:
    prefix = f"{name}/{version}"
    datapackage = _file_entry(root, f"{prefix}/datapackage.json", linker)
    changes_path = root / prefix / CHANGES
    if old is not None and _reusable(root, prefix, old, datapackage):  # no descriptor parsed
        resources = [{**r, "url": linker.url(r["path"])} for r in old["resources"]]
        history = _kept_history(old)
        if history is None:  # a catalog written before entries held reasons
            history = history_of(read_json(changes_path) if changes_path.is_file() else None)
        created, changes_rel = old.get("created"), old.get("changes")
    else:
        package = read_json(root / prefix / "datapackage.json")
        if not isinstance(package, dict):
            raise PublishError(f"{root / prefix / 'datapackage.json'} is not a JSON object.")
        listed = _listed(root / prefix, prefix, package)
        changes = read_json(changes_path) if changes_path.is_file() else None
        history = history_of(changes)
        changes_rel = f"{prefix}/{CHANGES}" if changes is not None else None
        resources = []
        for res_name, rel, fmt in listed:
            entry: dict[str, Any] = {
                "name": res_name,
                "format": fmt,
                **_file_entry(root, rel, linker, files),
            }
            if fmt in _ROW_FORMATS:
                known = rows.get(rel) if rows is not None else None
                if known is not None:
                    counted: int | None = int(known)
                elif rel == changes_rel and fmt == "json":  # parsed above already
                    counted = len(changes) if isinstance(changes, list) else None
                else:
                    counted = count_rows(root / rel, fmt)
                if counted is not None:
                    entry["rows"] = counted
            resources.append(entry)
        created = package.get("created")
    return {
        "version": version,
        "created": created,
        **history,
        "datapackage": datapackage,
        "changes": changes_rel,
        "resources": resources,
    }


def _optional(root: Path, rel: str) -> str | None:
    return rel if (root / rel).is_file() else None


def _dataset_entry(
    root: Path,
    name: str,
    linker: _Linker,
    old: dict[str, dict[str, Any]],
    rows: Mapping[str, int] | None = None,
    files: Mapping[str, tuple[int, str]] | None = None,
) -> dict[str, Any]:
    found = versions(root / name)
    newest = latest(root / name, found)
    entries = [
        _version_entry(root, name, v, linker, old.get(f"{name}/{v}"), rows, files) for v in found
    ]
    package = read_json(root / name / newest / "datapackage.json")
    return {
        "name": name,
        "title": str(package.get("title") or name),
        "description": str(package.get("description") or ""),
        "latest": newest,
        "changelog": _optional(root, f"{name}/{CHANGELOG}"),
        "duckdb": _optional(root, f"{name}/{name}.duckdb"),
        "page": f"{name}/{PAGE}",
        "versions": entries,
    }


def build_catalog(
    published_dir: Path,
    base_url: str | None = None,
    rows: Mapping[str, int] | None = None,
    files: Mapping[str, tuple[int, str]] | None = None,
) -> dict[str, Any]:
    """The catalog of every dataset published under ``published_dir``.

    ``base_url`` (like ``https://example.org/data``) makes every ``url`` absolute; without
    it ``url`` equals ``path``. ``rows`` maps a table file's path relative to
    ``published_dir`` (like ``demo/1.2.0/indicators.json``) to its row count, known to the
    caller that just wrote it: that file is not read again to count its rows. ``files`` maps
    such paths to the size and sha256 (``sha256:…``) the caller took of the bytes it wrote
    and checked: those files are not hashed again. Raises PublishError when a published file
    cannot be read.
    """
    root = Path(published_dir)
    linker = _Linker(base_url)
    if not root.is_dir():
        raise PublishError(f"The published folder {root} does not exist.")
    old = _previous_entries(root)
    datasets = [
        _dataset_entry(root, name, linker, old, rows, files) for name in dataset_names(root)
    ]
    created = [
        v["created"] for d in datasets for v in d["versions"] if isinstance(v["created"], str)
    ]
    return {
        "profile": PROFILE,
        "generated": max(created) if created else None,
        "datasets": datasets,
    }


def _previous_entries(root: Path) -> dict[str, Any]:
    """The version entries of the catalog.json already there, by "dataset/version" (none
    when it is missing or unreadable: then every file is read)."""
    try:
        previous = read_json(root / CATALOG)
        return {
            f"{d['name']}/{v['version']}": v
            for d in previous["datasets"]
            for v in d["versions"]
            if isinstance(v, dict)
        }
    except (PublishError, KeyError, TypeError):
        return {}


def catalog_bytes(catalog: dict[str, Any]) -> bytes:
    """The bytes of ``catalog.json``: indented UTF-8 JSON, keys in the order built."""
    return (json.dumps(catalog, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def write_catalog(
    published_dir: Path, base_url: str | None = None, catalog: dict[str, Any] | None = None
) -> Path:
    """Write ``published_dir/catalog.json`` atomically and return its path (``catalog``: one
    already built by `build_catalog`, which hashes every file of every version)."""
    path = Path(published_dir) / CATALOG
    data = catalog_bytes(catalog if catalog is not None else build_catalog(published_dir, base_url))
    try:
        if not (path.is_file() and path.read_bytes() == data):
            atomic_write_bytes(path, data)
    except OSError as exc:
        raise PublishError(f"Could not write {path}: {exc.strerror or exc}.") from exc
    return path
