"""`reportdata extract`: the figures of one file, printed for people or programs."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from pathlib import Path

from reportdata import read as _read
from reportdata.project import slug
from reportdata.tables import GUIDE_COLUMNS, DocumentInfo, rows_from_bytes

COLUMNS = (*GUIDE_COLUMNS, "sentence", "char_start", "char_end")


def extract_file(path: Path, published: str = "") -> list[dict]:
    """Indicator rows of one report file, columns in the extraction guide's names."""
    data = _read.read_file(path, str(path))
    m = re.match(r"\d{4}", published or "")
    info = DocumentInfo(
        document_id=slug(path.name),
        dataset="",
        title="",
        publisher="",
        area="",
        licence="",
        origin=str(path),
        raw_sha256=hashlib.sha256(data).hexdigest(),
        published_year=int(m.group(0)) if m else None,
    )
    rows = rows_from_bytes(info, data, path.name)["indicators"]
    return [{c: r[c] for c in COLUMNS} for r in rows]


def _plain(value: object) -> object:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def print_rows(rows: list[dict], fmt: str) -> None:
    """Print rows as a table, JSON Lines or CSV on stdout."""
    out = sys.stdout
    if fmt == "jsonl":
        for r in rows:
            out.write(json.dumps({k: _plain(v) for k, v in r.items()}, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _plain(v) for k, v in r.items()})
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False, title=f"{len(rows)} figures")
        for c in GUIDE_COLUMNS:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*(str(_plain(r[c])) for c in GUIDE_COLUMNS))
        console = Console()
        if not console.is_terminal:
            console = Console(width=200)
        console.print(table)
