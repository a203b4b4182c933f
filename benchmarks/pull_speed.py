"""What one conditional request of an unchanged rerun costs the client: wall and CPU time.

    .venv/bin/python benchmarks/pull_speed.py [--sources 1000] [--rounds 5] [--workers 8]
    .venv/bin/python benchmarks/pull_speed.py --client-only   # the HTTP exchange alone

A threaded HTTP/1.1 server on 127.0.0.1 (in a child process, so that its CPU is not counted)
serves one ~2 KB report per path with an ETag: 200 to a first GET, 304 to a GET whose
If-None-Match matches. A temporary project of N url sources is pulled once with
``pipeline.pull_sources`` (all 200s), then again ``--rounds`` times (all 304s); the best
round is reported per request, as wall time and as CPU time (``time.process_time``) of this
process. ``--client-only`` times ``fetch_url`` with the validators instead, over one shared
client and the same thread pool, without reading or writing any manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml


def report(n: int) -> bytes:
    """A made-up report of about 2 KB whose figures differ with n."""
    line = f"全县第{n}号简报:实现地区生产总值{100 + n}.5亿元,新增市场主体{2000 + n}户。\n"
    return (line * 24).encode("utf-8")  # about 2 KB


def etag(n: int) -> str:
    return '"' + hashlib.sha256(report(n)).hexdigest()[:16] + '"'


def serve(count: int, ports: multiprocessing.Queue) -> None:
    """Serve /r/<n>.txt for n < count until killed; puts the port on ``ports``."""
    bodies = {f"/r/{n}.txt": (report(n), etag(n)) for n in range(count)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keeps connections open between requests

        def do_GET(self) -> None:
            body, tag = bodies[self.path]
            fresh = self.headers.get("If-None-Match") == tag
            self.send_response(304 if fresh else 200)
            self.send_header("ETag", tag)
            if not fresh:
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not fresh:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # socketserver's 5 drops SYNs of 8 connections at once

    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    ports.put(httpd.server_address[1])
    httpd.serve_forever()


def write_project(root: Path, base: str, count: int) -> None:
    """A project whose sources.yaml holds one dataset of ``count`` url sources."""
    doc = {
        "datasets": {
            "bench": {
                "title": "简报中的数字 (benchmark)",
                "licence": {"name": "CC0-1.0", "title": "Public domain"},
            }
        },
        "sources": [
            {"id": f"r-{n}", "dataset": "bench", "url": f"{base}/r/{n}.txt"} for n in range(count)
        ],
    }
    (root / "sources.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")


def timed(run: Callable[[], None]) -> tuple[float, float]:
    """(wall, cpu) seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def full_rerun(base: str, count: int, workers: int, root: Path) -> Callable[[], None]:
    """A project in ``root`` pulled once (every answer a 200); the callable pulls it again
    (all 304s)."""
    from reportdata import pipeline
    from reportdata.project import load

    write_project(root, base, count)
    project = load(root)

    def run(expect_not_modified: bool = True) -> None:
        results, failures = pipeline.pull_sources(project, project.sources, workers=workers)
        assert not failures, next(iter(failures.values()))
        if expect_not_modified:
            assert all(r.not_modified for r in results.values())

    wall, cpu = timed(lambda: run(expect_not_modified=False))
    print(f"first pull: {wall:.2f} s wall, {cpu:.2f} s CPU for {count} sources (200s)")
    return run


def client_only(base: str, count: int, workers: int, root: Path) -> Callable[[], None]:
    """The callable asks every URL with its ETag over one shared client, as the pipeline does."""
    from reportdata.pull import HttpClient, fetch_url

    asks = [(f"{base}/r/{n}.txt", {"If-None-Match": etag(n)}) for n in range(count)]

    def run() -> None:
        client = HttpClient()
        with client, ThreadPoolExecutor(max_workers=workers) as pool:
            got = list(pool.map(lambda a: fetch_url(a[0], a[1], client=client), asks))
        assert all(g is None for g in got)  # every answer a 304

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--client-only", action="store_true")
    args = parser.parse_args()

    ports: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(args.sources, ports), daemon=True)
    server.start()
    try:
        base = f"http://127.0.0.1:{ports.get(timeout=30)}"
        make = client_only if args.client_only else full_rerun
        with tempfile.TemporaryDirectory(prefix="pull-speed-") as root:
            run = make(base, args.sources, args.workers, Path(root))
            rounds = [timed(run) for _ in range(args.rounds)]
    finally:
        server.kill()
        server.join()
    wall = min(w for w, _ in rounds) / args.sources * 1000
    cpu = min(c for _, c in rounds) / args.sources * 1000
    what = "fetch_url with validators" if args.client_only else "pull_sources rerun"
    print(
        f"{what}: {wall:.3f} ms wall, {cpu:.3f} ms CPU per request "
        f"(best of {args.rounds} rounds, {args.sources} sources, {args.workers} workers)"
    )
    for n, (w, c) in enumerate(rounds, start=1):
        print(f"  round {n}: {w:.3f} s wall, {c:.3f} s CPU")


if __name__ == "__main__":
    main()
