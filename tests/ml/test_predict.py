"""The daily prediction job (ml/predict.py) on the bundled universe with a registered
production model: features as of a session's close, scores, ranks, hashes, the ledger
rows, idempotence, and the refusals."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from tradewarden.ledger import Ledger
from tradewarden.ml.features import FEATURES, compute_features, feature_hash
from tradewarden.ml.predict import (
    PredictionRefused,
    predict,
    predictions_frame,
    recorded_predictions,
    session_close_ts,
    session_label,
    update_scores_file,
)
from tradewarden.ml.registry import ModelRegistry
from tradewarden.ml.settings import MlSettings
from tradewarden.ml.train import fit, model_params, training_rows

SETTINGS = MlSettings(n_splits=2, train_years=1.0)
TRAIN_END = 1_420_070_400                   # 2015-01-01: the model sees nothing later
JUNE_1_CLOSE = 1_433_188_800                # 2015-06-01 16:00 New York = 20:00 UTC


@pytest.fixture(scope="module")
def store(tmp_path_factory, _mlflow_template, bundled_panel):
    """A ledger directory whose mlflow.db (the default registry beside the ledger) holds
    one ridge version trained on the bundled bars up to 2015-01-01, in production."""
    root = tmp_path_factory.mktemp("predict")
    shutil.copyfile(_mlflow_template, root / "mlflow.db")
    x, y = training_rows(bundled_panel, SETTINGS.horizon_days, end_ts=TRAIN_END,
                         train_years=SETTINGS.train_years)
    model = fit(x, y, SETTINGS)
    times = x.index.get_level_values("ts")
    registry = ModelRegistry(f"sqlite:///{root / 'mlflow.db'}")
    version = registry.register(model, name=SETTINGS.model_name, features=tuple(x.columns),
                                params=model_params(SETTINGS),
                                training_window=(int(times.min()), int(times.max())),
                                validation={"splits": [], "mean": {}}, data_hash="0" * 64,
                                train_sample=x)
    led = Ledger(root / "ledger.db")
    registry.promote(SETTINGS.model_name, version, reason="test", actor="test", ledger=led,
                     ts=TRAIN_END)
    led.close()
    return root, model


@pytest.fixture
def ledger(store):
    led = Ledger(store[0] / "ledger.db")
    yield led
    led.close()


def test_session_closes_are_utc_epoch_seconds_of_the_nyse_close():
    assert session_close_ts("2015-06-01") == JUNE_1_CLOSE
    assert session_close_ts("2015-01-02") == 1_420_232_400      # 16:00 EST = 21:00 UTC
    assert session_close_ts("2015-11-27") == 1_448_647_200      # the day after Thanksgiving: 13:00
    assert session_label(JUNE_1_CLOSE) == 1_433_116_800          # 2015-06-01 00:00 UTC
    with pytest.raises(PredictionRefused, match=r"2015-06-06 \(Saturday\) is not an NYSE session"):
        session_close_ts("2015-06-06")
    with pytest.raises(PredictionRefused, match="2015-12-25"):
        session_close_ts("2015-12-25")


def test_predict_scores_the_universe_as_of_the_close_and_records_it(store, ledger,
                                                                    bundled_panel):
    _root, model = store
    out = predict(SETTINGS, ledger, as_of="2015-06-01")
    assert out.attrs == {"written": 5, "already_recorded": False}
    assert sorted(out["symbol"]) == ["AAPL", "JPM", "MSFT", "NVDA", "XOM"]
    assert list(out["rank"]) == [1, 2, 3, 4, 5]
    assert out["score"].is_monotonic_decreasing
    assert set(out["as_of_ts"]) == {JUNE_1_CLOSE} and set(out["model_version"]) == {"1"}
    # the scores are the model's on the features of that session, computed from bars up to it
    label = session_label(JUNE_1_CLOSE)
    feats = compute_features(bundled_panel[bundled_panel["ts"] <= label]).xs(label, level="ts")
    feats = feats.loc[out["symbol"]]
    want = model.predict(feats[list(FEATURES)].to_numpy())
    np.testing.assert_allclose(out["score"].to_numpy(), want, rtol=1e-12)
    assert list(out["feature_hash"]) == [feature_hash(feats.loc[s]) for s in out["symbol"]]
    rows = recorded_predictions(ledger, SETTINGS.model_name, as_of_ts=JUNE_1_CLOSE)
    assert len(rows) == 5 and set(rows["job"]) == {"predict"}
    assert dict(zip(rows["symbol"], rows["rank"])) == dict(zip(out["symbol"], out["rank"]))


def test_running_the_job_again_for_the_same_session_writes_nothing(store, ledger):
    predict(SETTINGS, ledger, as_of="2015-06-02")
    again = predict(SETTINGS, ledger, as_of="2015-06-02")
    assert again.attrs == {"written": 0, "already_recorded": True}
    assert len(recorded_predictions(ledger, SETTINGS.model_name,
                                    as_of_ts=session_close_ts("2015-06-02"))) == 5


def test_recorded_predictions_become_the_rank_strategys_scores_file(store, ledger, tmp_path):
    for day in ("2015-06-03", "2015-06-04"):
        predict(SETTINGS, ledger, as_of=day)
    frame = predictions_frame(recorded_predictions(ledger, SETTINGS.model_name))
    assert {"2015-06-03", "2015-06-04"} <= set(frame["as_of"].dt.strftime("%Y-%m-%d"))
    path = update_scores_file(SETTINGS, ledger, tmp_path / "scores.csv")
    back = pd.read_csv(path)
    day = back[back["timestamp"] == "2015-06-04"].set_index("symbol")
    preds = frame[frame["as_of"] == "2015-06-04"].set_index("symbol")["score"]
    assert day.loc[preds.index, "score"].to_numpy() == pytest.approx(preds.to_numpy())
    assert (day["target"] > 0).sum() == SETTINGS.top_n


def test_no_production_version_is_refused(tmp_path, mlflow_db):
    mlflow_db(tmp_path)
    led = Ledger(tmp_path / "ledger.db")
    try:
        with pytest.raises(PredictionRefused, match="model 'equity_rank' has no production "
                                                    "version"):
            predict(SETTINGS, led, as_of="2015-06-01")
        with pytest.raises(PredictionRefused, match="no predictions of model 'equity_rank'"):
            update_scores_file(SETTINGS, led, tmp_path / "scores.csv")
        assert not (tmp_path / "scores.csv").exists()
    finally:
        led.close()


def test_data_that_does_not_reach_the_as_of_date_is_refused_naming_file_and_last_date(
        store, ledger):
    with pytest.raises(PredictionRefused) as err:
        predict(SETTINGS, ledger, as_of="2016-01-04")
    assert str(err.value) == ("bundled:us_equities_daily_alphavantage_AAPL-JPM-MSFT-NVDA-XOM"
                              "_2012-2015.csv.gz: AAPL does not reach the as-of date "
                              "2016-01-04 (its last date is 2015-12-31)")


def test_a_user_file_without_the_sessions_bar_is_refused_naming_it(store, ledger, tmp_path,
                                                                   bundled_panel):
    june_1, june_2 = session_label(JUNE_1_CLOSE), session_label(JUNE_1_CLOSE) + 86_400
    panel = bundled_panel[bundled_panel["ts"] <= june_2]
    panel = panel[~((panel["symbol"] == "JPM") & (panel["ts"] == june_1))]
    path = tmp_path / "universe.csv"
    # the adjusted bars, with high and low widened by the float rounding of the adjustment
    panel = panel.assign(high=panel[["open", "high", "close"]].max(axis=1),
                         low=panel[["open", "low", "close"]].min(axis=1))
    panel.assign(timestamp=pd.to_datetime(panel["ts"], unit="s").dt.strftime("%Y-%m-%d")) \
        .drop(columns="ts").to_csv(path, index=False)
    before = recorded_predictions(ledger, SETTINGS.model_name)
    with pytest.raises(PredictionRefused) as err:
        predict(SETTINGS.model_copy(update={"data": str(path)}), ledger, as_of="2015-06-01")
    assert str(err.value) == (f"{path}: JPM has no bar of the as-of date 2015-06-01 (its rows "
                              "skip that session)")
    with pytest.raises(PredictionRefused, match=rf"^{path}: AAPL does not reach the as-of "
                                                r"date 2015-06-03 \(its last date is 2015-06-02\)$"):
        predict(SETTINGS.model_copy(update={"data": str(path)}), ledger, as_of="2015-06-03")
    pd.testing.assert_frame_equal(recorded_predictions(ledger, SETTINGS.model_name), before)


def test_features_not_defined_yet_are_refused(store, ledger):
    with pytest.raises(PredictionRefused, match=r"features of AAPL as of 2012-02-01 are not "
                                                r"all defined \(.*mom_120_20"):
        predict(SETTINGS, ledger, as_of="2012-02-01")
