"""Scores to target weights and orders (ml/targets.py), table-driven, and the scores file
that makes the rank strategy hold exactly those targets."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from tradewarden.data.equities import equity_instrument, load_equity_panel
from tradewarden.domain import Action, Instrument, Side
from tradewarden.ml.settings import MlSettings
from tradewarden.ml.targets import (
    EMPTY_SLOT,
    TargetOrder,
    orders_from_targets,
    rank_params,
    scores_frame,
    select,
    slots,
    target_weights,
    write_scores_file,
)
from tradewarden.strategy import build_strategy

#: One cross-section: predicted 5-session returns. Population z-scores: NVDA 1.397,
#: AAPL 0.621, MSFT 0.233, JPM -0.931, XOM -1.319.
SCORES = {"AAPL": 0.03, "JPM": -0.01, "MSFT": 0.02, "NVDA": 0.05, "XOM": -0.02}


def ml(**kw) -> MlSettings:
    return MlSettings(**kw)


CASES = [
    # (settings, expected weights)
    ({"conversion": "rank", "top_n": 2, "max_fraction": 1.0}, {"NVDA": 0.5, "AAPL": 0.5}),
    ({"conversion": "rank", "top_n": 2, "max_fraction": 0.4}, {"NVDA": 0.4, "AAPL": 0.4}),
    ({"conversion": "rank", "top_n": 3, "max_positions": 2, "max_fraction": 1.0},
     {"NVDA": 0.5, "AAPL": 0.5}),
    ({"conversion": "rank", "top_n": 2, "weighting": "score", "max_fraction": 1.0},
     {"NVDA": 0.625, "AAPL": 0.375}),
    ({"conversion": "rank", "top_n": 2, "weighting": "score", "max_fraction": 0.5},
     {"NVDA": 0.5, "AAPL": 0.375}),
    ({"conversion": "rank", "top_n": 5, "max_positions": 5, "weighting": "score",
      "max_fraction": 1.0}, {"NVDA": 0.5, "AAPL": 0.3, "MSFT": 0.2}),
    ({"conversion": "threshold", "threshold": 0.0, "max_fraction": 1.0},
     {"NVDA": 1 / 3, "AAPL": 1 / 3, "MSFT": 1 / 3}),
    ({"conversion": "threshold", "threshold": 0.025, "max_fraction": 1.0},
     {"NVDA": 1 / 3, "AAPL": 1 / 3}),
    ({"conversion": "threshold", "threshold": 0.0, "weighting": "score", "max_fraction": 1.0},
     {"NVDA": 0.5, "AAPL": 0.3, "MSFT": 0.2}),
    ({"conversion": "threshold", "threshold": -0.015, "max_positions": 2, "max_fraction": 1.0},
     {"NVDA": 0.5, "AAPL": 0.5}),
    ({"conversion": "threshold", "threshold": 0.1}, {}),
    ({"conversion": "zscore", "zscore": 0.5, "max_fraction": 1.0},
     {"NVDA": 1 / 3, "AAPL": 1 / 3}),
    ({"conversion": "zscore", "zscore": 1.0, "weighting": "score", "max_fraction": 0.4},
     {"NVDA": 0.4}),
    ({"conversion": "zscore", "zscore": -1.0, "weighting": "score", "max_positions": 5,
      "max_fraction": 1.0}, {"NVDA": 0.5, "AAPL": 0.3, "MSFT": 0.2}),
]


@pytest.mark.parametrize(("kw", "want"), CASES, ids=[f"{c[0]['conversion']}-{i}"
                                                     for i, c in enumerate(CASES)])
def test_target_weights(kw, want):
    got = target_weights(SCORES, ml(**kw))
    assert list(got) == list(want)                     # best score first
    for sym, w in want.items():
        assert got[sym] == pytest.approx(w, abs=1e-12)
    assert sum(got.values()) <= 1.0 + 1e-12


def test_equal_scores_go_to_the_first_symbol_alphabetically_and_equal_scores_have_no_zscore():
    assert select({"XOM": 1.0, "AAPL": 1.0, "JPM": 0.0}, ml(conversion="rank", top_n=1)) == ["AAPL"]
    assert select({"A": 0.01, "B": 0.01, "C": 0.01}, ml(conversion="zscore", zscore=-5)) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_score_that_is_not_finite_is_refused_naming_the_symbol(bad):
    with pytest.raises(ValueError, match="score of JPM"):
        target_weights({"AAPL": 0.1, "JPM": bad}, ml())


# -- orders ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def closes() -> dict[str, Decimal]:
    """Split-adjusted closes of the bundled equities on 2015-06-01 (real data)."""
    panel = load_equity_panel(None, adjustment="split", start="2015-06-01", end="2015-06-01")
    return {s: Decimal(repr(float(d.series.close[0]))) for s, d in panel.items()}


@pytest.fixture(scope="module")
def instruments(closes) -> dict[str, Instrument]:
    return {s: equity_instrument(s) for s in closes}


def test_orders_buy_the_targets_from_flat_in_whole_shares(closes, instruments):
    s = ml(min_order_value=100.0)
    orders = orders_from_targets({"NVDA": 0.4, "AAPL": 0.4}, {}, closes, Decimal(100_000),
                                 instruments, s)
    assert [o.side for o in orders] == [Side.BUY, Side.BUY]
    assert [o.symbol for o in orders] == ["AAPL", "NVDA"]
    for o in orders:
        want = int(Decimal(40_000) / closes[o.symbol])          # rounded down, one share steps
        assert o.quantity == Decimal(want) and isinstance(o.quantity, Decimal)
        assert o.quantity * closes[o.symbol] <= Decimal(40_000)


def test_orders_are_the_difference_sales_first_and_a_dropped_holding_is_sold_whole(closes,
                                                                                  instruments):
    s = ml(min_order_value=100.0)
    aapl_target = int(Decimal(30_000) / closes["AAPL"])
    held = {"AAPL": Decimal(aapl_target + 20), "XOM": Decimal(7), "MSFT": Decimal(0)}
    orders = orders_from_targets({"AAPL": 0.3, "NVDA": 0.3}, held, closes, Decimal(100_000),
                                 instruments, s)
    assert orders == [
        TargetOrder("AAPL", Side.SELL, Decimal(20)),
        # 7 XOM are worth less than min_order_value, but closing a position sells it all
        TargetOrder("XOM", Side.SELL, Decimal(7)),
        TargetOrder("NVDA", Side.BUY, Decimal(int(Decimal(30_000) / closes["NVDA"]))),
    ]


def test_an_adjustment_below_the_minimum_order_value_is_not_sent(closes, instruments):
    target = int(Decimal(40_000) / closes["AAPL"])
    held = {"AAPL": Decimal(target - 1)}              # one share short of the target
    assert orders_from_targets({"AAPL": 0.4}, held, closes, Decimal(100_000), instruments,
                               ml(min_order_value=1000.0)) == []
    assert orders_from_targets({"AAPL": 0.4}, held, closes, Decimal(100_000), instruments,
                               ml(min_order_value=0.0)) == [TargetOrder("AAPL", Side.BUY,
                                                                        Decimal(1))]


def test_quantities_round_down_to_the_instruments_increment():
    inst = {"BTC-USD": Instrument("BTC-USD", "BTC", "USD", Decimal("0.01"), Decimal("0.001"))}
    orders = orders_from_targets({"BTC-USD": 0.5}, {}, {"BTC-USD": Decimal(60000)},
                                 Decimal(10000), inst, ml(min_order_value=0.0))
    # 5000 / 60000 = 0.08333... BTC: down to 0.083
    assert orders == [TargetOrder("BTC-USD", Side.BUY, Decimal("0.083"))]


@pytest.mark.parametrize(("args", "match"), [
    ({"targets": {"AAPL": 1.5}}, "target weight of AAPL"),
    ({"positions": {"AAPL": Decimal(-3)}}, "position of AAPL"),
    ({"prices": {}}, "price of AAPL: missing"),
    ({"equity": Decimal(0)}, "equity"),
    ({"instruments": {}}, "instrument of AAPL"),
])
def test_bad_order_inputs_are_named(closes, instruments, args, match):
    base = {"targets": {"AAPL": 0.4}, "positions": {}, "prices": closes,
            "equity": Decimal(100_000), "instruments": instruments, "settings": ml()}
    with pytest.raises(ValueError, match=match):
        orders_from_targets(**{**base, **args})


# -- the scores file, traded by the rank strategy -----------------------------------------
@pytest.mark.parametrize("kw", [
    {"conversion": "rank", "top_n": 2, "max_fraction": 0.4},
    {"conversion": "rank", "top_n": 3, "weighting": "score", "max_fraction": 0.45},
    {"conversion": "threshold", "threshold": 0.0, "max_positions": 3, "max_fraction": 0.5},
    {"conversion": "zscore", "zscore": 0.3, "weighting": "score", "max_positions": 2,
     "max_fraction": 0.6},
])
def test_the_rank_strategy_on_the_scores_file_holds_exactly_the_targets(tmp_path, kw):
    """Per session and symbol: a flat symbol enters iff it has a target, with that weight;
    a holding is sold iff it has none (momentum scores of the real bundled bars)."""
    settings = ml(**kw)
    panel = {s: d.series for s, d in load_equity_panel(None, adjustment="split",
                                                       start="2015-01-02",
                                                       end="2015-03-31").items()}
    rows = []
    for sym, bars in panel.items():
        close = pd.Series(bars.close)
        rows.append(pd.DataFrame({"as_of": pd.to_datetime(bars.ts, unit="s"), "symbol": sym,
                                  "score": (close / close.shift(10) - 1).to_numpy()}))
    preds = pd.concat(rows).dropna().reset_index(drop=True)
    path = write_scores_file(preds, tmp_path / "scores.csv", settings)
    strat = build_strategy("rank", rank_params(settings, path))
    targets = {day: target_weights(g.set_index("symbol")["score"], settings)
               for day, g in preds.groupby("as_of")}
    assert len({frozenset(t) for t in targets.values()}) > 3     # the selection changes
    if settings.conversion != "rank":                              # and leaves slots empty
        assert any(len(t) < slots(settings) for t in targets.values())
    checked = 0
    for sym, bars in panel.items():
        frame = strat.prepare(bars)
        days = pd.to_datetime(bars.ts, unit="s")
        for t, day in enumerate(days):
            if day not in targets:
                continue
            want = targets[day].get(sym)
            enter = strat.decide(frame, t, False)
            exit_ = strat.decide(frame, t, True)
            assert (enter.action is Action.ENTER_LONG) == (want is not None), (sym, day)
            assert (exit_.action is Action.EXIT) == (want is None), (sym, day)
            if want is not None:
                assert enter.weight == pytest.approx(want, abs=1e-12)
            checked += 1
    assert checked == len(preds)


def test_the_scores_file_fills_empty_slots_and_keeps_the_models_scores(tmp_path):
    settings = ml(conversion="threshold", threshold=0.025, max_positions=3)
    preds = pd.DataFrame({"as_of": "2015-06-01", "symbol": list(SCORES),
                          "score": list(SCORES.values())})
    frame = scores_frame(preds, settings)
    assert list(frame["symbol"]) == [*sorted(SCORES), f"{EMPTY_SLOT}1"]
    assert frame.set_index("symbol").loc["NVDA", "score"] == 0.05
    assert (frame.set_index("symbol")["target"] > 0).sum() == 2
    path = write_scores_file(preds, tmp_path / "s.csv", settings)
    back = pd.read_csv(path)
    assert list(back.columns) == ["timestamp", "symbol", "score", "target"]
    assert back["timestamp"].unique().tolist() == ["2015-06-01"]
    assert np.isnan(back["score"].iloc[-1])
