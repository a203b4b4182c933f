"""The reportdata command line.

Heavy libraries (Prefect, pandas, DuckDB) are imported inside the commands that need them,
so that ``reportdata extract`` and ``--help`` start fast.
"""

from __future__ import annotations

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
) -> None:
    """Run the whole pipeline: pull, read, extract, validate, load and publish.

    Runs the Prefect flow `publish-dataset` once per dataset. With PREFECT_API_URL set it
    reports to that Prefect server; without it Prefect starts a temporary local one. A
    rerun with unchanged inputs publishes nothing new. When validation fails nothing is
    published, the report is written under reports/<dataset>/ and the exit status is 1.
    """
    from reportdata.project import open_project

    proj = open_project(project)
    names = dataset or list(proj.datasets)
    for name in names:
        proj.dataset(name)
    from reportdata.runner import run_datasets

    results = run_datasets(proj, names, progress=progress)
    for r in results:
        state = "published" if r.new else "unchanged, latest is"
        typer.echo(f"{r.dataset}: {state} version {r.version} ({r.path})")


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
    """Pull every source of the given datasets into raw/ (new snapshots only; no publishing)."""
    from reportdata.project import open_project
    from reportdata.pull import pull as pull_one

    proj = open_project(project)
    for name in dataset or list(proj.datasets):
        for source in proj.sources_of(name):
            r = pull_one(proj, source)
            typer.echo(f"{source.id}: {'new snapshot' if r.new else 'unchanged'} {r.snapshot.file}")


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


def _root(project: Path | None) -> Path:
    from reportdata.project import find_root

    return find_root(explicit=project)


def main() -> None:
    """Entry point: user errors become one sentence on stderr and a non-zero exit."""
    try:
        # Without standalone mode click returns the code of `raise typer.Exit(n)` instead of
        # exiting with it (validate's failures would otherwise exit 0).
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _say("Aborted.")
        sys.exit(130)
    except ReportdataError as exc:
        _say(f"error: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _say("Interrupted.")
        sys.exit(130)


if __name__ == "__main__":
    main()
