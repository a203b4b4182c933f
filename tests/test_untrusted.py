"""Untrusted files: sources.yaml, a cloned project's raw/, a datapackage.json, network bodies.

No path they name may leave its folder (``..``, absolute paths, symbolic links); YAML is
loaded safely; SQL names are quoted; no shell is spawned; every network read has a limit.
The catalog page's escaping of a ``<script>`` title is tested in test_catalog.py.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest
from _helpers import REPO, SENTENCES, make_project, run_cli
from test_bad_input import tree
from test_cli import one_error_line

from reportdata import read
from reportdata.adding import add_reports
from reportdata.download import DownloadError, download
from reportdata.errors import ProjectError, PullError
from reportdata.project import load
from reportdata.pull import pull
from reportdata.schema import quote_ident, quote_literal

SRC = REPO / "src" / "reportdata"
FLOWS = REPO / "flows"
SOURCE = "lixia-2021-qilu"
SOURCE_PATH = "raw/embedded/lixia-2021-qilu.txt"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)


def registry(root: Path) -> str:
    return (root / "sources.yaml").read_text(encoding="utf-8")


def set_registry(root: Path, text: str) -> None:
    assert text != registry(root)
    (root / "sources.yaml").write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------ sources.yaml ids


@pytest.mark.parametrize(
    "bad_id",
    ["../x", "../../x", "/tmp/x", "x/../../y", "..", ".", "x\n", "X", "raw/x", "x y", ""],
)
def test_source_ids_that_are_not_plain_names_are_refused(project: Path, bad_id: str) -> None:
    set_registry(project, registry(project).replace(f"id: {SOURCE}", f"id: {json.dumps(bad_id)}"))
    with pytest.raises(ProjectError, match="id of lower-case letters"):
        load(project)


def test_an_id_leading_out_of_raw_creates_no_folder(project: Path) -> None:
    set_registry(project, registry(project).replace(f"id: {SOURCE}", "id: ../escaped"))
    before = tree(project.parent)
    line = one_error_line(run_cli("pull", cwd=project))
    assert "'../escaped'" in line
    assert tree(project.parent) == before
    assert not (project / "escaped").exists() and not (project.parent / "escaped").exists()


@pytest.mark.parametrize(
    "args",
    [("--id", "../escaped"), ("--id", "/tmp/escaped"), ("-d", "../escaped")],
    ids=["id-dot-dot", "id-absolute", "dataset-dot-dot"],
)
def test_add_refuses_ids_and_datasets_that_are_paths(
    project: Path, tmp_path: Path, args: tuple[str, str]
) -> None:
    report = tmp_path / "town.txt"
    report.write_text(SENTENCES, encoding="utf-8")
    extra = ("-d", "towns") if args[0] == "--id" else ()
    before = tree(project.parent)
    line = one_error_line(run_cli("add", str(report), *args, *extra, cwd=project))
    assert "lower-case" in line
    assert tree(project.parent) == before


# ------------------------------------------------------------------------------ safe YAML


@pytest.mark.parametrize(
    "tag",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/apply:subprocess.call [["touch", "{marker}"]]',
        '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
        "!!python/name:os.system",
    ],
    ids=["apply-os-system", "apply-subprocess", "new-popen", "name"],
)
def test_python_tags_in_sources_yaml_are_refused_and_nothing_runs(
    project: Path, tmp_path: Path, tag: str
) -> None:
    marker = tmp_path / "ran"
    text = registry(project).replace(
        "publisher: 齐鲁", f"note: {tag.format(marker=marker)}\n    publisher: 齐鲁"
    )
    set_registry(project, text)
    before = tree(project)
    for command in ("validate", "pull"):
        line = one_error_line(run_cli(command, cwd=project))
        assert "!!python/" in line and "not allowed" in line, line
    assert not marker.exists()
    assert tree(project) == before


# ------------------------------------------------------------------------------ symlinks in raw/


def outside(project: Path) -> Path:
    folder = project.parent / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "keep.txt").write_text("外部文件\n", encoding="utf-8")
    return folder


def link_snapshot_folder(project: Path) -> None:
    (project / "raw" / SOURCE).symlink_to(outside(project), target_is_directory=True)


def link_raw(project: Path) -> None:
    target = outside(project)
    shutil.move(project / "raw" / "embedded", target / "embedded")
    (project / "raw").rmdir()
    (project / "raw").symlink_to(target, target_is_directory=True)


def link_manifest(project: Path) -> None:
    (project / "raw" / SOURCE).mkdir()
    (project / "raw" / SOURCE / "manifest.json").symlink_to(outside(project) / "keep.txt")


@pytest.mark.parametrize(
    ("breaks", "words"),
    [
        (link_snapshot_folder, f"raw/{SOURCE} is a symbolic link"),
        (link_raw, "outside the project folder"),
        (link_manifest, "manifest.json is a symbolic link"),
    ],
    ids=["snapshot-folder", "raw", "manifest"],
)
def test_a_pull_never_writes_or_reads_through_a_link_out_of_raw(
    project: Path, breaks, words: str
) -> None:
    breaks(project)
    before = tree(project.parent)
    for command in ("pull", "validate"):
        line = one_error_line(run_cli(command, cwd=project))
        assert words in line, line
    assert tree(project.parent) == before


def test_add_never_copies_through_a_dangling_link(project: Path, tmp_path: Path) -> None:
    """A cloned project may hold raw/embedded/<id>.txt pointing at a file that is not there
    yet: copying the report 'into' it would create that file outside the project."""
    report = tmp_path / "town.txt"
    report.write_text(SENTENCES, encoding="utf-8")
    target = tmp_path / "elsewhere" / "planted.txt"
    target.parent.mkdir()
    (project / "raw" / "embedded" / "town.txt").symlink_to(target)
    before = tree(tmp_path)
    line = one_error_line(run_cli("add", str(report), "-d", "towns", cwd=project))
    assert "raw/embedded/town.txt already exists" in line
    assert not target.exists()
    assert tree(tmp_path) == before


def test_add_never_copies_into_an_embedded_folder_outside(project: Path, tmp_path: Path) -> None:
    report = tmp_path / "town.txt"
    report.write_text(SENTENCES, encoding="utf-8")
    elsewhere = outside(project)
    set_registry(project, registry(project).replace(SOURCE_PATH, "raw/kept/lixia-2021-qilu.txt"))
    shutil.move(project / "raw" / "embedded", project / "raw" / "kept")
    (project / "raw" / "embedded").symlink_to(elsewhere, target_is_directory=True)
    before = tree(project.parent)
    with pytest.raises(ProjectError, match="leads outside the project"):
        add_reports(project, [str(report)], dataset="towns")
    assert tree(project.parent) == before


# ------------------------------------------------------------------------------ datapackage.json


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A published version of the project's dataset (library steps, no Prefect)."""
    from reportdata import pipeline

    root = make_project(tmp_path_factory.mktemp("package"))
    proj = load(root)
    parts = [pipeline.extract_source(proj, s, pull(proj, s).snapshot) for s in proj.sources]
    return pipeline.release(proj, "lixia", pipeline.frames(pipeline.merge(parts))).path


def copy_package(package: Path, into: Path) -> tuple[Path, dict]:
    folder = into / "pkg"
    shutil.copytree(package, folder)
    return folder, json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))


def save(folder: Path, descriptor: dict) -> Path:
    path = folder / "datapackage.json"
    path.write_text(json.dumps(descriptor), encoding="utf-8")
    return path


def resource(descriptor: dict, name: str) -> dict:
    return next(r for r in descriptor["resources"] if r["name"] == name)


@pytest.mark.parametrize("how", ["dot-dot", "absolute", "symlink"])
def test_validate_refuses_a_package_whose_files_lie_outside_it(
    package: Path, tmp_path: Path, how: str
) -> None:
    folder, descriptor = copy_package(package, tmp_path)
    secret = tmp_path / "secret.json"
    shutil.copyfile(folder / "indicators.json", secret)  # the same rows, so hashes match
    item = resource(descriptor, "indicators-json")
    if how == "dot-dot":
        item["path"] = "../secret.json"
    elif how == "absolute":
        item["path"] = str(secret)
    else:
        (folder / "indicators.json").unlink()
        (folder / "indicators.json").symlink_to(secret)
    path = save(folder, descriptor)
    line = one_error_line(run_cli("validate", "--package", str(path), cwd=tmp_path))
    assert "'indicators-json'" in line and "outside the package folder" in line


def test_validate_reports_json_rows_it_cannot_read_as_invalid(
    package: Path, tmp_path: Path
) -> None:
    """Bytes and hash can be made to match any file: rows that are not row objects are an
    INVALID package, not a crash."""
    folder, descriptor = copy_package(package, tmp_path)
    bad = b'["not a row", 1]\n'
    (folder / "documents.json").write_bytes(bad)
    resource(descriptor, "documents-json").update(
        bytes=len(bad), hash="sha256:" + hashlib.sha256(bad).hexdigest()
    )
    path = save(folder, descriptor)
    result = run_cli("validate", "--package", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{path}: INVALID. documents.json cannot be read as the documents table" in result.stdout


def test_validate_refuses_a_version_that_is_a_path(project: Path) -> None:
    line = one_error_line(run_cli("validate", "lixia", "--version", "../../..", cwd=project))
    assert "not a version number" in line


@pytest.mark.parametrize("version", ["../../escaped", "/tmp/escaped", "..", "a/b"])
def test_download_refuses_a_version_that_is_a_path(
    package: Path, tmp_path: Path, version: str
) -> None:
    folder, descriptor = copy_package(package, tmp_path)
    descriptor["version"] = version
    path = save(folder, descriptor)
    out = tmp_path / "out"
    out.mkdir()
    before = tree(tmp_path)
    with pytest.raises(DownloadError, match="not a folder name"):
        download(str(path), out)
    assert tree(tmp_path) == before


# ------------------------------------------------------------------------------ SQL


HOSTILE = 'x"; DROP TABLE keep; --'


def test_quoted_hostile_names_stay_names_in_duckdb() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE keep (a INTEGER)")
    table, column = quote_ident(HOSTILE), quote_ident('c" INTEGER, d "')
    con.execute(f"CREATE TABLE {table} ({column} VARCHAR)")
    con.execute(f"INSERT INTO {table} VALUES ({quote_literal(HOSTILE)})")
    con.execute(f"COMMENT ON TABLE {table} IS {quote_literal(HOSTILE)}")
    names = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert names == {"keep", HOSTILE}
    assert con.execute(f"SELECT * FROM {table}").fetchall() == [(HOSTILE,)]
    columns = con.execute(f"SELECT * FROM {table}").description
    assert [c[0] for c in columns] == ['c" INTEGER, d "']
    comment = con.execute(
        "SELECT comment FROM duckdb_tables() WHERE table_name = ?", [HOSTILE]
    ).fetchone()
    assert comment == (HOSTILE,)


def _modules(*folders: Path) -> Iterator[tuple[Path, ast.Module]]:
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _called(node: ast.AST) -> str:
    """The dotted name a call calls (``con.execute``, ``quote_ident``), or ''."""
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        inner = _called(func.value) if isinstance(func.value, ast.Name | ast.Attribute) else "?"
        return f"{inner}.{func.attr}"
    return ""


QUOTERS = {"quote_ident", "quote_literal"}
# Variables that hold SQL that is not a name and so cannot be quoted, reviewed by hand:
# (module, function) -> names. _create_table's column types come from _column_type (a fixed
# table of DuckDB types) or are constants at every call. _made_catalog runs the statements a
# `_Recorder` took from `_create_schema`'s own execute calls, each checked here where it is built.
TRUSTED_VARIABLES = {
    ("warehouse.py", "_create_table"): {"t"},
    ("warehouse.py", "_made_catalog"): {"statement"},
}
# Calls whose result is SQL text of our own making, checked elsewhere: DuckDB type names from
# a fixed table, numbers, the schema DDL and the warehouse's document condition (both built
# with quote_ident/quote_literal; see test_the_trusted_builders_quote_what_they_are_given).
TRUSTED_CALLS = {"_column_type", "duckdb_ddl", "_among_documents", "max", "min", "len", "int"}
SQL_METHODS = {"execute", "executemany", "sql", "query", "from_query"}


class _SqlCheck:
    """Is an expression SQL built only from constants and quoted names, in one function?"""

    def __init__(
        self,
        function: ast.AST,
        trusted: frozenset[str] = frozenset(),
        module: ast.Module | None = None,
    ) -> None:
        self.trusted = trusted
        self.bindings: dict[str, list[ast.AST]] = {}
        # The module's own top-level constants (a tuple of queries, say), checked the same way.
        self.module: dict[str, list[ast.AST]] = {}
        for statement in module.body if module else []:
            if isinstance(statement, ast.Assign | ast.AnnAssign) and statement.value:
                targets = (
                    statement.targets if isinstance(statement, ast.Assign) else [statement.target]
                )
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.module.setdefault(target.id, []).append(statement.value)
        for node in ast.walk(function):
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign) and node.value:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            self.bindings.setdefault(name.id, []).append(node.value)
            elif isinstance(node, ast.For | ast.comprehension):
                for name in ast.walk(node.target):
                    if isinstance(name, ast.Name):
                        self.bindings.setdefault(name.id, []).append(node.iter)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"append", "extend"}
                and isinstance(node.func.value, ast.Name)
            ):
                self.bindings.setdefault(node.func.value.id, []).extend(node.args)

    def safe(self, node: ast.AST, seen: frozenset[str] = frozenset()) -> bool:
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.JoinedStr):
            return all(self.safe(v, seen) for v in node.values)
        if isinstance(node, ast.FormattedValue):
            return self.safe(node.value, seen)
        if isinstance(node, ast.BinOp):
            return self.safe(node.left, seen) and self.safe(node.right, seen)
        if isinstance(node, ast.IfExp):
            return self.safe(node.body, seen) and self.safe(node.orelse, seen)
        if isinstance(node, ast.List | ast.Tuple):
            return all(self.safe(e, seen) for e in node.elts)
        if isinstance(node, ast.GeneratorExp | ast.ListComp):
            return self.safe(node.elt, seen)
        if isinstance(node, ast.Call):
            name = _called(node).rsplit(".", 1)[-1]
            if name in QUOTERS or name in TRUSTED_CALLS:
                return True
            if name == "join":  # "sep".join(parts)
                return all(self.safe(a, seen) for a in [node.func.value, *node.args])
            return False
        if isinstance(node, ast.Name):
            if node.id in self.trusted:
                return True
            if node.id in seen:
                return True
            found = self.bindings.get(node.id) or self.module.get(node.id)
            if not found:
                return False
            return all(self.safe(v, seen | {node.id}) for v in found)
        return False


def test_src_builds_no_sql_from_unquoted_names() -> None:
    """Every SQL string handed to DuckDB is a constant, or is built only from constants,
    quote_ident/quote_literal results and the trusted calls above (followed through the
    function's own variables)."""
    checked, unsafe = 0, []
    for path, module in _modules(SRC):
        functions = [n for n in ast.walk(module) if isinstance(n, ast.FunctionDef)]
        for function in functions:
            trusted = TRUSTED_VARIABLES.get((path.name, function.name), set())
            check = _SqlCheck(function, frozenset(trusted), module)
            for node in ast.walk(function):
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                if _called(node).rsplit(".", 1)[-1] not in SQL_METHODS:
                    continue
                checked += 1
                if not check.safe(node.args[0]):
                    unsafe.append(f"{path.name}:{node.lineno}: {ast.unparse(node.args[0])[:80]}")
    assert checked > 5  # the check does see the warehouse's statements
    assert unsafe == []


def test_the_sql_check_catches_a_formatted_name() -> None:
    code = (
        "def f(con, name, rows):\n"
        "    cols = ', '.join(rows)\n"
        "    con.execute(f'SELECT {cols} FROM {quote_ident(name)}')\n"
        "    con.execute(f'DROP TABLE {name}')\n"
    )
    function = ast.parse(code).body[0]
    calls = [
        n for n in ast.walk(function) if isinstance(n, ast.Call) and _called(n) == "con.execute"
    ]
    check = _SqlCheck(function)
    assert [check.safe(c.args[0]) for c in calls] == [False, False]
    fixed = ast.parse(code.replace("', '.join(rows)", "', '.join(quote_ident(r) for r in rows)"))
    check = _SqlCheck(fixed.body[0])
    calls = [n for n in ast.walk(fixed) if isinstance(n, ast.Call) and _called(n) == "con.execute"]
    assert [check.safe(c.args[0]) for c in calls] == [True, False]


def test_the_sql_check_follows_module_constants_through_comprehensions() -> None:
    code = (
        "QUERIES = ('SELECT 1', 'SELECT ' + quote_literal('x'))\n"
        "LEAKY = ('SELECT 1', f'SELECT {TABLE}')\n"
        "def f(con):\n"
        "    return [con.execute(sql) for sql in QUERIES]\n"
        "def g(con):\n"
        "    return [con.execute(sql) for sql in LEAKY]\n"
    )
    module = ast.parse(code)
    verdicts = []
    for function in module.body[2:]:
        check = _SqlCheck(function, module=module)
        [call] = [n for n in ast.walk(function) if isinstance(n, ast.Call)]
        verdicts.append(check.safe(call.args[0]))
    assert verdicts == [True, False]


# ------------------------------------------------------------------------------ no shell


SHELL_CALLS = {
    "os.system", "os.popen", "os.execl", "os.execle", "os.execlp", "os.execlpe", "os.execv",
    "os.execve", "os.execvp", "os.execvpe", "os.spawnl", "os.spawnle", "os.spawnlp",
    "os.spawnlpe", "os.spawnv", "os.spawnve", "os.spawnvp", "os.spawnvpe", "os.posix_spawn",
    "os.posix_spawnp", "pty.spawn", "subprocess.getoutput", "subprocess.getstatusoutput",
}  # fmt: skip


def test_no_shell_is_spawned_from_src_or_flows() -> None:
    found = []
    for path, module in _modules(SRC, FLOWS):
        for node in ast.walk(module):
            if not isinstance(node, ast.Call):
                continue
            name = _called(node)
            if name in SHELL_CALLS:
                found.append(f"{path.name}:{node.lineno}: {name}")
            for keyword in node.keywords:
                if keyword.arg == "shell" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    found.append(f"{path.name}:{node.lineno}: shell={ast.unparse(keyword.value)}")
    assert found == []


# ------------------------------------------------------------------------------ network limits


NETWORK_LIBRARIES = {
    "httpx", "requests", "urllib3", "aiohttp", "http.client", "urllib.request", "fsspec",
    "pycurl",
}  # fmt: skip
# Modules that speak only to the user's own services, reviewed by hand: their reads are not
# size-limited (see docs/reliability.md), as they never fetch what a stranger serves.
OWN_SERVICES = {
    "remote.py": "mirrors published/ to the user's own fsspec target (S3, a folder)",
    "runner.py": "checks the health of the user's own Prefect server (run and serve)",
    "deployments.py": "tells the user's own Prefect server lost while serving",
}


def test_only_the_modules_tested_below_read_from_the_network() -> None:
    """A new module that speaks HTTP must get a size limit and a test here."""
    users = set()
    for path, module in _modules(SRC, FLOWS):
        for node in ast.walk(module):
            if isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
            else:
                continue
            if {n.split(".")[0] for n in names} & NETWORK_LIBRARIES or names & NETWORK_LIBRARIES:
                users.add(path.name)
    assert users == {"pull.py", "download.py", *OWN_SERVICES}


@dataclass
class Flood:
    """A server whose every path answers 200 with an endless body (capped for safety)."""

    base: str
    cap: int
    sent: list[int] = field(default_factory=list)  # bytes sent per request
    done: threading.Event = field(default_factory=threading.Event)


@contextmanager
def flood(
    cap: int = 32 << 20, content_type: str = "text/plain", fixed: dict[str, bytes] | None = None
) -> Iterator[Flood]:
    """Serve ``cap`` bytes per request with no Content-Length, so only the client's own
    limit can stop it; records how much each request really sent. Paths in ``fixed`` get
    their bytes instead."""
    state: Flood

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if fixed and self.path in fixed:
                self.send_response(200)
                self.send_header("Content-Length", str(len(fixed[self.path])))
                self.end_headers()
                self.wfile.write(fixed[self.path])
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Connection", "close")
            self.end_headers()
            block, sent = ("2023年收入8.6亿元。" * 400).encode("utf-8"), 0
            try:
                while sent < state.cap:
                    self.wfile.write(block)
                    sent += len(block)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                state.sent.append(sent)
                state.done.set()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Flood(f"http://127.0.0.1:{server.server_address[1]}", cap)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


LIMIT = 64 << 10


def web_project(tmp_path: Path, url: str) -> Path:
    root = tmp_path / "web"
    (root / "raw").mkdir(parents=True)
    (root / "sources.yaml").write_text(
        "datasets:\n  web:\n    title: Web\n    licence: other-at\n"
        f"sources:\n  - id: page\n    dataset: web\n    url: {url}\n",
        encoding="utf-8",
    )
    return root


def assert_stopped_early(server: Flood) -> None:
    assert server.done.wait(30)
    assert server.sent and max(server.sent) < server.cap  # the client hung up long before


def test_pull_stops_reading_at_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read, "MAX_BYTES", LIMIT)
    with flood() as server:
        root = web_project(tmp_path, server.base + "/report.txt")
        before = tree(root)
        proj = load(root)
        with pytest.raises(PullError, match=f"larger than the {LIMIT} bytes limit"):
            pull(proj, proj.sources[0])
        assert_stopped_early(server)
    assert tree(root) == before


def test_add_of_a_url_stops_reading_at_its_limit(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "MAX_BYTES", LIMIT)
    before = tree(project)
    with flood() as server:
        with pytest.raises(PullError, match="larger than"):
            add_reports(project, [server.base + "/report.html"], dataset="web")
        assert_stopped_early(server)
    assert tree(project) == before


def test_download_stops_reading_a_descriptor_at_its_limit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with flood(content_type="application/json") as server:
        with pytest.raises(DownloadError, match="larger than the 64 KiB limit"):
            download(server.base + "/datapackage.json", out, max_metadata_bytes=LIMIT)
        assert_stopped_early(server)
    assert list(out.iterdir()) == []


def test_download_stops_reading_a_catalog_at_its_limit(tmp_path: Path) -> None:
    with flood(content_type="application/json") as server:
        with pytest.raises(DownloadError, match="larger than the 64 KiB limit"):
            download(
                server.base + "/catalog.json", tmp_path, dataset="lixia", max_metadata_bytes=LIMIT
            )
        assert_stopped_early(server)


def test_download_stops_reading_a_resource_at_its_limit(tmp_path: Path) -> None:
    """A descriptor that states no size for a resource the server sends without end."""
    descriptor = {
        "name": "flood",
        "version": "1.0.0",
        "resources": [{"name": "rows", "path": "rows.csv", "hash": "sha256:" + "0" * 64}],
    }
    fixed = {"/flood/1.0.0/datapackage.json": json.dumps(descriptor).encode("utf-8")}
    out = tmp_path / "out"
    out.mkdir()
    with flood(fixed=fixed) as server:
        with pytest.raises(DownloadError, match=r"'rows'.*larger than the 64 KiB limit"):
            download(server.base + "/flood/1.0.0/datapackage.json", out, max_bytes=LIMIT)
        assert_stopped_early(server)
    assert list(out.iterdir()) == []


def test_every_limit_is_finite() -> None:
    from reportdata import download as dl

    for limit in (read.MAX_BYTES, dl.DEFAULT_MAX_BYTES, dl.METADATA_MAX_BYTES):
        assert isinstance(limit, int) and 0 < limit <= 1 << 30


def test_the_flood_server_really_floods() -> None:
    """Without a limit the body would go on: the server sends its whole cap to a reader."""
    import httpx

    with flood(cap=1 << 20) as server, httpx.stream("GET", server.base + "/x") as resp:
        total = sum(len(c) for c in resp.iter_bytes())
    assert total >= 1 << 20


def test_the_trusted_builders_quote_what_they_are_given() -> None:
    from reportdata.warehouse import _among_documents

    hostile = {"x') OR true --", 'y"; DROP TABLE versions; --'}
    condition = _among_documents(hostile)
    assert condition == ("\"document_id\" IN ('x'') OR true --', 'y\"; DROP TABLE versions; --')")
    assert _among_documents(set()) == "false"
