"""``warden ibkr``: Interactive Brokers helpers; ``warden ibkr check`` verifies a TWS or IB
Gateway setup in one command.

``warden ibkr check --config FILE`` (or ``--host/--port/--client-id/--account``) connects
with the real ``ib_async`` client exactly as a deployment would (read-only: no order
is sent or requested), prints the server version, the managed accounts, the account
summary and the positions, and otherwise says in one line what is wrong: nothing
listens on the port (TWS or IB Gateway not running, the wrong port, the API not
enabled), a socket that never answers the API handshake (the host is not in Trusted
IPs, "Enable ActiveX and Socket Clients" is off, a confirmation dialog is waiting in
TWS), the client id in use by another session (TWS error 326), an account the login
does not manage, or a paper / live mismatch between the config's ``mode`` and the
port or account (IBKR paper accounts are ``DU...``; see
:func:`tradewarden.ops.live.ibkr_mode_problems`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from tradewarden.cli_common import CONFIG_OPT, _fail, _known_errors, _validation_message

ibkr_app = typer.Typer(no_args_is_help=True, add_completion=False,
                       help="Interactive Brokers: check a TWS or IB Gateway setup; write "
                       "puts (the put writer, once per session).")

#: Account values shown by ``warden ibkr check`` (TWS ``accountValue`` tags), in order.
SUMMARY_TAGS = (("NetLiquidation", "net liquidation"), ("BuyingPower", "buying power"),
                ("AvailableFunds", "available funds"), ("ExcessLiquidity", "excess liquidity"),
                ("InitMarginReq", "init margin req"), ("MaintMarginReq", "maint margin req"),
                ("TotalCashValue", "cash"))
#: TWS error codes that are notices about the gateway's own data-farm connections, not
#: failures (TWS API message codes: 2104, 2106, 2107, 2108, 2119, 2158).
FARM_NOTICES = frozenset({2104, 2106, 2107, 2108, 2119, 2158})
#: TWS error 326: "Unable to connect as the client id is already in use".
CLIENT_ID_IN_USE = 326
#: TWS's defaults when ``[venue]`` leaves them out (settings.VenueSettings).
DEFAULT_HOST, DEFAULT_PORT, DEFAULT_CLIENT_ID = "127.0.0.1", 7497, 1
PORT_HINT = ("TWS paper 7497 / live 7496, IB Gateway paper 4002 / live 4001")


class IbkrCheckError(RuntimeError):
    """What keeps ``warden ibkr check`` from reading the account, in one line."""


@dataclass
class CheckReport:
    """What a successful connection found.

    Attributes
    ----------
    host : str
    port : int
    client_id : int
    server_version : int
        The TWS API server version the gateway speaks.
    accounts : list of str
        The account codes the login manages (TWS ``managedAccounts``).
    account : str
        The account shown (the configured one, or the only one managed).
    values : dict of str to tuple of (Decimal, str)
        ``accountValue`` tag (:data:`SUMMARY_TAGS`) → (amount, currency); amounts in
        the account's base currency as TWS reports them.
    positions : list of tuple
        ``(symbol, security type, quantity, average cost)``: quantity in shares or
        contracts (negative short), average cost per share or per contract (times the
        multiplier for options, as TWS reports it).
    notices : list of str
        ``code text`` of the gateway's notices (market data farm connections).
    """

    host: str
    port: int
    client_id: int
    server_version: int
    accounts: list[str]
    account: str
    values: dict[str, tuple[Decimal, str]] = field(default_factory=dict)
    positions: list[tuple[str, str, Decimal, Decimal]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def _decimal(text: Any) -> Decimal | None:
    try:
        return Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None


async def probe(host: str, port: int, client_id: int, account: str | None = None,
                timeout: float = 10.0) -> CheckReport:
    """Connect to TWS or IB Gateway read-only and read what ``warden ibkr check`` shows.

    Parameters
    ----------
    host : str
    port : int
        The API socket port.
    client_id : int
        The API client id of this session.
    account : str, optional
        The account to show; default the only account the login manages.
    timeout : float
        Seconds (wall clock: this is a network wait) for the TCP connection, the API
        handshake and each start-up request.

    Returns
    -------
    CheckReport

    Raises
    ------
    IbkrCheckError
        One line saying what is wrong: connection refused, no route / no answer, no
        answer to the API handshake, the connection closed during the handshake, the
        client id in use (error 326), an account the login does not manage, a start-up
        request that timed out.
    """
    from ib_async import IB
    from ib_async.ib import StartupFetch

    ib = IB()
    where = f"{host}:{port}"
    seen: list[tuple[int, str]] = []
    closed: list[str] = []
    tcp = {"up": False}
    ib.errorEvent += lambda req_id, code, text, *rest: seen.append((int(code), str(text)))
    connect_tcp = ib.client.conn.connectAsync

    async def tracked(h: str, p: int) -> None:
        await connect_tcp(h, p)
        tcp["up"] = True
    ib.client.conn.connectAsync = tracked    # to tell "no TCP" from "no handshake"
    peer_closed = asyncio.get_running_loop().create_future()

    hung_up = {"by_us": False}
    client_disconnect = ib.client.disconnect

    def disconnect() -> None:               # the client gives up (a timeout) or is done
        hung_up["by_us"] = True
        client_disconnect()
    ib.client.disconnect = disconnect

    def lost(msg: str) -> None:               # the gateway closed the socket first
        if hung_up["by_us"]:
            return
        closed.append(msg or "Peer closed connection")
        if not peer_closed.done():
            peer_closed.set_result(None)
    ib.client.conn.disconnected += lost
    # the account's updates are asked for once the account is known to be managed (a
    # request for an account the login does not manage is never answered)
    fetch = StartupFetch.POSITIONS
    try:
        try:
            connecting = asyncio.ensure_future(ib.connectAsync(
                host, port, clientId=client_id, timeout=timeout, readonly=True,
                raiseSyncErrors=True, fetchFields=fetch))
            await asyncio.wait({connecting, peer_closed}, return_when=asyncio.FIRST_COMPLETED)
            if not connecting.done():             # closed during the handshake: fail now
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
                raise ConnectionError("Peer closed connection")
            connecting.result()
        except ConnectionRefusedError:
            raise IbkrCheckError(
                f"cannot connect to {where}: connection refused: nothing listens there. Is TWS "
                f"or IB Gateway running, on this port ({PORT_HINT}), with the API enabled "
                "(Configure > API > Settings > Enable ActiveX and Socket Clients)?") from None
        except (TimeoutError, ConnectionError, OSError) as exc:
            raise IbkrCheckError(_why_not(where, client_id, timeout, tcp["up"], seen, closed,
                                          exc)) from None
        accounts = list(ib.managedAccounts())
        if account and account not in accounts:
            raise IbkrCheckError(
                f"account {account} is not managed by this login at {where} (it manages "
                f"{', '.join(accounts) or 'no account'}): set [venue] account / --account to "
                "one of them, or log in to TWS / IB Gateway with the user of that account")
        if not account:
            if len(accounts) != 1:
                raise IbkrCheckError(
                    f"the login at {where} manages {len(accounts)} accounts "
                    f"({', '.join(accounts)}): choose one with [venue] account / --account")
            account = accounts[0]
        try:
            await asyncio.wait_for(ib.reqAccountUpdatesAsync(account), timeout)
        except TimeoutError:
            raise IbkrCheckError(
                f"connected to {where}, but the gateway did not send account {account}'s "
                f"values within {timeout:g} s: is it still logging in? Try again in a "
                "minute") from None
        rows = {(v.tag, v.currency): v.value for v in ib.accountValues(account)}
        values: dict[str, tuple[Decimal, str]] = {}
        for tag, _ in SUMMARY_TAGS:
            for cur in ("USD", "BASE", *sorted({c for t, c in rows if t == tag})):
                amount = _decimal(rows.get((tag, cur)))
                if amount is not None:
                    values[tag] = (amount, "USD" if cur == "BASE" else cur)
                    break
        positions = [(p.contract.localSymbol or p.contract.symbol, p.contract.secType,
                      _plain(_decimal(p.position) or Decimal(0)), _decimal(p.avgCost) or Decimal(0))
                     for p in ib.positions(account)]
        notices = [f"{c} {t}" for c, t in seen if c in FARM_NOTICES]
        return CheckReport(host, port, client_id, ib.client.serverVersion(), accounts, account,
                           values, sorted(positions), notices)
    finally:
        ib.disconnect()


def _why_not(where: str, client_id: int, timeout: float, tcp_up: bool,
             seen: list[tuple[int, str]], closed: list[str], exc: BaseException) -> str:
    """The one line for a connection that did not become ready."""
    if any(code == CLIENT_ID_IN_USE for code, _ in seen):
        text = next(t for c, t in seen if c == CLIENT_ID_IN_USE)
        return (f"client id {client_id} is already in use at {where} (TWS error 326: {text}): "
                "stop the other session or set [venue] client_id / --client-id to another number")
    errors = [f"{c} {t}" for c, t in seen if c not in FARM_NOTICES]
    if errors:
        return f"{where} refused the API session: error {errors[0]}"
    if not tcp_up:
        return (f"no answer from {where} within {timeout:g} s (a firewall, the wrong host, or "
                f"the wrong port: {PORT_HINT}) ({type(exc).__name__})")
    if isinstance(exc, ConnectionError) and "timed out" in str(exc):
        return (f"connected to {where}, but the gateway did not answer the start-up "
                f"requests within {timeout:g} s ({exc}): is it still logging in or "
                "restarting? Try again in a minute")
    if closed:
        return (f"{where} closed the connection during the API handshake: another session may "
                f"use client id {client_id} (set [venue] client_id / --client-id to another "
                "number), or the gateway does not accept API clients from this host (add it "
                "to Trusted IPs)")
    return (f"connected to {where}, but no answer to the API handshake within {timeout:g} s: "
            "in TWS / IB Gateway enable Configure > API > Settings > \"Enable ActiveX and "
            "Socket Clients\", add this host (127.0.0.1) to Trusted IPs, accept the "
            "connection dialog if TWS shows one, and check that it is TWS that listens on "
            "this port")


@contextmanager
def _quiet_client() -> Iterator[None]:
    """Keep ``ib_async``'s own log lines (``API connection failed: ...``) off the
    terminal while the check runs: the check says what is wrong in its one line."""
    log = logging.getLogger("ib_async")
    handler = logging.NullHandler()
    before = log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.propagate = before


def _plain(value: Decimal) -> Decimal:
    """``10.0`` (a float from the wire) as ``10``; other values without trailing zeros."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


@ibkr_app.command("check")
def check(config: Optional[Path] = CONFIG_OPT,
          host: Optional[str] = typer.Option(
              None, "--host", help="TWS / IB Gateway host. [default: [venue] host, else "
              "127.0.0.1]"),
          port: Optional[int] = typer.Option(
              None, "--port", min=1, max=65535, help="API socket port (TWS paper 7497 / "
              "live 7496, IB Gateway paper 4002 / live 4001). [default: [venue] port, else 7497]"),
          client_id: Optional[int] = typer.Option(
              None, "--client-id", min=0, help="API client id. [default: [venue] client_id, "
              "else 1]"),
          account: Optional[str] = typer.Option(
              None, "--account", help="Account code to show (DU... for a paper account). "
              "[default: [venue] account, else the only account managed]"),
          timeout: float = typer.Option(
              10.0, "--timeout", min=0.1, help="Seconds to wait for the connection, the "
              "handshake and each answer.")) -> None:
    """Connect to TWS or IB Gateway and show the account, or say what is wrong.

    Read-only: nothing is ordered. Prints the server version, the managed
    accounts, the account summary (net liquidation, buying power, available
    funds, margin requirements, cash) and the positions. When the config's mode
    is paper or live, a port or account of the other kind is refused (IBKR paper
    accounts start with DU; paper ports 7497 / 4002, live 7496 / 4001). Exits
    with status 2 and one line saying what is wrong: connection refused (wrong
    port, API not enabled), no answer to the handshake (Trusted IPs, "Enable
    ActiveX and Socket Clients"), client id in use (error 326), an account the
    login does not manage.
    """
    from pydantic import ValidationError

    from tradewarden.ops.live import ibkr_mode_problems
    from tradewarden.settings import load_settings

    try:
        loaded = load_settings(config)
        venue = loaded.venue
        if venue.name not in (None, "ibkr"):
            where = f" in {config}" if config is not None else ""
            raise _fail(f"[venue] name{where} is {venue.name!r}: `warden ibkr check` checks an "
                        "Interactive Brokers setup (name = \"ibkr\")")
        h = host or venue.host or DEFAULT_HOST
        p = port or venue.port or DEFAULT_PORT
        cid = client_id if client_id is not None else (
            venue.client_id if venue.client_id is not None else DEFAULT_CLIENT_ID)
        acct = account or venue.account
        mode = loaded.settings.mode if loaded.was_set("mode") else None
        found = ibkr_mode_problems(mode, p, acct)
        if found:
            raise _fail(found[0])
        with _quiet_client():
            report = asyncio.run(probe(h, p, cid, acct, timeout))
        found = ibkr_mode_problems(mode, p, report.account)
        if found:
            raise _fail(found[0])
    except typer.Exit:
        raise
    except IbkrCheckError as exc:
        raise _fail(str(exc)) from None
    except ValidationError as exc:
        raise _fail(_validation_message(exc)) from None
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    show(report, mode)


def show(report: CheckReport, mode: str | None = None) -> None:
    """Print a :class:`CheckReport` (Rich), ending with ``ok: ...``."""
    from tradewarden.ops.live import is_paper_account
    out = Console(highlight=False, soft_wrap=True)
    kind = "paper" if is_paper_account(report.account) else "live"
    out.print(f"connected   {report.host}:{report.port} as client id {report.client_id}, "
              f"server version {report.server_version}")
    out.print(f"accounts    {', '.join(report.accounts)} (showing {report.account}, a {kind} "
              "account)")
    for notice in report.notices:
        out.print(f"notice      {notice}")
    summary = Table(title=f"account {report.account}", box=None, header_style="bold",
                    title_justify="left", pad_edge=False)
    summary.add_column("value")
    summary.add_column("amount", justify="right")
    summary.add_column("currency")
    for tag, label in SUMMARY_TAGS:
        if tag in report.values:
            amount, cur = report.values[tag]
            summary.add_row(label, _money(amount), cur)
    out.print(summary)
    if report.positions:
        table = Table(title="positions", box=None, header_style="bold", title_justify="left",
                      pad_edge=False)
        for name, justify in (("symbol", "left"), ("type", "left"), ("quantity", "right"),
                              ("avg cost", "right")):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for sym, sec, qty, cost in report.positions:
            table.add_row(sym, sec, f"{qty:f}", _money(cost))
        out.print(table)
    else:
        out.print("positions   none")
    use = "`warden live --config FILE --live`" if kind == "live" else "`warden paper --config FILE`"
    out.print(f"ok: {kind} account {report.account} is reachable through {report.host}:"
              f"{report.port}; {use} can trade it" + (f" (mode {mode})" if mode else ""))


def register(app: typer.Typer) -> None:
    """Add ``warden ibkr`` to the CLI."""
    app.add_typer(ibkr_app, name="ibkr")


__all__ = ["CheckReport", "IbkrCheckError", "check", "ibkr_app", "probe", "register", "show"]


def make_clock() -> Any:
    """Return the clock ``warden ibkr write-puts`` runs on: the wall clock (a test swaps
    in its own, the one its fake gateway runs on)."""
    from tradewarden.engine.clock import WallClock
    return WallClock()


@ibkr_app.command("write-puts")
def write_puts(config: Path = typer.Option(..., "--config", "-c", exists=True, dir_okay=False,
                                           help="Config: mode paper or live, strategy "
                                           "put_writer, [params] (underlying, deltas, days to "
                                           "expiry, ...), capital, [venue] name = \"ibkr\"."),
               db: Optional[str] = typer.Option(None, "--db", help="Ledger database. "
                                                "[default: the config's [ledger] db]"),
               live_: bool = typer.Option(False, "--live", help="Required with mode = \"live\": "
                                          "orders go to a live IBKR account.")) -> None:
    """Run the put writer once at IBKR: read the chain, decide, send, follow the orders.

    Run it after each session's close (cron, or the daemon's market_close): the options
    desk reads IBKR's puts on the underlying (quotes with model greeks), manages the
    short puts it holds (expiry, assignment, profit target, loss limit, days to expiry),
    writes new ones within the risk limits, follows the orders until they end, saves its
    state with the deployment (the next run resumes it) and reconciles its book with
    IBKR's positions. Paper sends real orders to the IBKR paper account (DU...).
    """
    from tradewarden.execution.ibkr_options import IbkrOptions
    from tradewarden.ledger import Ledger
    from tradewarden.ops.live import connect_ibkr
    from tradewarden.ops.options_live import OptionsDeployment
    from tradewarden.ops.options_replay import DEFAULT_OPTIONS_CAPITAL, OptionsRunConfig
    from tradewarden.settings import load_settings
    from tradewarden.strategy.put_writer import PutWriterParams
    from pydantic import ValidationError

    console = Console()
    try:
        loaded = load_settings(config, {"ledger.db": (db, "--db")} if db else {})
        cfg = loaded.run_config()
        venue = loaded.settings.venue
        if cfg.strategy != "put_writer":
            raise _fail(f"--config {config}: strategy = \"{cfg.strategy}\"; write-puts runs "
                        "strategy = \"put_writer\"")
        if (venue.name or "") != "ibkr":
            raise _fail(f"--config {config}: [venue] name must be \"ibkr\"")
        if cfg.mode not in ("paper", "live"):
            raise _fail(f"--config {config}: mode = \"{cfg.mode}\"; write-puts trades "
                        "mode = \"paper\" (the IBKR paper account) or \"live\"")
        if cfg.mode == "live" and not live_:
            raise _fail("mode = \"live\" sends orders to a live account: add --live")
        params = dict(cfg.params)
        params.setdefault("underlying", cfg.symbols[0] if cfg.symbols else "SPY")
        capital = (DEFAULT_OPTIONS_CAPITAL if loaded.origin("capital").kind == "default"
                   else cfg.capital)
        ocfg = OptionsRunConfig(chain="ibkr", params=PutWriterParams(**params),
                                capital=capital, mode=cfg.mode)
        clock = make_clock()
        broker, _ = connect_ibkr(venue, cfg.model_copy(update={
            "symbols": (ocfg.params.underlying,), "timeframe": "1d"}), clock)
    except ValidationError as exc:
        raise _fail(_validation_message(exc)) from None
    except typer.Exit:
        raise
    except _known_errors() as exc:
        raise _fail(str(exc)) from None
    ledger = Ledger(loaded.ledger.url())
    try:
        dep = OptionsDeployment(
            ledger=ledger, broker=broker, options=IbkrOptions(broker.ib, clock.now),
            clock=clock.now, config=ocfg,
            deployment_id=f"puts-{ocfg.params.underlying}-{cfg.mode}"[:32])
        report = dep.step()
        differences = dep.reconcile() if report is not None else []
    finally:
        broker.disconnect()
        ledger.close()
    if report is None:
        raise _fail("nothing decided: the IBKR session is down or quoted no put "
                    f"(see the run's events: warden runs --db {loaded.ledger.url()})")
    table = Table("symbol", "action", "reason", "price", title=(
        f"put writer {ocfg.params.underlying} ({cfg.mode}, run {dep.run_id}"
        f"{', resumed' if dep.resumed else ''})"))
    for d in report.decisions:
        table.add_row(d["symbol"], d["action"], d["reason"],
                      "" if d["close"] is None else f"{d['close']:.2f}")
    console.print(table)
    console.print(f"net liquidation {report.equity:,.2f} USD, margin {report.margin:,.2f} USD; "
                  f"{len(dep.desk.shorts)} short put(s) held", highlight=False)
    for d in differences:
        console.print(f"[yellow]reconciliation:[/] {d['symbol']}: desk {d['desk']}, "
                      f"IBKR {d['venue']}", highlight=False)
