"""Load a strategy class from a ``--strategy`` spec and say where its code came from.

Four kinds of spec, tried in this order:

``donchian``, ``ema_rsi``
    A built-in (:data:`tradewarden.strategy.STRATEGIES`).
``path/to/file.py:ClassName`` (or ``path/to/file.py`` when it defines one strategy)
    A Python file, executed as a fresh module named after its content hash; for its
    top-level imports the file's directory is on ``sys.path`` while it runs.
``package.module:ClassName``
    An importable module (installed, or on ``PYTHONPATH``).
``name``
    An entry point of the ``tradewarden.strategies`` group, declared by an installed
    distribution (``[project.entry-points."tradewarden.strategies"]`` in its
    ``pyproject.toml``: ``name = "package.module:ClassName"``).

Each load also yields the *source* string stored in ``RunConfig.strategy_source``
(and so covered by the run's config hash):

* ``builtin:tradewarden==<version>``
* ``file:<absolute path>#sha256=<hex digest of the file's bytes>``
* ``module:<module>#<dist>==<version>#sha256=<digest>`` for a module of an installed
  distribution, ``module:<module>#sha256=<digest>`` otherwise
* ``entrypoint:<name>#<dist>==<version>#sha256=<digest>``

where ``<digest>`` hashes the file defining the class, so editing an editable
install changes the hash although its version does not. Helper modules a strategy
imports are not hashed: package them and pin their version.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import inspect
import re
import sys
import traceback
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from types import ModuleType
from typing import Literal

from tradewarden.strategy.base import Strategy
from tradewarden.strategy.errors import StrategyLoadError

#: Entry-point group installed packages declare their strategies in.
ENTRY_POINT_GROUP = "tradewarden.strategies"
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Kind = Literal["builtin", "file", "module", "entrypoint"]


@dataclass(frozen=True, slots=True)
class LoadedStrategy:
    """A strategy class and where it came from.

    Parameters
    ----------
    cls : type of Strategy
    spec : str
        The ``--strategy`` text as given.
    kind : {"builtin", "file", "module", "entrypoint"}
    source : str
        Provenance for ``RunConfig.strategy_source`` (see the module notes).
    """

    cls: type[Strategy]
    spec: str
    kind: Kind
    source: str


@dataclass(frozen=True, slots=True)
class EntryPointStrategy:
    """A discovered entry point of the ``tradewarden.strategies`` group.

    Parameters
    ----------
    name : str
        Entry-point name (what ``--strategy`` takes).
    value : str
        ``package.module:ClassName``.
    dist : str
        ``distribution==version``, or ``?`` when unknown.
    cls : type of Strategy or None
        The loaded class; ``None`` when loading failed.
    error : str or None
        One-line reason loading failed.
    """

    name: str
    value: str
    dist: str
    cls: type[Strategy] | None
    error: str | None


def load_strategy_class(spec: str, builtins: dict[str, type[Strategy]]) -> LoadedStrategy:
    """Resolve ``spec`` to a concrete :class:`Strategy` subclass.

    Parameters
    ----------
    spec : str
        Built-in name, ``file.py[:Class]``, ``package.module:Class`` or entry-point name.
    builtins : dict of str to type
        Built-in strategies by name.

    Returns
    -------
    LoadedStrategy

    Raises
    ------
    StrategyLoadError
        One line naming what is wrong: unknown name (lists the available ones), file
        not found, syntax error (file and line), error while importing (exception,
        file and line), class not found (lists the strategy classes there), an object
        that is not a Strategy subclass, or an abstract class.
    """
    text = spec.strip()
    if not text:
        raise StrategyLoadError("--strategy is empty; give a built-in name, file.py:Class or package.module:Class")
    if text in builtins:
        from tradewarden._version import __version__
        return LoadedStrategy(builtins[text], text, "builtin", f"builtin:tradewarden=={__version__}")
    left, sep, right = text.rpartition(":")
    if not sep:
        left, right = text, ""
    if _is_path(left) or (not sep and text.endswith(".py")):
        return _from_file(text, left, right)
    if sep:
        return _from_module(text, left, right)
    return _from_entry_point(text, builtins)


def _is_path(text: str) -> bool:
    return text.endswith(".py") or "/" in text or "\\" in text or text.startswith(".")


def _file_digest(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


# ---------------------------------------------------------------------- files
def _from_file(spec: str, path_text: str, cls_name: str) -> LoadedStrategy:
    path = Path(path_text).expanduser()
    if not path.exists():
        raise StrategyLoadError(f"strategy file {path_text!r} not found")
    if not path.is_file():
        raise StrategyLoadError(f"strategy file {path_text!r} is not a file")
    path = path.resolve()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StrategyLoadError(f"strategy file {path_text!r}: cannot read: {exc.strerror or exc}") from None
    digest = sha256(data).hexdigest()
    module = _exec_file(path, data, digest, path_text)
    cls = _pick_class(module, cls_name, path_text)
    return LoadedStrategy(cls, spec, "file", f"file:{path}#sha256={digest}")


def _exec_file(path: Path, data: bytes, digest: str, shown: str) -> ModuleType:
    stem = re.sub(r"\W", "_", path.stem)
    name = f"tradewarden_user_strategy_{stem}_{digest[:16]}"
    cached = sys.modules.get(name)
    if cached is not None:
        return cached
    try:
        code = compile(data, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise StrategyLoadError(
            f"strategy file {shown!r} line {exc.lineno}: syntax error: {exc.msg}") from None
    except ValueError as exc:            # e.g. null bytes
        raise StrategyLoadError(f"strategy file {shown!r}: not Python source: {exc}") from None
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        exec(code, module.__dict__)
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise StrategyLoadError(
            f"strategy file {shown!r}: {_exc_line(exc)}{_exc_where(exc, str(path))}") from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    return module


def _exc_line(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):      # in a module the file imports
        return f"syntax error in {exc.filename} line {exc.lineno}: {exc.msg}"
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _exc_where(exc: BaseException, path: str | None) -> str:
    """`` (line N)`` of the deepest frame in ``path``, else of the deepest frame."""
    if isinstance(exc, SyntaxError):
        return ""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if path is not None and f.filename == path]
    if mine:
        return f" (line {mine[-1].lineno})"
    user = [f for f in frames if "importlib" not in f.filename and f.filename != __file__]
    if user:
        return f" ({user[-1].filename} line {user[-1].lineno})"
    return ""


def _strategy_classes(module: ModuleType) -> list[str]:
    """Concrete Strategy subclasses defined in ``module`` (not imported into it)."""
    out = []
    for key, value in vars(module).items():
        if (isinstance(value, type) and issubclass(value, Strategy)
                and value.__module__ == module.__name__ and not inspect.isabstract(value)):
            out.append(key)
    return out


def _pick_class(module: ModuleType, cls_name: str, where: str) -> type[Strategy]:
    found = _strategy_classes(module)
    listing = ", ".join(found) if found else "none"
    if not cls_name:
        if len(found) == 1:
            return getattr(module, found[0])
        raise StrategyLoadError(
            f"{where}: name the class as {where}:ClassName; strategies there: {listing}")
    if not _IDENT_RE.match(cls_name):
        raise StrategyLoadError(f"{where}:{cls_name}: {cls_name!r} is not a class name")
    obj = getattr(module, cls_name, None)
    if obj is None:
        raise StrategyLoadError(f"{where} has no class {cls_name!r}; strategies there: {listing}")
    _check_class(obj, f"{where}:{cls_name}")
    return obj


def _check_class(obj: object, label: str) -> None:
    if not isinstance(obj, type):
        raise StrategyLoadError(
            f"{label} is a {type(obj).__name__}, not a Strategy subclass (subclass "
            "tradewarden.strategy.DataFrameStrategy or Strategy)")
    if not issubclass(obj, Strategy):
        bases = ", ".join(b.__name__ for b in obj.__bases__)
        raise StrategyLoadError(
            f"{label} is not a Strategy subclass (its bases: {bases}); subclass "
            "tradewarden.strategy.DataFrameStrategy or Strategy")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise StrategyLoadError(f"{label} is abstract: implement {missing}")


# ---------------------------------------------------------------------- modules
def _import(module_name: str, label: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            as_file = Path(module_name.replace(".", "/") + ".py")
            hint = (f"; for the file, write ./{as_file}:ClassName" if as_file.is_file()
                    else " (install its package or add it to PYTHONPATH)")
            raise StrategyLoadError(f"{label}: module {module_name!r} not found{hint}") from None
        raise StrategyLoadError(f"{label}: importing {module_name!r} failed: "
                                f"{_exc_line(exc)}{_exc_where(exc, None)}") from None
    except SyntaxError as exc:
        raise StrategyLoadError(f"{label}: {_exc_line(exc)}") from None
    except Exception as exc:
        raise StrategyLoadError(f"{label}: importing {module_name!r} failed: "
                                f"{_exc_line(exc)}{_exc_where(exc, None)}") from None


def _from_module(spec: str, module_name: str, cls_name: str) -> LoadedStrategy:
    if not _MODULE_RE.match(module_name):
        raise StrategyLoadError(
            f"--strategy {spec!r}: {module_name!r} is neither a .py file nor a package.module path")
    module = _import(module_name, f"--strategy {spec!r}")
    if not cls_name:
        raise StrategyLoadError(f"--strategy {spec!r}: give the class after the colon")
    obj = getattr(module, cls_name, None)
    if obj is None:
        listing = ", ".join(_strategy_classes(module)) or "none"
        raise StrategyLoadError(
            f"module {module_name!r} has no class {cls_name!r}; strategies there: {listing}")
    _check_class(obj, spec)
    dist = _distribution_of(module_name)
    digest = _file_digest(_class_file(obj) or getattr(module, "__file__", None))
    parts = [f"module:{module_name}"] + ([dist] if dist else []) + (
        [f"sha256={digest}"] if digest else [])
    return LoadedStrategy(obj, spec, "module", "#".join(parts))


def _class_file(cls: type) -> str | None:
    try:
        return inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return None


def _distribution_of(module_name: str) -> str | None:
    """``dist==version`` of the installed distribution providing ``module_name``."""
    top = module_name.split(".")[0]
    dists = md.packages_distributions().get(top, [])
    for d in dists:
        try:
            return f"{d}=={md.version(d)}"
        except md.PackageNotFoundError:
            continue
    return None


# ---------------------------------------------------------------------- entry points
def _entry_points() -> list[md.EntryPoint]:
    return sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


def _dist_label(ep: md.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?"
    return f"{dist.metadata['Name'] or dist.name}=={dist.version}"


def _load_entry_point(ep: md.EntryPoint) -> type[Strategy]:
    label = f"entry point {ep.name!r} ({ep.value}, {_dist_label(ep)})"
    try:
        obj = ep.load()
    except ModuleNotFoundError as exc:
        raise StrategyLoadError(f"{label}: module {exc.name!r} not found") from None
    except AttributeError as exc:
        raise StrategyLoadError(f"{label}: {exc}") from None
    except SyntaxError as exc:
        raise StrategyLoadError(f"{label}: {_exc_line(exc)}") from None
    except Exception as exc:
        raise StrategyLoadError(f"{label}: failed to load: {_exc_line(exc)}{_exc_where(exc, None)}") from None
    _check_class(obj, label)
    return obj


def _from_entry_point(name: str, builtins: dict[str, type[Strategy]]) -> LoadedStrategy:
    eps = [e for e in _entry_points() if e.name == name]
    if not eps:
        installed = [e.name for e in _entry_points() if e.name not in builtins]
        avail = ", ".join(sorted(builtins) + installed)
        raise StrategyLoadError(
            f"unknown strategy {name!r}; available: {avail} (or path/to/file.py:ClassName, "
            "package.module:ClassName)")
    if len({e.value for e in eps}) > 1:
        who = ", ".join(f"{e.value} ({_dist_label(e)})" for e in eps)
        raise StrategyLoadError(f"entry point {name!r} is declared more than once: {who}")
    ep = eps[0]
    cls = _load_entry_point(ep)
    digest = _file_digest(_class_file(cls))
    parts = [f"entrypoint:{name}", _dist_label(ep)] + ([f"sha256={digest}"] if digest else [])
    return LoadedStrategy(cls, name, "entrypoint", "#".join(parts))


def discover_entry_points() -> list[EntryPointStrategy]:
    """List the installed ``tradewarden.strategies`` entry points, loading each.

    Returns
    -------
    list of EntryPointStrategy
        Sorted by name; one that fails to load carries its one-line error instead
        of a class (discovery itself never raises).
    """
    out = []
    for ep in _entry_points():
        try:
            cls, err = _load_entry_point(ep), None
        except StrategyLoadError as exc:
            cls, err = None, str(exc)
        out.append(EntryPointStrategy(ep.name, ep.value, _dist_label(ep), cls, err))
    return out


__all__ = ["ENTRY_POINT_GROUP", "EntryPointStrategy", "LoadedStrategy", "discover_entry_points",
           "load_strategy_class"]
