"""Option contracts, quotes and OCC symbols (symbols and values from the bundled real chains)."""

from __future__ import annotations

import dataclasses
import math
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewarden.domain.options import (
    OCC_SYMBOL_LENGTH,
    OccSymbol,
    OptionContract,
    OptionFieldError,
    OptionQuote,
    format_occ_symbol,
    occ_expiration_matches,
    parse_occ_symbol,
)

# Symbols exactly as the iVolatility files write them (root + one space).
REAL_SYMBOLS = {
    "AAPL 140920C00095000": ("AAPL", date(2014, 9, 20), "C", Decimal(95)),
    "AAPL 140816P00064290": ("AAPL", date(2014, 8, 16), "P", Decimal("64.29")),
    "AAPL 140808C00027860": ("AAPL", date(2014, 8, 8), "C", Decimal("27.86")),
    "SPXW 110107P01050000": ("SPXW", date(2011, 1, 7), "P", Decimal(1050)),
    "SPXPM 110331C00500000": ("SPXPM", date(2011, 3, 31), "C", Decimal(500)),
    "SPX 110122C00200000": ("SPX", date(2011, 1, 22), "C", Decimal(200)),
}


def aapl_95_call(**overrides) -> OptionContract:
    fields = {"underlying": "AAPL", "expiration": date(2014, 9, 20), "strike": Decimal(95),
                  "right": "C", "style": "american", "occ_symbol": "AAPL 140920C00095000", "root": "AAPL"}
    fields.update(overrides)
    return OptionContract(**fields)


def aapl_95_call_quote(**overrides) -> OptionQuote:
    # Row 757 of the bundled AAPL chain (2014-08-07, expiry 2014-09-20, strike 95, call).
    fields = {"contract": aapl_95_call(), "quote_date": date(2014, 8, 7), "bid": Decimal("3.15"),
                  "ask": Decimal("3.25"), "mid": Decimal("3.2"), "last": None, "volume": 29430,
                  "open_interest": 51834, "iv": 0.265624, "delta": 0.495082, "gamma": 0.046311,
                  "vega": 0.129361, "theta": -0.040167, "rho": 0.051335,
                  "underlying_price": Decimal("94.48"), "forward_price": None}
    fields.update(overrides)
    return OptionQuote(**fields)


# --------------------------------------------------------------------------- OCC symbols


@pytest.mark.parametrize("symbol", sorted(REAL_SYMBOLS))
def test_parse_real_symbols(symbol):
    root, expiration, right, strike = REAL_SYMBOLS[symbol]
    parsed = parse_occ_symbol(symbol)
    assert parsed == OccSymbol(root, expiration, right, strike)
    assert parsed.strike == strike and str(parsed.strike) == str(strike)   # no "95.000"


@pytest.mark.parametrize("symbol", sorted(REAL_SYMBOLS))
def test_format_round_trip_of_real_symbols(symbol):
    canonical = format_occ_symbol(*parse_occ_symbol(symbol))
    assert len(canonical) == OCC_SYMBOL_LENGTH
    assert canonical[:6].rstrip() == REAL_SYMBOLS[symbol][0]
    assert " ".join(canonical.split()) == symbol        # same symbol, padding restored
    assert parse_occ_symbol(canonical, strict=True) == parse_occ_symbol(symbol)


def test_format_pads_root_to_six_and_strike_to_eight_digits():
    assert format_occ_symbol("AAPL", date(2014, 9, 20), "C", Decimal(95)) == \
        "AAPL  140920C00095000"
    assert format_occ_symbol("SPXPM", date(2011, 3, 31), "P", "1050.5") == "SPXPM 110331P01050500"
    assert format_occ_symbol("AAPL", date(2014, 8, 16), "P", 64.29) == "AAPL  140816P00064290"
    assert format_occ_symbol("X", date(2030, 1, 18), "C", Decimal("0.5")) == \
        "X     300118C00000500"


def test_parse_accepts_compact_form_and_digit_roots():
    assert parse_occ_symbol("AAPL140920C00095000") == parse_occ_symbol("AAPL  140920C00095000")
    assert parse_occ_symbol("AAPL7140920C00095000").root == "AAPL7"
    assert parse_occ_symbol("BRK.B 140920C00095000").root == "BRK.B"


@pytest.mark.parametrize("bad", [
    "AAPL 141320C00095000",      # month 13
    "AAPL 140931C00095000",      # 31 September
    "AAPL 140920X00095000",      # right X
    "AAPL 140920C0009500",       # 7 strike digits
    "aapl 140920C00095000",      # lower-case root
    "ABCDEFG140920C00095000",    # 7-character root
    "140920C00095000",           # no root
    "AAPL 140920C00000000",      # zero strike
    "",
])
def test_parse_rejects_malformed_symbols(bad):
    with pytest.raises(OptionFieldError) as err:
        parse_occ_symbol(bad)
    assert err.value.field == "occ_symbol"
    assert str(err.value).startswith("occ_symbol: ")


def test_strict_parse_requires_21_characters_with_padding():
    with pytest.raises(OptionFieldError, match="21"):
        parse_occ_symbol("AAPL 140920C00095000", strict=True)
    assert parse_occ_symbol("AAPL  140920C00095000", strict=True).strike == 95


@pytest.mark.parametrize("args, field", [
    (("AAPL", date(2014, 9, 20), "C", Decimal("95.0005")), "strike"),   # 4 decimals
    (("AAPL", date(2014, 9, 20), "C", Decimal(100000)), "strike"),    # 9 digits
    (("AAPL", date(2014, 9, 20), "C", Decimal(0)), "strike"),
    (("AAPL", date(2014, 9, 20), "C", float("nan")), "strike"),
    (("AAPL", date(1999, 9, 18), "C", Decimal(95)), "expiration"),
    (("AAPL", date(2014, 9, 20), "c", Decimal(95)), "right"),
    (("TOOLONG", date(2014, 9, 20), "C", Decimal(95)), "root"),
])
def test_format_rejects_what_the_key_cannot_hold(args, field):
    with pytest.raises(OptionFieldError) as err:
        format_occ_symbol(*args)
    assert err.value.field == field


@given(root=st.from_regex(r"[A-Z][A-Z0-9]{0,5}", fullmatch=True),
       day=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
       right=st.sampled_from(["C", "P"]),
       thousandths=st.integers(min_value=1, max_value=99_999_999))
def test_occ_round_trip_property(root, day, right, thousandths):
    strike = Decimal(thousandths).scaleb(-3)
    symbol = format_occ_symbol(root, day, right, strike)
    assert len(symbol) == OCC_SYMBOL_LENGTH
    parsed = parse_occ_symbol(symbol, strict=True)
    assert (parsed.root, parsed.expiration, parsed.right) == (root, day, right)
    assert parsed.strike == strike
    assert format_occ_symbol(*parsed) == symbol


def test_saturday_expiration_rule():
    assert occ_expiration_matches(date(2011, 1, 22), date(2011, 1, 21))    # Sat vs Fri
    assert occ_expiration_matches(date(2014, 9, 20), date(2014, 9, 20))
    assert not occ_expiration_matches(date(2011, 1, 21), date(2011, 1, 20))  # Fri vs Thu
    assert not occ_expiration_matches(date(2011, 1, 22), date(2011, 1, 20))


# --------------------------------------------------------------------------- contracts


def test_contract_normalises_occ_symbol_and_defaults():
    c = aapl_95_call()
    assert c.occ_symbol == "AAPL  140920C00095000"
    assert c.multiplier == 100 and c.is_call
    built = aapl_95_call(occ_symbol="")
    assert built.occ_symbol == c.occ_symbol
    assert aapl_95_call(root="", occ_symbol="").root == "AAPL"
    assert aapl_95_call(strike=95.0).strike == Decimal(95)


def test_contract_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        aapl_95_call().strike = Decimal(100)  # type: ignore[misc]


def test_contract_keeps_the_symbols_saturday_for_a_friday_expiration():
    # SPX monthly in the iVolatility SPX file: expiration column 2011-01-21 (Friday).
    c = OptionContract("SPX", date(2011, 1, 21), Decimal(200), "C", "european",
                       occ_symbol="SPX 110122C00200000", root="SPX")
    assert c.expiration == date(2011, 1, 21)
    assert c.occ_symbol == "SPX   110122C00200000"


@pytest.mark.parametrize("overrides, field", [
    ({"occ_symbol": "AAPL 140920P00095000"}, "occ_symbol"),     # right differs
    ({"occ_symbol": "AAPL 140920C00090000"}, "occ_symbol"),     # strike differs
    ({"occ_symbol": "AAPL 140927C00095000"}, "occ_symbol"),     # expiration differs
    ({"occ_symbol": "SPY 140920C00095000"}, "occ_symbol"),      # root differs
    ({"right": "X"}, "right"),
    ({"style": "bermudan"}, "style"),
    ({"strike": Decimal(-95)}, "strike"),
    ({"strike": Decimal("95.0001")}, "strike"),
    ({"multiplier": 0}, "multiplier"),
    ({"multiplier": 100.0}, "multiplier"),
    ({"underlying": " "}, "underlying"),
    ({"expiration": "2014-09-20"}, "expiration"),
])
def test_contract_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError) as err:
        aapl_95_call(**overrides)
    assert isinstance(err.value, OptionFieldError)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


# --------------------------------------------------------------------------- quotes


def test_hand_checked_quote():
    q = aapl_95_call_quote()
    assert q.spread == Decimal("0.10")
    assert q.days_to_expiration == 44
    assert q.bid <= q.mid <= q.ask
    assert q.contract.occ_symbol == "AAPL  140920C00095000"
    assert q.iv_interpolated is False
    # Vega per vol point is consistent with Black-Scholes: S * sqrt(T) * phi(d1) / 100,
    # with d1 ~ 0 at the money.
    t = 44 / 365
    assert q.vega == pytest.approx(float(q.underlying_price) * math.sqrt(t) * 0.3989 / 100,
                                   rel=0.05)


def test_quote_accepts_zero_bid_and_missing_greeks():
    q = aapl_95_call_quote(bid=Decimal(0), mid=Decimal(0), iv=float("nan"),
                           delta=float("nan"))
    assert q.bid == 0 and math.isnan(q.iv) and math.isnan(q.delta)


@pytest.mark.parametrize("overrides, field", [
    ({"bid": Decimal("3.30")}, "bid"),                       # bid above ask
    ({"bid": Decimal("-0.01")}, "bid"),
    ({"ask": float("nan")}, "ask"),
    ({"mid": Decimal("3.30")}, "mid"),                       # outside [bid, ask]
    ({"quote_date": date(2014, 9, 21)}, "expiration"),       # expired before quote date
    ({"volume": -1}, "volume"),
    ({"volume": 1.5}, "volume"),
    ({"open_interest": "many"}, "open_interest"),
    ({"iv": -0.1}, "iv"),
    ({"iv": float("inf")}, "iv"),
    ({"delta": -0.2}, "delta"),                              # negative delta on a call
    ({"gamma": -0.001}, "gamma"),
    ({"underlying_price": Decimal(0)}, "underlying_price"),
    ({"forward_price": Decimal(-1)}, "forward_price"),
    ({"last": Decimal(-1)}, "last"),
])
def test_quote_validation_names_the_field(overrides, field):
    with pytest.raises(OptionFieldError) as err:
        aapl_95_call_quote(**overrides)
    assert err.value.field == field


def test_put_delta_range():
    put = aapl_95_call(right="P", occ_symbol="AAPL 140920P00095000")
    q = aapl_95_call_quote(contract=put, bid=Decimal("3.65"), ask=Decimal("3.75"),
                           mid=Decimal("3.7"), delta=-0.50515)
    assert q.delta == -0.50515
    with pytest.raises(OptionFieldError) as err:
        aapl_95_call_quote(contract=put, delta=0.5)
    assert err.value.field == "delta"


def test_quote_on_expiration_day_is_valid():
    q = aapl_95_call_quote(quote_date=date(2014, 9, 20))
    assert q.days_to_expiration == 0
