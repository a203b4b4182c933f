"""Pull a source into raw/: immutable, content-addressed snapshots with a manifest.

A URL is fetched patiently but boundedly: conditional requests (ETag, Last-Modified) skip
unchanged reports, passing failures (5xx, 408, 429, timeouts, broken connections, short
bodies) are retried with exponential backoff and full jitter, honouring ``Retry-After``, and
every failure ends as one sentence with raw/ untouched.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from reportdata import __version__
from reportdata import read as _read
from reportdata.errors import InputError, PullError
from reportdata.fsutil import atomic_write_bytes, atomic_write_text
from reportdata.project import Project, Source, safe_relative
from reportdata.read import read_bytes

USER_AGENT = f"reportdata/{__version__} (open-data pipeline; +https://pypi.org/project/reportdata/)"
MAX_REDIRECTS = 5
if TYPE_CHECKING:
    import urllib3

_EXT = {"text": ".txt", "html": ".html", "pdf": ".pdf"}
# Answers that may pass if asked again later.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Media types that are never a report, unless the bytes themselves say PDF or HTML.
_REFUSED_PREFIXES = ("image/", "audio/", "video/", "font/", "model/")
_REFUSED_TYPES = frozenset(
    {
        "application/zip",
        "application/x-zip-compressed",
        "application/gzip",
        "application/x-gzip",
        "application/x-tar",
        "application/x-bzip2",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.rar",
        "application/java-archive",
        "application/x-msdownload",
        "application/wasm",
    }
)
_SNIFF_BYTES = 2048
_CHUNK = 64 * 1024  # the most one read of a body asks for
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# A URL's bytes and the headers recorded with them (etag, last_modified, content_type).
Fetched = tuple[bytes, dict[str, str]]


@dataclass(frozen=True)
class Policy:
    """How patiently a URL is fetched: timeouts, attempts, and the waits between attempts.

    ``sleep``, ``rand`` (a float in [0, 1)) and ``clock`` (monotonic seconds) are injectable so
    that tests run fast and deterministically.
    """

    attempts: int = 4
    base_delay: float = 1.0  # the first backoff window; it doubles with each attempt
    max_delay: float = 30.0  # no single wait is longer, whatever Retry-After asks
    total: float = 180.0  # all attempts and waits of one pull end within this many seconds
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # the longest silence while waiting for headers or body bytes
    body_timeout: float = 120.0  # one body must arrive within this, however it trickles
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    rand: Callable[[], float] = field(default=random.random, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        window = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return self.rand() * window


POLICY = Policy()


@dataclass(frozen=True)
class Snapshot:
    """One stored copy of a source's bytes, as recorded in its manifest."""

    source_id: str
    file: str
    sha256: str
    bytes: int
    format: str
    encoding: str
    pulled_at: str
    origin: str
    etag: str = ""
    last_modified: str = ""
    content_type: str = ""

    def path(self, raw_dir: Path) -> Path:
        return raw_dir / self.source_id / self.file


@dataclass(frozen=True)
class PullResult:
    """What a pull did: the snapshot in force, whether it is new, and whether the server
    answered 304 Not Modified (then nothing was downloaded)."""

    snapshot: Snapshot
    new: bool
    not_modified: bool = False


_SNAPSHOT_NAME = re.compile(r"[0-9a-f]{16}\.(?:txt|html|pdf)")


def manifest_path(raw_dir: Path, source_id: str) -> Path:
    return raw_dir / source_id / "manifest.json"


def read_manifest(raw_dir: Path, source_id: str) -> list[Snapshot]:
    """Snapshots of a source, oldest first."""
    path = manifest_path(raw_dir, source_id)
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        snaps = [Snapshot(**s) for s in doc["snapshots"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise PullError(
            f"The manifest {path} is damaged; restore it from version control."
        ) from exc
    for snap in snaps:
        if not _SNAPSHOT_NAME.fullmatch(str(snap.file)):
            raise PullError(
                f"The manifest {path} names the snapshot {snap.file!r}, which is no snapshot "
                "file name; restore it from version control."
            )
    return snaps


def latest_snapshot(raw_dir: Path, source_id: str) -> Snapshot | None:
    snaps = read_manifest(raw_dir, source_id)
    return snaps[-1] if snaps else None


# ------------------------------------------------------------------------------ fetching a URL


class _Transient(Exception):
    """A failed attempt that may succeed if tried again; ``what`` completes '<url> ...'."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for (delta-seconds or an HTTP date), if any."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _reason(exc: BaseException) -> str:
    """A short lower-case reason from a network error ("connection refused"): that of the
    innermost error urllib3 wrapped."""
    import http.client

    for _ in range(8):  # (bounded: a chain is short, and must not loop)
        inner = exc.__cause__ or next((a for a in exc.args if isinstance(a, BaseException)), None)
        if inner is None:
            break
        exc = inner
    if isinstance(exc, http.client.IncompleteRead):
        return "the body ended early"
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc).strip())
    return (text[:1].lower() + text[1:]) if text else exc.__class__.__name__


def _declared_length(headers: urllib3.HTTPHeaderDict) -> int | None:
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


def _check_type(url: str, content_type: str, head: bytes) -> None:
    """Refuse a body served as an image, archive or program unless it sniffs as PDF or HTML."""
    media = content_type.split(";", 1)[0].strip().lower()
    refused = media.startswith(_REFUSED_PREFIXES) or media in _REFUSED_TYPES
    if refused and _read.sniff_format(head) == "text":
        raise PullError(f"{url} answered with {media} content, not a text, HTML or PDF report.")


def _read_body(url: str, resp: urllib3.BaseHTTPResponse, policy: Policy, deadline: float) -> bytes:
    """The body of a 200 answer, within the size limit and the deadline."""
    from urllib3 import exceptions as ux

    limit = _read.MAX_BYTES
    too_big = f"{url} is larger than the {_read.size_limit()} limit."
    declared = _declared_length(resp.headers)
    if declared is not None and declared > limit:
        raise PullError(too_big)
    content_type = resp.headers.get("content-type", "")
    chunks: list[bytes] = []
    size, checked = 0, False
    try:
        while chunk := resp.read1(_CHUNK):  # what has arrived, decoded (gzip) as it comes
            size += len(chunk)
            if size > limit:
                raise PullError(too_big)
            chunks.append(chunk)
            if not checked and size >= _SNIFF_BYTES:
                _check_type(url, content_type, b"".join(chunks))
                checked = True
            if policy.clock() > deadline:
                raise _Transient(f"sent only {size} bytes in {policy.body_timeout:g} s")
    except ux.ReadTimeoutError as exc:
        raise _Transient(f"stopped sending for {policy.read_timeout:g} s mid-body") from exc
    except (ux.ProtocolError, ux.SSLError, OSError) as exc:
        if declared is not None:
            got = resp.tell()  # bytes as sent, before decoding
            raise _Transient(f"sent {got} of the {declared} bytes it announced") from exc
        raise _Transient(f"broke off the connection ({_reason(exc)})") from exc
    data = b"".join(chunks)
    if not checked:
        _check_type(url, content_type, data)
    if declared is not None and resp.tell() < declared:
        raise _Transient(f"sent {resp.tell()} of the {declared} bytes it announced")
    return data


def _meta(resp: urllib3.BaseHTTPResponse) -> dict[str, str]:
    return {
        "etag": resp.headers.get("etag", ""),
        "last_modified": resp.headers.get("last-modified", ""),
        "content_type": resp.headers.get("content-type", ""),
    }


def _answer(
    url: str, resp: urllib3.BaseHTTPResponse, conditional: bool, policy: Policy, deadline: float
) -> Fetched | None:
    """``(bytes, meta)`` for a 2xx, None for an asked-for 304; otherwise a failure."""
    status = resp.status
    if status == 304 and conditional:
        resp.read()  # (no body) ends the exchange, so the connection can serve the next pull
        return None
    if status in RETRY_STATUSES:
        wait = retry_after_seconds(resp.headers.get("retry-after"))
        raise _Transient(f"returned HTTP {status}", wait)
    if not 200 <= status < 300 or status == 206:  # 206: a part we did not ask for
        raise PullError(f"{url} returned HTTP {status}.")
    return _read_body(url, resp, policy, deadline), _meta(resp)


def _finish(resp: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back to the pool: kept open when the answer was read to its end,
    closed when it was not (the server may still be sending)."""
    if not resp.closed:
        resp.close()
    resp.release_conn()


def _attempt(
    client: HttpClient, url: str, headers: dict[str, str], policy: Policy, end: float
) -> Fetched | None:
    """One request, following redirects; a PullError is final, a _Transient is worth another
    attempt."""
    from urllib3 import exceptions as ux

    deadline = min(policy.clock() + policy.body_timeout, end)
    target = url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            resp = client.get(target, headers)
            try:
                location = resp.headers.get("location") if resp.status in _REDIRECTS else None
                if not location:
                    return _answer(url, resp, bool(headers), policy, deadline)
                if (_declared_length(resp.headers) or 0) <= _CHUNK:
                    resp.drain_conn()  # a short note: read it, so the connection is kept
            finally:
                _finish(resp)
            target = urljoin(target, location)
        raise PullError(f"{url} redirects more than {MAX_REDIRECTS} times.")
    except ux.NewConnectionError as exc:  # (a subclass of ConnectTimeoutError: refused, DNS)
        raise _Transient(f"could not be fetched ({_reason(exc)})") from exc
    except ux.ConnectTimeoutError as exc:
        raise _Transient(f"could not be reached within {policy.connect_timeout:g} s") from exc
    except ux.TimeoutError as exc:
        raise _Transient(f"did not answer within {policy.read_timeout:g} s") from exc
    except ux.LocationValueError as exc:  # no host, a bad port, an unsupported scheme
        raise PullError(f"{url} is not a valid address ({_reason(exc)}).") from exc
    except (ux.ProtocolError, ux.SSLError, ux.ProxyError) as exc:
        raise _Transient(f"could not be fetched ({_reason(exc)})") from exc
    except ux.HTTPError as exc:
        raise PullError(f"{url} could not be fetched: {exc.__class__.__name__}.") from exc


def _gave_up(url: str, failure: _Transient, attempts: int, out_of_time: float | None) -> PullError:
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if out_of_time is not None:
        return PullError(
            f"{url} {failure.what}; gave up after {tries}, as waiting longer would pass "
            f"the {out_of_time:g} s allowed."
        )
    return PullError(f"{url} {failure.what}; gave up after {tries}.")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every pull: building one loads the CA certificates, ~50 ms, which
    made a rerun of 1,000 unchanged sources spend a minute before any request."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class HttpClient:
    """Connections kept open to each host, shared by concurrent pulls (thread-safe), so a
    rerun's conditional requests to one server do not each pay a new connection. Use it as a
    context manager: leaving it closes the connections."""

    def __init__(self, policy: Policy, connections: int) -> None:
        import urllib.request

        import urllib3
        from urllib3.util.request import ACCEPT_ENCODING

        self.headers = {
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/pdf,text/plain,*/*",
            "Accept-Encoding": ACCEPT_ENCODING,  # what urllib3 can decode here (gzip, deflate)
        }
        self._settings = {
            "num_pools": 32,  # hosts whose connections are kept
            "maxsize": max(1, connections),  # per host; at most this many requests at once
            "block": True,
            "timeout": urllib3.Timeout(connect=policy.connect_timeout, read=policy.read_timeout),
            "retries": False,  # fetch_url retries, and _attempt follows redirects
            "ssl_context": _tls_context(),
        }
        self._pool = urllib3.PoolManager(**self._settings)
        self._proxied: dict[str, urllib3.ProxyManager] = {}
        self._proxies = urllib.request.getproxies_environment()  # HTTP(S)_PROXY, as httpx did
        self._bypass = urllib.request.proxy_bypass_environment

    def _manager(self, url: str) -> urllib3.PoolManager:
        """The pool for ``url``: direct, or through the proxy the environment names for it."""
        if not self._proxies:
            return self._pool
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all")
        if not proxy or self._bypass(parts.hostname or "", self._proxies):  # NO_PROXY
            return self._pool
        if proxy not in self._proxied:
            import urllib3

            self._proxied.setdefault(proxy, urllib3.ProxyManager(proxy, **self._settings))
        return self._proxied[proxy]

    def get(self, url: str, headers: dict[str, str]) -> urllib3.BaseHTTPResponse:
        """The answer to a GET, headers read, body not yet: read it, then :func:`_finish` it."""
        return self._manager(url).urlopen(
            "GET", url, headers={**self.headers, **headers}, redirect=False, preload_content=False
        )

    def close(self) -> None:
        self._pool.clear()
        for manager in self._proxied.values():
            manager.clear()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def http_client(policy: Policy | None = None, connections: int = 8) -> HttpClient:
    """A client for ``connections`` pulls at once (see :class:`HttpClient`)."""
    return HttpClient(policy or POLICY, connections)


def fetch_url(
    url: str,
    conditional: dict[str, str] | None = None,
    policy: Policy | None = None,
    client: HttpClient | None = None,
) -> Fetched | None:
    """A URL's bytes and headers (etag, last_modified, content_type), retrying passing
    failures; None when ``conditional`` headers were sent and the server answered 304.
    ``client`` (from :func:`http_client`) is shared by concurrent pulls; without one, a
    client is made for this URL alone."""
    if client is None:
        with http_client(policy, connections=1) as own:
            return fetch_url(url, conditional, policy, own)
    policy = policy or POLICY
    end = policy.clock() + policy.total
    attempts = max(1, policy.attempts)
    for attempt in range(1, attempts + 1):
        try:
            return _attempt(client, url, dict(conditional or {}), policy, end)
        except _Transient as failure:
            if attempt == attempts:
                raise _gave_up(url, failure, attempt, None) from failure
            wait = policy.backoff(attempt, failure.retry_after)
            if policy.clock() + wait > end:
                raise _gave_up(url, failure, attempt, policy.total) from failure
            policy.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _validators(raw_dir: Path, source: Source, previous: Snapshot | None) -> dict[str, str]:
    """If-None-Match / If-Modified-Since from the newest snapshot of this very URL, when its
    bytes are still on disk (a 304 must leave us something to point at)."""
    if previous is None or previous.origin != source.url or not previous.path(raw_dir).exists():
        return {}
    headers = {}
    if previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    return headers


# ------------------------------------------------------------------------------ storing


def fetch(project: Project, source: Source) -> tuple[bytes, dict[str, str]]:
    """The source's current bytes, from its url or its path in the project."""
    if source.url:
        got = fetch_url(source.url)
        assert got is not None  # no conditional headers were sent
        return got
    path = safe_relative(project.root, source.path, f"Source {source.id!r} path")
    return _read.read_file(path, f"Source {source.id!r}: the file {source.path}", PullError), {}


def store(project: Project, source: Source, data: bytes, meta: dict[str, str]) -> PullResult:
    """Store bytes as a snapshot unless the newest snapshot already holds them."""
    sha = hashlib.sha256(data).hexdigest()
    snaps = read_manifest(project.raw_dir, source.id)
    for snap in snaps:
        if snap.sha256 == sha and snap.path(project.raw_dir).exists() and snap is snaps[-1]:
            return PullResult(snap, new=False)
    hint = source.url or source.path
    read = read_bytes(data, meta.get("content_type", "") or hint)
    snap = Snapshot(
        source_id=source.id,
        file=f"{sha[:16]}{_EXT[read.format]}",
        sha256=sha,
        bytes=len(data),
        format=read.format,
        encoding=read.encoding,
        pulled_at=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        origin=source.origin,
        etag=meta.get("etag", ""),
        last_modified=meta.get("last_modified", ""),
        content_type=meta.get("content_type", ""),
    )
    target = snap.path(project.raw_dir)
    doc = {"source": source.id, "snapshots": [asdict(s) for s in [*snaps, snap]]}
    try:
        if not target.exists():
            atomic_write_bytes(target, data)
        atomic_write_text(
            manifest_path(project.raw_dir, source.id),
            json.dumps(doc, ensure_ascii=False, indent=2) + "\n",
        )
    except OSError as exc:
        raise PullError(
            f"Could not store a snapshot of source {source.id!r}: {exc.strerror or exc}."
        ) from exc
    return PullResult(snap, new=True)


def pull(
    project: Project,
    source: Source,
    policy: Policy | None = None,
    client: HttpClient | None = None,
) -> PullResult:
    """Fetch a source and store it; an unchanged source is not stored again, and a URL whose
    server answers 304 Not Modified is not even downloaded. ``client``: see :func:`fetch_url`."""
    if source.url:
        previous = latest_snapshot(project.raw_dir, source.id)
        conditional = _validators(project.raw_dir, source, previous)
        got = fetch_url(source.url, conditional, policy, client)
        if got is None:
            assert previous is not None  # a 304 is only accepted after conditional headers
            return PullResult(previous, new=False, not_modified=True)
        data, meta = got
    else:
        data, meta = fetch(project, source)
    try:
        return store(project, source, data, meta)
    except InputError as exc:
        sentence = str(exc)
        raise InputError(
            f"Source {source.id!r} ({source.origin}): {sentence[:1].lower()}{sentence[1:]}"
        ) from exc
