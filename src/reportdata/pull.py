"""Pull a source into raw/: immutable, content-addressed snapshots with a manifest.

A URL is fetched patiently but boundedly: conditional requests (ETag, Last-Modified) skip
unchanged reports, passing failures (5xx, 408, 429, timeouts, broken connections, short
bodies) are retried with exponential backoff and full jitter, honouring ``Retry-After``, and
every failure ends as one sentence with raw/ untouched.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import itertools
import json
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from reportdata import __version__
from reportdata import read as _read
from reportdata.errors import InputError, PullError, ReportdataError
from reportdata.fsutil import atomic_write_bytes, atomic_write_text
from reportdata.project import Project, Source, safe_relative
from reportdata.read import read_bytes

USER_AGENT = f"reportdata/{__version__} (open-data pipeline; +https://pypi.org/project/reportdata/)"
MAX_REDIRECTS = 5

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


def _check_type(url: str, content_type: str, head: bytes) -> None:
    """Refuse a body served as an image, archive or program unless it sniffs as PDF or HTML."""
    media = content_type.split(";", 1)[0].strip().lower()
    refused = media.startswith(_REFUSED_PREFIXES) or media in _REFUSED_TYPES
    if refused and _read.sniff_format(head) == "text":
        raise PullError(f"{url} answered with {media} content, not a text, HTML or PDF report.")


class _Exchange:
    """One request and its answer as libcurl hands them over: the status and headers of the
    last response (a redirect's or the final one's) and, for a 2xx, the body within the size
    limit and the deadline. A callback never raises (pycurl would print it): it records the
    failure in ``error`` and returns 0, which makes libcurl abort the transfer."""

    def __init__(self, url: str, policy: Policy, deadline: float) -> None:
        self.url = url
        self.policy = policy
        self.deadline = deadline
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.connected = False
        self.chunks: list[bytes] = []
        self.size = 0
        self.checked = False
        self.dropped = False  # a long note (to a redirect or an error) left unread
        self.error: Exception | None = None
        self.last = time.monotonic()  # when bytes last arrived (or the request started)

    @property
    def declared(self) -> int | None:
        value = self.headers.get("content-length", "").strip()
        return int(value) if value.isdigit() else None

    @property
    def wanted(self) -> bool:
        """Whether the body is the report (a 2xx), rather than a note to throw away."""
        return 200 <= self.status < 300

    def on_connected(self, *_: object) -> int:
        self.connected = True
        self.last = time.monotonic()
        return 0  # pycurl.PREREQFUNC_OK

    def on_header(self, line: bytes) -> int | None:
        self.last = time.monotonic()
        if line.startswith(b"HTTP/"):  # a new response (after a 100 Continue, say)
            parts = line.split(None, 2)
            self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            self.headers, self.headers_done = {}, False
        elif line in (b"\r\n", b"\n"):
            self.headers_done = True
            declared = self.declared
            if self.wanted and declared is not None and declared > _read.MAX_BYTES:
                return self._fail(PullError(self._too_big()))
        else:
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                self.headers[name.strip().lower()] = value.strip()
        return None

    def on_body(self, chunk: bytes) -> int | None:
        self.last = time.monotonic()
        self.size += len(chunk)
        if not self.wanted:  # a redirect's or an error's note: a short one is read and dropped
            if self.size <= _CHUNK:
                return None
            self.dropped = True  # the answer is known; stop reading (the connection closes)
            return 0
        if self.size > _read.MAX_BYTES:
            return self._fail(PullError(self._too_big()))
        self.chunks.append(chunk)
        if not self.checked and self.size >= _SNIFF_BYTES:
            self.checked = True
            try:
                _check_type(self.url, self.headers.get("content-type", ""), b"".join(self.chunks))
            except PullError as exc:
                return self._fail(exc)
        if self.policy.clock() > self.deadline:
            body_timeout = self.policy.body_timeout
            return self._fail(_Transient(f"sent only {self.size} bytes in {body_timeout:g} s"))
        return None

    def _fail(self, error: Exception) -> int:
        self.error = error
        return 0

    def _too_big(self) -> str:
        return f"{self.url} is larger than the {_read.size_limit()} limit."

    def silent_for(self) -> float:
        """Seconds without a byte from the server since the connection was ready."""
        return time.monotonic() - self.last if self.connected else 0.0

    def silence(self, read_timeout: float) -> _Transient | None:
        """The failure of an exchange the server has left silent too long, if it has."""
        if self.silent_for() < read_timeout:
            return None
        if self.headers_done:
            return _Transient(f"stopped sending for {read_timeout:g} s mid-body")
        return _Transient(f"did not answer within {read_timeout:g} s")

    def body(self) -> bytes:
        data = b"".join(self.chunks)
        if not self.checked:
            _check_type(self.url, self.headers.get("content-type", ""), data)
        return data

    def meta(self) -> dict[str, str]:
        return {
            "etag": self.headers.get("etag", ""),
            "last_modified": self.headers.get("last-modified", ""),
            "content_type": self.headers.get("content-type", ""),
        }


def _curl_failure(ex: _Exchange, code: int, message: str, os_errno: int, policy: Policy):
    """The failure a libcurl error code stands for: a PullError is final, a _Transient is
    worth another attempt."""
    import pycurl

    if code in (pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_URL_MALFORMAT):
        return PullError(f"{ex.url} is not a valid address ({_lower(message)}).")
    if code == pycurl.E_BAD_CONTENT_ENCODING:
        return PullError(f"{ex.url} sent a body it had encoded wrongly ({_lower(message)}).")
    if code == pycurl.E_OPERATION_TIMEDOUT and not ex.connected:
        return _Transient(f"could not be reached within {policy.connect_timeout:g} s")
    reason = _lower(os.strerror(os_errno)) if os_errno else _lower(message)
    if not ex.connected or not ex.headers_done:
        return _Transient(f"could not be fetched ({reason})")
    declared = ex.declared
    plain = "content-encoding" not in ex.headers  # else sizes before and after decoding differ
    if ex.wanted and plain and declared is not None and ex.size < declared:
        return _Transient(f"sent {ex.size} of the {declared} bytes it announced")
    return _Transient(f"broke off the connection ({reason})")


def _lower(text: str) -> str:
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text.strip()).rstrip(".")
    if text[1:2].isupper():  # an acronym (URL, SSL) keeps its case
        return text
    return (text[:1].lower() + text[1:]) if text else "no reason given"


@functools.cache
def _ca_file() -> str:
    import certifi

    return certifi.where()


class HttpClient:
    """Connections kept open to each host, so that a rerun's conditional requests to one
    server do not each pay a new connection. `run` makes a fetch's requests one at a time
    (thread-safe: each thread gets a libcurl handle of its own, whose connections stay open
    between its requests); `run_many` makes many fetches' requests at once from the calling
    thread, over one multi handle whose connections they share. libcurl parses the answers
    in C, which is what a rerun of many unchanged sources is made of. Use it as a context
    manager: leaving it closes the connections."""

    def __init__(self) -> None:
        import urllib.request

        self._local = threading.local()
        self._handles: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()
        self._proxies = urllib.request.getproxies_environment()  # HTTP(S)_PROXY, any case
        self._bypass = urllib.request.proxy_bypass_environment

    def _proxy(self, url: str) -> str:
        """The proxy the environment names for ``url``, or "" for none (which also keeps
        libcurl from reading the environment its own way)."""
        if not self._proxies:
            return ""
        parts = urlsplit(url)
        proxy = self._proxies.get(parts.scheme) or self._proxies.get("all") or ""
        if proxy and self._bypass(parts.hostname or "", self._proxies):  # NO_PROXY
            return ""
        return proxy

    def _handle(self) -> tuple[Any, Any]:
        """This thread's libcurl handle and the multi handle that drives it."""
        got = getattr(self._local, "handle", None)
        if got is not None:
            return got
        import pycurl

        curl = self.new_handle()
        multi = pycurl.CurlMulti()
        got = self._local.handle = (curl, multi)
        with self._lock:
            self._handles.append(got)
        return got

    def exchange(
        self, url: str, headers: dict[str, str], policy: Policy, deadline: float, name: str
    ) -> _Exchange:
        """One request to ``url`` and its answer; raises a PullError or a _Transient whose
        sentence names ``name`` (the source's address, before any redirect)."""
        curl, multi = self._handle()
        ex = self.start(curl, _Request(url, headers, deadline, name), policy)
        multi.add_handle(curl)
        try:
            failure = self._drive(multi, ex, policy)
        finally:
            _detach(multi, curl)
        if ex.error is not None:
            raise ex.error
        if failure is not None:
            raise failure
        return ex

    def start(self, curl: Any, request: _Request, policy: Policy) -> _Exchange:
        """Set `curl` up for `request`; the exchange its callbacks fill."""
        import pycurl

        ex = _Exchange(request.name, policy, request.deadline)
        sent = {**_HEADERS, **request.headers}
        curl.setopt(pycurl.URL, request.url)
        curl.setopt(pycurl.PROXY, self._proxy(request.url))
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(policy.connect_timeout * 1000)))
        curl.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in sent.items()])
        curl.setopt(pycurl.PREREQFUNCTION, ex.on_connected)
        curl.setopt(pycurl.HEADERFUNCTION, ex.on_header)
        curl.setopt(pycurl.WRITEFUNCTION, ex.on_body)
        return ex

    def run(self, steps: Steps, policy: Policy) -> Any:
        """Take `steps` (see `_fetch_steps`) to their end, one request at a time in this
        thread; returns what they return, raises the PullError that ends them."""
        value: Any = None
        error: Exception | None = None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration as stop:
                return stop.value
            value = error = None
            if isinstance(step, _Wait):
                policy.sleep(step.seconds)
                continue
            try:
                value = self.exchange(step.url, step.headers, policy, step.deadline, step.name)
            except (ReportdataError, _Transient) as exc:
                error = exc

    def run_many(
        self, jobs: list[tuple[Any, Steps]], limit: int, policy: Policy
    ) -> Iterator[tuple[Any, Any, Exception | None]]:
        """Take every job's steps to their end, up to `limit` transfers at a time, all driven
        from this thread by one libcurl multi handle (its connections shared by them all):
        no thread a transfer, and no contention for the interpreter lock. Yields ``(key,
        result, None)`` or ``(key, None, error)`` (a ReportdataError or OSError) as each job
        ends."""
        return _Driver(self, limit, policy).run(jobs)

    def _drive(self, multi: Any, ex: _Exchange, policy: Policy) -> Exception | None:
        """Run the transfer until it ends, or until the server has been silent too long."""
        import pycurl

        read_timeout = policy.read_timeout
        while True:
            while True:
                status, active = multi.perform()
                if status != pycurl.E_CALL_MULTI_PERFORM:
                    break
            if not active:
                break
            if (silent := ex.silence(read_timeout)) is not None:
                return silent
            quiet = ex.silent_for()
            if ex.error is not None:
                return None
            wait = min(read_timeout - quiet, 1.0)
            asked = multi.timeout()  # ms libcurl wants to be called back within; -1: none
            if asked >= 0:
                wait = min(wait, asked / 1000)
            multi.select(max(0.001, wait))
        _, _, failed = multi.info_read()
        if ex.error is not None or ex.dropped or not failed:
            return None
        curl, code, message = failed[0]
        return _curl_failure(ex, code, message, curl.getinfo(pycurl.OS_ERRNO), policy)

    def new_handle(self) -> Any:
        """A libcurl easy handle with the options every request shares."""
        import pycurl

        curl = pycurl.Curl()
        curl.setopt(pycurl.NOSIGNAL, 1)  # timeouts without signals: safe in threads
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)  # _attempt_steps follows redirects, boundedly
        curl.setopt(pycurl.ACCEPT_ENCODING, "")  # every encoding libcurl can decode
        curl.setopt(pycurl.CAINFO, _ca_file())
        return curl

    def close(self) -> None:
        with self._lock:
            handles, self._handles = self._handles, []
            self._local = threading.local()  # a later pull starts a new handle
        for curl, multi in handles:
            multi.close()
            curl.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept": "text/html,application/pdf,text/plain,*/*",
}


def _answer(ex: _Exchange, conditional: bool) -> Fetched | None:
    """``(bytes, meta)`` for a 2xx, None for an asked-for 304; otherwise a failure."""
    status = ex.status
    if status == 304 and conditional:
        return None
    if status in RETRY_STATUSES:
        wait = retry_after_seconds(ex.headers.get("retry-after"))
        raise _Transient(f"returned HTTP {status}", wait)
    if not 200 <= status < 300 or status == 206:  # 206: a part we did not ask for
        raise PullError(f"{ex.url} returned HTTP {status}.")
    declared = ex.declared
    if declared is not None and ex.size < declared and "content-encoding" not in ex.headers:
        raise _Transient(f"sent {ex.size} of the {declared} bytes it announced")
    return ex.body(), ex.meta()


def _attempt_steps(url: str, headers: dict[str, str], policy: Policy, end: float) -> Steps:
    """One request, following redirects; a PullError is final, a _Transient is worth another
    attempt."""
    deadline = min(policy.clock() + policy.body_timeout, end)
    target = url
    for _ in range(MAX_REDIRECTS + 1):
        ex = yield _Request(target, headers, deadline, url)
        location = ex.headers.get("location") if ex.status in _REDIRECTS else None
        if not location:
            return _answer(ex, bool(headers))
        target = urljoin(target, location)
    raise PullError(f"{url} redirects more than {MAX_REDIRECTS} times.")


def _gave_up(url: str, failure: _Transient, attempts: int, out_of_time: float | None) -> PullError:
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if out_of_time is not None:
        return PullError(
            f"{url} {failure.what}; gave up after {tries}, as waiting longer would pass "
            f"the {out_of_time:g} s allowed."
        )
    return PullError(f"{url} {failure.what}; gave up after {tries}.")


def fetch_url(
    url: str,
    conditional: dict[str, str] | None = None,
    policy: Policy | None = None,
    client: HttpClient | None = None,
) -> Fetched | None:
    """A URL's bytes and headers (etag, last_modified, content_type), retrying passing
    failures; None when ``conditional`` headers were sent and the server answered 304.
    ``client`` (an :class:`HttpClient`) is shared by concurrent pulls; without one, a
    client is made for this URL alone."""
    if client is None:
        with HttpClient() as own:
            return fetch_url(url, conditional, policy, own)
    policy = policy or POLICY
    return client.run(_fetch_steps(url, conditional, policy), policy)


def _fetch_steps(url: str, conditional: dict[str, str] | None, policy: Policy) -> Steps:
    """The steps of fetching a URL (see `fetch_url`): each request it needs is yielded as a
    `_Request`, answered by sending the `_Exchange` back or throwing its failure in, and each
    wait between attempts as a `_Wait`. Returns what `fetch_url` returns."""
    end = policy.clock() + policy.total
    attempts = max(1, policy.attempts)
    for attempt in range(1, attempts + 1):
        try:
            return (yield from _attempt_steps(url, dict(conditional or {}), policy, end))
        except _Transient as failure:
            if attempt == attempts:
                raise _gave_up(url, failure, attempt, None) from failure
            wait = policy.backoff(attempt, failure.retry_after)
            if policy.clock() + wait > end:
                raise _gave_up(url, failure, attempt, policy.total) from failure
            yield _Wait(wait)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class _Request:
    """A step of a fetch: make this request (``name``: the source's address, for sentences)."""

    url: str
    headers: dict[str, str]
    deadline: float
    name: str


@dataclass(frozen=True)
class _Wait:
    """A step of a fetch: wait this long before the next attempt."""

    seconds: float


# A fetch's steps: yields requests and waits, is sent exchanges, returns its result.
Steps = Generator["_Request | _Wait", "_Exchange | None", Any]


def _detach(multi: Any, curl: Any) -> None:
    """Take `curl` out of `multi` (mid-transfer: its connection is closed, not kept) and drop
    its callbacks' references to the exchange."""
    import pycurl

    multi.remove_handle(curl)
    for option in (pycurl.PREREQFUNCTION, pycurl.HEADERFUNCTION, pycurl.WRITEFUNCTION):
        curl.unsetopt(option)


class _Job:
    """A fetch under way in `_Driver`: its key, its steps, and its transfer, if one is on."""

    def __init__(self, key: Any, steps: Steps) -> None:
        self.key = key
        self.steps = steps
        self.curl: Any = None
        self.ex: _Exchange | None = None


class _Driver:
    """Runs many fetches' steps over one libcurl multi handle, from one thread."""

    def __init__(self, client: HttpClient, limit: int, policy: Policy) -> None:
        import pycurl

        self.client = client
        self.limit = max(1, limit)
        self.policy = policy
        self.multi = pycurl.CurlMulti()
        self.idle: list[Any] = []  # easy handles between transfers
        self.live: dict[Any, _Job] = {}  # transfers on, by easy handle
        self.waits: list[tuple[float, int, _Job]] = []  # backoffs, soonest first
        self.order = itertools.count()
        self.ended: deque[tuple[Any, Any, Exception | None]] = deque()

    def run(self, jobs: list[tuple[Any, Steps]]) -> Iterator[tuple[Any, Any, Exception | None]]:
        pending = deque(_Job(key, steps) for key, steps in jobs)
        try:
            while pending or self.live or self.waits or self.ended:
                while pending and len(self.live) + len(self.waits) < self.limit:
                    self._advance(pending.popleft())
                while self.ended:
                    yield self.ended.popleft()
                if self.live:
                    self._transfer()
                elif self.waits:  # nothing on the wire: sleep until the soonest backoff ends
                    due, _, job = heapq.heappop(self.waits)
                    if (delay := due - self.policy.clock()) > 0:
                        self.policy.sleep(delay)
                    self._advance(job)
        finally:
            for curl in list(self.live):
                _detach(self.multi, curl)
            self.multi.close()
            for curl in [*self.idle, *self.live]:
                curl.close()

    def _advance(self, job: _Job, value: Any = None, error: Exception | None = None) -> None:
        """Give a job what its last step asked for, and start its next step."""
        try:
            step = job.steps.throw(error) if error is not None else job.steps.send(value)
        except StopIteration as stop:
            self.ended.append((job.key, stop.value, None))
            return
        except (ReportdataError, OSError) as exc:
            self.ended.append((job.key, None, exc))
            return
        if isinstance(step, _Wait):
            due = self.policy.clock() + step.seconds
            heapq.heappush(self.waits, (due, next(self.order), job))
            return
        curl = self.idle.pop() if self.idle else self.client.new_handle()
        job.curl, job.ex = curl, self.client.start(curl, step, self.policy)
        self.multi.add_handle(curl)
        self.live[curl] = job

    def _end_transfer(self, job: _Job, failure: Exception | None) -> None:
        _detach(self.multi, job.curl)
        del self.live[job.curl]
        self.idle.append(job.curl)
        ex, job.curl, job.ex = job.ex, None, None
        if ex is not None and ex.error is not None:
            failure = ex.error
        if failure is not None:
            self._advance(job, error=failure)
        else:
            self._advance(job, ex)

    def _transfer(self) -> None:
        """Move the transfers on, end those done or silent too long, start the backoffs
        that are over, and wait for the wire (at most a second, and no longer than the
        soonest backoff or silence limit)."""
        import pycurl

        multi, policy = self.multi, self.policy
        while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
            pass
        while True:
            queued, done, failed = multi.info_read()
            for curl in done:
                self._end_transfer(self.live[curl], None)
            for curl, code, message in failed:
                job = self.live[curl]
                assert job.ex is not None
                failure = None
                if job.ex.error is None and not job.ex.dropped:
                    errno = curl.getinfo(pycurl.OS_ERRNO)
                    failure = _curl_failure(job.ex, code, message, errno, policy)
                self._end_transfer(job, failure)
            if not queued:
                break
        wait = 1.0
        for job in list(self.live.values()):
            assert job.ex is not None
            if (silent := job.ex.silence(policy.read_timeout)) is not None:
                self._end_transfer(job, silent)
            else:
                wait = min(wait, policy.read_timeout - job.ex.silent_for())
        now = policy.clock()
        while self.waits and self.waits[0][0] <= now:
            self._advance(heapq.heappop(self.waits)[2])
        if self.waits:
            wait = min(wait, self.waits[0][0] - now)
        if self.live and not self.ended:
            asked = multi.timeout()  # ms libcurl wants to be called back within; -1: none
            if asked >= 0:
                wait = min(wait, asked / 1000)
            multi.select(max(0.001, wait))


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
    if not source.url:
        return store_fetched(project, source, fetch(project, source))
    if client is None:
        with HttpClient() as own:
            return pull(project, source, policy, own)
    policy = policy or POLICY
    got = client.run(pull_steps(project, source, policy), policy)
    return got if isinstance(got, PullResult) else store_fetched(project, source, got)


def pull_steps(project: Project, source: Source, policy: Policy | None = None) -> Steps:
    """The steps of pulling a URL source (see `_fetch_steps`): returns the snapshot in force
    when the server answers 304 Not Modified, else the fetched bytes and headers, for
    `store_fetched` (which `HttpClient.run_many`'s caller may hand to another thread)."""
    previous = latest_snapshot(project.raw_dir, source.id)
    conditional = _validators(project.raw_dir, source, previous)
    got = yield from _fetch_steps(source.url, conditional, policy or POLICY)
    if got is None:
        assert previous is not None  # a 304 is only accepted after conditional headers
        return PullResult(previous, new=False, not_modified=True)
    return got


def store_fetched(project: Project, source: Source, fetched: Fetched) -> PullResult:
    """Store a source's fetched bytes (see `store`), its sentences naming the source."""
    data, meta = fetched
    try:
        return store(project, source, data, meta)
    except InputError as exc:
        sentence = str(exc)
        raise InputError(
            f"Source {source.id!r} ({source.origin}): {sentence[:1].lower()}{sentence[1:]}"
        ) from exc
