"""The daemon's ML jobs (ml/jobs.py through ops/supervision.py) on a simulated clock.

The real :class:`~tradewarden.ops.supervision.Supervisor` with ``[daemon] calendar =
"XNYS"`` and ``[ml] daemon = true`` is turned over NYSE sessions of April 2014 (Good
Friday, 2014-04-18, is a holiday) on a replay clock, no deployment running, on a
universe file that stops looking like the training set in March 2014. After each close
the ``end_of_day`` event queues ``ml_daily``, which records the session's predictions
and its drift report (drift: alerted, and from the third report in a row a person is
asked to roll back, ``auto_rollback`` being off); after the week's last session
(Thursday 04-17) ``weekly_learning`` queues ``ml_retrain``, which trains and registers
a version that stays unpromoted. Every job is an event of the durable queue, done once,
and a restarted daemon does none of them again.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import structlog
from drift_support import drifted, write_panel
from sqlalchemy import select

from tradewarden.engine.clock import ReplayClock
from tradewarden.ledger import Ledger, schema
from tradewarden.ml.predict import session_close_ts
from tradewarden.ml.settings import MlSettings
from tradewarden.settings import load_settings

UNIVERSE = ("AAPL", "JPM", "XOM")
SESSIONS = ("2014-04-16", "2014-04-17", "2014-04-21", "2014-04-22")


def _ts(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp())


@pytest.fixture
def daemon_world(tmp_path, mlflow_db):
    """A config with the ML jobs on a universe file that drifts from 2014-03-03, a
    ledger, and v1 (trained to 2013-12-31) in production in the MLflow store beside
    the ledger."""
    from tradewarden.ml.drift import open_registry
    from tradewarden.ml.features import load_universe
    from tradewarden.ml.train import train

    mlflow_db(tmp_path)
    db = tmp_path / "ledger.db"
    bundled = load_universe(MlSettings(universe=UNIVERSE))
    data = write_panel(drifted(bundled[bundled["ts"] <= _ts("2014-06-30")], "2014-03-03"),
                       tmp_path / "universe.csv")
    cfg = tmp_path / "warden.toml"
    cfg.write_text(f"""
[ledger]
db = "{db}"
[daemon]
calendar = "XNYS"
[ml]
daemon = true
data = "{data}"
n_splits = 3
""")
    loaded = load_settings(cfg)
    settings: MlSettings = loaded.settings.ml
    assert settings.daemon and settings.data == str(data)
    ledger = Ledger(str(db))
    registry = open_registry(settings, ledger)
    result = train(load_universe(settings), settings, end_ts=_ts("2013-12-31"))
    v1 = registry.register(result.estimator, name=settings.model_name,
                           features=result.features, params=result.params,
                           training_window=result.training_window,
                           validation=result.validation, data_hash=result.data_hash,
                           train_sample=result.train_sample)
    registry.promote(settings.model_name, v1, reason="first", actor="ana", ledger=ledger, ts=1)
    yield loaded, ledger, registry
    ledger.close()


def _run(loaded, ledger, start: str, stop: str) -> None:
    """Turn a Supervisor from ``start`` to ``stop`` on a replay clock, from fire time to
    fire time, as the daemon's loop does between bars."""
    from tradewarden.ops.supervision import Supervisor
    clock = ReplayClock(_ts(start))
    sup = Supervisor(ledger, loaded, daemon_id="test", clock=clock,
                     log=structlog.get_logger("test"))
    assert sup.ml is not None
    try:
        while clock.now() < _ts(stop):
            nxt = sup.on_turn(clock.now())
            clock.advance(min(int(nxt) if nxt is not None else _ts(stop), _ts(stop)))
        sup.on_turn(clock.now())
    finally:
        sup.close()


def _rows(ledger, table, *where):
    with ledger.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).where(*where)
                                              .order_by(table.c.id)).mappings()]


def test_the_daemon_predicts_checks_drift_after_each_close_and_retrains_weekly(daemon_world):
    loaded, ledger, registry = daemon_world
    e = schema.daemon_events
    _run(loaded, ledger, "2014-04-16T12:00:00", "2014-04-23T00:00:00")

    # after each close (end_of_day: 15 minutes after it), one ml_daily per session,
    # none for Good Friday, each done
    eod = _rows(ledger, e, e.c.kind == "end_of_day")
    assert [json.loads(r["payload"])["session"] for r in eod] == list(SESSIONS)
    assert all(r["due_at"] == session_close_ts(s) + 900 for r, s in zip(eod, SESSIONS))
    daily = _rows(ledger, e, e.c.kind == "ml_daily")
    assert [r["dedupe_key"] for r in daily] == [f"ml:daily:equity_rank:{s}" for s in SESSIONS]
    assert [r["status"] for r in daily] == ["done"] * 4
    assert all(r["due_at"] >= session_close_ts(s) + 900 for r, s in zip(daily, SESSIONS))

    # each recorded: the predictions (3 symbols a session) and the drift report
    p = schema.ml_predictions
    preds = _rows(ledger, p, p.c.job == "predict")
    closes = [session_close_ts(s) for s in SESSIONS]
    assert sorted({r["as_of_ts"] for r in preds}) == closes
    assert len(preds) == 12 and {r["model_version"] for r in preds} == {"1"}
    d = schema.ml_drift_reports
    reports = _rows(ledger, d)
    assert [r["as_of_ts"] for r in reports] == closes
    assert {r["model_version"] for r in reports} == {"1"}
    assert [r["status"] for r in reports] == ["drift"] * 4

    # weekly: once, after Thursday's close (the week's last session), on the data to it
    weekly = _rows(ledger, e, e.c.kind == "weekly_learning")
    assert [json.loads(r["payload"])["last_session"] for r in weekly] == ["2014-04-17"]
    assert weekly[0]["due_at"] == session_close_ts("2014-04-17") + 3600
    retrain = _rows(ledger, e, e.c.kind == "ml_retrain")
    assert len(retrain) == 1 and retrain[0]["status"] == "done"
    assert retrain[0]["dedupe_key"] == "ml:retrain:equity_rank:2014-W16"
    versions = registry.versions("equity_rank")
    assert [v.version for v in versions] == ["1", "2"]
    assert versions[1].training_window[1] < _ts("2014-04-17") <= _ts("2014-04-17")
    assert registry.production("equity_rank").version == "1"       # a person promotes
    ev = schema.ml_model_events
    (reg,) = _rows(ledger, ev, ev.c.kind == "register")
    assert (reg["to_version"], reg["actor"]) == ("2", "daemon")

    # alerts: the new version, and every report that is not ok, once each
    a = schema.alerts
    alerts = _rows(ledger, a)
    retrained = [r for r in alerts if r["trigger"] == "ml_retrain"]
    assert len(retrained) == 1 and "v2" in retrained[0]["subject"]
    assert "warden ml promote 2" in retrained[0]["body"]
    drift = [r for r in alerts if r["trigger"] == "ml_drift"]
    assert [r["dedupe_key"] for r in drift] == [f"ml-drift-{r['id']}" for r in reports]
    assert all(r["level"] == "warning" and "psi" in r["body"] for r in drift)
    # auto_rollback is off: the third drift report in a row (and the fourth) asks a
    # person; nothing is rolled back
    asked = [r for r in alerts if r["trigger"] == "human_review"]
    assert [r["dedupe_key"] for r in asked] == [f"ml-rollback-{r['id']}" for r in reports[2:]]
    assert "warden ml rollback" in asked[0]["body"]
    assert _rows(ledger, ev, ev.c.kind == "rollback") == []

    # a restarted daemon over the same days does nothing again
    counts = {t.name: len(_rows(ledger, t)) for t in (e, p, d, ev, a)}
    _run(loaded, ledger, "2014-04-23T00:00:00", "2014-04-23T01:00:00")
    assert {t.name: len(_rows(ledger, t)) for t in (e, p, d, ev, a)} == counts


def test_without_a_production_version_the_daily_job_alerts_once_and_is_done(tmp_path, mlflow_db):
    mlflow_db(tmp_path)
    cfg = tmp_path / "warden.toml"
    cfg.write_text(f"""
[ledger]
db = "{tmp_path / 'ledger.db'}"
[daemon]
calendar = "XNYS"
[ml]
daemon = true
universe = ["AAPL"]
""")
    loaded = load_settings(cfg)
    ledger = Ledger(str(tmp_path / "ledger.db"))
    _run(loaded, ledger, "2014-04-16T12:00:00", "2014-04-17T00:00:00")
    e, a = schema.daemon_events, schema.alerts
    (daily,) = _rows(ledger, e, e.c.kind == "ml_daily")
    assert daily["status"] == "done"
    (alert,) = _rows(ledger, a, a.c.trigger == "ml_job")
    assert "no production version" in alert["subject"] and "2014-04-16" in alert["subject"]
    assert _rows(ledger, schema.ml_predictions) == []
    ledger.close()


def test_the_ml_jobs_are_off_unless_configured_and_need_the_nyse_calendar(tmp_path):
    from tradewarden.ops.supervision import Supervisor
    cfg = tmp_path / "warden.toml"
    cfg.write_text(f'[ledger]\ndb = "{tmp_path / "ledger.db"}"\n[daemon]\ncalendar = "XNYS"\n')
    loaded = load_settings(cfg)
    ledger = Ledger(str(tmp_path / "ledger.db"))
    sup = Supervisor(ledger, loaded, daemon_id="t", clock=ReplayClock(_ts("2014-04-16")),
                     log=structlog.get_logger("test"))
    try:
        assert sup.ml is None
        assert "ml_daily" not in sup.dispatcher._handlers
    finally:
        sup.close()
    cfg.write_text(f'[ledger]\ndb = "{tmp_path / "ledger.db"}"\n[ml]\ndaemon = true\n')
    with pytest.raises(ValueError, match=r'needs \[daemon\] calendar = "XNYS".*not 24/7'):
        Supervisor(ledger, load_settings(cfg), daemon_id="t",
                   clock=ReplayClock(_ts("2014-04-16")), log=structlog.get_logger("test"))
    ledger.close()
