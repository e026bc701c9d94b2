"""``warden live``: the deployment loop of ``warden paper`` with real orders at the venue.

Going live is deliberate: the config must say ``mode = "live"``, the command needs
``--live``, the venue's credentials must be set (environment or secret files; Coinbase
also takes its CDP key file), the key must pass a read-only pre-flight (trade
permission, no withdrawal permission), and a person confirms what will be traded and
the most it can lose (or passes ``--yes``). See :mod:`tradewarden.ops.live`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from tradewarden.cli_common import CONFIG_OPT, DB_OPT, _fail, _known_errors, _validation_message


def live(config: Optional[Path] = CONFIG_OPT,
         deployment: Optional[str] = typer.Option(
             None, "--deployment", help="Deployment name (letters, digits, - _ .); the same "
             "name resumes it. [default: live-STRATEGY-SYMBOLS]"),
         db: Optional[str] = DB_OPT,
         live_: bool = typer.Option(False, "--live", help="Trade real money (required)."),
         yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
         until: Optional[str] = typer.Option(
             None, "--until", help="Stop at this UTC date or datetime (default: run until "
             "SIGINT or SIGTERM)."),
         inbox_seconds: float = typer.Option(
             5.0, "--inbox-seconds", min=0.5, help="Seconds between looks at the command "
             "inbox while waiting for the next candle.")) -> None:
    """Trade the configured strategy with real orders at the [venue].

    Refused without mode = "live" in the config, --live, and the venue's
    credentials (TRADEWARDEN_VENUE__API_KEY / __API_SECRET, or Coinbase's
    [venue] key_file; Interactive Brokers needs none, its TWS / IB Gateway
    login is the credential, and refuses a paper DU... account). A read-only
    pre-flight refuses a key without trade
    permission or with withdrawal permission. It shows the venue, account,
    balances, symbols and the most it can lose per trade and per day, and asks
    for confirmation (--yes skips it). Stop with Ctrl-C or SIGTERM.
    """
    from pydantic import ValidationError

    from tradewarden.cli_paper import run_mode
    from tradewarden.execution.venue import VenueError
    from tradewarden.ops.live import exposure_lines
    from tradewarden.settings import load_settings

    try:
        loaded = load_settings(config, {"ledger.db": (db, "--db")} if db else {})
        out = Console(highlight=False, soft_wrap=True)

        def confirm(cfg: Any, pre: Any) -> None:
            for line in exposure_lines(cfg, pre):
                out.print(line)
            if yes:
                return
            if not sys.stdin.isatty():
                raise _fail("warden live needs a confirmation: run it in a terminal or pass --yes")
            if not typer.confirm("Trade real money with these settings?", default=False):
                raise _fail("not confirmed: nothing was traded", code=1)

        connect, before_start = venue_hooks(loaded, live_, "warden live refused", confirm)
        run_mode(loaded, deployment=deployment, until=until, inbox_seconds=inbox_seconds,
                 connect=connect, before_start=before_start)
    except typer.Exit:
        raise
    except ValidationError as exc:
        raise _fail(_validation_message(exc)) from None
    except (VenueError, *_known_errors()) as exc:
        raise _fail(str(exc)) from None


def venue_hooks(loaded: Any, live_flag: bool, refused: str,
                show: Callable[[Any, Any], None] | None = None) -> tuple[Any, Any]:
    """The ``connect`` and ``before_start`` hooks of :func:`tradewarden.cli_paper.run_mode`
    for a live config: the gates checked now, the venue adapter built at start, its
    pre-flight checked before the deployment opens.

    Parameters
    ----------
    loaded : tradewarden.settings.LoadedSettings
        With ``mode = "live"``.
    live_flag : bool
        The command's ``--live`` (True where the command itself is the decision).
    refused : str
        How a refusal starts (``warden live refused``).
    show : callable, optional
        ``show(config, preflight)`` after the pre-flight passed (prints, confirms).

    Raises
    ------
    typer.Exit
        Status 2 naming every gate that is not passed.
    """
    from tradewarden.ops.live import check_preflight, connect_venue, live_refusals

    refusals = live_refusals(loaded.run_config().mode, live_flag, loaded.venue)
    if refusals:
        raise _fail(f"{refused}: " + "; ".join(refusals))

    def connect(cfg: Any, clock: Any) -> tuple[Any, dict[str, Any], None]:
        broker, instruments = connect_venue(loaded.venue, cfg, clock)
        return broker, instruments, None

    def before_start(cfg: Any, broker: Any, instruments: dict[str, Any]) -> None:
        pre = broker.preflight()
        check_preflight(pre)
        if show is not None:
            show(cfg, pre)

    return connect, before_start


def act_now(config: Path, deployment: str, db: str | None) -> None:
    """Start a deployment that is not running just long enough to reconcile and carry out
    its queued commands, then stop (``warden kill --flatten --config``).

    A live deployment needs what ``warden live`` needs (``mode = "live"``, credentials, a
    key that passes the pre-flight), but no confirmation: the command is the kill switch.

    Raises
    ------
    typer.Exit
        Status 2 when the deployment cannot be started (one line saying why).
    """
    from pydantic import ValidationError

    from tradewarden.cli_paper import run_mode
    from tradewarden.execution.venue import VenueError
    from tradewarden.settings import load_settings

    try:
        loaded = load_settings(config, {"ledger.db": (db, "--db")} if db else {})
        connect = before = None
        if loaded.run_config().mode == "live":
            connect, before = venue_hooks(loaded, True, "cannot start the deployment to act now")
        elif not loaded.venue.name:
            raise _fail("cannot start the deployment to act now: the config names no [venue]")
        else:                   # a paper deployment (the file may say replay, as for paper)
            loaded.settings = loaded.settings.model_copy(update={"mode": "paper"})
        run_mode(loaded, deployment=deployment, until=None, inbox_seconds=5.0, connect=connect,
                 before_start=before, once=True)
    except typer.Exit:
        raise
    except ValidationError as exc:
        raise _fail(_validation_message(exc)) from None
    except (VenueError, *_known_errors()) as exc:
        raise _fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``warden live`` to the CLI."""
    app.command("live")(live)


__all__ = ["act_now", "live", "register", "venue_hooks"]
