"""Mirroring the published folder to S3 (moto in server mode) and to file:// targets."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import s3fs
from _helpers import make_project
from moto.server import ThreadedMotoServer

from reportdata import pipeline, remote
from reportdata.project import load
from reportdata.pull import pull
from reportdata.remote import RemoteError, mirror

DATASET = "lixia"
_BUCKETS = itertools.count()


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server on 127.0.0.1 (a free port) for the module; buckets differ per test."""
    requests_log = logging.getLogger("werkzeug")  # moto logs every request at INFO
    level = requests_log.level
    requests_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        requests_log.setLevel(level)


@dataclass
class S3:
    endpoint: str
    bucket: str
    fs: s3fs.S3FileSystem

    @property
    def target(self) -> str:
        return f"s3://{self.bucket}/site"

    def files(self) -> dict[str, bytes]:
        """Every object under the target's prefix with its bytes, by relative path."""
        self.fs.invalidate_cache()
        root = f"{self.bucket}/site/"
        return {p[len(root) :]: self.fs.cat_file(p) for p in self.fs.find(root)}

    def read(self, rel: str) -> bytes | None:
        self.fs.invalidate_cache()
        try:
            return self.fs.cat_file(f"{self.bucket}/site/{rel}")
        except FileNotFoundError:
            return None


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3:
    """Fake AWS credentials in the environment and a fresh bucket on the moto server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    fs = s3fs.S3FileSystem(endpoint_url=moto_endpoint, skip_instance_cache=True)
    bucket = f"reportdata-{next(_BUCKETS)}"
    fs.mkdir(bucket)
    return S3(moto_endpoint, bucket, fs)


class Puts:
    """Records every put_file of the filesystem `mirror` opens; can fail or corrupt one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        self.fail_after: int | None = None  # raise on the put after this many
        self.corrupt: str | None = None  # upload this file truncated
        self._monkeypatch = monkeypatch
        real_open = remote.open_target

        def opened(*args, **kwargs):
            fs, root = real_open(*args, **kwargs)
            if not getattr(fs.put_file, "recording", False):
                monkeypatch.setattr(fs, "put_file", self._wrap(fs.put_file, root))
            return fs, root

        monkeypatch.setattr(remote, "open_target", opened)

    def _wrap(self, real: Callable, root: str) -> Callable:
        def put_file(lpath, rpath, *args, **kwargs):
            if self.fail_after is not None and len(self.paths) >= self.fail_after:
                raise ConnectionResetError(104, "Connection reset by peer")
            rel = str(rpath)[len(root.rstrip("/")) + 1 :]
            if rel == self.corrupt:
                short = Path(str(lpath) + ".short")
                short.write_bytes(Path(lpath).read_bytes()[:-1])
                lpath = str(short)
            self.paths.append(rel)
            return real(lpath, rpath, *args, **kwargs)

        put_file.recording = True
        return put_file


@pytest.fixture
def puts(monkeypatch: pytest.MonkeyPatch) -> Puts:
    return Puts(monkeypatch)


# ---------------------------------------------------------------------------- publishing


def release(root: Path, drop_indicators: int = 0) -> str:
    """Publish the project's dataset with the library's steps; returns its latest version."""
    proj = load(root)
    parts = [
        pipeline.extract_source(proj, source, pull(proj, source).snapshot)
        for source in proj.sources_of(DATASET)
    ]
    rows = pipeline.merge(parts)
    if drop_indicators:
        rows["indicators"] = rows["indicators"][:-drop_indicators]
    result = pipeline.release(proj, DATASET, pipeline.frames(rows))
    site(proj.published_dir)
    return result.version


def site(published: Path) -> None:
    """Stand-ins for the files site.py and warehouse.py write beside the versions."""
    folder = published / DATASET
    if not folder.is_dir():
        return
    versions = sorted(p.name for p in folder.iterdir() if (p / "datapackage.json").is_file())
    catalog = {
        "profile": "reportdata-catalog/1",
        "datasets": [{"name": DATASET, "versions": versions}],
    }
    (published / "catalog.json").write_text(json.dumps(catalog) + "\n")
    (published / "index.html").write_text(f"<h1>catalog</h1><p>{len(versions)}</p>\n")
    (folder / "index.html").write_text(f"<h1>{DATASET}</h1><p>{versions}</p>\n")
    (folder / "CHANGELOG.md").write_text("".join(f"## {v}\n" for v in reversed(versions)))


def local_files(published: Path) -> dict[str, bytes]:
    """The files a mirror copies: everything but hidden files (the publish lock)."""
    return {
        p.relative_to(published).as_posix(): p.read_bytes()
        for p in sorted(published.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(published).parts)
    }


def latest_of(data: bytes | None) -> str | None:
    return json.loads(data)["version"] if data else None


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The published folder of a real dataset after its first and its second release.

    The first release leaves the last figure out, so the full second one is a new version.
    Published once for the module; each test works on a copy.
    """
    root = make_project(tmp_path_factory.mktemp("remote"))
    states = {}
    for version, dropped in (("1.0.0", 1), ("1.1.0", 0)):
        assert release(root, drop_indicators=dropped) == version
        states[version] = shutil.copytree(root / "published", root / f"state-{version}")
    return states


@pytest.fixture
def published(releases: dict[str, Path], tmp_path: Path) -> Path:
    """A published folder holding version 1.0.0 of the dataset."""
    return shutil.copytree(releases["1.0.0"], tmp_path / "published")


def publish_next(published: Path, releases: dict[str, Path]) -> None:
    """Bring `published` to the state of the second release (version 1.1.0)."""
    shutil.copytree(releases["1.1.0"], published, dirs_exist_ok=True)


# ---------------------------------------------------------------------------- S3


def test_mirror_uploads_everything_with_latest_last(published: Path, s3: S3, puts: Puts) -> None:
    result = mirror(published, s3.target, endpoint_url=s3.endpoint)

    local = local_files(published)
    assert s3.files() == local
    assert result.versions == (f"{DATASET}/1.0.0",)
    assert sorted(result.uploaded) == sorted(local) == sorted(puts.paths)

    package = json.loads(s3.read(f"{DATASET}/1.0.0/datapackage.json"))
    for resource in package["resources"]:
        data = s3.read(f"{DATASET}/1.0.0/{resource['path']}")
        assert len(data) == resource["bytes"]
        assert "sha256:" + hashlib.sha256(data).hexdigest() == resource["hash"]

    assert puts.paths[-1] == f"{DATASET}/latest.json"
    version_files = [p for p in puts.paths if p.startswith(f"{DATASET}/1.0.0/")]
    assert version_files[-1] == f"{DATASET}/1.0.0/datapackage.json"
    last_version_put = puts.paths.index(f"{DATASET}/1.0.0/datapackage.json")
    assert last_version_put == len(version_files) - 1  # the version goes up before anything else
    tail = puts.paths[-3:]
    assert tail == ["catalog.json", "index.html", f"{DATASET}/latest.json"]


def test_second_mirror_uploads_nothing(published: Path, s3: S3, puts: Puts) -> None:
    mirror(published, s3.target, endpoint_url=s3.endpoint)
    first = len(puts.paths)
    result = mirror(published, s3.target, endpoint_url=s3.endpoint)
    assert len(puts.paths) == first
    assert result.uploaded == () and result.versions == ()
    outside_versions = [rel for rel in local_files(published) if "/1.0.0/" not in rel]
    assert sorted(result.skipped) == sorted(outside_versions)  # complete versions: not re-read


def test_new_version_uploads_only_what_changed(
    releases: dict[str, Path], published: Path, s3: S3, puts: Puts
) -> None:
    mirror(published, s3.target, endpoint_url=s3.endpoint)
    before = local_files(published)
    publish_next(published, releases)
    after = local_files(published)
    changed = {rel for rel, data in after.items() if before.get(rel) != data}
    assert {rel for rel in changed if rel.startswith(f"{DATASET}/1.1.0/")}  # a new version
    assert f"{DATASET}/latest.json" in changed and "catalog.json" in changed

    puts.paths.clear()
    result = mirror(published, s3.target, endpoint_url=s3.endpoint)
    assert sorted(puts.paths) == sorted(changed) == sorted(result.uploaded)
    assert result.versions == (f"{DATASET}/1.1.0",)
    assert puts.paths[-1] == f"{DATASET}/latest.json"
    assert s3.files() == after


def test_crash_keeps_the_old_latest_and_the_next_mirror_completes(
    releases: dict[str, Path], published: Path, s3: S3, puts: Puts
) -> None:
    mirror(published, s3.target, endpoint_url=s3.endpoint)
    old_latest = s3.read(f"{DATASET}/latest.json")
    assert latest_of(old_latest) == "1.0.0"
    publish_next(published, releases)

    puts.paths.clear()
    puts.fail_after = 3
    with pytest.raises(RemoteError) as caught:
        mirror(published, s3.target, endpoint_url=s3.endpoint)
    message = str(caught.value)
    assert s3.target in message and "Connection reset" in message and "\n" not in message
    partial = list(puts.paths)
    assert len(partial) == 3 and all(p.startswith(f"{DATASET}/1.1.0/") for p in partial)
    assert s3.read(f"{DATASET}/latest.json") == old_latest  # readers still get 1.0.0
    assert s3.read(f"{DATASET}/1.1.0/datapackage.json") is None  # 1.1.0 is not complete

    puts.fail_after = None
    puts.paths.clear()
    result = mirror(published, s3.target, endpoint_url=s3.endpoint)
    assert not set(partial) & set(puts.paths)  # what went up before the crash is not re-sent
    assert set(partial) <= set(result.skipped)
    assert result.versions == (f"{DATASET}/1.1.0",)
    assert latest_of(s3.read(f"{DATASET}/latest.json")) == "1.1.0"
    assert s3.files() == local_files(published)


def test_a_remote_version_is_never_overwritten(published: Path, s3: S3, puts: Puts) -> None:
    descriptor = f"{s3.bucket}/site/{DATASET}/1.0.0/datapackage.json"
    s3.fs.pipe_file(descriptor, b'{"name": "someone else"}\n')
    with pytest.raises(RemoteError) as caught:
        mirror(published, s3.target, endpoint_url=s3.endpoint)
    message = str(caught.value)
    assert "never overwritten" in message and "1.0.0" in message and "\n" not in message
    assert puts.paths == []
    assert s3.read(f"{DATASET}/1.0.0/datapackage.json") == b'{"name": "someone else"}\n'


def test_a_short_upload_is_caught(published: Path, s3: S3, puts: Puts) -> None:
    puts.corrupt = f"{DATASET}/1.0.0/indicators.csv"
    with pytest.raises(RemoteError, match="wrong size"):
        mirror(published, s3.target, endpoint_url=s3.endpoint)
    assert s3.read(f"{DATASET}/1.0.0/datapackage.json") is None
    assert s3.read(f"{DATASET}/latest.json") is None

    puts.corrupt = None
    mirror(published, s3.target, endpoint_url=s3.endpoint)  # the bad object is replaced
    assert s3.files() == local_files(published)


def test_unknown_bucket_is_one_sentence(published: Path, s3: S3) -> None:
    target = "s3://no-such-bucket/site"
    with pytest.raises(RemoteError) as caught:
        mirror(published, target, endpoint_url=s3.endpoint)
    message = str(caught.value)
    assert target in message and "bucket does not exist" in message
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0


# ---------------------------------------------------------------------------- file:// and paths


def test_file_url_target(releases: dict[str, Path], published: Path, tmp_path: Path) -> None:
    target_dir = tmp_path / "mirror"
    result = mirror(published, target_dir.as_uri())
    assert local_files(target_dir) == local_files(published)
    assert result.uploaded[-1] == f"{DATASET}/latest.json"
    assert not [p for p in target_dir.rglob("*") if p.name.startswith(".")]  # no temp files

    publish_next(published, releases)
    again = mirror(published, str(target_dir))  # a plain path is the same local folder
    assert again.versions == (f"{DATASET}/1.1.0",)
    assert local_files(target_dir) == local_files(published)
    assert mirror(published, target_dir.as_uri()).uploaded == ()


def test_a_remote_ahead_of_the_local_folder_is_not_moved_back(
    published: Path, tmp_path: Path
) -> None:
    target_dir = tmp_path / "mirror"
    mirror(published, str(target_dir))
    pointer = target_dir / DATASET / "latest.json"
    pointer.write_text(json.dumps({"version": "9.0.0", "path": "9.0.0"}))
    with pytest.raises(RemoteError, match=r"newer than the local 1\.0\.0"):
        mirror(published, str(target_dir))
    assert latest_of(pointer.read_bytes()) == "9.0.0"


def test_endpoint_url_with_a_local_target_is_refused(published: Path, tmp_path: Path) -> None:
    with pytest.raises(RemoteError, match="endpoint URL"):
        mirror(published, str(tmp_path / "m"), endpoint_url="http://127.0.0.1:1")
    assert not (tmp_path / "m").exists()


def test_an_unwritable_target_is_one_sentence(published: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    target = (blocker / "mirror").as_uri()
    with pytest.raises(RemoteError) as caught:
        mirror(published, target)
    message = str(caught.value)
    assert message.startswith(f"Could not mirror to {target}: ") and "\n" not in message
    assert blocker.read_text() == "not a folder\n"


@pytest.mark.parametrize(
    ("target", "endpoint", "said"),
    [
        ("s3://bucket/p", "notaurl", "'notaurl' is not an endpoint URL"),
        ("s3://bucket/p", "http://h:port", "'http://h:port' is not an endpoint URL"),
        ("s3://bucket/p", "ftp://127.0.0.1:9000", "'ftp://127.0.0.1:9000' is not an endpoint URL"),
        ("s3://", None, "s3:// names no bucket or folder"),
        ("s3:///", "http://127.0.0.1:9000", "s3:/// names no bucket or folder"),
    ],
)
def test_a_target_that_cannot_be_right_is_refused_before_the_run(
    tmp_path: Path, target: str, endpoint: str | None, said: str
) -> None:
    """Told by `run` before anything is pulled or published (no Prefect server is needed)."""
    from _helpers import run_cli

    root = make_project(tmp_path)
    extra = ["--endpoint-url", endpoint] if endpoint else []
    result = run_cli("run", "--no-progress", "--publish-to", target, *extra, cwd=root)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {said}")
    assert not (root / "published").exists()


def test_a_target_that_cannot_be_reached_is_one_sentence(published: Path) -> None:
    """fsspec connects while it opens an ftp:// target: a refused connection is a sentence."""
    with pytest.raises(RemoteError) as caught:
        mirror(published, "ftp://127.0.0.1:1/mirror")
    assert str(caught.value).startswith("Cannot open the publish target ftp://127.0.0.1:1/mirror: ")
