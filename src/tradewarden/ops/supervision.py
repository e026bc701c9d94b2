"""What the daemon adds around its deployments: governor, events, alerts, heartbeat.

:class:`Supervisor` is the set of hooks :class:`~tradewarden.ops.service.DaemonService`
calls. It owns the daemon's own ledger connection and

* puts every deployment under the autonomy governor
  (:class:`~tradewarden.agent.autonomy.AutonomyGovernor`, ``[autonomy]``);
* produces events: the calendar's (:class:`~tradewarden.ops.schedule.Scheduler`,
  ``[daemon] calendar``), fills, positions near their stop or far from their entry
  (:class:`~tradewarden.ops.events.PositionWatch`), stale market data
  (:class:`~tradewarden.ops.events.StaleData`), new files in ``[daemon] watch_folder``,
  a deployment's failure (``broker_disconnected``) and return (``broker_reconnected``);
* processes the durable queue (:class:`~tradewarden.ops.events.Dispatcher`): each event
  goes to the deployment's reasoner, the decision is recorded with the context it saw,
  the governor's verdict apart (:func:`~tradewarden.agent.autonomy.gate`), and only an
  ``execute`` verdict acts (a close or a halt, through the command inbox as actor
  ``daemon``); a ``queue`` verdict asks a person (a ``human_review`` alert);
* raises alerts (:class:`~tradewarden.ops.alerts.Alerter`, ``[alerts]``) and runs the
  Telegram bot when a token is configured;
* writes the heartbeat row and tells systemd's watchdog.

What each event does
--------------------
=====================  =============================================================
event                  effect
=====================  =============================================================
end_of_day             promotion/demotion review per deployment (an alert on a
                       change), the day's reflection and experiments
                       (:func:`~tradewarden.agent.reflection.learn`: an
                       ``experiment_result`` event and alert per verdict), then the
                       day's summary as an ``end_of_day`` alert; with ``[ml] daemon``
                       first queues ``ml_daily`` (the prediction, then the drift
                       report: :mod:`tradewarden.ml.jobs`)
weekly_learning        with ``[ml] daemon`` queues ``ml_retrain``; then as below
ml_daily, ml_retrain   the ML jobs (:class:`~tradewarden.ml.jobs.MlJobs`)
broker_disconnected    a critical ``broker_disconnect`` alert
broker_reconnected     an info alert (the deployment reconciled before trading)
anomaly_detected       the anomaly opened for its deployment (a person must decide
                       while it is open), the governor demoted one level at once
                       (``autonomy_demoted`` alert), an ``anomaly`` alert
stale_data             ``stale``: entries blocked (monitor only) and a ``stale_data``
                       anomaly opened; ``fresh``: both lifted
everything else        reasoned about per deployment, recorded, gated (above)
=====================  =============================================================

Handlers are idempotent (a claimed event may run again after a crash): commands they
queue carry the event's effect key (``ev<id>``) in their reason and are not queued
twice; alerts carry it as their dedupe key; anomalies are opened once per kind and
symbol.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

from tradewarden.ops.daemon import HEARTBEAT_SECONDS
from tradewarden.ops.sdnotify import notify

#: Who the daemon's own commands are recorded as (not a person: not an override).
DAEMON_ACTOR = "daemon"


class Supervisor:
    """The daemon's hooks around its deployments (see the module docstring).

    Parameters
    ----------
    ledger : tradewarden.ledger.Ledger
        The daemon's own connection (events, alerts, heartbeats, event decisions).
    loaded : tradewarden.settings.LoadedSettings
        The config file's settings (``[daemon]``, ``[autonomy]``, ``[alerts]``).
    daemon_id : str
    clock : tradewarden.engine.clock.Clock
    log : structlog logger
    """

    def __init__(self, ledger: Any, loaded: Any, *, daemon_id: str, clock: Any, log: Any) -> None:
        from tradewarden.ml.jobs import MlJobs
        from tradewarden.ops.alerts import Alerter
        from tradewarden.ops.events import Dispatcher
        from tradewarden.ops.schedule import ALWAYS_OPEN, Scheduler, market_calendar

        self.ledger = ledger
        self.loaded = loaded
        self.daemon_id = daemon_id
        self.clock = clock
        self.log = log
        self.service: Any = None
        self._ready = False
        self._ledger_since: int | None = None
        daemon = loaded.daemon
        self.market = market_calendar(daemon.calendar or ALWAYS_OPEN)
        self.alerter = Alerter(ledger, loaded.settings.alerts, clock, log=log)
        self.scheduler = Scheduler(ledger, self.market,
                                   pre_market_minutes=daemon.pre_market_minutes,
                                   end_of_day_utc=daemon.end_of_day_utc, log=log)
        self.dispatcher = Dispatcher(ledger, clock, f"{daemon_id}:{os.getpid()}", log=log,
                                     on_error=self._event_failed)
        #: The ML jobs (``[ml] daemon = true``), else None.
        self.ml = MlJobs.for_daemon(loaded, ledger, alerter=self.alerter, clock=clock, log=log)
        self._register()
        self.folder = None
        self.bot = None
        self._oversight = None
        self._reflector: Any = None

    def start(self) -> None:
        """Start the watched folder (a scan for files that came while down) and the
        Telegram bot; either failing is logged and alerted, and the daemon runs on."""
        from tradewarden.ops.events import FolderWatch
        daemon = self.loaded.daemon
        if daemon.watch_folder is not None:
            try:
                self.folder = FolderWatch(self.ledger, self.clock, daemon.watch_folder)
                self.folder.start()
            except (OSError, ValueError) as exc:
                self.folder = None
                self._alert("warning", "daemon_error", f"watched folder not watched: {exc}")
        if self.loaded.settings.alerts.telegram_bot_token is not None:
            from tradewarden.ops.oversight import Oversight
            from tradewarden.ops.telegram_bot import TelegramBot
            try:
                self._oversight = Oversight(
                    self.loaded.ledger.url(), clock=self.clock,
                    default_autonomy=self.loaded.settings.autonomy.initial_level)
                self.bot = TelegramBot.from_settings(self._oversight, self.loaded.settings.alerts,
                                                     clock=self.clock, log=self.log)
                self.bot.start()
            except Exception as exc:        # noqa: BLE001 - the bot is a convenience
                self.bot = None
                self._alert("warning", "daemon_error", f"Telegram bot not started: {exc}")

    # ------------------------------------------------------------- deployments

    def wrap_ledger(self, ledger: Any) -> Any:
        """Return the ledger a deployment writes through: on a server database a
        :class:`~tradewarden.ledger.spool.SpoolingLedger` whose spool file sits beside
        the daemon's lock (``ledger-spool-<hash>.db``; one per daemon, replayed first
        when it holds batches from an earlier process); an SQLite ledger as it is."""
        from tradewarden.ledger.spool import SpoolingLedger
        from tradewarden.ops.daemon import lock_path
        lock = lock_path(self.loaded.ledger.url())
        spool = lock.with_name(lock.name.replace(".daemon.lock", "").replace(".lock", "")
                               + ".spool.db")
        wrapped = SpoolingLedger(ledger, spool, clock=self.clock)
        return wrapped if wrapped.spooling else ledger

    def on_open(self, slot: Any) -> None:
        """A deployment opened: put it under the autonomy governor (unless its config
        says ``governor = "monitor"``: record only), watch its positions and its data,
        and after a failure record ``broker_reconnected``."""
        from tradewarden.agent.autonomy import AutonomyGovernor
        from tradewarden.ops.events import PositionWatch, StaleData
        dep = slot.opened.dep
        engine = dep.kernel.engine
        daemon = self.loaded.daemon
        if slot.loaded.run_config().governor != "monitor":
            reasoner = None                 # [reasoning] provider: the rules by default
            if self.loaded.settings.reasoning.provider != "rules":
                from tradewarden.agent.anthropic_reasoner import reasoner_from_settings
                reasoner = reasoner_from_settings(
                    self.loaded.settings.reasoning, dep.ledger, deployment_id=dep.deployment_id,
                    alerter=self.alerter, log=self.log)
            gov = AutonomyGovernor(dep.ledger, dep.deployment_id, dep.run_id, dep.clock,
                                   settings=self.loaded.settings.autonomy, reasoner=reasoner,
                                   context=lambda d=dep, s=slot: {
                                       **deployment_context(d), **self.context_extras(s)},
                                   market=lambda s=slot: self.market_context(s))
            engine.governor = gov
            slot.extras["governor"] = gov
        slot.extras["positions"] = PositionWatch(
            self.ledger, self.clock, stop_fraction=Decimal(str(daemon.stop_approach_fraction)),
            move_fraction=Decimal(str(daemon.significant_move_fraction)))
        bar_seconds = int(slot.opened.feed.tf)
        stale = StaleData(self.ledger, self.clock, self.market,
                          threshold_seconds=bar_seconds + daemon.stale_seconds)
        for s in engine.syms:
            stale.watch(f"{dep.deployment_id}/{s.name}", self.clock.now())
        slot.extras["stale"] = stale
        slot.extras["fill_seq"] = self._last_fill_seq(dep)
        self._announce_earlier_fills(dep)
        since = slot.extras.pop("venue_down", None)
        if since is not None:
            self.ledger.enqueue_event(
                "broker_reconnected", {"deployment": dep.name, "deployment_id": dep.deployment_id,
                                       "venue": slot.loaded.venue.name, "run_id": dep.run_id,
                                       "since": since, "at": self.clock.now(),
                                       "down_seconds": self.clock.now() - since,
                                       "after_failures": slot.failures},
                due_at=self.clock.now(), dedupe_key=f"reconnected:{dep.run_id}")

    def on_bar(self, slot: Any, bar: Any, decision: Any) -> None:
        """A bar was decided: fresh data for its symbol, its fills as ``order_filled``
        events, the positions checked against their stop and entry."""
        from tradewarden.ledger import LedgerError
        from tradewarden.ops.events import WatchedPosition
        dep = slot.opened.dep
        slot.extras["stale"].update(f"{dep.deployment_id}/{bar.symbol}", self.clock.now())
        if decision.action == "queued":
            self._alert("warning", "human_review",
                        f"{dep.name}: {bar.symbol} waits for a person ({decision.reason})",
                        f"`warden approvals list --deployment {dep.name}` shows it; approve or "
                        f"reject it with `warden approvals approve|reject ID --deployment "
                        f"{dep.name}` (or /approve ID on Telegram) before the next "
                        f"{bar.symbol} bar, when it expires.",
                        dedupe_key=f"queued-{dep.deployment_id}-{bar.symbol}-{bar.ts}",
                        deployment_id=dep.deployment_id)
        if getattr(dep.ledger, "degraded", False):
            return                  # the database is away: fills are read when it is back
        try:
            self._fills(slot)
        except LedgerError as exc:
            self._ledger_down(exc)
            return
        engine = dep.kernel.engine
        watched, prices = [], {}
        for s in engine.syms:
            pos = s.position
            if pos is None or not s.last_close > 0:
                continue
            watched.append(WatchedPosition(s.name, pos.quantity, pos.entry_price, pos.stop_loss,
                                           key=f"{dep.deployment_id}/{s.name}@{pos.entry_price}"))
            prices[s.name] = Decimal(repr(s.last_close))
        try:
            slot.extras["positions"].observe(watched, prices)
        except LedgerError as exc:
            self._ledger_down(exc)

    def _last_fill_seq(self, dep: Any) -> int:
        from sqlalchemy import func, select

        from tradewarden.ledger import schema
        f = schema.fills
        dep.ledger.drain()
        with dep.ledger.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(f.c.fill_seq), -1))
                                    .where(f.c.run_id == dep.run_id)).scalar_one())

    #: Fills of a deployment's earlier runs younger than this (clock seconds) that were
    #: never announced (the run was killed or failed before it could) are announced
    #: when the deployment opens; older ones are history, not news.
    EARLIER_FILLS_SECONDS = 86_400

    def _announce_earlier_fills(self, dep: Any) -> None:
        """Enqueue ``order_filled`` for the deployment's recent fills of earlier runs not
        announced yet (its client order ids start ``tw-<deployment id>-``; the event's
        key ``fill:<run>:<seq>`` makes announcing twice impossible)."""
        from sqlalchemy import select

        from tradewarden.ledger import schema
        from tradewarden.ops.events import emit_order_filled
        f, e = schema.fills, schema.daemon_events
        since = self.clock.now() - self.EARLIER_FILLS_SECONDS
        dep.ledger.drain()
        with dep.ledger.engine.connect() as conn:
            rows = conn.execute(
                select(f).where(f.c.run_id != dep.run_id, f.c.ts >= since,
                                f.c.client_order_id.like(f"tw-{dep.deployment_id}-%"))
                .order_by(f.c.ts, f.c.run_id, f.c.fill_seq)).mappings().all()
            if not rows:
                return
            keys = {f"fill:{r['run_id']}:{r['fill_seq']}" for r in rows}
            known = set(conn.execute(select(e.c.dedupe_key)
                                     .where(e.c.dedupe_key.in_(keys))).scalars())
        for r in rows:
            key = f"{r['run_id']}:{r['fill_seq']}"
            if f"fill:{key}" in known:
                continue
            emit_order_filled(self.ledger, self.clock.now(), fill_id=key,
                              client_order_id=r["client_order_id"], symbol=r["symbol"],
                              side=r["side"], quantity=Decimal(str(r["quantity"])),
                              price=Decimal(str(r["price"])), fee=Decimal(str(r["fee"])),
                              deployment_id=dep.deployment_id, ts=r["ts"])

    def _fills(self, slot: Any) -> None:
        """Enqueue ``order_filled`` for the run's fills newer than the last seen."""
        from sqlalchemy import select

        from tradewarden.ledger import schema
        from tradewarden.ops.events import emit_order_filled
        dep = slot.opened.dep
        f = schema.fills
        dep.ledger.drain()
        with dep.ledger.engine.connect() as conn:
            rows = conn.execute(select(f).where(f.c.run_id == dep.run_id,
                                                f.c.fill_seq > slot.extras["fill_seq"])
                                .order_by(f.c.fill_seq)).mappings().all()
        for r in rows:
            emit_order_filled(self.ledger, self.clock.now(),
                              fill_id=f"{dep.run_id}:{r['fill_seq']}",
                              client_order_id=r["client_order_id"], symbol=r["symbol"],
                              side=r["side"], quantity=Decimal(str(r["quantity"])),
                              price=Decimal(str(r["price"])), fee=Decimal(str(r["fee"])),
                              deployment_id=dep.deployment_id, ts=r["ts"])
            slot.extras["fill_seq"] = int(r["fill_seq"])

    def context_extras(self, slot: Any, *, kind: str | None = None, symbol: str | None = None,
                       payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """Return what a reasoner sees of the deployment's record besides its book: recent
        decisions with their outcomes, similar past contexts, patterns, the
        performance window, the open experiments
        (:func:`tradewarden.agent.experiments.active_experiments`) and the latest
        reflection (:func:`tradewarden.agent.reflection.latest_reflection`)
        (:func:`tradewarden.agent.memory.build_context_extras`, which
        first records new outcomes and embeddings and writes the working memory, loaded
        once per opening). The recall query is the situation in words
        (:func:`tradewarden.agent.recall.event_query`: the event, its symbol, the market);
        without an event (the governor's entries and exits), the deployment's symbols.
        A failure (the ledger away, the embedding model missing) is logged and the
        context goes without these parts: a decision never waits on memory."""
        from tradewarden.agent.experiments import active_experiments
        from tradewarden.agent.memory import WorkingMemory, build_context_extras
        from tradewarden.agent.recall import event_query
        from tradewarden.agent.reflection import latest_reflection
        if slot.opened is None:
            return {}
        dep = slot.opened.dep
        now = int(self.clock.now())
        market = self.market_context(slot)
        if kind is None and symbol is None:
            names = " ".join(s.name for s in dep.kernel.engine.syms)
            query = event_query("entry or exit decision", None, None, market) + f" {names}"
        else:
            query = event_query(kind, symbol, payload, market)
        try:
            memory = slot.extras.get("memory")
            if memory is None:
                memory = slot.extras["memory"] = WorkingMemory.load(
                    dep.ledger, dep.deployment_id, now=now)
            return build_context_extras(dep.ledger, dep.deployment_id, query=query, now=now,
                                        symbol=symbol, memory=memory, market=market,
                                        experiments=active_experiments,
                                        reflection=latest_reflection)
        except Exception as exc:            # noqa: BLE001 - memory informs, never blocks
            self.log.warning("context_memory_failed", deployment=dep.name,
                             error=f"{type(exc).__name__}: {exc}")
            return {}

    def market_context(self, slot: Any) -> dict[str, Any]:
        """What the governor knows of the market: ``last_data_ts``, the close of the
        newest bar the deployment has (UTC epoch seconds; the bar being decided), and
        ``market_open`` from the ``[daemon]`` calendar."""
        if slot.opened is None:
            return {}
        engine = slot.opened.dep.kernel.engine
        out: dict[str, Any] = {"market_open": self.market.is_open(self.clock.now())}
        last = engine.last_bar_ts
        if last is not None:
            out["last_data_ts"] = int(last) + int(slot.opened.feed.tf)
        return out

    def on_failure(self, slot: Any, exc: BaseException, where: str) -> None:
        """A deployment failed. The venue unreachable (a venue error, a network error of
        the client): record ``broker_disconnected`` once per outage (its handler alerts).
        Anything else (an exception in a bar, a bug): a critical ``daemon_error`` alert
        with the error; either way the service reopens it after ``reconnect_seconds``."""
        from tradewarden.ledger import LedgerError
        from tradewarden.ledger.spool import is_unreachable
        now = self.clock.now()
        if isinstance(exc, LedgerError) and (is_unreachable(exc) or is_unreachable(
                exc.__cause__ or exc)):
            self._ledger_down(exc)          # once per outage, not once per reopening
            return
        if not venue_failure(exc):
            self._alert("critical", "daemon_error",
                        f"{slot.label}: failed ({where}): {slot.error}"[:300],
                        f"Logged with its traceback (deployment_failed); it is opened again "
                        f"in {self.loaded.daemon.reconnect_seconds:g} s and reconciles first.",
                        dedupe_key=f"failed-{slot.label}-{slot.error}"[:128])
            return
        if not slot.extras.get("venue_down"):
            slot.extras["venue_down"] = now
            self.ledger.enqueue_event(
                "broker_disconnected", {"deployment": slot.label, "venue": slot.loaded.venue.name,
                                        "since": now, "where": where, "reason": slot.error,
                                        "retry_seconds": self.loaded.daemon.reconnect_seconds},
                due_at=now, dedupe_key=f"disconnected:{slot.label}:{now}")

    # ------------------------------------------------------------- events

    def on_turn(self, now: int) -> float | None:
        """Between steps: the schedule, stale data and the watched folder, then every
        due event; tell systemd's watchdog the loop turns. Return the next fire time.

        A ledger that cannot be reached (:class:`~tradewarden.ledger.LedgerError`) skips
        the turn's events with a log line and an alert (once per outage); they are
        durable, so they are produced and processed when it answers again."""
        from tradewarden.ledger import LedgerError
        notify("WATCHDOG=1")
        try:
            self.scheduler.tick(now)
            for slot in self.service.running() if self.service is not None else []:
                slot.extras["stale"].check()
                self._demote_if_due(slot)
            if self.folder is not None:
                self.folder.poll()
            self.dispatcher.run_pending()
            nxt = self.scheduler.next_fire_time(self.clock.now())
        except LedgerError as exc:
            self._ledger_down(exc)
            return None
        if self._ledger_since is not None:
            self.log.info("ledger_back", down_seconds=self.clock.now() - self._ledger_since)
            self._ledger_since = None
            try:
                self.alerter.record_unwritten()
            except LedgerError as exc:
                self._ledger_down(exc)
        return nxt

    def _demote_if_due(self, slot: Any) -> None:
        """A person's override (or losses, or an anomaly) demotes at once."""
        gov = slot.extras.get("governor")
        if gov is None or getattr(slot.opened.dep.ledger, "degraded", False):
            return
        change = gov.demote_if_due(self.clock.now())
        if change is not None:
            self._alert("warning", "autonomy_demoted",
                        f"{slot.label}: autonomy L{change['from_level']} -> L{change['to_level']}",
                        change["reason"], dedupe_key=f"demotion-{change['id']}",
                        deployment_id=slot.opened.dep.deployment_id)

    def _ledger_down(self, exc: BaseException) -> None:
        """The daemon's own ledger failed: log, and alert once per outage."""
        first = self._ledger_since is None
        if first:
            self._ledger_since = self.clock.now()
        (self.log.error if first else self.log.debug)("ledger_unreachable", error=str(exc),
                                                      since=self._ledger_since)
        if first:
            self._alert("critical", "daemon_error", f"the ledger database fails: {exc}"[:300],
                        "Entries are blocked on the deployments whose writes spool; the "
                        "daemon carries on and retries.")

    def _register(self) -> None:
        from tradewarden.ops import events as ev
        d = self.dispatcher
        for kind in (ev.MARKET_OPEN, ev.MARKET_CLOSE, ev.PRE_MARKET, ev.WEEKLY_LEARNING,
                     ev.ORDER_FILLED, ev.STOP_APPROACHING, ev.SIGNIFICANT_MOVE,
                     ev.NEW_DATA_FILE, ev.EXPERIMENT_RESULT):
            d.register(kind, self.consider)
        d.register(ev.END_OF_DAY, self._end_of_day)
        if self.ml is not None:             # ml_daily, ml_retrain; weekly queues a retrain
            self.ml.register(d)
            d.register(ev.WEEKLY_LEARNING, self._weekly_learning)
        d.register(ev.BROKER_DISCONNECTED, self._broker_down)
        d.register(ev.BROKER_RECONNECTED, self._broker_up)
        d.register(ev.ANOMALY_DETECTED, self._anomaly)
        d.register(ev.STALE_DATA, self._stale)

    def _targets(self, event: Any) -> list[Any]:
        """The running deployments an event concerns: the one its payload names (by id,
        name or a position key ``<deployment id>/...``), else all of them."""
        running = self.service.running() if self.service is not None else []
        p = event.payload
        ident = p.get("deployment_id") or p.get("deployment")
        if ident is None:
            for k in ("position", "symbol"):
                if isinstance(p.get(k), str) and "/" in p[k]:
                    ident = p[k].split("/", 1)[0]
                    break
        if ident is None:
            return running
        return [s for s in running
                if ident in (s.opened.dep.deployment_id, s.opened.dep.name)]

    def consider(self, event: Any, *, ask: bool = True) -> list[dict[str, Any]]:
        """Reason about an event for each deployment it concerns, record the decision
        with its context and the governor's verdict, and act on an ``execute``.

        Parameters
        ----------
        event : tradewarden.ops.events.Event
        ask : bool
            Send a ``human_review`` alert when the verdict queues it for a person.

        Returns
        -------
        list of dict
            Per deployment: ``decision_id``, ``verdict``, ``reason``, ``action``.
        """
        from tradewarden.agent import records
        from tradewarden.agent.autonomy import Trigger, gate
        from tradewarden.agent.reasoning import (
            Action,
            DecisionOutput,
            ReasoningContext,
            ReasoningEvent,
        )
        from tradewarden.ops.events import effect_key
        out = []
        for slot in self._targets(event):
            gov = slot.extras.get("governor")
            if gov is None:
                continue
            dep = slot.opened.dep
            now = self.clock.now()
            symbol = event.payload.get("symbol")
            if isinstance(symbol, str) and "/" in symbol:
                symbol = symbol.split("/", 1)[1]
            level = gov.level()
            open_flags = records.anomalies(self.ledger, deployment_id=dep.deployment_id)
            given = deployment_context(dep)
            rev = ReasoningEvent(kind=event.kind, ts=int(now), symbol=symbol,
                                 payload=dict(event.payload))
            extras = self.context_extras(slot, kind=event.kind, symbol=symbol,
                                         payload=dict(event.payload))
            ctx = ReasoningContext(
                positions=given["positions"], account=given["account"],
                market=self.market_context(slot), strategy_state=given["strategy_state"],
                autonomy_level=level, **extras,
                anomalies=[{"id": a["id"], "kind": a["kind"], "symbol": a["symbol"]}
                           for a in open_flags])
            triggers = [Trigger("anomaly_flag", {"anomaly": a["kind"], "id": a["id"]})
                        for a in open_flags]
            earlier = records.event_decision(self.ledger, event_id=event.id,
                                             deployment_id=dep.deployment_id)
            if earlier is not None:         # a re-run after a crash: decided already
                decision_id = earlier["id"]
                decision = DecisionOutput.model_validate(earlier["output"])
                level = earlier["autonomy_level"]
            else:
                decision = gov.reasoner.decide(rev, ctx)
                decision_id = records.record_decision(
                    self.ledger, deployment_id=dep.deployment_id, run_id=dep.run_id,
                    ts=int(now), event_kind=event.kind, event_id=event.id,
                    reasoner=gov.reasoner.name, autonomy_level=level, symbol=symbol,
                    context={"event": rev.model_dump(mode="json"), **ctx.model_dump(mode="json")},
                    output=decision)
            if decision.confidence < gov.min_confidence():
                triggers.append(Trigger("low_confidence", {"confidence": decision.confidence}))
            if earlier is not None and earlier["verdicts"]:
                verdict, reason = earlier["verdicts"][-1]["verdict"], earlier["verdicts"][-1]["reason"]
            else:
                verdict, reason = gate(level, "exit", decision, triggers, notional=None,
                                       average=None, new_symbol=False,
                                       anomaly_event=event.kind == "anomaly_detected",
                                       settings=gov.settings)
                records.record_verdict(self.ledger, agent_decision_id=decision_id,
                                       deployment_id=dep.deployment_id, ts=int(now),
                                       autonomy_level=level, verdict=verdict, reason=reason,
                                       triggers=[t.as_dict() for t in triggers])
                if earlier is None and hasattr(gov.reasoner, "settle"):
                    gov.reasoner.settle(decision_id, verdict)     # its model calls linked
            key = effect_key(event, dep.deployment_id)
            if verdict == "execute" and decision.action == Action.CLOSE_POSITION:
                own = {x.name for x in dep.kernel.engine.syms}
                wanted = decision.target_symbols or ((symbol,) if symbol else ())
                for sym in wanted:          # only this deployment's symbols: a model's text
                    if sym in own:          # is data, never a command target of its own
                        self._command(dep, "close", sym, f"decision {decision_id} ({key})", key)
                    else:
                        self.log.warning("close_target_refused", deployment=dep.name,
                                         decision_id=decision_id, target=str(sym)[:64])
            elif verdict == "execute" and decision.action == Action.EMERGENCY_HALT:
                self._command(dep, "kill", None, f"decision {decision_id} ({key})", key)
                self._command(dep, "flatten", None, f"decision {decision_id} ({key})", key)
            elif verdict == "queue" and ask:
                self._alert("warning", "human_review",
                            f"{dep.name}: {event.kind} needs a person ({reason})",
                            f"{decision.reasoning}\nSee `warden daemon audit --decision-id "
                            f"{decision_id}`.", dedupe_key=f"{key}-review",
                            deployment_id=dep.deployment_id)
            self.log.info("event_decided", event_id=event.id, kind=event.kind,
                          deployment=dep.name, decision_id=decision_id,
                          action=decision.action.value, verdict=verdict)
            out.append({"decision_id": decision_id, "verdict": verdict, "reason": reason,
                        "action": decision.action.value})
        return out

    def _command(self, dep: Any, kind: str, target: str | None, reason: str, key: str) -> None:
        """Queue a command as the daemon, once per event (its effect ``key`` ends the
        reason: a re-run of the event after a crash finds it and queues nothing)."""
        done = self.ledger.commands(deployment_id=dep.deployment_id)
        if any(c["kind"] == kind and c.get("target") == target
               and f"({key})" in (c.get("reason") or "") for c in done):
            return
        self.ledger.enqueue_command(dep.deployment_id, kind, actor=DAEMON_ACTOR, target=target,
                                    reason=reason)

    def _alert(self, level: str, trigger: str, subject: str, body: str | None = None, *,
               dedupe_key: str | None = None, deployment_id: str | None = None) -> None:
        try:
            self.alerter.alert(level, trigger, subject, body, dedupe_key=dedupe_key,
                               deployment_id=deployment_id,
                               once=dedupe_key is not None and dedupe_key.startswith("ev"))
        except Exception as exc:            # noqa: BLE001 - logged by the alerter; never stall
            self.log.error("alert_failed", trigger=trigger, subject=subject, error=str(exc))

    def _event_failed(self, event: Any, exc: BaseException) -> None:
        self._alert("warning", "daemon_error", f"event {event.id} ({event.kind}) failed: "
                    f"{type(exc).__name__}: {exc}", dedupe_key=f"event-failed-{event.id}")

    def _weekly_learning(self, event: Any) -> None:
        """``[ml] daemon``: queue the week's retraining, then reason about the event."""
        self.ml.after_week(event)
        self.consider(event)

    def _end_of_day(self, event: Any) -> None:
        from tradewarden.ops.events import effect_key
        if self.ml is not None:
            self.ml.after_close(event)      # the day's prediction and drift, queued once
        now = self.clock.now()
        for slot in self._targets(event):
            gov = slot.extras.get("governor")
            if gov is None:
                continue
            change = gov.review(now)
            if change is not None:
                demoted = change["kind"] == "demotion"
                self._alert("warning" if demoted else "info",
                            "autonomy_demoted" if demoted else "autonomy_promoted",
                            f"{slot.label}: autonomy L{change['from_level']} -> "
                            f"L{change['to_level']} ({change['kind']})", change["reason"],
                            dedupe_key=effect_key(event, f"level-{slot.label}"),
                            deployment_id=slot.opened.dep.deployment_id)
        self._learn(event)
        summary = self._summary()
        self._alert("info", "end_of_day",
                    f"end of day {event.payload.get('session', '')}".strip(), summary,
                    dedupe_key=effect_key(event, "summary"))

    def reflector(self) -> Any:
        """Return the end-of-day reflector: the model's
        (:class:`~tradewarden.agent.reflection.ModelReflector`) with ``[reasoning]
        provider = "anthropic"`` and ``ANTHROPIC_API_KEY`` set, else the rules'
        (:class:`~tradewarden.agent.reflection.RulesReflector`); built once."""
        if self._reflector is None:
            from tradewarden.agent.reflection import ModelReflector, RulesReflector
            reasoning = getattr(self.loaded.settings, "reasoning", None)
            floor = self.loaded.settings.autonomy.min_confidence
            if (reasoning is not None and reasoning.provider == "anthropic"
                    and os.environ.get("ANTHROPIC_API_KEY")):
                self._reflector = ModelReflector(self.ledger, reasoning, alerter=self.alerter,
                                                 min_confidence=floor)
            else:
                self._reflector = RulesReflector(floor)
        return self._reflector

    def _learn(self, event: Any) -> None:
        """After the close, per deployment under the governor: the outcomes known now
        (:func:`tradewarden.agent.outcomes.record_outcomes`), then the day's reflection,
        experiment proposals filed, started and judged (``[learning]``;
        :func:`tradewarden.agent.reflection.learn`); a verdict becomes an
        ``experiment_result`` event and an alert. A failure is alerted and the end of
        day goes on."""
        from datetime import UTC, datetime

        from tradewarden.agent.outcomes import record_outcomes
        from tradewarden.agent.reflection import learn
        from tradewarden.ops.events import effect_key, emit_experiment_result
        now = self.clock.now()
        day = str(event.payload.get("session")
                  or datetime.fromtimestamp(now, UTC).date().isoformat())
        for slot in self._targets(event):
            if slot.extras.get("governor") is None:
                continue
            dep = slot.opened.dep
            try:
                record_outcomes(self.ledger, dep.deployment_id, now=int(now))
                done = learn(self.ledger, dep.deployment_id, day, int(now),
                             reflector=self.reflector(),
                             learning=getattr(self.loaded.settings, "learning", None))
            except Exception as exc:        # noqa: BLE001 - learning never blocks the day's end
                self.log.error("learning_failed", deployment=slot.label, day=day,
                               error=f"{type(exc).__name__}: {exc}")
                self._alert("warning", "daemon_error",
                            f"{slot.label}: the reflection of {day} failed: {exc}"[:300],
                            dedupe_key=effect_key(event, f"learn-{dep.deployment_id}"),
                            deployment_id=dep.deployment_id)
                continue
            self.log.info("reflected", deployment=slot.label, day=day,
                          reflection_id=done["reflection"]["id"], started=done["started"],
                          judged=sorted(done["judged"]))
            for eid, result in done["judged"].items():
                emit_experiment_result(self.ledger, now, experiment_id=str(eid),
                                       status=result["status"],
                                       summary={k: result.get(k) for k in (
                                           "n", "mean", "effect", "p_value", "reason")})
                self._alert("info", "experiment_result",
                            f"{slot.label}: experiment {eid} {result['status']}",
                            str(result.get("reason") or ""),
                            dedupe_key=f"experiment-{eid}-{result['status']}",
                            deployment_id=dep.deployment_id)

    def _summary(self) -> str:
        from tradewarden.ops.oversight import Oversight
        try:
            with Oversight(self.loaded.ledger.url(), clock=self.clock,
                           deployments=[s.opened.dep.name for s in self.service.running()]
                           if self.service is not None and self.service.running() else None
                           ) as o:
                return o.text_report()
        except Exception as exc:            # noqa: BLE001 - the summary is a courtesy
            return f"(no summary: {type(exc).__name__}: {exc})"

    def _broker_down(self, event: Any) -> None:
        from tradewarden.ops.events import effect_key
        p = event.payload
        self._alert("critical", "broker_disconnect",
                    f"{p.get('deployment')}: down ({p.get('reason')})",
                    f"Entries are off while it is down; it is opened again every "
                    f"{p.get('retry_seconds')} s and reconciles before it trades.",
                    dedupe_key=effect_key(event))

    def _broker_up(self, event: Any) -> None:
        from tradewarden.ops.events import effect_key
        p = event.payload
        self._alert("info", "broker_disconnect",
                    f"{p.get('deployment')}: back after {p.get('after_failures')} failure(s); "
                    "reconciled", dedupe_key=effect_key(event))

    def _anomaly(self, event: Any) -> None:
        from tradewarden.agent import records
        from tradewarden.ops.events import effect_key
        p = event.payload
        now = self.clock.now()
        for slot in self._targets(event):
            dep = slot.opened.dep
            opened = records.open_anomaly(self.ledger, deployment_id=dep.deployment_id,
                                          kind=str(p.get("anomaly") or "anomaly")[:32],
                                          symbol=p.get("symbol"), ts=now,
                                          detail=p.get("detail") or None)
            gov = slot.extras.get("governor")
            if opened is not None and gov is not None:
                change = gov.demote(f"anomaly {p.get('anomaly')} (event {event.id})", now)
                if change is not None:
                    self._alert("warning", "autonomy_demoted",
                                f"{dep.name}: autonomy L{change['from_level']} -> "
                                f"L{change['to_level']} (anomaly {p.get('anomaly')})",
                                dedupe_key=effect_key(event, f"demote-{dep.deployment_id}"),
                                deployment_id=dep.deployment_id)
        self.consider(event, ask=False)     # each deployment's reasoner, recorded and gated
        level = "critical" if p.get("severity") == "critical" else "warning"
        self._alert(level, "anomaly", f"anomaly {p.get('anomaly')}"
                    + (f" on {p['symbol']}" if p.get("symbol") else ""),
                    str(p.get("detail") or ""), dedupe_key=effect_key(event))

    def _stale(self, event: Any) -> None:
        from tradewarden.agent import records
        p = event.payload
        now = self.clock.now()
        key = str(p.get("symbol", ""))
        dep_id, _, symbol = key.partition("/")
        for slot in self.service.running() if self.service is not None else []:
            dep = slot.opened.dep
            if dep.deployment_id != dep_id:
                continue
            engine = dep.kernel.engine
            if p.get("state") == "stale":
                engine.block_entries("stale_data", f"no market data for {symbol} for "
                                     f"{p.get('seconds')} s", now)
                records.open_anomaly(self.ledger, deployment_id=dep_id, kind="stale_data",
                                     symbol=symbol, ts=now, detail=dict(p))
                self._alert("warning", "anomaly", f"{dep.name}: stale market data for {symbol}",
                            dedupe_key=f"stale-{event.id}", deployment_id=dep_id)
            else:
                engine.unblock_entries("stale_data", f"market data for {symbol} again", now)
                records.clear_anomalies(self.ledger, deployment_id=dep_id, kind="stale_data",
                                        symbol=symbol, ts=now)
            engine.flush()

    # ------------------------------------------------------------- heartbeat

    def heartbeat(self, status: str, activity: str) -> None:
        """Write a heartbeat row: status (``paused`` when every running deployment is,
        ``error`` while one is down), activity, queue depth, autonomy, anomalies."""
        from tradewarden.ledger import LedgerError
        try:
            self._heartbeat(status, activity)
        except LedgerError as exc:
            self._ledger_down(exc)
        notify("WATCHDOG=1")

    def _heartbeat(self, status: str, activity: str) -> None:
        from tradewarden.agent import records
        service = self.service
        running = service.running() if service is not None else []
        down = [s for s in (service.slots if service is not None else [])
                if s.loop is None and s.error]
        if status == "running":
            if down:
                status = "error"
            elif running and all(s.opened.dep.kernel.engine.paused for s in running):
                status = "paused"
            if down:
                activity = (f"{activity}; down: "
                            + ", ".join(f"{s.label} ({s.error})" for s in down))[:2000]
        now = self.clock.now()
        depth = self.ledger.event_queue_depth(now)
        for s in running:
            depth += len(self.ledger.pending_commands(s.opened.dep.deployment_id))
        levels = [s.extras["governor"].level() for s in running if "governor" in s.extras]
        ids = {s.opened.dep.deployment_id: s.label for s in running}
        flags = [f"{a['kind']}" + (f" {a['symbol']}" if a.get("symbol") else "")
                 + (f" ({ids.get(a['deployment_id'], a['deployment_id'])})"
                    if a.get("deployment_id") else "")
                 for a in records.anomalies(self.ledger)
                 if a.get("deployment_id") is None or a["deployment_id"] in ids]
        self.ledger.daemon_heartbeat(self.daemon_id, status=status, activity=activity,
                                     queue_depth=depth,
                                     autonomy_level=min(levels) if levels else None,
                                     anomalies=flags,
                                     deployments=service.names() if service is not None else [])
        self.log.debug("heartbeat", status=status, activity=activity, queue_depth=depth,
                       autonomy_level=min(levels) if levels else None, anomalies=flags)
        if not self._ready:              # systemd (Type=notify): up and beating
            self._ready = notify("READY=1") or True
        notify(f"STATUS={status}: {activity}"[:200])

    def close(self) -> None:
        """Stop the bot and the folder watch, deliver the alerts still queued, and tell
        systemd the daemon is stopping."""
        notify("STOPPING=1")
        if self.bot is not None:
            self.bot.stop()
        if self._oversight is not None:
            self._oversight.close()
        if self.folder is not None:
            self.folder.stop()
        self.alerter.close()


def venue_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it, e.g. a ``DataError`` around a ccxt
    ``NetworkError``) says the venue could not be reached or refused: a venue adapter's
    error, a connection or timeout error, or any ccxt exception."""
    from tradewarden.execution.venue import VenueError
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (VenueError, ConnectionError, TimeoutError)) \
                or type(cur).__module__.split(".")[0] == "ccxt":
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def deployment_context(dep: Any) -> dict[str, Any]:
    """What a reasoner sees of a running deployment: positions and accounts.

    Parameters
    ----------
    dep : tradewarden.ops.paper.Deployment

    Returns
    -------
    dict
        ``positions``: one dict per open position (``symbol``, ``quantity`` base units,
        ``entry_price``, ``stop_loss``, ``take_profit``, ``last_close`` quote currency
        per base unit, as text or float); ``account``: ``cash`` and ``equity`` (quote
        currency) of the first account, ``accounts``: all of them; ``strategy_state``:
        ``paused``, ``blocks``.
    """
    engine = dep.kernel.engine
    positions = []
    for s in engine.syms:
        pos = s.position
        if pos is None:
            continue
        positions.append({"symbol": s.name, "quantity": str(pos.quantity),
                          "entry_price": str(pos.entry_price),
                          "stop_loss": None if pos.stop_loss is None else str(pos.stop_loss),
                          "take_profit": None if pos.take_profit is None else str(pos.take_profit),
                          "last_close": s.last_close})
    accounts = [{"name": a.name, "cash": str(a.cash), "equity": engine.equity(i)}
                for i, a in enumerate(engine.accounts)]
    return {"positions": positions, "account": accounts[0] if accounts else {},
            "accounts": accounts,
            "strategy_state": {"paused": engine.paused, "blocks": dict(engine.blocks)}}


__all__ = ["DAEMON_ACTOR", "HEARTBEAT_SECONDS", "Supervisor", "deployment_context",
           "venue_failure"]
