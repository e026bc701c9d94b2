"""``warden``: the command line (Typer + Rich).

Errors in input (files, flags, symbols, strategies, the database) print one line to
stderr naming what and where, and exit with status 2; no traceback.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal, InvalidOperation
from enum import Enum
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
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="tradewarden: replay, validate and audit trading strategies on one engine path.")

EXIT_BAD_INPUT = 2
EXIT_GATE_FAILED = 3

DB_HELP = "Ledger database: SQLite file path or SQLAlchemy URL."
DB_OPT = typer.Option("warden-out/ledger.db", help=DB_HELP)
OUT_OPT = typer.Option(Path("warden-out/reports"), help="Directory for the JSON and HTML reports.")
GATE_OPT = typer.Option(False, "--gate", help="Exit with status 3 when a validation gate fails.")
MIN_TRADES_OPT = typer.Option(100, help="Gate: minimum closed trades.")
MIN_PF_OPT = typer.Option(1.0, help="Gate: minimum profit factor.")
MAX_DD_OPT = typer.Option(35.0, help="Gate: maximum drawdown, percent of peak equity.")


class ReportFormat(str, Enum):
    """What ``--report-format`` prints and writes."""

    console = "console"
    json = "json"
    html = "html"
    all = "all"


class CapitalMode(str, Enum):
    """Capital modes."""

    independent = "independent"
    portfolio = "portfolio"


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> "typer.Exit":
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _known_errors() -> tuple[type[BaseException], ...]:
    from tradewarden.data import DataError
    from tradewarden.ledger import LedgerError
    from tradewarden.strategy import StrategyConfigError
    return DataError, LedgerError, StrategyConfigError, ValueError, LookupError, OSError


def _validation_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    return f"{loc}: {err['msg']}" if loc else err["msg"]


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


class _progress:
    """A Rich progress bar that appears on the first update (long work only)."""

    def __init__(self, console: Console, label: str, unit: str) -> None:
        self.console, self.label, self.unit = console, label, unit
        self.bar: Progress | None = None
        self.task = None

    def __enter__(self) -> "_progress":
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Progress(TextColumn(f"[bold]{self.label}[/]"), BarColumn(), MofNCompleteColumn(),
                                TextColumn(self.unit), TimeElapsedColumn(), console=self.console,
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _emit_report(ledger, run_id: str, gates, fmt: ReportFormat, out: Path) -> bool:
    from tradewarden.analytics import (
        build_report,
        render_console,
        report_to_dict,
        write_html,
        write_json,
    )

    report = build_report(ledger.engine, run_id, gates)
    paths: dict[str, str] = {}
    if fmt in (ReportFormat.json, ReportFormat.all):
        out.mkdir(parents=True, exist_ok=True)
        paths["json"] = str(out / f"{run_id}.json")
    if fmt in (ReportFormat.html, ReportFormat.all):
        out.mkdir(parents=True, exist_ok=True)
        paths["html"] = str(out / f"{run_id}.html")
        write_html(report, ledger.engine, paths["html"])
    if "json" in paths:
        write_json(report, paths["json"])
    console = Console()
    if fmt is ReportFormat.json:
        doc = {"run_id": run_id, "ledger": ledger.url, "paths": paths, "report": report_to_dict(report)}
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        if fmt in (ReportFormat.console, ReportFormat.all):
            render_console(report, console)
        console.print(f"run_id   [bold]{run_id}[/]")
        console.print(f"ledger   {ledger.url}", highlight=False)
        for kind, p in paths.items():
            console.print(f"{kind:<8} {p}", highlight=False)
    return bool(report.passed)


@app.command()
def runs(db: str = DB_OPT,
         limit: int = typer.Option(50, help="Show at most this many runs, newest first.")) -> None:
    """List runs recorded in the ledger."""
    from tradewarden.analytics import list_runs
    from tradewarden.ledger import open_engine
    try:
        engine = open_engine(db)
        rows = list_runs(engine)[:limit]
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"runs in {db}", box=None, header_style="bold")
    for col in ("run_id", "started (UTC)", "status", "mode", "strategy", "tf", "bars", "trades"):
        table.add_column(col, no_wrap=True, justify="right" if col in ("bars", "trades") else "left")
    table.add_column("symbols", overflow="fold")
    for r in rows:
        started = (r.get("started_at") or "").replace("T", " ").rstrip("Z")[:16]
        table.add_row(_cell(r.get("run_id")), started, _cell(r.get("status")), _cell(r.get("mode")),
                      _cell(r.get("strategy")), _cell(r.get("timeframe")), _cell(r.get("bars_processed")),
                      _cell(r.get("trades_closed")), _cell(r.get("symbols")))
    Console().print(table)


def _cell(v: object) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return "" if v is None else str(v)


@app.command()
def report(run_id: str = typer.Argument(..., help="Run id (see `warden runs`)."),
           db: str = DB_OPT,
           out: Path = OUT_OPT,
           report_format: ReportFormat = typer.Option(ReportFormat.console, help="console, json (stdout), html (file), or all."),
           gate: bool = GATE_OPT,
           min_trades: int = MIN_TRADES_OPT,
           min_profit_factor: float = MIN_PF_OPT,
           max_drawdown_pct: float = MAX_DD_OPT) -> None:
    """Rebuild a run's report from the ledger alone."""
    from tradewarden.analytics import GateConfig
    from tradewarden.ledger import Ledger
    try:
        ledger = Ledger(db)
        gates = GateConfig(min_closed_trades=min_trades, min_profit_factor=min_profit_factor,
                           max_drawdown_pct=max_drawdown_pct)
        passed = _emit_report(ledger, run_id, gates, report_format, out)
    except ValidationError as exc:
        raise _fail(_validation_message(exc)) from None
    except _known_errors() as exc:
        raise _fail(str(exc).strip('"')) from None
    if gate and not passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def trades(run_id: str = typer.Argument(..., help="Run id (see `warden runs`)."),
           csv: Path = typer.Option(..., "--csv", help="CSV file to write the round trips to."),
           db: str = DB_OPT) -> None:
    """Export a run's round trips (entry/exit time, side, quantity, prices, fees, PnL, exit reason)."""
    from tradewarden.analytics import trades_to_csv
    from tradewarden.ledger import open_engine
    try:
        engine = open_engine(db)
        n = trades_to_csv(engine, run_id, csv)
    except _known_errors() as exc:
        raise _fail(str(exc).strip('"')) from None
    Console().print(f"wrote {n} trades to {csv}", highlight=False)


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


def _register_data_commands() -> None:
    from tradewarden.cli_data import data_app
    app.add_typer(data_app, name="data")


_register_data_commands()


if __name__ == "__main__":
    main()
