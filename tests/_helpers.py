"""Helpers shared by the tests of reading, pulling, the project registry and the CLI.

Kept out of conftest.py on purpose: that file holds the Prefect settings of the flow tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = REPO / "raw" / "embedded"
CLI = Path(sys.executable).with_name("reportdata")

# Short sentences written for the tests; not taken from any report.
SENTENCES = (
    "一、旅游\n"
    "2023年,全县实现旅游收入8.6亿元,接待游客120万人次。\n"
    "二、就业\n"
    "城镇新增就业3200人,发放创业担保贷款4500万元。\n"
)
TRADITIONAL = "2023年,全縣實現旅遊收入8.6億元,接待遊客120萬人次。城鎮新增就業3200人。\n"


def make_pdf(content: bytes) -> bytes:
    """A one-page PDF whose page draws ``content`` (a content stream), xref offsets exact."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 144] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def text_pdf(text: str) -> bytes:
    """A PDF with one line of ASCII text in its text layer."""
    return make_pdf(b"BT /F1 12 Tf 20 100 Td (%s) Tj ET" % text.encode("ascii"))


def make_project(tmp_path: Path) -> Path:
    """A copy of the repository's project (sources.yaml and raw/embedded/) in tmp_path."""
    root = tmp_path / "project"
    (root / "raw").mkdir(parents=True)
    shutil.copyfile(REPO / "sources.yaml", root / "sources.yaml")
    shutil.copytree(EMBEDDED, root / "raw" / "embedded")
    return root


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, by relative path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed console script, as a user would."""
    return subprocess.run(
        [str(CLI), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "DO_NOT_TRACK": "1", "PYTHONIOENCODING": "utf-8"},
    )


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True  # False: no Content-Length, the body ends when the server closes


@dataclass
class Server:
    base: str
    routes: dict[str, Route]
    hits: list[str]

    def url(self, path: str) -> str:
        return self.base + path


@contextmanager
def http_server(routes: dict[str, Route], tls=None) -> Iterator[Server]:
    """A local HTTP server on 127.0.0.1 (a free port) answering ``routes``; 404 otherwise.
    With ``tls`` (a server-side ssl.SSLContext) it speaks HTTPS."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            route = routes.get(self.path, Route(404, b"not found"))
            self.send_response(route.status)
            for name, value in route.headers.items():
                self.send_header(name, value)
            if route.send_length:
                self.send_header("Content-Length", str(len(route.body)))
            self.end_headers()
            self.wfile.write(route.body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = WideServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{server.server_address[1]}", routes, hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class WideServer(ThreadingHTTPServer):
    """A threaded test server whose listen backlog takes a client's eight connections at once
    (socketserver's default of 5 drops the others' SYNs: a second's stall each)."""

    request_queue_size = 128


class ConditionalServer:
    """Reports on 127.0.0.1 answering If-None-Match with 304; counts answers and connections."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        import hashlib
        import threading
        from collections import Counter
        from http.server import BaseHTTPRequestHandler

        self.answers: Counter[int] = Counter()
        self.connections = 0
        tags = {path: f'"{hashlib.sha256(b).hexdigest()[:16]}"' for path, b in bodies.items()}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps connections open between requests

            def setup(self) -> None:
                outer.connections += 1
                super().setup()

            def do_GET(self) -> None:
                body, tag = bodies[self.path], tags[self.path]
                fresh = self.headers.get("If-None-Match") == tag
                outer.answers[304 if fresh else 200] += 1
                self.send_response(304 if fresh else 200)
                self.send_header("ETag", tag)
                if not fresh:
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not fresh:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = WideServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def run_flow(*args, **kwargs):
    """Run the (async) `publish-dataset` flow to its end, as `reportdata run` does."""
    import asyncio

    from flows.publish_dataset import publish_dataset

    return asyncio.run(publish_dataset(*args, **kwargs))
