"""Commands for a running deployment, through the ledger: ``warden pause``, ``resume``,
``kill``, ``flatten``, ``reconcile`` and ``commands``.

Each queues a command in the deployment's inbox (the ``commands`` table, with who gave
it); the engine processes the inbox between bars, and every exit it makes goes through
the broker. A deployment that is not running acts on its inbox when it next starts.
``reconcile`` without ``--accept`` only reads: it lists the differences between the
ledger and the venue found when the deployment last reconciled, and exits with status
1 while any is open (new entries stay blocked until they are accepted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from tradewarden.cli_approvals import (
    BY_OPT,
    DEPLOYMENT_OPT,
    actor_name,
    deployment_ledger,
    when_it_acts,
)
from tradewarden.cli_common import CONFIG_OPT, DB_OPT, _fail

#: ``warden reconcile`` exit status while differences are open.
EXIT_OPEN_DIFFERENCES = 1
REASON_OPT = typer.Option(None, "--reason", help="Why (recorded with the command).")
COMMAND_STATUSES = ("pending", "done", "refused", "all")


def _queue(deployment: str, kind: str, what: str, *, by: str | None, db: str | None,
           config: Path | None, reason: str | None = None, target: str | None = None,
           check: Any = None) -> None:
    """Queue one command for ``deployment`` and print one line saying so.

    ``check(led, dep)`` may refuse (raise ``typer.Exit``) before anything is queued.
    """
    actor = actor_name(by)
    reason = (reason.strip() or None) if reason is not None else None
    with deployment_ledger(config, db, deployment) as (led, dep):
        if check is not None:
            check(led, dep)
        cid = led.enqueue_command(dep["deployment_id"], kind, actor=actor, target=target,
                                  reason=reason)
        because = f" (reason: {reason})" if reason else ""
        typer.echo(f"command {cid} queued: {what}{because} for deployment {deployment} by "
                   f"{actor}; {when_it_acts(led, dep)}")


def pause(deployment: str = DEPLOYMENT_OPT, reason: Optional[str] = REASON_OPT,
          by: Optional[str] = BY_OPT, db: Optional[str] = DB_OPT,
          config: Optional[Path] = CONFIG_OPT) -> None:
    """Pause a deployment: no new entries until `warden resume`.

    Exits and protective orders go on. Queued in the deployment's inbox; the
    engine acts on it before its next bar."""
    _queue(deployment, "pause", "pause", by=by, db=db, config=config, reason=reason)


def resume(deployment: str = DEPLOYMENT_OPT, reason: Optional[str] = REASON_OPT,
           by: Optional[str] = BY_OPT, db: Optional[str] = DB_OPT,
           config: Optional[Path] = CONFIG_OPT) -> None:
    """Resume a paused or killed deployment: new entries are allowed again.

    Lifts a pause and the kill switch (other risk halts keep their own rules). Queued
    in the deployment's inbox; the engine acts on it before its next bar."""
    _queue(deployment, "resume", "resume", by=by, db=db, config=config, reason=reason)


def kill(deployment: str = DEPLOYMENT_OPT, reason: Optional[str] = REASON_OPT,
         flatten_: bool = typer.Option(False, "--flatten", help="Also cancel every open "
                                       "order and close every position at market."),
         yes: bool = typer.Option(False, "--yes", help="With --flatten: do not ask."),
         wait: float = typer.Option(60.0, "--wait", min=0, help="With --flatten: seconds "
                                    "to wait for a running deployment to report."),
         by: Optional[str] = BY_OPT, db: Optional[str] = DB_OPT,
         config: Optional[Path] = CONFIG_OPT) -> None:
    """Engage the kill switch: no new entries until `warden resume`.

    A risk halt of every account of the deployment, saved with its state (it
    survives a restart). Open positions are kept unless --flatten: then every
    open order is cancelled and every position closed at market through the
    broker, and the venue's positions are checked afterwards. Queued in the
    deployment's inbox; the engine acts on it before its next bar (a running
    deployment is waited for up to --wait seconds). With --flatten and --config,
    a deployment that is not running is started just long enough to act."""
    if flatten_ and not yes:
        import sys
        if not sys.stdin.isatty():
            raise _fail("kill --flatten closes every position at market: pass --yes "
                        "(or run it in a terminal to confirm)")
        if not typer.confirm(f"Close every position of {deployment} at market?", default=False):
            raise _fail("not confirmed: nothing was queued", code=1)
    _queue(deployment, "kill", "kill switch", by=by, db=db, config=config, reason=reason)
    if flatten_:
        _queue(deployment, "flatten", "close every position", by=by, db=db, config=config,
               reason=reason)
        _wait_for(deployment, db, config, wait)


def _wait_for(deployment: str, db: str | None, config: Path | None, seconds: float) -> None:
    """Wait (wall clock: this is the operator's shell, not engine code) until a running
    deployment has carried out its pending commands; print their results."""
    import time

    with deployment_ledger(config, db, deployment) as (led, dep):
        running = "before its next bar" in when_it_acts(led, dep)
    if not running:
        if config is None:
            typer.echo("pass --config FILE (the deployment's config) to start it now, just "
                       "long enough to act on these commands")
            return
        from tradewarden.cli_live import act_now
        act_now(config, deployment, db)        # starts, reconciles, acts, stops
    with deployment_ledger(config, db, deployment) as (led, dep):
        deadline = time.monotonic() + seconds
        pending = led.pending_commands(dep["deployment_id"])
        while pending and time.monotonic() < deadline:
            time.sleep(0.5)
            pending = led.pending_commands(dep["deployment_id"])
        recent = led.commands(deployment_id=dep["deployment_id"], limit=2)
    for row in recent:
        typer.echo(f"command {row['id']} {row['kind']}: {row['status']}"
                   + (f": {row['result']}" if row.get("result") else ""))
    if pending:
        raise _fail(f"{len(pending)} command(s) still pending after {seconds:g} s: check "
                    f"`warden commands --deployment {deployment}`", code=1)


def _symbols(dep: dict[str, Any]) -> list[str] | None:
    """The symbols in the deployment's configuration, if it names them."""
    try:
        symbols = json.loads(dep["config"]).get("symbols")
    except (ValueError, AttributeError):
        return None
    return [str(s) for s in symbols] if isinstance(symbols, list) and symbols else None


def flatten(deployment: str = DEPLOYMENT_OPT,
            symbol: Optional[str] = typer.Option(None, "--symbol",
                                                 help="Close only this symbol's position."),
            reason: Optional[str] = REASON_OPT, by: Optional[str] = BY_OPT,
            db: Optional[str] = DB_OPT, config: Optional[Path] = CONFIG_OPT) -> None:
    """Close every open position of a deployment (or one, with --symbol).

    Each exit goes through the broker, like any exit. Queued in the deployment's
    inbox; the engine acts on it before its next bar."""
    if symbol is None:
        _queue(deployment, "flatten", "close every position", by=by, db=db, config=config,
               reason=reason)
        return

    def known_symbol(led: Any, dep: dict[str, Any]) -> None:
        symbols = _symbols(dep)
        if symbols is not None and symbol not in symbols:
            raise _fail(f"--symbol {symbol}: deployment {deployment} trades "
                        f"{', '.join(symbols)}")

    _queue(deployment, "close", f"close the {symbol} position", by=by, db=db, config=config,
           reason=reason, target=symbol, check=known_symbol)


def _when(ts: int) -> str:
    from tradewarden.domain import iso
    return iso(ts)[:19].replace("T", " ")


def reconcile(deployment: str = DEPLOYMENT_OPT,
              accept: bool = typer.Option(False, "--accept",
                                          help="Adopt the venue's view of every open "
                                               "difference (recorded as accepted by --by)."),
              as_json: bool = typer.Option(False, "--json",
                                           help="Print the differences (or the queued command) "
                                                "as JSON lines."),
              by: Optional[str] = BY_OPT, db: Optional[str] = DB_OPT,
              config: Optional[Path] = CONFIG_OPT) -> None:
    """Show where the ledger and the venue disagree, or accept the venue's view.

    Without --accept: the open differences found when the deployment last reconciled
    with its venue (positions, orders, balances); new entries stay blocked while any
    is open. Exit status: 0 none open, 1 some open, 2 bad input.

    With --accept: queue an accept command; before its next bar the deployment
    adopts the venue's positions, orders and balances, and each difference is
    recorded as accepted by --by."""
    actor = actor_name(by) if accept else None
    with deployment_ledger(config, db, deployment) as (led, dep):
        rows = led.reconciliations(deployment_id=dep["deployment_id"], status="open")
        if accept:
            if not rows:
                raise _fail(f"--accept: deployment {deployment} has no open differences to "
                            "accept")
            for cmd in led.pending_commands(dep["deployment_id"]):
                if cmd["kind"] == "accept":
                    raise _fail(f"--accept: command {cmd['id']} (accept by {cmd['actor']}) is "
                                "already pending")
            cid = led.enqueue_command(dep["deployment_id"], "accept", actor=actor)
            if as_json:
                typer.echo(json.dumps({"command": cid, "kind": "accept", "actor": actor,
                                       "deployment": deployment, "differences": len(rows)}))
                return
            acts = when_it_acts(led, dep).replace("it acts", "it does so")
            typer.echo(f"command {cid} queued: deployment {deployment} adopts the venue's view "
                       f"of {len(rows)} open difference(s), recorded as accepted by {actor}; "
                       f"{acts}")
            return
    if as_json:
        for r in rows:
            typer.echo(json.dumps({**r, "time": _when(r["ts"]).replace(" ", "T") + "Z"},
                                  sort_keys=True))
    elif not rows:
        typer.echo("no open differences: the ledger agrees with the venue as of the last "
                   "reconciliation")
    else:
        table = Table(title=f"deployment {deployment}: {len(rows)} open difference(s); new "
                            "entries are blocked until `warden reconcile --accept`")
        for col in ("when (UTC)", "kind", "symbol", "ledger", "venue"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(_when(r["ts"]), r["kind"], r["symbol"] or "", r["ours"] or "-",
                          r["venue"] or "-")
        Console().print(table)
    if rows:
        raise typer.Exit(EXIT_OPEN_DIFFERENCES)


def commands(deployment: str = DEPLOYMENT_OPT,
             status: str = typer.Option("all", help="pending, done, refused, or all."),
             limit: Optional[int] = typer.Option(None, "--limit", min=1,
                                                 help="Only the newest N commands."),
             as_json: bool = typer.Option(False, "--json", help="Print the commands as JSON lines."),
             db: Optional[str] = DB_OPT, config: Optional[Path] = CONFIG_OPT) -> None:
    """List a deployment's command history, oldest first: id, when, kind, target,
    who gave it, status (pending, done, refused) and what the engine did."""
    if status not in COMMAND_STATUSES:
        raise _fail(f"--status {status}: use one of {', '.join(COMMAND_STATUSES)}")
    with deployment_ledger(config, db, deployment) as (led, dep):
        rows = led.commands(deployment_id=dep["deployment_id"],
                            status=None if status == "all" else status, limit=limit)
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r, sort_keys=True))
        return
    table = Table(title=f"deployment {deployment}: {len(rows)} command(s), {status}")
    for col in ("id", "when (UTC)", "kind", "target", "by", "status", "result"):
        table.add_column(col, overflow="fold", justify="right" if col == "id" else "left")
    for r in rows:
        table.add_row(str(r["id"]), r["created_at"][:19].replace("T", " "), r["kind"],
                      r["target"] or "", r["actor"], r["status"], r["result"] or "")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the deployment commands to ``app``."""
    for fn in (pause, resume, kill, flatten, reconcile, commands):
        app.command()(fn)
