"""Drift (ml/drift.py): PSI against a hand-computed example, KS on shifted and unshifted
samples, the statuses, performance decay, and the rollback policy on the bundled
equities with a synthetic drift that persists (rollback only with ``auto_rollback``,
once, whatever the re-runs)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from drift_support import drifted, label, write_panel

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


def test_a_significant_but_small_shift_is_no_breach():
    # A large sample shifted a little: KS is significant, PSI (the effect size) small.
    rng = np.random.default_rng(3)
    reference = rng.normal(0.0, 1.0, 20_000)
    recent = rng.normal(0.12, 1.0, 5_000)
    got = compare("x", reference, recent, SETTINGS)
    assert got.ks_pvalue < SETTINGS.ks_pvalue and got.psi < SETTINGS.psi_warning
    assert got.status == "ok"
    # a moderate shift: PSI between the cut-offs and significant, a warning
    mid = compare("x", reference, rng.normal(0.45, 1.0, 300), SETTINGS)
    assert SETTINGS.psi_warning <= mid.psi < SETTINGS.psi_drift and mid.status == "warning"


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


def test_ks_statistic_and_the_window_null_agree_with_scipy():
    from scipy.stats import ks_2samp

    from tradewarden.ml.drift import ks_statistic, window_null
    rng = np.random.default_rng(11)
    days = np.arange(40) * 86_400
    ts = np.repeat(days, 3)
    values = np.round(rng.normal(size=ts.size), 1)          # ties on purpose
    values[rng.random(ts.size) < 0.1] = np.nan
    ref = pd.Series(values, index=pd.MultiIndex.from_arrays(
        [ts, np.tile(["A", "B", "C"], 40)], names=["ts", "symbol"]))
    got = window_null(ref, 7)
    finite = np.isfinite(values)
    want = [ks_2samp(values[finite],
                     values[(ts >= days[i]) & (ts <= days[i + 6]) & finite]).statistic
            for i in range(34)]
    assert got.shape == (34,) and got == pytest.approx(want, abs=1e-12)
    assert ks_statistic(np.sort(values[finite]), values[finite][:9]) \
        == pytest.approx(ks_2samp(values[finite], values[finite][:9]).statistic, abs=1e-12)
    assert window_null(pd.Series([1.0, 2.0]), 7).size == 0       # no ts level: no null


def test_the_window_calibrated_p_value():
    null = np.linspace(0.0, 0.5, 199)                  # 199 windows: p can reach 0.005
    rng = np.random.default_rng(5)
    reference, recent = rng.normal(0, 1, 2000), rng.normal(1.0, 1, 100)
    got = compare("x", reference, recent, SETTINGS, null=null)
    assert got.null_windows == 199 and got.ks_statistic > 0.3
    assert got.ks_pvalue == pytest.approx((1 + np.sum(null >= got.ks_statistic)) / 200)
    assert got.ks_pvalue_iid < 1e-10
    # a statistic typical of the reference period's own windows: not unusual, ok
    calm = compare("x", reference, recent, SETTINGS, null=np.full(199, 0.9))
    assert calm.ks_pvalue == 1.0 and calm.status == "ok" and calm.psi > SETTINGS.psi_drift
    # too few windows to reach ks_pvalue = 0.01: scipy's p value is used
    few = compare("x", reference, recent, SETTINGS, null=null[:50])
    assert few.null_windows == 0 and few.ks_pvalue == few.ks_pvalue_iid


# --------------------------------------------------------------------------- the report and the policy

START = "2014-03-03"                                    # the synthetic drift begins


@pytest.fixture(scope="module")
def panels():
    """(bundled, drifted) panels of three symbols up to mid-2014."""
    from tradewarden.ml.features import load_universe
    panel = load_universe(MlSettings(universe=("AAPL", "JPM", "XOM")))
    panel = panel[panel["ts"] <= label("2014-06-30")].reset_index(drop=True)
    return panel, drifted(panel, START)


@pytest.fixture(scope="module")
def fitted(panels):
    """Ridge fits trained to 2013-06-28 and to 2013-12-31: (estimator, features)."""
    from tradewarden.ml.train import fit, training_rows
    out = []
    for end in ("2013-06-28", "2013-12-31"):
        x, y = training_rows(panels[0], 5, end_ts=label(end), train_years=2.0)
        out.append((fit(x, y, SETTINGS), x))
    return out


@pytest.fixture(scope="module")
def _registry_template(tmp_path_factory, fitted, _mlflow_template):
    """An MLflow store holding v1 (trained to 2013-06-28) and v2 (trained to
    2013-12-31, production after v1), built once; tests copy its ``mlflow.db`` (the
    artifacts stay here, read only)."""
    import shutil

    from tradewarden.ledger import Ledger
    from tradewarden.ml.drift import open_registry
    from tradewarden.ml.train import model_params
    folder = tmp_path_factory.mktemp("drift-registry")
    shutil.copyfile(_mlflow_template, folder / "mlflow.db")
    ledger = Ledger(str(folder / "ledger.db"))
    registry = open_registry(SETTINGS, ledger)
    for n, (est, x) in enumerate(fitted, start=1):
        v = registry.register(est, name=SETTINGS.model_name, features=tuple(x.columns),
                              params=model_params(SETTINGS),
                              training_window=(int(x.index[0][0]), int(x.index[-1][0])),
                              validation={"mean": {"ic": 0.02, "hit_rate": 0.51}},
                              data_hash=f"h{n}", train_sample=x)
        registry.promote(SETTINGS.model_name, v, reason=f"test v{n}", actor="test",
                         ledger=ledger, ts=n)
    ledger.close()
    return folder / "mlflow.db"


@pytest.fixture
def world(tmp_path, _registry_template):
    """A fresh ledger with a copy of the two-version store beside it."""
    import shutil

    from tradewarden.ledger import Ledger
    from tradewarden.ml.drift import open_registry
    shutil.copyfile(_registry_template, tmp_path / "mlflow.db")
    ledger = Ledger(str(tmp_path / "ledger.db"))
    registry = open_registry(SETTINGS, ledger)
    assert registry.uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert registry.production(SETTINGS.model_name).version == "2"
    yield ledger, registry
    ledger.close()


def _events(ledger, kind):
    from tradewarden.ml.registry import model_events
    return [e for e in model_events(ledger, SETTINGS.model_name) if e["kind"] == kind]


def test_a_session_like_the_training_period_is_ok_and_recorded(world, panels):
    from tradewarden.ml.drift import drift_report, drift_reports
    ledger, registry = world
    report = drift_report(SETTINGS, ledger, as_of="2013-10-31", now=1_000, registry=registry,
                          panel=panels[0])
    assert report.recorded and report.status == "ok" and report.breaches == ()
    assert report.model_version == "2" and report.policy.action == "none"
    assert [s.name for s in report.features] == list(registry.production("equity_rank").features)
    assert all(s.null_windows > 100 for s in report.features)
    assert report.window["sessions"] == 20 and report.window["rows"] == 60
    # the as-of is the session's close (16:00 New York = 20:00 UTC in October)
    assert report.as_of_ts == label("2013-10-31") + 20 * 3600
    rows = drift_reports(ledger, "equity_rank")
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["ts"] == 1_000
    assert len(rows[0]["features"]["features"]) == 13 and rows[0]["breaches"] == []


def test_persistent_drift_is_reported_but_not_rolled_back_by_default(world, panels):
    from tradewarden.ml.drift import drift_report
    ledger, registry = world
    got = [drift_report(SETTINGS, ledger, as_of=day, now=2_000 + i, registry=registry,
                        panel=panels[1])
           for i, day in enumerate(("2014-04-03", "2014-04-04", "2014-04-07"))]
    assert [r.status for r in got] == ["drift"] * 3
    assert [r.policy.action for r in got] == ["watch", "watch", "would_roll_back"]
    assert got[2].policy.streak == 3 and got[2].policy.report_ids == tuple(r.id for r in got)
    assert "auto_rollback is off" in got[2].policy.message
    assert any(b.kind == "feature" and b.metric == "psi" and b.level == "drift"
               for b in got[0].breaches)
    assert registry.production("equity_rank").version == "2"
    assert _events(ledger, "rollback") == []


def test_persistent_drift_rolls_back_once_with_auto_rollback(world, panels):
    from tradewarden.ml.drift import drift_report
    ledger, registry = world
    auto = MlSettings(auto_rollback=True)
    days = ("2014-04-03", "2014-04-04", "2014-04-07")
    got = [drift_report(auto, ledger, as_of=d, now=3_000 + i, registry=registry,
                        panel=panels[1], actor="daemon") for i, d in enumerate(days)]
    assert [r.policy.action for r in got] == ["watch", "watch", "rolled_back"]
    assert got[2].policy.to_version == "1" and "warden ml promote 2" in got[2].policy.message
    assert registry.production("equity_rank").version == "1"
    (ev,) = _events(ledger, "rollback")
    assert (ev["from_version"], ev["to_version"], ev["actor"], ev["ts"]) \
        == ("2", "1", "daemon", 3_002)
    ids = ", ".join(str(r.id) for r in got)
    assert f"ml_drift_reports {ids}" in ev["reason"] and "psi" in ev["reason"]
    # the same as-of again: v1 is production now, its own first report; no rollback
    again = drift_report(auto, ledger, as_of="2014-04-07", now=3_100, registry=registry,
                         panel=panels[1], actor="daemon")
    assert again.recorded and again.model_version == "1" and again.status == "drift"
    assert again.policy.action == "watch" and again.policy.streak == 1
    twice = drift_report(auto, ledger, as_of="2014-04-07", now=3_150, registry=registry,
                         panel=panels[1], actor="daemon")
    assert not twice.recorded and twice.id == again.id and twice.policy.action == "watch"
    assert len(_events(ledger, "rollback")) == 1
    # v1 drifts on: a rollback is due after its third report, but there is nothing older
    for i, day in enumerate(("2014-04-08", "2014-04-09")):
        last = drift_report(auto, ledger, as_of=day, now=3_200 + i, registry=registry,
                            panel=panels[1], actor="daemon")
    assert last.policy.action == "cannot_roll_back" and last.policy.streak == 3
    assert "no earlier production version" in last.policy.message
    assert len(_events(ledger, "rollback")) == 1
    assert registry.production("equity_rank").version == "1"
    # a person undoes it: the promotion is recorded
    registry.promote("equity_rank", "2", reason="checked the data", actor="ana",
                     ledger=ledger, ts=3_300)
    assert registry.production("equity_rank").version == "2"


def test_a_report_skipped_between_drift_breaks_the_streak(world, panels):
    from tradewarden.ml.drift import drift_report
    ledger, registry = world
    auto = MlSettings(auto_rollback=True)
    a = drift_report(auto, ledger, as_of="2014-04-03", now=1, registry=registry, panel=panels[1])
    ok = drift_report(auto, ledger, as_of="2014-04-04", now=2, registry=registry, panel=panels[0])
    b = drift_report(auto, ledger, as_of="2014-04-07", now=3, registry=registry, panel=panels[1])
    assert (a.status, b.status) == ("drift", "drift") and ok.status != "drift"
    assert b.policy.action == "watch" and b.policy.streak == 1
    # an older as-of reported later does not act: the newest report decides
    late = drift_report(auto, ledger, as_of="2014-04-02", now=4, registry=registry,
                        panel=panels[1])
    assert late.policy.action == "superseded"
    assert registry.production("equity_rank").version == "2"


def test_performance_decay_from_recorded_predictions(world, panels):
    """Predictions recorded for 15 sessions that ranked the realised returns backwards:
    the rolling IC is -1, a drift breach of the performance."""
    from sqlalchemy import insert

    from tradewarden.ledger import schema
    from tradewarden.ml.drift import drift_report
    from tradewarden.ml.features import forward_returns
    from tradewarden.ml.predict import session_close_ts
    ledger, registry = world
    panel = panels[0]
    realised = forward_returns(panel[panel["ts"] <= label("2013-10-31")], 5).dropna()
    days = sorted(set(realised.index.get_level_values("ts")))[-15:]
    rows = [{"model_name": "equity_rank", "model_version": "2",
             "as_of_ts": session_close_ts(pd.Timestamp(t, unit="s").date()),
             "symbol": sym, "score": -float(realised[(t, sym)]), "rank": None,
             "feature_hash": "0" * 64, "job": "predict", "created_at": "x"}
            for t in days for sym in ("AAPL", "JPM", "XOM")]
    with ledger.engine.begin() as conn:
        conn.execute(insert(schema.ml_predictions), rows)
    report = drift_report(SETTINGS, ledger, as_of="2013-10-31", now=5, registry=registry,
                          panel=panel)
    perf = report.performance
    assert perf.judged and perf.dates == 15 and perf.predictions == 45
    assert perf.ic == pytest.approx(-1.0) and perf.validation_ic == 0.02
    assert report.status == "drift"
    assert [b.name for b in report.breaches if b.kind == "performance"] == ["ic", "hit_rate"]


def test_refusals_name_what_is_missing(tmp_path, panels, mlflow_db):
    from tradewarden.ledger import Ledger
    from tradewarden.ml.drift import DriftError, drift_report
    mlflow_db(tmp_path)
    ledger = Ledger(str(tmp_path / "ledger.db"))
    with pytest.raises(DriftError, match="no production version"):
        drift_report(SETTINGS, ledger, as_of="2014-04-03", now=1, panel=panels[0])
    with pytest.raises(ValueError, match="not an NYSE session"):
        drift_report(SETTINGS, ledger, as_of="2014-04-05", now=1, panel=panels[0])
    ledger.close()


def test_data_that_ends_before_the_as_of_is_refused(world, panels):
    from tradewarden.ml.drift import DriftError, drift_report
    ledger, registry = world
    with pytest.raises(DriftError, match=r"ends on 2014-06-30, before the as-of session "
                                         r"2014-07-01"):
        drift_report(SETTINGS, ledger, as_of="2014-07-01", now=1, registry=registry,
                     panel=panels[0])


def test_warden_ml_drift_prints_the_report_and_exits_by_status(world, panels, tmp_path):
    from typer.testing import CliRunner

    from tradewarden.cli import app
    from tradewarden.ml.drift import drift_reports
    from tradewarden.ml.features import FEATURES
    ledger, _ = world
    db = str(tmp_path / "ledger.db")
    data = write_panel(panels[1], tmp_path / "drifted.csv")
    runner = CliRunner()
    ok = runner.invoke(app, ["ml", "drift", "--db", db, "--as-of", "2013-10-31",
                             "--data", str(data)])
    assert ok.exit_code == 0, ok.output
    assert "equity_rank version 2: drift as of 2013-10-31" in ok.output
    assert "rsi_14" in ok.output and "score (predictions)" in ok.output
    assert "status: ok (report 1, recorded)" in ok.output
    bad = runner.invoke(app, ["ml", "drift", "--db", db, "--as-of", "2014-04-03",
                              "--data", str(data), "--json"])
    assert bad.exit_code == 3, bad.output
    out = json.loads(bad.output)
    assert out["status"] == "drift" and out["policy"]["action"] == "watch"
    assert [f["name"] for f in out["features"]] == list(FEATURES)
    assert any(b["metric"] == "psi" and b["level"] == "drift" for b in out["breaches"])
    again = runner.invoke(app, ["ml", "drift", "--db", db, "--as-of", "2014-04-03",
                                "--data", str(data)])
    assert again.exit_code == 3 and "(report 2, recorded before)" in again.output
    for args, message in ((["--as-of", "2014-04-05"], "is not an NYSE session"),
                          (["--as-of", "2014-13-01"], "as-of"),
                          (["--as-of", "2014-07-01"], "ends on 2014-06-30")):
        res = runner.invoke(app, ["ml", "drift", "--db", db, "--data", str(data), *args])
        assert res.exit_code == 2 and "error:" in res.output and message in res.output, \
            res.output
        assert "Traceback" not in res.output
    assert len(drift_reports(ledger, "equity_rank")) == 2     # nothing lost, nothing added
