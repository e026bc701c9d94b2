"""Instrument increments: floor/ceil prices, quantity rounding, order-size checks, inference."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradewarden.data import load_market_data
from tradewarden.domain import (COINBASE_SPECS, Instrument, infer_instrument, known_instrument,
                                to_decimal)

BTC = COINBASE_SPECS["BTC-USD"]


def inst(tick: str = "0.01", lot: str = "0.00000001", **kw) -> Instrument:
    return Instrument("T-USD", "T", "USD", Decimal(tick), Decimal(lot), **kw)


# ---------------------------------------------------------------------- to_decimal
@pytest.mark.parametrize("value, text", [
    (0.1, "0.1"),
    (63582.07, "63582.07"),
    (62358.0, "62358.0"),
    (1e-8, "1E-8"),
    (0.30000000000000004, "0.30000000000000004"),   # a real float artefact is kept, not hidden
    (1.5e16, "1.5E+16"),
    (-2.5, "-2.5"),
    (7, "7"),
    ("63149.42", "63149.42"),
    ("1.50", "1.50"),
    (Decimal("0.05"), "0.05"),
])
def test_to_decimal_uses_shortest_repr(value, text: str) -> None:
    d = to_decimal(value)
    assert isinstance(d, Decimal)
    assert str(d) == text
    assert d == Decimal(text)


def test_to_decimal_of_float_is_not_the_binary_expansion() -> None:
    assert to_decimal(0.1) != Decimal(0.1)
    assert to_decimal(0.1) + to_decimal(0.2) == Decimal("0.3")
    d = Decimal("63149.42")
    assert to_decimal(d) is d


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity",
                                 Decimal("NaN"), Decimal("-Infinity")])
def test_to_decimal_rejects_non_finite(bad) -> None:
    with pytest.raises(ValueError, match="not a finite number"):
        to_decimal(bad)


def test_to_decimal_accepts_numpy_float64() -> None:
    assert to_decimal(np.float64(0.1)) == Decimal("0.1")
    assert BTC.floor_price(np.float64(63149.427)) == Decimal("63149.42")


# ---------------------------------------------------------------------- rounding
@pytest.mark.parametrize("tick, x, floor, ceil", [
    # power-of-ten ticks
    ("0.01", "63149.427", "63149.42", "63149.43"),
    ("0.01", "63149.42", "63149.42", "63149.42"),
    ("0.01", "63149.4200001", "63149.42", "63149.43"),
    ("0.01", "63000", "63000.00", "63000.00"),
    ("0.01", "-0.005", "-0.01", "0.00"),
    ("0.01", "-1.234", "-1.24", "-1.23"),
    ("0.01", "0", "0.00", "0.00"),
    ("1", "63149.42", "63149", "63150"),
    ("0.00000001", "0.123456789", "0.12345678", "0.12345679"),
    # non-power-of-ten ticks
    ("0.05", "1.234", "1.20", "1.25"),
    ("0.05", "1.25", "1.25", "1.25"),
    ("0.05", "1.2500001", "1.25", "1.30"),
    ("0.05", "-1.234", "-1.25", "-1.20"),
    ("0.25", "63149.42", "63149.25", "63149.50"),
    ("0.25", "63149.75", "63149.75", "63149.75"),
    ("0.25", "0.1", "0.00", "0.25"),
    ("0.25", "-0.1", "-0.25", "0.00"),
    ("0.5", "63149.42", "63149.0", "63149.5"),
    ("5", "63149.42", "63145", "63150"),
    ("10", "63149.42", "63140", "63150"),
    ("0.10", "1.234", "1.20", "1.30"),
])
def test_floor_and_ceil_price(tick: str, x: str, floor: str, ceil: str) -> None:
    i = inst(tick)
    f, c = i.floor_price(Decimal(x)), i.ceil_price(Decimal(x))
    assert f == Decimal(floor) and c == Decimal(ceil)
    # The result carries the tick's exponent (a zero may come out signed, '-0.00').
    assert str(abs(f)) == floor.lstrip("-") and str(abs(c)) == ceil.lstrip("-")


def test_floor_and_ceil_price_from_floats() -> None:
    assert BTC.floor_price(63149.427) == Decimal("63149.42")
    assert BTC.ceil_price(63149.421) == Decimal("63149.43")
    assert BTC.floor_price(62358.0) == Decimal("62358.00")
    # 0.1 + 0.2 is 0.30000000000000004 as a float: strictly above 0.30, so ceil gives 0.31
    assert BTC.ceil_price(0.1 + 0.2) == Decimal("0.31")
    assert BTC.floor_price(0.1 + 0.2) == Decimal("0.30")
    with pytest.raises(ValueError):
        BTC.floor_price(float("nan"))


@pytest.mark.parametrize("lot, q, want", [
    ("0.00000001", "0.123456789", "0.12345678"),
    ("0.00000001", "0.1", "0.10000000"),
    ("0.00000001", "0.000000009", "0E-8"),
    ("0.001", "0.12345", "0.123"),
    ("0.001", "0.1239999", "0.123"),
    ("0.001", "-0.0015", "-0.001"),            # toward zero, not toward -inf
    ("0.001", "-0.0019", "-0.001"),
    ("0.25", "3.9", "3.75"),
    ("0.25", "-3.9", "-3.75"),
    ("1", "7.99", "7"),
    ("5", "12", "10"),
])
def test_round_quantity_down_toward_zero(lot: str, q: str, want: str) -> None:
    got = inst(lot=lot).round_quantity(Decimal(q))
    assert got == Decimal(want)
    assert str(got) == want


def test_round_quantity_from_float() -> None:
    assert BTC.round_quantity(0.08700040020184092) == Decimal("0.08700040")
    assert BTC.round_quantity(1e-9) == 0


@pytest.mark.parametrize("tick, lot", [("0", "0.01"), ("-0.01", "0.01"), ("0.01", "0"),
                                       ("0.01", "-1")])
def test_non_positive_increments_are_rejected(tick: str, lot: str) -> None:
    with pytest.raises(ValueError, match="increments must be positive"):
        Instrument("T-USD", "T", "USD", Decimal(tick), Decimal(lot))


def test_min_quantity_defaults_to_one_increment_and_is_frozen() -> None:
    assert inst(lot="0.001").min_quantity == Decimal("0.001")
    assert inst(lot="0.001", min_quantity=Decimal("0.01")).min_quantity == Decimal("0.01")
    with pytest.raises(AttributeError):
        BTC.price_increment = Decimal("1")   # type: ignore[misc]


# ---------------------------------------------------------------------- order size
@pytest.mark.parametrize("qty, price, expected", [
    ("0.00002", "63000", None),                           # 1.26 USD
    ("0.00001588", "63000", None),                        # 1.00044 USD: just above the minimum
    ("0.00001", "63000", "notional 0.63 below minimum 1 USD"),
    ("79.36507936", "63000", None),                       # 4,999,999.99968 USD
    ("80", "63000", "notional 5040000.00 above maximum 5000000 USD"),
])
def test_check_order_size_notional(qty: str, price: str, expected: str | None) -> None:
    assert BTC.check_order_size(Decimal(qty), Decimal(price)) == expected


def test_check_order_size_notional_bounds_are_inclusive() -> None:
    i = inst(min_notional=Decimal("10"), max_notional=Decimal("1000"))
    assert i.check_order_size(Decimal("0.1"), Decimal("100")) is None      # exactly 10
    assert i.check_order_size(Decimal("10"), Decimal("100")) is None       # exactly 1000
    assert i.check_order_size(Decimal("10.00000001"), Decimal("100")).startswith("notional 1000.00 above")


@pytest.mark.parametrize("qty", ["0", "-0.01", "0.0009"])
def test_check_order_size_quantity(qty: str) -> None:
    i = Instrument("BTC-USD", "BTC", "USD", Decimal("0.01"), Decimal("0.0001"),
                   min_quantity=Decimal("0.001"))
    msg = i.check_order_size(Decimal(qty), Decimal("63000"))
    assert msg == f"quantity {qty} below minimum 0.001 BTC"


def test_check_order_size_no_max_notional() -> None:
    i = inst()
    assert i.max_notional is None
    assert i.check_order_size(Decimal("1000000"), Decimal("63000")) is None


def test_notional() -> None:
    assert BTC.notional(Decimal("0.01"), Decimal("62847.85")) == Decimal("628.4785")


# ---------------------------------------------------------------------- specs / inference
def test_coinbase_specs_and_known_instrument() -> None:
    for sym in ("BTC-USD", "ETH-USD", "SOL-USD"):
        spec = COINBASE_SPECS[sym]
        assert spec.price_increment == Decimal("0.01")
        assert spec.quantity_increment == Decimal("0.00000001")
        assert spec.min_notional == Decimal("1") and spec.max_notional == Decimal("5000000")
        assert (spec.base, spec.quote) == tuple(sym.split("-"))
    assert known_instrument("btc-usd") is BTC
    assert known_instrument("DOGE-USD") is None


def test_infer_instrument_from_real_prices() -> None:
    data = load_market_data(["BTC-USD", "SOL-USD"])
    for sym in ("BTC-USD", "SOL-USD"):
        bars = data.series[sym]
        prices = np.concatenate([bars.open[:500], bars.high[:500], bars.low[:500], bars.close[:500]])
        i = infer_instrument(sym.lower(), prices)
        assert i.symbol == sym and (i.base, i.quote) == tuple(sym.split("-"))
        assert i.price_increment == Decimal("0.01")     # Coinbase USD prices have cents
        assert i.quantity_increment == Decimal("0.00000001")
        assert i.min_notional == Decimal("1") and i.max_notional is None
        assert i.source == "inferred from data"
        # every real price is on the inferred grid
        assert all(i.floor_price(float(p)) == to_decimal(float(p)) for p in prices[:200])


@pytest.mark.parametrize("prices, tick", [
    ([63582.07, 63680.24, 62358.0], "0.01"),       # '62358.0' counts as 0 decimals
    ([100.0, 200.0], "0.01"),                      # at least 2 decimals
    ([136.96, 138.955], "0.001"),
    ([0.1234, 0.5], "0.0001"),
    ([1.5e-05], "1E-8"),                           # exponent notation -> 8
    ([0.123456789012], "1E-8"),                    # capped at 8
    ([], "0.01"),
])
def test_infer_instrument_tick_from_decimals(prices, tick: str) -> None:
    assert infer_instrument("X-USD", prices).price_increment == Decimal(tick)


def test_infer_instrument_bare_ticker_and_sample_limit() -> None:
    i = infer_instrument("aapl", [189.5, 190.25])
    assert (i.symbol, i.base, i.quote) == ("AAPL", "AAPL", "USD")
    # Only the first 5000 prices are looked at.
    assert infer_instrument("X", [1.5] * 5000 + [1.23456]).price_increment == Decimal("0.01")


# ---------------------------------------------------------------------- properties
_TICKS = ["0.01", "0.05", "0.25", "0.5", "1", "5", "10", "0.001", "0.00000001", "0.0001", "0.03",
          "0.1", "2.5"]


@settings(max_examples=400, deadline=None)
@given(x=st.decimals(min_value=-1_000_000, max_value=1_000_000, places=9, allow_nan=False,
                     allow_infinity=False),
       tick=st.sampled_from(_TICKS))
def test_floor_ceil_bracket_the_value(x: Decimal, tick: str) -> None:
    i = inst(tick)
    inc = Decimal(tick)
    f, c = i.floor_price(x), i.ceil_price(x)
    assert f <= x <= c
    assert f % inc == 0 and c % inc == 0
    assert c - f == (0 if x % inc == 0 else inc)     # one tick apart unless x is on the grid
    q = inst(lot=tick).round_quantity(x)
    assert q % inc == 0
    assert abs(q) <= abs(x) and abs(x) - abs(q) < inc
    assert q == (f if x >= 0 else c)


@settings(max_examples=300, deadline=None)
@given(x=st.floats(min_value=-200_000, max_value=200_000, allow_nan=False),
       tick=st.sampled_from(_TICKS))
def test_floor_ceil_of_floats(x: float, tick: str) -> None:
    i = inst(tick)
    f, c = i.floor_price(x), i.ceil_price(x)
    d = Decimal(repr(x))
    assert f <= d <= c and c - f <= Decimal(tick)
    assert math.floor(x / float(tick)) * float(tick) == pytest.approx(float(f), abs=float(tick))
