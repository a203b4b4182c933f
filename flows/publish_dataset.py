"""The main job: the `publish-dataset` flow, one run per dataset of sources.yaml.

Tasks wrap the library steps of :mod:`reportdata.pipeline` and add what orchestration owns:
the run logger and artifacts (a summary of every source, the validation report, a table of
the figures). Tasks are coarse (all pulls of a dataset, a chunk of extractions) because the
Prefect server records only about a dozen task runs a second: a run costs the same handful of
task runs for ten sources or ten thousand. Extraction chunks go to the flow's task runner,
which spreads them over a Dask cluster when the run asks for one (``reportdata run --runner
dask``).

A source that fails (unreachable, unreadable, invalid figures) is reported and keeps the rows
it had in the latest release; the other sources still publish. A rerun whose inputs (raw
bytes, sources.yaml entries, extractor code) are those of the newest release ends after the
pulls: it decides from the snapshots alone, reading no rows. Otherwise, when the newest
release's note names the inputs of each source, only the sources whose inputs changed are
extracted, validated and rendered, and the others keep that release's rows unread
(`reportdata.delta`); a single report is extracted in the flow's process, without waiting for
a Dask cluster.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.context import SyncClientContext
from prefect.states import Failed
from prefect.utilities.annotations import quote

from reportdata import package_check, pipeline
from reportdata.errors import RemoteError, ReportdataError
from reportdata.locking import run_lock
from reportdata.progress import emit
from reportdata.project import Project, load
from reportdata.tables import GUIDE_COLUMNS

FIGURE_COLUMNS = ("document_id", *GUIDE_COLUMNS)
ARTIFACT_ROWS = 500  # the figures table artifact shows this many rows at most


@task(name="pull-sources", cache_policy=NONE)  # each pull retries with backoff inside
def pull_sources(project: Project, dataset: str) -> dict:
    """Fetch every source of the dataset into raw/, several at a time; returns the new
    snapshots' ids, the failures and the snapshot in force of every source pulled."""

    def done(sid: str, result) -> None:
        emit("pull", sid)
        if result is not None and result.new:  # this run may publish: Frictionless loads
            package_check.start()  # meanwhile, on a core the pulls may leave idle

    results, failures = pipeline.pull_sources(project, project.sources_of(dataset), on_done=done)
    new = sorted(sid for sid, r in results.items() if r.new)
    not_modified = sum(1 for r in results.values() if getattr(r, "not_modified", False))
    get_run_logger().info(
        "%s: %d sources pulled (%d new snapshots, %d answered 304), %d failed",
        dataset,
        len(results),
        len(new),
        not_modified,
        len(failures),
    )
    snapshots = {sid: r.snapshot for sid, r in results.items()}
    return {"new": new, "failures": failures, "snapshots": snapshots}


@task(name="extract-sources", cache_policy=NONE)
def extract_chunk(root: str, dataset: str, source_ids: list[str]) -> pipeline.Extracted:
    """Rows of some sources: from the cache when nothing they depend on changed. Runs on the
    task runner (a Dask worker, perhaps), so it loads the project itself: a load in the same
    process reuses the parsed sources.yaml."""
    project = load(Path(root))
    wanted = set(source_ids)
    sources = [s for s in project.sources_of(dataset) if s.id in wanted]
    return pipeline.extract_sources(project, sources)


@task(name="validate-dataset", cache_policy=NONE)
def validate_dataset(
    project: Project, dataset: str, extracted: pipeline.Extracted, plan: pipeline.Plan | None
):
    """Check the tables (with a plan, the rows of the replaced sources: the others are the
    base version's); a source whose rows fail keeps its last published rows instead."""
    _, failures, report, tables = _validated(project, dataset, extracted, plan)
    create_markdown_artifact(
        report.to_markdown(),
        key=f"{_key(dataset)}-validation",
        description=f"Validation of dataset {dataset}",
    )
    pipeline.require_valid(project, dataset, report)
    emit("validate", dataset)
    return tables, report, failures


def _validated(project, dataset: str, extracted: pipeline.Extracted, plan: pipeline.Plan | None):
    failures = dict(extracted.failures)
    by_source = dict(extracted.rows)
    current = {s.id for s in project.sources_of(dataset)}
    others = bool(plan and plan.kept(current))  # sources that publish whatever these do
    for _ in range(2):  # once with every source, once more without those that failed
        # A failing source keeps its published rows: carried here, or left in the base.
        carried = {} if plan else pipeline.previous_rows(project, dataset, set(failures))
        parts = [by_source[sid] for sid in sorted(by_source)] + [
            carried[sid] for sid in sorted(carried)
        ]
        # A plan's few new rows are checked as row dicts: no pandas to import for them.
        tables = (pipeline.conformed if plan else pipeline.frames)(pipeline.merge(parts))
        note = _scope(plan, by_source, current)
        report = pipeline.check(project, dataset, tables, note=note)
        blamed = pipeline.failing_sources(report, tables) if not report.ok else set()
        alone = blamed == set(by_source) and not others
        if not blamed or blamed - set(by_source) or alone:
            break  # all well; or errors no single source owns: the run fails as a whole
        for sid in blamed:
            failures[sid] = (
                f"Source {sid!r}: its figures failed validation "
                f"({report.summary().rstrip('.')}); they were left out."
            )
            by_source.pop(sid)
    return by_source, failures, report, tables


def _scope(plan: pipeline.Plan | None, by_source: dict, current: set[str]) -> str:
    if plan is None:
        return ""
    n, kept = len(by_source), len(plan.kept(current))
    return (
        f"This run validated the rows of the {n} source{'s' * (n != 1)} it extracted; the "
        f"other {kept} source{'s' * (kept != 1)}' rows are those of version "
        f"{plan.base.version}, validated when it was published."
    )


@task(name="publish-release", cache_policy=NONE)
def publish_release(
    project: Project,
    dataset: str,
    tables,
    report,
    inputs: str | None,
    keys: dict[str, str],
    plan: pipeline.Plan | None = None,
    replaced: set[str] | None = None,
) -> dict:
    """Publish the version (nothing new when the data are unchanged) and its files."""
    summary = pipeline.release(
        project, dataset, tables, report, inputs=inputs, keys=keys, plan=plan, replaced=replaced
    )
    shown, total = _figures(tables["indicators"])
    cut = f" (first {len(shown)} of {total})" if total > len(shown) else ""
    create_table_artifact(
        shown,
        key=f"{_key(dataset)}-figures",
        description=f"Figures of dataset {dataset}, version {summary.version}{cut}",
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


def _figures(indicators) -> tuple[list[dict], int]:
    """The first rows of the indicators table (DataFrame or row dicts) for the artifact."""
    if isinstance(indicators, list):
        shown = [{c: row[c] for c in FIGURE_COLUMNS} for row in indicators[:ARTIFACT_ROWS]]
    else:
        shown = indicators.loc[:, list(FIGURE_COLUMNS)].head(ARTIFACT_ROWS).to_dict("records")
    return shown, len(indicators)


@task(name="mirror-release", cache_policy=NONE)  # s3fs retries requests itself
def mirror_release(published_dir: str, target: str, endpoint_url: str | None) -> dict:
    """Copy published/ to a remote (S3 or any fsspec target): versions first, latest last."""
    from reportdata.remote import mirror

    result = mirror(Path(published_dir), target, endpoint_url=endpoint_url)
    get_run_logger().info(
        "mirrored to %s: %d files uploaded, %d already there",
        target,
        len(result.uploaded),
        len(result.skipped),
    )
    return {"target": target, "uploaded": len(result.uploaded), "versions": result.versions}


def _key(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())


def _chunks(items: list[str], count: int) -> list[list[str]]:
    count = max(1, min(count, len(items)))
    return [items[i::count] for i in range(count)] if items else []


def _unchanged(project, dataset: str, inputs: str) -> dict | None:
    """The newest release, when it was made from exactly these inputs (finished if a
    crashed run left it unfinished); None when there is work to do."""
    from reportdata.publish import complete_release

    if inputs not in pipeline.published_inputs(project, dataset):
        return None
    version = complete_release(project.published_dir, dataset, project.dataset(dataset).title)
    if version is None:
        return None
    emit("validate", dataset)
    emit("publish", dataset)
    path = project.published_dir / dataset / version
    return {"dataset": dataset, "version": version, "path": str(path), "new": False, "counts": {}}


def _summary_markdown(
    dataset: str, sources, pulled: dict, extracted, failures, release, plan=None
) -> str:
    state = "published" if release["new"] else "unchanged; latest is"
    if plan is not None:
        kept = len(plan.kept({s.id for s in sources}))
        work = (
            f"{kept} sources kept from version {plan.base.version} unread, "
            f"{len(plan.replaced)} replaced; {extracted.cached} extractions reused."
        )
    elif extracted.keys or extracted.failures:  # keys outlive the rows (dropped once validated)
        work = f"{extracted.cached} extractions reused."
    else:
        work = "inputs are those of the latest release: nothing extracted or published."
    lines = [
        f"# {dataset}: {state} version {release['version']}",
        "",
        f"{len(sources)} sources: {len(sources) - len(failures)} ok, {len(failures)} failed; "
        f"{len(pulled['new'])} new snapshots; {work}",
        "",
        "| source | status |",
        "|---|---|",
    ]
    new = set(pulled["new"])
    for source in sources:
        if source.id in failures:
            status = "failed: " + failures[source.id].replace("|", "\\|")
        elif source.id in new:
            status = "new snapshot, extracted"
        else:
            status = "unchanged"
        lines.append(f"| {source.id} | {status} |")
    return "\n".join(lines) + "\n"


@flow(name="publish-dataset", log_prints=True)
async def publish_dataset(
    dataset: str,
    project_dir: str = ".",
    publish_to: str | None = None,
    endpoint_url: str | None = None,
    chunks: int = 1,
    lock_timeout: float = 1800.0,
):
    """Pull, extract, validate, load and publish one dataset of a reportdata project.

    Returns the release (dataset, version, path, new, row counts, failed sources). Sources
    that fail are listed in the run's summary artifact and keep their last published rows;
    the others still publish. ``chunks`` splits extraction into that many tasks (for a Dask
    task runner). With ``publish_to`` (an fsspec URL such as s3://bucket/prefix, with
    ``endpoint_url`` for an S3-compatible server) published/ is then mirrored there. Another
    run holding the project's lock is waited for up to ``lock_timeout`` seconds. A user error
    (every source failed, failed validation, an unreachable remote) ends the run Failed with
    its one-sentence reason, and nothing is published.

    The flow is declared async only for Prefect's engine: its async engine does not wait at
    the end of a run for the heartbeat thread to wake (up to a second, a third of an unchanged
    rerun over 1,000 reports); heartbeats are still sent. The work itself is the synchronous
    `_body` below, so call the flow with ``asyncio.run`` (as `reportdata.runner` does).
    """
    return _body(dataset, project_dir, publish_to, endpoint_url, chunks, lock_timeout)


def _body(
    dataset: str,
    project_dir: str,
    publish_to: str | None,
    endpoint_url: str | None,
    chunks: int,
    lock_timeout: float,
):
    """The body of `publish_dataset`: runs inside its flow run (tasks are its task runs)."""
    root = str(Path(project_dir).resolve())
    logger = get_run_logger()
    try:
        # One API client for every task and artifact of the run: Prefect otherwise makes a
        # client for each (an SSL context and a connection, ~40 ms apiece, even over http).
        with run_lock(Path(root), timeout=lock_timeout), SyncClientContext.get_or_create():
            # once: tasks get it (quoted: plain data, not walked); its parse is kept as JSON
            project = load(Path(root), keep=True)
            sources = project.sources_of(dataset)
            pulled = pull_sources(quote(project), dataset)
            # Decide from the snapshots' keys alone whether the newest release is current:
            # an unchanged rerun reads no rows at all.
            keys = pipeline.source_keys(sources, pulled["snapshots"])
            release = None
            if not pulled["failures"] and sources:
                inputs = pipeline.inputs_fingerprint(project, dataset, keys)
                release = _unchanged(project, dataset, inputs)
            extracted = pipeline.Extracted()
            failures = dict(pulled["failures"])
            plan = None
            if release is None:
                package_check.start()  # a version may be checked: Frictionless loads meanwhile
                current = {s.id for s in sources}
                plan, why = pipeline.plan(project, dataset, keys, current)
                if plan is None:
                    logger.info("%s: the whole version is made (%s)", dataset, why)
                else:
                    logger.info(
                        "%s: %d sources replaced, the others kept from version %s",
                        dataset,
                        len(plan.replaced),
                        plan.base.version,
                    )
                readable = [
                    s.id
                    for s in sources
                    if s.id not in pulled["failures"] and (plan is None or s.id in plan.replaced)
                ]
                if len(readable) > 1:
                    batches = _chunks(readable, chunks)
                    futures = extract_chunk.map(unmapped(root), unmapped(dataset), batches)
                    parts = [f.result() for f in futures]
                else:  # one report: here, rather than wait for a Dask cluster to start
                    parts = [extract_chunk(root, dataset, readable)] if readable else []
                for part in parts:
                    extracted.rows.update(part.rows)
                    extracted.keys.update(part.keys)
                    extracted.failures.update(part.failures)
                    extracted.cached += part.cached
                extracted.failures.update(pulled["failures"])
                emit("extract", dataset)
                if sources and all(s.id in extracted.failures for s in sources):
                    first = next(iter(extracted.failures.values()))
                    raise _all_failed(dataset, len(sources), first)
                failures = dict(extracted.failures)
                inputs = None if failures else pipeline.inputs_fingerprint(project, dataset, keys)
                # quote(): Prefect would otherwise walk every row looking for futures (80 s
                # for 1,000 reports); these are plain data.
                tables, report, failures = validate_dataset(
                    quote(project), dataset, quote(extracted), quote(plan)
                )
                extracted.rows.clear()  # the tables hold what publishing needs: free the rest
                fresh = {s: k for s, k in extracted.keys.items() if s not in failures}
                replaced = None
                if plan is not None:
                    replaced = plan.replaced - set(failures)
                    fresh = plan.keys_after(current, replaced, fresh)
                release = publish_release(
                    quote(project),
                    dataset,
                    quote(tables),
                    quote(report),
                    inputs,
                    quote(fresh),
                    quote(plan),
                    quote(replaced),
                )
            else:
                emit("extract", dataset)
            for sid, sentence in sorted(failures.items()):
                logger.warning("%s: %s", sid, sentence)
            create_markdown_artifact(
                _summary_markdown(dataset, sources, pulled, extracted, failures, release, plan),
                key=f"{_key(dataset)}-summary",
                description=f"Sources of dataset {dataset} in this run",
                _sync=True,  # made in the async flow's own context, which would get a coroutine
            )
            if publish_to:
                try:
                    mirror_release(str(project.published_dir), publish_to, endpoint_url)
                except RemoteError as exc:  # the local release stands: say so, and what to do
                    raise RemoteError(
                        f"{exc} Version {release['version']} of {dataset} is published in "
                        f"{release['path']}; the next run with --publish-to completes the mirror."
                    ) from exc
            return {**release, "failures": failures}
    except ReportdataError as exc:
        logger.error("%s", exc)
        return Failed(message=str(exc), data=exc)
    finally:
        package_check.stop()


def _all_failed(dataset: str, count: int, first: str) -> ReportdataError:
    from reportdata.errors import PullError

    what = "its source" if count == 1 else f"all {count} sources"
    if count == 1:
        return PullError(first)
    return PullError(f"Dataset {dataset!r}: {what} failed; the first: {first}")
