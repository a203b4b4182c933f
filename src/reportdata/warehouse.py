"""The dataset warehouse: one DuckDB file holding every published version of a dataset.

``published/<dataset>/<dataset>.duckdb`` sits at a stable path and is brought up to date after
each release: the versions published since the last build are appended to a copy of the file.
It is rebuilt from every version folder instead whenever appending could give other contents
than a rebuild: no usable file, a version removed or one older than those it holds, or the
tables' definitions no longer those today's schemas and versions give. It holds:

- one table ``<table>_history`` a schema table (``documents``, ``sections``, ``indicators``):
  each distinct row once, with the schema's columns and types, and the first and last version
  that hold it (``first_seq``, ``last_seq``: positions in ``versions``; ``last_seq`` is null
  while the newest version holds the row), keyed by (the table's key, first_seq);
- views ``documents``, ``sections``, ``indicators``: every version's rows, a leading
  ``version`` column saying which, as if each version were stored whole;
- ``versions``: one row a version (seq, created, bump, previous, is_latest, major/minor/patch);
- ``changes``: one row an added or removed row, or a changed field, from each ``changes.json``;
- views ``latest_<table>``: the latest version's rows, without the version column.

Storing each row once keeps the file the size of the rows ever published, not of every
version's copy of them, and appending a version costs the rows it changed: its rows are read
and compared with those the newest version holds (inside DuckDB), the rows gone or changed
get their last version, and only the new and changed rows are inserted.

Rows are read from each version's JSON files, which keep what CSV cannot tell apart (an empty
string from a null) and round-trip every number. Each version is read with the types of its own
inline schema and cast to today's, so versions published under an older schema still load; a
column the older schema lacks is null there. Only the loaded versions' changes.json are read.
The file is written to a temporary sibling (a copy, when appending) and renamed into place: a
reader holding the old file open keeps reading it. A publisher prepares that copy while it
checks a new version (`prepare_append`, from the version's temporary folder) and renames it
into place only after the version folder is in place, and only if the file is still the one
copied; otherwise the version is appended after its rename, as any build does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import duckdb

from reportdata.delta import SOURCE_FIELD, join_json, source_field
from reportdata.errors import PublishError
from reportdata.fsutil import exclusive_lock, file_stamp, fsync_dir, fsync_file
from reportdata.publish import format_number, latest_version
from reportdata.schema import (
    DUCKDB_TYPES,
    TABLES,
    fields,
    load_schema,
    primary_key,
    quote_ident,
    quote_literal,
)
from reportdata.warehouse_memo import Memo, digest

_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_JSON_OBJECT_MIN = 16 * 1024 * 1024  # DuckDB's default maximum_object_size
_CHANGE_KINDS = ("added", "removed", "changed")

# (name, type, NOT NULL, description) of the tables the warehouse adds to the schema tables.
_VERSIONS_COLUMNS = (
    ("version", "VARCHAR", True, "Version number, like 1.2.0."),
    ("seq", "INTEGER", True, "Position in version order: 1 for the oldest version."),
    ("created", "VARCHAR", False, "When the version was published (ISO 8601, UTC)."),
    ("bump", "VARCHAR", True, "initial, major, minor (rows only added) or patch."),
    ("previous", "VARCHAR", False, "The version before this one; null for the first."),
    ("is_latest", "BOOLEAN", True, "True for the version latest.json points to."),
    ("major", "INTEGER", True, "Major part of the version number, for sorting."),
    ("minor", "INTEGER", True, "Minor part of the version number, for sorting."),
    ("patch", "INTEGER", True, "Patch part of the version number, for sorting."),
)
_CHANGES_COLUMNS = (
    ("version", "VARCHAR", True, "The version that made the change."),
    ("previous", "VARCHAR", False, "The version it was made against; null for the first."),
    ("resource", "VARCHAR", True, "Table changed: documents, sections or indicators."),
    ("change", "VARCHAR", True, "added, removed (a whole row) or changed (one field)."),
    ("key", "VARCHAR", True, "The row's primary key as a JSON object."),
    ("document_id", "VARCHAR", False, "The report the row belongs to."),
    ("field", "VARCHAR", False, "The changed column; null for added and removed rows."),
    ("old_value", "VARCHAR", False, "The column's value before, as text; null when none."),
    ("new_value", "VARCHAR", False, "The column's value after, as text; null when none."),
)
_VERSION_COMMENT = "Published version the row belongs to (see the versions table)."
# (name, type, NOT NULL, description) of the columns a history table adds to a schema table.
_SPAN_COLUMNS = (
    ("first_seq", "INTEGER", True, "The first version holding this row (its versions.seq)."),
    (
        "last_seq",
        "INTEGER",
        False,
        "The last version holding this row (its versions.seq); null while the newest does.",
    ),
)
_OPEN = 2147483647  # stands for a null last_seq in range conditions (the largest INTEGER)

README_QUERIES: list[tuple[str, str]] = [
    (
        "Which are the largest money figures in the latest version, and in which section?",
        """\
SELECT i.subject, i.quantity_text, i.value_base, i.unit_base, s.heading
FROM latest_indicators AS i
JOIN latest_sections AS s USING (section_id)
WHERE i.unit_family = 'money'
ORDER BY i.value_base DESC, i.indicator_id
LIMIT 10;""",
    ),
    (
        "Which figures were added, removed or changed by the latest version? "
        "(Put two version numbers in `pair` to compare any two.)",
        """\
WITH pair AS (
  SELECT previous AS old_version, version AS new_version FROM versions WHERE is_latest
),
prev AS (
  SELECT i.* EXCLUDE (version) FROM indicators AS i JOIN pair ON i.version = pair.old_version
),
curr AS (
  SELECT i.* EXCLUDE (version) FROM indicators AS i JOIN pair ON i.version = pair.new_version
)
SELECT
  CASE WHEN prev.indicator_id IS NULL THEN 'added'
       WHEN curr.indicator_id IS NULL THEN 'removed'
       ELSE 'changed' END AS change,
  coalesce(curr.indicator_id, prev.indicator_id) AS indicator_id,
  coalesce(curr.subject, prev.subject) AS subject,
  prev.quantity_text AS old_quantity_text, curr.quantity_text AS new_quantity_text,
  prev.value_base AS old_value_base, curr.value_base AS new_value_base,
  coalesce(curr.unit_base, prev.unit_base) AS unit_base
FROM prev FULL OUTER JOIN curr ON prev.indicator_id = curr.indicator_id
WHERE prev IS DISTINCT FROM curr
ORDER BY change, indicator_id;""",
    ),
    (
        "How many figures does each section of the latest version hold, and how much money "
        "do its actual money levels add up to (in yuan)?",
        """\
SELECT s.document_id, s.ordinal, s.heading,
       count(i.indicator_id) AS figures,
       count(i.indicator_id) FILTER (WHERE i.unit_family = 'money') AS money_figures,
       sum(i.value_base) FILTER (
         WHERE i.unit_family = 'money' AND i.unit_base = '元'
           AND i.measure = 'level' AND i.status = 'actual'
       ) AS money_yuan
FROM latest_sections AS s
LEFT JOIN latest_indicators AS i USING (section_id)
GROUP BY s.document_id, s.ordinal, s.heading
ORDER BY s.document_id, s.ordinal;""",
    ),
]
"""(question, SQL) pairs answered by the warehouse, for the README."""


class _Executes(Protocol):
    """A DuckDB connection, or anything else that takes SQL text (see `_Recorder`)."""

    def execute(self, sql: str, /) -> object: ...


@dataclass(frozen=True)
class _Version:
    """A complete version folder with its descriptor and, once read, its changes.json."""

    version: str
    folder: Path
    package: dict[str, Any]
    changes: dict[str, Any] | None
    held: Mapping[str, bytes] = dataclasses.field(default_factory=dict)  # contents in memory
    written: Callable[[], object] | None = None  # returns once its table files are written

    def contents(self, name: str) -> bytes:
        """The bytes of the file `name` of this version (from memory when held)."""
        held = self.held.get(name)
        return held if held is not None else self.table_file(name).read_bytes()

    def table_file(self, name: str) -> Path:
        """The path of the version's file `name`, once that file is written."""
        if self.written is not None:
            self.written()
        return self.folder / name

    @property
    def parts(self) -> tuple[int, int, int]:
        major, minor, patch = (int(p) for p in self.version.split("."))
        return major, minor, patch

    def schema_fields(self, table: str) -> dict[str, dict[str, Any]] | None:
        """The fields of `table` in this version's inline schema, by name; None if absent."""
        for resource in self.package.get("resources", []):
            if isinstance(resource, dict) and resource.get("name") == table:
                schema = resource.get("schema")
                if isinstance(schema, dict) and isinstance(schema.get("fields"), list):
                    return {f["name"]: f for f in schema["fields"]}
        return None


def warehouse_path(dataset_dir: Path, dataset: str) -> Path:
    """Where the warehouse of `dataset` lives: ``<dataset_dir>/<dataset>.duckdb``."""
    return Path(dataset_dir) / f"{dataset}.duckdb"


def build_warehouse(
    dataset_dir: Path,
    dataset: str,
    latest: str | None = None,
    held: Mapping[str, bytes] | None = None,
) -> Path:
    """Bring the DuckDB warehouse of every complete version in `dataset_dir` up to date.

    Versions newer than those the file holds are appended to a copy of it; when appending
    could give other contents than a rebuild, the file is rebuilt from every version. Nothing
    is written when it is already current. `latest` names the version the ``latest_`` views
    show (default: the one latest.json names); a publisher passes the version it is about to
    point latest.json to. The file is replaced atomically. Returns its path. Raises
    `PublishError` when the dataset has no complete version or a version's files cannot be
    read or loaded. ``held`` gives the bytes of version files the caller holds in memory, by
    path in the dataset folder (``1.2.0/indicators.json``): a publisher's, so that appending
    need not read them again.
    """
    dataset_dir = Path(dataset_dir)
    target = warehouse_path(dataset_dir, dataset)
    if not dataset_dir.is_dir():
        raise PublishError(f"Dataset folder {dataset_dir} does not exist.")
    with _build_lock(target):
        _remove_leftovers(target)
        memo = Memo(target)
        try:
            versions = _read_versions(dataset_dir, held or {}, memo)
            if not versions:
                raise PublishError(
                    f"Dataset {dataset!r} has no published version in {dataset_dir}."
                )
            if latest is None or latest not in {v.version for v in versions}:
                latest = _latest(dataset_dir, versions)
            if not _append_to_copy(target, versions, latest, memo):
                _rebuild(target, [_with_changes(v) for v in versions], latest)
        finally:
            memo.save()
    return target


@dataclass(frozen=True)
class PreparedAppend:
    """A synced copy of a warehouse with one more version appended, not yet in place."""

    tmp: Path
    target: Path
    stamp: list[int]  # the warehouse's `file_stamp` when it was copied
    versions: tuple[str, ...]  # the versions the copy holds, oldest first; the last is latest

    def install(self, versions: list[str]) -> bool:
        """Put the copy in place if the dataset's complete versions are still `versions`
        and the warehouse is still the file it was copied from; else, or on error, drop it.
        Returns whether it was installed: when not, build the warehouse as usual."""
        with _build_lock(self.target):
            try:
                if tuple(versions) != self.versions:
                    return False
                if file_stamp(self.target.stat()) != self.stamp or not self.tmp.is_file():
                    return False  # rewritten meanwhile, or the copy removed by another build
                _remove_log(self.target)
                os.replace(self.tmp, self.target)
                fsync_dir(self.target.parent)
                return True
            except OSError:
                return False
            finally:
                self.discard()

    def discard(self) -> None:
        """Delete the copy (nothing, once installed)."""
        for leftover in (self.tmp, self.tmp.with_name(self.tmp.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def prepare_append(
    dataset_dir: Path,
    dataset: str,
    folder: Path,
    held: Mapping[str, bytes] | None = None,
    written: Callable[[], object] | None = None,
) -> PreparedAppend | None:
    """Append the version written in `folder` (a publisher's temporary folder, named for the
    version by its datapackage.json) to a copy of the warehouse, while the publisher checks
    and syncs that folder; `PreparedAppend.install` puts the copy in place once the folder is
    renamed into place. ``held``: as for `build_warehouse`, bytes of version files by path in
    the dataset folder (``1.2.0/indicators.json``), the new version's among them.
    ``written``, when given, returns once the folder's table files are written: the append
    may start when only its datapackage.json and changes.json are, and waits on it before it
    reads a table file that is not held.

    None, leaving nothing behind, when the warehouse does not hold exactly the versions
    before it or the append fails for any reason: `build_warehouse` then does the work after
    the rename, and reports what went wrong.
    """
    try:
        target = warehouse_path(dataset_dir, dataset)
        with _build_lock(target):
            memo = Memo(target)
            try:
                return _prepare(Path(dataset_dir), dataset, folder, held or {}, memo, written)
            finally:
                memo.save()
    except Exception:  # the build after the rename does it again, or says why it cannot
        return None


def _prepare(
    dataset_dir: Path,
    dataset: str,
    folder: Path,
    held: Mapping[str, bytes],
    memo: Memo,
    written: Callable[[], object] | None = None,
) -> PreparedAppend | None:
    target = warehouse_path(dataset_dir, dataset)
    _remove_leftovers(target)
    if not target.is_file() or target.with_name(target.name + ".wal").exists():
        return None
    package = _read_json(folder / "datapackage.json")
    version = str(package["version"])
    existing = _read_versions(dataset_dir, held, memo)
    if not _VERSION_RE.fullmatch(version) or not existing:
        return None
    mine = {
        path.split("/", 1)[1]: data
        for path, data in held.items()
        if path.split("/", 1)[0] == version and "/" in path
    }
    new = _with_changes(_Version(version, folder, package, None, mine, written))
    if new.parts <= existing[-1].parts:
        return None
    memo.remember(version, folder / "datapackage.json", package)
    versions = [*existing, new]
    tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    names = tuple(v.version for v in versions)
    prepared = PreparedAppend(tmp, target, file_stamp(target.stat()), names)
    try:
        shutil.copyfile(target, tmp)
        con = duckdb.connect(str(tmp))
        try:
            now = _held_state(con, versions, memo)
            usable = now is not None and now.count == len(existing)
            if now is not None and usable:
                con.begin()
                _append(con, versions, now.count, version)
                con.commit()
                con.execute("CHECKPOINT")
        finally:
            con.close()
        if not usable:
            prepared.discard()
            return None
        fsync_file(tmp)
    except BaseException:
        prepared.discard()
        raise
    return prepared


@dataclass(frozen=True)
class _Held:
    """What a warehouse that can be appended to holds: its first `count` versions, `latest`."""

    count: int
    latest: str | None


# ---------------------------------------------------------------------------- files


def _build_lock(target: Path):
    """One build of a warehouse at a time, so cleaning leftovers never removes a live build.
    A prepared append's copy lives outside the lock until installed: a build meanwhile (from
    another process, outside the dataset's publish lock) removes it, and the publisher then
    builds after the rename instead (`PreparedAppend.install`)."""
    return exclusive_lock(target.with_name(f".{target.name}.lock"), PublishError)


def _remove_leftovers(target: Path) -> None:
    """Delete temporary files (and their .wal) left by builds that crashed."""
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            leftover.unlink()


@contextlib.contextmanager
def _temporary(target: Path) -> Iterator[Path]:
    """A temporary sibling of `target`, removed (with its .wal) however the block ends; DuckDB
    and file errors in the block become `PublishError`."""
    tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    try:
        yield tmp
    except duckdb.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PublishError(
            f"Could not build the warehouse {target}: {reason.rstrip('.')}."
        ) from exc
    except OSError as exc:
        raise PublishError(f"Could not write the warehouse {target}: {exc}.") from exc
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _commit_and_replace(con: duckdb.DuckDBPyConnection, tmp: Path, target: Path) -> None:
    """Commit, checkpoint and close `con` on `tmp`, then fsync it and rename it over `target`."""
    try:
        con.commit()
        con.execute("CHECKPOINT")
    finally:
        con.close()
    fsync_file(tmp)
    _remove_log(target)
    os.replace(tmp, target)
    fsync_dir(target.parent)


def _remove_log(target: Path) -> None:
    """Delete `target`'s write-ahead log: the old file's log must not meet the new one."""
    with contextlib.suppress(FileNotFoundError):
        target.with_name(target.name + ".wal").unlink()


def _rebuild(target: Path, versions: list[_Version], latest: str) -> None:
    """Write a warehouse of every version (changes.json read) and put it in place."""
    with _temporary(target) as tmp:
        con = duckdb.connect(str(tmp))
        try:
            con.begin()  # one transaction: a commit per statement would sync each one
            _fill(con, versions, latest)
        except BaseException:
            con.close()
            raise
        _commit_and_replace(con, tmp, target)


def _append_to_copy(target: Path, versions: list[_Version], latest: str, memo: Memo) -> bool:
    """Append the versions `target` lacks to a copy of it and put the copy in place.

    Returns False, writing nothing, when the file cannot be appended to (see `_held_state`);
    True when it was appended to or already held every version with this latest one. The copy
    has a path of its own: DuckDB hands a process's connections to an open path one shared
    database, which after a rename may be the old file a reader still holds.
    """
    if not target.is_file() or target.with_name(target.name + ".wal").exists():
        return False  # a write-ahead log beside it would not travel with a copy
    with _temporary(target) as tmp:
        shutil.copyfile(target, tmp)
        try:
            con = duckdb.connect(str(tmp))
        except duckdb.Error:
            return False
        try:
            held = _held_state(con, versions, memo)
            if held is None or (held.count == len(versions) and held.latest == latest):
                con.close()
                return held is not None
            new = [_with_changes(v) for v in versions[held.count :]]
            con.begin()
            _append(con, [*versions[: held.count], *new], held.count, latest)
        except BaseException:
            con.close()
            raise
        _commit_and_replace(con, tmp, target)
    return True


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PublishError(f"Cannot read {path}: {exc}.") from exc


def _read_versions(dataset_dir: Path, held: Mapping[str, bytes], memo: Memo) -> list[_Version]:
    """Complete version folders (N.N.N holding datapackage.json), oldest first, with what the
    warehouse reads of their descriptors (from `memo` while unchanged) but not their
    changes.json (see `_with_changes`), and the bytes of their files in `held` (by path in
    the dataset folder)."""
    out = []
    for folder in dataset_dir.iterdir():
        if not (_VERSION_RE.fullmatch(folder.name) and (folder / "datapackage.json").is_file()):
            continue
        try:
            package = memo.descriptor(folder, _read_json)
        except FileNotFoundError:  # removed since listed
            continue
        if not isinstance(package, dict):
            raise PublishError(f"The descriptor of version {folder.name} is not a JSON object.")
        mine = {
            path.split("/", 1)[1]: data
            for path, data in held.items()
            if path.split("/", 1)[0] == folder.name and "/" in path
        }
        out.append(_Version(folder.name, folder, package, None, mine))
    memo.forget_others({v.version for v in out})
    return sorted(out, key=lambda v: v.parts)


def _with_changes(version: _Version) -> _Version:
    """`version` with its changes.json read (None when it has none): only loaded versions'."""
    path = version.folder / "changes.json"
    changes = _read_json(path) if path.is_file() else None
    if not isinstance(changes, dict | None):
        raise PublishError(f"The changes.json of version {version.version} is not a JSON object.")
    return replace(version, changes=changes)


def _latest(dataset_dir: Path, versions: list[_Version]) -> str:
    """The version latest.json names when it is one of `versions`, else the newest."""
    names = [v.version for v in versions]
    pointed = latest_version(dataset_dir.parent, dataset_dir.name)
    return pointed if pointed in names else names[-1]


# ---------------------------------------------------------------------------- SQL


def _column_type(field: dict[str, Any]) -> str:
    """DuckDB type of a Table Schema field; types this project does not write read as text."""
    return DUCKDB_TYPES.get(field.get("type", "string"), "VARCHAR")


def _create_table(
    con: _Executes,
    table: str,
    columns: list[tuple[str, str, bool]],
    key: list[str],
    comments: dict[str, str],
    table_comment: str | None,
) -> None:
    """CREATE TABLE with (name, type, not null) columns, a primary key and comments."""
    lines = [f"{quote_ident(n)} {t}{' NOT NULL' if nn else ''}" for n, t, nn in columns]
    if key:
        lines.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in key)})")
    con.execute(f"CREATE TABLE {quote_ident(table)} (\n  " + ",\n  ".join(lines) + "\n)")
    if table_comment:
        con.execute(f"COMMENT ON TABLE {quote_ident(table)} IS {quote_literal(table_comment)}")
    for name, text in comments.items():
        con.execute(
            f"COMMENT ON COLUMN {quote_ident(table)}.{quote_ident(name)} IS {quote_literal(text)}"
        )


def _history(table: str) -> str:
    return f"{table}_history"


def _create_data_table(con: _Executes, table: str, versions: list[_Version]) -> None:
    """The history table of a schema table (NOT NULL where every version requires the
    column) and its view of every version's rows."""
    key = primary_key(table)
    columns, comments = [], {}
    for field in fields(table):
        name = field["name"]
        required = _is_required(field, key)
        for version in versions:
            version_fields = version.schema_fields(table)
            if version_fields is None:  # the version has no such table: it adds no rows
                continue
            old = version_fields.get(name)
            if name in key and old is None:
                raise PublishError(
                    f"Version {version.version} has no key column {name!r} in table {table}."
                )
            required = required and old is not None and _is_required(old, key)
        columns.append((name, _column_type(field), required))
        if field.get("description"):
            comments[name] = field["description"]
    history = _history(table)
    for name, ctype, not_null, text in _SPAN_COLUMNS:
        columns.append((name, ctype, not_null))
        comments[name] = text
    schema = load_schema(table)
    described = schema.get("description") or schema.get("title") or table
    _create_table(
        con,
        history,
        columns,
        [*key, "first_seq"],
        comments,
        f"{described} Each distinct row once, with the first and last version holding it; "
        f"the view {table} lists it once for each of those versions.",
    )
    names = ", ".join(f"h.{quote_ident(f['name'])}" for f in fields(table))
    view = quote_ident(table)
    con.execute(
        f"CREATE VIEW {view} AS SELECT v.version, {names} "
        f"FROM {quote_ident(history)} AS h JOIN versions AS v "
        f"ON v.seq >= h.first_seq AND v.seq <= coalesce(h.last_seq, {_OPEN})"
    )
    con.execute(
        f"COMMENT ON VIEW {view} IS "
        + quote_literal(f"{described} Every published version; `version` says which.")
    )
    for name, text in {"version": _VERSION_COMMENT, **comments}.items():
        if name not in ("first_seq", "last_seq"):
            con.execute(f"COMMENT ON COLUMN {view}.{quote_ident(name)} IS {quote_literal(text)}")


def _is_required(field: dict[str, Any], key: list[str]) -> bool:
    """A field's values can never be null: it is required or part of the key."""
    return bool(field.get("constraints", {}).get("required")) or field.get("name") in key


def _load_data_table(
    con: duckdb.DuckDBPyConnection,
    table: str,
    version: _Version,
    seq: int,
    previous: _Version | None,
) -> None:
    """Make the history of `table` hold `version` (number `seq`, after `previous`, the newest it
    holds): rows gone or changed get their last version, new and changed rows are added.

    When its changes.json was made against `previous`, only the rows of the documents it names
    are read and compared, once the other rows are shown to be byte for byte those of
    `previous`'s file (see `_document_rows`); otherwise every row is read and compared."""
    names = [f["name"] for f in fields(table)]
    old_fields = version.schema_fields(table)
    selects = []
    for field in fields(table):
        name = field["name"]
        ctype = _column_type(field)
        if old_fields is None or name not in old_fields:
            selects.append(f"CAST(NULL AS {ctype}) AS {quote_ident(name)}")
        else:
            selects.append(f"CAST({quote_ident(name)} AS {ctype}) AS {quote_ident(name)}")
    history = quote_ident(_history(table))
    key = primary_key(table)
    columns = ", ".join(quote_ident(n) for n in names)
    held = f"SELECT {columns} FROM {history} WHERE last_seq IS NULL"
    with contextlib.ExitStack() as stack:
        if old_fields is None:  # the version has no such table: it holds none of its rows
            source = "(SELECT 1) WHERE false"
        else:
            path = version.table_file(f"{table}.json")
            if not path.is_file():
                raise PublishError(f"Version {version.version} has no {path.name}.")
            touched = _touched(version, previous, table)
            part = None
            if touched is not None and previous is not None:
                part = _document_rows(con, table, version, previous, touched)
            if part is not None and touched is not None:
                held += f" AND {_among_documents(touched)}"
                rows_file = stack.enter_context(tempfile.NamedTemporaryFile(suffix=".json"))
                rows_file.write(part)
                rows_file.flush()
                path = Path(rows_file.name)
            struct = ", ".join(
                f"{quote_literal(n)}: {quote_literal(_column_type(f))}"
                for n, f in old_fields.items()
            )
            max_object = max(_JSON_OBJECT_MIN, path.stat().st_size + 1)
            source = (
                f"read_json({quote_literal(str(path))}, format = 'array', "
                f"columns = {{{struct}}}, maximum_object_size = {max_object})"
            )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _incoming AS SELECT {', '.join(selects)} FROM {source}"
        )
    if seq > 1:  # rows the newest version holds that this one does not (gone or changed)
        keys = ", ".join(quote_ident(k) for k in key)
        same = " AND ".join(f"h.{quote_ident(k)} = g.{quote_ident(k)}" for k in key)
        con.execute(
            f"UPDATE {history} AS h SET last_seq = {int(seq) - 1} "
            f"FROM (SELECT {keys} FROM ({held} EXCEPT SELECT {columns} FROM _incoming)) AS g "
            f"WHERE h.last_seq IS NULL AND {same}"
        )
    order = ", ".join(quote_ident(k) for k in key)
    con.execute(
        f"INSERT INTO {history} ({columns}, first_seq) "
        f"SELECT {columns}, {int(seq)} FROM (SELECT {columns} FROM _incoming EXCEPT {held}) "
        f"ORDER BY {order}"
    )
    con.execute("DROP TABLE _incoming")


def _touched(version: _Version, previous: _Version | None, table: str) -> set[str] | None:
    """The documents whose rows of `table` its changes.json says differ from `previous`'s;
    None when it cannot tell (no changes.json, made against another version, another schema
    of the table, incomplete or malformed lists, rows matched by another key or without a
    document)."""
    changes = version.changes
    if previous is None or not isinstance(changes, dict):
        return None
    tables = changes.get("tables")
    if changes.get("previous") != previous.version or not isinstance(tables, dict):
        return None
    if version.schema_fields(table) != previous.schema_fields(table):
        return None
    entry = tables.get(table)
    if not isinstance(entry, dict) or entry.get("key") != primary_key(table):
        return None
    counts = entry.get("counts", {})
    if SOURCE_FIELD not in {f["name"] for f in fields(table)} or not isinstance(counts, dict):
        return None
    touched: set[str] = set()
    for kind in _CHANGE_KINDS:
        items = entry.get(kind) or []
        if not isinstance(items, list) or counts.get(kind, len(items)) != len(items):
            return None
        for item in items:
            if not isinstance(item, dict):
                return None
            document = item.get(SOURCE_FIELD)
            key = item.get("key")
            if document is None and kind == "changed" and isinstance(key, dict):
                document = key.get(SOURCE_FIELD)
            if not isinstance(document, str):
                return None
            touched.add(document)
    return touched


def _among_documents(documents: set[str]) -> str:
    """A condition: the row belongs to one of `documents`."""
    if not documents:
        return "false"
    listed = ", ".join(quote_literal(d) for d in sorted(documents))
    return f"{quote_ident(SOURCE_FIELD)} IN ({listed})"


def _document_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    version: _Version,
    previous: _Version,
    documents: set[str],
) -> bytes | None:
    """The rows of `documents` in `version`'s JSON file of `table`, as a JSON array.

    None unless both it and `previous`'s file are one row a line, their other rows are the
    same bytes, and the history holds as many rows open for the other documents: then those
    rows need neither reading nor comparing."""
    try:
        new, old = version.contents(f"{table}.json"), previous.contents(f"{table}.json")
    except OSError:
        return None
    new_spans, old_spans = _row_spans(new, documents), _row_spans(old, documents)
    if new_spans is None or old_spans is None:
        return None
    if not _same_bytes(_others(new, new_spans), _others(old, old_spans)):
        return None
    total = new.count(b"\n") - 2 if new != b"[]\n" else 0
    (others,) = con.execute(
        f"SELECT count(*) FROM {quote_ident(_history(table))} "
        f"WHERE last_seq IS NULL AND NOT ({_among_documents(documents)})"
    ).fetchone() or (None,)
    if others is None or others + len(new_spans) != total:
        return None
    return join_json([new[start:end] for start, end in new_spans])


def _row_spans(data: bytes, documents: set[str]) -> list[tuple[int, int]] | None:
    """Where the rows of `documents` lie in a table's JSON file written one row a line (as
    `publish.render_json` writes it), in file order, without their separators. A quotation
    mark inside a string is always escaped, so ``"document_id": "…"`` followed by ``,`` or
    ``}`` is only ever that field; each line found is parsed to make sure. None when the file
    or a line found is not so."""
    if data == b"[]\n":
        return []
    if not (data.startswith(b"[\n") and data.endswith(b"\n]\n")):
        return None
    spans: dict[int, int] = {}
    for document in documents:
        literal = source_field(document)
        at = data.find(literal)
        while at != -1:
            end = at + len(literal)
            if data[end : end + 1] in (b",", b"}"):
                start = data.rfind(b"\n", 0, at) + 1
                stop = data.find(b"\n", end)
                if data[stop - 1 : stop] == b",":
                    stop -= 1
                try:
                    row = json.loads(data[start:stop])
                except ValueError:
                    return None
                if not isinstance(row, dict) or row.get(SOURCE_FIELD) != document:
                    return None
                spans[start] = stop
            at = data.find(literal, end)
    return sorted(spans.items())


_Piece = tuple[bytes, int, int]  # bytes[start:end], without copying


def _others(data: bytes, spans: list[tuple[int, int]]) -> list[_Piece]:
    """The rows of a JSON file written one row a line but those at `spans`, each followed by
    ``,\\n``, as pieces of the file: files holding the same other rows give the same bytes."""
    if data == b"[]\n":
        return []
    end = len(data) - 3  # the rows lie in data[2:end], joined by ",\n"
    pieces, at = [], 2
    for start, stop in spans:
        pieces.append((data, at, start))
        at = stop + 2  # past the row and the ",\n" after it (the last row has none)
    if at < end:
        pieces += [(data, at, end), (b",\n", 0, 2)]
    return pieces


def _same_bytes(a: list[_Piece], b: list[_Piece]) -> bool:
    """Whether two lists of pieces make the same bytes (compared piece by piece, no copy)."""
    if sum(e - s for _, s, e in a) != sum(e - s for _, s, e in b):
        return False
    i = j = 0
    a_at, b_at = (a[0][1] if a else 0), (b[0][1] if b else 0)
    while i < len(a) and j < len(b):
        (a_data, _, a_end), (b_data, _, b_end) = a[i], b[j]
        n = min(a_end - a_at, b_end - b_at)
        if not a_data.startswith(memoryview(b_data)[b_at : b_at + n], a_at):
            return False
        a_at, b_at = a_at + n, b_at + n
        if a_at == a_end:
            i += 1
            a_at = a[i][1] if i < len(a) else 0
        if b_at == b_end:
            j += 1
            b_at = b[j][1] if j < len(b) else 0
    return True


def _create_latest_view(con: _Executes, table: str) -> None:
    """View ``latest_<table>``: the rows of the version marked latest, without `version`."""
    view = quote_ident(f"latest_{table}")
    columns = ", ".join(quote_ident(f["name"]) for f in fields(table))
    latest = "(SELECT seq FROM versions WHERE is_latest)"
    con.execute(
        f"CREATE VIEW {view} AS SELECT {columns} FROM {quote_ident(_history(table))} "
        f"WHERE first_seq <= {latest} AND coalesce(last_seq, {_OPEN}) >= {latest}"
    )
    con.execute(
        f"COMMENT ON VIEW {view} IS "
        + quote_literal(f"The rows of {table} in the latest version, without the version column.")
    )


FEW_ROWS = 1000
"""Up to this many rows are inserted as parameters (a few statements, no pandas to import:
a version that replaced a few reports); more go through a DataFrame, which DuckDB reads some
hundred times faster than parameters (about 10,000 rows a second here)."""

_ROWS_A_STATEMENT = 250


def _insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, names: list[str], rows: list[tuple]
) -> None:
    """Insert rows (tuples in the order of `names`, the table's column names)."""
    if not rows:
        return
    columns = ", ".join(quote_ident(c) for c in names)
    into = f"INSERT INTO {quote_ident(table)} ({columns})"
    if len(rows) <= FEW_ROWS:
        marks = "(" + ", ".join("?" * len(names)) + ")"
        for at in range(0, len(rows), _ROWS_A_STATEMENT):
            part = rows[at : at + _ROWS_A_STATEMENT]
            values = [value for row in part for value in row]
            con.execute(f"{into} VALUES {', '.join([marks] * len(part))}", values)
        return
    import pandas as pd

    view = f"_warehouse_src_{table}"
    con.register(view, pd.DataFrame.from_records(rows, columns=names))
    con.execute(f"{into} SELECT {columns} FROM {quote_ident(view)}")
    con.unregister(view)


def _create_side_table(
    con: _Executes,
    table: str,
    spec: tuple[tuple[str, str, bool, str], ...],
    key: list[str],
    comment: str,
) -> None:
    """A table the warehouse adds (versions, changes) from (name, type, not null, comment)."""
    columns = [(name, ctype, nn) for name, ctype, nn, _ in spec]
    comments = {name: text for name, _, _, text in spec}
    _create_table(con, table, columns, key, comments, comment)


def _create_schema(con: _Executes, versions: list[_Version]) -> None:
    """The empty tables and views of a warehouse of `versions` (descriptors suffice)."""
    _create_side_table(
        con, "versions", _VERSIONS_COLUMNS, ["version"], "One row a published version."
    )
    for table in TABLES:
        _create_data_table(con, table, versions)
    _create_side_table(
        con,
        "changes",
        _CHANGES_COLUMNS,
        [],
        "What each version changed, row by row and field by field, from its changes.json.",
    )
    for table in TABLES:
        _create_latest_view(con, table)


def _load_versions(
    con: duckdb.DuckDBPyConnection, versions: list[_Version], start: int, latest: str
) -> None:
    """Insert the rows of ``versions[start:]`` (their changes.json read) into every table."""
    for table in TABLES:
        for seq, version in enumerate(versions[start:], start + 1):
            previous = versions[seq - 2] if seq > 1 else None
            _load_data_table(con, table, version, seq, previous)
    previous = _previous_versions(versions)
    rows = _versions_rows(versions, previous, latest, start)
    _insert_rows(con, "versions", _names(_VERSIONS_COLUMNS), rows)
    rows = _changes_rows(versions[start:], previous)
    _insert_rows(con, "changes", _names(_CHANGES_COLUMNS), rows)


def _fill(con: duckdb.DuckDBPyConnection, versions: list[_Version], latest: str) -> None:
    """Create a warehouse of every version in an empty database."""
    _create_schema(con, versions)
    _load_versions(con, versions, 0, latest)


def _append(
    con: duckdb.DuckDBPyConnection, versions: list[_Version], start: int, latest: str
) -> None:
    """Add ``versions[start:]`` to a copy of a warehouse holding the ones before; mark latest."""
    _load_versions(con, versions, start, latest)
    con.execute(
        "UPDATE versions SET is_latest = (version = $latest) "
        "WHERE is_latest IS DISTINCT FROM (version = $latest)",
        {"latest": latest},
    )


# ---------------------------------------------------------------------------- appending

# The catalog of a warehouse: its tables' columns, constraints and comments, and its views.
_CATALOG_QUERIES = (
    "SELECT table_name, column_index, column_name, data_type, is_nullable, column_default, "
    "comment FROM duckdb_columns() WHERE database_name = current_database() ORDER BY ALL",
    "SELECT table_name, constraint_type, constraint_text, constraint_column_names "
    "FROM duckdb_constraints() WHERE database_name = current_database() ORDER BY ALL",
    "SELECT schema_name, table_name, comment FROM duckdb_tables() "
    "WHERE database_name = current_database() ORDER BY ALL",
    "SELECT schema_name, view_name, sql, comment FROM duckdb_views() "
    "WHERE database_name = current_database() AND NOT internal ORDER BY ALL",
    "SELECT schema_name, index_name, sql FROM duckdb_indexes() "
    "WHERE database_name = current_database() ORDER BY ALL",
)


def _catalog(con: duckdb.DuckDBPyConnection) -> list[list[tuple]]:
    """Every definition in a database that a rebuild would also make, comparable across files."""
    return [con.execute(sql).fetchall() for sql in _CATALOG_QUERIES]


class _Recorder:
    """Takes the place of a connection to collect the SQL a function would run."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def execute(self, sql: str) -> None:
        self.sql.append(sql)


def _made_catalog(sql: list[str]) -> str:
    """The digest of the catalog `sql` creates in an empty in-memory database."""
    with duckdb.connect(":memory:") as con:
        for statement in sql:
            con.execute(statement)
        return digest(_catalog(con))


def _expected_catalog(versions: list[_Version], memo: Memo) -> str:
    """The digest of the catalog a rebuild of `versions` would create (remembered by the
    digest of its SQL and the DuckDB version)."""
    recorder = _Recorder()
    _create_schema(recorder, versions)
    return memo.catalog(recorder.sql, duckdb.__version__, _made_catalog)


def _held_state(
    con: duckdb.DuckDBPyConnection, versions: list[_Version], memo: Memo
) -> _Held | None:
    """What the warehouse open on `con` holds, when appending to it gives the contents a
    rebuild would; else None.

    It must hold exactly the tables and views a rebuild of `versions` would create (columns,
    types, NOT NULL, keys, comments), and its versions, oldest first, must be the first of
    `versions`, each created when its folder says.
    """
    try:
        if digest(_catalog(con)) != _expected_catalog(versions, memo):
            return None
        held = con.execute(
            "SELECT version, created, is_latest, seq FROM versions ORDER BY major, minor, patch"
        ).fetchall()
    except duckdb.Error:
        return None
    if not held or len(held) > len(versions):
        return None
    for i, ((name, created, _, seq), version) in enumerate(zip(held, versions, strict=False)):
        if name != version.version or created != _created(version) or seq != i + 1:
            return None
    latest = [name for name, _, is_latest, _ in held if is_latest]
    return _Held(len(held), latest[0] if len(latest) == 1 else None)


# ---------------------------------------------------------------------------- side tables


def _bump(version: tuple[int, int, int], previous: tuple[int, int, int] | None) -> str:
    """The bump a version number tells when changes.json does not say."""
    if previous is None:
        return "initial"
    if version[0] != previous[0]:
        return "major"
    return "minor" if version[1] != previous[1] else "patch"


def _previous_versions(versions: list[_Version]) -> dict[str, str | None]:
    """Each version's previous one: from its changes.json, else the folder before it."""
    out: dict[str, str | None] = {}
    for i, version in enumerate(versions):
        if version.changes is not None and "previous" in version.changes:
            previous = version.changes["previous"]
            out[version.version] = None if previous is None else str(previous)
        else:
            out[version.version] = versions[i - 1].version if i else None
    return out


def _created(version: _Version) -> str | None:
    created = version.package.get("created")
    return None if created is None else str(created)


def _names(spec: tuple[tuple[str, str, bool, str], ...]) -> list[str]:
    return [c[0] for c in spec]


def _versions_rows(
    versions: list[_Version], previous: dict[str, str | None], latest: str, start: int = 0
) -> list[tuple]:
    """The versions table rows of ``versions[start:]`` (those need their changes.json)."""
    rows = []
    for i, version in enumerate(versions[start:], start):
        before = versions[i - 1] if i else None
        changes = version.changes or {}
        bump = changes.get("bump") or _bump(version.parts, before.parts if before else None)
        major, minor, patch = version.parts
        row = {
            "version": version.version,
            "seq": i + 1,
            "created": _created(version),
            "bump": str(bump),
            "previous": previous[version.version],
            "is_latest": version.version == latest,
            "major": major,
            "minor": minor,
            "patch": patch,
        }
        rows.append(tuple(row[name] for name in _names(_VERSIONS_COLUMNS)))
    return rows


def _text(value: Any) -> str | None:
    """A cell as text, the way the CSV files write it; lists and objects as JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_number(value) if math.isfinite(value) else repr(value)
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _json_key(key: dict[str, Any]) -> str:
    return json.dumps(key, ensure_ascii=False)


def _change_rows(
    version: str, previous: str | None, resource: str, entry: dict[str, Any]
) -> Iterator[tuple]:
    """The changes table rows of one resource of one changes.json (short rows end in nulls)."""
    if "key" in entry:
        key_names = list(entry["key"] or [])
    else:
        key_names = primary_key(resource) if resource in TABLES else []
    for kind in ("added", "removed"):
        for row in entry.get(kind) or []:
            # rows matched without a key (key []) are told apart by their whole content
            key = _json_key({k: row.get(k) for k in key_names} if key_names else row)
            yield (version, previous, resource, kind, key, _text(row.get("document_id")))
    for item in entry.get("changed") or []:
        key = item.get("key") or {}
        document_id = item.get("document_id", key.get("document_id"))
        for name, values in (item.get("fields") or {}).items():
            yield (
                version,
                previous,
                resource,
                "changed",
                _json_key(key),
                _text(document_id),
                name,
                _text(values.get("old")),
                _text(values.get("new")),
            )


def _changes_rows(versions: list[_Version], previous: dict[str, str | None]) -> list[tuple]:
    names = _names(_CHANGES_COLUMNS)
    rows: list[tuple] = []
    for version in versions:
        tables = (version.changes or {}).get("tables") or {}
        if not isinstance(tables, dict):
            raise PublishError(f"The changes.json of version {version.version} is malformed.")
        for resource, entry in tables.items():
            try:
                rows.extend(
                    _change_rows(version.version, previous[version.version], resource, entry)
                )
            except (AttributeError, TypeError) as exc:
                raise PublishError(
                    f"The changes.json of version {version.version} is malformed: {exc}."
                ) from exc
    return [row + (None,) * (len(names) - len(row)) for row in rows]
