"""Listed equity and index options: contracts, end-of-day quotes and OCC symbols.

Money (strike, bid, ask, mid, last, underlying and forward prices) is ``Decimal`` in US
dollars **per share** of the underlying (per index unit for index options): a quote of
``ask = 3.25`` on a standard contract costs ``3.25 * multiplier = 325`` dollars.
Implied volatility and the greeks are ``float`` (model outputs), with the units the
data vendor uses; for the iVolatility files in this package:

- ``iv``: annualised, as a fraction (``0.2656`` is 26.56 %);
- ``delta``: per 1 dollar move of the underlying, in ``[0, 1]`` for calls and
  ``[-1, 0]`` for puts;
- ``gamma``: change of delta per 1 dollar move;
- ``vega``: price change per 1 volatility point (0.01 of ``iv``);
- ``theta``: price change per calendar day;
- ``rho``: price change per 1 percentage point of the interest rate.

Every validation failure raises :class:`OptionFieldError`, a ``ValueError`` whose
``field`` attribute names the offending field and whose message starts with it.

This module imports nothing of tradewarden outside ``domain``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Literal, NamedTuple

from tradewarden.domain.instrument import to_decimal

__all__ = [
    "OCC_SYMBOL_LENGTH", "OccSymbol", "OptionContract", "OptionFieldError", "OptionFillSnapshot",
    "OptionQuote",
    "OptionRight", "OptionStyle", "format_occ_symbol", "occ_expiration_matches",
    "option_tick", "parse_occ_symbol",
]

OptionRight = Literal["C", "P"]
OptionStyle = Literal["american", "european"]

# OCC Options Symbology Initiative (OSI), "Options Symbology Initiative" plan v1.8
# (The Options Clearing Corporation, 2008-08-15), in force since 2010-02-12. The OSI
# key is 21 characters:
#   root        6  option root symbol, left-justified, padded with spaces (e.g. "AAPL  ")
#   expiration  6  YYMMDD
#   right       1  "C" call, "P" put
#   strike      8  strike price * 1000, zero-padded: 5 integer digits + 3 decimals
# Example: "AAPL  140920C00095000" = AAPL call, expiry 2014-09-20, strike 95.000.
# Feeds and files often drop the padding ("AAPL 140920C00095000", "AAPL140920C00095000");
# parse_occ_symbol accepts those, format_occ_symbol always writes the 21-character key.
OCC_SYMBOL_LENGTH = 21
_ROOT_WIDTH = 6
_TAIL = re.compile(r"^(?P<yy>\d{2})(?P<mm>\d{2})(?P<dd>\d{2})(?P<right>[CP])(?P<strike>\d{8})$")
_ROOT = re.compile(r"^[A-Z0-9][A-Z0-9.]{0,5}$")
_RIGHTS = ("C", "P")
_STYLES = ("american", "european")
_MAX_STRIKE_THOUSANDTHS = 99_999_999


class OptionFieldError(ValueError):
    """An option value that breaks an invariant.

    Parameters
    ----------
    field : str
        Name of the offending field (``"bid"``, ``"expiration"``, ...).
    problem : str
        What is wrong; the message is ``"{field}: {problem}"``.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class OccSymbol(NamedTuple):
    """The four fields of an OCC (OSI) option symbol.

    Attributes
    ----------
    root : str
        Option root (1-6 characters, no padding).
    expiration : datetime.date
        Expiration date (``YY`` is read as ``20YY``).
    right : {"C", "P"}
    strike : Decimal
        Strike in dollars, with no more than 3 decimals and no trailing zeros
        (``Decimal("95")``, ``Decimal("27.86")``).
    """

    root: str
    expiration: date
    right: str
    strike: Decimal


def _plain(d: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent form (``100.000`` -> ``100``)."""
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


def _strike_thousandths(strike: Decimal, field: str = "strike") -> int:
    """Return ``strike * 1000`` as an int, or raise if the OSI key cannot hold it."""
    if not strike.is_finite() or strike <= 0:
        raise OptionFieldError(field, f"must be a positive finite price, got {strike}")
    scaled = strike * 1000
    if scaled != scaled.to_integral_value():
        raise OptionFieldError(field, f"{strike} has more than 3 decimals; an OCC symbol "
                                      "encodes strikes in thousandths of a dollar")
    if scaled > _MAX_STRIKE_THOUSANDTHS:
        raise OptionFieldError(field, f"{strike} exceeds 99999.999, the largest strike an OCC "
                                      "symbol can encode")
    return int(scaled)


def _check_root(root: object, field: str = "root") -> str:
    if not isinstance(root, str) or not _ROOT.match(root):
        raise OptionFieldError(field, f"expected 1-6 upper-case letters, digits or '.', "
                                      f"got {root!r}")
    return root


def parse_occ_symbol(symbol: str, *, strict: bool = False) -> OccSymbol:
    """Parse an OCC (OSI) option symbol.

    Parameters
    ----------
    symbol : str
        ``"AAPL  140920C00095000"`` (the 21-character key) or, unless ``strict``, the
        same with the root padding shortened or removed (``"AAPL 140920C00095000"``,
        ``"AAPL140920C00095000"``). The last 15 characters are always the date, right and
        strike, so roots ending in a digit (``"AAPL7"``) parse unambiguously.
    strict : bool, default False
        Require exactly 21 characters with the root space-padded to 6.

    Returns
    -------
    OccSymbol

    Raises
    ------
    OptionFieldError
        (field ``"occ_symbol"``) if the symbol is not a string, is malformed, names an
        impossible date, or has a zero strike.

    Examples
    --------
    >>> parse_occ_symbol("AAPL  140920C00095000")
    OccSymbol(root='AAPL', expiration=datetime.date(2014, 9, 20), right='C', strike=Decimal('95'))
    """
    field = "occ_symbol"
    if not isinstance(symbol, str):
        raise OptionFieldError(field, f"expected text, got {type(symbol).__name__}")
    if strict and len(symbol) != OCC_SYMBOL_LENGTH:
        raise OptionFieldError(field, f"{symbol!r} is {len(symbol)} characters; the OCC key is "
                                      f"{OCC_SYMBOL_LENGTH}")
    head, tail = symbol[:-15], symbol[-15:]
    match = _TAIL.match(tail) if len(symbol) > 15 else None
    root = head.rstrip(" ")
    if match is None or not _ROOT.match(root) or (strict and len(head) != _ROOT_WIDTH):
        raise OptionFieldError(field, f"{symbol!r} is not an OCC option symbol (root up to 6 "
                                      "characters, YYMMDD, C or P, strike * 1000 in 8 digits)")
    try:
        expiration = date(2000 + int(match["yy"]), int(match["mm"]), int(match["dd"]))
    except ValueError:
        raise OptionFieldError(field, f"{symbol!r} has an impossible expiration date "
                                      f"{match['yy']}{match['mm']}{match['dd']}") from None
    thousandths = int(match["strike"])
    if thousandths == 0:
        raise OptionFieldError(field, f"{symbol!r} has a zero strike")
    return OccSymbol(root, expiration, match["right"], _plain(Decimal(thousandths).scaleb(-3)))


def format_occ_symbol(root: str, expiration: date, right: str, strike: Decimal | float | str
                      ) -> str:
    """Write the 21-character OCC (OSI) key.

    Parameters
    ----------
    root : str
        1-6 characters; padded with spaces to 6.
    expiration : datetime.date
        Must fall in 2000-2099 (the key holds a 2-digit year).
    right : {"C", "P"}
    strike : Decimal, float or str
        Dollars; at most 3 decimals, below 100000.

    Returns
    -------
    str
        E.g. ``"AAPL  140920C00095000"``.

    Raises
    ------
    OptionFieldError
        Naming ``root``, ``expiration``, ``right`` or ``strike``.
    """
    _check_root(root)
    if not isinstance(expiration, date):
        raise OptionFieldError("expiration", f"expected a date, got {expiration!r}")
    if not 2000 <= expiration.year <= 2099:
        raise OptionFieldError("expiration", f"{expiration} outside 2000-2099, which a 2-digit "
                                             "OCC year cannot express")
    if right not in _RIGHTS:
        raise OptionFieldError("right", f"expected 'C' or 'P', got {right!r}")
    thousandths = _strike_thousandths(_to_decimal("strike", strike))
    return (f"{root:<{_ROOT_WIDTH}}{expiration:%y%m%d}{right}{thousandths:08d}")


def occ_expiration_matches(symbol_date: date, expiration: date) -> bool:
    """Whether an OCC symbol's date and a quoted expiration name the same expiry.

    Until February 2015 standard monthly options expired on the **Saturday** after the
    third Friday, and the OCC symbol carries that Saturday (``AAPL  140920C00095000``,
    ``SPX   110122C00200000``). Vendors differ in the expiration they print: iVolatility
    gives the Saturday for AAPL but the Friday, the last trading day, for SPX
    (``2011-01-21``). Both are accepted.

    Parameters
    ----------
    symbol_date : datetime.date
        Expiration in the OCC symbol.
    expiration : datetime.date
        Expiration given alongside it.

    Returns
    -------
    bool
        ``True`` when the dates are equal, or ``symbol_date`` is a Saturday and
        ``expiration`` the Friday before it.
    """
    return symbol_date == expiration or (
        symbol_date.weekday() == 5 and (symbol_date - expiration).days == 1)


def _to_decimal(field: str, value: object) -> Decimal:
    try:
        return to_decimal(value)  # type: ignore[arg-type]
    except (ValueError, TypeError, InvalidOperation):
        raise OptionFieldError(field, f"not a finite number: {value!r}") from None


@dataclass(frozen=True, slots=True)
class OptionContract:
    """A listed option: what is bought or sold, independent of any price.

    Parameters
    ----------
    underlying : str
        Ticker of the underlying stock, ETF or index (``"AAPL"``, ``"SPX"``).
    expiration : datetime.date
        Expiration date. Usually the date in the OCC symbol; see
        :func:`occ_expiration_matches` for the pre-2015 Saturday convention, under which
        a vendor may give the Friday before the symbol's Saturday.
    strike : Decimal
        Strike price, dollars per share; positive, at most 3 decimals.
    right : {"C", "P"}
        Call or put.
    style : {"american", "european"}
        Exercise style (US equity options are American, SPX options European).
    occ_symbol : str, default ""
        OCC key. Empty: written from the other fields. Otherwise parsed (padding may be
        shortened), checked against ``root``, ``expiration`` (see
        :func:`occ_expiration_matches`), ``right`` and ``strike``, and stored as the
        21-character key with the symbol's own date.
    root : str, default ""
        Option root (``"SPXW"`` for SPX weeklies); empty means ``underlying``.
    multiplier : int, default 100
        Shares (index units) per contract.

    Raises
    ------
    OptionFieldError
        A ``ValueError`` naming the field: empty ``underlying``, bad ``root``,
        ``expiration`` not a date, non-positive or unencodable ``strike``, ``right`` not
        C/P, ``style`` not american/european, ``multiplier`` not a positive int, or an
        ``occ_symbol`` that is malformed or disagrees with the other fields.
    """

    underlying: str
    expiration: date
    strike: Decimal
    right: OptionRight
    style: OptionStyle
    occ_symbol: str = ""
    root: str = ""
    multiplier: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.underlying, str) or not self.underlying.strip():
            raise OptionFieldError("underlying", f"expected a ticker, got {self.underlying!r}")
        root = self.root or self.underlying
        _check_root(root)
        if not isinstance(self.expiration, date):
            raise OptionFieldError("expiration", f"expected a date, got {self.expiration!r}")
        strike = _to_decimal("strike", self.strike)
        _strike_thousandths(strike)
        if self.right not in _RIGHTS:
            raise OptionFieldError("right", f"expected 'C' or 'P', got {self.right!r}")
        if self.style not in _STYLES:
            raise OptionFieldError("style", f"expected 'american' or 'european', "
                                            f"got {self.style!r}")
        if isinstance(self.multiplier, bool) or not isinstance(self.multiplier, int) \
                or self.multiplier <= 0:
            raise OptionFieldError("multiplier", f"expected a positive integer, "
                                                 f"got {self.multiplier!r}")
        if self.occ_symbol:
            parsed = parse_occ_symbol(self.occ_symbol)
            for name, have, want in (("root", parsed.root, root),
                                     ("expiration", parsed.expiration, self.expiration),
                                     ("right", parsed.right, self.right),
                                     ("strike", parsed.strike, strike)):
                if have != want and not (name == "expiration"
                                         and occ_expiration_matches(have, want)):
                    raise OptionFieldError("occ_symbol", f"{self.occ_symbol!r} has {name} "
                                                         f"{have}, but the contract's {name} "
                                                         f"is {want}")
            canonical = format_occ_symbol(parsed.root, parsed.expiration, parsed.right,
                                          parsed.strike)
        else:
            canonical = format_occ_symbol(root, self.expiration, self.right, strike)
        object.__setattr__(self, "root", root)
        object.__setattr__(self, "strike", strike)
        object.__setattr__(self, "occ_symbol", canonical)

    @property
    def is_call(self) -> bool:
        """``True`` for a call."""
        return self.right == "C"


def _nonneg_money(field: str, value: object, *, optional: bool = False,
                  positive: bool = False) -> Decimal | None:
    if value is None and optional:
        return None
    d = _to_decimal(field, value)
    if positive and d <= 0:
        raise OptionFieldError(field, f"must be positive, got {d}")
    if d < 0:
        raise OptionFieldError(field, f"must not be negative, got {d}")
    return d


def _count(field: str, value: object) -> int:
    if isinstance(value, bool):
        raise OptionFieldError(field, f"expected a whole number, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise OptionFieldError(field, f"expected a whole number, got {value!r}")
        value = int(value)
    try:
        n = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise OptionFieldError(field, f"expected a whole number, got {value!r}") from None
    if n != value:
        raise OptionFieldError(field, f"expected a whole number, got {value!r}")
    if n < 0:
        raise OptionFieldError(field, f"must not be negative, got {n}")
    return n


def _model_value(field: str, value: object, *, low: float | None = None,
                 high: float | None = None) -> float:
    """A float that may be NaN (not supplied) but never infinite or out of range."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OptionFieldError(field, f"not a number: {value!r}") from None
    if math.isnan(x):
        return x
    if math.isinf(x):
        raise OptionFieldError(field, f"must be finite, got {x!r}")
    if (low is not None and x < low) or (high is not None and x > high):
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        raise OptionFieldError(field, f"{x!r} outside [{lo}, {hi}]")
    return x


@dataclass(frozen=True, slots=True)
class OptionQuote:
    """One contract's end-of-day quote.

    Parameters
    ----------
    contract : OptionContract
    quote_date : datetime.date
        Trading date the quote is for; not after ``contract.expiration``.
    bid, ask : Decimal
        Closing bid and ask, dollars per share; ``0 <= bid <= ask``. A zero bid means no
        bid.
    mid : Decimal
        The vendor's mid, within ``[bid, ask]``. Not recomputed: iVolatility writes 0
        when the bid is 0, and ``(bid + ask) / 2`` otherwise.
    last : Decimal or None
        Last trade price, ``None`` when not supplied.
    volume : int
        Contracts traded on ``quote_date``; ``>= 0``.
    open_interest : int
        Open contracts; ``>= 0``.
    iv : float
        Implied volatility, annualised fraction, ``>= 0``; NaN when not supplied.
    delta, gamma, vega, theta, rho : float
        Greeks per share in the units listed in the module docstring; NaN when not
        supplied. ``delta`` is in ``[0, 1]`` for calls and ``[-1, 0]`` for puts;
        ``gamma`` and ``vega`` are ``>= 0``.
    underlying_price : Decimal
        Underlying close on ``quote_date``; positive.
    forward_price : Decimal or None
        Forward price of the underlying to expiration, when the vendor supplies one.
    iv_interpolated : bool, default False
        The vendor marked ``iv`` (and so the greeks) as interpolated from neighbouring
        strikes rather than solved from this contract's own prices.

    Raises
    ------
    OptionFieldError
        A ``ValueError`` naming the field: a money value that is negative, NaN or not a
        number; ``bid > ask`` (field ``"bid"``); ``mid`` outside ``[bid, ask]``;
        ``quote_date`` after the expiration (field ``"expiration"``); negative or
        fractional counts; infinite or out-of-range iv/greeks.
    """

    contract: OptionContract
    quote_date: date
    bid: Decimal
    ask: Decimal
    mid: Decimal
    last: Decimal | None
    volume: int
    open_interest: int
    iv: float
    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float
    underlying_price: Decimal
    forward_price: Decimal | None = None
    iv_interpolated: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.contract, OptionContract):
            raise OptionFieldError("contract", f"expected an OptionContract, "
                                               f"got {type(self.contract).__name__}")
        if not isinstance(self.quote_date, date):
            raise OptionFieldError("quote_date", f"expected a date, got {self.quote_date!r}")
        if self.contract.expiration < self.quote_date:
            raise OptionFieldError("expiration", f"{self.contract.expiration} is before the quote "
                                                 f"date {self.quote_date}")
        bid = _nonneg_money("bid", self.bid)
        ask = _nonneg_money("ask", self.ask)
        mid = _nonneg_money("mid", self.mid)
        assert bid is not None and ask is not None and mid is not None
        if bid > ask:
            raise OptionFieldError("bid", f"{bid} is above the ask {ask}")
        if not bid <= mid <= ask:
            raise OptionFieldError("mid", f"{mid} is outside [bid, ask] = [{bid}, {ask}]")
        last = _nonneg_money("last", self.last, optional=True)
        underlying = _nonneg_money("underlying_price", self.underlying_price, positive=True)
        forward = _nonneg_money("forward_price", self.forward_price, optional=True, positive=True)
        volume = _count("volume", self.volume)
        open_interest = _count("open_interest", self.open_interest)
        iv = _model_value("iv", self.iv, low=0.0)
        delta = (_model_value("delta", self.delta, low=0.0, high=1.0) if self.contract.is_call
                 else _model_value("delta", self.delta, low=-1.0, high=0.0))
        gamma = _model_value("gamma", self.gamma, low=0.0)
        vega = _model_value("vega", self.vega, low=0.0)
        theta = _model_value("theta", self.theta)
        rho = _model_value("rho", self.rho)
        for name, value in (("bid", bid), ("ask", ask), ("mid", mid), ("last", last),
                            ("underlying_price", underlying), ("forward_price", forward),
                            ("volume", volume), ("open_interest", open_interest), ("iv", iv),
                            ("delta", delta), ("gamma", gamma), ("vega", vega),
                            ("theta", theta), ("rho", rho),
                            ("iv_interpolated", bool(self.iv_interpolated))):
            object.__setattr__(self, name, value)

    @property
    def days_to_expiration(self) -> int:
        """Calendar days from ``quote_date`` to the expiration (0 on expiration day)."""
        return (self.contract.expiration - self.quote_date).days

    @property
    def spread(self) -> Decimal:
        """``ask - bid``, dollars per share."""
        return self.ask - self.bid


@dataclass(frozen=True, slots=True)
class OptionFillSnapshot:
    """The market of an option at the moment one of its orders filled.

    Greeks and implied volatility decay in real time and cannot be recovered later, so
    they are captured when the fill is reported (live: the streaming model greeks the
    venue computed at that time; replay: the chain row the fill priced from) and kept
    with the fill.

    Parameters
    ----------
    occ_symbol : str
        The contract's OCC key.
    captured_ts : int
        When the values were read, UTC epoch seconds (the mode's clock).
    bid, ask : Decimal or None
        USD per share; ``None`` when the venue had none.
    underlying_price : Decimal or None
        USD per share.
    iv, delta, gamma, theta, vega : float
        Units of :class:`OptionQuote`; NaN when not supplied.
    source : str
        Where they came from (``ibkr:model_greeks``, ``chain:<file>``).
    """

    occ_symbol: str
    captured_ts: int
    bid: Decimal | None
    ask: Decimal | None
    underlying_price: Decimal | None
    iv: float
    delta: float
    gamma: float
    theta: float
    vega: float
    source: str

    def to_row(self) -> dict[str, object]:
        """Return the values as a ledger row (money as text, greeks as float or None)."""
        def num(x: float) -> float | None:
            return None if x != x else float(x)
        return {"occ_symbol": self.occ_symbol, "captured_ts": int(self.captured_ts),
                "bid": None if self.bid is None else str(self.bid),
                "ask": None if self.ask is None else str(self.ask),
                "underlying_price": None if self.underlying_price is None else str(self.underlying_price),
                "iv": num(self.iv), "delta": num(self.delta), "gamma": num(self.gamma),
                "theta": num(self.theta), "vega": num(self.vega), "source": self.source}


_PENNY, _NICKEL, _PENNY_BELOW = Decimal("0.01"), Decimal("0.05"), Decimal("3")


def option_tick(price: Decimal, min_tick: Decimal | None = None) -> Decimal:
    """Return the price increment of a US equity option quoted at ``price``.

    Parameters
    ----------
    price : Decimal
        The premium, USD per share.
    min_tick : Decimal, optional
        The venue's minimum tick for the contract (IBKR contract details' ``minTick``,
        USD); the increment is never finer.

    Returns
    -------
    Decimal
        0.01 USD below 3.00 USD, 0.05 USD from 3.00 USD (the Penny Interval Program's
        minimum increments: Cboe Options Rule 5.4 and "Penny Interval Program"), or
        ``min_tick`` where that is coarser.
    """
    rule = _PENNY if price < _PENNY_BELOW else _NICKEL
    return max(rule, min_tick) if min_tick is not None and min_tick > 0 else rule

