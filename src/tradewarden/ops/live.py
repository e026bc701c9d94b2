"""Going live: the gates before real money, the venue adapter, what a person is shown.

``warden live`` comes here before the deployment loop (:mod:`tradewarden.ops.paper`,
the same loop paper trading runs, with a venue adapter as the broker):

1. :func:`live_refusals`: ``mode = "live"`` in the config, the ``--live`` flag, a venue
   and credentials (``TRADEWARDEN_VENUE__API_KEY`` / ``__API_SECRET``, or Coinbase's CDP
   key file ``[venue] key_file``); anything missing is refused with what to do instead;
2. :func:`connect_venue`: the adapter for the venue (Coinbase through its official
   SDK with native brackets; Interactive Brokers through ``ib_async`` and TWS / IB
   Gateway with native brackets, :func:`connect_ibkr`, paper or live by the account;
   any other ccxt venue through :class:`CcxtBroker` with brackets the engine emulates)
   and the instruments as the venue lists them;
3. a read-only pre-flight (``broker.preflight()``): a key without trade permission or
   with withdrawal permission is refused;
4. :func:`exposure_lines`: venue, account, balances, symbols, and the most the
   configuration can lose per trade and per day, for the confirmation.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tradewarden.domain import Instrument
from tradewarden.engine.clock import Clock
from tradewarden.engine.config import RunConfig
from tradewarden.execution.venue import Preflight, VenuePermissionError


def live_refusals(mode: str, live_flag: bool, venue: Any) -> list[str]:
    """Return why ``warden live`` must not start (empty when it may).

    Parameters
    ----------
    mode : str
        The config's ``mode``.
    live_flag : bool
        ``--live`` was given.
    venue : tradewarden.settings.VenueSettings
    """
    out = []
    if mode != "live":
        out.append(f'the config says mode = "{mode}": set mode = "live" in the file you '
                   "mean to trade with (to try it on live candles without money, use "
                   "`warden paper`)")
    if not live_flag:
        out.append("pass --live to trade real money (without it, use `warden paper`)")
    if not venue.name:
        out.append("set [venue] name (coinbase, kraken or another ccxt id)")
    elif not _has_credentials(venue):
        where = ("TRADEWARDEN_VENUE__API_KEY and TRADEWARDEN_VENUE__API_SECRET, or "
                 "[venue] key_file (the CDP key file)" if venue.name == "coinbase"
                 else "TRADEWARDEN_VENUE__API_KEY and TRADEWARDEN_VENUE__API_SECRET")
        out.append(f"no credentials for {venue.name}: set {where}")
    return out


def _has_credentials(venue: Any) -> bool:
    if venue.name == "ibkr":    # the TWS / IB Gateway login is the credential
        return True
    if venue.name == "coinbase" and venue.key_file is not None:
        return True
    return venue.api_key is not None and venue.api_secret is not None


def connect_venue(venue: Any, config: RunConfig, clock: Clock) -> tuple[Any, dict[str, Instrument]]:
    """Build the venue adapter for ``[venue]`` and read the instruments it lists.

    Parameters
    ----------
    venue : tradewarden.settings.VenueSettings
        ``name``, ``api_url``, credentials (secrets never printed or stored).
    config : RunConfig
        The symbols to trade.
    clock : Clock
        The deployment's clock (retries and waits use it).

    Returns
    -------
    (Broker, dict of str to Instrument)

    Raises
    ------
    tradewarden.execution.venue.VenueError
        The venue cannot be reached or does not list a symbol.
    ValueError
        An unknown venue name.
    """
    symbols = list(config.symbols)
    key = venue.api_key.get_secret_value() if venue.api_key is not None else None
    secret = venue.api_secret.get_secret_value() if venue.api_secret is not None else None
    if venue.name == "ibkr":
        return connect_ibkr(venue, config, clock)
    if venue.name == "coinbase":
        from tradewarden.execution.coinbase import CoinbaseBroker
        broker = CoinbaseBroker.connect(api_key=key, api_secret=secret,
                                        key_file=None if venue.key_file is None else str(venue.key_file),
                                        api_url=venue.api_url, symbols=symbols, clock=clock)
        return broker, dict(broker.instruments)
    from tradewarden.data.download import create_venue_client
    from tradewarden.data.markets import load_market_specs
    from tradewarden.execution.ccxt_broker import CcxtBroker
    exchange = create_venue_client(venue.name, api_url=venue.api_url,
                                   config={"apiKey": key, "secret": secret})
    specs = load_market_specs(venue.name, symbols, exchange=exchange, refresh=True)
    instruments = {s: specs[s].instrument for s in symbols}
    return CcxtBroker(exchange, instruments, clock=clock, venue=venue.name), instruments


# -- Interactive Brokers ([venue] name = "ibkr") ------------------------------------------
#: TWS and IB Gateway's default API ports for a paper login and for a live one (IBKR's
#: TWS API documentation, "Connectivity": TWS 7497 / 7496, IB Gateway 4002 / 4001).
IBKR_PAPER_PORTS = frozenset({7497, 4002})
IBKR_LIVE_PORTS = frozenset({7496, 4001})


def is_paper_account(account: str) -> bool:
    """Return whether an IBKR account code is a paper-trading account.

    IBKR gives every paper-trading account a code starting with ``DU`` (live individual
    accounts start with ``U``); the paper account takes the same API as the live one.
    """
    return account.upper().startswith("DU")


def ibkr_mode_problems(mode: str | None, port: int | None, account: str | None) -> list[str]:
    """Return why a paper or live deployment must not use this IBKR port or account.

    Paper trading on IBKR is the IBKR paper account (``DU...``, reached through TWS's
    paper port 7497 or IB Gateway's 4002) with orders sent through
    :class:`~tradewarden.execution.ibkr.IbkrBroker`; live trading needs a non-paper
    account (live ports 7496 / 4001) and ``warden live --live``. A port outside the
    defaults is judged by the account alone.

    Parameters
    ----------
    mode : str or None
        The config's ``mode``; ``None`` or ``replay``: nothing to compare.
    port : int or None
        The API socket port.
    account : str or None
        The account code (``None``: not known yet).

    Returns
    -------
    list of str
        One line per mismatch (empty when none).
    """
    if mode not in ("paper", "live"):
        return []
    out = []
    if mode == "paper" and port in IBKR_LIVE_PORTS:
        out.append(f"port {port} is a live trading port (TWS 7496, IB Gateway 4001) but the "
                   "config says mode = \"paper\": use the paper login's port (TWS 7497, IB "
                   "Gateway 4002), or `warden live --live` with mode = \"live\"")
    if mode == "live" and port in IBKR_PAPER_PORTS:
        out.append(f"port {port} is a paper trading port (TWS 7497, IB Gateway 4002) but the "
                   "config says mode = \"live\": use the live login's port (TWS 7496, IB "
                   "Gateway 4001), or `warden paper` with mode = \"paper\"")
    if account and mode == "paper" and not is_paper_account(account):
        out.append(f"account {account} is not an IBKR paper account (those start with DU) "
                   "but the config says mode = \"paper\": log in to the paper account, or "
                   "trade this one with mode = \"live\" and `warden live --live`")
    if account and mode == "live" and is_paper_account(account):
        out.append(f"account {account} is an IBKR paper account (DU...) but the config says "
                   "mode = \"live\": trade it with `warden paper` (mode = \"paper\"), or log "
                   "in to the live account")
    return out


def connect_ibkr(venue: Any, config: RunConfig, clock: Clock) -> tuple[Any, dict[str, Instrument]]:
    """Connect :class:`~tradewarden.execution.ibkr.IbkrBroker` for a paper or live deployment.

    Paper and live both send orders to IBKR (paper: the IBKR paper account); the mode
    must match the port and the account (:func:`ibkr_mode_problems`). Equities trade on
    daily bars (``timeframe = "1d"``).

    Parameters
    ----------
    venue : tradewarden.settings.VenueSettings
        ``host`` (default 127.0.0.1), ``port`` (default 7497), ``client_id`` (default 1),
        ``account`` (default the only account the login manages).
    config : RunConfig
        ``mode``, ``symbols`` (US stock tickers), ``timeframe``.
    clock : Clock

    Returns
    -------
    (IbkrBroker, dict of str to Instrument)

    Raises
    ------
    ValueError
        A timeframe other than ``1d``.
    tradewarden.execution.venue.VenueError
        The gateway cannot be reached, or the port or account is of the other mode.
    """
    from tradewarden.execution.ibkr import IbkrBroker
    from tradewarden.execution.venue import VenueError

    if config.timeframe not in (None, "1d"):
        raise ValueError(f"timeframe = \"{config.timeframe}\": [venue] name = \"ibkr\" trades "
                         "US equities on daily bars; set timeframe = \"1d\"")
    port = venue.port or 7497
    problems = ibkr_mode_problems(config.mode, port, venue.account)
    if problems:
        raise VenueError("ibkr", problems[0])
    broker = IbkrBroker.connect(venue.host or "127.0.0.1", port,
                                venue.client_id if venue.client_id is not None else 1,
                                venue.account, list(config.symbols), clock)
    problems = ibkr_mode_problems(config.mode, port, broker.account_id)
    if problems:
        broker.disconnect()
        raise VenueError("ibkr", problems[0])
    return broker, dict(broker.instruments)


def ibkr_feed(broker: Any, config: RunConfig) -> Any:
    """Return the daily-bar feed of an IBKR deployment: :class:`~tradewarden.data.ibkr_feed.
    IbkrBarFeed` on the broker's session and contracts (NYSE sessions, a bar due at the
    next midnight UTC).

    The price basis follows ``adjust`` (the same key as replay): ``split`` (the default)
    asks for IBKR's ``TRADES`` bars, which IBKR adjusts for splits but not dividends;
    ``split_dividend`` asks for ``ADJUSTED_LAST`` (adjusted for splits and dividends,
    TWS API "Historical Data Types"). IBKR serves no unadjusted daily bars, so ``raw`` is
    refused.

    Parameters
    ----------
    broker : tradewarden.execution.ibkr.IbkrBroker
    config : RunConfig
        ``timeframe`` ``1d``; ``adjust``.

    Raises
    ------
    ValueError
        A timeframe other than ``1d``, or ``adjust = "raw"``.
    """
    from tradewarden.data.ibkr_feed import IbkrBarFeed

    if config.timeframe != "1d":
        raise ValueError(f"timeframe = \"{config.timeframe}\": [venue] name = \"ibkr\" trades "
                         "US equities on daily bars; set timeframe = \"1d\"")
    if config.adjust == "raw":
        raise ValueError("adjust = \"raw\": IBKR serves no unadjusted daily bars (TRADES bars "
                         "are split-adjusted); set adjust = \"split\" or \"split_dividend\"")
    return IbkrBarFeed.from_broker(broker, adjusted=config.adjust == "split_dividend")


def check_preflight(pre: Preflight) -> None:
    """Refuse a key that cannot trade or can withdraw.

    Raises
    ------
    VenuePermissionError
        One line per problem.
    """
    problems = pre.problems()
    if problems:
        raise VenuePermissionError(pre.venue, "; ".join(p.split(": ", 1)[-1] for p in problems))


def exposure_lines(config: RunConfig, pre: Preflight) -> list[str]:
    """What a person reads before confirming: venue, account, balances, symbols, the
    most the configuration can lose per trade and per day (quote currency).

    Per trade: with ``risk:F`` sizing, ``F`` of the account's equity if the stop-loss
    fills at its level (a gap through it can lose more: Coinbase's stop becomes a
    stop-limit 5 % below the trigger); with ``fixed:Q`` sizing, ``Q`` base units times
    the distance to the stop-loss. Per day: ``daily_loss_limit`` of equity, after which
    entries halt until the next UTC day (exits still pass).
    """
    capital = Decimal(str(config.capital))
    accounts = len(config.symbols) if config.capital_mode == "independent" else 1
    risk = config.risk
    if risk.sizing.kind == "risk":
        per_trade = (f"{risk.sizing.value:.2%} of equity per trade at the stop-loss "
                     f"(about {capital * Decimal(str(risk.sizing.value)):.2f} of "
                     f"{capital:.2f}{' per symbol' if accounts > 1 else ''})")
    else:
        per_trade = (f"{risk.sizing.value:g} base units per trade times the distance to "
                     "its stop-loss")
    if risk.daily_loss_limit is None:
        per_day = "no daily loss limit (risk.daily_loss_limit is off)"
    else:
        per_day = (f"{risk.daily_loss_limit:.2%} of equity per UTC day "
                   f"(about {capital * Decimal(str(risk.daily_loss_limit)) * accounts:.2f}), "
                   "then no new entries until the next day")
    balances = ", ".join(f"{c} {v}" for c, v in sorted(pre.balances.items()) if v) or "none"
    lines = [f"venue     {pre.venue}, account {pre.account}",
             f"balances  {balances}",
             f"symbols   {', '.join(config.symbols)} ({config.timeframe}), strategy {config.strategy}",
             f"capital   {capital:.2f} ({config.capital_mode})",
             f"at most   {per_trade}",
             f"per day   {per_day}"]
    lines += [f"note      {n}" for n in pre.notes]
    return lines


__all__ = ["IBKR_LIVE_PORTS", "IBKR_PAPER_PORTS", "check_preflight", "connect_ibkr", "connect_venue",
           "exposure_lines", "ibkr_feed", "ibkr_mode_problems", "is_paper_account", "live_refusals"]
