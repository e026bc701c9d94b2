"""Rank rebalancing: a holding whose weight is off its target by more than
``rebalance_tolerance`` of the target is resized to it (the strategy says to what, the
risk manager sizes the difference), never sold and bought again.

The replay test runs the whole path: the engine asks the strategy's hook on every open
bar, sizes the difference through the risk manager and the governor, and sends one
``-rebalance`` order (``TradingEngine._rebalance``).
"""

from __future__ import annotations

import math
import sqlite3
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from tradewarden.data.equities import load_equity_panel
from tradewarden.domain import Instrument
from tradewarden.engine import ReplayClock
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.risk import RiskConfig, RiskManager
from tradewarden.strategy import build_strategy
from tradewarden.strategy.rank import RankStrategy

SYMS = ("AAPL", "JPM", "MSFT", "NVDA", "XOM")
LOOKBACK = 63


@pytest.fixture(scope="module")
def panel():
    """The bundled split-adjusted daily bars (real AlphaVantage data, 2012-2015)."""
    return {s: d.series for s, d in load_equity_panel(None, adjustment="split").items()}


@pytest.fixture(scope="module")
def scores(panel, tmp_path_factory):
    """A causal momentum score (return over LOOKBACK sessions) written as a scores file."""
    rows = []
    for s, b in panel.items():
        close = pd.Series(b.close)
        rows.append(pd.DataFrame({"timestamp": pd.to_datetime(b.ts, unit="s", utc=True),
                                  "symbol": s, "score": close / close.shift(LOOKBACK) - 1.0}))
    frame = pd.concat(rows).dropna().sort_values(["timestamp", "symbol"])
    path = tmp_path_factory.mktemp("rank") / "scores.csv"
    frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


def test_the_tolerance_is_a_fraction_of_the_target_and_defaults_to_a_fifth(panel, scores):
    strat = build_strategy("rank", {"scores": str(scores), "top_n": 3, "weighting": "score",
                                    "max_fraction": 0.6})
    assert strat.params.rebalance_tolerance == 0.2
    frame = strat.prepare(panel["NVDA"])
    held = np.flatnonzero((frame.inputs["weight"] > 0) & ~frame.exit)
    assert len(held) > 50
    for t in held[:200]:
        target = float(frame.inputs["weight"][t])
        assert strat.rebalance(frame, t, target) is None                  # on target
        assert strat.rebalance(frame, t, target * 1.19) is None           # inside 20 %
        assert strat.rebalance(frame, t, target * 0.81) is None
        assert strat.rebalance(frame, t, target * 1.21) == target         # drifted up
        assert strat.rebalance(frame, t, target * 0.79) == target         # drifted down
        assert strat.rebalance(frame, t, 0.0) == target
    tight = build_strategy("rank", {"scores": str(scores), "top_n": 3, "weighting": "score",
                                    "max_fraction": 0.6, "rebalance_tolerance": 0.05})
    t = held[0]
    target = float(frame.inputs["weight"][t])
    assert tight.rebalance(frame, t, target * 1.1) == target
    with pytest.raises(ValueError, match="rebalance_tolerance"):
        build_strategy("rank", {"scores": str(scores), "rebalance_tolerance": 1.5})


def test_no_resize_without_a_score_on_an_exit_or_between_top_n_and_exit_rank(panel, scores):
    strat = build_strategy("rank", {"scores": str(scores), "top_n": 2, "exit_rank": 4})
    frame = strat.prepare(panel["XOM"])
    unscored = np.flatnonzero(np.isnan(frame.inputs["score"]))
    exits = np.flatnonzero(frame.exit)
    kept = np.flatnonzero(~np.isnan(frame.inputs["score"]) & (frame.inputs["rank"] > 2)
                          & (frame.inputs["rank"] <= 4))
    assert len(unscored) == LOOKBACK and len(exits) and len(kept)
    for t in (*unscored[:5], *exits[:20], *kept[:20]):
        assert strat.rebalance(frame, int(t), 0.9) is None
    with pytest.raises(ValueError, match="weight_now"):
        strat.rebalance(frame, int(kept[0]), math.nan)


def _risk(**kw) -> RiskManager:
    cfg = {"max_position_fraction": 0.3, "cash_buffer": 0.02, "max_drawdown_halt": 0.2,
           "daily_loss_limit": None, "max_consecutive_losses": None, **kw}
    return RiskManager(RiskConfig(**cfg), ["a"])


INST = Instrument("AAPL", "AAPL", "USD", Decimal("0.01"), Decimal(1), min_notional=Decimal(1))
BASE = {"account": "a", "instrument": INST, "ts": 1_400_000_000, "price": 100.0,
        "equity": 100_000.0, "peak_equity": 100_000.0, "cash": 50_000.0}


def test_risk_sizes_the_difference_buy_more_or_sell_part():
    risk = _risk()
    up = risk.evaluate_rebalance(held=Decimal(100), target_weight=0.2, **BASE)
    assert up.approved and up.quantity == Decimal(100)        # 200 wanted, 100 held
    down = risk.evaluate_rebalance(held=Decimal(250), target_weight=0.1, **BASE)
    assert down.approved and down.quantity == Decimal(-150)
    odd = risk.evaluate_rebalance(held=Decimal(250), target_weight=0.1234567, **{
        **BASE, "price": 97.3})
    assert odd.quantity == -Decimal(int(250 - 0.1234567 * 100_000 / 97.3))    # towards zero
    capped = risk.evaluate_rebalance(held=Decimal(100), target_weight=0.5, **BASE)
    assert capped.quantity == Decimal(200) and capped.detail["capped_from"] == 0.5   # 30 % cap
    short_cash = risk.evaluate_rebalance(held=Decimal(100), target_weight=0.3,
                                         **{**BASE, "cash": 5_000.0})
    assert short_cash.quantity == Decimal(49) and "cash_capped_from" in short_cash.detail


def test_risk_refuses_what_is_not_a_resize():
    risk = _risk()
    same = risk.evaluate_rebalance(held=Decimal(200), target_weight=0.2, **BASE)
    assert (same.approved, same.reason) == (False, "no_change")
    tiny = risk.evaluate_rebalance(held=Decimal(1), target_weight=0.00001, **BASE)
    assert (tiny.approved, tiny.reason) == (False, "no_change")       # a sale never closes
    assert risk.evaluate_rebalance(held=Decimal(0), target_weight=0.2, **BASE).reason == "no_position"
    assert risk.evaluate_rebalance(held=Decimal(5), target_weight=1.5, **BASE).reason == \
        "bad_target_weight"
    dust = Instrument("AAPL", "AAPL", "USD", Decimal("0.01"), Decimal(1), min_notional=Decimal(500))
    small = risk.evaluate_rebalance(held=Decimal(197), target_weight=0.2,
                                    **{**BASE, "instrument": dust})
    assert (small.approved, small.reason) == (False, "below_min_notional")
    broke = risk.evaluate_rebalance(held=Decimal(100), target_weight=0.2, **{**BASE, "cash": 0.0})
    assert broke.reason == "no_cash"


def test_a_halt_stops_a_buy_but_never_a_sale():
    risk = _risk()
    deep = {**BASE, "equity": 70_000.0}                     # 30 % below the peak: halted
    buy = risk.evaluate_rebalance(held=Decimal(10), target_weight=0.2, **deep)
    assert (buy.approved, buy.reason) == (False, "halted:max_drawdown")
    sell = risk.evaluate_rebalance(held=Decimal(500), target_weight=0.2, **deep)
    assert sell.approved and sell.quantity == Decimal(-360)


def _replay(tmp_path, panel, strat, capital=Decimal(100_000)):
    """Replay the bundled panel through the reference path in portfolio mode."""
    ledger = Ledger(tmp_path / "ledger.db")
    run = "rank-rebalance"
    ledger.create_run({"run_id": run, "mode": "replay", "capital_mode": "portfolio",
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "h",
                       "config": "{}", "strategy": "rank", "symbols": ",".join(SYMS),
                       "timeframe": "1d", "initial_capital": capital})
    insts = {s: Instrument(s, s, "USD", Decimal("0.01"), Decimal(1)) for s in SYMS}
    kernel = assemble("replay", run_id=run, strategy=strat, instruments=insts, ledger=ledger,
                      capital=capital, capital_mode="portfolio",
                      risk=RiskConfig(max_position_fraction=0.5, max_drawdown_halt=None,
                                      daily_loss_limit=None, max_consecutive_losses=None),
                      clock=ReplayClock(int(panel["AAPL"].ts[0])), reference=True)
    engine = kernel.engine
    for i in range(len(panel["AAPL"])):
        for s in SYMS:
            engine.on_bar(panel[s].bar(i))
    engine.flush()
    ledger.close()
    return sqlite3.connect(tmp_path / "ledger.db")


def test_a_replay_resizes_drifted_holdings_without_selling_and_buying_again(
        tmp_path, panel, scores):
    strat = RankStrategy(RankStrategy.Params(scores=str(scores), top_n=2, weighting="score",
                                             max_fraction=0.5, rebalance_tolerance=0.2))
    with _replay(tmp_path, panel, strat) as c:
        resized = c.execute("SELECT ts, symbol, reason, detail FROM decisions "
                            "WHERE action = 'rebalance'").fetchall()
        orders = c.execute("SELECT client_order_id, symbol, side, quantity, status FROM orders "
                           "WHERE client_order_id LIKE '%-rebalance'").fetchall()
        exits = c.execute("SELECT count(*) FROM orders WHERE client_order_id LIKE '%-exit' "
                          "AND status = 'filled'").fetchone()[0]
        fills = c.execute("SELECT client_order_id, side, quantity FROM fills ORDER BY fill_seq").fetchall()
        trades = c.execute("SELECT count(*) FROM trades").fetchone()[0]
    assert len(resized) > 10 and len(orders) == len(resized)
    assert {r[2] for r in resized} == {"weight_drift"}
    assert {side for _c, _s, side, _q, _st in orders} == {"buy", "sell"}   # both directions
    assert sum(st == "filled" for *_x, st in orders) >= len(orders) - 1   # the last may wait
    # a resize never ends a round trip: every trade was ended by one filled exit order
    assert trades == exits > 20
    held: dict[str, Decimal] = {}
    for cid, side, qty in fills:
        sym = next(s for s in SYMS if f"-{s}-" in cid)
        held[sym] = held.get(sym, Decimal(0)) + (Decimal(qty) if side == "buy" else -Decimal(qty))
        assert held[sym] >= 0
