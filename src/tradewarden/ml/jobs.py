"""The daemon's ML jobs: predict and check drift after each close, retrain weekly.

With ``[ml] daemon = true`` the daemon's :class:`~tradewarden.ops.supervision.Supervisor`
builds :class:`MlJobs` and calls it from two scheduled events of the exchange calendar
(``[daemon] calendar``, :mod:`tradewarden.ops.schedule`):

=================== ===============================================================
scheduled event     ML job (its own event in the durable queue ``daemon_events``)
=================== ===============================================================
end_of_day          ``ml_daily`` (key ``ml:daily:<model>:<session>``): the prediction
                    job for the session (:func:`tradewarden.ml.predict.predict`), then
                    the drift report (:func:`tradewarden.ml.drift.drift_report`, actor
                    ``daemon``) with its alerts
weekly_learning     ``ml_retrain`` (key ``ml:retrain:<model>:<ISO week>``): train on
                    the data up to the week's last session and register the version
                    (:func:`tradewarden.ml.train.train`,
                    :meth:`~tradewarden.ml.registry.ModelRegistry.register`, recorded in
                    ``ml_model_events`` as ``register`` by ``daemon``). Promotion
                    stays a person's decision (``warden ml promote VERSION``): an
                    ``ml_retrain`` alert says what was trained and how it validated.
=================== ===============================================================

Each job is an event of its own so that it is retried (with the dispatcher's backoff)
and recorded apart from the calendar event that started it: a day whose data is not
there yet fails ``ml_daily`` alone, not the end-of-day summary. Jobs are idempotent:
predictions are written once per version, session and symbol, a drift report once per
version and session (its policy rolls back at most once, see
:mod:`tradewarden.ml.drift`), and a retraining whose data (``data_hash``) and parameters
a registered version already has registers nothing. Alerts carry one key per report
(``ml-drift-<report id>``, ``ml-rollback-<report id>``) sent once.

Alerts
------
============== ========= ==========================================================
trigger        level     when
============== ========= ==========================================================
ml_drift       info      a ``warning`` report
ml_drift       warning   a ``drift`` report (its breaches and the policy's verdict)
human_review   warning   a rollback is due and ``auto_rollback`` is off
ml_rollback    warning   the policy rolled back (or could not: no earlier version)
ml_retrain     info      a version was trained and registered (not promoted)
ml_job         warning   no production version: nothing to predict or check
============== ========= ==========================================================

This module imports nothing of :mod:`tradewarden.ops`: the supervisor hands it the
ledger, its :class:`~tradewarden.ops.alerts.Alerter`, its clock and its logger.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ML_DAILY", "ML_RETRAIN", "MlJobs"]

#: Event kind of the daily ML job (prediction, then drift).
ML_DAILY = "ml_daily"
#: Event kind of the weekly retraining.
ML_RETRAIN = "ml_retrain"

_DAY = 86_400


def _label(session: str) -> int:
    from tradewarden.data.calendars import as_date
    return (as_date(session, "session").toordinal() - 719_163) * _DAY


class MlJobs:
    """The ML jobs one daemon runs (see the module docstring).

    Parameters
    ----------
    settings : MlSettings
        ``[ml]``.
    ledger : tradewarden.ledger.Ledger
        The daemon's own connection: the queue, predictions, reports, model events.
    alerter : Alerter
        ``alert(level, trigger, subject, body, *, dedupe_key, once)``.
    clock : Clock
        ``now()``, UTC epoch seconds (the daemon's: simulated in tests).
    log : structlog logger
    registry : ModelRegistry, optional
        Default: :func:`tradewarden.ml.drift.open_registry` of ``settings`` beside
        ``ledger``, opened at the first job.
    """

    def __init__(self, settings: Any, ledger: Any, *, alerter: Any, clock: Any, log: Any,
                 registry: Any = None) -> None:
        self.settings = settings
        self.ledger = ledger
        self.alerter = alerter
        self.clock = clock
        self.log = log
        self._registry = registry

    @classmethod
    def for_daemon(cls, loaded: Any, ledger: Any, *, alerter: Any, clock: Any,
                   log: Any) -> MlJobs | None:
        """Return the daemon's ML jobs when ``[ml] daemon = true``, else ``None``.

        Parameters
        ----------
        loaded : tradewarden.settings.LoadedSettings
        ledger, alerter, clock, log
            As :class:`MlJobs`.

        Returns
        -------
        MlJobs or None

        Raises
        ------
        ValueError
            ``[ml] daemon = true`` without ``[daemon] calendar = "XNYS"``: the jobs run
            on NYSE sessions (the predictions' and the universe's), which a 24/7 or
            another exchange's calendar does not give.
        """
        ml = getattr(loaded.settings, "ml", None)
        if ml is None or not getattr(ml, "daemon", False):
            return None
        calendar = getattr(loaded.daemon, "calendar", None)
        if calendar != "XNYS":
            raise ValueError(f"[ml] daemon = true needs [daemon] calendar = \"XNYS\" (the "
                             f"ML jobs run after NYSE sessions), not {calendar or '24/7'}")
        return cls(ml, ledger, alerter=alerter, clock=clock, log=log)

    @property
    def registry(self) -> Any:
        """The model registry (opened on first use)."""
        if self._registry is None:
            from tradewarden.ml.drift import open_registry
            self._registry = open_registry(self.settings, self.ledger)
        return self._registry

    # ------------------------------------------------------------------ wiring

    def register(self, dispatcher: Any) -> None:
        """Register the job handlers (:data:`ML_DAILY`, :data:`ML_RETRAIN`) on a
        :class:`~tradewarden.ops.events.Dispatcher`."""
        dispatcher.register(ML_DAILY, self.daily)
        dispatcher.register(ML_RETRAIN, self.retrain)

    def after_close(self, event: Any) -> int | None:
        """Queue the day's ML job for an ``end_of_day`` event.

        Parameters
        ----------
        event : tradewarden.ops.events.Event
            Its payload's ``session`` (``YYYY-MM-DD``) is the as-of session.

        Returns
        -------
        int or None
            The ``ml_daily`` event id; ``None`` when it was queued before (the key
            ``ml:daily:<model>:<session>``) or the payload names no session.
        """
        session = event.payload.get("session")
        if not session:
            return None
        return self.ledger.enqueue_event(
            ML_DAILY, {"session": session, "model": self.settings.model_name,
                       "after_event": event.id}, due_at=self.clock.now(),
            dedupe_key=f"ml:daily:{self.settings.model_name}:{session}")

    def after_week(self, event: Any) -> int | None:
        """Queue the week's retraining for a ``weekly_learning`` event.

        Parameters
        ----------
        event : tradewarden.ops.events.Event
            Its payload's ``last_session`` (the week's last session, ``YYYY-MM-DD``) is
            the training's as-of; ``week`` (ISO ``YYYY-Www``) its key.

        Returns
        -------
        int or None
            The ``ml_retrain`` event id; ``None`` when queued before or the payload
            names no session (a 24/7 calendar has none: the ML jobs need sessions).
        """
        last, week = event.payload.get("last_session"), event.payload.get("week")
        if not last or not week:
            return None
        return self.ledger.enqueue_event(
            ML_RETRAIN, {"session": last, "week": week, "model": self.settings.model_name,
                         "after_event": event.id}, due_at=self.clock.now(),
            dedupe_key=f"ml:retrain:{self.settings.model_name}:{week}")

    # ------------------------------------------------------------------ jobs

    def _alert(self, level: str, trigger: str, subject: str, body: str | None,
               key: str) -> None:
        try:
            self.alerter.alert(level, trigger, subject, body, dedupe_key=key[:128], once=True)
        except Exception as exc:            # noqa: BLE001 - an alert must never stall a job
            self.log.error("alert_failed", trigger=trigger, subject=subject, error=str(exc))

    def _no_production(self, session: str) -> bool:
        if self.registry.production(self.settings.model_name) is not None:
            return False
        name = self.settings.model_name
        self._alert("warning", "ml_job", f"ML {name}: no production version, nothing "
                    f"predicted or checked for {session}",
                    "Train a version (`warden ml train`) and promote it (`warden ml promote "
                    "VERSION`); the daemon retrains weekly and leaves promotion to a person.",
                    f"ml-no-production:{name}:{session}")
        self.log.warning("ml_no_production", model=name, session=session)
        return True

    def predict(self, session: str) -> Any:
        """Run the prediction job for ``session`` (the call site of
        :func:`tradewarden.ml.predict.predict`; idempotent there).

        Returns
        -------
        pandas.DataFrame
            The session's predictions (one row per symbol).
        """
        from tradewarden.ml.predict import predict
        return predict(self.settings, self.ledger, as_of=session)

    def daily(self, event: Any) -> dict[str, Any]:
        """Handle ``ml_daily``: predict for the session, then the drift report, alerts.

        Parameters
        ----------
        event : tradewarden.ops.events.Event
            Payload ``session`` (``YYYY-MM-DD``).

        Returns
        -------
        dict
            ``session``, ``predictions`` (rows), ``report_id``, ``status``, ``policy``;
            ``skipped`` when there is no production version.

        Raises
        ------
        DriftError, DataError
            The data does not reach the session (the dispatcher retries with backoff,
            then records the event failed and alerts).
        """
        from tradewarden.ml.drift import drift_report
        session = str(event.payload["session"])
        if self._no_production(session):
            return {"session": session, "skipped": "no production version"}
        preds = self.predict(session)
        report = drift_report(self.settings, self.ledger, as_of=session,
                              now=int(self.clock.now()), registry=self.registry,
                              actor="daemon")
        self._report_alerts(report, session)
        self.log.info("ml_daily_done", session=session, predictions=len(preds),
                      report_id=report.id, status=report.status,
                      policy=report.policy.action)
        return {"session": session, "predictions": len(preds), "report_id": report.id,
                "status": report.status, "policy": report.policy.action}

    def _report_alerts(self, report: Any, session: str) -> None:
        name = f"{report.model_name} v{report.model_version}"
        lines = [b.text() for b in report.breaches]
        body = "\n".join(lines + ([report.policy.message] if report.policy.message else [])
                         + [f"Details: `warden ml drift --as-of {session}`."])
        if report.status == "warning":
            self._alert("info", "ml_drift", f"ML {name}: drift warning as of {session} "
                        f"({len(lines)} breach(es))", body, f"ml-drift-{report.id}")
        elif report.status == "drift":
            self._alert("warning", "ml_drift", f"ML {name}: drift as of {session} "
                        f"({len(lines)} breach(es))", body, f"ml-drift-{report.id}")
        action = report.policy.action
        if action == "would_roll_back":
            self._alert("warning", "human_review",
                        f"ML {name}: rollback due after {report.policy.streak} drift reports",
                        f"{report.policy.message}\nRevert: `warden ml rollback --reason "
                        f"\"drift reports {', '.join(map(str, report.policy.report_ids))}\"`.",
                        f"ml-rollback-{report.id}")
        elif action in ("rolled_back", "cannot_roll_back"):
            self._alert("warning", "ml_rollback", f"ML {report.model_name}: "
                        + (f"rolled back v{report.model_version} -> v{report.policy.to_version}"
                           if action == "rolled_back" else
                           f"rollback of v{report.model_version} due but impossible"),
                        report.policy.message, f"ml-rollback-{report.id}")

    def retrain(self, event: Any) -> dict[str, Any]:
        """Handle ``ml_retrain``: train on the data up to the week's last session and
        register the version, unless one with the same data and parameters exists.

        Parameters
        ----------
        event : tradewarden.ops.events.Event
            Payload ``session`` (the week's last, ``YYYY-MM-DD``), ``week``.

        Returns
        -------
        dict
            ``session``, ``version`` (registered, or the existing one), ``registered``
            (bool), ``validation`` (mean IC, hit rate, spread).

        Raises
        ------
        ValueError, DataError
            Too little data to train, or an unreadable universe (retried, then
            recorded failed and alerted by the dispatcher).
        """
        from tradewarden.ml.features import data_hash, load_universe
        from tradewarden.ml.train import model_params, train
        session = str(event.payload["session"])
        label = _label(session)
        name = self.settings.model_name
        panel = load_universe(self.settings)
        panel = panel[panel["ts"] <= label]
        if panel.empty or int(panel["ts"].max()) < label:
            from tradewarden.ml.drift import DriftError, _day, _source
            last = "no bars" if panel.empty else f"ends on {_day(int(panel['ts'].max()))}"
            raise DriftError(f"{_source(self.settings)} {last}: cannot retrain as of {session}")
        digest, params = data_hash(panel), model_params(self.settings)
        for v in self.registry.versions(name):
            if getattr(v, "data_hash", None) == digest and dict(getattr(v, "params", {})
                                                               or {}) == params:
                self.log.info("ml_retrain_known", model=name, session=session,
                              version=str(v.version))
                return {"session": session, "version": str(v.version), "registered": False,
                        "validation": (getattr(v, "validation", {}) or {}).get("mean", {})}
        result = train(panel, self.settings, end_ts=label)
        version = self.registry.register(
            result.estimator, name=name, features=result.features, params=result.params,
            training_window=result.training_window, validation=result.validation,
            data_hash=result.data_hash, train_sample=result.train_sample,
            ledger=self.ledger, actor="daemon", ts=int(self.clock.now()))
        mean = result.validation.get("mean", {})
        fig = ", ".join(f"{k} {mean[k]:.4f}" for k in ("ic", "hit_rate", "spread")
                        if isinstance(mean.get(k), float))
        self._alert("info", "ml_retrain", f"ML {name}: v{version} trained as of {session}",
                    f"Validation ({self.settings.n_splits} walk-forward splits): {fig or 'none'}."
                    f"\nNot promoted: `warden ml models` compares it; `warden ml promote "
                    f"{version}` makes it production.", f"ml-retrain:{name}:{version}")
        self.log.info("ml_retrained", model=name, session=session, version=str(version))
        return {"session": session, "version": str(version), "registered": True,
                "validation": mean}
