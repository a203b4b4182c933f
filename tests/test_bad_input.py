"""Bad input through the real console script: one sentence, a non-zero exit, nothing lost.

Every refusal is checked against the user-error contract of `one_error_line` (one line on
stderr starting ``error:``, no traceback) and against the project as it was: raw/, published/
and sources.yaml are compared whole, byte for byte, before and after. The project holds a
real published release (built with the library's steps, no Prefect) so that there is
something to lose. A full disk is simulated in-process through the publisher's writes.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from _helpers import CLI, make_pdf, make_project, run_cli, text_pdf
from test_cli import one_error_line

from reportdata import fsutil, pipeline, publish, read
from reportdata.errors import PublishError
from reportdata.project import load
from reportdata.pull import pull
from reportdata.validate import validate_package

DATASET = "lixia"
SOURCE = "lixia-2021-qilu"
SOURCE_PATH = "raw/embedded/lixia-2021-qilu.txt"

# Sentences written for these tests, with the figures they state.
FARM = "一、农业\n2023年,全镇粮食总产量达到5.2万吨,比上年增长3.4%。\n"
ROADS = "二、交通\n新修农村公路18公里,完成投资1.6亿元。\n"
RARE = "三、典型\n村民刘䶮经营的家庭农场年收入12万元。\n"  # 䶮 (U+4DAE) is not in GBK
TEXT = FARM + ROADS + RARE
TEXT_FIGURES = {"5.2万吨", "3.4%", "18公里", "1.6亿元", "12万元"}
NAV_FIGURE, FOOTER_FIGURE = "9999次", "8888次"


def page(charset: str) -> str:
    """A news page: navigation and footer, each with a figure, around an article."""
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="{charset}"><title>镇政府工作报告</title>'
        "</head>\n<body>\n"
        '<nav><ul><li><a href="/">网站首页</a></li><li><a href="/gk">政务公开</a></li>'
        f'<li><a href="/tj">本站累计访问量{NAV_FIGURE}</a></li></ul></nav>\n'
        "<article><h1>镇政府工作报告</h1>"
        "<p>2023年,全镇粮食总产量达到5.2万吨,比上年增长3.4%。</p>"
        "<p>新修农村公路18公里,完成投资1.6亿元,惠及群众2.3万人。</p></article>\n"
        f"<footer><p>主办:某镇人民政府 今日访问{FOOTER_FIGURE}</p></footer>\n"
        "</body></html>"
    )


PAGE_FIGURES = {"5.2万吨", "3.4%", "18公里", "1.6亿元", "2.3万人"}


# ------------------------------------------------------------------------------ helpers


def tree(root: Path) -> dict[str, object]:
    """Every folder, file (its bytes) and symbolic link (its target) under ``root``."""
    found: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in dirs + files:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = "folder"
            elif path.is_file():
                found[rel] = path.read_bytes()
            else:  # a pipe or device: reading it would block
                found[rel] = ("special", path.stat().st_mode)
    return found


def kept(root: Path) -> dict[str, object]:
    """What must never be lost: sources.yaml, raw/ and published/ (as files or folders)."""
    return {
        rel: value
        for rel, value in tree(root).items()
        if rel == "sources.yaml" or rel.split("/")[0] in {"raw", "published"}
    }


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\x00\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def zipped() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("report.txt", TEXT)
    return out.getvalue()


def scanned_pdf() -> bytes:
    """A page that only paints an image and a filled rectangle: no text layer."""
    pixels = b"\x00\x40\x80\xff\xff\x80\x40\x00"
    image = b"q 260 0 0 100 20 30 cm BI /W 4 /H 2 /CS /G /BPC 8 ID %s EI Q" % pixels
    return make_pdf(image + b"\n0.2 0.2 0.2 rg 30 10 200 12 re f")


def truncated_pdf() -> bytes:
    data = text_pdf("Grain output 5.2 and roads 18")
    return data[: len(data) * 2 // 3]


def undecodable_page() -> bytes:
    junk = bytes([0x80, 0xFF, 0x41, 0xFE, 0x7F, 0x81, 0x20, 0xFF]) * 40
    return b'<html><head><meta charset="utf-8"></head><body><article><p>%s</p></article>' % junk


def write_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def oversized(path: Path) -> None:
    """A sparse file one byte over the reading limit (no disk space is used)."""
    with open(path, "wb") as fh:
        fh.truncate(read.MAX_BYTES + 1)


# name: (file name, how to make it, words the sentence must hold)
BAD_FILES: dict[str, tuple[str, Callable[[Path], None], tuple[str, ...]]] = {
    "empty": ("empty.txt", write_bytes(b""), ("empty",)),
    "whitespace": ("blank.txt", write_bytes(b" \r\n\t\n  "), ("empty",)),
    "png": ("chart.png", write_bytes(png()), ("binary",)),
    "png-named-txt": ("chart.txt", write_bytes(png()), ("binary",)),
    "zip": ("reports.zip", write_bytes(zipped()), ("binary",)),
    "gzip": ("report.txt.gz", write_bytes(gzip.compress(TEXT.encode("utf-8"))), ("binary",)),
    "oversized": ("huge.txt", oversized, ("larger than the", read.size_limit(), "limit")),
    "undecodable": ("garbled.html", write_bytes(undecodable_page()), ("encoding",)),
    "no-article": (
        "menu.html",
        write_bytes(b"<html><body><nav><a href='/'>home</a><a href='/a'>news</a></nav></body>"),
        ("no article",),
    ),
    "scanned-pdf": ("scan.pdf", write_bytes(scanned_pdf()), ("no text layer",)),
    "truncated-pdf": ("cut.pdf", write_bytes(truncated_pdf()), ("truncated or damaged",)),
    "fifo": ("pipe.txt", os.mkfifo, ("pipe",)),
}


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose one dataset is pulled and published once (library steps, no Prefect)."""
    root = make_project(tmp_path_factory.mktemp("released"))
    proj = load(root)
    parts = [pipeline.extract_source(proj, s, pull(proj, s).snapshot) for s in proj.sources]
    pipeline.release(proj, DATASET, pipeline.frames(pipeline.merge(parts)))
    return root


@pytest.fixture
def project(released: Path, tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(released, root, symlinks=True)
    return root


def jsonl(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def figures_of(path: Path) -> set[str]:
    result = run_cli("extract", str(path), "-f", "jsonl", cwd=path.parent)
    assert result.returncode == 0, result.stderr
    return {row["quantity_text"] for row in jsonl(result.stdout)}


# ------------------------------------------------------------------------------ extract and add


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_extract_refuses_a_bad_file_in_one_sentence(case: str, tmp_path: Path) -> None:
    name, make, words = BAD_FILES[case]
    path = tmp_path / name
    make(path)
    before = tree(tmp_path)
    line = one_error_line(run_cli("extract", str(path), "-f", "jsonl", cwd=tmp_path, timeout=60))
    for word in words:
        assert word in line, line
    assert tree(tmp_path) == before


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_add_refuses_a_bad_file_and_loses_nothing(case: str, project: Path, tmp_path: Path) -> None:
    name, make, words = BAD_FILES[case]
    path = tmp_path / name
    make(path)
    before = tree(project)
    result = run_cli("add", str(path), "-d", "towns", cwd=project, timeout=60)
    line = one_error_line(result)
    assert name in line, line  # the sentence says which file
    for word in words:
        assert word in line, line
    assert tree(project) == before  # no copy in raw/embedded, no snapshot, same sources.yaml


def test_extract_refuses_a_device(tmp_path: Path) -> None:
    line = one_error_line(run_cli("extract", "/dev/zero", cwd=tmp_path, timeout=60))
    assert "/dev/zero" in line and "not a regular file" in line


# ------------------------------------------------------------------------------ encodings


ENCODED = {
    "gb18030": TEXT.encode("gb18030"),
    "utf-16-le-bom": TEXT.encode("utf-16"),  # Python writes a BOM and little-endian
    "utf-16-be-bom": b"\xfe\xff" + TEXT.encode("utf-16-be"),
}


@pytest.mark.parametrize("encoding", list(ENCODED))
def test_chinese_text_in_other_encodings_extracts_its_figures(
    encoding: str, tmp_path: Path
) -> None:
    path = tmp_path / "town.txt"
    path.write_bytes(ENCODED[encoding])
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # really not UTF-8
    result = run_cli("extract", str(path), "-f", "jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = jsonl(result.stdout)
    assert {r["quantity_text"] for r in rows} >= TEXT_FIGURES
    grain = next(r for r in rows if r["quantity_text"] == "5.2万吨")
    assert grain["value_base"] == pytest.approx(52000) and grain["unit_base"] == "吨"
    farm = next(r for r in rows if r["quantity_text"] == "12万元")
    assert "刘䶮" in farm["sentence"]  # a character outside GBK came through


def test_a_page_declaring_utf8_whose_bytes_are_gbk_is_read_by_detection(tmp_path: Path) -> None:
    """The declared charset is a claim; the bytes are the evidence. A page that does not
    decode as UTF-8 at all but reads as common Chinese in GB18030 is read as GB18030, since
    refusing it would lose a report every browser shows correctly."""
    data = page("utf-8").encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    path = tmp_path / "report.html"
    path.write_bytes(data)
    found = figures_of(path)
    assert found >= PAGE_FIGURES
    assert NAV_FIGURE not in found and FOOTER_FIGURE not in found


def test_a_gbk_page_gives_its_article_without_navigation_or_footer(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_bytes(page("gbk").encode("gbk"))
    found = figures_of(path)
    assert found >= PAGE_FIGURES
    assert not {f for f in found if NAV_FIGURE in f or FOOTER_FIGURE in f}


@pytest.mark.parametrize(
    ("name", "data", "encoding"),
    [
        ("town.txt", ENCODED["gb18030"], "gb18030"),
        ("town.txt", ENCODED["utf-16-le-bom"], "utf-16"),
        ("page.html", page("utf-8").encode("gbk"), "gb18030"),
    ],
    ids=["gb18030", "utf-16", "mislabelled-gbk-page"],
)
def test_add_records_the_detected_encoding(
    project: Path, tmp_path: Path, name: str, data: bytes, encoding: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    result = run_cli("add", str(path), "-d", "towns", "--id", "town", cwd=project)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((project / "raw" / "town" / "manifest.json").read_text("utf-8"))
    [snap] = manifest["snapshots"]
    assert snap["encoding"] == encoding
    assert (project / "raw" / "town" / snap["file"]).read_bytes() == data


# ------------------------------------------------------------------------------ sources.yaml


def registry(root: Path) -> str:
    return (root / "sources.yaml").read_text(encoding="utf-8")


def set_registry(root: Path, text: str) -> None:
    assert text != registry(root)  # the case really changed something
    (root / "sources.yaml").write_text(text, encoding="utf-8")


def outside_file(root: Path) -> Path:
    secret = root.parent / "outside" / "secret.txt"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text("2023年,外部文件写明收入99亿元。\n", encoding="utf-8")
    return secret


def yaml_syntax(root: Path) -> None:
    set_registry(root, registry(root).replace("sources:\n", "sources: [\n", 1))


def sources_not_a_list(root: Path) -> None:
    set_registry(root, registry(root).replace("sources:\n  - id:", "sources:\n  first:\n    id:"))


def id_a_list(root: Path) -> None:
    set_registry(root, registry(root).replace(f"id: {SOURCE}", "id: [a, b]"))


def path_a_mapping(root: Path) -> None:
    set_registry(root, registry(root).replace(f"path: {SOURCE_PATH}", "path: {file: x.txt}"))


def dot_dot(root: Path) -> None:
    set_registry(root, registry(root).replace(SOURCE_PATH, "../../etc/passwd"))


def absolute(root: Path) -> None:
    set_registry(root, registry(root).replace(SOURCE_PATH, "/etc/passwd"))


def symlinked_file(root: Path) -> None:
    (root / "raw" / "link.txt").symlink_to(outside_file(root))
    set_registry(root, registry(root).replace(SOURCE_PATH, "raw/link.txt"))


def symlinked_snapshot_folder(root: Path) -> None:
    outside = outside_file(root).parent
    shutil.rmtree(root / "raw" / SOURCE)
    (root / "raw" / SOURCE).symlink_to(outside, target_is_directory=True)


def snapshot_folder_a_file(root: Path) -> None:
    shutil.rmtree(root / "raw" / SOURCE)
    (root / "raw" / SOURCE).write_text("not a folder\n", encoding="utf-8")


# name: (how to break the project, words the sentence must hold)
BROKEN_REGISTRIES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "yaml-syntax": (yaml_syntax, ("sources.yaml is not valid YAML", "line")),
    "sources-not-a-list": (sources_not_a_list, ("'sources' a list",)),
    "id-a-list": (id_a_list, ("id must be a plain value",)),
    "path-a-mapping": (path_a_mapping, ("path must be a plain value",)),
    "dot-dot": (dot_dot, ("'../../etc/passwd'", "outside the project")),
    "absolute": (absolute, ("'/etc/passwd'", "relative path")),
    "symlinked-file": (symlinked_file, ("'raw/link.txt'", "outside the project")),
    "symlinked-snapshot-folder": (symlinked_snapshot_folder, (f"raw/{SOURCE}", "symbolic link")),
    "snapshot-folder-a-file": (snapshot_folder_a_file, (f"raw/{SOURCE}", "not a folder")),
}


@pytest.mark.parametrize("case", list(BROKEN_REGISTRIES))
def test_a_broken_registry_stops_every_command_with_one_sentence(case: str, project: Path) -> None:
    """`run` loads sources.yaml before it starts Prefect, so these cost no flow run."""
    breaks, words = BROKEN_REGISTRIES[case]
    breaks(project)
    before, outside = tree(project), tree(project.parent)
    for command in (["validate"], ["pull"], ["run", "--no-progress"]):
        line = one_error_line(run_cli(*command, cwd=project))
        for word in words:
            assert word in line, (command, line)
    assert tree(project) == before
    assert tree(project.parent) == outside  # nothing written beside the project either


@pytest.mark.parametrize("command", ["run", "pull", "validate"])
def test_an_unknown_dataset_is_named_with_the_known_ones(command: str, project: Path) -> None:
    before = tree(project)
    line = one_error_line(run_cli(command, "nowhere", cwd=project))
    assert "'nowhere'" in line and DATASET in line
    assert tree(project) == before


# ------------------------------------------------------------------------- unwritable published/


def test_run_with_a_published_path_it_cannot_write(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """chmod does not stop root, so published/ is made a regular file: writing under it
    fails with ENOTDIR for every user, root included."""
    shutil.rmtree(project / "published")
    (project / "published").write_text("a file where the folder should be\n", encoding="utf-8")
    before = kept(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path_factory.mktemp("prefect-home")), DO_NOT_TRACK="1")
    result = subprocess.run(
        [str(CLI), "run", "--no-progress"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = one_error_line(result)  # Prefect's own log lines stay off the console
    assert "published" in line and "Not a directory" in line
    assert result.stdout.strip() == ""
    assert kept(project) == before


# ------------------------------------------------------------------------------ full disk


class _Budget:
    """Bytes the simulated disk still takes (None: unlimited), and every file written:
    ``(name, offset of its first byte among all bytes written, its size)``."""

    def __init__(self, left: int | None) -> None:
        self.left = left
        self.written = 0
        self.files: list[list] = []

    def take(self, data: bytes) -> None:
        if self.left is not None and len(data) > self.left:
            self.left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if self.left is not None:
            self.left -= len(data)
        self.written += len(data)


class _FullDiskFile:
    """A file object whose writes draw on a budget; everything else goes to the real file."""

    def __init__(self, real, budget: _Budget, name: str) -> None:
        self._real, self._budget, self._name = real, budget, name
        self._entry: list | None = None

    def write(self, data: bytes) -> int:
        if self._entry is None:
            self._entry = [self._name, self._budget.written, 0]
            self._budget.files.append(self._entry)
        self._budget.take(bytes(data))
        self._entry[2] += len(data)
        return self._real.write(data)

    def __enter__(self) -> _FullDiskFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._real.close()

    def __getattr__(self, name: str):
        return getattr(self._real, name)


def _writes(mode: str) -> bool:
    return any(c in mode for c in "wax+")


@contextmanager
def disk(monkeypatch: pytest.MonkeyPatch, left: int | None) -> Iterator[_Budget]:
    """Route the publisher's file writes through a byte budget.

    The publisher writes its version files with ``open`` (publish._write_file) and every
    other file with fsutil.atomic_write_bytes (``os.fdopen``): both are wrapped, for writing
    modes only. DuckDB writes through its own C++ code and is not covered here.
    """
    budget = _Budget(left)
    real_open, real_fdopen = open, os.fdopen

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return _FullDiskFile(fh, budget, Path(file).name) if _writes(mode) else fh

    def fake_fdopen(fd, mode="r", *args, **kwargs):
        fh = real_fdopen(fd, mode, *args, **kwargs)
        if not _writes(mode):
            return fh
        return _FullDiskFile(fh, budget, Path(os.readlink(f"/proc/self/fd/{fd}")).name)

    with monkeypatch.context() as patch:
        patch.setattr(publish, "open", fake_open, raising=False)
        patch.setattr(fsutil.os, "fdopen", fake_fdopen)
        yield budget


@dataclasses.dataclass(frozen=True)
class _Change:
    tables: dict
    info: publish.DatasetInfo
    version: str  # the version this change publishes
    files: tuple[tuple[str, int, int], ...]  # what the publisher writes for it, in order


def _changed_release(project: Path) -> tuple[dict, publish.DatasetInfo]:
    """The project's tables with a revised description: a patch release."""
    proj = load(project)
    parts = [pipeline.extract_source(proj, s) for s in proj.sources_of(DATASET)]
    info = pipeline.dataset_info(proj, DATASET)
    info = dataclasses.replace(info, description=info.description + " 修订说明:补充了来源。")
    return pipeline.frames(pipeline.merge(parts)), info


@pytest.fixture(scope="module")
def change(released: Path, tmp_path_factory: pytest.TempPathFactory) -> _Change:
    """The change the full-disk test publishes, measured once on a spare copy."""
    spare = tmp_path_factory.mktemp("spare") / "project"
    shutil.copytree(released, spare, symlinks=True)
    tables, info = _changed_release(spare)
    with pytest.MonkeyPatch.context() as monkeypatch, disk(monkeypatch, None) as budget:
        result = publish.publish(tables, info, spare / "published")
    assert result.new
    return _Change(tables, info, result.version, tuple(tuple(f) for f in budget.files))


def leftovers(published: Path) -> list[str]:
    return [p.name for p in published.rglob("*") if ".tmp" in p.name]


def test_the_simulated_disk_sees_every_kind_of_file_the_publisher_writes(change: _Change) -> None:
    names = [name for name, _, _ in change.files]
    assert {"indicators.csv", "indicators.json", "datapackage.json", "changes.json"} <= set(names)
    for written in ("CHANGELOG.md", "latest.json", "catalog.json", "index.html"):
        assert any(name.startswith(f".{written}.") for name in names), written  # atomic temps
    assert all(size > 0 for _, _, size in change.files)


def test_a_full_disk_at_any_write_keeps_the_previous_release(
    change: _Change, released: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For every file the publisher writes, the disk fills up half-way through it."""
    for i, (name, start, size) in enumerate(change.files):
        where = f"full disk in write {i} ({name})"
        project = tmp_path / str(i)
        shutil.copytree(released, project, symlinks=True)
        published = project / "published"
        dataset_dir = published / DATASET
        previous = json.loads((dataset_dir / "latest.json").read_text("utf-8"))["version"]
        old_release = tree(dataset_dir / previous)
        raw_before = {k: v for k, v in kept(project).items() if not k.startswith("published")}

        with disk(monkeypatch, start + size // 2), pytest.raises(PublishError) as failed:
            publish.publish(change.tables, change.info, published)
        sentence = str(failed.value)
        assert "\n" not in sentence and sentence.endswith("."), where
        assert "No space left on device" in sentence, where

        # the previous release is intact; whatever latest.json names is complete and valid
        assert tree(dataset_dir / previous) == old_release, where
        latest = json.loads((dataset_dir / "latest.json").read_text("utf-8"))["version"]
        assert latest in {previous, change.version}, where
        assert validate_package(dataset_dir / latest / "datapackage.json").ok, where
        assert {k: v for k, v in kept(project).items() if not k.startswith("published")} == (
            raw_before
        ), where

        # with space again, the next publish completes the release, leaving no temporary file
        again = publish.publish(change.tables, change.info, published)
        assert again.version == change.version, where
        pointer = json.loads((dataset_dir / "latest.json").read_text("utf-8"))
        assert pointer["version"] == change.version, where
        assert validate_package(dataset_dir / change.version / "datapackage.json").ok, where
        assert tree(dataset_dir / previous) == old_release, where
        assert leftovers(published) == [], where
        catalog = json.loads((published / "catalog.json").read_text("utf-8"))
        assert f'"{change.version}"' in json.dumps(catalog), where
