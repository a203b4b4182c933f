"""Crash safety of publishing: a run killed with SIGKILL at any moment leaves a whole release.

tests/crash_publisher.py publishes one variant of the embedded report's tables in a
subprocess; the tests kill it after a random delay (seeded) drawn over the measured duration
of a clean publish, or of its finishing steps, or of its start-up. After each kill every
version folder must be whole and valid, latest.json must name one of them, and the
all-versions DuckDB file and catalog.json must be readable. Then a second run of the
publisher (in this process) must complete the release the killed run started: exactly one
new version, latest, with the variant's rows, every derived file current, and no temporary
file or folder left anywhere.

The kill moments by phase are printed (``pytest -s``); the publisher marks its phases.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from crash_publisher import PHASE_NAMES, Rows, variant_rows

from reportdata.pipeline import dataset_info, frames
from reportdata.project import load
from reportdata.publish import PublishResult, publish
from reportdata.tables import DocumentInfo, rows_from_bytes
from reportdata.validate import validate_package

REPO = Path(__file__).resolve().parents[1]
PUBLISHER = Path(__file__).with_name("crash_publisher.py")
DATASET = "lixia"
SEED = 20240611
SPREAD = 1.2
"""Kills are drawn over this multiple of the measured time from a window's start to the end."""
WHOLE, FINISH, LAST, STARTUP = "prepare", "finish", "latest", "startup"
"""Kill windows, named by the phase they start at: the whole publish; its finishing steps
(`finish_release`); its last steps (latest.json, catalog, pages); the start-up, before the
publisher is ready. Uniform kills over the whole publish mostly hit its validation, the
longest step, and rarely the short steps that write the files derived from the versions."""
AHEAD = 2
"""Publishers started ahead of their trial, so that their start-up overlaps the checks."""


@dataclass(frozen=True)
class Inputs:
    """The prepared rows and metadata, and the JSON file holding them for the publisher."""

    path: Path
    rows: Rows
    info: Any


@dataclass
class Timing:
    """Seconds a publisher takes to start, and from the start of its publish to each phase."""

    startup: float
    phases: dict[str, float] = field(default_factory=dict)  # "done": the whole publish

    def update(self, lines: list[str]) -> None:
        """Take the times a publisher that ran to the end printed."""
        marks: dict[str, float] = {}
        for parts in (line.split() for line in lines):
            if len(parts) == 3 and parts[0] == "phase":
                marks.setdefault(parts[1], float(parts[2]))  # when the phase first started
        if {WHOLE, FINISH, LAST, "done"} <= set(marks):
            self.phases = marks

    def delay(self, trial: Trial) -> float:
        """Seconds from the start of the trial's window to its kill."""
        if trial.window == STARTUP:
            return trial.fraction * self.startup
        return trial.fraction * SPREAD * (self.phases["done"] - self.phases[trial.window])


@dataclass(frozen=True)
class Trial:
    chain: int  # each chain publishes into its own published/ folder, starting empty
    variant: int  # the chain's variant number; variant k publishes the chain's (k+1)-th version
    window: str  # WHOLE, FINISH, LAST or STARTUP
    fraction: float  # where in the window the kill lands, 0 to 1


@dataclass
class Chain:
    """What the tests know of one published/ folder between trials."""

    published: Path
    descriptors: dict[str, str] = field(default_factory=dict)  # version -> sha256, validated
    latest: str | None = None


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def crash_inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    """The embedded report's rows and the dataset's metadata from this repository's project."""
    project = load(REPO)
    source = project.sources_of(DATASET)[0]
    data = (REPO / source.path).read_bytes()
    doc = DocumentInfo(
        document_id=source.id,
        dataset=source.dataset,
        title=source.title,
        publisher=source.publisher,
        area=source.area,
        licence=source.licence,
        origin=source.path,
        raw_sha256=hashlib.sha256(data).hexdigest(),
        published_year=int(source.published) if source.published.isdigit() else None,
    )
    rows = rows_from_bytes(doc, data, source.path)
    assert len(rows["indicators"]) >= 3, "the variants need a few figures to leave out"
    info = dataset_info(project, DATASET)
    path = tmp_path_factory.mktemp("crash-inputs") / "inputs.json"
    payload = {"rows": rows, "info": dataclasses.asdict(info)}
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    return Inputs(path, json.loads(path.read_text(encoding="utf-8"))["rows"], info)


@pytest.fixture(scope="session")
def timing(crash_inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> Timing:
    """One clean run of the publisher: how long it takes to start, and to publish."""
    folder = tmp_path_factory.mktemp("crash-timing")
    started = time.perf_counter()
    child = Child.spawn(crash_inputs.path, folder / "published", 0, folder / "stderr.txt")
    try:
        child.wait_ready()
        startup = time.perf_counter() - started
        child.go()
        assert child.finish(timeout=600) == 0, child.stderr_text()
        lines = child.output()
    finally:
        child.stop()
    assert "done 1.0.0 True" in " ".join(lines), lines
    measured = Timing(startup)
    measured.update(lines)
    assert measured.phases, lines
    return measured


# ---------------------------------------------------------------------------- the publisher


@dataclass
class Child:
    """A crash_publisher.py subprocess."""

    proc: subprocess.Popen[str]
    stderr: Path
    lines: list[str] = field(default_factory=list)  # printed lines read so far

    @classmethod
    def spawn(cls, inputs: Path, published: Path, variant: int, stderr: Path) -> Child:
        with open(stderr, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(PUBLISHER), str(inputs), str(published), str(variant)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                encoding="utf-8",
            )
        return cls(proc, stderr)

    def stderr_text(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")[-4000:]

    def wait_ready(self) -> None:
        """Block until the publisher has imported everything and loaded its tables."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == "ready\n", f"publisher did not start: {line!r}\n{self.stderr_text()}"

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float) -> int:
        """Wait for the publisher to end by itself, at most `timeout` seconds."""
        return self.proc.wait(timeout=timeout)

    def kill_after(self, delay: float) -> int:
        """SIGKILL the publisher `delay` seconds from now unless it ended; its return code."""
        try:
            return self.proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def wait_for(self, prefix: str) -> bool:
        """Block until the publisher prints a line starting with `prefix`; False if it ends."""
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline():
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return True
        return False

    def output(self) -> list[str]:
        """Everything the publisher printed (call once it has ended)."""
        assert self.proc.stdout is not None
        self.lines += self.proc.stdout.read().splitlines()
        return self.lines

    def stop(self) -> None:
        """Kill the publisher if it still runs, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def last_phase(lines: list[str]) -> str:
    """The phase the publisher was in when it ended: its last ``phase`` line."""
    phases = [line.split()[1] for line in lines if line.startswith("phase ")]
    return phases[-1] if phases else "ready"


# ---------------------------------------------------------------------------- checks


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def complete_versions(dataset_dir: Path) -> list[str]:
    """The version folders; each must be complete (hold datapackage.json)."""
    if not dataset_dir.is_dir():
        return []
    found = []
    for entry in dataset_dir.iterdir():
        parts = entry.name.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            assert (entry / "datapackage.json").is_file(), f"incomplete version folder {entry}"
            found.append(entry.name)
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


def check_version(folder: Path, chain: Chain) -> None:
    """Every resource's bytes and sha256 match the files, and the package validates.

    A version seen before must have the same descriptor (versions are never rewritten);
    Frictionless validation runs once per descriptor, whose resource hashes pin every file.
    """
    raw = (folder / "datapackage.json").read_bytes()
    package = json.loads(raw)
    assert package["version"] == folder.name
    for resource in package["resources"]:
        data = (folder / resource["path"]).read_bytes()
        assert len(data) == resource["bytes"], f"{folder.name}/{resource['path']} bytes"
        assert sha256(data) == resource["hash"], f"{folder.name}/{resource['path']} hash"
    digest = sha256(raw)
    known = chain.descriptors.get(folder.name)
    if known is None:
        report = validate_package(folder / "datapackage.json")
        assert report.ok, f"version {folder.name}: {report.summary()}"
        chain.descriptors[folder.name] = digest
    else:
        assert known == digest, f"version {folder.name} was rewritten"


def read_latest(dataset_dir: Path) -> str | None:
    path = dataset_dir / "latest.json"
    if not path.exists():
        return None
    pointer = json.loads(path.read_text(encoding="utf-8"))
    assert pointer["path"] == pointer["version"]
    return pointer["version"]


def warehouse_versions(dataset_dir: Path) -> dict[str, bool] | None:
    """The warehouse's versions and their is_latest flags, opened read-only; None if absent."""
    path = dataset_dir / f"{DATASET}.duckdb"
    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    try:
        held = con.execute("SELECT version, is_latest FROM versions").fetchall()
        con.execute("SELECT count(*) FROM latest_indicators").fetchall()
    finally:
        con.close()
    return dict(held)


def catalog_entry(published: Path) -> dict[str, Any] | None:
    """The dataset's entry in catalog.json (which must parse), if the catalog has one."""
    path = published / "catalog.json"
    if not path.exists():
        return None
    catalog = json.loads(path.read_text(encoding="utf-8"))
    entries = [d for d in catalog["datasets"] if d["name"] == DATASET]
    return entries[0] if entries else None


def check_whole(chain: Chain) -> list[str]:
    """The published tree is consistent; returns its complete versions, oldest first."""
    dataset_dir = chain.published / DATASET
    versions = complete_versions(dataset_dir)
    for version in versions:
        check_version(dataset_dir / version, chain)
    assert set(chain.descriptors) <= set(versions), "a published version disappeared"
    latest = read_latest(dataset_dir)
    if latest is not None:
        assert latest in versions, f"latest.json names {latest}, not a whole version"
    if chain.latest is not None:  # it stays, or moves to the version the killed run added
        assert latest in (chain.latest, versions[-1]), f"latest.json moved to {latest}"
    held = warehouse_versions(dataset_dir)
    if held is not None:
        assert set(held) <= set(versions), f"the warehouse holds missing versions {held}"
    entry = catalog_entry(chain.published)
    if entry is not None:
        listed = {v["version"] for v in entry["versions"]}
        assert listed <= set(versions) and entry["latest"] in versions
    return versions


def leftovers(published: Path) -> list[str]:
    """Temporary files and folders anywhere under published/ (lock files are not)."""
    return sorted(
        p.relative_to(published).as_posix()
        for p in published.rglob("*")
        if ".tmp" in p.name or p.name.endswith(".wal")
    )


def check_completed(
    chain: Chain, result: PublishResult, before: list[str], expected: Rows, count: int
) -> None:
    """The rerun finished the release: one new version, latest everywhere, nothing left over."""
    dataset_dir = chain.published / DATASET
    versions = check_whole(chain)
    assert result.version in versions
    assert sorted(set(before) | {result.version}) == sorted(versions)
    assert len(versions) == count, f"expected {count} versions, found {versions}"
    assert read_latest(dataset_dir) == result.version
    assert warehouse_versions(dataset_dir) == {v: v == result.version for v in versions}
    entry = catalog_entry(chain.published)
    assert entry is not None and entry["latest"] == result.version
    assert {v["version"] for v in entry["versions"]} == set(versions)
    assert f"## {result.version}" in (dataset_dir / "CHANGELOG.md").read_text(encoding="utf-8")
    published_rows = json.loads((result.path / "indicators.json").read_text(encoding="utf-8"))
    assert sorted((r["indicator_id"], r["subject"]) for r in published_rows) == sorted(
        (r["indicator_id"], r["subject"]) for r in expected["indicators"]
    )
    assert leftovers(chain.published) == []
    chain.latest = result.version


# ---------------------------------------------------------------------------- trials


def plan(rng: random.Random, chains: int, per_chain: int, windows: dict[str, int]) -> list[Trial]:
    """Trials in chains, in random order of windows; in each window the kill moments are
    uniform and stratified (one in each of n equal slices), so they cover it evenly."""
    order = [w for w, n in windows.items() for _ in range(n)]
    assert len(order) == chains * per_chain
    rng.shuffle(order)
    slices = {w: rng.sample(range(n), n) for w, n in windows.items()}
    trials = []
    for i, window in enumerate(order):
        part = slices[window].pop()
        fraction = (part + rng.random()) / windows[window]
        trials.append(Trial(i // per_chain, i % per_chain, window, fraction))
    return trials


@dataclass
class Runner:
    """Runs trials in order, with the publishers of the next ones started ahead."""

    inputs: Inputs
    timing: Timing
    root: Path
    trials: list[Trial]
    chains: dict[int, Chain] = field(default_factory=dict)
    phases: Counter[str] = field(default_factory=Counter)
    started: dict[int, Child] = field(default_factory=dict)  # by trial number

    def chain(self, number: int) -> Chain:
        return self.chains.setdefault(number, Chain(self.root / f"chain{number}" / "published"))

    def spawn(self, number: int) -> Child:
        trial = self.trials[number]
        published = self.chain(trial.chain).published
        stderr = self.root / f"stderr-{number}.txt"
        return Child.spawn(self.inputs.path, published, trial.variant, stderr)

    def start_ahead(self, first: int) -> None:
        """Start the publishers of the next AHEAD trials from `first` (not start-up kills)."""
        for number in range(first, min(first + AHEAD, len(self.trials))):
            if self.trials[number].window != STARTUP and number not in self.started:
                self.started[number] = self.spawn(number)

    def kill(self, number: int) -> str:
        """Kill trial `number`'s publisher at the trial's moment; the phase it was in."""
        trial = self.trials[number]
        if trial.window == STARTUP:
            child = self.spawn(number)
            code = child.kill_after(self.timing.delay(trial))
            phase = STARTUP
        else:
            child = self.started.pop(number)
            child.wait_ready()
            child.go()
            assert child.wait_for(f"phase {trial.window} "), child.stderr_text()
            code = child.kill_after(self.timing.delay(trial))
            lines = child.output()
            phase = last_phase(lines)
            self.timing.update(lines)  # later kills follow the publish as it grows or slows
        assert code in (0, -9), f"publisher failed ({code}): {child.stderr_text()}"
        child.stop()
        return phase

    def run(self) -> None:
        try:
            self.start_ahead(0)
            self.warm_up()
            for number, trial in enumerate(self.trials):
                phase = self.kill(number)
                self.phases[phase] += 1
                self.start_ahead(number + 1)  # they start while this trial is checked
                try:
                    self.check_and_complete(trial)
                except AssertionError as exc:
                    exc.add_note(f"trial {number}: {trial}, killed in phase {phase}")
                    raise
        finally:
            for child in self.started.values():
                child.stop()
            print(self.summary())

    def warm_up(self) -> None:
        """Publish once here while the first publishers start, so that this process has
        imported and set up everything publishing and checking need before the trials."""
        folder = self.root / "warm-up"
        tables = frames(variant_rows(self.inputs.rows, 0))
        check_version(publish(tables, self.inputs.info, folder).path, Chain(folder))

    def check_and_complete(self, trial: Trial) -> None:
        """The tree the kill left is whole; a second run completes the release."""
        chain = self.chain(trial.chain)
        before = check_whole(chain)
        expected = variant_rows(self.inputs.rows, trial.variant)
        result = publish(frames(expected), self.inputs.info, chain.published)
        check_completed(chain, result, before, expected, count=trial.variant + 1)

    def summary(self) -> str:
        order = [STARTUP, *PHASE_NAMES]
        counts = ", ".join(f"{p} {self.phases[p]}" for p in order if self.phases[p])
        marks = ", ".join(f"{p} {t:.2f}" for p, t in self.timing.phases.items())
        return (
            f"kill moments by phase: {counts}; last publish measured (s from its start): "
            f"{marks}; start-up {self.timing.startup:.2f} s"
        )


def run_trials(inputs: Inputs, timing: Timing, root: Path, trials: list[Trial]) -> Counter[str]:
    runner = Runner(inputs, dataclasses.replace(timing, phases=dict(timing.phases)), root, trials)
    runner.run()
    return runner.phases


# ---------------------------------------------------------------------------- tests


def test_a_few_kills_leave_a_whole_release(
    crash_inputs: Inputs, timing: Timing, tmp_path: Path
) -> None:
    trials = plan(
        random.Random(SEED), chains=1, per_chain=5, windows={WHOLE: 2, FINISH: 2, LAST: 1}
    )
    phases = run_trials(crash_inputs, timing, tmp_path, trials)
    assert phases.total() == 5


@pytest.mark.slow
def test_random_kills_leave_a_whole_release(
    crash_inputs: Inputs, timing: Timing, tmp_path: Path
) -> None:
    windows = {WHOLE: 26, FINISH: 14, LAST: 10, STARTUP: 4}
    trials = plan(random.Random(SEED + 1), chains=6, per_chain=9, windows=windows)
    phases = run_trials(crash_inputs, timing, tmp_path, trials)
    assert phases.total() == 54


def test_leftovers_of_killed_writes_are_removed_by_the_next_run(
    crash_inputs: Inputs, tmp_path: Path
) -> None:
    """The temporary files a run killed mid-write leaves, named as the writers name them."""
    published = tmp_path / "published"
    dataset_dir = published / DATASET
    first = publish(frames(variant_rows(crash_inputs.rows, 0)), crash_inputs.info, published)
    planted = [dataset_dir / f".tmp-9.9.9-{'0' * 8}", dataset_dir / f".{DATASET}.duckdb.tmp-0"]
    planted[0].mkdir()
    (planted[0] / "indicators.csv").write_bytes(b"indicator_id\n")
    planted[1].write_bytes(b"not a database")
    for folder, name in [
        (dataset_dir, "latest.json"),
        (dataset_dir, "CHANGELOG.md"),
        (dataset_dir, "index.html"),
        (published, "catalog.json"),
        (published, "index.html"),
    ]:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        with open(fd, "wb") as fh:
            fh.write(b'{"version": ')  # cut short by the kill
        planted.append(Path(tmp))
    assert len(leftovers(published)) == len(planted)
    second = publish(frames(variant_rows(crash_inputs.rows, 1)), crash_inputs.info, published)
    assert second.new and second.version != first.version
    assert leftovers(published) == []
