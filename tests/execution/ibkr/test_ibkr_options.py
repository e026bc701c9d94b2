"""Option chains, quotes with model greeks and fill snapshots through the real ib_async
client against the fake TWS; the put writer's rules run on the live chain as on a file."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal as D

import pytest
from ib_async import MarketOrder, Option

from tradewarden.execution.ibkr_options import IbkrOptions, quotes_frame
from tradewarden.execution.venue import VenueError
from tradewarden.strategy.put_writer import PutWriterParams, select_puts

EXPIRIES = ["20260116", "20260130", "20260220", "20260320"]
STRIKES = [170, 175, 180, 185, 190]


@pytest.fixture
def chain_tws(tws):
    tws.add_option_chain("AAPL", EXPIRIES, STRIKES, rights="P", iv=0.28)
    return tws


def test_the_chain_and_the_contracts_in_a_window(chain_tws, ib, clock):
    opts = IbkrOptions(ib, clock)
    info = opts.chain("AAPL")
    assert info.expirations == tuple(date(int(e[:4]), int(e[4:6]), int(e[6:])) for e in EXPIRIES)
    assert info.strikes == tuple(D(k) for k in STRIKES) and info.multiplier == 100
    today = date(2026, 1, 2)
    window = opts.contracts("AAPL", today=today, dte_min=20, dte_max=50, strike_max=185)
    assert {c.lastTradeDateOrContractMonth for c in window} == {"20260130", "20260220"}
    assert sorted({c.strike for c in window}) == [170.0, 175.0, 180.0, 185.0]
    assert all(c.right == "P" and c.conId for c in window)
    with pytest.raises(VenueError, match="no stock 'ZZZZ'"):
        opts.chain("ZZZZ")


def test_quotes_carry_the_model_greeks_and_feed_the_put_writer(chain_tws, ib, clock):
    opts = IbkrOptions(ib, clock)
    today = date(2026, 1, 2)
    quotes = opts.quotes(opts.contracts("AAPL", today=today, dte_min=20, dte_max=50))
    assert len(quotes) == 10
    for q in quotes:
        assert q.quote_date == today and q.contract.right == "P"
        assert q.contract.occ_symbol.startswith("AAPL  2601") or q.contract.occ_symbol.startswith("AAPL  2602")
        assert q.iv == pytest.approx(0.28) and -1 <= q.delta <= 0 and q.gamma > 0 and q.vega > 0
        assert q.theta < 0 and math.isnan(q.rho) and q.underlying_price == D(190)
        assert q.bid <= q.mid <= q.ask
    frame = quotes_frame(quotes)
    params = PutWriterParams(delta_min=-0.35, delta_max=-0.10, dte_min=20, dte_max=50,
                             min_credit=0.5, max_positions=2)
    picked = select_puts(frame, params, quote_date=today)
    assert 1 <= len(picked) <= 2
    for c in picked:
        row = frame[frame.occ_symbol == c.occ_symbol].iloc[0]
        assert -0.35 <= row.delta <= -0.10 and row.bid >= 0.5
        assert c.margin > 0 and c.annual_return_on_margin > 0


def test_a_fill_snapshot_is_the_market_at_the_fill(chain_tws, ib, clock, wait_until):
    opts = IbkrOptions(ib, clock)
    (opt,) = ib.qualifyContracts(Option("AAPL", "20260220", 180, "P", "SMART"))
    ticker = ib.reqMktData(opt)
    wait_until(ib, lambda: ticker.modelGreeks is not None and ticker.bid == ticker.bid)
    trade = ib.placeOrder(opt, MarketOrder("SELL", 1, orderRef="tw-put-1"))
    wait_until(ib, lambda: trade.fills)
    clock.advance(1)
    snap = opts.fill_snapshot(ticker)
    g = ticker.modelGreeks
    assert snap.occ_symbol == "AAPL  260220P00180000"
    assert snap.captured_ts == int(clock())
    assert (snap.delta, snap.gamma, snap.vega, snap.theta, snap.iv) == pytest.approx(
        (g.delta, g.gamma, g.vega, g.theta, g.impliedVol))
    assert snap.bid == D(str(ticker.bid)) and snap.ask == D(str(ticker.ask))
    assert snap.underlying_price == D(190) and snap.source == "ibkr:model_greeks"
    row = snap.to_row()
    assert row["bid"] == str(snap.bid) and isinstance(row["delta"], float)
    # the market moves on; the snapshot taken at the fill does not
    chain_tws.set_quote("AAPL", "179.99", "180.01", "180.00")
    wait_until(ib, lambda: ticker.modelGreeks.undPrice == 180.0)
    assert snap.underlying_price == D(190) and ticker.modelGreeks.delta < snap.delta
    ib.cancelMktData(opt)
