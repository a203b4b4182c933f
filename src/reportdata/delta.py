"""A new version made from the previous one and the rows of the sources that changed.

When only a few sources of a dataset changed, their rows replace theirs in the previous
version and every other row is kept byte for byte: the previous version's CSV and JSON files
are split into rows (one JSON object a line; CSV rows end at a newline outside quotes), the
changed sources' rows are rendered by the same code as a whole version, and the two sets are
merged in primary-key order. The files are the same bytes a whole re-render would give
(tests compare both ways).

What makes the kept rows trustworthy: the previous version's files must hash to what its
``datapackage.json`` says, its table schemas must be today's, and every row of it was
validated when it was published. Checks that span rows of several sources (primary keys and
unique fields) are run over the merged table here; the other checks hold row by row or within
one source (a figure and its section belong to one document), so validating the changed
sources' rows is enough.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from reportdata.errors import PublishError, ValidationFailed
from reportdata.fsutil import file_stamp
from reportdata.schema import TABLES, field_names, fields, primary_key

SOURCE_FIELD = "document_id"
INDEX = ".blocks.json"
"""A hidden file in a version folder saying where each source's rows lie in its tables (see
`block_index`), so that building the next version on it need not scan its files."""

Row = tuple[tuple[str, ...], str, bytes, bytes]
"""One row of a table: its primary key, its source (document_id), its CSV line and its JSON
line (each without the separator that follows it)."""


class DeltaUnusable(PublishError):
    """The previous version cannot be the base of a new one; the message says why (a run
    that meets it after reading the base stops with that sentence, publishing nothing)."""


_STRING = rb'"(?:[^"\\]++|\\.)*+"'  # a JSON string literal, escapes included
# A CSV record as `publish.render_csv` writes it: unquoted runs and quoted cells (a doubled quote
# is two quoted runs side by side), ending at a newline outside quotes.
_CSV_RECORD = re.compile(rb'(?:[^"\n]++|"[^"]*+")*+\n')


def _field_re(name: str) -> re.Pattern[bytes]:
    """A string field of a row written by ``json.dumps`` (``", "`` and ``": "`` separators): a
    quotation mark inside a string is always escaped, so ``, "name": "`` is only ever a key."""
    return re.compile(rb'(?:^\{|, )"' + re.escape(name.encode()) + rb'": (' + _STRING + rb")")


def _head_re(name: str, wanted: list[str]) -> re.Pattern[bytes] | None:
    """A row line of the JSON file whose leading fields, up to the last of ``wanted``, are
    strings: one scan of the file finds every row and those fields; None when other fields
    come first."""
    specs = fields(name)
    names = [f["name"] for f in specs]
    last = max(names.index(w) for w in wanted)
    if any(f.get("type", "string") != "string" for f in specs[: last + 1]):
        return None
    parts = [rb'"' + re.escape(n.encode()) + rb'": (' + _STRING + rb")" for n in names[: last + 1]]
    return re.compile(rb"^(\{" + rb", ".join(parts) + rb"[^\n]*\})", re.MULTILINE)


def _text(literal: bytes) -> str:
    """A JSON string literal's value (most hold no escape)."""
    return literal[1:-1].decode("utf-8") if b"\\" not in literal else json.loads(literal)


def split_json_rows(data: bytes) -> list[bytes]:
    """The rows of a table's JSON file (an array with one row object a line)."""
    if data == b"[]\n":
        return []
    if not (data.startswith(b"[\n") and data.endswith(b"\n]\n")):
        raise DeltaUnusable("its JSON file is not one row a line")
    lines = data[2:-3].split(b"\n")
    return [line[:-1] for line in lines[:-1]] + [lines[-1]]


def split_csv_rows(data: bytes) -> tuple[bytes, list[bytes]]:
    """The header line and the row lines (without their newline) of a CSV file written by
    `publish.render_csv`: a row ends at a newline outside quotes."""
    records = _CSV_RECORD.findall(data)
    if not records or sum(map(len, records)) != len(data):
        raise DeltaUnusable("its CSV file is not made of complete records")
    return records[0][:-1], [r[:-1] for r in records[1:]]


def table_records(name: str, csv_bytes: bytes, json_bytes: bytes) -> list[Row]:
    """A rendered table (CSV and JSON bytes of the same rows) as rows with key and source."""
    _, csv_rows = split_csv_rows(csv_bytes)
    key = primary_key(name)
    names = field_names(name)
    head = _head_re(name, [*key, SOURCE_FIELD])
    if head is not None and json_bytes.startswith(b"[\n") and json_bytes.endswith(b"\n]\n"):
        at = [names.index(k) + 2 for k in key]
        found = [m.group(1, *at, names.index(SOURCE_FIELD) + 2) for m in head.finditer(json_bytes)]
        if len(found) != json_bytes.count(b"\n") - 2:
            raise DeltaUnusable(f"its {name} JSON file is not one row a line")
        if len(at) == 1:
            parsed = [((_text(g[1]),), _text(g[2]), g[0]) for g in found]
        else:
            parsed = [(tuple(map(_text, g[1:-1])), _text(g[-1]), g[0]) for g in found]
    else:  # fields in another order: look for each in each row
        finders = [_field_re(k) for k in (*key, SOURCE_FIELD)]
        parsed = []
        for line in split_json_rows(json_bytes):
            matches = [f.search(line) for f in finders]
            if any(m is None for m in matches):
                raise DeltaUnusable(f"a {name} row has no key or source")
            *values, source = (_text(m.group(1)) for m in matches)  # type: ignore[union-attr]
            parsed.append((tuple(values), source, line))
    if len(csv_rows) != len(parsed):
        raise DeltaUnusable(f"its {name} CSV and JSON files hold different numbers of rows")
    return [(k, src, c, j) for (k, src, j), c in zip(parsed, csv_rows, strict=True)]


def usable_schema(name: str) -> bool:
    """Rows are merged by their key as text (every key field a string, no unique field
    outside the key) and replaced by their source (a document_id field)."""
    types = {f["name"]: f.get("type", "string") for f in fields(name)}
    key = primary_key(name)
    unique = {f["name"] for f in fields(name) if f.get("constraints", {}).get("unique")}
    keyed = bool(key) and all(types.get(k) == "string" for k in key)
    return keyed and unique <= set(key) and SOURCE_FIELD in types


@dataclass(frozen=True)
class Block:
    """Consecutive rows of one source in a table, in key order: their first and last keys,
    their CSV lines (each ending with a newline) and JSON lines (joined by ``,\\n``)."""

    source: str
    first: tuple[str, ...]
    last: tuple[str, ...]
    csv: bytes | memoryview
    json: bytes | memoryview
    count: int


def _blocks(name: str, csv_bytes: bytes, json_bytes: bytes) -> list[Block] | None:
    """The table as one block a source, when each source's rows lie together and the blocks
    follow each other in key order (as ids made of the source id and a suffix do); None when
    rows must be merged one by one. One scan of each file; only each block's first and last
    keys are decoded."""
    key = primary_key(name)
    names = field_names(name)
    head = _head_re(name, [*key, SOURCE_FIELD])
    if head is None or not (json_bytes.startswith(b"[\n") and json_bytes.endswith(b"\n]\n")):
        return None
    lengths = [len(r) for r in _CSV_RECORD.findall(csv_bytes)]
    if sum(lengths) != len(csv_bytes):
        raise DeltaUnusable(f"its {name} CSV file is not made of complete records")
    ends = list(itertools.accumulate(lengths))  # ends[i]: where row i (0: the header) ends
    key_at = [names.index(k) + 2 for k in key]
    source_at = names.index(SOURCE_FIELD) + 2
    csv_view, json_view = memoryview(csv_bytes), memoryview(json_bytes)
    blocks: list[Block] = []
    seen: set[bytes] = set()
    run: list[Any] = []  # the open block: source literal, first match, last match, first row

    def close(row: int) -> None:
        literal, first, last, start = run
        blocks.append(
            Block(
                _text(literal),
                tuple(_text(first.group(i)) for i in key_at),
                tuple(_text(last.group(i)) for i in key_at),
                csv_view[ends[start] : ends[row]],
                json_view[first.start(1) : last.end(1)],
                row - start,
            )
        )

    row = 0
    for row, found in enumerate(head.finditer(json_bytes)):
        literal = found.group(source_at)
        if run and literal == run[0]:
            run[2] = found
            continue
        if run:
            close(row)
        if literal in seen:
            return None  # a source's rows apart: merge row by row
        seen.add(literal)
        run = [literal, found, found, row]
    count = row + 1 if run else 0
    if count != json_bytes.count(b"\n") - 2 or count != len(ends) - 1:
        raise DeltaUnusable(f"its {name} JSON file is not one row a line")
    if run:
        close(count)
    if any(a.last >= b.first for a, b in itertools.pairwise(blocks)):
        return None
    return blocks


@dataclass
class BaseTable:
    """One table of the base version: its files, and its rows as blocks or one by one."""

    name: str
    header: bytes
    csv: bytes
    json: bytes
    blocks: list[Block] | None
    _rows: list[Row] | None = None

    def rows(self) -> list[Row]:
        """Every row with its key and source (parsed on first use)."""
        if self._rows is None:
            self._rows = table_records(self.name, self.csv, self.json)
        return self._rows

    def sources(self) -> set[str]:
        if self.blocks is not None:
            return {b.source for b in self.blocks}
        return {r[1] for r in self.rows()}

    def lines_of(self, sources: set[str]) -> list[bytes]:
        """The JSON lines of these sources' rows."""
        if self.blocks is not None:
            return [
                line
                for b in self.blocks
                if b.source in sources
                for line in bytes(b.json).split(b",\n")
            ]
        return [r[3] for r in self.rows() if r[1] in sources]


@dataclass
class BaseVersion:
    """A published version read as rows, the base of the next version."""

    version: str
    descriptor: dict[str, Any]
    tables: dict[str, BaseTable]

    def sources(self) -> set[str]:
        """The sources (document ids) that have rows in this version."""
        return set().union(*(t.sources() for t in self.tables.values()))

    def rows_of(self, sources: set[str]) -> dict[str, list[dict[str, Any]]]:
        """The rows of these sources, parsed, table by table."""
        return {
            name: [json.loads(line) for line in self.tables[name].lines_of(sources)]
            for name in TABLES
        }


def _read_stamped(path: Path) -> tuple[bytes, list[int]]:
    with open(path, "rb") as fh:
        return fh.read(), file_stamp(os.fstat(fh.fileno()))


def read_version(
    folder: Path, schemas: Mapping[str, dict[str, Any]], stamps: Mapping[str, Any] | None = None
) -> BaseVersion:
    """Read a version folder as rows; DeltaUnusable when its files differ from what its
    datapackage.json says or its table schemas from ``schemas`` (today's inline schemas).

    ``stamps`` (file name → `file_stamp`) are those of the files when the publisher had just
    written and checked them: while datapackage.json keeps its stamp, a file whose stamp is
    the same is not hashed again, and when the index and both files of a table are, the
    index's blocks are taken as written. A file changed since, or without a stamp, is
    checked in full."""
    try:
        data, stamp = _read_stamped(folder / "datapackage.json")
        descriptor = json.loads(data.decode("utf-8"))
        resources = {r["name"]: r for r in descriptor["resources"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeltaUnusable(f"its datapackage.json cannot be read ({exc})") from exc
    if not stamps or stamps.get("datapackage.json") != stamp:
        stamps = {}  # a descriptor changed since: every file is checked against it
    index, index_known = _read_index(folder, stamps)
    tables: dict[str, BaseTable] = {}
    for name in TABLES:
        if not usable_schema(name):
            raise DeltaUnusable(f"table {name} has no text key to merge rows by")
        table, as_json = resources.get(name), resources.get(f"{name}-json")
        if table is None or as_json is None or table.get("schema") != schemas[name]:
            raise DeltaUnusable(f"its {name} table is not described as today's schema")
        data = {}
        known = index_known
        for resource in (table, as_json):
            path = folder / str(resource.get("path"))
            try:
                content, stamp = _read_stamped(path)
            except OSError as exc:
                raise DeltaUnusable(f"{path.name} cannot be read ({exc})") from exc
            unchanged = stamps.get(str(resource.get("path"))) == stamp
            if len(content) != resource.get("bytes") or not (
                unchanged or "sha256:" + hashlib.sha256(content).hexdigest() == resource.get("hash")
            ):
                raise DeltaUnusable(f"{path.name} differs from its datapackage.json")
            known = known and unchanged
            data[resource["format"]] = content
        csv_bytes, json_bytes = data["csv"], data["json"]
        header = csv_bytes[: csv_bytes.find(b"\n")]
        entry = index.get(name)
        blocks = _recorded_blocks(csv_bytes, json_bytes, entry) if known else None
        if blocks is None:
            blocks = _indexed_blocks(name, csv_bytes, json_bytes, entry)
        if blocks is None:
            blocks = _blocks(name, csv_bytes, json_bytes)
        tables[name] = BaseTable(name, header, csv_bytes, json_bytes, blocks)
        if blocks is None:
            tables[name].rows()  # parse now: a base that cannot be read fails here
    return BaseVersion(folder.name, descriptor, tables)


def block_index(
    tables: Mapping[str, tuple[bytes, bytes]], blocks: Mapping[str, list[Block] | None]
) -> bytes:
    """The `INDEX` file of a version: for each table, its files' sizes and its blocks (source,
    first and last key, CSV and JSON byte lengths, rows). ``blocks`` are those `splice` made;
    a table without (a whole version, or rows merged one by one) is scanned for them here.
    A table whose rows are not in blocks is left out."""
    entries = {}
    for name, (csv_bytes, json_bytes) in tables.items():
        found = blocks.get(name)
        if found is None:
            found = _blocks(name, csv_bytes, json_bytes)
        if found is None:
            continue
        entries[name] = {
            "csv_bytes": len(csv_bytes),
            "json_bytes": len(json_bytes),
            "blocks": [
                [b.source, list(b.first), list(b.last), len(b.csv), len(b.json), b.count]
                for b in found
            ],
        }
    return json.dumps({"format": 1, "tables": entries}, ensure_ascii=False).encode("utf-8")


def _read_index(folder: Path, stamps: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The tables of a version's `INDEX` file (empty when it has none or it cannot be read),
    and whether the file is as stamped when it was written."""
    try:
        data, stamp = _read_stamped(folder / INDEX)
        index = json.loads(data)
    except (OSError, ValueError, RecursionError):
        return {}, False
    if not isinstance(index, dict) or index.get("format") != 1:
        return {}, False
    tables = index.get("tables")
    return (tables, stamps.get(INDEX) == stamp) if isinstance(tables, dict) else ({}, False)


def _recorded_blocks(csv_bytes: bytes, json_bytes: bytes, entry: Any) -> list[Block] | None:
    """The table's blocks as its `INDEX` entry tells them, for files unchanged since the
    publisher wrote them with that index: only what costs nothing a byte is checked (the
    blocks cover the files, each CSV part ends a line, each JSON part ends a row followed by
    a separator); None when anything disagrees."""
    csv_view, json_view = memoryview(csv_bytes), memoryview(json_bytes)
    csv_at, json_at = csv_bytes.find(b"\n") + 1, 2
    blocks: list[Block] = []
    try:
        if entry["csv_bytes"] != len(csv_bytes) or entry["json_bytes"] != len(json_bytes):
            return None
        for source, first, last, csv_length, json_length, count in entry["blocks"]:
            if not all(type(n) is int and n > 0 for n in (csv_length, json_length, count)):
                return None
            csv_end, json_end = csv_at + csv_length, json_at + json_length
            if (
                csv_bytes[csv_end - 1 : csv_end] != b"\n"
                or json_bytes[json_end - 1 : json_end] != b"}"
            ):
                return None
            if json_bytes[json_end : json_end + 2] not in (b",\n", b"\n]"):
                return None
            csv_part, json_part = csv_view[csv_at:csv_end], json_view[json_at:json_end]
            blocks.append(Block(str(source), tuple(first), tuple(last), csv_part, json_part, count))
            csv_at, json_at = csv_end, json_end + 2
    except (KeyError, TypeError, ValueError):
        return None
    if not blocks or csv_at != len(csv_bytes) or json_at + 1 != len(json_bytes):
        return None
    return blocks


def _indexed_blocks(
    name: str, csv_bytes: bytes, json_bytes: bytes, entry: Any
) -> list[Block] | None:
    """The table's blocks as its `INDEX` entry tells them, each checked against the files:
    the blocks cover both files exactly; each holds as many JSON lines as it says, every one
    of its source; its first and last JSON rows and its first CSV row begin with its keys
    and source (a row's leading fields, as today's schemas put them). None (scan instead)
    when anything disagrees."""
    key = primary_key(name)
    names = field_names(name)
    leading = names[: max(names.index(n) for n in (*key, SOURCE_FIELD)) + 1]
    if not isinstance(entry, dict) or set(leading) != {*key, SOURCE_FIELD}:
        return None
    if entry.get("csv_bytes") != len(csv_bytes) or entry.get("json_bytes") != len(json_bytes):
        return None
    csv_view, json_view = memoryview(csv_bytes), memoryview(json_bytes)
    csv_at, json_at = csv_bytes.find(b"\n") + 1, 2
    blocks: list[Block] = []
    try:
        for source, first, last, csv_length, json_length, count in entry["blocks"]:
            end = json_at + json_length
            last_at = json_bytes.rfind(b"\n", json_at, end) + 1 or json_at
            if count < 1 or json_length < 2 or json_bytes[end - 1 : end] != b"}":
                return None
            if json_bytes.count(b"\n", json_at, end) + 1 != count:
                return None
            if json_bytes.count(source_field(source), json_at, end) != count:
                return None  # a row of another source inside the block
            first_values = _leading_values(key, first, source, leading)
            for at, values in ((json_at, first_values), (last_at, None)):
                values = values or _leading_values(key, last, source, leading)
                if values is None or not json_bytes.startswith(_json_start(leading, values), at):
                    return None
            csv_part = csv_view[csv_at : csv_at + csv_length]
            if csv_length < 1 or csv_part[-1:] != b"\n":
                return None
            if not csv_bytes.startswith(_csv_start(first_values), csv_at):  # checked above
                return None
            if json_view[end : end + 2] != (b",\n" if end + 3 < len(json_bytes) else b"\n]"):
                return None
            blocks.append(
                Block(source, tuple(first), tuple(last), csv_part, json_view[json_at:end], count)
            )
            csv_at, json_at = csv_at + csv_length, end + 2
    except (KeyError, TypeError, ValueError):
        return None
    if not blocks or csv_at != len(csv_bytes) or json_at + 1 != len(json_bytes):
        return None
    if any(a.last >= b.first for a, b in itertools.pairwise(blocks)):
        return None
    return blocks


def _leading_values(key: list[str], keys: Any, source: Any, leading: list[str]) -> list[str] | None:
    """The values of a row's leading fields from an index's keys and source; None when they
    disagree (a key that is the source field itself). Values that are not text make the
    encoders below raise TypeError."""
    if len(keys) != len(key):
        return None
    values = dict(zip(key, keys, strict=True))
    if values.setdefault(SOURCE_FIELD, source) != source:
        return None
    return [values[n] for n in leading]


def _json_start(leading: list[str], values: list[str]) -> bytes:
    """How `render_json` begins a row whose leading fields hold these values."""
    pairs = (f'"{n}": {encode_basestring(v)}' for n, v in zip(leading, values, strict=True))
    return ("{" + ", ".join(pairs)).encode("utf-8")


_CSV_SPECIAL = re.compile(r'[,"\r\n]')


def _csv_start(values: list[str] | None) -> bytes:
    """How `publish.render_csv` begins a row whose leading fields hold these values (more
    fields follow)."""
    if values is None:
        return b"\n"  # never the start of a row
    if any(not v or _CSV_SPECIAL.search(v) for v in values):
        out = io.StringIO(newline="")
        csv.writer(out, lineterminator="\n").writerow([*values, "x"])  # x: a field after
        return out.getvalue()[:-2].encode("utf-8")
    return (",".join(values) + ",").encode("utf-8")


def source_field(source: str) -> bytes:
    """The source field as `render_json` writes it in a row: ``"document_id": "…"``. A
    quotation mark inside a string is always escaped, so these bytes followed by ``,`` or
    ``}`` are only ever that field."""
    return f'"{SOURCE_FIELD}": {encode_basestring(source)}'.encode()


def join_json(lines: list[bytes | memoryview]) -> bytes:
    """A JSON array of row lines, copied once."""
    if not lines:
        return b"[]\n"
    parts: list[bytes | memoryview] = [b"[\n"]
    for line in lines:
        parts += (line, b",\n")
    parts[-1] = b"\n]\n"
    return b"".join(parts)


def splice(
    base: BaseVersion, replaced: set[str], new: Mapping[str, tuple[bytes, bytes]]
) -> tuple[dict[str, tuple[bytes, bytes]], dict[str, int], dict[str, list[Block] | None]]:
    """Each table's CSV and JSON bytes, its row count and its blocks (None when its rows were
    merged one by one): the base's rows but those of the ``replaced`` sources, and the ``new``
    rows (rendered tables of those sources), in primary-key order.

    Raises ValidationFailed when a key (the only unique field, see `usable_schema`) then
    occurs twice: rows of different sources may collide only in the merged table.
    """
    out: dict[str, tuple[bytes, bytes]] = {}
    counts: dict[str, int] = {}
    made: dict[str, list[Block] | None] = {}
    for name in TABLES:
        table = base.tables[name]
        header, _ = split_csv_rows(new[name][0])
        if header != table.header:
            raise DeltaUnusable(f"the {name} header differs from the base version's")
        fresh = table_records(name, *new[name])
        stray = {r[1] for r in fresh} - replaced
        if stray:
            raise ValueError(f"new {name} rows of sources not replaced: {sorted(stray)[:3]}")
        blocks = made[name] = _merge_blocks(table, replaced, fresh)
        if blocks is not None:
            csv_bytes = b"".join([header, b"\n", *(b.csv for b in blocks)])
            json_bytes = join_json([b.json for b in blocks])
            out[name], counts[name] = (csv_bytes, json_bytes), sum(b.count for b in blocks)
            continue
        merged = [r for r in table.rows() if r[1] not in replaced] + fresh
        merged.sort(key=lambda r: r[0])
        _unique_keys(name, merged)
        csv_bytes = header + b"\n" + b"".join(r[2] + b"\n" for r in merged)
        out[name] = (csv_bytes, join_json([r[3] for r in merged]))
        counts[name] = len(merged)
    return out, counts, made


def _merge_blocks(table: BaseTable, replaced: set[str], fresh: list[Row]) -> list[Block] | None:
    """The kept blocks and the new rows' blocks in key order, when they follow each other
    without overlapping (then every key is unique); None to merge row by row."""
    if table.blocks is None:
        return None
    fresh = sorted(fresh, key=lambda r: r[0])
    new: list[Block] = []
    for source, group in itertools.groupby(fresh, key=lambda r: r[1]):
        rows = list(group)
        csv_part = b"".join(r[2] + b"\n" for r in rows)
        json_part = b",\n".join(r[3] for r in rows)
        new.append(Block(source, rows[0][0], rows[-1][0], csv_part, json_part, len(rows)))
    if len({b.source for b in new}) != len(new):
        return None  # a source's new rows apart
    if any(a[0] >= b[0] for a, b in itertools.pairwise(fresh)):
        return None  # a repeated key: the row-by-row merge names it
    blocks = sorted([b for b in table.blocks if b.source not in replaced] + new, key=_first)
    if any(a.last >= b.first for a, b in itertools.pairwise(blocks)):
        return None
    return blocks


def _first(block: Block) -> tuple[str, ...]:
    return block.first


def _unique_keys(name: str, ordered: list[Row]) -> None:
    repeated = [a[0] for a, b in itertools.pairwise(ordered) if a[0] == b[0]]
    if repeated:
        key = "/".join(repeated[0])
        raise ValidationFailed(
            f"Nothing was published: {name} key {key!r} occurs more than once "
            f"({len(repeated)} repeated keys when the changed sources' rows joined the others)."
        )
