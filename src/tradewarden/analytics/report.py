"""Run reports: built from the ledger only, rendered to console, JSON, HTML and CSV.

:func:`build_report` reads one run through SQLAlchemy (``runs``, ``trades``,
``equity``, ``decisions``, ``events``) and returns a :class:`Report`. The renderers
only format a report; :func:`write_html` and :func:`trades_to_csv` read the ledger
again for the series they draw or list, so everything shown is re-derivable with SQL.
"""

from __future__ import annotations

import csv
import json
import math
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, TextIO

import numpy as np
from pydantic import BaseModel, ConfigDict
from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from tradewarden.analytics.formatting import (
    DASH,
    MONTHS,
    fmt_int,
    fmt_money,
    fmt_pct,
    fmt_ratio,
    gate_threshold,
    gate_value,
    header_rows,
    monthly_rows,
    performance_rows,
    risk_rows,
    trade_rows,
)
from tradewarden.analytics.gates import (
    GateConfig,
    GateResult,
    all_passed,
    evaluate_gates,
)
from tradewarden.analytics.metrics import (
    ANNUALIZATION_NOTE,
    SESSION_NOTE,
    AccountStats,
    Bind,
    DataQuality,
    DecisionStats,
    PerformanceStats,
    RiskStats,
    RunInfo,
    SymbolQuality,
    TradeStats,
    _trade_stats_from_frame,
    connect,
    event_counts,
    ledger_url,
    load_run,
    load_trades,
    run_source,
    scan_run,
    summarize_data_quality,
)
from tradewarden.ledger.schema import runs, trades

if TYPE_CHECKING:
    from tradewarden.domain.values import BarSeries

__all__ = ["CSV_COLUMNS", "Report", "SymbolBreakdown", "build_report", "list_runs",
           "render_console", "render_trades", "report_to_dict", "trade_listing",
           "trades_to_csv", "write_html", "write_json"]

#: Column order of :func:`trades_to_csv` (and the keys of :func:`trade_listing`'s rows).
CSV_COLUMNS = ("entry_time", "exit_time", "symbol", "side", "quantity", "entry_price",
               "exit_price", "fees", "pnl", "return_pct", "exit_reason", "entry_reason",
               "duration", "holding_seconds", "mae_price", "mfe_price", "mae_pct", "mfe_pct")

CONVENTIONS = (
    "win: pnl > 0; loss: pnl < 0; breakeven: pnl == 0 (counted in closed trades and the "
    "win-rate denominator, never a win or a loss; it ends a losing streak)",
    "profit factor = gross profit / |gross loss|; shown as null in JSON (∞ on screen) "
    "when there are no losing trades",
    "expectancy = mean net pnl per closed trade (quote currency); payoff ratio = "
    "avg win / |avg loss|",
    "total equity = sum over accounts of each account's last equity mark (step function; "
    "initial capital before its first mark)",
    "max drawdown = deepest (peak - trough) / peak of total equity, peak seeded with the "
    "initial capital; the quote amount is that episode's peak - trough",
    f"Sharpe and Sortino: {ANNUALIZATION_NOTE} (empyrical-reloaded's definitions); on a "
    f"market with sessions (no weekend bars): {SESSION_NOTE}",
    "CAGR = prod(1 + daily r) ** (periods a year / days) - 1; Calmar = CAGR / max drawdown "
    "(per bar); monthly and yearly returns compound the daily returns (empyrical-reloaded's "
    "cagr, calmar_ratio, aggregate_returns)",
    "time in market = share of bar times with a position held at the bar's close; buy and "
    "hold = the starting capital split equally over the symbols, bought at each first close "
    "and valued at its last, no fees",
    "MAE / MFE = the lowest / highest price a trade lived through (fill prices and the range "
    "of every bar it was held at the close), as % of the entry price",
)


class SymbolBreakdown(BaseModel):
    """Per-symbol slice of a report: trades, its account (independent capital mode),
    decision counts by action and data quality."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    trades: TradeStats
    account: AccountStats | None = None
    decisions: dict[str, int] = {}
    data_quality: SymbolQuality | None = None


class Report(BaseModel):
    """Everything a run report says, computed from the ledger.

    ``passed`` is True only when every gate passed (a run that is not ``completed``
    never passes); ``verdict`` is ``'PASS'`` or ``'FAIL'``. ``warnings`` are things a
    reader must see (an unfinished run first); ``notes`` are the methodology.
    ``performance`` holds CAGR, Calmar, time in market, buy and hold of the same
    symbols, best and worst month and the monthly and yearly returns
    (:class:`~tradewarden.analytics.metrics.PerformanceStats`).
    """

    model_config = ConfigDict(frozen=True)

    run: RunInfo
    ledger_url: str
    verdict: str
    passed: bool
    completed: bool
    gates: list[GateResult]
    gate_config: GateConfig
    trades: TradeStats
    risk: RiskStats
    per_symbol: dict[str, SymbolBreakdown]
    data_quality: DataQuality
    decisions: DecisionStats
    events: dict[str, int] = {}
    warnings: list[str] = []
    notes: list[str] = []
    performance: PerformanceStats = PerformanceStats()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (see :func:`report_to_dict`)."""
        return report_to_dict(self)


# --------------------------------------------------------------------------- build

def build_report(engine: Bind | Any, run_id: str | None = None,
                 gates: GateConfig | None = None) -> Report:
    """Build the report of one run from the ledger.

    Parameters
    ----------
    engine : Engine | Connection | ReplayRun
        The ledger database, or what :func:`tradewarden.replay` returns (its ledger,
        run and gates are used).
    run_id : str, optional
        The run to report (required with a database).
    gates : GateConfig | None
        Gate thresholds (default: the ``ReplayRun``'s, else :class:`GateConfig()`).

    Raises
    ------
    LookupError
        ``no run '<run_id>' in ledger <url>`` for an unknown run.
    TypeError
        Without ``run_id`` when ``engine`` is a database.

    Notes
    -----
    The equity curve, drawdown, daily returns and decision counts are folded from
    the ledger in chunks (:func:`~tradewarden.analytics.metrics.scan_run`): memory
    stays flat in the number of decisions; only the trades are held whole.
    """
    if gates is None and run_id is None:
        gates = getattr(engine, "gates", None)
    engine, run_id = run_source(engine, run_id)
    gates = gates or GateConfig()
    with connect(engine) as conn:
        run = load_run(conn, run_id)
        trades_df = load_trades(conn, run_id)
        scan = scan_run(conn, run_id, run)       # equity and decisions, in chunks
        evts = event_counts(conn, run_id)
    tstats = _trade_stats_from_frame(trades_df, run.symbols)
    risk = scan.risk(trades_df)
    perf = scan.performance(risk, run.symbols)
    dstats = scan.decisions
    dq = summarize_data_quality(run)
    completed = run.status == "completed"
    gate_results = evaluate_gates(gates, run_status=run.status,
                                  closed_trades=tstats.overall.closed_trades,
                                  profit_factor=tstats.overall.profit_factor,
                                  max_drawdown_pct=risk.max_drawdown_pct
                                  if not scan.empty else None)
    passed = all_passed(gate_results)

    warnings: list[str] = []
    if not completed:
        err = f" (error: {run.error})" if run.error else ""
        warnings.append(f"RUN NOT COMPLETED: status is '{run.status}'{err}; the figures cover "
                        "only what the ledger recorded, and the gates fail")
    if run.data_integrity != "ok":
        warnings.append(f"data integrity is '{run.data_integrity}'")
    warnings.extend(scan.warnings)
    if risk.equity_marks == 0:
        warnings.append("no equity marks in the ledger: the equity curve is flat at the "
                        "initial capital")
    if run.trades_closed != tstats.overall.closed_trades:
        warnings.append(f"runs.trades_closed is {run.trades_closed} but the trades table "
                        f"holds {tstats.overall.closed_trades} rows")
    for kind in ("halt", "error"):
        if evts.get(kind):
            warnings.append(f"{evts[kind]} '{kind}' event(s) recorded")

    notes = list(CONVENTIONS)
    if tstats.overall.profit_factor_note:
        notes.append(f"profit factor {tstats.overall.profit_factor_note}")
    notes.extend(risk.ratio_notes)
    notes.extend(perf.notes)

    names = list(tstats.by_symbol)
    per_symbol = {
        s: SymbolBreakdown(symbol=s, trades=tstats.by_symbol[s], account=risk.accounts.get(s),
                           decisions=dstats.by_symbol.get(s, {}),
                           data_quality=dq.symbols.get(s))
        for s in names}
    return Report(run=run, ledger_url=ledger_url(engine), verdict="PASS" if passed else "FAIL",
                  passed=passed, completed=completed, gates=gate_results, gate_config=gates,
                  trades=tstats.overall, risk=risk, per_symbol=per_symbol, data_quality=dq,
                  decisions=dstats, events=evts, warnings=warnings, notes=notes,
                  performance=perf)


# --------------------------------------------------------------------------- JSON

def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else None
    if isinstance(x, Decimal):
        return format(x, "f") if x.is_finite() else None
    return str(x)


def report_to_dict(report: Report) -> dict[str, Any]:
    """A JSON-safe dict of the report: plain floats, non-finite numbers as ``None``.

    An infinite profit factor becomes ``None``; ``trades.profit_factor_note`` and the
    gate's ``note`` say why. The raw ``runs.data_quality`` text is left out (it is
    decoded under ``data_quality``).
    """
    data = report.model_dump(mode="python", exclude={"run": {"data_quality_json"}})
    return _json_safe(data)


def write_json(report: Report, path: str | Path) -> Path:
    """Write :func:`report_to_dict` as indented JSON (strict: no NaN/Infinity tokens).

    The file is written to a temporary file beside ``path`` and renamed: a failure
    leaves no partial file (and any previous report untouched).

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    from tradewarden._io import atomic_write_text

    text = json.dumps(report_to_dict(report), indent=2, allow_nan=False, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")


# --------------------------------------------------------------------------- console

def _kv_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, show_header=False, title_justify="left",
                  title_style="bold")
    table.add_column("metric", style="dim", no_wrap=True)
    table.add_column("value", overflow="fold")
    for k, v in rows:
        table.add_row(k, v)
    return table


def _fitting_tables(console: Console, title: str, headers: list[str], rows: list[list[Any]],
                    left: tuple[str, ...] = (), whole: bool = False) -> list[Table]:
    """Tables of ``rows`` that fit the console's width, never cutting a value.

    The first column (the key, e.g. the symbol) is repeated in every table; the other
    columns go into the first table while it still shows, at the console's width,
    every header word and every value whole (headers may wrap at spaces), then into a
    continuation table. Each column is at least as wide as its widest value, so a
    value never folds or ends in an ellipsis. With ``whole`` headers do not wrap
    either: a column joins a table only while everything fits on its line.
    """
    import io

    from rich.cells import cell_len
    from rich.measure import Measurement

    def plain(v: Any) -> str:
        return v.plain if isinstance(v, Text) else str(v)

    widths = [[cell_len(plain(v)) for v in row] for row in rows]
    widest = [max([w[j] for w in widths] or [1]) for j in range(len(headers))]
    # the rows holding each column's widest value: enough to see whether a layout fits
    probe = sorted({max(range(len(rows)), key=lambda i: widths[i][j])
                    for j in range(len(headers))}) if rows else []

    def build(cols: list[int], heading: str, subset: list[int] | None = None) -> Table:
        table = Table(title=heading, box=box.SIMPLE_HEAVY, title_justify="left",
                      title_style="bold", show_edge=False, pad_edge=False,
                      collapse_padding=True)
        for j in cols:
            h = headers[j]
            table.add_column(h, overflow="fold", no_wrap=whole, min_width=widest[j],
                             justify="left" if j == 0 or h in left else "right")
        for i in (range(len(rows)) if subset is None else subset):
            table.add_row(*[rows[i][j] for j in cols])
        return table

    def fits(cols: list[int]) -> bool:
        table = build(cols, "", probe)
        wide = console.options.update(width=10_000, max_width=10_000)
        if Measurement.get(console, wide, table).maximum <= console.width:
            return True              # every cell on one line
        if whole:
            return False
        buf = io.StringIO()
        Console(file=buf, width=console.width, color_system=None, legacy_windows=False,
                emoji=False, highlight=False).print(table)
        lines = buf.getvalue().splitlines()
        words = set(" ".join(lines).split())
        return (all(w in words for j in cols for w in headers[j].split())
                and all(any(plain(rows[i][j]) in line for line in lines)
                        for i in probe for j in cols))

    groups: list[list[int]] = []
    current = [0]
    for j in range(1, len(headers)):
        trial = current + [j]
        if len(current) == 1 or fits(trial):
            current = trial
        else:
            groups.append(current)
            current = [0, j]
    groups.append(current)
    short = title.split(" (")[0].split(" — ")[0]    # a continuation's title: the name only
    return [build(g, title if i == 0 else f"{short} (continued)") for i, g in enumerate(groups)]


def render_console(report: Report, console: Console) -> None:
    """Print the report as Rich panels and tables.

    Sections: header (run metadata, verdict, warnings), trades, risk, performance
    (CAGR, Calmar, time in market, buy and hold, best and worst month), monthly
    returns, per symbol, data quality, decisions, gates (PASS green / FAIL red).
    Readable at 80 columns and in a file or pipe (Rich's width is then 80): values are never cut short with an
    ellipsis; a table too wide for the console continues in a second table, long
    text wraps.
    """
    verdict_style = "bold white on green" if report.passed else "bold white on red"
    status_style = "green" if report.completed else "bold red"
    head = Table.grid(padding=(0, 2))
    head.add_column(style="dim", no_wrap=True)
    head.add_column(overflow="fold")
    for k, v in header_rows(report):
        head.add_row(k, Text(v, style=status_style) if k == "status" else Text(v))
    parts: list[Any] = [Text.assemble(("verdict ", "bold"), (f" {report.verdict} ", verdict_style)),
                        head]
    for w in report.warnings:
        style = "bold red" if w.startswith("RUN NOT COMPLETED") else "yellow"
        parts.append(Text(f"⚠ {w}", style=style))
    console.print(Panel(Group(*parts), title=f"tradewarden run report — {report.run.run_id}",
                        border_style="green" if report.passed else "red"))

    console.print(_kv_table("Trades", trade_rows(report.trades)))
    console.print(_kv_table("Risk", risk_rows(report.risk)))
    perf = report.performance
    console.print(_kv_table("Performance", performance_rows(perf, report.risk)))
    months = monthly_rows(perf)
    if months:
        title, heads = "Monthly returns, % (UTC months; the year's compounded)", \
            ["year", *MONTHS, "year"]
        tables = _fitting_tables(console, title, heads, months)
        if len(tables) > 1:       # too narrow for a year per line: half a year per table
            tables = [*_fitting_tables(console, "Monthly returns, % (UTC), Jan to Jun",
                                       heads[:7], [r[:7] for r in months]),
                      *_fitting_tables(console, "Jul to Dec, and the year compounded",
                                       [heads[0], *heads[7:]],
                                       [[r[0], *r[7:]] for r in months])]
        for table in tables:
            console.print(table)
            console.print()

    sym_rows = []
    for name, b in report.per_symbol.items():
        t, a = b.trades, b.account
        sym_rows.append([name, fmt_int(t.closed_trades), fmt_pct(t.win_rate_pct),
                         fmt_ratio(t.profit_factor), fmt_money(t.expectancy),
                         fmt_money(t.net_pnl), fmt_money(t.fees),
                         fmt_money(a.final_equity) if a else DASH,
                         fmt_pct(a.max_drawdown_pct) if a else DASH,
                         fmt_pct(perf.exposure_by_symbol.get(name)),
                         fmt_pct(perf.buy_hold_by_symbol.get(name))])
    for table in _fitting_tables(console, "Per symbol (PF = profit factor, expect. = "
                                          "expectancy, B&H = buy and hold)",
                                 ["symbol", "trades", "win rate", "PF", "expect.", "net pnl",
                                  "fees", "final equity", "max DD", "in market", "B&H"],
                                 sym_rows):
        console.print(table)
        console.print()

    dq = report.data_quality
    dq_rows = [[name, fmt_int(q.rows), fmt_int(q.gaps), fmt_int(q.missing_bars),
                fmt_int(q.zero_volume_bars), fmt_int(q.rows_skipped),
                Text(q.status or DASH, style="green" if q.status == "ok" else "yellow")]
               for name, q in dq.symbols.items()]
    for table in _fitting_tables(console, f"Data quality — integrity {dq.integrity}, "
                                          f"{fmt_int(dq.bars_processed)} bars processed",
                                 ["symbol", "rows", "gaps", "missing bars", "zero-volume",
                                  "rows skipped", "status"], dq_rows, left=("status",)):
        console.print(table)
        console.print()
    for issue in dq.issues:
        console.print(Text(f"  • {issue}", style="yellow"))

    dec = Table(title=f"Decisions — {fmt_int(report.decisions.total)} total",
                box=box.SIMPLE_HEAVY, title_justify="left", title_style="bold")
    dec.add_column("action", overflow="fold")
    dec.add_column("reason", overflow="fold")
    dec.add_column("count", justify="right", overflow="fold")
    for rc in report.decisions.top_reasons:
        dec.add_row(rc.action, rc.reason, fmt_int(rc.count))
    console.print(dec)
    if report.decisions.by_action:
        console.print(Text("  by action: " + ", ".join(
            f"{k} {v:,}" for k, v in report.decisions.by_action.items()), style="dim"))

    gt = Table(title="Gates", box=box.SIMPLE_HEAVY, title_justify="left", title_style="bold")
    for col in ("gate", "threshold", "value", "result", "note"):
        gt.add_column(col, overflow="fold")
    for g in report.gates:
        gt.add_row(g.name, gate_threshold(g), gate_value(g),
                   Text("PASS" if g.passed else "FAIL",
                        style="bold green" if g.passed else "bold red"), g.note)
    console.print(gt)
    console.print(Text.assemble(("overall: ", "bold"), (f" {report.verdict} ", verdict_style)))
    for n in report.notes:
        console.print(Text(f"  note: {n}", style="dim"))


# --------------------------------------------------------------------------- HTML

def write_html(report: Report, engine: Bind, path: str | Path,
               bars: Mapping[str, BarSeries] | str | None = None) -> Path:
    """Write one self-contained HTML page: tables and Plotly charts, plotly.js inline.

    The page (:mod:`tradewarden.analytics.htmlpage`) holds the summary tables, equity
    against buy and hold with the drawdown below it, the monthly returns heat map,
    the trade PnL histogram and, per symbol, candles with volume (or the ledger's
    close), the strategy's recorded inputs, every entry and exit with its details on
    hover, and the halt periods shaded. The series are read from ``engine``; the page
    makes no network request. It is written to a temporary file beside ``path`` and
    renamed: a failure leaves no truncated page.

    Parameters
    ----------
    report : Report
    engine : Engine | Connection
    path : str or pathlib.Path
    bars : mapping of str to BarSeries, str, or None
        The run's OHLCV bars read again from its data source
        (:func:`tradewarden.ops.report_bars.run_bars`), drawn as candles where they
        match the ledger's closes; or why they are not available (shown in the page).
        ``None``: the charts show the ledger's close.

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    from tradewarden.analytics.htmlpage import write_page

    return write_page(report, engine, path, bars)


# --------------------------------------------------------------------------- CSV / list

def _decimals(values: list[Decimal | None]) -> int | None:
    """The most decimal places among ``values`` (what grid they are on), ``None``
    without any."""
    places = [max(0, -int(v.as_tuple().exponent)) for v in values
              if v is not None and v.is_finite()]
    return max(places) if places else None


def _fixed(value: Decimal | None, places: int) -> str:
    """``value`` rounded half-even to ``places`` decimals, plain notation (``""`` when
    missing)."""
    if value is None:
        return ""
    with localcontext() as ctx:
        ctx.prec = 80
        return format(value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN), "f")


def _pct2(value: float | None) -> str:
    """A percentage with two decimals (``""`` when missing)."""
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.2f}"


def trade_listing(engine: Bind, run_id: str) -> list[dict[str, str]]:
    """Read a run's round trips as text rows with consistent decimals, by entry time.

    Each row has the keys of :data:`CSV_COLUMNS`. Prices (entry, exit, MAE, MFE) and
    quote-currency amounts (fees, pnl) have the decimals of the symbol's price grid,
    quantities those of its quantity grid, both read from the run's own fills (the
    instrument's increments, as the venue or simulator filled them; from its trades'
    recorded prices and quantities when the ledger holds no fill of it); averaged
    prices are rounded half-even to that grid. Percentages
    (``return_pct``, ``mae_pct``, ``mfe_pct``: of the entry price / notional) have two
    decimals. ``entry_reason`` is the reason of the decision that sent the entry order
    (``decisions.reason`` through ``orders.decision_seq``; empty when the ledger has
    no such order, e.g. a position adopted from the venue). ``duration`` is the
    holding time (``2d 03h``, ``5h 30m``), ``holding_seconds`` the same in seconds.
    Times are ISO 8601 UTC. Missing values are empty strings.

    Raises
    ------
    LookupError
        For an unknown run.
    """
    from sqlalchemy import and_

    from tradewarden.analytics.formatting import fmt_duration
    from tradewarden.ledger.schema import decisions, fills, orders

    t, o, d, f = trades.c, orders.alias("o").c, decisions.alias("d").c, fills.c
    o_table, d_table = o.run_id.table, d.run_id.table
    cols = [t.entry_time, t.exit_time, t.symbol, t.side, t.quantity, t.entry_price,
            t.exit_price, t.fees, t.pnl, t.return_pct, t.exit_reason, d.reason,
            t.holding_seconds, t.mae_price, t.mfe_price, t.mae_pct, t.mfe_pct]
    stmt = (select(*cols)
            .select_from(trades.outerjoin(o_table, o.client_order_id == t.entry_order_id)
                         .outerjoin(d_table, and_(d.run_id == o.run_id,
                                                  d.seq == o.decision_seq)))
            .where(t.run_id == run_id).order_by(t.entry_ts, t.trade_id))
    with connect(engine) as conn:
        load_run(conn, run_id)
        rows = conn.execute(stmt).all()
        grid: dict[str, tuple[list[Decimal], list[Decimal]]] = {}
        places_from_trades: set[str] = set()
        for sym, price, qty in conn.execute(select(f.symbol, f.price, f.quantity)
                                            .where(f.run_id == run_id)):
            prices, qtys = grid.setdefault(sym, ([], []))
            prices.append(price)
            qtys.append(qty)
    for row in rows:                    # symbols without fills: their trades' own digits
        if row[2] not in grid or row[2] in places_from_trades:
            prices, qtys = grid.setdefault(row[2], ([], []))
            places_from_trades.add(row[2])
            prices.extend((row[5], row[6]))
            qtys.append(row[4])
    places = {s: (_decimals(p), _decimals(q)) for s, (p, q) in grid.items()}
    out: list[dict[str, str]] = []
    for (entry_time, exit_time, sym, side, qty, entry, exit_, fees, pnl, ret, exit_reason,
         entry_reason, held, mae, mfe, mae_pct, mfe_pct) in rows:
        price_dp, qty_dp = places.get(sym, (None, None))
        price_dp = 8 if price_dp is None else min(price_dp, 12)
        qty_dp = 8 if qty_dp is None else min(qty_dp, 12)
        out.append({
            "entry_time": entry_time, "exit_time": exit_time, "symbol": sym, "side": side,
            "quantity": _fixed(qty, qty_dp), "entry_price": _fixed(entry, price_dp),
            "exit_price": _fixed(exit_, price_dp), "fees": _fixed(fees, price_dp),
            "pnl": _fixed(pnl, price_dp), "return_pct": _pct2(ret),
            "exit_reason": exit_reason, "entry_reason": entry_reason or "",
            "duration": fmt_duration(held) if held is not None else "",
            "holding_seconds": "" if held is None else str(int(held)),
            "mae_price": _fixed(mae, price_dp), "mfe_price": _fixed(mfe, price_dp),
            "mae_pct": _pct2(mae_pct), "mfe_pct": _pct2(mfe_pct)})
    return out


def trades_to_csv(engine: Bind, run_id: str, path: str | Path | TextIO) -> int:
    """Write a run's trades as CSV (:func:`trade_listing`), ordered by entry time.

    Columns are :data:`CSV_COLUMNS`, with the decimals :func:`trade_listing` gives
    them. Returns the number of trades written. A path gets the rows through a
    temporary file beside it, renamed when complete: a failure leaves no empty or
    truncated CSV. An open text stream (``sys.stdout`` for ``--csv -``) is written
    to as it is, after the ledger has been read.

    Raises
    ------
    LookupError
        For an unknown run.
    OSError
        If the file cannot be written.
    """
    from tradewarden._io import atomic_write

    rows = trade_listing(engine, run_id)

    def write(fh: TextIO) -> None:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for row in rows:
            w.writerow([row[c] for c in CSV_COLUMNS])

    if hasattr(path, "write"):
        write(path)
    else:
        with atomic_write(path, newline="") as fh:
            write(fh)
    return len(rows)


#: The columns ``warden trades`` shows on screen: (key of a listing row, header).
_SCREEN_COLUMNS = (("entry_time", "entry (UTC)"), ("symbol", "symbol"),
                   ("entry_reason", "entry reason"), ("exit_reason", "exit reason"),
                   ("entry_price", "entry"), ("exit_price", "exit"), ("pnl", "pnl"),
                   ("return_pct", "return %"), ("mae_pct", "MAE %"), ("mfe_pct", "MFE %"),
                   ("duration", "held"))


def render_trades(rows: list[dict[str, str]], console: Console, title: str) -> None:
    """Print :func:`trade_listing` rows as tables that fit the console's width.

    The entry time and the symbol are repeated in a continuation table when the
    console is too narrow for every column; no value is cut short.
    """
    heads = [h for _, h in _SCREEN_COLUMNS]
    cells = [[(r["entry_time"] or "").replace("T", " ").removesuffix(":00Z")]
             + [r[k] or DASH for k, _ in _SCREEN_COLUMNS[1:]] for r in rows]
    # the symbol goes with the time as the key columns of every table
    keyed = [[f"{c[0]} {c[1]}", *c[2:]] for c in cells]
    key = f"{heads[0]} {heads[1]}"
    for table in _fitting_tables(console, title, [key, *heads[2:]], keyed,
                                 left=("entry reason", "exit reason", "held"), whole=True):
        console.print(table)
        console.print()


def list_runs(engine: Bind, limit: int | None = None, *, figures: bool = False
              ) -> list[dict[str, Any]]:
    """Runs in the ledger, newest first (``started_at`` descending, then ``run_id``).

    Parameters
    ----------
    engine : Engine | Connection
    limit : int, optional
        At most this many runs.
    figures : bool
        Add what ``warden runs`` shows besides: completed_at, heartbeat_at, error,
        decisions, ``params`` (the strategy parameters from ``runs.config``, ``{}`` if
        unreadable) and ``summary`` (the decoded ``runs.summary``, the report's headline
        figures; ``None`` until a report was built).

    Returns
    -------
    list of dict
        Each has run_id, started_at, status, mode, strategy, symbols (list),
        timeframe, trades_closed and bars_processed (and the ``figures`` keys).
    """
    r = runs.c
    cols = [r.run_id, r.started_at, r.status, r.mode, r.strategy, r.symbols, r.timeframe,
            r.trades_closed, r.bars_processed]
    if figures:
        cols += [r.completed_at, r.heartbeat_at, r.error, r.decisions, r.config, r.summary]
    stmt = select(*cols).order_by(r.started_at.desc(), r.run_id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with connect(engine) as conn:
        rows = conn.execute(stmt).mappings().all()
    out = []
    for row in rows:
        item = dict(row)
        try:
            symbols = json.loads(item["symbols"]) if item["symbols"] else []
        except ValueError:
            symbols = [item["symbols"]]
        item["symbols"] = symbols if isinstance(symbols, list) else [symbols]
        item["trades_closed"] = item["trades_closed"] or 0
        item["bars_processed"] = item["bars_processed"] or 0
        if figures:
            item["decisions"] = item["decisions"] or 0
            item["params"] = _json_object(item.pop("config")).get("params") or {}
            item["summary"] = _json_object(item["summary"]) or None
        out.append(item)
    return out


def _json_object(text: str | None) -> dict[str, Any]:
    """A JSON object column decoded, ``{}`` when empty or not an object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
