"""Scheduled runs: one Prefect deployment per dataset of sources.yaml.

`reportdata serve` serves them from one long-running process (no work pool needed);
`prefect.yaml` at the project root describes the same deployments for teams that run work
pools and workers (`prefect deploy --all`). Both come from `specs`, so they cannot disagree;
`reportdata serve --write-prefect-yaml` rewrites the file from sources.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reportdata.errors import ProjectError
from reportdata.project import Project

FLOW_NAME = "publish-dataset"
ENTRYPOINT = "flows/publish_dataset.py:publish_dataset"
WORK_POOL = "reportdata"


@dataclass(frozen=True)
class Spec:
    """One deployment: `publish-dataset/<dataset>`, its cron schedule and parameters."""

    dataset: str
    cron: str
    description: str

    @property
    def full_name(self) -> str:
        return f"{FLOW_NAME}/{self.dataset}"


def _checked_cron(dataset: str, cron: str) -> str:
    """`cron` when Prefect takes it as a schedule; a `ProjectError` sentence otherwise."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron, timezone="UTC")
    except ValidationError as exc:
        why = str(exc.errors()[0].get("msg", "")).removeprefix("Value error, ")
        raise ProjectError(
            f"Dataset {dataset!r} in sources.yaml has the schedule {cron!r}, which Prefect "
            f"does not take ({why}); write a cron line of five fields: minute hour "
            "day-of-month month day-of-week, such as '0 6 * * *'."
        ) from None
    return cron


def specs(project: Project) -> list[Spec]:
    """The deployments of a project, one a dataset, in sources.yaml's order; a `ProjectError`
    for a schedule Prefect would refuse."""
    return [
        Spec(name, _checked_cron(name, d.schedule), d.title or name)
        for name, d in project.datasets.items()
    ]


def prefect_yaml(project: Project) -> str:
    """The text of prefect.yaml for these deployments (project_dir: the working directory)."""
    doc: dict[str, Any] = {
        "name": "reportdata",
        "prefect-version": "3.4.0",
        "build": None,
        "push": None,
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $REPORTDATA_PROJECT }}"
                }
            }
        ],
        "deployments": [
            {
                "name": s.dataset,
                "description": s.description,
                "entrypoint": ENTRYPOINT,
                "parameters": {"dataset": s.dataset, "project_dir": "."},
                "schedules": [{"cron": s.cron, "timezone": "UTC", "active": True}],
                "work_pool": {"name": WORK_POOL, "work_queue_name": "default"},
            }
            for s in specs(project)
        ],
    }
    head = (
        "# Deployments of the flow publish-dataset, one a dataset of sources.yaml; written by\n"
        "# `reportdata serve --write-prefect-yaml`. With a work pool named 'reportdata':\n"
        "#   REPORTDATA_PROJECT=/path/to/project prefect deploy --all\n"
    )
    return head + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ProjectError(
            "Serving needs a Prefect server that outlives this process: start one "
            "(prefect server start) and set PREFECT_API_URL to its /api address."
        )
    return url


def serve(project: Project, announce=print) -> None:
    """Serve every dataset's deployment from this process until it is stopped."""
    import httpx
    from prefect import serve as prefect_serve

    from flows.publish_dataset import publish_dataset
    from reportdata.runner import check_server, unreachable

    served = specs(project)  # a bad schedule is told before the server is looked for
    url = _api_url()
    check_server(url)
    deployments = [
        publish_dataset.to_deployment(
            name=s.dataset,
            cron=s.cron,
            parameters={"dataset": s.dataset, "project_dir": str(Path(project.root))},
            description=s.description,
        )
        for s in served
    ]
    for s in served:
        announce(f"serving {s.full_name} (cron '{s.cron}', UTC)")
    try:
        prefect_serve(*deployments, print_starting_message=False)
    except httpx.HTTPError as exc:
        raise unreachable(url, exc) from exc
