"""The Frictionless Table Schemas in `schemas/` and what is derived from them.

The JSON descriptors are the single source of truth for column names, types, constraints,
keys and descriptions. From them this module derives the pandera schemas (validation) and the
DuckDB column types (the warehouse); `publish` inlines them in `datapackage.json`.

Conventions for missing values in the DataFrames handed around the library:

- string fields are never null: an optional string that has no value holds ``""`` (which
  Frictionless reads back as missing from the CSV); a required string must be non-empty;
- optional integer fields (``documents.report_year``) hold ``pd.NA`` in a nullable ``Int64``
  column; required integers are ``Int64`` too (``int64`` input is coerced);
- number fields are ``float64`` (integers are coerced); booleans are ``bool``.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: reading a schema needs neither (a rerun with
    import pandas as pd  # nothing to do imports no pandas)
    import pandera.pandas as pa

TABLES: tuple[str, ...] = ("documents", "sections", "indicators")
"""Table names in dependency order: a table only refers to tables before it."""

_PANDAS_DTYPES = {"string": str, "integer": "Int64", "number": "float64", "boolean": bool}
DUCKDB_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN"}


def schemas_dir() -> Path:
    """Folder holding the JSON schemas: inside the wheel, else the repository's `schemas/`."""
    packaged = Path(__file__).resolve().parent / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


@functools.cache
def _read_schema(name: str) -> dict[str, Any]:
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {', '.join(TABLES)}")
    return json.loads((schemas_dir() / f"{name}.json").read_text(encoding="utf-8"))


def load_schema(name: str) -> dict[str, Any]:
    """The Table Schema descriptor of table `name` (a fresh copy of the cached file)."""
    return copy.deepcopy(_read_schema(name))


def fields(name: str) -> list[dict[str, Any]]:
    """The field descriptors of table `name`, in schema order."""
    return load_schema(name)["fields"]


def field_names(name: str) -> list[str]:
    """Column names of table `name`, in schema order."""
    return [f["name"] for f in _read_schema(name)["fields"]]


def primary_key(name: str) -> list[str]:
    """Primary key columns of table `name`."""
    key = _read_schema(name).get("primaryKey", [])
    return [key] if isinstance(key, str) else list(key)


def _field_type(field: dict[str, Any]) -> str:
    ftype = field.get("type", "string")
    if ftype not in _PANDAS_DTYPES:
        raise NotImplementedError(f"field {field['name']!r} has unsupported type {ftype!r}")
    return ftype


def _skip_empty(field: dict[str, Any], test: Callable[[pd.Series], pd.Series]) -> Callable:
    """Optional strings hold "" when empty; constraints apply only to the other values."""
    if _field_type(field) == "string" and not field.get("constraints", {}).get("required"):
        return lambda s: s.eq("") | test(s)
    return test


def _checks(field: dict[str, Any]) -> list[pa.Check]:
    """pandera checks for a field's constraints, each named after the constraint."""
    import pandas as pd
    import pandera.pandas as pa

    cons = field.get("constraints", {})
    ftype = _field_type(field)
    checks: list[pa.Check] = []

    def add(cname: str, test: Callable[[pd.Series], pd.Series]) -> None:
        checks.append(pa.Check(_skip_empty(field, test), name=cname))

    if ftype == "string" and cons.get("required"):
        add("required", lambda s: s.str.len() > 0)
    if "pattern" in cons:
        regex = re.compile(cons["pattern"])
        add(
            "pattern",
            lambda s: pd.Series(
                [isinstance(v, str) and regex.fullmatch(v) is not None for v in s],
                index=s.index,
                dtype=bool,
            ),
        )
    if "enum" in cons:
        allowed = list(cons["enum"])
        add("enum", lambda s: s.isin(allowed))
    bounds = {
        "minimum": lambda s, b: s >= b,
        "maximum": lambda s, b: s <= b,
        "exclusiveMinimum": lambda s, b: s > b,
        "exclusiveMaximum": lambda s, b: s < b,
        "minLength": lambda s, b: s.str.len() >= b,
        "maxLength": lambda s, b: s.str.len() <= b,
    }
    for cname, compare in bounds.items():
        if cname in cons:
            add(cname, functools.partial(compare, b=cons[cname]))
    return checks


_VALUE_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "pattern": lambda v, b: isinstance(v, str) and re.fullmatch(b, v) is not None,
    "enum": lambda v, b: v in b,
    "minimum": lambda v, b: v >= b,
    "maximum": lambda v, b: v <= b,
    "exclusiveMinimum": lambda v, b: v > b,
    "exclusiveMaximum": lambda v, b: v < b,
    "minLength": lambda v, b: len(v) >= b,
    "maxLength": lambda v, b: len(v) <= b,
}


def value_checks(field: dict[str, Any]) -> list[tuple[str, Callable[[Any], bool]]]:
    """The checks of `_checks` as (name, test of one non-null value) pairs, for rows checked
    without pandas (`validate.check_rows`); an optional string's "" passes them all."""
    cons = field.get("constraints", {})
    checks: list[tuple[str, Callable[[Any], bool]]] = []
    if _field_type(field) == "string" and cons.get("required"):
        checks.append(("required", lambda v: len(v) > 0))
    for cname, test in _VALUE_TESTS.items():
        if cname in cons:
            checks.append((cname, functools.partial(test, b=cons[cname])))
    return checks


def nullable(field: dict[str, Any]) -> bool:
    """Whether the field may hold null: an optional field that is not a string (optional
    strings hold "" instead)."""
    required = bool(field.get("constraints", {}).get("required"))
    return not required and _field_type(field) != "string"


def pandera_schema(name: str) -> pa.DataFrameSchema:
    """pandera schema of table `name`, derived from its Table Schema.

    Columns are strict and ordered as in the schema. Integer and number columns are coerced
    (``int64`` → ``Int64``, ``int`` → ``float64``); strings and booleans are not. Each constraint
    becomes a check named after it (``required``, ``pattern``, ``enum``, ``minimum``, …).
    """
    import pandera.pandas as pa

    descriptor = _read_schema(name)
    key = primary_key(name)
    columns = {}
    for field in descriptor["fields"]:
        ftype = _field_type(field)
        cons = field.get("constraints", {})
        required = bool(cons.get("required"))
        columns[field["name"]] = pa.Column(
            _PANDAS_DTYPES[ftype] if ftype != "boolean" or required else "boolean",
            checks=_checks(field),
            nullable=nullable(field),
            unique=bool(cons.get("unique")) or key == [field["name"]],
            coerce=ftype in ("integer", "number"),
            description=field.get("description"),
            title=field.get("title"),
        )
    return pa.DataFrameSchema(
        columns,
        strict=True,
        ordered=True,
        unique=key if len(key) > 1 else None,
        name=name,
        title=descriptor.get("title"),
        description=descriptor.get("description"),
    )


def _cast(field: dict[str, Any], column: pd.Series) -> pd.Series:
    ftype = _field_type(field)
    if ftype == "boolean":
        return column.astype("boolean" if column.isna().any() else bool)
    return column.astype(_PANDAS_DTYPES[ftype])


def conform(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the schema's columns, in schema order, cast to the schema's dtypes.

    No checks: values that cannot be cast raise. Use it on validated tables (as `load_duckdb`
    and `publish` do) or on fresh rows (see `to_frame`).
    """
    out = frame.loc[:, field_names(name)].reset_index(drop=True)
    for field in _read_schema(name)["fields"]:
        out[field["name"]] = _cast(field, out[field["name"]])
    return out


def to_frame(name: str, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A DataFrame of table `name` from row dicts: schema columns and dtypes, even with no rows."""
    import pandas as pd

    return conform(name, pd.DataFrame.from_records(list(rows), columns=field_names(name)))


EXACT_INT = 2**53
"""Floats below this in magnitude are exact: integral ones are published as integers."""


def json_value(value: Any, ftype: str, na: Any = None) -> Any:
    """A cell of a field of type `ftype` as a JSON value: None for nulls (``na``: pandas' NA),
    int for integral numbers. Raises ValueError for what the type cannot hold."""
    if value is None or value is na or (isinstance(value, float) and math.isnan(value)):
        return None
    if ftype == "integer":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"cannot hold the non-integral {value!r} in an integer field")
        return int(value)
    if ftype == "number":
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"cannot publish the non-finite number {number!r}")
        return int(number) if number.is_integer() and abs(number) < EXACT_INT else number
    if ftype == "boolean":
        return bool(value)
    return str(value)


def _last_if_null(value: Any) -> tuple[bool, Any]:
    return (True, 0) if value is None else (False, value)


def conform_rows(
    name: str, rows: Iterable[Mapping[str, Any]], *, sort: bool = True
) -> list[dict[str, Any]]:
    """Rows of table `name` as JSON-ready dicts: schema fields in order (a missing one is
    null), values cast to their field's type, sorted by the primary key (nulls last) unless
    `sort` is false.

    What `to_frame` and `publish.table_rows` make of the same rows, without pandas: a run
    that replaces a few reports' rows never imports it (tests/test_schema_validate.py)."""
    specs = [(f["name"], _field_type(f)) for f in _read_schema(name)["fields"]]
    out = [{n: json_value(row.get(n), t) for n, t in specs} for row in rows]
    key = primary_key(name)
    if key and sort:
        out.sort(key=lambda row: tuple(_last_if_null(row[k]) for k in key))
    return out


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes, inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal in single quotes, inner quotes doubled."""
    return "'" + text.replace("'", "''") + "'"
