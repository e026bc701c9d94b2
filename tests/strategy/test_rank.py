"""The rank strategy on real daily equities: top-N by a column of scores, target weights,
rebalancing through entries and exits, and the risk manager sizing by the weight."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from tradewarden.data.equities import load_equity_panel
from tradewarden.domain import Action, Instrument, Signal
from tradewarden.engine import ReplayClock
from tradewarden.ledger import Ledger
from tradewarden.ops.kernel import assemble
from tradewarden.risk import RiskConfig, RiskManager
from tradewarden.strategy import build_strategy
from tradewarden.strategy.errors import StrategyConfigError
from tradewarden.strategy.rank import RankStrategy, load_scores

SYMS = ("AAPL", "JPM", "MSFT", "NVDA", "XOM")
LOOKBACK = 63          # about three months of sessions


@pytest.fixture(scope="module")
def panel():
    """The bundled split-adjusted daily bars (real AlphaVantage data, 2012-2015)."""
    return {s: d.series for s, d in load_equity_panel(None, adjustment="split").items()}


@pytest.fixture(scope="module")
def momentum(panel) -> pd.DataFrame:
    """A causal score: the return over the last LOOKBACK sessions, known at each close."""
    rows = []
    for s, b in panel.items():
        close = pd.Series(b.close)
        score = close / close.shift(LOOKBACK) - 1.0
        rows.append(pd.DataFrame({"timestamp": pd.to_datetime(b.ts, unit="s", utc=True),
                                  "symbol": s, "score": score}).dropna())
    return pd.concat(rows).sort_values(["timestamp", "symbol"]).reset_index(drop=True)


@pytest.fixture
def scores_file(tmp_path, momentum):
    path = tmp_path / "scores.csv"
    momentum.assign(timestamp=momentum["timestamp"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return path


def _expected_ranks(momentum: pd.DataFrame) -> pd.DataFrame:
    wide = momentum.pivot(index="timestamp", columns="symbol", values="score")
    return wide.rank(axis=1, ascending=False, method="min")


def test_each_bar_enters_in_the_top_n_and_exits_past_the_exit_rank(panel, momentum, scores_file):
    strat = build_strategy("rank", {"scores": str(scores_file), "top_n": 2, "exit_rank": 3,
                                    "max_fraction": 0.6})
    ranks = _expected_ranks(momentum)
    for sym in SYMS:
        bars = panel[sym]
        frame = strat.prepare(bars)
        when = pd.to_datetime(bars.ts, unit="s", utc=True)
        want = ranks[sym].reindex(when).to_numpy()
        np.testing.assert_array_equal(frame.inputs["rank"], want)
        scored = ~np.isnan(want)
        assert scored.sum() == len(bars) - LOOKBACK
        np.testing.assert_array_equal(frame.enter, scored & (np.nan_to_num(want, nan=99) <= 2))
        np.testing.assert_array_equal(frame.exit, scored & (np.nan_to_num(want, nan=0) > 3))
        # the first LOOKBACK bars have no score: a hold for lack of one
        assert {frame.reasons[c] for c in frame.flat_reason[:LOOKBACK]} == {"no_score"}
        assert np.all(frame.inputs["weight"][frame.enter] == 0.5)


def test_decide_agrees_with_the_frame_and_entries_carry_their_target_weight(panel, scores_file):
    strat = build_strategy("rank", {"scores": str(scores_file), "top_n": 3,
                                    "weighting": "score", "max_fraction": 0.4})
    frame = strat.prepare(panel["NVDA"])
    entries = 0
    for t in range(len(frame)):
        for held in (False, True):
            sig = strat.decide(frame, t, held)
            if held:
                assert (sig.action is Action.EXIT) == bool(frame.exit[t])
            else:
                assert (sig.action is Action.ENTER_LONG) == bool(frame.enter[t])
                if frame.enter[t]:
                    entries += 1
                    assert sig.weight == frame.inputs["weight"][t]
                    assert 0 < sig.weight <= 0.4 and sig.reason == "top_n"
    assert entries > 50


def test_score_weights_are_shares_of_the_positive_top_scores_capped(momentum, scores_file):
    strat = RankStrategy(RankStrategy.Params(scores=str(scores_file), top_n=3, weighting="score",
                                             max_fraction=0.45))
    wide = momentum.pivot(index="timestamp", columns="symbol", values="score")
    top = wide.rank(axis=1, ascending=False, method="min") <= 3
    pos = wide.where(top & (wide > 0), 0.0)
    share = pos.div(pos.sum(axis=1), axis=0).fillna(0.0).clip(upper=0.45)
    np.testing.assert_allclose(strat._weights, share.to_numpy(), atol=1e-12)
    # a day whose top three are all negative has no target at all
    all_negative = (pos.sum(axis=1) == 0)
    assert all_negative.any()
    assert np.all(strat._weights[all_negative.to_numpy()] == 0)


def test_risk_sizes_an_entry_to_its_target_weight_within_the_caps():
    inst = Instrument("AAPL", "AAPL", "USD", Decimal("0.01"), Decimal(1))
    risk = RiskManager(RiskConfig(sizing="risk:0.01", max_position_fraction=0.3), ["a"])
    base = {"account": "a", "instrument": inst, "ts": 1_400_000_000, "price": 93.7,
            "equity": 100_000.0, "peak_equity": 100_000.0, "cash": 100_000.0, "open_positions": 0}
    v = risk.evaluate_entry(signal=Signal(Action.ENTER_LONG, "top_n", weight=0.2), **base)
    assert v.approved and v.quantity == Decimal(int(0.2 * 100_000 / 93.7))
    assert v.detail["target_weight"] == 0.2
    capped = risk.evaluate_entry(signal=Signal(Action.ENTER_LONG, "top_n", weight=0.5), **base)
    assert capped.quantity == Decimal(int(0.3 * 100_000 / 93.7)) and "capped_from" in capped.detail
    bad = risk.evaluate_entry(signal=Signal(Action.ENTER_LONG, "top_n", weight=1.5), **base)
    assert not bad.approved and bad.reason == "bad_target_weight"


def test_a_portfolio_replay_holds_the_top_two_and_rebalances_on_rank_changes(
        tmp_path, panel, momentum, scores_file):
    strat = build_strategy("rank", {"scores": str(scores_file), "top_n": 2})
    ledger = Ledger(tmp_path / "ledger.db")
    run = "rank-run"
    ledger.create_run({"run_id": run, "mode": "replay", "capital_mode": "portfolio",
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "h",
                       "config": "{}", "strategy": "rank", "symbols": ",".join(SYMS),
                       "timeframe": "1d", "initial_capital": Decimal(100_000)})
    insts = {s: Instrument(s, s, "USD", Decimal("0.01"), Decimal(1)) for s in SYMS}
    kernel = assemble("replay", run_id=run, strategy=strat, instruments=insts, ledger=ledger,
                      capital=Decimal(100_000), capital_mode="portfolio",
                      risk=RiskConfig(max_position_fraction=0.5, max_drawdown_halt=None,
                                      daily_loss_limit=None, max_consecutive_losses=None),
                      clock=ReplayClock(int(panel["AAPL"].ts[0])), reference=True)
    engine = kernel.engine
    n = len(panel["AAPL"])
    held_max = 0
    for i in range(n):
        for s in SYMS:
            engine.on_bar(panel[s].bar(i))
        held_max = max(held_max, sum(1 for x in engine.by_name.values() if x.qty))
    engine.flush()
    ranks = _expected_ranks(momentum)
    ledger.close()
    with sqlite3.connect(tmp_path / "ledger.db") as c:
        trades = [dict(zip(("symbol", "entry_ts"), r)) for r in
                  c.execute("SELECT symbol, entry_ts FROM trades WHERE run_id = ?", (run,))]
    assert len(trades) > 20
    assert held_max == 2                                  # never more than the top N
    for t in trades:
        entry_day = pd.Timestamp(int(t["entry_ts"]), unit="s", tz="UTC").normalize()
        # entries were decided on the close before their fill, when the symbol was top 2
        decided = ranks.index[ranks.index < entry_day][-1]
        assert ranks.loc[decided, t["symbol"]] <= 2


def test_bad_scores_files_name_the_file_row_and_column(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("timestamp,symbol,value\n2014-01-02,AAPL,1\n")
    with pytest.raises(StrategyConfigError, match=r"s\.csv: missing column\(s\) score"):
        load_scores(p)
    p.write_text("timestamp,symbol,score\n2014-01-02,AAPL,1\n2014-13-45,MSFT,2\n")
    with pytest.raises(StrategyConfigError, match=r"row 2, column timestamp: '2014-13-45'"):
        load_scores(p)
    p.write_text("timestamp,symbol,score\n2014-01-02,AAPL,1\n2014-01-02,MSFT,abc\n")
    with pytest.raises(StrategyConfigError, match=r"row 2, column score: 'abc'"):
        load_scores(p)
    p.write_text("timestamp,symbol,score\n2014-01-02,AAPL,1\n2014-01-02,AAPL,2\n")
    with pytest.raises(StrategyConfigError, match=r"row 2: a second score for AAPL"):
        load_scores(p)
    with pytest.raises(StrategyConfigError, match="no such file"):
        build_strategy("rank", {"scores": str(tmp_path / "missing.csv")})


def test_a_changed_scores_file_is_read_again(tmp_path, panel):
    p = tmp_path / "s.csv"
    day = pd.to_datetime(panel["AAPL"].ts[:2], unit="s", utc=True).strftime("%Y-%m-%d")
    p.write_text(f"timestamp,symbol,score\n{day[0]},AAPL,1\n{day[0]},MSFT,2\n")
    strat = build_strategy("rank", {"scores": str(p), "top_n": 1})
    first = panel["AAPL"].slice(0, 2)
    assert list(strat.prepare(first).enter) == [False, False]
    p.write_text(f"timestamp,symbol,score\n{day[0]},AAPL,1\n{day[0]},MSFT,2\n"
                 f"{day[1]},AAPL,3\n{day[1]},MSFT,2\n")
    assert list(strat.prepare(first).enter) == [False, True]


def test_the_batch_path_closes_a_rank_portfolio_at_its_last_bar(tmp_path, panel, scores_file):
    """A strategy without warm-up keeps no bar tail: the end-of-data exits are still
    stamped with each symbol's last bar (they were stamped 1970-01-01)."""
    from tradewarden.domain import ExitReason
    strat = build_strategy("rank", {"scores": str(scores_file), "top_n": 2})
    ledger = Ledger(tmp_path / "ledger.db")
    ledger.create_run({"run_id": "b", "mode": "replay", "capital_mode": "portfolio",
                       "market_time_basis": "test", "data_integrity": "ok", "config_hash": "h",
                       "config": "{}", "strategy": "rank", "symbols": ",".join(SYMS),
                       "timeframe": "1d", "initial_capital": Decimal(100_000)})
    insts = {s: Instrument(s, s, "USD", Decimal("0.01"), Decimal(1)) for s in SYMS}
    kernel = assemble("replay", run_id="b", strategy=strat, instruments=insts, ledger=ledger,
                      capital=Decimal(100_000), capital_mode="portfolio",
                      risk=RiskConfig(max_position_fraction=0.5, max_drawdown_halt=None,
                                      daily_loss_limit=None, max_consecutive_losses=None),
                      clock=ReplayClock(int(panel["AAPL"].ts[0])))
    kernel.run([{s: panel[s] for s in SYMS}], close=ExitReason.END_OF_DATA)
    ledger.close()
    last = int(panel["AAPL"].ts[-1])
    with sqlite3.connect(tmp_path / "ledger.db") as c:
        ends = c.execute("SELECT entry_ts, exit_ts FROM trades WHERE exit_reason = "
                         "'end_of_data'").fetchall()
        first = c.execute("SELECT min(ts) FROM decisions").fetchone()[0]
        bad = c.execute("SELECT count(*) FROM trades WHERE exit_ts < entry_ts").fetchone()[0]
    assert ends and all(exit_ts == last for _entry, exit_ts in ends)
    assert first >= int(panel["AAPL"].ts[0]) and bad == 0
