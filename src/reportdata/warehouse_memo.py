"""What a warehouse build remembers between publishes, so that its cost does not grow with
the number of versions: each version's descriptor facts, and the catalog a rebuild makes.

A publish checks the warehouse it appends to against every version folder: the versions'
``created`` and the schemas of their tables (from each ``datapackage.json``, 120 KB or more
at a thousand sources, mostly its sources list), and the catalog a rebuild would create. The
memo keeps, in a hidden file beside the warehouse, each descriptor's facts with the stamp of
the file they were read from (`fsutil.file_stamp`: size, inode, times), and the digests of
catalogs by the digest of the SQL that creates them. A descriptor whose stamp differs is
read again; a memo that cannot be read is ignored and rewritten. Only the build that holds
the warehouse's build lock reads or writes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from reportdata.fsutil import atomic_write_bytes, file_stamp, remove_temp_siblings

FORMAT = 2
_CATALOGS_KEPT = 4  # digests of the catalogs of the last few schemas


def memo_path(warehouse: Path) -> Path:
    """The memo of the warehouse file `warehouse` (hidden: never mirrored or listed)."""
    return warehouse.with_name(f".{warehouse.name}.memo.json")


def slim(package: dict[str, Any]) -> dict[str, Any]:
    """The parts of a descriptor the warehouse reads: ``created`` and the name and schema of
    each resource with a schema (not its sources, files or hashes)."""
    resources = [
        {"name": r.get("name"), "schema": r["schema"]}
        for r in package.get("resources") or []
        if isinstance(r, dict) and isinstance(r.get("schema"), dict)
    ]
    return {"created": package.get("created"), "resources": resources}


class Memo:
    """The memo of one warehouse, loaded at the start of a build and saved at its end."""

    def __init__(self, warehouse: Path) -> None:
        self.path = memo_path(warehouse)
        self._versions: dict[str, dict[str, Any]] = {}
        self._catalogs: dict[str, str] = {}
        self._dirty = False
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError, KeyError):
            data = json.loads(self.path.read_bytes())
            if data.get("format") == FORMAT:
                self._versions = _unpacked(data["versions"], data["schemas"])
                self._catalogs = {str(k): str(v) for k, v in data["catalogs"].items()}

    def descriptor(self, folder: Path, read: Any) -> Any:
        """The slim descriptor of the version in `folder`: remembered while its
        datapackage.json keeps the stamp it had when read, else ``read(path)`` (the parsed
        JSON; a non-object is returned as it is, unremembered)."""
        path = folder / "datapackage.json"
        before = file_stamp(path.stat())
        known = self._versions.get(folder.name)
        if known is not None and known.get("stamp") == before:
            return known["package"]
        package = read(path)
        if not isinstance(package, dict):
            return package
        package = slim(package)
        if file_stamp(path.stat()) == before:  # not rewritten while read
            self._versions[folder.name] = {"stamp": before, "package": package}
            self._dirty = True
        return package

    def remember(self, name: str, path: Path, package: dict[str, Any]) -> None:
        """Remember the descriptor at `path` (a publisher's temporary folder, renamed later
        to the version folder `name`: the rename keeps its file's stamp), read as `package`."""
        with contextlib.suppress(OSError):
            self._versions[name] = {"stamp": file_stamp(path.stat()), "package": slim(package)}
            self._dirty = True

    def forget_others(self, names: set[str]) -> None:
        """Drop the facts of versions no longer in the dataset folder."""
        gone = set(self._versions) - names
        for name in gone:
            del self._versions[name]
        self._dirty = self._dirty or bool(gone)

    def catalog(self, sql: list[str], version: str, make: Any) -> str:
        """The digest of the catalog that running `sql` on an empty database (DuckDB
        `version`) creates: remembered, else ``make(sql)``."""
        key = hashlib.sha256("\n;\n".join([version, *sql]).encode("utf-8")).hexdigest()
        found = self._catalogs.get(key)
        if found is None:
            found = make(sql)
            self._catalogs = {
                k: v for k, v in list(self._catalogs.items())[-(_CATALOGS_KEPT - 1) :]
            }
            self._catalogs[key] = found
            self._dirty = True
        return found

    def save(self) -> None:
        """Write the memo if it changed; a memo that cannot be written is left (the next
        build reads the descriptors again)."""
        if not self._dirty:
            return
        versions, schemas = _packed(self._versions)
        data = {
            "format": FORMAT,
            "versions": versions,
            "schemas": schemas,
            "catalogs": self._catalogs,
        }
        with contextlib.suppress(OSError):
            remove_temp_siblings(self.path)
            atomic_write_bytes(self.path, json.dumps(data, ensure_ascii=False).encode("utf-8"))
            self._dirty = False


def _packed(
    versions: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Versions with each table schema replaced by its digest, and the schemas by digest:
    versions mostly share their schemas, so the memo grows by a line a version."""
    schemas: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for name, known in versions.items():
        package = known["package"]
        resources = []
        for resource in package["resources"]:
            key = digest(resource["schema"])
            schemas[key] = resource["schema"]
            resources.append([resource["name"], key])
        out[name] = {"stamp": known["stamp"], "created": package["created"], "resources": resources}
    return out, schemas


def _unpacked(versions: dict[str, Any], schemas: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The memo's versions as `_packed` took them."""
    out = {}
    for name, known in versions.items():
        resources = [{"name": r, "schema": schemas[key]} for r, key in known["resources"]]
        package = {"created": known["created"], "resources": resources}
        out[str(name)] = {"stamp": list(known["stamp"]), "package": package}
    return out


def digest(value: Any) -> str:
    """A digest of a JSON-able value (tuples as lists; other values as their text)."""
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
