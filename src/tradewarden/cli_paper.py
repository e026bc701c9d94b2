"""``warden paper``: a paper deployment on live closed candles; ``warden paper status``.

``warden paper --config FILE`` reads the strategy, symbols, timeframe, risk and
governor from the config (the same file replay takes) and the venue from its
``[venue]`` section (``name``: a ccxt id; ``api_url``: another base URL). It loads the
venue's instrument specs and fees, opens (or resumes) the deployment, reconciles, warms
the strategy up on history, then decides on every candle as it closes, fills through
``SimBroker`` at the venue's prices with its fees and increments, and carries out the
commands people queue (``warden approvals``, ``warden pause``, ...). SIGINT or SIGTERM
finishes the bar in progress, flushes and marks the deployment stopped; starting it
again resumes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from tradewarden.cli_common import CONFIG_OPT, DB_OPT, _fail, _known_errors, _validation_message

paper_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                        add_completion=False)

#: The clock ``warden paper`` runs on (tests replace it with one they control).
clock_factory: Callable[[Callable[[], bool]], Any] | None = None
#: The ccxt client factory (tests may replace it; the default honours ``[venue] api_url``).
client_factory: Callable[[str, str | None], Any] | None = None


@paper_app.callback()
def paper(ctx: typer.Context,
          config: Optional[Path] = CONFIG_OPT,
          deployment: Optional[str] = typer.Option(
              None, "--deployment", help="Deployment name (letters, digits, - _ .); the same "
              "name resumes it. [default: paper-STRATEGY-SYMBOLS]"),
          db: Optional[str] = DB_OPT,
          until: Optional[str] = typer.Option(
              None, "--until", help="Stop at this UTC date or datetime (default: run until "
              "SIGINT or SIGTERM)."),
          inbox_seconds: float = typer.Option(
              5.0, "--inbox-seconds", min=0.5, help="Seconds between looks at the command "
              "inbox while waiting for the next candle.")) -> None:
    """Paper-trade the configured strategy on live closed candles from [venue].

    Fills are simulated (SimBroker) at the venue's prices with its fees and
    increments (with [venue] name = "ibkr", orders go to the IBKR paper account,
    DU..., on daily bars); every decision, order and fill is recorded in the ledger. Stop with
    Ctrl-C or SIGTERM: the bar in progress is finished and the deployment is marked
    stopped; the same --deployment resumes it.
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        _run(config, deployment, db, until, inbox_seconds)
    except typer.Exit:
        raise
    except Exception as exc:
        from pydantic import ValidationError
        if isinstance(exc, ValidationError):
            raise _fail(_validation_message(exc)) from None
        from tradewarden.execution.venue import VenueError   # IBKR: paper trades at the venue
        if isinstance(exc, (VenueError, *_known_errors())):
            raise _fail(str(exc)) from None
        raise


def _run(config: Path | None, deployment: str | None, db: str | None, until: str | None,
         inbox_seconds: float) -> None:
    from tradewarden.settings import load_settings

    cli = {"mode": ("paper", "warden paper")}
    if db is not None:
        cli["ledger.db"] = (db, "--db")
    loaded = load_settings(config, cli)
    if not loaded.venue.name:
        raise _fail("paper trading needs a venue: set [venue] name (a ccxt id such as "
                    "coinbase or kraken) in the config or TRADEWARDEN_VENUE__NAME")
    run_mode(loaded, deployment=deployment, until=until, inbox_seconds=inbox_seconds)


@dataclass
class Opened:
    """A deployment opened for its loop (:func:`open_mode`).

    Attributes
    ----------
    dep : tradewarden.ops.paper.Deployment
    feed : tradewarden.data.live_feed.LiveCandleFeed
    ledger : tradewarden.ledger.Ledger
        The deployment's own ledger connection (background writer); close it at the end.
    reconcile_seconds : float or None
        Live: seconds between reconciliations while running.
    """

    dep: Any
    feed: Any
    ledger: Any
    reconcile_seconds: float | None


def open_mode(loaded: Any, *, deployment: str | None, clock: Any,
              connect: Callable[..., Any] | None = None,
              before_start: Callable[..., None] | None = None,
              wrap_ledger: Callable[[Any], Any] | None = None,
              quiet: bool = False, bulk: bool = True) -> Opened:
    """Open (or resume) a paper or live deployment from loaded settings, ready to loop.

    Loads the venue's instrument specs (paper) or connects the venue adapter (live),
    opens the deployment (a new run; the kernel restores its state and reconciles) and
    makes the candle feed.

    Parameters
    ----------
    loaded : tradewarden.settings.LoadedSettings
        ``mode`` ``paper`` or ``live``; ``[venue]`` names the venue.
    deployment : str or None
        The deployment's name (default from the mode, strategy and symbols).
    clock : tradewarden.engine.clock.Clock
    connect, before_start : callable, optional
        As :func:`run_mode`.
    wrap_ledger : callable, optional
        ``wrap_ledger(ledger) -> ledger``: the daemon's spool around a server ledger.
    quiet : bool
        Print nothing (the daemon logs instead).
    bulk : bool
        Write an SQLite ledger's batches by bulk ingest (:class:`~tradewarden.ledger.Ledger`
        ``bulk``); the daemon, with several writers in one process, passes ``False``.

    Returns
    -------
    Opened
    """
    from tradewarden.data.download import create_venue_client
    from tradewarden.data.live_feed import LiveCandleFeed
    from tradewarden.data.markets import load_market_specs
    from tradewarden.ledger import Ledger
    from tradewarden.ops.kernel import _user
    from tradewarden.ops.paper import describe, open_paper
    from tradewarden.ops.replay import resolve_config

    err = Console(stderr=True, highlight=False, soft_wrap=True, quiet=quiet)
    out = Console(highlight=False, soft_wrap=True, quiet=quiet)
    venue = loaded.venue
    cfg = loaded.run_config()
    if cfg.timeframe is None:
        cfg = cfg.model_copy(update={"timeframe": "1d" if venue.name == "ibkr" else "1h"})
    cfg, strategy = resolve_config(cfg)
    make_client = client_factory or (lambda name, url: create_venue_client(name, api_url=url))
    data_url = venue.data_url or venue.api_url
    # -- Interactive Brokers: paper and live both trade at IBKR (paper: the DU paper
    # account) through IbkrBroker, on its daily bars (ops.live.connect_ibkr, ibkr_feed)
    ibkr = venue.name == "ibkr"
    if ibkr and connect is None:
        from tradewarden.ops.live import connect_ibkr
        connect = lambda c, k: (*connect_ibkr(venue, c, k), None)  # noqa: E731
    exchange = None if ibkr else make_client(venue.name, data_url)
    err.print(f"connecting to ibkr at {venue.host or '127.0.0.1'}:{venue.port or 7497}" if ibkr
              else f"loading {venue.name} markets for {', '.join(cfg.symbols)}"
              + (f" from {data_url}" if data_url else ""))
    broker = None
    if connect is None:
        # two quick retries on the mode's clock: a venue that stays away is the caller's
        # to retry (the daemon reopens the deployment every reconnect_seconds)
        specs = load_market_specs(venue.name, list(cfg.symbols), exchange=exchange, refresh=True,
                                  max_retries=2,
                                  sleep=lambda s: clock.wait_until(int(clock.now() + s) + 1))
        instruments = {s: specs[s].instrument for s in cfg.symbols}
        fees = ((float(max(specs[s].taker_bps for s in cfg.symbols)),
                 float(max(specs[s].maker_bps for s in cfg.symbols)), specs[cfg.symbols[0]].fee_basis)
                if cfg.venue_fees else None)
    else:
        broker, instruments, fees = connect(cfg, clock)
        if before_start is not None:
            before_start(cfg, broker, instruments)
    fee_bps, maker_bps = (fees[0], fees[1]) if fees else (None, None)
    ledger = Ledger(loaded.ledger.url(), background=True, bulk=bulk)
    if wrap_ledger is not None:
        ledger = wrap_ledger(ledger)
    dep = open_paper(cfg, strategy, instruments, ledger, name=deployment, clock=clock,
                     fee_bps=fee_bps, maker_fee_bps=maker_bps, created_by=_user(),
                     venue=venue.name, broker=broker)
    out.print(describe(dep))
    fee_text = (f"fees {fee_bps:g}/{maker_bps:g} bps taker/maker ({fees[2]})" if fees
                else "fees from IBKR's commission reports" if ibkr
                else f"fees {cfg.fee_bps:g}/{cfg.maker_fee_bps:g} bps (config)")
    fills = "fills at the venue" if broker is not None else "simulated fills"
    out.print(f"{cfg.mode}: {cfg.strategy} on {', '.join(cfg.symbols)} {cfg.timeframe} candles "
              f"from {venue.name}, {fills}; {fee_text}; governor {cfg.governor}; "
              "Ctrl-C or SIGTERM stops")
    if ibkr:
        from tradewarden.ops.live import ibkr_feed
        feed = ibkr_feed(broker, cfg)
    else:
        feed = LiveCandleFeed(exchange, list(cfg.symbols), cfg.timeframe, clock, venue=venue.name,
                              stall_after=float(DEFAULT_STALL_AFTER), retry_every=30.0)
    return Opened(dep, feed, ledger, RECONCILE_SECONDS if broker is not None else None)


def make_clock(stopped: Callable[[], bool]) -> Any:
    """Return the clock of paper and live trading (``clock_factory`` in tests)."""
    from tradewarden.engine.clock import WallClock
    return (clock_factory or (lambda stop: WallClock(stop=stop)))(stopped)


def run_mode(loaded: Any, *, deployment: str | None, until: str | None, inbox_seconds: float,
             connect: Callable[..., Any] | None = None,
             before_start: Callable[..., None] | None = None, once: bool = False,
             on_start: Callable[[Any], None] | None = None,
             on_tick: Callable[[str], None] | None = None) -> Any:
    """Run a paper or live deployment from loaded settings until a stop (the CLI's part).

    Parameters
    ----------
    loaded : tradewarden.settings.LoadedSettings
        ``mode`` ``paper`` or ``live``; ``[venue]`` names the venue.
    deployment, until, inbox_seconds
        The command's flags.
    connect : callable, optional
        Live: ``connect(config, clock) -> (broker, instruments, fees or None)``, the venue
        adapter with its instrument specs (paper reads specs and fees from the market
        data client and simulates fills).
    before_start : callable, optional
        Live: ``before_start(config, broker, instruments)`` prints what will be traded
        and asks for confirmation (raises ``typer.Exit`` to refuse) before the
        deployment opens.
    once : bool
        Start, reconcile, carry out the queued commands, and stop (``warden kill
        --flatten --config`` on a deployment that is not running).
    on_start, on_tick : callable, optional
        Hooks: ``on_start(deployment)`` once it is open, ``on_tick(activity)`` at every
        turn of the loop.

    Returns
    -------
    tradewarden.ops.paper.LoopStats

    Raises
    ------
    typer.Exit
        Refused by ``before_start``.
    """
    from tradewarden.data.loaders import parse_bound
    from tradewarden.ledger.lifecycle import StopSignals
    from tradewarden.ops.paper import run_deployment

    out = Console(highlight=False, soft_wrap=True)
    stop_at = parse_bound(until, "--until") if until else None
    with StopSignals(loaded.settings.mode) as stop:
        clock = make_clock(lambda: stop.signum is not None)
        opened = open_mode(loaded, deployment=deployment, clock=clock, connect=connect,
                           before_start=before_start)
        dep = opened.dep
        if on_start is not None:
            on_start(dep)

        def on_bar(bar: Any, d: Any) -> None:
            from tradewarden.domain import iso
            out.print(f"{iso(bar.ts)} {bar.symbol} close {bar.close:g}: {d.action} ({d.reason})")

        def on_command(result: tuple[int, str, str]) -> None:
            out.print(f"command {result[0]}: {result[1]}: {result[2]}")

        if once:
            stop_at = clock.now()
        stats = run_deployment(dep, opened.feed, stop=stop, inbox_seconds=inbox_seconds,
                               until=stop_at, reconcile_seconds=opened.reconcile_seconds,
                               on_bar=on_bar, on_command=on_command, on_tick=on_tick)
        opened.ledger.close()
    out.print(f"deployment {dep.name} stopped: {stats.bars} bar(s), {stats.commands} command(s), "
              f"{stats.stalls} stalled poll(s) this run; resume with the same --deployment")
    return stats


#: Live: clock seconds between two reconciliations with the venue while running.
RECONCILE_SECONDS = 900
#: Seconds after a candle's close before a missing candle counts as a stalled feed.
DEFAULT_STALL_AFTER = 120


@paper_app.command("status")
def status(deployment: Optional[str] = typer.Option(None, "--deployment",
                                                    help="Only this deployment."),
           db: Optional[str] = DB_OPT, config: Optional[Path] = CONFIG_OPT,
           json_: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show paper deployments: status, positions, cash, last bar, pending approvals."""
    from tradewarden.cli_common import settings_for
    from tradewarden.domain import iso
    from tradewarden.ledger import Ledger

    from decimal import Decimal

    loaded = settings_for(config, db)
    try:
        ledger = Ledger(loaded.ledger.url(), create=False)
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    try:
        rows = [d for d in ledger.deployments() if d["mode"] == "paper"
                and (deployment is None or d["name"] == deployment)]
        if deployment is not None and not rows:
            raise _fail(f"no paper deployment named {deployment!r} in {ledger.url}")
        report = []
        for d in rows:
            state = ledger.latest_engine_state(d["deployment_id"]) or {}
            held = [{"symbol": s["name"], "quantity": s["holding"]["quantity"],
                     "cost": s["holding"]["cost"]}
                    for s in state.get("symbols", []) if Decimal(s["holding"]["quantity"]) != 0]
            cash = {a["name"]: a["cash"] for a in state.get("accounts", [])}
            pending = ledger.approvals(deployment_id=d["deployment_id"], status="pending")
            diffs = ledger.reconciliations(deployment_id=d["deployment_id"], status="open")
            report.append({"name": d["name"], "deployment_id": d["deployment_id"],
                           "status": d["status"], "run_id": d["run_id"],
                           "last_bar": iso(state["ts"]) if state.get("ts") else None,
                           "paused": bool(state.get("paused")), "positions": held, "cash": cash,
                           "pending_approvals": len(pending), "open_differences": len(diffs)})
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    finally:
        ledger.close()
    if json_:
        typer.echo(json.dumps(report, indent=2))
        return
    if not report:
        typer.echo("no paper deployments in this ledger; start one with `warden paper --config FILE`")
        return
    for r in report:
        pos = ", ".join(f"{p['symbol']} {p['quantity']}" for p in r["positions"]) or "flat"
        cash = ", ".join(f"{k} {v}" for k, v in r["cash"].items()) or "-"
        flags = [f for f, on in (("paused", r["paused"]),
                                 (f"{r['pending_approvals']} pending approval(s)", r["pending_approvals"]),
                                 (f"{r['open_differences']} open difference(s)", r["open_differences"]))
                 if on]
        typer.echo(f"{r['name']}: {r['status']}, last bar {r['last_bar'] or '-'}; {pos}; cash {cash}"
                   + (f"; {'; '.join(flags)}" if flags else ""))


def register(app: typer.Typer) -> None:
    """Add ``warden paper`` to the CLI."""
    app.add_typer(paper_app, name="paper")


__all__ = ["paper_app", "register"]
