"""Option chains, quotes with model greeks, and fill snapshots from Interactive Brokers.

Through the real ``ib_async`` client (TWS API): the chain's expirations and strikes
come from ``reqSecDefOptParams`` (the SMART entry), the contracts from
``reqContractDetails``, and quotes with greeks from market data: IBKR computes model
greeks (tick types 13 / 83, "model option computation": implied volatility, delta,
gamma, vega, theta, the option's model price and the underlying's price) that
``ib_async`` keeps in ``Ticker.modelGreeks``.

Units follow :class:`~tradewarden.domain.options.OptionQuote`: prices in USD per share;
``iv`` annualised as a fraction; ``delta`` per 1 USD of the underlying; ``gamma`` per
1 USD; ``vega`` per volatility point (IBKR's definition: the price change for a 1 %
change of implied volatility); ``theta`` per calendar day (IBKR: "the option price
change for one day"). IBKR sends no rho: it is NaN.

:func:`quotes_frame` turns quotes into the frame layout of
:class:`tradewarden.data.options.OptionChain`, so the put writer's rules
(:func:`tradewarden.strategy.put_writer.select_puts`) run on a live chain exactly as on a
chain file in replay.

Nothing here reads the wall clock: quote dates and capture times come from the caller's
clock; ``ib_async`` itself waits on its socket.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from tradewarden.domain.instrument import to_decimal
from tradewarden.domain.options import OptionContract, OptionFillSnapshot, OptionQuote
from tradewarden.execution.venue import VenueError

__all__ = ["IbkrOptions", "OptionChainInfo", "quotes_frame"]


@dataclass(frozen=True, slots=True)
class OptionChainInfo:
    """What is listed on an underlying (SMART routing).

    Parameters
    ----------
    underlying : str
    underlying_con_id : int
    trading_class : str
    multiplier : int
        Shares per contract.
    expirations : tuple of datetime.date
        Ascending.
    strikes : tuple of Decimal
        USD per share, ascending.
    """

    underlying: str
    underlying_con_id: int
    trading_class: str
    multiplier: int
    expirations: tuple[date, ...]
    strikes: tuple[Decimal, ...]


def _yyyymmdd(text: str) -> date:
    return datetime.strptime(text[:8], "%Y%m%d").date()


def _num(x: Any, sentinel: float | None = None) -> float:
    """A float, NaN for "no value": ``None``, NaN, infinities, IBKR's 1.79e308 "unset"
    double, and ``sentinel`` where TWS uses one (``-2`` for a vega or theta it did not
    compute, which ``ib_async`` 2.1 passes through unchanged, unlike delta and gamma)."""
    if x is None:
        return math.nan
    v = float(x)
    if math.isnan(v) or math.isinf(v) or abs(v) >= 1e300 or (sentinel is not None and v == sentinel):
        return math.nan
    return v


def _money(x: Any) -> Decimal | None:
    v = _num(x)
    return None if math.isnan(v) or v < 0 else to_decimal(round(v, 6))


class IbkrOptions:
    """Reads option chains and quotes through a connected ``ib_async.IB``.

    Parameters
    ----------
    ib : ib_async.IB
        A connected client (sync API).
    clock : callable
        ``clock() -> float``, UTC epoch seconds (the mode's clock): quote dates and
        capture times.
    currency : str
        The options' currency (USD).
    """

    def __init__(self, ib: Any, clock: Callable[[], float], *, currency: str = "USD") -> None:
        self.ib, self.clock, self.currency = ib, clock, currency

    # -- the chain -----------------------------------------------------------------------
    def chain(self, underlying: str) -> OptionChainInfo:
        """Return the expirations and strikes listed on ``underlying``.

        Raises
        ------
        tradewarden.execution.venue.VenueError
            The underlying is unknown to IBKR or lists no options.
        """
        from ib_async import Stock
        details = self.ib.reqContractDetails(Stock(underlying, "SMART", self.currency))
        if not details:
            raise VenueError("ibkr", f"no stock {underlying!r} in {self.currency} at SMART")
        con_id = details[0].contract.conId
        chains = self.ib.reqSecDefOptParams(underlying, "", "STK", con_id)
        smart = [c for c in chains if c.exchange == "SMART"] or list(chains)
        if not smart:
            raise VenueError("ibkr", f"{underlying}: IBKR lists no options")
        c = smart[0]
        return OptionChainInfo(underlying, con_id, c.tradingClass, int(c.multiplier or 100),
                               tuple(sorted(_yyyymmdd(e) for e in c.expirations)),
                               tuple(sorted(to_decimal(float(k)) for k in c.strikes)))

    def contracts(self, underlying: str, *, right: str = "P", today: date,
                  dte_min: int = 0, dte_max: int = 3650, strike_min: float | None = None,
                  strike_max: float | None = None) -> list[Any]:
        """Return the qualified option contracts of ``underlying`` in a window.

        Parameters
        ----------
        underlying : str
        right : {"P", "C"}
        today : datetime.date
            The quote date days to expiry count from.
        dte_min, dte_max : int
            Calendar days to expiry, inclusive.
        strike_min, strike_max : float, optional
            USD per share, inclusive.

        Returns
        -------
        list of ib_async.Contract
            By expiration, then strike.
        """
        from ib_async import Option
        info = self.chain(underlying)
        out: list[Any] = []
        for exp in info.expirations:
            if not dte_min <= (exp - today).days <= dte_max:
                continue
            for d in self.ib.reqContractDetails(
                    Option(underlying, exp.strftime("%Y%m%d"), 0, right, "SMART",
                           currency=self.currency)):
                k = d.contract.strike
                if (strike_min is None or k >= strike_min) and (strike_max is None or k <= strike_max):
                    out.append(d.contract)
        out.sort(key=lambda c: (c.lastTradeDateOrContractMonth, c.strike))
        return out

    # -- quotes --------------------------------------------------------------------------
    def quotes(self, contracts: Iterable[Any]) -> list[OptionQuote]:
        """Snapshot quotes with model greeks for ``contracts``.

        A contract without a two-sided market or without model greeks yet is left out
        (a quote it cannot stand behind is no quote).

        Returns
        -------
        list of OptionQuote
            ``quote_date`` is the clock's UTC date.
        """
        contracts = list(contracts)
        if not contracts:
            return []
        day = datetime.fromtimestamp(self.clock(), tz=UTC).date()
        out: list[OptionQuote] = []
        for t in self.ib.reqTickers(*contracts):
            q = self._quote(t, day)
            if q is not None:
                out.append(q)
        return out

    def _quote(self, ticker: Any, day: date) -> OptionQuote | None:
        c = ticker.contract
        g = ticker.modelGreeks
        bid, ask = _money(ticker.bid), _money(ticker.ask)
        if g is None or bid is None or ask is None or bid > ask:
            return None
        und = _money(g.undPrice)
        if und is None or und <= 0:
            return None
        contract = OptionContract(
            underlying=c.symbol, expiration=_yyyymmdd(c.lastTradeDateOrContractMonth),
            strike=to_decimal(float(c.strike)), right=c.right[0], style="american",
            occ_symbol=c.localSymbol or "", root=c.tradingClass or c.symbol,
            multiplier=int(c.multiplier or 100))
        mid = (bid + ask) / 2
        volume = _num(getattr(ticker, "volume", None))
        return OptionQuote(
            contract=contract, quote_date=day, bid=bid, ask=ask, mid=mid,
            last=_money(ticker.last), volume=0 if math.isnan(volume) else int(volume),
            open_interest=0, iv=_num(g.impliedVol), delta=_num(g.delta), gamma=_num(g.gamma),
            vega=_num(g.vega, -2.0), theta=_num(g.theta, -2.0), rho=math.nan,
            underlying_price=und)

    def fill_snapshot(self, ticker: Any) -> OptionFillSnapshot:
        """Capture an option's market now, from its streaming ticker.

        Called when the adapter sees an execution of an option order, with the ticker it
        subscribed to when it placed the order: the values are those of the moment of
        the fill, not of a later scan.

        Parameters
        ----------
        ticker : ib_async.Ticker

        Returns
        -------
        OptionFillSnapshot
            ``source`` ``ibkr:model_greeks``; NaN greeks when IBKR had computed none.
        """
        c, g = ticker.contract, ticker.modelGreeks
        def get(name: str) -> float:
            if g is None:
                return math.nan
            return _num(getattr(g, name, None), -2.0 if name in ("vega", "theta") else None)

        return OptionFillSnapshot(
            occ_symbol=c.localSymbol or c.symbol, captured_ts=int(self.clock()),
            bid=_money(ticker.bid), ask=_money(ticker.ask),
            underlying_price=None if g is None else _money(g.undPrice),
            iv=get("impliedVol"), delta=get("delta"), gamma=get("gamma"), theta=get("theta"),
            vega=get("vega"), source="ibkr:model_greeks")


def quotes_frame(quotes: Iterable[OptionQuote]) -> pd.DataFrame:
    """Return quotes as an :class:`~tradewarden.data.options.OptionChain` frame.

    Columns: ``quote_date``, ``underlying``, ``root``, ``occ_symbol``, ``expiration``,
    ``dte``, ``strike``, ``right``, ``style``, ``bid``, ``ask``, ``mid``, ``iv``,
    ``delta``, ``gamma``, ``vega``, ``theta``, ``rho``, ``underlying_price`` (money as
    float64 USD per share, dates as ``datetime64``), one row per quote.
    """
    rows = [{"quote_date": pd.Timestamp(q.quote_date), "underlying": q.contract.underlying,
             "root": q.contract.root or q.contract.underlying, "occ_symbol": q.contract.occ_symbol,
             "expiration": pd.Timestamp(q.contract.expiration), "dte": q.days_to_expiration,
             "strike": float(q.contract.strike), "right": q.contract.right,
             "style": q.contract.style, "bid": float(q.bid), "ask": float(q.ask),
             "mid": float(q.mid), "iv": q.iv, "delta": q.delta, "gamma": q.gamma,
             "vega": q.vega, "theta": q.theta, "rho": q.rho,
             "underlying_price": float(q.underlying_price)} for q in quotes]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["dte"] = frame["dte"].astype(np.int64)
    return frame
