"""Selling cash-secured or margined puts: which put to write, and when to buy it back.

The rules of the put writer, as pure functions over one day's option chain (the
tidy frame of :class:`tradewarden.data.options.OptionChain`: one row per contract, prices
in USD per share, ``delta`` in ``[-1, 0]`` for puts, ``iv`` annualised as a fraction,
``dte`` calendar days to expiration). The engine, the risk manager
(:mod:`tradewarden.risk.options`) and the venue act on what they return; nothing here
reads a clock or a venue.

Writing
-------
A put is a candidate on a quote date when it is a put of the underlying, its days to
expiry are in ``[dte_min, dte_max]``, its delta in ``[delta_min, delta_max]`` (both
negative: ``-0.30 .. -0.15`` by default), its bid (the credit a sell at the bid
receives) at least ``min_credit``, its implied volatility within ``[iv_min, iv_max]``
where set, its bid-ask spread at most ``max_spread_fraction`` of the mid, and it is not
held already. Candidates are ranked by annualised return on margin,
``bid / margin * 365 / dte`` (margin from :func:`~tradewarden.risk.options.short_put_margin`
at the bid), highest first; ties go to the delta nearer the middle of the range, then
to the OCC symbol, so the choice is deterministic. At most ``max_positions`` puts are
held at once.

Buying back
-----------
For a put written at credit ``c`` (per share), on each later quote date, the first that
holds of:

1. ``expiry``: the quote date is on or after the expiration. Worthless when the
   underlying closed at or above the strike (the trade closes at 0, the whole credit
   kept); otherwise the put is assigned: the trade closes at its intrinsic value
   ``strike - underlying`` and ``multiplier`` shares per contract are delivered, booked
   by the desk at the underlying's price (with the intrinsic value: the strike), or,
   for a cash-settled put, the intrinsic value is paid in cash;
2. ``loss_limit``: the ask reached ``loss_multiple * c``;
3. ``profit_target``: the ask fell to ``(1 - profit_target) * c`` or below;
4. ``days_to_expiry``: at most ``close_days_before_expiry`` calendar days are left;

else the position is held. A put with no quote that day is held (when in doubt, do
nothing) unless it has expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from tradewarden.domain.instrument import to_decimal
from tradewarden.risk.options import short_put_margin
from tradewarden.strategy.base import StrategyParams

__all__ = ["BuyBack", "PutCandidate", "PutWriter", "PutWriterParams", "ShortPut",
           "manage_short_put", "select_puts"]

ExitKind = Literal["expired_worthless", "assigned", "loss_limit", "profit_target",
                   "days_to_expiry"]


class PutWriterParams(StrategyParams):
    """Parameters of the put writer (deltas of puts are negative)."""

    underlying: str = Field("AAPL", min_length=1, description="the underlying whose puts are written")
    delta_min: float = Field(-0.30, ge=-1, le=0, description="most negative put delta written")
    delta_max: float = Field(-0.15, ge=-1, le=0, description="least negative put delta written")
    dte_min: int = Field(21, ge=0, le=3650, description="fewest calendar days to expiry")
    dte_max: int = Field(45, ge=0, le=3650, description="most calendar days to expiry")
    min_credit: float = Field(0.50, ge=0, description="least bid accepted, USD per share")
    iv_min: float | None = Field(None, ge=0, description="least implied volatility (fraction; none: no floor)")
    iv_max: float | None = Field(None, ge=0, description="most implied volatility (fraction; none: no cap)")
    max_spread_fraction: float = Field(0.25, gt=0, description="widest bid-ask spread, fraction of the mid")
    max_positions: int = Field(3, ge=1, le=1000, description="short puts held at most")
    profit_target: float = Field(0.50, gt=0, lt=1, description="buy back once this fraction of the credit is earned")
    loss_multiple: float = Field(2.0, gt=1, description="buy back once the put costs this multiple of the credit")
    close_days_before_expiry: int = Field(5, ge=0, le=3650, description="buy back this many calendar days before expiry")

    @model_validator(mode="after")
    def _ranges(self) -> PutWriterParams:
        if self.delta_min > self.delta_max:
            raise ValueError(f"delta_min {self.delta_min} is above delta_max {self.delta_max}")
        if self.dte_min > self.dte_max:
            raise ValueError(f"dte_min {self.dte_min} is above dte_max {self.dte_max}")
        if self.iv_min is not None and self.iv_max is not None and self.iv_min > self.iv_max:
            raise ValueError(f"iv_min {self.iv_min} is above iv_max {self.iv_max}")
        return self


class PutWriter:
    """Sell puts in a delta and days-to-expiry range and buy them back at a profit target,
    a loss limit or before expiry, on the options desk (replay: ``warden replay
    --strategy put_writer``; IBKR: ``warden ibkr write-puts``).

    Not a bar strategy: the desk (:mod:`tradewarden.engine.options_desk`) drives
    :func:`select_puts` and :func:`manage_short_put` on each chain snapshot. The class
    names the strategy and its parameters for ``warden strategies list``.
    """

    name = "put_writer"
    Params = PutWriterParams


@dataclass(frozen=True, slots=True)
class PutCandidate:
    """A put worth writing on a quote date (one chain row).

    Parameters
    ----------
    occ_symbol : str
        The contract's OCC symbol.
    strike, bid, ask, underlying_price : Decimal
        USD per share.
    expiration : datetime.date
    dte : int
        Calendar days to expiration.
    delta, gamma, theta, vega, iv : float
        As the chain gives them (see :mod:`tradewarden.domain.options`).
    margin : Decimal
        :func:`~tradewarden.risk.options.short_put_margin` of one contract at the bid, USD.
    annual_return_on_margin : float
        ``bid * multiplier / margin * 365 / dte``.
    """

    occ_symbol: str
    strike: Decimal
    expiration: date
    dte: int
    bid: Decimal
    ask: Decimal
    underlying_price: Decimal
    delta: float
    gamma: float
    theta: float
    vega: float
    iv: float
    margin: Decimal
    annual_return_on_margin: float


@dataclass(frozen=True, slots=True)
class ShortPut:
    """A put written and still held.

    Parameters
    ----------
    occ_symbol : str
    strike : Decimal
        USD per share.
    expiration : datetime.date
    credit : Decimal
        Premium received per share (the sell's average fill price), USD.
    contracts : int
    multiplier : int
        Shares per contract.
    """

    occ_symbol: str
    strike: Decimal
    expiration: date
    credit: Decimal
    contracts: int
    multiplier: int = 100


@dataclass(frozen=True, slots=True)
class BuyBack:
    """Why and at what price a short put ends.

    Parameters
    ----------
    kind : {"expired_worthless", "assigned", "loss_limit", "profit_target", "days_to_expiry"}
    price : Decimal or None
        USD per share: the ask for a buy-back (the order's reference price), 0 for an
        expiry worthless, the intrinsic value ``strike - underlying`` at assignment.
    shares_assigned : int
        Shares bought at the strike on assignment (``contracts * multiplier``), else 0.
    """

    kind: ExitKind
    price: Decimal | None
    shares_assigned: int = 0


def _dec(x: float) -> Decimal:
    return to_decimal(float(x))


def select_puts(chain: pd.DataFrame, params: PutWriterParams, *, quote_date: date,
                held: frozenset[str] | set[str] = frozenset(), multiplier: int = 100
                ) -> list[PutCandidate]:
    """Return the puts worth writing on ``quote_date``, best first (see the module notes).

    Parameters
    ----------
    chain : pandas.DataFrame
        An :class:`~tradewarden.data.options.OptionChain` frame (may hold other dates,
        calls and other underlyings: they are filtered out).
    params : PutWriterParams
    quote_date : datetime.date
    held : set of str
        OCC symbols already short (never doubled).
    multiplier : int
        Shares per contract.

    Returns
    -------
    list of PutCandidate
        At most ``params.max_positions - len(held)`` (none when that many are held).
    """
    room = params.max_positions - len(held)
    if room <= 0 or chain.empty:
        return []
    f = chain
    day = np.datetime64(quote_date, "ns")
    mask = ((f["quote_date"].to_numpy("datetime64[ns]") == day)
            & (f["underlying"].to_numpy() == params.underlying) & (f["right"].to_numpy() == "P"))
    f = f[mask]
    delta, dte, bid, ask = (f["delta"].to_numpy(float), f["dte"].to_numpy(int),
                            f["bid"].to_numpy(float), f["ask"].to_numpy(float))
    iv = f["iv"].to_numpy(float)
    mid = (bid + ask) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        keep = ((dte >= params.dte_min) & (dte <= params.dte_max) & (dte > 0)
                & (delta >= params.delta_min) & (delta <= params.delta_max)
                & (bid >= params.min_credit) & (bid > 0)
                & ((ask - bid) <= params.max_spread_fraction * mid))
        if params.iv_min is not None:
            keep &= iv >= params.iv_min
        if params.iv_max is not None:
            keep &= iv <= params.iv_max
    keep &= ~np.isin(f["occ_symbol"].to_numpy(), list(held))
    f = f[keep]
    middle = (params.delta_min + params.delta_max) / 2
    out: list[PutCandidate] = []
    for row in f.itertuples(index=False):
        strike, b = _dec(row.strike), _dec(row.bid)
        und = _dec(row.underlying_price)
        margin = short_put_margin(strike, und, b, multiplier)
        arom = float(b * multiplier / margin) * 365.0 / int(row.dte)
        out.append(PutCandidate(row.occ_symbol, strike, pd.Timestamp(row.expiration).date(),
                                int(row.dte), b, _dec(row.ask), und, float(row.delta),
                                float(row.gamma), float(row.theta), float(row.vega),
                                float(row.iv), margin, arom))
    out.sort(key=lambda c: (-c.annual_return_on_margin, abs(c.delta - middle), c.occ_symbol))
    return out[:room]


def manage_short_put(position: ShortPut, *, quote_date: date, ask: Decimal | None,
                     underlying_close: Decimal | None, params: PutWriterParams) -> BuyBack | None:
    """Return how ``position`` ends on ``quote_date``, or ``None`` to keep holding it.

    Parameters
    ----------
    position : ShortPut
    quote_date : datetime.date
    ask : Decimal or None
        The put's ask that day, USD per share (``None``: no quote).
    underlying_close : Decimal or None
        The underlying's close that day, USD (needed on the expiration date).
    params : PutWriterParams

    Returns
    -------
    BuyBack or None

    Raises
    ------
    ValueError
        The put has expired and no underlying close is given (worthless or assigned
        cannot be told).
    """
    if quote_date >= position.expiration:
        if underlying_close is None:
            raise ValueError(f"{position.occ_symbol}: expired on {position.expiration} but no "
                             "underlying close is known to tell worthless from assigned")
        if underlying_close >= position.strike:
            return BuyBack("expired_worthless", Decimal(0))
        return BuyBack("assigned", position.strike - underlying_close,
                       position.contracts * position.multiplier)
    if ask is None:
        return None
    credit = position.credit
    if ask >= _dec(params.loss_multiple) * credit:
        return BuyBack("loss_limit", ask)
    if ask <= (1 - _dec(params.profit_target)) * credit:
        return BuyBack("profit_target", ask)
    if (position.expiration - quote_date).days <= params.close_days_before_expiry:
        return BuyBack("days_to_expiry", ask)
    return None
