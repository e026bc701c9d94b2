"""The options desk on the bundled SPX puts (five real sessions, 2011-01-03..07)."""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradewarden.agent.governor import MonitorOnlyGovernor
from tradewarden.data.equities import bundled_equity_path
from tradewarden.data.options import load_option_chain
from tradewarden.domain.options import option_tick
from tradewarden.engine.options_desk import OptionsDesk
from tradewarden.execution.sim_options import SimOptionsBroker
from tradewarden.ledger import Ledger
from tradewarden.ops.options_replay import DEFAULT_CHAIN, OptionsRunConfig, run_options_replay
from tradewarden.risk.options import OptionRiskConfig
from tradewarden.strategy.put_writer import PutWriterParams

DAYS = [date(2011, 1, d) for d in (3, 4, 5, 6, 7)]
UNDERLYING = {date(2011, 1, 3): D("1271.87"), date(2011, 1, 4): D("1270.20"),
              date(2011, 1, 5): D("1276.56"), date(2011, 1, 6): D("1273.85"),
              date(2011, 1, 7): D("1271.50")}


@pytest.fixture(scope="module")
def chain():
    return load_option_chain(bundled_equity_path("spx_puts"))


def _ts(d: date) -> int:
    return int(pd.Timestamp(d, tz="UTC").timestamp())


def _desk(tmp: Path, params: PutWriterParams, *, capital=D("100000"), governor=None,
          run_id="r1") -> tuple[OptionsDesk, Ledger]:
    ledger = Ledger(tmp / "l.db")
    ledger.create_run({"run_id": run_id, "mode": "replay", "capital_mode": "portfolio",
                       "market_time_basis": "test", "config_hash": "h", "config": "{}",
                       "strategy": "put_writer", "symbols": '["SPX"]', "timeframe": "1d",
                       "initial_capital": capital, "started_at": "2026-11-29T00:00:00Z",
                       "status": "running"})
    desk = OptionsDesk(run_id=run_id, params=params, risk=OptionRiskConfig(),
                       broker=SimOptionsBroker(), ledger=ledger, capital=capital,
                       governor=governor, source="spx_puts")
    return desk, ledger


def _rows(ledger: Ledger, sql: str) -> list[tuple]:
    with sqlite3.connect(ledger.url.split("///", 1)[1]) as c:
        return c.execute(sql).fetchall()


def test_option_ticks_follow_the_standard_increments():
    assert option_tick(D("2.99")) == D("0.01") and option_tick(D("3.00")) == D("0.05")


def test_golden_put_writer_replay_on_the_bundled_spx_puts(tmp_path):
    """Pinned figures: change them only for a reviewed change of the desk's rules."""
    ledger = Ledger(tmp_path / "g.db")
    cfg = OptionsRunConfig(chain=DEFAULT_CHAIN, params=PutWriterParams(
        underlying="SPX", dte_min=0, close_days_before_expiry=0))
    result = run_options_replay(cfg, ledger)
    assert result.snapshots == 5
    assert result.final_equity == D("100330.00")
    trades = _rows(ledger, "select symbol, side, quantity, entry_price, exit_price, fees, pnl, "
                           "exit_reason from trades order by entry_ts, trade_id")
    assert trades == [
        ("SPXW  110107P01260000", "short", "100", "3.7", "1.5", "2.00", "218.00", "profit_target"),
        ("SPXW  110107P01265000", "short", "100", "1.95", "0", "1.00", "194.00", "expired"),
        ("SPXW  110114P01255000", "short", "100", "3.3", "4.1", "2.00", "-82.00", "end_of_data"),
    ]
    # net liquidation = capital + the closed trades' PnL once everything is closed
    assert result.final_equity - D("100000") == sum(D(t[6]) for t in trades)
    # every venue fill of an option carries its snapshot, equal to the chain row it priced from
    snaps = _rows(ledger, "select f.symbol, f.price, s.bid, s.ask, s.underlying_price, s.delta, "
                          "s.iv from fills f join option_fill_snapshots s using (run_id, fill_seq)"
                          " order by f.fill_seq")
    assert snaps[0][:5] == ("SPXW  110107P01260000", "3.7", "3.7", "4.2", "1271.87")
    assert snaps[0][5:] == pytest.approx((-0.290384, 0.161427), abs=1e-9)
    venue_fills = _rows(ledger, "select count(*) from fills where liquidity = 'taker'")[0][0]
    assert len(snaps) == venue_fills == 5
    # the second SPX put would take the margin above 40 % of net liquidation
    rejected = _rows(ledger, "select reason, detail from decisions where action = 'rejected'")
    assert rejected and {r[0] for r in rejected} == {"margin_utilisation"}


def test_a_cash_settled_put_in_the_money_at_expiry_pays_its_intrinsic_value(tmp_path, chain):
    # an in-the-money weekly written the day before it expires (delta -0.5 .. -0.9)
    params = PutWriterParams(underlying="SPX", dte_min=1, dte_max=1, delta_min=-0.9,
                             delta_max=-0.5, max_positions=1, loss_multiple=5)
    desk, ledger = _desk(tmp_path, params, capital=D("1000000"))
    desk.step(_ts(DAYS[3]), chain.frame, quote_date=DAYS[3], underlying_price=UNDERLYING[DAYS[3]])
    (occ, s), = desk.shorts.items()
    assert s.strike > UNDERLYING[DAYS[4]] and s.settlement == "cash"
    cash_before = desk.cash
    desk.step(_ts(DAYS[4]), chain.frame, quote_date=DAYS[4], underlying_price=UNDERLYING[DAYS[4]])
    intrinsic = s.strike - UNDERLYING[DAYS[4]]
    assert occ not in desk.shorts and not desk.stock
    assert desk.cash == cash_before - intrinsic * 100 * s.contracts
    (reason, pnl, exit_price), = _rows(ledger, "select exit_reason, pnl, exit_price from trades")
    assert (reason, D(exit_price)) == ("assigned", intrinsic)
    assert D(pnl) == (s.credit - intrinsic) * 100 * s.contracts - s.entry_fee


def test_a_physically_settled_put_assigned_delivers_the_shares_at_the_strike(tmp_path, chain):
    params = PutWriterParams(underlying="SPX", dte_min=1, dte_max=1, delta_min=-0.9,
                             delta_max=-0.5, max_positions=1, loss_multiple=5)
    desk, ledger = _desk(tmp_path, params, capital=D("1000000"))
    desk.step(_ts(DAYS[3]), chain.frame, quote_date=DAYS[3], underlying_price=UNDERLYING[DAYS[3]],
              style="american")
    (occ, s), = desk.shorts.items()
    cash_before = desk.cash
    desk.step(_ts(DAYS[4]), chain.frame, quote_date=DAYS[4], underlying_price=UNDERLYING[DAYS[4]],
              style="american")
    shares = D(100 * s.contracts)
    assert desk.stock["SPX"].shares == shares and desk.counts.assignments == 1
    # the put closes at its intrinsic value and the shares are bought at the close:
    # together the strike, as the venue delivers them
    assert desk.cash == cash_before - s.strike * shares
    decisions = _rows(ledger, "select symbol, action, reason from decisions where ts = "
                              f"{_ts(DAYS[4])} and action != 'hold'")
    assert (occ, "exit", "assigned") in decisions and ("SPX", "enter_long", "assignment") in decisions


def test_monitor_only_governor_sends_nothing_and_records_each_block(tmp_path, chain):
    params = PutWriterParams(underlying="SPX", dte_min=0)
    desk, ledger = _desk(tmp_path, params, governor=MonitorOnlyGovernor())
    for d in DAYS:
        desk.step(_ts(d), chain.frame, quote_date=d, underlying_price=UNDERLYING[d])
    assert desk.counts.orders == 0 and not desk.shorts and desk.cash == D("100000")
    blocked = _rows(ledger, "select count(*) from decisions where action = 'blocked'")[0][0]
    assert blocked >= 5 and _rows(ledger, "select count(*) from orders")[0][0] == 0


def test_a_restored_desk_continues_exactly_as_one_that_never_stopped(tmp_path, chain):
    params = PutWriterParams(underlying="SPX", dte_min=0, close_days_before_expiry=0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole, led_a = _desk(tmp_path / "a", params)
    for d in DAYS:
        whole.step(_ts(d), chain.frame, quote_date=d, underlying_price=UNDERLYING[d])
    first, led_b = _desk(tmp_path / "b", params)
    for d in DAYS[:2]:
        first.step(_ts(d), chain.frame, quote_date=d, underlying_price=UNDERLYING[d])
    state = first.snapshot()
    again = OptionsDesk(run_id="r1", params=params, risk=OptionRiskConfig(),
                        broker=SimOptionsBroker(), ledger=led_b, capital=D("100000"),
                        source="spx_puts")
    again.restore(state)
    for d in DAYS[2:]:
        again.step(_ts(d), chain.frame, quote_date=d, underlying_price=UNDERLYING[d])
    assert again.snapshot() == whole.snapshot()
    q = "select * from decisions order by seq"
    assert _rows(led_a, q) == _rows(led_b, q)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delta_min=st.floats(-0.95, -0.3), delta_span=st.floats(0.05, 0.6),
       dte_max=st.integers(0, 50), max_positions=st.integers(1, 4),
       profit_target=st.floats(0.1, 0.9), loss_multiple=st.floats(1.1, 4.0),
       close_days=st.integers(0, 6), capital=st.integers(30_000, 2_000_000),
       american=st.booleans())
def test_accounting_holds_for_any_parameters(delta_min, delta_span, dte_max, max_positions,
                                             profit_target, loss_multiple, close_days, capital,
                                             american):
    """Whatever the rules do: cash moves only by fills; after closing everything, net
    liquidation = capital + the sum of the trades' PnL; margin never passes its cap at entry."""
    chain = load_option_chain(bundled_equity_path("spx_puts"))
    params = PutWriterParams(underlying="SPX", delta_min=delta_min,
                             delta_max=min(0.0, delta_min + delta_span), dte_min=0,
                             dte_max=dte_max, max_positions=max_positions,
                             profit_target=profit_target, loss_multiple=loss_multiple,
                             close_days_before_expiry=close_days, min_credit=0.05)
    with tempfile.TemporaryDirectory() as tmp:
        desk, ledger = _desk(Path(tmp), params, capital=D(capital))
        for d in DAYS:
            r = desk.step(_ts(d), chain.frame, quote_date=d, underlying_price=UNDERLYING[d],
                          style="american" if american else None)
            assert r.margin <= D("0.40") * r.equity + D("1e-6") or not any(
                x["action"] == "enter_short" for x in r.decisions)
        desk.close_all(_ts(DAYS[-1]), chain.frame, quote_date=DAYS[-1],
                       underlying_price=UNDERLYING[DAYS[-1]])
        pnl = sum((D(p) for (p,) in _rows(ledger, "select pnl from trades")), D(0))
        fills = _rows(ledger, "select side, quantity, price, fee from fills")
        cash = D(capital) + sum((D(q) * D(p) * (1 if s == "sell" else -1) - D(f)
                                 for s, q, p, f in fills), D(0))
        assert not desk.shorts and not desk.stock
        assert desk.cash == cash == desk.last_equity == D(capital) + pnl
        ledger.close()
