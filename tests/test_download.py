"""`reportdata download`: a published version fetched over HTTP, checked, written all or nothing.

A real dataset is published once (the library's steps, no Prefect), a catalog.json in the
shared shape is written beside it, and the folder is served on 127.0.0.1. Refusals run the
real console script and check the user-error contract and that nothing was left behind.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _helpers import Route, Server, files_under, http_server, make_project, run_cli
from test_cli import one_error_line

from reportdata import cli, pipeline
from reportdata.download import DownloadError, download
from reportdata.project import load
from reportdata.pull import pull

DATASET, VERSION = "lixia", "1.0.0"
PKG = f"/{DATASET}/{VERSION}/datapackage.json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def publish_all(root: Path) -> None:
    """Publish every dataset of the project with the library's steps."""
    proj = load(root)
    for name in proj.datasets:
        parts = []
        for source in proj.sources_of(name):
            parts.append(pipeline.extract_source(proj, source, pull(proj, source).snapshot))
        pipeline.release(proj, name, pipeline.frames(pipeline.merge(parts)))


def write_catalog(published: Path) -> None:
    """A catalog.json in the shared shape, written from the published folders."""
    datasets = []
    for folder in sorted(p for p in published.iterdir() if p.is_dir()):
        latest = json.loads((folder / "latest.json").read_text(encoding="utf-8"))["version"]
        versions = []
        for vdir in sorted(folder.iterdir(), reverse=True):
            if not (vdir / "datapackage.json").is_file():
                continue
            data = (vdir / "datapackage.json").read_bytes()
            package = json.loads(data)
            rel = f"{folder.name}/{vdir.name}"
            link = {"path": f"{rel}/datapackage.json", "url": f"{rel}/datapackage.json"}
            resources = [
                {"name": r["name"], "format": r["format"], "path": f"{rel}/{r['path']}",
                 "url": f"{rel}/{r['path']}", "bytes": r["bytes"], "hash": r["hash"]}
                for r in package["resources"]
            ]  # fmt: skip
            versions.append(
                {"version": vdir.name, "created": package["created"], "bump": "initial",
                 "datapackage": {**link, "bytes": len(data), "hash": sha256(data)},
                 "changes": f"{rel}/changes.json", "resources": resources}
            )  # fmt: skip
        datasets.append(
            {"name": folder.name, "title": "t", "description": "d", "latest": latest,
             "changelog": f"{folder.name}/CHANGELOG.md", "duckdb": f"{folder.name}/x.duckdb",
             "page": f"{folder.name}/index.html", "versions": versions}
        )  # fmt: skip
    catalog = {
        "profile": "reportdata-catalog/1",
        "generated": datasets[0]["versions"][0]["created"],
        "datasets": datasets,
    }
    (published / "catalog.json").write_text(json.dumps(catalog, indent=2), encoding="utf-8")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("download"))
    publish_all(root)
    write_catalog(root / "published")
    return root / "published"


@pytest.fixture
def server(published: Path) -> Iterator[Server]:
    """The published folder served over HTTP; tests change its routes to misbehave."""
    routes = {"/" + rel: Route(body=data) for rel, data in files_under(published).items()}
    with http_server(routes) as srv:
        yield srv


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def package_of(published: Path) -> dict:
    return json.loads((published / PKG.lstrip("/")).read_bytes())


def assert_downloaded(folder: Path, published: Path) -> None:
    """``folder`` holds exactly the descriptor and its resources, byte for byte as published."""
    source = published / DATASET / VERSION
    expected = {"datapackage.json", *(r["path"] for r in package_of(published)["resources"])}
    got = files_under(folder)
    assert set(got) == expected
    for rel, data in got.items():
        assert data == (source / rel).read_bytes(), rel


def serve_package(server: Server, change: Callable[[dict], None]) -> None:
    """Serve a datapackage.json changed by ``change`` in place of the published one."""
    package = json.loads(server.routes[PKG].body)
    change(package)
    server.routes[PKG] = Route(body=json.dumps(package).encode("utf-8"))


def resource(package: dict, name: str) -> dict:
    return next(r for r in package["resources"] if r["name"] == name)


# ------------------------------------------------------------------------------ success


def test_download_by_datapackage_url(server: Server, published: Path, out: Path) -> None:
    result = run_cli("download", server.url(PKG), "--to", str(out), cwd=out.parent)
    assert result.returncode == 0, result.stderr
    target = out / DATASET / VERSION
    assert_downloaded(target, published)
    assert os.listdir(out / DATASET) == [VERSION]  # no temporary folder left beside it
    resources = package_of(published)["resources"]
    assert f"{len(resources)} resources" in result.stdout
    assert f"{sum(r['bytes'] for r in resources)} bytes" in result.stdout
    assert str(target) in result.stdout


def test_download_by_catalog_and_dataset(server: Server, published: Path, tmp_path: Path) -> None:
    result = run_cli("download", server.url("/catalog.json"), "--dataset", DATASET, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_downloaded(tmp_path / DATASET / VERSION, published)  # --to defaults to here
    assert "/catalog.json" in server.hits and PKG in server.hits


def test_download_from_a_path_and_a_file_url(published: Path, tmp_path: Path) -> None:
    path = published / PKG.lstrip("/")
    by_path = download(str(path), tmp_path / "a")
    by_url = download(path.as_uri(), tmp_path / "b")
    for result in (by_path, by_url):
        assert_downloaded(result.path, published)
        assert (result.dataset, result.version, result.new) == (DATASET, VERSION, True)
        resources = package_of(published)["resources"]
        assert result.files == tuple(r["path"] for r in resources)
        assert result.bytes == sum(r["bytes"] for r in resources)


def test_a_second_download_finds_it_already_there(server: Server, out: Path) -> None:
    first = download(server.url(PKG), out)
    stamps = {p: p.stat().st_mtime_ns for p in first.path.iterdir()}
    result = run_cli("download", server.url(PKG), "--to", str(out), cwd=out)
    assert result.returncode == 0, result.stderr
    assert "already there" in result.stdout
    assert {p: p.stat().st_mtime_ns for p in first.path.iterdir()} == stamps


def test_an_existing_folder_with_other_content_is_not_overwritten(
    server: Server, out: Path
) -> None:
    first = download(server.url(PKG), out)
    changed = first.path / "indicators.csv"
    changed.write_bytes(changed.read_bytes() + b"extra\n")
    line = one_error_line(run_cli("download", server.url(PKG), "--to", str(out), cwd=out))
    assert "already exists" in line and str(first.path) in line
    assert changed.read_bytes().endswith(b"extra\n")


def test_download_help_describes_the_command(tmp_path: Path) -> None:
    result = run_cli("download", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = inspect.getdoc(cli.download).split("\n\n")[0]
    assert re.sub(r"\s+", "", summary) in re.sub(r"\s+", "", result.stdout)
    for option in ("--to", "--dataset", "--version", "--max-bytes"):
        assert option in result.stdout


# ------------------------------------------------------------------------------ refusals


def tamper(server: Server, published: Path) -> tuple[list[str], list[str]]:
    route = server.routes[f"/{DATASET}/{VERSION}/indicators.csv"]
    body = bytearray(route.body)
    body[len(body) // 2] ^= 0x01
    route.body = bytes(body)
    return [], ["'indicators'", "sha256 hash"]


def cut_off(server: Server, published: Path) -> tuple[list[str], list[str]]:
    """The server announces the whole length and closes the connection early."""
    route = server.routes[f"/{DATASET}/{VERSION}/indicators.csv"]
    full = len(route.body)
    route.body, route.send_length = route.body[:-100], False
    route.headers["Content-Length"] = str(full)
    return [], ["'indicators'", "truncated"]


def short(server: Server, published: Path) -> tuple[list[str], list[str]]:
    """The server sends fewer bytes than the descriptor states, with a matching length."""
    route = server.routes[f"/{DATASET}/{VERSION}/sections.csv"]
    route.body = route.body[:-10]
    return [], ["'sections'", "truncated"]


def longer(server: Server, published: Path) -> tuple[list[str], list[str]]:
    route = server.routes[f"/{DATASET}/{VERSION}/documents.json"]
    route.body += b" " * 10
    return [], ["'documents-json'", "larger than"]


def oversized(server: Server, published: Path) -> tuple[list[str], list[str]]:
    resources = package_of(published)["resources"]
    limit = max(r["bytes"] for r in resources) - 1
    name = next(r["name"] for r in resources if r["bytes"] > limit)
    return ["--max-bytes", str(limit)], [repr(name), f"{limit} bytes limit"]


def http_error(server: Server, published: Path) -> tuple[list[str], list[str]]:
    server.routes[f"/{DATASET}/{VERSION}/sections.json"] = Route(404, b"gone")
    return [], ["'sections-json'", "HTTP 404"]


def bad_path(path: str, words: list[str]) -> Callable[[Server, Path], tuple[list, list]]:
    def change(server: Server, published: Path) -> tuple[list[str], list[str]]:
        evil = b"evil\n"
        server.routes["/evil"] = server.routes[f"/{DATASET}/evil"] = Route(body=evil)
        serve_package(
            server,
            lambda p: resource(p, "indicators").update(
                path=path.replace("HOST", server.base), bytes=len(evil), hash=sha256(evil)
            ),
        )
        return [], ["'indicators'", *words]

    return change


REFUSALS = {
    "tampered": tamper,
    "cut-off": cut_off,
    "short": short,
    "longer": longer,
    "oversized": oversized,
    "http-error": http_error,
    "dot-dot": bad_path("../evil", ["leaves the package folder"]),
    "absolute": bad_path("/evil", ["absolute path"]),
    "url": bad_path("HOST/evil", ["is a URL"]),
    "backslash": bad_path("..\\evil", ["backslash"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_leave_nothing_behind(
    case: str, server: Server, published: Path, out: Path
) -> None:
    args, words = REFUSALS[case](server, published)
    result = run_cli("download", server.url(PKG), "--to", str(out), *args, cwd=out.parent)
    line = one_error_line(result)
    for word in words:
        assert word in line, line
    assert list(out.iterdir()) == []
    assert not any("evil" in hit for hit in server.hits)  # bad paths are never fetched


def test_a_symlinked_dataset_folder_is_refused(server: Server, out: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / DATASET).symlink_to(elsewhere, target_is_directory=True)
    line = one_error_line(run_cli("download", server.url(PKG), "--to", str(out), cwd=tmp_path))
    assert "symbolic link" in line and str(out / DATASET) in line
    assert list(elsewhere.iterdir()) == []
    assert [p.name for p in out.iterdir()] == [DATASET]


def test_a_missing_target_folder_is_removed_again(server: Server, tmp_path: Path) -> None:
    tamper(server, Path())
    with pytest.raises(DownloadError, match="nothing was kept"):
        download(server.url(PKG), tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()


def test_a_datapackage_that_differs_from_the_catalog_is_refused(server: Server, out: Path) -> None:
    route = server.routes[PKG]
    route.body = route.body.replace(b'"title"', b'"Title"', 1)  # same size, valid JSON
    line = one_error_line(
        run_cli("download", server.url("/catalog.json"), "-d", DATASET, "--to", str(out), cwd=out)
    )
    assert "datapackage" in line and "hash" in line
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("dataset", "version", "words"),
    [
        (None, None, ["--dataset", DATASET]),
        ("nowhere", None, ["'nowhere'", DATASET]),
        (DATASET, "9.9.9", ["9.9.9", VERSION]),
    ],
)
def test_catalog_choices_are_named(
    server: Server, out: Path, dataset: str | None, version: str | None, words: list[str]
) -> None:
    with pytest.raises(DownloadError) as caught:
        download(server.url("/catalog.json"), out, dataset=dataset, version=version)
    for word in words:
        assert word in str(caught.value)
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------------------ library


def test_a_resource_without_bytes_is_still_held_to_the_limit(server: Server, out: Path) -> None:
    def drop_bytes(package: dict) -> None:
        for item in package["resources"]:
            item.pop("bytes")

    serve_package(server, drop_bytes)
    small = min(len(r.body) for p, r in server.routes.items() if p.endswith(".csv"))
    with pytest.raises(DownloadError, match=rf"larger than the {small} bytes limit"):
        download(server.url(PKG), out, max_bytes=small)
    assert list(out.iterdir()) == []
    assert download(server.url(PKG), out).new  # without sizes, the hashes still pass


def test_the_descriptor_is_read_with_a_limit(server: Server, out: Path) -> None:
    with pytest.raises(DownloadError, match="larger than the 100 bytes limit"):
        download(server.url(PKG), out, max_metadata_bytes=100)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.pop("resources"), "lists no resources"),
        (lambda p: p.update(name="../up"), "not a folder name"),
        (lambda p: resource(p, "sections").pop("hash"), "'sections'.*no hash"),
        (lambda p: resource(p, "sections").update(hash="sha256:xyz"), "malformed sha256"),
        (lambda p: resource(p, "sections").update(bytes="10"), "'sections'.*whole number"),
        (lambda p: resource(p, "sections").update(path="indicators.csv"), "same path"),
        (lambda p: resource(p, "sections").update(path="datapackage.json"), "overwrite"),
    ],
)
def test_a_malformed_descriptor_is_refused(server: Server, out: Path, change, message) -> None:
    serve_package(server, change)
    with pytest.raises(DownloadError, match=message):
        download(server.url(PKG), out)
    assert list(out.iterdir()) == []


def test_bare_hex_hashes_are_sha256(server: Server, out: Path) -> None:
    def bare(package: dict) -> None:
        for item in package["resources"]:
            item["hash"] = item["hash"].removeprefix("sha256:")

    serve_package(server, bare)
    assert download(server.url(PKG), out).new
    tamper(server, Path())
    with pytest.raises(DownloadError, match=r"'indicators'.*sha256 hash"):
        download(server.url(PKG), out / "again")


def test_a_local_resource_may_not_leave_its_folder(published: Path, tmp_path: Path) -> None:
    source = tmp_path / "copy"
    source.mkdir()
    secret = tmp_path / "secret.csv"
    secret.write_bytes(b"not part of the package\n")
    package = package_of(published)
    for item in package["resources"]:
        if item["name"] != "indicators":
            (source / item["path"]).write_bytes(
                (published / DATASET / VERSION / item["path"]).read_bytes()
            )
    (source / "indicators.csv").symlink_to(secret)
    resource(package, "indicators").update(
        bytes=secret.stat().st_size, hash=sha256(secret.read_bytes())
    )
    (source / "datapackage.json").write_text(json.dumps(package), encoding="utf-8")
    with pytest.raises(DownloadError, match=r"'indicators'.*leads outside"):
        download(str(source / "datapackage.json"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_address_nobody_answers_at_says_why(tmp_path: Path) -> None:
    """A refused connection is named as such, not by httpx's class name (ConnectError)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/{DATASET}/{VERSION}/datapackage.json"
    out = tmp_path / "out"
    line = one_error_line(run_cli("download", url, "--to", str(out), cwd=tmp_path))
    assert line.endswith("could not be reached (connection refused)."), line
    assert not out.exists()
