"""Mirror the local ``published/`` folder to a remote fsspec target (S3, ``file://``, a path).

The local folder stays the source of truth; the remote is a copy a reader never sees half of:

1. each complete local version missing on the remote is uploaded file by file, its
   ``datapackage.json`` last (a remote version is complete iff its descriptor exists);
2. then the per-dataset files (CHANGELOG.md, <dataset>.duckdb, index.html, ...), then the
   top-level files, ``catalog.json`` and ``index.html`` last of them;
3. then each dataset's ``latest.json``, last of all.

A file already on the remote with the same size and sha256 is not uploaded again, so a mirror
that failed half-way is completed by the next one, while the remote's previous ``latest.json``
stays in force. A complete remote version is never overwritten with different bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.utils import get_protocol

from reportdata.errors import RemoteError

DESCRIPTOR = "datapackage.json"
LATEST = "latest.json"
TOP_LAST = ("catalog.json", "index.html")  # written after every other top-level file
_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")
# Object stores whose single PUT replaces an object at once; elsewhere write then rename.
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}
_LOCAL = {"file", "local"}
_BLOCK = 1 << 20


@dataclass(frozen=True)
class MirrorResult:
    """What `mirror` did: files uploaded (in order), files found already there (complete
    remote versions are not re-read), and the versions it made complete."""

    target: str
    uploaded: tuple[str, ...]
    skipped: tuple[str, ...]
    versions: tuple[str, ...]  # "<dataset>/<version>" made complete on the remote


@dataclass
class _Remote:
    fs: AbstractFileSystem
    root: str
    target: str
    atomic_put: bool
    sizes: dict[str, int] = field(default_factory=dict)  # remote files when the mirror began
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def path(self, rel: str) -> str:
        """The remote path of `rel` (a POSIX path relative to the root; "" gives the prefix)."""
        root = self.root.rstrip("/")
        return f"{root}/{rel}" if root else rel


@dataclass(frozen=True)
class _Dataset:
    name: str
    folder: Path
    versions: tuple[str, ...]  # complete local versions, oldest first
    latest: bytes | None  # latest.json as read before the versions were listed


# ---------------------------------------------------------------------------- target


def _protocols(fs: AbstractFileSystem) -> set[str]:
    proto = fs.protocol
    return {proto} if isinstance(proto, str) else set(proto)


def check_target(target: str, endpoint_url: str | None = None) -> None:
    """Refuse, with one sentence, a publish target or endpoint that cannot be right, before a
    run publishes anything: an endpoint that is not an http(s) address, a remote target that
    names no bucket or folder."""
    from urllib.parse import urlsplit

    if endpoint_url is not None:
        try:
            parts = urlsplit(endpoint_url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteError(
                f"{endpoint_url!r} is not an endpoint URL: give the S3 server's http(s) "
                "address, such as http://127.0.0.1:9000."
            )
    if get_protocol(target) not in _LOCAL:
        _, sep, rest = target.partition("://")
        if not sep or not rest.strip("/"):
            raise RemoteError(
                f"{target} names no bucket or folder to publish into (such as s3://bucket/prefix)."
            )


def open_target(
    target: str,
    *,
    endpoint_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and root path of `target` (``s3://bucket/prefix``, a URL, a path).

    `endpoint_url` (an S3-compatible server) joins `storage_options`; credentials come from
    the usual environment variables of the backend. Raises `RemoteError` for an unknown scheme.
    """
    options = dict(storage_options or {})
    local = get_protocol(target) in _LOCAL
    if endpoint_url:
        if local:
            raise RemoteError(f"An endpoint URL applies to a remote target, not to {target}.")
        options["endpoint_url"] = endpoint_url
    if local:
        options.setdefault("auto_mkdir", True)
    try:
        return url_to_fs(target, **options)
    except (ImportError, ValueError, TypeError, OSError) as exc:  # OSError: ftp:// connects
        raise RemoteError(f"Cannot open the publish target {target}: {_reason(exc)}.") from exc


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exception classes of the optional S3 stack that mean an unreachable or refusing remote."""
    errors: list[type[BaseException]] = [OSError, TimeoutError]
    with contextlib.suppress(ImportError):
        from botocore.exceptions import BotoCoreError, ClientError

        errors += [BotoCoreError, ClientError]
    with contextlib.suppress(ImportError):
        from aiohttp import ClientError as HttpClientError

        errors.append(HttpClientError)
    return tuple(errors)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
    if isinstance(exc, PermissionError):
        return f"permission denied ({text})"
    return text


# ---------------------------------------------------------------------------- local side


def _visible_files(folder: Path, skip_dirs: Collection[str] = ()) -> list[Path]:
    """Regular files under `folder`, sorted, without hidden ones or those in `skip_dirs`."""
    out: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            if path.name not in skip_dirs:
                out.extend(_visible_files(path))
        elif path.is_file():
            out.append(path)
    return out


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _is_version_dir(path: Path) -> bool:
    return path.is_dir() and bool(_VERSION_RE.fullmatch(path.name))


def _datasets(published_dir: Path) -> list[_Dataset]:
    """Dataset folders of `published_dir` (holding a latest.json or a version folder)."""
    found = []
    for folder in sorted(published_dir.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        latest = None
        with contextlib.suppress(FileNotFoundError):
            latest = (folder / LATEST).read_bytes()  # read first: its version is then listed
        versions = sorted(
            (p.name for p in folder.iterdir() if _is_version_dir(p) and (p / DESCRIPTOR).is_file()),
            key=_version_key,
        )
        if latest is not None or versions:
            found.append(_Dataset(folder.name, folder, tuple(versions), latest))
    return found


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _pointer_version(data: bytes | None) -> str | None:
    with contextlib.suppress(ValueError, TypeError, KeyError):
        version = str(json.loads(data)["version"]) if data else None
        if version and _VERSION_RE.fullmatch(version):
            return version
    return None


# ---------------------------------------------------------------------------- remote side


def _list_remote(remote: _Remote) -> None:
    """Record the size of every file under the remote root (one listing, not one per file).

    Raises FileNotFoundError when the root cannot exist (an unknown bucket).
    """
    remote.fs.invalidate_cache()
    prefix = remote.path("")
    found = remote.fs.find(remote.root, detail=True)
    remote.sizes = {
        name[len(prefix) :]: int(info["size"])
        for name, info in found.items()
        if info.get("type") == "file" and name.startswith(prefix)
    }


_POINTER_LIMIT = 64 * 1024  # latest.json is a few dozen bytes


def _remote_bytes(remote: _Remote, rel: str, limit: int) -> bytes | None:
    """The bytes of a remote file (at most `limit` + 1 of them: enough to tell that a longer
    file differs from a local one of `limit` bytes), or None when it is not there."""
    try:
        return remote.fs.cat_file(remote.path(rel), start=0, end=limit + 1)
    except FileNotFoundError:
        return None


def _uploaded_size(remote: _Remote, rel: str) -> int | None:
    """The size of a remote file just written (the listing cache bypassed)."""
    path = remote.path(rel)
    remote.fs.invalidate_cache(path)
    try:
        return int(remote.fs.info(path)["size"])
    except FileNotFoundError:
        return None


def _remote_sha256(remote: _Remote, rel: str) -> str:
    digest = hashlib.sha256()
    with remote.fs.open(remote.path(rel), "rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _put(remote: _Remote, local: Path, rel: str) -> None:
    """Upload one file so that readers see the old object or the new one, never half."""
    path = remote.path(rel)
    if remote.atomic_put:
        remote.fs.put_file(str(local), path)
        return
    parent, _, name = path.rpartition("/")
    tmp = f"{parent}/.{name}.{secrets.token_hex(4)}.tmp"
    try:
        remote.fs.put_file(str(local), tmp)
        remote.fs.mv(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            if remote.fs.exists(tmp):
                remote.fs.rm_file(tmp)


def _sync(remote: _Remote, local: Path, rel: str, *, compare_bytes: bool = False) -> None:
    """Upload `local` as `rel` unless the remote holds the same bytes; verify the upload."""
    size = local.stat().st_size
    same_size = remote.sizes.get(rel) == size
    if same_size and _remote_sha256(remote, rel) == _sha256_file(local):
        remote.skipped.append(rel)
        return
    _put(remote, local, rel)
    remote.uploaded.append(rel)
    if _uploaded_size(remote, rel) != size:
        raise RemoteError(f"The upload of {rel} to {remote.target} has the wrong size.")
    if compare_bytes and _remote_bytes(remote, rel, size) != local.read_bytes():
        raise RemoteError(f"The upload of {rel} to {remote.target} reads back different bytes.")


def _sync_bytes(remote: _Remote, data: bytes, rel: str) -> None:
    """`_sync` for bytes held in memory (a snapshot of a file that may change meanwhile)."""
    fd, name = tempfile.mkstemp(prefix="reportdata-mirror-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _sync(remote, Path(name), rel, compare_bytes=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


# ---------------------------------------------------------------------------- mirror


def _pending_versions(remote: _Remote, dataset: _Dataset) -> list[str]:
    """Local versions not complete on the remote; refuses a remote version that differs."""
    pending = []
    for version in dataset.versions:
        rel = f"{dataset.name}/{version}/{DESCRIPTOR}"
        local = (dataset.folder / version / DESCRIPTOR).read_bytes()
        there = _remote_bytes(remote, rel, len(local)) if rel in remote.sizes else None
        if there is None:
            pending.append(version)
        elif there != local:
            raise RemoteError(
                f"Version {version} of {dataset.name} on {remote.target} differs from the "
                f"local one; published versions are never overwritten."
            )
    pointer = f"{dataset.name}/{LATEST}"
    remote_latest = _pointer_version(
        _remote_bytes(remote, pointer, _POINTER_LIMIT) if pointer in remote.sizes else None
    )
    local_latest = _pointer_version(dataset.latest)
    if remote_latest and local_latest and _version_key(remote_latest) > _version_key(local_latest):
        raise RemoteError(
            f"The latest version of {dataset.name} on {remote.target} is {remote_latest}, "
            f"newer than the local {local_latest}; the remote is not moved back."
        )
    return pending


def _upload_version(remote: _Remote, dataset: _Dataset, version: str) -> None:
    folder = dataset.folder / version
    prefix = f"{dataset.name}/{version}"
    for path in _visible_files(folder):
        rel = path.relative_to(folder).as_posix()
        if rel != DESCRIPTOR:
            _sync(remote, path, f"{prefix}/{rel}")
    _sync(remote, folder / DESCRIPTOR, f"{prefix}/{DESCRIPTOR}", compare_bytes=True)


def _dataset_files(dataset: _Dataset) -> Iterator[tuple[Path, str]]:
    """Files of a dataset folder outside its versions, except latest.json."""
    skip = {p.name for p in dataset.folder.iterdir() if _is_version_dir(p)}
    for path in _visible_files(dataset.folder, skip):
        rel = path.relative_to(dataset.folder).as_posix()
        if rel != LATEST:
            yield path, f"{dataset.name}/{rel}"


def _top_files(published_dir: Path, datasets: list[_Dataset]) -> list[tuple[Path, str]]:
    """Files outside the dataset folders, with catalog.json and index.html last."""
    skip = {d.name for d in datasets}
    files = [
        (p, p.relative_to(published_dir).as_posix()) for p in _visible_files(published_dir, skip)
    ]
    return sorted(files, key=lambda item: TOP_LAST.index(item[1]) if item[1] in TOP_LAST else -1)


def _mirror(published_dir: Path, remote: _Remote) -> list[str]:
    datasets = _datasets(published_dir)
    _list_remote(remote)
    plan = {d.name: _pending_versions(remote, d) for d in datasets}
    completed = []
    for dataset in datasets:
        for version in plan[dataset.name]:
            _upload_version(remote, dataset, version)
            completed.append(f"{dataset.name}/{version}")
    for dataset in datasets:
        for path, rel in _dataset_files(dataset):
            _sync(remote, path, rel)
    for path, rel in _top_files(published_dir, datasets):
        _sync(remote, path, rel, compare_bytes=rel in TOP_LAST)
    for dataset in datasets:
        if dataset.latest is not None:
            _sync_bytes(remote, dataset.latest, f"{dataset.name}/{LATEST}")
    return completed


def mirror(
    published_dir: Path,
    target: str,
    *,
    endpoint_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> MirrorResult:
    """Copy `published_dir` to `target` (an fsspec URL or path) so readers never see half.

    Versions first (each ``datapackage.json`` last), then dataset and top-level files, then
    every ``latest.json``; unchanged files are skipped. Raises `RemoteError` with one sentence
    when the remote is unreachable, refuses access, does not exist, or holds a version whose
    bytes differ from the local one.
    """
    published_dir = Path(published_dir)
    if not published_dir.is_dir():
        raise RemoteError(f"There is no published folder at {published_dir} to mirror.")
    fs, root = open_target(target, endpoint_url=endpoint_url, storage_options=storage_options)
    remote = _Remote(fs, root, target, atomic_put=bool(_protocols(fs) & _ATOMIC_PUT))
    try:
        completed = _mirror(published_dir, remote)
    except RemoteError:
        raise
    except _network_errors() as exc:
        raise RemoteError(f"Could not mirror to {target}: {_reason(exc)}.") from exc
    return MirrorResult(target, tuple(remote.uploaded), tuple(remote.skipped), tuple(completed))
