"""Trade, risk, data-quality and decision metrics against hand-computed ledgers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from tradewarden.analytics import (daily_returns, data_quality, decision_stats, drawdown,
                                   load_equity_curve, risk_stats, trade_stats)
from tradewarden.ledger import schema

from _analytics_ledger import D, H, T0, Ledger


# --------------------------------------------------------------------------- trades

def test_trade_stats_match_hand_computation(hand_run: Ledger) -> None:
    res = trade_stats(hand_run.engine, "r-hand")
    t = res.overall
    assert (t.closed_trades, t.wins, t.losses, t.breakevens) == (6, 2, 3, 1)
    assert t.win_rate_pct == pytest.approx(100 * 2 / 6)
    assert t.gross_profit == pytest.approx(107.88 + 293.70)          # 401.58
    assert t.gross_loss == pytest.approx(-(134.08 + 61.85 + 56.15))   # -252.08
    assert t.profit_factor == pytest.approx(401.58 / 252.08)          # 1.59307
    assert t.profit_factor_note is None
    assert t.expectancy == pytest.approx(149.50 / 6)                  # 24.9167 per trade
    assert t.avg_win == pytest.approx(401.58 / 2)
    assert t.avg_loss == pytest.approx(-252.08 / 3)
    assert t.payoff_ratio == pytest.approx((401.58 / 2) / (252.08 / 3))
    assert t.net_pnl_exact == "149.50" and t.fees_exact == "54.50"
    assert t.best_trade == pytest.approx(293.70) and t.worst_trade == pytest.approx(-134.08)
    # holding: 6h, 4h, 2h, 4h, 10h, 24h -> 50h / 6
    assert t.avg_holding_hours == pytest.approx(50 / 6)
    assert t.exit_reasons == {"signal": 2, "stop_loss": 3, "take_profit": 1}


def test_trade_stats_per_symbol(hand_run: Ledger) -> None:
    by = trade_stats(hand_run.engine, "r-hand").by_symbol
    assert list(by) == ["BTC-USD", "ETH-USD"]
    btc, eth = by["BTC-USD"], by["ETH-USD"]
    assert (btc.closed_trades, btc.wins, btc.losses) == (3, 1, 2)
    assert btc.profit_factor == pytest.approx(107.88 / (134.08 + 61.85))
    assert btc.net_pnl_exact == "-88.05"
    assert (eth.closed_trades, eth.wins, eth.losses, eth.breakevens) == (3, 1, 1, 1)
    assert eth.profit_factor == pytest.approx(293.70 / 56.15)
    assert eth.fees_exact == "18.45"


def test_profit_factor_infinite_without_losses_and_undefined_without_trades(
        ledger: Ledger) -> None:
    ledger.add_run("r-win", trades_closed=1)
    ledger.add_trades("r-win", [dict(symbol="BTC-USD", quantity="0.01", entry_ts=T0,
                                     exit_ts=T0 + H, entry_price="60000", exit_price="60600",
                                     fees="1.21", pnl="4.79", exit_reason="take_profit")])
    ledger.add_run("r-none")
    win = trade_stats(ledger.engine, "r-win").overall
    assert math.isinf(win.profit_factor) and "no losing trades" in win.profit_factor_note
    assert win.payoff_ratio is None and win.avg_loss is None
    none = trade_stats(ledger.engine, "r-none").overall
    assert none.closed_trades == 0 and none.profit_factor is None
    assert none.win_rate_pct is None and none.expectancy is None


def test_consecutive_losses_ordered_by_exit_then_trade_id(hand_run: Ledger) -> None:
    r = risk_stats(hand_run.engine, "r-hand")
    # exit order: W, L(-134.08), L(-61.85), breakeven, L(-56.15), W -> longest streak 2
    assert r.max_consecutive_losses == 2
    assert r.max_consecutive_loss_pnl == pytest.approx(-195.93)


def test_consecutive_losses_tie_on_exit_ts_uses_trade_id(ledger: Ledger) -> None:
    ledger.add_run("r-tie", trades_closed=3)
    common = dict(symbol="BTC-USD", quantity="0.01", entry_ts=T0, exit_ts=T0 + H,
                  entry_price="60000", exit_price="59000", fees="1.19", exit_reason="stop_loss")
    # by trade_id: a (loss), b (win), c (loss) -> streak 1; insertion order would give 2
    ledger.add_trades("r-tie", [dict(common, trade_id="c", pnl="-11.19"),
                                dict(common, trade_id="a", pnl="-11.19"),
                                dict(common, trade_id="b", pnl="5.00", exit_price="60600")])
    r = risk_stats(ledger.engine, "r-tie")
    assert r.max_consecutive_losses == 1
    assert r.max_consecutive_loss_pnl == pytest.approx(-11.19)


# --------------------------------------------------------------------------- equity

def test_independent_total_equity_forward_fills_each_account(ledger: Ledger) -> None:
    ledger.add_run("r-ind", symbols=["BTC-USD", "ETH-USD"])
    ledger.add_equity("r-ind", [
        (0, "BTC-USD", T0 + 1 * H, 9990.0),
        (1, "ETH-USD", T0 + 2 * H, 10020.0),
        (2, "BTC-USD", T0 + 3 * H, 10080.0),   # superseded by seq 3 at the same ts
        (3, "BTC-USD", T0 + 3 * H, 10100.0),
        (4, "BTC-USD", T0 + 5 * H, 10050.0),
        (5, "ETH-USD", T0 + 5 * H, 9900.0),
        (6, "ETH-USD", T0 + 6 * H, 9950.0),
    ])
    ledger.add_decisions("r-ind", [(T0, "BTC-USD", "hold", "x", 60000.0),
                                   (T0 + 8 * H, "BTC-USD", "hold", "x", 60100.0)])
    curve = load_equity_curve(ledger.engine, "r-ind")
    assert curve.initial == {"BTC-USD": 10000.0, "ETH-USD": 10000.0}
    expected = {T0: 20000.0, T0 + H: 19990.0, T0 + 2 * H: 20010.0, T0 + 3 * H: 20120.0,
                T0 + 5 * H: 19950.0, T0 + 6 * H: 20000.0, T0 + 8 * H: 20000.0}
    assert curve.total.to_dict() == pytest.approx(expected)
    assert curve.accounts.loc[T0 + H, "ETH-USD"] == 10000.0   # no row yet: initial capital

    r = risk_stats(ledger.engine, "r-ind")
    assert r.initial_capital == 20000.0 and r.final_equity == 20000.0
    assert r.peak_equity == 20120.0 and r.total_return_pct == pytest.approx(0.0)
    assert r.max_drawdown == pytest.approx(170.0)
    assert r.max_drawdown_pct == pytest.approx(170.0 / 20120.0 * 100)
    assert (r.drawdown_peak_ts, r.drawdown_trough_ts) == (T0 + 3 * H, T0 + 5 * H)
    assert r.drawdown_trough_time == "2024-01-01T05:00:00Z"
    assert r.equity_marks == 6
    btc, eth = r.accounts["BTC-USD"], r.accounts["ETH-USD"]
    assert btc.final_equity == 10050.0 and btc.max_drawdown_pct == pytest.approx(50 / 10100 * 100)
    assert eth.final_equity == 9950.0 and eth.max_drawdown == pytest.approx(120.0)
    assert eth.max_drawdown_pct == pytest.approx(120 / 10020 * 100)


def test_independent_symbol_without_marks_counts_at_initial_capital(ledger: Ledger) -> None:
    ledger.add_run("r-idle", symbols=["BTC-USD", "ETH-USD", "SOL-USD"])
    ledger.add_equity("r-idle", [("BTC-USD", T0 + H, 10500.0)])
    r = risk_stats(ledger.engine, "r-idle")
    assert r.initial_capital == 30000.0
    assert r.final_equity == 30500.0
    assert r.total_return_pct == pytest.approx(500 / 30000 * 100)
    assert r.accounts["SOL-USD"].final_equity == 10000.0 and r.accounts["SOL-USD"].marks == 0


def test_portfolio_mode_uses_one_account_and_total_capital(ledger: Ledger) -> None:
    ledger.add_run("r-port", capital_mode="portfolio", symbols=["BTC-USD", "ETH-USD"],
                   initial_capital="100000")
    ledger.add_equity("r-port", [("portfolio", T0 + H, 99900.0),
                                 ("portfolio", T0 + 2 * H, 103000.0),
                                 ("portfolio", T0 + 4 * H, 95000.0),
                                 ("portfolio", T0 + 6 * H, 101000.0)])
    curve = load_equity_curve(ledger.engine, "r-port")
    assert list(curve.accounts.columns) == ["portfolio"]
    assert curve.initial_total == 100000.0          # not multiplied by the symbol count
    r = risk_stats(ledger.engine, "r-port")
    assert r.final_equity == 101000.0 and r.total_return_pct == pytest.approx(1.0)
    assert r.peak_equity == 103000.0
    assert r.max_drawdown == pytest.approx(8000.0)
    assert r.max_drawdown_pct == pytest.approx(8000 / 103000 * 100)
    assert (r.drawdown_peak_ts, r.drawdown_trough_ts) == (T0 + 2 * H, T0 + 4 * H)
    assert list(r.accounts) == ["portfolio"]


def test_portfolio_mode_ignores_and_reports_foreign_accounts(ledger: Ledger) -> None:
    ledger.add_run("r-port2", capital_mode="portfolio", initial_capital="50000")
    ledger.add_equity("r-port2", [("portfolio", T0 + H, 50500.0), ("BTC-USD", T0 + H, 1.0)])
    curve = load_equity_curve(ledger.engine, "r-port2")
    assert curve.total.iloc[-1] == 50500.0
    assert any("unexpected accounts" in w for w in curve.warnings)


def test_hand_run_drawdown_spans_accounts(hand_run: Ledger) -> None:
    r = risk_stats(hand_run.engine, "r-hand")
    assert r.final_equity == pytest.approx(20149.50)
    assert r.total_return_pct == pytest.approx(149.50 / 20000 * 100)
    assert r.max_drawdown == pytest.approx(252.08)
    assert r.max_drawdown_pct == pytest.approx(252.08 / 20107.88 * 100)
    assert r.drawdown_peak_ts == T0 + 6 * H
    assert r.drawdown_trough_ts == T0 + 3 * D + 10 * H


def test_drawdown_is_measured_from_initial_capital(ledger: Ledger) -> None:
    ledger.add_run("r-down")
    ledger.add_equity("r-down", [("BTC-USD", T0 + 2 * H, 9500.0), ("BTC-USD", T0 + 3 * H, 9800.0)])
    ledger.add_decisions("r-down", [(T0, "BTC-USD", "enter_long", "x", 60000.0)])
    r = risk_stats(ledger.engine, "r-down")
    assert r.max_drawdown == pytest.approx(500.0)
    assert r.max_drawdown_pct == pytest.approx(5.0)
    assert r.drawdown_peak_ts == T0                  # the run's first bar, at initial capital
    assert r.peak_equity == 10000.0


def test_drawdown_function_reports_deepest_percent_episode() -> None:
    ts = pd.Index([T0 + i * H for i in range(5)])
    s = pd.Series([100.0, 80.0, 300.0, 250.0, 290.0], index=ts)
    dd = drawdown(s, 100.0)
    # 100->80 is -20 (20%); 300->250 is -50 (16.7%): percent decides, quote is its own
    assert dd.max_drawdown_pct == pytest.approx(20.0) and dd.max_drawdown == pytest.approx(20.0)
    assert dd.trough_ts == T0 + H
    assert dd.series_pct.min() == pytest.approx(-20.0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["BTC-USD", "ETH-USD", "SOL-USD"]),
                          st.integers(0, 40), st.floats(5000, 15000)), min_size=1, max_size=40))
def test_total_equity_matches_naive_step_sum(rows: list[tuple[str, int, float]]) -> None:
    engine = create_engine("sqlite://")
    schema.metadata.create_all(engine)
    led = Ledger(engine=engine, path=None)  # type: ignore[arg-type]
    led.add_run("r-prop", symbols=["BTC-USD", "ETH-USD", "SOL-USD"])
    led.add_equity("r-prop", [(acc, T0 + k * H, eq) for acc, k, eq in rows])
    curve = load_equity_curve(engine, "r-prop")
    for t, total in curve.total.items():
        naive = 0.0
        for acc in ("BTC-USD", "ETH-USD", "SOL-USD"):
            # the latest mark at or before t; at equal ts the later row (higher seq) wins
            marks = sorted((k, seq, eq) for seq, (a, k, eq) in enumerate(rows)
                           if a == acc and T0 + k * H <= t)
            naive += marks[-1][2] if marks else 10000.0
        assert total == pytest.approx(naive)


# --------------------------------------------------------------------------- Sharpe / Sortino

def test_daily_returns_forward_fill_and_sharpe_by_hand(ledger: Ledger) -> None:
    ledger.add_run("r-sharpe", capital_mode="portfolio", initial_capital="100000")
    ledger.add_equity("r-sharpe", [
        ("portfolio", T0 + 10 * H, 100500.0),
        ("portfolio", T0 + 20 * H, 101000.0),           # day 1 close
        ("portfolio", T0 + D + 12 * H, 100500.0),       # day 2 close
        ("portfolio", T0 + 3 * D + 6 * H, 102000.0),    # day 3: no mark -> 100500 (ffill)
    ])
    curve = load_equity_curve(ledger.engine, "r-sharpe")
    rets = daily_returns(curve.total, curve.initial_total)
    closes = np.array([101000.0, 100500.0, 100500.0, 102000.0])
    expected = closes / np.r_[100000.0, closes[:-1]] - 1
    assert rets.to_numpy() == pytest.approx(expected)
    assert str(rets.index[0].tz) == "UTC" and rets.index[0] == pd.Timestamp("2024-01-01", tz="UTC")

    r = risk_stats(ledger.engine, "r-sharpe")
    sharpe = expected.mean() / expected.std(ddof=1) * math.sqrt(365)
    downside = math.sqrt(np.mean(np.minimum(expected, 0) ** 2)) * math.sqrt(365)
    assert r.daily_returns == 4
    assert r.sharpe == pytest.approx(sharpe) and r.sharpe > 0
    assert r.sortino == pytest.approx(expected.mean() * 365 / downside)
    assert r.annualization == "daily returns, UTC, annualised x sqrt(365), risk-free 0"


def test_sharpe_is_negative_for_a_losing_curve(ledger: Ledger) -> None:
    ledger.add_run("r-lose")
    ledger.add_equity("r-lose", [("BTC-USD", T0 + k * D, v) for k, v in
                                 enumerate([9900.0, 9850.0, 9870.0, 9700.0, 9650.0])])
    r = risk_stats(ledger.engine, "r-lose")
    assert r.sharpe is not None and r.sharpe < 0
    assert r.sortino is not None and r.sortino < 0


def test_flat_curve_gives_none_not_nan(ledger: Ledger) -> None:
    ledger.add_run("r-flat")
    ledger.add_equity("r-flat", [("BTC-USD", T0 + k * D, 10000.0) for k in range(6)])
    r = risk_stats(ledger.engine, "r-flat")
    assert r.daily_returns == 6
    assert r.sharpe is None and r.sortino is None
    assert any("flat equity" in n for n in r.ratio_notes)
    assert r.max_drawdown == 0.0 and r.drawdown_peak_ts is None


def test_sortino_without_negative_days_is_none_with_note(ledger: Ledger) -> None:
    ledger.add_run("r-up")
    ledger.add_equity("r-up", [("BTC-USD", T0 + k * D, 10000.0 + 100 * (k + 1) ** 2)
                               for k in range(5)])
    r = risk_stats(ledger.engine, "r-up")
    assert r.sharpe is not None and r.sharpe > 0
    assert r.sortino is None and any("no negative daily return" in n for n in r.ratio_notes)


# --------------------------------------------------------------------------- data quality / decisions

def test_data_quality_decoded_with_issues(hand_run: Ledger) -> None:
    dq = data_quality(hand_run.engine, "r-hand")
    assert dq.integrity == "ok" and dq.bars_processed == 240
    assert dq.symbols["BTC-USD"].rows == 120 and dq.symbols["BTC-USD"].gaps == 0
    eth = dq.symbols["ETH-USD"]
    assert (eth.gaps, eth.missing_bars, eth.zero_volume_bars) == (1, 2, 3)
    assert eth.extra == {"first_ts": T0}
    assert dq.issues == ["ETH-USD: gaps=1, missing_bars=2, zero_volume_bars=3"]


def test_data_quality_degraded_and_malformed(ledger: Ledger) -> None:
    ledger.add_run("r-bad", data_integrity="degraded", data_quality="{not json")
    dq = data_quality(ledger.engine, "r-bad")
    assert dq.integrity == "degraded"
    assert dq.issues[0] == "data integrity is 'degraded'"
    assert "not valid JSON" in dq.issues[1]


def test_decision_counts_group_by(hand_run: Ledger) -> None:
    d = decision_stats(hand_run.engine, "r-hand", top=3)
    assert d.total == 240
    assert d.by_action == {"blocked": 1, "enter_long": 1, "hold": 238}
    assert d.by_symbol["ETH-USD"] == {"blocked": 1, "hold": 119}
    assert [(r.action, r.reason, r.count) for r in d.top_reasons] == [
        ("hold", "no_signal", 238), ("blocked", "stale_data", 1),
        ("enter_long", "sma_cross_up", 1)]
    assert all(r.action != "hold" for r in d.top_non_hold_reasons)
