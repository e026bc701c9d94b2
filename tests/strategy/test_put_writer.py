"""The put writer's rules on the real AAPL chain of 2014-08-07 (iVolatility EOD)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from pydantic import ValidationError

from tradewarden.data.options import load_option_chain
from tradewarden.strategy.put_writer import (
    PutWriterParams,
    ShortPut,
    manage_short_put,
    select_puts,
)

DAY = date(2014, 8, 7)


@pytest.fixture(scope="module")
def chain():
    return load_option_chain(None).frame


def test_candidates_obey_every_filter_and_rank_by_return_on_margin(chain):
    got = select_puts(chain, PutWriterParams(max_positions=20), quote_date=DAY)
    puts = chain[(chain.right == "P") & chain.dte.between(21, 45)
                 & chain.delta.between(-0.30, -0.15) & (chain.bid >= 0.5)
                 & ((chain.ask - chain.bid) <= 0.25 * (chain.ask + chain.bid) / 2)]
    assert {c.occ_symbol for c in got} == set(puts.occ_symbol) and len(got) == 13
    assert len(select_puts(chain, PutWriterParams(max_positions=10), quote_date=DAY)) == 10
    arom = [c.annual_return_on_margin for c in got]
    assert arom == sorted(arom, reverse=True)
    best = got[0]
    assert best.occ_symbol == "AAPL  140829P00091000"
    # 20 % of 94.48 less 3.48 out of the money, plus the 0.88 bid, times 100
    assert best.margin == D("1629.6000")
    assert best.annual_return_on_margin == pytest.approx(88 / 1629.6 * 365 / 22)


def test_held_contracts_and_the_position_limit(chain):
    p = PutWriterParams(max_positions=3)
    first = select_puts(chain, p, quote_date=DAY)
    assert len(first) == 3
    held = {first[0].occ_symbol, first[1].occ_symbol}
    again = select_puts(chain, p, quote_date=DAY, held=held)
    assert [c.occ_symbol for c in again] == [first[2].occ_symbol]
    assert select_puts(chain, p, quote_date=DAY, held=held | {"X"}) == []
    assert select_puts(chain, p, quote_date=date(2014, 8, 6)) == []      # no quotes that day


def test_the_iv_and_credit_filters(chain):
    high_iv = select_puts(chain, PutWriterParams(iv_min=0.27, max_positions=20), quote_date=DAY)
    assert high_iv and all(c.iv >= 0.27 for c in high_iv)
    assert {c.expiration for c in high_iv} <= {date(2014, 9, 12), date(2014, 9, 20)}
    rich = select_puts(chain, PutWriterParams(min_credit=1.5, max_positions=20), quote_date=DAY)
    assert [c.occ_symbol for c in rich] == ["AAPL  140920P00090000"]


def test_buy_back_rules_in_order():
    p = PutWriterParams(profit_target=0.5, loss_multiple=2.0, close_days_before_expiry=5)
    pos = ShortPut("AAPL  140829P00091000", D(91), date(2014, 8, 29), D("0.88"), 2)
    on = date(2014, 8, 12)
    assert manage_short_put(pos, quote_date=on, ask=D("0.60"), underlying_close=None, params=p) is None
    assert manage_short_put(pos, quote_date=on, ask=D("0.44"), underlying_close=None,
                            params=p).kind == "profit_target"
    assert manage_short_put(pos, quote_date=on, ask=D("1.76"), underlying_close=None,
                            params=p).kind == "loss_limit"
    near = manage_short_put(pos, quote_date=date(2014, 8, 24), ask=D("0.60"),
                            underlying_close=None, params=p)
    assert (near.kind, near.price) == ("days_to_expiry", D("0.60"))
    assert manage_short_put(pos, quote_date=on, ask=None, underlying_close=None, params=p) is None


def test_expiry_worthless_or_assigned():
    p = PutWriterParams()
    pos = ShortPut("AAPL  140829P00091000", D(91), date(2014, 8, 29), D("0.88"), 2)
    worthless = manage_short_put(pos, quote_date=date(2014, 8, 29), ask=None,
                                 underlying_close=D("102.50"), params=p)
    assert (worthless.kind, worthless.price, worthless.shares_assigned) == (
        "expired_worthless", D(0), 0)
    assigned = manage_short_put(pos, quote_date=date(2014, 8, 29), ask=D("2.6"),
                                underlying_close=D("88.40"), params=p)
    assert (assigned.kind, assigned.price, assigned.shares_assigned) == ("assigned", D("2.60"), 200)
    with pytest.raises(ValueError, match="no underlying close"):
        manage_short_put(pos, quote_date=date(2014, 8, 30), ask=None, underlying_close=None, params=p)


def test_params_reject_inverted_ranges():
    with pytest.raises(ValidationError, match="delta_min -0.1 is above delta_max -0.2"):
        PutWriterParams(delta_min=-0.1, delta_max=-0.2)
    with pytest.raises(ValidationError, match="dte_min 50 is above dte_max 45"):
        PutWriterParams(dte_min=50)
