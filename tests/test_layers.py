"""Imports point downward only: no module of tradewarden imports a higher layer.

An AST scan (comments and strings do not count) of every module under
``src/tradewarden``: every ``import`` and ``from ... import`` wherever it stands (module
level, inside functions, under ``TYPE_CHECKING``), relative imports resolved, and
``importlib.import_module("tradewarden....")`` with a literal name. It fails naming
``file:line`` and both layers for each import of a higher layer.

The layers, lowest first (``../shared/ARCHITECTURE.md``, "Layers"; ``ARCHITECTURE.md``
for where each package lives):

====  ============  ==========================================================
rank  layer         modules
====  ============  ==========================================================
0     domain        ``tradewarden.domain``; ``tradewarden._io`` (atomic file
                    writes, standard library only: a leaf utility)
1     ledger        ``tradewarden.ledger``
1     analytics     ``tradewarden.analytics``: may read ``tradewarden.ledger.schema``
                    (the tables it reports from), nothing else of the ledger
2     data          ``tradewarden.data``
3     execution     ``tradewarden.execution``
4     risk          ``tradewarden.risk``
5     strategy      ``tradewarden.strategy``
6     engine        ``tradewarden.engine``
7     agent         ``tradewarden.agent``
8     ops           ``tradewarden.ops``; ``tradewarden.ml`` (the ML pipeline: its backtest
                    replays through the kernel, the daemon runs its jobs)
9     interfaces    ``tradewarden`` (the package root: ``tradewarden.replay`` is the
                    API), ``tradewarden.cli*``, ``api``, ``bench``, ``settings``
                    (configuration read by the CLI and the API), ``__main__``,
                    ``tradewarden.web`` (the REST API and dashboard, ``warden serve``)
====  ============  ==========================================================

A module may import its own package and any lower rank; ledger and analytics are peers
(neither imports the other, except analytics reading the ledger schema).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: top-level name under ``tradewarden`` -> (rank, layer)
LAYER_OF: dict[str, tuple[int, str]] = {
    "domain": (0, "domain"), "_io": (0, "domain"), "_version": (0, "domain"),
    "ledger": (1, "ledger"), "analytics": (1, "analytics"),
    "data": (2, "data"),
    "execution": (3, "execution"),
    "risk": (4, "risk"),
    "strategy": (5, "strategy"),
    "engine": (6, "engine"),
    "agent": (7, "agent"),
    "ops": (8, "ops"), "ml": (8, "ops"),
    "": (9, "interfaces"), "api": (9, "interfaces"), "bench": (9, "interfaces"),
    "settings": (9, "interfaces"), "__main__": (9, "interfaces"),
    "web": (9, "interfaces"),
}
INTERFACE_PREFIX = "cli"       # tradewarden.cli, cli_common, cli_data, ...

#: Same-rank imports the architecture allows: (importer layer, imported module prefix).
PEER_ALLOWED = {("analytics", "tradewarden.ledger.schema")}

#: Upward imports in today's code, each reported to the lead; the test fails if one of
#: them disappears (remove it here then) or any other appears.
KNOWN: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    importer: str
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported} ({self.why})"


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> tuple[int, str] | None:
    """(rank, layer) of a ``tradewarden`` module, or None if no layer claims it."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top.startswith(INTERFACE_PREFIX):
        return 9, "interfaces"
    return LAYER_OF.get(top)


def imports(tree: ast.AST, module: str, is_package: bool, known: set[str]):
    """Yield (line, imported module) for every tradewarden import in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:      # `from pkg import submodule` imports the submodule
                sub = f"{target}.{a.name}"
                yield node.lineno, sub if sub in known else target
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value


def scan(src: Path) -> tuple[list[Finding], list[str]]:
    """Return (upward imports, modules no layer claims) of the package under ``src``."""
    files = sorted((src / "tradewarden").rglob("*.py"))
    known = {module_name(p, src) for p in files}
    found: list[Finding] = []
    unplaced: list[str] = []
    for path in files:
        mod = module_name(path, src)
        mine = layer(mod)
        if mine is None:
            unplaced.append(mod)
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in imports(tree, mod, path.name == "__init__.py", known):
            if target != "tradewarden" and not target.startswith("tradewarden."):
                continue
            theirs = layer(target)
            rel = path.relative_to(src.parent).as_posix()
            if theirs is None:
                found.append(Finding(rel, line, mod, target, "imported module has no layer"))
                continue
            same_package = target.split(".")[:2] == mod.split(".")[:2]
            if theirs[0] > mine[0]:
                found.append(Finding(rel, line, mod, target,
                                     f"{mine[1]} (rank {mine[0]}) imports {theirs[1]} (rank {theirs[0]})"))
            elif (theirs[0] == mine[0] and theirs[1] != mine[1] and not same_package
                  and not any(mine[1] == who and (target == p or target.startswith(p + "."))
                              for who, p in PEER_ALLOWED)):
                found.append(Finding(rel, line, mod, target,
                                     f"{mine[1]} imports its peer {theirs[1]}"))
    return found, unplaced


def test_no_module_imports_a_higher_layer():
    found, unplaced = scan(SRC)
    assert unplaced == [], f"modules no layer claims (add them to LAYER_OF): {unplaced}"
    new = [f for f in found if (f.importer, f.imported) not in KNOWN]
    assert new == [], "imports pointing up a layer:\n" + "\n".join(map(str, new))
    gone = set(KNOWN) - {(f.importer, f.imported) for f in found}
    assert not gone, f"fixed, remove from KNOWN: {sorted(gone)}"


def test_the_scan_catches_planted_upward_imports(tmp_path):
    """A copy-sized fake package: the scan must name each planted import by file and line."""
    pkg = tmp_path / "src" / "tradewarden"
    files = {
        "__init__.py": "",
        "domain/__init__.py": "",
        "domain/values.py": "import os\n\n\ndef f():\n    from tradewarden.engine.engine import TradingEngine\n",
        "domain/rel.py": "from ..ledger import store\n",
        "ledger/__init__.py": "",
        "ledger/store.py": "from tradewarden.domain import values\nfrom tradewarden.analytics import report\n",
        "analytics/__init__.py": "",
        "analytics/report.py": "from tradewarden.ledger.schema import runs\nfrom tradewarden.ledger import store\n",
        "ledger/schema.py": "",
        "engine/__init__.py": "",
        "engine/engine.py": "import tradewarden.agent\nfrom tradewarden import execution\n",
        "execution/__init__.py": "",
        "agent/__init__.py": "",
        "risk/__init__.py": "import importlib\nimportlib.import_module('tradewarden.strategy')\n",
        "strategy/__init__.py": "",
        "cli_extra.py": "from tradewarden.ops import kernel\n",
        "ops/__init__.py": "",
        "ops/kernel.py": "",
        "mystery.py": "",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    found, unplaced = scan(tmp_path / "src")
    assert unplaced == ["tradewarden.mystery"]
    got = {(f.path, f.line, f.imported) for f in found}
    assert got == {
        ("src/tradewarden/domain/values.py", 5, "tradewarden.engine.engine"),   # inside a function
        ("src/tradewarden/domain/rel.py", 1, "tradewarden.ledger.store"),       # relative
        ("src/tradewarden/ledger/store.py", 2, "tradewarden.analytics.report"),  # peer
        ("src/tradewarden/analytics/report.py", 2, "tradewarden.ledger.store"),  # peer beyond the schema
        ("src/tradewarden/engine/engine.py", 1, "tradewarden.agent"),
        ("src/tradewarden/risk/__init__.py", 2, "tradewarden.strategy"),        # import_module
    }
    assert "src/tradewarden/domain/values.py:5: tradewarden.domain.values imports tradewarden.engine.engine " \
           "(domain (rank 0) imports engine (rank 6))" in {str(f) for f in found}
