"""Training (ml/train.py) on the bundled equities: nothing after the as-of date is read,
fits are deterministic, and the validation holds one entry per walk-forward split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradewarden.ml.features import FEATURES, compute_features
from tradewarden.ml.settings import MlSettings
from tradewarden.ml.train import fit, train, training_rows

END = 1_420_070_400            # 2015-01-01 (a holiday: the last session read is 2014-12-31)
FAST = MlSettings(n_splits=3, train_years=1.0)
TREES = MlSettings(algorithm="lightgbm", n_estimators=20, n_splits=2, train_years=1.0)


def _noise_after(panel: pd.DataFrame, cut: int) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    out = panel.copy()
    later = (out["ts"] > cut).to_numpy()
    factor = rng.uniform(0.5, 2.0, int(later.sum()))
    for col in ("open", "high", "low", "close"):
        out.loc[later, col] = out.loc[later, col].to_numpy() * factor
    out.loc[later, "volume"] = out.loc[later, "volume"].to_numpy()[::-1]
    return out


@pytest.mark.parametrize("settings", [FAST, TREES], ids=["ridge", "lightgbm"])
def test_training_reads_nothing_after_the_as_of_date(bundled_panel, settings) -> None:
    a = train(bundled_panel, settings, end_ts=END)
    b = train(_noise_after(bundled_panel, END), settings, end_ts=END)
    assert a.end_ts == b.end_ts == END - 86_400                # 2014-12-31
    assert a.data_hash == b.data_hash
    assert a.validation == b.validation
    rows = compute_features(bundled_panel).dropna()
    np.testing.assert_array_equal(a.estimator.predict(rows.to_numpy()),
                                  b.estimator.predict(rows.to_numpy()))
    # and the labels of the last training rows end at the as-of session, not later
    last_feature_ts = a.training_window[1]
    sessions = np.sort(bundled_panel["ts"].unique())
    i = int(np.searchsorted(sessions, last_feature_ts))
    assert sessions[i + settings.horizon_days] == a.end_ts


def test_fits_are_deterministic(bundled_panel) -> None:
    x, y = training_rows(bundled_panel, 5, end_ts=END, train_years=1.0)
    for settings in (FAST, TREES):
        p1 = fit(x, y, settings).predict(x.to_numpy())
        p2 = fit(x, y, settings).predict(x.to_numpy())
        np.testing.assert_array_equal(p1, p2)
        assert np.std(p1) > 0


def test_validation_has_every_split_with_its_figures(bundled_panel) -> None:
    result = train(bundled_panel, FAST, end_ts=END)
    splits = result.validation["splits"]
    assert len(splits) == 3 and result.features == FEATURES
    assert result.params == {"algorithm": "ridge", "horizon_days": 5, "alpha": 10.0}
    for s in splits:
        assert s["train_end"] < s["test_start"] <= s["test_end"]
        assert s["n_train"] > 0 and s["n_test"] > 0
        assert -1 <= s["ic"] <= 1 and 0 <= s["hit_rate"] <= 1 and np.isfinite(s["spread"])
    assert result.validation["mean"]["ic"] == pytest.approx(np.mean([s["ic"] for s in splits]))
    start, end = result.training_window
    assert end - start <= 366 * 86_400 and result.n_rows == len(result.train_sample)
    assert list(result.train_sample.columns) == list(FEATURES)
    assert not result.train_sample.isna().any().any()


def test_too_little_history_is_one_clear_error(bundled_panel) -> None:
    with pytest.raises(ValueError, match="complete training rows"):
        train(bundled_panel, FAST, end_ts=1_330_000_000)         # 2012-02-23: warm-up only
    with pytest.raises(ValueError, match="no bars at or before"):
        train(bundled_panel, FAST, end_ts=1_000_000_000)
    with pytest.raises(ValueError, match="lack column"):
        fit(pd.DataFrame({"ret_1": [0.0] * 20}), pd.Series([0.0] * 20), FAST)
