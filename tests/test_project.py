"""The project folder and its registry, sources.yaml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from reportdata.errors import ProjectError
from reportdata.project import add_sources, find_root, load, open_project, slug

HEADER = "# 本项目登记的报告\n# 每个来源写明路径或网址\n"
GOOD = (
    HEADER
    + """\
datasets:
  demo:
    title: 某县报告中的数字
    licence:
      name: CC-BY-4.0
      title: Creative Commons Attribution 4.0
sources:
  - id: county-2023
    dataset: demo
    path: raw/embedded/county.txt
    published: "2023"
  - id: county-web
    dataset: demo
    url: https://example.org/report.html
    licence: other-at
"""
)


def write(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(root: Path) -> str:
    with pytest.raises(ProjectError) as info:
        load(root)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------ finding


def test_find_root_walks_up_from_a_nested_folder(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    write(root, GOOD)
    nested = root / "a" / "b" / "c"
    nested.mkdir(parents=True)
    assert find_root(start=nested) == root.resolve()


def test_find_root_starts_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "proj"
    write(root, GOOD)
    (root / "raw").mkdir()
    monkeypatch.chdir(root / "raw")
    assert find_root() == root.resolve()
    assert open_project().root == root.resolve()


def test_the_nearest_project_wins(tmp_path: Path) -> None:
    write(tmp_path / "outer", GOOD)
    inner = tmp_path / "outer" / "inner"
    write(inner, GOOD)
    assert find_root(start=inner / ".") == inner.resolve()


def test_explicit_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    write(root, GOOD)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert find_root(explicit=Path("../proj")) == root.resolve()
    assert [s.id for s in open_project(root).sources] == ["county-2023", "county-web"]
    with pytest.raises(ProjectError, match=r"no sources\.yaml"):
        find_root(explicit=elsewhere)


def test_no_sources_yaml_anywhere(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as info:
        find_root(start=tmp_path)
    assert "sources.yaml" in str(info.value)
    assert "--project" in str(info.value)


# ------------------------------------------------------------------------------ loading


def test_a_good_registry_loads(tmp_path: Path) -> None:
    project = load(write(tmp_path, GOOD).parent)
    demo = project.dataset("demo")
    assert demo.title == "某县报告中的数字"
    assert demo.licence["name"] == "CC-BY-4.0"
    local, web = project.sources_of("demo")
    assert (local.path, local.url, local.origin) == ("raw/embedded/county.txt", "", local.path)
    assert local.published_year == 2023
    assert local.licence == "CC-BY-4.0"  # the dataset's licence by default
    assert web.origin == "https://example.org/report.html"
    assert web.licence == "other-at"
    assert (web.publisher, web.area) == ("unknown", "unknown")
    assert project.raw_dir == tmp_path / "raw"


def test_an_unquoted_date_is_read_as_the_date(tmp_path: Path) -> None:
    project = load(
        write(tmp_path, GOOD.replace('published: "2023"', "published: 2023-05-01")).parent
    )
    source = project.sources[0]
    assert source.published == "2023-05-01"
    assert source.published_year == 2023


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    lines = GOOD.splitlines()
    broken_at = lines.index("  - id: county-web") + 1
    lines[broken_at] = "    dataset: [demo"  # an unclosed flow sequence
    write(tmp_path, "\n".join(lines) + "\n")
    message = error_of(tmp_path)
    assert "not valid YAML" in message
    assert f"line {broken_at + 1}" in message or f"line {broken_at + 2}" in message


def test_broken_yaml_with_a_tab_names_its_line(tmp_path: Path) -> None:
    write(tmp_path, "datasets:\n  demo:\n\ttitle: x\n")
    assert "line 3" in error_of(tmp_path)


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("../outside.txt", "outside the project"),
        ("raw/../../outside.txt", "outside the project"),
        ("/etc/hostname", "relative path"),
    ],
)
def test_source_paths_must_stay_inside_the_project(tmp_path: Path, path: str, words: str) -> None:
    write(tmp_path / "p", GOOD.replace("raw/embedded/county.txt", path))
    message = error_of(tmp_path / "p")
    assert words in message
    assert "county-2023" in message


def test_a_symlink_out_of_the_project_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "p"
    write(root, GOOD.replace("raw/embedded/county.txt", "raw/link.txt"))
    (tmp_path / "secret.txt").write_text("机密", encoding="utf-8")
    (root / "raw").mkdir()
    (root / "raw" / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert "outside the project" in error_of(root)


def test_unknown_dataset(tmp_path: Path) -> None:
    project = load(write(tmp_path, GOOD).parent)
    with pytest.raises(ProjectError, match=r"no dataset named 'towns'.*known: demo"):
        project.dataset("towns")
    with pytest.raises(ProjectError, match="towns"):
        project.sources_of("towns")


def test_a_source_naming_an_undefined_dataset(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace("    dataset: demo\n    url", "    dataset: towns\n    url"))
    message = error_of(tmp_path)
    assert "county-web" in message and "towns" in message


def test_duplicate_ids(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace("id: county-web", "id: county-2023"))
    message = error_of(tmp_path)
    assert "county-2023" in message and "twice" in message


@pytest.mark.parametrize("url", ["ftp://example.org/r.txt", "file:///etc/passwd", "example.org"])
def test_urls_must_be_http(tmp_path: Path, url: str) -> None:
    write(tmp_path, GOOD.replace("https://example.org/report.html", url))
    message = error_of(tmp_path)
    assert "http" in message and "county-web" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- just\n- a list\n", "mapping"),
        ("datasets: [demo]\n", "'datasets' must be a mapping"),
        (
            GOOD.replace("    licence:\n      name: CC-BY-4.0", "    licens:\n      name: x"),
            "licence",
        ),
        (GOOD.replace("id: county-web", "id: County Web"), "lower-case"),
        (GOOD.replace("    path: raw/embedded/county.txt\n", ""), "path under raw/"),
    ],
    ids=["list", "datasets-list", "no-licence", "bad-id", "no-path-or-url"],
)
def test_malformed_registries_raise_one_sentence(tmp_path: Path, text: str, words: str) -> None:
    write(tmp_path, text)
    assert words in error_of(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_bytes(GOOD.encode("gbk"))
    assert "UTF-8" in error_of(tmp_path)


def test_slug() -> None:
    assert slug("https://example.org/news/County_Report-2023.html") == "county-report-2023"
    assert slug("/data/report 2023.TXT") == "report-2023"
    assert slug("某县报告.txt") == "report"


# ------------------------------------------------------------------------------ adding


def entry(sid: str) -> dict:
    return {"id": sid, "dataset": "towns", "path": f"raw/embedded/{sid}.txt"}


def test_add_sources_keeps_comments_and_adds_the_dataset(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    add_sources(tmp_path, [entry("town-a"), entry("town-b")], "towns", "各镇报告")

    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER)
    project = load(tmp_path)
    assert [s.id for s in project.sources] == ["county-2023", "county-web", "town-a", "town-b"]
    assert project.dataset("towns").title == "各镇报告"
    assert project.dataset("demo").licence["name"] == "CC-BY-4.0"
    assert [s.id for s in project.sources_of("towns")] == ["town-a", "town-b"]


def test_add_sources_to_an_empty_registry(tmp_path: Path) -> None:
    write(tmp_path, "# 新项目\ndatasets:\nsources:\n")
    add_sources(tmp_path, [entry("town-a")], "towns")
    project = load(tmp_path)
    assert [s.id for s in project.sources] == ["town-a"]
    assert project.dataset("towns").title == "towns"
    assert (tmp_path / "sources.yaml").read_text(encoding="utf-8").startswith("# 新项目\n")


def test_add_sources_keeps_the_file_mode(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    path.chmod(0o640)
    add_sources(tmp_path, [entry("town-a")], "towns")
    assert path.stat().st_mode & 0o777 == 0o640


def test_add_sources_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD)
    before = path.read_bytes()
    renamed: list[tuple[str, str]] = []

    def failing_replace(src: str, dst: str) -> None:
        renamed.append((str(src), str(dst)))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        add_sources(tmp_path, [entry("town-a")], "towns")

    # the new text went to a temporary sibling that was to be renamed over sources.yaml
    [(src, dst)] = renamed
    assert Path(src).parent == tmp_path and Path(dst) == path
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sources.yaml"]


def test_added_entries_round_trip_through_yaml(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    new = {**entry("town-a"), "title": "某镇: 2023年工作报告", "published": "2023-05-01"}
    add_sources(tmp_path, [new], "towns")
    doc = yaml.safe_load((tmp_path / "sources.yaml").read_text(encoding="utf-8"))
    assert doc["sources"][-1] == new  # the date stays a string, the colon stays in the title


def test_a_source_entry_is_flat_so_its_cache_key_reads_its_fields_directly():
    """cache.source_key serialises vars(source), the same as dataclasses.asdict while every
    field is a plain value: a nested field would need asdict again."""
    import dataclasses
    import json

    from reportdata.cache import source_key
    from reportdata.project import Source

    source = Source(id="a", dataset="d", title="标题", url="https://example.org/a")
    assert vars(source) == dataclasses.asdict(source)
    assert all(f.type in ("str", str) for f in dataclasses.fields(Source))
    entry = json.dumps(dataclasses.asdict(source), sort_keys=True, ensure_ascii=False)
    assert entry == json.dumps(vars(source), sort_keys=True, ensure_ascii=False)
    retitled = dataclasses.replace(source, title="x")
    assert source_key(source, "0" * 64) != source_key(retitled, "0" * 64)


def test_a_parsed_registry_is_kept_as_json_keyed_by_its_text(tmp_path, monkeypatch) -> None:
    """A run keeps the parse of sources.yaml as JSON; a later process (the in-process cache
    is cleared here) reads that copy, not the YAML; an edit, a broken copy or values JSON
    cannot hold (an unquoted date) go back to parsing the YAML. Other commands write no copy."""
    from reportdata import project as module

    root = write(tmp_path, GOOD).parent
    copy = root / ".reportdata" / "cache" / "sources.json"
    first = load(root)
    assert not copy.exists()  # only a run keeps it
    module._DOCS.clear()
    first = load(root, keep=True)
    assert copy.is_file()

    parsed: list[str] = []
    real = module._parse

    def counting(text: str):
        parsed.append(text)
        return real(text)

    def new_process() -> None:
        module._DOCS.clear()
        module._COPIED.clear()

    monkeypatch.setattr(module, "_parse", counting)
    new_process()
    again = load(root)
    assert parsed == [] and again.sources == first.sources and again.datasets == first.datasets

    write(root, GOOD.replace("某县报告中的数字", "某县报告"))
    assert load(root, keep=True).dataset("demo").title == "某县报告" and len(parsed) == 1
    new_process()
    assert load(root).dataset("demo").title == "某县报告" and len(parsed) == 1  # the copy

    copy.write_text("[not, a, mapping]", encoding="utf-8")
    new_process()
    assert load(root, keep=True).dataset("demo").title == "某县报告" and len(parsed) == 2

    copy.unlink()
    write(root, GOOD.replace('published: "2023"', "published: 2023-05-01"))
    for _ in range(2):
        new_process()
        assert load(root, keep=True).sources[0].published == "2023-05-01"
    assert len(parsed) == 4 and not copy.exists()  # a date is no JSON value: never copied
