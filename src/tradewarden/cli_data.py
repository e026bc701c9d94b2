"""``warden data``: download, catalogue and check market data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

data_app = typer.Typer(no_args_is_help=True, help="Download, list and check market data.")

CACHE_HELP = "Exchange cache root (default $TRADEWARDEN_CACHE or ~/.cache/tradewarden)."


def _cache(cache_dir: Optional[Path]):
    from tradewarden.data.cache import OhlcvCache
    return OhlcvCache(cache_dir)


@data_app.command()
def download(
    exchange: str = typer.Option(..., help="ccxt exchange id: coinbase, kraken, binance, or any other ccxt id."),
    symbols: str = typer.Option(..., help="Comma-separated canonical pairs (BTC-USD,ETH-USD)."),
    timeframe: str = typer.Option("1h", help="Candle length the venue serves (1m, 5m, 15m, 1h, 4h, 1d)."),
    start: str = typer.Option(..., help="First candle, UTC date or datetime (inclusive)."),
    end: str = typer.Option(..., help="Stop before this UTC date or datetime (exclusive)."),
    cache_dir: Optional[Path] = typer.Option(None, help=CACHE_HELP),
) -> None:
    """Fetch candles through ccxt into the Parquet cache; only missing ranges are requested.

    Paginates within the venue's per-request limit, uses ccxt's rate limiter, retries
    429/5xx/timeouts with exponential backoff (honouring Retry-After), and writes
    every page as it arrives, so an interrupted download resumes where it stopped.
    """
    from tradewarden.cli_common import _fail, _known_errors, _progress
    from tradewarden.data.download import download_ohlcv

    console, err = Console(), Console(stderr=True)
    cache = _cache(cache_dir)
    try:
        wanted = [s for s in symbols.split(",") if s.strip()]
        with _progress(err, "download", "candles") as bar:
            report = download_ohlcv(exchange, wanted, timeframe, start, end, cache=cache, progress=bar)
        from tradewarden.data.markets import load_market_specs
        specs = load_market_specs(exchange, wanted, root=cache.root)   # cached with its date
    except KeyboardInterrupt:
        raise _fail("interrupted: what was fetched is cached; run the same command to resume", 130) from None
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"{exchange} {timeframe} into {cache.root}", box=None, header_style="bold")
    for col in ("symbol", "venue pair", "fetched", "requests", "retries", "unavailable"):
        table.add_column(col, justify="right" if col in ("fetched", "requests", "retries") else "left")
    for sym, r in report.symbols.items():
        table.add_row(sym, r.venue_symbol.unified if r.venue_symbol else "", f"{r.fetched_rows:,}",
                      str(r.requests), str(r.retries),
                      "; ".join(u.describe() for u in r.unavailable) or "-")
    console.print(table)
    for sym, spec in specs.items():
        inst = spec.instrument
        console.print(f"{sym}: tick {inst.price_increment}, size step {inst.quantity_increment}, "
                      f"min notional {inst.min_notional}, fees maker {spec.maker_bps} / taker "
                      f"{spec.taker_bps} bps ({spec.fee_basis}, read {spec.read_at})", highlight=False)
    for w in report.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    if report.unavailable:
        raise typer.Exit(1)


@data_app.command("list")
def list_(cache_dir: Optional[Path] = typer.Option(None, help=CACHE_HELP),
          data: Optional[Path] = typer.Option(None, "--data", help="Also list your own CSV/Parquet files in this directory.")) -> None:
    """List the series `warden replay` can use, and the other bundled samples and their uses.

    The first table holds bars to replay: the bundled crypto (1h), the bundled daily US
    equities, the exchange cache, your files; gaps and missing bars of daily US equity
    series are counted in NYSE sessions (holidays are not gaps). Below it, how to replay
    each; then the bundled samples that are not bars to trade (the VIX index, an option
    chain, adjusted closes) and what they are for.
    """
    from tradewarden.cli_common import _fail, _known_errors
    from tradewarden.data import bundled_symbols, load_market_data

    table = Table(title="series replay can use (gaps of daily equities in NYSE sessions)",
                  box=None, header_style="bold", pad_edge=False, padding=(0, 1, 0, 0))
    for col in ("source", "symbol", "tf", "first", "last", "rows", "gaps", "missing", "0-vol"):
        # The source may be a long file name: it wraps; the figures never do.
        table.add_column(col, justify="right" if col in ("rows", "gaps", "missing", "0-vol") else "left",
                         no_wrap=col not in ("source", "symbol"), overflow="fold",
                         min_width={"source": 12, "symbol": 8}.get(col))
    try:
        loaded = load_market_data(bundled_symbols())
        for sym, q in loaded.quality.items():
            table.add_row("bundled", sym, "1h", _day(q.first_ts), _day(q.last_ts), f"{q.rows:,}",
                          str(q.gaps), str(q.missing_bars), str(q.zero_volume_bars))
        for source, bars in _bundled_daily():
            q = bars.quality
            table.add_row(source, bars.series.symbol, "1d", _day(q.data.first_ts), _day(q.data.last_ts),
                          f"{q.data.rows:,}", str(q.data.gaps), str(len(q.missing_sessions)),
                          str(q.data.zero_volume_bars))
        for e in _cache(cache_dir).list():
            table.add_row(f"cache:{e.venue}", e.symbol, e.timeframe, _day(e.first_ts), _day(e.last_ts),
                          f"{e.rows:,}", str(e.gaps), str(e.missing_bars), str(e.zero_volume_bars))
        if data is not None:
            table.caption = f"files: {data}"
            for path in sorted(p for p in Path(data).iterdir() if _is_data_file(p)):
                for sym, _, q in _file_series(path):
                    table.add_row(path.name, sym, _tf(q.timeframe_seconds), _day(q.first_ts),
                                  _day(q.last_ts), f"{q.rows:,}", str(q.gaps), str(q.missing_bars),
                                  str(q.zero_volume_bars))
        others = _bundled_other()
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    console = Console()
    console.print(table)
    console.print("replay them: bundled: warden replay --symbols BTC-USD,ETH-USD (1h); "
                  "equities, spy: warden replay --symbols AAPL,MSFT (1d bars, split-adjusted "
                  "unless --adjust says otherwise); cache:VENUE: --exchange VENUE --start "
                  "... --end ...; your files: --data PATH", highlight=False)
    other = Table(title="bundled for other uses (not bars to replay)", box=None,
                  header_style="bold", pad_edge=False, padding=(0, 1, 0, 0))
    for col in ("sample", "what it is, how to use it", "first", "last", "rows"):
        other.add_column(col, justify="right" if col == "rows" else "left",
                         no_wrap=col in ("first", "last", "rows"), overflow="fold",
                         min_width={"sample": 6}.get(col))
    for row in others:
        other.add_row(*row)
    console.print()
    console.print(other)


@data_app.command()
def check(target: str = typer.Argument(..., help="A symbol (bundled, or cached with --exchange) or a CSV/Parquet path."),
          exchange: Optional[str] = typer.Option(None, help="Check this venue's cached series of the symbol."),
          timeframe: str = typer.Option("1h", help="Timeframe of the cached series (with --exchange)."),
          calendar: Optional[str] = typer.Option(None, help="Check daily bars against an exchange calendar, e.g. XNYS (holidays are not gaps)."),
          cache_dir: Optional[Path] = typer.Option(None, help=CACHE_HELP),
          limit: int = typer.Option(30, help="Show at most this many gaps."),
          adjust: Optional[str] = typer.Option(None, "--adjust", metavar="raw|split|split_dividend", help="Price basis of a US equity checked as replay would load it (a bundled ticker, or a file with a split column). [default: split]")) -> None:
    """Run the data validations on one series and print its gap table.

    Also looks for overnight moves that match a stock split ratio (2:1, 3:2, 7:1, 1:10
    ...): prices not adjusted for a split read as a crash or a jump. Each is a warning
    naming the file, the date and the ratio, and the status is "degraded". Daily bars on
    NYSE session dates are measured in NYSE sessions (holidays are not gaps).
    """
    import numpy as np
    import pandas as pd

    from tradewarden.cli_common import _fail, _known_errors
    from tradewarden.data import load_market_data, timeframe_seconds, validate_frame
    from tradewarden.data.calendars import follows_nyse
    from tradewarden.data.equities import daily_file_columns
    from tradewarden.data.loaders import ADJUST_CHOICES
    from tradewarden.data.quality import find_unadjusted_splits
    from tradewarden.domain import iso

    console = Console()
    try:
        if adjust is not None and adjust not in ADJUST_CHOICES:
            raise ValueError(f"invalid --adjust {adjust!r}: expected one of {', '.join(ADJUST_CHOICES)}")
        symbol = target
        if exchange:
            bars = _cache(cache_dir).series(exchange, target, timeframe, require_complete=False)
            frame = pd.DataFrame({"timestamp": bars.ts, "open": bars.open, "high": bars.high,
                                  "low": bars.low, "close": bars.close, "volume": bars.volume})
            _, q = validate_frame(frame, bars.source, timeframe_seconds(timeframe), symbol=target)
            suspects = find_unadjusted_splits(bars.ts, bars.open, bars.close)
            if suspects:
                q = replace(q, split_suspects=[x.describe() for x in suspects], status="degraded")
            ts, source = bars.ts, bars.source
        elif Path(target).is_file() and "split" in daily_file_columns(Path(target)):
            got = load_market_data(None, Path(target), timeframe=None, adjust=adjust)
            symbol = min(got.series)
            ts, q, source = got.series[symbol].ts, got.quality[symbol], target
        elif Path(target).exists():
            symbol, ts, q = _file_series(Path(target))[0]
            source = target
        else:
            got = load_market_data([target], timeframe=None, adjust=adjust)
            symbol = next(iter(got.series))
            ts, q, source = got.series[symbol].ts, got.quality[symbol], got.series[symbol].source
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    console.print(f"[bold]{source}[/]  {q.rows:,} rows  {iso(q.first_ts)} → {iso(q.last_ts)}  "
                  f"status {q.status}", highlight=False)
    for line in q.split_suspects:
        console.print(f"[yellow]warning:[/] {source}: {symbol}: {line}", highlight=False)
    if q.split_suspects:
        console.print("--adjust raw keeps these raw prices; --adjust split (the default) adjusts "
                      "them" if adjust == "raw" else
                      "adjust the prices for splits, or give the file a split_coefficient column "
                      "(replay then adjusts them: --adjust split, the default)", highlight=False)
    if not calendar and follows_nyse(ts) is not None:
        calendar = "XNYS"           # daily bars on NYSE sessions: holidays are not gaps
    if not calendar:
        console.print(f"gaps {q.gaps}, missing bars {q.missing_bars}, largest gap "
                      f"{q.largest_gap_seconds / 3600:g} h, zero-volume bars {q.zero_volume_bars}, "
                      f"rows skipped {q.rows_skipped}", highlight=False)
    step = int(np.median(np.diff(ts))) if len(ts) > 1 else 0
    if calendar:
        from tradewarden.data.calendars import session_gaps
        if calendar.upper() != "XNYS":
            raise _fail(f"--calendar {calendar!r}: only XNYS is supported")
        days = pd.to_datetime(ts, unit="s").date
        sg = session_gaps(days)
        console.print(f"XNYS: {len(sg.missing_sessions)} missing sessions in {sg.gaps} gaps, "
                      f"{len(sg.non_session_days)} rows on non-session days (holidays are not gaps); "
                      f"zero-volume bars {q.zero_volume_bars}, rows skipped {q.rows_skipped}",
                      highlight=False)
        rows = [(str(d), "", "missing session") for d in list(sg.missing_sessions)[:limit]]
        rows += [(str(d), "", "row on a non-session day") for d in list(sg.non_session_days)[:limit]]
    else:
        d = np.diff(ts)
        idx = np.flatnonzero(d > step) if step else np.array([], dtype=int)
        rows = [(iso(int(ts[i])), iso(int(ts[i + 1])), f"{int(d[i] // step) - 1} bars")
                for i in idx[:limit]]
    if rows:
        table = Table(box=None, header_style="bold")
        for col in ("after", "next bar", "missing"):
            table.add_column(col)
        for r in rows:
            table.add_row(*r)
        console.print(table)


def _bundled_daily() -> list:
    """``(label, DailyBars)`` for the bundled daily equities replay can trade, as replay
    loads them by default (split-adjusted; gaps in NYSE sessions). Labels name the
    bundled sample (``equities``, ``spy``)."""
    from tradewarden.data.equities import load_equity_panel, load_spy_daily

    out = [("equities", b) for b in load_equity_panel(adjustment="split").values()]
    out.append(("spy", load_spy_daily(adjustment="split")))
    return out


def _bundled_other() -> list[tuple[str, str, str, str, str]]:
    """``(sample, what, first, last, rows)`` for the bundled samples that are not bars
    to trade, read from the files: the VIX index, the AAPL option chain, the panel of
    adjusted closes."""
    import pandas as pd

    from tradewarden.data.equities import (
        bundled_equity_path,
        load_adj_close_panel,
        load_vix_daily,
    )

    vix = load_vix_daily()
    q = vix.quality.data
    rows = [("vix", ("VIX, the CBOE volatility index: context (the volatility regime), not "
                     "tradable (data.equities.load_vix_daily)"),
             _day(q.first_ts), _day(q.last_ts), f"{q.rows:,}")]
    for name, what in (("aapl_options", "option chain, end of day, {n} expirations: quotes "
                                         "(data.options.load_option_chain)"),
                       ("spx_puts", "puts, end of day, {n} expirations: the put writer's "
                                    "replay sample (warden replay --strategy put_writer)")):
        chain = pd.read_csv(bundled_equity_path(name),
                            usecols=["quote_date", "underlying", "expiration"])
        rows.append((name,
                     (f"{'/'.join(sorted(chain['underlying'].unique()))} "
                      + what.format(n=chain["expiration"].nunique())),
                     str(chain["quote_date"].min())[:10], str(chain["quote_date"].max())[:10],
                     f"{len(chain):,}"))
    panel = load_adj_close_panel()
    dates = panel.prices.index
    rows.append(("adj_close",
                 (f"adjusted closes of {', '.join(panel.symbols)}, no OHLCV: returns and "
                  "portfolio research (data.equities.load_adj_close_panel)"),
                 str(dates.min())[:10], str(dates.max())[:10],
                 f"{int(panel.prices.notna().sum().sum()):,}"))
    return rows


def _day(ts: int | None) -> str:
    from tradewarden.domain import iso
    return "" if ts is None else iso(int(ts))[:10]


def _tf(seconds: int | None) -> str:
    from tradewarden.data import timeframe_label
    return "" if not seconds else timeframe_label(seconds)


def _file_series(path: Path) -> list:
    """``(symbol, ts array, DataQuality)`` for each symbol in a user OHLCV file (streamed)."""
    from tradewarden.data.loaders import check_file
    return check_file(path)


def _is_data_file(p: Path) -> bool:
    name = p.name.lower()
    return p.is_file() and name.endswith((".csv", ".csv.gz", ".parquet"))
