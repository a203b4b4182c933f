"""Pulling sources into raw/: immutable content-addressed snapshots and their manifest."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _helpers import (
    SENTENCES,
    TRADITIONAL,
    ConditionalServer,
    Route,
    files_under,
    http_server,
)

from reportdata import pull as pull_module
from reportdata import read
from reportdata.errors import InputError, PullError
from reportdata.project import load
from reportdata.pull import Policy, latest_snapshot, pull, read_manifest

SOURCES = """\
datasets:
  demo:
    title: 某县报告中的数字
    licence: CC-BY-4.0
sources:
  - id: county
    dataset: demo
    path: raw/embedded/county.txt
  - id: web
    dataset: demo
    url: {url}
"""


def project_at(root: Path, url: str = "http://127.0.0.1:9/none"):
    (root / "raw" / "embedded").mkdir(parents=True, exist_ok=True)
    (root / "sources.yaml").write_text(SOURCES.format(url=url), encoding="utf-8")
    return load(root)


def source(project, sid: str):
    return next(s for s in project.sources if s.id == sid)


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits between retries, recorded instead of slept."""
    asked: list[float] = []
    monkeypatch.setattr(pull_module, "POLICY", Policy(sleep=asked.append))
    return asked


@pytest.fixture
def project(tmp_path: Path):
    return project_at(tmp_path)


def write_report(project, data: bytes) -> None:
    (project.root / "raw" / "embedded" / "county.txt").write_bytes(data)


# ------------------------------------------------------------------------------ from a path


def test_first_pull_stores_the_bytes_and_a_manifest(project) -> None:
    data = SENTENCES.encode("gbk")
    write_report(project, data)
    before = datetime.now(UTC).replace(microsecond=0)
    result = pull(project, source(project, "county"))
    sha = hashlib.sha256(data).hexdigest()

    assert result.new
    stored = project.raw_dir / "county" / f"{sha[:16]}.txt"
    assert stored.read_bytes() == data
    assert result.snapshot.path(project.raw_dir) == stored

    manifest = json.loads((project.raw_dir / "county" / "manifest.json").read_text("utf-8"))
    assert manifest["source"] == "county"
    [snap] = manifest["snapshots"]
    assert snap["sha256"] == sha
    assert snap["bytes"] == len(data)
    assert snap["encoding"] == "gb18030"
    assert snap["format"] == "text"
    assert snap["origin"] == "raw/embedded/county.txt"
    assert snap["file"] == stored.name
    pulled_at = datetime.fromisoformat(snap["pulled_at"].replace("Z", "+00:00"))
    assert before <= pulled_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert snap["pulled_at"].endswith("Z")


def test_snapshots_are_readable_like_any_file_the_user_writes(project) -> None:
    write_report(project, SENTENCES.encode())
    snap = pull(project, source(project, "county")).snapshot
    expected = 0o666 & ~umask()
    for path in (snap.path(project.raw_dir), project.raw_dir / "county" / "manifest.json"):
        assert path.stat().st_mode & 0o777 == expected, path


def test_unchanged_bytes_write_nothing(project) -> None:
    write_report(project, SENTENCES.encode())
    first = pull(project, source(project, "county"))
    manifest = project.raw_dir / "county" / "manifest.json"
    stat_before = manifest.stat()
    files_before = files_under(project.raw_dir / "county")

    again = pull(project, source(project, "county"))

    assert not again.new
    assert again.snapshot == first.snapshot
    assert manifest.stat().st_mtime_ns == stat_before.st_mtime_ns
    assert files_under(project.raw_dir / "county") == files_before


def test_changed_bytes_make_a_second_snapshot_and_keep_the_first(project) -> None:
    old = SENTENCES.encode()
    write_report(project, old)
    first = pull(project, source(project, "county")).snapshot
    first_path = first.path(project.raw_dir)
    first_mtime = first_path.stat().st_mtime_ns

    new = (SENTENCES + "三、教育\n新建学校3所。\n").encode()
    write_report(project, new)
    second = pull(project, source(project, "county"))

    assert second.new
    assert second.snapshot.sha256 == hashlib.sha256(new).hexdigest()
    assert second.snapshot.path(project.raw_dir).read_bytes() == new
    assert first_path.read_bytes() == old
    assert first_path.stat().st_mtime_ns == first_mtime
    snaps = read_manifest(project.raw_dir, "county")
    assert [s.sha256 for s in snaps] == [first.sha256, second.snapshot.sha256]
    assert latest_snapshot(project.raw_dir, "county") == second.snapshot


def test_bytes_that_come_back_make_the_old_snapshot_current_again(project) -> None:
    a, b = SENTENCES.encode(), TRADITIONAL.encode("big5")
    write_report(project, a)
    first = pull(project, source(project, "county")).snapshot
    write_report(project, b)
    pull(project, source(project, "county"))
    write_report(project, a)
    again = pull(project, source(project, "county"))

    assert again.new
    assert latest_snapshot(project.raw_dir, "county").sha256 == first.sha256
    assert first.path(project.raw_dir).read_bytes() == a
    # one file per distinct content
    assert len(list((project.raw_dir / "county").glob("*.txt"))) == 2


def test_a_missing_file_is_a_pull_error(project) -> None:
    with pytest.raises(PullError, match="does not exist"):
        pull(project, source(project, "county"))
    assert not (project.raw_dir / "county").exists()


def test_a_damaged_manifest_is_reported(project) -> None:
    write_report(project, SENTENCES.encode())
    pull(project, source(project, "county"))
    (project.raw_dir / "county" / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(PullError, match="manifest"):
        pull(project, source(project, "county"))


def test_a_binary_file_is_refused_and_nothing_is_written(project) -> None:
    write_report(project, b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(InputError, match="binary"):
        pull(project, source(project, "county"))
    assert not (project.raw_dir / "county").exists()


# ------------------------------------------------------------------------------ over HTTP


def web_project(tmp_path: Path, url: str):
    project = project_at(tmp_path, url)
    return project, source(project, "web")


def test_pull_over_http_records_the_response_headers(tmp_path: Path) -> None:
    body = SENTENCES.encode("gbk")
    headers = {
        "Content-Type": "text/plain; charset=gbk",
        "ETag": '"v1-abc"',
        "Last-Modified": "Wed, 01 Mar 2023 08:00:00 GMT",
    }
    with http_server({"/report.txt": Route(200, body, headers)}) as server:
        project, web = web_project(tmp_path, server.url("/report.txt"))
        result = pull(project, web)
        again = pull(project, web)

    assert result.new and not again.new
    assert server.hits == ["/report.txt", "/report.txt"]
    snap = result.snapshot
    assert snap.path(project.raw_dir).read_bytes() == body
    [recorded] = json.loads((project.raw_dir / "web" / "manifest.json").read_text("utf-8"))[
        "snapshots"
    ]
    assert recorded["etag"] == '"v1-abc"'
    assert recorded["last_modified"] == "Wed, 01 Mar 2023 08:00:00 GMT"
    assert recorded["content_type"] == "text/plain; charset=gbk"
    assert recorded["origin"] == server.url("/report.txt")
    assert recorded["encoding"] == "gb18030"
    assert recorded["sha256"] == hashlib.sha256(body).hexdigest()


def test_an_html_page_is_stored_as_html(tmp_path: Path) -> None:
    body = (
        '<html><head><meta charset="utf-8"></head><body><div>'
        f"<p>{SENTENCES.splitlines()[1]}</p><p>{SENTENCES.splitlines()[3]}</p>"
        "</div></body></html>"
    ).encode()
    route = Route(200, body, {"Content-Type": "text/html; charset=utf-8"})
    with http_server({"/news/1": route}) as server:
        project, web = web_project(tmp_path, server.url("/news/1"))
        snap = pull(project, web).snapshot
    assert snap.format == "html"
    assert snap.file.endswith(".html")
    assert snap.path(project.raw_dir).read_bytes() == body


def test_a_redirect_is_followed(tmp_path: Path) -> None:
    body = SENTENCES.encode()
    routes = {
        "/old": Route(301, b"", {"Location": "/new"}),
        "/new": Route(200, body, {"Content-Type": "text/plain"}),
    }
    with http_server(routes) as server:
        project, web = web_project(tmp_path, server.url("/old"))
        snap = pull(project, web).snapshot
    assert snap.path(project.raw_dir).read_bytes() == body


@pytest.mark.parametrize(("status", "attempts"), [(404, 1), (500, Policy().attempts)])
def test_http_errors_are_pull_errors(
    tmp_path: Path, waits: list[float], status: int, attempts: int
) -> None:
    with http_server({"/r": Route(status, b"oops")}) as server:
        project, web = web_project(tmp_path, server.url("/r"))
        with pytest.raises(PullError, match=f"HTTP {status}"):
            pull(project, web)
    assert len(server.hits) == attempts  # a 5xx is asked again, a 404 is not
    assert len(waits) == attempts - 1
    assert not (project.raw_dir / "web").exists()


def test_a_redirect_loop_is_a_pull_error(tmp_path: Path) -> None:
    routes = {
        "/a": Route(302, b"", {"Location": "/b"}),
        "/b": Route(302, b"", {"Location": "/a"}),
    }
    with http_server(routes) as server:
        project, web = web_project(tmp_path, server.url("/a"))
        with pytest.raises(PullError, match="redirects"):
            pull(project, web)
        assert len(server.hits) > 2
    assert not (project.raw_dir / "web").exists()


def test_an_unreachable_server_is_a_pull_error(tmp_path: Path) -> None:
    with http_server({}) as server:
        url = server.url("/gone")
    project, web = web_project(tmp_path, url)  # the server has stopped: connection refused
    with pytest.raises(PullError, match="could not be fetched"):
        pull(project, web)


@pytest.mark.parametrize("send_length", [True, False], ids=["content-length", "streamed"])
def test_a_response_over_the_limit_is_refused_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, send_length: bool
) -> None:
    body = SENTENCES.encode() * 50
    monkeypatch.setattr(read, "MAX_BYTES", len(body) // 2)
    route = Route(200, body, {"Content-Type": "text/plain"}, send_length=send_length)
    with http_server({"/big": route}) as server:
        project, web = web_project(tmp_path, server.url("/big"))
        with pytest.raises(PullError, match="larger than"):
            pull(project, web)
    assert not (project.raw_dir / "web").exists()


def test_a_binary_body_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    body = bytes([0x80, 0xFF, 0x41, 0xFE, 0x7F, 0x81, 0x20, 0xFF]) * 64
    route = Route(200, body, {"Content-Type": "application/octet-stream"})
    with http_server({"/blob": route}) as server:
        project, web = web_project(tmp_path, server.url("/blob"))
        with pytest.raises(InputError):
            pull(project, web)
    assert files_under(project.raw_dir) == {}


def test_answers_of_304_keep_the_connection_for_the_next_pull(tmp_path: Path) -> None:
    server = ConditionalServer({"/report.txt": SENTENCES.encode()})
    try:
        project, web = web_project(tmp_path, f"{server.base}/report.txt")
        with pull_module.HttpClient() as client:
            first = pull(project, web, client=client)
            again = [pull(project, web, client=client) for _ in range(20)]
    finally:
        server.close()
    assert first.new and all(r.not_modified for r in again)
    assert server.answers == {200: 1, 304: 20}
    assert server.connections == 1  # every answer read to its end and given back


def test_the_proxy_the_environment_names_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "http://reports.invalid/report.txt"  # reachable only through the proxy
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    route = Route(200, SENTENCES.encode(), {"Content-Type": "text/plain"})
    with http_server({url: route}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.base)
        project, web = web_project(tmp_path, url)
        snap = pull(project, web).snapshot
    assert proxy.hits == [url]  # asked in absolute form, as a proxy is
    assert snap.path(project.raw_dir).read_bytes() == SENTENCES.encode()


def test_a_gzipped_answer_is_stored_as_the_report_it_encodes(tmp_path: Path) -> None:
    import gzip

    body = SENTENCES.encode()
    route = Route(200, gzip.compress(body), {"Content-Encoding": "gzip"})
    with http_server({"/r.txt": route}) as server:
        project, web = web_project(tmp_path, server.url("/r.txt"))
        snap = pull(project, web).snapshot
    assert snap.path(project.raw_dir).read_bytes() == body


def test_the_size_limit_holds_for_the_decoded_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    monkeypatch.setattr(read, "MAX_BYTES", 64 << 10)
    bomb = gzip.compress(SENTENCES.encode() * 20_000)  # ~2 MB of text in a few KB
    route = Route(200, bomb, {"Content-Encoding": "gzip", "Content-Type": "text/plain"})
    with http_server({"/bomb.txt": route}) as server:
        project, web = web_project(tmp_path, server.url("/bomb.txt"))
        with pytest.raises(PullError, match="larger than"):
            pull(project, web)
    assert not (project.raw_dir / "web").exists()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no authority signed, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_is_verified_against_the_trusted_authorities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose certificate no trusted authority signed is refused, nothing written;
    once its certificate is trusted, the same address is pulled."""
    import functools
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    route = Route(200, SENTENCES.encode(), {"Content-Type": "text/plain; charset=utf-8"})
    with http_server({"/r.txt": route}, tls=context) as server:
        url = server.url("/r.txt").replace("http://", "https://")
        (tmp_path / "p").mkdir()
        project, web = web_project(tmp_path / "p", url)
        with pytest.raises(PullError, match="certificate") as info:
            pull(project, web, Policy(attempts=1))
        assert url in str(info.value)
        assert files_under(project.raw_dir) == {}

        monkeypatch.setattr(pull_module, "_ca_file", functools.cache(lambda: str(cert)))
        snap = pull(project, web, Policy(attempts=1)).snapshot
    assert snap.path(project.raw_dir).read_bytes() == SENTENCES.encode()


def test_a_long_answer_to_an_error_or_a_redirect_is_not_read_yet_understood(
    tmp_path: Path,
) -> None:
    """The page that comes with a 404 or a redirect is dropped after its first 64 KB: the
    status still decides (a 404 is final, not a broken connection; a redirect is followed)."""
    note = b"<html>" + b"x" * (300 * 1024) + b"</html>"
    routes = {
        "/gone": Route(404, note, {"Content-Type": "text/html"}),
        "/moved": Route(302, note, {"Location": "/final", "Content-Type": "text/html"}),
        "/final": Route(200, SENTENCES.encode(), {"Content-Type": "text/plain; charset=utf-8"}),
    }
    with http_server(routes) as server:
        (tmp_path / "a").mkdir()
        project, web = web_project(tmp_path / "a", server.url("/gone"))
        with pytest.raises(PullError) as info:
            pull(project, web, Policy(attempts=3, sleep=lambda s: None))
        assert str(info.value) == f"{server.url('/gone')} returned HTTP 404."
        assert server.hits == ["/gone"]  # not retried as if the connection broke

        (tmp_path / "b").mkdir()
        project, web = web_project(tmp_path / "b", server.url("/moved"))
        snap = pull(project, web, Policy(attempts=1)).snapshot
    assert snap.path(project.raw_dir).read_bytes() == SENTENCES.encode()
    assert server.hits[1:] == ["/moved", "/final"]


def test_many_at_once_drop_long_notes_follow_redirects_and_verify_https(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same answers through `pull_sources`, which drives its transfers from one thread:
    a long 404 page is dropped yet final, a redirect followed, an untrusted certificate
    refused."""
    import ssl

    from reportdata import pipeline

    note = b"<html>" + b"x" * (300 * 1024) + b"</html>"
    routes = {
        "/gone": Route(404, note, {"Content-Type": "text/html"}),
        "/moved": Route(302, note, {"Location": "/final", "Content-Type": "text/html"}),
        "/final": Route(200, SENTENCES.encode(), {"Content-Type": "text/plain; charset=utf-8"}),
    }
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    monkeypatch.setattr(pull_module, "POLICY", Policy(attempts=3, sleep=lambda s: None))
    with http_server(routes) as plain, http_server(routes, tls=context) as tls:
        secure = tls.url("/final").replace("http://", "https://")
        urls = {"gone": plain.url("/gone"), "moved": plain.url("/moved"), "secure": secure}
        root = tmp_path / "many"
        root.mkdir()
        lines = ["datasets:\n  demo:\n    title: 县里的数字\n    licence: CC-BY-4.0\nsources:\n"]
        lines += [f"  - id: {k}\n    dataset: demo\n    url: {u}\n" for k, u in urls.items()]
        (root / "sources.yaml").write_text("".join(lines), encoding="utf-8")
        project = load(root)
        results, failures = pipeline.pull_sources(project, project.sources)
    assert failures["gone"] == f"{urls['gone']} returned HTTP 404."
    assert "certificate" in failures["secure"] and secure in failures["secure"]
    assert list(results) == ["moved"]
    assert results["moved"].snapshot.path(project.raw_dir).read_bytes() == SENTENCES.encode()
    assert plain.hits.count("/gone") == 1 and tls.hits == []  # neither retried
