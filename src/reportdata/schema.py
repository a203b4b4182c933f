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
            nullable=not required and ftype != "string",
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


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes, inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal in single quotes, inner quotes doubled."""
    return "'" + text.replace("'", "''") + "'"
