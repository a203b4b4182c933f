"""Errors a user can cause: each carries one clear sentence the CLI prints before exiting."""


class ReportdataError(Exception):
    """Base of every error a user can cause (bad input, unreachable source, failed checks)."""

    exit_code = 1


class ProjectError(ReportdataError):
    """The project folder or sources.yaml is missing or malformed."""

    exit_code = 2


class PullError(ReportdataError):
    """A source could not be fetched or stored."""


class InputError(ReportdataError):
    """A report's bytes cannot be read as a report (empty, binary, undecodable, no text)."""


class ValidationFailed(ReportdataError):
    """The extracted tables broke their schemas or cross-field checks; nothing was published."""

    def __init__(self, message: str, report_paths: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.report_paths = report_paths


class PublishError(ReportdataError):
    """A release could not be written."""


class RemoteError(PublishError):
    """The published folder could not be mirrored to a remote target."""


class DownloadError(ReportdataError):
    """A published version could not be downloaded, checked or written."""


class RunLocked(ReportdataError):
    """Another run holds the project's run lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later


class ClusterError(ReportdataError):
    """The Dask cluster asked for cannot be reached, started or used; nothing was published."""
