"""Only changed work is redone: extracted rows cached by what they were made from.

A source's rows depend on its raw bytes (sha256), on its entry in sources.yaml (title,
publisher, area... go into the documents row) and on the extractor's code. The cache key
hashes all three; the extractor's part is a digest of the source files of the modules that
turn bytes into rows and of the table schemas, so any change to them invalidates every entry
without anyone remembering to bump a number. Entries live in
``.reportdata/cache/extract/<source>/<key>.json`` (outside version control); only the newest
entry of a source is kept.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from reportdata.fsutil import atomic_write_bytes
from reportdata.project import Project, Source

# The modules whose code decides the rows of a report.
_EXTRACTOR_MODULES = (
    "read", "normalize", "noise", "layout", "numerals", "units", "quantity", "extract",
    "tabular", "figure", "tables",
)  # fmt: skip


@functools.cache
def extractor_version() -> str:
    """A digest of the extractor's code and the table schemas (first 16 hex digits)."""
    from reportdata import __version__
    from reportdata.schema import TABLES, load_schema

    digest = hashlib.sha256(__version__.encode())
    here = Path(__file__).resolve().parent
    for name in _EXTRACTOR_MODULES:
        digest.update((here / f"{name}.py").read_bytes())
    for table in TABLES:
        digest.update(json.dumps(load_schema(table), sort_keys=True).encode("utf-8"))
    return digest.hexdigest()[:16]


def source_key(source: Source, raw_sha256: str, hint: str = "") -> str:
    """The cache key of a source's rows: raw bytes (and the format hint they were read with),
    the sources.yaml entry and the extractor's code."""
    entry = json.dumps(vars(source), sort_keys=True, ensure_ascii=False)  # flat: as asdict
    parts = (raw_sha256, hint, entry, extractor_version())
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]


def cache_dir(project: Project) -> Path:
    return project.root / ".reportdata" / "cache" / "extract"


def _entry(project: Project, source_id: str, key: str) -> Path:
    return cache_dir(project) / source_id / f"{key}.json"


def load_rows(project: Project, source_id: str, key: str) -> dict[str, list[dict]] | None:
    """The cached rows under `key`, or None (missing or unreadable entries are misses)."""
    try:
        data = json.loads(_entry(project, source_id, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save_rows(project: Project, source_id: str, key: str, rows: dict[str, Any]) -> None:
    """Store rows under `key` and drop the source's older entries (best effort: a cache)."""
    path = _entry(project, source_id, key)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        atomic_write_bytes(path, data)
        for old in path.parent.glob("*.json"):
            if old != path:
                old.unlink(missing_ok=True)
