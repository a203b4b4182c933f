"""`reportdata validate`: check published data packages again, as a downloader would."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from reportdata.errors import ProjectError
from reportdata.project import load


def _package_paths(project_dir: Path, dataset: str | None, version: str | None) -> list[Path]:
    project = load(project_dir)
    names = [dataset] if dataset else list(project.datasets)
    if not names:
        raise ProjectError("sources.yaml defines no datasets, so there is nothing to validate.")
    for name in names:
        project.dataset(name)  # an unknown name fails before the heavy imports below
    from reportdata.publish import latest_version

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


def _tables_from_json(descriptor: Path):
    """The package's tables read back from their JSON files, typed by the schemas."""
    from reportdata.schema import TABLES, to_frame

    doc = json.loads(descriptor.read_text(encoding="utf-8"))
    paths = {r["name"]: r["path"] for r in doc.get("resources", [])}
    tables = {}
    for name in TABLES:
        rel = paths.get(f"{name}-json")
        if rel is None:
            return None
        rows = json.loads((descriptor.parent / rel).read_text(encoding="utf-8"))
        tables[name] = to_frame(name, rows)
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
        report = validate_package(path)
        tables = _tables_from_json(path) if report.ok else None
        cross = check_tables(tables) if tables is not None else None
        ok = report.ok and (cross is None or cross.ok)
        all_ok &= ok
        typer.echo(f"{path}: {'valid' if ok else 'INVALID'}. {report.summary()}")
        if cross is not None and not cross.ok:
            typer.echo(cross.to_markdown())
        if not report.ok:
            typer.echo(report.to_markdown())
    return all_ok
