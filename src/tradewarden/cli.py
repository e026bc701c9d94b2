"""``warden``: the command line (Typer + Rich).

Errors in input (files, flags, symbols, strategies, the database) print one line to
stderr naming what and where, and exit with status 2; no traceback. The commands
live in ``cli.py`` (replay, bench), ``cli_ledger.py`` (runs, report, trades) and
``cli_data.py`` (data); shared options and error handling in ``cli_common.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

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

from tradewarden.cli_common import (
    CONFIG_OPT,
    EXIT_GATE_FAILED,
    CapitalMode,
    ReportFormat,
    _fail,
    _interrupted,
    _known_errors,
    _progress,
    _validation_message,
)
from tradewarden.cli_ledger import _emit_report

CONTEXT = {"help_option_names": ["-h", "--help"]}
# Plain (click) help: it wraps at the terminal's width instead of cutting words with "…".
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, context_settings=CONTEXT,
                  help="tradewarden: replay, validate and audit trading strategies on one engine path.")
config_app = typer.Typer(no_args_is_help=True, context_settings=CONTEXT,
                         help="Show the effective configuration, or write a starter file.")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version
        typer.echo(f"tradewarden {version('tradewarden')}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """tradewarden: replay, validate and audit trading strategies on one engine path."""


SET_OPT = typer.Option([], "--set", metavar="KEY=VALUE",
                       help="Set any config key, repeatable: --set risk.max_drawdown_halt=off "
                            "--set gates.min_closed_trades=50 (see `warden config show`).")
TIMEFRAMES = "1m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h or 1d"


def _set_pairs(pairs: list[str]) -> dict[str, tuple[str, str]]:
    """Parse ``--set KEY=VALUE`` items into settings overrides.

    Raises
    ------
    ConfigError
        For an item without ``=`` or with an empty key.
    """
    from tradewarden.settings import ConfigError
    out: dict[str, tuple[str, str]] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set risk.daily_loss_limit=off")
        out[key.strip()] = (value.strip(), f"--set {key.strip()}")
    return out


@app.command()
def replay(
    config: Optional[Path] = CONFIG_OPT,
    symbols: Optional[str] = typer.Option(None, "--symbols", "-s",
                                          help="Comma-separated symbols: crypto pairs BASE-QUOTE (btc_usd and BTC/USD are read as BTC-USD), US equity tickers as they are (AAPL,MSFT: the bundled daily equities are AAPL, JPM, MSFT, NVDA, XOM 2012-2015 and SPY 2008-2010; see `warden data list`). [default: BTC-USD,ETH-USD,SOL-USD]"),
    start: Optional[str] = typer.Option(None, help="First bar to replay, UTC date or datetime (inclusive)."),
    end: Optional[str] = typer.Option(None, help="Stop before this UTC date or datetime (exclusive)."),
    timeframe: Optional[str] = typer.Option(None, help=f"Bar length to trade on: {TIMEFRAMES}; a multiple of the data's bar length (finer data is resampled); the bundled daily equities alone default to 1d. [default: the data's own bar length with --data, else 1h]"),
    data: Optional[Path] = typer.Option(None, "--data", help="Your own OHLCV CSV/Parquet: a directory with one file per symbol, or one file (with a symbol column for several symbols). A daily file with a split column (split_coefficient, as AlphaVantage's; or yfinance's Stock Splits) is adjusted per --adjust. Default: the bundled samples (Coinbase 1h crypto, daily US equities)."),
    strategy: Optional[str] = typer.Option(None, help="Built-in or installed name (donchian, ema_rsi, or an entry point of the tradewarden.strategies group; see `warden strategies list`), path/to/file.py:ClassName, or package.module:ClassName. [default: donchian]"),
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy parameter key=value; repeat for several (e.g. -p entry_window=55)."),
    capital: Optional[str] = typer.Option(None, help="Starting cash in quote currency: per symbol (independent) or in total (portfolio). [default: 10000]"),
    capital_mode: Optional[CapitalMode] = typer.Option(None, help="independent: each symbol trades its own capital; portfolio: symbols share one account. [default: independent]"),
    sizing: Optional[str] = typer.Option(None, help="risk:FRACTION of equity lost at the stop-loss per trade, or fixed:QUANTITY in base units. [default: risk:0.01]"),
    fee_bps: Optional[float] = typer.Option(None, help="Taker fee, basis points of notional (market and stop fills). Set what your account pays; US equities default to 1 (about IBKR Pro Fixed's USD 0.005 per share). [default: 10, or the venue's with --exchange]"),
    maker_fee_bps: Optional[float] = typer.Option(None, help="Maker fee, basis points of notional (limit / take-profit fills); US equities default to 1. [default: 5, or the venue's with --exchange]"),
    slippage_bps: Optional[float] = typer.Option(None, help="Adverse slippage on market and stop fills, basis points. [default: 2]"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="Skip and count malformed data rows instead of failing; the run is marked degraded."),
    exchange: Optional[str] = typer.Option(None, help="Read bars from this exchange's cached history (ccxt id: coinbase, kraken, binance, ...), downloading what is missing; needs --start and --end."),
    offline: bool = typer.Option(False, "--offline", help="With --exchange: never download; fail naming the ranges not cached."),
    cache_dir: Optional[Path] = typer.Option(None, help="Exchange cache root (default $TRADEWARDEN_CACHE or ~/.cache/tradewarden)."),
    db: Optional[str] = typer.Option(None, help="Ledger database: SQLite file path or SQLAlchemy URL. [default: warden-out/ledger.db]"),
    out: Optional[Path] = typer.Option(None, help="Directory for the JSON and HTML reports. [default: warden-out/reports]"),
    report_format: Optional[ReportFormat] = typer.Option(None, help="all: console report + JSON + HTML files; console: console only; json: JSON on stdout (with run_id and paths) and file; html: HTML file only. [default: all]"),
    gate: bool = typer.Option(False, "--gate", help="Exit with status 3 when a validation gate fails."),
    min_trades: Optional[int] = typer.Option(None, help="Gate: minimum closed trades. [default: 100]"),
    min_profit_factor: Optional[float] = typer.Option(None, help="Gate: minimum profit factor. [default: 1.0]"),
    max_drawdown_pct: Optional[float] = typer.Option(None, help="Gate: maximum drawdown, percent of peak equity. [default: 35]"),
    set_: list[str] = SET_OPT,
    adjust: Optional[str] = typer.Option(None, "--adjust", metavar="raw|split|split_dividend", help="Price basis of US equities (the bundled ones, or a --data file with a split column): raw traded prices; split: back-adjusted for splits; split_dividend: scaled to the vendor's split- and dividend-adjusted close. Recorded in the run's config. [default: split: raw prices turn a split into a fake crash (AAPL's 7:1 of 2014-06-09 reads as -86 %), and split_dividend rewrites earlier prices by dividends paid later, levels the strategy never saw]"),
    reference_path: bool = typer.Option(False, "--reference-path", help="Run every bar through the engine's per-bar reference path (TradingEngine.on_bar) instead of the batch path; the ledger rows are identical, only slower."),
) -> None:
    """Replay historical bars through the engine, record every decision, print the report.

    Settings come from flags, then the environment (TRADEWARDEN_KEY,
    TRADEWARDEN_SECTION__KEY), then --config FILE, then defaults.
    """
    from tradewarden.ops.replay import load_inputs, resolve_config
    from tradewarden.ledger import Ledger
    from tradewarden.ops.kernel import run_replay
    from tradewarden.settings import load_settings
    from tradewarden.strategy import parse_params

    err_console = Console(stderr=True)
    try:
        flags = {"symbols": (symbols, "--symbols"), "start": (start, "--start"), "end": (end, "--end"),
                 "timeframe": (timeframe, "--timeframe"), "data": (str(data) if data else None, "--data"),
                 "strategy": (strategy, "--strategy"), "capital": (capital, "--capital"),
                 "capital_mode": (capital_mode.value if capital_mode else None, "--capital-mode"),
                 "risk.sizing": (sizing, "--sizing"), "fee_bps": (fee_bps, "--fee-bps"),
                 "maker_fee_bps": (maker_fee_bps, "--maker-fee-bps"),
                 "slippage_bps": (slippage_bps, "--slippage-bps"),
                 "skip_bad_rows": (skip_bad_rows or None, "--skip-bad-rows"),
                 "exchange": (exchange, "--exchange"), "offline": (offline or None, "--offline"),
                 "cache_dir": (str(cache_dir) if cache_dir else None, "--cache-dir"),
                 "ledger.db": (db, "--db"), "report.out": (str(out) if out else None, "--out"),
                 "report.format": (report_format.value if report_format else None, "--report-format"),
                 "gates.enforce": (gate or None, "--gate"),
                 "gates.min_closed_trades": (min_trades, "--min-trades"),
                 "gates.min_profit_factor": (min_profit_factor, "--min-profit-factor"),
                 "gates.max_drawdown_pct": (max_drawdown_pct, "--max-drawdown-pct"),
                 "adjust": (adjust, "--adjust")}
        cli = {k: v for k, v in flags.items() if v[0] is not None}
        cli.update(_set_pairs(set_))
        cli.update({f"params.{k}": (v, f"-p {k}={v}") for k, v in parse_params(param).items()})
        cli["mode"] = ("replay", "warden replay")
        loaded = load_settings(config, cli)
        cfg = loaded.run_config()
        if cfg.strategy == "put_writer":        # option chains: the options desk
            _replay_options(loaded, cfg, err_console)
            return
        cfg, strategy = resolve_config(cfg)     # the strategy and its parameters, before any ledger
        fmt = ReportFormat(loaded.report.format)
        out_dir = _writable_dir(loaded.report.out, loaded.origin("report.out")) \
            if fmt is not ReportFormat.console else loaded.report.out
        ledger = Ledger(loaded.ledger.url(), background=True)
        with _progress(err_console, "download", "candles") as dl:
            inputs = load_inputs(cfg, progress=dl, strategy=strategy)
        with Progress(TextColumn("[bold]replay[/]"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("bars"), TimeElapsedColumn(), console=err_console,
                      transient=True) as bar:
            task = bar.add_task("replay", total=inputs.total_bars)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = run_replay(cfg, ledger, progress=progress, inputs=inputs,
                                reference=reference_path)
        del inputs                          # the bars are in the ledger now: free them first
        for w in result.warnings:
            err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
        passed = _emit_report(ledger, result.run_id, loaded.gates.gate_config(), fmt, out_dir)
        ledger.close()
    except KeyboardInterrupt as exc:        # SIGTERM / Ctrl-C: the run is marked interrupted
        raise _interrupted(exc) from None
    except ValidationError as exc:
        raise _fail(_validation_message(exc)) from None
    except typer.Exit:
        raise
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    if loaded.gates.enforce and not passed:
        raise typer.Exit(EXIT_GATE_FAILED)


def _replay_options(loaded: Any, cfg: Any, err_console: Console) -> None:
    """``warden replay --strategy put_writer``: the put writer over an option chain
    (``--data`` a chain file, default the bundled SPX puts) through the options desk."""
    from tradewarden.ledger import Ledger
    from tradewarden.ops.options_replay import (
        DEFAULT_CHAIN,
        DEFAULT_OPTIONS_CAPITAL,
        OptionsRunConfig,
        run_options_replay,
    )
    from tradewarden.strategy.put_writer import PutWriterParams

    params = dict(cfg.params)
    if cfg.data is None and "underlying" not in params:
        params["underlying"] = "SPX"            # the bundled sample's underlying
    capital = (DEFAULT_OPTIONS_CAPITAL if loaded.origin("capital").kind == "default"
               else cfg.capital)
    try:
        ocfg = OptionsRunConfig(chain=str(cfg.data) if cfg.data else DEFAULT_CHAIN,
                                params=PutWriterParams(**params), capital=capital)
    except ValidationError as exc:
        raise _fail("--param: " + _validation_message(exc)) from None
    fmt = ReportFormat(loaded.report.format)
    out_dir = _writable_dir(loaded.report.out, loaded.origin("report.out")) \
        if fmt is not ReportFormat.console else loaded.report.out
    ledger = Ledger(loaded.ledger.url(), background=True)
    with Progress(TextColumn("[bold]replay[/]"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("quote dates"), TimeElapsedColumn(), console=err_console,
                  transient=True) as bar:
        task = bar.add_task("replay", total=None)
        result = run_options_replay(ocfg, ledger, progress=lambda d, t: bar.update(
            task, completed=d, total=t))
    c = result.counts
    err_console.print(f"options desk: {result.snapshots} quote dates, {c.decisions} decisions, "
                      f"{c.trades_closed} trades closed, {c.assignments} assignments; "
                      f"final net liquidation {result.final_equity:,.2f} USD", highlight=False)
    _emit_report(ledger, result.run_id, loaded.gates.gate_config(), fmt, out_dir)
    ledger.close()


@config_app.command("show")
def config_show(config: Optional[Path] = CONFIG_OPT, set_: list[str] = SET_OPT,
                json_: bool = typer.Option(False, "--json", help="Print key, value and source as JSON.")) -> None:
    """Print the effective configuration and where each value came from.

    Sources: a flag (--set), the environment (TRADEWARDEN_...), a secret file, the
    config file, or the default. Secrets are never printed, only whether they are set.
    """
    from rich.table import Table

    from tradewarden.settings import load_settings
    try:
        loaded = load_settings(config, _set_pairs(set_))
        loaded.run_config()                 # cross-field checks (duplicate symbols, ...)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    rows = loaded.rows()
    if json_:
        import json
        typer.echo(json.dumps([{"key": k, "value": v, "source": o} for k, v, o in rows], indent=2))
        return
    console = Console()
    if loaded.config_file is not None:
        console.print(f"config file: {loaded.config_file}", highlight=False, soft_wrap=True)
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    for key, value, origin in rows:
        short = "file" if origin.startswith("file ") else origin
        table.add_row(key, value, short, style="dim" if origin == "default" else None)
    console.print(table)


@config_app.command("init")
def config_init(path: Path = typer.Argument(Path("tradewarden.toml"), help="File to write."),
                force: bool = typer.Option(False, "--force", help="Overwrite an existing file.")) -> None:
    """Write a commented starter config file with every setting at its default."""
    from tradewarden.settings import starter_config
    if path.exists() and not force:
        raise _fail(f"{path} exists; pass --force to overwrite it")
    try:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(starter_config(), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise _fail(f"{path}: cannot write ({exc.strerror})") from None
    Console().print(f"wrote {path}; use it with `warden replay --config {path}`", highlight=False)


def _writable_dir(path: Path, origin: object) -> Path:
    """Create ``path`` if needed and check it is a writable directory, before any run starts.

    Raises
    ------
    OSError
        Naming the flag or source and the path, when it cannot be created or written.
    """
    import os
    where = "--out" if str(origin) == "default" else str(origin)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"{where} {path}: cannot create the directory ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OSError(f"{where} {path}: the directory is not writable")
    return path


@app.command()
def bench(bars: int = typer.Option(1_000_000, help="Bars to replay through the full path (tiled from the bundled real data)."),
          symbols: int = typer.Option(3, help="Symbols (bundled series cycled)."),
          memory_sizes: str = typer.Option("250000,500000,1000000", help="Comma-separated bar counts for the peak-memory scan (each in a fresh process); empty to skip."),
          db: Optional[str] = typer.Option(None, help="Ledger for the benchmark (default: a temporary SQLite file)."),
          file_bars: int = typer.Option(0, min=0, help="Also write a CSV of this many one-minute bars (3000000 is about 200 MB) and measure `warden replay` of it and `warden report` on it, each a fresh process: seconds and peak RSS against the targets (replay < 600 MB, report < 400 MB). 0 skips it."),
          skip_throughput: bool = typer.Option(False, "--skip-throughput", help="Only the --file-bars measurement.")) -> None:
    """Measure replay throughput (bars/s) and peak memory through the full engine path."""
    from tradewarden.bench import measure_file, print_file_rows, run_bench
    console = Console()
    try:
        if not skip_throughput:
            run_bench(bars=bars, n_symbols=symbols, db=db,
                      memory_sizes=[int(x) for x in memory_sizes.split(",") if x.strip()],
                      console=console)
        if file_bars:
            with console.status(f"writing {file_bars:,} bars, replaying them, reporting..."):
                rows = measure_file(file_bars)
            print_file_rows(rows, console)
    except (*_known_errors(), RuntimeError) as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    """Console-script entry point."""
    import gc
    try:
        app()
    finally:
        # Exit without a last full collection over every object the run left alive
        # (about 0.3 s after a million-bar replay): move them out of the collector's
        # reach; the interpreter still runs its normal shutdown.
        gc.freeze()


def _register_commands() -> None:
    from tradewarden import cli_ledger, cli_strategies
    from tradewarden.cli_data import data_app
    cli_ledger.register(app)
    cli_strategies.register(app)
    app.add_typer(data_app, name="data")
    app.add_typer(config_app, name="config")
    from tradewarden.cli_approvals import approvals_app
    app.add_typer(approvals_app, name="approvals")
    from tradewarden import cli_deploy
    cli_deploy.register(app)
    from tradewarden import cli_paper
    cli_paper.register(app)
    from tradewarden import cli_live
    cli_live.register(app)
    from tradewarden import cli_ibkr
    cli_ibkr.register(app)
    from tradewarden import cli_daemon
    cli_daemon.register(app)
    from tradewarden import cli_serve
    cli_serve.register(app)
    from tradewarden import cli_ml
    cli_ml.register(app)


_register_commands()


if __name__ == "__main__":
    main()
