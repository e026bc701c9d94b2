"""``warden approvals``: intents the governor queued for a person's approval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from tradewarden.cli_common import CONFIG_OPT, DB_OPT, _fail, _known_errors, settings_for

approvals_app = typer.Typer(no_args_is_help=True,
                            help="Intents the governor queued for a person's approval.")

STATUSES = ("pending", "approved", "rejected", "expired", "all")


@approvals_app.command("list")
def list_approvals(
    deployment: Optional[str] = typer.Option(None, "--deployment", help="Only this deployment (its name)."),
    run: Optional[str] = typer.Option(None, "--run", help="Only this run id."),
    status: str = typer.Option("pending", help="pending, approved, rejected, expired, or all."),
    db: Optional[str] = DB_OPT,
    config: Optional[Path] = CONFIG_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print the approvals as JSON lines."),
) -> None:
    """List queued intents: id, bar, symbol, action, quantity, price and status (pending by
    default, oldest first); --json adds the risk figures each was checked against."""
    from tradewarden.ledger import Ledger

    if status not in STATUSES:
        raise _fail(f"--status {status}: use one of {', '.join(STATUSES)}")
    url = settings_for(config, db).ledger.url()
    try:
        led = Ledger(url, create=False)
        try:
            dep_id = None
            if deployment is not None:
                row = led.deployment(deployment)
                if row is None:
                    raise _fail(f"--deployment {deployment}: no such deployment in {led.url}")
                dep_id = row["deployment_id"]
            rows = led.approvals(run_id=run, deployment_id=dep_id,
                                 status=None if status == "all" else status)
        finally:
            led.close()
    except typer.Exit:
        raise
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    if as_json:
        for r in rows:
            typer.echo(json.dumps({**r, "intent": json.loads(r["intent"])}, sort_keys=True))
        return
    table = Table(title=f"{len(rows)} approval(s), {status}")
    for col in ("id", "bar (UTC)", "symbol", "action", "quantity", "price", "status"):
        table.add_column(col, overflow="fold",
                         justify="right" if col in ("id", "quantity", "price") else "left")
    from tradewarden.domain import iso
    for r in rows:
        it = json.loads(r["intent"])
        table.add_row(str(r["id"]), iso(r["ts"])[:16].replace("T", " "), r["symbol"], r["action"],
                      str(it.get("quantity", "")), f"{it.get('price', '')}", r["status"])
    Console().print(table)
