"""Load the tables into a DuckDB file, written atomically."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pandas as pd

from reportdata.fsutil import fsync_dir
from reportdata.schema import TABLES, conform, duckdb_ddl, field_names, quote_ident


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _ordered(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"unknown tables {unknown}; expected some of {', '.join(TABLES)}")
    return [name for name in TABLES if name in tables]


def load_duckdb(tables: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Write `tables` to a fresh DuckDB file at `path`, replacing it atomically.

    Tables are created from the schema DDL (types, NOT NULL, primary keys, comments) and filled
    by registering each DataFrame and inserting from it in one statement.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    wal = tmp.with_name(tmp.name + ".wal")
    try:
        con = duckdb.connect(str(tmp))
        try:
            for name in _ordered(tables):
                for statement in duckdb_ddl(name):
                    con.execute(statement)
                view = f"_reportdata_src_{name}"
                con.register(view, conform(name, tables[name]))
                columns = ", ".join(quote_ident(c) for c in field_names(name))
                con.execute(
                    f"INSERT INTO {quote_ident(name)} ({columns}) "
                    f"SELECT {columns} FROM {quote_ident(view)}"
                )
                con.unregister(view)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        _fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        for leftover in (tmp, wal):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return path
