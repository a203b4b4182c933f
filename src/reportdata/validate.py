"""Validate the tables: pandera schemas plus the cross-field checks a Table Schema cannot say.

Every failure becomes one row of a `ValidationReport` (table, check, key, column, message),
whether it comes from pandera (`check_tables`) or from Frictionless (`validate_package`).
Check names: the Table Schema constraint that failed (``required``, ``unique``, ``pattern``,
``enum``, ``minimum``, ``maximum``, ``type``, ``not_null``, ``missing_column``, ``extra_column``,
``column_order``, ``missing_table``) or one of the cross-field checks (``foreign_key``,
``span``, ``quantity_text``, ``section``, ``value_base``).
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reportdata.fsutil import atomic_write_bytes
from reportdata.schema import (
    TABLES,
    field_names,
    fields,
    nullable,
    pandera_schema,
    primary_key,
    value_checks,
)
from reportdata.units import resolve

if TYPE_CHECKING:  # imported where used: rows are checked without them (`check_rows`)
    import pandas as pd
    from pandera.errors import SchemaErrors

MARKDOWN_ROWS = 50
"""At most this many rows of each failing check are listed in the Markdown report."""

REL_TOL = 1e-9
"""Relative tolerance of the value_base check."""

"""Multiplier words that may stand before the base unit in a unit as written (万元 = 万 + 元)."""


def unit_multiplier(unit: str, unit_base: str) -> float:
    """The factor from a value in `unit` to one in `unit_base` (万元, 元 → 1e4; 厘米, 米 → 0.01),
    from the unit table of `reportdata.units`; 1 where the table maps the unit elsewhere or
    not at all (名 → 人 is counted as it is, 大 → 个)."""
    found = resolve(unit or "")
    if found is not None and found[1] == (unit_base or ""):
        return float(found[2])
    return 1.0


@dataclass
class ValidationReport:
    """The outcome of validating the tables: every failure, and the rows per table."""

    ok: bool
    errors: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""  # what the tables cover, when not a whole dataset

    def by_check(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Errors grouped by (table, check), in order of first appearance."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for error in self.errors:
            groups.setdefault((error["table"], error["check"]), []).append(error)
        return groups

    def summary(self) -> str:
        """One sentence: passed with the row counts, or failed with the errors per check."""
        rows = ", ".join(f"{name} {n}" for name, n in self.counts.items()) or "no tables"
        if self.ok:
            return f"Validation passed (rows: {rows})."
        parts = [f"{t}.{c} {len(errs)}" for (t, c), errs in self.by_check().items()]
        n = len(self.errors)
        return f"Validation failed with {n} error{'s' * (n != 1)} ({', '.join(parts)})."

    def to_json(self) -> str:
        """The report as JSON: ok, summary, counts and errors."""
        data = {"ok": self.ok, "summary": self.summary(), **asdict(self)}
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"

    def to_markdown(self) -> str:
        """The report as Markdown: the summary, then a table per failing check."""
        lines = ["# Validation report", "", self.summary(), ""]
        if self.note:
            lines += [self.note, ""]
        if self.counts:
            lines += ["| table | rows |", "| --- | ---: |"]
            lines += [f"| {name} | {n} |" for name, n in self.counts.items()]
            lines.append("")
        for (table, check), errs in self.by_check().items():
            lines += [f"## {table}: {check} ({len(errs)})", ""]
            lines += ["| key | column | message |", "| --- | --- | --- |"]
            for e in errs[:MARKDOWN_ROWS]:
                cells = (e.get("key"), e.get("column"), e.get("message"))
                lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
            if len(errs) > MARKDOWN_ROWS:
                lines += ["", f"… and {len(errs) - MARKDOWN_ROWS} more"]
            lines.append("")
        return "\n".join(lines)


def _md_cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.split("\n"))


def write_report(report: ValidationReport, folder: Path) -> tuple[Path, Path]:
    """Write `validation.json` and `validation.md` into `folder` atomically; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "validation.json", folder / "validation.md"
    atomic_write_bytes(json_path, report.to_json().encode("utf-8"))
    atomic_write_bytes(md_path, report.to_markdown().encode("utf-8"))
    return json_path, md_path


def _error(table: str, check: str, key: Any, column: str | None, message: str) -> dict[str, Any]:
    return {"table": table, "check": check, "key": key, "column": column, "message": message}


def _py(value: Any) -> Any:
    """A plain Python value for messages and JSON (numpy scalars unwrapped, NA as None)."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    pd = sys.modules.get("pandas")  # only a DataFrame's cells can be pandas' NA
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    return value


class Columns:
    """A table's columns as lists, each taken when first asked for: from a DataFrame
    (`of_frame`) or from row dicts (`of_rows`), so the cross-field checks serve both."""

    def __init__(self, names: Iterable[str], take: Callable[[str], list[Any]]):
        self.names, self._take = set(names), take
        self._cache: dict[str, list[Any]] = {}

    @classmethod
    def of_frame(cls, frame: pd.DataFrame) -> Columns:
        return cls(map(str, frame.columns), lambda c: frame[c].tolist())

    @classmethod
    def of_rows(cls, name: str, rows: list[Mapping[str, Any]]) -> Columns:
        numbers = {f["name"] for f in fields(name) if f.get("type") == "number"}

        def take(column: str) -> list[Any]:  # numbers as floats, as in a float64 column
            values = [row.get(column) for row in rows]
            if column in numbers:
                return [None if v is None else float(v) for v in values]
            return values

        return cls(field_names(name), take)

    def __contains__(self, column: object) -> bool:
        return column in self.names

    def __getitem__(self, column: str) -> list[Any]:
        if column not in self._cache:
            self._cache[column] = self._take(column)
        return self._cache[column]


def _row_key(name: str, table: Columns, i: int) -> str:
    """A readable key of row `i`: its primary key value(s), else its position ("row 3")."""
    key = primary_key(name)
    if key and all(k in table for k in key):
        values = [_py(table[k][i]) for k in key]
        if all(v is not None and v != "" for v in values):
            return "/".join(str(v) for v in values)
    return f"row {i}"


_CHECK_NAMES = {
    "not_nullable": "required",
    "field_uniqueness": "unique",
    "multiple_fields_uniqueness": "primary_key",
    "column_in_dataframe": "missing_column",
    "column_in_schema": "extra_column",
    "column_ordered": "column_order",
}


def _pandera_errors(name: str, frame: pd.DataFrame, exc: SchemaErrors) -> list[dict[str, Any]]:
    """Turn pandera's failure cases into report rows with readable messages."""
    specs = {f["name"]: f for f in fields(name)}
    table = Columns.of_frame(frame)
    out = []
    for case in exc.failure_cases.to_dict("records"):
        raw = str(case["check"])
        check = _CHECK_NAMES.get(raw, raw)
        if raw.startswith(("dtype(", "coerce_dtype(")):
            check = "type"
        value, index, column = _py(case["failure_case"]), _py(case["index"]), case["column"]
        column = None if _py(column) is None else str(column)
        if check in ("missing_column", "extra_column", "column_order"):
            column = str(value)
        spec = specs.get(column or "", {})
        cons = spec.get("constraints", {})
        if check == "required" and value is None and not cons.get("required"):
            check = "not_null"  # an optional string without value is "", never null
        in_frame = index is not None and 0 <= int(index) < len(frame)
        key = _row_key(name, table, int(index)) if in_frame else None
        if check == "type":
            expected = spec.get("type", "?")
            message = (
                f"column has dtype {value}, expected a {expected} column"
                if index is None
                else f"{value!r} is not a {expected}"
            )
        else:
            message = _message(check, value, cons, key)
        out.append(_error(name, check, key, column, message))
    return out


def _message(check: str, value: Any, cons: Mapping[str, Any], key: str | None) -> str:
    """What a failed schema check says about a value (``key``: its row's key)."""
    messages = {
        "required": "is empty but required" if value == "" else "is null but required",
        "not_null": 'is null; an optional string without value must be ""',
        "unique": f"{value!r} occurs more than once",
        "primary_key": f"primary key {key!r} occurs more than once",
        "missing_column": f"column {value!r} of the schema is missing",
        "extra_column": f"column {value!r} is not in the schema",
        "column_order": f"column {value!r} is out of the schema's order",
        "pattern": f"{value!r} does not match the pattern {cons.get('pattern')!r}",
        "enum": f"{value!r} is not one of {cons.get('enum')}",
        "minimum": f"{value!r} is below the minimum {cons.get('minimum')!r}",
        "maximum": f"{value!r} is above the maximum {cons.get('maximum')!r}",
    }
    return messages.get(check, f"{value!r} fails the check {check}")


def _dedupe(errors: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for e in errors:
        ident = (e["table"], e["check"], e["key"], e["column"])
        if ident not in seen:
            seen.add(ident)
            out.append(e)
    return out


def _has(table: Columns | None, *columns: str) -> bool:
    return table is not None and all(c in table for c in columns)


def _int(value: Any) -> int | None:
    if type(value) is int:
        return value
    value = _py(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value) if float(value).is_integer() else None
    except (TypeError, ValueError):
        return None


def _col(table: Columns, column: str) -> list[Any]:
    return table[column]


def _foreign_key_errors(frames: Mapping[str, Columns]) -> list[dict[str, Any]]:
    """(d) sections and indicators name a document that exists; indicators a section."""
    errors = []
    targets = {"document_id": "documents", "section_id": "sections"}
    for name, column in (
        ("sections", "document_id"),
        ("indicators", "document_id"),
        ("indicators", "section_id"),
    ):
        frame, target = frames.get(name), frames.get(targets[column])
        if not _has(frame, column) or not _has(target, column):
            continue
        known = set(_col(target, column))
        for i, value in enumerate(_col(frame, column)):
            if value not in known:
                msg = f"{column} {_py(value)!r} is not in {targets[column]}"
                errors.append(_error(name, "foreign_key", _row_key(name, frame, i), column, msg))
    return errors


def _span_errors(frames: Mapping[str, Columns]) -> list[dict[str, Any]]:
    """Spans inside their document's text; (b) quantity_text is the text at its span;
    (c) an indicator's section belongs to its document and holds its span."""
    docs, secs, inds = (frames.get(n) for n in TABLES)
    errors: list[dict[str, Any]] = []
    texts: dict[Any, str] = {}
    if _has(docs, "document_id", "text"):
        pairs = zip(_col(docs, "document_id"), _col(docs, "text"), strict=True)
        texts = {d: t for d, t in pairs if isinstance(t, str)}

    spans: dict[Any, tuple[Any, int | None, int | None]] = {}
    if _has(secs, "section_id", "document_id", "char_start", "char_end"):
        cols = [_col(secs, c) for c in ("section_id", "document_id", "char_start", "char_end")]
        for i, (sec, doc, start, end) in enumerate(zip(*cols, strict=True)):
            start, end = _int(start), _int(end)
            spans[sec] = (doc, start, end)
            inside = (
                doc not in texts or None in (start, end) or 0 <= start <= end <= len(texts[doc])
            )
            if not inside:
                msg = f"span [{start}, {end}) is not inside the text of {doc!r}"
                errors.append(
                    _error("sections", "span", _row_key("sections", secs, i), "char_start", msg)
                )

    names = ("document_id", "section_id", "char_start", "char_end", "quantity_text")
    if not _has(inds, *names):
        return errors
    rows = zip(*(_col(inds, c) for c in names), strict=True)
    for i, (doc, sec, start, end, qtext) in enumerate(rows):
        start, end = _int(start), _int(end)
        if start is None or end is None:
            continue
        key = functools.partial(_row_key, "indicators", inds, i)
        if sec in spans:
            sdoc, sstart, send = spans[sec]
            if sdoc != doc:
                msg = f"section {sec!r} belongs to document {sdoc!r}, not {doc!r}"
                errors.append(_error("indicators", "section", key(), "section_id", msg))
            elif None not in (sstart, send) and not (sstart <= start and end <= send):
                msg = f"span [{start}, {end}) lies outside section {sec!r} [{sstart}, {send})"
                errors.append(_error("indicators", "section", key(), "char_start", msg))
        if doc not in texts:
            continue
        text = texts[doc]
        if not 0 <= start < end <= len(text):
            msg = f"span [{start}, {end}) is not inside the text of {doc!r}"
            errors.append(_error("indicators", "span", key(), "char_start", msg))
        elif text[start:end] != qtext:
            msg = (
                f"quantity_text {_py(qtext)!r} differs from the text at "
                f"[{start}, {end}): {text[start:end]!r}"
            )
            errors.append(_error("indicators", "quantity_text", key(), "quantity_text", msg))
    return errors


def _value_base_errors(inds: Columns | None) -> list[dict[str, Any]]:
    """(a) value_base is value times the multiplier of the unit (relative tolerance 1e-9)."""
    names = ("value", "value_base", "unit", "unit_base")
    if not _has(inds, *names):
        return []
    errors = []
    factors: dict[tuple[str, str], float] = {}
    rows = zip(*(_col(inds, c) for c in names), strict=True)
    for i, (value, base, unit, unit_base) in enumerate(rows):
        value, base = _py(value), _py(base)
        if not isinstance(value, int | float) or not isinstance(base, int | float):
            continue
        pair = (
            unit if isinstance(unit, str) else "",
            unit_base if isinstance(unit_base, str) else "",
        )
        if pair not in factors:
            factors[pair] = unit_multiplier(*pair)
        factor = factors[pair]
        if not math.isclose(base, value * factor, rel_tol=REL_TOL, abs_tol=0.0):
            msg = (
                f"value_base {base!r} is not value {value!r} × {factor:g} "
                f"(unit {pair[0]!r}, unit_base {pair[1]!r})"
            )
            key = _row_key("indicators", inds, i)
            errors.append(_error("indicators", "value_base", key, "value_base", msg))
    return errors


def _cross_errors(frames: Mapping[str, Columns]) -> list[dict[str, Any]]:
    """The checks a Table Schema cannot say; each runs only when its columns are there."""
    return (
        _foreign_key_errors(frames)
        + _span_errors(frames)
        + _value_base_errors(frames.get("indicators"))
    )


def _table_errors(tables: Mapping[str, Any]) -> list[dict[str, Any]]:
    errors = []
    for name in sorted(set(tables) - set(TABLES)):
        errors.append(_error(name, "unknown_table", None, None, f"{name!r} is not a table"))
    for name in TABLES:
        if name not in tables:
            errors.append(_error(name, "missing_table", None, None, f"table {name!r} is missing"))
    return errors


def check(tables: Mapping[str, Any]) -> ValidationReport:
    """`check_rows` for tables of row dicts, `check_tables` for DataFrames."""
    if all(isinstance(table, list) for table in tables.values()):
        return check_rows(tables)
    return check_tables(tables)


def check_tables(tables: Mapping[str, pd.DataFrame]) -> ValidationReport:
    """Validate DataFrames against their schemas with pandera (all failures collected) and
    against each other."""
    from pandera.errors import SchemaErrors

    errors = _table_errors(tables)
    counts: dict[str, int] = {}
    frames: dict[str, Columns] = {}
    for name in TABLES:
        if name not in tables:
            continue
        frame = tables[name].reset_index(drop=True)
        counts[name] = len(frame)
        try:
            frame = pandera_schema(name).validate(frame, lazy=True)
        except SchemaErrors as exc:
            errors.extend(_pandera_errors(name, frame, exc))
        frames[name] = Columns.of_frame(frame)
    errors = _dedupe(errors + _cross_errors(frames))
    return ValidationReport(ok=not errors, errors=errors, counts=counts)


def check_rows(tables: Mapping[str, list[dict[str, Any]]]) -> ValidationReport:
    """Validate tables of row dicts (cast by `schema.conform_rows`) without pandas: the
    checks of `check_tables`, with its check names, keys and messages.

    For the few rows of a run that replaces some reports, whose pandas and pandera imports
    cost more than the check (its version's new rows also meet Frictionless before they are
    published). Types and columns are the schema's by construction: the cast raised if not.
    tests/test_schema_validate.py checks both ways agree on every kind of failure."""
    errors = _table_errors(tables)
    counts: dict[str, int] = {}
    frames: dict[str, Columns] = {}
    for name in TABLES:
        if name in tables:
            counts[name] = len(tables[name])
            frames[name] = Columns.of_rows(name, tables[name])
            errors.extend(_constraint_errors(name, frames[name]))
    errors = _dedupe(errors + _cross_errors(frames))
    return ValidationReport(ok=not errors, errors=errors, counts=counts)


def _constraint_errors(name: str, table: Columns) -> list[dict[str, Any]]:
    """What the pandera schema of `name` finds in a table of cast values: nulls, constraint
    checks (optional strings' "" passes them), unique columns and the primary key."""
    errors = []
    key = primary_key(name)
    for spec in fields(name):
        column, cons = spec["name"], spec.get("constraints", {})
        required, may_be_null = bool(cons.get("required")), nullable(spec)
        optional_string = spec.get("type", "string") == "string" and not required
        checks = value_checks(spec)
        for i, value in enumerate(table[column]):
            found = []
            if value is None:
                if not may_be_null:
                    found.append("required" if required else "not_null")
            elif not (optional_string and value == ""):
                found = [check for check, test in checks if not test(value)]
            for check in found:
                message = _message(check, value, cons, None)
                errors.append(_error(name, check, _row_key(name, table, i), column, message))
        if cons.get("unique") or key == [column]:
            errors += _duplicates(name, table, [column], "unique")
    if len(key) > 1:
        errors += _duplicates(name, table, key, "primary_key")
    return errors


def _duplicates(name: str, table: Columns, columns: list[str], check: str) -> list[dict]:
    values = list(zip(*(table[c] for c in columns), strict=True))
    seen = Counter(values)
    errors = []
    for i, value in enumerate(values):
        if seen[value] > 1:
            key = _row_key(name, table, i)
            column = columns[0] if len(columns) == 1 else None
            errors.append(_error(name, check, key, column, _message(check, value[0], {}, key)))
    return errors


def _frictionless_key(error: Mapping[str, Any], key_at: list[int]) -> str | None:
    """The primary key of the row a Frictionless error is about (its cells as text, from
    `package_check.raw_check`), else its row position."""
    cells = error.get("cells") or []
    if key_at and all(i < len(cells) and cells[i] for i in key_at):
        return "/".join(str(cells[i]) for i in key_at)
    row = error.get("row_number")
    return f"row {row}" if row else None


def validate_package(descriptor_path: Path) -> ValidationReport:
    """Validate a written `datapackage.json` with Frictionless: every resource, hashes, keys
    (in the helper process when a run started one: `reportdata.package_check`).

    Errors keep Frictionless's error type as their check (``hash-count``, ``foreign-key``,
    ``type-error``, …); their key is the row's primary key, else its row position.
    """
    from reportdata.package_check import check

    report = check(descriptor_path)
    errors = [_error("datapackage", e["type"], None, None, e["message"]) for e in report["errors"]]
    counts: dict[str, int] = {}
    for task in report["tasks"]:
        name = task["name"]
        if task["rows"] is not None:
            counts[name] = int(task["rows"])
        names = field_names(name) if name in TABLES else []
        key_at = [names.index(k) for k in primary_key(name)] if names else []
        for e in task["errors"]:
            key = _frictionless_key(e, key_at)
            errors.append(_error(name, e["type"], key, e["field_name"], e["message"]))
    return ValidationReport(ok=bool(report["valid"]) and not errors, errors=errors, counts=counts)
