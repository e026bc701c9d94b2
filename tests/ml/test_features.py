"""Features and labels (ml/features.py) on the bundled equities: causality (noise after a
date leaves every feature at or before it unchanged), the label's definition, the
feature-row hash's byte format, and the universe file checks."""

from __future__ import annotations

import hashlib
import struct

import numpy as np
import pandas as pd
import pytest

from tradewarden.data.errors import DataError
from tradewarden.ml.features import (
    FEATURES,
    PANEL_COLUMNS,
    compute_features,
    data_hash,
    feature_hash,
    forward_returns,
    load_universe,
)
from tradewarden.ml.settings import MlSettings

CUT = 1_404_172_800          # 2014-07-01, a session of the bundled panel


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return load_universe(MlSettings())


def _noise_after(panel: pd.DataFrame, cut: int, seed: int = 7) -> pd.DataFrame:
    """The panel with every bar after ``cut`` replaced by random (valid) OHLCV."""
    rng = np.random.default_rng(seed)
    out = panel.copy()
    later = (out["ts"] > cut).to_numpy()
    n = int(later.sum())
    close = rng.uniform(5, 500, n)
    out.loc[later, "open"] = close * rng.uniform(0.95, 1.05, n)
    out.loc[later, "high"] = np.maximum(out.loc[later, "open"], close) * 1.02
    out.loc[later, "low"] = np.minimum(out.loc[later, "open"], close) * 0.98
    out.loc[later, "close"] = close
    out.loc[later, "volume"] = rng.uniform(1e5, 1e9, n)
    return out


def test_bundled_universe_is_the_adjusted_panel(panel: pd.DataFrame) -> None:
    assert tuple(panel.columns) == PANEL_COLUMNS
    assert sorted(panel["symbol"].unique()) == ["AAPL", "JPM", "MSFT", "NVDA", "XOM"]
    assert (panel["ts"] % 86_400 == 0).all()                 # date labels, 00:00 UTC
    aapl = panel[panel["symbol"] == "AAPL"].set_index("ts")["close"]
    # AAPL's 7:1 split on 2014-06-09 is adjusted away: no -85% overnight move
    assert aapl.pct_change().min() > -0.2
    assert len(load_universe(MlSettings(universe=("msft", "XOM")))["symbol"].unique()) == 2


def test_features_are_causal(panel: pd.DataFrame) -> None:
    clean = compute_features(panel)
    noisy = compute_features(_noise_after(panel, CUT))
    before = clean.index.get_level_values("ts") <= CUT
    pd.testing.assert_frame_equal(clean[before], noisy[before], check_exact=True)
    after = clean.index.get_level_values("ts") > CUT
    assert not np.allclose(clean[after].fillna(0).to_numpy(), noisy[after].fillna(0).to_numpy())


def test_features_have_the_documented_shape_and_values(panel: pd.DataFrame) -> None:
    feats = compute_features(panel)
    assert tuple(feats.columns) == FEATURES
    assert feats.index.names == ["ts", "symbol"] and feats.index.is_monotonic_increasing
    assert len(feats) == len(panel)
    msft = panel[panel["symbol"] == "MSFT"].reset_index(drop=True)
    row = feats.xs("MSFT", level="symbol").iloc[130]
    c = msft["close"]
    assert row["ret_5"] == pytest.approx(c[130] / c[125] - 1, rel=1e-12)
    assert row["mom_120_20"] == pytest.approx(c[110] / c[10] - 1, rel=1e-12)
    assert row["dist_sma_20"] == pytest.approx(c[130] / c[111:131].mean() - 1, rel=1e-9)
    assert row["vol_20"] == pytest.approx(np.log(c).diff()[111:131].std(ddof=1), rel=1e-9)
    assert row["volume_ratio_20"] == pytest.approx(
        msft["volume"][130] / msft["volume"][110:130].mean(), rel=1e-9)
    assert 0 < row["rsi_14"] < 100 and 0 < row["atr_14_rel"] < 0.2
    # warm-up: the first 120 sessions of a symbol lack the momentum feature
    first = feats.xs("MSFT", level="symbol")["mom_120_20"]
    assert first.iloc[:120].isna().all() and first.iloc[120:].notna().all()


def test_forward_returns_look_h_sessions_ahead(panel: pd.DataFrame) -> None:
    y = forward_returns(panel, 5)
    xom = panel[panel["symbol"] == "XOM"].reset_index(drop=True)
    lab = y.xs("XOM", level="symbol")
    assert lab.iloc[10] == pytest.approx(xom["close"][15] / xom["close"][10] - 1, rel=1e-12)
    assert lab.iloc[-5:].isna().all() and lab.iloc[:-5].notna().all()
    with pytest.raises(ValueError, match="horizon_days"):
        forward_returns(panel, 0)


def test_feature_hash_byte_format_is_stable() -> None:
    row = [0.5, -0.0, float("nan"), 1e-300, 3.0]
    expected = hashlib.sha256(b"tw-ml-features-v1\n" + struct.pack(
        ">5d", 0.5, 0.0, float("nan"), 1e-300, 3.0)).hexdigest()
    assert feature_hash(row) == expected
    assert feature_hash(np.array(row)) == expected
    # another NaN bit pattern (negative quiet NaN) hashes like the canonical one
    neg_nan = struct.unpack(">d", bytes.fromhex("fff8000000000000"))[0]
    assert feature_hash([0.5, 0.0, neg_nan, 1e-300, 3.0]) == expected
    assert feature_hash([0.5, 0.0, 0.0, 1e-300, 3.0]) != expected
    named = dict(zip(FEATURES, range(len(FEATURES))))
    assert feature_hash(named) == feature_hash(pd.Series(named)) == \
        feature_hash([float(i) for i in range(len(FEATURES))])
    with pytest.raises(ValueError, match="missing: ret_1"):
        feature_hash({k: v for k, v in named.items() if k != "ret_1"})


def test_data_hash_ignores_row_order_but_not_values(panel: pd.DataFrame) -> None:
    small = panel[panel["ts"] <= 1_325_808_000]                 # 2012-01-03 .. 2012-01-06
    digest = hashlib.sha256(b"tw-ml-panel-v2\n")
    for symbol, g in small.sort_values(["symbol", "ts"]).groupby("symbol", sort=True):
        digest.update(symbol.encode() + b"\n" + struct.pack(">q", len(g)))
        for r in g.itertuples():
            digest.update(struct.pack(">q5d", r.ts, r.open, r.high, r.low, r.close, r.volume))
    assert data_hash(small) == digest.hexdigest()
    h = data_hash(panel)
    assert data_hash(panel.sample(frac=1.0, random_state=1)) == h
    changed = panel.copy()
    changed.loc[17, "volume"] += 1
    assert data_hash(changed) != h


def test_user_universe_files_and_their_bad_rows(tmp_path, panel: pd.DataFrame) -> None:
    from tradewarden.data.equities import bundled_equity_path, load_equity_panel
    from tradewarden.ml.features import panel_from_bars

    # a file with a split column is adjusted like the bundled panel
    raw = pd.read_csv(bundled_equity_path("equities"))
    split_file = tmp_path / "with_splits.csv"
    raw[raw["symbol"].isin(["JPM", "XOM"])].to_csv(split_file, index=False)
    loaded = load_universe(MlSettings(data=str(split_file)))
    expected = panel[panel["symbol"].isin(["JPM", "XOM"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(loaded, expected)
    # a file without one is taken as adjusted already, rounding of the adjustment and all
    adjusted = expected.copy()
    adjusted["timestamp"] = pd.to_datetime(adjusted.pop("ts"), unit="s").dt.strftime("%Y-%m-%d")
    adjusted.to_csv(tmp_path / "adjusted.csv", index=False)
    again = load_universe(MlSettings(data=str(tmp_path / "adjusted.csv")))
    np.testing.assert_allclose(again["close"], expected["close"], rtol=0)
    np.testing.assert_allclose(again["high"], expected["high"], rtol=1e-9)
    plain = panel_from_bars(load_equity_panel(None, ["JPM", "XOM"]))
    plain["timestamp"] = pd.to_datetime(plain.pop("ts"), unit="s").dt.strftime("%Y-%m-%d")
    path = tmp_path / "universe.csv"
    plain.to_csv(path, index=False)
    assert sorted(load_universe(MlSettings(data=str(path)))["symbol"].unique()) == ["JPM", "XOM"]
    bad = plain.copy()
    bad.iloc[3, bad.columns.get_loc("close")] = -1.0
    bad.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"universe\.csv.*row 4.*close"):
        load_universe(MlSettings(data=str(path)))
    plain.to_csv(path, index=False)
    with pytest.raises(DataError, match="AMZN"):
        load_universe(MlSettings(data=str(path), universe=("AMZN",)))
