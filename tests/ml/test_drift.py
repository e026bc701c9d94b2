"""Drift (ml/drift.py): PSI against a hand-computed example, KS on shifted and unshifted
samples, the statuses, performance decay, and the rollback policy on the bundled
equities with a synthetic drift that persists (rollback only with ``auto_rollback``,
once, whatever the re-runs)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tradewarden.ml.drift import (
    PSI_EPSILON,
    Breach,
    compare,
    ks_test,
    performance,
    psi,
    psi_edges,
    worst,
)
from tradewarden.ml.settings import MlSettings

SETTINGS = MlSettings()


# --------------------------------------------------------------------------- PSI and KS


def test_psi_matches_a_hand_computed_example():
    # Reference 0..9: the median 4.5 splits it into two bins of 0.5 each. The recent
    # sample has 3 of 10 values at or below 4.5 and 7 above: shares 0.3 / 0.7.
    # PSI = (0.3 - 0.5) ln(0.3/0.5) + (0.7 - 0.5) ln(0.7/0.5)
    #     = 0.2 * 0.510826 + 0.2 * 0.336472 = 0.169460
    reference = np.arange(10.0)
    recent = [0, 1, 2, 7, 8, 9, 9, 9, 9, 9]
    assert psi_edges(reference, 2).tolist() == [4.5]
    assert psi(reference, recent, bins=2) == pytest.approx(0.169460, abs=1e-6)
    assert psi(reference, reference, bins=2) == 0.0


def test_psi_deciles_and_the_epsilon_for_an_empty_bin():
    reference = np.arange(100.0)            # deciles: 10 bins of 10 values
    edges = psi_edges(reference)
    assert edges.shape == (9,) and edges[0] == pytest.approx(9.9)
    # Every recent value in the top bin: 9 empty bins count PSI_EPSILON each.
    recent = np.full(20, 99.0)
    e = 0.1
    hand = 9 * (PSI_EPSILON - e) * math.log(PSI_EPSILON / e) + (1 - e) * math.log(1 / e)
    assert psi(reference, recent) == pytest.approx(hand, rel=1e-12)
    # ties: a discrete reference merges repeated edges into fewer bins
    assert psi_edges([0, 0, 0, 0, 0, 0, 0, 0, 1, 1]) == pytest.approx([0.0, 0.2, 1.0])


def test_psi_ignores_nan_and_refuses_an_empty_sample():
    assert psi([1.0, 2.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0, np.nan], bins=2) == 0.0
    with pytest.raises(ValueError, match="no finite values"):
        psi([1.0, 2.0], [np.nan])
    with pytest.raises(ValueError, match="bins"):
        psi([1.0, 2.0], [1.0], bins=1)


def test_ks_separates_a_shifted_distribution_from_the_same_one():
    rng = np.random.default_rng(7)
    reference = rng.normal(0.0, 1.0, 2000)
    same = rng.normal(0.0, 1.0, 300)
    shifted = rng.normal(0.75, 1.0, 300)
    stat_same, p_same = ks_test(reference, same)
    stat_shift, p_shift = ks_test(reference, shifted)
    assert p_same > 0.05 and stat_same < 0.1
    assert p_shift < 1e-10 and stat_shift > 0.2
    assert compare("x", reference, same, SETTINGS).status == "ok"
    moved = compare("x", reference, shifted, SETTINGS)
    assert moved.status == "drift" and moved.psi > SETTINGS.psi_drift
    # prediction drift is a warning at most
    assert compare("score", reference, shifted, SETTINGS, warning_only=True).status == "warning"


def test_ks_alone_warns_and_psi_gates_drift():
    # A large sample shifted a little: KS is significant, PSI is small.
    rng = np.random.default_rng(3)
    reference = rng.normal(0.0, 1.0, 20_000)
    recent = rng.normal(0.12, 1.0, 5_000)
    got = compare("x", reference, recent, SETTINGS)
    assert got.ks_pvalue < SETTINGS.ks_pvalue and got.psi < SETTINGS.psi_warning
    assert got.status == "warning"


def test_worst_and_breach_text():
    assert worst([]) == "ok" and worst(["ok", "warning"]) == "warning"
    assert worst(["warning", "drift", "ok"]) == "drift"
    with pytest.raises(ValueError, match="drift status"):
        worst(["bad"])
    b = Breach("feature", "ret_20", "drift", "psi", 0.3127, 0.25)
    assert b.text() == "feature ret_20: psi 0.3127 >= 0.25 (drift)"
    assert Breach("performance", "ic", "drift", "ic", -0.05, 0.0).text() \
        == "performance ic: ic -0.05 < 0 (drift)"


# --------------------------------------------------------------------------- performance


def _matured(days: int, agree: bool) -> pd.DataFrame:
    """Five symbols a day; scores ranked like the realised returns (or reversed)."""
    rows = []
    for d in range(days):
        for i, s in enumerate(("A", "B", "C", "D", "E")):
            realised = (i - 2) * 0.01
            rows.append({"as_of_ts": 86_400 * (16_000 + d), "symbol": s,
                         "score": realised if agree else -realised, "realised": realised})
    return pd.DataFrame(rows)


def test_performance_decay_against_the_floors():
    good = performance(_matured(12, True), SETTINGS, {"mean": {"ic": 0.05, "hit_rate": 0.52}})
    assert good.judged and good.ic == pytest.approx(1.0) and good.hit_rate == 1.0
    assert good.status == "ok" and good.validation_ic == 0.05 and good.dates == 12
    bad = performance(_matured(12, False), SETTINGS)
    assert bad.ic == pytest.approx(-1.0) and bad.hit_rate == 0.0 and bad.status == "drift"
    few = performance(_matured(3, False), SETTINGS)
    assert not few.judged and few.status == "ok" and few.dates == 3
    none = performance(_matured(0, True).reindex(columns=["as_of_ts", "symbol", "score",
                                                          "realised"]), SETTINGS)
    assert none.ic is None and none.predictions == 0 and none.status == "ok"
