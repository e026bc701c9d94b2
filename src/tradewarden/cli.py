"""``warden``: the command line (Typer + Rich).

Errors in input (files, flags, symbols, strategies, the database) print one line to
stderr naming what and where, and exit with status 2; no traceback. The commands
live in ``cli.py`` (replay, bench), ``cli_ledger.py`` (runs, report, trades) and
``cli_data.py`` (data); shared options and error handling in ``cli_common.py``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from tradewarden.cli_common import (  # noqa: F401  (re-exported for cli_data)
    DB_OPT,
    EXIT_BAD_INPUT,
    EXIT_GATE_FAILED,
    GATE_OPT,
    MAX_DD_OPT,
    MIN_PF_OPT,
    MIN_TRADES_OPT,
    OUT_OPT,
    CapitalMode,
    ReportFormat,
    _fail,
    _known_errors,
    _progress,
    _validation_message,
)
from tradewarden.cli_ledger import _emit_report

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="tradewarden: replay, validate and audit trading strategies on one engine path.")


@app.command()
def replay(
    symbols: str = typer.Option("BTC-USD,ETH-USD,SOL-USD", "--symbols", "-s",
                                help="Comma-separated canonical symbols (BASE-QUOTE)."),
    start: Optional[str] = typer.Option(None, help="First bar to replay, UTC date or datetime (inclusive)."),
    end: Optional[str] = typer.Option(None, help="Stop before this UTC date or datetime (exclusive)."),
    timeframe: str = typer.Option("1h", help="Bar length to trade on: 1h, 4h or 1d (coarser than the data resamples)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Your own OHLCV CSV/Parquet: a directory with one file per symbol, or one file (with a symbol column for several symbols). Default: the bundled Coinbase 1h samples."),
    strategy: str = typer.Option("donchian", help="Strategy name: donchian or ema_rsi."),
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy parameter key=value; repeat for several (e.g. -p entry_window=55)."),
    capital: str = typer.Option("10000", help="Starting cash in quote currency: per symbol (independent) or in total (portfolio)."),
    capital_mode: CapitalMode = typer.Option(CapitalMode.independent, help="independent: each symbol trades its own capital; portfolio: symbols share one account."),
    sizing: str = typer.Option("risk:0.01", help="risk:FRACTION of equity lost at the stop-loss per trade, or fixed:QUANTITY in base units."),
    fee_bps: Optional[float] = typer.Option(None, help="Taker fee, basis points of notional (market and stop fills). Default 10, or the venue's with --exchange. Set what your account pays."),
    maker_fee_bps: Optional[float] = typer.Option(None, help="Maker fee, basis points of notional (limit / take-profit fills). Default 5, or the venue's with --exchange."),
    slippage_bps: float = typer.Option(2.0, help="Adverse slippage on market and stop fills, basis points."),
    skip_bad_rows: bool = typer.Option(False, help="Skip and count malformed data rows instead of failing; the run is marked degraded."),
    exchange: Optional[str] = typer.Option(None, help="Read bars from this exchange's cached history (ccxt id: coinbase, kraken, binance, ...), downloading what is missing; needs --start and --end."),
    offline: bool = typer.Option(False, help="With --exchange: never download; fail naming the ranges not cached."),
    cache_dir: Optional[Path] = typer.Option(None, help="Exchange cache root (default $TRADEWARDEN_CACHE or ~/.cache/tradewarden)."),
    db: str = DB_OPT,
    out: Path = OUT_OPT,
    report_format: ReportFormat = typer.Option(ReportFormat.all, help="all: console report + JSON + HTML files; console: console only; json: JSON on stdout (with run_id and paths) and file; html: HTML file only."),
    gate: bool = GATE_OPT,
    min_trades: int = MIN_TRADES_OPT,
    min_profit_factor: float = MIN_PF_OPT,
    max_drawdown_pct: float = MAX_DD_OPT,
) -> None:
    """Replay historical bars through the engine, record every decision, print the report."""
    from tradewarden.analytics import GateConfig
    from tradewarden.engine.config import RunConfig
    from tradewarden.engine.replay import load_inputs, run_replay
    from tradewarden.ledger import Ledger
    from tradewarden.risk import RiskConfig, Sizing
    from tradewarden.strategy import parse_params

    err_console = Console(stderr=True)
    try:
        try:
            cap = Decimal(capital)
        except InvalidOperation:
            raise ValueError(f"--capital {capital!r}: not a number") from None
        cfg = RunConfig(
            symbols=tuple(s for s in symbols.split(",")), data=str(data) if data else None,
            timeframe=timeframe, start=start, end=end, strategy=strategy,
            params=parse_params(param), capital=cap, capital_mode=capital_mode.value,
            slippage_bps=slippage_bps, risk=RiskConfig(sizing=Sizing.parse(sizing)),
            skip_bad_rows=skip_bad_rows, exchange=exchange, offline=offline,
            cache_dir=str(cache_dir) if cache_dir else None,
            venue_fees=fee_bps is None and maker_fee_bps is None,
            **{k: v for k, v in (("fee_bps", fee_bps), ("maker_fee_bps", maker_fee_bps)) if v is not None})
        gates = GateConfig(min_closed_trades=min_trades, min_profit_factor=min_profit_factor,
                           max_drawdown_pct=max_drawdown_pct)
        ledger = Ledger(db, background=True)
        with _progress(err_console, "download", "candles") as dl:
            inputs = load_inputs(cfg, progress=dl)
        with Progress(TextColumn("[bold]replay[/]"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("bars"), TimeElapsedColumn(), console=err_console,
                      transient=True) as bar:
            task = bar.add_task("replay", total=inputs.total_bars)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = run_replay(cfg, ledger, progress=progress, inputs=inputs)
        for w in result.warnings:
            err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
        passed = _emit_report(ledger, result.run_id, gates, report_format, out)
        ledger.close()
    except ValidationError as exc:
        raise _fail(_validation_message(exc)) from None
    except typer.Exit:
        raise
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    if gate and not passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def bench(bars: int = typer.Option(1_000_000, help="Bars to replay through the full path (tiled from the bundled real data)."),
          symbols: int = typer.Option(3, help="Symbols (bundled series cycled)."),
          memory_sizes: str = typer.Option("250000,500000,1000000", help="Comma-separated bar counts for the peak-memory scan (each in a fresh process); empty to skip."),
          db: Optional[str] = typer.Option(None, help="Ledger for the benchmark (default: a temporary SQLite file).")) -> None:
    """Measure replay throughput (bars/s) and peak memory through the full engine path."""
    from tradewarden.bench import run_bench
    try:
        run_bench(bars=bars, n_symbols=symbols, db=db,
                  memory_sizes=[int(x) for x in memory_sizes.split(",") if x.strip()],
                  console=Console())
    except _known_errors() as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    """Console-script entry point."""
    app()


def _register_commands() -> None:
    from tradewarden import cli_ledger
    from tradewarden.cli_data import data_app
    cli_ledger.register(app)
    app.add_typer(data_app, name="data")


_register_commands()


if __name__ == "__main__":
    main()
