"""The main job: the `publish-dataset` flow, one run per dataset of sources.yaml.

Tasks wrap the library steps of :mod:`reportdata.pipeline` and add what orchestration owns:
the run logger, and artifacts (the validation summary as Markdown, the
figures as a table). Tasks are coarse (a source's pull, a dataset's extraction) because the
Prefect server records only about a dozen task runs a second.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.states import Failed

from reportdata import pipeline
from reportdata.errors import ReportdataError
from reportdata.progress import emit
from reportdata.project import load
from reportdata.pull import pull
from reportdata.tables import GUIDE_COLUMNS

FIGURE_COLUMNS = ("document_id", *GUIDE_COLUMNS)


@task(name="pull-source", cache_policy=NONE)  # retries with backoff inside reportdata.pull
def pull_source(root: str, source_id: str) -> dict:
    """Fetch one source into raw/ (a new snapshot only when its bytes changed)."""
    project = load(Path(root))
    source = next(s for s in project.sources if s.id == source_id)
    result = pull(project, source)
    get_run_logger().info(
        "%s: %s %s (%d bytes, %s, %s)",
        source_id,
        "new snapshot" if result.new else "unchanged",
        result.snapshot.file,
        result.snapshot.bytes,
        result.snapshot.format,
        result.snapshot.encoding,
    )
    emit("pull", source_id)
    return {"source_id": source_id, "new": result.new, "sha256": result.snapshot.sha256}


@task(name="extract-dataset", cache_policy=NONE)
def extract_dataset(root: str, dataset: str) -> pipeline.Rows:
    """Read and extract every source of the dataset from its newest snapshot."""
    project = load(Path(root))
    parts = []
    for source in project.sources_of(dataset):
        rows = pipeline.extract_source(project, source)
        get_run_logger().info("%s: %d figures", source.id, len(rows["indicators"]))
        parts.append(rows)
    emit("extract", dataset)
    return pipeline.merge(parts)


@task(name="validate-dataset", cache_policy=NONE)
def validate_dataset(root: str, dataset: str, rows: pipeline.Rows):
    """Check the tables against their schemas and the cross-field rules; publish the summary."""
    project = load(Path(root))
    tables = pipeline.frames(rows)
    report = pipeline.check(project, dataset, tables)
    create_markdown_artifact(
        report.to_markdown(),
        key=f"{_key(dataset)}-validation",
        description=f"Validation of dataset {dataset}",
    )
    pipeline.require_valid(project, dataset, report)
    emit("validate", dataset)
    return tables, report


@task(name="publish-release", cache_policy=NONE)
def publish_release(root: str, dataset: str, tables, report) -> dict:
    """Load DuckDB and publish the version (nothing new when the data are unchanged)."""
    project = load(Path(root))
    summary = pipeline.release(project, dataset, tables, report)
    indicators = tables["indicators"]
    create_table_artifact(
        indicators.loc[:, list(FIGURE_COLUMNS)].to_dict(orient="records"),
        key=f"{_key(dataset)}-figures",
        description=f"Figures of dataset {dataset}, version {summary.version}",
    )
    get_run_logger().info(
        "%s: %s version %s at %s",
        dataset,
        "published" if summary.new else "unchanged; latest is",
        summary.version,
        summary.path,
    )
    emit("publish", dataset)
    return {
        "dataset": summary.dataset,
        "version": summary.version,
        "path": str(summary.path),
        "new": summary.new,
        "counts": summary.counts,
    }


@task(name="mirror-release", cache_policy=NONE)  # s3fs retries requests itself
def mirror_release(root: str, target: str, endpoint_url: str | None) -> dict:
    """Copy published/ to a remote (S3 or any fsspec target): versions first, latest last."""
    from reportdata.remote import mirror

    project = load(Path(root))
    result = mirror(project.published_dir, target, endpoint_url=endpoint_url)
    get_run_logger().info(
        "mirrored to %s: %d files uploaded, %d already there",
        target,
        len(result.uploaded),
        len(result.skipped),
    )
    return {"target": target, "uploaded": len(result.uploaded), "versions": result.versions}


def _key(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())


@flow(name="publish-dataset", log_prints=True)
def publish_dataset(
    dataset: str,
    project_dir: str = ".",
    publish_to: str | None = None,
    endpoint_url: str | None = None,
):
    """Pull, extract, validate, load and publish one dataset of a reportdata project.

    Returns the release (dataset, version, path, new, row counts). With ``publish_to`` (an
    fsspec URL such as s3://bucket/prefix, with ``endpoint_url`` for an S3-compatible server)
    published/ is then mirrored there. A user error (a source that cannot be pulled or read,
    failed validation, an unreachable remote) ends the run Failed with its one-sentence
    reason, and nothing is published.
    """
    root = str(Path(project_dir).resolve())
    try:
        project = load(Path(root))
        sources = project.sources_of(dataset)
        for source in sources:
            pull_source(root, source.id)
        rows = extract_dataset(root, dataset)
        tables, report = validate_dataset(root, dataset, rows)
        release = publish_release(root, dataset, tables, report)
        if publish_to:
            mirror_release(root, publish_to, endpoint_url)
        return release
    except ReportdataError as exc:
        get_run_logger().error("%s", exc)
        return Failed(message=str(exc), data=exc)
