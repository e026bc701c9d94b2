"""``warden runs / report / trades / compare``: reading commands over the ledger, and
report output.

The reading commands never create a database or a directory: a missing (or empty)
database is ``error: no ledger at PATH`` (exit 2). A ledger written by an older
tradewarden is migrated in place (the migrations only add nullable columns); a
database that is not a tradewarden ledger, or whose schema is newer than this
version, is refused. Opening the ledger marks runs whose process is gone as
``crashed``, and a report built for a finished run stores its headline figures in
``runs.summary`` (what ``warden runs`` and ``warden compare`` show).
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from tradewarden.cli_common import (
    CONFIG_OPT,
    DB_OPT,
    EXIT_GATE_FAILED,
    GATE_OPT,
    MAX_DD_OPT,
    MIN_PF_OPT,
    MIN_TRADES_OPT,
    OUT_OPT,
    ReportFormat,
    _fail,
    _known_errors,
    _validation_message,
    settings_for,
)

#: Version of the ``runs.summary`` JSON layout (2: CAGR, Calmar, time in market, buy and hold).
SUMMARY_VERSION = 2


def register(app: typer.Typer) -> None:
    """Add the ledger commands to ``app``."""
    app.command()(runs)
    app.command()(report)
    app.command()(trades)
    app.command()(compare)


# --------------------------------------------------------------------------- plumbing

@contextmanager
def _reading(db: Any, run_id: str | None = None) -> Iterator[None]:
    """Turn what reading a damaged ledger raises into one-line ``LedgerError``s.

    Database errors (locked, corrupted, missing tables) are described by
    :func:`tradewarden.ledger.store.describe_db_error`; values that cannot be decoded
    (garbage in ``runs``: a capital that is not a number, a missing time, JSON that
    does not parse) name the run.
    """
    from decimal import InvalidOperation

    from sqlalchemy.exc import SQLAlchemyError

    from tradewarden.ledger import LedgerError, display_db
    from tradewarden.ledger.store import describe_db_error
    try:
        yield
    except (LedgerError, LookupError):
        raise
    except SQLAlchemyError as exc:
        raise LedgerError(describe_db_error(exc, db)) from None
    except ValidationError as exc:
        where = f"run {run_id!r}" if run_id else "a run"
        raise LedgerError(f"--db {display_db(db)}: {where} has a malformed ledger row: "
                          f"{_validation_message(exc)}") from None
    except (InvalidOperation, ArithmeticError, ValueError, TypeError) as exc:
        where = f"run {run_id!r}" if run_id else "a run"
        what = str(exc) if not isinstance(exc, InvalidOperation) else "a value is not a number"
        raise LedgerError(f"--db {display_db(db)}: {where} has malformed ledger data "
                          f"({type(exc).__name__}: {what})") from None


def _open_reader(db: str):
    """Open an existing ledger for a reading command (never creates one)."""
    from tradewarden.ledger import open_engine
    return open_engine(db, create=False)


def report_summary(report) -> dict[str, Any]:
    """Return the headline figures of a report, as stored in ``runs.summary``.

    Parameters
    ----------
    report : tradewarden.analytics.Report

    Returns
    -------
    dict
        ``status``, ``return_pct`` (percent of initial capital), ``profit_factor``
        (``"inf"`` with wins and no losses, ``None`` without trades),
        ``closed_trades``, ``win_rate_pct``, ``expectancy``, ``net_pnl``, ``fees``,
        ``final_equity`` (quote currency), ``max_drawdown_pct`` (percent of peak),
        ``sharpe``, ``sortino``, ``cagr_pct``, ``calmar``, ``exposure_pct`` (time in
        market, percent), ``buy_hold_return_pct``, ``verdict`` (``PASS``/``FAIL``) and
        the ``gates`` it was judged by; non-finite numbers are ``None``.
    """
    t, r, p = report.trades, report.risk, report.performance

    def num(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) else None

    pf = t.profit_factor
    return {
        "version": SUMMARY_VERSION, "status": report.run.status,
        "return_pct": num(r.total_return_pct),
        "profit_factor": "inf" if pf is not None and math.isinf(pf) else num(pf),
        "closed_trades": t.closed_trades, "win_rate_pct": num(t.win_rate_pct),
        "expectancy": num(t.expectancy), "net_pnl": num(t.net_pnl), "fees": num(t.fees),
        "final_equity": num(r.final_equity), "max_drawdown_pct": num(r.max_drawdown_pct),
        "sharpe": num(r.sharpe), "sortino": num(r.sortino), "cagr_pct": num(p.cagr_pct),
        "calmar": num(p.calmar), "exposure_pct": num(p.exposure_pct),
        "buy_hold_return_pct": num(p.buy_hold_return_pct), "verdict": report.verdict,
        "gates": report.gate_config.model_dump(mode="json"),
    }


def _store_summary(engine, report) -> None:
    """Cache a finished run's headline figures in ``runs.summary`` (best effort)."""
    from tradewarden.ledger import save_summary
    if report.run.status != "running":
        save_summary(engine, report.run.run_id, report_summary(report))


def _emit_report(ledger, run_id: str, gates, fmt: ReportFormat, out: Path) -> bool:
    """Build a run's report and print / write it as ``fmt`` asks; return whether it passed.

    JSON and HTML files are written to a temporary file in ``out`` and renamed (no
    partial file is left on failure). The report's headline figures are stored in
    ``runs.summary`` when the run is finished.

    Raises
    ------
    LookupError
        Unknown run.
    tradewarden.ledger.LedgerError
        The ledger cannot be read (locked, corrupted, malformed rows).
    OSError
        A report file cannot be written; the message names the file.
    """
    from tradewarden.analytics import (
        build_report,
        render_console,
        report_to_dict,
        write_html,
        write_json,
    )

    with _reading(ledger.db, run_id):
        report = build_report(ledger.engine, run_id, gates)
    _store_summary(ledger.engine, report)
    paths: dict[str, str] = {}
    if fmt in (ReportFormat.json, ReportFormat.all):
        paths["json"] = str(out / f"{run_id}.json")
    if fmt in (ReportFormat.html, ReportFormat.all):
        paths["html"] = str(out / f"{run_id}.html")
        with _writing(paths["html"]), _reading(ledger.db, run_id):
            from tradewarden.ops.report_bars import run_bars   # candles: the run's bars again
            write_html(report, ledger.engine, paths["html"], run_bars(ledger.engine, run_id))
    if "json" in paths:
        with _writing(paths["json"]):
            write_json(report, paths["json"])
    console = Console()
    if fmt is ReportFormat.json:
        doc = {"run_id": run_id, "ledger": ledger.url, "paths": paths, "report": report_to_dict(report)}
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        if fmt in (ReportFormat.console, ReportFormat.all):
            render_console(report, console)
        console.print(f"run_id   [bold]{run_id}[/]")
        console.print(Text(f"ledger   {ledger.url}"), highlight=False)
        for kind, p in paths.items():
            console.print(Text(f"{kind:<8} {p}"), highlight=False)
    return bool(report.passed)


@contextmanager
def _writing(path: str) -> Iterator[None]:
    """Name the file in an ``OSError`` raised while writing it."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(f"cannot write {path}: {reason} (nothing was left behind)") from None


# --------------------------------------------------------------------------- runs

def _fmt(x: Any, kind: str) -> str:
    """Format a summary figure for a table cell (``—`` when missing)."""
    if x is None:
        return "—"
    if kind == "pf" and x == "inf":
        return "∞"
    if isinstance(x, str):
        return x
    if kind == "int":
        return f"{int(x):,}"
    if kind == "pct":
        return f"{x:,.2f}%"
    return f"{x:,.2f}"


def _params_text(params: dict[str, Any]) -> str:
    def short(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, (dict, list)):
            return json.dumps(v, separators=(",", ":"))
        return str(v)
    return " ".join(f"{k}={short(v)}" for k, v in sorted(params.items()))


def _fill_summaries(engine, db: str, rows: list[dict[str, Any]]) -> list[str]:
    """Compute and store the summary of finished runs that lack one; return problems."""
    from tradewarden.analytics import build_report
    problems = []
    for row in rows:
        summary = row.get("summary")
        if row["status"] == "running" or (summary and summary.get("status") == row["status"]
                                          and summary.get("version") == SUMMARY_VERSION):
            continue
        try:
            with _reading(db, row["run_id"]):
                rep = build_report(engine, row["run_id"])
        except _known_errors() as exc:
            problems.append(str(exc))
            continue
        _store_summary(engine, rep)
        row["summary"] = report_summary(rep)
    return problems


_STATUS_STYLE = {"completed": "green", "running": "cyan", "failed": "bold red",
                 "crashed": "bold red", "interrupted": "yellow"}


def _runs_lines(rows: list[dict[str, Any]], width: int) -> list[Text]:
    """The ``warden runs`` listing: one line of figures per run, then its details."""
    headers = ["run", "status", "return", "PF", "trades", "max DD", "gate"]
    right = {"return", "PF", "trades", "max DD"}
    cells = []
    for r in rows:
        s = r.get("summary") or {}
        cells.append([r["run_id"] or "", r["status"] or "", _fmt(s.get("return_pct"), "pct"),
                      _fmt(s.get("profit_factor"), "pf"), _fmt(s.get("closed_trades"), "int")
                      if s else _fmt(r.get("trades_closed"), "int"),
                      _fmt(s.get("max_drawdown_pct"), "pct"), s.get("verdict") or "—"])
    widths = [max([len(h)] + [len(c[j]) for c in cells]) for j, h in enumerate(headers)]

    def line(values: list[str], styles: list[str | None]) -> Text:
        out = Text()
        for j, (v, w) in enumerate(zip(values, widths)):
            if j:
                out.append("  ")
            out.append(v.rjust(w) if headers[j] in right else v.ljust(w), style=styles[j] or "")
        return out

    lines = [line(headers, ["bold"] * len(headers))]
    indent = "    "
    for r, c in zip(rows, cells):
        styles: list[str | None] = [None] * len(headers)
        styles[1] = _STATUS_STYLE.get(c[1])
        styles[6] = {"PASS": "bold green", "FAIL": "bold red"}.get(c[6])
        lines.append(line(c, styles))
        started = (r.get("started_at") or "").replace("T", " ").rstrip("Z")[:16]
        detail = (f"{started} UTC · {r.get('strategy') or '?'} {_params_text(r.get('params') or {})}"
                  f" · {','.join(r.get('symbols') or [])} {r.get('timeframe') or ''}").strip()
        if r["status"] == "running":
            beat = (r.get("heartbeat_at") or "").replace("T", " ").rstrip("Z")
            detail += f" · {r.get('bars_processed') or 0:,} bars so far, last heartbeat {beat or '—'} UTC"
        for part in textwrap.wrap(detail, max(20, width - len(indent)), break_on_hyphens=False):
            lines.append(Text(indent + part, style="dim"))
        if r["status"] in ("failed", "crashed", "interrupted") and r.get("error"):
            for part in textwrap.wrap(r["error"], max(20, width - len(indent))):
                lines.append(Text(indent + part, style=_STATUS_STYLE.get(r["status"], "")))
    return lines


def runs(db: Optional[str] = DB_OPT,
         limit: int = typer.Option(50, min=1, help="Show at most this many runs, newest first."),
         config: Optional[Path] = CONFIG_OPT) -> None:
    """List the runs in the ledger: status, return, profit factor, trades, max drawdown, gate verdict, strategy and parameters (newest first).

    Runs whose process is gone are marked crashed; figures missing for older runs are computed once and stored.
    """
    from tradewarden.analytics import list_runs
    from tradewarden.ledger import display_db
    db = settings_for(config, db).ledger.url()
    try:
        engine = _open_reader(db)
        with _reading(db):
            rows = list_runs(engine, limit=limit, figures=True)
        problems = _fill_summaries(engine, db, rows)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    console = Console()
    console.print(Text(f"{len(rows)} run(s) in {display_db(db)}, newest first", style="bold"),
                  highlight=False)
    for ln in _runs_lines(rows, console.width):
        console.print(ln, highlight=False, crop=False, overflow="fold")
    for p in problems:
        console.print(Text(f"warning: {p}", style="yellow"), highlight=False)


# --------------------------------------------------------------------------- report / trades

def report(run_id: str = typer.Argument(..., help="Run id (see `warden runs`)."),
           db: Optional[str] = DB_OPT,
           out: Path = OUT_OPT,
           report_format: ReportFormat = typer.Option(ReportFormat.console, help="console, json (stdout), html (file), or all."),
           gate: bool = GATE_OPT,
           min_trades: Optional[int] = MIN_TRADES_OPT,
           min_profit_factor: Optional[float] = MIN_PF_OPT,
           max_drawdown_pct: Optional[float] = MAX_DD_OPT,
           config: Optional[Path] = CONFIG_OPT) -> None:
    """Rebuild a run's report from the ledger alone."""
    from tradewarden.ledger import Ledger
    loaded = settings_for(config, db, gate=gate, min_trades=min_trades,
                          min_profit_factor=min_profit_factor, max_drawdown_pct=max_drawdown_pct)
    db, gates, gate = loaded.ledger.url(), loaded.gates.gate_config(), loaded.gates.enforce
    try:
        ledger = Ledger(db, create=False)
        passed = _emit_report(ledger, run_id, gates, report_format, out)
    except _known_errors() as exc:
        raise _fail(str(exc).strip('"')) from None
    if gate and not passed:
        raise typer.Exit(EXIT_GATE_FAILED)


def trades(run_id: str = typer.Argument(..., help="Run id (see `warden runs`)."),
           csv: Optional[Path] = typer.Option(None, "--csv", help="Write the round trips as CSV to this file (written whole or not at all), or to standard output with '-'. Without it they are listed on screen."),
           db: Optional[str] = DB_OPT,
           config: Optional[Path] = CONFIG_OPT) -> None:
    """List or export a run's round trips: entry/exit time, symbol, side, quantity, prices, fees, PnL, return, entry and exit reason, duration, MAE and MFE.

    Prices and quote amounts have the decimals of the symbol's price grid, percentages two.
    """
    from tradewarden.analytics.report import render_trades, trade_listing, trades_to_csv
    db = settings_for(config, db).ledger.url()
    to_stdout = csv is not None and str(csv) == "-"
    try:
        engine = _open_reader(db)
        if csv is None or to_stdout:
            with _reading(db, run_id):
                rows = trade_listing(engine, run_id)
        else:
            with _writing(str(csv)), _reading(db, run_id):
                n = trades_to_csv(engine, run_id, csv)
    except _known_errors() as exc:
        raise _fail(str(exc).strip('"')) from None
    if to_stdout:
        _csv_out(rows)
    elif csv is None:
        console = Console()
        render_trades(rows, console, f"Trades of run {run_id} ({len(rows)})")
        console.print(Text("MAE / MFE: the lowest / highest price while held, % of the entry "
                           "price; --csv FILE or --csv - for every column", style="dim"),
                      highlight=False)
    else:
        Console().print(Text(f"wrote {n} trades to {csv}"), highlight=False)


def _csv_out(rows: list[dict[str, str]]) -> None:
    """Write trade listing rows as CSV to standard output (``--csv -``)."""
    import csv as csv_module

    from tradewarden.analytics.report import CSV_COLUMNS
    w = csv_module.writer(sys.stdout, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for row in rows:
        w.writerow([row[c] for c in CSV_COLUMNS])


# --------------------------------------------------------------------------- compare

def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(configs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Return the configuration keys whose values differ between runs.

    Parameters
    ----------
    configs : list of dict
        Each run's ``runs.config`` decoded; nested sections are flattened with dots
        (``params.entry_window``, ``risk.sizing.value``).

    Returns
    -------
    dict
        ``{key: [value per run]}`` (``None`` where a run lacks the key), in key order.
    """
    flat = [_flatten(c) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    return {k: [f.get(k) for f in flat] for k in keys
            if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1}


_COMPARE_ROWS = (
    ("status", "status", None), ("return", "return_pct", "pct"),
    ("profit factor", "profit_factor", "pf"), ("closed trades", "closed_trades", "int"),
    ("win rate", "win_rate_pct", "pct"), ("expectancy", "expectancy", "num"),
    ("net pnl", "net_pnl", "num"), ("fees", "fees", "num"),
    ("final equity", "final_equity", "num"), ("max drawdown", "max_drawdown_pct", "pct"),
    ("Sharpe", "sharpe", "num"), ("Sortino", "sortino", "num"), ("CAGR", "cagr_pct", "pct"),
    ("Calmar", "calmar", "num"), ("time in market", "exposure_pct", "pct"),
    ("buy and hold", "buy_hold_return_pct", "pct"), ("gate verdict", "verdict", None),
)


def compare(run_ids: list[str] = typer.Argument(..., help="Run ids to put side by side (see `warden runs`)."),
            db: Optional[str] = DB_OPT,
            as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON (for scripts)."),
            min_trades: Optional[int] = MIN_TRADES_OPT,
            min_profit_factor: Optional[float] = MIN_PF_OPT,
            max_drawdown_pct: Optional[float] = MAX_DD_OPT,
            config: Optional[Path] = CONFIG_OPT) -> None:
    """Put runs side by side: metrics as rows, runs as columns, then the configuration
    keys whose values differ."""
    from tradewarden.analytics import GateConfig, build_report
    from tradewarden.analytics.report import _fitting_tables
    from tradewarden.ledger import display_db

    ids = list(dict.fromkeys(run_ids))
    loaded = settings_for(config, db, min_trades=min_trades, min_profit_factor=min_profit_factor,
                          max_drawdown_pct=max_drawdown_pct)
    db, gates = loaded.ledger.url(), loaded.gates.gate_config()
    try:
        engine = _open_reader(db)
        summaries, configs, infos = [], [], []
        for rid in ids:
            with _reading(db, rid):
                rep = build_report(engine, rid, gates)
                configs.append(_config_of(engine, rid))
            if gates == GateConfig():
                _store_summary(engine, rep)
            summaries.append(report_summary(rep))
            infos.append(rep.run)
    except _known_errors() as exc:
        raise _fail(str(exc).strip('"')) from None
    diffs = config_differences(configs)
    if as_json:
        doc = {"ledger": display_db(db), "runs": [
            {"run_id": i.run_id, "strategy": i.strategy, "symbols": i.symbols,
             "timeframe": i.timeframe, "summary": s} for i, s in zip(infos, summaries)],
            "config_differences": diffs}
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return
    headers = ["", *ids]
    rows: list[list[Any]] = [
        ["strategy", *[i.strategy for i in infos]],
        ["symbols", *[",".join(i.symbols) for i in infos]],
        ["timeframe", *[i.timeframe for i in infos]],
        ["range", *[f"{(i.range_start or '?')[:10]} → {(i.range_end or '?')[:10]}" for i in infos]],
    ]
    for label, key, kind in _COMPARE_ROWS:
        cells: list[Any] = []
        for s in summaries:
            v = _fmt(s.get(key), kind or "str")
            style = {"PASS": "bold green", "FAIL": "bold red"}.get(v) if key == "verdict" else \
                _STATUS_STYLE.get(v) if key == "status" else None
            cells.append(Text(v, style=style or ""))
        rows.append([label, *cells])
    console = Console()
    console.print(Text(f"compare in {display_db(db)}", style="bold"), highlight=False)
    for table in _fitting_tables(console, "Results", headers, rows, left=tuple(ids)):
        console.print(table)
        console.print()
    if diffs:
        diff_rows = [[k, *[_diff_value(v) for v in vals]] for k, vals in diffs.items()]
        for table in _fitting_tables(console, "Configuration: what differs", headers, diff_rows,
                                     left=tuple(ids)):
            console.print(table)
            console.print()
    else:
        console.print(Text("Configuration: identical in every run compared", style="dim"))


def _diff_value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _config_of(engine, run_id: str) -> dict[str, Any]:
    from sqlalchemy import select

    from tradewarden.ledger.schema import runs as runs_table
    with engine.connect() as conn:
        text = conn.execute(select(runs_table.c.config)
                            .where(runs_table.c.run_id == run_id)).scalar_one_or_none()
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {"config": "(unreadable)"}
    return value if isinstance(value, dict) else {"config": "(unreadable)"}
