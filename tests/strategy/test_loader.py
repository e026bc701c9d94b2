"""Loading strategies from files, modules and entry points; one-line errors; the source
string that enters the run's config hash."""

from __future__ import annotations

import hashlib
import importlib
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tradewarden import __version__
from tradewarden.strategy import (
    DonchianBreakout,
    StrategyConfigError,
    StrategyLoadError,
    build_strategy,
    discover_entry_points,
    resolve_strategy,
)

STRAT = textwrap.dedent('''
    from pydantic import Field
    from tradewarden.strategy import DataFrameStrategy, StrategyParams
    from tradewarden.strategy import indicators as ind


    class P(StrategyParams):
        window: int = Field(20, ge=2, description="channel bars")


    class Breakout(DataFrameStrategy):
        """Close above the previous highest high."""
        Params = P
        record = ("upper",)
        warmup_bars = 25

        def populate(self, df):
            df["upper"] = ind.highest(df["high"], self.params.window)
            df["enter_long"] = df["close"] > df["upper"]
            df["exit_long"] = df["close"] < ind.lowest(df["low"], 10)
            return df


    def helper():
        return 1
''')


@pytest.fixture
def strat_file(tmp_path: Path) -> Path:
    f = tmp_path / "my_strat.py"
    f.write_text(STRAT)
    return f


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(spec: str, cls=StrategyLoadError) -> str:
    with pytest.raises(cls) as exc:
        build_strategy(spec)
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


# ---------------------------------------------------------------------- built-ins
def test_builtin_source_names_the_package_version() -> None:
    s, src = resolve_strategy("donchian", {"entry_window": "30"})
    assert isinstance(s, DonchianBreakout) and s.params.entry_window == 30
    assert src == f"builtin:tradewarden=={__version__}"


# ---------------------------------------------------------------------- files
def test_file_spec_loads_the_class_with_params_and_its_source(strat_file, btc) -> None:
    s, src = resolve_strategy(f"{strat_file}:Breakout", {"window": "30"})
    assert type(s).__name__ == "Breakout" and s.name == "Breakout" and s.params.window == 30
    assert src == f"file:{strat_file.resolve()}#sha256={sha(strat_file)}"
    assert s.prepare(btc.slice(0, 300)).enter.any()
    # the class name may be left out when the file defines one strategy
    assert type(build_strategy(str(strat_file))).__name__ == "Breakout"


def test_relative_path_is_recorded_absolute(strat_file, monkeypatch) -> None:
    monkeypatch.chdir(strat_file.parent)
    _, src = resolve_strategy("./my_strat.py:Breakout")
    assert src.startswith(f"file:{strat_file.resolve()}#sha256=")
    _, src2 = resolve_strategy("my_strat.py:Breakout")
    assert src2 == src


def test_source_and_config_hash_change_when_the_file_changes(strat_file) -> None:
    from tradewarden.engine.config import RunConfig
    from tradewarden.ops.replay import resolve_config

    cfg = RunConfig(symbols=("BTC-USD",), strategy=f"{strat_file}:Breakout")
    a, _ = resolve_config(cfg)
    again, _ = resolve_config(cfg)
    assert a.config_hash() == again.config_hash()               # same bytes, same hash
    strat_file.write_text(STRAT.replace("channel bars", "channel length in bars"))
    b, s = resolve_config(cfg)
    assert a.strategy_source != b.strategy_source and a.config_hash() != b.config_hash()
    assert b.strategy_source == f"file:{strat_file.resolve()}#sha256={sha(strat_file)}"
    assert type(s).Params.model_fields["window"].description == "channel length in bars"  # new code ran
    # a source given in the config is replaced by the real one
    c, _ = resolve_config(cfg.model_copy(update={"strategy_source": "file:elsewhere#sha256=0"}))
    assert c.strategy_source == b.strategy_source


def test_file_may_import_a_sibling_helper(tmp_path) -> None:
    name = f"helpers_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("WINDOW = 7\n")
    f = tmp_path / "uses_helper.py"
    f.write_text(STRAT.replace("from pydantic import Field", f"from pydantic import Field\nfrom {name} import WINDOW")
                 .replace("Field(20,", "Field(WINDOW,"))
    assert build_strategy(f"{f}:Breakout").params.window == 7
    assert str(tmp_path) not in sys.path                       # only while the file ran


def test_file_errors_are_one_line(tmp_path, strat_file) -> None:
    assert one_line_error(f"{tmp_path}/nope.py:X") == f"strategy file '{tmp_path}/nope.py' not found"
    assert one_line_error(f"{tmp_path}:X") == f"strategy file '{tmp_path}' is not a file"

    bad = tmp_path / "bad_syntax.py"
    bad.write_text("x = 1\n\ndef f(:\n    pass\n")
    msg = one_line_error(f"{bad}:X")
    assert msg.startswith(f"strategy file '{bad}' line 3: syntax error: ")

    imp = tmp_path / "bad_import.py"
    imp.write_text("import os\nimport surely_not_installed_xyz\n")
    assert one_line_error(f"{imp}:X") == (
        f"strategy file '{imp}': ModuleNotFoundError: No module named 'surely_not_installed_xyz' (line 2)")

    boom = tmp_path / "boom.py"
    boom.write_text("def f():\n    return 1 / 0\n\nf()\n")
    assert one_line_error(f"{boom}:X") == f"strategy file '{boom}': ZeroDivisionError: division by zero (line 2)"

    assert one_line_error(f"{strat_file}:Nope") == (
        f"{strat_file} has no class 'Nope'; strategies there: Breakout")
    assert one_line_error(f"{strat_file}:P") == (
        f"{strat_file}:P is not a Strategy subclass (its bases: StrategyParams); subclass "
        "tradewarden.strategy.DataFrameStrategy or Strategy")
    assert one_line_error(f"{strat_file}:helper") == (
        f"{strat_file}:helper is a function, not a Strategy subclass (subclass "
        "tradewarden.strategy.DataFrameStrategy or Strategy)")
    assert one_line_error(f"{strat_file}:DataFrameStrategy") == (
        f"{strat_file}:DataFrameStrategy is abstract: implement populate")

    two = tmp_path / "two.py"
    two.write_text(STRAT + "\n\nclass Other(Breakout):\n    pass\n")
    assert one_line_error(str(two)) == (
        f"{two}: name the class as {two}:ClassName; strategies there: Breakout, Other")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    assert one_line_error(f"{empty}:X") == f"{empty} has no class 'X'; strategies there: none"


def test_param_errors_name_the_spec(strat_file) -> None:
    for params in ({"window": "1"}, {"window": "inf"}, {"windw": "5"}):
        with pytest.raises(StrategyConfigError) as exc:
            build_strategy(f"{strat_file}:Breakout", params)
        assert str(exc.value).startswith(f"strategy '{strat_file}:Breakout' param '{next(iter(params))}': ")
        assert str(exc.value).endswith("(params: window)")


# ---------------------------------------------------------------------- modules
@pytest.fixture
def package(tmp_path, monkeypatch):
    """An importable package (not installed) with a strategy module; unique name per test."""
    name = f"twpkg_{uuid.uuid4().hex[:8]}"
    pkg = tmp_path / "src" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "strats.py").write_text(STRAT)
    (pkg / "broken.py").write_text("raise RuntimeError('config missing')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    importlib.invalidate_caches()
    yield name, pkg
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def test_module_spec_loads_and_hashes_the_module_file(package) -> None:
    name, pkg = package
    s, src = resolve_strategy(f"{name}.strats:Breakout")
    assert type(s).__name__ == "Breakout"
    assert src == f"module:{name}.strats#sha256={sha(pkg / 'strats.py')}"


def test_module_of_an_installed_distribution_names_it() -> None:
    _, src = resolve_strategy("tradewarden.strategy.donchian:DonchianBreakout")
    import tradewarden.strategy.donchian as mod
    assert src == (f"module:tradewarden.strategy.donchian#tradewarden=={__version__}"
                   f"#sha256={sha(Path(mod.__file__))}")


def test_module_errors_are_one_line(package, strat_file, monkeypatch) -> None:
    name, _ = package
    monkeypatch.chdir(strat_file.parent)
    assert one_line_error("nosuch_pkg_xyz.mod:X") == (
        "--strategy 'nosuch_pkg_xyz.mod:X': module 'nosuch_pkg_xyz.mod' not found (install its "
        "package or add it to PYTHONPATH)")
    msg = one_line_error(f"{name}.broken:X")
    assert msg.startswith(f"--strategy '{name}.broken:X': importing '{name}.broken' failed: "
                          "RuntimeError: config missing (")
    assert msg.endswith("broken.py line 1)")
    assert one_line_error(f"{name}.strats:Nope") == (
        f"module '{name}.strats' has no class 'Nope'; strategies there: Breakout")
    assert one_line_error("my_strat:Breakout") == (              # .py forgotten
        "--strategy 'my_strat:Breakout': module 'my_strat' not found; for the file, write "
        "./my_strat.py:ClassName")
    assert one_line_error("not-a-module:X") == (
        "--strategy 'not-a-module:X': 'not-a-module' is neither a .py file nor a package.module path")


# ---------------------------------------------------------------------- entry points
@pytest.fixture
def installed(tmp_path, monkeypatch):
    """A distribution 'fake-strats 1.2.3' (a dist-info directory on sys.path) declaring
    three entry points in the tradewarden.strategies group: a good one, one whose
    module is missing and one that is not a strategy."""
    name = f"twep_{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{name}.py").write_text(STRAT)
    info = site / "fake_strats-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-strats\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(
        "[tradewarden.strategies]\n"
        f"breakout_ep = {name}:Breakout\n"
        "missing_ep = twep_missing_module_xyz:Thing\n"
        f"not_a_strategy = {name}:helper\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield name, site
    sys.modules.pop(name, None)


def test_entry_point_loads_with_its_distribution_in_the_source(installed) -> None:
    name, site = installed
    s, src = resolve_strategy("breakout_ep", {"window": 12})
    assert type(s).__name__ == "Breakout" and s.params.window == 12
    assert src == f"entrypoint:breakout_ep#fake-strats==1.2.3#sha256={sha(site / f'{name}.py')}"


def test_entry_points_are_discovered_without_raising(installed) -> None:
    name, _ = installed
    found = {e.name: e for e in discover_entry_points()}
    assert {"breakout_ep", "missing_ep", "not_a_strategy"} <= set(found)
    good = found["breakout_ep"]
    assert good.cls is not None and good.error is None
    assert good.value == f"{name}:Breakout" and good.dist == "fake-strats==1.2.3"
    assert found["missing_ep"].cls is None
    assert found["missing_ep"].error == ("entry point 'missing_ep' (twep_missing_module_xyz:Thing, "
                                         "fake-strats==1.2.3): module 'twep_missing_module_xyz' not found")
    assert "is a function, not a Strategy subclass" in found["not_a_strategy"].error


def test_entry_point_errors_and_unknown_names(installed) -> None:
    assert one_line_error("missing_ep").endswith("module 'twep_missing_module_xyz' not found")
    msg = one_line_error("turtle")
    assert msg == ("unknown strategy 'turtle'; available: donchian, ema_rsi, rank, breakout_ep, missing_ep, "
                   "not_a_strategy (or path/to/file.py:ClassName, package.module:ClassName)")


def test_builtin_names_win_over_entry_points(tmp_path, monkeypatch) -> None:
    site = tmp_path / "site2"
    info = site / "shadow-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shadow\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tradewarden.strategies]\ndonchian = nowhere_xyz:X\n")
    monkeypatch.syspath_prepend(str(site))
    assert isinstance(build_strategy("donchian"), DonchianBreakout)
