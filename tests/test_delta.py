"""A version built on the previous one (`reportdata.delta`) is the version a whole re-render
gives, byte for byte, and refuses a base it cannot trust."""

from __future__ import annotations

import json
import random
import re
import shutil
import sys
from hashlib import sha256
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest
from _helpers import files_under

from reportdata import pipeline
from reportdata.catalog import count_rows
from reportdata.delta import DeltaUnusable, split_csv_rows, split_json_rows
from reportdata.errors import PublishError, ValidationFailed
from reportdata.publish import DatasetInfo, publish, read_base, render_csv, render_json
from reportdata.read import read_bytes
from reportdata.tables import DocumentInfo, build_rows
from reportdata.warehouse import build_warehouse

INFO = DatasetInfo(name="county", title="某县报告", licenses=[{"name": "CC0-1.0"}])
CREATED = "2026-01-02T03:04:05Z"


def _text(n: int, twist: str = "") -> str:
    """A short report written for the tests; quotes, commas and line breaks in its cells."""
    return (
        f"某县第{n}号简报{twist}\n\n一、经济\n\n"
        f'全县实现"地区生产总值"{100 + n}.5亿元,新增市场主体{2000 + n}户。\n\n'
        f"二、民生\n\n城镇新增就业{3000 + n}人,新建养老服务站{n + 2}个。\n"
    )


def _rows(doc: str, text: str) -> dict[str, list[dict]]:
    origin = f"https://example.org/{doc}.txt"
    info = DocumentInfo(doc, "county", f"简报 {doc}", "某县", "某县", "CC0-1.0", origin, "0" * 64)
    return build_rows(info, read_bytes(text.encode("utf-8"), "text"))


def _publish_whole(root: Path, docs: dict[str, str]):
    parts = [_rows(d, t) for d, t in sorted(docs.items())]
    return publish(pipeline.frames(pipeline.merge(parts)), INFO, root, created=CREATED)


def _publish_spliced(root: Path, docs: dict[str, str], replaced: set[str], as_rows=False):
    """A version built on the newest one; `as_rows`: the new rows as row dicts, as a run
    hands them over (DataFrames otherwise)."""
    base = read_base(root, "county", _newest(root))
    parts = [_rows(d, t) for d, t in sorted(docs.items()) if d in replaced]
    tables = (pipeline.conformed if as_rows else pipeline.frames)(pipeline.merge(parts))
    return publish(tables, INFO, root, created=CREATED, base=base, replaced=replaced)


def _query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(sql).fetchall()


def _newest(root: Path) -> str:
    return json.loads((root / "county" / "latest.json").read_text("utf-8"))["version"]


def _version_files(root: Path) -> dict[str, bytes]:
    """Every published file but the DuckDB file (DuckDB writes a random id into it), its
    build's memo and the pages' memo (which hold file stamps)."""
    skip = (".duckdb", ".wal", ".duckdb.memo.json", ".pages.json")
    return {k: v for k, v in files_under(root).items() if not k.endswith(skip)}


@pytest.mark.parametrize(("seed", "as_rows"), [(1, False), (2, True), (3, True)])
def test_a_spliced_version_is_byte_for_byte_the_whole_one(tmp_path, seed, as_rows):
    rng = random.Random(seed)
    first = {f"b{n:03d}": _text(n) for n in rng.sample(range(1, 400), 12)}
    whole, spliced = tmp_path / "whole", tmp_path / "spliced"
    _publish_whole(whole, first)
    shutil.copytree(whole, spliced)
    tables = read_base(spliced, "county", "1.0.0").tables.values()
    assert all(t.blocks is not None for t in tables)  # one block a source: no row parsed

    docs = dict(first)
    ids = sorted(docs)
    changed = set(rng.sample(ids, 2))
    gone = {rng.choice(sorted(set(ids) - changed))}
    for d in changed:
        docs[d] = _text(rng.randrange(400, 900), twist=",又一期")
    for d in gone:
        del docs[d]
    added = {f"b{n:03d}x" for n in rng.sample(range(1, 400), 2)}  # sorts between others
    for d in added:
        docs[d] = _text(rng.randrange(1, 99))

    a = _publish_whole(whole, docs)
    b = _publish_spliced(spliced, docs, changed | gone | added, as_rows)
    assert (a.version, a.new) == (b.version, b.new) == ("2.0.0", True)  # a source removed
    assert a.counts == b.counts and a.counts["documents"] == len(docs)
    assert _version_files(whole) == _version_files(spliced)
    catalog = json.loads((spliced / "catalog.json").read_text("utf-8"))
    (entry,) = [v for v in catalog["datasets"][0]["versions"] if v["version"] == "2.0.0"]
    for res in entry["resources"]:  # counts, sizes and hashes the publisher gave are the files'
        data = (spliced / res["path"]).read_bytes()
        assert (res["bytes"], res["hash"]) == (len(data), f"sha256:{sha256(data).hexdigest()}")
        if "rows" in res:
            assert res["rows"] == count_rows(spliced / res["path"], res["format"]), res["path"]
    # the DuckDB file each publish appended to (from the bytes in memory) holds what a
    # rebuild from the version folders does
    rebuilt = tmp_path / "rebuilt" / "county"
    shutil.copytree(spliced / "county", rebuilt, ignore=shutil.ignore_patterns("*.duckdb*"))
    for name in ("documents", "sections", "indicators"):
        sql = f"SELECT * FROM {name}_history ORDER BY ALL"
        appended = _query(spliced / "county" / "county.duckdb", sql)
        assert appended == _query(build_warehouse(rebuilt, "county"), sql)
        assert appended == _query(whole / "county" / "county.duckdb", sql)
    changes = json.loads((spliced / "county/2.0.0/changes.json").read_text("utf-8"))
    assert changes["sources"] == {
        "added": sorted(added),
        "removed": sorted(gone),
        "changed": sorted(changed),
    }


def test_nothing_replaced_publishes_nothing_and_a_same_row_source_changes_nothing(tmp_path):
    docs = {f"b{n}": _text(n) for n in range(5)}
    _publish_whole(tmp_path, docs)
    before = _version_files(tmp_path)
    assert _publish_spliced(tmp_path, docs, set()).new is False
    assert _publish_spliced(tmp_path, docs, {"b2"}).new is False  # same rows again
    assert _version_files(tmp_path) == before


def test_a_metadata_change_alone_is_a_patch_with_the_same_tables(tmp_path):
    docs = {f"b{n}": _text(n) for n in range(3)}
    _publish_whole(tmp_path, docs)
    base = read_base(tmp_path, "county", "1.0.0")
    info = DatasetInfo(name="county", title="某县报告 (修订)", licenses=[{"name": "CC0-1.0"}])
    empty = pipeline.frames(pipeline.merge([]))
    result = publish(empty, info, tmp_path, created=CREATED, base=base, replaced=set())
    assert (result.version, result.new) == ("1.0.1", True)
    for name in ("documents", "sections", "indicators"):
        for ext in ("csv", "json"):
            old = (tmp_path / f"county/1.0.0/{name}.{ext}").read_bytes()
            assert (tmp_path / f"county/1.0.1/{name}.{ext}").read_bytes() == old


def test_rows_split_where_quoted_cells_hold_line_breaks_and_quotes():
    rows = [
        {
            "document_id": "a",
            "dataset": "county",
            "title": 'x"y,\nz',
            "text": '第一行\n"第二行",\n\n',
        },
        {"document_id": "b", "dataset": "county", "title": "plain", "text": "\u2028 line"},
    ]
    full = [{**_rows("a", _text(1))["documents"][0], **r} for r in rows]
    data = render_csv("documents", full)
    header, lines = split_csv_rows(data)
    assert header + b"\n" + b"".join(line + b"\n" for line in lines) == data
    assert len(lines) == 2 and lines[0].count(b"\n") == 4
    assert len(split_json_rows(render_json(full))) == 2
    assert split_json_rows(render_json([])) == []


def test_a_base_whose_files_were_altered_is_refused(tmp_path):
    _publish_whole(tmp_path, {f"b{n}": _text(n) for n in range(3)})
    path = tmp_path / "county/1.0.0/indicators.csv"
    path.write_bytes(path.read_bytes().replace(b"2001", b"2009"))
    with pytest.raises(DeltaUnusable, match=r"indicators\.csv differs"):
        read_base(tmp_path, "county", "1.0.0")


def test_a_base_with_another_schema_is_refused(tmp_path):
    _publish_whole(tmp_path, {"b1": _text(1)})
    path = tmp_path / "county/1.0.0/datapackage.json"
    descriptor = json.loads(path.read_text("utf-8"))
    descriptor["resources"][0]["schema"]["fields"][1]["description"] = "older words"
    path.write_text(json.dumps(descriptor), "utf-8")
    with pytest.raises(DeltaUnusable, match="documents table is not described"):
        read_base(tmp_path, "county", "1.0.0")


def test_a_version_published_meanwhile_stops_the_spliced_one(tmp_path):
    docs = {f"b{n}": _text(n) for n in range(3)}
    _publish_whole(tmp_path, docs)
    base = read_base(tmp_path, "county", "1.0.0")
    _publish_whole(tmp_path, {**docs, "b9": _text(9)})  # 1.1.0 appears
    tables = pipeline.frames(pipeline.merge([_rows("b1", _text(50))]))
    with pytest.raises(PublishError, match=r"appeared while this run built on version 1\.0\.0"):
        publish(tables, INFO, tmp_path, created=CREATED, base=base, replaced={"b1"})
    assert sorted(p.name for p in (tmp_path / "county").iterdir() if p.name[0].isdigit()) == [
        "1.0.0",
        "1.1.0",
    ]


def test_rows_that_collide_with_kept_rows_publish_nothing(tmp_path):
    docs = {f"b{n}": _text(n) for n in range(3)}
    _publish_whole(tmp_path, docs)
    before = _version_files(tmp_path)
    base = read_base(tmp_path, "county", "1.0.0")
    rows = _rows("b1", _text(40))
    clash = _rows("b2", _text(2))["indicators"][0]["indicator_id"]
    rows["indicators"][0]["indicator_id"] = clash  # b1's figure under a kept b2 key
    tables = pipeline.frames(rows)
    with pytest.raises(ValidationFailed, match=f"indicators key '{clash}' occurs more than once"):
        publish(tables, INFO, tmp_path, created=CREATED, base=base, replaced={"b1"})
    assert _version_files(tmp_path) == before


def test_the_new_rows_are_validated_by_frictionless(tmp_path, monkeypatch):
    """The spliced version's check runs Frictionless over the new rows: a value the pandas
    checks let through (patched out here) is caught there and nothing is published."""
    import reportdata.validate as validate

    docs = {f"b{n}": _text(n) for n in range(3)}
    _publish_whole(tmp_path, docs)
    before = _version_files(tmp_path)
    base = read_base(tmp_path, "county", "1.0.0")
    rows = _rows("b1", _text(41))
    rows["indicators"][0]["unit_family"] = "not-a-family"
    passed = validate.ValidationReport(ok=True)
    monkeypatch.setattr(validate, "check_tables", lambda tables: passed)
    with pytest.raises(ValidationFailed, match="frictionless"):
        publish(pipeline.frames(rows), INFO, tmp_path, created=CREATED, base=base, replaced={"b1"})
    assert _version_files(tmp_path) == before
    assert not [p for p in (tmp_path / "county").iterdir() if p.name.startswith(".tmp-")]


def test_the_changelog_takes_the_new_entry_on_top_and_is_rebuilt_when_it_lacks_one(tmp_path):
    from reportdata.changes import render_changelog
    from reportdata.publish import _changes_of, version_folders

    docs = {f"b{n}": _text(n) for n in range(3)}
    _publish_whole(tmp_path, docs)
    _publish_spliced(tmp_path, {**docs, "b1": _text(31)}, {"b1"})
    _publish_spliced(tmp_path, {**docs, "b1": _text(31), "b7": _text(7)}, {"b7"})
    folder = tmp_path / "county"
    versions = version_folders(folder)
    assert len(versions) == 3
    whole = render_changelog(INFO.title, _changes_of(folder, versions))
    path = folder / "CHANGELOG.md"
    assert path.read_text("utf-8") == whole  # entries put on top give the whole text

    # A changelog that lacks a middle version (written by hand, or half-restored) is rebuilt.
    lacking = whole.replace(f"## {versions[1]} ", "## 0.9.9 ")
    assert lacking != whole
    path.write_text(lacking, "utf-8")
    _publish_spliced(tmp_path, {**docs, "b1": _text(31), "b7": _text(8)}, {"b7"})
    versions = version_folders(folder)
    assert path.read_text("utf-8") == render_changelog(INFO.title, _changes_of(folder, versions))


def test_sources_whose_rows_interleave_in_key_order_are_merged_row_by_row(tmp_path, monkeypatch):
    """Ids of one source may sort between another's ("a-000012" < "a-1-000005" < "a-2-...");
    then rows are merged one by one, and the bytes are still the whole re-render's."""
    import reportdata.delta as delta

    real = _rows

    def interleaved(doc: str, text: str) -> dict[str, list[dict]]:
        rows = real(doc, text)
        if doc == "a":
            rows["indicators"][-1]["indicator_id"] = "a-2-000001"
        return rows

    monkeypatch.setattr(sys.modules[__name__], "_rows", interleaved)
    docs = {"a": _text(1), "a-1": _text(2), "b": _text(3)}
    whole, spliced = tmp_path / "whole", tmp_path / "spliced"
    _publish_whole(whole, docs)
    shutil.copytree(whole, spliced)
    base = read_base(spliced, "county", "1.0.0")
    assert base.tables["indicators"].blocks is None  # a's rows lie on both sides of a-1's
    assert base.tables["documents"].blocks is not None
    merged_by_rows = []
    real_rows = delta.BaseTable.rows
    monkeypatch.setattr(
        delta.BaseTable, "rows", lambda self: merged_by_rows.append(self.name) or real_rows(self)
    )
    docs = {**docs, "a-1": _text(20), "c": _text(4)}
    assert _publish_whole(whole, docs).new
    assert _publish_spliced(spliced, docs, {"a-1", "c"}).new
    assert "indicators" in merged_by_rows
    assert _version_files(whole) == _version_files(spliced)


def _blocks_of(base) -> dict[str, list[tuple]]:
    return {
        name: [(b.source, b.first, b.last, bytes(b.csv), bytes(b.json), b.count) for b in t.blocks]
        for name, t in base.tables.items()
    }


def test_a_version_says_where_each_sources_rows_lie(tmp_path, monkeypatch):
    from reportdata import delta

    _publish_whole(tmp_path, {f"b{n}": _text(n) for n in range(6)})
    folder = tmp_path / "county" / "1.0.0"
    assert (folder / delta.INDEX).is_file()
    scanned = _blocks_of(read_base(tmp_path, "county", "1.0.0"))

    def no_scan(*args):
        raise AssertionError("the files were scanned")

    with monkeypatch.context() as patched:
        patched.setattr(delta, "_blocks", no_scan)
        indexed = _blocks_of(read_base(tmp_path, "county", "1.0.0"))
    assert indexed == scanned
    (folder / delta.INDEX).unlink()  # a version without one (an older release) is scanned
    assert _blocks_of(read_base(tmp_path, "county", "1.0.0")) == scanned


def _refuse(*args, **kwargs):
    raise AssertionError("checked again")


def test_files_unchanged_since_they_were_written_are_not_checked_again(tmp_path, monkeypatch):
    from reportdata import delta

    result = _publish_whole(tmp_path, {f"b{n}": _text(n) for n in range(6)})
    assert result.stamps is not None
    assert {delta.INDEX, "indicators.csv", "indicators.json"} <= set(result.stamps)
    checked = _blocks_of(read_base(tmp_path, "county", "1.0.0"))
    with monkeypatch.context() as patched:
        patched.setattr(delta, "hashlib", SimpleNamespace(sha256=_refuse))
        patched.setattr(delta, "_indexed_blocks", _refuse)
        patched.setattr(delta, "_blocks", _refuse)
        trusted = _blocks_of(read_base(tmp_path, "county", "1.0.0", result.stamps))
    assert trusted == checked


def test_a_file_changed_after_it_was_written_is_checked_again(tmp_path):
    import os

    result = _publish_whole(tmp_path, {f"b{n}": _text(n) for n in range(3)})
    path = tmp_path / "county/1.0.0/indicators.csv"
    before = path.stat()
    path.write_bytes(path.read_bytes().replace(b"2001", b"2009"))  # the same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and modification time
    with pytest.raises(DeltaUnusable, match=r"indicators\.csv differs"):
        read_base(tmp_path, "county", "1.0.0", result.stamps)


def test_an_index_changed_after_it_was_written_is_checked_again(tmp_path):
    from reportdata import delta

    result = _publish_whole(tmp_path, {f"b{n}": _text(n) for n in range(6)})
    checked = _blocks_of(read_base(tmp_path, "county", "1.0.0"))
    path = tmp_path / "county" / "1.0.0" / delta.INDEX
    index = json.loads(path.read_text("utf-8"))
    blocks = index["tables"]["indicators"]["blocks"]
    blocks[0][4], blocks[1][4] = blocks[0][4] - 3, blocks[1][4] + 3  # lengths still add up
    path.write_text(json.dumps(index, ensure_ascii=False), "utf-8")
    assert _blocks_of(read_base(tmp_path, "county", "1.0.0", result.stamps)) == checked


def test_a_descriptor_changed_after_it_was_written_makes_every_file_checked(tmp_path):
    result = _publish_whole(tmp_path, {f"b{n}": _text(n) for n in range(3)})
    path = tmp_path / "county/1.0.0/datapackage.json"
    descriptor = json.loads(path.read_text("utf-8"))
    (table,) = [r for r in descriptor["resources"] if r["name"] == "indicators"]
    table["hash"] = "sha256:" + "0" * 64  # the files keep their stamps
    path.write_text(json.dumps(descriptor, ensure_ascii=False, indent=2) + "\n", "utf-8")
    with pytest.raises(DeltaUnusable, match=r"indicators\.csv differs from its datapackage"):
        read_base(tmp_path, "county", "1.0.0", result.stamps)


def test_the_stamps_of_one_version_do_not_vouch_for_another(tmp_path, monkeypatch):
    from reportdata import delta

    docs = {f"b{n}": _text(n) for n in range(4)}
    first = _publish_whole(tmp_path, docs)
    docs["b1"] = _text(11, twist=",更正")
    second = _publish_spliced(tmp_path, docs, {"b1"})
    assert second.new and second.stamps and first.stamps
    hashed = []
    real = delta.hashlib.sha256

    def counting(data):
        hashed.append(len(data))
        return real(data)

    monkeypatch.setattr(delta, "hashlib", SimpleNamespace(sha256=counting))
    read_base(tmp_path, "county", second.version, first.stamps)
    assert len(hashed) == 6  # each table's CSV and JSON file
    hashed.clear()
    read_base(tmp_path, "county", second.version, second.stamps)
    assert hashed == []


def test_an_index_entry_is_refused_when_its_blocks_do_not_end_at_rows(tmp_path):
    from reportdata import delta

    _publish_whole(tmp_path, {f"b{n}": _text(n) for n in range(6)})
    folder = tmp_path / "county" / "1.0.0"
    files = [(folder / f"indicators.{ext}").read_bytes() for ext in ("csv", "json")]
    index = json.loads((folder / delta.INDEX).read_text("utf-8"))
    entry = index["tables"]["indicators"]
    assert delta._recorded_blocks(*files, entry) is not None
    for at, shift in ((3, 2), (4, 3)):  # CSV or JSON lengths moved, their sums kept
        edited = json.loads(json.dumps(entry))
        edited["blocks"][0][at] -= shift
        edited["blocks"][1][at] += shift
        assert delta._recorded_blocks(*files, edited) is None
    edited = json.loads(json.dumps(entry))
    edited["blocks"][0][5] = True  # not a count
    assert delta._recorded_blocks(*files, edited) is None


def _edit_index(edit):
    def change(index: dict) -> None:
        edit(index["tables"]["indicators"]["blocks"])

    return change


@pytest.mark.parametrize(
    "change",
    [
        _edit_index(lambda b: b[0].__setitem__(3, b[0][3] + 1)),  # a CSV length off by one
        _edit_index(lambda b: (b[0].__setitem__(4, b[0][4] - 3), b[1].__setitem__(4, b[1][4] + 3))),
        _edit_index(lambda b: b[1].__setitem__(0, b[0][0])),  # another source named
        _edit_index(lambda b: b[1].__setitem__(2, b[0][2])),  # a wrong last key
        _edit_index(lambda b: b[2].__setitem__(5, b[2][5] + 1)),  # a wrong row count
        _edit_index(lambda b: b.__setitem__(slice(0, 2), b[1::-1])),  # two blocks swapped
        _edit_index(lambda b: b.pop()),  # a block left out
        lambda index: index.__setitem__("format", 2),
    ],
)
def test_an_index_that_disagrees_with_the_files_is_not_used(tmp_path, change):
    from reportdata import delta

    docs = {f"b{n}": _text(n) for n in range(6)}
    whole, spliced = tmp_path / "whole", tmp_path / "spliced"
    _publish_whole(whole, docs)
    shutil.copytree(whole, spliced)
    path = spliced / "county" / "1.0.0" / delta.INDEX
    index = json.loads(path.read_text("utf-8"))
    change(index)
    path.write_text(json.dumps(index, ensure_ascii=False), "utf-8")
    if index["format"] == 1:  # the entry itself is refused, not just harmless
        folder = path.parent
        files = [(folder / f"indicators.{ext}").read_bytes() for ext in ("csv", "json")]
        entry = index["tables"]["indicators"]
        assert delta._indexed_blocks("indicators", *files, entry) is None
    assert _blocks_of(read_base(spliced, "county", "1.0.0")) == _blocks_of(
        read_base(whole, "county", "1.0.0")
    )
    docs["b3"] = _text(33, twist=",更正")
    _publish_whole(whole, docs)
    _publish_spliced(spliced, docs, {"b3"})
    written = {k: v for k, v in _version_files(spliced).items() if "1.0.0" not in k}
    assert written == {k: v for k, v in _version_files(whole).items() if "1.0.0" not in k}


def test_garbage_in_place_of_an_index_is_ignored(tmp_path):
    from reportdata import delta

    _publish_whole(tmp_path, {f"b{n}": _text(n) for n in range(3)})
    scanned = _blocks_of(read_base(tmp_path, "county", "1.0.0"))
    (tmp_path / "county" / "1.0.0" / delta.INDEX).write_bytes(b"\xff not json")
    assert _blocks_of(read_base(tmp_path, "county", "1.0.0")) == scanned


def _writes_wrong(monkeypatch, corrupted: str) -> None:
    """Make the publisher's file writer leave one bit off in the file named `corrupted`, as
    a bad disk or a bug would leave it."""
    from reportdata import publish as publishing

    real = publishing._write_file

    def writes_wrong(path: Path, data: bytes) -> None:
        if path.name == corrupted and not path.parent.name.startswith(".tmp-new-rows"):
            data = data[:-2] + bytes([data[-2] ^ 1]) + data[-1:]
        real(path, data)

    monkeypatch.setattr(publishing, "_write_file", writes_wrong)


@pytest.mark.parametrize(
    "corrupted", ["indicators.json", "sections.csv", "changes.json", "datapackage.json"]
)
def test_a_spliced_file_written_wrong_publishes_nothing(tmp_path, monkeypatch, corrupted):
    docs = {f"b{n}": _text(n) for n in range(4)}
    _publish_whole(tmp_path, docs)
    _writes_wrong(monkeypatch, corrupted)
    docs["b1"] = _text(11, twist=",更正")
    with pytest.raises(ValidationFailed, match=f"written wrong \\({re.escape(corrupted)} read"):
        _publish_spliced(tmp_path, docs, {"b1"})
    assert _newest(tmp_path) == "1.0.0"
    assert sorted(p.name for p in (tmp_path / "county").iterdir() if p.name[0].isdigit()) == [
        "1.0.0"
    ]


def test_a_first_version_written_wrong_publishes_nothing(tmp_path, monkeypatch):
    """A whole version's files are read back as written too, before Frictionless reads them."""
    _writes_wrong(monkeypatch, "indicators.csv")
    with pytest.raises(ValidationFailed, match=r"written wrong \(indicators\.csv read"):
        _publish_whole(tmp_path, {f"b{n}": _text(n) for n in range(3)})
    left = [p.name for p in (tmp_path / "county").iterdir() if not p.name.endswith(".lock")]
    assert left == []


def _csv_row_moved(index: dict, folder: Path) -> None:
    """The last CSV row of the first block told as the second block's first."""
    csv_bytes = (folder / "indicators.csv").read_bytes()
    blocks = index["tables"]["indicators"]["blocks"]
    end = csv_bytes.find(b"\n") + 1 + blocks[0][3]
    length = end - (csv_bytes.rfind(b"\n", 0, end - 1) + 1)
    blocks[0][3] -= length
    blocks[1][3] += length


def _count_moved(index: dict, folder: Path) -> None:
    blocks = index["tables"]["indicators"]["blocks"]
    blocks[0][5] += 1
    blocks[1][5] -= 1


def _document_key_wrong(index: dict, folder: Path) -> None:
    """documents is keyed by the source itself: a key that is not the source (in order)."""
    blocks = index["tables"]["documents"]["blocks"]
    blocks[0][1] = blocks[0][2] = [blocks[0][0] + "a"]


@pytest.mark.parametrize(
    ("change", "table"),
    [
        (_csv_row_moved, "indicators"),
        (_count_moved, "indicators"),
        (_document_key_wrong, "documents"),
    ],
)
def test_an_index_wrong_across_blocks_is_not_used(tmp_path, change, table):
    from reportdata import delta

    docs = {f"b{n}": _text(n) for n in range(4)}
    whole, spliced = tmp_path / "whole", tmp_path / "spliced"
    _publish_whole(whole, docs)
    shutil.copytree(whole, spliced)
    folder = spliced / "county" / "1.0.0"
    index = json.loads((folder / delta.INDEX).read_text("utf-8"))
    change(index, folder)
    (folder / delta.INDEX).write_text(json.dumps(index, ensure_ascii=False), "utf-8")
    files = [(folder / f"{table}.{ext}").read_bytes() for ext in ("csv", "json")]
    assert delta._indexed_blocks(table, *files, index["tables"][table]) is None
    docs["b0"] = _text(10, twist=",更正")  # the block next to the wrong boundary
    _publish_whole(whole, docs)
    _publish_spliced(spliced, docs, {"b0"})
    written = {k: v for k, v in _version_files(spliced).items() if "1.0.0" not in k}
    assert written == {k: v for k, v in _version_files(whole).items() if "1.0.0" not in k}


def test_an_index_block_holding_another_sources_rows_is_not_used(tmp_path):
    from reportdata import delta
    from reportdata.delta import table_records

    def rows(doc: str, text: str) -> dict[str, list[dict]]:
        out = _rows(doc, text)
        if doc == "a":  # a's last figure sorts after every row of a-1
            out["indicators"][-1]["indicator_id"] = "a-2-000001"
        return out

    docs = {"a": _text(1), "a-1": _text(2), "b": _text(3)}
    parts = [rows(d, t) for d, t in sorted(docs.items())]
    publish(pipeline.frames(pipeline.merge(parts)), INFO, tmp_path, created=CREATED)
    folder = tmp_path / "county" / "1.0.0"
    csv_bytes, json_bytes = ((folder / f"indicators.{e}").read_bytes() for e in ("csv", "json"))
    records = table_records("indicators", csv_bytes, json_bytes)
    last_a = max(i for i, r in enumerate(records) if r[1] == "a")
    blocks = [  # one block of a running over a-1's rows, then the rest: first and last are a's
        [g[0][1], list(g[0][0]), list(g[-1][0]), sum(len(r[2]) + 1 for r in g),
         len(b",\n".join(r[3] for r in g)), len(g)]
        for g in (records[: last_a + 1], records[last_a + 1 :])
    ]  # fmt: skip
    entry = {"csv_bytes": len(csv_bytes), "json_bytes": len(json_bytes), "blocks": blocks}
    assert {r[1] for r in records[: last_a + 1]} == {"a", "a-1"}
    assert delta._indexed_blocks("indicators", csv_bytes, json_bytes, entry) is None


_WITHOUT_PANDAS = """
import json, sys
from pathlib import Path
from reportdata import pipeline, validate
from reportdata.publish import DatasetInfo, publish, read_base
from reportdata.read import read_bytes
from reportdata.tables import DocumentInfo, build_rows
root, doc, text, info = Path(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
meta = DocumentInfo(doc, "county", "b", "p", "a", "CC0-1.0", "https://example.org/b", "0" * 64)
tables = pipeline.conformed(build_rows(meta, read_bytes(text.encode("utf-8"), "text")))
report = validate.check(tables)
base = read_base(root, "county", json.loads((root / "county/latest.json").read_text())["version"])
result = publish(tables, DatasetInfo(**info), root, created="2026-01-02T03:04:05Z",
                 report=report, base=base, replaced={doc})
loaded = sorted(m for m in ("pandas", "pandera", "numpy") if m in sys.modules)
print(json.dumps({"ok": report.ok, "version": result.version, "loaded": loaded}))
"""


def test_a_version_built_on_the_newest_from_row_dicts_imports_no_pandas(tmp_path):
    """What makes a one-report change cheap: its rows are checked, published and appended
    to DuckDB without pandas, pandera or numpy (about 0.7 s of imports in a fresh run)."""
    import subprocess
    from dataclasses import asdict

    docs = {f"b{n}": _text(n) for n in range(4)}
    _publish_whole(tmp_path, docs)
    args = [str(tmp_path), "b2", _text(77), json.dumps(asdict(INFO))]
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PANDAS, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    said = json.loads(result.stdout.strip().splitlines()[-1])
    assert said == {"ok": True, "version": "1.1.0", "loaded": []}
    with duckdb.connect(str(tmp_path / "county/county.duckdb"), read_only=True) as con:
        assert con.sql("SELECT version FROM versions ORDER BY seq").fetchall() == [
            ("1.0.0",),
            ("1.1.0",),
        ]
        changed = con.sql("SELECT count(*) FROM changes WHERE version = '1.1.0'").fetchall()
    assert changed[0][0] > 0
