"""Many sources through the real pipeline: pulled, extracted, validated and published.

    .venv/bin/python benchmarks/scale.py [--sizes 1000,10000] [--runners default,dask:1,dask:2]
    .venv/bin/python benchmarks/scale.py --sizes 100        # a quick look

For each size N the script writes N made-up reports from its own templates (seeded: varied
headings, money, percent, people, area and length figures, some in traditional characters,
1-3 KB each; plain text, UTF-8 HTML and GBK HTML pages), serves them from a threaded HTTP
server on 127.0.0.1 that honours If-None-Match and If-Modified-Since, and writes a project
whose sources.yaml holds one dataset of N url sources. The `publish-dataset` flow then runs
against one `prefect server start` (started once, with a private PREFECT_HOME) for every
runner asked for: a first run on a fresh project, reruns with nothing changed, and runs each
after one more report changed on the server (new body, new ETag). The reruns and the
one-report runs are repeated (``--repeats``, 3 by default), and at sizes up to 2,000 the first
run too, each on a fresh project (``--firsts``, 3 by default; one at larger sizes, where a
first run takes minutes); the median of each is reported, with the range: a second or two
moves with whatever else the machine does, and the rerun's share of the first run is a ratio
of two such numbers.

Each run is a fresh process, as a scheduled `reportdata run` is. The process times the flow
(`reportdata.runner.run_datasets`) and the library functions the flow and its tasks call (so
that what is left is orchestration; a module the run imports itself is wrapped when it does,
so the run's own imports stay in its wall time), and reads the task runs from the Prefect
API; the extraction tasks of a Dask run happen in worker processes, so their time is taken
from there. Peak memory is the getrusage high-water mark of the run's process and its reaped
children, and (with psutil, when installed) the largest sum of the resident memory of the
process and all its descendants, Dask workers included, sampled every 0.2 s.

A run's process cannot import the project's test-only dependencies (the `test` extra of
pyproject.toml): installed in the benchmark's environment, they are not in a user's, and
pandera imports Hypothesis when it is there (about half a second).

The numbers are written to the `# Scale` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATASET = "county-briefs"
MARKER = "# Scale"

# ------------------------------------------------------------------------ made-up reports

PLACES = ("青禾县", "云岭区", "白溪镇", "松川县", "望海区", "石门县", "柳湾镇", "金沙区", "丰源县")
TOPICS = (
    "经济运行",
    "产业发展",
    "民生保障",
    "城乡建设",
    "生态环境",
    "社会事业",
    "营商环境",
    "乡村振兴",
    "下一步工作",
)
NUMBERING = (
    "一二三四五六七八九",
    "（一）（二）（三）（四）（五）（六）（七）（八）（九）",
)
FILLERS = (
    "持续优化营商环境,各项工作取得新进展。",
    "坚持问题导向,扎实推进重点项目建设。",
    "统筹发展和安全,守牢安全生产底线。",
    "深化改革创新,激发市场主体活力。",
    "聚焦群众关切,办好一批民生实事。",
)


def _m(rng: random.Random) -> str:
    return f"{rng.uniform(1, 900):.1f}"


def _n(rng: random.Random, low: int = 10, high: int = 90000) -> int:
    return rng.randint(low, high)


def _p(rng: random.Random) -> str:
    return f"{rng.uniform(0.5, 15):.1f}"


# Each template writes one sentence with figures; {k} is the kind of place (县, 区, 镇).
FACTS: tuple[Callable[[random.Random, str, int], str], ...] = (
    lambda r, k, y: f"{y}年,全{k}实现地区生产总值{_m(r)}亿元,同比增长{_p(r)}%。",
    lambda r, k, y: f"完成固定资产投资{_n(r, 1000, 900000)}万元,其中工业投资占{_p(r)}%。",
    lambda r, k, y: f"一般公共预算收入达到{_m(r)}亿元,比上年增长{_p(r)}%。",
    lambda r, k, y: f"城镇新增就业{_n(r)}人,农村劳动力转移就业{_n(r)}人。",
    lambda r, k, y: f"全年接待游客{_n(r, 10, 900)}万人次,实现旅游收入{_m(r)}亿元。",
    lambda r, k, y: f"新建改造城市道路{_m(r)}公里,新增绿地面积{_n(r)}平方米。",
    lambda r, k, y: f"完成植树造林{_n(r, 100, 20000)}亩,森林覆盖率达到{_p(r)}%。",
    lambda r, k, y: f"新增市场主体{_n(r, 100, 9000)}户,其中企业{_n(r, 10, 900)}家。",
    lambda r, k, y: (
        f"城乡居民人均可支配收入分别达到{_n(r, 20000, 60000)}元和{_n(r, 9000, 30000)}元。"
    ),
    lambda r, k, y: f"建成幼儿园{_n(r, 2, 40)}所,新增学位{_n(r, 200, 9000)}个。",
    lambda r, k, y: f"发放各类补贴资金{_n(r, 100, 90000)}万元,惠及群众{_n(r)}人。",
    lambda r, k, y: f"改造老旧小区{_n(r, 3, 90)}个,惠及居民{_n(r, 1000, 50000)}户。",
)
TRADITIONAL = str.maketrans(
    "县区实现亿万长业游设产发经济态环务营积绿园补贴资众农动转场镇湾门乡开个学为达总项进续优两统",
    "縣區實現億萬長業遊設產發經濟態環務營積綠園補貼資眾農動轉場鎮灣門鄉開個學為達總項進續優兩統",
)


AMOUNT = re.compile(r"\d+(?=(?:\.\d+)?亿元)")


@dataclass
class Report:
    """One made-up report: its text blocks (headings and paragraphs) and how it is served."""

    number: int
    title: str
    year: int
    blocks: list[tuple[str, str]]  # ("h", heading) or ("p", paragraph)
    form: str  # "text", "html" or "gbk-html"
    traditional: bool
    edits: int = 0

    @property
    def path(self) -> str:
        ext = ".txt" if self.form == "text" else ".html"
        return f"/reports/{self.number:05d}{ext}"

    def text(self) -> str:
        out = "\n\n".join(b for _, b in [("h", self.title), *self.blocks])
        return out.translate(TRADITIONAL) if self.traditional else out

    def body(self) -> tuple[bytes, str]:
        """The bytes served and their Content-Type."""
        if self.form == "text":
            return self.text().encode("utf-8"), "text/plain; charset=utf-8"
        charset = "gbk" if self.form == "gbk-html" else "utf-8"
        page = _html(self, charset)
        try:
            data = page.encode(charset)
        except UnicodeEncodeError:
            charset, data = "utf-8", _html(self, "utf-8").encode("utf-8")
        # GBK pages name their charset only in the page, as many government sites do.
        return data, "text/html" if charset == "gbk" else "text/html; charset=utf-8"

    def change(self) -> None:
        """Correct one figure in place (the first amount in 亿元, else add a sentence)."""
        self.edits += 1
        for i, (kind, block) in enumerate(self.blocks):
            fixed, hit = re.subn(AMOUNT, lambda m: str(int(m[0]) + 1), block, count=1)
            if kind == "p" and hit:
                self.blocks[i] = (kind, fixed)
                return
        self.blocks.append(("p", f"另据补充统计,新增就业岗位{100 + self.edits}个。"))


def _html(report: Report, charset: str) -> str:
    text = report.text().split("\n\n")
    title, blocks = text[0], text[1:]
    body = []
    for (kind, _), block in zip(report.blocks, blocks, strict=True):
        tag = "h2" if kind == "h" and report.number % 2 else "p"
        body.append(f"<{tag}>{block}</{tag}>")
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="{charset}"><title>{title}</title>'
        f'</head>\n<body><div class="nav">首页 &gt; 政务公开 &gt; 工作动态</div>\n'
        f'<h1>{title}</h1>\n<div class="content">\n' + "\n".join(body) + "\n</div>\n"
        '<div class="footer">主办单位:某县人民政府办公室 联系电话:0000-0000000</div>'
        "</body></html>\n"
    )


def make_report(number: int, seed: int) -> Report:
    """A report of about 1-3 KB, the same for the same number and seed."""
    rng = random.Random(f"{seed}-{number}")
    place = rng.choice(PLACES)
    kind = place[-1]
    year = rng.randint(2018, 2024)
    title = f"{place}{year}年{rng.choice(('工作总结', '政府工作报告摘要', '经济社会发展情况'))}"
    numbering = rng.choice(NUMBERING)
    marks = list(numbering) if len(numbering) == 9 else re.findall(r"（.）", numbering)
    target = rng.randint(1000, 3000)
    blocks: list[tuple[str, str]] = []
    size = len(title.encode())
    topics = rng.sample(TOPICS, len(TOPICS))
    for i, topic in enumerate(topics):
        mark = marks[i] + ("、" if len(numbering) == 9 else "")
        blocks.append(("h", f"{mark}{topic}"))
        for _ in range(rng.randint(1, 3)):
            sentences = [rng.choice(FACTS)(rng, kind, year) for _ in range(rng.randint(1, 3))]
            if rng.random() < 0.4:
                sentences.insert(rng.randint(0, len(sentences)), rng.choice(FILLERS))
            blocks.append(("p", "".join(sentences)))
        size = len(title.encode()) + sum(len(b.encode()) + 2 for _, b in blocks)
        if size >= target:
            break
    form = rng.choices(("text", "html", "gbk-html"), weights=(6, 3, 1))[0]
    return Report(number, title, year, blocks, form, traditional=rng.random() < 0.1)


# ------------------------------------------------------------------------ the HTTP server


@dataclass
class Page:
    body: bytes
    content_type: str
    etag: str
    modified: float


class _Listener(ThreadingHTTPServer):
    """A threaded HTTP server with a web server's listen backlog. socketserver's default of
    5 drops the SYNs of a client that opens 8 connections at once, which it then sends again
    after a second (the kernel's first retransmission timeout): a stall no real server
    (nginx: 511) would cause."""

    request_queue_size = 128


class ReportServer:
    """A threaded HTTP server of the reports, answering conditional requests with 304."""

    def __init__(self, reports: list[Report]) -> None:
        self.reports = {r.path: r for r in reports}
        self.pages: dict[str, Page] = {}
        self.counts: dict[int, int] = defaultdict(int)
        base = time.time() - 86400
        for path, report in self.reports.items():
            self.pages[path] = self._page(report, base)
        self._httpd = _Listener(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @staticmethod
    def _page(report: Report, modified: float) -> Page:
        body, ctype = report.body()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        return Page(body, ctype, etag, modified)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def change(self, path: str) -> None:
        """Change one report: a corrected figure, so a new body and a new ETag."""
        report = self.reports[path]
        report.change()
        self.pages[path] = self._page(report, time.time())

    def reset_counts(self) -> None:
        self.counts.clear()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in one write (flushed after each request): written
            # apart, a 200 waited ~40 ms for the client's delayed ACK (Nagle), a delay no
            # local server has, which made first runs' pulls 7 s instead of ~1 s.
            wbufsize = -1

            def do_GET(self) -> None:
                page = server.pages.get(self.path)
                if page is None:
                    self._send(404, b"not found", {"Content-Type": "text/plain"})
                    return
                headers = {
                    "ETag": page.etag,
                    "Last-Modified": formatdate(page.modified, usegmt=True),
                }
                if self._fresh(page):
                    self._send(304, b"", headers)
                    return
                self._send(200, page.body, {**headers, "Content-Type": page.content_type})

            def _fresh(self, page: Page) -> bool:
                match = self.headers.get("If-None-Match")
                if match is not None:
                    return page.etag in [t.strip() for t in match.split(",")] or match == "*"
                since = self.headers.get("If-Modified-Since")
                if since:
                    try:
                        return int(page.modified) <= parsedate_to_datetime(since).timestamp()
                    except (TypeError, ValueError):
                        return False
                return False

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                server.counts[status] += 1
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if status != 304:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> ReportServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


def write_project(root: Path, reports: list[Report], base: str) -> None:
    """A project whose sources.yaml holds one dataset of one url source per report."""
    import yaml

    doc = {
        "datasets": {
            DATASET: {
                "title": "县区工作报告中的数字 (benchmark)",
                "description": "Figures from made-up county reports, written by a benchmark.",
                "licence": {"name": "CC0-1.0", "title": "Public domain"},
            }
        },
        "sources": [
            {
                "id": f"brief-{r.number:05d}",
                "title": r.title,
                "dataset": DATASET,
                "url": base + r.path,
                "publisher": r.title[:3] + "人民政府",
                "published": str(r.year),
            }
            for r in reports
        ],
    }
    root.mkdir(parents=True)
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    (root / "sources.yaml").write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------ the Prefect server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """`prefect server start` on a free port with a private PREFECT_HOME; yields its API URL."""
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
    )
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                tail = (home / "server.log").read_text("utf-8", "replace")[-3000:]
                raise SystemExit(f"prefect server exited:\n{tail}")
            try:
                if httpx.get(api + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("prefect server did not answer /api/health within 180 s")
            time.sleep(0.5)
        yield api
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


# ------------------------------------------------------------------------ one run (child)

# Library functions timed in the run's process: (module[:class], attribute, label). A label
# with a "/" is a part of the step named before the "/"; the orchestration is what the steps
# leave of the flow's wall time.
TIMED = (
    ("flows.publish_dataset", "load", "load sources.yaml"),
    ("reportdata.pipeline", "pull_sources", "pull"),
    ("reportdata.pipeline", "extract_sources", "extract"),
    ("reportdata.pipeline", "source_keys", "fingerprint inputs"),
    ("reportdata.pipeline", "inputs_fingerprint", "fingerprint inputs"),
    ("reportdata.pipeline", "published_inputs", "fingerprint inputs"),
    ("reportdata.publish", "complete_release", "fingerprint inputs"),
    ("reportdata.pipeline", "plan", "plan (read the newest version)"),
    ("reportdata.pipeline", "previous_rows", "validate"),
    ("reportdata.pipeline", "merge", "validate"),
    ("reportdata.pipeline", "frames", "validate"),
    ("reportdata.pipeline", "conformed", "validate"),
    ("reportdata.pipeline", "check", "validate"),
    ("reportdata.pipeline", "failing_sources", "validate"),
    ("reportdata.validate", "check_tables", "validate/check tables (pandera, cross-field)"),
    ("reportdata.validate", "check_rows", "validate/check rows (no pandas, cross-field)"),
    ("reportdata.validate", "write_report", "validate/write report"),
    ("reportdata.validate:ValidationReport", "to_markdown", "validate"),
    ("reportdata.pipeline", "release", "publish"),
    ("reportdata.publish", "table_rows", "publish/rows to CSV and JSON"),
    ("reportdata.publish", "render_csv", "publish/rows to CSV and JSON"),
    ("reportdata.publish", "render_json", "publish/rows to CSV and JSON"),
    ("reportdata.publish", "splice", "publish/rows to CSV and JSON"),
    ("reportdata.publish", "read_package", "publish/read previous version"),
    ("reportdata.publish", "compare", "publish/compare with previous (changes.json)"),
    ("reportdata.validate", "validate_package", "publish/frictionless validation"),
    ("reportdata.publish", "_write_version", "publish/write version"),
    ("reportdata.publish", "_changes_of", "publish/changelog"),
    ("reportdata.publish", "render_changelog", "publish/changelog"),
    ("reportdata.warehouse", "build_warehouse", "publish/DuckDB warehouse"),
    ("reportdata.catalog", "write_catalog", "publish/catalog and pages"),
    ("reportdata.site", "write_site", "publish/catalog and pages"),
    ("prefect.task_engine", "collect_task_run_inputs_sync", "prefect/scan task parameters"),
    ("prefect.task_engine", "visit_collection", "prefect/scan task parameters"),
    ("flows.publish_dataset", "create_markdown_artifact", "prefect/artifacts"),
    ("flows.publish_dataset", "create_table_artifact", "prefect/artifacts"),
)
STEPS = (
    "load sources.yaml",
    "pull",
    "fingerprint inputs",
    "plan (read the newest version)",
    "extract",
    "validate",
    "publish",
)


Patch = tuple[str, Callable[[Any], None]]  # a module's name, and what to do to it


def _install_timers(patches: Iterable[Patch] = ()) -> dict[str, list[tuple[float, float]]]:
    """Time the TIMED functions, and apply ``patches``. A module the run has not imported yet
    is patched when the run imports it, not imported here: the run pays for its own imports
    (pandas and pandera are imported only by a run that validates)."""
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    on_import: dict[str, list[Callable[[Any], None]]] = defaultdict(list)
    for name, patch in patches:
        on_import[name].append(patch)
    for module_name, attr, label in TIMED:
        name, _, cls = module_name.partition(":")
        on_import[name].append(functools.partial(_time_attribute, cls, attr, spans[label]))

    def time_from_folder(module: Any) -> None:  # a classmethod: wrapped as one
        state = module.PackageState
        timed = _timer(state.from_folder.__func__, spans["publish/read previous version"])
        state.from_folder = classmethod(timed)

    on_import["reportdata.changes"].append(time_from_folder)

    def apply(name: str, module: Any) -> None:
        for patch in on_import.pop(name, ()):
            patch(module)

    for name in list(on_import):
        if name in sys.modules:
            apply(name, sys.modules[name])
    if on_import:
        sys.meta_path.insert(0, _OnImport(on_import, apply))
    return spans


def _time_attribute(cls: str, attr: str, spans: list[tuple[float, float]], module: Any) -> None:
    owner = getattr(module, cls) if cls else module
    setattr(owner, attr, _timer(getattr(owner, attr), spans))


class _OnImport:
    """An import finder that lets a module load as usual, then hands it to ``apply``."""

    def __init__(self, names: dict, apply: Callable[[str, Any], None]) -> None:
        self.names, self.apply = names, apply

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        if name not in self.names:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)  # type: ignore[arg-type]
        if spec is None or spec.loader is None:
            return spec
        real_exec = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            real_exec(module)
            self.apply(name, module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _timer(real: Callable, spans: list[tuple[float, float]]) -> Callable:
    @functools.wraps(real)
    def timed(*args, **kwargs):
        start = time.time()
        try:
            return real(*args, **kwargs)
        finally:
            spans.append((start, time.time()))

    return timed


def _union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _task_runs(flow_started: float) -> dict:
    """Task runs of the newest publish-dataset flow run, read from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["publish-dataset"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        deadline = time.monotonic() + 20
        while True:  # task run states arrive as events, shortly after the flow ends
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
            )
            if all(t.end_time for t in tasks) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        arts = client.read_artifacts(  # this run's (repeated runs make many)
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])),
            limit=50,
        )
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for t in tasks:
        if t.start_time and t.end_time:
            spans[t.name.rsplit("-", 1)[0]].append(
                (t.start_time.timestamp(), t.end_time.timestamp())
            )
    reused = None
    for art in arts:
        if art.key == f"{DATASET}-summary" and art.flow_run_id == run.id:
            found = re.search(r"(\d+) extractions reused", str(art.data))
            kept = re.search(r"(\d+) sources kept from version", str(art.data))
            reused = int(found[1]) + (int(kept[1]) if kept else 0) if found else None
    flow_span = None
    if run.start_time and run.end_time:
        flow_span = run.end_time.timestamp() - run.start_time.timestamp()
    return {
        "tasks": len(tasks),
        "task_spans": {k: v for k, v in spans.items()},
        "flow_run_seconds": flow_span,
        "flow_run_start_delay": (run.start_time.timestamp() - flow_started)
        if run.start_time
        else None,
        "reused": reused,
    }


class _HideTestOnly:
    """An import finder that refuses the project's test-only packages, so that a run's
    process imports what it would in a user's install (``pip install reportdata``)."""

    def __init__(self) -> None:
        import tomllib

        extras = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
        names = extras["project"]["optional-dependencies"]["test"]
        self.hidden = {re.split(r"[\[<>=!~ ;]", n, maxsplit=1)[0].lower() for n in names}

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] in self.hidden:
            raise ModuleNotFoundError(f"No module named {name!r} (test-only)", name=name)


def _switch_off(feature: str) -> Patch:
    """What leaves out one of the publisher's speed-ups in this run (benchmarks/publish_ab.py),
    applied as the run imports the module: importing it here would take its import (pandas
    and duckdb, for the warehouse) out of this variant's wall time alone."""
    if feature == "helper":  # Frictionless checks in the run's own process

        def no_helper(module: Any) -> None:
            module.start = lambda: None

        return "reportdata.package_check", no_helper
    if feature == "prepared-append":  # the DuckDB append is made after the rename

        def no_prepared_append(module: Any) -> None:
            module.prepare_append = lambda *args, **kwargs: None

        return "reportdata.warehouse", no_prepared_append
    raise SystemExit(f"unknown feature {feature!r}")


def child(spec: dict) -> dict:
    """One run of the flow on the project in spec["root"]; measures; returns the numbers."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    t_import = time.perf_counter()
    import flows.publish_dataset  # noqa: F401 - imports Prefect and reportdata's core
    from reportdata.project import load
    from reportdata.runner import run_datasets

    imports = time.perf_counter() - t_import
    # an A/B benchmark leaves a speed-up out
    spans = _install_timers([_switch_off(feature) for feature in spec.get("off", ())])
    start = time.time()
    (summary,) = run_datasets(
        load(Path(spec["root"])),
        [DATASET],
        progress=False,
        runner=spec["runner"],
        workers=spec["workers"],
    )
    wall = time.time() - start
    api = _task_runs(start)
    task_spans = api.pop("task_spans")
    steps = {label: spans.get(label, []) for label in STEPS}
    extract_where = "in process"
    if not steps["extract"] and task_spans.get("extract-sources"):
        steps["extract"] = task_spans["extract-sources"]  # Dask workers: read from the API
        extract_where = "Dask workers (task runs)"
    step_seconds = {label: _union(s) for label, s in steps.items()}
    in_steps = _union([s for spans_ in steps.values() for s in spans_])
    parts = {label: _union(s) for label, s in spans.items() if "/" in label}
    self_ru = resource.getrusage(resource.RUSAGE_SELF)
    kids_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall": wall,
        "imports": imports,
        "steps": step_seconds,
        "parts": parts,
        "in_steps": in_steps,
        "orchestration": wall - in_steps,
        "extract_where": extract_where,
        "calls": {label: len(s) for label, s in spans.items()},
        "task_seconds": {k: sum(b - a for a, b in v) for k, v in task_spans.items()},
        "version": summary.version,
        "new": summary.new,
        "failures": len(summary.failures),
        "first_failure": next(iter(summary.failures.values()), None),
        "counts": summary.counts,
        "maxrss_self_mb": self_ru.ru_maxrss / 1024,
        "maxrss_children_mb": kids_ru.ru_maxrss / 1024,
        "cpu_self": self_ru.ru_utime + self_ru.ru_stime,
        "code": code_digest(),
        **api,
    }


def code_digest() -> str:
    """A digest of the pipeline's code (src/reportdata and flows), to tell runs of different
    code apart: others may change it while a long benchmark runs."""
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "src/reportdata").glob("*.py"), *(ROOT / "flows").glob("*.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


# ------------------------------------------------------------------------ the benchmark


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        with suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_child(spec: dict, env: dict[str, str]) -> dict:
    """Run one flow run in a fresh process; add its process wall time and peak tree memory."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        cwd=spec["root"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        try:
            import psutil
        except ImportError:
            return
        try:
            handle = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not done.wait(0.2):
            peak[0] = max(peak[0], _tree_rss(handle))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"run {spec} failed:\n{err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["process_wall"] = time.perf_counter() - start
    result["load_before"], result["load_after"] = load, os.getloadavg()[0]
    result["tree_peak_mb"] = peak[0] / 2**20 if peak[0] else None
    return result


def du_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _median(samples: list[dict]) -> dict:
    """The sample of median wall time (the lower one of an even count), with every wall."""
    ordered = sorted(samples, key=lambda r: r["wall"])
    return {**ordered[(len(ordered) - 1) // 2], "walls": [r["wall"] for r in samples]}


def bench_size(
    n: int,
    runners: list[tuple[str, int]],
    base: Path,
    env: dict,
    seed: int,
    repeats: int = 3,
    firsts: int = 1,
) -> dict:
    reports = [make_report(i, seed) for i in range(n)]
    kb = sum(len(r.body()[0]) for r in reports) / 1024
    forms = {f: sum(r.form == f for r in reports) for f in ("text", "html", "gbk-html")}
    out: dict = {
        "n": n,
        "kb": kb,
        "forms": forms,
        "traditional": sum(r.traditional for r in reports),
    }
    with ReportServer(reports) as server:
        for runner, workers in runners:
            label = "default" if runner == "default" else f"dask, {workers} worker(s)"
            root = base / f"n{n}-{runner}{workers}"
            spec = {"root": str(root), "runner": runner, "workers": workers}
            runs = {}
            for kind in ("first", "unchanged", "one changed"):
                samples = []
                for i in range(max(1, firsts if kind == "first" else repeats)):
                    if kind == "first":  # each on a fresh project; the reruns use the last
                        shutil.rmtree(root, ignore_errors=True)
                        write_project(root, reports, server.base)
                    if kind == "one changed":  # another report each time, on the last version
                        server.change(reports[(n // 2 + i) % n].path)
                    server.reset_counts()
                    print(f"N={n} {label}: {kind} run ...", flush=True)
                    samples.append(run_child(spec, env))
                    samples[-1]["http"] = dict(server.counts)
                    print(_brief(samples[-1]), flush=True)
                runs[kind] = _median(samples)
            runs["published_mb"] = du_mb(root / "published")
            runs["raw_mb"] = du_mb(root / "raw")
            out[label] = runs
            shutil.rmtree(root, ignore_errors=True)
    return out


def _brief(r: dict) -> str:
    steps = ", ".join(f"{k} {v:.1f}" for k, v in r["steps"].items() if v >= 0.05)
    return (
        f"  wall {r['wall']:.1f} s (process {r['process_wall']:.1f} s), version {r['version']}"
        f" new={r['new']} failures={r['failures']} reused={r['reused']}; steps: {steps};"
        f" orchestration {r['orchestration']:.1f} s; http {r['http']}"
    )


# ------------------------------------------------------------------------ the report


def _mb(r: dict) -> str:
    tree = f"{r['tree_peak_mb']:,.0f}" if r.get("tree_peak_mb") else "n/a"
    return f"{r['maxrss_self_mb']:,.0f} / {r['maxrss_children_mb']:,.0f} / {tree}"


def render(results: list[dict], facts: dict) -> list[str]:
    lines = [
        MARKER,
        "",
        f"Measured by `benchmarks/scale.py` on {facts['machine']}, {facts['cores']} cores, "
        f"{facts['memory_gb']} GB memory, Python {facts['python']}, Prefect {facts['prefect']} "
        f"(a local `prefect server start`, SQLite), on {facts['date']}; the benchmark's HTTP "
        "server and the Prefect server share the machine with the run. Each size is N made-up "
        "reports "
        "(seeded; text, UTF-8 HTML and GBK HTML pages, some in traditional characters) served "
        "from 127.0.0.1 with ETag and Last-Modified, one dataset of N url sources, the "
        "`publish-dataset` flow run as a fresh process each time. " + _repeats_sentence(results),
        "",
    ]
    codes = sorted(
        {
            runs[k].get("code", "?")
            for res in results
            for runs in res.values()
            if isinstance(runs, dict) and "first" in runs
            for k in ("first", "unchanged", "one changed")
        }
    )
    lines += [
        f"Code: commit {facts.get('commit', 'unknown')} (working tree digest "
        f"{', '.join(codes)})."
        + (
            " **The code changed while the benchmark ran**: runs of different digests are "
            "not comparable."
            if len(codes) > 1
            else ""
        ),
        "",
    ]
    for res in results:
        n = res["n"]
        f = res["forms"]
        lines += [
            f"## {n:,} reports",
            "",
            f"{res['kb'] / 1024:,.1f} MB served: {f['text']} text, {f['html']} UTF-8 HTML, "
            f"{f['gbk-html']} GBK HTML pages; {res['traditional']} in traditional characters.",
            "",
            "| runner | run | wall s (range) | reports/s | in steps s | orchestration | "
            "process s | peak MB (self / children / tree) | load avg | version |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for label, runs in res.items():
            if not isinstance(runs, dict) or "first" not in runs:
                continue
            first = runs["first"]
            for kind in ("first", "unchanged", "one changed"):
                r = runs[kind]
                share = r["orchestration"] / r["wall"] if r["wall"] else 0
                rate = n / r["wall"] if kind == "first" else None
                rel = ""
                if kind == "unchanged":
                    rel = f" ({r['wall'] / first['wall']:.1%} of first)"
                elif kind == "one changed":
                    rel = f" ({r['wall'] / runs['unchanged']['wall']:.1f}× unchanged)"
                version = r["version"] + (" new" if r["new"] else " kept")
                if r["failures"]:
                    version += f", {r['failures']} failed"
                expected = {"first": 0, "unchanged": n, "one changed": n - 1}[kind]
                if r.get("reused") is not None and r["reused"] != expected:
                    version += f"; {r['reused']} extractions reused, not {expected}*"
                walls = r.get("walls", [r["wall"]])
                spread = f" ({min(walls):.1f}–{max(walls):.1f})" if len(walls) > 1 else ""
                lines.append(
                    f"| {label} | {kind}{rel} | {r['wall']:.1f}{spread} | "
                    f"{f'{rate:,.0f}' if rate else ''} | {r['in_steps']:.1f} | "
                    f"{r['orchestration']:.1f} s ({share:.0%}) | {r['process_wall']:.1f} | "
                    f"{_mb(r)} | {r.get('load_before', 0):.1f}→{r.get('load_after', 0):.1f} | "
                    f"{version} |"
                )
        lines += ["", *_steps_table(res), ""]
    if any("not " in line and "reused" in line for line in lines):
        lines += [
            "\\* The extractor's code (src/reportdata, edited by others while this ran) changed "
            "between these runs, so the cached extractions did not apply and every report was "
            "extracted again.",
            "",
        ]
    lines += _growth(results)
    lines += _reading(results, facts)
    return lines


def _repeats_sentence(results: list[dict]) -> str:
    """How many reruns and one-report runs each row of the tables is the median of."""
    counts = {
        len(runs[kind].get("walls", [1]))
        for res in results
        for runs in res.values()
        if isinstance(runs, dict) and "first" in runs
        for kind in ("unchanged", "one changed")
    }
    firsts = {
        res["n"]: len(runs["first"].get("walls", [1]))
        for res in results
        for runs in res.values()
        if isinstance(runs, dict) and "first" in runs
    }
    first = ", ".join(
        f"{count} first runs at {n:,} reports, each on a fresh project"
        if count > 1
        else f"one first run at {n:,} reports"
        for n, count in sorted(firsts.items())
    )
    if counts == {1}:
        return f"One rerun and one one-report run; {first}."
    return (
        f"The rerun and the one-report run are each repeated {'/'.join(map(str, sorted(counts)))}"
        f" times (a different report changed each time, on the newest version); {first}: the "
        "row is the run of median wall time, the range in brackets."
    )


def _top(parts: dict, step: str, count: int = 3) -> str:
    """The largest parts of a step, "name s" joined."""
    mine = sorted(
        ((k.split("/", 1)[1], v) for k, v in parts.items() if k.startswith(step + "/")),
        key=lambda kv: -kv[1],
    )[:count]
    return ", ".join(f"{name} {_s(v)} s" for name, v in mine)


def _reading(results: list[dict], facts: dict) -> list[str]:
    """Where the time goes, in sentences made from the numbers above."""
    res = results[-1]
    runs = res.get("default")
    if not runs:
        return []
    n, first, same, one = res["n"], runs["first"], runs["unchanged"], runs["one changed"]
    ratio = same["wall"] / first["wall"]
    scan_key = "prefect/scan task parameters"
    scan = max(first["parts"].get(scan_key, 0.0), one["parts"].get(scan_key, 0.0))
    decided = same["steps"]["fingerprint inputs"] + same["steps"]["load sources.yaml"]
    rest = same["wall"] - same["steps"]["pull"] - decided - same["steps"]["extract"]
    answers = ", ".join(f"{count:,} × {status}" for status, count in same["http"].items())
    read_rows = (
        "no rows read"
        if same["steps"]["extract"] < 0.05
        else f"reading cached extractions {_s(same['steps']['extract'])} s"
    )
    out = [
        "## Reading",
        "",
        f"- Unchanged rerun at {n:,} reports: {_s(same['wall'])} s, {ratio:.1%} of the first "
        f"run's wall time; the goal of at most 5% is {'met' if ratio <= 0.05 else 'not met'}. "
        f"Pull: {_s(same['steps']['pull'])} s ({same['steps']['pull'] / n * 1000:.1f} ms a "
        f"source; {answers}); loading sources.yaml and deciding from the snapshots that the "
        f"release is current: {_s(decided)} s, {read_rows}; Prefect and the rest (the flow "
        f"run, the pull task, the summary artifact): {_s(rest)} s. The fresh process also "
        f"spends {_s(same['process_wall'] - same['wall'])} s starting and importing before "
        "the flow.",
        f"- First run: pull {_s(first['steps']['pull'])} s, extract "
        f"{_s(first['steps']['extract'])} s, validate {_s(first['steps']['validate'])} s, "
        f"publish {_s(first['steps']['publish'])} s ({_top(first['parts'], 'publish')}), "
        f"{_s(first['orchestration'])} s ({first['orchestration'] / first['wall']:.0%}) outside "
        f"the steps, of which Prefect walking task parameters {_s(scan)} s.",
        f"- One report changed: {_s(one['wall'])} s, {one['wall'] / same['wall']:.1f}× the "
        f"unchanged rerun, {one['wall'] - same['wall']:.1f} s more. The new version is built "
        f"on the newest one (reading it: "
        f"{_s(one['steps'].get('plan (read the newest version)', 0.0))} s); only that report "
        f"is extracted ({_s(one['steps'].get('extract', 0.0))} s) and its rows checked as "
        f"row dicts, without importing pandas or pandera "
        f"({_s(one['steps'].get('validate', 0.0))} s); publishing "
        f"{_s(one['steps']['publish'])} s ({_top(one['parts'], 'publish')}).",
    ]
    small = results[0].get("default", runs)["first"]["maxrss_self_mb"]
    out.append(
        f"- Peak memory of the run's process: {first['maxrss_self_mb']:,.0f} MB for the first "
        f"run at {n:,} reports ({small:,.0f} MB at {results[0]['n']:,}), "
        f"{same['maxrss_self_mb']:,.0f} MB for the unchanged rerun, "
        f"{one['maxrss_self_mb']:,.0f} MB after one change. A first version holds every "
        "table at once as rows, as DataFrames and as rendered CSV and JSON."
    )
    out += _dask_reading(results)
    out += _growth_reading(results)
    out += [
        "",
        "Proposed next steps (src/ is not changed by this benchmark):",
        "",
        f"1. What a one-report change still pays in proportion to the dataset: reading the "
        f"newest version's files "
        f"({_s(one['steps'].get('plan (read the newest version)', 0.0))} s; not hashed again "
        "while unchanged since their run wrote them), writing the whole new version, hashing "
        "it and syncing it to disk "
        f"({_s(one['parts'].get('publish/write version', 0.0))} s with the check of the new "
        "rows and the DuckDB append made beside it, which copies the DuckDB file and "
        "checkpoints the copy; an append left to after the rename: "
        f"{_s(one['parts'].get('publish/DuckDB warehouse', 0.0))} s), since every version "
        "is a complete data package.",
        f"2. An unchanged rerun is now mostly its {n:,} conditional requests "
        f"({same['steps']['pull'] / n * 1000:.2f} ms each: the client reading each source's "
        "manifest and asking, eight at a time from one thread, the benchmark's Python server "
        "answering, on the same two cores) and Prefect's fixed cost of a flow run "
        f"({_s(same['orchestration'])} s outside the steps: creating the flow run, its API "
        "clients, the pull task and the summary artifact).",
        "3. The rest of a one-report change's publishing waits on two things made beside "
        "each other: the Frictionless helper's check of the new rows (the helper starts at "
        "the first new snapshot) and the DuckDB append to a copy of the warehouse (what it "
        "checks the copy against is remembered between publishes: its cost no longer grows "
        "with the number of versions, `benchmarks/history.py`).",
    ]
    if facts.get("load"):
        out += [
            "",
            f"The machine was shared while this ran (load average {facts['load']}, on "
            f"{facts['cores']} cores): absolute times are slower than on an idle machine and "
            "move between runs; read the shares and ratios first.",
        ]
    return [*out, ""]


def _dask_reading(results: list[dict]) -> list[str]:
    small = next((r for r in results if any(k.startswith("dask") for k in r)), None)
    if not small or "default" not in small:
        return []
    dask = [(k, v) for k, v in small.items() if k.startswith("dask")]
    base = small["default"]
    walls = ", ".join(
        f"{k} {v['first']['wall'] / base['first']['wall']:.2f}× (unchanged rerun "
        f"{v['unchanged']['wall'] / base['unchanged']['wall']:.1f}×)"
        for k, v in dask
    )
    extract = ", ".join(
        f"{k} {_s(v['first']['steps']['extract'])} s" for k, v in [("default", base), *dask]
    )
    orch = ", ".join(f"{k} {_s(v['unchanged']['orchestration'])} s" for k, v in dask)
    return [
        f"- Dask at {small['n']:,} reports, wall against the default runner: {walls}. "
        f"Extraction, the only step Dask spreads: {extract}. Starting the local cluster and "
        "the workers' imports cost every run that sends extraction to it; an unchanged rerun "
        f"starts no cluster ({orch} outside the steps, against "
        f"{_s(base['unchanged']['orchestration'])} s for the default runner). With 1-3 KB "
        "reports on two cores Dask does not pay; it is for extraction-heavy runs (many PDFs) "
        "or a cluster with more cores."
    ]


def _growth_reading(results: list[dict]) -> list[str]:
    if len(results) < 2 or "default" not in results[0] or "default" not in results[-1]:
        return []
    a, b = results[0], results[-1]
    out = []
    for kind in ("first", "unchanged", "one changed"):
        wa, wb = a["default"][kind]["wall"], b["default"][kind]["wall"]
        out.append(
            f"{kind} {wb / wa:.1f}× ({_s(wa / a['n'] * 1000)} → {_s(wb / b['n'] * 1000)} ms a "
            "report)"
        )
    return [
        f"- From {a['n']:,} to {b['n']:,} reports ({b['n'] / a['n']:.0f}× the reports), the "
        f"default runner's wall time grows: {'; '.join(out)}."
    ]


def _s(seconds: float) -> str:
    """Seconds, with a decimal below ten."""
    return f"{seconds:.1f}" if seconds < 10 else f"{seconds:.0f}"


def _steps_table(res: dict) -> list[str]:
    """Where the time goes, per step, for the default runner's three runs."""
    runs = res.get("default")
    if not runs:
        runs = next(v for v in res.values() if isinstance(v, dict) and "first" in v)
    kinds = ("first", "unchanged", "one changed")
    labels = list(STEPS)
    parts = sorted({p for k in kinds for p in runs[k]["parts"]}, key=labels_order)
    lines = [
        "Seconds in each step (default runner; parts of a step indented; the Prefect API "
        "counted the task runs):",
        "",
        "| step | first | unchanged | one changed |",
        "|---|---:|---:|---:|",
    ]
    for label in labels:
        cells = " | ".join(f"{runs[k]['steps'].get(label, 0):.2f}" for k in kinds)
        lines.append(f"| {label} | {cells} |")
        for part in parts:
            if part.split("/")[0] == label:
                cells = " | ".join(f"{runs[k]['parts'].get(part, 0):.2f}" for k in kinds)
                lines.append(f"| &nbsp;&nbsp;{part.split('/', 1)[1]} | {cells} |")
    cells = " | ".join(f"{runs[k]['orchestration']:.2f}" for k in kinds)
    lines.append(f"| outside the steps (Prefect, artifacts, flow code) | {cells} |")
    for part in parts:
        if part.startswith("prefect/"):
            cells = " | ".join(f"{runs[k]['parts'].get(part, 0):.2f}" for k in kinds)
            lines.append(f"| &nbsp;&nbsp;{part.split('/', 1)[1]} | {cells} |")
    cells = " | ".join(str(runs[k]["tasks"]) for k in kinds)
    lines.append(f"| task runs recorded | {cells} |")
    cells = " | ".join(f"{runs[k]['imports']:.1f}" for k in kinds)
    lines.append(f"| imports before the run (not in wall) | {cells} |")
    return lines


def labels_order(part: str) -> tuple[int, str]:
    head = part.split("/")[0]
    return (STEPS.index(head) if head in STEPS else 99, part)


def _growth(results: list[dict]) -> list[str]:
    if len(results) < 2:
        return []
    small, big = results[0], results[-1]
    lines = [
        f"## Growth from {small['n']:,} to {big['n']:,} reports",
        "",
        "| runner | run | wall ratio | ms a report, small | ms a report, large |",
        "|---|---|---:|---:|---:|",
    ]
    for label, runs in big.items():
        if not isinstance(runs, dict) or "first" not in runs or label not in small:
            continue
        for kind in ("first", "unchanged", "one changed"):
            a, b = small[label][kind]["wall"], runs[kind]["wall"]
            lines.append(
                f"| {label} | {kind} | {b / a:.1f} | {a / small['n'] * 1000:.1f} | "
                f"{b / big['n'] * 1000:.1f} |"
            )
    return [*lines, ""]


def write_section(out: Path, lines: list[str], marker: str = MARKER) -> None:
    """Replace the section headed ``marker`` (`# Scale`) of ``out``, up to the next top-level
    heading; a new section goes before the other scripts' sections."""
    section = "\n".join(lines).rstrip() + "\n"
    old = out.read_text("utf-8") if out.exists() else "# Benchmarks\n"
    heads = [m.start() for m in re.finditer(r"^# ", old, flags=re.M)]
    mine = old.find(marker + "\n")
    if mine >= 0:
        after = [h for h in heads if h > mine]
        end = after[0] if after else len(old)
        text = old[:mine] + section + ("\n" + old[end:] if end < len(old) else "")
    else:
        others = heads[1:]  # after the file's own title and introduction
        at = others[0] if others else len(old)
        text = old[:at].rstrip() + "\n\n" + section + ("\n" + old[at:] if others else "")
    out.write_text(text, encoding="utf-8")


def machine_facts() -> dict:
    import prefect

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": f"{mem:.0f}",
        "python": platform.python_version(),
        "prefect": prefect.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "commit": git_commit(),
    }


def _load_range(results: list[dict]) -> str:
    loads = [
        run[k]
        for res in results
        for runs in res.values()
        if isinstance(runs, dict) and "first" in runs
        for kind in ("first", "unchanged", "one changed")
        for run in [runs[kind]]
        for k in ("load_before", "load_after")
        if k in run
    ]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else ""


def parse_runners(text: str) -> list[tuple[str, int]]:
    runners = []
    for item in text.split(","):
        name, _, workers = item.strip().partition(":")
        runners.append((name, int(workers or 2)))
    return runners


def run_env(api: str, home: Path) -> dict[str, str]:
    """The environment of a run's process: the benchmark's Prefect server, this tree's code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_API_URL=api,
        PREFECT_HOME=str(home),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        # this tree's code, even when another checkout is installed in the venv
        PYTHONPATH=os.pathsep.join((str(ROOT / "src"), str(ROOT))),
    )
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--runners", default="default,dask:1,dask:2")
    ap.add_argument(
        "--large-runners", help="runners for sizes above 2,000 (default: those of --runners)"
    )
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--repeats", type=int, default=3, help="unchanged and one-changed runs")
    ap.add_argument(
        "--firsts",
        type=int,
        default=3,
        help="first runs (each on a fresh project) at sizes up to 2,000; one above",
    )
    ap.add_argument("--from-json", type=Path, help="only write the section from saved numbers")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks.md")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.meta_path.insert(0, _HideTestOnly())
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.from_json:
        saved = json.loads(args.from_json.read_text("utf-8"))
        facts = saved["facts"]
        facts.setdefault("load", _load_range(saved["results"]))
        lines = render(saved["results"], facts)
        write_section(args.out, lines)
        print("\n".join(lines))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    runners = parse_runners(args.runners)
    large = parse_runners(args.large_runners) if args.large_runners else runners
    facts = machine_facts()
    base = Path(tempfile.mkdtemp(prefix="reportdata-scale-"))
    home = base / "prefect-home"
    home.mkdir()
    results = []
    try:
        with prefect_server(home) as api:
            env = run_env(api, home)
            for n in sizes:
                chosen = large if n > 2000 else runners
                firsts = args.firsts if n <= 2000 else 1
                results.append(bench_size(n, chosen, base, env, args.seed, args.repeats, firsts))
                if args.json:
                    saved = {"facts": facts, "results": results}
                    args.json.write_text(json.dumps(saved, indent=1), encoding="utf-8")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    facts["load"] = _load_range(results)
    lines = render(results, facts)
    write_section(args.out, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
