"""`reportdata add`: register reports in sources.yaml and pull them."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from reportdata import read as _read
from reportdata.errors import InputError, ProjectError
from reportdata.project import (
    Project,
    Source,
    add_sources,
    load,
    safe_relative,
    slug,
    snapshot_folder,
)
from reportdata.pull import Snapshot, fetch, store

EMBED_DIR = Path("raw") / "embedded"


def _unique(candidate: str, taken: set[str]) -> str:
    sid, n = candidate, 2
    while sid in taken:
        sid = f"{candidate}-{n}"
        n += 1
    return sid


def _local_copy(root: Path, file: Path, sid: str) -> str:
    """The file's path inside the project, copying it into raw/embedded/ when it lives outside.

    The copy is never written through a symbolic link: not a ``raw/embedded`` that leads
    outside the project, nor a (dangling) link already standing where the copy would go.
    """
    src = file.expanduser().resolve()
    if not src.exists():
        raise InputError(f"{file} is not a file that exists.")
    if not src.is_file():
        kind = "a folder" if src.is_dir() else "a pipe, socket or device"
        raise InputError(f"{file} is {kind}, not a report file.")
    if src.stat().st_size > _read.MAX_BYTES:
        raise InputError(f"{file} is larger than the {_read.size_limit()} limit.")
    if root in src.parents:
        return src.relative_to(root).as_posix()
    folder = root / EMBED_DIR
    safe_relative(root, EMBED_DIR.as_posix(), "The folder")
    target = folder / f"{sid}{src.suffix.lower()}"
    taken = ProjectError(f"{target.relative_to(root)} already exists; choose another --id.")
    if os.path.lexists(target):
        raise taken
    folder.mkdir(parents=True, exist_ok=True)
    created = False
    try:
        # "x": never written through a link, never over a file that appeared meanwhile
        with open(src, "rb") as fh_in, open(target, "xb") as fh_out:
            created = True
            shutil.copyfileobj(fh_in, fh_out)
    except FileExistsError as exc:
        raise taken from exc
    except OSError as exc:
        if created:
            target.unlink(missing_ok=True)
        raise ProjectError(f"{file} could not be copied into {EMBED_DIR}: {exc.strerror}.") from exc
    return target.relative_to(root).as_posix()


def add_reports(
    root: Path,
    items: list[str],
    *,
    dataset: str,
    source_id: str | None = None,
    title: str | None = None,
    publisher: str = "unknown",
    area: str = "unknown",
    published: str = "",
) -> list[tuple[str, Snapshot]]:
    """Pull each report and register the ones that pulled; all or nothing per call.

    When one report fails, nothing of the call stays behind: no copy in raw/embedded/, no
    snapshot folder in raw/, no change to sources.yaml.
    """
    if source_id and len(items) > 1:
        raise ProjectError("--id names one source; give one file or URL with it.")
    if source_id and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,79}", source_id):
        raise ProjectError("--id needs lower-case letters, digits, - and _.")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,79}", dataset):
        raise ProjectError("--dataset needs a lower-case name of letters, digits, - and _.")
    root = root.resolve()
    project = load(root)
    taken = {s.id for s in project.sources}
    entries: list[dict] = []
    pulled: list[tuple[str, Snapshot]] = []
    copied: list[Path] = []
    created: list[Path] = []
    try:
        for item in items:
            is_url = bool(re.match(r"^https?://", item))
            sid = source_id or _unique(slug(item), taken)
            if sid in taken:
                raise ProjectError(f"A source with id {sid!r} is already registered.")
            taken.add(sid)
            entry: dict = {"id": sid, "dataset": dataset}
            if title:
                entry["title"] = title
            if is_url:
                entry["url"] = item
            else:
                rel = _local_copy(root, Path(item), sid)
                if not (root / rel).samefile(Path(item).expanduser()):
                    copied.append(root / rel)
                entry["path"] = rel
            entry.update({"publisher": publisher, "area": area})
            if published:
                entry["published"] = str(published)
            source = Source(
                id=sid,
                dataset=dataset,
                title=title or "",
                path=entry.get("path", ""),
                url=entry.get("url", ""),
                publisher=publisher,
                area=area,
                published=str(published or ""),
            )
            snapshot_folder(root, sid)  # refuses a raw/<id> that is a link out of raw/
            holder = Project(root=project.root, datasets=project.datasets, sources=[source])
            data, meta = fetch(holder, source)
            if not (project.raw_dir / sid).exists():
                created.append(project.raw_dir / sid)
            try:
                snapshot = store(holder, source, data, meta).snapshot
            except InputError as exc:
                raise InputError(f"{item}: {exc}") from exc
            pulled.append((sid, snapshot))
            entries.append(entry)
        add_sources(root, entries, dataset)
    except BaseException:
        for path in copied:
            path.unlink(missing_ok=True)
        for folder in created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return pulled
