"""What changed between two versions of a dataset, and the version number that follows.

The bump follows the Frictionless "Data Package Version" pattern (semantic versioning for data):

- MAJOR: a resource or field removed, renamed or retyped; fields added to or re-ordered in an
  existing resource; a constraint tightened (``required``/``unique`` added, ``enum`` narrowed,
  ``minimum``/``maximum`` narrowed, ``pattern`` added or changed, ``primaryKey`` changed, a
  foreign key added); a whole source (``document_id``) removed.
- MINOR: new rows, a new source, a new resource, a constraint loosened, a reference updated.
- PATCH: values corrected (rows changed or removed within sources that stay) and descriptive
  metadata (package properties other than ``resources``, ``version``, ``created`` and the
  ``reportdata:`` ones; titles and descriptions of resources and fields).

The highest bump wins; no change at all gives no new version. The result is the
``changes.json`` of a version folder, from which `render_changelog` and `render_diff` write text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportdata.errors import PublishError

TableRows = dict[str, list[dict[str, Any]]]
"""Table name → rows as JSON-ready dicts (as `reportdata.publish.table_rows` gives them)."""

BUMPS = ("patch", "minor", "major")
"""Bumps from the smallest to the highest; the first version's bump is ``"initial"``."""

SOURCE_FIELD = "document_id"
DIFF_LIMIT = 10

_VERSION_RE = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_IGNORED_METADATA = ("resources", "version", "created")
_PRIVATE_PREFIX = "reportdata:"
_DESCRIPTIVE = ("title", "description", "example")
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength")
_FLAGS = ("required", "unique")
# Schema changes that are not MAJOR; every other change breaks users of the data.
_SCHEMA_BUMPS = {
    "resource added": "minor",
    "loosened": "minor",
    "reference updated": "minor",
    "redescribed": "patch",
}


# ---------------------------------------------------------------------------- state


@dataclass(frozen=True)
class PackageState:
    """One version of a dataset: package metadata, Table Schema and rows of each table."""

    metadata: dict[str, Any]
    schemas: dict[str, dict[str, Any]]
    rows: TableRows

    @classmethod
    def from_descriptor(cls, descriptor: Mapping[str, Any], rows: TableRows) -> PackageState:
        """The state of a `datapackage.json` descriptor whose table resources hold `rows`.

        Table resources are those with an inline ``schema``; the resource's title and
        description are put back into its schema, as in the files of `schemas/`.
        """
        metadata = {k: v for k, v in descriptor.items() if k != "resources"}
        schemas: dict[str, dict[str, Any]] = {}
        for resource in descriptor.get("resources", []):
            if "schema" in resource:
                described = {k: resource[k] for k in ("title", "description") if k in resource}
                schemas[resource["name"]] = {**resource["schema"], **described}
        return cls(metadata, schemas, {name: list(rows.get(name, [])) for name in schemas})

    @classmethod
    def from_folder(cls, version_dir: Path) -> PackageState:
        """The state of a published version folder (datapackage.json and <table>.json)."""
        version_dir = Path(version_dir)
        descriptor = _read_json(version_dir / "datapackage.json")
        if not isinstance(descriptor, dict):
            raise PublishError(f"{version_dir / 'datapackage.json'} is not a JSON object.")
        rows: TableRows = {}
        for resource in descriptor.get("resources", []):
            if "schema" in resource:
                name = resource["name"]
                rows[name] = _read_json(version_dir / f"{name}.json")
        return cls.from_descriptor(descriptor, rows)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PublishError(f"{path} is missing.") from None
    except (OSError, ValueError) as exc:
        raise PublishError(f"Could not read {path}: {exc}.") from exc


# ---------------------------------------------------------------------------- changes


@dataclass
class Changes:
    """What changed from one version to the next, and the bump it calls for."""

    bump: str | None
    reasons: list[str] = field(default_factory=list)
    sources: dict[str, list[str]] = field(
        default_factory=lambda: {"added": [], "removed": [], "changed": []}
    )
    schema: list[dict[str, Any]] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(
        self, *, dataset: str, version: str, previous: str | None, created: str | None
    ) -> dict[str, Any]:
        """The ``changes.json`` document of version `version`. Its rows are the compared rows
        themselves, not copies: a first version lists every row of the dataset."""
        return {
            "dataset": dataset,
            "version": version,
            "previous": previous,
            "bump": self.bump,
            "created": created,
            "reasons": list(self.reasons),
            "sources": {k: list(v) for k, v in self.sources.items()},
            "schema": [dict(e) for e in self.schema],
            "metadata": [dict(e) for e in self.metadata],
            "tables": {name: dict(entry) for name, entry in self.tables.items()},
        }


def compare(old: PackageState | None, new: PackageState) -> Changes | None:
    """The changes from `old` to `new` (`old` None: the first version), or None if none."""
    if old is None:
        empty = PackageState({}, {}, {})
        tables = _tables_changes(empty, new)
        sources = _sources(empty, new, tables)
        reasons = ["first version", *_source_reasons(sources, tables)]
        return Changes("initial", reasons, sources, [], [], tables)
    schema = schema_changes(old.schemas, new.schemas)
    metadata = metadata_changes(old.metadata, new.metadata)
    tables = _tables_changes(old, new)
    sources = _sources(old, new, tables)
    bumps = [_schema_bump(e) for e in schema] + ["patch" for _ in metadata]
    bumps += _row_bumps(sources, tables)
    if not bumps:
        return None
    reasons = _source_reasons(sources, tables)
    reasons += [describe_schema_change(e) for e in schema]
    reasons += [f"metadata {e['property']} changed" for e in metadata]
    return Changes(max(bumps, key=BUMPS.index), reasons, sources, schema, metadata, tables)


def next_version(previous: str | None, bump: str) -> str:
    """The version after `previous` for `bump`: 1.0.0 first; MAJOR resets minor and patch."""
    if bump not in (*BUMPS, "initial"):
        raise ValueError(f"unknown bump {bump!r}; expected one of {', '.join(BUMPS)}")
    if previous is None:
        return "1.0.0"
    if bump == "initial":
        raise ValueError(f"the bump 'initial' has no previous version, got {previous!r}")
    major, minor, patch = _version_key(previous)
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def _version_key(version: str) -> tuple[int, int, int]:
    match = _VERSION_RE.fullmatch(version)
    if match is None:
        raise ValueError(f"{version!r} is not a version number like 1.2.0")
    major, minor, patch = (int(p) for p in match.groups())
    return major, minor, patch


# ---------------------------------------------------------------------------- metadata


def metadata_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Package properties that differ, ignoring resources, version, created and private keys."""
    keys = sorted(
        k for k in {*old, *new} if k not in _IGNORED_METADATA and not k.startswith(_PRIVATE_PREFIX)
    )
    return [
        {"property": k, "old": old.get(k), "new": new.get(k)}
        for k in keys
        if old.get(k) != new.get(k)
    ]


# ---------------------------------------------------------------------------- schemas


def _entry(
    resource: str, field_name: str | None, change: str, old: Any, new: Any, **extra: Any
) -> dict[str, Any]:
    entry = {"resource": resource, "field": field_name, "change": change, "old": old, "new": new}
    return {**entry, **extra}


def _structure(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ("name", *_DESCRIPTIVE)}


def schema_changes(
    old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Changes between the Table Schemas of two versions, keyed by resource name."""
    removed = [n for n in old if n not in new]
    added = [n for n in new if n not in old]
    out: list[dict[str, Any]] = []
    for name in list(removed):  # a resource whose schema moved unchanged to a new name
        twin = next((a for a in added if _structure(new[a]) == _structure(old[name])), None)
        if twin is not None:
            out.append(_entry(name, None, "resource renamed", name, twin))
            removed.remove(name)
            added.remove(twin)
    out += [_entry(n, None, "resource removed", n, None) for n in removed]
    out += [_entry(n, None, "resource added", None, n) for n in added]
    for name in new:
        if name in old:
            out += _resource_changes(name, old[name], new[name])
    return out


def _key_list(key: Any) -> list[str]:
    if key is None:
        return []
    return [key] if isinstance(key, str) else list(key)


def _resource_changes(
    name: str, old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[dict[str, Any]]:
    out = _field_list_changes(name, old.get("fields", []), new.get("fields", []))
    for prop in sorted({*old, *new} - {"name", "fields"}):
        before, after = old.get(prop), new.get(prop)
        if before == after:
            continue
        if prop in _DESCRIPTIVE:
            out.append(_entry(name, None, "redescribed", before, after, property=prop))
        elif prop == "primaryKey":
            before, after = _key_list(before), _key_list(after)
            if before != after:
                out.append(_entry(name, None, "primaryKey changed", before, after))
        elif prop == "foreignKeys":
            out += _foreign_key_changes(name, before or [], after or [])
        else:
            out.append(_entry(name, None, "changed", before, after, property=prop))
    return out


def _foreign_key_changes(name: str, old: list[dict], new: list[dict]) -> list[dict[str, Any]]:
    before = {tuple(_key_list(fk.get("fields"))): fk for fk in old}
    after = {tuple(_key_list(fk.get("fields"))): fk for fk in new}
    out, fk = [], "foreignKeys"
    for fields in sorted({*before, *after}):
        label = ",".join(fields)
        if fields not in after:
            out.append(_entry(name, label, "loosened", before[fields], None, constraint=fk))
        elif fields not in before:
            out.append(_entry(name, label, "tightened", None, after[fields], constraint=fk))
        elif before[fields] != after[fields]:
            out.append(_entry(name, label, "reference updated", before[fields], after[fields]))
    return out


def _field_list_changes(
    name: str, old_fields: list[dict], new_fields: list[dict]
) -> list[dict[str, Any]]:
    old_by = {f["name"]: f for f in old_fields}
    new_by = {f["name"]: f for f in new_fields}
    old_names, new_names = list(old_by), list(new_by)
    removed = [n for n in old_names if n not in new_by]
    added = [n for n in new_names if n not in old_by]
    out: list[dict[str, Any]] = []
    for gone in list(removed):  # a field replaced, at its place, by a new one of its type
        i = old_names.index(gone)
        twin = new_names[i] if i < len(new_names) else None
        if twin in added and _type(old_by[gone]) == _type(new_by[twin]):
            out.append(_entry(name, gone, "renamed", gone, twin))
            removed.remove(gone)
            added.remove(twin)
    out += [_entry(name, n, "removed", _type(old_by[n]), None) for n in removed]
    out += [_entry(name, n, "added", None, _type(new_by[n])) for n in added]
    kept_old = [n for n in old_names if n in new_by]
    kept_new = [n for n in new_names if n in old_by]
    if kept_old != kept_new:
        out.append(_entry(name, None, "reordered", kept_old, kept_new))
    for fname in kept_new:
        out += _field_changes(name, old_by[fname], new_by[fname])
    return out


def _type(spec: Mapping[str, Any]) -> str:
    return spec.get("type", "string")


def _field_changes(
    name: str, old: Mapping[str, Any], new: Mapping[str, Any]
) -> list[dict[str, Any]]:
    fname = new["name"]
    out: list[dict[str, Any]] = []
    if _type(old) != _type(new):
        out.append(_entry(name, fname, "retyped", _type(old), _type(new)))
    if old.get("format", "default") != new.get("format", "default"):
        out.append(_entry(name, fname, "reformatted", old.get("format"), new.get("format")))
    before, after = old.get("constraints", {}), new.get("constraints", {})
    for cname in sorted({*before, *after}):
        verdict = _constraint_change(cname, before.get(cname), after.get(cname))
        if verdict is not None:
            old_value, new_value = before.get(cname), after.get(cname)
            out.append(_entry(name, fname, verdict, old_value, new_value, constraint=cname))
    for prop in sorted({*old, *new} - {"name", "type", "format", "constraints"}):
        if old.get(prop) != new.get(prop):
            change = "redescribed" if prop in _DESCRIPTIVE else "changed"
            out.append(_entry(name, fname, change, old.get(prop), new.get(prop), property=prop))
    return out


def _constraint_change(cname: str, old: Any, new: Any) -> str | None:
    """ "tightened", "loosened" or None (no change) for one constraint of a field."""
    if cname in _FLAGS:
        old, new = bool(old), bool(new)
    if old == new:
        return None
    if new is None or new is False:
        return "loosened"
    if old is None or old is True or old is False:
        return "tightened"
    if cname == "enum":
        return "loosened" if set(map(_hashable, old)) <= set(map(_hashable, new)) else "tightened"
    if cname in _LOWER_BOUNDS or cname in _UPPER_BOUNDS:
        try:
            wider = new < old if cname in _LOWER_BOUNDS else new > old
        except TypeError:
            return "tightened"
        return "loosened" if wider else "tightened"
    return "tightened"  # pattern and other constraints: any change may reject old data


def _hashable(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _schema_bump(entry: Mapping[str, Any]) -> str:
    return _SCHEMA_BUMPS.get(entry["change"], "major")


# ---------------------------------------------------------------------------- rows


def _sort_key(values: Iterable[Any]) -> tuple:
    """Order key values: numbers first, then other values by their JSON text, None last."""
    out: list[tuple] = []
    for v in values:
        if v is None:
            out.append((2, 0, ""))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out.append((0, v, ""))
        else:
            out.append((1, 0, v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)))
    return tuple(out)


def _row_key(row: Mapping[str, Any], key: list[str]) -> tuple:
    if key:
        return tuple(row.get(k) for k in key)
    return (json.dumps(row, sort_keys=True, ensure_ascii=False),)


def _match_key(name: str, old: PackageState, new: PackageState) -> list[str]:
    """The primary key rows of `name` are matched by; [] (whole rows) when it cannot be used."""
    schema = new.schemas.get(name) or old.schemas.get(name) or {}
    key = _key_list(schema.get("primaryKey"))
    every_row = [*old.rows.get(name, []), *new.rows.get(name, [])]
    return key if all(k in row for row in every_row for k in key) else []


def _table_changes(
    key: list[str], old_rows: list[dict], new_rows: list[dict], compared: list[str]
) -> dict[str, Any]:
    before = {_row_key(r, key): r for r in old_rows}
    after = {_row_key(r, key): r for r in new_rows}
    added = [after[k] for k in sorted(after.keys() - before.keys(), key=_sort_key)]
    removed = [before[k] for k in sorted(before.keys() - after.keys(), key=_sort_key)]
    changed = []
    for k in sorted(before.keys() & after.keys(), key=_sort_key):
        fields = {
            f: {"old": before[k].get(f), "new": after[k].get(f)}
            for f in compared
            if before[k].get(f) != after[k].get(f)
        }
        if fields:
            row = after[k]
            source = row.get(SOURCE_FIELD, before[k].get(SOURCE_FIELD))
            key_values = dict(zip(key, k, strict=True))
            changed.append({"key": key_values, SOURCE_FIELD: source, "fields": fields})
    return {
        "key": key,
        "counts": {"added": len(added), "removed": len(removed), "changed": len(changed)},
        "added": added,
        "removed": removed,
        "changed": changed,
    }


def _field_names(schema: Mapping[str, Any] | None) -> list[str]:
    return [f["name"] for f in (schema or {}).get("fields", [])]


def _tables_changes(old: PackageState, new: PackageState) -> dict[str, dict[str, Any]]:
    """Row changes of every table of either version, new version's tables first."""
    names = [*new.schemas, *(n for n in old.schemas if n not in new.schemas)]
    out = {}
    for name in names:
        old_fields = set(_field_names(old.schemas.get(name)))
        compared = [f for f in _field_names(new.schemas.get(name)) if f in old_fields]
        out[name] = _table_changes(
            _match_key(name, old, new), old.rows.get(name, []), new.rows.get(name, []), compared
        )
    return out


def _all_sources(state: PackageState) -> set[str]:
    return {
        row[SOURCE_FIELD]
        for rows in state.rows.values()
        for row in rows
        if row.get(SOURCE_FIELD) is not None
    }


def _sources(
    old: PackageState, new: PackageState, tables: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[str]]:
    before, after = _all_sources(old), _all_sources(new)
    touched = set(source_summaries(tables)) - {None}
    return {
        "added": sorted(after - before),
        "removed": sorted(before - after),
        "changed": sorted(touched & before & after),
    }


def source_summaries(
    tables: Mapping[str, Mapping[str, Any]],
) -> dict[str | None, dict[str, dict[str, Any]]]:
    """Per source (None: rows without one), per table: rows added, removed, changed and the
    changed fields, from the ``tables`` part of a changes.json."""
    out: dict[str | None, dict[str, dict[str, Any]]] = {}

    def slot(source: str | None, table: str) -> dict[str, Any]:
        tables_of = out.setdefault(source, {})
        return tables_of.setdefault(table, {"added": 0, "removed": 0, "changed": 0, "fields": []})

    for table, change in tables.items():
        for kind in ("added", "removed"):
            for row in change.get(kind, []):
                slot(row.get(SOURCE_FIELD), table)[kind] += 1
        for row in change.get("changed", []):
            counts = slot(row.get(SOURCE_FIELD), table)
            counts["changed"] += 1
            counts["fields"] += [f for f in row.get("fields", {}) if f not in counts["fields"]]
    return out


def _row_bumps(
    sources: Mapping[str, list[str]], tables: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """MAJOR for a source removed, MINOR for rows added, PATCH for rows changed or removed."""
    removed_sources = set(sources["removed"])
    bumps = []
    for source, per_table in source_summaries(tables).items():
        if source in removed_sources:
            bumps.append("major")
        elif any(c["added"] for c in per_table.values()):
            bumps.append("minor")
        else:
            bumps.append("patch")
    return bumps


# ---------------------------------------------------------------------------- text


def _plural(count: int, table: str) -> str:
    noun = table[:-1] if count == 1 and table.endswith("s") else table
    return f"{count} {noun}"


def _table_counts(per_table: Mapping[str, Mapping[str, Any]], kind: str) -> str:
    return ", ".join(_plural(c[kind], t) for t, c in per_table.items() if c[kind])


def _mixed_counts(per_table: Mapping[str, Mapping[str, Any]]) -> str:
    """`2 indicators changed (value), 1 removed; 1 section added`."""
    parts = []
    for table, c in per_table.items():
        bits = []
        for kind in ("added", "changed", "removed"):
            if c[kind]:
                detail = f" ({', '.join(c['fields'])})" if kind == "changed" else ""
                count = _plural(c[kind], table) if not bits else str(c[kind])
                bits.append(f"{count} {kind}{detail}")
        if bits:
            parts.append(", ".join(bits))
    return "; ".join(parts)


def _source_reasons(
    sources: Mapping[str, list[str]], tables: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    summary = source_summaries(tables)
    reasons = [
        f"new source {s}: {_table_counts(summary.get(s, {}), 'added')} added"
        for s in sources["added"]
    ]
    reasons += [
        f"source {s} removed: {_table_counts(summary.get(s, {}), 'removed')} removed"
        for s in sources["removed"]
    ]
    reasons += [f"source {s}: {_mixed_counts(summary[s])}" for s in sources["changed"]]
    if None in summary:
        reasons.append(f"rows without a source: {_mixed_counts(summary[None])}")
    return reasons


def _short(value: Any, limit: int = 60, code: bool = False) -> str:
    """`value` as JSON text, cut to `limit` characters; in Markdown backticks when `code`."""
    text = json.dumps(value, ensure_ascii=False)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return "`" + text.replace("`", "'") + "`" if code else text


def describe_schema_change(entry: Mapping[str, Any], code: bool = False) -> str:
    """One line for a schema change, e.g. ``indicators.unit retyped ("string" → "integer")``.

    With `code`, names and values are Markdown code spans.
    """
    change, resource, old, new = entry["change"], entry["resource"], entry["old"], entry["new"]
    where = f"{resource}.{entry['field']}" if entry.get("field") else resource
    if code:
        where = f"`{where}`"
    if change == "resource renamed":
        return f"resource {old} renamed to {new}"
    if change.startswith("resource "):
        return f"resource {resource} {change.removeprefix('resource ')}"
    if change == "renamed":
        return f"{resource}.{old} renamed to {new}"
    if change in ("added", "removed"):
        return f"{where} {change} ({new if change == 'added' else old})"
    if change == "reordered":
        return f"{resource} fields reordered"
    values = f"({_short(old, code=code)} → {_short(new, code=code)})"
    if entry.get("constraint"):
        return f"{where} constraint {entry['constraint']} {change} {values}"
    if entry.get("property"):
        return f"{where} {entry['property']} changed {values}"
    if change == "reference updated":
        return f"{where} foreign key reference updated {values}"
    return f"{where} {change} {values}"


def _source_bullets(changes: Mapping[str, Any]) -> list[str]:
    summary = source_summaries(changes.get("tables", {}))
    sources = changes.get("sources", {})
    lines = [
        f"Source `{s}` added: {_table_counts(summary.get(s, {}), 'added')}."
        for s in sources.get("added", [])
    ]
    lines += [
        f"Source `{s}` removed: {_table_counts(summary.get(s, {}), 'removed')}."
        for s in sources.get("removed", [])
    ]
    lines += [
        f"Source `{s}`: {_mixed_counts(summary[s])}."
        for s in sources.get("changed", [])
        if s in summary
    ]
    if None in summary:
        lines.append(f"Rows without a source: {_mixed_counts(summary[None])}.")
    return lines


def _changelog_bullets(changes: Mapping[str, Any]) -> list[str]:
    lines = ["First version."] if changes.get("bump") == "initial" else []
    lines += _source_bullets(changes)
    lines += [f"Schema: {describe_schema_change(e, code=True)}." for e in changes.get("schema", [])]
    lines += [
        f"Metadata: `{e['property']}` changed "
        f"({_short(e['old'], code=True)} → {_short(e['new'], code=True)})."
        for e in changes.get("metadata", [])
    ]
    return lines or ["No changes."]


def _entry_order(entry: Mapping[str, Any]) -> tuple[int, int, int]:
    try:
        return _version_key(str(entry.get("version")))
    except ValueError:
        return (-1, -1, -1)


def changelog_head(dataset_title: str) -> str:
    """The opening of CHANGELOG.md, before the versions."""
    return "\n".join(
        [
            f"# Changelog: {dataset_title}",
            "",
            "Versions follow the Frictionless Data Package Version rules: MAJOR when fields,",
            "resources or sources are removed, renamed or retyped, or constraints tightened; MINOR",
            "for new rows, sources or resources and loosened constraints; PATCH for corrected "
            "values",
            "and descriptive metadata.",
        ]
    )


def changelog_entry(entry: Mapping[str, Any]) -> str:
    """One version's part of CHANGELOG.md (it opens with a blank line)."""
    created = entry.get("created")
    date = str(created)[:10] if created else "undated"
    lines = ["", "", f"## {entry.get('version')} — {date} ({entry.get('bump')})", ""]
    lines += [f"- {bullet}" for bullet in _changelog_bullets(entry)]
    return "\n".join(lines)


CHANGELOG_HEADING = re.compile(r"^## (\S+) — ", re.MULTILINE)
"""A version's heading in CHANGELOG.md; its group is the version."""


def render_changelog(dataset_title: str, entries: list[dict[str, Any]]) -> str:
    """CHANGELOG.md text from the changes.json of every version, newest version first."""
    ordered = sorted(entries, key=_entry_order, reverse=True)
    return changelog_head(dataset_title) + "".join(map(changelog_entry, ordered)) + "\n"


def _limited(lines: list[str], total: int, limit: int) -> list[str]:
    shown = lines[:limit]
    if total > len(shown):
        shown.append(f"    … and {total - len(shown)} more")
    return shown


def _row_label(row: Mapping[str, Any], key: list[str]) -> str:
    label = ", ".join(str(row.get(k)) for k in key) if key else _short(row, 80)
    source = row.get(SOURCE_FIELD)
    return f"{label} (source {source})" if source is not None and key != [SOURCE_FIELD] else label


def _table_lines(name: str, change: Mapping[str, Any], limit: int) -> list[str]:
    key, counts = change.get("key", []), change.get("counts", {})
    key_text = ", ".join(key) if key else "whole rows"
    lines = [
        f"  {name} (key {key_text}): {counts.get('added', 0)} added, "
        f"{counts.get('removed', 0)} removed, {counts.get('changed', 0)} changed"
    ]
    for kind, mark in (("added", "+"), ("removed", "-")):
        rows = change.get(kind, [])
        shown = [f"    {mark} {_row_label(r, key)}" for r in rows[:limit]]
        lines += _limited(shown, counts.get(kind, len(rows)), limit)
    changed = change.get("changed", [])
    shown = []
    for row in changed[:limit]:
        label = _row_label({**row["key"], SOURCE_FIELD: row.get(SOURCE_FIELD)}, key)
        fields = "; ".join(
            f"{f}: {_short(v['old'])} → {_short(v['new'])}" for f, v in row["fields"].items()
        )
        shown.append(f"    ~ {label}: {fields}")
    return lines + _limited(shown, counts.get("changed", len(changed)), limit)


def render_diff(changes: Mapping[str, Any], limit: int = DIFF_LIMIT) -> str:
    """Text of `reportdata diff`: summary, bump, sources, schema, metadata and rows."""
    previous, version = changes.get("previous"), changes.get("version")
    bump = changes.get("bump") or "no changes"
    lines = [f"{changes.get('dataset')} {previous or '(none)'} → {version}: {bump}"]
    if changes.get("reasons"):
        lines += ["", "Summary:", *(f"  - {r}" for r in changes["reasons"])]
    sources = changes.get("sources", {})
    if any(sources.get(k) for k in ("added", "removed", "changed")):
        lines += ["", "Sources:"]
        for kind in ("added", "removed", "changed"):
            names = sources.get(kind, [])
            if names:
                listed = ", ".join(names[:limit])
                more = f" … and {len(names) - limit} more" if len(names) > limit else ""
                lines.append(f"  {kind} ({len(names)}): {listed}{more}")
    if changes.get("schema"):
        lines += ["", "Schema:", *(f"  - {describe_schema_change(e)}" for e in changes["schema"])]
    if changes.get("metadata"):
        lines += ["", "Metadata:"]
        lines += [
            f"  - {e['property']}: {_short(e['old'])} → {_short(e['new'])}"
            for e in changes["metadata"]
        ]
    tables = changes.get("tables", {})
    if tables:
        lines += ["", "Rows:"]
        for name, change in tables.items():
            lines += _table_lines(name, change, limit)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- published


def diff_versions(published_dir: Path, dataset: str, v1: str, v2: str) -> dict[str, Any]:
    """The changes from published version `v1` to `v2` of `dataset` (either may be newer).

    Returns a changes.json-shaped dict (``bump`` None when the versions hold the same data);
    raises `PublishError` for a malformed version or an unknown dataset or version.
    """
    if not _NAME_RE.fullmatch(dataset):
        raise PublishError(f"{dataset!r} is not a dataset name (lower-case letters, digits, -, _).")
    for version in (v1, v2):
        if not _VERSION_RE.fullmatch(version):
            raise PublishError(f"{version!r} is not a version number like 1.2.0.")
    dataset_dir = Path(published_dir) / dataset
    if not dataset_dir.is_dir():
        raise PublishError(f"Dataset {dataset!r} is not published in {published_dir}.")
    states = []
    for version in (v1, v2):
        if not (dataset_dir / version / "datapackage.json").is_file():
            raise PublishError(f"Dataset {dataset!r} has no version {version} in {published_dir}.")
        states.append(PackageState.from_folder(dataset_dir / version))
    old, new = states
    changes = compare(old, new) or Changes(None)
    if changes.bump is None:
        changes.tables = _tables_changes(old, new)
    return changes.to_json(
        dataset=dataset, version=v2, previous=v1, created=new.metadata.get("created")
    )
