"""Download a published version: every resource of a Data Package, checked, written atomically.

The start is the URL (or local path) of a ``datapackage.json``, or of a ``catalog.json`` with a
dataset name. Every resource is streamed with a size limit and checked against the ``bytes``
and ``hash`` its descriptor states. The files go into a temporary folder beside the target,
``<to>/<dataset>/<version>/``, which is renamed into place only when every file checked out;
any failure leaves nothing behind. The descriptor and the catalog are untrusted input: read
with a size limit, every field used is checked, and resource paths may not leave the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit
from urllib.request import url2pathname

from reportdata.errors import DownloadError
from reportdata.fsutil import fsync_dir

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
METADATA_MAX_BYTES = 16 * 1024 * 1024
DESCRIPTOR = "datapackage.json"
_CHUNK = 1 << 16
_HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-f]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download` did: the version's folder, its resources and if it is new."""

    dataset: str
    version: str
    path: Path
    files: tuple[str, ...]
    bytes: int
    new: bool


@dataclass(frozen=True)
class _Resource:
    """A resource to fetch: its name, safe relative path and the facts to check."""

    name: str
    path: str
    bytes: int | None
    algorithm: str
    digest: str

    @property
    def label(self) -> str:
        return f"Resource {self.name!r} ({self.path})"


@dataclass(frozen=True)
class _Location:
    """Where a file is read from: an http(s) URL, or a local file (``path`` set)."""

    text: str
    path: Path | None = None

    @property
    def remote(self) -> bool:
        return self.path is None

    def child(self, rel: str) -> _Location:
        """The file at the safe relative POSIX path ``rel`` beside this one."""
        if self.path is None:
            return _Location(urljoin(self.text, quote(rel, safe="/")))
        return _Location(str(self.path.parent / rel), self.path.parent / rel)

    def link(self, ref: str) -> _Location:
        """Where a catalog's link ``ref`` (absolute URL, or relative reference) points."""
        if _SCHEME.match(ref) and not Path(ref).drive:
            target = _location(ref)
            if self.remote and not target.remote:
                raise DownloadError(f"The catalog {self.text} links to the local file {ref}.")
            return target
        if self.path is None:
            return _Location(urljoin(self.text, ref))
        return _Location(str(self.path.parent / ref), self.path.parent / ref)


# ---------------------------------------------------------------------------- parsing


def _location(url: str) -> _Location:
    """A location from what the user typed: http(s) URL, file:// URL or a path."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"http", "https"}:
        if not parts.hostname:
            raise DownloadError(f"{url} is not a valid address (no host).")
        return _Location(url)
    if scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise DownloadError(f"{url} names a remote host; file URLs must be local.")
        path = Path(url2pathname(unquote(parts.path)))
        return _Location(str(path), path)
    if len(scheme) > 1:
        raise DownloadError(f"{url} is not an http(s) URL, a file URL or a path.")
    return _Location(url, Path(url))


def _parse_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise DownloadError(f"{what} is not valid JSON.") from exc
    if not isinstance(doc, dict):
        raise DownloadError(f"{what} is not a JSON object.")
    return doc


def _text(doc: dict[str, Any], key: str, what: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise DownloadError(f"{what} has no {key!r} text.")
    return value


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DownloadError(f"{what} states 'bytes' that are not a whole number of bytes.")
    return value


def _parse_hash(value: Any, what: str) -> tuple[str, str]:
    """``(algorithm, hex)`` from ``sha256:<hex>``, ``md5:<hex>``... or bare hex.

    Bare hex of 64 digits is sha256; of 32 digits md5 (the Data Package default).
    """
    if value is None:
        raise DownloadError(f"{what} has no hash to check it against.")
    if not isinstance(value, str):
        raise DownloadError(f"{what} has a hash that is not text.")
    algorithm, sep, digest = value.partition(":")
    if not sep:
        algorithm, digest = ("sha256" if len(value) == 64 else "md5"), value
    algorithm, digest = algorithm.strip().lower(), digest.strip().lower()
    if algorithm not in _HASH_LENGTHS:
        raise DownloadError(f"{what} uses the unsupported hash algorithm {algorithm!r}.")
    if len(digest) != _HASH_LENGTHS[algorithm] or not _HEX.fullmatch(digest):
        raise DownloadError(f"{what} has a malformed {algorithm} hash {value!r}.")
    return algorithm, digest


def _safe_path(value: Any, what: str) -> str:
    """``value`` if it is a plain relative POSIX path that stays inside the package folder."""
    if isinstance(value, list):
        raise DownloadError(f"{what} is split over several files, which is not supported.")
    if not isinstance(value, str) or not value:
        raise DownloadError(f"{what} has no path.")
    if "\\" in value:
        raise DownloadError(f"{what} has a path with a backslash ({value!r}).")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise DownloadError(f"{what} has a path with a control character.")
    if _SCHEME.match(value) or value.startswith("//"):
        raise DownloadError(f"{what} is a URL ({value!r}), not a path inside the package.")
    if value.startswith("/"):
        raise DownloadError(f"{what} has the absolute path {value!r}.")
    parts = value.split("/")
    if ".." in parts:
        raise DownloadError(f"{what} has the path {value!r}, which leaves the package folder.")
    if any(p in {"", "."} for p in parts):
        raise DownloadError(f"{what} has the path {value!r}, which is not a plain file path.")
    if value == DESCRIPTOR:
        raise DownloadError(f"{what} would overwrite the package's {DESCRIPTOR}.")
    return value


def _resource(item: Any, index: int) -> _Resource | None:
    """A checked resource, or None for inline data (nothing to fetch)."""
    if not isinstance(item, dict):
        raise DownloadError(f"Resource {index + 1} of the datapackage is not a JSON object.")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        name = str(index + 1)
    what = f"Resource {name!r}"
    if "path" not in item and "data" in item:
        return None
    path = _safe_path(item.get("path"), what)
    what = f"Resource {name!r} ({path})"
    algorithm, digest = _parse_hash(item.get("hash"), what)
    return _Resource(name, path, _count(item.get("bytes"), what), algorithm, digest)


def _check_collisions(resources: list[_Resource]) -> None:
    """Refuse two resources with one path, or a path that is another's folder."""
    seen: dict[str, _Resource] = {}
    for res in resources:
        if res.path in seen:
            raise DownloadError(f"{res.label} has the same path as {seen[res.path].label}.")
        seen[res.path] = res
    for res in resources:
        parts = res.path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder in seen:
                raise DownloadError(f"{res.label} lies inside the file of {seen[folder].label}.")


@dataclass(frozen=True)
class _Plan:
    dataset: str
    version: str
    resources: list[_Resource]


def _plan(package: dict[str, Any], what: str, dataset: str | None, version: str | None) -> _Plan:
    """The dataset, version and resources of a descriptor, every field checked."""
    name = _text(package, "name", what)
    found = _text(package, "version", what)
    for label, value in (("name", name), ("version", found)):
        if not _FOLDER_NAME.fullmatch(value):
            raise DownloadError(f"{what} has the {label} {value!r}, which is not a folder name.")
    if dataset is not None and dataset != name:
        raise DownloadError(f"{what} is dataset {name!r}, not {dataset!r}.")
    if version is not None and version != found:
        raise DownloadError(f"{what} is version {found} of {name!r}, not {version}.")
    items = package.get("resources")
    if not isinstance(items, list) or not items:
        raise DownloadError(f"{what} lists no resources.")
    resources = [r for i, item in enumerate(items) if (r := _resource(item, i)) is not None]
    _check_collisions(resources)
    return _Plan(name, found, resources)


# ---------------------------------------------------------------------------- catalog


def _is_catalog(doc: dict[str, Any]) -> bool:
    return "datasets" in doc and "resources" not in doc


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return shown or "none"


def _pick(
    catalog: dict[str, Any], where: _Location, dataset: str | None, version: str | None
) -> tuple[_Location, int | None, tuple[str, str], str, str]:
    """The datapackage of ``dataset`` (at ``version``, default its latest) in a catalog:
    its location, expected bytes and hash, dataset and version."""
    what = f"The catalog {where.text}"
    entries = catalog.get("datasets")
    if not isinstance(entries, list):
        raise DownloadError(f"{what} has no list of datasets.")
    entries = [e for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]
    names = [e["name"] for e in entries]
    if dataset is None:
        raise DownloadError(
            f"{where.text} is a catalog: choose a dataset with --dataset ({_listing(names)})."
        )
    entry = next((e for e in entries if e["name"] == dataset), None)
    if entry is None:
        raise DownloadError(f"{what} has no dataset {dataset!r} (it has: {_listing(names)}).")
    version = version or _text(entry, "latest", f"Dataset {dataset!r} in {what.lower()}")
    versions = entry.get("versions")
    versions = [v for v in versions if isinstance(v, dict)] if isinstance(versions, list) else []
    chosen = next((v for v in versions if v.get("version") == version), None)
    if chosen is None:
        have = [str(v.get("version")) for v in versions]
        raise DownloadError(
            f"{what} has no version {version} of {dataset!r} (it has: {_listing(have)})."
        )
    link = chosen.get("datapackage")
    label = f"The datapackage of {dataset!r} {version} in {what.lower()}"
    if not isinstance(link, dict):
        raise DownloadError(f"{label} is missing.")
    ref = link.get("url") or link.get("path")
    if not isinstance(ref, str) or not ref:
        raise DownloadError(f"{label} has no url or path.")
    expected = _parse_hash(link.get("hash"), label)
    return where.link(ref), _count(link.get("bytes"), label), expected, dataset, version


# ---------------------------------------------------------------------------- fetching


def _size_text(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


class _Fetcher:
    """Reads locations chunk by chunk, with a size limit; one HTTP client for all of them."""

    def __init__(self) -> None:
        self._client: Any = None

    def __enter__(self) -> _Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._client is not None:
            self._client.close()

    def read(self, where: _Location, what: str, limit: int) -> bytes:
        """The whole file at ``where``, at most ``limit`` bytes."""
        chunks: list[bytes] = []
        too_big = f"{what} is larger than the {_size_text(limit)} limit."
        self.copy(where, what, limit, too_big, chunks.append)
        return b"".join(chunks)

    def copy(
        self, where: _Location, what: str, limit: int, too_big: str, sink: Callable[[bytes], None]
    ) -> int:
        """Feed the file at ``where`` to ``sink``; DownloadError(too_big) past ``limit`` bytes."""
        size = 0
        if where.path is not None:
            source = self._local(where, what)
        else:
            source = self._remote(where, what, limit, too_big)
        with contextlib.closing(source) as chunks:  # closes the file or response at once
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise DownloadError(too_big)
                sink(chunk)
        return size

    def _local(self, where: _Location, what: str) -> Iterator[bytes]:
        assert where.path is not None
        try:
            # O_NONBLOCK: opening a named pipe must not hang; a regular file ignores it.
            fd = os.open(where.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as fh:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise DownloadError(f"{what} is not a file.")
                yield from iter(lambda: fh.read(_CHUNK), b"")
        except FileNotFoundError:
            raise DownloadError(f"{what} does not exist.") from None
        except OSError as exc:
            raise DownloadError(f"{what} cannot be read ({exc.strerror or exc}).") from exc

    def _http(self) -> Any:
        import httpx

        from reportdata.pull import MAX_REDIRECTS, USER_AGENT

        if self._client is None:
            self._client = httpx.Client(
                follow_redirects=True,
                max_redirects=MAX_REDIRECTS,
                timeout=httpx.Timeout(30.0, connect=10.0),
                headers={"User-Agent": USER_AGENT},
            )
        return self._client

    def _remote(self, where: _Location, what: str, limit: int, too_big: str) -> Iterator[bytes]:
        import httpx

        from reportdata.pull import MAX_REDIRECTS

        try:
            with self._http().stream("GET", where.text) as resp:
                if resp.status_code >= 400:
                    raise DownloadError(f"{what} answered HTTP {resp.status_code}.")
                declared = resp.headers.get("content-length", "")
                plain = not resp.headers.get("content-encoding")
                if plain and declared.isdigit() and int(declared) > limit:
                    raise DownloadError(too_big)
                yield from resp.iter_bytes(_CHUNK)
        except httpx.TooManyRedirects as exc:
            raise DownloadError(f"{what} redirects more than {MAX_REDIRECTS} times.") from exc
        except httpx.TimeoutException as exc:
            raise DownloadError(f"{what} did not answer in time.") from exc
        except httpx.RemoteProtocolError as exc:
            raise DownloadError(
                f"{what} is truncated: the connection closed before the whole file arrived."
            ) from exc
        except httpx.ConnectError as exc:  # "[Errno 111] Connection refused": the reason
            reason = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).lower() or "no connection"
            raise DownloadError(f"{what} could not be reached ({reason}).") from exc
        except httpx.HTTPError as exc:
            raise DownloadError(f"{what} could not be fetched: {exc.__class__.__name__}.") from exc
        except httpx.InvalidURL as exc:
            raise DownloadError(f"{what} is not a valid address ({exc}).") from exc


def _check_facts(what: str, size: int, digest: str, expected: tuple[int | None, str, str]) -> None:
    """Refuse a file whose size or hash differs from what its descriptor states."""
    want_bytes, algorithm, want = expected
    if want_bytes is not None and size < want_bytes:
        raise DownloadError(f"{what} is truncated: {size} of its {want_bytes} bytes arrived.")
    if want_bytes is not None and size != want_bytes:
        raise DownloadError(f"{what} is {size} bytes, not the {want_bytes} it states.")
    if digest != want:
        raise DownloadError(
            f"{what} does not match its {algorithm} hash "
            f"(expected {want[:12]}..., got {digest[:12]}...)."
        )


def _fetch_resource(
    fetcher: _Fetcher, base: _Location, res: _Resource, folder: Path, max_bytes: int
) -> int:
    """Stream a resource into ``folder``, fsync it and check it; its size."""
    where = _source_of(base, res)
    what = f"{res.label} at {where.text}"
    limit, too_big = max_bytes, f"{what} is larger than the {_size_text(max_bytes)} limit."
    if res.bytes is not None:
        limit, too_big = res.bytes, f"{what} is larger than the {res.bytes} bytes it states."
    dest = folder / res.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.new(res.algorithm)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(dest, flags, 0o666), "wb") as fh:

        def sink(chunk: bytes) -> None:
            hasher.update(chunk)
            fh.write(chunk)

        size = fetcher.copy(where, what, limit, too_big, sink)
        fh.flush()
        os.fsync(fh.fileno())
    _check_facts(what, size, hasher.hexdigest(), (res.bytes, res.algorithm, res.digest))
    return size


def _preflight(base: _Location, resources: list[_Resource], max_bytes: int) -> None:
    """Refuse, before fetching anything, resources too large or (local) outside their folder."""
    for res in resources:
        if res.bytes is not None and res.bytes > max_bytes:
            raise DownloadError(
                f"{res.label} states {res.bytes} bytes, more than the {_size_text(max_bytes)} "
                "limit."
            )
        _source_of(base, res)


def _source_of(base: _Location, res: _Resource) -> _Location:
    """Where a resource is read from; a local one may not leave the package's folder."""
    where = base.child(res.path)
    if where.path is not None and base.path is not None:
        root = base.path.parent.resolve()
        if root not in where.path.resolve().parents:
            raise DownloadError(f"{res.label} leads outside the package folder {root}.")
    return where


# ---------------------------------------------------------------------------- writing


def _refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise DownloadError(f"{path} is a symbolic link; refusing to write through it.")


def _make_dirs(folder: Path, created: list[Path]) -> None:
    """Create ``folder`` and its missing parents, adding those it created to ``created``."""
    missing: list[Path] = []
    probe = folder
    while not probe.exists() and not probe.is_symlink() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        try:
            path.mkdir()
        except FileExistsError:  # made meanwhile by someone else: theirs, not ours to remove
            continue
        created.append(path)


def _file_digest(path: Path, algorithm: str, limit: int) -> tuple[int, str] | None:
    """Size and hex digest of a regular file (no symlink), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        hasher, size = hashlib.new(algorithm), 0
        for block in iter(lambda: fh.read(_CHUNK), b""):
            size += len(block)
            if size > limit:
                return None
            hasher.update(block)
    return size, hasher.hexdigest()


def _already_there(target: Path, package: bytes, resources: list[_Resource], limit: int) -> bool:
    """True when ``target`` holds this descriptor and every resource with its size and hash."""
    if not target.is_dir():
        return False
    have = _file_digest(target / DESCRIPTOR, "sha256", len(package))
    if have != (len(package), hashlib.sha256(package).hexdigest()):
        return False
    for res in resources:
        path = target / res.path
        if any(p.is_symlink() for p in [path, *path.parents] if target in p.parents):
            return False
        facts = _file_digest(path, res.algorithm, res.bytes if res.bytes is not None else limit)
        if facts is None or facts[1] != res.digest:
            return False
        if res.bytes is not None and facts[0] != res.bytes:
            return False
    return True


def _write_version(
    fetcher: _Fetcher,
    base: _Location,
    plan: _Plan,
    package: bytes,
    target: Path,
    max_bytes: int,
) -> int:
    """Fetch every resource into a temporary sibling of ``target``, then rename it into place."""
    dataset_dir = target.parent
    created: list[Path] = []
    tmp = dataset_dir / f".tmp-download-{plan.version}-{secrets.token_hex(4)}"
    try:
        _make_dirs(dataset_dir, created)
        tmp.mkdir()
        total = sum(_fetch_resource(fetcher, base, r, tmp, max_bytes) for r in plan.resources)
        with open(tmp / DESCRIPTOR, "xb") as fh:
            fh.write(package)
            fh.flush()
            os.fsync(fh.fileno())
        for folder in sorted({(tmp / r.path).parent for r in plan.resources}, reverse=True):
            fsync_dir(folder)
        fsync_dir(tmp)
        _refuse_symlink(dataset_dir)
        if os.path.lexists(target):
            raise DownloadError(f"{target} appeared while downloading; it was left alone.")
        os.rename(tmp, target)
        fsync_dir(dataset_dir)
        return total
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


# ---------------------------------------------------------------------------- download


def _load_package(
    fetcher: _Fetcher,
    start: _Location,
    dataset: str | None,
    version: str | None,
    meta_limit: int,
) -> tuple[_Location, bytes, _Plan]:
    """The descriptor's location, bytes and plan, through a catalog when ``start`` is one."""
    data = fetcher.read(start, start.text, meta_limit)
    doc = _parse_json(data, start.text)
    if not _is_catalog(doc):
        return start, data, _plan(doc, f"The datapackage {start.text}", dataset, version)
    where, size, (algorithm, digest), dataset, version = _pick(doc, start, dataset, version)
    what = f"The datapackage {where.text}"
    data = fetcher.read(where, what, meta_limit)
    _check_facts(
        what, len(data), hashlib.new(algorithm, data).hexdigest(), (size, algorithm, digest)
    )
    return where, data, _plan(_parse_json(data, what), what, dataset, version)


def download(
    url: str,
    to: Path | str = ".",
    *,
    dataset: str | None = None,
    version: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_metadata_bytes: int = METADATA_MAX_BYTES,
) -> DownloadResult:
    """Download a published version into ``to/<dataset>/<version>/`` and check every file.

    ``url`` is an http(s) URL, file:// URL or path of a ``datapackage.json``, or of a
    ``catalog.json`` (then ``dataset`` is required; ``version`` defaults to its latest). Each
    resource may be at most ``max_bytes``, the descriptor and catalog ``max_metadata_bytes``.
    A folder already holding exactly this version is left as it is (``new`` is False).
    Raises :class:`DownloadError`, with nothing written, on any failure.
    """
    if max_bytes < 1 or max_metadata_bytes < 1:
        raise DownloadError("The size limits must be at least 1 byte.")
    start = _location(url)
    with _Fetcher() as fetcher:
        base, package, plan = _load_package(fetcher, start, dataset, version, max_metadata_bytes)
        target = Path(to) / plan.dataset / plan.version
        files = tuple(r.path for r in plan.resources)
        _preflight(base, plan.resources, max_bytes)
        _refuse_symlink(target.parent)
        _refuse_symlink(target)
        if os.path.lexists(target):
            if not _already_there(target, package, plan.resources, max_bytes):
                raise DownloadError(
                    f"{target} already exists with different content; it was not overwritten."
                )
            total = sum(r.bytes or (target / r.path).stat().st_size for r in plan.resources)
            return DownloadResult(plan.dataset, plan.version, target, files, total, new=False)
        try:
            total = _write_version(fetcher, base, plan, package, target, max_bytes)
        except OSError as exc:
            raise DownloadError(
                f"Could not write {target}: {exc.strerror or exc}; nothing was kept."
            ) from exc
        except DownloadError as exc:
            raise DownloadError(f"{str(exc).rstrip('.')}; nothing was kept.") from exc
    return DownloadResult(plan.dataset, plan.version, target, files, total, new=True)
