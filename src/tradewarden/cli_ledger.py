"""``warden runs / report / trades``: read-only commands over the ledger, and report output."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tradewarden.cli_common import (
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
)


def register(app: typer.Typer) -> None:
    """Add the ledger commands to ``app``."""
    app.command()(runs)
    app.command()(report)
    app.command()(trades)


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


