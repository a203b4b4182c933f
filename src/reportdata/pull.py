"""Pull a source into raw/: immutable, content-addressed snapshots with a manifest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from reportdata import __version__
from reportdata import read as _read
from reportdata.errors import PullError
from reportdata.fsutil import atomic_write_bytes, atomic_write_text
from reportdata.project import Project, Source, safe_relative
from reportdata.read import read_bytes

USER_AGENT = f"reportdata/{__version__} (open-data pipeline; +https://pypi.org/project/reportdata/)"
MAX_REDIRECTS = 5
_EXT = {"text": ".txt", "html": ".html", "pdf": ".pdf"}


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
    """What a pull did: the snapshot in force and whether it is new."""

    snapshot: Snapshot
    new: bool


def manifest_path(raw_dir: Path, source_id: str) -> Path:
    return raw_dir / source_id / "manifest.json"


def read_manifest(raw_dir: Path, source_id: str) -> list[Snapshot]:
    """Snapshots of a source, oldest first."""
    path = manifest_path(raw_dir, source_id)
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [Snapshot(**s) for s in doc["snapshots"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise PullError(
            f"The manifest {path} is damaged; restore it from version control."
        ) from exc


def latest_snapshot(raw_dir: Path, source_id: str) -> Snapshot | None:
    snaps = read_manifest(raw_dir, source_id)
    return snaps[-1] if snaps else None


def _fetch_url(url: str, previous: Snapshot | None) -> tuple[bytes, dict[str, str]]:
    import httpx

    headers = {"User-Agent": USER_AGENT, "Accept": "text/html,application/pdf,text/plain,*/*"}
    timeout = httpx.Timeout(30.0, connect=10.0)
    try:
        with (
            httpx.Client(
                follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=timeout, headers=headers
            ) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code >= 400:
                raise PullError(f"{url} answered HTTP {resp.status_code}.")
            limit = _read.MAX_BYTES
            too_big = f"{url} is larger than the {_read.size_limit()} limit."
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise PullError(too_big)
            chunks, size = [], 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise PullError(too_big)
                chunks.append(chunk)
            meta = {
                "etag": resp.headers.get("etag", ""),
                "last_modified": resp.headers.get("last-modified", ""),
                "content_type": resp.headers.get("content-type", ""),
            }
            return b"".join(chunks), meta
    except httpx.TooManyRedirects as exc:
        raise PullError(f"{url} redirects more than {MAX_REDIRECTS} times.") from exc
    except httpx.TimeoutException as exc:
        raise PullError(f"{url} did not answer in time.") from exc
    except httpx.HTTPError as exc:
        raise PullError(f"{url} could not be fetched: {exc.__class__.__name__}.") from exc
    except httpx.InvalidURL as exc:
        raise PullError(f"{url} is not a valid address ({exc}).") from exc


def fetch(project: Project, source: Source) -> tuple[bytes, dict[str, str]]:
    """The source's current bytes, from its url or its path in the project."""
    if source.url:
        return _fetch_url(source.url, latest_snapshot(project.raw_dir, source.id))
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
    if not target.exists():
        atomic_write_bytes(target, data)
    doc = {"source": source.id, "snapshots": [asdict(s) for s in [*snaps, snap]]}
    atomic_write_text(
        manifest_path(project.raw_dir, source.id),
        json.dumps(doc, ensure_ascii=False, indent=2) + "\n",
    )
    return PullResult(snap, new=True)


def pull(project: Project, source: Source) -> PullResult:
    """Fetch a source and store it; an unchanged source is not stored again."""
    data, meta = fetch(project, source)
    return store(project, source, data, meta)
