"""Pulling from a server that misbehaves on purpose: retries, backoff, timeouts, limits, 304s.

One local threaded HTTP server plays a script of modes, one per request (the last repeats).
Waits between retries go to a recorder, never to the real clock.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _helpers import SENTENCES, files_under, text_pdf

from reportdata import read
from reportdata.errors import InputError, PullError
from reportdata.project import load
from reportdata.pull import (
    MAX_REDIRECTS,
    USER_AGENT,
    Policy,
    pull,
    retry_after_seconds,
)

BODY = SENTENCES.encode("utf-8")
ANNOUNCED = 1000  # the Content-Length of the broken answers
PARTIAL = 100  # the bytes they send before breaking off
HUGE = 200 * 2**20
ETAG = '"county-v1"'
LAST_MODIFIED = "Tue, 05 Mar 2024 02:00:00 GMT"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
ZIP = b"PK\x03\x04" + bytes(range(256)) * 4


FLIGHT: dict = {"lock": threading.Lock(), "now": 0, "most": 0}


class FaultServer:
    """A 127.0.0.1 server answering each request with the next mode of its script."""

    def __init__(self, *modes: str) -> None:
        self.modes = list(modes) or ["ok"]
        self.requests: list[dict[str, str]] = []
        self.etag = ""
        self.last_modified = ""
        self.body = BODY
        self.content_type = "text/plain; charset=utf-8"
        self.release = threading.Event()  # ends every stall when the test is over
        self.done = threading.Event()  # the oversized answer stopped writing
        self.hung_up = False
        self.base = ""

    def url(self, path: str = "/report.txt") -> str:
        return self.base + path

    def in_flight(self, step: int) -> None:
        """Count the slow answers being given at once (shared by the servers in `FLIGHT`)."""
        with FLIGHT["lock"]:
            FLIGHT["now"] += step
            FLIGHT["most"] = max(FLIGHT["most"], FLIGHT["now"])

    def next_mode(self, headers: dict[str, str]) -> str:
        self.requests.append(headers)
        return self.modes[min(len(self.requests), len(self.modes)) - 1]


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            mode = server.next_mode({k.lower(): v for k, v in self.headers.items()})
            with contextlib.suppress(OSError):  # the client hung up
                getattr(self, "mode_" + mode.split(":")[0])(mode)

        def head(self, status: int, length: int, **headers: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def mode_ok(self, mode: str) -> None:
            tags = {"ETag": server.etag, "Last-Modified": server.last_modified}
            tags = {k: v for k, v in tags.items() if v}
            fresh = (server.etag and self.headers.get("If-None-Match") == server.etag) or (
                server.last_modified
                and self.headers.get("If-Modified-Since") == server.last_modified
            )
            if fresh:
                self.head(304, 0, **tags)
                return
            self.head(200, len(server.body), Content_Type=server.content_type, **tags)
            self.wfile.write(server.body)

        def mode_status(self, mode: str) -> None:  # "status:503" or "status:503:Retry-After"
            _, code, *after = mode.split(":", 2)
            extra = {"Retry-After": after[0]} if after else {}
            self.head(int(code), 4, **extra)
            self.wfile.write(b"oops")

        def mode_stall(self, mode: str) -> None:  # no answer at all
            server.release.wait(10)

        def mode_midstall(self, mode: str) -> None:  # part of the body, then silence
            self.head(200, ANNOUNCED, Content_Type="text/plain")
            self.wfile.write(BODY[:PARTIAL])
            server.release.wait(10)

        def mode_trickle(self, mode: str) -> None:  # a byte at a time, never quite silent
            self.head(200, ANNOUNCED, Content_Type="text/plain")
            for _ in range(ANNOUNCED):
                self.wfile.write(b"a")
                if server.release.wait(0.05):
                    return

        def mode_short(self, mode: str) -> None:  # fewer bytes than announced, then close
            self.head(200, ANNOUNCED, Content_Type="text/plain")
            self.wfile.write(b"a" * PARTIAL)
            self.close_connection = True

        def mode_reset(self, mode: str) -> None:  # part of the body, then a TCP reset
            self.head(200, ANNOUNCED, Content_Type="text/plain")
            self.wfile.write(b"a" * PARTIAL)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True

        def mode_slow(self, mode: str) -> None:  # the report, after a fifth of a second
            server.in_flight(+1)
            try:
                server.release.wait(0.2)
                self.mode_ok(mode)
            finally:
                server.in_flight(-1)

        def mode_loop(self, mode: str) -> None:
            self.head(302, 0, Location=self.path)

        def mode_typed(self, mode: str) -> None:  # "typed:image/png:png"
            _, media, kind = mode.split(":", 2)
            body = {"png": PNG, "zip": ZIP, "pdf": text_pdf("Report 2023")}[kind]
            self.head(200, len(body), Content_Type=media)
            self.wfile.write(body)

        def mode_huge(self, mode: str) -> None:  # announces far too much, then waits
            self.head(200, HUGE, Content_Type="text/plain")
            self.connection.settimeout(10)
            try:
                server.hung_up = self.connection.recv(1) == b""  # b"": the client closed
            finally:
                server.done.set()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def serve() -> Iterator:
    """Start fault servers for a test: ``serve("status:500", "ok")``; stopped afterwards."""
    started: list[tuple[FaultServer, ThreadingHTTPServer, threading.Thread]] = []

    def start(*modes: str) -> FaultServer:
        fault = FaultServer(*modes)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fault))
        fault.base = f"http://127.0.0.1:{httpd.server_address[1]}"
        thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        started.append((fault, httpd, thread))
        return fault

    yield start
    for fault, httpd, thread in started:
        fault.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class Clock:
    """A monotonic clock that moves only when the pull waits; it records every wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def fast(clock: Clock, **settings: object) -> Policy:
    """A policy whose waits are recorded by ``clock`` and whose jitter is a fixed half."""
    settings.setdefault("rand", lambda: 0.5)
    return Policy(sleep=clock.sleep, clock=clock, **settings)


def project_for(root: Path, url: str):
    (root / "sources.yaml").write_text(
        "datasets:\n  demo:\n    title: 县里的数字\n    licence: CC-BY-4.0\n"
        f"sources:\n  - id: web\n    dataset: demo\n    url: {url}\n",
        encoding="utf-8",
    )
    project = load(root)
    return project, project.sources[0]


def one_sentence(message: str, url: str) -> None:
    assert url in message
    assert message.endswith(".") and "\n" not in message
    assert ". " not in message, message  # a single sentence


# ------------------------------------------------------------------------------ retries


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_passing_failure_is_retried_and_the_pull_succeeds(
    tmp_path: Path, serve, status: int
) -> None:
    server = serve(f"status:{status}", "ok")
    clock = Clock()
    project, web = project_for(tmp_path, server.url())
    result = pull(project, web, fast(clock))
    assert result.new
    assert result.snapshot.path(project.raw_dir).read_bytes() == BODY
    assert len(server.requests) == 2
    assert len(clock.waits) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_a_client_error_is_not_retried(tmp_path: Path, serve, status: int) -> None:
    server = serve(f"status:{status}")
    clock = Clock()
    project, web = project_for(tmp_path, server.url())
    with pytest.raises(PullError) as info:
        pull(project, web, fast(clock))
    assert f"HTTP {status}" in str(info.value)
    one_sentence(str(info.value), server.url())
    assert len(server.requests) == 1 and clock.waits == []


def test_retry_after_in_seconds_is_the_wait(tmp_path: Path, serve) -> None:
    server = serve("status:503:1", "ok")
    clock = Clock()
    project, web = project_for(tmp_path, server.url())
    assert pull(project, web, fast(clock, rand=lambda: 0.0)).new
    assert clock.waits == [1.0]  # the jitter alone would have waited nothing


def test_a_long_retry_after_is_capped(tmp_path: Path, serve) -> None:
    server = serve("status:429:3600", "ok")
    clock = Clock()
    policy = fast(clock, max_delay=7.0)
    project, web = project_for(tmp_path, server.url())
    assert pull(project, web, policy).new
    assert clock.waits == [policy.max_delay]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2024, 3, 5, 2, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("1", now) == 1.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_a_server_that_stays_down_ends_in_one_sentence_and_raw_is_unchanged(
    tmp_path: Path, serve
) -> None:
    server = serve("ok", "status:503")
    clock = Clock()
    policy = fast(clock, rand=lambda: 0.5, base_delay=1.0, max_delay=60.0)
    project, web = project_for(tmp_path, server.url())
    pull(project, web, policy)
    server.body = BODY + "三、交通\n新修道路12公里。\n".encode()  # a new report, if it arrived
    before = files_under(project.raw_dir)

    with pytest.raises(PullError) as info:
        pull(project, web, policy)

    message = str(info.value)
    one_sentence(message, server.url())
    assert "HTTP 503" in message and f"after {policy.attempts} attempts" in message
    assert len(server.requests) == 1 + policy.attempts
    # full jitter: a wait is rand() times a window that doubles each time
    assert clock.waits == [0.5 * 2**i for i in range(policy.attempts - 1)]
    assert files_under(project.raw_dir) == before


def test_jitter_spreads_the_waits_inside_the_doubling_window(tmp_path: Path, serve) -> None:
    server = serve("status:500")
    draws = iter([0.9, 0.1, 0.7])
    clock = Clock()
    policy = fast(clock, rand=lambda: next(draws), base_delay=2.0)
    project, web = project_for(tmp_path, server.url())
    with pytest.raises(PullError):
        pull(project, web, policy)
    assert clock.waits == pytest.approx([0.9 * 2.0, 0.1 * 4.0, 0.7 * 8.0])


def test_the_total_time_allowed_bounds_the_retries(tmp_path: Path, serve) -> None:
    server = serve("status:502")
    clock = Clock()
    policy = fast(clock, rand=lambda: 1.0, base_delay=1.0, total=2.5, attempts=10)
    project, web = project_for(tmp_path, server.url())
    with pytest.raises(PullError) as info:
        pull(project, web, policy)
    # waits of 1 s then 2 s would pass 2.5 s: it stops after the second attempt
    assert clock.waits == [1.0]
    assert len(server.requests) == 2
    assert "2.5 s allowed" in str(info.value)
    one_sentence(str(info.value), server.url())


def test_a_refused_connection_is_retried_then_reported(tmp_path: Path, serve) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/report.txt"
    clock = Clock()
    project, web = project_for(tmp_path, url)
    with pytest.raises(PullError) as info:
        pull(project, web, fast(clock, attempts=3))
    assert "connection refused" in str(info.value).lower()
    assert "after 3 attempts" in str(info.value)
    one_sentence(str(info.value), url)
    assert len(clock.waits) == 2
    assert files_under(project.raw_dir) == {}


# ------------------------------------------------------------------------------ broken answers


def test_a_stalled_server_is_given_up_on(tmp_path: Path, serve) -> None:
    server = serve("stall")
    policy = fast(Clock(), read_timeout=0.2, attempts=2)
    project, web = project_for(tmp_path, server.url())
    with pytest.raises(PullError) as info:
        pull(project, web, policy)
    assert "did not answer within 0.2 s" in str(info.value)
    one_sentence(str(info.value), server.url())
    assert len(server.requests) == 2
    assert files_under(project.raw_dir) == {}


def test_a_body_that_stalls_midway_is_given_up_on(tmp_path: Path, serve) -> None:
    server = serve("midstall", "ok")
    clock = Clock()
    project, web = project_for(tmp_path, server.url())
    result = pull(project, web, fast(clock, read_timeout=0.2))
    assert result.snapshot.path(project.raw_dir).read_bytes() == BODY  # the retry got it
    assert len(clock.waits) == 1


def test_a_trickling_body_ends_at_the_body_deadline(tmp_path: Path, serve) -> None:
    server = serve("trickle")
    waits: list[float] = []
    policy = Policy(sleep=waits.append, read_timeout=5.0, body_timeout=0.3, attempts=1)
    project, web = project_for(tmp_path, server.url())
    with pytest.raises(PullError) as info:
        pull(project, web, policy)
    assert "in 0.3 s" in str(info.value)
    one_sentence(str(info.value), server.url())
    assert files_under(project.raw_dir) == {}


@pytest.mark.parametrize("mode", ["short", "reset"])
def test_a_broken_body_is_retried(tmp_path: Path, serve, mode: str) -> None:
    server = serve(mode, "ok")
    project, web = project_for(tmp_path, server.url())
    result = pull(project, web, fast(Clock()))
    assert result.snapshot.path(project.raw_dir).read_bytes() == BODY
    assert len(server.requests) == 2


@pytest.mark.parametrize("mode", ["short", "reset"])
def test_a_body_that_always_breaks_is_reported_and_raw_is_unchanged(
    tmp_path: Path, serve, mode: str
) -> None:
    server = serve("ok", mode)
    policy = fast(Clock())
    project, web = project_for(tmp_path, server.url())
    pull(project, web, policy)
    before = files_under(project.raw_dir)
    with pytest.raises(PullError) as info:
        pull(project, web, policy)
    message = str(info.value)
    one_sentence(message, server.url())
    assert f"after {policy.attempts} attempts" in message
    if mode == "short":
        assert f"sent {PARTIAL} of the {ANNOUNCED} bytes it announced" in message
    assert files_under(project.raw_dir) == before


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("media", "kind"), [("image/png", "png"), ("application/zip", "zip"), ("image/jpeg", "zip")]
)
def test_a_wrong_content_type_is_refused_at_once(
    tmp_path: Path, serve, media: str, kind: str
) -> None:
    server = serve(f"typed:{media}:{kind}")
    project, web = project_for(tmp_path, server.url())
    with pytest.raises(PullError) as info:
        pull(project, web, fast(Clock()))
    assert media in str(info.value) and "not a text, HTML or PDF report" in str(info.value)
    one_sentence(str(info.value), server.url())
    assert len(server.requests) == 1
    assert files_under(project.raw_dir) == {}


def test_octet_stream_bytes_decide(tmp_path: Path, serve) -> None:
    pdf_server = serve("typed:application/octet-stream:pdf")
    png_server = serve("typed:application/octet-stream:png")
    (tmp_path / "a").mkdir()
    project, web = project_for(tmp_path / "a", pdf_server.url())
    assert pull(project, web, fast(Clock())).snapshot.format == "pdf"

    (tmp_path / "b").mkdir()
    project, web = project_for(tmp_path / "b", png_server.url())
    with pytest.raises(InputError) as info:
        pull(project, web, fast(Clock()))
    assert png_server.url() in str(info.value) and "binary" in str(info.value)
    assert files_under(project.raw_dir) == {}


def test_a_redirect_loop_is_refused_without_retrying(tmp_path: Path, serve) -> None:
    server = serve("loop")
    clock = Clock()
    project, web = project_for(tmp_path, server.url())
    with pytest.raises(PullError) as info:
        pull(project, web, fast(clock))
    assert f"redirects more than {MAX_REDIRECTS} times" in str(info.value)
    one_sentence(str(info.value), server.url())
    assert len(server.requests) == MAX_REDIRECTS + 1 and clock.waits == []


def test_an_advertised_size_over_the_limit_is_refused_before_reading(
    tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "MAX_BYTES", 4096)
    server = serve("huge")  # sends the headers only: a client that reads would time out
    clock = Clock()
    project, web = project_for(tmp_path, server.url())
    with pytest.raises(PullError) as info:
        pull(project, web, fast(clock, read_timeout=2.0))
    assert "larger than the 4096 bytes limit" in str(info.value)
    one_sentence(str(info.value), server.url())
    assert server.done.wait(10) and server.hung_up  # the client closed the connection
    assert len(server.requests) == 1 and clock.waits == []
    assert files_under(project.raw_dir) == {}


def test_the_user_agent_is_sent(tmp_path: Path, serve) -> None:
    server = serve("ok")
    project, web = project_for(tmp_path, server.url())
    pull(project, web, fast(Clock()))
    assert server.requests[0]["user-agent"] == USER_AGENT


# ------------------------------------------------------------------------------ conditional GET


@pytest.mark.parametrize(
    ("attribute", "value", "header"),
    [("etag", ETAG, "if-none-match"), ("last_modified", LAST_MODIFIED, "if-modified-since")],
)
def test_an_unchanged_report_answers_304_and_nothing_is_written(
    tmp_path: Path, serve, attribute: str, value: str, header: str
) -> None:
    server = serve("ok")
    setattr(server, attribute, value)
    project, web = project_for(tmp_path, server.url())
    first = pull(project, web, fast(Clock()))
    manifest = project.raw_dir / "web" / "manifest.json"
    recorded = json.loads(manifest.read_text("utf-8"))["snapshots"][0]
    assert recorded[attribute] == value
    before = files_under(project.raw_dir)
    mtime = manifest.stat().st_mtime_ns

    again = pull(project, web, fast(Clock()))

    assert header not in server.requests[0]
    assert server.requests[1][header] == value
    assert again.not_modified and not again.new and not first.not_modified
    assert again.snapshot == first.snapshot
    assert files_under(project.raw_dir) == before
    assert manifest.stat().st_mtime_ns == mtime


def test_a_changed_report_replaces_the_etag(tmp_path: Path, serve) -> None:
    server = serve("ok")
    server.etag = ETAG
    project, web = project_for(tmp_path, server.url())
    pull(project, web, fast(Clock()))
    server.etag, server.body = '"county-v2"', BODY + "四、卫生\n新建诊所3家。\n".encode()

    result = pull(project, web, fast(Clock()))

    assert server.requests[1]["if-none-match"] == ETAG
    assert result.new and not result.not_modified
    assert result.snapshot.etag == '"county-v2"'
    assert result.snapshot.path(project.raw_dir).read_bytes() == server.body


def test_no_validators_are_sent_when_the_snapshot_file_is_gone(tmp_path: Path, serve) -> None:
    server = serve("ok")
    server.etag = ETAG
    project, web = project_for(tmp_path, server.url())
    first = pull(project, web, fast(Clock()))
    first.snapshot.path(project.raw_dir).unlink()

    again = pull(project, web, fast(Clock()))

    assert "if-none-match" not in server.requests[1]
    assert again.snapshot.path(project.raw_dir).read_bytes() == BODY


# ------------------------------------------------------------------------------ many at once

# One source a script; together they take every path a pull can end by.
SCRIPTS = (
    ("ok",),
    ("slow",),
    ("slow",),
    ("slow",),
    ("slow",),
    ("status:503", "ok"),
    ("status:503:2", "slow"),
    ("status:404",),
    ("status:500",),
    ("short", "ok"),
    ("reset", "reset", "ok"),
    ("stall", "ok"),
    ("midstall",),
    ("loop",),
    ("typed:image/png:png",),
    ("typed:application/zip:zip",),
)


def _outcomes(bases: list[str], results: dict, failures: dict) -> dict[str, str]:
    """Each source's outcome, its server's address replaced by one placeholder."""
    out = {sid: f"stored {r.snapshot.sha256} new={r.new}" for sid, r in results.items()}
    for sid, sentence in failures.items():
        for base in bases:
            sentence = sentence.replace(base, "http://server")
        out[sid] = sentence
    return out


def _many(root: Path, serve) -> tuple[object, list[str], list[FaultServer]]:
    servers = [serve(*script) for script in SCRIPTS]
    lines = ["datasets:\n  demo:\n    title: 县里的数字\n    licence: CC-BY-4.0\nsources:\n"]
    for i, server in enumerate(servers):
        lines.append(f"  - id: s{i:02d}\n    dataset: demo\n    url: {server.url()}\n")
    root.mkdir()
    (root / "sources.yaml").write_text("".join(lines), encoding="utf-8")
    return load(root), [s.base for s in servers], servers


def test_many_pulls_at_once_end_as_each_does_alone(
    tmp_path: Path, serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reportdata import pipeline
    from reportdata import pull as pull_module

    alone_clock, many_clock = Clock(), Clock()
    settings = {"read_timeout": 0.3, "attempts": 3, "base_delay": 1.0}

    project, bases, servers = _many(tmp_path / "alone", serve)
    results, failures = {}, {}
    for source in project.sources:
        try:
            results[source.id] = pull(project, source, fast(alone_clock, **settings))
        except PullError as exc:
            failures[source.id] = str(exc)
        except InputError as exc:
            failures[source.id] = str(exc)
    alone = _outcomes(bases, results, failures)
    alone_requests = [len(s.requests) for s in servers]

    project, bases, servers = _many(tmp_path / "many", serve)
    monkeypatch.setattr(pull_module, "POLICY", fast(many_clock, **settings))
    heard: list[tuple[str, bool, str]] = []

    def on_done(sid: str, result: object) -> None:
        heard.append((sid, result is not None, threading.current_thread().name))

    FLIGHT.update(now=0, most=0)
    results, failures = pipeline.pull_sources(project, project.sources, workers=3, on_done=on_done)

    assert _outcomes(bases, results, failures) == alone
    assert list(results) + list(failures) != [] and set(results) | set(failures) == set(alone)
    assert list(results) == [s.id for s in project.sources if s.id in results]  # in order
    assert [len(s.requests) for s in servers] == alone_requests  # the same attempts
    # backoffs that overlap are waited out together, never longer than one by one
    assert max(many_clock.waits) > 0 and sum(many_clock.waits) < sum(alone_clock.waits)
    assert FLIGHT["most"] == 3  # three at a time, never more
    assert sorted(sid for sid, _, _ in heard) == sorted(alone)
    assert {thread for _, _, thread in heard} == {threading.current_thread().name}
    assert {sid for sid, ok, _ in heard if ok} == set(results)
    assert sum("stored" in outcome for outcome in alone.values()) >= 8
