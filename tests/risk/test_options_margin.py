"""Short-put margin (FINRA Rule 4210 / CBOE uncovered-put rule), utilisation and sizing."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradewarden.risk.options import OptionRiskConfig, short_put_margin, size_short_put


@pytest.mark.parametrize(("strike", "underlying", "price", "want"), [
    # out of the money by 3.48: 20 % of 94.48 less 3.48 beats 10 % of the strike
    ("91", "94.48", "0.88", "1629.6000"),
    # deep out of the money: the 10 %-of-strike minimum applies
    ("60", "94.48", "0.02", "602.00"),
    # in the money: no out-of-the-money amount is taken off
    ("100", "94.48", "6.10", "2499.6000"),
])
def test_the_uncovered_put_requirement(strike, underlying, price, want):
    assert short_put_margin(D(strike), D(underlying), D(price)) == D(want)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="must be positive"):
        short_put_margin(D(0), D(90), D(1))
    with pytest.raises(ValueError, match="must be >= 0"):
        short_put_margin(D(90), D(90), D(-1))


@given(strike=st.integers(10, 500), und=st.integers(10, 500), cents=st.integers(0, 5000))
def test_margin_is_at_least_the_premium_plus_ten_percent_of_the_strike(strike, und, cents):
    price = D(cents) / 100
    m = short_put_margin(D(strike), D(und), price)
    assert m >= (price + D("0.1") * strike) * 100
    assert m <= (price + D("0.2") * und + D("0.1") * strike) * 100


def test_sizing_takes_the_smaller_of_margin_headroom_and_loss_at_the_stop():
    cfg = OptionRiskConfig(max_margin_utilisation=0.40, risk_fraction=0.02)
    # 100k: cap 40k, 30k in use -> 10k headroom -> 6 contracts at 1629.60
    s = size_short_put(net_liquidation=D(100_000), margin_in_use=D(30_000),
                       margin_per_contract=D("1629.60"), credit=D("0.88"),
                       loss_multiple=D(2), config=cfg, fee_per_contract=D("0.65"))
    assert (s.contracts, s.reason) == (6, "approved")
    assert s.detail["contracts_by_margin"] == 6
    # loss at the stop: (2-1) * 0.88 * 100 + 1.30 = 89.30 -> 2000 / 89.30 = 22
    assert s.detail["contracts_by_loss"] == 22
    assert s.detail["utilisation_after"] == "0.3978"
    tight = size_short_put(net_liquidation=D(100_000), margin_in_use=D(0),
                           margin_per_contract=D("1629.60"), credit=D("0.88"),
                           loss_multiple=D(4), config=OptionRiskConfig(risk_fraction=0.002))
    assert (tight.contracts, tight.reason) == (0, "loss_at_stop")       # 200 < 264


def test_a_full_account_writes_nothing_and_says_why():
    s = size_short_put(net_liquidation=D(50_000), margin_in_use=D(20_000),
                       margin_per_contract=D(1_000), credit=D(1), loss_multiple=D(2),
                       config=OptionRiskConfig())
    assert not s.approved and s.reason == "margin_utilisation"
    assert s.detail["margin_headroom"] == "0"
    assert size_short_put(net_liquidation=D(0), margin_in_use=D(0), margin_per_contract=D(1),
                          credit=D(1), loss_multiple=D(2),
                          config=OptionRiskConfig()).reason == "no_net_liquidation"
    with pytest.raises(ValueError, match="above 1"):
        size_short_put(net_liquidation=D(1), margin_in_use=D(0), margin_per_contract=D(1),
                       credit=D(1), loss_multiple=D(1), config=OptionRiskConfig())
