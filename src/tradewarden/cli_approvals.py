"""``warden approvals``: intents the governor queued for a person's approval.

``list`` reads the ``approvals`` table; ``approve`` and ``reject`` queue a command in the
deployment's inbox (the ``commands`` table), which the engine processes before its
next bar (risk is checked again at approval). The helpers shared with the deployment
commands (``cli_deploy``) live here: the ``--deployment`` and ``--by`` options, opening
the ledger on a named deployment, and saying when a queued command acts.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

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


# --------------------------------------------------------------------------- the inbox

DEPLOYMENT_OPT = typer.Option(..., "--deployment", help="The deployment (its name).")
BY_OPT = typer.Option(None, "--by", help="Who gives the command, recorded with it. "
                                         "[default: the OS user name]")


def actor_name(by: str | None) -> str:
    """Return who gives a command: ``--by``, else the OS user (``getpass``), else "unknown".

    Raises
    ------
    typer.Exit
        Status 2 when ``--by`` is empty or longer than 64 characters.
    """
    if by is None:
        import getpass
        try:
            by = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in the environment (containers)
            by = "unknown"
        return (by or "unknown")[:64]
    if not by.strip() or len(by) > 64:
        raise _fail(f"--by {by!r}: give 1-64 characters")
    return by.strip()


@contextmanager
def deployment_ledger(config: Path | None, db: str | None, name: str
                      ) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Open the ledger and find the deployment called ``name``; yield both.

    The ledger is closed on leaving. What the body raises as a ledger, value or lookup
    error becomes one ``error:`` line and exit status 2, as every command does.

    Raises
    ------
    typer.Exit
        Status 2: no ledger, an unknown deployment (named with the ledger), or an
        error from the body.
    """
    from tradewarden.ledger import Ledger

    url = settings_for(config, db).ledger.url()
    try:
        led = Ledger(url, create=False)
        try:
            row = led.deployment(name)
            if row is None:
                raise _fail(f"--deployment {name}: no such deployment in {led.url}")
            yield led, row
        finally:
            led.close()
    except typer.Exit:
        raise
    except _known_errors() as exc:
        raise _fail(str(exc)) from None


def when_it_acts(led: Any, dep: dict[str, Any]) -> str:
    """Say when a command queued now takes effect, from the deployment's status.

    A ``running`` deployment whose run is alive acts before its next bar; any other
    (created, stopped, failed, or a run whose process is gone) when it next starts.
    """
    status = dep["status"]
    if status == "running" and dep.get("run_id"):
        run_status = led.run_status(dep["run_id"])
        if run_status not in (None, "running"):
            status = f"not running (its run {dep['run_id']} is {run_status})"
    if status == "running":
        return "it acts before its next bar"
    if not status.startswith("not running"):
        status = f"{status}, not running"
    return f"the deployment is {status}: it acts when the deployment next starts"


def _queue_decision(approval_id: int, deployment: str, by: str | None, db: str | None,
                    config: Path | None, kind: str, reason: str | None) -> None:
    """Check that ``approval_id`` can be approved or rejected now, then claim it: queue the
    command through :meth:`~tradewarden.ledger.Ledger.claim_approval`, atomically, so of
    two people acting at once exactly one gets a command."""
    actor = actor_name(by)
    with deployment_ledger(config, db, deployment) as (led, dep):
        row = led.approval(approval_id)
        if row is None:
            raise _fail(f"approval {approval_id}: no such approval in {led.url}")
        if row["deployment_id"] != dep["deployment_id"]:
            if row["deployment_id"] is None:
                raise _fail(f"approval {approval_id} was queued by run {row['run_id']}, not by a "
                            f"deployment; deployment {deployment} cannot act on it")
            names = {d["deployment_id"]: d["name"] for d in led.deployments()}
            other = names.get(row["deployment_id"], row["deployment_id"])
            raise _fail(f"approval {approval_id} belongs to deployment {other}, not {deployment}")
        if row["status"] != "pending":
            who = (f" by {row['acted_by']}" if row["acted_by"] else "") + \
                  (f" at {row['acted_at']}" if row["acted_at"] else "")
            why = f" ({row['reason']})" if row["reason"] else ""
            raise _fail(f"approval {approval_id} is {row['status']}{who}{why}, not pending")
        for cmd in led.pending_commands(dep["deployment_id"]):
            if cmd["kind"] in ("approve", "reject") and cmd["target"] == str(approval_id):
                raise _fail(f"approval {approval_id} already has command {cmd['id']} pending "
                            f"({cmd['kind']} by {cmd['actor']})")
        # the checks above say why in words; the claim itself is atomic (someone acting
        # on the same approval between them and here gets the refusal below)
        cid = led.claim_approval(dep["deployment_id"], approval_id, kind, actor=actor,
                                 reason=reason)
        if cid is None:
            raise _fail(f"approval {approval_id} was acted on by someone else just now; "
                        "see `warden approvals list --status all` and `warden commands`")
        because = f" (reason: {reason})" if reason else ""
        typer.echo(f"command {cid} queued: {kind} approval {approval_id} ({row['action']} "
                   f"{row['symbol']}){because} for deployment {deployment} by {actor}; "
                   f"{when_it_acts(led, dep)}")


@approvals_app.command("approve")
def approve(
    approval_id: int = typer.Argument(..., metavar="ID", help="The approval's id (see `warden approvals list`)."),
    deployment: str = DEPLOYMENT_OPT,
    by: Optional[str] = BY_OPT,
    db: Optional[str] = DB_OPT,
    config: Optional[Path] = CONFIG_OPT,
) -> None:
    """Approve a pending intent: queue an approve command in the deployment's inbox.

    The engine processes it before its next bar: it checks risk again against the
    account as it is then, and submits the order or refuses (the command's result
    says which; see `warden commands`). Refused: an unknown deployment or approval,
    an approval of another deployment, or one no longer pending."""
    _queue_decision(approval_id, deployment, by, db, config, "approve", None)


@approvals_app.command("reject")
def reject(
    approval_id: int = typer.Argument(..., metavar="ID", help="The approval's id (see `warden approvals list`)."),
    deployment: str = DEPLOYMENT_OPT,
    reason: str = typer.Option(..., "--reason", help="Why (recorded with the approval)."),
    by: Optional[str] = BY_OPT,
    db: Optional[str] = DB_OPT,
    config: Optional[Path] = CONFIG_OPT,
) -> None:
    """Reject a pending intent: queue a reject command in the deployment's inbox.

    The engine records the rejection, with the reason and who gave it, before its
    next bar. Refused: an unknown deployment or approval, an approval of another
    deployment, or one no longer pending."""
    if not reason.strip():
        raise _fail("--reason: say why the intent is rejected")
    _queue_decision(approval_id, deployment, by, db, config, "reject", reason.strip())
