"""`reportdata validate`: check published data packages again, as a downloader would."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import typer

from reportdata.errors import ProjectError
from reportdata.project import load

_VERSION = re.compile(r"\d+\.\d+\.\d+")


def _package_paths(project_dir: Path, dataset: str | None, version: str | None) -> list[Path]:
    project = load(project_dir)
    names = [dataset] if dataset else list(project.datasets)
    if not names:
        raise ProjectError("sources.yaml defines no datasets, so there is nothing to validate.")
    for name in names:
        project.dataset(name)  # an unknown name fails before the heavy imports below
    from reportdata.publish import latest_version

    if version is not None and not _VERSION.fullmatch(version):
        raise ProjectError(f"{version!r} is not a version number like 1.2.0.")
    paths = []
    for name in names:
        v = version or latest_version(project.published_dir, name)
        if v is None:
            raise ProjectError(
                f"Dataset {name!r} has no published version yet; run 'reportdata run'."
            )
        path = project.published_dir / name / v / "datapackage.json"
        if not path.is_file():
            raise ProjectError(f"Dataset {name!r} has no version {v}.")
        paths.append(path)
    return paths


def _resource_paths(doc: object) -> list[tuple[str, str]]:
    """(resource name, path) of every resource naming a file; malformed ones are skipped
    (frictionless reports them)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
        return []
    found = []
    for i, res in enumerate(doc["resources"], start=1):
        if not isinstance(res, dict):
            continue
        name = res.get("name") if isinstance(res.get("name"), str) else str(i)
        paths = res.get("path")
        for path in paths if isinstance(paths, list) else [paths]:
            if isinstance(path, str):
                found.append((name, path))
    return found


def _refuse_paths_leaving(descriptor: Path) -> None:
    """Refuse a package whose resource files lie outside its folder (``..``, an absolute path
    or a symbolic link): validating it would read files it does not hold."""
    try:
        doc = json.loads(descriptor.read_bytes())
    except (OSError, ValueError, RecursionError):
        return  # frictionless reports what is wrong with it
    folder = descriptor.parent.resolve()
    for name, path in _resource_paths(doc):
        if "://" in path:
            continue  # a URL: frictionless refuses remote data in a local package
        local = Path(path)
        leaves = os.path.isabs(path) or ".." in local.parts
        if not leaves and os.path.lexists(descriptor.parent / local):
            real = (descriptor.parent / local).resolve()
            leaves = folder not in real.parents
        if leaves:
            raise ProjectError(
                f"Resource {name!r} of {descriptor} has the path {path!r}, which leads outside "
                "the package folder; it was not read."
            )


class _Unreadable(Exception):
    """A JSON table that frictionless accepted as a file but that holds no rows of its table."""


def _tables_from_json(descriptor: Path):
    """The package's tables read back from their JSON files, typed by the schemas."""
    from reportdata.schema import TABLES, to_frame

    doc = json.loads(descriptor.read_text(encoding="utf-8"))
    paths = dict(_resource_paths(doc))
    tables = {}
    for name in TABLES:
        rel = paths.get(f"{name}-json")
        if rel is None:
            return None
        try:
            rows = json.loads((descriptor.parent / rel).read_text(encoding="utf-8"))
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise TypeError("not an array of row objects")
            tables[name] = to_frame(name, rows)
        except (OSError, ValueError, TypeError, RecursionError) as exc:
            raise _Unreadable(f"{rel} cannot be read as the {name} table ({exc}).") from exc
    return tables


def validate_published(
    *, package: Path | None, dataset: str | None, version: str | None, project_dir: Path | None
) -> bool:
    """Validate with frictionless (schemas, keys, hashes) and the cross-field checks; print a
    summary per package; True when everything holds."""
    if package is not None:
        if not package.is_file():
            raise ProjectError(f"{package} does not exist.")
        paths = [package]
    else:
        assert project_dir is not None
        paths = _package_paths(project_dir, dataset, version)
    from reportdata.validate import check_tables, validate_package

    all_ok = True
    for path in paths:
        _refuse_paths_leaving(path)
    for path in paths:
        report = validate_package(path)
        try:
            tables = _tables_from_json(path) if report.ok else None
        except _Unreadable as exc:
            all_ok = False
            typer.echo(f"{path}: INVALID. {' '.join(str(exc).split())}")
            continue
        cross = check_tables(tables) if tables is not None else None
        ok = report.ok and (cross is None or cross.ok)
        all_ok &= ok
        typer.echo(f"{path}: {'valid' if ok else 'INVALID'}. {report.summary()}")
        if cross is not None and not cross.ok:
            typer.echo(cross.to_markdown())
        if not report.ok:
            typer.echo(report.to_markdown())
    return all_ok
