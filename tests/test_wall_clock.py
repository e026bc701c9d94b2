"""Nothing in domain, engine, strategy, risk or execution reads the wall clock itself.

An AST scan (not a grep: comments, docstrings and strings do not count; aliases do) of
every module under those packages. It fails naming ``file:line`` for any reference to
a wall-clock reader: ``time.time``/``time_ns``/``monotonic``/``perf_counter``/``sleep``,
``datetime.now``/``utcnow``/``today``, ``date.today``, ``pandas.Timestamp.now``/
``utcnow``/``today``, however imported (``import time as t``, ``from time import time``,
``from datetime import datetime as dt``); and for a call of a tradewarden function that
reads the wall clock, directly or through other functions (e.g. the ledger's
``utcnow_iso``). The only exception is :class:`tradewarden.engine.clock.WallClock`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "tradewarden"
LAYERS = ("domain", "engine", "strategy", "risk", "execution")

#: Fully qualified names that read or wait on the wall clock.
WALL_CLOCK = frozenset({
    "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns", "time.perf_counter",
    "time.perf_counter_ns", "time.sleep",
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today",
    "datetime.date.today",
    "pandas.Timestamp.now", "pandas.Timestamp.utcnow", "pandas.Timestamp.today",
})

#: file (relative to the repository) -> top-level definitions in it allowed to use the wall clock.
ALLOWED = {"src/tradewarden/engine/clock.py": {"WallClock"}}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    name: str
    top: str            # the top-level definition holding it ("" at module level)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.name}"


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _aliases(tree: ast.Module, module: str) -> dict[str, str]:
    """Local name -> fully qualified name, for imports anywhere in the module and its top-level functions."""
    package = module.rsplit(".", 1)[0] if "." in module else module
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = f"{module}.{node.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    names[a.asname] = a.name
                else:
                    head = a.name.split(".")[0]
                    names[head] = head
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[:len(up) - (node.level - 1)] if node.level > 1 else up
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                names[a.asname or a.name] = f"{base}.{a.name}"
    return names


def _qualified(node: ast.AST, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _qualified(node.value, names)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _tops(tree: ast.Module) -> list[tuple[int, int, str]]:
    return [(n.lineno, n.end_lineno or n.lineno, n.name) for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def scan_source(source: str, path: str, module: str, bad: frozenset[str]) -> list[Finding]:
    """Return every reference to a name in ``bad`` (imports included) in one module's source."""
    tree = ast.parse(source, filename=path)
    names = _aliases(tree, module)
    tops = _tops(tree)

    def top_of(line: int) -> str:
        return next((name for start, end, name in tops if start <= line <= end), "")

    found: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a in node.names:
                q = names.get(a.asname or a.name)
                if q in bad:
                    found.append(Finding(path, node.lineno, f"imports {q}", top_of(node.lineno)))
            continue
        if not (isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load)):
            continue
        hit = _qualified(node, names)
        if hit in bad:
            found.append(Finding(path, node.lineno, hit, top_of(node.lineno)))
    return sorted(found, key=lambda f: (f.line, f.name))


def clock_helpers(package: Path = PACKAGE, src: Path = SRC) -> dict[str, str]:
    """Tradewarden top-level functions that read the wall clock, directly or through others.

    Returns qualified function name -> the wall-clock name or helper it references first.
    """
    modules = {}
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, src)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        modules[module] = (tree, _aliases(tree, module))
    helpers: dict[str, str] = {}
    while True:
        bad = WALL_CLOCK | helpers.keys()
        new = {}
        for module, (tree, names) in modules.items():
            for fn in tree.body:
                q = f"{module}.{getattr(fn, 'name', '')}"
                if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) or q in helpers:
                    continue
                used = sorted((n.lineno, ref) for n in ast.walk(fn)
                              if isinstance(n, (ast.Name, ast.Attribute))
                              and (ref := _qualified(n, names)) in bad)
                if used:
                    new[q] = used[0][1]
        if not new:
            return helpers
        helpers.update(new)


def chain(name: str, helpers: dict[str, str]) -> str:
    """Return ``name -> ... -> wall-clock name`` through the helpers."""
    links = [name]
    while links[-1] in helpers and len(links) < 20:
        links.append(helpers[links[-1]])
    return " -> ".join(links)


def scan_layers(root: Path = SRC.parent) -> tuple[list[Finding], list[Finding], dict[str, str]]:
    """Return (forbidden, allowed) findings over every module of the trading layers, and the helpers."""
    helpers = clock_helpers(root / "src" / "tradewarden", root / "src")
    bad = WALL_CLOCK | helpers.keys()
    forbidden, allowed = [], []
    for layer in LAYERS:
        for path in sorted((root / "src" / "tradewarden" / layer).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for f in scan_source(path.read_text(encoding="utf-8"), rel,
                                 module_name(path, root / "src"), frozenset(bad)):
                (allowed if f.top in ALLOWED.get(rel, ()) else forbidden).append(f)
    return forbidden, allowed, helpers


# ---------------------------------------------------------------------------- the check
@pytest.fixture(scope="module")
def repo_scan() -> tuple[list[Finding], list[Finding], dict[str, str]]:
    """One scan of this repository's sources for the tests below."""
    return scan_layers()


def test_trading_layers_do_not_read_the_wall_clock(repo_scan) -> None:
    forbidden, _, helpers = repo_scan
    assert not forbidden, ("the wall clock is read outside engine/clock.py's WallClock "
                           "(take the time from the Clock instead):\n" + "\n".join(
                               f"{f.path}:{f.line}: {'imports ' * f.name.startswith('imports ')}"
                               f"{chain(f.name.removeprefix('imports '), helpers)}"
                               for f in forbidden))


def test_allow_list_is_exact_and_used(repo_scan) -> None:
    """Every allow-listed definition exists and really is caught (the exception is needed)."""
    _, allowed, _ = repo_scan
    used = {(f.path, f.top) for f in allowed}
    assert used == {(path, top) for path, tops in ALLOWED.items() for top in tops}
    assert {f.name for f in allowed} >= {"time.time", "time.sleep"}


# ---------------------------------------------------------------------- the scanner itself
PLANTED = '''\
import time
import time as t
import datetime as dt
from time import perf_counter, sleep as nap
from datetime import date, datetime
from datetime import datetime as DT
import pandas as pd
from tradewarden.ledger.store import utcnow_iso

"""time.time() in a docstring is not a call"""
# time.sleep(1) in a comment is not either


def f(clock_fn=time.monotonic):
    a = t.time_ns()
    b = dt.datetime.utcnow()
    c = perf_counter()
    nap(0.5)
    d = date.today()
    e = DT.now()
    g = datetime.today()
    h = pd.Timestamp.now()
    datetime.fromtimestamp(0)          # converting a timestamp is fine
    return utcnow_iso()


class Stamper:
    def stamp(self):
        return dt.date.today()
'''


def _planted(bad=None) -> list[str]:
    found = scan_source(PLANTED, "planted.py", "planted", bad or WALL_CLOCK | {
        "tradewarden.ledger.store.utcnow_iso"})
    return [str(f) for f in found]


def test_scanner_catches_planted_wall_clock_reads() -> None:
    assert _planted() == [
        "planted.py:4: imports time.perf_counter",
        "planted.py:4: imports time.sleep",
        "planted.py:8: imports tradewarden.ledger.store.utcnow_iso",
        "planted.py:14: time.monotonic",
        "planted.py:15: time.time_ns",
        "planted.py:16: datetime.datetime.utcnow",
        "planted.py:17: time.perf_counter",
        "planted.py:18: time.sleep",
        "planted.py:19: datetime.date.today",
        "planted.py:20: datetime.datetime.now",
        "planted.py:21: datetime.datetime.today",
        "planted.py:22: pandas.Timestamp.now",
        "planted.py:24: tradewarden.ledger.store.utcnow_iso",
        "planted.py:29: datetime.date.today",
    ]


def test_scanner_ignores_clean_code() -> None:
    clean = ("from datetime import datetime, timezone\nimport time\n\n"
             "def iso(ts):\n    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()\n\n"
             "def wait(clock, ts):\n    clock.wait_until(ts)\n    return clock.now()\n")
    assert scan_source(clean, "clean.py", "clean", WALL_CLOCK) == []


def test_helpers_are_found_transitively(tmp_path) -> None:
    pkg = tmp_path / "src" / "tradewarden"
    (pkg / "ledger").mkdir(parents=True)
    (pkg / "engine").mkdir()
    for d in (pkg, pkg / "ledger", pkg / "engine"):
        (d / "__init__.py").write_text("")
    (pkg / "ledger" / "stamps.py").write_text(
        "from datetime import datetime, timezone\n\n"
        "def now_iso():\n    return datetime.now(timezone.utc).isoformat()\n\n"
        "def stamped(row):\n    return {**row, 'at': now_iso()}\n\n"
        "def pure(row):\n    return dict(row)\n")
    (pkg / "engine" / "runner.py").write_text(
        "from tradewarden.ledger import stamps\n"
        "from tradewarden.ledger.stamps import pure\n\n"
        "def run(row):\n    pure(row)\n    return stamps.stamped(row)\n")
    helpers = clock_helpers(pkg, tmp_path / "src")
    assert helpers == {"tradewarden.ledger.stamps.now_iso": "datetime.datetime.now",
                       "tradewarden.ledger.stamps.stamped": "tradewarden.ledger.stamps.now_iso",
                       "tradewarden.engine.runner.run": "tradewarden.ledger.stamps.stamped"}
    assert chain("tradewarden.engine.runner.run", helpers) == (
        "tradewarden.engine.runner.run -> tradewarden.ledger.stamps.stamped"
        " -> tradewarden.ledger.stamps.now_iso -> datetime.datetime.now")
    forbidden, allowed, _ = scan_layers(tmp_path)
    assert [str(f) for f in forbidden] == [
        "src/tradewarden/engine/runner.py:6: tradewarden.ledger.stamps.stamped"]
    assert allowed == []
