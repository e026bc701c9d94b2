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
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    fmt_int,
    fmt_money,
    fmt_pct,
    fmt_ratio,
    gate_threshold,
    gate_value,
    header_rows,
    risk_rows,
    trade_rows,
)
from tradewarden.analytics.gates import (
    GateConfig,
    GateResult,
    all_passed,
    evaluate_gates,
)
from tradewarden.analytics.htmlpage import render_html
from tradewarden.analytics.metrics import (
    ANNUALIZATION_NOTE,
    AccountStats,
    Bind,
    DataQuality,
    DecisionStats,
    RiskStats,
    RunInfo,
    SymbolQuality,
    TradeStats,
    _trade_stats_from_frame,
    chart_series,
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

__all__ = ["CSV_COLUMNS", "Report", "SymbolBreakdown", "build_report", "list_runs",
           "render_console", "report_to_dict", "trades_to_csv", "write_html", "write_json"]

#: Column order of :func:`trades_to_csv`.
CSV_COLUMNS = ("entry_time", "exit_time", "symbol", "side", "quantity", "entry_price",
               "exit_price", "fees", "pnl", "return_pct", "exit_reason")

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
    f"Sharpe and Sortino: {ANNUALIZATION_NOTE} (empyrical-reloaded's definitions)",
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

    names = list(tstats.by_symbol)
    per_symbol = {
        s: SymbolBreakdown(symbol=s, trades=tstats.by_symbol[s], account=risk.accounts.get(s),
                           decisions=dstats.by_symbol.get(s, {}),
                           data_quality=dq.symbols.get(s))
        for s in names}
    return Report(run=run, ledger_url=ledger_url(engine), verdict="PASS" if passed else "FAIL",
                  passed=passed, completed=completed, gates=gate_results, gate_config=gates,
                  trades=tstats.overall, risk=risk, per_symbol=per_symbol, data_quality=dq,
                  decisions=dstats, events=evts, warnings=warnings, notes=notes)


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
                    left: tuple[str, ...] = ()) -> list[Table]:
    """Tables of ``rows`` that fit the console's width, never cutting a value.

    The first column (the key, e.g. the symbol) is repeated in every table; the other
    columns go into the first table while its narrowest layout (headers wrapped at
    spaces, every value whole) fits, then into a continuation table. Cells wrap
    (``overflow="fold"``) rather than end in an ellipsis.
    """
    from rich.measure import Measurement

    def build(cols: list[int], heading: str) -> Table:
        table = Table(title=heading, box=box.SIMPLE_HEAVY, title_justify="left",
                      title_style="bold", show_edge=False, pad_edge=False,
                      collapse_padding=True)
        for j in cols:
            h = headers[j]
            table.add_column(h, overflow="fold",
                             justify="left" if j == 0 or h in left else "right")
        for row in rows:
            table.add_row(*[row[j] for j in cols])
        return table

    wide = console.options.update(width=10_000, max_width=10_000)
    groups: list[list[int]] = []
    current = [0]
    for j in range(1, len(headers)):
        trial = current + [j]
        if len(current) == 1 or Measurement.get(console, wide, build(trial, title)).minimum \
                <= console.width:
            current = trial
        else:
            groups.append(current)
            current = [0, j]
    groups.append(current)
    return [build(g, title if i == 0 else f"{title} (continued)") for i, g in enumerate(groups)]


def render_console(report: Report, console: Console) -> None:
    """Print the report as Rich panels and tables.

    Sections: header (run metadata, verdict, warnings), trades, risk, per symbol,
    data quality, decisions, gates (PASS green / FAIL red). Readable at 80 columns and
    in a file or pipe (Rich's width is then 80): values are never cut short with an
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

    sym_rows = []
    for name, b in report.per_symbol.items():
        t, a = b.trades, b.account
        sym_rows.append([name, fmt_int(t.closed_trades), fmt_pct(t.win_rate_pct),
                         fmt_ratio(t.profit_factor), fmt_money(t.expectancy),
                         fmt_money(t.net_pnl), fmt_money(t.fees),
                         fmt_money(a.final_equity) if a else DASH,
                         fmt_pct(a.max_drawdown_pct) if a else DASH])
    for table in _fitting_tables(console, "Per symbol (PF = profit factor, expect. = "
                                          "expectancy)",
                                 ["symbol", "trades", "win rate", "PF", "expect.", "net pnl",
                                  "fees", "final equity", "max DD"], sym_rows):
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

def write_html(report: Report, engine: Bind, path: str | Path) -> Path:
    """Write one self-contained HTML page (inline CSS and SVG; no script, no links).

    It holds the summary tables, the total equity curve, the drawdown curve and, per
    symbol, the price (``decisions.close`` over ``decisions.ts``, thinned to at most
    ~2000 points) with trade entries (green up-triangles) and exits (down-triangles
    coloured by exit reason) from ``trades``. The series are read from ``engine``.
    The page is written to a temporary file beside ``path`` and renamed: a failure
    leaves no truncated page.

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    from tradewarden._io import atomic_write_text

    run_id = report.run.run_id
    with connect(engine) as conn:
        curve, prices = chart_series(conn, run_id, list(report.per_symbol), report.run)
        trades_df = load_trades(conn, run_id)
    return atomic_write_text(path, render_html(report, curve, prices, trades_df))


# --------------------------------------------------------------------------- CSV / list

def trades_to_csv(engine: Bind, run_id: str, path: str | Path) -> int:
    """Write a run's trades as CSV, ordered by entry time then trade id.

    Columns are :data:`CSV_COLUMNS`. Decimal columns (quantity, prices, fees, pnl) are
    the ledger's exact decimals in plain notation; ``return_pct`` is the ledger's REAL
    value (percent; empty when missing). Returns the number of trades written. The
    rows go to a temporary file beside ``path``, renamed when complete: a failure
    leaves no empty or truncated CSV.

    Raises
    ------
    LookupError
        For an unknown run.
    OSError
        If the file cannot be written.
    """
    from tradewarden._io import atomic_write

    t = trades.c
    with connect(engine) as conn:
        load_run(conn, run_id)
        rows = conn.execute(select(*[t[c] for c in CSV_COLUMNS])
                            .where(t.run_id == run_id).order_by(t.entry_ts, t.trade_id)).all()
    with atomic_write(path, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for row in rows:
            w.writerow(["" if v is None else format(v, "f") if isinstance(v, Decimal)
                        else repr(v) if isinstance(v, float) else v for v in row])
    return len(rows)


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
