"""The reportdata command line.

Heavy libraries (Prefect, pandas, DuckDB) are imported inside the commands that need them,
so that ``reportdata extract`` and ``--help`` start fast.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from reportdata.errors import ReportdataError

app = typer.Typer(
    name="reportdata",
    help=(
        "Turn public reports into open data: pull a report, extract its figures, validate "
        "them, load them into DuckDB and publish a versioned data package.\n\n"
        "Commands act on the project folder: the nearest folder holding sources.yaml, from "
        "the current directory upward, or the one given with --project."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

PARTIAL = 3  # exit status of a run that published while some sources failed

ProjectOpt = Annotated[
    Path | None,
    typer.Option(
        "--project", "-p", help="Project folder (holding sources.yaml).", show_default=False
    ),
]


def _say(message: str) -> None:
    typer.echo(message, err=True)


@app.command()
def run(
    dataset: Annotated[
        list[str] | None,
        typer.Argument(
            help="Datasets to publish (default: every dataset in sources.yaml).",
            show_default=False,
            metavar="DATASET",
        ),
    ] = None,
    project: ProjectOpt = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on the terminal.")] = True,
    publish_to: Annotated[
        str | None,
        typer.Option(
            "--publish-to",
            help="Also mirror published/ to this fsspec URL (s3://bucket/prefix, file:///dir) "
            "or folder: versions first, latest.json last.",
            show_default=False,
        ),
    ] = None,
    runner: Annotated[
        str,
        typer.Option(
            "--runner",
            help="Where extraction runs: 'default' (threads in this process) or 'dask'.",
        ),
    ] = "default",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Dask scheduler (tcp://HOST:PORT) for --runner dask; default: a local cluster. "
            "A run gives up when the cluster has had no worker for 120 s.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="Workers of the local Dask cluster."),
    ] = 2,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            min=0,
            help="Seconds to wait for another run of this project to finish before giving up.",
        ),
    ] = 1800.0,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            help="S3 endpoint for --publish-to (an S3-compatible server); credentials come "
            "from the usual AWS_* variables.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the whole pipeline: pull, read, extract, validate, load and publish.

    Runs the Prefect flow `publish-dataset` once per dataset. With PREFECT_API_URL set it
    reports to that Prefect server; without it Prefect starts a temporary local one. A
    rerun with unchanged inputs (raw bytes, sources.yaml, extractor) skips the work and
    publishes nothing new. A source that fails (unreachable, unreadable, invalid figures)
    keeps its last published rows while the others publish; the run then warns and exits 3.
    When validation fails as a whole nothing is published, the report is written under
    reports/<dataset>/ and the exit status is 1. One run at a time per project: another
    run is waited for (--wait seconds), then the exit status is 75.
    """
    from reportdata.project import open_project

    proj = open_project(project)
    names = dataset or list(proj.datasets)
    for name in names:
        proj.dataset(name)
    from reportdata.runner import run_datasets

    if endpoint_url and not publish_to:
        raise typer.BadParameter("--endpoint-url needs --publish-to.")
    if publish_to:
        from reportdata.remote import check_target

        check_target(publish_to, endpoint_url)
    results = run_datasets(
        proj,
        names,
        progress=progress,
        publish_to=publish_to,
        endpoint_url=endpoint_url,
        lock_timeout=wait,
        runner=runner,
        address=address,
        workers=workers,
    )
    for r in results:
        state = "published" if r.new else "unchanged, latest is"
        typer.echo(f"{r.dataset}: {state} version {r.version} ({r.path})")
        for sid, sentence in sorted(r.failures.items()):
            named = repr(sid) in sentence  # "Source 'x' ...": a URL may hold the id too
            _say(f"warning: {sentence}" if named else f"warning: {sid}: {sentence}")
    if publish_to:
        typer.echo(f"mirrored published/ to {publish_to}")
    failed = sum(len(r.failures) for r in results)
    if failed:
        _say(f"{failed} source(s) failed and kept their last published rows; the rest published.")
        raise typer.Exit(PARTIAL)


@app.command()
def add(
    sources: Annotated[
        list[str], typer.Argument(help="Files or http(s) URLs of reports.", metavar="SOURCE")
    ],
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Dataset to add them to (created if new).")
    ],
    id: Annotated[
        str | None,
        typer.Option("--id", help="Source id (only with a single source; default from the name)."),
    ] = None,
    title: Annotated[
        str | None, typer.Option(help="Title of the report (default: found in its text).")
    ] = None,
    publisher: Annotated[str, typer.Option(help="Who published the report.")] = "unknown",
    area: Annotated[str, typer.Option(help="Administrative area the report is about.")] = "unknown",
    published: Annotated[
        str, typer.Option(help="Publication year or date (helps date '去年' and '过去一年').")
    ] = "",
    project: ProjectOpt = None,
) -> None:
    """Register reports in sources.yaml and pull them into raw/.

    A local file is copied into raw/embedded/ so that the project keeps its own copy; a URL is
    fetched. Each report is pulled and read before it is registered: a report that cannot be
    read is refused with the reason and sources.yaml is left as it was.
    """
    from reportdata.adding import add_reports

    proj_root = _root(project)
    added = add_reports(
        proj_root,
        sources,
        dataset=dataset,
        source_id=id,
        title=title,
        publisher=publisher,
        area=area,
        published=published,
    )
    for sid, snap in added:
        typer.echo(f"added {sid}: {snap.file} ({snap.bytes} bytes, {snap.format}, {snap.encoding})")


@app.command()
def pull(
    dataset: Annotated[
        list[str] | None,
        typer.Argument(help="Datasets (default: all).", show_default=False, metavar="DATASET"),
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Pull every source of the given datasets into raw/ (new snapshots only; no publishing).

    Sources are pulled several at a time, as a run pulls them; one that fails is named with
    its sentence and the others are still pulled (exit 3 when any failed)."""
    from reportdata.pipeline import pull_sources
    from reportdata.project import open_project

    proj = open_project(project)
    # an unknown dataset stops the command before any pull
    datasets = [proj.sources_of(name) for name in dataset or list(proj.datasets)]
    failed = 0
    for sources in datasets:
        results, failures = pull_sources(proj, sources)
        for source in sources:
            if (r := results.get(source.id)) is not None:
                state = "new snapshot" if r.new else "unchanged"
                typer.echo(f"{source.id}: {state} {r.snapshot.file}")
            else:
                sentence = failures[source.id]
                named = repr(source.id) in sentence  # "Source 'x' ..." names it already
                _say(f"warning: {sentence}" if named else f"warning: {source.id}: {sentence}")
        failed += len(failures)
    if failed:
        _say(f"{failed} source(s) could not be pulled; the others were.")
        raise typer.Exit(PARTIAL)


@app.command()
def extract(
    file: Annotated[
        Path,
        typer.Argument(
            help="A report: plain text, HTML or PDF, in any supported encoding.", metavar="FILE"
        ),
    ],
    format: Annotated[
        str, typer.Option("--format", "-f", help="table (for people), jsonl or csv (for programs).")
    ] = "table",
    published: Annotated[
        str,
        typer.Option(
            help="Publication year, to date '去年' and '过去一年' (default: from the text)."
        ),
    ] = "",
) -> None:
    """Print the figures of one report, one row each, with the extraction guide's columns.

    Needs no project and no Prefect. Columns: subject, value, unit, value_base, unit_base,
    unit_family, qualifier, status, measure, period, quantity_text, plus sentence and
    char_start/char_end into the repaired text.
    """
    from reportdata.extract_file import extract_file, print_rows

    if format not in {"table", "jsonl", "csv"}:
        raise click.BadParameter("choose table, jsonl or csv.", param_hint="--format")
    rows = extract_file(file, published)
    print_rows(rows, format)


@app.command()
def validate(
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="Dataset (default: every dataset).", show_default=False, metavar="DATASET"
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Version to check (default: the latest).")
    ] = None,
    package: Annotated[
        Path | None,
        typer.Option(help="Check this datapackage.json instead of a published dataset."),
    ] = None,
    project: ProjectOpt = None,
) -> None:
    """Check a published data package: Table Schemas, keys, hashes and the cross-field checks.

    Prints a summary and exits 1 when anything fails.
    """
    from reportdata.checking import validate_published

    ok = validate_published(
        package=package,
        dataset=dataset,
        version=version,
        project_dir=None if package else _root(project),
    )
    if not ok:
        raise typer.Exit(1)


@app.command()
def download(
    url: Annotated[
        str,
        typer.Argument(
            help="URL or path of a datapackage.json, or of a catalog.json (with --dataset).",
            metavar="URL",
        ),
    ],
    to: Annotated[
        Path,
        typer.Option("--to", help="Folder to write DATASET/VERSION/ into."),
    ] = Path("."),
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", "-d", help="Dataset to take from a catalog.", show_default=False),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            help="Version to take from a catalog (default: the latest).", show_default=False
        ),
    ] = None,
    max_bytes: Annotated[
        int | None,
        typer.Option(
            "--max-bytes",
            min=1,
            help="Largest file accepted, in bytes (default: 512 MiB).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Download a published version and check every file's size and hash.

    Needs no project. Takes http(s) URLs, file:// URLs and local paths. Every resource of the
    data package is streamed into a temporary folder beside TO/DATASET/VERSION/, checked
    against the bytes and hash its datapackage.json states, and renamed into place only when
    all of them match: a tampered, truncated or oversized file, an HTTP error or a resource
    path that would leave the folder leaves nothing behind. An existing folder holding the
    same files is left as it is; one with other content is never overwritten.
    """
    from reportdata.download import DEFAULT_MAX_BYTES
    from reportdata.download import download as fetch_version

    r = fetch_version(
        url, to, dataset=dataset, version=version, max_bytes=max_bytes or DEFAULT_MAX_BYTES
    )
    facts = f"{len(r.files)} resources, {r.bytes} bytes"
    if r.new:
        typer.echo(f"{r.dataset} {r.version}: wrote {facts} to {r.path}")
    else:
        typer.echo(f"{r.dataset} {r.version}: already there ({facts}) in {r.path}")


@app.command()
def serve(
    project: ProjectOpt = None,
    write_prefect_yaml: Annotated[
        bool,
        typer.Option(
            "--write-prefect-yaml",
            help="Write prefect.yaml (the same deployments, for work pools) and exit.",
        ),
    ] = False,
) -> None:
    """Serve one Prefect deployment per dataset, `publish-dataset/<dataset>`, on the cron
    schedule the dataset declares in sources.yaml (default: daily at 06:00 UTC).

    Runs until stopped; needs a Prefect server (PREFECT_API_URL). Trigger a run by hand with
    `prefect deployment run publish-dataset/<dataset>`.
    """
    from reportdata.deployments import prefect_yaml
    from reportdata.deployments import serve as serve_deployments
    from reportdata.project import open_project

    proj = open_project(project)
    if write_prefect_yaml:
        from reportdata.fsutil import atomic_write_text

        atomic_write_text(proj.root / "prefect.yaml", prefect_yaml(proj))
        typer.echo(f"wrote {proj.root / 'prefect.yaml'}")
        return
    from reportdata.runner import prefect_defaults

    prefect_defaults()
    serve_deployments(proj, announce=typer.echo)


@app.command()
def diff(
    dataset: Annotated[str, typer.Argument(help="Dataset name.", metavar="DATASET")],
    v1: Annotated[str, typer.Argument(help="The older version (e.g. 1.0.0).", metavar="V1")],
    v2: Annotated[str, typer.Argument(help="The newer version (e.g. 1.1.0).", metavar="V2")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the changes as JSON (changes.json's shape).")
    ] = False,
    project: ProjectOpt = None,
) -> None:
    """Show what changed between two published versions: sources, schema, metadata and rows
    added, removed and changed (by primary key, with old and new values)."""
    import json

    from reportdata.changes import diff_versions, render_diff
    from reportdata.project import open_project

    proj = open_project(project)
    changes = diff_versions(proj.published_dir, dataset, v1, v2)
    if as_json:
        typer.echo(json.dumps(changes, ensure_ascii=False, indent=2))
    else:
        typer.echo(render_diff(changes), nl=False)


def _root(project: Path | None) -> Path:
    from reportdata.project import find_root

    return find_root(explicit=project)


# Typer 0.2x carries its own copy of click: a bad option value (--wait -5) raises that copy's
# ClickException, which is not click's. Both are usage errors, shown as one line.
_USAGE_ERRORS: tuple[type[click.ClickException], ...] = tuple(
    {
        click.ClickException,
        *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"),
    }
)


class Stopped(SystemExit):
    """SIGTERM, raised in the main thread so that a stopped run unwinds: its temporary
    Prefect server, Dask cluster and helper are stopped on the way out. A SystemExit, which
    click and Prefect let through (a KeyboardInterrupt, click turns into exit 130)."""


def _stop_on_sigterm() -> None:
    """Turn the first SIGTERM into `Stopped`; later ones are ignored while the run unwinds
    (Python's default would end the process at once and orphan the servers it started)."""

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Stopped(143)

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    """Entry point: user errors become one sentence on stderr and a non-zero exit."""
    _stop_on_sigterm()
    try:
        # Without standalone mode click returns the code of `raise typer.Exit(n)` instead of
        # exiting with it (validate's failures would otherwise exit 0).
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except (click.exceptions.Exit, typer.Exit) as exc:
        sys.exit(exc.exit_code)
    except _USAGE_ERRORS as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, typer.Abort):
        _say("Aborted.")
        sys.exit(130)
    except ReportdataError as exc:
        _say(f"error: {exc}")
        sys.exit(exc.exit_code)
    except Stopped:
        _say("Stopped by SIGTERM; a version is published whole or not at all.")
        sys.exit(143)
    except KeyboardInterrupt:
        _say("Interrupted.")
        sys.exit(130)


if __name__ == "__main__":
    main()
