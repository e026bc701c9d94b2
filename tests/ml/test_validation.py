"""Walk-forward splits with a purge and an embargo (ml/validation.py), property-tested with
hypothesis: no training label reaches a test window, nothing trains in an embargo, tests
walk forward; and the split metrics against scipy on hand-made cross-sections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from tradewarden.ml.validation import split_metrics, walk_forward_splits

DAY = 86_400


@st.composite
def layouts(draw):
    n_sessions = draw(st.integers(8, 200))
    n_symbols = draw(st.integers(1, 4))
    n_splits = draw(st.integers(1, min(6, n_sessions - 1)))
    horizon = draw(st.integers(1, 10))
    purge = horizon + draw(st.integers(0, 5))
    embargo = draw(st.integers(0, 10))
    train_days = draw(st.one_of(st.none(), st.integers(1, 100)))
    # sessions with gaps (weekends, holidays): increasing date labels
    steps = draw(st.lists(st.integers(1, 4), min_size=n_sessions, max_size=n_sessions))
    sessions = 1_600_000_000 // DAY * DAY + np.cumsum(steps) * DAY
    times = np.repeat(sessions, n_symbols)
    order = draw(st.permutations(range(times.shape[0])))
    return times[list(order)], n_splits, horizon, purge, embargo, train_days


@settings(max_examples=60, deadline=None)      # deadline: no timing in unit tests
@given(layouts())
def test_no_training_label_overlaps_a_test_window_and_embargo_holds(layout) -> None:
    times, n_splits, horizon, purge, embargo, train_days = layout
    splits = walk_forward_splits(times, n_splits=n_splits, purge_days=purge,
                                 embargo_days=embargo, horizon_days=horizon,
                                 train_days=train_days)
    sessions = np.unique(times)
    pos = {int(t): i for i, t in enumerate(sessions)}          # session -> position
    assert len(splits) == n_splits
    windows = [(pos[int(times[sp.test].min())], pos[int(times[sp.test].max())])
               for sp in splits]
    # the test windows are consecutive, non-empty and walk forward to the last session
    assert windows[-1][1] == len(sessions) - 1
    for (s0, e0), (s1, _e1) in zip(windows, windows[1:]):
        assert s1 == e0 + 1
    for sp, (s, e) in zip(splits, windows):
        assert sp.test_start == sessions[s] and sp.test_end == sessions[e]
        # every row of the test window's sessions is tested
        assert sp.test.shape[0] == int(((times >= sessions[s]) & (times <= sessions[e])).sum())
        assert np.intersect1d(sp.train, sp.test).size == 0
        train_pos = np.array([pos[int(t)] for t in times[sp.train]], dtype=int)
        # purge: a training label [i, i+h] ends before the test window starts
        assert (train_pos + horizon < s).all()
        assert (train_pos < s - purge).all()
        # embargo: no training session within `embargo` sessions after any test window
        for _s2, e2 in windows:
            assert not ((train_pos > e2) & (train_pos <= e2 + embargo)).any()
        if train_days is not None and train_pos.size:
            assert train_pos.min() >= s - purge - train_days
        if sp.train.size:
            assert sp.train_end == sessions[train_pos.max()]


def test_splits_on_a_known_layout() -> None:
    times = np.arange(60) * DAY                 # 60 sessions, one symbol
    splits = walk_forward_splits(times, n_splits=2, purge_days=5, embargo_days=3,
                                 horizon_days=5)
    # blocks of 20 sessions: test 20-39 and 40-59
    assert [(int(sp.test[0]), int(sp.test[-1])) for sp in splits] == [(20, 39), (40, 59)]
    assert splits[0].train.tolist() == list(range(0, 15))
    # the second split trains on 0-34 (purged from 35); the embargo after the first test
    # window (40-42) lies inside the second test window, so it removes nothing here
    assert splits[1].train.tolist() == list(range(0, 35))
    rolled = walk_forward_splits(times, n_splits=2, purge_days=5, embargo_days=3,
                                 horizon_days=5, train_days=10)
    assert rolled[1].train.tolist() == list(range(25, 35))


def test_embargo_removes_sessions_after_an_earlier_test_window() -> None:
    times = np.arange(80) * DAY
    splits = walk_forward_splits(times, n_splits=3, purge_days=2, embargo_days=4,
                                 horizon_days=2)
    # test windows 20-39, 40-59, 60-79; split 3 trains on 0-57 (purged from 58) minus
    # the embargo after the first window, 40-43
    assert splits[2].train.tolist() == [i for i in range(0, 58) if not 40 <= i <= 43]


def test_bad_arguments_are_refused() -> None:
    times = np.arange(10) * DAY
    with pytest.raises(ValueError, match="purge_days .3. must be at least horizon_days .5."):
        walk_forward_splits(times, n_splits=2, purge_days=3, embargo_days=0, horizon_days=5)
    with pytest.raises(ValueError, match="10 distinct sessions cannot make 12"):
        walk_forward_splits(times, n_splits=12, purge_days=5, embargo_days=0, horizon_days=5)
    with pytest.raises(ValueError, match="n_splits"):
        walk_forward_splits(times, n_splits=0, purge_days=5, embargo_days=0, horizon_days=5)


def test_split_metrics_against_scipy() -> None:
    rng = np.random.default_rng(3)
    times = np.repeat(np.arange(30) * DAY, 5)
    y = rng.normal(0, 0.02, times.shape[0])
    pred = y + rng.normal(0, 0.02, times.shape[0])
    got = split_metrics(y, pred, times)
    ics = [spearmanr(pred[times == t], y[times == t]).statistic for t in np.unique(times)]
    assert got["ic"] == pytest.approx(np.mean(ics), rel=1e-12)
    assert got["ic_std"] == pytest.approx(np.std(ics, ddof=1), rel=1e-12)
    assert got["hit_rate"] == pytest.approx(np.mean(np.sign(y) == np.sign(pred)))
    spreads = []
    for t in np.unique(times):
        yy, pp = y[times == t], pred[times == t]
        spreads.append(yy[np.argmax(pp)] - yy[np.argmin(pp)])     # top 1 minus bottom 1 of 5
    assert got["spread"] == pytest.approx(np.mean(spreads), rel=1e-12)
    assert got["n_dates"] == 30 and got["n"] == 150
    perfect = split_metrics(y, y, times)
    assert perfect["ic"] == pytest.approx(1.0) and perfect["hit_rate"] == 1.0
    assert perfect["spread"] > 0
    assert split_metrics(y, -y, times)["ic"] == pytest.approx(-1.0)


def test_split_metrics_skip_thin_cross_sections_and_nan() -> None:
    times = np.array([0, 0, DAY, DAY, DAY])
    y = np.array([0.01, -0.01, 0.02, np.nan, -0.02])
    p = np.array([0.5, 0.1, 0.3, 0.2, 0.1])
    got = split_metrics(y, p, times)
    assert got["n"] == 4 and got["n_dates"] == 0 and np.isnan(got["ic"])
    assert got["spread"] == pytest.approx(((0.01 + 0.01) + (0.02 + 0.02)) / 2)
    with pytest.raises(ValueError, match="one length"):
        split_metrics(y, p[:3], times)


def test_split_metrics_with_ties_and_uneven_cross_sections_match_scipy() -> None:
    rng = np.random.default_rng(5)
    sizes = rng.integers(3, 9, 40)
    times = np.repeat(np.arange(40) * DAY, sizes)
    y = np.round(rng.normal(0, 0.02, times.shape[0]), 2)         # many ties
    pred = np.round(y + rng.normal(0, 0.02, times.shape[0]), 2)
    got = split_metrics(y, pred, times)
    ics = [spearmanr(pred[times == t], y[times == t]).statistic for t in np.unique(times)]
    ics = [v for v in ics if np.isfinite(v)]
    assert got["n_dates"] == len(ics)
    assert got["ic"] == pytest.approx(np.mean(ics), rel=1e-12)
