"""The project folder and its registry of reports, sources.yaml."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reportdata.errors import ProjectError
from reportdata.fsutil import atomic_write_bytes

SOURCES_FILE = "sources.yaml"
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
DEFAULT_SCHEDULE = "0 6 * * *"


@dataclass(frozen=True)
class Source:
    """One report to pull: where it is, what it is, and under what licence."""

    id: str
    dataset: str
    title: str = ""
    path: str = ""
    url: str = ""
    publisher: str = ""
    area: str = ""
    licence: str = ""
    published: str = ""

    @property
    def origin(self) -> str:
        return self.url or self.path

    @property
    def published_year(self) -> int | None:
        m = re.match(r"(\d{4})", str(self.published or ""))
        return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Dataset:
    """A published dataset: the reports it gathers and how it is described and licensed."""

    name: str
    title: str
    description: str = ""
    licence: dict = field(default_factory=dict)
    schedule: str = DEFAULT_SCHEDULE
    contributors: tuple[dict, ...] = ()


@dataclass
class Project:
    """A reportdata project: a folder holding sources.yaml, raw/ and published/."""

    root: Path
    datasets: dict[str, Dataset]
    sources: list[Source]

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def published_dir(self) -> Path:
        return self.root / "published"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    def dataset(self, name: str) -> Dataset:
        if name not in self.datasets:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise ProjectError(
                f"There is no dataset named {name!r} in sources.yaml (known: {known})."
            )
        return self.datasets[name]

    def sources_of(self, dataset: str) -> list[Source]:
        self.dataset(dataset)
        return [s for s in self.sources if s.dataset == dataset]


def find_root(start: Path | None = None, explicit: Path | None = None) -> Path:
    """The project folder: ``explicit``, else the nearest folder upward with sources.yaml."""
    if explicit is not None:
        root = explicit.expanduser().resolve()
        if not (root / SOURCES_FILE).is_file():
            raise ProjectError(f"{root} is not a reportdata project: it has no {SOURCES_FILE}.")
        return root
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / SOURCES_FILE).is_file():
            return folder
    raise ProjectError(
        f"No {SOURCES_FILE} was found in {here} or any folder above it; "
        "run inside a project or pass --project DIR."
    )


def _text(value: object, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dt.date):  # YAML reads an unquoted 2021-05-01 as a date
        return value.isoformat()
    raise ProjectError(f"{where} must be a plain value in {SOURCES_FILE}.")


def _licence(value: object, where: str) -> dict:
    if isinstance(value, str):
        return {"name": value, "title": value}
    if isinstance(value, dict) and value.get("name"):
        return {k: str(v) for k, v in value.items() if k in {"name", "path", "title"}}
    raise ProjectError(f"{where} needs a licence (a name, or a mapping with name, path and title).")


def safe_relative(root: Path, rel: str, what: str) -> Path:
    """``root/rel``, refusing absolute paths and paths that leave ``root`` (.., symlinks)."""
    if not rel or os.path.isabs(rel) or Path(rel).drive:
        raise ProjectError(f"{what} must be a relative path inside the project, not {rel!r}.")
    resolved = (root / rel).resolve()
    if resolved != root.resolve() and root.resolve() not in resolved.parents:
        raise ProjectError(f"{what} {rel!r} leads outside the project folder.")
    return resolved


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _check_raw(root: Path) -> Path:
    """``raw/``, refused when it is not a folder or leads outside the project."""
    raw = root / "raw"
    if os.path.lexists(raw):
        if not raw.is_dir():
            raise ProjectError(f"{raw} is not a folder, so no snapshot can be kept in it.")
        if not _inside(raw.resolve(), root.resolve()):
            raise ProjectError(f"{raw} is a symbolic link leading outside the project folder.")
    return raw


def _check_folder(entry: os.DirEntry | Path, source_id: str) -> None:
    """Refuse a ``raw/<id>`` that is a symbolic link or no folder, or holds a link."""
    if entry.is_symlink():
        raise ProjectError(
            f"raw/{source_id} is a symbolic link; the snapshots of source {source_id!r} are "
            "kept only in a real folder inside raw/."
        )
    if not entry.is_dir():
        raise ProjectError(
            f"raw/{source_id} is not a folder, so the snapshots of source {source_id!r} "
            "cannot be kept there."
        )
    for inner in os.scandir(entry):
        if inner.is_symlink():
            raise ProjectError(
                f"raw/{source_id}/{inner.name} is a symbolic link; snapshots and manifests "
                "are only read from real files."
            )


def snapshot_folder(root: Path, source_id: str) -> Path:
    """``raw/<source_id>``, where a source's snapshots are kept, when it is safe to write to.

    Refused: a ``raw`` that is not a folder or leads outside the project, a ``raw/<id>`` that
    is not a folder or is a symbolic link, and a symbolic link among its files. A cloned
    project can carry such links, and a pull would otherwise write or read through them.
    """
    folder = _check_raw(root) / source_id
    if os.path.lexists(folder):
        _check_folder(folder, source_id)
    return folder


def check_snapshot_folders(root: Path, source_ids: list[str]) -> None:
    """:func:`snapshot_folder`'s checks for many sources, reading ``raw/`` once."""
    raw = _check_raw(root)
    if not os.path.lexists(raw):
        return
    with os.scandir(raw) as listing:
        entries = {entry.name: entry for entry in listing}
    for sid in source_ids:
        if sid in entries:
            _check_folder(entries[sid], sid)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One sentence for YAML that cannot be read, naming a refused tag (``!!python/...``)."""
    mark = getattr(exc, "problem_mark", None)
    at = f" at line {mark.line + 1}" if mark else ""
    problem = " ".join((getattr(exc, "problem", None) or "").split())
    tag = re.search(r"constructor for the tag '([^']+)'", problem)
    if tag:
        name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        return (
            f"{SOURCES_FILE} uses the tag {name}{at}, which is not allowed: only plain values, "
            "lists and mappings are read."
        )
    return f"{SOURCES_FILE} is not valid YAML{at}" + (f" ({problem})." if problem else ".")


# The C-accelerated safe loader when PyYAML has it (5x faster on a large sources.yaml); both
# build only plain values, lists and mappings.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> Any:
    """sources.yaml's text as plain values (`_parsed` keeps them for the same text)."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def _copy_path(root: Path) -> Path:
    return root / ".reportdata" / "cache" / "sources.json"


def _parsed(root: Path, text: str) -> tuple[Any, str]:
    """sources.yaml's text as plain values and the text's sha256: parsed once a process, and
    read across processes from a JSON copy of the parse under .reportdata/ whose sha256 of
    the text matches (10,000 sources take 2 s to parse as YAML, 0.1 s to read as JSON; see
    `_keep`). Any problem with the copy is a miss."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if digest not in _DOCS:
        doc: Any = None
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads(_copy_path(root).read_text(encoding="utf-8"))
            if isinstance(saved, dict) and saved.get("sha256") == digest:
                doc = saved.get("doc")
        if doc is not None:
            _COPIED.add((str(_copy_path(root)), digest))
        if len(_DOCS) >= 4:
            _DOCS.clear()
        _DOCS[digest] = doc if doc is not None else _parse(text)
    return _DOCS[digest], digest


_DOCS: dict[str, Any] = {}  # sha256 of a sources.yaml text → its parse (read only)
_COPIED: set[tuple[str, str]] = set()  # (copy path, sha256) known to be on disk


def _keep(root: Path, digest: str, doc: Any) -> None:
    """Keep the parse of a sources.yaml that loaded without a problem, when JSON holds its
    values exactly (no dates, no keys other than text) and this process has not read or
    written that copy already (`_parsed` notes the copies it read); best effort."""
    path = _copy_path(root)
    if (str(path), digest) in _COPIED:
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if json.loads(path.read_text(encoding="utf-8")).get("sha256") == digest:
            _COPIED.add((str(path), digest))
            return
    with contextlib.suppress(OSError, ValueError, TypeError):
        body = json.dumps({"sha256": digest, "doc": doc}, ensure_ascii=False)
        if json.loads(body)["doc"] == doc:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, body.encode("utf-8"))
            _COPIED.add((str(path), digest))


def load(root: Path, keep: bool = False) -> Project:
    """Read and check sources.yaml; every problem is one sentence naming the entry. With
    ``keep`` (a run does it), a registry that loads is kept as a JSON copy for next time."""
    path = root / SOURCES_FILE
    try:
        doc, digest = _parsed(root, path.read_text(encoding="utf-8"))
        doc = doc or {}
    except yaml.YAMLError as exc:
        raise ProjectError(_yaml_problem(exc)) from exc
    except UnicodeDecodeError as exc:
        raise ProjectError(f"{SOURCES_FILE} is not UTF-8 text.") from exc
    except OSError as exc:
        raise ProjectError(f"{path} cannot be read ({exc.strerror or exc}).") from exc
    if not isinstance(doc, dict):
        raise ProjectError(f"{SOURCES_FILE} must be a mapping with 'datasets' and 'sources'.")
    raw_datasets = doc.get("datasets") or {}
    raw_sources = doc.get("sources") or []
    if not isinstance(raw_datasets, dict) or not isinstance(raw_sources, list):
        raise ProjectError(f"In {SOURCES_FILE}, 'datasets' must be a mapping and 'sources' a list.")
    datasets: dict[str, Dataset] = {}
    for name, d in raw_datasets.items():
        where = f"Dataset {name!r}"
        if not isinstance(name, str) or not _ID.fullmatch(name):
            raise ProjectError(f"{where} needs a lower-case name of letters, digits, - and _.")
        if not isinstance(d, dict):
            raise ProjectError(f"{where} must be a mapping in {SOURCES_FILE}.")
        contributors = d.get("contributors") or []
        if not isinstance(contributors, list) or not all(isinstance(c, dict) for c in contributors):
            raise ProjectError(f"{where}: contributors must be a list of mappings.")
        datasets[name] = Dataset(
            name=name,
            title=_text(d.get("title"), f"{where} title") or name,
            description=_text(d.get("description"), f"{where} description"),
            licence=_licence(d.get("licence"), where),
            schedule=_text(d.get("schedule"), f"{where} schedule") or DEFAULT_SCHEDULE,
            contributors=tuple({k: str(v) for k, v in c.items()} for c in contributors),
        )
    sources: list[Source] = []
    seen: set[str] = set()
    for i, s in enumerate(raw_sources, start=1):
        if not isinstance(s, dict):
            raise ProjectError(f"Source number {i} in {SOURCES_FILE} must be a mapping.")
        sid = _text(s.get("id"), f"Source number {i} id")
        where = f"Source {sid or i!r}"
        if not _ID.fullmatch(sid):
            raise ProjectError(f"{where} needs an id of lower-case letters, digits, - and _.")
        if sid in seen:
            raise ProjectError(f"Source id {sid!r} appears twice in {SOURCES_FILE}.")
        seen.add(sid)
        dataset = _text(s.get("dataset"), f"{where} dataset")
        if dataset not in datasets:
            raise ProjectError(
                f"{where} names dataset {dataset!r}, which sources.yaml does not define."
            )
        url = _text(s.get("url"), f"{where} url")
        rel = _text(s.get("path"), f"{where} path")
        if not url and not rel:
            raise ProjectError(f"{where} needs a path under raw/ or an http(s) url.")
        if url and not re.match(r"^https?://", url):
            raise ProjectError(f"{where} has url {url!r}; only http and https are supported.")
        if rel:
            safe_relative(root, rel, f"{where} path")
        lic = s.get("licence")
        sources.append(
            Source(
                id=sid,
                dataset=dataset,
                title=_text(s.get("title"), f"{where} title"),
                path=rel,
                url=url,
                publisher=_text(s.get("publisher"), f"{where} publisher") or "unknown",
                area=_text(s.get("area"), f"{where} area") or "unknown",
                licence=_licence(lic, where)["name"] if lic else datasets[dataset].licence["name"],
                published=_text(s.get("published"), f"{where} published"),
            )
        )
    check_snapshot_folders(root, [s.id for s in sources])
    if keep:
        _keep(root, digest, doc)
    return Project(root=root, datasets=datasets, sources=sources)


def open_project(explicit: Path | None = None) -> Project:
    """Find and load the project for a command."""
    return load(find_root(explicit=explicit))


def slug(text: str) -> str:
    """A source id from a file name or URL."""
    base = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", text.rstrip("/").rsplit("/", 1)[-1])
    s = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    return s[:60] or "report"


def add_sources(root: Path, entries: list[dict], dataset: str, dataset_title: str = "") -> None:
    """Append sources (and the dataset if new) to sources.yaml, written atomically."""
    path = root / SOURCES_FILE
    original = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(original) or {}
    if not doc.get("datasets"):  # absent, or written as an empty 'datasets:'
        doc["datasets"] = {}
    if not doc.get("sources"):
        doc["sources"] = []
    if dataset not in doc["datasets"]:
        doc["datasets"][dataset] = {
            "title": dataset_title or dataset,
            "licence": {"name": "other-at", "title": "Check the publisher's terms before reuse"},
        }
    doc["sources"].extend(entries)
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)
    atomic_write_bytes(path, (_leading_comments(original) + text).encode("utf-8"))


def _leading_comments(text: str) -> str:
    """The comment lines that open a YAML file, kept when the file is rewritten."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)
