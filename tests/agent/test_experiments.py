"""A/B experiments (agent/experiments.py): only allowed changes are proposed, decisions
split deterministically, outcomes observed, and a change applied only when the test and
the effect size both pass."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from tradewarden.agent import experiments as ex
from tradewarden.agent import records
from tradewarden.cli import app
from tradewarden.ledger import Ledger, schema

T0 = 1_767_225_600          # 2026-01-01T00:00:00Z
DEP = "dep1"


def _ledger(tmp_path, strategy="donchian", mode="paper", url=None):
    led = Ledger(url or tmp_path / "x.db")
    with led.engine.begin() as conn:
        conn.execute(schema.deployments.insert().values(
            deployment_id=DEP, name="alpha", mode=mode, config="{}", config_hash="h",
            status="running", next_order_seq=0, created_at="2026-01-01T00:00:00Z"))
    led.create_run({"run_id": "r1", "mode": "paper", "capital_mode": "independent",
                    "market_time_basis": "test", "data_integrity": "ok", "config_hash": "h",
                    "config": "{}", "strategy": strategy, "symbols": "[]", "timeframe": "1d",
                    "initial_capital": Decimal(10000)})
    records.record_decision(led, deployment_id=DEP, run_id="r1", ts=T0 - 10,
                            event_kind="entry_signal", reasoner="rules", autonomy_level=1,
                            context={}, output={"action": "MONITOR_ONLY", "confidence": 1.0})
    return led


def _decide(led, ts, value, kind="taken"):
    """A decision of the deployment at ``ts`` and its outcome (return, percent)."""
    did = records.record_decision(led, deployment_id=DEP, run_id="r1", ts=ts,
                                  event_kind="entry_signal", reasoner="rules", autonomy_level=3,
                                  context={}, output={"action": "EXECUTE_TRADES",
                                                      "confidence": 0.9})
    with led.engine.begin() as conn:
        conn.execute(schema.decision_outcomes.insert().values(
            agent_decision_id=did, deployment_id=DEP, run_id="r1", symbol="SPY", kind=kind,
            pnl=Decimal(str(value)), return_pct=value, ts=ts, created_at="x"))
    return did


def test_only_filters_and_strategy_parameters_in_range_can_be_proposed(tmp_path):
    led = _ledger(tmp_path)
    eid = ex.propose_from(led, scope=DEP, ts=T0, proposed_by="reflection:1", proposal={
        "parameter": "entry_window", "control": 20, "variant": "30", "rationale": "slower"})
    row = ex.experiment(led, eid)
    assert (row["parameter"], row["control"], row["variant"], row["status"]) == (
        "entry_window", 20, 30, "proposed")                     # coerced by DonchianParams
    assert (row["test"], row["alpha"], row["min_samples"]) == ("welch_t", 0.05, ex.MIN_SAMPLES)
    # the same open proposal again is the same experiment
    assert ex.propose_from(led, scope=DEP, ts=T0 + 1, proposed_by="decision:9", proposal={
        "parameter": "entry_window", "control": 20, "variant": 30}) == eid
    refused = {
        "risk limits are never experimented on": {"parameter": "max_position_fraction",
                                                  "control": 0.1, "variant": 1000000},
        "out of range for the strategy": {"parameter": "entry_window", "control": 20,
                                          "variant": 10**9},
        "a filter out of range": {"parameter": "min_confidence", "control": 0.4, "variant": 7},
        "no change": {"parameter": "min_confidence", "control": 0.5, "variant": 0.5},
        "the proposer sets the test": {"parameter": "min_confidence", "control": 0.4,
                                       "variant": 0.6, "alpha": 0.5},
        "a nested value": {"parameter": "entry_window", "control": 20, "variant": {"x": 1}},
    }
    for why, proposal in refused.items():
        with pytest.raises(ex.ExperimentError) as err:
            ex.propose_from(led, scope=DEP, ts=T0, proposed_by="decision:9", proposal=proposal)
        assert "experiment" in str(err.value), why
    with pytest.raises(ex.ExperimentError, match="alpha 0.1"):
        ex.propose(led, scope=DEP, name="loose", parameter="min_confidence", control=0.4,
                   variant=0.6, ts=T0, proposed_by="ana", alpha=0.1)
    assert [r["id"] for r in ex.experiments(led)] == [eid]       # nothing else recorded
    led.close()


def test_assignment_is_deterministic_and_near_the_allocation():
    arms = [ex.arm(7, d, 0.3) for d in range(4000)]
    assert arms == [ex.arm(7, d, 0.3) for d in range(4000)]
    share = arms.count("variant") / len(arms)
    assert 0.27 < share < 0.33
    assert ex.arm(7, 1, 0.0) == "control" and ex.arm(7, 1, 1.0) == "variant"
    assert [ex.arm(8, d, 0.3) for d in range(50)] != arms[:50]   # per experiment


def _run(led, variant_lift, n=60, seed=3):
    """Start an experiment and record ``n`` decisions whose variant-arm returns are
    lifted by ``variant_lift`` percentage points."""
    eid = ex.propose(led, scope=DEP, name="min conf", parameter="min_confidence", control=0.4,
                     variant=0.6, ts=T0, proposed_by="ana", min_samples=10, min_effect=0.25,
                     mode="paper")
    ex.start(led, eid, T0)
    rng = np.random.default_rng(seed)
    assigned = []
    for i in range(n):
        ts = T0 + 100 + i
        did = _decide(led, ts, 0.0)          # outcome rewritten below once the arm is known
        side = ex.assign(led, eid, did, ts)
        value = float(rng.normal(0.1 + (variant_lift if side == "variant" else 0.0), 1.0))
        with led.engine.begin() as conn:
            conn.execute(schema.decision_outcomes.update()
                         .where(schema.decision_outcomes.c.agent_decision_id == did)
                         .values(return_pct=value))
        assigned.append((did, side, value))
    return eid, assigned


def test_a_real_improvement_is_accepted_and_applied_as_the_experiment(tmp_path):
    led = _ledger(tmp_path)
    eid, assigned = _run(led, variant_lift=1.5)
    # an earlier decision (before the start) is not part of it
    early = _decide(led, T0 - 5, 50.0)
    assert ex.judge(led, eid, T0 + 500)["status"] == "accepted"
    row = ex.experiment(led, eid)
    obs = ex.observations(led, eid)
    c = [v for _, s, v in assigned if s == "control"]
    v = [v for _, s, v in assigned if s == "variant"]
    assert obs == {"control": c, "variant": v}
    want = stats.ttest_ind(v, c, equal_var=False, alternative="greater").pvalue
    assert row["status"] == "accepted" and row["result"]["p_value"] == pytest.approx(want)
    assert row["result"]["effect"] == pytest.approx(np.mean(v) - np.mean(c))
    assert row["ended_ts"] == T0 + 500
    with led.engine.connect() as conn:
        ids = {r for (r,) in conn.execute(
            schema.experiment_observations.select().with_only_columns(
                schema.experiment_observations.c.agent_decision_id))}
    assert early not in ids and len(ids) == len(assigned)
    applied = ex.applied_parameters(led, DEP)
    assert applied == {"min_confidence": {"value": 0.6, "from": 0.4,
                                          "actor": f"experiment:{eid}", "ts": T0 + 500}}
    (change,) = ex.parameter_changes(led, DEP)
    assert change["actor"] == f"experiment:{eid}" and change["reason"].startswith("p = ")
    assert ex.apply_change(led, eid, T0 + 900) == change          # once
    assert len(ex.parameter_changes(led, DEP)) == 1
    with pytest.raises(ex.ExperimentError, match="accepted, not running"):
        ex.judge(led, eid, T0 + 900)
    led.close()


def test_significant_but_small_or_large_but_noisy_is_rejected_and_nothing_applied(tmp_path):
    led = _ledger(tmp_path)
    eid, _ = _run(led, variant_lift=0.0)
    result = ex.judge(led, eid, T0 + 500)
    assert result["status"] == "rejected" and not result["significant"]
    assert ex.applied_parameters(led, DEP) == {}
    with pytest.raises(ex.ExperimentError, match="only an accepted experiment"):
        ex.apply_change(led, eid, T0 + 600)
    # significant (tiny noise) but below the minimum effect: rejected too
    (tmp_path / "b").mkdir()
    led2 = _ledger(tmp_path / "b")
    eid2 = ex.propose(led2, scope=DEP, name="tiny", parameter="min_confidence", control=0.4,
                      variant=0.5, ts=T0, proposed_by="ana", min_samples=10, min_effect=0.25)
    ex.start(led2, eid2, T0)
    for i in range(80):
        did = _decide(led2, T0 + 10 + i, 0.0)
        lift = 0.1 if ex.arm(eid2, did, 0.5) == "variant" else 0.0
        with led2.engine.begin() as conn:
            conn.execute(schema.decision_outcomes.update()
                         .where(schema.decision_outcomes.c.agent_decision_id == did)
                         .values(return_pct=lift + 0.001 * (i % 3)))
    r2 = ex.judge(led2, eid2, T0 + 500)
    assert r2["status"] == "rejected" and r2["significant"] and not r2["large_enough"]
    assert "below 0.25" in r2["reason"] and ex.applied_parameters(led2, DEP) == {}
    led.close()
    led2.close()


def test_it_keeps_running_until_both_arms_have_their_samples(tmp_path):
    led = _ledger(tmp_path)
    eid = ex.propose(led, scope=DEP, name="w", parameter="exit_window", control=10, variant=5,
                     ts=T0, proposed_by="ana", min_samples=5)
    assert ex.active_experiments(led, DEP)[0]["status"] == "proposed"
    ex.start(led, eid, T0)
    for i in range(4):
        _decide(led, T0 + i, 1.0)
    _decide(led, T0 + 9, 3.0, kind="skipped")                   # opened nothing: observed as 0
    result = ex.judge(led, eid, T0 + 50)
    assert result["status"] == "running" and "5 each are needed" in result["reason"]
    assert sum(result["n"].values()) == 5 and ex.experiment(led, eid)["status"] == "running"
    assert 0.0 in [x for arm in ex.observations(led, eid).values() for x in arm]
    assert ex.active_experiments(led, DEP, now=T0 - 1) == []       # proposed at T0
    (active,) = ex.active_experiments(led, DEP, decision_id=123, now=T0, symbol="SPY")
    assert active["arm"] == ex.arm(eid, 123, 0.5) and active["n"] == result["n"]
    ex.abandon(led, eid, T0 + 60, "superseded")
    assert ex.active_experiments(led, DEP) == []
    led.close()


def test_share_mode_needs_a_paper_deployment_and_paper_mode_a_filter(tmp_path):
    led = _ledger(tmp_path, mode="live")
    eid = ex.propose(led, scope=DEP, name="p", parameter="min_confidence", control=0.4,
                     variant=0.7, ts=T0, proposed_by="ana", mode="share")
    with pytest.raises(ex.ExperimentError, match="mode share, but deployment dep1 is live"):
        ex.start(led, eid, T0)
    assert ex.experiment(led, eid)["status"] == "proposed"
    with pytest.raises(ex.ExperimentError, match="only a filter .* can be tried on paper"):
        ex.propose(led, scope=DEP, name="w", parameter="entry_window", control=20, variant=30,
                   ts=T0, proposed_by="ana", mode="paper")
    # on paper nothing the deployment does changes: a live one may run it
    eid2 = ex.propose_from(led, scope=DEP, ts=T0, proposed_by="ana", proposal={
        "parameter": "min_confidence", "control": 0.4, "variant": 0.8})
    assert ex.start(led, eid2, T0)["mode"] == "paper"
    led.close()


def test_on_paper_a_filter_arm_scores_what_its_filter_would_have_stopped_as_zero(tmp_path):
    led = _ledger(tmp_path)
    eid = ex.propose(led, scope=DEP, name="f", parameter="min_confidence", control=0.4,
                     variant=0.6, ts=T0, proposed_by="ana", mode="paper", min_samples=5)
    ex.start(led, eid, T0)
    want = {"control": [], "variant": []}
    for i in range(40):
        conf = 0.5 if i % 2 else 0.9
        did = records.record_decision(led, deployment_id=DEP, run_id="r1", ts=T0 + i,
                                      event_kind="entry_signal", reasoner="rules",
                                      autonomy_level=3, context={},
                                      output={"action": "EXECUTE_TRADES", "confidence": conf})
        with led.engine.begin() as conn:
            conn.execute(schema.decision_outcomes.insert().values(
                agent_decision_id=did, deployment_id=DEP, kind="taken", return_pct=-1.0,
                ts=T0 + i, created_at="x"))
        side = ex.arm(eid, did, 0.5)
        want[side].append(-1.0 if side == "control" or conf >= 0.6 else 0.0)
    assert ex.collect(led, eid, T0 + 100) == 40
    assert ex.observations(led, eid) == want
    assert 0.0 in want["variant"] and 0.0 not in want["control"]
    led.close()


def test_warden_daemon_experiments_lists_them_with_their_results(tmp_path):
    led = _ledger(tmp_path)
    eid, _ = _run(led, variant_lift=1.5)
    ex.judge(led, eid, T0 + 500)
    ex.propose(led, scope=DEP, name="slower exits", parameter="exit_window", control=10,
               variant=15, ts=T0, proposed_by="reflection:4")
    led.close()
    db = str(tmp_path / "x.db")
    r = CliRunner().invoke(app, ["daemon", "experiments", "--db", db], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    assert "accepted" in r.output and "slower exits" in r.output and "proposed" in r.output
    r = CliRunner().invoke(app, ["daemon", "experiments", "--db", db, "--json"])
    rows = json.loads(r.output)
    assert [x["status"] for x in rows] == ["accepted", "proposed"]
    assert rows[0]["result"]["p_value"] < 0.05
    r = CliRunner().invoke(app, ["daemon", "experiments", "--db", db, "--status", "bogus"])
    assert r.exit_code == 2 and r.output.startswith("error: --status bogus")


def test_the_cycle_on_sqlite_and_postgresql(ledger_db, tmp_path):
    """Reflect, propose from the reflection, start, observe, judge, apply: the same on
    both databases (upserts of the working memory, the unique reflection per day)."""
    from tradewarden.agent import reflection as rf

    class Proposing:
        name = "proposing"

        def reflect(self, record, *, scope, day, ts):
            out = rf.rules_reflection(record)
            return out.model_copy(update={"proposals": [rf.ProposedExperiment(
                parameter="min_confidence", control=0.4, variant=0.6)]}), {"model": "rules"}

    from tradewarden.agent.learning_settings import LearningSettings
    led = _ledger(tmp_path, url=ledger_db)
    small = LearningSettings(min_samples=8)
    row = rf.reflect(led, DEP, "2026-01-01", T0 + 80_000, reflector=Proposing(), learning=small)
    again = rf.reflect(led, DEP, "2026-01-01", T0 + 80_001, reflector=Proposing(),
                       learning=small)
    assert again["id"] == row["id"] and len(rf.reflections(led)) == 1
    (filed,) = row["proposals"]
    assert ex.experiment(led, filed["experiment_id"])["min_samples"] == 8
    eid = filed["experiment_id"]
    ex.start(led, eid, T0 + 80_000)
    rng = np.random.default_rng(5)
    for i in range(40):
        did = _decide(led, T0 + 80_100 + i, 0.0)
        lift = 2.0 if ex.arm(eid, did, 0.5) == "variant" else 0.0
        with led.engine.begin() as conn:
            conn.execute(schema.decision_outcomes.update()
                         .where(schema.decision_outcomes.c.agent_decision_id == did)
                         .values(return_pct=float(rng.normal(lift, 0.5))))
    result = ex.judge(led, eid, T0 + 90_000)
    ex_row = ex.experiment(led, eid)
    assert result["status"] == ex_row["status"] == "accepted"
    assert ex.applied_parameters(led, DEP)["min_confidence"]["actor"] == f"experiment:{eid}"
    assert rf.latest_reflection(led, DEP)["proposals"][0]["experiment_id"] == eid
    led.close()
