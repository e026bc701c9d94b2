"""The walk-forward backtest (ml/backtest.py) and the proof that it does not look ahead:
replacing every bar after a date D with noise leaves every prediction and every trade
before D unchanged."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, select

from tradewarden.ledger import schema
from tradewarden.ml.backtest import BacktestRefused, backtest, equal_weight_return
from tradewarden.ml.features import load_universe
from tradewarden.ml.settings import MlSettings

UNIVERSE = ("AAPL", "JPM", "XOM")
LAST = "2013-02-28"
START = "2012-10-01"                     # 9 months after the data starts: 120 sessions of warm-up
D = pd.Timestamp("2013-01-15")           # bars after this session become noise
D_TS = int(D.value // 10**9)
#: The first session of the replays. The end-of-data liquidation of a strategy without
#: warm-up is recorded at ts 0 by the engine's batch path (reported to the lead), so
#: every comparison below starts here.
START_TS = int(pd.Timestamp(START).value // 10**9)


def _write(panel: pd.DataFrame, path) -> None:
    # high and low widened by the float rounding of the adjustment, as a data file must be
    panel = panel.assign(high=panel[["open", "high", "close"]].max(axis=1),
                         low=panel[["open", "low", "close"]].min(axis=1))
    frame = panel.assign(timestamp=pd.to_datetime(panel["ts"], unit="s").dt.strftime("%Y-%m-%d"))
    frame[["timestamp", "symbol", "open", "high", "low", "close", "volume"]].to_csv(path,
                                                                                   index=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The real bundled bars of three symbols (split- and dividend-adjusted, 2012-01-03 ..
    2013-02-28), and the same file with every bar after D replaced by a random walk."""
    root = tmp_path_factory.mktemp("universe")
    panel = load_universe(MlSettings(universe=UNIVERSE))
    panel = panel[panel["ts"] <= int(pd.Timestamp(LAST).value // 10**9)].reset_index(drop=True)
    _write(panel, root / "real.csv")
    rng = np.random.default_rng(7)
    noisy = panel.copy()
    after = noisy["ts"] > D_TS
    n = int(after.sum())
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.05, n)))
    opens = close * np.exp(rng.normal(0, 0.02, n))
    noisy.loc[after, "open"] = opens
    noisy.loc[after, "close"] = close
    noisy.loc[after, "high"] = np.maximum(opens, close) * (1 + rng.uniform(0, 0.03, n))
    noisy.loc[after, "low"] = np.minimum(opens, close) * (1 - rng.uniform(0, 0.03, n))
    noisy.loc[after, "volume"] = rng.uniform(1e5, 1e8, n).round()
    _write(noisy, root / "noise.csv")
    return root / "real.csv", root / "noise.csv"


@pytest.fixture(scope="module")
def runs(files, tmp_path_factory):
    root = tmp_path_factory.mktemp("bt")
    db = str(root / "ledger.db")
    out = {}
    for name, path in zip(("real", "noise"), files):
        ml = MlSettings(data=str(path), retrain_every_days=20, train_years=1.0, top_n=1,
                        max_fraction=0.9)
        out[name] = backtest(ml, db, start=START, out_dir=root / "scores")
    return db, out


def _rows(db: str, table, *, where, order, cols):
    eng = create_engine(f"sqlite:///{db}")
    with eng.connect() as conn:
        return [tuple(r) for r in conn.execute(select(*(table.c[c] for c in cols))
                                               .where(where).order_by(*order))]


def _predictions(db: str, result, before: bool):
    t = schema.ml_predictions
    cut = (t.c.as_of_ts < D_TS) if before else (t.c.as_of_ts >= D_TS + 86_400)
    rows = _rows(db, t, where=t.c.model_version.startswith(f"bt-{result.backtest_id}-") & cut
                 & (t.c.job == "backtest"), order=(t.c.as_of_ts, t.c.symbol),
                 cols=("model_version", "as_of_ts", "symbol", "score", "rank", "feature_hash"))
    # the version names the backtest (its data differ) and the retraining date (the same)
    return [(v.rsplit("-", 1)[1], *rest) for v, *rest in rows]


def test_noise_after_d_changes_no_prediction_before_d(runs):
    db, res = runs
    assert res["real"].backtest_id != res["noise"].backtest_id
    real, noise = _predictions(db, res["real"], True), _predictions(db, res["noise"], True)
    assert len(real) == len(UNIVERSE) * 71     # 71 sessions 2012-10-01 .. 2013-01-14 (Sandy: 2)
    assert real == noise
    # ... while after D the noise is seen: the scores differ
    after_real = _predictions(db, res["real"], False)
    after_noise = _predictions(db, res["noise"], False)
    assert len(after_real) == len(after_noise) > 0
    assert [r[3] for r in after_real] != [r[3] for r in after_noise]


def test_noise_after_d_changes_no_decision_order_fill_or_trade_before_d(runs):
    db, res = runs
    d, o, f, tr = schema.decisions, schema.orders, schema.fills, schema.trades

    def ledger_before(run_id: str):
        return {
            "decisions": _rows(db, d, where=(d.c.run_id == run_id) & d.c.ts.between(START_TS, D_TS - 1),
                               order=(d.c.seq,), cols=("ts", "symbol", "action", "reason",
                                                       "close", "equity", "x1", "x2", "x3")),
            "orders": _rows(db, o, where=(o.c.run_id == run_id)
                            & o.c.created_ts.between(START_TS, D_TS - 1),
                            order=(o.c.created_ts, o.c.symbol),
                            cols=("symbol", "side", "quantity", "created_ts", "status")),
            "fills": _rows(db, f, where=(f.c.run_id == run_id) & f.c.ts.between(START_TS, D_TS - 1),
                           order=(f.c.ts, f.c.symbol), cols=("ts", "symbol", "side", "quantity",
                                                             "price", "fee")),
            "trades": _rows(db, tr, where=(tr.c.run_id == run_id)
                            & tr.c.exit_ts.between(START_TS, D_TS - 1),
                            order=(tr.c.exit_ts, tr.c.symbol),
                            cols=("symbol", "entry_ts", "exit_ts", "quantity", "pnl")),
        }

    real, noise = ledger_before(res["real"].run_id), ledger_before(res["noise"].run_id)
    assert len(real["decisions"]) == len(UNIVERSE) * 71
    assert len(real["fills"]) >= 4 and len(real["trades"]) >= 2     # it traded before D
    assert real == noise
    # the rank strategy's decisions carry the scores file's target and rank: the runs
    # traded the predictions, and differ once the noise starts
    after = [_rows(db, d, where=(d.c.run_id == r.run_id) & (d.c.ts > D_TS), order=(d.c.seq,),
                   cols=("x1",)) for r in (res["real"], res["noise"])]
    assert after[0] != after[1]


def test_the_result_measures_the_predictions_and_the_run(runs):
    _db, res = runs
    r = res["real"]
    assert (r.start, r.end) == (date(2012, 10, 1), date(2013, 2, 28))
    assert r.retrains == 6 and r.sessions == 102 and r.written == 3 * 102
    preds = r.predictions
    # the last horizon_days sessions have no realised return yet
    assert preds["realised"].isna().sum() == 3 * 5
    assert r.metrics["n"] == 3 * 97 and -1 <= r.metrics["ic"] <= 1
    assert 0 <= r.metrics["hit_rate"] <= 1
    assert np.isfinite(r.run_return) and np.isfinite(r.equal_weight_return)
    back = pd.read_csv(r.scores_path)
    assert set(back["symbol"]) == set(UNIVERSE) and back["target"].gt(0).groupby(
        back["timestamp"]).sum().eq(1).all()          # top_n = 1: one symbol to hold a day


def test_running_the_same_backtest_again_records_no_second_set_of_predictions(runs, files):
    db, res = runs
    again = backtest(MlSettings(data=str(files[0]), retrain_every_days=20, train_years=1.0,
                                top_n=1, max_fraction=0.9), db, start="2013-02-01",
                     out_dir=str(res["real"].scores_path.parent))
    assert again.written == again.sessions * 3
    repeat = backtest(MlSettings(data=str(files[0]), retrain_every_days=20, train_years=1.0,
                                 top_n=1, max_fraction=0.9), db, start="2013-02-01",
                      out_dir=str(res["real"].scores_path.parent))
    assert repeat.backtest_id == again.backtest_id and repeat.written == 0
    assert repeat.run_id != again.run_id


def test_equal_weight_return_is_the_mean_of_each_symbols_buy_and_hold():
    closes = pd.DataFrame({"A": [10.0, 11.0, 12.0], "B": [np.nan, 20.0, 15.0]})
    assert equal_weight_return(closes) == pytest.approx(((12 / 10) + (15 / 20)) / 2 - 1)


@pytest.mark.parametrize(("kw", "match"), [
    ({"start": "2013-03-05"}, r"fewer than two sessions to predict in 2013-03-05"),
    ({"start": "2012-02-01"}, r"cannot train for 2012-02-01"),
    ({"start": "next week"}, r"invalid --start"),
])
def test_a_range_outside_what_the_data_allows_is_refused_in_one_line(files, tmp_path, kw, match):
    with pytest.raises(BacktestRefused, match=match) as err:
        backtest(MlSettings(data=str(files[0])), str(tmp_path / "l.db"), out_dir=tmp_path, **kw)
    assert "\n" not in str(err.value) and str(files[0]) in str(err.value) or "invalid" in str(
        err.value)
    assert not (tmp_path / "l.db").exists()          # nothing recorded
