"""``warden strategies list`` and ``warden check-lookahead``.

Tables are laid out for the console width (80 columns when piped) and wrap long text
instead of cutting it. Bad input prints one ``error:`` line and exits with status 2;
``check-lookahead`` exits with 1 when it finds look-ahead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tradewarden.cli_common import _fail, _known_errors

EXIT_LOOKAHEAD = 1

CHECK_HELP = (
    "Check a strategy for look-ahead: values at bar t that change when later bars are added.\n\n"
    "The strategy's frame (for a DataFrameStrategy, every column populate() returns) is "
    "computed on the whole history and on the history truncated at --samples cut points; "
    "every column whose value at some bar changes is reported with the first such bar and "
    "both values. It also checks that the strategy's warm-up is long enough for chunked "
    "replays.\n\n"
    "Exit status: 0 clean, 1 look-ahead or warm-up findings, 2 bad input.")

LIST_HELP = (
    "List the built-in and installed strategies with their parameters, types, defaults "
    "and ranges.\n\n"
    "Installed strategies are the entry points of the tradewarden.strategies group. Any "
    "Python file or module can also be run with --strategy FILE.py:CLASS or "
    "--strategy package.module:CLASS.")

strategies_app = typer.Typer(no_args_is_help=True, help="The strategies --strategy can name.")


def _param_table(cls: type) -> Table:
    from tradewarden.strategy import describe_params

    table = Table(box=None, pad_edge=False, padding=(0, 1), show_edge=False,
                  header_style="bold")
    table.add_column("parameter", overflow="fold")
    table.add_column("type", overflow="fold")
    table.add_column("default", overflow="fold")
    table.add_column("range", overflow="fold")
    table.add_column("description", overflow="fold", ratio=1)
    for p in describe_params(cls):
        table.add_row(p.name, p.type, p.default, p.bounds, p.description)
    return table


def _summary(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split()) if doc else ""


def _entry(console: Console, title: str, origin: str, cls: type | None, error: str | None) -> None:
    head = Text()
    head.append(title, style="bold")
    head.append(f"  ({origin})")
    console.print(head, soft_wrap=False, overflow="fold")
    if error is not None:
        console.print(Text(f"  cannot load: {error}", style="red"), overflow="fold")
        console.print()
        return
    assert cls is not None
    summary = _summary(cls)
    if summary:
        console.print(Text(summary), overflow="fold")
    from tradewarden.strategy import describe_params
    if describe_params(cls):
        console.print(_param_table(cls))
    else:
        console.print("no parameters")
    console.print()


def strategies_list() -> None:
    """List the built-in and installed strategies with their parameters and defaults.

    Installed strategies are the entry points of the ``tradewarden.strategies`` group
    (see :data:`LIST_HELP`).
    """
    from tradewarden.strategy import STRATEGIES, discover_entry_points

    console = Console()
    try:
        for name, cls in STRATEGIES.items():
            _entry(console, name, "built-in", cls, None)
        from tradewarden.strategy.put_writer import PutWriter
        _entry(console, PutWriter.name, "built-in, option chains: the options desk",
               PutWriter, None)
        found = discover_entry_points()
        for ep in found:
            origin = f"entry point {ep.value} from {ep.dist}"
            if ep.name in STRATEGIES:
                origin += f"; the built-in {ep.name!r} takes precedence"
            _entry(console, ep.name, origin, ep.cls, ep.error)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    if not found:
        console.print(Text("No installed strategies (entry point group tradewarden.strategies). "
                           "Run your own with --strategy path/to/file.py:ClassName or "
                           "package.module:ClassName."), overflow="fold")


def check_lookahead(
    strategy: str = typer.Option(..., "--strategy", help="Built-in name, FILE.py:CLASS, package.module:CLASS or an installed entry-point name (see warden strategies list)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Your OHLCV CSV/Parquet file or directory (as for warden replay). Default: the bundled Coinbase 1h samples."),
    symbols: Optional[str] = typer.Option(None, "--symbols", "-s", help="Comma-separated symbols. Default: every bundled symbol, or every symbol in a --data file with a symbol column."),
    timeframe: Optional[str] = typer.Option(None, "--timeframe", help="Bar length (1m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d); coarser than the data resamples. Default: the data's own bar length."),
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy parameter key=value; repeat for several."),
    samples: int = typer.Option(20, "--samples", min=1, max=10_000, help="Cut points per symbol at which the history is truncated."),
) -> None:
    """Check a strategy for look-ahead: values at bar t that change when later bars are added.

    See :data:`CHECK_HELP`; the check itself is
    :func:`tradewarden.strategy.lookahead.check_lookahead`.
    """
    from tradewarden.data import load_market_data
    from tradewarden.strategy import build_strategy, parse_params
    from tradewarden.strategy.lookahead import check_lookahead as run_check

    out = Console()
    try:
        strat = build_strategy(strategy, parse_params(param))
        wanted = [s for s in symbols.split(",") if s.strip()] if symbols else None
        if symbols is not None and not wanted:
            raise ValueError("--symbols is empty")
        loaded = load_market_data(wanted, data, timeframe=timeframe or None)
        series = dict(loaded.series)
        report = run_check(strat, series, samples)
    except typer.Exit:
        raise
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    bars = ", ".join(f"{s} {n:,} bars" for s, n in report.bars.items())
    out.print(Text(f"{report.strategy}: {bars}; {samples} cut points per symbol; "
                   f"{len(report.columns)} columns: {', '.join(report.columns)}"), overflow="fold")
    if report.clean:
        out.print(Text("clean: no value at any bar changed when later bars were added, and the "
                       f"warm-up of {strat.warmup} bars reproduces the full-history values"),
                  overflow="fold")
        return
    from tradewarden.domain import iso
    for f in report.findings:
        when = iso(f.ts)
        if f.kind == "lookahead":
            line = (f"look-ahead: {f.symbol} column {f.column!r} at bar {f.bar} ({when}) is "
                    f"{f.partial} with history up to bar {f.cut}, {f.full} with the full history")
        else:
            line = (f"warm-up: {f.symbol} column {f.column!r} at bar {f.bar} ({when}) is "
                    f"{f.partial} with only {strat.warmup} bars of history before bar {f.cut}, "
                    f"{f.full} with the full history: it needs more history than the warm-up "
                    "gives (raise warmup, or avoid expanding and cumulative values)")
        out.print(Text(line), overflow="fold")
    kinds = {f.kind for f in report.findings}
    cols = sorted({f.column for f in report.findings})
    what = " and ".join(k for k in ("look-ahead", "warm-up") if k.replace("-", "") in kinds)
    out.print(Text(f"FAILED: {what} in {len(cols)} column(s): {', '.join(cols)}",
                   style="bold red"), overflow="fold")
    raise typer.Exit(EXIT_LOOKAHEAD)


def register(app: typer.Typer) -> None:
    """Add ``strategies list`` and ``check-lookahead`` to ``app``."""
    strategies_app.command("list", help=LIST_HELP)(strategies_list)
    app.add_typer(strategies_app, name="strategies")
    app.command("check-lookahead", help=CHECK_HELP)(check_lookahead)
