"""Instrument specifications and increment rounding.

Every price and quantity that crosses a boundary (order, fill, ledger) is a
``Decimal`` rounded by the instrument's increments: prices to the quote increment
(floor or ceil, chosen by the caller so that rounding never favours the trader),
quantities down to the base increment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from functools import lru_cache


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """Convert a number to ``Decimal`` through its shortest repr.

    Parameters
    ----------
    value : float, numpy floating, int, str or Decimal
        The number. Floats go through ``repr`` so ``0.1`` becomes ``Decimal('0.1')``
        rather than its binary expansion.

    Returns
    -------
    Decimal

    Raises
    ------
    ValueError
        If the value is NaN or infinite.
    """
    if type(value) is float:         # the common case, first
        d = Decimal(repr(value))
    elif isinstance(value, Decimal):
        d = value
    elif isinstance(value, (int, str)) and not isinstance(value, bool):
        d = Decimal(value)
    else:  # float, numpy floating: the shortest repr of the plain float
        d = Decimal(repr(float(value)))
    if not d.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return d


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable spot instrument.

    Parameters
    ----------
    symbol : str
        Canonical symbol, ``BASE-QUOTE`` (e.g. ``BTC-USD``).
    base, quote : str
        Base and quote currency codes.
    price_increment : Decimal
        Smallest price step, in quote currency per base unit.
    quantity_increment : Decimal
        Smallest order size step, in base units.
    min_notional : Decimal
        Smallest order value accepted by the venue, in quote currency.
    max_notional : Decimal or None
        Largest order value accepted, in quote currency; ``None`` for no cap.
    min_quantity : Decimal
        Smallest order size, in base units (defaults to one increment).
    source : str
        Where the spec came from (venue documentation, inferred from data, ...).
    """

    symbol: str
    base: str
    quote: str
    price_increment: Decimal
    quantity_increment: Decimal
    min_notional: Decimal = Decimal("1")
    max_notional: Decimal | None = None
    min_quantity: Decimal | None = None
    source: str = "static"

    def __post_init__(self) -> None:
        if self.price_increment <= 0 or self.quantity_increment <= 0:
            raise ValueError(f"{self.symbol}: increments must be positive")
        if self.min_quantity is None:
            object.__setattr__(self, "min_quantity", self.quantity_increment)

    def floor_price(self, price: Decimal | float) -> Decimal:
        """Round a price down to the price increment (quote currency)."""
        return _round(price if type(price) is Decimal else to_decimal(price), self.price_increment, ROUND_FLOOR)

    def ceil_price(self, price: Decimal | float) -> Decimal:
        """Round a price up to the price increment (quote currency)."""
        return _round(price if type(price) is Decimal else to_decimal(price), self.price_increment, ROUND_CEILING)

    def round_quantity(self, quantity: Decimal | float) -> Decimal:
        """Round a quantity down (toward zero) to the base increment, in base units."""
        return _round(quantity if type(quantity) is Decimal else to_decimal(quantity), self.quantity_increment, ROUND_DOWN)

    def notional(self, quantity: Decimal, price: Decimal) -> Decimal:
        """Return ``quantity * price`` in quote currency."""
        return quantity * price

    def check_order_size(self, quantity: Decimal, price: Decimal) -> str | None:
        """Return why an order of this size would be refused by the venue, or ``None``.

        Parameters
        ----------
        quantity : Decimal
            Base units, already rounded.
        price : Decimal
            Reference price in quote currency.
        """
        if quantity <= 0 or quantity < (self.min_quantity or self.quantity_increment):
            return f"quantity {quantity} below minimum {self.min_quantity} {self.base}"
        notional = quantity * price
        if notional < self.min_notional:
            return f"notional {notional:.2f} below minimum {self.min_notional} {self.quote}"
        if self.max_notional is not None and notional > self.max_notional:
            return f"notional {notional:.2f} above maximum {self.max_notional} {self.quote}"
        return None


@lru_cache(maxsize=256)
def _power_of_ten(increment: Decimal) -> bool:
    return increment.as_tuple().digits == (1,)         # 1, 0.01, 1e-8


def _round(value: Decimal, increment: Decimal, mode: str) -> Decimal:
    if _power_of_ten(increment):
        return value.quantize(increment, rounding=mode)
    steps = (value / increment).to_integral_value(rounding=mode)
    return (steps * increment).quantize(increment)


# Coinbase Exchange product specs (GET /products/{id}: quote_increment, base_increment,
# min_market_funds). Read from Coinbase's public product metadata for these pairs.
COINBASE_SPECS: dict[str, Instrument] = {
    "BTC-USD": Instrument("BTC-USD", "BTC", "USD", Decimal("0.01"), Decimal("0.00000001"),
                          Decimal("1"), Decimal("5000000"), source="coinbase product metadata"),
    "ETH-USD": Instrument("ETH-USD", "ETH", "USD", Decimal("0.01"), Decimal("0.00000001"),
                          Decimal("1"), Decimal("5000000"), source="coinbase product metadata"),
    "SOL-USD": Instrument("SOL-USD", "SOL", "USD", Decimal("0.01"), Decimal("0.00000001"),
                          Decimal("1"), Decimal("5000000"), source="coinbase product metadata"),
}


def known_instrument(symbol: str) -> Instrument | None:
    """Return the static spec for a canonical symbol, or ``None`` if unknown."""
    return COINBASE_SPECS.get(symbol.upper())


def infer_instrument(symbol: str, prices: "list[float] | object") -> Instrument:
    """Build a spec for a symbol with no known spec, from the decimals its prices use.

    Parameters
    ----------
    symbol : str
        ``BASE-QUOTE`` or a bare ticker (quote assumed ``USD``).
    prices : sequence of float
        A sample of prices from the data (open/high/low/close), quote units; only the
        first 5000 are looked at.

    Returns
    -------
    Instrument
        Price increment = ``10**-d`` where ``d`` is the most decimals seen, at least 2
        and at most ``max(8, 3 - floor(log10(p_min)))`` for the smallest positive
        price ``p_min`` (8 for any price from 1e-5 up; a price of 1e-12 may have 15,
        so its increment keeps four significant digits); a price written in exponent
        notation counts as that cap. Quantity increment ``1e-8`` base units, or
        coarser for prices below 1 quote unit per 1e8 base units:
        ``10**floor(log10(1e-8 / p_min))``, so that a position worth up to 1e15
        quote units stays within 28 significant digits (the decimal context's
        precision) at any price down to the validated minimum of 1e-12. Min notional
        1 quote unit; ``source`` says the spec was inferred.
    """
    sample = [float(p) for p in list(prices)[:5000]]
    positive = [p for p in sample if p > 0 and math.isfinite(p)]
    p_min = min(positive) if positive else 1.0
    cap = max(8, 3 - math.floor(math.log10(p_min)))
    decimals = 0
    for p in sample:
        text = repr(p)
        if "e" in text or "E" in text:
            decimals = cap
            break
        if "." in text:
            frac = text.split(".", 1)[1].rstrip("0")
            decimals = max(decimals, len(frac))
    decimals = min(max(decimals, 2), cap)
    lot = max(-8, math.floor(math.log10(1e-8 / p_min)))
    base, _, quote = symbol.upper().partition("-")
    return Instrument(
        symbol.upper(), base, quote or "USD",
        Decimal(1).scaleb(-decimals), Decimal(1).scaleb(lot) if lot > -8 else Decimal("0.00000001"),
        Decimal("1"), None,
        source="inferred from data",
    )
